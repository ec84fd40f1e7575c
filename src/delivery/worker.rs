//! One worker per target: claim due deliveries, attempt them under the
//! target's concurrency cap and rate limit, record each outcome.
//!
//! The worker claims only as many deliveries as it has free permits, so a dead
//! target holds at most `concurrency` deliveries in memory and never delays
//! another target's worker. In the order of DESIGN.md section 2, the worker
//! first asks the target's [`Gate`] (an open circuit or a `Retry-After` pause
//! means nothing is claimed and no budget spent), then a rate-limited target
//! takes a cell of its budget ([`TargetLimits`]), then it claims: the backlog
//! waits in the store.
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
use super::limits::{Cell, TargetLimits};
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
        // The breaker first (DESIGN.md section 2): while the circuit is open
        // or a `Retry-After` pause holds, nothing is claimed and no rate
        // budget is spent.
        let mut admission = gate.lock().admit(ctx.clock.now_ms());
        if wait_at_gate(admission, &gate, &ctx, &stop).await {
            continue; // the permit is dropped: look again
        }
        if limits.is_limited() {
            // A cell spent on a claim that finds nothing is budget lost:
            // take one only when something is due.
            let due = match ctx.store.next_due(&target).await {
                Ok(due) => due.is_some_and(|d| d <= ctx.clock.now_ms()),
                Err(e) => {
                    tracing::error!(%target, error = %e, "cannot read the next due time");
                    if admission == Admission::Probe {
                        gate.lock().probe_unused();
                    }
                    sleep_or_stop(STORE_ERROR_BACKOFF, &stop).await;
                    continue;
                }
            };
            if !due {
                if admission == Admission::Probe {
                    gate.lock().probe_unused();
                }
                drop(permit);
                limits.went_idle();
                idle(&ctx, &target, &wake, &stop).await;
                continue;
            }
            match limits.first_cell(&stop).await {
                Cell::Stopped => {
                    if admission == Admission::Probe {
                        gate.lock().probe_unused();
                    }
                    break;
                }
                Cell::Ready => {}
                // A 429 pause or an open circuit may have begun while we
                // waited: ask again (the cell is spent either way).
                Cell::AfterWait if admission == Admission::Open => {
                    admission = gate.lock().admit(ctx.clock.now_ms());
                    if wait_at_gate(admission, &gate, &ctx, &stop).await {
                        continue;
                    }
                }
                Cell::AfterWait => {}
            }
        }
        let limit = match admission {
            Admission::Probe => 1,
            _ => limits.claim_size(permits.available_permits() + 1),
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

/// When the gate holds the target (paused, open, or a probe out), wait until
/// it may change and return true: claim nothing, spend no attempts.
async fn wait_at_gate(
    admission: Admission,
    gate: &TargetGate,
    ctx: &WorkerContext,
    stop: &CancellationToken,
) -> bool {
    match admission {
        Admission::Open | Admission::Probe => false,
        Admission::WaitUntil(until) => {
            tokio::select! {
                () = ctx.clock.sleep_until(until) => {}
                () = gate.changed.notified() => {}
                () = stop.cancelled() => {}
            }
            true
        }
        Admission::WaitForProbe => {
            tokio::select! {
                () = gate.changed.notified() => {}
                () = stop.cancelled() => {}
            }
            true
        }
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
