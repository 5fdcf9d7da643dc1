//! The store: the engine's published state and the per-resource logs, for subscribers (the
//! terminal printer, `ci`, and later the web API).
//!
//! State goes out through a `tokio::sync::watch` channel (subscribers see the latest
//! snapshot); log lines are kept per span in bounded memory and broadcast as they arrive.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::Serialize;
use tokio::sync::{broadcast, watch};

use super::state::EngineState;

/// The span of engine-level lines (Tiltfile loads and the like).
pub const TILTFILE_SPAN: &str = "(Tiltfile)";

/// Lines kept per span.
pub const MAX_LINES_PER_SPAN: usize = 5_000;
/// Bytes kept per span.
pub const MAX_BYTES_PER_SPAN: usize = 1 << 20;
/// Lines a slow subscriber may fall behind before it misses some.
const BROADCAST_CAPACITY: usize = 16_384;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogKind {
    /// Output of a process.
    Output,
    /// Something the engine did (build started, probe passed, ...).
    Event,
    /// Something that went wrong.
    Error,
}

/// One log line.
#[derive(Debug, Clone, Serialize)]
pub struct LogLine {
    pub seq: u64,
    pub time: SystemTime,
    /// A resource name, or [`TILTFILE_SPAN`].
    pub span: Arc<str>,
    pub kind: LogKind,
    pub text: String,
}

#[derive(Debug, Default)]
struct SpanLog {
    lines: VecDeque<LogLine>,
    bytes: usize,
}

#[derive(Debug, Default)]
struct Logs {
    seq: u64,
    spans: HashMap<Arc<str>, SpanLog>,
}

/// Shared, cloneable access to state and logs.
#[derive(Debug, Clone)]
pub struct Store {
    state: Arc<watch::Sender<EngineState>>,
    logs: Arc<Mutex<Logs>>,
    log_tx: broadcast::Sender<LogLine>,
}

impl Default for Store {
    fn default() -> Self {
        Store::new()
    }
}

impl Store {
    pub fn new() -> Self {
        let (state, _) = watch::channel(EngineState::default());
        let (log_tx, _) = broadcast::channel(BROADCAST_CAPACITY);
        Store {
            state: Arc::new(state),
            logs: Arc::new(Mutex::new(Logs::default())),
            log_tx,
        }
    }

    /// The latest state (cheap: resources are shared).
    pub fn snapshot(&self) -> EngineState {
        self.state.borrow().clone()
    }

    /// A receiver that wakes on every published change.
    pub fn subscribe(&self) -> watch::Receiver<EngineState> {
        self.state.subscribe()
    }

    /// Every log line from now on.
    pub fn subscribe_logs(&self) -> broadcast::Receiver<LogLine> {
        self.log_tx.subscribe()
    }

    /// The kept lines of `span` (oldest first); all spans interleaved when `None`.
    pub fn logs(&self, span: Option<&str>) -> Vec<LogLine> {
        let Ok(logs) = self.logs.lock() else {
            return Vec::new();
        };
        let mut out: Vec<LogLine> = match span {
            Some(s) => logs
                .spans
                .get(s)
                .map(|l| l.lines.iter().cloned().collect())
                .unwrap_or_default(),
            None => logs
                .spans
                .values()
                .flat_map(|l| l.lines.iter().cloned())
                .collect(),
        };
        if span.is_none() {
            out.sort_by_key(|l| l.seq);
        }
        out
    }

    /// The last `n` output lines of `span`.
    pub fn tail(&self, span: &str, n: usize) -> Vec<String> {
        let Ok(logs) = self.logs.lock() else {
            return Vec::new();
        };
        logs.spans
            .get(span)
            .map(|l| {
                let skip = l.lines.len().saturating_sub(n);
                l.lines.iter().skip(skip).map(|l| l.text.clone()).collect()
            })
            .unwrap_or_default()
    }

    /// Appends a line to `span` and broadcasts it.
    pub fn log(&self, span: &str, kind: LogKind, text: impl Into<String>) {
        let text = text.into();
        let Ok(mut logs) = self.logs.lock() else {
            return;
        };
        logs.seq += 1;
        let seq = logs.seq;
        let key: Arc<str> = match logs.spans.get_key_value(span) {
            Some((k, _)) => k.clone(),
            None => Arc::from(span),
        };
        let line = LogLine {
            seq,
            time: SystemTime::now(),
            span: key.clone(),
            kind,
            text,
        };
        let entry = logs.spans.entry(key).or_default();
        entry.bytes += line.text.len();
        entry.lines.push_back(line.clone());
        while entry.lines.len() > MAX_LINES_PER_SPAN || entry.bytes > MAX_BYTES_PER_SPAN {
            match entry.lines.pop_front() {
                Some(old) => entry.bytes -= old.text.len(),
                None => break,
            }
        }
        // Send while holding the lock so subscribers see lines in `seq` order.
        let _ = self.log_tx.send(line);
    }

    /// Sends subscribers of the log stream a line with an empty span that is not stored: a
    /// wake-up for readers that want to stop once they have seen everything before it.
    pub fn send_marker(&self) {
        let Ok(logs) = self.logs.lock() else { return };
        let _ = self.log_tx.send(LogLine {
            seq: logs.seq,
            time: SystemTime::now(),
            span: Arc::from(""),
            kind: LogKind::Event,
            text: String::new(),
        });
    }

    pub(crate) fn publish(&self, state: EngineState) {
        self.state.send_replace(state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_are_bounded_per_span() {
        let store = Store::new();
        for i in 0..(MAX_LINES_PER_SPAN + 10) {
            store.log("a", LogKind::Output, format!("{i}"));
        }
        store.log("b", LogKind::Output, "b1");
        let a = store.logs(Some("a"));
        assert_eq!(a.len(), MAX_LINES_PER_SPAN);
        assert_eq!(a[0].text, "10");
        assert_eq!(store.tail("b", 5), vec!["b1".to_string()]);
        assert_eq!(store.logs(None).last().map(|l| l.text.as_str()), Some("b1"));
    }
}
