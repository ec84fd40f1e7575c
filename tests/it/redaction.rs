//! No secret ever leaves the process (DESIGN section 10): one run of the real
//! binary, at `HOOKGATE_LOG=debug` with `--log-format json`, configured with a
//! distinct, greppable value in every secret place (rotated outrival verify
//! secrets, a standard-webhooks source secret, `admin.token`, an http target's
//! `secret`, header and URL userinfo and query, a standard-webhooks target
//! secret, a Slack `webhook_url`, an SMTP password used for AUTH over
//! STARTTLS), that exercises every target kind, delivered and failed
//! attempts, valid, wrong and missing signatures, the admin API with the right
//! and a wrong token, and a refused reload of a file with secrets on its bad
//! lines. Then the whole log, `/admin/config`, every delivery's detail and
//! `/metrics` are searched for each of those values.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::Value;
use standardwebhooks::Webhook;

use crate::common::sink::{Answer, Sink};
use crate::common::smtp::{SmtpOptions, SmtpServer, TestCa};
use crate::common::{Process, RefusedPort, eventually, sign};

const VERIFY_SECRET: &str = "rdx-verify-current-A1b2C3d4";
const VERIFY_OLD_SECRET: &str = "rdx-verify-previous-E5f6G7h8";
/// Decodes from the base64 of the source's `whsec_` secret.
const SW_SOURCE_KEY: &str = "rdx-sw-source-key-I9j0K1l2m3n4";
const ADMIN_TOKEN: &str = "rdx-admin-token-O5p6Q7r8";
const WRONG_TOKEN: &str = "rdx-wrong-token-S9t0U1v2";
const CRM_SECRET: &str = "rdx-crm-resign-W3x4Y5z6";
const CRM_BEARER: &str = "rdx-crm-bearer-a7B8c9D0";
const URL_USER: &str = "rdxurluser";
const URL_PASSWORD: &str = "rdx-url-password-e1F2g3H4";
const URL_QUERY: &str = "rdx-url-query-i5J6k7L8";
const DOWN_QUERY: &str = "rdx-down-query-m9N0o1P2";
/// Decodes from the base64 of the failing target's `whsec_` secret.
const SW_TARGET_KEY: &str = "rdx-sw-target-key-q3R4s5T6u7v8";
const SLACK_TOKEN: &str = "rdx-slack-token-w9X0y1Z2";
const SMTP_PASSWORD: &str = "rdx-smtp-password-A3b4C5d6";
/// Only in the invalid file the reload is refused for.
const RELOAD_ONLY_SECRET: &str = "rdx-reload-only-E7f8G9h0";

fn whsec(key: &str) -> String {
    format!("whsec_{}", B64.encode(key))
}

