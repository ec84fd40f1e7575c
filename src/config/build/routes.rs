//! `routes` and `unmatched`: match conditions compiled into [`FieldTest`]s and
//! target names resolved into [`TargetId`]s.

use std::collections::HashMap;

use regex::Regex;
use serde_json::Value;

use super::super::model::{Condition, FieldMatch, FieldTest, Route, TargetId};
use super::super::node::{Key, Node, NodeValue};
use super::contradictions::contradiction;
use super::ctx::{Ctx, Pos, child, index};
use super::payload_paths::{payload_path, warn_unless_outrival};
use super::targets::TargetNames;
use super::values::{NAME_HELP, did_you_mean, is_valid_name, list_keys};

pub(super) const ROUTE_KEYS: &[&str] = &["name", "match", "any", "targets", "stop"];
pub(super) const OPERATORS: &[&str] = &[
    "eq", "in", "not", "prefix", "suffix", "contains", "regex", "exists", "gt", "gte", "lt", "lte",
];

/// Reads routes, resolving target names and marking the targets they use.
pub(super) struct Resolver<'t> {
    pub targets: &'t TargetNames,
    /// `used[i]`: target `i` is named by a route or by `unmatched`.
    pub used: Vec<bool>,
    /// Warn on match keys that are not OutRival fields (every source is `schema: outrival`).
    pub outrival_keys: bool,
}

impl<'t> Resolver<'t> {
    pub fn new(targets: &'t TargetNames, outrival_keys: bool) -> Self {
        Resolver {
            targets,
            used: vec![false; targets.len()],
            outrival_keys,
        }
    }

