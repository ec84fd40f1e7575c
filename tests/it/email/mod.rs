//! The email target end to end: events through the in-process gateway to a
//! real SMTP server process (aiosmtpd), which parses what it received with
//! Python's own MIME reader. [`message`]: envelope, headers, multipart
//! structure, HTML escaping and the dry run; [`transport`]: STARTTLS and
//! implicit TLS with AUTH, the outcome classes and the pooled connection.
//! The helpers below are shared by both.

mod message;
mod transport;

use serde_json::Value;
use std::path::Path;

use crate::common::smtp::Mail;
use crate::common::{self, Gateway, post_signed};

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
