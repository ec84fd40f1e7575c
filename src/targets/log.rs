//! The `log` target: one JSON line per delivery, to stdout or to `path`.
//!
//! The line carries the ids, route and attempt, and the event itself as JSON.
//! hookgate's own logs go to stderr, so stdout holds only these lines.
//!
//! A file is opened for appending and kept open. Before each line hookgate
//! checks that the path still names the file it holds; when logrotate (or
//! anyone) moved it away or replaced it, the path is opened afresh, so
//! move-and-create rotation works without `copytruncate` or a signal.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

use super::Attempt;
use super::outcome::{AttemptOutcome, Failure};
use crate::config::{LogTarget, Target};

#[derive(Default)]
pub struct LogSender {
    /// Open append handles by path; one lock per file keeps lines whole.
    files: Mutex<HashMap<PathBuf, Arc<Mutex<Option<OpenLog>>>>>,
    stdout: Mutex<()>,
}

/// An open log file and the identity (device, inode) it had when opened.
struct OpenLog {
    file: tokio::fs::File,
    id: FileId,
}

type FileId = (u64, u64);

fn file_id(meta: &std::fs::Metadata) -> FileId {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino())
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
}

/// The line: `meta`'s fields, then `"event":` and the stored body as it is,
/// but for line breaks. JSON strings cannot hold a raw CR or LF (they must be
/// escaped), so in a valid body those bytes are whitespace between tokens and
/// become spaces: a pretty-printed event still makes one line.
fn log_line(meta: &LogLine<'_>, body: &[u8]) -> Result<Vec<u8>, String> {
    let valid = std::str::from_utf8(body)
        .ok()
        .is_some_and(|s| serde_json::from_str::<serde::de::IgnoredAny>(s).is_ok());
    if !valid {
        return Err("stored event is not JSON".to_owned());
    }
    let mut line = serde_json::to_vec(meta).map_err(|e| e.to_string())?;
    if line.pop() != Some(b'}') {
        return Err("internal: the log line is not a JSON object".to_owned());
    }
    line.reserve(body.len() + 12);
    line.extend_from_slice(b",\"event\":");
    line.extend(body.iter().map(|&b| match b {
        b'\n' | b'\r' => b' ',
        b => b,
    }));
    line.extend_from_slice(b"}\n");
    Ok(line)
}

impl LogSender {
    pub async fn send(
        &self,
        target: &Target,
        log: &LogTarget,
        attempt: &Attempt<'_>,
    ) -> AttemptOutcome {
        let meta = LogLine {
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
        };
        let bytes = match log_line(&meta, attempt.body) {
            Ok(b) => b,
            Err(e) => return Failure::render_error(e).into(),
        };
        let written = match &log.path {
            None => self.write_stdout(&bytes).await,
            Some(path) => self.write_file(path, &bytes).await,
        };
        match written {
            Ok(()) => AttemptOutcome::delivered(None),
            Err(e) => Failure::retryable(format!("cannot write the log: {e}")).into(),
        }
    }

    async fn write_stdout(&self, bytes: &[u8]) -> std::io::Result<()> {
        let _guard = self.stdout.lock().await;
        let mut out = tokio::io::stdout();
        out.write_all(bytes).await?;
        out.flush().await
    }

    async fn write_file(&self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        let slot = self
            .files
            .lock()
            .await
            .entry(path.to_path_buf())
            .or_default()
            .clone();
        let mut slot = slot.lock().await;
        // Rotated away (moved, deleted, replaced): the path names another file now.
        let current = tokio::fs::metadata(path).await.ok().map(|m| file_id(&m));
        let log = match slot.as_mut() {
            Some(log) if Some(log.id) == current => log,
            _ => slot.insert(open_append(path).await?),
        };
        log.file.write_all(bytes).await?;
        log.file.flush().await
    }
}

async fn open_append(path: &Path) -> std::io::Result<OpenLog> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        tokio::fs::create_dir_all(dir).await?;
    }
    let file = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .await?;
    let id = file_id(&file.metadata().await?);
    Ok(OpenLog { file, id })
}

#[cfg(test)]
mod tests {
    use super::{LogLine, log_line};

    fn meta() -> LogLine<'static> {
        LogLine {
            time: "2026-12-01T00:00:00.000Z".into(),
            target: "audit",
            route: "r",
            source: "s",
            event_id: "e",
            delivery_id: "d",
            attempt: 1,
            received_at: "2026-12-01T00:00:00.000Z".into(),
        }
    }

    #[test]
    fn a_pretty_printed_event_makes_one_line_with_the_event_unchanged() {
        let body = b"{\r\n  \"event\": \"status-changed\",\n  \"text\": \"two\\nlines\"\n}";
        let line = log_line(&meta(), body).unwrap();
        assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
        assert!(line.ends_with(b"}\n"));
        let parsed: serde_json::Value = serde_json::from_slice(&line).unwrap();
        let event: serde_json::Value = serde_json::from_slice(body).unwrap();
        assert_eq!(parsed["event"], event);
        assert_eq!(parsed["target"], "audit");
    }

    #[test]
    fn a_body_that_is_not_json_is_refused() {
        assert!(log_line(&meta(), b"{\"a\":").is_err());
        assert!(log_line(&meta(), b"{\"a\":\"\xff\"}").is_err());
    }
}
