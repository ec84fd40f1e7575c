//! The SQLite delivery store: the default, embedded backend.
//!
//! One file (WAL, `synchronous=FULL`), one writer thread that owns the
//! connection and group-commits every waiting command in one transaction
//! ([`writer`]), so an accepted event costs a share of one fsync rather than a
//! whole one, and the tokio runtime never blocks on SQLite. A sidecar
//! `<path>.lock` keeps a second hookgate process off the same file.
//!
//! Layout: this file is the handle and the trait impl; [`schema`] opens the file,
//! creates or checks the schema and recovers crashed claims; the SQL is in
//! [`ops`] (enqueue, prune, reads), [`lease`] (claim, complete, release),
//! [`lanes`] (ordered targets' keys) and [`admin_ops`] (listing, replay, purge); [`writer`] is the thread and its
//! batching ([`command`] its commands), [`reader`] the admin listings' thread;
//! [`counters`] and [`depth`] are what the writer counts as batches commit.

mod admin_ops;
mod command;
mod counters;
mod depth;
#[cfg(test)]
mod hand_off_tests;
mod lanes;
mod lease;
mod ops;
mod reader;
mod schema;
#[cfg(test)]
mod tests;
mod writer;

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;

use tokio::sync::oneshot;

pub use self::counters::StoreStats;
use self::counters::{BacklogCounters, Counters};
use self::reader::ReadOp;
use self::writer::{Op, Reply};
use crate::queue::{
    BULK_BATCH, Backlog, BlockedKeys, Claim, Completed, Completion, DeadReason, DeliveryDetail,
    DeliveryId, DeliveryPage, DeliveryQuery, DeliveryQueue, DeliveryRecords, Enqueued,
    HandOffInbox, HandOffs, LeaseToken, NewEvent, OrderingChange, ReplayResult, StoreError,
    StoreFuture, TargetQueue, WorkSignal,
};

/// What the handle and the writer thread share.
#[derive(Default)]
struct Shared {
    signal: WorkSignal,
    /// The workers' offers to take fresh deliveries without a claim.
    hand_offs: HandOffs,
    stats: Counters,
    backlog: BacklogCounters,
    /// Only the writer thread touches it (tests read it back); the lock is
    /// there because `Shared` is shared, and is never contended.
    depth: std::sync::Mutex<depth::Depth>,
    /// The last batch failed to commit (the writer's own note; see
    /// `writer::claim`).
    failing: std::sync::atomic::AtomicBool,
    /// The ordered targets, as `ordered_targets` holds them; only the
    /// writer thread reads or changes it (see `Shared::depth`).
    orderings: std::sync::Mutex<lanes::Orderings>,
}

impl Shared {
    /// How many deliveries of `target` were in `state` at the last commit.
    fn depth_of(&self, target: &str, state: crate::queue::DeliveryState) -> u64 {
        self.depth
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(target, state)
    }

    /// The ordered targets (the writer thread's; never contended).
    fn orderings(&self) -> std::sync::MutexGuard<'_, lanes::Orderings> {
        self.orderings
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Apply the moves of committed commands to the depth counts (and gauges).
    fn depth_apply<'a>(&self, moves: impl Iterator<Item = &'a depth::Moves>) {
        // A poisoned lock means a panic while counting: counts are advisory,
        // keep going with what is there.
        let mut depth = self
            .depth
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for m in moves {
            depth.apply(m);
        }
    }
}

/// The SQLite [`DeliveryStore`]. Dropping it finishes the queued commands,
/// closes the file and releases the lock (blocking until then).
pub struct SqliteStore {
    commands: mpsc::Sender<Op>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    /// Admin reads, on their own connection and thread (see `reader.rs`).
    reads: Option<mpsc::Sender<ReadOp>>,
    reader: Option<JoinHandle<()>>,
    path: PathBuf,
}

