//! Static checks of the compose files against the hookgate configs they
//! mount: `deploy/docker-compose.yml` (one hookgate on SQLite) and
//! `deploy/docker-compose.redis.yml` (three replicas, Redis, the nginx
//! config in front), with `.env.example` and the sample downstream.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde_json::Value;

use super::manifests::{assert_durable, redis_directives};
use super::{
    LOCAL_COMPOSE, REDIS_COMPOSE, assert_success, check, compose, compose_config,
    compose_interpolate, compose_replicas, config_vars, deploy_dir, env_example, listen_port,
    missing, mounted_config, read, strings, tool_available,
};

/// A service's environment after compose's interpolation from `.env.example`.
pub(super) fn replica_env(service: &Value) -> BTreeMap<String, String> {
    service_env(service, &env_example())
}

/// A service's environment after compose's interpolation from `vars`.
fn service_env(service: &Value, vars: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    service["environment"]
        .as_object()
        .expect("environment as a map")
        .iter()
        .map(|(k, v)| (k.clone(), compose_interpolate(v.as_str().unwrap(), vars)))
        .collect()
}

#[test]
fn three_replicas_run_the_mounted_config_with_the_env_it_needs() {
    let (text, config) = compose_config();
    assert_eq!(config["queue"]["backend"], "redis");
    let out = check(&text, &BTreeMap::new(), true);
    assert_success(&out);

    let replicas = compose_replicas();
    assert_eq!(replicas.len(), 3, "{:?}", replicas.keys());
    let required: Vec<String> = config_vars(&config)
        .into_iter()
        .filter(|(_, d)| !d)
        .map(|(n, _)| n)
        .collect();
    let shutdown =
        humantime::parse_duration(config["server"]["shutdown_timeout"].as_str().unwrap()).unwrap();
    for (name, service) in &replicas {
        let env = replica_env(service);
        let provided: BTreeSet<String> = env.keys().cloned().collect();
        assert_eq!(
            missing(&required, &provided),
            Vec::<String>::new(),
            "{name}"
        );
        let out = check(&text, &env, false);
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );

        // Every replica runs the same file, and mounts nothing else.
        assert_eq!(mounted_config(service).0, text, "{name}");
        assert_eq!(strings(&service["volumes"]).len(), 1, "{name}");
        let grace =
            humantime::parse_duration(service["stop_grace_period"].as_str().unwrap()).unwrap();
        assert!(
            grace > shutdown,
            "{name}: stop_grace_period {grace:?} <= {shutdown:?}"
        );

        // The admin port is published on the host's loopback only.
        let ports = service["ports"].as_array().unwrap();
        for p in ports {
            let p = p.as_str().unwrap();
            assert!(p.starts_with("127.0.0.1:"), "{name}: {p}");
            assert_eq!(
                p.rsplit(':').next().unwrap(),
                listen_port(&config, "admin").to_string()
            );
        }
        // The Redis URL names the compose service, on redis.conf's port.
        let url = reqwest::Url::parse(&env["REDIS_URL"]).unwrap();
        assert!(
            compose(REDIS_COMPOSE)["services"][url.host_str().unwrap()].is_object(),
            "{url}"
        );
        let conf = redis_directives(&read(&deploy_dir().join("redis/redis.conf")));
        assert_eq!(url.port().map(|p| p.to_string()), conf.get("port").cloned());
    }
    // No secret literally in the compose file: every secret-looking value is interpolated.
    let vars = env_example();
    for (k, v) in &vars {
        if !v.is_empty() {
            assert!(
                !read(&deploy_dir().join(REDIS_COMPOSE)).contains(v.as_str()),
                "{k}'s value is in the compose file"
            );
        }
    }
}

/// `size` (`10MiB`, `10m`, `1048576`) in bytes: hookgate's units and nginx's.
pub(super) fn bytes(size: &str) -> u64 {
    let digits: String = size.chars().take_while(char::is_ascii_digit).collect();
    let unit = match size[digits.len()..].to_ascii_lowercase().as_str() {
        "" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        other => panic!("unit {other}"),
    };
    digits.parse::<u64>().unwrap() * unit
}

