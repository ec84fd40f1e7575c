//! The process-level sections: `server`, `admin`, `queue` and `dedupe`.
//! Each is optional; an absent (or `null`) section takes every default.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use super::super::model::{AdminConfig, DedupeConfig, QueueBackend, QueueConfig, ServerConfig};
use super::super::node::Node;
use super::super::secret::Secret;
use super::ctx::{Ctx, Fields, Problem};
use super::values::{duration, positive_duration, size, socket_addr};

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

pub(super) fn server(cx: &mut Ctx<'_>, node: Option<&Node>) -> ServerConfig {
    let mut out = ServerConfig {
        listen: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 8080)),
        max_body_bytes: 10 * MIB,
        read_timeout: Duration::from_secs(30),
        max_connections: 10_000,
        shutdown_timeout: Duration::from_secs(10),
        max_inflight_bytes: 256 * MIB,
        max_header_bytes: 64 * KIB,
        max_headers: 100,
    };
    let Some(f) = node.and_then(|n| cx.fields(n, "server", SERVER_KEYS)) else {
        return out;
    };
    if let Some(v) = f.opt(cx, "listen", socket_addr) {
        out.listen = v;
    }
    if let Some(v) = f.opt(cx, "max_body_bytes", size) {
        if v == 0 {
            if let Some(n) = f.get("max_body_bytes") {
                cx.error(n, &f.path("max_body_bytes"), "must be greater than 0");
            }
        } else {
            out.max_body_bytes = v;
        }
    }
    if let Some(v) = f.opt(cx, "read_timeout", positive_duration) {
        out.read_timeout = v;
    }
    if let Some(v) = f.opt(cx, "max_connections", |cx, n, p| cx.uint::<usize>(n, p, 1)) {
        out.max_connections = v;
    }
    if let Some(v) = f.opt(cx, "shutdown_timeout", duration) {
        out.shutdown_timeout = v;
    }
    if let Some(v) = f.opt(cx, "max_inflight_bytes", size) {
        out.max_inflight_bytes = v;
    }
    // Checked against the body limit whichever of the two was set: one
    // body at the limit must fit, or it could never be read.
    if out.max_inflight_bytes < out.max_body_bytes {
        let key = if f.get("max_inflight_bytes").is_some() {
            "max_inflight_bytes"
        } else {
            "max_body_bytes"
        };
        if let Some(n) = f.get(key) {
            cx.error(
                n,
                &f.path(key),
                format!(
                    "server.max_inflight_bytes ({}) must be at least server.max_body_bytes ({}): \
                     a body at the limit would never fit",
                    out.max_inflight_bytes, out.max_body_bytes
                ),
            );
        }
    }
    if let Some(v) = f.opt(cx, "max_header_bytes", size) {
        // hyper's read buffer cannot be smaller than 8 KiB.
        if v < 8 * KIB {
            if let Some(n) = f.get("max_header_bytes") {
                cx.error(n, &f.path("max_header_bytes"), "must be at least 8KiB");
            }
        } else {
            out.max_header_bytes = v;
        }
    }
    if let Some(v) = f.opt(cx, "max_headers", |cx, n, p| cx.uint::<usize>(n, p, 1)) {
        out.max_headers = v;
    }
    out
}

pub(super) const SERVER_KEYS: &[&str] = &[
    "listen",
    "max_body_bytes",
    "read_timeout",
    "max_connections",
    "shutdown_timeout",
    "max_inflight_bytes",
    "max_header_bytes",
    "max_headers",
];

pub(super) const ADMIN_KEYS: &[&str] = &["listen", "token"];
pub(super) const DEDUPE_KEYS: &[&str] = &["window"];

pub(super) fn admin(cx: &mut Ctx<'_>, node: Option<&Node>) -> AdminConfig {
    let mut out = AdminConfig {
        listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 9090)),
        token: None,
    };
    let Some(f) = node.and_then(|n| cx.fields(n, "admin", ADMIN_KEYS)) else {
        return out;
    };
    if let Some(v) = f.opt(cx, "listen", socket_addr) {
        out.listen = v;
    }
    out.token = f
        .opt(cx, "token", |cx, n, p| cx.string(n, p))
        .filter(|t| !t.is_empty())
        .map(Secret::new);
    out
}

