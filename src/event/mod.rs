//! Decoding a verified body: a JSON object, not nested too deep, and (for
//! `schema: outrival`) checked against DESIGN.md section 1.
//!
//! An authentic event is never thrown away for its shape: schema problems are
//! returned as warnings unless the source is `strict`. Unknown extra fields are
//! kept (the stored body is the raw bytes, always).
//!
//! Only the parts that routing and the schema read are built into the parsed
//! value ([`fields`]); the rest is checked and skipped.

mod fields;

use serde_json::Value;

use crate::config::Schema;
pub use fields::FieldSet;

/// JSON nesting deeper than this is refused (the top-level object is depth 1).
pub const MAX_DEPTH: usize = 128;

const EVENTS: &[&str] = &["status-changed", "conversation-updated", "function-call"];
const TYPES: &[&str] = &["VOICE", "TEXT", "SMS"];
const STATUSES: &[&str] = &["queued", "ringing", "in-progress", "forwarding", "ended"];

/// The section 1 fields [`outrival_issues`] reads whole.
const SCHEMA_FIELDS: &[&[&str]] = &[
    &["event"],
    &["type"],
    &["companionId"],
    &["data", "status"],
    &["data", "startedAt"],
    &["data", "endedAt"],
    &["data", "endedReason"],
    &["data", "phoneNumber"],
];

/// The fields whose kind (and whose elements' kinds) it checks, not their
/// contents: every `data.messages` entry must be an object.
const SCHEMA_SHAPES: &[&[&str]] = &[&["data", "messages"]];

#[derive(Debug, PartialEq)]
pub enum DecodeError {
    /// 400 `invalid_json`.
    InvalidJson(String),
    /// 400 `invalid_event` (strict sources only).
    InvalidEvent(String),
}

/// A parsed event and any schema warnings it carries.
#[derive(Debug)]
pub struct DecodedEvent {
    pub value: Value,
    /// Empty when the event fits its schema.
    pub schema_issues: Vec<String>,
}

/// Decode `body`, building into the value the paths of `fields` (routing
/// reads nothing else) and checking the rest.
pub fn decode(
    body: &[u8],
    schema: Schema,
    strict: bool,
    fields: &FieldSet,
) -> Result<DecodedEvent, DecodeError> {
    check_depth(body)?;
    // UTF-8 is checked once, here, for the whole body (the parse then reads
    // a `str` and need not check each string again).
    let text = std::str::from_utf8(body).map_err(|e| {
        DecodeError::InvalidJson(format!(
            "the body is not valid JSON: invalid UTF-8 at byte {}",
            e.valid_up_to()
        ))
    })?;
    let value = parse_json(text, fields)
        .map_err(|e| DecodeError::InvalidJson(format!("the body is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(DecodeError::InvalidJson(
            "the body must be a JSON object".to_owned(),
        ));
    }
    let schema_issues = match schema {
        Schema::Json => Vec::new(),
        Schema::Outrival => outrival_issues(&value),
    };
    if strict && let Some(first) = schema_issues.first() {
        return Err(DecodeError::InvalidEvent(first.clone()));
    }
    Ok(DecodedEvent {
        value,
        schema_issues,
    })
}

/// Parse after [`check_depth`] has bounded the nesting. serde_json's own limit
/// (127 levels) is lifted so that exactly [`MAX_DEPTH`] levels are accepted.
fn parse_json(body: &str, fields: &FieldSet) -> Result<Value, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(body);
    de.disable_recursion_limit();
    let value = fields.parse(&mut de)?;
    de.end()?;
    Ok(value)
}

