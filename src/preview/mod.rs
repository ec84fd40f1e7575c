//! `hookgate route`: what the gateway would do with one event, without
//! storing or sending anything.
//!
//! It runs the same code as the server — [`crate::event::decode`], the
//! [`RoutePlan`], and the renderers in [`crate::targets::render`] — and
//! explains the result: which routes matched, why each other route did not
//! (the first key that failed), which route stopped evaluation, and for each
//! delivery what would be sent. Secrets stay hidden: header values and the
//! Slack webhook URL are redacted, URLs lose their userinfo and query; the
//! signature shown is the one the target would send (a derived value). HTTP
//! and Slack requests come from [`crate::targets::request`], the builder the
//! senders use, so what is shown is what would be sent.

use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;

use crate::config::{Condition, Config, Source, TargetKind, redacted_url};
use crate::event::{DecodeError, FieldSet, decode};
use crate::rules::{RoutePlan, UNMATCHED_ROUTE, first_failing, route_linear};
use crate::targets::{Attempt, render, request};

mod text;

/// Why a preview could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    #[error("the config has no source named `{0}`")]
    UnknownSource(String),
    #[error("the config has no sources")]
    NoSource,
    #[error("the event is not valid: {0}")]
    InvalidEvent(String),
}

/// The whole dry run, serializable for `--format json`.
#[derive(Debug, Serialize)]
pub struct Preview {
    pub source: String,
    /// Departures from the source's schema (the server would accept and count them).
    pub schema_warnings: Vec<String>,
    pub routes: Vec<RouteOutcome>,
    pub stopped_by: Option<String>,
    /// True when no route matched and the `unmatched` targets apply.
    pub unmatched: bool,
    pub deliveries: Vec<DeliveryPreview>,
    /// Targets named by matching routes that get nothing, and why.
    pub skipped: Vec<Skipped>,
}

#[derive(Debug, Serialize)]
pub struct RouteOutcome {
    pub name: String,
    /// `matched`, `no_match` or `not_evaluated` (after a `stop`).
    pub result: &'static str,
    /// For `no_match`: the first key that failed (per `any` alternative).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failed_keys: Vec<String>,
    pub targets: Vec<String>,
    pub stop: bool,
}

/// A target a matching route names that gets no delivery, with what it
/// would send once enabled.
#[derive(Debug, Serialize)]
pub struct Skipped {
    pub target: String,
    pub kind: &'static str,
    pub route: String,
    pub reason: &'static str,
    #[serde(flatten)]
    pub send: Send,
}

#[derive(Debug, Serialize)]
pub struct DeliveryPreview {
    pub target: String,
    pub kind: &'static str,
    pub route: String,
    /// The key the delivery would be ordered by, when its target is ordered.
    pub ordering: Option<OrderingPreview>,
    #[serde(flatten)]
    pub send: Send,
}

/// Where a delivery to an ordered target would queue (DESIGN.md section 6).
#[derive(Debug, Serialize)]
pub struct OrderingPreview {
    /// The target's `ordering.key`, as written.
    pub key: String,
    /// The key's text as the queue stores it (`crate::rules::lane_key`):
    /// the value's JSON, or empty for the shared "no key" lane.
    pub value: String,
}

/// What one delivery would send.
#[derive(Debug, Serialize)]
#[serde(tag = "sends", rename_all = "snake_case")]
pub enum Send {
    Http {
        method: String,
        url: String,
        headers: Vec<(String, String)>,
        body: String,
    },
    Slack {
        message: Value,
    },
    Email {
        from: String,
        to: Vec<String>,
        subject: String,
        body: String,
        html: Option<String>,
    },
    Log,
    RenderError {
        error: String,
    },
}

