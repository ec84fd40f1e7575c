//! The live configuration: one immutable [`Snapshot`] swapped atomically.
//!
//! A snapshot pairs a validated [`Config`] with the [`RoutePlan`] compiled from
//! it and the [`FieldSet`] of payload paths its routes read. Ingress and
//! delivery `load()` the current one per request or attempt and keep using it
//! until they finish, so a reload never changes the config under a request in
//! flight. Only reload writes it: [`live`] hands out a read-only [`LiveConfig`]
//! for everyone and one [`SnapshotWriter`] for the owner (the
//! [`reload`](crate::reload) task; tests make their own pair).

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::config::Config;
use crate::event::FieldSet;
use crate::rules::RoutePlan;

#[derive(Debug)]
pub struct Snapshot {
    pub config: Config,
    pub plan: RoutePlan,
    /// What ingress parses of an event: the fields the routes, the schema and
    /// the ordered targets' keys read.
    pub fields: FieldSet,
    /// Unix milliseconds when this config was loaded.
    pub loaded_at_ms: i64,
}

impl Snapshot {
    pub fn new(config: Config, loaded_at_ms: i64) -> Self {
        let plan = RoutePlan::compile(&config);
        let mut fields = FieldSet::for_routes(&config.routes);
        // Ordered targets' keys are read from the parsed event too.
        for target in &config.targets {
            if let Some(ordering) = &target.ordering {
                fields.insert(&ordering.path);
            }
        }
        Snapshot {
            config,
            plan,
            fields,
            loaded_at_ms,
        }
    }
}

/// The shared, read-only handle to the current snapshot: ingress, delivery
/// and admin can load it, never replace it.
#[derive(Clone)]
pub struct LiveConfig(Arc<ArcSwap<Snapshot>>);

impl LiveConfig {
    /// The current snapshot, cheaply, for a short use (one request, one attempt).
    pub fn load(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.0.load()
    }

    /// The current snapshot, to keep (across awaits or in a task).
    pub fn load_full(&self) -> Arc<Snapshot> {
        self.0.load_full()
    }
}

/// The one handle that can swap the live snapshot. Held by whoever does
/// reloads; deliberately not `Clone`.
pub struct SnapshotWriter(Arc<ArcSwap<Snapshot>>);

impl SnapshotWriter {
    /// Make `snapshot` the current one: the next request or attempt sees it.
    pub fn store(&self, snapshot: Arc<Snapshot>) {
        self.0.store(snapshot);
    }

    /// A read-only handle to the same snapshot.
    pub fn reader(&self) -> LiveConfig {
        LiveConfig(self.0.clone())
    }
}

/// Wrap a first snapshot for sharing: the read handle and the write handle.
pub fn live(snapshot: Snapshot) -> (LiveConfig, SnapshotWriter) {
    let shared = Arc::new(ArcSwap::from_pointee(snapshot));
    (LiveConfig(shared.clone()), SnapshotWriter(shared))
}
