//! Every row of DESIGN.md section 4 that the skeleton covers, through a real
//! socket to the in-process gateway.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{self, Gateway, SECRET, event, post_signed, sign};

/// One `log` target writing to `dir/audit.log`, and a route to it for everything.
fn log_only(dir: &std::path::Path) -> String {
    format!(
        "targets:\n  audit:\n    kind: log\n    path: {}\nroutes:\n  - name: everything\n    match: {{}}\n    targets: [audit]\n",
        dir.join("audit.log").display()
    )
}

async fn gateway(dir: &std::path::Path, extra: &str) -> Gateway {
    let yaml = common::config_yaml(dir, &format!("{extra}{}", log_only(dir)));
    Gateway::start(dir, &yaml).await
}

async fn json(resp: reqwest::Response) -> (u16, serde_json::Value) {
    let status = resp.status().as_u16();
    let body = resp.json().await.unwrap_or(serde_json::Value::Null);
    (status, body)
}

#[tokio::test]
async fn signed_event_is_accepted_with_ids() {
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(dir.path(), "").await;
    let body = event("status-changed", "VOICE", "ended", "c-1");
    let (status, v) = json(post_signed(&gw.url("/webhooks/outrival"), &body).await).await;
    assert_eq!(status, 202, "{v}");
    let id = v["id"].as_str().unwrap();
    assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 7);
    assert_eq!(v["routes"], serde_json::json!(["everything"]));
    assert_eq!(v["deliveries"][0]["target"], "audit");
    assert!(v["deliveries"][0]["id"].is_string());
    gw.stop().await;
}

#[tokio::test]
async fn uppercase_signature_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(dir.path(), "").await;
    let body = event("status-changed", "VOICE", "ended", "c-1");
    let resp = reqwest::Client::new()
        .post(gw.url("/webhooks/outrival"))
        .header("x-signature", sign(SECRET, body.as_bytes()).to_uppercase())
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    gw.stop().await;
}

