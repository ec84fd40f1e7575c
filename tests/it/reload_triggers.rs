//! The reload triggers besides `POST /admin/reload`: the file watcher (an
//! editor's write-and-rename, a kubelet ConfigMap symlink swap), SIGHUP to
//! the real binary, and the admin token guarding the reload (and changing
//! with it).

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use hookgate::clock::SystemClock;

use crate::common::sink::Sink;
use crate::common::{self, Gateway, Process, eventually};
use crate::reload::{delivered_to, replace_file, routed_to, running_version, version_of};

#[tokio::test]
async fn the_watcher_sees_an_editors_write_and_rename() {
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (Sink::start().await, Sink::start().await);
    // The config in a directory of its own (the queue, next to it, changes
    // all the time): only the rename can wake the watcher.
    let conf = dir.path().join("conf");
    std::fs::create_dir_all(&conf).unwrap();
    let config = conf.join("rules.yaml");
    std::fs::write(&config, routed_to(dir.path(), "old", &old.url("/"), "")).unwrap();
    let gw = Gateway::start_file(&config, Arc::new(SystemClock), "127.0.0.1:0").await;
    // The admin listener answers once the watch is in place.
    let _ = running_version(&gw).await;

    let second = routed_to(dir.path(), "new", &new.url("/"), "");
    replace_file(&config, &second);
    eventually(Duration::from_secs(5), "the watcher reloaded", || async {
        running_version(&gw).await == version_of(&second)
    })
    .await;
    delivered_to(&gw, &new, 1).await;
    assert_eq!(old.count(), 0);
    gw.stop().await;
}

#[cfg(unix)]
#[tokio::test]
async fn the_watcher_sees_a_configmap_symlink_swap() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let mount = dir.path().join("config");
    let (old, new) = (Sink::start().await, Sink::start().await);
    // The layout the kubelet makes for a ConfigMap mounted as a directory.
    let first = routed_to(dir.path(), "old", &old.url("/"), "");
    std::fs::create_dir_all(mount.join("..2026_12_01_a")).unwrap();
    std::fs::write(mount.join("..2026_12_01_a/rules.yaml"), &first).unwrap();
    symlink("..2026_12_01_a", mount.join("..data")).unwrap();
    symlink("..data/rules.yaml", mount.join("rules.yaml")).unwrap();
    let config = mount.join("rules.yaml");
    let gw = Gateway::start_file(&config, Arc::new(SystemClock), "127.0.0.1:0").await;
    assert_eq!(running_version(&gw).await, version_of(&first));

    // The kubelet's update: a new timestamped directory, a `..data_tmp`
    // symlink to it, renamed over `..data`; `rules.yaml` itself never changes.
    let second = routed_to(dir.path(), "new", &new.url("/"), "");
    std::fs::create_dir_all(mount.join("..2026_12_01_b")).unwrap();
    std::fs::write(mount.join("..2026_12_01_b/rules.yaml"), &second).unwrap();
    symlink("..2026_12_01_b", mount.join("..data_tmp")).unwrap();
    std::fs::rename(mount.join("..data_tmp"), mount.join("..data")).unwrap();
    std::fs::remove_dir_all(mount.join("..2026_12_01_a")).unwrap();

    eventually(Duration::from_secs(5), "the watcher reloaded", || async {
        running_version(&gw).await == version_of(&second)
    })
    .await;
    delivered_to(&gw, &new, 1).await;
    gw.stop().await;
}

