//! Tests for live update planning and archiving, on real temporary trees.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use super::*;
use crate::model::LiveUpdateStep;

fn sync(local: &Path, remote: &str) -> LiveUpdateStep {
    LiveUpdateStep::Sync {
        local: local.to_path_buf(),
        remote: remote.to_owned(),
    }
}

fn run(cmd: &str, trigger: &[PathBuf]) -> LiveUpdateStep {
    LiveUpdateStep::Run {
        cmd: vec!["sh".to_owned(), "-c".to_owned(), cmd.to_owned()],
        trigger: trigger.to_vec(),
        echo_off: false,
    }
}

fn write(path: &Path, contents: &str) {
    fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    fs::write(path, contents).expect("write");
}

fn update(plan: Plan) -> UpdatePlan {
    match plan {
        Plan::Update(update) => update,
        Plan::Fallback { reason } => panic!("unexpected fallback: {reason}"),
    }
}

fn fallback(plan: Plan) -> String {
    match plan {
        Plan::Fallback { reason } => reason,
        Plan::Update(update) => panic!("expected a fallback, got {update:?}"),
    }
}

fn remotes(plan: &UpdatePlan) -> Vec<&str> {
    plan.copies.iter().map(|c| c.remote.as_str()).collect()
}

/// Tar entries: name -> (type, contents or link target, mode).
fn read_tar(bytes: &[u8]) -> BTreeMap<String, (char, String, u32)> {
    let mut out = BTreeMap::new();
    let mut archive = tar::Archive::new(bytes);
    for entry in archive.entries().expect("entries") {
        let mut entry = entry.expect("entry");
        let name = entry.path().expect("path").to_string_lossy().into_owned();
        let header = entry.header().clone();
        let mode = header.mode().expect("mode");
        assert_eq!(header.uid().expect("uid"), 0);
        let value = match header.entry_type() {
            tar::EntryType::Directory => ('d', String::new()),
            tar::EntryType::Symlink => (
                'l',
                header
                    .link_name()
                    .expect("link")
                    .expect("target")
                    .to_string_lossy()
                    .into_owned(),
            ),
            tar::EntryType::Regular => {
                let mut s = String::new();
                entry.read_to_string(&mut s).expect("read");
                ('f', s)
            }
            other => panic!("unexpected entry type {other:?}"),
        };
        out.insert(name, (value.0, value.1, mode));
    }
    out
}

/// Everything observable about a host tree, without following symlinks.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = fs::symlink_metadata(&path).expect("lstat");
        let desc = if meta.file_type().is_symlink() {
            format!("link {:?}", fs::read_link(&path).expect("readlink"))
        } else if meta.is_dir() {
            for entry in fs::read_dir(&path).expect("read_dir") {
                stack.push(entry.expect("entry").path());
            }
            "dir".to_owned()
        } else {
            format!("file {:?}", fs::read(&path).expect("read"))
        };
        let desc = format!(
            "{desc} mode {:o} mtime {:?}",
            meta.permissions().mode(),
            meta.modified().expect("mtime")
        );
        out.insert(path, desc);
    }
    out
}

#[test]
fn fall_back_on_file_and_dir() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    write(&root.join("src/a.js"), "a");
    write(&root.join("package.json"), "{}");
    write(&root.join("deps/lib/x"), "x");
    let steps = vec![
        LiveUpdateStep::FallBackOn(vec![root.join("package.json"), root.join("deps")]),
        sync(root, "/app"),
    ];

    let reason = fallback(plan(&steps, &[root.join("package.json")]));
    assert_eq!(
        reason,
        format!(
            "Detected change to fall_back_on file {:?}",
            root.join("package.json").display().to_string()
        )
    );

    let changed = root.join("deps/lib/x");
    let reason = fallback(plan(&steps, &[root.join("src/a.js"), changed.clone()]));
    assert!(reason.contains(&changed.display().to_string()), "{reason}");
    assert!(
        reason.contains(&format!(
            "(fall_back_on {:?})",
            root.join("deps").display().to_string()
        )),
        "{reason}"
    );

    // A sibling whose name merely starts with the fall_back_on path does not match.
    write(&root.join("deps2"), "y");
    let up = update(plan(&steps, &[root.join("deps2")]));
    assert_eq!(remotes(&up), vec!["/app/deps2"]);
}

