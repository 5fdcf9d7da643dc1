//! One container's log, streamed into its resource's log across reconnects and restarts.
//!
//! A [`ContainerLogs`] follows `GET pods/NAME/log?follow=true&timestamps=true` for one
//! container. Every line comes with the kubelet's RFC3339Nano timestamp, which is stripped from
//! the text and kept as a cursor: a new stream resumes with `sinceTime` (whole seconds, rounded
//! down) and skips the lines the cursor has already passed, so nothing is shown twice or lost.
//!
//! A stream that ends cleanly means the kubelet stopped following: the container exited, or
//! the connection behind the API server went away. One read of the pod tells which: an exited
//! container waits for the pod watcher to report its restart ([`ContainerLogs::started`]); a
//! container still running is reconnected to after a backoff of 1 s doubling to 10 s, as is a
//! stream that broke with a read error. Lines without a timestamp are the kubelet's own
//! messages: shown as `[log stream] …`, except the one saying the container was removed.

use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::AsyncBufReadExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::LogParams;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{PodRef, describe};
use crate::runtime::LogSink;

/// The restart count before the pod watcher reported any start.
const NOT_STARTED: i32 = -1;
const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// Follows one container's log until dropped.
pub struct ContainerLogs {
    cancel: CancellationToken,
    restarts: watch::Sender<i32>,
}

impl ContainerLogs {
    /// Starts following `pod`'s container `pod.container`, from the beginning of its current
    /// run; every line goes to `sink` as `format!("{prefix}{line}")`.
    pub fn spawn(
        client: kube::Client,
        pod: PodRef,
        sink: Arc<dyn LogSink>,
        prefix: String,
    ) -> ContainerLogs {
        let (restarts, restarts_seen) = watch::channel(NOT_STARTED);
        let follower = Follower {
            pods: Api::namespaced(client, &pod.namespace),
            pod,
            sink,
            prefix,
            restarts: restarts_seen,
            cursor: Cursor::default(),
            backoff: Backoff::default(),
            reported: None,
        };
        let cancel = CancellationToken::new();
        tokio::spawn(cancel.clone().run_until_cancelled_owned(follower.run()));
        ContainerLogs { cancel, restarts }
    }

    /// The pod watcher saw the container (re)start: it is running and `restart_count` is its
    /// `restartCount` now. Reporting the same count again does nothing.
    pub fn started(&self, restart_count: i32) {
        self.restarts.send_if_modified(|seen| {
            let higher = restart_count > *seen;
            if higher {
                *seen = restart_count;
            }
            higher
        });
    }
}

impl Drop for ContainerLogs {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// The task behind a [`ContainerLogs`].
struct Follower {
    pods: Api<Pod>,
    pod: PodRef,
    sink: Arc<dyn LogSink>,
    prefix: String,
    restarts: watch::Receiver<i32>,
    cursor: Cursor,
    backoff: Backoff,
    /// The last error shown, so that one repeating is shown once.
    reported: Option<String>,
}

/// What the follower does after a stream.
enum Next {
    /// Reconnect after the backoff.
    Retry,
    /// Wait for a restart count higher than the one the stream was opened under.
    AwaitStart,
    /// The pod is gone.
    Stop,
}

/// How an opened stream ended.
struct Ended {
    /// `false` when reading failed: the connection dropped.
    clean: bool,
    /// Whether the stream showed at least one new line.
    delivered: bool,
}

impl Follower {
    async fn run(mut self) {
        loop {
            let streamed = *self.restarts.borrow_and_update();
            let next = match self.follow_once().await {
                Ok(next) => next,
                Err(e) => self.failed(&e),
            };
            match next {
                Next::Retry => tokio::time::sleep(self.backoff.next()).await,
                Next::AwaitStart => {
                    let started = self.restarts.wait_for(|seen| *seen > streamed).await;
                    // Err: the `ContainerLogs` is gone.
                    if started.is_err() {
                        return;
                    }
                }
                Next::Stop => return,
            }
        }
    }

    /// One stream, and what to do once it ended.
    async fn follow_once(&mut self) -> Result<Next, kube::Error> {
        let ended = self.stream().await?;
        self.reported = None;
        if ended.delivered {
            self.backoff.reset();
        }
        if ended.clean {
            self.after_clean_end().await
        } else {
            Ok(Next::Retry)
        }
    }

    /// A failed API call: the pod is gone, the container has not started, or the error is
    /// shown (once while it repeats) and the call retried.
    fn failed(&mut self, e: &kube::Error) -> Next {
        match classify(e) {
            Failure::Gone => Next::Stop,
            Failure::NotStarted => Next::AwaitStart,
            Failure::Other(message) => {
                if self.reported.as_ref() != Some(&message) {
                    self.sink.line(&format!("[log stream] {message}"));
                    self.reported = Some(message);
                }
                Next::Retry
            }
        }
    }

