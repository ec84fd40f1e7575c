//! Routing: which targets get an event.
//!
//! A [`RoutePlan`] is compiled from a [`Config`]'s routes at load;
//! [`RoutePlan::route`] evaluates one parsed event: routes in file order,
//! every matching route adds its (enabled) targets, a target named by several
//! matching routes gets one delivery attributed to the first of them, a
//! matching route with `stop: true` ends evaluation, and when nothing matched
//! the `unmatched` targets get it.
//!
//! The plan consults an [`index`] on `event`, `status` and `type`, so the cost
//! of routing one event does not grow with the number of routes;
//! [`route_linear`] is the plain in-order scan it must always agree with.
//!
//! Pure: no I/O, no async.

mod index;
mod lane_key;
mod matcher;

use serde_json::Value;

use crate::config::{Config, TargetId};
use index::RouteIndex;

pub use lane_key::{MAX_KEY_TEXT, NO_KEY, lane_key};
pub use matcher::{condition_holds, field_holds, first_failing, json_eq, lookup};

/// The route name recorded for deliveries made to `unmatched` targets.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// Routes compiled for matching. Holds indexes into the config it was built from.
#[derive(Debug, Default)]
pub struct RoutePlan {
    index: RouteIndex,
}

/// One delivery the rules chose: a target and the route that named it first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlannedDelivery {
    pub target: TargetId,
    /// Index into `Config::routes`, or `None` for the `unmatched` fallback.
    pub route: Option<usize>,
}

/// What the rules decided for one event.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RouteDecision {
    /// Indexes of the matching routes, in file order.
    pub matched: Vec<usize>,
    /// The route whose `stop: true` ended evaluation, if any.
    pub stopped_by: Option<usize>,
    /// One entry per target, in the order targets were first named.
    pub deliveries: Vec<PlannedDelivery>,
}

impl RoutePlan {
    pub fn compile(config: &Config) -> RoutePlan {
        RoutePlan {
            index: RouteIndex::build(&config.routes),
        }
    }

    /// Decide the deliveries for `event` under `config` (the config this plan
    /// was compiled from).
    pub fn route(&self, config: &Config, event: &Value) -> RouteDecision {
        let mut candidates = Vec::new();
        self.index.candidates(event, &mut candidates);
        decide(config, event, candidates.iter().map(|&i| i as usize))
    }
}

/// The reference semantics: every route, in file order. [`RoutePlan::route`]
/// gives the same answer faster.
pub fn route_linear(config: &Config, event: &Value) -> RouteDecision {
    decide(config, event, 0..config.routes.len())
}

/// Evaluate `routes` (ascending indexes) in order.
fn decide(config: &Config, event: &Value, routes: impl Iterator<Item = usize>) -> RouteDecision {
    let mut decision = RouteDecision::default();
    for index in routes {
        let Some(route) = config.routes.get(index) else {
            continue;
        };
        if !condition_holds(&route.condition, event) {
            continue;
        }
        decision.matched.push(index);
        for &target in &route.targets {
            add_delivery(&mut decision, config, target, Some(index));
        }
        if route.stop {
            decision.stopped_by = Some(index);
            break;
        }
    }
    if decision.matched.is_empty() {
        for &target in &config.unmatched {
            add_delivery(&mut decision, config, target, None);
        }
    }
    decision
}

fn add_delivery(
    decision: &mut RouteDecision,
    config: &Config,
    target: TargetId,
    route: Option<usize>,
) {
    if !config.target(target).enabled {
        return;
    }
    if decision.deliveries.iter().any(|d| d.target == target) {
        return;
    }
    decision.deliveries.push(PlannedDelivery { target, route });
}

#[cfg(test)]
mod tests;
