//! Unit tests of the sqlite store's internals: query plans, schema versions,
//! batch isolation and abandoned claims. The behaviour through the trait is
//! covered by the conformance suite in `tests/store_sqlite.rs`.

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::schema::open_connection;
use super::writer::{BatchState, Op, apply, release_orphans, run_batch};
use super::{Shared, lease};
use crate::queue::NewEvent;

fn plan(conn: &Connection, sql: &str, params: &[&dyn rusqlite::ToSql]) -> String {
    let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
    let rows = stmt.query_map(params, |r| r.get::<_, String>(3)).unwrap();
    rows.map(|r| r.unwrap()).collect::<Vec<_>>().join("; ")
}

/// The claim must walk the partial index in order: no full scan, no sort.
#[test]
fn claim_and_next_due_use_the_due_index_without_sorting() {
    let dir = tempfile::tempdir().unwrap();
    let (conn, _) = open_connection(&dir.path().join("q.db")).unwrap();
    let claim: &[&dyn rusqlite::ToSql] = &[&"t", &0, &10];
    let next_due: &[&dyn rusqlite::ToSql] = &[&"t"];
    for (sql, params) in [(lease::CLAIM_SELECT, claim), (lease::NEXT_DUE, next_due)] {
        let p = plan(&conn, sql, params);
        assert!(p.contains("deliveries_due"), "{sql}\n=> {p}");
        assert!(!p.contains("TEMP B-TREE"), "{sql}\n=> {p}");
    }
    // Expired leases: only the in-flight rows' index.
    let reclaim: &[&dyn rusqlite::ToSql] = &[&"t", &0];
    for (sql, params) in [
        (lease::EXPIRED_LEASES, reclaim),
        (lease::NEXT_DUE, next_due),
    ] {
        let p = plan(&conn, sql, params);
        assert!(p.contains("deliveries_leases"), "{sql}\n=> {p}");
        assert!(!p.contains("TEMP B-TREE"), "{sql}\n=> {p}");
    }
}

#[test]
fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    drop(open_connection(&path).unwrap());
    let conn = Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let err = open_connection(&path).unwrap_err().to_string();
    assert!(err.contains("newer hookgate"), "{err}");
}

/// A version 2 file (leases without expiry, every row indexed by state)
/// opens at the current version, with the deliveries that were in flight
/// recovered.
#[test]
fn a_version_2_file_is_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    {
        let (mut conn, _) = open_connection(&path).unwrap();
        run_batch(
            &mut conn,
            vec![Op::Enqueue(ev(&["a"]), oneshot::channel().0)],
            &Shared::default(),
        );
        conn.execute_batch(
            "UPDATE deliveries SET state = 'in_flight', lease_token = 'x';
             DROP INDEX deliveries_leases;
             DROP INDEX deliveries_dead;
             CREATE INDEX deliveries_state ON deliveries (state, target, seq);
             ALTER TABLE deliveries DROP COLUMN lease_until;
             DROP INDEX deliveries_held;
             DROP TABLE lanes;
             DROP TABLE ordered_targets;
             ALTER TABLE deliveries DROP COLUMN order_key;
             PRAGMA user_version = 2;",
        )
        .unwrap();
    }
    let (conn, recovered) = open_connection(&path).unwrap();
    assert_eq!(recovered, 1);
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, super::schema::SCHEMA_VERSION);
    let (state, lease_until): (String, Option<i64>) = conn
        .query_row("SELECT state, lease_until FROM deliveries", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!((state.as_str(), lease_until), ("pending", None));
    let indexes: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'deliveries_%'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(
        indexes.contains(&"deliveries_held".to_owned()),
        "version 5 holds ordered deliveries: {indexes:?}"
    );
    assert!(
        indexes.contains(&"deliveries_dead".to_owned()),
        "{indexes:?}"
    );
    assert!(
        !indexes.contains(&"deliveries_state".to_owned()),
        "{indexes:?}"
    );
}

/// Dead-letter work reads only the dead rows' index, and the targets with
/// work come from the two partial indexes of waiting and in-flight rows.
#[test]
fn dead_letters_and_targets_with_work_use_partial_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let (conn, _) = open_connection(&dir.path().join("q.db")).unwrap();
    let dead =
        "SELECT seq FROM deliveries WHERE state = 'dead' AND (?1 IS NULL OR target = ?1) LIMIT 10";
    let p = plan(&conn, dead, &[&"t"]);
    assert!(p.contains("deliveries_dead"), "{p}");
    let work = "SELECT target FROM deliveries WHERE state IN ('pending', 'retrying')
                UNION SELECT target FROM deliveries WHERE state = 'in_flight'";
    let p = plan(&conn, work, &[]);
    assert!(
        p.contains("deliveries_due") && p.contains("deliveries_leases"),
        "{p}"
    );
}