    /// Streams the log from the cursor on, until the server ends it or reading fails.
    async fn stream(&mut self) -> Result<Ended, kube::Error> {
        let params = LogParams {
            follow: true,
            container: Some(self.pod.container.clone()),
            timestamps: true,
            since_time: self.cursor.resume(),
            ..LogParams::default()
        };
        let mut reader = pin!(self.pods.log_stream(&self.pod.name, &params).await?);
        let mut raw = Vec::new();
        let mut delivered = false;
        loop {
            raw.clear();
            match reader.read_until(b'\n', &mut raw).await {
                Ok(0) => {
                    return Ok(Ended {
                        clean: true,
                        delivered,
                    });
                }
                Ok(_) => delivered |= self.deliver(&raw),
                Err(_) => {
                    return Ok(Ended {
                        clean: false,
                        delivered,
                    });
                }
            }
        }
    }

    /// Shows one raw line unless the cursor has already passed it; returns whether it was a
    /// new line of the container's.
    fn deliver(&mut self, raw: &[u8]) -> bool {
        let text = String::from_utf8_lossy(raw);
        let line = text.strip_suffix('\n').unwrap_or(&text);
        let line = line.strip_suffix('\r').unwrap_or(line);
        match split_timestamp(line) {
            (Some(stamp), line) => {
                let new = self.cursor.admit(stamp);
                if new {
                    self.sink.line(&format!("{}{line}", self.prefix));
                }
                new
            }
            // With timestamps on, only the kubelet's own messages come without one: a
            // container removed under the stream (its pod deleted) goes quietly, like a 404.
            (None, message) => {
                if !container_gone(message) {
                    self.sink.line(&format!("[log stream] {message}"));
                }
                false
            }
        }
    }

    /// After a clean end: reconnect if the container still runs (the connection was cut),
    /// else wait for its restart.
    async fn after_clean_end(&self) -> Result<Next, kube::Error> {
        let pod = self.pods.get(&self.pod.name).await?;
        let running = pod
            .status
            .and_then(|status| status.container_statuses)
            .into_iter()
            .flatten()
            .find(|status| status.name == self.pod.container)
            .and_then(|status| status.state)
            .is_some_and(|state| state.running.is_some());
        Ok(if running {
            Next::Retry
        } else {
            Next::AwaitStart
        })
    }
}

/// A failed API call, as the follower treats it.
#[derive(Debug, PartialEq, Eq)]
enum Failure {
    /// The pod no longer exists: the follower ends quietly.
    Gone,
    /// The container has not run yet (being created, pulled, scheduled or initialised).
    NotStarted,
    /// Anything else, as the user reads it.
    Other(String),
}

fn classify(e: &kube::Error) -> Failure {
    match e {
        kube::Error::Api(status) if status.code == 404 => Failure::Gone,
        kube::Error::Api(status) if status.code == 400 && not_started(&status.message) => {
            Failure::NotStarted
        }
        other => Failure::Other(describe(other)),
    }
}

/// The kubelet's and API server's messages for a container with nothing to show yet.
fn not_started(message: &str) -> bool {
    [
        "is waiting to start",
        "does not have a host assigned",
        "is not available",
    ]
    .iter()
    .any(|phrase| message.contains(phrase))
}

/// The runtime's answer, written into the stream, once the container was removed.
fn container_gone(message: &str) -> bool {
    message.contains("code = NotFound")
}

/// Splits `2024-05-01T10:00:00.123456789Z text` into its timestamp and text; a line without
/// a timestamp is all text.
fn split_timestamp(line: &str) -> (Option<Timestamp>, &str) {
    line.split_once(' ')
        .and_then(|(stamp, text)| Some((stamp.parse::<Timestamp>().ok()?, text)))
        .map_or((None, line), |(stamp, text)| (Some(stamp), text))
}

/// How far the log has been shown: the last timestamp, and how many lines carried it (lines
/// can share a timestamp, so a resumed stream skips that many of them, not all).
#[derive(Debug, Default)]
struct Cursor {
    last: Option<Timestamp>,
    at_last: usize,
    /// Lines stamped `last` that the current stream has shown or skipped.
    replayed: usize,
}

impl Cursor {
    /// Starts a new stream: the `sinceTime` to ask for, the last timestamp rounded down to the
    /// second (the API's precision), or `None` for the whole log.
    fn resume(&mut self) -> Option<Timestamp> {
        self.replayed = 0;
        self.last
            .and_then(|last| Timestamp::from_second(last.as_second()).ok())
    }

