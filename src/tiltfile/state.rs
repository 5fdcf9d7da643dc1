//! What builtins record while a Tiltfile runs: declarations as plain Rust data, the stack of
//! files being executed, and every file read. Assembly (`assemble`) turns it into the model.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde_json::Value as Json;

use crate::model::{
    CustomDeploySpec, ImageTarget, Link, LocalSpec, PortForward, Settings, TriggerMode,
};

/// One Kubernetes object registered with `k8s_yaml`.
#[derive(Debug, Clone)]
pub struct K8sObject {
    pub name: String,
    pub kind: String,
    pub namespace: String,
    pub api_version: String,
    /// The object as parsed (key order preserved); shared with the resources that apply it.
    pub value: std::sync::Arc<Json>,
    /// The Starlark stack where `k8s_yaml` registered the object (for duplicate errors).
    pub registered_at: String,
}

impl K8sObject {
    pub fn group(&self) -> &str {
        match self.api_version.rsplit_once('/') {
            Some((group, _)) => group,
            None => "",
        }
    }

    /// `NAME:KIND:NAMESPACE`, as `tiltfile-result` prints object ids.
    pub fn id(&self) -> String {
        let ns = if self.namespace.is_empty() {
            "default"
        } else {
            &self.namespace
        };
        format!("{}:{}:{}", self.name, self.kind, ns)
    }
}

/// One `k8s_kind(...)` / `k8s_image_json_path(...)` registration (each call adds one).
#[derive(Debug, Clone)]
pub struct K8sKind {
    pub selector: crate::tiltfile::k8s_objects::ObjectSelector,
    pub image_locators: Vec<crate::tiltfile::k8s_objects::ImageLocator>,
    /// `wait`, `ignore`, `succeeded`, or empty.
    pub pod_readiness: String,
}

/// Options from one `k8s_resource(...)` call; calls are applied in order after assembly.
#[derive(Debug, Clone, Default)]
pub struct K8sResourceOptions {
    pub workload: String,
    pub new_name: String,
    pub port_forwards: Vec<PortForward>,
    pub extra_pod_selectors: Vec<BTreeMap<String, String>>,
    pub trigger_mode: Option<TriggerMode>,
    pub resource_deps: Vec<String>,
    pub objects: Vec<String>,
    pub auto_init: Option<bool>,
    pub pod_readiness: String,
    pub links: Vec<Link>,
    pub labels: Vec<String>,
    pub discovery_strategy: String,
    /// `workload` was empty: this call creates a resource from `objects`.
    pub manually_grouped: bool,
    /// `file:line:col` of the call, for assembly errors.
    pub position: String,
}

/// A `local_resource` declaration.
#[derive(Debug, Clone)]
pub struct LocalDecl {
    pub name: String,
    pub spec: LocalSpec,
    pub trigger_mode: Option<TriggerMode>,
    pub auto_init: bool,
    pub resource_deps: Vec<String>,
    pub labels: Vec<String>,
    pub links: Vec<Link>,
}

/// A `k8s_custom_deploy` declaration.
#[derive(Debug, Clone)]
pub struct CustomDeployDecl {
    pub name: String,
    pub spec: CustomDeploySpec,
    pub image_deps: Vec<String>,
}

/// One service of a Docker Compose project, as `docker_compose` read it.
#[derive(Debug, Clone)]
pub struct ComposeService {
    /// The resource name: the service name, or `dc_resource(new_name=)`.
    pub name: String,
    /// The service's name in the compose files.
    pub service: String,
    /// The merged service definition.
    pub config: Json,
    /// Resource names of the services it depends on (rewritten by renames).
    pub depends_on: Vec<String>,
    /// The image the service runs: `image:` or compose's default `<project>_<service>`.
    pub image: String,
    /// Absolute `.dockerignore` path of a compose-managed build (for the watch list).
    pub build_dockerignore: Option<PathBuf>,
    pub published_ports: Vec<u16>,
}

/// Options from `dc_resource(...)` calls, accumulated per resource name.
#[derive(Debug, Clone, Default)]
pub struct DcResourceOptions {
    /// The deprecated `image=` override used for matching builds.
    pub image: Option<String>,
    pub trigger_mode: Option<TriggerMode>,
    /// `dc_resource(resource_deps=)` plus `depends_on`, as Tilt keeps them.
    pub resource_deps: Vec<String>,
    pub links: Vec<Link>,
    pub labels: Vec<String>,
    pub auto_init: Option<bool>,
    pub infer_links: Option<bool>,
}

