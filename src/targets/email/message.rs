//! The email one attempt sends, built from the rendered templates: From, every
//! `to`, the subject, a text/plain body or a multipart/alternative (text
//! first, then HTML), a stable Message-ID and the `X-Hookgate-*` headers.
//!
//! The templates are rendered by [`crate::targets::render::email`], which the
//! `hookgate route` dry run also calls, so the preview and the send agree.

use lettre::Message;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{MultiPart, SinglePart};

use crate::config::EmailTarget;
use crate::targets::Attempt;
use crate::targets::render::RenderedEmail;
use crate::targets::request::{ATTEMPT, DELIVERY_ID, EVENT_ID, ROUTE, USER_AGENT};

/// Build the message for one attempt. An error (which validated config should
/// not produce) describes the problem without any secret.
pub fn build(
    email: &EmailTarget,
    rendered: RenderedEmail,
    attempt: &Attempt<'_>,
) -> Result<Message, String> {
    let mut builder = Message::builder()
        .from(email.from.clone())
        .subject(rendered.subject)
        .message_id(Some(message_id(email, attempt.delivery_id)))
        .user_agent(USER_AGENT.to_owned());
    // The same ids as on HTTP requests, so a receiving system can dedupe on
    // the delivery id as an HTTP receiver does.
    for (name, value) in [
        (EVENT_ID, attempt.event_id.to_owned()),
        (DELIVERY_ID, attempt.delivery_id.to_owned()),
        (ATTEMPT, attempt.number.to_string()),
        (ROUTE, attempt.route.to_owned()),
    ] {
        builder = builder.raw_header(HeaderValue::new(mail_header_name(&name)?, value));
    }
    for to in &email.to {
        builder = builder.to(to.clone());
    }
    let built = match rendered.html {
        // Readers show the last alternative they understand: text first, HTML last.
        Some(html) => builder.multipart(MultiPart::alternative_plain_html(rendered.body, html)),
        None => builder.singlepart(SinglePart::plain(rendered.body)),
    };
    built.map_err(|e| format!("cannot build the email: {e}"))
}

/// An HTTP header name as mail writes header names: each dash-separated word
/// capitalised (`x-hookgate-event-id` becomes `X-Hookgate-Event-Id`). Mail
/// header names are case-insensitive; this is the conventional spelling.
fn mail_header_name(http: &::http::HeaderName) -> Result<HeaderName, String> {
    let spelled = http
        .as_str()
        .split('-')
        .map(|word| {
            let mut chars = word.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-");
    HeaderName::new_from_ascii(spelled).map_err(|_| format!("invalid mail header name `{http}`"))
}

/// `<DELIVERY_ID@FROM-DOMAIN>`: the same for every attempt of one delivery,
/// so a retry after a lost answer is the same message to mail systems that
/// dedupe on Message-ID.
fn message_id(email: &EmailTarget, delivery_id: &str) -> String {
    format!("<{delivery_id}@{}>", email.from.email.domain())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::templates::{Escape, TemplateSet};
    use bytes::Bytes;

    fn target(html: bool) -> EmailTarget {
        // Only the addresses matter here; the templates are never rendered.
        let mut set = TemplateSet::new();
        let t = set.add("x", Escape::None).unwrap();
        EmailTarget {
            smtp: crate::config::SmtpConfig {
                host: "m".into(),
                port: 25,
                tls: crate::config::SmtpTls::None,
                username: None,
                password: None,
                timeout: std::time::Duration::from_secs(1),
                ca_file: None,
                ca_certs: Vec::new(),
            },
            from: "hookgate <hookgate@example.com>".parse().unwrap(),
            to: vec![
                "a@example.com".parse().unwrap(),
                "Bee <b@example.org>".parse().unwrap(),
            ],
            subject: t,
            body: t,
            html: html.then_some(t),
        }
    }

    fn attempt(body: &Bytes) -> Attempt<'_> {
        Attempt {
            event_id: "0190-event",
            delivery_id: "0190-delivery",
            route: "ended-calls",
            source: "outrival",
            received_at_ms: 0,
            number: 3,
            body,
        }
    }

    fn formatted(html: Option<&str>) -> (Message, String) {
        let body = Bytes::from_static(b"{}");
        let rendered = RenderedEmail {
            subject: "Call c1 ended".into(),
            body: "text <b>part</b>".into(),
            html: html.map(str::to_owned),
        };
        let message = build(&target(html.is_some()), rendered, &attempt(&body)).unwrap();
        let text = String::from_utf8(message.formatted()).unwrap();
        (message, text)
    }

    #[test]
    fn text_only_is_one_plain_part_with_every_recipient() {
        let (message, text) = formatted(None);
        let to: Vec<String> = message
            .envelope()
            .to()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(to, ["a@example.com", "b@example.org"]);
        assert_eq!(
            message
                .envelope()
                .from()
                .map(ToString::to_string)
                .as_deref(),
            Some("hookgate@example.com")
        );
        assert!(
            text.contains("Content-Type: text/plain; charset=utf-8\r\n"),
            "{text}"
        );
        assert!(!text.contains("multipart"), "{text}");
        assert!(text.contains("Subject: Call c1 ended\r\n"), "{text}");
        assert!(text.contains("\r\n\r\ntext <b>part</b>"), "{text}");
    }

    #[test]
    fn html_makes_a_multipart_alternative_text_first() {
        let (_, text) = formatted(Some("<p>html</p>"));
        assert!(
            text.contains("Content-Type: multipart/alternative;"),
            "{text}"
        );
        let plain = text.find("Content-Type: text/plain").unwrap();
        let html = text.find("Content-Type: text/html").unwrap();
        assert!(plain < html, "text/plain must come first:\n{text}");
        assert!(text.contains("<p>html</p>"), "{text}");
    }

    #[test]
    fn headers_carry_the_ids_and_a_stable_message_id() {
        let (_, text) = formatted(None);
        for line in [
            "Message-ID: <0190-delivery@example.com>\r\n",
            "X-Hookgate-Event-Id: 0190-event\r\n",
            "X-Hookgate-Delivery-Id: 0190-delivery\r\n",
            "X-Hookgate-Attempt: 3\r\n",
            "X-Hookgate-Route: ended-calls\r\n",
            "User-Agent: hookgate/",
        ] {
            assert!(text.contains(line), "missing {line:?} in:\n{text}");
        }
    }
}
