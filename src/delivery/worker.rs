//! One worker per target: claim due deliveries, attempt them under the
//! target's concurrency cap and rate limit, record each outcome.
//!
//! The worker claims only as many deliveries as it has free permits, so a dead
//! target holds at most `concurrency` deliveries in memory and never delays
//! another target's worker. In the order of DESIGN.md section 2, the worker
//! first asks the target's [`Gate`](super::gate::Gate) (an open circuit or a `Retry-After` pause
//! means nothing is claimed and no budget spent), then a rate-limited target
//! takes a cell of its budget ([`TargetLimits`]), then it claims: the backlog
//! waits in the store.
//! When nothing is due it sleeps until the earliest due time or until the
//! store signals new work — it never polls.
//!
//! While its target has nothing waiting, an idle worker also takes fresh
//! deliveries the store hands it straight from their enqueue, already leased
//! ([`HandOffLane`]; SQLite only): no claim for a first attempt to a target
//! that keeps up.
//!
//! The gate, the permits and the rate limit are the target's runtime state
//! ([`super::runtime`]); the worker reads them on every turn, so a reload
//! that retunes them takes effect at the next claim. Its attempts run in an
//! [`Attempts`] set that outlives a panicking worker: an attempt that panics
//! is logged with its `JoinError` and its delivery released at once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit};
use tokio::task::{Id, JoinError, JoinSet};
use tokio_util::sync::CancellationToken;

pub use super::WorkerContext;
use super::activity::Outcome;
use super::attempt;
use super::gate::Admission;
use super::hand_off::HandOffLane;
use super::limits::{Cell, TargetLimits};
use super::ordering::OrderingSync;
use super::runtime::TargetShared;
use crate::queue::{Claim, DeliveryId, LeaseToken};

/// How long to back off after the store fails a claim.
const STORE_ERROR_BACKOFF: Duration = Duration::from_secs(1);
/// How much longer than its target's timeout a claim's lease lasts. Recording
/// the outcome takes milliseconds; the margin is for the clocks of replicas
/// (a lease's expiry is wall-clock time that another replica reads) and for
/// a reload that lengthens the timeout just after the claim. It is also how
/// much longer than the timeout a crashed replica's claims wait.
const LEASE_MARGIN: Duration = Duration::from_secs(10);
/// Longest sleep while idle; a safety net, not the wake-up mechanism.
const MAX_IDLE: Duration = Duration::from_secs(60);
/// How long a handed-off claim that arrived with no permit set aside may
/// wait for one; well inside [`LEASE_MARGIN`], so its attempt still fits in
/// its lease. Past it, the claim goes back to waiting.
const HANDED_PERMIT_WAIT: Duration = Duration::from_secs(2);

