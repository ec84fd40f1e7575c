//! The dispatcher against a real SQLite store, real log files and real
//! loopback sockets: a task that dies says so (an attempt that panics is
//! released and attempted again, a worker that panics is restarted), and
//! `reconcile` adds, removes and retunes targets while keeping the state of
//! the ones that did not change.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::test_hooks::{self, Hook};
use super::{Dispatcher, WorkerContext};
use crate::clock::{Clock, SystemClock};
use crate::config::{self, LoadOptions};
use crate::queue::sqlite::SqliteStore;
use crate::queue::{
    DeadReason, DeliveryId, DeliveryRecord, DeliveryState, DeliveryStore, NewDelivery, NewEvent,
};
use crate::snapshot::{self, Snapshot, SnapshotWriter};
use crate::targets::Senders;

const HEAD: &str = r#"version: 1
server:
  listen: 127.0.0.1:0
admin:
  listen: 127.0.0.1:0
sources:
  - name: outrival
    path: /webhooks/outrival
    verify:
      scheme: outrival
      secrets: ["test-inbound-secret-0123456789"]
"#;

struct Harness {
    dir: tempfile::TempDir,
    store: Arc<dyn DeliveryStore>,
    writer: SnapshotWriter,
    dispatcher: Dispatcher,
}

fn snapshot_of(dir: &Path, targets: &str) -> Snapshot {
    let yaml = format!(
        "{HEAD}queue:\n  path: {}\ntargets:\n{targets}unmatched: []\n",
        dir.join("queue.db").display()
    );
    let loaded = config::load_bytes(
        &dir.join("rules.yaml"),
        yaml.as_bytes(),
        &LoadOptions::from_process_env(false),
    )
    .unwrap_or_else(|e| panic!("test config is invalid:\n{e}"));
    Snapshot::new(loaded.config, SystemClock.now_ms())
}

/// A log target named `name` writing to `dir/name.log`.
fn log_target(dir: &Path, name: &str) -> String {
    format!(
        "  {name}: {{ kind: log, path: \"{}\" }}\n",
        dir.join(format!("{name}.log")).display()
    )
}

