//! Ordered delivery per key (`targets.X.ordering`, DESIGN.md section 6),
//! end to end: a recording sink that fails chosen keys, and the gateway in
//! process or as the real binary (restart, kill -9).

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use serde_json::Value;

use crate::common::redis::RedisServer;
use crate::common::sink::{Answer, Received, Sink};
use crate::common::{self, Gateway, Process, TARGET_SECRET, eventually, post_signed};

/// An OutRival event of chat `key`, numbered `seq` (in `data.seq`).
fn keyed_event(key: &str, seq: usize) -> String {
    serde_json::json!({
        "event": "status-changed",
        "type": "VOICE",
        "companionId": key,
        "data": {"messages": [], "status": "in-progress", "startedAt": "2026-12-02T10:00:00Z", "seq": seq}
    })
    .to_string()
}

/// What the sink's script matches a key's requests by.
fn marker(key: &str) -> String {
    format!("\"companionId\":\"{key}\"")
}

/// A config with an http target `crm` at `url`, ordered by `companionId`
/// unless `ordering` is empty, with `extra` keys, and a route to it.
fn ordered_yaml(dir: &Path, url: &str, ordering: &str, extra: &str) -> String {
    common::config_yaml(
        dir,
        &format!(
            "targets:\n  crm:\n    kind: http\n    url: {url}\n    secret: {TARGET_SECRET}\n    timeout: 2s\n{ordering}{extra}routes:\n  - name: all\n    match: {{}}\n    targets: [crm]\n"
        ),
    )
}

const BY_COMPANION: &str = "    ordering: { key: companionId }\n";

/// Post one event; its delivery id.
async fn accept(url: &str, body: &str) -> String {
    let resp = post_signed(url, body).await;
    assert_eq!(resp.status(), 202, "accepted");
    let v: Value = resp.json().await.unwrap();
    v["deliveries"][0]["id"].as_str().unwrap().to_owned()
}

/// `(key, seq, status answered)` of every request the sink got, in arrival order.
fn requests(sink: &Sink) -> Vec<(String, u64, u16, Instant)> {
    sink.received()
        .iter()
        .map(|r: &Received| {
            let v: Value = serde_json::from_slice(&r.body).unwrap();
            (
                v["companionId"].as_str().unwrap_or("").to_owned(),
                v["data"]["seq"].as_u64().unwrap(),
                r.status,
                r.at,
            )
        })
        .collect()
}

/// Per key, the seqs of its requests in arrival order.
fn per_key(reqs: &[(String, u64, u16, Instant)]) -> HashMap<String, Vec<(u64, u16)>> {
    let mut out: HashMap<String, Vec<(u64, u16)>> = HashMap::new();
    for (key, seq, status, _) in reqs {
        out.entry(key.clone()).or_default().push((*seq, *status));
    }
    out
}

/// No request of a key is made before the one ahead of it succeeded: the
/// seqs of a key's requests never go back, and a request of a later seq
/// comes only after a 2xx of the earlier one (or, with `dead`, after it died).
fn assert_strict_order(key: &str, seen: &[(u64, u16)], expected: &[u64]) {
    let firsts: Vec<u64> = seen
        .iter()
        .filter(|(_, status)| *status < 300)
        .map(|(seq, _)| *seq)
        .collect();
    assert_eq!(firsts, expected, "key {key}: first successes {seen:?}");
    for pair in seen.windows(2) {
        let ((a, status_a), (b, _)) = (pair[0], pair[1]);
        assert!(
            b == a || (b > a && status_a < 300),
            "key {key}: seq {b} was sent while seq {a} had not succeeded: {seen:?}"
        );
    }
}

