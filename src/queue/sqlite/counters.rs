//! What the writer counts as batches commit: its own work since open
//! ([`StoreStats`], for "events per sync") and the unfinished backlog that
//! `queue.max_pending` and `queue.max_bytes` are checked against, counted
//! from the file once at open and never by counting rows again.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use crate::queue::Backlog;

/// Counters of the writer's work since open, for "events per sync".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Write transactions committed (one fsync each).
    pub batches: u64,
    /// Write commands (enqueue, claim, complete, release, check) committed.
    pub commands: u64,
    /// Events enqueued (committed).
    pub events: u64,
    /// Committed batches that held at least one enqueue.
    pub event_batches: u64,
    /// The most commands one committed batch held.
    pub largest_batch: u64,
    /// Batches whose transaction could not be begun or committed.
    pub failed_batches: u64,
}

impl StoreStats {
    /// Events made durable per fsync, over the batches that held events.
    pub fn events_per_sync(&self) -> f64 {
        if self.event_batches == 0 {
            return 0.0;
        }
        self.events as f64 / self.event_batches as f64
    }
}

#[derive(Default)]
pub(super) struct Counters {
    batches: AtomicU64,
    commands: AtomicU64,
    events: AtomicU64,
    event_batches: AtomicU64,
    largest_batch: AtomicU64,
    failed_batches: AtomicU64,
}

impl Counters {
    pub(super) fn record_commit(&self, commands: u64, events: u64) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.commands.fetch_add(commands, Ordering::Relaxed);
        self.largest_batch.fetch_max(commands, Ordering::Relaxed);
        if events > 0 {
            self.events.fetch_add(events, Ordering::Relaxed);
            self.event_batches.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A batch whose transaction could not be begun or committed.
    pub(super) fn record_failure(&self) {
        self.failed_batches.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn snapshot(&self) -> StoreStats {
        StoreStats {
            batches: self.batches.load(Ordering::Relaxed),
            commands: self.commands.load(Ordering::Relaxed),
            events: self.events.load(Ordering::Relaxed),
            event_batches: self.event_batches.load(Ordering::Relaxed),
            largest_batch: self.largest_batch.load(Ordering::Relaxed),
            failed_batches: self.failed_batches.load(Ordering::Relaxed),
        }
    }
}

/// The unfinished work, kept by the writer as batches commit (counted from
/// the file once, at open).
#[derive(Default)]
pub(super) struct BacklogCounters {
    deliveries: AtomicI64,
    bytes: AtomicI64,
}

impl BacklogCounters {
    pub(super) fn apply(&self, (deliveries, bytes): (i64, i64)) {
        if deliveries != 0 {
            self.deliveries.fetch_add(deliveries, Ordering::Relaxed);
        }
        if bytes != 0 {
            self.bytes.fetch_add(bytes, Ordering::Relaxed);
        }
    }

    pub(super) fn get(&self) -> Backlog {
        let read = |v: &AtomicI64| u64::try_from(v.load(Ordering::Relaxed)).unwrap_or(0);
        Backlog {
            deliveries: read(&self.deliveries),
            bytes: read(&self.bytes),
        }
    }
}
