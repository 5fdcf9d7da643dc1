//! Live updates into a pod's container through exec: deletes and `run()` steps as one exec
//! each, changed files as one tar through a long-lived receiver per container.
//!
//! Opening an exec costs the API server, the kubelet and the runtime 50-100 ms, most of a
//! sync's latency. So the first sync into a container (or [`PodChannels::warm`]) starts one
//! exec running a small `sh` loop, which reads a byte count line, extracts that many bytes of
//! tar at `/` and answers `tiltrs-ok` or `tiltrs-fail`; later syncs only write to its stdin.
//!
//! A warm sync is one round trip through the API server: ~5 ms when the client's connections set
//! `TCP_NODELAY`. Without it (kube's default connector) ~45 ms: kube cuts stdin into websocket
//! frames at its 4 KiB read buffer's boundaries, and Nagle's algorithm holds the second frame
//! until the server's delayed ACK of the first.
//!
//! Streams must end by themselves: on servers speaking the v4 exec protocol (before
//! `v5.channel.k8s.io`) a client cannot close stdin alone; kube closes the whole websocket,
//! losing the output and the exit status. So every stdin stream here is framed by a byte count
//! and its writer is held until the exit status arrived.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use kube::Api;
use kube::api::{AttachParams, AttachedProcess};
use thiserror::Error;
use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, ReadHalf,
    SimplexStream, WriteHalf,
};
use tokio::sync::Mutex;

use super::{K8sError, PodRef};
use crate::liveupdate::UpdatePlan;
use crate::runtime::LogSink;
use crate::runtime::process::display_command;

/// The receiver: names a missing tool and exits, or says it is ready, then serves archives until
/// its stdin ends. Its stderr goes to stdout, so a failed extraction's messages precede
/// `tiltrs-fail` on the one stream read. The redirection is of a `{ }` group, which keeps the
/// exec's own stderr open: containerd closes an exec's stdin once its stderr is closed, so
/// `exec 2>&1` would end the loop at its first `read`. What `tar` leaves unread (it stops at the
/// end-of-archive blocks, busybox's at its first error) is drained, so that `head` always reads
/// the whole archive off stdin and the next count line is where it should be.
const RECEIVER: &str = "{ \
for t in head tar; do command -v \"$t\" >/dev/null || { echo \"tiltrs-missing $t\"; exit 127; }; done; \
echo tiltrs-ready; \
while read -r n; do \
if head -c \"$n\" | (tar -x -C / -f -; r=$?; head -c \"$n\" >/dev/null; exit $r); \
then echo tiltrs-ok; else echo tiltrs-fail; fi; \
done; } 2>&1";

/// How long opening an exec, or one archive through it, may take before it is given up.
const REPLY_TIMEOUT: Duration = Duration::from_secs(60);

/// Bytes buffered between this process and kube's websocket task, each way.
const STREAM_BUFFER: usize = 64 * 1024;

/// Why an archive did not get through the receiver.
#[derive(Debug, Error)]
enum ChannelError {
    /// The image lacks a tool the receiver (or any tar extraction) needs.
    #[error(
        "the container has no `{0}` (syncing files into a pod needs sh, head and tar in its image)"
    )]
    Missing(String),
    /// The exec could not be started (or the receiver did not come up); a one-shot exec may
    /// still work.
    #[error("cannot exec in the container: {0}")]
    Unopened(String),
    /// The receiver ran, and extracting failed.
    #[error("extracting the sync archive failed: {0}")]
    Extract(String),
    /// The receiver broke (pod replaced, connection lost).
    #[error("sync channel lost: {0}")]
    Lost(String),
}

/// What the receiver has to say, one line at a time.
#[derive(Debug, PartialEq, Eq)]
enum Line<'a> {
    Ready,
    Ok,
    Fail,
    /// A tool the receiver needs is missing.
    Missing(&'a str),
    /// Anything else: messages of `head` or `tar`.
    Output(&'a str),
}

fn classify(line: &str) -> Line<'_> {
    match line {
        "tiltrs-ready" => Line::Ready,
        "tiltrs-ok" => Line::Ok,
        "tiltrs-fail" => Line::Fail,
        _ => match line.strip_prefix("tiltrs-missing ") {
            Some(tool) => Line::Missing(tool),
            None => Line::Output(line),
        },
    }
}

