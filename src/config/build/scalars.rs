//! Scalar readers on [`Ctx`]: booleans, integers and numbers.
//!
//! YAML types are not coerced (`"8"` is not an integer), with one exception: a
//! string holding a `${VAR}` reference, standing where a number or a boolean is
//! expected, is substituted and then parsed, as docker-compose users expect
//! (`port: ${SMTP_PORT}`).

use super::super::env::Substituted;
use super::super::node::{Node, NodeValue};
use super::ctx::Ctx;

impl Ctx<'_> {
    /// A string that came from `${VAR}` standing where a number or a boolean
    /// is expected: its substituted text. `None` for any other string.
    fn env_scalar(&mut self, node: &Node, path: &str) -> Option<Option<Substituted>> {
        match &node.value {
            NodeValue::Str(raw) if raw.contains("${") => Some(self.substitute(node, path, raw)),
            _ => None,
        }
    }

    pub fn bool(&mut self, node: &Node, path: &str) -> Option<bool> {
        match &node.value {
            NodeValue::Bool(b) => return Some(*b),
            NodeValue::Str(s) if is_yaml11_bool(s) => {
                self.error_help(
                    node,
                    path,
                    format!("expected `true` or `false`, found the string `{s}`"),
                    "YAML 1.2 booleans are only `true` and `false`",
                );
                return None;
            }
            _ => {}
        }
        if let Some(sub) = self.env_scalar(node, path) {
            let sub = sub?;
            return match sub.value.as_str() {
                "true" => Some(true),
                "false" => Some(false),
                _ if !sub.unresolved.is_empty() => None,
                _ => {
                    self.error(
                        node,
                        path,
                        "expected `true` or `false` from the environment variable",
                    );
                    None
                }
            };
        }
        self.type_error(node, path, "`true` or `false`");
        None
    }

    pub fn int(&mut self, node: &Node, path: &str) -> Option<i64> {
        if let NodeValue::Int(i) = node.value {
            return Some(i);
        }
        if let Some(sub) = self.env_scalar(node, path) {
            let sub = sub?;
            return match sub.value.trim().parse::<i64>() {
                Ok(i) => Some(i),
                Err(_) if !sub.unresolved.is_empty() => None,
                Err(_) => {
                    self.error(
                        node,
                        path,
                        "expected an integer from the environment variable",
                    );
                    None
                }
            };
        }
        self.type_error(node, path, "an integer");
        None
    }

    /// An integer `>= min` that fits `T`.
    pub fn uint<T: TryFrom<i64>>(&mut self, node: &Node, path: &str, min: i64) -> Option<T> {
        let i = self.int(node, path)?;
        if i < min {
            self.error(node, path, format!("must be at least {min}, found {i}"));
            return None;
        }
        match T::try_from(i) {
            Ok(v) => Some(v),
            Err(_) => {
                self.error(node, path, format!("{i} is too large"));
                None
            }
        }
    }

    pub fn number(&mut self, node: &Node, path: &str) -> Option<f64> {
        match node.value {
            NodeValue::Int(i) => return Some(i as f64),
            NodeValue::Float(f) => return Some(f),
            _ => {}
        }
        if let Some(sub) = self.env_scalar(node, path) {
            let sub = sub?;
            return match sub.value.trim().parse::<f64>() {
                Ok(f) if f.is_finite() => Some(f),
                _ if !sub.unresolved.is_empty() => None,
                _ => {
                    self.error(
                        node,
                        path,
                        "expected a number from the environment variable",
                    );
                    None
                }
            };
        }
        self.type_error(node, path, "a number");
        None
    }
}

fn is_yaml11_bool(s: &str) -> bool {
    matches!(
        s.to_ascii_lowercase().as_str(),
        "yes" | "no" | "on" | "off" | "y" | "n"
    )
}
