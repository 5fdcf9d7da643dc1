//! Objects made ready to apply, without I/O: tiltrs's labels (on each object and on its pod
//! templates, so its pods are found again), the defaults a v1.20 server-side apply needs
//! (`protocol` on Service and container ports), built image references in place of the
//! Tiltfile's, and Tilt's apply order (CRDs and Namespaces first).

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::model::ImageField;
use crate::tiltfile::assemble::images::ref_matches;

/// Marks what tiltrs applied.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "tiltrs";
/// The resource an object (and its pods) belongs to, as a label value.
pub const RESOURCE_LABEL: &str = "tiltrs.dev/resource";
/// Tilt's annotation that keeps an object on `down`.
pub const DOWN_POLICY_ANNOTATION: &str = "tilt.dev/down-policy";

/// A resource name as a label value: itself when it is one (at most 63 of `[A-Za-z0-9._-]`,
/// alphanumeric at both ends), else a readable prefix and a hash of the name.
pub fn resource_label_value(name: &str) -> String {
    let valid = |s: &str| {
        !s.is_empty()
            && s.len() <= 63
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && s.starts_with(|c: char| c.is_ascii_alphanumeric())
            && s.ends_with(|c: char| c.is_ascii_alphanumeric())
    };
    if valid(name) {
        return name.to_string();
    }
    let readable: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(40)
        .collect();
    let hash = hex::encode(&Sha256::digest(name.as_bytes())[..6]);
    let readable = readable.trim_matches('-');
    if readable.is_empty() {
        hash
    } else {
        format!("{readable}-{hash}")
    }
}

/// The label selector of a resource's objects and pods.
pub fn resource_selector(name: &str) -> String {
    format!("{RESOURCE_LABEL}={}", resource_label_value(name))
}

/// What image references become: the Tiltfile's build ref -> the reference the cluster pulls.
#[derive(Debug, Clone, Default)]
pub struct ImageMap {
    pub refs: BTreeMap<String, String>,
    /// Builds whose refs are also replaced in container env values (`match_in_env_vars`).
    pub in_env: Vec<String>,
}

impl ImageMap {
    fn replacement(&self, candidate: &str) -> Option<&String> {
        self.refs
            .iter()
            .find(|(build, _)| ref_matches(build, candidate))
            .map(|(_, to)| to)
    }
}

/// The resource's objects, ready to apply, in apply order. `fields` holds, per manifest, the
/// places `k8s_kind` locators found images (empty when there are none).
pub fn prepare(
    manifests: &[Value],
    fields: &[Vec<ImageField>],
    resource: &str,
    images: &ImageMap,
) -> Vec<Value> {
    let label = resource_label_value(resource);
    let mut out: Vec<Value> = manifests
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let mut obj = m.clone();
            for field in fields.get(i).into_iter().flatten() {
                rewrite_field(&mut obj, field, images);
            }
            add_labels(labels_of(&mut obj), &label);
            for template in pod_templates(&mut obj) {
                add_labels(labels_of(template), &label);
            }
            default_port_protocols(&mut obj);
            rewrite_images(&mut obj, images);
            obj
        })
        .collect();
    out.sort_by_key(|o| apply_rank(kind(o)));
    out
}

/// CRDs first, then Namespaces, then the rest in their order.
pub fn apply_rank(kind: &str) -> u8 {
    match kind {
        "CustomResourceDefinition" => 0,
        "Namespace" => 1,
        _ => 2,
    }
}

pub fn kind(o: &Value) -> &str {
    o.get("kind").and_then(Value::as_str).unwrap_or_default()
}

