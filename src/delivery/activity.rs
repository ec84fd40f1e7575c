//! What each target did lately: attempts delivered and failed, rate-limit
//! waits, and whether its circuit is open, for the admin overview
//! (`GET /admin/targets`) and the console built on it.
//!
//! The counters in `/metrics` only grow; a person looking at a console wants
//! "in the last five minutes". Each target keeps [`SLOTS`] ten-second slots
//! of counts, reused in a ring as time moves: bounded memory, one uncontended
//! lock per attempt, and a window that slides by ten seconds. The counts are
//! this process's: with replicas on Redis each replica reports its own share
//! (the queue depths the overview shows beside them are the store's, shared).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use crate::clock::Clock;

/// Width of one slot.
const SLOT_MS: i64 = 10_000;
/// Slots in the window: 30 × 10 s = five minutes.
const SLOTS: usize = 30;
/// The window [`TargetActivity::recent`] sums.
pub const WINDOW_SECONDS: u64 = (SLOT_MS as u64 * SLOTS as u64) / 1000;

/// What happened, as the overview counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// An attempt was accepted by the target.
    Delivered,
    /// An attempt failed (it will be retried, or the delivery is dead).
    Failed,
    /// The worker had to wait for the target's rate limit.
    RateLimited,
}

/// Counts over the last [`WINDOW_SECONDS`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recent {
    pub delivered: u64,
    pub failed: u64,
    pub rate_limited: u64,
}

/// Every target's activity in this process.
pub struct Activity {
    clock: Arc<dyn Clock>,
    targets: RwLock<HashMap<String, Arc<TargetActivity>>>,
}

impl Activity {
    pub fn new(clock: Arc<dyn Clock>) -> Activity {
        Activity {
            clock,
            targets: RwLock::new(HashMap::new()),
        }
    }

    /// The activity of `target`, created at first use. A runtime restarted
    /// by a reload takes the same one, so its recent counts carry over.
    pub fn target(&self, target: &str) -> Arc<TargetActivity> {
        if let Some(found) = self.read().get(target) {
            return found.clone();
        }
        let mut targets = self.targets.write().unwrap_or_else(PoisonError::into_inner);
        targets
            .entry(target.to_owned())
            .or_insert_with(|| {
                Arc::new(TargetActivity {
                    clock: self.clock.clone(),
                    circuit_open: AtomicBool::new(false),
                    slots: Mutex::new([Slot::default(); SLOTS]),
                })
            })
            .clone()
    }

    /// What `target` did lately; `None` when it never ran in this process.
    pub fn get(&self, target: &str) -> Option<Arc<TargetActivity>> {
        self.read().get(target).cloned()
    }

    /// Forget every target not in `keep` (those a reload removed).
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        let mut targets = self.targets.write().unwrap_or_else(PoisonError::into_inner);
        targets.retain(|name, _| keep(name));
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<TargetActivity>>> {
        self.targets.read().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One slot of the ring: which ten seconds it holds, and their counts.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    /// `now_ms / SLOT_MS` of the counts held.
    epoch: i64,
    counts: Recent,
}

/// One target's recent counts and circuit state.
pub struct TargetActivity {
    clock: Arc<dyn Clock>,
    circuit_open: AtomicBool,
    slots: Mutex<[Slot; SLOTS]>,
}

impl TargetActivity {
    /// Count one outcome now.
    pub fn count(&self, outcome: Outcome) {
        let epoch = self.clock.now_ms().div_euclid(SLOT_MS);
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = &mut slots[epoch.rem_euclid(SLOTS as i64) as usize];
        if slot.epoch != epoch {
            *slot = Slot {
                epoch,
                counts: Recent::default(),
            };
        }
        match outcome {
            Outcome::Delivered => slot.counts.delivered += 1,
            Outcome::Failed => slot.counts.failed += 1,
            Outcome::RateLimited => slot.counts.rate_limited += 1,
        }
    }

    /// The counts of the last [`WINDOW_SECONDS`] (the current slot included).
    pub fn recent(&self) -> Recent {
        let now = self.clock.now_ms().div_euclid(SLOT_MS);
        let slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        slots
            .iter()
            .filter(|s| s.epoch <= now && now - s.epoch < SLOTS as i64)
            .fold(Recent::default(), |sum, s| Recent {
                delivered: sum.delivered + s.counts.delivered,
                failed: sum.failed + s.counts.failed,
                rate_limited: sum.rate_limited + s.counts.rate_limited,
            })
    }

    pub fn set_circuit_open(&self, open: bool) {
        self.circuit_open.store(open, Ordering::Relaxed);
    }

    /// The circuit as this process's breaker last saw it (open or half-open).
    pub fn circuit_open(&self) -> bool {
        self.circuit_open.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn counts_fall_out_of_the_window_as_time_moves() {
        let clock = Arc::new(ManualClock::new(1_000_000));
        let activity = Activity::new(clock.clone());
        let crm = activity.target("crm");
        crm.count(Outcome::Delivered);
        crm.count(Outcome::Delivered);
        crm.count(Outcome::Failed);
        clock.advance(std::time::Duration::from_secs(150));
        crm.count(Outcome::RateLimited);
        assert_eq!(
            crm.recent(),
            Recent {
                delivered: 2,
                failed: 1,
                rate_limited: 1
            }
        );
        // Five minutes after the first counts they are gone; the later one stays.
        clock.advance(std::time::Duration::from_secs(160));
        assert_eq!(
            crm.recent(),
            Recent {
                delivered: 0,
                failed: 0,
                rate_limited: 1
            }
        );
        // A slot reused a whole ring later starts from zero.
        clock.advance(std::time::Duration::from_secs(300));
        crm.count(Outcome::Failed);
        assert_eq!(crm.recent().failed, 1);
        assert_eq!(crm.recent().rate_limited, 0);
    }

    #[test]
    fn a_target_keeps_its_activity_until_removed() {
        let activity = Activity::new(Arc::new(ManualClock::new(0)));
        activity.target("crm").count(Outcome::Delivered);
        activity.target("crm").set_circuit_open(true);
        let again = activity.get("crm").expect("kept");
        assert_eq!(again.recent().delivered, 1);
        assert!(again.circuit_open());
        activity.retain(|name| name != "crm");
        assert!(activity.get("crm").is_none());
    }
}
