//! The behaviour every [`DeliveryStore`] must show, as test cases any backend
//! can run: sqlite in `tests/store_sqlite.rs`, redis later.
//!
//! Each case is a `pub async fn(Arc<dyn DeliveryStore>)` that gets a fresh,
//! empty store and panics on a violation. It uses only the trait. Run them all
//! with [`delivery_store_conformance!`](crate::delivery_store_conformance),
//! which stamps out one `#[tokio::test]` per case for a given setup function.
//!
//! Times are arbitrary fixed milliseconds: the store must not read a clock of
//! its own for anything the trait hands it.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use uuid::Uuid;

use crate::queue::{
    AttemptRecord, Claim, Completed, Completion, DeadReason, DeliveryDetail, DeliveryId,
    DeliveryState, DeliveryStore, LeaseToken, NewDelivery, NewEvent, NextState,
};

/// Stamp out one `#[tokio::test]` per conformance case.
///
/// `$setup` is a path to an `async fn() -> (Arc<dyn DeliveryStore>, G)`, called
/// once per case; `G` is kept alive until the case ends (a temp dir, say).
#[macro_export]
macro_rules! delivery_store_conformance {
    ($setup:path) => {
        $crate::delivery_store_conformance!(@cases $setup;
            enqueue_then_claim_returns_the_event_exactly,
            claim_order_is_due_time_then_acceptance,
            claim_respects_limit_and_target,
            claimed_delivery_is_not_claimed_again,
            complete_delivered_records_the_attempt,
            retry_waits_until_due_then_dead,
            stale_lease_is_ignored,
            release_does_not_count_an_attempt,
            one_delivery_per_event_and_target,
            event_without_deliveries_is_stored,
            work_signal_on_enqueue_retry_and_release,
            next_due_is_the_earliest_waiting,
            unknown_delivery_is_none_and_store_is_writable,
            concurrent_enqueues_are_claimed_exactly_once,
        );
    };
    (@cases $setup:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let (store, _guard) = $setup().await;
                $crate::queue::conformance::$case(store).await;
            }
        )*
    };
}

const T0: i64 = 1_700_000_000_000;

fn event(source: &str, at: i64, body: &[u8], targets: &[&str]) -> NewEvent {
    NewEvent {
        id: Uuid::now_v7(),
        source: source.to_owned(),
        received_at_ms: at,
        body: Bytes::copy_from_slice(body),
        deliveries: targets
            .iter()
            .map(|t| NewDelivery {
                id: Uuid::now_v7(),
                target: (*t).to_owned(),
                route: format!("route-{t}"),
            })
            .collect(),
    }
}

fn attempt(
    at: i64,
    status: Option<u16>,
    error: Option<&str>,
    excerpt: Option<&str>,
) -> AttemptRecord {
    AttemptRecord {
        at_ms: at,
        duration_ms: 42,
        status,
        error: error.map(str::to_owned),
        response_excerpt: excerpt.map(str::to_owned),
    }
}

fn done(c: &Claim, a: AttemptRecord, next: NextState) -> Completion {
    Completion {
        delivery_id: c.delivery_id,
        lease: c.lease,
        attempt: a,
        next,
    }
}

async fn detail(store: &dyn DeliveryStore, id: DeliveryId) -> DeliveryDetail {
    store
        .delivery(id)
        .await
        .expect("delivery()")
        .expect("delivery exists")
}

async fn enqueue(store: &dyn DeliveryStore, ev: &NewEvent) {
    store.enqueue(ev.clone()).await.expect("enqueue");
}

async fn claim(store: &dyn DeliveryStore, target: &str, now: i64, limit: usize) -> Vec<Claim> {
    store
        .claim_due(target, now, limit)
        .await
        .expect("claim_due")
}

fn ids(claims: &[Claim]) -> Vec<DeliveryId> {
    claims.iter().map(|c| c.delivery_id).collect()
}

