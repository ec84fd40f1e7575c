//! Static checks of `deploy/`: YAML parses, configs pass `hookgate check`
//! with the environment their manifests set, and both Kubernetes setups (the
//! sidecar and the scale-out) agree with the config they run: ports, probes,
//! the Service, mounts, grace period, hardening, memory, Redis durability.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use super::{
    Kustomize, assert_success, check, config_flag, config_vars, deploy_dir, files_with,
    listen_port, missing, port_named, read, strings, tool_available, yaml_docs,
};

#[test]
fn every_yaml_under_deploy_parses() {
    let files = files_with(&deploy_dir(), &[".yaml", ".yml"]);
    // The compose file and its config, the alert rules, and the scale-out manifests.
    assert!(files.len() >= 10, "{files:?}");
    for file in &files {
        assert!(!yaml_docs(file).is_empty(), "{} is empty", file.display());
    }
    // Every Kubernetes document is an object with a kind and a name.
    for file in files_with(&deploy_dir().join("kubernetes"), &[".yaml"]) {
        for doc in yaml_docs(&file) {
            assert!(
                doc["apiVersion"].is_string() && doc["kind"].is_string(),
                "{}",
                file.display()
            );
            if doc["kind"] != "Kustomization" {
                assert!(doc["metadata"]["name"].is_string(), "{}", file.display());
            }
        }
    }
}

#[test]
fn each_kustomization_lists_every_manifest_but_the_example_secret() {
    for k in Kustomize::all() {
        let kustomization = k.kustomization();
        let listed: BTreeSet<&str> = strings(&kustomization["resources"]).into_iter().collect();
        // The files of the directory itself (an overlay lives beside it).
        let on_disk: Vec<String> = std::fs::read_dir(&k.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".yaml"))
            .filter(|n| n != "kustomization.yaml" && n != "secret.example.yaml")
            .collect();
        assert_eq!(
            listed,
            on_disk.iter().map(String::as_str).collect(),
            "{}",
            k.name()
        );
        // Real secrets are never applied from the repository.
        assert!(k.docs().iter().all(|d| d["kind"] != "Secret"));
        if tool_available("kubectl", &["version", "--client"], "`kubectl kustomize`") {
            assert_success(&kustomize(&k.dir));
        }
    }
}

/// `kubectl kustomize DIR`.
pub(super) fn kustomize(dir: &Path) -> std::process::Output {
    Command::new("kubectl")
        .arg("kustomize")
        .arg(dir)
        .output()
        .unwrap()
}

#[test]
fn each_configmap_config_passes_check_with_the_deployments_env() {
    for k in Kustomize::all() {
        let (text, config) = k.configmap_config();
        assert_success(&check(&text, &BTreeMap::new(), true));

        let env = k.container_env(&k.hookgate());
        let provided: BTreeSet<String> = env.keys().cloned().collect();
        let required: Vec<String> = config_vars(&config)
            .into_iter()
            .filter(|(_, has_default)| !has_default)
            .map(|(name, _)| name)
            .collect();
        assert_eq!(
            missing(&required, &provided),
            Vec::<String>::new(),
            "{}",
            k.name()
        );
        // Without --allow-missing-env: every value really resolves.
        assert_success(&check(&text, &env, false));
        if config["queue"]["backend"] == "redis" {
            // The URL names the Redis Service of this directory, on its port.
            let redis = k.object("Service", "hookgate-redis");
            let url = reqwest::Url::parse(&env["REDIS_URL"]).unwrap();
            assert_eq!(url.host_str(), redis["metadata"]["name"].as_str());
            assert_eq!(
                Some(url.port().unwrap()),
                redis["spec"]["ports"][0]["port"].as_u64().map(|p| p as u16)
            );
        }
    }
}

