//! Message templates: the minijinja environment, its filters, and the render context.
//!
//! Templates are compiled once when a config is loaded ([`TemplateSet::add`]) and
//! rendered per delivery ([`TemplateSet::render`]). The context is the event's own
//! top-level fields plus `hookgate` ([`DeliveryVars`]). Absent fields are
//! chainable-undefined, so `data.x.y` renders empty instead of failing. Text
//! templates never auto-escape; templates added with [`Escape::Html`] (the email
//! `html` body) escape HTML unless `|safe` is used.
//!
//! One render is bounded twice, so neither a loop over an attacker-sized
//! array nor a template mistake can hang a worker or fill memory: at most
//! [`MAX_FUEL`] instructions (minijinja's fuel) and [`MAX_OUTPUT_BYTES`] of
//! output; past either, the render fails (a `render_error` dead letter).
//!
//! This module is a leaf: it knows nothing of config files, targets or queues.

use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior};
use serde::Serialize;

/// The most instructions one render may run. A loop over a thousand
/// messages with a dozen expressions each uses under 100 000.
pub const MAX_FUEL: u64 = 5_000_000;
/// The most bytes one render may produce (Slack allows 40 000 characters of
/// text; an email body of a megabyte is already unusual).
pub const MAX_OUTPUT_BYTES: usize = 1 << 20;

/// A compiled template inside one [`TemplateSet`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TemplateRef(u32);

/// How a template's output is escaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    /// Plain text: nothing is escaped (Slack text, subjects, JSON bodies).
    None,
    /// HTML: values are escaped unless marked `|safe`.
    Html,
}

/// A template could not be compiled, or uses a filter or test that does not exist.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct TemplateError {
    pub message: String,
}

/// Rendering one template for one delivery failed.
#[derive(Debug, thiserror::Error)]
#[error("template render failed: {0}")]
pub struct RenderError(String);

/// Every template of one config, in one minijinja environment.
pub struct TemplateSet {
    env: Environment<'static>,
    /// The name of each template, indexed by [`TemplateRef`].
    names: Vec<String>,
}

impl std::fmt::Debug for TemplateSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TemplateSet")
            .field("templates", &self.names.len())
            .finish()
    }
}

impl Default for TemplateSet {
    fn default() -> Self {
        Self::new()
    }
}

impl TemplateSet {
    pub fn new() -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Chainable);
        env.set_fuel(Some(MAX_FUEL));
        // Names carry the escaping choice: "N.html" escapes, "N.txt" does not.
        env.set_auto_escape_callback(|name| {
            if name.ends_with(".html") {
                AutoEscape::Html
            } else {
                AutoEscape::None
            }
        });
        env.add_filter("slack_escape", slack_escape);
        TemplateSet {
            env,
            names: Vec::new(),
        }
    }

    /// Compile `source`, then trial-render it against a sample event so that an
    /// unknown filter or test is reported now rather than at send time.
    pub fn add(&mut self, source: &str, escape: Escape) -> Result<TemplateRef, TemplateError> {
        let id = u32::try_from(self.names.len()).map_err(|_| TemplateError {
            message: "too many templates".into(),
        })?;
        let name = template_name(id, escape);
        self.env
            .add_template_owned(name.clone(), source.to_owned())
            .map_err(|e| TemplateError {
                message: describe(&e),
            })?;
        self.names.push(name.clone());
        let template = self.env.get_template(&name).map_err(|e| TemplateError {
            message: describe(&e),
        })?;
        if let Err(e) = template.render(sample_context())
            && matches!(e.kind(), ErrorKind::UnknownFilter | ErrorKind::UnknownTest)
        {
            return Err(TemplateError {
                message: describe(&e),
            });
        }
        Ok(TemplateRef(id))
    }

    /// Render one template with the event payload and delivery variables.
    pub fn render(
        &self,
        template: TemplateRef,
        payload: &serde_json::Value,
        vars: &DeliveryVars<'_>,
    ) -> Result<String, RenderError> {
        let name = self
            .names
            .get(template.0 as usize)
            .ok_or_else(|| RenderError("unknown template".into()))?;
        let tmpl = self
            .env
            .get_template(name)
            .map_err(|e| RenderError(describe(&e)))?;
        let mut out = Bounded(Vec::new());
        match tmpl.render_captured_to(RenderContext { payload, vars }, &mut out) {
            Ok(_) => String::from_utf8(out.0)
                .map_err(|_| RenderError("the output is not valid UTF-8".into())),
            Err(e) if e.kind() == ErrorKind::WriteFailure => Err(RenderError(format!(
                "the output is larger than {MAX_OUTPUT_BYTES} bytes"
            ))),
            Err(e) if e.kind() == ErrorKind::OutOfFuel => Err(RenderError(format!(
                "the template ran more than {MAX_FUEL} instructions (a loop too long?)"
            ))),
            Err(e) => Err(RenderError(describe(&e))),
        }
    }

    /// Render a structure whose strings are templates (Slack `blocks`) into JSON.
    pub fn render_json(
        &self,
        template: &JsonTemplate,
        payload: &serde_json::Value,
        vars: &DeliveryVars<'_>,
    ) -> Result<serde_json::Value, RenderError> {
        Ok(match template {
            JsonTemplate::Literal(v) => v.clone(),
            JsonTemplate::String(t) => serde_json::Value::String(self.render(*t, payload, vars)?),
            JsonTemplate::Array(items) => serde_json::Value::Array(
                items
                    .iter()
                    .map(|i| self.render_json(i, payload, vars))
                    .collect::<Result<_, _>>()?,
            ),
            JsonTemplate::Object(entries) => {
                let mut map = serde_json::Map::with_capacity(entries.len());
                for (k, v) in entries {
                    map.insert(k.clone(), self.render_json(v, payload, vars)?);
                }
                serde_json::Value::Object(map)
            }
        })
    }
}

