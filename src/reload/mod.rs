//! Hot reload (DESIGN.md section 7): the one path every trigger feeds, and
//! the only writer of the live snapshot.
//!
//! A [`Reloader`] task owns the [`SnapshotWriter`] and the [`Dispatcher`] and
//! takes requests one at a time from an mpsc channel, so reloads are
//! serialised. Each request: read the file → if its sha256 equals the running
//! version, stop (a touch is not a reload) → validate it fully with
//! [`config::load_bytes`] (exactly what `serve` and `check` do) → carry the
//! restart-only settings over from the running config → build the new
//! [`Snapshot`] → swap it in → [`Dispatcher::reconcile`] →
//! [`SourceLimits::apply`](crate::ingress::limits::SourceLimits::apply).
//! An invalid file changes nothing: the error is logged with its location,
//! counted, and kept in [`ReloadStatus`] for `/admin/config`.
//!
//! Triggers ([`watch`]): the config file's directory changing, SIGHUP, and
//! `POST /admin/reload` (in `admin`), all through a [`ReloadHandle`].
//!
//! This module is wiring, like `lib.rs`: it may use `delivery` and `ingress`.

mod restart;
pub mod watch;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::config::{self, Config, LoadOptions};
use crate::delivery::Dispatcher;
use crate::ingress::Ingress;
use crate::metrics;
use crate::snapshot::{Snapshot, SnapshotWriter};

/// Requests waiting for the reload task. Triggers that do not wait for an
/// answer (file watcher, SIGHUP) drop theirs when it is full: a queued reload
/// reads the file when it runs, so it covers them.
const QUEUE: usize = 8;

/// What started a reload (for the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    File,
    Signal,
    Admin,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::File => "file",
            Trigger::Signal => "sighup",
            Trigger::Admin => "admin",
        }
    }
}

/// Why a reload did not apply.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ReloadError {
    /// The file could not be read or is not a valid config: the message
    /// carries file:line:column and the key path of every problem.
    #[error("{0}")]
    Invalid(String),
    /// The reload task is gone (the server is shutting down).
    #[error("the server is shutting down; reload not done")]
    Stopped,
}

/// The last failed reload, as `/admin/config` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastReloadError {
    /// Unix milliseconds.
    pub at_ms: i64,
    pub message: String,
}

/// Shared reload state readable by admin: the last error, cleared when the
/// file on disk is the running config again.
#[derive(Debug, Default)]
pub struct ReloadStatus {
    last_error: Mutex<Option<LastReloadError>>,
}

impl ReloadStatus {
    pub fn last_error(&self) -> Option<LastReloadError> {
        // A poisoned lock only means a panic elsewhere mid-write of an Option.
        self.last_error
            .lock()
            .map_or_else(|p| p.into_inner().clone(), |g| g.clone())
    }

    fn set(&self, value: Option<LastReloadError>) {
        match self.last_error.lock() {
            Ok(mut g) => *g = value,
            Err(p) => *p.into_inner() = value,
        }
    }
}

type Reply = oneshot::Sender<Result<String, ReloadError>>;

struct Request {
    trigger: Trigger,
    reply: Option<Reply>,
}

/// Ask for reloads and read their status; cheap to clone.
#[derive(Clone)]
pub struct ReloadHandle {
    tx: mpsc::Sender<Request>,
    status: Arc<ReloadStatus>,
}

impl ReloadHandle {
    /// Reload now and wait: `Ok(version)` of the config running afterwards.
    pub async fn reload(&self, trigger: Trigger) -> Result<String, ReloadError> {
        let (reply, answer) = oneshot::channel();
        let request = Request {
            trigger,
            reply: Some(reply),
        };
        self.tx
            .send(request)
            .await
            .map_err(|_| ReloadError::Stopped)?;
        answer.await.unwrap_or(Err(ReloadError::Stopped))
    }

    /// Ask for a reload without waiting (file watcher, SIGHUP).
    pub fn request(&self, trigger: Trigger) {
        // Full: a reload is already queued and will read the newest file.
        // Closed: shutting down.
        let _ = self.tx.try_send(Request {
            trigger,
            reply: None,
        });
    }

    pub fn status(&self) -> &ReloadStatus {
        &self.status
    }
}

/// The reload task's state: the only owner of the snapshot's write handle.
pub struct Reloader {
    path: PathBuf,
    writer: SnapshotWriter,
    dispatcher: Dispatcher,
    ingress: Arc<Ingress>,
    clock: Arc<dyn Clock>,
    status: Arc<ReloadStatus>,
    rx: mpsc::Receiver<Request>,
}

/// A reload task for the config at `path` and the handle that feeds it.
pub fn reloader(
    path: PathBuf,
    writer: SnapshotWriter,
    dispatcher: Dispatcher,
    ingress: Arc<Ingress>,
    clock: Arc<dyn Clock>,
) -> (Reloader, ReloadHandle) {
    let (tx, rx) = mpsc::channel(QUEUE);
    let status = Arc::new(ReloadStatus::default());
    metrics::config_reloads_init();
    let handle = ReloadHandle {
        tx,
        status: status.clone(),
    };
    let reloader = Reloader {
        path,
        writer,
        dispatcher,
        ingress,
        clock,
        status,
        rx,
    };
    (reloader, handle)
}

