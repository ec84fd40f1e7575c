//! The SQL behind the admin API and the removed-target sweep: listing,
//! replay, bulk replay and purge of dead letters, dead-lettering a target.
//!
//! Bulk operations change at most `limit` rows per call; the store calls them
//! in a loop, one group-commit transaction each, so no transaction grows past
//! [`crate::queue::BULK_BATCH`] rows and other commands run in between.

use rusqlite::{Connection, OptionalExtension, params};

use super::depth::Moves;
use super::ops::{delete_orphan_events, id_text, parsed, record_from_row};
use crate::queue::{
    DeadReason, DeliveryId, DeliveryPage, DeliveryQuery, DeliveryState, ReplayResult,
};

/// Cursors look like `c1.<seq>`: the prefix versions the format and keeps a
/// bare number (or another store's token) from being taken for one.
const CURSOR_PREFIX: &str = "c1.";

pub(super) fn encode_cursor(seq: i64) -> String {
    format!("{CURSOR_PREFIX}{seq:x}")
}

pub(super) fn decode_cursor(cursor: &str) -> Option<i64> {
    let hex = cursor.strip_prefix(CURSOR_PREFIX)?;
    i64::from_str_radix(hex, 16).ok().filter(|s| *s > 0)
}

/// One page, newest first. `Err(None)` for a cursor this store did not make.
pub(super) fn list(
    conn: &Connection,
    q: &DeliveryQuery,
) -> Result<DeliveryPage, Option<rusqlite::Error>> {
    let before = match &q.cursor {
        Some(c) => decode_cursor(c).ok_or(None)?,
        None => i64::MAX,
    };
    let limit = if q.limit == 0 { 100 } else { q.limit };
    let fetch = i64::try_from(limit + 1).unwrap_or(i64::MAX);
    let mut stmt = conn
        .prepare_cached(
            "SELECT d.id, d.event_id, d.target, d.route, d.state, d.dead_reason,
                    d.attempt_count, d.next_attempt_at, d.last_error, d.created_at,
                    d.updated_at, d.seq
               FROM deliveries d
              WHERE d.seq < ?1
                AND (?2 IS NULL OR d.state = ?2)
                AND (?3 IS NULL OR d.target = ?3)
                AND (?4 IS NULL OR d.event_id = ?4)
              ORDER BY d.seq DESC
              LIMIT ?5",
        )
        .map_err(Some)?;
    let rows = stmt
        .query_map(
            params![
                before,
                q.state.map(DeliveryState::as_str),
                q.target,
                q.event_id.map(id_text),
                fetch
            ],
            |r| Ok((record_from_row(r)?, r.get::<_, i64>(11)?)),
        )
        .map_err(Some)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(Some)?;
    let more = rows.len() > limit;
    let mut deliveries = Vec::with_capacity(limit.min(rows.len()));
    let mut last_seq = None;
    for (record, seq) in rows.into_iter().take(limit) {
        last_seq = Some(seq);
        deliveries.push(record);
    }
    Ok(DeliveryPage {
        deliveries,
        next: if more {
            last_seq.map(encode_cursor)
        } else {
            None
        },
    })
}

