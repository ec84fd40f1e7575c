//! A target's delivery rate limit (`targets.*.rate_limit`), as its worker
//! uses it: a cell of the target's GCRA budget is taken *before* a delivery
//! is claimed from the store.
//!
//! So a limited target's waiting deliveries stay in the store (never in
//! memory, never dropped), at most about `concurrency` of them are claimed
//! at a time, and retries and replays, which the same worker claims, spend
//! the same budget. A worker that has to wait for a cell counts it in
//! `hookgate_rate_limited_total{target}`; the wait is a timer on the
//! worker's own task, so no other target is held up.
//!
//! Claims are sized to the cells free right now, and grow only while the
//! backlog keeps them full: a cell spent on a claim that finds nothing is
//! budget lost, so after a short claim, or after going idle, the worker asks
//! for one cell at a time again.
//!
//! The cells come from a [`CellBudget`]: this process's own, or one shared
//! by every replica of a Redis-backed gateway (see [`crate::rate_limit`]).
//!
//! [`TargetLimits`] is owned by the target's worker and follows the
//! target's limit through a `watch` channel the reconcile writes on a reload
//! ([`TargetLimits::following`]): an unchanged limit keeps its budget, and a
//! change reaches even a worker that is waiting for a cell (a limit raised
//! from one a minute does not wait out the old minute).

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use std::sync::Arc;

use crate::config::RateLimit;
use crate::metrics;
use crate::rate_limit::{CellBudget, CellBudgets};

/// The largest claim a limited target grows to (the free concurrency
/// permits and the cells free at once cap it long before, in practice).
const MAX_BATCH: usize = 1_024;

/// How [`TargetLimits::first_cell`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cell {
    /// A cell was free at once (or the target is unlimited).
    Ready,
    /// A cell was taken after waiting for it.
    AfterWait,
    /// Stopping came first; nothing was taken.
    Stopped,
}

/// One target's rate limit state, owned by its worker.
pub struct TargetLimits {
    target: String,
    budgets: Arc<dyn CellBudgets>,
    limiter: Option<Arc<dyn CellBudget>>,
    /// How many cells the next claim may take at most.
    batch: usize,
    /// The target's limit as reloads change it.
    changes: watch::Receiver<Option<RateLimit>>,
}

impl TargetLimits {
    /// The limits of `target`, following the limit `changes` carries, with
    /// cells from `budgets`.
    pub fn following(
        target: &str,
        mut changes: watch::Receiver<Option<RateLimit>>,
        budgets: Arc<dyn CellBudgets>,
    ) -> TargetLimits {
        let limit = *changes.borrow_and_update();
        if limit.is_some() {
            metrics::rate_limited(target, 0);
        }
        TargetLimits {
            target: target.to_owned(),
            limiter: limit.map(|l| budgets.budget(target, l, false)),
            budgets,
            batch: 1,
            changes,
        }
    }

    /// Take up a limit changed since the last look, if any.
    pub fn refresh(&mut self) {
        if self.changes.has_changed().unwrap_or(false) {
            let limit = *self.changes.borrow_and_update();
            self.apply(limit);
        }
    }

    /// Take the target's limit from a new config. An unchanged limit keeps
    /// its limiter and budget; a changed one starts with its budget spent,
    /// so the change itself never lets an extra burst out.
    fn apply(&mut self, limit: Option<RateLimit>) {
        self.limiter = match (self.limiter.take(), limit) {
            (Some(kept), Some(new)) if kept.limit() == new => Some(kept),
            (Some(_), Some(new)) => Some(self.budgets.budget(&self.target, new, true)),
            (None, Some(new)) => {
                metrics::rate_limited(&self.target, 0);
                Some(self.budgets.budget(&self.target, new, false))
            }
            (_, None) => None,
        };
    }

    /// Whether deliveries must take a cell before they are claimed.
    pub fn is_limited(&self) -> bool {
        self.limiter.is_some()
    }