/// Refuse nesting deeper than [`MAX_DEPTH`] before parsing, with a clear message.
/// Brackets inside strings do not count.
fn check_depth(body: &[u8]) -> Result<(), DecodeError> {
    // Fast path: with no more than MAX_DEPTH opening brackets in all, the
    // nesting cannot exceed it. This count vectorises; the exact scan below
    // (which must skip strings) runs only for unusual bodies.
    let openers = body.iter().filter(|&&b| b == b'{' || b == b'[').count();
    if openers <= MAX_DEPTH {
        return Ok(());
    }
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in body {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(DecodeError::InvalidJson(format!(
                        "JSON is nested deeper than {MAX_DEPTH} levels"
                    )));
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Every way `event` departs from the OutRival event of section 1.
fn outrival_issues(event: &Value) -> Vec<String> {
    let mut issues = Vec::new();
    enum_field(event, "event", "event", EVENTS, true, &mut issues);
    enum_field(event, "type", "type", TYPES, true, &mut issues);
    string_field(event, "companionId", "companionId", true, &mut issues);
    match event.get("data") {
        None => issues.push("data is required".to_owned()),
        Some(Value::Object(_)) => {
            let data = &event["data"];
            match data.get("messages") {
                None => issues.push("data.messages is required".to_owned()),
                Some(Value::Array(items)) => {
                    if let Some(i) = items.iter().position(|m| !m.is_object()) {
                        issues.push(format!("data.messages[{i}] must be an object"));
                    }
                }
                Some(_) => issues.push("data.messages must be an array".to_owned()),
            }
            enum_field(data, "status", "data.status", STATUSES, false, &mut issues);
            string_field(data, "startedAt", "data.startedAt", true, &mut issues);
            string_field(data, "endedAt", "data.endedAt", false, &mut issues);
            string_field(data, "endedReason", "data.endedReason", false, &mut issues);
            string_field(data, "phoneNumber", "data.phoneNumber", false, &mut issues);
        }
        Some(_) => issues.push("data must be an object".to_owned()),
    }
    issues
}

fn string_field(obj: &Value, key: &str, path: &str, required: bool, issues: &mut Vec<String>) {
    match obj.get(key) {
        None if required => issues.push(format!("{path} is required")),
        None | Some(Value::String(_)) => {}
        Some(_) => issues.push(format!("{path} must be a string")),
    }
}

fn enum_field(
    obj: &Value,
    key: &str,
    path: &str,
    allowed: &[&str],
    required: bool,
    issues: &mut Vec<String>,
) {
    match obj.get(key) {
        None if required => issues.push(format!("{path} is required")),
        None => {}
        Some(Value::String(s)) if allowed.contains(&s.as_str()) => {}
        Some(Value::String(_)) => {
            issues.push(format!("{path} must be one of {}", allowed.join(", ")))
        }
        Some(_) => issues.push(format!("{path} must be a string")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What ingress keeps when no route reads anything: the schema's fields.
    fn schema_only() -> FieldSet {
        FieldSet::for_routes(&[])
    }

    const GOOD: &str = r#"{"event":"status-changed","type":"VOICE","companionId":"c1","data":{"messages":[],"status":"ended","startedAt":"2026-01-01T00:00:00Z","extra":1},"more":true}"#;

    #[test]
    fn a_well_formed_event_has_no_issues() {
        let e = decode(
            GOOD.as_bytes(),
            Schema::Outrival,
            true,
            &FieldSet::everything(),
        )
        .unwrap();
        assert!(e.schema_issues.is_empty());
        assert_eq!(e.value["more"], true);
    }

    #[test]
    fn lenient_sources_keep_odd_events_with_warnings() {
        let body =
            br#"{"event":"new-event","type":"VOICE","companionId":7,"data":{"messages":[]}}"#;
        let e = decode(body, Schema::Outrival, false, &schema_only()).unwrap();
        assert_eq!(
            e.schema_issues,
            vec![
                "event must be one of status-changed, conversation-updated, function-call",
                "companionId must be a string",
                "data.startedAt is required",
            ]
        );
    }

    #[test]
    fn every_message_must_be_an_object_though_none_is_parsed_in_full() {
        let body = br#"{"event":"status-changed","type":"VOICE","companionId":"c","data":{"messages":[{"role":"bot","text":"hi"},"hi"],"startedAt":"t"}}"#;
        let e = decode(body, Schema::Outrival, false, &schema_only()).unwrap();
        assert_eq!(e.schema_issues, vec!["data.messages[1] must be an object"]);
    }

    #[test]
    fn strict_sources_refuse_naming_the_field() {
        let body = br#"{"event":"status-changed","type":"VOICE","companionId":"c","data":{"messages":[]}}"#;
        assert_eq!(
            decode(body, Schema::Outrival, true, &schema_only()).unwrap_err(),
            DecodeError::InvalidEvent("data.startedAt is required".into())
        );
    }

    #[test]
    fn non_objects_and_broken_json_are_invalid_json() {
        // Invalid UTF-8 in a string no rule reads is refused all the same.
        let skipped_bad_utf8 = &b"{\"data\":{\"messages\":[{\"text\":\"\xff\"}]}}"[..];
        for body in [&b"[1]"[..], b"\"s\"", b"{", b"", b"nul", skipped_bad_utf8] {
            assert!(matches!(
                decode(body, Schema::Json, false, &schema_only()),
                Err(DecodeError::InvalidJson(_))
            ));
        }
    }

    #[test]
    fn depth_128_is_allowed_and_129_is_not() {
        let nested = |depth: usize| {
            let mut s = String::new();
            for _ in 0..depth - 1 {
                s.push_str("{\"a\":");
            }
            s.push_str("{}");
            for _ in 0..depth - 1 {
                s.push('}');
            }
            s
        };
        assert!(decode(nested(128).as_bytes(), Schema::Json, false, &schema_only()).is_ok());
        assert!(matches!(
            decode(nested(129).as_bytes(), Schema::Json, false, &schema_only()),
            Err(DecodeError::InvalidJson(m)) if m.contains("128")
        ));
        // Brackets inside strings do not count.
        let s = format!("{{\"a\":\"{}\"}}", "[".repeat(500));
        assert!(decode(s.as_bytes(), Schema::Json, false, &schema_only()).is_ok());
    }
}
