//! Hot reload (DESIGN.md section 7) through `POST /admin/reload`: a new
//! route and target apply, an invalid file is refused with the old config
//! kept, a changed target's pending delivery follows its new URL and secret,
//! a removed target's pending deliveries are dead-lettered, and 20
//! reloads under a steady load fail no request. The other triggers are in
//! `reload_triggers`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::common::sink::{Answer, Sink};
use crate::common::{self, Gateway, SECRET, TARGET_SECRET, event, eventually, post_signed};

/// A config whose one route sends everything to target `name` at `url`.
pub(crate) fn routed_to(dir: &Path, name: &str, url: &str, extra: &str) -> String {
    common::config_yaml(
        dir,
        &format!(
            "targets:\n  {name}:\n    kind: http\n    url: {url}\n    secret: {TARGET_SECRET}\n    timeout: 1s\n{extra}\
             routes:\n  - name: all\n    match: {{}}\n    targets: [{name}]\n"
        ),
    )
}

/// Post one event and wait until `sink` (the target the running config
/// routes to) has received `expected` requests in all.
pub(crate) async fn delivered_to(gw: &Gateway, sink: &Sink, expected: usize) {
    assert_eq!(post_event(gw).await.status(), 202);
    eventually(
        Duration::from_secs(5),
        "the routed target got the event",
        || async { sink.count() == expected },
    )
    .await;
}

