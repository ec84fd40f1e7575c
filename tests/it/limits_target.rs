//! Per-target rate limits, read off the wire: a limited target's arrival
//! times at a recording sink (no one-second window over `per_second + burst`,
//! the long-run rate at `per_second`), across retries, beside an unlimited
//! target that is never delayed, with its backlog waiting in the store. The
//! per-source inbound limit is in `limits_source.rs`.
//!
//! Each test names its own targets: the metrics recorder is shared by every
//! gateway in this test binary.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use hookgate::clock::ManualClock;

use crate::common::sink::{Answer, Received, Sink};
use crate::common::{self, Gateway, TARGET_SECRET, event, eventually, post_signed};

fn http_target(name: &str, url: &str, extra: &str) -> String {
    format!(
        "  {name}:\n    kind: http\n    url: {url}\n    secret: {TARGET_SECRET}\n    timeout: 2s\n{extra}"
    )
}

/// A config whose one route sends every event to all of `targets` (YAML
/// entries made by [`http_target`]).
fn all_to(dir: &Path, names: &[&str], targets: &str) -> String {
    common::config_yaml(
        dir,
        &format!(
            "targets:\n{targets}routes:\n  - name: all\n    match: {{}}\n    targets: [{}]\n",
            names.join(", ")
        ),
    )
}

/// Post `n` distinct events at once; every one must be accepted.
async fn post_many(gw: &Gateway, n: usize, tag: &str) {
    let url = gw.url("/webhooks/outrival");
    let bodies: Vec<String> = (0..n)
        .map(|i| event("status-changed", "VOICE", "ended", &format!("{tag}-{i}")))
        .collect();
    let answers = join_all(bodies.iter().map(|b| post_signed(&url, b))).await;
    for a in answers {
        assert_eq!(a.status(), 202);
    }
}

fn arrivals(received: &[Received]) -> Vec<Instant> {
    let mut times: Vec<Instant> = received.iter().map(|r| r.at).collect();
    times.sort();
    times
}

/// The most arrivals in any one-second window `[t, t + 1 s]` (the busiest
/// window starts at an arrival).
fn busiest_second(times: &[Instant]) -> usize {
    (0..times.len())
        .map(|i| {
            times[i..]
                .iter()
                .take_while(|t| t.duration_since(times[i]) <= Duration::from_secs(1))
                .count()
        })
        .max()
        .unwrap_or(0)
}

/// Arrivals per second once the first `burst` went out at once: the rest
/// over the whole span.
fn long_run_rate(times: &[Instant], burst: usize) -> f64 {
    let span = times[times.len() - 1]
        .duration_since(times[0])
        .as_secs_f64();
    (times.len() - burst) as f64 / span
}

fn delivery_ids(received: &[Received]) -> Vec<String> {
    received
        .iter()
        .map(|r| r.header("x-hookgate-delivery-id").unwrap().to_owned())
        .collect()
}

/// The value of `hookgate_rate_limited_total{target}`.
async fn waits_counted(gw: &Gateway, target: &str) -> f64 {
    gw.metric(&format!(
        "hookgate_rate_limited_total{{target=\"{target}\"}}"
    ))
    .await
    .and_then(|v| v.parse().ok())
    .unwrap_or(0.0)
}

