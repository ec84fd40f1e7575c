//! The `github` and `standard-webhooks` signing schemes, both ways, through
//! the in-process gateway on loopback.
//!
//! Inbound requests are signed here independently of hookgate's own signing
//! code: GitHub's with the `hmac` crate, Standard Webhooks' with the spec's
//! reference library (the `standardwebhooks` crate). Outbound requests land in
//! a recording [`Sink`] and are checked with that same reference library.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use serde_json::Value;
use standardwebhooks::Webhook;

use crate::common::sink::{Answer, Sink};
use crate::common::{self, Gateway, eventually, post_signed};

const GH_SECRET: &str = "github-secret-0123456789abcdef";
const GH_OLD_SECRET: &str = "github-old-secret-0123456789";
/// The Standard Webhooks specification's example secret, and the one of its
/// reference library's tests, as the current and the previous secret.
const SW_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SW_OLD_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
/// The downstream's secret for the outbound tests (32 bytes).
const TARGET_SW_SECRET: &str = "whsec_ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+f4CBgoM=";

const GH_PATH: &str = "/webhooks/github";
const SW_PATH: &str = "/webhooks/standard";

/// A github and a standard-webhooks source (both with a rotated secret) and
/// a log target that takes everything.
async fn gateway(dir: &std::path::Path) -> Gateway {
    let sources = format!(
        "  - {{ name: gh, path: {GH_PATH}, schema: json, verify: {{ scheme: github, secrets: [{GH_SECRET}, {GH_OLD_SECRET}] }} }}
  - {{ name: sw, path: {SW_PATH}, schema: json, verify: {{ scheme: standard-webhooks, secrets: ['{SW_SECRET}', '{SW_OLD_SECRET}'] }} }}
"
    );
    let rest = format!(
        "targets:\n  audit: {{ kind: log, path: '{}' }}\nroutes: [{{ name: everything, match: {{}}, targets: [audit] }}]\n",
        dir.join("audit.log").display()
    );
    Gateway::start(dir, &common::config_yaml_sources(dir, &sources, &rest)).await
}

/// `sha256=<hex>` as GitHub computes it.
fn github_signature(secret: &str, body: &str) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// `v1,<base64>` as the reference library computes it.
fn sw_signature(secret: &str, id: &str, timestamp: i64, body: &str) -> String {
    Webhook::new(secret)
        .unwrap()
        .sign(id, timestamp, body.as_bytes())
        .unwrap()
}

fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// POST `body` with `headers` (a name may repeat) and read the JSON answer.
async fn post(url: &str, headers: &[(&str, String)], body: &str) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let resp = request.body(body.to_owned()).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// The three Standard Webhooks headers for `body`, signed with `secret`.
fn sw_headers(secret: &str, id: &str, timestamp: i64, body: &str) -> Vec<(&'static str, String)> {
    vec![
        ("webhook-id", id.to_owned()),
        ("webhook-timestamp", timestamp.to_string()),
        (
            "webhook-signature",
            sw_signature(secret, id, timestamp, body),
        ),
    ]
}

fn assert_error(got: &(u16, Value), status: u16, code: &str) {
    assert_eq!(
        (got.0, got.1["error"].as_str()),
        (status, Some(code)),
        "{}",
        got.1
    );
}

