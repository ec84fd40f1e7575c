//! The writer thread: owns the connection, and turns every command waiting in
//! its channel into one transaction with one commit (group commit).
//!
//! An fsync costs the same for one event as for a thousand, so the thread
//! blocks for one command, takes every other command already queued (up to
//! [`MAX_BATCH`]), runs them all in one transaction, commits once, and only
//! then answers. A command that can fail on its own (an admin or bulk
//! command) runs inside its own SAVEPOINT, so it fails only its caller; an
//! enqueue is checked before it writes, and a hot-path command that fails
//! while writing fails the batch (see [`Op::needs_savepoint`]). Nobody hears "done" before the commit is on
//! disk, with one exception that needs no durability: claims, which run first
//! in the batch and are answered at once (see [`claim`]). Reads need no
//! transaction; they run after the commit, so they only ever see durable data.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;

use rusqlite::{Connection, TransactionBehavior};

use super::depth::Moves;
use super::{Shared, admin_ops, db_err, lanes, lease, ops};
use crate::queue::hand_off::Ticket;
use crate::queue::{Claim, DeliveryId, DeliveryState, Enqueued, LeaseToken, NewEvent, StoreError};

/// The most commands in one transaction: bounds commit latency and memory.
pub(super) const MAX_BATCH: usize = 4096;

use super::command::unavailable;
pub(super) use super::command::{Op, Reply};

/// A lease handed out by a claim, identified by its delivery.
pub(super) type Lease = (DeliveryId, LeaseToken);

/// Sends a command's answer: its own result if the batch committed, or the
/// batch's failure. Returns the leases of claims answered after the commit
/// that nobody received (see `claim`).
type Answer = Box<dyn FnOnce(Option<&str>) -> Vec<Lease> + Send>;

/// A command that ran inside the batch, waiting for the commit's verdict.
pub(super) struct Ran {
    pub(super) answer: Answer,
    ok: bool,
    wake: Vec<String>,
    events: u64,
    /// Deliveries this command claimed (claims only).
    claimed: Option<u64>,
    /// Change to the backlog counters (deliveries, bytes), applied on commit.
    backlog: (i64, i64),
    /// Deliveries created, deleted or moved between states, applied on commit.
    moves: Moves,
    /// Deliveries stored leased, for their workers once the batch is durable.
    handed: Vec<(Ticket, Claim)>,
    /// Heads of ordered lanes that were dead-lettered: logged on commit.
    dead_heads: Vec<(String, DeliveryId, lanes::Released)>,
}

/// What the commands of one batch did that later ones must respect.
#[derive(Default)]
pub(super) struct BatchState {
    /// Per target, how the number of `pending` deliveries changed in this
    /// batch so far (claims drain them, enqueues add them); the depth counts
    /// change only at the commit.
    pending: HashMap<String, i64>,
}

impl BatchState {
    /// A hand-off credit for a new delivery of `target`, when its worker
    /// offered one and nothing of the target is `pending` (as of the last
    /// commit, with this batch's own changes): a handed-off delivery must
    /// not overtake one that waits for a claim.
    fn hand_off(&self, shared: &Shared, target: &str) -> Option<Ticket> {
        let committed =
            i64::try_from(shared.depth_of(target, DeliveryState::Pending)).unwrap_or(i64::MAX);
        let now = committed.saturating_add(self.pending.get(target).copied().unwrap_or(0));
        if now > 0 {
            return None;
        }
        shared.hand_offs.take(target)
    }

    /// Take in a command's moves.
    fn note(&mut self, moves: &Moves) {
        moves.each_pending_change(|target, change| match self.pending.get_mut(target) {
            Some(n) => *n += change,
            None => {
                self.pending.insert(target.to_owned(), change);
            }
        });
    }
}

impl Ran {
    /// A command with this answer and nothing else to apply on commit.
    fn new(answer: Answer, ok: bool) -> Ran {
        Ran {
            answer,
            ok,
            wake: Vec::new(),
            events: 0,
            claimed: None,
            backlog: (0, 0),
            moves: Moves::default(),
            handed: Vec::new(),
            dead_heads: Vec::new(),
        }
    }
}

fn ran<T: Send + 'static>(reply: Reply<T>, result: Result<T, StoreError>) -> Ran {
    let ok = result.is_ok();
    let answer = Box::new(move |batch_failure: Option<&str>| {
        let result = match (batch_failure, result) {
            (Some(msg), Ok(_)) => unavailable(msg),
            (_, r) => r,
        };
        let _ = reply.send(result);
        Vec::new()
    });
    Ran::new(answer, ok)
}

