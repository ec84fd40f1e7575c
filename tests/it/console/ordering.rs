//! The console and ordered targets: the overview lists a blocked key with
//! its head, and a delivery waiting behind that head says so and links to it.

use crate::common::browser::Browser;
use crate::common::sink::{Answer, Sink};
use crate::common::{self, Gateway, post_signed};

#[tokio::test]
async fn the_overview_shows_a_blocked_key_and_the_waiting_delivery_its_head() {
    let Some(b) = Browser::start(1280, 900).await else {
        return;
    };
    let dir = tempfile::tempdir().expect("a temp dir");
    let sink = Sink::start().await;
    // Chat c-1's first event fails and retries in an hour; its second waits.
    sink.script_for("\"companionId\":\"c-1\"", [Answer::status(503)]);
    let rest = format!(
        "targets:\n  crm:\n    kind: http\n    url: \"{}\"\n    ordering: {{ key: companionId }}\n    retry: {{ schedule: [1h] }}\nroutes:\n  - {{ name: all, match: {{}}, targets: [crm] }}\n",
        sink.url("/crm")
    );
    let gw = Gateway::start(dir.path(), &common::config_yaml(dir.path(), &rest)).await;
    let mut ids = Vec::new();
    for status in ["queued", "ended"] {
        let body = common::event("status-changed", "VOICE", status, "c-1");
        let resp = post_signed(&gw.url("/webhooks/outrival"), &body).await;
        assert_eq!(resp.status(), 202);
        let v: serde_json::Value = resp.json().await.expect("a 202 body");
        ids.push(v["deliveries"][0]["id"].as_str().expect("an id").to_owned());
    }
    let (head, waiting) = (&ids[0], &ids[1]);
    gw.delivery_reaches(head, "state", "retrying").await;

    b.goto(&gw.admin_url("/ui/#/")).await;
    b.wait_for("[data-testid='blocked'] [data-testid='blocked-head']")
        .await;
    assert_eq!(b.text("[data-testid='blocked-keys']").await, "1 blocked");
    let blocked = b.text("[data-testid='blocked']").await;
    assert!(
        blocked.contains(head.as_str())
            && blocked.contains("\"c-1\"")
            && blocked.contains("HTTP 503"),
        "{blocked}"
    );

    b.goto(&gw.admin_url(&format!("/ui/#/delivery/{waiting}")))
        .await;
    b.wait_for("[data-testid='waiting-for']").await;
    assert_eq!(b.text("[data-testid='waiting-for']").await, head.as_str());
    assert_eq!(b.text("[data-testid='order-key']").await, "\"c-1\"");
    b.click("[data-testid='waiting-for']").await;
    b.wait_until(
        "the head's own page",
        &format!("location.hash === '#/delivery/{head}'"),
    )
    .await;
    b.close().await;
    gw.stop().await;
}
