//! The web UI under load, in a real headless Chromium (through chromedriver and WebDriver)
//! against a real `tiltrs up`: N resources (default 200) in about ten labels, whose
//! `serve_cmd`s together print RATE lines a second (default 10,000, with ANSI colours), plus
//! a manual resource `probe-target` (an `echo`). With the "All resources" log view selected
//! (or one resource's, `UI_LOAD_VIEW=resource`), for SECS seconds (default 30):
//! - an in-page monitor records the main thread's responsiveness: the lateness of a 50 ms
//!   `setTimeout` chain (event-loop lag), the `requestAnimationFrame` intervals and the
//!   long tasks (`PerformanceObserver`);
//! - every 2 s, a click on probe-target's trigger button is timed until a `MutationObserver`
//!   sees that row's `data-status` change, then a click on another resource's name until its
//!   log lines appear in `#log`, and the click back to the measured view likewise;
//! - every 2 s, the number of `#log .log-line` elements, the JS heap and how old the newest
//!   received and shown lines are, are sampled;
//! - CPU time (tiltrs, generators, Chromium's renderer and other processes) and Chromium's
//!   own main-thread metrics (CDP `Performance.getMetrics`) are read at both ends.
//!
//! Then (`UI_LOAD_PROFILE_SECS`, default 5, 0 to skip) a CPU profile of the page (CDP
//! `Profiler`) is taken for a few seconds of the same load, without clicks, and its top
//! functions are printed. The bench prints a report and exits non-zero when a click took
//! more than 1 s to show in its row (or never did) or `#log` held more than 10,000 lines.
//!
//! Run (needs the release binary, perl, `/usr/bin/chromium` and `/usr/bin/chromedriver`):
//! ```text
//! cargo build --release && cargo bench --bench ui_load
//! ```
//! Environment: `TILTRS_BIN` (default: the release binary), `UI_LOAD_RESOURCES` (200),
//! `UI_LOAD_LABELS` (10), `UI_LOAD_LINES_PER_SEC` (total, 10000), `UI_LOAD_SECS` (30),
//! `UI_LOAD_VIEW` (`all` or `resource`: the first resource's view), `UI_LOAD_WARMUP_SECS` (5),
//! `UI_LOAD_PROFILE_SECS` (5), `UI_LOAD_CHROMIUM_ARGS` (more Chromium flags, space-separated,
//! e.g. `--trace-startup=devtools.timeline --trace-startup-file=/tmp/t.json` for a trace).

mod support;

use std::collections::HashMap;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use serde_json::{Value, json};

use support::{
    Api, Drained, Project, Session, all_pids, binary, cmdline, cpu_secs, env_or, fail,
    kill_group_on_fail, logs_field, marked_pids, mib, percentile, sample_rss, signal, sorted,
    start_tiltrs, stat_fields, status_kib, stop_tiltrs, total_cpu, wait_ready,
};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// A click on trigger must show in its row within this.
const CLICK_LIMIT_MS: f64 = 1000.0;
/// `#log` must never hold more lines than this.
const DOM_LINES_LIMIT: u64 = 10_000;
/// The manual resource whose trigger button is clicked.
const PROBE: &str = "probe-target";
/// Time between two rounds of clicks and samples.
const CYCLE: Duration = Duration::from_secs(2);
/// Lag samples up to this long after a view switch's lines appeared count as the switch's.
const SWITCH_TAIL_MS: f64 = 500.0;

// ---------------------------------------------------------------------------------------
// Configuration and project
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq)]
enum View {
    All,
    Resource,
}

struct Config {
    bin: PathBuf,
    resources: usize,
    labels: usize,
    lines_per_sec: u64,
    secs: u64,
    view: View,
    warmup_secs: u64,
    profile_secs: u64,
    /// More Chromium flags (a diagnostic aid, e.g. `--trace-startup=...`).
    chromium_args: Vec<String>,
}

impl Config {
    fn from_env() -> Config {
        let view = match env_or("UI_LOAD_VIEW", String::from("all")).as_str() {
            "all" => View::All,
            "resource" => View::Resource,
            other => fail(&format!("UI_LOAD_VIEW={other:?}: use all or resource")),
        };
        let cfg = Config {
            bin: binary(),
            resources: env_or("UI_LOAD_RESOURCES", 200),
            labels: env_or("UI_LOAD_LABELS", 10),
            lines_per_sec: env_or("UI_LOAD_LINES_PER_SEC", 10_000),
            secs: env_or("UI_LOAD_SECS", 30),
            view,
            warmup_secs: env_or("UI_LOAD_WARMUP_SECS", 5),
            profile_secs: env_or("UI_LOAD_PROFILE_SECS", 5),
            chromium_args: env_or("UI_LOAD_CHROMIUM_ARGS", String::new())
                .split_whitespace()
                .map(str::to_string)
                .collect(),
        };
        if cfg.resources < 2 || cfg.labels == 0 {
            fail("UI_LOAD_RESOURCES must be at least 2 and UI_LOAD_LABELS at least 1");
        }
        cfg
    }

    /// Lines a second of each generator.
    fn rate(&self) -> u64 {
        (self.lines_per_sec as f64 / self.resources as f64)
            .round()
            .max(1.0) as u64
    }

