//! The deployments' own files run as local processes, no container engine
//! or cluster: `redis-server` on `deploy/redis/redis.conf` with three
//! `hookgate serve` replicas on `deploy/compose-config/rules.yaml`; one
//! hookgate on `deploy/compose-sqlite/rules.yaml`; and one on the sidecar's
//! ConfigMap config with its Deployment's env. Only the listen addresses,
//! the queue file and the downstream's host move (to loopback and a temp
//! dir); the sample downstream `deploy/sample-downstream/server.py` checks
//! every signature. Skipped, with one line, without `redis-server` or
//! `python3`.

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::compose::replica_env;
use super::{
    Kustomize, LOCAL_COMPOSE, compose, compose_config, compose_replicas, deploy_dir, env_example,
    mounted_config, read, tool_available,
};
use crate::common::{self, Process, SECRET, eventually, free_port, sign};

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
    let (_, config) = compose_config();
    let yaml = on_loopback(config, "downstream", downstream_port);

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

    // Round robin, as nginx does. The one refusal is the wrong signature
    // sent above; hookgate's all pass.
    let urls: Vec<String> = replicas
        .iter()
        .map(|r| r.url("/webhooks/outrival"))
        .collect();
    all_verified(&urls, 30, &log, 1).await;
    for mut r in replicas {
        assert!(r.terminate().success());
    }
}

/// `config` (parsed) with its listeners on `{PORT}` and `{ADMIN_PORT}` of
/// loopback, its SQLite queue (if any) in the working directory, and its
/// `target` sent to the downstream on `port` (same path), as YAML.
fn on_loopback(mut config: serde_json::Value, target: &str, port: u16) -> String {
    config["server"]["listen"] = "127.0.0.1:{PORT}".into();
    config["admin"]["listen"] = "127.0.0.1:{ADMIN_PORT}".into();
    if config["queue"]["backend"] == "sqlite" {
        config["queue"]["path"] = "./queue/queue.db".into();
    }
    let url = &mut config["targets"][target]["url"];
    let mut target_url = reqwest::Url::parse(url.as_str().unwrap()).unwrap();
    target_url.set_host(Some("127.0.0.1")).unwrap();
    target_url.set_port(Some(port)).unwrap();
    *url = target_url.as_str().into();
    // JSON is YAML: the config file as hookgate reads it.
    serde_json::to_string_pretty(&config).unwrap()
}

/// Send `n` signed events round robin over `urls` (each answered 202), then
/// wait until the sample downstream logged each one as verified; `rejected`
/// is how many refusals its log may hold.
async fn all_verified(urls: &[String], n: usize, log: &Path, rejected: usize) {
    let ids = common::accept_events(urls, n).await;
    eventually(
        Duration::from_secs(20),
        "every event verified by the downstream",
        || async {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            ids.iter().all(|id| text.contains(&format!("event={id}")))
        },
    )
    .await;
    let text = std::fs::read_to_string(log).unwrap();
    assert_eq!(text.matches("REJECTED").count(), rejected, "{text}");
}

/// One hookgate on `config` (parsed) with `env`, its `target` pointed at the
/// sample downstream, which verifies with the value `env` gives the
/// target's `${SECRET}`. Skipped without python3.
async fn single_delivers_to_the_sample_downstream(
    config: serde_json::Value,
    target: &str,
    env: &BTreeMap<String, String>,
) {
    if !tool_available("python3", &["--version"], "the sample downstream") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("downstream.log");
    let secret_var = config["targets"][target]["secret"]
        .as_str()
        .unwrap()
        .trim_start_matches("${")
        .trim_end_matches('}')
        .to_owned();
    let (_downstream, port) = downstream(&env[&secret_var], &log);
    let yaml = on_loopback(config, target, port);
    let mut env = env.clone();
    // The test's provider signs with the tests' inbound secret.
    env.insert("OUTRIVAL_WEBHOOK_SECRET".into(), SECRET.into());
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut gw = Process::serve_with(dir.path(), &yaml, &[], &env);
    gw.wait_ready().await;
    all_verified(&[gw.url("/webhooks/outrival")], 10, &log, 0).await;
    assert!(gw.terminate().success());
}

#[tokio::test]
async fn the_local_compose_config_delivers_to_the_sample_downstream() {
    let service = compose(LOCAL_COMPOSE)["services"]["hookgate"].clone();
    let (_, config) = mounted_config(&service);
    single_delivers_to_the_sample_downstream(config, "downstream", &replica_env(&service)).await;
}

#[tokio::test]
async fn the_sidecar_config_delivers_to_the_app_on_localhost() {
    let k = Kustomize::sidecar();
    let (_, config) = k.configmap_config();
    let env = k.container_env(&k.hookgate());
    single_delivers_to_the_sample_downstream(config, "app", &env).await;
}
