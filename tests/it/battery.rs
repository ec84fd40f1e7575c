//! The bad-input battery: malformed, hostile and odd requests sent over raw
//! sockets to the real binary. Each gets DESIGN.md section 4's answer with a
//! `{"error", "message"}` body (or 202 where the request is fine after all),
//! the process keeps serving, and exactly the accepted events are stored.
//! Then a flood of large unsigned bodies, against the memory bound.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{self, Process, SECRET, sign};

/// A source, a log target and a route for everything; dedupe off, so the
/// same body may be sent twice.
fn config() -> String {
    common::process_config_yaml(
        "dedupe: { window: 0s }\ntargets:\n  audit: { kind: log, path: ./audit.log }\n\
         routes:\n  - name: calls\n    match: { event: status-changed }\n    targets: [audit]\n\
         \x20 - name: functions\n    match: { event: function-call }\n    targets: [audit]\n",
    )
}

const EVENT: &str =
    r#"{"event":"status-changed","type":"VOICE","status":"ended","companionId":"c-1","data":{}}"#;

/// A POST of `body` with these `x-signature` values and `extra` header
/// lines (raw bytes), its length declared.
fn post(body: &[u8], signatures: &[&str], extra: &[u8]) -> Vec<u8> {
    let mut out = b"POST /webhooks/outrival HTTP/1.1\r\nhost: x\r\n".to_vec();
    for sig in signatures {
        out.extend_from_slice(format!("x-signature: {sig}\r\n").as_bytes());
    }
    out.extend_from_slice(extra);
    out.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
    out
}

/// A POST of `body`, signed, with `extra` header lines.
fn signed(body: &[u8], extra: &str) -> Vec<u8> {
    post(body, &[&sign(SECRET, body)], extra.as_bytes())
}

/// One answer: status, head, body.
#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not a JSON body ({e}): {self:?}"))
    }
}

/// Every complete answer in `bytes`.
fn answers(bytes: &[u8]) -> Vec<Answer> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while let Some(end) = rest.windows(4).position(|w| w == b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&rest[..end]).into_owned();
        let status = head
            .get(9..12)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status line: {head}"));
        let length = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .and_then(|n| n.trim().parse::<usize>().ok())
            .unwrap_or(0);
        let body_end = (end + 4 + length).min(rest.len());
        let body = String::from_utf8_lossy(&rest[end + 4..body_end]).into_owned();
        out.push(Answer { status, head, body });
        rest = &rest[body_end..];
    }
    out
}

/// Send `request` on a new connection, half-close it, and read every answer
/// until the server closes (or 10 s pass).
async fn exchange(port: u16, request: &[u8]) -> Vec<Answer> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    // The server may answer and close before all of a huge request is sent.
    let _ = stream.write_all(request).await;
    let _ = stream.shutdown().await;
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut got)).await;
    answers(&got)
}

/// One refusal with its code.
async fn refused(port: u16, name: &str, request: &[u8], status: u16, error: &str) {
    let got = exchange(port, request).await;
    let [answer] = &got[..] else {
        panic!("{name}: expected one answer, got {got:?}");
    };
    assert_eq!(answer.status, status, "{name}: {answer:?}");
    assert_eq!(answer.json()["error"], error, "{name}: {answer:?}");
    assert!(answer.json()["message"].is_string(), "{name}");
}

