//! Helpers shared by the load benches that run the real `tiltrs up` (`api_load`, `ui_load`):
//! the binary, a temporary project whose resources are perl line generators, starting and
//! stopping the session (port parsing, stdout/stderr draining), its HTTP API, `/proc` readers
//! for RSS and CPU time, and the statistics of the reports.
//!
//! Each bench includes this file with `mod support;` and uses a part of it.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Stdio};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// The bench's name (its crate name), prefixed to its messages.
pub const BENCH: &str = env!("CARGO_CRATE_NAME");

/// How long `tiltrs` may take to exit after SIGTERM before it gets SIGKILL.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// A generator: `perl gen.pl NAME RATE MARKER [STYLE]` prints RATE lines a second in batches
/// of a tenth of a second, paced against the clock so that the average rate is exact. STYLE
/// `plain` (the default) prints `NAME line N` with N from 0; `ansi` prints the same words
/// inside a longer line with SGR colour codes, as a colouring logger would. MARKER is only
/// there to let the bench find leftover processes.
const GENERATOR: &str = r#"use strict; use warnings; use Time::HiRes qw(time sleep);
my ($name, $rate, $marker, $style) = @ARGV;
$style //= 'plain';
$| = 1;
my $batch = $rate >= 10 ? int($rate / 10) : 1;
my $interval = $batch / $rate;
my ($n, $next) = (0, time);
while (1) {
    my $s = '';
    for (1 .. $batch) {
        if ($style eq 'ansi') {
            my $level = $n % 10 == 9 ? "\e[33mWARN\e[0m" : "\e[32mINFO\e[0m";
            $s .= sprintf("%s \e[2m%.3f\e[0m \e[36m%s\e[0m $name line $n: GET /api/items/%d -> \e[1m200\e[0m in %dms\n",
                $level, time, 'http', $n % 997, $n % 37);
        } else {
            $s .= "$name line $n\n";
        }
        $n++;
    }
    print $s;
    $next += $interval;
    my $wait = $next - time;
    sleep($wait) if $wait > 0;
}
"#;

// ---------------------------------------------------------------------------------------
// Configuration, failure
// ---------------------------------------------------------------------------------------

/// The value of the environment variable `name`, else `default`; an unparsable value fails.
pub fn env_or<T: FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| fail(&format!("{name}={v:?} is not a valid value"))),
        Err(_) => default,
    }
}

/// `TILTRS_BIN`, else the binary cargo builds with the bench (release profile); fails when it
/// is missing.
pub fn binary() -> PathBuf {
    let bin = std::env::var_os("TILTRS_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_tiltrs")),
        PathBuf::from,
    );
    if !bin.is_file() {
        fail(&format!(
            "{} is missing: build it with cargo build --release (or set TILTRS_BIN)",
            bin.display()
        ));
    }
    bin
}

/// Whether `cargo bench` asked for another bench: it passes `--bench` and any name filter.
pub fn filtered_out() -> bool {
    std::env::args()
        .skip(1)
        .any(|a| !a.starts_with('-') && !BENCH.contains(a.as_str()))
}

/// The running session, stopped by `fail`.
static SESSION_PID: AtomicI32 = AtomicI32::new(0);
/// A process group (e.g. chromedriver and its browsers) killed by `fail`.
static KILL_GROUP: AtomicI32 = AtomicI32::new(0);

/// Makes `fail` SIGKILL the process group `pgid` (0: none).
pub fn kill_group_on_fail(pgid: i32) {
    KILL_GROUP.store(pgid, Ordering::Release);
}

/// Gives up: stops the session and the registered process group, and exits with status 2.
pub fn fail(message: &str) -> ! {
    eprintln!("{BENCH}: {message}");
    let pgid = KILL_GROUP.swap(0, Ordering::AcqRel);
    if pgid > 0 {
        signal(-pgid, libc::SIGKILL);
    }
    let pid = SESSION_PID.swap(0, Ordering::AcqRel);
    if pid > 0 {
        signal(pid, libc::SIGTERM);
    }
    std::process::exit(2)
}

