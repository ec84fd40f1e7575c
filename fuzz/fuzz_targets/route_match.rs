//! Fuzz target: the matcher. Arbitrary event bytes, decoded as ingress
//! decodes them, routed by fixed route plans.
//!
//! The first input byte picks the plan (fuzz/fixtures/routes.yaml, which
//! uses every operator and every anchor, or rules.example.yaml); the rest
//! is the request body. Properties:
//! - the indexed plan (`RoutePlan::route`) agrees with the in-order scan
//!   (`route_linear`) on every event: the pruned value ingress routes, the
//!   full parse of the body, and any JSON value at all (arrays, strings);
//! - routing the pruned value agrees with routing the full parse (pruning
//!   keeps everything a route reads);
//! - the decision is well formed: matched routes ascending, a stopping route
//!   is the last matched, one delivery per target, none to a disabled
//!   target, `unmatched` targets only when nothing matched.

#![no_main]

use std::sync::LazyLock;

use hookgate::config::Config;
use hookgate::event::{FieldSet, decode};
use hookgate::rules::{RouteDecision, RoutePlan, route_linear};
use hookgate_fuzz::{fixture_config, full_parse, full_parse_unbounded};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

struct Plan {
    config: Config,
    plan: RoutePlan,
    fields: FieldSet,
}

static PLANS: LazyLock<Vec<Plan>> = LazyLock::new(|| {
    [
        ("routes.yaml", include_str!("../fixtures/routes.yaml")),
        (
            "rules.example.yaml",
            include_str!("../../rules.example.yaml"),
        ),
    ]
    .into_iter()
    .map(|(name, yaml)| {
        let config = fixture_config(name, yaml);
        let plan = RoutePlan::compile(&config);
        let fields = FieldSet::for_routes(&config.routes);
        Plan {
            config,
            plan,
            fields,
        }
    })
    .collect()
});

fn route_both(p: &Plan, event: &Value) -> RouteDecision {
    let linear = route_linear(&p.config, event);
    let indexed = p.plan.route(&p.config, event);
    assert_eq!(indexed, linear, "index and linear scan differ on {event}");
    well_formed(&p.config, &linear);
    linear
}

fn well_formed(config: &Config, d: &RouteDecision) {
    assert!(d.matched.windows(2).all(|w| w[0] < w[1]), "{d:?}");
    if let Some(stop) = d.stopped_by {
        assert_eq!(d.matched.last(), Some(&stop), "{d:?}");
        assert!(config.routes[stop].stop);
    }
    for (i, del) in d.deliveries.iter().enumerate() {
        assert!(config.target(del.target).enabled, "{d:?}");
        assert!(
            d.deliveries[..i].iter().all(|o| o.target != del.target),
            "{d:?}"
        );
        match del.route {
            Some(r) => assert!(d.matched.contains(&r), "{d:?}"),
            None => assert!(d.matched.is_empty(), "{d:?}"),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let p = &PLANS[usize::from(pick) % PLANS.len()];

    // Any JSON value at all: the index must agree even on non-objects.
    if let Ok(any) = full_parse(body) {
        route_both(p, &any);
    }

    // What ingress routes: the pruned value of an accepted body.
    let source = &p.config.sources[0];
    let Ok(decoded) = decode(body, source.schema, false, &p.fields) else {
        return;
    };
    let pruned = route_both(p, &decoded.value);
    let full = match full_parse_unbounded(body) {
        Ok(v) => v,
        Err(e) => panic!("decode accepted a body the full parse refuses: {e}"),
    };
    let whole = route_both(p, &full);
    assert_eq!(pruned, whole, "the pruned event routes differently");
});
