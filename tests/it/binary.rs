//! The real `hookgate` binary: crash safety, graceful stop, and the CLI.

use std::collections::HashSet;
use std::process::Command;
use std::time::Duration;

use crate::common::sink::Sink;
use crate::common::{self, Process, SECRET, TARGET_SECRET, binary, event, eventually, post_signed};

fn config(target_port: u16) -> String {
    format!(
        r#"version: 1
server:
  listen: 127.0.0.1:{{PORT}}
  shutdown_timeout: 2s
admin:
  listen: 127.0.0.1:{{ADMIN_PORT}}
queue:
  path: ./data/queue.db
sources:
  - name: outrival
    path: /webhooks/outrival
    verify:
      scheme: outrival
      secrets: ["{SECRET}"]
targets:
  crm:
    kind: http
    url: http://127.0.0.1:{target_port}/hooks
    secret: {TARGET_SECRET}
    timeout: 500ms
    retry: {{ schedule: [200ms], max_attempts: 1000, jitter: false }}
routes:
  - name: all
    match: {{}}
    targets: [crm]
"#
    )
}

#[tokio::test]
async fn kill_9_after_202_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let target_port = common::free_port(); // nothing listens there yet: the target is down
    let mut gw = Process::serve(dir.path(), &config(target_port));
    gw.wait_ready().await;
    let ids = common::accept_events(&[gw.url("/webhooks/outrival")], 200).await;
    gw.kill9();

    // The target comes up, then hookgate restarts on the same queue.
    let sink = Sink::start_on(([127, 0, 0, 1], target_port).into()).await;
    let config_path = dir.path().join("rules.yaml");
    let mut again = Process::serve_file(dir.path(), &config_path, gw.port, gw.admin_port);
    again.wait_ready().await;
    eventually(
        Duration::from_secs(20),
        "every acknowledged event delivered",
        || async { ids.is_subset(&sink.event_ids()) },
    )
    .await;
    assert!(
        sink.received()
            .iter()
            .all(|r| r.signature_valid(TARGET_SECRET, "x-signature"))
    );
    assert!(again.terminate().success());
}

#[tokio::test]
async fn sigterm_stops_cleanly_with_exit_0() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    let mut gw = Process::serve(dir.path(), &config(sink.addr.port()));
    gw.wait_ready().await;
    let body = event("status-changed", "VOICE", "ended", "c");
    assert_eq!(
        post_signed(&gw.url("/webhooks/outrival"), &body)
            .await
            .status(),
        202
    );
    eventually(Duration::from_secs(5), "delivered", || async {
        sink.count() == 1
    })
    .await;
    let status = gw.terminate();
    assert!(status.success(), "exit status {status}: {}", gw.stderr());
}

#[test]
fn check_accepts_a_valid_file_and_explains_an_invalid_one() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.yaml");
    std::fs::write(
        &good,
        config(9)
            .replace("{PORT}", "8080")
            .replace("{ADMIN_PORT}", "9090"),
    )
    .unwrap();
    let out = Command::new(binary())
        .args(["check", "-c"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("OK"));

    let bad = dir.path().join("bad.yaml");
    let text = config(9)
        .replace("{PORT}", "8080")
        .replace("{ADMIN_PORT}", "9090")
        .replace("    targets: [crm]", "    targets: [crn]");
    std::fs::write(&bad, text).unwrap();
    let out = Command::new(binary())
        .args(["check", "-c"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.yaml:"), "{err}");
    assert!(err.contains("routes[0].targets"), "{err}");
    assert!(err.contains("crm"), "suggests the nearest name: {err}");
}

#[test]
fn check_allow_missing_env_validates_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rules.yaml");
    let text = config(9)
        .replace("{PORT}", "8080")
        .replace("{ADMIN_PORT}", "9090")
        .replace(SECRET, "${HOOKGATE_TEST_UNSET_SECRET}");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(binary())
        .args(["check", "-c"])
        .arg(&path)
        .env_remove("HOOKGATE_TEST_UNSET_SECRET")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("HOOKGATE_TEST_UNSET_SECRET"));
    let out = Command::new(binary())
        .args(["check", "--allow-missing-env", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn sign_prints_the_provider_signature_from_any_secret_source() {
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("body.json");
    std::fs::write(&body, br#"{"event":"status-changed"}"#).unwrap();
    let expected = common::sign("s3cret", br#"{"event":"status-changed"}"#);
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, "s3cret\n").unwrap();
    let runs = [
        Command::new(binary())
            .args(["sign", "--secret", "s3cret"])
            .arg(&body)
            .output()
            .unwrap(),
        Command::new(binary())
            .args(["sign", "--secret-env", "HG_TEST_SECRET"])
            .arg(&body)
            .env("HG_TEST_SECRET", "s3cret")
            .output()
            .unwrap(),
        Command::new(binary())
            .args(["sign", "--secret-file"])
            .arg(&secret_file)
            .arg(&body)
            .output()
            .unwrap(),
    ];
    for out in runs {
        assert!(out.status.success());
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), expected);
    }
}

#[tokio::test]
async fn send_posts_a_signed_body_and_reports_the_answer() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    let mut gw = Process::serve(dir.path(), &config(sink.addr.port()));
    gw.wait_ready().await;
    let body = dir.path().join("event.json");
    std::fs::write(&body, event("status-changed", "VOICE", "ended", "c")).unwrap();
    let url = gw.url("/webhooks/outrival");
    let out = tokio::process::Command::new(binary())
        .args(["send", &url, "--secret", SECRET])
        .arg(&body)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("202"), "{stdout}");
    let out = tokio::process::Command::new(binary())
        .args(["send", &url, "--secret", "wrong-secret"])
        .arg(&body)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("403"));
    eventually(Duration::from_secs(5), "delivered", || async {
        sink.count() == 1
    })
    .await;
}

