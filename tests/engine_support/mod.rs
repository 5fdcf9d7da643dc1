//! Shared helpers for the engine's end-to-end tests: temporary projects, running the real
//! binary, waiting for output or files, and checking that no process was left behind.
//!
//! Each project has two directories: `dir` (the watched project, holding the Tiltfile) and
//! `out` (outside every watch, where commands write their markers and timestamps).

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_tiltrs");
/// Generous limits: these only bound a broken test, they are never asserted on.
pub const WAIT: Duration = Duration::from_secs(60);

pub struct Project {
    pub root: tempfile::TempDir,
    pub dir: PathBuf,
    pub out: PathBuf,
    /// Extra environment for every command of the project.
    pub env: Vec<(String, String)>,
}

impl Project {
    /// A project whose Tiltfile is `tiltfile` with `{out}` and `{dir}` replaced.
    pub fn new(tiltfile: &str) -> Project {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("project");
        let out = root.path().join("out");
        std::fs::create_dir_all(&dir).expect("mkdir project");
        std::fs::create_dir_all(&out).expect("mkdir out");
        let p = Project {
            root,
            dir,
            out,
            env: Vec::new(),
        };
        p.write_tiltfile(tiltfile);
        p
    }

    pub fn expand(&self, text: &str) -> String {
        text.replace("{out}", &self.out.display().to_string())
            .replace("{dir}", &self.dir.display().to_string())
    }

    pub fn write_tiltfile(&self, tiltfile: &str) {
        self.write("Tiltfile", &self.expand(tiltfile));
    }

    pub fn write(&self, rel: &str, text: &str) {
        let path = self.dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(path, text).expect("write");
    }

    pub fn command(&self, sub: &str) -> Command {
        let mut c = Command::new(BIN);
        c.arg(sub)
            .current_dir(&self.dir)
            .env("NO_COLOR", "1")
            .env("TILTRS_STOP_GRACE_SECS", "30")
            // Any free port, and session files under the test's own home.
            .env("TILT_PORT", "0")
            .env("HOME", self.root.path())
            .env_remove("TILT_HOST")
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        c
    }

    /// A client command (`get`, `logs`, ...) against the session on `port`.
    pub fn client(&self, sub: &str, port: u16, args: &[&str]) -> Output {
        let mut c = self.command(sub);
        c.args(args).env("TILT_PORT", port.to_string());
        output_with_deadline(c)
    }

    /// Runs `tiltrs ci` to completion (killed after [`WAIT`] if it hangs).
    pub fn ci(&self, extra: &[&str]) -> Output {
        let mut c = self.command("ci");
        c.args(extra);
        output_with_deadline(c)
    }

    /// The lines of `out/NAME` (empty when missing).
    pub fn out_lines(&self, name: &str) -> Vec<String> {
        std::fs::read_to_string(self.out.join(name))
            .map(|s| s.lines().map(str::to_string).collect())
            .unwrap_or_default()
    }

    /// The first line of `out/NAME` as a number (timestamps from `date +%s%N`).
    pub fn out_num(&self, name: &str) -> u128 {
        self.out_lines(name)
            .first()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or_else(|| panic!("no number in {name}"))
    }

    /// Waits until `out/NAME` has at least `n` lines.
    pub fn wait_lines(&self, name: &str, n: usize) -> Vec<String> {
        wait_until(|| {
            let l = self.out_lines(name);
            (l.len() >= n).then_some(l)
        })
        .unwrap_or_else(|| panic!("{name} never had {n} lines: {:?}", self.out_lines(name)))
    }
}

