//! When a failed delivery is tried again: the delay after attempt n.
//!
//! `schedule` gives the delays outright; `exponential` is
//! `initial_delay * multiplier^(n-1)` capped at `max_delay`, computed with
//! backon's `ExponentialBuilder`. With `jitter` the delay is drawn uniformly
//! within ±20% of that. A `Retry-After` longer than the backoff wins, capped by
//! `max_delay` (or the largest schedule entry). After the last attempt the
//! delivery is dead (`exhausted`).

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use rand::Rng;

use crate::config::{Backoff, RetryPolicy};

/// The delay before the next attempt after `attempts` attempts in the current
/// budget have failed, or `None` when the budget is spent.
pub fn next_delay(
    policy: &RetryPolicy,
    attempts: u32,
    retry_after: Option<Duration>,
) -> Option<Duration> {
    let nominal = nominal_delay(&policy.backoff, attempts)?;
    let mut delay = if policy.jitter {
        jitter(nominal)
    } else {
        nominal
    };
    if let Some(asked) = retry_after
        && asked > delay
    {
        delay = capped_retry_after(policy, asked);
    }
    Some(delay)
}

/// A receiver's `Retry-After`, capped by `max_delay` (or the largest schedule
/// entry) so a hostile or buggy receiver cannot park a target for a year.
pub fn capped_retry_after(policy: &RetryPolicy, asked: Duration) -> Duration {
    asked.min(max_delay(&policy.backoff))
}

/// The un-jittered delay after attempt `attempts` (1-based).
pub fn nominal_delay(backoff: &Backoff, attempts: u32) -> Option<Duration> {
    if attempts == 0 {
        return Some(Duration::ZERO);
    }
    match backoff {
        Backoff::Schedule {
            delays,
            max_attempts,
        } => {
            if attempts >= *max_attempts {
                return None;
            }
            let i = (attempts as usize - 1).min(delays.len().saturating_sub(1));
            Some(delays.get(i).copied().unwrap_or(Duration::ZERO))
        }
        Backoff::Exponential {
            max_attempts,
            initial_delay,
            max_delay,
            multiplier,
        } => {
            if attempts >= *max_attempts {
                return None;
            }
            ExponentialBuilder::new()
                .with_min_delay(*initial_delay)
                .with_factor(*multiplier as f32)
                .with_max_delay(*max_delay)
                .without_max_times()
                .build()
                .nth(attempts as usize - 1)
        }
    }
}

/// The longest delay the policy would ever ask for: the cap on `Retry-After`.
fn max_delay(backoff: &Backoff) -> Duration {
    match backoff {
        Backoff::Schedule { delays, .. } => delays.iter().copied().max().unwrap_or(Duration::ZERO),
        Backoff::Exponential { max_delay, .. } => *max_delay,
    }
}

/// Uniform within ±20% of `d`.
fn jitter(d: Duration) -> Duration {
    let factor = rand::rng().random_range(0.8..=1.2);
    d.mul_f64(factor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StatusSet;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn schedule(delays: &[u64], max_attempts: u32) -> RetryPolicy {
        RetryPolicy {
            backoff: Backoff::Schedule {
                delays: delays.iter().map(|&s| secs(s)).collect(),
                max_attempts,
            },
            jitter: false,
            retry_on: StatusSet(vec![500..=599]),
        }
    }

    #[test]
    fn schedule_gives_each_delay_then_gives_up() {
        let p = schedule(&[5, 300, 1800], 4);
        assert_eq!(next_delay(&p, 1, None), Some(secs(5)));
        assert_eq!(next_delay(&p, 2, None), Some(secs(300)));
        assert_eq!(next_delay(&p, 3, None), Some(secs(1800)));
        assert_eq!(next_delay(&p, 4, None), None);
    }

    #[test]
    fn longer_schedule_budget_repeats_the_last_delay() {
        let p = schedule(&[5, 10], 5);
        assert_eq!(next_delay(&p, 3, None), Some(secs(10)));
        assert_eq!(next_delay(&p, 4, None), Some(secs(10)));
        assert_eq!(next_delay(&p, 5, None), None);
    }

    #[test]
    fn exponential_doubles_and_caps() {
        let p = RetryPolicy {
            backoff: Backoff::Exponential {
                max_attempts: 12,
                initial_delay: secs(1),
                max_delay: secs(10),
                multiplier: 2.0,
            },
            jitter: false,
            retry_on: StatusSet(vec![]),
        };
        let got: Vec<_> = (1..=6).map(|n| next_delay(&p, n, None)).collect();
        assert_eq!(
            got,
            vec![
                Some(secs(1)),
                Some(secs(2)),
                Some(secs(4)),
                Some(secs(8)),
                Some(secs(10)),
                Some(secs(10))
            ]
        );
        assert_eq!(next_delay(&p, 12, None), None);
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        let mut p = schedule(&[100], 2);
        p.jitter = true;
        for _ in 0..1000 {
            let d = next_delay(&p, 1, None).unwrap();
            assert!(d >= secs(80) && d <= secs(120), "{d:?}");
        }
    }

    #[test]
    fn retry_after_wins_when_longer_but_is_capped() {
        let p = schedule(&[5, 60], 3);
        assert_eq!(next_delay(&p, 1, Some(secs(30))), Some(secs(30)));
        assert_eq!(next_delay(&p, 1, Some(secs(1))), Some(secs(5)));
        assert_eq!(next_delay(&p, 1, Some(secs(3600))), Some(secs(60)));
    }
}
