//! HMAC signatures and their header formats. Pure functions, no I/O.
//!
//! Three schemes, all HMAC-SHA256:
//!
//! - `outrival` (this file), the provider's own: `x-signature` is the hex of
//!   HMAC-SHA256(secret, raw body bytes). hookgate sends lowercase hex and
//!   accepts either case inbound.
//! - [`github`]: `x-hub-signature-256: sha256=<hex>` over the raw body.
//! - [`standard_webhooks`]: `webhook-signature: v1,<base64>` over
//!   `"{webhook-id}.{webhook-timestamp}.{body}"`, keyed with a `whsec_` secret.
//!
//! Keys are bytes: a raw secret's UTF-8 bytes, or a `whsec_` secret already
//! decoded by the config loader. Comparisons are constant-time and every key is
//! tried, so timing reveals neither the signature nor which key matched.

pub mod github;
pub mod standard_webhooks;

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The raw 32-byte HMAC-SHA256 of `body` under `secret`.
pub fn hmac_sha256(secret: &[u8], body: &[u8]) -> [u8; 32] {
    let mut mac = new_mac(secret);
    mac.update(body);
    mac.finalize().into_bytes().into()
}

/// Lowercase hex HMAC-SHA256: the value of an outrival `x-signature` header.
pub fn sign_hex(secret: &[u8], body: &[u8]) -> String {
    hex::encode(hmac_sha256(secret, body))
}

/// Why a signature header could not be checked or did not match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// Not in the scheme's format (not hex, no `sha256=`, no `v1,` entry...).
    #[error("signature is not in the expected format")]
    Malformed,
    /// Well-formed, but no secret produces it.
    #[error("signature does not match")]
    Mismatch,
}

/// Decode a hex signature (either case) into its 32 bytes.
pub fn decode_hex_signature(header: &[u8]) -> Result<[u8; 32], SignatureError> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(header.trim_ascii(), &mut out).map_err(|_| SignatureError::Malformed)?;
    Ok(out)
}

/// Check a decoded signature against every secret; `Ok` when any one matches.
///
/// Every secret is tried (no early exit on the first mismatch) and each
/// comparison is constant-time, so timing reveals neither the signature nor
/// which secret matched.
pub fn verify_any<'a>(
    secrets: impl IntoIterator<Item = &'a [u8]>,
    body: &[u8],
    signature: &[u8; 32],
) -> Result<(), SignatureError> {
    let mut matched = false;
    for secret in secrets {
        let mut mac = new_mac(secret);
        mac.update(body);
        matched |= mac.verify_slice(signature).is_ok();
    }
    if matched {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

fn new_mac(secret: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length (long keys are hashed), so this cannot fail.
    match HmacSha256::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC-SHA256 takes keys of any length"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Vectors computed with the provider's documented algorithm, in Node:
    //   crypto.createHmac("sha256", secret).update(payload).digest("hex")
    // and cross-checked with `openssl dgst -sha256 -hmac`.
    const NODE_VECTORS: &[(&str, &str, &str)] = &[
        (
            "your_shared_secret",
            r#"{"event":"status-changed","type":"VOICE","companionId":"c1","data":{"messages":[],"status":"ended","startedAt":"2026-01-01T00:00:00Z"}}"#,
            "a11226f74ba2ae4dd582efae574f956213b4236333299731f6ec3e3f47aaa191",
        ),
        (
            // Non-ASCII secret and body: Node encodes both strings as UTF-8.
            "whsec-\u{fc}nicode-secret",
            "{\"event\":\"function-call\",\"type\":\"SMS\",\"companionId\":\"caf\u{e9}\",\"data\":{\"messages\":[{\"role\":\"user\",\"content\":\"h\u{e9}llo \u{1f44b}\"}],\"startedAt\":\"2026-01-01T00:00:00Z\"}}",
            "c4dfd19325d8cbef221439e1667950f9c702471917aea0560d3793adf36b866c",
        ),
        (
            "",
            "",
            "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad",
        ),
    ];

    #[test]
    fn rfc4231_test_case_2() {
        // RFC 4231, test case 2: key "Jefe".
        let sig = sign_hex(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            sig,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn provider_algorithm_vectors() {
        for (secret, payload, expected) in NODE_VECTORS {
            assert_eq!(&sign_hex(secret.as_bytes(), payload.as_bytes()), expected);
        }
    }

    #[test]
    fn verify_accepts_either_case_and_any_secret() {
        let body = b"{\"a\":1}";
        let sig = sign_hex(b"new-secret-0123456789", body);
        let upper = sig.to_uppercase();
        for header in [sig.as_bytes(), upper.as_bytes()] {
            let decoded = decode_hex_signature(header).unwrap();
            let secrets: [&[u8]; 2] = [b"old-secret-0123456789", b"new-secret-0123456789"];
            assert_eq!(verify_any(secrets, body, &decoded), Ok(()));
        }
    }

    #[test]
    fn verify_rejects_wrong_secret_body_or_format() {
        let body = b"{\"a\":1}";
        let sig = decode_hex_signature(sign_hex(b"s", body).as_bytes()).unwrap();
        let wrong: [&[u8]; 1] = [b"t"];
        assert_eq!(verify_any(wrong, body, &sig), Err(SignatureError::Mismatch));
        let right: [&[u8]; 1] = [b"s"];
        assert_eq!(
            verify_any(right, b"{\"a\":2}", &sig),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(decode_hex_signature(b"zz"), Err(SignatureError::Malformed));
        assert_eq!(
            decode_hex_signature(b"abcd"),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            decode_hex_signature(&[b'a'; 66]),
            Err(SignatureError::Malformed)
        );
    }
}
