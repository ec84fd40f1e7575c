//! Ordered targets on Redis: changing a target's ordering, and reading its
//! blocked keys. The lanes themselves live in the scripts (`lua/common.lua`
//! keeps them on enqueue and completion; `lua/ordering.lua` changes them).
//!
//! A change is made in steps under a lock (`{P:T}:rebuilding`, holding this
//! call's token, renewed by every step), because a rebuild reads stored
//! bodies here, in Rust, to key them exactly as ingress does: Lua's JSON
//! would not write a value's text the same way. While the lock is held no
//! replica claims the target's deliveries and enqueues store them unkeyed;
//! the walk goes on until it has keyed everything stored meanwhile too, and
//! only then is the new path recorded. A replica that dies holding the lock
//! lets it expire; the next worker to ask starts the change again, and
//! every step can be repeated safely.

use redis::Value;

use super::codec::{self, Reply};
use super::error::redis_error;
use super::{Shared, keys};
use crate::queue::{
    BULK_BATCH, BlockedKey, BlockedKeys, DeliveryId, KeyReader, LeaseToken, OrderingChange,
    StoreError, ordering_path,
};

/// How long the lock outlives its last step (a step takes milliseconds).
const LOCK_MS: u64 = 30_000;
/// How many bytes of bodies one round trip of a rebuild may fetch.
const BODY_BYTES_PER_FETCH: u64 = 16 * 1024 * 1024;
/// Deliveries keyed per page of a rebuild.
const PAGE: usize = 500;

impl Shared {
    async fn ordering_step(
        &self,
        step: &str,
        target: &str,
        token: &str,
        args: &[String],
    ) -> Result<Reply, StoreError> {
        let mut inv = self.invoke(&self.scripts.ordering);
        inv.arg(step).arg(target).arg(token);
        for a in args {
            inv.arg(a);
        }
        let reply = self.write(&inv).await?;
        if reply.status() == "lost" {
            return Err(StoreError::Unavailable(format!(
                "target {target}: the lock on its ordering expired mid-change; it is made again"
            )));
        }
        Ok(reply)
    }

    /// See [`crate::queue::DeliveryQueue::set_ordering`].
    pub(super) async fn set_ordering(
        &self,
        target: &str,
        path: Option<Vec<String>>,
    ) -> Result<OrderingChange, StoreError> {
        let wanted = path.as_deref().map(ordering_path).unwrap_or_default();
        let token = LeaseToken::new().0.to_string();
        let lock_ms = LOCK_MS.to_string();
        let begun = self
            .ordering_step("begin", target, &token, &[wanted.clone(), lock_ms.clone()])
            .await?;
        match begun.status() {
            "unchanged" => {
                return Ok(OrderingChange {
                    unchanged: true,
                    ..OrderingChange::default()
                });
            }
            "busy" => {
                return Err(StoreError::Unavailable(format!(
                    "another replica is changing target {target}'s ordering"
                )));
            }
            _ => {}
        }
        let mut change = OrderingChange::default();
        loop {
            let n = self
                .ordering_step(
                    "release",
                    target,
                    &token,
                    &[BULK_BATCH.to_string(), lock_ms.clone()],
                )
                .await?
                .int_at(0)?;
            change.released += u64::try_from(n).unwrap_or(0);
            if n < BULK_BATCH as i64 {
                break;
            }
        }
        self.ordering_step("clear", target, &token, &[]).await?;
        let mut walked = 0i64;
        if let Some(segments) = &path {
            let reader = KeyReader::new(segments);
            loop {
                let page = self
                    .ordering_step(
                        "page",
                        target,
                        &token,
                        &[walked.to_string(), PAGE.to_string(), lock_ms.clone()],
                    )
                    .await?;
                let entries = page_entries(&page)?;
                if let Some(last) = entries.last() {
                    walked = last.1;
                    let pairs = self.keys_of(target, &entries, &reader).await?;
                    let mut args = vec![lock_ms.clone()];
                    for (id, key) in pairs {
                        args.push(id);
                        args.push(key);
                    }
                    let built = self.ordering_step("rebuild", target, &token, &args).await?;
                    change.held += u64::try_from(built.int_at(0)?).unwrap_or(0);
                    if entries.len() == PAGE {
                        continue;
                    }
                }
                let done = self
                    .ordering_step(
                        "finish",
                        target,
                        &token,
                        &[wanted.clone(), walked.to_string()],
                    )
                    .await?;
                if done.status() == "done" {
                    change.lanes = u64::try_from(done.int_at(1)?).unwrap_or(0);
                    break;
                }
            }
        } else {
            self.ordering_step(
                "finish",
                target,
                &token,
                &[String::new(), walked.to_string()],
            )
            .await?;
        }
        self.signal.notify(target);
        Ok(change)
    }

    /// The key of each delivery of a page, read from its stored body (in
    /// round trips of at most [`BODY_BYTES_PER_FETCH`] of bodies).
    async fn keys_of(
        &self,
        target: &str,
        entries: &[(String, i64, u64)],
        reader: &KeyReader<'_>,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let mut out = Vec::with_capacity(entries.len());
        let mut start = 0;
        while start < entries.len() {
            let mut end = start;
            let mut bytes = 0u64;
            while end < entries.len()
                && (end == start || bytes + entries[end].2 <= BODY_BYTES_PER_FETCH)
            {
                bytes += entries[end].2;
                end += 1;
            }
            let mut pipe = redis::pipe();
            for (id, ..) in &entries[start..end] {
                pipe.cmd("HGET")
                    .arg(keys::target(&self.prefix, target, &format!("d:{id}")))
                    .arg("body");
            }
            let bodies: Vec<Option<Vec<u8>>> = pipe
                .query_async(&mut self.conn.clone())
                .await
                .map_err(|e| redis_error(&e))?;
            for ((id, ..), body) in entries[start..end].iter().zip(bodies) {
                // Gone meanwhile (pruned): the script skips what is finished.
                let key = body.map(|b| reader.key(&b)).unwrap_or_default();
                out.push((id.clone(), key));
            }
            start = end;
        }
        Ok(out)
    }

