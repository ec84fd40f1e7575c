//! Values that must never reach a log line, an error body or `/admin/config`:
//! a [`Secret`] string and a [`SigningKey`]'s bytes.
//!
//! `Debug` and `Display` print `<redacted>`; the value is read only through
//! `expose`, so every place that uses a secret is easy to find.

use std::fmt;

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

    /// The key bytes. Call only where a MAC is computed, never to format them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
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