pub async fn enqueue_then_claim_returns_the_event_exactly(store: Arc<dyn DeliveryStore>) {
    // Not UTF-8, with NULs and a trailing newline: stored and returned byte-exact.
    let body = b"{\"event\":\"x\"}\0\xff\xfe\r\n";
    let ev = event("outrival", T0, body, &["a", "b"]);
    enqueue(&*store, &ev).await;
    let got = claim(&*store, "a", T0, 10).await;
    assert_eq!(got.len(), 1);
    let c = &got[0];
    assert_eq!(c.delivery_id, ev.deliveries[0].id);
    assert_eq!(c.event_id, ev.id);
    assert_eq!((c.target.as_str(), c.route.as_str()), ("a", "route-a"));
    assert_eq!((c.source.as_str(), c.received_at_ms), ("outrival", T0));
    assert_eq!(&c.body[..], &body[..]);
    assert_eq!((c.attempts_made, c.attempts_in_budget), (0, 0));

    let d = detail(&*store, c.delivery_id).await;
    assert_eq!(d.record.state, DeliveryState::InFlight);
    assert_eq!((d.record.event_id, d.record.attempt_count), (ev.id, 0));
    assert_eq!(
        (d.record.created_at_ms, d.record.next_attempt_at_ms),
        (T0, Some(T0))
    );
    assert_eq!(
        (d.source.as_str(), &d.event_body[..]),
        ("outrival", &body[..])
    );
    assert!(d.attempts.is_empty());
    let other = detail(&*store, ev.deliveries[1].id).await;
    assert_eq!(
        (other.record.state, other.record.target.as_str()),
        (DeliveryState::Pending, "b")
    );
}

pub async fn claim_order_is_due_time_then_acceptance(store: Arc<dyn DeliveryStore>) {
    // Equal due times go in acceptance order; an earlier due time goes first
    // even when accepted later.
    let e1 = event("s", T0 + 100, b"1", &["t"]);
    let e2 = event("s", T0 + 100, b"2", &["t"]);
    let e3 = event("s", T0, b"3", &["t"]);
    for e in [&e1, &e2, &e3] {
        enqueue(&*store, e).await;
    }
    let got = claim(&*store, "t", T0 + 1000, 10).await;
    let want = [
        e3.deliveries[0].id,
        e1.deliveries[0].id,
        e2.deliveries[0].id,
    ];
    assert_eq!(ids(&got), want);

    // A retry competes by its due time with first attempts.
    let first = &got[0];
    let retry_at = T0 + 1150;
    let r = store.complete(done(
        first,
        attempt(T0 + 1000, Some(503), None, None),
        NextState::RetryAt(retry_at),
    ));
    assert_eq!(r.await.expect("complete"), Completed::Recorded);
    for c in &got[1..] {
        store
            .release(c.delivery_id, c.lease)
            .await
            .expect("release");
    }
    let before = event("s", T0 + 1100, b"4", &["t"]);
    let after = event("s", T0 + 1200, b"5", &["t"]);
    enqueue(&*store, &before).await;
    enqueue(&*store, &after).await;
    let got = claim(&*store, "t", T0 + 5000, 10).await;
    let want = [
        e1.deliveries[0].id,
        e2.deliveries[0].id,
        before.deliveries[0].id,
        e3.deliveries[0].id,
        after.deliveries[0].id,
    ];
    assert_eq!(ids(&got), want);
}

pub async fn claim_respects_limit_and_target(store: Arc<dyn DeliveryStore>) {
    for i in 0..5 {
        enqueue(&*store, &event("s", T0 + i, b"a", &["a"])).await;
    }
    for i in 0..3 {
        enqueue(&*store, &event("s", T0 + i, b"b", &["b"])).await;
    }
    assert!(claim(&*store, "a", T0 + 10, 0).await.is_empty());
    assert_eq!(claim(&*store, "a", T0 + 10, 2).await.len(), 2);
    assert_eq!(claim(&*store, "a", T0 + 10, 10).await.len(), 3);
    let b = claim(&*store, "b", T0 + 10, 10).await;
    assert_eq!(b.len(), 3);
    assert!(b.iter().all(|c| c.target == "b" && &c.body[..] == b"b"));
    assert!(claim(&*store, "c", T0 + 10, 10).await.is_empty());
    // Not yet due.
    enqueue(&*store, &event("s", T0 + 500, b"late", &["a"])).await;
    assert!(claim(&*store, "a", T0 + 499, 10).await.is_empty());
    assert_eq!(claim(&*store, "a", T0 + 500, 10).await.len(), 1);
}

pub async fn claimed_delivery_is_not_claimed_again(store: Arc<dyn DeliveryStore>) {
    enqueue(&*store, &event("s", T0, b"x", &["t"])).await;
    let first = claim(&*store, "t", T0, 10).await;
    assert_eq!(first.len(), 1);
    assert!(claim(&*store, "t", T0 + 60_000, 10).await.is_empty());
    assert_eq!(
        store.next_due("t").await.expect("next_due"),
        None,
        "in_flight is not waiting"
    );
}

