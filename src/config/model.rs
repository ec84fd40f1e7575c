//! The validated, typed configuration: what the rest of hookgate reads.
//!
//! Everything here has already been checked by [`super::load`]: durations are
//! `Duration`s, addresses are `SocketAddr`s, regexes and templates are compiled,
//! and every target reference is an index into [`Config::targets`]. Nothing
//! downstream parses YAML or re-validates; if a value is in one of these structs,
//! it is usable as it is.
//!
//! This file holds the config as a whole, the server, queue and source
//! settings and the routes; `model/targets.rs` holds the targets (their
//! kinds, retry policy and breaker), re-exported here.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use regex::Regex;

use super::secret::{Secret, SigningKey};
use crate::templates::TemplateSet;

mod targets;

pub use targets::*;

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
    /// Request body bytes held in memory at once, all connections together.
    pub max_inflight_bytes: u64,
    /// The request line and headers of one request, in bytes.
    pub max_header_bytes: u64,
    /// Headers in one request.
    pub max_headers: usize,
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
