//! The human-readable report of `hookgate route` (the JSON one is serde's).

use super::{Preview, Send};

impl Preview {
    /// The human-readable report.
    pub fn to_text(&self) -> String {
        let mut out = format!("source: {}\n", self.source);
        for w in &self.schema_warnings {
            out.push_str(&format!(
                "schema warning: {w} (accepted, counted as schema_warning)\n"
            ));
        }
        out.push_str("\nroutes:\n");
        if self.routes.is_empty() {
            out.push_str("  (none)\n");
        }
        for r in &self.routes {
            let line = match r.result {
                "matched" => format!(
                    "  matched        {} -> {}{}",
                    r.name,
                    r.targets.join(", "),
                    if r.stop {
                        "  [stop: evaluation ends here]"
                    } else {
                        ""
                    }
                ),
                "no_match" => format!(
                    "  no match       {}  (failed: {})",
                    r.name,
                    if r.failed_keys.is_empty() {
                        "`any` is empty".to_owned()
                    } else {
                        r.failed_keys.join(" / ")
                    }
                ),
                _ => format!(
                    "  not evaluated  {}  (after `stop` in {})",
                    r.name,
                    self.stopped_by.as_deref().unwrap_or("?")
                ),
            };
            out.push_str(&line);
            out.push('\n');
        }
        if self.unmatched {
            out.push_str("  no route matched: the `unmatched` targets apply\n");
        }
        for s in &self.skipped {
            out.push_str(&format!(
                "  skipped        {} (named by {}): {}\n",
                s.target, s.route, s.reason
            ));
        }
        out.push_str("\ndeliveries:\n");
        if self.deliveries.is_empty() {
            out.push_str("  (none: the event would be stored and answered 202, and go nowhere)\n");
        }
        for d in &self.deliveries {
            out.push_str(&format!(
                "  {} [{}] via route {}\n",
                d.target, d.kind, d.route
            ));
            if let Some(o) = &d.ordering {
                let value = if o.value.is_empty() {
                    "absent: the shared \"no key\" lane"
                } else {
                    o.value.as_str()
                };
                out.push_str(&format!(
                    "    ordered by {}: key {value}, after earlier deliveries of that key\n",
                    o.key
                ));
            }
            describe_send(&mut out, &d.send);
        }
        if !self.skipped.is_empty() {
            out.push_str("\nwould send once enabled:\n");
        }
        for s in &self.skipped {
            out.push_str(&format!(
                "  {} [{}] via route {}\n",
                s.target, s.kind, s.route
            ));
            describe_send(&mut out, &s.send);
        }
        out
    }
}

fn describe_send(out: &mut String, send: &Send) {
    match send {
        Send::Http {
            method,
            url,
            headers,
            body,
        } => {
            out.push_str(&format!("    {method} {url}\n"));
            for (k, v) in headers {
                out.push_str(&format!("    {k}: {v}\n"));
            }
            out.push_str(&format!("\n    {}\n", indent(body)));
        }
        Send::Slack { message } => {
            let json = serde_json::to_string_pretty(message).unwrap_or_default();
            out.push_str(&format!(
                "    POST <slack webhook_url>\n    {}\n",
                indent(&json)
            ));
        }
        Send::Email {
            from,
            to,
            subject,
            body,
            html,
        } => {
            out.push_str(&format!(
                "    From: {from}\n    To: {}\n    Subject: {subject}\n\n    {}\n",
                to.join(", "),
                indent(body)
            ));
            if let Some(html) = html {
                out.push_str(&format!("    --- html ---\n    {}\n", indent(html)));
            }
        }
        Send::Log => out.push_str("    one JSON line with the event\n"),
        Send::RenderError { error } => out.push_str(&format!(
            "    RENDER ERROR (the delivery would be dead-lettered as render_error): {error}\n"
        )),
    }
}

fn indent(text: &str) -> String {
    text.trim_end().replace('\n', "\n    ")
}
