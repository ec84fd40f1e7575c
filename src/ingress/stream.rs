//! A connection's bytes as hyper sees them, with three things hyper does not
//! do on its own:
//!
//! - **First-byte time.** When the first byte of the next request arrived, so
//!   `server.read_timeout` counts from it (see `body.rs`).
//! - **JSON bodies for hyper's own refusals.** A request hyper cannot parse
//!   (a NUL in a header value, too many headers, a head over
//!   `server.max_header_bytes`) never reaches the service: hyper writes a
//!   bare `400`/`431` with an empty body and closes. DESIGN.md section 4 says
//!   every error body is `{"error", "message"}`, so the head hyper writes is
//!   recognised here (an error status, `connection: close`,
//!   `content-length: 0`, which no answer of hookgate's has) and replaced by
//!   the same status with a JSON body.
//! - **Lingering close.** Closing a socket while the client is still sending
//!   makes the kernel answer with a reset, which can destroy the answer the
//!   client has not read yet (a 413 for a 10 MiB body, a 431 for a huge
//!   head). After any answer that closes the connection, the socket is handed
//!   to a short task that sends FIN and reads and discards what still comes,
//!   for at most [`LINGER_FOR`] and [`LINGER_BYTES`], as nginx's
//!   `lingering_close` does.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

/// How long a closing connection's late input is read and thrown away.
const LINGER_FOR: Duration = Duration::from_secs(2);
/// How much of it at most.
const LINGER_BYTES: usize = 16 << 20;

/// A TCP stream that remembers when the first byte of the next request arrived.
pub(super) struct ConnStream {
    /// `None` only once dropped (the socket went to [`linger`]).
    inner: Option<TcpStream>,
    pub(super) first_byte: Arc<FirstByte>,
    /// A replacement being written for hyper's own refusal: the bytes, how
    /// many are written, and how many of hyper's bytes they stand for.
    replacing: Option<(Vec<u8>, usize, usize)>,
    /// An answer said `connection: close`: linger when dropped.
    closing: bool,
}

impl ConnStream {
    pub(super) fn new(inner: TcpStream) -> Self {
        ConnStream {
            inner: Some(inner),
            first_byte: Arc::new(FirstByte::new()),
            replacing: None,
            closing: false,
        }
    }

    fn io(&mut self) -> io::Result<Pin<&mut TcpStream>> {
        match &mut self.inner {
            Some(stream) => Ok(Pin::new(stream)),
            None => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    /// Write the rest of a replacement; `Ready(Ok(n))` reports hyper's `n`
    /// bytes as written once all of it is out.
    fn poll_replacement(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        loop {
            let Some((bytes, written, stands_for)) = self.replacing.take() else {
                return Poll::Ready(Ok(0));
            };
            if written == bytes.len() {
                return Poll::Ready(Ok(stands_for));
            }
            let poll = self.io()?.poll_write(cx, &bytes[written..]);
            match poll {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => self.replacing = Some((bytes, written + n, stands_for)),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    self.replacing = Some((bytes, written, stands_for));
                    return Poll::Pending;
                }
            }
        }
    }
}

impl Drop for ConnStream {
    fn drop(&mut self) {
        if !self.closing {
            return;
        }
        if let (Some(stream), Ok(runtime)) =
            (self.inner.take(), tokio::runtime::Handle::try_current())
        {
            runtime.spawn(linger(stream));
        }
    }
}

/// Send FIN after the answer, then read and drop what the client still sends.
async fn linger(mut stream: TcpStream) {
    let _ = stream.shutdown().await;
    let deadline = tokio::time::Instant::now() + LINGER_FOR;
    let mut scratch = [0u8; 16 * 1024];
    let mut read = 0;
    while read < LINGER_BYTES {
        match tokio::time::timeout_at(deadline, stream.read(&mut scratch)).await {
            Ok(Ok(n)) if n > 0 => read += n,
            _ => break,
        }
    }
}

/// The instant of the first byte read since the last request took it.
pub(super) struct FirstByte {
    base: Instant,
    /// Nanoseconds after `base` plus one; 0 = not set.
    at: AtomicU64,
}

impl FirstByte {
    fn new() -> Self {
        FirstByte {
            base: Instant::now(),
            at: AtomicU64::new(0),
        }
    }

    fn mark(&self) {
        if self.at.load(Ordering::Relaxed) == 0 {
            let nanos = u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX - 1);
            let _ = self
                .at
                .compare_exchange(0, nanos + 1, Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    /// Take the mark, so the next request's first byte sets it again.
    pub(super) fn take(&self) -> Option<Instant> {
        match self.at.swap(0, Ordering::Relaxed) {
            0 => None,
            n => Some(self.base + Duration::from_nanos(n - 1)),
        }
    }
}

impl AsyncRead for ConnStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = self.io()?.poll_read(cx, buf);
        if buf.filled().len() > before {
            self.first_byte.mark();
        }
        poll
    }
}

impl AsyncWrite for ConnStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.replacing.is_some() {
            return self.poll_replacement(cx);
        }
        let heads = Heads::of(buf);
        if heads.closes {
            self.closing = true;
        }
        if let Some(at) = heads.refusal {
            // Whatever precedes hyper's refusal (an earlier pipelined
            // answer) goes out as it is; the refusal is replaced.
            let mut bytes = buf[..at].to_vec();
            bytes.extend_from_slice(&json_refusal(&buf[at..]));
            self.replacing = Some((bytes, 0, buf.len()));
            return self.poll_replacement(cx);
        }
        self.io()?.poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io()?.poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io()?.poll_shutdown(cx)
    }

    // Not vectored: hyper then flattens each answer into the one buffer that
    // `poll_write` inspects (answers here are small JSON documents).
    fn is_write_vectored(&self) -> bool {
        false
    }
}

