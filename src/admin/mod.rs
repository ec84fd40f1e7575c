//! The admin listener (`admin.listen`): probes, metrics and the admin API.
//!
//! | path | answer |
//! |---|---|
//! | `GET /healthz` | 200 while the process runs |
//! | `GET /readyz` | 200 when the config is loaded and the queue is writable, else 503 |
//! | `GET /metrics` | Prometheus text exposition 0.0.4 |
//! | `GET /admin/config` | the loaded config, secrets redacted, and the last reload error |
//! | `GET /admin/targets` | each target: depth by state, oldest unfinished delivery, circuit, rate limit, recent outcomes |
//! | `POST /admin/reload` | reload the config file now: 200 `{"version"}` or 422 `invalid_config` |
//! | `GET /admin/deliveries` | deliveries, newest first; `state`, `target`, `event_id`, `limit`, `cursor` |
//! | `GET /admin/deliveries/{id}` | one delivery with every attempt and its event |
//! | `POST /admin/deliveries/{id}/replay` | replay one dead or delivered delivery |
//! | `POST /admin/dead-letters/replay` | `?target=` or `?all=true` |
//! | `DELETE /admin/dead-letters` | `?target=` or `?all=true` |
//! | `POST /admin/route` | dry-run the body as an event (`?source=`): routes, deliveries, previews |
//! | `GET /ui/` | the operator console ([`console`]): a page that uses only the API above |
//!
//! `/admin/*` needs `Authorization: Bearer <admin.token>` when a token is set
//! (compared in constant time); on a non-loopback listener with no token it
//! answers 403 `admin_token_required`. Probes, `/metrics` and the console's
//! files stay open (the console asks for the token and sends it to the API).

mod config_view;
mod console;
mod deliveries;
mod dry_run;
mod overview;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http::{HeaderMap, StatusCode};
use metrics_exporter_prometheus::PrometheusHandle;
use subtle::ConstantTimeEq;
use warp::reply::Response;
use warp::{Filter, Reply};

use crate::clock::Clock;
use crate::delivery::activity::Activity;
use crate::error_body::error_response;
use crate::metrics::{self, NameLabel};
use crate::queue::DeliveryStore;
use crate::reload::{ReloadError, ReloadHandle, Trigger};
use crate::rules::UNMATCHED_ROUTE;
use crate::snapshot::{LiveConfig, Snapshot};

/// What the admin endpoints read.
pub struct Admin {
    pub store: Arc<dyn DeliveryStore>,
    pub metrics: Option<PrometheusHandle>,
    pub live: LiveConfig,
    pub clock: Arc<dyn Clock>,
    /// The address the admin listener is bound to (loopback or not).
    pub listen: SocketAddr,
    /// Asks the reload task to reload, and reads its last error.
    pub reload: ReloadHandle,
    /// What each target did lately (`GET /admin/targets`).
    pub activity: Arc<Activity>,
}

pub fn filter(
    state: Arc<Admin>,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static {
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
                Err(e) => {
                    error_response(StatusCode::SERVICE_UNAVAILABLE, "not_ready", &e.to_string())
                }
            }
        });
    let metrics = warp::path!("metrics")
        .and(warp::get())
        .and(with_state.clone())
        .then(|state: Arc<Admin>| async move {
            let snapshot = state.live.load_full();
            overview::publish_oldest_waiting(&state, &snapshot).await;
            let body = state
                .metrics
                .as_ref()
                .map(|h| render_metrics(h, &snapshot))
                .unwrap_or_default();
            warp::reply::with_header(body, "content-type", "text/plain; version=0.0.4")
                .into_response()
        });

    let query = warp::query::<HashMap<String, String>>();
    let config = warp::path!("config")
        .and(warp::get())
        .and(with_state.clone())
        .map(|state: Arc<Admin>| {
            let last_error = state.reload.status().last_error();
            warp::reply::json(&config_view::render(
                &state.live.load(),
                last_error.as_ref(),
            ))
            .into_response()
        });
    let targets = warp::path!("targets")
        .and(warp::get())
        .and(with_state.clone())
        .then(overview::targets);
    let reload = warp::path!("reload")
        .and(warp::post())
        .and(with_state.clone())
        .then(reload);
    let list = warp::path!("deliveries")
        .and(warp::get())
        .and(with_state.clone())
        .and(query)
        .then(deliveries::list);
    let detail = warp::path!("deliveries" / String)
        .and(warp::get())
        .and(with_state.clone())
        .then(|id, state| deliveries::detail(state, id));
    let replay = warp::path!("deliveries" / String / "replay")
        .and(warp::post())
        .and(with_state.clone())
        .then(|id, state| deliveries::replay(state, id));
    let replay_dead = warp::path!("dead-letters" / "replay")
        .and(warp::post())
        .and(with_state.clone())
        .and(query)
        .then(deliveries::replay_dead);
    let purge_dead = warp::path!("dead-letters")
        .and(warp::delete())
        .and(with_state.clone())
        .and(query)
        .then(deliveries::purge_dead);
    let dry_run = warp::path!("route")
        .and(warp::post())
        .and(with_state.clone())
        .and(query)
        .and(warp::header::optional::<u64>("content-length"))
        .and(warp::body::stream())
        .then(dry_run::route);
    let api = config
        .or(targets)
        .unify()
        .or(reload)
        .unify()
        .or(list)
        .unify()
        .or(detail)
        .unify()
        .or(replay)
        .unify()
        .or(replay_dead)
        .unify()
        .or(purge_dead)
        .unify()
        .or(dry_run)
        .unify();
    let admin = warp::path("admin")
        .and(with_state)
        .and(warp::header::headers_cloned())
        .and_then(|state: Arc<Admin>, headers: HeaderMap| async move {
            authorize(&state, &headers).map_err(warp::reject::custom)
        })
        .untuple_one()
        .and(api);

    healthz
        .or(readyz)
        .unify()
        .or(metrics)
        .unify()
        .or(console::filter())
        .unify()
        .or(admin)
        .unify()
        .recover(recover)
        .unify()
}

