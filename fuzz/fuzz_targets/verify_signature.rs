//! Fuzz target: inbound signature verification, all three schemes
//! (outrival, github, standard-webhooks), with arbitrary headers and body.
//!
//! Properties, beyond "never panics on any header bytes":
//! - a request correctly signed with secret A is accepted by a source whose
//!   secrets hold A (alone or beside another, as in a rotation) when its
//!   timestamp is within tolerance, and refused when they hold only B, a
//!   different HMAC key;
//! - the same request with one byte of the body changed is refused;
//! - whatever is accepted carries a signature that recomputes: the header
//!   (for standard-webhooks one of its `v1` entries) is the MAC of the body
//!   under one of the source's keys, and the timestamp is within 5 minutes.
//!
//! "Different HMAC key": HMAC pads a key shorter than the hash's block with
//! zeros and hashes a longer one first, so `k` and `k\0`, or a long key and
//! its SHA-256, are the same key. Those pairs are not different secrets and
//! are not asserted on (docs/security.md#fuzzing).

#![no_main]

use arbitrary::Arbitrary;
use hookgate::config::{SigningKey, VerifyConfig, VerifyScheme};
use hookgate::signing::{self, github, standard_webhooks as sw};
use hookgate::verify::{VerifyError, verify};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};

const NAMES: [&str; 7] = [
    "x-signature",
    "x-hub-signature-256",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "content-type",
    "x-other",
];

#[derive(Debug, Arbitrary)]
struct Input {
    scheme: u8,
    secret_a: Vec<u8>,
    secret_b: Vec<u8>,
    body: Vec<u8>,
    /// Arbitrary headers, by index into `NAMES`.
    headers: Vec<(u8, Vec<u8>)>,
    /// For a correctly signed request: how to write it.
    id: String,
    /// Other entries written before the good one in `webhook-signature`.
    extra_entries: String,
    now_s: u32,
    skew_s: i16,
    uppercase: bool,
    pad: bool,
    flip: u16,
}

fn scheme(n: u8) -> VerifyScheme {
    match n % 3 {
        0 => VerifyScheme::Outrival,
        1 => VerifyScheme::Github,
        _ => VerifyScheme::StandardWebhooks,
    }
}

fn source(scheme: VerifyScheme, keys: &[&[u8]]) -> VerifyConfig {
    VerifyConfig {
        scheme,
        secrets: keys.iter().map(|k| SigningKey::new(*k)).collect(),
    }
}

/// The key HMAC-SHA256 actually uses: long keys hashed, then zero-padded to
/// the 64-byte block (so trailing zeros do not count).
fn hmac_key(key: &[u8]) -> Vec<u8> {
    let mut k = if key.len() > 64 {
        Sha256::digest(key).to_vec()
    } else {
        key.to_vec()
    };
    while k.last() == Some(&0) {
        k.pop();
    }
    k
}

/// Headers from fuzz bytes; values that are not legal header values
/// (control characters) cannot reach `verify` through hyper, so are dropped.
fn append_arbitrary(map: &mut HeaderMap, list: &[(u8, Vec<u8>)]) {
    for (name, value) in list {
        let name = HeaderName::from_static(NAMES[usize::from(*name) % NAMES.len()]);
        if let Ok(value) = HeaderValue::from_bytes(value) {
            map.append(name, value);
        }
    }
}

/// A request signed with `key` the way a well-behaved sender signs it.
fn signed(input: &Input, scheme: VerifyScheme, key: &[u8], body: &[u8]) -> Option<HeaderMap> {
    let mut map = HeaderMap::new();
    let case = |s: String| if input.uppercase { s.to_uppercase() } else { s };
    match scheme {
        VerifyScheme::Outrival => {
            let v = case(signing::sign_hex(key, body));
            map.insert("x-signature", HeaderValue::from_str(&v).ok()?);
        }
        VerifyScheme::Github => {
            let hex = case(signing::sign_hex(key, body));
            let v = format!("sha256={hex}");
            map.insert(github::HEADER, HeaderValue::from_str(&v).ok()?);
        }
        VerifyScheme::StandardWebhooks => {
            let ts = i64::from(input.now_s) + i64::from(input.skew_s);
            if ts < 0 || input.id.trim_ascii().is_empty() {
                return None;
            }
            let mut sig = sw::sign(key, &input.id, ts, body);
            if !input.pad {
                sig = sig.trim_end_matches('=').to_owned();
            }
            if !input.extra_entries.is_empty() {
                sig = format!("{} {sig}", input.extra_entries);
            }
            map.insert(sw::ID_HEADER, HeaderValue::from_str(&input.id).ok()?);
            map.insert(sw::TIMESTAMP_HEADER, HeaderValue::from(ts));
            map.insert(sw::SIGNATURE_HEADER, HeaderValue::from_str(&sig).ok()?);
        }
        VerifyScheme::None => return None,
    }
    Some(map)
}

