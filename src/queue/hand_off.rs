//! Direct hand-off of first attempts: a delivery leased in the transaction
//! that stores it, and passed to its target's worker in memory.
//!
//! Without it, every delivery costs the store a claim: a worker woken after
//! the enqueue's commit asks for due deliveries, and the claim (a SELECT with
//! the event's body and an UPDATE of each row) waits for the next group
//! commit before the attempt can start. Under load that was a third of the
//! writer's per-delivery work and a whole commit cycle of latency
//! (docs/performance.md).
//!
//! How it works. A worker that has free permits and nothing waiting in the
//! store opens an [`HandOffInbox`] and offers credits: one per permit it has
//! set aside. An enqueue that finds a credit for a delivery's target writes
//! that delivery `in_flight` under a fresh lease instead of `pending`; once
//! the batch is durable, the store sends the lease (a [`Claim`]) to the
//! inbox. Nothing about the guarantees changes: the row is on disk, leased
//! like any claimed row, and a lease that never reaches a worker (the worker
//! is gone) is released by the store or expires like any other.
//!
//! Order: a store hands off only while the target has no `pending` delivery
//! (counting the ones of its own batch), so a fresh delivery never overtakes
//! an older one that waits for a claim (DESIGN.md section 6: first attempts
//! leave in acceptance order).
//!
//! So the hand-off serves a target that keeps up (every delivery of a quiet
//! or moderately busy target goes out without a claim); once deliveries wait,
//! the worker claims them in batches until nothing waits, then offers again.
//!
//! A backend that cannot do this (Redis: deliveries are shared by replicas)
//! offers no inbox, and its workers claim everything.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::mpsc;

use super::Claim;

/// Every target's hand-off slot; held by a store that hands off.
#[derive(Default)]
pub struct HandOffs {
    slots: Mutex<HashMap<String, Arc<Slot>>>,
}

/// One target's offer: credits, the lease its claims get, where they go.
struct Slot {
    credits: AtomicUsize,
    lease_ms: AtomicI64,
    tx: mpsc::UnboundedSender<Claim>,
}

impl HandOffs {
    /// A new inbox for `target`'s worker, replacing any earlier one (a
    /// restarted worker's): credits offered to the old one are void.
    pub fn open(&self, target: &str) -> HandOffInbox {
        let (tx, rx) = mpsc::unbounded_channel();
        let slot = Arc::new(Slot {
            credits: AtomicUsize::new(0),
            lease_ms: AtomicI64::new(0),
            tx,
        });
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(old) = slots.insert(target.to_owned(), slot.clone()) {
            old.credits.store(0, Ordering::SeqCst);
        }
        HandOffInbox { slot, rx }
    }

    /// Take one of `target`'s credits, if its worker offered any.
    pub fn take(&self, target: &str) -> Option<Ticket> {
        let slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = slots.get(target)?;
        slot.credits
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |c| c.checked_sub(1))
            .ok()?;
        Some(Ticket {
            lease_ms: slot.lease_ms.load(Ordering::SeqCst),
            slot: slot.clone(),
        })
    }
}

impl std::fmt::Debug for HandOffs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HandOffs")
    }
}

/// The store's side of one credit: the delivery it was spent on is leased
/// for [`Ticket::lease_ms`]; after the commit, [`Ticket::deliver`] passes
/// the lease on, and if the batch failed, [`Ticket::cancel`] gives the
/// credit back.
pub struct Ticket {
    slot: Arc<Slot>,
    lease_ms: i64,
}

impl Ticket {
    /// How long the lease lasts: what the worker asked for (longer than any
    /// attempt to its target can take).
    pub fn lease_ms(&self) -> i64 {
        self.lease_ms
    }

    /// Pass a committed lease to the worker. `Err` gives it back when the
    /// worker is gone: the caller must release the delivery.
    #[allow(clippy::result_large_err)] // the claim comes back to be released
    pub fn deliver(self, claim: Claim) -> Result<(), Claim> {
        self.slot.tx.send(claim).map_err(|e| e.0)
    }

