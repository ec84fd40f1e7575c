//! `deploy/` kept honest without a container engine: every YAML parses, the
//! hookgate configs embedded in the compose files, the Kubernetes ConfigMaps
//! and the systemd unit pass the real binary's `check` with exactly the
//! environment their manifests give them, and the ports, probe paths, mounts,
//! volumes and grace periods agree with the configs they run ([`manifests`]
//! for both Kubernetes setups, [`sidecar`] for what only the sidecar has,
//! [`compose`] for docker-compose and nginx, [`image`] for the Dockerfile,
//! [`systemd`] for the unit, [`prometheus`] for the alert rules). [`live`]
//! runs the compose stacks' own files (configs, redis.conf, the sample
//! downstream) and the sidecar's config as local processes, the downstream
//! checking every signature hookgate sends.
//!
//! Tools that may be absent (`kubectl` for `kustomize`, `docker compose`,
//! `hadolint`, `promtool`, `systemd-analyze`, `redis-server`, `python3`) are
//! used when on PATH; otherwise that part is skipped with one line.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::common::{binary, tool_available};

mod compose;
mod image;
mod live;
mod manifests;
mod prometheus;
mod sidecar;
mod systemd;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every document of a YAML file (a `---`-separated stream), empty ones dropped.
fn yaml_docs(path: &Path) -> Vec<Value> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(&read(path))
        .unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()));
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

