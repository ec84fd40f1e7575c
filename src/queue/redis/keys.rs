//! Key names (the layout is described in the module doc of `redis/mod.rs`
//! and in docs/scaling.md). The Lua scripts build the same names in
//! `lua/common.lua`: change both together. What replicas share beside the
//! queue (rate-limit budgets, circuit state) is keyed here too, under the
//! same per-target hash tag.

/// A key of one target: `{PREFIX:TARGET}:suffix`, so all of a target's keys
/// hash to one Redis Cluster slot.
pub fn target(prefix: &str, target: &str, suffix: &str) -> String {
    format!("{{{prefix}:{target}}}:{suffix}")
}

/// A global key: `{PREFIX}:suffix`.
pub(super) fn global(prefix: &str, suffix: &str) -> String {
    format!("{{{prefix}}}:{suffix}")
}

/// The pub/sub channel wake-ups are published on (message: a target name).
pub(super) fn wake_channel(prefix: &str) -> String {
    global(prefix, "wake")
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_target_shares_one_hash_tag() {
        assert_eq!(
            super::target("hookgate", "crm", "due"),
            "{hookgate:crm}:due"
        );
        assert_eq!(super::global("hookgate", "seq"), "{hookgate}:seq");
    }
}
