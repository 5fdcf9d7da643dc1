//! No panic on any input: every corpus Tiltfile, cut short at many points and with bytes
//! flipped (a fixed-seed generator, so failures reproduce), must parse or fail with an error,
//! and mutants that run no commands must evaluate (in the real binary) or fail cleanly: exit 0
//! or 1, never a panic. A mutant may loop for ever (`while True`); the binary is stopped after a
//! few seconds, which is not a failure.

use std::panic::catch_unwind;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tiltrs::tiltfile::parse_check;

/// Runs `tiltrs alpha tiltfile-result` on `path`; None when it had to be stopped.
fn evaluate_in_binary(path: &Path) -> Option<(i32, String)> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tiltrs"))
        .args(["alpha", "tiltfile-result", "-f"])
        .arg(path)
        .env("KUBECONFIG", "/nonexistent")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tiltrs");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let mut stderr = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
            }
            return Some((status.code().unwrap_or(-1), stderr));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn corpus_tiltfiles() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for root in ["tests/tiltfiles", "tests/tiltfiles_bad"] {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(root);
        for entry in std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
        {
            let tiltfile = entry.path().join("Tiltfile");
            if tiltfile.is_file() {
                out.push(tiltfile);
            }
        }
    }
    out.sort();
    out
}

/// A small deterministic generator (xorshift) for reproducible mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn mutants(source: &[u8], rng: &mut Rng) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let step = (source.len() / 12).max(1);
    for cut in (0..source.len()).step_by(step) {
        out.push(source[..cut].to_vec());
    }
    const NASTY: &[u8] = b"()[]{}:'\"\\\n\t #=,.*while";
    for _ in 0..12 {
        let mut m = source.to_vec();
        if m.is_empty() {
            break;
        }
        for _ in 0..3 {
            let at = (rng.next() as usize) % m.len();
            m[at] = NASTY[(rng.next() as usize) % NASTY.len()];
        }
        out.push(m);
    }
    out
}

#[test]
fn mutated_tiltfiles_never_panic() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut checked = 0;
    for tiltfile in corpus_tiltfiles() {
        let source = std::fs::read(&tiltfile).expect("read");
        let runs_commands = String::from_utf8_lossy(&source).contains("local(");
        for (i, mutant) in mutants(&source, &mut rng).into_iter().enumerate() {
            let path = tmp.path().join(format!("m{checked}-{i}"));
            std::fs::write(&path, &mutant).expect("write");
            let parsed = catch_unwind(|| parse_check(&path));
            assert!(
                parsed.is_ok(),
                "parse panicked on a mutant of {}:\n{}",
                tiltfile.display(),
                String::from_utf8_lossy(&mutant)
            );
            if !runs_commands
                && i % 3 == 0
                && let Some((code, stderr)) = evaluate_in_binary(&path)
            {
                assert!(
                    code == 0 || code == 1,
                    "tiltrs exited {code} on a mutant of {}:\n{}\n{stderr}",
                    tiltfile.display(),
                    String::from_utf8_lossy(&mutant)
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 500, "only {checked} mutants checked");
}
