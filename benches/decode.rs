//! Decoding one verified 1 KB OutRival event (the shared load harness's
//! payload, copied into benches/): the whole body built into a `serde_json::Value`, against only the
//! fields the routes and the schema read (what ingress does). `cargo bench
//! --bench decode`; figures are recorded in docs/performance.md.

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use hookgate::config::{LoadOptions, Schema, load_bytes};
use hookgate::event::{FieldSet, decode};

const BODY: &[u8] = include_bytes!("event-1k.json");

const CONFIG: &str = "version: 1
sources: [{ name: s, path: /in, verify: { scheme: none } }]
targets: { crm: { kind: log }, ops: { kind: log } }
routes:
  - { name: ended, match: { event: status-changed, type: [VOICE, SMS], status: ended }, targets: [crm] }
  - { name: errors, match: { data.endedReason: { in: [error, pipeline-error] } }, targets: [ops] }
";

fn bench(c: &mut Criterion) {
    let none = |_: &str| None;
    let options = LoadOptions {
        allow_missing_env: false,
        lookup: &none,
    };
    let config = match load_bytes(Path::new("bench.yaml"), CONFIG.as_bytes(), &options) {
        Ok(loaded) => loaded.config,
        Err(e) => panic!("{e}"),
    };
    let routed = FieldSet::for_routes(&config.routes);
    let everything = FieldSet::everything();
    let mut group = c.benchmark_group("decode_1k_event");
    group.bench_function("whole_value", |b| {
        b.iter(|| decode(black_box(BODY), Schema::Outrival, false, &everything))
    });
    group.bench_function("fields_read", |b| {
        b.iter(|| decode(black_box(BODY), Schema::Outrival, false, &routed))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
