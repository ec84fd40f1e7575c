//! A target's runtime: what outlives one config of it.
//!
//! Built from the target's config when it first appears (or is enabled), a
//! [`TargetRuntime`] holds the target's [`TargetGate`] (circuit breaker and
//! `Retry-After` pause), its concurrency [`Semaphore`], the rate limit its
//! worker's [`TargetLimits`] follows, and the
//! stop token of its worker. A reload that changes the target retunes these
//! in place ([`TargetRuntime::retune`]); one that leaves it alone touches
//! nothing, so a rate limit keeps its budget and a breaker its state
//! (STYLE.md habit 11).
//!
//! The worker runs under a supervisor (`supervise`): a worker that panics is logged and
//! started again for its target, keeping its limits and its attempts in
//! flight (STYLE.md habit 13).

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::activity::TargetActivity;
use super::circuit_board::CircuitBoard;
use super::gate::{Admission, Gate, Signal};
use super::hand_off::HandOffLane;
use super::limits::TargetLimits;
use super::worker::{self, Attempts};
use super::{WorkerContext, dead_letter_removed};
use crate::config::{CircuitBreaker, RateLimit, Target};
use crate::metrics;
use crate::panics::panic_message;

/// How long a panicked worker waits before it is started again (so a worker
/// that panics at once does not spin).
const RESTART_PAUSE: Duration = Duration::from_secs(1);

/// The settings of a target that its runtime follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub concurrency: usize,
    pub breaker: CircuitBreaker,
    pub rate_limit: Option<RateLimit>,
}

impl Settings {
    pub fn of(target: &Target) -> Settings {
        Settings {
            concurrency: target.concurrency,
            breaker: target.circuit_breaker,
            rate_limit: target.rate_limit,
        }
    }
}

/// What the worker and its attempts share with the dispatcher.
pub struct TargetShared {
    pub name: String,
    pub gate: TargetGate,
    /// One permit per attempt in flight; resized by [`TargetRuntime::retune`].
    pub permits: Arc<Semaphore>,
    /// Notified by [`TargetRuntime::retune`]: a worker that set permits aside
    /// for hand-offs gives them back and looks at its limits again.
    pub retuned: Notify,
    /// Its recent outcomes and circuit state, for the admin overview.
    pub activity: Arc<TargetActivity>,
}

/// One running target, as the dispatcher holds it.
pub struct TargetRuntime {
    settings: Settings,
    shared: Arc<TargetShared>,
    /// The rate limit the worker's `TargetLimits` follows.
    rate_limit: watch::Sender<Option<RateLimit>>,
    stop: CancellationToken,
}

impl TargetRuntime {
    /// Build the runtime of `target` and spawn its supervised worker into
    /// `tasks`. `stop` is the dispatcher's token; the runtime stops with it.
    pub fn start(
        ctx: &Arc<WorkerContext>,
        target: &Target,
        stop: &CancellationToken,
        tasks: &mut JoinSet<()>,
    ) -> TargetRuntime {
        let settings = Settings::of(target);
        let activity = ctx.activity.target(&target.name);
        activity.set_circuit_open(false);
        let shared = Arc::new(TargetShared {
            name: target.name.clone(),
            gate: TargetGate::new(
                &target.name,
                settings.breaker,
                ctx.board.clone(),
                activity.clone(),
            ),
            permits: Arc::new(Semaphore::new(settings.concurrency)),
            retuned: Notify::new(),
            activity,
        });
        metrics::circuit_open(&target.name, false);
        let (rate_limit, follows) = watch::channel(settings.rate_limit);
        let stop = stop.child_token();
        tasks.spawn(supervise(
            ctx.clone(),
            shared.clone(),
            follows,
            stop.clone(),
        ));
        TargetRuntime {
            settings,
            shared,
            rate_limit,
            stop,
        }
    }

    /// Stop claiming; the attempts in flight finish, then the worker ends.
    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// Take the target's new settings, keeping every state that did not
    /// change: the breaker keeps its circuit, an unchanged rate limit its
    /// budget, and permits held by attempts in flight stay held.
    pub fn retune(&mut self, new: Settings, tasks: &mut JoinSet<()>) {
        let old = self.settings;
        if new == old {
            return;
        }
        let name = &self.shared.name;
        if new.breaker != old.breaker {
            self.shared.gate.lock().set_settings(new.breaker);
        }
        if new.rate_limit != old.rate_limit {
            // The worker applies it before its next claim.
            self.rate_limit.send_replace(new.rate_limit);
        }
        if new.concurrency > old.concurrency {
            self.shared
                .permits
                .add_permits(new.concurrency - old.concurrency);
        } else if new.concurrency < old.concurrency {
            let owed = old.concurrency - new.concurrency;
            let rest = owed - self.shared.permits.forget_permits(owed);
            if rest > 0 {
                // Permits held by attempts in flight: retire them as they come
                // back. A later growth pays this debt first, so the count stays right.
                let permits = self.shared.permits.clone();
                let stop = self.stop.clone();
                let rest = u32::try_from(rest).unwrap_or(u32::MAX);
                tasks.spawn(async move {
                    tokio::select! {
                        p = permits.acquire_many_owned(rest) => {
                            if let Ok(p) = p { p.forget(); }
                        }
                        () = stop.cancelled() => {}
                    }
                });
            }
        }
        self.shared.retuned.notify_one();
        tracing::info!(
            target = %name,
            concurrency = new.concurrency,
            "target settings changed; its breaker state and unchanged limits are kept"
        );
        self.settings = new;
    }

    #[cfg(test)]
    pub fn shared(&self) -> &Arc<TargetShared> {
        &self.shared
    }
}

