//! Ingress: the webhook listener, the first half of the pipeline.
//!
//! ```text
//! conn (accept, caps, timing) -> filter (warp) -> handler:
//!   source lookup -> body -> verify -> rate limit -> decode -> route -> enqueue -> 202
//! ```
//!
//! - [`conn`]: the accept loop, `max_connections`, `read_timeout`, graceful stop;
//!   [`stream`]: JSON bodies for hyper's own refusals, lingering close.
//! - [`body`]: reading a body under `max_body_bytes` and the read deadline.
//! - [`budget`]: `max_inflight_bytes`, the body bytes held at once.
//! - [`dedupe`]: which requests count as the same event (section 3's key).
//! - [`handler`]: the steps above in DESIGN.md section 4's order.
//! - [`limits`]: the per-source rate limits, checked after the signature.
//! - [`error`]: every refusal and the one place it becomes an HTTP answer.
//!
//! Source paths are looked up in the live snapshot per request, so a reload
//! adds or removes paths without restarting the listener. Ingress never
//! imports `delivery` or `targets`.

pub(crate) mod body;
pub mod budget;
pub mod conn;
mod dedupe;
pub mod error;
mod handler;
pub mod limits;
mod stream;

use std::convert::Infallible;
use std::sync::Arc;

use warp::{Filter, Rejection, Reply};

use crate::clock::Clock;
use crate::queue::DeliveryStore;
use crate::snapshot::LiveConfig;
use conn::RequestStart;
use error::{IngressError, error_response};
use handler::Inbound;

/// What the webhook handler needs: the live config, the store, the clock,
/// and the sources' rate limiters (kept here, not in the snapshot, so a
/// reload can keep their budgets).
pub struct Ingress {
    pub live: LiveConfig,
    pub store: Arc<dyn DeliveryStore>,
    pub clock: Arc<dyn Clock>,
    pub limits: limits::SourceLimits,
    /// `server.max_inflight_bytes`, shared by every request.
    pub bodies: budget::BodyBudget,
}

/// The warp filter for every webhook request.
pub fn filter(
    state: Arc<Ingress>,
) -> impl Filter<Extract = (warp::reply::Response,), Error = Infallible> + Clone + Send + Sync + 'static
{
    warp::path::full()
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::method())
        .and(warp::header::headers_cloned())
        .and(warp::ext::optional::<RequestStart>())
        .and(warp::body::stream())
        .map(
            |path: warp::path::FullPath, query: String, method, headers, start, body| Inbound {
                target_len: path.as_str().len()
                    + if query.is_empty() { 0 } else { query.len() + 1 },
                path,
                method,
                headers,
                start,
                body,
            },
        )
        .and(warp::any().map(move || state.clone()))
        .and_then(handler::handle)
        .recover(recover)
        .unify()
}

/// The one place rejections become section 4 answers.
async fn recover(rejection: Rejection) -> Result<warp::reply::Response, Infallible> {
    if let Some(e) = rejection.find::<IngressError>() {
        return Ok(e.clone().into_response());
    }
    if rejection.is_not_found() {
        return Ok(IngressError::NotFound.into_response());
    }
    // Anything else is a bug in hookgate, not the client's doing; say little.
    tracing::error!(?rejection, "unexpected rejection");
    Ok(error_response(
        http::StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "internal error",
    )
    .into_response())
}
