//! The engine: runs the resource graph, keeps it up to date, and records what happened.
//!
//! One task, the [`dispatcher`], owns the engine state. Everything else talks to it by
//! message: the Tiltfile loader (on a blocking thread), the file watcher, the per-resource
//! update tasks and serve supervisors of the runtime, and callers through [`EngineHandle`]
//! (trigger, reload, shutdown). After each message it asks the [`scheduler`] what may start
//! and publishes the new state to the [`Store`]. [`ci`] decides when a `tiltrs ci` run is over.

pub mod ci;
mod deploy;
mod dispatcher;
mod k8s_deploy;
pub mod scheduler;
pub mod state;
pub mod store;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::model::TiltfileResult;
use crate::tiltfile::{EvalOptions, TiltfileError};
use crate::watch::DebounceConfig;

pub use state::{
    BuildReason, BuildRecord, BuildResult, ContainerState, EngineState, ResourceState,
    RuntimeStatus, UpdateStatus,
};
pub use store::{LogKind, LogLine, LogPage, LogUsage, Store, TILTFILE_SPAN};

#[derive(Debug, Error, PartialEq, Eq)]
pub enum EngineError {
    #[error("no resource named {0:?}")]
    UnknownResource(String),
    #[error("resource {0:?} is disabled")]
    Disabled(String),
    #[error("the engine has stopped")]
    Stopped,
    #[error("this session's Tiltfile loader takes no arguments")]
    ArgsUnsupported,
}

/// Produces a Tiltfile result; [`TiltfileLoader`] evaluates the real Tiltfile, tests plug in
/// their own.
pub trait Loader: Send + Sync + 'static {
    fn load(&self) -> Result<TiltfileResult, TiltfileError>;

    /// The Tiltfile args (what follows `--`) this loader passes.
    fn args(&self) -> Vec<String> {
        Vec::new()
    }

    /// The same loader with other Tiltfile args, when it takes args.
    fn with_args(&self, _args: Vec<String>) -> Option<Arc<dyn Loader>> {
        None
    }
}

/// Evaluates a Tiltfile with [`crate::tiltfile::evaluate`].
#[derive(Debug, Clone)]
pub struct TiltfileLoader(pub EvalOptions);

impl Loader for TiltfileLoader {
    fn load(&self) -> Result<TiltfileResult, TiltfileError> {
        crate::tiltfile::evaluate(&self.0)
    }

    fn args(&self) -> Vec<String> {
        self.0.args.clone()
    }

    fn with_args(&self, args: Vec<String>) -> Option<Arc<dyn Loader>> {
        Some(Arc::new(TiltfileLoader(EvalOptions {
            args,
            ..self.0.clone()
        })))
    }
}

impl<F> Loader for F
where
    F: Fn() -> Result<TiltfileResult, TiltfileError> + Send + Sync + 'static,
{
    fn load(&self) -> Result<TiltfileResult, TiltfileError> {
        self()
    }
}

/// `up` keeps going; `ci` runs once and does not watch files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Up,
    Ci,
}

/// How to run the engine.
#[derive(Clone)]
pub struct EngineConfig {
    /// The main Tiltfile (for messages and state).
    pub tiltfile: PathBuf,
    pub loader: Arc<dyn Loader>,
    pub mode: Mode,
    /// Watch files (deps and config files).
    pub watch: bool,
    pub debounce: DebounceConfig,
    /// SIGTERM-to-SIGKILL grace when stopping a process group.
    pub stop_grace: Duration,
    /// Passed to every command as `TILT_HOST` / `TILT_PORT`.
    pub web_host: String,
    pub web_port: u16,
    /// Log memory kept (see [`Store::with_log_limit`]).
    pub log_limit_bytes: usize,
    /// `--context` / `--namespace`.
    pub k8s: crate::k8s::K8sOverrides,
}

impl std::fmt::Debug for EngineConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineConfig")
            .field("tiltfile", &self.tiltfile)
            .field("mode", &self.mode)
            .field("watch", &self.watch)
            .field("debounce", &self.debounce)
            .field("stop_grace", &self.stop_grace)
            .finish_non_exhaustive()
    }
}

