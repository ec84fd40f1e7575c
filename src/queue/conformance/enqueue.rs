//! Conformance: what enqueue stores, refuses and signals, alone and under load.

use std::collections::HashSet;
use std::time::Duration;

use std::sync::Arc;

use super::*;
use crate::queue::{DeliveryState, DeliveryStore};

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

pub async fn one_delivery_per_event_and_target(store: Arc<dyn DeliveryStore>) {
    let mut bad = event("s", T0, b"bad", &["t", "u"]);
    bad.deliveries.push(NewDelivery {
        id: Uuid::now_v7(),
        target: "t".into(),
        route: "other".into(),
        order: None,
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
        order: None,
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
                        .claim_due(target, T0 + 10, 7, LEASE_MS)
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
