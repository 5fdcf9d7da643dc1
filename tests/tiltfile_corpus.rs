//! The compatibility corpus: every `tests/tiltfiles/<case>/Tiltfile` is evaluated with the real
//! binary (`tiltrs alpha tiltfile-result`) and its JSON compared with `expected.json`; every
//! `tests/tiltfiles_bad/<case>/Tiltfile` must fail with exactly `expected.txt` on stderr.
//!
//! Absolute paths of the case directory are written `$DIR` in expectations. A case may have:
//! `args` (Tiltfile args, one per line), `bin/` (prepended to PATH, for fake helm/kustomize),
//! `kubeconfig` (used as KUBECONFIG; otherwise none is visible), `env` (KEY=VALUE lines).
//! Set `UPDATE_EXPECT=1` to rewrite expectations (then review every diff by hand), and
//! `TILTRS_CASES=a,b` to run only some cases.

use std::path::{Path, PathBuf};
use std::process::Command;

fn cases(root: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(root);
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("Tiltfile").is_file())
        .collect();
    if let Ok(only) = std::env::var("TILTRS_CASES") {
        let names: Vec<&str> = only.split(',').collect();
        out.retain(|p| {
            p.file_name()
                .is_some_and(|n| names.contains(&n.to_string_lossy().as_ref()))
        });
    }
    out.sort();
    out
}

fn run_case(case: &Path) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tiltrs"));
    cmd.args(["alpha", "tiltfile-result", "-f"])
        .arg(case.join("Tiltfile"));
    if let Ok(args) = std::fs::read_to_string(case.join("args")) {
        cmd.arg("--");
        cmd.args(args.lines().filter(|l| !l.is_empty()));
    }
    cmd.current_dir(case);
    let kubeconfig = case.join("kubeconfig");
    cmd.env(
        "KUBECONFIG",
        if kubeconfig.is_file() {
            kubeconfig
        } else {
            case.join("no-such-kubeconfig")
        },
    );
    cmd.env_remove("COMPOSE_PROFILES")
        .env_remove("DOCKER_DEFAULT_PLATFORM");
    let bin = case.join("bin");
    if bin.is_dir() {
        let path = std::env::var("PATH").unwrap_or_default();
        cmd.env("PATH", format!("{}:{path}", bin.display()));
    }
    if let Ok(env) = std::fs::read_to_string(case.join("env")) {
        for line in env.lines() {
            if let Some((k, v)) = line.split_once('=') {
                cmd.env(k, v);
            }
        }
    }
    let out = cmd.output().expect("running tiltrs");
    let dir = case.to_string_lossy().into_owned();
    let norm = |b: &[u8]| String::from_utf8_lossy(b).replace(&dir, "$DIR");
    (
        out.status.code().unwrap_or(-1),
        norm(&out.stdout),
        norm(&out.stderr),
    )
}

fn check(root: &str, expected_file: &str, expect_success: bool) {
    let update = std::env::var_os("UPDATE_EXPECT").is_some();
    let cases = cases(root);
    if cases.is_empty() {
        assert!(
            std::env::var_os("TILTRS_CASES").is_some(),
            "no cases under tests/{root}"
        );
        return;
    }
    let mut failures = Vec::new();
    for case in &cases {
        let (code, stdout, stderr) = run_case(case);
        let actual = if expect_success { stdout } else { stderr };
        let name = case
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if expect_success != (code == 0) {
            failures.push(format!(
                "{name}: exit code {code}\n{actual}\n{}",
                if expect_success {
                    ""
                } else {
                    "(expected failure)"
                }
            ));
            continue;
        }
        let path = case.join(expected_file);
        if update {
            std::fs::write(&path, &actual).expect("writing expectation");
            continue;
        }
        let expected = std::fs::read_to_string(&path).unwrap_or_default();
        if expected != actual {
            failures.push(format!(
                "{name}: output differs\n--- expected\n{expected}\n--- actual\n{actual}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

#[test]
fn good_tiltfiles_match_expected_results() {
    check("tiltfiles", "expected.json", true);
}

#[test]
fn bad_tiltfiles_fail_with_expected_errors() {
    check("tiltfiles_bad", "expected.txt", false);
}
