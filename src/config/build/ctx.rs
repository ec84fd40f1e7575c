//! The state of one build walk: where diagnostics go, how strings are
//! substituted, and typed readers for maps and scalars.
//!
//! Every reader reports its own problem (with the node's line, column and key
//! path) and returns `None`; callers fall back to a default and keep walking,
//! so one run finds every error. A reader never puts a string *value* into a
//! message unless the caller says it is not a secret.

use std::path::{Path, PathBuf};

use super::super::diagnostic::{Diagnostic, Severity};
use super::super::env::{self, EnvError, Substituted};
use super::super::node::{Key, Node, NodeValue};
use super::values::{did_you_mean, list_keys};
use crate::templates::{Escape, TemplateRef, TemplateSet};

/// A place in the file: 1-based line and column (0 when unknown).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::config) struct Pos {
    pub line: u64,
    pub column: u64,
}

impl From<&Node> for Pos {
    fn from(n: &Node) -> Self {
        Pos {
            line: n.line,
            column: n.column,
        }
    }
}

impl From<&Key> for Pos {
    fn from(k: &Key) -> Self {
        Pos {
            line: k.line,
            column: k.column,
        }
    }
}

/// `parent.key`, or `key` at the root.
pub(in crate::config) fn child(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// `parent[i]`.
pub(in crate::config) fn index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

/// A problem found by a parser of a string value: what is wrong, what to do.
#[derive(Debug)]
pub(in crate::config) struct Problem {
    pub message: String,
    pub help: Option<String>,
}

impl Problem {
    pub fn new(message: impl Into<String>) -> Self {
        Problem {
            message: message.into(),
            help: None,
        }
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

pub(in crate::config) struct Ctx<'a> {
    file: PathBuf,
    allow_missing_env: bool,
    lookup: &'a dyn Fn(&str) -> Option<String>,
    pub diagnostics: Vec<Diagnostic>,
    pub templates: TemplateSet,
}

impl<'a> Ctx<'a> {
    pub fn new(
        file: &Path,
        allow_missing_env: bool,
        lookup: &'a dyn Fn(&str) -> Option<String>,
    ) -> Self {
        Ctx {
            file: file.to_path_buf(),
            allow_missing_env,
            lookup,
            diagnostics: Vec::new(),
            templates: TemplateSet::new(),
        }
    }

    fn push(
        &mut self,
        severity: Severity,
        at: Pos,
        path: &str,
        message: String,
        help: Option<String>,
    ) {
        self.diagnostics.push(Diagnostic {
            severity,
            file: self.file.clone(),
            line: at.line,
            column: at.column,
            key_path: path.to_owned(),
            message,
            help,
        });
    }

    pub fn error(&mut self, at: impl Into<Pos>, path: &str, message: impl Into<String>) {
        self.push(Severity::Error, at.into(), path, message.into(), None);
    }

    pub fn error_help(
        &mut self,
        at: impl Into<Pos>,
        path: &str,
        message: impl Into<String>,
        help: impl Into<String>,
    ) {
        self.push(
            Severity::Error,
            at.into(),
            path,
            message.into(),
            Some(help.into()),
        );
    }

    pub fn problem(&mut self, at: impl Into<Pos>, path: &str, problem: Problem) {
        self.push(
            Severity::Error,
            at.into(),
            path,
            problem.message,
            problem.help,
        );
    }

    pub fn warn(&mut self, at: impl Into<Pos>, path: &str, message: impl Into<String>) {
        self.push(Severity::Warning, at.into(), path, message.into(), None);
    }

    pub fn warn_help(
        &mut self,
        at: impl Into<Pos>,
        path: &str,
        message: impl Into<String>,
        help: impl Into<String>,
    ) {
        self.push(
            Severity::Warning,
            at.into(),
            path,
            message.into(),
            Some(help.into()),
        );
    }

    pub fn has_errors(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|d| d.severity == Severity::Error)
    }

    /// "expected X, found Y" (never showing the value itself).
    pub fn type_error(&mut self, node: &Node, path: &str, expected: &str) {
        let found = node.value.kind();
        let help = match (&node.value, expected) {
            (NodeValue::Int(_) | NodeValue::Float(_) | NodeValue::Bool(_), "a string") => {
                Some("quote the value to make it a string".to_owned())
            }
            _ => None,
        };
        self.push(
            Severity::Error,
            node.into(),
            path,
            format!("expected {expected}, found {found}"),
            help,
        );
    }

    // ---- maps --------------------------------------------------------------

    /// Read a map whose valid keys are `allowed`; every other key is an error
    /// with a "did you mean" help. `None` (after an error) if it is not a map.
    pub fn fields<'n>(
        &mut self,
        node: &'n Node,
        path: &str,
        allowed: &[&str],
    ) -> Option<Fields<'n>> {
        let fields = self.any_map(node, path)?;
        for (key, _) in fields.entries {
            if !allowed.contains(&key.name.as_str()) {
                self.unknown_key(key, &fields.path, allowed);
            }
        }
        Some(fields)
    }

    /// Read a map without checking its keys (names chosen by the user).
    pub fn any_map<'n>(&mut self, node: &'n Node, path: &str) -> Option<Fields<'n>> {
        match &node.value {
            NodeValue::Map(entries) => Some(Fields {
                path: path.to_owned(),
                node,
                entries,
            }),
            _ => {
                self.type_error(node, path, "a map");
                None
            }
        }
    }

    /// "unknown key `x`", with the nearest valid key as help.
    pub fn unknown_key(&mut self, key: &Key, parent: &str, allowed: &[&str]) {
        let help = match did_you_mean(&key.name, allowed.iter().copied()) {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!("valid keys here: {}", list_keys(allowed)),
        };
        self.error_help(
            key,
            &child(parent, &key.name),
            format!("unknown key `{}`", key.name),
            help,
        );
    }

    pub fn list<'n>(&mut self, node: &'n Node, path: &str) -> Option<&'n [Node]> {
        match &node.value {
            NodeValue::Seq(items) => Some(items),
            _ => {
                self.type_error(node, path, "a list");
                None
            }
        }
    }

    // ---- strings -----------------------------------------------------------

    /// A string value with `${VAR}` substituted.
    pub fn text(&mut self, node: &Node, path: &str) -> Option<Substituted> {
        match &node.value {
            NodeValue::Str(raw) => self.substitute(node, path, raw),
            _ => {
                self.type_error(node, path, "a string");
                None
            }
        }
    }

    pub(super) fn substitute(&mut self, node: &Node, path: &str, raw: &str) -> Option<Substituted> {
        match env::substitute(raw, self.allow_missing_env, self.lookup) {
            Ok(s) => Some(s),
            Err(EnvError::Missing(vars)) => {
                for var in vars {
                    self.error_help(
                        node,
                        path,
                        format!("environment variable `{var}` is not set"),
                        format!(
                            "set it, give a default with `${{{var}:-default}}`, \
                             or check with --allow-missing-env"
                        ),
                    );
                }
                None
            }
            Err(EnvError::Malformed { message }) => {
                self.error(node, path, message);
                None
            }
        }
    }

    pub fn string(&mut self, node: &Node, path: &str) -> Option<String> {
        self.text(node, path).map(|s| s.value)
    }

    /// A string, substituted, then parsed by `parse`. When the value still
    /// holds an unset `${VAR}` (`allow_missing_env`) and does not parse, it is
    /// not an error: `None`, and the caller uses a stand-in.
    pub fn parse<T>(
        &mut self,
        node: &Node,
        path: &str,
        parse: impl FnOnce(&str) -> Result<T, Problem>,
    ) -> Option<T> {
        self.parse_or_standin(node, path, parse, || None)
    }

    /// Like [`Ctx::parse`], but a value that does not parse because it still
    /// holds an unset `${VAR}` becomes `standin()` (a placeholder that lets
    /// `check --allow-missing-env` build the rest of the config).
    pub fn parse_or_standin<T>(
        &mut self,
        node: &Node,
        path: &str,
        parse: impl FnOnce(&str) -> Result<T, Problem>,
        standin: impl FnOnce() -> Option<T>,
    ) -> Option<T> {
        let text = self.text(node, path)?;
        match parse(&text.value) {
            Ok(v) => Some(v),
            Err(_) if !text.unresolved.is_empty() => standin(),
            Err(problem) => {
                self.problem(node, path, problem);
                None
            }
        }
    }

    /// One of a fixed set of words.
    pub fn choice(
        &mut self,
        node: &Node,
        path: &str,
        options: &[&'static str],
    ) -> Option<&'static str> {
        if !matches!(node.value, NodeValue::Str(_)) {
            self.type_error(node, path, &format!("one of {}", list_keys(options)));
            return None;
        }
        self.parse(node, path, |s| {
            options.iter().copied().find(|o| *o == s).ok_or_else(|| {
                let p = Problem::new(format!(
                    "expected one of {}, found `{s}`",
                    list_keys(options)
                ));
                match did_you_mean(s, options.iter().copied()) {
                    Some(m) => p.help(format!("did you mean `{m}`?")),
                    None => p,
                }
            })
        })
    }

    /// A string compiled as a template; compile errors are reported here.
    pub fn template(&mut self, node: &Node, path: &str, escape: Escape) -> Option<TemplateRef> {
        let source = self.string(node, path)?;
        match self.templates.add(&source, escape) {
            Ok(t) => Some(t),
            Err(e) => {
                self.error_help(
                    node,
                    path,
                    format!("invalid template: {}", e.message),
                    "templates are minijinja: `{{ data.status }}`, `{% if … %}…{% endif %}`, \
                     minijinja's filters plus `tojson` and `slack_escape` \
                     (docs/rules.md, section Templates)",
                );
                None
            }
        }
    }
}

