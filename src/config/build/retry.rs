//! The `defaults` section, and how a target's `retry` and `circuit_breaker`
//! are merged over it.
//!
//! # Retry merging
//!
//! A retry policy is built from three levels, each overriding the one before
//! key by key: the built-in default (the Standard Webhooks schedule
//! `[5s, 5m, 30m, 2h, 5h, 10h, 10h]`, `jitter: true`,
//! `retry_on: [408, 425, 429, "500-599"]`), then `defaults.retry`, then the
//! target's own `retry`.
//!
//! The backoff keys come in two families: `schedule`, and the exponential keys
//! `initial_delay`, `max_delay` and `multiplier`. One level may not set both (an
//! error at the exponential key). When a level sets one family, the other family
//! inherited from the levels below is dropped, so the merged result never holds
//! both. `max_attempts` (counting the first attempt), `jitter` and `retry_on`
//! belong to neither family and are inherited as they are.
//!
//! The merged result becomes [`Backoff::Schedule`] when it has a schedule
//! (`max_attempts` defaults to `schedule.len() + 1`; a smaller value truncates,
//! a larger one repeats the last delay, and with an empty schedule only 1 is
//! allowed), otherwise [`Backoff::Exponential`] with defaults `max_attempts: 12`,
//! `initial_delay: 1s`, `max_delay: 1h`, `multiplier: 2` (which must be > 1).
//!
//! So `retry: { max_attempts: 8 }` on a target keeps the default schedule and
//! only changes the attempt count, and `retry: { initial_delay: 2s }` switches
//! that target to exponential backoff.
//!
//! `circuit_breaker` merges the same way, key by key, over
//! `defaults.circuit_breaker` over the built-in `{ failures: 5, cooldown: 30s }`.

use std::time::Duration;

use super::super::model::{Backoff, CircuitBreaker, RetryPolicy, StatusSet};
use super::super::node::{Node, NodeValue};
use super::ctx::{Ctx, Problem, index};
use super::values::{duration, positive_duration};

/// Target settings that `defaults` provides.
#[derive(Debug, Clone)]
pub(super) struct Defaults {
    pub timeout: Duration,
    /// Built-in retry merged with `defaults.retry`.
    pub retry: RetryLevel,
    pub circuit_breaker: CircuitBreaker,
}

pub(super) fn defaults(cx: &mut Ctx<'_>, node: Option<&Node>) -> Defaults {
    let mut out = Defaults {
        timeout: Duration::from_secs(10),
        retry: RetryLevel::builtin(),
        circuit_breaker: CircuitBreaker {
            failures: 5,
            cooldown: Duration::from_secs(30),
        },
    };
    let Some(f) = node.and_then(|n| cx.fields(n, "defaults", DEFAULTS_KEYS)) else {
        return out;
    };
    if let Some(t) = f.opt(cx, "timeout", positive_duration) {
        out.timeout = t;
    }
    if let Some(node) = f.get("retry") {
        let path = f.path("retry");
        let level = read_level(cx, node, &path);
        out.retry = level.over(&out.retry);
        if let Err(p) = out.retry.resolve() {
            cx.problem(node, &path, p);
        }
    }
    if let Some(node) = f.get("circuit_breaker") {
        out.circuit_breaker =
            circuit_breaker(cx, node, &f.path("circuit_breaker"), out.circuit_breaker);
    }
    out
}

/// One level of retry settings; `None` means "inherit".
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct RetryLevel {
    schedule: Option<Vec<Duration>>,
    max_attempts: Option<u32>,
    initial_delay: Option<Duration>,
    max_delay: Option<Duration>,
    multiplier: Option<f64>,
    jitter: Option<bool>,
    retry_on: Option<StatusSet>,
}

