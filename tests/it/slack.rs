//! Slack targets against a local server that answers as Slack's incoming
//! webhooks do: `200 ok`, `429` with `Retry-After`, `400 invalid_payload`,
//! `404 channel_not_found`. The webhook URL is a credential: it must never
//! show in `last_error`, `/admin/config` or the logs.

use std::path::Path;
use std::time::Duration;

use crate::common::sink::{Answer, Sink};
use crate::common::{self, Gateway, Process, dry_run, event, eventually, post_signed};

/// The path part of the test webhook URL: Slack's token lives there.
const HOOK_PATH: &str = "/services/T0HOOKGATE/B0TEST/slack-token-do-not-show";

fn slack_ok() -> Answer {
    Answer::status(200).with_body("ok")
}

/// A config with one slack target `ops` at `url` (plus `extra` keys) that
/// gets every event.
fn slack_yaml(dir: &Path, url: &str, extra: &str) -> String {
    common::config_yaml(
        dir,
        &format!(
            "targets:\n  ops:\n    kind: slack\n    webhook_url: \"{url}\"\n    timeout: 2s\n{extra}\
             routes:\n  - name: all\n    match: {{}}\n    targets: [ops]\n"
        ),
    )
}

async fn accept(gw: &Gateway, body: &str) -> String {
    let resp = post_signed(&gw.url("/webhooks/outrival"), body).await;
    assert_eq!(resp.status(), 202);
    let v: serde_json::Value = resp.json().await.unwrap();
    v["deliveries"][0]["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn posts_the_rendered_message_with_blocks_username_and_icon() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    sink.always(slack_ok());
    let extra = "    text: \"{{ type }} chat {{ companionId }} is {{ data.status }} ({{ data.messages.0.content | slack_escape }})\"\n\
                 \x20   username: hookgate\n    icon_emoji: \":telephone_receiver:\"\n\
                 \x20   blocks:\n      - type: section\n        text: { type: mrkdwn, text: \"*{{ event }}* from `{{ companionId }}`\" }\n";
    let gw = Gateway::start(
        dir.path(),
        &slack_yaml(dir.path(), &sink.url(HOOK_PATH), extra),
    )
    .await;
    let body = serde_json::json!({
        "event": "status-changed", "type": "VOICE", "companionId": "c-42",
        "data": {"messages": [{"role": "user", "content": "hi <!channel> & all"}],
                 "status": "ended", "startedAt": "2026-12-01T10:00:00Z"}
    })
    .to_string();
    let id = accept(&gw, &body).await;
    gw.delivery_reaches(&id, "state", "delivered").await;
    let got = &sink.received()[0];
    assert_eq!(got.method, "POST");
    assert_eq!(got.path, HOOK_PATH);
    assert_eq!(got.header("content-type"), Some("application/json"));
    let message: serde_json::Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(
        message,
        serde_json::json!({
            "text": "VOICE chat c-42 is ended (hi &lt;!channel&gt; &amp; all)",
            "username": "hookgate",
            "icon_emoji": ":telephone_receiver:",
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "*status-changed* from `c-42`"}}]
        })
    );
    gw.stop().await;
}

#[tokio::test]
async fn without_a_text_the_default_says_what_happened() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    sink.always(slack_ok());
    let gw = Gateway::start(
        dir.path(),
        &slack_yaml(dir.path(), &sink.url(HOOK_PATH), ""),
    )
    .await;
    let mut body: serde_json::Value =
        serde_json::from_str(&event("status-changed", "SMS", "ended", "c-7")).unwrap();
    body["data"]["endedReason"] = "customer-ended-call".into();
    let id = accept(&gw, &body.to_string()).await;
    gw.delivery_reaches(&id, "state", "delivered").await;
    let message: serde_json::Value = serde_json::from_slice(&sink.received()[0].body).unwrap();
    assert_eq!(
        message,
        serde_json::json!({"text": "status-changed SMS chat c-7: status ended, reason customer-ended-call"})
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_429_pauses_the_target_for_its_retry_after_then_delivers() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    sink.script([Answer::status(429)
        .with_header("retry-after", "2")
        .with_body("rate_limited")]);
    sink.always(slack_ok());
    // A generous rate limit, so only Retry-After can hold the retry back; and
    // a `retry_on` without 429, which must not make Slack's 429 permanent.
    let extra = "    text: \"{{ companionId }}\"\n    rate_limit: { per_second: 100, burst: 100 }\n\
                 \x20   retry: { schedule: [50ms, 5s], retry_on: [500] }\n";
    let gw = Gateway::start(
        dir.path(),
        &slack_yaml(dir.path(), &sink.url(HOOK_PATH), extra),
    )
    .await;
    let first = accept(&gw, &event("status-changed", "VOICE", "ended", "c-1")).await;
    eventually(Duration::from_secs(5), "the first attempt", || async {
        sink.count() >= 1
    })
    .await;
    // Sent during the pause: it waits for the pause too (the whole target).
    let second = accept(&gw, &event("status-changed", "VOICE", "ended", "c-2")).await;
    gw.delivery_reaches(&first, "state", "delivered").await;
    gw.delivery_reaches(&second, "state", "delivered").await;
    let got = sink.received();
    assert_eq!(got.len(), 3, "the 429, its retry, the second event");
    let paused_at = got[0].at;
    for later in &got[1..] {
        let waited = later.at.duration_since(paused_at);
        assert!(
            waited >= Duration::from_millis(1_900),
            "Retry-After: 2 held the whole target (sent after {waited:?})"
        );
    }
    let (_, detail) = gw.admin_get(&format!("/admin/deliveries/{first}")).await;
    assert_eq!(detail["attempts"][0]["status"], 429);
    assert_eq!(detail["attempts"][1]["status"], 200);
    gw.stop().await;
}

