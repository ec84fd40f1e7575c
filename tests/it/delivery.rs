//! From accepted event to downstream: the re-signed request, fan-out, and the
//! outcome classes, against a recording HTTP server on loopback.

use std::path::Path;
use std::time::Duration;

use hookgate::queue::{DeadReason, DeliveryRecords, DeliveryState, sqlite::SqliteStore};

use crate::common::sink::{Answer, Sink};
use crate::common::{self, Gateway, TARGET_SECRET, event, eventually, post_signed};

fn http_target(name: &str, url: &str, extra: &str) -> String {
    format!(
        "  {name}:\n    kind: http\n    url: {url}\n    secret: {TARGET_SECRET}\n    timeout: 1s\n{extra}"
    )
}

/// A gateway with one http target `crm` at `url` (plus `extra` keys) and one
/// route sending everything to it.
async fn crm_gateway(dir: &Path, url: &str, extra: &str) -> Gateway {
    let targets = http_target("crm", url, extra);
    let yaml = common::config_yaml(
        dir,
        &format!(
            "targets:\n{targets}routes:\n  - name: all\n    match: {{}}\n    targets: [crm]\n"
        ),
    );
    Gateway::start(dir, &yaml).await
}

async fn accept(gw: &Gateway, body: &str) -> serde_json::Value {
    let resp = post_signed(&gw.url("/webhooks/outrival"), body).await;
    assert_eq!(resp.status(), 202);
    resp.json().await.unwrap()
}

/// Read one delivery from the queue file after the gateway stopped.
async fn stored(dir: &Path, delivery_id: &str) -> hookgate::queue::DeliveryDetail {
    let store = SqliteStore::open(&dir.join("queue.db")).unwrap();
    store
        .delivery(uuid::Uuid::parse_str(delivery_id).unwrap())
        .await
        .unwrap()
        .expect("the delivery is stored")
}

#[tokio::test]
async fn delivers_the_original_bytes_re_signed_with_hookgate_headers() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    let targets = http_target(
        "crm",
        &sink.url("/hooks/in"),
        "    headers: { authorization: \"Bearer crm-token\" }\n",
    );
    let yaml = common::config_yaml(
        dir.path(),
        &format!(
            "targets:\n{targets}routes:\n  - name: ended\n    match: {{ event: status-changed, status: ended }}\n    targets: [crm]\n"
        ),
    );
    let gw = Gateway::start(dir.path(), &yaml).await;
    // Odd spacing and key order: the bytes must arrive exactly as sent.
    let body = "{ \"type\":\"VOICE\",  \"event\":\"status-changed\",\"companionId\":\"c-9\",\"data\":{\"messages\":[],\"status\":\"ended\",\"startedAt\":\"t\"} }";
    let accepted = accept(&gw, body).await;
    eventually(Duration::from_secs(5), "the sink got the event", || async {
        sink.count() >= 1
    })
    .await;
    let got = &sink.received()[0];
    assert_eq!(got.method, "POST");
    assert_eq!(got.path, "/hooks/in");
    assert_eq!(&got.body[..], body.as_bytes());
    assert!(
        got.signature_valid(TARGET_SECRET, "x-signature"),
        "re-signature must verify"
    );
    assert!(!got.signature_valid(common::SECRET, "x-signature"));
    assert_eq!(got.header("content-type"), Some("application/json"));
    assert_eq!(got.header("x-hookgate-event-id"), accepted["id"].as_str());
    assert_eq!(
        got.header("x-hookgate-delivery-id"),
        accepted["deliveries"][0]["id"].as_str()
    );
    assert_eq!(got.header("x-hookgate-attempt"), Some("1"));
    assert_eq!(got.header("x-hookgate-route"), Some("ended"));
    assert_eq!(got.header("authorization"), Some("Bearer crm-token"));
    assert!(got.header("user-agent").unwrap().starts_with("hookgate/"));
    gw.stop().await;
}