#[test]
fn change_outside_every_sync_falls_back() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    write(&root.join("src/a.js"), "a");
    write(&root.join("README.md"), "r");
    let steps = vec![sync(&root.join("src"), "/app")];
    let reason = fallback(plan(
        &steps,
        &[root.join("src/a.js"), root.join("README.md")],
    ));
    assert_eq!(
        reason,
        format!(
            "Found file(s) not matching any sync (files: [{}])",
            root.join("README.md").display()
        )
    );
    // `src2` is not under `src`, and a `..` that climbs out of the sync does not count as in it.
    let reason = fallback(plan(
        &steps,
        &[root.join("src2/x"), root.join("src/../etc/passwd")],
    ));
    assert!(
        reason.starts_with("Found file(s) not matching any sync"),
        "{reason}"
    );
}

#[test]
fn nested_syncs_longest_prefix_wins() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    write(&root.join("src/a.js"), "a");
    write(&root.join("src/static/logo.svg"), "svg");
    // The nested sync comes first and last in step order: order does not matter.
    for steps in [
        vec![
            sync(&root.join("src"), "/app"),
            sync(&root.join("src/static"), "/var/www"),
        ],
        vec![
            sync(&root.join("src/static"), "/var/www"),
            sync(&root.join("src"), "/app"),
        ],
    ] {
        let up = update(plan(
            &steps,
            &[root.join("src/a.js"), root.join("src/static/logo.svg")],
        ));
        assert_eq!(remotes(&up), vec!["/app/a.js", "/var/www/logo.svg"]);
        assert_eq!(up.copies[1].sync_remote, "/var/www");
    }
}

#[test]
fn deletes_and_dir_copies() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    write(&root.join("src/new/one.txt"), "1");
    write(&root.join("src/new/sub/two.txt"), "2");
    let steps = vec![sync(&root.join("src"), "/app/")];
    let up = update(plan(
        &steps,
        &[
            root.join("src/gone.txt"),
            root.join("src/new"),
            root.join("src/new/one.txt"),
            root.join("src/missing_dir/x"),
        ],
    ));
    // The file inside the copied directory is not copied twice.
    assert_eq!(remotes(&up), vec!["/app/new"]);
    assert_eq!(up.deletes, vec!["/app/gone.txt", "/app/missing_dir/x"]);
    assert!(up.runs.is_empty());
    assert!(!up.restart);

    let (tar, skipped) = archive(&up.copies).expect("archive");
    let entries = read_tar(&tar);
    let names: Vec<&str> = entries.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        vec![
            "app",
            "app/new",
            "app/new/one.txt",
            "app/new/sub",
            "app/new/sub/two.txt"
        ]
    );
    assert_eq!(entries["app/new/sub/two.txt"].1, "2");
    assert!(skipped.is_empty());
}

#[test]
fn file_sync_into_directory_with_trailing_slash() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    write(&root.join("config.yaml"), "c");
    let up = update(plan(
        &[sync(&root.join("config.yaml"), "/etc/app/")],
        &[root.join("config.yaml")],
    ));
    assert_eq!(remotes(&up), vec!["/etc/app/config.yaml"]);
    let up = update(plan(
        &[sync(&root.join("config.yaml"), "/etc/app.yaml")],
        &[root.join("config.yaml")],
    ));
    assert_eq!(remotes(&up), vec!["/etc/app.yaml"]);
    let entries = read_tar(&archive(&up.copies).expect("archive").0);
    assert_eq!(entries.keys().collect::<Vec<_>>(), vec!["etc/app.yaml"]);
}

#[test]
fn missing_sync_root_falls_back_instead_of_deleting_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    let steps = vec![sync(&root.join("src"), "/app")];
    let reason = fallback(plan(&steps, &[root.join("src")]));
    assert!(reason.contains("no longer exists"), "{reason}");
}