    fn view_name(&self) -> &'static str {
        match self.view {
            View::All => "all resources",
            View::Resource => "one resource (gen-000)",
        }
    }
}

fn resource_name(i: usize) -> String {
    format!("gen-{i:03}")
}

/// The generators, in `cfg.labels` labels, and probe-target.
fn write_project(cfg: &Config) -> Project {
    let project = Project::new();
    let mut tiltfile = String::new();
    for i in 0..cfg.resources {
        let name = resource_name(i);
        tiltfile.push_str(&format!(
            "local_resource('{name}', serve_cmd='{}', labels=['group-{:02}'])\n",
            project.generator_cmd(&name, cfg.rate(), "ansi"),
            i % cfg.labels
        ));
    }
    tiltfile.push_str(&format!(
        "local_resource('{PROBE}', cmd='echo probe-target triggered', \
         trigger_mode=TRIGGER_MODE_MANUAL, auto_init=False, labels=['probe'])\n"
    ));
    project.write_tiltfile(&tiltfile);
    project
}

// ---------------------------------------------------------------------------------------
// The browser
// ---------------------------------------------------------------------------------------

/// chromedriver in its own process group, killed with its browsers on drop; the browsers'
/// profile directory.
struct Driver {
    child: Child,
    port: u16,
    profile: tempfile::TempDir,
}

impl Driver {
    fn start() -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap_or_else(|e| fail(&format!("no free port: {e}")))
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| fail(&format!("cannot start {CHROMEDRIVER}: {e}")));
        kill_group_on_fail(child.id() as i32);
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if start.elapsed() > Duration::from_secs(30) {
                fail("chromedriver did not listen within 30 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile = tempfile::tempdir().expect("create the browser profile directory");
        Driver {
            child,
            port,
            profile,
        }
    }

    fn pgid(&self) -> i32 {
        self.child.id() as i32
    }

    async fn browser(&self, extra_args: &[String]) -> Client {
        let mut args: Vec<String> = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--window-size=1280,800",
            "--enable-precise-memory-info",
        ]
        .map(String::from)
        .into();
        args.push(format!("--user-data-dir={}", self.profile.path().display()));
        args.extend_from_slice(extra_args);
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({ "binary": CHROMIUM, "args": args }),
        );
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .unwrap_or_else(|e| fail(&format!("cannot start a browser session: {e}")))
    }

    /// The browser's processes (chromedriver's group, without chromedriver).
    fn browser_pids(&self) -> Vec<i32> {
        let pgid = self.pgid().to_string();
        all_pids()
            .into_iter()
            .filter(|&p| p != self.pgid())
            .filter(|&p| stat_fields(p).is_some_and(|f| f.get(2) == Some(&pgid)))
            .collect()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        kill_group_on_fail(0);
        signal(-self.pgid(), libc::SIGKILL);
        let _ = self.child.wait();
    }
}

/// Chrome DevTools Protocol commands through chromedriver's `goog/cdp/execute`.
struct Cdp {
    agent: ureq::Agent,
    url: String,
}

impl Cdp {
    async fn new(driver: &Driver, browser: &Client) -> Cdp {
        let id = browser
            .session_id()
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| fail("the WebDriver session has no id"));
        Cdp {
            agent: support::agent(),
            url: format!(
                "http://127.0.0.1:{}/session/{id}/goog/cdp/execute",
                driver.port
            ),
        }
    }

    fn call(&self, cmd: &str, params: Value) -> Result<Value, String> {
        let mut response = self
            .agent
            .post(&self.url)
            .send_json(json!({ "cmd": cmd, "params": params }))
            .map_err(|e| format!("{cmd}: {e}"))?;
        let status = response.status();
        let body = response
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_string()
            .map_err(|e| format!("{cmd}: reading the answer: {e}"))?;
        if status != 200 {
            return Err(format!("{cmd}: {status}: {}", truncate(&body, 300)));
        }
        let v: Value = serde_json::from_str(&body).map_err(|e| format!("{cmd}: bad JSON: {e}"))?;
        Ok(v["value"].clone())
    }

    /// `Performance.getMetrics` as a map (durations in seconds).
    fn metrics(&self) -> HashMap<String, f64> {
        let Ok(v) = self.call("Performance.getMetrics", json!({})) else {
            return HashMap::new();
        };
        v["metrics"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| Some((m["name"].as_str()?.to_string(), m["value"].as_f64()?)))
            .collect()
    }
}

