//! Shared helpers for tests against a real Docker engine: finding the engine (required in CI,
//! skipped with a visible message elsewhere), the local base image, `docker` CLI queries,
//! HTTP fetches and cleanup of what a test created.
//!
//! No registry is reachable, so the base image `tiltrs-test/busybox` is made here from the
//! host's static busybox (Debian's `busybox-static`): a rootfs of busybox and its applet links,
//! imported with `docker import`. It has `sh`, `tar` and `httpd`.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

pub const BASE_IMAGE: &str = "tiltrs-test/busybox:latest";

/// Whether tests may use Docker. In CI (`CI` set) a missing engine fails the test; elsewhere
/// the test is skipped with a message on stderr.
pub fn docker_or_skip(test: &str) -> bool {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    let ready = READY.get_or_init(|| {
        let info = Command::new("docker")
            .args(["info", "--format", "{{.ServerVersion}}"])
            .output()
            .map_err(|e| format!("cannot run the docker CLI: {e}"))?;
        if !info.status.success() {
            return Err(format!(
                "no Docker engine reachable: {}",
                String::from_utf8_lossy(&info.stderr).trim()
            ));
        }
        ensure_base_image()
    });
    match ready {
        Ok(()) => true,
        Err(e) if std::env::var_os("CI").is_some() => {
            panic!("{test}: Docker is required when CI is set: {e}")
        }
        Err(e) => {
            eprintln!("SKIPPED {test}: {e}");
            false
        }
    }
}

/// Imports [`BASE_IMAGE`] from the host's static busybox unless it exists.
fn ensure_base_image() -> Result<(), String> {
    if docker(&["image", "inspect", BASE_IMAGE]).is_ok() {
        return Ok(());
    }
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .ok_or("no busybox on this machine (install Debian's busybox-static)")?;
    let root = tempfile::tempdir().map_err(|e| e.to_string())?;
    let bin = root.path().join("bin");
    for dir in ["bin", "tmp", "www", "etc"] {
        std::fs::create_dir_all(root.path().join(dir)).map_err(|e| e.to_string())?;
    }
    std::fs::copy(busybox, bin.join("busybox")).map_err(|e| e.to_string())?;
    let list = Command::new(busybox)
        .arg("--list")
        .output()
        .map_err(|e| e.to_string())?;
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        let link = bin.join(applet);
        if applet != "busybox" && !link.exists() {
            std::os::unix::fs::symlink("busybox", link).map_err(|e| e.to_string())?;
        }
    }
    let mut tar = Command::new("tar")
        .args(["-C"])
        .arg(root.path())
        .args(["-c", "."])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let stdout = tar.stdout.take().ok_or("no tar output")?;
    let import = Command::new("docker")
        .args(["import", "-c", "ENV PATH=/bin", "-", BASE_IMAGE])
        .stdin(stdout)
        .output()
        .map_err(|e| e.to_string())?;
    let _ = tar.wait();
    if !import.status.success() {
        return Err(format!(
            "docker import failed: {}",
            String::from_utf8_lossy(&import.stderr)
        ));
    }
    Ok(())
}

/// Runs the docker CLI; its trimmed stdout on success.
pub fn docker(args: &[&str]) -> Result<String, String> {
    let out = Command::new("docker")
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// Tags of `repo` in the engine (`repo:tag` each).
pub fn image_tags(repo: &str) -> Vec<String> {
    docker(&["images", "--format", "{{.Repository}}:{{.Tag}}", repo])
        .map(|s| s.lines().map(str::to_string).collect())
        .unwrap_or_default()
}

/// The `tilt-*` tag of `repo`, when exactly one exists.
pub fn tilt_tag(repo: &str) -> String {
    let tags: Vec<String> = image_tags(repo)
        .into_iter()
        .filter(|t| t.contains(":tilt-"))
        .collect();
    assert_eq!(tags.len(), 1, "tilt tags of {repo}: {tags:?}");
    tags[0].clone()
}

/// Output of `sh -c script` in a fresh container of `image`.
pub fn run_in(image: &str, script: &str) -> String {
    docker(&["run", "--rm", image, "sh", "-c", script])
        .unwrap_or_else(|e| panic!("docker run {image}: {e}"))
}

/// Containers (all states) of a Compose project.
pub fn project_containers(project: &str) -> Vec<String> {
    let filter = format!("label=com.docker.compose.project={project}");
    docker(&["ps", "-a", "-q", "--filter", &filter])
        .map(|s| s.lines().map(str::to_string).collect())
        .unwrap_or_default()
}

/// Networks of a Compose project.
pub fn project_networks(project: &str) -> Vec<String> {
    let filter = format!("label=com.docker.compose.project={project}");
    docker(&["network", "ls", "-q", "--filter", &filter])
        .map(|s| s.lines().map(str::to_string).collect())
        .unwrap_or_default()
}

/// Removes a project's containers and networks and the images of `repos` (test cleanup).
pub fn cleanup(project: &str, repos: &[&str]) {
    for c in project_containers(project) {
        let _ = docker(&["rm", "-f", &c]);
    }
    for n in project_networks(project) {
        let _ = docker(&["network", "rm", &n]);
    }
    for repo in repos {
        for t in image_tags(repo) {
            let _ = docker(&["rmi", "-f", &t]);
        }
    }
}

/// A free local TCP port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// `GET path` on 127.0.0.1:port: `(status, body)`, or `None` when nothing answers.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let status = buf.split_whitespace().nth(1)?.parse().ok()?;
    let body = buf.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

/// Waits until `GET path` answers with `status` and a body containing `needle`.
pub fn wait_served(port: u16, path: &str, status: u16, needle: &str) {
    let got = super::engine_support::wait_until(|| {
        http_get(port, path).filter(|(s, b)| *s == status && b.contains(needle))
    });
    assert!(
        got.is_some(),
        "GET {path} never gave {status} with {needle:?}; last: {:?}",
        http_get(port, path)
    );
}
