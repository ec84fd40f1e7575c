//! Whether an acknowledged write survives a Redis crash, found out at
//! connect, and the wait that makes each write durable before its future
//! resolves (DESIGN.md section 9: 202 only after Redis made it durable).
//!
//! Redis answers a write once it is in memory. It is on disk before the
//! answer only with `appendonly yes` + `appendfsync always`, and on another
//! machine only after `WAIT`. So: with replicas, every write is followed by
//! `WAIT 1 <timeout>` (on the same multiplexed connection, so one `WAIT`
//! also covers the writes pipelined before it); without, the server's
//! `appendfsync always` is relied on; with neither, a warning at connect.

use std::fmt;
use std::time::Duration;

use redis::aio::ConnectionManager;

use super::error::redis_error;
use crate::queue::StoreError;

/// How long a write waits for a replica to acknowledge it.
pub const WAIT_TIMEOUT: Duration = Duration::from_secs(5);

/// The server's append-only file setting, as `CONFIG GET` told it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Aof {
    /// `appendonly no`.
    Off,
    /// `appendonly yes` with this `appendfsync` (`always`, `everysec`, `no`).
    On(String),
    /// `CONFIG` is disabled or renamed (common on managed Redis).
    Unknown,
}

/// What the server was found to guarantee at connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Durability {
    /// Connected replicas (`INFO replication`).
    pub replicas: u32,
    pub aof: Aof,
}

impl Durability {
    /// Each write is confirmed by `WAIT` for a replica.
    pub fn waits_for_replica(&self) -> bool {
        self.replicas > 0
    }

    /// An acknowledged write survives a crash of the Redis process.
    pub fn is_durable(&self) -> bool {
        self.waits_for_replica() || self.aof == Aof::On("always".into())
    }

    /// Ask the server. `CONFIG` may be refused (then [`Aof::Unknown`]);
    /// `INFO` must work.
    pub(super) async fn probe(conn: &mut ConnectionManager) -> Result<Durability, StoreError> {
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query_async(conn)
            .await
            .map_err(|e| redis_error(&e))?;
        let replicas = info
            .lines()
            .find_map(|l| l.trim().strip_prefix("connected_slaves:"))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0);
        let aof = match (
            config(conn, "appendonly").await,
            config(conn, "appendfsync").await,
        ) {
            (Some(on), _) if on == "no" => Aof::Off,
            (Some(_), Some(fsync)) => Aof::On(fsync),
            _ => Aof::Unknown,
        };
        Ok(Durability { replicas, aof })
    }

    /// Say loudly, once, when acknowledged events can be lost.
    pub(super) fn warn_if_unsafe(&self) {
        if self.is_durable() {
            tracing::info!(durability = %self, "redis queue: writes are durable");
            return;
        }
        tracing::warn!(
            durability = %self,
            "redis queue: acknowledged events can be lost if Redis crashes: set appendonly yes + \
             appendfsync always, or add a replica"
        );
    }

    /// After a write: wait for a replica when there are any. A write no
    /// replica confirmed in time is reported as failed (it may still be
    /// applied: the caller's retry makes it at-least-once, never lost).
    pub(super) async fn confirm(&self, conn: &mut ConnectionManager) -> Result<(), StoreError> {
        if !self.waits_for_replica() {
            return Ok(());
        }
        let acked: i64 = redis::cmd("WAIT")
            .arg(1)
            .arg(WAIT_TIMEOUT.as_millis() as u64)
            .query_async(conn)
            .await
            .map_err(|e| redis_error(&e))?;
        if acked < 1 {
            return Err(StoreError::Unavailable(format!(
                "redis: no replica confirmed the write within {}s",
                WAIT_TIMEOUT.as_secs()
            )));
        }
        Ok(())
    }
}

impl fmt::Display for Durability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} replica(s), ", self.replicas)?;
        match &self.aof {
            Aof::Off => f.write_str("appendonly no"),
            Aof::On(fsync) => write!(f, "appendonly yes, appendfsync {fsync}"),
            Aof::Unknown => f.write_str("AOF setting unknown (CONFIG is disabled)"),
        }
    }
}

/// One `CONFIG GET` value, or `None` when the command is refused.
async fn config(conn: &mut ConnectionManager, name: &str) -> Option<String> {
    let pair: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg(name)
        .query_async(conn)
        .await
        .ok()?;
    pair.get(1).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durable_only_with_a_replica_or_fsync_always() {
        let d = |replicas, aof| Durability { replicas, aof };
        assert!(d(0, Aof::On("always".into())).is_durable());
        assert!(d(1, Aof::Off).is_durable());
        assert!(!d(0, Aof::On("everysec".into())).is_durable());
        assert!(!d(0, Aof::Off).is_durable());
        assert!(!d(0, Aof::Unknown).is_durable());
        assert_eq!(
            d(0, Aof::Unknown).to_string(),
            "0 replica(s), AOF setting unknown (CONFIG is disabled)"
        );
    }
}
