//! The compose stack's own files run as local processes, no container
//! engine: `redis-server` on `deploy/redis/redis.conf`, three `hookgate
//! serve` replicas on `deploy/compose-config/rules.yaml` (only the listen
//! addresses and the downstream's host moved to loopback), and the sample
//! downstream `deploy/sample-downstream/server.py`, which checks every
//! signature. Skipped, with one line, without `redis-server` or `python3`.

use std::collections::HashSet;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::compose::replica_env;
use super::{compose_config, compose_replicas, deploy_dir, env_example, read, tool_available};
use crate::common::{self, Process, SECRET, event, eventually, free_port, post_signed, sign};

/// A child process killed on drop.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_listening(port: u16, what: &str, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(child.try_wait().unwrap().is_none(), "{what} exited");
        assert!(
            Instant::now() < deadline,
            "{what} is not listening on {port}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// redis-server on the compose redis.conf. Its `dir` (/data, the volume)
/// is replaced by a temp dir and it binds loopback; every other directive
/// is the file's own.
fn redis(dir: &Path, password: &str) -> (Guard, u16) {
    let conf: String = read(&deploy_dir().join("redis/redis.conf"))
        .lines()
        .filter(|l| !l.starts_with("dir "))
        .map(|l| format!("{l}\n"))
        .collect();
    let conf_path = dir.join("redis.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let port = free_port();
    let mut child = Command::new("redis-server")
        .arg(&conf_path)
        .arg("--dir")
        .arg(dir)
        .args([
            "--bind",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--requirepass",
            password,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_listening(port, "redis-server", &mut child);
    (Guard(child), port)
}

/// The sample downstream with `secret`; its stdout goes to `log`.
fn downstream(secret: &str, log: &Path) -> (Guard, u16) {
    let port = free_port();
    let mut child = Command::new("python3")
        .arg("-u")
        .arg(deploy_dir().join("sample-downstream/server.py"))
        .env("DOWNSTREAM_WEBHOOK_SECRET", secret)
        .env("PORT", port.to_string())
        .stdout(std::fs::File::create(log).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_listening(port, "the sample downstream", &mut child);
    (Guard(child), port)
}

#[tokio::test]
async fn the_compose_stack_delivers_signed_through_three_replicas_on_redis() {
    if !common::redis::available()
        || !tool_available(
            "python3",
            &["--version"],
            "the compose stack run as processes",
        )
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let vars = env_example();
    let (_redis, redis_port) = redis(dir.path(), &vars["REDIS_PASSWORD"]);
    let log = dir.path().join("downstream.log");
    let downstream_secret = &vars["DOWNSTREAM_WEBHOOK_SECRET"];
    let (_downstream, downstream_port) = downstream(downstream_secret, &log);

    // The downstream itself: a wrong signature is refused, a right one taken.
    let url = format!("http://127.0.0.1:{downstream_port}/hooks/outrival");
    let client = reqwest::Client::new();
    let bad = client
        .post(&url)
        .header("x-signature", sign("wrong-secret", b"{}"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);
    let good = client
        .post(&url)
        .header("x-signature", sign(downstream_secret, b"{}"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(good.status(), 204);

    // The compose config, on loopback ports, delivering to this downstream.
    let (_, mut config) = compose_config();
    config["server"]["listen"] = "127.0.0.1:{PORT}".into();
    config["admin"]["listen"] = "127.0.0.1:{ADMIN_PORT}".into();
    let target = &mut config["targets"]["downstream"]["url"];
    let mut target_url = reqwest::Url::parse(target.as_str().unwrap()).unwrap();
    target_url.set_host(Some("127.0.0.1")).unwrap();
    target_url.set_port(Some(downstream_port)).unwrap();
    *target = target_url.as_str().into();
    // JSON is YAML: the config file as the replicas read it.
    let yaml = serde_json::to_string_pretty(&config).unwrap();

    let mut replicas = Vec::new();
    for (name, service) in compose_replicas() {
        let mut env = replica_env(&service);
        env.insert(
            "REDIS_URL".into(),
            format!(
                "redis://:{}@127.0.0.1:{redis_port}/0",
                vars["REDIS_PASSWORD"]
            ),
        );
        // The test's provider signs with the tests' inbound secret.
        env.insert("OUTRIVAL_WEBHOOK_SECRET".into(), SECRET.into());
        let replica_dir = dir.path().join(&name);
        std::fs::create_dir(&replica_dir).unwrap();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let mut p = Process::serve_with(&replica_dir, &yaml, &[], &env);
        p.wait_ready().await;
        replicas.push(p);
    }
    assert_eq!(replicas.len(), 3);
    for r in &replicas {
        // The compose redis.conf gives what a 202 needs: no durability warning.
        assert!(r.stderr().contains("appendfsync always"), "{}", r.stderr());
        assert!(!r.stderr().contains("can be lost"), "{}", r.stderr());
    }

    // Round robin, as nginx does.
    let mut ids = HashSet::new();
    for i in 0..30 {
        let body = event("status-changed", "VOICE", "ended", &format!("c-{i}"));
        let resp = post_signed(&replicas[i % 3].url("/webhooks/outrival"), &body).await;
        assert_eq!(resp.status(), 202);
        let v: serde_json::Value = resp.json().await.unwrap();
        ids.insert(v["id"].as_str().unwrap().to_owned());
    }
    eventually(
        Duration::from_secs(20),
        "every event verified by the downstream",
        || async {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            ids.iter().all(|id| text.contains(&format!("event={id}")))
        },
    )
    .await;
    // The one refusal is the wrong signature sent above; hookgate's all pass.
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text.matches("REJECTED").count(), 1, "{text}");
    for mut r in replicas {
        assert!(r.terminate().success());
    }
}
