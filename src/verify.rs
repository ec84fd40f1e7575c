//! Inbound verification: is this request really from the source's provider?
//!
//! Pure: takes the source's verify settings, the request headers, the raw body
//! bytes exactly as received and the current time (the caller's clock; nothing
//! here reads one), and answers before anything parses the body. Built on
//! [`crate::signing`].
//!
//! DESIGN.md section 4: a signature header that is missing, malformed or given
//! more than once is 401; a signature that matches no secret, or a
//! Standard Webhooks timestamp more than 5 minutes from now, is 403. Messages
//! name the header and the problem, never the signature or a secret.

use std::fmt;

use http::HeaderMap;

use crate::config::{SigningKey, VerifyConfig, VerifyScheme};
use crate::signing::{self, github, standard_webhooks as sw};

/// The header the outrival scheme signs in.
pub const OUTRIVAL_HEADER: &str = "x-signature";

/// Why a request was refused (DESIGN.md section 4: 401 or 403).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// 401 `missing_signature`.
    #[error("the {0} header is missing")]
    MissingSignature(&'static str),
    /// 401 `malformed_signature`.
    #[error("the {0} header {1}")]
    MalformedSignature(&'static str, Malformed),
    /// 403 `invalid_signature`.
    #[error("the signature does not match the body under any configured secret")]
    InvalidSignature,
    /// 403 `invalid_signature`: a replay, or a sender whose clock is off.
    #[error("the webhook-timestamp header is {0}")]
    TimestampOutOfTolerance(Skew),
}

/// What is wrong with a signature header (the message after its name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    GivenTwice,
    Empty,
    NotHex,
    NotGithubFormat,
    NotTimestamp,
    NoV1Signature,
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Malformed::GivenTwice => "is given more than once",
            Malformed::Empty => "is empty",
            Malformed::NotHex => "is not a hex HMAC-SHA256 signature",
            Malformed::NotGithubFormat => "is not `sha256=` followed by a hex HMAC-SHA256",
            Malformed::NotTimestamp => "is not a unix timestamp in seconds",
            Malformed::NoV1Signature => "holds no `v1,<base64>` signature",
        })
    }
}

/// Which side of the tolerance window a timestamp fell on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skew {
    Past,
    Future,
}

impl fmt::Display for Skew {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let minutes = sw::TOLERANCE.as_secs() / 60;
        match self {
            Skew::Past => write!(f, "more than {minutes} minutes old"),
            Skew::Future => write!(f, "more than {minutes} minutes in the future"),
        }
    }
}

/// Check one request against a source's verify settings; `now_ms` is the
/// current time in unix milliseconds.
pub fn verify(
    config: &VerifyConfig,
    headers: &HeaderMap,
    body: &[u8],
    now_ms: i64,
) -> Result<(), VerifyError> {
    let keys = || config.secrets.iter().map(SigningKey::expose);
    match config.scheme {
        VerifyScheme::None => Ok(()),
        VerifyScheme::Outrival => {
            let header = single(headers, OUTRIVAL_HEADER)?;
            let signature = signing::decode_hex_signature(header)
                .map_err(|_| VerifyError::MalformedSignature(OUTRIVAL_HEADER, Malformed::NotHex))?;
            signing::verify_any(keys(), body, &signature).map_err(|_| VerifyError::InvalidSignature)
        }
        VerifyScheme::Github => {
            let header = single(headers, github::HEADER)?;
            let signature = github::parse(header).map_err(|_| {
                VerifyError::MalformedSignature(github::HEADER, Malformed::NotGithubFormat)
            })?;
            signing::verify_any(keys(), body, &signature).map_err(|_| VerifyError::InvalidSignature)
        }
        VerifyScheme::StandardWebhooks => {
            // Every header is checked for presence and shape (401) before
            // anything is compared (403).
            let id = single(headers, sw::ID_HEADER)?;
            let timestamp = single(headers, sw::TIMESTAMP_HEADER)?;
            let signatures = single(headers, sw::SIGNATURE_HEADER)?;
            if id.trim_ascii().is_empty() {
                return Err(VerifyError::MalformedSignature(
                    sw::ID_HEADER,
                    Malformed::Empty,
                ));
            }
            let seconds = sw::parse_timestamp(timestamp).map_err(|_| {
                VerifyError::MalformedSignature(sw::TIMESTAMP_HEADER, Malformed::NotTimestamp)
            })?;
            let signatures = sw::parse_signatures(signatures).map_err(|_| {
                VerifyError::MalformedSignature(sw::SIGNATURE_HEADER, Malformed::NoV1Signature)
            })?;
            within_tolerance(seconds, now_ms)?;
            sw::verify_any(keys(), id, timestamp, body, &signatures)
                .map_err(|_| VerifyError::InvalidSignature)
        }
    }
}

/// The one value of a header that must appear exactly once.
fn single<'h>(headers: &'h HeaderMap, name: &'static str) -> Result<&'h [u8], VerifyError> {
    let mut values = headers.get_all(name).iter();
    let first = values.next().ok_or(VerifyError::MissingSignature(name))?;
    if values.next().is_some() {
        return Err(VerifyError::MalformedSignature(name, Malformed::GivenTwice));
    }
    Ok(first.as_bytes())
}

/// `Ok` when `seconds` is within [`sw::TOLERANCE`] of `now_ms`, either way.
fn within_tolerance(seconds: i64, now_ms: i64) -> Result<(), VerifyError> {
    // i128: neither product nor sum can overflow whatever the header says.
    let at_ms = i128::from(seconds) * 1000;
    let now_ms = i128::from(now_ms);
    let tolerance_ms = sw::TOLERANCE.as_millis() as i128;
    if at_ms < now_ms - tolerance_ms {
        Err(VerifyError::TimestampOutOfTolerance(Skew::Past))
    } else if at_ms > now_ms + tolerance_ms {
        Err(VerifyError::TimestampOutOfTolerance(Skew::Future))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests;
