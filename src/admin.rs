//! The admin listener (`admin.listen`): probes and metrics.
//!
//! | path | answer |
//! |---|---|
//! | `GET /healthz` | 200 while the process runs |
//! | `GET /readyz` | 200 when the config is loaded and the queue is writable, else 503 |
//! | `GET /metrics` | Prometheus text exposition 0.0.4 |
//!
//! The `/admin/*` API of DESIGN.md section 8 will live here too.

use std::convert::Infallible;
use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use warp::{Filter, Reply};

use crate::error_body::error_response;
use crate::queue::DeliveryStore;

/// What the admin endpoints read.
pub struct Admin {
    pub store: Arc<dyn DeliveryStore>,
    pub metrics: Option<PrometheusHandle>,
}

pub fn filter(
    state: Arc<Admin>,
) -> impl Filter<Extract = (warp::reply::Response,), Error = Infallible> + Clone + Send + Sync + 'static
{
    let with_state = warp::any().map(move || state.clone());
    let healthz = warp::path!("healthz")
        .and(warp::get())
        .map(|| warp::reply::json(&serde_json::json!({"status": "ok"})).into_response());
    let readyz = warp::path!("readyz")
        .and(warp::get())
        .and(with_state.clone())
        .then(|state: Arc<Admin>| async move {
            match state.store.check_writable().await {
                Ok(()) => {
                    warp::reply::json(&serde_json::json!({"status": "ready"})).into_response()
                }
                Err(e) => error_response(
                    http::StatusCode::SERVICE_UNAVAILABLE,
                    "not_ready",
                    &e.to_string(),
                ),
            }
        });
    let metrics =
        warp::path!("metrics")
            .and(warp::get())
            .and(with_state)
            .map(|state: Arc<Admin>| {
                let body = state
                    .metrics
                    .as_ref()
                    .map(|h| h.render())
                    .unwrap_or_default();
                warp::reply::with_header(body, "content-type", "text/plain; version=0.0.4")
                    .into_response()
            });
    healthz
        .or(readyz)
        .unify()
        .or(metrics)
        .unify()
        .recover(|_rejection: warp::Rejection| async {
            Ok::<_, Infallible>(error_response(
                http::StatusCode::NOT_FOUND,
                "not_found",
                "no such admin endpoint",
            ))
        })
        .unify()
}