pub async fn complete_delivered_records_the_attempt(store: Arc<dyn DeliveryStore>) {
    enqueue(&*store, &event("s", T0, b"x", &["t"])).await;
    let c = claim(&*store, "t", T0, 1).await.remove(0);
    let a = attempt(T0 + 10, Some(200), None, None);
    let r = store
        .complete(done(&c, a.clone(), NextState::Delivered))
        .await
        .expect("complete");
    assert_eq!(r, Completed::Recorded);
    let d = detail(&*store, c.delivery_id).await;
    assert_eq!(d.record.state, DeliveryState::Delivered);
    assert_eq!((d.record.attempt_count, d.record.dead_reason), (1, None));
    assert_eq!(d.record.next_attempt_at_ms, None);
    assert_eq!(d.attempts, vec![(1, a)]);
    assert!(d.record.updated_at_ms >= T0 + 10);
    assert!(claim(&*store, "t", T0 + 1_000_000, 10).await.is_empty());
    assert_eq!(store.next_due("t").await.expect("next_due"), None);
    // A second completion under the same (now spent) lease changes nothing.
    let again = store.complete(done(
        &c,
        attempt(T0 + 20, Some(200), None, None),
        NextState::Delivered,
    ));
    assert_eq!(again.await.expect("complete"), Completed::StaleLease);
    assert_eq!(detail(&*store, c.delivery_id).await.attempts.len(), 1);
}

pub async fn retry_waits_until_due_then_dead(store: Arc<dyn DeliveryStore>) {
    enqueue(&*store, &event("s", T0, b"x", &["t"])).await;
    let c = claim(&*store, "t", T0, 1).await.remove(0);
    let due = T0 + 5_000;
    let a1 = attempt(T0, Some(503), None, Some("try later"));
    let r = store
        .complete(done(&c, a1.clone(), NextState::RetryAt(due)))
        .await
        .expect("complete");
    assert_eq!(r, Completed::Recorded);
    let d = detail(&*store, c.delivery_id).await;
    assert_eq!(d.record.state, DeliveryState::Retrying);
    assert_eq!(
        (d.record.attempt_count, d.record.next_attempt_at_ms),
        (1, Some(due))
    );
    assert_eq!(d.record.last_error.as_deref(), Some("HTTP 503"));

    assert!(claim(&*store, "t", due - 1, 10).await.is_empty());
    assert_eq!(store.next_due("t").await.expect("next_due"), Some(due));
    let c2 = claim(&*store, "t", due, 10).await.remove(0);
    assert_eq!(
        (c2.delivery_id, c2.attempts_made, c2.attempts_in_budget),
        (c.delivery_id, 1, 1)
    );
    assert_ne!(c2.lease, c.lease);

    let a2 = attempt(
        due + 1,
        Some(404),
        Some("not found"),
        Some("<html>gone</html>"),
    );
    let dead = NextState::Dead(DeadReason::PermanentStatus);
    assert_eq!(
        store
            .complete(done(&c2, a2.clone(), dead))
            .await
            .expect("complete"),
        Completed::Recorded
    );
    let d = detail(&*store, c.delivery_id).await;
    assert_eq!(d.record.state, DeliveryState::Dead);
    assert_eq!(d.record.dead_reason, Some(DeadReason::PermanentStatus));
    assert_eq!(
        (d.record.attempt_count, d.record.next_attempt_at_ms),
        (2, None)
    );
    assert_eq!(d.record.last_error.as_deref(), Some("not found"));
    assert_eq!(d.attempts, vec![(1, a1), (2, a2)]);
    assert!(claim(&*store, "t", i64::MAX, 10).await.is_empty());
    assert_eq!(store.next_due("t").await.expect("next_due"), None);
}

pub async fn stale_lease_is_ignored(store: Arc<dyn DeliveryStore>) {
    enqueue(&*store, &event("s", T0, b"x", &["t"])).await;
    let c = claim(&*store, "t", T0, 1).await.remove(0);
    let forged = Completion {
        lease: LeaseToken::new(),
        ..done(&c, attempt(T0, Some(200), None, None), NextState::Delivered)
    };
    assert_eq!(
        store.complete(forged).await.expect("complete"),
        Completed::StaleLease
    );
    store
        .release(c.delivery_id, LeaseToken::new())
        .await
        .expect("release with a wrong lease");
    let d = detail(&*store, c.delivery_id).await;
    assert_eq!(
        (d.record.state, d.record.attempt_count),
        (DeliveryState::InFlight, 0)
    );

    store
        .release(c.delivery_id, c.lease)
        .await
        .expect("release");
    let late = done(&c, attempt(T0, Some(200), None, None), NextState::Delivered);
    assert_eq!(
        store.complete(late).await.expect("complete"),
        Completed::StaleLease
    );
    let d = detail(&*store, c.delivery_id).await;
    assert_eq!(
        (d.record.state, d.record.attempt_count),
        (DeliveryState::Pending, 0)
    );
    assert!(d.attempts.is_empty());

    // The old lease is dead for good, even once a new claim is made.
    let c2 = claim(&*store, "t", T0, 1).await.remove(0);
    let late = done(&c, attempt(T0, Some(200), None, None), NextState::Delivered);
    assert_eq!(
        store.complete(late).await.expect("complete"),
        Completed::StaleLease
    );
    let ok = done(
        &c2,
        attempt(T0, Some(200), None, None),
        NextState::Delivered,
    );
    assert_eq!(
        store.complete(ok).await.expect("complete"),
        Completed::Recorded
    );
}