pub fn name(o: &Value) -> &str {
    o.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

pub fn namespace(o: &Value) -> Option<&str> {
    o.pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
}

/// `metadata.labels`, created when missing (`None` for a value that is not an object).
fn labels_of(o: &mut Value) -> Option<&mut Map<String, Value>> {
    let meta = o
        .as_object_mut()?
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    let labels = meta
        .as_object_mut()?
        .entry("labels")
        .or_insert_with(|| Value::Object(Map::new()));
    if !labels.is_object() {
        *labels = Value::Object(Map::new());
    }
    labels.as_object_mut()
}

fn add_labels(labels: Option<&mut Map<String, Value>>, resource: &str) {
    let Some(labels) = labels else {
        return;
    };
    labels.insert(MANAGED_BY_LABEL.into(), Value::String(MANAGED_BY.into()));
    labels.insert(RESOURCE_LABEL.into(), Value::String(resource.into()));
}

/// The pod templates of a workload (`spec.template`, `spec.jobTemplate.spec.template`).
fn pod_templates(o: &mut Value) -> Vec<&mut Value> {
    let mut out = Vec::new();
    if kind(o) == "CronJob" {
        if let Some(t) = o.pointer_mut("/spec/jobTemplate/spec/template") {
            out.push(t);
        }
    } else if let Some(t) = o.pointer_mut("/spec/template").filter(|t| t.is_object()) {
        out.push(t);
    }
    out
}

/// Every pod spec in the object: its own (`Pod`) or its templates'.
fn pod_specs(o: &mut Value) -> Vec<&mut Value> {
    if kind(o) == "Pod" {
        return o.pointer_mut("/spec").into_iter().collect();
    }
    pod_templates(o)
        .into_iter()
        .filter_map(|t| t.get_mut("spec"))
        .collect()
}

/// A v1.20 server-side apply keys port lists by port and protocol before defaulting, so a port
/// without `protocol` is rejected; `TCP` is the default the server would give.
fn default_port_protocols(o: &mut Value) {
    let fill = |ports: Option<&mut Value>| {
        if let Some(Value::Array(ports)) = ports {
            for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                p.entry("protocol")
                    .or_insert_with(|| Value::String("TCP".into()));
            }
        }
    };
    if kind(o) == "Service" {
        fill(o.pointer_mut("/spec/ports"));
    }
    for spec in pod_specs(o) {
        for list in ["containers", "initContainers"] {
            if let Some(Value::Array(containers)) = spec.get_mut(list) {
                for c in containers.iter_mut() {
                    fill(c.get_mut("ports"));
                }
            }
        }
    }
}

/// Replaces image references: every string under an `image` key (containers, and the image
/// fields of custom kinds), and container env values for `match_in_env_vars` builds.
fn rewrite_images(v: &mut Value, images: &ImageMap) {
    match v {
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                match (key.as_str(), &*value) {
                    ("image", Value::String(s)) => {
                        if let Some(to) = images.replacement(s) {
                            *value = Value::String(to.clone());
                        }
                    }
                    ("env", _) => rewrite_env(value, images),
                    _ => rewrite_images(value, images),
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                rewrite_images(item, images);
            }
        }
        _ => {}
    }
}

/// Puts the built reference at one locator-found place.
fn rewrite_field(obj: &mut Value, field: &ImageField, images: &ImageMap) {
    match field {
        ImageField::Ref(pointer) => {
            let to = obj
                .pointer(pointer)
                .and_then(Value::as_str)
                .and_then(|s| images.replacement(s))
                .cloned();
            if let (Some(to), Some(slot)) = (to, obj.pointer_mut(pointer)) {
                *slot = Value::String(to);
            }
        }
        ImageField::Split { repo, tag } => {
            let repo_value = obj
                .pointer(repo)
                .and_then(Value::as_str)
                .unwrap_or_default();
            let tag_value = obj.pointer(tag).and_then(Value::as_str).unwrap_or_default();
            let candidate = if tag_value.is_empty() {
                repo_value.to_string()
            } else {
                format!("{repo_value}:{tag_value}")
            };
            let Some(to) = images.replacement(&candidate).cloned() else {
                return;
            };
            let (name, new_tag) = crate::build::split_tag(&to);
            if let Some(slot) = obj.pointer_mut(repo) {
                *slot = Value::String(name.to_string());
            }
            if let Some(slot) = obj.pointer_mut(tag) {
                *slot = Value::String(new_tag.unwrap_or("latest").to_string());
            } else if let (Some(parent), Some(key)) = (
                tag.rsplit_once('/').and_then(|(p, _)| obj.pointer_mut(p)),
                tag.rsplit('/').next(),
            ) && let Some(map) = parent.as_object_mut()
            {
                map.insert(
                    key.replace("~1", "/").replace("~0", "~"),
                    Value::String(new_tag.unwrap_or("latest").to_string()),
                );
            }
        }
    }
}

