//! Kubernetes assembly (filled in by the Kubernetes assembly work).

use crate::model::Resource;
use crate::tiltfile::state::State;

/// Kubernetes resources in Tilt's order, and the `uncategorized` resource if any.
#[derive(Debug, Default)]
pub struct K8sAssembly {
    pub resources: Vec<Resource>,
    pub uncategorized: Option<Resource>,
}

/// A workload object as `workload_to_resource_function` sees it (a `K8sObjectID`).
#[derive(Debug, Clone)]
pub struct WorkloadCandidate {
    /// Index into `State::k8s_objects`.
    pub index: usize,
    pub name: String,
    pub kind: String,
    pub namespace: String,
    pub group: String,
}

/// The objects that will become workload resources, in order.
pub fn workload_candidates(_state: &State) -> Vec<WorkloadCandidate> {
    Vec::new()
}

pub fn assemble(_state: &mut State) -> Result<K8sAssembly, String> {
    Ok(K8sAssembly::default())
}