/// An exec's exit code from its final status, or why there is none (the command could not be
/// started, the stream ended early).
fn exit_code(status: Option<&Status>) -> Result<i64, String> {
    let Some(status) = status else {
        return Err("the exec stream ended without an exit status".into());
    };
    if status.status.as_deref() == Some("Success") {
        return Ok(0);
    }
    if status.reason.as_deref() == Some("NonZeroExitCode")
        && let Some(code) = status
            .details
            .iter()
            .flat_map(|d| d.causes.iter().flatten())
            .filter(|c| c.reason.as_deref() == Some("ExitCode"))
            .find_map(|c| c.message.as_deref()?.trim().parse::<i64>().ok())
    {
        return Ok(code);
    }
    let message = status.message.as_deref().map(str::trim).unwrap_or("");
    Err(if message.is_empty() {
        format!(
            "exec failed ({})",
            status.reason.as_deref().unwrap_or("no reason given")
        )
    } else {
        message.to_string()
    })
}

/// Whether an exec failed because its program does not exist in the image.
fn program_not_found(message: &str) -> bool {
    message.contains("executable file not found") || message.contains("no such file or directory")
}

/// Writes one archive as the receiver reads it: its byte count on a line, then the bytes.
async fn write_framed<W: AsyncWrite + Unpin>(input: &mut W, tar: &[u8]) -> std::io::Result<()> {
    input
        .write_all(format!("{}\n", tar.len()).as_bytes())
        .await?;
    input.write_all(tar).await?;
    input.flush().await
}

/// Reads the receiver's lines until `expected` (success), `tiltrs-fail` (the lines before it are
/// the error), a missing tool or the end of the stream (`Lost`, with the lines read).
async fn read_reply<R: AsyncBufRead + Unpin>(
    output: &mut R,
    expected: &Line<'_>,
) -> Result<(), ChannelError> {
    let mut said = Vec::new();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = output
            .read_until(b'\n', &mut buf)
            .await
            .map_err(|e| ChannelError::Lost(e.to_string()))?;
        if n == 0 {
            return Err(ChannelError::Lost(if said.is_empty() {
                "the receiver exited".into()
            } else {
                said.join("; ")
            }));
        }
        let text = String::from_utf8_lossy(&buf);
        let line = classify(text.trim_end_matches(['\n', '\r']));
        match line {
            _ if line == *expected => return Ok(()),
            Line::Fail => return Err(ChannelError::Extract(said.join("; "))),
            Line::Missing(tool) => return Err(ChannelError::Missing(tool.to_string())),
            Line::Output(text) if !text.trim().is_empty() => said.push(text.trim().to_string()),
            _ => {}
        }
    }
}

/// Why an exec of `sh` could not be opened: `sh` is missing (some runtimes answer so before the
/// stream starts), or the API server's message.
fn exec_failed(e: &kube::Error) -> ChannelError {
    let message = super::describe(e);
    if program_not_found(&message) {
        ChannelError::Missing("sh".into())
    } else {
        ChannelError::Unopened(message)
    }
}

fn pods(client: &kube::Client, pod: &PodRef) -> Api<Pod> {
    Api::namespaced(client.clone(), &pod.namespace)
}

/// The receiver of one container: its exec session, stdin and stdout.
struct Receiver {
    process: AttachedProcess,
    input: WriteHalf<SimplexStream>,
    output: BufReader<ReadHalf<SimplexStream>>,
}

impl Receiver {
    async fn start(client: &kube::Client, pod: &PodRef) -> Result<Receiver, ChannelError> {
        let params = AttachParams::default()
            .container(pod.container.clone())
            .stdin(true)
            .stdout(true)
            .stderr(false)
            .max_stdin_buf_size(STREAM_BUFFER)
            .max_stdout_buf_size(STREAM_BUFFER);
        let argv = ["sh", "-c", RECEIVER];
        let opened = async {
            let mut process = pods(client, pod)
                .exec(&pod.name, argv, &params)
                .await
                .map_err(|e| exec_failed(&e))?;
            let (Some(input), Some(output)) = (process.stdin(), process.stdout()) else {
                return Err(ChannelError::Unopened(
                    "the exec has no stdin or stdout".into(),
                ));
            };
            let mut receiver = Receiver {
                process,
                input,
                output: BufReader::new(output),
            };
            match read_reply(&mut receiver.output, &Line::Ready).await {
                Ok(()) => Ok(receiver),
                Err(ChannelError::Lost(said)) => Err(receiver.exited(said).await),
                Err(e) => Err(e),
            }
        };
        tokio::time::timeout(REPLY_TIMEOUT, opened)
            .await
            .map_err(|_| ChannelError::Unopened("no answer from the receiver within 60 s".into()))?
    }

