//! End-to-end tests of `tiltrs ci`: exit codes, dependency order, the parallelism bound and
//! readiness probes gating dependants. Ordering is observed through `date +%s%N` timestamps
//! written by the commands; durations are never asserted.

mod engine_support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{SystemTime, UNIX_EPOCH};

use engine_support::*;

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

#[test]
fn ci_success_prints_success_and_exits_zero() {
    let p = Project::new(
        r#"
local_resource('hello', cmd='echo hello-from-cmd')
local_resource('later', cmd='echo later', auto_init=False)
local_resource('off', cmd='exit 1', trigger_mode=TRIGGER_MODE_MANUAL, auto_init=False)
"#,
    );
    let o = p.ci(&[]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("hello │ hello-from-cmd"), "{t}");
    assert!(t.contains("SUCCESS. All workloads are healthy."), "{t}");
    assert!(
        !t.contains("later │ later"),
        "auto_init=False must not run: {t}"
    );
}

#[test]
fn ci_failure_names_the_resource_and_exits_non_zero() {
    let p = Project::new(
        r#"
local_resource('ok', cmd='echo fine')
local_resource('broken', cmd='echo about-to-fail; exit 3')
local_resource('after', cmd='touch {out}/after-ran', resource_deps=['broken'])
"#,
    );
    let o = p.ci(&[]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("about-to-fail"), "last log lines: {t}");
    assert!(
        stderr.contains(r#"Error: resource "broken" failed: Command "echo about-to-fail; exit 3" failed: exit status 3"#),
        "{t}"
    );
    assert!(
        !p.out.join("after-ran").exists(),
        "a dependant of a failed resource ran"
    );
}

#[test]
fn ci_times_out_when_a_probe_never_passes() {
    let m = marker();
    let p = Project::new(&format!(
        r#"
local_resource('never', serve_cmd='sleep {m}',
  readiness_probe=probe(period_secs=1, exec=exec_action(['false'])))
"#
    ));
    let o = p.ci(&["--timeout", "2s"]);
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(t.contains("Timeout after 2s"), "{t}");
    assert!(t.contains("never"), "{t}");
    assert_none_left(&m);
}

#[test]
fn ci_timeout_comes_from_ci_settings() {
    let p = Project::new(
        r#"
ci_settings(timeout='1s')
local_resource('never', serve_cmd='sleep 30',
  readiness_probe=probe(period_secs=1, exec=exec_action(['false'])))
"#,
    );
    let o = p.ci(&[]);
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(t.contains("Timeout after 1s"), "{t}");
}

#[test]
fn ci_tiltfile_error_exits_non_zero() {
    let p = Project::new("local_resource('x', cmd='echo x')\nfail('deliberate failure')\n");
    let o = p.ci(&[]);
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(t.contains("deliberate failure"), "{t}");
}

#[test]
fn resources_start_in_dependency_order() {
    // c depends on b depends on a; each records its start and end time.
    let rec = |name: &str| {
        format!("date +%s%N > {{out}}/{name}.start; sleep 0.05; date +%s%N > {{out}}/{name}.end")
    };
    let p = Project::new(&format!(
        r#"
local_resource('c', cmd='{c}', resource_deps=['b'], allow_parallel=True)
local_resource('b', cmd='{b}', resource_deps=['a'], allow_parallel=True)
local_resource('a', cmd='{a}', allow_parallel=True)
"#,
        a = rec("a"),
        b = rec("b"),
        c = rec("c")
    ));
    let o = p.ci(&[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        p.out_num("b.start") >= p.out_num("a.end"),
        "b started before a finished"
    );
    assert!(
        p.out_num("c.start") >= p.out_num("b.end"),
        "c started before b finished"
    );
}

/// Counts overlapping runs with a lock-protected counter file; returns the peak seen.
fn peak_concurrency(
    p: &Project,
    n: usize,
    max_parallel: Option<u32>,
    allow_parallel: bool,
) -> usize {
    let mut tf = String::new();
    if let Some(m) = max_parallel {
        tf.push_str(&format!("update_settings(max_parallel_updates={m})\n"));
    }
    // Each run appends "+" when it starts and "-" when it ends (with flock for atomicity);
    // the peak number of open runs is replayed from the log.
    for i in 0..n {
        tf.push_str(&format!(
            "local_resource('r{i}', cmd='echo + >> {{out}}/log; sleep 0.3; echo - >> {{out}}/log', allow_parallel={})\n",
            if allow_parallel { "True" } else { "False" }
        ));
    }
    p.write_tiltfile(&tf);
    let o = p.ci(&[]);
    assert!(o.status.success(), "{}", text(&o));
    let mut open = 0usize;
    let mut peak = 0usize;
    for l in p.out_lines("log") {
        if l == "+" {
            open += 1;
            peak = peak.max(open);
        } else {
            open = open.saturating_sub(1);
        }
    }
    peak
}

#[test]
fn parallel_updates_are_bounded_by_max_parallel_updates() {
    let p = Project::new("");
    let peak = peak_concurrency(&p, 6, Some(2), true);
    assert_eq!(peak, 2, "{:?}", p.out_lines("log"));
}

#[test]
fn default_bound_is_three() {
    let p = Project::new("");
    let peak = peak_concurrency(&p, 5, None, true);
    assert_eq!(peak, 3, "{:?}", p.out_lines("log"));
}

#[test]
fn local_cmds_without_allow_parallel_run_alone() {
    let p = Project::new("");
    let peak = peak_concurrency(&p, 4, Some(4), false);
    assert_eq!(peak, 1, "{:?}", p.out_lines("log"));
}

#[test]
fn exec_probe_gates_dependants() {
    let m = marker();
    let p = Project::new(&format!(
        r#"
local_resource('db',
  serve_cmd='sleep 0.5; date +%s%N > {{out}}/ready-at; touch {{out}}/ready; exec sleep {m}',
  readiness_probe=probe(period_secs=1, exec=exec_action(['test', '-f', '{{out}}/ready'])))
local_resource('app', cmd='date +%s%N > {{out}}/app-start', resource_deps=['db'])
"#
    ));
    let o = p.ci(&[]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("Readiness probe passed"), "{t}");
    assert!(
        p.out_num("app-start") >= p.out_num("ready-at"),
        "app started before db was ready"
    );
    assert_none_left(&m);
}

/// A listener bound late: its bind time is recorded; it answers HTTP 200 to every request.
fn late_server(delay_ms: u64) -> (u16, std::sync::mpsc::Receiver<u128>) {
    let probe_port = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = probe_port.local_addr().expect("addr").port();
    drop(probe_port);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("rebind");
        let _ = tx.send(now_ns());
        for s in listener.incoming() {
            let Ok(mut s) = s else { break };
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok");
        }
    });
    (port, rx)
}