/// Output that refuses to grow past [`MAX_OUTPUT_BYTES`].
struct Bounded(Vec<u8>);

impl std::io::Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.0.len() + buf.len() > MAX_OUTPUT_BYTES {
            return Err(std::io::ErrorKind::FileTooLarge.into());
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn template_name(id: u32, escape: Escape) -> String {
    match escape {
        Escape::None => format!("{id}.txt"),
        Escape::Html => format!("{id}.html"),
    }
}

/// A YAML structure whose string leaves are templates (Slack `blocks`).
#[derive(Debug, Clone)]
pub enum JsonTemplate {
    /// A non-string scalar, copied as it is.
    Literal(serde_json::Value),
    String(TemplateRef),
    Array(Vec<JsonTemplate>),
    Object(Vec<(String, JsonTemplate)>),
}

/// The `hookgate` object in a template's context.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryVars<'a> {
    pub event_id: &'a str,
    pub delivery_id: &'a str,
    pub route: &'a str,
    pub target: &'a str,
    pub source: &'a str,
    /// RFC 3339 UTC.
    pub received_at: &'a str,
    pub attempt: u32,
}

/// The payload's top-level fields, plus `hookgate`.
struct RenderContext<'a> {
    payload: &'a serde_json::Value,
    vars: &'a DeliveryVars<'a>,
}

impl Serialize for RenderContext<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let fields = self.payload.as_object();
        let mut map = serializer.serialize_map(Some(fields.map_or(0, |m| m.len()) + 1))?;
        if let Some(fields) = fields {
            for (k, v) in fields {
                if k != "hookgate" {
                    map.serialize_entry(k, v)?;
                }
            }
        }
        map.serialize_entry("hookgate", self.vars)?;
        map.end()
    }
}

/// Escapes `&`, `<` and `>` as Slack asks, so end-user text cannot ping `<!channel>`.
fn slack_escape(value: String) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// A representative OutRival event for the load-time trial render.
fn sample_context() -> RenderContext<'static> {
    static SAMPLE: std::sync::LazyLock<serde_json::Value> = std::sync::LazyLock::new(|| {
        serde_json::json!({
            "event": "status-changed",
            "type": "VOICE",
            "companionId": "sample-companion",
            "data": {
                "messages": [{"role": "user", "content": "hello"}],
                "status": "ended",
                "startedAt": "2026-01-01T00:00:00Z",
                "endedAt": "2026-01-01T00:05:00Z",
                "endedReason": "customer-ended-call",
                "phoneNumber": "+15550100"
            }
        })
    });
    static VARS: DeliveryVars<'static> = DeliveryVars {
        event_id: "00000000-0000-7000-8000-000000000000",
        delivery_id: "00000000-0000-7000-8000-000000000001",
        route: "sample-route",
        target: "sample-target",
        source: "sample-source",
        received_at: "2026-01-01T00:00:00.000Z",
        attempt: 1,
    };
    RenderContext {
        payload: &SAMPLE,
        vars: &VARS,
    }
}

