//! The engine's observed state: per-resource status, build history and Tiltfile load status.
//!
//! Plain data, written only by the dispatcher and published through the [`Store`](super::Store).
//! Resources sit behind `Arc`s so a snapshot is cheap and an update copies only the resource
//! that changed.

use std::collections::{BTreeSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::model::Resource;

/// Builds kept per resource.
pub const HISTORY_LEN: usize = 20;

/// Everything the engine knows, as subscribers see it.
#[derive(Debug, Clone, Default)]
pub struct EngineState {
    pub tiltfile: Arc<TiltfileState>,
    /// In Tilt's order (the order of the last good Tiltfile result).
    pub resources: Vec<Arc<ResourceState>>,
}

impl EngineState {
    pub fn resource(&self, name: &str) -> Option<&ResourceState> {
        self.resources.iter().find(|r| r.name == name).map(|r| &**r)
    }
}

/// The Tiltfile's load status.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TiltfileState {
    pub path: PathBuf,
    /// A load is running.
    pub loading: bool,
    /// Whether any load succeeded (the graph in `resources` comes from the last good one).
    pub loaded_once: bool,
    /// The error of the last load, if it failed.
    pub error: Option<String>,
    pub history: VecDeque<LoadRecord>,
    pub config_files: Vec<PathBuf>,
    pub warnings: Vec<String>,
    /// The Tiltfile args (what follows `--`).
    pub args: Vec<String>,
    /// Settings of the last good load.
    pub settings: crate::model::Settings,
}

/// One Tiltfile evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct LoadRecord {
    pub start: SystemTime,
    pub duration: Duration,
    pub reason: BuildReason,
    pub error: Option<String>,
}

/// Why an update ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BuildReason {
    Initial,
    FileChange { paths: Vec<PathBuf> },
    Trigger,
    TiltfileChange,
}

impl BuildReason {
    /// Merges a new reason into a queued one (file lists are combined; a trigger wins).
    pub fn merge(self, newer: BuildReason) -> BuildReason {
        match (self, newer) {
            (BuildReason::FileChange { mut paths }, BuildReason::FileChange { paths: more }) => {
                for p in more {
                    if !paths.contains(&p) {
                        paths.push(p);
                    }
                }
                BuildReason::FileChange { paths }
            }
            (_, BuildReason::Trigger) | (BuildReason::Trigger, _) => BuildReason::Trigger,
            (BuildReason::Initial, _) => BuildReason::Initial,
            (_, newer) => newer,
        }
    }

    /// How Tilt's logs announce it.
    pub fn describe(&self) -> String {
        match self {
            BuildReason::Initial => "Initial Build".into(),
            BuildReason::Trigger => "Update triggered".into(),
            BuildReason::TiltfileChange => "Tiltfile changed: rebuilding".into(),
            BuildReason::FileChange { paths } => {
                let shown: Vec<String> = paths
                    .iter()
                    .take(5)
                    .map(|p| p.display().to_string())
                    .collect();
                let more = if paths.len() > 5 { ", ..." } else { "" };
                let noun = if paths.len() == 1 { "File" } else { "Files" };
                format!(
                    "{} {noun} Changed: [{}{more}]",
                    paths.len(),
                    shown.join(", ")
                )
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BuildResult {
    Success,
    Failure,
    Cancelled,
}

/// One update of a resource.
#[derive(Debug, Clone, Serialize)]
pub struct BuildRecord {
    pub start: SystemTime,
    pub end: Option<SystemTime>,
    pub duration: Option<Duration>,
    pub reason: BuildReason,
    pub result: Option<BuildResult>,
    pub error: Option<String>,
}

/// The update side, as Tilt's UI shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateStatus {
    /// Disabled, or waiting for a first trigger.
    None,
    Pending,
    InProgress,
    Ok,
    Error,
}

/// The runtime side (the serve process).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuntimeStatus {
    /// No `serve_cmd`.
    NotApplicable,
    /// Not started, or started and not ready yet.
    Pending,
    Ok,
    Error,
}

/// The one status a resource is shown with: the UI's colour, the status view's symbol, the
/// CLI's STATUS column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Disabled,
    /// Never updated (manual, or waiting for a trigger).
    None,
    /// Queued, or waiting to become ready.
    Pending,
    Building,
    Ok,
    Error,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Disabled => "disabled",
            Status::None => "none",
            Status::Pending => "pending",
            Status::Building => "building",
            Status::Ok => "ok",
            Status::Error => "error",
        }
    }
}

