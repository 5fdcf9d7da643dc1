//! Load on a running `tiltrs up`: N resources (default 50) whose `serve_cmd` each prints
//! RATE lines a second (default 1,000) for a window of SECS seconds (default 30), while
//! - a follower reads `GET /api/logs/stream` and checks that every resource's line counter
//!   is contiguous (no line lost, duplicated or reordered for a client that keeps up);
//! - a prober times `GET /api/resources` and `GET /api/session` every 20 ms (API p99);
//! - a sampler reads the session's RSS every second and its CPU time at both ends.
//!
//! It then stops the session with SIGTERM and checks that no generator outlives it, prints a
//! report and exits non-zero when a line was lost, the API p99 reached 50 ms, the log store
//! went over its limit or a generator was left running.
//!
//! Run (needs the release binary and perl):
//! ```text
//! cargo build --release && cargo bench --bench api_load
//! ```
//! Environment: `TILTRS_BIN` (default: the release binary), `API_LOAD_RESOURCES` (50),
//! `API_LOAD_RATE` (lines per second per resource, 1000), `API_LOAD_SECS` (30),
//! `API_LOAD_LOG_LIMIT_MB` (`--log-limit-mb`, 16).

mod support;

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;

use support::{
    Api, Drained, Project, Session, agent, binary, cpu_secs, env_or, logs_field, marked_pids, mib,
    now_ms, percentile, sample_rss, signal, sorted, start_tiltrs, status_kib, stop_tiltrs,
    total_cpu, wait_ready,
};

/// The API's p99 must stay under this.
const P99_LIMIT_MS: f64 = 50.0;
/// Time between two probes.
const PROBE_EVERY: Duration = Duration::from_millis(20);
/// How long the follower may take, after the window, to reach the window's last line.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(30);
// ---------------------------------------------------------------------------------------
// Configuration and project
// ---------------------------------------------------------------------------------------

struct Config {
    bin: PathBuf,
    resources: usize,
    rate: u64,
    secs: u64,
    log_limit_mb: u64,
}

impl Config {
    fn from_env() -> Config {
        Config {
            bin: binary(),
            resources: env_or("API_LOAD_RESOURCES", 50),
            rate: env_or("API_LOAD_RATE", 1000),
            secs: env_or("API_LOAD_SECS", 30),
            log_limit_mb: env_or("API_LOAD_LOG_LIMIT_MB", 16),
        }
    }
}

fn resource_name(i: usize) -> String {
    format!("gen-{i:02}")
}

/// The project: `cfg.resources` generators of `cfg.rate` plain lines a second.
fn write_project(cfg: &Config) -> Project {
    let project = Project::new();
    let mut tiltfile = String::new();
    for i in 0..cfg.resources {
        let name = resource_name(i);
        tiltfile.push_str(&format!(
            "local_resource('{name}', serve_cmd='{}')\n",
            project.generator_cmd(&name, cfg.rate, "plain")
        ));
    }
    project.write_tiltfile(&tiltfile);
    project
}

// ---------------------------------------------------------------------------------------
// The follower
// ---------------------------------------------------------------------------------------

/// A line of `event: lines`.
#[derive(Deserialize)]
struct WireLine<'a> {
    seq: u64,
    time: u64,
    #[serde(borrow)]
    span: Cow<'a, str>,
    #[serde(borrow)]
    text: Cow<'a, str>,
}

#[derive(Default)]
struct FollowReport {
    /// Generator lines received in the window.
    lines: u64,
    /// Other lines of the window (engine events, the resources' own messages).
    other_lines: u64,
    /// Counters skipped: lines lost.
    lost: u64,
    /// Counters that went backwards or repeated.
    disordered: u64,
    dropped_events: u64,
    dropped_count: u64,
    /// Per `lines` event: now minus the `time` of its last line, in ms.
    lag_ms: Vec<f64>,
    /// The seq of the last line read.
    last_seq: u64,
    error: Option<String>,
}

impl FollowReport {
    /// Accounts one line; `last` is the last counter seen per resource.
    fn line(&mut self, line: &WireLine, last: &mut HashMap<String, u64>) {
        let Some((name, counter)) = line.text.split_once(" line ") else {
            self.other_lines += 1;
            return;
        };
        let Ok(counter) = counter.trim_end().parse::<u64>() else {
            self.other_lines += 1;
            return;
        };
        if name != line.span {
            self.other_lines += 1;
            return;
        }
        self.lines += 1;
        let Some(prev) = last.get_mut(name) else {
            last.insert(name.to_string(), counter);
            return;
        };
        match counter.cmp(&(*prev + 1)) {
            std::cmp::Ordering::Equal => {}
            std::cmp::Ordering::Greater => self.lost += counter - *prev - 1,
            std::cmp::Ordering::Less => self.disordered += 1,
        }
        *prev = counter;
    }
}

