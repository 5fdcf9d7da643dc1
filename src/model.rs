//! The evaluated project as plain data: resources, image targets, live-update specs and settings.
//!
//! `tiltfile` produces a [`TiltfileResult`]; the engine consumes it. This module does no I/O and
//! knows no runtime. Its serde form is the `tiltrs alpha tiltfile-result` JSON document
//! (documented in `docs/tiltfile-result.md`), so field names here are part of the public contract.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Everything one evaluation of a Tiltfile declared.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TiltfileResult {
    /// Resources in Tilt's order: Kubernetes workloads (YAML order), `uncategorized`,
    /// Docker Compose services, then local resources in definition order.
    pub resources: Vec<Resource>,
    /// Images declared with `docker_build` / `custom_build`, in declaration order.
    pub images: Vec<ImageTarget>,
    pub settings: Settings,
    /// Every file the evaluation read; a change to any of them re-runs the Tiltfile.
    pub config_files: Vec<PathBuf>,
    pub warnings: Vec<String>,
    /// Changes the Tiltfile made to the environment (`os.putenv`, `os.environ[...] = `,
    /// `os.unsetenv`; `null` means unset), applied to every process tiltrs starts, as Tilt's
    /// own process environment would carry them.
    pub env: BTreeMap<String, Option<String>>,
}

impl TiltfileResult {
    /// The resource named `name`, if any.
    pub fn resource(&self, name: &str) -> Option<&Resource> {
        self.resources.iter().find(|r| r.name == name)
    }

