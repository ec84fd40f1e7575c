//! The per-source inbound rate limit: 429 `rate_limited` with `Retry-After`,
//! checked after the signature so forged requests spend no budget. Target
//! limits are in `limits_target.rs`.
//!
//! The source has its own name: the metrics recorder is shared by every
//! gateway in this test binary.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::{self, Gateway, SECRET, event, post_signed};

/// A gateway whose one source, `metered`, allows 1 request/s with a burst of 3.
async fn metered_gateway(dir: &Path) -> Gateway {
    let source = format!(
        r#"  - name: metered
    path: /webhooks/metered
    verify: {{ scheme: outrival, secrets: ["{SECRET}"] }}
    rate_limit: {{ per_second: 1, burst: 3 }}
"#
    );
    Gateway::start(dir, &common::config_yaml_sources(dir, &source, "")).await
}

async fn post_forged(url: &str, body: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header(
            "x-signature",
            common::sign("not-the-secret", body.as_bytes()),
        )
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_source_over_its_limit_gets_429_and_forged_requests_spend_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let gw = metered_gateway(dir.path()).await;
    let url = gw.url("/webhooks/metered");
    let body = |i: usize| event("status-changed", "VOICE", "ended", &format!("metered-{i}"));

    // Forged traffic first, more than the burst: all 403, no budget spent.
    for i in 0..5 {
        assert_eq!(post_forged(&url, &body(100 + i)).await.status(), 403);
    }
    let started = Instant::now();
    let mut statuses = Vec::new();
    let mut refusals = Vec::new();
    for i in 0..6 {
        let resp = post_signed(&url, &body(i)).await;
        statuses.push(resp.status().as_u16());
        if resp.status() == 429 {
            let retry_after = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            let v: serde_json::Value = resp.json().await.unwrap();
            refusals.push((retry_after, v["error"].clone()));
        }
    }
    let elapsed = started.elapsed();
    assert_eq!(
        statuses[..3],
        [202, 202, 202],
        "the full burst: {statuses:?}"
    );
    assert!(!refusals.is_empty(), "over the burst: {statuses:?}");
    for (retry_after, code) in &refusals {
        assert_eq!(code, "rate_limited");
        assert!(
            retry_after.is_some_and(|s| (1..=2).contains(&s)),
            "Retry-After {retry_after:?}"
        );
    }
    // At most the burst plus one per second that passed were let in.
    let accepted = statuses.iter().filter(|&&s| s == 202).count();
    assert!(
        accepted as f64 <= 3.0 + elapsed.as_secs_f64().ceil(),
        "{accepted} accepted in {elapsed:?}"
    );

    // While limited: a bad signature is still 403 and a missing one 401.
    assert_eq!(post_forged(&url, &body(200)).await.status(), 403);
    let unsigned = reqwest::Client::new()
        .post(&url)
        .body(body(201))
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 401);

    assert_eq!(
        gw.metric("hookgate_requests_total{source=\"metered\",outcome=\"rate_limited\"}")
            .await,
        Some(refusals.len().to_string())
    );
    assert_eq!(
        gw.metric("hookgate_requests_total{source=\"metered\",outcome=\"invalid_signature\"}")
            .await,
        Some("6".to_owned())
    );

    // A second later a cell is free again.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(post_signed(&url, &body(300)).await.status(), 202);
    gw.stop().await;
}