impl EngineConfig {
    /// Defaults for running `tiltfile` with `loader`.
    pub fn new(tiltfile: PathBuf, loader: Arc<dyn Loader>, mode: Mode) -> Self {
        EngineConfig {
            tiltfile,
            loader,
            mode,
            watch: mode == Mode::Up,
            debounce: DebounceConfig::from_env(),
            stop_grace: Duration::from_secs(30),
            web_host: "127.0.0.1".into(),
            web_port: 10350,
            log_limit_bytes: store::DEFAULT_LOG_LIMIT_BYTES,
            k8s: crate::k8s::K8sOverrides::default(),
        }
    }
}

pub(crate) enum Msg {
    Trigger {
        name: String,
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
    Reload,
    SetEnabled {
        name: String,
        enabled: bool,
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
    SetArgs {
        args: Vec<String>,
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
    Shutdown {
        immediate: bool,
    },
    Loaded {
        result: Box<Result<TiltfileResult, TiltfileError>>,
        record: state::LoadRecord,
    },
    BuildDone {
        name: String,
        id: u64,
        outcome: crate::runtime::local::CmdOutcome,
    },
    Serve {
        name: String,
        id: u64,
        event: crate::runtime::local::ServeEvent,
    },
    Deployed {
        name: String,
        id: u64,
        outcome: deploy::DeployOutcome,
    },
    K8sDeployed {
        name: String,
        id: u64,
        outcome: k8s_deploy::K8sOutcome,
    },
    K8sFollow {
        name: String,
        id: u64,
        event: crate::k8s::follow::FollowEvent,
    },
    Container {
        name: String,
        id: u64,
        event: crate::runtime::compose::ContainerEvent,
    },
    Stopped,
}

/// A running engine: what the CLI and (later) the web API hold.
#[derive(Clone)]
pub struct EngineHandle {
    tx: mpsc::UnboundedSender<Msg>,
    store: Store,
}

impl std::fmt::Debug for EngineHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineHandle").finish_non_exhaustive()
    }
}

impl EngineHandle {
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Queues an update of `name`, as Tilt's trigger button does.
    pub async fn trigger(&self, name: &str) -> Result<(), EngineError> {
        self.ask(|reply| Msg::Trigger {
            name: name.to_string(),
            reply,
        })
        .await
    }

    /// Enables or disables `name`, as the UI's toggle does. The choice holds across Tiltfile
    /// reloads until the args change.
    pub async fn set_enabled(&self, name: &str, enabled: bool) -> Result<(), EngineError> {
        self.ask(|reply| Msg::SetEnabled {
            name: name.to_string(),
            enabled,
            reply,
        })
        .await
    }

    /// Replaces the Tiltfile args (what follows `--`) and reloads, as `tilt args` does.
    pub async fn set_args(&self, args: Vec<String>) -> Result<(), EngineError> {
        self.ask(|reply| Msg::SetArgs { args, reply }).await
    }

    async fn ask(
        &self,
        msg: impl FnOnce(oneshot::Sender<Result<(), EngineError>>) -> Msg,
    ) -> Result<(), EngineError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(msg(reply)).map_err(|_| EngineError::Stopped)?;
        rx.await.map_err(|_| EngineError::Stopped)?
    }

    /// Re-evaluates the Tiltfile.
    pub fn reload(&self) {
        let _ = self.tx.send(Msg::Reload);
    }

    /// Stops everything: gracefully (SIGTERM, then SIGKILL after the grace period), or at once
    /// with `immediate` (also cuts short a graceful stop already running).
    pub fn shutdown(&self, immediate: bool) {
        let _ = self.tx.send(Msg::Shutdown { immediate });
    }
}

/// Starts the engine on the current tokio runtime. The returned task ends after a shutdown,
/// once every process it started is gone.
pub fn start(config: EngineConfig) -> (EngineHandle, JoinHandle<()>) {
    let store = Store::with_log_limit(config.log_limit_bytes);
    let (tx, rx) = mpsc::unbounded_channel();
    let handle = EngineHandle {
        tx: tx.clone(),
        store: store.clone(),
    };
    let task = tokio::spawn(dispatcher::run(config, store, tx, rx));
    (handle, task)
}
