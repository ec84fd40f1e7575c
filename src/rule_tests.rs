//! `hookgate test`: rule tests for CI, in the spirit of `amtool config routes
//! test` and `vector test`. A YAML file of cases, each an event and what must
//! happen to it (routes matched in order, targets that get a delivery, text
//! a target's rendered message contains), run through the same dry run as
//! `hookgate route` ([`crate::preview`]); nothing is sent.
//!
//! The file (DESIGN.md section 10):
//!
//! ```yaml
//! tests:
//!   - name: an ended voice call reaches the CRM
//!     event: events/ended.json          # relative to this file; or `body:` inline
//!     source: outrival                  # required when the config has several sources
//!     headers: { x-signature: "…" }     # optional (routing reads only the body)
//!     expect:
//!       routes: [ended-calls]           # matched, in order; [] = nothing matched
//!       targets: [crm, audit]           # get a delivery, any order
//!       render: { ops-slack: { contains: "is ended" } }
//! ```
//!
//! Unknown keys are errors with file, line and column, as in the config.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::config::Config;
use crate::config::node::{yaml_error, yaml_options};
use crate::preview::{self, Preview, Send};

/// Why a tests file could not be used at all.
#[derive(Debug, thiserror::Error)]
pub enum RuleTestsError {
    #[error("cannot read {path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{}", place(path, *line, *column, message))]
    Invalid {
        path: PathBuf,
        line: u64,
        column: u64,
        message: String,
    },
}

