//! Conformance: ordered targets (DESIGN.md section 6, `ordering.key`): one
//! delivery of a key at a time, in acceptance order; a head that ends hands
//! its key on; the ordering a store is told applies to what is not yet
//! attempted.

use std::sync::Arc;

use bytes::Bytes;
use uuid::Uuid;

use super::{LEASE_MS, T0, attempt, claim, detail, done, enqueue, ids};
use crate::queue::{
    Claim, DeadReason, DeliveryId, DeliveryState, DeliveryStore, NewDelivery, NewEvent, NextState,
    OrderKey, ReplayResult,
};

/// The payload path the cases order by.
fn by_k() -> Option<Vec<String>> {
    Some(vec!["k".to_owned()])
}

/// An event for `target` whose `k` is `key` (absent with `None`), keyed as
/// ingress keys it: the key read at path `k`.
fn keyed(at: i64, key: Option<&str>, target: &str) -> NewEvent {
    let body = match key {
        Some(k) => serde_json::json!({ "k": k, "n": Uuid::now_v7().to_string() }),
        None => serde_json::json!({ "n": Uuid::now_v7().to_string() }),
    };
    let value: serde_json::Value = body.clone();
    NewEvent {
        id: Uuid::now_v7(),
        source: "s".to_owned(),
        received_at_ms: at,
        body: Bytes::from(body.to_string()),
        deliveries: vec![NewDelivery {
            id: Uuid::now_v7(),
            target: target.to_owned(),
            route: "r".to_owned(),
            order: Some(OrderKey {
                path: "k".to_owned(),
                value: crate::rules::lane_key(&value, &["k"]),
            }),
        }],
        dedupe: None,
        limits: None,
    }
}

fn id(ev: &NewEvent) -> DeliveryId {
    ev.deliveries[0].id
}

/// Record one attempt answered `status` on `claim`, moving it to `next`.
async fn finish(store: &dyn DeliveryStore, claim: &Claim, at: i64, status: u16, next: NextState) {
    store
        .complete(done(claim, attempt(at, Some(status), None, None), next))
        .await
        .expect("complete");
}

async fn order_by_k(store: &dyn DeliveryStore, target: &str) {
    let change = store
        .set_ordering(target, by_k())
        .await
        .expect("set_ordering");
    assert!(!change.unchanged, "a new ordering is a change");
}

pub async fn ordered_keys_go_one_at_a_time_in_acceptance_order(store: Arc<dyn DeliveryStore>) {
    order_by_k(&*store, "t").await;
    let a1 = keyed(T0, Some("a"), "t");
    let a2 = keyed(T0 + 1, Some("a"), "t");
    let b1 = keyed(T0 + 2, Some("b"), "t");
    let a3 = keyed(T0 + 3, Some("a"), "t");
    let n1 = keyed(T0 + 4, None, "t");
    let n2 = keyed(T0 + 5, None, "t");
    for ev in [&a1, &a2, &b1, &a3, &n1, &n2] {
        enqueue(&*store, ev).await;
    }
    // Each key's head, and only those.
    let heads = claim(&*store, "t", T0 + 10, 10).await;
    assert_eq!(ids(&heads), vec![id(&a1), id(&b1), id(&n1)]);
    assert!(claim(&*store, "t", T0 + 10, 10).await.is_empty());

    // What waits, and behind whom.
    let waiting = detail(&*store, id(&a2)).await;
    assert_eq!(waiting.record.state, DeliveryState::Pending);
    assert_eq!(waiting.record.next_attempt_at_ms, None);
    assert_eq!(waiting.order_key.as_deref(), Some("\"a\""));
    assert_eq!(waiting.waiting_for, Some(id(&a1)));
    assert_eq!(detail(&*store, id(&n2)).await.waiting_for, Some(id(&n1)));
    let blocked = store.blocked_keys("t", 10).await.expect("blocked_keys");
    assert_eq!(blocked.path.as_deref(), Some("k"));
    assert_eq!(blocked.blocked, 2, "a and the no-key lane: {blocked:?}");
    assert_eq!(blocked.keys[0].head, id(&a1));
    assert_eq!(blocked.keys[0].waiting, 2);
    assert_eq!(blocked.keys[1].key, crate::rules::NO_KEY);
    // The count alone, as the gauge reads it.
    let count = store.blocked_keys("t", 0).await.expect("blocked_keys");
    assert_eq!((count.blocked, count.keys.len()), (2, 0));

    // A retrying head holds its key back, and only its key.
    let by_id = |id: DeliveryId| heads.iter().find(|c| c.delivery_id == id).cloned();
    let a1_claim = by_id(id(&a1)).expect("a1 claimed");
    finish(
        &*store,
        &a1_claim,
        T0 + 20,
        503,
        NextState::RetryAt(T0 + 100),
    )
    .await;
    let b1_claim = by_id(id(&b1)).expect("b1 claimed");
    finish(&*store, &b1_claim, T0 + 20, 200, NextState::Delivered).await;
    assert!(claim(&*store, "t", T0 + 50, 10).await.is_empty());
    assert_eq!(store.next_due("t").await.expect("next_due"), Some(T0 + 100));
    let again = claim(&*store, "t", T0 + 100, 10).await;
    assert_eq!(ids(&again), vec![id(&a1)]);
    finish(&*store, &again[0], T0 + 110, 200, NextState::Delivered).await;
    // a2 is the head now, due at its acceptance time.
    let next = claim(&*store, "t", T0 + 120, 10).await;
    assert_eq!(ids(&next), vec![id(&a2)]);

    // A dead head releases its key too.
    let n1_claim = by_id(id(&n1)).expect("n1 claimed");
    finish(
        &*store,
        &n1_claim,
        T0 + 130,
        410,
        NextState::Dead(DeadReason::PermanentStatus),
    )
    .await;
    assert_eq!(ids(&claim(&*store, "t", T0 + 140, 10).await), vec![id(&n2)]);
    let blocked = store.blocked_keys("t", 10).await.expect("blocked_keys");
    assert_eq!(blocked.blocked, 1, "only a3 behind a2: {blocked:?}");
}

