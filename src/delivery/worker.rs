//! One worker per target: claim due deliveries, attempt them under the
//! target's concurrency cap, record each outcome.
//!
//! The worker claims only as many deliveries as it has free permits, so a dead
//! target holds at most `concurrency` deliveries in memory and never delays
//! another target's worker. When nothing is due it sleeps until the earliest
//! due time or until the store signals new work — it never polls.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::retry;
use crate::clock::Clock;
use crate::metrics;
use crate::queue::{AttemptRecord, Claim, Completion, DeadReason, DeliveryStore, NextState};
use crate::snapshot::LiveConfig;
use crate::targets::{Attempt, AttemptOutcome, FailureClass, Senders};

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
    let concurrency = {
        let snapshot = ctx.live.load();
        snapshot
            .config
            .target_by_name(&target)
            .map_or(1, |t| t.concurrency)
    };
    let permits = Arc::new(Semaphore::new(concurrency));
    let mut attempts = JoinSet::new();
    loop {
        while attempts.try_join_next().is_some() {}
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            () = stop.cancelled() => break,
        };
        let limit = permits.available_permits() + 1;
        let claims = match ctx
            .store
            .claim_due(&target, ctx.clock.now_ms(), limit)
            .await
        {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(%target, error = %e, "cannot claim deliveries");
                drop(permit);
                sleep_or_stop(STORE_ERROR_BACKOFF, &stop).await;
                continue;
            }
        };
        if claims.is_empty() {
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
            attempts.spawn(attempt(ctx.clone(), claim, p));
        }
    }
    // Stopping: the attempts in flight finish (or are cut off by the caller).
    while attempts.join_next().await.is_some() {}
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

/// Make one attempt and record its outcome.
async fn attempt(ctx: Arc<WorkerContext>, claim: Claim, _permit: OwnedSemaphorePermit) {
    let snapshot = ctx.live.load_full();
    let at_ms = ctx.clock.now_ms();
    let started = Instant::now();
    let Some(target) = snapshot.config.target_by_name(&claim.target) else {
        let record = AttemptRecord {
            at_ms,
            duration_ms: 0,
            status: None,
            error: Some("the target is no longer in the config".to_owned()),
            response_excerpt: None,
        };
        complete(
            &ctx,
            &claim,
            record,
            NextState::Dead(DeadReason::TargetRemoved),
        )
        .await;
        return;
    };
    let event_id = claim.event_id.to_string();
    let delivery_id = claim.delivery_id.to_string();
    let number = claim.attempts_made + 1;
    let outcome = ctx
        .senders
        .send(
            target,
            &snapshot.config.templates,
            &Attempt {
                event_id: &event_id,
                delivery_id: &delivery_id,
                route: &claim.route,
                source: &claim.source,
                received_at_ms: claim.received_at_ms,
                number,
                body: &claim.body,
            },
        )
        .await;
    let elapsed = started.elapsed();
    let duration_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
    let (record, next, label) = match outcome {
        AttemptOutcome::Delivered { status } => (
            AttemptRecord {
                at_ms,
                duration_ms,
                status,
                error: None,
                response_excerpt: None,
            },
            NextState::Delivered,
            "delivered",
        ),
        AttemptOutcome::Failed(f) => {
            let (next, label) = match f.class {
                FailureClass::Permanent => (
                    NextState::Dead(DeadReason::PermanentStatus),
                    "permanent_failure",
                ),
                FailureClass::RenderError => {
                    (NextState::Dead(DeadReason::RenderError), "render_error")
                }
                FailureClass::Retryable => {
                    match retry::next_delay(
                        &target.retry,
                        claim.attempts_in_budget + 1,
                        f.retry_after,
                    ) {
                        Some(delay) => {
                            let ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
                            (
                                NextState::RetryAt(ctx.clock.now_ms().saturating_add(ms)),
                                "retry",
                            )
                        }
                        None => (NextState::Dead(DeadReason::Exhausted), "exhausted"),
                    }
                }
            };
            tracing::info!(
                target = %claim.target,
                delivery_id = %delivery_id,
                attempt = number,
                error = %f.error,
                outcome = label,
                "delivery attempt failed"
            );
            (
                AttemptRecord {
                    at_ms,
                    duration_ms,
                    status: f.status,
                    error: Some(f.error),
                    response_excerpt: f.response_excerpt,
                },
                next,
                label,
            )
        }
    };
    metrics::delivery_attempt(&claim.target, label, elapsed.as_secs_f64());
    complete(&ctx, &claim, record, next).await;
}

async fn complete(ctx: &WorkerContext, claim: &Claim, attempt: AttemptRecord, next: NextState) {
    let completion = Completion {
        delivery_id: claim.delivery_id,
        lease: claim.lease,
        attempt,
        next,
    };
    if let Err(e) = ctx.store.complete(completion).await {
        // The delivery stays in_flight in the store and is attempted again
        // after a restart: at-least-once, never lost.
        tracing::error!(
            target = %claim.target,
            delivery_id = %claim.delivery_id,
            error = %e,
            "cannot record a delivery outcome"
        );
    }
}
