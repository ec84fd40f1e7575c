//! Shared helpers for the integration tests: an in-process gateway on port 0,
//! the real binary as a child process, a recording downstream ([`sink`]),
//! signed requests, and `eventually` instead of fixed sleeps.

#![allow(dead_code)]

pub mod browser;
pub mod redis;
pub mod sink;
pub mod smtp;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use std::sync::Arc;

use hookgate::clock::{Clock, SystemClock};
use hookgate::config::{self, LoadOptions};

/// The inbound secret every test source uses.
pub const SECRET: &str = "test-inbound-secret-0123456789";
/// The re-signing secret every test http target uses.
pub const TARGET_SECRET: &str = "test-target-secret-0123456789";

/// Sign `body` the way the provider does.
pub fn sign(secret: &str, body: &[u8]) -> String {
    hookgate::signing::sign_hex(secret.as_bytes(), body)
}

/// An OutRival event body (compact JSON).
pub fn event(event: &str, kind: &str, status: &str, companion: &str) -> String {
    serde_json::json!({
        "event": event,
        "type": kind,
        "companionId": companion,
        "data": {
            "messages": [{"role": "user", "content": "hi"}],
            "status": status,
            "startedAt": "2026-11-28T10:00:00Z"
        }
    })
    .to_string()
}

/// POST `body` with a valid outrival signature.
pub async fn post_signed(url: &str, body: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("x-signature", sign(SECRET, body.as_bytes()))
        .body(body.to_owned())
        .send()
        .await
        .expect("request to the gateway")
}

/// Post `n` distinct signed `status-changed` events round robin over
/// `urls`, each answered 202; their event ids.
pub async fn accept_events(urls: &[String], n: usize) -> std::collections::HashSet<String> {
    let mut ids = std::collections::HashSet::new();
    for i in 0..n {
        let body = event("status-changed", "VOICE", "ended", &format!("c-{i}"));
        let resp = post_signed(&urls[i % urls.len()], &body).await;
        assert_eq!(resp.status(), 202);
        let v: serde_json::Value = resp.json().await.unwrap();
        ids.insert(v["id"].as_str().unwrap().to_owned());
    }
    ids
}

/// The text of a GET to `url` (a `/metrics` page).
pub async fn metrics_text(url: &str) -> String {
    reqwest::get(url).await.unwrap().text().await.unwrap()
}

/// The status of a GET to `url`.
pub async fn get_status(url: &str) -> u16 {
    reqwest::get(url).await.expect("GET").status().as_u16()
}

/// Poll `check` until it returns true or `timeout` passes (then panic with `what`).
pub async fn eventually<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return;
        }
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The one outrival source of [`config_yaml`], at `/webhooks/outrival`, as a
/// `sources:` list item.
pub fn outrival_source() -> String {
    format!(
        r#"  - name: outrival
    path: /webhooks/outrival
    verify:
      scheme: outrival
      secrets: ["{SECRET}"]
"#
    )
}

/// A config with one outrival source at `/webhooks/outrival` and a queue in
/// `dir`; `rest` adds `targets:`, `routes:` and anything else.
pub fn config_yaml(dir: &Path, rest: &str) -> String {
    config_yaml_sources(dir, &outrival_source(), rest)
}

/// Like [`config_yaml`], but with the given `sources:` list items (indented
/// by two spaces, as list entries) instead of the one outrival source.
pub fn config_yaml_sources(dir: &Path, sources: &str, rest: &str) -> String {
    format!(
        r#"version: 1
server:
  listen: 127.0.0.1:0
  read_timeout: 2s
  shutdown_timeout: 5s
admin:
  listen: 127.0.0.1:0
queue:
  path: {queue}
sources:
{sources}{rest}"#,
        queue = dir.join("queue.db").display()
    )
}

