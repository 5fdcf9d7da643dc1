//! When `tiltrs ci` is done: a pure check of the engine state.
//!
//! Success once every enabled resource with `auto_init` has a successful update and, when it
//! has a `serve_cmd`, is ready (a Compose service: its container runs and is healthy, or
//! exited 0). Failure as soon as the Tiltfile fails, an update fails, a
//! serve process exits, or a container exits non-zero or turns unhealthy.

use super::state::{BuildResult, EngineState};

/// How a `ci` run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CiOutcome {
    Success,
    /// `resource` is `None` for a Tiltfile error.
    Failed {
        resource: Option<String>,
        error: String,
    },
}

/// `Some` once the run is decided.
pub fn check(state: &EngineState) -> Option<CiOutcome> {
    if let Some(error) = &state.tiltfile.error {
        return Some(CiOutcome::Failed {
            resource: None,
            error: error.clone(),
        });
    }
    if !state.tiltfile.loaded_once || state.tiltfile.loading {
        return None;
    }
    let mut all_done = true;
    for r in state
        .resources
        .iter()
        .filter(|r| r.spec.enabled && r.spec.auto_init)
    {
        if let Some(b) = r.last_build()
            && b.result == Some(BuildResult::Failure)
        {
            return Some(CiOutcome::Failed {
                resource: Some(r.name.clone()),
                error: b.error.clone().unwrap_or_else(|| "update failed".into()),
            });
        }
        if let Some(serve) = &r.serve
            && let Some(exit) = &serve.last_exit
            && serve.pid.is_none()
        {
            return Some(CiOutcome::Failed {
                resource: Some(r.name.clone()),
                error: format!("serve_cmd exited: {exit}"),
            });
        }
        if let Some(c) = &r.container
            && r.current.is_none()
            && (c.failed() || c.health.as_deref() == Some("unhealthy"))
        {
            let why = match c.exit_code {
                Some(code) if !c.running => format!("container {} exited with code {code}", c.name),
                _ => format!("container {} is unhealthy", c.name),
            };
            return Some(CiOutcome::Failed {
                resource: Some(r.name.clone()),
                error: why,
            });
        }
        let built = r.current.is_none()
            && r.queued.is_none()
            && r.last_build().and_then(|b| b.result) == Some(BuildResult::Success);
        let ready = r.serve.as_ref().is_none_or(|s| s.ready)
            && (r.spec.kind != crate::model::ResourceType::DockerCompose
                || r.runtime_status() == super::state::RuntimeStatus::Ok);
        if !(built && ready) {
            all_done = false;
        }
    }
    all_done.then_some(CiOutcome::Success)
}