#[tokio::test]
async fn fans_out_once_per_target_in_file_order() {
    let dir = tempfile::tempdir().unwrap();
    let a = Sink::start().await;
    let b = Sink::start().await;
    let targets = format!(
        "{}{}",
        http_target("a", &a.url("/a"), ""),
        http_target("b", &b.url("/b"), "")
    );
    let routes = "routes:
  - name: first
    match: { event: status-changed }
    targets: [a]
  - name: second
    match: { type: [VOICE, SMS] }
    targets: [a, b]
  - name: never
    match: { event: function-call }
    targets: [b]
";
    let yaml = common::config_yaml(dir.path(), &format!("targets:\n{targets}{routes}"));
    let gw = Gateway::start(dir.path(), &yaml).await;
    let v = accept(&gw, &event("status-changed", "SMS", "ended", "c")).await;
    assert_eq!(v["routes"], serde_json::json!(["first", "second"]));
    assert_eq!(v["deliveries"].as_array().unwrap().len(), 2);
    eventually(Duration::from_secs(5), "both sinks got one", || async {
        a.count() == 1 && b.count() == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        a.count(),
        1,
        "one delivery per target however many routes name it"
    );
    assert_eq!(a.received()[0].header("x-hookgate-route"), Some("first"));
    assert_eq!(b.received()[0].header("x-hookgate-route"), Some("second"));
    gw.stop().await;
}

#[tokio::test]
async fn a_5xx_is_retried_with_the_same_delivery_id() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    sink.script([Answer::status(503), Answer::status(500)]);
    let gw = crm_gateway(
        dir.path(),
        &sink.url("/"),
        "    retry: { schedule: [100ms, 100ms, 100ms], jitter: false }\n",
    )
    .await;
    let v = accept(&gw, &event("status-changed", "VOICE", "ended", "c")).await;
    eventually(Duration::from_secs(5), "three attempts", || async {
        sink.count() >= 3
    })
    .await;
    let got = sink.received();
    let ids: Vec<_> = got
        .iter()
        .map(|r| r.header("x-hookgate-delivery-id").unwrap().to_owned())
        .collect();
    assert!(
        ids.iter()
            .all(|id| id == v["deliveries"][0]["id"].as_str().unwrap())
    );
    let attempts: Vec<_> = got
        .iter()
        .map(|r| r.header("x-hookgate-attempt").unwrap().to_owned())
        .collect();
    assert_eq!(attempts, ["1", "2", "3"]);
    assert!(
        got.iter()
            .all(|r| r.signature_valid(TARGET_SECRET, "x-signature"))
    );
    gw.stop().await;
    let detail = stored(dir.path(), v["deliveries"][0]["id"].as_str().unwrap()).await;
    assert_eq!(detail.record.state, DeliveryState::Delivered);
    assert_eq!(detail.record.attempt_count, 3);
    assert_eq!(detail.attempts[0].1.status, Some(503));
}

#[tokio::test]
async fn a_4xx_is_dead_at_once_with_the_response_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    sink.always(Answer::status(400).with_body(&"no thanks ".repeat(200)));
    let gw = crm_gateway(
        dir.path(),
        &sink.url("/"),
        "    retry: { schedule: [50ms] }\n",
    )
    .await;
    let v = accept(&gw, &event("status-changed", "VOICE", "ended", "c")).await;
    eventually(Duration::from_secs(5), "one attempt", || async {
        sink.count() >= 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.count(), 1, "a permanent failure is not retried");
    gw.stop().await;
    let detail = stored(dir.path(), v["deliveries"][0]["id"].as_str().unwrap()).await;
    assert_eq!(detail.record.state, DeliveryState::Dead);
    assert_eq!(detail.record.dead_reason, Some(DeadReason::PermanentStatus));
    let excerpt = detail.attempts[0].1.response_excerpt.clone().unwrap();
    assert_eq!(excerpt.len(), 1024);
    assert!(excerpt.starts_with("no thanks"));
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = Sink::start().await;
    let sink = Sink::start().await;
    sink.always(Answer::status(307).with_header("location", &elsewhere.url("/stolen")));
    let gw = crm_gateway(dir.path(), &sink.url("/"), "").await;
    let v = accept(&gw, &event("status-changed", "VOICE", "ended", "c")).await;
    eventually(Duration::from_secs(5), "one attempt", || async {
        sink.count() >= 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(elsewhere.count(), 0);
    gw.stop().await;
    let detail = stored(dir.path(), v["deliveries"][0]["id"].as_str().unwrap()).await;
    assert_eq!(detail.record.dead_reason, Some(DeadReason::PermanentStatus));
}

#[tokio::test]
async fn retries_run_out_into_the_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    sink.always(Answer::status(503));
    let gw = crm_gateway(
        dir.path(),
        &sink.url("/"),
        "    retry: { schedule: [50ms, 50ms], jitter: false }\n",
    )
    .await;
    let v = accept(&gw, &event("status-changed", "VOICE", "ended", "c")).await;
    eventually(Duration::from_secs(5), "three attempts", || async {
        sink.count() >= 3
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.count(), 3, "schedule of 2 delays = 3 attempts");
    gw.stop().await;
    let detail = stored(dir.path(), v["deliveries"][0]["id"].as_str().unwrap()).await;
    assert_eq!(detail.record.state, DeliveryState::Dead);
    assert_eq!(detail.record.dead_reason, Some(DeadReason::Exhausted));
    assert_eq!(detail.attempts.len(), 3);
}

#[tokio::test]
async fn a_slow_target_times_out_and_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    sink.script([Answer::status(200).with_delay(Duration::from_secs(3))]);
    let gw = crm_gateway(
        dir.path(),
        &sink.url("/"),
        "    retry: { schedule: [50ms], jitter: false }\n",
    )
    .await;
    let v = accept(&gw, &event("status-changed", "VOICE", "ended", "c")).await;
    eventually(Duration::from_secs(6), "a second attempt", || async {
        sink.count() >= 2
    })
    .await;
    gw.stop().await;
    let detail = stored(dir.path(), v["deliveries"][0]["id"].as_str().unwrap()).await;
    assert_eq!(detail.record.state, DeliveryState::Delivered);
    let first = &detail.attempts[0].1;
    assert!(
        first.error.as_deref().unwrap().contains("timed out"),
        "{first:?}"
    );
    assert!(
        !first.error.as_deref().unwrap().contains("127.0.0.1"),
        "no URL in errors"
    );
}

#[tokio::test]
async fn template_bodies_are_rendered_and_signed() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    let gw = crm_gateway(dir.path(), &sink.url("/"), "    body: template\n    template: '{\"who\": {{ companionId | tojson }}, \"attempt\": {{ hookgate.attempt }}, \"reason\": \"{{ data.endedReason }}\"}'\n").await;
    accept(&gw, &event("status-changed", "VOICE", "ended", "c-7")).await;
    eventually(Duration::from_secs(5), "the sink got it", || async {
        sink.count() >= 1
    })
    .await;
    let got = &sink.received()[0];
    let v: serde_json::Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"who": "c-7", "attempt": 1, "reason": ""})
    );
    assert!(got.signature_valid(TARGET_SECRET, "x-signature"));
    gw.stop().await;
}

