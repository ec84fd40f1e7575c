//! Delivery: the second half of the pipeline, from the queue to the targets.
//!
//! The [`Dispatcher`] runs one [`worker`] per target that this build can send
//! to. A worker claims due deliveries from the store (a lease per claim),
//! attempts them through [`crate::targets::Senders`] using the target's
//! *current* config, and records the outcome: delivered, retry at T
//! ([`retry`]), or dead with a reason. A target's circuit breaker ([`gate`])
//! and rate limit ([`limits`]) decide when its worker may claim.
//!
//! Never imports `ingress`.

mod attempt;
pub mod gate;
pub mod limits;
mod retention;
pub mod retry;
pub mod worker;

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::queue::DeadReason;
use worker::WorkerContext;

/// Runs the per-target workers.
pub struct Dispatcher {
    workers: JoinSet<()>,
    stop: CancellationToken,
}

impl Dispatcher {
    /// Start a worker for every target of the current config that this build
    /// can deliver to. Deliveries for the others stay pending (and are logged).
    pub fn start(ctx: WorkerContext) -> Dispatcher {
        let ctx = Arc::new(ctx);
        let stop = CancellationToken::new();
        let mut workers = JoinSet::new();
        let snapshot = ctx.live.load_full();
        workers.spawn(sweep_removed_targets(ctx.clone()));
        workers.spawn(retention::run(ctx.clone(), stop.clone()));
        for target in &snapshot.config.targets {
            if !target.enabled {
                // Its deliveries (from before it was disabled) wait, pending.
                continue;
            }
            workers.spawn(worker::run(ctx.clone(), target.name.clone(), stop.clone()));
        }
        Dispatcher { workers, stop }
    }

    /// Stop claiming, let attempts in flight finish within `deadline`, then
    /// cut off the rest: their deliveries stay `in_flight` in the store and
    /// are attempted again after restart, that attempt not counted.
    pub async fn shutdown(mut self, deadline: Duration) {
        self.stop.cancel();
        let drained = tokio::time::timeout(deadline, async {
            while self.workers.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!("delivery attempts still running after {deadline:?}; cutting them off");
            self.workers.abort_all();
            while self.workers.join_next().await.is_some() {}
        }
    }
}

/// Dead-letter (`target_removed`) the waiting deliveries of targets that are
/// no longer in the config, e.g. after a restart with a changed file. They
/// can be replayed once the target is back.
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
        match ctx
            .store
            .dead_letter_target(&name, DeadReason::TargetRemoved, ctx.clock.now_ms())
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
}
