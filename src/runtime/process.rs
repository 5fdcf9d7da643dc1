//! Child processes in their own process groups, and stopping them with signal escalation.
//!
//! Every child tiltrs starts goes through [`spawn`]: it gets its own process group
//! (`process_group(0)`), `PR_SET_PDEATHSIG(SIGKILL)` so it dies with tiltrs, stdin from
//! `/dev/null`, and its group is registered with the [`reaper`](super::reaper) so that
//! background grandchildren die too. [`GroupChild::stop`] sends SIGTERM to the group, waits
//! for a grace period (cut short by a "kill now" token, the second Ctrl-C), then SIGKILLs
//! whatever is left. [`sweep`] kills every group still alive at exit.
//!
//! `PR_SET_PDEATHSIG` fires when the *thread* that forked the child exits, so children must be
//! spawned from threads that live as long as tiltrs (the runtime's threads, never
//! `spawn_blocking`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use thiserror::Error;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::reaper;

#[derive(Debug, Error)]
pub enum ProcessError {
    #[error("empty command")]
    EmptyCommand,
    #[error("failed to start {command:?} in {dir}: {source}")]
    Spawn {
        command: String,
        dir: PathBuf,
        source: std::io::Error,
    },
}

/// What to run.
#[derive(Debug, Clone, Default)]
pub struct SpawnSpec {
    pub argv: Vec<String>,
    pub dir: PathBuf,
    /// Added to tiltrs's own environment.
    pub env: BTreeMap<String, String>,
    /// Capture stdout/stderr as pipes (otherwise discarded).
    pub capture: bool,
}

/// Every group started by this process that may still have members.
fn live_groups() -> &'static Mutex<BTreeSet<i32>> {
    static GROUPS: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());
    &GROUPS
}

fn track(pgid: i32) {
    if let Ok(mut g) = live_groups().lock() {
        g.insert(pgid);
    }
    reaper::register(pgid);
}

fn untrack(pgid: i32) {
    if let Ok(mut g) = live_groups().lock() {
        g.remove(&pgid);
    }
    reaper::unregister(pgid);
}

/// A child that leads its own process group.
#[derive(Debug)]
pub struct GroupChild {
    child: Child,
    pgid: i32,
    status: Option<ExitStatus>,
    released: bool,
}

/// Starts `spec` in a new process group.
pub fn spawn(spec: &SpawnSpec) -> Result<GroupChild, ProcessError> {
    let program = spec.argv.first().ok_or(ProcessError::EmptyCommand)?;
    let mut cmd = Command::new(program);
    cmd.args(&spec.argv[1..])
        .current_dir(&spec.dir)
        .envs(&spec.env)
        .stdin(Stdio::null())
        .process_group(0)
        .kill_on_drop(false);
    if spec.capture {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    } else {
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
    }
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs between fork and exec and only calls async-signal-safe
    // functions (prctl, getppid).
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // tiltrs died before prctl took effect: do not run orphaned.
            if libc::getppid() != parent {
                return Err(std::io::Error::other("tiltrs exited"));
            }
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|source| ProcessError::Spawn {
        command: display_command(&spec.argv),
        dir: spec.dir.clone(),
        source,
    })?;
    let pgid = child.id().map(|p| p as i32).unwrap_or(0);
    if pgid > 1 {
        track(pgid);
    }
    Ok(GroupChild {
        child,
        pgid,
        status: None,
        released: pgid <= 1,
    })
}

impl GroupChild {
    pub fn pid(&self) -> i32 {
        self.pgid
    }

    pub fn take_stdout(&mut self) -> Option<tokio::process::ChildStdout> {
        self.child.stdout.take()
    }

    pub fn take_stderr(&mut self) -> Option<tokio::process::ChildStderr> {
        self.child.stderr.take()
    }

    /// Waits for the group leader to exit (event-driven, via SIGCHLD). Background members of
    /// the group stay tracked and are killed by [`GroupChild::stop`], drop or [`sweep`].
    pub async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        if let Some(s) = self.status {
            return Ok(s);
        }
        let s = self.child.wait().await?;
        self.status = Some(s);
        if !group_alive(self.pgid) {
            self.release();
        }
        Ok(s)
    }

    /// Stops the whole group: SIGTERM, then SIGKILL once `grace` passes or `kill_now` fires.
    pub async fn stop(
        &mut self,
        grace: Duration,
        kill_now: &CancellationToken,
    ) -> Option<ExitStatus> {
        if self.released {
            return self.status;
        }
        let deadline = tokio::time::Instant::now() + grace;
        signal_group(self.pgid, Signal::SIGTERM);
        if self.status.is_none() {
            tokio::select! {
                s = self.child.wait() => self.status = s.ok(),
                _ = tokio::time::sleep_until(deadline) => {}
                _ = kill_now.cancelled() => {}
            }
        }
        // The leader is gone (or out of time); background members may linger. There is no
        // event for "group empty", so check briefly until the deadline.
        while self.status.is_some()
            && group_alive(self.pgid)
            && !kill_now.is_cancelled()
            && tokio::time::Instant::now() < deadline
        {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                _ = kill_now.cancelled() => {}
            }
        }
        signal_group(self.pgid, Signal::SIGKILL);
        if self.status.is_none() {
            self.status = self.child.wait().await.ok();
        }
        self.release();
        self.status
    }

    fn release(&mut self) {
        if !self.released {
            self.released = true;
            untrack(self.pgid);
        }
    }
}

