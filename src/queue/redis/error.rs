//! Redis errors as store errors: what kind of failure, never the URL (it
//! may hold a password) and never stored data.

use redis::RedisError;

use crate::queue::StoreError;

/// The code our scripts use for a refused write (`redis.error_reply`).
const REFUSED: &str = "HOOKGATE";

/// Errors a caller should read as "the queue cannot be written now".
pub(super) fn redis_error(e: &RedisError) -> StoreError {
    if e.code() == Some(REFUSED) {
        let why = e.detail().unwrap_or("invalid write");
        return StoreError::Unavailable(format!("redis: refused: {why}"));
    }
    let what = if e.is_connection_refusal() {
        "connection refused".to_owned()
    } else if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connection_dropped() || e.is_io_error() {
        "connection lost".to_owned()
    } else if let Some(code) = e.code() {
        format!("server error {code}")
    } else {
        format!("{:?}", e.kind())
    };
    StoreError::Unavailable(format!("redis: {what}"))
}
