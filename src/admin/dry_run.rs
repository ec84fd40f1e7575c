//! `POST /admin/route?source=NAME`: the dry run of `hookgate route` inside
//! the server, on the live config, with the request body as the event
//! (DESIGN.md section 8). Nothing is stored or sent; the previews are the
//! ones `hookgate route` prints, secrets redacted the same way.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Buf;
use futures_util::Stream;
use http::StatusCode;
use serde_json::{Value, json};
use warp::Reply;
use warp::reply::Response;

use super::Admin;
use crate::config::{Config, SignatureScheme, TargetKind};
use crate::error_body::error_response;
use crate::ingress::body::read_limited;
use crate::preview::{self, Preview, PreviewError, RouteOutcome};

const REDACTED: &str = "<redacted>";

/// Answer the dry run of the request's body, as the source named by
/// `?source=` (optional when the config has one source) would route it. The
/// body is read as the webhook listener reads one: under the live
/// `server.max_body_bytes` and `read_timeout`, with or without a length.
pub async fn route<S, B>(
    state: Arc<Admin>,
    query: HashMap<String, String>,
    content_length: Option<u64>,
    body: S,
) -> Response
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let snapshot = state.live.load();
    let server = &snapshot.config.server;
    let deadline = tokio::time::Instant::now() + server.read_timeout;
    let body = match read_limited(
        body,
        content_length,
        server.max_body_bytes,
        deadline,
        server.read_timeout,
        // The admin listener's few connections (ADMIN_LIMITS) bound it.
        None,
    )
    .await
    {
        Ok((body, _)) => body,
        Err(e) => return e.into_response(),
    };
    let source = query.get("source").map(String::as_str);
    if source.is_none() && snapshot.config.sources.len() > 1 {
        let names: Vec<&str> = snapshot
            .config
            .sources
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        return error_response(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            &format!(
                "the config has several sources: name one with ?source= ({})",
                names.join(", ")
            ),
        );
    }
    match preview::preview(&snapshot.config, &body, source) {
        Ok(p) => warp::reply::json(&answer(&snapshot.config, &p)).into_response(),
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
fn answer(config: &Config, p: &Preview) -> Value {
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
                "ordering": d.ordering,
                "preview": without_signature(config, &d.target, json!(d.send)),
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

/// A preview with the target's signature header redacted. `hookgate route`
/// prints the real signature (its user holds the secret anyway); over the
/// API it would sign any body the caller chose with the target's secret, a
/// forgery service for whoever can reach the admin listener.
fn without_signature(config: &Config, target: &str, mut preview: Value) -> Value {
    let Some(TargetKind::Http(http)) = config.target_by_name(target).map(|t| &t.kind) else {
        return preview;
    };
    let signature = match http.signature.scheme {
        SignatureScheme::Outrival => http.signature.header.as_str(),
        SignatureScheme::StandardWebhooks => "webhook-signature",
    };
    if let Some(headers) = preview.get_mut("headers").and_then(Value::as_array_mut) {
        for pair in headers {
            if pair.get(0).and_then(Value::as_str) == Some(signature)
                && let Some(value) = pair.get_mut(1)
            {
                *value = Value::String(REDACTED.to_owned());
            }
        }
    }
    preview
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
