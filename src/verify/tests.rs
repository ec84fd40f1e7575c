//! Unit tests of [`super::verify`]: each scheme's accept path, and each
//! failure mapped to its class (401 missing/malformed, 403 invalid).

use http::{HeaderMap, HeaderName, HeaderValue};

use super::*;
use crate::config::SigningKey;

fn config(scheme: VerifyScheme, keys: &[&[u8]]) -> VerifyConfig {
    VerifyConfig {
        scheme,
        secrets: keys.iter().map(|k| SigningKey::new(*k)).collect(),
    }
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, value) in pairs {
        h.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    h
}

// ---- outrival ---------------------------------------------------------------

#[test]
fn outrival_accepts_current_or_previous_secret() {
    let body = br#"{"event":"status-changed"}"#;
    let cfg = config(
        VerifyScheme::Outrival,
        &[b"current-secret-123456", b"previous-secret-12345"],
    );
    for secret in ["current-secret-123456", "previous-secret-12345"] {
        let sig = signing::sign_hex(secret.as_bytes(), body);
        assert_eq!(
            verify(&cfg, &headers(&[("x-signature", &sig)]), body, 0),
            Ok(())
        );
    }
}

#[test]
fn outrival_maps_each_failure_to_its_class() {
    let body = b"{}";
    let cfg = config(VerifyScheme::Outrival, &[b"s3cret-s3cret-s3cret"]);
    assert_eq!(
        verify(&cfg, &HeaderMap::new(), body, 0),
        Err(VerifyError::MissingSignature("x-signature"))
    );
    assert_eq!(
        verify(&cfg, &headers(&[("x-signature", "not-hex")]), body, 0),
        Err(VerifyError::MalformedSignature(
            "x-signature",
            Malformed::NotHex
        ))
    );
    let good = signing::sign_hex(b"s3cret-s3cret-s3cret", body);
    assert_eq!(
        verify(
            &cfg,
            &headers(&[("x-signature", &good), ("x-signature", &good)]),
            body,
            0
        ),
        Err(VerifyError::MalformedSignature(
            "x-signature",
            Malformed::GivenTwice
        ))
    );
    let other = signing::sign_hex(b"other", body);
    assert_eq!(
        verify(&cfg, &headers(&[("x-signature", &other)]), body, 0),
        Err(VerifyError::InvalidSignature)
    );
}

#[test]
fn scheme_none_accepts_anything() {
    let cfg = config(VerifyScheme::None, &[]);
    assert_eq!(verify(&cfg, &HeaderMap::new(), b"x", 0), Ok(()));
}

// ---- github -----------------------------------------------------------------

/// GitHub's documented example.
const GH_SECRET: &[u8] = b"It's a Secret to Everybody";
const GH_BODY: &[u8] = b"Hello, World!";
const GH_HEADER: &str = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

#[test]
fn github_accepts_its_documented_example_under_any_secret() {
    let cfg = config(
        VerifyScheme::Github,
        &[b"an-older-secret-0123456", GH_SECRET],
    );
    let h = headers(&[("x-hub-signature-256", GH_HEADER)]);
    assert_eq!(verify(&cfg, &h, GH_BODY, 0), Ok(()));
    assert_eq!(
        verify(&cfg, &h, b"Hello, World?", 0),
        Err(VerifyError::InvalidSignature)
    );
}

