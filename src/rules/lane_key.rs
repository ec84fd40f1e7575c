//! The key that orders a delivery (a target's `ordering.key`, DESIGN.md
//! section 6): the value at a payload path, written as text the store can
//! compare and index.
//!
//! The text is the value's compact JSON (`"cmp_123"`, `42`, `{"a":1}`), so
//! `"1"` and `1` are different keys, as they are different values to the
//! matcher. A value longer than [`MAX_KEY_TEXT`] is kept as `sha256:` and
//! the hex digest of that JSON, which bounds what a lane costs the store
//! whatever the payload holds. An absent path gives [`NO_KEY`], the one
//! shared "no key" lane; no JSON text is empty, so it cannot collide.

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::lookup;

/// The key of events whose path is absent.
pub const NO_KEY: &str = "";

/// The longest key text kept as it is.
pub const MAX_KEY_TEXT: usize = 256;

/// The lane key of `event` under the payload path `path`.
pub fn lane_key<S: AsRef<str>>(event: &Value, path: &[S]) -> String {
    match lookup(event, path) {
        None => NO_KEY.to_owned(),
        Some(value) => {
            let text = value.to_string();
            if text.len() <= MAX_KEY_TEXT {
                text
            } else {
                format!("sha256:{}", hex::encode(Sha256::digest(text.as_bytes())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn keys_are_the_values_json_and_types_differ() {
        let e = json!({"companionId": "cmp_1", "n": 1, "s": "1", "data": {"status": "ended"}});
        assert_eq!(lane_key(&e, &["companionId"]), "\"cmp_1\"");
        assert_eq!(lane_key(&e, &["n"]), "1");
        assert_eq!(lane_key(&e, &["s"]), "\"1\"");
        assert_eq!(lane_key(&e, &["data", "status"]), "\"ended\"");
        assert_eq!(lane_key(&e, &["missing"]), NO_KEY);
    }

    #[test]
    fn long_keys_are_hashed_and_stay_distinct() {
        let a = json!({"k": "a".repeat(1000)});
        let b = json!({"k": "b".repeat(1000)});
        let ka = lane_key(&a, &["k"]);
        assert!(ka.starts_with("sha256:") && ka.len() == 7 + 64, "{ka}");
        assert_ne!(ka, lane_key(&b, &["k"]));
        assert_eq!(ka, lane_key(&a, &["k"]));
    }
}
