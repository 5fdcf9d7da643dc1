//! Engine numbers measured on the real binary (build it first; release for real numbers:
//! `cargo build --release && cargo bench --bench engine_ci`):
//! - `ci_20_echo`: `tiltrs ci` wall time on 20 `echo` local resources in four chains of five;
//! - `edit_to_start`: with `tiltrs up` running, the time from writing a file in a resource's
//!   `deps` until that resource's `cmd` starts (the cmd records `date +%s%N`; criterion's
//!   median is the p50).
//!
//! CPU, peak RSS and idle numbers come from `benches/engine_numbers.sh`.
//! `TILTRS_BIN` overrides the binary (default: the one cargo builds with the bench, i.e. the
//! release profile).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use criterion::{Criterion, criterion_group, criterion_main};

fn binary() -> PathBuf {
    std::env::var_os("TILTRS_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_tiltrs")),
        PathBuf::from,
    )
}

/// The 20-resource project of the issue: four chains of five `echo`s.
pub fn chains_tiltfile() -> String {
    let mut t = String::new();
    for chain in 0..4 {
        for i in 0..5 {
            let deps = if i == 0 {
                String::new()
            } else {
                format!(", resource_deps=['c{chain}-{}']", i - 1)
            };
            t.push_str(&format!(
                "local_resource('c{chain}-{i}', cmd='echo c{chain}-{i}'{deps})\n"
            ));
        }
    }
    t
}

fn ci_20_echo(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("Tiltfile"), chains_tiltfile()).expect("Tiltfile");
    let bin = binary();
    c.bench_function("ci_20_echo", |b| {
        b.iter(|| {
            let out = Command::new(&bin)
                .arg("ci")
                .current_dir(dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("run tiltrs ci");
            assert!(out.success());
        })
    });
}

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        // SAFETY: SIGINT to our own child, for a clean shutdown.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGINT) };
        let _ = self.0.wait();
    }
}

fn edit_to_start(c: &mut Criterion) {
    let root = tempfile::tempdir().expect("tempdir");
    let project = root.path().join("project");
    let out = root.path().join("starts");
    std::fs::create_dir_all(project.join("src")).expect("mkdir");
    std::fs::write(project.join("src/main.txt"), "0").expect("write");
    std::fs::write(
        project.join("Tiltfile"),
        format!(
            "local_resource('app', cmd='date +%s%N >> {}', deps=['src'])\n",
            out.display()
        ),
    )
    .expect("Tiltfile");
    let _up = KillOnDrop(
        Command::new(binary())
            .arg("up")
            .current_dir(&project)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tiltrs up"),
    );
    let lines = |p: &Path| {
        std::fs::read_to_string(p)
            .map(|s| s.lines().count())
            .unwrap_or(0)
    };
    let wait_for = |n: usize| -> u128 {
        let start = Instant::now();
        while lines(&out) < n {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the cmd never ran"
            );
            std::thread::sleep(Duration::from_micros(200));
        }
        std::fs::read_to_string(&out)
            .ok()
            .and_then(|s| s.lines().last().and_then(|l| l.trim().parse().ok()))
            .unwrap_or(0)
    };
    wait_for(1);
    let mut seen = 1;
    let mut edit = 0u64;
    c.bench_function("edit_to_start", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                // Let the previous update finish before the next edit.
                std::thread::sleep(Duration::from_millis(30));
                edit += 1;
                let before = now_ns();
                std::fs::write(project.join("src/main.txt"), edit.to_string()).expect("edit");
                seen += 1;
                let started = wait_for(seen);
                total += Duration::from_nanos(started.saturating_sub(before) as u64);
            }
            total
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(10));
    targets = ci_20_echo, edit_to_start
}
criterion_main!(benches);
