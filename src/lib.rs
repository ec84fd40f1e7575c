//! hookgate: a rule-based webhook gateway.
//!
//! A provider POSTs signed events; hookgate verifies them, routes them by YAML
//! rules, stores them durably, and delivers them re-signed to each target,
//! retrying until they land. DESIGN.md is the contract; this is the map.
//!
//! # Layout (data flows one way, top to bottom)
//!
//! | module | job |
//! |---|---|
//! | [`config`] | YAML → validated, typed [`config::Config`] (leaf, pure) |
//! | [`templates`] | minijinja environment, filters, render context (leaf) |
//! | [`signing`] | HMAC sign/verify and header formats (leaf, pure) |
//! | [`metrics`] | metric names and typed helpers (leaf) |
//! | [`clock`] | wall-clock milliseconds behind a trait (leaf) |
//! | [`rate_limit`] | a GCRA limiter built from a `rate_limit` (leaf) |
//! | `panics` | the text of a caught panic, for the log line that reports it (leaf) |
//! | [`verify`] | inbound source verification, built on `signing` (pure) |
//! | [`event`] | decoding a verified body: JSON object, depth, schema (pure) |
//! | [`rules`] | routes compiled into a [`rules::RoutePlan`]; event → deliveries (pure) |
//! | [`snapshot`] | the live config: `Config` + `RoutePlan`, swapped atomically |
//! | [`queue`] | the [`queue::DeliveryStore`] trait; its SQLite and Redis backends; ordered targets' lanes |
//! | [`ingress`] | the webhook listener: verify → decode → route → enqueue → 202 |
//! | [`targets`] | sending one attempt: http, slack, email, log |
//! | [`delivery`] | per-target workers: claim → attempt → record, retry policy; a target's ordering told to the store |
//! | [`preview`] | `hookgate route`: one event's routes and rendered deliveries, sent nowhere |
//! | [`rule_tests`] | `hookgate test`: cases of events and expectations, run through `preview` |
//! | [`reload`] | hot reload: the one writer of the snapshot; file watch, SIGHUP |
//! | [`admin`] | `/healthz`, `/readyz`, `/metrics`, the admin API (its dry run uses `preview`; `/admin/targets` reads `delivery::activity`), the console at `/ui/` |
//!
//! `ingress` never imports `delivery` or `targets`; `delivery` never imports
//! `ingress`; `queue` never imports either. Only this file, `main.rs` and
//! [`reload`] (which retunes both on a new config) wire them together: [`run`]
//! is the whole server.

pub mod admin;
pub mod clock;
pub mod config;
pub mod delivery;
mod error_body;
pub mod event;
pub mod ingress;
pub mod metrics;
mod panics;
pub mod preview;
pub mod queue;
pub mod rate_limit;
pub mod reload;
pub mod rule_tests;
pub mod rules;
pub mod signing;
pub mod snapshot;
pub mod targets;
pub mod templates;
pub mod verify;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::clock::{Clock, SystemClock};
use crate::config::{Config, QueueBackend};
use crate::delivery::Dispatcher;
use crate::delivery::activity::Activity;
use crate::delivery::circuit_board::{CircuitBoard, RedisBoard};
use crate::delivery::worker::WorkerContext;
use crate::ingress::conn::{self, ConnLimits};
use crate::queue::DeliveryStore;
use crate::queue::redis::RedisStore;
use crate::queue::sqlite::SqliteStore;
use crate::rate_limit::redis::RedisBudgets;
use crate::rate_limit::{CellBudgets, LocalBudgets};
use crate::snapshot::Snapshot;
use crate::targets::Senders;

/// Limits for the admin listener (not configurable: it serves probes).
const ADMIN_LIMITS: ConnLimits = ConnLimits {
    max_connections: 256,
    read_timeout: std::time::Duration::from_secs(10),
    max_header_bytes: 64 * 1024,
    max_headers: 100,
};

/// The two listeners, bound by the caller (port 0 in tests).
pub struct Listeners {
    pub ingress: TcpListener,
    pub admin: TcpListener,
}

