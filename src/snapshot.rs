//! The live configuration: one immutable [`Snapshot`] swapped atomically.
//!
//! A snapshot pairs a validated [`Config`] with the [`RoutePlan`] compiled from
//! it and the [`FieldSet`] of payload paths its routes read. Ingress and
//! delivery `load()` the current one per request or attempt and keep using it
//! until they finish, so a reload never changes the config under a request in
//! flight. Only reload writes it.

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::config::Config;
use crate::event::FieldSet;
use crate::rules::RoutePlan;

#[derive(Debug)]
pub struct Snapshot {
    pub config: Config,
    pub plan: RoutePlan,
    /// What ingress parses of an event: the fields the routes and the schema read.
    pub fields: FieldSet,
    /// Unix milliseconds when this config was loaded.
    pub loaded_at_ms: i64,
}

impl Snapshot {
    pub fn new(config: Config, loaded_at_ms: i64) -> Self {
        let plan = RoutePlan::compile(&config);
        let fields = FieldSet::for_routes(&config.routes);
        Snapshot {
            config,
            plan,
            fields,
            loaded_at_ms,
        }
    }
}

/// The shared handle to the current snapshot.
pub type LiveConfig = Arc<ArcSwap<Snapshot>>;

/// Wrap a first snapshot for sharing.
pub fn live(snapshot: Snapshot) -> LiveConfig {
    Arc::new(ArcSwap::from_pointee(snapshot))
}