/// A config for the real binary ([`Process::serve`] fills in `{PORT}` and
/// `{ADMIN_PORT}`) with the one outrival source and the queue in
/// `./data/`; `rest` adds `targets:`, `routes:` and anything else.
pub fn process_config_yaml(rest: &str) -> String {
    format!(
        r#"version: 1
server:
  listen: 127.0.0.1:{{PORT}}
admin:
  listen: 127.0.0.1:{{ADMIN_PORT}}
queue:
  path: ./data/queue.db
sources:
{source}{rest}"#,
        source = outrival_source()
    )
}

/// An in-process gateway on ephemeral loopback ports.
pub struct Gateway {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), hookgate::RunError>>,
}

impl Gateway {
    /// Load `yaml` (as if from `dir/rules.yaml`) and run it.
    pub async fn start(dir: &Path, yaml: &str) -> Gateway {
        Self::start_with(dir, yaml, Arc::new(SystemClock), "127.0.0.1:0").await
    }

    /// [`Gateway::start`] on a given clock and admin bind address.
    pub async fn start_with(
        dir: &Path,
        yaml: &str,
        clock: Arc<dyn Clock>,
        admin_bind: &str,
    ) -> Gateway {
        let path = dir.join("rules.yaml");
        std::fs::write(&path, yaml).unwrap();
        Self::start_file(&path, clock, admin_bind).await
    }

