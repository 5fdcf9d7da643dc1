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
/// When a crashing Kubernetes container fails the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CiPolicy {
    /// A container in CrashLoopBackOff fails `ci` once it has restarted this many times (other
    /// waiting reasons that need a change, such as ImagePullBackOff, fail it at once).
    pub max_restarts: i32,
}

impl Default for CiPolicy {
    fn default() -> Self {
        CiPolicy { max_restarts: 3 }
    }
}

/// Whether a Kubernetes resource's pod has failed for `ci`: the reason, when it has.
fn k8s_failure(r: &super::state::ResourceState, policy: CiPolicy) -> Option<String> {
    let k = r.k8s.as_ref()?;
    let failure = k.pod_failure()?;
    let pod = crate::k8s::pods::current(&k.pods)?;
    let crash_looping = pod.containers.iter().find(|c| {
        c.waiting
            .as_ref()
            .is_some_and(|(w, _)| w == "CrashLoopBackOff")
    });
    match crash_looping {
        Some(c)
            if c.restarts < policy.max_restarts
                && pod.fatal_waiting().map(|w| w.0) == Some("CrashLoopBackOff") =>
        {
            None
        }
        Some(c) => Some(format!("{failure} (restarted {} times)", c.restarts)),
        None => Some(failure),
    }
}

pub fn check(state: &EngineState, policy: CiPolicy) -> Option<CiOutcome> {
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
        if r.current.is_none()
            && let Some(why) = k8s_failure(r, policy)
        {
            return Some(CiOutcome::Failed {
                resource: Some(r.name.clone()),
                error: why,
            });
        }
        let built = r.current.is_none()
            && r.queued.is_none()
            && r.last_build().and_then(|b| b.result) == Some(BuildResult::Success);
        let ready = r.serve.as_ref().is_none_or(|s| s.ready)
            && (!matches!(
                r.spec.kind,
                crate::model::ResourceType::DockerCompose
                    | crate::model::ResourceType::K8s
                    | crate::model::ResourceType::K8sCustomDeploy
            ) || r.runtime_status() == super::state::RuntimeStatus::Ok);
        if !(built && ready) {
            all_done = false;
        }
    }
    all_done.then_some(CiOutcome::Success)
}
