//! The records the store keeps and hands out: events, deliveries, attempts.
//!
//! Every stored row carries [`RECORD_FORMAT`], so a later hookgate can read (or
//! migrate) what an earlier one wrote.

use std::fmt;
use std::str::FromStr;

use bytes::Bytes;
use uuid::Uuid;

use super::OrderKey;

/// The version of the stored record format this build writes.
pub const RECORD_FORMAT: u32 = 1;

/// An event id: a lowercase UUIDv7.
pub type EventId = Uuid;
/// A delivery id: a lowercase UUIDv7, stable across retries of one (event, target).
pub type DeliveryId = Uuid;

/// An accepted event with the deliveries the rules chose for it.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: EventId,
    pub source: String,
    pub received_at_ms: i64,
    /// The body exactly as received.
    pub body: Bytes,
    pub deliveries: Vec<NewDelivery>,
    /// Accept this event only once while its key is fresh (`None`: dedupe off).
    pub dedupe: Option<DedupeKey>,
    /// Refuse the event ([`Enqueued::Full`]) while the backlog is at or above
    /// either of these (`queue.max_pending`, `queue.max_bytes`).
    pub limits: Option<Backlog>,
}

/// The identity of an event for deduplication (DESIGN.md section 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DedupeKey {
    /// sha256 of the source and what identifies the event (its body, or a
    /// provider's delivery id).
    pub key: [u8; 32],
    /// The key is forgotten at this time: `window` after first acceptance (a
    /// duplicate does not extend it).
    pub expires_at_ms: i64,
}

/// What [`super::DeliveryStore::enqueue`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// Stored durably, with its deliveries.
    Stored,
    /// A fresh key says this event was already accepted (durably) as this id;
    /// nothing was stored.
    Duplicate(EventId),
    /// The backlog is at its limit; nothing was stored.
    Full,
}

/// Work not yet finished: `pending`, `in_flight` and `retrying` deliveries,
/// and the bytes of their events' bodies (counted once per delivery).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backlog {
    pub deliveries: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub id: DeliveryId,
    pub target: String,
    /// The first matching route that named this target (`unmatched` for the fallback).
    pub route: String,
    /// Its key, when its target is ordered (`ordering.key`) in the config
    /// ingress routed it under. The store trusts it only when `path` is
    /// the one it orders the target by; otherwise it works the key out
    /// itself (a reload raced the enqueue), or leaves the delivery
    /// unordered (the target is not ordered in the store).
    pub order: Option<OrderKey>,
}

/// Where a delivery is in its life (DESIGN.md section 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryState {
    Pending,
    InFlight,
    Retrying,
    Delivered,
    Dead,
}

impl DeliveryState {
    /// Every state, in the order the admin API and the depth gauges list them.
    pub const ALL: [DeliveryState; 5] = [
        DeliveryState::Pending,
        DeliveryState::InFlight,
        DeliveryState::Retrying,
        DeliveryState::Delivered,
        DeliveryState::Dead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::InFlight => "in_flight",
            DeliveryState::Retrying => "retrying",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Dead => "dead",
        }
    }

    /// Delivered and dead deliveries are done; the rest still count as pending work.
    pub fn is_terminal(self) -> bool {
        matches!(self, DeliveryState::Delivered | DeliveryState::Dead)
    }
}

impl fmt::Display for DeliveryState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DeliveryState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "pending" => DeliveryState::Pending,
            "in_flight" => DeliveryState::InFlight,
            "retrying" => DeliveryState::Retrying,
            "delivered" => DeliveryState::Delivered,
            "dead" => DeliveryState::Dead,
            other => return Err(format!("unknown delivery state {other:?}")),
        })
    }
}

/// Why a delivery is dead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeadReason {
    Exhausted,
    PermanentStatus,
    RenderError,
    TargetRemoved,
}

impl DeadReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DeadReason::Exhausted => "exhausted",
            DeadReason::PermanentStatus => "permanent_status",
            DeadReason::RenderError => "render_error",
            DeadReason::TargetRemoved => "target_removed",
        }
    }
}

impl fmt::Display for DeadReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DeadReason {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "exhausted" => DeadReason::Exhausted,
            "permanent_status" => DeadReason::PermanentStatus,
            "render_error" => DeadReason::RenderError,
            "target_removed" => DeadReason::TargetRemoved,
            other => return Err(format!("unknown dead reason {other:?}")),
        })
    }
}

