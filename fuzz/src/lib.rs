//! Helpers shared by hookgate's fuzz targets (`fuzz_targets/*.rs`): loading
//! the fixed configs the targets run against, and the plain serde_json parse
//! the pruned event decoder is compared with.

use std::path::Path;

use hookgate::config::{Config, LoadOptions, load_bytes};
use serde_json::Value;

/// Load a config fixture that must be valid (no environment variables set,
/// so every `${VAR:-default}` takes its default). A fixture that does not
/// load is a bug in the fuzz crate, reported before any input runs.
pub fn fixture_config(name: &str, yaml: &str) -> Config {
    let none = |_: &str| None;
    let options = LoadOptions {
        allow_missing_env: false,
        lookup: &none,
    };
    match load_bytes(Path::new(name), yaml.as_bytes(), &options) {
        Ok(loaded) => loaded.config,
        Err(e) => panic!("fuzz fixture {name} does not load:\n{e}"),
    }
}

/// The full parse: the whole body into a `serde_json::Value`, with
/// serde_json's recursion limit lifted as hookgate lifts it (call it only on a
/// body whose nesting is already known to be bounded).
pub fn full_parse_unbounded(body: &[u8]) -> Result<Value, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(body);
    de.disable_recursion_limit();
    let value = serde::Deserialize::deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

/// The full parse as `serde_json::from_slice` does it, with its own
/// recursion limit (127 nested arrays and objects).
pub fn full_parse(body: &[u8]) -> Result<Value, serde_json::Error> {
    serde_json::from_slice(body)
}

/// How deeply the arrays and objects of a JSON text nest, brackets inside
/// strings not counted (the top-level container is depth 1). Independent of
/// hookgate's own scan, for checking it.
pub fn nesting(body: &[u8]) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    let mut in_string = false;
    let mut bytes = body.iter();
    while let Some(&b) = bytes.next() {
        match (in_string, b) {
            (true, b'\\') => {
                bytes.next();
            }
            (true, b'"') | (false, b'"') => in_string = !in_string,
            (false, b'{' | b'[') => {
                depth += 1;
                max = max.max(depth);
            }
            (false, b'}' | b']') => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}