#[tokio::test]
async fn signature_failures_are_401_or_403() {
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(dir.path(), "").await;
    let body = event("status-changed", "VOICE", "ended", "c-1");
    let client = reqwest::Client::new();
    let url = gw.url("/webhooks/outrival");

    let (s, v) = json(client.post(&url).body(body.clone()).send().await.unwrap()).await;
    assert_eq!((s, v["error"].as_str()), (401, Some("missing_signature")));
    assert!(v["message"].is_string());

    let (s, v) = json(
        client
            .post(&url)
            .header("x-signature", "zz-not-hex")
            .body(body.clone())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((s, v["error"].as_str()), (401, Some("malformed_signature")));

    let wrong = sign("some-other-secret-value", body.as_bytes());
    let (s, v) = json(
        client
            .post(&url)
            .header("x-signature", &wrong)
            .body(body.clone())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((s, v["error"].as_str()), (403, Some("invalid_signature")));
    // Error bodies never echo the signature.
    assert!(!v.to_string().contains(&wrong));

    // A valid signature over different bytes: 403 (verified over the raw body).
    let sig = sign(SECRET, body.as_bytes());
    let tampered = body.replace("c-1", "c-2");
    let (s, _) = json(
        client
            .post(&url)
            .header("x-signature", &sig)
            .body(tampered)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 403);
    gw.stop().await;
}

#[tokio::test]
async fn signature_is_checked_before_json_is_parsed() {
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(dir.path(), "").await;
    let resp = reqwest::Client::new()
        .post(gw.url("/webhooks/outrival"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    gw.stop().await;
}

#[tokio::test]
async fn bad_json_and_deep_nesting_are_400_invalid_json() {
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(dir.path(), "").await;
    let url = gw.url("/webhooks/outrival");
    for body in ["{not json", "[1,2]", "\"str\"", ""] {
        let (s, v) = json(post_signed(&url, body).await).await;
        assert_eq!(
            (s, v["error"].as_str()),
            (400, Some("invalid_json")),
            "{body:?}"
        );
    }
    // 129 nested objects: one too many (the top-level object is depth 1).
    let deep = format!("{}1{}", "{\"a\":".repeat(129), "}".repeat(129));
    let (s, v) = json(post_signed(&url, &deep).await).await;
    assert_eq!((s, v["error"].as_str()), (400, Some("invalid_json")));
    assert!(v["message"].as_str().unwrap().contains("128"));
    let ok = format!("{}1{}", "{\"a\":".repeat(128), "}".repeat(128));
    assert_eq!(post_signed(&url, &ok).await.status(), 202);
    gw.stop().await;
}

#[tokio::test]
async fn lenient_source_stores_odd_events_and_counts_a_schema_warning() {
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(dir.path(), "").await;
    let body = r#"{"event":"brand-new-event","type":"VOICE","companionId":"c","data":{"messages":[]},"extra":{"kept":true}}"#;
    let (s, v) = json(post_signed(&gw.url("/webhooks/outrival"), body).await).await;
    assert_eq!(s, 202, "{v}");
    let metrics = gw.metrics_text().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("hookgate_requests_total")
                && l.contains("outcome=\"schema_warning\"")),
        "{metrics}"
    );
    // Unknown extra fields are kept: the log target gets the event as sent.
    let log_path = dir.path().join("audit.log");
    common::eventually(Duration::from_secs(5), "the event in audit.log", || {
        let p = log_path.clone();
        async move { std::fs::read_to_string(p).is_ok_and(|s| s.contains("\"kept\":true")) }
    })
    .await;
    gw.stop().await;
}

#[tokio::test]
async fn strict_source_refuses_odd_events_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = common::config_yaml(dir.path(), &log_only(dir.path()))
        .replace("    verify:\n", "    strict: true\n    verify:\n");
    let gw = Gateway::start(dir.path(), &yaml).await;
    let body =
        r#"{"event":"status-changed","type":"VOICE","companionId":"c","data":{"messages":[]}}"#;
    let (s, v) = json(post_signed(&gw.url("/webhooks/outrival"), body).await).await;
    assert_eq!((s, v["error"].as_str()), (400, Some("invalid_event")));
    assert_eq!(v["message"], "data.startedAt is required");
    gw.stop().await;
}

#[tokio::test]
async fn unknown_path_is_404_and_wrong_method_is_405() {
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(dir.path(), "").await;
    let (s, v) = json(reqwest::get(gw.url("/nope")).await.unwrap()).await;
    assert_eq!((s, v["error"].as_str()), (404, Some("not_found")));
    let (s, v) = json(post_signed(&gw.url("/webhooks/other"), "{}").await).await;
    assert_eq!((s, v["error"].as_str()), (404, Some("not_found")));

    let resp = reqwest::get(gw.url("/webhooks/outrival")).await.unwrap();
    assert_eq!(resp.headers().get("allow").unwrap(), "POST");
    let (s, v) = json(resp).await;
    assert_eq!((s, v["error"].as_str()), (405, Some("method_not_allowed")));
    gw.stop().await;
}

#[tokio::test]
async fn oversized_bodies_are_413_with_or_without_content_length() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = common::config_yaml(dir.path(), &log_only(dir.path())).replace(
        "  read_timeout: 2s\n",
        "  read_timeout: 2s\n  max_body_bytes: 1KiB\n",
    );
    let gw = Gateway::start(dir.path(), &yaml).await;
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(2000));

    // With content-length: refused before the body is read, even unsigned (413 before 401).
    let (s, v) = json(
        reqwest::Client::new()
            .post(gw.url("/webhooks/outrival"))
            .body(big.clone())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((s, v["error"].as_str()), (413, Some("payload_too_large")));

    // Chunked: counted as it streams, never 411.
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    let sig = sign(SECRET, big.as_bytes());
    let mut req = format!(
        "POST /webhooks/outrival HTTP/1.1\r\nhost: x\r\nx-signature: {sig}\r\ntransfer-encoding: chunked\r\n\r\n"
    );
    for chunk in big.as_bytes().chunks(500) {
        req.push_str(&format!(
            "{:x}\r\n{}\r\n",
            chunk.len(),
            std::str::from_utf8(chunk).unwrap()
        ));
    }
    req.push_str("0\r\n\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut resp = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut resp)).await;
    let resp = String::from_utf8_lossy(&resp);
    assert!(resp.starts_with("HTTP/1.1 413"), "{resp}");
    assert!(resp.contains("payload_too_large"), "{resp}");

    // Exactly at the limit is fine.
    let fits = format!("{{\"pad\":\"{}\"}}", "x".repeat(1024 - 10));
    assert_eq!(fits.len(), 1024);
    assert_eq!(
        post_signed(&gw.url("/webhooks/outrival"), &fits)
            .await
            .status(),
        202
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_body_that_dribbles_in_gets_408() {
    let dir = tempfile::tempdir().unwrap();
    // read_timeout is 2s in the test config.
    let gw = gateway(dir.path(), "").await;
    let body = event("status-changed", "VOICE", "ended", "c-1");
    let sig = sign(SECRET, body.as_bytes());
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    let head = format!(
        "POST /webhooks/outrival HTTP/1.1\r\nhost: x\r\nx-signature: {sig}\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let started = std::time::Instant::now();
    // One byte every 300 ms: the whole body would take far longer than 2 s.
    let mut resp = Vec::new();
    for b in body.as_bytes() {
        if stream.write_all(&[*b]).await.is_err() {
            break;
        }
        let mut buf = [0u8; 1024];
        if let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(300), stream.read(&mut buf)).await
        {
            resp.extend_from_slice(&buf[..n]);
            break;
        }
    }
    let text = String::from_utf8_lossy(&resp);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("request_timeout"), "{text}");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(1500) && elapsed < Duration::from_secs(4),
        "{elapsed:?}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn headers_that_never_finish_get_the_connection_closed() {
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(dir.path(), "").await;
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    stream
        .write_all(b"POST /webhooks/outrival HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(6), stream.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the connection was not closed");
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(1500), "{elapsed:?}");
    gw.stop().await;
}

#[tokio::test]
async fn connections_beyond_max_connections_wait() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = common::config_yaml(dir.path(), &log_only(dir.path())).replace(
        "  read_timeout: 2s\n",
        "  read_timeout: 30s\n  max_connections: 2\n",
    );
    let gw = Gateway::start(dir.path(), &yaml).await;
    let url = gw.url("/webhooks/outrival");
    // Two idle keep-alive connections hold both slots.
    let mut a = TcpStream::connect(gw.addr).await.unwrap();
    let mut b = TcpStream::connect(gw.addr).await.unwrap();
    a.write_all(b"GET /x HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    b.write_all(b"GET /x HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 512];
    let _ = a.read(&mut buf).await.unwrap();
    let _ = b.read(&mut buf).await.unwrap();

    let body = event("status-changed", "VOICE", "ended", "c-1");
    let third = tokio::spawn({
        let url = url.clone();
        let body = body.clone();
        async move { post_signed(&url, &body).await.status().as_u16() }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !third.is_finished(),
        "a third connection was served beyond max_connections"
    );
    drop(a);
    let status = tokio::time::timeout(Duration::from_secs(5), third)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status, 202);
    drop(b);
    gw.stop().await;
}

#[tokio::test]
async fn probes_answer() {
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(dir.path(), "").await;
    assert_eq!(common::get_status(&gw.admin_url("/healthz")).await, 200);
    assert_eq!(common::get_status(&gw.admin_url("/readyz")).await, 200);
    gw.stop().await;
}

#[tokio::test]
async fn a_client_that_half_closes_after_its_request_still_gets_the_answer() {
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(dir.path(), "").await;
    let body = event("status-changed", "VOICE", "ended", "half-closed");
    let sig = sign(SECRET, body.as_bytes());
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    let request = format!(
        "POST /webhooks/outrival HTTP/1.1\r\nhost: x\r\nx-signature: {sig}\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    stream.shutdown().await.unwrap(); // FIN: nothing more from this client
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut answer))
        .await
        .expect("an answer before the timeout")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
    let id = answer
        .split("\"id\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the event id in the answer");
    // What it was told was stored is stored.
    let (status, stored) = gw.admin_get(&format!("/admin/deliveries?event_id={id}")).await;
    assert_eq!(status, 200);
    assert_eq!(stored["deliveries"].as_array().map(Vec::len), Some(1), "{stored}");
    gw.stop().await;
}