/// `/metrics`: the series of what the running config names (and those no
/// name labels), so a reload that removes a target, route or source ends its
/// series.
fn render_metrics(handle: &PrometheusHandle, snapshot: &Snapshot) -> String {
    let config = &snapshot.config;
    metrics::render_configured(handle, |label, name| match label {
        // Requests to no source path are counted with an empty source.
        NameLabel::Source => name.is_empty() || config.sources.iter().any(|s| s.name == name),
        NameLabel::Route => name == UNMATCHED_ROUTE || config.routes.iter().any(|r| r.name == name),
        NameLabel::Target => config.target_by_name(name).is_some(),
    })
}

/// `POST /admin/reload`: reload through the same path as the file watcher
/// and SIGHUP, and answer with its outcome.
async fn reload(state: Arc<Admin>) -> Response {
    match state.reload.reload(Trigger::Admin).await {
        Ok(version) => {
            warp::reply::json(&serde_json::json!({ "version": version })).into_response()
        }
        Err(ReloadError::Invalid(message)) => {
            error_response(StatusCode::UNPROCESSABLE_ENTITY, "invalid_config", &message)
        }
        Err(e @ ReloadError::Stopped) => error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            &e.to_string(),
        ),
    }
}

/// Why an `/admin/*` request was refused before routing.
#[derive(Debug, Clone, Copy)]
enum Denied {
    /// No token configured, and the listener is not loopback: 403.
    TokenRequired,
    /// Missing or wrong bearer token: 401.
    BadToken,
}

impl warp::reject::Reject for Denied {}

async fn recover(rejection: warp::Rejection) -> Result<Response, Infallible> {
    if let Some(denied) = rejection.find::<Denied>() {
        return Ok(match denied {
            Denied::TokenRequired => error_response(
                StatusCode::FORBIDDEN,
                "admin_token_required",
                "set admin.token to use /admin/* on a non-loopback listener",
            ),
            Denied::BadToken => {
                let mut r = error_response(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "send Authorization: Bearer <admin.token>",
                );
                r.headers_mut().insert(
                    http::header::WWW_AUTHENTICATE,
                    http::HeaderValue::from_static("Bearer"),
                );
                r
            }
        });
    }
    if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        return Ok(error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this admin endpoint does not take that method",
        ));
    }
    Ok(error_response(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such admin endpoint",
    ))
}

/// Check the bearer token (or refuse a token-less non-loopback listener).
fn authorize(state: &Admin, headers: &HeaderMap) -> Result<(), Denied> {
    let snapshot = state.live.load();
    let Some(token) = &snapshot.config.admin.token else {
        if state.listen.ip().is_loopback() {
            return Ok(());
        }
        return Err(Denied::TokenRequired);
    };
    let given = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if bool::from(given.as_bytes().ct_eq(token.expose().as_bytes())) {
        Ok(())
    } else {
        Err(Denied::BadToken)
    }
}
