//! Runtimes: how resources actually run on this machine.
//!
//! [`process`] spawns every child in its own process group and stops groups with signal
//! escalation; [`reaper`] is the guard that kills those groups if tiltrs itself dies;
//! [`local`] runs a `local_resource`'s `cmd` and supervises its `serve_cmd`; [`probe`] runs
//! readiness probes; [`compose`] deploys Docker Compose services and follows their containers.
//! The Kubernetes runtime comes beside them.

pub mod compose;
pub mod local;
pub mod probe;
pub mod process;
pub mod reaper;

/// Where log lines and status changes of a running resource go (implemented by the engine).
pub trait LogSink: Send + Sync + 'static {
    /// One line of output (without its trailing newline).
    fn line(&self, text: &str);
}
