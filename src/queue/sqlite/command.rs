//! The commands the store sends its writer thread, each with the channel its
//! answer goes back on.

use tokio::sync::oneshot;

use crate::queue::{
    Claim, Completed, Completion, DeadReason, DeliveryDetail, DeliveryId, Enqueued, LeaseToken,
    NewEvent, OrderingChange, ReplayResult, StoreError,
};

pub(super) type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// One request to the writer thread, with where to send the answer.
pub(super) enum Op {
    Enqueue(NewEvent, Reply<Enqueued>),
    /// One batch of retention pruning.
    Prune {
        before_ms: i64,
        now_ms: i64,
        limit: usize,
        reply: Reply<u64>,
    },
    Claim {
        target: String,
        now_ms: i64,
        limit: usize,
        lease_ms: i64,
        reply: Reply<Vec<Claim>>,
    },
    Complete(Completion, Reply<Completed>),
    Release {
        id: DeliveryId,
        lease: LeaseToken,
        reply: Reply<()>,
    },
    CheckWritable(Reply<()>),
    Replay {
        id: DeliveryId,
        now_ms: i64,
        reply: Reply<ReplayResult>,
    },
    /// One batch of a bulk replay of dead letters.
    ReplayDead {
        target: Option<String>,
        now_ms: i64,
        limit: usize,
        reply: Reply<u64>,
    },
    /// One batch of a purge of dead letters.
    PurgeDead {
        target: Option<String>,
        limit: usize,
        reply: Reply<u64>,
    },
    /// One batch of dead-lettering a removed target's waiting deliveries.
    DeadLetterTarget {
        target: String,
        reason: DeadReason,
        now_ms: i64,
        limit: usize,
        reply: Reply<u64>,
    },
    /// Order a target by a payload path, or stop (see `lanes`).
    SetOrdering {
        target: String,
        path: Option<Vec<String>>,
        reply: Reply<OrderingChange>,
    },
    NextDue(String, Reply<Option<i64>>),
    Delivery(DeliveryId, Reply<Option<DeliveryDetail>>),
    /// Finish what is queued before this, then stop; acknowledged once the
    /// file is closed and unlocked.
    Close(oneshot::Sender<()>),
}

impl Op {
    pub(super) fn is_write(&self) -> bool {
        !matches!(self, Op::NextDue(..) | Op::Delivery(..) | Op::Close(_))
    }

    /// Whether the command needs a SAVEPOINT of its own. The hot-path
    /// commands do not: an enqueue is checked before it writes
    /// ([`Op::refusal`]), and an enqueue, claim, completion or release that
    /// still fails while writing can only fail for the whole batch (I/O, a
    /// full disk, a broken file), which then fails as one. The savepoints
    /// cost the writer about 6% of a core under load (docs/performance.md).
    pub(super) fn needs_savepoint(&self) -> bool {
        !matches!(
            self,
            Op::Enqueue(..) | Op::Claim { .. } | Op::Complete(..) | Op::Release { .. }
        )
    }

    /// Why an enqueue must be refused before it writes anything: one
    /// delivery per (event, target), and delivery ids unique within it.
    pub(super) fn refusal(&self) -> Option<String> {
        let Op::Enqueue(ev, _) = self else {
            return None;
        };
        let mut targets = std::collections::HashSet::with_capacity(ev.deliveries.len());
        let mut ids = std::collections::HashSet::with_capacity(ev.deliveries.len());
        for d in &ev.deliveries {
            if !targets.insert(d.target.as_str()) {
                return Some(format!(
                    "event {} names target {} twice (one delivery per event and target)",
                    ev.id, d.target
                ));
            }
            if !ids.insert(d.id) {
                return Some(format!("event {} repeats delivery id {}", ev.id, d.id));
            }
        }
        None
    }

    /// Answer with an error without running the command.
    pub(super) fn fail(self, msg: &str) {
        // A caller that went away does not need the answer: send errors are ignored.
        match self {
            Op::Enqueue(_, r) => {
                let _ = r.send(unavailable(msg));
            }
            Op::Release { reply: r, .. } | Op::CheckWritable(r) => {
                let _ = r.send(unavailable(msg));
            }
            Op::Prune { reply, .. } => {
                let _ = reply.send(unavailable(msg));
            }
            Op::Claim { reply, .. } => {
                let _ = reply.send(unavailable(msg));
            }
            Op::Complete(_, r) => {
                let _ = r.send(unavailable(msg));
            }
            Op::NextDue(_, r) => {
                let _ = r.send(unavailable(msg));
            }
            Op::Delivery(_, r) => {
                let _ = r.send(unavailable(msg));
            }
            Op::Replay { reply, .. } => {
                let _ = reply.send(unavailable(msg));
            }
            Op::SetOrdering { reply, .. } => {
                let _ = reply.send(unavailable(msg));
            }
            Op::ReplayDead { reply, .. }
            | Op::PurgeDead { reply, .. }
            | Op::DeadLetterTarget { reply, .. } => {
                let _ = reply.send(unavailable(msg));
            }
            Op::Close(_) => {}
        }
    }
}

pub(super) fn unavailable<T>(msg: &str) -> Result<T, StoreError> {
    Err(StoreError::Unavailable(msg.to_owned()))
}
