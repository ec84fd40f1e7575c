//! What a target sends, rendered from an event: the HTTP body, the Slack
//! message, the email. Shared by the senders and by `hookgate route`, so a
//! dry run shows exactly what an attempt would send.

use bytes::Bytes;
use serde_json::Value;

use super::Attempt;
use crate::config::{BodyMode, EmailTarget, HttpTarget, Schema, SlackTarget};
use crate::event::{DecodeError, FieldSet};
use crate::templates::{DeliveryVars, TemplateSet};

/// The `hookgate` template variables of one attempt to one target.
///
/// Owns `received_at`, formatted once as RFC 3339 UTC; [`AttemptVars::vars`]
/// lends the [`DeliveryVars`] the templates take.
pub struct AttemptVars<'a> {
    attempt: Attempt<'a>,
    target: &'a str,
    received_at: String,
}

impl<'a> AttemptVars<'a> {
    pub fn new(attempt: &Attempt<'a>, target: &'a str) -> Self {
        AttemptVars {
            attempt: *attempt,
            target,
            received_at: crate::clock::format_rfc3339_ms(attempt.received_at_ms),
        }
    }

    pub fn vars(&self) -> DeliveryVars<'_> {
        DeliveryVars {
            event_id: self.attempt.event_id,
            delivery_id: self.attempt.delivery_id,
            route: self.attempt.route,
            target: self.target,
            source: self.attempt.source,
            received_at: &self.received_at,
            attempt: self.attempt.number,
        }
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
///
/// Parsed as ingress parsed it (`event::decode`, everything kept), not with
/// `serde_json::from_slice`: serde_json stops at 127 levels of nesting, and
/// ingress accepts 128, so such an event was stored and then dead-lettered
/// as `render_error` by every template target (found by fuzzing).
pub fn parse_payload(body: &[u8]) -> Result<Value, String> {
    match crate::event::decode(body, Schema::Json, false, &FieldSet::everything()) {
        Ok(event) => Ok(event.value),
        Err(DecodeError::InvalidJson(e) | DecodeError::InvalidEvent(e)) => {
            Err(format!("stored event is not usable: {e}"))
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempt_vars_hold_the_attempt_and_the_formatted_receive_time() {
        let body = Bytes::from_static(b"{}");
        let attempt = Attempt {
            event_id: "e1",
            delivery_id: "d1",
            route: "ended-calls",
            source: "outrival",
            received_at_ms: 1_764_590_400_123,
            number: 2,
            body: &body,
        };
        let owned = AttemptVars::new(&attempt, "crm");
        let vars = owned.vars();
        assert_eq!(
            (
                vars.event_id,
                vars.delivery_id,
                vars.route,
                vars.target,
                vars.source,
                vars.attempt
            ),
            ("e1", "d1", "ended-calls", "crm", "outrival", 2)
        );
        assert_eq!(vars.received_at, "2025-12-01T12:00:00.123Z");
    }
}
