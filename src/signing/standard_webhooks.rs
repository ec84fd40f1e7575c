//! The Standard Webhooks scheme (the spec Svix and others publish):
//!
//! ```text
//! webhook-id:        msg_p5jXN8AQM9LWM0D4loKWxJek
//! webhook-timestamp: 1614265330                      (unix seconds)
//! webhook-signature: v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>
//! ```
//!
//! The key is the base64 part of a `whsec_<base64>` secret, decoded once at
//! load (`config::SigningKey::from_whsec`); this module takes the key
//! bytes as they are. `webhook-signature` may hold several space-separated
//! `version,signature` entries (a sender rotating its secret signs with both);
//! only `v1` entries are HMAC-SHA256, others (such as `v1a`, asymmetric) are
//! skipped, and any one matching is enough.
//!
//! Checking the timestamp against a tolerance needs the current time, so that
//! part lives with the caller (`crate::verify`); this module only parses it.

use std::time::Duration;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use hmac::Mac;
use subtle::ConstantTimeEq;

use super::{SignatureError, new_mac};

// `config` keeps its own copy of these three names for the headers a target
// may not set (src/config/build/targets/http.rs); change both together.
pub const ID_HEADER: &str = "webhook-id";
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
pub const SIGNATURE_HEADER: &str = "webhook-signature";

/// How far `webhook-timestamp` may be from now, past or future.
pub const TOLERANCE: Duration = Duration::from_secs(5 * 60);

/// The only signature version that is HMAC-SHA256.
const VERSION: &str = "v1";

/// Standard base64 that accepts its input with or without `=` padding:
/// senders differ, and the padding carries no information.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The `webhook-signature` value for one message: `v1,<base64>`.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let timestamp = timestamp.to_string();
    let mac = mac(key, id.as_bytes(), timestamp.as_bytes(), body);
    format!("{VERSION},{}", STANDARD.encode(mac))
}

