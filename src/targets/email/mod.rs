//! The `email` target: render the message, send it over SMTP through the
//! target's pooled transport, and classify the answer.
//!
//! - [`message`]: the MIME message (text/plain, or multipart/alternative with HTML).
//! - [`transport`]: one pooled lettre transport per target, rebuilt when the
//!   target's SMTP settings change.
//!
//! Outcomes (DESIGN.md section 5): an SMTP 4xx reply is retried, a 5xx is
//! permanent, both recorded with the reply code as the status and the reply
//! text as the excerpt; connection, TLS and I/O errors and timeouts are
//! retried. No error text ever holds the SMTP password.

pub mod message;
pub mod transport;

use std::time::Instant;

use lettre::AsyncTransport;
use lettre::transport::smtp::Error as SmtpError;

use super::outcome::{AttemptOutcome, Failure, truncate_at_char_boundary};
use super::{Attempt, render};
use crate::config::{EmailTarget, Secret, Target};
use crate::templates::TemplateSet;
use transport::Transports;

/// How much of an SMTP reply goes into the error line (all of it, up to
/// [`super::outcome::RESPONSE_EXCERPT_BYTES`], is kept as the excerpt).
const ERROR_REPLY_CHARS: usize = 200;

/// Sends the email targets' messages; holds their transports.
#[derive(Default)]
pub struct EmailSender {
    transports: Transports,
}

impl EmailSender {
    pub async fn send(
        &self,
        target: &Target,
        email: &EmailTarget,
        templates: &TemplateSet,
        attempt: &Attempt<'_>,
    ) -> AttemptOutcome {
        let message = match render_message(target, email, templates, attempt) {
            Ok(m) => m,
            Err(failure) => return failure.into(),
        };
        // Park as many connections as the target may use at once.
        let pool_size = u32::try_from(target.concurrency).unwrap_or(u32::MAX);
        let leased = match self
            .transports
            .get(&target.name, &email.smtp, pool_size)
            .await
        {
            Ok(t) => t,
            Err(e) => return Failure::retryable(scrub(e, email.smtp.password.as_ref())).into(),
        };
        let started = Instant::now();
        // lettre bounds only the TCP connect; this bounds the whole exchange.
        match tokio::time::timeout(email.smtp.timeout, leased.transport.send(message)).await {
            Ok(Ok(response)) => AttemptOutcome::delivered(Some(u16::from(response.code()))),
            Ok(Err(e)) => classify(&e, email.smtp.password.as_ref()).into(),
            Err(_) => {
                // The cut-off connection may be mid-command: retire its pool.
                self.transports.discard(&target.name, leased.generation);
                Failure::retryable(format!(
                    "timed out after {} ms",
                    started.elapsed().as_millis()
                ))
                .into()
            }
        }
    }
}

/// Render the templates (as the dry run does) and build the message.
fn render_message(
    target: &Target,
    email: &EmailTarget,
    templates: &TemplateSet,
    attempt: &Attempt<'_>,
) -> Result<lettre::Message, Failure> {
    let vars = render::AttemptVars::new(attempt, &target.name);
    let payload = render::parse_payload(attempt.body).map_err(Failure::render_error)?;
    let rendered =
        render::email(email, templates, &payload, &vars.vars()).map_err(Failure::render_error)?;
    message::build(email, rendered, attempt).map_err(Failure::render_error)
}

/// An SMTP error as an outcome: 4xx retryable, 5xx permanent, anything that
/// is not a reply (connect, TLS, I/O, a garbled reply) retryable.
fn classify(e: &SmtpError, password: Option<&Secret>) -> Failure {
    if let Some(code) = e.status() {
        let status = u16::from(code);
        let reply = scrub(reply_text(e), password);
        let error = if reply.is_empty() {
            format!("SMTP {status}")
        } else {
            format!(
                "SMTP {status}: {}",
                truncate_at_char_boundary(&reply, ERROR_REPLY_CHARS)
            )
        };
        let failure = if e.is_permanent() {
            Failure::permanent(error)
        } else {
            Failure::retryable(error)
        };
        let excerpt = (!reply.is_empty()).then_some(reply);
        return failure.with_status(status).with_excerpt(excerpt);
    }
    let causes = causes(e);
    // A handshake failure comes back as a connection error wrapping rustls's.
    let tls = causes
        .iter()
        .find_map(|c| c.downcast_ref::<rustls::Error>());
    let error = if let Some(tls) = tls {
        format!("TLS failed: {tls}")
    } else {
        let what = if e.is_timeout() {
            "timed out"
        } else if e.is_tls() {
            "TLS failed"
        } else if e.is_response() {
            "unreadable SMTP reply"
        } else if e.is_client() {
            "SMTP client error"
        } else {
            "connection failed"
        };
        // The innermost cause says what happened ("Connection refused (os
        // error 111)"); lettre's own layers only repeat "Connection error".
        match causes.last() {
            Some(root) => format!("{what}: {root}"),
            None => format!("{what}: {e}"),
        }
    };
    Failure::retryable(scrub(error, password))
}

/// The reply text the server sent with a negative code (lettre keeps it as
/// the error's source).
fn reply_text(e: &SmtpError) -> String {
    use std::error::Error;
    e.source().map(ToString::to_string).unwrap_or_default()
}

/// The causes of `e`, outermost first, looking inside I/O errors too (whose
/// `source` skips the error they wrap). lettre's messages name no
/// credentials; the host and port are not secrets.
fn causes(e: &SmtpError) -> Vec<&(dyn std::error::Error + 'static)> {
    use std::error::Error;
    let mut out = Vec::new();
    let mut next = e.source();
    while let Some(cause) = next {
        out.push(cause);
        next = match cause.downcast_ref::<std::io::Error>() {
            Some(io) => match io.get_ref() {
                Some(inner) => Some(inner as &(dyn Error + 'static)),
                None => None,
            },
            None => cause.source(),
        };
    }
    out
}

/// `text` with the password replaced, should a server or library ever echo it.
fn scrub(text: String, password: Option<&Secret>) -> String {
    match password {
        Some(p) if !p.is_empty() && text.contains(p.expose()) => {
            text.replace(p.expose(), "<redacted>")
        }
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_removes_the_password_only() {
        let pw = Secret::new("hunter2-secret");
        assert_eq!(
            scrub("535 bad login hunter2-secret for u".into(), Some(&pw)),
            "535 bad login <redacted> for u"
        );
        assert_eq!(scrub("no secret here".into(), Some(&pw)), "no secret here");
        assert_eq!(scrub("x".into(), Some(&Secret::new(""))), "x");
        assert_eq!(scrub("x".into(), None), "x");
    }
}
