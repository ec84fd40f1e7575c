//! Under pressure: duplicates, a full queue, retention, and a million
//! deliveries waiting behind a dead target.

use std::sync::Arc;
use std::time::Duration;

use hookgate::clock::ManualClock;

use crate::common::sink::Sink;
use crate::common::{self, Gateway, event, eventually, post_signed};

const T0: i64 = 1_800_000_000_000;

fn config(dir: &std::path::Path, url: &str, extra: &str) -> String {
    common::config_yaml(
        dir,
        &format!(
            "{extra}targets:\n  crm:\n    kind: http\n    url: {url}\n    retry: {{ schedule: [1h] }}\nroutes:\n  - name: all\n    match: {{}}\n    targets: [crm]\n"
        ),
    )
}

#[tokio::test]
async fn a_repeated_event_is_accepted_once() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    let clock = Arc::new(ManualClock::new(T0));
    let yaml = config(dir.path(), &sink.url("/"), "dedupe:\n  window: 10m\n");
    let gw = Gateway::start_with(dir.path(), &yaml, clock.clone(), "127.0.0.1:0").await;
    let url = gw.url("/webhooks/outrival");
    let body = event("status-changed", "VOICE", "ended", "dup");

    // Ten copies at once: one is stored, the others wait for its commit and
    // are answered 200 with its id.
    let sends = (0..10).map(|_| {
        let (url, body) = (url.clone(), body.clone());
        tokio::spawn(async move {
            let r = post_signed(&url, &body).await;
            let status = r.status().as_u16();
            (status, r.json::<serde_json::Value>().await.unwrap())
        })
    });
    let mut answers = Vec::new();
    for s in sends {
        answers.push(s.await.unwrap());
    }
    let accepted: Vec<_> = answers.iter().filter(|(s, _)| *s == 202).collect();
    assert_eq!(accepted.len(), 1, "{answers:?}");
    let first = accepted[0].1["id"].clone();
    for (status, v) in answers.iter().filter(|(s, _)| *s != 202) {
        assert_eq!(*status, 200);
        assert_eq!(v, &serde_json::json!({"id": first, "duplicate": true}));
    }
    eventually(Duration::from_secs(5), "delivered", || async {
        sink.count() == 1
    })
    .await;

    // Still inside the window: a duplicate; after it: a new event.
    clock.advance(Duration::from_secs(9 * 60));
    assert_eq!(post_signed(&url, &body).await.status(), 200);
    clock.advance(Duration::from_secs(61));
    assert_eq!(post_signed(&url, &body).await.status(), 202);
    eventually(Duration::from_secs(5), "the new one delivered", || async {
        sink.count() == 2
    })
    .await;
    let metrics = gw.metrics_text().await;
    assert!(metrics.contains("outcome=\"duplicate\""), "{metrics}");
    gw.stop().await;
}

#[tokio::test]
async fn window_zero_turns_dedupe_off() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    let yaml = config(dir.path(), &sink.url("/"), "dedupe:\n  window: 0s\n");
    let gw = Gateway::start(dir.path(), &yaml).await;
    let body = event("status-changed", "VOICE", "ended", "same");
    for _ in 0..3 {
        assert_eq!(
            post_signed(&gw.url("/webhooks/outrival"), &body)
                .await
                .status(),
            202
        );
    }
    eventually(Duration::from_secs(5), "three deliveries", || async {
        sink.count() == 3
    })
    .await;
    gw.stop().await;
}

#[tokio::test]
async fn a_full_queue_answers_503_and_acknowledges_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let refused = common::RefusedPort::reserve();
    let down = format!("http://127.0.0.1:{}/", refused.port);
    let yaml = config(dir.path(), &down, "").replace("queue:\n", "queue:\n  max_pending: 3\n");
    let gw = Gateway::start(dir.path(), &yaml).await;
    let url = gw.url("/webhooks/outrival");
    let mut first = None;
    for i in 0..3 {
        let body = event("status-changed", "VOICE", "ended", &format!("c{i}"));
        let r = post_signed(&url, &body).await;
        assert_eq!(r.status(), 202);
        if i == 0 {
            first = Some((
                body,
                r.json::<serde_json::Value>().await.unwrap()["id"].clone(),
            ));
        }
    }
    let r = post_signed(&url, &event("status-changed", "VOICE", "ended", "c3")).await;
    assert_eq!(r.status(), 503);
    assert!(r.headers().get("retry-after").is_some());
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"], "queue_full");
    // Dedupe comes before 503: a duplicate of a stored event is still recognised.
    let (body, id) = first.unwrap();
    let r = post_signed(&url, &body).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["id"], id);
    // Nothing of the refused event was stored.
    let (_, page) = gw.admin_get("/admin/deliveries").await;
    assert_eq!(page["deliveries"].as_array().unwrap().len(), 3);
    gw.stop().await;
}

