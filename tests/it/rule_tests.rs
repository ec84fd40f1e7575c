//! `hookgate test`: rule tests through the real binary.

use std::path::Path;
use std::process::{Command, Output};

use crate::common::binary;

fn hookgate_test(config: &Path, tests: &Path) -> Output {
    Command::new(binary())
        .args(["test", "-c"])
        .arg(config)
        .arg(tests)
        .output()
        .unwrap()
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The shipped example passes its shipped tests (CI runs them too).
#[test]
fn the_example_rules_pass_their_tests() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = hookgate_test(
        &root.join("rules.example.yaml"),
        &root.join("rules.example.tests.yaml"),
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.ends_with("4 passed, 0 failed\n"), "{stdout}");
    assert_eq!(stdout.lines().filter(|l| l.starts_with("ok ")).count(), 4);
}

const RULES: &str = r#"version: 1
sources: [{ name: outrival, path: /in, verify: { secrets: ["0123456789abcdef0123"] } }]
targets:
  crm: { kind: http, url: "http://127.0.0.1:9/hook", body: template, template: '{"who": {{ companionId | tojson }}}' }
  ops: { kind: slack, webhook_url: "https://hooks.slack.com/services/X", text: "{{ companionId }} is {{ data.status }}" }
  off: { kind: log, enabled: false }
routes:
  - { name: ended, match: { status: ended }, targets: [crm, ops, off] }
  - { name: errors, match: { data.endedReason: error }, targets: [crm] }
"#;

/// Passing and failing cases, an event read from a file next to the tests
/// file, what differed, the summary and the exit code.
#[test]
fn each_case_says_ok_or_what_differed_and_any_failure_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yaml"), RULES).unwrap();
    std::fs::create_dir(dir.path().join("events")).unwrap();
    std::fs::write(
        dir.path().join("events/ended.json"),
        r#"{"event":"status-changed","type":"VOICE","companionId":"c-9","data":{"status":"ended","startedAt":"t","messages":[]}}"#,
    )
    .unwrap();
    let tests = dir.path().join("tests.yaml");
    std::fs::write(
        &tests,
        r#"tests:
  - name: from a file
    event: events/ended.json
    expect:
      routes: [ended]
      targets: [ops, crm]
      render: { crm: { contains: '"who": "c-9"' }, ops: { contains: "c-9 is ended" } }
  - name: inline, with headers
    headers: { x-signature: "abc" }
    body: { event: status-changed, type: SMS, companionId: c-1, data: { status: ended, endedReason: error, startedAt: t, messages: [] } }
    expect: { routes: [errors, ended], targets: [crm], render: { ops: { contains: "c-2" } } }
  - name: nothing matches
    body: { event: function-call, type: TEXT, companionId: c-3, data: { startedAt: t, messages: [] } }
    expect: { routes: [], targets: [], render: { crm: { contains: x } } }
  - name: a log target renders nothing to check
    event: events/ended.json
    expect: { render: { off: { contains: c-9 } } }
"#,
    )
    .unwrap();
    let out = hookgate_test(&dir.path().join("rules.yaml"), &tests);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    let expected = "\
ok from a file
FAILED inline, with headers
    routes: expected [errors, ended], got [ended, errors]
    targets: expected [crm], got [crm, ops]
    render ops: expected it to contain \"c-2\", rendered \"c-1 is ended\"
FAILED nothing matches
    render crm: no route sends this event to it
FAILED a log target renders nothing to check
    render off: a log target renders no message (it writes the event as received)
1 passed, 3 failed
";
    assert_eq!(stdout, expected);
}

/// The tests file is checked like the config: unknown keys and a case with
/// no event are errors naming the file, line and column.
#[test]
fn a_bad_tests_file_names_the_place() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yaml"), RULES).unwrap();
    for (yaml, wanted) in [
        (
            "tests:\n  - name: x\n    body: {}\n    expect: { route: [a] }\n",
            ":4:15: unknown field `route`",
        ),
        (
            "tests:\n  - name: x\n    expect: { routes: [] }\n",
            ":2:5: tests[0]: give the event as `event: FILE` or `body: {...}`",
        ),
        (
            "tests:\n  - name: x\n    event: missing.json\n    expect: { routes: [] }\n",
            ":2:5: tests[0].event: cannot read",
        ),
        (
            "tests:\n  - name: x\n    body: {}\n    headers: { \"bad header\": v }\n    expect: { routes: [] }\n",
            ":2:5: tests[0].headers: `bad header` is not a valid header name",
        ),
        (
            "tests:\n  - name: x\n    body: {}\n    expect: {}\n",
            ":2:5: tests[0].expect: give `routes`, `targets` or `render`",
        ),
        ("tests: []\n", ": `tests` is empty"),
    ] {
        let tests = dir.path().join("tests.yaml");
        std::fs::write(&tests, yaml).unwrap();
        let out = hookgate_test(&dir.path().join("rules.yaml"), &tests);
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{yaml}: {stdout}");
        let place = format!("{}{wanted}", tests.display());
        assert!(
            stderr.contains(&place),
            "{yaml}: wanted {place:?} in {stderr}"
        );
    }
}

/// With several sources a case must name its own: the first one could have
/// another schema, and routing would silently differ.
#[test]
fn with_several_sources_a_case_names_its_source() {
    let dir = tempfile::tempdir().unwrap();
    let rules = RULES.replace(
        "sources: [{ name: outrival, path: /in, verify: { secrets: [\"0123456789abcdef0123\"] } }]",
        "sources:\n  - { name: outrival, path: /in, verify: { secrets: [\"0123456789abcdef0123\"] } }\n  - { name: other, path: /other, verify: { scheme: none }, schema: json }",
    );
    std::fs::write(dir.path().join("rules.yaml"), rules).unwrap();
    let tests = dir.path().join("tests.yaml");
    std::fs::write(
        &tests,
        "tests:\n  - name: unnamed\n    body: { status: x }\n    expect: { routes: [] }\n  - name: named\n    source: other\n    body: { data: { status: ended } }\n    expect: { routes: [ended] }\n",
    )
    .unwrap();
    let out = hookgate_test(&dir.path().join("rules.yaml"), &tests);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert_eq!(
        stdout,
        "FAILED unnamed\n    the config has several sources: name one with `source:` (outrival, other)\nok named\n1 passed, 1 failed\n"
    );
}