    /// Wait until a cell is free and take it. Unlimited: ready at once. A
    /// limit changed meanwhile applies to the wait at once.
    pub async fn first_cell(&mut self, stop: &CancellationToken) -> Cell {
        let mut counted = false;
        loop {
            let taken = match &self.limiter {
                None => Ok(1),
                Some(budget) => budget.take(1).await,
            };
            let wait = match taken {
                Ok(_) if counted => return Cell::AfterWait,
                Ok(_) => return Cell::Ready,
                Err(wait) => wait,
            };
            if !counted {
                counted = true;
                metrics::rate_limited(&self.target, 1);
                tracing::debug!(target = %self.target, ?wait, "waiting for the target's rate limit");
            }
            // A closed channel (its sender gone) disables this branch.
            let changed = async { self.changes.changed().await.is_ok() };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                // `changed()` marked the value seen: take it as it is now.
                true = changed => {
                    let limit = *self.changes.borrow_and_update();
                    self.apply(limit);
                }
                () = stop.cancelled() => return Cell::Stopped,
            }
        }
    }

    /// After [`first_cell`](Self::first_cell): how many deliveries to claim
    /// now, at most `limit` (the free permits), taking one more cell for
    /// each beyond the first, as far as cells are free without waiting.
    /// Unlimited: `limit`.
    pub async fn claim_size(&self, limit: usize) -> usize {
        let Some(budget) = &self.limiter else {
            return limit;
        };
        let more = limit.min(self.batch).saturating_sub(1);
        if more == 0 {
            return 1;
        }
        let more = u32::try_from(more).unwrap_or(u32::MAX);
        1 + budget.take(more).await.map_or(0, |n| n as usize)
    }

    /// A claim for `asked` deliveries brought `got`: grow the next claim
    /// while the backlog fills them, start again from one when it did not.
    pub fn claimed(&mut self, asked: usize, got: usize) {
        self.batch = if got >= asked {
            self.batch.saturating_mul(2).min(MAX_BATCH)
        } else {
            1
        };
    }

    /// Nothing was due: the next burst of work starts with a claim of one.
    pub fn went_idle(&mut self) {
        self.batch = 1;
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::rate_limit::LocalBudgets;

    /// Limits that no reload changes, with cells from this process.
    fn fixed(target: &str, limit: Option<RateLimit>) -> TargetLimits {
        TargetLimits::following(target, watch::channel(limit).1, Arc::new(LocalBudgets))
    }

    fn limit(per_second: u32, burst: u32) -> Option<RateLimit> {
        Some(RateLimit { per_second, burst })
    }

    #[tokio::test]
    async fn unlimited_never_waits_and_claims_every_free_permit() {
        let mut limits = fixed("t", None);
        assert!(!limits.is_limited());
        assert_ne!(
            limits.first_cell(&CancellationToken::new()).await,
            Cell::Stopped
        );
        assert_eq!(limits.claim_size(8).await, 8);
    }

    #[tokio::test]
    async fn claims_grow_while_full_and_fall_back_to_one() {
        let mut limits = fixed("t", limit(1, 100));
        let stop = CancellationToken::new();
        let mut sizes = Vec::new();
        for _ in 0..5 {
            assert_ne!(limits.first_cell(&stop).await, Cell::Stopped);
            let n = limits.claim_size(8).await;
            sizes.push(n);
            limits.claimed(n, n);
        }
        assert_eq!(sizes, [1, 2, 4, 8, 8], "capped by the free permits");
        assert_ne!(limits.first_cell(&stop).await, Cell::Stopped);
        let n = limits.claim_size(8).await;
        limits.claimed(n, 3);
        assert_ne!(limits.first_cell(&stop).await, Cell::Stopped);
        assert_eq!(
            limits.claim_size(8).await,
            1,
            "a short claim starts again from one"
        );
        limits.claimed(1, 1);
        limits.went_idle();
        assert_ne!(limits.first_cell(&stop).await, Cell::Stopped);
        assert_eq!(limits.claim_size(8).await, 1, "so does going idle");
    }

    #[tokio::test]
    async fn a_claim_takes_only_the_cells_free_now() {
        let mut limits = fixed("t", limit(1, 3));
        limits.batch = 8;
        let stop = CancellationToken::new();
        assert_ne!(limits.first_cell(&stop).await, Cell::Stopped);
        assert_eq!(limits.claim_size(8).await, 3, "the burst, no more");
        let started = Instant::now();
        tokio::time::timeout(Duration::from_millis(50), limits.first_cell(&stop))
            .await
            .expect_err("the budget is spent: the next cell is a second away");
        assert!(started.elapsed() >= Duration::from_millis(50));
    }

    #[tokio::test]
    async fn waits_for_the_next_cell() {
        let mut limits = fixed("t", limit(20, 1));
        let stop = CancellationToken::new();
        assert_eq!(limits.first_cell(&stop).await, Cell::Ready);
        let started = Instant::now();
        assert_eq!(limits.first_cell(&stop).await, Cell::AfterWait);
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(40) && waited < Duration::from_millis(500),
            "one interval (50 ms): {waited:?}"
        );
    }

    #[tokio::test]
    async fn stopping_interrupts_a_wait() {
        let mut limits = fixed("t", limit(1, 1));
        let stop = CancellationToken::new();
        assert_ne!(limits.first_cell(&stop).await, Cell::Stopped);
        let s = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            s.cancel();
        });
        let started = Instant::now();
        assert_eq!(
            limits.first_cell(&stop).await,
            Cell::Stopped,
            "no cell taken"
        );
        assert!(started.elapsed() < Duration::from_millis(500));
    }

    #[tokio::test]
    async fn a_limit_changed_during_a_wait_applies_to_that_wait() {
        let (tx, rx) = watch::channel(limit(1, 1));
        let mut limits = TargetLimits::following("t", rx, Arc::new(LocalBudgets));
        let stop = CancellationToken::new();
        assert_eq!(limits.first_cell(&stop).await, Cell::Ready);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            tx.send_replace(limit(50, 1));
        });
        let started = Instant::now();
        let waited = tokio::time::timeout(Duration::from_secs(5), limits.first_cell(&stop)).await;
        assert_eq!(
            waited.ok(),
            Some(Cell::AfterWait),
            "the old limit's next cell was a second away"
        );
        assert!(
            started.elapsed() < Duration::from_millis(900),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn apply_keeps_an_unchanged_budget() {
        let mut limits = fixed("t", limit(1, 1));
        let stop = CancellationToken::new();
        assert_ne!(limits.first_cell(&stop).await, Cell::Stopped);
        let spent = |limits: &TargetLimits| {
            let budget = limits.limiter.clone().expect("limited");
            async move { budget.take(1).await.is_err() }
        };
        limits.apply(limit(1, 1));
        assert!(spent(&limits).await, "unchanged: still spent");
        limits.apply(limit(1_000, 50));
        assert!(spent(&limits).await, "changed: starts spent");
        limits.apply(None);
        assert!(!limits.is_limited());
        assert_eq!(limits.claim_size(4).await, 4);
    }
}
