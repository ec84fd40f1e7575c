//! The SQL of storing events and reading them back: enqueue, retention
//! pruning, one delivery's detail, the writability check, and the row helpers
//! the other SQL files share. Claims and completions are in [`super::lease`].

use bytes::Bytes;
use rusqlite::{Connection, OptionalExtension, Row, params};
use uuid::Uuid;

use super::depth::Moves;
use super::lanes;
use crate::queue::{
    AttemptRecord, DeadReason, DeliveryDetail, DeliveryId, DeliveryRecord, DeliveryState, Enqueued,
    LeaseToken, NewEvent, RECORD_FORMAT,
};

pub(super) fn id_text(id: Uuid) -> String {
    id.hyphenated().to_string()
}

/// A stored id column; a malformed one is a conversion error (no value echoed).
pub(super) fn uuid_at(row: &Row<'_>, idx: usize) -> rusqlite::Result<Uuid> {
    let text: String = row.get(idx)?;
    Uuid::parse_str(&text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, Box::new(e))
    })
}

pub(super) fn parsed<T: std::str::FromStr<Err = String>>(
    idx: usize,
    text: &str,
) -> rusqlite::Result<T> {
    text.parse().map_err(|e: String| {
        rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, e.into())
    })
}

/// A lease a delivery is stored under at once (handed off, see
/// `queue::hand_off`): its token and when it expires.
pub(super) type Lease = (LeaseToken, i64);

/// How one new delivery is stored.
#[derive(Debug, Default)]
pub(super) struct Placement {
    /// Stored `in_flight` under this lease (handed off), else `pending`.
    /// Dropped by [`enqueue`] when the delivery is held.
    pub(super) lease: Option<Lease>,
    /// Its key, when its target is ordered (see `lanes`).
    pub(super) key: Option<String>,
    /// Set by [`enqueue`]: its key's lane had a head, so it was stored held
    /// behind it (pending, no due time).
    pub(super) held: bool,
}

/// Insert the event and its deliveries, unless a fresh dedupe key says it was
/// accepted before. The delivery at index `i` is stored as `placements[i]`
/// says. A repeated event id or a target listed twice violates a UNIQUE
/// constraint; the caller's savepoint undoes the rest.
///
/// `full` says the backlog is at its limit: checked after the dedupe key, so a
/// duplicate is still recognised when the queue is full (DESIGN.md section 4
/// puts dedupe before 503).
pub(super) fn enqueue(
    conn: &Connection,
    ev: &NewEvent,
    full: bool,
    placements: &mut [Placement],
    moves: &mut Moves,
) -> rusqlite::Result<Enqueued> {
    let event_id = id_text(ev.id);
    if let Some(dedupe) = &ev.dedupe {
        let first: Option<String> = conn
            .prepare_cached("SELECT event_id FROM dedupe WHERE key = ?1 AND expires_at > ?2")?
            .query_row(params![&dedupe.key[..], ev.received_at_ms], |r| r.get(0))
            .optional()?;
        if let Some(first) = first {
            let id = Uuid::parse_str(&first).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(
                    0,
                    rusqlite::types::Type::Text,
                    Box::new(e),
                )
            })?;
            return Ok(Enqueued::Duplicate(id));
        }
        if full {
            return Ok(Enqueued::Full);
        }
        // An expired key is replaced: the window counts from this acceptance.
        conn.prepare_cached(
            "INSERT INTO dedupe (key, event_id, expires_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (key) DO UPDATE SET event_id = excluded.event_id,
                                             expires_at = excluded.expires_at",
        )?
        .execute(params![&dedupe.key[..], event_id, dedupe.expires_at_ms])?;
    }
    if full {
        return Ok(Enqueued::Full);
    }
    conn.prepare_cached(
        "INSERT INTO events (id, source, received_at, body, format) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        event_id,
        ev.source,
        ev.received_at_ms,
        &ev.body[..],
        RECORD_FORMAT
    ])?;
    // A handed-off delivery keeps its due time: released, it takes its place
    // in the claim order like any other. A held one has none until its
    // key's head ends.
    let mut insert = conn.prepare_cached(
        "INSERT INTO deliveries
             (id, event_id, target, route, state, next_attempt_at, created_at, updated_at, format,
              body_len, lease_token, lease_until, order_key)
         VALUES (?1, ?2, ?3, ?4, ?8, ?11, ?5, ?5, ?6, ?7, ?9, ?10, ?12)",
    )?;
    let body_len = i64::try_from(ev.body.len()).unwrap_or(i64::MAX);
    let mut unplaced = Placement::default();
    for (i, d) in ev.deliveries.iter().enumerate() {
        let place = match placements.get_mut(i) {
            Some(p) => p,
            None => &mut unplaced,
        };
        if let Some(key) = &place.key {
            place.held = lanes::join(conn, &d.target, key, d.id)?;
            if place.held {
                place.lease = None; // it waits for its head, not a worker
            }
        }
        let lease = place.lease;
        let state = match lease {
            Some(_) => DeliveryState::InFlight,
            None => DeliveryState::Pending,
        };
        let due = (!place.held).then_some(ev.received_at_ms);
        insert.execute(params![
            id_text(d.id),
            event_id,
            d.target,
            d.route,
            ev.received_at_ms,
            RECORD_FORMAT,
            body_len,
            state.as_str(),
            lease.map(|(token, _)| id_text(token.0)),
            lease.map(|(_, until)| until),
            due,
            place.key,
        ])?;
        moves.record(&d.target, None, Some(state));
    }
    Ok(Enqueued::Stored)
}

