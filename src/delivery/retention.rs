//! Retention: delivered records are kept for `queue.retention` (for
//! inspection and replay), then pruned, a batch of at most 1000 rows per
//! transaction. Expired dedupe keys go with them. Dead letters stay until they
//! are replayed or purged.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::worker::WorkerContext;

/// How often to prune: a tenth of the retention, between 1 s and 1 min.
fn interval(retention: Duration) -> Duration {
    (retention / 10).clamp(Duration::from_secs(1), Duration::from_secs(60))
}

pub async fn run(ctx: Arc<WorkerContext>, stop: CancellationToken) {
    loop {
        let retention = ctx.live.load().config.queue.retention;
        let now = ctx.clock.now_ms();
        let cutoff = now.saturating_sub(i64::try_from(retention.as_millis()).unwrap_or(i64::MAX));
        match ctx.store.prune(cutoff, now).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(pruned = n, "pruned delivered records past queue.retention"),
            Err(e) => tracing::warn!(error = %e, "cannot prune delivered records"),
        }
        let next =
            now.saturating_add(i64::try_from(interval(retention).as_millis()).unwrap_or(i64::MAX));
        tokio::select! {
            () = ctx.clock.sleep_until(next) => {}
            () = stop.cancelled() => return,
        }
    }
}
