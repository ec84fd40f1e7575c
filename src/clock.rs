//! Wall-clock time as unix milliseconds, behind a trait so tests can move it.
//!
//! Due times in the queue are wall-clock (they must survive restarts), and
//! tokio's paused time does not move the wall clock; everything that reads
//! "now" for scheduling goes through a [`Clock`].

use std::time::{SystemTime, UNIX_EPOCH};

pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since the unix epoch.
    fn now_ms(&self) -> i64;
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
}

/// RFC 3339 UTC with milliseconds (`2026-11-28T15:04:05.123Z`), the format of
/// every time hookgate shows.
pub fn format_rfc3339_ms(unix_ms: i64) -> String {
    let t = UNIX_EPOCH + std::time::Duration::from_millis(u64::try_from(unix_ms).unwrap_or(0));
    humantime::format_rfc3339_millis(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_milliseconds_in_utc() {
        assert_eq!(format_rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_rfc3339_ms(1_764_342_245_123),
            "2025-11-28T15:04:05.123Z"
        );
    }
}
