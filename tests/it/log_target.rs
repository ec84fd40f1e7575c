//! The `log` target writing to a file: one JSON line per delivery, appended,
//! and a file that logrotate moves away is created afresh.

use std::time::Duration;

use crate::common::{self, Gateway, event, eventually, post_signed};

fn lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn appends_lines_and_reopens_a_file_rotated_away() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("logs/audit.jsonl");
    let yaml = common::config_yaml(
        dir.path(),
        &format!(
            "targets:\n  audit: {{ kind: log, path: \"{}\" }}\nunmatched: [audit]\n",
            log.display()
        ),
    );
    let gw = Gateway::start(dir.path(), &yaml).await;
    let send = |companion: &'static str| {
        let url = gw.url("/webhooks/outrival");
        async move {
            let body = event("status-changed", "VOICE", "ended", companion);
            assert_eq!(post_signed(&url, &body).await.status(), 202);
        }
    };
    send("before-1").await;
    send("before-2").await;
    eventually(Duration::from_secs(5), "two lines in the log", || async {
        lines(&log).len() == 2
    })
    .await;

    // logrotate's default: move the file away, let the writer create a new one.
    let rotated = dir.path().join("logs/audit.jsonl.1");
    std::fs::rename(&log, &rotated).unwrap();
    send("after").await;
    eventually(
        Duration::from_secs(5),
        "a fresh file at the path",
        || async { lines(&log).len() == 1 },
    )
    .await;
    let old = lines(&rotated);
    let companions: Vec<_> = old
        .iter()
        .map(|l| l["event"]["companionId"].clone())
        .collect();
    assert_eq!(companions, ["before-1", "before-2"]);
    let new = lines(&log);
    assert_eq!(new[0]["event"]["companionId"], "after");
    assert_eq!(new[0]["target"], "audit");
    assert_eq!(new[0]["route"], "unmatched");
    gw.stop().await;
}