/// Run the worker of one target until `stop` is cancelled. Attempts it
/// spawns go into `attempts`, which the caller drains (see
/// [`super::runtime`]); `limits` follows the target's rate limit; `lane`
/// receives the deliveries the store hands off. The caller owns the last
/// two, so that they outlive a panicking worker.
pub async fn run(
    ctx: &Arc<WorkerContext>,
    shared: &Arc<TargetShared>,
    limits: &mut TargetLimits,
    attempts: &mut Attempts,
    lane: &mut HandOffLane,
    stop: &CancellationToken,
) {
    let target = shared.name.as_str();
    let wake: Arc<Notify> = ctx.store.work_signal().subscribe(target);
    let gate = &shared.gate;
    if ctx.live.load().config.target_by_name(target).is_none() {
        return;
    }
    lane.withdraw(); // a restarted worker starts from no offer
    let mut ordering = OrderingSync::default();
    loop {
        #[cfg(test)]
        super::test_hooks::maybe_panic(super::test_hooks::Hook::Worker, target);
        if stop.is_cancelled() {
            break;
        }

        attempts.reap().await;
        limits.refresh();
        // Handed off after this worker left its idle wait (their batch was
        // committing): older than anything a claim would find, so first.
        while let Some((claim, permit)) = lane.ready() {
            start_handed(ctx, shared, attempts, claim, permit, limits.is_limited()).await;
        }
        let permit = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            (claim, permit) = lane.next() => {
                start_handed(ctx, shared, attempts, claim, permit, limits.is_limited()).await;
                continue;
            }
            p = shared.permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            Some(ended) = attempts.next_ended() => {
                attempts.ended(ended).await;
                continue;
            }
        };
        // The breaker first (DESIGN.md section 2): while the circuit is open
        // or a `Retry-After` pause holds, nothing is claimed and no rate
        // budget is spent.
        let lease_ms = lease_ms(ctx, target);
        let mut admission = gate.admit(ctx.clock.now_ms(), lease_ms).await;
        if wait_at_gate(admission, ctx, shared, attempts, lane, stop).await {
            continue; // the permit is dropped: look again
        }
        if limits.is_limited() {
            // A cell spent on a claim that finds nothing is budget lost:
            // take one only when something is due.
            let due = match ctx.store.next_due(target).await {
                Ok(due) => due.is_some_and(|d| d <= ctx.clock.now_ms()),
                Err(e) => {
                    tracing::error!(%target, error = %e, "cannot read the next due time");
                    if admission == Admission::Probe {
                        gate.lock().probe_unused();
                    }
                    sleep_or_stop(STORE_ERROR_BACKOFF, stop).await;
                    continue;
                }
            };
            if !due {
                if admission == Admission::Probe {
                    gate.lock().probe_unused();
                }
                drop(permit);
                limits.went_idle();
                idle(ctx, shared, attempts, lane, false, &wake, stop).await;
                continue;
            }
            let cell = limits.first_cell(stop).await;
            if cell == Cell::AfterWait {
                shared.activity.count(Outcome::RateLimited);
            }
            match cell {
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
                    admission = gate.admit(ctx.clock.now_ms(), lease_ms).await;
                    if wait_at_gate(admission, ctx, shared, attempts, lane, stop).await {
                        continue;
                    }
                }
                Cell::AfterWait => {}
            }
        }
        // Right before the claim: the store's lanes follow the target's
        // `ordering` as the config has it now (a reload may have changed it
        // while this worker waited for a permit, the gate or a cell).
        if !ordering.ensure(ctx, target).await {
            if admission == Admission::Probe {
                gate.lock().probe_unused();
            }
            drop(permit);
            sleep_or_stop(STORE_ERROR_BACKOFF, stop).await;
            continue;
        }
        let limit = match admission {
            Admission::Probe => 1,
            _ => {
                limits
                    .claim_size(shared.permits.available_permits() + 1)
                    .await
            }
        };
        let claims = match ctx
            .store
            .claim_due(target, ctx.clock.now_ms(), limit, lease_ms)
            .await
        {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(%target, error = %e, "cannot claim deliveries");
                if admission == Admission::Probe {
                    gate.lock().probe_unused();
                }
                drop(permit);
                sleep_or_stop(STORE_ERROR_BACKOFF, stop).await;
                continue;
            }
        };
        limits.claimed(limit, claims.len());
        if claims.is_empty() {
            if admission == Admission::Probe {
                gate.lock().probe_unused();
            }
            drop(permit);
            // Nothing waits: while the gate is open and no rate limit needs
            // a cell per delivery, fresh deliveries may come straight here.
            let offer = admission == Admission::Open && !limits.is_limited();
            idle(ctx, shared, attempts, lane, offer, &wake, stop).await;
            continue;
        }
        let mut permit = Some(permit);
        for claim in claims {
            let Some(p) = permit
                .take()
                .or_else(|| shared.permits.clone().try_acquire_owned().ok())
            else {
                // Only when concurrency shrank during the claim: give it back.
                let _ = ctx.store.release(claim.delivery_id, claim.lease).await;
                continue;
            };
            attempts.spawn(claim, p);
        }
    }
}

