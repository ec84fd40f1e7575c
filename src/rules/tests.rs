//! The indexed plan against the reference in-order scan, on random rule sets
//! and events (proptest), plus the evaluation rules on small fixed configs.

use std::path::Path;

use proptest::prelude::*;
use serde_json::{Value, json};

use super::{RoutePlan, route_linear};
use crate::config::{Config, LoadOptions, Schema, load_bytes};
use crate::event::{FieldSet, decode};

fn load(yaml: &str) -> Config {
    let none = |_: &str| None;
    let options = LoadOptions {
        allow_missing_env: false,
        lookup: &none,
    };
    match load_bytes(Path::new("rules.yaml"), yaml.as_bytes(), &options) {
        Ok(l) => l.config,
        Err(e) => panic!("{e}\n---\n{yaml}"),
    }
}

const HEADER: &str = "version: 1
sources: [{ name: s, path: /in, schema: json, verify: { scheme: none } }]
targets:
  t0: { kind: log }
  t1: { kind: log }
  t2: { kind: log, enabled: false }
";

/// Keys a route may test, and the values routes and events draw from.
const KEYS: &[&str] = &[
    "event",
    "type",
    "status",
    "companionId",
    "data.n",
    "data.tags",
];
const VALUES: &[&str] = &["a", "b", "c", "1", "1.0", "null", "true", "[a, b]"];

fn yaml_value() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(VALUES).prop_map(str::to_owned),
        prop::collection::vec(prop::sample::select(&["a", "b", "c", "2"][..]), 0..3)
            .prop_map(|v| format!("[{}]", v.join(", "))),
        prop::sample::select(&["a", "b"][..]).prop_map(|v| format!("{{ not: {v} }}")),
        prop::sample::select(&["a", "b"][..]).prop_map(|v| format!("{{ prefix: {v} }}")),
        Just("{ exists: true }".to_owned()),
        Just("{ exists: false }".to_owned()),
        Just("{ gt: 0 }".to_owned()),
        Just("{ contains: a }".to_owned()),
    ]
}

fn match_map() -> impl Strategy<Value = String> {
    prop::collection::btree_map(prop::sample::select(KEYS), yaml_value(), 0..3).prop_map(|m| {
        let fields: Vec<String> = m.into_iter().map(|(k, v)| format!("{k}: {v}")).collect();
        format!("{{ {} }}", fields.join(", "))
    })
}

fn route(i: usize) -> impl Strategy<Value = String> {
    let condition = prop_oneof![
        3 => match_map().prop_map(|m| format!("match: {m}")),
        1 => prop::collection::vec(match_map(), 0..3).prop_map(|ms| format!("any: [{}]", ms.join(", "))),
    ];
    (
        condition,
        prop::collection::vec(prop::sample::select(&["t0", "t1", "t2"][..]), 1..3),
        prop::bool::weighted(0.2),
    )
        .prop_map(move |(cond, targets, stop)| {
            format!(
                "  - {{ name: r{i}, {cond}, targets: [{}], stop: {stop} }}\n",
                targets.join(", ")
            )
        })
}

fn config_yaml() -> impl Strategy<Value = String> {
    (0usize..10)
        .prop_flat_map(|n| {
            (
                (0..n).map(route).collect::<Vec<_>>(),
                prop::option::of(prop::sample::select(&["[t0]", "[t1, t2]"][..])),
            )
        })
        .prop_map(|(routes, unmatched)| {
            let mut y = HEADER.to_owned();
            y.push_str("routes:\n");
            if routes.is_empty() {
                y.push_str("  []\n");
            }
            for r in routes {
                y.push_str(&r);
            }
            if let Some(u) = unmatched {
                y.push_str(&format!("unmatched: {u}\n"));
            }
            y
        })
}

fn json_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        prop::sample::select(&["a", "b", "c", "1", "ab"][..]).prop_map(|s| json!(s)),
        Just(json!(1)),
        Just(json!(1.0)),
        Just(json!(null)),
        Just(json!(true)),
        Just(json!(["a", "b"])),
        Just(json!(["c"])),
    ]
}