/// Every file under `dir` (recursively) whose name ends with one of `exts`.
fn files_with(dir: &Path, exts: &[&str]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_with(&path, exts));
        } else if exts.iter().any(|e| path.to_string_lossy().ends_with(e)) {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// One kustomization under `deploy/kubernetes/` that runs hookgate: its
/// resources, the hookgate config in its ConfigMap, the pod with the
/// `hookgate` container.
struct Kustomize {
    dir: PathBuf,
}

impl Kustomize {
    /// Three replicas on Redis.
    fn scale_out() -> Kustomize {
        Kustomize {
            dir: deploy_dir().join("kubernetes/scale-out"),
        }
    }

    /// An app with hookgate beside it, its queue on a claim.
    fn sidecar() -> Kustomize {
        Kustomize {
            dir: deploy_dir().join("kubernetes/sidecar"),
        }
    }

    /// Every kustomization that is a base (not an overlay).
    fn all() -> [Kustomize; 2] {
        [Kustomize::scale_out(), Kustomize::sidecar()]
    }

    fn name(&self) -> String {
        self.dir
            .strip_prefix(deploy_dir())
            .unwrap_or(&self.dir)
            .display()
            .to_string()
    }

    fn kustomization(&self) -> Value {
        yaml_docs(&self.dir.join("kustomization.yaml")).remove(0)
    }

    /// The documents of the kustomization's resources, in its order.
    fn docs(&self) -> Vec<Value> {
        strings(&self.kustomization()["resources"])
            .into_iter()
            .flat_map(|r| yaml_docs(&self.dir.join(r)))
            .collect()
    }

    /// The one object of `kind` named `name` among the resources.
    fn object(&self, kind: &str, name: &str) -> Value {
        let found: Vec<Value> = self
            .docs()
            .into_iter()
            .filter(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .collect();
        assert_eq!(found.len(), 1, "{kind}/{name} in {}", self.name());
        found.into_iter().next().unwrap()
    }

    /// The hookgate config text in the ConfigMap, and what it parses to.
    fn configmap_config(&self) -> (String, Value) {
        let text = self.object("ConfigMap", "hookgate-config")["data"]["rules.yaml"]
            .as_str()
            .expect("data.rules.yaml")
            .to_owned();
        let value = serde_saphyr::from_str(&text).unwrap();
        (text, value)
    }

    /// The Deployment that runs a container named `hookgate`.
    fn deployment(&self) -> Value {
        let found: Vec<Value> = self
            .docs()
            .into_iter()
            .filter(|d| d["kind"] == "Deployment")
            .filter(|d| {
                d["spec"]["template"]["spec"]["containers"]
                    .as_array()
                    .is_some_and(|cs| cs.iter().any(|c| c["name"] == "hookgate"))
            })
            .collect();
        assert_eq!(found.len(), 1, "one hookgate Deployment in {}", self.name());
        found.into_iter().next().unwrap()
    }

    fn pod(&self) -> Value {
        self.deployment()["spec"]["template"].clone()
    }

    fn container(&self, name: &str) -> Value {
        self.pod()["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no container {name} in {}", self.name()))
            .clone()
    }

    fn hookgate(&self) -> Value {
        self.container("hookgate")
    }

    /// The env a container gets: literal values (with `$(VAR)` expanded as
    /// the kubelet does) and Secret keys, whose values are taken from
    /// `secret.example.yaml`. A non-optional key missing from the example
    /// fails: the example must show every key the manifests read.
    fn container_env(&self, container: &Value) -> BTreeMap<String, String> {
        let secret = yaml_docs(&self.dir.join("secret.example.yaml")).remove(0);
        let secret_value = |r: &Value| -> Option<String> {
            assert_eq!(r["name"], secret["metadata"]["name"], "{r}");
            let key = r["key"].as_str().unwrap();
            match secret["stringData"][key].as_str() {
                Some(v) => Some(v.to_owned()),
                None if r["optional"] == true => None,
                None => panic!("{}/secret.example.yaml lacks {key}", self.name()),
            }
        };
        let mut env = BTreeMap::new();
        for from in container["envFrom"].as_array().into_iter().flatten() {
            assert_eq!(
                from["secretRef"]["name"], secret["metadata"]["name"],
                "{from}"
            );
            for (k, v) in secret["stringData"].as_object().unwrap() {
                env.insert(k.clone(), v.as_str().unwrap().to_owned());
            }
        }
        for var in container["env"].as_array().into_iter().flatten() {
            let name = var["name"].as_str().unwrap().to_owned();
            let value = if let Some(v) = var["value"].as_str() {
                env.iter()
                    .fold(v.to_owned(), |s, (k, x)| s.replace(&format!("$({k})"), x))
            } else if let Some(v) = secret_value(&var["valueFrom"]["secretKeyRef"]) {
                v
            } else {
                continue;
            };
            env.insert(name, value);
        }
        env
    }
}

/// A container port's number by name.
fn port_named(container: &Value, name: &str) -> u16 {
    container["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .and_then(|p| p["containerPort"].as_u64())
        .unwrap_or_else(|| panic!("no container port {name}")) as u16
}

/// `deploy/docker-compose.yml`: one hookgate on SQLite and the sample downstream.
const LOCAL_COMPOSE: &str = "docker-compose.yml";
/// `deploy/docker-compose.redis.yml`: three replicas on Redis behind nginx.
const REDIS_COMPOSE: &str = "docker-compose.redis.yml";

fn compose(file: &str) -> Value {
    yaml_docs(&deploy_dir().join(file)).remove(0)
}

/// The hookgate config a compose service runs: the file its `-c` names, in
/// the host directory mounted (read-only) at that file's directory.
fn mounted_config(service: &Value) -> (String, Value) {
    let path = config_flag(&service["command"]);
    let (dir, file) = path.rsplit_once('/').unwrap();
    let host_dir = strings(&service["volumes"])
        .into_iter()
        .find_map(|v| v.strip_suffix(&format!(":{dir}:ro")))
        .unwrap_or_else(|| panic!("nothing mounted read-only at {dir}"));
    let text = read(&deploy_dir().join(host_dir).join(file));
    let value = serde_saphyr::from_str(&text).unwrap();
    (text, value)
}

/// The config the replicas of the Redis compose file run.
fn compose_config() -> (String, Value) {
    let replicas = compose_replicas();
    let first = replicas.values().next().expect("a replica");
    mounted_config(first)
}

/// The hookgate services of the Redis compose file, by name.
fn compose_replicas() -> BTreeMap<String, Value> {
    let services = compose(REDIS_COMPOSE)["services"]
        .as_object()
        .unwrap()
        .clone();
    services
        .into_iter()
        .filter(|(name, _)| name.starts_with("hookgate"))
        .collect()
}

/// The port of `section.listen` (`server` or `admin`) of a config.
fn listen_port(config: &Value, section: &str) -> u16 {
    let listen = config[section]["listen"].as_str().expect("listen");
    listen.rsplit(':').next().unwrap().parse().unwrap()
}

/// `${VAR}` references in a config's string values: each name, and whether
/// it has a `:-` default (those need not be set).
fn config_vars(config: &Value) -> BTreeMap<String, bool> {
    let mut out = BTreeMap::new();
    walk_strings(config, &mut |s| {
        for reference in s.split("${").skip(1) {
            let inner = reference.split('}').next().unwrap();
            let (name, has_default) = match inner.split_once(":-") {
                Some((name, _)) => (name, true),
                None => (inner, false),
            };
            // Required as soon as one use has no default.
            let entry = out.entry(name.to_owned()).or_insert(has_default);
            *entry &= has_default;
        }
    });
    out
}

fn walk_strings(v: &Value, f: &mut impl FnMut(&str)) {
    match v {
        Value::String(s) => f(s),
        Value::Array(a) => a.iter().for_each(|x| walk_strings(x, f)),
        Value::Object(o) => o.values().for_each(|x| walk_strings(x, f)),
        _ => {}
    }
}

/// The variables of `deploy/.env.example` (empty values included).
fn env_example() -> BTreeMap<String, String> {
    read(&deploy_dir().join(".env.example"))
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once('=').expect("NAME=value");
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

/// Compose's interpolation of `${NAME}`, `${NAME:-default}` and
/// `${NAME:?error}` from `vars`; a `:?` variable missing from `vars` fails
/// the test (compose would refuse to start).
fn compose_interpolate(s: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = start + rest[start..].find('}').expect("closing }");
        let inner = &rest[start + 2..end];
        let (name, default) = match inner.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (inner.split(":?").next().unwrap(), None),
        };
        let value = match (vars.get(name), default) {
            (Some(v), _) if !v.is_empty() => v.clone(),
            (_, Some(d)) => d.to_owned(),
            (Some(v), None) if !inner.contains(":?") => v.clone(),
            _ => panic!("`{s}` needs {name}, which deploy/.env.example does not set"),
        };
        out.push_str(&value);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// `hookgate check -c FILE` on `config_text`, with exactly `env` (nothing
/// inherited from the test process).
fn check(config_text: &str, env: &BTreeMap<String, String>, allow_missing_env: bool) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rules.yaml");
    std::fs::write(&file, config_text).unwrap();
    let mut cmd = Command::new(binary());
    cmd.arg("check").arg("-c").arg(&file);
    if allow_missing_env {
        cmd.arg("--allow-missing-env");
    }
    cmd.env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Names in `needed` that `provided` lacks.
fn missing<'a>(
    needed: impl IntoIterator<Item = &'a String>,
    provided: &BTreeSet<String>,
) -> Vec<String> {
    needed
        .into_iter()
        .filter(|n| !provided.contains(*n))
        .cloned()
        .collect()
}

/// A YAML list of strings.
fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap_or_else(|| panic!("not a string: {s}")))
        .collect()
}

/// The value after `-c` in a command or args list: the config file.
fn config_flag(args: &Value) -> String {
    let args = strings(args);
    args[args.iter().position(|a| *a == "-c").expect("-c") + 1].to_owned()
}

/// The command exited 0; its output is shown otherwise.
fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
