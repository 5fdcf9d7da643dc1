//! Kubernetes builtins: `k8s_yaml`, `filter_yaml`, `k8s_resource`, `k8s_kind`,
//! `k8s_image_json_path`, `workload_to_resource_function`, `k8s_custom_deploy`, and the YAML
//! generators `helm` and `kustomize` (which run the tools at load time, as Tilt does). They
//! only record declarations; `assemble::k8s` turns them into resources.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use starlark::docs::{DocItem, DocMember};
use starlark::environment::GlobalsBuilder;
use starlark::eval::Evaluator;
use starlark::starlark_module;
use starlark::values::dict::DictRef;
use starlark::values::none::NoneType;
use starlark::values::tuple::UnpackTuple;
use starlark::values::{Value, ValueLike};

use super::common::{labels_arg, links_arg, port_forwards_arg, resource_deps_arg, validate_name};
use super::docker::live_update_arg;
use super::files::{LocalCommand, display_command};
use super::os::env_overlay_snapshot;
use super::settings::trigger_mode_arg;
use crate::model::CustomDeploySpec;
use crate::tiltfile::assemble::k8s::initial_kinds;
use crate::tiltfile::diagnostics;
use crate::tiltfile::eval::{Evaluation, ctx};
use crate::tiltfile::file_reads;
use crate::tiltfile::k8s_objects::jsonpath::JsonPath;
use crate::tiltfile::k8s_objects::{self, ImageLocator, ObjectSelector};
use crate::tiltfile::state::{CustomDeployDecl, K8sKind, K8sObject, K8sResourceOptions, State};
use crate::tiltfile::values::{
    Blob, abs_path, arg_error, builtin_error, command, optional_bool, optional_str, sequence_items,
    str_or_blob, string_dict, string_or_list,
};

pub fn register(b: &mut GlobalsBuilder) {
    k8s_builtins(b);
}

/// Go's `%T` for a Starlark value, as Tilt's messages print types.
fn go_type(v: Value) -> String {
    match v.get_type() {
        "string" => "starlark.String".to_owned(),
        "int" => "starlark.Int".to_owned(),
        "float" => "starlark.Float".to_owned(),
        "bool" => "starlark.Bool".to_owned(),
        "NoneType" => "starlark.NoneType".to_owned(),
        "list" => "*starlark.List".to_owned(),
        "dict" => "*starlark.Dict".to_owned(),
        "tuple" => "starlark.Tuple".to_owned(),
        "function" => "*starlark.Function".to_owned(),
        other => other.to_owned(),
    }
}

/// `file:line:col` of the innermost Starlark call (the builtin's call site).
fn call_position(eval: &Evaluator) -> String {
    let Ok(ev) = ctx(eval) else {
        return String::new();
    };
    let sources = ev.sources.borrow();
    eval.call_stack()
        .frames
        .iter()
        .rev()
        .find_map(|f| f.location.as_ref())
        .map(|span| {
            let (file, line, col) = diagnostics::position(span, &sources);
            format!("{file}:{line}:{col}")
        })
        .unwrap_or_default()
}

/// The Starlark stack of this builtin call, written as Tilt's tracebacks are.
fn call_stack_text(eval: &Evaluator, builtin: &str) -> String {
    let Ok(ev) = ctx(eval) else {
        return String::new();
    };
    let sources = ev.sources.borrow();
    let stack = eval.call_stack();
    let mut lines = vec!["Traceback (most recent call last):".to_owned()];
    let mut caller = "<toplevel>".to_owned();
    for frame in &stack.frames {
        if let Some(span) = &frame.location {
            let (file, line, col) = diagnostics::position(span, &sources);
            lines.push(format!("  {file}:{line}:{col}: in {caller}"));
        }
        caller = frame.name.clone();
    }
    lines.push(format!("  <builtin>: in {builtin}"));
    lines.join("\n")
}

/// The items of a `str | Blob | list` YAML argument (None is no items).
fn yaml_items<'v>(v: Value<'v>) -> Vec<Value<'v>> {
    if v.is_none() {
        return Vec::new();
    }
    sequence_items(v).unwrap_or_else(|| vec![v])
}

/// Reads and parses the objects of one `str` (a path) or Blob.
fn objects_from_item(
    eval: &Evaluator,
    function: &str,
    param: &str,
    item: Value,
) -> starlark::Result<Vec<K8sObject>> {
    if let Some(blob) = item.downcast_ref::<Blob>() {
        return k8s_objects::parse_objects(&blob.0).map_err(|e| {
            builtin_error(
                function,
                format!("Error reading yaml from Tiltfile blob() call: {e}"),
            )
        });
    }
    let Some(path) = item.unpack_str() else {
        return Err(arg_error(
            function,
            param,
            format!(
                "Value should be a string, a blob, or a list of these; got {}",
                item.get_type()
            ),
        ));
    };
    let ev = ctx(eval)?;
    let abs = abs_path(&ev.state.borrow().cwd(), path);
    ev.state.borrow_mut().record_file(&abs);
    let prefetched = ev
        .yaml_prefetch
        .borrow()
        .as_ref()
        .and_then(|p| p.take(&abs));
    let objects = match prefetched {
        Some(p) if file_reads::unchanged_since(p.generation) => p.objects,
        prefetched => {
            let text = read_text(&abs)
                .map_err(|e| builtin_error(function, format!("error reading yaml file: {e}")))?;
            match prefetched {
                Some(p) if p.text == text => p.objects,
                _ => k8s_objects::parse_objects(&text),
            }
        }
    };
    objects.map_err(|e| {
        builtin_error(
            function,
            format!("{} is not a valid YAML file: {e}", abs.display()),
        )
    })
}

