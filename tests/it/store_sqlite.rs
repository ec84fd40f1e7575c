//! The sqlite store: the shared conformance suite, then what only a file can
//! show (reopening, crash recovery, the process lock, group commit, format).

use std::path::Path;
use std::sync::Arc;

use hookgate::queue::conformance::LEASE_MS;
use hookgate::queue::sqlite::SqliteStore;
use hookgate::queue::{
    AttemptRecord, Completed, Completion, DeliveryQueue, DeliveryRecords, DeliveryState,
    DeliveryStore, NewEvent, NextState, RECORD_FORMAT, StoreError,
};
use tempfile::TempDir;

async fn setup() -> (Arc<dyn DeliveryStore>, TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&dir.path().join("queue.db")).expect("open");
    (Arc::new(store), dir)
}

hookgate::delivery_store_conformance!(setup);
hookgate::delivery_store_conformance!(ordering setup);

const T0: i64 = 1_700_000_000_000;

fn event(at: i64, body: &'static [u8], targets: &[&str]) -> NewEvent {
    hookgate::queue::conformance::event("outrival", at, body, targets)
}

fn failed_at(at: i64) -> AttemptRecord {
    AttemptRecord {
        at_ms: at,
        duration_ms: 5,
        status: Some(502),
        error: None,
        response_excerpt: Some("bad gateway".into()),
    }
}

fn open(path: &Path) -> SqliteStore {
    SqliteStore::open(path).expect("open")
}

#[tokio::test]
async fn reopen_after_drop_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue.db");
    let (ev, retried) = (
        event(T0, b"\x00body\xff", &["a", "b"]),
        event(T0, b"two", &["a"]),
    );
    let before = {
        let store = open(&path);
        store.enqueue(ev.clone()).await.unwrap();
        store.enqueue(retried.clone()).await.unwrap();
        let c = store.claim_due("a", T0, 10, LEASE_MS).await.unwrap();
        let r = &c[1];
        assert_eq!(r.delivery_id, retried.deliveries[0].id);
        let done = Completion {
            delivery_id: r.delivery_id,
            lease: r.lease,
            attempt: failed_at(T0),
            next: NextState::RetryAt(T0 + 1000),
        };
        assert_eq!(store.complete(done).await.unwrap(), Completed::Recorded);
        store.release(c[0].delivery_id, c[0].lease).await.unwrap();
        store
            .delivery(retried.deliveries[0].id)
            .await
            .unwrap()
            .unwrap()
    };
    let store = open(&path);
    let after = store
        .delivery(retried.deliveries[0].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.record, before.record);
    assert_eq!(after.attempts, before.attempts);
    let claims = store.claim_due("a", T0 + 1000, 10, LEASE_MS).await.unwrap();
    assert_eq!(claims.len(), 2);
    assert_eq!(&claims[0].body[..], b"\x00body\xff");
    assert_eq!(
        (claims[1].delivery_id, claims[1].attempts_made),
        (retried.deliveries[0].id, 1)
    );
    assert_eq!(
        store.claim_due("b", T0, 10, LEASE_MS).await.unwrap().len(),
        1
    );
}

