//! `POST /admin/route?source=NAME`: the dry run of `hookgate route` inside
//! the server, on the live config, with the request body as the event
//! (DESIGN.md section 8). Nothing is stored or sent; the previews are the
//! ones `hookgate route` prints, secrets redacted the same way.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use http::StatusCode;
use serde_json::{Value, json};
use warp::Reply;
use warp::reply::Response;

use super::Admin;
use crate::error_body::error_response;
use crate::preview::{self, Preview, PreviewError, RouteOutcome};

/// Answer the dry run of `body`, as the source named by `?source=` (or the
/// only, or first, one) would route it.
pub async fn route(state: Arc<Admin>, query: HashMap<String, String>, body: Bytes) -> Response {
    let snapshot = state.live.load();
    let source = query.get("source").map(String::as_str);
    match preview::preview(&snapshot.config, &body, source) {
        Ok(p) => warp::reply::json(&answer(&p)).into_response(),
        Err(PreviewError::InvalidEvent(message)) => {
            error_response(StatusCode::BAD_REQUEST, "invalid_event", &message)
        }
        Err(e @ (PreviewError::UnknownSource(_) | PreviewError::NoSource)) => {
            error_response(StatusCode::BAD_REQUEST, "invalid_request", &e.to_string())
        }
    }
}

/// The section 8 shape: each route with whether it matched and why not, and
/// each delivery with what it would send; plus the schema warnings and the
/// targets that would get nothing (disabled), which the CLI shows too.
fn answer(p: &Preview) -> Value {
    let routes: Vec<Value> = p
        .routes
        .iter()
        .map(|r| {
            json!({
                "name": r.name,
                "matched": r.result == "matched",
                "reason": reason(r, p.stopped_by.as_deref()),
            })
        })
        .collect();
    let deliveries: Vec<Value> = p
        .deliveries
        .iter()
        .map(|d| {
            json!({
                "target": d.target,
                "kind": d.kind,
                "route": d.route,
                "preview": d.send,
            })
        })
        .collect();
    json!({
        "source": p.source,
        "routes": routes,
        "deliveries": deliveries,
        "unmatched": p.unmatched,
        "schema_warnings": p.schema_warnings,
        "skipped": p.skipped,
    })
}

/// Why a route did not match (`null` when it did).
fn reason(r: &RouteOutcome, stopped_by: Option<&str>) -> Value {
    match r.result {
        "matched" => Value::Null,
        "not_evaluated" => Value::String(match stopped_by {
            Some(by) => format!("not evaluated: route `{by}` matched first and has stop: true"),
            None => "not evaluated".to_owned(),
        }),
        _ if r.failed_keys.is_empty() => Value::String("no match".to_owned()),
        _ => Value::String(format!("failed: {}", r.failed_keys.join(" / "))),
    }
}
