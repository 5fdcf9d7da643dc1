//! Readiness probes for `serve_cmd`s: `exec`, `http_get` and `tcp_socket` actions.
//!
//! A probe runs after `initial_delay_secs`, then every `period_secs`, each attempt bounded by
//! `timeout_secs`. The target becomes ready after `success_threshold` passes in a row and
//! unready after `failure_threshold` failures in a row, as in Kubernetes and Tilt. Zeros in
//! the spec (values the Tiltfile left out) take Tilt's defaults.

use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::process::{self, SpawnSpec};
use crate::model::{Probe, ProbeAction};

/// The probe with Tilt's defaults applied to fields left at zero.
pub fn with_defaults(p: &Probe) -> Probe {
    Probe {
        initial_delay_secs: p.initial_delay_secs,
        timeout_secs: if p.timeout_secs == 0 {
            1
        } else {
            p.timeout_secs
        },
        period_secs: if p.period_secs == 0 {
            10
        } else {
            p.period_secs
        },
        success_threshold: p.success_threshold.max(1),
        failure_threshold: if p.failure_threshold == 0 {
            3
        } else {
            p.failure_threshold
        },
        action: p.action.clone(),
    }
}

/// One probe result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeResult {
    Success,
    Failure(String),
}

/// Runs `probe` until `cancel` fires, sending `true`/`false` on every readiness transition
/// (the first transition to ready included), with the failure message when it turns unready.
pub async fn run(
    probe: Probe,
    dir: PathBuf,
    tx: mpsc::UnboundedSender<(bool, String)>,
    cancel: CancellationToken,
) {
    let probe = with_defaults(&probe);
    let sleep = |secs: u64| tokio::time::sleep(Duration::from_secs(secs));
    tokio::select! {
        _ = sleep(probe.initial_delay_secs) => {}
        _ = cancel.cancelled() => return,
    }
    let mut ready = false;
    let (mut successes, mut failures) = (0u32, 0u32);
    loop {
        let timeout = Duration::from_secs(probe.timeout_secs);
        let result = tokio::select! {
            r = check(&probe.action, &dir, timeout) => r,
            _ = cancel.cancelled() => return,
        };
        match result {
            ProbeResult::Success => {
                failures = 0;
                successes = successes.saturating_add(1);
                if !ready && successes >= probe.success_threshold {
                    ready = true;
                    let _ = tx.send((true, String::new()));
                }
            }
            ProbeResult::Failure(msg) => {
                successes = 0;
                failures = failures.saturating_add(1);
                if ready && failures >= probe.failure_threshold {
                    ready = false;
                    let _ = tx.send((false, msg));
                }
            }
        }
        tokio::select! {
            _ = sleep(probe.period_secs) => {}
            _ = cancel.cancelled() => return,
        }
    }
}

/// Runs the action once, bounded by `timeout`.
pub async fn check(action: &ProbeAction, dir: &std::path::Path, timeout: Duration) -> ProbeResult {
    match tokio::time::timeout(timeout, check_inner(action, dir, timeout)).await {
        Ok(r) => r,
        Err(_) => ProbeResult::Failure(format!("probe timed out after {}s", timeout.as_secs())),
    }
}

async fn check_inner(
    action: &ProbeAction,
    dir: &std::path::Path,
    timeout: Duration,
) -> ProbeResult {
    match action {
        ProbeAction::Exec { command } => {
            let spec = SpawnSpec {
                argv: command.clone(),
                dir: process::dir_or_cwd(dir),
                ..Default::default()
            };
            let mut child = match process::spawn(&spec) {
                Ok(c) => c,
                Err(e) => return ProbeResult::Failure(e.to_string()),
            };
            // Make sure a timed-out probe command is killed (drop kills the group too).
            let guard = CancellationToken::new();
            let outcome = tokio::time::timeout(timeout, child.wait()).await;
            match outcome {
                Ok(Ok(s)) if s.success() => ProbeResult::Success,
                Ok(Ok(s)) => ProbeResult::Failure(format!(
                    "exec probe {:?} failed: {}",
                    process::display_command(command),
                    process::describe_status(&s)
                )),
                Ok(Err(e)) => ProbeResult::Failure(e.to_string()),
                Err(_) => {
                    guard.cancel();
                    child.stop(Duration::ZERO, &guard).await;
                    ProbeResult::Failure("exec probe timed out".into())
                }
            }
        }
        ProbeAction::TcpSocket { host, port } => {
            let host = default_host(host);
            match TcpStream::connect((host, *port)).await {
                Ok(_) => ProbeResult::Success,
                Err(e) => ProbeResult::Failure(format!("dial tcp {host}:{port}: {e}")),
            }
        }
        ProbeAction::HttpGet {
            host,
            port,
            scheme,
            path,
        } => http_get(default_host(host), *port, scheme, path).await,
    }
}