/// Route `body` as if `source` (default: the first) had received it.
pub fn preview(
    config: &Config,
    body: &[u8],
    source: Option<&str>,
) -> Result<Preview, PreviewError> {
    let source: &Source = match source {
        Some(name) => config
            .sources
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| PreviewError::UnknownSource(name.to_owned()))?,
        None => config.sources.first().ok_or(PreviewError::NoSource)?,
    };
    // The whole event: templates may read any of it.
    let event = decode(body, source.schema, source.strict, &FieldSet::everything()).map_err(
        |e| match e {
            DecodeError::InvalidJson(m) | DecodeError::InvalidEvent(m) => {
                PreviewError::InvalidEvent(m)
            }
        },
    )?;
    let plan = RoutePlan::compile(config);
    let decision = plan.route(config, &event.value);
    debug_assert_eq!(decision, route_linear(config, &event.value));

    let evaluated_up_to = decision.stopped_by.unwrap_or(usize::MAX);
    let routes = config
        .routes
        .iter()
        .enumerate()
        .map(|(i, route)| {
            let targets = route
                .targets
                .iter()
                .map(|&t| config.target(t).name.clone())
                .collect();
            let (result, failed_keys) = if i > evaluated_up_to {
                ("not_evaluated", Vec::new())
            } else if decision.matched.contains(&i) {
                ("matched", Vec::new())
            } else {
                ("no_match", failed_keys(&route.condition, &event.value))
            };
            RouteOutcome {
                name: route.name.clone(),
                result,
                failed_keys,
                targets,
                stop: route.stop,
            }
        })
        .collect();

    let body = Bytes::copy_from_slice(body);
    let event_id = uuid::Uuid::now_v7().to_string();
    let received_at_ms = crate::clock::Clock::now_ms(&crate::clock::SystemClock);
    let send_to = |target: &crate::config::Target, route: &str| {
        let delivery_id = uuid::Uuid::now_v7().to_string();
        let attempt = Attempt {
            event_id: &event_id,
            delivery_id: &delivery_id,
            route,
            source: &source.name,
            received_at_ms,
            number: 1,
            body: &body,
        };
        sends(config, target, &attempt, &event.value)
    };
    let deliveries = decision
        .deliveries
        .iter()
        .map(|d| {
            let target = config.target(d.target);
            let route = d
                .route
                .map_or(UNMATCHED_ROUTE, |r| config.routes[r].name.as_str());
            DeliveryPreview {
                target: target.name.clone(),
                kind: target.kind_name(),
                route: route.to_owned(),
                ordering: target.ordering.as_ref().map(|o| OrderingPreview {
                    key: o.key.clone(),
                    value: crate::rules::lane_key(&event.value, &o.path),
                }),
                send: send_to(target, route),
            }
        })
        .collect();
    let mut skipped: Vec<Skipped> = Vec::new();
    for &r in &decision.matched {
        let route = &config.routes[r];
        for &t in &route.targets {
            let target = config.target(t);
            if !target.enabled && !skipped.iter().any(|s| s.target == target.name) {
                skipped.push(Skipped {
                    target: target.name.clone(),
                    kind: target.kind_name(),
                    route: route.name.clone(),
                    reason: "disabled",
                    send: send_to(target, &route.name),
                });
            }
        }
    }

    Ok(Preview {
        source: source.name.clone(),
        schema_warnings: event.schema_issues,
        routes,
        stopped_by: decision.stopped_by.map(|r| config.routes[r].name.clone()),
        unmatched: decision.matched.is_empty(),
        deliveries,
        skipped,
    })
}

/// The first failing key of a `match`, or of each `any` alternative.
fn failed_keys(condition: &Condition, event: &Value) -> Vec<String> {
    match condition {
        Condition::All(fields) => first_failing(fields, event)
            .map(|f| f.key.clone())
            .into_iter()
            .collect(),
        Condition::Any(maps) => maps
            .iter()
            .filter_map(|fields| first_failing(fields, event).map(|f| f.key.clone()))
            .collect(),
    }
}

fn sends(
    config: &Config,
    target: &crate::config::Target,
    attempt: &Attempt<'_>,
    payload: &Value,
) -> Send {
    let templates = &config.templates;
    let render_error = |error: String| Send::RenderError { error };
    match &target.kind {
        TargetKind::Http(http) => {
            let sent_at = crate::clock::unix_seconds(std::time::SystemTime::now());
            match request::http_request(target, http, templates, attempt, sent_at) {
                Ok(req) => Send::Http {
                    method: req.method.to_string(),
                    url: redacted_url(&req.url),
                    headers: shown_headers(&req.headers),
                    body: String::from_utf8_lossy(&req.body).into_owned(),
                },
                Err(e) => render_error(e),
            }
        }
        // The message as the sender would POST it, read back from its bytes.
        TargetKind::Slack(slack) => match request::slack_request(target, slack, templates, attempt)
            .and_then(|req| serde_json::from_slice(&req.body).map_err(|e| e.to_string()))
        {
            Ok(message) => Send::Slack { message },
            Err(e) => render_error(e),
        },
        TargetKind::Email(email) => {
            let vars = render::AttemptVars::new(attempt, &target.name);
            match render::email(email, templates, payload, &vars.vars()) {
                Ok(m) => Send::Email {
                    from: email.from.to_string(),
                    to: email.to.iter().map(ToString::to_string).collect(),
                    subject: m.subject,
                    body: m.body,
                    html: m.html,
                },
                Err(e) => render_error(e),
            }
        }
        TargetKind::Log(_) => Send::Log,
    }
}

/// Every header as it would be sent, but the values the config supplies
/// (`headers:`, marked sensitive by the builder): those are secrets.
fn shown_headers(headers: &http::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| {
            let shown = if value.is_sensitive() {
                "<redacted>".to_owned()
            } else {
                String::from_utf8_lossy(value.as_bytes()).into_owned()
            };
            (name.to_string(), shown)
        })
        .collect()
}
