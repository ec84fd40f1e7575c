//! `docs/admin-api.yaml` (OpenAPI 3.1) against a running gateway: every
//! documented operation is called, and every answer's status is documented
//! for it and its body matches the documented schema.

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use crate::common::sink::{Answer, Sink};
use crate::common::{self, Gateway, RefusedPort, event, eventually, post_signed};

const TOKEN: &str = "admin-api-token";

/// The OpenAPI document, and the operations the test has called.
struct Contract {
    doc: Value,
    called: BTreeSet<(String, String)>,
}

impl Contract {
    fn load() -> Contract {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/admin-api.yaml");
        let text = std::fs::read_to_string(path).unwrap();
        // YAML 1.2 booleans, as hookgate reads its own files (`n` is a string).
        let options = serde_saphyr::options! { strict_booleans: true };
        let doc: Value = serde_saphyr::from_str_with_options(&text, options).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        Contract {
            doc,
            called: BTreeSet::new(),
        }
    }

    /// Every (path, method) the document describes.
    fn operations(&self) -> BTreeSet<(String, String)> {
        let mut ops = BTreeSet::new();
        for (path, item) in self.doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                ops.insert((path.clone(), method.clone()));
            }
        }
        ops
    }

    /// Check one answer of `method path` (the documented path template).
    fn check(&mut self, method: &str, path: &str, status: u16, content_type: &str, body: &str) {
        self.called.insert((path.to_owned(), method.to_owned()));
        let op = &self.doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path} is not documented");
        let mut response = op["responses"][status.to_string()].clone();
        assert!(
            response.is_object(),
            "{method} {path} answered {status}, which is not documented: {body}"
        );
        if let Some(r) = response["$ref"].as_str() {
            let name = r.trim_start_matches("#/components/responses/");
            response = self.doc["components"]["responses"][name].clone();
        }
        let media = content_type.split(';').next().unwrap_or("").trim();
        let content = &response["content"][media];
        assert!(
            content.is_object(),
            "{method} {path} {status}: content type {media} is not documented"
        );
        if media != "application/json" {
            return;
        }
        let instance: Value = serde_json::from_str(body)
            .unwrap_or_else(|e| panic!("{method} {path} {status}: not JSON ({e}): {body}"));
        // The document is the root resource, so the schema's `$ref`s into
        // `#/components` resolve; the schema itself sits beside them.
        let mut schema = self.doc.clone();
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema".into();
        schema["x-answer"] = content["schema"].clone();
        schema["$ref"] = "#/x-answer".into();
        let validator = jsonschema::validator_for(&schema).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&instance)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{method} {path} {status} does not match the document:\n{}\n{body}",
            errors.join("\n")
        );
    }
}

