//! Ordered delivery's lanes (DESIGN.md section 6, `ordering.key`): the SQL
//! that keeps, per key of an ordered target, one delivery at the head and
//! the rest waiting behind it, in acceptance order.
//!
//! How a lane is stored, with no state in memory per key:
//!
//! - `ordered_targets` records the payload path each ordered target is
//!   ordered by; the writer keeps a copy ([`Orderings`]) to key enqueues.
//! - A delivery of an ordered target carries its key in `order_key`.
//! - `lanes` has one row per key that has unfinished deliveries: the head's
//!   id and how many wait behind it. An idle key has no row. The head is
//!   named by its id, known before its row is written, so placing a new
//!   delivery and ending a head with nothing behind it are one statement each
//!   (the cost per delivery of an ordered target, docs/performance.md).
//! - A delivery waiting behind its head is *held*: `pending` with no due
//!   time (`next_attempt_at IS NULL`). Claims skip it (their range on
//!   `deliveries_due` starts past NULLs); `deliveries_held` finds the next
//!   one of a key.
//!
//! The head is claimed, retried and leased like any delivery; only when it
//! ends (delivered or dead) is the next held delivery of its key given its
//! due time back (its acceptance time, so it keeps its place) and made the
//! head. Everything here runs on the writer thread inside the batch
//! transaction, so a lane changes only with the rows it describes.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, params};

use super::ops::{id_text, parsed, uuid_at};
use crate::queue::{
    BlockedKey, BlockedKeys, DeliveryId, DeliveryState, KeyReader, NewDelivery, OrderingChange,
    ordering_path,
};

/// Per ordered target, the path (as [`ordering_path`] writes it) and its
/// segments: the writer's copy of `ordered_targets`.
#[derive(Debug, Default, Clone)]
pub(super) struct Orderings(HashMap<String, (String, Vec<String>)>);

impl Orderings {
    /// Read the table (at open, and again after a batch that failed).
    pub(super) fn load(conn: &Connection) -> rusqlite::Result<Orderings> {
        let mut stmt = conn.prepare("SELECT target, path FROM ordered_targets")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        let mut out = HashMap::new();
        for row in rows {
            let (target, path) = row?;
            let segments = path.split('.').map(str::to_owned).collect();
            out.insert(target, (path, segments));
        }
        Ok(Orderings(out))
    }

    /// The path `target` is ordered by, if it is.
    pub(super) fn path(&self, target: &str) -> Option<&str> {
        self.0.get(target).map(|(p, _)| p.as_str())
    }

    /// The key of a new delivery: `None` when its target is not ordered.
    /// The key ingress computed is used when it was read at the same path;
    /// otherwise (a reload raced the enqueue) it is read from the body.
    pub(super) fn key_of(&self, d: &NewDelivery, body: &[u8]) -> Option<String> {
        let (path, segments) = self.0.get(&d.target)?;
        Some(match &d.order {
            Some(k) if k.path == *path => k.value.clone(),
            _ => KeyReader::new(segments).key(body),
        })
    }

    fn set(&mut self, target: &str, path: Option<&[String]>) {
        match path {
            Some(segments) => {
                self.0.insert(
                    target.to_owned(),
                    (ordering_path(segments), segments.to_vec()),
                );
            }
            None => {
                self.0.remove(target);
            }
        }
    }
}

/// Place new delivery `id` in `key`'s lane: it heads a new lane when the key
/// has none (one insert, the common case), else it waits behind the head.
/// Returns whether it is held.
pub(super) fn join(
    conn: &Connection,
    target: &str,
    key: &str,
    id: DeliveryId,
) -> rusqlite::Result<bool> {
    let opened = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO lanes (target, key, head_id, waiting) VALUES (?1, ?2, ?3, 0)",
        )?
        .execute(params![target, key, id_text(id)])?;
    if opened == 1 {
        return Ok(false);
    }
    conn.prepare_cached("UPDATE lanes SET waiting = waiting + 1 WHERE target = ?1 AND key = ?2")?
        .execute(params![target, key])?;
    Ok(true)
}

/// What ending a head did to its lane.
#[derive(Debug)]
pub(super) struct Released {
    pub(super) key: String,
    /// The delivery that is the key's head now (due at its acceptance time),
    /// or `None`: nothing waited, the lane is gone.
    pub(super) next: Option<DeliveryId>,
}