fn rewrite_env(env: &mut Value, images: &ImageMap) {
    let Value::Array(vars) = env else {
        return;
    };
    for var in vars.iter_mut().filter_map(Value::as_object_mut) {
        let Some(Value::String(s)) = var.get("value") else {
            continue;
        };
        let to = images
            .in_env
            .iter()
            .filter(|build| ref_matches(build, s))
            .find_map(|build| images.refs.get(build));
        if let Some(to) = to {
            var.insert("value".into(), Value::String(to.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "gcr.io/team/web:dev",
                    "ports": [{"containerPort": 8000}],
                    "env": [{"name": "HELPER", "value": "helper"}]}]}}}
        })
    }

    #[test]
    fn labels_defaults_images_and_order() {
        let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
            "spec": {"ports": [{"port": 80}, {"port": 53, "protocol": "UDP"}]}});
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}});
        let images = ImageMap {
            refs: BTreeMap::from([
                (
                    "gcr.io/team/web".to_string(),
                    "localhost:5000/web:tilt-1".to_string(),
                ),
                (
                    "helper".to_string(),
                    "localhost:5000/helper:tilt-2".to_string(),
                ),
            ]),
            in_env: vec!["helper".to_string()],
        };
        let out = prepare(&[deployment(), svc, ns], &[], "web", &images);
        assert_eq!(
            out.iter().map(kind).collect::<Vec<_>>(),
            ["Namespace", "Deployment", "Service"]
        );
        let d = &out[1];
        assert_eq!(
            d.pointer("/metadata/labels/tiltrs.dev~1resource"),
            Some(&json!("web"))
        );
        assert_eq!(
            d.pointer("/spec/template/metadata/labels/tiltrs.dev~1resource"),
            Some(&json!("web"))
        );
        assert_eq!(
            d.pointer("/spec/template/metadata/labels/app"),
            Some(&json!("web"))
        );
        let c = d.pointer("/spec/template/spec/containers/0").unwrap();
        assert_eq!(c["image"], "localhost:5000/web:tilt-1");
        assert_eq!(c["ports"][0]["protocol"], "TCP");
        assert_eq!(c["env"][0]["value"], "localhost:5000/helper:tilt-2");
        assert_eq!(
            out[2].pointer("/spec/ports/0/protocol"),
            Some(&json!("TCP"))
        );
        assert_eq!(
            out[2].pointer("/spec/ports/1/protocol"),
            Some(&json!("UDP"))
        );
        // A label `app: web` is not an image, even when a build is named `web`.
        let images = ImageMap {
            refs: BTreeMap::from([("web".to_string(), "r/web:t".to_string())]),
            in_env: vec![],
        };
        let out = prepare(&[deployment()], &[], "web", &images);
        assert_eq!(
            out[0].pointer("/spec/template/metadata/labels/app"),
            Some(&json!("web"))
        );
    }

    #[test]
    fn locator_fields_are_rewritten() {
        let cr = json!({"apiVersion": "x/v1", "kind": "App", "metadata": {"name": "a"},
            "spec": {"runtime": {"containerImage": "web"}, "sidecar": {"repo": "helper", "tag": "dev"}}});
        let images = ImageMap {
            refs: BTreeMap::from([
                ("web".to_string(), "r:5000/web:tilt-1".to_string()),
                ("helper".to_string(), "r:5000/helper:tilt-2".to_string()),
            ]),
            in_env: vec![],
        };
        let fields = vec![vec![
            ImageField::Ref("/spec/runtime/containerImage".into()),
            ImageField::Split {
                repo: "/spec/sidecar/repo".into(),
                tag: "/spec/sidecar/tag".into(),
            },
        ]];
        let out = prepare(&[cr], &fields, "a", &images);
        assert_eq!(
            out[0].pointer("/spec/runtime/containerImage"),
            Some(&json!("r:5000/web:tilt-1"))
        );
        assert_eq!(
            out[0].pointer("/spec/sidecar/repo"),
            Some(&json!("r:5000/helper"))
        );
        assert_eq!(out[0].pointer("/spec/sidecar/tag"), Some(&json!("tilt-2")));
    }

    #[test]
    fn label_values_are_valid() {
        assert_eq!(resource_label_value("web"), "web");
        let v = resource_label_value("web:deployment:team");
        assert!(v.starts_with("web-deployment-team-"), "{v}");
        assert_ne!(v, resource_label_value("web:deployment:other"));
        let long = "x".repeat(80);
        assert!(resource_label_value(&long).len() <= 63);
        assert_eq!(resource_selector("api"), "tiltrs.dev/resource=api");
    }
}
