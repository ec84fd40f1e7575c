//! The Redis delivery store: one queue shared by any number of hookgate
//! replicas (DESIGN.md section 9), passing the same conformance suite as
//! SQLite.
//!
//! **Layout.** Every key of one target carries the hash tag
//! `{PREFIX:TARGET}`, so a target's data lives in one Cluster slot:
//! `due` (sorted set of waiting deliveries, score = due time, member =
//! zero-padded global sequence + `:` + id, so equal due times go in
//! acceptance order), `lease` (in-flight deliveries, score = lease expiry),
//! `d:<id>` (hash: the record, lease token and expiry, budget, sequence, and
//! a copy of the event's source, time and body, so a target's slot is
//! self-contained), `a:<id>` (list of attempts, JSON), `all` and `s:<state>`
//! (sorted sets by sequence, for the admin listing), `done` (delivered, by
//! finish time, for retention) and `depth` (counts per state). Global keys
//! under `{PREFIX}`: `seq`, `backlog` (shared counters), `targets`, `where`
//! (delivery id to target), `ev:<id>` (an event's deliveries), `dd:<hex>`
//! and `dd` (dedupe keys and their expiries), `ready`, and the `wake`
//! channel.
//!
//! **Why sorted sets, not a Stream with a consumer group.** The contract
//! hands claims out "oldest due first, then in acceptance order", and the
//! store is handed its times (it must not read a clock for them). A stream
//! is ordered by insertion: an earlier-due delivery enqueued later could not
//! go first, and retries would need a second structure moved into the
//! stream. A Lua claim over a due set and a lease set gives the same
//! exactly-once handout, leases with expiry and the reclaim of expired ones
//! (what `XAUTOCLAIM` does), atomically and in the contract's order.
//!
//! **Atomicity.** Every change that touches several keys is one Lua script
//! (`lua/`, each prefixed with `lua/common.lua`). Enqueue of an event with
//! deliveries to several targets touches several slots: atomic on one
//! Redis server; Redis Cluster would need one script per target (not built).
//! Scripts never take more than [`BULK_BATCH`](crate::queue::BULK_BATCH) deliveries at a time, since
//! Redis runs nothing else while a script runs.
//!
//! **Ordered targets** keep their lanes in `ordering` (the path),
//! `lanes` (key to head), `held:<key>` (what waits behind a head) and
//! `blocked` (keys with something waiting); changes of ordering are in
//! [`ordering`].
//!
//! **Durability** is in [`durability`]; wake-ups from other processes and
//! the cached backlog in [`background`]; the hot path in [`hot_path`], the
//! admin side in [`records`] and [`listing`].
//! Concurrent calls share one multiplexed, reconnecting connection
//! (`ConnectionManager`), which pipelines them: no lock, no round trip each
//! in sequence.

mod background;
mod codec;
pub mod durability;
mod error;
mod hot_path;
pub mod keys;
mod listing;
mod ordering;
mod records;

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Script, ScriptInvocation};
use tokio_util::sync::CancellationToken;

use self::background::BacklogCache;
use self::codec::Reply;
pub use self::durability::{Aof, Durability};
use self::error::redis_error;
use crate::queue::{StoreError, WorkSignal};

/// How long a dedupe key outlives its window in Redis if `prune` never
/// removes it: the window itself is judged by the times handed in.
const DEDUPE_BACKSTOP_MS: i64 = 24 * 3600 * 1000;

const COMMON: &str = include_str!("lua/common.lua");

struct Scripts {
    enqueue: Script,
    claim: Script,
    complete: Script,
    release: Script,
    replay: Script,
    bulk: Script,
    ordering: Script,
}

impl Scripts {
    fn new() -> Scripts {
        let script = |body: &str| Script::new(&format!("{COMMON}\n{body}"));
        Scripts {
            enqueue: script(include_str!("lua/enqueue.lua")),
            claim: script(include_str!("lua/claim.lua")),
            complete: script(include_str!("lua/complete.lua")),
            release: script(include_str!("lua/release.lua")),
            replay: script(include_str!("lua/replay.lua")),
            bulk: script(include_str!("lua/bulk.lua")),
            ordering: script(include_str!("lua/ordering.lua")),
        }
    }
}

/// What the handle and its background tasks share.
struct Shared {
    conn: ConnectionManager,
    prefix: String,
    scripts: Scripts,
    signal: WorkSignal,
    backlog: BacklogCache,
    durability: Durability,
}