#[tokio::test]
async fn a_retrying_head_holds_back_only_its_own_key() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    // The first delivery of chat `a` fails twice; each retry waits 1 s.
    sink.script_for(&marker("a"), [Answer::status(503), Answer::status(503)]);
    let retry = "    retry: { schedule: [1s, 1s, 1s], jitter: false }\n    concurrency: 8\n";
    let yaml = ordered_yaml(dir.path(), &sink.url("/in"), BY_COMPANION, retry);
    let gw = Gateway::start(dir.path(), &yaml).await;
    let url = gw.url("/webhooks/outrival");

    let head = accept(&url, &keyed_event("a", 1)).await;
    for seq in 2..=4 {
        accept(&url, &keyed_event("a", seq)).await;
    }
    let mut posted = HashMap::new();
    for i in 0..10 {
        let key = format!("b{i}");
        posted.insert(key.clone(), Instant::now());
        accept(&url, &keyed_event(&key, 1)).await;
    }

    // While the head retries, the admin API names it as what blocks `a`.
    eventually(Duration::from_secs(5), "key a shows as blocked", || async {
        let (_, v) = gw.admin_get("/admin/targets").await;
        let ordering = &v["targets"][0]["ordering"];
        let metric = gw
            .metric("hookgate_queue_blocked_keys{target=\"crm\"}")
            .await;
        ordering["blocked_keys"] == 1
            && ordering["blocked"][0]["head"] == head.as_str()
            && ordering["blocked"][0]["waiting"] == 3
            && metric.as_deref() == Some("1")
    })
    .await;

    eventually(
        Duration::from_secs(10),
        "every delivery arrived",
        || async { sink.received().iter().filter(|r| r.status == 200).count() == 14 },
    )
    .await;
    let reqs = requests(&sink);
    let keys = per_key(&reqs);
    assert_strict_order("a", &keys["a"], &[1, 2, 3, 4]);
    assert_eq!(keys["a"].len(), 6, "3 attempts of the head, then 1 each");
    // The other keys were not held behind `a`'s retries: each arrived well
    // within the retry delay (1 s) of being posted, and before the head got
    // through (2 s after its first attempt).
    let head_success = reqs
        .iter()
        .find(|(k, seq, status, _)| k == "a" && *seq == 1 && *status == 200)
        .unwrap()
        .3;
    for (key, _, _, at) in reqs.iter().filter(|(k, ..)| k.starts_with('b')) {
        assert!(
            *at < head_success && at.duration_since(posted[key]) < Duration::from_secs(1),
            "key {key} waited for the retrying head of another key"
        );
    }
    // Nothing is blocked once the head is through.
    let (_, v) = gw.admin_get("/admin/targets").await;
    assert_eq!(v["targets"][0]["ordering"]["blocked_keys"], 0, "{v}");
    gw.stop().await;
}

#[tokio::test]
async fn events_without_the_key_share_one_lane() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    // The first keyless event fails once.
    sink.script([Answer::status(500)]);
    let retry = "    retry: { schedule: [300ms, 300ms], jitter: false }\n";
    let yaml = ordered_yaml(
        dir.path(),
        &sink.url("/in"),
        "    ordering: { key: data.callId }\n",
        retry,
    );
    let gw = Gateway::start(dir.path(), &yaml).await;
    let url = gw.url("/webhooks/outrival");
    for seq in 1..=3 {
        accept(&url, &keyed_event("x", seq)).await;
    }
    eventually(Duration::from_secs(5), "three deliveries", || async {
        sink.received().iter().filter(|r| r.status == 200).count() == 3
    })
    .await;
    let keys = per_key(&requests(&sink));
    assert_strict_order("(no key)", &keys["x"], &[1, 2, 3]);
    gw.stop().await;
}

#[tokio::test]
async fn a_dead_head_releases_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    // The head of `a` is refused for good (a 4xx is permanent).
    sink.script_for(&marker("a"), [Answer::status(422)]);
    let yaml = ordered_yaml(dir.path(), &sink.url("/in"), BY_COMPANION, "");
    let gw = Gateway::start(dir.path(), &yaml).await;
    let url = gw.url("/webhooks/outrival");
    let head = accept(&url, &keyed_event("a", 1)).await;
    let next = accept(&url, &keyed_event("a", 2)).await;
    gw.delivery_reaches(&next, "state", "delivered").await;
    let (_, d) = gw.admin_get(&format!("/admin/deliveries/{head}")).await;
    assert_eq!(d["state"], "dead");
    assert_eq!(d["dead_reason"], "permanent_status");
    let keys = per_key(&requests(&sink));
    assert_eq!(keys["a"], vec![(1, 422), (2, 200)]);

    // Replaying the dead head sends it now, out of order, as asked.
    let (status, _) = gw
        .admin_send(
            reqwest::Method::POST,
            &format!("/admin/deliveries/{head}/replay"),
        )
        .await;
    assert_eq!(status, 200);
    gw.delivery_reaches(&head, "state", "delivered").await;
    let keys = per_key(&requests(&sink));
    assert_eq!(keys["a"], vec![(1, 422), (2, 200), (1, 200)]);
    gw.stop().await;
}