/// The serve process of a local resource.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ServeState {
    pub pid: Option<i32>,
    pub ready: bool,
    pub crashes: u32,
    pub last_exit: Option<String>,
    pub probe_message: Option<String>,
}

/// The container of a Docker Compose resource.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ContainerState {
    pub id: String,
    pub name: String,
    pub running: bool,
    /// The healthcheck's status (`starting`, `healthy`, `unhealthy`), when it has one.
    pub health: Option<String>,
    pub exit_code: Option<i64>,
    /// Declared image refs and the tags deployed for them.
    pub images: std::collections::BTreeMap<String, String>,
}

impl ContainerState {
    /// Running and, with a healthcheck, healthy.
    pub fn ready(&self) -> bool {
        self.running && self.health.as_deref().is_none_or(|h| h == "healthy")
    }

    /// Stopped with a failure.
    pub fn failed(&self) -> bool {
        !self.running && self.exit_code.is_some_and(|c| c != 0)
    }
}

/// A port-forward of a Kubernetes resource and how it is doing.
#[derive(Debug, Clone, Serialize)]
pub struct ForwardView {
    pub local_port: u16,
    pub host: String,
    /// `waiting`, `active`, or `error`.
    pub state: String,
    pub pod: Option<String>,
    pub container_port: Option<u16>,
    pub error: Option<String>,
}

/// A deployed Kubernetes resource: what was applied and its pods.
#[derive(Debug, Clone, Default, Serialize)]
pub struct K8sState {
    /// `Kind name` / `Kind namespace/name` of each applied object.
    pub applied: Vec<String>,
    /// Declared image refs and the references deployed for them.
    pub images: std::collections::BTreeMap<String, String>,
    /// Newest first.
    pub pods: Vec<crate::k8s::pods::PodSummary>,
    pub forwards: Vec<ForwardView>,
    /// The last pod watch error, until the next good event.
    pub watch_error: Option<String>,
}

impl K8sState {
    /// Why the resource's current pod cannot run, if it cannot: a fatal waiting reason with its
    /// message, or a failed phase.
    pub fn pod_failure(&self) -> Option<String> {
        let pod = crate::k8s::pods::current(&self.pods)?;
        if let Some((reason, message)) = pod.fatal_waiting() {
            let container = pod
                .containers
                .iter()
                .find(|c| c.waiting.as_ref().is_some_and(|(r, _)| r == reason))
                .map(|c| c.name.as_str())
                .unwrap_or_default();
            let exit = pod
                .containers
                .iter()
                .find(|c| c.name == container)
                .and_then(|c| c.last_exit.as_ref())
                .map(|(code, why)| format!(", last exit code {code} ({why})"))
                .unwrap_or_default();
            let message = if message.is_empty() {
                String::new()
            } else {
                format!(": {message}")
            };
            return Some(format!(
                "pod {} container {container}: {reason}{message}{exit}",
                pod.name
            ));
        }
        (pod.phase == "Failed").then(|| format!("pod {} failed", pod.name))
    }
}

/// One resource.
#[derive(Debug, Clone, Serialize)]
pub struct ResourceState {
    pub name: String,
    /// The definition from the last good Tiltfile result.
    pub spec: Resource,
    /// Queued for an update, and why.
    pub queued: Option<BuildReason>,
    /// Files changed while in manual mode, waiting for a trigger.
    pub pending_changes: BTreeSet<PathBuf>,
    pub current: Option<BuildRecord>,
    /// Finished updates, oldest first, at most [`HISTORY_LEN`].
    pub history: VecDeque<BuildRecord>,
    /// Has ever been ready (what `resource_deps` wait for).
    pub ever_ready: bool,
    pub serve: Option<ServeState>,
    /// Docker Compose resources: the service's container, once deployed.
    pub container: Option<ContainerState>,
    /// Kubernetes resources, once deployed.
    pub k8s: Option<K8sState>,
}

impl ResourceState {
    pub fn new(spec: Resource) -> Self {
        let serve = spec
            .local
            .as_ref()
            .filter(|l| !l.serve_cmd.is_empty())
            .map(|_| ServeState::default());
        ResourceState {
            name: spec.name.clone(),
            spec,
            queued: None,
            pending_changes: BTreeSet::new(),
            current: None,
            history: VecDeque::new(),
            ever_ready: false,
            serve,
            container: None,
            k8s: None,
        }
    }

    pub fn last_build(&self) -> Option<&BuildRecord> {
        self.history.back()
    }

    pub fn has_built(&self) -> bool {
        !self.history.is_empty() || self.current.is_some()
    }

