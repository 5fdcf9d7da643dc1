//! Who may talk to the API: the Host check against DNS rebinding, the token mutations need,
//! and the owner-only session file through which CLI clients get that token.

use std::io::Write as _;
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use serde::{Deserialize, Serialize};

use super::{ApiError, AppState, error_reply};

/// The header that carries the session token.
pub const TOKEN_HEADER: &str = "x-tiltrs-token";

/// The Host values accepted, and the token.
#[derive(Debug)]
pub struct Guard {
    /// `None` when listening on every interface: any Host is accepted then.
    allowed_hosts: Option<Vec<String>>,
    token: String,
}

impl Guard {
    pub fn new(host: &str, addr: SocketAddr, token: String) -> Self {
        let port = addr.port();
        let allowed_hosts = if addr.ip().is_unspecified() {
            None
        } else {
            let mut hosts = vec![format!("{host}:{port}"), addr.to_string()];
            if addr.ip().is_loopback() || host == "localhost" {
                for h in ["localhost", "127.0.0.1", "[::1]"] {
                    hosts.push(format!("{h}:{port}"));
                }
            }
            Some(hosts)
        };
        Guard {
            allowed_hosts,
            token,
        }
    }

    fn host_allowed(&self, host: Option<&str>) -> bool {
        match (&self.allowed_hosts, host) {
            (None, _) => true,
            (Some(allowed), Some(h)) => allowed.iter().any(|a| a.eq_ignore_ascii_case(h)),
            (Some(_), None) => false,
        }
    }

    fn token_ok(&self, headers: &HeaderMap) -> bool {
        headers
            .get(TOKEN_HEADER)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| constant_time_eq(t.as_bytes(), self.token.as_bytes()))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Refuses requests whose Host header is not the address the session listens on.
pub(super) async fn check_host(
    State(shared): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok());
    if !shared.guard.host_allowed(host) {
        return error_reply(
            StatusCode::FORBIDDEN,
            format!(
                "Host {:?} is not this session's address",
                host.unwrap_or("")
            ),
        );
    }
    next.run(request).await
}

/// Refuses mutations without the session token.
pub(super) async fn require_token(
    State(shared): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if !shared.guard.token_ok(request.headers()) {
        return error_reply(
            StatusCode::UNAUTHORIZED,
            format!("missing or wrong {TOKEN_HEADER} header"),
        );
    }
    next.run(request).await
}

/// 32 random bytes, hex-encoded.
pub fn new_token() -> Result<String, ApiError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| ApiError::Token(e.to_string()))?;
    Ok(hex::encode(bytes))
}

/// What a session file holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionInfo {
    pub pid: u32,
    pub host: String,
    pub port: u16,
    pub token: String,
}

/// `~/.tiltrs/sessions`, where sessions leave their token for CLI clients.
pub fn default_session_dir() -> Option<PathBuf> {
    dirs::home_dir().map(|h| h.join(".tiltrs").join("sessions"))
}

fn session_path(dir: &Path, port: u16) -> PathBuf {
    dir.join(format!("{port}.json"))
}

/// Reads the session file of the session on `port`.
pub fn read_session(dir: &Path, port: u16) -> std::io::Result<SessionInfo> {
    let text = std::fs::read_to_string(session_path(dir, port))?;
    serde_json::from_str(&text).map_err(std::io::Error::other)
}

/// The session file, removed when dropped.
#[derive(Debug)]
pub struct SessionFile {
    path: PathBuf,
}

impl SessionFile {
    /// Writes `DIR/PORT.json` readable by the owner only (the directory is 0700).
    pub fn write(dir: &Path, host: &str, port: u16, token: &str) -> Result<Self, ApiError> {
        let path = session_path(dir, port);
        let fail = |reason| ApiError::SessionFile {
            path: path.clone(),
            reason,
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(fail)?;
        let info = SessionInfo {
            pid: std::process::id(),
            host: host.to_string(),
            port,
            token: token.to_string(),
        };
        let tmp = dir.join(format!(".{port}.json.{}", std::process::id()));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(fail)?;
        let text = serde_json::to_string(&info)
            .map_err(std::io::Error::other)
            .map_err(fail)?;
        file.write_all(text.as_bytes()).map_err(fail)?;
        std::fs::rename(&tmp, &path).map_err(fail)?;
        Ok(SessionFile { path })
    }
}

impl Drop for SessionFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_sessions_accept_the_loopback_names_only() {
        let addr: SocketAddr = "127.0.0.1:10350".parse().unwrap_or_else(|e| panic!("{e}"));
        let guard = Guard::new("127.0.0.1", addr, "t".into());
        for ok in [
            "127.0.0.1:10350",
            "localhost:10350",
            "LOCALHOST:10350",
            "[::1]:10350",
        ] {
            assert!(guard.host_allowed(Some(ok)), "{ok}");
        }
        for bad in ["evil.example:10350", "localhost:80", "127.0.0.1", ""] {
            assert!(!guard.host_allowed(Some(bad)), "{bad}");
        }
        assert!(!guard.host_allowed(None));
    }

    #[test]
    fn session_file_is_owner_only_and_removed_on_drop() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let sessions = dir.path().join("sessions");
        let file = SessionFile::write(&sessions, "127.0.0.1", 4242, "secret")
            .unwrap_or_else(|e| panic!("{e}"));
        let meta = std::fs::metadata(sessions.join("4242.json")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let dir_meta = std::fs::metadata(&sessions).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(dir_meta.permissions().mode() & 0o777, 0o700);
        let info = read_session(&sessions, 4242).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(info.token, "secret");
        drop(file);
        assert!(read_session(&sessions, 4242).is_err());
    }
}