/// Follows the log stream from `since` until it has read the line `stop_at` (set by the main
/// thread at the end of the window), then sends its report. Lines after `stop_at` are not
/// counted.
fn follow(
    base: String,
    since: u64,
    stop_at: Arc<AtomicU64>,
    done: mpsc::Sender<()>,
) -> JoinHandle<FollowReport> {
    thread::spawn(move || {
        let mut report = FollowReport::default();
        if let Err(e) = read_stream(&base, since, &stop_at, &mut report) {
            report.error = Some(e);
        }
        let _ = done.send(());
        report
    })
}

fn read_stream(
    base: &str,
    since: u64,
    stop_at: &AtomicU64,
    report: &mut FollowReport,
) -> Result<(), String> {
    let url = format!("{base}/api/logs/stream?since={since}");
    let response = agent()
        .get(&url)
        .call()
        .map_err(|e| format!("GET {url}: {e}"))?;
    if response.status() != 200 {
        return Err(format!("GET {url}: {}", response.status()));
    }
    let mut reader = BufReader::with_capacity(1 << 18, response.into_body().into_reader());
    let mut last = HashMap::new();
    let (mut event, mut data, mut line) = (String::new(), String::new(), String::new());
    loop {
        line.clear();
        let n = reader
            .read_line(&mut line)
            .map_err(|e| format!("reading the stream: {e}"))?;
        if n == 0 {
            return Err("the stream ended before the window's last line".into());
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if let Some(v) = line.strip_prefix("event:") {
            event = v.trim().to_string();
        } else if let Some(v) = line.strip_prefix("data:") {
            if !data.is_empty() {
                data.push('\n');
            }
            data.push_str(v.strip_prefix(' ').unwrap_or(v));
        } else if line.is_empty() && !data.is_empty() {
            handle_event(
                &event,
                &data,
                stop_at.load(Ordering::Acquire),
                &mut last,
                report,
            )?;
            event.clear();
            data.clear();
            if report.last_seq >= stop_at.load(Ordering::Acquire) {
                return Ok(());
            }
        }
    }
}

fn handle_event(
    event: &str,
    data: &str,
    stop_at: u64,
    last: &mut HashMap<String, u64>,
    report: &mut FollowReport,
) -> Result<(), String> {
    match event {
        "lines" => {
            let lines: Vec<WireLine> =
                serde_json::from_str(data).map_err(|e| format!("bad lines event: {e}"))?;
            let Some(newest) = lines.last() else {
                return Ok(());
            };
            report
                .lag_ms
                .push(now_ms().saturating_sub(newest.time) as f64);
            report.last_seq = newest.seq;
            for line in lines.iter().filter(|l| l.seq <= stop_at) {
                report.line(line, last);
            }
        }
        "dropped" => {
            let v: Value =
                serde_json::from_str(data).map_err(|e| format!("bad dropped event: {e}"))?;
            report.dropped_events += 1;
            report.dropped_count += v["count"].as_u64().unwrap_or(0);
        }
        _ => {}
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The prober and the sampler
// ---------------------------------------------------------------------------------------

#[derive(Default)]
struct ProbeReport {
    latencies_ms: Vec<f64>,
    errors: Vec<String>,
}

/// Every `PROBE_EVERY`, times one `GET`, alternating `/api/resources` and `/api/session`.
fn probe(port: u16, stop: Arc<AtomicBool>) -> JoinHandle<ProbeReport> {
    thread::spawn(move || {
        let api = Api::new(port);
        let mut report = ProbeReport::default();
        let paths = ["/api/resources", "/api/session"];
        let mut next = Instant::now();
        let mut i = 0;
        while !stop.load(Ordering::Acquire) {
            let start = Instant::now();
            match api.get(paths[i % 2]) {
                Ok(_) => report
                    .latencies_ms
                    .push(start.elapsed().as_secs_f64() * 1e3),
                Err(e) => report.errors.push(e),
            }
            i += 1;
            next += PROBE_EVERY;
            let now = Instant::now();
            if next > now {
                thread::sleep(next - now);
            } else {
                next = now;
            }
        }
        report
    })
}

// ---------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------

/// What the window measured.
struct Window {
    wall: Duration,
    start_seq: u64,
    end_seq: u64,
    tiltrs_cpu: f64,
    bench_cpu: f64,
    generators_cpu: f64,
    probes: ProbeReport,
    rss_kib: Vec<u64>,
    hwm_kib: u64,
    session_end: Value,
}

/// Everything after the window.
struct Ending {
    follow: FollowReport,
    caught_up: Option<Duration>,
    exit: Option<ExitStatus>,
    stop_time: Duration,
    killed: bool,
    leftovers: Vec<i32>,
    stdout: Drained,
    stderr_tail: Vec<String>,
}

fn run_window(
    cfg: &Config,
    session: &Session,
    api: &Api,
    marker: &str,
    stop_at: &Arc<AtomicU64>,
) -> (Window, JoinHandle<FollowReport>, mpsc::Receiver<()>) {
    let start_seq = logs_field(&api.session(), "last_seq");
    let (done_tx, done_rx) = mpsc::channel();
    let follower = follow(api.base.clone(), start_seq, stop_at.clone(), done_tx);
    let stop = Arc::new(AtomicBool::new(false));
    let prober = probe(session.port, stop.clone());
    let sampler = sample_rss(session.pid, stop.clone());
    let generators = marked_pids(marker);
    let (cpu0, self0, gen0) = (
        cpu_secs(session.pid).unwrap_or(0.0),
        cpu_secs(0).unwrap_or(0.0),
        total_cpu(&generators),
    );
    let start = Instant::now();
    thread::sleep(Duration::from_secs(cfg.secs));
    let (cpu1, self1, gen1) = (
        cpu_secs(session.pid).unwrap_or(0.0),
        cpu_secs(0).unwrap_or(0.0),
        total_cpu(&generators),
    );
    let wall = start.elapsed();
    let session_end = api.session();
    let end_seq = logs_field(&session_end, "last_seq");
    stop_at.store(end_seq, Ordering::Release);
    stop.store(true, Ordering::Release);
    let probes = prober.join().expect("the prober thread panicked");
    let rss_kib = sampler.join().expect("the sampler thread panicked");
    let window = Window {
        wall,
        start_seq,
        end_seq,
        tiltrs_cpu: cpu1 - cpu0,
        bench_cpu: self1 - self0,
        generators_cpu: gen1 - gen0,
        probes,
        rss_kib,
        hwm_kib: status_kib(session.pid, "VmHWM:").unwrap_or(0),
        session_end,
    };
    (window, follower, done_rx)
}

fn finish(
    mut session: Session,
    marker: &str,
    follower: JoinHandle<FollowReport>,
    done: mpsc::Receiver<()>,
) -> Ending {
    let waited = Instant::now();
    let caught_up = done
        .recv_timeout(CATCH_UP_TIMEOUT)
        .ok()
        .map(|()| waited.elapsed());
    let (exit, stop_time, killed) = stop_tiltrs(&mut session.child, session.pid);
    let follow = follower.join().expect("the follower thread panicked");
    let leftovers = marked_pids(marker);
    for &pid in &leftovers {
        signal(pid, libc::SIGKILL);
    }
    Ending {
        caught_up: caught_up.filter(|_| follow.error.is_none()),
        follow,
        exit,
        stop_time,
        killed,
        leftovers,
        stdout: session.stdout.join().unwrap_or_default(),
        stderr_tail: session.stderr.join().unwrap_or_default(),
    }
}

// ---------------------------------------------------------------------------------------
// The report
// ---------------------------------------------------------------------------------------

/// Prints the report; returns the failed checks.
fn report(cfg: &Config, w: &Window, e: &Ending) -> Vec<String> {
    let secs = w.wall.as_secs_f64();
    let f = &e.follow;
    println!("== api_load ==");
    println!(
        "load:      {} resources x {} lines/s for {:.1} s (expected {} lines)",
        cfg.resources,
        cfg.rate,
        secs,
        cfg.resources as u64 * cfg.rate * cfg.secs
    );
    println!(
        "follower:  {} lines ({:.0} lines/s), {} other lines; session seq {}..{} ({} lines)",
        f.lines,
        f.lines as f64 / secs,
        f.other_lines,
        w.start_seq,
        w.end_seq,
        w.end_seq - w.start_seq
    );
    println!(
        "           lost {}, out of order {}, dropped events {} ({} lines)",
        f.lost, f.disordered, f.dropped_events, f.dropped_count
    );
    let lag = sorted(&f.lag_ms);
    println!(
        "           delivery lag p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms; caught up {}",
        percentile(&lag, 50.0),
        percentile(&lag, 99.0),
        lag.last().copied().unwrap_or(f64::NAN),
        match e.caught_up {
            Some(d) => format!("{:.0} ms after the window", d.as_secs_f64() * 1e3),
            None => "never".into(),
        }
    );
    if let Some(err) = &f.error {
        println!("           error: {err}");
    }
    let lat = sorted(&w.probes.latencies_ms);
    let p99 = percentile(&lat, 99.0);
    println!(
        "api:       {} requests, p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms, {} errors",
        lat.len(),
        percentile(&lat, 50.0),
        percentile(&lat, 90.0),
        p99,
        lat.last().copied().unwrap_or(f64::NAN),
        w.probes.errors.len()
    );
    for err in w.probes.errors.iter().take(3) {
        println!("           {err}");
    }
    let peak = w.rss_kib.iter().max().copied().unwrap_or(0);
    let start = w.rss_kib.first().copied().unwrap_or(0);
    let end = w.rss_kib.last().copied().unwrap_or(0);
    println!(
        "memory:    RSS at start {:.1} MiB, peak {:.1} MiB (VmHWM {:.1} MiB), at end {:.1} MiB; \
         log limit {} MiB",
        start as f64 / 1024.0,
        peak as f64 / 1024.0,
        w.hwm_kib as f64 / 1024.0,
        end as f64 / 1024.0,
        cfg.log_limit_mb
    );
    let (used, limit) = (
        logs_field(&w.session_end, "used_bytes"),
        logs_field(&w.session_end, "limit_bytes"),
    );
    println!(
        "logs:      used {} B ({:.2} MiB) of limit {} B ({:.2} MiB), dropped_lines {}",
        used,
        mib(used),
        limit,
        mib(limit),
        logs_field(&w.session_end, "dropped_lines")
    );
    println!(
        "cpu:       tiltrs {:.2} s/s, generators {:.2} s/s, bench client {:.2} s/s",
        w.tiltrs_cpu / secs,
        w.generators_cpu / secs,
        w.bench_cpu / secs
    );
    println!(
        "stdout:    {} lines, {:.1} MiB drained from tiltrs",
        e.stdout.lines,
        mib(e.stdout.bytes)
    );
    println!(
        "shutdown:  {} in {:.0} ms{}; leftover generator processes: {}",
        e.exit.map_or("no status".into(), |s| s.to_string()),
        e.stop_time.as_secs_f64() * 1e3,
        if e.killed { " (SIGKILL needed)" } else { "" },
        e.leftovers.len()
    );
    failures(w, e, p99, used, limit)
}

fn failures(w: &Window, e: &Ending, p99: f64, used: u64, limit: u64) -> Vec<String> {
    let f = &e.follow;
    let mut failed = Vec::new();
    if f.lost > 0 || f.disordered > 0 {
        failed.push(format!(
            "lines lost: {} (out of order: {})",
            f.lost, f.disordered
        ));
    }
    if e.caught_up.is_none() {
        failed.push(format!(
            "the follower did not reach the window's last line: {}",
            f.error.as_deref().unwrap_or("timed out")
        ));
    }
    if f.lines == 0 {
        failed.push("the follower received no line".into());
    }
    if p99.is_nan() || p99 >= P99_LIMIT_MS {
        failed.push(format!("API p99 {p99:.2} ms >= {P99_LIMIT_MS} ms"));
    }
    if !w.probes.errors.is_empty() {
        failed.push(format!("{} API requests failed", w.probes.errors.len()));
    }
    if used > limit {
        failed.push(format!("log store over its limit: {used} > {limit} bytes"));
    }
    if e.killed {
        failed.push("tiltrs did not exit within 60 s of SIGTERM".into());
    }
    if !e.leftovers.is_empty() {
        failed.push(format!(
            "{} generator processes outlived the session",
            e.leftovers.len()
        ));
    }
    if e.exit.is_some_and(|s| !s.success()) {
        failed.push(format!("tiltrs exited with {:?}", e.exit));
        failed.extend(e.stderr_tail.iter().map(|l| format!("  stderr: {l}")));
    }
    failed
}

fn main() {
    // `cargo bench` passes `--bench`; a name filter that is not ours means another bench.
    if support::filtered_out() {
        return;
    }
    let cfg = Config::from_env();
    let project = write_project(&cfg);
    let session = start_tiltrs(
        &cfg.bin,
        &project,
        &["--log-limit-mb".into(), cfg.log_limit_mb.to_string()],
    );
    let api = Api::new(session.port);
    let ready = wait_ready(&api, cfg.resources, cfg.resources, Duration::from_secs(120));
    eprintln!(
        "api_load: {} resources up on port {} after {:.1} s; measuring for {} s",
        cfg.resources,
        session.port,
        ready.as_secs_f64(),
        cfg.secs
    );
    let stop_at = Arc::new(AtomicU64::new(u64::MAX));
    let (window, follower, done) = run_window(&cfg, &session, &api, &project.marker, &stop_at);
    let ending = finish(session, &project.marker, follower, done);
    let failed = report(&cfg, &window, &ending);
    if !failed.is_empty() {
        println!("FAILED:");
        for f in &failed {
            println!("  {f}");
        }
        std::process::exit(1);
    }
    println!("ok");
}
