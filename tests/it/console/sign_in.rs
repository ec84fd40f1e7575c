//! The console's sign-in beyond the first: a token rotated by a reload under
//! an open page, a loopback gateway with no token, where the page opens
//! without asking, and a public one with none, whose 403 the page explains.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use super::{TOKEN, admin, config};
use crate::common::browser::Browser;
use crate::common::sink::Sink;
use crate::common::{self, Gateway, RefusedPort, eventually};

const ROTATED: &str = "console-test-token-2";

/// A reload that rotates the token: the page's next call is refused, the
/// stored token dropped, and the sign-in form is back; the new token works.
#[tokio::test]
async fn a_token_rotated_by_a_reload_brings_the_sign_in_back() {
    let Some(b) = Browser::start(1280, 800).await else {
        return;
    };
    let dir = tempfile::tempdir().expect("a temp dir");
    let (crm, refusing) = (Sink::start().await, Sink::start().await);
    let down = RefusedPort::reserve();
    let gw = Gateway::start(
        dir.path(),
        &config(dir.path(), &crm, &refusing, &down, TOKEN),
    )
    .await;
    b.goto(&gw.admin_url("/ui/#/config")).await;
    b.type_into("#token", TOKEN).await;
    b.click("#sign-in").await;
    b.wait_for("[data-testid='version']").await;
    assert_eq!(
        b.js("return location.hash").await,
        "#/config",
        "back where it was"
    );

    std::fs::write(
        dir.path().join("rules.yaml"),
        config(dir.path(), &crm, &refusing, &down, ROTATED),
    )
    .expect("rewrite the config");
    // The file watcher may get there first; either way the new token is in force after this.
    let _ = admin(&gw, TOKEN, Method::POST, "/admin/reload").await;
    eventually(Duration::from_secs(10), "the rotated token", || async {
        admin(&gw, ROTATED, Method::GET, "/admin/config").await.0 == 200
    })
    .await;
    b.click("#reload").await;
    b.wait_for("#signin-form").await;
    assert!(b.text("#signin-error").await.contains("refused"));
    assert_eq!(
        b.js("return sessionStorage.getItem('hookgate.admin_token')")
            .await,
        Value::Null,
        "the refused token is forgotten"
    );
    b.type_into("#token", ROTATED).await;
    b.click("#sign-in").await;
    b.wait_for("[data-testid='version']").await;
    b.close().await;
    gw.stop().await;
}

/// On loopback with no admin.token the API simply answers: no sign-in form.
#[tokio::test]
async fn without_a_token_on_loopback_the_console_opens_directly() {
    let Some(b) = Browser::start(1280, 800).await else {
        return;
    };
    let dir = tempfile::tempdir().expect("a temp dir");
    let rest = "targets:\n  audit: { kind: log }\nroutes:\n  - { name: all, match: {}, targets: [audit] }\n";
    let gw = Gateway::start(dir.path(), &common::config_yaml(dir.path(), rest)).await;
    b.goto(&gw.admin_url("/ui/")).await;
    b.wait_for("#targets tr[data-target='audit']").await;
    assert_eq!(
        b.js("return document.querySelectorAll('#signin-form').length")
            .await,
        0
    );
    assert_eq!(
        b.js("return getComputedStyle(document.getElementById('sign-out')).display")
            .await,
        "none"
    );
    b.close().await;
    gw.stop().await;
}

/// A listener on every interface with no admin.token: the API answers 403
/// `admin_token_required`, and the page says so instead of asking for a token.
#[tokio::test]
async fn a_public_admin_listener_without_a_token_shows_the_403() {
    let Some(mut b) = Browser::start(1280, 800).await else {
        return;
    };
    let dir = tempfile::tempdir().expect("a temp dir");
    let rest = "targets:\n  audit: { kind: log }\nroutes:\n  - { name: all, match: {}, targets: [audit] }\n";
    let gw = Gateway::start_with(
        dir.path(),
        &common::config_yaml(dir.path(), rest),
        Arc::new(hookgate::clock::SystemClock),
        "0.0.0.0:0",
    )
    .await;
    b.goto(&gw.admin_url("/ui/")).await;
    let problem = b.text("[data-testid='problem'][data-status='403']").await;
    assert!(problem.contains("admin_token_required"), "{problem}");
    assert!(problem.contains("set admin.token"), "{problem}");
    assert_eq!(
        b.js("return document.querySelectorAll('#signin-form').length")
            .await,
        0
    );
    b.screenshot("13-admin-closed").await;
    b.close().await;
    gw.stop().await;
}