#[test]
fn github_maps_each_failure_to_its_class() {
    let cfg = config(VerifyScheme::Github, &[GH_SECRET]);
    // The outrival header is not GitHub's.
    let bare_hex = &GH_HEADER["sha256=".len()..];
    assert_eq!(
        verify(&cfg, &headers(&[("x-signature", bare_hex)]), GH_BODY, 0),
        Err(VerifyError::MissingSignature("x-hub-signature-256"))
    );
    for bad in [
        bare_hex,
        "sha256=xyz",
        "sha1=757107ea0eb2509fc211221cce984b8a37570b6d",
    ] {
        assert_eq!(
            verify(&cfg, &headers(&[("x-hub-signature-256", bad)]), GH_BODY, 0),
            Err(VerifyError::MalformedSignature(
                "x-hub-signature-256",
                Malformed::NotGithubFormat
            )),
            "{bad}"
        );
    }
    assert_eq!(
        verify(
            &cfg,
            &headers(&[
                ("x-hub-signature-256", GH_HEADER),
                ("x-hub-signature-256", GH_HEADER)
            ]),
            GH_BODY,
            0
        ),
        Err(VerifyError::MalformedSignature(
            "x-hub-signature-256",
            Malformed::GivenTwice
        ))
    );
    let wrong = config(VerifyScheme::Github, &[b"not-the-secret-0123456"]);
    assert_eq!(
        verify(
            &wrong,
            &headers(&[("x-hub-signature-256", GH_HEADER)]),
            GH_BODY,
            0
        ),
        Err(VerifyError::InvalidSignature)
    );
}

// ---- standard-webhooks ------------------------------------------------------

/// The Standard Webhooks specification's published example.
const SW_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SW_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const SW_TS: &str = "1614265330";
const SW_NOW_MS: i64 = 1_614_265_330_000;
const SW_BODY: &[u8] = br#"{"test": 2432232314}"#;
const SW_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

fn sw_config() -> VerifyConfig {
    config(
        VerifyScheme::StandardWebhooks,
        &[SigningKey::from_whsec(SW_SECRET).unwrap().expose()],
    )
}

fn sw_headers(id: &str, ts: &str, sig: &str) -> HeaderMap {
    headers(&[
        ("webhook-id", id),
        ("webhook-timestamp", ts),
        ("webhook-signature", sig),
    ])
}

#[test]
fn standard_webhooks_accepts_the_specifications_example() {
    let h = sw_headers(SW_ID, SW_TS, SW_SIG);
    assert_eq!(verify(&sw_config(), &h, SW_BODY, SW_NOW_MS), Ok(()));
    // Among other signatures, and with another (rotated) key configured first.
    let rotated = config(
        VerifyScheme::StandardWebhooks,
        &[
            b"the-new-key-0123456789",
            SigningKey::from_whsec(SW_SECRET).unwrap().expose(),
        ],
    );
    let several = format!("v1,bm9wZQ== v1a,abc {SW_SIG}");
    let h = sw_headers(SW_ID, SW_TS, &several);
    assert_eq!(verify(&rotated, &h, SW_BODY, SW_NOW_MS), Ok(()));
}

#[test]
fn standard_webhooks_tolerance_is_five_minutes_either_way() {
    let h = sw_headers(SW_ID, SW_TS, SW_SIG);
    let cfg = sw_config();
    for now in [SW_NOW_MS - 300_000, SW_NOW_MS + 300_000] {
        assert_eq!(verify(&cfg, &h, SW_BODY, now), Ok(()), "now = {now}");
    }
    // The timestamp is 301 s behind now: stale.
    let err = verify(&cfg, &h, SW_BODY, SW_NOW_MS + 301_000).unwrap_err();
    assert_eq!(err, VerifyError::TimestampOutOfTolerance(Skew::Past));
    assert_eq!(
        err.to_string(),
        "the webhook-timestamp header is more than 5 minutes old"
    );
    // 301 s ahead of now: in the future.
    let err = verify(&cfg, &h, SW_BODY, SW_NOW_MS - 301_000).unwrap_err();
    assert_eq!(err, VerifyError::TimestampOutOfTolerance(Skew::Future));
    assert!(err.to_string().contains("in the future"), "{err}");
    // Absurd timestamps do not overflow.
    let h = sw_headers(SW_ID, "9223372036854775807", SW_SIG);
    assert_eq!(
        verify(&cfg, &h, SW_BODY, SW_NOW_MS),
        Err(VerifyError::TimestampOutOfTolerance(Skew::Future))
    );
}

