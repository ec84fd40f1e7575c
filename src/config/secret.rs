//! Values that must never reach a log line, an error body or `/admin/config`:
//! a [`Secret`] string and a [`SigningKey`]'s bytes.
//!
//! `Debug` and `Display` print `<redacted>`; the value is read only through
//! `expose`, so every place that uses a secret is easy to find.
//!
//! A Standard Webhooks `whsec_<base64>` secret is decoded here
//! ([`SigningKey::from_whsec`]), at load, so `signing` only ever sees key bytes.

use std::fmt;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret value itself. Call only where it is used (signing, auth),
    /// never to format it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The bytes an HMAC is keyed with, decided once at load: a raw secret's
/// UTF-8 bytes (`outrival`, `github`), or the decoded base64 of a
/// `whsec_<base64>` secret (`standard-webhooks`). Nothing downstream decodes
/// anything; signing code takes [`SigningKey::expose`] as it is.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey(Vec<u8>);

impl SigningKey {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        SigningKey(bytes.into())
    }

    /// The key of a Standard Webhooks `whsec_<base64>` secret: the decoded
    /// base64 after the prefix.
    ///
    /// The prefix is required: without it a hex or plain-text secret that
    /// happens to be valid base64 would silently become a different key from
    /// the one the other side uses. Padding is optional.
    pub fn from_whsec(secret: &str) -> Result<SigningKey, WhsecError> {
        let encoded = secret
            .strip_prefix(WHSEC_PREFIX)
            .ok_or(WhsecError::MissingPrefix)?;
        let key = WHSEC_BASE64
            .decode(encoded)
            .map_err(|_| WhsecError::NotBase64)?;
        if key.is_empty() {
            return Err(WhsecError::Empty);
        }
        Ok(SigningKey(key))
    }

    /// The key bytes. Call only where a MAC is computed, never to format them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

/// What every Standard Webhooks secret starts with.
const WHSEC_PREFIX: &str = "whsec_";

/// Standard base64 that accepts its input with or without `=` padding:
/// senders differ, and the padding carries no information.
const WHSEC_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a `whsec_` secret could not be decoded. The messages never hold the
/// secret itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WhsecError {
    #[error("a Standard Webhooks secret must start with `whsec_`")]
    MissingPrefix,
    #[error("the part after `whsec_` is not standard base64")]
    NotBase64,
    #[error("the part after `whsec_` is empty")]
    Empty,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting_never_shows_the_value() {
        let s = Secret::new("hunter2-very-secret");
        assert_eq!(format!("{s}"), "<redacted>");
        assert_eq!(format!("{s:?}"), "<redacted>");
        assert_eq!(s.expose(), "hunter2-very-secret");
        let k = SigningKey::new(b"hunter2-key".to_vec());
        assert_eq!(format!("{k} {k:?}"), "<redacted> <redacted>");
        assert_eq!(k.expose(), b"hunter2-key");
    }

    #[test]
    fn whsec_secrets_need_the_prefix_and_base64() {
        use base64::engine::general_purpose::STANDARD;

        // The Standard Webhooks specification's example secret: 24 key bytes.
        let spec = SigningKey::from_whsec("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            spec.expose(),
            STANDARD.decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap()
        );
        assert_eq!(spec.expose().len(), 24);

        assert_eq!(
            SigningKey::from_whsec("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            Err(WhsecError::MissingPrefix)
        );
        assert_eq!(
            SigningKey::from_whsec("whsec_not base64!"),
            Err(WhsecError::NotBase64)
        );
        assert_eq!(SigningKey::from_whsec("whsec_"), Err(WhsecError::Empty));
        // 32 bytes: 44 characters with padding, 43 without; both decode.
        let padded = format!("whsec_{}", STANDARD.encode([7u8; 32]));
        assert!(padded.ends_with('='));
        assert_eq!(
            SigningKey::from_whsec(&padded),
            Ok(SigningKey::new(vec![7u8; 32]))
        );
        assert_eq!(
            SigningKey::from_whsec(padded.trim_end_matches('=')),
            Ok(SigningKey::new(vec![7u8; 32]))
        );
        // The error never holds the secret.
        let e = SigningKey::from_whsec("whsec_TOPSECRET!!")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("TOPSECRET"), "{e}");
    }
}

/// A URL as it may be shown: its userinfo and query are secrets (DESIGN.md
/// section 10), so they become `<redacted>`.
pub fn redacted_url(url: &reqwest::Url) -> String {
    let mut shown = url.clone();
    if !shown.username().is_empty() || shown.password().is_some() {
        let _ = shown.set_username("redacted");
        let _ = shown.set_password(None);
    }
    if shown.query().is_some() {
        shown.set_query(Some("redacted"));
    }
    shown.to_string()
}

#[cfg(test)]
mod url_tests {
    use super::redacted_url;

    #[test]
    fn userinfo_and_query_are_hidden() {
        let url =
            reqwest::Url::parse("https://user:pw@crm.example.com:8443/hooks?key=abc").unwrap();
        let shown = redacted_url(&url);
        assert_eq!(
            shown,
            "https://redacted@crm.example.com:8443/hooks?redacted"
        );
        let plain = reqwest::Url::parse("http://127.0.0.1:3000/hooks").unwrap();
        assert_eq!(redacted_url(&plain), "http://127.0.0.1:3000/hooks");
    }
}
