//! The store: the engine's published state and the per-resource logs, for subscribers (the
//! terminal printer, `ci`, and later the web API).
//!
//! State goes out through a `tokio::sync::watch` channel (subscribers see the latest
//! snapshot); log lines are kept per span in bounded memory and broadcast as they arrive.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::Serialize;
use tokio::sync::{broadcast, watch};

use super::state::EngineState;

/// The span of engine-level lines (Tiltfile loads and the like).
pub const TILTFILE_SPAN: &str = "(Tiltfile)";

/// Log memory kept by default (`tiltrs up --log-limit-mb`).
pub const DEFAULT_LOG_LIMIT_BYTES: usize = 32 << 20;
/// What a line's text costs beyond its bytes: the shared string's counts and the allocator's
/// header and rounding.
const TEXT_OVERHEAD: usize = 32;
/// A line's slot in its span's queue. Queues are counted by capacity, not length, so the
/// limit bounds memory, not just text.
const SLOT: usize = std::mem::size_of::<LogLine>();
/// The smallest limit: a few lines' worth.
const MIN_LIMIT: usize = 16 * (SLOT + TEXT_OVERHEAD + 64);
/// The share of the limit the kept lines' counted cost may reach. The rest is headroom for
/// what the count cannot see (the live broadcast's copies, allocator fragmentation), so that
/// the process's memory, not just the count, stays near the limit (`benches/api_load.rs`
/// measures it).
const KEEP_UP_TO_PERCENT: usize = 85;
/// Once over that share, lines are dropped until this share is used, so eviction runs in
/// batches rather than on every line.
const EVICT_TO_PERCENT: usize = 75;
/// Lines a slow subscriber may fall behind before it misses some (and catches up from the
/// kept lines, see [`Store::lines_after`]).
const BROADCAST_CAPACITY: usize = 16_384;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
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
    /// Grows by one per line across the session.
    pub seq: u64,
    pub time: SystemTime,
    /// A resource name, or [`TILTFILE_SPAN`].
    pub span: Arc<str>,
    pub kind: LogKind,
    pub text: Arc<str>,
}

impl LogLine {
    fn text_cost(&self) -> usize {
        self.text.len() + TEXT_OVERHEAD
    }
}

#[derive(Debug, Default)]
struct SpanLog {
    lines: VecDeque<LogLine>,
    /// Lines of this span dropped so far, and the seq of the newest of them.
    evicted: u64,
    evicted_upto: u64,
}

#[derive(Debug)]
struct Logs {
    seq: u64,
    limit: usize,
    used: usize,
    evicted: u64,
    spans: HashMap<Arc<str>, SpanLog>,
}

impl Logs {
    /// Drops the session's oldest lines until the kept ones fit well within the limit.
    fn evict(&mut self) {
        let target = self.limit / 100 * EVICT_TO_PERCENT;
        let mut heads: BinaryHeap<Reverse<(u64, Arc<str>)>> = self
            .spans
            .iter()
            .filter_map(|(k, l)| l.lines.front().map(|f| Reverse((f.seq, k.clone()))))
            .collect();
        while self.used > target {
            let Some(Reverse((_, key))) = heads.pop() else {
                break;
            };
            let Some(span) = self.spans.get_mut(&key) else {
                continue;
            };
            let Some(old) = span.lines.pop_front() else {
                continue;
            };
            self.used -= old.text_cost();
            self.evicted += 1;
            span.evicted += 1;
            span.evicted_upto = old.seq;
            // A queue that emptied gives back what it no longer needs.
            let capacity = span.lines.capacity();
            if span.lines.len() < capacity / 4 {
                span.lines.shrink_to(span.lines.len() * 2);
                self.used -= (capacity - span.lines.capacity()) * SLOT;
            }
            if let Some(next) = span.lines.front() {
                heads.push(Reverse((next.seq, key)));
            }
        }
    }
}

