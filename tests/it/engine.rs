//! The delivery engine on a movable clock, and the admin deliveries API:
//! retry schedules, Retry-After, replay, purge, removed and disabled targets.

use std::sync::Arc;
use std::time::Duration;

use hookgate::clock::{Clock, ManualClock};
use reqwest::Method;
use serde_json::json;

use crate::common::sink::{Answer, Sink};
use crate::common::{self, Gateway, TARGET_SECRET, event, eventually, post_signed};

const T0: i64 = 1_800_000_000_000;

fn one_target(dir: &std::path::Path, url: &str, extra: &str) -> String {
    common::config_yaml(
        dir,
        &format!(
            "targets:\n  crm:\n    kind: http\n    url: {url}\n    secret: {TARGET_SECRET}\n{extra}routes:\n  - name: all\n    match: {{}}\n    targets: [crm]\n"
        ),
    )
}

async fn accept(gw: &Gateway) -> (String, String) {
    // A fresh companion id each time: identical bodies would be deduplicated.
    let companion = format!("c-{}", uuid::Uuid::now_v7());
    let resp = post_signed(
        &gw.url("/webhooks/outrival"),
        &event("status-changed", "VOICE", "ended", &companion),
    )
    .await;
    assert_eq!(resp.status(), 202);
    let v: serde_json::Value = resp.json().await.unwrap();
    (
        v["id"].as_str().unwrap().to_owned(),
        v["deliveries"][0]["id"].as_str().unwrap().to_owned(),
    )
}

/// A gateway on a [`ManualClock`] reading [`T0`].
async fn on_clock(dir: &std::path::Path, yaml: &str) -> (Gateway, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(T0));
    let gw = Gateway::start_with(dir, yaml, clock.clone(), "127.0.0.1:0").await;
    (gw, clock)
}

/// Wait (up to 5 s) until the sink has had `n` requests.
async fn sink_reaches(sink: &Sink, n: usize, what: &str) {
    eventually(Duration::from_secs(5), what, || async { sink.count() == n }).await;
}

/// Real time passes, and the sink must still have `n` requests.
async fn stays_at(sink: &Sink, n: usize) {
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.count(), n);
}

#[tokio::test]
async fn an_hours_long_schedule_runs_on_the_clock() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    sink.script([Answer::status(503), Answer::status(502)]);
    let yaml = one_target(
        dir.path(),
        &sink.url("/"),
        "    retry: { schedule: [5m, 2h], jitter: false }\n",
    );
    let (gw, clock) = on_clock(dir.path(), &yaml).await;
    let (_, delivery) = accept(&gw).await;

    sink_reaches(&sink, 1, "attempt 1").await;
    let (_, d) = gw.admin_get(&format!("/admin/deliveries/{delivery}")).await;
    assert_eq!(d["state"], "retrying");
    assert_eq!(
        d["next_attempt_at"],
        hookgate::clock::format_rfc3339_ms(T0 + 5 * 60_000)
    );
    stays_at(&sink, 1).await;
    clock.advance(Duration::from_secs(299));
    stays_at(&sink, 1).await;
    clock.advance(Duration::from_secs(1));
    sink_reaches(&sink, 2, "attempt 2 after 5 minutes").await;
    clock.advance(Duration::from_secs(3600));
    stays_at(&sink, 2).await;
    clock.advance(Duration::from_secs(3600));
    sink_reaches(&sink, 3, "attempt 3 after 2 hours").await;

    gw.delivery_reaches(&delivery, "state", "delivered").await;
    let (_, d) = gw.admin_get(&format!("/admin/deliveries/{delivery}")).await;
    let statuses: Vec<_> = d["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status"].clone())
        .collect();
    assert_eq!(statuses, [json!(503), json!(502), json!(200)]);
    let numbers: Vec<_> = sink
        .received()
        .iter()
        .map(|r| r.header("x-hookgate-attempt").unwrap().to_owned())
        .collect();
    assert_eq!(numbers, ["1", "2", "3"]);
    gw.stop().await;
}

#[tokio::test]
async fn retry_after_longer_than_the_backoff_is_honoured_and_capped() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    sink.script([
        Answer::status(429).with_header("retry-after", "600"),
        Answer::status(503).with_header("retry-after", "86400"),
    ]);
    let yaml = one_target(
        dir.path(),
        &sink.url("/"),
        "    retry: { schedule: [1s, 1h, 1h], jitter: false }\n",
    );
    let (gw, clock) = on_clock(dir.path(), &yaml).await;
    let (_, delivery) = accept(&gw).await;
    sink_reaches(&sink, 1, "attempt 1").await;
    clock.advance(Duration::from_secs(1));
    stays_at(&sink, 1).await;
    clock.advance(Duration::from_secs(599));
    sink_reaches(&sink, 2, "attempt 2 after Retry-After").await;
    // A day-long Retry-After is capped at the largest schedule entry (1h).
    eventually(Duration::from_secs(5), "attempt 2 recorded", || async {
        gw.admin_get(&format!("/admin/deliveries/{delivery}"))
            .await
            .1["attempt_count"]
            == 2
    })
    .await;
    let (_, d) = gw.admin_get(&format!("/admin/deliveries/{delivery}")).await;
    assert_eq!(
        d["next_attempt_at"],
        hookgate::clock::format_rfc3339_ms(clock.now_ms() + 3_600_000)
    );
    gw.stop().await;
}