    /// Why the receiver ended before it was ready: a missing `sh`, or the exec's own message.
    async fn exited(&mut self, said: String) -> ChannelError {
        let status = match self.process.take_status() {
            Some(status) => status.await,
            None => None,
        };
        match exit_code(status.as_ref()) {
            Err(message) if program_not_found(&message) => ChannelError::Missing("sh".into()),
            Err(message) => ChannelError::Unopened(message),
            Ok(code) => ChannelError::Unopened(format!("{said} (exit code {code})")),
        }
    }

    /// Extracts `tar` at `/` through the receiver.
    async fn send(&mut self, tar: &[u8]) -> Result<(), ChannelError> {
        let write = write_framed(&mut self.input, tar);
        let reply = read_reply(&mut self.output, &Line::Ok);
        let (written, replied) =
            tokio::time::timeout(REPLY_TIMEOUT, async { tokio::join!(write, reply) })
                .await
                .map_err(|_| {
                    ChannelError::Lost("no reply from the sync channel within 60 s".into())
                })?;
        replied?;
        written.map_err(|e| ChannelError::Lost(e.to_string()))
    }
}

/// A container's receiver, or why it cannot have one.
#[derive(Default)]
enum Slot {
    #[default]
    Closed,
    Open(Receiver),
    /// The image lacks this tool: later syncs fail at once.
    Missing(String),
}

/// Open sync receivers, by pod container. Shared by the session (cheap to clone via Arc by the
/// caller).
#[derive(Default)]
pub struct PodChannels {
    /// One lock per container, so syncs into different pods do not wait for each other.
    slots: std::sync::Mutex<HashMap<PodRef, Arc<Mutex<Slot>>>>,
}

impl PodChannels {
    fn slot(&self, pod: &PodRef) -> Arc<Mutex<Slot>> {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        slots.entry(pod.clone()).or_default().clone()
    }

    /// Drops the receiver into a pod that is gone or replaced.
    pub async fn forget(&self, pod: &PodRef) {
        // A sync still using the receiver drops it when done.
        self.slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(pod);
    }

    /// Opens the receiver ahead of the first sync (errors left for that sync).
    pub async fn warm(&self, client: &kube::Client, pod: &PodRef) {
        let slot = self.slot(pod);
        let mut slot = slot.lock().await;
        if !matches!(*slot, Slot::Closed) {
            return;
        }
        match Receiver::start(client, pod).await {
            Ok(receiver) => *slot = Slot::Open(receiver),
            Err(ChannelError::Missing(tool)) => *slot = Slot::Missing(tool),
            Err(_) => {}
        }
    }

    /// Extracts `tar` at `/` in the container, reopening a broken receiver once.
    async fn extract(
        &self,
        client: &kube::Client,
        pod: &PodRef,
        tar: &[u8],
    ) -> Result<(), ChannelError> {
        let slot = self.slot(pod);
        let mut slot = slot.lock().await;
        match &mut *slot {
            Slot::Missing(tool) => return Err(ChannelError::Missing(tool.clone())),
            Slot::Open(receiver) => match receiver.send(tar).await {
                Err(ChannelError::Lost(_)) => *slot = Slot::Closed,
                other => return other,
            },
            Slot::Closed => {}
        }
        let mut receiver = match Receiver::start(client, pod).await {
            Ok(receiver) => receiver,
            Err(ChannelError::Missing(tool)) => {
                *slot = Slot::Missing(tool.clone());
                return Err(ChannelError::Missing(tool));
            }
            Err(e) => return Err(e),
        };
        let result = receiver.send(tar).await;
        if !matches!(result, Err(ChannelError::Lost(_))) {
            *slot = Slot::Open(receiver);
        }
        result
    }
}

