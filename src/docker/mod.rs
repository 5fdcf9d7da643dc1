//! The Docker engine connection: one lazily connected, version-negotiated `bollard` client
//! shared by builds, Compose resources and live updates, and the typed errors they report.
//!
//! The engine is found as the `docker` CLI finds it (`DOCKER_HOST`, else the default socket).
//! Connecting happens on first use, so a project without images never touches Docker, and a
//! failed connection is retried on the next use (the daemon may have been started since).

pub mod container;
pub mod sync_channel;

use std::sync::Arc;
use std::time::Duration;

use bollard::Docker;
use thiserror::Error;
use tokio::sync::Mutex;

/// Large build contexts can take long to upload; the request timeout covers the whole upload.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Debug, Error)]
pub enum DockerError {
    #[error("cannot connect to the Docker engine{}: {source}", host_hint())]
    Connect { source: bollard::errors::Error },
    #[error("{action}: {source}")]
    Api {
        action: String,
        source: bollard::errors::Error,
    },
}

fn host_hint() -> String {
    match std::env::var("DOCKER_HOST") {
        Ok(h) if !h.is_empty() => format!(" at DOCKER_HOST={h}"),
        _ => " at unix:///var/run/docker.sock (is dockerd running?)".to_string(),
    }
}

impl DockerError {
    /// Wraps an API error with what was being done (`"inspecting image x"`).
    pub fn api(action: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> DockerError {
        let action = action.into();
        move |source| DockerError::Api { action, source }
    }
}

/// A shared, lazily connected Docker client, with the live-update channels open into
/// containers. Cheap to clone.
#[derive(Clone, Default)]
pub struct DockerHandle {
    client: Arc<Mutex<Option<Docker>>>,
    channels: Arc<sync_channel::SyncChannels>,
}

impl std::fmt::Debug for DockerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerHandle").finish_non_exhaustive()
    }
}

impl DockerHandle {
    /// The sync channels into containers.
    pub fn channels(&self) -> &sync_channel::SyncChannels {
        &self.channels
    }

    /// The client, connecting (and negotiating the API version) on first use.
    pub async fn get(&self) -> Result<Docker, DockerError> {
        let mut slot = self.client.lock().await;
        if let Some(docker) = slot.as_ref() {
            return Ok(docker.clone());
        }
        let docker = Docker::connect_with_defaults()
            .map_err(|source| DockerError::Connect { source })?
            .with_timeout(REQUEST_TIMEOUT)
            .negotiate_version()
            .await
            .map_err(|source| DockerError::Connect { source })?;
        *slot = Some(docker.clone());
        Ok(docker)
    }
}

/// Whether `image` exists in the engine's image store.
pub async fn image_exists(docker: &Docker, image: &str) -> Result<bool, DockerError> {
    match docker.inspect_image(image).await {
        Ok(_) => Ok(true),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(false),
        Err(e) => Err(DockerError::api(format!("inspecting image {image}"))(e)),
    }
}
