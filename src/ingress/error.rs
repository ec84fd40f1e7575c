//! Every way ingress can refuse a request, and the one place each becomes an
//! HTTP answer (DESIGN.md section 4).
//!
//! Bodies are always `{"error": CODE, "message": TEXT}`. Messages never echo a
//! secret, a signature or the request body.

use std::time::Duration;

use http::StatusCode;
use warp::reply::Response;

pub use crate::error_body::error_response;

use crate::metrics::RequestOutcome;
use crate::verify::VerifyError;

/// How long a client is asked to wait when bodies fill `max_inflight_bytes`.
const OVERLOADED_RETRY_AFTER: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, thiserror::Error)]
pub enum IngressError {
    #[error("no webhook source is configured at this path")]
    NotFound,
    #[error("this webhook path accepts POST only")]
    MethodNotAllowed,
    #[error("the body is larger than the {limit}-byte limit (server.max_body_bytes)")]
    PayloadTooLarge { limit: u64 },
    #[error("the request was not complete within {0:?} (server.read_timeout)")]
    RequestTimeout(Duration),
    #[error("the request body could not be read")]
    BodyAborted,
    #[error(transparent)]
    Verify(#[from] VerifyError),
    #[error("this source's rate limit is exceeded; retry later")]
    RateLimited { retry_after: Duration },
    #[error("{0}")]
    InvalidJson(String),
    #[error("{0}")]
    InvalidEvent(String),
    #[error("the queue is full; retry later")]
    QueueFull { retry_after: Duration },
    #[error("the queue cannot be written right now; retry later")]
    QueueUnavailable { retry_after: Duration },
    #[error("the request line and headers are larger than {limit} bytes (server.max_header_bytes)")]
    HeadersTooLarge { limit: u64 },
    #[error(
        "too many request bodies are in memory right now (server.max_inflight_bytes); retry later"
    )]
    Overloaded,
}

impl warp::reject::Reject for IngressError {}

impl IngressError {
    pub fn status(&self) -> StatusCode {
        match self {
            IngressError::NotFound => StatusCode::NOT_FOUND,
            IngressError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            IngressError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            IngressError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            IngressError::BodyAborted => StatusCode::BAD_REQUEST,
            IngressError::Verify(
                VerifyError::InvalidSignature | VerifyError::TimestampOutOfTolerance(_),
            ) => StatusCode::FORBIDDEN,
            IngressError::Verify(_) => StatusCode::UNAUTHORIZED,
            IngressError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            IngressError::InvalidJson(_) | IngressError::InvalidEvent(_) => StatusCode::BAD_REQUEST,
            IngressError::QueueFull { .. }
            | IngressError::QueueUnavailable { .. }
            | IngressError::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            IngressError::HeadersTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        }
    }

    /// The metrics outcome, which is also the `error` code of the body.
    pub fn outcome(&self) -> RequestOutcome {
        match self {
            IngressError::NotFound => RequestOutcome::NotFound,
            IngressError::MethodNotAllowed => RequestOutcome::MethodNotAllowed,
            IngressError::PayloadTooLarge { .. } => RequestOutcome::PayloadTooLarge,
            IngressError::RequestTimeout(_) => RequestOutcome::RequestTimeout,
            IngressError::BodyAborted => RequestOutcome::InvalidJson,
            IngressError::Verify(VerifyError::MissingSignature(_)) => {
                RequestOutcome::MissingSignature
            }
            IngressError::Verify(VerifyError::MalformedSignature(..)) => {
                RequestOutcome::MalformedSignature
            }
            IngressError::Verify(
                VerifyError::InvalidSignature | VerifyError::TimestampOutOfTolerance(_),
            ) => RequestOutcome::InvalidSignature,
            IngressError::RateLimited { .. } => RequestOutcome::RateLimited,
            IngressError::InvalidJson(_) => RequestOutcome::InvalidJson,
            IngressError::InvalidEvent(_) => RequestOutcome::InvalidEvent,
            IngressError::QueueFull { .. } => RequestOutcome::QueueFull,
            IngressError::QueueUnavailable { .. } => RequestOutcome::QueueUnavailable,
            IngressError::Overloaded => RequestOutcome::Overloaded,
            IngressError::HeadersTooLarge { .. } => RequestOutcome::HeadersTooLarge,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            IngressError::BodyAborted => "bad_request",
            other => other.outcome().as_str(),
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            IngressError::RateLimited { retry_after }
            | IngressError::QueueFull { retry_after }
            | IngressError::QueueUnavailable { retry_after } => Some(*retry_after),
            IngressError::Overloaded => Some(OVERLOADED_RETRY_AFTER),
            _ => None,
        }
    }

    /// The HTTP answer for this error.
    pub fn into_response(self) -> Response {
        let mut resp = error_response(self.status(), self.code(), &self.to_string());
        let headers = resp.headers_mut();
        if let IngressError::MethodNotAllowed = self {
            headers.insert(http::header::ALLOW, http::HeaderValue::from_static("POST"));
        }
        if let Some(after) = self.retry_after() {
            let secs = after.as_secs().max(1);
            headers.insert(http::header::RETRY_AFTER, http::HeaderValue::from(secs));
        }
        if matches!(
            self,
            IngressError::PayloadTooLarge { .. }
                | IngressError::RequestTimeout(_)
                | IngressError::Overloaded
        ) {
            // The rest of the body was not read: the connection cannot be reused.
            headers.insert(
                http::header::CONNECTION,
                http::HeaderValue::from_static("close"),
            );
        }
        resp
    }
}