/// The values of every `directive ...;` line of the nginx config.
fn nginx(directive: &str) -> Vec<String> {
    read(&deploy_dir().join("nginx/hookgate.conf"))
        .lines()
        .map(|l| l.split('#').next().unwrap().trim())
        .filter_map(|l| l.strip_prefix(&format!("{directive} ")))
        .map(|v| v.trim_end_matches(';').trim().to_owned())
        .collect()
}

#[test]
fn nginx_balances_over_every_replica_on_the_webhook_port() {
    let (_, config) = compose_config();
    let port = listen_port(&config, "server");
    let upstreams: BTreeSet<String> = nginx("server")
        .iter()
        .filter(|s| *s != "{") // the `server {` block itself
        .map(|s| {
            let addr = s.split_whitespace().next().unwrap();
            let (host, p) = addr.split_once(':').unwrap();
            assert_eq!(p, port.to_string(), "{addr}");
            host.to_owned()
        })
        .collect();
    assert_eq!(upstreams, compose_replicas().keys().cloned().collect());
    assert!(!nginx("keepalive").is_empty(), "upstream keepalive");
    assert_eq!(nginx("proxy_http_version"), ["1.1"]);
    assert_eq!(nginx("proxy_set_header Connection"), ["\"\""]);
    let max_body = bytes(config["server"]["max_body_bytes"].as_str().unwrap());
    assert!(
        bytes(&nginx("client_max_body_size")[0]) >= max_body,
        "nginx must not refuse what hookgate accepts"
    );

    // nginx's published port reaches its `listen`.
    let service = &compose(REDIS_COMPOSE)["services"]["nginx"];
    let published = service["ports"][0].as_str().unwrap();
    assert_eq!(published.rsplit(':').next().unwrap(), nginx("listen")[0]);
    let mounts = service["volumes"][0].as_str().unwrap();
    assert!(
        mounts.starts_with("./nginx/hookgate.conf:/etc/nginx/conf.d/"),
        "{mounts}"
    );
}

#[test]
fn redis_and_the_sample_downstream_match_what_the_replicas_use() {
    let services = compose(REDIS_COMPOSE)["services"].clone();
    let redis = &services["redis"];
    let conf = redis_directives(&read(&deploy_dir().join("redis/redis.conf")));
    assert_durable(&conf, "deploy/redis/redis.conf");
    let command = strings(&redis["command"]);
    let (conf_dir, _) = command[1].rsplit_once('/').unwrap();
    let volumes = strings(&redis["volumes"]);
    assert!(
        volumes.contains(&format!("./redis:{conf_dir}:ro").as_str()),
        "{volumes:?}"
    );
    let data = format!("redis-data:{}", conf["dir"]);
    assert!(
        volumes.contains(&data.as_str()),
        "the AOF dir {data} is a named volume"
    );
    assert!(
        compose(REDIS_COMPOSE)["volumes"]
            .as_object()
            .unwrap()
            .contains_key("redis-data")
    );

    let (_, config) = compose_config();
    let hookgate_env = replica_env(compose_replicas().values().next().unwrap());
    assert_downstream_wired(REDIS_COMPOSE, &config, &hookgate_env, &env_example());
    docker_compose_config(REDIS_COMPOSE);
}

