//! Applying and deleting arbitrary objects: kinds resolved through discovery (CRDs included,
//! re-resolved once they are established), server-side apply with field manager `tiltrs`,
//! delete-and-recreate when a field is immutable (as Tilt does for Jobs), and the deletes of
//! `tiltrs down`, which wait until the objects are gone.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::{ApiCapabilities, ApiResource, Scope};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, Client};
use serde_json::Value;
use tokio::sync::Mutex;

use super::manifest::{self, DOWN_POLICY_ANNOTATION};
use super::{K8sError, describe};
use crate::runtime::LogSink;

/// The field manager of every apply.
pub const FIELD_MANAGER: &str = "tiltrs";

/// Kinds resolved so far in this session (a discovery request each, once).
#[derive(Default)]
pub struct KindCache {
    kinds: Mutex<HashMap<String, (ApiResource, ApiCapabilities)>>,
}

impl KindCache {
    async fn resolve(&self, client: &Client, obj: &Value) -> Result<(ApiResource, bool), K8sError> {
        let api_version = obj
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let kind = manifest::kind(obj);
        let key = format!("{api_version}/{kind}");
        if let Some((ar, caps)) = self.kinds.lock().await.get(&key) {
            return Ok((ar.clone(), caps.scope == Scope::Namespaced));
        }
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version),
        };
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let (ar, caps) = kube::discovery::pinned_kind(client, &gvk)
            .await
            .map_err(|e| K8sError::Api {
                action: format!("looking up kind {kind} ({api_version})"),
                message: match &e {
                    kube::Error::Api(s) if s.code == 404 => {
                        "the cluster does not know this kind (is its CRD installed?)".to_string()
                    }
                    other => describe(other),
                },
            })?;
        let namespaced = caps.scope == Scope::Namespaced;
        self.kinds.lock().await.insert(key, (ar.clone(), caps));
        Ok((ar, namespaced))
    }
}

/// An object that was applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub kind: String,
    pub name: String,
    pub namespace: Option<String>,
    pub uid: String,
}

impl Applied {
    /// `Kind name` or `Kind namespace/name`, as messages name objects.
    pub fn describe(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{} {ns}/{}", self.kind, self.name),
            None => format!("{} {}", self.kind, self.name),
        }
    }
}

fn object_label(obj: &Value) -> String {
    match manifest::namespace(obj) {
        Some(ns) => format!("{} {ns}/{}", manifest::kind(obj), manifest::name(obj)),
        None => format!("{} {}", manifest::kind(obj), manifest::name(obj)),
    }
}

/// The typed API of one object, and its namespace (filled in from the default when the kind is
/// namespaced and the object names none).
async fn api_for(
    client: &Client,
    kinds: &KindCache,
    default_ns: &str,
    obj: &mut Value,
) -> Result<(Api<DynamicObject>, ApiResource, Option<String>), K8sError> {
    let (ar, namespaced) = kinds.resolve(client, obj).await?;
    if !namespaced {
        return Ok((Api::all_with(client.clone(), &ar), ar, None));
    }
    let ns = manifest::namespace(obj).unwrap_or(default_ns).to_string();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("namespace".into(), Value::String(ns.clone()));
    }
    Ok((Api::namespaced_with(client.clone(), &ns, &ar), ar, Some(ns)))
}

fn is_missing_namespace(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404 && s.message.starts_with("namespaces \""))
}

/// An update the server rejects as invalid may still be a valid object on its own: a v1.20
/// server-side apply that drops a field whose siblings were defaulted (a removed probe
/// handler) leaves an invalid merge. A dry-run create tells: "already exists" means the
/// object itself passed validation, so re-creating it works.
async fn valid_when_new(api: &Api<DynamicObject>, obj: &Value, e: &kube::Error) -> bool {
    if !matches!(e, kube::Error::Api(s) if s.code == 422) {
        return false;
    }
    let Ok(object) = serde_json::from_value::<DynamicObject>(obj.clone()) else {
        return false;
    };
    let params = PostParams {
        dry_run: true,
        field_manager: Some(FIELD_MANAGER.to_string()),
    };
    matches!(api.create(&params, &object).await, Err(kube::Error::Api(s)) if s.code == 409)
}

fn is_immutable_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 422 && s.message.contains("immutable"))
}

