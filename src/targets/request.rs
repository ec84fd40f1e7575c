//! The one place that decides what an attempt to an HTTP-borne target puts on
//! the wire: method, URL, headers (signature by scheme included) and body.
//!
//! The senders execute an [`OutboundRequest`] and `hookgate route` shows one,
//! both built here, so a dry run can never show something other than what is
//! sent (Svix builds the signed request once; Vector's request builder sits
//! between encoder and service). Building is pure: the send time is passed in,
//! and nothing here does I/O.
//!
//! Header values that come from the config (`headers:`) are secrets: they are
//! marked sensitive, so a preview can redact exactly those and show the rest.

use bytes::Bytes;
use http::header::{CONTENT_TYPE, USER_AGENT as USER_AGENT_HEADER};
use http::{HeaderMap, HeaderName, HeaderValue, Method};

use super::{Attempt, render};
use crate::config::{HttpTarget, SignatureScheme, SigningKey, SlackTarget, Target};
use crate::signing;
use crate::templates::TemplateSet;

/// `user-agent` on every outbound request, and `User-Agent` on every email.
pub const USER_AGENT: &str = concat!("hookgate/", env!("CARGO_PKG_VERSION"));

/// The `x-hookgate-*` headers of DESIGN.md section 5. The email target sends
/// them too, spelled as mail headers are (`X-Hookgate-Event-Id`).
pub(super) const EVENT_ID: HeaderName = HeaderName::from_static("x-hookgate-event-id");
pub(super) const DELIVERY_ID: HeaderName = HeaderName::from_static("x-hookgate-delivery-id");
pub(super) const ATTEMPT: HeaderName = HeaderName::from_static("x-hookgate-attempt");
pub(super) const ROUTE: HeaderName = HeaderName::from_static("x-hookgate-route");