/// The config: `{sink}` answers 200, `{failing}` 500, `{down}` is a closed
/// port; `{slack}` answers Slack's way.
#[allow(clippy::too_many_arguments)]
fn config(
    sink: u16,
    failing: u16,
    down: u16,
    slack: u16,
    smtp: u16,
    ca: &str,
    bad_crm_lines: Option<&str>,
) -> String {
    let crm_secret_lines = bad_crm_lines.map(str::to_owned).unwrap_or(format!(
        "    secret: {CRM_SECRET}\n    headers: {{ authorization: \"Bearer {CRM_BEARER}\" }}\n"
    ));
    format!(
        r#"version: 1
server:
  listen: 127.0.0.1:{{PORT}}
  shutdown_timeout: 2s
admin:
  listen: 127.0.0.1:{{ADMIN_PORT}}
  token: {ADMIN_TOKEN}
queue:
  path: ./data/queue.db
sources:
  - name: outrival
    path: /webhooks/outrival
    verify:
      scheme: outrival
      secrets: ["{VERIFY_SECRET}", "{VERIFY_OLD_SECRET}"]
  - name: standard
    path: /webhooks/standard
    schema: json
    verify: {{ scheme: standard-webhooks, secrets: ["{sw_source}"] }}
targets:
  crm:
    kind: http
    url: "http://{URL_USER}:{URL_PASSWORD}@127.0.0.1:{sink}/hooks?api_key={URL_QUERY}"
{crm_secret_lines}    timeout: 2s
  failing:
    kind: http
    url: "http://127.0.0.1:{failing}/hooks?api_key={URL_QUERY}"
    secret: "{sw_target}"
    signature: {{ scheme: standard-webhooks }}
    timeout: 2s
    retry: {{ schedule: [100ms], jitter: false }}
    circuit_breaker: {{ failures: 100, cooldown: 1s }}
  down:
    kind: http
    url: "http://127.0.0.1:{down}/hooks?token={DOWN_QUERY}"
    timeout: 500ms
    retry: {{ schedule: [100ms], jitter: false }}
    circuit_breaker: {{ failures: 100, cooldown: 1s }}
  ops:
    kind: slack
    webhook_url: "http://127.0.0.1:{slack}/services/T0RDX/B0RDX/{SLACK_TOKEN}"
    text: "{{{{ companionId }}}} ended"
    timeout: 2s
    retry: {{ schedule: [100ms], jitter: false }}
  mail:
    kind: email
    smtp: {{ host: 127.0.0.1, port: {smtp}, tls: starttls, username: hookgate, password: "{SMTP_PASSWORD}", ca_file: '{ca}' }}
    from: 'hookgate <hookgate@example.com>'
    to: [support@example.com]
    subject: 'Call ended'
    body: 'Chat ended'
  audit:
    kind: log
routes:
  - name: all
    match: {{}}
    targets: [crm, failing, down, ops, mail, audit]
"#,
        sw_source = whsec(SW_SOURCE_KEY),
        sw_target = whsec(SW_TARGET_KEY),
    )
}

