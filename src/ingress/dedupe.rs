//! Which requests are "the same event" for `dedupe.window` (DESIGN.md
//! section 3).
//!
//! The key is sha256 of the source name and what identifies the event:
//!
//! - `standard-webhooks` sources: the `webhook-id` header (the spec's
//!   idempotency key; it is signed, and stays the same across the sender's
//!   retries while the timestamp and signature change);
//! - `github` sources: the `x-github-delivery` header when it is there once
//!   and non-empty (GitHub's redeliveries reuse it), else the body;
//! - every other source: the raw body bytes.
//!
//! Called after verification, so a `webhook-id` here is one the sender signed.

use http::HeaderMap;
use sha2::{Digest, Sha256};

use crate::config::{Config, Source, VerifyScheme};
use crate::queue::DedupeKey;
use crate::signing::standard_webhooks;

/// GitHub's per-delivery GUID header.
pub const GITHUB_DELIVERY_HEADER: &str = "x-github-delivery";

/// The dedupe key of an event, fresh for `dedupe.window` from
/// `received_at_ms`; `None` when the window is 0 (dedupe off).
pub(super) fn dedupe_key(
    config: &Config,
    source: &Source,
    headers: &HeaderMap,
    body: &[u8],
    received_at_ms: i64,
) -> Option<DedupeKey> {
    let window = config.dedupe.window;
    if window.is_zero() {
        return None;
    }
    Some(DedupeKey {
        key: key(&source.name, source.verify.scheme, headers, body),
        expires_at_ms: received_at_ms
            .saturating_add(i64::try_from(window.as_millis()).unwrap_or(i64::MAX)),
    })
}

fn key(source: &str, scheme: VerifyScheme, headers: &HeaderMap, body: &[u8]) -> [u8; 32] {
    let id_header = match scheme {
        VerifyScheme::StandardWebhooks => Some(standard_webhooks::ID_HEADER),
        VerifyScheme::Github => Some(GITHUB_DELIVERY_HEADER),
        VerifyScheme::Outrival | VerifyScheme::None => None,
    };
    let id = id_header.and_then(|name| Some((name, single_non_empty(headers, name)?)));
    let mut hash = Sha256::new();
    hash.update(source.as_bytes());
    match id {
        // Source names cannot hold control bytes, so 0x00 (body) and 0x01
        // (header) keep the two kinds of key apart whatever follows; the
        // header's name keeps a webhook-id apart from a GitHub GUID.
        Some((name, value)) => {
            hash.update([1u8]);
            hash.update(name.as_bytes());
            hash.update([0u8]);
            hash.update(value);
        }
        None => {
            hash.update([0u8]);
            hash.update(body);
        }
    }
    hash.finalize().into()
}

/// The header's value when it appears exactly once and is not blank.
fn single_non_empty<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h [u8]> {
    let mut values = headers.get_all(name).iter();
    let value = values.next()?.as_bytes();
    (values.next().is_none() && !value.trim_ascii().is_empty()).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, http::HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn standard_webhooks_sources_key_on_webhook_id() {
        let sw = VerifyScheme::StandardWebhooks;
        let a = h(&[("webhook-id", "msg_1")]);
        assert_eq!(
            key("s", sw, &a, b"{\"a\":1}"),
            key("s", sw, &a, b"{\"a\":2}")
        );
        let b = h(&[("webhook-id", "msg_2")]);
        assert_ne!(key("s", sw, &a, b"{}"), key("s", sw, &b, b"{}"));
        assert_ne!(key("s", sw, &a, b"{}"), key("t", sw, &a, b"{}"));
    }

    #[test]
    fn github_sources_key_on_the_delivery_guid_when_there_is_one() {
        let gh = VerifyScheme::Github;
        let d = h(&[("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")]);
        assert_eq!(
            key("g", gh, &d, b"{\"a\":1}"),
            key("g", gh, &d, b"{\"a\":2}")
        );
        // Absent, blank or repeated: the body decides.
        for headers in [
            HeaderMap::new(),
            h(&[("x-github-delivery", " ")]),
            h(&[("x-github-delivery", "x"), ("x-github-delivery", "y")]),
        ] {
            assert_eq!(
                key("g", gh, &headers, b"{\"a\":1}"),
                key("g", VerifyScheme::Outrival, &HeaderMap::new(), b"{\"a\":1}")
            );
            assert_ne!(
                key("g", gh, &headers, b"{\"a\":1}"),
                key("g", gh, &headers, b"{\"a\":2}")
            );
        }
    }

    #[test]
    fn other_sources_key_on_the_body_and_ignore_id_headers() {
        let o = VerifyScheme::Outrival;
        let ids = h(&[("webhook-id", "msg_1"), ("x-github-delivery", "g")]);
        assert_eq!(
            key("o", o, &ids, b"{}"),
            key("o", o, &HeaderMap::new(), b"{}")
        );
        assert_ne!(key("o", o, &ids, b"{}"), key("o", o, &ids, b"{ }"));
        // The same id through a different header is a different key.
        let sw = key(
            "s",
            VerifyScheme::StandardWebhooks,
            &h(&[("webhook-id", "x")]),
            b"{}",
        );
        let gh = key(
            "s",
            VerifyScheme::Github,
            &h(&[("x-github-delivery", "x")]),
            b"{}",
        );
        assert_ne!(sw, gh);
    }
}