#[tokio::test]
async fn slack_refusals_are_permanent_and_name_slacks_error_code() {
    for (status, code) in [
        (400, "invalid_payload"),
        (404, "channel_not_found"),
        (403, "action_prohibited"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let sink = Sink::start().await;
        sink.always(Answer::status(status).with_body(code));
        let gw = Gateway::start(
            dir.path(),
            &slack_yaml(dir.path(), &sink.url(HOOK_PATH), ""),
        )
        .await;
        let id = accept(&gw, &event("status-changed", "VOICE", "ended", "c")).await;
        gw.delivery_reaches(&id, "state", "dead").await;
        let (_, d) = gw.admin_get(&format!("/admin/deliveries/{id}")).await;
        assert_eq!(d["dead_reason"], "permanent_status", "{status}");
        assert_eq!(d["attempt_count"], 1, "{status}: not retried");
        let error = d["last_error"].as_str().unwrap();
        assert_eq!(error, format!("Slack answered HTTP {status}: {code}"));
        assert!(!d.to_string().contains("slack-token-do-not-show"), "{d}");
        let (_, config) = gw.admin_get("/admin/config").await;
        assert!(
            !config.to_string().contains("slack-token-do-not-show"),
            "{config}"
        );
        assert_eq!(sink.count(), 1);
        gw.stop().await;
    }
}

#[tokio::test]
async fn the_dry_run_shows_the_message_the_sender_posts() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    sink.always(slack_ok());
    let extra = "    text: \"{{ companionId }}: {{ data.status }}\"\n    username: hookgate\n";
    let yaml = slack_yaml(dir.path(), &sink.url(HOOK_PATH), extra);
    let body = event("status-changed", "VOICE", "ended", "c-dry");
    let preview = dry_run(dir.path(), &yaml, &body);
    assert!(
        !preview.to_string().contains("slack-token-do-not-show"),
        "{preview}"
    );

    let gw = Gateway::start(dir.path(), &yaml).await;
    let id = accept(&gw, &body).await;
    gw.delivery_reaches(&id, "state", "delivered").await;
    let sent: serde_json::Value = serde_json::from_slice(&sink.received()[0].body).unwrap();
    assert_eq!(preview["deliveries"][0]["message"], sent);
    gw.stop().await;
}

#[tokio::test]
async fn the_webhook_url_never_reaches_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    sink.script([Answer::status(500).with_body("rollup_error")]);
    sink.always(Answer::status(404).with_body("no_service"));
    // A down Slack too: connection errors are logged without their URL.
    let refused = common::RefusedPort::reserve();
    let down = format!("http://127.0.0.1:{}{HOOK_PATH}", refused.port);
    let yaml = slack_yaml(dir.path(), &sink.url(HOOK_PATH), "    retry: { schedule: [50ms] }\n")
        .replace("server:\n  listen: 127.0.0.1:0", "server:\n  listen: 127.0.0.1:{PORT}")
        .replace("admin:\n  listen: 127.0.0.1:0", "admin:\n  listen: 127.0.0.1:{ADMIN_PORT}")
        .replace(
            "routes:",
            &format!("  down:\n    kind: slack\n    webhook_url: \"{down}\"\n    retry: {{ schedule: [50ms] }}\nroutes:"),
        )
        .replace("targets: [ops]", "targets: [ops, down]");
    let mut gw = Process::serve(dir.path(), &yaml);
    gw.wait_ready().await;
    let status = post_signed(
        &gw.url("/webhooks/outrival"),
        &event("status-changed", "VOICE", "ended", "c"),
    )
    .await
    .status();
    assert_eq!(status, 202);
    eventually(Duration::from_secs(5), "both attempts to ops", || async {
        sink.count() >= 2
    })
    .await;
    // Let the down target's two attempts fail and be logged too.
    tokio::time::sleep(Duration::from_millis(500)).await;
    gw.terminate();
    let logs = format!("{}\n{}", gw.stderr(), gw.stdout());
    assert!(logs.contains("delivery attempt failed"), "{logs}");
    assert!(
        logs.contains("no_service"),
        "Slack's error code is logged: {logs}"
    );
    assert!(logs.contains("connection failed"), "{logs}");
    assert!(!logs.contains("slack-token-do-not-show"), "{logs}");
}