/// The three headers of one signed attempt, as (name, value) pairs:
/// `webhook-id`, `webhook-timestamp` (unix seconds) and `webhook-signature`.
pub fn headers(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> [(&'static str, String); 3] {
    [
        (ID_HEADER, id.to_owned()),
        (TIMESTAMP_HEADER, timestamp.to_string()),
        (SIGNATURE_HEADER, sign(key, id, timestamp, body)),
    ]
}

/// A `webhook-timestamp` value: unix seconds, ASCII digits only.
pub fn parse_timestamp(header: &[u8]) -> Result<i64, SignatureError> {
    let digits = header.trim_ascii();
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(SignatureError::Malformed);
    }
    std::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(SignatureError::Malformed)
}

/// Every well-formed `v1` signature in a `webhook-signature` value.
///
/// Entries of other versions, and entries that are not `version,base64` of a
/// 32-byte MAC, are skipped (one garbled entry must not hide a good one);
/// `Malformed` when no usable `v1` signature is left.
pub fn parse_signatures(header: &[u8]) -> Result<Vec<[u8; 32]>, SignatureError> {
    let mut out = Vec::new();
    for entry in header.split(|&b| b == b' ').filter(|e| !e.is_empty()) {
        let Some(comma) = entry.iter().position(|&b| b == b',') else {
            continue;
        };
        let (version, encoded) = (&entry[..comma], &entry[comma + 1..]);
        if version != VERSION.as_bytes() {
            continue;
        }
        let mut signature = [0u8; 32];
        if let Ok(32) = LENIENT.decode_slice(encoded, &mut signature) {
            out.push(signature);
        }
    }
    if out.is_empty() {
        Err(SignatureError::Malformed)
    } else {
        Ok(out)
    }
}

/// `Ok` when any signature is the MAC of this message under any key.
///
/// `timestamp` is the header's bytes exactly as received (they are what the
/// sender signed). Every key is tried against every signature, each
/// comparison in constant time, with no early exit.
pub fn verify_any<'a>(
    keys: impl IntoIterator<Item = &'a [u8]>,
    id: &[u8],
    timestamp: &[u8],
    body: &[u8],
    signatures: &[[u8; 32]],
) -> Result<(), SignatureError> {
    let mut matched = subtle::Choice::from(0);
    for key in keys {
        let expected = mac(key, id, timestamp, body);
        for signature in signatures {
            matched |= expected.ct_eq(signature);
        }
    }
    if bool::from(matched) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// HMAC-SHA256 over `id.timestamp.body`, fed in pieces so the body is never
/// copied.
fn mac(key: &[u8], id: &[u8], timestamp: &[u8], body: &[u8]) -> [u8; 32] {
    let mut mac = new_mac(key);
    for part in [id, b".", timestamp, b".", body] {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    // The Standard Webhooks specification's published example (also the
    // sign test of the Svix / standard-webhooks reference libraries).
    // The secret is `whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw`; the key is the
    // base64 after the prefix, decoded.
    const SPEC_KEY_BASE64: &str = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SPEC_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SPEC_TIMESTAMP: i64 = 1_614_265_330;
    const SPEC_PAYLOAD: &[u8] = br#"{"test": 2432232314}"#;
    const SPEC_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn spec_key() -> Vec<u8> {
        STANDARD.decode(SPEC_KEY_BASE64).unwrap()
    }

    #[test]
    fn the_specifications_example() {
        assert_eq!(spec_key().len(), 24);
        assert_eq!(
            sign(&spec_key(), SPEC_ID, SPEC_TIMESTAMP, SPEC_PAYLOAD),
            SPEC_SIGNATURE
        );
        let sigs = parse_signatures(SPEC_SIGNATURE.as_bytes()).unwrap();
        let key = spec_key();
        assert_eq!(
            verify_any(
                [&key[..]],
                SPEC_ID.as_bytes(),
                b"1614265330",
                SPEC_PAYLOAD,
                &sigs
            ),
            Ok(())
        );
        // Any part of the signed content changed: no match.
        for (id, ts, body) in [
            ("msg_other", "1614265330", SPEC_PAYLOAD),
            (SPEC_ID, "1614265331", SPEC_PAYLOAD),
            (SPEC_ID, "1614265330", &br#"{"test": 2432232315}"#[..]),
        ] {
            assert_eq!(
                verify_any([&key[..]], id.as_bytes(), ts.as_bytes(), body, &sigs),
                Err(SignatureError::Mismatch)
            );
        }
    }

    #[test]
    fn headers_are_the_three_of_the_spec() {
        let h = headers(&spec_key(), SPEC_ID, SPEC_TIMESTAMP, SPEC_PAYLOAD);
        assert_eq!(
            h,
            [
                ("webhook-id", SPEC_ID.to_owned()),
                ("webhook-timestamp", "1614265330".to_owned()),
                ("webhook-signature", SPEC_SIGNATURE.to_owned()),
            ]
        );
    }

    #[test]
    fn any_of_several_signatures_and_any_key_may_match() {
        let key = spec_key();
        let header = format!(
            "v1a,bm9wZQ== v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=  garbage {SPEC_SIGNATURE} v2,xyz"
        );
        let sigs = parse_signatures(header.as_bytes()).unwrap();
        assert_eq!(sigs.len(), 2, "only the well-formed v1 entries");
        let other = b"another-key-0123456789".as_slice();
        assert_eq!(
            verify_any(
                [other, &key[..]],
                SPEC_ID.as_bytes(),
                b"1614265330",
                SPEC_PAYLOAD,
                &sigs
            ),
            Ok(())
        );
        assert_eq!(
            verify_any(
                [other],
                SPEC_ID.as_bytes(),
                b"1614265330",
                SPEC_PAYLOAD,
                &sigs
            ),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn signature_lists_without_a_usable_v1_entry_are_malformed() {
        for bad in [
            "",
            "   ",
            "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            "v1,",
            "v1,not*base64",
            "v1,bm9wZQ==",
            "v1a,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            "V1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        ] {
            assert_eq!(
                parse_signatures(bad.as_bytes()),
                Err(SignatureError::Malformed),
                "{bad:?}"
            );
        }
        // Padding is optional.
        let unpadded = SPEC_SIGNATURE.trim_end_matches('=');
        assert_eq!(
            parse_signatures(unpadded.as_bytes()),
            parse_signatures(SPEC_SIGNATURE.as_bytes())
        );
    }

    #[test]
    fn timestamps_are_unix_seconds_in_digits() {
        assert_eq!(parse_timestamp(b"1614265330"), Ok(1_614_265_330));
        assert_eq!(parse_timestamp(b"0"), Ok(0));
        for bad in [
            &b""[..],
            b"-5",
            b"+5",
            b"1.5",
            b"1614265330000000000000",
            b"2021-02-25T15:02:10Z",
        ] {
            assert_eq!(parse_timestamp(bad), Err(SignatureError::Malformed));
        }
    }
}
