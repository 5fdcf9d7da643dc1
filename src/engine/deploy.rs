//! One update of a container resource (a Docker Compose service): live update when the change
//! allows it, else build its images and deploy.
//!
//! The decision follows Tilt: a live update needs a running container and changed files that
//! all belong to the deployed image, lie under its `sync()`s and none under a `fall_back_on`.
//! Anything else (or a live update that fails) is a full build and deploy, and the log says
//! why. The dispatcher runs [`update`] in a task and gets a [`DeployOutcome`] back.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::build::context::ContextFilter;
use crate::build::{self, BuildEnv, BuiltImage};
use crate::docker::container;
use crate::liveupdate::{self, Plan};
use crate::model::{ImageTarget, Resource};
use crate::runtime::LogSink;
use crate::runtime::compose::{self, CommandEnv, Deployed, ServiceOverride};

/// What an update needs to know.
pub struct DeployRequest {
    pub resource: Resource,
    pub images: Vec<ImageTarget>,
    /// The files that changed, when a file change caused the update.
    pub changed: Option<Vec<PathBuf>>,
    /// The running container, when there is one.
    pub container: Option<String>,
    pub build: BuildEnv,
}

/// How an update ended.
#[derive(Debug)]
pub enum DeployOutcome {
    Deployed {
        deployed: Deployed,
        images: BTreeMap<String, String>,
    },
    LiveUpdated,
    Failed(String),
    Cancelled,
}

/// The image a resource deploys: among its refs, the one no other of them builds on.
pub(super) fn deployed_image<'a>(
    resource: &Resource,
    images: &'a [ImageTarget],
) -> Option<&'a ImageTarget> {
    let mine: Vec<&ImageTarget> = images
        .iter()
        .filter(|i| resource.image_refs.contains(&i.image_ref))
        .collect();
    mine.iter()
        .find(|i| {
            !mine
                .iter()
                .any(|other| other.image_deps.contains(&i.image_ref))
        })
        .copied()
}

/// Which changed files belong to which of the resource's images.
fn files_of(image: &ImageTarget, changed: &[PathBuf]) -> Vec<PathBuf> {
    match &image.custom {
        Some(custom) => changed
            .iter()
            .filter(|p| custom.deps.iter().any(|d| p.starts_with(d)))
            .cloned()
            .collect(),
        None => match ContextFilter::for_image(image) {
            Ok(filter) => changed
                .iter()
                .filter(|p| filter.includes(p))
                .cloned()
                .collect(),
            Err(_) => changed.to_vec(),
        },
    }
}

/// The live update for this change, or why there is none (`Err` holds the reason to log; `None`
/// means a full deploy without comment). `target` is where it would go (a running container or
/// pod), when there is one.
pub(super) fn live_update_plan<T>(
    resource: &Resource,
    images: &[ImageTarget],
    changed: Option<&Vec<PathBuf>>,
    target: Option<T>,
) -> Result<(T, liveupdate::UpdatePlan), Option<String>> {
    let changed = changed.ok_or(None)?;
    let image = deployed_image(resource, images).ok_or(None)?;
    if image.live_update.is_empty() {
        return Err(None);
    }
    let target = target.ok_or_else(|| Some("no running container to live update".to_string()))?;
    let others: Vec<&ImageTarget> = images
        .iter()
        .filter(|i| i.image_ref != image.image_ref && resource.image_refs.contains(&i.image_ref))
        .collect();
    // The watcher reports only files some image of the resource sees: with one image, every
    // changed file is its own, and its context filter need not be built again here.
    if others.is_empty() {
        return match liveupdate::plan(&image.live_update, changed) {
            Plan::Fallback { reason } => Err(Some(reason)),
            Plan::Update(plan) => Ok((target, plan)),
        };
    }
    for other in others {
        if let Some(file) = files_of(other, changed).first() {
            return Err(Some(format!(
                "{} belongs to image {}, which has no live_update",
                file.display(),
                other.image_ref
            )));
        }
    }
    let mine = files_of(image, changed);
    if mine.is_empty() {
        return Err(None);
    }
    match liveupdate::plan(&image.live_update, &mine) {
        Plan::Fallback { reason } => Err(Some(reason)),
        Plan::Update(plan) => Ok((target, plan)),
    }
}

pub(super) fn has_syncs(steps: &[crate::model::LiveUpdateStep]) -> bool {
    steps
        .iter()
        .any(|s| matches!(s, crate::model::LiveUpdateStep::Sync { .. }))
}

/// Runs one update of a Docker Compose resource.
pub async fn update(req: DeployRequest) -> DeployOutcome {
    let log = req.build.log.clone();
    let plan = live_update_plan(
        &req.resource,
        &req.images,
        req.changed.as_ref(),
        req.container.clone(),
    );
    match plan {
        Ok((id, plan)) => {
            let result = container::apply(&req.build.docker, &id, &plan, &log)
                .await
                .map_err(|e| e.to_string());
            match result {
                Ok(()) => return DeployOutcome::LiveUpdated,
                Err(e) => log.line(&format!(
                    "Live update failed: {e}; falling back to a full build and deploy"
                )),
            }
        }
        Err(Some(reason)) => log.line(&format!(
            "Falling back to a full build and deploy: {reason}"
        )),
        Err(None) => {}
    }
    if req.build.cancel.is_cancelled() {
        return DeployOutcome::Cancelled;
    }
    full_deploy(&req, &log).await
}

async fn full_deploy(req: &DeployRequest, log: &Arc<dyn LogSink>) -> DeployOutcome {
    let Some(spec) = &req.resource.docker_compose else {
        return DeployOutcome::Failed(format!(
            "{} is not a Docker Compose resource",
            req.resource.name
        ));
    };
    let built = match build::build_images(&req.images, &req.resource.image_refs, &req.build).await {
        Ok(b) => b,
        Err(build::BuildError::Cancelled) => return DeployOutcome::Cancelled,
        Err(e) => return DeployOutcome::Failed(e.to_string()),
    };
    let image = deployed_image(&req.resource, &req.images);
    let service_override = ServiceOverride {
        image: image.and_then(|i| built.get(&i.image_ref).map(|b: &BuiltImage| b.tag.clone())),
    };
    let env = CommandEnv {
        env: req.build.env.clone(),
        log: log.clone(),
        cancel: req.build.cancel.clone(),
        grace: req.build.grace,
        kill_now: req.build.kill_now.clone(),
    };
    let deployed = match compose::up(&req.build.docker, spec, &service_override, &env).await {
        Ok(c) => c,
        Err(compose::ComposeError::Cancelled) => return DeployOutcome::Cancelled,
        Err(e) => return DeployOutcome::Failed(e.to_string()),
    };
    if let Some(image) =
        image.filter(|i| deployed.running && liveupdate::has_initial_sync(&i.live_update))
    {
        let result = async {
            let plan = liveupdate::initial_sync(&image.live_update).map_err(|e| e.to_string())?;
            container::apply(&req.build.docker, &deployed.container.id, &plan, log)
                .await
                .map_err(|e| e.to_string())
        }
        .await;
        if let Err(e) = result {
            return DeployOutcome::Failed(format!("initial sync: {e}"));
        }
    }
    if deployed.running && image.is_some_and(|i| has_syncs(&i.live_update)) {
        let handle = req.build.docker.clone();
        let id = deployed.container.id.clone();
        tokio::spawn(async move {
            if let Ok(docker) = handle.get().await {
                handle.channels().warm(&docker, &id).await;
            }
        });
    }
    DeployOutcome::Deployed {
        deployed,
        images: built.into_iter().map(|(r, b)| (r, b.tag)).collect(),
    }
}