/// Start a handed-off claim, on the permit set aside for it when the worker
/// idles with an offer out, else on one acquired now; unless the target no
/// longer takes deliveries freely (the circuit opened, a pause or a rate
/// limit began since the offer) or no permit comes free soon: then it goes
/// back to waiting, to be claimed the usual way (its lease runs meanwhile,
/// and an attempt must never outlive it). Returns whether it started.
async fn start_handed(
    ctx: &Arc<WorkerContext>,
    shared: &TargetShared,
    attempts: &mut Attempts,
    claim: Claim,
    permit: Option<OwnedSemaphorePermit>,
    limited: bool,
) -> bool {
    let admission = if limited {
        None
    } else {
        Some(
            shared
                .gate
                .admit(ctx.clock.now_ms(), lease_ms(ctx, &shared.name))
                .await,
        )
    };
    let admitted = matches!(admission, Some(Admission::Open | Admission::Probe));
    let permit = match permit {
        Some(p) if admitted => Some(p),
        None if admitted => {
            let acquire = shared.permits.clone().acquire_owned();
            match tokio::time::timeout(HANDED_PERMIT_WAIT, acquire).await {
                Ok(Ok(p)) => Some(p),
                _ => None,
            }
        }
        _ => None,
    };
    if let Some(p) = permit {
        attempts.spawn(claim, p);
        return true;
    }
    if admission == Some(Admission::Probe) {
        shared.gate.lock().probe_unused();
    }
    give_back(ctx, claim).await;
    false
}

/// Release a handed-off claim that will not be started here.
pub(super) async fn give_back(ctx: &WorkerContext, claim: Claim) {
    if let Err(e) = ctx.store.release(claim.delivery_id, claim.lease).await {
        tracing::warn!(target = %claim.target, delivery_id = %claim.delivery_id, error = %e, "cannot give back a handed-off delivery; it is claimed again when its lease expires");
    }
}

/// A target's attempts in flight, with the claim each one holds, so that an
/// attempt that dies is logged and its delivery given back. Owned by the
/// target's supervisor: it outlives a panicking worker.
pub struct Attempts {
    ctx: Arc<WorkerContext>,
    shared: Arc<TargetShared>,
    set: JoinSet<()>,
    claims: HashMap<Id, (DeliveryId, LeaseToken)>,
}

impl Attempts {
    pub fn new(ctx: Arc<WorkerContext>, shared: Arc<TargetShared>) -> Attempts {
        Attempts {
            ctx,
            shared,
            set: JoinSet::new(),
            claims: HashMap::new(),
        }
    }

    fn spawn(&mut self, claim: Claim, permit: OwnedSemaphorePermit) {
        let held = (claim.delivery_id, claim.lease);
        let task = self.set.spawn(attempt::run(
            self.ctx.clone(),
            self.shared.clone(),
            claim,
            permit,
        ));
        self.claims.insert(task.id(), held);
    }

    /// Handle every attempt that has ended, without waiting.
    async fn reap(&mut self) {
        while let Some(ended) = self.set.try_join_next_with_id() {
            self.ended(ended).await;
        }
    }

    /// The next attempt to end; `None` at once when none is in flight (a
    /// `select!` branch that is then disabled).
    async fn next_ended(&mut self) -> Option<Result<(Id, ()), JoinError>> {
        self.set.join_next_with_id().await
    }

    async fn ended(&mut self, ended: Result<(Id, ()), JoinError>) {
        let e = match ended {
            Ok((id, ())) => {
                self.claims.remove(&id);
                return;
            }
            Err(e) => e,
        };
        let held = self.claims.remove(&e.id());
        if !e.is_panic() {
            // Cut off at shutdown: the delivery stays `in_flight` and is
            // attempted again after the restart, that attempt not counted.
            return;
        }
        let target = &self.shared.name;
        let Some((delivery_id, lease)) = held else {
            tracing::error!(%target, error = %e, "a delivery attempt panicked");
            return;
        };
        tracing::error!(
            %target,
            %delivery_id,
            error = %e,
            "a delivery attempt panicked; its delivery is released to be attempted again"
        );
        self.shared.gate.attempt_lost().await;
        // A stale lease (the outcome was recorded before the panic) changes nothing.
        if let Err(e) = self.ctx.store.release(delivery_id, lease).await {
            tracing::error!(
                %target,
                %delivery_id,
                error = %e,
                "cannot release the delivery of a panicked attempt; it is retried after a restart"
            );
        }
    }