impl SqliteStore {
    /// Open (creating if needed) the queue file at `path`, lock it for this
    /// process, recover deliveries a crash left in flight, and start the writer.
    /// Blocking: call it at startup, not from a busy runtime thread.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Open(format!("cannot create directory {}: {e}", dir.display()))
            })?;
        }
        let lock = lock_file(path)?;
        let (conn, recovered) = schema::open_connection(path)?;
        if recovered > 0 {
            tracing::info!(
                recovered,
                "sqlite queue: deliveries in flight at the last stop will be retried"
            );
        }
        let (deliveries, bytes) = schema::backlog(&conn).map_err(|e| {
            StoreError::Open(format!(
                "{}: cannot count the backlog: {}",
                path.display(),
                db_err(e)
            ))
        })?;
        let depth = depth::Depth::count(&conn).map_err(|e| {
            StoreError::Open(format!(
                "{}: cannot count deliveries by state: {}",
                path.display(),
                db_err(e)
            ))
        })?;
        depth.publish();
        let orderings = lanes::Orderings::load(&conn).map_err(|e| {
            StoreError::Open(format!(
                "{}: cannot read the ordered targets: {}",
                path.display(),
                db_err(e)
            ))
        })?;
        let shared = Arc::new(Shared {
            depth: std::sync::Mutex::new(depth),
            orderings: std::sync::Mutex::new(orderings),
            ..Shared::default()
        });
        shared.backlog.apply((deliveries, bytes));
        let backlog = shared.backlog.get();
        crate::metrics::queue_backlog(backlog.deliveries, backlog.bytes);
        let (commands, rx) = mpsc::channel();
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("hookgate-sqlite".into())
            .spawn(move || writer::run(conn, lock, rx, thread_shared))
            .map_err(|e| StoreError::Open(format!("cannot start the sqlite writer thread: {e}")))?;
        // After the writer has created or migrated the schema.
        let read_conn = reader::open(path)?;
        let (reads, read_rx) = mpsc::channel();
        let reader = std::thread::Builder::new()
            .name("hookgate-sqlite-read".into())
            .spawn(move || reader::run(read_conn, read_rx))
            .map_err(|e| StoreError::Open(format!("cannot start the sqlite reader thread: {e}")))?;
        Ok(SqliteStore {
            commands,
            shared,
            thread: Some(thread),
            reads: Some(reads),
            reader: Some(reader),
            path: path.to_owned(),
        })
    }

    /// The queue file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The writer's counters since open.
    pub fn stats(&self) -> StoreStats {
        self.shared.stats.snapshot()
    }

    /// Run a bulk command [`BULK_BATCH`] rows at a time, each batch in its own
    /// group-commit transaction, until a batch comes back short.
    async fn in_batches(
        &self,
        make: impl Fn(usize, Reply<u64>) -> Op + Send + Sync,
    ) -> Result<u64, StoreError> {
        let mut total = 0;
        loop {
            let n = self.call(|reply| make(BULK_BATCH, reply)).await?;
            total += n;
            if n < BULK_BATCH as u64 {
                return Ok(total);
            }
        }
    }

    /// Send a read to the reader thread and wait for its answer.
    fn read<'a, T: Send + 'static>(
        &'a self,
        make: impl FnOnce(Reply<T>) -> ReadOp + Send + 'a,
    ) -> StoreFuture<'a, T> {
        Box::pin(async move {
            let (reply, answer) = oneshot::channel();
            let reads = self.reads.as_ref().ok_or_else(closed)?;
            reads.send(make(reply)).map_err(|_| closed())?;
            answer.await.unwrap_or_else(|_| Err(closed()))
        })
    }

    /// Send a command and wait for its answer. Nothing is sent until the
    /// future is first polled; once sent, the command runs even if the future
    /// is dropped (an abandoned claim is handed back by the writer).
    fn call<'a, T: Send + 'static>(
        &'a self,
        make: impl FnOnce(Reply<T>) -> Op + Send + 'a,
    ) -> StoreFuture<'a, T> {
        Box::pin(async move {
            let (reply, answer) = oneshot::channel();
            self.commands.send(make(reply)).map_err(|_| closed())?;
            answer.await.unwrap_or_else(|_| Err(closed()))
        })
    }
}

fn closed() -> StoreError {
    StoreError::Unavailable("the sqlite queue is closed".into())
}

/// Take `<path>.lock` for this process: two hookgates writing one queue would
/// each believe they own every in-flight delivery.
fn lock_file(path: &Path) -> Result<File, StoreError> {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    let lock_path = PathBuf::from(name);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| StoreError::Open(format!("cannot open {}: {e}", lock_path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(StoreError::Open(format!(
            "{} is locked: another hookgate is using this queue; stop it or set a \
             different queue.path",
            path.display()
        ))),
        Err(TryLockError::Error(e)) => Err(StoreError::Open(format!(
            "cannot lock {}: {e}",
            lock_path.display()
        ))),
    }
}

/// A short description of a SQLite error. SQLite's own messages name tables,
/// columns and constraints, never row values, so no event data leaks into
/// errors; other error kinds are reduced to their category.
fn db_err(e: rusqlite::Error) -> String {
    match e {
        rusqlite::Error::SqliteFailure(err, Some(msg)) => format!("sqlite: {msg} ({:?})", err.code),
        rusqlite::Error::SqliteFailure(err, None) => format!("sqlite: {err}"),
        rusqlite::Error::FromSqlConversionFailure(col, ..)
        | rusqlite::Error::InvalidColumnType(col, ..)
        | rusqlite::Error::IntegralValueOutOfRange(col, _) => {
            format!("sqlite: unreadable stored value in column {col}")
        }
        _ => "sqlite: unexpected error".to_owned(),
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // Closing the channel ends the reader thread.
        drop(self.reads.take());
        if let Some(reader) = self.reader.take()
            && reader.join().is_err()
        {
            tracing::error!("sqlite queue reader thread panicked");
        }
        let (ack, _) = oneshot::channel();
        let _ = self.commands.send(Op::Close(ack));
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("sqlite queue writer thread panicked");
        }
    }
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl DeliveryQueue for SqliteStore {
    fn enqueue(&self, event: NewEvent) -> StoreFuture<'_, Enqueued> {
        self.call(move |reply| Op::Enqueue(event, reply))
    }

    fn claim_due(
        &self,
        target: &str,
        now_ms: i64,
        limit: usize,
        lease_ms: i64,
    ) -> StoreFuture<'_, Vec<Claim>> {
        let target = target.to_owned();
        self.call(move |reply| Op::Claim {
            target,
            now_ms,
            limit,
            lease_ms,
            reply,
        })
    }

    fn complete(&self, completion: Completion) -> StoreFuture<'_, Completed> {
        self.call(move |reply| Op::Complete(completion, reply))
    }

    fn release(&self, delivery_id: DeliveryId, lease: LeaseToken) -> StoreFuture<'_, ()> {
        self.call(move |reply| Op::Release {
            id: delivery_id,
            lease,
            reply,
        })
    }

    fn next_due(&self, target: &str) -> StoreFuture<'_, Option<i64>> {
        let target = target.to_owned();
        self.call(move |reply| Op::NextDue(target, reply))
    }

    fn work_signal(&self) -> &WorkSignal {
        &self.shared.signal
    }

    fn set_ordering(
        &self,
        target: &str,
        path: Option<Vec<String>>,
    ) -> StoreFuture<'_, OrderingChange> {
        let target = target.to_owned();
        self.call(move |reply| Op::SetOrdering {
            target,
            path,
            reply,
        })
    }

    fn hand_off(&self, target: &str) -> Option<HandOffInbox> {
        Some(self.shared.hand_offs.open(target))
    }
}

