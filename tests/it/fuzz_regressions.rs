//! Regression tests for what the fuzz targets in `fuzz/` found
//! (docs/security.md#fuzzing), on stable, in `cargo test`. Each is named after
//! the bug it pins; the minimised inputs are under tests/fuzz-regressions/.

use std::path::Path;

use bytes::Bytes;
use hookgate::config::{LoadOptions, Schema, TargetKind, load_bytes};
use hookgate::event::{FieldSet, MAX_DEPTH, decode};
use hookgate::targets::render::{http_body, parse_payload};
use hookgate::templates::DeliveryVars;

const VARS: DeliveryVars<'static> = DeliveryVars {
    event_id: "e1",
    delivery_id: "d1",
    route: "r",
    target: "t",
    source: "s",
    received_at: "2026-01-01T00:00:00.000Z",
    attempt: 1,
};

/// `{"event":"status-changed","data":[[…]]}`: objects and arrays nested
/// `depth` deep in all (the top-level object is depth 1).
fn nested(depth: usize) -> String {
    let inner = depth - 1;
    format!(
        r#"{{"event":"status-changed","data":{}{}}}"#,
        "[".repeat(inner),
        "]".repeat(inner)
    )
}

/// fuzz target `render_template`: ingress accepts JSON nested up to 128 deep,
/// but template targets parsed the stored body with serde_json's own limit
/// (127), so an event nested exactly 128 deep was acknowledged with 202 and
/// then dead-lettered `render_error` by every http template, Slack and email
/// target.
#[test]
fn an_event_nested_128_deep_is_rendered_by_template_targets() {
    let minimised = std::fs::read("tests/fuzz-regressions/render_template-depth-128.json")
        .expect("the minimised fuzz input");
    for body in [nested(MAX_DEPTH).into_bytes(), minimised] {
        let accepted = decode(&body, Schema::Outrival, false, &FieldSet::for_routes(&[]));
        assert!(accepted.is_ok(), "ingress accepts it: {accepted:?}");
        let payload = parse_payload(&body);
        assert!(payload.is_ok(), "a template target reads it: {payload:?}");
    }

    let yaml = r#"version: 1
sources: [{ name: s, path: /in, verify: { scheme: none } }]
targets:
  t:
    kind: http
    url: http://127.0.0.1:9/
    body: template
    template: '{"event": {{ event | tojson }}, "depth": {{ data | length }}}'
routes: [{ name: r, match: {}, targets: [t] }]
"#;
    let none = |_: &str| None;
    let options = LoadOptions {
        allow_missing_env: false,
        lookup: &none,
    };
    let config = load_bytes(Path::new("rules.yaml"), yaml.as_bytes(), &options)
        .unwrap()
        .config;
    let TargetKind::Http(http) = &config.target_by_name("t").unwrap().kind else {
        panic!("an http target");
    };
    let body = Bytes::from(nested(MAX_DEPTH));
    let sent = http_body(http, &config.templates, &body, &VARS).unwrap();
    assert_eq!(&sent[..], br#"{"event": "status-changed", "depth": 1}"#);

    // One level deeper is still refused, as at ingress.
    assert!(parse_payload(nested(MAX_DEPTH + 1).as_bytes()).is_err());
}

/// The same limit in the admin API: a stored event nested 128 deep is shown
/// as JSON in `GET /admin/deliveries/{id}`, not as a string of its text.
#[tokio::test]
async fn the_admin_detail_shows_an_event_nested_128_deep_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let rest = format!(
        "targets:\n  audit: {{ kind: log, path: {} }}\nroutes:\n  - {{ name: all, match: {{}}, targets: [audit] }}\n",
        dir.path().join("audit.log").display()
    );
    let gw =
        crate::common::Gateway::start(dir.path(), &crate::common::config_yaml(dir.path(), &rest))
            .await;
    let body = nested(MAX_DEPTH);
    let r = crate::common::post_signed(&gw.url("/webhooks/outrival"), &body).await;
    assert_eq!(r.status(), 202);
    let accepted: serde_json::Value = r.json().await.unwrap();
    let id = accepted["deliveries"][0]["id"].as_str().unwrap().to_owned();
    let text = reqwest::get(gw.admin_url(&format!("/admin/deliveries/{id}")))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // serde_json's own reader stops at 127 levels too: lift it, as hookgate does.
    let mut de = serde_json::Deserializer::from_str(&text);
    de.disable_recursion_limit();
    let detail: serde_json::Value = serde::Deserialize::deserialize(&mut de).unwrap();
    assert_eq!(detail["event"]["event"], "status-changed", "{text}");
    gw.stop().await;
}
