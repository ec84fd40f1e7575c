//! The settings a reload cannot change: what the running server read once,
//! at start (the listeners, their connection limits, the drain time, the
//! queue store). A reload keeps their running values and says which differed.

use crate::config::{Config, QueueBackend};

/// Settings the running server read once at start (the listeners, their
/// connection limits, the drain time, the queue store): put the running
/// values back into `new`, so the snapshot says what is really in effect,
/// and name each one that differed.
pub(super) fn keep_restart_only(new: &mut Config, running: &Config) -> Vec<&'static str> {
    let mut changed = Vec::new();
    // Each setting: note it if the file changed it, then keep the running value.
    macro_rules! keep {
        ($($section:ident . $key:ident),* $(,)?) => {$(
            if new.$section.$key != running.$section.$key {
                changed.push(concat!(stringify!($section), ".", stringify!($key)));
                new.$section.$key = running.$section.$key;
            }
        )*};
    }
    keep!(
        server.listen,
        server.max_connections,
        server.read_timeout,
        server.shutdown_timeout,
        server.max_inflight_bytes,
        server.max_header_bytes,
        server.max_headers,
        admin.listen,
    );
    if !same_backend(&new.queue.backend, &running.queue.backend) {
        changed.push("queue.backend");
        new.queue.backend = running.queue.backend.clone();
    }
    changed
}

fn same_backend(a: &QueueBackend, b: &QueueBackend) -> bool {
    match (a, b) {
        (QueueBackend::Sqlite { path: a }, QueueBackend::Sqlite { path: b }) => a == b,
        (
            QueueBackend::Redis { url: a, prefix: pa },
            QueueBackend::Redis { url: b, prefix: pb },
        ) => a.expose() == b.expose() && pa == pb,
        _ => false,
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{self, LoadOptions};

    pub(crate) fn load(yaml: &str) -> Config {
        let lookup = |_: &str| None;
        let options = LoadOptions {
            allow_missing_env: false,
            lookup: &lookup,
        };
        config::load_bytes(Path::new("rules.yaml"), yaml.as_bytes(), &options)
            .unwrap_or_else(|e| panic!("{e}"))
            .config
    }

    pub(crate) fn yaml(listen: &str, admin: &str, queue: &str, concurrency: usize) -> String {
        format!(
            "version: 1\nserver:\n  listen: {listen}\nadmin:\n  listen: {admin}\nqueue:\n  path: {queue}\n\
             sources:\n  - name: s\n    path: /s\n    verify:\n      scheme: outrival\n      secrets: [abcdefghijklmnopqrstuvwxyz]\n\
             targets:\n  t: {{ kind: log, concurrency: {concurrency} }}\n\
             routes:\n  - name: r\n    match: {{ event: x }}\n    targets: [t]\n"
        )
    }

    #[test]
    fn restart_only_settings_keep_their_running_values_and_are_named() {
        let running = load(&yaml("127.0.0.1:8080", "127.0.0.1:9090", "/tmp/a.db", 1));
        let mut new = load(&yaml("127.0.0.1:8081", "127.0.0.1:9091", "/tmp/b.db", 3));
        let changed = keep_restart_only(&mut new, &running);
        assert_eq!(changed, ["server.listen", "admin.listen", "queue.backend"]);
        assert_eq!(new.server.listen, running.server.listen);
        assert_eq!(new.admin.listen, running.admin.listen);
        assert!(same_backend(&new.queue.backend, &running.queue.backend));
        // What a reload may change is left as the new file says.
        assert_eq!(new.targets[0].concurrency, 3);
    }

    #[test]
    fn the_ingress_limits_are_restart_only_too() {
        let base = yaml("127.0.0.1:8080", "127.0.0.1:9090", "/tmp/a.db", 1);
        let running = load(&base);
        let limits = "server:\n  max_inflight_bytes: 64MiB\n  max_header_bytes: 16KiB\n  max_headers: 50\n  listen: 127.0.0.1:8080\n";
        let mut new = load(&base.replace("server:\n  listen: 127.0.0.1:8080\n", limits));
        let changed = keep_restart_only(&mut new, &running);
        assert_eq!(
            changed,
            [
                "server.max_inflight_bytes",
                "server.max_header_bytes",
                "server.max_headers"
            ]
        );
        assert_eq!(
            new.server.max_inflight_bytes,
            running.server.max_inflight_bytes
        );
        assert_eq!(new.server.max_header_bytes, running.server.max_header_bytes);
        assert_eq!(new.server.max_headers, running.server.max_headers);
    }

    #[test]
    fn nothing_to_restart_when_only_reloadable_settings_change() {
        let running = load(&yaml("127.0.0.1:8080", "127.0.0.1:9090", "/tmp/a.db", 1));
        let mut new = load(&yaml("127.0.0.1:8080", "127.0.0.1:9090", "/tmp/a.db", 2));
        assert!(keep_restart_only(&mut new, &running).is_empty());
    }
}