fn sql<T>(r: rusqlite::Result<T>) -> Result<T, StoreError> {
    r.map_err(|e| StoreError::Unavailable(db_err(e)))
}

/// Run one write command on `conn` (a savepoint inside the batch). Its moves
/// count only if it succeeded: a failed command's savepoint is rolled back.
pub(super) fn apply(conn: &Connection, op: Op, shared: &Shared, batch: &mut BatchState) -> Ran {
    let mut moves = Moves::default();
    let mut r = run_op(conn, op, shared, batch, &mut moves);
    if r.ok {
        batch.note(&moves);
        r.moves = moves;
    }
    r
}

fn run_op(
    conn: &Connection,
    op: Op,
    shared: &Shared,
    batch: &mut BatchState,
    moves: &mut Moves,
) -> Ran {
    match op {
        Op::Enqueue(ev, reply) => enqueue(conn, ev, reply, shared, batch, moves),
        Op::Claim {
            target,
            now_ms,
            limit,
            lease_ms,
            reply,
        } => claim(conn, &target, now_ms, limit, lease_ms, reply, shared, moves),
        Op::Complete(c, reply) => match sql(lease::complete(conn, &c, moves)) {
            Ok((done, effects)) => Ran {
                wake: effects.wake.into_iter().collect(),
                backlog: effects.finished_bytes.map_or((0, 0), |b| (-1, -b)),
                dead_heads: effects.dead_head.into_iter().collect(),
                ..ran(reply, Ok(done))
            },
            Err(e) => ran(reply, Err(e)),
        },
        Op::Release { id, lease, reply } => match sql(lease::release(conn, id, lease, moves)) {
            Ok(wake) => Ran {
                wake: wake.into_iter().collect(),
                ..ran(reply, Ok(()))
            },
            Err(e) => ran(reply, Err(e)),
        },
        Op::CheckWritable(reply) => ran(reply, sql(ops::touch(conn, now_ms()))),
        Op::Replay { id, now_ms, reply } => match sql(admin_ops::replay(conn, id, now_ms, moves)) {
            Ok((result, replayed)) => {
                let backlog = replayed.as_ref().map_or((0, 0), |(_, b)| (1, *b));
                Ran {
                    wake: replayed.into_iter().map(|(t, _)| t).collect(),
                    backlog,
                    ..ran(reply, Ok(result))
                }
            }
            Err(e) => ran(reply, Err(e)),
        },
        Op::ReplayDead {
            target,
            now_ms,
            limit,
            reply,
        } => match sql(admin_ops::replay_dead_batch(
            conn,
            target.as_deref(),
            now_ms,
            limit,
            moves,
        )) {
            Ok((n, wake, bytes)) => Ran {
                wake,
                backlog: (n as i64, bytes),
                ..ran(reply, Ok(n))
            },
            Err(e) => ran(reply, Err(e)),
        },
        Op::PurgeDead {
            target,
            limit,
            reply,
        } => ran(
            reply,
            sql(admin_ops::purge_dead_batch(
                conn,
                target.as_deref(),
                limit,
                moves,
            )),
        ),
        Op::SetOrdering {
            target,
            path,
            reply,
        } => {
            let mut orderings = shared.orderings();
            match sql(lanes::set_ordering(
                conn,
                &mut orderings,
                &target,
                path.as_deref(),
            )) {
                // Released deliveries are due now: wake the worker.
                Ok(change) => Ran {
                    wake: (change.released > 0)
                        .then_some(target)
                        .into_iter()
                        .collect(),
                    ..ran(reply, Ok(change))
                },
                Err(e) => ran(reply, Err(e)),
            }
        }
        Op::DeadLetterTarget {
            target,
            reason,
            now_ms,
            limit,
            reply,
        } => match sql(
            // A removed target's lanes go with it (their held deliveries
            // are dead-lettered like the rest).
            lanes::set_ordering(conn, &mut shared.orderings(), &target, None).and_then(|_| {
                admin_ops::dead_letter_batch(conn, &target, reason, now_ms, limit, moves)
            }),
        ) {
            Ok((n, bytes)) => Ran {
                backlog: (-(n as i64), -bytes),
                ..ran(reply, Ok(n))
            },
            Err(e) => ran(reply, Err(e)),
        },
        Op::Prune {
            before_ms,
            now_ms,
            limit,
            reply,
        } => ran(
            reply,
            sql(ops::prune_batch(conn, before_ms, now_ms, limit, moves)),
        ),
        // run_batch sends only writes here.
        read_or_close => {
            read_or_close.fail("internal: not a write command");
            Ran::new(Box::new(|_| Vec::new()), false)
        }
    }
}