/// Applies `plan` to the pod's container: deletes (`rm -rf` via one exec), then the copies as
/// one tar through the receiver (falling back to a one-shot exec `sh -c 'head -c N | tar -x -C
/// / -f -'` when the channel cannot be opened, and to an error naming what is missing when the
/// image has no sh/head/tar), then each `run()` step via exec in order (stdout/stderr lines to
/// `log`; a non-zero exit is an error). `plan.restart` is an error: "restart_container() is not
/// supported for Kubernetes resources" (Tilt's rule; it is rejected at load time too).
pub async fn apply(
    client: &kube::Client,
    channels: &PodChannels,
    pod: &PodRef,
    plan: &UpdatePlan,
    log: &Arc<dyn LogSink>,
) -> Result<(), K8sError> {
    if plan.restart {
        return Err(K8sError::Exec(
            "restart_container() is not supported for Kubernetes resources".into(),
        ));
    }
    if !plan.deletes.is_empty() {
        log.line(&format!(
            "Deleting {} path(s) in pod {}",
            plan.deletes.len(),
            pod.name
        ));
        remove(client, pod, &plan.deletes).await?;
    }
    if !plan.copies.is_empty() {
        let copies = plan.copies.clone();
        let archive_error = |e: String| K8sError::Exec(format!("building the sync archive: {e}"));
        let (tar, skipped) =
            tokio::task::spawn_blocking(move || crate::liveupdate::archive(&copies))
                .await
                .map_err(|e| archive_error(e.to_string()))?
                .map_err(|e| archive_error(e.to_string()))?;
        for s in skipped.iter().filter(|s| !s.vanished) {
            log.line(&format!("Not synced: {}: {}", s.local.display(), s.reason));
        }
        log.line(&format!(
            "Syncing {} file(s) to pod {}",
            plan.copies.len(),
            pod.name
        ));
        let synced = match channels.extract(client, pod, &tar).await {
            Err(ChannelError::Unopened(_)) => extract_once(client, pod, &tar).await,
            other => other,
        };
        synced.map_err(|e| K8sError::Exec(format!("syncing files to pod {}: {e}", pod.name)))?;
        // Files deleted locally between planning and archiving are deleted remotely too.
        let vanished: Vec<String> = skipped
            .into_iter()
            .filter(|s| s.vanished)
            .map(|s| s.remote)
            .collect();
        remove(client, pod, &vanished).await?;
    }
    for run in &plan.runs {
        let command = display_command(&run.cmd);
        if !run.echo_off {
            log.line(&format!("Running: {command}"));
        }
        let code = exec(client, pod, &run.cmd, &|line| log.line(line)).await?;
        if code != 0 {
            return Err(K8sError::Exec(format!(
                "run step {command:?} failed with exit code {code}"
            )));
        }
    }
    Ok(())
}

/// `rm -rf` of `paths` in the container.
async fn remove(client: &kube::Client, pod: &PodRef, paths: &[String]) -> Result<(), K8sError> {
    if paths.is_empty() {
        return Ok(());
    }
    let mut argv = vec!["rm".to_string(), "-rf".into(), "--".into()];
    argv.extend(paths.iter().cloned());
    let said = std::sync::Mutex::new(Vec::new());
    let code = exec(client, pod, &argv, &|line| {
        said.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(line.to_string());
    })
    .await?;
    if code != 0 {
        let said = said.into_inner().unwrap_or_else(PoisonError::into_inner);
        let mut message = format!(
            "deleting files in pod {} ({:?}) failed with exit code {code}",
            pod.name,
            display_command(&argv)
        );
        if !said.is_empty() {
            message = format!("{message}: {}", said.join("; "));
        }
        return Err(K8sError::Exec(message));
    }
    Ok(())
}

/// Runs `argv` in the container, each line of its stdout and stderr to `on_line`; its exit code.
async fn exec(
    client: &kube::Client,
    pod: &PodRef,
    argv: &[String],
    on_line: &(dyn Fn(&str) + Sync),
) -> Result<i64, K8sError> {
    let what = || format!("running {} in pod {}", display_command(argv), pod.name);
    let params = AttachParams::default()
        .container(pod.container.clone())
        .stdin(false)
        .stdout(true)
        .stderr(true);
    let mut process = pods(client, pod)
        .exec(&pod.name, argv.to_vec(), &params)
        .await
        .map_err(K8sError::api(what()))?;
    tokio::join!(
        forward_lines(process.stdout(), on_line),
        forward_lines(process.stderr(), on_line)
    );
    let status = match process.take_status() {
        Some(status) => status.await,
        None => None,
    };
    exit_code(status.as_ref()).map_err(|message| K8sError::Exec(format!("{}: {message}", what())))
}

