//! Fuzz target: the config loader on arbitrary bytes (YAML text → `Config`
//! or a diagnostic).
//!
//! Properties, beyond "no panic":
//! - an error holds at least one error-level diagnostic, each naming the file
//!   it was given;
//! - a syntax error (the text is not UTF-8 or not YAML) has a line and a
//!   column, and the rendered message shows them (`rules.yaml:L:C`);
//! - with `--allow-missing-env`, a file that loads without it loads too;
//! - a loaded config compiles into a route plan and has a summary, and its
//!   version is the sha256 of the bytes.

#![no_main]

use std::path::Path;

use hookgate::config::{ConfigError, LoadOptions, Severity, load_bytes, summary};
use hookgate::rules::RoutePlan;
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};

const FILE: &str = "rules.yaml";

/// A few variables are set, so `${VAR}` resolves as well as fails.
fn lookup(name: &str) -> Option<String> {
    match name {
        "SECRET" => Some("fuzz-secret-0123456789".to_owned()),
        "WHSEC" => Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned()),
        "PORT" => Some("8080".to_owned()),
        "EMPTY" => Some(String::new()),
        _ => None,
    }
}

fn check_error(err: &ConfigError) {
    assert!(
        err.errors().next().is_some(),
        "an error without an error-level diagnostic: {err:?}"
    );
    for d in &err.diagnostics {
        assert_eq!(d.file, Path::new(FILE), "{d:?}");
        let syntax = d.message.starts_with("invalid YAML") || d.message.contains("not valid UTF-8");
        if syntax {
            assert!(
                d.line > 0 && d.column > 0,
                "a syntax error without a location: {d:?}"
            );
            let shown = d.to_string();
            let at = format!("{FILE}:{}:{}", d.line, d.column);
            assert!(shown.contains(&at), "{shown:?} does not show {at}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut loaded_strict = false;
    for allow_missing_env in [false, true] {
        let options = LoadOptions {
            allow_missing_env,
            lookup: &lookup,
        };
        match load_bytes(Path::new(FILE), data, &options) {
            Ok(loaded) => {
                let config = loaded.config;
                assert_eq!(config.version, hex(&Sha256::digest(data)));
                assert!(
                    loaded
                        .warnings
                        .iter()
                        .all(|w| w.severity == Severity::Warning)
                );
                let _plan = RoutePlan::compile(&config);
                let _summary = summary(&config);
                loaded_strict |= !allow_missing_env;
            }
            Err(err) => {
                check_error(&err);
                assert!(
                    !loaded_strict,
                    "loads without --allow-missing-env but not with it: {err}"
                );
            }
        }
    }
});

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
