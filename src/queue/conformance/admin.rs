//! Conformance: what the admin API and the maintenance tasks ask of a store —
//! listing, replay, bulk replay and purge, the removed-target sweep, dedupe,
//! backlog limits and counters, and retention.

use std::collections::HashSet;
use std::sync::Arc;

use super::*;
use crate::queue::{
    BULK_BATCH, Backlog, DeadReason, DedupeKey, DeliveryQuery, DeliveryState, DeliveryStore,
    Enqueued, ReplayResult, StoreError, TargetQueue,
};

/// Enqueue one event per target and make each delivery dead (permanent).
async fn dead_letters(store: &dyn DeliveryStore, target: &str, n: usize) -> Vec<DeliveryId> {
    for _ in 0..n {
        enqueue(store, &event("s", T0, b"{}", &[target])).await;
    }
    let mut ids = Vec::new();
    loop {
        let claims = claim(store, target, T0, 500).await;
        if claims.is_empty() {
            return ids;
        }
        for c in claims {
            let a = attempt(T0, Some(400), None, None);
            store
                .complete(done(&c, a, NextState::Dead(DeadReason::PermanentStatus)))
                .await
                .expect("complete");
            ids.push(c.delivery_id);
        }
    }
}

pub async fn list_filters_orders_and_pages(store: Arc<dyn DeliveryStore>) {
    let a = event("s", T0, b"{}", &["a", "b"]);
    let b = event("s", T0 + 1, b"{}", &["a"]);
    enqueue(&*store, &a).await;
    enqueue(&*store, &b).await;
    let dead = dead_letters(&*store, "c", 1).await;

    let all = store
        .list(DeliveryQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(all.deliveries.len(), 4);
    assert_eq!(all.next, None);
    // Newest first.
    assert_eq!(all.deliveries[0].id, dead[0]);
    assert_eq!(all.deliveries[1].id, b.deliveries[0].id);
    assert_eq!(all.deliveries[3].id, a.deliveries[0].id);

    let by_target = store
        .list(DeliveryQuery {
            target: Some("a".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(by_target.deliveries.len(), 2);
    let by_state = store
        .list(DeliveryQuery {
            state: Some(DeliveryState::Dead),
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(
        by_state.deliveries.iter().map(|d| d.id).collect::<Vec<_>>(),
        dead
    );
    let by_event = store
        .list(DeliveryQuery {
            event_id: Some(a.id),
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(by_event.deliveries.len(), 2);

    // Paging two at a time visits every record exactly once.
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .list(DeliveryQuery {
                limit: 2,
                cursor: cursor.clone(),
                ..Default::default()
            })
            .await
            .expect("list");
        seen.extend(page.deliveries.iter().map(|d| d.id));
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(
        seen,
        all.deliveries.iter().map(|d| d.id).collect::<Vec<_>>()
    );

    for bad in ["garbage", "12", ""] {
        let r = store
            .list(DeliveryQuery {
                cursor: Some(bad.into()),
                limit: 10,
                ..Default::default()
            })
            .await;
        assert!(
            matches!(r, Err(StoreError::InvalidCursor)),
            "{bad:?}: {r:?}"
        );
    }
}

pub async fn replay_gives_a_fresh_budget_and_keeps_counting(store: Arc<dyn DeliveryStore>) {
    let id = dead_letters(&*store, "t", 1).await[0];
    match store.replay(id, T0 + 100).await.expect("replay") {
        ReplayResult::Replayed(r) => {
            assert_eq!(r.state, DeliveryState::Pending);
            assert_eq!(r.dead_reason, None);
            assert_eq!(r.attempt_count, 1);
            assert_eq!(r.next_attempt_at_ms, Some(T0 + 100));
        }
        other => panic!("{other:?}"),
    }
    // Claimable again, with a fresh budget; the next attempt is number 2.
    let c = claim(&*store, "t", T0 + 100, 10).await.remove(0);
    assert_eq!((c.attempts_made, c.attempts_in_budget), (1, 0));
    let a = attempt(T0 + 200, Some(200), None, None);
    store
        .complete(done(&c, a, NextState::Delivered))
        .await
        .expect("complete");
    let d = detail(&*store, id).await;
    assert_eq!(
        d.attempts.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        [1, 2]
    );
    // Delivered deliveries replay too; pending ones do not.
    assert!(matches!(
        store.replay(id, T0 + 300).await,
        Ok(ReplayResult::Replayed(_))
    ));
    assert_eq!(
        store.replay(id, T0 + 300).await.expect("replay"),
        ReplayResult::NotReplayable(DeliveryState::Pending)
    );
    assert_eq!(
        store.replay(Uuid::now_v7(), T0).await.expect("replay"),
        ReplayResult::NotFound
    );
}

pub async fn bulk_replay_and_purge_work_in_batches_per_target(store: Arc<dyn DeliveryStore>) {
    let many = BULK_BATCH * 2 + 500;
    dead_letters(&*store, "big", many).await;
    let other = dead_letters(&*store, "other", 3).await;

    assert_eq!(
        store
            .replay_dead(Some("big"), T0 + 1)
            .await
            .expect("replay_dead"),
        many as u64
    );
    assert_eq!(claim(&*store, "big", T0 + 1, many + 10).await.len(), many);
    assert_eq!(
        detail(&*store, other[0]).await.record.state,
        DeliveryState::Dead
    );

    assert_eq!(store.purge_dead(Some("other")).await.expect("purge"), 3);
    assert!(store.delivery(other[0]).await.expect("delivery").is_none());
    assert_eq!(store.purge_dead(None).await.expect("purge"), 0);
}

pub async fn purge_all_removes_attempts_and_orphaned_events(store: Arc<dyn DeliveryStore>) {
    let ids = dead_letters(&*store, "t", 5).await;
    assert_eq!(store.purge_dead(None).await.expect("purge"), 5);
    for id in ids {
        assert!(store.delivery(id).await.expect("delivery").is_none());
    }
    let page = store
        .list(DeliveryQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("list");
    assert!(page.deliveries.is_empty());
}

pub async fn removed_targets_are_swept(store: Arc<dyn DeliveryStore>) {
    let ev = event("s", T0, b"{}", &["gone", "kept"]);
    enqueue(&*store, &ev).await;
    let in_flight = event("s", T0, b"{}", &["gone"]);
    enqueue(&*store, &in_flight).await;
    let work: HashSet<String> = store
        .targets_with_work()
        .await
        .expect("targets")
        .into_iter()
        .collect();
    assert_eq!(work, HashSet::from(["gone".to_owned(), "kept".to_owned()]));

    // One of "gone"'s deliveries is in flight: the sweep leaves it alone.
    let c = claim(&*store, "gone", T0, 1).await.remove(0);
    let n = store
        .dead_letter_target("gone", DeadReason::TargetRemoved, T0 + 5)
        .await
        .expect("sweep");
    assert_eq!(n, 1);
    let swept = ev.deliveries[0].id;
    let swept = if swept == c.delivery_id {
        in_flight.deliveries[0].id
    } else {
        swept
    };
    let d = detail(&*store, swept).await;
    assert_eq!(
        (d.record.state, d.record.dead_reason),
        (DeliveryState::Dead, Some(DeadReason::TargetRemoved))
    );
    assert!(d.attempts.is_empty(), "no attempt is recorded");
    assert_eq!(
        detail(&*store, c.delivery_id).await.record.state,
        DeliveryState::InFlight
    );
    assert_eq!(
        detail(&*store, ev.deliveries[1].id).await.record.state,
        DeliveryState::Pending
    );
}

fn with_key(mut ev: NewEvent, key: u8, expires: i64) -> NewEvent {
    ev.dedupe = Some(DedupeKey {
        key: [key; 32],
        expires_at_ms: expires,
    });
    ev
}

pub async fn dedupe_keys_accept_an_event_once_per_window(store: Arc<dyn DeliveryStore>) {
    let first = with_key(event("s", T0, b"{}", &["t"]), 1, T0 + 1_000);
    assert_eq!(
        store.enqueue(first.clone()).await.expect("enqueue"),
        Enqueued::Stored
    );
    let again = with_key(event("s", T0 + 500, b"{}", &["t"]), 1, T0 + 1_500);
    assert_eq!(
        store.enqueue(again.clone()).await.expect("enqueue"),
        Enqueued::Duplicate(first.id)
    );
    assert!(
        store
            .delivery(again.deliveries[0].id)
            .await
            .expect("delivery")
            .is_none()
    );
    // Another key is another event; after expiry the key is free again.
    let other = with_key(event("s", T0 + 500, b"{}", &["t"]), 2, T0 + 1_500);
    assert_eq!(
        store.enqueue(other).await.expect("enqueue"),
        Enqueued::Stored
    );
    let later = with_key(event("s", T0 + 1_000, b"{}", &["t"]), 1, T0 + 2_000);
    assert_eq!(
        store.enqueue(later.clone()).await.expect("enqueue"),
        Enqueued::Stored
    );
    let again = with_key(event("s", T0 + 1_999, b"{}", &["t"]), 1, T0 + 3_000);
    assert_eq!(
        store.enqueue(again).await.expect("enqueue"),
        Enqueued::Duplicate(later.id)
    );
    assert_eq!(claim(&*store, "t", T0 + 10_000, 10).await.len(), 3);
}

pub async fn backlog_counts_and_limits(store: Arc<dyn DeliveryStore>) {
    assert_eq!(store.backlog(), Backlog::default());
    enqueue(&*store, &event("s", T0, b"0123456789", &["a", "b"])).await;
    assert_eq!(
        store.backlog(),
        Backlog {
            deliveries: 2,
            bytes: 20
        }
    );
    let mut limited = event("s", T0, b"0123456789", &["a"]);
    limited.limits = Some(Backlog {
        deliveries: 2,
        bytes: 1_000,
    });
    assert_eq!(
        store.enqueue(limited.clone()).await.expect("enqueue"),
        Enqueued::Full
    );
    assert!(
        store
            .delivery(limited.deliveries[0].id)
            .await
            .expect("delivery")
            .is_none()
    );
    limited.limits = Some(Backlog {
        deliveries: 10,
        bytes: 20,
    });
    assert_eq!(
        store.enqueue(limited.clone()).await.expect("enqueue"),
        Enqueued::Full
    );

    // Finishing a delivery takes it out of the backlog; a retry does not.
    let c = claim(&*store, "a", T0, 1).await.remove(0);
    store
        .complete(done(
            &c,
            attempt(T0, Some(200), None, None),
            NextState::Delivered,
        ))
        .await
        .expect("complete");
    assert_eq!(
        store.backlog(),
        Backlog {
            deliveries: 1,
            bytes: 10
        }
    );
    let c = claim(&*store, "b", T0, 1).await.remove(0);
    store
        .complete(done(
            &c,
            attempt(T0, Some(503), None, None),
            NextState::RetryAt(T0 + 1),
        ))
        .await
        .expect("complete");
    assert_eq!(
        store.backlog(),
        Backlog {
            deliveries: 1,
            bytes: 10
        }
    );
    limited.limits = Some(Backlog {
        deliveries: 10,
        bytes: 1_000,
    });
    assert_eq!(
        store.enqueue(limited).await.expect("enqueue"),
        Enqueued::Stored
    );
    assert_eq!(
        store.backlog(),
        Backlog {
            deliveries: 2,
            bytes: 20
        }
    );
}

pub async fn prune_removes_old_delivered_records_only(store: Arc<dyn DeliveryStore>) {
    let old = event("s", T0, b"{}", &["t"]);
    enqueue(&*store, &old).await;
    let c = claim(&*store, "t", T0, 1).await.remove(0);
    store
        .complete(done(
            &c,
            attempt(T0, Some(200), None, None),
            NextState::Delivered,
        ))
        .await
        .expect("complete");
    let dead = dead_letters(&*store, "d", 1).await;
    let fresh = event("s", T0 + 10_000, b"{}", &["t"]);
    enqueue(&*store, &fresh).await;

    assert_eq!(
        store.prune(T0 + 1, T0 + 20_000).await.expect("prune"),
        0,
        "nothing delivered before T0+1"
    );
    assert_eq!(
        store.prune(T0 + 5_000, T0 + 20_000).await.expect("prune"),
        1
    );
    assert!(
        store
            .delivery(old.deliveries[0].id)
            .await
            .expect("delivery")
            .is_none()
    );
    assert_eq!(
        detail(&*store, dead[0]).await.record.state,
        DeliveryState::Dead
    );
    assert_eq!(
        detail(&*store, fresh.deliveries[0].id).await.record.state,
        DeliveryState::Pending
    );
}

pub async fn target_queues_count_states_and_find_the_oldest_waiting(store: Arc<dyn DeliveryStore>) {
    let names = || vec!["a".to_owned(), "b".to_owned(), "never".to_owned()];
    let empty = store.target_queues(names()).await.expect("queues");
    assert_eq!(empty, vec![TargetQueue::default(); 3]);

    enqueue(&*store, &event("s", T0, b"{}", &["a", "b"])).await;
    enqueue(&*store, &event("s", T0 + 5, b"{}", &["a"])).await;
    // An attempt in flight is still unfinished: the oldest stays T0.
    let first_a = claim(&*store, "a", T0 + 10, 1).await.remove(0);
    let b = claim(&*store, "b", T0 + 10, 1).await.remove(0);
    store
        .complete(done(
            &b,
            attempt(T0 + 10, Some(400), None, None),
            NextState::Dead(DeadReason::PermanentStatus),
        ))
        .await
        .expect("complete");
    let queues = store.target_queues(names()).await.expect("queues");
    assert_eq!(queues[0].count(DeliveryState::Pending), 1);
    assert_eq!(queues[0].count(DeliveryState::InFlight), 1);
    assert_eq!(queues[0].oldest_waiting_ms, Some(T0));
    assert_eq!(queues[1].count(DeliveryState::Dead), 1);
    assert_eq!(
        queues[1].oldest_waiting_ms, None,
        "a dead letter is finished"
    );
    assert_eq!(queues[2], TargetQueue::default());

    store
        .complete(done(
            &first_a,
            attempt(T0 + 20, Some(200), None, None),
            NextState::Delivered,
        ))
        .await
        .expect("complete");
    let queues = store.target_queues(names()).await.expect("queues");
    assert_eq!(queues[0].oldest_waiting_ms, Some(T0 + 5));
    assert_eq!(queues[0].depth, [1, 0, 0, 1, 0]);
}