/// What reading the file found.
enum Read {
    /// Same bytes as the running config.
    Unchanged,
    /// A valid new config, restart-only settings already carried over.
    Valid {
        snapshot: Box<Snapshot>,
        warnings: Vec<String>,
        needs_restart: Vec<&'static str>,
    },
}

impl Reloader {
    /// Serve reload requests until `stop`; then hand the dispatcher back so
    /// the caller can drain it.
    pub async fn run(mut self, stop: CancellationToken) -> Dispatcher {
        loop {
            let request = tokio::select! {
                biased;
                () = stop.cancelled() => break,
                r = self.rx.recv() => match r {
                    Some(r) => r,
                    None => break,
                },
            };
            let result = self.reload_once(request.trigger).await;
            if let Some(reply) = request.reply {
                let _ = reply.send(result);
            }
        }
        self.dispatcher
    }

    async fn reload_once(&mut self, trigger: Trigger) -> Result<String, ReloadError> {
        let running = self.writer.reader().load_full();
        let path = self.path.clone();
        let now_ms = self.clock.now_ms();
        let base = running.clone();
        // A panic while validating is a failed reload like any other.
        let read = tokio::task::spawn_blocking(move || read_config(&path, &base.config, now_ms))
            .await
            .unwrap_or_else(|e| Err(format!("the new config could not be built: {e}")));
        match read {
            Ok(Read::Unchanged) => {
                tracing::debug!(trigger = trigger.as_str(), version = %running.config.version, "config file unchanged; nothing to reload");
                // The file on disk is the running config again: no error stands.
                self.status.set(None);
                Ok(running.config.version.clone())
            }
            Ok(Read::Valid {
                snapshot,
                warnings,
                needs_restart,
            }) => {
                for w in &warnings {
                    tracing::warn!("{w}");
                }
                for key in &needs_restart {
                    tracing::warn!(
                        key = *key,
                        "{key} changed in the config file; it needs a restart, the running value is kept"
                    );
                }
                let snapshot: Arc<Snapshot> = Arc::from(snapshot);
                let version = snapshot.config.version.clone();
                self.writer.store(snapshot.clone());
                self.dispatcher.reconcile(&snapshot);
                self.ingress.limits.apply(&snapshot.config.sources);
                self.status.set(None);
                metrics::config_reload(true);
                tracing::info!(
                    trigger = trigger.as_str(),
                    version = %version,
                    previous = %running.config.version,
                    "config reloaded"
                );
                Ok(version)
            }
            Err(message) => {
                tracing::error!(
                    trigger = trigger.as_str(),
                    version = %running.config.version,
                    "config reload failed; the running config is kept:\n{message}"
                );
                self.status.set(Some(LastReloadError {
                    at_ms: now_ms,
                    message: message.clone(),
                }));
                metrics::config_reload(false);
                Err(ReloadError::Invalid(message))
            }
        }
    }
}

/// Read and validate the file (blocking: file I/O and regex/template
/// compilation), with the same options as `serve`.
fn read_config(path: &Path, running: &Config, now_ms: i64) -> Result<Read, String> {
    let bytes = std::fs::read(path).map_err(|e| config::ConfigError::io(path, &e).to_string())?;
    if hex::encode(Sha256::digest(&bytes)) == running.version {
        return Ok(Read::Unchanged);
    }
    let loaded = config::load_bytes(path, &bytes, &LoadOptions::from_process_env(false))
        .map_err(|e| e.to_string())?;
    let mut config = loaded.config;
    let needs_restart = restart::keep_restart_only(&mut config, running);
    Ok(Read::Valid {
        snapshot: Box::new(Snapshot::new(config, now_ms)),
        warnings: loaded.warnings.iter().map(ToString::to_string).collect(),
        needs_restart,
    })
}

#[cfg(test)]
mod tests {
    use super::restart::tests::{load, yaml};
    use super::*;

    #[test]
    fn an_unchanged_file_is_not_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rules.yaml");
        let text = yaml("127.0.0.1:8080", "127.0.0.1:9090", "/tmp/a.db", 1);
        std::fs::write(&path, &text).unwrap();
        let running = load(&text);
        assert!(matches!(
            read_config(&path, &running, 0),
            Ok(Read::Unchanged)
        ));
        std::fs::write(&path, text.replace("concurrency: 1", "concurrency: 2")).unwrap();
        assert!(matches!(
            read_config(&path, &running, 0),
            Ok(Read::Valid { .. })
        ));
        std::fs::write(&path, "version: 1\nbogus: [").unwrap();
        let err = read_config(&path, &running, 0).err().unwrap();
        assert!(err.contains("rules.yaml:"), "{err}");
    }
}
