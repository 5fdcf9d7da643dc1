//! No process outlives tiltrs: after Ctrl-C (SIGINT), SIGTERM, a double Ctrl-C against a
//! process that ignores SIGTERM, and SIGKILL of tiltrs itself, nothing it started (serve
//! processes, their background children, running update commands) is left.

mod engine_support;

use engine_support::*;

/// A project with a serve_cmd that backgrounds a child and a long-running update cmd, both
/// tagged with `m`; returns once all three processes run.
fn busy_project(m: &str, ignore_term: bool) -> (Project, Up) {
    let trap = if ignore_term { "trap \"\" TERM; " } else { "" };
    let p = Project::new(&format!(
        r#"
local_resource('srv', serve_cmd='{trap}sleep {m} & sleep {m}')
local_resource('build', cmd='{trap}sleep {m}', allow_parallel=True)
"#
    ));
    let up = Up::start(&p, &[]);
    wait_processes(m, 3);
    (p, up)
}

#[test]
fn ctrl_c_stops_everything() {
    let m = marker();
    let (_p, mut up) = busy_project(&m, false);
    up.signal(libc::SIGINT);
    let status = up.wait();
    assert!(status.success(), "{status:?}\n{}", up.output());
    assert!(
        processes_with(&m).is_empty(),
        "left behind after a clean exit: {:?}",
        processes_with(&m)
    );
}

#[test]
fn sigterm_stops_everything() {
    let m = marker();
    let (_p, mut up) = busy_project(&m, false);
    up.signal(libc::SIGTERM);
    up.wait();
    assert!(
        processes_with(&m).is_empty(),
        "left behind after a clean exit: {:?}",
        processes_with(&m)
    );
}

#[test]
fn second_ctrl_c_kills_processes_that_ignore_sigterm() {
    let m = marker();
    let (_p, mut up) = busy_project(&m, true);
    up.signal(libc::SIGINT);
    up.wait_for("press Ctrl-C again");
    // The grace period is 30 s; the second Ctrl-C must not wait for it.
    up.signal(libc::SIGINT);
    up.wait_for("Killing resources");
    up.wait();
    assert!(
        processes_with(&m).is_empty(),
        "left behind: {:?}",
        processes_with(&m)
    );
}

#[test]
fn sigkill_of_tiltrs_leaves_nothing_behind() {
    let m = marker();
    let (_p, mut up) = busy_project(&m, true);
    up.signal(libc::SIGKILL);
    up.wait();
    assert_none_left(&m);
}
