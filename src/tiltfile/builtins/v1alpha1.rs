//! The `v1alpha1` module: constructors for Tilt API objects and their spec helpers.
//!
//! Each constructor is a [`V1Constructor`] value that checks its keyword names (suggesting the
//! closest on a typo) and returns a struct of what it was given. Objects (`extension_repo`,
//! `extension`, `cmd`, `ui_button`, ...) are also recorded, and re-registering a name with a
//! different spec is an error, as in Tilt.

use std::fmt;

use allocative::Allocative;
use starlark::environment::GlobalsBuilder;
use starlark::eval::{Arguments, Evaluator};
use starlark::values::structs::AllocStruct;
use starlark::values::{NoSerialize, ProvidesStaticType, StarlarkValue, Value};
use starlark::{StarlarkPagablePanic, starlark_simple_value};
use starlark_derive::starlark_value;

use super::encoding::value_to_json;
use crate::tiltfile::eval::ctx;
use crate::tiltfile::suggest::did_you_mean;
use crate::tiltfile::values::builtin_error;

const META: &[&str] = &["name", "labels", "annotations"];

/// `(constructor, fields after name/labels/annotations)` for objects.
const OBJECTS: &[(&str, &[&str])] = &[
    (
        "cmd",
        &[
            "args",
            "dir",
            "env",
            "readiness_probe",
            "restart_on",
            "start_on",
            "disable_source",
        ],
    ),
    ("config_map", &["data"]),
    ("extension", &["repo_name", "repo_path", "args"]),
    (
        "extension_repo",
        &["url", "ref", "load_host", "git_subpath"],
    ),
    (
        "file_watch",
        &["watched_paths", "ignores", "disable_source"],
    ),
    (
        "kubernetes_apply",
        &[
            "yaml",
            "image_maps",
            "image_locators",
            "timeout",
            "kubernetes_discovery_template_spec",
            "port_forward_template_spec",
            "pod_log_stream_template_spec",
            "discovery_strategy",
            "disable_source",
            "apply_cmd",
            "restart_on",
            "delete_cmd",
            "cluster",
            "server_side_apply",
            "cmd",
        ],
    ),
    (
        "kubernetes_discovery",
        &[
            "watches",
            "extra_selectors",
            "port_forward_template_spec",
            "pod_log_stream_template_spec",
            "cluster",
        ],
    ),
    (
        "ui_button",
        &[
            "location",
            "text",
            "icon_name",
            "icon_svg",
            "disabled",
            "requires_confirmation",
            "inputs",
        ],
    ),
];

/// `(helper, fields)` for spec helpers; all keyword-optional.
const HELPERS: &[(&str, &[&str])] = &[
    ("config_map_disable_source", &["name", "key"]),
    ("disable_source", &["config_map", "every_config_map"]),
    ("exec_action", &["command"]),
    (
        "forward",
        &["local_port", "container_port", "host", "name", "path"],
    ),
    (
        "http_get_action",
        &["path", "port", "host", "scheme", "http_headers"],
    ),
    ("http_header", &["name", "value"]),
    ("handler", &["exec", "http_get", "tcp_socket"]),
    ("ignore_def", &["base_path", "patterns"]),
    ("kubernetes_apply_cmd", &["args", "dir", "env"]),
    ("kubernetes_discovery_template_spec", &["extra_selectors"]),
    (
        "kubernetes_image_locator",
        &["object_selector", "path", "object"],
    ),
    (
        "kubernetes_image_object_descriptor",
        &["repo_field", "tag_field"],
    ),
    ("kubernetes_watch_ref", &["uid", "namespace", "name"]),
    ("label_selector", &["match_labels", "match_expressions"]),
    ("label_selector_requirement", &["key", "operator", "values"]),
    (
        "object_selector",
        &[
            "api_version_regexp",
            "kind_regexp",
            "name_regexp",
            "namespace_regexp",
        ],
    ),
    (
        "pod_log_stream_template_spec",
        &["since_time", "only_containers", "ignore_containers"],
    ),
    ("port_forward_template_spec", &["forwards"]),
    (
        "probe",
        &[
            "handler",
            "initial_delay_seconds",
            "timeout_seconds",
            "period_seconds",
            "success_threshold",
            "failure_threshold",
        ],
    ),
    ("restart_on_spec", &["file_watches", "ui_buttons"]),
    ("start_on_spec", &["start_after", "ui_buttons"]),
    ("tcp_socket_action", &["port", "host"]),
    (
        "ui_bool_input_spec",
        &["default_value", "true_string", "false_string"],
    ),
    ("ui_choice_input_spec", &["choices"]),
    ("ui_component_location", &["component_id", "component_type"]),
    ("ui_hidden_input_spec", &["value"]),
    (
        "ui_input_spec",
        &["name", "label", "text", "bool", "hidden", "choice"],
    ),
    ("ui_text_input_spec", &["default_value", "placeholder"]),
];

