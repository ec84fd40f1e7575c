//! The durable enqueue alone, without HTTP: 1 KB events into a real SQLite
//! queue file (WAL, `synchronous=FULL`, group commit) from 1, 16 and 64
//! concurrent callers. Each answer means the event is on disk, so this is the
//! store's share of the ingest path and the ceiling group commit gives it.
//! `cargo bench --bench enqueue`; figures are recorded in docs/performance.md.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hookgate::queue::DeliveryQueue;
use hookgate::queue::sqlite::SqliteStore;
use hookgate::queue::{Enqueued, NewDelivery, NewEvent};
use uuid::Uuid;

const BODY: &[u8] = include_bytes!("event-1k.json");

fn new_event(body: &Bytes) -> NewEvent {
    NewEvent {
        id: Uuid::now_v7(),
        source: "bench".to_owned(),
        received_at_ms: 1,
        body: body.clone(),
        deliveries: vec![NewDelivery {
            id: Uuid::now_v7(),
            target: "sink".to_owned(),
            route: "bench".to_owned(),
            order: None,
        }],
        dedupe: None,
        limits: None,
    }
}

/// `iters` enqueues shared among `senders` tasks, each waiting for its answer
/// before sending the next (as a closed-loop HTTP client does).
async fn run(store: Arc<SqliteStore>, senders: u64, iters: u64) -> Duration {
    let body = Bytes::from_static(BODY);
    let start = Instant::now();
    let tasks: Vec<_> = (0..senders)
        .map(|i| {
            let (store, body) = (store.clone(), body.clone());
            let n = iters / senders + u64::from(i < iters % senders);
            tokio::spawn(async move {
                for _ in 0..n {
                    match store.enqueue(new_event(&body)).await {
                        Ok(Enqueued::Stored) => {}
                        other => panic!("enqueue: {other:?}"),
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        if let Err(e) = t.await {
            panic!("sender: {e}");
        }
    }
    start.elapsed()
}

fn bench(c: &mut Criterion) {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => panic!("runtime: {e}"),
    };
    let mut group = c.benchmark_group("durable_enqueue_1k");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    for senders in [1u64, 16, 64] {
        let dir = match tempfile::tempdir() {
            Ok(d) => d,
            Err(e) => panic!("tempdir: {e}"),
        };
        let store = match SqliteStore::open(&dir.path().join("queue.db")) {
            Ok(s) => Arc::new(s),
            Err(e) => panic!("open: {e}"),
        };
        group.bench_with_input(BenchmarkId::from_parameter(senders), &senders, |b, &n| {
            b.iter_custom(|iters| runtime.block_on(run(store.clone(), n, iters)))
        });
        let stats = store.stats();
        println!(
            "durable_enqueue_1k/{senders}: {:.1} events per fsync",
            stats.events_per_sync()
        );
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