/// `path:line:column: message`, or `path: message` where no place is known.
fn place(path: &Path, line: u64, column: u64, message: &str) -> String {
    if line == 0 {
        format!("{}: {message}", path.display())
    } else {
        format!("{}:{line}:{column}: {message}", path.display())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    tests: Vec<Spanned<CaseSpec>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseSpec {
    name: String,
    #[serde(default)]
    event: Option<String>,
    #[serde(default)]
    body: Option<serde_json::Value>,
    #[serde(default)]
    source: Option<String>,
    /// As the provider would send them; checked to be header names, but
    /// routing reads only the body.
    #[serde(default)]
    headers: BTreeMap<String, String>,
    expect: Expect,
}

/// What must happen to a case's event; each part is checked only if given.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    #[serde(default)]
    pub routes: Option<Vec<String>>,
    #[serde(default)]
    pub targets: Option<Vec<String>>,
    #[serde(default)]
    pub render: BTreeMap<String, RenderExpect>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenderExpect {
    pub contains: String,
}

/// One case, its event read.
#[derive(Debug)]
pub struct Case {
    pub name: String,
    pub body: Vec<u8>,
    pub source: Option<String>,
    pub expect: Expect,
}

/// Read a tests file and the event files it names (relative to it).
pub fn load(path: &Path) -> Result<Vec<Case>, RuleTestsError> {
    let text = std::fs::read_to_string(path).map_err(|error| RuleTestsError::Read {
        path: path.to_owned(),
        error,
    })?;
    let invalid = |line, column, message: String| RuleTestsError::Invalid {
        path: path.to_owned(),
        line,
        column,
        message,
    };
    let file: File = serde_saphyr::from_str_with_options(&text, yaml_options()).map_err(|e| {
        let e = yaml_error(&e);
        invalid(e.line, e.column, e.message)
    })?;
    if file.tests.is_empty() {
        // A CI job that tests nothing must not pass.
        return Err(invalid(
            0,
            0,
            "`tests` is empty: write at least one case".to_owned(),
        ));
    }
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let mut cases = Vec::with_capacity(file.tests.len());
    for (i, spanned) in file.tests.into_iter().enumerate() {
        let (line, column) = (spanned.referenced.line(), spanned.referenced.column());
        let spec = spanned.value;
        let e = &spec.expect;
        if e.routes.is_none() && e.targets.is_none() && e.render.is_empty() {
            return Err(invalid(
                line,
                column,
                format!(
                    "tests[{i}].expect: give `routes`, `targets` or `render` (a case that checks nothing always passes)"
                ),
            ));
        }
        if let Some(bad) = spec
            .headers
            .keys()
            .find(|h| http::HeaderName::from_bytes(h.as_bytes()).is_err())
        {
            return Err(invalid(
                line,
                column,
                format!("tests[{i}].headers: `{bad}` is not a valid header name"),
            ));
        }
        let body = match (spec.event, spec.body) {
            (Some(event), None) => {
                let event_path = dir.join(&event);
                std::fs::read(&event_path).map_err(|error| {
                    invalid(
                        line,
                        column,
                        format!(
                            "tests[{i}].event: cannot read {}: {error}",
                            event_path.display()
                        ),
                    )
                })?
            }
            (None, Some(body)) => serde_json::to_vec(&body)
                .map_err(|e| invalid(line, column, format!("tests[{i}].body: {e}")))?,
            _ => {
                return Err(invalid(
                    line,
                    column,
                    format!(
                        "tests[{i}]: give the event as `event: FILE` or `body: {{...}}`, exactly one of them"
                    ),
                ));
            }
        };
        cases.push(Case {
            name: spec.name,
            body,
            source: spec.source,
            expect: spec.expect,
        });
    }
    Ok(cases)
}

/// A case's outcome: what differed from its expectations (empty: it passed).
#[derive(Debug)]
pub struct Outcome {
    pub name: String,
    pub differences: Vec<String>,
}

impl Outcome {
    pub fn passed(&self) -> bool {
        self.differences.is_empty()
    }
}

/// Run every case against `config`.
pub fn run(config: &Config, cases: &[Case]) -> Vec<Outcome> {
    cases
        .iter()
        .map(|case| Outcome {
            name: case.name.clone(),
            differences: if case.source.is_none() && config.sources.len() > 1 {
                let names: Vec<&str> = config.sources.iter().map(|s| s.name.as_str()).collect();
                vec![format!(
                    "the config has several sources: name one with `source:` ({})",
                    names.join(", ")
                )]
            } else {
                match preview::preview(config, &case.body, case.source.as_deref()) {
                    Ok(p) => differences(&p, &case.expect),
                    Err(e) => vec![format!("the event was not routed: {e}")],
                }
            },
        })
        .collect()
}

fn differences(p: &Preview, expect: &Expect) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(routes) = &expect.routes {
        let got: Vec<&str> = p
            .routes
            .iter()
            .filter(|r| r.result == "matched")
            .map(|r| r.name.as_str())
            .collect();
        if got != routes.iter().map(String::as_str).collect::<Vec<_>>() {
            out.push(format!(
                "routes: expected {}, got {}",
                list(routes.iter().map(String::as_str)),
                list(got.into_iter())
            ));
        }
    }
    if let Some(targets) = &expect.targets {
        let want: BTreeSet<&str> = targets.iter().map(String::as_str).collect();
        let got: BTreeSet<&str> = p.deliveries.iter().map(|d| d.target.as_str()).collect();
        if want != got {
            let mut line = format!(
                "targets: expected {}, got {}",
                list(want.iter().copied()),
                list(got.iter().copied())
            );
            let skipped: Vec<&str> = p
                .skipped
                .iter()
                .filter(|s| want.contains(s.target.as_str()))
                .map(|s| s.target.as_str())
                .collect();
            if !skipped.is_empty() {
                let _ = write!(
                    line,
                    " ({} get nothing: disabled)",
                    list(skipped.into_iter())
                );
            }
            out.push(line);
        }
    }
    for (target, want) in &expect.render {
        let send = p
            .deliveries
            .iter()
            .find(|d| &d.target == target)
            .map(|d| &d.send)
            .or_else(|| {
                p.skipped
                    .iter()
                    .find(|s| &s.target == target)
                    .map(|s| &s.send)
            });
        match send.map(rendered) {
            None => out.push(format!("render {target}: no route sends this event to it")),
            Some(Err(e)) => out.push(format!("render {target}: {e}")),
            Some(Ok(text)) if !text.contains(&want.contains) => out.push(format!(
                "render {target}: expected it to contain {:?}, rendered {:?}",
                want.contains, text
            )),
            Some(Ok(_)) => {}
        }
    }
    out
}

/// The text a `contains` is checked against: an HTTP body, a Slack
/// message's `text` (its whole JSON without one), an email's subject and
/// body. A log target renders nothing (it writes the event as received).
fn rendered(send: &Send) -> Result<String, String> {
    match send {
        Send::Http { body, .. } => Ok(body.clone()),
        Send::Slack { message } => Ok(match message.get("text").and_then(|t| t.as_str()) {
            Some(text) => text.to_owned(),
            None => message.to_string(),
        }),
        Send::Email { subject, body, .. } => Ok(format!("{subject}\n{body}")),
        Send::Log => {
            Err("a log target renders no message (it writes the event as received)".to_owned())
        }
        Send::RenderError { error } => Err(format!("the template failed: {error}")),
    }
}

fn list<'a>(names: impl Iterator<Item = &'a str>) -> String {
    format!("[{}]", names.collect::<Vec<_>>().join(", "))
}

/// The report, one line per case (`ok NAME` or `FAILED NAME` and what
/// differed, indented), then `N passed, M failed`.
pub fn report(outcomes: &[Outcome]) -> String {
    let mut out = String::new();
    for o in outcomes {
        if o.passed() {
            let _ = writeln!(out, "ok {}", o.name);
        } else {
            let _ = writeln!(out, "FAILED {}", o.name);
            for d in &o.differences {
                let _ = writeln!(out, "    {d}");
            }
        }
    }
    let failed = outcomes.iter().filter(|o| !o.passed()).count();
    let _ = writeln!(out, "{} passed, {failed} failed", outcomes.len() - failed);
    out
}