/// The `downstream` target of `config` is the sample downstream service of
/// `file`, on its port, verifying with the same secret value hookgate
/// signs with (`hookgate_env`), with compose's variables `vars`.
fn assert_downstream_wired(
    file: &str,
    config: &Value,
    hookgate_env: &BTreeMap<String, String>,
    vars: &BTreeMap<String, String>,
) {
    let target = &config["targets"]["downstream"];
    let url = reqwest::Url::parse(target["url"].as_str().unwrap()).unwrap();
    let downstream = &compose(file)["services"][url.host_str().unwrap()];
    assert!(downstream.is_object(), "{file}: {url}");
    let env = service_env(downstream, vars);
    assert_eq!(url.port().map(|p| p.to_string()).as_ref(), env.get("PORT"));
    let secret_var = target["secret"]
        .as_str()
        .unwrap()
        .trim_start_matches("${")
        .trim_end_matches('}');
    assert_eq!(
        env.get(secret_var),
        hookgate_env.get(secret_var),
        "{file}: the downstream verifies with what hookgate signs with"
    );
    assert!(strings(&downstream["command"]).contains(&"/app/server.py"));
    assert!(strings(&downstream["volumes"]).contains(&"./sample-downstream:/app:ro"));
    let script = read(&deploy_dir().join("sample-downstream/server.py"));
    assert!(script.contains(&format!("\"{secret_var}\"")));
}

/// `docker compose config -q` on `file` with `.env.example`, where the
/// compose plugin is installed.
fn docker_compose_config(file: &str) {
    if tool_available("docker", &["compose", "version"], "`docker compose config`") {
        let out = Command::new("docker")
            .args(["compose", "--env-file"])
            .arg(deploy_dir().join(".env.example"))
            .arg("-f")
            .arg(deploy_dir().join(file))
            .args(["config", "-q"])
            .output()
            .unwrap();
        assert_success(&out);
    }
}

#[test]
fn the_local_stack_runs_its_mounted_config_on_a_volume() {
    let file = compose(LOCAL_COMPOSE);
    let service = &file["services"]["hookgate"];
    let (text, config) = mounted_config(service);
    assert_eq!(config["queue"]["backend"], "sqlite");
    assert_success(&check(&text, &BTreeMap::new(), true));
    let required: Vec<String> = config_vars(&config)
        .into_iter()
        .filter(|(_, d)| !d)
        .map(|(n, _)| n)
        .collect();
    // It starts as it is (development defaults), and with deploy/.env.
    for vars in [BTreeMap::new(), env_example()] {
        let env = service_env(service, &vars);
        let provided: BTreeSet<String> = env.keys().cloned().collect();
        assert_eq!(missing(&required, &provided), Vec::<String>::new());
        assert_success(&check(&text, &env, false));
        assert_downstream_wired(LOCAL_COMPOSE, &config, &env, &vars);
    }
    // With .env, no development default is left.
    let env = service_env(service, &env_example());
    for (k, v) in &env {
        assert!(
            !v.starts_with("dev-"),
            "{k} keeps its default with deploy/.env"
        );
    }

    // Both listeners published, on the host's loopback only.
    let published: BTreeSet<u16> = strings(&service["ports"])
        .into_iter()
        .map(|p| {
            let (host, container) = p.rsplit_once(':').unwrap();
            assert!(host.starts_with("127.0.0.1:"), "{p}");
            container.parse().unwrap()
        })
        .collect();
    assert_eq!(
        published,
        BTreeSet::from([
            listen_port(&config, "server"),
            listen_port(&config, "admin")
        ])
    );
    // The queue file is on the named volume.
    let queue = config["queue"]["path"].as_str().unwrap();
    let (queue_dir, _) = queue.rsplit_once('/').unwrap();
    let volume = strings(&service["volumes"])
        .into_iter()
        .find_map(|v| v.strip_suffix(&format!(":{queue_dir}")))
        .unwrap_or_else(|| panic!("nothing mounted at {queue_dir}"));
    assert!(file["volumes"].as_object().unwrap().contains_key(volume));
    let shutdown =
        humantime::parse_duration(config["server"]["shutdown_timeout"].as_str().unwrap()).unwrap();
    let grace = humantime::parse_duration(service["stop_grace_period"].as_str().unwrap()).unwrap();
    assert!(grace > shutdown, "{grace:?} <= {shutdown:?}");
    for name in ["hookgate", "downstream"] {
        let s = &file["services"][name];
        assert_eq!(s["read_only"], true, "{name}");
        assert_eq!(strings(&s["cap_drop"]), ["ALL"], "{name}");
    }
    docker_compose_config(LOCAL_COMPOSE);
}
