//! The hot path of the Redis store: enqueue, claim (in scripts of at most
//! [`BULK_BATCH`] leases), complete, release and the next due time. Each
//! write is one Lua script followed by the durability wait; a local write
//! also wakes this process's worker directly (the published wake-up reaches
//! the other replicas).
//!
//! Unlike SQLite's writer, nothing hands back a claim whose caller gave up
//! (its future dropped) or whose durability wait failed after the script
//! ran: those leases simply expire (`lease_ms`, the target's timeout + 10 s)
//! and the deliveries are claimed again, no attempt counted.

use redis::ScriptInvocation;

use super::codec::Reply;
use super::error::redis_error;
use super::{DEDUPE_BACKSTOP_MS, RedisStore, Shared, codec, id_text, keys};
use crate::queue::{
    BULK_BATCH, Claim, Completed, Completion, DeliveryId, DeliveryQueue, Enqueued, KeyReader,
    LeaseToken, NewEvent, NextState, OrderKey, OrderingChange, RECORD_FORMAT, StoreError,
    StoreFuture, WorkSignal, log_dead_head,
};

impl DeliveryQueue for RedisStore {
    fn enqueue(&self, mut ev: NewEvent) -> StoreFuture<'_, Enqueued> {
        Box::pin(async move {
            let s = &self.shared;
            // A target the store orders by another path than ingress read
            // (a reload raced this event) is keyed again at the store's path.
            for _ in 0..REKEY_TRIES {
                let reply = s.write(&enqueue_invocation(s, &ev)).await?;
                if reply.status() != "rekey" {
                    return enqueued(s, &ev, &reply);
                }
                let (Some(target), Some(path)) = (
                    reply.rest.get(1).and_then(codec::text),
                    reply.rest.get(2).and_then(codec::text),
                ) else {
                    return Err(codec::malformed("script reply"));
                };
                let segments: Vec<String> = path.split('.').map(str::to_owned).collect();
                let value = KeyReader::new(&segments).key(&ev.body);
                for d in ev.deliveries.iter_mut().filter(|d| d.target == target) {
                    d.order = Some(OrderKey {
                        path: path.clone(),
                        value: value.clone(),
                    });
                }
            }
            Err(StoreError::Unavailable(
                "the ordering of a target kept changing under an enqueue".into(),
            ))
        })
    }

    fn claim_due(
        &self,
        target: &str,
        now_ms: i64,
        limit: usize,
        lease_ms: i64,
    ) -> StoreFuture<'_, Vec<Claim>> {
        let target = target.to_owned();
        Box::pin(async move {
            let s = &self.shared;
            let until = now_ms.saturating_add(lease_ms);
            let mut claims = Vec::new();
            // At most BULK_BATCH per script: a long script stalls the server.
            loop {
                let chunk = (limit - claims.len()).min(BULK_BATCH);
                let tokens: Vec<LeaseToken> = (0..chunk).map(|_| LeaseToken::new()).collect();
                let mut inv = s.invoke(&s.scripts.claim);
                inv.arg(&target).arg(now_ms).arg(until).arg(BULK_BATCH);
                for t in &tokens {
                    inv.arg(id_text(t.0));
                }
                let reply = s.write(&inv).await?;
                let reclaimed = reply.int_at(0)?;
                if reclaimed > 0 {
                    tracing::warn!(
                        %target,
                        reclaimed,
                        "deliveries whose lease expired are claimed again (their attempt is not counted)"
                    );
                }
                let got = reply.rest.get(1).and_then(codec::array).unwrap_or(&[]);
                for (v, token) in got.iter().zip(tokens) {
                    claims.push(codec::claim(&target, v, token)?);
                }
                if got.len() < chunk || claims.len() >= limit {
                    return Ok(claims);
                }
            }
        })
    }

    fn complete(&self, c: Completion) -> StoreFuture<'_, Completed> {
        Box::pin(async move {
            let s = &self.shared;
            let a = &c.attempt;
            let (to, due, reason) = match c.next {
                NextState::Delivered => ("delivered", String::new(), ""),
                NextState::RetryAt(t) => ("retrying", t.to_string(), ""),
                NextState::Dead(r) => ("dead", String::new(), r.as_str()),
            };
            // As SQLite: the error, else the status; marked so an empty
            // error text is not taken for "none".
            let error = a
                .error
                .clone()
                .or_else(|| a.status.map(|s| format!("HTTP {s}")))
                .map_or_else(String::new, |e| format!("e{e}"));
            let duration = i64::try_from(a.duration_ms).unwrap_or(i64::MAX);
            let mut inv = s.invoke(&s.scripts.complete);
            inv.arg(id_text(c.delivery_id))
                .arg(id_text(c.lease.0))
                .arg(to)
                .arg(due)
                .arg(reason)
                .arg(error)
                .arg(a.at_ms.saturating_add(duration))
                .arg(codec::encode_attempt(a));
            let reply = s.write(&inv).await?;
            if reply.status() != "recorded" {
                return Ok(Completed::StaleLease);
            }
            // A dead head released its key: say so (DESIGN.md section 6).
            if let (NextState::Dead(_), Some(target), Some(key)) = (
                c.next,
                reply.rest.get(1).and_then(codec::text),
                reply.rest.get(2).and_then(codec::text),
            ) {
                let next = reply
                    .rest
                    .get(3)
                    .and_then(codec::text)
                    .and_then(|n| n.parse().ok());
                log_dead_head(&target, c.delivery_id, &key, next);
            }
            if let (NextState::RetryAt(_), Some(t)) =
                (c.next, reply.rest.get(1).and_then(codec::text))
            {
                s.signal.notify(&t);
            }
            Ok(Completed::Recorded)
        })
    }

    fn release(&self, delivery_id: DeliveryId, lease: LeaseToken) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let s = &self.shared;
            let mut inv = s.invoke(&s.scripts.release);
            inv.arg(id_text(delivery_id)).arg(id_text(lease.0));
            let reply = s.write(&inv).await?;
            if let Some(t) = reply.rest.get(1).and_then(codec::text) {
                s.signal.notify(&t);
            }
            Ok(())
        })
    }

    fn next_due(&self, target: &str) -> StoreFuture<'_, Option<i64>> {
        let target = target.to_owned();
        Box::pin(async move {
            let s = &self.shared;
            let first = |key: &str| {
                let mut cmd = redis::cmd("ZRANGE");
                cmd.arg(keys::target(&s.prefix, &target, key))
                    .arg(0)
                    .arg(0)
                    .arg("WITHSCORES");
                cmd
            };
            // Atomic: a delivery moving from one set to the other between
            // two reads would be missed.
            let (due, lease, locked_ms, time): (Vec<String>, Vec<String>, i64, (i64, i64)) =
                redis::pipe()
                    .atomic()
                    .add_command(first("due"))
                    .add_command(first("lease"))
                    .cmd("PTTL")
                    .arg(keys::target(&s.prefix, &target, "rebuilding"))
                    .cmd("TIME")
                    .query_async(&mut s.conn.clone())
                    .await
                    .map_err(|e| redis_error(&e))?;
            let score = |v: &[String]| {
                v.get(1)
                    .and_then(|x| x.parse::<f64>().ok())
                    .map(|f| f as i64)
            };
            let next = match (score(&due), score(&lease)) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            // Another replica is changing the target's ordering and nothing
            // can be claimed until it is done: look again a little later
            // (by the server's clock) rather than claim in a loop.
            if locked_ms > 0 {
                let server_now = time.0.saturating_mul(1000) + time.1 / 1000;
                let later = server_now + locked_ms.min(REBUILD_POLL_MS);
                return Ok(Some(next.map_or(later, |n| n.max(later))));
            }
            Ok(next)
        })
    }

    fn set_ordering(
        &self,
        target: &str,
        path: Option<Vec<String>>,
    ) -> StoreFuture<'_, OrderingChange> {
        let target = target.to_owned();
        Box::pin(async move { self.shared.set_ordering(&target, path).await })
    }

    fn work_signal(&self) -> &WorkSignal {
        &self.shared.signal
    }
}

