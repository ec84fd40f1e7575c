//! Connections: the accept loop, the connection cap, and request timing.
//!
//! warp 0.4 leaves connection handling to hyper, so hookgate runs hyper itself:
//!
//! - `server.max_connections`: a semaphore permit is taken *before* `accept`, so
//!   connections beyond the cap wait in the kernel's accept queue.
//! - `server.read_timeout`: hyper's `header_read_timeout` closes a connection
//!   whose headers never finish; the body's deadline is counted from the
//!   request's first byte, which [`ConnStream`] records, and a body that is
//!   not complete by then is answered 408 (see `body.rs`).
//! - Half-closed clients (request sent, then `shutdown(SHUT_WR)`) are
//!   answered: the event is stored, so the client must hear the 202.
//! - Shutdown: stop accepting, let in-flight requests finish (hyper-util's
//!   graceful watcher), up to the caller's deadline; then close the rest and
//!   return only when every connection task is gone.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;

use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower_service::Service;

use super::stream::ConnStream;
use crate::error_body::error_response;
use crate::panics::panic_message;

/// When the first byte of the current request arrived (a request extension).
#[derive(Debug, Clone, Copy)]
pub struct RequestStart(pub Instant);

/// Connection-level limits.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    pub max_connections: usize,
    pub read_timeout: Duration,
    /// The request line and headers together (hyper's read buffer; at least 8 KiB).
    pub max_header_bytes: usize,
    pub max_headers: usize,
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
        let timed = ConnStream::new(stream);
        let first_byte = timed.first_byte.clone();
        let svc = service.clone();
        let handler = service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
            let start = first_byte.take().unwrap_or_else(Instant::now);
            req.extensions_mut().insert(RequestStart(start));
            let mut svc = svc.clone();
            let first_byte = first_byte.clone();
            async move {
                // A panic in one request is that request's 500, never the
                // connection's silent end or the process's.
                let response = match AssertUnwindSafe(svc.call(req)).catch_unwind().await {
                    Ok(response) => response,
                    Err(panic) => {
                        tracing::error!(
                            panic = panic_message(panic.as_ref()),
                            "a request handler panicked; answered 500"
                        );
                        Ok(error_response(
                            http::StatusCode::INTERNAL_SERVER_ERROR,
                            "internal",
                            "internal error",
                        ))
                    }
                };
                // The body has been read (or refused): the next byte read
                // starts the next request.
                first_byte.take();
                response
            }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.read_timeout)
            .max_buf_size(limits.max_header_bytes.max(8192))
            .max_headers(limits.max_headers)
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

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use warp::Filter;

    use super::*;

    async fn get(addr: std::net::SocketAddr, path: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let request = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.expect("read");
        answer
    }

    #[tokio::test]
    async fn a_panicking_request_is_answered_500_and_the_server_goes_on() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let routes = warp::path("boom")
            .map(|| -> warp::reply::Response { panic!("forced in a test") })
            .or(warp::path("fine").map(|| warp::reply::Response::new("ok".into())))
            .unify()
            .recover(|_| async {
                Ok::<_, std::convert::Infallible>(warp::reply::Response::default())
            })
            .unify();
        let stop = CancellationToken::new();
        let limits = ConnLimits {
            max_connections: 8,
            read_timeout: Duration::from_secs(5),
            max_header_bytes: 64 * 1024,
            max_headers: 100,
        };
        let server = tokio::spawn(serve(
            listener,
            warp::service(routes),
            limits,
            stop.clone(),
            Duration::from_secs(1),
        ));
        let answer = get(addr, "/boom").await;
        assert!(answer.starts_with("HTTP/1.1 500"), "{answer}");
        assert!(
            answer.contains(r#"{"error":"internal","message":"internal error"}"#),
            "{answer}"
        );
        let answer = get(addr, "/fine").await;
        assert!(
            answer.starts_with("HTTP/1.1 200") && answer.ends_with("ok"),
            "{answer}"
        );
        stop.cancel();
        server.await.expect("the server task ends normally");
    }
}