/// minijinja's message without its internal template name ("0.txt").
fn describe(e: &minijinja::Error) -> String {
    let mut msg = match e.detail() {
        Some(detail) => format!("{}: {detail}", e.kind()),
        None => e.kind().to_string(),
    };
    if let Some(line) = e.line() {
        msg.push_str(&format!(" (template line {line})"));
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> DeliveryVars<'static> {
        DeliveryVars {
            event_id: "e1",
            delivery_id: "d1",
            route: "r1",
            target: "t1",
            source: "s1",
            received_at: "2026-01-01T00:00:00.000Z",
            attempt: 2,
        }
    }

    #[test]
    fn a_loop_over_a_large_array_runs_out_of_fuel_instead_of_hanging() {
        let mut set = TemplateSet::new();
        let t = set
            .add(
                "{% for a in data.messages %}{% for b in data.messages %}{% if a == b - 1 %}{% endif %}{% endfor %}{% endfor %}",
                Escape::None,
            )
            .unwrap();
        let messages: Vec<u32> = (0..10_000).collect();
        let payload = serde_json::json!({"data": {"messages": messages}});
        let started = std::time::Instant::now();
        let e = set.render(t, &payload, &vars()).unwrap_err();
        assert!(
            e.to_string().contains("more than 5000000 instructions"),
            "{e}"
        );
        // 10^8 iterations would take minutes; the fuel stops it far sooner.
        assert!(started.elapsed() < std::time::Duration::from_secs(30));
    }

    #[test]
    fn output_past_the_limit_is_a_render_error() {
        let mut set = TemplateSet::new();
        let t = set
            .add(
                "{% for m in data.messages %}{{ data.big }}{% endfor %}",
                Escape::None,
            )
            .unwrap();
        let payload =
            serde_json::json!({"data": {"messages": [1, 2, 3], "big": "x".repeat(400_000)}});
        let e = set.render(t, &payload, &vars()).unwrap_err();
        assert!(e.to_string().contains("larger than 1048576 bytes"), "{e}");
        // Two copies fit.
        let payload = serde_json::json!({"data": {"messages": [1, 2], "big": "x".repeat(400_000)}});
        assert_eq!(set.render(t, &payload, &vars()).unwrap().len(), 800_000);
    }

    #[test]
    fn renders_payload_fields_and_hookgate_vars() {
        let mut set = TemplateSet::new();
        let t = set
            .add(
                "{{ type }} {{ data.status }} #{{ hookgate.attempt }} via {{ hookgate.route }}",
                Escape::None,
            )
            .unwrap();
        let payload = serde_json::json!({"type": "VOICE", "data": {"status": "ended"}});
        assert_eq!(
            set.render(t, &payload, &vars()).unwrap(),
            "VOICE ended #2 via r1"
        );
    }

    #[test]
    fn absent_fields_are_chainable_and_empty() {
        let mut set = TemplateSet::new();
        let t = set
            .add(
                "[{{ data.x.y }}][{{ data.endedReason | default('-') }}]",
                Escape::None,
            )
            .unwrap();
        let payload = serde_json::json!({"data": {}});
        assert_eq!(set.render(t, &payload, &vars()).unwrap(), "[][-]");
    }

    #[test]
    fn text_is_not_escaped_but_html_is() {
        let mut set = TemplateSet::new();
        let text = set.add("{{ companionId }}", Escape::None).unwrap();
        let html = set.add("{{ companionId }}", Escape::Html).unwrap();
        let payload = serde_json::json!({"companionId": "<b>&"});
        assert_eq!(set.render(text, &payload, &vars()).unwrap(), "<b>&");
        assert_eq!(
            set.render(html, &payload, &vars()).unwrap(),
            "&lt;b&gt;&amp;"
        );
    }

    #[test]
    fn slack_escape_defuses_mentions() {
        let mut set = TemplateSet::new();
        let t = set
            .add("{{ companionId | slack_escape }}", Escape::None)
            .unwrap();
        let payload = serde_json::json!({"companionId": "<!channel> & co"});
        assert_eq!(
            set.render(t, &payload, &vars()).unwrap(),
            "&lt;!channel&gt; &amp; co"
        );
    }

    #[test]
    fn syntax_errors_and_unknown_filters_fail_at_add() {
        let mut set = TemplateSet::new();
        assert!(set.add("{{ type ", Escape::None).is_err());
        let err = set
            .add("{{ type | no_such_filter }}", Escape::None)
            .unwrap_err();
        assert!(err.message.contains("filter"), "{}", err.message);
    }

    #[test]
    fn tojson_is_available() {
        let mut set = TemplateSet::new();
        let t = set.add("{{ data | tojson }}", Escape::None).unwrap();
        let payload = serde_json::json!({"data": {"a": 1}});
        assert_eq!(set.render(t, &payload, &vars()).unwrap(), r#"{"a":1}"#);
    }
}
