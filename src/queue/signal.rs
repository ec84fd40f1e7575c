//! Per-target wake-ups: "there may be work for target X now".
//!
//! The store signals a target after committing deliveries for it (and after a
//! retry is scheduled); that target's delivery worker waits on the signal or on
//! its next due time, whichever comes first. `Notify::notify_one` keeps one
//! permit when nobody is waiting, so a wake-up sent while the worker is busy is
//! not lost.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;

#[derive(Default)]
pub struct WorkSignal {
    targets: Mutex<HashMap<String, Arc<Notify>>>,
}

impl WorkSignal {
    /// The notifier for `target`, created on first use.
    pub fn subscribe(&self, target: &str) -> Arc<Notify> {
        let mut map = self.targets.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = map.get(target) {
            return n.clone();
        }
        let n = Arc::new(Notify::new());
        map.insert(target.to_owned(), n.clone());
        n
    }

    /// Wake `target`'s worker (or leave it a permit).
    pub fn notify(&self, target: &str) {
        self.subscribe(target).notify_one();
    }
}

impl std::fmt::Debug for WorkSignal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WorkSignal")
    }
}