#[test]
fn ports_probes_and_mounts_match_the_config() {
    for k in Kustomize::all() {
        let (_, config) = k.configmap_config();
        let pod = k.pod();
        let c = k.hookgate();
        for section in ["server", "admin"] {
            let listen = config[section]["listen"].as_str().unwrap();
            assert!(
                listen.starts_with("0.0.0.0:"),
                "{}: {section}.listen {listen}: unreachable from outside the pod",
                k.name()
            );
        }
        assert_eq!(port_named(&c, "admin"), listen_port(&config, "admin"));
        for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
            assert_eq!(c[probe]["httpGet"]["path"], path, "{probe}");
            assert_eq!(c[probe]["httpGet"]["port"], "admin", "{probe}");
        }
        let annotations = &pod["metadata"]["annotations"];
        assert_eq!(
            annotations["prometheus.io/port"],
            listen_port(&config, "admin").to_string()
        );
        assert_eq!(annotations["prometheus.io/path"], "/metrics");

        // Exactly one Service selects the pod, and it sends to hookgate's
        // webhook port, never to the admin port.
        let labels = pod["metadata"]["labels"].as_object().unwrap();
        let selects = |selector: &Value| {
            selector
                .as_object()
                .unwrap()
                .iter()
                .all(|(k, v)| labels.get(k) == Some(v))
        };
        let services: Vec<Value> = k
            .docs()
            .into_iter()
            .filter(|d| d["kind"] == "Service" && selects(&d["spec"]["selector"]))
            .collect();
        assert_eq!(services.len(), 1, "{}", k.name());
        let ports = services[0]["spec"]["ports"].as_array().unwrap();
        assert_eq!(ports.len(), 1, "{}", k.name());
        let target_port = ports[0]["targetPort"].as_str().unwrap();
        assert_eq!(
            port_named(&c, target_port),
            listen_port(&config, "server"),
            "{}",
            k.name()
        );
        for pdb in k
            .docs()
            .iter()
            .filter(|d| d["kind"] == "PodDisruptionBudget")
        {
            assert!(selects(&pdb["spec"]["selector"]["matchLabels"]));
        }

        // `-c` names a file in the ConfigMap, mounted as a directory (no
        // subPath anywhere: a subPath mount never sees a ConfigMap update).
        let config_path = config_flag(&c["args"]);
        let (dir, file) = config_path.rsplit_once('/').unwrap();
        let mount = mount_at(&c, dir).expect("config mount");
        assert!(mount["subPath"].is_null());
        assert_eq!(mount["readOnly"], true);
        let volume = volume_named(&pod, mount["name"].as_str().unwrap());
        assert_eq!(volume["configMap"]["name"], "hookgate-config");
        assert!(k.object("ConfigMap", "hookgate-config")["data"][file].is_string());
        assert!(
            k.docs()
                .iter()
                .all(|d| !d.to_string().contains("\"subPath\""))
        );
    }
    assert_eq!(Kustomize::scale_out().deployment()["spec"]["replicas"], 3);
}

/// The volume mount of `container` at exactly `path`.
pub(super) fn mount_at(container: &Value, path: &str) -> Option<Value> {
    container["volumeMounts"]
        .as_array()?
        .iter()
        .find(|m| m["mountPath"] == path)
        .cloned()
}

