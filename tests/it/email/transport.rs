//! How an email target reaches its server: STARTTLS and implicit TLS with
//! AUTH, certificate trust, the outcome of each kind of SMTP failure
//! (retried, dead, down, silent) and the pooled connection.

use serde_json::Value;

use super::{PASSWORD, accept, detail, ended_call, gateway, only, target};
use crate::common;
use crate::common::smtp::{SmtpOptions, SmtpServer, TestCa};

#[tokio::test]
async fn starttls_and_auth_are_used_when_the_server_requires_them() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::generate(dir.path());
    let options = SmtpOptions {
        starttls: true,
        auth: Some(("hookgate".into(), PASSWORD.into())),
        ..SmtpOptions::default()
    };
    let smtp = SmtpServer::start(dir.path(), options, Some(&ca));
    let smtp_keys = format!(
        ", tls: starttls, username: hookgate, password: {PASSWORD}, ca_file: '{}'",
        ca.ca_path.display()
    );
    let gw = gateway(dir.path(), &target(smtp.port, &smtp_keys, "")).await;
    let (_, delivery_id) = accept(&gw, &ended_call("c-1", "hello")).await;

    let mail = only(smtp.wait_for(1).await);
    assert!(mail.tls, "the message went over STARTTLS");
    assert_eq!(mail.auth_user.as_deref(), Some("hookgate"));
    assert_eq!(mail.rcpt_tos.len(), 2);
    gw.delivery_reaches(&delivery_id, "state", "delivered")
        .await;

    // /admin/config shows the settings, the password only as redacted.
    let config = gw.admin_get("/admin/config").await.1;
    let shown = &config["targets"][0]["smtp"];
    assert_eq!(shown["tls"], "starttls", "{config}");
    assert_eq!(shown["username"], "hookgate");
    assert_eq!(shown["password"], "<redacted>");
    assert_eq!(shown["ca_file"], ca.ca_path.display().to_string());
    assert!(!config.to_string().contains(PASSWORD));
    gw.stop().await;
}

#[tokio::test]
async fn implicit_tls_with_auth() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::generate(dir.path());
    let options = SmtpOptions {
        implicit_tls: true,
        auth: Some(("hookgate".into(), PASSWORD.into())),
        ..SmtpOptions::default()
    };
    let smtp = SmtpServer::start(dir.path(), options, Some(&ca));
    let smtp_keys = format!(
        ", tls: tls, username: hookgate, password: {PASSWORD}, ca_file: '{}'",
        ca.ca_path.display()
    );
    let gw = gateway(dir.path(), &target(smtp.port, &smtp_keys, "")).await;
    let (_, delivery_id) = accept(&gw, &ended_call("c-2", "hello")).await;

    let mail = only(smtp.wait_for(1).await);
    assert!(mail.tls, "the session was TLS from the first byte");
    assert_eq!(mail.auth_user.as_deref(), Some("hookgate"));
    gw.delivery_reaches(&delivery_id, "state", "delivered")
        .await;
    gw.stop().await;
}

#[tokio::test]
async fn an_untrusted_certificate_is_a_retried_tls_failure() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::generate(dir.path());
    let options = SmtpOptions {
        starttls: true,
        ..SmtpOptions::default()
    };
    let smtp = SmtpServer::start(dir.path(), options, Some(&ca));
    // No ca_file: the test CA is not among the system's roots.
    let retry = "    retry: { schedule: [1h] }\n";
    let gw = gateway(dir.path(), &target(smtp.port, ", tls: starttls", retry)).await;
    let (_, delivery_id) = accept(&gw, &ended_call("c-3", "hello")).await;

    gw.delivery_reaches(&delivery_id, "state", "retrying").await;
    let d = detail(&gw, &delivery_id).await;
    let error = d["last_error"].as_str().unwrap();
    assert!(error.starts_with("TLS failed"), "{error}");
    assert!(error.contains("certificate"), "{error}");
    assert!(smtp.messages().is_empty(), "nothing is sent without TLS");
    gw.stop().await;
}

#[tokio::test]
async fn starttls_is_required_not_opportunistic() {
    let dir = tempfile::tempdir().unwrap();
    // A server that does not offer STARTTLS: the message must not go in clear.
    let smtp = SmtpServer::start(dir.path(), SmtpOptions::default(), None);
    let retry = "    retry: { schedule: [1h] }\n";
    let gw = gateway(dir.path(), &target(smtp.port, ", tls: starttls", retry)).await;
    let (_, delivery_id) = accept(&gw, &ended_call("c-9", "hello")).await;

    gw.delivery_reaches(&delivery_id, "state", "retrying").await;
    let d = detail(&gw, &delivery_id).await;
    let error = d["last_error"].as_str().unwrap();
    assert!(error.contains("STARTTLS is not supported"), "{error}");
    assert!(smtp.messages().is_empty(), "nothing is sent in clear text");
    gw.stop().await;
}