pub(super) const DEFAULTS_KEYS: &[&str] = &["timeout", "retry", "circuit_breaker"];
pub(super) const CIRCUIT_BREAKER_KEYS: &[&str] = &["failures", "cooldown"];
const EXPONENTIAL_KEYS: &[&str] = &["initial_delay", "max_delay", "multiplier"];
pub(super) const RETRY_KEYS: &[&str] = &[
    "schedule",
    "max_attempts",
    "initial_delay",
    "max_delay",
    "multiplier",
    "jitter",
    "retry_on",
];

impl RetryLevel {
    fn builtin() -> Self {
        let s = Duration::from_secs;
        RetryLevel {
            schedule: Some(vec![
                s(5),
                s(5 * 60),
                s(30 * 60),
                s(2 * 3600),
                s(5 * 3600),
                s(10 * 3600),
                s(10 * 3600),
            ]),
            jitter: Some(true),
            retry_on: Some(StatusSet(vec![408..=408, 425..=425, 429..=429, 500..=599])),
            ..RetryLevel::default()
        }
    }

    fn has_exponential(&self) -> bool {
        self.initial_delay.is_some() || self.max_delay.is_some() || self.multiplier.is_some()
    }

    /// Whether this level sets something that decides the attempt count.
    fn sets_attempts(&self) -> bool {
        self.schedule.is_some() || self.max_attempts.is_some()
    }

    /// `self` over `base`, key by key; a backoff family set here drops the
    /// other family from `base`.
    pub(super) fn over(self, base: &RetryLevel) -> RetryLevel {
        let mut base = base.clone();
        if self.schedule.is_some() {
            base.initial_delay = None;
            base.max_delay = None;
            base.multiplier = None;
        }
        if self.has_exponential() {
            base.schedule = None;
        }
        RetryLevel {
            schedule: self.schedule.or(base.schedule),
            max_attempts: self.max_attempts.or(base.max_attempts),
            initial_delay: self.initial_delay.or(base.initial_delay),
            max_delay: self.max_delay.or(base.max_delay),
            multiplier: self.multiplier.or(base.multiplier),
            jitter: self.jitter.or(base.jitter),
            retry_on: self.retry_on.or(base.retry_on),
        }
    }

    /// The final policy of a fully merged level.
    pub(super) fn resolve(&self) -> Result<RetryPolicy, Problem> {
        let backoff = match &self.schedule {
            Some(delays) => {
                let default = u32::try_from(delays.len() + 1).unwrap_or(u32::MAX);
                let max_attempts = self.max_attempts.unwrap_or(default);
                if delays.is_empty() && max_attempts > 1 {
                    return Err(Problem::new(format!(
                        "`max_attempts: {max_attempts}` needs at least one delay in `schedule`"
                    ))
                    .help("add a delay to `schedule`, or set `max_attempts: 1`"));
                }
                Backoff::Schedule {
                    delays: delays.clone(),
                    max_attempts,
                }
            }
            None => Backoff::Exponential {
                max_attempts: self.max_attempts.unwrap_or(12),
                initial_delay: self.initial_delay.unwrap_or(Duration::from_secs(1)),
                max_delay: self.max_delay.unwrap_or(Duration::from_secs(3600)),
                multiplier: self.multiplier.unwrap_or(2.0),
            },
        };
        Ok(RetryPolicy {
            backoff,
            jitter: self.jitter.unwrap_or(true),
            retry_on: self
                .retry_on
                .clone()
                .unwrap_or_else(|| StatusSet(vec![408..=408, 425..=425, 429..=429, 500..=599])),
        })
    }
}

/// A target's `retry` merged over the defaults.
pub(super) fn target_retry(
    cx: &mut Ctx<'_>,
    node: Option<&Node>,
    path: &str,
    defaults: &RetryLevel,
) -> RetryPolicy {
    let (merged, own) = match node {
        Some(node) => {
            let level = read_level(cx, node, path);
            let own = level.sets_attempts().then_some(node);
            (level.over(defaults), own)
        }
        None => (defaults.clone(), None),
    };
    match merged.resolve() {
        Ok(p) => p,
        Err(problem) => {
            // Reported once at `defaults.retry` unless this target caused it.
            if let Some(node) = own {
                cx.problem(node, path, problem);
            }
            RetryLevel::builtin().resolve().unwrap_or(RetryPolicy {
                backoff: Backoff::Schedule {
                    delays: Vec::new(),
                    max_attempts: 1,
                },
                jitter: true,
                retry_on: StatusSet(Vec::new()),
            })
        }
    }
}