pub async fn release_does_not_count_an_attempt(store: Arc<dyn DeliveryStore>) {
    enqueue(&*store, &event("s", T0, b"x", &["t"])).await;
    let c = claim(&*store, "t", T0, 1).await.remove(0);
    store
        .release(c.delivery_id, c.lease)
        .await
        .expect("release");
    let d = detail(&*store, c.delivery_id).await;
    assert_eq!(
        (d.record.state, d.record.attempt_count),
        (DeliveryState::Pending, 0)
    );
    assert_eq!(store.next_due("t").await.expect("next_due"), Some(T0));

    let c = claim(&*store, "t", T0, 1).await.remove(0);
    assert_eq!((c.attempts_made, c.attempts_in_budget), (0, 0));
    let retry = NextState::RetryAt(T0 + 10);
    store
        .complete(done(&c, attempt(T0, None, Some("connect"), None), retry))
        .await
        .expect("complete");
    let c = claim(&*store, "t", T0 + 10, 1).await.remove(0);
    store
        .release(c.delivery_id, c.lease)
        .await
        .expect("release");
    let d = detail(&*store, c.delivery_id).await;
    assert_eq!(
        (d.record.state, d.record.attempt_count),
        (DeliveryState::Retrying, 1)
    );
    assert_eq!(d.record.last_error.as_deref(), Some("connect"));
    let c = claim(&*store, "t", T0 + 10, 1).await.remove(0);
    assert_eq!((c.attempts_made, c.attempts_in_budget), (1, 1));
}

pub async fn one_delivery_per_event_and_target(store: Arc<dyn DeliveryStore>) {
    let mut bad = event("s", T0, b"bad", &["t", "u"]);
    bad.deliveries.push(NewDelivery {
        id: Uuid::now_v7(),
        target: "t".into(),
        route: "other".into(),
    });
    // Sent together with good events, so a batching store likely puts them in
    // one batch: only the bad one may fail.
    let good: Vec<NewEvent> = (0..20)
        .map(|i| event("s", T0 + i, b"good", &["t"]))
        .collect();
    let bad_call = store.enqueue(bad.clone());
    let good_calls = futures_util::future::join_all(good.iter().map(|e| store.enqueue(e.clone())));
    let (bad_result, good_results) = tokio::join!(bad_call, good_calls);
    assert!(
        bad_result.is_err(),
        "an event naming one target twice must be refused"
    );
    assert!(good_results.iter().all(Result::is_ok), "{good_results:?}");
    for d in &bad.deliveries {
        assert!(store.delivery(d.id).await.expect("delivery()").is_none());
    }
    assert!(
        store
            .delivery(good[7].deliveries[0].id)
            .await
            .expect("delivery()")
            .is_some()
    );
    let claimed = claim(&*store, "t", T0 + 100, 100).await;
    assert_eq!(claimed.len(), 20);
    assert!(claimed.iter().all(|c| c.event_id != bad.id));
    assert!(claim(&*store, "u", T0 + 100, 100).await.is_empty());

    // Nothing of the refused event was kept: its id can still be stored.
    let mut fixed = bad.clone();
    fixed.deliveries.pop();
    enqueue(&*store, &fixed).await;
    // An event id is stored once: a second enqueue fails and keeps the first.
    let mut again = fixed.clone();
    again.deliveries = vec![NewDelivery {
        id: Uuid::now_v7(),
        target: "v".into(),
        route: "r".into(),
    }];
    assert!(store.enqueue(again.clone()).await.is_err());
    assert!(
        store
            .delivery(again.deliveries[0].id)
            .await
            .expect("delivery()")
            .is_none()
    );
    assert!(
        store
            .delivery(fixed.deliveries[0].id)
            .await
            .expect("delivery()")
            .is_some()
    );
}