/// Delivery `id` of `key` ended (delivered or dead). When it was its lane's
/// head, the next held delivery becomes the head; a delivery that was not
/// (a replayed one, or one attempted before its target gained ordering)
/// leaves the lane as it is.
pub(super) fn finish(
    conn: &Connection,
    target: &str,
    key: &str,
    id: DeliveryId,
) -> rusqlite::Result<Option<Released>> {
    let id = id_text(id);
    // The common case in one statement: a head with nothing behind it.
    let gone = conn
        .prepare_cached(
            "DELETE FROM lanes WHERE target = ?1 AND key = ?2 AND head_id = ?3 AND waiting = 0",
        )?
        .execute(params![target, key, id])?;
    if gone == 1 {
        return Ok(Some(Released {
            key: key.to_owned(),
            next: None,
        }));
    }
    let next: Option<(i64, DeliveryId)> = conn
        .prepare_cached(
            "SELECT seq, id FROM deliveries
              WHERE target = ?1 AND order_key = ?2 AND state = 'pending' AND next_attempt_at IS NULL
              ORDER BY seq LIMIT 1",
        )?
        .query_row(params![target, key], |r| Ok((r.get(0)?, uuid_at(r, 1)?)))
        .optional()?;
    let Some((next_seq, next_id)) = next else {
        // Nobody waits although `waiting` said so (a held delivery was
        // dead-lettered or purged): a lane this delivery heads ends.
        let gone = conn
            .prepare_cached("DELETE FROM lanes WHERE target = ?1 AND key = ?2 AND head_id = ?3")?
            .execute(params![target, key, id])?;
        return Ok((gone == 1).then(|| Released {
            key: key.to_owned(),
            next: None,
        }));
    };
    // Hand the lane on only if this delivery heads it (one that does not,
    // a replayed one say, changes nothing).
    let handed = conn
        .prepare_cached(
            "UPDATE lanes SET head_id = ?4, waiting = MAX(waiting - 1, 0)
              WHERE target = ?1 AND key = ?2 AND head_id = ?3",
        )?
        .execute(params![target, key, id, id_text(next_id)])?;
    if handed == 0 {
        return Ok(None);
    }
    conn.prepare_cached("UPDATE deliveries SET next_attempt_at = created_at WHERE seq = ?1")?
        .execute([next_seq])?;
    Ok(Some(Released {
        key: key.to_owned(),
        next: Some(next_id),
    }))
}

/// Order `target` by `path` (or not at all), rebuilding its lanes from the
/// stored rows; `orderings` follows once this succeeded.
pub(super) fn set_ordering(
    conn: &Connection,
    orderings: &mut Orderings,
    target: &str,
    path: Option<&[String]>,
) -> rusqlite::Result<OrderingChange> {
    let wanted = path.map(ordering_path);
    if orderings.path(target) == wanted.as_deref() {
        return Ok(OrderingChange {
            unchanged: true,
            ..OrderingChange::default()
        });
    }
    let mut change = OrderingChange {
        released: release_all(conn, target)?,
        ..OrderingChange::default()
    };
    if let (Some(segments), Some(wanted)) = (path, &wanted) {
        conn.prepare_cached("INSERT INTO ordered_targets (target, path) VALUES (?1, ?2)")?
            .execute(params![target, wanted])?;
        let (held, lanes) = build_lanes(conn, target, segments)?;
        change.held = held;
        change.lanes = lanes;
    }
    orderings.set(target, path);
    Ok(change)
}

/// Let every held delivery of `target` go (due at its acceptance time, so
/// they leave in acceptance order) and forget its lanes and its path.
/// Returns how many were held.
fn release_all(conn: &Connection, target: &str) -> rusqlite::Result<u64> {
    let released = conn
        .prepare_cached(
            "UPDATE deliveries SET next_attempt_at = created_at
              WHERE target = ?1 AND state = 'pending' AND next_attempt_at IS NULL",
        )?
        .execute([target])?;
    conn.prepare_cached("DELETE FROM lanes WHERE target = ?1")?
        .execute([target])?;
    conn.prepare_cached("DELETE FROM ordered_targets WHERE target = ?1")?
        .execute([target])?;
    Ok(released as u64)
}