#[tokio::test]
async fn a_451_is_retried_until_the_server_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let options = SmtpOptions {
        fail_data: Some((2, 451)),
        ..SmtpOptions::default()
    };
    let smtp = SmtpServer::start(dir.path(), options, None);
    let retry = "    retry: { schedule: [100ms, 100ms, 100ms], jitter: false }\n";
    let gw = gateway(dir.path(), &target(smtp.port, ", tls: none", retry)).await;
    let (_, delivery_id) = accept(&gw, &ended_call("c-4", "hello")).await;

    gw.delivery_reaches(&delivery_id, "state", "delivered")
        .await;
    let d = detail(&gw, &delivery_id).await;
    let statuses: Vec<&Value> = d["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["status"])
        .collect();
    assert_eq!(statuses, [451, 451, 250], "{d}");
    let first = &d["attempts"][0];
    assert!(
        first["error"]
            .as_str()
            .unwrap()
            .starts_with("SMTP 451: 4.3.0"),
        "{first}"
    );
    assert!(
        first["response_excerpt"]
            .as_str()
            .unwrap()
            .contains("try again later"),
        "{first}"
    );
    // The accepted attempt is the third: its headers say so.
    let mail = only(smtp.wait_for(1).await);
    assert_eq!(mail.header("X-Hookgate-Attempt"), Some("3"));
    gw.stop().await;
}

#[tokio::test]
async fn a_550_is_dead_at_once_with_its_status() {
    let dir = tempfile::tempdir().unwrap();
    let options = SmtpOptions {
        reject_rcpt: Some(("ops@example.org".into(), 550)),
        ..SmtpOptions::default()
    };
    let smtp = SmtpServer::start(dir.path(), options, None);
    let retry = "    retry: { schedule: [100ms, 100ms], jitter: false }\n";
    let gw = gateway(dir.path(), &target(smtp.port, ", tls: none", retry)).await;
    let (_, delivery_id) = accept(&gw, &ended_call("c-5", "hello")).await;

    gw.delivery_reaches(&delivery_id, "state", "dead").await;
    let d = detail(&gw, &delivery_id).await;
    assert_eq!(d["dead_reason"], "permanent_status", "{d}");
    assert_eq!(d["attempt_count"], 1, "{d}");
    assert_eq!(d["attempts"][0]["status"], 550, "{d}");
    let error = d["last_error"].as_str().unwrap();
    assert!(error.starts_with("SMTP 550: 5.1.1"), "{error}");
    assert!(smtp.messages().is_empty());
    gw.stop().await;
}

#[tokio::test]
async fn a_server_that_is_down_is_retried_and_the_error_hides_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let refused = common::RefusedPort::reserve();
    let port = refused.port;
    let smtp_keys = format!(", tls: none, username: hookgate, password: {PASSWORD}");
    let retry = "    retry: { schedule: [1h] }\n";
    let gw = gateway(dir.path(), &target(port, &smtp_keys, retry)).await;
    let (_, delivery_id) = accept(&gw, &ended_call("c-6", "hello")).await;

    gw.delivery_reaches(&delivery_id, "state", "retrying").await;
    let d = detail(&gw, &delivery_id).await;
    let error = d["last_error"].as_str().unwrap();
    assert!(error.starts_with("connection failed"), "{error}");
    assert!(error.to_lowercase().contains("refused"), "{error}");
    assert_eq!(d["attempts"][0]["status"], Value::Null);
    for shown in [
        d.to_string(),
        gw.admin_get("/admin/config").await.1.to_string(),
        gw.metrics_text().await,
    ] {
        assert!(!shown.contains(PASSWORD), "password leaked: {shown}");
    }
    gw.stop().await;
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_and_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    // Accepts connections and says nothing, not even the greeting.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((conn, _)) = silent.accept().await {
            open.push(conn);
        }
    });
    let retry = "    retry: { schedule: [1h] }\n";
    let gw = gateway(
        dir.path(),
        &target(port, ", tls: none, timeout: 300ms", retry),
    )
    .await;
    let (_, delivery_id) = accept(&gw, &ended_call("c-8", "hello")).await;

    gw.delivery_reaches(&delivery_id, "state", "retrying").await;
    let d = detail(&gw, &delivery_id).await;
    let error = d["last_error"].as_str().unwrap();
    assert!(error.starts_with("timed out after"), "{error}");
    let took = d["attempts"][0]["duration_ms"].as_u64().unwrap();
    assert!((300..3000).contains(&took), "{took} ms");
    gw.stop().await;
    held.abort();
}

#[tokio::test]
async fn one_pooled_connection_carries_consecutive_messages() {
    let dir = tempfile::tempdir().unwrap();
    let smtp = SmtpServer::start(dir.path(), SmtpOptions::default(), None);
    let target = target(smtp.port, ", tls: none", "    concurrency: 1\n");
    let gw = gateway(dir.path(), &target).await;
    for i in 0..3 {
        let (_, id) = accept(&gw, &ended_call(&format!("c-{i}"), "hello")).await;
        gw.delivery_reaches(&id, "state", "delivered").await;
    }
    let mails = smtp.wait_for(3).await;
    let peers: Vec<&str> = mails.iter().map(|m| m.peer.as_str()).collect();
    assert!(
        peers.iter().all(|p| *p == peers[0]),
        "every message came over the same connection: {peers:?}"
    );
    gw.stop().await;
}
