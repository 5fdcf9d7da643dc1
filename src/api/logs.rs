//! Log reads: a page of kept lines after a cursor, and the live stream (server-sent events)
//! that a reconnecting client resumes with `Last-Event-ID` without losing a kept line.

use std::collections::{HashSet, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use tokio::sync::broadcast::{self, error::RecvError};

use super::AppState;
use super::views::{LogLineView, LogPageView, epoch_ms};
use crate::engine::{LogLine, Store};

/// Lines per `lines` event of the stream.
const BATCH: usize = 1_000;
/// Default and maximum page size of `GET /api/logs`.
const DEFAULT_PAGE: usize = 10_000;

/// The query both log endpoints take.
#[derive(Debug, Default)]
struct LogQuery {
    resources: Vec<String>,
    since: u64,
    limit: usize,
}

impl LogQuery {
    fn parse(raw: Option<&str>) -> Self {
        let mut q = LogQuery {
            limit: DEFAULT_PAGE,
            ..LogQuery::default()
        };
        for (key, value) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
            match &*key {
                "resource" | "resources" => q.resources.extend(
                    value
                        .split(',')
                        .filter(|s| !s.is_empty())
                        .map(str::to_string),
                ),
                "since" => q.since = value.parse().unwrap_or(0),
                "limit" => q.limit = value.parse().unwrap_or(DEFAULT_PAGE).max(1),
                _ => {}
            }
        }
        q
    }

    fn spans(&self) -> Vec<&str> {
        self.resources.iter().map(String::as_str).collect()
    }
}

pub(crate) fn line_view(line: &LogLine) -> LogLineView {
    LogLineView {
        seq: line.seq,
        time: epoch_ms(line.time),
        span: line.span.to_string(),
        kind: line.kind,
        text: line.text.to_string(),
    }
}