/// A map being read: its key path and entries.
pub(in crate::config) struct Fields<'n> {
    pub path: String,
    pub node: &'n Node,
    pub entries: &'n [(Key, Node)],
}

impl<'n> Fields<'n> {
    /// The entry for `key`, if present (a `null` value counts as present).
    pub fn entry(&self, key: &str) -> Option<&'n (Key, Node)> {
        self.entries.iter().find(|(k, _)| k.name == key)
    }

    /// The value of `key`; absent or `null` is `None`.
    pub fn get(&self, key: &str) -> Option<&'n Node> {
        self.entry(key)
            .map(|(_, v)| v)
            .filter(|v| v.value != NodeValue::Null)
    }

    pub fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// The key path of `key` in this map.
    pub fn path(&self, key: &str) -> String {
        child(&self.path, key)
    }

    /// The value of `key`, or an error at this map saying it is required.
    pub fn required(&self, cx: &mut Ctx<'_>, key: &str) -> Option<&'n Node> {
        let found = self.get(key);
        if found.is_none() {
            let at: Pos = match self.entry(key) {
                Some((_, v)) => v.into(),
                None => self.node.into(),
            };
            cx.error(at, &self.path(key), format!("`{key}` is required"));
        }
        found
    }

    /// Read `key` with `read` when present and not `null`.
    pub fn opt<T>(
        &self,
        cx: &mut Ctx<'_>,
        key: &str,
        read: impl FnOnce(&mut Ctx<'_>, &'n Node, &str) -> Option<T>,
    ) -> Option<T> {
        let node = self.get(key)?;
        read(cx, node, &self.path(key))
    }

    /// Read required `key` with `read`.
    pub fn req<T>(
        &self,
        cx: &mut Ctx<'_>,
        key: &str,
        read: impl FnOnce(&mut Ctx<'_>, &'n Node, &str) -> Option<T>,
    ) -> Option<T> {
        let node = self.required(cx, key)?;
        read(cx, node, &self.path(key))
    }
}
