//! `targets`: the named destinations, in file order. This file reads the keys
//! every kind shares (and the tiny `log` kind); each other kind has its own file.

mod email;
mod http;
mod slack;

use std::path::PathBuf;

use super::super::model::{LogTarget, OrderingKey, RateLimit, Target, TargetKind};
use super::super::node::{Key, Node};
use super::ctx::{Ctx, Fields, Pos, Problem, child};
use super::payload_paths::{payload_path, warn_unless_outrival};
use super::retry::{Defaults, circuit_breaker, target_retry};
use super::values::{NAME_HELP, is_valid_name, positive_duration, rate_limit};

const KINDS: &[&str] = &["http", "slack", "email", "log"];
const COMMON_KEYS: &[&str] = &[
    "kind",
    "enabled",
    "timeout",
    "rate_limit",
    "concurrency",
    "retry",
    "circuit_breaker",
    "ordering",
];
const LOG_KEYS: &[&str] = &["path"];
const ORDERING_KEYS: &[&str] = &["key"];

/// The key lists of this module and its kinds, for [`super::key_lists`].
#[cfg(test)]
pub(super) fn key_lists() -> Vec<super::KeyList> {
    super::key_list_rows![
        "targets.NAME" => COMMON_KEYS,
        "targets.NAME (http)" => http::KEYS,
        "targets.NAME.signature" => http::SIGNATURE_KEYS,
        "targets.NAME (slack)" => slack::KEYS,
        "targets.NAME (email)" => email::KEYS,
        "targets.NAME.smtp" => email::SMTP_KEYS,
        "targets.NAME (log)" => LOG_KEYS,
        "targets.NAME.ordering" => ORDERING_KEYS,
    ]
}

/// Every target name written in the file, valid or not, in file order with the
/// position of its key: references are checked against these.
pub(super) type TargetNames = Vec<(String, Pos)>;

/// The most targets one file may have (each runs a worker).
pub(super) const MAX_TARGETS: usize = 1_000;

pub(super) fn targets(
    cx: &mut Ctx<'_>,
    node: Option<&Node>,
    defaults: &Defaults,
    outrival_keys: bool,
) -> (Vec<Target>, TargetNames) {
    let mut built = Vec::new();
    let mut names = Vec::new();
    let Some(map) = node.and_then(|n| cx.any_map(n, "targets")) else {
        return (built, names);
    };
    if let Some(n) = node
        && map.entries.len() > MAX_TARGETS
    {
        let many = map.entries.len();
        cx.error(
            n,
            "targets",
            format!("{many} targets is more than the {MAX_TARGETS} one file may have"),
        );
    }
    for (key, value) in map.entries {
        // YAML rejects repeated keys, but `1` and `"1"` are different keys.
        if names.iter().any(|(n, _)| *n == key.name) {
            cx.error(
                key,
                &child("targets", &key.name),
                format!("duplicate target name `{}`", key.name),
            );
        }
        names.push((key.name.clone(), Pos::from(key)));
        if let Some(t) = target(cx, key, value, defaults, outrival_keys) {
            built.push(t);
        }
    }
    (built, names)
}

fn target(
    cx: &mut Ctx<'_>,
    key: &Key,
    node: &Node,
    defaults: &Defaults,
    outrival_keys: bool,
) -> Option<Target> {
    let path = child("targets", &key.name);
    if !is_valid_name(&key.name) {
        cx.error_help(
            key,
            &path,
            format!("invalid target name `{}`", key.name),
            NAME_HELP,
        );
    }
    let f = cx.any_map(node, &path)?;
    let kind = f.req(cx, "kind", |cx, n, p| cx.choice(n, p, KINDS));
    let kind_keys: Vec<&str> = match kind {
        Some("http") => http::KEYS.to_vec(),
        Some("slack") => slack::KEYS.to_vec(),
        Some("email") => email::KEYS.to_vec(),
        Some("log") => LOG_KEYS.to_vec(),
        // Unknown kind: accept any kind's keys so only the kind is reported.
        _ => [http::KEYS, slack::KEYS, email::KEYS, LOG_KEYS].concat(),
    };
    let allowed: Vec<&str> = COMMON_KEYS.iter().copied().chain(kind_keys).collect();
    for (k, _) in f.entries {
        if !allowed.contains(&k.name.as_str()) {
            cx.unknown_key(k, &path, &allowed);
        }
    }

    let enabled = f
        .opt(cx, "enabled", |cx, n, p| cx.bool(n, p))
        .unwrap_or(true);
    let timeout = f
        .opt(cx, "timeout", positive_duration)
        .unwrap_or(defaults.timeout);
    let own_rate_limit = f.opt(cx, "rate_limit", rate_limit);
    let concurrency = f
        .opt(cx, "concurrency", |cx, n, p| cx.uint::<usize>(n, p, 1))
        .unwrap_or(16);
    let retry = target_retry(cx, f.get("retry"), &f.path("retry"), &defaults.retry);
    let circuit_breaker = match f.get("circuit_breaker") {
        Some(n) => circuit_breaker(cx, n, &f.path("circuit_breaker"), defaults.circuit_breaker),
        None => defaults.circuit_breaker,
    };
    let ordering = f.opt(cx, "ordering", |cx, n, p| ordering(cx, n, p, outrival_keys));

    let (kind, rate_limit) = match kind? {
        "http" => (TargetKind::Http(http::http(cx, &f)?), own_rate_limit),
        "slack" => (
            TargetKind::Slack(slack::slack(cx, &f)?),
            // Slack's own limit for incoming webhooks.
            Some(own_rate_limit.unwrap_or(RateLimit {
                per_second: 1,
                burst: 1,
            })),
        ),
        "email" => (TargetKind::Email(email::email(cx, &f)?), own_rate_limit),
        _ => (TargetKind::Log(log(cx, &f)), own_rate_limit),
    };
    Some(Target {
        name: key.name.clone(),
        enabled,
        kind,
        timeout,
        rate_limit,
        concurrency,
        retry,
        circuit_breaker,
        ordering,
    })
}

/// `ordering: { key: PATH }`. With `outrival_keys` (every source is
/// `schema: outrival`), a path that is not a field of that event is warned of.
fn ordering(cx: &mut Ctx<'_>, node: &Node, path: &str, outrival_keys: bool) -> Option<OrderingKey> {
    let f = cx.fields(node, path, ORDERING_KEYS)?;
    let key_node = f.required(cx, "key")?;
    let key_path = f.path("key");
    let written = cx.string(key_node, &key_path)?;
    let parts = payload_path(cx, Pos::from(key_node), &key_path, &written, "ordering key")?;
    if outrival_keys {
        warn_unless_outrival(cx, Pos::from(key_node), &key_path, &parts);
    }
    Some(OrderingKey {
        key: written,
        path: parts,
    })
}

fn log(cx: &mut Ctx<'_>, f: &Fields<'_>) -> LogTarget {
    LogTarget {
        path: f
            .opt(cx, "path", |cx, n, p| cx.string(n, p))
            .filter(|p| !p.is_empty())
            .map(PathBuf::from),
    }
}

/// `url`, `webhook_url` and `to` are never templates: say so rather than
/// sending `{{ … }}` literally.
fn not_a_template(value: &str, key: &str) -> Option<Problem> {
    (value.contains("{{") || value.contains("{%")).then(|| {
        Problem::new(format!("`{key}` is not a template"))
            .help("only bodies, texts, subjects and blocks are templates")
    })
}
