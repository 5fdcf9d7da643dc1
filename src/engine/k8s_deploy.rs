//! One update of a Kubernetes resource: a live update into its pod when the change allows it
//! (Tilt's rules, shared with [`super::deploy`]), else build its images, deliver them to the
//! cluster, and apply its objects (or run its `k8s_custom_deploy` apply command).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::io::AsyncReadExt;

use super::deploy::{deployed_image, live_update_plan};
use crate::build::{self, BuildEnv};
use crate::k8s::apply::{self, Applied, KindCache};
use crate::k8s::client::{self, check_context_allowed};
use crate::k8s::exec::{self, PodChannels};
use crate::k8s::manifest::{self, ImageMap};
use crate::k8s::pods::selector_string;
use crate::k8s::{K8sHandle, PodRef};
use crate::model::{CustomDeploySpec, ImageTarget, Resource, Settings};
use crate::runtime::LogSink;
use crate::runtime::process::{self, SpawnSpec};

/// The session's cluster: the connection, the kinds discovered, the sync receivers into pods.
#[derive(Clone, Default)]
pub struct Cluster {
    pub handle: K8sHandle,
    pub kinds: Arc<KindCache>,
    pub channels: Arc<PodChannels>,
}

/// What an update needs to know.
pub struct K8sDeployRequest {
    pub resource: Resource,
    pub images: Vec<ImageTarget>,
    pub changed: Option<Vec<PathBuf>>,
    /// The container a live update would go to, when the resource has a running pod.
    pub pod: Option<PodRef>,
    pub settings: Settings,
    pub build: BuildEnv,
    pub cluster: Cluster,
}

/// Where a deployed resource's pods are found.
#[derive(Clone)]
pub struct PodScope {
    pub client: kube::Client,
    pub namespaces: Vec<String>,
    pub selectors: Vec<String>,
}

impl std::fmt::Debug for PodScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodScope")
            .field("namespaces", &self.namespaces)
            .field("selectors", &self.selectors)
            .finish_non_exhaustive()
    }
}

/// How an update ended.
#[derive(Debug)]
pub enum K8sOutcome {
    Deployed {
        applied: Vec<Applied>,
        /// Declared image ref -> the reference the cluster pulls.
        images: BTreeMap<String, String>,
        scope: PodScope,
    },
    LiveUpdated,
    Failed(String),
    Cancelled,
}

