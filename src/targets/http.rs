//! Sending an [`OutboundRequest`] and classifying the answer: the part the
//! `http` and `slack` targets share, on one pooled reqwest client.
//!
//! Redirects are never followed (a 3xx is a permanent failure), so a target
//! cannot bounce hookgate to another host. Errors are described without the
//! URL, since a URL can carry credentials (a Slack webhook URL *is* one).

use std::time::{Duration, Instant, SystemTime};

use reqwest::header::RETRY_AFTER;

use super::SenderError;
use super::outcome::{
    AttemptOutcome, Failure, RESPONSE_EXCERPT_BYTES, classify_status, parse_retry_after,
};
use super::request::{OutboundRequest, USER_AGENT};
use crate::config::StatusSet;

/// The HTTP client every http and slack target shares (one connection pool).
pub struct HttpClient {
    client: reqwest::Client,
}

impl HttpClient {
    pub fn new() -> Result<Self, SenderError> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(USER_AGENT)
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| SenderError::HttpClient(e.to_string()))?;
        Ok(HttpClient { client })
    }

    /// Send `request` within `timeout`; a status is delivered when 2xx,
    /// retried when in `retry_on`, else permanent (DESIGN.md section 5).
    pub async fn execute(
        &self,
        request: OutboundRequest,
        timeout: Duration,
        retry_on: &StatusSet,
    ) -> AttemptOutcome {
        let started = Instant::now();
        let response = match self
            .client
            .request(request.method, request.url)
            .headers(request.headers)
            .timeout(timeout)
            .body(request.body)
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => return transport_failure(&e, started).into(),
        };
        let status = response.status().as_u16();
        let Some(class) = classify_status(status, retry_on) else {
            return AttemptOutcome::delivered(Some(status));
        };
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let excerpt = read_excerpt(response).await;
        let error = if (300..400).contains(&status) {
            format!("HTTP {status} (redirects are not followed)")
        } else {
            format!("HTTP {status}")
        };
        Failure::of_class(class, error)
            .with_status(status)
            .with_retry_after(retry_after)
            .with_excerpt(excerpt)
            .into()
    }
}

/// A request that got no response: always retryable.
fn transport_failure(e: &reqwest::Error, started: Instant) -> Failure {
    let error = if e.is_timeout() {
        format!("timed out after {} ms", started.elapsed().as_millis())
    } else if e.is_connect() {
        format!("connection failed: {}", root_cause(e))
    } else {
        format!("request failed: {}", root_cause(e))
    };
    Failure::retryable(error)
}

/// The innermost error's message: "Connection refused (os error 111)", never
/// the URL that reqwest's own Display includes.
fn root_cause(e: &reqwest::Error) -> String {
    use std::error::Error;
    // reqwest's own message names the URL; with no inner cause, say little.
    let Some(mut cause) = e.source() else {
        return "transport error".to_owned();
    };
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// The first [`RESPONSE_EXCERPT_BYTES`] of a response body, lossily decoded.
async fn read_excerpt(mut response: reqwest::Response) -> Option<String> {
    let mut buf = Vec::new();
    while buf.len() < RESPONSE_EXCERPT_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => buf.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    if buf.is_empty() {
        return None;
    }
    buf.truncate(RESPONSE_EXCERPT_BYTES);
    Some(String::from_utf8_lossy(&buf).into_owned())
}