/// `hookgate_queue_depth{target,state}` follows deliveries through their
/// states (target names are this test's own: the registry is process-wide).
#[tokio::test]
async fn queue_depth_is_reported_per_target_and_state() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    sink.always(crate::common::sink::Answer::status(400));
    let refused = common::RefusedPort::reserve();
    let yaml = common::config_yaml(
        dir.path(),
        &format!(
            "targets:\n  depth-refused:\n    kind: http\n    url: {}\n  depth-down:\n    kind: http\n    url: http://127.0.0.1:{}/\n    retry: {{ schedule: [1h] }}\nroutes:\n  - name: all\n    match: {{}}\n    targets: [depth-refused, depth-down]\n",
            sink.url("/hook"),
            refused.port
        ),
    );
    let gw = Gateway::start(dir.path(), &yaml).await;
    for i in 0..3 {
        let body = event("status-changed", "VOICE", "ended", &format!("depth-{i}"));
        assert_eq!(
            post_signed(&gw.url("/webhooks/outrival"), &body)
                .await
                .status(),
            202
        );
    }
    let series = |target: &str, state: &str| {
        format!("hookgate_queue_depth{{target=\"{target}\",state=\"{state}\"}}")
    };
    // One target refuses them (400, permanent: dead-lettered); the other is
    // down (retried in an hour).
    eventually(
        Duration::from_secs(5),
        "3 dead letters, 3 retrying",
        || async {
            gw.metric(&series("depth-refused", "dead")).await.as_deref() == Some("3")
                && gw
                    .metric(&series("depth-down", "retrying"))
                    .await
                    .as_deref()
                    == Some("3")
        },
    )
    .await;
    assert_eq!(
        gw.metric(&series("depth-refused", "pending"))
            .await
            .as_deref(),
        Some("0")
    );
    assert_eq!(
        gw.metric(&series("depth-down", "in_flight"))
            .await
            .as_deref(),
        Some("0")
    );
    // A purge takes them out of the count.
    let (status, _) = gw
        .admin_send(
            reqwest::Method::DELETE,
            "/admin/dead-letters?target=depth-refused",
        )
        .await;
    assert_eq!(status, 200);
    eventually(Duration::from_secs(5), "no dead letters", || async {
        gw.metric(&series("depth-refused", "dead")).await.as_deref() == Some("0")
    })
    .await;
    gw.stop().await;
    sink.stop().await;
}

#[tokio::test]
async fn max_bytes_limits_the_stored_bodies_of_unfinished_deliveries() {
    let dir = tempfile::tempdir().unwrap();
    let refused = common::RefusedPort::reserve();
    let down = format!("http://127.0.0.1:{}/", refused.port);
    let yaml = config(dir.path(), &down, "").replace("queue:\n", "queue:\n  max_bytes: 1KiB\n");
    let gw = Gateway::start(dir.path(), &yaml).await;
    let url = gw.url("/webhooks/outrival");
    let big = format!(
        "{{\"event\":\"status-changed\",\"type\":\"VOICE\",\"companionId\":\"c\",\"data\":{{\"messages\":[],\"startedAt\":\"t\",\"pad\":\"{}\"}}}}",
        "x".repeat(600)
    );
    assert_eq!(post_signed(&url, &big).await.status(), 202);
    assert_eq!(
        post_signed(&url, &big.replace("\"c\"", "\"d\""))
            .await
            .status(),
        202
    );
    let r = post_signed(&url, &big.replace("\"c\"", "\"e\"")).await;
    assert_eq!(r.status(), 503);
    gw.stop().await;
}