    /// Load the config file at `path` as it is (a symlink, say) and run it.
    pub async fn start_file(path: &Path, clock: Arc<dyn Clock>, admin_bind: &str) -> Gateway {
        let loaded = config::load_file(path, &LoadOptions::from_process_env(false))
            .unwrap_or_else(|e| panic!("test config is invalid:\n{e}"));
        let ingress = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin = tokio::net::TcpListener::bind(admin_bind).await.unwrap();
        let addr = ingress.local_addr().unwrap();
        let admin_addr = SocketAddr::from(([127, 0, 0, 1], admin.local_addr().unwrap().port()));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(hookgate::run_with_clock(
            loaded.config,
            hookgate::Listeners { ingress, admin },
            async {
                let _ = rx.await;
            },
            clock,
        ));
        Gateway {
            addr,
            admin: admin_addr,
            stop: Some(tx),
            task,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    /// GET an admin path and parse the JSON answer.
    pub async fn admin_get(&self, path: &str) -> (u16, serde_json::Value) {
        let resp = reqwest::get(self.admin_url(path)).await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// Send `method` to an admin path and parse the JSON answer.
    pub async fn admin_send(
        &self,
        method: reqwest::Method,
        path: &str,
    ) -> (u16, serde_json::Value) {
        let resp = reqwest::Client::new()
            .request(method, self.admin_url(path))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// `/metrics` as text.
    pub async fn metrics_text(&self) -> String {
        metrics_text(&self.admin_url("/metrics")).await
    }

    /// The value of one series in `/metrics` (`name{labels}` exactly as
    /// rendered), if it is there.
    pub async fn metric(&self, series: &str) -> Option<String> {
        self.metrics_text()
            .await
            .lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ').map(str::to_owned))
    }

    /// Wait (up to 5 s) until delivery `id` reads `field: value` in the admin API.
    pub async fn delivery_reaches(&self, id: &str, field: &str, value: &str) {
        let path = format!("/admin/deliveries/{id}");
        let what = format!("delivery {id}: {field} = {value}");
        eventually(Duration::from_secs(5), &what, || async {
            self.admin_get(&path).await.1[field] == value
        })
        .await;
    }

    /// Graceful shutdown; waits for `run` to return.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        (&mut self.task).await.unwrap().unwrap();
    }
}

/// A port that was free a moment ago (for configs of the real binary).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A port where connections are refused for as long as this value lives: a
/// "down" target. The socket is bound (without `SO_REUSEADDR`) but never
/// listens, so no other test can take the port the way a port that was merely
/// free a moment ago can be taken (a sink of a concurrent test answering 404
/// where a connection error was expected).
pub struct RefusedPort {
    _socket: tokio::net::TcpSocket,
    pub port: u16,
}

impl RefusedPort {
    pub fn reserve() -> RefusedPort {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(([127, 0, 0, 1], 0).into()).unwrap();
        let port = socket.local_addr().unwrap().port();
        RefusedPort {
            _socket: socket,
            port,
        }
    }
}

/// `tool` can be run here (`tool ARGS` exits 0); otherwise say, in one
/// line, what is skipped.
pub fn tool_available(tool: &str, args: &[&str], skipped: &str) -> bool {
    let ok = Command::new(tool)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!(
            "`{tool} {}` unavailable: skipping {skipped}",
            args.join(" ")
        );
    }
    ok
}

/// The real `hookgate` binary, running `serve -c FILE` as a child process.
pub struct Process {
    pub child: Child,
    pub port: u16,
    pub admin_port: u16,
    pub stdout_path: PathBuf,
    pub stderr_path: PathBuf,
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_hookgate")
}

/// The real binary's dry run: write `yaml` and `event` into `dir`, run
/// `hookgate route --format json`, and parse what it printed (panics with
/// its stderr when it fails).
pub fn dry_run(dir: &Path, yaml: &str, event: &str) -> serde_json::Value {
    let event_file = dir.join("event.json");
    std::fs::write(&event_file, event).unwrap();
    let rules = dir.join("dry.yaml");
    std::fs::write(&rules, yaml).unwrap();
    let out = Command::new(binary())
        .args(["route", "--format", "json", "-c"])
        .arg(&rules)
        .arg(&event_file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

impl Process {
    /// Write `yaml` to `dir/rules.yaml` (after replacing `{PORT}` and
    /// `{ADMIN_PORT}` with free ports) and start `hookgate serve` on it.
    pub fn serve(dir: &Path, yaml: &str) -> Process {
        Self::serve_with(dir, yaml, &[], &[])
    }

    /// Like [`Process::serve`], with extra command-line `args` after
    /// `serve -c FILE` and extra `env` (which may override `HOOKGATE_LOG`).
    pub fn serve_with(dir: &Path, yaml: &str, args: &[&str], env: &[(&str, &str)]) -> Process {
        let port = free_port();
        let admin_port = free_port();
        let yaml = yaml
            .replace("{PORT}", &port.to_string())
            .replace("{ADMIN_PORT}", &admin_port.to_string());
        let config = dir.join("rules.yaml");
        std::fs::write(&config, yaml).unwrap();
        Self::spawn(dir, &config, port, admin_port, args, env)
    }

    /// Start `hookgate serve -c config` in `dir`, logging to files in `dir`.
    pub fn serve_file(dir: &Path, config: &Path, port: u16, admin_port: u16) -> Process {
        Self::spawn(dir, config, port, admin_port, &[], &[])
    }

    fn spawn(
        dir: &Path,
        config: &Path,
        port: u16,
        admin_port: u16,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Process {
        let stdout_path = dir.join(format!("stdout-{port}.log"));
        let stderr_path = dir.join(format!("stderr-{port}.log"));
        let child = Command::new(binary())
            .arg("serve")
            .arg("-c")
            .arg(config)
            .args(args)
            .current_dir(dir)
            .env("HOOKGATE_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout_path).unwrap())
            .stderr(std::fs::File::create(&stderr_path).unwrap())
            .spawn()
            .expect("spawn hookgate");
        Process {
            child,
            port,
            admin_port,
            stdout_path,
            stderr_path,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.admin_port)
    }

    /// `/metrics` as text.
    pub async fn metrics_text(&self) -> String {
        metrics_text(&self.admin_url("/metrics")).await
    }

    /// Wait until `/readyz` answers 200.
    pub async fn wait_ready(&mut self) {
        let url = self.admin_url("/readyz");
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "hookgate exited early ({status}):\n{}",
                    std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
                );
            }
            if let Ok(r) = reqwest::get(&url).await
                && r.status() == 200
            {
                return;
            }
            if start.elapsed() > Duration::from_secs(20) {
                panic!(
                    "hookgate not ready after 20s:\n{}",
                    std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        self.child.wait().unwrap()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout_path).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
