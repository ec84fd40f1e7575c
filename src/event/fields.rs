//! Parsing only what is read: a [`FieldSet`] of payload paths (the routes'
//! match keys and the schema's fields), and a parse that builds those parts of
//! the body into a `serde_json::Value` and skips the rest.
//!
//! Why: an OutRival event is mostly chat messages that no rule reads, and
//! building them into a `Value` (a string, map or vector allocated for every
//! part) was the largest cost of ingress after the kernel's. The parts skipped
//! are still parsed in full ([`Skip`]: every number read, so one out of range
//! is refused; every string decoded, so a bad escape or a lone surrogate is
//! refused), only nothing is kept, so a body is refused exactly when the full
//! parse would refuse it.
//!
//! What the pruned value holds, for a path of the set: exactly what the full
//! parse holds there (`lookup` answers the same). Elsewhere: object members no
//! path names are left out; array elements no path names keep only their
//! kind (`{}`, `[]`, `""`, or the number, boolean or null itself), so the
//! schema can still tell that every `data.messages` entry is an object.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use crate::config::{Condition, Route};

/// The payload paths to keep when parsing an event, as a tree of segments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet {
    root: Node,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Node {
    /// A path ends here: keep the whole value.
    whole: bool,
    /// Members (or, by index, elements) that lead to a kept path.
    children: BTreeMap<String, Node>,
}

impl FieldSet {
    /// Keep everything: the plain full parse (for `hookgate route`, which shows
    /// the whole event to templates).
    pub fn everything() -> FieldSet {
        FieldSet {
            root: Node {
                whole: true,
                children: BTreeMap::new(),
            },
        }
    }

    /// What routing by `routes` reads, plus what the schema checks read.
    pub fn for_routes(routes: &[Route]) -> FieldSet {
        let mut fields = FieldSet::default();
        for path in super::SCHEMA_FIELDS {
            fields.insert(path);
        }
        for shaped in super::SCHEMA_SHAPES {
            fields.reach(shaped);
        }
        for route in routes {
            let maps: &[Vec<crate::config::FieldMatch>] = match &route.condition {
                Condition::All(fields) => std::slice::from_ref(fields),
                Condition::Any(maps) => maps,
            };
            for field in maps.iter().flatten() {
                fields.insert(&field.path);
            }
        }
        fields
    }

    /// Keep the whole value at `path` (an empty path keeps everything).
    pub fn insert<S: AsRef<str>>(&mut self, path: &[S]) {
        if let Some(node) = self.reach(path) {
            node.whole = true;
            node.children.clear();
        }
    }

    /// Make `path` part of the tree, so its value keeps at least its kind and
    /// the kinds of its elements (`data.messages`). Returns its node, or
    /// `None` when a shorter path already keeps the whole value.
    fn reach<S: AsRef<str>>(&mut self, path: &[S]) -> Option<&mut Node> {
        let mut node = &mut self.root;
        for segment in path {
            if node.whole {
                return None;
            }
            node = node
                .children
                .entry(segment.as_ref().to_owned())
                .or_default();
        }
        (!node.whole).then_some(node)
    }

    /// Parse one JSON value from `de`, keeping the paths of this set.
    pub fn parse<'de, D: Deserializer<'de>>(&self, de: D) -> Result<Value, D::Error> {
        Pruned(&self.root).deserialize(de)
    }
}

/// Parse a value at `node` of the tree.
struct Pruned<'n>(&'n Node);

impl<'de> DeserializeSeed<'de> for Pruned<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Value, D::Error> {
        if self.0.whole {
            Value::deserialize(de)
        } else {
            de.deserialize_any(self)
        }
    }
}

/// Scalars are built as serde_json's own `Value` visitor builds them.
macro_rules! scalar_visits {
    () => {
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
            Ok(Value::Bool(v))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
            Ok(Value::Number(v.into()))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
            Ok(Value::Number(v.into()))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
            Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }
        fn visit_none<E: de::Error>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }
    };
}

impl<'de> Visitor<'de> for Pruned<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    scalar_visits!();

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key_seed(Key)? {
            match self.0.children.get(key.as_ref()) {
                // A repeated key replaces the earlier value, as in the full parse.
                Some(child) => {
                    drop(out.insert(key.into_owned(), map.next_value_seed(Pruned(child))?))
                }
                None => map.next_value_seed(Skip)?,
            }
        }
        Ok(Value::Object(out))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        if self.0.children.is_empty() {
            while let Some(kind) = seq.next_element_seed(Kind)? {
                out.push(kind);
            }
        } else {
            // A path indexes into this array (`data.messages.0.role`). Rare:
            // keep the elements whole rather than mirror how `lookup` reads an
            // index ("0", "00" and "+0" all name the first element).
            while let Some(v) = seq.next_element::<Value>()? {
                out.push(v);
            }
        }
        Ok(Value::Array(out))
    }
}

/// A value kept only for its kind: `{}`, `[]`, `""`, or the scalar itself.
struct Kind;

impl<'de> DeserializeSeed<'de> for Kind {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Value, D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Kind {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    scalar_visits!();

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Value, E> {
        Ok(Value::String(String::new()))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Value, A::Error> {
        Skip.visit_map(map)?;
        Ok(Value::Object(Map::new()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Value, A::Error> {
        Skip.visit_seq(seq)?;
        Ok(Value::Array(Vec::new()))
    }
}

/// A value read in full and kept not at all. Unlike serde's `IgnoredAny`,
/// which serde_json answers by checking only the syntax, it asks for every
/// value (`deserialize_any`), so numbers are converted (`1e400` is out of
/// range) and strings decoded (a lone `\ud800` is refused), as in the full
/// parse. Strings without escapes are borrowed, so nothing is allocated.
struct Skip;

impl<'de> DeserializeSeed<'de> for Skip {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Skip {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_key_seed(Skip)?.is_some() {
            map.next_value_seed(Skip)?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Skip)?.is_some() {}
        Ok(())
    }
}

/// An object key, borrowed from the body when it has no escapes.
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        de.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

#[cfg(test)]
mod tests;