pub fn signal(pid: i32, sig: libc::c_int) {
    // SAFETY: kill(2) on a process (group) we started or one carrying our marker; no memory
    // involved.
    unsafe { libc::kill(pid, sig) };
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

// ---------------------------------------------------------------------------------------
// The project
// ---------------------------------------------------------------------------------------

/// The temporary tree: `root` is the session's HOME, `root/project` holds the Tiltfile and
/// the generator; nothing else is written under it.
pub struct Project {
    pub root: tempfile::TempDir,
    pub tiltfile: PathBuf,
    pub generator: PathBuf,
    /// On the command line of every generator.
    pub marker: String,
}

impl Project {
    /// The tree with the generator and an empty Tiltfile (see `write_tiltfile`).
    pub fn new() -> Project {
        let root = tempfile::tempdir().expect("create a temporary directory");
        let dir = root.path().join("project");
        std::fs::create_dir(&dir).expect("create the project directory");
        let generator = dir.join("gen.pl");
        std::fs::write(&generator, GENERATOR).expect("write the generator");
        let marker = format!("{BENCH}-marker-{}-{}", std::process::id(), now_ms());
        let tiltfile = dir.join("Tiltfile");
        std::fs::write(&tiltfile, "").expect("write the Tiltfile");
        Project {
            root,
            tiltfile,
            generator,
            marker,
        }
    }

    /// The command of a resource printing `rate` lines a second in `style` (`plain`, `ansi`).
    pub fn generator_cmd(&self, name: &str, rate: u64, style: &str) -> String {
        format!(
            "exec perl {} {name} {rate} {} {style}",
            self.generator.display(),
            self.marker
        )
    }

    pub fn write_tiltfile(&self, text: &str) {
        std::fs::write(&self.tiltfile, text).expect("write the Tiltfile");
    }
}

// ---------------------------------------------------------------------------------------
// The session
// ---------------------------------------------------------------------------------------

pub struct Session {
    pub child: Child,
    pub pid: i32,
    pub port: u16,
    pub stdout: JoinHandle<Drained>,
    pub stderr: JoinHandle<Vec<String>>,
}

/// What was read from the session's stdout.
#[derive(Default)]
pub struct Drained {
    pub bytes: u64,
    pub lines: u64,
}

/// Runs `BIN up --stream -f TILTFILE --port 0 EXTRA...` in the project (HOME is its root)
/// and waits for the port it reports.
pub fn start_tiltrs(bin: &Path, project: &Project, extra: &[String]) -> Session {
    let mut child = Command::new(bin)
        .args(["up", "--stream", "-f"])
        .arg(&project.tiltfile)
        .args(["--port", "0"])
        .args(extra)
        .current_dir(project.root.path())
        .env("HOME", project.root.path())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| fail(&format!("cannot start {}: {e}", bin.display())));
    let pid = child.id() as i32;
    SESSION_PID.store(pid, Ordering::Release);
    let stdout = drain_stdout(child.stdout.take().expect("piped stdout"));
    let (port_tx, port_rx) = mpsc::channel();
    let stderr = drain_stderr(child.stderr.take().expect("piped stderr"), port_tx);
    let Ok(port) = port_rx.recv_timeout(Duration::from_secs(30)) else {
        SESSION_PID.store(0, Ordering::Release);
        signal(pid, libc::SIGKILL);
        let _ = child.wait();
        let tail = stderr.join().unwrap_or_default().join("\n");
        fail(&format!("tiltrs did not report its port; stderr:\n{tail}"));
    };
    Session {
        child,
        pid,
        port,
        stdout,
        stderr,
    }
}

/// Reads stdout as fast as it comes (the session prints every log line there and would
/// block on a full pipe), counting bytes and lines.
fn drain_stdout(mut out: ChildStdout) -> JoinHandle<Drained> {
    thread::spawn(move || {
        let mut drained = Drained::default();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match out.read(&mut buf) {
                Ok(0) | Err(_) => return drained,
                Ok(n) => {
                    drained.bytes += n as u64;
                    drained.lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
                }
            }
        }
    })
}

/// Reads stderr, sends the port of `tiltrs started on http://localhost:PORT/` and keeps the
/// last lines for diagnostics.
fn drain_stderr(err: ChildStderr, port_tx: mpsc::Sender<u16>) -> JoinHandle<Vec<String>> {
    thread::spawn(move || {
        let mut tail = Vec::new();
        for line in BufReader::new(err).lines() {
            let Ok(line) = line else { break };
            if let Some(port) = parse_port(&line) {
                let _ = port_tx.send(port);
            }
            if tail.len() == 20 {
                tail.remove(0);
            }
            tail.push(line);
        }
        tail
    })
}

fn parse_port(line: &str) -> Option<u16> {
    let rest = line.split("tiltrs started on http://").nth(1)?;
    let (_, port) = rest.split_once(':')?;
    port.trim_end_matches('/').trim().parse().ok()
}

/// SIGTERM, then SIGKILL after `STOP_TIMEOUT`. Returns the exit status, the time it took and
/// whether SIGKILL was needed.
pub fn stop_tiltrs(child: &mut Child, pid: i32) -> (Option<ExitStatus>, Duration, bool) {
    let start = Instant::now();
    SESSION_PID.store(0, Ordering::Release);
    signal(pid, libc::SIGTERM);
    while start.elapsed() < STOP_TIMEOUT {
        if let Ok(Some(status)) = child.try_wait() {
            return (Some(status), start.elapsed(), false);
        }
        thread::sleep(Duration::from_millis(20));
    }
    signal(pid, libc::SIGKILL);
    let status = child.wait().ok();
    (status, start.elapsed(), true)
}

