//! `kind: slack` targets: an incoming-webhook URL (the credential itself,
//! never shown), a `text` template (a default one when absent), optional
//! `blocks` whose strings are templates, and optional `username` / `icon_emoji`.

use super::super::super::model::{DEFAULT_SLACK_TEXT, SlackTarget};
use super::super::super::node::{Node, NodeValue};
use super::super::super::secret::Secret;
use super::super::ctx::{Ctx, Fields, Problem, child, index};
use super::not_a_template;
use crate::templates::{Escape, JsonTemplate};

pub(super) const KEYS: &[&str] = &["webhook_url", "text", "blocks", "username", "icon_emoji"];

pub(super) fn slack(cx: &mut Ctx<'_>, f: &Fields<'_>) -> Option<SlackTarget> {
    let webhook_url = f.req(cx, "webhook_url", webhook_url);
    let text = match f.get("text") {
        Some(_) => f.opt(cx, "text", |cx, n, p| cx.template(n, p, Escape::None)),
        // The built-in text compiles; a failure here would be hookgate's bug.
        None => match cx.templates.add(DEFAULT_SLACK_TEXT, Escape::None) {
            Ok(t) => Some(t),
            Err(e) => {
                cx.error(f.node, &f.path("text"), format!("default text: {e}"));
                None
            }
        },
    };
    let blocks = f.opt(cx, "blocks", blocks);
    let username = f
        .opt(cx, "username", |cx, n, p| cx.string(n, p))
        .filter(|s| !s.is_empty());
    let icon_emoji = f.opt(cx, "icon_emoji", icon_emoji);
    if f.has("blocks") != blocks.is_some() || f.has("icon_emoji") != icon_emoji.is_some() {
        return None; // reported
    }
    Some(SlackTarget {
        webhook_url: webhook_url?,
        text: text?,
        blocks,
        username,
        icon_emoji,
    })
}

/// `icon_emoji: ":telephone:"`: Slack's emoji-name form, colons included.
fn icon_emoji(cx: &mut Ctx<'_>, node: &Node, path: &str) -> Option<String> {
    cx.parse(node, path, |s| {
        let name = s.strip_prefix(':').and_then(|s| s.strip_suffix(':'));
        match name {
            Some(n)
                if !n.is_empty()
                    && n.chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+')) =>
            {
                Ok(s.to_owned())
            }
            _ => Err(Problem::new(format!("`{s}` is not a Slack emoji name"))
                .help("write it between colons, e.g. `:telephone_receiver:`")),
        }
    })
}

/// The whole URL is the credential: checked, never shown.
fn webhook_url(cx: &mut Ctx<'_>, node: &Node, path: &str) -> Option<Secret> {
    let text = cx.text(node, path)?;
    if !text.unresolved.is_empty() {
        return Some(Secret::new(text.value));
    }
    let problem =
        not_a_template(&text.value, "webhook_url").or_else(|| {
            match reqwest::Url::parse(&text.value) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() => None,
                _ => Some(
                    Problem::new("`webhook_url` is not a valid http(s) URL (value not shown)")
                        .help("use the incoming-webhook URL Slack gave you"),
                ),
            }
        });
    match problem {
        Some(p) => {
            cx.problem(node, path, p);
            None
        }
        None => Some(Secret::new(text.value)),
    }
}

/// Slack `blocks`: any YAML structure (normally a list of block objects);
/// every string in it is a template.
fn blocks(cx: &mut Ctx<'_>, node: &Node, path: &str) -> Option<JsonTemplate> {
    json_template(cx, node, path)
}

fn json_template(cx: &mut Ctx<'_>, node: &Node, path: &str) -> Option<JsonTemplate> {
    use serde_json::Value;
    Some(match &node.value {
        NodeValue::Null => JsonTemplate::Literal(Value::Null),
        NodeValue::Bool(b) => JsonTemplate::Literal(Value::Bool(*b)),
        NodeValue::Int(i) => JsonTemplate::Literal(Value::from(*i)),
        NodeValue::Float(x) => JsonTemplate::Literal(
            serde_json::Number::from_f64(*x).map_or(Value::Null, Value::Number),
        ),
        NodeValue::Str(_) => JsonTemplate::String(cx.template(node, path, Escape::None)?),
        NodeValue::Seq(items) => {
            let mut out = Vec::with_capacity(items.len());
            let mut ok = true;
            for (i, item) in items.iter().enumerate() {
                match json_template(cx, item, &index(path, i)) {
                    Some(t) => out.push(t),
                    None => ok = false,
                }
            }
            if !ok {
                return None;
            }
            JsonTemplate::Array(out)
        }
        NodeValue::Map(entries) => {
            let mut out = Vec::with_capacity(entries.len());
            let mut ok = true;
            for (key, value) in entries {
                match json_template(cx, value, &child(path, &key.name)) {
                    Some(t) => out.push((key.name.clone(), t)),
                    None => ok = false,
                }
            }
            if !ok {
                return None;
            }
            JsonTemplate::Object(out)
        }
    })
}