#[tokio::test]
async fn dead_letters_can_be_inspected_replayed_and_purged() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    sink.always(Answer::status(400).with_body("bad payload"));
    let gw = Gateway::start(dir.path(), &one_target(dir.path(), &sink.url("/"), "")).await;
    let mut deliveries = Vec::new();
    for _ in 0..3 {
        deliveries.push(accept(&gw).await);
    }
    eventually(Duration::from_secs(5), "three dead letters", || async {
        gw.admin_get("/admin/deliveries?state=dead").await.1["deliveries"]
            .as_array()
            .is_some_and(|d| d.len() == 3)
    })
    .await;

    // List: newest first, exact shape, paging with an opaque cursor.
    let (s, page) = gw
        .admin_get("/admin/deliveries?state=dead&target=crm&limit=2")
        .await;
    assert_eq!(s, 200);
    let first = &page["deliveries"][0];
    assert_eq!(first["id"], deliveries[2].1);
    let mut keys: Vec<_> = first.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "attempt_count",
            "created_at",
            "dead_reason",
            "event_id",
            "id",
            "last_error",
            "next_attempt_at",
            "route",
            "state",
            "target",
            "updated_at"
        ]
    );
    assert_eq!(first["dead_reason"], "permanent_status");
    assert_eq!(first["route"], "all");
    let cursor = page["next"].as_str().unwrap().to_owned();
    let (_, rest) = gw
        .admin_get(&format!(
            "/admin/deliveries?state=dead&limit=2&cursor={cursor}"
        ))
        .await;
    assert_eq!(rest["deliveries"].as_array().unwrap().len(), 1);
    assert_eq!(rest["deliveries"][0]["id"], deliveries[0].1);
    assert_eq!(rest["next"], serde_json::Value::Null);
    let (s, v) = gw.admin_get("/admin/deliveries?cursor=garbage").await;
    assert_eq!((s, v["error"].as_str()), (400, Some("invalid_cursor")));
    let (s, v) = gw.admin_get("/admin/deliveries?state=lost").await;
    assert_eq!((s, v["error"].as_str()), (400, Some("invalid_request")));
    let (_, by_event) = gw
        .admin_get(&format!("/admin/deliveries?event_id={}", deliveries[1].0))
        .await;
    assert_eq!(by_event["deliveries"].as_array().unwrap().len(), 1);

    // Detail: every attempt and the event.
    let (s, d) = gw
        .admin_get(&format!("/admin/deliveries/{}", deliveries[0].1))
        .await;
    assert_eq!(s, 200);
    assert_eq!(d["attempts"][0]["n"], 1);
    assert_eq!(d["attempts"][0]["status"], 400);
    assert_eq!(d["attempts"][0]["response_excerpt"], "bad payload");
    assert!(d["attempts"][0]["duration_ms"].is_u64());
    assert!(
        d["event"]["companionId"]
            .as_str()
            .unwrap()
            .starts_with("c-")
    );
    let (s, v) = gw
        .admin_get("/admin/deliveries/01a222e5-0000-7000-8000-000000000000")
        .await;
    assert_eq!((s, v["error"].as_str()), (404, Some("not_found")));

    // Replay one: same id, attempt numbers go on.
    sink.always(Answer::status(200));
    let (s, v) = gw
        .admin_send(
            Method::POST,
            &format!("/admin/deliveries/{}/replay", deliveries[0].1),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["state"], "pending");
    sink_reaches(&sink, 4, "replayed delivery sent").await;
    let last = sink.received().pop().unwrap();
    assert_eq!(
        last.header("x-hookgate-delivery-id"),
        Some(deliveries[0].1.as_str())
    );
    assert_eq!(last.header("x-hookgate-attempt"), Some("2"));
    assert!(last.signature_valid(TARGET_SECRET, "x-signature"));
    eventually(Duration::from_secs(5), "delivered after replay", || async {
        gw.admin_get(&format!("/admin/deliveries/{}", deliveries[0].1))
            .await
            .1["state"]
            == "delivered"
    })
    .await;

    // Bulk: the rest by target; neither filter is refused.
    let (s, v) = gw
        .admin_send(Method::POST, "/admin/dead-letters/replay")
        .await;
    assert_eq!((s, v["error"].as_str()), (400, Some("invalid_request")));
    sink.always(Answer::status(410));
    let (s, v) = gw
        .admin_send(Method::POST, "/admin/dead-letters/replay?target=crm")
        .await;
    assert_eq!((s, v["replayed"].as_u64()), (200, Some(2)));
    eventually(Duration::from_secs(5), "dead again", || async {
        gw.admin_get("/admin/deliveries?state=dead").await.1["deliveries"]
            .as_array()
            .is_some_and(|d| d.len() == 2)
    })
    .await;
    // Purge: a filter is required; then everything dead is gone.
    let (s, v) = gw.admin_send(Method::DELETE, "/admin/dead-letters").await;
    assert_eq!((s, v["error"].as_str()), (400, Some("invalid_request")));
    let (s, v) = gw
        .admin_send(Method::DELETE, "/admin/dead-letters?all=true")
        .await;
    assert_eq!((s, v["purged"].as_u64()), (200, Some(2)));
    let (s, _) = gw
        .admin_get(&format!("/admin/deliveries/{}", deliveries[1].1))
        .await;
    assert_eq!(s, 404);
    gw.stop().await;
}

