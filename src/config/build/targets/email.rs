//! `kind: email` targets: SMTP settings, addresses and the message templates.
//!
//! The optional `smtp.ca_file` (PEM roots trusted for the relay) is read and
//! checked here, at load, so a bad path or file is a config error with its
//! position rather than a failed send hours later.

use std::path::PathBuf;
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
pub(super) const SMTP_KEYS: &[&str] = &[
    "host", "port", "tls", "username", "password", "timeout", "ca_file",
];

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
    if let Some(timeout) = f.entry("timeout") {
        // The SMTP exchange has its own bound; a target-level one would be a
        // second, silently ignored setting.
        cx.warn_help(
            &timeout.0,
            &f.path("timeout"),
            "`timeout` does not apply to email targets",
            "set `smtp.timeout` (default 30s), which bounds each attempt",
        );
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
    let port = f.opt(cx, "port", port).unwrap_or(match tls {
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
    let ca_file_set = f.has("ca_file");
    let ca = f.opt(cx, "ca_file", ca_file);
    if let (Some(Some((path, _))), SmtpTls::None) = (&ca, tls)
        && let Some(node) = f.get("ca_file")
    {
        cx.warn_help(
            node,
            &f.path("ca_file"),
            format!("`{}` is not used: `tls` is `none`", path.display()),
            "use `tls: starttls` or `tls: tls`, or remove `ca_file`",
        );
    }
    // lettre needs both; an empty value (an unset `${SMTP_PASSWORD:-}`) counts as absent.
    let credentials_ok = match (&username, &password) {
        (Some(_), None) => missing_credential(cx, &f, node, "password", "username"),
        (None, Some(_)) => missing_credential(cx, &f, node, "username", "password"),
        _ => true,
    };
    if let (SmtpTls::None, Some(_), Some(node)) = (tls, &username, f.get("password"))
        && password.is_some()
    {
        cx.warn_help(
            node,
            &f.path("password"),
            "the password is sent in clear text: `tls` is `none`",
            "use `tls: starttls` or `tls: tls` unless the relay is on this host or a trusted network",
        );
    }
    if !(tls_ok && credentials_ok) || (ca_file_set && ca.is_none()) {
        return None;
    }
    let (ca_file, ca_certs) = match ca.flatten() {
        Some((path, certs)) => (Some(path), certs),
        None => (None, Vec::new()),
    };
    Some(SmtpConfig {
        host: host?,
        port,
        tls,
        username,
        password,
        timeout,
        ca_file,
        ca_certs,
    })
}

/// An SMTP port: 1 to 65535.
fn port(cx: &mut Ctx<'_>, node: &Node, path: &str) -> Option<u16> {
    let i = cx.int(node, path)?;
    match u16::try_from(i) {
        Ok(port) if port > 0 => Some(port),
        _ => {
            cx.error_help(
                node,
                path,
                format!("port {i} is out of range"),
                "an SMTP port is 1 to 65535: usually 587 (starttls), 465 (tls) or 25 (none)",
            );
            None
        }
    }
}

/// `ca_file`: read the PEM file now and keep its certificates (DER), each
/// checked to be usable as a trust anchor. `Some(None)`: the path still holds
/// an unset `${VAR}` (`--allow-missing-env`), so there is nothing to read.
#[allow(clippy::type_complexity)]
fn ca_file(cx: &mut Ctx<'_>, node: &Node, path: &str) -> Option<Option<(PathBuf, Vec<Vec<u8>>)>> {
    let text = cx.text(node, path)?;
    if !text.unresolved.is_empty() {
        return Some(None);
    }
    let file = PathBuf::from(text.value.trim());
    match read_pem_certificates(&file) {
        Ok(certs) => Some(Some((file, certs))),
        Err(problem) => {
            cx.problem(node, path, problem);
            None
        }
    }
}

/// The certificates of a PEM file, as DER, or what is wrong with the file.
fn read_pem_certificates(file: &std::path::Path) -> Result<Vec<Vec<u8>>, Problem> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    let shown = file.display();
    let bytes = std::fs::read(file).map_err(|e| {
        Problem::new(format!("cannot read the CA file `{shown}`: {e}")).help(
            "give the path of a PEM file of CA certificates \
             (a relative path is taken from the working directory)",
        )
    })?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            Problem::new(format!("`{shown}` is not a valid PEM file: {e}"))
                .help("the file must hold `-----BEGIN CERTIFICATE-----` blocks")
        })?;
    if certs.is_empty() {
        return Err(Problem::new(format!("`{shown}` holds no PEM certificate"))
            .help("the file must hold `-----BEGIN CERTIFICATE-----` blocks"));
    }
    for (i, cert) in certs.iter().enumerate() {
        // The same check the TLS client makes when it loads the roots.
        rustls::RootCertStore::empty()
            .add(cert.clone())
            .map_err(|e| {
                Problem::new(format!(
                    "certificate {} in `{shown}` is not a usable CA certificate: {e}",
                    i + 1
                ))
                .help("export the CA certificate in PEM form (`openssl x509 -outform PEM`)")
            })?;
    }
    Ok(certs.into_iter().map(|c| c.as_ref().to_vec()).collect())
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