#[tokio::test]
async fn a_delivery_waiting_for_its_head_says_which() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    sink.script_for(&marker("a"), [Answer::status(503)]);
    let retry = "    retry: { schedule: [30s], jitter: false }\n";
    let yaml = ordered_yaml(dir.path(), &sink.url("/in"), BY_COMPANION, retry);
    let gw = Gateway::start(dir.path(), &yaml).await;
    let url = gw.url("/webhooks/outrival");
    let head = accept(&url, &keyed_event("a", 1)).await;
    let held = accept(&url, &keyed_event("a", 2)).await;
    gw.delivery_reaches(&head, "state", "retrying").await;
    let (_, d) = gw.admin_get(&format!("/admin/deliveries/{held}")).await;
    assert_eq!(d["state"], "pending", "{d}");
    assert_eq!(d["next_attempt_at"], Value::Null, "{d}");
    assert_eq!(d["order_key"], "\"a\"", "{d}");
    assert_eq!(d["waiting_for"], head.as_str(), "{d}");
    gw.stop().await;
}

#[tokio::test]
async fn gaining_and_losing_ordering_on_reload_applies_to_deliveries_not_yet_attempted() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    let retry =
        "    retry: { schedule: [700ms, 700ms, 700ms], jitter: false }\n    concurrency: 1\n";
    // Unordered, one at a time: while a1 takes a second, a2 and a3 wait
    // unattempted. Unordered, a2 failing would let a3 overtake it.
    sink.script_for(
        &marker("a"),
        [
            Answer::status(200).with_delay(Duration::from_secs(1)),
            Answer::status(503),
        ],
    );
    let unordered = ordered_yaml(dir.path(), &sink.url("/in"), "", retry);
    let gw = Gateway::start(dir.path(), &unordered).await;
    let url = gw.url("/webhooks/outrival");
    let a1 = accept(&url, &keyed_event("a", 1)).await;
    for seq in 2..=3 {
        accept(&url, &keyed_event("a", seq)).await;
    }
    gw.delivery_reaches(&a1, "state", "in_flight").await;
    // Gaining `ordering` while a1 is in flight: a2 and a3 line up behind it.
    let ordered = ordered_yaml(dir.path(), &sink.url("/in"), BY_COMPANION, retry);
    std::fs::write(dir.path().join("rules.yaml"), &ordered).unwrap();
    let (status, body) = gw.admin_send(reqwest::Method::POST, "/admin/reload").await;
    assert_eq!(status, 200, "{body}");
    eventually(Duration::from_secs(6), "the three delivered", || async {
        sink.received().iter().filter(|r| r.status == 200).count() == 3
    })
    .await;
    assert_strict_order("a", &per_key(&requests(&sink))["a"], &[1, 2, 3]);

    // Ordered, a new head fails and retries in 3 s; two wait behind it.
    // Losing `ordering` lets them go while the head still waits.
    let slow_retry = "    retry: { schedule: [3s], jitter: false }\n    concurrency: 1\n";
    let ordered = ordered_yaml(dir.path(), &sink.url("/in"), BY_COMPANION, slow_retry);
    std::fs::write(dir.path().join("rules.yaml"), &ordered).unwrap();
    let (status, body) = gw.admin_send(reqwest::Method::POST, "/admin/reload").await;
    assert_eq!(status, 200, "{body}");
    sink.script_for(&marker("b"), [Answer::status(503)]);
    let head = accept(&url, &keyed_event("b", 1)).await;
    accept(&url, &keyed_event("b", 2)).await;
    accept(&url, &keyed_event("b", 3)).await;
    gw.delivery_reaches(&head, "state", "retrying").await;
    assert_eq!(
        per_key(&requests(&sink))["b"],
        vec![(1, 503)],
        "b2, b3 held"
    );
    let unordered = ordered_yaml(dir.path(), &sink.url("/in"), "", slow_retry);
    std::fs::write(dir.path().join("rules.yaml"), &unordered).unwrap();
    let (status, body) = gw.admin_send(reqwest::Method::POST, "/admin/reload").await;
    assert_eq!(status, 200, "{body}");
    eventually(Duration::from_secs(5), "b2 and b3 delivered", || async {
        let keys = per_key(&requests(&sink));
        keys.get("b")
            .is_some_and(|b| b.iter().filter(|(s, st)| *s > 1 && *st == 200).count() == 2)
    })
    .await;
    let (_, d) = gw.admin_get(&format!("/admin/deliveries/{head}")).await;
    assert_ne!(d["state"], "delivered", "b1 was still retrying: {d}");
    gw.delivery_reaches(&head, "state", "delivered").await;
    gw.stop().await;
}