    /// A local `cmd` without `allow_parallel` runs alone; serve-only resources always count as
    /// parallel.
    pub fn allow_parallel(&self) -> bool {
        match &self.spec.local {
            Some(l) => l.allow_parallel || l.cmd.is_empty(),
            None => true,
        }
    }

    pub fn update_status(&self) -> UpdateStatus {
        if self.current.is_some() {
            return UpdateStatus::InProgress;
        }
        if self.queued.is_some() || !self.pending_changes.is_empty() {
            return UpdateStatus::Pending;
        }
        match self.last_build().and_then(|b| b.result) {
            Some(BuildResult::Success) => UpdateStatus::Ok,
            Some(BuildResult::Failure) => UpdateStatus::Error,
            _ => UpdateStatus::None,
        }
    }

    pub fn runtime_status(&self) -> RuntimeStatus {
        if matches!(
            self.spec.kind,
            crate::model::ResourceType::K8s | crate::model::ResourceType::K8sCustomDeploy
        ) {
            return self.k8s_runtime_status();
        }
        if self.spec.kind == crate::model::ResourceType::DockerCompose {
            return match &self.container {
                Some(c) if c.ready() => RuntimeStatus::Ok,
                Some(c) if c.failed() || c.health.as_deref() == Some("unhealthy") => {
                    RuntimeStatus::Error
                }
                Some(c) if !c.running && c.exit_code == Some(0) => RuntimeStatus::Ok,
                _ => RuntimeStatus::Pending,
            };
        }
        match &self.serve {
            None => RuntimeStatus::NotApplicable,
            Some(s) if s.ready => RuntimeStatus::Ok,
            Some(s) if s.pid.is_none() && s.last_exit.is_some() => RuntimeStatus::Error,
            Some(_) => RuntimeStatus::Pending,
        }
    }

    fn k8s_runtime_status(&self) -> RuntimeStatus {
        let Some(k) = &self.k8s else {
            return RuntimeStatus::Pending;
        };
        if k.pod_failure().is_some() {
            return RuntimeStatus::Error;
        }
        let wait = self
            .spec
            .k8s
            .as_ref()
            .is_some_and(|s| s.pod_readiness != "ignore");
        match crate::k8s::pods::current(&k.pods) {
            _ if !wait => RuntimeStatus::Ok,
            Some(p) if p.ready || p.phase == "Succeeded" => RuntimeStatus::Ok,
            _ => RuntimeStatus::Pending,
        }
    }

    /// Disabled; building while an update runs; error when the last update or the runtime
    /// failed; pending while queued or not ready; none before a first update; else ok.
    pub fn status(&self) -> Status {
        if !self.spec.enabled {
            return Status::Disabled;
        }
        let runtime = self.runtime_status();
        match self.update_status() {
            UpdateStatus::InProgress => Status::Building,
            UpdateStatus::Error => Status::Error,
            _ if runtime == RuntimeStatus::Error => Status::Error,
            UpdateStatus::Pending => Status::Pending,
            _ if runtime == RuntimeStatus::Pending => Status::Pending,
            UpdateStatus::None if runtime != RuntimeStatus::Ok => Status::None,
            _ => Status::Ok,
        }
    }

    /// What went wrong: the last update's error when it failed, else the runtime's failure.
    pub fn last_error(&self) -> Option<String> {
        if let Some(b) = self
            .last_build()
            .filter(|b| b.result == Some(BuildResult::Failure))
        {
            return Some(b.error.clone().unwrap_or_else(|| "update failed".into()));
        }
        if self.runtime_status() != RuntimeStatus::Error {
            return None;
        }
        if let Some(k) = &self.k8s {
            return k.pod_failure();
        }
        match (&self.serve, &self.container) {
            (Some(s), _) => s.last_exit.clone(),
            (_, Some(c)) => Some(match c.exit_code {
                Some(code) if !c.running => format!("container exited with code {code}"),
                _ => "container is unhealthy".to_string(),
            }),
            _ => None,
        }
    }

    pub(crate) fn finish_build(
        &mut self,
        result: BuildResult,
        error: Option<String>,
    ) -> Option<&BuildRecord> {
        let mut b = self.current.take()?;
        let end = SystemTime::now();
        b.duration = Some(end.duration_since(b.start).unwrap_or_default());
        b.end = Some(end);
        b.result = Some(result);
        b.error = error;
        if self.history.len() >= HISTORY_LEN {
            self.history.pop_front();
        }
        self.history.push_back(b);
        self.history.back()
    }
}
