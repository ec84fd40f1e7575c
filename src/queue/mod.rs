//! The durable queue: where accepted events and their deliveries live until done.
//!
//! [`DeliveryStore`] is the narrow interface the rest of hookgate uses, in two
//! halves: [`DeliveryQueue`], the hot path (ingress enqueues, the delivery
//! workers claim due deliveries under leases and record each attempt's
//! outcome), and [`DeliveryRecords`], the admin, retention and sweep side.
//! Backends sit behind it:
//!
//! - [`sqlite`]: the default, embedded, one writer thread with group commit.
//! - [`redis`]: one queue shared by several replicas (DESIGN.md section 9),
//!   Lua scripts over sorted sets; runs the same conformance suite
//!   ([`conformance`]).
//!
//! A stored delivery names its target; it never holds one. This module does not
//! import `targets` or `delivery`.
//!
//! Times are unix milliseconds (`i64`) handed in by the caller, so a test clock
//! moves the store's notion of "now" as well.

#[doc(hidden)]
pub mod conformance;
pub mod hand_off;
mod ordering;
mod record;
pub mod redis;
mod signal;
pub mod sqlite;

use std::future::Future;
use std::pin::Pin;

pub use hand_off::{HandOffInbox, HandOffs};
pub use ordering::*;
pub use record::*;
pub use signal::WorkSignal;

/// A boxed future returned by store operations (object-safe async).
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// What can go wrong talking to the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store cannot be written (disk full, permissions, I/O error, closed).
    /// Ingress answers 503 `queue_unavailable`; nothing was acknowledged.
    #[error("queue unavailable: {0}")]
    Unavailable(String),
    /// The store could not be opened (locked by another process, bad path, newer format).
    #[error("cannot open queue: {0}")]
    Open(String),
    /// A list cursor that this store did not produce (admin: 400 `invalid_cursor`).
    #[error("invalid cursor")]
    InvalidCursor,
}

/// The most rows one bulk operation changes per transaction.
pub const BULK_BATCH: usize = 1000;

/// The durable store of events and their deliveries: the hot path
/// ([`DeliveryQueue`]) and the records and bulk work beside it
/// ([`DeliveryRecords`]). Every backend implements both; hookgate holds one
/// `Arc<dyn DeliveryStore>`.
///
/// No backend may assume it is the only process using the store (DESIGN.md
/// section 9): a claim is a lease with an expiry, counters are the store's
/// (shared), and wake-ups arrive through [`WorkSignal`], which a backend can
/// feed from outside the process.
pub trait DeliveryStore: DeliveryQueue + DeliveryRecords {}

impl<T: DeliveryQueue + DeliveryRecords> DeliveryStore for T {}

/// The hot path: what ingress and the delivery workers call per event and
/// per attempt.
///
/// Implementations must make [`enqueue`](DeliveryQueue::enqueue) durable before
/// its future resolves: ingress answers 202 only after it does.
pub trait DeliveryQueue: Send + Sync + 'static {
    /// Store one event and all its deliveries atomically (and durably).
    /// Deliveries start `pending`, due at `event.received_at_ms`.
    ///
    /// With a dedupe key that is still fresh, nothing is stored and the first
    /// event's id comes back. The key is written in the event's own
    /// transaction, and a duplicate is answered only once that transaction is
    /// durable: a duplicate is never reported for an event that is not stored.
    /// With `event.limits`, the event is refused ([`Enqueued::Full`]) while the
    /// store's backlog (all processes' work, not this one's) is at a limit.
    fn enqueue(&self, event: NewEvent) -> StoreFuture<'_, Enqueued>;

    /// Claim up to `limit` deliveries of `target` that are due at `now_ms`,
    /// oldest due first and, among equals, in acceptance order. Due means
    /// `pending` or `retrying` with a due time at or before `now_ms`, or
    /// `in_flight` under a lease that expired (its holder died: the attempt
    /// it was making is not counted, and its completion will be ignored).
    /// Each becomes `in_flight` under a fresh lease that expires at
    /// `now_ms + lease_ms`; the caller chooses `lease_ms` longer than any
    /// attempt can take.
    fn claim_due(
        &self,
        target: &str,
        now_ms: i64,
        limit: usize,
        lease_ms: i64,
    ) -> StoreFuture<'_, Vec<Claim>>;

    /// Record the outcome of one attempt on a claimed delivery. Ignored (and
    /// reported as [`Completed::StaleLease`]) when the lease no longer matches.
    fn complete(&self, completion: Completion) -> StoreFuture<'_, Completed>;

    /// Give back a claimed delivery that was not attempted (shutdown, paused
    /// target): it returns to its previous state, no attempt counted.
    fn release(&self, delivery_id: DeliveryId, lease: LeaseToken) -> StoreFuture<'_, ()>;

    /// When `target` next has something to claim: the earliest due time of its
    /// `pending`/`retrying` deliveries, or the earliest expiry of a lease on
    /// one of its `in_flight` ones, whichever is sooner.
    fn next_due(&self, target: &str) -> StoreFuture<'_, Option<i64>>;

    /// Signalled (per target) whenever new work may be due, so the delivery
    /// engine waits instead of polling. A backend shared by several processes
    /// feeds it from the wake-ups the others publish.
    fn work_signal(&self) -> &WorkSignal;

    /// An inbox through which `target`'s worker takes fresh deliveries
    /// leased in the enqueue's own transaction (see [`hand_off`]), when this
    /// backend hands off; `None` (the default) when every delivery is
    /// claimed. A new inbox replaces the target's previous one.
    fn hand_off(&self, target: &str) -> Option<HandOffInbox> {
        let _ = target;
        None
    }

    /// Order `target`'s deliveries by the payload value at `path` (DESIGN.md
    /// section 6), or stop ordering them (`None`). The store remembers what
    /// it was last told, across restarts; telling it the same again changes
    /// nothing. A change rebuilds the target's lanes from the stored rows:
    /// losing (or changing) the path lets every held delivery go, in
    /// acceptance order; gaining it puts every delivery not yet attempted
    /// behind the earliest unfinished delivery of its key. The worker of
    /// `target` calls this before it claims under a config.
    fn set_ordering(
        &self,
        target: &str,
        path: Option<Vec<String>>,
    ) -> StoreFuture<'_, OrderingChange>;
}

