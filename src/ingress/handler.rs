//! The webhook handler: one request through the first half of the pipeline.
//!
//! head size (431) → source lookup (404/405) → body under limit and deadline
//! (413/408), with room in `max_inflight_bytes` (503) → verify (401/403) →
//! source rate limit (429) → decode (400) → route → enqueue (durable) → 202.
//! The order is DESIGN.md section 4's (which leaves the 431 and the memory
//! bound unplaced: a head too large is refused before anything reads it, and
//! room for a body is reserved before its first byte is read); nothing here
//! does network I/O beyond answering, and the store call is the only await
//! that can take long.

use std::sync::Arc;

use bytes::{Buf, Bytes};
use futures_util::Stream;
use http::{HeaderMap, Method};
use serde::Serialize;
use uuid::Uuid;
use warp::Reply;
use warp::reply::Response;

use super::Ingress;
use super::body::read_limited;
use super::conn::RequestStart;
use super::dedupe::dedupe_key;
use super::error::IngressError;
use crate::event::{DecodeError, decode};
use crate::metrics::{self, RequestOutcome};
use crate::queue::{Backlog, Enqueued, NewDelivery, NewEvent, OrderKey, StoreError, ordering_path};
use crate::rules::{UNMATCHED_ROUTE, lane_key};

/// How long a client is asked to wait when the queue cannot take the event.
const QUEUE_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(5);

/// The inbound request, as the warp filter extracted it.
pub struct Inbound<S> {
    pub path: warp::path::FullPath,
    /// The length of the request target (path and query).
    pub target_len: usize,
    pub method: Method,
    pub headers: HeaderMap,
    pub start: Option<RequestStart>,
    pub body: S,
}

#[derive(Serialize)]
struct Accepted<'a> {
    id: Uuid,
    routes: Vec<&'a str>,
    deliveries: Vec<AcceptedDelivery<'a>>,
}

#[derive(Serialize)]
struct AcceptedDelivery<'a> {
    target: &'a str,
    id: Uuid,
}

/// Handle one request to a webhook path; errors become section 4 answers in
/// the filter's `recover`.
pub async fn handle<S, B>(
    inbound: Inbound<S>,
    state: Arc<Ingress>,
) -> Result<Response, warp::Rejection>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let snapshot = state.live.load_full();
    let config = &snapshot.config;
    // hyper's read buffer bounds a head only roughly (one read may bring in
    // more than its limit): the exact limit is checked here, first.
    let limit = config.server.max_header_bytes;
    if head_bytes(&inbound) > limit {
        let e = IngressError::HeadersTooLarge { limit };
        metrics::request("", e.outcome());
        return Err(warp::reject::custom(e));
    }
    let Some(source) = config.source_by_path(inbound.path.as_str()) else {
        metrics::request("", RequestOutcome::NotFound);
        return Err(warp::reject::custom(IngressError::NotFound));
    };
    match accept(inbound, &state, &snapshot, source).await {
        Ok((response, outcome)) => {
            metrics::request(&source.name, outcome);
            Ok(response)
        }
        Err(e) => {
            metrics::request(&source.name, e.outcome());
            tracing::debug!(source = %source.name, error = %e, "request refused");
            Err(warp::reject::custom(e))
        }
    }
}

/// The request line and headers as sent: `METHOD TARGET HTTP/1.1\r\n` and
/// `name: value\r\n` each (the query is part of the target).
fn head_bytes<S>(inbound: &Inbound<S>) -> u64 {
    let line = inbound.method.as_str().len() + inbound.target_len + " HTTP/1.1\r\n".len() + 1;
    let headers: usize = inbound
        .headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + ": \r\n".len())
        .sum();
    (line + headers) as u64
}

