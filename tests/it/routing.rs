//! Routing end to end: `stop` and `unmatched` through the server, and the
//! `hookgate route` dry run.

use std::process::Command;
use std::time::Duration;

use crate::common::sink::Sink;
use crate::common::{self, Gateway, TARGET_SECRET, binary, event, eventually, post_signed};

fn two_sinks_config(dir: &std::path::Path, a: &Sink, b: &Sink) -> String {
    let rest = format!(
        r#"targets:
  a: {{ kind: http, url: "{}", secret: {TARGET_SECRET} }}
  b: {{ kind: http, url: "{}", secret: {TARGET_SECRET} }}
routes:
  - name: functions
    match: {{ event: function-call }}
    targets: [a]
    stop: true
  - name: voice
    match: {{ type: VOICE }}
    targets: [b]
unmatched: [b]
"#,
        a.url("/a"),
        b.url("/b")
    );
    common::config_yaml(dir, &rest)
}

#[tokio::test]
async fn stop_ends_evaluation_and_unmatched_catches_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (Sink::start().await, Sink::start().await);
    let gw = Gateway::start(dir.path(), &two_sinks_config(dir.path(), &a, &b)).await;
    let url = gw.url("/webhooks/outrival");

    // function-call + VOICE: `functions` stops before `voice`.
    let r = post_signed(&url, &event("function-call", "VOICE", "in-progress", "c1")).await;
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["routes"], serde_json::json!(["functions"]));
    // TEXT status-changed: no route, so `unmatched` (b) gets it.
    let r = post_signed(&url, &event("status-changed", "TEXT", "ended", "c2")).await;
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["routes"], serde_json::json!([]));
    assert_eq!(v["deliveries"][0]["target"], "b");

    eventually(Duration::from_secs(5), "both delivered", || async {
        a.count() == 1 && b.count() == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!((a.count(), b.count()), (1, 1));
    assert_eq!(
        a.received()[0].header("x-hookgate-route"),
        Some("functions")
    );
    assert_eq!(
        b.received()[0].header("x-hookgate-route"),
        Some("unmatched")
    );
    gw.stop().await;
}

fn route_cmd(
    config: &std::path::Path,
    event: &std::path::Path,
    json: bool,
) -> std::process::Output {
    let mut cmd = Command::new(binary());
    cmd.args(["route", "-c"]).arg(config).arg(event);
    if json {
        cmd.args(["--format", "json"]);
    }
    cmd.output().unwrap()
}

#[test]
fn route_explains_matches_misses_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("rules.yaml");
    std::fs::write(
        &config,
        format!(
            r#"version: 1
sources: [{{ name: outrival, path: /in, verify: {{ secrets: ["{}"] }} }}]
targets:
  crm: {{ kind: http, url: "https://user:pw@crm.example.com/hook?k=v", secret: {TARGET_SECRET}, headers: {{ authorization: "Bearer tok-do-not-print" }} }}
  chat: {{ kind: slack, webhook_url: "https://hooks.slack.com/services/SECRET/PATH", text: "{{{{ companionId | slack_escape }}}} is {{{{ data.status }}}}" }}
  audit: {{ kind: log }}
routes:
  - {{ name: errors, match: {{ data.endedReason: {{ in: [error] }} }}, targets: [audit] }}
  - {{ name: ended, match: {{ status: ended }}, targets: [crm, chat], stop: true }}
  - {{ name: later, match: {{}}, targets: [audit] }}
"#,
            common::SECRET
        ),
    )
    .unwrap();
    let body = event("status-changed", "VOICE", "ended", "<!channel>");
    let ev = dir.path().join("event.json");
    std::fs::write(&ev, &body).unwrap();

    let out = route_cmd(&config, &ev, false);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("no match       errors  (failed: data.endedReason)"),
        "{text}"
    );
    assert!(text.contains("matched        ended -> crm, chat"), "{text}");
    assert!(text.contains("not evaluated  later"), "{text}");
    assert!(text.contains("&lt;!channel&gt; is ended"), "{text}");
    let expected_sig = common::sign(TARGET_SECRET, body.as_bytes());
    assert!(
        text.contains(&format!("x-signature: {expected_sig}")),
        "{text}"
    );
    for secret in ["tok-do-not-print", "SECRET/PATH", ":pw@", "k=v"] {
        assert!(!text.contains(secret), "{secret} printed:\n{text}");
    }

    let out = route_cmd(&config, &ev, true);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["stopped_by"], "ended");
    assert_eq!(v["routes"][0]["result"], "no_match");
    assert_eq!(
        v["routes"][0]["failed_keys"],
        serde_json::json!(["data.endedReason"])
    );
    assert_eq!(v["routes"][2]["result"], "not_evaluated");
    assert_eq!(v["deliveries"][0]["target"], "crm");
    assert_eq!(v["deliveries"][0]["body"], body);
    assert_eq!(
        v["deliveries"][1]["message"]["text"],
        "&lt;!channel&gt; is ended"
    );

    // An event that is not a JSON object: exit 1.
    std::fs::write(&ev, "[1, 2]").unwrap();
    let out = route_cmd(&config, &ev, false);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("JSON object"));
    // An invalid config: exit 1.
    std::fs::write(&config, "version: 2\n").unwrap();
    assert_eq!(route_cmd(&config, &ev, false).status.code(), Some(1));
}

