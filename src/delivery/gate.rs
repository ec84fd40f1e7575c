//! Whether a target may be sent to right now: its circuit breaker and any
//! pause a `429 Retry-After` asked for.
//!
//! A target whose last `circuit_breaker.failures` attempts all failed with a
//! retryable failure other than 429 is *open* for `cooldown`: nothing is
//! claimed for it, so its deliveries wait without spending attempts. When the
//! cooldown ends it is *half-open*: exactly one delivery (the probe) goes out;
//! success closes the circuit, failure opens it again. A 429 with
//! `Retry-After` pauses the whole target until then. Both are in memory:
//! after a restart a target starts closed. Replicas sharing a store also
//! share what they learn through a [`super::circuit_board`]: a replica takes
//! another's open circuit, pause or closing as its own ([`Gate::adopt`]).
//!
//! Pure state machine; the worker asks [`Gate::admit`] before claiming and
//! tells [`Gate::record`] each outcome. Times are clock milliseconds.

use crate::config::CircuitBreaker;

/// What the worker may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Claim up to this many (the caller's free permits).
    Open,
    /// Claim exactly one delivery: the half-open probe.
    Probe,
    /// Claim nothing; ask again at this time (or when an outcome arrives).
    WaitUntil(i64),
    /// Claim nothing; a probe is out, ask again when its outcome arrives.
    WaitForProbe,
}

/// How an attempt went, as far as the gate cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Delivered, or a permanent failure: the target answered, it is up.
    Healthy,
    /// A retryable failure other than 429 (connect error, timeout, 5xx, …).
    Failing,
    /// 429, with the pause it asked for (`None`: no Retry-After).
    RateLimited(Option<i64>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Circuit {
    Closed { failures: u32 },
    Open { until: i64 },
    HalfOpen { probe_out: bool },
}

/// What replicas tell each other about one target's gate (all clock ms).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SharedHold {
    /// The circuit is open until then, as of `opened_at`.
    pub open_until: Option<i64>,
    pub opened_at: i64,
    /// When the circuit last closed (a probe came back healthy).
    pub closed_at: i64,
    /// A `Retry-After` pause holds the target until then.
    pub paused_until: Option<i64>,
}

#[derive(Debug)]
pub struct Gate {
    settings: CircuitBreaker,
    circuit: Circuit,
    paused_until: Option<i64>,
    /// When the circuit last opened and last closed, here or by adoption:
    /// news older than the current state is not taken.
    opened_at: i64,
    closed_at: i64,
}

impl Gate {
    pub fn new(settings: CircuitBreaker) -> Self {
        Gate {
            settings,
            circuit: Circuit::Closed { failures: 0 },
            paused_until: None,
            opened_at: i64::MIN,
            closed_at: i64::MIN,
        }
    }

    /// While open: until when, and since when (for a replica to publish).
    pub fn open_window(&self) -> Option<(i64, i64)> {
        match self.circuit {
            Circuit::Open { until } => Some((until, self.opened_at)),
            _ => None,
        }
    }

    /// When the circuit last closed.
    pub fn closed_at(&self) -> i64 {
        self.closed_at
    }

    /// Take what other replicas published: a newer opening (unless a probe
    /// of ours is out), a newer closing, a pause. Returns true when the
    /// circuit changed between closed and open.
    pub fn adopt(&mut self, hold: SharedHold, now: i64) -> bool {
        let was_open = self.is_open();
        if let Some(until) = hold.paused_until.filter(|&u| u > now) {
            self.paused_until = Some(self.paused_until.map_or(until, |p| p.max(until)));
        }
        let newer_open = hold
            .open_until
            .filter(|&u| u > now && hold.opened_at > self.opened_at.max(self.closed_at));
        match (self.circuit, newer_open) {
            (Circuit::HalfOpen { probe_out: true }, _) => {}
            (_, Some(until)) => {
                self.circuit = Circuit::Open { until };
                self.opened_at = hold.opened_at;
            }
            (Circuit::Open { .. } | Circuit::HalfOpen { .. }, None)
                if hold.closed_at > self.opened_at =>
            {
                self.circuit = Circuit::Closed { failures: 0 };
                self.closed_at = hold.closed_at;
            }
            _ => {}
        }
        was_open != self.is_open()
    }

    /// New settings after a reload; the current state is kept.
    pub fn set_settings(&mut self, settings: CircuitBreaker) {
        self.settings = settings;
    }

    /// Failures counted while closed (tests wait for the gate to hear of an
    /// outcome, which it does just after the store records it).
    #[cfg(test)]
    pub fn failures(&self) -> u32 {
        match self.circuit {
            Circuit::Closed { failures } => failures,
            _ => 0,
        }
    }

    pub fn is_open(&self) -> bool {
        !matches!(self.circuit, Circuit::Closed { .. })
    }

    pub fn admit(&mut self, now: i64) -> Admission {
        if let Some(until) = self.paused_until {
            if now < until {
                return Admission::WaitUntil(until);
            }
            self.paused_until = None;
        }
        match self.circuit {
            Circuit::Closed { .. } => Admission::Open,
            Circuit::Open { until } if now < until => Admission::WaitUntil(until),
            Circuit::Open { .. } | Circuit::HalfOpen { probe_out: false } => {
                self.circuit = Circuit::HalfOpen { probe_out: true };
                Admission::Probe
            }
            Circuit::HalfOpen { probe_out: true } => Admission::WaitForProbe,
        }
    }

    /// A probe was admitted but nothing was due to send: no probe is out.
    pub fn probe_unused(&mut self) {
        if self.circuit == (Circuit::HalfOpen { probe_out: true }) {
            self.circuit = Circuit::HalfOpen { probe_out: false };
        }
    }

