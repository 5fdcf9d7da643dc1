//! The HTTP API and web UI of a running `tiltrs up` (contract: `docs/api.md`).
//!
//! One axum router over the engine's [`EngineHandle`]: JSON reads of the session and the
//! resources, server-sent-event streams of state changes ([`events`]) and logs ([`logs`]),
//! mutations (trigger, enable/disable, args) behind the session token, and the embedded UI
//! ([`assets`]). [`guard`] owns the Host check, the token and the session file CLI clients
//! read.

mod assets;
mod events;
pub mod guard;
mod logs;
pub mod views;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router, middleware};
use thiserror::Error;
use tokio::task::JoinHandle;

use crate::engine::{EngineError, EngineHandle};
use guard::SessionFile;
use views::{Reply, ResourceList, ResourceView, SessionView};

#[derive(Debug, Error)]
pub enum ApiError {
    #[error(
        "cannot listen on {addr}: {reason} (is another tiltrs or Tilt session running? pick another port with --port)"
    )]
    Bind {
        addr: String,
        reason: std::io::Error,
    },
    #[error("cannot write the session file {path}: {reason}")]
    SessionFile {
        path: std::path::PathBuf,
        reason: std::io::Error,
    },
    #[error("cannot generate a session token: {0}")]
    Token(String),
}

/// State shared by every request.
struct Shared {
    engine: EngineHandle,
    guard: guard::Guard,
    start_time: SystemTime,
    index_html: String,
}

impl Shared {
    fn store(&self) -> &crate::engine::Store {
        self.engine.store()
    }
}

type AppState = Arc<Shared>;

/// A running API server; dropping it stops serving and removes the session file.
#[derive(Debug)]
pub struct ApiServer {
    addr: SocketAddr,
    token: String,
    task: JoinHandle<()>,
    _session_file: Option<SessionFile>,
}

impl ApiServer {
    /// The address it listens on (the real port when 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The token mutations need.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The web UI's address.
    pub fn url(&self) -> String {
        let host = if self.addr.ip().is_loopback() || self.addr.ip().is_unspecified() {
            "localhost".to_string()
        } else {
            self.addr.ip().to_string()
        };
        format!("http://{host}:{}/", self.addr.port())
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A bound, not yet serving, listener: bind before starting anything, so a taken port
/// fails fast.
#[derive(Debug)]
pub struct Listener {
    host: String,
    listener: tokio::net::TcpListener,
    addr: SocketAddr,
}

impl Listener {
    pub async fn bind(host: &str, port: u16) -> Result<Self, ApiError> {
        let addr_text = format!("{host}:{port}");
        let fail = |reason| ApiError::Bind {
            addr: addr_text.clone(),
            reason,
        };
        let listener = tokio::net::TcpListener::bind((host, port))
            .await
            .map_err(fail)?;
        let addr = listener.local_addr().map_err(fail)?;
        Ok(Listener {
            host: host.to_string(),
            listener,
            addr,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// Serves the API and UI for `engine` on `listener` until the server is dropped. With a
/// `session_dir`, writes the session file there (see [`guard::SessionFile`]).
pub fn serve(
    listener: Listener,
    engine: EngineHandle,
    session_dir: Option<&std::path::Path>,
) -> Result<ApiServer, ApiError> {
    let Listener {
        host,
        listener,
        addr,
    } = listener;
    let token = guard::new_token()?;
    let session_file = match session_dir {
        Some(dir) => Some(SessionFile::write(dir, &host, addr.port(), &token)?),
        None => None,
    };
    let shared = Arc::new(Shared {
        engine,
        guard: guard::Guard::new(&host, addr, token.clone()),
        start_time: SystemTime::now(),
        index_html: assets::index_html(&token),
    });
    let app = router(shared);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(ApiServer {
        addr,
        token,
        task,
        _session_file: session_file,
    })
}

fn router(shared: AppState) -> Router {
    let mutations = Router::new()
        .route("/api/resources/{name}/trigger", post(trigger))
        .route("/api/resources/{name}/enable", post(enable))
        .route("/api/resources/{name}/disable", post(disable))
        .route("/api/args", post(set_args))
        .route_layer(middleware::from_fn_with_state(
            shared.clone(),
            guard::require_token,
        ));
    Router::new()
        .route("/", get(assets::index))
        .route("/assets/{file}", get(assets::asset))
        .route("/api/session", get(session))
        .route("/api/resources", get(resources))
        .route("/api/resources/{name}", get(resource))
        .route("/api/events", get(events::stream))
        .route("/api/logs", get(logs::page))
        .route("/api/logs/stream", get(logs::stream))
        .merge(mutations)
        .layer(middleware::from_fn_with_state(
            shared.clone(),
            guard::check_host,
        ))
        .with_state(shared)
}

/// An error reply: `{"error": ...}` with a status.
pub(crate) fn error_reply(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        Json(Reply {
            ok: false,
            error: Some(message.into()),
        }),
    )
        .into_response()
}

fn session_view(shared: &Shared) -> SessionView {
    let store = shared.engine.store();
    SessionView::new(
        &store.snapshot().tiltfile,
        store.log_usage(),
        shared.start_time,
    )
}

async fn session(State(shared): State<AppState>) -> Json<SessionView> {
    Json(session_view(&shared))
}

async fn resources(State(shared): State<AppState>) -> Json<ResourceList> {
    let state = shared.engine.store().snapshot();
    Json(ResourceList {
        resources: state
            .resources
            .iter()
            .map(|r| ResourceView::new(r))
            .collect(),
    })
}

async fn resource(State(shared): State<AppState>, Path(name): Path<String>) -> Response {
    match shared.engine.store().snapshot().resource(&name) {
        Some(r) => Json(ResourceView::new(r)).into_response(),
        None => error_reply(StatusCode::NOT_FOUND, format!("no resource named {name:?}")),
    }
}

fn engine_reply(outcome: Result<(), EngineError>) -> Response {
    let status = match &outcome {
        Ok(()) => {
            return Json(Reply {
                ok: true,
                error: None,
            })
            .into_response();
        }
        Err(EngineError::UnknownResource(_)) => StatusCode::NOT_FOUND,
        Err(EngineError::Disabled(_)) => StatusCode::CONFLICT,
        Err(EngineError::ArgsUnsupported) => StatusCode::BAD_REQUEST,
        Err(EngineError::Stopped) => StatusCode::SERVICE_UNAVAILABLE,
    };
    let message = outcome.err().map(|e| e.to_string()).unwrap_or_default();
    error_reply(status, message)
}

async fn trigger(State(shared): State<AppState>, Path(name): Path<String>) -> Response {
    engine_reply(shared.engine.trigger(&name).await)
}

async fn enable(State(shared): State<AppState>, Path(name): Path<String>) -> Response {
    engine_reply(shared.engine.set_enabled(&name, true).await)
}

async fn disable(State(shared): State<AppState>, Path(name): Path<String>) -> Response {
    engine_reply(shared.engine.set_enabled(&name, false).await)
}

/// `POST /api/args` body.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct ArgsRequest {
    pub args: Vec<String>,
}

async fn set_args(State(shared): State<AppState>, body: axum::body::Bytes) -> Response {
    match serde_json::from_slice::<ArgsRequest>(&body) {
        Ok(req) => engine_reply(shared.engine.set_args(req.args).await),
        Err(e) => error_reply(
            StatusCode::BAD_REQUEST,
            format!("expected {{\"args\": [strings]}}: {e}"),
        ),
    }
}