/// `POST /admin/route`: the same dry run inside the server, on the live
/// config: routes with why they did not match, each delivery's preview with
/// secrets redacted; nothing stored, nothing sent; bad input is a 400.
#[tokio::test]
async fn the_admin_dry_run_routes_an_event_without_storing_or_sending_it() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    let rest = format!(
        r#"targets:
  crm: {{ kind: http, url: "{}", secret: {TARGET_SECRET}, headers: {{ authorization: "Bearer tok-do-not-print" }} }}
  chat: {{ kind: slack, webhook_url: "{}", text: "{{{{ companionId | slack_escape }}}} is {{{{ data.status }}}}" }}
routes:
  - {{ name: errors, match: {{ data.endedReason: {{ in: [error] }} }}, targets: [crm] }}
  - {{ name: ended, match: {{ status: ended }}, targets: [crm, chat], stop: true }}
  - {{ name: later, match: {{}}, targets: [crm] }}
"#,
        sink.url("/crm?key=query-do-not-print"),
        sink.url("/services/SLACK-DO-NOT-PRINT")
    );
    let yaml = common::config_yaml(dir.path(), &rest).replace(
        "admin:\n  listen: 127.0.0.1:0\n",
        "admin:\n  listen: 127.0.0.1:0\n  token: admin-tok\n",
    );
    let gw = Gateway::start(dir.path(), &yaml).await;
    let client = reqwest::Client::new();
    let post = |path: &str, body: String, token: Option<&str>| {
        let mut req = client.post(gw.admin_url(path)).body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    let body = event("status-changed", "VOICE", "ended", "<!channel>");

    let r = post("/admin/route", body.clone(), None).await.unwrap();
    assert_eq!(r.status(), 401, "behind the admin token");

    let r = post("/admin/route", body.clone(), Some("admin-tok"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    for secret in [
        "tok-do-not-print",
        "SLACK-DO-NOT-PRINT",
        "query-do-not-print",
        "admin-tok",
    ] {
        assert!(!text.contains(secret), "{secret} in the answer:\n{text}");
    }
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["source"], "outrival");
    assert_eq!(
        v["routes"],
        serde_json::json!([
            {"name": "errors", "matched": false, "reason": "failed: data.endedReason"},
            {"name": "ended", "matched": true, "reason": null},
            {"name": "later", "matched": false,
             "reason": "not evaluated: route `ended` matched first and has stop: true"},
        ])
    );
    let deliveries = v["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 2);
    assert_eq!(deliveries[0]["target"], "crm");
    assert_eq!(deliveries[0]["kind"], "http");
    assert_eq!(deliveries[0]["route"], "ended");
    assert_eq!(deliveries[0]["preview"]["body"], body);
    // The API never signs a caller's body with a target's secret.
    let expected_sig = common::sign(TARGET_SECRET, body.as_bytes());
    assert!(!text.contains(&expected_sig), "{text}");
    assert!(
        deliveries[0]["preview"]["headers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h[0] == "x-signature" && h[1] == "<redacted>"),
        "{text}"
    );
    assert_eq!(deliveries[1]["target"], "chat");
    assert_eq!(
        deliveries[1]["preview"]["message"]["text"],
        "&lt;!channel&gt; is ended"
    );

    // Not JSON, a source that does not exist.
    let r = post("/admin/route", "{not json".into(), Some("admin-tok"))
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"], "invalid_event");
    let r = post("/admin/route?source=nope", body.clone(), Some("admin-tok"))
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"], "invalid_request");
    assert!(v["message"].as_str().unwrap().contains("nope"));

    // Nothing was stored or sent.
    let r = client
        .get(gw.admin_url("/admin/deliveries"))
        .bearer_auth("admin-tok")
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["deliveries"], serde_json::json!([]));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(sink.count(), 0);
    gw.stop().await;
}
