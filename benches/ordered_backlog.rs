//! A backlog of BACKLOG deliveries (default 1 000 000) over KEYS keys
//! (default 100 000) behind one slow key, drained by the whole gateway, once
//! with the target ordered by `companionId` and once unordered (ORDERED=1|0,
//! default both). Measures how long every other key takes to drain and the
//! process's resident memory, to hold issue 16's claim that one slow key
//! does not slow the others and that lanes cost no memory per idle key.
//!
//! `cargo bench --bench ordered_backlog` (release build; several minutes and
//! about 0.5 GB of disk for the default size). `REBUILD=1` instead times
//! ordering (and un-ordering) such a backlog stored unordered. The backlog is written with
//! the store directly (200-byte events, 256 concurrent enqueues), then
//! hookgate runs in this process on that queue, delivering to a sink in this
//! process that answers 503 to the slow key (`cmp_slow`, every KEYS-th event)
//! and 200 to everything else. Figures are recorded in docs/performance.md.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hookgate::config::{self, LoadOptions};
use hookgate::queue::sqlite::SqliteStore;
use hookgate::queue::{DeliveryQueue, DeliveryRecords, Enqueued, NewDelivery, NewEvent, OrderKey};
use uuid::Uuid;
use warp::Filter;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Resident and peak resident memory of this process, in MiB.
fn memory() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .map_or(0, |kb| kb / 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn key_of(i: u64, keys: u64) -> String {
    if i.is_multiple_of(keys) {
        "cmp_slow".to_owned()
    } else {
        format!("cmp_{}", i % keys)
    }
}

/// Write `n` events over `keys` keys straight into the queue at `path`.
async fn fill(path: &std::path::Path, n: u64, keys: u64, ordered: bool) {
    let store = Arc::new(SqliteStore::open(path).expect("open the queue"));
    if ordered {
        store
            .set_ordering("sink", Some(vec!["companionId".to_owned()]))
            .await
            .expect("order the target");
    }
    let next = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..256)
        .map(|_| {
            let (store, next) = (store.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return;
                    }
                    let key = key_of(i, keys);
                    let body = format!(
                        r#"{{"event":"status-changed","type":"VOICE","companionId":"{key}","data":{{"messages":[],"status":"in-progress","startedAt":"2026-12-02T10:00:00Z","seq":{i}}}}}"#
                    );
                    let ev = NewEvent {
                        id: Uuid::now_v7(),
                        source: "bench".to_owned(),
                        received_at_ms: 1_700_000_000_000 + i as i64 / 1000,
                        body: Bytes::from(body),
                        deliveries: vec![NewDelivery {
                            id: Uuid::now_v7(),
                            target: "sink".to_owned(),
                            route: "bench".to_owned(),
                            order: ordered.then(|| OrderKey {
                                path: "companionId".to_owned(),
                                value: format!("\"{key}\""),
                            }),
                        }],
                        dedupe: None,
                        limits: None,
                    };
                    match store.enqueue(ev).await {
                        Ok(Enqueued::Stored) => {}
                        other => panic!("enqueue: {other:?}"),
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("an enqueuer");
    }
    store.close().await.expect("close");
}

/// A sink on loopback: 503 for the slow key, 200 for the rest; counts the 200s.
async fn sink(delivered: Arc<AtomicU64>) -> std::net::SocketAddr {
    let route = warp::body::bytes().map(move |body: Bytes| {
        let slow = body.windows(8).any(|w| w == b"cmp_slow");
        if slow {
            warp::http::StatusCode::SERVICE_UNAVAILABLE
        } else {
            delivered.fetch_add(1, Ordering::Relaxed);
            warp::http::StatusCode::OK
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(warp::serve(route).incoming(listener).run());
    addr
}

async fn run(ordered: bool, n: u64, keys: u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let queue = dir.path().join("queue.db");
    let started = Instant::now();
    fill(&queue, n, keys, ordered).await;
    let filled = started.elapsed();
    let (rss_filled, _) = memory();

    let delivered = Arc::new(AtomicU64::new(0));
    let addr = sink(delivered.clone()).await;
    let ordering = if ordered {
        "    ordering: { key: companionId }\n"
    } else {
        ""
    };
    let yaml = format!(
        "version: 1\nserver:\n  listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\nqueue:\n  path: {}\n  retention: 1s\ndedupe:\n  window: 0s\nsources:\n  - name: bench\n    path: /hooks/in\n    verify: {{ scheme: none }}\ntargets:\n  sink:\n    kind: http\n    url: http://{addr}/sink\n    concurrency: 64\n    retry: {{ schedule: [1s], max_attempts: 100000, jitter: false }}\n{ordering}routes:\n  - name: bench\n    match: {{}}\n    targets: [sink]\n",
        queue.display()
    );
    let path = dir.path().join("rules.yaml");
    std::fs::write(&path, yaml).expect("config");
    let loaded = config::load_file(&path, &LoadOptions::from_process_env(false))
        .unwrap_or_else(|e| panic!("{e}"));
    let listeners = hookgate::Listeners {
        ingress: tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind"),
        admin: tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind"),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let gateway = tokio::spawn(hookgate::run(loaded.config, listeners, async {
        let _ = stopped.await;
    }));
    let slow = n.div_ceil(keys);
    let others = n - slow;
    let start = Instant::now();
    let mut peak_rss = 0;
    let mut last = (Instant::now(), 0u64);
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (rss, _) = memory();
        peak_rss = peak_rss.max(rss);
        let got = delivered.load(Ordering::Relaxed);
        if last.0.elapsed() >= Duration::from_secs(10) {
            eprintln!("  {got} of {others} delivered, RSS {rss} MiB");
            last = (Instant::now(), got);
        }
        if got >= others {
            break;
        }
        if start.elapsed() > Duration::from_secs(1800) {
            panic!("not drained after 30 minutes: {got} of {others}");
        }
    }
    let drained = start.elapsed();
    let _ = stop.send(());
    let _ = gateway.await;
    println!(
        "| {} | {n} | {keys} | {slow} | {:.1} s | {:.1} s | {:.0} | {rss_filled} MiB | {peak_rss} MiB |",
        if ordered { "ordered" } else { "unordered" },
        filled.as_secs_f64(),
        drained.as_secs_f64(),
        others as f64 / drained.as_secs_f64(),
    );
}

/// `REBUILD=1`: how long the writer takes to order an unordered backlog of
/// `n` deliveries (a reload that adds `ordering`), and to let it go again;
/// ingest waits for the writer meanwhile.
async fn rebuild(n: u64, keys: u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let queue = dir.path().join("queue.db");
    fill(&queue, n, keys, false).await;
    let store = SqliteStore::open(&queue).expect("open the queue");
    let path = Some(vec!["companionId".to_owned()]);
    let start = Instant::now();
    let gained = store.set_ordering("sink", path).await.expect("gain");
    let gain = start.elapsed();
    let start = Instant::now();
    let lost = store.set_ordering("sink", None).await.expect("lose");
    let lose = start.elapsed();
    store.close().await.expect("close");
    println!(
        "| rebuild | {n} | {keys} | gain: {:.2} s ({} held, {} lanes) | lose: {:.2} s ({} released) |",
        gain.as_secs_f64(),
        gained.held,
        gained.lanes,
        lose.as_secs_f64(),
        lost.released
    );
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is read from argv.
    let n = env("BACKLOG", 1_000_000);
    let keys = env("KEYS", 100_000);
    if env("REBUILD", 0) == 1 {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(rebuild(n, keys));
        return;
    }
    let variants: Vec<bool> = match std::env::var("ORDERED").as_deref() {
        Ok("1") => vec![true],
        Ok("0") => vec![false],
        _ => vec![false, true],
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    println!(
        "| variant | deliveries | keys | of the slow key | fill | others drained in | others/s | RSS filled | RSS peak draining |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for ordered in variants {
        rt.block_on(run(ordered, n, keys));
    }
}