/// `GET /api/logs`.
pub(super) async fn page(
    State(shared): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Json<LogPageView> {
    let q = LogQuery::parse(raw.as_deref());
    let page = shared
        .engine
        .store()
        .lines_after(&q.spans(), q.since, q.limit);
    Json(LogPageView {
        lines: page.lines.iter().map(line_view).collect(),
        last_seq: page.last_seq,
        dropped: page.dropped,
    })
}

/// `GET /api/logs/stream`.
pub(super) async fn stream(
    State(shared): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let q = LogQuery::parse(raw.as_deref());
    let resumed_from = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let since = resumed_from.unwrap_or(q.since);
    let follower = LogFollower::new(shared.engine.store().clone(), q.resources, since);
    let events = futures_util::stream::unfold(follower, |mut f| async move {
        let event = f.next_event().await?;
        Some((Ok(event), f))
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}

/// One client's position in the log: catches up from the kept lines, then follows the live
/// broadcast, and falls back to the kept lines whenever it falls behind the broadcast.
struct LogFollower {
    store: Store,
    live: broadcast::Receiver<LogLine>,
    spans: Vec<String>,
    filter: HashSet<Arc<str>>,
    /// The seq of the last line sent.
    cursor: u64,
    backlog: VecDeque<LogLine>,
    dropped: u64,
}

impl LogFollower {
    fn new(store: Store, spans: Vec<String>, since: u64) -> Self {
        // Subscribe before reading the kept lines, so nothing falls between the two.
        let live = store.subscribe_logs();
        let mut follower = LogFollower {
            filter: spans.iter().map(|s| Arc::from(s.as_str())).collect(),
            store,
            live,
            spans,
            cursor: since,
            backlog: VecDeque::new(),
            dropped: 0,
        };
        follower.catch_up();
        follower
    }

    fn catch_up(&mut self) {
        let spans: Vec<&str> = self.spans.iter().map(String::as_str).collect();
        let page = self.store.lines_after(&spans, self.cursor, usize::MAX);
        self.dropped += page.dropped;
        self.backlog = page.lines.into();
    }

    fn wanted(&self, line: &LogLine) -> bool {
        line.seq > self.cursor
            && !line.span.is_empty()
            && (self.filter.is_empty() || self.filter.contains(&line.span))
    }

    /// Waits for live lines and takes what else is queued, up to a batch. Empty when the
    /// receiver fell behind (the backlog was refilled); `None` when the store is gone.
    async fn live_batch(&mut self) -> Option<Vec<LogLine>> {
        let mut batch = Vec::new();
        loop {
            match self.live.recv().await {
                Ok(line) if self.wanted(&line) => {
                    batch.push(line);
                    break;
                }
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => {
                    self.catch_up();
                    return Some(batch);
                }
                Err(RecvError::Closed) => return None,
            }
        }
        while batch.len() < BATCH {
            match self.live.try_recv() {
                Ok(line) if self.wanted(&line) => batch.push(line),
                Ok(_) => {}
                Err(broadcast::error::TryRecvError::Lagged(_)) => {
                    self.cursor = batch.last().map_or(self.cursor, |l| l.seq);
                    self.catch_up();
                    break;
                }
                Err(_) => break,
            }
        }
        Some(batch)
    }

    /// The next batch of lines or report of dropped lines; `None` when the store is gone.
    async fn next_item(&mut self) -> Option<Item> {
        loop {
            if self.dropped > 0 {
                return Some(Item::Dropped(std::mem::take(&mut self.dropped)));
            }
            let batch: Vec<LogLine> = if self.backlog.is_empty() {
                self.live_batch().await?
            } else {
                let n = self.backlog.len().min(BATCH);
                self.backlog.drain(..n).collect()
            };
            // Empty when it fell behind the broadcast: the kept lines take over.
            if let Some(last) = batch.last() {
                self.cursor = last.seq;
                return Some(Item::Lines(batch));
            }
        }
    }

    /// The next event, or `None` when the store is gone.
    async fn next_event(&mut self) -> Option<Event> {
        Some(match self.next_item().await? {
            Item::Dropped(count) => Event::default()
                .event("dropped")
                .data(format!("{{\"count\":{count}}}")),
            Item::Lines(batch) => {
                let last = batch.last().map_or(0, |l| l.seq);
                let views: Vec<LogLineView> = batch.iter().map(line_view).collect();
                Event::default()
                    .event("lines")
                    .id(last.to_string())
                    .data(serde_json::to_string(&views).unwrap_or_else(|_| "[]".into()))
            }
        })
    }
}

/// What a follower sends next.
#[derive(Debug)]
enum Item {
    Dropped(u64),
    Lines(Vec<LogLine>),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::LogKind;

    async fn texts(follower: &mut LogFollower, n: usize) -> (Vec<String>, u64) {
        let mut got = Vec::new();
        let mut dropped = 0;
        while got.len() < n {
            match follower.next_item().await {
                Some(Item::Lines(batch)) => got.extend(batch.iter().map(|l| l.text.to_string())),
                Some(Item::Dropped(count)) => dropped += count,
                None => panic!("the stream ended"),
            }
        }
        (got, dropped)
    }

    #[tokio::test]
    async fn a_follower_that_falls_behind_catches_up_from_the_kept_lines() {
        let store = Store::new();
        store.log("a", LogKind::Output, "before");
        let mut follower = LogFollower::new(store.clone(), vec!["a".into()], 1);
        // Far more than the broadcast holds, unread: the receiver lags.
        let n = 40_000;
        for i in 0..n {
            store.log("a", LogKind::Output, format!("{i}"));
            store.log("b", LogKind::Output, "other");
        }
        let (got, dropped) = texts(&mut follower, n).await;
        let expected: Vec<String> = (0..n).map(|i| i.to_string()).collect();
        assert_eq!(got, expected);
        assert_eq!(dropped, 0);
        store.log("a", LogKind::Output, "live");
        assert_eq!(texts(&mut follower, 1).await.0, ["live"]);
    }

    #[tokio::test]
    async fn a_follower_is_told_what_left_memory_before_it_read_it() {
        let store = Store::with_log_limit(64 << 10);
        let mut follower = LogFollower::new(store.clone(), Vec::new(), 0);
        for i in 0..20_000 {
            store.log("a", LogKind::Output, format!("{i}"));
        }
        let mut dropped = 0;
        let mut got = Vec::new();
        while got.last().is_none_or(|t: &String| t != "19999") {
            match follower.next_item().await {
                Some(Item::Lines(batch)) => got.extend(batch.iter().map(|l| l.text.to_string())),
                Some(Item::Dropped(count)) => dropped += count,
                None => panic!("the stream ended"),
            }
        }
        assert!(dropped > 0);
        assert_eq!(
            dropped + got.len() as u64,
            20_000,
            "every line read or reported"
        );
    }
}