/// How long a worker waits before it looks again at a target whose
/// ordering another replica is changing.
const REBUILD_POLL_MS: i64 = 250;

/// How many times an enqueue is keyed again when the store's ordering path
/// differs from the one its keys were read at (each try reads the store's).
const REKEY_TRIES: usize = 3;

/// The enqueue script's call for `ev`: see `lua/enqueue.lua` for the order.
fn enqueue_invocation<'a>(s: &'a Shared, ev: &'a NewEvent) -> ScriptInvocation<'a> {
    let mut inv = s.invoke(&s.scripts.enqueue);
    inv.arg(id_text(ev.id))
        .arg(&ev.source)
        .arg(ev.received_at_ms)
        .arg(ev.body.as_ref());
    match &ev.dedupe {
        Some(d) => inv.arg(hex::encode(d.key)).arg(d.expires_at_ms),
        None => inv.arg("").arg(0),
    };
    match ev.limits {
        Some(l) => inv.arg(l.deliveries).arg(l.bytes),
        None => inv.arg("").arg(""),
    };
    let window = ev
        .dedupe
        .map_or(0, |d| d.expires_at_ms.saturating_sub(ev.received_at_ms));
    inv.arg(window.max(0).saturating_add(DEDUPE_BACKSTOP_MS))
        .arg(RECORD_FORMAT);
    for d in &ev.deliveries {
        let (path, key) = d
            .order
            .as_ref()
            .map_or(("", ""), |o| (o.path.as_str(), o.value.as_str()));
        inv.arg(id_text(d.id))
            .arg(&d.target)
            .arg(&d.route)
            .arg(path)
            .arg(key);
    }
    inv
}

/// What the enqueue script's reply says happened.
fn enqueued(s: &Shared, ev: &NewEvent, reply: &Reply) -> Result<Enqueued, StoreError> {
    match reply.status() {
        "stored" => {
            for d in &ev.deliveries {
                s.signal.notify(&d.target);
            }
            Ok(Enqueued::Stored)
        }
        "duplicate" => reply
            .rest
            .get(1)
            .and_then(codec::text)
            .and_then(|t| uuid::Uuid::parse_str(&t).ok())
            .map(Enqueued::Duplicate)
            .ok_or_else(|| codec::malformed("dedupe key")),
        "full" => Ok(Enqueued::Full),
        _ => Err(codec::malformed("script reply")),
    }
}