/// Reads a file, with Go-like error texts (`open <path>: no such file or directory`).
fn read_text(path: &Path) -> Result<String, String> {
    if path.is_dir() {
        return Err(format!("read {}: is a directory", path.display()));
    }
    match std::fs::read(path) {
        Ok(bytes) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(format!(
            "open {}: no such file or directory",
            path.display()
        )),
        Err(e) => Err(format!("open {}: {e}", path.display())),
    }
}

fn objects_from_value(
    eval: &Evaluator,
    function: &str,
    param: &str,
    v: Value,
) -> starlark::Result<Vec<K8sObject>> {
    let mut out = Vec::new();
    for item in yaml_items(v) {
        out.extend(objects_from_item(eval, function, param, item)?);
    }
    Ok(out)
}

/// `pod_readiness=`: `ignore`, `wait`, `succeeded` or empty (infer).
fn pod_readiness_arg(function: &str, v: Option<Value>) -> starlark::Result<String> {
    let Some(v) = v.filter(|v| !v.is_none()) else {
        return Ok(String::new());
    };
    let Some(s) = str_or_blob(v) else {
        return Err(arg_error(
            function,
            "pod_readiness",
            format!("Must be a string. Got: {}", v.get_type()),
        ));
    };
    match s.as_str() {
        "" | "ignore" | "wait" | "succeeded" => Ok(s),
        _ => Err(arg_error(
            function,
            "pod_readiness",
            format!("Invalid value. Allowed: {{ignore, wait}}. Got: {s}"),
        )),
    }
}

/// One `{label: value}` dict of `extra_pod_selectors=`; None when empty.
fn selector_dict(function: &str, v: Value) -> starlark::Result<Option<BTreeMap<String, String>>> {
    let Some(dict) = DictRef::from_value(v) else {
        return Err(builtin_error(
            function,
            format!("pod labels elements must be dicts; got {}", go_type(v)),
        ));
    };
    let mut out = BTreeMap::new();
    for (k, val) in dict.iter() {
        let Some(key) = k.unpack_str() else {
            return Err(builtin_error(
                function,
                format!(
                    "pod label keys must be strings; got '{}' of type {}",
                    k.to_str(),
                    go_type(k)
                ),
            ));
        };
        let Some(value) = val.unpack_str() else {
            return Err(builtin_error(
                function,
                format!(
                    "pod label values must be strings; got '{}' of type {}",
                    val.to_str(),
                    go_type(val)
                ),
            ));
        };
        out.insert(key.to_owned(), value.to_owned());
    }
    Ok((!out.is_empty()).then_some(out))
}

/// `extra_pod_selectors=`: a dict or a list of dicts of pod labels.
fn extra_pod_selectors_arg(
    function: &str,
    v: Option<Value>,
) -> starlark::Result<Vec<BTreeMap<String, String>>> {
    let Some(v) = v.filter(|v| !v.is_none()) else {
        return Ok(Vec::new());
    };
    if DictRef::from_value(v).is_some() {
        return Ok(selector_dict(function, v)?.into_iter().collect());
    }
    if v.get_type() != "list" {
        return Err(builtin_error(
            function,
            format!("pod labels must be a dict or a list; got {}", go_type(v)),
        ));
    }
    let mut out = Vec::new();
    for item in sequence_items(v).unwrap_or_default() {
        out.extend(selector_dict(function, item)?);
    }
    Ok(out)
}

/// Adds `Job`/`CronJob` to the registered kinds once, so later registrations can update them.
fn ensure_initial_kinds(state: &mut State) {
    if !state.k8s_kinds_initialized {
        let mut kinds = initial_kinds();
        kinds.append(&mut state.k8s_kinds);
        state.k8s_kinds = kinds;
        state.k8s_kinds_initialized = true;
    }
}

/// Registers a kind. Every call adds an entry, as in Tilt (whose map is keyed by freshly
/// compiled selectors), so repeated registrations all apply.
fn add_kind(state: &mut State, kind: K8sKind) {
    ensure_initial_kinds(state);
    state.k8s_kinds.push(kind);
}

/// JSONPath strings from a str or a list of strs (`image_json_path=`, `paths=`).
fn json_path_list(function: &str, param: &str, v: Option<Value>) -> starlark::Result<Vec<String>> {
    let Some(v) = v.filter(|v| !v.is_none()) else {
        return Ok(Vec::new());
    };
    let items = sequence_items(v).unwrap_or_else(|| vec![v]);
    items
        .into_iter()
        .map(|item| {
            item.unpack_str().map(str::to_owned).ok_or_else(|| {
                arg_error(
                    function,
                    param,
                    format!("Expected string, got: {}", item.to_repr()),
                )
            })
        })
        .collect()
}

