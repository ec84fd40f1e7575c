//! Where replicas sharing one store meet about a target's circuit breaker
//! (DESIGN.md section 9): an opening, a closing and a `Retry-After` pause
//! seen by one replica are taken by the others, and one replica at a time
//! sends the half-open probe, so replicas do not each spend probes on a
//! target that is down.
//!
//! [`CircuitBoard`] is the narrow interface the target's gate uses
//! ([`super::runtime::TargetGate`]); [`RedisBoard`] keeps it in Redis, in
//! one hash and one probe key per target, under the target's hash tag. A
//! single process (SQLite) has no board at all. A board that cannot be
//! reached changes nothing: each replica's own breaker still works.

use std::future::Future;
use std::pin::Pin;

use redis::AsyncCommands;
use redis::aio::ConnectionManager;

use super::gate::SharedHold;
use crate::queue::redis::keys;

/// A boxed future of a board operation.
pub type BoardFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How long the shared record of a target's circuit outlives its last change.
const RECORD_TTL_MS: i64 = 24 * 3_600_000;

pub trait CircuitBoard: Send + Sync {
    /// What the replicas last published for `target` (`None`: nothing, or
    /// unreachable).
    fn read<'a>(&'a self, target: &'a str) -> BoardFuture<'a, Option<SharedHold>>;

    /// The circuit of `target` opened at `opened_at`, until `until`.
    fn publish_open<'a>(
        &'a self,
        target: &'a str,
        until: i64,
        opened_at: i64,
    ) -> BoardFuture<'a, ()>;

    /// The circuit of `target` closed at `closed_at`.
    fn publish_closed<'a>(&'a self, target: &'a str, closed_at: i64) -> BoardFuture<'a, ()>;

    /// `target` asked for a pause until `until`.
    fn publish_pause<'a>(&'a self, target: &'a str, until: i64) -> BoardFuture<'a, ()>;

    /// Whether this replica may send `target`'s half-open probe: true for
    /// one replica at a time, for up to `ttl_ms` (or until
    /// [`probe_done`](Self::probe_done)). Unreachable: true (a probe per
    /// replica beats none).
    fn try_probe<'a>(&'a self, target: &'a str, ttl_ms: i64) -> BoardFuture<'a, bool>;

    /// The probe's outcome is recorded: another may go when the circuit next
    /// half-opens.
    fn probe_done<'a>(&'a self, target: &'a str) -> BoardFuture<'a, ()>;
}

/// The board in Redis, under `prefix`.
#[derive(Clone)]
pub struct RedisBoard {
    conn: ConnectionManager,
    prefix: String,
}

impl RedisBoard {
    pub fn new(conn: ConnectionManager, prefix: &str) -> RedisBoard {
        RedisBoard {
            conn,
            prefix: prefix.to_owned(),
        }
    }

    fn record_key(&self, target: &str) -> String {
        keys::target(&self.prefix, target, "circuit")
    }

    fn probe_key(&self, target: &str) -> String {
        keys::target(&self.prefix, target, "probe")
    }

    /// Set `fields` on the target's record (and drop `remove`), refreshing
    /// its expiry; errors are logged, not returned.
    async fn write(&self, target: &str, fields: &[(&str, i64)], remove: Option<&str>) {
        let key = self.record_key(target);
        let mut pipe = redis::pipe();
        pipe.atomic().hset_multiple(&key, fields).ignore();
        if let Some(field) = remove {
            pipe.hdel(&key, field).ignore();
        }
        pipe.pexpire(&key, RECORD_TTL_MS).ignore();
        let mut conn = self.conn.clone();
        if let Err(e) = pipe.query_async::<()>(&mut conn).await {
            tracing::warn!(%target, error_kind = ?e.kind(), "cannot publish the target's circuit state to Redis");
        }
    }
}

impl CircuitBoard for RedisBoard {
    fn read<'a>(&'a self, target: &'a str) -> BoardFuture<'a, Option<SharedHold>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let fields: redis::RedisResult<[Option<i64>; 4]> = redis::cmd("HMGET")
                .arg(self.record_key(target))
                .arg(&["open_until", "opened_at", "closed_at", "paused_until"])
                .query_async(&mut conn)
                .await;
            match fields {
                Ok([open_until, opened_at, closed_at, paused_until]) => Some(SharedHold {
                    open_until,
                    opened_at: opened_at.unwrap_or(i64::MIN),
                    closed_at: closed_at.unwrap_or(i64::MIN),
                    paused_until,
                }),
                Err(e) => {
                    tracing::debug!(%target, error_kind = ?e.kind(), "cannot read the shared circuit state");
                    None
                }
            }
        })
    }

    fn publish_open<'a>(
        &'a self,
        target: &'a str,
        until: i64,
        opened_at: i64,
    ) -> BoardFuture<'a, ()> {
        Box::pin(async move {
            let fields = [("open_until", until), ("opened_at", opened_at)];
            self.write(target, &fields, None).await;
        })
    }

    fn publish_closed<'a>(&'a self, target: &'a str, closed_at: i64) -> BoardFuture<'a, ()> {
        Box::pin(async move {
            let fields = [("closed_at", closed_at)];
            self.write(target, &fields, Some("open_until")).await;
        })
    }

    fn publish_pause<'a>(&'a self, target: &'a str, until: i64) -> BoardFuture<'a, ()> {
        Box::pin(async move {
            self.write(target, &[("paused_until", until)], None).await;
        })
    }

    fn try_probe<'a>(&'a self, target: &'a str, ttl_ms: i64) -> BoardFuture<'a, bool> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let set: redis::RedisResult<Option<String>> = redis::cmd("SET")
                .arg(self.probe_key(target))
                .arg("1")
                .arg("NX")
                .arg("PX")
                .arg(ttl_ms.max(1))
                .query_async(&mut conn)
                .await;
            match set {
                Ok(answer) => answer.is_some(),
                Err(e) => {
                    tracing::warn!(%target, error_kind = ?e.kind(), "cannot take the shared probe turn; probing anyway");
                    true
                }
            }
        })
    }

    fn probe_done<'a>(&'a self, target: &'a str) -> BoardFuture<'a, ()> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let deleted: redis::RedisResult<i64> = conn.del(self.probe_key(target)).await;
            if let Err(e) = deleted {
                tracing::debug!(%target, error_kind = ?e.kind(), "cannot hand back the probe turn");
            }
        })
    }
}