#[tokio::test]
async fn order_holds_across_kill_9_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    // `a`'s head fails until the restart.
    sink.script_for(&marker("a"), [Answer::status(503), Answer::status(503)]);
    let mut gw = Process::serve(
        dir.path(),
        &common::process_config_yaml(&format!(
            "targets:\n  crm:\n    kind: http\n    url: {}\n    secret: {TARGET_SECRET}\n    timeout: 2s\n{BY_COMPANION}    retry: {{ schedule: [1s, 1s, 1s], jitter: false }}\nroutes:\n  - name: all\n    match: {{}}\n    targets: [crm]\n",
            sink.url("/in")
        )),
    );
    gw.wait_ready().await;
    let url = gw.url("/webhooks/outrival");
    for seq in 1..=3 {
        accept(&url, &keyed_event("a", seq)).await;
    }
    eventually(
        Duration::from_secs(5),
        "the head's first attempt",
        || async { sink.count() >= 1 },
    )
    .await;
    gw.kill9();
    assert!(
        requests(&sink).iter().all(|(_, seq, ..)| *seq == 1),
        "only the head was attempted before the kill"
    );
    let config = dir.path().join("rules.yaml");
    let mut gw = Process::serve_file(dir.path(), &config, gw.port, gw.admin_port);
    gw.wait_ready().await;
    eventually(Duration::from_secs(10), "the three delivered", || async {
        sink.received().iter().filter(|r| r.status == 200).count() == 3
    })
    .await;
    assert_strict_order("a", &per_key(&requests(&sink))["a"], &[1, 2, 3]);

    // A dead head says in the log that it released its key.
    sink.script_for(&marker("c"), [Answer::status(410)]);
    let url = gw.url("/webhooks/outrival");
    accept(&url, &keyed_event("c", 1)).await;
    accept(&url, &keyed_event("c", 2)).await;
    eventually(Duration::from_secs(5), "c2 delivered", || async {
        per_key(&requests(&sink))
            .get("c")
            .is_some_and(|c| c.contains(&(2, 200)))
    })
    .await;
    gw.terminate();
    let log = gw.stderr();
    assert!(
        log.contains("the head of an ordered key is dead: the key is released")
            && log.contains("key=\"c\""),
        "{log}"
    );
}

/// One randomised case: per key, how many times each of its deliveries fails
/// before it succeeds.
fn failure_scripts() -> impl Strategy<Value = Vec<Vec<u8>>> {
    proptest::collection::vec(proptest::collection::vec(0u8..3, 2..6), 2..6)
}

/// `n` randomised cases, the same on every run (a fixed seed).
fn failure_cases(n: usize, seed: u64) -> Vec<Vec<Vec<u8>>> {
    let mut runner = TestRunner::new(ProptestConfig {
        rng_seed: proptest::test_runner::RngSeed::Fixed(seed),
        ..ProptestConfig::default()
    });
    (0..n)
        .map(|_| {
            failure_scripts()
                .new_tree(&mut runner)
                .expect("a case")
                .current()
        })
        .collect()
}

/// Script the sink for `case`: a key's requests go one at a time, so its
/// answers are consumed in its deliveries' order (fail f times, then 200).
/// Returns how many deliveries the case makes.
fn script_case(sink: &Sink, case: &[Vec<u8>]) -> usize {
    for (k, fails) in case.iter().enumerate() {
        let answers = fails.iter().flat_map(|f| {
            std::iter::repeat_n(Answer::status(503), usize::from(*f))
                .chain(std::iter::once(Answer::status(200)))
        });
        sink.script_for(&marker(&format!("k{k}")), answers);
    }
    case.iter().map(Vec::len).sum()
}