/// One Docker Compose project: every `docker_compose` call with the same project name.
#[derive(Debug, Clone)]
pub struct ComposeProject {
    pub name: String,
    /// The project directory: the first compose file's directory, else the Tiltfile's.
    pub project_dir: PathBuf,
    pub config_files: Vec<PathBuf>,
    pub env_file: Option<PathBuf>,
    pub profiles: Vec<String>,
    pub wait: bool,
    /// Enabled services in order.
    pub services: Vec<ComposeService>,
    /// `dc_resource` options keyed by resource name; they outlive re-reads of the project.
    pub options: BTreeMap<String, DcResourceOptions>,
}

/// The declared value of a `config.define_*` setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigKind {
    String,
    StringList,
    Bool,
    Object,
}

#[derive(Debug, Clone)]
pub struct ConfigDef {
    pub kind: ConfigKind,
    pub args: bool,
    pub usage: String,
}

/// Everything declared so far in this evaluation.
#[derive(Debug, Default)]
pub struct State {
    pub main_dir: PathBuf,
    pub args: Vec<String>,
    /// Files being executed, innermost last; relative paths resolve against the last one.
    pub exec_stack: Vec<PathBuf>,
    pub config_files: Vec<PathBuf>,
    pub config_file_set: HashSet<PathBuf>,
    pub warnings: Vec<String>,
    pub log: Vec<String>,

    pub images: Vec<ImageTarget>,
    pub k8s_objects: Vec<K8sObject>,
    /// First object registered under each duplicate key, for Tilt's duplicate check.
    pub k8s_object_keys: HashMap<(String, String, String, String), usize>,
    pub k8s_kinds: Vec<K8sKind>,
    /// Whether the built-in `Job`/`CronJob` kinds were added to `k8s_kinds`.
    pub k8s_kinds_initialized: bool,
    pub k8s_resource_options: Vec<K8sResourceOptions>,
    pub workload_to_resource_fn: bool,
    /// Names computed by `workload_to_resource_function`, keyed by object index.
    pub workload_names: HashMap<usize, String>,
    pub locals: Vec<LocalDecl>,
    pub custom_deploys: Vec<CustomDeployDecl>,
    /// Docker Compose projects in the order they were first declared.
    pub compose_projects: Vec<ComposeProject>,

    pub settings: Settings,
    pub trigger_mode_set: bool,
    pub default_registry_set: bool,

    pub config_defs: BTreeMap<String, ConfigDef>,
    pub config_parsed: bool,
    pub config_parse_dir: Option<PathBuf>,
    pub enabled_resources: Option<Vec<String>>,

    /// Live-update steps created, and whether each was used.
    pub steps_used: Vec<bool>,
    pub extension_repos: BTreeMap<String, String>,
    pub extensions: BTreeMap<String, (String, String)>,
    pub v1alpha1_objects: BTreeMap<(String, String), Json>,
    pub secrets: Vec<String>,
}

impl State {
    /// The directory of the Tiltfile being executed.
    pub fn cwd(&self) -> PathBuf {
        self.exec_stack
            .last()
            .and_then(|p| p.parent())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| self.main_dir.clone())
    }

    /// Records a file the evaluation read, once.
    pub fn record_file(&mut self, path: &Path) {
        if self.config_file_set.insert(path.to_path_buf()) {
            self.config_files.push(path.to_path_buf());
        }
    }

    pub fn warn(&mut self, msg: impl Into<String>) {
        let msg = msg.into();
        self.log.push(format!("WARNING: {msg}"));
        self.warnings.push(msg);
    }

    /// Every resource name declared so far with its kind, for duplicate checks.
    pub fn declared_names(&self) -> Vec<(&str, &'static str)> {
        let mut out: Vec<(&str, &'static str)> = self
            .locals
            .iter()
            .map(|l| (l.name.as_str(), "local_resource"))
            .collect();
        out.extend(
            self.custom_deploys
                .iter()
                .map(|c| (c.name.as_str(), "k8s_resource")),
        );
        out.extend(
            self.compose_projects
                .iter()
                .flat_map(|p| p.services.iter().map(|s| (s.name.as_str(), "dc_resource"))),
        );
        out
    }
}