fn truncate(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

async fn js(browser: &Client, script: &str, args: Vec<Value>) -> Value {
    browser
        .execute(script, args)
        .await
        .unwrap_or_else(|e| fail(&format!("script failed: {e}\n{}", truncate(script, 200))))
}

async fn js_async(browser: &Client, script: &str, args: Vec<Value>) -> Value {
    browser
        .execute_async(script, args)
        .await
        .unwrap_or_else(|e| fail(&format!("script failed: {e}\n{}", truncate(script, 200))))
}

/// The responsiveness monitor: a 50 ms `setTimeout` chain records its lateness, a
/// `requestAnimationFrame` loop the frame intervals (and the lines then in `#log`), a
/// `PerformanceObserver` the long tasks; all as [ms since start, value...]. View switches
/// record their [start, end] in `busy`; `resets` are the times `#log` was emptied at once
/// (`replaceChildren()`: the record has no sibling on either side).
const MONITOR_JS: &str = r#"
const m = window.__uiload = { lag: [], frames: [], longtasks: [], busy: [], resets: [], on: true,
  t0: performance.now(), longtaskSupported: false };
const log = document.getElementById('log');
const lines = () => { let n = 0; for (let c = log.firstElementChild; c; c = c.nextElementSibling) n += c.childElementCount; return n; };
m.mo = new MutationObserver((records) => {
  for (const r of records) {
    if (r.removedNodes.length && !r.previousSibling && !r.nextSibling) m.resets.push([performance.now() - m.t0, r.removedNodes.length]);
  }
});
m.mo.observe(log, { childList: true });
const PERIOD = 50;
let due = performance.now() + PERIOD;
const tick = () => {
  const now = performance.now();
  m.lag.push([now - m.t0, Math.max(0, now - due)]);
  due = now + PERIOD;
  if (m.on) setTimeout(tick, PERIOD);
};
setTimeout(tick, PERIOD);
let last = -1;
const frame = (t) => {
  if (last >= 0) m.frames.push([t - m.t0, t - last, lines()]);
  last = t;
  if (m.on) requestAnimationFrame(frame);
};
requestAnimationFrame(frame);
if (typeof PerformanceObserver === 'function'
    && (PerformanceObserver.supportedEntryTypes || []).includes('longtask')) {
  m.longtaskSupported = true;
  m.po = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) m.longtasks.push([e.startTime - m.t0, e.duration]);
  });
  m.po.observe({ type: 'longtask' });
}
return true;
"#;

const MONITOR_STOP_JS: &str = r#"
const m = window.__uiload;
m.on = false;
m.mo.disconnect();
if (m.po) { for (const e of m.po.takeRecords()) m.longtasks.push([e.startTime - m.t0, e.duration]); m.po.disconnect(); }
return { lag: m.lag, frames: m.frames, longtasks: m.longtasks, busy: m.busy, resets: m.resets,
  longtaskSupported: m.longtaskSupported, elapsed: performance.now() - m.t0 };
"#;

/// Clicks the trigger button of the row `arguments[0]` and answers when the row's
/// `data-status` is next set (`ms`), and at the frame after that (`frame_ms`).
const CLICK_JS: &str = r#"
const [name, done] = arguments;
const row = document.querySelector('[data-resource="' + CSS.escape(name) + '"]');
const btn = row && row.querySelector('[data-action="trigger"]');
if (!btn) { done({ error: 'no trigger button for ' + name }); return; }
const before = row.getAttribute('data-status');
let t0 = 0, finished = false;
const finish = (r) => {
  if (finished) return;
  finished = true; obs.disconnect(); clearTimeout(timer); done(r);
};
const obs = new MutationObserver(() => {
  const ms = performance.now() - t0, after = row.getAttribute('data-status');
  obs.disconnect();
  requestAnimationFrame(() => finish({ ms, frame_ms: performance.now() - t0, before, after }));
});
const timer = setTimeout(() => finish({ ms: null, before, after: row.getAttribute('data-status') }), 5000);
obs.observe(row, { attributes: true, attributeFilter: ['data-status'] });
t0 = performance.now();
btn.click();
"#;

/// Clicks `arguments[0]` and answers when `#log` gets a line matching `arguments[1]`.
const SWITCH_JS: &str = r#"
const [sel, lineSel, done] = arguments;
const m = window.__uiload;
const target = document.querySelector(sel);
const log = document.getElementById('log');
if (!target) { done({ error: 'no element ' + sel }); return; }
let t0 = 0, finished = false;
const finish = (r) => {
  if (finished) return;
  finished = true; obs.disconnect(); clearTimeout(timer);
  if (m) m.busy.push([t0 - m.t0, performance.now() - m.t0]);
  done(r);
};
const hit = (n) => n.nodeType === 1 && (n.matches(lineSel) || !!n.querySelector(lineSel));
const obs = new MutationObserver((records) => {
  for (const r of records) {
    for (const n of r.addedNodes) {
      if (hit(n)) {
        const ms = performance.now() - t0;
        obs.disconnect();
        requestAnimationFrame(() => finish({ ms, frame_ms: performance.now() - t0 }));
        return;
      }
    }
  }
});
const timer = setTimeout(() => finish({ ms: null }), 10000);
obs.observe(log, { childList: true, subtree: true });
t0 = performance.now();
target.click();
"#;

/// A sample of the page: log lines in the DOM, heap, how old the newest received line and
/// the newest shown line are.
const SAMPLE_JS: &str = r#"
const v = window.tiltrs && window.tiltrs.view;
const log = document.getElementById('log');
const out = { dom_lines: log.querySelectorAll('.log-line').length,
  nodes: document.getElementsByTagName('*').length,
  heap: performance.memory ? performance.memory.usedJSHeapSize : null,
  follow: v ? v.follow : null, mem_lines: v ? v.lines.length : null,
  last_seq: v ? v.lastSeq : null, newest_age: null, shown_age: null };
