//! The worker's side of the store's direct hand-off (`queue::hand_off`):
//! while its target has nothing waiting, the worker sets its free permits
//! aside and offers one credit per permit; each delivery the store hands off
//! arrives already leased and starts at once on one of those permits, with
//! no claim.
//!
//! Invariant: the permits set aside are the credits still offered plus the
//! handed-off claims on their way (spent credits whose batch is committing).
//! Withdrawing gives the unspent ones back to the target's semaphore; the
//! rest wait for their claims (or for a failed batch to return the credit).

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::queue::{Claim, HandOffInbox};

/// One worker's hand-off: its inbox (when the store hands off) and the
/// permits set aside for it.
pub struct HandOffLane {
    inbox: Option<HandOffInbox>,
    set_aside: Option<OwnedSemaphorePermit>,
}

impl HandOffLane {
    pub fn new(inbox: Option<HandOffInbox>) -> HandOffLane {
        HandOffLane {
            inbox,
            set_aside: None,
        }
    }

    /// Set every free permit aside and offer a credit for each.
    pub fn offer_free(&mut self, permits: &Arc<Semaphore>, lease_ms: i64) {
        let Some(inbox) = &self.inbox else { return };
        let free = permits.available_permits();
        if free == 0 {
            return;
        }
        let Ok(more) = permits
            .clone()
            .try_acquire_many_owned(u32::try_from(free).unwrap_or(u32::MAX))
        else {
            return;
        };
        let n = more.num_permits();
        match &mut self.set_aside {
            Some(held) => held.merge(more),
            None => self.set_aside = Some(more),
        }
        inbox.offer(n, lease_ms);
    }

    /// Take back the credits not spent yet, and their permits.
    pub fn withdraw(&mut self) {
        let Some(inbox) = &self.inbox else { return };
        let unspent = inbox.withdraw();
        if let Some(held) = &mut self.set_aside {
            drop(held.split(unspent.min(held.num_permits())));
        }
    }

    /// The next handed-off claim, with the permit set aside for it. Pending
    /// forever without an inbox (a disabled `select!` branch).
    pub async fn next(&mut self) -> (Claim, Option<OwnedSemaphorePermit>) {
        let claim = match &mut self.inbox {
            Some(inbox) => inbox.recv().await,
            None => None,
        };
        match claim {
            Some(claim) => (claim, self.take_permit()),
            None => std::future::pending().await,
        }
    }

    /// A claim that has already arrived, with its permit.
    pub fn ready(&mut self) -> Option<(Claim, Option<OwnedSemaphorePermit>)> {
        let claim = self.inbox.as_mut()?.try_recv()?;
        Some((claim, self.take_permit()))
    }

    fn take_permit(&mut self) -> Option<OwnedSemaphorePermit> {
        let held = self.set_aside.as_mut()?;
        if held.num_permits() <= 1 {
            return self.set_aside.take();
        }
        held.split(1)
    }

    /// Stop taking claims; returns those that had arrived but not started
    /// (to be released).
    pub fn close(&mut self) -> Vec<Claim> {
        let left = self
            .inbox
            .as_mut()
            .map(HandOffInbox::close)
            .unwrap_or_default();
        self.set_aside = None;
        left
    }
}
