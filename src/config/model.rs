//! The validated, typed configuration: what the rest of hookgate reads.
//!
//! Everything here has already been checked by [`super::load`]: durations are
//! `Duration`s, addresses are `SocketAddr`s, regexes and templates are compiled,
//! and every target reference is an index into [`Config::targets`]. Nothing
//! downstream parses YAML or re-validates; if a value is in one of these structs,
//! it is usable as it is.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};
use regex::Regex;

use super::secret::{Secret, SigningKey};
use crate::templates::{JsonTemplate, TemplateRef, TemplateSet};

/// One loaded configuration file, fully validated.
#[derive(Debug)]
pub struct Config {
    /// The file this config was read from (as given on the command line).
    pub file: PathBuf,
    /// Lowercase hex sha256 of the file's bytes: the config "version".
    pub version: String,
    pub server: ServerConfig,
    pub admin: AdminConfig,
    pub queue: QueueConfig,
    pub dedupe: DedupeConfig,
    pub sources: Vec<Source>,
    /// Targets in file order. Routes refer to them by [`TargetId`].
    pub targets: Vec<Target>,
    /// Routes in file order.
    pub routes: Vec<Route>,
    /// Targets for events that no route matched.
    pub unmatched: Vec<TargetId>,
    /// Every template of every target, compiled once at load.
    pub templates: TemplateSet,
    target_index: HashMap<String, TargetId>,
}

impl Config {
    /// Assemble a config from validated parts; builds the name → id index.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        file: PathBuf,
        version: String,
        server: ServerConfig,
        admin: AdminConfig,
        queue: QueueConfig,
        dedupe: DedupeConfig,
        sources: Vec<Source>,
        targets: Vec<Target>,
        routes: Vec<Route>,
        unmatched: Vec<TargetId>,
        templates: TemplateSet,
    ) -> Self {
        let target_index = targets
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), TargetId(i)))
            .collect();
        Config {
            file,
            version,
            server,
            admin,
            queue,
            dedupe,
            sources,
            targets,
            routes,
            unmatched,
            templates,
            target_index,
        }
    }

    /// The target with this name, if the config has one.
    pub fn target_by_name(&self, name: &str) -> Option<&Target> {
        self.target_index.get(name).map(|id| &self.targets[id.0])
    }

    /// The target a [`TargetId`] of this config points at.
    pub fn target(&self, id: TargetId) -> &Target {
        &self.targets[id.0]
    }

    /// The source whose `path` is exactly `path`.
    pub fn source_by_path(&self, path: &str) -> Option<&Source> {
        self.sources.iter().find(|s| s.path == path)
    }
}

/// Index of a target in [`Config::targets`]; only meaningful for the config
/// that produced it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TargetId(pub usize);

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub max_body_bytes: u64,
    pub read_timeout: Duration,
    pub max_connections: usize,
    pub shutdown_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct AdminConfig {
    pub listen: SocketAddr,
    /// `None` when the token is absent or empty.
    pub token: Option<Secret>,
}

#[derive(Debug, Clone)]
pub enum QueueBackend {
    Sqlite { path: PathBuf },
    Redis { url: Secret, prefix: String },
}

#[derive(Debug, Clone)]
pub struct QueueConfig {
    pub backend: QueueBackend,
    pub retention: Duration,
    pub max_pending: u64,
    pub max_bytes: u64,
}

#[derive(Debug, Clone)]
pub struct DedupeConfig {
    /// `Duration::ZERO` turns dedupe off.
    pub window: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub per_second: u32,
    pub burst: u32,
}

#[derive(Debug)]
pub struct Source {
    pub name: String,
    /// URL path, starting with `/`.
    pub path: String,
    pub verify: VerifyConfig,
    pub schema: Schema,
    pub strict: bool,
    pub rate_limit: Option<RateLimit>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyScheme {
    /// `x-signature`: hex HMAC-SHA256 of the raw body.
    Outrival,
    /// `x-hub-signature-256: sha256=<hex>` of the raw body.
    Github,
    /// `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64>`
    /// over `id.timestamp.body`, within 5 minutes of now.
    StandardWebhooks,
    /// No verification (for trusted networks and tests).
    None,
}

impl VerifyScheme {
    /// The scheme's name as written in the file.
    pub fn name(self) -> &'static str {
        match self {
            VerifyScheme::Outrival => "outrival",
            VerifyScheme::Github => "github",
            VerifyScheme::StandardWebhooks => "standard-webhooks",
            VerifyScheme::None => "none",
        }
    }
}

#[derive(Debug)]
pub struct VerifyConfig {
    pub scheme: VerifyScheme,
    /// The keys of the non-empty secrets (decoded for `standard-webhooks`);
    /// any one may match. Empty for `scheme: none`.
    pub secrets: Vec<SigningKey>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    /// The OutRival event of DESIGN.md section 1.
    Outrival,
    /// Any JSON object.
    Json,
}

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
}

impl Target {
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

/// One routing rule.
#[derive(Debug)]
pub struct Route {
    pub name: String,
    pub condition: Condition,
    pub targets: Vec<TargetId>,
    pub stop: bool,
}

/// When a route matches.
#[derive(Debug)]
pub enum Condition {
    /// `match:` — every field test holds (an empty list always holds).
    All(Vec<FieldMatch>),
    /// `any:` — at least one of the maps holds in full.
    Any(Vec<Vec<FieldMatch>>),
}

/// The tests on one payload path, e.g. `data.endedReason: { in: [error] }`.
#[derive(Debug)]
pub struct FieldMatch {
    /// The key as written (`status`, `data.messages.0.role`).
    pub key: String,
    /// The resolved payload path (`status` becomes `["data", "status"]`).
    pub path: Vec<String>,
    /// Every test must hold.
    pub tests: Vec<FieldTest>,
}

/// One operator of the matcher language (DESIGN.md section 3, Matching).
#[derive(Debug)]
pub enum FieldTest {
    /// Scalar, list, `eq` or `in`: the field equals one of these.
    OneOf(Vec<serde_json::Value>),
    /// The field is absent, or equals none of these.
    NoneOf(Vec<serde_json::Value>),
    Prefix(String),
    Suffix(String),
    /// Substring of a string, or an element of an array.
    Contains(String),
    Regex(Regex),
    Exists(bool),
    Gt(f64),
    Gte(f64),
    Lt(f64),
    Lte(f64),
}
