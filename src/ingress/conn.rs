//! Connections: the accept loop, the connection cap, and request timing.
//!
//! warp 0.4 leaves connection handling to hyper, so hookgate runs hyper itself:
//!
//! - `server.max_connections`: a semaphore permit is taken *before* `accept`, so
//!   connections beyond the cap wait in the kernel's accept queue.
//! - `server.read_timeout`: hyper's `header_read_timeout` closes a connection
//!   whose headers never finish; the body's deadline is counted from the
//!   request's first byte, which [`TimedStream`] records, and a body that is
//!   not complete by then is answered 408 (see `body.rs`).
//! - Half-closed clients (request sent, then `shutdown(SHUT_WR)`) are
//!   answered: the event is stored, so the client must hear the 202.
//! - Shutdown: stop accepting, let in-flight requests finish (hyper-util's
//!   graceful watcher), up to the caller's deadline; then close the rest and
//!   return only when every connection task is gone.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower_service::Service;

/// When the first byte of the current request arrived (a request extension).
#[derive(Debug, Clone, Copy)]
pub struct RequestStart(pub Instant);

/// Connection-level limits.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    pub max_connections: usize,
    pub read_timeout: Duration,
}

/// Serve `service` (a warp filter turned into a service) on `listener` until
/// `shutdown` is cancelled, then give open connections `drain` to finish.
pub async fn serve<S>(
    listener: TcpListener,
    service: S,
    limits: ConnLimits,
    shutdown: CancellationToken,
    drain: Duration,
) where
    S: Service<
            http::Request<hyper::body::Incoming>,
            Response = warp::reply::Response,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    // Every connection task, so that `serve` returns only once each is gone
    // and has dropped its service (and the store it holds): a caller that
    // reopens the queue right after shutdown must find it closed.
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = shutdown.cancelled() => break,
        };
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let timed = TimedStream::new(stream);
        let first_byte = timed.first_byte.clone();
        let svc = service.clone();
        let handler = service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
            let start = first_byte.take().unwrap_or_else(Instant::now);
            req.extensions_mut().insert(RequestStart(start));
            let mut svc = svc.clone();
            let first_byte = first_byte.clone();
            async move {
                let response = svc.call(req).await;
                // The body has been read (or refused): the next byte read
                // starts the next request.
                first_byte.take();
                response
            }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.read_timeout)
            // A client that sends its whole request and then shuts down its
            // write side still gets the answer: without this, hyper drops
            // the response of a request the service has already stored.
            .half_close(true)
            .serve_connection(TokioIo::new(timed), handler);
        let conn = graceful.watch(conn);
        connections.spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some connections were still open after {drain:?}; closing them");
        connections.abort_all();
    }
    while connections.join_next().await.is_some() {}
}

/// A TCP stream that remembers when the first byte of the next request arrived.
struct TimedStream {
    inner: TcpStream,
    first_byte: Arc<FirstByte>,
}

impl TimedStream {
    fn new(inner: TcpStream) -> Self {
        TimedStream {
            inner,
            first_byte: Arc::new(FirstByte::new()),
        }
    }
}

/// The instant of the first byte read since the last request took it.
struct FirstByte {
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
    fn take(&self) -> Option<Instant> {
        match self.at.swap(0, Ordering::Relaxed) {
            0 => None,
            n => Some(self.base + Duration::from_nanos(n - 1)),
        }
    }
}

impl AsyncRead for TimedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.first_byte.mark();
        }
        poll
    }
}

impl AsyncWrite for TimedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