/// Post `case`'s events round robin over `urls`, the keys interleaved as
/// chats happen side by side; then wait for every delivery and check that
/// each key's first successes came in acceptance order.
async fn run_case(n: usize, case: &[Vec<u8>], sink: &Sink, urls: &[String]) {
    let total = script_case(sink, case);
    let longest = case.iter().map(Vec::len).max().unwrap_or(0);
    let mut posted = 0;
    for seq in 0..longest {
        for (k, fails) in case.iter().enumerate() {
            if seq < fails.len() {
                let url = &urls[posted % urls.len()];
                accept(url, &keyed_event(&format!("k{k}"), seq)).await;
                posted += 1;
            }
        }
    }
    eventually(
        Duration::from_secs(20),
        &format!("case {n}: every delivery"),
        || async { sink.received().iter().filter(|r| r.status == 200).count() == total },
    )
    .await;
    let keys = per_key(&requests(sink));
    for (k, fails) in case.iter().enumerate() {
        let key = format!("k{k}");
        let expected: Vec<u64> = (0..fails.len() as u64).collect();
        assert_strict_order(&key, &keys[&key], &expected);
    }
}

/// Fast retries, and a breaker that does not open: a run of five failures
/// across keys would otherwise pause the whole target for 30 s (as it
/// should), which is not what these cases measure.
const FAST_RETRY: &str = "    retry: { schedule: [20ms, 20ms, 20ms, 20ms], jitter: false }\n    concurrency: 4\n    circuit_breaker: { failures: 1000, cooldown: 1s }\n";

#[tokio::test]
async fn per_key_first_successes_follow_acceptance_order_under_random_failures() {
    for (n, case) in failure_cases(4, 16).iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let sink = Sink::start().await;
        let yaml = ordered_yaml(dir.path(), &sink.url("/in"), BY_COMPANION, FAST_RETRY);
        let gw = Gateway::start(dir.path(), &yaml).await;
        run_case(n, case, &sink, &[gw.url("/webhooks/outrival")]).await;
        gw.stop().await;
    }
}

#[tokio::test]
async fn on_redis_two_replicas_keep_each_keys_order() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    for (n, case) in failure_cases(3, 61).iter().enumerate() {
        let root = tempfile::tempdir().unwrap();
        let sink = Sink::start().await;
        let yaml = common::process_config_yaml(&format!(
            "targets:\n  crm:\n    kind: http\n    url: {}\n    secret: {TARGET_SECRET}\n    timeout: 2s\n{BY_COMPANION}{FAST_RETRY}routes:\n  - name: all\n    match: {{}}\n    targets: [crm]\n",
            sink.url("/in")
        ))
        .replace(
            "queue:\n  path: ./data/queue.db\n",
            &format!(
                "queue:\n  backend: redis\n  url: {}\n  prefix: case{n}\n",
                redis.url()
            ),
        );
        let mut replicas = Vec::new();
        for i in 0..2 {
            let dir = root.path().join(format!("replica-{i}"));
            std::fs::create_dir_all(&dir).unwrap();
            let mut p = Process::serve(&dir, &yaml);
            p.wait_ready().await;
            replicas.push(p);
        }
        let urls: Vec<String> = replicas
            .iter()
            .map(|p| p.url("/webhooks/outrival"))
            .collect();
        run_case(n, case, &sink, &urls).await;
        for mut p in replicas {
            p.terminate();
        }
    }
}

#[test]
fn check_and_route_show_the_key_a_delivery_would_get() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = ordered_yaml(dir.path(), "http://127.0.0.1:9/in", BY_COMPANION, "");
    let config = dir.path().join("rules.yaml");
    std::fs::write(&config, &yaml).unwrap();
    let check = std::process::Command::new(common::binary())
        .args(["check", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{out}");
    assert!(
        out.contains("target crm [http], ordered by companionId"),
        "{out}"
    );

    let v = common::dry_run(dir.path(), &yaml, &keyed_event("cmp-9", 1));
    assert_eq!(
        v["deliveries"][0]["ordering"],
        serde_json::json!({"key": "companionId", "value": "\"cmp-9\""}),
        "{v}"
    );
    let event = dir.path().join("event.json");
    let text = std::process::Command::new(common::binary())
        .args(["route", "-c"])
        .arg(&config)
        .arg(&event)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains(
            "ordered by companionId: key \"cmp-9\", after earlier deliveries of that key"
        ),
        "{text}"
    );
}

#[test]
fn check_refuses_an_empty_segment_in_the_ordering_key() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = ordered_yaml(
        dir.path(),
        "http://127.0.0.1:9/in",
        "    ordering: { key: data..id }\n",
        "",
    );
    let config = dir.path().join("rules.yaml");
    std::fs::write(&config, &yaml).unwrap();
    let out = std::process::Command::new(common::binary())
        .args(["check", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("targets.crm.ordering.key")
            && stderr.contains("invalid ordering key `data..id`"),
        "{stderr}"
    );
}
