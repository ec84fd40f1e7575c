//! Targets: sending one attempt of one delivery, and saying how it went.
//!
//! [`Senders`] holds what outlives a single attempt (the HTTP client, open log
//! files) and dispatches by target kind. Each attempt reads the target's
//! *current* config (URL, secret, headers, templates), handed in by the caller;
//! only the body, ids and route come frozen from the stored delivery.
//!
//! - [`http`]: the original bytes (or a template), re-signed, `x-hookgate-*` headers.
//! - [`email`]: the rendered message over SMTP, one pooled transport per target.
//! - [`log`]: one JSON line per delivery to stdout or a file.
//! - [`render`]: what each kind sends, rendered (shared with `hookgate route`).
//! - Slack targets are configured and validated, but not sent yet by this
//!   build: their deliveries stay pending (nothing is dropped).
//!
//! Never imports `queue`, `delivery` or `ingress`.

pub mod email;
pub mod http;
pub mod log;
pub mod outcome;
pub mod render;

use bytes::Bytes;

use crate::config::{Target, TargetKind};
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
    http: http::HttpSender,
    log: log::LogSender,
    email: email::EmailSender,
}

impl Senders {
    pub fn new() -> Result<Self, SenderError> {
        Ok(Senders {
            http: http::HttpSender::new()?,
            log: log::LogSender::default(),
            email: email::EmailSender::default(),
        })
    }

    /// Whether this build can send to targets of this kind.
    pub fn supports(target: &Target) -> bool {
        matches!(
            target.kind,
            TargetKind::Http(_) | TargetKind::Log(_) | TargetKind::Email(_)
        )
    }

    /// Make one attempt to `target` (its current config).
    pub async fn send(
        &self,
        target: &Target,
        templates: &TemplateSet,
        attempt: &Attempt<'_>,
    ) -> AttemptOutcome {
        match &target.kind {
            TargetKind::Http(http) => self.http.send(target, http, templates, attempt).await,
            TargetKind::Log(log) => self.log.send(target, log, attempt).await,
            TargetKind::Email(email) => self.email.send(target, email, templates, attempt).await,
            TargetKind::Slack(_) => Failure::retryable(format!(
                "{} targets are not supported by this build",
                target.kind_name()
            ))
            .into(),
        }
    }
}
