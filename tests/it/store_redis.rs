//! The Redis store: the shared conformance suite, then what only a shared
//! server can show (two stores as two replicas: wake-ups, leases taken over,
//! limits held together; a server killed and restarted; durability found at
//! connect). Each test runs its own `redis-server` (tests/common/redis.rs);
//! without one on PATH they skip, saying so once.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hookgate::queue::conformance::{LEASE_MS, event};
use hookgate::queue::redis::{Aof, RedisStore};
use hookgate::queue::{
    AttemptRecord, Backlog, Completed, Completion, DeliveryQueue, DeliveryRecords, DeliveryStore,
    Enqueued, NextState, StoreError,
};

use crate::common::redis::RedisServer;

const T0: i64 = 1_700_000_000_000;

async fn setup() -> Option<(Arc<dyn DeliveryStore>, RedisServer)> {
    let server = RedisServer::start()?;
    let store = RedisStore::connect(&server.url(), "hookgate")
        .await
        .expect("connect");
    Some((Arc::new(store), server))
}

/// The shared suite, each case skipped when there is no `redis-server`.
mod conformance {
    hookgate::delivery_store_conformance!(super::setup);
    hookgate::delivery_store_conformance!(ordering super::setup);
}

/// Two stores on one server: two replicas.
async fn two_replicas(server: &RedisServer) -> (RedisStore, RedisStore) {
    let a = RedisStore::connect(&server.url(), "hookgate")
        .await
        .unwrap();
    let b = RedisStore::connect(&server.url(), "hookgate")
        .await
        .unwrap();
    (a, b)
}

async fn woken(n: &tokio::sync::Notify, within: Duration) -> bool {
    tokio::time::timeout(within, n.notified()).await.is_ok()
}

fn ok_attempt(at: i64) -> AttemptRecord {
    AttemptRecord {
        at_ms: at,
        duration_ms: 3,
        status: Some(200),
        error: None,
        response_excerpt: None,
    }
}

/// Poll `check` until it holds, for at most `within`.
async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn an_enqueue_on_one_replica_wakes_the_other() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (a, b) = two_replicas(&server).await;
    let on_b = b.work_signal().subscribe("t");
    let unrelated = b.work_signal().subscribe("u");
    a.enqueue(event("s", T0, b"x", &["t"])).await.unwrap();
    assert!(
        woken(&on_b, Duration::from_secs(5)).await,
        "b was not woken"
    );
    assert!(!woken(&unrelated, Duration::from_millis(100)).await);
    // And the work is b's to claim.
    assert_eq!(b.claim_due("t", T0, 10, LEASE_MS).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_lease_that_expires_on_one_replica_is_claimed_by_the_other() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (a, b) = two_replicas(&server).await;
    let ev = event("s", T0, b"x", &["t"]);
    a.enqueue(ev.clone()).await.unwrap();
    let held = a.claim_due("t", T0, 10, 1_000).await.unwrap();
    assert_eq!(held.len(), 1);
    assert!(
        b.claim_due("t", T0 + 999, 10, 1_000)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(b.next_due("t").await.unwrap(), Some(T0 + 1_000));
    // a "died": its lease runs out and b takes the delivery over.
    let taken = b.claim_due("t", T0 + 1_000, 10, 1_000).await.unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].delivery_id, ev.deliveries[0].id);
    assert_eq!(taken[0].attempts_made, 0);
    let late = Completion {
        delivery_id: held[0].delivery_id,
        lease: held[0].lease,
        attempt: ok_attempt(T0 + 1_500),
        next: NextState::Delivered,
    };
    assert_eq!(a.complete(late).await.unwrap(), Completed::StaleLease);
    let done = Completion {
        delivery_id: taken[0].delivery_id,
        lease: taken[0].lease,
        attempt: ok_attempt(T0 + 1_100),
        next: NextState::Delivered,
    };
    assert_eq!(b.complete(done).await.unwrap(), Completed::Recorded);
    let d = a.delivery(ev.deliveries[0].id).await.unwrap().unwrap();
    assert_eq!((d.record.attempt_count, d.attempts.len()), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_claiming_at_once_hand_each_delivery_out_once() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (a, b) = two_replicas(&server).await;
    let mut expected = std::collections::HashSet::new();
    for i in 0..300 {
        let ev = event("s", T0 + i % 5, b"{}", &["t"]);
        expected.insert(ev.deliveries[0].id);
        a.enqueue(ev).await.unwrap();
    }
    let (a, b) = (Arc::new(a), Arc::new(b));
    let drain = |store: Arc<RedisStore>| {
        tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let batch = store.claim_due("t", T0 + 10, 7, LEASE_MS).await.unwrap();
                if batch.is_empty() {
                    return got;
                }
                got.extend(batch.into_iter().map(|c| c.delivery_id));
            }
        })
    };
    let (from_a, from_b) = tokio::join!(drain(a.clone()), drain(b.clone()));
    let (from_a, from_b) = (from_a.unwrap(), from_b.unwrap());
    assert!(
        !from_a.is_empty() && !from_b.is_empty(),
        "both replicas took work"
    );
    let mut seen = std::collections::HashSet::new();
    for id in from_a.into_iter().chain(from_b) {
        assert!(seen.insert(id), "{id} handed out twice");
    }
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn the_backlog_limit_holds_across_replicas() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (a, b) = two_replicas(&server).await;
    a.enqueue(event("s", T0, b"0123456789", &["x", "y"]))
        .await
        .unwrap();
    let mut limited = event("s", T0, b"0123456789", &["x"]);
    limited.limits = Some(Backlog {
        deliveries: 2,
        bytes: 1_000,
    });
    assert_eq!(b.enqueue(limited.clone()).await.unwrap(), Enqueued::Full);
    let want = Backlog {
        deliveries: 2,
        bytes: 20,
    };
    // b never wrote: its copy of the shared counters comes from its refresher.
    assert!(eventually(Duration::from_secs(5), || async { b.backlog() == want }).await);
    limited.limits = Some(Backlog {
        deliveries: 3,
        bytes: 1_000,
    });
    assert_eq!(b.enqueue(limited).await.unwrap(), Enqueued::Stored);
    assert!(
        eventually(Duration::from_secs(5), || async {
            a.backlog().deliveries == 3
        })
        .await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_fails_writes_and_a_restarted_one_is_used_again() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let (a, b) = two_replicas(&server).await;
    let kept = event("s", T0, b"acknowledged", &["t"]);
    a.enqueue(kept.clone()).await.unwrap();
    a.check_writable().await.unwrap();

    server.kill();
    match a.check_writable().await {
        Err(StoreError::Unavailable(msg)) => {
            assert!(msg.starts_with("redis: "), "{msg}");
            assert!(!msg.contains("127.0.0.1"), "the address leaked: {msg}");
        }
        other => panic!("writable with the server gone: {other:?}"),
    }
    assert!(a.enqueue(event("s", T0, b"lost", &["t"])).await.is_err());

    server.restart();
    assert!(
        eventually(Duration::from_secs(15), || async {
            a.check_writable().await.is_ok()
        })
        .await,
        "the store did not reconnect"
    );
    // What was acknowledged before the crash is there (AOF, fsync always).
    let claims = a.claim_due("t", T0, 10, LEASE_MS).await.unwrap();
    assert_eq!(claims.len(), 1);
    assert_eq!(&claims[0].body[..], b"acknowledged");
    // b's wake-up channel came back too.
    let on_b = b.work_signal().subscribe("fresh");
    let woke = eventually(Duration::from_secs(15), || async {
        a.enqueue(event("s", T0, b"x", &["fresh"])).await.is_ok()
            && woken(&on_b, Duration::from_millis(300)).await
    })
    .await;
    assert!(woke, "b is not woken after the restart");
}

