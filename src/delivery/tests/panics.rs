//! A task that dies says so: a panicking attempt is released and attempted
//! again, a panicking worker is restarted (STYLE.md habit 13).

use super::*;

#[tokio::test]
async fn a_panicking_attempt_is_released_and_attempted_again() {
    test_hooks::arm(Hook::Attempt, "panics-once", 1);
    let h = Harness::start(|d| log_target(d, "panics-once")).await;
    let first = h.enqueue("panics-once").await;
    let record = h.reaches(first, DeliveryState::Delivered).await;
    assert_eq!(
        record.attempt_count, 1,
        "the panicked attempt is not counted: it never sent"
    );
    let log = std::fs::read_to_string(h.dir.path().join("panics-once.log")).unwrap();
    assert_eq!(log.lines().count(), 1, "delivered once, by the second try");
    // The worker keeps serving.
    let second = h.enqueue("panics-once").await;
    h.reaches(second, DeliveryState::Delivered).await;
    h.dispatcher.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_panicking_worker_is_restarted() {
    test_hooks::arm(Hook::Worker, "worker-panics", 2);
    let h = Harness::start(|d| log_target(d, "worker-panics")).await;
    let id = h.enqueue("worker-panics").await;
    // Two panics, two restarts (a pause of one second each), then it serves.
    h.reaches(id, DeliveryState::Delivered).await;
    let again = h.enqueue("worker-panics").await;
    h.reaches(again, DeliveryState::Delivered).await;
    h.dispatcher.shutdown(Duration::from_secs(5)).await;
}
