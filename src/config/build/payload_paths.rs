//! Payload paths as the file writes them (`data.endedReason`, `status`):
//! resolved into segments, and checked against the OutRival event's fields.
//! Route match keys and a target's `ordering.key` are both such paths.

use super::ctx::{Ctx, Pos};
use super::values::{did_you_mean, list_keys};

/// Top-level fields of the OutRival event (DESIGN.md section 1).
const OUTRIVAL_FIELDS: &[&str] = &["event", "type", "companionId", "data"];

/// `status` is `data.status`; other paths are dotted, from the payload root.
/// `what` names the path in the message (`match key`, `ordering key`).
pub(super) fn payload_path(
    cx: &mut Ctx<'_>,
    at: Pos,
    path: &str,
    written: &str,
    what: &str,
) -> Option<Vec<String>> {
    if written == "status" {
        return Some(vec!["data".to_owned(), "status".to_owned()]);
    }
    let parts: Vec<String> = written.split('.').map(str::to_owned).collect();
    if parts.iter().any(String::is_empty) {
        cx.error_help(
            at,
            path,
            format!("invalid {what} `{written}`"),
            "write a dotted path from the payload root, e.g. `data.endedReason` or `data.messages.0.role`",
        );
        return None;
    }
    Some(parts)
}

/// Warn when `parts` does not start at a field of the OutRival event (a
/// misspelled path cannot be an error: payloads may carry any field).
pub(super) fn warn_unless_outrival(cx: &mut Ctx<'_>, at: Pos, path: &str, parts: &[String]) {
    let Some(first) = parts.first() else { return };
    if OUTRIVAL_FIELDS.contains(&first.as_str()) {
        return;
    }
    let help = match did_you_mean(first, OUTRIVAL_FIELDS.iter().copied().chain(["status"])) {
        Some(s) => format!("did you mean `{s}`?"),
        None => format!(
            "OutRival events have {} (and `status` for `data.status`)",
            list_keys(OUTRIVAL_FIELDS)
        ),
    };
    cx.warn_help(
        at,
        path,
        format!("`{first}` is not a field of an OutRival event"),
        help,
    );
}