#[tokio::test]
async fn a_limited_target_keeps_its_rate_and_an_unlimited_one_is_not_delayed() {
    const N: usize = 25;
    const PER_SECOND: usize = 5;
    const BURST: usize = 2;
    let dir = tempfile::tempdir().unwrap();
    let paced = Sink::start().await;
    let prompt = Sink::start().await;
    let targets = format!(
        "{}{}",
        http_target(
            "paced",
            &paced.url("/"),
            &format!("    rate_limit: {{ per_second: {PER_SECOND}, burst: {BURST} }}\n"),
        ),
        http_target("prompt", &prompt.url("/"), ""),
    );
    let gw = Gateway::start(
        dir.path(),
        &all_to(dir.path(), &["paced", "prompt"], &targets),
    )
    .await;

    post_many(&gw, N, "paced").await;
    let posted = Instant::now();
    eventually(
        Duration::from_secs(3),
        "the unlimited target gets everything",
        || async { prompt.count() == N },
    )
    .await;
    assert!(
        posted.elapsed() < Duration::from_secs(2),
        "the unlimited target took {:?}",
        posted.elapsed()
    );
    assert!(
        paced.count() < N,
        "the unlimited target finished while the limited one was still draining ({} of {N})",
        paced.count()
    );

    eventually(
        Duration::from_secs(10),
        "the limited target drains",
        || async { paced.count() == N },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = paced.received();
    let ids: HashSet<String> = delivery_ids(&got).into_iter().collect();
    assert_eq!(
        (got.len(), ids.len()),
        (N, N),
        "every delivery exactly once"
    );

    let times = arrivals(&got);
    let busiest = busiest_second(&times);
    assert!(
        busiest <= PER_SECOND + BURST,
        "{busiest} arrivals in one second (limit {PER_SECOND}/s, burst {BURST})"
    );
    let rate = long_run_rate(&times, BURST);
    eprintln!("paced: busiest second {busiest}, long-run rate {rate:.2}/s");
    assert!(
        (rate - PER_SECOND as f64).abs() <= 0.1 * PER_SECOND as f64,
        "long-run rate {rate:.2}/s, configured {PER_SECOND}/s"
    );
    assert!(waits_counted(&gw, "paced").await > 0.0);
    gw.stop().await;
}

#[tokio::test]
async fn the_limit_holds_across_retries() {
    const N: usize = 8;
    const FAILURES: usize = 4;
    const PER_SECOND: usize = 5;
    const BURST: usize = 1;
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    sink.script((0..FAILURES).map(|_| Answer::status(500)));
    let target = http_target(
        "retried",
        &sink.url("/"),
        &format!(
            "    rate_limit: {{ per_second: {PER_SECOND}, burst: {BURST} }}
    retry: {{ schedule: [100ms, 100ms, 100ms], jitter: false }}
    circuit_breaker: {{ failures: 100, cooldown: 1s }}
"
        ),
    );
    let gw = Gateway::start(dir.path(), &all_to(dir.path(), &["retried"], &target)).await;

    post_many(&gw, N, "retried").await;
    eventually(
        Duration::from_secs(10),
        "every attempt, retries included",
        || async { sink.count() == N + FAILURES },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = sink.received();
    assert_eq!(got.len(), N + FAILURES, "no extra attempts");
    let ids: HashSet<String> = delivery_ids(&got).into_iter().collect();
    assert_eq!(ids.len(), N, "every delivery was attempted");
    let retries = got
        .iter()
        .filter(|r| r.header("x-hookgate-attempt") == Some("2"))
        .count();
    assert_eq!(retries, FAILURES, "each failed delivery was retried once");

    let times = arrivals(&got);
    let busiest = busiest_second(&times);
    assert!(
        busiest <= PER_SECOND + BURST,
        "{busiest} attempts in one second (limit {PER_SECOND}/s, burst {BURST})"
    );
    let rate = long_run_rate(&times, BURST);
    eprintln!("retried: busiest second {busiest}, long-run rate {rate:.2}/s");
    assert!(
        rate <= 1.1 * PER_SECOND as f64,
        "retries went faster than the limit: {rate:.2}/s"
    );
    assert!(waits_counted(&gw, "retried").await > 0.0);
    gw.stop().await;
}

#[tokio::test]
async fn a_deep_backlog_waits_in_the_store_not_in_flight() {
    const N: usize = 25;
    const CONCURRENCY: usize = 2;
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    // Slow answers, so attempts overlap and in-flight deliveries can be seen.
    sink.always(Answer::status(200).with_delay(Duration::from_millis(150)));
    let target = http_target(
        "deep",
        &sink.url("/"),
        &format!(
            "    rate_limit: {{ per_second: 10, burst: 2 }}\n    concurrency: {CONCURRENCY}\n"
        ),
    );
    let gw = Gateway::start(dir.path(), &all_to(dir.path(), &["deep"], &target)).await;
    post_many(&gw, N, "deep").await;

    let count = |state: &'static str| {
        let gw = &gw;
        async move {
            let path = format!("/admin/deliveries?state={state}&target=deep&limit=1000");
            gw.admin_get(&path).await.1["deliveries"]
                .as_array()
                .map_or(0, Vec::len)
        }
    };
    let (mut most_in_flight, mut most_pending) = (0, 0);
    let started = Instant::now();
    while sink.count() < N {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the backlog did not drain"
        );
        most_in_flight = most_in_flight.max(count("in_flight").await);
        most_pending = most_pending.max(count("pending").await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("deep: at most {most_in_flight} in flight, {most_pending} pending");
    assert!(
        most_in_flight <= CONCURRENCY,
        "{most_in_flight} in flight at once, concurrency {CONCURRENCY}"
    );
    assert!(most_in_flight >= 1, "the poll saw the attempts");
    assert!(
        most_pending >= N / 2,
        "the backlog waited in the store: at most {most_pending} pending were seen"
    );
    eventually(Duration::from_secs(2), "all delivered", || async {
        count("delivered").await == N
    })
    .await;
    gw.stop().await;
}

#[tokio::test]
async fn rate_limits_run_on_real_time_under_a_manual_clock() {
    // Retry schedules run on the test clock; rate limits on real seconds. A
    // clock that never moves must not stall a limited target.
    const N: usize = 6;
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    let target = http_target(
        "frozen",
        &sink.url("/"),
        "    rate_limit: { per_second: 20, burst: 1 }\n",
    );
    let clock = Arc::new(ManualClock::new(1_800_000_000_000));
    let gw = Gateway::start_with(
        dir.path(),
        &all_to(dir.path(), &["frozen"], &target),
        clock,
        "127.0.0.1:0",
    )
    .await;
    post_many(&gw, N, "frozen").await;
    eventually(
        Duration::from_secs(5),
        "delivered with the clock standing still",
        || async { sink.count() == N },
    )
    .await;
    let times = arrivals(&sink.received());
    let span = times[N - 1].duration_since(times[0]);
    // N - 1 intervals of 50 ms after the first.
    assert!(
        span >= Duration::from_millis(225),
        "the limit was applied: {span:?}"
    );
    gw.stop().await;
}
