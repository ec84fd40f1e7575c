//! The reload triggers that are not HTTP: the config file's directory
//! changing, and SIGHUP. Both only ask the reload task (they never wait), so
//! a burst of events costs at most one queued reload.
//!
//! The directory is watched, not the file: an editor writes a temporary file
//! and renames it over the old one, and Kubernetes updates a mounted
//! ConfigMap by renaming a `..data_tmp` symlink over `..data` (the file
//! `rules.yaml` is itself a symlink through `..data`). A watch on the file
//! would follow the old inode and miss both. Any change in the directory asks
//! for a reload; the reload compares the file's sha256 with the running
//! version, so changes to other files there (the SQLite queue, say) cost one
//! read of the config and nothing else.

use std::path::Path;
use std::time::Duration;

use notify_debouncer_full::notify::event::{AccessKind, AccessMode};
use notify_debouncer_full::notify::{EventKind, RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};
use tokio_util::sync::CancellationToken;

use super::{ReloadHandle, Trigger};

/// Long enough to see an editor's write-then-rename or the kubelet's swap as
/// one change, short enough that a reload follows a save at once.
const DEBOUNCE: Duration = Duration::from_millis(300);

/// Watches the config file's directory while it lives (notify's own thread;
/// nothing runs on the async runtime until a reload is asked for).
pub struct FileWatch {
    _debouncer: Debouncer<RecommendedWatcher, RecommendedCache>,
}

/// Start watching the directory that holds `config`.
pub fn watch_config_dir(
    config: &Path,
    handle: ReloadHandle,
) -> Result<FileWatch, notify_debouncer_full::notify::Error> {
    let dir = match config.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => Path::new(".").to_path_buf(),
    };
    let mut debouncer =
        new_debouncer(
            DEBOUNCE,
            None,
            move |result: DebounceEventResult| match result {
                Ok(events) => {
                    if events.iter().any(|e| is_change(&e.event.kind)) {
                        handle.request(Trigger::File);
                    }
                }
                Err(errors) => {
                    for e in errors {
                        tracing::warn!("watching the config directory: {e}");
                    }
                }
            },
        )?;
    debouncer.watch(&dir, RecursiveMode::NonRecursive)?;
    tracing::info!(dir = %dir.display(), "watching the config directory for changes");
    Ok(FileWatch {
        _debouncer: debouncer,
    })
}

/// Whether an event can mean new content. Opening or reading a file cannot
/// (and the reload itself reads the config: counting that would loop).
fn is_change(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

/// Ask for a reload on every SIGHUP until `stop`. The handler is installed
/// before this returns (SIGHUP's default action ends the process, so it must
/// be in place before the server says it is ready); the loop runs as a task.
#[cfg(unix)]
pub fn on_sighup(handle: ReloadHandle, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let hup = signal(SignalKind::hangup());
    tokio::spawn(async move {
        let mut hup = match hup {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(
                    "cannot listen for SIGHUP; reload by file or POST /admin/reload: {e}"
                );
                return;
            }
        };
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                got = hup.recv() => match got {
                    Some(()) => {
                        tracing::info!("SIGHUP: reloading the config");
                        handle.request(Trigger::Signal);
                    }
                    None => return,
                },
            }
        }
    })
}

/// No SIGHUP off Unix: the other two triggers remain.
#[cfg(not(unix))]
pub fn on_sighup(_handle: ReloadHandle, _stop: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async {})
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify_debouncer_full::notify::event::{CreateKind, ModifyKind, RenameMode};

    #[test]
    fn reads_are_not_changes_but_writes_and_renames_are() {
        assert!(!is_change(&EventKind::Access(AccessKind::Open(
            AccessMode::Any
        ))));
        assert!(!is_change(&EventKind::Access(AccessKind::Close(
            AccessMode::Read
        ))));
        assert!(is_change(&EventKind::Access(AccessKind::Close(
            AccessMode::Write
        ))));
        assert!(is_change(&EventKind::Modify(ModifyKind::Name(
            RenameMode::Both
        ))));
        assert!(is_change(&EventKind::Create(CreateKind::File)));
    }
}