#[tokio::test]
async fn in_flight_deliveries_are_recovered_on_reopen_without_counting_an_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue.db");
    let (first, second) = (event(T0, b"1", &["t"]), event(T0 + 1, b"2", &["t"]));
    let old_leases = {
        let store = open(&path);
        store.enqueue(first.clone()).await.unwrap();
        store.enqueue(second.clone()).await.unwrap();
        let c = store.claim_due("t", T0 + 1, 10, LEASE_MS).await.unwrap();
        let retry = Completion {
            delivery_id: c[1].delivery_id,
            lease: c[1].lease,
            attempt: failed_at(T0 + 1),
            next: NextState::RetryAt(T0 + 100),
        };
        store.complete(retry).await.unwrap();
        let again = store.claim_due("t", T0 + 100, 10, LEASE_MS).await.unwrap();
        assert_eq!(again.len(), 1);
        // Dropped with both deliveries in flight: the attempts are cut off.
        vec![c[0].lease, again[0].lease]
    };
    let store = open(&path);
    let d1 = store
        .delivery(first.deliveries[0].id)
        .await
        .unwrap()
        .unwrap();
    let d2 = store
        .delivery(second.deliveries[0].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (d1.record.state, d1.record.attempt_count),
        (DeliveryState::Pending, 0)
    );
    assert_eq!(
        (d2.record.state, d2.record.attempt_count),
        (DeliveryState::Retrying, 1)
    );
    assert_eq!(d2.attempts.len(), 1);
    // Due as before, in the same order.
    assert_eq!(store.next_due("t").await.unwrap(), Some(T0));
    let c = store.claim_due("t", T0 + 100, 10, LEASE_MS).await.unwrap();
    let got: Vec<_> = c.iter().map(|c| (c.delivery_id, c.attempts_made)).collect();
    assert_eq!(
        got,
        [(first.deliveries[0].id, 0), (second.deliveries[0].id, 1)]
    );
    assert!(c.iter().all(|c| !old_leases.contains(&c.lease)));
}

#[tokio::test]
async fn a_second_open_of_the_same_file_fails_while_the_first_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue.db");
    let first = open(&path);
    match SqliteStore::open(&path) {
        Err(StoreError::Open(msg)) => assert!(msg.contains("another hookgate"), "{msg}"),
        other => panic!("second open must fail, got {other:?}"),
    }
    drop(first);
    open(&path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_enqueues_are_group_committed() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(&dir.path().join("queue.db")));
    let tasks: Vec<_> = (0..500)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.enqueue(event(T0, b"{}", &["t"])).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let stats = store.stats();
    assert_eq!(stats.events, 500);
    assert!(stats.event_batches < 500, "no grouping: {stats:?}");
    assert!(stats.largest_batch > 1, "{stats:?}");
    assert!(stats.events_per_sync() > 1.0, "{stats:?}");
    assert_eq!(stats.failed_batches, 0);
}

#[tokio::test]
async fn records_carry_the_format_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue.db");
    let store = open(&path);
    store.enqueue(event(T0, b"{}", &["a", "b"])).await.unwrap();
    let c = store
        .claim_due("a", T0, 1, LEASE_MS)
        .await
        .unwrap()
        .remove(0);
    let done = Completion {
        delivery_id: c.delivery_id,
        lease: c.lease,
        attempt: failed_at(T0),
        next: NextState::RetryAt(T0 + 1),
    };
    store.complete(done).await.unwrap();
    store.close().await.unwrap();

    let conn = rusqlite::Connection::open(&path).unwrap();
    for table in ["events", "deliveries", "attempts"] {
        let formats: Vec<u32> = conn
            .prepare(&format!("SELECT DISTINCT format FROM {table}"))
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(formats, [RECORD_FORMAT], "{table}");
    }
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, 5);
    let ids: Vec<String> = conn
        .prepare("SELECT id FROM deliveries")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(
        ids.iter()
            .all(|id| id.len() == 36 && *id == id.to_lowercase()),
        "{ids:?}"
    );
}

#[tokio::test]
async fn close_finishes_what_was_sent_then_refuses_and_unlocks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dirs/queue.db");
    let store = open(&path);
    let ev = event(T0, b"{}", &["t"]);
    // The enqueue is sent before the close (join polls in order).
    let (queued, closed) = tokio::join!(store.enqueue(ev.clone()), store.close());
    queued.unwrap();
    closed.unwrap();
    assert!(matches!(
        store.enqueue(event(T0, b"{}", &["t"])).await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(store.check_writable().await.is_err());
    store.close().await.unwrap(); // twice is fine
    let reopened = open(&path);
    assert!(
        reopened
            .delivery(ev.deliveries[0].id)
            .await
            .unwrap()
            .is_some()
    );
}
