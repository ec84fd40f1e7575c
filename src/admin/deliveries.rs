//! `/admin/deliveries` and `/admin/dead-letters`: inspect, replay and purge
//! (DESIGN.md section 8, with exactly its shapes).

use std::collections::HashMap;
use std::sync::Arc;

use http::StatusCode;
use serde::Serialize;
use serde_json::Value;
use warp::Reply;
use warp::reply::Response;

use super::Admin;
use crate::clock::format_rfc3339_ms;
use crate::error_body::error_response;
use crate::queue::{
    DeliveryDetail, DeliveryId, DeliveryQuery, DeliveryRecord, DeliveryState, ReplayResult,
    StoreError,
};

/// `limit` when none is given, and the most one page holds.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

/// A delivery as the API shows it.
#[derive(Serialize)]
struct DeliveryView<'a> {
    id: String,
    event_id: String,
    target: &'a str,
    route: &'a str,
    state: &'static str,
    dead_reason: Option<&'static str>,
    attempt_count: u32,
    next_attempt_at: Option<String>,
    last_error: Option<&'a str>,
    created_at: String,
    updated_at: String,
}

impl<'a> From<&'a DeliveryRecord> for DeliveryView<'a> {
    fn from(r: &'a DeliveryRecord) -> Self {
        DeliveryView {
            id: r.id.to_string(),
            event_id: r.event_id.to_string(),
            target: &r.target,
            route: &r.route,
            state: r.state.as_str(),
            dead_reason: r.dead_reason.map(|d| d.as_str()),
            attempt_count: r.attempt_count,
            next_attempt_at: r.next_attempt_at_ms.map(format_rfc3339_ms),
            last_error: r.last_error.as_deref(),
            created_at: format_rfc3339_ms(r.created_at_ms),
            updated_at: format_rfc3339_ms(r.updated_at_ms),
        }
    }
}

#[derive(Serialize)]
struct AttemptView<'a> {
    n: u32,
    at: String,
    status: Option<u16>,
    error: Option<&'a str>,
    duration_ms: u64,
    response_excerpt: Option<&'a str>,
}

#[derive(Serialize)]
struct DetailView<'a> {
    #[serde(flatten)]
    delivery: DeliveryView<'a>,
    attempts: Vec<AttemptView<'a>>,
    event: Value,
    /// Its key's text, when it was stored for an ordered target.
    #[serde(skip_serializing_if = "Option::is_none")]
    order_key: Option<&'a str>,
    /// The head of its key it waits behind, while it waits.
    #[serde(skip_serializing_if = "Option::is_none")]
    waiting_for: Option<String>,
}

fn detail_view(d: &DeliveryDetail) -> DetailView<'_> {
    DetailView {
        delivery: DeliveryView::from(&d.record),
        attempts: d
            .attempts
            .iter()
            .map(|(n, a)| AttemptView {
                n: *n,
                at: format_rfc3339_ms(a.at_ms),
                status: a.status,
                error: a.error.as_deref(),
                duration_ms: a.duration_ms,
                response_excerpt: a.response_excerpt.as_deref(),
            })
            .collect(),
        // Stored bodies are verified JSON objects, read as ingress read them
        // (128 levels deep is allowed; serde_json alone stops at 127);
        // anything else is shown as text.
        event: crate::event::decode(
            &d.event_body,
            crate::config::Schema::Json,
            false,
            &crate::event::FieldSet::everything(),
        )
        .map(|decoded| decoded.value)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&d.event_body).into_owned())),
        order_key: d.order_key.as_deref(),
        waiting_for: d.waiting_for.map(|id| id.to_string()),
    }
}

fn invalid(message: &str) -> Response {
    error_response(StatusCode::BAD_REQUEST, "invalid_request", message)
}

fn not_found() -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        "not_found",
        "no delivery with this id",
    )
}

pub(super) fn store_error(e: &StoreError) -> Response {
    match e {
        StoreError::InvalidCursor => error_response(
            StatusCode::BAD_REQUEST,
            "invalid_cursor",
            "the cursor is not one this server returned",
        ),
        other => error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "queue_unavailable",
            &other.to_string(),
        ),
    }
}