/// Key every unfinished delivery of `target`, in acceptance order: the
/// first of each key heads its lane, later ones not yet attempted are held
/// behind it. Later ones already attempted (before the target was ordered)
/// finish as they are: holding an attempt half-way would be no better
/// order. Returns (held, lanes).
fn build_lanes(
    conn: &Connection,
    target: &str,
    segments: &[String],
) -> rusqlite::Result<(u64, u64)> {
    let reader = KeyReader::new(segments);
    let mut lanes: HashMap<String, (String, u64)> = HashMap::new();
    let mut held = 0u64;
    let mut set_key = conn.prepare_cached("UPDATE deliveries SET order_key = ?2 WHERE seq = ?1")?;
    let mut set_held = conn.prepare_cached(
        "UPDATE deliveries SET order_key = ?2, next_attempt_at = NULL WHERE seq = ?1",
    )?;
    let mut rows = conn.prepare(
        "SELECT d.seq, d.state, d.attempt_count, e.body, d.id
           FROM deliveries d JOIN events e ON e.id = d.event_id
          WHERE d.target = ?1 AND d.state IN ('pending', 'in_flight', 'retrying')
          ORDER BY d.seq",
    )?;
    let mut q = rows.query([target])?;
    while let Some(row) = q.next()? {
        let seq: i64 = row.get(0)?;
        let state: DeliveryState = parsed(1, &row.get::<_, String>(1)?)?;
        let attempts: i64 = row.get(2)?;
        let body = row.get_ref(3)?.as_blob().map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(3, rusqlite::types::Type::Blob, Box::new(e))
        })?;
        let key = reader.key(body);
        match lanes.get_mut(&key) {
            Some((_, waiting)) if state == DeliveryState::Pending && attempts == 0 => {
                set_held.execute(params![seq, key])?;
                *waiting += 1;
                held += 1;
            }
            Some(_) => {
                set_key.execute(params![seq, key])?;
            }
            None => {
                set_key.execute(params![seq, key])?;
                lanes.insert(key, (row.get(4)?, 0));
            }
        }
    }
    let mut insert = conn.prepare_cached(
        "INSERT INTO lanes (target, key, head_id, waiting) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (key, (head, waiting)) in &lanes {
        insert.execute(params![target, key, head, *waiting as i64])?;
    }
    Ok((held, lanes.len() as u64))
}

/// The head a held delivery waits behind (for its detail).
pub(super) fn waiting_for(
    conn: &Connection,
    target: &str,
    key: &str,
) -> rusqlite::Result<Option<DeliveryId>> {
    conn.prepare_cached("SELECT head_id FROM lanes WHERE target = ?1 AND key = ?2")?
        .query_row(params![target, key], |r| uuid_at(r, 0))
        .optional()
}

/// The keys of `target` with deliveries waiting behind their head (on the
/// reader thread): a walk of the target's lanes, one row per busy key.
pub(super) fn blocked_keys(
    conn: &Connection,
    target: &str,
    limit: usize,
) -> rusqlite::Result<BlockedKeys> {
    let path: Option<String> = conn
        .prepare_cached("SELECT path FROM ordered_targets WHERE target = ?1")?
        .query_row([target], |r| r.get(0))
        .optional()?;
    let blocked: i64 = conn
        .prepare_cached("SELECT COUNT(*) FROM lanes WHERE target = ?1 AND waiting > 0")?
        .query_row([target], |r| r.get(0))?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut stmt = conn.prepare_cached(
        "SELECT l.key, d.id, d.state, d.attempt_count, d.next_attempt_at, d.last_error, l.waiting
           FROM lanes l JOIN deliveries d ON d.id = l.head_id
          WHERE l.target = ?1 AND l.waiting > 0
          ORDER BY d.seq LIMIT ?2",
    )?;
    let keys = stmt
        .query_map(params![target, limit], |r| {
            Ok(BlockedKey {
                key: r.get(0)?,
                head: uuid_at(r, 1)?,
                head_state: parsed(2, &r.get::<_, String>(2)?)?,
                head_attempts: r.get(3)?,
                head_next_attempt_at_ms: r.get(4)?,
                head_last_error: r.get(5)?,
                waiting: u64::try_from(r.get::<_, i64>(6)?).unwrap_or(0),
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(BlockedKeys {
        path,
        blocked: u64::try_from(blocked).unwrap_or(0),
        keys,
    })
}