/// Run the worker of one target until `stop`, restarting it when it panics;
/// then wait for its attempts in flight and, if the target is gone from the
/// config, dead-letter what it left waiting (an attempt in flight may have
/// scheduled a retry after the reconcile's sweep).
async fn supervise(
    ctx: Arc<WorkerContext>,
    shared: Arc<TargetShared>,
    rate_limit: watch::Receiver<Option<RateLimit>>,
    stop: CancellationToken,
) {
    let name = shared.name.clone();
    let mut limits = TargetLimits::following(&name, rate_limit, ctx.budgets.clone());
    let mut attempts = Attempts::new(ctx.clone(), shared.clone());
    // Outlives a panicking worker: claims already handed over stay in it.
    let mut lane = HandOffLane::new(ctx.store.hand_off(&name));
    loop {
        let run = worker::run(&ctx, &shared, &mut limits, &mut attempts, &mut lane, &stop);
        match AssertUnwindSafe(run).catch_unwind().await {
            Ok(()) => break,
            Err(panic) => {
                tracing::error!(
                    target = %name,
                    panic = panic_message(panic.as_ref()),
                    "the target's worker panicked; starting it again"
                );
                if stop.is_cancelled() {
                    break;
                }
                tokio::select! {
                    () = tokio::time::sleep(RESTART_PAUSE) => {}
                    () = stop.cancelled() => break,
                }
            }
        }
    }
    // Handed over but not started: back to waiting, for the next start.
    for claim in lane.close() {
        worker::give_back(&ctx, claim).await;
    }
    attempts.drain().await;
    if ctx.live.load().config.target_by_name(&name).is_none() {
        dead_letter_removed(&ctx, &name).await;
    }
}

/// How soon a replica that lost the probe turn to another looks again.
const PROBE_RECHECK_MS: i64 = 1_000;

/// A target's [`Gate`], shared by its worker, its attempts and reconcile,
/// and, through its [`CircuitBoard`] (replicas on one store), with the same
/// target's gate in the other replicas.
pub struct TargetGate {
    target: String,
    gate: Mutex<Gate>,
    board: Option<Arc<dyn CircuitBoard>>,
    activity: Arc<TargetActivity>,
    /// This replica holds the board's probe turn.
    probing: AtomicBool,
    /// Notified when an outcome was recorded (a probe came back, a pause was set).
    pub changed: Notify,
}

impl TargetGate {
    fn new(
        target: &str,
        settings: CircuitBreaker,
        board: Option<Arc<dyn CircuitBoard>>,
        activity: Arc<TargetActivity>,
    ) -> TargetGate {
        TargetGate {
            target: target.to_owned(),
            gate: Mutex::new(Gate::new(settings)),
            board,
            activity,
            probing: AtomicBool::new(false),
            changed: Notify::new(),
        }
    }

    /// The gate; a poisoned lock (a panic while held) still holds a valid gate.
    pub fn lock(&self) -> std::sync::MutexGuard<'_, Gate> {
        self.gate
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// What the worker may do now, after taking the other replicas' news.
    /// A probe goes out only with the board's turn (held up to
    /// `probe_ttl_ms`); without it, look again shortly.
    pub async fn admit(&self, now: i64, probe_ttl_ms: i64) -> Admission {
        let Some(board) = &self.board else {
            return self.lock().admit(now);
        };
        if let Some(hold) = board.read(&self.target).await {
            let (changed, open) = {
                let mut gate = self.lock();
                (gate.adopt(hold, now), gate.is_open())
            };
            if changed {
                self.circuit_changed(open, "another replica");
            }
        }
        let admission = self.lock().admit(now);
        if admission != Admission::Probe {
            return admission;
        }
        if board.try_probe(&self.target, probe_ttl_ms).await {
            self.probing.store(true, Ordering::Relaxed);
            Admission::Probe
        } else {
            self.lock().probe_unused();
            Admission::WaitUntil(now.saturating_add(PROBE_RECHECK_MS))
        }
    }

    /// Record one attempt's signal; log and export a change of the circuit,
    /// and tell the other replicas.
    pub async fn record(&self, signal: Signal, now: i64) {
        let (changed, opened, open_window, closed_at) = {
            let mut gate = self.lock();
            let before = gate.open_window();
            let changed = gate.record(signal, now);
            let after = gate.open_window();
            // A failed probe opens the circuit again without it ever having
            // closed: news for the other replicas all the same.
            (
                changed,
                after.is_some() && after != before,
                after,
                gate.closed_at(),
            )
        };
        if changed {
            self.circuit_changed(open_window.is_some(), "this replica");
        }
        self.changed.notify_one();
        let Some(board) = &self.board else {
            return;
        };
        match open_window {
            Some((until, opened_at)) if opened => {
                board.publish_open(&self.target, until, opened_at).await;
            }
            None if changed => board.publish_closed(&self.target, closed_at).await,
            _ => {}
        }
        if let Signal::RateLimited(Some(until)) = signal {
            board.publish_pause(&self.target, until).await;
        }
        if self.probing.swap(false, Ordering::Relaxed) {
            board.probe_done(&self.target).await;
        }
    }

    fn circuit_changed(&self, open: bool, by: &str) {
        let target = &self.target;
        metrics::circuit_open(target, open);
        self.activity.set_circuit_open(open);
        if open {
            tracing::warn!(%target, by, "circuit opened: deliveries wait without spending attempts");
        } else {
            tracing::info!(%target, by, "circuit closed: the target answers again");
        }
    }

    /// An attempt ended without an outcome (it panicked): if it was the
    /// half-open probe, another may go.
    pub async fn attempt_lost(&self) {
        self.lock().probe_unused();
        self.changed.notify_one();
        if self.probing.swap(false, Ordering::Relaxed)
            && let Some(board) = &self.board
        {
            board.probe_done(&self.target).await;
        }
    }
}
