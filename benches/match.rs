//! Routing one parsed event against 10 to 10 000 routes.
//!
//! `route_one_event`: routes pin `event` (distinct values), one in twenty
//! pins `status` instead, so the candidate set stays small while the route
//! count grows: the index's case. `unindexed`: one route in fifty tests only
//! `companionId`, which no index covers; those are evaluated for every event,
//! so that cost grows with their number (documented, not hidden).
//! JSON parsing is excluded: the event is parsed once. `cargo bench --bench
//! match`; figures are recorded in docs/performance.md.

use std::hint::black_box;
use std::path::Path;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use hookgate::config::{Config, LoadOptions, load_bytes};
use hookgate::rules::RoutePlan;

fn config(routes: usize, unindexed_every: usize) -> Config {
    let mut yaml = String::from(
        "version: 1
sources: [{ name: s, path: /in, verify: { scheme: none } }]
targets:
  crm: { kind: log }
  ops: { kind: log }
routes:
",
    );
    for i in 0..routes {
        let condition = if unindexed_every > 0 && i % unindexed_every == unindexed_every - 1 {
            format!("{{ companionId: {{ prefix: cmp_{i}_ }} }}")
        } else if i % 20 == 19 {
            format!("{{ status: st-{i}, type: [VOICE, SMS] }}")
        } else {
            format!("{{ event: ev-{i}, type: [VOICE, SMS], status: ended }}")
        };
        let target = if i % 2 == 0 { "crm" } else { "ops" };
        yaml.push_str(&format!(
            "  - {{ name: r{i}, match: {condition}, targets: [{target}] }}\n"
        ));
    }
    let none = |_: &str| None;
    let options = LoadOptions {
        allow_missing_env: false,
        lookup: &none,
    };
    match load_bytes(Path::new("bench.yaml"), yaml.as_bytes(), &options) {
        Ok(loaded) => loaded.config,
        Err(e) => panic!("{e}"),
    }
}

fn bench(c: &mut Criterion) {
    // Matches route r4 (event ev-4) and nothing else.
    let event: serde_json::Value = serde_json::json!({
        "event": "ev-4",
        "type": "VOICE",
        "companionId": "cmp_42",
        "data": {
            "messages": [{"role": "assistant", "content": "bye"}],
            "status": "ended",
            "startedAt": "2026-11-28T10:00:00Z",
            "endedReason": "customer-ended-call"
        }
    });
    for (name, unindexed_every) in [("route_one_event", 0), ("unindexed", 50)] {
        let mut group = c.benchmark_group(name);
        for routes in [10, 100, 1_000, 10_000] {
            let config = config(routes, unindexed_every);
            let plan = RoutePlan::compile(&config);
            let decision = plan.route(&config, &event);
            assert_eq!(
                decision.matched,
                vec![4],
                "the bench event must match exactly r4"
            );
            group.bench_with_input(BenchmarkId::from_parameter(routes), &routes, |b, _| {
                b.iter(|| plan.route(black_box(&config), black_box(&event)))
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