    /// Wait for every attempt in flight to end.
    pub async fn drain(&mut self) {
        while let Some(ended) = self.set.join_next_with_id().await {
            self.ended(ended).await;
        }
    }
}

/// When the gate holds the target (paused, open, or a probe out), wait until
/// it may change and return true: claim nothing, spend no attempts.
async fn wait_at_gate(
    admission: Admission,
    ctx: &Arc<WorkerContext>,
    shared: &TargetShared,
    attempts: &mut Attempts,
    lane: &mut HandOffLane,
    stop: &CancellationToken,
) -> bool {
    let gate = &shared.gate;
    let until = match admission {
        Admission::Open | Admission::Probe => return false,
        Admission::WaitUntil(until) => Some(until),
        Admission::WaitForProbe => None,
    };
    let sleep = async {
        match until {
            Some(until) => ctx.clock.sleep_until(until).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        () = sleep => {}
        () = gate.changed.notified() => {}
        Some(ended) = attempts.next_ended() => attempts.ended(ended).await,
        // Handed off before the gate closed: back to waiting (the gate
        // says no), or started if it has just opened.
        (claim, permit) = lane.next() => {
            start_handed(ctx, shared, attempts, claim, permit, false).await;
        }
        () = stop.cancelled() => {}
    }
    true
}

/// Wait until the next due time, a new-work signal, an attempt's end, or
/// stop, starting the deliveries the store hands over meanwhile. With
/// `offer`, set the free permits aside as credits first; an attempt's end
/// then frees a permit for the lane instead of ending the wait. Without it
/// (a rate limit needs a cell per delivery, or the gate is half-open), what
/// arrives goes back to waiting.
async fn idle(
    ctx: &Arc<WorkerContext>,
    shared: &TargetShared,
    attempts: &mut Attempts,
    lane: &mut HandOffLane,
    offer: bool,
    wake: &Notify,
    stop: &CancellationToken,
) {
    let target = shared.name.as_str();
    // Offer first: the answer below waits for the writer's current batch,
    // and deliveries of that batch may already be handed over.
    let lease = lease_ms(ctx, target);
    if offer {
        lane.offer_free(&shared.permits, lease);
    }
    let (due, cap) = match ctx.store.next_due(target).await {
        Ok(Some(due)) => (Some(due), MAX_IDLE),
        Ok(None) => (None, MAX_IDLE),
        Err(e) => {
            tracing::error!(%target, error = %e, "cannot read the next due time");
            (None, STORE_ERROR_BACKOFF)
        }
    };
    if due.is_some_and(|d| d <= ctx.clock.now_ms()) {
        lane.withdraw();
        return;
    }
    let until_due = async {
        match due {
            Some(d) => ctx.clock.sleep_until(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(until_due);
    let cap = tokio::time::sleep(cap);
    tokio::pin!(cap);
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => break,
            () = &mut until_due => break,
            () = &mut cap => break,
            () = wake.notified() => break,
            () = shared.retuned.notified(), if offer => break,
            (claim, permit) = lane.next() => {
                if !start_handed(ctx, shared, attempts, claim, permit, !offer).await {
                    break;
                }
            }
            Some(ended) = attempts.next_ended() => {
                attempts.ended(ended).await;
                if !offer {
                    break;
                }
                lane.offer_free(&shared.permits, lease);
            }
        }
    }
    lane.withdraw();
}

/// The lease a claim for `target` asks for: longer than any attempt to it can
/// take, so a live attempt's delivery is never claimed by anyone else.
fn lease_ms(ctx: &WorkerContext, target: &str) -> i64 {
    let timeout = ctx
        .live
        .load()
        .config
        .target_by_name(target)
        .map_or(Duration::ZERO, |t| t.attempt_timeout());
    i64::try_from((timeout + LEASE_MARGIN).as_millis()).unwrap_or(i64::MAX)
}

async fn sleep_or_stop(d: Duration, stop: &CancellationToken) {
    tokio::select! {
        () = tokio::time::sleep(d) => {}
        () = stop.cancelled() => {}
    }
}
