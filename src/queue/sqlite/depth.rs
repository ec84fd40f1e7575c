//! Deliveries per target and state (`hookgate_queue_depth{target,state}`),
//! kept by the writer: counted from the file once at open, then moved by what
//! each committed command reports it did ([`Moves`]), never by counting rows
//! again.
//!
//! Every write in `ops` and `admin_ops` that creates, deletes or changes the
//! state of a delivery records it in the command's `Moves`; the writer applies
//! them only when the batch commits (a command whose savepoint was rolled back
//! moved nothing), so the counts always describe durable rows.

use std::collections::HashMap;

use rusqlite::Connection;

use crate::queue::DeliveryState;

const STATES: [DeliveryState; 5] = DeliveryState::ALL;

fn slot(state: DeliveryState) -> usize {
    match state {
        DeliveryState::Pending => 0,
        DeliveryState::InFlight => 1,
        DeliveryState::Retrying => 2,
        DeliveryState::Delivered => 3,
        DeliveryState::Dead => 4,
    }
}

/// Deliveries that one command created (`from: None`), deleted (`to: None`)
/// or moved between states.
#[derive(Debug, Default)]
pub(super) struct Moves(Vec<Move>);

#[derive(Debug)]
struct Move {
    target: String,
    from: Option<DeliveryState>,
    to: Option<DeliveryState>,
    n: u64,
}

impl Moves {
    pub(super) fn record(
        &mut self,
        target: &str,
        from: Option<DeliveryState>,
        to: Option<DeliveryState>,
    ) {
        // Consecutive rows of one target and transition (a claim, a bulk
        // replay) fold into one entry.
        if let Some(last) = self.0.last_mut()
            && last.target == target
            && last.from == from
            && last.to == to
        {
            last.n += 1;
            return;
        }
        self.0.push(Move {
            target: target.to_owned(),
            from,
            to,
            n: 1,
        });
    }
}

impl Moves {
    /// Call `f(target, change)` for each move into or out of `pending`.
    pub(super) fn each_pending_change(&self, mut f: impl FnMut(&str, i64)) {
        for m in &self.0 {
            let n = i64::try_from(m.n).unwrap_or(i64::MAX);
            let change = match (m.from, m.to) {
                (Some(DeliveryState::Pending), Some(DeliveryState::Pending)) => 0,
                (Some(DeliveryState::Pending), _) => -n,
                (_, Some(DeliveryState::Pending)) => n,
                _ => 0,
            };
            if change != 0 {
                f(&m.target, change);
            }
        }
    }
}

/// The counts, per target, in the order of [`STATES`].
#[derive(Debug, Default)]
pub(super) struct Depth {
    counts: HashMap<String, [u64; 5]>,
}

impl Depth {
    /// Count the file's deliveries (once, at open: a walk of the state index).
    pub(super) fn count(conn: &Connection) -> rusqlite::Result<Depth> {
        let mut depth = Depth::default();
        let mut stmt =
            conn.prepare("SELECT target, state, COUNT(*) FROM deliveries GROUP BY target, state")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let target: String = row.get(0)?;
            let state: String = row.get(1)?;
            let n: i64 = row.get(2)?;
            // The CHECK constraint keeps `state` one of the five names.
            if let Ok(state) = state.parse::<DeliveryState>() {
                depth.counts.entry(target).or_default()[slot(state)] = n.max(0) as u64;
            }
        }
        Ok(depth)
    }

    /// Apply committed moves and publish the gauges they changed.
    pub(super) fn apply(&mut self, moves: &Moves) {
        for m in &moves.0 {
            if !self.counts.contains_key(&m.target) {
                // A new target gets every state's series, at 0 until moved
                // (a handed-off delivery never passes through `pending`).
                for state in STATES {
                    crate::metrics::queue_depth(&m.target, state.as_str(), 0);
                }
                self.counts.insert(m.target.clone(), [0; 5]);
            }
            let Some(counts) = self.counts.get_mut(&m.target) else {
                continue;
            };
            if let Some(from) = m.from {
                counts[slot(from)] = counts[slot(from)].saturating_sub(m.n);
            }
            if let Some(to) = m.to {
                counts[slot(to)] += m.n;
            }
            for state in m.from.into_iter().chain(m.to) {
                crate::metrics::queue_depth(&m.target, state.as_str(), counts[slot(state)]);
            }
        }
    }

    /// Every state's count of one target, in the order of [`STATES`].
    pub(super) fn of(&self, target: &str) -> [u64; 5] {
        self.counts.get(target).copied().unwrap_or_default()
    }

    /// The count of one target and state.
    pub(super) fn get(&self, target: &str, state: DeliveryState) -> u64 {
        self.counts.get(target).map_or(0, |c| c[slot(state)])
    }

    /// Publish every gauge (at open).
    pub(super) fn publish(&self) {
        for (target, counts) in &self.counts {
            for state in STATES {
                crate::metrics::queue_depth(target, state.as_str(), counts[slot(state)]);
            }
        }
    }

    /// Every non-zero count, sorted.
    #[cfg(test)]
    pub(super) fn nonzero(&self) -> Vec<(String, DeliveryState, u64)> {
        let mut out: Vec<_> = self
            .counts
            .iter()
            .flat_map(|(t, c)| {
                STATES
                    .iter()
                    .filter(|s| c[slot(**s)] > 0)
                    .map(move |s| (t.clone(), *s, c[slot(*s)]))
            })
            .collect();
        out.sort_by(|a, b| (&a.0, a.1.as_str()).cmp(&(&b.0, b.1.as_str())));
        out
    }
}
