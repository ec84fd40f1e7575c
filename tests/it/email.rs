//! The email target end to end: events through the in-process gateway to a
//! real SMTP server process (aiosmtpd), which parses what it received with
//! Python's own MIME reader. Envelope, headers, multipart structure, HTML
//! escaping, STARTTLS and implicit TLS with AUTH, and the outcome classes.

use serde_json::Value;
use std::path::Path;
use std::process::Command;

use crate::common::smtp::{Mail, SmtpOptions, SmtpServer, TestCa};
use crate::common::{self, Gateway, binary, post_signed};

const PASSWORD: &str = "smtp-pass-never-shown-0123";

/// A config with one email target `mail` (its keys after `kind`) that every
/// event is routed to by the route `all`.
fn config(dir: &Path, target: &str) -> String {
    common::config_yaml(
        dir,
        &format!(
            "targets:\n  mail:\n    kind: email\n{target}routes:\n  - name: all\n    match: {{}}\n    targets: [mail]\n"
        ),
    )
}

/// A gateway running [`config`].
async fn gateway(dir: &Path, target: &str) -> Gateway {
    Gateway::start(dir, &config(dir, target)).await
}

/// `smtp:` on port `port` with `extra` keys, plus from/to/subject/body.
fn target(port: u16, smtp_extra: &str, rest: &str) -> String {
    format!(
        "    smtp: {{ host: 127.0.0.1, port: {port}{smtp_extra} }}
    from: 'hookgate <hookgate@example.com>'
    to: [support@example.com, 'Ops Team <ops@example.org>']
    subject: 'Call {{{{ companionId }}}} ended: {{{{ data.endedReason }}}}'
    body: 'Chat {{{{ companionId }}}}: {{{{ data.messages[0].content }}}}'
{rest}"
    )
}

/// An ended call whose first chat message is `content`.
fn ended_call(companion: &str, content: &str) -> String {
    serde_json::json!({
        "event": "status-changed",
        "type": "VOICE",
        "companionId": companion,
        "data": {
            "messages": [{"role": "user", "content": content}],
            "status": "ended",
            "endedReason": "customer-hung-up",
            "startedAt": "2026-11-28T10:00:00Z"
        }
    })
    .to_string()
}

/// Post `body` and return the id of its one delivery.
async fn accept(gw: &Gateway, body: &str) -> (String, String) {
    let resp = post_signed(&gw.url("/webhooks/outrival"), body).await;
    assert_eq!(resp.status(), 202);
    let v: Value = resp.json().await.unwrap();
    (
        v["id"].as_str().unwrap().to_owned(),
        v["deliveries"][0]["id"].as_str().unwrap().to_owned(),
    )
}

async fn detail(gw: &Gateway, delivery: &str) -> Value {
    gw.admin_get(&format!("/admin/deliveries/{delivery}"))
        .await
        .1
}

fn only(mut mails: Vec<Mail>) -> Mail {
    assert_eq!(mails.len(), 1, "{mails:#?}");
    mails.remove(0)
}

#[tokio::test]
async fn text_email_reaches_every_recipient_with_headers_and_body() {
    let dir = tempfile::tempdir().unwrap();
    let smtp = SmtpServer::start(dir.path(), SmtpOptions::default(), None);
    let gw = gateway(dir.path(), &target(smtp.port, ", tls: none", "")).await;
    let (event_id, delivery_id) = accept(&gw, &ended_call("c-42", "I need help")).await;

    let mail = only(smtp.wait_for(1).await);
    assert_eq!(mail.mail_from, "hookgate@example.com");
    assert_eq!(mail.rcpt_tos, ["support@example.com", "ops@example.org"]);
    assert!(!mail.tls && mail.auth_user.is_none());
    assert_eq!(mail.header("From"), Some("hookgate <hookgate@example.com>"));
    assert_eq!(
        mail.header("To"),
        Some("support@example.com, Ops Team <ops@example.org>")
    );
    assert_eq!(
        mail.header("Subject"),
        Some("Call c-42 ended: customer-hung-up")
    );
    assert_eq!(
        mail.header("Message-ID"),
        Some(format!("<{delivery_id}@example.com>").as_str())
    );
    assert_eq!(mail.header("X-Hookgate-Event-Id"), Some(event_id.as_str()));
    assert_eq!(
        mail.header("X-Hookgate-Delivery-Id"),
        Some(delivery_id.as_str())
    );
    assert_eq!(mail.header("X-Hookgate-Attempt"), Some("1"));
    assert_eq!(mail.header("X-Hookgate-Route"), Some("all"));
    assert!(mail.header("Date").is_some());
    assert_eq!(mail.content_type, "text/plain");
    assert_eq!(mail.parts.len(), 1);
    assert_eq!(mail.parts[0].content.trim_end(), "Chat c-42: I need help");

    gw.delivery_reaches(&delivery_id, "state", "delivered")
        .await;
    let d = detail(&gw, &delivery_id).await;
    assert_eq!(d["attempts"][0]["status"], 250, "{d}");
    gw.stop().await;
}

