//! Per-source inbound rate limits (`sources[].rate_limit`).
//!
//! Checked right after the signature (DESIGN.md section 4: 401/403 before
//! 429), so forged requests never spend the provider's budget. Over the
//! limit the request is refused with 429 `rate_limited` and a `Retry-After`
//! of the whole seconds until a cell is free (at least 1).
//!
//! One limiter per source, keyed by name. The map is swappable so a reload
//! can [`SourceLimits::apply`] the new sources while keeping the budget of
//! every source whose limit did not change.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use super::error::IngressError;
use crate::config::Source;
use crate::rate_limit::Limiter;

/// The limiters of every source that has a `rate_limit`.
#[derive(Debug)]
pub struct SourceLimits {
    by_source: ArcSwap<HashMap<String, Arc<Limiter>>>,
}

impl SourceLimits {
    /// A limiter for each source with a `rate_limit`, each with its full burst.
    pub fn new(sources: &[Source]) -> SourceLimits {
        SourceLimits {
            by_source: ArcSwap::from_pointee(build(sources, &HashMap::new())),
        }
    }

    /// Take the sources of a new config: a source whose limit is unchanged
    /// keeps its limiter and budget, a changed one starts with its budget
    /// spent, a new one starts full.
    pub fn apply(&self, sources: &[Source]) {
        let current = self.by_source.load();
        self.by_source.store(Arc::new(build(sources, &current)));
    }

    /// Spend one cell of `source`'s budget, or refuse with how long to wait.
    /// A source with no limit always passes.
    pub fn check(&self, source: &str) -> Result<(), IngressError> {
        let limits = self.by_source.load();
        let Some(limiter) = limits.get(source) else {
            return Ok(());
        };
        limiter
            .try_take()
            .map_err(|wait| IngressError::RateLimited {
                retry_after: whole_seconds_up(wait),
            })
    }
}

fn build(
    sources: &[Source],
    current: &HashMap<String, Arc<Limiter>>,
) -> HashMap<String, Arc<Limiter>> {
    sources
        .iter()
        .filter_map(|s| {
            let limit = s.rate_limit?;
            let limiter = match current.get(&s.name) {
                Some(kept) if kept.limit() == limit => kept.clone(),
                // A changed limit starts with its budget spent, so a reload
                // never lets an extra burst in; a new source starts full.
                Some(_) => Arc::new(Limiter::spent(limit)),
                None => Arc::new(Limiter::new(limit)),
            };
            Some((s.name.clone(), limiter))
        })
        .collect()
}

/// `Retry-After` is whole seconds: round up, so a client that waits exactly
/// that long finds a cell, and never say 0.
fn whole_seconds_up(wait: Duration) -> Duration {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    Duration::from_secs(secs.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{RateLimit, Schema, VerifyConfig, VerifyScheme};

    fn source(name: &str, rate_limit: Option<RateLimit>) -> Source {
        Source {
            name: name.to_owned(),
            path: format!("/{name}"),
            verify: VerifyConfig {
                scheme: VerifyScheme::None,
                secrets: Vec::new(),
            },
            schema: Schema::Json,
            strict: false,
            rate_limit,
        }
    }

    fn limit(per_second: u32, burst: u32) -> Option<RateLimit> {
        Some(RateLimit { per_second, burst })
    }

    fn retry_after(r: Result<(), IngressError>) -> Duration {
        match r {
            Err(IngressError::RateLimited { retry_after }) => retry_after,
            other => panic!("expected rate_limited, got {other:?}"),
        }
    }

    #[test]
    fn a_burst_passes_then_429_with_whole_seconds() {
        let limits = SourceLimits::new(&[source("a", limit(1, 3)), source("open", None)]);
        for _ in 0..3 {
            assert!(limits.check("a").is_ok());
        }
        assert_eq!(retry_after(limits.check("a")), Duration::from_secs(1));
        // Sources without a limit, and unknown names, are never limited.
        for _ in 0..100 {
            assert!(limits.check("open").is_ok());
            assert!(limits.check("nobody").is_ok());
        }
    }

    #[test]
    fn retry_after_rounds_up_and_is_never_zero() {
        assert_eq!(
            whole_seconds_up(Duration::from_millis(1)),
            Duration::from_secs(1)
        );
        assert_eq!(
            whole_seconds_up(Duration::from_millis(1_001)),
            Duration::from_secs(2)
        );
        assert_eq!(
            whole_seconds_up(Duration::from_secs(3)),
            Duration::from_secs(3)
        );
        assert_eq!(whole_seconds_up(Duration::ZERO), Duration::from_secs(1));
        // One cell per second: a wait just under a second reads 1.
        let limits = SourceLimits::new(&[source("slow", limit(1, 1))]);
        assert!(limits.check("slow").is_ok());
        assert_eq!(retry_after(limits.check("slow")), Duration::from_secs(1));
    }

    #[test]
    fn apply_keeps_an_unchanged_budget_and_restarts_a_changed_one() {
        let limits = SourceLimits::new(&[source("a", limit(1, 2)), source("b", limit(1, 2))]);
        for _ in 0..2 {
            assert!(limits.check("a").is_ok());
            assert!(limits.check("b").is_ok());
        }
        limits.apply(&[
            source("a", limit(1, 2)),
            source("b", limit(1, 5)),
            source("c", limit(1, 1)),
        ]);
        assert!(limits.check("a").is_err(), "unchanged: the budget is kept");
        assert!(
            limits.check("b").is_err(),
            "changed: starts spent, no extra burst"
        );
        assert!(limits.check("c").is_ok(), "new: starts with its burst");
        limits.apply(&[source("a", None)]);
        assert!(limits.check("a").is_ok(), "limit removed");
    }
}