/// SIGHUP to the real binary. The config is a symlink to a file in another
/// directory, and that file is edited in place: the watcher (which watches
/// the symlink's directory, where nothing else changes) does not see it, so
/// only the signal can reload.
#[cfg(unix)]
#[tokio::test]
async fn sighup_reloads_the_real_binary() {
    let dir = tempfile::tempdir().unwrap();
    let (port, admin_port) = (common::free_port(), common::free_port());
    let binary_config = |extra_target: &str| {
        format!(
            r#"version: 1
server:
  listen: 127.0.0.1:{port}
admin:
  listen: 127.0.0.1:{admin_port}
queue:
  path: ./queue.db
sources:
{source}targets:
  audit: {{ kind: log, path: ./audit.log }}
{extra_target}routes:
  - name: all
    match: {{}}
    targets: [audit]
"#,
            source = common::outrival_source()
        )
    };
    let real = dir.path().join("real");
    std::fs::create_dir_all(&real).unwrap();
    let first = binary_config("");
    std::fs::write(real.join("rules.yaml"), &first).unwrap();
    // Its own directory: the logs and the queue change all the time, and any
    // change in the watched directory makes the watcher read the file again.
    let conf = dir.path().join("conf");
    std::fs::create_dir_all(&conf).unwrap();
    std::os::unix::fs::symlink("../real/rules.yaml", conf.join("rules.yaml")).unwrap();
    let mut gw = Process::serve_file(dir.path(), &conf.join("rules.yaml"), port, admin_port);
    gw.wait_ready().await;
    let version = || async {
        let config: serde_json::Value = reqwest::get(gw.admin_url("/admin/config"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        config["version"].as_str().unwrap().to_owned()
    };
    assert_eq!(version().await, version_of(&first));

    let second = binary_config("  spare: { kind: log, path: ./spare.log }\n");
    std::fs::write(real.join("rules.yaml"), &second).unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        version().await,
        version_of(&first),
        "nothing but SIGHUP should reload"
    );

    let pid = gw.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    eventually(Duration::from_secs(5), "SIGHUP reloaded", || async {
        version().await == version_of(&second)
    })
    .await;
    assert!(
        gw.child.try_wait().unwrap().is_none(),
        "SIGHUP must not end the process"
    );
    let log = gw.stderr();
    assert!(
        log.contains("config reloaded") && log.contains("sighup"),
        "{log}"
    );
    assert!(gw.terminate().success());
}

#[cfg(unix)]
#[tokio::test]
async fn reload_is_behind_the_admin_token_and_the_token_can_change() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    let with_token = |token: &str| {
        routed_to(dir.path(), "crm", &sink.url("/"), "").replace(
            "admin:\n  listen: 127.0.0.1:0\n",
            &format!("admin:\n  listen: 127.0.0.1:0\n  token: {token}\n"),
        )
    };
    // A symlink into a directory the watcher does not see, edited in place:
    // only the POST reloads, so the old token must still open it.
    let (conf, real) = (dir.path().join("conf"), dir.path().join("real"));
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::create_dir_all(&real).unwrap();
    let first = with_token("first-admin-token");
    std::fs::write(real.join("rules.yaml"), &first).unwrap();
    std::os::unix::fs::symlink("../real/rules.yaml", conf.join("rules.yaml")).unwrap();
    let gw = Gateway::start_file(
        &conf.join("rules.yaml"),
        Arc::new(SystemClock),
        "127.0.0.1:0",
    )
    .await;
    let http = reqwest::Client::new();
    let post = |token: Option<&'static str>| {
        let mut request = http.post(gw.admin_url("/admin/reload"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(post(None).await, 401);
    assert_eq!(post(Some("wrong-token")).await, 401);
    assert_eq!(
        running_version_with(&gw, "first-admin-token").await,
        version_of(&first)
    );

    let second = with_token("second-admin-token");
    std::fs::write(real.join("rules.yaml"), &second).unwrap();
    assert_eq!(post(Some("first-admin-token")).await, 200);
    // The new token is the one that counts now.
    assert_eq!(post(Some("first-admin-token")).await, 401);
    assert_eq!(post(Some("second-admin-token")).await, 200);
    assert_eq!(
        running_version_with(&gw, "second-admin-token").await,
        version_of(&second)
    );
    gw.stop().await;
}

#[cfg(unix)]
async fn running_version_with(gw: &Gateway, token: &str) -> String {
    let config: serde_json::Value = reqwest::Client::new()
        .get(gw.admin_url("/admin/config"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    config["version"].as_str().unwrap().to_owned()
}