fn output_with_deadline(mut c: Command) -> Output {
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = c.spawn().expect("spawn tiltrs");
    let pid = child.id();
    let done = Arc::new((Mutex::new(false), Condvar::new()));
    let d2 = done.clone();
    let guard = std::thread::spawn(move || {
        let (lock, cv) = &*d2;
        let g = lock.lock().expect("lock");
        let (g, _) = cv
            .wait_timeout_while(g, WAIT, |finished| !*finished)
            .expect("wait");
        if !*g {
            // SAFETY: plain kill(2) of our own child.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    });
    let out = child.wait_with_output().expect("wait tiltrs");
    *done.0.lock().expect("lock") = true;
    done.1.notify_all();
    guard.join().ok();
    out
}

/// Polls `f` every 20 ms until it returns `Some`, for at most [`WAIT`].
pub fn wait_until<T>(mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if start.elapsed() > WAIT {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn text(o: &Output) -> String {
    format!(
        "status: {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A running `tiltrs up` whose stdout lines are collected.
pub struct Up {
    pub child: Child,
    lines: Arc<(Mutex<Vec<String>>, Condvar)>,
}

impl Up {
    pub fn start(p: &Project, extra: &[&str]) -> Up {
        let mut c = p.command("up");
        c.args(extra).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = c.spawn().expect("spawn tiltrs up");
        let lines: Arc<(Mutex<Vec<String>>, Condvar)> =
            Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let l = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    let (m, cv) = &*l;
                    m.lock().expect("lock").push(line);
                    cv.notify_all();
                }
            });
        }
        Up { child, lines }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// The API port, from the "tiltrs started on http://localhost:PORT/" line.
    pub fn port(&self) -> u16 {
        let lines = self.wait_for("tiltrs started on http://");
        lines
            .iter()
            .find_map(|l| l.split("tiltrs started on http://").nth(1))
            .and_then(|rest| rest.split(':').nth(1))
            .and_then(|p| p.trim_end_matches('/').parse().ok())
            .unwrap_or_else(|| panic!("no port in:\n{}", lines.join("\n")))
    }

    pub fn output(&self) -> String {
        self.lines.0.lock().expect("lock").join("\n")
    }

    /// Waits until `n` lines satisfy `pred`; returns all lines then.
    pub fn wait_for_count(&self, n: usize, pred: impl Fn(&str) -> bool) -> Vec<String> {
        let (m, cv) = &*self.lines;
        let start = Instant::now();
        let mut g = m.lock().expect("lock");
        loop {
            if g.iter().filter(|l| pred(l)).count() >= n {
                return g.clone();
            }
            let left = WAIT
                .checked_sub(start.elapsed())
                .unwrap_or_else(|| panic!("timed out waiting for output; got:\n{}", g.join("\n")));
            g = cv.wait_timeout(g, left).expect("wait").0;
        }
    }

    pub fn wait_for(&self, needle: &str) -> Vec<String> {
        self.wait_for_count(1, |l| l.contains(needle))
    }

    pub fn count(&self, pred: impl Fn(&str) -> bool) -> usize {
        self.lines
            .0
            .lock()
            .expect("lock")
            .iter()
            .filter(|l| pred(l))
            .count()
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: plain kill(2) of our own child.
        unsafe { libc::kill(self.pid(), sig) };
    }

    /// Waits for the process to exit (killing it after [`WAIT`]).
    pub fn wait(&mut self) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                return s;
            }
            if start.elapsed() > WAIT {
                let _ = self.child.kill();
                panic!("tiltrs did not exit; output:\n{}", self.output());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A string unique to this test process and call, for finding processes in /proc.
pub fn marker() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    // `sleep` takes fractional seconds; a long odd duration is unlikely to clash.
    format!(
        "9{}{}.{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        7
    )
}

/// Pids of live (non-zombie) processes whose command line contains `needle`.
pub fn processes_with(needle: &str) -> Vec<i32> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if !cmdline.contains(needle) {
            continue;
        }
        let zombie = std::fs::read_to_string(e.path().join("stat"))
            .ok()
            .and_then(|s| {
                s.rsplit(')')
                    .next()
                    .map(|r| r.trim_start().starts_with('Z'))
            })
            .unwrap_or(false);
        if !zombie {
            out.push(pid);
        }
    }
    out
}

/// Waits until at least `n` processes match `needle`.
pub fn wait_processes(needle: &str, n: usize) {
    wait_until(|| (processes_with(needle).len() >= n).then_some(()))
        .unwrap_or_else(|| panic!("never saw {n} processes with {needle:?}"));
}

/// Waits until no process matches `needle` (a reaper kills asynchronously).
pub fn assert_none_left(needle: &str) {
    let gone = wait_until(|| processes_with(needle).is_empty().then_some(()));
    assert!(
        gone.is_some(),
        "processes left behind: {:?}",
        processes_with(needle)
    );
}

pub fn exists(p: &Path) -> bool {
    p.exists()
}
