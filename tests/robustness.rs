//! No panic on any input: every corpus Tiltfile, cut short at many points and with bytes
//! flipped (a fixed-seed generator, so failures reproduce), must parse or fail with an error;
//! truncated Tiltfiles that run no commands must also evaluate or fail cleanly.

use std::panic::catch_unwind;
use std::path::{Path, PathBuf};

use tiltrs::tiltfile::{EvalOptions, evaluate, parse_check};

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
            if !runs_commands {
                let options = EvalOptions {
                    path: path.clone(),
                    args: Vec::new(),
                    subcommand: "alpha tiltfile-result".into(),
                };
                let evaluated =
                    catch_unwind(|| evaluate(&options).map(drop).map_err(|e| e.message));
                assert!(
                    evaluated.is_ok(),
                    "evaluate panicked on a mutant of {}:\n{}",
                    tiltfile.display(),
                    String::from_utf8_lossy(&mutant)
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 500, "only {checked} mutants checked");
}
