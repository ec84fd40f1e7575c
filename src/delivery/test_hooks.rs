//! Test builds only: make the next attempts or the worker of a named target
//! panic, to show that a task that dies is logged, its delivery released
//! and its worker restarted (STYLE.md habit 13). Tests use target names of
//! their own, so hooks never reach another test's target.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hook {
    Attempt,
    Worker,
}

static ARMED: Mutex<Option<HashMap<(Hook, String), usize>>> = Mutex::new(None);

/// The next `times` passes of `hook` for `target` panic.
pub fn arm(hook: Hook, target: &str, times: usize) {
    let mut armed = ARMED.lock().unwrap_or_else(PoisonError::into_inner);
    armed
        .get_or_insert_with(HashMap::new)
        .insert((hook, target.to_owned()), times);
}

/// Panic if `hook` is armed for `target` (and count it down).
pub fn maybe_panic(hook: Hook, target: &str) {
    let fire = {
        let mut armed = ARMED.lock().unwrap_or_else(PoisonError::into_inner);
        match armed
            .as_mut()
            .and_then(|m| m.get_mut(&(hook, target.to_owned())))
        {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        }
    };
    assert!(!fire, "test hook: {hook:?} of {target} panics");
}
