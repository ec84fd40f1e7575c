//! Fuzz target: the pruned event decoder (`hookgate::event::decode`, which
//! builds only the fields routing and the schema read) against the full parse
//! (`serde_json` into a whole `Value`).
//!
//! Input: a first line of paths to keep, `;`-separated, segments `.`-separated
//! (`data.status;data.messages.0.role`), then the body. The set is what
//! ingress builds (the schema's fields) plus those paths. Properties:
//! - decode accepts a body exactly when the full parse accepts it, it is a
//!   JSON object and it nests at most 128 deep (serde_json's own limit, 127,
//!   is lifted for this): a body decode refuses is refused by the full parse
//!   or is not an object, or nests deeper than 128;
//! - where it accepts: every kept path reads (`rules::lookup`) exactly as in
//!   the full parse; `data.messages` keeps its length and each element's kind;
//!   the schema issues are those of decoding with everything kept; decoding
//!   with everything kept gives the full parse itself;
//! - `strict` refuses exactly the bodies with schema issues, naming the first.

#![no_main]

use hookgate::config::Schema;
use hookgate::event::{DecodeError, FieldSet, MAX_DEPTH, decode};
use hookgate::rules::lookup;
use hookgate_fuzz::{full_parse_unbounded, nesting};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn kind(v: &Value) -> u8 {
    match v {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Number(_) => 2,
        Value::String(_) => 3,
        Value::Array(_) => 4,
        Value::Object(_) => 5,
    }
}

fuzz_target!(|data: &[u8]| {
    let (paths, body) = match data.iter().position(|&b| b == b'\n') {
        Some(nl) => (&data[..nl], &data[nl + 1..]),
        None => (&b""[..], data),
    };
    let paths: Vec<Vec<String>> = String::from_utf8_lossy(paths)
        .split(';')
        .filter(|p| !p.is_empty())
        .take(16)
        .map(|p| p.split('.').map(str::to_owned).collect())
        .collect();
    let mut fields = FieldSet::for_routes(&[]);
    for p in &paths {
        fields.insert(p);
    }

    let depth_ok = nesting(body) <= MAX_DEPTH;
    let pruned = decode(body, Schema::Outrival, false, &fields);
    let everything = decode(body, Schema::Outrival, false, &FieldSet::everything());
    let decoded = match pruned {
        Ok(d) => d,
        Err(DecodeError::InvalidJson(why)) => {
            assert!(everything.is_err(), "refused only when pruned: {why}");
            if depth_ok {
                // Within the depth limit the full parse may run unbounded.
                if let Ok(v) = full_parse_unbounded(body)
                    && v.is_object()
                {
                    panic!("decode refused ({why}) an object the full parse reads: {v}");
                }
            } else {
                assert!(why.contains("nested"), "refused too deep a body as: {why}");
            }
            return;
        }
        Err(e @ DecodeError::InvalidEvent(_)) => panic!("not strict, yet {e:?}"),
    };
    assert!(
        depth_ok,
        "decode accepted a body nested deeper than {MAX_DEPTH}"
    );
    let full = match full_parse_unbounded(body) {
        Ok(v) => v,
        Err(e) => panic!("decode accepted a body the full parse refuses: {e}"),
    };
    assert!(full.is_object());
    let everything = match everything {
        Ok(d) => d,
        Err(e) => panic!("accepted pruned but refused whole: {e:?}"),
    };
    assert_eq!(
        everything.value, full,
        "decoding everything is not the full parse"
    );

    let schema_paths: [&[&str]; 8] = [
        &["event"],
        &["type"],
        &["companionId"],
        &["data", "status"],
        &["data", "startedAt"],
        &["data", "endedAt"],
        &["data", "endedReason"],
        &["data", "phoneNumber"],
    ];
    for p in schema_paths {
        assert_eq!(lookup(&decoded.value, p), lookup(&full, p), "path {p:?}");
    }
    for p in &paths {
        assert_eq!(lookup(&decoded.value, p), lookup(&full, p), "path {p:?}");
    }
    let messages = |v: &Value| match lookup(v, &["data", "messages"]) {
        Some(Value::Array(items)) => Some(items.iter().map(kind).collect::<Vec<_>>()),
        other => other.map(|v| vec![kind(v), u8::MAX]),
    };
    assert_eq!(messages(&decoded.value), messages(&full), "data.messages");
    assert_eq!(decoded.schema_issues, everything.schema_issues);

    let strict = decode(body, Schema::Outrival, true, &fields);
    match (decoded.schema_issues.first(), strict) {
        (None, Ok(s)) => assert_eq!(s.value, decoded.value),
        (Some(first), Err(DecodeError::InvalidEvent(m))) => assert_eq!(&m, first),
        (issue, other) => panic!("strict: {other:?} for the issue {issue:?}"),
    }
});