/// Kept lines after a cursor, and what the reader missed (see [`Store::lines_after`]).
#[derive(Debug, Clone, Default, Serialize)]
pub struct LogPage {
    pub lines: Vec<LogLine>,
    /// The newest seq of the session.
    pub last_seq: u64,
    /// Lines after the cursor that are no longer kept (or were cut by the page limit).
    pub dropped: u64,
}

/// How much log memory is in use.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct LogUsage {
    pub limit_bytes: usize,
    pub used_bytes: usize,
    pub dropped_lines: u64,
    pub last_seq: u64,
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
        Store::with_log_limit(DEFAULT_LOG_LIMIT_BYTES)
    }

    /// A store that keeps at most about `limit_bytes` of log lines.
    pub fn with_log_limit(limit_bytes: usize) -> Self {
        let (state, _) = watch::channel(EngineState::default());
        let (log_tx, _) = broadcast::channel(BROADCAST_CAPACITY);
        Store {
            state: Arc::new(state),
            logs: Arc::new(Mutex::new(Logs {
                seq: 0,
                limit: limit_bytes.max(MIN_LIMIT),
                used: 0,
                evicted: 0,
                spans: HashMap::new(),
            })),
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
        let spans: Vec<&str> = span.into_iter().collect();
        self.lines_after(&spans, 0, usize::MAX).lines
    }

    /// The kept lines with `seq > since` of `spans` (all spans when empty), oldest first; at
    /// most `limit`, the newest ones when more are kept.
    pub fn lines_after(&self, spans: &[&str], since: u64, limit: usize) -> LogPage {
        let Ok(logs) = self.logs.lock() else {
            return LogPage::default();
        };
        let mut page = LogPage {
            last_seq: logs.seq,
            ..LogPage::default()
        };
        let selected: Vec<&SpanLog> = if spans.is_empty() {
            logs.spans.values().collect()
        } else {
            spans.iter().filter_map(|s| logs.spans.get(*s)).collect()
        };
        // Only the newest `limit` of each span can make the page: skip the rest uncopied.
        let mut cut = 0u64;
        for span in &selected {
            let after = span.lines.partition_point(|l| l.seq <= since);
            let from = after.max(span.lines.len().saturating_sub(limit));
            cut += (from - after) as u64;
            page.lines.extend(span.lines.range(from..).cloned());
        }
        page.dropped = if spans.is_empty() {
            // Seqs are contiguous: whatever after `since` is not kept was dropped.
            logs.seq.saturating_sub(since) - page.lines.len() as u64 - cut
        } else {
            selected
                .iter()
                .filter(|s| s.evicted_upto > since)
                .map(|s| s.evicted.min(s.evicted_upto - since))
                .sum()
        };
        if selected.len() > 1 {
            page.lines.sort_unstable_by_key(|l| l.seq);
        }
        if page.lines.len() > limit {
            let extra = page.lines.len() - limit;
            page.lines.drain(..extra);
            cut += extra as u64;
        }
        page.dropped += cut;
        page
    }

    /// How much log memory is in use.
    pub fn log_usage(&self) -> LogUsage {
        let Ok(logs) = self.logs.lock() else {
            return LogUsage::default();
        };
        LogUsage {
            limit_bytes: logs.limit,
            used_bytes: logs.used,
            dropped_lines: logs.evicted,
            last_seq: logs.seq,
        }
    }

    /// The last `n` lines of `span`.
    pub fn tail(&self, span: &str, n: usize) -> Vec<String> {
        let Ok(logs) = self.logs.lock() else {
            return Vec::new();
        };
        logs.spans
            .get(span)
            .map(|l| {
                let skip = l.lines.len().saturating_sub(n);
                l.lines
                    .iter()
                    .skip(skip)
                    .map(|l| l.text.to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Appends a line to `span` and broadcasts it.
    pub fn log(&self, span: &str, kind: LogKind, text: impl Into<String>) {
        let text: Arc<str> = Arc::from(text.into());
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
        let queue = &mut logs.spans.entry(key).or_default().lines;
        let capacity = queue.capacity();
        queue.push_back(line.clone());
        let grown = (queue.capacity() - capacity) * SLOT;
        logs.used += line.text_cost() + grown;
        if logs.used > logs.limit / 100 * KEEP_UP_TO_PERCENT {
            logs.evict();
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
            text: Arc::from(""),
        });
    }

    pub(crate) fn publish(&self, state: EngineState) {
        self.state.send_replace(state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(lines: &[LogLine]) -> Vec<&str> {
        lines.iter().map(|l| &*l.text).collect()
    }

    #[test]
    fn memory_is_bounded_and_oldest_lines_go_first() {
        let limit = 16 << 10;
        let store = Store::with_log_limit(limit);
        store.log("b", LogKind::Output, "b000");
        for i in 0..1000 {
            store.log("a", LogKind::Output, format!("{i:04}"));
        }
        let usage = store.log_usage();
        assert!(usage.used_bytes <= limit, "{usage:?}");
        assert_eq!(usage.last_seq, 1001);
        assert!(
            store.logs(Some("b")).is_empty(),
            "the oldest line, of b, was dropped first"
        );
        let a = store.logs(Some("a"));
        assert_eq!(a.last().map(|l| &*l.text), Some("0999"));
        assert_eq!(usage.dropped_lines, 1001 - a.len() as u64);
        assert_eq!(
            store.tail("a", 2),
            vec!["0998".to_string(), "0999".to_string()]
        );
    }

    #[test]
    fn queues_are_counted_by_capacity_and_give_it_back() {
        let store = Store::with_log_limit(64 << 10);
        for i in 0..2000 {
            store.log("burst", LogKind::Output, format!("{i}"));
        }
        let after_burst = store.log_usage().used_bytes;
        assert!(after_burst <= 64 << 10);
        // Another span takes over; the burst's queue empties and shrinks.
        for i in 0..4000 {
            store.log("steady", LogKind::Output, format!("{i}"));
        }
        assert!(store.logs(Some("burst")).is_empty());
        let Ok(logs) = store.logs.lock() else {
            panic!("poisoned")
        };
        let burst = &logs.spans["burst"];
        assert!(burst.lines.capacity() < 64, "{}", burst.lines.capacity());
        let counted: usize = logs
            .spans
            .values()
            .map(|s| {
                s.lines.capacity() * SLOT + s.lines.iter().map(LogLine::text_cost).sum::<usize>()
            })
            .sum();
        assert_eq!(logs.used, counted, "the count matches the queues");
    }

    #[test]
    fn lines_after_a_cursor_report_what_was_dropped() {
        let store = Store::with_log_limit(8 << 10);
        for i in 0..200 {
            store.log(
                if i % 2 == 0 { "even" } else { "odd" },
                LogKind::Output,
                format!("{i:03}"),
            );
        }
        let all = store.lines_after(&[], 0, usize::MAX);
        assert_eq!(all.last_seq, 200);
        assert!(all.dropped > 0);
        assert_eq!(all.dropped + all.lines.len() as u64, 200);
        let seqs: Vec<u64> = all.lines.iter().map(|l| l.seq).collect();
        assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");

        let latest = store.lines_after(&[], 198, usize::MAX);
        assert_eq!(texts(&latest.lines), ["198", "199"]);
        assert_eq!(latest.dropped, 0);

        let odd = store.lines_after(&["odd"], 0, usize::MAX);
        assert!(odd.lines.iter().all(|l| &*l.span == "odd"));
        assert!(odd.dropped > 0);
        let limited = store.lines_after(&["odd", "even"], 195, 2);
        assert_eq!(texts(&limited.lines), ["198", "199"]);
        assert_eq!(limited.dropped, 3, "seqs 196 to 198 were cut");
    }
}