#[tokio::test]
async fn github_requests_are_verified_and_deduped_on_the_delivery_guid() {
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(dir.path()).await;
    let url = gw.url(GH_PATH);
    let body = r#"{"action":"opened","number":1}"#;
    let sig = || ("x-hub-signature-256", github_signature(GH_SECRET, body));
    let guid = |g: &str| ("x-github-delivery", g.to_owned());

    let first = post(&url, &[sig(), guid("guid-1")], body).await;
    assert_eq!(first.0, 202, "{}", first.1);

    // Same delivery GUID, different (validly signed) body: GitHub redelivered.
    let other = r#"{"action":"opened","number":1,"redelivery":true}"#;
    let sig_other = ("x-hub-signature-256", github_signature(GH_SECRET, other));
    let dup = post(&url, &[sig_other, guid("guid-1")], other).await;
    assert_eq!(dup.0, 200, "{}", dup.1);
    assert_eq!(dup.1["duplicate"], true);
    assert_eq!(dup.1["id"], first.1["id"]);

    // The same body under a new GUID is a new event; the old secret still
    // verifies (rotation).
    let old = ("x-hub-signature-256", github_signature(GH_OLD_SECRET, body));
    assert_eq!(post(&url, &[old, guid("guid-2")], body).await.0, 202);

    // Without a GUID the body decides.
    let other_body = r#"{"action":"closed"}"#;
    let sig_closed = || {
        (
            "x-hub-signature-256",
            github_signature(GH_SECRET, other_body),
        )
    };
    assert_eq!(post(&url, &[sig_closed()], other_body).await.0, 202);
    let again = post(&url, &[sig_closed()], other_body).await;
    assert_eq!((again.0, &again.1["duplicate"]), (200, &Value::Bool(true)));

    // Refusals.
    let wrong = github_signature("not-the-secret-0123456789", body);
    let got = post(&url, &[("x-hub-signature-256", wrong.clone())], body).await;
    assert_error(&got, 403, "invalid_signature");
    assert!(!got.1.to_string().contains(&wrong[7..]), "{}", got.1);
    // The provider's own header is not GitHub's.
    let bare = github_signature(GH_SECRET, body)[7..].to_owned();
    assert_error(
        &post(&url, &[("x-signature", bare.clone())], body).await,
        401,
        "missing_signature",
    );
    assert_error(
        &post(&url, &[("x-hub-signature-256", bare)], body).await,
        401,
        "malformed_signature",
    );
    let twice = post(&url, &[sig(), sig(), guid("guid-3")], body).await;
    assert_error(&twice, 401, "malformed_signature");
    assert!(
        twice.1["message"]
            .as_str()
            .unwrap()
            .contains("x-hub-signature-256 header is given more than once"),
        "{}",
        twice.1
    );
    gw.stop().await;
}

#[tokio::test]
async fn standard_webhooks_requests_are_verified_within_five_minutes() {
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(dir.path()).await;
    let url = gw.url(SW_PATH);
    let body = r#"{"type":"invoice.paid","amount":42}"#;

    let first = post(&url, &sw_headers(SW_SECRET, "msg_1", now_s(), body), body).await;
    assert_eq!(first.0, 202, "{}", first.1);

    // The sender's retry: same webhook-id, fresh timestamp and signature,
    // and here even a different body: the same event.
    let retried = r#"{"type":"invoice.paid","amount":42,"retry":1}"#;
    let dup = post(
        &url,
        &sw_headers(SW_SECRET, "msg_1", now_s() + 1, retried),
        retried,
    )
    .await;
    assert_eq!(dup.0, 200, "{}", dup.1);
    assert_eq!(
        (&dup.1["duplicate"], &dup.1["id"]),
        (&Value::Bool(true), &first.1["id"])
    );

    // Rotation: the old secret verifies; so does a header carrying several
    // signatures of which only one matches.
    let ts = now_s();
    assert_eq!(
        post(&url, &sw_headers(SW_OLD_SECRET, "msg_2", ts, body), body)
            .await
            .0,
        202
    );
    let several = format!(
        "{} {}",
        sw_signature(
            "whsec_c29tZW9uZS1lbHNlcy1rZXktMDEyMzQ1Njc4OQ==",
            "msg_3",
            ts,
            body
        ),
        sw_signature(SW_SECRET, "msg_3", ts, body)
    );
    let headers = [
        ("webhook-id", "msg_3".to_owned()),
        ("webhook-timestamp", ts.to_string()),
        ("webhook-signature", several),
    ];
    assert_eq!(post(&url, &headers, body).await.0, 202);

    // Wrong secret: 403.
    let wrong = "whsec_c29tZW9uZS1lbHNlcy1rZXktMDEyMzQ1Njc4OQ==";
    let got = post(&url, &sw_headers(wrong, "msg_4", now_s(), body), body).await;
    assert_error(&got, 403, "invalid_signature");
    // Correctly signed, but stale or from the future: 403.
    let stale = post(
        &url,
        &sw_headers(SW_SECRET, "msg_5", now_s() - 600, body),
        body,
    )
    .await;
    assert_error(&stale, 403, "invalid_signature");
    assert!(
        stale.1["message"].as_str().unwrap().contains("old"),
        "{}",
        stale.1
    );
    let future = post(
        &url,
        &sw_headers(SW_SECRET, "msg_6", now_s() + 600, body),
        body,
    )
    .await;
    assert_error(&future, 403, "invalid_signature");
    assert!(
        future.1["message"].as_str().unwrap().contains("future"),
        "{}",
        future.1
    );

    // Missing, repeated or malformed headers: 401.
    for missing in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        let mut headers = sw_headers(SW_SECRET, "msg_7", now_s(), body);
        headers.retain(|(name, _)| *name != missing);
        let got = post(&url, &headers, body).await;
        assert_error(&got, 401, "missing_signature");
        assert!(
            got.1["message"].as_str().unwrap().contains(missing),
            "{}",
            got.1
        );
    }
    let mut headers = sw_headers(SW_SECRET, "msg_8", now_s(), body);
    headers.push(headers[2].clone());
    assert_error(
        &post(&url, &headers, body).await,
        401,
        "malformed_signature",
    );
    let mut headers = sw_headers(SW_SECRET, "msg_9", now_s(), body);
    headers[1].1 = "yesterday".into();
    assert_error(
        &post(&url, &headers, body).await,
        401,
        "malformed_signature",
    );

    // None of the refused requests was stored: msg_4..msg_9 are still new.
    let late = post(&url, &sw_headers(SW_SECRET, "msg_4", now_s(), body), body).await;
    assert_eq!(late.0, 202, "{}", late.1);
    gw.stop().await;
}

