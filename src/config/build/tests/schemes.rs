//! Valid documents using the `github` and `standard-webhooks` signing schemes:
//! what they load into, the key-length warnings, and `--allow-missing-env`.

use super::{load_with, loaded};
use crate::config::model::*;
use crate::config::{Loaded, Severity};

/// The Standard Webhooks specification's example secret, and its key bytes
/// (the base64 after `whsec_`, decoded with Python's `base64.b64decode`).
const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SPEC_KEY: [u8; 24] = [
    49, 242, 144, 246, 191, 6, 41, 138, 171, 79, 8, 212, 60, 63, 8, 44, 246, 72, 163, 98, 218, 45,
    164, 176,
];

#[test]
fn github_and_standard_webhooks_sources_and_targets_load() {
    let yaml = format!(
        "version: 1
sources:
  - {{ name: gh, path: /gh, schema: json, verify: {{ scheme: github, secrets: [\"It's a Secret to Everybody\"] }} }}
  - {{ name: sw, path: /sw, schema: json, verify: {{ scheme: standard-webhooks, secrets: ['{SPEC_SECRET}', 'whsec_BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc', ''] }} }}
targets:
  out: {{ kind: http, url: 'http://127.0.0.1:1/', secret: '{SPEC_SECRET}', signature: {{ scheme: standard-webhooks }}, headers: {{ x-other: v }} }}
  plain: {{ kind: http, url: 'http://127.0.0.1:1/', secret: raw-secret, signature: {{ scheme: outrival }} }}
routes: [{{ name: r, match: {{}}, targets: [out, plain] }}]
"
    );
    let Loaded { config, warnings } = loaded(&yaml);
    assert!(warnings.is_empty(), "{warnings:?}");

    let gh = &config.sources[0].verify;
    assert_eq!(gh.scheme, VerifyScheme::Github);
    assert_eq!(gh.secrets.len(), 1);
    assert_eq!(gh.secrets[0].expose(), b"It's a Secret to Everybody");

    let sw = &config.sources[1].verify;
    assert_eq!(sw.scheme, VerifyScheme::StandardWebhooks);
    assert_eq!(sw.secrets.len(), 2, "the empty entry is dropped");
    assert_eq!(sw.secrets[0].expose(), SPEC_KEY);
    // Unpadded base64 of 32 bytes of 7 is accepted.
    assert_eq!(sw.secrets[1].expose(), [7u8; 32]);

    let TargetKind::Http(out) = &config.target_by_name("out").unwrap().kind else {
        panic!()
    };
    assert_eq!(out.signature.scheme, SignatureScheme::StandardWebhooks);
    assert_eq!(out.secret.as_ref().unwrap().expose(), SPEC_KEY);
    assert_eq!(out.headers[0].0.as_str(), "x-other");
    // Key material never shows in Debug output.
    let debug = format!("{config:?}");
    assert!(!debug.contains("MfKQ9r8G") && !debug.contains("Secret to Everybody"));

    let TargetKind::Http(plain) = &config.target_by_name("plain").unwrap().kind else {
        panic!()
    };
    assert_eq!(plain.signature.scheme, SignatureScheme::Outrival);
    assert_eq!(plain.secret.as_ref().unwrap().expose(), b"raw-secret");
}

#[test]
fn short_keys_are_warned_about_by_their_key_length() {
    // `whsec_AAECAwQFBgc=` is an 8-byte key in an 18-character string; the
    // github secret is 10 bytes; the spec's example key is 24 bytes.
    let yaml = format!(
        "version: 1
sources:
  - {{ name: a, path: /a, verify: {{ scheme: standard-webhooks, secrets: ['whsec_AAECAwQFBgc=', '{SPEC_SECRET}'] }} }}
  - {{ name: b, path: /b, verify: {{ scheme: github, secrets: [ten-bytes!] }} }}
targets: {{ t: {{ kind: log }} }}
unmatched: [t]
"
    );
    let Loaded { warnings, .. } = loaded(&yaml);
    let got: Vec<_> = warnings
        .iter()
        .map(|w| (w.severity, w.key_path.as_str(), w.message.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (
                Severity::Warning,
                "sources[0].verify.secrets[0]",
                "verify secret's key is shorter than 16 bytes once decoded"
            ),
            (
                Severity::Warning,
                "sources[1].verify.secrets[0]",
                "verify secret is shorter than 16 bytes"
            ),
        ]
    );
    assert!(
        warnings
            .iter()
            .all(|w| !w.to_string().contains("AAECAwQFBgc"))
    );
}

#[test]
fn unset_whsec_variables_stand_in_under_allow_missing_env() {
    let yaml = "version: 1
sources: [{ name: s, path: /in, verify: { scheme: standard-webhooks, secrets: ['${SW_SECRET}'] } }]
targets:
  t: { kind: http, url: 'http://127.0.0.1:1/', secret: '${SW_TARGET_SECRET}', signature: { scheme: standard-webhooks } }
unmatched: [t]
";
    let none = |_: &str| None;
    let errs = load_with(yaml, false, &none).unwrap_err();
    let messages: Vec<_> = errs.errors().map(|d| d.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "environment variable `SW_SECRET` is not set",
            "environment variable `SW_TARGET_SECRET` is not set"
        ]
    );
    let Loaded { config, warnings } = load_with(yaml, true, &none).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(
        config.sources[0].verify.scheme,
        VerifyScheme::StandardWebhooks
    );
}

#[test]
fn a_dedupe_window_shorter_than_the_replay_span_is_warned_about() {
    let doc = |dedupe: &str| {
        format!(
            "version: 1\n{dedupe}sources:\n  - {{ name: sw, path: /sw, schema: json, verify: {{ scheme: standard-webhooks, secrets: ['{SPEC_SECRET}'] }} }}\n"
        )
    };
    for short in ["dedupe: { window: 0s }\n", "dedupe: { window: 9m }\n"] {
        let Loaded { warnings, .. } = loaded(&doc(short));
        assert_eq!(warnings.len(), 1, "{short}: {warnings:?}");
        assert_eq!(warnings[0].key_path, "dedupe.window");
        assert!(warnings[0].message.contains("source `sw`"), "{warnings:?}");
        assert!(
            warnings[0].message.contains("shorter than 10m"),
            "{warnings:?}"
        );
    }
    for enough in ["", "dedupe: { window: 10m }\n", "dedupe: { window: 1h }\n"] {
        assert!(loaded(&doc(enough)).warnings.is_empty(), "{enough}");
    }
}