/// What the answers in one write buffer say.
#[derive(Debug, Default, PartialEq, Eq)]
struct Heads {
    /// One of them closes the connection.
    closes: bool,
    /// Where hyper's own bodiless refusal starts, if there is one.
    refusal: Option<usize>,
}

impl Heads {
    /// Walk the complete answers at the start of `buf` (each head, then the
    /// body its `content-length` gives). A write hookgate's answers fill
    /// starts at an answer; anything that does not parse (a body written on
    /// its own) is left alone.
    fn of(buf: &[u8]) -> Heads {
        let mut heads = Heads::default();
        let mut at = 0;
        while at < buf.len() && buf[at..].starts_with(b"HTTP/1.") {
            let Some(end) = find(&buf[at..], b"\r\n\r\n") else {
                break;
            };
            let head = &buf[at..at + end + 2];
            let closes = header_is(head, "connection", "close");
            let length = header(head, "content-length").and_then(|v| v.parse::<usize>().ok());
            heads.closes |= closes;
            let status = head.get(9).copied().unwrap_or(b'0');
            if closes && length == Some(0) && (status == b'4' || status == b'5') {
                heads.refusal = Some(at);
                break;
            }
            let Some(length) = length else { break };
            at += end + 4 + length;
        }
        heads
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The value of header `name` in `head` (lines after the status line).
fn header<'h>(head: &'h [u8], name: &str) -> Option<&'h str> {
    head.split(|b| *b == b'\n').skip(1).find_map(|line| {
        let line = std::str::from_utf8(line).ok()?.trim_end_matches('\r');
        let (key, value) = line.split_once(':')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then_some(value.trim())
    })
}

fn header_is(head: &[u8], name: &str, value: &str) -> bool {
    header(head, name).is_some_and(|v| v.eq_ignore_ascii_case(value))
}

/// The answer hookgate gives for hyper's refusal `head`: the same status,
/// with a `{"error", "message"}` body.
fn json_refusal(head: &[u8]) -> Vec<u8> {
    let status_line = head
        .split(|b| *b == b'\r')
        .next()
        .and_then(|l| std::str::from_utf8(l).ok())
        .unwrap_or("HTTP/1.1 400 Bad Request");
    let code = status_line.get(9..12).unwrap_or("400");
    let (error, message) = match code {
        "431" => (
            "headers_too_large",
            "the request's headers are too large or too many \
             (server.max_header_bytes, server.max_headers)",
        ),
        "414" => ("uri_too_long", "the request target is too long"),
        "505" => ("http_version_not_supported", "send HTTP/1.1"),
        "501" => ("not_implemented", "this request's framing is not supported"),
        c if c.starts_with('5') => ("internal", "the request could not be handled"),
        _ => (
            "bad_request",
            "the request is not valid HTTP/1.1 (a bad request line, header or framing)",
        ),
    };
    let body = serde_json::json!({ "error": error, "message": message }).to_string();
    format!(
        "{status_line}\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYPER_431: &[u8] = b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\ndate: Tue, 01 Dec 2026 21:57:15 GMT\r\n\r\n";
    const OURS_413: &[u8] = b"HTTP/1.1 413 Payload Too Large\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: 2\r\n\r\n{}";
    const OURS_202: &[u8] =
        b"HTTP/1.1 202 Accepted\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";

    #[test]
    fn hypers_bodiless_refusal_is_found_even_after_a_pipelined_answer() {
        assert_eq!(
            Heads::of(HYPER_431),
            Heads {
                closes: true,
                refusal: Some(0)
            }
        );
        let both = [OURS_202, HYPER_431].concat();
        assert_eq!(Heads::of(&both).refusal, Some(OURS_202.len()));
    }

    #[test]
    fn hookgates_own_answers_are_left_alone() {
        assert_eq!(
            Heads::of(OURS_413),
            Heads {
                closes: true,
                refusal: None
            }
        );
        assert_eq!(Heads::of(OURS_202), Heads::default());
        assert_eq!(Heads::of(b"{\"a body\": 1}"), Heads::default());
        // A redirect has no body and does not close: not a refusal.
        let redirect =
            b"HTTP/1.1 308 Permanent Redirect\r\nlocation: /ui/\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(Heads::of(redirect), Heads::default());
    }

    #[test]
    fn the_replacement_keeps_the_status_and_carries_a_json_body() {
        let text = String::from_utf8(json_refusal(HYPER_431)).expect("utf-8");
        let (head, body) = text.split_once("\r\n\r\n").expect("a head");
        assert!(head.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let v: serde_json::Value = serde_json::from_str(body).expect("json");
        assert_eq!(v["error"], "headers_too_large");
    }
}
