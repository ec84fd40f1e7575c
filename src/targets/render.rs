//! What a target sends, rendered from an event: the HTTP body, the Slack
//! message, the email. Shared by the senders and by `hookgate route`, so a
//! dry run shows exactly what an attempt would send.

use bytes::Bytes;
use serde_json::Value;

use super::Attempt;
use crate::config::{BodyMode, EmailTarget, HttpTarget, SlackTarget};
use crate::templates::{DeliveryVars, TemplateSet};

/// The `hookgate` template variables for one attempt.
///
/// `received_at` is passed in (already formatted) so the caller owns the string.
pub fn delivery_vars<'a>(
    attempt: &Attempt<'a>,
    target: &'a str,
    received_at: &'a str,
) -> DeliveryVars<'a> {
    DeliveryVars {
        event_id: attempt.event_id,
        delivery_id: attempt.delivery_id,
        route: attempt.route,
        target,
        source: attempt.source,
        received_at,
        attempt: attempt.number,
    }
}

/// The body an http target sends: the original bytes, or its rendered
/// template (which must parse as JSON when the content type is JSON).
pub fn http_body(
    http: &HttpTarget,
    templates: &TemplateSet,
    body: &Bytes,
    vars: &DeliveryVars<'_>,
) -> Result<Bytes, String> {
    let BodyMode::Template(template) = http.body else {
        return Ok(body.clone());
    };
    let payload = parse_payload(body)?;
    let rendered = templates
        .render(template, &payload, vars)
        .map_err(|e| e.to_string())?;
    if is_json(&http.content_type)
        && let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(&rendered)
    {
        return Err(format!(
            "the rendered body is not valid JSON ({e}) but content_type is JSON"
        ));
    }
    Ok(Bytes::from(rendered))
}

/// The JSON a Slack incoming webhook receives: `text` (always: it is the
/// notification fallback when there are blocks), `blocks`, and the
/// `username` / `icon_emoji` overrides when set.
pub fn slack_message(
    slack: &SlackTarget,
    templates: &TemplateSet,
    payload: &Value,
    vars: &DeliveryVars<'_>,
) -> Result<Value, String> {
    let mut message = serde_json::Map::new();
    let text = templates
        .render(slack.text, payload, vars)
        .map_err(|e| e.to_string())?;
    message.insert("text".into(), Value::String(text));
    if let Some(username) = &slack.username {
        message.insert("username".into(), Value::String(username.clone()));
    }
    if let Some(icon) = &slack.icon_emoji {
        message.insert("icon_emoji".into(), Value::String(icon.clone()));
    }
    if let Some(blocks) = &slack.blocks {
        let blocks = templates
            .render_json(blocks, payload, vars)
            .map_err(|e| e.to_string())?;
        message.insert("blocks".into(), blocks);
    }
    Ok(Value::Object(message))
}

/// A rendered email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedEmail {
    /// One line: line breaks from the template become spaces.
    pub subject: String,
    pub body: String,
    pub html: Option<String>,
}

pub fn email(
    email: &EmailTarget,
    templates: &TemplateSet,
    payload: &Value,
    vars: &DeliveryVars<'_>,
) -> Result<RenderedEmail, String> {
    let render = |t| {
        templates
            .render(t, payload, vars)
            .map_err(|e| e.to_string())
    };
    let subject = render(email.subject)?
        .split(['\r', '\n'])
        .filter(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ");
    Ok(RenderedEmail {
        subject,
        body: render(email.body)?,
        html: email.html.map(render).transpose()?,
    })
}

/// The stored body as JSON, for templates.
pub fn parse_payload(body: &[u8]) -> Result<Value, String> {
    serde_json::from_slice(body).map_err(|e| format!("stored event is not JSON: {e}"))
}

fn is_json(content_type: &http::HeaderValue) -> bool {
    content_type
        .to_str()
        .map(|ct| {
            let essence = ct
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            essence == "application/json" || essence.ends_with("+json")
        })
        .unwrap_or(false)
}
