//! `kind: email` targets: SMTP settings, addresses and the message templates.

use std::time::Duration;

use lettre::message::Mailbox;

use super::super::super::model::{EmailTarget, SmtpConfig, SmtpTls};
use super::super::super::node::Node;
use super::super::super::secret::Secret;
use super::super::ctx::{Ctx, Fields, Pos, Problem, index};
use super::super::values::positive_duration;
use super::not_a_template;
use crate::templates::Escape;

pub(super) const KEYS: &[&str] = &["smtp", "from", "to", "subject", "body", "html"];
const SMTP_KEYS: &[&str] = &["host", "port", "tls", "username", "password", "timeout"];

pub(super) fn email(cx: &mut Ctx<'_>, f: &Fields<'_>) -> Option<EmailTarget> {
    let smtp = f.req(cx, "smtp", smtp);
    let from = f.req(cx, "from", mailbox);
    let to = f.req(cx, "to", recipients);
    let subject = f.req(cx, "subject", |cx, n, p| cx.template(n, p, Escape::None));
    let body = f.req(cx, "body", |cx, n, p| cx.template(n, p, Escape::None));
    let html = f.opt(cx, "html", |cx, n, p| cx.template(n, p, Escape::Html));
    if f.has("html") && html.is_none() {
        return None; // reported
    }
    Some(EmailTarget {
        smtp: smtp?,
        from: from?,
        to: to?,
        subject: subject?,
        body: body?,
        html,
    })
}

fn smtp(cx: &mut Ctx<'_>, node: &Node, path: &str) -> Option<SmtpConfig> {
    let f = cx.fields(node, path, SMTP_KEYS)?;
    let host = f.req(cx, "host", |cx, n, p| {
        cx.parse(n, p, |s| {
            let s = s.trim();
            if s.is_empty() || s.contains(char::is_whitespace) {
                Err(Problem::new("invalid SMTP host"))
            } else {
                Ok(s.to_owned())
            }
        })
    });
    let tls_set = f.has("tls");
    let tls = f.opt(cx, "tls", |cx, n, p| {
        cx.choice(n, p, &["none", "starttls", "tls"])
            .map(|s| match s {
                "none" => SmtpTls::None,
                "tls" => SmtpTls::Tls,
                _ => SmtpTls::Starttls,
            })
    });
    let tls_ok = !tls_set || tls.is_some();
    let tls = tls.unwrap_or(SmtpTls::Starttls);
    let port = f
        .opt(cx, "port", |cx, n, p| cx.uint::<u16>(n, p, 1))
        .unwrap_or(match tls {
            SmtpTls::None => 25,
            SmtpTls::Starttls => 587,
            SmtpTls::Tls => 465,
        });
    let username = f
        .opt(cx, "username", |cx, n, p| cx.string(n, p))
        .filter(|u| !u.is_empty());
    let password = f
        .opt(cx, "password", |cx, n, p| cx.string(n, p))
        .filter(|p| !p.is_empty())
        .map(Secret::new);
    let timeout = f
        .opt(cx, "timeout", positive_duration)
        .unwrap_or(Duration::from_secs(30));
    // lettre needs both; an empty value (an unset `${SMTP_PASSWORD:-}`) counts as absent.
    let credentials_ok = match (&username, &password) {
        (Some(_), None) => missing_credential(cx, &f, node, "password", "username"),
        (None, Some(_)) => missing_credential(cx, &f, node, "username", "password"),
        _ => true,
    };
    if !(tls_ok && credentials_ok) {
        return None;
    }
    Some(SmtpConfig {
        host: host?,
        port,
        tls,
        username,
        password,
        timeout,
    })
}

fn missing_credential(
    cx: &mut Ctx<'_>,
    f: &Fields<'_>,
    smtp: &Node,
    missing: &str,
    set: &str,
) -> bool {
    let at: Pos = f
        .get(missing)
        .or_else(|| f.get(set))
        .map_or(smtp.into(), Pos::from);
    cx.error_help(
        at,
        &f.path(missing),
        format!("`{set}` is set but `{missing}` is missing or empty"),
        "give both `username` and `password`, or neither",
    );
    false
}

fn mailbox(cx: &mut Ctx<'_>, node: &Node, path: &str) -> Option<Mailbox> {
    cx.parse_or_standin(
        node,
        path,
        |s| {
            if let Some(problem) = not_a_template(s, "address") {
                return Err(problem);
            }
            s.trim().parse::<Mailbox>().map_err(|e| {
                Problem::new(format!("invalid email address `{s}`: {e}"))
                    .help("write `name@example.com` or `Name <name@example.com>`")
            })
        },
        || "unresolved@unresolved.invalid".parse().ok(),
    )
}

fn recipients(cx: &mut Ctx<'_>, node: &Node, path: &str) -> Option<Vec<Mailbox>> {
    let items = cx.list(node, path)?;
    if items.is_empty() {
        cx.error(node, path, "`to` needs at least one address");
        return None;
    }
    let mut out = Vec::with_capacity(items.len());
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        match mailbox(cx, item, &index(path, i)) {
            Some(m) => out.push(m),
            None => ok = false,
        }
    }
    ok.then_some(out)
}
