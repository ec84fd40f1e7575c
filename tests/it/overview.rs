//! `GET /admin/targets`, the overview the console shows: each target's depth
//! by state, its oldest unfinished delivery, its circuit, its rate limit and
//! what it did in the last minutes, read off a running gateway whose targets
//! deliver, fail and wait for their limit.

use std::time::Duration;

use futures_util::future::join_all;
use serde_json::Value;

use crate::common::sink::{Answer, Sink};
use crate::common::{self, Gateway, event, eventually, post_signed};

/// The overview's entry of `name`.
fn entry<'a>(overview: &'a Value, name: &str) -> &'a Value {
    overview["targets"]
        .as_array()
        .expect("targets")
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("{name} is not in the overview: {overview}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_shows_what_each_target_is_doing() {
    let dir = tempfile::tempdir().unwrap();
    let ok = Sink::start().await;
    let failing = Sink::start().await;
    failing.always(Answer::status(503));
    let limited = Sink::start().await;
    let rest = format!(
        r#"targets:
  ov-ok: {{ kind: http, url: "{}" }}
  ov-failing:
    kind: http
    url: "{}"
    concurrency: 1
    retry: {{ schedule: [1h], max_attempts: 5, jitter: false }}
    circuit_breaker: {{ failures: 2, cooldown: 1h }}
  ov-limited:
    kind: http
    url: "{}"
    rate_limit: {{ per_second: 2, burst: 1 }}
  ov-idle: {{ kind: http, url: "{}", enabled: false }}
routes:
  - {{ name: all, match: {{}}, targets: [ov-ok, ov-failing, ov-limited] }}
"#,
        ok.url("/"),
        failing.url("/"),
        limited.url("/"),
        ok.url("/idle"),
    );
    let gw = Gateway::start(dir.path(), &common::config_yaml(dir.path(), &rest)).await;
    let (_, before) = gw.admin_get("/admin/targets").await;
    assert_eq!(before["window_seconds"], 300);
    let idle = entry(&before, "ov-idle");
    assert_eq!(idle["enabled"], false);
    assert_eq!(idle["depth"]["pending"], 0);
    assert_eq!(idle["oldest_waiting_at"], Value::Null);
    assert_eq!(idle["circuit"], "closed");

    let url = gw.url("/webhooks/outrival");
    let bodies: Vec<String> = (0..4)
        .map(|i| event("status-changed", "VOICE", "ended", &format!("ov-{i}")))
        .collect();
    for answer in join_all(bodies.iter().map(|b| post_signed(&url, b))).await {
        assert_eq!(answer.status(), 202);
    }

    eventually(
        Duration::from_secs(10),
        "every target's outcome",
        || async {
            let overview = gw.admin_get("/admin/targets").await.1;
            entry(&overview, "ov-ok")["depth"]["delivered"] == 4
            && entry(&overview, "ov-limited")["depth"]["delivered"] == 4
            && entry(&overview, "ov-failing")["circuit"] == "open"
            // A delivery handed to the worker as the circuit opened goes
            // back to pending.
            && entry(&overview, "ov-failing")["depth"]["pending"] == 2
        },
    )
    .await;
    let (_, overview) = gw.admin_get("/admin/targets").await;

    let ok_entry = entry(&overview, "ov-ok");
    assert_eq!(ok_entry["recent"]["delivered"], 4, "{ok_entry}");
    assert_eq!(ok_entry["recent"]["failed"], 0);
    assert_eq!(ok_entry["oldest_waiting_at"], Value::Null);
    assert_eq!(ok_entry["rate_limit"], Value::Null);

    // Two failures opened the circuit; the other two wait behind it, the
    // oldest of them since it was accepted.
    let failing_entry = entry(&overview, "ov-failing");
    assert_eq!(failing_entry["recent"]["failed"], 2, "{failing_entry}");
    assert_eq!(failing_entry["recent"]["delivered"], 0);
    let depth = &failing_entry["depth"];
    assert_eq!(depth["retrying"], 2, "{failing_entry}");
    assert_eq!(depth["pending"], 2, "{failing_entry}");
    assert!(failing_entry["oldest_waiting_at"].is_string());
    let age = failing_entry["oldest_waiting_age_seconds"]
        .as_f64()
        .expect("an age");
    assert!((0.0..30.0).contains(&age), "{age}");

    // The same age, as a gauge set when /metrics is read.
    let gauge = gw
        .metric("hookgate_queue_oldest_waiting_age_seconds{target=\"ov-failing\"}")
        .await
        .and_then(|v| v.parse::<f64>().ok())
        .expect("the gauge");
    assert!(gauge > 0.0 && gauge < 30.0, "{gauge}");
    assert_eq!(
        gw.metric("hookgate_queue_oldest_waiting_age_seconds{target=\"ov-ok\"}")
            .await
            .as_deref(),
        Some("0")
    );

    // One cell at once, then one every half second: three waits at least.
    let limited_entry = entry(&overview, "ov-limited");
    assert_eq!(
        limited_entry["rate_limit"],
        serde_json::json!({"per_second": 2, "burst": 1})
    );
    assert!(
        limited_entry["recent"]["rate_limited"].as_u64() >= Some(1),
        "{limited_entry}"
    );
    assert_eq!(limited_entry["recent"]["delivered"], 4);
    gw.stop().await;
}
