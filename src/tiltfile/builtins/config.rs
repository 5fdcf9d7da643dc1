//! The `config` module: Tiltfile arguments (`define_*`, `parse` over `tilt_config.json` and the
//! args after `--`), enabled resources, and `config.main_path`/`main_dir`/`tilt_subcommand`.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value as Json;
use starlark::environment::GlobalsBuilder;
use starlark::eval::Evaluator;
use starlark::starlark_module;
use starlark::values::Value;
use starlark::values::none::NoneType;

use super::encoding::json_to_value;
use crate::tiltfile::eval::ctx;
use crate::tiltfile::state::{ConfigDef, ConfigKind, State};
use crate::tiltfile::values::{builtin_error, string_or_list};

pub fn register(b: &mut GlobalsBuilder, main_path: &Path, subcommand: &str) {
    let main_dir = main_path
        .parent()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let main_path = main_path.to_string_lossy().into_owned();
    let subcommand = subcommand.to_owned();
    b.namespace("config", |b| {
        config_builtins(b);
        b.set("main_path", main_path.as_str());
        b.set("main_dir", main_dir.as_str());
        b.set("tilt_subcommand", subcommand.as_str());
    });
}

fn define(
    eval: &Evaluator,
    function: &str,
    name: &str,
    kind: ConfigKind,
    args: bool,
    usage: &str,
) -> starlark::Result<NoneType> {
    let ev = ctx(eval)?;
    let mut state = ev.state.borrow_mut();
    if name.is_empty() {
        return Err(builtin_error(function, "name must not be empty"));
    }
    if state.config_parsed {
        return Err(builtin_error(
            function,
            format!("{function} cannot be called after config.parse is called"),
        ));
    }
    if state.config_defs.contains_key(name) {
        return Err(builtin_error(
            function,
            format!("{name} defined multiple times"),
        ));
    }
    if args && let Some((other, _)) = state.config_defs.iter().find(|(_, d)| d.args) {
        return Err(builtin_error(
            function,
            format!("both {other} and {name} are defined as positional args"),
        ));
    }
    state.config_defs.insert(
        name.to_owned(),
        ConfigDef {
            kind,
            args,
            usage: usage.to_owned(),
        },
    );
    Ok(NoneType)
}

/// Usage text listing the defined settings, shown when parsing fails.
fn usage(state: &State) -> String {
    let mut out = String::from("Usage:\n");
    for (name, def) in &state.config_defs {
        let kind = match def.kind {
            ConfigKind::String => "string",
            ConfigKind::StringList => "string list",
            ConfigKind::Bool => "bool",
            ConfigKind::Object => "object",
        };
        let positional = if def.args { " (positional args)" } else { "" };
        out.push_str(&format!("  --{name} {kind}{positional}"));
        if !def.usage.is_empty() {
            out.push_str(&format!(": {}", def.usage));
        }
        out.push('\n');
    }
    out.trim_end().to_owned()
}

fn set_value(
    values: &mut BTreeMap<String, Json>,
    name: &str,
    def: &ConfigDef,
    raw: &str,
    from_cli: bool,
) -> Result<(), String> {
    match def.kind {
        ConfigKind::String => {
            values.insert(name.to_owned(), Json::String(raw.to_owned()));
        }
        ConfigKind::StringList => {
            let entry = values
                .entry(name.to_owned())
                .or_insert_with(|| Json::Array(Vec::new()));
            if from_cli && let Json::Array(items) = entry {
                items.push(Json::String(raw.to_owned()));
            }
        }
        ConfigKind::Bool => {
            let b = match raw {
                "" | "1" | "t" | "T" | "true" | "TRUE" | "True" => true,
                "0" | "f" | "F" | "false" | "FALSE" | "False" => false,
                _ => return Err(format!("invalid boolean value {raw:?} for -{name}")),
            };
            values.insert(name.to_owned(), Json::Bool(b));
        }
        ConfigKind::Object => {
            let parsed: Json = serde_json::from_str(raw)
                .map_err(|e| format!("invalid object value for -{name}: {e}"))?;
            values.insert(name.to_owned(), parsed);
        }
    }
    Ok(())
}

