//! What a caught panic said, for the log line that reports it.
//!
//! hookgate contains panics where work is isolated (a request in
//! `ingress::conn`, a target's worker in `delivery::runtime`, an attempt's
//! task in `delivery::worker`): the unit fails, is logged with this text, and
//! the process goes on.

/// The text of a panic payload (a `&str` or `String`, usually).
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(not a string)")
}