    /// Take one attempt's outcome into account. Returns true when the
    /// circuit changed between closed and open (for logs and the gauge).
    pub fn record(&mut self, signal: Signal, now: i64) -> bool {
        let was_open = self.is_open();
        match signal {
            Signal::Healthy => {
                if was_open {
                    self.closed_at = now;
                }
                self.circuit = Circuit::Closed { failures: 0 };
            }
            Signal::RateLimited(pause) => {
                if let Some(until) = pause {
                    self.paused_until = Some(self.paused_until.map_or(until, |p| p.max(until)));
                }
                // A probe answered 429: the target is up; let the pause rule.
                if matches!(self.circuit, Circuit::HalfOpen { .. }) {
                    self.closed_at = now;
                    self.circuit = Circuit::Closed { failures: 0 };
                }
            }
            Signal::Failing => {
                self.circuit = match self.circuit {
                    Circuit::Closed { failures } if failures + 1 < self.settings.failures => {
                        Circuit::Closed {
                            failures: failures + 1,
                        }
                    }
                    // Attempts already in flight when it opened: keep the first cooldown.
                    Circuit::Open { until } => Circuit::Open { until },
                    _ => {
                        self.opened_at = now;
                        Circuit::Open {
                            until: now.saturating_add(
                                i64::try_from(self.settings.cooldown.as_millis())
                                    .unwrap_or(i64::MAX),
                            ),
                        }
                    }
                };
            }
        }
        was_open != self.is_open()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn gate() -> Gate {
        Gate::new(CircuitBreaker {
            failures: 3,
            cooldown: Duration::from_secs(30),
        })
    }

    #[test]
    fn opens_after_consecutive_failures_then_probes_once() {
        let mut g = gate();
        assert_eq!(g.admit(0), Admission::Open);
        assert!(!g.record(Signal::Failing, 0));
        assert!(!g.record(Signal::Failing, 0));
        assert!(g.record(Signal::Failing, 1_000), "third failure opens");
        assert_eq!(g.admit(2_000), Admission::WaitUntil(31_000));
        assert_eq!(g.admit(31_000), Admission::Probe);
        assert_eq!(
            g.admit(31_001),
            Admission::WaitForProbe,
            "one probe at a time"
        );
        assert!(
            !g.record(Signal::Failing, 32_000),
            "probe failed: still open"
        );
        assert_eq!(g.admit(33_000), Admission::WaitUntil(62_000));
        assert_eq!(g.admit(62_000), Admission::Probe);
        assert!(g.record(Signal::Healthy, 62_500), "probe succeeded: closed");
        assert_eq!(g.admit(62_600), Admission::Open);
    }

    #[test]
    fn a_healthy_answer_resets_the_count_and_429_does_not_count() {
        let mut g = gate();
        g.record(Signal::Failing, 0);
        g.record(Signal::Failing, 0);
        g.record(Signal::Healthy, 0);
        g.record(Signal::Failing, 0);
        g.record(Signal::RateLimited(None), 0);
        g.record(Signal::Failing, 0);
        assert_eq!(g.admit(0), Admission::Open);
    }

    #[test]
    fn retry_after_pauses_the_whole_target() {
        let mut g = gate();
        g.record(Signal::RateLimited(Some(10_000)), 0);
        assert_eq!(g.admit(5_000), Admission::WaitUntil(10_000));
        assert_eq!(g.admit(10_000), Admission::Open);
    }

    #[test]
    fn another_replicas_opening_closing_and_pause_are_adopted() {
        let mut g = gate();
        let opened = SharedHold {
            open_until: Some(30_000),
            opened_at: 1_000,
            ..SharedHold::default()
        };
        assert!(g.adopt(opened, 2_000), "opened by another replica");
        assert_eq!(g.admit(2_000), Admission::WaitUntil(30_000));
        assert!(
            !g.adopt(opened, 3_000),
            "the same news twice changes nothing"
        );
        let closed = SharedHold {
            closed_at: 20_000,
            ..opened
        };
        assert!(g.adopt(closed, 20_500), "its probe closed it");
        assert_eq!(g.admit(20_500), Admission::Open);
        assert!(
            !g.adopt(opened, 21_000),
            "an opening older than the closing is stale"
        );
        let paused = SharedHold {
            paused_until: Some(25_000),
            ..closed
        };
        g.adopt(paused, 21_000);
        assert_eq!(g.admit(21_000), Admission::WaitUntil(25_000));
    }

    #[test]
    fn a_probe_out_is_not_overruled_and_own_news_is_published() {
        let mut g = gate();
        for _ in 0..3 {
            g.record(Signal::Failing, 1_000);
        }
        assert_eq!(g.open_window(), Some((31_000, 1_000)));
        assert_eq!(g.admit(31_000), Admission::Probe);
        let newer = SharedHold {
            open_until: Some(90_000),
            opened_at: 31_000,
            ..SharedHold::default()
        };
        assert!(!g.adopt(newer, 31_001), "our probe decides");
        assert!(g.record(Signal::Healthy, 31_500));
        assert_eq!(g.closed_at(), 31_500);
        assert_eq!(g.open_window(), None);
    }

    #[test]
    fn an_unused_probe_can_be_taken_again() {
        let mut g = gate();
        for _ in 0..3 {
            g.record(Signal::Failing, 0);
        }
        assert_eq!(g.admit(30_000), Admission::Probe);
        g.probe_unused();
        assert_eq!(g.admit(30_001), Admission::Probe);
    }
}