// ---------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

pub struct Api {
    pub agent: ureq::Agent,
    pub base: String,
}

impl Api {
    pub fn new(port: u16) -> Api {
        Api {
            agent: agent(),
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    /// The body of a `GET` answered with 200.
    pub fn get(&self, path: &str) -> Result<String, String> {
        let mut response = self
            .agent
            .get(format!("{}{path}", self.base))
            .call()
            .map_err(|e| format!("GET {path}: {e}"))?;
        let status = response.status();
        let body = response
            .body_mut()
            .read_to_string()
            .map_err(|e| format!("GET {path}: reading the body: {e}"))?;
        if status != 200 {
            return Err(format!("GET {path}: {status}: {body}"));
        }
        Ok(body)
    }

    pub fn get_json(&self, path: &str) -> Result<Value, String> {
        let body = self.get(path)?;
        serde_json::from_str(&body).map_err(|e| format!("GET {path}: bad JSON: {e}"))
    }

    pub fn session(&self) -> Value {
        self.get_json("/api/session")
            .unwrap_or_else(|e| fail(&format!("reading the session: {e}")))
    }
}

/// A field of the session's `logs` object.
pub fn logs_field(session: &Value, field: &str) -> u64 {
    session["logs"][field].as_u64().unwrap_or(0)
}

/// Waits until the session lists `total` resources of which `running` run
/// (`runtime_status` "ok").
pub fn wait_ready(api: &Api, total: usize, running: usize, timeout: Duration) -> Duration {
    let start = Instant::now();
    let mut last = String::from("no answer");
    while start.elapsed() < timeout {
        match api.get_json("/api/resources") {
            Ok(v) => {
                let resources = v["resources"].as_array().cloned().unwrap_or_default();
                let ok = resources
                    .iter()
                    .filter(|r| r["runtime_status"] == "ok")
                    .count();
                if resources.len() == total && ok == running {
                    return start.elapsed();
                }
                last = format!(
                    "{ok} of {} resources running (want {running} of {total})",
                    resources.len()
                );
            }
            Err(e) => last = e,
        }
        thread::sleep(Duration::from_millis(100));
    }
    fail(&format!(
        "the resources did not all start in {timeout:?}: {last}"
    ))
}

// ---------------------------------------------------------------------------------------
// /proc
// ---------------------------------------------------------------------------------------

/// Every second, the RSS of `pid` in KiB, until `stop`.
pub fn sample_rss(pid: i32, stop: Arc<AtomicBool>) -> JoinHandle<Vec<u64>> {
    thread::spawn(move || {
        let mut samples = Vec::new();
        while !stop.load(Ordering::Acquire) {
            if let Some(kib) = status_kib(pid, "VmRSS:") {
                samples.push(kib);
            }
            for _ in 0..10 {
                if stop.load(Ordering::Acquire) {
                    break;
                }
                thread::sleep(Duration::from_millis(100));
            }
        }
        samples
    })
}

/// A `kB` field of `/proc/PID/status` ("self" for this process when pid is 0).
pub fn status_kib(pid: i32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(proc_path(pid, "status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..].split_whitespace().next()?.parse().ok()
}

fn proc_path(pid: i32, file: &str) -> String {
    if pid == 0 {
        format!("/proc/self/{file}")
    } else {
        format!("/proc/{pid}/{file}")
    }
}

/// The fields of `/proc/PID/stat` after the command name ("self" when pid is 0): index 0 is
/// the state (field 3 of the line), 1 the ppid, 2 the process group, 11 and 12 utime and
/// stime.
pub fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(proc_path(pid, "stat")).ok()?;
    // The command name is in parentheses and may hold spaces.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// utime + stime of a process in seconds ("self" when pid is 0).
pub fn cpu_secs(pid: i32) -> Option<f64> {
    let fields = stat_fields(pid)?;
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no memory effects.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1);
    Some(ticks as f64 / hz as f64)
}

/// Every process id in /proc.
pub fn all_pids() -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .collect()
}

/// The command line of a process, its arguments joined by spaces.
pub fn cmdline(pid: i32) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(String::from_utf8_lossy(&raw).replace('\0', " "))
}

/// The processes whose command line holds `marker` (the generators and their shells).
pub fn marked_pids(marker: &str) -> Vec<i32> {
    all_pids()
        .into_iter()
        .filter(|&pid| cmdline(pid).is_some_and(|c| c.contains(marker)))
        .collect()
}

pub fn total_cpu(pids: &[i32]) -> f64 {
    pids.iter().filter_map(|&p| cpu_secs(p)).sum()
}

// ---------------------------------------------------------------------------------------
// Statistics
// ---------------------------------------------------------------------------------------

/// The nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn sorted(values: &[f64]) -> Vec<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v
}

pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1u64 << 20) as f64
}