/// Each line of `stream` to `on_line`, until the stream ends.
async fn forward_lines<R: AsyncRead + Unpin>(stream: Option<R>, on_line: &(dyn Fn(&str) + Sync)) {
    let Some(stream) = stream else { return };
    let mut reader = BufReader::new(stream);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => on_line(String::from_utf8_lossy(&buf).trim_end_matches(['\n', '\r'])),
        }
    }
}

/// Extracts `tar` at `/` with one exec of its own, for when the receiver cannot be opened.
async fn extract_once(client: &kube::Client, pod: &PodRef, tar: &[u8]) -> Result<(), ChannelError> {
    let script = format!("head -c {} | tar -x -C / -f -", tar.len());
    let params = AttachParams::default()
        .container(pod.container.clone())
        .stdin(true)
        .stdout(true)
        .stderr(true)
        .max_stdin_buf_size(STREAM_BUFFER);
    let extracted = async {
        let mut process = pods(client, pod)
            .exec(&pod.name, ["sh", "-c", script.as_str()], &params)
            .await
            .map_err(|e| exec_failed(&e))?;
        // Held until the exit status arrived: dropping it would close the whole stream.
        let Some(mut input) = process.stdin() else {
            return Err(ChannelError::Unopened("the exec has no stdin".into()));
        };
        let said = std::sync::Mutex::new(Vec::new());
        let on_line = |line: &str| {
            if !line.trim().is_empty() {
                said.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(line.trim().to_string());
            }
        };
        let write = async {
            input.write_all(tar).await?;
            input.flush().await
        };
        let (written, (), ()) = tokio::join!(
            write,
            forward_lines(process.stdout(), &on_line),
            forward_lines(process.stderr(), &on_line)
        );
        let status = match process.take_status() {
            Some(status) => status.await,
            None => None,
        };
        drop(input);
        let said = said
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
            .join("; ");
        if let Some(tool) = missing_tool(&said) {
            return Err(ChannelError::Missing(tool.to_string()));
        }
        match exit_code(status.as_ref()) {
            Ok(0) => written.map_err(|e| ChannelError::Lost(e.to_string())),
            Ok(code) => Err(ChannelError::Extract(format!("{said} (exit code {code})"))),
            Err(message) if program_not_found(&message) => Err(ChannelError::Missing("sh".into())),
            Err(message) => Err(ChannelError::Lost(message)),
        }
    };
    tokio::time::timeout(REPLY_TIMEOUT, extracted)
        .await
        .map_err(|_| ChannelError::Lost("no answer from the exec within 60 s".into()))?
}

