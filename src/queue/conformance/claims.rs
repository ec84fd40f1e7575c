//! Conformance: which deliveries a claim hands out, in what order, and when.

use std::sync::Arc;

use super::*;
use crate::queue::{Completed, DeliveryStore};

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
        Some(T0 + LEASE_MS),
        "in_flight is due again only when its lease expires"
    );
}

pub async fn an_expired_lease_is_claimed_again_and_its_holder_ignored(
    store: Arc<dyn DeliveryStore>,
) {
    let ev = event("s", T0, b"x", &["t"]);
    enqueue(&*store, &ev).await;
    let lease = |now, ms| store.claim_due("t", now, 10, ms);
    let first = lease(T0, 1000).await.expect("claim_due");
    assert_eq!(ids(&first), [ev.deliveries[0].id]);
    assert!(
        lease(T0 + 999, 1000).await.expect("claim_due").is_empty(),
        "a live lease is not taken"
    );
    assert_eq!(
        store.next_due("t").await.expect("next_due"),
        Some(T0 + 1000)
    );

    // The holder died: the lease expires and another claim takes it, as a
    // first attempt still (the cut-off attempt is not counted).
    let second = lease(T0 + 1000, 1000).await.expect("claim_due");
    assert_eq!(ids(&second), ids(&first));
    assert_ne!(second[0].lease, first[0].lease);
    assert_eq!(second[0].attempts_made, 0);
    let late = done(
        &first[0],
        attempt(T0 + 1500, Some(200), None, None),
        NextState::Delivered,
    );
    assert_eq!(
        store.complete(late).await.expect("complete"),
        Completed::StaleLease,
        "the old holder's completion is ignored"
    );
    let retry = NextState::RetryAt(T0 + 5000);
    let outcome = done(&second[0], attempt(T0 + 1100, Some(503), None, None), retry);
    assert_eq!(
        store.complete(outcome).await.expect("complete"),
        Completed::Recorded
    );

    // A retrying delivery whose lease expires goes back to retrying, its
    // attempt count and due time kept.
    let third = lease(T0 + 5000, 1000).await.expect("claim_due");
    assert_eq!(third[0].attempts_made, 1);
    let fourth = lease(T0 + 6000, 1000).await.expect("claim_due");
    assert_eq!(ids(&fourth), ids(&third));
    assert_eq!(fourth[0].attempts_made, 1);
    let d = detail(&*store, ev.deliveries[0].id).await;
    assert_eq!(d.record.attempt_count, 1);
    assert_eq!(d.record.state, crate::queue::DeliveryState::InFlight);
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
