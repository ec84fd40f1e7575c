//! The SQL of each store operation, run by the writer thread on its connection
//! (inside the batch transaction and a savepoint, for writes).

use bytes::Bytes;
use rusqlite::{Connection, OptionalExtension, Row, params};
use uuid::Uuid;

use super::depth::Moves;
use crate::queue::{
    AttemptRecord, Claim, Completed, Completion, DeadReason, DeliveryDetail, DeliveryId,
    DeliveryRecord, DeliveryState, Enqueued, LeaseToken, NewEvent, NextState, RECORD_FORMAT,
};

/// The most of a response body kept per attempt (DESIGN.md section 5: first 1 KiB).
const EXCERPT_MAX: usize = 1024;

/// Due deliveries of one target, oldest due first, then in acceptance order.
/// The `state IN (..)` term is written exactly as in the partial index
/// `deliveries_due`, which is what lets SQLite use it (see schema.rs).
pub(super) const CLAIM_SELECT: &str = "
    SELECT d.seq, d.id, d.event_id, d.route, d.attempt_count, d.budget_attempts,
           e.source, e.received_at, e.body, d.state
      FROM deliveries d JOIN events e ON e.id = d.event_id
     WHERE d.target = ?1 AND d.state IN ('pending', 'retrying') AND d.next_attempt_at <= ?2
     ORDER BY d.next_attempt_at, d.seq
     LIMIT ?3";

pub(super) const NEXT_DUE: &str = "
    SELECT next_attempt_at FROM deliveries
     WHERE target = ?1 AND state IN ('pending', 'retrying')
     ORDER BY next_attempt_at, seq
     LIMIT 1";

pub(super) fn id_text(id: Uuid) -> String {
    id.hyphenated().to_string()
}

