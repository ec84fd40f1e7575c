//! Opening the SQLite file: connection settings, the schema, its version, and
//! crash recovery of deliveries that were in flight when the last process died.
//!
//! Why recovery at open is right here, though no store may assume it is alone
//! (DESIGN.md section 9): the `.lock` beside the file keeps every other
//! process off it, so a lease found at open was granted by a process that is
//! gone. A shared backend instead lets leases expire and reclaims them in
//! `claim_due`, which this store also does (for attempts that outlive their
//! lease in a running process).

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use super::db_err;
use crate::queue::{RECORD_FORMAT, StoreError};

/// The schema version this build creates and understands (`PRAGMA user_version`).
pub(super) const SCHEMA_VERSION: i64 = 5;

/// The tables. `seq` is the acceptance order (AUTOINCREMENT, so a number is never
/// reused even after rows are pruned). `UNIQUE(event_id, target)` makes "one
/// delivery per (event, target)" a property of the file, not of the caller.
const SCHEMA: &str = "
CREATE TABLE events (
    id          TEXT PRIMARY KEY,
    source      TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    body        BLOB NOT NULL,
    format      INTEGER NOT NULL
);
CREATE TABLE deliveries (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    event_id        TEXT NOT NULL REFERENCES events(id) ON DELETE CASCADE,
    target          TEXT NOT NULL,
    route           TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN
                        ('pending', 'in_flight', 'retrying', 'delivered', 'dead')),
    dead_reason     TEXT,
    attempt_count   INTEGER NOT NULL DEFAULT 0,
    budget_attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER,
    lease_token     TEXT,
    lease_until     INTEGER,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    format          INTEGER NOT NULL,
    body_len        INTEGER NOT NULL DEFAULT 0,
    order_key       TEXT,
    UNIQUE (event_id, target)
);
-- Claims and next_due: a partial index holding only the waiting rows, ordered
-- exactly as they are claimed, so a claim reads the first `limit` entries and
-- stops, however many rows wait behind a dead target. Finished rows cost it nothing.
CREATE INDEX deliveries_due ON deliveries (target, next_attempt_at, seq)
    WHERE state IN ('pending', 'retrying');
-- Expired leases per target: only the rows in flight.
CREATE INDEX deliveries_leases ON deliveries (target, lease_until)
    WHERE state = 'in_flight';
-- Dead letters per target, for their replay and purge. Only dead rows: an
-- index of every row by state would move on each claim and each outcome
-- (two more B-tree writes per delivery on the hot path). Waiting and
-- in-flight rows are found through deliveries_due and deliveries_leases.
CREATE INDEX deliveries_dead ON deliveries (target, seq) WHERE state = 'dead';
CREATE TABLE attempts (
    delivery_id      TEXT NOT NULL REFERENCES deliveries(id) ON DELETE CASCADE,
    n                INTEGER NOT NULL,
    at               INTEGER NOT NULL,
    status           INTEGER,
    error            TEXT,
    duration_ms      INTEGER NOT NULL,
    response_excerpt TEXT,
    format           INTEGER NOT NULL,
    PRIMARY KEY (delivery_id, n)
) WITHOUT ROWID;
 -- Dedupe keys: sha256 of the source and the event's identity, and the first