impl Harness {
    async fn start(targets: impl Fn(&Path) -> String) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let snapshot = snapshot_of(dir.path(), &targets(dir.path()));
        let store: Arc<dyn DeliveryStore> =
            Arc::new(SqliteStore::open(&dir.path().join("queue.db")).unwrap());
        let (live, writer) = snapshot::live(snapshot);
        let dispatcher = Dispatcher::start(WorkerContext {
            live,
            store: store.clone(),
            senders: Arc::new(Senders::new().unwrap()),
            clock: Arc::new(SystemClock),
        });
        Harness {
            dir,
            store,
            writer,
            dispatcher,
        }
    }

    /// Swap in a config with these targets, as a reload will, and reconcile.
    fn reload(&mut self, targets: &str) {
        let snapshot = Arc::new(snapshot_of(self.dir.path(), targets));
        self.writer.store(snapshot.clone());
        self.dispatcher.reconcile(&snapshot);
    }

    async fn enqueue(&self, target: &str) -> DeliveryId {
        let id = uuid::Uuid::now_v7();
        self.store
            .enqueue(NewEvent {
                id: uuid::Uuid::now_v7(),
                source: "outrival".to_owned(),
                received_at_ms: SystemClock.now_ms(),
                body: bytes::Bytes::from_static(br#"{"event":"status-changed"}"#),
                deliveries: vec![NewDelivery {
                    id,
                    target: target.to_owned(),
                    route: "test".to_owned(),
                }],
                dedupe: None,
                limits: None,
            })
            .await
            .unwrap();
        id
    }

    async fn record(&self, id: DeliveryId) -> DeliveryRecord {
        self.store.delivery(id).await.unwrap().unwrap().record
    }

    /// Wait (up to 10 s) until the delivery is in `state`.
    async fn reaches(&self, id: DeliveryId, state: DeliveryState) -> DeliveryRecord {
        for _ in 0..200 {
            let record = self.record(id).await;
            if record.state == state {
                return record;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{id} never reached {state:?}: {:?}", self.record(id).await);
    }
}

#[tokio::test]
async fn a_panicking_attempt_is_released_and_attempted_again() {
    test_hooks::arm(Hook::Attempt, "panics-once", 1);
    let h = Harness::start(|d| log_target(d, "panics-once")).await;
    let first = h.enqueue("panics-once").await;
    let record = h.reaches(first, DeliveryState::Delivered).await;
    assert_eq!(
        record.attempt_count, 1,
        "the panicked attempt is not counted: it never sent"
    );
    let log = std::fs::read_to_string(h.dir.path().join("panics-once.log")).unwrap();
    assert_eq!(log.lines().count(), 1, "delivered once, by the second try");
    // The worker keeps serving.
    let second = h.enqueue("panics-once").await;
    h.reaches(second, DeliveryState::Delivered).await;
    h.dispatcher.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_panicking_worker_is_restarted() {
    test_hooks::arm(Hook::Worker, "worker-panics", 2);
    let h = Harness::start(|d| log_target(d, "worker-panics")).await;
    let id = h.enqueue("worker-panics").await;
    // Two panics, two restarts (a pause of one second each), then it serves.
    h.reaches(id, DeliveryState::Delivered).await;
    let again = h.enqueue("worker-panics").await;
    h.reaches(again, DeliveryState::Delivered).await;
    h.dispatcher.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn reconcile_starts_new_targets_and_dead_letters_removed_ones() {
    let mut h = Harness::start(|d| log_target(d, "old")).await;
    let dir = h.dir.path().to_owned();
    assert_eq!(h.dispatcher.running_targets(), ["old"]);
    // `old` is disabled first: its deliveries wait, pending, not dead.
    h.reload(&format!(
        "  old: {{ kind: log, path: \"{}\", enabled: false }}\n",
        dir.join("old.log").display()
    ));
    assert!(h.dispatcher.running_targets().is_empty());
    let for_old = h.enqueue("old").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(h.record(for_old).await.state, DeliveryState::Pending);

    // As a reload will: swap, then reconcile. Ingress may route to `new` in
    // between; that delivery waits, pending, for the worker reconcile starts.
    let snapshot = Arc::new(snapshot_of(&dir, &log_target(&dir, "new")));
    h.writer.store(snapshot.clone());
    let for_new = h.enqueue("new").await;
    h.dispatcher.reconcile(&snapshot);
    assert_eq!(h.dispatcher.running_targets(), ["new"]);
    h.reaches(for_new, DeliveryState::Delivered).await;
    let dead = h.reaches(for_old, DeliveryState::Dead).await;
    assert_eq!(dead.dead_reason, Some(DeadReason::TargetRemoved));
    h.dispatcher.shutdown(Duration::from_secs(5)).await;
}

/// An http target at a port where nothing listens: every attempt fails.
fn down_target(port: u16, concurrency: usize) -> String {
    format!(
        "  down:\n    kind: http\n    url: http://127.0.0.1:{port}/\n    secret: test-target-secret-0123456789\n    concurrency: {concurrency}\n    retry: {{ schedule: [1s], jitter: false }}\n    circuit_breaker: {{ failures: 1, cooldown: 1h }}\n"
    )
}

fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test]
async fn a_re_enabled_target_delivers_what_waited() {
    let mut h = Harness::start(|d| log_target(d, "paused")).await;
    let dir = h.dir.path().to_owned();
    h.reload(&format!(
        "  paused: {{ kind: log, path: \"{}\", enabled: false }}\n",
        dir.join("paused.log").display()
    ));
    let waited = h.enqueue("paused").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(h.record(waited).await.state, DeliveryState::Pending);
    h.reload(&log_target(&dir, "paused"));
    assert_eq!(h.dispatcher.running_targets(), ["paused"]);
    h.reaches(waited, DeliveryState::Delivered).await;
    h.dispatcher.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn an_open_breaker_stays_open_across_a_reconcile_of_another_target() {
    let port = closed_port();
    let mut h = Harness::start(|d| down_target(port, 4) + &log_target(d, "other")).await;
    let dir = h.dir.path().to_owned();
    let id = h.enqueue("down").await;
    h.reaches(id, DeliveryState::Retrying).await;
    let gate = h.dispatcher.targets["down"].shared().clone();
    assert!(gate.gate.lock().is_open(), "one failure opens it");

    // Only `other` changes (it gains a rate limit).
    h.reload(&format!(
        "{}  other: {{ kind: log, path: \"{}\", rate_limit: {{ per_second: 5 }} }}\n",
        down_target(port, 4),
        dir.join("other.log").display()
    ));
    assert!(
        Arc::ptr_eq(&gate, h.dispatcher.targets["down"].shared()),
        "the unchanged target keeps its runtime"
    );
    assert!(gate.gate.lock().is_open(), "and its open circuit");
    // The retry was due after 1 s; the open circuit (1 h) holds it back.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(h.record(id).await.attempt_count, 1);
    h.dispatcher.shutdown(Duration::from_secs(5)).await;
}

/// A target that accepts connections and never answers: each attempt in
/// flight holds one connection. Returns its port and the accepted count.
async fn silent_target() -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            held.push(conn);
        }
    });
    (port, accepted)
}