impl Drop for GroupChild {
    fn drop(&mut self) {
        if !self.released && self.status.is_none() {
            signal_group(self.pgid, Signal::SIGKILL);
            let _ = self.child.start_kill();
            untrack(self.pgid);
        }
        // A leader that exited with members left stays tracked until `sweep`.
    }
}

fn signal_group(pgid: i32, sig: Signal) {
    if pgid > 1 {
        let _ = killpg(Pid::from_raw(pgid), sig);
    }
}

/// Whether any process is left in group `pgid`.
pub fn group_alive(pgid: i32) -> bool {
    pgid > 1 && killpg(Pid::from_raw(pgid), None).is_ok()
}

/// Stops every group still tracked: SIGTERM, a short wait for them to go, then SIGKILL.
/// Used at exit for background processes left behind by commands that already finished.
pub async fn sweep(grace: Duration, kill_now: &CancellationToken) {
    let groups: Vec<i32> = live_groups()
        .lock()
        .map(|g| g.iter().copied().collect())
        .unwrap_or_default();
    if groups.is_empty() {
        return;
    }
    for &g in &groups {
        signal_group(g, Signal::SIGTERM);
    }
    let deadline = tokio::time::Instant::now() + grace.min(Duration::from_secs(2));
    while groups.iter().any(|&g| group_alive(g))
        && !kill_now.is_cancelled()
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for g in groups {
        signal_group(g, Signal::SIGKILL);
        untrack(g);
    }
}

/// Reads `reader` line by line (lossy UTF-8, without the newline) into `sink` until EOF.
pub fn pump_lines<R>(reader: R, sink: Arc<dyn Fn(&str) + Send + Sync>) -> JoinHandle<()>
where
    R: AsyncRead + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let mut reader = BufReader::new(reader);
        let mut buf = Vec::with_capacity(256);
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    while matches!(buf.last(), Some(b'\n' | b'\r')) {
                        buf.pop();
                    }
                    sink(&String::from_utf8_lossy(&buf));
                }
            }
        }
    })
}

/// How a command is shown to users: the script for `sh -c SCRIPT`, else the argv joined.
pub fn display_command(argv: &[String]) -> String {
    match argv {
        [sh, c, script] if sh == "sh" && c == "-c" => script.clone(),
        _ => argv
            .iter()
            .map(|a| {
                if a.is_empty() || a.contains(|c: char| c.is_whitespace() || "'\"\\$`".contains(c))
                {
                    format!("'{}'", a.replace('\'', "'\\''"))
                } else {
                    a.clone()
                }
            })
            .collect::<Vec<_>>()
            .join(" "),
    }
}

/// A readable exit description: `exit status 3` or `signal: killed`, like Go's.
pub fn describe_status(status: &ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    if let Some(code) = status.code() {
        format!("exit status {code}")
    } else if let Some(sig) = status.signal() {
        match Signal::try_from(sig) {
            Ok(Signal::SIGKILL) => "signal: killed".into(),
            Ok(Signal::SIGTERM) => "signal: terminated".into(),
            Ok(Signal::SIGINT) => "signal: interrupt".into(),
            Ok(s) => format!("signal: {}", s.as_str()),
            Err(_) => format!("signal: {sig}"),
        }
    } else {
        "exited".into()
    }
}

/// The directory to run in, falling back to the current one when none was given.
pub fn dir_or_cwd(dir: &Path) -> PathBuf {
    if dir.as_os_str().is_empty() {
        std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."))
    } else {
        dir.to_path_buf()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_shell_scripts_as_written() {
        let argv = vec!["sh".into(), "-c".into(), "echo hi && exit 3".into()];
        assert_eq!(display_command(&argv), "echo hi && exit 3");
        let argv = vec!["echo".into(), "a b".into()];
        assert_eq!(display_command(&argv), "echo 'a b'");
    }

    #[tokio::test]
    async fn stop_kills_background_members_of_the_group() {
        let spec = SpawnSpec {
            argv: vec!["sh".into(), "-c".into(), "sleep 1000 & sleep 1000".into()],
            dir: std::env::temp_dir(),
            ..Default::default()
        };
        let mut child = spawn(&spec).expect("spawn");
        let pgid = child.pid();
        assert!(group_alive(pgid));
        let status = child
            .stop(Duration::from_secs(5), &CancellationToken::new())
            .await;
        assert!(status.is_some());
        assert!(!group_alive(pgid));
    }
}
