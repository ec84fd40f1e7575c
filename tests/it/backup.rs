//! docs/operations.md's "Backing up and restoring the queue", as written:
//! its `sqlite3 … VACUUM INTO` command, taken from the doc, copies the queue
//! of a running hookgate whose target is down; the copy, restored as the
//! doc says into a new hookgate's queue directory, delivers every event the
//! first one acknowledged. Skipped, with one line, without `sqlite3`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::sink::Sink;
use crate::common::{self, Process, RefusedPort, eventually};

/// The documented backup command, with its two paths.
fn documented_command() -> (String, &'static str, &'static str) {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/operations.md"))
            .unwrap();
    let section = doc
        .split("## Backing up and restoring the queue")
        .nth(1)
        .expect("the section");
    let command = section
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("sqlite3 "))
        .expect("a sqlite3 command")
        .to_owned();
    let queue = "/var/lib/hookgate/queue.db";
    let backup = "/var/backups/hookgate/queue-$(date +%F).db";
    assert!(
        command.contains(queue) && command.contains(backup),
        "{command}"
    );
    (command, queue, backup)
}

/// The queue in `./data/`, one target on `target_port` retrying every 200 ms.
fn config(target_port: u16) -> String {
    common::process_config_yaml(&format!(
        r#"targets:
  crm:
    kind: http
    url: http://127.0.0.1:{target_port}/hooks
    timeout: 1s
    retry: {{ schedule: [200ms], max_attempts: 1000, jitter: false }}
routes:
  - {{ name: all, match: {{}}, targets: [crm] }}
"#
    ))
}

#[tokio::test]
async fn the_documented_backup_restores_into_a_hookgate_that_delivers_it() {
    let have_sqlite = Command::new("sqlite3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_sqlite {
        eprintln!("`sqlite3` unavailable: skipping the documented queue backup");
        return;
    }
    let (command, queue_path, backup_path) = documented_command();
    let dir = tempfile::tempdir().unwrap();
    let down = RefusedPort::reserve();
    let mut gw = Process::serve(dir.path(), &config(down.port));
    gw.wait_ready().await;
    let ids = common::accept_events(&[gw.url("/webhooks/outrival")], 20).await;

    // The doc's command, on this queue, while hookgate runs.
    let live = dir.path().join("data/queue.db");
    let copy = dir.path().join("backup.db");
    let command = command
        .replace(queue_path, live.to_str().unwrap())
        .replace(backup_path, copy.to_str().unwrap());
    let out = Command::new("sh").args(["-c", &command]).output().unwrap();
    assert!(
        out.status.success(),
        "{command}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(gw.terminate().success());

    // Restored into another hookgate's queue directory, its target up.
    let other = tempfile::tempdir().unwrap();
    std::fs::create_dir(other.path().join("data")).unwrap();
    std::fs::copy(&copy, other.path().join("data/queue.db")).unwrap();
    let sink = Sink::start().await;
    let mut again = Process::serve(other.path(), &config(sink.addr.port()));
    again.wait_ready().await;
    eventually(
        Duration::from_secs(20),
        "every acknowledged event delivered from the copy",
        || async { ids.is_subset(&sink.event_ids()) },
    )
    .await;
    assert!(again.terminate().success());
}
