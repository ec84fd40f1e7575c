//! Fuzz target: the template renderer with an arbitrary event.
//!
//! The input is a request body. When ingress would accept it (`decode` as an
//! outrival source does), it goes the way a delivery takes it: the stored
//! bytes parsed again for templates (`targets::render::parse_payload`), then
//! a fixed set of templates (the example config's, and ones that loop,
//! index, filter and escape) rendered against it, as text, as HTML and as
//! Slack `blocks`. Properties:
//! - an event ingress accepted parses for the templates (a template target
//!   cannot dead-letter it as "not JSON");
//! - each render returns `Ok` or an error, never a panic, and its output is
//!   bounded by a linear function of the event's size and by
//!   `templates::MAX_OUTPUT_BYTES`;
//! - what HTML escaping and `slack_escape` promise: no `<` or `>` from the
//!   event reaches the output.

#![no_main]

use std::sync::LazyLock;

use hookgate::config::Schema;
use hookgate::event::{FieldSet, decode};
use hookgate::targets::render::parse_payload;
use hookgate::templates::{
    DeliveryVars, Escape, JsonTemplate, MAX_OUTPUT_BYTES, TemplateRef, TemplateSet,
};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// Templates rendered against every event. The first four are
/// rules.example.yaml's; the rest use what users write in templates.
const TEXT: &[&str] = &[
    "{\"companion\": {{ companionId | tojson }}, \"status\": {{ data.status | tojson }},\n \"reason\": {{ data.endedReason | default(\"\") | tojson }}, \"event_id\": \"{{ hookgate.event_id }}\"}\n",
    "{{ type }} chat {{ companionId }} is {{ data.status }} ({{ data.endedReason | default('-') | slack_escape }})",
    "Call {{ companionId }} ended: {{ data.endedReason }}",
    "A {{ type }} chat with {{ companionId }} ended ({{ data.endedReason | default(\"no reason given\") }}).\nStarted {{ data.startedAt }}, ended {{ data.endedAt | default(\"-\") }}.\nEvent {{ hookgate.event_id }}.\n",
    "{% for m in data.messages %}{{ loop.index }}. {{ m.role }}: {{ m.content | default(m) }}\n{% endfor %}",
    "{{ data | tojson }}",
    "{{ data.messages | length }} {{ data.messages[0].content | default('') | upper }} {{ data.messages[-1] }}",
    "{% if data.status == 'ended' and data.endedReason %}{{ data.endedReason | lower | trim }}{% elif data.status %}{{ data.status | title }}{% else %}-{% endif %}",
    "{{ event ~ '/' ~ type ~ '/' ~ companionId }} {{ data.startedAt | string | replace('T', ' ') }}",
    "{{ data.messages | map(attribute='role') | join(',') }} {{ data.phoneNumber | default('') | list | length }}",
    "{% for k, v in data | items %}{{ k }}={{ v }};{% endfor %}",
    "{{ data.n + 1 }} {{ data.n * 2 }} {{ data.n | abs }} {{ data.n | int }} {{ data.n | float }}",
    "{{ data.x.y.z }}{{ nothing }}{{ data['status'] }}{{ hookgate | tojson }}",
    "{{ data.messages | selectattr('role', 'equalto', 'user') | list | length }} {{ data.items | sort | first }}",
    "{{ companionId | slack_escape }} {{ data | tojson | slack_escape }}",
];

/// Templates whose output must never hold `<` or `>`.
const HTML: &[&str] = &[
    "<p>{{ companionId }} {{ data.endedReason }} {{ data.messages[0].content }}</p>",
    "{% for m in data.messages %}<li>{{ m }}</li>{% endfor %}",
];

struct Set {
    templates: TemplateSet,
    text: Vec<TemplateRef>,
    slack: TemplateRef,
    html: Vec<TemplateRef>,
    blocks: JsonTemplate,
}

static SET: LazyLock<Set> = LazyLock::new(|| {
    let mut templates = TemplateSet::new();
    let mut add = |source: &str, escape| match templates.add(source, escape) {
        Ok(t) => t,
        Err(e) => panic!("fixed template {source:?} does not compile: {e}"),
    };
    let text: Vec<_> = TEXT.iter().map(|s| add(s, Escape::None)).collect();
    let slack = add(
        "{{ companionId | slack_escape }}{{ data.endedReason | slack_escape }}",
        Escape::None,
    );
    let html: Vec<_> = HTML.iter().map(|s| add(s, Escape::Html)).collect();
    let blocks = JsonTemplate::Array(vec![JsonTemplate::Object(vec![
        (
            "type".to_owned(),
            JsonTemplate::String(add("section", Escape::None)),
        ),
        (
            "text".to_owned(),
            JsonTemplate::Object(vec![
                (
                    "type".to_owned(),
                    JsonTemplate::Literal(Value::from("mrkdwn")),
                ),
                (
                    "text".to_owned(),
                    JsonTemplate::String(add(TEXT[1], Escape::None)),
                ),
                ("n".to_owned(), JsonTemplate::Literal(Value::from(1.5))),
            ]),
        ),
    ])]);
    Set {
        templates,
        text,
        slack,
        html,
        blocks,
    }
});

const VARS: DeliveryVars<'static> = DeliveryVars {
    event_id: "01890000-0000-7000-8000-000000000000",
    delivery_id: "01890000-0000-7000-8000-000000000001",
    route: "ended-calls",
    target: "ops-slack",
    source: "outrival",
    received_at: "2026-01-01T00:00:00.000Z",
    attempt: 1,
};

fuzz_target!(|body: &[u8]| {
    let set = &*SET;
    if decode(body, Schema::Outrival, false, &FieldSet::for_routes(&[])).is_err() {
        return;
    }
    let payload = match parse_payload(body) {
        Ok(p) => p,
        Err(e) => panic!("ingress accepts this event but a template target cannot read it: {e}"),
    };
    // Linear in the event, and never past the renderer's own cap.
    let bound = (64 * body.len() + 64 * 1024).min(MAX_OUTPUT_BYTES);
    for &t in &set.text {
        if let Ok(out) = set.templates.render(t, &payload, &VARS) {
            assert!(
                out.len() <= bound,
                "{} bytes from a {}-byte event",
                out.len(),
                body.len()
            );
        }
    }
    for &t in &set.html {
        if let Ok(out) = set.templates.render(t, &payload, &VARS) {
            assert!(out.len() <= bound);
            let inner = out
                .replace("<p>", "")
                .replace("</p>", "")
                .replace("<li>", "")
                .replace("</li>", "");
            assert!(
                !inner.contains(['<', '>']),
                "HTML escaping let through: {out:?}"
            );
        }
    }
    if let Ok(out) = set.templates.render(set.slack, &payload, &VARS) {
        assert!(
            !out.contains(['<', '>']),
            "slack_escape let through: {out:?}"
        );
    }
    if let Ok(blocks) = set.templates.render_json(&set.blocks, &payload, &VARS) {
        // Two rendered strings, each at most `bound`, JSON-escaped (at most
        // six bytes for one, `\u0001`), plus the literal structure.
        assert!(blocks.to_string().len() <= 12 * bound + 1024);
    }
});