/// Every value that must never be shown.
fn secrets() -> Vec<String> {
    let mut all: Vec<String> = [
        VERIFY_SECRET,
        VERIFY_OLD_SECRET,
        SW_SOURCE_KEY,
        ADMIN_TOKEN,
        WRONG_TOKEN,
        CRM_SECRET,
        CRM_BEARER,
        URL_USER,
        URL_PASSWORD,
        URL_QUERY,
        DOWN_QUERY,
        SW_TARGET_KEY,
        SLACK_TOKEN,
        SMTP_PASSWORD,
        RELOAD_ONLY_SECRET,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    for key in [SW_SOURCE_KEY, SW_TARGET_KEY] {
        all.push(whsec(key));
        all.push(B64.encode(key));
    }
    // AUTH PLAIN and AUTH LOGIN put the password on the wire in base64.
    all.push(B64.encode(format!("\0hookgate\0{SMTP_PASSWORD}")));
    all.push(B64.encode(SMTP_PASSWORD));
    all
}

fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn body(companion: &str) -> String {
    crate::common::event("status-changed", "VOICE", "ended", companion)
}

/// POST `body` to `url` with `headers`; the status.
async fn post(url: &str, headers: &[(&str, String)], body: &str) -> u16 {
    let mut request = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    request
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// An admin request with `token`; the status and the body as text.
async fn admin(gw: &Process, method: reqwest::Method, path: &str, token: &str) -> (u16, String) {
    let resp = reqwest::Client::new()
        .request(method, gw.admin_url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

async fn deliveries(gw: &Process) -> Vec<Value> {
    let (status, text) = admin(
        gw,
        reqwest::Method::GET,
        "/admin/deliveries?limit=1000",
        ADMIN_TOKEN,
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    v["deliveries"].as_array().unwrap().clone()
}

/// Panic naming every `secrets` value found in `text` (`what` says where).
fn assert_clean(what: &str, text: &str, secrets: &[String]) {
    let found: Vec<&String> = secrets.iter().filter(|s| text.contains(*s)).collect();
    assert!(found.is_empty(), "{what} shows {found:?}:\n{text}");
}

#[tokio::test]
async fn no_secret_signature_or_token_reaches_logs_admin_api_or_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::generate(dir.path());
    let smtp = SmtpServer::start(
        dir.path(),
        SmtpOptions {
            starttls: true,
            auth: Some(("hookgate".into(), SMTP_PASSWORD.into())),
            ..SmtpOptions::default()
        },
        Some(&ca),
    );
    let sink = Sink::start().await;
    let failing = Sink::start().await;
    failing.always(Answer::status(500).with_body("upstream broke"));
    let slack = Sink::start().await;
    slack.script([Answer::status(500)]);
    slack.always(Answer::status(200).with_body("ok"));
    let refused = RefusedPort::reserve();
    let down = refused.port;
    let ca_path = ca.ca_path.display().to_string();
    let yaml = |bad: Option<&str>| {
        config(
            sink.addr.port(),
            failing.addr.port(),
            down,
            slack.addr.port(),
            smtp.port,
            &ca_path,
            bad,
        )
    };
    let mut gw = Process::serve_with(
        dir.path(),
        &yaml(None),
        &["--log-format", "json"],
        &[("HOOKGATE_LOG", "debug")],
    );
    gw.wait_ready().await;
    let mut sent_signatures = Vec::new();

    // Inbound: both rotated secrets, a wrong and a missing signature, and a
    // standard-webhooks source signed right and wrong.
    let outrival = gw.url("/webhooks/outrival");
    for (i, secret) in [VERIFY_SECRET, VERIFY_OLD_SECRET].iter().enumerate() {
        let b = body(&format!("c-{i}"));
        let sig = sign(secret, b.as_bytes());
        sent_signatures.push(sig.clone());
        assert_eq!(post(&outrival, &[("x-signature", sig)], &b).await, 202);
    }
    let b = body("c-wrong");
    let wrong = sign("not-the-secret-at-all-000", b.as_bytes());
    sent_signatures.push(wrong.clone());
    assert_eq!(post(&outrival, &[("x-signature", wrong)], &b).await, 403);
    assert_eq!(post(&outrival, &[], &body("c-missing")).await, 401);

    let standard = gw.url("/webhooks/standard");
    let sw_sign = |key: &str, id: &str, b: &str| {
        Webhook::new(&whsec(key))
            .unwrap()
            .sign(id, now_s(), b.as_bytes())
            .unwrap()
    };
    let b = body("c-sw");
    let sig = sw_sign(SW_SOURCE_KEY, "msg_rdx_1", &b);
    sent_signatures.push(sig.clone());
    let headers = |id: &str, sig: String| {
        vec![
            ("webhook-id", id.to_owned()),
            ("webhook-timestamp", now_s().to_string()),
            ("webhook-signature", sig),
        ]
    };
    assert_eq!(post(&standard, &headers("msg_rdx_1", sig), &b).await, 202);
    let sig = sw_sign("rdx-some-other-key-0000000000", "msg_rdx_2", &b);
    sent_signatures.push(sig.clone());
    assert_eq!(post(&standard, &headers("msg_rdx_2", sig), &b).await, 403);

    // Every delivery ends: crm and mail delivered, ops after one 500,
    // failing (500s) and down (connection refused) exhausted.
    eventually(Duration::from_secs(15), "every delivery final", || async {
        let all = deliveries(&gw).await;
        all.len() == 18
            && all
                .iter()
                .all(|d| matches!(d["state"].as_str(), Some("delivered" | "dead")))
    })
    .await;
    let all = deliveries(&gw).await;
    let state_of = |target: &str| -> Vec<&str> {
        all.iter()
            .filter(|d| d["target"] == target)
            .map(|d| d["state"].as_str().unwrap())
            .collect()
    };
    for (target, state) in [
        ("crm", "delivered"),
        ("mail", "delivered"),
        ("ops", "delivered"),
        ("audit", "delivered"),
        ("failing", "dead"),
        ("down", "dead"),
    ] {
        assert_eq!(state_of(target), vec![state; 3], "{target}: {all:?}");
    }
    assert_eq!(smtp.messages().len(), 3);
    // The secrets were really used: the downstreams got them.
    let crm_request = &sink.received()[0];
    assert_eq!(
        crm_request.header("authorization"),
        Some(format!("Bearer {CRM_BEARER}").as_str())
    );
    assert!(crm_request.signature_valid(CRM_SECRET, "x-signature"));
    assert!(slack.count() >= 4, "ops was retried once per event");
    let outbound_signatures: Vec<String> = sink
        .received()
        .iter()
        .filter_map(|r| r.header("x-signature").map(str::to_owned))
        .chain(
            failing
                .received()
                .iter()
                .filter_map(|r| r.header("webhook-signature").map(str::to_owned)),
        )
        .collect();
    assert_eq!(outbound_signatures.len(), 9);

    // The admin API, with a wrong token and with the right one.
    let (status, _) = admin(&gw, reqwest::Method::GET, "/admin/config", WRONG_TOKEN).await;
    assert_eq!(status, 401);
    let mut details = String::new();
    for d in &all {
        let path = format!("/admin/deliveries/{}", d["id"].as_str().unwrap());
        let (status, text) = admin(&gw, reqwest::Method::GET, &path, ADMIN_TOKEN).await;
        assert_eq!(status, 200, "{text}");
        details.push_str(&text);
        details.push('\n');
    }
    let errors: Vec<&Value> = all
        .iter()
        .filter(|d| d["state"] == "dead")
        .map(|d| &d["last_error"])
        .collect();
    assert!(
        errors
            .iter()
            .all(|e| e.as_str().is_some_and(|e| !e.is_empty())),
        "dead letters carry an error: {errors:?}"
    );

    // A reload of a file whose bad lines hold secrets is refused.
    let bad = format!(
        "    secret: [\"{CRM_SECRET}\", \"{RELOAD_ONLY_SECRET}\"]\n    headers: {{ authorization: \"Bearer {CRM_BEARER}\", x-extra: [\"{RELOAD_ONLY_SECRET}\"] }}\n    passwrd: \"{RELOAD_ONLY_SECRET}\"\n"
    );
    let bad_yaml = yaml(Some(&bad))
        .replace("{PORT}", &gw.port.to_string())
        .replace("{ADMIN_PORT}", &gw.admin_port.to_string());
    std::fs::write(dir.path().join("rules.yaml"), bad_yaml).unwrap();
    let (status, reload) = admin(&gw, reqwest::Method::POST, "/admin/reload", ADMIN_TOKEN).await;
    assert_eq!(status, 422, "{reload}");
    let (status, config_view) =
        admin(&gw, reqwest::Method::GET, "/admin/config", ADMIN_TOKEN).await;
    assert_eq!(status, 200);
    let view: Value = serde_json::from_str(&config_view).unwrap();
    assert!(
        view["last_reload_error"]["message"].is_string(),
        "{config_view}"
    );
    let metrics = gw.metrics_text().await;
    // The POST and, racing it, the file watcher may each have failed once.
    let failed: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("hookgate_config_reloads_total{result=\"error\"} "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    assert!(failed >= 1, "{metrics}");

    let status = gw.terminate();
    assert!(status.success(), "exit status {status}");
    let stderr = gw.stderr();
    let stdout = gw.stdout();

    let mut forbidden = secrets();
    forbidden.extend(sent_signatures);
    forbidden.extend(outbound_signatures);
    assert_clean("stderr", &stderr, &forbidden);
    assert_clean("stdout", &stdout, &forbidden);
    assert_clean("the reload answer", &reload, &forbidden);
    assert_clean("/admin/config", &config_view, &forbidden);
    assert_clean("the delivery details", &details, &forbidden);
    assert_clean("/metrics", &metrics, &forbidden);
    // Not vacuous: the run did log, at debug, every attempt.
    assert!(stderr.contains("delivery attempt failed"), "{stderr}");
    assert!(stderr.contains("DEBUG"), "debug logging was on");
    assert!(stderr.contains("config reload failed"), "{stderr}");
    // The refused keys are named (the values are checked below).
    let message = view["last_reload_error"]["message"].as_str().unwrap();
    for key in [
        "targets.crm.secret",
        "targets.crm.headers.x-extra",
        "targets.crm.passwrd",
    ] {
        assert!(message.contains(key), "{message}");
    }

    // --log-format json: every line of the log is one JSON object.
    for line in stderr.lines() {
        let parsed: Result<Value, _> = serde_json::from_str(line);
        assert!(
            parsed.as_ref().is_ok_and(Value::is_object),
            "not one JSON object: {line}"
        );
    }
}