fn ev(targets: &[&str]) -> NewEvent {
    crate::queue::conformance::event("s", 1, b"{}", targets)
}

/// A new queue file, its writer connection, and the writer's shared state.
fn fresh() -> (tempfile::TempDir, Connection, Shared) {
    let dir = tempfile::tempdir().unwrap();
    let (conn, _) = open_connection(&dir.path().join("q.db")).unwrap();
    (dir, conn, Shared::default())
}

/// A claim of up to 10 due deliveries of target `a` at 10 ms.
fn claim_a(reply: super::command::Reply<Vec<crate::queue::Claim>>) -> Op {
    Op::Claim {
        target: "a".into(),
        now_ms: 10,
        limit: 10,
        lease_ms: 60_000,
        reply,
    }
}

/// One bad command in the middle of a batch fails alone; the batch commits
/// once for everyone else.
#[test]
fn a_failing_command_fails_only_its_caller() {
    let (_dir, mut conn, shared) = fresh();
    let events = [ev(&["a"]), ev(&["a", "a"]), ev(&["b"])];
    let results: Vec<bool> = enqueue_batch(&mut conn, &shared, &events)
        .iter()
        .map(Result::is_ok)
        .collect();
    assert_eq!(results, [true, false, true]);
    let stats = shared.stats.snapshot();
    assert_eq!((stats.batches, stats.commands, stats.events), (1, 3, 2));
    let stored: i64 = conn
        .query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))
        .unwrap();
    assert_eq!(stored, 2);
}

/// A claim whose caller is gone before it runs leases nothing.
#[test]
fn an_abandoned_claim_leases_nothing() {
    let (_dir, mut conn, shared) = fresh();
    let (tx, _rx) = oneshot::channel();
    assert!(run_batch(&mut conn, vec![Op::Enqueue(ev(&["a"]), tx)], &shared).is_empty());
    // The caller dropped its future before the writer reached the claim.
    let (tx, mut rx) = oneshot::channel();
    let claim = claim_a(tx);
    rx.close();
    let tx = conn.transaction().unwrap();
    // Closed before the claim ran: nothing is leased at all.
    let r = apply(&tx, claim, &shared, &mut BatchState::default());
    assert!((r.answer)(None).is_empty());
    tx.commit().unwrap();
    let state: String = conn
        .query_row("SELECT state FROM deliveries", [], |r| r.get(0))
        .unwrap();
    assert_eq!(state, "pending");
}

fn keyed(targets: &[&str]) -> NewEvent {
    let mut e = ev(targets);
    e.dedupe = Some(crate::queue::DedupeKey {
        key: [7; 32],
        expires_at_ms: 1_000,
    });
    e
}

/// Run `events` as one batch (one transaction) and collect every answer.
fn enqueue_batch(
    conn: &mut Connection,
    shared: &Shared,
    events: &[NewEvent],
) -> Vec<Result<crate::queue::Enqueued, crate::queue::StoreError>> {
    let mut answers = Vec::new();
    let batch = events
        .iter()
        .map(|e| {
            let (tx, rx) = oneshot::channel();
            answers.push(rx);
            Op::Enqueue(e.clone(), tx)
        })
        .collect();
    assert!(run_batch(conn, batch, shared).is_empty());
    answers
        .into_iter()
        .map(|mut rx| rx.try_recv().expect("answered once the batch committed"))
        .collect()
}

/// A duplicate that arrives while its original is in the same, uncommitted
/// batch is told "duplicate" only with that batch's commit; if the original
/// itself fails, its key goes with it and the copy is stored as a new event.
#[test]
fn a_duplicate_in_its_originals_batch_follows_the_originals_fate() {
    use crate::queue::Enqueued;
    let (_dir, mut conn, shared) = fresh();
    let (first, copy) = (keyed(&["a"]), keyed(&["a"]));
    let answers = enqueue_batch(&mut conn, &shared, &[first.clone(), copy]);
    assert!(matches!(answers[0], Ok(Enqueued::Stored)), "{answers:?}");
    assert!(
        matches!(answers[1], Ok(Enqueued::Duplicate(id)) if id == first.id),
        "{answers:?}"
    );

    // Another key whose first copy fails (a target listed twice breaks a
    // UNIQUE constraint): the second copy is new, not a duplicate of nothing.
    let dir = tempfile::tempdir().unwrap();
    let (mut conn, _) = open_connection(&dir.path().join("q.db")).unwrap();
    let (broken, copy) = (keyed(&["a", "a"]), keyed(&["a"]));
    let answers = enqueue_batch(&mut conn, &shared, &[broken, copy.clone()]);
    assert!(answers[0].is_err(), "{answers:?}");
    assert!(matches!(answers[1], Ok(Enqueued::Stored)), "{answers:?}");
    let owner: String = conn
        .query_row("SELECT event_id FROM dedupe", [], |r| r.get(0))
        .unwrap();
    assert_eq!(owner, copy.id.to_string());
}

