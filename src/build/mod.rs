//! Image builds: build contexts (`.dockerignore`, `only`, `ignore`), `docker_build` through the
//! Docker engine and `custom_build` commands, in image-dependency order.
//!
//! [`build_images`] builds what one resource needs: base images first, each dependant with
//! its `FROM` lines pointing at the tag its base was just built as. Every image gets a tag
//! derived from its inputs ([`content_tag`]), which is what deploys reference.

pub mod context;
mod custom;
mod docker;
pub mod dockerignore;
pub mod push;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio_util::sync::CancellationToken;

use crate::docker::{DockerError, DockerHandle};
use crate::model::{Builder, ImageTarget};
use crate::runtime::LogSink;

pub use docker::rewrite_from_lines;

/// An image that is ready to deploy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltImage {
    /// The ref the Tiltfile declared.
    pub image_ref: String,
    /// The full reference to deploy (`name:tilt-<hash>`).
    pub tag: String,
    /// Nothing was built: the engine already had this tag.
    pub cached: bool,
}

#[derive(Debug, Error)]
pub enum BuildError {
    #[error("image {image}: build context: {message}")]
    Context { image: String, message: String },
    #[error("image {image}: build failed{}: {message}", step_suffix(step))]
    Failed {
        image: String,
        step: String,
        message: String,
    },
    #[error("image {image}: custom_build: {message}")]
    Custom { image: String, message: String },
    #[error("no image {0:?} is declared")]
    Unknown(String),
    #[error(transparent)]
    Docker(#[from] DockerError),
    #[error("build cancelled")]
    Cancelled,
    #[error("internal error: {0}")]
    Internal(String),
}

fn step_suffix(step: &str) -> String {
    if step.is_empty() {
        String::new()
    } else {
        format!(" at {step:?}")
    }
}

/// What builds need from the engine besides the images: where commands run and how they stop.
#[derive(Clone)]
pub struct BuildEnv {
    pub docker: DockerHandle,
    /// Environment for `custom_build` commands (the Tiltfile's changes, `TILT_HOST`, ...).
    pub env: BTreeMap<String, String>,
    pub log: Arc<dyn LogSink>,
    pub cancel: CancellationToken,
    pub grace: Duration,
    pub kill_now: CancellationToken,
}

/// `name:tilt-<first 16 hex digits of digest>`, keeping any registry and dropping a tag.
pub fn content_tag(image_ref: &str, digest: &str) -> String {
    let (name, _) = split_tag(image_ref);
    let short = digest.get(..16).unwrap_or(digest);
    format!("{name}:tilt-{short}")
}

/// `(name, tag)` of a reference; a `:` inside the registry host is not a tag.
pub fn split_tag(r: &str) -> (&str, Option<&str>) {
    let r = r.split('@').next().unwrap_or(r);
    match r.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name, Some(tag)),
        _ => (r, None),
    }
}

/// Builds the images `refs` (declared in `images`) and the declared images they build on, base
/// images first. Returns every built image by its declared ref.
pub async fn build_images(
    images: &[ImageTarget],
    refs: &[String],
    env: &BuildEnv,
) -> Result<BTreeMap<String, BuiltImage>, BuildError> {
    let order = build_order(images, refs)?;
    let mut built: BTreeMap<String, BuiltImage> = BTreeMap::new();
    for image in order {
        if env.cancel.is_cancelled() {
            return Err(BuildError::Cancelled);
        }
        let base_tags: BTreeMap<String, String> = image
            .image_deps
            .iter()
            .filter_map(|d| built.get(d).map(|b| (d.clone(), b.tag.clone())))
            .collect();
        let result = match image.builder {
            Builder::Docker => {
                let docker = env.docker.get().await?;
                docker::build(&docker, image, &base_tags, &env.log, &env.cancel).await?
            }
            Builder::Custom => custom::build(image, &base_tags, env).await?,
        };
        built.insert(image.image_ref.clone(), result);
    }
    Ok(built)
}

/// `refs` and their declared base images, each after the images it builds on.
fn build_order<'a>(
    images: &'a [ImageTarget],
    refs: &[String],
) -> Result<Vec<&'a ImageTarget>, BuildError> {
    fn visit<'a>(
        r: &str,
        images: &'a [ImageTarget],
        out: &mut Vec<&'a ImageTarget>,
        seen: &mut Vec<String>,
    ) -> Result<(), BuildError> {
        if seen.iter().any(|s| s == r) {
            return Ok(());
        }
        seen.push(r.to_string());
        let image = images
            .iter()
            .find(|i| i.image_ref == r)
            .ok_or_else(|| BuildError::Unknown(r.to_string()))?;
        for dep in &image.image_deps {
            visit(dep, images, out, seen)?;
        }
        out.push(image);
        Ok(())
    }
    let mut out = Vec::new();
    let mut seen = Vec::new();
    for r in refs {
        visit(r, images, &mut out, &mut seen)?;
    }
    Ok(out)
}

/// The paths whose changes are changes of `image`'s inputs: its context (docker_build) or its
/// deps (custom_build).
pub fn input_paths(image: &ImageTarget) -> Vec<PathBuf> {
    match &image.custom {
        Some(custom) => custom.deps.clone(),
        None => vec![image.context.clone()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_tags_keep_the_registry_and_drop_the_tag() {
        assert_eq!(
            content_tag("app", "0123456789abcdef99"),
            "app:tilt-0123456789abcdef"
        );
        assert_eq!(
            content_tag("localhost:5000/app:v1", "0123456789abcdef"),
            "localhost:5000/app:tilt-0123456789abcdef"
        );
        assert_eq!(
            split_tag("localhost:5000/app"),
            ("localhost:5000/app", None)
        );
    }
}
