//! The sqlite store: the shared conformance suite, then what only a file can show.

use std::sync::Arc;

use hookgate::queue::DeliveryStore;
use hookgate::queue::sqlite::SqliteStore;
use tempfile::TempDir;

async fn setup() -> (Arc<dyn DeliveryStore>, TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&dir.path().join("queue.db")).expect("open");
    (Arc::new(store), dir)
}

hookgate::delivery_store_conformance!(setup);