impl Shared {
    /// Run a write script and wait until the write is durable.
    async fn write(&self, inv: &ScriptInvocation<'_>) -> Result<Reply, StoreError> {
        let mut conn = self.conn.clone();
        let value = inv
            .invoke_async(&mut conn)
            .await
            .map_err(|e| redis_error(&e))?;
        let reply = Reply::parse(value)?;
        self.backlog.update(reply.backlog);
        self.durability.confirm(&mut conn).await?;
        Ok(reply)
    }

    /// A script invocation with the key prefix as its first argument.
    fn invoke<'a>(&'a self, script: &'a Script) -> ScriptInvocation<'a> {
        let mut inv = script.prepare_invoke();
        inv.arg(&self.prefix);
        inv
    }

    /// Every target that ever had a delivery.
    async fn targets(&self) -> Result<Vec<String>, StoreError> {
        redis::cmd("SMEMBERS")
            .arg(keys::global(&self.prefix, "targets"))
            .query_async(&mut self.conn.clone())
            .await
            .map_err(|e| redis_error(&e))
    }

    /// The depth of each target in each of `states`, in one round trip.
    async fn depths(
        &self,
        targets: &[String],
        states: &[crate::queue::DeliveryState],
    ) -> Result<Vec<Vec<u64>>, StoreError> {
        if targets.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for t in targets {
            let cmd = pipe
                .cmd("HMGET")
                .arg(keys::target(&self.prefix, t, "depth"));
            for s in states {
                cmd.arg(s.as_str());
            }
        }
        let rows: Vec<Vec<Option<i64>>> = pipe
            .query_async(&mut self.conn.clone())
            .await
            .map_err(|e| redis_error(&e))?;
        Ok(rows
            .into_iter()
            .map(|r| {
                r.into_iter()
                    .map(|n| u64::try_from(n.unwrap_or(0)).unwrap_or(0))
                    .collect()
            })
            .collect())
    }
}

/// The Redis [`DeliveryStore`](crate::queue::DeliveryStore). Dropping it (or
/// [`close`](RedisStore::close)) stops its background tasks.
pub struct RedisStore {
    shared: Arc<Shared>,
    cancel: CancellationToken,
}

impl RedisStore {
    /// Connect to `url` (`redis://` or `rediss://`, which may hold a
    /// password: it never appears in an error or a log), find out how
    /// durable writes are, subscribe to wake-ups and read the counters.
    /// Keys are named under `prefix`.
    pub async fn connect(url: &str, prefix: &str) -> Result<RedisStore, StoreError> {
        if prefix.is_empty() || prefix.contains(['{', '}']) {
            return Err(StoreError::Open(
                "queue.prefix must be non-empty and without `{` or `}`".into(),
            ));
        }
        // The error text could echo the URL: say only what was wrong.
        let client = redis::Client::open(url).map_err(|_| {
            StoreError::Open("queue.url is not a valid redis:// or rediss:// URL".into())
        })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(durability::WAIT_TIMEOUT + Duration::from_secs(5)))
            .set_number_of_retries(3)
            .set_max_delay(Duration::from_secs(1));
        let open = |e: StoreError| StoreError::Open(e.to_string());
        let mut conn = ConnectionManager::new_with_config(client.clone(), config)
            .await
            .map_err(|e| open(redis_error(&e)))?;
        let durability = Durability::probe(&mut conn).await.map_err(open)?;
        durability.warn_if_unsafe();
        let pubsub = background::subscribe(&client, prefix).await.map_err(open)?;
        let shared = Arc::new(Shared {
            conn,
            prefix: prefix.to_owned(),
            scripts: Scripts::new(),
            signal: WorkSignal::default(),
            backlog: BacklogCache::default(),
            durability,
        });
        background::refresh_once(&shared).await.map_err(open)?;
        let cancel = CancellationToken::new();
        tokio::spawn(background::listen(
            shared.clone(),
            client,
            pubsub,
            cancel.clone(),
        ));
        tokio::spawn(background::refresh(shared.clone(), cancel.clone()));
        Ok(RedisStore { shared, cancel })
    }

    /// What the server guarantees for acknowledged writes (found at connect).
    pub fn durability(&self) -> &Durability {
        &self.shared.durability
    }

    /// A handle on the store's multiplexed, reconnecting connection, for
    /// what replicas share beside the queue (rate-limit budgets, circuit
    /// state).
    pub fn connection(&self) -> ConnectionManager {
        self.shared.conn.clone()
    }
}

impl Drop for RedisStore {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.shared.prefix)
            .field("durability", &self.shared.durability)
            .finish_non_exhaustive()
    }
}

fn id_text(id: uuid::Uuid) -> String {
    id.hyphenated().to_string()
}