/// One acceptance; returns the event id.
async fn accepted(port: u16, name: &str, request: &[u8]) -> String {
    let got = exchange(port, request).await;
    let [answer] = &got[..] else {
        panic!("{name}: expected one answer, got {got:?}");
    };
    assert_eq!(answer.status, 202, "{name}: {answer:?}");
    answer.json()["id"].as_str().expect("an id").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_input_gets_its_answer_and_nothing_extra_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let mut gw = Process::serve(dir.path(), &config());
    gw.wait_ready().await;
    let port = gw.port;
    let ev = EVENT.as_bytes();
    let mut stored = Vec::new();

    // Heads hyper refuses before hookgate sees them: still JSON bodies.
    let huge = format!("x-big: {}\r\n", "a".repeat(70 * 1024));
    refused(
        port,
        "huge header",
        &signed(ev, &huge),
        431,
        "headers_too_large",
    )
    .await;
    let many: String = (0..150).map(|i| format!("x-h{i}: v\r\n")).collect();
    refused(
        port,
        "many headers",
        &signed(ev, &many),
        431,
        "headers_too_large",
    )
    .await;
    let nul = signed(ev, "x-note: a\0b\r\n");
    refused(port, "NUL in a header", &nul, 400, "bad_request").await;
    let mut bad_chunks =
        b"POST /webhooks/outrival HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n"
            .to_vec();
    bad_chunks.extend_from_slice(b"zz\r\nabc\r\n0\r\n\r\n");
    refused(port, "bad chunk size", &bad_chunks, 400, "bad_request").await;
    let both = signed(ev, "transfer-encoding: chunked\r\n");
    refused(port, "length and chunked", &both, 400, "bad_request").await;
    let mut short = signed(ev, "");
    short.truncate(short.len() - 10);
    refused(
        port,
        "body shorter than its length",
        &short,
        400,
        "bad_request",
    )
    .await;

    // Signatures.
    let sig = sign(SECRET, ev);
    for (name, signatures) in [
        ("valid then invalid signature", [sig.as_str(), "00ff"]),
        ("invalid then valid signature", ["00ff", sig.as_str()]),
    ] {
        let request = post(ev, &signatures, b"");
        refused(port, name, &request, 401, "malformed_signature").await;
    }
    let mut bad_utf8 = sig.clone().into_bytes();
    bad_utf8[0] = 0xff;
    let request = [
        b"POST /webhooks/outrival HTTP/1.1\r\nx-signature: ".as_slice(),
        &bad_utf8,
        format!("\r\ncontent-length: {}\r\n\r\n{EVENT}", ev.len()).as_bytes(),
    ]
    .concat();
    refused(
        port,
        "invalid UTF-8 in the signature",
        &request,
        401,
        "malformed_signature",
    )
    .await;

    // Bodies (all signed: these are authentic but malformed events).
    let body_cases: [(&str, Vec<u8>, &str); 7] = [
        ("empty body", Vec::new(), "invalid_json"),
        ("non-object JSON", b"[1,2]".to_vec(), "invalid_json"),
        (
            "invalid UTF-8 in the body",
            b"{\"a\":\"\xff\xfe\"}".to_vec(),
            "invalid_json",
        ),
        ("NUL in the body", b"{\"a\":1}\0".to_vec(), "invalid_json"),
        (
            "a number past f64",
            br#"{"event":"x","n":1e400}"#.to_vec(),
            "invalid_json",
        ),
        (
            "10 000 levels of arrays",
            [vec![b'['; 10_000], vec![b']'; 10_000]].concat(),
            "invalid_json",
        ),
        (
            "10 000 levels of objects",
            [b"{\"a\":".repeat(10_000), b"1".to_vec(), vec![b'}'; 10_000]].concat(),
            "invalid_json",
        ),
    ];
    for (name, body, error) in body_cases {
        refused(port, name, &signed(&body, ""), 400, error).await;
    }

    // Odd but acceptable.
    stored.push(
        accepted(
            port,
            "a 5 MB string",
            &signed(
                format!(
                    r#"{{"event":"status-changed","data":{{"s":"{}"}}}}"#,
                    "x".repeat(5_000_000)
                )
                .as_bytes(),
                "",
            ),
        )
        .await,
    );
    let request = post(ev, &[&sig], b"x-note: caf\xe9\r\n");
    stored.push(accepted(port, "invalid UTF-8 in another header", &request).await);
    let target = b"POST http://hookgate.example/webhooks/outrival HTTP/1.1".to_vec();
    let absolute = [
        target,
        signed(ev, "")[b"POST /webhooks/outrival HTTP/1.1".len()..].to_vec(),
    ]
    .concat();
    stored.push(accepted(port, "an absolute-form target", &absolute).await);
    // Duplicate keys: the last value wins, as in JSON.parse and serde_json;
    // routing and the stored body agree (the body is kept unchanged).
    let dup = br#"{"event":"status-changed","event":"function-call","data":{}}"#;
    let got = exchange(port, &signed(dup, "")).await;
    assert_eq!(got[0].status, 202, "{got:?}");
    assert_eq!(got[0].json()["routes"], serde_json::json!(["functions"]));
    stored.push(got[0].json()["id"].as_str().expect("id").to_owned());
    // Two requests in one write: two answers, in order.
    let other = EVENT.replace("c-1", "c-2");
    let got = exchange(
        port,
        &[signed(ev, ""), signed(other.as_bytes(), "")].concat(),
    )
    .await;
    assert_eq!(
        got.iter().map(|a| a.status).collect::<Vec<_>>(),
        [202, 202],
        "{got:?}"
    );
    for a in &got {
        stored.push(a.json()["id"].as_str().expect("id").to_owned());
    }

    // Methods and framing of the request line.
    let unknown = [b"FOO".as_slice(), &signed(ev, "")[4..]].concat();
    let got = exchange(port, &unknown).await;
    assert_eq!(got[0].status, 405, "{got:?}");
    assert_eq!(got[0].json()["error"], "method_not_allowed");
    assert!(got[0].head.contains("allow: POST"), "{got:?}");
    // HTTP/1.0 without a length has no body: the signature (of the event)
    // does not match the empty body.
    let http10 = format!("POST /webhooks/outrival HTTP/1.0\r\nx-signature: {sig}\r\n\r\n{EVENT}");
    refused(
        port,
        "HTTP/1.0 without a length",
        http10.as_bytes(),
        403,
        "invalid_signature",
    )
    .await;

    // Still serving, and exactly the accepted events are stored.
    stored.push(accepted(port, "a plain event afterwards", &signed(ev, "")).await);
    let client = reqwest::Client::new();
    let listed: serde_json::Value = client
        .get(gw.admin_url("/admin/deliveries?limit=1000"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut events: Vec<String> = listed["deliveries"]
        .as_array()
        .expect("deliveries")
        .iter()
        .map(|d| d["event_id"].as_str().expect("event_id").to_owned())
        .collect();
    events.sort();
    stored.sort();
    assert_eq!(events, stored);
    assert!(gw.child.try_wait().unwrap().is_none(), "the process exited");
}

/// `VmRSS` and `VmHWM` (the peak) of process `pid`, in MiB.
fn rss_mib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb / 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// 200 clients at once, each sending a 10 MiB body with a wrong (well-formed)
/// signature: every one is answered 403 or 503 `overloaded`, and the bodies
/// held at once stay within `server.max_inflight_bytes` (256 MiB by
/// default), so the process stays far from the 2 GiB the bodies add up to,
/// and gives the memory back afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_large_forged_bodies_stays_within_the_memory_bound() {
    const CLIENTS: usize = 200;
    const BODY: usize = 10 << 20;
    let dir = tempfile::tempdir().unwrap();
    let mut gw = Process::serve(dir.path(), &config());
    gw.wait_ready().await;
    let pid = gw.child.id();
    let (idle_before, _) = rss_mib(pid);
    let forged = "ab".repeat(32);
    let request = bytes::Bytes::from(post(&vec![b'x'; BODY], &[&forged], b""));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let request = request.clone();
            let port = gw.port;
            tokio::spawn(async move {
                let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
                let _ = stream.write_all(&request).await;
                let mut got = Vec::new();
                let _ = tokio::time::timeout(Duration::from_secs(60), stream.read_to_end(&mut got))
                    .await;
                answers(&got)
                    .first()
                    .map(|a| (a.status, a.json()["error"].clone()))
            })
        })
        .collect();
    let mut statuses = std::collections::BTreeMap::new();
    for client in clients {
        let answer = client.await.unwrap();
        let key = answer.map_or_else(|| "no answer".to_owned(), |(s, e)| format!("{s} {e}"));
        *statuses.entry(key).or_insert(0) += 1;
    }
    let (_, peak) = rss_mib(pid);
    eprintln!("flood: {statuses:?}; RSS idle {idle_before} MiB, peak {peak} MiB");
    // 403 once read and checked; 503 when no room came in time; 408 when
    // room came too late to read the rest before the deadline.
    for key in statuses.keys() {
        assert!(
            [
                "403 \"invalid_signature\"",
                "503 \"overloaded\"",
                "408 \"request_timeout\""
            ]
            .contains(&key.as_str()),
            "{statuses:?}"
        );
    }
    assert!(
        peak < 512,
        "peak RSS {peak} MiB (idle before: {idle_before} MiB)"
    );
    let ended = std::time::Instant::now();
    let mut after = rss_mib(pid).0;
    while after >= 128 && ended.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        after = rss_mib(pid).0;
    }
    eprintln!("flood: RSS {after} MiB {:?} after", ended.elapsed());
    assert!(after < 128, "RSS still {after} MiB 20 s after the flood");
    assert!(gw.child.try_wait().unwrap().is_none(), "the process exited");
}
