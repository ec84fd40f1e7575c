//! The SQL of a delivery's lease: claiming due deliveries, recording an
//! attempt's outcome (and, for an ordered target's head, handing its key on:
//! see `lanes`), handing a claim back, and the next due time, run by the
//! writer thread inside the batch transaction and a savepoint.

use bytes::Bytes;
use rusqlite::{Connection, OptionalExtension, params};

use super::depth::Moves;
use super::lanes;
use super::ops::{id_text, parsed, uuid_at};
use crate::queue::{
    Claim, Completed, Completion, DeliveryId, DeliveryState, LeaseToken, NextState, RECORD_FORMAT,
};

/// Due deliveries of one target, oldest due first, then in acceptance order.
/// The `state IN (..)` term is written exactly as in the partial index
/// `deliveries_due`, which is what lets SQLite use it (see schema.rs).
/// `LIMIT ?3 + 0`, not `LIMIT ?3`: SQLite's planner reads a bare bound LIMIT
/// and then re-prepares the statement whenever its value changes, which a
/// claim's limit (the worker's free permits) does nearly every time (1.7% of
/// the core under load, docs/performance.md).
pub(super) const CLAIM_SELECT: &str = "
    SELECT d.seq, d.id, d.event_id, d.route, d.attempt_count, d.budget_attempts,
           e.source, e.received_at, e.body, d.state
      FROM deliveries d JOIN events e ON e.id = d.event_id
     WHERE d.target = ?1 AND d.state IN ('pending', 'retrying') AND d.next_attempt_at <= ?2
     ORDER BY d.next_attempt_at, d.seq
     LIMIT ?3 + 0";

/// The earliest due time, or lease expiry, of one target: each side reads
/// one entry of its partial index (past the held deliveries' NULLs, which
/// wait for their key's head, not for a time; see `lanes`).
pub(super) const NEXT_DUE: &str = "
    SELECT MIN(t) FROM (
        SELECT * FROM (SELECT next_attempt_at AS t FROM deliveries
                        WHERE target = ?1 AND state IN ('pending', 'retrying')
                          AND next_attempt_at IS NOT NULL
                        ORDER BY next_attempt_at, seq LIMIT 1)
        UNION ALL
        SELECT * FROM (SELECT lease_until AS t FROM deliveries
                        WHERE target = ?1 AND state = 'in_flight' AND lease_until IS NOT NULL
                        ORDER BY lease_until LIMIT 1))";

/// Leases of one target that expired: their holder died (or an attempt
/// outlived its lease). Found through the in-flight rows' index, then each
/// goes back to where it was before the claim (`UNLEASE`).
pub(super) const EXPIRED_LEASES: &str = "
    SELECT seq, attempt_count FROM deliveries
     WHERE target = ?1 AND state = 'in_flight' AND lease_until <= ?2";

/// A leased row back to waiting, keeping its due time and so its place in
/// the claim order; the attempt that was cut off is not counted.
///
/// The hot-path statements read with a SELECT and then write by `seq`
/// rather than `UPDATE .. RETURNING`: SQLite collects RETURNING rows in an
/// ephemeral table, whose page cache was allocated, faulted in and given
/// back to the kernel on every statement (about a fifth of the writer's
/// time under load; docs/performance.md).
const UNLEASE: &str = "
    UPDATE deliveries
       SET state = CASE WHEN attempt_count = 0 THEN 'pending' ELSE 'retrying' END,
           lease_token = NULL, lease_until = NULL
     WHERE seq = ?1";

/// The state a leased row goes back to.
fn unleased(attempt_count: i64) -> DeliveryState {
    if attempt_count == 0 {
        DeliveryState::Pending
    } else {
        DeliveryState::Retrying
    }
}