/// `GET /admin/deliveries?state=&target=&event_id=&limit=&cursor=`
pub async fn list(state: Arc<Admin>, params: HashMap<String, String>) -> Response {
    let mut query = DeliveryQuery {
        limit: DEFAULT_LIMIT,
        ..DeliveryQuery::default()
    };
    for (key, value) in &params {
        match key.as_str() {
            "state" => match value.parse::<DeliveryState>() {
                Ok(s) => query.state = Some(s),
                Err(_) => {
                    return invalid(
                        "state must be one of pending, in_flight, retrying, dead, delivered",
                    );
                }
            },
            "target" => query.target = Some(value.clone()),
            "event_id" => match value.parse() {
                Ok(id) => query.event_id = Some(id),
                Err(_) => return invalid("event_id must be a UUID"),
            },
            "limit" => match value.parse::<usize>() {
                Ok(n) => query.limit = n.clamp(1, MAX_LIMIT),
                Err(_) => return invalid("limit must be a positive whole number"),
            },
            "cursor" => query.cursor = Some(value.clone()),
            other => return invalid(&format!("unknown query parameter `{other}`")),
        }
    }
    match state.store.list(query).await {
        Ok(page) => {
            let deliveries: Vec<DeliveryView<'_>> =
                page.deliveries.iter().map(DeliveryView::from).collect();
            warp::reply::json(&serde_json::json!({
                "deliveries": deliveries,
                "next": page.next,
            }))
            .into_response()
        }
        Err(e) => store_error(&e),
    }
}

/// `GET /admin/deliveries/{id}`
pub async fn detail(state: Arc<Admin>, id: String) -> Response {
    let Ok(id) = id.parse::<DeliveryId>() else {
        return not_found();
    };
    match state.store.delivery(id).await {
        Ok(Some(d)) => warp::reply::json(&detail_view(&d)).into_response(),
        Ok(None) => not_found(),
        Err(e) => store_error(&e),
    }
}

/// `POST /admin/deliveries/{id}/replay`
pub async fn replay(state: Arc<Admin>, id: String) -> Response {
    let Ok(id) = id.parse::<DeliveryId>() else {
        return not_found();
    };
    match state.store.replay(id, state.clock.now_ms()).await {
        Ok(ReplayResult::Replayed(record)) => {
            warp::reply::json(&DeliveryView::from(&*record)).into_response()
        }
        Ok(ReplayResult::NotFound) => not_found(),
        Ok(ReplayResult::NotReplayable(s)) => error_response(
            StatusCode::CONFLICT,
            "not_replayable",
            &format!("only dead or delivered deliveries can be replayed; this one is {s}"),
        ),
        Err(e) => store_error(&e),
    }
}

/// Which dead letters a bulk operation takes.
enum Scope {
    Target(String),
    All,
}

/// `?target=NAME` or `?all=true`; `None` for anything else.
fn bulk_scope(params: &HashMap<String, String>) -> Option<Scope> {
    match (params.get("target"), params.get("all").map(String::as_str)) {
        (Some(t), None) if !t.is_empty() => Some(Scope::Target(t.clone())),
        (None, Some("true")) => Some(Scope::All),
        _ => None,
    }
}

fn scope_required() -> Response {
    invalid("give either ?target=NAME or ?all=true")
}

impl Scope {
    fn target(&self) -> Option<&str> {
        match self {
            Scope::Target(t) => Some(t),
            Scope::All => None,
        }
    }
}

/// `POST /admin/dead-letters/replay?target=|all=true`
pub async fn replay_dead(state: Arc<Admin>, params: HashMap<String, String>) -> Response {
    let Some(scope) = bulk_scope(&params) else {
        return scope_required();
    };
    match state
        .store
        .replay_dead(scope.target(), state.clock.now_ms())
        .await
    {
        Ok(n) => warp::reply::json(&serde_json::json!({ "replayed": n })).into_response(),
        Err(e) => store_error(&e),
    }
}

/// `DELETE /admin/dead-letters?target=|all=true`
pub async fn purge_dead(state: Arc<Admin>, params: HashMap<String, String>) -> Response {
    let Some(scope) = bulk_scope(&params) else {
        return scope_required();
    };
    match state.store.purge_dead(scope.target()).await {
        Ok(n) => warp::reply::json(&serde_json::json!({ "purged": n })).into_response(),
        Err(e) => store_error(&e),
    }
}
