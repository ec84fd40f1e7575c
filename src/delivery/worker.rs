//! One worker per target: claim due deliveries, attempt them under the
//! target's concurrency cap and rate limit, record each outcome.
//!
//! The worker claims only as many deliveries as it has free permits, so a dead
//! target holds at most `concurrency` deliveries in memory and never delays
//! another target's worker. A rate-limited target first takes a cell of its
//! budget ([`TargetLimits`]), then claims: its backlog waits in the store.
//! Before claiming the worker asks the target's [`Gate`]: an open circuit or
//! a `Retry-After` pause means nothing is claimed at all.
//! When nothing is due it sleeps until the earliest due time or until the
//! store signals new work — it never polls.
//!
//! The gate and the limits are the target's runtime state, built from its
//! config here; a reload would keep them and hand them the new settings
//! ([`Gate::set_settings`], [`TargetLimits::apply`]).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::attempt;
use super::gate::{Admission, Gate, Signal};
use super::limits::TargetLimits;
use crate::clock::Clock;
use crate::metrics;
use crate::queue::DeliveryStore;
use crate::snapshot::LiveConfig;
use crate::targets::Senders;

/// How long to back off after the store fails a claim.
const STORE_ERROR_BACKOFF: Duration = Duration::from_secs(1);
/// Longest sleep while idle; a safety net, not the wake-up mechanism.
const MAX_IDLE: Duration = Duration::from_secs(60);

/// What every worker shares.
pub struct WorkerContext {
    pub live: LiveConfig,
    pub store: Arc<dyn DeliveryStore>,
    pub senders: Arc<Senders>,
    pub clock: Arc<dyn Clock>,
}

/// Run the worker for `target` until `stop` is cancelled; attempts in flight
/// are left to the caller's deadline (see [`super::Dispatcher::shutdown`]).
pub async fn run(ctx: Arc<WorkerContext>, target: String, stop: CancellationToken) {
    let wake: Arc<Notify> = ctx.store.work_signal().subscribe(&target);
    let (concurrency, breaker, rate_limit) = {
        let snapshot = ctx.live.load();
        match snapshot.config.target_by_name(&target) {
            Some(t) => (t.concurrency, t.circuit_breaker, t.rate_limit),
            None => return,
        }
    };
    let permits = Arc::new(Semaphore::new(concurrency));
    let mut limits = TargetLimits::new(&target, rate_limit);
    let gate = Arc::new(TargetGate {
        gate: Mutex::new(Gate::new(breaker)),
        changed: Notify::new(),
    });
    metrics::circuit_open(&target, false);
    let mut attempts = JoinSet::new();
    loop {
        while attempts.try_join_next().is_some() {}
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            () = stop.cancelled() => break,
        };
        if limits.is_limited() {
            // A cell spent on a claim that finds nothing is budget lost:
            // take one only when something is due.
            match ctx.store.next_due(&target).await {
                Ok(Some(due)) if due <= ctx.clock.now_ms() => {}
                Ok(_) => {
                    drop(permit);
                    limits.went_idle();
                    idle(&ctx, &target, &wake, &stop).await;
                    continue;
                }
                Err(e) => {
                    tracing::error!(%target, error = %e, "cannot read the next due time");
                    drop(permit);
                    sleep_or_stop(STORE_ERROR_BACKOFF, &stop).await;
                    continue;
                }
            }
            if !limits.first_cell(&stop).await {
                break;
            }
        }
        let admission = gate.lock().admit(ctx.clock.now_ms());
        let limit = match admission {
            Admission::Open => limits.claim_size(permits.available_permits() + 1),
            Admission::Probe => 1,
            Admission::WaitUntil(until) => {
                // Paused or open: claim nothing, spend no attempts (a rate
                // cell taken above is spent: one each time we look again).
                drop(permit);
                tokio::select! {
                    () = ctx.clock.sleep_until(until) => {}
                    () = gate.changed.notified() => {}
                    () = stop.cancelled() => {}
                }
                continue;
            }
            Admission::WaitForProbe => {
                drop(permit);
                tokio::select! {
                    () = gate.changed.notified() => {}
                    () = stop.cancelled() => {}
                }
                continue;
            }
        };
        let claims = match ctx
            .store
            .claim_due(&target, ctx.clock.now_ms(), limit)
            .await
        {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(%target, error = %e, "cannot claim deliveries");
                if admission == Admission::Probe {
                    gate.lock().probe_unused();
                }
                drop(permit);
                sleep_or_stop(STORE_ERROR_BACKOFF, &stop).await;
                continue;
            }
        };
        limits.claimed(limit, claims.len());
        if claims.is_empty() {
            if admission == Admission::Probe {
                gate.lock().probe_unused();
            }
            drop(permit);
            idle(&ctx, &target, &wake, &stop).await;
            continue;
        }
        let mut permit = Some(permit);
        for claim in claims {
            let Some(p) = permit
                .take()
                .or_else(|| permits.clone().try_acquire_owned().ok())
            else {
                // Cannot happen (only this loop takes permits), but never lose a claim.
                let _ = ctx.store.release(claim.delivery_id, claim.lease).await;
                continue;
            };
            attempts.spawn(attempt::run(ctx.clone(), gate.clone(), claim, p));
        }
    }
    // Stopping: the attempts in flight finish (or are cut off by the caller).
    while attempts.join_next().await.is_some() {}
}

/// A target's [`Gate`], shared by its worker and its attempts.
pub struct TargetGate {
    gate: Mutex<Gate>,
    /// Notified when an outcome was recorded (a probe came back, a pause was set).
    changed: Notify,
}

impl TargetGate {
    fn lock(&self) -> std::sync::MutexGuard<'_, Gate> {
        self.gate
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Record one attempt's signal; log and export a change of the circuit.
    pub fn record(&self, target: &str, signal: Signal, now: i64) {
        let (changed, open) = {
            let mut gate = self.lock();
            let changed = gate.record(signal, now);
            (changed, gate.is_open())
        };
        if changed {
            metrics::circuit_open(target, open);
            if open {
                tracing::warn!(%target, "circuit opened: deliveries wait without spending attempts");
            } else {
                tracing::info!(%target, "circuit closed: the target answers again");
            }
        }
        self.changed.notify_one();
    }
}

/// Wait until the next due time, a new-work signal, or stop.
async fn idle(ctx: &WorkerContext, target: &str, wake: &Notify, stop: &CancellationToken) {
    let (due, cap) = match ctx.store.next_due(target).await {
        Ok(Some(due)) => (Some(due), MAX_IDLE),
        Ok(None) => (None, MAX_IDLE),
        Err(e) => {
            tracing::error!(%target, error = %e, "cannot read the next due time");
            (None, STORE_ERROR_BACKOFF)
        }
    };
    if due.is_some_and(|d| d <= ctx.clock.now_ms()) {
        return;
    }
    let until_due = async {
        match due {
            Some(d) => ctx.clock.sleep_until(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        () = until_due => {}
        () = tokio::time::sleep(cap) => {}
        () = wake.notified() => {}
        () = stop.cancelled() => {}
    }
}

async fn sleep_or_stop(d: Duration, stop: &CancellationToken) {
    tokio::select! {
        () = tokio::time::sleep(d) => {}
        () = stop.cancelled() => {}
    }
}