fn event() -> impl Strategy<Value = Value> {
    prop::collection::vec(prop::option::of(json_value()), 6).prop_map(|v| {
        let mut data = serde_json::Map::new();
        let mut root = serde_json::Map::new();
        for (key, value) in KEYS.iter().zip(v) {
            let Some(value) = value else { continue };
            match *key {
                "status" => drop(data.insert("status".into(), value)),
                "data.n" => drop(data.insert("n".into(), value)),
                "data.tags" => drop(data.insert("tags".into(), value)),
                k => drop(root.insert(k.into(), value)),
            }
        }
        root.insert("data".into(), Value::Object(data));
        Value::Object(root)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn indexed_plan_agrees_with_an_in_order_scan(yaml in config_yaml(), events in prop::collection::vec(event(), 8)) {
        let config = load(&yaml);
        let plan = RoutePlan::compile(&config);
        for e in &events {
            prop_assert_eq!(plan.route(&config, e), route_linear(&config, e), "event {}", e);
        }
    }

    /// Ingress parses only the fields the routes read; routing on that must
    /// decide exactly what routing on the whole event decides.
    #[test]
    fn routing_on_the_fields_it_reads_decides_as_on_the_whole_event(yaml in config_yaml(), events in prop::collection::vec(event(), 8)) {
        let config = load(&yaml);
        let plan = RoutePlan::compile(&config);
        let fields = FieldSet::for_routes(&config.routes);
        for e in &events {
            let body = e.to_string();
            let pruned = decode(body.as_bytes(), Schema::Json, false, &fields).unwrap().value;
            prop_assert_eq!(plan.route(&config, &pruned), route_linear(&config, e), "event {}", e);
        }
    }
}

fn names(config: &Config, decision: &super::RouteDecision) -> (Vec<String>, Vec<(String, String)>) {
    let routes = decision
        .matched
        .iter()
        .map(|&r| config.routes[r].name.clone())
        .collect();
    let deliveries = decision
        .deliveries
        .iter()
        .map(|d| {
            (
                config.target(d.target).name.clone(),
                d.route
                    .map_or("unmatched".to_owned(), |r| config.routes[r].name.clone()),
            )
        })
        .collect();
    (routes, deliveries)
}

#[test]
fn fan_out_stop_unmatched_and_disabled_targets() {
    let config = load(&format!(
        "{HEADER}routes:
  - {{ name: ended, match: {{ status: ended }}, targets: [t0, t2] }}
  - {{ name: voice, match: {{ type: VOICE }}, targets: [t1, t0] }}
  - {{ name: calls, any: [{{ event: function-call }}, {{ type: SMS }}], targets: [t1], stop: true }}
  - {{ name: after-stop, match: {{}}, targets: [t0] }}
unmatched: [t1]
"
    ));
    let plan = RoutePlan::compile(&config);
    let cases = [
        (
            json!({"type": "VOICE", "data": {"status": "ended"}}),
            vec!["ended", "voice", "after-stop"],
            vec![("t0", "ended"), ("t1", "voice")],
        ),
        (
            json!({"event": "function-call", "type": "VOICE", "data": {}}),
            vec!["voice", "calls"],
            vec![("t1", "voice"), ("t0", "voice")],
        ),
        (
            json!({"event": "x", "type": "SMS", "data": {}}),
            vec!["calls"],
            vec![("t1", "calls")],
        ),
    ];
    for (event, routes, deliveries) in cases {
        let d = plan.route(&config, &event);
        let (got_routes, got_deliveries) = names(&config, &d);
        assert_eq!(got_routes, routes, "{event}");
        let want: Vec<(String, String)> = deliveries
            .into_iter()
            .map(|(t, r)| (t.to_owned(), r.to_owned()))
            .collect();
        assert_eq!(got_deliveries, want, "{event}");
    }
    let d = plan.route(&config, &json!({"event": "x", "type": "SMS", "data": {}}));
    assert_eq!(d.stopped_by, Some(2));

    // Nothing matched: the unmatched targets, attributed to `unmatched`.
    let only_after_stop = load(&format!(
        "{HEADER}routes:\n  - {{ name: r, match: {{ event: nope }}, targets: [t0] }}\nunmatched: [t1, t2]\n"
    ));
    let d = RoutePlan::compile(&only_after_stop).route(&only_after_stop, &json!({"event": "x"}));
    assert_eq!(
        names(&only_after_stop, &d),
        (vec![], vec![("t1".to_owned(), "unmatched".to_owned())])
    );
}
