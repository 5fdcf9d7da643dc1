//! `port_forwards` of a Kubernetes resource: a local listener whose connections are forwarded
//! to the resource's current ready pod.
//!
//! [`Forwarder::start`] binds the local port at once (a taken port is the resource's error),
//! then serves it in a task. Each accepted connection opens its own port-forward stream (a
//! WebSocket through the API server) to the pod that is current at that moment, so a new pod
//! takes new connections as soon as the pod watcher names it; connections to an old pod end
//! with it. What the forward does is reported as a [`ForwardState`]: `Waiting` or `Active`
//! as the target changes, `Error` when a connection to the pod fails, `Active` again on the
//! next one that succeeds.

use std::io::ErrorKind;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::Portforwarder;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

use super::{K8sError, describe};
use crate::model::PortForward;

/// How long a connection made before there is a ready pod waits for one.
const TARGET_WAIT: Duration = Duration::from_secs(30);
/// How long opening the port-forward stream through the API server may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(15);
/// The pause after an accept error that is not about one connection (out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// The pod connections go to, as the pod watcher sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodTarget {
    pub namespace: String,
    pub name: String,
    /// containerPorts declared by the pod's containers, in order
    pub declared_ports: Vec<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForwardState {
    /// no ready pod yet
    Waiting,
    /// forwarding to this pod
    Active { pod: String, container_port: u16 },
    /// the last connection to the current pod failed, with why
    Error(String),
}

/// A served `port_forwards` entry. Dropping it stops accepting and ends its connections.
pub struct Forwarder {
    cancel: CancellationToken,
    /// The accept loop's task (it ends only when cancelled); taken by [`Forwarder::stop`].
    serve: Option<JoinHandle<Option<()>>>,
}

impl Forwarder {
    /// Binds `host:local_port` now (an address already in use is an error naming the port),
    /// then serves connections in a task, forwarding each to the pod `target` holds when it
    /// is accepted. `report` hears every change of state.
    pub async fn start(
        client: kube::Client,
        spec: PortForward,
        target: watch::Receiver<Option<PodTarget>>,
        report: Arc<dyn Fn(ForwardState) + Send + Sync>,
    ) -> Result<Forwarder, K8sError> {
        let listener = bind(&spec).await?;
        let shared = Arc::new(Shared {
            client,
            spec,
            target,
            reporter: Reporter {
                report,
                last: Mutex::new(None),
            },
        });
        let cancel = CancellationToken::new();
        tokio::spawn(
            cancel
                .clone()
                .run_until_cancelled_owned(shared.clone().follow_target()),
        );
        let serve = tokio::spawn(
            cancel
                .clone()
                .run_until_cancelled_owned(shared.serve(listener, cancel.clone())),
        );
        Ok(Forwarder {
            cancel,
            serve: Some(serve),
        })
    }

