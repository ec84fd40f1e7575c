//! The `http` target: POST the event (byte-exact, or a rendered template),
//! re-signed with the target's own secret, with the `x-hookgate-*` headers of
//! DESIGN.md section 5.
//!
//! Redirects are never followed (a 3xx is a permanent failure), so a target
//! cannot bounce hookgate to another host. Errors are described without the
//! URL, since a URL can carry credentials.

use std::time::{Instant, SystemTime};

use bytes::Bytes;
use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};

use super::outcome::{
    AttemptOutcome, Failure, RESPONSE_EXCERPT_BYTES, classify_status, parse_retry_after,
};
use super::{Attempt, SenderError, render};
use crate::config::{HttpTarget, SignatureScheme, Target};
use crate::signing;
use crate::templates::TemplateSet;

/// `user-agent` on every outbound request.
pub const USER_AGENT: &str = concat!("hookgate/", env!("CARGO_PKG_VERSION"));

pub struct HttpSender {
    client: reqwest::Client,
}

impl HttpSender {
    pub fn new() -> Result<Self, SenderError> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(USER_AGENT)
            .pool_idle_timeout(std::time::Duration::from_secs(60))
            .build()
            .map_err(|e| SenderError::HttpClient(e.to_string()))?;
        Ok(HttpSender { client })
    }

    pub async fn send(
        &self,
        target: &Target,
        http: &HttpTarget,
        templates: &TemplateSet,
        attempt: &Attempt<'_>,
    ) -> AttemptOutcome {
        let body = match render_body(target, http, templates, attempt) {
            Ok(body) => body,
            Err(failure) => return failure.into(),
        };
        let mut request = self
            .client
            .request(http.method.clone(), http.url.clone())
            .timeout(target.timeout);
        // Custom headers first: hookgate's own headers below win over them.
        for (name, value) in &http.headers {
            request = request.header(name, value);
        }
        request = request
            .header(CONTENT_TYPE, http.content_type.clone())
            .header("x-hookgate-event-id", attempt.event_id)
            .header("x-hookgate-delivery-id", attempt.delivery_id)
            .header("x-hookgate-attempt", attempt.number)
            .header("x-hookgate-route", attempt.route);
        if let Some(secret) = &http.secret {
            match http.signature.scheme {
                SignatureScheme::Outrival => {
                    let sig = signing::sign_hex(secret.expose(), &body);
                    request = request.header(&http.signature.header, sig);
                }
                SignatureScheme::StandardWebhooks => {
                    // Send time, not the event's: a retry hours later must
                    // pass the receiver's 5-minute tolerance.
                    let now = SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
                    let id = attempt.delivery_id;
                    for (name, value) in
                        signing::standard_webhooks::headers(secret.expose(), id, now, &body)
                    {
                        request = request.header(name, value);
                    }
                }
            }
        }
        let started = Instant::now();
        let response = match request.body(body).send().await {
            Ok(r) => r,
            Err(e) => return transport_failure(&e, started).into(),
        };
        let status = response.status().as_u16();
        let Some(class) = classify_status(status, &target.retry.retry_on) else {
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

fn render_body(
    target: &Target,
    http: &HttpTarget,
    templates: &TemplateSet,
    attempt: &Attempt<'_>,
) -> Result<Bytes, Failure> {
    let received_at = crate::clock::format_rfc3339_ms(attempt.received_at_ms);
    let vars = render::delivery_vars(attempt, &target.name, &received_at);
    render::http_body(http, templates, attempt.body, &vars).map_err(Failure::render_error)
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
