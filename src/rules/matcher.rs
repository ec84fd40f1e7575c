//! Evaluating one route's condition against one event payload.
//!
//! Semantics are DESIGN.md section 3 (Matching): types are never coerced
//! (`"1"` ≠ `1`, `1` = `1.0`), JSON `null` is present and equals only `null`,
//! string operators on non-strings and numeric operators on non-numbers are
//! false, and on an absent field every operator is false except `not` and
//! `exists: false`.

use serde_json::Value;

use crate::config::{Condition, FieldMatch, FieldTest};

/// Does `condition` hold for `event`?
pub fn condition_holds(condition: &Condition, event: &Value) -> bool {
    match condition {
        Condition::All(fields) => all_hold(fields, event),
        Condition::Any(maps) => maps.iter().any(|fields| all_hold(fields, event)),
    }
}

/// The first field whose tests fail, if any (for `hookgate route` explanations).
pub fn first_failing<'c>(fields: &'c [FieldMatch], event: &Value) -> Option<&'c FieldMatch> {
    fields.iter().find(|f| !field_holds(f, event))
}

fn all_hold(fields: &[FieldMatch], event: &Value) -> bool {
    fields.iter().all(|f| field_holds(f, event))
}

/// Every test of one field holds.
pub fn field_holds(field: &FieldMatch, event: &Value) -> bool {
    let value = lookup(event, &field.path);
    field.tests.iter().all(|t| test_holds(t, value))
}

/// Follow a dotted path: object keys by name, array elements by index.
pub fn lookup<'v, S: AsRef<str>>(root: &'v Value, path: &[S]) -> Option<&'v Value> {
    let mut current = root;
    for segment in path {
        let segment = segment.as_ref();
        current = match current {
            Value::Object(map) => map.get(segment)?,
            Value::Array(items) => items.get(segment.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(current)
}

fn test_holds(test: &FieldTest, value: Option<&Value>) -> bool {
    let Some(value) = value else {
        return matches!(test, FieldTest::NoneOf(_) | FieldTest::Exists(false));
    };
    match test {
        FieldTest::OneOf(options) => options.iter().any(|o| json_eq(value, o)),
        FieldTest::NoneOf(options) => !options.iter().any(|o| json_eq(value, o)),
        FieldTest::Prefix(p) => value.as_str().is_some_and(|s| s.starts_with(p.as_str())),
        FieldTest::Suffix(p) => value.as_str().is_some_and(|s| s.ends_with(p.as_str())),
        FieldTest::Contains(needle) => match value {
            Value::String(s) => s.contains(needle.as_str()),
            Value::Array(items) => items.iter().any(|i| i.as_str() == Some(needle.as_str())),
            _ => false,
        },
        FieldTest::Regex(re) => value.as_str().is_some_and(|s| re.is_match(s)),
        FieldTest::Exists(wanted) => *wanted,
        FieldTest::Gt(n) => value.as_f64().is_some_and(|v| v > *n),
        FieldTest::Gte(n) => value.as_f64().is_some_and(|v| v >= *n),
        FieldTest::Lt(n) => value.as_f64().is_some_and(|v| v < *n),
        FieldTest::Lte(n) => value.as_f64().is_some_and(|v| v <= *n),
    }
}

/// JSON equality without coercion, except that numbers compare by value
/// (`1` equals `1.0`).
pub fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if let (Some(x), Some(y)) = (x.as_i64(), y.as_i64()) {
                x == y
            } else if let (Some(x), Some(y)) = (x.as_u64(), y.as_u64()) {
                x == y
            } else {
                x.as_f64() == y.as_f64()
            }
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field(path: &str, tests: Vec<FieldTest>) -> FieldMatch {
        FieldMatch {
            key: path.to_owned(),
            path: path.split('.').map(str::to_owned).collect(),
            tests,
        }
    }

    fn holds(path: &str, test: FieldTest, event: &Value) -> bool {
        field_holds(&field(path, vec![test]), event)
    }

    #[test]
    fn operator_table() {
        let e = json!({
            "event": "status-changed",
            "n": 1,
            "f": 2.5,
            "s": "1",
            "nul": null,
            "data": {"endedReason": "pipeline-error", "messages": [{"role": "bot"}], "tags": ["vip", "x"]}
        });
        use FieldTest::*;
        let cases: Vec<(&str, FieldTest, bool)> = vec![
            ("event", OneOf(vec![json!("status-changed")]), true),
            (
                "event",
                OneOf(vec![json!("a"), json!("status-changed")]),
                true,
            ),
            ("event", OneOf(vec![json!("a")]), false),
            ("n", OneOf(vec![json!(1.0)]), true),
            ("n", OneOf(vec![json!("1")]), false),
            ("s", OneOf(vec![json!(1)]), false),
            ("nul", OneOf(vec![json!(null)]), true),
            ("nul", Exists(true), true),
            ("absent", OneOf(vec![json!(null)]), false),
            ("absent", NoneOf(vec![json!("x")]), true),
            ("event", NoneOf(vec![json!("status-changed")]), false),
            ("event", NoneOf(vec![json!("a"), json!("b")]), true),
            ("data.endedReason", Prefix("pipeline".into()), true),
            ("data.endedReason", Suffix("error".into()), true),
            ("data.endedReason", Contains("line-e".into()), true),
            ("data.tags", Contains("vip".into()), true),
            ("data.tags", Contains("vi".into()), false),
            ("n", Prefix("1".into()), false),
            (
                "data.endedReason",
                Regex(regex::Regex::new("^pipe.*error$").unwrap()),
                true,
            ),
            ("n", Regex(regex::Regex::new("1").unwrap()), false),
            ("absent", Exists(false), true),
            ("absent", Exists(true), false),
            ("event", Exists(false), false),
            ("f", Gt(2.0), true),
            ("f", Gte(2.5), true),
            ("f", Lt(2.5), false),
            ("f", Lte(2.5), true),
            ("s", Gt(0.0), false),
            ("absent", Gt(0.0), false),
            ("absent", Prefix("".into()), false),
            ("data.messages.0.role", OneOf(vec![json!("bot")]), true),
            ("data.messages.1.role", Exists(false), true),
            ("data.messages.x", Exists(true), false),
        ];
        for (path, test, expected) in cases {
            let desc = format!("{path} {test:?}");
            assert_eq!(holds(path, test, &e), expected, "{desc}");
        }
    }

    #[test]
    fn several_operators_must_all_hold() {
        let e = json!({"data": {"endedReason": "pipeline-error"}});
        let f = field(
            "data.endedReason",
            vec![
                FieldTest::Prefix("pipe".into()),
                FieldTest::Suffix("nope".into()),
            ],
        );
        assert!(!field_holds(&f, &e));
    }

    #[test]
    fn any_holds_when_one_map_holds() {
        let e = json!({"event": "function-call", "type": "SMS"});
        let cond = Condition::Any(vec![
            vec![field(
                "event",
                vec![FieldTest::OneOf(vec![json!("status-changed")])],
            )],
            vec![field("type", vec![FieldTest::OneOf(vec![json!("SMS")])])],
        ]);
        assert!(condition_holds(&cond, &e));
        assert!(condition_holds(&Condition::All(vec![]), &e));
    }
}