#[test]
fn run_triggers_and_restart() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    write(&root.join("src/a.js"), "a");
    write(&root.join("src/package.json"), "{}");
    let steps = vec![
        sync(&root.join("src"), "/app"),
        run("always", &[]),
        run("npm install", &[root.join("src/package.json")]),
        run("migrate", &[root.join("src/migrations")]),
        LiveUpdateStep::Run {
            cmd: vec!["quiet".to_owned()],
            trigger: vec![root.join("src")],
            echo_off: true,
        },
        LiveUpdateStep::RestartContainer {},
    ];
    let cmds =
        |up: &UpdatePlan| -> Vec<String> { up.runs.iter().map(|r| r.cmd.join(" ")).collect() };

    let up = update(plan(&steps, &[root.join("src/a.js")]));
    assert_eq!(cmds(&up), vec!["sh -c always", "quiet"]);
    assert!(up.runs[1].echo_off);
    assert!(up.restart);

    let up = update(plan(&steps, &[root.join("src/package.json")]));
    assert_eq!(
        cmds(&up),
        vec!["sh -c always", "sh -c npm install", "quiet"]
    );

    // A deleted file under a trigger directory triggers too (Tilt matches synced paths).
    let up = update(plan(&steps, &[root.join("src/migrations/001.sql")]));
    assert_eq!(cmds(&up), vec!["sh -c always", "sh -c migrate", "quiet"]);
    assert_eq!(up.deletes, vec!["/app/migrations/001.sql"]);

    // No changes: nothing at all, not even untriggered runs or the restart.
    let up = update(plan(&steps, &[]));
    assert!(up.is_empty());

    let no_restart = &steps[..5];
    let up = update(plan(no_restart, &[root.join("src/a.js")]));
    assert!(!up.restart);
    assert!(!up.is_empty());
}

#[test]
fn initial_sync_copies_every_file_once() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    write(&root.join("src/a.js"), "a");
    write(&root.join("src/lib/b.js"), "b");
    write(&root.join("src/static/logo.svg"), "svg");
    fs::create_dir_all(root.join("src/empty")).expect("mkdir");
    let steps = vec![
        LiveUpdateStep::InitialSync {},
        sync(&root.join("src"), "/app"),
        sync(&root.join("src/static"), "/var/www"),
        sync(&root.join("not-there"), "/nowhere"),
        run("build", &[root.join("src/lib")]),
        run("never", &[root.join("elsewhere")]),
    ];
    assert!(has_initial_sync(&steps));
    assert!(!has_initial_sync(&steps[1..]));
    let up = initial_sync(&steps).expect("initial sync");
    assert_eq!(
        remotes(&up),
        vec![
            "/app/a.js",
            "/app/empty",
            "/app/lib/b.js",
            "/var/www/logo.svg"
        ]
    );
    assert!(up.deletes.is_empty());
    assert_eq!(up.runs.len(), 1);
    assert!(!up.restart);

    let entries = read_tar(&archive(&up.copies).expect("archive").0);
    let names: Vec<&str> = entries.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        vec![
            "app",
            "app/a.js",
            "app/empty",
            "app/lib",
            "app/lib/b.js",
            "var/www",
            "var/www/logo.svg"
        ]
    );
}

