//! Stage 2 of loading: walk the YAML tree into a validated [`Config`]. (stub)

use std::path::Path;

use super::{ConfigError, LoadOptions, Loaded};

pub(super) fn build(
    _path: &Path,
    _bytes: &[u8],
    _options: &LoadOptions<'_>,
) -> Result<Loaded, ConfigError> {
    Err(ConfigError {
        diagnostics: Vec::new(),
    })
}
