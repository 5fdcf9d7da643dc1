//! The Kubernetes runtime: one lazily connected `kube` client for the session's context, and
//! the pieces that run `k8s_yaml`/`k8s_custom_deploy` resources on it.
//!
//! | module | owns |
//! |---|---|
//! | `client` | kubeconfig (context, namespace, overrides), the dev-cluster safety rule, the KEP-1755 registry |
//! | `manifest` | pure: objects made ready to apply (labels, defaults a v1.20 server needs, built image tags, order) |
//! | `apply` | server-side apply through discovery, delete-and-recreate of immutable objects, deletes for `down` |
//! | `pods` | following a resource's pods through a watch: phase, readiness, restarts, waiting reasons |
//! | `logs` | streaming each container's log into the resource's log across restarts |
//! | `follow` | what stays open for a deployed resource: its pod watch, log streams and port-forwards |
//! | `portforward` | `port_forwards` to the current ready pod, re-established as pods change |
//! | `exec` | live updates into a pod's container through exec |
//!
//! Connecting happens on first use: a Tiltfile without Kubernetes resources never reads the
//! kubeconfig, and a cluster that is down is an error on the resources that need it, retried
//! on their next update.

pub mod apply;
pub mod client;
pub mod exec;
pub mod follow;
pub mod logs;
pub mod manifest;
pub mod pods;
pub mod portforward;

use std::sync::Arc;

use thiserror::Error;
use tokio::sync::Mutex;

pub use client::{ClusterInfo, K8sOverrides};

#[derive(Debug, Error)]
pub enum K8sError {
    /// The kubeconfig cannot be read or names no usable context.
    #[error("kubeconfig: {0}")]
    Config(String),
    /// The API server cannot be reached.
    #[error("cannot reach the Kubernetes API server of context {context:?}: {message}")]
    Connect { context: String, message: String },
    /// An API call failed; `action` says what was being done (`applying Deployment web`).
    #[error("{action}: {message}")]
    Api { action: String, message: String },
    /// A live update or exec step failed.
    #[error("{0}")]
    Exec(String),
}

impl K8sError {
    /// Wraps a `kube` error with what was being done.
    pub fn api(action: impl Into<String>) -> impl FnOnce(kube::Error) -> K8sError {
        let action = action.into();
        move |e| K8sError::Api {
            action,
            message: describe(&e),
        }
    }
}

/// A `kube` error as a user reads it: the API server's message when there is one.
pub fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => {
            let msg = status.message.trim();
            if msg.is_empty() {
                format!("{} ({})", status.reason, status.code)
            } else {
                msg.to_string()
            }
        }
        other => other.to_string(),
    }
}

/// A container of a pod: where exec, logs and port-forwards go.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
    pub container: String,
}

/// A connected client and what was learnt connecting.
type Connection = (kube::Client, Arc<ClusterInfo>);

/// The session's cluster connection, made on first use. Cheap to clone.
#[derive(Clone, Default)]
pub struct K8sHandle {
    overrides: K8sOverrides,
    slot: Arc<Mutex<Option<Connection>>>,
}

impl std::fmt::Debug for K8sHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("K8sHandle")
            .field("overrides", &self.overrides)
            .finish_non_exhaustive()
    }
}

impl K8sHandle {
    pub fn new(overrides: K8sOverrides) -> Self {
        K8sHandle {
            overrides,
            slot: Arc::default(),
        }
    }

    /// The client and what tiltrs knows of the cluster, connecting on first use. A failed
    /// connection is not kept: the next call tries again.
    pub async fn get(&self) -> Result<Connection, K8sError> {
        let mut slot = self.slot.lock().await;
        if let Some((client, info)) = slot.as_ref() {
            return Ok((client.clone(), info.clone()));
        }
        let (client, info) = client::connect(&self.overrides).await?;
        let info = Arc::new(info);
        *slot = Some((client.clone(), info.clone()));
        Ok((client, info))
    }

    /// Forgets the connection (after the API server was unreachable), so the next use
    /// reconnects and reads the registry again.
    pub async fn reset(&self) {
        *self.slot.lock().await = None;
    }
}
