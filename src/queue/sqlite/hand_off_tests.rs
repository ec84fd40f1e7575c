//! The SQLite store's direct hand-off (`queue::hand_off`), through the
//! store's own API: what is handed off, what waits, and that a handed-off
//! delivery is a leased row like any claimed one.

use super::SqliteStore;
use crate::queue::conformance::event;
use crate::queue::{
    AttemptRecord, Completed, Completion, DeliveryQueue, DeliveryRecords, DeliveryState, Enqueued,
    HandOffInbox, NextState,
};

fn store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("q.db")).unwrap();
    (dir, store)
}

async fn state_of(store: &SqliteStore, id: uuid::Uuid) -> DeliveryState {
    store.delivery(id).await.unwrap().unwrap().record.state
}

fn inbox(store: &SqliteStore, target: &str) -> HandOffInbox {
    store.hand_off(target).expect("sqlite hands off")
}

#[tokio::test]
async fn a_delivery_is_stored_leased_and_handed_to_the_worker_that_offered() {
    let (_dir, store) = store();
    let mut inbox = inbox(&store, "a");
    inbox.offer(1, 30_000);
    let ev = event("s", 1_000, b"{\"n\":1}", &["a", "b"]);
    let (event_id, to_a, to_b) = (ev.id, ev.deliveries[0].id, ev.deliveries[1].id);
    assert_eq!(store.enqueue(ev).await.unwrap(), Enqueued::Stored);

    let claim = inbox
        .try_recv()
        .expect("handed off once the batch committed");
    assert_eq!(claim.delivery_id, to_a);
    assert_eq!(claim.event_id, event_id);
    assert_eq!((claim.attempts_made, claim.attempts_in_budget), (0, 0));
    assert_eq!(&claim.body[..], b"{\"n\":1}");
    assert_eq!(claim.route, "route-a");
    assert_eq!(state_of(&store, to_a).await, DeliveryState::InFlight);
    // Only `a` offered: `b` waits to be claimed.
    assert_eq!(state_of(&store, to_b).await, DeliveryState::Pending);
    // Leased: no claim gets it while the lease runs ...
    let claimed = store.claim_due("a", 2_000, 10, 30_000).await.unwrap();
    assert!(claimed.is_empty());
    // ... and its completion is recorded like any claim's.
    let done = store
        .complete(Completion {
            delivery_id: to_a,
            lease: claim.lease,
            attempt: AttemptRecord {
                at_ms: 2_000,
                duration_ms: 3,
                status: Some(200),
                error: None,
                response_excerpt: None,
            },
            next: NextState::Delivered,
        })
        .await
        .unwrap();
    assert_eq!(done, Completed::Recorded);
    assert_eq!(state_of(&store, to_a).await, DeliveryState::Delivered);
}

#[tokio::test]
async fn one_credit_one_hand_off_and_the_rest_wait_in_order() {
    let (_dir, store) = store();
    let mut inbox = inbox(&store, "a");
    inbox.offer(1, 30_000);
    let first = event("s", 1, b"{}", &["a"]);
    let second = event("s", 2, b"{}", &["a"]);
    let third = event("s", 3, b"{}", &["a"]);
    let ids = [&first, &second, &third].map(|e| e.deliveries[0].id);
    for ev in [first, second] {
        store.enqueue(ev).await.unwrap();
    }
    assert_eq!(inbox.try_recv().map(|c| c.delivery_id), Some(ids[0]));
    assert!(inbox.try_recv().is_none(), "the credit was spent");
    // A new credit, but `second` waits: `third` must not overtake it.
    inbox.offer(1, 30_000);
    store.enqueue(third).await.unwrap();
    assert!(inbox.try_recv().is_none());
    let claimed: Vec<_> = store
        .claim_due("a", 10, 10, 30_000)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.delivery_id)
        .collect();
    assert_eq!(claimed, [ids[1], ids[2]]);
    // Nothing waits any more: the credit still offered is used.
    let fourth = event("s", 4, b"{}", &["a"]);
    let id = fourth.deliveries[0].id;
    store.enqueue(fourth).await.unwrap();
    assert_eq!(inbox.try_recv().map(|c| c.delivery_id), Some(id));
}

#[tokio::test]
async fn withdrawn_or_closed_inboxes_take_nothing_and_releases_restore_the_claim_order() {
    let (_dir, store) = store();
    let mut inbox = inbox(&store, "a");
    inbox.offer(2, 30_000);
    assert_eq!(inbox.withdraw(), 2);
    let ev = event("s", 1, b"{}", &["a"]);
    let id = ev.deliveries[0].id;
    store.enqueue(ev).await.unwrap();
    assert!(inbox.try_recv().is_none());
    assert_eq!(state_of(&store, id).await, DeliveryState::Pending);
    let claim = store.claim_due("a", 5, 1, 30_000).await.unwrap().remove(0);
    store.release(claim.delivery_id, claim.lease).await.unwrap();

    // A handed-off delivery given back (the worker could not start it)
    // waits like a released claim, keeping its due time.
    inbox.offer(1, 30_000);
    let later = event("s", 7, b"{}", &["a"]);
    let later_id = later.deliveries[0].id;
    store.enqueue(later).await.unwrap();
    assert!(
        inbox.try_recv().is_none(),
        "the released delivery waits: no hand-off past it"
    );
    let claimed = store.claim_due("a", 10, 10, 30_000).await.unwrap();
    assert_eq!(
        claimed.iter().map(|c| c.delivery_id).collect::<Vec<_>>(),
        [id, later_id]
    );
    for c in claimed {
        store.release(c.delivery_id, c.lease).await.unwrap();
    }
    let _ = inbox.close();
    assert!(inbox.try_recv().is_none());
}

#[tokio::test]
async fn a_dropped_inbox_gets_nothing_and_its_leases_come_back() {
    let (_dir, store) = store();
    let inbox = inbox(&store, "a");
    inbox.offer(1, 30_000);
    drop(inbox);
    let ev = event("s", 1, b"{}", &["a"]);
    let id = ev.deliveries[0].id;
    store.enqueue(ev).await.unwrap();
    assert_eq!(state_of(&store, id).await, DeliveryState::Pending);
}

#[tokio::test]
async fn depth_counts_a_handed_off_delivery_in_flight() {
    let (_dir, store) = store();
    let inbox = inbox(&store, "a");
    inbox.offer(1, 30_000);
    store.enqueue(event("s", 1, b"{}", &["a"])).await.unwrap();
    store.enqueue(event("s", 2, b"{}", &["a"])).await.unwrap();
    let depth = store
        .shared
        .depth
        .lock()
        .unwrap()
        .nonzero()
        .into_iter()
        .map(|(t, s, n)| (t, s.as_str(), n))
        .collect::<Vec<_>>();
    assert_eq!(
        depth,
        [
            ("a".to_owned(), "in_flight", 1),
            ("a".to_owned(), "pending", 1)
        ]
    );
    assert_eq!(store.backlog().deliveries, 2);
}
