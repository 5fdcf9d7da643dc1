//! The HTTP client of the commands that talk to a running session (`get`, `describe`,
//! `logs`, `trigger`, `enable`, `disable`, `args`): where the session is, its token, and
//! errors a user can act on.

use std::io::{BufRead as _, BufReader};
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use clap::Args;
use serde::de::DeserializeOwned;

use crate::api::guard::{TOKEN_HEADER, default_session_dir, read_session};
use crate::api::views::Reply;

/// Which session to talk to.
#[derive(Debug, Clone, Args)]
pub struct SessionArgs {
    /// Port of the running `tiltrs up`.
    #[arg(long, env = "TILT_PORT", default_value_t = 10350)]
    pub port: u16,
    /// Host of the running `tiltrs up`.
    #[arg(long, env = "TILT_HOST", default_value = "127.0.0.1")]
    pub host: String,
}

/// Talks to one session.
pub struct Client {
    agent: ureq::Agent,
    base: String,
    port: u16,
}

/// One server-sent event.
#[derive(Debug, Default)]
pub struct SseEvent {
    pub event: String,
    pub data: String,
}

impl Client {
    pub fn new(args: &SessionArgs) -> Self {
        let host = match args.host.as_str() {
            "0.0.0.0" | "::" | "[::]" => "127.0.0.1",
            h => h,
        };
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(5)))
            .build()
            .into();
        Client {
            agent,
            base: format!("http://{host}:{}", args.port),
            port: args.port,
        }
    }

    fn unreachable(&self, err: ureq::Error) -> anyhow::Error {
        anyhow!(
            "no tiltrs session answers at {} ({err}); start one with `tiltrs up`, or pass --port",
            self.base
        )
    }

    fn check(
        &self,
        response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> anyhow::Result<ureq::http::Response<ureq::Body>> {
        let mut response = response.map_err(|e| self.unreachable(e))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let body = response.body_mut().read_to_string().unwrap_or_default();
        let message = serde_json::from_str::<Reply>(&body)
            .ok()
            .and_then(|r| r.error)
            .unwrap_or(body);
        bail!("{message} (HTTP {})", status.as_u16())
    }

    /// `GET path` as JSON.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let response = self.agent.get(format!("{}{path}", self.base)).call();
        self.check(response)?
            .body_mut()
            .with_config()
            .limit(u64::MAX)
            .read_json()
            .with_context(|| format!("unexpected reply to GET {path}"))
    }

    /// `POST path` with `body`, with the session token.
    pub fn post(&self, path: &str, body: &serde_json::Value) -> anyhow::Result<()> {
        let dir = default_session_dir().ok_or_else(|| anyhow!("no home directory"))?;
        let session = read_session(&dir, self.port).map_err(|e| {
            anyhow!(
                "no tiltrs session on port {} ({}: {e}); start one with `tiltrs up`, or pass --port",
                self.port,
                dir.join(format!("{}.json", self.port)).display()
            )
        })?;
        let response = self
            .agent
            .post(format!("{}{path}", self.base))
            .header(TOKEN_HEADER, &session.token)
            .send_json(body);
        self.check(response).map(|_| ())
    }

    /// Reads the server-sent events of `GET path`, calling `on_event` for each until it
    /// returns false or the stream ends.
    pub fn stream(
        &self,
        path: &str,
        mut on_event: impl FnMut(SseEvent) -> bool,
    ) -> anyhow::Result<()> {
        let response = self
            .agent
            .get(format!("{}{path}", self.base))
            .header("accept", "text/event-stream")
            .call();
        let mut response = self.check(response)?;
        let reader = BufReader::new(response.body_mut().as_reader());
        let mut event = SseEvent::default();
        for line in reader.lines() {
            let line = line.context("the log stream broke off")?;
            if line.is_empty() {
                if !event.data.is_empty() && !on_event(std::mem::take(&mut event)) {
                    return Ok(());
                }
                event = SseEvent::default();
            } else if let Some(name) = line.strip_prefix("event:") {
                event.event = name.trim().to_string();
            } else if let Some(data) = line.strip_prefix("data:") {
                if !event.data.is_empty() {
                    event.data.push('\n');
                }
                event.data.push_str(data.strip_prefix(' ').unwrap_or(data));
            }
        }
        Ok(())
    }
}