fn default_host(host: &str) -> &str {
    if host.is_empty() { "localhost" } else { host }
}

/// A minimal HTTP/1.0 GET: success on a status from 200 to 399.
async fn http_get(host: &str, port: u16, scheme: &str, path: &str) -> ProbeResult {
    if !scheme.is_empty() && !scheme.eq_ignore_ascii_case("http") {
        return ProbeResult::Failure(format!(
            "http probe: scheme {scheme:?} is not supported, only http"
        ));
    }
    let url = format!("http://{host}:{port}{path}");
    let mut stream = match TcpStream::connect((host, port)).await {
        Ok(s) => s,
        Err(e) => return ProbeResult::Failure(format!("GET {url}: {e}")),
    };
    let path = if path.is_empty() { "/" } else { path };
    let request = format!(
        "GET {path} HTTP/1.0\r\nHost: {host}:{port}\r\nUser-Agent: tiltrs-probe\r\nAccept: */*\r\n\r\n"
    );
    if let Err(e) = stream.write_all(request.as_bytes()).await {
        return ProbeResult::Failure(format!("GET {url}: {e}"));
    }
    // Only the status line matters; read until the first line ends (or 1 KiB).
    let mut buf = Vec::with_capacity(128);
    let mut chunk = [0u8; 256];
    while !buf.contains(&b'\n') && buf.len() < 1024 {
        match stream.read(&mut chunk).await {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return ProbeResult::Failure(format!("GET {url}: {e}")),
        }
    }
    let line = String::from_utf8_lossy(&buf);
    let status = line
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse::<u16>().ok());
    match status {
        Some(code) if (200..400).contains(&code) => ProbeResult::Success,
        Some(code) => ProbeResult::Failure(format!("GET {url}: HTTP status {code}")),
        None => ProbeResult::Failure(format!("GET {url}: malformed HTTP response")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[tokio::test]
    async fn http_probe_reads_the_status_line() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = tokio::spawn(async move {
            for status in ["200 OK", "503 Service Unavailable"] {
                let (mut s, _) = listener.accept().await.expect("accept");
                let mut req = [0u8; 512];
                let _ = s.read(&mut req).await;
                let _ = s
                    .write_all(format!("HTTP/1.0 {status}\r\n\r\n").as_bytes())
                    .await;
            }
        });
        let ok = http_get("127.0.0.1", port, "http", "/health").await;
        assert_eq!(ok, ProbeResult::Success);
        let bad = http_get("127.0.0.1", port, "", "").await;
        assert!(matches!(bad, ProbeResult::Failure(m) if m.contains("503")));
        server.await.expect("server");
    }

    #[tokio::test]
    async fn tcp_probe_fails_on_closed_port() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        drop(listener);
        let action = ProbeAction::TcpSocket {
            host: "127.0.0.1".into(),
            port,
        };
        let r = check(&action, std::path::Path::new("/"), Duration::from_secs(1)).await;
        assert!(matches!(r, ProbeResult::Failure(_)));
    }

    #[tokio::test]
    async fn exec_probe_uses_exit_code() {
        let ok = ProbeAction::Exec {
            command: vec!["true".into()],
        };
        let bad = ProbeAction::Exec {
            command: vec!["false".into()],
        };
        let dir = std::env::temp_dir();
        assert_eq!(
            check(&ok, &dir, Duration::from_secs(5)).await,
            ProbeResult::Success
        );
        assert!(matches!(
            check(&bad, &dir, Duration::from_secs(5)).await,
            ProbeResult::Failure(_)
        ));
    }
}