/// Replay one delivery. Returns the outcome and, when replayed, its target.
pub(super) fn replay(
    conn: &Connection,
    id: DeliveryId,
    now_ms: i64,
    moves: &mut Moves,
) -> rusqlite::Result<(ReplayResult, Option<(String, i64)>)> {
    let id = id_text(id);
    let found: Option<(String, String, i64)> = conn
        .prepare_cached("SELECT state, target, body_len FROM deliveries WHERE id = ?1")?
        .query_row([&id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let Some((state, target, body_len)) = found else {
        return Ok((ReplayResult::NotFound, None));
    };
    // The CHECK constraint keeps `state` one of the five names.
    let state: DeliveryState = state.parse().unwrap_or(DeliveryState::Pending);
    if !matches!(state, DeliveryState::Dead | DeliveryState::Delivered) {
        return Ok((ReplayResult::NotReplayable(state), None));
    }
    conn.prepare_cached(REPLAY_ONE)?
        .execute(params![id, now_ms])?;
    moves.record(&target, Some(state), Some(DeliveryState::Pending));
    let record = conn
        .prepare_cached(
            "SELECT id, event_id, target, route, state, dead_reason, attempt_count,
                    next_attempt_at, last_error, created_at, updated_at
               FROM deliveries WHERE id = ?1",
        )?
        .query_row([&id], record_from_row)?;
    Ok((
        ReplayResult::Replayed(Box::new(record)),
        Some((target, body_len)),
    ))
}

/// Back to `pending` with a fresh budget; the attempt count goes on.
const REPLAY_ONE: &str = "
    UPDATE deliveries
       SET state = 'pending', dead_reason = NULL, budget_attempts = 0,
           next_attempt_at = ?2, lease_token = NULL, lease_until = NULL, updated_at = ?2
     WHERE id = ?1";

/// Replay up to `limit` dead deliveries (of `target`, or all). Returns how
/// many, the targets touched, and the body bytes back in the backlog.
pub(super) fn replay_dead_batch(
    conn: &Connection,
    target: Option<&str>,
    now_ms: i64,
    limit: usize,
    moves: &mut Moves,
) -> rusqlite::Result<(u64, Vec<String>, i64)> {
    let mut stmt = conn.prepare_cached(
        "UPDATE deliveries
            SET state = 'pending', dead_reason = NULL, budget_attempts = 0,
                next_attempt_at = ?2, lease_token = NULL, lease_until = NULL, updated_at = ?2
          WHERE seq IN (SELECT seq FROM deliveries
                         WHERE state = 'dead' AND (?1 IS NULL OR target = ?1)
                         LIMIT ?3)
      RETURNING target, body_len",
    )?;
    let rows = stmt
        .query_map(params![target, now_ms, batch_limit(limit)], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let n = rows.len() as u64;
    let bytes = rows.iter().map(|(_, b)| b).sum();
    for (t, _) in &rows {
        moves.record(t, Some(DeliveryState::Dead), Some(DeliveryState::Pending));
    }
    let mut distinct: Vec<String> = rows.into_iter().map(|(t, _)| t).collect();
    distinct.sort_unstable();
    distinct.dedup();
    Ok((n, distinct, bytes))
}

/// Delete up to `limit` dead deliveries (of `target`, or all) with their
/// attempts, and the events left without any delivery.
pub(super) fn purge_dead_batch(
    conn: &Connection,
    target: Option<&str>,
    limit: usize,
    moves: &mut Moves,
) -> rusqlite::Result<u64> {
    let mut stmt = conn.prepare_cached(
        "DELETE FROM deliveries
          WHERE seq IN (SELECT seq FROM deliveries
                         WHERE state = 'dead' AND (?1 IS NULL OR target = ?1)
                         LIMIT ?2)
      RETURNING event_id, target",
    )?;
    let rows = stmt
        .query_map(params![target, batch_limit(limit)], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut events = Vec::with_capacity(rows.len());
    for (event, t) in rows {
        moves.record(&t, Some(DeliveryState::Dead), None);
        events.push(event);
    }
    // Attempts go with their delivery (ON DELETE CASCADE); events only once
    // their last delivery is gone.
    delete_orphan_events(conn, &events)?;
    Ok(events.len() as u64)
}

/// Dead-letter up to `limit` waiting deliveries of `target`. Returns how many
/// and the body bytes that left the backlog.
pub(super) fn dead_letter_batch(
    conn: &Connection,
    target: &str,
    reason: DeadReason,
    now_ms: i64,
    limit: usize,
    moves: &mut Moves,
) -> rusqlite::Result<(u64, i64)> {
    let message = format!("target `{target}` is not in the config");
    // Selected first, because RETURNING sees only the new state and the depth
    // counts need the old one (pending or retrying).
    let rows = conn
        .prepare_cached(
            "SELECT seq, state, body_len FROM deliveries
              WHERE target = ?1 AND state IN ('pending', 'retrying')
              LIMIT ?2",
        )?
        .query_map(params![target, batch_limit(limit)], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut update = conn.prepare_cached(
        "UPDATE deliveries
            SET state = 'dead', dead_reason = ?2, next_attempt_at = NULL,
                last_error = ?3, updated_at = ?4
          WHERE seq = ?1",
    )?;
    let mut bytes = 0;
    for (seq, state, body_len) in &rows {
        update.execute(params![seq, reason.as_str(), message, now_ms])?;
        moves.record(target, Some(parsed(1, state)?), Some(DeliveryState::Dead));
        bytes += body_len;
    }
    Ok((rows.len() as u64, bytes))
}

/// Targets with waiting or in-flight deliveries: the distinct targets of the
/// two partial indexes that hold exactly those rows.
pub(super) fn targets_with_work(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(
        "SELECT target FROM deliveries WHERE state IN ('pending', 'retrying')
         UNION
         SELECT target FROM deliveries WHERE state = 'in_flight'",
    )?;
    stmt.query_map([], |r| r.get(0))?.collect()
}

/// When the oldest unfinished delivery of `target` was accepted. `seq` is
/// acceptance order and every index holds it, so each half reads only the
/// target's entries of one partial index (waiting rows, leases), never the
/// table, and one row is looked up at the end.
pub(super) fn oldest_waiting(conn: &Connection, target: &str) -> rusqlite::Result<Option<i64>> {
    let mut stmt = conn.prepare_cached(
        "SELECT created_at FROM deliveries WHERE seq = (SELECT MIN(s) FROM (
             SELECT MIN(seq) AS s FROM deliveries
              WHERE target = ?1 AND state IN ('pending', 'retrying')
             UNION ALL
             SELECT MIN(seq) FROM deliveries WHERE target = ?1 AND state = 'in_flight'))",
    )?;
    stmt.query_row([target], |r| r.get(0)).optional()
}

fn batch_limit(limit: usize) -> i64 {
    i64::try_from(limit.max(1)).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_refused() {
        assert_eq!(decode_cursor(&encode_cursor(12345)), Some(12345));
        for bad in ["", "12345", "c1.", "c1.zz", "c2.10", "c1.-5", "c1.0"] {
            assert_eq!(decode_cursor(bad), None, "{bad}");
        }
    }
}