/// The pod's volume named `name`.
pub(super) fn volume_named(pod: &Value, name: &str) -> Value {
    pod["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("no volume {name}"))
        .clone()
}

#[test]
fn the_grace_period_covers_prestop_and_shutdown_timeout() {
    for k in Kustomize::all() {
        let (_, config) = k.configmap_config();
        let shutdown =
            humantime::parse_duration(config["server"]["shutdown_timeout"].as_str().unwrap())
                .unwrap();
        let command = k.hookgate()["lifecycle"]["preStop"]["exec"]["command"].clone();
        let command = strings(&command);
        assert_eq!(command[0], "sleep");
        let pre_stop = Duration::from_secs(command[1].parse().unwrap());
        let grace = Duration::from_secs(
            k.pod()["spec"]["terminationGracePeriodSeconds"]
                .as_u64()
                .unwrap(),
        );
        assert!(
            grace > pre_stop + shutdown,
            "{}: {grace:?} <= {pre_stop:?} + {shutdown:?}",
            k.name()
        );
    }
}

/// A Kubernetes quantity (`128Mi`, `1Gi`, `512M`) in bytes.
pub(super) fn quantity(q: &str) -> u64 {
    let digits: String = q.chars().take_while(char::is_ascii_digit).collect();
    let unit = match &q[digits.len()..] {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        other => panic!("unit {other} in {q}"),
    };
    digits.parse::<u64>().unwrap() * unit
}

#[test]
fn every_container_is_hardened_and_sized() {
    let redis =
        Kustomize::scale_out().object("StatefulSet", "hookgate-redis")["spec"]["template"].clone();
    let pods = Kustomize::all().map(|k| k.pod());
    for pod in pods.iter().chain([&redis]) {
        assert_eq!(pod["spec"]["securityContext"]["runAsNonRoot"], true);
        assert_eq!(pod["spec"]["automountServiceAccountToken"], false);
        for c in pod["spec"]["containers"].as_array().unwrap() {
            let sc = &c["securityContext"];
            assert_eq!(sc["readOnlyRootFilesystem"], true, "{}", c["name"]);
            assert_eq!(sc["allowPrivilegeEscalation"], false, "{}", c["name"]);
            assert_eq!(
                sc["capabilities"]["drop"],
                serde_json::json!(["ALL"]),
                "{}",
                c["name"]
            );
            let request = quantity(c["resources"]["requests"]["memory"].as_str().unwrap());
            let limit = quantity(c["resources"]["limits"]["memory"].as_str().unwrap());
            assert!(request <= limit, "{}", c["name"]);
        }
    }
    // hookgate's limit holds what it was measured to need (docs/operations.md,
    // "Memory": under 64 MiB idle and under load) plus the request bodies the
    // config lets it hold at once.
    for k in Kustomize::all() {
        let (_, config) = k.configmap_config();
        let inflight = config["server"]["max_inflight_bytes"]
            .as_str()
            .map_or(256 << 20, super::compose::bytes);
        let limit = quantity(
            k.hookgate()["resources"]["limits"]["memory"]
                .as_str()
                .unwrap(),
        );
        assert!(
            limit >= inflight + (64 << 20),
            "{}: a {limit}-byte limit cannot hold {inflight} bytes of bodies in flight",
            k.name()
        );
    }
}

/// `directive value` lines of a redis.conf.
pub(super) fn redis_directives(conf: &str) -> BTreeMap<String, String> {
    conf.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
        .collect()
}

/// What hookgate needs of Redis (docs/scaling.md), in both redis.conf files.
pub(super) fn assert_durable(conf: &BTreeMap<String, String>, which: &str) {
    for (k, v) in [
        ("appendonly", "yes"),
        ("appendfsync", "always"),
        ("maxmemory-policy", "noeviction"),
    ] {
        assert_eq!(conf.get(k).map(String::as_str), Some(v), "{which}: {k}");
    }
    assert!(conf.contains_key("maxmemory"), "{which}: maxmemory");
}

#[test]
fn redis_is_durable_and_keeps_its_aof_on_the_claim() {
    let k = Kustomize::scale_out();
    let conf_map = k.object("ConfigMap", "hookgate-redis-config");
    let conf = redis_directives(conf_map["data"]["redis.conf"].as_str().unwrap());
    assert_durable(&conf, "redis-config.yaml");
    assert_durable(
        &redis_directives(&read(&deploy_dir().join("redis/redis.conf"))),
        "deploy/redis/redis.conf",
    );

    let sts = k.object("StatefulSet", "hookgate-redis");
    let c = &sts["spec"]["template"]["spec"]["containers"][0];
    let mounts = c["volumeMounts"].as_array().unwrap();
    let claim = &sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"];
    let data = mounts
        .iter()
        .find(|m| &m["name"] == claim)
        .expect("the claim is mounted");
    assert_eq!(
        data["mountPath"].as_str(),
        conf.get("dir").map(String::as_str)
    );
    // redis-server is started on the mounted redis.conf.
    let conf_path = c["command"][1].as_str().unwrap();
    let (dir, file) = conf_path.rsplit_once('/').unwrap();
    assert!(mounts.iter().any(|m| m["mountPath"] == dir));
    assert!(conf_map["data"][file].is_string());
    assert_eq!(
        c["ports"][0]["containerPort"]
            .as_u64()
            .map(|p| p.to_string()),
        conf.get("port").cloned()
    );
}