/// Records and bulk work: the admin API, retention, the removed-target sweep
/// and the readiness probe; and the store's end.
pub trait DeliveryRecords: Send + Sync + 'static {
    /// Finish what was sent and let go of the store (SQLite: close the file
    /// and release its lock; Redis: stop the background tasks). Later calls
    /// fail `Unavailable` (SQLite) or lose their wake-ups (Redis). `serve`
    /// calls it last, so the queue is free when `run` returns even if some
    /// handle on the store is still being dropped.
    fn close(&self) -> StoreFuture<'_, ()>;

    /// The unfinished work, from the store's counters (never by counting rows
    /// per call); for a shared store, as recently as the backend last read them.
    fn backlog(&self) -> Backlog;

    /// Delete `delivered` deliveries last updated before `delivered_before_ms`
    /// (with their attempts, and events left with no delivery), and dedupe
    /// keys expired at `now_ms`, in transactions of at most [`BULK_BATCH`]
    /// rows. Dead letters stay until replayed or purged. Returns how many
    /// deliveries were deleted.
    fn prune(&self, delivered_before_ms: i64, now_ms: i64) -> StoreFuture<'_, u64>;

    /// One delivery with every attempt and its event, if it exists.
    fn delivery(&self, id: DeliveryId) -> StoreFuture<'_, Option<DeliveryDetail>>;

    /// A page of deliveries, newest first (admin `GET /admin/deliveries`).
    fn list(&self, query: DeliveryQuery) -> StoreFuture<'_, DeliveryPage>;

    /// Put one `dead` or `delivered` delivery back to `pending`, due at
    /// `now_ms`, with a fresh attempt budget; its id and attempt count stay.
    fn replay(&self, id: DeliveryId, now_ms: i64) -> StoreFuture<'_, ReplayResult>;

    /// Replay every `dead` delivery (of one target, or all), in transactions
    /// of at most [`BULK_BATCH`] rows. Returns how many were replayed.
    fn replay_dead(&self, target: Option<&str>, now_ms: i64) -> StoreFuture<'_, u64>;

    /// Delete every `dead` delivery (of one target, or all) with its attempts
    /// (and events left with no delivery), in transactions of at most
    /// [`BULK_BATCH`] rows. Returns how many deliveries were deleted.
    fn purge_dead(&self, target: Option<&str>) -> StoreFuture<'_, u64>;

    /// For each of `targets`, in order: its depth by state (from the store's
    /// counters) and when its oldest unfinished delivery was accepted. A
    /// target with no deliveries gets zeros and `None`.
    fn target_queues(&self, targets: Vec<String>) -> StoreFuture<'_, Vec<TargetQueue>>;

    /// The keys of ordered `target` whose deliveries wait behind their head:
    /// how many, and up to `limit` of them, the oldest heads first.
    fn blocked_keys(&self, target: &str, limit: usize) -> StoreFuture<'_, BlockedKeys>;

    /// Every target name that has `pending`, `retrying` or `in_flight` deliveries.
    fn targets_with_work(&self) -> StoreFuture<'_, Vec<String>>;

    /// Dead-letter every `pending` or `retrying` delivery of `target` with
    /// `reason` (no attempt recorded), in transactions of at most
    /// [`BULK_BATCH`] rows. Returns how many.
    fn dead_letter_target(
        &self,
        target: &str,
        reason: DeadReason,
        now_ms: i64,
    ) -> StoreFuture<'_, u64>;

    /// Succeeds when the store is open and writable (for `/readyz`).
    fn check_writable(&self) -> StoreFuture<'_, ()>;
}