/// Reads `tilt_config.json` (if any) and lays the command-line args over it, as Go's `flag`.
fn parse_config(state: &mut State, dir: &Path) -> Result<BTreeMap<String, Json>, String> {
    let mut values: BTreeMap<String, Json> = BTreeMap::new();
    let config_path = dir.join("tilt_config.json");
    state.record_file(&config_path);
    if let Ok(text) = std::fs::read_to_string(&config_path) {
        let parsed: Json =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", config_path.display()))?;
        let Json::Object(map) = parsed else {
            return Err(format!("{}: must be a JSON object", config_path.display()));
        };
        for (k, v) in map {
            let def = state.config_defs.get(&k).ok_or_else(|| {
                format!(
                    "{}: specified unknown setting name '{k}'",
                    config_path.display()
                )
            })?;
            let ok = match def.kind {
                ConfigKind::String => v.is_string(),
                ConfigKind::StringList => {
                    v.as_array().is_some_and(|a| a.iter().all(Json::is_string))
                }
                ConfigKind::Bool => v.is_boolean(),
                ConfigKind::Object => v.is_object(),
            };
            if !ok {
                return Err(format!(
                    "{}: setting '{k}' has the wrong type",
                    config_path.display()
                ));
            }
            values.insert(k, v);
        }
    }

    let args = state.args.clone();
    let mut positional = Vec::new();
    let mut cli: BTreeMap<String, Json> = BTreeMap::new();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if arg == "--" {
            positional.extend(args[i..].iter().cloned());
            break;
        }
        let Some(flag) = arg
            .strip_prefix("--")
            .or_else(|| arg.strip_prefix('-'))
            .filter(|f| !f.is_empty() && !arg.starts_with("---"))
        else {
            positional.push(arg.clone());
            positional.extend(args[i..].iter().cloned());
            break;
        };
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n, Some(v.to_owned())),
            None => (flag, None),
        };
        let def = state
            .config_defs
            .get(name)
            .ok_or_else(|| format!("flag provided but not defined: -{name}\n{}", usage(state)))?
            .clone();
        let raw = match (inline, &def.kind) {
            (Some(v), _) => v,
            (None, ConfigKind::Bool) => "true".to_owned(),
            (None, _) => {
                let v = args
                    .get(i)
                    .cloned()
                    .ok_or_else(|| format!("flag needs an argument: -{name}\n{}", usage(state)))?;
                i += 1;
                v
            }
        };
        if def.kind == ConfigKind::StringList {
            cli.entry(name.to_owned())
                .or_insert_with(|| Json::Array(Vec::new()));
        }
        set_value(&mut cli, name, &def, &raw, true)?;
    }
    if !positional.is_empty() {
        let Some((name, def)) = state
            .config_defs
            .iter()
            .find(|(_, d)| d.args)
            .map(|(n, d)| (n.clone(), d.clone()))
        else {
            return Err(format!(
                "positional CLI args (\"{}\") were specified, but none were expected.\nSee https://docs.tilt.dev/tiltfile_config.html#positional-arguments for examples.",
                positional.join("\" \"")
            ));
        };
        match def.kind {
            ConfigKind::StringList => {
                cli.insert(
                    name,
                    Json::Array(positional.into_iter().map(Json::String).collect()),
                );
            }
            _ => {
                if positional.len() > 1 {
                    return Err(format!(
                        "{name} takes one positional arg, got {}",
                        positional.len()
                    ));
                }
                set_value(&mut cli, &name, &def, &positional[0], true)?;
            }
        }
    }
    values.extend(cli);
    Ok(values)
}

#[starlark_module]
fn config_builtins(builder: &mut GlobalsBuilder) {
    fn define_string(
        name: &str,
        #[starlark(default = false)] args: bool,
        #[starlark(default = "")] usage: &str,
        eval: &mut Evaluator,
    ) -> starlark::Result<NoneType> {
        define(
            eval,
            "config.define_string",
            name,
            ConfigKind::String,
            args,
            usage,
        )
    }

    fn define_string_list(
        name: &str,
        #[starlark(default = false)] args: bool,
        #[starlark(default = "")] usage: &str,
        eval: &mut Evaluator,
    ) -> starlark::Result<NoneType> {
        define(
            eval,
            "config.define_string_list",
            name,
            ConfigKind::StringList,
            args,
            usage,
        )
    }

    fn define_bool(
        name: &str,
        #[starlark(default = false)] args: bool,
        #[starlark(default = "")] usage: &str,
        eval: &mut Evaluator,
    ) -> starlark::Result<NoneType> {
        define(
            eval,
            "config.define_bool",
            name,
            ConfigKind::Bool,
            args,
            usage,
        )
    }

    fn define_object(
        name: &str,
        #[starlark(default = false)] args: bool,
        #[starlark(default = "")] usage: &str,
        eval: &mut Evaluator,
    ) -> starlark::Result<NoneType> {
        define(
            eval,
            "config.define_object",
            name,
            ConfigKind::Object,
            args,
            usage,
        )
    }

    fn parse<'v>(eval: &mut Evaluator<'v, '_, '_>) -> starlark::Result<Value<'v>> {
        let ev = ctx(eval)?;
        let values = {
            let mut state = ev.state.borrow_mut();
            let dir = state.cwd();
            if let Some(prev) = &state.config_parse_dir
                && prev != &dir
            {
                return Err(builtin_error(
                    "config.parse",
                    format!(
                        "config.parse can only be called from one Tiltfile (already called from {})",
                        prev.display()
                    ),
                ));
            }
            state.config_parse_dir = Some(dir.clone());
            state.config_parsed = true;
            parse_config(&mut state, &dir).map_err(|e| builtin_error("config.parse", e))?
        };
        let obj = Json::Object(values.into_iter().collect());
        Ok(json_to_value(eval.heap(), &obj))
    }

    fn set_enabled_resources<'v>(
        resources: Value<'v>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> starlark::Result<NoneType> {
        let list = string_or_list("config.set_enabled_resources", "resources", Some(resources))?;
        ctx(eval)?.state.borrow_mut().enabled_resources =
            if list.is_empty() { None } else { Some(list) };
        Ok(NoneType)
    }

    fn clear_enabled_resources(eval: &mut Evaluator) -> starlark::Result<NoneType> {
        ctx(eval)?.state.borrow_mut().enabled_resources = Some(Vec::new());
        Ok(NoneType)
    }
}