/// Lease due deliveries, and answer at once, before the batch commits.
///
/// A claim needs no durability of its own: if the process dies before the
/// commit, the rows are as they were (waiting) and are claimed again after
/// the restart. What this buys is the commit's fsync: a worker waiting for
/// it between claims spent a commit cycle per claim, which capped delivery
/// below what the core could do (docs/performance.md). Claims run first in
/// their batch (see `commit_writes`), so they only ever see committed rows:
/// an event whose batch fails is never attempted.
///
/// While the store is failing (the last batch did not commit), claims are
/// answered after the commit instead, as every other command is: a batch
/// that fails again must not hand out leases the file never took, or the
/// same deliveries would be sent again and again, once per failed batch.
#[allow(clippy::too_many_arguments)]
fn claim(
    conn: &Connection,
    target: &str,
    now_ms: i64,
    limit: usize,
    lease_ms: i64,
    reply: Reply<Vec<Claim>>,
    shared: &Shared,
    moves: &mut Moves,
) -> Ran {
    // The caller gave up (its future was dropped) before we got here:
    // leasing rows for nobody would strand them until they expire.
    if reply.is_closed() {
        return ran(reply, Ok(Vec::new()));
    }
    let result = sql(lease::claim(conn, target, now_ms, limit, lease_ms, moves));
    let claimed = result.as_ref().map_or(0, |c| c.len() as u64);
    if shared.failing.load(Ordering::Relaxed) {
        let ok = result.is_ok();
        let answer = Box::new(move |batch_failure: Option<&str>| {
            let result = match (batch_failure, result) {
                (Some(msg), Ok(_)) => unavailable(msg),
                (_, r) => r,
            };
            match reply.send(result) {
                // It gave up while the batch committed: hand the leases back.
                Err(Ok(claims)) => claims.iter().map(|c| (c.delivery_id, c.lease)).collect(),
                _ => Vec::new(),
            }
        });
        return Ran {
            claimed: Some(claimed),
            ..Ran::new(answer, ok)
        };
    }
    let claims = match result {
        Ok(claims) => claims,
        Err(e) => return ran(reply, Err(e)),
    };
    let mut ok = true;
    if let Err(Ok(claims)) = reply.send(Ok(claims)) {
        // It gave up after we leased: hand the leases back, in this batch.
        for c in &claims {
            if lease::release(conn, c.delivery_id, c.lease, moves).is_err() {
                ok = false;
            }
        }
    }
    Ran {
        claimed: Some(claimed),
        ..Ran::new(Box::new(|_| Vec::new()), ok)
    }
}

/// Store one event; deliveries whose worker offered a credit are stored
/// leased and handed off after the commit, the others wait `pending` (and
/// their workers are woken).
fn enqueue(
    conn: &Connection,
    ev: NewEvent,
    reply: Reply<Enqueued>,
    shared: &Shared,
    batch: &mut BatchState,
    moves: &mut Moves,
) -> Ran {
    // The counters as of the last commit: a batch can overshoot a limit by at
    // most its own size.
    let backlog = shared.backlog.get();
    let full = ev
        .limits
        .is_some_and(|l| backlog.deliveries >= l.deliveries || backlog.bytes >= l.bytes);
    let mut placements = keys(&ev, shared);
    // A delivery that turns out held gives its credit back below.
    let mut tickets: Vec<Option<Ticket>> = ev
        .deliveries
        .iter()
        .map(|d| batch.hand_off(shared, &d.target))
        .collect();
    for (p, t) in placements.iter_mut().zip(&tickets) {
        p.lease = t.as_ref().map(|t| {
            let until = ev.received_at_ms.saturating_add(t.lease_ms());
            (LeaseToken::new(), until)
        });
    }
    let result = sql(ops::enqueue(conn, &ev, full, &mut placements, moves));
    // A held delivery waits for its key's head, never for a worker.
    for (p, t) in placements.iter().zip(tickets.iter_mut()) {
        if p.held
            && let Some(ticket) = t.take()
        {
            ticket.cancel();
        }
    }
    let stored = matches!(result, Ok(Enqueued::Stored));
    let mut r = ran(reply, result);
    if !stored {
        tickets.into_iter().flatten().for_each(Ticket::cancel);
        return r;
    }
    let n = ev.deliveries.len() as i64;
    r.events = 1;
    r.backlog = (n, n.saturating_mul(ev.body.len() as i64));
    let leases = placements.into_iter().map(|p| p.lease);
    for ((d, ticket), lease) in ev.deliveries.into_iter().zip(tickets).zip(leases) {
        match (ticket, lease) {
            (Some(ticket), Some((token, _))) => {
                let claim = Claim {
                    delivery_id: d.id,
                    event_id: ev.id,
                    target: d.target,
                    route: d.route,
                    source: ev.source.clone(),
                    received_at_ms: ev.received_at_ms,
                    attempts_made: 0,
                    attempts_in_budget: 0,
                    body: ev.body.clone(),
                    lease: token,
                };
                r.handed.push((ticket, claim));
            }
            _ => r.wake.push(d.target),
        }
    }
    r
}

