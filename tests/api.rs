//! End-to-end tests of the HTTP API of `tiltrs up` and of the CLI commands that use it: every
//! endpoint, the Host check and the token, log streams that resume without losing or
//! repeating a line, and bounded log memory that reports what it dropped.

mod engine_support;

use std::io::{BufRead, BufReader, Read};
use std::time::Duration;

use engine_support::*;
use serde_json::Value;

/// A plain HTTP client for one session.
struct Api {
    agent: ureq::Agent,
    port: u16,
}

/// One server-sent event.
#[derive(Debug, Default, Clone)]
struct Sse {
    event: String,
    id: Option<String>,
    data: String,
}

impl Api {
    fn new(up: &Up) -> Api {
        Api {
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build()
                .into(),
            port: up.port(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn get(&self, path: &str) -> (u16, Value) {
        let mut r = self.agent.get(self.url(path)).call().expect("GET");
        let status = r.status().as_u16();
        let body = r.body_mut().read_to_string().expect("body");
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    fn ok(&self, path: &str) -> Value {
        let (status, body) = self.get(path);
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    fn post(&self, path: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
        let mut req = self.agent.post(self.url(path));
        if let Some(t) = token {
            req = req.header("X-Tiltrs-Token", t);
        }
        let mut r = req.send_json(body).expect("POST");
        let status = r.status().as_u16();
        let text = r.body_mut().read_to_string().expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    fn resource(&self, name: &str) -> Value {
        self.ok(&format!("/api/resources/{name}"))
    }

    /// Waits until `name`'s `field` is `value`.
    fn wait_field(&self, name: &str, field: &str, value: Value) -> Value {
        wait_until(|| {
            // 404 until the Tiltfile has loaded.
            let (_, r) = self.get(&format!("/api/resources/{name}"));
            (r[field] == value).then_some(r)
        })
        .unwrap_or_else(|| {
            panic!(
                "{name}.{field} never became {value}: {}",
                self.resource(name)
            )
        })
    }

    /// Opens an event stream.
    fn stream(&self, path: &str, last_event_id: Option<&str>) -> SseReader {
        let mut req = self.agent.get(self.url(path));
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id);
        }
        let r = req.call().expect("stream");
        assert_eq!(r.status().as_u16(), 200);
        SseReader {
            lines: BufReader::new(Box::new(r.into_body().into_reader())),
        }
    }
}

struct SseReader {
    lines: BufReader<Box<dyn Read + Send>>,
}

impl SseReader {
    fn next_event(&mut self) -> Sse {
        let mut event = Sse::default();
        loop {
            let mut line = String::new();
            let n = self.lines.read_line(&mut line).expect("read stream");
            assert!(n > 0, "stream ended");
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if !event.data.is_empty() {
                    return event;
                }
                continue;
            }
            if let Some(v) = line.strip_prefix("event: ") {
                event.event = v.to_string();
            } else if let Some(v) = line.strip_prefix("id: ") {
                event.id = Some(v.to_string());
            } else if let Some(v) = line.strip_prefix("data: ") {
                event.data.push_str(v);
            }
        }
    }

    /// The next `lines` event's lines.
    fn next_lines(&mut self) -> (Option<String>, Vec<Value>) {
        loop {
            let e = self.next_event();
            if e.event == "lines" {
                let lines: Vec<Value> = serde_json::from_str(&e.data).expect("lines json");
                return (e.id, lines);
            }
        }
    }
}

fn session_token(p: &Project, port: u16) -> String {
    let path = p.root.path().join(format!(".tiltrs/sessions/{port}.json"));
    let text = std::fs::read_to_string(&path).expect("session file");
    let v: Value = serde_json::from_str(&text).expect("session json");
    v["token"].as_str().expect("token").to_string()
}

fn texts(lines: &[Value]) -> Vec<String> {
    lines
        .iter()
        .map(|l| l["text"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn session_resources_and_logs_are_served() {
    let m = marker();
    let p = Project::new(&format!(
        r#"
local_resource('good', cmd='echo good-output')
local_resource('bad', cmd='echo bad-output; exit 3')
local_resource('man', cmd='echo run >> {{out}}/man', trigger_mode=TRIGGER_MODE_MANUAL, auto_init=False)
local_resource('srv', serve_cmd='echo serving; exec sleep {m}', labels=['backend'],
  links=[link('http://localhost:1234/', 'docs')])
"#
    ));
    let up = Up::start(&p, &[]);
    let api = Api::new(&up);

    let good = api.wait_field("good", "status", "ok".into());
    assert_eq!(good["type"], "local");
    assert_eq!(good["last_build"]["result"], "success");
    assert_eq!(good["last_build"]["reason"], "Initial Build");
    let bad = api.wait_field("bad", "status", "error".into());
    assert!(
        bad["last_error"].as_str().unwrap_or("").contains('3'),
        "{bad}"
    );
    let man = api.resource("man");
    assert_eq!(man["status"], "none");
    assert_eq!(man["trigger_mode"], "manual");
    let srv = api.wait_field("srv", "ready", true.into());
    assert_eq!(srv["labels"][0], "backend");
    assert_eq!(srv["links"][0]["url"], "http://localhost:1234/");
    assert!(srv["runtime"]["pid"].as_i64().is_some(), "{srv}");

    let list = api.ok("/api/resources");
    let names: Vec<&str> = list["resources"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(names, ["good", "bad", "man", "srv"]);
    let (status, body) = api.get("/api/resources/nope");
    assert_eq!(status, 404);
    assert!(body["error"].as_str().unwrap_or("").contains("nope"));

    let session = api.ok("/api/session");
    assert_eq!(session["pid"].as_u64(), Some(up.pid() as u64));
    assert!(
        session["tiltfile"]["loaded_once"]
            .as_bool()
            .unwrap_or(false)
    );
    assert!(session["logs"]["limit_bytes"].as_u64().unwrap_or(0) > 0);

    let logs = api.ok("/api/logs?resource=good&resource=bad");
    let lines = logs["lines"].as_array().expect("lines");
    let all = texts(lines);
    assert!(all.contains(&"good-output".to_string()), "{all:?}");
    assert!(all.contains(&"bad-output".to_string()), "{all:?}");
    assert!(
        lines
            .iter()
            .all(|l| l["span"] == "good" || l["span"] == "bad"),
        "{logs}"
    );
    let seqs: Vec<u64> = lines.iter().filter_map(|l| l["seq"].as_u64()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let newest = api.ok(&format!("/api/logs?resource=good&since={}", seqs[0]));
    assert_eq!(
        newest["lines"].as_array().map(Vec::len),
        Some(lines.iter().filter(|l| l["span"] == "good").count() - 1),
        "since skips the first line: {newest}"
    );
    let limited = api.ok("/api/logs?limit=1");
    assert_eq!(limited["lines"].as_array().map(Vec::len), Some(1));
    assert!(limited["dropped"].as_u64().unwrap_or(0) > 0);

    // The state stream: a snapshot, then an update when something changes.
    let mut events = api.stream("/api/events", None);
    let first = events.next_event();
    assert_eq!(first.event, "snapshot");
    let snapshot: Value = serde_json::from_str(&first.data).expect("snapshot");
    assert_eq!(snapshot["resources"].as_array().map(Vec::len), Some(4));
    let token = session_token(&p, api.port);
    let (status, _) = api.post("/api/resources/man/trigger", Some(&token), &Value::Null);
    assert_eq!(status, 200);
    let update = loop {
        let e = events.next_event();
        assert_eq!(e.event, "update");
        let u: Value = serde_json::from_str(&e.data).expect("update");
        let changed = u["resources"].as_array().cloned().unwrap_or_default();
        if changed
            .iter()
            .any(|r| r["name"] == "man" && r["status"] == "ok")
        {
            break u;
        }
    };
    assert_eq!(update["order"].as_array().map(Vec::len), Some(4));
    assert!(
        update["resources"]
            .as_array()
            .is_some_and(|r| r.iter().all(|r| r["name"] == "man")),
        "only what changed is sent: {update}"
    );
    assert_eq!(p.out_lines("man"), ["run"]);

    // The UI page carries the token; its assets are embedded.
    let mut page = api.agent.get(api.url("/")).call().expect("index");
    let html = page.body_mut().read_to_string().expect("html");
    assert!(html.contains(&token), "token in page");
    for asset in ["app.js", "app.css", "favicon.svg"] {
        let r = api
            .agent
            .get(api.url(&format!("/assets/{asset}")))
            .call()
            .expect("asset");
        assert_eq!(r.status().as_u16(), 200, "{asset}");
    }
}

#[test]
fn host_check_and_token_guard_the_api() {
    let p = Project::new("local_resource('man', cmd='echo run >> {out}/man', auto_init=False)");
    let mut up = Up::start(&p, &[]);
    let api = Api::new(&up);
    let port = api.port;

    // DNS rebinding: a request for another name is refused, reads included.
    let r = api
        .agent
        .get(api.url("/api/session"))
        .header("Host", format!("evil.example:{port}"))
        .call()
        .expect("GET");
    assert_eq!(r.status().as_u16(), 403);
    let r = api
        .agent
        .get(format!("http://localhost:{port}/api/session"))
        .call()
        .expect("GET");
    assert_eq!(r.status().as_u16(), 200, "localhost is this session");

    // The session file is the owner's only.
    use std::os::unix::fs::PermissionsExt as _;
    let file = p.root.path().join(format!(".tiltrs/sessions/{port}.json"));
    let mode = std::fs::metadata(&file).expect("meta").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let token = session_token(&p, port);

    api.wait_field("man", "status", "none".into());
    let trigger = "/api/resources/man/trigger";
    assert_eq!(api.post(trigger, None, &Value::Null).0, 401);
    assert_eq!(api.post(trigger, Some("wrong"), &Value::Null).0, 401);
    assert!(
        p.out_lines("man").is_empty(),
        "refused mutations do nothing"
    );
    assert_eq!(api.post(trigger, Some(&token), &Value::Null).0, 200);
    p.wait_lines("man", 1);
    assert_eq!(
        api.post("/api/resources/nope/trigger", Some(&token), &Value::Null)
            .0,
        404
    );
    let (status, body) = api.post("/api/args", Some(&token), &serde_json::json!({"args": 3}));
    assert_eq!(status, 400, "{body}");

    up.signal(libc::SIGTERM);
    assert!(up.wait().success());
    assert!(!file.exists(), "session file removed when the session ends");
}

#[test]
fn log_stream_resumes_without_losing_or_repeating_lines() {
    let p = Project::new(
        r#"
local_resource('ticker', serve_cmd='i=0; while true; do echo "tick $i"; i=$((i+1)); sleep 0.005; done')
local_resource('other', serve_cmd='while true; do echo other; sleep 0.01; done')
"#,
    );
    let up = Up::start(&p, &[]);
    let api = Api::new(&up);
    let ticks = |lines: &[Value]| -> Vec<u64> {
        texts(lines)
            .iter()
            .filter_map(|t| t.strip_prefix("tick ").and_then(|n| n.parse().ok()))
            .collect()
    };

    let mut stream = api.stream("/api/logs/stream?resource=ticker&since=0", None);
    let mut seen = Vec::new();
    let mut last_id = None;
    while seen.len() < 50 {
        let (id, lines) = stream.next_lines();
        assert!(lines.iter().all(|l| l["span"] == "ticker"));
        seen.extend(ticks(&lines));
        last_id = id;
    }
    drop(stream);
    std::thread::sleep(Duration::from_millis(300));

    // Reconnect as EventSource does: Last-Event-ID wins over `since`.
    let mut resumed = api.stream(
        "/api/logs/stream?resource=ticker&since=0",
        last_id.as_deref(),
    );
    while seen.len() < 150 {
        let (_, lines) = resumed.next_lines();
        seen.extend(ticks(&lines));
    }
    let expected: Vec<u64> = (0..seen.len() as u64).collect();
    assert_eq!(seen, expected, "every tick exactly once, in order");

    // The unfiltered stream interleaves spans in seq order.
    let mut all = api.stream("/api/logs/stream", None);
    let (_, lines) = all.next_lines();
    let seqs: Vec<u64> = lines.iter().filter_map(|l| l["seq"].as_u64()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
}

#[test]
fn log_memory_is_bounded_and_drops_are_reported() {
    let p = Project::new(
        r#"
local_resource('flood', cmd='seq 1 40000 | sed "s/^/line /"')
"#,
    );
    let up = Up::start(&p, &["--log-limit-mb", "1"]);
    let api = Api::new(&up);
    api.wait_field("flood", "status", "ok".into());
    let session = api.ok("/api/session");
    let used = session["logs"]["used_bytes"].as_u64().expect("used");
    let limit = session["logs"]["limit_bytes"].as_u64().expect("limit");
    assert_eq!(limit, 1 << 20);
    assert!(used <= limit, "{session}");
    let dropped = session["logs"]["dropped_lines"].as_u64().expect("dropped");
    assert!(dropped > 0, "{session}");

    let page = api.ok("/api/logs?resource=flood");
    let lines = page["lines"].as_array().expect("lines");
    assert!(
        page["dropped"].as_u64().unwrap_or(0) > 0,
        "{}",
        page["dropped"]
    );
    let kept = texts(lines);
    assert!(kept.iter().any(|t| t == "line 40000"), "newest kept");
    assert!(!kept.iter().any(|t| t == "line 1"), "oldest dropped");

    let mut stream = api.stream("/api/logs/stream?since=0", None);
    let first = stream.next_event();
    assert_eq!(first.event, "dropped", "{first:?}");
    let count: Value = serde_json::from_str(&first.data).expect("json");
    assert!(count["count"].as_u64().unwrap_or(0) > 0);
}

#[test]
fn cli_commands_drive_the_session() {
    let m = marker();
    let p = Project::new(&format!(
        r#"
config.define_string_list('to-run', args=True)
cfg = config.parse()
local_resource('srv', serve_cmd='echo serving; exec sleep {m}')
local_resource('man', cmd='echo run >> {{out}}/man', trigger_mode=TRIGGER_MODE_MANUAL, auto_init=False)
for name in cfg.get('to-run', []):
    local_resource(name, cmd='echo ' + name + ' >> {{out}}/extra')
"#
    ));
    let up = Up::start(&p, &[]);
    let port = up.port();
    let cli = |sub: &str, args: &[&str]| {
        let out = p.client(sub, port, args);
        assert!(
            out.status.success(),
            "tiltrs {sub} {args:?}: {}",
            text(&out)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    wait_processes(&m, 1);

    let table = cli("get", &[]);
    assert!(table.starts_with("NAME"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("man ") && l.contains("none")),
        "{table}"
    );
    let json: Value = serde_json::from_str(&cli("get", &["-o", "json"])).expect("json");
    assert_eq!(json["resources"].as_array().map(Vec::len), Some(2));
    let yaml = cli("get", &["resources", "srv", "-o", "yaml"]);
    assert!(
        yaml.contains("name: srv") && !yaml.contains("name: man"),
        "{yaml}"
    );
    assert!(cli("get", &["session"]).contains("Tiltfile:"));

    cli("trigger", &["man"]);
    p.wait_lines("man", 1);
    let described = cli("describe", &["resource", "man"]);
    assert!(described.contains("Trigger mode:  manual"), "{described}");
    assert!(described.contains("Update triggered"), "{described}");
    let logs = cli("logs", &["man"]);
    assert!(logs.contains("man │ Running cmd: echo run"), "{logs}");
    assert!(!logs.contains("srv │"), "{logs}");
    assert!(
        !cli("logs", &["--since", "1h", "srv"]).is_empty(),
        "recent lines are within --since"
    );

    // `logs -f` prints the backlog, then follows.
    let mut follow = p.command("logs");
    follow
        .args(["-f", "man"])
        .env("TILT_PORT", port.to_string())
        .stdout(std::process::Stdio::piped());
    let mut follower = follow.spawn().expect("logs -f");
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = follower.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut runs = 0;
    let mut triggered = false;
    while runs < 2 {
        let line = rx.recv_timeout(WAIT).expect("a followed line");
        runs += usize::from(line.contains("Running cmd: echo run"));
        if runs == 1 && !triggered {
            cli("trigger", &["man"]);
            triggered = true;
        }
    }
    let _ = follower.kill();
    let _ = follower.wait();

    // Disabling stops the serve process; enabling starts it again.
    cli("disable", &["srv"]);
    wait_processes(&m, 0);
    let srv = cli("get", &["resources", "srv"]);
    assert!(srv.contains("disabled"), "{srv}");
    cli("enable", &["srv"]);
    wait_processes(&m, 1);

    // New Tiltfile args re-run the Tiltfile with them.
    cli("args", &["--", "extra-a", "extra-b"]);
    let lines = p.wait_lines("extra", 2);
    assert_eq!(lines.len(), 2, "{lines:?}");
    let session: Value =
        serde_json::from_str(&cli("get", &["session", "-o", "json"])).expect("json");
    assert_eq!(session["args"], serde_json::json!(["extra-a", "extra-b"]));

    // Errors a user can act on.
    let out = p.client("trigger", port, &["nope"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("no resource named \"nope\""),
        "{}",
        text(&out)
    );
    drop(up);
    wait_processes(&m, 0);
    let out = p.client("get", port, &[]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("no tiltrs session answers"),
        "{}",
        text(&out)
    );
}
