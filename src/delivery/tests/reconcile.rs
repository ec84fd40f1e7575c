//! `Dispatcher::reconcile`: targets added, removed, disabled and retuned,
//! and what an unchanged target keeps (STYLE.md habit 11).

use super::*;

#[tokio::test]
async fn reconcile_starts_new_targets_and_dead_letters_removed_ones() {
    let mut h = Harness::start(|d| log_target(d, "old")).await;
    let dir = h.dir.path().to_owned();
    assert_eq!(h.dispatcher.running_targets(), ["old"]);
    // `old` is disabled first: its deliveries wait, pending, not dead.
    h.reload(&format!(
        "  old: {{ kind: log, path: \"{}\", enabled: false }}\n",
        dir.join("old.log").display()
    ));
    assert!(h.dispatcher.running_targets().is_empty());
    let for_old = h.enqueue("old").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(h.record(for_old).await.state, DeliveryState::Pending);

    // As a reload will: swap, then reconcile. Ingress may route to `new` in
    // between; that delivery waits, pending, for the worker reconcile starts.
    let snapshot = Arc::new(snapshot_of(&dir, &log_target(&dir, "new")));
    h.writer.store(snapshot.clone());
    let for_new = h.enqueue("new").await;
    h.dispatcher.reconcile(&snapshot);
    assert_eq!(h.dispatcher.running_targets(), ["new"]);
    h.reaches(for_new, DeliveryState::Delivered).await;
    let dead = h.reaches(for_old, DeliveryState::Dead).await;
    assert_eq!(dead.dead_reason, Some(DeadReason::TargetRemoved));
    h.dispatcher.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_re_enabled_target_delivers_what_waited() {
    let mut h = Harness::start(|d| log_target(d, "paused")).await;
    let dir = h.dir.path().to_owned();
    h.reload(&format!(
        "  paused: {{ kind: log, path: \"{}\", enabled: false }}\n",
        dir.join("paused.log").display()
    ));
    let waited = h.enqueue("paused").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(h.record(waited).await.state, DeliveryState::Pending);
    h.reload(&log_target(&dir, "paused"));
    assert_eq!(h.dispatcher.running_targets(), ["paused"]);
    h.reaches(waited, DeliveryState::Delivered).await;
    h.dispatcher.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn an_open_breaker_stays_open_across_a_reconcile_of_another_target() {
    let port = closed_port();
    let mut h = Harness::start(|d| down_target(port, 4) + &log_target(d, "other")).await;
    let dir = h.dir.path().to_owned();
    let id = h.enqueue("down").await;
    h.reaches(id, DeliveryState::Retrying).await;
    let gate = h.dispatcher.targets["down"].shared().clone();
    assert!(opens(&gate).await, "one failure opens it");

    // Only `other` changes (it gains a rate limit).
    h.reload(&format!(
        "{}  other: {{ kind: log, path: \"{}\", rate_limit: {{ per_second: 5 }} }}\n",
        down_target(port, 4),
        dir.join("other.log").display()
    ));
    assert!(
        Arc::ptr_eq(&gate, h.dispatcher.targets["down"].shared()),
        "the unchanged target keeps its runtime"
    );
    assert!(gate.gate.lock().is_open(), "and its open circuit");
    // The retry was due after 1 s; the open circuit (1 h) holds it back.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(h.record(id).await.attempt_count, 1);
    h.dispatcher.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn retuned_breaker_settings_apply_to_the_next_failure() {
    let port = closed_port();
    let tolerant = |failures: u32| {
        down_target(port, 1).replace("failures: 1", &format!("failures: {failures}"))
    };
    let mut h = Harness::start(|_| tolerant(3)).await;
    let id = h.enqueue("down").await;
    h.reaches(id, DeliveryState::Retrying).await;
    let gate = h.dispatcher.targets["down"].shared().clone();
    // The gate hears of the failure just after the store records it; reload
    // before that and the first failure is judged by the new threshold.
    for _ in 0..40 {
        if gate.gate.lock().failures() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(gate.gate.lock().failures(), 1);
    assert!(!gate.gate.lock().is_open(), "one failure of three");
    h.reload(&tolerant(1));
    // The retry (due after 1 s) fails once more: two failures, over the new one.
    for _ in 0..100 {
        if h.record(id).await.attempt_count >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(h.record(id).await.attempt_count, 2);
    assert!(opens(&gate).await, "the new threshold opened it");
    h.dispatcher.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_retuned_concurrency_takes_effect() {
    let (port, accepted) = silent_target().await;
    let mut h = Harness::start(|_| down_target(port, 1)).await;
    for _ in 0..5 {
        h.enqueue("down").await;
    }
    let in_flight = || accepted.load(std::sync::atomic::Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(in_flight(), 1, "concurrency 1: one attempt at a time");

    h.reload(&down_target(port, 3));
    for _ in 0..100 {
        if in_flight() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(in_flight(), 3, "concurrency 3: two more attempts start");
    h.dispatcher.shutdown(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn an_unchanged_rate_limit_keeps_its_budget_across_a_reconcile() {
    let mut h =
        Harness::start(|d| limited_log_target(d, "slow", 1) + &log_target(d, "other")).await;
    let dir = h.dir.path().to_owned();
    let first = h.enqueue("slow").await;
    h.reaches(first, DeliveryState::Delivered).await;
    // `other` changes; `slow` does not, and its one cell is spent.
    h.reload(&(limited_log_target(&dir, "slow", 1) + &limited_log_target(&dir, "other", 9)));
    let second = h.enqueue("slow").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        h.record(second).await.state,
        DeliveryState::Pending,
        "the budget was not reset: the next cell is a second after the first"
    );
    h.reaches(second, DeliveryState::Delivered).await;
    h.dispatcher.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_retuned_rate_limit_takes_effect() {
    let mut h = Harness::start(|d| limited_log_target(d, "retuned", 1)).await;
    let dir = h.dir.path().to_owned();
    let started = std::time::Instant::now();
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(h.enqueue("retuned").await);
    }
    h.reaches(ids[0], DeliveryState::Delivered).await;
    h.reload(&limited_log_target(&dir, "retuned", 50));
    for id in &ids {
        h.reaches(*id, DeliveryState::Delivered).await;
    }
    // At one a second the four would take three seconds; the worker waits
    // out the cell it was already waiting for (one second), then 50/s.
    let took = started.elapsed();
    assert!(took < Duration::from_millis(2_000), "took {took:?}");
    h.dispatcher.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_shrunk_concurrency_takes_effect_as_attempts_end() {
    let (port, accepted) = silent_target().await;
    let mut h = Harness::start(|_| down_target(port, 3)).await;
    let in_flight = || accepted.load(std::sync::atomic::Ordering::SeqCst);
    for _ in 0..2 {
        h.enqueue("down").await;
    }
    for _ in 0..100 {
        if in_flight() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(in_flight(), 2);
    // Two permits are held: shrinking to 1 retires the free one now and
    // one more when an attempt ends, so nothing new starts.
    h.reload(&down_target(port, 1));
    let shared = h.dispatcher.targets["down"].shared().clone();
    for _ in 0..3 {
        h.enqueue("down").await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(in_flight(), 2, "no attempt starts above the new cap");
    assert_eq!(shared.permits.available_permits(), 0);
    h.dispatcher.shutdown(Duration::from_millis(100)).await;
}
