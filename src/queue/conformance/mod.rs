//! The behaviour every [`DeliveryStore`] must show, as test cases any backend
//! can run: sqlite in `tests/store_sqlite.rs`, redis later.
//!
//! Each case is a `pub async fn(Arc<dyn DeliveryStore>)` that gets a fresh,
//! empty store and panics on a violation. It uses only the trait. Run them all
//! with [`delivery_store_conformance!`](crate::delivery_store_conformance),
//! which stamps out one `#[tokio::test]` per case for a given setup function.
//!
//! Times are arbitrary fixed milliseconds: the store must not read a clock of
//! its own for anything the trait hands it.
//!
//! Cases by topic: `enqueue` (storing, refusing, signalling, load),
//! `claims` (what a claim hands out and when), `outcomes` (complete, retry,
//! dead, stale leases, release), `admin` (listing, replay, purge, sweep,
//! dedupe, backlog, retention), `ordering` (ordered targets' lanes). This
//! file holds the macro and the helpers.

use std::sync::Arc;

use bytes::Bytes;
use uuid::Uuid;

mod admin;
mod claims;
mod enqueue;
mod ordering;
mod outcomes;

pub use admin::*;
pub use claims::*;
pub use enqueue::*;
pub use ordering::*;
pub use outcomes::*;

use crate::queue::{
    AttemptRecord, Claim, Completion, DeliveryDetail, DeliveryId, DeliveryStore, NewDelivery,
    NewEvent, NextState,
};

/// Stamp out one `#[tokio::test]` per conformance case.
///
/// `$setup` is a path to an `async fn() -> (Arc<dyn DeliveryStore>, G)`, called
/// once per case; `G` is kept alive until the case ends (a temp dir, say). A
/// backend that may be missing on the machine (a Redis server) returns
/// `Option<(Arc<dyn DeliveryStore>, G)>` instead, and `None` skips the case.
#[macro_export]
macro_rules! delivery_store_conformance {
    ($setup:path) => {
        $crate::delivery_store_conformance!(@cases $setup;
            enqueue_then_claim_returns_the_event_exactly,
            claim_order_is_due_time_then_acceptance,
            claim_respects_limit_and_target,
            claimed_delivery_is_not_claimed_again,
            an_expired_lease_is_claimed_again_and_its_holder_ignored,
            complete_delivered_records_the_attempt,
            retry_waits_until_due_then_dead,
            stale_lease_is_ignored,
            release_does_not_count_an_attempt,
            one_delivery_per_event_and_target,
            event_without_deliveries_is_stored,
            work_signal_on_enqueue_retry_and_release,
            next_due_is_the_earliest_waiting,
            unknown_delivery_is_none_and_store_is_writable,
            concurrent_enqueues_are_claimed_exactly_once,
            list_filters_orders_and_pages,
            replay_gives_a_fresh_budget_and_keeps_counting,
            bulk_replay_and_purge_work_in_batches_per_target,
            purge_all_removes_attempts_and_orphaned_events,
            removed_targets_are_swept,
            dedupe_keys_accept_an_event_once_per_window,
            backlog_counts_and_limits,
            prune_removes_old_delivered_records_only,
            target_queues_count_states_and_find_the_oldest_waiting,
        );
    };
    // Ordered targets' lanes, for a backend that keeps them.
    (ordering $setup:path) => {
        $crate::delivery_store_conformance!(@cases $setup;
            ordered_keys_go_one_at_a_time_in_acceptance_order,
            gaining_ordering_holds_what_is_not_attempted_and_losing_it_lets_go,
            a_replayed_dead_head_goes_out_of_order,
            a_removed_ordered_target_dead_letters_its_held_deliveries,
        );
    };
    (@cases $setup:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let setup = $crate::queue::conformance::SetupOutcome::into_store($setup().await);
                let Some((store, _guard)) = setup else {
                    return;
                };
                $crate::queue::conformance::$case(store).await;
            }
        )*
    };
}

/// What a conformance setup returns: a store and a guard to keep alive, or
/// (`Option`) nothing when its backend is not available here.
pub trait SetupOutcome {
    type Guard;
    fn into_store(self) -> Option<(Arc<dyn DeliveryStore>, Self::Guard)>;
}

impl<G> SetupOutcome for (Arc<dyn DeliveryStore>, G) {
    type Guard = G;
    fn into_store(self) -> Option<(Arc<dyn DeliveryStore>, G)> {
        Some(self)
    }
}

impl<G> SetupOutcome for Option<(Arc<dyn DeliveryStore>, G)> {
    type Guard = G;
    fn into_store(self) -> Option<(Arc<dyn DeliveryStore>, G)> {
        self
    }
}

const T0: i64 = 1_700_000_000_000;
/// The lease every helper claim asks for: longer than any case's time steps,
/// except where a case lets a lease expire on purpose.
pub const LEASE_MS: i64 = 3_600_000;

/// An event from `source` received at `at` with one delivery per target
/// (route `route-<target>`); shared with backend-specific tests.
pub fn event(source: &str, at: i64, body: &[u8], targets: &[&str]) -> NewEvent {
    NewEvent {
        id: Uuid::now_v7(),
        source: source.to_owned(),
        received_at_ms: at,
        body: Bytes::copy_from_slice(body),
        deliveries: targets
            .iter()
            .map(|t| NewDelivery {
                id: Uuid::now_v7(),
                target: (*t).to_owned(),
                route: format!("route-{t}"),
                order: None,
            })
            .collect(),
        dedupe: None,
        limits: None,
    }
}

fn attempt(
    at: i64,
    status: Option<u16>,
    error: Option<&str>,
    excerpt: Option<&str>,
) -> AttemptRecord {
    AttemptRecord {
        at_ms: at,
        duration_ms: 42,
        status,
        error: error.map(str::to_owned),
        response_excerpt: excerpt.map(str::to_owned),
    }
}

fn done(c: &Claim, a: AttemptRecord, next: NextState) -> Completion {
    Completion {
        delivery_id: c.delivery_id,
        lease: c.lease,
        attempt: a,
        next,
    }
}

async fn detail(store: &dyn DeliveryStore, id: DeliveryId) -> DeliveryDetail {
    store
        .delivery(id)
        .await
        .expect("delivery()")
        .expect("delivery exists")
}

async fn enqueue(store: &dyn DeliveryStore, ev: &NewEvent) {
    store.enqueue(ev.clone()).await.expect("enqueue");
}

async fn claim(store: &dyn DeliveryStore, target: &str, now: i64, limit: usize) -> Vec<Claim> {
    store
        .claim_due(target, now, limit, LEASE_MS)
        .await
        .expect("claim_due")
}

fn ids(claims: &[Claim]) -> Vec<DeliveryId> {
    claims.iter().map(|c| c.delivery_id).collect()
}