pub async fn gaining_ordering_holds_what_is_not_attempted_and_losing_it_lets_go(
    store: Arc<dyn DeliveryStore>,
) {
    // Stored unordered: no key, nothing held.
    let evs: Vec<NewEvent> = (0..4)
        .map(|i| {
            let mut ev = keyed(T0 + i, Some("a"), "t");
            ev.deliveries[0].order = None;
            ev
        })
        .collect();
    for ev in &evs {
        enqueue(&*store, ev).await;
    }
    let first = claim(&*store, "t", T0 + 10, 1).await;
    assert_eq!(ids(&first), vec![id(&evs[0])]);

    // Gaining it: the three not attempted wait behind the one in flight.
    let change = store.set_ordering("t", by_k()).await.expect("gain");
    assert_eq!((change.held, change.lanes), (3, 1), "{change:?}");
    assert!(claim(&*store, "t", T0 + 20, 10).await.is_empty());
    let same = store.set_ordering("t", by_k()).await.expect("again");
    assert!(same.unchanged);
    finish(&*store, &first[0], T0 + 30, 200, NextState::Delivered).await;
    let second = claim(&*store, "t", T0 + 40, 10).await;
    assert_eq!(ids(&second), vec![id(&evs[1])]);

    // Losing it: the two still waiting go at once, in acceptance order,
    // though the head is in flight.
    let change = store.set_ordering("t", None).await.expect("lose");
    assert_eq!(change.released, 2, "{change:?}");
    let rest = claim(&*store, "t", T0 + 50, 10).await;
    assert_eq!(ids(&rest), vec![id(&evs[2]), id(&evs[3])]);
    assert_eq!(
        store.blocked_keys("t", 10).await.expect("blocked").path,
        None
    );

    // A key ingress read at another path than the store's is read again.
    order_by_k(&*store, "u").await;
    let mut x1 = keyed(T0 + 60, Some("x"), "u");
    let mut x2 = keyed(T0 + 61, Some("x"), "u");
    for (ev, stale) in [(&mut x1, "\"one\""), (&mut x2, "\"two\"")] {
        ev.deliveries[0].order = Some(OrderKey {
            path: "other".to_owned(),
            value: stale.to_owned(),
        });
    }
    enqueue(&*store, &x1).await;
    enqueue(&*store, &x2).await;
    assert_eq!(ids(&claim(&*store, "u", T0 + 70, 10).await), vec![id(&x1)]);
    assert_eq!(detail(&*store, id(&x2)).await.waiting_for, Some(id(&x1)));
}

pub async fn a_replayed_dead_head_goes_out_of_order(store: Arc<dyn DeliveryStore>) {
    order_by_k(&*store, "t").await;
    let evs: Vec<NewEvent> = (0..3).map(|i| keyed(T0 + i, Some("a"), "t")).collect();
    for ev in &evs {
        enqueue(&*store, ev).await;
    }
    let head = claim(&*store, "t", T0 + 10, 10).await.remove(0);
    finish(
        &*store,
        &head,
        T0 + 20,
        404,
        NextState::Dead(DeadReason::PermanentStatus),
    )
    .await;
    let second = claim(&*store, "t", T0 + 30, 10).await;
    assert_eq!(ids(&second), vec![id(&evs[1])]);
    let replayed = store.replay(id(&evs[0]), T0 + 40).await.expect("replay");
    assert!(matches!(replayed, ReplayResult::Replayed(_)));
    // Sent at once, beside the key's head in flight: out of order, as asked.
    let out_of_order = claim(&*store, "t", T0 + 50, 10).await;
    assert_eq!(ids(&out_of_order), vec![id(&evs[0])]);
    finish(
        &*store,
        &out_of_order[0],
        T0 + 60,
        200,
        NextState::Delivered,
    )
    .await;
    // Its end hands nothing on: the third still waits for the second.
    assert!(claim(&*store, "t", T0 + 70, 10).await.is_empty());
    finish(&*store, &second[0], T0 + 80, 200, NextState::Delivered).await;
    assert_eq!(
        ids(&claim(&*store, "t", T0 + 90, 10).await),
        vec![id(&evs[2])]
    );
}

pub async fn a_removed_ordered_target_dead_letters_its_held_deliveries(
    store: Arc<dyn DeliveryStore>,
) {
    order_by_k(&*store, "gone").await;
    let evs: Vec<NewEvent> = (0..3).map(|i| keyed(T0 + i, Some("a"), "gone")).collect();
    for ev in &evs {
        enqueue(&*store, ev).await;
    }
    let n = store
        .dead_letter_target("gone", DeadReason::TargetRemoved, T0 + 10)
        .await
        .expect("sweep");
    assert_eq!(n, 3);
    for ev in &evs {
        assert_eq!(
            detail(&*store, id(ev)).await.record.state,
            DeliveryState::Dead
        );
    }
    let blocked = store.blocked_keys("gone", 10).await.expect("blocked");
    assert_eq!((blocked.path, blocked.blocked), (None, 0));
    // Back, and ordered again: a fresh lane.
    order_by_k(&*store, "gone").await;
    let again = keyed(T0 + 20, Some("a"), "gone");
    enqueue(&*store, &again).await;
    let c = store
        .claim_due("gone", T0 + 30, 10, LEASE_MS)
        .await
        .expect("claim");
    assert_eq!(ids(&c), vec![id(&again)]);
}
