//! Signing keys from secret strings, decided once at load: a raw secret is
//! its UTF-8 bytes; a Standard Webhooks secret (`whsec_<base64>`) is decoded
//! here, so nothing downstream parses base64.
//!
//! Messages never show the value: it is a secret.

use super::super::env::Substituted;
use super::super::node::Node;
use super::super::secret::{SigningKey, WhsecError};
use super::ctx::Ctx;

/// How a secret string becomes key bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum KeyFormat {
    /// The string's UTF-8 bytes (`outrival`, `github`).
    Raw,
    /// `whsec_` + base64 of the key (`standard-webhooks`).
    Whsec,
}

/// The key of one non-empty, substituted secret at `node`; `None` after
/// reporting why a `whsec_` secret does not decode.
pub(super) fn signing_key(
    cx: &mut Ctx<'_>,
    node: &Node,
    path: &str,
    text: &Substituted,
    format: KeyFormat,
) -> Option<SigningKey> {
    match format {
        KeyFormat::Raw => Some(SigningKey::new(text.value.as_bytes())),
        // `check --allow-missing-env`: the value is still a literal `${VAR}`
        // and cannot be checked; a stand-in lets the rest of the file build
        // (such a config is only checked, never served).
        KeyFormat::Whsec if !text.unresolved.is_empty() => {
            Some(SigningKey::new(text.value.as_bytes()))
        }
        KeyFormat::Whsec => match SigningKey::from_whsec(&text.value) {
            Ok(key) => Some(key),
            Err(e) => {
                let help = match e {
                    WhsecError::MissingPrefix => {
                        "use the whole secret as the sender shows it, `whsec_` included; \
                         if you hold only the base64 key, put `whsec_` in front of it"
                    }
                    WhsecError::NotBase64 => {
                        "after `whsec_` comes the key in standard base64 (A-Z a-z 0-9 + /, \
                         `=` padding optional): check it was copied whole, without spaces \
                         or line breaks"
                    }
                    WhsecError::Empty => {
                        "put the key after `whsec_`; a new one can be made with \
                         `echo \"whsec_$(openssl rand -base64 32)\"`"
                    }
                };
                cx.error_help(node, path, format!("{e} (value not shown)"), help);
                None
            }
        },
    }
}