if (v && v.lines.length) {
  const now = Date.now();
  out.newest_age = now - v.lines[v.lines.length - 1].time;
  const shown = log.lastElementChild && log.lastElementChild.lastElementChild;
  if (shown && typeof shown._seq === 'number') {
    let lo = 0, hi = v.lines.length;
    while (lo < hi) { const mid = (lo + hi) >> 1; if (v.lines[mid].seq < shown._seq) lo = mid + 1; else hi = mid; }
    const l = v.lines[lo];
    if (l && l.seq === shown._seq) out.shown_age = now - l.time;
  }
}
return out;
"#;

const ROWS_JS: &str = "return document.querySelectorAll('#resource-list [data-resource]').length;";

fn row_selector(name: &str) -> String {
    format!(r#"[data-resource="{name}"] .resource-name"#)
}

fn span_line_selector(name: &str) -> String {
    format!(r#".log-line[data-span="{name}"]"#)
}

/// The view measured: its button and a selector matching its log lines.
fn home(cfg: &Config) -> (String, String) {
    match cfg.view {
        View::All => ("[data-resource-all]".into(), ".log-line.with-prefix".into()),
        View::Resource => (
            row_selector(&resource_name(0)),
            span_line_selector(&resource_name(0)),
        ),
    }
}

// ---------------------------------------------------------------------------------------
// The measurement
// ---------------------------------------------------------------------------------------

#[derive(Default)]
struct Timed {
    ms: Vec<f64>,
    frame_ms: Vec<f64>,
    timeouts: usize,
    errors: Vec<String>,
}

impl Timed {
    fn add(&mut self, v: &Value) {
        if let Some(e) = v["error"].as_str() {
            self.errors.push(e.to_string());
        } else if let Some(ms) = v["ms"].as_f64() {
            self.ms.push(ms);
            if let Some(f) = v["frame_ms"].as_f64() {
                self.frame_ms.push(f);
            }
        } else {
            self.timeouts += 1;
        }
    }
}

/// Per-process CPU seconds at one moment.
#[derive(Clone, Copy, Default)]
struct Cpu {
    tiltrs: f64,
    generators: f64,
    renderer: f64,
    chromium_other: f64,
    chromedriver: f64,
    bench: f64,
}

impl Cpu {
    fn read(session_pid: i32, generators: &[i32], driver: &Driver) -> Cpu {
        let (mut renderer, mut other) = (0.0, 0.0);
        for pid in driver.browser_pids() {
            let t = cpu_secs(pid).unwrap_or(0.0);
            if cmdline(pid).is_some_and(|c| c.contains("--type=renderer")) {
                renderer += t;
            } else {
                other += t;
            }
        }
        Cpu {
            tiltrs: cpu_secs(session_pid).unwrap_or(0.0),
            generators: total_cpu(generators),
            renderer,
            chromium_other: other,
            chromedriver: cpu_secs(driver.pgid()).unwrap_or(0.0),
            bench: cpu_secs(0).unwrap_or(0.0),
        }
    }

    fn minus(self, o: Cpu) -> Cpu {
        Cpu {
            tiltrs: self.tiltrs - o.tiltrs,
            generators: self.generators - o.generators,
            renderer: self.renderer - o.renderer,
            chromium_other: self.chromium_other - o.chromium_other,
            chromedriver: self.chromedriver - o.chromedriver,
            bench: self.bench - o.bench,
        }
    }
}

/// What the window measured.
struct Measured {
    wall: Duration,
    page_ready: Duration,
    start_seq: u64,
    end_seq: u64,
    /// The time between the reads of `start_seq` and `end_seq`.
    seq_time: Duration,
    session_end: Value,
    monitor: Value,
    samples: Vec<Value>,
    clicks: Timed,
    click_statuses: HashMap<String, usize>,
    to_other: Timed,
    to_home: Timed,
    metrics0: HashMap<String, f64>,
    metrics1: HashMap<String, f64>,
    cpu: Cpu,
    tiltrs_rss_kib: Vec<u64>,
    renderer_rss_kib: u64,
    renderers: usize,
    profile: Option<Result<Value, String>>,
}

async fn measure(
    cfg: &Config,
    driver: &Driver,
    api: &Api,
    session: &Session,
    marker: &str,
) -> Measured {
    let browser = driver.browser(&cfg.chromium_args).await;
    let cdp = Cdp::new(driver, &browser).await;
    let opened = Instant::now();
    browser
        .goto(&format!("http://127.0.0.1:{}/", session.port))
        .await
        .unwrap_or_else(|e| fail(&format!("cannot open the UI: {e}")));
    let want = cfg.resources as u64 + 1;
    loop {
        if js(&browser, ROWS_JS, vec![]).await.as_u64() == Some(want) {
            break;
        }
        if opened.elapsed() > Duration::from_secs(120) {
            fail(&format!(
                "the UI did not list {want} resources within 120 s"
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let page_ready = opened.elapsed();
    let (home_sel, home_lines) = home(cfg);
    if cfg.view == View::Resource {
        let r = js_async(
            &browser,
            SWITCH_JS,
            vec![json!(home_sel), json!(home_lines)],
        )
        .await;
        if r["ms"].is_null() {
            fail(&format!("the measured view did not show its lines: {r}"));
        }
    }
    eprintln!(
        "ui_load: {want} rows shown after {:.1} s; warming up for {} s",
        page_ready.as_secs_f64(),
        cfg.warmup_secs
    );
    tokio::time::sleep(Duration::from_secs(cfg.warmup_secs)).await;

    let generators = marked_pids(marker);
    let _ = cdp.call("Performance.enable", json!({}));
    let metrics0 = cdp.metrics();
    let start_seq = logs_field(&api.session(), "last_seq");
    let seq_start = Instant::now();
    let cpu0 = Cpu::read(session.pid, &generators, driver);
    let stop = Arc::new(AtomicBool::new(false));
    let rss = sample_rss(session.pid, stop.clone());
    js(&browser, MONITOR_JS, vec![]).await;
    let start = Instant::now();
    let window = Duration::from_secs(cfg.secs);

    let mut samples = vec![js(&browser, SAMPLE_JS, vec![]).await];
    let (mut clicks, mut to_other, mut to_home) =
        (Timed::default(), Timed::default(), Timed::default());
    let mut click_statuses = HashMap::new();
    let mut round = 0usize;
    while start.elapsed() + Duration::from_millis(500) < window {
        let round_start = Instant::now();
        let r = js_async(&browser, CLICK_JS, vec![json!(PROBE)]).await;
        clicks.add(&r);
        let seen = r["after"].as_str().unwrap_or("?").to_string();
        *click_statuses.entry(seen).or_insert(0) += 1;
        // Another resource, a different one each round.
        let other = resource_name(1 + (round * 7) % (cfg.resources - 1));
        let r = js_async(
            &browser,
            SWITCH_JS,
            vec![
                json!(row_selector(&other)),
                json!(span_line_selector(&other)),
            ],
        )
        .await;
        to_other.add(&r);
        let r = js_async(
            &browser,
            SWITCH_JS,
            vec![json!(home_sel), json!(home_lines)],
        )
        .await;
        to_home.add(&r);
        samples.push(js(&browser, SAMPLE_JS, vec![]).await);
        round += 1;
        let next = round_start + CYCLE;
        let deadline = start + window;
        tokio::time::sleep_until(next.min(deadline).into()).await;
    }
    tokio::time::sleep_until((start + window).into()).await;
    let monitor = js(&browser, MONITOR_STOP_JS, vec![]).await;
    samples.push(js(&browser, SAMPLE_JS, vec![]).await);
    let wall = start.elapsed();
    let cpu1 = Cpu::read(session.pid, &generators, driver);
    let metrics1 = cdp.metrics();
    let session_end = api.session();
    let end_seq = logs_field(&session_end, "last_seq");
    let seq_time = seq_start.elapsed();
    stop.store(true, Ordering::Release);
    let tiltrs_rss_kib = rss.join().unwrap_or_default();
    let renderers: Vec<i32> = driver
        .browser_pids()
        .into_iter()
        .filter(|&p| cmdline(p).is_some_and(|c| c.contains("--type=renderer")))
        .collect();
    let renderer_rss_kib = renderers
        .iter()
        .filter_map(|&p| status_kib(p, "VmRSS:"))
        .sum();

    let profile = if cfg.profile_secs > 0 {
        eprintln!("ui_load: profiling the page for {} s", cfg.profile_secs);
        Some(profile(&cdp, Duration::from_secs(cfg.profile_secs)).await)
    } else {
        None
    };
    let _ = browser.close().await;
    Measured {
        wall,
        page_ready,
        start_seq,
        end_seq,
        seq_time,
        session_end,
        monitor,
        samples,
        clicks,
        click_statuses,
        to_other,
        to_home,
        metrics0,
        metrics1,
        cpu: cpu1.minus(cpu0),
        tiltrs_rss_kib,
        renderer_rss_kib,
        renderers: renderers.len(),
        profile,
    }
}

/// A sampling CPU profile of the page over `secs` (CDP `Profiler`).
async fn profile(cdp: &Cdp, secs: Duration) -> Result<Value, String> {
    cdp.call("Profiler.enable", json!({}))?;
    cdp.call("Profiler.setSamplingInterval", json!({ "interval": 500 }))?;
    cdp.call("Profiler.start", json!({}))?;
    tokio::time::sleep(secs).await;
    let v = cdp.call("Profiler.stop", json!({}))?;
    let _ = cdp.call("Profiler.disable", json!({}));
    Ok(v["profile"].clone())
}

// ---------------------------------------------------------------------------------------
// The report
// ---------------------------------------------------------------------------------------

/// `[[t, value], ...]` as pairs.
fn pairs(v: &Value) -> Vec<(f64, f64)> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| Some((p[0].as_f64()?, p[1].as_f64()?)))
        .collect()
}

fn stats(values: &[f64]) -> String {
    let s = sorted(values);
    format!(
        "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&s, 50.0),
        percentile(&s, 99.0),
        s.last().copied().unwrap_or(f64::NAN)
    )
}

fn timed_line(label: &str, t: &Timed) -> String {
    let s = sorted(&t.ms);
    let f = sorted(&t.frame_ms);
    let mut line = format!(
        "{label}{} runs: p50 {:.0} ms, max {:.0} ms (to the next frame: p50 {:.0} ms, max {:.0} ms)",
        s.len(),
        percentile(&s, 50.0),
        s.last().copied().unwrap_or(f64::NAN),
        percentile(&f, 50.0),
        f.last().copied().unwrap_or(f64::NAN),
    );
    if t.timeouts > 0 {
        line.push_str(&format!(", {} timed out", t.timeouts));
    }
    for e in &t.errors {
        line.push_str(&format!("; error: {e}"));
    }
    line
}

fn sample_values(samples: &[Value], field: &str) -> Vec<f64> {
    samples.iter().filter_map(|s| s[field].as_f64()).collect()
}

/// Prints the report; returns the failed checks.
fn report(cfg: &Config, m: &Measured, e: &Ending) -> Vec<String> {
    let secs = m.wall.as_secs_f64();
    let produced = m.end_seq.saturating_sub(m.start_seq);
    println!("== ui_load ==");
    println!(
        "load:        {} resources in {} labels x {} lines/s ({} lines/s asked, ANSI colours) \
         + {PROBE}; view: {}; {:.1} s",
        cfg.resources,
        cfg.labels.min(cfg.resources),
        cfg.rate(),
        cfg.rate() * cfg.resources as u64,
        cfg.view_name(),
        secs
    );
    println!(
        "produced:    session seq {}..{}: {} lines in {:.1} s, {:.0} lines/s",
        m.start_seq,
        m.end_seq,
        produced,
        m.seq_time.as_secs_f64(),
        produced as f64 / m.seq_time.as_secs_f64()
    );
    println!(
        "page:        {} rows shown {:.1} s after opening the UI",
        cfg.resources + 1,
        m.page_ready.as_secs_f64()
    );

    // Responsiveness; "steady" leaves out view switches and SWITCH_TAIL_MS after them.
    let busy = pairs(&m.monitor["busy"]);
    let steady = |t: f64| !busy.iter().any(|&(a, b)| t >= a && t <= b + SWITCH_TAIL_MS);
    let lag = pairs(&m.monitor["lag"]);
    let lag_all: Vec<f64> = lag.iter().map(|p| p.1).collect();
    let lag_steady: Vec<f64> = lag.iter().filter(|p| steady(p.0)).map(|p| p.1).collect();
    println!(
        "event loop:  lag of a 50 ms timer, {} samples: {}",
        lag_all.len(),
        stats(&lag_all)
    );
    println!(
        "             outside view switches ({} samples): {}",
        lag_steady.len(),
        stats(&lag_steady)
    );
    let frames = pairs(&m.monitor["frames"]);
    let fr_all: Vec<f64> = frames.iter().map(|p| p.1).collect();
    let fr_steady: Vec<f64> = frames.iter().filter(|p| steady(p.0)).map(|p| p.1).collect();
    let elapsed_s = m.monitor["elapsed"].as_f64().unwrap_or(f64::NAN) / 1e3;
    println!(
        "frames:      {} frames ({:.1} fps): interval {}",
        fr_all.len(),
        fr_all.len() as f64 / elapsed_s,
        stats(&fr_all)
    );
    println!(
        "             outside view switches ({} frames): {}",
        fr_steady.len(),
        stats(&fr_steady)
    );
    let resets = pairs(&m.monitor["resets"]);
    let steady_resets = resets.iter().filter(|p| steady(p.0)).count();
    let steady_secs = fr_steady.iter().sum::<f64>() / 1e3;
    let in_log: Vec<f64> = m.monitor["frames"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f[0].as_f64().is_some_and(steady))
        .filter_map(|f| f[2].as_f64())
        .collect();
    let in_log = sorted(&in_log);
    println!(
        "log resets:  #log emptied and refilled {} times ({} outside view switches, {:.1}/s); \
         lines in #log at a frame outside switches: p10 {:.0}, p50 {:.0}, max {:.0}",
        resets.len(),
        steady_resets,
        steady_resets as f64 / steady_secs,
        percentile(&in_log, 10.0),
        percentile(&in_log, 50.0),
        in_log.last().copied().unwrap_or(f64::NAN)
    );
    let long = pairs(&m.monitor["longtasks"]);
    if m.monitor["longtaskSupported"].as_bool() == Some(true) {
        let total: f64 = long.iter().map(|p| p.1).sum();
        let steady_long: Vec<f64> = long.iter().filter(|p| steady(p.0)).map(|p| p.1).collect();
        println!(
            "long tasks:  {} (total {:.0} ms = {:.1}% of the window, max {:.0} ms); \
             outside view switches {} (total {:.0} ms)",
            long.len(),
            total,
            total / (elapsed_s * 10.0),
            long.iter().map(|p| p.1).fold(0.0, f64::max),
            steady_long.len(),
            steady_long.iter().sum::<f64>() + 0.0
        );
    } else {
        println!("long tasks:  not supported by this browser");
    }
    let statuses: Vec<String> = {
        let mut v: Vec<_> = m.click_statuses.iter().collect();
        v.sort();
        v.iter().map(|(k, n)| format!("{k} {n}")).collect()
    };
    println!(
        "{} (statuses seen: {})",
        timed_line("click→status: ", &m.clicks),
        statuses.join(", ")
    );
    println!(
        "{}",
        timed_line("switch→lines: to a resource, ", &m.to_other)
    );
    println!(
        "{}",
        timed_line(
            &format!("              back to {}, ", cfg.view_name()),
            &m.to_home
        )
    );

    let heap = sample_values(&m.samples, "heap");
    let dom = sample_values(&m.samples, "dom_lines");
    let dom_max = dom.iter().copied().fold(0.0, f64::max) as u64;
    let dom_end = dom.last().copied().unwrap_or(f64::NAN) as u64;
    let last = m.samples.last().cloned().unwrap_or(Value::Null);
    println!(
        "js heap:     start {:.1} MiB, end {:.1} MiB, max {:.1} MiB",
        mib(heap.first().copied().unwrap_or(0.0) as u64),
        mib(heap.last().copied().unwrap_or(0.0) as u64),
        mib(heap.iter().copied().fold(0.0, f64::max) as u64)
    );
    println!(
        "dom:         #log .log-line at end {dom_end} (max {dom_max} in {} samples); \
         elements at end {}; following: {}; lines in memory {}",
        dom.len(),
        last["nodes"],
        last["follow"],
        last["mem_lines"]
    );
    let newest = sample_values(&m.samples, "newest_age");
    let shown = sample_values(&m.samples, "shown_age");
    println!(
        "freshness:   age of the newest line received {}; shown {}",
        stats(&newest),
        stats(&shown)
    );

    let metric = |k: &str| {
        m.metrics1.get(k).copied().unwrap_or(f64::NAN)
            - m.metrics0.get(k).copied().unwrap_or(f64::NAN)
    };
    if m.metrics1.is_empty() {
        println!("renderer:    CDP Performance.getMetrics unavailable");
    } else {
        println!(
            "renderer:    main thread busy {:.0}% (tasks {:.2} s/s): script {:.2} s/s, style {:.2} s/s \
             ({:.0} recalcs), layout {:.2} s/s ({:.0} layouts), other {:.2} s/s",
            metric("TaskDuration") / secs * 100.0,
            metric("TaskDuration") / secs,
            metric("ScriptDuration") / secs,
            metric("RecalcStyleDuration") / secs,
            metric("RecalcStyleCount"),
            metric("LayoutDuration") / secs,
            metric("LayoutCount"),
            metric("TaskOtherDuration") / secs,
        );
    }
    let c = &m.cpu;
    println!(
        "cpu:         tiltrs {:.2} s/s, generators {:.2} s/s, chromium renderer {:.2} s/s, \
         chromium other {:.2} s/s, chromedriver {:.2} s/s, bench {:.2} s/s (2 cores = 2.00)",
        c.tiltrs / secs,
        c.generators / secs,
        c.renderer / secs,
        c.chromium_other / secs,
        c.chromedriver / secs,
        c.bench / secs
    );
    let rss = &m.tiltrs_rss_kib;
    println!(
        "memory:      tiltrs RSS start {:.1} MiB, peak {:.1} MiB, end {:.1} MiB; \
         renderer RSS at end {:.1} MiB ({} processes); logs kept {:.1} of {:.1} MiB, dropped lines {}",
        rss.first().copied().unwrap_or(0) as f64 / 1024.0,
        rss.iter().max().copied().unwrap_or(0) as f64 / 1024.0,
        rss.last().copied().unwrap_or(0) as f64 / 1024.0,
        m.renderer_rss_kib as f64 / 1024.0,
        m.renderers,
        mib(logs_field(&m.session_end, "used_bytes")),
        mib(logs_field(&m.session_end, "limit_bytes")),
        logs_field(&m.session_end, "dropped_lines")
    );
    match &m.profile {
        None => {}
        Some(Err(err)) => println!("profile:     unavailable: {err}"),
        Some(Ok(p)) => print_profile(p, cfg.profile_secs),
    }
    println!(
        "shutdown:    tiltrs {} in {:.0} ms{}; leftover generators {}; stdout drained {} lines \
         ({:.1} MiB)",
        e.exit.map_or("no status".into(), |s| s.to_string()),
        e.stop_time.as_secs_f64() * 1e3,
        if e.killed { " (SIGKILL needed)" } else { "" },
        e.leftovers,
        e.stdout.lines,
        mib(e.stdout.bytes)
    );

    let mut failed = Vec::new();
    let click_max = m.clicks.ms.iter().copied().fold(0.0, f64::max);
    if m.clicks.ms.is_empty() || m.clicks.timeouts > 0 || !m.clicks.errors.is_empty() {
        failed.push(format!(
            "clicks: {} measured, {} never showed, errors {:?}",
            m.clicks.ms.len(),
            m.clicks.timeouts,
            m.clicks.errors
        ));
    }
    if click_max > CLICK_LIMIT_MS {
        failed.push(format!(
            "click→status max {click_max:.0} ms > {CLICK_LIMIT_MS} ms"
        ));
    }
    if dom_max > DOM_LINES_LIMIT {
        failed.push(format!("#log held {dom_max} lines > {DOM_LINES_LIMIT}"));
    }
    failed
}

/// The profile's top functions by self time, and app.js's by total time.
fn print_profile(p: &Value, secs: u64) {
    let nodes = p["nodes"].as_array().cloned().unwrap_or_default();
    let mut key_of = HashMap::new();
    let mut parent = HashMap::new();
    for n in &nodes {
        let Some(id) = n["id"].as_u64() else { continue };
        let f = &n["callFrame"];
        let name = f["functionName"].as_str().unwrap_or("");
        let url = f["url"].as_str().unwrap_or("");
        let file = url.rsplit('/').next().unwrap_or("");
        let key = if file.is_empty() {
            if name.is_empty() {
                "(anonymous)".to_string()
            } else {
                name.to_string()
            }
        } else {
            format!(
                "{} {}:{}",
                if name.is_empty() { "(anonymous)" } else { name },
                file,
                f["lineNumber"].as_i64().unwrap_or(-1) + 1
            )
        };
        key_of.insert(id, key);
        for c in n["children"].as_array().into_iter().flatten() {
            if let Some(c) = c.as_u64() {
                parent.insert(c, id);
            }
        }
    }
    let samples = p["samples"].as_array().cloned().unwrap_or_default();
    let deltas = p["timeDeltas"].as_array().cloned().unwrap_or_default();
    let (mut selfs, mut totals): (HashMap<&str, f64>, HashMap<&str, f64>) = Default::default();
    let mut sum = 0.0;
    // The delta before sample i+1 is the time spent in sample i.
    for (i, s) in samples.iter().enumerate() {
        let Some(id) = s.as_u64() else { continue };
        let us = deltas
            .get(i + 1)
            .and_then(Value::as_f64)
            .unwrap_or(0.0)
            .max(0.0);
        sum += us;
        let Some(key) = key_of.get(&id) else { continue };
        *selfs.entry(key).or_default() += us;
        let mut seen = Vec::new();
        let mut cur = Some(id);
        while let Some(n) = cur {
            if let Some(k) = key_of.get(&n)
                && !seen.contains(&k.as_str())
            {
                seen.push(k.as_str());
                *totals.entry(k.as_str()).or_default() += us;
            }
            cur = parent.get(&n).copied();
        }
    }
    if sum <= 0.0 {
        println!("profile:     empty");
        return;
    }
    let pct = |us: f64| us / sum * 100.0;
    let idle = selfs.get("(idle)").copied().unwrap_or(0.0);
    println!(
        "profile:     {secs} s after the window, same load, no clicks; main thread {:.0}% busy \
         ((idle) {:.0}%); self time:",
        100.0 - pct(idle),
        pct(idle)
    );
    let mut by_self: Vec<_> = selfs.iter().filter(|(k, _)| **k != "(idle)").collect();
    by_self.sort_by(|a, b| b.1.total_cmp(a.1));
    for (k, us) in by_self.iter().take(14) {
        println!("               {:5.1}%  {k}", pct(**us));
    }
    let mut by_total: Vec<_> = totals
        .iter()
        .filter(|(k, _)| k.contains("app.js"))
        .collect();
    by_total.sort_by(|a, b| b.1.total_cmp(a.1));
    println!("             app.js total (self + callees):");
    for (k, us) in by_total.iter().take(10) {
        println!("               {:5.1}%  {k}", pct(**us));
    }
}

// ---------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------

struct Ending {
    exit: Option<ExitStatus>,
    stop_time: Duration,
    killed: bool,
    leftovers: usize,
    stdout: Drained,
}

fn main() {
    if support::filtered_out() {
        return;
    }
    for tool in [CHROMIUM, CHROMEDRIVER] {
        if !Path::new(tool).exists() {
            fail(&format!(
                "{tool} is missing: this bench drives Debian's chromium through chromedriver \
                 (apt install chromium chromium-driver)"
            ));
        }
    }
    let cfg = Config::from_env();
    let project = write_project(&cfg);
    let mut session = start_tiltrs(&cfg.bin, &project, &[]);
    let api = Api::new(session.port);
    let ready = wait_ready(
        &api,
        cfg.resources + 1,
        cfg.resources,
        Duration::from_secs(180),
    );
    eprintln!(
        "ui_load: {} resources running on port {} after {:.1} s; opening the UI",
        cfg.resources,
        session.port,
        ready.as_secs_f64()
    );
    let driver = Driver::start();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let measured = runtime.block_on(measure(&cfg, &driver, &api, &session, &project.marker));
    drop(runtime);
    drop(driver);
    let (exit, stop_time, killed) = stop_tiltrs(&mut session.child, session.pid);
    let leftovers = marked_pids(&project.marker);
    for &pid in &leftovers {
        signal(pid, libc::SIGKILL);
    }
    let ending = Ending {
        exit,
        stop_time,
        killed,
        leftovers: leftovers.len(),
        stdout: session.stdout.join().unwrap_or_default(),
    };
    let failed = report(&cfg, &measured, &ending);
    if !failed.is_empty() {
        println!("FAILED:");
        for f in &failed {
            println!("  {f}");
        }
        std::process::exit(1);
    }
    println!("ok");
}