#[tokio::test]
async fn a_template_that_renders_bad_json_dead_letters_that_delivery() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    // `companionId` unquoted: the rendered body is not JSON.
    let gw = crm_gateway(
        dir.path(),
        &sink.url("/"),
        "    body: template\n    template: '{\"who\": {{ companionId }}}'\n",
    )
    .await;
    let v = accept(&gw, &event("status-changed", "VOICE", "ended", "not-json")).await;
    let id = v["deliveries"][0]["id"].as_str().unwrap().to_owned();
    gw.delivery_reaches(&id, "state", "dead").await;
    let (_, d) = gw.admin_get(&format!("/admin/deliveries/{id}")).await;
    assert_eq!(d["dead_reason"], "render_error");
    assert!(
        d["last_error"].as_str().unwrap().contains("not valid JSON"),
        "{d}"
    );
    assert_eq!(sink.count(), 0, "nothing was sent");
    // The gateway is fine: the next event is delivered.
    gw.stop().await;
}

#[tokio::test]
async fn every_attempt_uses_the_targets_current_config() {
    let dir = tempfile::tempdir().unwrap();
    let old = Sink::start().await;
    old.always(Answer::status(503));
    let new = Sink::start().await;
    let retry = "    retry: { schedule: [200ms], max_attempts: 10, jitter: false }\n";
    let gw = crm_gateway(dir.path(), &old.url("/old"), retry).await;
    let v = accept(&gw, &event("status-changed", "VOICE", "ended", "moved")).await;
    eventually(Duration::from_secs(5), "a failed attempt", || async {
        old.count() >= 1
    })
    .await;
    gw.stop().await;

    // The target moves and gets a new secret; the stored delivery follows.
    let targets = format!(
        "  crm:\n    kind: http\n    url: {}\n    secret: rotated-secret-0123456789\n    headers: {{ x-tenant: acme }}\n{retry}",
        new.url("/new")
    );
    let yaml = common::config_yaml(
        dir.path(),
        &format!(
            "targets:\n{targets}routes:\n  - name: all\n    match: {{}}\n    targets: [crm]\n"
        ),
    );
    let gw = Gateway::start(dir.path(), &yaml).await;
    eventually(
        Duration::from_secs(5),
        "delivered to the new URL",
        || async { new.count() == 1 },
    )
    .await;
    let got = &new.received()[0];
    assert_eq!(got.path, "/new");
    assert!(got.signature_valid("rotated-secret-0123456789", "x-signature"));
    assert_eq!(got.header("x-tenant"), Some("acme"));
    assert_eq!(
        got.header("x-hookgate-delivery-id"),
        v["deliveries"][0]["id"].as_str()
    );
    assert_eq!(
        got.header("x-hookgate-route"),
        Some("all"),
        "the route is frozen"
    );
    let attempt: u32 = got.header("x-hookgate-attempt").unwrap().parse().unwrap();
    assert!(attempt >= 2, "attempt numbers go on: {attempt}");
    gw.stop().await;
}