/// One request, ready to send.
#[derive(Debug, Clone)]
pub struct OutboundRequest {
    pub method: Method,
    /// May hold credentials (userinfo, query, a Slack webhook path): never log it.
    pub url: reqwest::Url,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// The request an `http` target sends for this attempt, signed at
/// `sent_at_unix` (seconds; standard-webhooks signs the time it sends).
///
/// `Err` is a render error: the body template failed, or produced invalid
/// JSON under a JSON content type.
pub fn http_request(
    target: &Target,
    http: &HttpTarget,
    templates: &TemplateSet,
    attempt: &Attempt<'_>,
    sent_at_unix: i64,
) -> Result<OutboundRequest, String> {
    let vars = render::AttemptVars::new(attempt, &target.name);
    let body = render::http_body(http, templates, attempt.body, &vars.vars())?;
    let mut headers = HeaderMap::with_capacity(http.headers.len() + 8);
    // Custom headers first: hookgate's own headers below replace any of the
    // same name (config validation refuses those names anyway).
    for (name, value) in &http.headers {
        headers.append(name.clone(), value.clone());
    }
    headers.insert(CONTENT_TYPE, http.content_type.clone());
    headers.insert(USER_AGENT_HEADER, HeaderValue::from_static(USER_AGENT));
    insert_ids(&mut headers, attempt);
    if let Some(secret) = &http.secret {
        sign(&mut headers, http, secret, attempt, sent_at_unix, &body);
    }
    Ok(OutboundRequest {
        method: http.method.clone(),
        url: http.url.clone(),
        headers,
        body,
    })
}

/// The request a `slack` target sends: the rendered message as JSON, POSTed
/// to the incoming-webhook URL (the credential itself).
pub fn slack_request(
    target: &Target,
    slack: &SlackTarget,
    templates: &TemplateSet,
    attempt: &Attempt<'_>,
) -> Result<OutboundRequest, String> {
    let vars = render::AttemptVars::new(attempt, &target.name);
    let payload = render::parse_payload(attempt.body)?;
    let message = render::slack_message(slack, templates, &payload, &vars.vars())?;
    let body = serde_json::to_vec(&message).map_err(|e| e.to_string())?;
    let url = reqwest::Url::parse(slack.webhook_url.expose())
        // Validated at load; only an unresolved `${VAR}` (check
        // --allow-missing-env) gets here. The value is not shown.
        .map_err(|_| "the Slack webhook_url is not a valid URL".to_owned())?;
    let mut headers = HeaderMap::with_capacity(8);
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(USER_AGENT_HEADER, HeaderValue::from_static(USER_AGENT));
    // Slack ignores them; a proxy or a Slack-compatible receiver can dedupe.
    insert_ids(&mut headers, attempt);
    Ok(OutboundRequest {
        method: Method::POST,
        url,
        headers,
        body: Bytes::from(body),
    })
}

/// The `x-hookgate-*` headers of DESIGN.md section 5.
fn insert_ids(headers: &mut HeaderMap, attempt: &Attempt<'_>) {
    let value = |s: &str| HeaderValue::from_str(s).ok();
    if let Some(v) = value(attempt.event_id) {
        headers.insert(EVENT_ID, v);
    }
    if let Some(v) = value(attempt.delivery_id) {
        headers.insert(DELIVERY_ID, v);
    }
    headers.insert(ATTEMPT, HeaderValue::from(attempt.number));
    // Route names are validated to header-safe characters at load.
    if let Some(v) = value(attempt.route) {
        headers.insert(ROUTE, v);
    }
}

/// Sign the exact body sent, by the target's scheme.
fn sign(
    headers: &mut HeaderMap,
    http: &HttpTarget,
    key: &SigningKey,
    attempt: &Attempt<'_>,
    sent_at_unix: i64,
    body: &[u8],
) {
    match http.signature.scheme {
        SignatureScheme::Outrival => {
            let sig = signing::sign_hex(key.expose(), body);
            if let Ok(v) = HeaderValue::from_str(&sig) {
                headers.insert(http.signature.header.clone(), v);
            }
        }
        // Signed at send time, not acceptance: a retry hours later must pass
        // the receiver's 5-minute tolerance.
        SignatureScheme::StandardWebhooks => {
            let signed = signing::standard_webhooks::headers(
                key.expose(),
                attempt.delivery_id,
                sent_at_unix,
                body,
            );
            for (name, value) in signed {
                if let Ok(v) = HeaderValue::from_str(&value) {
                    headers.insert(HeaderName::from_static(name), v);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{LoadOptions, TargetKind};

    fn config(targets: &str) -> crate::config::Config {
        let yaml = format!(
            "version: 1\nsources: [{{ name: s, path: /s, verify: {{ scheme: none }} }}]\n\
             targets:\n{targets}\n"
        );
        let options = LoadOptions {
            allow_missing_env: false,
            lookup: &|_| None,
        };
        crate::config::load_bytes("t.yaml".as_ref(), yaml.as_bytes(), &options)
            .map(|l| l.config)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn attempt(body: &Bytes) -> Attempt<'_> {
        Attempt {
            event_id: "019ad000-0000-7000-8000-000000000001",
            delivery_id: "019ad000-0000-7000-8000-000000000002",
            route: "ended-calls",
            source: "s",
            received_at_ms: 1_764_590_400_000,
            number: 3,
            body,
        }
    }

    #[test]
    fn an_http_request_carries_the_ids_the_custom_headers_and_the_signature() {
        let config = config(
            "  crm: { kind: http, url: \"https://u:p@crm.example.com/h?k=1\", method: PUT, \
             secret: s3cret, headers: { authorization: Bearer t } }",
        );
        let target = &config.targets[0];
        let TargetKind::Http(http) = &target.kind else {
            panic!("http")
        };
        let body = Bytes::from_static(b"{\"event\":\"status-changed\"}");
        let req = http_request(target, http, &config.templates, &attempt(&body), 0).unwrap();
        assert_eq!(req.method, Method::PUT);
        assert_eq!(req.body, body, "the original bytes, unchanged");
        let h = |n: &str| req.headers.get(n).and_then(|v| v.to_str().ok());
        assert_eq!(h("x-hookgate-attempt"), Some("3"));
        assert_eq!(h("x-hookgate-route"), Some("ended-calls"));
        assert_eq!(
            h("x-hookgate-delivery-id"),
            Some(attempt(&body).delivery_id)
        );
        assert_eq!(h("content-type"), Some("application/json"));
        assert_eq!(h("user-agent"), Some(USER_AGENT));
        assert_eq!(
            h("x-signature"),
            Some(signing::sign_hex(b"s3cret", &body).as_str())
        );
        let auth = req.headers.get("authorization").unwrap();
        assert!(auth.is_sensitive(), "config header values are secrets");
        assert!(!req.headers.get("x-signature").unwrap().is_sensitive());
    }

    #[test]
    fn a_slack_request_posts_the_rendered_message_as_json() {
        let config = config(
            "  ops: { kind: slack, webhook_url: \"https://hooks.slack.test/services/T/B/X\", \
             text: \"{{ companionId }} <{{ data.status }}>\", username: hookgate, icon_emoji: \":telephone:\" }",
        );
        let target = &config.targets[0];
        let TargetKind::Slack(slack) = &target.kind else {
            panic!("slack")
        };
        let body = Bytes::from_static(b"{\"companionId\":\"c1\",\"data\":{\"status\":\"ended\"}}");
        let req = slack_request(target, slack, &config.templates, &attempt(&body)).unwrap();
        assert_eq!(req.method, Method::POST);
        assert_eq!(req.url.as_str(), "https://hooks.slack.test/services/T/B/X");
        let message: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(
            message,
            serde_json::json!({"text": "c1 <ended>", "username": "hookgate", "icon_emoji": ":telephone:"})
        );
    }
}
