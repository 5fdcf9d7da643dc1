//! Connecting to the cluster as kubectl would (`KUBECONFIG`, several files, `--context`,
//! `--namespace`), Tilt's rule for which contexts tiltrs may deploy to, and how built images
//! reach the cluster (no push, a registry push, or `kind load`).

use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};

use super::{K8sError, describe};

/// How long connecting to the API server may take before it counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// `--context` and `--namespace` from the command line.
#[derive(Debug, Clone, Default)]
pub struct K8sOverrides {
    pub context: Option<String>,
    pub namespace: Option<String>,
}

/// Where images are pushed and how the cluster names them (KEP-1755 `LocalRegistryHosting`,
/// or `default_registry()`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registry {
    /// The registry as the host sees it: where tiltrs pushes.
    pub host: String,
    /// The registry as the cluster's container runtime sees it: what manifests name.
    pub host_from_cluster: String,
    /// Every image goes to this one repository (`single_name`), tags telling them apart.
    pub single_name: String,
}

/// How built images reach the cluster's nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// The cluster runs on the local Docker engine: the built image is already there.
    LocalDocker,
    /// Push to a registry.
    Push(Registry),
    /// `kind load docker-image --name CLUSTER`.
    KindLoad { cluster: String },
    /// Push to wherever the image's own name points.
    AsNamed,
}

/// What tiltrs learnt when it connected.
#[derive(Debug, Clone)]
pub struct ClusterInfo {
    pub context: String,
    /// The default namespace for objects that name none.
    pub namespace: String,
    /// The registry the cluster advertises (`kube-public/local-registry-hosting`).
    pub advertised_registry: Option<Registry>,
}

/// The context and namespace in effect: the overrides, else the kubeconfig's current ones.
pub fn effective_context(overrides: &K8sOverrides) -> (String, String) {
    let (context, namespace) = crate::kubeconfig::current_context();
    let context = overrides.context.clone().unwrap_or(context);
    let namespace = match &overrides.namespace {
        Some(ns) => ns.clone(),
        None if overrides.context.is_some() => {
            crate::kubeconfig::context_namespace(&context).unwrap_or_else(|| "default".into())
        }
        None => namespace,
    };
    (context, namespace)
}

/// Connects: reads the kubeconfig, checks that the API server answers, and reads the registry
/// the cluster advertises.
pub async fn connect(overrides: &K8sOverrides) -> Result<(Client, ClusterInfo), K8sError> {
    let kubeconfig = Kubeconfig::read().map_err(|e| K8sError::Config(e.to_string()))?;
    let options = KubeConfigOptions {
        context: overrides.context.clone(),
        ..Default::default()
    };
    let mut config = Config::from_custom_kubeconfig(kubeconfig.clone(), &options)
        .await
        .map_err(|e| K8sError::Config(e.to_string()))?;
    let context = overrides
        .context
        .clone()
        .or(kubeconfig.current_context)
        .unwrap_or_default();
    if let Some(ns) = &overrides.namespace {
        config.default_namespace = ns.clone();
    }
    config.connect_timeout = Some(CONNECT_TIMEOUT);
    let namespace = config.default_namespace.clone();
    let client = build_client(&config).map_err(|e| K8sError::Connect {
        context: context.clone(),
        message: e.to_string(),
    })?;
    tokio::time::timeout(CONNECT_TIMEOUT, client.apiserver_version())
        .await
        .map_err(|_| K8sError::Connect {
            context: context.clone(),
            message: format!("no answer within {}s", CONNECT_TIMEOUT.as_secs()),
        })?
        .map_err(|e| K8sError::Connect {
            context: context.clone(),
            message: describe(&e),
        })?;
    let advertised_registry = advertised_registry(&client).await;
    Ok((
        client,
        ClusterInfo {
            context,
            namespace,
            advertised_registry,
        },
    ))
}

/// kube's client, with `TCP_NODELAY` on its connections: a live-update archive goes out as
/// several websocket frames, and with Nagle's algorithm the last one waits for the server's
/// delayed ACK (about 40 ms of every sync).
fn build_client(config: &Config) -> Result<Client, kube::Error> {
    use kube::client::ConfigExt;
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(config.connect_timeout);
    let https = config.rustls_https_connector_with_connector(http)?;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build(https);
    let service = tower::ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.auth_layer()?)
        .map_err(tower::BoxError::from)
        .service(client);
    Ok(Client::new(service, config.default_namespace.clone()))
}

/// The registry in `kube-public/local-registry-hosting` (KEP-1755), when the cluster has one.
async fn advertised_registry(client: &Client) -> Option<Registry> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "kube-public");
    let cm = api.get_opt("local-registry-hosting").await.ok()??;
    let text = cm.data?.get("localRegistryHosting.v1")?.clone();
    parse_registry_hosting(&text)
}