/// Applies `objects` (already in apply order) with server-side apply; each object gets at most
/// `timeout`. CRDs are waited for until established, so the kinds they define resolve.
pub async fn apply_objects(
    client: &Client,
    kinds: &KindCache,
    default_ns: &str,
    objects: Vec<Value>,
    timeout: Duration,
    log: &Arc<dyn LogSink>,
) -> Result<Vec<Applied>, K8sError> {
    let mut applied = Vec::with_capacity(objects.len());
    for mut obj in objects {
        let label = object_label(&obj);
        let one = async {
            let (api, _, namespace) = api_for(client, kinds, default_ns, &mut obj).await?;
            let name = manifest::name(&obj).to_string();
            let params = PatchParams::apply(FIELD_MANAGER).force();
            let mut first = api.patch(&name, &params, &Patch::Apply(&obj)).await;
            if let (Err(e), Some(ns)) = (&first, &namespace)
                && is_missing_namespace(e)
            {
                // Another resource of the Tiltfile (often `uncategorized`) creates it.
                log.line(&format!(
                    "{label}: waiting for namespace {ns} to be created"
                ));
                let namespaces: Api<Namespace> = Api::all(client.clone());
                await_condition(namespaces, ns, |o: Option<&Namespace>| o.is_some())
                    .await
                    .map_err(|e| K8sError::Api {
                        action: format!("waiting for namespace {ns}"),
                        message: e.to_string(),
                    })?;
                first = api.patch(&name, &params, &Patch::Apply(&obj)).await;
            }
            let result = match first {
                Err(e) if is_immutable_conflict(&e) || valid_when_new(&api, &obj, &e).await => {
                    log.line(&format!(
                        "{label} cannot be updated in place ({}); deleting and re-creating it",
                        describe(&e)
                    ));
                    delete_and_wait(&api, &name)
                        .await
                        .map_err(K8sError::api(format!("deleting {label}")))?;
                    api.patch(&name, &params, &Patch::Apply(&obj)).await
                }
                other => other,
            }
            .map_err(K8sError::api(format!("applying {}", object_label(&obj))))?;
            if manifest::kind(&obj) == "CustomResourceDefinition" {
                let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
                await_condition(crds, &name, conditions::is_crd_established())
                    .await
                    .map_err(|e| K8sError::Api {
                        action: format!("waiting for {label} to be established"),
                        message: e.to_string(),
                    })?;
            }
            Ok::<_, K8sError>(Applied {
                kind: manifest::kind(&obj).to_string(),
                name,
                namespace,
                uid: result.metadata.uid.unwrap_or_default(),
            })
        };
        let done = tokio::time::timeout(timeout, one)
            .await
            .map_err(|_| K8sError::Api {
                action: format!("applying {label}"),
                message: format!(
                    "no answer within {}s (k8s_upsert_timeout_secs)",
                    timeout.as_secs()
                ),
            })??;
        applied.push(done);
    }
    Ok(applied)
}

/// Deletes one object and waits until it is gone (foreground: its pods go first).
async fn delete_and_wait(api: &Api<DynamicObject>, name: &str) -> Result<(), kube::Error> {
    let params = DeleteParams::foreground();
    match api.delete(name, &params).await {
        Ok(either) => {
            if let Some(uid) = either.left().and_then(|o| o.metadata.uid) {
                await_condition(api.clone(), name, conditions::is_deleted(&uid))
                    .await
                    .map_err(|e| kube::Error::Service(Box::new(e)))?;
            }
            Ok(())
        }
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

/// What `down` did with one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownOutcome {
    Deleted(String),
    /// Kept: a Namespace without `--delete-namespaces`, or `tilt.dev/down-policy: keep`.
    Kept(String, &'static str),
    NotFound(String),
}

/// Deletes `objects` (others first, then Namespaces, then CRDs; each group at once) and waits
/// until each is gone.
pub async fn delete_objects(
    client: &Client,
    kinds: &KindCache,
    default_ns: &str,
    objects: Vec<Value>,
    delete_namespaces: bool,
    timeout: Duration,
) -> Vec<Result<DownOutcome, K8sError>> {
    // Group by apply rank, last applied first; the objects of a group go at once.
    let mut groups: Vec<(u8, Vec<Value>)> = Vec::new();
    for obj in objects {
        let rank = manifest::apply_rank(manifest::kind(&obj));
        match groups.iter_mut().find(|(r, _)| *r == rank) {
            Some((_, group)) => group.push(obj),
            None => groups.push((rank, vec![obj])),
        }
    }
    groups.sort_by_key(|(rank, _)| std::cmp::Reverse(*rank));
    let mut out = Vec::new();
    for (_, group) in groups {
        let deletes = group
            .into_iter()
            .map(|obj| delete_one(client, kinds, default_ns, obj, delete_namespaces, timeout));
        out.extend(futures_util::future::join_all(deletes).await);
    }
    out
}

/// Deletes one object for `down` (unless it is kept) and waits until it is gone.
async fn delete_one(
    client: &Client,
    kinds: &KindCache,
    default_ns: &str,
    mut obj: Value,
    delete_namespaces: bool,
    timeout: Duration,
) -> Result<DownOutcome, K8sError> {
    let label = object_label(&obj);
    let keep = obj
        .pointer(&format!(
            "/metadata/annotations/{}",
            DOWN_POLICY_ANNOTATION.replace('/', "~1")
        ))
        .and_then(Value::as_str)
        == Some("keep");
    if keep {
        return Ok(DownOutcome::Kept(label, "tilt.dev/down-policy: keep"));
    }
    if manifest::kind(&obj) == "Namespace" && !delete_namespaces {
        return Ok(DownOutcome::Kept(
            label,
            "Namespaces are kept without --delete-namespaces",
        ));
    }
    let one = async {
        let (api, _, _) = api_for(client, kinds, default_ns, &mut obj).await?;
        let name = manifest::name(&obj).to_string();
        let label = object_label(&obj);
        let existed = api
            .get_opt(&name)
            .await
            .map_err(K8sError::api(format!("reading {label}")))?
            .is_some();
        if !existed {
            return Ok(DownOutcome::NotFound(label));
        }
        delete_and_wait(&api, &name)
            .await
            .map_err(K8sError::api(format!("deleting {label}")))?;
        Ok(DownOutcome::Deleted(label))
    };
    tokio::time::timeout(timeout, one)
        .await
        .unwrap_or_else(|_| {
            Err(K8sError::Api {
                action: format!("deleting {label}"),
                message: format!("still there after {}s", timeout.as_secs()),
            })
        })
}