#[tokio::test]
async fn secrets_never_reach_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    let refused = common::RefusedPort::reserve(); // connection errors get logged
    let down_port = refused.port;
    // The shared config, with a secret in every place section 10 names.
    let yaml = config(down_port)
        .replace(
            "  listen: 127.0.0.1:{ADMIN_PORT}\n",
            "  listen: 127.0.0.1:{ADMIN_PORT}\n  token: admin-token-do-not-log\n",
        )
        .replace(&format!("[\"{SECRET}\"]"), &format!("[\"{SECRET}\", \"sh0rt-s3c\"]"))
        .replace(
            &format!("url: http://127.0.0.1:{down_port}/hooks"),
            &format!("url: http://user:url-password-do-not-log@127.0.0.1:{down_port}/hooks?key=query-key-do-not-log"),
        )
        .replace(
            &format!("    secret: {TARGET_SECRET}\n"),
            "    secret: target-secret-do-not-log\n    headers: { authorization: \"Bearer header-token-do-not-log\" }\n",
        )
        .replace("schedule: [200ms], max_attempts: 1000", "schedule: [100ms, 100ms]");
    for secret in [
        "admin-token-do-not-log",
        "sh0rt-s3c",
        "url-password-do-not-log",
        "target-secret-do-not-log",
        "header-token-do-not-log",
    ] {
        assert!(yaml.contains(secret), "{secret} is in the test config");
    }
    let mut gw = Process::serve(dir.path(), &yaml);
    gw.wait_ready().await;
    let body = event("status-changed", "VOICE", "ended", "c");
    assert_eq!(
        post_signed(&gw.url("/webhooks/outrival"), &body)
            .await
            .status(),
        202
    );
    let bad = reqwest::Client::new()
        .post(gw.url("/webhooks/outrival"))
        .header("x-signature", common::sign("wrong", body.as_bytes()))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 403);
    // Let the three attempts fail and be logged.
    tokio::time::sleep(Duration::from_millis(800)).await;
    gw.terminate();
    let logs = format!("{}\n{}", gw.stderr(), gw.stdout());
    assert!(logs.contains("delivery attempt failed"), "{logs}");
    for secret in [
        SECRET,
        "sh0rt-s3c",
        "admin-token-do-not-log",
        "url-password-do-not-log",
        "query-key-do-not-log",
        "target-secret-do-not-log",
        "header-token-do-not-log",
    ] {
        assert!(
            !logs.contains(secret),
            "{secret} leaked into the logs:\n{logs}"
        );
    }
}