impl DeliveryRecords for SqliteStore {
    /// Finish the commands queued so far, close the file and release the lock.
    /// Later calls on this store fail with [`StoreError::Unavailable`].
    fn close(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let (ack, done) = oneshot::channel();
            if self.commands.send(Op::Close(ack)).is_ok() {
                // An error means the writer is already gone: closed as well.
                let _ = done.await;
            }
            Ok(())
        })
    }

    fn list(&self, query: DeliveryQuery) -> StoreFuture<'_, DeliveryPage> {
        self.read(move |reply| ReadOp::List(query, reply))
    }

    fn replay(&self, id: DeliveryId, now_ms: i64) -> StoreFuture<'_, ReplayResult> {
        self.call(move |reply| Op::Replay { id, now_ms, reply })
    }

    fn replay_dead(&self, target: Option<&str>, now_ms: i64) -> StoreFuture<'_, u64> {
        let target = target.map(str::to_owned);
        Box::pin(async move {
            self.in_batches(|limit, reply| Op::ReplayDead {
                target: target.clone(),
                now_ms,
                limit,
                reply,
            })
            .await
        })
    }

    fn purge_dead(&self, target: Option<&str>) -> StoreFuture<'_, u64> {
        let target = target.map(str::to_owned);
        Box::pin(async move {
            self.in_batches(|limit, reply| Op::PurgeDead {
                target: target.clone(),
                limit,
                reply,
            })
            .await
        })
    }

    fn targets_with_work(&self) -> StoreFuture<'_, Vec<String>> {
        self.read(ReadOp::TargetsWithWork)
    }

    fn blocked_keys(&self, target: &str, limit: usize) -> StoreFuture<'_, BlockedKeys> {
        let target = target.to_owned();
        self.read(move |reply| ReadOp::BlockedKeys(target, limit, reply))
    }

    fn target_queues(&self, targets: Vec<String>) -> StoreFuture<'_, Vec<TargetQueue>> {
        Box::pin(async move {
            let depths: Vec<[u64; 5]> = {
                let depth = self
                    .shared
                    .depth
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                targets.iter().map(|t| depth.of(t)).collect()
            };
            let oldest = self
                .read(|reply| ReadOp::OldestWaiting(targets, reply))
                .await?;
            Ok(depths
                .into_iter()
                .zip(oldest)
                .map(|(depth, oldest_waiting_ms)| TargetQueue {
                    depth,
                    oldest_waiting_ms,
                })
                .collect())
        })
    }

    fn dead_letter_target(
        &self,
        target: &str,
        reason: DeadReason,
        now_ms: i64,
    ) -> StoreFuture<'_, u64> {
        let target = target.to_owned();
        Box::pin(async move {
            self.in_batches(|limit, reply| Op::DeadLetterTarget {
                target: target.clone(),
                reason,
                now_ms,
                limit,
                reply,
            })
            .await
        })
    }

    fn backlog(&self) -> Backlog {
        self.shared.backlog.get()
    }

    fn prune(&self, delivered_before_ms: i64, now_ms: i64) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            self.in_batches(|limit, reply| Op::Prune {
                before_ms: delivered_before_ms,
                now_ms,
                limit,
                reply,
            })
            .await
        })
    }

    fn delivery(&self, id: DeliveryId) -> StoreFuture<'_, Option<DeliveryDetail>> {
        self.call(move |reply| Op::Delivery(id, reply))
    }

    fn check_writable(&self) -> StoreFuture<'_, ()> {
        self.call(Op::CheckWritable)
    }
}