#[tokio::test]
async fn only_dead_or_delivered_deliveries_replay() {
    let dir = tempfile::tempdir().unwrap();
    let refused = common::RefusedPort::reserve();
    let down = format!("http://127.0.0.1:{}/", refused.port);
    let yaml = one_target(dir.path(), &down, "    retry: { schedule: [1h] }\n");
    let (gw, _clock) = on_clock(dir.path(), &yaml).await;
    let (_, delivery) = accept(&gw).await;
    gw.delivery_reaches(&delivery, "state", "retrying").await;
    let (s, v) = gw
        .admin_send(
            Method::POST,
            &format!("/admin/deliveries/{delivery}/replay"),
        )
        .await;
    assert_eq!((s, v["error"].as_str()), (409, Some("not_replayable")));
    let (s, v) = gw
        .admin_send(Method::POST, "/admin/deliveries/not-a-uuid/replay")
        .await;
    assert_eq!((s, v["error"].as_str()), (404, Some("not_found")));
    gw.stop().await;
}

#[tokio::test]
async fn admin_needs_the_token_when_one_is_set() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = one_target(dir.path(), "http://127.0.0.1:9/", "").replace(
        "admin:\n  listen: 127.0.0.1:0\n",
        "admin:\n  listen: 127.0.0.1:0\n  token: s3cret-admin-token\n",
    );
    let gw = Gateway::start(dir.path(), &yaml).await;
    let (s, v) = gw.admin_get("/admin/deliveries").await;
    assert_eq!((s, v["error"].as_str()), (401, Some("unauthorized")));
    let resp = reqwest::Client::new()
        .get(gw.admin_url("/admin/deliveries"))
        .bearer_auth("s3cret-admin-token")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let wrong = reqwest::Client::new()
        .get(gw.admin_url("/admin/config"))
        .bearer_auth("s3cret-admin-tokeX")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    // Probes stay open.
    assert_eq!(common::get_status(&gw.admin_url("/readyz")).await, 200);
    // /admin/config never shows a secret.
    let config = reqwest::Client::new()
        .get(gw.admin_url("/admin/config"))
        .bearer_auth("s3cret-admin-token")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for secret in ["s3cret-admin-token", TARGET_SECRET, common::SECRET] {
        assert!(!config.contains(secret), "{secret} in {config}");
    }
    assert!(config.contains("\"version\""));
    gw.stop().await;
}

#[tokio::test]
async fn a_non_loopback_admin_without_a_token_refuses_admin_calls() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = one_target(dir.path(), "http://127.0.0.1:9/", "");
    let gw = Gateway::start_with(
        dir.path(),
        &yaml,
        Arc::new(hookgate::clock::SystemClock),
        "0.0.0.0:0",
    )
    .await;
    let (s, v) = gw.admin_get("/admin/deliveries").await;
    assert_eq!(
        (s, v["error"].as_str()),
        (403, Some("admin_token_required"))
    );
    assert_eq!(common::get_status(&gw.admin_url("/healthz")).await, 200);
    assert_eq!(common::get_status(&gw.admin_url("/metrics")).await, 200);
    gw.stop().await;
}