/// Parses the `localRegistryHosting.v1` document.
pub fn parse_registry_hosting(text: &str) -> Option<Registry> {
    let doc: serde_json::Value = yaml_serde::from_str(text).ok()?;
    let host = doc.get("host")?.as_str()?.trim().to_string();
    if host.is_empty() {
        return None;
    }
    let from_runtime = doc
        .get("hostFromContainerRuntime")
        .and_then(|h| h.as_str())
        .filter(|h| !h.is_empty())
        .unwrap_or(&host)
        .to_string();
    Some(Registry {
        host,
        host_from_cluster: from_runtime,
        single_name: String::new(),
    })
}

/// Contexts of clusters that run on the developer's machine, by Tilt's naming rules.
pub fn is_local_dev_context(context: &str) -> bool {
    const EXACT: &[&str] = &[
        "minikube",
        "docker-desktop",
        "docker-for-desktop",
        "microk8s",
        "crc-admin",
        "crc-developer",
        "rancher-desktop",
        "colima",
        "orbstack",
    ];
    const PREFIXES: &[&str] = &["kind-", "k3d-", "krucible-", "minikube-", "colima-"];
    EXACT.contains(&context) || PREFIXES.iter().any(|p| context.starts_with(p))
}

/// Tilt's safety rule: deploy only to a local dev cluster or a context the Tiltfile allows.
pub fn check_context_allowed(context: &str, allowed: &[String]) -> Result<(), String> {
    if context.is_empty() || is_local_dev_context(context) || allowed.iter().any(|a| a == context) {
        return Ok(());
    }
    Err(format!(
        "Stop! {context} might be production.\n\
If you're sure you want to deploy there, add:\n\
\tallow_k8s_contexts('{context}')\n\
to your Tiltfile. Otherwise, switch k8s contexts and restart tiltrs."
    ))
}

/// How images reach this cluster: the registry it advertises wins, then `default_registry()`,
/// then the local Docker engine for Docker-based clusters, `kind load` for kind without one.
pub fn delivery(
    info: &ClusterInfo,
    default_registry: Option<&crate::model::DefaultRegistry>,
) -> Delivery {
    if let Some(r) = &info.advertised_registry {
        return Delivery::Push(r.clone());
    }
    if let Some(d) = default_registry.filter(|d| !d.host.is_empty()) {
        return Delivery::Push(Registry {
            host: d.host.clone(),
            host_from_cluster: if d.host_from_cluster.is_empty() {
                d.host.clone()
            } else {
                d.host_from_cluster.clone()
            },
            single_name: d.single_name.clone(),
        });
    }
    let ctx = info.context.as_str();
    if matches!(
        ctx,
        "docker-desktop" | "docker-for-desktop" | "orbstack" | "minikube"
    ) {
        return Delivery::LocalDocker;
    }
    if let Some(cluster) = ctx.strip_prefix("kind-") {
        return Delivery::KindLoad {
            cluster: cluster.to_string(),
        };
    }
    Delivery::AsNamed
}

/// The repository an image gets in `registry`, seen from `host` (Tilt's rule: the name with
/// `/`, `:` and `@` replaced by `_`, or `single_name`; a name already in the registry is kept).
pub fn name_in_registry(host: &str, single_name: &str, name: &str) -> String {
    if name.starts_with(&format!("{host}/")) {
        return name.to_string();
    }
    if !single_name.is_empty() {
        return format!("{host}/{single_name}");
    }
    let escaped: String = name
        .chars()
        .map(|c| if matches!(c, '/' | ':' | '@') { '_' } else { c })
        .collect();
    format!("{host}/{escaped}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_contexts_are_recognised() {
        assert!(is_local_dev_context("kind-dev"));
        assert!(is_local_dev_context("docker-desktop"));
        assert!(!is_local_dev_context("gke_prod_us-east1"));
        assert!(check_context_allowed("gke_prod", &["gke_prod".into()]).is_ok());
        let err = check_context_allowed("gke_prod", &[]).unwrap_err();
        assert!(
            err.starts_with("Stop! gke_prod might be production."),
            "{err}"
        );
        assert!(err.contains("allow_k8s_contexts('gke_prod')"), "{err}");
    }

    #[test]
    fn registry_hosting_and_names() {
        let r = parse_registry_hosting(
            "host: \"localhost:5000\"\nhostFromContainerRuntime: \"registry:5000\"\n",
        )
        .unwrap();
        assert_eq!(r.host, "localhost:5000");
        assert_eq!(r.host_from_cluster, "registry:5000");
        assert_eq!(
            name_in_registry("localhost:5000", "", "gcr.io/team/web"),
            "localhost:5000/gcr.io_team_web"
        );
        assert_eq!(
            name_in_registry("localhost:5000", "", "localhost:5000/web"),
            "localhost:5000/web"
        );
        assert_eq!(name_in_registry("r:5000", "dev", "web"), "r:5000/dev");
    }
}
