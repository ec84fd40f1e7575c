//! `deploy/` kept honest without a container engine: every YAML parses, the
//! hookgate configs embedded in the compose setup and the Kubernetes
//! ConfigMap pass the real binary's `check` with exactly the environment
//! their manifests give them, and the ports, probe paths, mounts and grace
//! periods of the manifests agree with the configs they run ([`manifests`]
//! for Kubernetes, [`compose`] for docker-compose and nginx, [`image`] for
//! the Dockerfile). [`live`] runs the compose stack's own files (its
//! redis.conf, its hookgate config, its sample downstream) as local
//! processes: three replicas on one Redis delivering to the downstream,
//! which checks every signature.
//!
//! Tools that may be absent (`kubectl` for `kustomize`, `docker compose`,
//! `hadolint`, `redis-server`, `python3`) are used when on PATH; otherwise
//! that part is skipped with one line.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::common::binary;

mod compose;
mod image;
mod live;
mod manifests;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

fn scale_out_dir() -> PathBuf {
    deploy_dir().join("kubernetes/scale-out")
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

/// The documents of the kustomization's resources, in its order.
fn k8s_docs() -> Vec<Value> {
    let dir = scale_out_dir();
    let kustomization = yaml_docs(&dir.join("kustomization.yaml")).remove(0);
    kustomization["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .flat_map(|r| yaml_docs(&dir.join(r.as_str().unwrap())))
        .collect()
}

/// The one Kubernetes object of `kind` named `name` among the kustomization's resources.
fn k8s(kind: &str, name: &str) -> Value {
    let found: Vec<Value> = k8s_docs()
        .into_iter()
        .filter(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "{kind}/{name} among the kustomization's resources"
    );
    found.into_iter().next().unwrap()
}

/// The hookgate config text in the ConfigMap, and what it parses to.
fn configmap_config() -> (String, Value) {
    let text = k8s("ConfigMap", "hookgate-config")["data"]["rules.yaml"]
        .as_str()
        .expect("data.rules.yaml")
        .to_owned();
    let value = serde_saphyr::from_str(&text).unwrap();
    (text, value)
}

fn compose() -> Value {
    yaml_docs(&deploy_dir().join("docker-compose.redis.yml")).remove(0)
}

fn compose_config() -> (String, Value) {
    let text = read(&deploy_dir().join("compose-config/rules.yaml"));
    let value = serde_saphyr::from_str(&text).unwrap();
    (text, value)
}

/// The hookgate services of the compose file, by name.
fn compose_replicas() -> BTreeMap<String, Value> {
    let services = compose()["services"].as_object().unwrap().clone();
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

/// `tool` can be run here (`tool ARGS` exits 0); otherwise say, in one
/// line, what is skipped.
fn tool_available(tool: &str, args: &[&str], skipped: &str) -> bool {
    let ok = Command::new(tool)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "`{tool} {}` unavailable: skipping {skipped}",
            args.join(" ")
        );
    }
    ok
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
