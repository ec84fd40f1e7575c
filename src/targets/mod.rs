//! Targets: sending one attempt of one delivery, and saying how it went.
//!
//! [`Senders`] holds what outlives a single attempt (the shared HTTP client,
//! open log files) and dispatches by target kind in one `match`. Each attempt
//! reads the target's *current* config (URL, secret, headers, templates),
//! handed in by the caller; only the body, ids and route come frozen from the
//! stored delivery.
//!
//! - [`request`]: what an http or slack attempt puts on the wire, built once
//!   for the sender and for `hookgate route`.
//! - [`http`]: the shared client that sends such a request and classifies the answer.
//! - [`email`]: the rendered message over SMTP, one pooled transport per target.
//! - [`log`]: one JSON line per delivery to stdout or a file.
//! - [`render`]: bodies, Slack messages and emails rendered from templates.
//! - [`outcome`]: what an attempt came to, and "should this be retried?".
//!
//! Never imports `queue`, `delivery` or `ingress`.

pub mod email;
pub mod http;
pub mod log;
pub mod outcome;
pub mod render;
pub mod request;

use std::time::SystemTime;

use bytes::Bytes;

use crate::config::{StatusSet, Target, TargetKind};
use crate::templates::TemplateSet;
pub use outcome::{AttemptOutcome, Failure, FailureClass};

/// One attempt of one delivery: everything frozen at acceptance plus the
/// attempt number.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    pub event_id: &'a str,
    pub delivery_id: &'a str,
    pub route: &'a str,
    pub source: &'a str,
    pub received_at_ms: i64,
    /// 1-based, counting every attempt ever made (replays go on counting).
    pub number: u32,
    /// The event body exactly as received.
    pub body: &'a Bytes,
}

/// Errors building the senders.
#[derive(Debug, thiserror::Error)]
pub enum SenderError {
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(String),
}

/// The long-lived state of every target kind.
pub struct Senders {
    http: http::HttpClient,
    /// What a Slack answer retries on: fixed by DESIGN.md section 5, not the
    /// target's `retry_on` (a `retry_on` written for HTTP receivers must not
    /// turn Slack's 429 into a dead letter, nor `channel_not_found` into retries).
    slack_retry_on: StatusSet,
    log: log::LogSender,
    email: email::EmailSender,
}

impl Senders {
    pub fn new() -> Result<Self, SenderError> {
        Ok(Senders {
            http: http::HttpClient::new()?,
            slack_retry_on: StatusSet(vec![408..=408, 429..=429, 500..=599]),
            log: log::LogSender::default(),
            email: email::EmailSender::default(),
        })
    }

    /// Make one attempt to `target` (its current config).
    pub async fn send(
        &self,
        target: &Target,
        templates: &TemplateSet,
        attempt: &Attempt<'_>,
    ) -> AttemptOutcome {
        match &target.kind {
            TargetKind::Http(http) => {
                let sent_at = crate::clock::unix_seconds(SystemTime::now());
                match request::http_request(target, http, templates, attempt, sent_at) {
                    Ok(req) => {
                        self.http
                            .execute(req, target.timeout, &target.retry.retry_on)
                            .await
                    }
                    Err(e) => Failure::render_error(e).into(),
                }
            }
            TargetKind::Slack(slack) => {
                match request::slack_request(target, slack, templates, attempt) {
                    Ok(req) => slack_outcome(
                        self.http
                            .execute(req, target.timeout, &self.slack_retry_on)
                            .await,
                    ),
                    Err(e) => Failure::render_error(e).into(),
                }
            }
            TargetKind::Log(log) => self.log.send(target, log, attempt).await,
            TargetKind::Email(email) => self.email.send(target, email, templates, attempt).await,
        }
    }
}

/// Slack answers a refusal with a short error code as its body
/// (`invalid_payload`, `channel_not_found`, `no_service`, …): name it in the
/// error, so `last_error` says what to fix. The status has decided the
/// class: 408, 429 and 5xx retry, every other refusal is permanent.
fn slack_outcome(outcome: AttemptOutcome) -> AttemptOutcome {
    match outcome {
        AttemptOutcome::Failed(mut f) => {
            let code = f.response_excerpt.as_deref().map(str::trim).filter(|c| {
                !c.is_empty()
                    && c.len() <= 64
                    && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            });
            if let Some(code) = code {
                f.error = format!("Slack answered {}: {code}", f.error);
            }
            AttemptOutcome::Failed(f)
        }
        delivered => delivered,
    }
}
