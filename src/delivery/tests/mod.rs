//! The dispatcher against a real SQLite store, real log files and real
//! loopback sockets: a task that dies says so (an attempt that panics is
//! released and attempted again, a worker that panics is restarted), and
//! `reconcile` adds, removes and retunes targets while keeping the state of
//! the ones that did not change. This file is the harness; the tests are in
//! `panics` and `reconcile`.

mod hand_off;
mod panics;
mod reconcile;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::runtime::TargetShared;
use super::test_hooks::{self, Hook};
use super::{Dispatcher, WorkerContext};
use crate::clock::{Clock, SystemClock};
use crate::config::{self, LoadOptions};
use crate::queue::sqlite::SqliteStore;
use crate::queue::{
    DeadReason, DeliveryId, DeliveryRecord, DeliveryState, DeliveryStore, NewDelivery, NewEvent,
};
use crate::rate_limit::LocalBudgets;
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
            budgets: Arc::new(LocalBudgets),
            board: None,
            activity: Arc::new(crate::delivery::activity::Activity::new(Arc::new(
                SystemClock,
            ))),
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
                    order: None,
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

/// Whether the circuit is open within 2 s (the gate hears of an outcome
/// just after the store records it).
async fn opens(shared: &TargetShared) -> bool {
    for _ in 0..40 {
        if shared.gate.lock().is_open() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
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

/// A log target named `name` with a rate limit of `per_second` (burst 1).
fn limited_log_target(dir: &Path, name: &str, per_second: u32) -> String {
    format!(
        "  {name}: {{ kind: log, path: \"{}\", rate_limit: {{ per_second: {per_second}, burst: 1 }} }}\n",
        dir.join(format!("{name}.log")).display()
    )
}