    /// See [`crate::queue::DeliveryRecords::blocked_keys`].
    pub(super) async fn blocked_keys(
        &self,
        target: &str,
        limit: usize,
    ) -> Result<BlockedKeys, StoreError> {
        let key = |s: &str| keys::target(&self.prefix, target, s);
        let mut conn = self.conn.clone();
        let (path, blocked, heads): (Option<String>, u64, Vec<String>) = if limit == 0 {
            // The count alone (for the gauge).
            let (path, blocked) = redis::pipe()
                .atomic()
                .cmd("GET")
                .arg(key("ordering"))
                .cmd("ZCARD")
                .arg(key("blocked"))
                .query_async(&mut conn)
                .await
                .map_err(|e| redis_error(&e))?;
            (path, blocked, Vec::new())
        } else {
            redis::pipe()
                .atomic()
                .cmd("GET")
                .arg(key("ordering"))
                .cmd("ZCARD")
                .arg(key("blocked"))
                .cmd("ZRANGE")
                .arg(key("blocked"))
                .arg(0)
                .arg(limit - 1)
                .query_async(&mut conn)
                .await
                .map_err(|e| redis_error(&e))?
        };
        if heads.is_empty() {
            return Ok(BlockedKeys {
                path,
                blocked,
                keys: Vec::new(),
            });
        }
        // Each key's head and wait, then the heads' records: two round trips
        // whatever `limit` is.
        let mut pipe = redis::pipe();
        for k in &heads {
            pipe.cmd("HGET").arg(key("lanes")).arg(k);
            pipe.cmd("LLEN").arg(key(&format!("held:{k}")));
        }
        let lanes: Vec<Value> = pipe
            .query_async(&mut conn)
            .await
            .map_err(|e| redis_error(&e))?;
        let placed: Vec<(String, String, i64)> = heads
            .into_iter()
            .zip(lanes.chunks(2))
            .filter_map(|(k, pair)| {
                // A lane that ended between the reads has no head.
                let head = pair.first().and_then(codec::text)?;
                let waiting = pair.get(1).and_then(codec::int).unwrap_or(0);
                Some((k, head, waiting))
            })
            .collect();
        let mut pipe = redis::pipe();
        for (_, head, _) in &placed {
            pipe.cmd("HMGET")
                .arg(key(&format!("d:{head}")))
                .arg("st")
                .arg("n")
                .arg("next")
                .arg("err");
        }
        let records: Vec<Vec<Value>> = pipe
            .query_async(&mut conn)
            .await
            .map_err(|e| redis_error(&e))?;
        let mut keys = Vec::with_capacity(placed.len());
        for ((k, head, waiting), fields) in placed.into_iter().zip(records) {
            let Ok(head) = head.parse::<DeliveryId>() else {
                return Err(codec::malformed("lane head"));
            };
            let text = |i: usize| fields.get(i).and_then(codec::text);
            keys.push(BlockedKey {
                key: k,
                head,
                head_state: text(0)
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| codec::malformed("lane head state"))?,
                head_attempts: fields
                    .get(1)
                    .and_then(codec::int)
                    .and_then(|n| u32::try_from(n).ok())
                    .unwrap_or(0),
                head_next_attempt_at_ms: fields.get(2).and_then(codec::int),
                head_last_error: text(3),
                waiting: u64::try_from(waiting).unwrap_or(0),
            });
        }
        Ok(BlockedKeys {
            path,
            blocked,
            keys,
        })
    }

    /// A delivery's key and, while it waits behind its key's head, that
    /// head (for its detail).
    pub(super) async fn lane_place(
        &self,
        target: &str,
        id: DeliveryId,
    ) -> Result<(Option<String>, Option<DeliveryId>), StoreError> {
        let mut conn = self.conn.clone();
        let (key, state, next): (Option<String>, Option<String>, Option<String>) =
            redis::cmd("HMGET")
                .arg(keys::target(&self.prefix, target, &format!("d:{id}")))
                .arg("ok")
                .arg("st")
                .arg("next")
                .query_async(&mut conn)
                .await
                .map_err(|e| redis_error(&e))?;
        let Some(key) = key else {
            return Ok((None, None));
        };
        if state.as_deref() != Some("pending") || next.is_some() {
            return Ok((Some(key), None));
        }
        let head: Option<String> = redis::cmd("HGET")
            .arg(keys::target(&self.prefix, target, "lanes"))
            .arg(&key)
            .query_async(&mut conn)
            .await
            .map_err(|e| redis_error(&e))?;
        Ok((Some(key), head.and_then(|h| h.parse().ok())))
    }
}

/// The `(id, seq, body length)` triples of a `page` step.
fn page_entries(reply: &Reply) -> Result<Vec<(String, i64, u64)>, StoreError> {
    reply
        .rest
        .chunks(3)
        .map(|c| {
            let id = c.first().and_then(codec::text);
            let seq = c.get(1).and_then(codec::text).and_then(|s| s.parse().ok());
            let len = c.get(2).and_then(codec::text).and_then(|s| s.parse().ok());
            match (id, seq, len) {
                (Some(id), Some(seq), Some(len)) => Ok((id, seq, len)),
                _ => Err(codec::malformed("ordering page")),
            }
        })
        .collect()
}