/// Proof of a claim: a completion must present the token of the current lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LeaseToken(pub Uuid);

impl LeaseToken {
    pub fn new() -> Self {
        LeaseToken(Uuid::now_v7())
    }
}

impl Default for LeaseToken {
    fn default() -> Self {
        Self::new()
    }
}

/// A delivery handed to the delivery engine, with what an attempt needs.
#[derive(Debug, Clone)]
pub struct Claim {
    pub delivery_id: DeliveryId,
    pub event_id: EventId,
    pub target: String,
    pub route: String,
    pub source: String,
    pub received_at_ms: i64,
    /// Attempts already made (the next one is number `attempts_made + 1`).
    pub attempts_made: u32,
    /// Attempts made since the last replay (the retry budget counts these).
    pub attempts_in_budget: u32,
    pub body: Bytes,
    pub lease: LeaseToken,
}

/// What happened on one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    pub at_ms: i64,
    pub duration_ms: u64,
    /// The response status, when there was a response.
    pub status: Option<u16>,
    /// A short error description (never a secret or a URL).
    pub error: Option<String>,
    /// The first 1 KiB of the response body, for failed attempts. Cut to
    /// size where it is made (`targets::Failure::with_excerpt`); a store
    /// keeps what it is given.
    pub response_excerpt: Option<String>,
}

/// Where a delivery goes after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextState {
    Delivered,
    /// `retrying`, due again at this time.
    RetryAt(i64),
    Dead(DeadReason),
}

/// The outcome of one attempt on a claimed delivery.
#[derive(Debug, Clone)]
pub struct Completion {
    pub delivery_id: DeliveryId,
    pub lease: LeaseToken,
    pub attempt: AttemptRecord,
    pub next: NextState,
}

/// Whether a completion was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completed {
    Recorded,
    /// The lease had been taken over or released; nothing was changed.
    StaleLease,
}

/// A delivery as the admin API shows it (DESIGN.md section 8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    pub id: DeliveryId,
    pub event_id: EventId,
    pub target: String,
    pub route: String,
    pub state: DeliveryState,
    pub dead_reason: Option<DeadReason>,
    pub attempt_count: u32,
    pub next_attempt_at_ms: Option<i64>,
    pub last_error: Option<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// A delivery with every attempt ever made and its stored event.
#[derive(Debug, Clone)]
pub struct DeliveryDetail {
    pub record: DeliveryRecord,
    /// Attempts in order; `n` is 1-based.
    pub attempts: Vec<(u32, AttemptRecord)>,
    pub source: String,
    pub event_body: Bytes,
    /// Its key, when it was stored for an ordered target.
    pub order_key: Option<String>,
    /// The head of its key it waits behind, while it waits for one.
    pub waiting_for: Option<DeliveryId>,
}

/// Filters and paging for [`super::DeliveryStore::list`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryQuery {
    pub state: Option<DeliveryState>,
    pub target: Option<String>,
    pub event_id: Option<EventId>,
    /// At most this many (the admin API clips it to 1..=1000).
    pub limit: usize,
    /// Continue after the page that returned this cursor.
    pub cursor: Option<String>,
}

/// One page of deliveries, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryPage {
    pub deliveries: Vec<DeliveryRecord>,
    /// An opaque token for the next page; `None` on the last page.
    pub next: Option<String>,
}

/// One target's queue as the admin overview shows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TargetQueue {
    /// Its deliveries in each state, in the order of [`DeliveryState::ALL`].
    pub depth: [u64; 5],
    /// When the oldest of its deliveries not yet delivered or dead
    /// (`pending`, `in_flight` or `retrying`) was accepted.
    pub oldest_waiting_ms: Option<i64>,
}

impl TargetQueue {
    /// The count of one state.
    pub fn count(&self, state: DeliveryState) -> u64 {
        DeliveryState::ALL
            .iter()
            .position(|s| *s == state)
            .map_or(0, |i| self.depth[i])
    }
}

/// The outcome of replaying one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayResult {
    /// The delivery as it is right after the replay (`pending`).
    Replayed(Box<DeliveryRecord>),
    NotFound,
    /// Only `dead` and `delivered` deliveries can be replayed.
    NotReplayable(DeliveryState),
}
