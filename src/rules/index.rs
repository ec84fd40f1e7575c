//! The route index: which routes could possibly match an event, found without
//! looking at every route.
//!
//! Most routes pin `event`, `type` or `status` (= `data.status`) to one or a
//! few strings. At compile time each route is filed under one such *anchor*
//! (the first of `event`, `status`, `type` it pins); a route with no anchor
//! (or an `any:` alternative without one) goes on the always-checked list. At
//! match time the candidates are the routes filed under the event's own
//! `event`, `status` and `type` values plus the always-checked ones, in file
//! order; each candidate is then evaluated in full. A route that is not a
//! candidate cannot match (its anchor test fails), so the result is exactly
//! that of an in-order scan, at a cost that depends on how many routes share
//! the event's values, not on how many routes there are.

use std::collections::HashMap;

use serde_json::Value;

use crate::config::{Condition, FieldMatch, FieldTest, Route};

/// The keys routes are filed under, in order of preference.
const ANCHORS: [&[&str]; 3] = [&["event"], &["data", "status"], &["type"]];

#[derive(Debug, Default)]
pub(super) struct RouteIndex {
    /// Per anchor key (same order as [`ANCHORS`]): value → route indexes, ascending.
    by_value: [HashMap<Box<str>, Vec<u32>>; 3],
    /// Routes that must always be evaluated, ascending.
    always: Vec<u32>,
}

impl RouteIndex {
    pub(super) fn build(routes: &[Route]) -> RouteIndex {
        let mut index = RouteIndex::default();
        for (i, route) in routes.iter().enumerate() {
            let i = u32::try_from(i).unwrap_or(u32::MAX);
            let anchors: Option<Vec<(usize, &[Value])>> = match &route.condition {
                Condition::All(fields) => anchor(fields).map(|a| vec![a]),
                Condition::Any(maps) => maps.iter().map(|m| anchor(m)).collect(),
            };
            match anchors {
                Some(list) if !list.is_empty() => {
                    for (key, values) in list {
                        for v in values {
                            if let Value::String(s) = v {
                                let routes =
                                    index.by_value[key].entry(s.as_str().into()).or_default();
                                if routes.last() != Some(&i) {
                                    routes.push(i);
                                }
                            }
                        }
                    }
                }
                _ => index.always.push(i),
            }
        }
        index
    }

    /// The routes that could match `event`, ascending and without repeats.
    pub(super) fn candidates(&self, event: &Value, out: &mut Vec<u32>) {
        out.clear();
        out.extend_from_slice(&self.always);
        let mut sources = 1;
        for (key, path) in ANCHORS.iter().enumerate() {
            if let Some(Value::String(s)) = super::lookup(event, path)
                && let Some(routes) = self.by_value[key].get(s.as_str())
            {
                out.extend_from_slice(routes);
                sources += 1;
            }
        }
        if sources > 1 {
            out.sort_unstable();
            out.dedup();
        }
    }
}

/// The anchor of one match map: the first of [`ANCHORS`] that it pins to a
/// list of strings with an `eq`/`in`/scalar/list test.
fn anchor(fields: &[FieldMatch]) -> Option<(usize, &[Value])> {
    ANCHORS.iter().enumerate().find_map(|(key, path)| {
        fields
            .iter()
            .filter(|f| f.path.iter().map(String::as_str).eq(path.iter().copied()))
            .flat_map(|f| f.tests.iter())
            .find_map(|t| match t {
                FieldTest::OneOf(values) if values.iter().all(Value::is_string) => {
                    Some((key, values.as_slice()))
                }
                _ => None,
            })
    })
}
