//! What one attempt came to, and the pure "should this be retried?" decision.
//!
//! Kept apart from the retry machinery (Vector's `RetryLogic`): a target sends
//! and classifies; `delivery` decides when to try again.

use std::time::{Duration, SystemTime};

use crate::config::StatusSet;

/// How much of a failed response body is kept (DESIGN.md section 5: the
/// first 1 KiB). [`Failure::with_excerpt`] is where that rule is applied, for
/// every target kind; the store keeps what it is given.
pub const RESPONSE_EXCERPT_BYTES: usize = 1024;

/// The result of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    Delivered { status: Option<u16> },
    Failed(Failure),
}

/// A failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub class: FailureClass,
    pub status: Option<u16>,
    /// Short, secret-free description (no URLs).
    pub error: String,
    /// The receiver asked to wait this long (`Retry-After`).
    pub retry_after: Option<Duration>,
    pub response_excerpt: Option<String>,
}

impl AttemptOutcome {
    pub fn delivered(status: Option<u16>) -> Self {
        AttemptOutcome::Delivered { status }
    }
}

impl From<Failure> for AttemptOutcome {
    fn from(failure: Failure) -> Self {
        AttemptOutcome::Failed(failure)
    }
}

impl Failure {
    fn new(class: FailureClass, error: impl Into<String>) -> Self {
        Failure {
            class,
            status: None,
            error: error.into(),
            retry_after: None,
            response_excerpt: None,
        }
    }

    /// Worth trying again: no answer (connect, TLS, timeout) or a transient one.
    pub fn retryable(error: impl Into<String>) -> Self {
        Self::new(FailureClass::Retryable, error)
    }

    /// The receiver refused for good: dead-lettered at once.
    pub fn permanent(error: impl Into<String>) -> Self {
        Self::new(FailureClass::Permanent, error)
    }

    /// The message could not be rendered: dead-lettered at once.
    pub fn render_error(error: impl Into<String>) -> Self {
        Self::new(FailureClass::RenderError, error)
    }

    /// A failure of this class (from [`classify_status`]).
    pub fn of_class(class: FailureClass, error: impl Into<String>) -> Self {
        Self::new(class, error)
    }

    /// The status code the receiver answered (HTTP, or SMTP reply code).
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    pub fn with_retry_after(mut self, retry_after: Option<Duration>) -> Self {
        self.retry_after = retry_after;
        self
    }

    /// What the receiver answered, cut to [`RESPONSE_EXCERPT_BYTES`] at a
    /// character boundary.
    pub fn with_excerpt(mut self, excerpt: Option<String>) -> Self {
        self.response_excerpt = excerpt.map(|mut text| {
            let kept = truncate_at_char_boundary(&text, RESPONSE_EXCERPT_BYTES).len();
            text.truncate(kept);
            text
        });
        self
    }
}

/// At most `max` bytes of `s`, cut at a character boundary.
pub fn truncate_at_char_boundary(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// Connect/TLS errors, timeouts, statuses in `retry_on`.
    Retryable,
    /// Any other status: dead-lettered at once.
    Permanent,
    /// The message could not be rendered: dead-lettered at once.
    RenderError,
}

/// Classify an HTTP status under a target's `retry_on` set.
pub fn classify_status(status: u16, retry_on: &StatusSet) -> Option<FailureClass> {
    if (200..300).contains(&status) {
        None
    } else if retry_on.contains(status) {
        Some(FailureClass::Retryable)
    } else {
        Some(FailureClass::Permanent)
    }
}

/// Parse `Retry-After`: delay-seconds or an HTTP date (relative to `now`).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_retry_on() -> StatusSet {
        StatusSet(vec![408..=408, 425..=425, 429..=429, 500..=599])
    }

    #[test]
    fn statuses_are_classified() {
        let set = default_retry_on();
        assert_eq!(classify_status(200, &set), None);
        assert_eq!(classify_status(204, &set), None);
        for s in [408, 425, 429, 500, 503, 599] {
            assert_eq!(
                classify_status(s, &set),
                Some(FailureClass::Retryable),
                "{s}"
            );
        }
        for s in [301, 302, 400, 401, 403, 404, 410, 422] {
            assert_eq!(
                classify_status(s, &set),
                Some(FailureClass::Permanent),
                "{s}"
            );
        }
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(30))
        );
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn truncation_keeps_characters_whole() {
        assert_eq!(truncate_at_char_boundary("abc", 5), "abc");
        assert_eq!(truncate_at_char_boundary("abcdef", 3), "abc");
        assert_eq!(truncate_at_char_boundary("aé", 2), "a");
    }

    #[test]
    fn excerpts_are_cut_to_1_kib_on_a_char_boundary() {
        let long = "é".repeat(600); // 1200 bytes
        let f = Failure::permanent("x").with_excerpt(Some(long));
        let kept = f.response_excerpt.unwrap();
        assert_eq!(kept.len(), 1024);
        assert!(kept.chars().all(|c| c == 'é'));
        let f = Failure::permanent("x").with_excerpt(Some("short".into()));
        assert_eq!(f.response_excerpt.as_deref(), Some("short"));
        assert_eq!(
            Failure::permanent("x").with_excerpt(None).response_excerpt,
            None
        );
    }
}
