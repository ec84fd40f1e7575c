//! Delivery: the second half of the pipeline, from the queue to the targets.
//!
//! The [`Dispatcher`] runs one [`worker`] per enabled target, each with its
//! [`runtime`] (gate, permits, rate limit, stop token), and
//! [`Dispatcher::reconcile`]s them with a new snapshot. A worker claims due deliveries from the store (a lease per claim),
//! attempts them through [`crate::targets::Senders`] using the target's
//! *current* config, and records the outcome: delivered, retry at T
//! ([`retry`]), or dead with a reason. A target's circuit breaker ([`gate`])
//! and rate limit ([`limits`]) decide when its worker may claim.
//!
//! Never imports `ingress`.

pub mod activity;
mod attempt;
pub mod circuit_board;
pub mod gate;
mod hand_off;
pub mod limits;
mod ordering;
mod retention;
pub mod retry;
pub mod runtime;
#[cfg(test)]
mod test_hooks;
#[cfg(test)]
mod tests;
pub mod worker;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::queue::{DeadReason, DeliveryStore};
use crate::rate_limit::CellBudgets;
use crate::snapshot::{LiveConfig, Snapshot};
use crate::targets::Senders;
use activity::Activity;
use circuit_board::CircuitBoard;
use runtime::{Settings, TargetRuntime};

/// What every worker shares.
pub struct WorkerContext {
    pub live: LiveConfig,
    pub store: Arc<dyn DeliveryStore>,
    pub senders: Arc<Senders>,
    pub clock: Arc<dyn Clock>,
    /// Where targets' rate-limit cells are kept (this process, or shared).
    pub budgets: Arc<dyn CellBudgets>,
    /// Where replicas share their targets' circuit state (`None`: alone).
    pub board: Option<Arc<dyn CircuitBoard>>,
    /// What each target did lately (the admin overview reads it).
    pub activity: Arc<Activity>,
}

/// Runs the per-target workers, one [`TargetRuntime`] per enabled target.
pub struct Dispatcher {
    ctx: Arc<WorkerContext>,
    targets: HashMap<String, TargetRuntime>,
    /// Every task: supervised workers (running or finishing after a stop),
    /// retention, sweeps, concurrency shrinks.
    tasks: JoinSet<()>,
    stop: CancellationToken,
}

impl Dispatcher {
    /// Reconcile from nothing: a worker for every enabled target of the
    /// current config, and the store's retention.
    pub fn start(ctx: WorkerContext) -> Dispatcher {
        let ctx = Arc::new(ctx);
        let stop = CancellationToken::new();
        let mut tasks = JoinSet::new();
        tasks.spawn(retention::run(ctx.clone(), stop.clone()));
        let mut dispatcher = Dispatcher {
            ctx,
            targets: HashMap::new(),
            tasks,
            stop,
        };
        let snapshot = dispatcher.ctx.live.load_full();
        dispatcher.reconcile(&snapshot);
        dispatcher
    }

    /// Bring the running targets in line with `snapshot` (the one just made
    /// live): start workers for new or newly enabled targets, stop those of
    /// removed or disabled ones (their attempts in flight finish), and retune
    /// changed ones in place, keeping what did not change: a rate limit's
    /// budget, a breaker's state, the permits held by attempts in flight.
    /// Waiting deliveries of removed targets are dead-lettered
    /// `target_removed`; those of disabled targets wait, pending.
    pub fn reconcile(&mut self, snapshot: &Snapshot) {
        self.reap_finished();
        let wanted: HashMap<&str, &crate::config::Target> = snapshot
            .config
            .targets
            .iter()
            .filter(|t| t.enabled)
            .map(|t| (t.name.as_str(), t))
            .collect();
        self.targets.retain(|name, runtime| {
            let keep = wanted.contains_key(name.as_str());
            if !keep {
                tracing::info!(target = %name, "target removed or disabled: its worker stops");
                runtime.stop();
            }
            keep
        });
        for (name, target) in wanted {
            match self.targets.get_mut(name) {
                Some(runtime) => {
                    runtime.retune(Settings::of(target), &mut self.tasks);
                    // The worker looks at the config again, so a change of
                    // `ordering` reaches the store now, not at its next due time.
                    self.ctx.store.work_signal().notify(name);
                }
                None => {
                    let runtime =
                        TargetRuntime::start(&self.ctx, target, &self.stop, &mut self.tasks);
                    self.targets.insert(name.to_owned(), runtime);
                }
            }
        }
        self.ctx
            .activity
            .retain(|name| snapshot.config.target_by_name(name).is_some());
        self.tasks.spawn(sweep_removed_targets(self.ctx.clone()));
    }

    /// The names of the targets that have a worker, sorted (for tests and logs).
    pub fn running_targets(&self) -> Vec<String> {
        let mut names: Vec<String> = self.targets.keys().cloned().collect();
        names.sort();
        names
    }

    /// Log the tasks that ended since the last look; a task that panicked
    /// says so (a worker's own panics are caught and restarted by its
    /// supervisor, so this is the last line of defence).
    fn reap_finished(&mut self) {
        while let Some(ended) = self.tasks.try_join_next() {
            log_task_end(ended);
        }
    }

    /// Stop claiming, let attempts in flight finish within `deadline`, then
    /// cut off the rest: their deliveries stay `in_flight` in the store and
    /// are attempted again after restart, that attempt not counted.
    pub async fn shutdown(mut self, deadline: Duration) {
        self.stop.cancel();
        let drained = tokio::time::timeout(deadline, async {
            while let Some(ended) = self.tasks.join_next().await {
                log_task_end(ended);
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!("delivery attempts still running after {deadline:?}; cutting them off");
            self.tasks.abort_all();
            while self.tasks.join_next().await.is_some() {}
        }
    }
}

fn log_task_end(ended: Result<(), tokio::task::JoinError>) {
    if let Err(e) = ended
        && e.is_panic()
    {
        tracing::error!(error = %e, "a delivery task panicked");
    }
}

/// Dead-letter (`target_removed`) the waiting deliveries of targets that are
/// no longer in the config: after a restart with a changed file, or a
/// reconcile that removed them. They can be replayed once the target is back.
async fn sweep_removed_targets(ctx: Arc<WorkerContext>) {
    let names = match ctx.store.targets_with_work().await {
        Ok(names) => names,
        Err(e) => {
            tracing::error!(error = %e, "cannot list the targets that have deliveries waiting");
            return;
        }
    };
    let snapshot = ctx.live.load_full();
    for name in names {
        if snapshot.config.target_by_name(&name).is_some() {
            continue;
        }
        dead_letter_removed(&ctx, &name).await;
    }
}

/// Dead-letter (`target_removed`) the waiting deliveries of one target that
/// is no longer in the config.
async fn dead_letter_removed(ctx: &WorkerContext, name: &str) {
    match ctx
        .store
        .dead_letter_target(name, DeadReason::TargetRemoved, ctx.clock.now_ms())
        .await
    {
        Ok(0) => {}
        Ok(n) => tracing::warn!(
            target = %name,
            deliveries = n,
            "target is no longer in the config: its waiting deliveries are dead-lettered (target_removed); replay them once it is back"
        ),
        Err(e) => {
            tracing::error!(target = %name, error = %e, "cannot dead-letter the deliveries of a removed target")
        }
    }
}
