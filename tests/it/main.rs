//! hookgate's integration tests, compiled as one binary.
//!
//! Real parts throughout: the gateway in process on loopback port 0 or the real
//! binary, a recording HTTP server as the downstream, a real SMTP server process, real sockets for the
//! slow and oversized clients.

#[path = "../common/mod.rs"]
mod common;

mod admin_api;
mod backlog;
mod backup;
mod battery;
mod binary;
mod cli_docs;
mod console;
mod delivery;
mod deploy;
mod docs;
mod email;
mod engine;
mod fuzz_regressions;
mod ingress;
mod limits_source;
mod limits_target;
mod log_target;
mod metrics;
mod ordering;
mod overview;
mod pressure;
mod redaction;
mod reload;
mod reload_triggers;
mod replicas;
mod routing;
mod rule_tests;
mod schemes;
mod slack;
mod store_redis;
mod store_sqlite;
