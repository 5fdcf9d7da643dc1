//! Following a resource's pods through watches (never polling): the pods that carry the
//! resource's label or match its `extra_pod_selectors`, summarised as the engine shows them
//! (phase, readiness, restarts, waiting reasons with their messages), and reported as a whole
//! list after every change.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::StreamExt;
use futures_util::stream::select_all;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::portforward::PodTarget;

/// Waiting reasons that mean the pod will not start without a change.
pub const FATAL_WAITING: &[&str] = &[
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "ErrImageNeverPull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

/// One container of a pod, as the engine shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ContainerSummary {
    pub name: String,
    /// The image the pod spec names.
    pub image: String,
    pub ready: bool,
    pub running: bool,
    pub restarts: i32,
    /// `(reason, message)` while the container waits.
    pub waiting: Option<(String, String)>,
    /// How its last run ended: `(exit code, reason)`.
    pub last_exit: Option<(i32, String)>,
}

/// One pod, as the engine shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PodSummary {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// RFC 3339 creation time (orders pods: the newest is the current one).
    pub created: String,
    pub phase: String,
    pub ready: bool,
    pub deleting: bool,
    pub containers: Vec<ContainerSummary>,
    /// containerPorts the pod's containers declare, in order.
    #[serde(skip)]
    pub declared_ports: Vec<u16>,
}

impl PodSummary {
    pub fn restarts(&self) -> i32 {
        self.containers.iter().map(|c| c.restarts).sum()
    }

    /// The first waiting reason that will not resolve by itself, with its message.
    pub fn fatal_waiting(&self) -> Option<(&str, &str)> {
        self.containers.iter().find_map(|c| {
            c.waiting
                .as_ref()
                .filter(|(reason, _)| FATAL_WAITING.contains(&reason.as_str()))
                .map(|(r, m)| (r.as_str(), m.as_str()))
        })
    }

    pub fn target(&self) -> PodTarget {
        PodTarget {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            declared_ports: self.declared_ports.clone(),
        }
    }
}

fn summarise_container(s: &ContainerStatus) -> ContainerSummary {
    let state = s.state.as_ref();
    let waiting = state.and_then(|st| st.waiting.as_ref()).map(|w| {
        (
            w.reason.clone().unwrap_or_default(),
            w.message.clone().unwrap_or_default(),
        )
    });
    let terminated = state
        .and_then(|st| st.terminated.as_ref())
        .or_else(|| s.last_state.as_ref().and_then(|l| l.terminated.as_ref()));
    ContainerSummary {
        name: s.name.clone(),
        image: String::new(),
        ready: s.ready,
        running: state.is_some_and(|st| st.running.is_some()),
        restarts: s.restart_count,
        waiting,
        last_exit: terminated.map(|t| (t.exit_code, t.reason.clone().unwrap_or_default())),
    }
}

/// A pod as the engine shows it.
pub fn summarise(pod: &Pod) -> PodSummary {
    let meta = &pod.metadata;
    let status = pod.status.as_ref();
    let spec_containers = pod
        .spec
        .as_ref()
        .map(|s| s.containers.as_slice())
        .unwrap_or_default();
    let mut containers: Vec<ContainerSummary> = status
        .and_then(|s| s.container_statuses.as_ref())
        .map(|list| list.iter().map(summarise_container).collect())
        .unwrap_or_default();
    // Containers without a status yet still exist (the pod is being scheduled).
    for s in containers.iter_mut() {
        if let Some(c) = spec_containers.iter().find(|c| c.name == s.name) {
            s.image = c.image.clone().unwrap_or_default();
        }
    }
    for c in spec_containers {
        if !containers.iter().any(|s| s.name == c.name) {
            containers.push(ContainerSummary {
                name: c.name.clone(),
                image: c.image.clone().unwrap_or_default(),
                ..Default::default()
            });
        }
    }
    // An init container that waits or fails holds the pod: show it first.
    if let Some(init) = status.and_then(|s| s.init_container_statuses.as_ref()) {
        for s in init.iter().map(summarise_container).rev() {
            if s.waiting.is_some()
                || s.last_exit.as_ref().is_some_and(|(code, _)| *code != 0) && !s.ready
            {
                containers.insert(0, s);
            }
        }
    }
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    PodSummary {
        namespace: meta.namespace.clone().unwrap_or_default(),
        name: meta.name.clone().unwrap_or_default(),
        uid: meta.uid.clone().unwrap_or_default(),
        created: meta
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.to_string())
            .unwrap_or_default(),
        phase: status.and_then(|s| s.phase.clone()).unwrap_or_default(),
        ready,
        deleting: meta.deletion_timestamp.is_some(),
        containers,
        declared_ports: spec_containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .filter_map(|p| u16::try_from(p.container_port).ok())
            .collect(),
    }
}

