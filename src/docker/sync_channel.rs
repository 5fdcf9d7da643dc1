//! A long-lived receiver inside a container for live-update archives.
//!
//! Every exec or archive-API call costs the engine a process start (`runc exec`, or dockerd
//! re-executing itself to untar): 70-90 ms each on a typical machine, most of a sync's latency.
//! So the first sync into a container starts one exec session running a small `sh` loop, which
//! reads a byte count, extracts that many bytes of tar at `/` and answers `tiltrs-ok` or
//! `tiltrs-fail`. Later syncs only write to its stdin. When the container has no `sh`, `head`
//! or `tar`, [`ChannelError::Unavailable`] tells the caller to use the archive API instead.

use std::collections::{HashMap, HashSet};
use std::pin::Pin;
use std::time::Duration;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecResults};
use futures_util::{Stream, StreamExt};
use thiserror::Error;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::Mutex;

/// The receiver: checks its tools, says it is ready, then serves archives until stdin closes.
/// Whatever `tar` leaves unread (busybox's stops at its first error) is drained, so that
/// `head` always takes the whole archive off stdin and the next count is read in step.
const RECEIVER: &str = "command -v head >/dev/null && command -v tar >/dev/null || exit 127; \
echo tiltrs-ready; \
while read -r n; do \
if head -c \"$n\" | (tar -x -C / -f -; r=$?; head -c \"$n\" >/dev/null; exit $r); \
then echo tiltrs-ok; else echo tiltrs-fail; fi; \
done";

/// How long one archive may take to be extracted before the channel is given up.
const REPLY_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Error)]
pub enum ChannelError {
    /// The container cannot run the receiver (no `sh`, `head` or `tar`).
    #[error("the container has no sh, head or tar for a sync channel")]
    Unavailable,
    /// The receiver ran, and extracting failed.
    #[error("extracting the sync archive failed: {0}")]
    Extract(String),
    /// The channel broke (container stopped, engine gone); a new one may work.
    #[error("sync channel lost: {0}")]
    Lost(String),
}

type Output = Pin<Box<dyn Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>>;
type Input = Pin<Box<dyn AsyncWrite + Send>>;

struct Channel {
    input: Input,
    output: Output,
}

/// Open channels by container id, and the containers that cannot have one.
#[derive(Default)]
pub struct SyncChannels {
    open: Mutex<HashMap<String, Channel>>,
    unavailable: std::sync::Mutex<HashSet<String>>,
}

impl SyncChannels {
    /// Whether a channel is known not to work in container `id`.
    pub fn is_unavailable(&self, id: &str) -> bool {
        self.unavailable
            .lock()
            .map(|u| u.contains(id))
            .unwrap_or(false)
    }

    /// Drops the channel of a container that is gone.
    pub async fn forget(&self, id: &str) {
        self.open.lock().await.remove(id);
        if let Ok(mut u) = self.unavailable.lock() {
            u.remove(id);
        }
    }

    /// Opens the channel into container `id` ahead of its first sync (errors are left for that
    /// sync to report).
    pub async fn warm(&self, docker: &Docker, id: &str) {
        if self.is_unavailable(id) {
            return;
        }
        let mut open = self.open.lock().await;
        if open.contains_key(id) {
            return;
        }
        match start(docker, id).await {
            Ok(channel) => {
                open.insert(id.to_string(), channel);
            }
            Err(ChannelError::Unavailable) => {
                if let Ok(mut u) = self.unavailable.lock() {
                    u.insert(id.to_string());
                }
            }
            Err(_) => {}
        }
    }

    /// Extracts `tar` at `/` in container `id`, opening the channel when needed.
    pub async fn extract(&self, docker: &Docker, id: &str, tar: &[u8]) -> Result<(), ChannelError> {
        if self.is_unavailable(id) {
            return Err(ChannelError::Unavailable);
        }
        let mut open = self.open.lock().await;
        if let Some(channel) = open.get_mut(id) {
            match send(channel, tar).await {
                Err(ChannelError::Lost(_)) => {
                    open.remove(id);
                }
                other => return other,
            }
        }
        let mut channel = match start(docker, id).await {
            Ok(c) => c,
            Err(e) => {
                if matches!(e, ChannelError::Unavailable)
                    && let Ok(mut u) = self.unavailable.lock()
                {
                    u.insert(id.to_string());
                }
                return Err(e);
            }
        };
        let result = send(&mut channel, tar).await;
        if !matches!(result, Err(ChannelError::Lost(_))) {
            open.insert(id.to_string(), channel);
        }
        result
    }
}

async fn start(docker: &Docker, id: &str) -> Result<Channel, ChannelError> {
    let created = docker
        .create_exec(
            id,
            CreateExecOptions {
                cmd: Some(vec!["sh".to_string(), "-c".into(), RECEIVER.into()]),
                attach_stdin: Some(true),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| ChannelError::Lost(e.to_string()))?;
    let StartExecResults::Attached { output, input } =
        docker
            .start_exec(&created.id, None)
            .await
            .map_err(|e| ChannelError::Lost(e.to_string()))?
    else {
        return Err(ChannelError::Lost("the exec session was detached".into()));
    };
    let mut channel = Channel { input, output };
    match reply(&mut channel, "tiltrs-ready").await {
        Ok(()) => Ok(channel),
        // The receiver exits at once when a tool is missing (or `sh` itself cannot start).
        Err(ChannelError::Lost(_)) => Err(ChannelError::Unavailable),
        Err(e) => Err(e),
    }
}

async fn send(channel: &mut Channel, tar: &[u8]) -> Result<(), ChannelError> {
    let lost = |e: std::io::Error| ChannelError::Lost(e.to_string());
    channel
        .input
        .write_all(format!("{}\n", tar.len()).as_bytes())
        .await
        .map_err(lost)?;
    channel.input.write_all(tar).await.map_err(lost)?;
    channel.input.flush().await.map_err(lost)?;
    reply(channel, "tiltrs-ok").await
}

/// Reads the receiver's output until the line `expected` (success), `tiltrs-fail` (its stderr
/// is the error) or the end of the stream.
async fn reply(channel: &mut Channel, expected: &str) -> Result<(), ChannelError> {
    let mut stdout = String::new();
    let mut stderr = String::new();
    loop {
        let next = tokio::time::timeout(REPLY_TIMEOUT, channel.output.next())
            .await
            .map_err(|_| ChannelError::Lost("no reply from the sync channel".into()))?;
        match next {
            Some(Ok(LogOutput::StdOut { message })) => {
                stdout.push_str(&String::from_utf8_lossy(&message));
                for line in stdout.lines() {
                    if line == expected {
                        return Ok(());
                    }
                    if line == "tiltrs-fail" {
                        return Err(ChannelError::Extract(stderr.trim().to_string()));
                    }
                }
                if let Some(pos) = stdout.rfind('\n') {
                    stdout.drain(..=pos);
                }
            }
            Some(Ok(LogOutput::StdErr { message })) => {
                stderr.push_str(&String::from_utf8_lossy(&message));
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(ChannelError::Lost(e.to_string())),
            None => {
                let why = if stderr.trim().is_empty() {
                    "the receiver exited".to_string()
                } else {
                    stderr.trim().to_string()
                };
                return Err(ChannelError::Lost(why));
            }
        }
    }
}
