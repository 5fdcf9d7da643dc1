//! Kubernetes objects as Tilt sees them during Tiltfile evaluation: parsing multi-document
//! YAML into [`K8sObject`]s (with `List` flattening and Tilt's decode errors), re-serialising
//! them, object selectors (the regex selectors of `k8s_kind`/`filter_yaml` and the
//! `name:kind:namespace` fragments of `k8s_resource(objects=)`), the parts of typed objects
//! Tilt inspects (pod templates, containers, env vars, Service selectors, metadata), image
//! locators, and Docker reference validation. No cluster is involved.

pub mod jsonpath;

use serde::Deserialize;
use serde_json::Value as Json;

use self::jsonpath::JsonPath;
use crate::tiltfile::state::K8sObject;

// ---------------------------------------------------------------------------------------
// Parsing and serialising

/// Parses a YAML stream into objects, in document order.
pub fn parse_objects(text: &str) -> Result<Vec<K8sObject>, String> {
    let mut out = Vec::new();
    for doc in yaml_serde::Deserializer::from_str(text) {
        let value = Json::deserialize(doc).map_err(|e| e.to_string())?;
        if value.is_null() {
            continue;
        }
        push_object(value, &mut out)?;
    }
    Ok(out)
}

fn push_object(value: Json, out: &mut Vec<K8sObject>) -> Result<(), String> {
    let Json::Object(map) = &value else {
        return Err(format!(
            "couldn't get version/kind; json parse error: cannot unmarshal {} into an object with apiVersion and kind",
            json_type(&value)
        ));
    };
    let kind = match map.get("kind") {
        Some(Json::String(k)) if !k.is_empty() => k.clone(),
        _ => {
            return Err(format!(
                "Object 'Kind' is missing in '{}'",
                serde_json::to_string(&value).unwrap_or_default()
            ));
        }
    };
    let is_list = kind == "List" || (kind.ends_with("List") && map.get("items").is_some());
    if is_list {
        if let Some(Json::Array(items)) = map.get("items") {
            for item in items {
                push_object(item.clone(), out)?;
            }
        }
        return Ok(());
    }
    let api_version = match map.get("apiVersion") {
        Some(Json::String(v)) if !v.is_empty() => v.clone(),
        _ => {
            return Err(format!(
                "Object 'apiVersion' is missing in '{}'",
                serde_json::to_string(&value).unwrap_or_default()
            ));
        }
    };
    let meta = map.get("metadata");
    let field = |k: &str| {
        meta.and_then(|m| m.get(k))
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let name = field("name");
    let namespace = field("namespace");
    if kind == "Secret"
        && api_version == "v1"
        && let Some(Json::Object(data)) = map.get("data")
    {
        for s in data.values().filter_map(Json::as_str) {
            base64_decode(s).map_err(|e| format!("decoding Secret {name:?}: {e}"))?;
        }
    }
    out.push(K8sObject {
        name,
        kind,
        namespace,
        api_version,
        value: std::sync::Arc::new(value),
        registered_at: String::new(),
    });
    Ok(())
}

fn json_type(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "bool",
        Json::Number(_) => "number",
        Json::String(_) => "string",
        Json::Array(_) => "array",
        Json::Object(_) => "object",
    }
}

/// One object as a YAML document (keys sorted, as Tilt's serializer writes maps).
pub fn to_yaml(value: &Json) -> Result<String, String> {
    crate::tiltfile::yaml::to_yaml_sorted(value)
}

/// Objects as one YAML stream, separated by `---`.
pub fn serialize_stream<'a>(values: impl IntoIterator<Item = &'a Json>) -> Result<String, String> {
    let docs: Vec<String> = values.into_iter().map(to_yaml).collect::<Result<_, _>>()?;
    Ok(docs.join("---\n"))
}