#[test]
fn tcp_probe_gates_dependants() {
    let (port, bound) = late_server(700);
    let p = Project::new(&format!(
        r#"
local_resource('svc', serve_cmd='sleep 60',
  readiness_probe=probe(period_secs=1, tcp_socket=tcp_socket_action({port}, host='127.0.0.1')))
local_resource('client', cmd='date +%s%N > {{out}}/client-start', resource_deps=['svc'])
"#
    ));
    let o = p.ci(&[]);
    assert!(o.status.success(), "{}", text(&o));
    let bound_at = bound.recv().expect("server bound");
    assert!(
        p.out_num("client-start") >= bound_at,
        "client started before the port opened"
    );
}

#[test]
fn http_probe_gates_dependants() {
    let (port, bound) = late_server(700);
    let p = Project::new(&format!(
        r#"
local_resource('api', serve_cmd='sleep 60',
  readiness_probe=probe(period_secs=1, http_get=http_get_action({port}, host='127.0.0.1', path='/healthz')))
local_resource('e2e', cmd='date +%s%N > {{out}}/e2e-start', resource_deps=['api'])
"#
    ));
    let o = p.ci(&[]);
    assert!(o.status.success(), "{}", text(&o));
    let bound_at = bound.recv().expect("server bound");
    assert!(
        p.out_num("e2e-start") >= bound_at,
        "e2e started before the server answered"
    );
}

#[test]
fn cmd_gets_env_dir_and_tilt_port() {
    let p = Project::new(
        r#"
local_resource('env', cmd='echo "$GREETING $TILT_PORT $(pwd)" > {out}/env', env={'GREETING': 'hi'}, dir='{out}')
"#,
    );
    let o = p.ci(&["--port", "12345"]);
    assert!(o.status.success(), "{}", text(&o));
    let line = p.out_lines("env").join("");
    assert_eq!(line, format!("hi 12345 {}", p.out.display()));
}

#[test]
fn commands_see_variables_the_tiltfile_set() {
    let p = Project::new(
        r#"
os.putenv('FROM_PUTENV', 'put')
os.environ['FROM_ENVIRON'] = 'environ'
local_resource('env', cmd='echo "$FROM_PUTENV $FROM_ENVIRON $OWN" > {out}/env', env={'OWN': 'own'})
"#,
    );
    let o = p.ci(&[]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(p.out_lines("env").join(""), "put environ own");
}

#[test]
fn ci_stops_serve_processes_and_their_children_on_success() {
    let m = marker();
    let p = Project::new(&format!(
        r#"
local_resource('srv', serve_cmd='sleep {m} & touch {{out}}/started; sleep {m}',
  readiness_probe=probe(period_secs=1, exec=exec_action(['test', '-f', '{{out}}/started'])))
"#
    ));
    let o = p.ci(&[]);
    assert!(o.status.success(), "{}", text(&o));
    assert_none_left(&m);
}

#[test]
fn the_example_project_runs_green() {
    let tiltfile = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/Tiltfile");
    let o = std::process::Command::new(BIN)
        .args(["ci", "-f"])
        .arg(&tiltfile)
        .env("NO_COLOR", "1")
        .output()
        .expect("run tiltrs ci");
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("smoke test passed"), "{t}");
}