#[test]
fn remote_paths_are_validated() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    write(&root.join("a"), "a");
    for bad in ["/app/../etc", "/../etc", "/app/.."] {
        let err = try_plan(&[sync(root, bad)], &[root.join("a")]).expect_err(bad);
        assert!(
            matches!(err, LiveUpdateError::DotDotRemote { .. }),
            "{bad}: {err}"
        );
        let err = initial_sync(&[sync(root, bad)]).expect_err(bad);
        assert!(
            matches!(err, LiveUpdateError::DotDotRemote { .. }),
            "{bad}: {err}"
        );
    }
    let err = try_plan(&[sync(root, "app")], &[root.join("a")]).expect_err("relative");
    assert_eq!(
        fallback(plan(&[sync(root, "app")], &[root.join("a")])),
        "No update plan: sync remote path \"app\" must be absolute"
    );
    assert!(
        matches!(err, LiveUpdateError::RelativeRemote { .. }),
        "{err}"
    );
    assert_eq!(err.to_string(), "sync remote path \"app\" must be absolute");

    // Redundant separators and `.` are normalised.
    let up = update(plan(&[sync(root, "//app/./www/")], &[root.join("a")]));
    assert_eq!(remotes(&up), vec!["/app/www/a"]);
    assert_eq!(up.copies[0].sync_remote, "/app/www");

    // A hand-built copy that escapes its sync is refused by the archiver.
    for (remote, sync_remote) in [
        ("/etc/passwd", "/app"),
        ("/app/../etc/a", "/app"),
        ("app/a", "/app"),
    ] {
        let copy = FileCopy {
            local: root.join("a"),
            remote: remote.to_owned(),
            sync_local: root.to_path_buf(),
            sync_remote: sync_remote.to_owned(),
        };
        let err = archive(&[copy]).expect_err(remote);
        assert!(
            matches!(err, LiveUpdateError::OutsideSync { .. }),
            "{remote}: {err}"
        );
    }
}

#[test]
fn symlinks_escaping_the_remote_dir_are_skipped_inner_ones_kept() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    let src = root.join("src");
    write(&src.join("www/index.html"), "<html>");
    write(&root.join("secret"), "top secret");
    fs::create_dir_all(src.join("www/assets")).expect("mkdir");
    symlink("../index.html", src.join("www/assets/home.html")).expect("symlink");
    symlink("/app/www/index.html", src.join("www/abs-inside")).expect("symlink");
    symlink("../../etc/passwd", src.join("www/escape")).expect("symlink");
    symlink("/etc", src.join("www/etc")).expect("symlink");
    symlink(root.join("secret"), src.join("www/secret")).expect("symlink");
    symlink("missing-but-inside", src.join("www/dangling")).expect("symlink");
    // A directory symlink on the host is not descended into.
    symlink(root, src.join("www/hostroot")).expect("symlink");

    let steps = vec![sync(&src, "/app")];
    let before = snapshot(root);
    let up = update(plan(&steps, &[src.join("www")]));
    let (tar, skipped) = archive(&up.copies).expect("archive");
    let up2 = initial_sync(&steps).expect("initial sync");
    let (tar2, skipped2) = archive(&up2.copies).expect("archive");
    assert_eq!(snapshot(root), before, "the host tree changed");

    for (tar, skipped) in [(&tar, &skipped), (&tar2, &skipped2)] {
        let entries = read_tar(tar);
        assert_eq!(
            entries["app/www/assets/home.html"],
            ('l', "../index.html".to_owned(), 0o777)
        );
        assert_eq!(entries["app/www/abs-inside"].1, "/app/www/index.html");
        assert_eq!(entries["app/www/dangling"].1, "missing-but-inside");
        assert_eq!(entries["app/www/index.html"].1, "<html>");
        let mut names: Vec<&str> = skipped.iter().map(|s| s.remote.as_str()).collect();
        names.sort();
        assert_eq!(
            names,
            vec![
                "/app/www/escape",
                "/app/www/etc",
                "/app/www/hostroot",
                "/app/www/secret"
            ]
        );
        for name in entries.keys() {
            assert!(name.starts_with("app"), "{name} escapes /app");
            assert!(
                !name.contains("secret") && !name.contains("hostroot"),
                "{name}"
            );
        }
        assert!(skipped.iter().all(|s| !s.vanished));
        let escape = skipped
            .iter()
            .find(|s| s.remote == "/app/www/escape")
            .expect("escape skipped");
        assert_eq!(escape.local, src.join("www/escape"));
        assert!(
            escape.reason.contains("\"/etc/passwd\""),
            "{}",
            escape.reason
        );
        assert!(
            escape
                .reason
                .contains("outside the sync's remote directory \"/app\"")
        );
    }
}