/// The depth counts the writer keeps from each command's moves must always
/// equal a fresh count of the rows, through every kind of write.
#[tokio::test]
async fn depth_counts_follow_every_write_and_match_the_rows() {
    use crate::queue::conformance::event;
    use crate::queue::{
        AttemptRecord, Completion, DeadReason, DeliveryQueue, DeliveryRecords, NextState,
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let store = super::SqliteStore::open(&path).unwrap();
    let check = |when: &str| {
        let fresh = super::depth::Depth::count(&Connection::open(&path).unwrap()).unwrap();
        let kept = store.shared.depth.lock().unwrap().nonzero();
        assert_eq!(kept, fresh.nonzero(), "after {when}");
        kept
    };
    let attempt = AttemptRecord {
        at_ms: 10,
        duration_ms: 1,
        status: Some(500),
        error: None,
        response_excerpt: None,
    };
    let finish = |c: &crate::queue::Claim, next| Completion {
        delivery_id: c.delivery_id,
        lease: c.lease,
        attempt: attempt.clone(),
        next,
    };

    for _ in 0..4 {
        store
            .enqueue(event("s", 1, b"{}", &["a", "b"]))
            .await
            .unwrap();
    }
    // A command that fails moves nothing.
    assert!(
        store
            .enqueue(event("s", 1, b"{}", &["a", "a"]))
            .await
            .is_err()
    );
    check("enqueue");

    let claims = store.claim_due("a", 10, 4, 60_000).await.unwrap();
    assert_eq!(claims.len(), 4);
    // A claim is answered before its batch commits (writer::claim); any
    // write after it is answered only once that batch is on disk.
    store.check_writable().await.unwrap();
    check("claim");
    store
        .complete(finish(&claims[0], NextState::Delivered))
        .await
        .unwrap();
    store
        .complete(finish(&claims[1], NextState::RetryAt(20)))
        .await
        .unwrap();
    store
        .complete(finish(
            &claims[2],
            NextState::Dead(DeadReason::PermanentStatus),
        ))
        .await
        .unwrap();
    store
        .release(claims[3].delivery_id, claims[3].lease)
        .await
        .unwrap();
    // A stale completion (the lease was released) moves nothing.
    store
        .complete(finish(&claims[3], NextState::Delivered))
        .await
        .unwrap();
    let counts = check("complete and release");
    assert!(counts.contains(&("a".into(), crate::queue::DeliveryState::Retrying, 1)));

    // The retrying one is claimed again and dies; the dead ones are replayed.
    let exhaust_due = |now: i64| {
        let (store, finish) = (&store, &finish);
        async move {
            for c in store.claim_due("a", now, 10, 60_000).await.unwrap() {
                let next = NextState::Dead(DeadReason::Exhausted);
                store.complete(finish(&c, next)).await.unwrap();
            }
        }
    };
    exhaust_due(30).await;
    check("second claim");
    store.replay(claims[0].delivery_id, 40).await.unwrap();
    check("replay of a delivered one");
    store.replay_dead(Some("a"), 40).await.unwrap();
    check("bulk replay");
    exhaust_due(50).await;
    store.purge_dead(Some("a")).await.unwrap();
    check("purge");
    store
        .dead_letter_target("b", DeadReason::TargetRemoved, 60)
        .await
        .unwrap();
    check("dead-lettering a removed target");

    // Retention: deliver everything of b and prune it.
    store.replay_dead(Some("b"), 70).await.unwrap();
    for c in store.claim_due("b", 80, 10, 60_000).await.unwrap() {
        store
            .complete(finish(&c, NextState::Delivered))
            .await
            .unwrap();
    }
    check("delivering b");
    store.prune(i64::MAX, 90).await.unwrap();
    assert_eq!(check("prune"), Vec::new());

    // Reopening counts the same from the file.
    drop(store);
    let store = super::SqliteStore::open(&path).unwrap();
    assert!(store.shared.depth.lock().unwrap().nonzero().is_empty());
}

/// A claim earlier in a batch takes the waiting deliveries, so an enqueue
/// later in the same batch may be handed off: nothing waits before it.
#[test]
fn a_claim_in_the_batch_clears_the_way_for_a_hand_off() {
    let (_dir, mut conn, shared) = fresh();
    let waiting = ev(&["a"]);
    let waiting_id = waiting.deliveries[0].id;
    let (tx, _rx) = oneshot::channel();
    assert!(run_batch(&mut conn, vec![Op::Enqueue(waiting, tx)], &shared).is_empty());
    let mut inbox = shared.hand_offs.open("a");
    inbox.offer(1, 60_000);
    let fresh = ev(&["a"]);
    let fresh_id = fresh.deliveries[0].id;
    let (etx, _erx) = oneshot::channel();
    let (ctx, mut crx) = oneshot::channel();
    let claim = claim_a(ctx);
    // Sent in the other order: the writer runs claims first.
    assert!(run_batch(&mut conn, vec![Op::Enqueue(fresh, etx), claim], &shared).is_empty());
    let claimed = crx.try_recv().unwrap().unwrap();
    assert_eq!(
        claimed.iter().map(|c| c.delivery_id).collect::<Vec<_>>(),
        [waiting_id]
    );
    assert_eq!(inbox.try_recv().map(|c| c.delivery_id), Some(fresh_id));
}

/// A claim's limit changes from one claim to the next; the claim statement
/// must not be re-prepared for it (a bare `LIMIT ?` is).
#[test]
fn the_claim_is_not_prepared_again_for_each_limit() {
    let dir = tempfile::tempdir().unwrap();
    let (conn, _) = open_connection(&dir.path().join("q.db")).unwrap();
    let mut select = conn.prepare_cached(lease::CLAIM_SELECT).unwrap();
    for limit in 1..6i64 {
        let mut rows = select
            .query(rusqlite::params!["t", 10 + limit, limit])
            .unwrap();
        while rows.next().unwrap().is_some() {}
    }
    let reprepared = select.get_status(rusqlite::StatementStatus::RePrepare);
    assert_eq!(reprepared, 0);
}

/// A claim answered before its batch's commit, when that commit fails: the
/// lease never reached the file, so the delivery may be claimed once more;
/// but while commits keep failing, claims wait for the commit like every
/// other command, so the same delivery is not sent again per failed batch.
#[test]
fn while_commits_fail_claims_wait_for_the_commit() {
    let (_dir, mut conn, shared) = fresh();
    let first = ev(&["a"]);
    let id = first.deliveries[0].id;
    let (tx, _rx) = oneshot::channel();
    run_batch(&mut conn, vec![Op::Enqueue(first.clone(), tx)], &shared);
    let claim = claim_a;
    // A repeated event id fails while writing: the batch cannot commit.
    let clash = || {
        let mut e = ev(&["b"]);
        e.id = first.id;
        e
    };
    let (ctx, mut crx) = oneshot::channel();
    let (etx, mut erx) = oneshot::channel();
    run_batch(
        &mut conn,
        vec![claim(ctx), Op::Enqueue(clash(), etx)],
        &shared,
    );
    assert!(erx.try_recv().unwrap().is_err(), "the batch failed");
    let early = crx.try_recv().unwrap().expect("answered before the commit");
    assert_eq!(early[0].delivery_id, id);
    // The store is failing now: the next claim hears the batch's verdict.
    let (ctx, mut crx) = oneshot::channel();
    let (etx, _erx) = oneshot::channel();
    run_batch(
        &mut conn,
        vec![claim(ctx), Op::Enqueue(clash(), etx)],
        &shared,
    );
    assert!(crx.try_recv().unwrap().is_err());
    // A batch commits again: the delivery is claimed (once more), and
    // claims are answered early again.
    let (ctx, mut crx) = oneshot::channel();
    run_batch(&mut conn, vec![claim(ctx)], &shared);
    assert_eq!(crx.try_recv().unwrap().unwrap()[0].delivery_id, id);
}

/// Leases that reached nobody (a handed-off claim whose worker is gone) are
/// released after the batch.
#[test]
fn leases_that_reached_nobody_are_released() {
    let (_dir, mut conn, shared) = fresh();
    let (tx, _rx) = oneshot::channel();
    assert!(run_batch(&mut conn, vec![Op::Enqueue(ev(&["a"]), tx)], &shared).is_empty());
    let mut moves = super::depth::Moves::default();
    let claims = {
        let tx = conn.transaction().unwrap();
        let c = lease::claim(&tx, "a", 10, 1, 60_000, &mut moves).unwrap();
        tx.commit().unwrap();
        c
    };
    let mut orphans: Vec<_> = claims.iter().map(|c| (c.delivery_id, c.lease)).collect();
    release_orphans(&mut conn, &mut orphans, &shared);
    assert!(orphans.is_empty());
    let state: String = conn
        .query_row("SELECT state FROM deliveries", [], |r| r.get(0))
        .unwrap();
    assert_eq!(state, "pending");
}
