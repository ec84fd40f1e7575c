//! What an email target sends: the envelope and headers, the text and HTML
//! parts with the event's text escaped in HTML, and the dry run showing the
//! same message the server receives.

use super::{accept, config, detail, ended_call, gateway, only, target};
use crate::common::smtp::{SmtpOptions, SmtpServer};
use crate::common::{Gateway, dry_run};

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
    let preview = dry_run(dir.path(), &yaml, &body);
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