pub(super) fn queue(cx: &mut Ctx<'_>, node: Option<&Node>) -> QueueConfig {
    let mut out = QueueConfig {
        backend: QueueBackend::Sqlite {
            path: PathBuf::from("./hookgate-data/queue.db"),
        },
        retention: Duration::from_secs(24 * 3600),
        max_pending: 10_000_000,
        max_bytes: 8 * GIB,
    };
    let Some(f) = node.and_then(|n| cx.fields(n, "queue", QUEUE_KEYS)) else {
        return out;
    };
    let backend = f
        .opt(cx, "backend", |cx, n, p| {
            cx.choice(n, p, &["sqlite", "redis"])
        })
        .unwrap_or("sqlite");
    out.backend = if backend == "redis" {
        only_for(cx, &f, &["path"], "sqlite");
        let url = f.req(cx, "url", redis_url);
        let prefix = f
            .opt(cx, "prefix", |cx, n, p| cx.string(n, p))
            .unwrap_or_else(|| "hookgate".to_owned());
        QueueBackend::Redis {
            url: url.unwrap_or_else(|| Secret::new("")),
            prefix,
        }
    } else {
        only_for(cx, &f, &["url", "prefix"], "redis");
        let path = f.opt(cx, "path", |cx, n, p| {
            cx.parse(n, p, |s| {
                if s.is_empty() {
                    Err(Problem::new("the queue path cannot be empty"))
                } else {
                    Ok(PathBuf::from(s))
                }
            })
        });
        QueueBackend::Sqlite {
            path: path.unwrap_or_else(|| PathBuf::from("./hookgate-data/queue.db")),
        }
    };
    if let Some(v) = f.opt(cx, "retention", duration) {
        out.retention = v;
    }
    if let Some(v) = f.opt(cx, "max_pending", |cx, n, p| cx.uint::<u64>(n, p, 1)) {
        out.max_pending = v;
    }
    let positive_size = |cx: &mut Ctx<'_>, n: &Node, p: &str| {
        let v = size(cx, n, p)?;
        if v == 0 {
            cx.error(n, p, "must be more than 0 (0 would refuse every event)");
            return None;
        }
        Some(v)
    };
    if let Some(v) = f.opt(cx, "max_bytes", positive_size) {
        out.max_bytes = v;
    }
    out
}

pub(super) const QUEUE_KEYS: &[&str] = &[
    "backend",
    "path",
    "url",
    "prefix",
    "retention",
    "max_pending",
    "max_bytes",
];

/// Keys of the other backend are errors.
fn only_for(cx: &mut Ctx<'_>, f: &Fields<'_>, keys: &[&str], backend: &str) {
    for key in keys {
        if let Some((k, _)) = f.entry(key) {
            cx.error_help(
                k,
                &f.path(key),
                format!("`{key}` is only valid with `backend: {backend}`"),
                format!("remove `{key}`, or set `backend: {backend}`"),
            );
        }
    }
}

/// The Redis URL is a secret (it may hold a password): never shown.
fn redis_url(cx: &mut Ctx<'_>, node: &Node, path: &str) -> Option<Secret> {
    cx.parse(node, path, |s| match reqwest::Url::parse(s) {
        Ok(u) if matches!(u.scheme(), "redis" | "rediss" | "redis+unix" | "unix") => {
            Ok(Secret::new(s))
        }
        Ok(_) => Err(Problem::new(
            "the Redis URL must start with `redis://` or `rediss://`",
        )),
        Err(_) => Err(
            Problem::new("invalid Redis URL (value not shown: it may hold a password)")
                .help("write it as `redis://[:password@]host[:port][/db]`"),
        ),
    })
}

pub(super) fn dedupe(cx: &mut Ctx<'_>, node: Option<&Node>) -> DedupeConfig {
    let mut out = DedupeConfig {
        window: Duration::from_secs(600),
    };
    if let Some(f) = node.and_then(|n| cx.fields(n, "dedupe", DEDUPE_KEYS))
        && let Some(v) = f.opt(cx, "window", duration)
    {
        out.window = v;
    }
    out
}
