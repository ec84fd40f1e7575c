//! The records side of the Redis store: one delivery's detail, replay, the
//! bulk operations (each in scripts of at most [`BULK_BATCH`] deliveries of
//! one target), the sweep's target list and the readiness write. The
//! listing is in `listing.rs`.

use redis::Value;

use super::codec::{self, RECORD_FIELDS};
use super::error::redis_error;
use super::{RedisStore, Shared, id_text, keys};
use crate::queue::{
    BULK_BATCH, Backlog, BlockedKeys, DeadReason, DeliveryDetail, DeliveryId, DeliveryPage,
    DeliveryQuery, DeliveryRecords, DeliveryState, ReplayResult, StoreError, StoreFuture,
    TargetQueue,
};

/// One bulk operation of `bulk.lua`, with its own arguments.
enum Bulk<'a> {
    ReplayDead {
        now_ms: i64,
    },
    PurgeDead,
    DeadLetter {
        reason: DeadReason,
        now_ms: i64,
        message: &'a str,
    },
    Prune {
        before_ms: i64,
    },
    PruneDedupe {
        now_ms: i64,
    },
}

impl Shared {
    /// Run `op` on `target` one batch at a time until a batch comes back short.
    async fn in_batches(&self, target: &str, op: &Bulk<'_>) -> Result<u64, StoreError> {
        let mut total = 0;
        loop {
            let mut inv = self.invoke(&self.scripts.bulk);
            let name = match op {
                Bulk::ReplayDead { .. } => "replay_dead",
                Bulk::PurgeDead => "purge_dead",
                Bulk::DeadLetter { .. } => "dead_letter",
                Bulk::Prune { .. } => "prune",
                Bulk::PruneDedupe { .. } => "prune_dedupe",
            };
            inv.arg(name).arg(target).arg(BULK_BATCH);
            match op {
                Bulk::ReplayDead { now_ms } | Bulk::PruneDedupe { now_ms } => inv.arg(*now_ms),
                Bulk::PurgeDead => &mut inv,
                Bulk::DeadLetter {
                    reason,
                    now_ms,
                    message,
                } => inv.arg(reason.as_str()).arg(*now_ms).arg(*message),
                Bulk::Prune { before_ms } => inv.arg(*before_ms),
            };
            let n = u64::try_from(self.write(&inv).await?.int_at(0)?).unwrap_or(0);
            total += n;
            if n < BULK_BATCH as u64 {
                if total > 0 && matches!(op, Bulk::ReplayDead { .. }) {
                    self.signal.notify(target);
                }
                return Ok(total);
            }
        }
    }

    /// Run `op` on one target, or on every known target.
    async fn on_targets(&self, target: Option<&str>, op: &Bulk<'_>) -> Result<u64, StoreError> {
        let targets = match target {
            Some(t) => vec![t.to_owned()],
            None => self.targets().await?,
        };
        let mut total = 0;
        for t in &targets {
            total += self.in_batches(t, op).await?;
        }
        Ok(total)
    }

    /// The target a delivery belongs to, if it exists.
    async fn target_of(&self, id: DeliveryId) -> Result<Option<String>, StoreError> {
        redis::cmd("HGET")
            .arg(keys::global(&self.prefix, "where"))
            .arg(id_text(id))
            .query_async(&mut self.conn.clone())
            .await
            .map_err(|e| redis_error(&e))
    }
}

