//! The reader thread: admin listings on their own read-only connection.
//!
//! A listing over a large queue can take a while (a rare state means reading
//! far back); on the writer thread it would hold up every enqueue and claim.
//! WAL lets one writer and any number of readers run side by side, so these
//! reads get a connection and a thread of their own. Reads only see committed
//! data, like everything else the store answers.

use std::path::Path;
use std::sync::mpsc::Receiver;

use rusqlite::{Connection, OpenFlags};

use super::writer::Reply;
use super::{admin_ops, db_err, lanes};
use crate::queue::{BlockedKeys, DeliveryPage, DeliveryQuery, StoreError};

/// One read, with where to send the answer.
pub(super) enum ReadOp {
    List(DeliveryQuery, Reply<DeliveryPage>),
    TargetsWithWork(Reply<Vec<String>>),
    OldestWaiting(Vec<String>, Reply<Vec<Option<i64>>>),
    BlockedKeys(String, usize, Reply<BlockedKeys>),
}

/// A read-only connection to the queue file (opened after the writer has
/// created and migrated it).
pub(super) fn open(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| {
        StoreError::Open(format!(
            "{}: cannot open for reading: {}",
            path.display(),
            db_err(e)
        ))
    })?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(|e| StoreError::Open(db_err(e)))?;
    Ok(conn)
}

/// The thread body: answer reads until the store drops its sender.
pub(super) fn run(conn: Connection, rx: Receiver<ReadOp>) {
    while let Ok(op) = rx.recv() {
        match op {
            ReadOp::List(query, reply) => {
                let result = admin_ops::list(&conn, &query).map_err(|e| match e {
                    None => StoreError::InvalidCursor,
                    Some(e) => StoreError::Unavailable(db_err(e)),
                });
                let _ = reply.send(result);
            }
            ReadOp::OldestWaiting(targets, reply) => {
                let result = targets
                    .iter()
                    .map(|t| admin_ops::oldest_waiting(&conn, t))
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(|e| StoreError::Unavailable(db_err(e)));
                let _ = reply.send(result);
            }
            ReadOp::BlockedKeys(target, limit, reply) => {
                let result = lanes::blocked_keys(&conn, &target, limit)
                    .map_err(|e| StoreError::Unavailable(db_err(e)));
                let _ = reply.send(result);
            }
            ReadOp::TargetsWithWork(reply) => {
                let result = admin_ops::targets_with_work(&conn)
                    .map_err(|e| StoreError::Unavailable(db_err(e)));
                let _ = reply.send(result);
            }
        }
    }
}
