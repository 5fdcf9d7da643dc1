//! Getting a built image to a cluster's nodes: a push (bollard) to the registry the cluster
//! advertises or `default_registry()` names, with the names Tilt gives images there; nothing
//! for clusters on the local Docker engine; `kind load docker-image` for kind without a
//! registry. Returns the reference the cluster pulls.

use std::sync::Arc;

use bollard::query_parameters::{PushImageOptions, TagImageOptions};
use futures_util::StreamExt;

use super::{BuildError, BuiltImage, split_tag};
use crate::docker::{DockerError, DockerHandle};
use crate::k8s::client::{Delivery, name_in_registry};
use crate::model::ImageTarget;
use crate::runtime::LogSink;

/// `(pushed as, pulled by the cluster as)` for a built image.
pub fn cluster_refs(built: &BuiltImage, delivery: &Delivery) -> (String, String) {
    let (name, tag) = split_tag(&built.tag);
    let tag = tag.unwrap_or("latest");
    match delivery {
        Delivery::Push(r) => (
            format!("{}:{tag}", name_in_registry(&r.host, &r.single_name, name)),
            format!(
                "{}:{tag}",
                name_in_registry(&r.host_from_cluster, &r.single_name, name)
            ),
        ),
        _ => (built.tag.clone(), built.tag.clone()),
    }
}

/// Makes `built` pullable by the cluster and returns the reference manifests should name.
pub async fn deliver(
    docker: &DockerHandle,
    image: &ImageTarget,
    built: &BuiltImage,
    delivery: &Delivery,
    log: &Arc<dyn LogSink>,
) -> Result<String, BuildError> {
    let (push_ref, cluster_ref) = cluster_refs(built, delivery);
    if image
        .custom
        .as_ref()
        .is_some_and(|c| c.disable_push || c.skips_local_docker)
    {
        return Ok(cluster_ref);
    }
    match delivery {
        Delivery::LocalDocker => Ok(cluster_ref),
        Delivery::KindLoad { cluster } => {
            log.line(&format!(
                "Loading image {} into kind cluster {cluster}",
                built.tag
            ));
            let out = tokio::process::Command::new("kind")
                .args(["load", "docker-image", &built.tag, "--name", cluster])
                .kill_on_drop(true)
                .output()
                .await
                .map_err(|e| BuildError::Failed {
                    image: image.image_ref.clone(),
                    step: String::new(),
                    message: format!("running kind load: {e}"),
                })?;
            if !out.status.success() {
                return Err(BuildError::Failed {
                    image: image.image_ref.clone(),
                    step: String::new(),
                    message: format!(
                        "kind load failed: {}",
                        String::from_utf8_lossy(&out.stderr).trim()
                    ),
                });
            }
            Ok(cluster_ref)
        }
        Delivery::Push(_) | Delivery::AsNamed => {
            push(docker, image, &built.tag, &push_ref, log).await?;
            Ok(cluster_ref)
        }
    }
}

async fn push(
    docker: &DockerHandle,
    image: &ImageTarget,
    local: &str,
    remote: &str,
    log: &Arc<dyn LogSink>,
) -> Result<(), BuildError> {
    let client = docker.get().await?;
    let (repo, tag) = split_tag(remote);
    let tag = tag.unwrap_or("latest");
    if local != remote {
        let options = TagImageOptions {
            repo: Some(repo.to_string()),
            tag: Some(tag.to_string()),
        };
        client
            .tag_image(local, Some(options))
            .await
            .map_err(DockerError::api(format!("tagging {local} as {remote}")))?;
    }
    log.line(&format!("Pushing {remote}"));
    let options = PushImageOptions {
        tag: Some(tag.to_string()),
        ..Default::default()
    };
    let mut progress = client.push_image(repo, Some(options), None);
    while let Some(item) = progress.next().await {
        let failure = match item {
            Ok(info) => info.error_detail.and_then(|d| d.message),
            Err(e) => Some(e.to_string()),
        };
        if let Some(message) = failure {
            return Err(BuildError::Failed {
                image: image.image_ref.clone(),
                step: String::new(),
                message: format!("pushing {remote}: {message}"),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s::client::Registry;

    #[test]
    fn registry_names() {
        let built = BuiltImage {
            image_ref: "gcr.io/team/web".into(),
            tag: "gcr.io/team/web:tilt-0123".into(),
            cached: false,
        };
        let push = Delivery::Push(Registry {
            host: "localhost:5000".into(),
            host_from_cluster: "registry:5000".into(),
            single_name: String::new(),
        });
        assert_eq!(
            cluster_refs(&built, &push),
            (
                "localhost:5000/gcr.io_team_web:tilt-0123".to_string(),
                "registry:5000/gcr.io_team_web:tilt-0123".to_string()
            )
        );
        assert_eq!(
            cluster_refs(&built, &Delivery::LocalDocker).1,
            "gcr.io/team/web:tilt-0123"
        );
    }
}