async fn accept<S, B>(
    inbound: Inbound<S>,
    state: &Ingress,
    snapshot: &crate::snapshot::Snapshot,
    source: &crate::config::Source,
) -> Result<(Response, RequestOutcome), IngressError>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let config = &snapshot.config;
    if inbound.method != Method::POST {
        return Err(IngressError::MethodNotAllowed);
    }

    let server = &config.server;
    let start = inbound.start.map_or_else(std::time::Instant::now, |s| s.0);
    let deadline = tokio::time::Instant::from_std(start) + server.read_timeout;
    let content_length = inbound
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    // `_hold` keeps the body's share of max_inflight_bytes until it is stored.
    let (body, _hold): (Bytes, _) = read_limited(
        inbound.body,
        content_length,
        server.max_body_bytes,
        deadline,
        server.read_timeout,
        Some(&state.bodies),
    )
    .await?;

    // One reading of the clock: the Standard Webhooks tolerance is checked
    // against the same instant the event is stamped with.
    let received_at_ms = state.clock.now_ms();
    crate::verify::verify(&source.verify, &inbound.headers, &body, received_at_ms)?;
    // Only authentic requests spend the source's budget.
    state.limits.check(&source.name)?;

    let event =
        decode(&body, source.schema, source.strict, &snapshot.fields).map_err(|e| match e {
            DecodeError::InvalidJson(m) => IngressError::InvalidJson(m),
            DecodeError::InvalidEvent(m) => IngressError::InvalidEvent(m),
        })?;
    let outcome = if event.schema_issues.is_empty() {
        RequestOutcome::Accepted
    } else {
        tracing::warn!(
            source = %source.name,
            issues = ?event.schema_issues,
            "accepted an event that does not fit its schema"
        );
        RequestOutcome::SchemaWarning
    };

    let decision = snapshot.plan.route(config, &event.value);
    let event_id = Uuid::now_v7();
    let deliveries: Vec<NewDelivery> = decision
        .deliveries
        .iter()
        .map(|d| {
            let target = config.target(d.target);
            NewDelivery {
                id: Uuid::now_v7(),
                target: target.name.clone(),
                route: d
                    .route
                    .map_or(UNMATCHED_ROUTE, |r| config.routes[r].name.as_str())
                    .to_owned(),
                order: target.ordering.as_ref().map(|o| OrderKey {
                    path: ordering_path(&o.path),
                    value: lane_key(&event.value, &o.path),
                }),
            }
        })
        .collect();
    let new_event = NewEvent {
        id: event_id,
        source: source.name.clone(),
        received_at_ms,
        dedupe: dedupe_key(config, source, &inbound.headers, &body, received_at_ms),
        limits: Some(Backlog {
            deliveries: config.queue.max_pending,
            bytes: config.queue.max_bytes,
        }),
        body,
        deliveries,
    };
    // What the 202 names: each delivery's id and its target (borrowed from
    // the config, so the stored records need not be copied).
    let accepted: Vec<AcceptedDelivery<'_>> = decision
        .deliveries
        .iter()
        .zip(&new_event.deliveries)
        .map(|(planned, stored)| AcceptedDelivery {
            target: &config.target(planned.target).name,
            id: stored.id,
        })
        .collect();
    let enqueued = state.store.enqueue(new_event).await.map_err(|e| {
        tracing::error!(source = %source.name, error = %e, "could not store an event; answered 503");
        match e {
            StoreError::Unavailable(_) | StoreError::Open(_) | StoreError::InvalidCursor => {
                IngressError::QueueUnavailable {
                    retry_after: QUEUE_RETRY_AFTER,
                }
            }
        }
    })?;
    match enqueued {
        Enqueued::Stored => {}
        Enqueued::Duplicate(first) => {
            tracing::debug!(source = %source.name, event_id = %first, "duplicate event: answered 200");
            let body = serde_json::json!({ "id": first, "duplicate": true });
            return Ok((
                warp::reply::json(&body).into_response(),
                RequestOutcome::Duplicate,
            ));
        }
        Enqueued::Full => {
            tracing::warn!(
                source = %source.name,
                "queue is full (queue.max_pending / queue.max_bytes); answered 503"
            );
            return Err(IngressError::QueueFull {
                retry_after: QUEUE_RETRY_AFTER,
            });
        }
    }

    let routes: Vec<&str> = decision
        .matched
        .iter()
        .map(|&r| config.routes[r].name.as_str())
        .collect();
    for route in &routes {
        metrics::event_routed(route);
    }
    if decision.matched.is_empty() && !accepted.is_empty() {
        metrics::event_routed(UNMATCHED_ROUTE);
    }
    tracing::debug!(
        source = %source.name,
        %event_id,
        routes = ?routes,
        deliveries = accepted.len(),
        "event accepted"
    );
    let body = Accepted {
        id: event_id,
        routes,
        deliveries: accepted,
    };
    let response = warp::reply::with_status(warp::reply::json(&body), http::StatusCode::ACCEPTED)
        .into_response();
    Ok((response, outcome))
}