#[test]
fn symlinked_sync_root_and_host_symlink_parents_are_not_followed() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    write(&root.join("real/file.txt"), "f");
    write(&root.join("src/ok.txt"), "ok");
    symlink(root.join("real"), root.join("src/linkdir")).expect("symlink");
    let steps = vec![sync(&root.join("src"), "/app")];
    // A change reported through a host symlink: planned as a copy, but never read through it.
    let up = update(plan(
        &steps,
        &[root.join("src/linkdir/file.txt"), root.join("src/ok.txt")],
    ));
    assert_eq!(remotes(&up), vec!["/app/linkdir/file.txt", "/app/ok.txt"]);
    let (tar, skipped) = archive(&up.copies).expect("archive");
    let entries = read_tar(&tar);
    assert_eq!(
        entries.keys().collect::<Vec<_>>(),
        vec!["app", "app/ok.txt"]
    );
    assert_eq!(skipped.len(), 1);
    assert!(
        skipped[0].reason.contains("is a symlink on the host"),
        "{:?}",
        skipped
    );
}

#[test]
fn entries_below_an_archived_symlink_are_dropped() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    write(&root.join("a/data/x"), "x");
    fs::create_dir_all(root.join("b")).expect("mkdir");
    symlink("other", root.join("b/data")).expect("symlink");
    // Two syncs into the same remote dir: `/app/data` is a symlink from one, a directory from
    // the other; `/app/data/x` would be written through the symlink.
    let copies = vec![
        FileCopy {
            local: root.join("a/data/x"),
            remote: "/app/data/x".to_owned(),
            sync_local: root.join("a"),
            sync_remote: "/app".to_owned(),
        },
        FileCopy {
            local: root.join("b/data"),
            remote: "/app/data".to_owned(),
            sync_local: root.join("b"),
            sync_remote: "/app".to_owned(),
        },
    ];
    let (tar, skipped) = archive(&copies).expect("archive");
    let entries = read_tar(&tar);
    assert_eq!(entries.keys().collect::<Vec<_>>(), vec!["app", "app/data"]);
    assert_eq!(entries["app/data"].0, 'l');
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0].remote, "/app/data/x");
}

#[test]
fn archive_keeps_modes_and_turns_vanished_files_into_deletes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    write(&root.join("src/bin/run.sh"), "#!/bin/sh\n");
    fs::set_permissions(
        root.join("src/bin/run.sh"),
        fs::Permissions::from_mode(0o751),
    )
    .expect("chmod");
    fs::set_permissions(root.join("src/bin"), fs::Permissions::from_mode(0o700)).expect("chmod");
    write(&root.join("src/soon-gone.txt"), "bye");
    let steps = vec![sync(&root.join("src"), "/srv")];
    let up = update(plan(
        &steps,
        &[root.join("src/bin/run.sh"), root.join("src/soon-gone.txt")],
    ));
    fs::remove_file(root.join("src/soon-gone.txt")).expect("rm");
    let (tar, skipped) = archive(&up.copies).expect("archive");
    let entries = read_tar(&tar);
    assert_eq!(
        entries["srv/bin/run.sh"],
        ('f', "#!/bin/sh\n".to_owned(), 0o751)
    );
    assert_eq!(entries["srv/bin"].2, 0o700);
    assert!(!entries.contains_key("srv/soon-gone.txt"));
    assert_eq!(skipped.len(), 1);
    assert!(skipped[0].vanished);
    assert_eq!(skipped[0].remote, "/srv/soon-gone.txt");
    assert_eq!(skipped[0].local, root.join("src/soon-gone.txt"));
}

#[test]
fn long_names_survive_the_tar() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    let long = "d".repeat(120);
    write(&root.join(&long).join("f.txt"), "deep");
    let steps = vec![sync(root, "/app")];
    let up = update(plan(&steps, &[root.join(&long).join("f.txt")]));
    let entries = read_tar(&archive(&up.copies).expect("archive").0);
    assert_eq!(entries[&format!("app/{long}/f.txt")].1, "deep");
}
