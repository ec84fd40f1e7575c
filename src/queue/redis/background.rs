//! The store's two background tasks, both stopped by the store's
//! cancellation token (on drop or `close`):
//!
//! - the wake-up listener: its own pub/sub connection subscribed to
//!   `{PREFIX}:wake`, turning every published target name into
//!   [`WorkSignal::notify`](crate::queue::WorkSignal::notify), so a worker
//!   here wakes for work another replica made due. After a reconnect it
//!   wakes every known target, since messages sent meanwhile are lost.
//! - the refresher: about once a second, reads the shared backlog counters
//!   (for the synchronous `backlog()`) and the per-target depths, and
//!   publishes them as gauges like the SQLite store does.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::PubSub;
use tokio_util::sync::CancellationToken;

use super::codec::BacklogSnapshot;
use super::error::redis_error;
use super::{Shared, keys};
use crate::queue::{Backlog, DeliveryState, StoreError};

const REFRESH_EVERY: Duration = Duration::from_secs(1);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

const STATES: [DeliveryState; 5] = DeliveryState::ALL;

/// This process's copy of the shared backlog counters. Replies arrive out
/// of order under concurrency: a copy replaces the held one only when its
/// version is newer, so the cache never goes back in time.
#[derive(Default)]
pub(super) struct BacklogCache(Mutex<BacklogSnapshot>);

impl BacklogCache {
    pub(super) fn update(&self, seen: BacklogSnapshot) {
        let mut held = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if seen.version > held.version {
            *held = seen;
            crate::metrics::queue_backlog(clamp(seen.deliveries), clamp(seen.bytes));
        }
    }

    pub(super) fn get(&self) -> Backlog {
        let held = *self.0.lock().unwrap_or_else(PoisonError::into_inner);
        Backlog {
            deliveries: clamp(held.deliveries),
            bytes: clamp(held.bytes),
        }
    }
}

fn clamp(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// Subscribe to the wake channel; returns once Redis confirmed, so no
/// wake-up published after `connect` returns is missed.
pub(super) async fn subscribe(client: &redis::Client, prefix: &str) -> Result<PubSub, StoreError> {
    let mut pubsub = client
        .get_async_pubsub()
        .await
        .map_err(|e| redis_error(&e))?;
    pubsub
        .subscribe(keys::wake_channel(prefix))
        .await
        .map_err(|e| redis_error(&e))?;
    Ok(pubsub)
}

/// The wake-up listener (see the module doc).
pub(super) async fn listen(
    shared: Arc<Shared>,
    client: redis::Client,
    first: PubSub,
    cancel: CancellationToken,
) {
    let mut pubsub = Some(first);
    let mut backoff = BACKOFF_MIN;
    loop {
        let ps = match pubsub.take() {
            Some(ps) => ps,
            None => {
                let attempt = tokio::select! {
                    _ = cancel.cancelled() => return,
                    r = subscribe(&client, &shared.prefix) => r,
                };
                match attempt {
                    Ok(ps) => {
                        tracing::info!("redis queue: wake-up channel reconnected");
                        backoff = BACKOFF_MIN;
                        wake_all(&shared).await;
                        ps
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "redis queue: wake-up channel still down");
                        tokio::select! {
                            _ = cancel.cancelled() => return,
                            _ = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                        continue;
                    }
                }
            }
        };
        let mut messages = ps.into_on_message();
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                msg = messages.next() => match msg {
                    Some(msg) => {
                        if let Ok(target) = msg.get_payload::<String>() {
                            shared.signal.notify(&target);
                        }
                    }
                    None => break,
                },
            }
        }
        tracing::warn!("redis queue: wake-up channel lost; reconnecting");
    }
}

/// Wake every known target (wake-ups sent while we were away are lost).
async fn wake_all(shared: &Shared) {
    if let Ok(targets) = shared.targets().await {
        for t in targets {
            shared.signal.notify(&t);
        }
    }
}

/// The refresher (see the module doc).
pub(super) async fn refresh(shared: Arc<Shared>, cancel: CancellationToken) {
    loop {
        if let Err(e) = refresh_once(&shared).await {
            tracing::debug!(error = %e, "redis queue: cannot refresh the counters");
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(REFRESH_EVERY) => {}
        }
    }
}

/// Read the backlog and every target's depth; publish them.
pub(super) async fn refresh_once(shared: &Shared) -> Result<(), StoreError> {
    let mut conn = shared.conn.clone();
    let (d, b, v): (Option<i64>, Option<i64>, Option<i64>) = redis::cmd("HMGET")
        .arg(keys::global(&shared.prefix, "backlog"))
        .arg(&["deliveries", "bytes", "v"])
        .query_async(&mut conn)
        .await
        .map_err(|e| redis_error(&e))?;
    shared.backlog.update(BacklogSnapshot {
        deliveries: d.unwrap_or(0),
        bytes: b.unwrap_or(0),
        version: v.unwrap_or(0),
    });
    let targets = shared.targets().await?;
    let depths = shared.depths(&targets, &STATES).await?;
    for (target, counts) in targets.iter().zip(depths) {
        for (state, n) in STATES.iter().zip(counts) {
            crate::metrics::queue_depth(target, state.as_str(), n);
        }
    }
    Ok(())
}
