//! The pruned parse against the full one: for every path of the set, `lookup`
//! finds the same value (proptest over random nested events and paths).

use proptest::prelude::*;
use serde_json::{Value, json};

use super::FieldSet;
use crate::rules::lookup;

fn parse(fields: &FieldSet, body: &str) -> Result<Value, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(body);
    let v = fields.parse(&mut de)?;
    de.end()?;
    Ok(v)
}

const SEGMENTS: &[&str] = &["a", "b", "data", "0", "1", "00", "+0", "x.y"];

fn json_tree() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-3i64..3).prop_map(|n| json!(n)),
        Just(json!(1.5)),
        prop::sample::select(&["", "a", "é\"\\n"][..]).prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(4, 40, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(SEGMENTS), inner), 0..4).prop_map(
                |members| {
                    // Written out by hand below, so repeated keys can occur.
                    let mut m = serde_json::Map::new();
                    for (k, v) in members {
                        m.insert(k.to_owned(), v);
                    }
                    Value::Object(m)
                }
            ),
        ]
    })
}

fn path() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(prop::sample::select(SEGMENTS).prop_map(str::to_owned), 1..4)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn every_kept_path_reads_as_in_the_full_parse(
        event in json_tree(),
        paths in prop::collection::vec(path(), 0..4),
        probe in path(),
    ) {
        let body = event.to_string();
        let mut fields = FieldSet::default();
        for p in &paths {
            fields.insert(p);
        }
        let full: Value = serde_json::from_str(&body).unwrap();
        let pruned = parse(&fields, &body).unwrap();
        for p in &paths {
            prop_assert_eq!(lookup(&pruned, p), lookup(&full, p), "path {:?} of {}", p, body);
        }
        // A path outside the set reads as absent, as its kind, or as the
        // same value: never as something the event does not have.
        if lookup(&pruned, &probe).is_some() {
            prop_assert!(lookup(&full, &probe).is_some(), "{:?} invented in {}", probe, body);
        }
        prop_assert_eq!(parse(&FieldSet::everything(), &body).unwrap(), full);
    }
}

/// Pieces that break a JSON text, or only look as if they might.
const SPLICES: &[&str] = &[
    "1e400",
    "-1e400",
    "1e308",
    "\"\\ud800\"",
    "\"\\ud800\\udc00\"",
    "\"\\u00zz\"",
    ",",
    "}",
    "]",
    "01",
    "-",
    "\u{1}",
    "\"\\/\"",
    "\"é\"",
    " ",
    "null",
    "1.5e-400",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// A body is refused by the pruned parse exactly when the full parse
    /// refuses it, whatever it keeps.
    #[test]
    fn a_body_is_refused_exactly_when_the_full_parse_refuses_it(
        event in json_tree(),
        paths in prop::collection::vec(path(), 0..4),
        at in any::<prop::sample::Index>(),
        splice in prop::sample::select(SPLICES),
    ) {
        let text = event.to_string();
        let mut cut = at.index(text.len() + 1);
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        let body = format!("{}{}{}", &text[..cut], splice, &text[cut..]);
        let mut fields = FieldSet::default();
        for p in &paths {
            fields.insert(p);
        }
        let full = serde_json::from_str::<Value>(&body);
        let pruned = parse(&fields, &body);
        prop_assert_eq!(full.is_ok(), pruned.is_ok(), "{} (full: {:?})", body, full.err());
    }
}

/// serde_json's `raw_value` feature makes `Value` read an object whose first
/// key is this token as the JSON in its string; hookgate does not enable it,
/// so the key is an ordinary member in every parse.
#[test]
fn the_raw_value_token_is_an_ordinary_key() {
    let body = r#"{"$serde_json::private::RawValue":"[1]","data":{"status":"ended"}}"#;
    let full: Value = serde_json::from_str(body).unwrap();
    assert!(full.is_object());
    let mut fields = FieldSet::default();
    fields.insert(&["data", "status"]);
    assert_eq!(parse(&fields, body).unwrap()["data"]["status"], "ended");
}

#[test]
fn unread_members_are_left_out_and_unread_elements_keep_their_kind() {
    let mut fields = FieldSet::default();
    fields.insert(&["event"]);
    fields.reach(&["data", "messages"]);
    let body = r#"{"event":"e","big":{"x":[1,2]},"data":{"messages":[{"role":"bot"},"s",[1],3,null],"other":1}}"#;
    assert_eq!(
        parse(&fields, body).unwrap(),
        json!({"event": "e", "data": {"messages": [{}, "", [], 3, null]}})
    );
}

#[test]
fn a_repeated_key_keeps_its_last_value_as_the_full_parse_does() {
    let mut fields = FieldSet::default();
    fields.insert(&["a"]);
    let body = r#"{"a":1,"b":2,"a":{"c":3}}"#;
    let full: Value = serde_json::from_str(body).unwrap();
    assert_eq!(parse(&fields, body).unwrap()["a"], full["a"]);
}

#[test]
fn skipped_parts_are_refused_as_the_full_parse_refuses_them() {
    let mut fields = FieldSet::default();
    fields.insert(&["a"]);
    for bad in [
        r#"{"a":1,"b":[1,}"#,
        r#"{"a":1,"b":"\x"}"#,
        r#"{"a":1,"b":tru}"#,
        r#"{"a":1,"b":01}"#,
        "{\"a\":1,\"b\":\"\u{1}\"}",
        // What a syntax-only skip would let through: a number out of range,
        // a lone surrogate, in a part no path names.
        r#"{"a":1,"b":1e400}"#,
        r#"{"a":1,"b":{"c":[-1e400]}}"#,
        r#"{"a":1,"b":"\ud800"}"#,
        r#"{"a":1,"\ud800":1}"#,
    ] {
        assert!(
            serde_json::from_str::<Value>(bad).is_err(),
            "the full parse accepts {bad}"
        );
        assert!(parse(&fields, bad).is_err(), "{bad}");
    }
}

#[test]
fn a_path_through_a_whole_value_adds_nothing() {
    let mut short_first = FieldSet::default();
    short_first.insert(&["data"]);
    short_first.insert(&["data", "x"]);
    let mut long_first = FieldSet::default();
    long_first.insert(&["data", "x"]);
    long_first.insert(&["data"]);
    assert_eq!(short_first, long_first);
}
