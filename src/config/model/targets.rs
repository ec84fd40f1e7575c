//! The validated targets: a [`Target`]'s common settings (timeout, rate
//! limit, concurrency, [`RetryPolicy`], [`CircuitBreaker`]) and each
//! [`TargetKind`]'s own (`http`, `slack`, `email`, `log`).

use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};

use super::RateLimit;
use crate::config::secret::{Secret, SigningKey};
use crate::templates::{JsonTemplate, TemplateRef};

#[derive(Debug)]
pub struct Target {
    pub name: String,
    pub enabled: bool,
    pub kind: TargetKind,
    pub timeout: Duration,
    pub rate_limit: Option<RateLimit>,
    pub concurrency: usize,
    pub retry: RetryPolicy,
    pub circuit_breaker: CircuitBreaker,
    /// `ordering`: deliveries with the same key go one at a time, in
    /// acceptance order (DESIGN.md section 6).
    pub ordering: Option<OrderingKey>,
}

/// A target's `ordering`: the payload path whose value is a delivery's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderingKey {
    /// The path as written (`companionId`, `status`), for display.
    pub key: String,
    /// The resolved payload path (`status` becomes `["data", "status"]`).
    pub path: Vec<String>,
}

impl Target {
    /// The longest one attempt to this target can take: its `timeout`, or an
    /// email target's `smtp.timeout` when that is longer (it bounds the whole
    /// SMTP exchange).
    pub fn attempt_timeout(&self) -> Duration {
        match &self.kind {
            TargetKind::Email(email) => self.timeout.max(email.smtp.timeout),
            _ => self.timeout,
        }
    }

    /// The kind's name as written in the file (`http`, `slack`, `email`, `log`).
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            TargetKind::Http(_) => "http",
            TargetKind::Slack(_) => "slack",
            TargetKind::Email(_) => "email",
            TargetKind::Log(_) => "log",
        }
    }
}

#[derive(Debug)]
pub enum TargetKind {
    Http(HttpTarget),
    Slack(SlackTarget),
    Email(EmailTarget),
    Log(LogTarget),
}

#[derive(Debug)]
pub struct HttpTarget {
    pub url: reqwest::Url,
    pub method: Method,
    /// Re-signing key: the secret's UTF-8 bytes for `outrival`, its decoded
    /// `whsec_` base64 for `standard-webhooks`; `None`: no signature headers.
    pub secret: Option<SigningKey>,
    pub signature: SignatureConfig,
    /// Extra headers; values are secrets (never logged).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: BodyMode,
    pub content_type: HeaderValue,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureScheme {
    /// Lowercase hex HMAC-SHA256 of the exact body sent, in `header`.
    Outrival,
    /// `webhook-id` (the delivery id), `webhook-timestamp` (send time) and
    /// `webhook-signature`, computed afresh on every attempt.
    StandardWebhooks,
}

#[derive(Debug, Clone)]
pub struct SignatureConfig {
    pub scheme: SignatureScheme,
    /// Where the `outrival` signature goes; `standard-webhooks` does not use
    /// it (its header names are fixed, and the config refuses `header`).
    pub header: HeaderName,
}

#[derive(Debug, Clone, Copy)]
pub enum BodyMode {
    /// The inbound body bytes, unchanged.
    Original,
    /// The output of this template.
    Template(TemplateRef),
}

#[derive(Debug)]
pub struct SlackTarget {
    /// The whole URL is the credential.
    pub webhook_url: Secret,
    /// The message text (also the notification fallback when `blocks` are
    /// set); [`DEFAULT_SLACK_TEXT`] when the file gives none.
    pub text: TemplateRef,
    pub blocks: Option<JsonTemplate>,
    /// Overrides of the webhook's own name and icon (honoured by legacy
    /// webhooks and Slack-compatible receivers; ignored by newer app webhooks).
    pub username: Option<String>,
    pub icon_emoji: Option<String>,
}

/// A Slack target's text when the file sets none: what happened, to which
/// chat, and how it stands. End-user text is escaped so it cannot ping.
pub const DEFAULT_SLACK_TEXT: &str = concat!(
    "{{ event | default('event') }} {{ type }} chat {{ companionId | default('-') | slack_escape }}: ",
    "status {{ data.status | default('-') }}, reason {{ data.endedReason | default('-') | slack_escape }}",
);

#[derive(Debug)]
pub struct EmailTarget {
    pub smtp: SmtpConfig,
    pub from: lettre::message::Mailbox,
    pub to: Vec<lettre::message::Mailbox>,
    pub subject: TemplateRef,
    pub body: TemplateRef,
    pub html: Option<TemplateRef>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    None,
    Starttls,
    Tls,
}

/// Everything a connection to one SMTP relay depends on: the email sender
/// keeps one pooled transport per target and replaces it when this changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub timeout: Duration,
    /// `ca_file` as written (shown, never read again after load).
    pub ca_file: Option<PathBuf>,
    /// The DER certificates read from `ca_file` at load: trusted as roots in
    /// addition to the system's.
    pub ca_certs: Vec<Vec<u8>>,
}

#[derive(Debug)]
pub struct LogTarget {
    /// `None`: stdout.
    pub path: Option<PathBuf>,
}

/// When and how often a failed delivery is tried again.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    pub backoff: Backoff,
    /// ±20% on each delay.
    pub jitter: bool,
    /// Response statuses that are retried (connect errors and timeouts always are).
    pub retry_on: StatusSet,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Backoff {
    /// Delays after attempt 1, 2, …; `max_attempts` attempts in all. When
    /// `max_attempts` exceeds `delays.len() + 1` the last delay repeats.
    Schedule {
        delays: Vec<Duration>,
        max_attempts: u32,
    },
    /// `initial_delay * multiplier^(n-1)`, capped at `max_delay`.
    Exponential {
        max_attempts: u32,
        initial_delay: Duration,
        max_delay: Duration,
        multiplier: f64,
    },
}

/// A set of HTTP statuses, from entries like `429` or `"500-599"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusSet(pub Vec<RangeInclusive<u16>>);

impl StatusSet {
    pub fn contains(&self, status: u16) -> bool {
        self.0.iter().any(|r| r.contains(&status))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitBreaker {
    pub failures: u32,
    pub cooldown: Duration,
}