fn parse_json_path(function: &str, param: &str, path: &str) -> starlark::Result<JsonPath> {
    JsonPath::parse(path)
        .map_err(|e| arg_error(function, param, format!("parsing json path {path:?}: {e}")))
}

/// `image_object={'json_path': ..., 'repo_field': ..., 'tag_field': ...}`.
fn image_object_arg(
    function: &str,
    v: Option<Value>,
) -> starlark::Result<Option<(String, String, String)>> {
    let Some(v) = v.filter(|v| !v.is_none()) else {
        return Ok(None);
    };
    let shape = "Expected dict of the form {'json_path': str, 'repo_field': str, 'tag_field': str}";
    let Some(dict) = DictRef::from_value(v) else {
        return Err(arg_error(
            function,
            "image_object",
            format!("{shape}. Actual: {}", v.to_repr()),
        ));
    };
    let mut fields: [Option<String>; 3] = [None, None, None];
    for (k, val) in dict.iter() {
        let index = match k.unpack_str() {
            Some("json_path") => 0,
            Some("repo_field") => 1,
            Some("tag_field") => 2,
            _ => {
                return Err(arg_error(
                    function,
                    "image_object",
                    format!("{shape}: Unexpected key: {}", k.to_repr()),
                ));
            }
        };
        let Some(s) = val.unpack_str() else {
            return Err(arg_error(
                function,
                "image_object",
                format!(
                    "{shape}: Expected string at key {}. Got: {}",
                    k.to_repr(),
                    val.get_type()
                ),
            ));
        };
        fields[index] = Some(s.to_owned());
    }
    match fields {
        [Some(path), Some(repo), Some(tag)] => Ok(Some((path, repo, tag))),
        _ => {
            let keys: Vec<String> = dict.iter().map(|(k, _)| k.to_repr()).collect();
            Err(arg_error(
                function,
                "image_object",
                format!("{shape}: Missing keys. Actual keys: [{}]", keys.join(", ")),
            ))
        }
    }
}

/// Looks `program` up on `$PATH` (the evaluation's environment).
fn find_in_path(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        let p = PathBuf::from(program);
        return p.is_file().then_some(p);
    }
    let env = env_overlay_snapshot();
    let path = env.get("PATH")?;
    std::env::split_paths(path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Runs a YAML-producing tool in `dir`, logging the command as Tilt does.
fn run_tool(
    ev: &Evaluation,
    function: &str,
    argv: &[String],
    dir: &Path,
) -> starlark::Result<String> {
    ev.state
        .borrow_mut()
        .log
        .push(format!("Running: {}", display_command(argv)));
    let env = BTreeMap::new();
    let (stdout, _stderr) = LocalCommand {
        argv,
        dir,
        env: &env,
        stdin: None,
    }
    .run()
    .map_err(|e| builtin_error(function, e))?;
    Ok(stdout)
}

/// Helm's major version line: v3.0 lacks `--include-crds`; v3.1+ and v4 have it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HelmVersion {
    V3_0,
    V3_1AndAbove,
}

fn parse_helm_version(output: &str) -> Result<HelmVersion, String> {
    let trimmed = output.trim();
    let version = trimmed.lines().last().unwrap_or(trimmed).trim();
    if version.starts_with("v3.0.") {
        Ok(HelmVersion::V3_0)
    } else if ["v3.", "3.", "v4.", "4."]
        .iter()
        .any(|p| version.starts_with(p))
    {
        Ok(HelmVersion::V3_1AndAbove)
    } else {
        Err(format!(
            "could not parse Helm version from string: {output:?}"
        ))
    }
}