-- event accepted under it, until the window expires.
CREATE TABLE dedupe (
    key        BLOB PRIMARY KEY,
    event_id   TEXT NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
-- Retention: delivered rows by age.
CREATE INDEX deliveries_delivered ON deliveries (updated_at) WHERE state = 'delivered';
-- Small facts about the file itself; also the target of check_writable's write.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
";

/// Version 1 had no dedupe keys and no per-delivery body length (counted as 0
/// for rows written before the upgrade).
const MIGRATE_1_TO_2: &str = "
ALTER TABLE deliveries ADD COLUMN body_len INTEGER NOT NULL DEFAULT 0;
UPDATE deliveries SET body_len =
    (SELECT length(body) FROM events WHERE events.id = deliveries.event_id);
CREATE TABLE dedupe (
    key        BLOB PRIMARY KEY,
    event_id   TEXT NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX deliveries_delivered ON deliveries (updated_at) WHERE state = 'delivered';
";

/// Version 2 had leases without an expiry (rows in flight at the upgrade are
/// recovered at open like any others).
const MIGRATE_2_TO_3: &str = "
ALTER TABLE deliveries ADD COLUMN lease_until INTEGER;
CREATE INDEX deliveries_leases ON deliveries (target, lease_until)
    WHERE state = 'in_flight';
";

/// Version 3 indexed every row by state; 4 indexes only the dead ones.
const MIGRATE_3_TO_4: &str = "
DROP INDEX IF EXISTS deliveries_state;
CREATE INDEX IF NOT EXISTS deliveries_dead ON deliveries (target, seq) WHERE state = 'dead';
";

/// Ordered targets (see lanes.rs): the path each is ordered by, one row per
/// key with unfinished deliveries (its head and how many wait behind it),
/// and the held deliveries (pending with no due time) by key, in order.
/// Part of the schema since version 5.
const ORDERING_TABLES: &str = "
CREATE TABLE ordered_targets (
    target TEXT PRIMARY KEY,
    path   TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE lanes (
    target   TEXT NOT NULL,
    key      TEXT NOT NULL,
    head_id  TEXT NOT NULL,
    waiting  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (target, key)
) WITHOUT ROWID;
CREATE INDEX deliveries_held ON deliveries (target, order_key, seq)
    WHERE state = 'pending' AND next_attempt_at IS NULL;
";

/// Version 4 had no ordered delivery (then [`ORDERING_TABLES`]).
const MIGRATE_4_TO_5: &str = "ALTER TABLE deliveries ADD COLUMN order_key TEXT;";

/// The unfinished work at open: the one time hookgate counts rows for it;
/// from then on the writer keeps the counters.
pub(super) fn backlog(conn: &Connection) -> rusqlite::Result<(i64, i64)> {
    conn.query_row(
        "SELECT COUNT(*), COALESCE(SUM(body_len), 0) FROM deliveries
          WHERE state IN ('pending', 'retrying', 'in_flight')",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

/// Open `path`, apply the connection settings, create or check the schema and
/// recover deliveries cut off by a crash. Returns how many were recovered.
pub(super) fn open_connection(path: &Path) -> Result<(Connection, usize), StoreError> {
    let open_err = |what: &str, e: rusqlite::Error| {
        StoreError::Open(format!("{}: {what}: {}", path.display(), db_err(e)))
    };
    let mut conn = Connection::open(path).map_err(|e| open_err("cannot open", e))?;
    configure(&conn).map_err(|e| open_err("cannot configure", e))?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
        .map_err(|e| open_err("cannot enable WAL", e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        // e.g. a filesystem without shared-memory support: refuse rather than
        // run with different durability and locking than documented.
        return Err(StoreError::Open(format!(
            "{}: the filesystem does not support SQLite WAL mode",
            path.display()
        )));
    }

    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| open_err("cannot start", e))?;
    let version: i64 = tx
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(|e| open_err("cannot read schema version", e))?;
    match version {
        0 => {
            tx.execute_batch(SCHEMA)
                .and_then(|()| tx.execute_batch(ORDERING_TABLES))
                .map_err(|e| open_err("cannot create schema", e))?;
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)
                .map_err(|e| open_err("cannot set schema version", e))?;
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('record_format', ?1)",
                [RECORD_FORMAT.to_string()],
            )
            .map_err(|e| open_err("cannot write meta", e))?;
        }
        1..=4 => {
            if version == 1 {
                tx.execute_batch(MIGRATE_1_TO_2)
                    .map_err(|e| open_err("cannot migrate schema 1 to 2", e))?;
            }
            if version <= 2 {
                tx.execute_batch(MIGRATE_2_TO_3)
                    .map_err(|e| open_err("cannot migrate schema 2 to 3", e))?;
            }
            if version <= 3 {
                tx.execute_batch(MIGRATE_3_TO_4)
                    .map_err(|e| open_err("cannot migrate schema 3 to 4", e))?;
            }
            tx.execute_batch(MIGRATE_4_TO_5)
                .and_then(|()| tx.execute_batch(ORDERING_TABLES))
                .map_err(|e| open_err("cannot migrate schema 4 to 5", e))?;
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)
                .map_err(|e| open_err("cannot set schema version", e))?;
        }
        SCHEMA_VERSION => {}
        newer if newer > SCHEMA_VERSION => {
            return Err(StoreError::Open(format!(
                "{}: written by a newer hookgate (schema version {newer}, this build \
                 understands up to {SCHEMA_VERSION}); upgrade hookgate or point \
                 queue.path at another file",
                path.display()
            )));
        }
        other => {
            return Err(StoreError::Open(format!(
                "{}: unknown schema version {other}; not a hookgate queue file?",
                path.display()
            )));
        }
    }
    let recovered = recover_in_flight(&tx).map_err(|e| open_err("cannot recover", e))?;
    tx.commit().map_err(|e| open_err("cannot commit", e))?;
    Ok((conn, recovered))
}

/// How many WAL pages a commit may leave before it checkpoints them into the
/// file (SQLite's default is 1000). The checkpoint runs inside the commit
/// that crosses the mark, on the writer thread, and every request waiting on
/// that commit waits for it: 1000 pages (4 MiB) made a p99 of 11-15 ms under
/// load, 250 pages 5-8 ms, for the same or better throughput (smaller
/// checkpoints find their pages still in the OS cache). A checkpoint thread
/// of its own was measured too, and was no better on one core
/// (docs/performance.md).
const WAL_AUTOCHECKPOINT_PAGES: i64 = 250;

/// With WAL (set by the caller) and `synchronous=FULL`, a commit is on disk when
/// COMMIT returns: one fsync of the WAL per transaction, which group commit
/// amortises. The busy timeout only matters for outside readers (sqlite3 CLI).
fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)?;
    Ok(())
}

/// An attempt cut off by a crash is not counted (DESIGN.md section 6): the row
/// goes back to where it was before the claim, keeping its due time and so its
/// place in the claim order.
fn recover_in_flight(conn: &Connection) -> rusqlite::Result<usize> {
    conn.execute(
        "UPDATE deliveries
            SET state = CASE WHEN attempt_count = 0 THEN 'pending' ELSE 'retrying' END,
                lease_token = NULL, lease_until = NULL
          WHERE state = 'in_flight'",
        [],
    )
}
