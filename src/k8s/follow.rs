//! Everything tiltrs keeps open for one deployed Kubernetes resource: the pod watch, a log
//! stream per container of its pods, and its port-forwards to the current pod. Built on the
//! first successful deploy, dropped with the resource.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kube::Client;
use tokio::sync::watch;

use super::PodRef;
use super::logs::ContainerLogs;
use super::pods::{PodEvent, PodSummary, PodWatch, current};
use super::portforward::{ForwardState, Forwarder, PodTarget};
use crate::model::PortForward;
use crate::runtime::LogSink;

/// What a [`ResourceFollower`] reports to the engine.
#[derive(Debug, Clone)]
pub enum FollowEvent {
    Pods(Vec<PodSummary>),
    WatchError(String),
    Forward { index: usize, state: ForwardState },
}

struct Logs {
    client: Client,
    sink: Arc<dyn LogSink>,
    /// By pod uid and container name.
    open: HashMap<(String, String), ContainerLogs>,
}

impl Logs {
    /// Follows every container of every listed pod; forgets pods that are gone.
    fn update(&mut self, pods: &[PodSummary]) {
        self.open
            .retain(|(uid, _), _| pods.iter().any(|p| &p.uid == uid));
        for pod in pods {
            let several = pod.containers.len() > 1;
            for c in &pod.containers {
                let started = c.running || c.last_exit.is_some();
                if !started {
                    continue;
                }
                let key = (pod.uid.clone(), c.name.clone());
                let logs = self.open.entry(key).or_insert_with(|| {
                    ContainerLogs::spawn(
                        self.client.clone(),
                        PodRef {
                            namespace: pod.namespace.clone(),
                            name: pod.name.clone(),
                            container: c.name.clone(),
                        },
                        self.sink.clone(),
                        if several {
                            format!("[{}] ", c.name)
                        } else {
                            String::new()
                        },
                    )
                });
                logs.started(c.restarts);
            }
        }
    }
}

/// Follows one resource's pods, logs and port-forwards; dropping it stops all of them.
pub struct ResourceFollower {
    _pods: PodWatch,
    _forwarders: Arc<tokio::sync::Mutex<Vec<Forwarder>>>,
}

impl ResourceFollower {
    pub fn spawn(
        client: Client,
        namespaces: Vec<String>,
        selectors: Vec<String>,
        port_forwards: Vec<PortForward>,
        sink: Arc<dyn LogSink>,
        report: Arc<dyn Fn(FollowEvent) + Send + Sync>,
    ) -> ResourceFollower {
        let (target_tx, target_rx) = watch::channel::<Option<PodTarget>>(None);
        let logs = Arc::new(Mutex::new(Logs {
            client: client.clone(),
            sink,
            open: HashMap::new(),
        }));
        let on_pods = {
            let report = report.clone();
            Arc::new(move |event: PodEvent| match event {
                PodEvent::Pods(pods) => {
                    if let Ok(mut logs) = logs.lock() {
                        logs.update(&pods);
                    }
                    let target = current(&pods)
                        .filter(|p| p.phase == "Running")
                        .map(PodSummary::target);
                    target_tx.send_if_modified(|t| {
                        let changed = *t != target;
                        *t = target;
                        changed
                    });
                    report(FollowEvent::Pods(pods));
                }
                PodEvent::Error(e) => report(FollowEvent::WatchError(e)),
            })
        };
        let pods = PodWatch::spawn(client.clone(), namespaces, selectors, on_pods);
        let forwarders = Arc::new(tokio::sync::Mutex::new(Vec::new()));
        if !port_forwards.is_empty() {
            let slot = forwarders.clone();
            tokio::spawn(async move {
                let mut started = slot.lock().await;
                for (index, spec) in port_forwards.into_iter().enumerate() {
                    let r = report.clone();
                    let state_report = Arc::new(move |state: ForwardState| {
                        r(FollowEvent::Forward { index, state })
                    });
                    match Forwarder::start(client.clone(), spec, target_rx.clone(), state_report)
                        .await
                    {
                        Ok(f) => started.push(f),
                        Err(e) => report(FollowEvent::Forward {
                            index,
                            state: ForwardState::Error(e.to_string()),
                        }),
                    }
                }
            });
        }
        ResourceFollower {
            _pods: pods,
            _forwarders: forwarders,
        }
    }
}
