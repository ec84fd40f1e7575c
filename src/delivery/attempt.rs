//! One attempt of one delivery: send it with the target's current config,
//! tell the target's gate how it went, decide what comes next (delivered,
//! retry at T, dead), and record it in the store.
//!
//! The concurrency permit covers the request only: it is given back as soon
//! as the target has answered, before the outcome is committed. Holding it
//! through the commit (a group commit's fsync, milliseconds under load) kept
//! `concurrency` requests' worth of permits waiting on the disk instead of on
//! the target, which capped delivery far below what the core could do
//! (docs/performance.md).

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::OwnedSemaphorePermit;

use super::WorkerContext;
use super::activity::Outcome;
use super::gate::Signal;
use super::retry;
use super::runtime::TargetShared;
use crate::metrics;
use crate::queue::{AttemptRecord, Claim, Completion, DeadReason, NextState};
use crate::targets::{Attempt, AttemptOutcome, FailureClass};

/// Make one attempt and record its outcome.
pub async fn run(
    ctx: Arc<WorkerContext>,
    shared: Arc<TargetShared>,
    claim: Claim,
    permit: OwnedSemaphorePermit,
) {
    #[cfg(test)]
    super::test_hooks::maybe_panic(super::test_hooks::Hook::Attempt, &claim.target);
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
    if !target.enabled {
        // Disabled since it was claimed: not attempted, back to waiting.
        if let Err(e) = ctx.store.release(claim.delivery_id, claim.lease).await {
            tracing::error!(target = %claim.target, delivery_id = %claim.delivery_id, error = %e, "cannot release a delivery of a disabled target");
        }
        return;
    }
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
    // The gate hears the outcome before the permit goes: the next attempt
    // must not start on a circuit this one is about to open.
    if let Some(signal) = gate_signal(&outcome, &target.retry, ctx.clock.now_ms()) {
        shared.gate.record(signal, ctx.clock.now_ms()).await;
    }
    drop(permit); // the request is over: the next one may start
    let (record, next, label) = match outcome {
        AttemptOutcome::Delivered { status } => {
            tracing::debug!(
                target = %claim.target,
                %event_id,
                %delivery_id,
                attempt = number,
                status,
                duration_ms,
                "delivered"
            );
            (
                AttemptRecord {
                    at_ms,
                    duration_ms,
                    status,
                    error: None,
                    response_excerpt: None,
                },
                NextState::Delivered,
                "delivered",
            )
        }
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
                %event_id,
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
    shared
        .activity
        .count(if matches!(next, NextState::Delivered) {
            Outcome::Delivered
        } else {
            Outcome::Failed
        });
    complete(&ctx, &claim, record, next).await;
}

/// What an outcome tells the target's gate (nothing, for a render error: the
/// target was never contacted).
fn gate_signal(
    outcome: &AttemptOutcome,
    policy: &crate::config::RetryPolicy,
    now: i64,
) -> Option<Signal> {
    match outcome {
        AttemptOutcome::Delivered { .. } => Some(Signal::Healthy),
        AttemptOutcome::Failed(f) => match f.class {
            FailureClass::RenderError => None,
            FailureClass::Permanent => Some(Signal::Healthy),
            FailureClass::Retryable if f.status == Some(429) => {
                Some(Signal::RateLimited(f.retry_after.map(|d| {
                    let d = retry::capped_retry_after(policy, d);
                    now.saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
                })))
            }
            FailureClass::Retryable => Some(Signal::Failing),
        },
    }
}

async fn complete(ctx: &WorkerContext, claim: &Claim, attempt: AttemptRecord, next: NextState) {
    let completion = Completion {
        delivery_id: claim.delivery_id,
        lease: claim.lease,
        attempt,
        next,
    };
    // A store that cannot be written right now (disk full, I/O error) may
    // recover: keep trying for a while, so the delivery does not sit
    // `in_flight` until the next restart. The lease makes a late retry safe.
    let mut pause = COMPLETE_RETRY_FIRST;
    for tries in 1.. {
        match ctx.store.complete(completion.clone()).await {
            Ok(_) => return,
            Err(e) if pause <= COMPLETE_RETRY_LAST => {
                tracing::warn!(
                    target = %claim.target,
                    delivery_id = %claim.delivery_id,
                    error = %e,
                    tries,
                    "cannot record a delivery outcome yet; trying again"
                );
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
            Err(e) => {
                // It stays in_flight and is attempted again after a restart:
                // at-least-once, never lost.
                tracing::error!(
                    target = %claim.target,
                    delivery_id = %claim.delivery_id,
                    error = %e,
                    "cannot record a delivery outcome; it will be retried after a restart"
                );
                return;
            }
        }
    }
}

/// Retrying a failed completion: 100 ms, doubling, the last wait 25.6 s
/// (about 51 s in all).
const COMPLETE_RETRY_FIRST: std::time::Duration = std::time::Duration::from_millis(100);
const COMPLETE_RETRY_LAST: std::time::Duration = std::time::Duration::from_millis(25_600);
