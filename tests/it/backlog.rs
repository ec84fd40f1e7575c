//! A million deliveries pending behind a dead target (DESIGN.md section 6):
//! memory stays bounded, a healthy target is not delayed, and the backlog
//! drains once the dead target returns. The queue is seeded with SQL to save
//! time; everything else is the real binary.

use std::time::{Duration, Instant};

use hookgate::queue::sqlite::SqliteStore;

use crate::common::sink::Sink;
use crate::common::{self, Process, event, eventually, post_signed, process_config_yaml};

const BACKLOG: i64 = 1_000_000;
/// Of the backlog, seeded as dead letters.
const DEAD_LETTERS: i64 = 10;

/// Peak resident memory of a process, in KiB (VmHWM).
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status")
}

fn seed(db: &std::path::Path, now_ms: i64) {
    // Create the schema the way hookgate does, then fill it directly.
    drop(SqliteStore::open(db).unwrap());
    let conn = rusqlite::Connection::open(db).unwrap();
    let body = event("status-changed", "VOICE", "ended", "backlog");
    conn.execute_batch("PRAGMA synchronous = OFF; BEGIN;")
        .unwrap();
    conn.execute(
        "INSERT INTO events (id, source, received_at, body, format)
         WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ?1 - 1)
         SELECT printf('00000000-0000-7000-8000-%012x', i), 'outrival', ?2, ?3, 1 FROM n",
        rusqlite::params![BACKLOG, now_ms, body.as_bytes()],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO deliveries (id, event_id, target, route, state, next_attempt_at,
                                 created_at, updated_at, format, body_len)
         WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ?1 - 1)
         SELECT printf('00000000-0000-7000-9000-%012x', i),
                printf('00000000-0000-7000-8000-%012x', i),
                'dead', 'all', 'pending', ?2, ?2, ?2, 1, ?3 FROM n",
        rusqlite::params![BACKLOG, now_ms, body.len() as i64],
    )
    .unwrap();
    // A few dead letters too: nothing in the test moves them, so only the
    // count taken at start can report them.
    conn.execute(
        "UPDATE deliveries SET state = 'dead', dead_reason = 'exhausted' WHERE seq <= ?1",
        [DEAD_LETTERS],
    )
    .unwrap();
    conn.execute_batch("COMMIT;").unwrap();
}

#[tokio::test]
async fn a_million_pending_deliveries_behind_a_dead_target() {
    let dir = tempfile::tempdir().unwrap();
    let refused = common::RefusedPort::reserve();
    let dead_port = refused.port;
    let healthy = Sink::start().await;
    let started = Instant::now();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    seed(&dir.path().join("data/queue.db"), now_ms);
    eprintln!("seeded {BACKLOG} deliveries in {:?}", started.elapsed());

    let yaml = process_config_yaml(&format!(
        r#"targets:
  dead:
    kind: http
    url: http://127.0.0.1:{dead_port}/
    timeout: 1s
    retry: {{ schedule: [1s], max_attempts: 100 }}
    circuit_breaker: {{ failures: 5, cooldown: 1s }}
  healthy:
    kind: http
    url: {}
routes:
  - name: all
    match: {{}}
    targets: [healthy]
"#,
        healthy.url("/")
    ));
    let mut gw = Process::serve(dir.path(), &yaml);
    gw.wait_ready().await;
    let pid = gw.child.id();

    // The depth is counted from the file at start: every seeded delivery is
    // there (the waiting ones may already be leased or retrying).
    let metrics = gw.metrics_text().await;
    let depth = |state: &str| -> f64 {
        let series = format!("hookgate_queue_depth{{target=\"dead\",state=\"{state}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(series.as_str())?.parse().ok())
            .unwrap_or(0.0)
    };
    let waiting = depth("pending") + depth("in_flight") + depth("retrying");
    assert_eq!(waiting, (BACKLOG - DEAD_LETTERS) as f64);
    assert_eq!(depth("dead"), DEAD_LETTERS as f64);

    // New events to the healthy target are delivered within a second each.
    for i in 0..20 {
        let body = event("status-changed", "VOICE", "ended", &format!("new-{i}"));
        let sent = Instant::now();
        assert_eq!(
            post_signed(&gw.url("/webhooks/outrival"), &body)
                .await
                .status(),
            202
        );
        eventually(
            Duration::from_secs(1),
            "a healthy delivery within 1 s",
            || async { healthy.count() == i + 1 },
        )
        .await;
        assert!(sent.elapsed() < Duration::from_secs(1));
    }
    let rss = peak_rss_kib(pid);
    eprintln!("peak RSS with the backlog waiting: {} MiB", rss / 1024);
    assert!(rss < 150 * 1024, "peak RSS {} MiB", rss / 1024);

    // The dead target returns on its port: the backlog drains.
    drop(refused);
    let revived = Sink::start_on(([127, 0, 0, 1], dead_port).into()).await;
    eventually(Duration::from_secs(30), "the backlog draining", || async {
        revived.count() >= 2_000
    })
    .await;
    let rss = peak_rss_kib(pid);
    eprintln!(
        "peak RSS while draining: {} MiB; {} drained so far",
        rss / 1024,
        revived.count()
    );
    assert!(rss < 150 * 1024, "peak RSS {} MiB", rss / 1024);
    assert!(gw.terminate().success());
}
