//! Parses every file named `Tiltfile` (or `*.star`) under `$TILTRS_PARSE_CORPUS` with tiltrs's
//! dialect, to find constructs real Tiltfiles use that tiltrs cannot read. The corpus is not
//! shipped (it is other projects' code); point the variable at a checkout, e.g. of
//! tilt-dev/tilt-extensions. Without the variable the test says so and checks nothing else.

use std::path::{Path, PathBuf};

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, out);
        } else if path
            .file_name()
            .is_some_and(|n| n == "Tiltfile" || n.to_string_lossy().ends_with(".star"))
        {
            out.push(path);
        }
    }
}

#[test]
fn corpus_parses() {
    let Some(root) = std::env::var_os("TILTRS_PARSE_CORPUS") else {
        eprintln!(
            "skipping: set TILTRS_PARSE_CORPUS to a directory of real Tiltfiles to parse them all"
        );
        return;
    };
    let mut files = Vec::new();
    collect(Path::new(&root), &mut files);
    assert!(
        !files.is_empty(),
        "no Tiltfiles under {}",
        Path::new(&root).display()
    );
    let failures: Vec<String> = files
        .iter()
        .filter_map(|f| tiltrs::tiltfile::parse_check(f).err())
        .collect();
    eprintln!("parsed {} files, {} failed", files.len(), failures.len());
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
