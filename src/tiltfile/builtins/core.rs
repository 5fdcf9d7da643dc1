//! Language-level builtins: `warn`, `exit`, `module`, `include`, `load_dynamic`, feature flags.

use starlark::collections::SmallMap;
use starlark::environment::GlobalsBuilder;
use starlark::eval::Evaluator;
use starlark::starlark_module;
use starlark::values::Value;
use starlark::values::dict::AllocDict;
use starlark::values::none::NoneType;
use starlark::values::structs::AllocStruct;

use crate::tiltfile::eval::{StopExecution, ctx};
use crate::tiltfile::values::builtin_error;

/// Feature flags Tilt knows; obsolete ones only warn.
const FEATURES: &[&str] = &["snapshots", "cluster_refresh"];
const OBSOLETE_FEATURES: &[&str] = &[
    "multiple_containers_per_pod",
    "events",
    "facets",
    "k8s_custom_deploy",
    "labels",
    "live_update_v2",
    "disable_resources",
    "offline_snapshot_creation",
    "update_history",
];

pub fn register(b: &mut GlobalsBuilder) {
    core_builtins(b);
}

#[starlark_module]
fn core_builtins(builder: &mut GlobalsBuilder) {
    /// Logs a warning; evaluation goes on.
    fn warn(msg: &str, eval: &mut Evaluator) -> starlark::Result<NoneType> {
        ctx(eval)?.state.borrow_mut().warn(msg);
        Ok(NoneType)
    }

    /// Stops evaluation without an error, keeping everything declared so far.
    fn exit(code: Option<Value>, eval: &mut Evaluator) -> starlark::Result<NoneType> {
        let ev = ctx(eval)?;
        if let Some(code) = code.filter(|c| !c.is_none()) {
            ev.state.borrow_mut().log.push(code.to_repr());
        }
        ev.exited.set(true);
        Err(starlark::Error::new_other(StopExecution))
    }

    /// A named struct, used to namespace a library's symbols.
    fn module<'v>(
        name: &str,
        #[starlark(kwargs)] kwargs: SmallMap<String, Value<'v>>,
    ) -> starlark::Result<AllocStruct<Vec<(String, Value<'v>)>>> {
        let _ = name;
        Ok(AllocStruct(kwargs.into_iter().collect()))
    }

    /// Executes another Tiltfile and discards its globals.
    fn include(path: &str, eval: &mut Evaluator) -> starlark::Result<NoneType> {
        let ev = ctx(eval)?;
        let resolved = ev.resolve_load(path)?;
        ev.exec_file(&resolved, false)?;
        Ok(NoneType)
    }

    /// Like `load`, at run time: returns a dict of the file's globals.
    fn load_dynamic<'v>(
        path: &str,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> starlark::Result<Value<'v>> {
        let module = {
            let ev = ctx(eval)?;
            let resolved = ev.resolve_load(path)?;
            ev.exec_file(&resolved, false)?
        };
        let names: Vec<String> = module
            .names()
            .map(|n| n.as_str().to_owned())
            .filter(|n| !n.starts_with('_'))
            .collect();
        let mut entries: Vec<(String, Value<'v>)> = Vec::new();
        for name in names {
            if let Ok(v) = module.get(&name) {
                // SAFETY: `owned_frozen_value` makes the evaluator's frozen heap keep the
                // loaded module's heap alive, so the value outlives every use of it.
                let frozen = unsafe { v.owned_frozen_value(eval.frozen_heap()) };
                entries.push((name, frozen.to_value()));
            }
        }
        Ok(eval.heap().alloc(AllocDict(entries)))
    }

    fn enable_feature(msg: &str, eval: &mut Evaluator) -> starlark::Result<NoneType> {
        set_feature(eval, "enable_feature", msg, true)
    }

    fn disable_feature(msg: &str, eval: &mut Evaluator) -> starlark::Result<NoneType> {
        set_feature(eval, "disable_feature", msg, false)
    }

    fn disable_snapshots(eval: &mut Evaluator) -> starlark::Result<NoneType> {
        set_feature(eval, "disable_snapshots", "snapshots", false)
    }
}

fn set_feature(
    eval: &mut Evaluator,
    function: &str,
    name: &str,
    on: bool,
) -> starlark::Result<NoneType> {
    let ev = ctx(eval)?;
    let mut state = ev.state.borrow_mut();
    if OBSOLETE_FEATURES.contains(&name) {
        state.warn(format!(
            "{function}: the feature flag {name:?} is obsolete and has no effect"
        ));
        return Ok(NoneType);
    }
    if !FEATURES.contains(&name) {
        return Err(builtin_error(
            function,
            format!("Unknown feature flag: {name}"),
        ));
    }
    state.settings.features.insert(name.to_owned(), on);
    Ok(NoneType)
}
