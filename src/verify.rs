//! Inbound verification: is this request really from the source's provider?
//!
//! Pure: takes the source's verify settings, the request headers and the raw body
//! bytes exactly as received, and answers before anything parses the body.
//! Built on [`crate::signing`].

use http::HeaderMap;

use crate::config::{VerifyConfig, VerifyScheme};
use crate::signing::{self, SignatureError};

/// The header the outrival scheme signs in.
pub const OUTRIVAL_HEADER: &str = "x-signature";

/// Why a request was refused (DESIGN.md section 4: 401 or 403).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// 401 `missing_signature`.
    #[error("the {0} header is missing")]
    MissingSignature(&'static str),
    /// 401 `malformed_signature`.
    #[error("the {0} header is not a hex HMAC-SHA256 signature")]
    MalformedSignature(&'static str),
    /// 403 `invalid_signature`.
    #[error("the signature does not match the body under any configured secret")]
    InvalidSignature,
}

/// Check one request against a source's verify settings.
pub fn verify(config: &VerifyConfig, headers: &HeaderMap, body: &[u8]) -> Result<(), VerifyError> {
    match config.scheme {
        VerifyScheme::None => Ok(()),
        VerifyScheme::Outrival => {
            let header = headers
                .get(OUTRIVAL_HEADER)
                .ok_or(VerifyError::MissingSignature(OUTRIVAL_HEADER))?;
            let signature = signing::decode_hex_signature(header.as_bytes())
                .map_err(|_| VerifyError::MalformedSignature(OUTRIVAL_HEADER))?;
            signing::verify_any(
                config.secrets.iter().map(|s| s.expose().as_bytes()),
                body,
                &signature,
            )
            .map_err(|e| match e {
                SignatureError::Malformed => VerifyError::MalformedSignature(OUTRIVAL_HEADER),
                SignatureError::Mismatch => VerifyError::InvalidSignature,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn outrival(secrets: &[&str]) -> VerifyConfig {
        VerifyConfig {
            scheme: VerifyScheme::Outrival,
            secrets: secrets.iter().map(|s| Secret::new(*s)).collect(),
        }
    }

    fn headers(sig: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(OUTRIVAL_HEADER, sig.parse().unwrap());
        h
    }

    #[test]
    fn accepts_current_or_previous_secret() {
        let body = br#"{"event":"status-changed"}"#;
        let cfg = outrival(&["current-secret-123456", "previous-secret-12345"]);
        for secret in ["current-secret-123456", "previous-secret-12345"] {
            let sig = signing::sign_hex(secret.as_bytes(), body);
            assert_eq!(verify(&cfg, &headers(&sig), body), Ok(()));
        }
    }

    #[test]
    fn maps_each_failure_to_its_class() {
        let body = b"{}";
        let cfg = outrival(&["s3cret-s3cret-s3cret"]);
        assert_eq!(
            verify(&cfg, &HeaderMap::new(), body),
            Err(VerifyError::MissingSignature("x-signature"))
        );
        assert_eq!(
            verify(&cfg, &headers("not-hex"), body),
            Err(VerifyError::MalformedSignature("x-signature"))
        );
        let other = signing::sign_hex(b"other", body);
        assert_eq!(
            verify(&cfg, &headers(&other), body),
            Err(VerifyError::InvalidSignature)
        );
    }

    #[test]
    fn scheme_none_accepts_anything() {
        let cfg = VerifyConfig {
            scheme: VerifyScheme::None,
            secrets: vec![],
        };
        assert_eq!(verify(&cfg, &HeaderMap::new(), b"x"), Ok(()));
    }
}