/// Call the admin listener and check the answer against the document.
async fn call(
    contract: &mut Contract,
    gw: &Gateway,
    method: Method,
    template: &str,
    path: &str,
    body: Option<String>,
) -> (u16, Value) {
    let mut req = reqwest::Client::new().request(method.clone(), gw.admin_url(path));
    if template.starts_with("/admin") {
        req = req.bearer_auth(TOKEN);
    }
    if let Some(b) = body {
        req = req.body(b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let text = resp.text().await.unwrap();
    contract.check(
        &method.as_str().to_lowercase(),
        template,
        status,
        &content_type,
        &text,
    );
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Wait until a delivery is in `state` (asking with the token).
async fn reaches(gw: &Gateway, id: &str, state: &str) {
    let url = gw.admin_url(&format!("/admin/deliveries/{id}"));
    eventually(Duration::from_secs(5), &format!("{id} {state}"), || async {
        let resp = reqwest::Client::new()
            .get(&url)
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        v["state"] == state
    })
    .await;
}

#[tokio::test]
async fn every_documented_operation_answers_as_documented() {
    let dir = tempfile::tempdir().unwrap();
    let ok = Sink::start().await;
    let refusing = Sink::start().await;
    refusing.always(Answer::status(400));
    let down = RefusedPort::reserve();
    let rest = format!(
        r#"targets:
  ok: {{ kind: http, url: "{}" }}
  refusing: {{ kind: http, url: "{}" }}
  down: {{ kind: http, url: "http://127.0.0.1:{}/", retry: {{ schedule: [1h] }}, ordering: {{ key: companionId }} }}
routes:
  - {{ name: queued, match: {{ status: queued }}, targets: [down], stop: true }}
  - {{ name: all, match: {{}}, targets: [ok, refusing, down] }}
"#,
        ok.url("/ok"),
        refusing.url("/no"),
        down.port
    );
    let yaml = common::config_yaml(dir.path(), &rest)
        .replace(
            "admin:\n  listen: 127.0.0.1:0\n",
            &format!("admin:\n  listen: 127.0.0.1:0\n  token: {TOKEN}\n"),
        )
        .replace("server:\n", "server:\n  max_body_bytes: 64KiB\n");
    let gw = Gateway::start(dir.path(), &yaml).await;
    let r = post_signed(
        &gw.url("/webhooks/outrival"),
        &event("status-changed", "VOICE", "ended", "c-1"),
    )
    .await;
    assert_eq!(r.status(), 202);
    let accepted: Value = r.json().await.unwrap();
    let id_of = |target: &str| {
        accepted["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["target"] == target)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (delivered, dead, retrying) = (id_of("ok"), id_of("refusing"), id_of("down"));
    reaches(&gw, &delivered, "delivered").await;
    reaches(&gw, &dead, "dead").await;
    reaches(&gw, &retrying, "retrying").await;
    // A later event of the same chat waits behind the retrying one (`down`
    // is ordered): the overview lists a blocked key, its detail the head.
    let r = post_signed(
        &gw.url("/webhooks/outrival"),
        &event("status-changed", "VOICE", "queued", "c-1"),
    )
    .await;
    assert_eq!(r.status(), 202);
    let second: Value = r.json().await.unwrap();
    let held = second["deliveries"][0]["id"].as_str().unwrap().to_owned();

    let mut c = Contract::load();
    let c = &mut c;
    let (get, post, delete) = (Method::GET, Method::POST, Method::DELETE);
    let list = "/admin/deliveries";
    let (_, page) = call(c, &gw, get.clone(), list, "/admin/deliveries?limit=1", None).await;
    let cursor = page["next"].as_str().unwrap().to_owned();
    let unknown = uuid::Uuid::now_v7();
    let one = "/admin/deliveries/{id}";
    let replay = "/admin/deliveries/{id}/replay";
    let (bulk, purge, route) = (
        "/admin/dead-letters/replay",
        "/admin/dead-letters",
        "/admin/route",
    );
    let ev = event("status-changed", "VOICE", "ended", "c-2");
    let huge = format!("{{\"pad\":\"{}\"}}", "x".repeat(70 * 1024));
    // (method, documented path, path called, body, status expected), in order.
    let steps: Vec<(&Method, &str, String, Option<String>, u16)> = vec![
        (&get, "/healthz", "/healthz".into(), None, 200),
        (&get, "/readyz", "/readyz".into(), None, 200),
        (&get, "/metrics", "/metrics".into(), None, 200),
        (&get, "/ui/", "/ui/".into(), None, 200),
        (&get, "/admin/config", "/admin/config".into(), None, 200),
        (&get, "/admin/targets", "/admin/targets".into(), None, 200),
        (&post, "/admin/reload", "/admin/reload".into(), None, 200),
        (&get, list, format!("{list}?cursor={cursor}"), None, 200),
        (&get, list, format!("{list}?cursor=garbled"), None, 400),
        (&get, list, format!("{list}?state=dead"), None, 200),
        (&get, one, format!("{list}/{delivered}"), None, 200),
        (&get, one, format!("{list}/{dead}"), None, 200),
        (&get, one, format!("{list}/{retrying}"), None, 200),
        (&get, one, format!("{list}/{held}"), None, 200),
        (&get, one, format!("{list}/{unknown}"), None, 404),
        (
            &post,
            replay,
            format!("{list}/{retrying}/replay"),
            None,
            409,
        ),
        (&post, replay, format!("{list}/{unknown}/replay"), None, 404),
        (
            &post,
            replay,
            format!("{list}/{delivered}/replay"),
            None,
            200,
        ),
        (&post, bulk, bulk.into(), None, 400),
        (&post, bulk, format!("{bulk}?target=refusing"), None, 200),
        (&delete, purge, purge.into(), None, 400),
        (&post, route, route.into(), Some(ev), 200),
        (&post, route, route.into(), Some("[1]".into()), 400),
        (&post, route, route.into(), Some(huge), 413),
    ];
    for (method, template, path, body, want) in steps {
        let (status, _) = call(c, &gw, method.clone(), template, &path, body).await;
        assert_eq!(status, want, "{method} {path}");
    }
    let (_, targets) = call(
        c,
        &gw,
        get.clone(),
        "/admin/targets",
        "/admin/targets",
        None,
    )
    .await;
    let down = targets["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "down")
        .unwrap();
    assert_eq!(down["ordering"]["blocked_keys"], 1, "{down}");
    assert_eq!(down["ordering"]["blocked"][0]["head"], retrying.as_str());
    let (_, detail) = call(c, &gw, get.clone(), one, &format!("{list}/{held}"), None).await;
    assert_eq!(detail["waiting_for"], retrying.as_str(), "{detail}");
    // The dead letter replayed above fails again; then it is purged.
    reaches(&gw, &dead, "dead").await;
    let (s, v) = call(c, &gw, delete, purge, &format!("{purge}?all=true"), None).await;
    assert_eq!((s, v["purged"].as_u64()), (200, Some(1)));

    // Refusals: no token, and a broken file to reload.
    let resp = reqwest::get(gw.admin_url("/admin/config")).await.unwrap();
    let status = resp.status().as_u16();
    let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
    c.check(
        "get",
        "/admin/config",
        status,
        &ct,
        &resp.text().await.unwrap(),
    );
    assert_eq!(status, 401);
    std::fs::write(dir.path().join("rules.yaml"), "version: 1\nsources: nope\n").unwrap();
    let (s, _) = call(c, &gw, post.clone(), "/admin/reload", "/admin/reload", None).await;
    assert_eq!(s, 422);

    let missing: Vec<_> = c.operations().difference(&c.called).cloned().collect();
    assert!(missing.is_empty(), "documented but not called: {missing:?}");
    eventually(Duration::from_secs(5), "the replayed delivery", || async {
        ok.count() >= 2
    })
    .await;
    gw.stop().await;
}