pub(crate) fn version_of(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Replace `path` atomically (write a temporary file, rename it over), as
/// editors do, so no reader ever sees half a file.
pub(crate) fn replace_file(path: &Path, text: &str) {
    let tmp = path.with_file_name(".rules.yaml.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

pub(crate) async fn post_event(gw: &Gateway) -> reqwest::Response {
    let companion = format!("c-{}", uuid::Uuid::now_v7());
    post_signed(
        &gw.url("/webhooks/outrival"),
        &event("status-changed", "VOICE", "ended", &companion),
    )
    .await
}

/// Post one event to a gateway whose one target fails, and wait until its
/// delivery is retrying; its id.
async fn retrying_delivery(gw: &Gateway) -> String {
    let resp = post_event(gw).await;
    assert_eq!(resp.status(), 202);
    let accepted: serde_json::Value = resp.json().await.unwrap();
    let delivery = accepted["deliveries"][0]["id"].as_str().unwrap().to_owned();
    gw.delivery_reaches(&delivery, "state", "retrying").await;
    delivery
}

pub(crate) async fn reload(gw: &Gateway) -> (u16, serde_json::Value) {
    gw.admin_send(reqwest::Method::POST, "/admin/reload").await
}

async fn reloads_counted(gw: &Gateway, result: &str) -> u64 {
    let series = format!("hookgate_config_reloads_total{{result=\"{result}\"}}");
    gw.metric(&series)
        .await
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

pub(crate) async fn running_version(gw: &Gateway) -> String {
    let (status, config) = gw.admin_get("/admin/config").await;
    assert_eq!(status, 200);
    config["version"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn admin_reload_applies_a_new_route_and_target() {
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (Sink::start().await, Sink::start().await);
    let first = routed_to(dir.path(), "old", &old.url("/"), "");
    let gw = Gateway::start(dir.path(), &first).await;
    delivered_to(&gw, &old, 1).await;

    let second = routed_to(dir.path(), "new", &new.url("/"), "");
    replace_file(&dir.path().join("rules.yaml"), &second);
    let (status, body) = reload(&gw).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["version"], version_of(&second));
    assert_eq!(running_version(&gw).await, version_of(&second));

    delivered_to(&gw, &new, 1).await;
    assert_eq!(old.count(), 1, "the old target is no longer routed to");
    gw.stop().await;
}

#[tokio::test]
async fn an_invalid_file_changes_nothing_and_a_fixed_one_applies() {
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (Sink::start().await, Sink::start().await);
    let first = routed_to(dir.path(), "old", &old.url("/"), "");
    let gw = Gateway::start(dir.path(), &first).await;
    let errors_before = reloads_counted(&gw, "error").await;

    // A route naming a target that does not exist.
    let broken = routed_to(dir.path(), "new", &new.url("/"), "")
        .replace("targets: [new]", "targets: [nosuch]");
    let path = dir.path().join("rules.yaml");
    replace_file(&path, &broken);
    let (status, body) = reload(&gw).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"], "invalid_config");
    let message = body["message"].as_str().unwrap();
    assert!(
        has_location(message, &path),
        "no file:line:column in {message}"
    );
    assert!(message.contains("nosuch"), "{message}");

    // The old config still serves, and says what went wrong.
    assert_eq!(running_version(&gw).await, version_of(&first));
    delivered_to(&gw, &old, 1).await;
    let (_, config) = gw.admin_get("/admin/config").await;
    let last = &config["last_reload_error"];
    assert!(
        has_location(last["message"].as_str().unwrap(), &path),
        "{last}"
    );
    assert!(last["at"].as_str().unwrap().ends_with('Z'), "{last}");
    assert!(reloads_counted(&gw, "error").await > errors_before);

    let successes_before = reloads_counted(&gw, "success").await;
    let fixed = routed_to(dir.path(), "new", &new.url("/"), "");
    replace_file(&path, &fixed);
    let (status, body) = reload(&gw).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["version"], version_of(&fixed));
    let (_, config) = gw.admin_get("/admin/config").await;
    assert_eq!(config["last_reload_error"], serde_json::Value::Null);
    assert!(reloads_counted(&gw, "success").await > successes_before);
    delivered_to(&gw, &new, 1).await;
    gw.stop().await;
}

/// `PATH:LINE:COLUMN` appears in `message`.
fn has_location(message: &str, path: &Path) -> bool {
    let prefix = format!("{}:", path.display());
    message.match_indices(&prefix).any(|(i, _)| {
        let rest = &message[i + prefix.len()..];
        let mut parts = rest.splitn(3, ':');
        let line = parts.next().unwrap_or("");
        let column = parts.next().unwrap_or("");
        !line.is_empty()
            && line.chars().all(|c| c.is_ascii_digit())
            && !column.is_empty()
            && column.chars().all(|c| c.is_ascii_digit())
    })
}

#[tokio::test]
async fn a_removed_targets_pending_deliveries_are_dead_lettered_on_reload() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    sink.always(Answer::status(503));
    let retry = "    retry: { schedule: [1m] }\n";
    let gw = Gateway::start(
        dir.path(),
        &routed_to(dir.path(), "crm", &sink.url("/"), retry),
    )
    .await;
    let delivery = retrying_delivery(&gw).await;

    replace_file(
        &dir.path().join("rules.yaml"),
        &routed_to(dir.path(), "crm2", &sink.url("/"), retry),
    );
    let (status, body) = reload(&gw).await;
    assert_eq!(status, 200, "{body}");
    gw.delivery_reaches(&delivery, "state", "dead").await;
    gw.delivery_reaches(&delivery, "dead_reason", "target_removed")
        .await;
    gw.stop().await;
}

/// What an attempt uses beyond the frozen body, ids and route is read at the
/// attempt (DESIGN section 5): a delivery retrying against the old URL makes
/// its next attempt at the new URL, re-signed with the new secret, under the
/// same delivery id and with the attempt number going on.
#[tokio::test]
async fn a_changed_targets_pending_delivery_goes_to_its_new_url_with_its_new_secret() {
    const NEW_SECRET: &str = "changed-target-secret-9876543210";
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (Sink::start().await, Sink::start().await);
    old.always(Answer::status(503));
    let retry = "    retry: { schedule: [1s], jitter: false }\n";
    let gw = Gateway::start(
        dir.path(),
        &routed_to(dir.path(), "crm", &old.url("/"), retry),
    )
    .await;
    let delivery = retrying_delivery(&gw).await;

    let changed =
        routed_to(dir.path(), "crm", &new.url("/"), retry).replace(TARGET_SECRET, NEW_SECRET);
    replace_file(&dir.path().join("rules.yaml"), &changed);
    let (status, body) = reload(&gw).await;
    assert_eq!(status, 200, "{body}");
    gw.delivery_reaches(&delivery, "state", "delivered").await;

    assert_eq!(old.count(), 1, "one attempt at the old URL");
    let got = new.received();
    assert_eq!(got.len(), 1, "the retry went to the new URL");
    assert_eq!(
        got[0].header("x-hookgate-delivery-id"),
        Some(delivery.as_str())
    );
    assert_eq!(got[0].header("x-hookgate-attempt"), Some("2"));
    assert!(
        got[0].signature_valid(NEW_SECRET, "x-signature"),
        "signed with the new secret"
    );
    assert_eq!(got[0].body, old.received()[0].body, "the frozen body");
    gw.stop().await;
}

#[tokio::test]
async fn twenty_reloads_under_load_fail_no_request() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    let one = routed_to(
        dir.path(),
        "crm",
        &sink.url("/"),
        "    headers: { x-config: one }\n",
    );
    let two = routed_to(
        dir.path(),
        "crm",
        &sink.url("/"),
        "    headers: { x-config: two }\n",
    );
    let gw = Arc::new(Gateway::start(dir.path(), &one).await);

    let stop = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    for client in 0..4 {
        let (gw, stop) = (gw.clone(), stop.clone());
        load.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut answers: BTreeMap<String, u64> = BTreeMap::new();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let body = event(
                    "status-changed",
                    "VOICE",
                    "ended",
                    &format!("c{client}-{n}"),
                );
                let answer = http
                    .post(gw.url("/webhooks/outrival"))
                    .header("content-type", "application/json")
                    .header("x-signature", common::sign(SECRET, body.as_bytes()))
                    .body(body)
                    .send()
                    .await;
                let key = match answer {
                    Ok(r) => r.status().as_u16().to_string(),
                    Err(e) => format!("error: {e}"),
                };
                *answers.entry(key).or_default() += 1;
            }
            answers
        }));
    }

    let path = dir.path().join("rules.yaml");
    for i in 0..20 {
        let text = if i % 2 == 0 { &two } else { &one };
        replace_file(&path, text);
        let (status, body) = reload(&gw).await;
        assert_eq!(status, 200, "reload {i}: {body}");
        assert_eq!(body["version"], version_of(text), "reload {i}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);

    let mut answers: BTreeMap<String, u64> = BTreeMap::new();
    for task in load {
        for (k, v) in task.await.unwrap() {
            *answers.entry(k).or_default() += v;
        }
    }
    let total: u64 = answers.values().sum();
    assert!(total >= 20, "too little load to mean anything: {answers:?}");
    assert_eq!(
        answers.get("202"),
        Some(&total),
        "every answer: {answers:?}"
    );
    // The last file (one) is what runs, and deliveries carry it.
    assert_eq!(running_version(&gw).await, version_of(&one));
    Arc::try_unwrap(gw).ok().unwrap().stop().await;
}
