//! Reading a request body under the size limit and the read deadline.
//!
//! The limit holds with or without a `content-length`: a declared length over
//! it is refused before reading, and a chunked body is counted as it streams
//! (never answered 411). The deadline is the request's first byte plus
//! `server.read_timeout`, so a body that dribbles in (slowloris) gets 408.
//! With a [`BodyBudget`], the bytes are reserved from it first (503
//! `overloaded` when there is no room; see `budget.rs`).

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use tokio::time::Instant;

use super::budget::{BodyBudget, BodyHold};
use super::error::IngressError;

/// Collect `body` into one buffer, or fail with 413 / 408 / 503. The hold
/// that comes back with the body is its share of `budget`: keep it until
/// the body is no longer needed.
pub async fn read_limited<S, B>(
    body: S,
    content_length: Option<u64>,
    limit: u64,
    deadline: Instant,
    read_timeout: std::time::Duration,
    budget: Option<&BodyBudget>,
) -> Result<(Bytes, BodyHold), IngressError>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    if content_length.is_some_and(|len| len > limit) {
        return Err(IngressError::PayloadTooLarge { limit });
    }
    let mut hold = match (budget, content_length) {
        (Some(budget), Some(len)) => budget
            .reserve(len, deadline)
            .await
            .map_err(|_| IngressError::Overloaded)?,
        _ => BodyHold::default(),
    };
    // A chunked body reserves as it arrives (a declared length is covered).
    let growing = budget.filter(|_| content_length.is_none());
    let capacity = content_length.unwrap_or(8 * 1024).min(limit);
    let mut buf = BytesMut::with_capacity(usize::try_from(capacity).unwrap_or(8 * 1024));
    let mut body = std::pin::pin!(body);
    loop {
        let next = tokio::time::timeout_at(deadline, body.next())
            .await
            .map_err(|_| IngressError::RequestTimeout(read_timeout))?;
        match next {
            None => return Ok((buf.freeze(), hold)),
            Some(Err(_)) => return Err(IngressError::BodyAborted),
            Some(Ok(mut chunk)) => {
                let len = chunk.remaining() as u64;
                if buf.len() as u64 + len > limit {
                    return Err(IngressError::PayloadTooLarge { limit });
                }
                if let Some(budget) = growing {
                    budget
                        .grow(&mut hold, buf.len() as u64 + len)
                        .map_err(|_| IngressError::Overloaded)?;
                }
                while chunk.has_remaining() {
                    let part = chunk.chunk();
                    buf.extend_from_slice(part);
                    let n = part.len();
                    chunk.advance(n);
                }
            }
        }
    }
}
