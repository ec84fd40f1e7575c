//! Stage 2 of loading: walk the YAML tree once into a validated [`Config`].
//!
//! Each section has its own file; this one reads the document root, checks
//! `version`, ties the sections together (target references, unused-target
//! warnings) and assembles the [`Config`]. Every problem is collected in the
//! [`Ctx`]; if any is an error the result is a [`ConfigError`] holding all of
//! them (warnings included).

/// `(where, name, keys)` rows for [`key_lists`]: the name is the const's own
/// path as written, so a test can tie each `fields(…)` call to its row.
#[cfg(test)]
macro_rules! key_list_rows {
    ($($at:literal => $($list:ident)::+),* $(,)?) => {
        vec![$(($at, stringify!($($list)::+), $($list)::+)),*]
    };
}
#[cfg(test)]
use key_list_rows;

mod contradictions;
mod ctx;
mod keys;
mod payload_paths;
mod retry;
mod routes;
mod scalars;
mod server;
mod sources;
mod targets;
mod values;

#[cfg(test)]
mod tests;

use std::path::Path;

use sha2::{Digest, Sha256};

use super::model::{Config, DedupeConfig, Schema, Source, VerifyScheme};
use super::node::{self, Node, NodeValue};
use super::{ConfigError, LoadOptions, Loaded};
use ctx::{Ctx, Pos};

/// Where a map sits in the file, the name of its key list, and the keys.
#[cfg(test)]
type KeyList = (&'static str, &'static str, &'static [&'static str]);

/// Every map whose keys the loader checks, with the keys it accepts (the
/// lists its builders pass to [`Ctx::fields`], or check by hand for a
/// target's kind). docs/rules.md must document each key:
/// `tests::documented` holds it to that, and checks that every `fields(…)`
/// call in this module uses a list named here.
#[cfg(test)]
fn key_lists() -> Vec<KeyList> {
    let mut lists = key_list_rows![
        "" => TOP_KEYS,
        "server" => server::SERVER_KEYS,
        "admin" => server::ADMIN_KEYS,
        "queue" => server::QUEUE_KEYS,
        "dedupe" => server::DEDUPE_KEYS,
        "defaults" => retry::DEFAULTS_KEYS,
        "retry" => retry::RETRY_KEYS,
        "circuit_breaker" => retry::CIRCUIT_BREAKER_KEYS,
        "rate_limit" => values::RATE_LIMIT_KEYS,
        "sources[]" => sources::SOURCE_KEYS,
        "sources[].verify" => sources::VERIFY_KEYS,
        "routes[]" => routes::ROUTE_KEYS,
        "routes[].match.FIELD" => routes::OPERATORS,
    ];
    lists.extend(targets::key_lists());
    lists
}

const TOP_KEYS: &[&str] = &[
    "version",
    "server",
    "admin",
    "queue",
    "dedupe",
    "defaults",
    "sources",
    "targets",
    "routes",
    "unmatched",
];

pub(super) fn build(
    path: &Path,
    bytes: &[u8],
    options: &LoadOptions<'_>,
) -> Result<Loaded, ConfigError> {
    let mut cx = Ctx::new(path, options.allow_missing_env, options.lookup);
    let version = hex::encode(Sha256::digest(bytes));
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let (line, column) = line_col(bytes, e.valid_up_to());
            cx.error(
                Pos { line, column },
                "",
                "the config file is not valid UTF-8",
            );
            return Err(finish_err(cx));
        }
    };
    let root = match node::parse(text) {
        Ok(root) => root,
        Err(e) => {
            cx.error(
                Pos {
                    line: e.line,
                    column: e.column,
                },
                "",
                e.message,
            );
            return Err(finish_err(cx));
        }
    };
    let config = document(&mut cx, &root, path, version);
    // File order reads best; the sort is stable, so same-place problems keep walk order.
    cx.diagnostics.sort_by_key(|d| (d.line, d.column));
    match config {
        Some(config) if !cx.has_errors() => Ok(Loaded {
            config,
            warnings: cx.diagnostics,
        }),
        _ => Err(finish_err(cx)),
    }
}

