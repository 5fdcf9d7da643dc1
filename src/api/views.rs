//! The JSON shapes of the API (see `docs/api.md`): what the server builds from the engine
//! state and what CLI clients read back. Times are milliseconds since the Unix epoch.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

pub use crate::engine::state::Status;
use crate::engine::state::{BuildRecord, BuildResult, TiltfileState};
use crate::engine::{LogUsage, ResourceState, RuntimeStatus, UpdateStatus};
use crate::model::{Link, PortForward, ResourceType, TriggerMode};

/// Milliseconds since the Unix epoch.
pub fn epoch_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn millis(d: Duration) -> u64 {
    d.as_millis() as u64
}

/// `GET /api/session`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionView {
    pub version: String,
    pub pid: u32,
    pub start_time: u64,
    pub tiltfile: TiltfileView,
    pub args: Vec<String>,
    pub logs: LogUsageView,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TiltfileView {
    pub path: String,
    pub loading: bool,
    pub loaded_once: bool,
    pub error: Option<String>,
    pub warnings: Vec<String>,
    pub last_load_ms: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogUsageView {
    pub limit_bytes: usize,
    pub used_bytes: usize,
    pub dropped_lines: u64,
    pub last_seq: u64,
}

impl SessionView {
    pub fn new(tiltfile: &TiltfileState, usage: LogUsage, start_time: SystemTime) -> Self {
        SessionView {
            version: env!("CARGO_PKG_VERSION").to_string(),
            pid: std::process::id(),
            start_time: epoch_ms(start_time),
            tiltfile: TiltfileView {
                path: tiltfile.path.display().to_string(),
                loading: tiltfile.loading,
                loaded_once: tiltfile.loaded_once,
                error: tiltfile.error.clone(),
                warnings: tiltfile.warnings.clone(),
                last_load_ms: tiltfile.history.back().map(|l| millis(l.duration)),
            },
            args: tiltfile.args.clone(),
            logs: LogUsageView {
                limit_bytes: usage.limit_bytes,
                used_bytes: usage.used_bytes,
                dropped_lines: usage.dropped_lines,
                last_seq: usage.last_seq,
            },
        }
    }
}

/// `GET /api/resources/NAME`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResourceView {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: ResourceType,
    pub labels: Vec<String>,
    pub enabled: bool,
    pub trigger_mode: TriggerMode,
    pub auto_init: bool,
    pub status: Status,
    pub update_status: UpdateStatus,
    pub runtime_status: RuntimeStatus,
    pub ready: bool,
    pub queued: Option<String>,
    pub pending_changes: Vec<String>,
    pub current_build: Option<CurrentBuildView>,
    pub last_build: Option<BuildView>,
    pub build_history: Vec<BuildView>,
    pub last_error: Option<String>,
    pub restarts: u32,
    pub runtime: Option<RuntimeView>,
    pub links: Vec<Link>,
    pub port_forwards: Vec<PortForwardView>,
    pub resource_deps: Vec<String>,
    pub image_refs: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CurrentBuildView {
    pub start: u64,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BuildView {
    pub start: u64,
    pub end: Option<u64>,
    pub duration_ms: Option<u64>,
    pub reason: String,
    pub result: Option<BuildResult>,
    pub error: Option<String>,
}

impl From<&BuildRecord> for BuildView {
    fn from(b: &BuildRecord) -> Self {
        BuildView {
            start: epoch_ms(b.start),
            end: b.end.map(epoch_ms),
            duration_ms: b.duration.map(millis),
            reason: b.reason.describe(),
            result: b.result,
            error: b.error.clone(),
        }
    }
}

/// A serve process or a container.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RuntimeView {
    Process {
        pid: Option<i32>,
        ready: bool,
        crashes: u32,
        last_exit: Option<String>,
        probe_message: Option<String>,
    },
    Container {
        container: String,
        name: String,
        running: bool,
        health: Option<String>,
        exit_code: Option<i64>,
    },
    Kubernetes {
        /// `Kind name` / `Kind namespace/name` of what the last deploy applied.
        applied: Vec<String>,
        /// Newest first; the first that is not being deleted is the current one.
        pods: Vec<PodView>,
    },
}

/// A pod of a Kubernetes resource.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PodView {
    pub name: String,
    pub namespace: String,
    pub phase: String,
    pub ready: bool,
    pub deleting: bool,
    pub restarts: i32,
    /// Why a container waits (`CrashLoopBackOff: back-off 10s ...`), when one does.
    pub waiting: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PortForwardView {
    #[serde(flatten)]
    pub spec: PortForward,
    pub url: String,
    /// `waiting` (no ready pod), `active` or `error`, once the resource is deployed.
    #[serde(default)]
    pub state: Option<String>,
    /// The pod it forwards to.
    #[serde(default)]
    pub pod: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
}

impl From<&PortForward> for PortForwardView {
    fn from(pf: &PortForward) -> Self {
        let host = if pf.host.is_empty() {
            "localhost"
        } else {
            &pf.host
        };
        let path = pf.link_path.trim_start_matches('/');
        PortForwardView {
            url: format!("http://{host}:{}/{path}", pf.local_port),
            spec: pf.clone(),
            state: None,
            pod: None,
            error: None,
        }
    }
}

impl ResourceView {
    pub fn new(rs: &ResourceState) -> Self {
        let spec = &rs.spec;
        let update = rs.update_status();
        let runtime = rs.runtime_status();
        let last_build = rs.last_build();
        let ready = match runtime {
            RuntimeStatus::NotApplicable => update == UpdateStatus::Ok,
            r => r == RuntimeStatus::Ok,
        };
        let mut port_forwards: Vec<PortForwardView> = spec
            .k8s
            .as_ref()
            .map(|k| k.port_forwards.iter().map(PortForwardView::from).collect())
            .unwrap_or_default();
        if let Some(k) = &rs.k8s {
            for (view, live) in port_forwards.iter_mut().zip(&k.forwards) {
                view.state = Some(live.state.clone());
                view.pod = live.pod.clone();
                view.error = live.error.clone();
                if view.spec.container_port.is_none() {
                    view.spec.container_port = live.container_port;
                }
            }
        }
        ResourceView {
            name: rs.name.clone(),
            kind: spec.kind,
            labels: spec.labels.clone(),
            enabled: spec.enabled,
            trigger_mode: spec.trigger_mode,
            auto_init: spec.auto_init,
            status: rs.status(),
            update_status: update,
            runtime_status: runtime,
            ready,
            queued: rs.queued.as_ref().map(|q| q.describe()),
            pending_changes: rs
                .pending_changes
                .iter()
                .map(|p| p.display().to_string())
                .collect(),
            current_build: rs.current.as_ref().map(|b| CurrentBuildView {
                start: epoch_ms(b.start),
                reason: b.reason.describe(),
            }),
            last_build: last_build.map(BuildView::from),
            build_history: rs.history.iter().map(BuildView::from).collect(),
            last_error: rs.last_error(),
            restarts: match (&rs.serve, &rs.k8s) {
                (Some(s), _) => s.crashes,
                (_, Some(k)) => crate::k8s::pods::current(&k.pods)
                    .map_or(0, |p| u32::try_from(p.restarts()).unwrap_or(0)),
                _ => 0,
            },
            runtime: runtime_view(rs),
            links: spec.links.clone(),
            port_forwards,
            resource_deps: spec.resource_deps.clone(),
            image_refs: spec.image_refs.clone(),
        }
    }
}

fn runtime_view(rs: &ResourceState) -> Option<RuntimeView> {
    if let Some(s) = &rs.serve {
        return Some(RuntimeView::Process {
            pid: s.pid,
            ready: s.ready,
            crashes: s.crashes,
            last_exit: s.last_exit.clone(),
            probe_message: s.probe_message.clone(),
        });
    }
    if let Some(k) = &rs.k8s {
        return Some(RuntimeView::Kubernetes {
            applied: k.applied.clone(),
            pods: k
                .pods
                .iter()
                .map(|p| PodView {
                    name: p.name.clone(),
                    namespace: p.namespace.clone(),
                    phase: p.phase.clone(),
                    ready: p.ready,
                    deleting: p.deleting,
                    restarts: p.restarts(),
                    waiting: p.containers.iter().find_map(|c| {
                        c.waiting.as_ref().map(|(r, m)| {
                            if m.is_empty() {
                                r.clone()
                            } else {
                                format!("{r}: {m}")
                            }
                        })
                    }),
                })
                .collect(),
        });
    }
    rs.container.as_ref().map(|c| RuntimeView::Container {
        container: c.id.clone(),
        name: c.name.clone(),
        running: c.running,
        health: c.health.clone(),
        exit_code: c.exit_code,
    })
}

/// `GET /api/resources`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResourceList {
    pub resources: Vec<ResourceView>,
}

/// A log line as the API sends it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogLineView {
    pub seq: u64,
    pub time: u64,
    pub span: String,
    pub kind: crate::engine::LogKind,
    pub text: String,
}

/// `GET /api/logs`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogPageView {
    pub lines: Vec<LogLineView>,
    pub last_seq: u64,
    pub dropped: u64,
}

/// `{"ok": true}` or `{"error": "..."}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reply {
    #[serde(default)]
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