#[tokio::test]
async fn html_is_a_multipart_alternative_with_the_event_text_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let smtp = SmtpServer::start(dir.path(), SmtpOptions::default(), None);
    let html = "    html: '<p>Chat <i>{{ companionId }}</i>: {{ data.messages[0].content }}</p>'\n";
    let gw = gateway(dir.path(), &target(smtp.port, ", tls: none", html)).await;
    let (_, delivery_id) = accept(&gw, &ended_call("c-7", "<b>urgent</b> & \"now\"")).await;

    let mail = only(smtp.wait_for(1).await);
    assert_eq!(mail.content_type, "multipart/alternative");
    let types: Vec<&str> = mail.parts.iter().map(|p| p.content_type.as_str()).collect();
    assert_eq!(types, ["text/plain", "text/html"], "text first, then HTML");
    // The text part carries the chat text as written...
    assert_eq!(
        mail.parts[0].content.trim_end(),
        "Chat c-7: <b>urgent</b> & \"now\""
    );
    // ...the HTML part escapes it, while the template's own markup stays.
    let html = mail.parts[1].content.trim_end();
    assert!(html.starts_with("<p>Chat <i>c-7</i>: "), "{html}");
    assert!(html.contains("&lt;b&gt;urgent&lt;"), "{html}");
    assert!(html.contains("&amp; &quot;now&quot;"), "{html}");
    assert!(!html.contains("<b>"), "{html}");
    gw.delivery_reaches(&delivery_id, "state", "delivered")
        .await;
    gw.stop().await;
}

#[tokio::test]
async fn the_dry_run_shows_the_email_the_server_receives() {
    // `hookgate route` renders with the sender's own code; what it shows must
    // be what reaches the SMTP server, down to the escaping and the encoding
    // of non-ASCII text. The templates use no per-delivery ids, so both sides
    // render the same.
    let dir = tempfile::tempdir().unwrap();
    let smtp = SmtpServer::start(dir.path(), SmtpOptions::default(), None);
    // A multi-line text body and an HTML part, rendered from the event only.
    let keys = format!(
        "    smtp: {{ host: 127.0.0.1, port: {port}, tls: none }}
    from: 'hookgate <hookgate@example.com>'
    to: [support@example.com, 'Ops Team <ops@example.org>']
    subject: 'Call {{{{ companionId }}}} ended: {{{{ data.endedReason }}}}'
    body: \"Chat {{{{ companionId }}}}\\nSaid: {{{{ data.messages[0].content }}}}\\n-- hookgate\"
    html: '<p>Chat <i>{{{{ companionId }}}}</i></p><p>{{{{ data.messages[0].content }}}}</p>'
",
        port = smtp.port
    );
    let yaml = config(dir.path(), &keys);
    let body = ended_call("c-dry é", "Ça <b>urgent</b> & \"now\"");
    let event_file = dir.path().join("event.json");
    std::fs::write(&event_file, &body).unwrap();
    let rules = dir.path().join("dry.yaml");
    std::fs::write(&rules, &yaml).unwrap();
    let out = Command::new(binary())
        .args(["route", "--format", "json", "-c"])
        .arg(&rules)
        .arg(&event_file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let preview: Value = serde_json::from_slice(&out.stdout).unwrap();
    let deliveries = preview["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 1, "{preview}");
    let shown = &deliveries[0];
    assert_eq!(shown["sends"], "email", "{preview}");
    let text = |key: &str| {
        shown[key]
            .as_str()
            .unwrap_or_else(|| panic!("{key}: {shown}"))
    };

    let gw = Gateway::start(dir.path(), &yaml).await;
    let (_, delivery_id) = accept(&gw, &body).await;
    let mail = only(smtp.wait_for(1).await);
    gw.delivery_reaches(&delivery_id, "state", "delivered")
        .await;
    gw.stop().await;

    assert_eq!(mail.header("From"), Some(text("from")));
    let to: Vec<&str> = shown["to"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(mail.header("To"), Some(to.join(", ").as_str()));
    assert_eq!(mail.header("Subject"), Some(text("subject")));
    assert_eq!(text("subject"), "Call c-dry é ended: customer-hung-up");
    assert_eq!(text("body").lines().count(), 3, "{shown}");
    let types: Vec<&str> = mail.parts.iter().map(|p| p.content_type.as_str()).collect();
    assert_eq!(types, ["text/plain", "text/html"]);
    // On the wire a text part's lines end in CRLF (MIME canonical form);
    // the preview shows them as the template wrote them.
    let received = |i: usize| mail.parts[i].content.replace("\r\n", "\n");
    assert_eq!(received(0), text("body"));
    assert_eq!(received(1), text("html"));
    // The two parts really differ: the text is as written, the HTML escaped.
    assert!(
        text("body").contains("Ça <b>urgent</b> & \"now\""),
        "{shown}"
    );
    assert!(
        text("html").contains("&lt;b&gt;urgent&lt;") && text("html").contains("&amp; &quot;now"),
        "{shown}"
    );
}

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
    let port = common::free_port();
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
