//! `${VAR}` and `${VAR:-default}` substitution in config string values.
//!
//! Substitution runs on one parsed YAML string at a time, never on the raw
//! file text, so a variable whose value looks like YAML stays a plain string.
//! The rules:
//!
//! - `${VAR}`: the variable's value (an empty value is kept); an error when it
//!   is unset, unless `allow_missing_env`, which leaves the literal `${VAR}`.
//! - `${VAR:-default}`: the default when the variable is unset *or empty*, as in
//!   a shell. The default is literal text up to the first `}` (no nesting).
//! - `$${` is a literal `${`. A `$` anywhere else is an ordinary character
//!   (scanning left to right, so `$$${X}` is `$` followed by a literal `${X}`).
//! - Names are `[A-Za-z_][A-Za-z0-9_]*`; any other `${…}` form is an error.
//!
//! One pass only: a variable's value is never itself substituted.

/// The result of substituting one string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Substituted {
    pub value: String,
    /// Every variable the string refers to, in order (for help messages).
    pub vars: Vec<String>,
    /// With `allow_missing_env`: variables left as their literal `${VAR}` text.
    /// A value holding them is not checked further (URLs, addresses, …).
    pub unresolved: Vec<String>,
}

/// Why a string could not be substituted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EnvError {
    /// These variables are referenced without a default and are not set.
    Missing(Vec<String>),
    /// A `${` that does not start a valid reference.
    Malformed { message: String },
}

/// Substitute every reference in `raw`.
pub(crate) fn substitute(
    raw: &str,
    allow_missing: bool,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Substituted, EnvError> {
    let mut out = Substituted {
        value: String::with_capacity(raw.len()),
        vars: Vec::new(),
        unresolved: Vec::new(),
    };
    let mut missing = Vec::new();
    let mut rest = raw;
    while let Some(i) = rest.find('$') {
        out.value.push_str(&rest[..i]);
        let after = &rest[i..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.value.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            let (reference, tail) = parse_reference(tail)?;
            out.vars.push(reference.name.to_owned());
            match (lookup(reference.name), reference.default) {
                (Some(v), Some(default)) if v.is_empty() => out.value.push_str(default),
                (Some(v), _) => out.value.push_str(&v),
                (None, Some(default)) => out.value.push_str(default),
                (None, None) if allow_missing => {
                    out.value.push_str("${");
                    out.value.push_str(reference.name);
                    out.value.push('}');
                    out.unresolved.push(reference.name.to_owned());
                }
                (None, None) => {
                    if !missing.iter().any(|m| m == reference.name) {
                        missing.push(reference.name.to_owned());
                    }
                }
            }
            rest = tail;
        } else {
            out.value.push('$');
            rest = &after[1..];
        }
    }
    out.value.push_str(rest);
    if missing.is_empty() {
        Ok(out)
    } else {
        Err(EnvError::Missing(missing))
    }
}

/// The variable names `raw` refers to (ignoring malformed references).
pub(crate) fn referenced_vars(raw: &str) -> Vec<String> {
    match substitute(raw, true, &|_| None) {
        Ok(s) => s.vars,
        Err(_) => Vec::new(),
    }
}

struct Reference<'a> {
    name: &'a str,
    default: Option<&'a str>,
}

/// Parse `NAME}` or `NAME:-default}` (the text after `${`); returns the rest.
fn parse_reference(text: &str) -> Result<(Reference<'_>, &str), EnvError> {
    let name_len = text
        .char_indices()
        .find(|&(i, c)| !(c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())))
        .map_or(text.len(), |(i, _)| i);
    let name = &text[..name_len];
    let after = &text[name_len..];
    let malformed = |what: &str| EnvError::Malformed {
        message: format!(
            "malformed variable reference `${{{}`: {what} (write `$${{` for a literal `${{`)",
            shorten(text)
        ),
    };
    if name.is_empty() {
        return Err(malformed("expected a variable name"));
    }
    if let Some(tail) = after.strip_prefix('}') {
        return Ok((
            Reference {
                name,
                default: None,
            },
            tail,
        ));
    }
    if let Some(tail) = after.strip_prefix(":-") {
        return match tail.find('}') {
            Some(end) => Ok((
                Reference {
                    name,
                    default: Some(&tail[..end]),
                },
                &tail[end + 1..],
            )),
            None => Err(malformed("missing `}`")),
        };
    }
    if after.is_empty() {
        return Err(malformed("missing `}`"));
    }
    Err(malformed("expected `}` or `:-default}` after the name"))
}

/// At most the first 20 characters of a reference, for messages.
fn shorten(text: &str) -> String {
    let end = text.find('}').map_or(text.len(), |i| i + 1);
    text[..end].chars().take(20).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(name: &str) -> Option<String> {
        match name {
            "SET" => Some("value".into()),
            "EMPTY" => Some(String::new()),
            "YAML" => Some("a: [1, 2]\nb: ${SET}".into()),
            _ => None,
        }
    }

    fn sub(raw: &str) -> Result<String, EnvError> {
        substitute(raw, false, &lookup).map(|s| s.value)
    }

    #[test]
    fn substitution_table() {
        let cases: &[(&str, &str)] = &[
            ("plain", "plain"),
            ("${SET}", "value"),
            ("a-${SET}-b", "a-value-b"),
            ("${SET}${SET}", "valuevalue"),
            ("${EMPTY}", ""),
            ("${UNSET:-dflt}", "dflt"),
            ("${EMPTY:-dflt}", "dflt"),
            ("${SET:-dflt}", "value"),
            ("${UNSET:-}", ""),
            ("${UNSET:-a b:c}", "a b:c"),
            ("$${SET}", "${SET}"),
            ("cost $5 and $", "cost $5 and $"),
            ("$$", "$$"),
            ("$$${SET}", "$${SET}"), // left to right: `$`, then `$${`
            ("${YAML}", "a: [1, 2]\nb: ${SET}"),
            ("Bearer ${SET}", "Bearer value"),
        ];
        for (raw, want) in cases {
            assert_eq!(sub(raw).as_deref(), Ok(*want), "{raw}");
        }
    }

    #[test]
    fn unset_variables_are_errors_naming_them() {
        assert_eq!(
            sub("${NOPE} and ${ALSO_NOPE} and ${NOPE}"),
            Err(EnvError::Missing(vec!["NOPE".into(), "ALSO_NOPE".into()]))
        );
        assert_eq!(sub("${NOPE}"), Err(EnvError::Missing(vec!["NOPE".into()])));
    }

    #[test]
    fn malformed_references_are_errors() {
        for raw in [
            "${", "${}", "${1X}", "${SET", "${SET:-x", "${SET-x}", "${{ x }}",
        ] {
            assert!(
                matches!(sub(raw), Err(EnvError::Malformed { .. })),
                "{raw}: {:?}",
                sub(raw)
            );
        }
    }

    #[test]
    fn allow_missing_keeps_the_literal() {
        let s = substitute("x ${NOPE} ${SET} ${NOPE2:-d}", true, &lookup).unwrap();
        assert_eq!(s.value, "x ${NOPE} value d");
        assert_eq!(s.unresolved, vec!["NOPE".to_owned()]);
        assert_eq!(s.vars, vec!["NOPE", "SET", "NOPE2"]);
    }

    #[test]
    fn referenced_vars_lists_names() {
        assert_eq!(referenced_vars("${A:-} $${B} ${C}"), vec!["A", "C"]);
    }
}