fn finish_err(mut cx: Ctx<'_>) -> ConfigError {
    if !cx.has_errors() {
        cx.error(
            Pos { line: 0, column: 0 },
            "",
            "internal error: the config could not be built",
        );
    }
    ConfigError {
        diagnostics: cx.diagnostics,
    }
}

fn document(cx: &mut Ctx<'_>, root: &Node, path: &Path, version: String) -> Option<Config> {
    let empty = Node {
        value: NodeValue::Map(Vec::new()),
        line: root.line,
        column: root.column,
    };
    let root = if root.value == NodeValue::Null {
        &empty
    } else {
        root
    };
    let f = cx.fields(root, "", TOP_KEYS)?;
    match f.get("version") {
        Some(n) if n.value == NodeValue::Int(1) => {}
        Some(n) => cx.error_help(
            n,
            "version",
            "unsupported config version: expected `1`",
            "this build reads `version: 1`",
        ),
        None => cx.error_help(
            root,
            "version",
            "`version` is required",
            "add `version: 1` at the top of the file",
        ),
    }
    let server = server::server(cx, f.get("server"));
    let admin = server::admin(cx, f.get("admin"));
    let queue = server::queue(cx, f.get("queue"));
    let dedupe = server::dedupe(cx, f.get("dedupe"));
    let defaults = retry::defaults(cx, f.get("defaults"));
    let sources = sources::sources(cx, f.get("sources"), root);
    replay_window(cx, &dedupe, &sources, f.get("dedupe").unwrap_or(root));
    let outrival_keys = !sources.is_empty() && sources.iter().all(|s| s.schema == Schema::Outrival);
    let (targets, names) = targets::targets(cx, f.get("targets"), &defaults, outrival_keys);
    let mut resolver = routes::Resolver::new(&names, outrival_keys);
    let routes = resolver.routes(cx, f.get("routes"));
    let unmatched = resolver.unmatched(cx, f.get("unmatched"));
    for ((name, at), used) in names.iter().zip(&resolver.used) {
        if !used {
            cx.warn_help(
                *at,
                &ctx::child("targets", name),
                format!("target `{name}` is not used by any route"),
                "name it in a route's `targets` or in `unmatched`, or remove it",
            );
        }
    }
    if cx.has_errors() || targets.len() != names.len() {
        return None;
    }
    let templates = std::mem::take(&mut cx.templates);
    Some(Config::new(
        path.to_path_buf(),
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
    ))
}

/// A standard-webhooks source refuses timestamps more than 5 minutes off, so
/// a captured request can be replayed for 10 minutes; only a dedupe window
/// that long turns such a replay into a `200 duplicate`.
fn replay_window(cx: &mut Ctx<'_>, dedupe: &DedupeConfig, sources: &[Source], at: &Node) {
    const REPLAY_SPAN: std::time::Duration = std::time::Duration::from_secs(600);
    let Some(source) = sources
        .iter()
        .find(|s| s.verify.scheme == VerifyScheme::StandardWebhooks)
    else {
        return;
    };
    if dedupe.window < REPLAY_SPAN {
        cx.warn_help(
            at,
            "dedupe.window",
            format!(
                "source `{}` accepts timestamps up to 5 minutes off, but `dedupe.window` is shorter \
                 than 10m: a captured request replayed in that span is stored again",
                source.name
            ),
            "set `dedupe.window: 10m` (the default) or longer",
        );
    }
}

/// 1-based line and column of byte `offset`.
fn line_col(bytes: &[u8], offset: usize) -> (u64, u64) {
    let before = &bytes[..offset.min(bytes.len())];
    let line = before.iter().filter(|b| **b == b'\n').count() as u64 + 1;
    let start = before
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |i| i + 1);
    let column = String::from_utf8_lossy(&before[start..]).chars().count() as u64 + 1;
    (line, column)
}
