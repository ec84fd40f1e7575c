//! `deploy/prometheus/`: the alert rules use only metrics, labels and label
//! values hookgate exports, cover what an operator must hear about (dead
//! letters, an open breaker, a growing backlog or aging deliveries, refused
//! reloads, 5xx answers to the provider), are each listed in
//! docs/operations.md, and pass `promtool check rules` and their own unit
//! tests (`promtool test rules`) where promtool is installed.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use super::{assert_success, deploy_dir, read, tool_available, yaml_docs};

fn rules_path() -> std::path::PathBuf {
    deploy_dir().join("prometheus/hookgate-alerts.yaml")
}

fn rules() -> Vec<Value> {
    let doc = yaml_docs(&rules_path()).remove(0);
    doc["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap().clone())
        .collect()
}

/// The `hookgate_*` names in a PromQL expression.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in expr.match_indices("hookgate_") {
        if i > 0 && expr[..i].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let name: String = expr[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        out.insert(name);
    }
    out
}

/// The metric names hookgate exports: the `pub const` names of src/metrics.rs.
fn exported() -> BTreeSet<String> {
    let source = read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src/metrics.rs"));
    let names: BTreeSet<String> = source
        .lines()
        .filter(|l| l.starts_with("pub const ") && l.contains(": &str = \"hookgate_"))
        .filter_map(|l| l.split('"').nth(1))
        .map(str::to_owned)
        .collect();
    assert!(names.len() >= 10, "{names:?}");
    names
}

/// The values a label matcher `label=~"a|b"` or `label="a"` names in `expr`.
fn matched_values(expr: &str, label: &str) -> Vec<String> {
    let mut out = Vec::new();
    for op in ["=~\"", "=\""] {
        for (i, _) in expr.match_indices(&format!("{label}{op}")) {
            let rest = &expr[i + label.len() + op.len()..];
            let value = &rest[..rest.find('"').unwrap()];
            out.extend(value.split('|').map(str::to_owned));
        }
    }
    out
}

#[test]
fn the_alerts_use_only_what_hookgate_exports() {
    let exported = exported();
    let sources = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all_source = String::new();
    collect_source(&sources, &mut all_source);
    for rule in rules() {
        let name = rule["alert"].as_str().expect("an alerting rule");
        assert!(name.starts_with("Hookgate"), "{name}");
        let expr = rule["expr"].as_str().unwrap();
        let severity = rule["labels"]["severity"].as_str().unwrap_or_default();
        assert!(
            ["info", "warning", "critical"].contains(&severity),
            "{name}: severity {severity}"
        );
        assert!(rule["annotations"]["summary"].is_string(), "{name}");
        let names = metric_names(expr);
        assert!(!names.is_empty(), "{name}");
        for metric in names {
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| metric.strip_suffix(s))
                .unwrap_or(&metric);
            assert!(
                exported.contains(&metric) || exported.contains(base),
                "{name}: {metric} is not a metric hookgate exports (src/metrics.rs)"
            );
        }
        // Every label value matched on is a word hookgate writes.
        for label in ["outcome", "state", "result"] {
            for value in matched_values(expr, label) {
                assert!(
                    all_source.contains(&format!("\"{value}\"")),
                    "{name}: {label}=\"{value}\" appears nowhere in src/"
                );
            }
        }
    }
}

fn collect_source(dir: &Path, out: &mut String) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_source(&path, out);
        } else if path.extension() == Some("rs".as_ref()) {
            out.push_str(&read(&path));
        }
    }
}

#[test]
fn the_alerts_cover_what_an_operator_must_hear_about_and_are_documented() {
    let rules = rules();
    let exprs: Vec<String> = rules
        .iter()
        .map(|r| r["expr"].as_str().unwrap().to_owned())
        .collect();
    let covered = |what: &str, test: &dyn Fn(&str) -> bool| {
        assert!(exprs.iter().any(|e| test(e)), "no alert on {what}");
    };
    covered("dead letters", &|e| {
        e.contains("hookgate_deliveries_total") && e.contains("exhausted")
    });
    covered("an open breaker", &|e| e.contains("hookgate_circuit_open"));
    covered("the backlog", &|e| {
        e.contains("hookgate_queue_depth") && e.contains("pending")
    });
    covered("the oldest waiting delivery", &|e| {
        e.contains("hookgate_queue_oldest_waiting_age_seconds")
    });
    covered("refused reloads", &|e| {
        e.contains("hookgate_config_reloads_total") && e.contains("\"error\"")
    });
    // Every outcome answered with a 5xx (src/ingress/error.rs).
    covered("5xx answers to the provider", &|e| {
        let values = matched_values(e, "outcome");
        ["queue_full", "queue_unavailable", "overloaded"]
            .iter()
            .all(|o| values.iter().any(|v| v == o))
    });

    let operations = read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/operations.md"));
    for rule in &rules {
        let name = rule["alert"].as_str().unwrap();
        assert!(
            operations.contains(&format!("| `{name}` |")),
            "docs/operations.md's alert table lacks {name}"
        );
    }
}

#[test]
fn promtool_checks_the_rules_and_runs_their_tests() {
    // The tests make every alert fire at least once.
    let tests = deploy_dir().join("prometheus/hookgate-alerts.test.yaml");
    let text = read(&tests);
    for rule in rules() {
        let name = rule["alert"].as_str().unwrap();
        assert!(
            text.contains(&format!(
                "alertname: {name}\n        exp_alerts:\n          - "
            )),
            "hookgate-alerts.test.yaml never makes {name} fire"
        );
    }
    if !tool_available(
        "promtool",
        &["--version"],
        "`promtool check rules` and `test rules`",
    ) {
        return;
    }
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(rules_path())
        .output()
        .unwrap();
    assert_success(&out);
    let out = Command::new("promtool")
        .args(["test", "rules"])
        .arg(&tests)
        .current_dir(deploy_dir().join("prometheus"))
        .output()
        .unwrap();
    assert_success(&out);
}
