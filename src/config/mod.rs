//! Configuration: a YAML file in, a validated, typed [`Config`] out.
//!
//! Loading happens in two stages, like ripgrep's flags or Vector's config:
//!
//! 1. [`node`] parses the YAML (1.2 core schema, via serde-saphyr) into a tree of
//!    [`node::Node`]s that remember their line and column.
//! 2. [`build`] walks that tree once: it resolves `${VAR}` / `${VAR:-default}` on
//!    string values ([`env`]), rejects unknown keys (suggesting the nearest valid
//!    one), parses durations, sizes and addresses, compiles regexes and templates,
//!    resolves target references and applies defaults. It keeps going after an
//!    error, so the user sees every problem in one run.
//!
//! Every problem is a [`Diagnostic`] with file, line, column and key path
//! (`routes[3].match.status`, indexes from 0). The result is a [`Config`]
//! (see [`model`]) that nothing downstream needs to check again.
//!
//! This module is pure: it reads the file it is given and the environment
//! lookup it is handed, and does nothing else.

mod build;
mod diagnostic;
mod env;
pub mod model;
pub(crate) mod node;
mod secret;

use std::path::Path;

pub use diagnostic::{ConfigError, Diagnostic, Severity};
pub use model::*;
pub use secret::{Secret, SigningKey, WhsecError, redacted_url};

/// How to resolve `${VAR}` references while loading.
pub struct LoadOptions<'a> {
    /// Leave an unset `${VAR}` as its literal text instead of failing
    /// (`check --allow-missing-env`, so CI can validate without secrets).
    pub allow_missing_env: bool,
    /// Looks a variable up; `std::env::var` in production, a map in tests.
    pub lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl LoadOptions<'static> {
    /// Resolve variables from the process environment.
    pub fn from_process_env(allow_missing_env: bool) -> Self {
        LoadOptions {
            allow_missing_env,
            lookup: &|name| std::env::var(name).ok(),
        }
    }
}

/// A valid config and the warnings found while loading it.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<Diagnostic>,
}

/// Read and validate the config file at `path`.
pub fn load_file(path: &Path, options: &LoadOptions<'_>) -> Result<Loaded, ConfigError> {
    let bytes = std::fs::read(path).map_err(|e| ConfigError::io(path, &e))?;
    load_bytes(path, &bytes, options)
}

/// Validate config text as if it had been read from `path`.
pub fn load_bytes(
    path: &Path,
    bytes: &[u8],
    options: &LoadOptions<'_>,
) -> Result<Loaded, ConfigError> {
    build::build(path, bytes, options)
}

/// A one-paragraph human summary of a valid config, for `hookgate check`.
pub fn summary(config: &Config) -> String {
    let disabled = config.targets.iter().filter(|t| !t.enabled).count();
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    let mut out = format!(
        "{}: OK ({}, {} ({} disabled), {})",
        config.file.display(),
        plural(config.sources.len(), "source"),
        plural(config.targets.len(), "target"),
        disabled,
        plural(config.routes.len(), "route"),
    );
    for s in &config.sources {
        out.push_str(&format!("\n  source {} at {}", s.name, s.path));
    }
    for t in &config.targets {
        let state = if t.enabled { "" } else { " (disabled)" };
        let ordered = t
            .ordering
            .as_ref()
            .map(|o| format!(", ordered by {}", o.key))
            .unwrap_or_default();
        out.push_str(&format!(
            "\n  target {} [{}]{ordered}{state}",
            t.name,
            t.kind_name()
        ));
    }
    for r in &config.routes {
        let targets: Vec<&str> = r
            .targets
            .iter()
            .map(|&id| config.target(id).name.as_str())
            .collect();
        let stop = if r.stop { ", stop" } else { "" };
        out.push_str(&format!(
            "\n  route {} -> {}{stop}",
            r.name,
            targets.join(", ")
        ));
    }
    if !config.unmatched.is_empty() {
        let targets: Vec<&str> = config
            .unmatched
            .iter()
            .map(|&id| config.target(id).name.as_str())
            .collect();
        out.push_str(&format!("\n  unmatched -> {}", targets.join(", ")));
    }
    out
}