/// The pod a resource's logs, port-forwards and live updates go to: the newest pod that is
/// not being deleted.
pub fn current(pods: &[PodSummary]) -> Option<&PodSummary> {
    pods.iter().find(|p| !p.deleting)
}

/// What a [`PodWatch`] reports.
#[derive(Debug, Clone)]
pub enum PodEvent {
    /// Every matching pod, newest first.
    Pods(Vec<PodSummary>),
    /// The watch failed (it retries with backoff).
    Error(String),
}

/// Watches a resource's pods; dropping it stops the watch.
pub struct PodWatch {
    cancel: CancellationToken,
}

impl Drop for PodWatch {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl PodWatch {
    /// Watches pods matching any of `selectors` in any of `namespaces`.
    pub fn spawn(
        client: Client,
        namespaces: Vec<String>,
        selectors: Vec<String>,
        report: Arc<dyn Fn(PodEvent) + Send + Sync>,
    ) -> PodWatch {
        let cancel = CancellationToken::new();
        let stop = cancel.clone();
        tokio::spawn(async move {
            let mut streams = Vec::new();
            for ns in &namespaces {
                for selector in &selectors {
                    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
                    let config = watcher::Config::default().labels(selector);
                    let key = format!("{ns}\u{0}{selector}");
                    streams.push(
                        watcher::watcher(api, config)
                            .default_backoff()
                            .map(move |e| (key.clone(), e))
                            .boxed(),
                    );
                }
            }
            let mut events = select_all(streams);
            // Pods by stream, then by uid (a pod may match several selectors).
            let mut seen: BTreeMap<String, BTreeMap<String, PodSummary>> = BTreeMap::new();
            let mut listing: BTreeMap<String, BTreeMap<String, PodSummary>> = BTreeMap::new();
            let mut last: Option<Vec<PodSummary>> = None;
            loop {
                let next = tokio::select! {
                    _ = stop.cancelled() => return,
                    next = events.next() => next,
                };
                let Some((key, event)) = next else { return };
                match event {
                    Ok(Event::Init) => {
                        listing.insert(key, BTreeMap::new());
                        continue;
                    }
                    Ok(Event::InitApply(pod)) => {
                        let s = summarise(&pod);
                        listing.entry(key).or_default().insert(s.uid.clone(), s);
                        continue;
                    }
                    Ok(Event::InitDone) => {
                        let fresh = listing.remove(&key).unwrap_or_default();
                        seen.insert(key, fresh);
                    }
                    Ok(Event::Apply(pod)) => {
                        let s = summarise(&pod);
                        seen.entry(key).or_default().insert(s.uid.clone(), s);
                    }
                    Ok(Event::Delete(pod)) => {
                        let uid = pod.metadata.uid.unwrap_or_default();
                        seen.entry(key).or_default().remove(&uid);
                    }
                    Err(e) => {
                        report(PodEvent::Error(e.to_string()));
                        continue;
                    }
                }
                let mut all: BTreeMap<&str, &PodSummary> = BTreeMap::new();
                for pods in seen.values() {
                    for (uid, p) in pods {
                        all.insert(uid, p);
                    }
                }
                let mut pods: Vec<PodSummary> = all.into_values().cloned().collect();
                pods.sort_by(|a, b| b.created.cmp(&a.created).then(b.name.cmp(&a.name)));
                if last.as_ref() != Some(&pods) {
                    last = Some(pods.clone());
                    report(PodEvent::Pods(pods));
                }
            }
        });
        PodWatch { cancel }
    }
}

/// A label selector (`k=v,k2=v2`) from `extra_pod_selectors` entries.
pub fn selector_string(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summarises_waiting_and_restarts() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-1", "namespace": "dev", "uid": "u1",
                "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"containers": [{"name": "web", "image": "web", "ports": [{"containerPort": 8000}]}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}],
                "containerStatuses": [{"name": "web", "ready": false, "restartCount": 3, "image": "web", "imageID": "",
                    "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}},
                    "lastState": {"terminated": {"exitCode": 2, "reason": "Error"}}}]}
        }))
        .unwrap();
        let s = summarise(&pod);
        assert_eq!(s.restarts(), 3);
        assert!(!s.ready);
        assert_eq!(
            s.fatal_waiting(),
            Some(("CrashLoopBackOff", "back-off 40s"))
        );
        assert_eq!(s.containers[0].last_exit, Some((2, "Error".to_string())));
        assert_eq!(s.declared_ports, vec![8000]);
    }

    #[test]
    fn current_pod_skips_deleting() {
        let old = PodSummary {
            name: "a".into(),
            deleting: true,
            ..Default::default()
        };
        let new = PodSummary {
            name: "b".into(),
            ..Default::default()
        };
        assert_eq!(current(&[old, new]).map(|p| p.name.as_str()), Some("b"));
        assert_eq!(
            selector_string(&BTreeMap::from([
                ("app".into(), "web".into()),
                ("tier".into(), "x".into())
            ])),
            "app=web,tier=x"
        );
    }
}
