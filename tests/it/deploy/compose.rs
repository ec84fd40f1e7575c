//! Static checks of `deploy/docker-compose.redis.yml` against the hookgate
//! config it mounts, the nginx config in front, `.env.example` and the
//! sample downstream.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde_json::Value;

use super::manifests::{assert_durable, redis_directives};
use super::{
    assert_success, check, compose, compose_config, compose_interpolate, compose_replicas,
    config_flag, config_vars, deploy_dir, env_example, listen_port, missing, read, strings,
    tool_available,
};

/// A replica's environment after compose's interpolation from `.env.example`.
pub(super) fn replica_env(service: &Value) -> BTreeMap<String, String> {
    let vars = env_example();
    service["environment"]
        .as_object()
        .expect("environment as a map")
        .iter()
        .map(|(k, v)| (k.clone(), compose_interpolate(v.as_str().unwrap(), &vars)))
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

        // The config directory, read-only, is where `-c` points.
        let path = config_flag(&service["command"]);
        let (dir, _) = path.rsplit_once('/').unwrap();
        let volumes = strings(&service["volumes"]);
        assert_eq!(volumes, [format!("./compose-config:{dir}:ro")], "{name}");
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
            compose()["services"][url.host_str().unwrap()].is_object(),
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
                !read(&deploy_dir().join("docker-compose.redis.yml")).contains(v.as_str()),
                "{k}'s value is in the compose file"
            );
        }
    }
}

/// `size` (`10MiB`, `10m`, `1048576`) in bytes: hookgate's units and nginx's.
fn bytes(size: &str) -> u64 {
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
    let service = &compose()["services"]["nginx"];
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
    let services = compose()["services"].clone();
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
        compose()["volumes"]
            .as_object()
            .unwrap()
            .contains_key("redis-data")
    );

    // The downstream target of the config is the sample downstream service,
    // with the secret it verifies against.
    let (_, config) = compose_config();
    let target = &config["targets"]["downstream"];
    let url = reqwest::Url::parse(target["url"].as_str().unwrap()).unwrap();
    let downstream = &services[url.host_str().unwrap()];
    let env = replica_env(downstream);
    assert_eq!(url.port().map(|p| p.to_string()).as_ref(), env.get("PORT"));
    let secret_var = target["secret"]
        .as_str()
        .unwrap()
        .trim_start_matches("${")
        .trim_end_matches('}');
    assert!(
        env.contains_key(secret_var),
        "the downstream gets {secret_var}"
    );
    let script = read(&deploy_dir().join("sample-downstream/server.py"));
    assert!(script.contains(&format!("\"{secret_var}\"")));

    if tool_available("docker", &["compose", "version"], "`docker compose config`") {
        let out = Command::new("docker")
            .args(["compose", "--env-file"])
            .arg(deploy_dir().join(".env.example"))
            .arg("-f")
            .arg(deploy_dir().join("docker-compose.redis.yml"))
            .args(["config", "-q"])
            .output()
            .unwrap();
        assert_success(&out);
    }
}