    pub fn routes(&mut self, cx: &mut Ctx<'_>, node: Option<&Node>) -> Vec<Route> {
        let Some(items) = node.and_then(|n| cx.list(n, "routes")) else {
            return Vec::new();
        };
        if let Some(n) = node
            && items.len() > MAX_ROUTES
        {
            cx.error(
                n,
                "routes",
                format!(
                    "{} routes is more than the {MAX_ROUTES} one file may have",
                    items.len()
                ),
            );
            return Vec::new();
        }
        let mut names: HashMap<String, usize> = HashMap::new();
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            if let Some(r) = self.route(cx, item, &index("routes", i), i, &mut names) {
                out.push(r);
            }
        }
        out
    }

    fn route(
        &mut self,
        cx: &mut Ctx<'_>,
        node: &Node,
        path: &str,
        i: usize,
        names: &mut HashMap<String, usize>,
    ) -> Option<Route> {
        let f = cx.fields(node, path, ROUTE_KEYS)?;
        let name = f.req(cx, "name", |cx, n, p| {
            let name = cx.string(n, p)?;
            if !is_valid_name(&name) {
                cx.error_help(n, p, format!("invalid route name `{name}`"), NAME_HELP);
                return None;
            }
            if name == "unmatched" {
                cx.error_help(
                    n,
                    p,
                    "the route name `unmatched` is reserved",
                    "`unmatched` names the fallback (x-hookgate-route); choose another name",
                );
                return None;
            }
            if let Some(first) = names.insert(name.clone(), i) {
                cx.error(
                    n,
                    p,
                    format!("duplicate route name `{name}` (first used by routes[{first}])"),
                );
                return None;
            }
            Some(name)
        });
        let present = |k: &str| f.entry(k).filter(|(_, v)| v.value != NodeValue::Null);
        let condition = match (present("match"), present("any")) {
            (Some((_, m)), None) => self
                .map_condition(cx, m, &f.path("match"))
                .map(Condition::All),
            (None, Some((_, a))) => self.any_condition(cx, a, &f.path("any")),
            (Some(_), Some((k, _))) => {
                cx.error_help(
                    k,
                    &f.path("any"),
                    "a route has `match` or `any`, not both",
                    "move the `match` conditions into each map of `any`",
                );
                None
            }
            (None, None) => {
                cx.error_help(
                    f.node,
                    &f.path("match"),
                    "a route needs `match` or `any`",
                    "use `match: {}` to match every event",
                );
                None
            }
        };
        let targets = f.req(cx, "targets", |cx, n, p| {
            let items = cx.list(n, p)?;
            if items.is_empty() {
                cx.error(n, p, "a route needs at least one target");
                return None;
            }
            self.target_list(cx, items, p)
        });
        let stop = f.opt(cx, "stop", |cx, n, p| cx.bool(n, p)).unwrap_or(false);
        Some(Route {
            name: name?,
            condition: condition?,
            targets: targets?,
            stop,
        })
    }

    /// `unmatched: [names]`; absent means none.
    pub fn unmatched(&mut self, cx: &mut Ctx<'_>, node: Option<&Node>) -> Vec<TargetId> {
        let Some(items) = node.and_then(|n| cx.list(n, "unmatched")) else {
            return Vec::new();
        };
        self.target_list(cx, items, "unmatched").unwrap_or_default()
    }

    /// Target names → ids (duplicates dropped), marking them used.
    fn target_list(
        &mut self,
        cx: &mut Ctx<'_>,
        items: &[Node],
        path: &str,
    ) -> Option<Vec<TargetId>> {
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            match self.target_ref(cx, item, &index(path, i)) {
                Some(id) if !out.contains(&id) => out.push(id),
                Some(_) => {}
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn target_ref(&mut self, cx: &mut Ctx<'_>, node: &Node, path: &str) -> Option<TargetId> {
        let name = cx.string(node, path)?;
        if let Some(i) = self.targets.iter().position(|(n, _)| *n == name) {
            self.used[i] = true;
            return Some(TargetId(i));
        }
        let help = match did_you_mean(&name, self.targets.iter().map(|(n, _)| n.as_str())) {
            Some(s) => format!("did you mean `{s}`?"),
            None if self.targets.is_empty() => "no targets are defined under `targets`".to_owned(),
            None => {
                let all: Vec<&str> = self.targets.iter().map(|(n, _)| n.as_str()).collect();
                format!("defined targets: {}", list_keys(&all))
            }
        };
        cx.error_help(node, path, format!("unknown target `{name}`"), help);
        None
    }

    fn any_condition(&mut self, cx: &mut Ctx<'_>, node: &Node, path: &str) -> Option<Condition> {
        let items = cx.list(node, path)?;
        if items.is_empty() {
            cx.warn_help(
                node,
                path,
                "this route can never match: `any` is empty",
                "add a map of conditions, or use `match: {}` to match every event",
            );
        }
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            match self.map_condition(cx, item, &index(path, i)) {
                Some(m) => out.push(m),
                None => ok = false,
            }
        }
        ok.then_some(Condition::Any(out))
    }

    /// One match map: every key must hold.
    fn map_condition(
        &mut self,
        cx: &mut Ctx<'_>,
        node: &Node,
        path: &str,
    ) -> Option<Vec<FieldMatch>> {
        let f = cx.any_map(node, path)?;
        let mut out = Vec::with_capacity(f.entries.len());
        let mut ok = true;
        for (key, value) in f.entries {
            match self.field_match(cx, key, value, &child(path, &key.name)) {
                Some(m) => out.push(m),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn field_match(
        &mut self,
        cx: &mut Ctx<'_>,
        key: &Key,
        value: &Node,
        path: &str,
    ) -> Option<FieldMatch> {
        let field_path = payload_path(cx, Pos::from(key), path, &key.name, "match key")?;
        if self.outrival_keys {
            warn_unless_outrival(cx, Pos::from(key), path, &field_path);
        }
        let tests = match &value.value {
            NodeValue::Map(_) => operators(cx, value, path)?,
            NodeValue::Seq(_) => vec![FieldTest::OneOf(one_of_list(cx, value, path)?)],
            _ => vec![FieldTest::OneOf(vec![scalar(cx, value, path)?])],
        };
        if let Some(why) = contradiction(&tests) {
            cx.warn_help(
                value,
                path,
                format!("this condition can never hold: {why}"),
                "the route it belongs to will never match; fix or remove the condition",
            );
        }
        Some(FieldMatch {
            key: key.name.clone(),
            path: field_path,
            tests,
        })
    }
}

/// `{ eq: v, in: [..], not: .., prefix: s, … }`: every operator must hold.
fn operators(cx: &mut Ctx<'_>, node: &Node, path: &str) -> Option<Vec<FieldTest>> {
    let f = cx.any_map(node, path)?;
    if f.entries.is_empty() {
        cx.error_help(
            node,
            path,
            "an operator map needs at least one operator",
            format!("operators: {}", list_keys(OPERATORS)),
        );
        return None;
    }
    let mut out = Vec::with_capacity(f.entries.len());
    let mut ok = true;
    for (key, value) in f.entries {
        let p = child(path, &key.name);
        let test = match key.name.as_str() {
            "eq" => scalar(cx, value, &p).map(|v| FieldTest::OneOf(vec![v])),
            "in" => one_of_list(cx, value, &p).map(FieldTest::OneOf),
            "not" => match value.value {
                NodeValue::Seq(_) => scalar_list(cx, value, &p),
                _ => scalar(cx, value, &p).map(|v| vec![v]),
            }
            .map(FieldTest::NoneOf),
            "prefix" => cx.string(value, &p).map(FieldTest::Prefix),
            "suffix" => cx.string(value, &p).map(FieldTest::Suffix),
            "contains" => cx.string(value, &p).map(FieldTest::Contains),
            "regex" => regex(cx, value, &p).map(FieldTest::Regex),
            "exists" => cx.bool(value, &p).map(FieldTest::Exists),
            "gt" => cx.number(value, &p).map(FieldTest::Gt),
            "gte" => cx.number(value, &p).map(FieldTest::Gte),
            "lt" => cx.number(value, &p).map(FieldTest::Lt),
            "lte" => cx.number(value, &p).map(FieldTest::Lte),
            other => {
                let help = match did_you_mean(other, OPERATORS.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!("operators: {}", list_keys(OPERATORS)),
                };
                cx.error_help(key, &p, format!("unknown operator `{other}`"), help);
                None
            }
        };
        match test {
            Some(t) => out.push(t),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

/// The most routes one file may have (each event is matched against them).
pub(super) const MAX_ROUTES: usize = 10_000;
/// A `matches` regex's compiled size and nesting (the regex crate's own
/// defaults are 10 MiB and 250): a pattern is matched against every event.
const REGEX_SIZE_LIMIT: usize = 1 << 20;
const REGEX_NEST_LIMIT: u32 = 64;

fn regex(cx: &mut Ctx<'_>, node: &Node, path: &str) -> Option<Regex> {
    let source = cx.string(node, path)?;
    let built = regex::RegexBuilder::new(&source)
        .size_limit(REGEX_SIZE_LIMIT)
        .nest_limit(REGEX_NEST_LIMIT)
        .build();
    match built {
        Ok(r) => Some(r),
        Err(e) => {
            cx.error(node, path, format!("invalid regex: {}", regex_message(&e)));
            None
        }
    }
}

/// The regex crate's message without its multi-line pointer drawing.
fn regex_message(e: &regex::Error) -> String {
    let text = e.to_string();
    text.lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .map_or_else(
            || text.split_whitespace().collect::<Vec<_>>().join(" "),
            str::to_owned,
        )
}

/// The values of a list or `in`: equal to one of them. An empty list can
/// never hold (a warning); an empty `not` list always holds, so it does not
/// come through here.
fn one_of_list(cx: &mut Ctx<'_>, node: &Node, path: &str) -> Option<Vec<Value>> {
    if matches!(&node.value, NodeValue::Seq(items) if items.is_empty()) {
        cx.warn(node, path, "an empty list never matches");
    }
    scalar_list(cx, node, path)
}

/// A list of scalars.
fn scalar_list(cx: &mut Ctx<'_>, node: &Node, path: &str) -> Option<Vec<Value>> {
    let items = cx.list(node, path)?;
    let mut out = Vec::with_capacity(items.len());
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        match scalar(cx, item, &index(path, i)) {
            Some(v) => out.push(v),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

/// A YAML scalar as the JSON value it is compared with (never coerced).
fn scalar(cx: &mut Ctx<'_>, node: &Node, path: &str) -> Option<Value> {
    match &node.value {
        NodeValue::Null => Some(Value::Null),
        NodeValue::Bool(b) => Some(Value::Bool(*b)),
        NodeValue::Int(i) => Some(Value::from(*i)),
        NodeValue::Float(f) => serde_json::Number::from_f64(*f)
            .map(Value::Number)
            .or_else(|| {
                cx.error(node, path, "expected a finite number");
                None
            }),
        NodeValue::Str(_) => cx.string(node, path).map(Value::String),
        NodeValue::Seq(_) | NodeValue::Map(_) => {
            cx.type_error(node, path, "a scalar (string, number, boolean or null)");
            None
        }
    }
}