/// Which of `head` and `tar` a shell said it could not find (`sh: tar: not found` in ash,
/// `sh: 1: tar: not found` in dash, `sh: line 1: tar: command not found` in bash).
fn missing_tool(said: &str) -> Option<&'static str> {
    ["head", "tar"].into_iter().find(|tool| {
        said.contains(&format!("{tool}: not found"))
            || said.contains(&format!("{tool}: command not found"))
    })
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{StatusCause, StatusDetails};
    use tokio::process::Command;

    use super::*;

    #[test]
    fn receiver_lines() {
        assert_eq!(classify("tiltrs-ready"), Line::Ready);
        assert_eq!(classify("tiltrs-ok"), Line::Ok);
        assert_eq!(classify("tiltrs-fail"), Line::Fail);
        assert_eq!(classify("tiltrs-missing tar"), Line::Missing("tar"));
        assert_eq!(classify("tar: short read"), Line::Output("tar: short read"));
        assert_eq!(classify("tiltrs-ok "), Line::Output("tiltrs-ok "));
    }

    fn status(status: &str, reason: Option<&str>, message: Option<&str>) -> Status {
        Status {
            status: Some(status.into()),
            reason: reason.map(Into::into),
            message: message.map(Into::into),
            ..Default::default()
        }
    }

    #[test]
    fn exit_codes_from_status() {
        assert_eq!(exit_code(Some(&status("Success", None, None))), Ok(0));

        let mut failed = status(
            "Failure",
            Some("NonZeroExitCode"),
            Some(
                "command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3",
            ),
        );
        failed.details = Some(StatusDetails {
            causes: Some(vec![StatusCause {
                reason: Some("ExitCode".into()),
                message: Some("3".into()),
                ..Default::default()
            }]),
            ..Default::default()
        });
        assert_eq!(exit_code(Some(&failed)), Ok(3));

        let not_found = status(
            "Failure",
            Some("InternalError"),
            Some("OCI runtime exec failed: exec: \"sh\": executable file not found in $PATH"),
        );
        let message = exit_code(Some(&not_found)).unwrap_err();
        assert!(program_not_found(&message), "{message}");

        assert_eq!(
            exit_code(Some(&status("Failure", Some("InternalError"), None))),
            Err("exec failed (InternalError)".into())
        );
        assert!(exit_code(None).is_err());
        // A NonZeroExitCode status without a readable code is an error, not exit code 0.
        assert!(exit_code(Some(&status("Failure", Some("NonZeroExitCode"), Some("x")))).is_err());
    }

    #[test]
    fn missing_tools_named_by_shells() {
        assert_eq!(missing_tool("sh: tar: not found"), Some("tar"));
        assert_eq!(missing_tool("sh: 1: head: not found"), Some("head"));
        assert_eq!(
            missing_tool("sh: line 1: tar: command not found"),
            Some("tar")
        );
        assert_eq!(missing_tool("tar: short read"), None);
        assert!(!program_not_found("tar: short read"));
    }

    fn tar_of(name: &str, data: &[u8]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        header.set_size(data.len() as u64);
        header.set_entry_type(tar::EntryType::Regular);
        builder.append_data(&mut header, name, data).unwrap();
        builder.into_inner().unwrap()
    }

    /// The receiver script run by the host's `sh`, spoken to with the functions the pod
    /// receiver uses: several archives through one process, a failed one in between.
    #[tokio::test]
    async fn receiver_protocol_with_local_sh() {
        let dir = tempfile::tempdir().unwrap();
        let dir_name = dir
            .path()
            .to_str()
            .unwrap()
            .trim_start_matches('/')
            .to_string();
        let mut child = Command::new("sh")
            .args(["-c", RECEIVER])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        let mut output = BufReader::new(child.stdout.take().unwrap());
        read_reply(&mut output, &Line::Ready).await.unwrap();

        for content in ["one\n", "two, longer\n"] {
            let tar = tar_of(&format!("{dir_name}/a.txt"), content.as_bytes());
            write_framed(&mut input, &tar).await.unwrap();
            read_reply(&mut output, &Line::Ok).await.unwrap();
            assert_eq!(
                std::fs::read_to_string(dir.path().join("a.txt")).unwrap(),
                content
            );
        }

        let garbage = vec![b'x'; 1536];
        write_framed(&mut input, &garbage).await.unwrap();
        let err = read_reply(&mut output, &Line::Ok).await.unwrap_err();
        assert!(
            matches!(err, ChannelError::Extract(ref m) if !m.is_empty()),
            "{err}"
        );

        let tar = tar_of(&format!("{dir_name}/b.txt"), b"after\n");
        write_framed(&mut input, &tar).await.unwrap();
        read_reply(&mut output, &Line::Ok).await.unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("b.txt")).unwrap(),
            "after\n"
        );

        drop(input);
        let err = read_reply(&mut output, &Line::Ok).await.unwrap_err();
        assert!(matches!(err, ChannelError::Lost(_)), "{err}");
    }

    #[tokio::test]
    async fn receiver_names_a_missing_tool() {
        let empty = tempfile::tempdir().unwrap();
        let mut child = Command::new("/bin/sh")
            .args(["-c", RECEIVER])
            .env_clear()
            .env("PATH", empty.path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut output = BufReader::new(child.stdout.take().unwrap());
        let err = read_reply(&mut output, &Line::Ready).await.unwrap_err();
        assert!(
            matches!(err, ChannelError::Missing(ref t) if t == "head"),
            "{err}"
        );
    }
}
