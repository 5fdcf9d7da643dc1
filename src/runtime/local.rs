//! The local runtime: a `local_resource`'s update `cmd` and its long-running `serve_cmd`.
//!
//! [`run_cmd`] runs one update to completion (or cancellation) and streams its output.
//! [`ServeSupervisor`] owns one `serve_cmd` process at a time: it (re)starts it on request,
//! restarts it with backoff when it exits on its own (reported as a crash), runs its readiness
//! probe and reports every change as a [`ServeEvent`]. It knows nothing of the engine: events
//! go to a callback.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::process::{self, GroupChild, SpawnSpec};
use super::{LogSink, probe};
use crate::model::Probe;

/// How long output readers may keep draining after a command exits (a background grandchild
/// can hold the pipe open forever).
const DRAIN_AFTER_EXIT: Duration = Duration::from_millis(200);

/// How an update command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CmdOutcome {
    Success,
    /// It ran and failed; the message reads like Tilt's: `exit status 3`.
    Failed(String),
    /// It could not start.
    SpawnFailed(String),
    Cancelled,
}

/// Starts `spec` with its output going to `sink` line by line.
fn spawn_logged(
    spec: &SpawnSpec,
    sink: &Arc<dyn LogSink>,
) -> Result<(GroupChild, Vec<JoinHandle<()>>), String> {
    let mut child = process::spawn(spec).map_err(|e| e.to_string())?;
    let mut readers = Vec::new();
    let line_sink = {
        let sink = sink.clone();
        Arc::new(move |l: &str| sink.line(l)) as Arc<dyn Fn(&str) + Send + Sync>
    };
    if let Some(out) = child.take_stdout() {
        readers.push(process::pump_lines(out, line_sink.clone()));
    }
    if let Some(err) = child.take_stderr() {
        readers.push(process::pump_lines(err, line_sink));
    }
    Ok((child, readers))
}

async fn drain(readers: Vec<JoinHandle<()>>) {
    for mut r in readers {
        if tokio::time::timeout(DRAIN_AFTER_EXIT, &mut r)
            .await
            .is_err()
        {
            r.abort();
        }
    }
}

/// Runs an update command to completion. Cancelling stops its process group (SIGTERM, then
/// SIGKILL after `grace` or when `kill_now` fires).
pub async fn run_cmd(
    argv: &[String],
    dir: PathBuf,
    env: BTreeMap<String, String>,
    sink: Arc<dyn LogSink>,
    cancel: CancellationToken,
    grace: Duration,
    kill_now: CancellationToken,
) -> CmdOutcome {
    let spec = SpawnSpec {
        argv: argv.to_vec(),
        dir: process::dir_or_cwd(&dir),
        env,
        capture: true,
    };
    let (mut child, readers) = match spawn_logged(&spec, &sink) {
        Ok(c) => c,
        Err(e) => return CmdOutcome::SpawnFailed(e),
    };
    let status = tokio::select! {
        s = child.wait() => s,
        _ = cancel.cancelled() => {
            child.stop(grace, &kill_now).await;
            drain(readers).await;
            return CmdOutcome::Cancelled;
        }
    };
    drain(readers).await;
    match status {
        Ok(s) if s.success() => CmdOutcome::Success,
        Ok(s) => CmdOutcome::Failed(process::describe_status(&s)),
        Err(e) => CmdOutcome::Failed(e.to_string()),
    }
}

/// What a serve process did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServeEvent {
    /// A new process runs (pid).
    Started(i32),
    /// The probe passed (or, with no probe, the process started).
    Ready,
    /// The probe failed `failure_threshold` times in a row.
    NotReady(String),
    /// The process exited on its own; it will be restarted after `restart_in`.
    Crashed {
        status: String,
        restart_in: Duration,
    },
    /// It could not start; retried after `restart_in`.
    SpawnFailed { error: String, restart_in: Duration },
}

/// How to run a serve command.
#[derive(Debug, Clone)]
pub struct ServeSpec {
    pub argv: Vec<String>,
    pub dir: PathBuf,
    pub env: BTreeMap<String, String>,
    pub probe: Option<Probe>,
}

enum Request {
    Restart(Option<ServeSpec>),
    Stop(oneshot::Sender<()>),
}

/// A handle on the task that supervises one resource's serve process.
#[derive(Debug)]
pub struct ServeSupervisor {
    tx: mpsc::UnboundedSender<Request>,
    task: JoinHandle<()>,
}

impl ServeSupervisor {
    /// Starts the supervisor task; the process starts on the first [`restart`](Self::restart).
    pub fn spawn(
        spec: ServeSpec,
        sink: Arc<dyn LogSink>,
        events: Arc<dyn Fn(ServeEvent) + Send + Sync>,
        grace: Duration,
        kill_now: CancellationToken,
    ) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(supervise(spec, sink, events, rx, grace, kill_now));
        ServeSupervisor { tx, task }
    }

    /// Stops the running process (if any) and starts it again.
    pub fn restart(&self) {
        let _ = self.tx.send(Request::Restart(None));
    }

    /// Stops the running process (if any) and starts `spec` in its place.
    pub fn restart_with(&self, spec: ServeSpec) {
        let _ = self.tx.send(Request::Restart(Some(spec)));
    }

    /// Stops the process and ends the supervisor.
    pub async fn stop(self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Request::Stop(done)).is_ok() {
            let _ = wait.await;
        }
        let _ = self.task.await;
    }
}