/// Delete up to `limit` delivered deliveries last updated before `before_ms`
/// (attempts go with them), the events left without deliveries, and up to
/// `limit` expired dedupe keys. Returns the deliveries deleted.
pub(super) fn prune_batch(
    conn: &Connection,
    before_ms: i64,
    now_ms: i64,
    limit: usize,
    moves: &mut Moves,
) -> rusqlite::Result<u64> {
    let limit = i64::try_from(limit.max(1)).unwrap_or(i64::MAX);
    let mut stmt = conn.prepare_cached(
        "DELETE FROM deliveries
          WHERE seq IN (SELECT seq FROM deliveries
                         WHERE state = 'delivered' AND updated_at < ?1
                         LIMIT ?2)
      RETURNING event_id, target",
    )?;
    let rows = stmt
        .query_map(params![before_ms, limit], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut events = Vec::with_capacity(rows.len());
    for (event, target) in rows {
        moves.record(&target, Some(DeliveryState::Delivered), None);
        events.push(event);
    }
    delete_orphan_events(conn, &events)?;
    conn.prepare_cached(
        "DELETE FROM dedupe WHERE key IN
            (SELECT key FROM dedupe WHERE expires_at <= ?1 LIMIT ?2)",
    )?
    .execute(params![now_ms, limit])?;
    Ok(events.len() as u64)
}

/// Delete these events if no delivery refers to them any more.
pub(super) fn delete_orphan_events(conn: &Connection, events: &[String]) -> rusqlite::Result<()> {
    let mut orphan = conn.prepare_cached(
        "DELETE FROM events WHERE id = ?1
            AND NOT EXISTS (SELECT 1 FROM deliveries WHERE event_id = ?1)",
    )?;
    for event in events {
        orphan.execute([event])?;
    }
    Ok(())
}

pub(super) fn delivery(
    conn: &Connection,
    id: DeliveryId,
) -> rusqlite::Result<Option<DeliveryDetail>> {
    let id = id_text(id);
    let found = conn
        .prepare_cached(
            "SELECT d.id, d.event_id, d.target, d.route, d.state, d.dead_reason,
                    d.attempt_count, d.next_attempt_at, d.last_error, d.created_at,
                    d.updated_at, e.source, e.body, d.order_key
               FROM deliveries d JOIN events e ON e.id = d.event_id
              WHERE d.id = ?1",
        )?
        .query_row([&id], |r| {
            let record = record_from_row(r)?;
            let body: Vec<u8> = r.get(12)?;
            Ok((
                record,
                r.get::<_, String>(11)?,
                Bytes::from(body),
                r.get::<_, Option<String>>(13)?,
            ))
        })
        .optional()?;
    let Some((record, source, event_body, order_key)) = found else {
        return Ok(None);
    };
    let held = record.state == DeliveryState::Pending && record.next_attempt_at_ms.is_none();
    let waiting_for = match &order_key {
        Some(key) if held => lanes::waiting_for(conn, &record.target, key)?,
        _ => None,
    };
    let mut stmt = conn.prepare_cached(
        "SELECT n, at, duration_ms, status, error, response_excerpt
           FROM attempts WHERE delivery_id = ?1 ORDER BY n",
    )?;
    let attempts = stmt
        .query_map([&id], |r| {
            let duration: i64 = r.get(2)?;
            Ok((
                r.get::<_, u32>(0)?,
                AttemptRecord {
                    at_ms: r.get(1)?,
                    duration_ms: u64::try_from(duration).unwrap_or(0),
                    status: r.get(3)?,
                    error: r.get(4)?,
                    response_excerpt: r.get(5)?,
                },
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Some(DeliveryDetail {
        record,
        attempts,
        source,
        event_body,
        order_key,
        waiting_for,
    }))
}

/// A delivery record from columns 0..=10 in the order `id, event_id, target,
/// route, state, dead_reason, attempt_count, next_attempt_at, last_error,
/// created_at, updated_at`.
pub(super) fn record_from_row(r: &Row<'_>) -> rusqlite::Result<DeliveryRecord> {
    let state: String = r.get(4)?;
    let dead: Option<String> = r.get(5)?;
    Ok(DeliveryRecord {
        id: uuid_at(r, 0)?,
        event_id: uuid_at(r, 1)?,
        target: r.get(2)?,
        route: r.get(3)?,
        state: parsed(4, &state)?,
        dead_reason: dead.map(|d| parsed::<DeadReason>(5, &d)).transpose()?,
        attempt_count: r.get(6)?,
        next_attempt_at_ms: r.get(7)?,
        last_error: r.get(8)?,
        created_at_ms: r.get(9)?,
        updated_at_ms: r.get(10)?,
    })
}

/// A real write (not just `BEGIN IMMEDIATE`): it must reach the disk with the
/// batch's commit, so a full or read-only disk makes `/readyz` fail.
pub(super) fn touch(conn: &Connection, now_ms: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO meta (key, value) VALUES ('last_writable_check', ?1)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )?
    .execute([now_ms.to_string()])?;
    Ok(())
}
