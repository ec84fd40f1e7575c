//! One GCRA rate limiter built from a config [`RateLimit`]: the building
//! block of both the per-source inbound limit (`ingress`) and the per-target
//! delivery limit (`delivery`).
//!
//! `per_second` cells are replenished per second, evenly (one every
//! `1/per_second` s), and up to `burst` cells can be spent at once after a
//! quiet spell. So no one-second window lets more than `per_second + burst`
//! through, and the long-run rate is `per_second` (governor's GCRA).
//!
//! The limiter runs on the process's monotonic clock, not on
//! [`crate::clock::Clock`]: a rate is about real seconds passing, and a test
//! that moves a [`crate::clock::ManualClock`] by hours to reach a retry must
//! not thereby hand out hours of budget.
//!
//! A target's delivery limit is taken through [`CellBudget`], made by a
//! [`CellBudgets`]: [`LocalBudgets`] hands out this process's [`Limiter`]s
//! (one process per SQLite queue); a backend shared by replicas hands out
//! budgets kept in the store, so that replicas together keep the limit
//! (DESIGN.md section 9). Source limits are per process.

use std::fmt;
use std::future::Future;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::Clock as _;
use governor::{DefaultDirectRateLimiter, Quota};

use crate::config::RateLimit;

pub mod redis;

/// Validated config has both numbers >= 1; a 0 would mean "never", which no
/// config can ask for, so it is read as 1 rather than panicking.
fn at_least_one(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

/// A GCRA limiter for one source or target.
#[derive(Debug)]
pub struct Limiter {
    limit: RateLimit,
    gcra: DefaultDirectRateLimiter,
}

impl Limiter {
    /// A limiter with its whole `burst` available.
    pub fn new(limit: RateLimit) -> Limiter {
        let quota = Quota::per_second(at_least_one(limit.per_second))
            .allow_burst(at_least_one(limit.burst));
        Limiter {
            limit,
            gcra: DefaultDirectRateLimiter::direct(quota),
        }
    }

    /// A limiter whose burst is already spent: the next cell comes after one
    /// interval. For a changed quota on reload, so that swapping limiters can
    /// never let an extra burst through.
    pub fn spent(limit: RateLimit) -> Limiter {
        let limiter = Limiter::new(limit);
        // One check of the whole burst (a fresh limiter has exactly that).
        let _ = limiter.gcra.check_n(at_least_one(limit.burst));
        limiter
    }

    /// The limit this limiter enforces.
    pub fn limit(&self) -> RateLimit {
        self.limit
    }

    /// Take one cell now, or say how long until one is free (never zero).
    pub fn try_take(&self) -> Result<(), Duration> {
        self.gcra.check().map_err(|not_until| {
            let wait = not_until.wait_time_from(self.gcra.clock().now());
            // A cell due "now" after rounding: ask to wait a tick, not zero,
            // so a caller's wait loop always makes progress.
            wait.max(Duration::from_millis(1))
        })
    }
}

/// What [`CellBudget::take`] returns: how many cells were taken (at least
/// one), or how long until one is free.
pub type TakeFuture<'a> = Pin<Box<dyn Future<Output = Result<u32, Duration>> + Send + 'a>>;

/// One target's budget of cells.
pub trait CellBudget: Send + Sync + fmt::Debug {
    /// The limit this budget enforces.
    fn limit(&self) -> RateLimit;

    /// Take up to `n` cells (`n >= 1`) that are free now, without waiting:
    /// how many were taken, or, when not one was free, how long until one
    /// is (never zero). A budget that cannot be reached answers with a wait.
    fn take(&self, n: u32) -> TakeFuture<'_>;
}

/// Where targets' budgets are kept.
pub trait CellBudgets: Send + Sync {
    /// The budget of `target` at `limit`. `spent`: it starts with its burst
    /// used up (a limit changed by a reload must not let an extra burst out).
    fn budget(&self, target: &str, limit: RateLimit, spent: bool) -> Arc<dyn CellBudget>;
}

/// Budgets in this process's memory: one [`Limiter`] per target.
#[derive(Debug, Default, Clone, Copy)]
pub struct LocalBudgets;

impl CellBudgets for LocalBudgets {
    fn budget(&self, _target: &str, limit: RateLimit, spent: bool) -> Arc<dyn CellBudget> {
        Arc::new(if spent {
            Limiter::spent(limit)
        } else {
            Limiter::new(limit)
        })
    }
}

impl CellBudget for Limiter {
    fn limit(&self) -> RateLimit {
        self.limit
    }

    fn take(&self, n: u32) -> TakeFuture<'_> {
        let taken = self.try_take().map(|()| {
            let mut taken = 1;
            while taken < n && self.try_take().is_ok() {
                taken += 1;
            }
            taken
        });
        Box::pin(std::future::ready(taken))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(per_second: u32, burst: u32) -> RateLimit {
        RateLimit { per_second, burst }
    }

    #[test]
    fn a_full_burst_then_one_cell_per_interval() {
        let l = Limiter::new(limit(10, 3));
        for _ in 0..3 {
            assert_eq!(l.try_take(), Ok(()));
        }
        let wait = l.try_take().expect_err("the burst is spent");
        assert!(
            wait <= Duration::from_millis(100),
            "one interval at most: {wait:?}"
        );
        assert!(wait >= Duration::from_millis(50), "{wait:?}");
    }

    #[test]
    fn a_refused_cell_is_not_spent() {
        let l = Limiter::new(limit(1_000, 1));
        assert_eq!(l.try_take(), Ok(()));
        // Asking again and again while empty does not push the next cell back.
        for _ in 0..100 {
            let _ = l.try_take();
        }
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(l.try_take(), Ok(()));
    }

    #[tokio::test]
    async fn a_budget_takes_what_is_free_now_and_no_more() {
        let budget = LocalBudgets.budget("t", limit(1, 3), false);
        assert_eq!(budget.take(2).await, Ok(2));
        assert_eq!(
            budget.take(5).await,
            Ok(1),
            "one cell of the burst was left"
        );
        assert!(budget.take(1).await.is_err());
        let spent = LocalBudgets.budget("t", limit(1, 3), true);
        assert!(spent.take(1).await.is_err(), "a spent budget starts empty");
        assert_eq!(spent.limit(), limit(1, 3));
    }

    #[test]
    fn a_spent_limiter_has_no_burst_left() {
        let l = Limiter::spent(limit(2, 5));
        let wait = l.try_take().expect_err("spent");
        assert!(wait <= Duration::from_millis(500), "{wait:?}");
        assert_eq!(l.limit(), limit(2, 5));
    }
}
