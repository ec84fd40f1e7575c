//! Conformance: completing, retrying, dead-lettering and releasing claims.

use std::sync::Arc;

use super::*;
use crate::queue::{Completed, DeadReason, DeliveryState, DeliveryStore, LeaseToken};

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
