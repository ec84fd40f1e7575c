//! hookgate: a rule-based webhook gateway.
pub mod config;
pub mod queue;
pub mod templates;
