//! GitHub's scheme: `x-hub-signature-256: sha256=<hex>`, the hex of
//! HMAC-SHA256(secret, raw body bytes) behind a `sha256=` prefix.
//!
//! GitHub sends lowercase hex; either case is accepted, as for `x-signature`.
//! The prefix must be exactly `sha256=` (GitHub's legacy SHA-1
//! `x-hub-signature` header is not used).

use super::{SignatureError, decode_hex_signature, sign_hex};

/// The header GitHub signs in.
pub const HEADER: &str = "x-hub-signature-256";

const PREFIX: &[u8] = b"sha256=";

/// The value of an `x-hub-signature-256` header for `body`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    format!("sha256={}", sign_hex(secret, body))
}

/// The 32 signature bytes of an `x-hub-signature-256` value.
pub fn parse(header: &[u8]) -> Result<[u8; 32], SignatureError> {
    let hex = header
        .trim_ascii()
        .strip_prefix(PREFIX)
        .ok_or(SignatureError::Malformed)?;
    decode_hex_signature(hex)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signing::verify_any;

    // GitHub's documented example ("Validating webhook deliveries", testing
    // the webhook payload validation): this secret and payload must give
    // exactly this header.
    const DOC_SECRET: &[u8] = b"It's a Secret to Everybody";
    const DOC_PAYLOAD: &[u8] = b"Hello, World!";
    const DOC_HEADER: &str =
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    #[test]
    fn githubs_documented_example() {
        assert_eq!(sign(DOC_SECRET, DOC_PAYLOAD), DOC_HEADER);
        let parsed = parse(DOC_HEADER.as_bytes()).unwrap();
        assert_eq!(verify_any([DOC_SECRET], DOC_PAYLOAD, &parsed), Ok(()));
        assert_eq!(
            verify_any([DOC_SECRET], b"Hello, World?", &parsed),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn parse_accepts_either_case_and_refuses_other_shapes() {
        let upper = format!("sha256={}", &DOC_HEADER[7..].to_uppercase());
        assert_eq!(parse(upper.as_bytes()), parse(DOC_HEADER.as_bytes()));
        for bad in [
            &DOC_HEADER[7..],                                // no prefix
            "sha1=757107ea0eb2509fc211221cce984b8a37570b6d", // the legacy header's form
            "sha256=",
            "sha256=zz",
            "SHA256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        ] {
            assert_eq!(
                parse(bad.as_bytes()),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
    }
}
