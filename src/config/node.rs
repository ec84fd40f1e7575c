//! Stage 1 of loading: YAML text into a tree of [`Node`]s that remember where
//! they were written.
//!
//! The YAML is read with serde-saphyr in the 1.2 core schema (`strict_booleans`,
//! so `no`/`yes`/`on`/`off` stay strings) with duplicate keys rejected. The tree
//! is built by a `deserialize_any` visitor whose children are read as
//! [`serde_saphyr::Spanned`], so every node and every map key keeps its line and
//! column for [`super::Diagnostic`]s. Nothing here knows the config schema.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{MessageFormatter, Spanned, UserMessageFormatter};

/// One YAML node and where it starts (1-based line and column).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub value: NodeValue,
    pub line: u64,
    pub column: u64,
}

/// The value of a [`Node`]. Maps keep their keys in file order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum NodeValue {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Key, Node)>),
}

/// A map key: its text (scalars other than strings are written as in YAML,
/// e.g. `200`) and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Key {
    pub name: String,
    pub line: u64,
    pub column: u64,
}

impl NodeValue {
    /// How this kind of value is named in messages ("a string", "a map", …).
    pub fn kind(&self) -> &'static str {
        match self {
            NodeValue::Null => "null",
            NodeValue::Bool(_) => "a boolean",
            NodeValue::Int(_) => "an integer",
            NodeValue::Float(_) => "a number",
            NodeValue::Str(_) => "a string",
            NodeValue::Seq(_) => "a list",
            NodeValue::Map(_) => "a map",
        }
    }
}

/// A YAML document that could not be parsed: the message and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    pub message: String,
    /// 1-based; 0 when unknown.
    pub line: u64,
    pub column: u64,
}

/// Parse one YAML document. An empty document (or one holding only comments)
/// is a `Null` node at line 0.
pub(crate) fn parse(text: &str) -> Result<Node, SyntaxError> {
    if text.trim().is_empty() || only_comments(text) {
        return Ok(Node {
            value: NodeValue::Null,
            line: 0,
            column: 0,
        });
    }
    match serde_saphyr::from_str_with_options::<Spanned<Raw>>(text, yaml_options()) {
        Ok(spanned) => Ok(into_node(spanned)),
        Err(err) => {
            let mut e = yaml_error(&err);
            e.message = format!("invalid YAML: {}", e.message);
            Err(e)
        }
    }
}

/// How hookgate reads YAML files (the config, rule tests): the 1.2 core
/// schema's booleans, duplicate keys refused, no snippets of the file in
/// errors (it may hold secrets).
pub(crate) fn yaml_options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        strict_booleans: true,
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::Error,
        with_snippet: false,
    }
}

/// A serde-saphyr error as a message (its first line, no snippet) and where.
pub(crate) fn yaml_error(err: &serde_saphyr::Error) -> SyntaxError {
    let plain = err.without_snippet();
    let message: Cow<'_, str> = UserMessageFormatter.format_message(plain);
    let message = message.lines().next().unwrap_or("invalid YAML").trim();
    let (line, column) = plain
        .location()
        .map_or((0, 0), |loc| (loc.line(), loc.column()));
    SyntaxError {
        message: message.to_owned(),
        line,
        column,
    }
}

fn only_comments(text: &str) -> bool {
    text.lines().all(|l| {
        let l = l.trim();
        l.is_empty() || l.starts_with('#') || l == "---" || l == "..."
    })
}

fn into_node(spanned: Spanned<Raw>) -> Node {
    Node {
        value: spanned.value.0,
        line: spanned.referenced.line(),
        column: spanned.referenced.column(),
    }
}