    /// Stops like drop, and returns once the local port is free again: use it before
    /// starting another forwarder on the same port.
    pub async fn stop(mut self) {
        self.cancel.cancel();
        if let Some(serve) = self.serve.take() {
            // The task only ends by cancellation; a JoinError would mean it is gone anyway.
            let _ = serve.await;
        }
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Binds the listener; an empty host and `localhost` mean 127.0.0.1, as in Tilt.
async fn bind(spec: &PortForward) -> Result<TcpListener, K8sError> {
    let host = match spec.host.as_str() {
        "" | "localhost" => "127.0.0.1",
        host => host,
    };
    let port = spec.local_port;
    // `Exec` is the variant whose message is shown as it is.
    TcpListener::bind((host, port)).await.map_err(|e| {
        K8sError::Exec(if e.kind() == ErrorKind::AddrInUse {
            format!("local port {port} is already in use (port_forwards of this resource)")
        } else {
            format!("cannot listen on {host}:{port} (port_forwards of this resource): {e}")
        })
    })
}

/// The pod port a connection goes to: the spec's, else the first one the pod declares, else
/// the local port (Tilt's default).
fn container_port(spec: &PortForward, target: &PodTarget) -> u16 {
    spec.container_port
        .or_else(|| target.declared_ports.first().copied())
        .unwrap_or(spec.local_port)
}

/// What the forwarder's tasks share.
struct Shared {
    client: kube::Client,
    spec: PortForward,
    target: watch::Receiver<Option<PodTarget>>,
    reporter: Reporter,
}

impl Shared {
    fn active(&self, target: &PodTarget) -> ForwardState {
        ForwardState::Active {
            pod: target.name.clone(),
            container_port: container_port(&self.spec, target),
        }
    }

    /// Reports `Waiting` or `Active` each time the target changes.
    async fn follow_target(self: Arc<Self>) {
        let mut target = self.target.clone();
        loop {
            let state = match target.borrow_and_update().as_ref() {
                Some(pod) => self.active(pod),
                None => ForwardState::Waiting,
            };
            self.reporter.set(state);
            // Err: the pod watcher is gone; forwarding goes on to the last pod it named.
            if target.changed().await.is_err() {
                return;
            }
        }
    }

    async fn serve(self: Arc<Self>, listener: TcpListener, cancel: CancellationToken) {
        loop {
            match listener.accept().await {
                Ok((conn, _)) => {
                    let connection = self.clone().connection(conn);
                    tokio::spawn(cancel.clone().run_until_cancelled_owned(connection));
                }
                Err(e) if is_per_connection(&e) => {}
                Err(e) => {
                    self.reporter.set(ForwardState::Error(format!(
                        "accepting on local port {}: {e}",
                        self.spec.local_port
                    )));
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            }
        }
    }

    /// Forwards one local connection to the current pod; dropped when there is none within
    /// [`TARGET_WAIT`].
    async fn connection(self: Arc<Self>, conn: TcpStream) {
        if let Some(target) = self.current_target().await {
            self.forward(&target, conn).await;
        }
    }

    async fn current_target(&self) -> Option<PodTarget> {
        let mut target = self.target.clone();
        let found = timeout(TARGET_WAIT, target.wait_for(Option::is_some)).await;
        found.ok()?.ok().and_then(|pod| (*pod).clone())
    }

    async fn forward(&self, target: &PodTarget, mut conn: TcpStream) {
        let port = container_port(&self.spec, target);
        let mut forwarder = match self.dial(target, port).await {
            Ok(forwarder) => forwarder,
            Err(message) => {
                return self.outcome(target, Err(connection_error(target, port, &message)));
            }
        };
        // Both exist: the forwarder was opened for exactly this port.
        let (Some(mut upstream), Some(server_error)) =
            (forwarder.take_stream(port), forwarder.take_error(port))
        else {
            return;
        };
        self.outcome(target, Ok(()));
        // Either side closing or failing ends this connection alone; what the pod side had
        // to say comes in `server_error`.
        let _ = tokio::io::copy_bidirectional(&mut conn, &mut upstream).await;
        drop(upstream);
        // The task's own result is not a verdict on the forward: when the pod side closes
        // first (a server answering and closing), kube-rs still tries to send its Close and
        // fails with "Sending after closing".
        let _ = forwarder.join().await;
        // Resolves at once now that the forwarder's task is over.
        if let Some(message) = server_error.await {
            self.outcome(target, Err(connection_error(target, port, message.trim())));
        }
    }

    /// Opens a port-forward stream to `port` of the pod, through the API server.
    async fn dial(&self, target: &PodTarget, port: u16) -> Result<Portforwarder, String> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &target.namespace);
        match timeout(DIAL_TIMEOUT, pods.portforward(&target.name, &[port])).await {
            Ok(dialed) => dialed.map_err(|e| describe(&e)),
            Err(_) => Err(format!("no answer in {} s", DIAL_TIMEOUT.as_secs())),
        }
    }

    /// Reports how a connection to `target` went, if it is still the current pod: a dying old
    /// pod says nothing about the forward.
    fn outcome(&self, target: &PodTarget, result: Result<(), String>) {
        if self.target.borrow().as_ref() != Some(target) {
            return;
        }
        self.reporter.set(match result {
            Ok(()) => self.active(target),
            Err(message) => ForwardState::Error(message),
        });
    }
}

fn connection_error(target: &PodTarget, port: u16, message: &str) -> String {
    format!(
        "forwarding local connection to port {port} of pod {}: {message}",
        target.name
    )
}

/// Accept errors that concern one connection only, not the listener.
fn is_per_connection(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::ConnectionRefused
    )
}