#[tokio::test]
async fn a_retuned_concurrency_takes_effect() {
    let (port, accepted) = silent_target().await;
    let mut h = Harness::start(|_| down_target(port, 1)).await;
    for _ in 0..5 {
        h.enqueue("down").await;
    }
    let in_flight = || accepted.load(std::sync::atomic::Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(in_flight(), 1, "concurrency 1: one attempt at a time");

    h.reload(&down_target(port, 3));
    for _ in 0..100 {
        if in_flight() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(in_flight(), 3, "concurrency 3: two more attempts start");
    h.dispatcher.shutdown(Duration::from_millis(100)).await;
}

/// A log target named `name` with a rate limit of `per_second` (burst 1).
fn limited_log_target(dir: &Path, name: &str, per_second: u32) -> String {
    format!(
        "  {name}: {{ kind: log, path: \"{}\", rate_limit: {{ per_second: {per_second}, burst: 1 }} }}\n",
        dir.join(format!("{name}.log")).display()
    )
}

#[tokio::test]
async fn an_unchanged_rate_limit_keeps_its_budget_across_a_reconcile() {
    let mut h =
        Harness::start(|d| limited_log_target(d, "slow", 1) + &log_target(d, "other")).await;
    let dir = h.dir.path().to_owned();
    let first = h.enqueue("slow").await;
    h.reaches(first, DeliveryState::Delivered).await;
    // `other` changes; `slow` does not, and its one cell is spent.
    h.reload(&(limited_log_target(&dir, "slow", 1) + &limited_log_target(&dir, "other", 9)));
    let second = h.enqueue("slow").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        h.record(second).await.state,
        DeliveryState::Pending,
        "the budget was not reset: the next cell is a second after the first"
    );
    h.reaches(second, DeliveryState::Delivered).await;
    h.dispatcher.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_retuned_rate_limit_takes_effect() {
    let mut h = Harness::start(|d| limited_log_target(d, "retuned", 1)).await;
    let dir = h.dir.path().to_owned();
    let started = std::time::Instant::now();
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(h.enqueue("retuned").await);
    }
    h.reaches(ids[0], DeliveryState::Delivered).await;
    h.reload(&limited_log_target(&dir, "retuned", 50));
    for id in &ids {
        h.reaches(*id, DeliveryState::Delivered).await;
    }
    // At one a second the four would take three seconds; the worker waits
    // out the cell it was already waiting for (one second), then 50/s.
    let took = started.elapsed();
    assert!(took < Duration::from_millis(2_000), "took {took:?}");
    h.dispatcher.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_shrunk_concurrency_takes_effect_as_attempts_end() {
    let (port, accepted) = silent_target().await;
    let mut h = Harness::start(|_| down_target(port, 3)).await;
    let in_flight = || accepted.load(std::sync::atomic::Ordering::SeqCst);
    for _ in 0..2 {
        h.enqueue("down").await;
    }
    for _ in 0..100 {
        if in_flight() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(in_flight(), 2);
    // Two permits are held: shrinking to 1 retires the free one now and
    // one more when an attempt ends, so nothing new starts.
    h.reload(&down_target(port, 1));
    let shared = h.dispatcher.targets["down"].shared().clone();
    for _ in 0..3 {
        h.enqueue("down").await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(in_flight(), 2, "no attempt starts above the new cap");
    assert_eq!(shared.permits.available_permits(), 0);
    h.dispatcher.shutdown(Duration::from_millis(100)).await;
}