impl Listeners {
    /// Bind `server.listen` and `admin.listen`.
    pub async fn bind(config: &Config) -> Result<Listeners, RunError> {
        let ingress = TcpListener::bind(config.server.listen)
            .await
            .map_err(|e| RunError::Bind(format!("server.listen {}: {e}", config.server.listen)))?;
        let admin = TcpListener::bind(config.admin.listen)
            .await
            .map_err(|e| RunError::Bind(format!("admin.listen {}: {e}", config.admin.listen)))?;
        Ok(Listeners { ingress, admin })
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot listen on {0}")]
    Bind(String),
    #[error(transparent)]
    Store(#[from] queue::StoreError),
    #[error(transparent)]
    Senders(#[from] targets::SenderError),
}

/// The store a config asks for, and what the replicas that share it share
/// beside the queue: targets' rate-limit budgets and circuit state.
pub struct Backend {
    pub store: Arc<dyn DeliveryStore>,
    pub budgets: Arc<dyn CellBudgets>,
    pub board: Option<Arc<dyn CircuitBoard>>,
}

/// Open the backend a config asks for: SQLite (this process alone, its
/// limits and breakers in memory) or Redis (shared by replicas).
pub async fn open_backend(config: &Config) -> Result<Backend, RunError> {
    match &config.queue.backend {
        QueueBackend::Sqlite { path } => Ok(Backend {
            store: Arc::new(SqliteStore::open(path)?),
            budgets: Arc::new(LocalBudgets),
            board: None,
        }),
        QueueBackend::Redis { url, prefix } => {
            let store = RedisStore::connect(url.expose(), prefix).await?;
            tracing::info!(%prefix, durability = %store.durability(), "queue on Redis");
            let conn = store.connection();
            Ok(Backend {
                budgets: Arc::new(RedisBudgets::new(conn.clone(), prefix)),
                board: Some(Arc::new(RedisBoard::new(conn, prefix))),
                store: Arc::new(store),
            })
        }
    }
}

/// Run hookgate until `shutdown` resolves, then stop gracefully: stop
/// accepting, let requests and delivery attempts in flight finish within
/// `server.shutdown_timeout`, and leave everything else queued.
pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    run_with_clock(config, listeners, shutdown, Arc::new(SystemClock)).await
}

/// [`run`] on a given clock (tests pass a [`clock::ManualClock`] to move
/// retry schedules along without waiting).
pub async fn run_with_clock(
    config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
    clock: Arc<dyn Clock>,
) -> Result<(), RunError> {
    // Before the store opens: it publishes the depth it counts from the file.
    let metrics = metrics::install();
    let Backend {
        store,
        budgets,
        board,
    } = open_backend(&config).await?;
    let senders = Arc::new(Senders::new()?);
    let drain = config.server.shutdown_timeout;
    let limits = ConnLimits {
        max_connections: config.server.max_connections,
        read_timeout: config.server.read_timeout,
        max_header_bytes: usize::try_from(config.server.max_header_bytes).unwrap_or(usize::MAX),
        max_headers: config.server.max_headers,
    };
    let max_inflight_bytes = config.server.max_inflight_bytes;
    let source_limits = ingress::limits::SourceLimits::new(&config.sources);
    let config_path = config.file.clone();
    let (live, writer) = snapshot::live(Snapshot::new(config, clock.now_ms()));
    let stop = CancellationToken::new();

    let ingress_state = Arc::new(ingress::Ingress {
        live: live.clone(),
        store: store.clone(),
        clock: clock.clone(),
        limits: source_limits,
        bodies: ingress::budget::BodyBudget::new(max_inflight_bytes),
    });
    let activity = Arc::new(Activity::new(clock.clone()));
    let dispatcher = Dispatcher::start(WorkerContext {
        live: live.clone(),
        store: store.clone(),
        senders,
        clock: clock.clone(),
        budgets,
        board,
        activity: activity.clone(),
    });
    // From here on only the reload task writes the snapshot or retunes the
    // workers; it hands the dispatcher back at shutdown.
    let (reloader, reload_handle) = reload::reloader(
        config_path.clone(),
        writer,
        dispatcher,
        ingress_state.clone(),
        clock.clone(),
    );
    let reload_task = tokio::spawn(reloader.run(stop.clone()));
    let sighup_task = reload::watch::on_sighup(reload_handle.clone(), stop.clone());
    let _file_watch = reload::watch::watch_config_dir(&config_path, reload_handle.clone())
        .inspect_err(|e| {
            tracing::warn!(
                "cannot watch {} for changes; reload with SIGHUP or POST /admin/reload: {e}",
                config_path.display()
            );
        })
        .ok();

    let ingress_addr = local_addr(&listeners.ingress);
    let admin_listen = listeners
        .admin
        .local_addr()
        .map_err(|e| RunError::Bind(format!("admin.listen: {e}")))?;
    let ingress_task = tokio::spawn(conn::serve(
        listeners.ingress,
        warp::service(ingress::filter(ingress_state)),
        limits,
        stop.clone(),
        drain,
    ));
    let admin_state = Arc::new(admin::Admin {
        store: store.clone(),
        metrics,
        live: live.clone(),
        clock: clock.clone(),
        listen: admin_listen,
        reload: reload_handle,
        activity,
    });
    let admin_addr = admin_listen.to_string();
    let admin_task = tokio::spawn(conn::serve(
        listeners.admin,
        warp::service(admin::filter(admin_state)),
        ADMIN_LIMITS,
        stop.clone(),
        drain,
    ));
    tracing::info!(listen = %ingress_addr, admin = %admin_addr, "hookgate is running");

    shutdown.await;
    tracing::info!(
        "shutting down: no longer accepting; finishing requests and deliveries in flight"
    );
    stop.cancel();
    // A reload under way finishes first; then the workers drain.
    let drain_deliveries = async {
        match reload_task.await {
            Ok(dispatcher) => dispatcher.shutdown(drain).await,
            Err(e) => tracing::error!("the reload task ended abnormally: {e}"),
        }
    };
    let (_, _, (), _) = tokio::join!(ingress_task, admin_task, drain_deliveries, sighup_task);
    if let Err(e) = store.close().await {
        tracing::warn!(error = %e, "closing the queue");
    }
    tracing::info!("stopped");
    Ok(())
}

fn local_addr(listener: &TcpListener) -> String {
    listener
        .local_addr()
        .map_or_else(|_| "?".to_owned(), |a| a.to_string())
}