    /// The image target whose ref is `image_ref`, if any.
    pub fn image(&self, image_ref: &str) -> Option<&ImageTarget> {
        self.images.iter().find(|i| i.image_ref == image_ref)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceType {
    K8s,
    Local,
    DockerCompose,
    K8sCustomDeploy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TriggerMode {
    #[default]
    Auto,
    Manual,
}

/// One unit the engine runs and the UI shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resource {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: ResourceType,
    pub enabled: bool,
    pub labels: Vec<String>,
    pub resource_deps: Vec<String>,
    pub trigger_mode: TriggerMode,
    pub auto_init: bool,
    /// Refs of the images (declared builds) this resource needs, base images included.
    pub image_refs: Vec<String>,
    pub k8s: Option<K8sSpec>,
    pub local: Option<LocalSpec>,
    pub docker_compose: Option<ComposeSpec>,
    pub links: Vec<Link>,
}

impl Resource {
    /// A resource of `kind` with Tilt's defaults and no runtime spec.
    pub fn new(name: impl Into<String>, kind: ResourceType) -> Self {
        Resource {
            name: name.into(),
            kind,
            enabled: true,
            labels: Vec::new(),
            resource_deps: Vec::new(),
            trigger_mode: TriggerMode::Auto,
            auto_init: true,
            image_refs: Vec::new(),
            k8s: None,
            local: None,
            docker_compose: None,
            links: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub url: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortForward {
    pub local_port: u16,
    pub container_port: Option<u16>,
    pub host: String,
    pub name: String,
    pub link_path: String,
}

/// Where an image reference sits in a Kubernetes object, as JSON pointers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageField {
    /// A string holding the whole reference.
    Ref(String),
    /// An object holding the repository and the tag in two fields (`image_object=`).
    Split { repo: String, tag: String },
}

/// A Kubernetes resource: the objects it applies and how its pods are followed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct K8sSpec {
    /// Object ids as `NAME:KIND:NAMESPACE` (namespace `default` when the YAML gives none).
    pub objects: Vec<String>,
    pub port_forwards: Vec<PortForward>,
    /// `wait`, `ignore` or `succeeded`.
    pub pod_readiness: String,
    /// The objects themselves, in the order they were declared. Kept in memory for the
    /// runtime; left out of `tiltfile-result` output, which lists their ids.
    #[serde(skip)]
    pub manifests: Vec<std::sync::Arc<serde_json::Value>>,
    /// For each manifest, where `k8s_kind(image_json_path=/image_object=)` found images, so
    /// that deploys put the built references there. Runtime only, like `manifests`.
    #[serde(skip)]
    pub image_fields: Vec<Vec<ImageField>>,
    pub extra_pod_selectors: Vec<BTreeMap<String, String>>,
    pub discovery_strategy: String,
    /// Set for `k8s_custom_deploy` resources.
    pub custom_deploy: Option<CustomDeploySpec>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomDeploySpec {
    pub apply_cmd: Vec<String>,
    pub apply_dir: PathBuf,
    pub apply_env: BTreeMap<String, String>,
    pub delete_cmd: Vec<String>,
    pub delete_dir: PathBuf,
    pub delete_env: BTreeMap<String, String>,
    pub deps: Vec<PathBuf>,
    pub image_selector: String,
    pub container_selector: String,
    pub live_update: Vec<LiveUpdateStep>,
}

/// A resource run on the host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocalSpec {
    /// argv of the update command; empty when there is none.
    pub cmd: Vec<String>,
    /// argv of the long-running command; empty when there is none.
    pub serve_cmd: Vec<String>,
    pub dir: PathBuf,
    pub serve_dir: PathBuf,
    pub deps: Vec<PathBuf>,
    /// dockerignore-style patterns, absolute.
    pub ignore: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub serve_env: BTreeMap<String, String>,
    pub allow_parallel: bool,
    pub readiness_probe: Option<Probe>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    pub initial_delay_secs: u64,
    pub timeout_secs: u64,
    pub period_secs: u64,
    pub success_threshold: u32,
    pub failure_threshold: u32,
    pub action: ProbeAction,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeAction {
    Exec {
        command: Vec<String>,
    },
    HttpGet {
        host: String,
        port: u16,
        scheme: String,
        path: String,
    },
    TcpSocket {
        host: String,
        port: u16,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComposeSpec {
    /// The service's name in the compose files (the resource may be renamed).
    pub service: String,
    pub project: String,
    /// Compose files in order, as `docker compose -f` takes them (Blobs written to files).
    pub config_files: Vec<PathBuf>,
    /// The project directory (`--project-directory`): the first compose file's directory, or
    /// the Tiltfile's when every config is a Blob.
    pub project_dir: PathBuf,
    /// The service's definition from the compose file, as JSON.
    pub service_config: serde_json::Value,
    pub env_file: Option<PathBuf>,
    pub profiles: Vec<String>,
    pub wait: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Builder {
    Docker,
    Custom,
}

/// An image to build: a `docker_build` or a `custom_build`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageTarget {
    #[serde(rename = "ref")]
    pub image_ref: String,
    pub builder: Builder,
    pub context: PathBuf,
    pub dockerfile: Option<PathBuf>,
    pub dockerfile_contents: String,
    pub build_args: BTreeMap<String, String>,
    pub target: String,
    pub only: Vec<String>,
    pub ignore: Vec<String>,
    pub live_update: Vec<LiveUpdateStep>,
    pub custom: Option<CustomBuildSpec>,
    pub match_in_env_vars: bool,
    pub entrypoint: Vec<String>,
    pub container_args: Option<Vec<String>>,
    pub network: String,
    pub extra_hosts: Vec<String>,
    pub platform: String,
    pub pull: bool,
    pub cache_from: Vec<String>,
    pub extra_tag: Vec<String>,
    pub ssh: Vec<String>,
    pub secret: Vec<String>,
    /// Refs of declared images this one builds on (Dockerfile `FROM`, `image_deps`).
    pub image_deps: Vec<String>,
}

impl ImageTarget {
    /// An image of `builder` with Tilt's defaults for every option.
    pub fn new(image_ref: impl Into<String>, builder: Builder, context: PathBuf) -> Self {
        ImageTarget {
            image_ref: image_ref.into(),
            builder,
            context,
            dockerfile: None,
            dockerfile_contents: String::new(),
            build_args: BTreeMap::new(),
            target: String::new(),
            only: Vec::new(),
            ignore: Vec::new(),
            live_update: Vec::new(),
            custom: None,
            match_in_env_vars: false,
            entrypoint: Vec::new(),
            container_args: None,
            network: String::new(),
            extra_hosts: Vec::new(),
            platform: String::new(),
            pull: false,
            cache_from: Vec::new(),
            extra_tag: Vec::new(),
            ssh: Vec::new(),
            secret: Vec::new(),
            image_deps: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomBuildSpec {
    pub command: Vec<String>,
    pub deps: Vec<PathBuf>,
    pub tag: String,
    pub disable_push: bool,
    pub skips_local_docker: bool,
    pub outputs_image_ref_to: Option<PathBuf>,
    pub env: BTreeMap<String, String>,
    pub dir: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LiveUpdateStep {
    InitialSync {},
    FallBackOn(Vec<PathBuf>),
    Sync {
        local: PathBuf,
        remote: String,
    },
    Run {
        cmd: Vec<String>,
        trigger: Vec<PathBuf>,
        echo_off: bool,
    },
    RestartContainer {},
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    pub max_parallel_updates: u32,
    pub k8s_upsert_timeout_secs: u64,
    pub allowed_k8s_contexts: Vec<String>,
    pub default_registry: Option<DefaultRegistry>,
    /// Patterns from `.tiltignore` and `watch_settings(ignore=)`, absolute.
    pub watch_ignores: Vec<String>,
    /// `ci_settings(timeout=)` in seconds.
    pub ci_timeout: u64,
    pub ci_readiness_timeout: u64,
    pub k8s_grace_period: u64,
    pub secret_scrub: bool,
    pub suppress_unused_image_warnings: Vec<String>,
    pub k8s_server_side_apply: String,
    pub default_trigger_mode: TriggerMode,
    pub docker_prune: DockerPruneSettings,
    pub features: BTreeMap<String, bool>,
    /// Settings only Tilt's hosted services read; recorded, never acted on.
    pub hosted: HostedSettings,
    pub k8s_context: String,
    pub k8s_namespace: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_parallel_updates: 3,
            k8s_upsert_timeout_secs: 30,
            allowed_k8s_contexts: Vec::new(),
            default_registry: None,
            watch_ignores: Vec::new(),
            ci_timeout: 30 * 60,
            ci_readiness_timeout: 5 * 60,
            k8s_grace_period: 0,
            secret_scrub: true,
            suppress_unused_image_warnings: Vec::new(),
            k8s_server_side_apply: "auto".into(),
            default_trigger_mode: TriggerMode::Auto,
            docker_prune: DockerPruneSettings::default(),
            features: BTreeMap::new(),
            hosted: HostedSettings::default(),
            k8s_context: String::new(),
            k8s_namespace: String::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefaultRegistry {
    pub host: String,
    pub host_from_cluster: String,
    pub single_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DockerPruneSettings {
    pub disable: bool,
    pub max_age_mins: u64,
    pub num_builds: u64,
    pub interval_hrs: u64,
    pub keep_recent: u64,
}

impl Default for DockerPruneSettings {
    fn default() -> Self {
        DockerPruneSettings {
            disable: false,
            max_age_mins: 360,
            num_builds: 0,
            interval_hrs: 1,
            keep_recent: 2,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostedSettings {
    pub analytics_enabled: Option<bool>,
    pub team_id: String,
    pub version_check_updates: bool,
    pub version_constraint: String,
    pub telemetry_cmd: Vec<String>,
    pub analytics_tags: BTreeMap<String, String>,
}

impl Default for HostedSettings {
    fn default() -> Self {
        HostedSettings {
            analytics_enabled: None,
            team_id: String::new(),
            version_check_updates: true,
            version_constraint: String::new(),
            telemetry_cmd: Vec::new(),
            analytics_tags: BTreeMap::new(),
        }
    }
}
