//! `GET /admin/targets`: every configured target at a glance, for the
//! console's overview and for a person with `curl`.
//!
//! Beside each target's settings that matter when it misbehaves (enabled,
//! rate limit), it puts what the store knows (depth by state, the oldest
//! unfinished delivery) and what this process saw lately
//! ([`crate::delivery::activity`]: attempts delivered and failed, rate-limit
//! waits, the circuit). The store's part is shared by every replica; the
//! activity part is this replica's own.

use std::sync::Arc;

use serde_json::{Value, json};
use warp::Reply;
use warp::reply::Response;

use super::Admin;
use super::deliveries::store_error;
use crate::clock::format_rfc3339_ms;
use crate::config::Target;
use crate::delivery::activity::{Recent, WINDOW_SECONDS};
use crate::queue::{BlockedKeys, DeliveryState, TargetQueue};

pub async fn targets(state: Arc<Admin>) -> Response {
    let snapshot = state.live.load_full();
    let targets = &snapshot.config.targets;
    let names = targets.iter().map(|t| t.name.clone()).collect();
    let queues = match state.store.target_queues(names).await {
        Ok(queues) => queues,
        Err(e) => return store_error(&e),
    };
    let now_ms = state.clock.now_ms();
    let mut rows: Vec<Value> = Vec::with_capacity(targets.len());
    for (target, queue) in targets.iter().zip(queues) {
        let activity = state.activity.get(&target.name);
        let circuit_open = activity.as_ref().is_some_and(|a| a.circuit_open());
        let recent = activity.map(|a| a.recent()).unwrap_or_default();
        let mut row = row(target, &queue, circuit_open, recent, now_ms);
        if let Some(ordering) = &target.ordering {
            let blocked = match state.store.blocked_keys(&target.name, BLOCKED_SHOWN).await {
                Ok(blocked) => blocked,
                Err(e) => return store_error(&e),
            };
            row["ordering"] = ordering_view(&ordering.key, &blocked);
        }
        rows.push(row);
    }
    warp::reply::json(&json!({ "window_seconds": WINDOW_SECONDS, "targets": rows })).into_response()
}

/// How many blocked keys of an ordered target the overview lists.
const BLOCKED_SHOWN: usize = 20;

/// An ordered target's lanes: how many keys wait behind a head, and the
/// oldest of those heads.
fn ordering_view(key: &str, blocked: &BlockedKeys) -> Value {
    let heads: Vec<Value> = blocked
        .keys
        .iter()
        .map(|k| {
            json!({
                "key": k.key,
                "head": k.head.to_string(),
                "head_state": k.head_state.as_str(),
                "head_attempts": k.head_attempts,
                "head_next_attempt_at": k.head_next_attempt_at_ms.map(format_rfc3339_ms),
                "head_last_error": k.head_last_error,
                "waiting": k.waiting,
            })
        })
        .collect();
    json!({ "key": key, "blocked_keys": blocked.blocked, "blocked": heads })
}

/// Set `hookgate_queue_oldest_waiting_age_seconds` for every configured
/// target, and `hookgate_queue_blocked_keys` for every ordered one, from the
/// store, just before `/metrics` is rendered (a scrape is the only reader,
/// so they are read when asked for, not kept up to date). A store that
/// cannot answer leaves the gauges as they were.
pub async fn publish_oldest_waiting(state: &Admin, snapshot: &crate::snapshot::Snapshot) {
    let targets = &snapshot.config.targets;
    let names = targets.iter().map(|t| t.name.clone()).collect();
    let Ok(queues) = state.store.target_queues(names).await else {
        return;
    };
    let now_ms = state.clock.now_ms();
    for (target, queue) in targets.iter().zip(queues) {
        crate::metrics::queue_oldest_waiting_age(
            &target.name,
            age_seconds(&queue, now_ms).unwrap_or(0.0),
        );
        if target.ordering.is_some()
            && let Ok(blocked) = state.store.blocked_keys(&target.name, 0).await
        {
            crate::metrics::queue_blocked_keys(&target.name, blocked.blocked);
        }
    }
}

/// How long ago the oldest unfinished delivery was accepted.
fn age_seconds(queue: &TargetQueue, now_ms: i64) -> Option<f64> {
    queue
        .oldest_waiting_ms
        .map(|at| now_ms.saturating_sub(at).max(0) as f64 / 1000.0)
}

fn row(
    target: &Target,
    queue: &TargetQueue,
    circuit_open: bool,
    recent: Recent,
    now_ms: i64,
) -> Value {
    let depth: serde_json::Map<String, Value> = DeliveryState::ALL
        .iter()
        .map(|s| (s.as_str().to_owned(), json!(queue.count(*s))))
        .collect();
    json!({
        "name": target.name,
        "ordering": Value::Null,
        "kind": target.kind_name(),
        "enabled": target.enabled,
        "depth": depth,
        "oldest_waiting_at": queue.oldest_waiting_ms.map(format_rfc3339_ms),
        "oldest_waiting_age_seconds": age_seconds(queue, now_ms),
        "circuit": if circuit_open { "open" } else { "closed" },
        "rate_limit": target
            .rate_limit
            .map(|r| json!({ "per_second": r.per_second, "burst": r.burst })),
        "recent": {
            "delivered": recent.delivered,
            "failed": recent.failed,
            "rate_limited": recent.rate_limited,
        },
    })
}