/// Calls `report` with each state that differs from the last one reported.
struct Reporter {
    report: Arc<dyn Fn(ForwardState) + Send + Sync>,
    last: Mutex<Option<ForwardState>>,
}

impl Reporter {
    fn set(&self, state: ForwardState) {
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        if last.as_ref() != Some(&state) {
            (self.report)(state.clone());
            *last = Some(state);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc;

    fn spec(local_port: u16, container_port: Option<u16>) -> PortForward {
        PortForward {
            local_port,
            container_port,
            host: String::new(),
            name: String::new(),
            link_path: String::new(),
        }
    }

    fn target(declared_ports: Vec<u16>) -> PodTarget {
        PodTarget {
            namespace: "default".into(),
            name: "web-1".into(),
            declared_ports,
        }
    }

    /// A client for an API server that is never there.
    fn client() -> kube::Client {
        let url = "http://127.0.0.1:1".parse().expect("test url");
        kube::Client::try_from(kube::Config::new(url)).expect("test client")
    }

    fn recorder() -> (
        Arc<dyn Fn(ForwardState) + Send + Sync>,
        mpsc::UnboundedReceiver<ForwardState>,
    ) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Arc::new(move |state| {
                let _ = tx.send(state);
            }),
            rx,
        )
    }

    fn free_port() -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    }

    #[test]
    fn container_port_is_the_spec_s_then_the_first_declared_then_the_local_one() {
        assert_eq!(
            container_port(&spec(8080, Some(80)), &target(vec![3000])),
            80
        );
        assert_eq!(
            container_port(&spec(8080, None), &target(vec![3000, 9090])),
            3000
        );
        assert_eq!(container_port(&spec(8080, None), &target(vec![])), 8080);
    }

    #[tokio::test]
    async fn a_taken_local_port_is_an_error_naming_it() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = taken.local_addr().expect("addr").port();
        let (_target_tx, target_rx) = watch::channel(None);
        let (report, _states) = recorder();
        let Err(e) = Forwarder::start(client(), spec(port, None), target_rx, report).await else {
            panic!("bound a taken port");
        };
        assert_eq!(
            e.to_string(),
            format!("local port {port} is already in use (port_forwards of this resource)")
        );
    }

    #[tokio::test]
    async fn reports_the_target_and_frees_the_port_on_stop() {
        let port = free_port();
        let (target_tx, target_rx) = watch::channel(None);
        let (report, mut states) = recorder();
        let forwarder = Forwarder::start(client(), spec(port, None), target_rx, report)
            .await
            .expect("start");
        assert_eq!(states.recv().await, Some(ForwardState::Waiting));
        target_tx.send_replace(Some(target(vec![3000])));
        assert_eq!(
            states.recv().await,
            Some(ForwardState::Active {
                pod: "web-1".into(),
                container_port: 3000
            })
        );
        forwarder.stop().await;
        std::net::TcpListener::bind(("127.0.0.1", port)).expect("port free after stop");
    }

    #[tokio::test]
    async fn a_failed_connection_to_the_pod_is_reported() {
        let port = free_port();
        let (_target_tx, target_rx) = watch::channel(Some(target(vec![])));
        let (report, mut states) = recorder();
        let _forwarder = Forwarder::start(client(), spec(port, Some(80)), target_rx, report)
            .await
            .expect("start");
        assert_eq!(
            states.recv().await,
            Some(ForwardState::Active {
                pod: "web-1".into(),
                container_port: 80
            })
        );
        let _conn = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        let Some(ForwardState::Error(message)) = states.recv().await else {
            panic!("expected an error");
        };
        assert!(
            message.starts_with("forwarding local connection to port 80 of pod web-1: "),
            "{message}"
        );
    }
}
