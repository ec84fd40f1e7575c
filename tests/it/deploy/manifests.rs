//! Static checks of `deploy/`: YAML parses, configs pass `hookgate check`
//! with the environment their manifests set, and the Kubernetes manifests
//! (ports, probes, mounts, grace period, hardening, Redis durability) agree
//! with the config they run.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use super::{
    assert_success, check, config_flag, config_vars, configmap_config, deploy_dir, files_with, k8s,
    k8s_docs, listen_port, missing, read, scale_out_dir, tool_available, yaml_docs,
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
fn the_kustomization_lists_every_manifest_but_the_example_secret() {
    let dir = scale_out_dir();
    let listed: BTreeSet<String> =
        yaml_docs(&dir.join("kustomization.yaml")).remove(0)["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap().to_owned())
            .collect();
    let on_disk: BTreeSet<String> = files_with(&dir, &[".yaml"])
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .filter(|n| n != "kustomization.yaml" && n != "secret.example.yaml")
        .collect();
    assert_eq!(listed, on_disk);
    // Real secrets are never applied from the repository.
    assert!(k8s_docs().iter().all(|d| d["kind"] != "Secret"));
    if tool_available("kubectl", &["version", "--client"], "`kubectl kustomize`") {
        let out = Command::new("kubectl")
            .arg("kustomize")
            .arg(&dir)
            .output()
            .unwrap();
        assert_success(&out);
    }
}

/// The env the hookgate container gets: literal values (with `$(VAR)`
/// expanded as the kubelet does) and Secret keys, whose values are taken
/// from `secret.example.yaml`. A non-optional key missing from the example
/// fails: the example must show every key the manifests read.
fn container_env(container: &Value) -> BTreeMap<String, String> {
    let secret = yaml_docs(&scale_out_dir().join("secret.example.yaml")).remove(0);
    let secret_value = |r: &Value| -> Option<String> {
        assert_eq!(r["name"], secret["metadata"]["name"], "{r}");
        let key = r["key"].as_str().unwrap();
        match secret["stringData"][key].as_str() {
            Some(v) => Some(v.to_owned()),
            None if r["optional"] == true => None,
            None => panic!("secret.example.yaml lacks {key}"),
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

pub(super) fn hookgate_pod() -> Value {
    k8s("Deployment", "hookgate")["spec"]["template"].clone()
}

fn hookgate_container() -> Value {
    hookgate_pod()["spec"]["containers"][0].clone()
}

#[test]
fn the_configmap_config_passes_check_with_the_deployments_env() {
    let (text, config) = configmap_config();
    let out = check(&text, &BTreeMap::new(), true);
    assert_success(&out);

    let env = container_env(&hookgate_container());
    let provided: BTreeSet<String> = env.keys().cloned().collect();
    let required: Vec<String> = config_vars(&config)
        .into_iter()
        .filter(|(_, has_default)| !has_default)
        .map(|(name, _)| name)
        .collect();
    assert!(required.contains(&"REDIS_URL".to_owned()), "{required:?}");
    assert_eq!(missing(&required, &provided), Vec::<String>::new());
    // Without --allow-missing-env: every value really resolves (the Redis URL too).
    let out = check(&text, &env, false);
    assert_success(&out);
    assert_eq!(config["queue"]["backend"], "redis");
    // The URL names the Redis Service of this directory, on its port.
    let redis = k8s("Service", "hookgate-redis");
    let url = reqwest::Url::parse(&env["REDIS_URL"]).unwrap();
    assert_eq!(url.host_str(), redis["metadata"]["name"].as_str());
    assert_eq!(
        Some(url.port().unwrap()),
        redis["spec"]["ports"][0]["port"].as_u64().map(|p| p as u16)
    );
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

#[test]
fn ports_probes_and_mounts_match_the_config() {
    let (_, config) = configmap_config();
    let pod = hookgate_pod();
    let c = hookgate_container();
    for section in ["server", "admin"] {
        let listen = config[section]["listen"].as_str().unwrap();
        assert!(
            listen.starts_with("0.0.0.0:"),
            "{section}.listen {listen}: unreachable from outside the pod"
        );
    }
    assert_eq!(port_named(&c, "http"), listen_port(&config, "server"));
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

    // The Service sends to the webhook port of pods it really selects.
    let service = k8s("Service", "hookgate");
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "http");
    let labels = pod["metadata"]["labels"].as_object().unwrap();
    let pdb = k8s("PodDisruptionBudget", "hookgate");
    for selector in [
        &service["spec"]["selector"],
        &pdb["spec"]["selector"]["matchLabels"],
    ] {
        for (k, v) in selector.as_object().unwrap() {
            assert_eq!(labels.get(k), Some(v), "selector {k}");
        }
    }
    assert_eq!(k8s("Deployment", "hookgate")["spec"]["replicas"], 3);

    // `-c` names a file in the ConfigMap, mounted as a directory (no subPath
    // anywhere: a subPath mount never sees a ConfigMap update).
    let config_path = config_flag(&c["args"]);
    let (dir, file) = config_path.rsplit_once('/').unwrap();
    let mount = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mountPath"] == dir)
        .expect("config mount");
    assert!(mount["subPath"].is_null());
    let volume = pod["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .unwrap();
    assert_eq!(volume["configMap"]["name"], "hookgate-config");
    assert!(k8s("ConfigMap", "hookgate-config")["data"][file].is_string());
    assert!(
        k8s_docs()
            .iter()
            .all(|d| !d.to_string().contains("\"subPath\""))
    );
}

#[test]
fn the_grace_period_covers_prestop_and_shutdown_timeout() {
    let (_, config) = configmap_config();
    let shutdown =
        humantime::parse_duration(config["server"]["shutdown_timeout"].as_str().unwrap()).unwrap();
    let pod = hookgate_pod();
    let c = hookgate_container();
    let command = c["lifecycle"]["preStop"]["exec"]["command"]
        .as_array()
        .expect("a preStop exec");
    assert_eq!(command[0], "sleep");
    let pre_stop = Duration::from_secs(command[1].as_str().unwrap().parse().unwrap());
    let grace = Duration::from_secs(
        pod["spec"]["terminationGracePeriodSeconds"]
            .as_u64()
            .unwrap(),
    );
    assert!(
        grace > pre_stop + shutdown,
        "{grace:?} <= {pre_stop:?} + {shutdown:?}"
    );
}

#[test]
fn every_container_is_hardened_and_sized() {
    let redis = k8s("StatefulSet", "hookgate-redis")["spec"]["template"].clone();
    for pod in [hookgate_pod(), redis] {
        assert_eq!(pod["spec"]["securityContext"]["runAsNonRoot"], true);
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
            assert!(
                c["resources"]["requests"]["memory"].is_string(),
                "{}",
                c["name"]
            );
            assert!(
                c["resources"]["limits"]["memory"].is_string(),
                "{}",
                c["name"]
            );
        }
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
    let conf_map = k8s("ConfigMap", "hookgate-redis-config");
    let conf = redis_directives(conf_map["data"]["redis.conf"].as_str().unwrap());
    assert_durable(&conf, "redis-config.yaml");
    assert_durable(
        &redis_directives(&read(&deploy_dir().join("redis/redis.conf"))),
        "deploy/redis/redis.conf",
    );

    let sts = k8s("StatefulSet", "hookgate-redis");
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