    /// Whether a line stamped `stamp` is new, recording it when it is.
    fn admit(&mut self, stamp: Timestamp) -> bool {
        match self.last {
            Some(last) if stamp < last => false,
            Some(last) if stamp == last => {
                self.replayed += 1;
                let new = self.replayed > self.at_last;
                if new {
                    self.at_last += 1;
                }
                new
            }
            _ => {
                self.last = Some(stamp);
                self.at_last = 1;
                self.replayed = 1;
                true
            }
        }
    }
}

/// Reconnect delays: 1 s, doubling to 10 s, back to 1 s once a stream shows lines again.
struct Backoff(Duration);

impl Default for Backoff {
    fn default() -> Self {
        Backoff(BACKOFF_MIN)
    }
}

impl Backoff {
    fn next(&mut self) -> Duration {
        let delay = self.0;
        self.0 = (delay * 2).min(BACKOFF_MAX);
        delay
    }

    fn reset(&mut self) {
        self.0 = BACKOFF_MIN;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(text: &str) -> Timestamp {
        text.parse().expect("test timestamp")
    }

    #[test]
    fn splits_the_timestamp_from_the_text() {
        let (stamp, text) = split_timestamp("2024-05-01T10:00:00.123456789Z hello world");
        assert_eq!(stamp, Some(ts("2024-05-01T10:00:00.123456789Z")));
        assert_eq!(text, "hello world");
        assert_eq!(
            split_timestamp("2024-05-01T10:00:00.5Z "),
            (Some(ts("2024-05-01T10:00:00.5Z")), "")
        );
        assert_eq!(
            split_timestamp("no timestamp here"),
            (None, "no timestamp here")
        );
        assert_eq!(split_timestamp("single"), (None, "single"));
        assert_eq!(split_timestamp(""), (None, ""));
    }

    #[test]
    fn recognises_a_removed_container() {
        assert!(container_gone(
            "rpc error: code = NotFound desc = an error occurred when try to find container \"91\": not found"
        ));
        assert!(!container_gone(
            "unable to retrieve container logs for containerd://91"
        ));
    }

    #[test]
    fn resumes_from_the_second_of_the_last_line() {
        let mut cursor = Cursor::default();
        assert_eq!(cursor.resume(), None);
        assert!(cursor.admit(ts("2024-05-01T10:00:07.900Z")));
        assert_eq!(cursor.resume(), Some(ts("2024-05-01T10:00:07Z")));
    }

    #[test]
    fn a_resumed_stream_shows_only_lines_after_the_cursor() {
        let mut cursor = Cursor::default();
        for stamp in ["2024-05-01T10:00:07.1Z", "2024-05-01T10:00:07.2Z"] {
            assert!(cursor.admit(ts(stamp)));
        }
        cursor.resume();
        assert!(!cursor.admit(ts("2024-05-01T10:00:07.1Z")));
        assert!(!cursor.admit(ts("2024-05-01T10:00:07.2Z")));
        assert!(cursor.admit(ts("2024-05-01T10:00:07.3Z")));
        assert!(cursor.admit(ts("2024-05-01T10:00:09Z")));
    }

    #[test]
    fn lines_sharing_a_timestamp_are_neither_lost_nor_repeated() {
        let mut cursor = Cursor::default();
        let same = ts("2024-05-01T10:00:07.5Z");
        assert!(cursor.admit(same));
        assert!(cursor.admit(same));
        // The connection drops here; a third line with the same stamp follows on resume.
        cursor.resume();
        assert!(!cursor.admit(same));
        assert!(!cursor.admit(same));
        assert!(cursor.admit(same));
        cursor.resume();
        assert!(!cursor.admit(same));
        assert!(!cursor.admit(same));
        assert!(!cursor.admit(same));
        assert!(cursor.admit(ts("2024-05-01T10:00:08Z")));
    }

    #[test]
    fn backoff_doubles_to_ten_seconds_and_resets() {
        let mut backoff = Backoff::default();
        let delays: Vec<u64> = (0..6).map(|_| backoff.next().as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 10, 10]);
        backoff.reset();
        assert_eq!(backoff.next(), BACKOFF_MIN);
    }

    fn api_error(code: u16, message: &str) -> kube::Error {
        kube::Error::Api(Box::new(
            kube::core::Status::failure(message, "BadRequest").with_code(code),
        ))
    }

    #[test]
    fn classifies_api_errors() {
        assert_eq!(
            classify(&api_error(404, "pods \"web-1\" not found")),
            Failure::Gone
        );
        assert_eq!(
            classify(&api_error(
                400,
                "container \"app\" in pod \"web-1\" is waiting to start: ContainerCreating"
            )),
            Failure::NotStarted
        );
        assert_eq!(
            classify(&api_error(400, "pod web-1 does not have a host assigned")),
            Failure::NotStarted
        );
        assert_eq!(
            classify(&api_error(400, "container nope is not valid for pod web-1")),
            Failure::Other("container nope is not valid for pod web-1".into())
        );
        assert_eq!(
            classify(&api_error(500, "etcd is down")),
            Failure::Other("etcd is down".into())
        );
    }
}