#[tokio::test]
async fn delivered_records_are_pruned_after_retention_and_dead_letters_stay() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    let clock = Arc::new(ManualClock::new(T0));
    let yaml =
        config(dir.path(), &sink.url("/"), "").replace("queue:\n", "queue:\n  retention: 1h\n");
    let gw = Gateway::start_with(dir.path(), &yaml, clock.clone(), "127.0.0.1:0").await;
    let url = gw.url("/webhooks/outrival");
    let ok: serde_json::Value = post_signed(&url, &event("status-changed", "VOICE", "ended", "ok"))
        .await
        .json()
        .await
        .unwrap();
    eventually(Duration::from_secs(5), "delivered", || async {
        sink.count() == 1
    })
    .await;
    sink.always(crate::common::sink::Answer::status(400));
    let dead: serde_json::Value =
        post_signed(&url, &event("status-changed", "VOICE", "ended", "dead"))
            .await
            .json()
            .await
            .unwrap();
    let ok_id = ok["deliveries"][0]["id"].as_str().unwrap().to_owned();
    let dead_id = dead["deliveries"][0]["id"].as_str().unwrap().to_owned();
    gw.delivery_reaches(&dead_id, "state", "dead").await;
    clock.advance(Duration::from_secs(30 * 60));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        gw.admin_get(&format!("/admin/deliveries/{ok_id}")).await.0,
        200,
        "kept within retention"
    );
    clock.advance(Duration::from_secs(31 * 60));
    eventually(Duration::from_secs(5), "pruned after retention", || async {
        gw.admin_get(&format!("/admin/deliveries/{ok_id}")).await.0 == 404
    })
    .await;
    assert_eq!(
        gw.admin_get(&format!("/admin/deliveries/{dead_id}"))
            .await
            .0,
        200,
        "dead letters stay"
    );
    gw.stop().await;
}

/// `chattr +i` makes a file unwritable even for root (the tests run as root,
/// so permissions would not do). False when the filesystem does not support it.
fn set_immutable(path: &std::path::Path, on: bool) -> bool {
    std::process::Command::new("chattr")
        .arg(if on { "+i" } else { "-i" })
        .arg(path)
        .status()
        .is_ok_and(|s| s.success())
}

#[tokio::test]
async fn an_unwritable_queue_answers_503_and_readyz_fails() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    let gw = Gateway::start(dir.path(), &config(dir.path(), &sink.url("/"), "")).await;
    let url = gw.url("/webhooks/outrival");
    assert_eq!(
        post_signed(&url, &event("status-changed", "VOICE", "ended", "a"))
            .await
            .status(),
        202
    );
    let wal = dir.path().join("queue.db-wal");
    if !set_immutable(&wal, true) {
        eprintln!("skipped: chattr +i is not supported on this filesystem");
        gw.stop().await;
        return;
    }
    let r = post_signed(&url, &event("status-changed", "VOICE", "ended", "b")).await;
    let status = r.status().as_u16();
    let retry_after = r.headers().get("retry-after").is_some();
    let v: serde_json::Value = r.json().await.unwrap_or_default();
    let ready = common::get_status(&gw.admin_url("/readyz")).await;
    set_immutable(&wal, false);
    assert_eq!(
        (status, v["error"].as_str()),
        (503, Some("queue_unavailable")),
        "{v}"
    );
    assert!(retry_after);
    assert_eq!(ready, 503);
    // Writable again: accepted again.
    eventually(Duration::from_secs(5), "accepting again", || async {
        post_signed(
            &url,
            &event(
                "status-changed",
                "VOICE",
                "ended",
                &uuid::Uuid::now_v7().to_string(),
            ),
        )
        .await
        .status()
            == 202
    })
    .await;
    gw.stop().await;
}

#[tokio::test]
async fn an_outcome_that_cannot_be_recorded_yet_is_recorded_when_the_queue_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    // Slow answers: the attempt stays in flight long enough to make the queue
    // unwritable under it, on a loaded machine too.
    sink.always(crate::common::sink::Answer::status(200).with_delay(Duration::from_millis(1_500)));
    let gw = Gateway::start(dir.path(), &config(dir.path(), &sink.url("/"), "")).await;
    let v: serde_json::Value = post_signed(
        &gw.url("/webhooks/outrival"),
        &event("status-changed", "VOICE", "ended", "late"),
    )
    .await
    .json()
    .await
    .unwrap();
    let id = v["deliveries"][0]["id"].as_str().unwrap().to_owned();
    // Wait until the attempt is in flight (its claim is written), then make
    // the queue unwritable before the answer comes back. (Made unwritable
    // earlier, the claim itself would fail, and nothing would be sent.)
    eventually(
        Duration::from_secs(5),
        "the attempt reached the sink",
        || async { sink.count() == 1 },
    )
    .await;
    let wal = dir.path().join("queue.db-wal");
    if !set_immutable(&wal, true) {
        eprintln!("skipped: chattr +i is not supported on this filesystem");
        gw.stop().await;
        return;
    }
    // The answer arrives while the queue is unwritable; recording it fails and is retried.
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    set_immutable(&wal, false);
    eventually(Duration::from_secs(10), "the outcome recorded", || async {
        gw.admin_get(&format!("/admin/deliveries/{id}")).await.1["state"] == "delivered"
    })
    .await;
    assert_eq!(sink.count(), 1, "recorded, not sent again");
    gw.stop().await;
}