struct Running {
    child: GroupChild,
    readers: Vec<JoinHandle<()>>,
    probe_cancel: CancellationToken,
    started: tokio::time::Instant,
}

impl Running {
    async fn stop(mut self, grace: Duration, kill_now: &CancellationToken) {
        self.probe_cancel.cancel();
        self.child.stop(grace, kill_now).await;
        drain(self.readers).await;
    }
}

async fn supervise(
    mut spec: ServeSpec,
    sink: Arc<dyn LogSink>,
    events: Arc<dyn Fn(ServeEvent) + Send + Sync>,
    mut rx: mpsc::UnboundedReceiver<Request>,
    grace: Duration,
    kill_now: CancellationToken,
) {
    let (probe_tx, mut probe_rx) = mpsc::unbounded_channel::<(u64, (bool, String))>();
    let mut running: Option<Running> = None;
    let mut generation = 0u64;
    let mut restart_at: Option<tokio::time::Instant> = None;
    let mut backoff = Duration::from_secs(1);

    let start = |spec: &ServeSpec,
                 generation: u64,
                 backoff: &mut Duration|
     -> Result<Running, ServeEvent> {
        let pspec = SpawnSpec {
            argv: spec.argv.clone(),
            dir: process::dir_or_cwd(&spec.dir),
            env: spec.env.clone(),
            capture: true,
        };
        match spawn_logged(&pspec, &sink) {
            Ok((child, readers)) => {
                let probe_cancel = CancellationToken::new();
                events(ServeEvent::Started(child.pid()));
                match &spec.probe {
                    None => events(ServeEvent::Ready),
                    Some(p) => {
                        let (tx, mut prx) = mpsc::unbounded_channel();
                        let fwd = probe_tx.clone();
                        tokio::spawn(probe::run(
                            p.clone(),
                            pspec.dir.clone(),
                            tx,
                            probe_cancel.clone(),
                        ));
                        tokio::spawn(async move {
                            while let Some(r) = prx.recv().await {
                                if fwd.send((generation, r)).is_err() {
                                    break;
                                }
                            }
                        });
                    }
                }
                Ok(Running {
                    child,
                    readers,
                    probe_cancel,
                    started: tokio::time::Instant::now(),
                })
            }
            Err(error) => {
                let restart_in = *backoff;
                *backoff = (*backoff * 2).min(Duration::from_secs(30));
                Err(ServeEvent::SpawnFailed { error, restart_in })
            }
        }
    };

    loop {
        tokio::select! {
            req = rx.recv() => match req {
                Some(Request::Restart(new_spec)) => {
                    if let Some(r) = running.take() {
                        r.stop(grace, &kill_now).await;
                    }
                    if let Some(new_spec) = new_spec {
                        spec = new_spec;
                    }
                    generation += 1;
                    backoff = Duration::from_secs(1);
                    restart_at = None;
                    match start(&spec, generation, &mut backoff) {
                        Ok(r) => running = Some(r),
                        Err(ev) => {
                            if let ServeEvent::SpawnFailed { restart_in, .. } = &ev {
                                restart_at = Some(tokio::time::Instant::now() + *restart_in);
                            }
                            events(ev);
                        }
                    }
                }
                Some(Request::Stop(done)) => {
                    if let Some(r) = running.take() {
                        r.stop(grace, &kill_now).await;
                    }
                    let _ = done.send(());
                    return;
                }
                None => {
                    if let Some(r) = running.take() {
                        r.stop(grace, &kill_now).await;
                    }
                    return;
                }
            },
            status = wait_running(&mut running) => {
                let Some(r) = running.take() else { continue };
                let ran_for = r.started.elapsed();
                // The leader is gone; stop whatever it left running in its group before the
                // restart starts a second copy.
                r.stop(Duration::from_millis(500), &kill_now).await;
                if ran_for > Duration::from_secs(30) {
                    backoff = Duration::from_secs(1);
                }
                let restart_in = backoff;
                backoff = (backoff * 2).min(Duration::from_secs(30));
                restart_at = Some(tokio::time::Instant::now() + restart_in);
                events(ServeEvent::Crashed { status: status_text(status), restart_in });
            }
            Some((g, (ready, msg))) = probe_rx.recv() => {
                if g == generation && running.is_some() {
                    events(if ready { ServeEvent::Ready } else { ServeEvent::NotReady(msg) });
                }
            }
            _ = sleep_opt(restart_at) => {
                restart_at = None;
                generation += 1;
                match start(&spec, generation, &mut backoff) {
                    Ok(r) => running = Some(r),
                    Err(ev) => {
                        if let ServeEvent::SpawnFailed { restart_in, .. } = &ev {
                            restart_at = Some(tokio::time::Instant::now() + *restart_in);
                        }
                        events(ev);
                    }
                }
            }
        }
    }
}

fn status_text(s: std::io::Result<ExitStatus>) -> String {
    match s {
        Ok(s) => process::describe_status(&s),
        Err(e) => e.to_string(),
    }
}

async fn wait_running(running: &mut Option<Running>) -> std::io::Result<ExitStatus> {
    match running {
        Some(r) => r.child.wait().await,
        None => std::future::pending().await,
    }
}

async fn sleep_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
