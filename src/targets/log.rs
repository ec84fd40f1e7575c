//! The `log` target: one JSON line per delivery, to stdout or to `path`.
//!
//! The line carries the ids, route and attempt, and the event itself as JSON.
//! hookgate's own logs go to stderr, so stdout holds only these lines.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use serde_json::value::RawValue;
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

use super::Attempt;
use super::outcome::{AttemptOutcome, Failure, FailureClass};
use crate::config::{LogTarget, Target};

#[derive(Default)]
pub struct LogSender {
    /// Open append handles by path; one lock per file keeps lines whole.
    files: Mutex<HashMap<PathBuf, Arc<Mutex<tokio::fs::File>>>>,
    stdout: Mutex<()>,
}

#[derive(Serialize)]
struct LogLine<'a> {
    time: String,
    target: &'a str,
    route: &'a str,
    source: &'a str,
    event_id: &'a str,
    delivery_id: &'a str,
    attempt: u32,
    received_at: String,
    event: &'a RawValue,
}

impl LogSender {
    pub async fn send(
        &self,
        target: &Target,
        log: &LogTarget,
        attempt: &Attempt<'_>,
    ) -> AttemptOutcome {
        let Some(event) = std::str::from_utf8(attempt.body)
            .ok()
            .and_then(|s| serde_json::from_str::<&RawValue>(s).ok())
        else {
            return failed(
                FailureClass::RenderError,
                "stored event is not JSON".to_owned(),
            );
        };
        let line = LogLine {
            time: crate::clock::format_rfc3339_ms(crate::clock::Clock::now_ms(
                &crate::clock::SystemClock,
            )),
            target: &target.name,
            route: attempt.route,
            source: attempt.source,
            event_id: attempt.event_id,
            delivery_id: attempt.delivery_id,
            attempt: attempt.number,
            received_at: crate::clock::format_rfc3339_ms(attempt.received_at_ms),
            event,
        };
        let mut bytes = match serde_json::to_vec(&line) {
            Ok(b) => b,
            Err(e) => return failed(FailureClass::RenderError, e.to_string()),
        };
        bytes.push(b'\n');
        let written = match &log.path {
            None => self.write_stdout(&bytes).await,
            Some(path) => self.write_file(path, &bytes).await,
        };
        match written {
            Ok(()) => AttemptOutcome::Delivered { status: None },
            Err(e) => failed(
                FailureClass::Retryable,
                format!("cannot write the log: {e}"),
            ),
        }
    }

    async fn write_stdout(&self, bytes: &[u8]) -> std::io::Result<()> {
        let _guard = self.stdout.lock().await;
        let mut out = tokio::io::stdout();
        out.write_all(bytes).await?;
        out.flush().await
    }

    async fn write_file(&self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        let file = {
            let mut files = self.files.lock().await;
            match files.get(path) {
                Some(f) => f.clone(),
                None => {
                    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                        tokio::fs::create_dir_all(dir).await?;
                    }
                    let f = tokio::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(path)
                        .await?;
                    let f = Arc::new(Mutex::new(f));
                    files.insert(path.to_path_buf(), f.clone());
                    f
                }
            }
        };
        let mut file = file.lock().await;
        file.write_all(bytes).await?;
        file.flush().await
    }
}

fn failed(class: FailureClass, error: String) -> AttemptOutcome {
    AttemptOutcome::Failed(Failure {
        class,
        status: None,
        error,
        retry_after: None,
        response_excerpt: None,
    })
}
