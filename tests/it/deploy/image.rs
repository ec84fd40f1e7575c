//! The image: `deploy/Dockerfile` builds locked and runs unprivileged on the
//! ports of the config, and `.dockerignore` keeps out only what the build
//! does not read.

use std::collections::BTreeSet;
use std::process::Command;

use super::{Kustomize, assert_success, deploy_dir, listen_port, read, tool_available};

#[test]
fn the_dockerfile_builds_locked_and_runs_unprivileged() {
    let text = read(&deploy_dir().join("Dockerfile"));
    let instructions: Vec<(&str, &str)> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once(' '))
        .collect();
    let all = |name: &'static str| {
        instructions
            .iter()
            .filter(move |(k, _)| *k == name)
            .map(|(_, v)| *v)
    };
    assert!(all("FROM").count() >= 2, "multi-stage");
    assert!(text.contains("cargo build --release --locked"));
    assert!(text.contains("ca-certificates"));
    assert_eq!(all("HEALTHCHECK").count(), 0, "the orchestrator probes");
    assert_eq!(all("STOPSIGNAL").collect::<Vec<_>>(), ["SIGTERM"]);
    assert_eq!(all("VOLUME").count(), 1);
    let user = all("USER").next_back().expect("USER");
    assert!(
        !user.starts_with('0') && !user.starts_with("root"),
        "USER {user}"
    );
    // Numeric, so Kubernetes' runAsNonRoot can check it; the Deployment runs as it.
    let uid: u64 = user
        .split(':')
        .next()
        .unwrap()
        .parse()
        .expect("a numeric USER");
    for k in Kustomize::all() {
        assert_eq!(k.pod()["spec"]["securityContext"]["runAsUser"], uid);
    }
    let exposed: BTreeSet<u16> = all("EXPOSE")
        .flat_map(|v| v.split_whitespace())
        .map(|p| p.parse().unwrap())
        .collect();
    for k in Kustomize::all() {
        let (_, config) = k.configmap_config();
        assert_eq!(
            exposed,
            BTreeSet::from([
                listen_port(&config, "server"),
                listen_port(&config, "admin")
            ]),
            "{}",
            k.name()
        );
    }

    // .dockerignore keeps out what the build does not read, never what it does.
    let ignore = read(&deploy_dir().join("../.dockerignore"));
    let patterns: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    for needed in ["Cargo.toml", "Cargo.lock", "src", "benches"] {
        assert!(
            !patterns.iter().any(|p| p.trim_matches('/') == needed),
            "{needed} is ignored"
        );
    }
    for kept_out in ["target/", ".git/"] {
        assert!(patterns.contains(&kept_out), "{kept_out}");
    }
    if tool_available("hadolint", &["--version"], "hadolint on deploy/Dockerfile") {
        let out = Command::new("hadolint")
            .arg(deploy_dir().join("Dockerfile"))
            .output()
            .unwrap();
        assert_success(&out);
    }
}
