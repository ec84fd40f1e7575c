//! The worker's side of the direct hand-off: a claim handed over after the
//! worker left its idle wait is still started, and nothing is stranded.

use super::*;

/// One delivery handed off and one left `pending` in the same batch, to a
/// target of concurrency 1, over and over: each pair must be delivered (a
/// claim that arrived after the worker left its idle wait once sat in an
/// inbox nobody read, while the worker waited for the permit set aside for
/// it: the target stopped until a restart).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bursts_to_a_target_of_concurrency_one_never_stall() {
    let h = Harness::start(|d| {
        format!(
            "  t: {{ kind: log, path: \"{}\", concurrency: 1 }}\n",
            d.join("t.log").display()
        )
    })
    .await;
    for round in 0..100 {
        let (a, b) = tokio::join!(h.enqueue("t"), h.enqueue("t"));
        let mut delivered = false;
        for _ in 0..150 {
            if h.record(a).await.state == DeliveryState::Delivered
                && h.record(b).await.state == DeliveryState::Delivered
            {
                delivered = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            delivered,
            "round {round}: {:?} and {:?}",
            h.record(a).await.state,
            h.record(b).await.state
        );
    }
    h.dispatcher.shutdown(Duration::from_secs(5)).await;
}