pub async fn event_without_deliveries_is_stored(store: Arc<dyn DeliveryStore>) {
    let ev = event("s", T0, b"{}", &[]);
    enqueue(&*store, &ev).await;
    // Stored means stored once: the same id cannot be enqueued twice.
    assert!(store.enqueue(ev).await.is_err());
}

async fn signalled(n: &tokio::sync::Notify) -> bool {
    tokio::time::timeout(Duration::from_secs(5), n.notified())
        .await
        .is_ok()
}

pub async fn work_signal_on_enqueue_retry_and_release(store: Arc<dyn DeliveryStore>) {
    let sig = store.work_signal().subscribe("sig");
    let other = store.work_signal().subscribe("other");
    enqueue(&*store, &event("s", T0, b"x", &["sig"])).await;
    assert!(signalled(&sig).await, "enqueue must wake the target");
    let c = claim(&*store, "sig", T0, 1).await.remove(0);
    let retry = NextState::RetryAt(T0 + 100);
    store
        .complete(done(&c, attempt(T0, Some(500), None, None), retry))
        .await
        .expect("complete");
    assert!(
        signalled(&sig).await,
        "a scheduled retry must wake the target"
    );
    let c = claim(&*store, "sig", T0 + 100, 1).await.remove(0);
    store
        .release(c.delivery_id, c.lease)
        .await
        .expect("release");
    assert!(signalled(&sig).await, "a release must wake the target");
    // Only the targets concerned are woken.
    let stray = tokio::time::timeout(Duration::from_millis(50), other.notified()).await;
    assert!(stray.is_err(), "an unrelated target was woken");
}

pub async fn next_due_is_the_earliest_waiting(store: Arc<dyn DeliveryStore>) {
    assert_eq!(store.next_due("t").await.expect("next_due"), None);
    enqueue(&*store, &event("s", T0 + 3000, b"x", &["t"])).await;
    enqueue(&*store, &event("s", T0 + 2000, b"y", &["t"])).await;
    enqueue(&*store, &event("s", T0 + 1000, b"z", &["u"])).await;
    assert_eq!(
        store.next_due("t").await.expect("next_due"),
        Some(T0 + 2000)
    );
    let c = claim(&*store, "t", T0 + 2000, 10).await;
    assert_eq!(c.len(), 1);
    assert_eq!(
        store.next_due("t").await.expect("next_due"),
        Some(T0 + 3000)
    );
}

pub async fn unknown_delivery_is_none_and_store_is_writable(store: Arc<dyn DeliveryStore>) {
    assert!(
        store
            .delivery(Uuid::now_v7())
            .await
            .expect("delivery()")
            .is_none()
    );
    store
        .check_writable()
        .await
        .expect("a fresh store is writable");
    // Unknown ids are stale leases, not errors.
    let c = Completion {
        delivery_id: Uuid::now_v7(),
        lease: LeaseToken::new(),
        attempt: attempt(T0, Some(200), None, None),
        next: NextState::Delivered,
    };
    assert_eq!(
        store.complete(c).await.expect("complete"),
        Completed::StaleLease
    );
    store
        .release(Uuid::now_v7(), LeaseToken::new())
        .await
        .expect("release of an unknown id");
}

pub async fn concurrent_enqueues_are_claimed_exactly_once(store: Arc<dyn DeliveryStore>) {
    const EVENTS: usize = 500;
    const TARGETS: [&str; 3] = ["x", "y", "z"];
    let mut tasks = Vec::new();
    let mut expected = HashSet::new();
    for i in 0..EVENTS {
        let ev = event(
            "s",
            T0 + (i % 7) as i64,
            format!("{{\"n\":{i}}}").as_bytes(),
            &TARGETS,
        );
        expected.extend(ev.deliveries.iter().map(|d| d.id));
        let store = store.clone();
        tasks.push(tokio::spawn(async move { store.enqueue(ev).await }));
    }
    for t in tasks {
        t.await.expect("task").expect("enqueue");
    }
    // Several claimers per target, racing.
    let mut claimers = Vec::new();
    for target in TARGETS {
        for _ in 0..4 {
            let store = store.clone();
            claimers.push(tokio::spawn(async move {
                let mut got = Vec::new();
                loop {
                    let batch = store
                        .claim_due(target, T0 + 10, 7)
                        .await
                        .expect("claim_due");
                    if batch.is_empty() {
                        return got;
                    }
                    got.extend(batch.into_iter().map(|c| c.delivery_id));
                }
            }));
        }
    }
    let mut seen = HashSet::new();
    for c in claimers {
        for id in c.await.expect("claimer") {
            assert!(seen.insert(id), "delivery {id} claimed twice");
        }
    }
    assert_eq!(seen, expected);
}