fn read_level(cx: &mut Ctx<'_>, node: &Node, path: &str) -> RetryLevel {
    let mut out = RetryLevel::default();
    let Some(f) = cx.fields(node, path, RETRY_KEYS) else {
        return out;
    };
    out.schedule = f.opt(cx, "schedule", schedule);
    out.max_attempts = f.opt(cx, "max_attempts", |cx, n, p| cx.uint::<u32>(n, p, 1));
    out.initial_delay = f.opt(cx, "initial_delay", positive_duration);
    out.max_delay = f.opt(cx, "max_delay", positive_duration);
    out.multiplier = f.opt(cx, "multiplier", |cx, n, p| {
        let m = cx.number(n, p)?;
        if m > 1.0 {
            Some(m)
        } else {
            cx.error(
                n,
                p,
                format!("`multiplier` must be greater than 1, found {m}"),
            );
            None
        }
    });
    out.jitter = f.opt(cx, "jitter", |cx, n, p| cx.bool(n, p));
    out.retry_on = f.opt(cx, "retry_on", status_set);
    if f.has("schedule") {
        for key in EXPONENTIAL_KEYS {
            if let Some((k, _)) = f.entry(key).filter(|_| f.has(key)) {
                cx.error_help(
                    k,
                    &f.path(key),
                    format!("`{key}` cannot be combined with `schedule`"),
                    "a retry policy is either a `schedule` of delays or exponential \
                     (`initial_delay`, `max_delay`, `multiplier`); keep one",
                );
            }
        }
        out.initial_delay = None;
        out.max_delay = None;
        out.multiplier = None;
    }
    out
}