/// Drops the documents of helm test hooks (sources under `tests/`).
fn filter_helm_tests(yaml: &str) -> String {
    yaml.split("---\n")
        .filter(|doc| {
            !doc.lines().any(|l| {
                l.strip_prefix("# Source: ")
                    .is_some_and(|src| src.contains("/tests/"))
            })
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

/// Local subcharts (`file://` repositories) listed in a chart's `requirements.yaml`.
fn local_subcharts(chart: &Path) -> Result<Vec<String>, String> {
    let Ok(text) = std::fs::read_to_string(chart.join("requirements.yaml")) else {
        return Ok(Vec::new());
    };
    let parsed: serde_json::Value =
        serde::Deserialize::deserialize(yaml_serde::Deserializer::from_str(&text))
            .map_err(|e: yaml_serde::Error| e.to_string())?;
    Ok(parsed
        .get("dependencies")
        .and_then(|d| d.as_array())
        .into_iter()
        .flatten()
        .filter_map(|d| d.get("repository").and_then(|r| r.as_str()))
        .filter_map(|r| r.strip_prefix("file://"))
        .map(str::to_owned)
        .collect())
}

/// The files a kustomization depends on (its kustomization file, resources, patches,
/// generator inputs), recursing into local bases.
fn kustomize_deps(dir: &Path, out: &mut Vec<PathBuf>, depth: usize) {
    if depth > 20 {
        return;
    }
    let Some(file) = ["kustomization.yaml", "kustomization.yml", "Kustomization"]
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
    else {
        return;
    };
    out.push(file.clone());
    let Ok(text) = std::fs::read_to_string(&file) else {
        return;
    };
    let Ok(doc) = k8s_objects_yaml(&text) else {
        return;
    };
    let mut refs: Vec<String> = Vec::new();
    let strings = |v: Option<&serde_json::Value>| -> Vec<String> {
        v.and_then(|v| v.as_array())
            .into_iter()
            .flatten()
            .filter_map(|x| x.as_str().map(str::to_owned))
            .collect()
    };
    for field in [
        "resources",
        "bases",
        "components",
        "patchesStrategicMerge",
        "crds",
        "configurations",
        "generators",
        "transformers",
        "validators",
    ] {
        refs.extend(strings(doc.get(field)));
    }
    for field in ["patches", "patchesJson6902"] {
        if let Some(items) = doc.get(field).and_then(|v| v.as_array()) {
            refs.extend(
                items
                    .iter()
                    .filter_map(|p| p.get("path").and_then(|p| p.as_str()).map(str::to_owned)),
            );
        }
    }
    for field in ["configMapGenerator", "secretGenerator"] {
        if let Some(items) = doc.get(field).and_then(|v| v.as_array()) {
            for g in items {
                for key in ["files", "envs"] {
                    for f in strings(g.get(key)) {
                        let path = f.split_once('=').map_or(f.as_str(), |(_, p)| p);
                        refs.push(path.to_owned());
                    }
                }
                if let Some(env) = g.get("env").and_then(|e| e.as_str()) {
                    refs.push(env.to_owned());
                }
            }
        }
    }
    if let Some(p) = doc.pointer("/openapi/path").and_then(|p| p.as_str()) {
        refs.push(p.to_owned());
    }
    for r in refs {
        if r.contains("://") || r.starts_with("github.com/") {
            continue;
        }
        let p = crate::tiltfile::values::clean_path(&dir.join(&r));
        if p.is_dir() {
            kustomize_deps(&p, out, depth + 1);
        } else if !out.contains(&p) {
            out.push(p);
        }
    }
}

fn k8s_objects_yaml(text: &str) -> Result<serde_json::Value, String> {
    let mut docs = yaml_serde::Deserializer::from_str(text);
    match docs.next() {
        Some(doc) => {
            serde::Deserialize::deserialize(doc).map_err(|e: yaml_serde::Error| e.to_string())
        }
        None => Ok(serde_json::Value::Null),
    }
}

const ASSEMBLY_V1_DEPRECATED: &str = "This Tiltfile is using k8s resource assembly version 1, which has been deprecated. See https://docs.tilt.dev/resource_assembly_migration.html for more information.";

/// Why a second `k8s_resource` argument looks like the removed v1 form (`k8s_resource(name,
/// yaml)`), if it does.
fn v1_call_reason(v: Value) -> Option<&'static str> {
    if v.downcast_ref::<Blob>().is_some() {
        Some("second arg was a blob")
    } else if sequence_items(v).is_some() {
        Some("second arg was a sequence")
    } else if v
        .unpack_str()
        .is_some_and(|s| s.ends_with(".yaml") || s.ends_with(".yml"))
    {
        Some("second arg looks like a yaml file name, not a resource name")
    } else {
        None
    }
}

#[starlark_module]
fn k8s_builtins(builder: &mut GlobalsBuilder) {
    fn k8s_yaml<'v>(
        yaml: Value<'v>,
        allow_duplicates: Option<Value<'v>>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> starlark::Result<NoneType> {
        let f = "k8s_yaml";
        let allow_duplicates =
            optional_bool(f, "allow_duplicates", allow_duplicates)?.unwrap_or(false);
        let items = yaml_items(yaml);
        let Some(first) = items.first().copied() else {
            return Err(builtin_error(f, "Empty YAML passed to k8s_yaml"));
        };
        let mut objects = Vec::new();
        for item in items {
            objects.extend(objects_from_item(eval, f, "yaml", item)?);
        }
        // A Blob (or empty string) that yields nothing is an error; an empty file is not.
        if objects.is_empty() && first.unpack_str().is_none_or(str::is_empty) {
            return Err(builtin_error(f, "Empty YAML passed to k8s_yaml"));
        }
        let stack = call_stack_text(eval, f);
        let ev = ctx(eval)?;
        let mut state = ev.state.borrow_mut();
        for mut object in objects {
            let key = object.duplicate_key();
            if !allow_duplicates
                && let Some(old) = state
                    .k8s_object_keys
                    .get(&key)
                    .map(|&i| &state.k8s_objects[i])
            {
                return Err(builtin_error(
                    f,
                    format!(
                        "Duplicate YAML: {}\nIgnore this error with k8s_yaml(..., allow_duplicates=True)\nYAML originally registered at: {}",
                        object.human_ref(),
                        old.registered_at.replace('\n', "\n  ")
                    ),
                ));
            }
            object.registered_at = stack.clone();
            let index = state.k8s_objects.len();
            state.k8s_objects.push(object);
            state.k8s_object_keys.entry(key).or_insert(index);
        }
        Ok(NoneType)
    }

    fn filter_yaml<'v>(
        yaml: Value<'v>,
        labels: Option<Value<'v>>,
        name: Option<Value<'v>>,
        namespace: Option<Value<'v>>,
        kind: Option<Value<'v>>,
        api_version: Option<Value<'v>>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> starlark::Result<Value<'v>> {
        let f = "filter_yaml";
        let labels = string_dict(f, "labels", labels)?;
        let name = optional_str(f, "name", name)?;
        let namespace = optional_str(f, "namespace", namespace)?;
        let kind = optional_str(f, "kind", kind)?;
        let api_version = optional_str(f, "api_version", api_version)?;
        let objects = objects_from_value(eval, f, "yaml", yaml)?;
        let selector = ObjectSelector::partial(&api_version, &kind, &name, &namespace)
            .map_err(|e| builtin_error(f, e))?;
        let (matching, rest): (Vec<&K8sObject>, Vec<&K8sObject>) = objects.iter().partition(|o| {
            selector.matches(o)
                && o.metadata_label_sets().iter().all(|set| {
                    labels
                        .iter()
                        .all(|(k, v)| set.iter().any(|(sk, sv)| sk == k && sv == v))
                })
        });
        let serialize = |objs: &[&K8sObject]| {
            k8s_objects::serialize_stream(objs.iter().map(|o| o.value.as_ref()))
                .map_err(|e| builtin_error(f, e))
        };
        let matching = serialize(&matching)?;
        let rest = serialize(&rest)?;
        Ok(eval.heap().alloc((Blob(matching), Blob(rest))))
    }

    fn k8s_resource<'v>(
        workload: Option<Value<'v>>,
        new_name: Option<Value<'v>>,
        port_forwards: Option<Value<'v>>,
        extra_pod_selectors: Option<Value<'v>>,
        trigger_mode: Option<Value<'v>>,
        resource_deps: Option<Value<'v>>,
        objects: Option<Value<'v>>,
        auto_init: Option<Value<'v>>,
        pod_readiness: Option<Value<'v>>,
        links: Option<Value<'v>>,
        labels: Option<Value<'v>>,
        discovery_strategy: Option<Value<'v>>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> starlark::Result<NoneType> {
        let f = "k8s_resource";
        if let Some(reason) = new_name.and_then(v1_call_reason) {
            return Err(builtin_error(
                f,
                format!(
                    "It looks like k8s_resource is being called with deprecated arguments: {reason}.\n\n{ASSEMBLY_V1_DEPRECATED}"
                ),
            ));
        }
        let workload = optional_str(f, "workload", workload)?;
        let new_name = optional_str(f, "new_name", new_name)?;
        let port_forwards = port_forwards_arg(f, port_forwards)?;
        let extra_pod_selectors = extra_pod_selectors_arg(f, extra_pod_selectors)?;
        let trigger_mode = trigger_mode_arg(f, trigger_mode)?;
        let resource_deps = resource_deps_arg(f, resource_deps)?;
        let objects = string_or_list(f, "objects", objects)?;
        let auto_init = optional_bool(f, "auto_init", auto_init)?;
        let pod_readiness = pod_readiness_arg(f, pod_readiness)?;
        let links = links_arg(f, links)?;
        let labels = labels_arg(f, labels)?;
        let discovery_strategy = optional_str(f, "discovery_strategy", discovery_strategy)?;
        if !matches!(
            discovery_strategy.as_str(),
            "" | "default" | "selectors-only"
        ) {
            return Err(arg_error(
                f,
                "discovery_strategy",
                "Invalid. Must be one of: \"default\", \"selectors-only\"",
            ));
        }
        if workload.is_empty() && new_name.is_empty() {
            return Err(builtin_error(
                f,
                "Resource name missing. Must give a name for an existing resource or a new_name to create a new resource.",
            ));
        }
        let manually_grouped = workload.is_empty();
        if manually_grouped && objects.is_empty() {
            return Err(builtin_error(
                f,
                "k8s_resource doesn't specify a workload or any objects. All non-workload resources must specify 1 or more objects",
            ));
        }
        if !new_name.is_empty() {
            validate_name(f, &new_name)?;
        }
        let position = call_position(eval);
        ctx(eval)?
            .state
            .borrow_mut()
            .k8s_resource_options
            .push(K8sResourceOptions {
                workload,
                new_name,
                port_forwards,
                extra_pod_selectors,
                trigger_mode,
                resource_deps,
                objects,
                auto_init,
                pod_readiness,
                links,
                labels,
                discovery_strategy,
                manually_grouped,
                position,
            });
        Ok(NoneType)
    }

    fn k8s_kind<'v>(
        #[starlark(args)] args: UnpackTuple<Value<'v>>,
        #[starlark(require = named)] kind: Option<Value<'v>>,
        #[starlark(require = named)] image_json_path: Option<Value<'v>>,
        #[starlark(require = named)] api_version: Option<Value<'v>>,
        #[starlark(require = named)] image_object: Option<Value<'v>>,
        #[starlark(require = named)] pod_readiness: Option<Value<'v>>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> starlark::Result<NoneType> {
        let f = "k8s_kind";
        if args.items.len() > 1 {
            return Err(builtin_error(
                f,
                format!("got {} arguments, want at most 1", args.items.len()),
            ));
        }
        let kind = match (args.items.first().copied(), kind) {
            (Some(_), Some(_)) => {
                return Err(builtin_error(
                    f,
                    "got multiple values for parameter \"kind\"",
                ));
            }
            (Some(v), None) | (None, Some(v)) => v,
            (None, None) => return Err(builtin_error(f, "missing argument for kind")),
        };
        let kind = str_or_blob(kind)
            .ok_or_else(|| arg_error(f, "kind", format!("got {}, want string", kind.get_type())))?;
        let api_version = optional_str(f, "api_version", api_version)?;
        let paths = json_path_list(f, "image_json_path", image_json_path)?;
        let image_object = image_object_arg(f, image_object)?;
        let pod_readiness = pod_readiness_arg(f, pod_readiness)?;
        let selector = ObjectSelector::partial(&api_version, &kind, "", "")
            .map_err(|e| builtin_error(f, e))?;
        if !paths.is_empty() && image_object.is_some() {
            return Err(builtin_error(
                f,
                "Cannot specify both image_json_path and image_object",
            ));
        }
        let mut locators = Vec::new();
        for p in &paths {
            locators.push(ImageLocator {
                selector: selector.clone(),
                path: parse_json_path(f, "image_json_path", p)?,
                object_fields: None,
            });
        }
        if let Some((path, repo, tag)) = &image_object {
            locators.push(ImageLocator {
                selector: selector.clone(),
                path: parse_json_path(f, "image_object", path)?,
                object_fields: Some((repo.clone(), tag.clone())),
            });
        }
        let ev = ctx(eval)?;
        add_kind(
            &mut ev.state.borrow_mut(),
            K8sKind {
                selector,
                image_locators: locators,
                pod_readiness,
            },
        );
        Ok(NoneType)
    }

    fn k8s_image_json_path<'v>(
        paths: Value<'v>,
        api_version: Option<Value<'v>>,
        kind: Option<Value<'v>>,
        name: Option<Value<'v>>,
        namespace: Option<Value<'v>>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> starlark::Result<NoneType> {
        let f = "k8s_image_json_path";
        let paths = json_path_list(f, "paths", Some(paths))?;
        let api_version = optional_str(f, "api_version", api_version)?;
        let kind = optional_str(f, "kind", kind)?;
        let name = optional_str(f, "name", name)?;
        let namespace = optional_str(f, "namespace", namespace)?;
        if kind.is_empty() && name.is_empty() && namespace.is_empty() {
            return Err(builtin_error(
                f,
                "at least one of kind, name, or namespace must be specified",
            ));
        }
        let selector = ObjectSelector::partial(&api_version, &kind, &name, &namespace)
            .map_err(|e| builtin_error(f, e))?;
        let locators = paths
            .iter()
            .map(|p| {
                Ok(ImageLocator {
                    selector: selector.clone(),
                    path: parse_json_path(f, "paths", p)?,
                    object_fields: None,
                })
            })
            .collect::<starlark::Result<Vec<_>>>()?;
        let ev = ctx(eval)?;
        add_kind(
            &mut ev.state.borrow_mut(),
            K8sKind {
                selector,
                image_locators: locators,
                pod_readiness: String::new(),
            },
        );
        Ok(NoneType)
    }

    fn workload_to_resource_function<'v>(
        func: Value<'v>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> starlark::Result<NoneType> {
        let f = "workload_to_resource_function";
        let ty = func.get_type();
        if ty != "function" {
            return Err(arg_error(f, "func", format!("got {ty}, want function")));
        }
        if let DocItem::Member(DocMember::Function(doc)) = func.documentation() {
            let p = &doc.params;
            let count = p.pos_only.len()
                + p.pos_or_named.len()
                + p.named_only.len()
                + usize::from(p.args.is_some())
                + usize::from(p.kwargs.is_some());
            if count != 1 {
                let repr = func.to_str();
                let fname = repr.rsplit_once('.').map_or(repr.as_str(), |(_, n)| n);
                return Err(builtin_error(
                    f,
                    format!("{f} arg must take 1 argument. {fname} takes {count}"),
                ));
            }
        }
        eval.module().set_extra_value(func);
        ctx(eval)?.state.borrow_mut().workload_to_resource_fn = true;
        Ok(NoneType)
    }

    fn k8s_custom_deploy<'v>(
        name: &str,
        apply_cmd: Value<'v>,
        delete_cmd: Value<'v>,
        deps: Value<'v>,
        image_selector: Option<Value<'v>>,
        live_update: Option<Value<'v>>,
        apply_dir: Option<Value<'v>>,
        apply_env: Option<Value<'v>>,
        apply_cmd_bat: Option<Value<'v>>,
        delete_dir: Option<Value<'v>>,
        delete_env: Option<Value<'v>>,
        delete_cmd_bat: Option<Value<'v>>,
        container_selector: Option<Value<'v>>,
        image_deps: Option<Value<'v>>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> starlark::Result<NoneType> {
        let f = "k8s_custom_deploy";
        let _ = (apply_cmd_bat, delete_cmd_bat);
        validate_name(f, name)?;
        let apply = command(f, "apply_cmd", Some(apply_cmd))?;
        if apply.is_empty() {
            return Err(builtin_error(f, "apply_cmd cannot be empty"));
        }
        let delete = command(f, "delete_cmd", Some(delete_cmd))?;
        if delete.is_empty() {
            return Err(builtin_error(f, "delete_cmd cannot be empty"));
        }
        let deps = string_or_list(f, "deps", Some(deps))?;
        let image_selector = optional_str(f, "image_selector", image_selector)?;
        let container_selector = optional_str(f, "container_selector", container_selector)?;
        let apply_env = string_dict(f, "apply_env", apply_env)?;
        let delete_env = string_dict(f, "delete_env", delete_env)?;
        let apply_dir = optional_str(f, "apply_dir", apply_dir)?;
        let delete_dir = optional_str(f, "delete_dir", delete_dir)?;
        let image_deps = string_or_list(f, "image_deps", image_deps)?;
        for d in &image_deps {
            k8s_objects::parse_reference(d).map_err(|e| {
                arg_error(
                    f,
                    "image_deps",
                    format!("must be a valid image reference: {e}"),
                )
            })?;
        }
        let ev = ctx(eval)?;
        let live_update = live_update_arg(f, ev, live_update)?;
        let cwd = ev.state.borrow().cwd();
        let deps: Vec<PathBuf> = deps.iter().map(|d| abs_path(&cwd, d)).collect();
        if !live_update.is_empty() {
            if !image_selector.is_empty() {
                k8s_objects::parse_reference(&image_selector).map_err(|e| {
                    builtin_error(f, format!("can't parse {image_selector:?}: {e}"))
                })?;
            }
            match (image_selector.is_empty(), container_selector.is_empty()) {
                (true, true) => {
                    return Err(builtin_error(f, "no Live Update selector specified"));
                }
                (false, false) => {
                    return Err(builtin_error(
                        f,
                        "cannot specify more than one Live Update selector",
                    ));
                }
                _ => {}
            }
            super::docker::check_paths_under(f, &live_update, &deps, "the k8s_custom_deploy deps")?;
        }
        let resolve = |d: &str| {
            if d.is_empty() {
                cwd.clone()
            } else {
                abs_path(&cwd, d)
            }
        };
        let mut state = ev.state.borrow_mut();
        if let Some((_, kind)) = state.declared_names().into_iter().find(|(n, _)| *n == name) {
            return Err(builtin_error(
                f,
                format!("error making resource for {name}: {kind} named {name:?} already exists"),
            ));
        }
        state.custom_deploys.push(CustomDeployDecl {
            name: name.to_owned(),
            spec: CustomDeploySpec {
                apply_cmd: apply,
                apply_dir: resolve(&apply_dir),
                apply_env,
                delete_cmd: delete,
                delete_dir: resolve(&delete_dir),
                delete_env,
                deps,
                image_selector,
                container_selector,
                live_update,
            },
            image_deps,
        });
        Ok(NoneType)
    }

    fn helm<'v>(
        paths: &str,
        name: Option<Value<'v>>,
        namespace: Option<Value<'v>>,
        values: Option<Value<'v>>,
        set: Option<Value<'v>>,
        kube_version: Option<Value<'v>>,
        skip_crds: Option<Value<'v>>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> starlark::Result<Blob> {
        let f = "helm";
        let name = optional_str(f, "name", name)?;
        let namespace = optional_str(f, "namespace", namespace)?;
        let values = string_or_list(f, "values", values)?;
        let set = string_or_list(f, "set", set)?;
        let kube_version = optional_str(f, "kube_version", kube_version)?;
        let skip_crds = optional_bool(f, "skip_crds", skip_crds)?.unwrap_or(false);
        let ev = ctx(eval)?;
        let cwd = ev.state.borrow().cwd();
        let chart = abs_path(&cwd, paths);
        match std::fs::metadata(&chart) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(builtin_error(
                    f,
                    format!(
                        "Could not read Helm chart directory {:?}: does not exist",
                        chart.display().to_string()
                    ),
                ));
            }
            Err(e) => {
                return Err(builtin_error(
                    f,
                    format!(
                        "Could not read Helm chart directory {:?}: {e}",
                        chart.display().to_string()
                    ),
                ));
            }
            Ok(m) if !m.is_dir() => {
                return Err(builtin_error(
                    f,
                    format!(
                        "helm() may only be called on directories with Chart.yaml: {:?}",
                        chart.display().to_string()
                    ),
                ));
            }
            Ok(_) => {}
        }
        ev.state.borrow_mut().record_file(&chart);
        for dep in local_subcharts(&chart).map_err(|e| builtin_error(f, e))? {
            let p = abs_path(&cwd, &dep);
            ev.state.borrow_mut().record_file(&p);
        }
        if find_in_path("helm").is_none() {
            return Err(builtin_error(
                f,
                "Unable to find Helm installation. Make sure `helm` is on your $PATH.",
            ));
        }
        let version_argv: Vec<String> = ["helm", "version", "--client", "--short"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let env = BTreeMap::new();
        let (version_out, _) = LocalCommand {
            argv: &version_argv,
            dir: &cwd,
            env: &env,
            stdin: None,
        }
        .run()
        .map_err(|e| builtin_error(f, e))?;
        let version = parse_helm_version(&version_out).map_err(|e| builtin_error(f, e))?;

        let release = if name.is_empty() {
            "chart".to_owned()
        } else {
            name
        };
        let mut argv = vec![
            "helm".to_owned(),
            "template".to_owned(),
            release,
            chart.to_string_lossy().into_owned(),
        ];
        if version == HelmVersion::V3_1AndAbove && !skip_crds {
            argv.push("--include-crds".to_owned());
        }
        if !namespace.is_empty() {
            argv.extend(["--namespace".to_owned(), namespace.clone()]);
        }
        if !kube_version.is_empty() {
            argv.extend(["--kube-version".to_owned(), kube_version]);
        }
        for v in &values {
            argv.extend(["--values".to_owned(), v.clone()]);
            let p = abs_path(&cwd, v);
            ev.state.borrow_mut().record_file(&p);
        }
        for s in &set {
            argv.extend(["--set".to_owned(), s.clone()]);
        }
        let stdout = run_tool(ev, f, &argv, &cwd)?;
        let mut yaml = filter_helm_tests(&stdout);
        if !namespace.is_empty() {
            let mut objects = k8s_objects::parse_objects(&yaml).map_err(|e| builtin_error(f, e))?;
            for o in &mut objects {
                if !o.namespace.is_empty() || !o.is_namespaced() {
                    continue;
                }
                let meta = std::sync::Arc::make_mut(&mut o.value)
                    .as_object_mut()
                    .map(|m| {
                        m.entry("metadata")
                            .or_insert_with(|| serde_json::Value::Object(Default::default()))
                    });
                if let Some(meta) = meta.and_then(|m| m.as_object_mut()) {
                    meta.insert(
                        "namespace".to_owned(),
                        serde_json::Value::String(namespace.clone()),
                    );
                }
            }
            yaml = k8s_objects::serialize_stream(objects.iter().map(|o| o.value.as_ref()))
                .map_err(|e| builtin_error(f, e))?;
        }
        Ok(Blob(yaml))
    }

    fn kustomize<'v>(
        paths: &str,
        kustomize_bin: Option<Value<'v>>,
        flags: Option<Value<'v>>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> starlark::Result<Blob> {
        let f = "kustomize";
        let kustomize_bin = optional_str(f, "kustomize_bin", kustomize_bin)?;
        let flags = crate::tiltfile::values::string_list(f, "flags", flags)?;
        let ev = ctx(eval)?;
        let cwd = ev.state.borrow().cwd();
        let dir = abs_path(&cwd, paths);
        let mut argv: Vec<String> = if kustomize_bin.is_empty() {
            if find_in_path("kustomize").is_some() {
                vec!["kustomize".to_owned(), "build".to_owned()]
            } else if find_in_path("kubectl").is_some() {
                ev.state.borrow_mut().log.push(
                    "Falling back to `kubectl kustomize` since `kustomize` was not found in PATH"
                        .to_owned(),
                );
                vec!["kubectl".to_owned(), "kustomize".to_owned()]
            } else {
                return Err(builtin_error(
                    f,
                    "Unable to find `kustomize` or `kubectl` on your $PATH; install one of them to use kustomize()",
                ));
            }
        } else {
            let bin = abs_path(&cwd, &kustomize_bin);
            if !is_executable(&bin) {
                return Err(arg_error(
                    f,
                    "kustomize_bin",
                    format!("{} is not an executable file", bin.display()),
                ));
            }
            vec![bin.to_string_lossy().into_owned(), "build".to_owned()]
        };
        argv.extend(flags);
        argv.push(super::os::relative(&dir, &cwd));
        let yaml = run_tool(ev, f, &argv, &cwd)?;
        let mut deps = Vec::new();
        kustomize_deps(&dir, &mut deps, 0);
        let mut state = ev.state.borrow_mut();
        for d in deps {
            state.record_file(&d);
        }
        Ok(Blob(yaml))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helm_versions() {
        assert_eq!(parse_helm_version("v3.0.2").unwrap(), HelmVersion::V3_0);
        assert_eq!(
            parse_helm_version("v3.12.0+gc9f554d").unwrap(),
            HelmVersion::V3_1AndAbove
        );
        assert_eq!(
            parse_helm_version("WARNING: x\nv3.3.3+g55e3ca0\n").unwrap(),
            HelmVersion::V3_1AndAbove
        );
        assert_eq!(
            parse_helm_version("v4.0.0+g99cd196").unwrap(),
            HelmVersion::V3_1AndAbove
        );
        assert!(parse_helm_version("Client: v2.12.3").is_err());
    }

    #[test]
    fn helm_test_hooks_are_dropped() {
        let out = "---\n# Source: c/templates/a.yaml\nkind: A\n---\n# Source: c/templates/tests/t.yaml\nkind: T\n";
        let filtered = filter_helm_tests(out);
        assert!(filtered.contains("kind: A"));
        assert!(!filtered.contains("kind: T"));
    }
}