#[tokio::test]
async fn standard_webhooks_targets_sign_every_attempt_afresh() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    sink.script([Answer::status(500)]);
    // 1.1 s between the attempts: their unix-second timestamps must differ.
    let rest = format!(
        "targets:
  crm:
    kind: http
    url: {}
    secret: '{TARGET_SW_SECRET}'
    signature: {{ scheme: standard-webhooks }}
    retry: {{ schedule: [1100ms], jitter: false }}
routes: [{{ name: all, match: {{}}, targets: [crm] }}]
",
        sink.url("/hooks")
    );
    let gw = Gateway::start(dir.path(), &common::config_yaml(dir.path(), &rest)).await;
    let body = common::event("status-changed", "VOICE", "ended", "c-1");
    let resp = post_signed(&gw.url("/webhooks/outrival"), &body).await;
    assert_eq!(resp.status(), 202);
    let accepted: Value = resp.json().await.unwrap();
    let delivery_id = accepted["deliveries"][0]["id"].as_str().unwrap().to_owned();

    eventually(Duration::from_secs(10), "two attempts", || async {
        sink.count() >= 2
    })
    .await;
    let got = sink.received();
    let receiver = Webhook::new(TARGET_SW_SECRET).unwrap();
    let stranger = Webhook::new(SW_SECRET).unwrap();
    for (n, request) in got.iter().enumerate() {
        let attempt = (n + 1).to_string();
        assert_eq!(request.header("x-hookgate-attempt"), Some(attempt.as_str()));
        assert_eq!(
            request.body,
            body.as_bytes(),
            "the original body, byte for byte"
        );
        assert_eq!(request.header("webhook-id"), Some(delivery_id.as_str()));
        assert_eq!(
            request.header("webhook-id"),
            request.header("x-hookgate-delivery-id")
        );
        // The reference library accepts it (this also checks the timestamp
        // against its own clock), and computes exactly the same signature.
        receiver
            .verify(&request.body, &request.headers)
            .unwrap_or_else(|e| panic!("attempt {attempt}: {e}"));
        let ts: i64 = request
            .header("webhook-timestamp")
            .unwrap()
            .parse()
            .unwrap();
        assert!((now_s() - ts).abs() <= 10, "send time, not event time");
        assert_eq!(
            request.header("webhook-signature").unwrap(),
            receiver.sign(&delivery_id, ts, &request.body).unwrap()
        );
        // Under another secret it does not verify.
        assert!(stranger.verify(&request.body, &request.headers).is_err());
        assert_eq!(request.header("x-signature"), None);
    }
    let (first, second) = (&got[0], &got[1]);
    assert_ne!(
        first.header("webhook-timestamp"),
        second.header("webhook-timestamp"),
        "the retry carries its own send time"
    );
    assert_ne!(
        first.header("webhook-signature"),
        second.header("webhook-signature")
    );
    gw.delivery_reaches(&delivery_id, "state", "delivered")
        .await;
    gw.stop().await;
}