#[test]
fn standard_webhooks_missing_and_malformed_headers_are_401_classes() {
    let cfg = sw_config();
    for missing in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        let mut h = sw_headers(SW_ID, SW_TS, SW_SIG);
        h.remove(missing);
        assert_eq!(
            verify(&cfg, &h, SW_BODY, SW_NOW_MS),
            Err(VerifyError::MissingSignature(
                [sw::ID_HEADER, sw::TIMESTAMP_HEADER, sw::SIGNATURE_HEADER]
                    .into_iter()
                    .find(|n| *n == missing)
                    .unwrap()
            ))
        );
        let mut h = sw_headers(SW_ID, SW_TS, SW_SIG);
        let again = h.get(missing).unwrap().clone();
        h.append(HeaderName::from_static(missing), again);
        assert!(
            matches!(
                verify(&cfg, &h, SW_BODY, SW_NOW_MS),
                Err(VerifyError::MalformedSignature(name, Malformed::GivenTwice)) if name == missing
            ),
            "{missing} twice"
        );
    }
    let cases = [
        (
            sw_headers("", SW_TS, SW_SIG),
            "webhook-id",
            Malformed::Empty,
        ),
        (
            sw_headers(SW_ID, "2021-02-25T15:02:10Z", SW_SIG),
            "webhook-timestamp",
            Malformed::NotTimestamp,
        ),
        (
            sw_headers(SW_ID, SW_TS, "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="),
            "webhook-signature",
            Malformed::NoV1Signature,
        ),
        (
            sw_headers(
                SW_ID,
                SW_TS,
                "v1a,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            ),
            "webhook-signature",
            Malformed::NoV1Signature,
        ),
    ];
    for (h, header, problem) in cases {
        assert_eq!(
            verify(&cfg, &h, SW_BODY, SW_NOW_MS),
            Err(VerifyError::MalformedSignature(
                [sw::ID_HEADER, sw::TIMESTAMP_HEADER, sw::SIGNATURE_HEADER]
                    .into_iter()
                    .find(|n| *n == header)
                    .unwrap(),
                problem
            ))
        );
    }
    // Milliseconds instead of seconds: a well-formed number, far in the
    // future, so 403 rather than 401.
    let h = sw_headers(SW_ID, "1614265330000", SW_SIG);
    assert_eq!(
        verify(&cfg, &h, SW_BODY, SW_NOW_MS),
        Err(VerifyError::TimestampOutOfTolerance(Skew::Future))
    );
}

#[test]
fn standard_webhooks_mismatches_are_403_and_never_echo_the_signature() {
    let cfg = sw_config();
    // Wrong key.
    let other = config(VerifyScheme::StandardWebhooks, &[b"another-key-0123456789"]);
    let h = sw_headers(SW_ID, SW_TS, SW_SIG);
    let err = verify(&other, &h, SW_BODY, SW_NOW_MS).unwrap_err();
    assert_eq!(err, VerifyError::InvalidSignature);
    assert!(!err.to_string().contains("g0hM9SsE"), "{err}");
    // The id and timestamp are signed too: changing either breaks the match.
    let h = sw_headers("msg_other", SW_TS, SW_SIG);
    assert_eq!(
        verify(&cfg, &h, SW_BODY, SW_NOW_MS),
        Err(VerifyError::InvalidSignature)
    );
    let h = sw_headers(SW_ID, "1614265331", SW_SIG);
    assert_eq!(
        verify(&cfg, &h, SW_BODY, SW_NOW_MS),
        Err(VerifyError::InvalidSignature)
    );
    // A stale timestamp is reported as such whatever the signature.
    let h = sw_headers(SW_ID, SW_TS, SW_SIG);
    let err = verify(&other, &h, SW_BODY, SW_NOW_MS + 3_600_000).unwrap_err();
    assert_eq!(err, VerifyError::TimestampOutOfTolerance(Skew::Past));
}
