//! `deploy/systemd/hookgate.service`: it runs the real CLI on a config in its
//! `ConfigurationDirectory`, keeps the queue in its `StateDirectory` (the
//! working directory, where the example config's relative queue path lands),
//! reloads with SIGHUP after a check, runs as the user `hookgate.sysusers`
//! creates, waits longer than `shutdown_timeout` to stop, and is hardened;
//! `systemd-analyze verify` finds nothing to say about it (with the binary
//! and the manual page its `Documentation=` names installed in a temporary
//! place).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use super::{assert_success, deploy_dir, read, tool_available};
use crate::common::binary;

fn unit_path() -> PathBuf {
    deploy_dir().join("systemd/hookgate.service")
}

/// `[Section] Key=value` lines; a key given twice keeps every value, in order.
fn unit(text: &str) -> BTreeMap<(String, String), Vec<String>> {
    let mut out: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    let mut section = String::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
            continue;
        }
        let (key, value) = line.split_once('=').expect("Key=value");
        out.entry((section.clone(), key.to_owned()))
            .or_default()
            .push(value.to_owned());
    }
    out
}

fn one<'a>(unit: &'a BTreeMap<(String, String), Vec<String>>, section: &str, key: &str) -> &'a str {
    match unit.get(&(section.to_owned(), key.to_owned())) {
        Some(values) if values.len() == 1 => &values[0],
        other => panic!("[{section}] {key}: {other:?}"),
    }
}

fn example_config() -> Value {
    let text = read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("rules.example.yaml"));
    serde_saphyr::from_str(&text).unwrap()
}

#[test]
fn the_unit_runs_the_cli_on_its_directories() {
    let u = unit(&read(&unit_path()));
    let start: Vec<&str> = one(&u, "Service", "ExecStart").split_whitespace().collect();
    let program = start[0];
    assert_eq!(&start[1..3], ["serve", "-c"]);
    let config = start[3];
    let config_dir = format!("/etc/{}", one(&u, "Service", "ConfigurationDirectory"));
    assert_eq!(Path::new(config).parent(), Some(Path::new(&config_dir)));
    // The rest of the command line is one the real CLI takes: `check` with
    // the same arguments on the example config.
    let out = Command::new(binary())
        .arg("check")
        .arg("-c")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("rules.example.yaml"))
        .args(&start[4..])
        .env_remove("OUTRIVAL_WEBHOOK_SECRET")
        .output()
        .unwrap();
    assert_success(&out);

    // Reload: check the same file, then SIGHUP to the main process.
    let reload = &u[&("Service".to_owned(), "ExecReload".to_owned())];
    assert_eq!(reload[0], format!("{program} check -c {config}"));
    assert_eq!(reload.last().unwrap(), "/bin/kill -HUP $MAINPID");

    // The queue: the example's relative path lands in the state directory.
    let state = format!("/var/lib/{}", one(&u, "Service", "StateDirectory"));
    assert_eq!(one(&u, "Service", "WorkingDirectory"), state);
    let queue = example_config()["queue"]["path"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(queue.starts_with("./"), "{queue}");

    // A dedicated, unprivileged user, the one the sysusers file creates.
    let user = one(&u, "Service", "User");
    assert_ne!(user, "root");
    let sysusers = read(&deploy_dir().join("systemd/hookgate.sysusers"));
    let line = sysusers
        .lines()
        .find(|l| l.starts_with("u "))
        .expect("a `u` line");
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields[1], user);
    assert!(
        line.contains(&state),
        "{line}: its home is the state directory"
    );

    // Stopping waits longer than hookgate's own drain.
    let shutdown = humantime::parse_duration(
        example_config()["server"]["shutdown_timeout"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let stop = Duration::from_secs(one(&u, "Service", "TimeoutStopSec").parse().unwrap());
    assert!(stop > shutdown, "{stop:?} <= {shutdown:?}");
    assert_eq!(one(&u, "Service", "KillSignal"), "SIGTERM");
}

#[test]
fn the_unit_is_hardened() {
    let u = unit(&read(&unit_path()));
    for (key, value) in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectControlGroups", "yes"),
        ("RestrictSUIDSGID", "yes"),
        ("RestrictNamespaces", "yes"),
        ("LockPersonality", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
        ("CapabilityBoundingSet", ""),
        ("UMask", "0077"),
    ] {
        assert_eq!(one(&u, "Service", key), value, "{key}");
    }
    let families = one(&u, "Service", "RestrictAddressFamilies");
    for family in ["AF_INET", "AF_INET6", "AF_UNIX"] {
        assert!(families.contains(family), "{families}");
    }
}

#[test]
fn systemd_analyze_verify_has_nothing_to_say() {
    if !tool_available(
        "systemd-analyze",
        &["--version"],
        "`systemd-analyze verify`",
    ) {
        return;
    }
    let text = read(&unit_path());
    let u = unit(&text);
    let program = one(&u, "Service", "ExecStart")
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    // The unit as installed, but with this build's binary, and the manual
    // pages `hookgate man --out-dir` writes where `man` looks for them.
    let dir = tempfile::tempdir().unwrap();
    let unit_file = dir.path().join("hookgate.service");
    std::fs::write(&unit_file, text.replace(&program, binary())).unwrap();
    let man1 = dir.path().join("man/man1");
    std::fs::create_dir_all(&man1).unwrap();
    let out = Command::new(binary())
        .args(["man", "--out-dir"])
        .arg(&man1)
        .output()
        .unwrap();
    assert_success(&out);
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit_file)
        .env("MANPATH", dir.path().join("man"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // Unknown keys and bad values are only warnings: none is allowed.
    assert_eq!(stderr, "", "systemd-analyze verify warns");
}
