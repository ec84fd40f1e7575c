//! The worker's side of the store's direct hand-off (`queue::hand_off`):
//! while its target has nothing waiting, the worker sets its free permits
//! aside and offers one credit per permit; each delivery the store hands off
//! arrives already leased and starts on one of those permits, with no claim.
//! The lane belongs to the target's supervisor, so claims that have arrived
//! survive a panicking worker and are given back when the target stops.
//!
//! Permits are set aside only while the worker idles with an offer out:
//! withdrawing takes back the unspent credits and gives every set-aside
//! permit back to the target's semaphore. A claim that arrives after that
//! (its credit was spent by a batch still committing) is started like any
//! claim, on a permit acquired then (see `worker::start_handed`). Nothing is
//! held outside the idle wait, so a claim in transit can never keep the
//! worker from a permit.

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

    /// Take back the credits not spent yet, and give every set-aside permit
    /// back.
    pub fn withdraw(&mut self) {
        if let Some(inbox) = &self.inbox {
            inbox.withdraw();
        }
        self.set_aside = None;
    }

    /// The next handed-off claim, with a set-aside permit for it if the
    /// worker is idling with an offer out. Pending forever without an inbox.
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
