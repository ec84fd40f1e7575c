//! Value syntaxes shared by every section: durations, sizes, names, socket
//! addresses, rate limits, and the "did you mean" suggestion.

use std::net::SocketAddr;
use std::time::Duration;

use super::super::model::RateLimit;
use super::super::node::{Node, NodeValue};
use super::ctx::{Ctx, Problem};

/// The candidate nearest to `word`, if it is near enough to be a likely typo.
pub(in crate::config) fn did_you_mean<'c>(
    word: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    let lower = word.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| {
            let cl = c.to_ascii_lowercase();
            let mut score = strsim::jaro_winkler(&lower, &cl);
            // `url` for `webhook_url`, `path` for `path_prefix`: a whole word of the key.
            if cl.split('_').any(|part| part == lower) {
                score = score.max(0.85);
            }
            (score, c)
        })
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// "`a`, `b`, `c`".
pub(in crate::config) fn list_keys(keys: &[&str]) -> String {
    keys.iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Names of sources, targets and routes: `[A-Za-z0-9][A-Za-z0-9_.-]*`.
pub(in crate::config) fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

pub(in crate::config) const NAME_HELP: &str =
    "names start with a letter or digit and hold only letters, digits, `_`, `.` and `-`";

/// A humantime duration string (`250ms`, `10s`, `5m`, `2h`); the integer `0` is
/// also accepted.
pub(in crate::config) fn duration(cx: &mut Ctx<'_>, node: &Node, path: &str) -> Option<Duration> {
    if node.value == NodeValue::Int(0) {
        return Some(Duration::ZERO);
    }
    if let NodeValue::Int(_) | NodeValue::Float(_) = node.value {
        cx.error_help(
            node,
            path,
            "expected a duration, found a number without a unit",
            "write a duration with a unit, e.g. `250ms`, `10s`, `5m`, `2h`",
        );
        return None;
    }
    cx.parse(node, path, |s| {
        humantime::parse_duration(s.trim()).map_err(|e| {
            Problem::new(format!("invalid duration `{s}`: {e}"))
                .help("write a duration with a unit, e.g. `250ms`, `10s`, `5m`, `2h`")
        })
    })
}

/// A duration that must not be zero.
pub(in crate::config) fn positive_duration(
    cx: &mut Ctx<'_>,
    node: &Node,
    path: &str,
) -> Option<Duration> {
    let d = duration(cx, node, path)?;
    if d.is_zero() {
        cx.error(node, path, "must be greater than 0");
        return None;
    }
    Some(d)
}

/// Bytes: an integer, or a string with a unit (`10MiB`, `8GiB`, `10MB`, `100B`).
pub(in crate::config) fn size(cx: &mut Ctx<'_>, node: &Node, path: &str) -> Option<u64> {
    match node.value {
        NodeValue::Int(i) => match u64::try_from(i) {
            Ok(v) => Some(v),
            Err(_) => {
                cx.error(node, path, "a size cannot be negative");
                None
            }
        },
        NodeValue::Str(_) => cx.parse(node, path, parse_size),
        _ => {
            cx.type_error(node, path, "a size (bytes, or a string like `10MiB`)");
            None
        }
    }
}

const SIZE_UNITS: &[(&str, u64)] = &[
    ("B", 1),
    ("KB", 1000),
    ("MB", 1000 * 1000),
    ("GB", 1000 * 1000 * 1000),
    ("TB", 1000 * 1000 * 1000 * 1000),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("TiB", 1 << 40),
];

pub(in crate::config) fn parse_size(s: &str) -> Result<u64, Problem> {
    let s = s.trim();
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let help = "write bytes as an integer, or with a unit: B, KB, MB, GB, TB (powers of 1000) \
                or KiB, MiB, GiB, TiB (powers of 1024)";
    let number: u64 = s[..digits]
        .parse()
        .map_err(|_| Problem::new(format!("invalid size `{s}`")).help(help))?;
    let unit = s[digits..].trim();
    let factor = if unit.is_empty() {
        1
    } else {
        SIZE_UNITS
            .iter()
            .find(|(u, _)| *u == unit)
            .map(|(_, f)| *f)
            .ok_or_else(|| {
                Problem::new(format!("invalid size `{s}`: unknown unit `{unit}`")).help(help)
            })?
    };
    number
        .checked_mul(factor)
        .ok_or_else(|| Problem::new(format!("size `{s}` is too large")))
}

pub(in crate::config) fn socket_addr(
    cx: &mut Ctx<'_>,
    node: &Node,
    path: &str,
) -> Option<SocketAddr> {
    cx.parse(node, path, |s| {
        s.trim().parse::<SocketAddr>().map_err(|_| {
            Problem::new(format!("invalid listen address `{s}`"))
                .help("write an IP address and a port, e.g. `0.0.0.0:8080` or `[::1]:8080`")
        })
    })
}

pub(super) const RATE_LIMIT_KEYS: &[&str] = &["per_second", "burst"];

/// `{ per_second, burst }`: per_second > 0, burst >= 1 (default: per_second).
pub(in crate::config) fn rate_limit(
    cx: &mut Ctx<'_>,
    node: &Node,
    path: &str,
) -> Option<RateLimit> {
    let f = cx.fields(node, path, RATE_LIMIT_KEYS)?;
    let per_second = f.req(cx, "per_second", |cx, n, p| cx.uint::<u32>(n, p, 1));
    let burst = f.opt(cx, "burst", |cx, n, p| cx.uint::<u32>(n, p, 1));
    let per_second = per_second?;
    Some(RateLimit {
        per_second,
        burst: burst.unwrap_or(per_second),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        let cases: &[(&str, Option<u64>)] = &[
            ("100", Some(100)),
            ("100B", Some(100)),
            ("512KiB", Some(512 * 1024)),
            ("10MiB", Some(10 * 1024 * 1024)),
            ("8GiB", Some(8 << 30)),
            ("1TiB", Some(1 << 40)),
            ("10MB", Some(10_000_000)),
            ("2KB", Some(2000)),
            ("3GB", Some(3_000_000_000)),
            ("10 MiB", Some(10 << 20)),
            ("10mib", None),
            ("MiB", None),
            ("-1", None),
            ("1.5GiB", None),
            ("99999999999999999999TiB", None),
            ("9999999999TiB", None),
        ];
        for (s, want) in cases {
            assert_eq!(parse_size(s).ok(), *want, "{s}");
        }
    }

    #[test]
    fn names() {
        for ok in ["a", "crm", "ops-slack", "A1_b.c-d", "9lives"] {
            assert!(is_valid_name(ok), "{ok}");
        }
        for bad in ["", "-a", "_a", ".a", "a b", "a/b", "é"] {
            assert!(!is_valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn suggestions() {
        let keys = ["listen", "max_body_bytes", "read_timeout"];
        assert_eq!(did_you_mean("listen", keys), Some("listen"));
        assert_eq!(did_you_mean("read_timout", keys), Some("read_timeout"));
        assert_eq!(did_you_mean("zzz", keys), None);
        assert_eq!(
            did_you_mean("url", ["webhook_url", "text"]),
            Some("webhook_url")
        );
    }
}