#[tokio::test]
async fn with_a_replica_every_write_waits_for_it() {
    let Some(master) = RedisServer::start_without_aof() else {
        return;
    };
    let Some(mut replica) = RedisServer::start_replica_of(&master) else {
        return;
    };
    let store = RedisStore::connect(&master.url(), "hookgate")
        .await
        .unwrap();
    assert_eq!(store.durability().replicas, 1);
    assert!(store.durability().is_durable());
    let ev = event("s", T0, b"x", &["t"]);
    store.enqueue(ev.clone()).await.unwrap();
    // Confirmed by WAIT: the replica has it.
    let key = format!("{{hookgate:t}}:d:{}", ev.deliveries[0].id);
    assert!(replica.cli(&["EXISTS", &key]).trim() == "1");
    // No replica left to confirm: the write is reported as failed.
    replica.kill();
    let started = std::time::Instant::now();
    match store.enqueue(event("s", T0, b"y", &["t"])).await {
        Err(StoreError::Unavailable(msg)) => assert!(msg.contains("no replica"), "{msg}"),
        other => panic!("an unconfirmed write was acknowledged: {other:?}"),
    }
    assert!(started.elapsed() >= Duration::from_secs(4));
}

#[tokio::test]
async fn a_refused_write_says_why() {
    let Some((store, _server)) = setup().await else {
        return;
    };
    let ev = event("s", T0, b"x", &["t"]);
    store.enqueue(ev.clone()).await.unwrap();
    match store.enqueue(ev).await {
        Err(StoreError::Unavailable(msg)) => {
            assert_eq!(msg, "redis: refused: this event id is already stored")
        }
        other => panic!("{other:?}"),
    }
}

/// Log lines, captured for one test.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Connect with a log subscriber on this thread; returns the store and the log.
async fn connect_logged(url: &str) -> (RedisStore, String) {
    let log = Captured::default();
    let sink = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    let store = RedisStore::connect(url, "hookgate").await.unwrap();
    drop(guard);
    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    (store, text)
}

#[tokio::test]
async fn durability_is_found_at_connect_and_its_absence_is_warned() {
    let Some(durable) = RedisServer::start() else {
        return;
    };
    let (store, log) = connect_logged(&durable.url()).await;
    assert_eq!(store.durability().aof, Aof::On("always".into()));
    assert_eq!(store.durability().replicas, 0);
    assert!(store.durability().is_durable());
    assert!(!log.contains("can be lost"), "{log}");

    let Some(volatile) = RedisServer::start_without_aof() else {
        return;
    };
    let (store, log) = connect_logged(&volatile.url()).await;
    assert_eq!(store.durability().aof, Aof::Off);
    assert!(!store.durability().is_durable());
    assert!(
        log.contains("WARN") && log.contains("acknowledged events can be lost if Redis crashes"),
        "{log}"
    );
    assert_eq!(log.matches("can be lost").count(), 1, "warned once: {log}");
}

#[tokio::test]
async fn connect_errors_never_show_the_password() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    server.cli(&["CONFIG", "SET", "requirepass", "right-one"]);
    let wrong = format!("redis://:hunter2-secret@127.0.0.1:{}/", server.port);
    let err = RedisStore::connect(&wrong, "hookgate").await.unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
    let nobody = "redis://:hunter2-secret@127.0.0.1:1/";
    let err = RedisStore::connect(nobody, "hookgate").await.unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
    let err = RedisStore::connect("http://:hunter2-secret@x/", "hookgate")
        .await
        .unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
    let ok = format!("redis://:right-one@127.0.0.1:{}/", server.port);
    RedisStore::connect(&ok, "hookgate").await.unwrap();
}
