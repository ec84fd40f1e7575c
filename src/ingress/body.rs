//! Reading a request body under the size limit and the read deadline.
//!
//! The limit holds with or without a `content-length`: a declared length over
//! it is refused before reading, and a chunked body is counted as it streams
//! (never answered 411). The deadline is the request's first byte plus
//! `server.read_timeout`, so a body that dribbles in (slowloris) gets 408.

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use tokio::time::Instant;

use super::error::IngressError;

/// Collect `body` into one buffer, or fail with 413 / 408.
pub async fn read_limited<S, B>(
    body: S,
    content_length: Option<u64>,
    limit: u64,
    deadline: Instant,
    read_timeout: std::time::Duration,
) -> Result<Bytes, IngressError>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    if content_length.is_some_and(|len| len > limit) {
        return Err(IngressError::PayloadTooLarge { limit });
    }
    let capacity = content_length.unwrap_or(8 * 1024).min(limit);
    let mut buf = BytesMut::with_capacity(usize::try_from(capacity).unwrap_or(8 * 1024));
    let mut body = std::pin::pin!(body);
    loop {
        let next = tokio::time::timeout_at(deadline, body.next())
            .await
            .map_err(|_| IngressError::RequestTimeout(read_timeout))?;
        match next {
            None => return Ok(buf.freeze()),
            Some(Err(_)) => return Err(IngressError::BodyAborted),
            Some(Ok(mut chunk)) => {
                let len = chunk.remaining() as u64;
                if buf.len() as u64 + len > limit {
                    return Err(IngressError::PayloadTooLarge { limit });
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