/// Is what `verify` accepted really signed? Recomputed from the headers
/// with the signing functions (checked against published vectors in
/// src/signing), not with the verifier's own parsing.
fn really_signed(scheme: VerifyScheme, keys: &[&[u8]], h: &HeaderMap, body: &[u8], now_ms: i64) {
    let raw = |name: &str| {
        let all: Vec<_> = h.get_all(name).iter().collect();
        assert_eq!(all.len(), 1, "accepted with {} `{name}` headers", all.len());
        all[0].as_bytes().to_vec()
    };
    let one = |name: &str| raw(name).trim_ascii().to_ascii_lowercase();
    let ok = match scheme {
        VerifyScheme::Outrival => {
            let got = one("x-signature");
            keys.iter()
                .any(|k| got == signing::sign_hex(k, body).as_bytes())
        }
        VerifyScheme::Github => {
            let got = one(github::HEADER);
            keys.iter().any(|k| got == github::sign(k, body).as_bytes())
        }
        VerifyScheme::StandardWebhooks => {
            let (id, ts, sig) = (
                raw(sw::ID_HEADER),
                raw(sw::TIMESTAMP_HEADER),
                raw(sw::SIGNATURE_HEADER),
            );
            let seconds: i64 = std::str::from_utf8(ts.trim_ascii())
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("accepted a timestamp that is not digits: {ts:?}"));
            assert!(
                (i128::from(seconds) * 1000 - i128::from(now_ms)).abs() <= 300_000,
                "accepted a timestamp {seconds} s at now {now_ms} ms"
            );
            // Rebuild the MAC over the raw id and timestamp bytes.
            let mut message = id.clone();
            message.push(b'.');
            message.extend_from_slice(&ts);
            message.push(b'.');
            message.extend_from_slice(body);
            let entries: Vec<String> = sig
                .split(|&b| b == b' ')
                .filter_map(|e| std::str::from_utf8(e).ok())
                .filter_map(|e| e.strip_prefix("v1,"))
                .map(|e| e.trim_end_matches('=').to_owned())
                .collect();
            keys.iter().any(|k| {
                let mac = signing::hmac_sha256(k, &message);
                let mine = sw_b64(&mac);
                entries.iter().any(|e| *e == mine)
            })
        }
        VerifyScheme::None => true,
    };
    assert!(ok, "accepted a request no key signed ({scheme:?})");
}

/// Unpadded standard base64 of a MAC, written out here so the check does not
/// share the verifier's decoder.
fn sw_b64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

fuzz_target!(|input: Input| {
    let scheme = scheme(input.scheme);
    let now_ms = i64::from(input.now_s) * 1000;
    let (a, b) = (&input.secret_a[..], &input.secret_b[..]);
    let body = &input.body[..];

    // Arbitrary headers: never a panic; an acceptance must be genuine.
    let mut headers = HeaderMap::new();
    append_arbitrary(&mut headers, &input.headers);
    for keys in [&[b][..], &[a, b][..], &[][..]] {
        if verify(&source(scheme, keys), &headers, body, now_ms).is_ok() {
            really_signed(scheme, keys, &headers, body, now_ms);
        }
    }

    // A request correctly signed with A.
    let Some(good) = signed(&input, scheme, a, body) else {
        return;
    };
    let in_time = scheme != VerifyScheme::StandardWebhooks || input.skew_s.unsigned_abs() <= 300;
    let with_a = verify(&source(scheme, &[a]), &good, body, now_ms);
    let rotated = verify(&source(scheme, &[b, a]), &good, body, now_ms);
    if in_time {
        assert_eq!(with_a, Ok(()), "a correct signature refused");
        assert_eq!(
            rotated,
            Ok(()),
            "a correct signature refused beside another key"
        );
    } else {
        assert!(
            matches!(with_a, Err(VerifyError::TimestampOutOfTolerance(_))),
            "{with_a:?} for a timestamp {} s off",
            input.skew_s
        );
    }
    if hmac_key(a) != hmac_key(b) {
        let with_b = verify(&source(scheme, &[b]), &good, body, now_ms);
        assert!(
            with_b.is_err(),
            "accepted a body signed with another secret"
        );
    }
    // The good request with arbitrary headers added: whatever is accepted
    // must still be genuine (a repeated signature header is refused).
    let mut mixed = good.clone();
    append_arbitrary(&mut mixed, &input.headers);
    if verify(&source(scheme, &[a]), &mixed, body, now_ms).is_ok() {
        really_signed(scheme, &[a], &mixed, body, now_ms);
    }
    // One byte of the body changed (or one added): refused.
    let mut other = body.to_vec();
    match other.get_mut(usize::from(input.flip) % body.len().max(1)) {
        Some(byte) => *byte ^= 1 << (input.flip >> 13),
        None => other.push(b' '),
    }
    let changed = verify(&source(scheme, &[a]), &good, &other, now_ms);
    assert!(
        changed.is_err(),
        "accepted a body that was changed after signing"
    );
});