/// A node's value without its span; the span comes from the `Spanned` around it.
struct Raw(NodeValue);

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Raw, E> {
        Ok(Raw(NodeValue::Bool(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Raw, E> {
        Ok(Raw(NodeValue::Int(v)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Raw, E> {
        i64::try_from(v)
            .map(|v| Raw(NodeValue::Int(v)))
            .map_err(|_| E::custom(format!("integer {v} is too large")))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Raw, E> {
        i64::try_from(v)
            .map(|v| Raw(NodeValue::Int(v)))
            .map_err(|_| E::custom(format!("integer {v} is too large")))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Raw, E> {
        i64::try_from(v)
            .map(|v| Raw(NodeValue::Int(v)))
            .map_err(|_| E::custom(format!("integer {v} is too large")))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Raw, E> {
        Ok(Raw(NodeValue::Float(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Raw, E> {
        Ok(Raw(NodeValue::Str(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Raw, E> {
        Ok(Raw(NodeValue::Str(v)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Raw, E> {
        Ok(Raw(NodeValue::Null))
    }

    fn visit_none<E: de::Error>(self) -> Result<Raw, E> {
        Ok(Raw(NodeValue::Null))
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Raw, D::Error> {
        Raw::deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Raw>>()? {
            items.push(into_node(item));
        }
        Ok(Raw(NodeValue::Seq(items)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<KeyText>>()? {
            let value = map.next_value::<Spanned<Raw>>()?;
            let key = Key {
                name: key.value.0,
                line: key.referenced.line(),
                column: key.referenced.column(),
            };
            entries.push((key, into_node(value)));
        }
        Ok(Raw(NodeValue::Map(entries)))
    }
}

/// A map key as text. Keys that are lists or maps are refused.
struct KeyText(String);

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(KeyVisitor)
    }
}

struct KeyVisitor;

impl Visitor<'_> for KeyVisitor {
    type Value = KeyText;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a scalar map key")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<KeyText, E> {
        Ok(KeyText(v.to_string()))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<KeyText, E> {
        Ok(KeyText(v.to_string()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<KeyText, E> {
        Ok(KeyText(v.to_string()))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<KeyText, E> {
        Ok(KeyText(v.to_string()))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<KeyText, E> {
        Ok(KeyText(v.to_string()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<KeyText, E> {
        Ok(KeyText(v.to_string()))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<KeyText, E> {
        Ok(KeyText(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<KeyText, E> {
        Ok(KeyText(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<KeyText, E> {
        Ok(KeyText("null".to_owned()))
    }

    fn visit_none<E: de::Error>(self) -> Result<KeyText, E> {
        Ok(KeyText("null".to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(node: &Node) -> (u64, u64) {
        (node.line, node.column)
    }

    fn map(node: &Node) -> &[(Key, Node)] {
        match &node.value {
            NodeValue::Map(entries) => entries,
            other => panic!("expected a map, found {other:?}"),
        }
    }

    fn seq(node: &Node) -> &[Node] {
        match &node.value {
            NodeValue::Seq(items) => items,
            other => panic!("expected a list, found {other:?}"),
        }
    }

    #[test]
    fn nested_spans_are_kept() {
        let text = "\
version: 1
routes:
  - name: a
    match: { status: ended, n: [1, 2.5] }
targets:
  crm:
    url: \"https://x\"
";
        let root = parse(text).unwrap();
        assert_eq!(at(&root), (1, 1));
        let top = map(&root);
        assert_eq!(top[0].0.name, "version");
        assert_eq!((top[0].0.line, top[0].0.column), (1, 1));
        assert_eq!(top[0].1.value, NodeValue::Int(1));
        assert_eq!(at(&top[0].1), (1, 10));

        let routes = seq(&top[1].1);
        assert_eq!(at(&routes[0]), (3, 5));
        let route = map(&routes[0]);
        assert_eq!(route[0].0.name, "name");
        assert_eq!((route[0].0.line, route[0].0.column), (3, 5));
        assert_eq!(at(&route[0].1), (3, 11));
        let m = map(&route[1].1);
        assert_eq!(at(&route[1].1), (4, 12));
        assert_eq!((m[0].0.line, m[0].0.column), (4, 14));
        assert_eq!(m[0].1.value, NodeValue::Str("ended".into()));
        assert_eq!(at(&m[0].1), (4, 22));
        let n = seq(&m[1].1);
        assert_eq!(at(&m[1].1), (4, 32));
        assert_eq!(n[0].value, NodeValue::Int(1));
        assert_eq!(at(&n[0]), (4, 33));
        assert_eq!(n[1].value, NodeValue::Float(2.5));
        assert_eq!(at(&n[1]), (4, 36));

        let targets = map(&top[2].1);
        assert_eq!((targets[0].0.line, targets[0].0.column), (6, 3));
        let crm = map(&targets[0].1);
        assert_eq!(at(&crm[0].1), (7, 10));
        assert_eq!(crm[0].1.value, NodeValue::Str("https://x".into()));
    }

    #[test]
    fn core_schema_scalars() {
        let root = parse("a: no\nb: yes\nc: off\nd: true\ne: ~\nf: -7\ng: '1'\nh: 0x1f\n").unwrap();
        let values: Vec<_> = map(&root).iter().map(|(_, v)| v.value.clone()).collect();
        assert_eq!(
            values,
            vec![
                NodeValue::Str("no".into()),
                NodeValue::Str("yes".into()),
                NodeValue::Str("off".into()),
                NodeValue::Bool(true),
                NodeValue::Null,
                NodeValue::Int(-7),
                NodeValue::Str("1".into()),
                NodeValue::Int(31),
            ]
        );
    }

    #[test]
    fn non_string_keys_become_text() {
        let root = parse("200: a\ntrue: b\n").unwrap();
        let names: Vec<_> = map(&root).iter().map(|(k, _)| k.name.as_str()).collect();
        assert_eq!(names, ["200", "true"]);
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let err = parse("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(err.line, 3, "{err:?}");
        assert!(err.message.contains("duplicate"), "{err:?}");
    }

    #[test]
    fn syntax_errors_have_a_location_and_no_snippet() {
        let err = parse("a: 1\nb: [1, 2\nc: 3\n").unwrap_err();
        assert!(err.line >= 2, "{err:?}");
        assert!(err.column > 0, "{err:?}");
        assert!(!err.message.contains('\n'), "{err:?}");
        assert!(err.message.starts_with("invalid YAML: "), "{err:?}");
    }

    #[test]
    fn empty_documents_are_null() {
        assert_eq!(parse("").unwrap().value, NodeValue::Null);
        assert_eq!(parse("# nothing\n\n").unwrap().value, NodeValue::Null);
    }

    #[test]
    fn anchors_and_aliases_expand() {
        let root = parse("a: &x { k: 1 }\nb: *x\n").unwrap();
        let entries = map(&root);
        let (a, b) = (map(&entries[0].1), map(&entries[1].1));
        assert_eq!(a[0].0.name, b[0].0.name);
        assert_eq!(a[0].1.value, b[0].1.value);
    }
}
