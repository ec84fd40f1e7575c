//! Keeping the store's ordering of a target in line with its config.
//!
//! The store keeps an ordered target's lanes (DESIGN.md section 6) and
//! remembers which payload path it keys them by. The config can change that
//! path at any reload, or while hookgate was stopped; the target's worker
//! tells the store before each claim ([`OrderingSync::ensure`]), so no
//! delivery of the target is claimed under lanes the config no longer asks
//! for. Telling it what it already has costs a comparison here, and nothing
//! in the store.

use super::WorkerContext;

/// What this worker last told the store about its target's ordering.
#[derive(Debug, Default)]
pub(super) struct OrderingSync {
    /// `None`: nothing yet (a new or restarted worker asks once).
    told: Option<Option<Vec<String>>>,
}

impl OrderingSync {
    /// Bring the store in line with the target's current `ordering`.
    /// `false` when the store could not be told: the caller must not claim
    /// (it backs off and asks again).
    pub(super) async fn ensure(&mut self, ctx: &WorkerContext, target: &str) -> bool {
        let wanted: Option<Vec<String>> = {
            let snapshot = ctx.live.load();
            let Some(config) = snapshot.config.target_by_name(target) else {
                return true; // removed: the worker is stopping
            };
            let wanted = config.ordering.as_ref().map(|o| o.path.as_slice());
            // The common case, before every claim: nothing changed.
            if self.told.as_ref().is_some_and(|t| t.as_deref() == wanted) {
                return true;
            }
            wanted.map(<[String]>::to_vec)
        };
        match ctx.store.set_ordering(target, wanted.clone()).await {
            Ok(change) => {
                if !change.unchanged {
                    let key = wanted.as_ref().map(|p| p.join("."));
                    tracing::info!(
                        %target,
                        key = key.as_deref().unwrap_or("(none)"),
                        released = change.released,
                        held = change.held,
                        lanes = change.lanes,
                        "the target's ordering changed: deliveries not yet attempted follow it"
                    );
                }
                self.told = Some(wanted);
                true
            }
            Err(e) => {
                tracing::error!(%target, error = %e, "cannot apply the target's ordering to the queue; not claiming until it can");
                false
            }
        }
    }
}
