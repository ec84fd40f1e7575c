//! Ordered delivery as the stores see it (DESIGN.md section 6,
//! `ordering.key`): the key a delivery carries, how a path is named, what a
//! change of ordering did, the blocked keys the admin API shows, reading a
//! key back out of a stored body, and the log line of a dead head.
//!
//! Each backend keeps its lanes its own way (`sqlite::lanes`, the Redis
//! scripts); the behaviour they share is the conformance suite's `ordering`
//! cases.

use crate::event::FieldSet;
use crate::queue::{DeliveryId, DeliveryState};

/// A delivery's key on an ordered target (DESIGN.md section 6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderKey {
    /// The payload path it was read at, its segments joined by `.`
    /// (`data.status`): see [`ordering_path`].
    pub path: String,
    /// The value there, as [`crate::rules::lane_key`] writes it.
    pub value: String,
}

/// How a store names an ordering path: its segments joined by `.` (a segment
/// never holds a `.`, so the text is unambiguous).
pub fn ordering_path<S: AsRef<str>>(segments: &[S]) -> String {
    let mut out = String::new();
    for (i, s) in segments.iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        out.push_str(s.as_ref());
    }
    out
}

/// What [`super::DeliveryQueue::set_ordering`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OrderingChange {
    /// The store already ordered the target this way: nothing was touched.
    pub unchanged: bool,
    /// Deliveries that left their lanes and now wait for their due time only.
    pub released: u64,
    /// Deliveries not yet attempted that now wait behind an earlier one of their key.
    pub held: u64,
    /// Keys with a lane (a delivery at their head) after the change.
    pub lanes: u64,
}

/// A key of an ordered target whose deliveries wait behind its head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockedKey {
    /// The key as stored ([`crate::rules::lane_key`]; empty: the "no key" lane).
    pub key: String,
    /// The delivery at its head: the one that must be delivered or dead first.
    pub head: DeliveryId,
    pub head_state: DeliveryState,
    pub head_attempts: u32,
    pub head_next_attempt_at_ms: Option<i64>,
    pub head_last_error: Option<String>,
    /// Deliveries of the key waiting behind the head.
    pub waiting: u64,
}

/// The blocked keys of one ordered target.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockedKeys {
    /// The path the store orders the target by (`None`: not ordered).
    pub path: Option<String>,
    /// How many keys have deliveries waiting behind their head.
    pub blocked: u64,
    /// Some of them, the oldest heads first.
    pub keys: Vec<BlockedKey>,
}

/// Reads the key at one path from stored bodies, parsing only that path
/// (a store that keys deliveries itself: a rebuild, or a path that changed
/// under an enqueue).
pub struct KeyReader<'a> {
    fields: FieldSet,
    segments: &'a [String],
}

impl<'a> KeyReader<'a> {
    pub fn new(segments: &'a [String]) -> Self {
        let mut fields = FieldSet::default();
        fields.insert(segments);
        KeyReader { fields, segments }
    }

    /// A stored body is a JSON object ingress accepted; one that no longer
    /// parses goes to the "no key" lane.
    pub fn key(&self, body: &[u8]) -> String {
        let mut de = serde_json::Deserializer::from_slice(body);
        match self.fields.parse(&mut de) {
            Ok(value) => crate::rules::lane_key(&value, self.segments),
            Err(_) => crate::rules::NO_KEY.to_owned(),
        }
    }
}

/// Say that a dead head released its key (DESIGN.md section 6): the next
/// delivery of the key goes out although this one never arrived.
pub(crate) fn log_dead_head(target: &str, head: DeliveryId, key: &str, next: Option<DeliveryId>) {
    // A key is payload data: shown in full only when short.
    let key = shown_key(key);
    match next {
        Some(next) => tracing::warn!(
            %target,
            delivery_id = %head,
            key = %key,
            next_delivery_id = %next,
            "the head of an ordered key is dead: the key is released and its next delivery goes out"
        ),
        None => tracing::warn!(
            %target,
            delivery_id = %head,
            key = %key,
            "the head of an ordered key is dead: the key is released (nothing waited behind it)"
        ),
    }
}

/// A stored key as a log line shows it: the "no key" lane by name, a long
/// key cut short.
fn shown_key(key: &str) -> String {
    const SHOWN: usize = 64;
    if key.is_empty() {
        return "(no key)".to_owned();
    }
    match key.char_indices().nth(SHOWN) {
        Some((cut, _)) => format!("{}…", &key[..cut]),
        None => key.to_owned(),
    }
}