fn schedule(cx: &mut Ctx<'_>, node: &Node, path: &str) -> Option<Vec<Duration>> {
    let items = cx.list(node, path)?;
    let mut out = Vec::with_capacity(items.len());
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        match duration(cx, item, &index(path, i)) {
            Some(d) => out.push(d),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

/// `[408, 429, "500-599"]`: statuses (100..=599) and inclusive ranges.
fn status_set(cx: &mut Ctx<'_>, node: &Node, path: &str) -> Option<StatusSet> {
    let items = cx.list(node, path)?;
    let mut out = Vec::with_capacity(items.len());
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let p = index(path, i);
        let range = match &item.value {
            NodeValue::Int(n) => status(*n)
                .map(|s| s..=s)
                .ok_or_else(|| Problem::new(format!("{n} is not an HTTP status (100 to 599)"))),
            NodeValue::Str(s) => parse_status_range(s),
            _ => {
                cx.type_error(item, &p, "a status or a range like \"500-599\"");
                ok = false;
                continue;
            }
        };
        match range {
            Ok(r) => out.push(r),
            Err(problem) => {
                cx.problem(item, &p, problem);
                ok = false;
            }
        }
    }
    ok.then_some(StatusSet(out))
}

fn status(n: i64) -> Option<u16> {
    u16::try_from(n).ok().filter(|s| (100..=599).contains(s))
}

fn parse_status_range(s: &str) -> Result<std::ops::RangeInclusive<u16>, Problem> {
    let bad = || {
        Problem::new(format!("invalid status range `{s}`"))
            .help("write a status (429) or an inclusive range (\"500-599\"), within 100 to 599")
    };
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let a = a
        .trim()
        .parse::<i64>()
        .ok()
        .and_then(status)
        .ok_or_else(bad)?;
    let b = b
        .trim()
        .parse::<i64>()
        .ok()
        .and_then(status)
        .ok_or_else(bad)?;
    if a > b {
        return Err(bad());
    }
    Ok(a..=b)
}

/// `{ failures, cooldown }` merged key by key over `base`.
pub(super) fn circuit_breaker(
    cx: &mut Ctx<'_>,
    node: &Node,
    path: &str,
    base: CircuitBreaker,
) -> CircuitBreaker {
    let mut out = base;
    let Some(f) = cx.fields(node, path, CIRCUIT_BREAKER_KEYS) else {
        return out;
    };
    if let Some(v) = f.opt(cx, "failures", |cx, n, p| cx.uint::<u32>(n, p, 1)) {
        out.failures = v;
    }
    if let Some(v) = f.opt(cx, "cooldown", positive_duration) {
        out.cooldown = v;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|s| Duration::from_secs(*s)).collect()
    }

    #[test]
    fn builtin_is_the_standard_webhooks_schedule() {
        let p = RetryLevel::builtin().resolve().unwrap();
        assert_eq!(
            p.backoff,
            Backoff::Schedule {
                delays: secs(&[5, 300, 1800, 7200, 18000, 36000, 36000]),
                max_attempts: 8,
            }
        );
        assert!(p.jitter);
        for s in [408, 425, 429, 500, 503, 599] {
            assert!(p.retry_on.contains(s), "{s}");
        }
        for s in [400, 404, 409, 600, 499] {
            assert!(!p.retry_on.contains(s), "{s}");
        }
    }

    #[test]
    fn merging_table() {
        let builtin = RetryLevel::builtin();
        let exp = RetryLevel {
            initial_delay: Some(Duration::from_secs(2)),
            ..RetryLevel::default()
        };
        let attempts = |n| RetryLevel {
            max_attempts: Some(n),
            ..RetryLevel::default()
        };
        let sched = |v: &[u64]| RetryLevel {
            schedule: Some(secs(v)),
            ..RetryLevel::default()
        };
        let cases: Vec<(RetryLevel, RetryLevel, Backoff)> = vec![
            // max_attempts alone keeps the schedule (truncates or repeats).
            (
                RetryLevel::default(),
                attempts(3),
                Backoff::Schedule {
                    delays: secs(&[5, 300, 1800, 7200, 18000, 36000, 36000]),
                    max_attempts: 3,
                },
            ),
            // Target switches to exponential: the schedule is dropped.
            (
                RetryLevel::default(),
                exp.clone(),
                Backoff::Exponential {
                    max_attempts: 12,
                    initial_delay: Duration::from_secs(2),
                    max_delay: Duration::from_secs(3600),
                    multiplier: 2.0,
                },
            ),
            // Defaults exponential, target schedule: exponential keys dropped,
            // max_attempts inherited.
            (
                RetryLevel {
                    max_attempts: Some(4),
                    ..exp.clone()
                },
                sched(&[1, 2]),
                Backoff::Schedule {
                    delays: secs(&[1, 2]),
                    max_attempts: 4,
                },
            ),
            // Schedule without max_attempts: len + 1.
            (
                RetryLevel::default(),
                sched(&[1, 2]),
                Backoff::Schedule {
                    delays: secs(&[1, 2]),
                    max_attempts: 3,
                },
            ),
            (
                RetryLevel::default(),
                sched(&[]),
                Backoff::Schedule {
                    delays: vec![],
                    max_attempts: 1,
                },
            ),
        ];
        for (i, (defaults, target, want)) in cases.into_iter().enumerate() {
            let merged = target.over(&defaults.over(&builtin));
            assert_eq!(merged.resolve().unwrap().backoff, want, "case {i}");
        }
        assert!(
            RetryLevel {
                max_attempts: Some(2),
                ..sched(&[])
            }
            .over(&builtin)
            .resolve()
            .is_err()
        );
    }

    #[test]
    fn status_ranges() {
        assert_eq!(parse_status_range("500-599").ok(), Some(500..=599));
        assert_eq!(parse_status_range("429").ok(), Some(429..=429));
        for bad in ["600-700", "599-500", "5xx", "", "99"] {
            assert!(parse_status_range(bad).is_err(), "{bad}");
        }
    }
}