/// The key of each delivery of `ev` whose target is ordered (where it is
/// placed is decided as it is written: see `lanes::join`).
fn keys(ev: &NewEvent, shared: &Shared) -> Vec<ops::Placement> {
    let orderings = shared.orderings();
    ev.deliveries
        .iter()
        .map(|d| ops::Placement {
            key: orderings.key_of(d, &ev.body),
            ..ops::Placement::default()
        })
        .collect()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn read(conn: &Connection, op: Op) {
    match op {
        Op::NextDue(target, reply) => {
            let _ = reply.send(sql(lease::next_due(conn, &target)));
        }
        Op::Delivery(id, reply) => {
            let _ = reply.send(sql(ops::delivery(conn, id)));
        }
        other => other.fail("internal: not a read command"),
    }
}

/// The thread body. Owns the connection and the lock file; returns when the
/// store is closed or dropped, after answering everything queued before that.
pub(super) fn run(mut conn: Connection, lock: File, rx: Receiver<Op>, shared: Arc<Shared>) {
    let mut closing = None;
    let mut orphans = Vec::new();
    while closing.is_none() {
        let Ok(first) = rx.recv() else { break };
        let mut batch = Vec::new();
        let mut next = Some(first);
        while let Some(op) = next {
            match op {
                Op::Close(ack) => {
                    closing = Some(ack);
                    break;
                }
                op => batch.push(op),
            }
            next = if batch.len() < MAX_BATCH {
                rx.try_recv().ok()
            } else {
                None
            };
        }
        orphans.extend(run_batch(&mut conn, batch, &shared));
        if !orphans.is_empty() {
            release_orphans(&mut conn, &mut orphans, &shared);
        }
    }
    // Commands sent after Close are dropped with the receiver: their callers
    // see the store as closed.
    drop(rx);
    if let Err((_, e)) = conn.close() {
        tracing::warn!(error = %db_err(e), "closing the sqlite queue failed");
    }
    drop(lock);
    if let Some(ack) = closing {
        let _ = ack.send(());
    }
}

/// Run one batch: the writes in one transaction, then the reads. Returns the
/// leases that reached nobody (see [`release_orphans`]).
pub(super) fn run_batch(conn: &mut Connection, batch: Vec<Op>, shared: &Shared) -> Vec<Lease> {
    let (writes, reads): (Vec<Op>, Vec<Op>) = batch.into_iter().partition(Op::is_write);
    let orphans = if writes.is_empty() {
        Vec::new()
    } else {
        commit_writes(conn, writes, shared)
    };
    for op in reads {
        read(conn, op);
    }
    orphans
}

fn commit_writes(conn: &mut Connection, writes: Vec<Op>, shared: &Shared) -> Vec<Lease> {
    let commands = writes.len() as u64;
    // Claims first: they are answered before the commit (see `claim`), so
    // they must not see what this batch writes.
    let (mut writes, rest): (Vec<Op>, Vec<Op>) = writes
        .into_iter()
        .partition(|op| matches!(op, Op::Claim { .. }));
    writes.extend(rest);
    let mut tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => {
            let msg = db_err(e);
            tracing::warn!(error = %msg, "sqlite queue: cannot begin a transaction");
            writes.into_iter().for_each(|op| op.fail(&msg));
            shared.stats.record_failure();
            return Vec::new();
        }
    };
    let mut done: Vec<Ran> = Vec::with_capacity(writes.len());
    let mut batch = BatchState::default();
    let mut aborted: Option<String> = None;
    for op in writes {
        if let Some(msg) = &aborted {
            op.fail(msg);
            continue;
        }
        if let Some(refused) = op.refusal() {
            op.fail(&refused);
            continue;
        }
        if !op.needs_savepoint() {
            let r = apply(&tx, op, shared, &mut batch);
            if !r.ok {
                // Part of it may be written: the batch cannot commit.
                aborted = Some("a command of the batch failed while writing".to_owned());
            }
            done.push(r);
            continue;
        }
        let mut r = match tx.savepoint() {
            Ok(sp) => {
                let r = apply(&sp, op, shared, &mut batch);
                // Release the savepoint, keeping its work only if the command
                // succeeded (dropping it rolls back, then releases).
                let released = if r.ok { sp.commit() } else { sp.finish() };
                match released {
                    Ok(()) => r,
                    Err(e) => fail_ran(r, db_err(e)),
                }
            }
            Err(e) => {
                op.fail(&db_err(e));
                continue;
            }
        };
        // Some errors (disk full, I/O) make SQLite roll back the whole
        // transaction. Anything run after that would land in a fresh implicit
        // transaction, and the commands before it would be lost while their
        // callers were told "done": fail the whole batch instead.
        if tx.is_autocommit() {
            aborted = Some("the batch transaction was rolled back".to_owned());
            r.ok = false;
        }
        done.push(r);
    }
    let failure = match aborted {
        Some(msg) => {
            drop(tx); // rolls the batch back
            Some(msg)
        }
        None => tx.commit().err().map(db_err),
    };
    let stats = &shared.stats;
    let mut orphans = Vec::new();
    let mut wake = BTreeSet::new();
    let mut events = 0;
    shared.failing.store(failure.is_some(), Ordering::Relaxed);
    if let Some(msg) = &failure {
        tracing::warn!(error = %msg, commands, "sqlite queue: batch commit failed");
        stats.record_failure();
        // A change of ordering made in this batch was rolled back with it.
        match lanes::Orderings::load(conn) {
            Ok(o) => *shared.orderings() = o,
            Err(e) => {
                tracing::warn!(error = %db_err(e), "sqlite queue: cannot read the ordered targets again")
            }
        }
        for r in done {
            r.handed.into_iter().for_each(|(ticket, _)| ticket.cancel());
            orphans.extend((r.answer)(Some(msg)));
        }
        return orphans;
    }
    // Counters and wake-ups before the answers: a caller that sees its
    // enqueue done also sees it counted and its target signalled.
    let mut backlog = (0i64, 0i64);
    let (mut claims, mut claimed) = (0u64, 0u64);
    for r in &mut done {
        events += r.events;
        if let Some(n) = r.claimed {
            claims += 1;
            claimed += n;
        }
        backlog.0 += r.backlog.0;
        backlog.1 += r.backlog.1;
        wake.extend(std::mem::take(&mut r.wake));
    }
    shared.backlog.apply(backlog);
    shared.depth_apply(done.iter().map(|r| &r.moves));
    let now = shared.backlog.get();
    crate::metrics::queue_commit(events);
    crate::metrics::queue_claims(claims, claimed);
    crate::metrics::queue_backlog(now.deliveries, now.bytes);
    stats.record_commit(commands, events);
    // Hand-offs before wake-ups: a worker woken for this batch's pending
    // deliveries finds the older, handed-off ones already in its inbox.
    let mut handed = 0;
    for r in &mut done {
        for (ticket, claim) in std::mem::take(&mut r.handed) {
            match ticket.deliver(claim) {
                Ok(()) => handed += 1,
                // The worker is gone: release the lease now rather than let
                // it wait for its expiry.
                Err(claim) => orphans.push((claim.delivery_id, claim.lease)),
            }
        }
    }
    crate::metrics::queue_handed_off(handed);
    for r in &mut done {
        for (target, head, released) in std::mem::take(&mut r.dead_heads) {
            crate::queue::log_dead_head(&target, head, &released.key, released.next);
        }
    }
    for target in &wake {
        shared.signal.notify(target);
    }
    for r in done {
        orphans.extend((r.answer)(None));
    }
    orphans
}

/// Keep a command's answer but turn its result into `msg` (its savepoint could
/// not be released, so its effect is uncertain).
fn fail_ran(r: Ran, msg: String) -> Ran {
    let answer = r.answer;
    Ran::new(
        Box::new(move |failure| answer(Some(failure.unwrap_or(&msg)))),
        false,
    )
}

/// Put back deliveries leased for nobody: handed off to a worker that is
/// gone, or claimed (while the store was failing, so answered after the
/// commit) by a caller that gave up before the answer came.
pub(super) fn release_orphans(conn: &mut Connection, orphans: &mut Vec<Lease>, shared: &Shared) {
    let mut moves = Moves::default();
    let result = conn.transaction().and_then(|tx| {
        for (id, lease) in orphans.iter() {
            lease::release(&tx, *id, *lease, &mut moves)?;
        }
        tx.commit()
    });
    match result {
        Ok(()) => {
            shared.depth_apply(std::iter::once(&moves));
            orphans.clear();
        }
        // Kept for the next batch; a restart recovers them in any case.
        Err(e) => {
            tracing::warn!(error = %db_err(e), "sqlite queue: cannot release abandoned claims")
        }
    }
}