#[tokio::test]
async fn kill_9_during_attempts_retries_them_without_counting() {
    let dir = tempfile::tempdir().unwrap();
    let slow = Sink::start().await;
    slow.always(crate::common::sink::Answer::status(200).with_delay(Duration::from_secs(30)));
    let port = slow.addr.port();
    let yaml = config(port).replace("    timeout: 500ms\n", "    timeout: 60s\n");
    let mut gw = Process::serve(dir.path(), &yaml);
    gw.wait_ready().await;
    let mut ids = HashSet::new();
    for i in 0..20 {
        let body = event("status-changed", "VOICE", "ended", &format!("c-{i}"));
        let v: serde_json::Value = post_signed(&gw.url("/webhooks/outrival"), &body)
            .await
            .json()
            .await
            .unwrap();
        ids.insert(v["deliveries"][0]["id"].as_str().unwrap().to_owned());
    }
    eventually(Duration::from_secs(10), "attempts in flight", || async {
        slow.count() >= 10
    })
    .await;
    gw.kill9();
    slow.stop().await;

    let sink = Sink::start_on(([127, 0, 0, 1], port).into()).await;
    let config_path = dir.path().join("rules.yaml");
    let mut again = Process::serve_file(dir.path(), &config_path, gw.port, gw.admin_port);
    again.wait_ready().await;
    eventually(
        Duration::from_secs(20),
        "every delivery made after restart",
        || async {
            let got: HashSet<String> = sink
                .received()
                .iter()
                .filter_map(|r| r.header("x-hookgate-delivery-id").map(str::to_owned))
                .collect();
            ids.is_subset(&got)
        },
    )
    .await;
    // The attempts cut off by the crash were not counted: every delivery
    // went out as attempt 1 again, and is recorded with one attempt.
    assert!(
        sink.received()
            .iter()
            .all(|r| r.header("x-hookgate-attempt") == Some("1"))
    );
    for id in &ids {
        let d: serde_json::Value =
            reqwest::get(again.admin_url(&format!("/admin/deliveries/{id}")))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
        eventually(Duration::from_secs(5), "recorded", || async {
            reqwest::get(again.admin_url(&format!("/admin/deliveries/{id}")))
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()["state"]
                == "delivered"
        })
        .await;
        assert!(d["attempt_count"].as_u64().unwrap() <= 1, "{d}");
    }
    assert!(again.terminate().success());
}

/// The README's tour, as a new user runs it: `rules.example.yaml` as shipped
/// (only the ports moved, so tests can run side by side), the sample event
/// sent with `hookgate send`, the delivery printed by the `log` target, then
/// each command that follows in the README (the refusals, `/readyz`, the dry
/// run, the deliveries API), with the answer the README shows.
#[tokio::test]
async fn the_readme_tour_works_with_the_example_config() {
    let dir = tempfile::tempdir().unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let example = std::fs::read_to_string(root.join("rules.example.yaml")).unwrap();
    assert!(
        example.contains("listen: 127.0.0.1:8080") && example.contains("listen: 127.0.0.1:9090")
    );
    let yaml = example
        .replace("listen: 127.0.0.1:8080", "listen: 127.0.0.1:{PORT}")
        .replace("listen: 127.0.0.1:9090", "listen: 127.0.0.1:{ADMIN_PORT}");
    let check = Command::new(binary())
        .args(["check", "-c"])
        .arg(root.join("rules.example.yaml"))
        .env_remove("OUTRIVAL_WEBHOOK_SECRET")
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );

    let mut gw = Process::serve(dir.path(), &yaml);
    gw.wait_ready().await;
    // `hookgate send URL --secret S examples/status-changed.json`.
    let send = |secret: &'static str| {
        tokio::process::Command::new(binary())
            .args(["send", &gw.url("/webhooks/outrival"), "--secret", secret])
            .arg(root.join("examples/status-changed.json"))
            .output()
    };
    let out = send("dev-secret-change-me-0123456789").await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("202") && stdout.contains("ended-calls"),
        "{stdout}"
    );
    eventually(
        Duration::from_secs(5),
        "the audit line on stdout",
        || async {
            gw.stdout().lines().any(|l| {
                serde_json::from_str::<serde_json::Value>(l)
                    .is_ok_and(|v| v["target"] == "audit" && v["event"]["companionId"] == "cmp_42")
            })
        },
    )
    .await;

    // "Now try what a gateway must refuse".
    let out = send("wrong-secret").await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success() && stdout.contains("403"), "{stdout}");
    assert!(stdout.contains("invalid_signature"), "{stdout}");
    let unsigned = reqwest::Client::new()
        .post(gw.url("/webhooks/outrival"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 401);
    assert!(unsigned.text().await.unwrap().contains("missing_signature"));
    let ready = reqwest::get(gw.admin_url("/readyz")).await.unwrap();
    assert_eq!(ready.text().await.unwrap(), r#"{"status":"ready"}"#);

    // The dry run, and the deliveries API.
    let out = Command::new(binary())
        .args(["route", "-c"])
        .arg(root.join("rules.example.yaml"))
        .arg(root.join("examples/status-changed.json"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("ended-calls"),
        "{stdout}"
    );
    for path in ["/admin/deliveries?limit=5", "/admin/deliveries?state=dead"] {
        let resp = reqwest::get(gw.admin_url(path)).await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        let v: serde_json::Value = resp.json().await.unwrap();
        assert!(v["deliveries"].is_array(), "{path}: {v}");
    }
    assert!(gw.terminate().success());
}