#[tokio::test]
async fn removed_targets_are_dead_lettered_and_disabled_ones_wait() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    sink.always(Answer::status(503));
    let clock = Arc::new(ManualClock::new(T0));
    let retry = "    retry: { schedule: [1m] }\n";
    let with_crm = one_target(dir.path(), &sink.url("/"), retry);
    let gw = Gateway::start_with(dir.path(), &with_crm, clock.clone(), "127.0.0.1:0").await;
    let (_, delivery) = accept(&gw).await;
    gw.delivery_reaches(&delivery, "state", "retrying").await;
    gw.stop().await;

    // Restart with crm disabled: its delivery waits, untouched, even when due.
    sink.always(Answer::status(200));
    let disabled = with_crm.replace("    kind: http\n", "    kind: http\n    enabled: false\n");
    let gw = Gateway::start_with(dir.path(), &disabled, clock.clone(), "127.0.0.1:0").await;
    clock.advance(Duration::from_secs(120));
    stays_at(&sink, 1).await;
    let (_, d) = gw.admin_get(&format!("/admin/deliveries/{delivery}")).await;
    assert_eq!(d["state"], "retrying");
    gw.stop().await;

    // Restart with crm gone: dead-lettered as target_removed.
    let without = with_crm
        .replace("  crm:\n    kind: http\n", "  crm2:\n    kind: http\n")
        .replace("targets: [crm]", "targets: [crm2]");
    let gw = Gateway::start_with(dir.path(), &without, clock.clone(), "127.0.0.1:0").await;
    gw.delivery_reaches(&delivery, "dead_reason", "target_removed")
        .await;
    gw.stop().await;

    // crm is back: replay delivers it.
    let gw = Gateway::start_with(dir.path(), &with_crm, clock.clone(), "127.0.0.1:0").await;
    let (s, _) = gw
        .admin_send(
            Method::POST,
            &format!("/admin/deliveries/{delivery}/replay"),
        )
        .await;
    assert_eq!(s, 200);
    gw.delivery_reaches(&delivery, "state", "delivered").await;
    gw.stop().await;
}

async fn circuit_gauge(gw: &Gateway) -> Option<String> {
    gw.metric("hookgate_circuit_open{target=\"breaker\"}").await
}

#[tokio::test]
async fn the_circuit_opens_waits_without_spending_attempts_and_probes_once() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    sink.always(Answer::status(503));
    let extra = "    concurrency: 1\n    retry: { schedule: [1s], max_attempts: 100, jitter: false }\n    circuit_breaker: { failures: 3, cooldown: 30s }\n";
    let (gw, clock) = on_clock(
        dir.path(),
        &one_target(dir.path(), &sink.url("/"), extra).replace("crm", "breaker"),
    )
    .await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(accept(&gw).await.1);
    }
    sink_reaches(&sink, 3, "three failures").await;
    stays_at(&sink, 3).await;
    assert_eq!(circuit_gauge(&gw).await.as_deref(), Some("1"));
    // Retries fall due, but the circuit is open: nothing goes out, nothing is spent.
    clock.advance(Duration::from_secs(5));
    stays_at(&sink, 3).await;
    let (_, waiting) = gw.admin_get(&format!("/admin/deliveries/{}", ids[4])).await;
    assert_eq!(waiting["attempt_count"], 0);
    assert_eq!(waiting["state"], "pending");
    // Cooldown over: exactly one probe, which fails: open again.
    clock.advance(Duration::from_secs(25));
    sink_reaches(&sink, 4, "one probe").await;
    stays_at(&sink, 4).await;
    // The target recovers: the next probe closes the circuit and everything flows.
    sink.always(Answer::status(200));
    clock.advance(Duration::from_secs(30));
    // 3 failures + 1 failed probe + 5 deliveries (the good probe among them).
    sink_reaches(&sink, 9, "all five delivered").await;
    for id in &ids {
        gw.delivery_reaches(id, "state", "delivered").await;
    }
    assert_eq!(circuit_gauge(&gw).await.as_deref(), Some("0"));
    gw.stop().await;
}

#[tokio::test]
async fn a_429_with_retry_after_pauses_the_whole_target() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    sink.script([Answer::status(429).with_header("retry-after", "60")]);
    let extra = "    concurrency: 1\n    retry: { schedule: [1s, 5m], jitter: false }\n";
    let (gw, clock) = on_clock(dir.path(), &one_target(dir.path(), &sink.url("/"), extra)).await;
    accept(&gw).await;
    sink_reaches(&sink, 1, "the 429").await;
    accept(&gw).await;
    accept(&gw).await;
    // New deliveries are due now, but the target is paused for 60 s.
    stays_at(&sink, 1).await;
    clock.advance(Duration::from_secs(30));
    stays_at(&sink, 1).await;
    clock.advance(Duration::from_secs(30));
    sink_reaches(&sink, 4, "all three delivered after the pause").await;
    gw.stop().await;
}