/// A callable `v1alpha1.*` constructor.
#[derive(Debug, ProvidesStaticType, NoSerialize, StarlarkPagablePanic, Allocative)]
pub struct V1Constructor {
    name: &'static str,
    params: Vec<&'static str>,
    is_object: bool,
}
starlark_simple_value!(V1Constructor);

impl fmt::Display for V1Constructor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<built-in function v1alpha1.{}>", self.name)
    }
}

#[starlark_value(type = "builtin_function_or_method")]
impl<'v> StarlarkValue<'v> for V1Constructor {
    fn invoke(
        &self,
        _me: Value<'v>,
        args: &Arguments<'v, '_>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> starlark::Result<Value<'v>> {
        let function = format!("v1alpha1.{}", self.name);
        let heap = eval.heap();
        let positional: Vec<Value<'v>> = args.positions(heap)?.collect();
        if positional.len() > self.params.len() {
            return Err(builtin_error(
                &function,
                format!(
                    "got {} arguments, want at most {}",
                    positional.len(),
                    self.params.len()
                ),
            ));
        }
        let mut fields: Vec<(String, Value<'v>)> = self
            .params
            .iter()
            .zip(positional)
            .map(|(p, v)| (p.to_string(), v))
            .collect();
        for (k, v) in args.names_map()? {
            let k = k.as_str();
            if !self.params.contains(&k) {
                return Err(builtin_error(
                    &function,
                    format!(
                        "unexpected keyword argument \"{k}\"{}",
                        did_you_mean(k, self.params.iter().copied())
                    ),
                ));
            }
            if fields.iter().any(|(f, _)| f == k) {
                return Err(builtin_error(
                    &function,
                    format!("got multiple values for parameter \"{k}\""),
                ));
            }
            fields.push((k.to_owned(), v));
        }
        if self.is_object {
            self.record(&function, &fields, eval)?;
        }
        Ok(heap.alloc(AllocStruct(fields)))
    }
}

impl V1Constructor {
    fn record<'v>(
        &self,
        function: &str,
        fields: &[(String, Value<'v>)],
        eval: &Evaluator<'v, '_, '_>,
    ) -> starlark::Result<()> {
        let name = fields
            .iter()
            .find(|(k, _)| k == "name")
            .and_then(|(_, v)| v.unpack_str())
            .filter(|n| !n.is_empty())
            .ok_or_else(|| builtin_error(function, "missing argument for name"))?
            .to_owned();
        let mut spec = serde_json::Map::new();
        for (k, v) in fields {
            if k != "name" && !v.is_none() {
                let j = value_to_json(*v).unwrap_or_else(|_| serde_json::Value::String(v.to_str()));
                spec.insert(k.clone(), j);
            }
        }
        let spec = serde_json::Value::Object(spec);
        let ev = ctx(eval)?;
        let mut state = ev.state.borrow_mut();
        let key = (self.name.to_owned(), name.clone());
        if let Some(existing) = state.v1alpha1_objects.get(&key)
            && existing != &spec
        {
            return Err(builtin_error(
                function,
                format!(
                    "{} {name:?} already registered with a different spec",
                    self.name
                ),
            ));
        }
        let text = |k: &str| {
            spec.get(k)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_owned()
        };
        match self.name {
            "extension_repo" => {
                state.extension_repos.insert(name.clone(), text("url"));
            }
            "extension" => {
                state
                    .extensions
                    .insert(name.clone(), (text("repo_name"), text("repo_path")));
            }
            _ => {}
        }
        state.v1alpha1_objects.insert(key, spec);
        Ok(())
    }
}

pub fn register(b: &mut GlobalsBuilder) {
    b.namespace("v1alpha1", |b| {
        for (name, fields) in OBJECTS {
            let params = META.iter().chain(fields.iter()).copied().collect();
            b.set(
                name,
                V1Constructor {
                    name,
                    params,
                    is_object: true,
                },
            );
        }
        for (name, fields) in HELPERS {
            b.set(
                name,
                V1Constructor {
                    name,
                    params: fields.to_vec(),
                    is_object: false,
                },
            );
        }
    });
}
