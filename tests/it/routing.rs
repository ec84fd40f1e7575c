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