fn ms(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Select and lease up to `limit` due deliveries (expired leases first go
/// back to waiting), each lease expiring `lease_ms` from `now_ms`. Only the
/// writer thread writes, so nothing can slip in between the statements.
pub(super) fn claim(
    conn: &Connection,
    target: &str,
    now_ms: i64,
    limit: usize,
    lease_ms: i64,
    moves: &mut Moves,
) -> rusqlite::Result<Vec<Claim>> {
    reclaim_expired(conn, target, now_ms, moves)?;
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
        "UPDATE deliveries SET state = 'in_flight', lease_token = ?2, lease_until = ?3,
                updated_at = ?4
          WHERE seq = ?1",
    )?;
    let until = now_ms.saturating_add(lease_ms);
    for (seq, claim) in &rows {
        lease.execute(params![seq, id_text(claim.lease.0), until, now_ms])?;
    }
    Ok(rows.into_iter().map(|(_, c)| c).collect())
}

fn reclaim_expired(
    conn: &Connection,
    target: &str,
    now_ms: i64,
    moves: &mut Moves,
) -> rusqlite::Result<()> {
    let expired: Vec<(i64, i64)> = conn
        .prepare_cached(EXPIRED_LEASES)?
        .query_map(params![target, now_ms], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    if expired.is_empty() {
        return Ok(());
    }
    let mut unlease = conn.prepare_cached(UNLEASE)?;
    for (seq, attempt_count) in &expired {
        unlease.execute([seq])?;
        moves.record(
            target,
            Some(DeliveryState::InFlight),
            Some(unleased(*attempt_count)),
        );
    }
    tracing::warn!(
        %target,
        reclaimed = expired.len(),
        "deliveries whose lease expired are claimed again (their attempt is not counted)"
    );
    Ok(())
}

/// A delivery leased under a lease that is still current.
struct LeasedRow {
    seq: i64,
    attempt_count: u32,
    target: String,
    body_len: i64,
    /// Its key, when it was stored for an ordered target.
    order_key: Option<String>,
}

/// The row of a delivery leased under `lease`; `None` when the lease is no
/// longer current.
fn leased_row(
    conn: &Connection,
    id: DeliveryId,
    lease: LeaseToken,
) -> rusqlite::Result<Option<LeasedRow>> {
    conn.prepare_cached(
        "SELECT seq, attempt_count, target, body_len, order_key FROM deliveries
          WHERE id = ?1 AND state = 'in_flight' AND lease_token = ?2",
    )?
    .query_row(params![id_text(id), id_text(lease.0)], |r| {
        Ok(LeasedRow {
            seq: r.get(0)?,
            attempt_count: r.get(1)?,
            target: r.get(2)?,
            body_len: r.get(3)?,
            order_key: r.get(4)?,
        })
    })
    .optional()
}

/// What a completion changed besides the row.
#[derive(Debug, Default)]
pub(super) struct CompletionEffects {
    /// The target, when the delivery was rescheduled (its worker must
    /// re-evaluate its next due time).
    pub(super) wake: Option<String>,
    /// The body length, when the delivery left the backlog (delivered or dead).
    pub(super) finished_bytes: Option<i64>,
    /// The delivery headed its key's lane and was dead-lettered: its key is
    /// released (logged once the batch commits).
    pub(super) dead_head: Option<(String, DeliveryId, lanes::Released)>,
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
    let Some(row) = leased_row(conn, c.delivery_id, c.lease)? else {
        return Ok((Completed::StaleLease, CompletionEffects::default()));
    };
    let LeasedRow {
        seq,
        attempt_count: before,
        target,
        body_len,
        order_key,
    } = row;
    conn.prepare_cached(
        "UPDATE deliveries
            SET attempt_count = attempt_count + 1,
                budget_attempts = budget_attempts + 1,
                state = ?2, dead_reason = ?3, next_attempt_at = ?4,
                last_error = CASE WHEN ?2 = 'delivered' THEN last_error ELSE ?5 END,
                updated_at = ?6, lease_token = NULL, lease_until = NULL
          WHERE seq = ?1",
    )?
    .execute(params![
        seq,
        state.as_str(),
        dead_reason,
        next_at,
        last_error,
        finished_at
    ])?;
    let n = before + 1;
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
        a.response_excerpt,
        RECORD_FORMAT
    ])?;
    let retry = matches!(c.next, NextState::RetryAt(_));
    // A head that ended hands its key to the next delivery waiting behind it.
    let released = match &order_key {
        Some(key) if !retry => lanes::finish(conn, &target, key, c.delivery_id)?,
        _ => None,
    };
    let promoted = released.as_ref().is_some_and(|r| r.next.is_some());
    let dead_head = match (c.next, released) {
        (NextState::Dead(_), Some(r)) => Some((target.clone(), c.delivery_id, r)),
        _ => None,
    };
    Ok((
        Completed::Recorded,
        CompletionEffects {
            wake: (retry || promoted).then_some(target),
            finished_bytes: (!retry).then_some(body_len),
            dead_head,
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
    let Some(row) = leased_row(conn, id, lease)? else {
        return Ok(None);
    };
    conn.prepare_cached(UNLEASE)?.execute([row.seq])?;
    moves.record(
        &row.target,
        Some(DeliveryState::InFlight),
        Some(unleased(i64::from(row.attempt_count))),
    );
    Ok(Some(row.target))
}

pub(super) fn next_due(conn: &Connection, target: &str) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached(NEXT_DUE)?
        .query_row([target], |r| r.get(0))
}
