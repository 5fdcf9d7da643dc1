//! What builtins record while a Tiltfile runs: declarations as plain Rust data, the stack of
//! files being executed, and every file read. Assembly (`assemble`) turns it into the model.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde_json::Value as Json;

use crate::model::{
    ComposeSpec, CustomDeploySpec, ImageTarget, Link, LocalSpec, PortForward, Settings, TriggerMode,
};

/// One Kubernetes object registered with `k8s_yaml`.
#[derive(Debug, Clone)]
pub struct K8sObject {
    pub name: String,
    pub kind: String,
    pub namespace: String,
    pub api_version: String,
    /// The object as parsed (key order preserved).
    pub value: Json,
    /// The YAML document text, re-serialised from `value`.
    pub yaml: String,
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

/// `k8s_kind(...)` registrations.
#[derive(Debug, Clone)]
pub struct K8sKind {
    pub kind: regex::Regex,
    pub api_version: Option<regex::Regex>,
    pub image_json_paths: Vec<String>,
    pub image_object: Option<(String, String, String)>,
    pub pod_readiness: String,
}

/// `k8s_image_json_path(...)` registrations.
#[derive(Debug, Clone)]
pub struct K8sImagePath {
    pub paths: Vec<String>,
    pub api_version: Option<regex::Regex>,
    pub kind: Option<regex::Regex>,
    pub name: Option<regex::Regex>,
    pub namespace: Option<regex::Regex>,
}

/// Options from `k8s_resource(...)` calls, accumulated per workload name.
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

/// One compose service and the `dc_resource` options applied to it.
#[derive(Debug, Clone)]
pub struct ComposeService {
    pub name: String,
    pub spec: ComposeSpec,
    pub depends_on: Vec<String>,
    pub image: Option<String>,
    pub published_ports: Vec<u16>,
}

#[derive(Debug, Clone, Default)]
pub struct DcResourceOptions {
    pub name: String,
    pub image: Option<String>,
    pub trigger_mode: Option<TriggerMode>,
    pub resource_deps: Vec<String>,
    pub links: Vec<Link>,
    pub labels: Vec<String>,
    pub auto_init: Option<bool>,
    pub project_name: String,
    pub new_name: String,
    pub infer_links: bool,
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
    pub main_path: PathBuf,
    pub main_dir: PathBuf,
    pub args: Vec<String>,
    pub subcommand: String,
    /// Files being executed, innermost last; relative paths resolve against the last one.
    pub exec_stack: Vec<PathBuf>,
    pub config_files: Vec<PathBuf>,
    pub warnings: Vec<String>,
    pub log: Vec<String>,

    pub images: Vec<ImageTarget>,
    pub k8s_objects: Vec<K8sObject>,
    pub k8s_kinds: Vec<K8sKind>,
    pub k8s_image_paths: Vec<K8sImagePath>,
    pub k8s_resource_options: Vec<K8sResourceOptions>,
    pub workload_to_resource_fn: bool,
    /// Names computed by `workload_to_resource_function`, keyed by object index.
    pub workload_names: HashMap<usize, String>,
    pub locals: Vec<LocalDecl>,
    pub custom_deploys: Vec<CustomDeployDecl>,
    pub compose_services: Vec<ComposeService>,
    pub compose_projects: Vec<(String, Vec<PathBuf>)>,
    pub dc_options: Vec<DcResourceOptions>,

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
        if !self.config_files.iter().any(|p| p == path) {
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
                .map(|c| (c.name.as_str(), "k8s_custom_deploy")),
        );
        out
    }
}