impl DeliveryRecords for RedisStore {
    /// Stop the background tasks (wake-up listener, counter refresher).
    /// Calls still work; wake-ups from other processes no longer arrive.
    fn close(&self) -> StoreFuture<'_, ()> {
        self.cancel.cancel();
        Box::pin(std::future::ready(Ok(())))
    }

    fn backlog(&self) -> Backlog {
        self.shared.backlog.get()
    }

    fn prune(&self, delivered_before_ms: i64, now_ms: i64) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            let s = &self.shared;
            let before = Bulk::Prune {
                before_ms: delivered_before_ms,
            };
            let n = s.on_targets(None, &before).await?;
            s.in_batches("", &Bulk::PruneDedupe { now_ms }).await?;
            Ok(n)
        })
    }

    fn delivery(&self, id: DeliveryId) -> StoreFuture<'_, Option<DeliveryDetail>> {
        Box::pin(async move {
            let s = &self.shared;
            let Some(target) = s.target_of(id).await? else {
                return Ok(None);
            };
            let key = |what: &str| keys::target(&s.prefix, &target, &format!("{what}:{id}"));
            let mut hmget = redis::cmd("HMGET");
            hmget
                .arg(key("d"))
                .arg(&RECORD_FIELDS[..])
                .arg("src")
                .arg("body");
            let mut lrange = redis::cmd("LRANGE");
            lrange.arg(key("a")).arg(0).arg(-1);
            let (fields, attempts): (Vec<Value>, Vec<Vec<u8>>) = redis::pipe()
                .atomic()
                .add_command(hmget)
                .add_command(lrange)
                .query_async(&mut s.conn.clone())
                .await
                .map_err(|e| redis_error(&e))?;
            let Some(record) = codec::record(&fields)? else {
                return Ok(None);
            };
            let n = RECORD_FIELDS.len();
            let source = fields.get(n).and_then(codec::text);
            let body = match fields.get(n + 1) {
                Some(Value::BulkString(b)) => Some(bytes::Bytes::copy_from_slice(b)),
                _ => None,
            };
            let (Some(source), Some(event_body)) = (source, body) else {
                return Err(codec::malformed("event"));
            };
            let attempts = attempts
                .iter()
                .enumerate()
                .map(|(i, raw)| Ok((i as u32 + 1, codec::decode_attempt(raw)?)))
                .collect::<Result<Vec<_>, StoreError>>()?;
            let (order_key, waiting_for) = s.lane_place(&target, id).await?;
            Ok(Some(DeliveryDetail {
                record,
                attempts,
                source,
                event_body,
                order_key,
                waiting_for,
            }))
        })
    }

    fn list(&self, q: DeliveryQuery) -> StoreFuture<'_, DeliveryPage> {
        Box::pin(self.shared.list(q))
    }

    fn replay(&self, id: DeliveryId, now_ms: i64) -> StoreFuture<'_, ReplayResult> {
        Box::pin(async move {
            let s = &self.shared;
            let mut inv = s.invoke(&s.scripts.replay);
            inv.arg(id_text(id)).arg(now_ms);
            let reply = s.write(&inv).await?;
            match reply.status() {
                "not_found" => Ok(ReplayResult::NotFound),
                "not_replayable" => reply
                    .rest
                    .get(1)
                    .and_then(codec::text)
                    .and_then(|st| st.parse::<DeliveryState>().ok())
                    .map(ReplayResult::NotReplayable)
                    .ok_or_else(|| codec::malformed("delivery")),
                "replayed" => {
                    if let Some(t) = reply.rest.get(1).and_then(codec::text) {
                        s.signal.notify(&t);
                    }
                    let fields = reply.rest.get(2).and_then(codec::array).unwrap_or(&[]);
                    codec::record(fields)?
                        .map(|r| ReplayResult::Replayed(Box::new(r)))
                        .ok_or_else(|| codec::malformed("delivery"))
                }
                _ => Err(codec::malformed("script reply")),
            }
        })
    }

    fn replay_dead(&self, target: Option<&str>, now_ms: i64) -> StoreFuture<'_, u64> {
        let target = target.map(str::to_owned);
        Box::pin(async move {
            let op = Bulk::ReplayDead { now_ms };
            self.shared.on_targets(target.as_deref(), &op).await
        })
    }

    fn purge_dead(&self, target: Option<&str>) -> StoreFuture<'_, u64> {
        let target = target.map(str::to_owned);
        Box::pin(async move {
            self.shared
                .on_targets(target.as_deref(), &Bulk::PurgeDead)
                .await
        })
    }

    fn target_queues(&self, targets: Vec<String>) -> StoreFuture<'_, Vec<TargetQueue>> {
        Box::pin(async move {
            let s = &self.shared;
            let depths = s.depths(&targets, &DeliveryState::ALL).await?;
            let oldest = s.oldest_waiting(&targets).await?;
            Ok(depths
                .into_iter()
                .zip(oldest)
                .map(|(counts, oldest_waiting_ms)| {
                    let mut depth = [0; 5];
                    for (slot, n) in depth.iter_mut().zip(counts) {
                        *slot = n;
                    }
                    TargetQueue {
                        depth,
                        oldest_waiting_ms,
                    }
                })
                .collect())
        })
    }

    fn blocked_keys(&self, target: &str, limit: usize) -> StoreFuture<'_, BlockedKeys> {
        let target = target.to_owned();
        Box::pin(async move { self.shared.blocked_keys(&target, limit).await })
    }

    fn targets_with_work(&self) -> StoreFuture<'_, Vec<String>> {
        Box::pin(async move {
            let s = &self.shared;
            let targets = s.targets().await?;
            let working = [
                DeliveryState::Pending,
                DeliveryState::InFlight,
                DeliveryState::Retrying,
            ];
            let depths = s.depths(&targets, &working).await?;
            Ok(targets
                .into_iter()
                .zip(depths)
                .filter(|(_, d)| d.iter().sum::<u64>() > 0)
                .map(|(t, _)| t)
                .collect())
        })
    }

    fn dead_letter_target(
        &self,
        target: &str,
        reason: DeadReason,
        now_ms: i64,
    ) -> StoreFuture<'_, u64> {
        let target = target.to_owned();
        Box::pin(async move {
            // Its held deliveries are let go first, to be dead-lettered with
            // the rest (the due set holds only what is not held).
            self.shared.set_ordering(&target, None).await?;
            let message = format!("target `{target}` is not in the config");
            let op = Bulk::DeadLetter {
                reason,
                now_ms,
                message: &message,
            };
            self.shared.in_batches(&target, &op).await
        })
    }

    fn check_writable(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let s = &self.shared;
            let mut conn = s.conn.clone();
            let () = redis::cmd("SET")
                .arg(keys::global(&s.prefix, "ready"))
                .arg(id_text(uuid::Uuid::now_v7()))
                .query_async(&mut conn)
                .await
                .map_err(|e| redis_error(&e))?;
            s.durability.confirm(&mut conn).await
        })
    }
}
