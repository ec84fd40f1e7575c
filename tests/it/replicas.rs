//! Several replicas of the real binary on one Redis (DESIGN.md section 9):
//! load spread over three, one SIGKILLed mid-run, every acknowledged event
//! delivered at least once and no delivery sent by two replicas at once; the
//! shared rate limit held at the sink; Redis restarted mid-run (503 while it
//! is gone, recovery without a restart, nothing acknowledged lost).
//!
//! Each test starts its own `redis-server` (AOF, fsync always); without one
//! on the machine they skip, saying so once.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::redis::RedisServer;
use crate::common::sink::{Answer, Sink};
use crate::common::{Process, SECRET, event, eventually, process_config_yaml, sign};

/// A replica's config: the queue in Redis under `prefix`, one target.
fn replica_config(redis: &RedisServer, prefix: &str, target: &str) -> String {
    process_config_yaml(&format!(
        "targets:\n{target}routes:\n  - name: all\n    match: {{}}\n    targets: [crm]\n"
    ))
    .replace(
        "queue:\n  path: ./data/queue.db\n",
        &format!(
            "queue:\n  backend: redis\n  url: {}\n  prefix: {prefix}\n",
            redis.url()
        ),
    )
}

/// Start `n` replicas, each in its own directory under `root`.
async fn start_replicas(root: &Path, n: usize, yaml: &str) -> Vec<Process> {
    let mut replicas = Vec::new();
    for i in 0..n {
        let dir = root.join(format!("replica-{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut p = Process::serve(&dir, yaml);
        p.wait_ready().await;
        replicas.push(p);
    }
    replicas
}

/// POST one signed event with companion id `companion` to `url`; the
/// delivery id of an acknowledged one.
async fn post(http: &reqwest::Client, url: &str, companion: &str) -> Result<String, String> {
    let body = event("status-changed", "VOICE", "ended", companion);
    let resp = http
        .post(url)
        .header("content-type", "application/json")
        .header("x-signature", sign(SECRET, body.as_bytes()))
        .body(body)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .map_err(|e| format!("error: {e}"))?;
    let status = resp.status().as_u16();
    if status != 202 {
        return Err(status.to_string());
    }
    let v: serde_json::Value = resp.json().await.map_err(|e| e.to_string())?;
    Ok(v["deliveries"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

/// The ids of the deliveries the store records as `delivered`, read through
/// `replica`'s admin API.
async fn delivered_in_store(replica: &Process) -> HashSet<String> {
    let url = replica.admin_url("/admin/deliveries?state=delivered&limit=1000");
    let Ok(resp) = reqwest::get(url).await else {
        return HashSet::new();
    };
    let page: serde_json::Value = resp.json().await.unwrap_or_default();
    page["deliveries"]
        .as_array()
        .map(|all| {
            all.iter()
                .filter_map(|d| d["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The delivery ids the sink has received at least once.
fn delivered_ids(sink: &Sink) -> HashSet<String> {
    sink.received()
        .iter()
        .filter_map(|r| r.header("x-hookgate-delivery-id").map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn three_replicas_share_the_work_and_a_killed_one_loses_nothing() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let sink = Sink::start().await;
    // Slow enough that a backlog builds and every replica has attempts in
    // flight (so the killed one dies holding leases).
    sink.always(Answer::status(200).with_delay(Duration::from_millis(100)));
    let target = format!(
        "  crm:\n    kind: http\n    url: {}\n    timeout: 1s\n    concurrency: 4\n",
        sink.url("/crm")
    );
    let yaml = replica_config(&redis, "spread", &target);
    let root = tempfile::tempdir().unwrap();
    let mut replicas = start_replicas(root.path(), 3, &yaml).await;
    let urls: Vec<String> = replicas
        .iter()
        .map(|r| r.url("/webhooks/outrival"))
        .collect();

    // Four senders, round robin over the replicas; replica 0 is killed
    // after 36 events, with a backlog behind them (each replica has
    // `concurrency` attempts in flight then, so the killed one dies holding
    // leases: the others claim them when they expire).
    let http = reqwest::Client::new();
    let mut acknowledged = Vec::new();
    let mut answers: BTreeMap<String, u64> = BTreeMap::new();
    let total = 300;
    let mut killed = false;
    for batch in 0..(total / 4) {
        if batch == total / 32 && !killed {
            replicas[0].kill9();
            killed = true;
        }
        let mut sends = Vec::new();
        for k in 0..4 {
            let n = batch * 4 + k;
            // After the kill, senders go to the others.
            let url = if killed {
                urls[1 + n % 2].clone()
            } else {
                urls[n % 3].clone()
            };
            let http = http.clone();
            sends.push(tokio::spawn(async move {
                post(&http, &url, &format!("c-{n}")).await
            }));
        }
        for s in sends {
            match s.await.unwrap() {
                Ok(id) => {
                    acknowledged.push(id);
                    *answers.entry("202".into()).or_default() += 1;
                }
                Err(other) => *answers.entry(other).or_default() += 1,
            }
        }
    }
    assert!(
        acknowledged.len() >= total * 9 / 10,
        "most events acknowledged: {answers:?}"
    );

    // The killed replica's leases expire (timeout 1s + 10s margin) and the
    // others deliver what it held: the store, read through a live replica,
    // says every acknowledged delivery is `delivered`.
    let started = Instant::now();
    eventually(
        Duration::from_secs(40),
        "every acknowledged delivery recorded as delivered",
        || async {
            let delivered = delivered_in_store(&replicas[1]).await;
            acknowledged.iter().all(|id| delivered.contains(id))
        },
    )
    .await;
    eprintln!(
        "all recorded delivered {:?} after the load",
        started.elapsed()
    );
    let got = delivered_ids(&sink);
    assert!(acknowledged.iter().all(|id| got.contains(id)));
    assert_eq!(
        sink.overlaps(),
        0,
        "no delivery was being sent by two replicas at once"
    );
    // Work was spread: every replica that stayed up sent some.
    let received = sink.received();
    assert!(received.len() >= acknowledged.len());
    let duplicates = received.len() - delivered_ids(&sink).len();
    eprintln!(
        "{} acknowledged, {} requests at the sink, {duplicates} resent after the kill; answers {answers:?}",
        acknowledged.len(),
        received.len()
    );
    assert!(
        duplicates <= 4 * 2,
        "at most the attempts in flight at the kill are resent: {duplicates}"
    );
    drop(replicas);
}

#[tokio::test]
async fn three_replicas_keep_one_shared_rate_limit() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let sink = Sink::start().await;
    let target = format!(
        "  crm:\n    kind: http\n    url: {}\n    rate_limit: {{ per_second: 5, burst: 1 }}\n",
        sink.url("/crm")
    );
    let yaml = replica_config(&redis, "limited", &target);
    let root = tempfile::tempdir().unwrap();
    let replicas = start_replicas(root.path(), 3, &yaml).await;
    let http = reqwest::Client::new();
    let events = 20;
    for n in 0..events {
        let url = replicas[n % 3].url("/webhooks/outrival");
        post(&http, &url, &format!("r-{n}")).await.unwrap();
    }
    eventually(Duration::from_secs(20), "every event delivered", || async {
        sink.count() >= events
    })
    .await;
    let mut at: Vec<Instant> = sink.received().iter().map(|r| r.at).collect();
    at.sort();
    let span = at[events - 1] - at[0];
    // 5 per second together (one replica alone would be 5/s, three each
    // on their own 15/s): 20 deliveries after the first take at least
    // 19 / 5 = 3.8 s; allow a little for the clock of Redis vs ours.
    assert!(
        span >= Duration::from_millis(3_500),
        "{events} deliveries in {span:?}: faster than 5/s in total"
    );
    // And in no one-second window more than per_second + burst.
    for (i, t) in at.iter().enumerate() {
        let in_window = at[i..]
            .iter()
            .take_while(|u| **u - *t < Duration::from_secs(1))
            .count();
        assert!(in_window <= 6, "{in_window} in one second from #{i}");
    }
    drop(replicas);
}

#[tokio::test]
async fn a_redis_restart_is_answered_503_and_recovered_without_losing_anything() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let sink = Sink::start().await;
    let target = format!("  crm:\n    kind: http\n    url: {}\n", sink.url("/crm"));
    let yaml = replica_config(&redis, "restart", &target);
    let root = tempfile::tempdir().unwrap();
    let replicas = start_replicas(root.path(), 2, &yaml).await;
    let http = reqwest::Client::new();
    let mut acknowledged = Vec::new();
    for n in 0..20 {
        let url = replicas[n % 2].url("/webhooks/outrival");
        acknowledged.push(post(&http, &url, &format!("before-{n}")).await.unwrap());
    }

    redis.kill();
    let url = replicas[0].url("/webhooks/outrival");
    let refused = post(&http, &url, "while-down").await;
    assert_eq!(
        refused,
        Err("503".to_owned()),
        "nothing acknowledged while Redis is gone"
    );
    let ready = reqwest::get(replicas[0].admin_url("/readyz"))
        .await
        .unwrap();
    assert_eq!(ready.status(), 503, "not ready while Redis is gone");

    redis.restart();
    let mut recovered = None;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        if let Ok(id) = post(
            &http,
            &url,
            &format!("after-{}", started.elapsed().as_millis()),
        )
        .await
        {
            recovered = Some(id);
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    acknowledged.push(recovered.expect("accepting again after Redis came back"));
    for n in 0..10 {
        let url = replicas[n % 2].url("/webhooks/outrival");
        acknowledged.push(post(&http, &url, &format!("later-{n}")).await.unwrap());
    }
    eventually(
        Duration::from_secs(30),
        "every acknowledged event delivered",
        || async {
            let got = delivered_ids(&sink);
            acknowledged.iter().all(|id| got.contains(id))
        },
    )
    .await;
    drop(replicas);
}

#[tokio::test]
async fn replicas_share_an_open_circuit_and_take_turns_probing() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let sink = Sink::start().await;
    sink.always(Answer::status(503));
    let schedule = vec!["50ms"; 40].join(", ");
    let target = format!(
        "  crm:\n    kind: http\n    url: {}\n    timeout: 1s\n    concurrency: 1\n\
         \x20   retry: {{ schedule: [{schedule}], jitter: false }}\n\
         \x20   circuit_breaker: {{ failures: 2, cooldown: 2s }}\n",
        sink.url("/crm")
    );
    let yaml = replica_config(&redis, "breaker", &target);
    let root = tempfile::tempdir().unwrap();
    let replicas = start_replicas(root.path(), 2, &yaml).await;
    let http = reqwest::Client::new();
    for n in 0..6 {
        let url = replicas[n % 2].url("/webhooks/outrival");
        post(&http, &url, &format!("b-{n}")).await.unwrap();
    }
    // Both replicas see the circuit open (one by its own failures or by the
    // other's news)...
    let open = "hookgate_circuit_open{target=\"crm\"} 1";
    eventually(
        Duration::from_secs(10),
        "the circuit open on both",
        || async {
            let mut both = true;
            for r in &replicas {
                both &= r.metrics_text().await.contains(open);
            }
            both
        },
    )
    .await;
    // ...then count what reaches the target over five cooldowns: about one
    // probe per cooldown in all. Each replica on its own breaker would probe
    // about twice as often (10).
    let before = sink.count();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let probes = sink.count() - before;
    assert!(
        (3..=7).contains(&probes),
        "{probes} attempts in 5 cooldowns of 2 s: one probe per cooldown in all"
    );
    drop(replicas);
}