/// Runs one update of a Kubernetes resource.
pub async fn update(req: K8sDeployRequest) -> K8sOutcome {
    let log = req.build.log.clone();
    let (client, info) = match req.cluster.handle.get().await {
        Ok(c) => c,
        Err(e) => {
            req.cluster.handle.reset().await;
            return K8sOutcome::Failed(e.to_string());
        }
    };
    if let Err(e) = check_context_allowed(&info.context, &req.settings.allowed_k8s_contexts) {
        return K8sOutcome::Failed(e);
    }
    let live_steps = req
        .resource
        .k8s
        .as_ref()
        .and_then(|k| k.custom_deploy.as_ref())
        .map(|c| c.live_update.clone());
    let plan = match &live_steps {
        // A custom deploy's live update has its own steps and no image of ours.
        Some(steps) if !steps.is_empty() => match (&req.changed, &req.pod) {
            (Some(changed), Some(pod)) => match crate::liveupdate::plan(steps, changed) {
                crate::liveupdate::Plan::Update(p) => Ok((pod.clone(), p)),
                crate::liveupdate::Plan::Fallback { reason } => Err(Some(reason)),
            },
            (Some(_), None) => Err(Some("no running container to live update".to_string())),
            _ => Err(None),
        },
        _ => live_update_plan(
            &req.resource,
            &req.images,
            req.changed.as_ref(),
            req.pod.clone(),
        ),
    };
    match plan {
        Ok((pod, plan)) => {
            match exec::apply(&client, &req.cluster.channels, &pod, &plan, &log).await {
                Ok(()) => return K8sOutcome::LiveUpdated,
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
        return K8sOutcome::Cancelled;
    }
    full_deploy(&req, client, &info, &log).await
}

async fn full_deploy(
    req: &K8sDeployRequest,
    client: kube::Client,
    info: &client::ClusterInfo,
    log: &Arc<dyn LogSink>,
) -> K8sOutcome {
    let Some(spec) = &req.resource.k8s else {
        return K8sOutcome::Failed(format!(
            "{} is not a Kubernetes resource",
            req.resource.name
        ));
    };
    let built = match build::build_images(&req.images, &req.resource.image_refs, &req.build).await {
        Ok(b) => b,
        Err(build::BuildError::Cancelled) => return K8sOutcome::Cancelled,
        Err(e) => return K8sOutcome::Failed(e.to_string()),
    };
    let delivery = client::delivery(info, req.settings.default_registry.as_ref());
    let mut images = ImageMap::default();
    for (image_ref, b) in &built {
        let Some(image) = req.images.iter().find(|i| &i.image_ref == image_ref) else {
            continue;
        };
        match build::push::deliver(&req.build.docker, image, b, &delivery, log).await {
            Ok(cluster_ref) => {
                images.refs.insert(image_ref.clone(), cluster_ref);
                if image.match_in_env_vars {
                    images.in_env.push(image_ref.clone());
                }
            }
            Err(e) => return K8sOutcome::Failed(e.to_string()),
        }
    }
    if req.build.cancel.is_cancelled() {
        return K8sOutcome::Cancelled;
    }
    let timeout = Duration::from_secs(req.settings.k8s_upsert_timeout_secs.max(1));
    let (applied, objects) = match &spec.custom_deploy {
        Some(custom) => match custom_apply(custom, &images, req, log).await {
            Ok(objects) => (
                objects
                    .iter()
                    .map(|o| Applied {
                        kind: manifest::kind(o).to_string(),
                        name: manifest::name(o).to_string(),
                        namespace: manifest::namespace(o).map(str::to_owned),
                        uid: o
                            .pointer("/metadata/uid")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string(),
                    })
                    .collect(),
                objects,
            ),
            Err(e) => return K8sOutcome::Failed(e),
        },
        None => {
            let manifests: Vec<Value> = spec.manifests.iter().map(|m| (**m).clone()).collect();
            let objects =
                manifest::prepare(&manifests, &spec.image_fields, &req.resource.name, &images);
            for o in &objects {
                log.line(&format!(
                    "Applying {} {}",
                    manifest::kind(o),
                    manifest::name(o)
                ));
            }
            match apply::apply_objects(
                &client,
                &req.cluster.kinds,
                &info.namespace,
                objects.clone(),
                timeout,
                log,
            )
            .await
            {
                Ok(applied) => (applied, objects),
                Err(e) => return K8sOutcome::Failed(e.to_string()),
            }
        }
    };
    let scope = pod_scope(req, client, &info.namespace, &applied, &objects);
    K8sOutcome::Deployed {
        applied,
        images: images.refs,
        scope,
    }
}

/// The namespaces and selectors under which the resource's pods appear.
fn pod_scope(
    req: &K8sDeployRequest,
    client: kube::Client,
    default_ns: &str,
    applied: &[Applied],
    objects: &[Value],
) -> PodScope {
    let mut namespaces: Vec<String> = applied
        .iter()
        .filter(|a| a.kind != "Namespace")
        .filter_map(|a| a.namespace.clone())
        .collect();
    let mut selectors = Vec::new();
    let spec = req.resource.k8s.as_ref();
    if spec.is_some_and(|s| s.custom_deploy.is_some()) {
        // What a custom deploy applies carries no label of ours: follow its workloads' selectors.
        for o in objects {
            let labels = match o.pointer("/spec/selector/matchLabels") {
                Some(Value::Object(labels)) => Some(labels),
                _ if manifest::kind(o) == "Pod" => {
                    o.pointer("/metadata/labels").and_then(Value::as_object)
                }
                _ => None,
            };
            let labels: BTreeMap<String, String> = labels
                .into_iter()
                .flatten()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect();
            if !labels.is_empty() {
                selectors.push(selector_string(&labels));
            }
        }
    } else {
        selectors.push(manifest::resource_selector(&req.resource.name));
    }
    if let Some(spec) = spec {
        selectors.extend(spec.extra_pod_selectors.iter().map(selector_string));
    }
    if namespaces.is_empty() {
        namespaces.push(default_ns.to_string());
    }
    namespaces.sort();
    namespaces.dedup();
    selectors.sort();
    selectors.dedup();
    PodScope {
        client,
        namespaces,
        selectors,
    }
}

/// Runs a custom deploy's apply command with the built images in its environment, and reads
/// the objects it prints.
async fn custom_apply(
    custom: &CustomDeploySpec,
    images: &ImageMap,
    req: &K8sDeployRequest,
    log: &Arc<dyn LogSink>,
) -> Result<Vec<Value>, String> {
    let mut env = req.build.env.clone();
    env.extend(custom.apply_env.clone());
    // As Tilt: for each image dependency, in order, its name and the reference to deploy.
    let deps = req
        .resource
        .image_refs
        .iter()
        .filter_map(|r| Some((r, images.refs.get(r)?)));
    for (i, (image_ref, cluster_ref)) in deps.enumerate() {
        env.insert(format!("TILT_IMAGE_MAP_{i}"), image_ref.clone());
        env.insert(format!("TILT_IMAGE_{i}"), cluster_ref.clone());
    }
    log.line(&format!(
        "Running cmd: {}",
        process::display_command(&custom.apply_cmd)
    ));
    let spec = SpawnSpec {
        argv: custom.apply_cmd.clone(),
        dir: process::dir_or_cwd(&custom.apply_dir),
        env,
        capture: true,
    };
    let mut child = process::spawn(&spec).map_err(|e| e.to_string())?;
    let mut stdout = child.take_stdout().ok_or("apply_cmd has no stdout")?;
    let stderr_log = log.clone();
    let stderr = child
        .take_stderr()
        .map(|s| process::pump_lines(s, Arc::new(move |line: &str| stderr_log.line(line))));
    let mut out = String::new();
    let read = stdout.read_to_string(&mut out);
    let status = tokio::select! {
        r = async { read.await.map_err(|e| e.to_string())?; child.wait().await.map_err(|e| e.to_string()) } => r?,
        _ = req.build.cancel.cancelled() => {
            child.stop(req.build.grace, &req.build.kill_now).await;
            return Err("apply_cmd cancelled".into());
        }
    };
    if let Some(h) = stderr {
        let _ = h.await;
    }
    if !status.success() {
        return Err(format!(
            "apply_cmd \"{}\" failed: {}",
            process::display_command(&custom.apply_cmd),
            process::describe_status(&status)
        ));
    }
    let objects = crate::tiltfile::parse_k8s_yaml(&out)
        .map_err(|e| format!("apply_cmd printed YAML that cannot be read: {e}"))?;
    if objects.is_empty() {
        log.line("apply_cmd printed no objects");
    }
    Ok(objects)
}

/// The container of `pods`' current pod that runs the resource's deployed image (or the one
/// a custom deploy's selectors name), as a live update target.
pub fn live_update_target(
    resource: &Resource,
    images: &[ImageTarget],
    deployed: &BTreeMap<String, String>,
    pods: &[crate::k8s::pods::PodSummary],
) -> Option<PodRef> {
    let pod = crate::k8s::pods::current(pods).filter(|p| p.phase == "Running")?;
    let custom = resource.k8s.as_ref().and_then(|k| k.custom_deploy.as_ref());
    let container = match custom {
        Some(c) if !c.container_selector.is_empty() => pod
            .containers
            .iter()
            .find(|k| k.name == c.container_selector),
        Some(c) if !c.image_selector.is_empty() => pod
            .containers
            .iter()
            .find(|k| crate::tiltfile::assemble::images::ref_matches(&c.image_selector, &k.image)),
        _ => {
            let image = deployed_image(resource, images)?;
            let cluster_ref = deployed.get(&image.image_ref)?;
            pod.containers.iter().find(|k| &k.image == cluster_ref)
        }
    }?;
    container.running.then(|| PodRef {
        namespace: pod.namespace.clone(),
        name: pod.name.clone(),
        container: container.name.clone(),
    })
}
