//! A downstream HTTP server on loopback that records every request and answers
//! as it is told, like Svix's test receiver.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use warp::Filter;
use warp::Reply;

/// One request the sink received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// When the request (headers and body) had arrived.
    pub at: Instant,
    /// The status the sink answered it with.
    pub status: u16,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Verify `x-signature` exactly as the provider's docs tell a receiver to:
    /// `crypto.createHmac("sha256", secret).update(payload).digest("hex")`
    /// compared with `===` (so the case must match: lowercase).
    pub fn signature_valid(&self, secret: &str, header: &str) -> bool {
        use hmac::{Hmac, Mac};
        let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()) else {
            return false;
        };
        mac.update(&self.body);
        let expected = hex::encode(mac.finalize().into_bytes());
        self.header(header) == Some(expected.as_str())
    }
}

/// What the sink answers to one request.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub delay: Duration,
}

impl Answer {
    pub fn status(status: u16) -> Self {
        Answer {
            status,
            headers: Vec::new(),
            body: String::new(),
            delay: Duration::ZERO,
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn with_body(mut self, body: &str) -> Self {
        self.body = body.to_owned();
        self
    }

    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

#[derive(Default)]
struct SinkState {
    received: Mutex<Vec<Received>>,
    /// Answers to give, in order; when empty, `fallback`.
    script: Mutex<VecDeque<Answer>>,
    /// Answers for requests whose body holds a marker, in order, before
    /// `script` (see [`Sink::script_for`]).
    scripts_for: Mutex<Vec<(String, VecDeque<Answer>)>>,
    fallback: Mutex<Option<Answer>>,
    /// Requests being answered now, per `x-hookgate-delivery-id`.
    in_progress: Mutex<HashMap<String, usize>>,
    /// Requests that arrived while another one of the same delivery was
    /// still being answered (two senders of one delivery at once).
    overlaps: Mutex<usize>,
}

/// Counts a request of one delivery as in progress until dropped.
struct InProgress<'a> {
    state: &'a SinkState,
    id: Option<String>,
}

impl<'a> InProgress<'a> {
    fn begin(state: &'a SinkState, headers: &HeaderMap) -> InProgress<'a> {
        let id = headers
            .get("x-hookgate-delivery-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if let Some(id) = &id {
            let mut map = state.in_progress.lock().unwrap();
            let n = map.entry(id.clone()).or_default();
            *n += 1;
            if *n > 1 {
                *state.overlaps.lock().unwrap() += 1;
            }
        }
        InProgress { state, id }
    }
}

impl Drop for InProgress<'_> {
    fn drop(&mut self) {
        if let Some(id) = &self.id {
            let mut map = self
                .state
                .in_progress
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if let Some(n) = map.get_mut(id) {
                *n -= 1;
            }
        }
    }
}

/// A running sink. Dropping it stops accepting at once and frees the port
/// (requests in progress are abandoned, like a crashed downstream).
pub struct Sink {
    pub addr: SocketAddr,
    state: Arc<SinkState>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Sink {
    /// Start a sink on 127.0.0.1 (a free port) that answers 200 until told otherwise.
    pub async fn start() -> Sink {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Start a sink on a given address (to bring a "down" target back up).
    pub async fn start_on(addr: SocketAddr) -> Sink {
        let state = Arc::new(SinkState::default());
        let s = state.clone();
        let route = warp::method()
            .and(warp::path::full())
            .and(warp::header::headers_cloned())
            .and(warp::body::bytes())
            .then(
                move |method: http::Method, path: warp::path::FullPath, headers, body: Bytes| {
                    let s = s.clone();
                    async move {
                        let _in_progress = InProgress::begin(&s, &headers);
                        let marked = s
                            .scripts_for
                            .lock()
                            .unwrap()
                            .iter_mut()
                            .find(|(marker, answers)| {
                                !answers.is_empty()
                                    && body.windows(marker.len()).any(|w| w == marker.as_bytes())
                            })
                            .and_then(|(_, answers)| answers.pop_front());
                        let answer = marked
                            .or_else(|| s.script.lock().unwrap().pop_front())
                            .or_else(|| s.fallback.lock().unwrap().clone())
                            .unwrap_or_else(|| Answer::status(200));
                        s.received.lock().unwrap().push(Received {
                            method: method.to_string(),
                            path: path.as_str().to_owned(),
                            headers: headers.clone(),
                            body: body.clone(),
                            at: Instant::now(),
                            status: answer.status,
                        });
                        if !answer.delay.is_zero() {
                            tokio::time::sleep(answer.delay).await;
                        }
                        let mut resp = warp::reply::with_status(
                            answer.body.clone(),
                            StatusCode::from_u16(answer.status).unwrap(),
                        )
                        .into_response();
                        for (k, v) in &answer.headers {
                            resp.headers_mut().insert(
                                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                                v.parse().unwrap(),
                            );
                        }
                        Ok::<_, Infallible>(resp)
                    }
                },
            )
            .map(|r: Result<warp::reply::Response, Infallible>| match r {
                Ok(r) => r,
                Err(e) => match e {},
            });
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(warp::serve(route).incoming(listener).run());
        Sink {
            addr,
            state,
            server,
        }
    }

    /// Stop accepting and wait until the port is free again.
    pub async fn stop(mut self) {
        self.server.abort();
        let _ = (&mut self.server).await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Answer the next requests with these, in order.
    pub fn script(&self, answers: impl IntoIterator<Item = Answer>) {
        self.state.script.lock().unwrap().extend(answers);
    }

    /// Answer the next requests whose body contains `marker` with these, in
    /// order (before the general script).
    pub fn script_for(&self, marker: &str, answers: impl IntoIterator<Item = Answer>) {
        let mut scripts = self.state.scripts_for.lock().unwrap();
        match scripts.iter_mut().find(|(m, _)| m == marker) {
            Some((_, queue)) => queue.extend(answers),
            None => scripts.push((marker.to_owned(), answers.into_iter().collect())),
        }
    }

    /// Answer every request (after the script) with this.
    pub fn always(&self, answer: Answer) {
        *self.state.fallback.lock().unwrap() = Some(answer);
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    /// How many requests arrived while another request of the same
    /// delivery was still being answered.
    pub fn overlaps(&self) -> usize {
        *self.state.overlaps.lock().unwrap()
    }

    pub fn count(&self) -> usize {
        self.state.received.lock().unwrap().len()
    }

    /// The `x-hookgate-event-id` of every request received.
    pub fn event_ids(&self) -> std::collections::HashSet<String> {
        self.received()
            .iter()
            .filter_map(|r| r.header("x-hookgate-event-id").map(str::to_owned))
            .collect()
    }
}
