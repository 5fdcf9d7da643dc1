//! End-to-end tests of `tiltrs up`: file changes re-run only the affected resources, Tiltfile
//! edits restart only what changed, a broken Tiltfile keeps the old graph running, manual and
//! auto_init=False resources wait, and output is prefixed per resource.

mod engine_support;

use engine_support::*;

#[test]
fn file_change_reruns_only_the_affected_resource() {
    let p = Project::new(
        r#"
local_resource('frontend', cmd='echo run >> {out}/frontend', deps=['web'])
local_resource('backend', cmd='echo run >> {out}/backend', deps=['api'], ignore=['api/*.log'])
local_resource('manual', cmd='echo run >> {out}/manual', deps=['api'], ignore=['api/*.log'],
  trigger_mode=TRIGGER_MODE_MANUAL)
local_resource('lazy', cmd='echo run >> {out}/lazy', deps=['api'], ignore=['api/*.log'], auto_init=False)
"#,
    );
    p.write("web/index.html", "v1");
    p.write("api/main.go", "v1");
    let up = Up::start(&p, &[]);
    p.wait_lines("frontend", 1);
    p.wait_lines("backend", 1);
    p.wait_lines("manual", 1);
    up.wait_for_count(3, |l| l.contains("Update succeeded"));

    // An ignored file and an editor temp file start nothing.
    p.write("api/debug.log", "noise");
    p.write("api/.main.go.swp", "noise");
    p.write("api/main.go", "v2");
    p.wait_lines("backend", 2);
    up.wait_for("waiting for a manual trigger");
    up.wait_for_count(4, |l| l.contains("Update succeeded"));
    assert_eq!(
        p.out_lines("frontend").len(),
        1,
        "frontend re-ran:\n{}",
        up.output()
    );
    assert_eq!(
        p.out_lines("manual").len(),
        1,
        "manual resource re-ran:\n{}",
        up.output()
    );
    assert!(
        p.out_lines("lazy").is_empty(),
        "auto_init=False ran:\n{}",
        up.output()
    );
    let out = up.output();
    assert!(out.contains("1 File Changed: ["), "{out}");
    assert!(!out.contains("debug.log"), "ignored file reported:\n{out}");
    assert!(!out.contains(".swp"), "editor temp file reported:\n{out}");

    p.write("web/index.html", "v2");
    p.wait_lines("frontend", 2);
    assert_eq!(p.out_lines("backend").len(), 2);
}

#[test]
fn tiltfile_edit_restarts_only_the_changed_resource() {
    let m = marker();
    let tiltfile = |b_msg: &str| {
        format!(
            r#"
local_resource('a', serve_cmd='echo start >> {{out}}/a; exec sleep {m}')
local_resource('b', cmd='echo {b_msg} >> {{out}}/b')
"#
        )
    };
    let p = Project::new(&tiltfile("one"));
    let up = Up::start(&p, &[]);
    p.wait_lines("a", 1);
    p.wait_lines("b", 1);
    wait_processes(&m, 1);
    let serve_pid = processes_with(&m);

    p.write_tiltfile(&tiltfile("two"));
    let b = p.wait_lines("b", 2);
    assert_eq!(b, vec!["one", "two"]);
    up.wait_for_count(2, |l| l.contains("Successfully loaded Tiltfile"));
    assert_eq!(
        p.out_lines("a").len(),
        1,
        "unchanged serve_cmd restarted:\n{}",
        up.output()
    );
    assert_eq!(processes_with(&m), serve_pid, "the serve process changed");

    // Removing a resource stops it.
    p.write_tiltfile("local_resource('b', cmd='echo two >> {out}/b')\n");
    up.wait_for("Removed resource a");
    assert_none_left(&m);
}

#[test]
fn tiltfile_error_keeps_the_old_graph_and_recovers() {
    let m = marker();
    let good =
        format!("local_resource('srv', serve_cmd='echo start >> {{out}}/srv; exec sleep {m}')\n");
    let p = Project::new(&good);
    let up = Up::start(&p, &[]);
    p.wait_lines("srv", 1);
    wait_processes(&m, 1);

    p.write_tiltfile(&format!("{good}fail('broken on purpose')\n"));
    up.wait_for("broken on purpose");
    up.wait_for("previous resources keep running");
    assert_eq!(
        processes_with(&m).len(),
        1,
        "serve process stopped by a failed load"
    );

    p.write_tiltfile(&format!(
        "{good}local_resource('new', cmd='echo new >> {{out}}/new')\n"
    ));
    p.wait_lines("new", 1);
    assert_eq!(
        p.out_lines("srv").len(),
        1,
        "unchanged srv restarted after recovery"
    );
}

#[test]
fn first_load_failure_is_shown_and_fixing_it_starts_resources() {
    let p = Project::new("fail('not yet')\n");
    let up = Up::start(&p, &[]);
    up.wait_for("not yet");
    p.write_tiltfile("local_resource('x', cmd='echo fixed >> {out}/x')\n");
    p.wait_lines("x", 1);
}

#[test]
fn serve_cmd_restarts_after_cmd_update_and_after_a_crash() {
    let m = marker();
    let p = Project::new(&format!(
        r#"
local_resource('srv', cmd='echo build >> {{out}}/build', deps=['src'],
  serve_cmd='echo start >> {{out}}/starts; exec sleep {m}')
local_resource('crashy', serve_cmd='echo start >> {{out}}/crashy; exit 7')
"#
    ));
    p.write("src/a.txt", "1");
    let up = Up::start(&p, &[]);
    p.wait_lines("starts", 1);
    p.write("src/a.txt", "2");
    p.wait_lines("build", 2);
    p.wait_lines("starts", 2);
    // The crashing serve_cmd is reported and restarted with backoff.
    up.wait_for("serve_cmd exited: exit status 7; restarting in");
    p.wait_lines("crashy", 2);
    wait_processes(&m, 1);
    assert_eq!(
        processes_with(&m).len(),
        1,
        "the old serve process was not stopped"
    );
}

#[test]
fn output_is_prefixed_with_padded_resource_names() {
    let p = Project::new(
        "local_resource('x', cmd='echo from-x')\nlocal_resource('longer-name', cmd='echo from-long')\n",
    );
    let up = Up::start(&p, &[]);
    up.wait_for_count(1, |l| l.ends_with("│ from-x"));
    let out = up.wait_for_count(1, |l| l.ends_with("│ from-long"));
    assert!(out.iter().any(|l| l == "          x │ from-x"), "{out:#?}");
    assert!(
        out.iter().any(|l| l == "longer-name │ from-long"),
        "{out:#?}"
    );
    assert!(!up.output().contains('\x1b'), "colour with NO_COLOR set");
}