/// A stored id column; a malformed one is a conversion error (no value echoed).
fn uuid_at(row: &Row<'_>, idx: usize) -> rusqlite::Result<Uuid> {
    let text: String = row.get(idx)?;
    Uuid::parse_str(&text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn parsed<T: std::str::FromStr<Err = String>>(idx: usize, text: &str) -> rusqlite::Result<T> {
    text.parse().map_err(|e: String| {
        rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, e.into())
    })
}

fn ms(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Insert the event and its deliveries, unless a fresh dedupe key says it was
/// accepted before. A repeated event id or a target listed twice violates a
/// UNIQUE constraint; the caller's savepoint undoes the rest.
///
/// `full` says the backlog is at its limit: checked after the dedupe key, so a
/// duplicate is still recognised when the queue is full (DESIGN.md section 4
/// puts dedupe before 503).
pub(super) fn enqueue(
    conn: &Connection,
    ev: &NewEvent,
    full: bool,
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
    let mut insert = conn.prepare_cached(
        "INSERT INTO deliveries
             (id, event_id, target, route, state, next_attempt_at, created_at, updated_at, format,
              body_len)
         VALUES (?1, ?2, ?3, ?4, 'pending', ?5, ?5, ?5, ?6, ?7)",
    )?;
    let body_len = i64::try_from(ev.body.len()).unwrap_or(i64::MAX);
    for d in &ev.deliveries {
        insert.execute(params![
            id_text(d.id),
            event_id,
            d.target,
            d.route,
            ev.received_at_ms,
            RECORD_FORMAT,
            body_len
        ])?;
        moves.record(&d.target, None, Some(DeliveryState::Pending));
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

/// Select and lease up to `limit` due deliveries. Only the writer thread writes,
/// so nothing can slip in between the SELECT and the UPDATEs.
pub(super) fn claim(
    conn: &Connection,
    target: &str,
    now_ms: i64,
    limit: usize,
    moves: &mut Moves,
) -> rusqlite::Result<Vec<Claim>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut rows: Vec<(i64, Claim)> = Vec::new();
    {
        let mut select = conn.prepare_cached(CLAIM_SELECT)?;
        let mut q = select.query(params![target, now_ms, limit])?;
        while let Some(row) = q.next()? {
            let body: Vec<u8> = row.get(8)?;
            let state: String = row.get(9)?;
            moves.record(
                target,
                Some(parsed(9, &state)?),
                Some(DeliveryState::InFlight),
            );
            rows.push((
                row.get(0)?,
                Claim {
                    delivery_id: uuid_at(row, 1)?,
                    event_id: uuid_at(row, 2)?,
                    target: target.to_owned(),
                    route: row.get(3)?,
                    attempts_made: row.get(4)?,
                    attempts_in_budget: row.get(5)?,
                    source: row.get(6)?,
                    received_at_ms: row.get(7)?,
                    body: Bytes::from(body),
                    lease: LeaseToken::new(),
                },
            ));
        }
    }
    // The due time stays as it was: a released or crash-recovered delivery
    // keeps its place in the claim order.
    let mut lease = conn.prepare_cached(
        "UPDATE deliveries SET state = 'in_flight', lease_token = ?2, updated_at = ?3
          WHERE seq = ?1",
    )?;
    for (seq, claim) in &rows {
        lease.execute(params![seq, id_text(claim.lease.0), now_ms])?;
    }
    Ok(rows.into_iter().map(|(_, c)| c).collect())
}

/// What a completion changed besides the row.
#[derive(Debug, Default)]
pub(super) struct CompletionEffects {
    /// The target, when the delivery was rescheduled (its worker must
    /// re-evaluate its next due time).
    pub(super) wake: Option<String>,
    /// The body length, when the delivery left the backlog (delivered or dead).
    pub(super) finished_bytes: Option<i64>,
}

/// Record one attempt.
pub(super) fn complete(
    conn: &Connection,
    c: &Completion,
    moves: &mut Moves,
) -> rusqlite::Result<(Completed, CompletionEffects)> {
    let a = &c.attempt;
    let (state, dead_reason, next_at) = match c.next {
        NextState::Delivered => (DeliveryState::Delivered, None, None),
        NextState::RetryAt(t) => (DeliveryState::Retrying, None, Some(t)),
        NextState::Dead(reason) => (DeliveryState::Dead, Some(reason.as_str()), None),
    };
    // A delivered attempt keeps the previous failure's text: it still explains
    // why earlier attempts were retried.
    let last_error = match c.next {
        NextState::Delivered => None,
        _ => a
            .error
            .clone()
            .or_else(|| a.status.map(|s| format!("HTTP {s}"))),
    };
    let finished_at = a.at_ms.saturating_add(ms(a.duration_ms));
    let updated: Option<(u32, String, i64)> = conn
        .prepare_cached(
            "UPDATE deliveries
                SET attempt_count = attempt_count + 1,
                    budget_attempts = budget_attempts + 1,
                    state = ?3, dead_reason = ?4, next_attempt_at = ?5,
                    last_error = CASE WHEN ?3 = 'delivered' THEN last_error ELSE ?6 END,
                    updated_at = ?7, lease_token = NULL
              WHERE id = ?1 AND state = 'in_flight' AND lease_token = ?2
          RETURNING attempt_count, target, body_len",
        )?
        .query_row(
            params![
                id_text(c.delivery_id),
                id_text(c.lease.0),
                state.as_str(),
                dead_reason,
                next_at,
                last_error,
                finished_at
            ],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let Some((n, target, body_len)) = updated else {
        return Ok((Completed::StaleLease, CompletionEffects::default()));
    };
    moves.record(&target, Some(DeliveryState::InFlight), Some(state));
    conn.prepare_cached(
        "INSERT INTO attempts
             (delivery_id, n, at, status, error, duration_ms, response_excerpt, format)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        id_text(c.delivery_id),
        n,
        a.at_ms,
        a.status,
        a.error,
        ms(a.duration_ms),
        a.response_excerpt.as_deref().map(cap_excerpt),
        RECORD_FORMAT
    ])?;
    let retry = matches!(c.next, NextState::RetryAt(_));
    Ok((
        Completed::Recorded,
        CompletionEffects {
            wake: retry.then_some(target),
            finished_bytes: (!retry).then_some(body_len),
        },
    ))
}

/// Undo a claim without counting an attempt. Returns the target when the lease
/// matched (the delivery is claimable again, so its worker is woken).
pub(super) fn release(
    conn: &Connection,
    id: DeliveryId,
    lease: LeaseToken,
    moves: &mut Moves,
) -> rusqlite::Result<Option<String>> {
    let released: Option<(String, String)> = conn
        .prepare_cached(
            "UPDATE deliveries
            SET state = CASE WHEN attempt_count = 0 THEN 'pending' ELSE 'retrying' END,
                lease_token = NULL
          WHERE id = ?1 AND state = 'in_flight' AND lease_token = ?2
      RETURNING target, state",
        )?
        .query_row(params![id_text(id), id_text(lease.0)], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    let Some((target, state)) = released else {
        return Ok(None);
    };
    moves.record(
        &target,
        Some(DeliveryState::InFlight),
        Some(parsed(1, &state)?),
    );
    Ok(Some(target))
}

pub(super) fn next_due(conn: &Connection, target: &str) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached(NEXT_DUE)?
        .query_row([target], |r| r.get(0))
        .optional()
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
                    d.updated_at, e.source, e.body
               FROM deliveries d JOIN events e ON e.id = d.event_id
              WHERE d.id = ?1",
        )?
        .query_row([&id], |r| {
            let record = record_from_row(r)?;
            let body: Vec<u8> = r.get(12)?;
            Ok((record, r.get::<_, String>(11)?, Bytes::from(body)))
        })
        .optional()?;
    let Some((record, source, event_body)) = found else {
        return Ok(None);
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

/// The first `EXCERPT_MAX` bytes, cut at a character boundary (the delivery
/// engine already cuts; this keeps a careless caller from bloating the file).
fn cap_excerpt(s: &str) -> &str {
    if s.len() <= EXCERPT_MAX {
        return s;
    }
    let mut end = EXCERPT_MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::cap_excerpt;

    #[test]
    fn excerpt_is_cut_on_a_char_boundary() {
        let s = "é".repeat(600); // 1200 bytes
        let cut = cap_excerpt(&s);
        assert_eq!(cut.len(), 1024);
        assert_eq!(cap_excerpt("short"), "short");
    }
}