    /// The delivery was not stored after all (the batch failed, or the event
    /// was a duplicate or refused): the credit is offered again. If the
    /// worker has withdrawn meanwhile, the credit outlives its permit, and
    /// the claim it may bring is started on a permit acquired then.
    pub fn cancel(self) {
        if !self.slot.tx.is_closed() {
            self.slot.credits.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// The worker's side: where handed-off leases arrive, and its offer.
///
/// A worker offers credits for concurrency permits it has set aside, so
/// that a claim arriving while it idles starts at once. Claims whose credit
/// was spent just before a withdrawal arrive afterwards: the worker must
/// keep reading the inbox in every wait, and start them (or give them back)
/// like any claim.
pub struct HandOffInbox {
    slot: Arc<Slot>,
    rx: mpsc::UnboundedReceiver<Claim>,
}

impl HandOffInbox {
    /// Offer `n` more credits; their claims get leases of `lease_ms`.
    pub fn offer(&self, n: usize, lease_ms: i64) {
        self.slot.lease_ms.store(lease_ms, Ordering::SeqCst);
        self.slot.credits.fetch_add(n, Ordering::SeqCst);
    }

    /// Take back every credit not spent yet; returns how many. Claims for
    /// credits already spent may still arrive (their batch is committing).
    pub fn withdraw(&self) -> usize {
        self.slot.credits.swap(0, Ordering::SeqCst)
    }

    /// The next handed-off claim.
    pub async fn recv(&mut self) -> Option<Claim> {
        self.rx.recv().await
    }

    /// A handed-off claim that has already arrived, if any.
    pub fn try_recv(&mut self) -> Option<Claim> {
        self.rx.try_recv().ok()
    }

    /// Stop taking claims: credits withdrawn, the channel closed, and the
    /// claims that had already arrived returned (to be released).
    pub fn close(&mut self) -> Vec<Claim> {
        self.withdraw();
        self.rx.close();
        let mut left = Vec::new();
        while let Ok(claim) = self.rx.try_recv() {
            left.push(claim);
        }
        left
    }
}

impl Drop for HandOffInbox {
    fn drop(&mut self) {
        self.slot.credits.store(0, Ordering::SeqCst);
    }
}

impl std::fmt::Debug for HandOffInbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HandOffInbox")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credits_are_taken_one_at_a_time_and_withdrawn() {
        let offs = HandOffs::default();
        assert!(offs.take("t").is_none(), "no inbox, no credit");
        let inbox = offs.open("t");
        assert!(
            offs.take("t").is_none(),
            "an inbox offers nothing by itself"
        );
        inbox.offer(2, 15_000);
        let a = offs.take("t").expect("first credit");
        assert_eq!(a.lease_ms(), 15_000);
        assert!(offs.take("t").is_some());
        assert!(offs.take("t").is_none(), "two credits, two tickets");
        a.cancel();
        assert_eq!(
            inbox.withdraw(),
            1,
            "a cancelled ticket's credit comes back"
        );
        assert!(offs.take("t").is_none());
    }

    #[test]
    fn a_ticket_for_a_gone_worker_gives_its_claim_back() {
        let offs = HandOffs::default();
        let inbox = offs.open("t");
        inbox.offer(1, 1);
        let ticket = offs.take("t").unwrap();
        drop(inbox);
        let ev = crate::queue::conformance::event("s", 1, b"{}", &["t"]);
        let claim = Claim {
            delivery_id: ev.deliveries[0].id,
            event_id: ev.id,
            target: "t".into(),
            route: "r".into(),
            source: "s".into(),
            received_at_ms: 1,
            attempts_made: 0,
            attempts_in_budget: 0,
            body: ev.body,
            lease: crate::queue::LeaseToken::new(),
        };
        let back = ticket.deliver(claim).unwrap_err();
        assert_eq!(back.delivery_id, ev.deliveries[0].id);
    }

    #[test]
    fn a_new_inbox_voids_the_old_ones_credits_and_a_dropped_one_offers_nothing() {
        let offs = HandOffs::default();
        let old = offs.open("t");
        old.offer(3, 1);
        let new = offs.open("t");
        assert!(offs.take("t").is_none());
        assert_eq!(old.withdraw(), 0);
        new.offer(1, 1);
        drop(new);
        assert!(offs.take("t").is_none());
    }
}
