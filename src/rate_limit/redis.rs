//! Target budgets kept in Redis, so that every replica takes from the same
//! cells (DESIGN.md section 9): three replicas of a target with
//! `per_second: 5` send 5 per second together, not 15.
//!
//! One GCRA per target and limit, in one Lua script clocked by the Redis
//! server's `TIME` (replicas' clocks never enter into it), with governor's
//! semantics: `burst` cells at once after a quiet spell, then one every
//! `1 / per_second`. The state is one key, the theoretical arrival time in
//! microseconds, that expires once the budget is full again, so an idle
//! target costs nothing. The key carries the target's hash tag and the limit,
//! so a changed limit starts a fresh budget, which starts spent (as the
//! local one does on a reload).
//!
//! When Redis cannot be reached a budget answers "wait a second": a limit
//! is never exceeded because its state is out of reach.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis::Script;
use redis::aio::ConnectionManager;

use super::{CellBudget, CellBudgets, TakeFuture};
use crate::config::RateLimit;
use crate::queue::redis::keys;

/// How long a budget asks its worker to wait when Redis does not answer.
const UNREACHABLE_WAIT: Duration = Duration::from_secs(1);

/// KEYS[1]: the budget. ARGV: interval (µs), burst, cells wanted, and 1 to
/// start spent when the key does not exist yet. Returns {taken, wait µs}.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local wanted = tonumber(ARGV[3])
local tolerance = interval * (burst - 1)
local tat = tonumber(redis.call('GET', KEYS[1]))
if not tat then
  if ARGV[4] == '1' then tat = now + interval * burst else tat = now end
end
if tat < now then tat = now end
local taken = 0
while taken < wanted and tat - now <= tolerance do
  tat = tat + interval
  taken = taken + 1
end
if tat > now then
  redis.call('SET', KEYS[1], string.format('%d', tat), 'PX', math.ceil((tat - now) / 1000) + 1)
end
if taken > 0 then return {taken, 0} end
return {0, tat - now - tolerance}
";

/// Makes budgets that live in Redis under `prefix`.
#[derive(Clone)]
pub struct RedisBudgets {
    conn: ConnectionManager,
    prefix: String,
    script: Arc<Script>,
}

impl RedisBudgets {
    pub fn new(conn: ConnectionManager, prefix: &str) -> RedisBudgets {
        RedisBudgets {
            conn,
            prefix: prefix.to_owned(),
            script: Arc::new(Script::new(GCRA)),
        }
    }
}

impl CellBudgets for RedisBudgets {
    fn budget(&self, target: &str, limit: RateLimit, spent: bool) -> Arc<dyn CellBudget> {
        Arc::new(RedisBudget {
            conn: self.conn.clone(),
            script: self.script.clone(),
            key: keys::target(
                &self.prefix,
                target,
                &format!("gcra:{}:{}", limit.per_second, limit.burst),
            ),
            target: target.to_owned(),
            limit,
            interval_us: 1_000_000 / u64::from(limit.per_second.max(1)),
            start_spent: AtomicBool::new(spent),
        })
    }
}

struct RedisBudget {
    conn: ConnectionManager,
    script: Arc<Script>,
    key: String,
    target: String,
    limit: RateLimit,
    interval_us: u64,
    /// Start spent, if this budget creates the key: only on its first call,
    /// so a key that expired after a quiet spell comes back full.
    start_spent: AtomicBool,
}

impl std::fmt::Debug for RedisBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBudget")
            .field("key", &self.key)
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl CellBudget for RedisBudget {
    fn limit(&self) -> RateLimit {
        self.limit
    }

    fn take(&self, n: u32) -> TakeFuture<'_> {
        Box::pin(async move {
            let spent = self.start_spent.load(Ordering::Relaxed);
            let mut conn = self.conn.clone();
            let answer: redis::RedisResult<(u32, u64)> = self
                .script
                .key(&self.key)
                .arg(self.interval_us)
                .arg(self.limit.burst.max(1))
                .arg(n.max(1))
                .arg(u8::from(spent))
                .invoke_async(&mut conn)
                .await;
            match answer {
                Ok((taken, wait_us)) => {
                    self.start_spent.store(false, Ordering::Relaxed);
                    if taken > 0 {
                        Ok(taken)
                    } else {
                        Err(Duration::from_micros(wait_us).max(Duration::from_millis(1)))
                    }
                }
                Err(e) => {
                    tracing::warn!(
                        target = %self.target,
                        error_kind = ?e.kind(),
                        "cannot reach Redis for the target's rate limit; waiting"
                    );
                    Err(UNREACHABLE_WAIT)
                }
            }
        })
    }
}