/// Standard base64 (with padding) as Kubernetes stores Secret data; errors read like Go's.
pub fn base64_decode(s: &str) -> Result<Vec<u8>, String> {
    fn val(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    let bytes: Vec<u8> = s.bytes().filter(|b| *b != b'\n' && *b != b'\r').collect();
    let illegal = |i: usize| format!("illegal base64 data at input byte {i}");
    if !bytes.len().is_multiple_of(4) {
        let valid = bytes.iter().take_while(|b| val(**b).is_some()).count();
        return Err(illegal(valid.min(bytes.len())));
    }
    let mut out = Vec::new();
    for (chunk_index, chunk) in bytes.chunks(4).enumerate() {
        let base = chunk_index * 4;
        let last = base + 4 == bytes.len();
        let pad = chunk.iter().rev().take_while(|b| **b == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            let first_pad = chunk.iter().position(|b| *b == b'=').unwrap_or(0);
            return Err(illegal(base + first_pad));
        }
        let mut n: u32 = 0;
        for (i, b) in chunk.iter().enumerate() {
            let v = if i >= 4 - pad {
                0
            } else {
                val(*b).ok_or_else(|| illegal(base + i))?
            };
            n = (n << 6) | v;
        }
        let decoded = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&decoded[..3 - pad]);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Identity

impl K8sObject {
    /// The namespace, or `default` when the YAML gives none (Tilt's `Namespace()`).
    pub fn namespace_or_default(&self) -> &str {
        if self.namespace.is_empty() {
            "default"
        } else {
            &self.namespace
        }
    }

    /// `NAME:KIND:NAMESPACE` with `:` and `\` escaped, as `k8s_resource(objects=)` lists them.
    pub fn full_name(&self) -> String {
        escape_join(&[&self.name, &self.kind, self.namespace_or_default()])
    }

    /// The lower-cased `name:kind:namespace:group` Tilt shows for a `K8sObjectID`.
    pub fn object_id_string(&self) -> String {
        format!(
            "{}:{}:{}:{}",
            self.name,
            self.kind,
            self.namespace_or_default(),
            self.group()
        )
        .to_lowercase()
    }

    /// How a duplicate registration is reported (`Deployment foo (Namespace: ns1)`).
    pub fn human_ref(&self) -> String {
        if self.namespace.is_empty() {
            format!("{} {}", self.kind, self.name)
        } else {
            format!(
                "{} {} (Namespace: {})",
                self.kind, self.name, self.namespace
            )
        }
    }

    /// The key duplicates are detected by (kind, apiVersion, name, namespace as written).
    pub fn duplicate_key(&self) -> (String, String, String, String) {
        (
            self.kind.clone(),
            self.api_version.clone(),
            self.name.clone(),
            self.namespace.clone(),
        )
    }

    /// name, kind, namespace (`default` when absent), group (`core` for the empty group).
    fn id_parts(&self) -> [&str; 4] {
        let group = if self.group().is_empty() {
            "core"
        } else {
            self.group()
        };
        [
            self.name.as_str(),
            self.kind.as_str(),
            self.namespace_or_default(),
            group,
        ]
    }

    /// Candidate resource names, shortest first: name, name:kind, name:kind:namespace,
    /// name:kind:namespace:group, lower-cased.
    pub fn potential_names(&self) -> Vec<String> {
        let parts = self.id_parts();
        (1..=parts.len())
            .map(|n| parts[..n].join(":").to_lowercase())
            .collect()
    }

    /// The same candidates with `:` and `\` escaped, as `objects=` fragments are looked up.
    pub fn fragments(&self) -> Vec<String> {
        let parts = self.id_parts();
        (1..=parts.len())
            .map(|n| escape_join(&parts[..n]).to_lowercase())
            .collect()
    }

    fn api_group(&self) -> &str {
        self.group()
    }

    /// Is this one of the built-in kinds Tilt decodes into typed Go objects with pod specs?
    fn is_typed_workload_kind(&self) -> bool {
        matches!(
            (self.api_group(), self.kind.as_str()),
            ("", "Pod" | "ReplicationController" | "PodTemplate")
                | (
                    "apps" | "extensions",
                    "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet"
                )
                | ("batch", "Job" | "CronJob")
        )
    }

    /// Pod templates (`spec.template` and friends) of built-in workload kinds.
    pub fn pod_templates(&self) -> Vec<&Json> {
        if !self.is_typed_workload_kind() {
            return Vec::new();
        }
        let v = &self.value;
        let found = match self.kind.as_str() {
            "Pod" => None,
            "PodTemplate" => v.get("template"),
            "CronJob" => v
                .pointer("/spec/jobTemplate/spec/template")
                .filter(|t| !t.is_null()),
            _ => v.pointer("/spec/template"),
        };
        found.filter(|t| t.is_object()).into_iter().collect()
    }

    /// Pod specs: the object's own for a Pod, else those of its templates.
    fn pod_specs(&self) -> Vec<&Json> {
        if !self.is_typed_workload_kind() {
            return Vec::new();
        }
        if self.kind == "Pod" {
            return self
                .value
                .get("spec")
                .filter(|s| s.is_object())
                .into_iter()
                .collect();
        }
        self.pod_templates()
            .into_iter()
            .filter_map(|t| t.get("spec"))
            .filter(|s| s.is_object())
            .collect()
    }

    /// Containers in pod-spec field order: init containers, then containers.
    fn containers(&self) -> Vec<&Json> {
        let mut out = Vec::new();
        for spec in self.pod_specs() {
            for field in ["initContainers", "containers"] {
                if let Some(Json::Array(items)) = spec.get(field) {
                    out.extend(items.iter().filter(|c| c.is_object()));
                }
            }
        }
        out
    }

    /// Labels of each pod template.
    pub fn template_labels(&self) -> Vec<Vec<(String, String)>> {
        self.pod_templates()
            .into_iter()
            .map(|t| string_map(t.pointer("/metadata/labels")))
            .collect()
    }

    /// The selector of a Service (core group) that has one; other objects select nothing.
    pub fn service_selector(&self) -> Option<Vec<(String, String)>> {
        if self.kind != "Service" || !self.api_group().is_empty() {
            return None;
        }
        let selector = string_map(self.value.pointer("/spec/selector"));
        (!selector.is_empty()).then_some(selector)
    }

    /// Every `metadata` block Tilt's typed decoding would see: the object's own plus those
    /// of its pod/job templates and StatefulSet claim templates.
    pub fn metadata_label_sets(&self) -> Vec<Vec<(String, String)>> {
        let v = &self.value;
        let mut metas = vec![v.get("metadata")];
        if self.is_typed_workload_kind() {
            match self.kind.as_str() {
                "Pod" => {}
                "PodTemplate" => {
                    if let Some(t) = v.get("template").filter(|t| t.is_object()) {
                        metas.push(t.get("metadata"));
                    }
                }
                "CronJob" => {
                    if let Some(jt) = v.pointer("/spec/jobTemplate").filter(|t| t.is_object()) {
                        metas.push(jt.get("metadata"));
                        if let Some(t) = jt.pointer("/spec/template").filter(|t| t.is_object()) {
                            metas.push(t.get("metadata"));
                        }
                    }
                }
                _ => {
                    if let Some(t) = v.pointer("/spec/template").filter(|t| t.is_object()) {
                        metas.push(t.get("metadata"));
                    }
                    if let Some(Json::Array(claims)) = v.pointer("/spec/volumeClaimTemplates") {
                        metas.extend(claims.iter().map(|c| c.get("metadata")));
                    }
                }
            }
        }
        metas
            .into_iter()
            .map(|m| string_map(m.and_then(|m| m.get("labels"))))
            .collect()
    }

    /// Is the object namespaced (as far as Tilt can tell without a cluster)?
    pub fn is_namespaced(&self) -> bool {
        !CLUSTER_SCOPED_KINDS.contains(&self.kind.as_str())
    }
}

/// Built-in kinds that live outside namespaces.
const CLUSTER_SCOPED_KINDS: &[&str] = &[
    "Namespace",
    "Node",
    "PersistentVolume",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "StorageClass",
    "PriorityClass",
    "IngressClass",
    "RuntimeClass",
    "CSIDriver",
    "CSINode",
    "VolumeAttachment",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "APIService",
    "PodSecurityPolicy",
    "ComponentStatus",
    "CertificateSigningRequest",
    "FlowSchema",
    "PriorityLevelConfiguration",
    "TokenReview",
    "SelfSubjectAccessReview",
    "SubjectAccessReview",
];

fn string_map(v: Option<&Json>) -> Vec<(String, String)> {
    match v {
        Some(Json::Object(m)) => m
            .iter()
            .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
            .collect(),
        _ => Vec::new(),
    }
}

/// Joins parts with `:`, escaping `:` and `\` inside them.
pub fn escape_join(parts: &[&str]) -> String {
    let mut out = String::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        if part.contains(['\\', ':']) {
            for c in part.chars() {
                if c == '\\' || c == ':' {
                    out.push('\\');
                }
                out.push(c);
            }
        } else {
            out.push_str(part);
        }
    }
    out
}

/// Splits on unescaped `:`, un-escaping `\:` and `\\`; other escapes are errors.
pub fn unescape_split(s: &str) -> Result<Vec<String>, String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            if c == ':' || c == '\\' {
                cur.push(c);
                escaped = false;
                continue;
            }
            let start = floor_char_boundary(s, i.saturating_sub(3));
            let end = ceil_char_boundary(s, (i + 3).min(s.len()));
            return Err(format!(
                "invalid escape sequence '\\{c}' in '{}'",
                &s[start..end]
            ));
        }
        match c {
            ':' => parts.push(std::mem::take(&mut cur)),
            '\\' => escaped = true,
            _ => cur.push(c),
        }
    }
    parts.push(cur);
    Ok(parts)
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_char_boundary(s: &str, mut i: usize) -> usize {
    while i < s.len() && !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

// ---------------------------------------------------------------------------------------
// Selectors

/// A regex per field; an absent field matches everything. `apiVersion` is matched against
/// the object's `apiVersion`, `namespace` against its namespace (`default` when absent).
#[derive(Debug, Clone)]
pub struct ObjectSelector {
    api_version: Option<FieldMatcher>,
    kind: Option<FieldMatcher>,
    name: Option<FieldMatcher>,
    namespace: Option<FieldMatcher>,
    /// The strings the selector was built from, for equality.
    key: [String; 4],
}

impl PartialEq for ObjectSelector {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

/// A Go-style rendering of a regex syntax error.
fn regex_error(field: &str, err: &regex::Error) -> String {
    let text = err.to_string();
    let detail = text
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .unwrap_or(text.trim())
        .to_owned();
    format!("error parsing {field} regexp: error parsing regexp: {detail}")
}

/// How one field of an object is matched, case-insensitively. Patterns without regex syntax
/// (most of them: `Job`, `apps/v1`, names) skip compiling a regex.
#[derive(Debug, Clone)]
enum FieldMatcher {
    /// Contains this (lowercase) literal.
    Contains(String),
    /// Equals this (lowercase) literal.
    Equals(String),
    Regex(regex::Regex),
}

impl FieldMatcher {
    fn is_match(&self, field: &str) -> bool {
        match self {
            FieldMatcher::Contains(lit) => {
                if field.is_ascii() {
                    field
                        .as_bytes()
                        .windows(lit.len())
                        .any(|w| w.eq_ignore_ascii_case(lit.as_bytes()))
                } else {
                    field.to_lowercase().contains(lit.as_str())
                }
            }
            FieldMatcher::Equals(lit) => {
                field.eq_ignore_ascii_case(lit)
                    || (!field.is_ascii() && field.to_lowercase() == *lit)
            }
            FieldMatcher::Regex(re) => re.is_match(field),
        }
    }
}

fn compile(field: &str, pattern: &str) -> Result<Option<FieldMatcher>, String> {
    if pattern.is_empty() {
        return Ok(None);
    }
    let literal = pattern
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_' | ' '));
    if literal {
        return Ok(Some(FieldMatcher::Contains(pattern.to_ascii_lowercase())));
    }
    regex::Regex::new(&format!("(?i){pattern}"))
        .map(|re| Some(FieldMatcher::Regex(re)))
        .map_err(|e| regex_error(field, &e))
}

fn exact(literal: &str) -> Option<FieldMatcher> {
    (!literal.is_empty()).then(|| FieldMatcher::Equals(literal.to_lowercase()))
}

impl ObjectSelector {
    /// Case-insensitive regexes matched anywhere in the field (`k8s_kind`, `filter_yaml`,
    /// `k8s_image_json_path`).
    pub fn partial(
        api_version: &str,
        kind: &str,
        name: &str,
        namespace: &str,
    ) -> Result<ObjectSelector, String> {
        Ok(ObjectSelector {
            api_version: compile("apiVersion", api_version)?,
            kind: compile("kind", kind)?,
            name: compile("name", name)?,
            namespace: compile("namespace", namespace)?,
            key: [
                api_version.to_owned(),
                kind.to_owned(),
                name.to_owned(),
                namespace.to_owned(),
            ],
        })
    }

    /// Exact, case-insensitive matches of literal strings (`objects=` fragments).
    pub fn exact(kind: &str, name: &str, namespace: &str) -> Result<ObjectSelector, String> {
        Ok(ObjectSelector {
            api_version: None,
            kind: exact(kind),
            name: exact(name),
            namespace: exact(namespace),
            key: [
                "=".to_owned(),
                kind.to_owned(),
                name.to_owned(),
                namespace.to_owned(),
            ],
        })
    }

    /// Parses `name[:kind[:namespace]]` (with `\:` and `\\` escapes).
    pub fn from_fragment(s: &str) -> Result<ObjectSelector, String> {
        let parts = unescape_split(s)?;
        if s.is_empty() {
            return Err("selector can't be empty".to_owned());
        }
        match parts.as_slice() {
            [name] => ObjectSelector::exact("", name, ""),
            [name, kind] => ObjectSelector::exact(kind, name, ""),
            [name, kind, namespace] => ObjectSelector::exact(kind, name, namespace),
            _ => Err(format!(
                "Too many parts in selector. Selectors must contain between 1 and 3 parts (colon separated), found {} parts in {s}",
                parts.len()
            )),
        }
    }

    pub fn matches(&self, o: &K8sObject) -> bool {
        let test = |m: &Option<FieldMatcher>, s: &str| m.as_ref().is_none_or(|m| m.is_match(s));
        test(&self.api_version, &o.api_version)
            && test(&self.kind, &o.kind)
            && test(&self.name, &o.name)
            && test(&self.namespace, o.namespace_or_default())
    }
}

// ---------------------------------------------------------------------------------------
// Images

/// Where to find images in objects matching a selector: a JSONPath to strings, or to
/// objects holding the repository and tag in separate fields.
#[derive(Debug, Clone)]
pub struct ImageLocator {
    pub selector: ObjectSelector,
    pub path: JsonPath,
    /// `(repo_field, tag_field)` for `image_object=`.
    pub object_fields: Option<(String, String)>,
}

impl ImageLocator {
    fn extract(&self, o: &K8sObject) -> Result<Vec<String>, String> {
        if !self.selector.matches(o) {
            return Ok(Vec::new());
        }
        let images = match &self.object_fields {
            None => self.path.find_strings(&o.value)?,
            Some((repo_field, tag_field)) => self
                .path
                .find_maps(&o.value)?
                .into_iter()
                .map(|m| {
                    let repo = m.get(repo_field).and_then(Json::as_str).unwrap_or_default();
                    match m.get(tag_field).and_then(Json::as_str) {
                        Some(tag) if !tag.is_empty() => format!("{repo}:{tag}"),
                        _ => repo.to_owned(),
                    }
                })
                .collect(),
        };
        for image in &images {
            if let Err(e) = parse_reference(image) {
                return Err(if self.object_fields.is_some() {
                    e
                } else {
                    format!(
                        "error parsing image '{image}' at json path '{}': {e}",
                        self.path
                    )
                });
            }
        }
        Ok(images)
    }
}

/// Where the locators (`k8s_kind(image_json_path=/image_object=)`) find images in `o`, as
/// JSON pointers, so a deploy can put built references there.
pub fn image_fields(o: &K8sObject, locators: &[ImageLocator]) -> Vec<crate::model::ImageField> {
    use crate::model::ImageField;
    let mut out = Vec::new();
    for locator in locators.iter().filter(|l| l.selector.matches(o)) {
        let Ok(found) = locator.path.find(&o.value) else {
            continue;
        };
        for f in found {
            let jsonpath::Found::Value(v) = f else {
                continue;
            };
            let Some(pointer) = pointer_to(&o.value, v, String::new()) else {
                continue;
            };
            match (&locator.object_fields, v) {
                (None, Json::String(_)) => out.push(ImageField::Ref(pointer)),
                (Some((repo, tag)), Json::Object(_)) => out.push(ImageField::Split {
                    repo: format!("{pointer}/{}", escape_pointer(repo)),
                    tag: format!("{pointer}/{}", escape_pointer(tag)),
                }),
                _ => {}
            }
        }
    }
    out
}

fn escape_pointer(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// The JSON pointer of `target` (by identity) inside `root`.
fn pointer_to(root: &Json, target: &Json, at: String) -> Option<String> {
    if std::ptr::eq(root, target) {
        return Some(at);
    }
    match root {
        Json::Object(map) => map
            .iter()
            .find_map(|(k, v)| pointer_to(v, target, format!("{at}/{}", escape_pointer(k)))),
        Json::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| pointer_to(v, target, format!("{at}/{i}"))),
        _ => None,
    }
}

/// Every image reference in `o`: container images (init containers first), image volumes,
/// locator paths, then env values that match one of `env_images` (builds with
/// `match_in_env_vars`). `matches(build_ref, candidate)` decides env matches.
pub fn find_images(
    o: &K8sObject,
    locators: &[ImageLocator],
    env_images: &[String],
    matches: impl Fn(&str, &str) -> bool,
) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let containers = o.containers();
    for c in &containers {
        let image = c.get("image").and_then(Json::as_str).unwrap_or_default();
        parse_reference(image).map_err(|e| format!("parsing {image}: {e}"))?;
        out.push(image.to_owned());
    }
    for spec in o.pod_specs() {
        if let Some(Json::Array(volumes)) = spec.get("volumes") {
            for v in volumes {
                if let Some(image) = v.pointer("/image/reference").and_then(Json::as_str) {
                    parse_reference(image).map_err(|e| format!("parsing {image}: {e}"))?;
                    out.push(image.to_owned());
                }
            }
        }
    }
    for locator in locators {
        out.extend(locator.extract(o)?);
    }
    if !env_images.is_empty() {
        for c in &containers {
            let Some(Json::Array(env)) = c.get("env") else {
                continue;
            };
            for var in env {
                let Some(value) = var.get("value").and_then(Json::as_str) else {
                    continue;
                };
                if parse_reference(value).is_err() {
                    continue;
                }
                for build in env_images {
                    if matches(build, value) {
                        out.push(value.to_owned());
                    }
                }
            }
        }
    }
    Ok(out)
}

pub use super::docker_ref::parse_reference;

#[cfg(test)]
mod tests {
    use super::*;

    const DEPLOY: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  template:
    metadata:
      labels: {app: web}
    spec:
      initContainers:
      - name: init
        image: busybox
      containers:
      - name: web
        image: gcr.io/web:v1
        env:
        - {name: HELPER, value: gcr.io/helper}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
";

    #[test]
    fn parses_documents_and_lists() {
        let objs = parse_objects(DEPLOY).unwrap();
        assert_eq!(objs.len(), 2);
        assert_eq!(objs[0].id(), "web:Deployment:default");
        assert_eq!(objs[0].group(), "apps");
        let list = "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: b, namespace: x}}\n";
        let objs = parse_objects(list).unwrap();
        assert_eq!(
            objs.iter().map(K8sObject::id).collect::<Vec<_>>(),
            vec!["a:ConfigMap:default", "b:ConfigMap:x"]
        );
    }

    #[test]
    fn parse_errors() {
        assert!(
            parse_objects("hi")
                .unwrap_err()
                .contains("json parse error")
        );
        assert!(
            parse_objects("apiVersion: v1\nmetadata: {name: x}\n")
                .unwrap_err()
                .starts_with("Object 'Kind' is missing")
        );
        let err = parse_objects(
            "apiVersion: v1\nkind: Secret\nmetadata: {name: mysecret}\ndata: {stuff: \"!\"}\n",
        )
        .unwrap_err();
        assert_eq!(
            err,
            "decoding Secret \"mysecret\": illegal base64 data at input byte 0"
        );
    }

    #[test]
    fn images_in_order() {
        let objs = parse_objects(DEPLOY).unwrap();
        let imgs = find_images(&objs[0], &[], &[], |_, _| false).unwrap();
        assert_eq!(imgs, vec!["busybox", "gcr.io/web:v1"]);
        let imgs =
            find_images(&objs[0], &[], &["gcr.io/helper".to_owned()], |a, b| a == b).unwrap();
        assert_eq!(imgs, vec!["busybox", "gcr.io/web:v1", "gcr.io/helper"]);
        assert!(
            find_images(&objs[1], &[], &[], |_, _| false)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn service_selectors() {
        let objs = parse_objects(DEPLOY).unwrap();
        let labels = &objs[0].template_labels()[0];
        let selector = objs[1].service_selector().unwrap();
        assert!(selector.iter().all(|kv| labels.contains(kv)));
        assert!(objs[0].service_selector().is_none());
        let bare = parse_objects("apiVersion: v1\nkind: Service\nmetadata: {name: s}\n").unwrap();
        assert!(bare[0].service_selector().is_none());
    }

    #[test]
    fn names_and_fragments() {
        let objs = parse_objects(DEPLOY).unwrap();
        assert_eq!(
            objs[1].potential_names(),
            vec![
                "web",
                "web:service",
                "web:service:default",
                "web:service:default:core"
            ]
        );
        let odd = parse_objects("apiVersion: v1\nkind: Secret\nmetadata: {name: 'a:b'}\n").unwrap();
        assert_eq!(odd[0].full_name(), "a\\:b:Secret:default");
        assert_eq!(odd[0].fragments()[0], "a\\:b");
    }

    #[test]
    fn fragment_selectors() {
        let objs = parse_objects(DEPLOY).unwrap();
        let sel = ObjectSelector::from_fragment("WEB:service").unwrap();
        assert!(sel.matches(&objs[1]) && !sel.matches(&objs[0]));
        let err = ObjectSelector::from_fragment("a:b:c:d").unwrap_err();
        assert!(err.starts_with("Too many parts in selector"));
        assert_eq!(
            ObjectSelector::from_fragment("").unwrap_err(),
            "selector can't be empty"
        );
        assert_eq!(
            unescape_split("qu\\u:bar").unwrap_err(),
            "invalid escape sequence '\\u' in 'qu\\u:b'"
        );
        assert_eq!(unescape_split("a\\:b:c").unwrap(), vec!["a:b", "c"]);
    }

    #[test]
    fn partial_selectors_are_unanchored_and_case_insensitive() {
        let objs = parse_objects(DEPLOY).unwrap();
        let sel = ObjectSelector::partial("apps/", "deploy", "", "").unwrap();
        assert!(sel.matches(&objs[0]));
        let err = ObjectSelector::partial("", "*", "", "").unwrap_err();
        assert!(err.starts_with("error parsing kind regexp: "), "{err}");
    }

    #[test]
    fn references() {
        assert!(parse_reference("nginx").is_ok());
        assert!(parse_reference("localhost:5000/a/b:1").is_ok());
        assert!(
            parse_reference("IMAGE_URL")
                .unwrap_err()
                .starts_with("invalid reference format")
        );
        assert!(parse_reference("a b").is_err());
    }

    #[test]
    fn base64() {
        assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64_decode("d29ybGQ=").unwrap(), b"world");
        assert_eq!(
            base64_decode("!").unwrap_err(),
            "illegal base64 data at input byte 0"
        );
    }

    #[test]
    fn numbers_serialise_as_scalars() {
        let objs = parse_objects(
            "apiVersion: v1\nkind: X\nmetadata: {name: a}\nspec: {port: 80, f: 1.5, big: 18446744073709551615}\n",
        )
        .unwrap();
        assert_eq!(
            to_yaml(&objs[0].value).unwrap(),
            "apiVersion: v1\nkind: X\nmetadata:\n  name: a\nspec:\n  big: 18446744073709551615\n  f: 1.5\n  port: 80\n"
        );
    }

    #[test]
    fn metadata_labels_include_templates() {
        let objs = parse_objects(DEPLOY).unwrap();
        assert_eq!(objs[0].metadata_label_sets().len(), 2);
        assert_eq!(objs[1].metadata_label_sets().len(), 1);
    }

    #[test]
    fn literal_field_patterns_match_as_their_regexes_would() {
        let patterns = [
            "Job", "apps/v1", "my-app", "batch/v1", "x_y", "", "Job$", "^Dep.*",
        ];
        let fields = [
            "Job",
            "CronJob",
            "job",
            "JOBS",
            "apps/v1",
            "APPS/V1beta",
            "my-app-2",
            "Deployment",
            "ß-Job",
            "",
        ];
        for p in patterns {
            let fast = compile("kind", p).expect("compiles");
            let slow =
                (!p.is_empty()).then(|| regex::Regex::new(&format!("(?i){p}")).expect("regex"));
            for f in fields {
                assert_eq!(
                    fast.as_ref().is_none_or(|m| m.is_match(f)),
                    slow.as_ref().is_none_or(|r| r.is_match(f)),
                    "pattern {p:?} on {f:?}"
                );
            }
        }
        let exact = ObjectSelector::exact("Deployment", "Web", "").expect("exact");
        let key = |kind: &str, name: &str| {
            exact.kind.as_ref().is_some_and(|m| m.is_match(kind))
                && exact.name.as_ref().is_some_and(|m| m.is_match(name))
        };
        assert!(key("deployment", "web"));
        assert!(!key("deployments", "web"));
        assert!(!key("deployment", "web2"));
    }
}
