//! Settings builtins: `update_settings`, `ci_settings`, `watch_settings`, `secret_settings`,
//! `docker_prune_settings`, `version_settings`, `trigger_mode`, `default_registry`,
//! `allow_k8s_contexts`, `k8s_context`/`k8s_namespace`, and the hosted-service settings Tilt
//! accepts (analytics, team, telemetry), which are recorded and never acted on.

use starlark::environment::GlobalsBuilder;
use starlark::eval::Evaluator;
use starlark::starlark_module;
use starlark::values::none::NoneType;
use starlark::values::{Value, ValueLike};

use crate::model::{DefaultRegistry, TriggerMode};
use crate::tiltfile::eval::ctx;
use crate::tiltfile::values::{
    TiltObject, arg_error, builtin_error, command, string_dict, string_or_list,
};

/// The Tilt version whose Tiltfile API tiltrs implements; `version_settings(constraint=)`
/// is checked against it.
pub const TILT_COMPAT_VERSION: &str = "0.37.6";

pub fn register(b: &mut GlobalsBuilder) {
    b.set(
        "TRIGGER_MODE_AUTO",
        TiltObject::TriggerMode(TriggerMode::Auto),
    );
    b.set(
        "TRIGGER_MODE_MANUAL",
        TiltObject::TriggerMode(TriggerMode::Manual),
    );
    settings_builtins(b);
}

/// Parses a Go-style duration (`30s`, `5m`, `1h30m`, `500ms`).
pub fn parse_duration(function: &str, param: &str, text: &str) -> starlark::Result<u64> {
    humantime::parse_duration(text)
        .map(|d| d.as_secs())
        .map_err(|e| arg_error(function, param, format!("invalid duration {text:?}: {e}")))
}

/// Unpacks a trigger mode value.
pub fn trigger_mode_arg(function: &str, v: Option<Value>) -> starlark::Result<Option<TriggerMode>> {
    match v {
        None => Ok(None),
        Some(v) if v.is_none() => Ok(None),
        Some(v) => match v.downcast_ref::<TiltObject>() {
            Some(TiltObject::TriggerMode(m)) => Ok(Some(*m)),
            _ => Err(arg_error(
                function,
                "trigger_mode",
                format!(
                    "got {}, want TriggerMode (TRIGGER_MODE_AUTO or TRIGGER_MODE_MANUAL)",
                    v.get_type()
                ),
            )),
        },
    }
}

fn check_semver_constraint(constraint: &str) -> Result<bool, String> {
    let version = semver::Version::parse(TILT_COMPAT_VERSION).map_err(|e| e.to_string())?;
    let mut any = false;
    for alternative in constraint.split("||") {
        let comparators: Vec<&str> = alternative.split_whitespace().collect();
        if comparators.is_empty() {
            return Err(format!("empty range in {constraint:?}"));
        }
        let req = semver::VersionReq::parse(&comparators.join(", ")).map_err(|e| e.to_string())?;
        any |= req.matches(&version);
    }
    Ok(any)
}

#[starlark_module]
fn settings_builtins(builder: &mut GlobalsBuilder) {
    fn update_settings<'v>(
        max_parallel_updates: Option<i32>,
        k8s_upsert_timeout_secs: Option<i32>,
        suppress_unused_image_warnings: Option<Value<'v>>,
        k8s_server_side_apply: Option<Value<'v>>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> starlark::Result<NoneType> {
        let f = "update_settings";
        let ev = ctx(eval)?;
        let mut state = ev.state.borrow_mut();
        if let Some(n) = max_parallel_updates {
            if n < 1 {
                return Err(arg_error(
                    f,
                    "max_parallel_updates",
                    format!("max number of parallel updates must be >= 1(got: {n})"),
                ));
            }
            state.settings.max_parallel_updates = n as u32;
        }
        if let Some(n) = k8s_upsert_timeout_secs {
            if n < 1 {
                return Err(arg_error(
                    f,
                    "k8s_upsert_timeout_secs",
                    format!("minimum k8s upsert timeout is 1s; got {n}s"),
                ));
            }
            state.settings.k8s_upsert_timeout_secs = n as u64;
        }
        let suppressed = string_or_list(
            f,
            "suppress_unused_image_warnings",
            suppress_unused_image_warnings,
        )?;
        state
            .settings
            .suppress_unused_image_warnings
            .extend(suppressed);
        if let Some(v) = k8s_server_side_apply.filter(|v| !v.is_none()) {
            let mode = match (v.unpack_bool(), v.unpack_str()) {
                (Some(true), _) => "true".to_owned(),
                (Some(false), _) => "false".to_owned(),
                (_, Some(s)) if ["true", "false", "auto"].contains(&s) => s.to_owned(),
                _ => {
                    return Err(arg_error(
                        f,
                        "k8s_server_side_apply",
                        format!(
                            "must be one of \"true\", \"false\" or \"auto\", got {}",
                            v.to_repr()
                        ),
                    ));
                }
            };
            state.settings.k8s_server_side_apply = mode;
        }
        Ok(NoneType)
    }

    fn ci_settings(
        k8s_grace_period: Option<&str>,
        timeout: Option<&str>,
        readiness_timeout: Option<&str>,
        eval: &mut Evaluator,
    ) -> starlark::Result<NoneType> {
        let f = "ci_settings";
        let ev = ctx(eval)?;
        let mut state = ev.state.borrow_mut();
        if let Some(t) = k8s_grace_period.filter(|t| !t.is_empty()) {
            state.settings.k8s_grace_period = parse_duration(f, "k8s_grace_period", t)?;
        }
        if let Some(t) = timeout.filter(|t| !t.is_empty()) {
            state.settings.ci_timeout = parse_duration(f, "timeout", t)?;
        }
        if let Some(t) = readiness_timeout.filter(|t| !t.is_empty()) {
            state.settings.ci_readiness_timeout = parse_duration(f, "readiness_timeout", t)?;
        }
        Ok(NoneType)
    }

    fn watch_settings<'v>(
        ignore: Option<Value<'v>>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> starlark::Result<NoneType> {
        let patterns = string_or_list("watch_settings", "ignore", ignore)?;
        let ev = ctx(eval)?;
        let mut state = ev.state.borrow_mut();
        let cwd = state.cwd();
        for p in patterns {
            let abs = crate::tiltfile::ignore_patterns::absolutize(&cwd, &p);
            state.settings.watch_ignores.push(abs);
        }
        Ok(NoneType)
    }

    fn secret_settings(disable_scrub: bool, eval: &mut Evaluator) -> starlark::Result<NoneType> {
        ctx(eval)?.state.borrow_mut().settings.secret_scrub = !disable_scrub;
        Ok(NoneType)
    }

    fn docker_prune_settings(
        disable: Option<bool>,
        max_age_mins: Option<i32>,
        num_builds: Option<i32>,
        interval_hrs: Option<i32>,
        keep_recent: Option<i32>,
        eval: &mut Evaluator,
    ) -> starlark::Result<NoneType> {
        let ev = ctx(eval)?;
        let mut state = ev.state.borrow_mut();
        let prune = &mut state.settings.docker_prune;
        if let Some(d) = disable {
            prune.disable = d;
        }
        let positive = |name: &str, v: Option<i32>| -> starlark::Result<Option<u64>> {
            match v {
                Some(n) if n < 0 => Err(arg_error(
                    "docker_prune_settings",
                    name,
                    format!("must be >= 0, got {n}"),
                )),
                Some(n) => Ok(Some(n as u64)),
                None => Ok(None),
            }
        };
        if let Some(n) = positive("max_age_mins", max_age_mins)? {
            prune.max_age_mins = n;
        }
        if let Some(n) = positive("num_builds", num_builds)? {
            prune.num_builds = n;
        }
        if let Some(n) = positive("interval_hrs", interval_hrs)? {
            prune.interval_hrs = n;
        }
        if let Some(n) = positive("keep_recent", keep_recent)? {
            prune.keep_recent = n;
        }
        Ok(NoneType)
    }

    fn version_settings(
        check_updates: Option<bool>,
        constraint: Option<&str>,
        eval: &mut Evaluator,
    ) -> starlark::Result<NoneType> {
        let ev = ctx(eval)?;
        let mut state = ev.state.borrow_mut();
        state.settings.hosted.version_check_updates = check_updates.unwrap_or(true);
        if let Some(c) = constraint.filter(|c| !c.trim().is_empty()) {
            match check_semver_constraint(c) {
                Ok(true) => {}
                Ok(false) => {
                    return Err(builtin_error(
                        "version_settings",
                        format!(
                            "You're running Tilt-compatible version {TILT_COMPAT_VERSION}, which doesn't match the Tiltfile's version constraint \"{c}\""
                        ),
                    ));
                }
                Err(e) => {
                    return Err(arg_error(
                        "version_settings",
                        "constraint",
                        format!("invalid version constraint {c:?}: {e}"),
                    ));
                }
            }
            state.settings.hosted.version_constraint = c.to_owned();
        }
        Ok(NoneType)
    }

    fn analytics_settings(enable: bool, eval: &mut Evaluator) -> starlark::Result<NoneType> {
        ctx(eval)?
            .state
            .borrow_mut()
            .settings
            .hosted
            .analytics_enabled = Some(enable);
        Ok(NoneType)
    }

    fn experimental_analytics_report<'v>(
        tags: Value<'v>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> starlark::Result<NoneType> {
        let tags = string_dict("experimental_analytics_report", "tags", Some(tags))?;
        ctx(eval)?
            .state
            .borrow_mut()
            .settings
            .hosted
            .analytics_tags
            .extend(tags);
        Ok(NoneType)
    }

    fn experimental_metrics_settings<'v>(
        #[starlark(kwargs)] _kwargs: starlark::collections::SmallMap<String, Value<'v>>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> starlark::Result<NoneType> {
        ctx(eval)?
            .state
            .borrow_mut()
            .warn("experimental_metrics_settings is deprecated and has no effect");
        Ok(NoneType)
    }

    fn experimental_telemetry_cmd<'v>(
        cmd: Value<'v>,
        cmd_bat: Option<Value<'v>>,
        period: Option<&str>,
        dir: Option<&str>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> starlark::Result<NoneType> {
        let f = "experimental_telemetry_cmd";
        let argv = command(f, "cmd", Some(cmd))?;
        let _ = (cmd_bat, dir);
        if let Some(p) = period {
            parse_duration(f, "period", p)?;
        }
        let ev = ctx(eval)?;
        let mut state = ev.state.borrow_mut();
        if !state.settings.hosted.telemetry_cmd.is_empty() {
            return Err(builtin_error(f, "Telemetry command already set"));
        }
        state.settings.hosted.telemetry_cmd = argv;
        Ok(NoneType)
    }

    fn set_team(team_id: &str, eval: &mut Evaluator) -> starlark::Result<NoneType> {
        let ev = ctx(eval)?;
        let mut state = ev.state.borrow_mut();
        if team_id.is_empty() {
            return Err(builtin_error("set_team", "team_id cannot be empty"));
        }
        if !state.settings.hosted.team_id.is_empty() {
            return Err(builtin_error(
                "set_team",
                format!(
                    "team_id set multiple times (to '{}' and '{team_id}')",
                    state.settings.hosted.team_id
                ),
            ));
        }
        state.settings.hosted.team_id = team_id.to_owned();
        Ok(NoneType)
    }

    fn trigger_mode<'v>(
        trigger_mode: Value<'v>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> starlark::Result<NoneType> {
        let mode = trigger_mode_arg("trigger_mode", Some(trigger_mode))?.unwrap_or_default();
        let ev = ctx(eval)?;
        let mut state = ev.state.borrow_mut();
        if state.trigger_mode_set {
            return Err(builtin_error(
                "trigger_mode",
                "trigger_mode can only be called once",
            ));
        }
        state.trigger_mode_set = true;
        state.settings.default_trigger_mode = mode;
        Ok(NoneType)
    }

    fn default_registry(
        host: &str,
        host_from_cluster: Option<&str>,
        single_name: Option<&str>,
        eval: &mut Evaluator,
    ) -> starlark::Result<NoneType> {
        let ev = ctx(eval)?;
        let mut state = ev.state.borrow_mut();
        if state.default_registry_set {
            return Err(builtin_error(
                "default_registry",
                "default registry already defined",
            ));
        }
        if host.is_empty() {
            return Err(arg_error("default_registry", "host", "must not be empty"));
        }
        state.default_registry_set = true;
        state.settings.default_registry = Some(DefaultRegistry {
            host: host.to_owned(),
            host_from_cluster: host_from_cluster.unwrap_or_default().to_owned(),
            single_name: single_name.unwrap_or_default().to_owned(),
        });
        Ok(NoneType)
    }

    fn allow_k8s_contexts<'v>(
        contexts: Value<'v>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> starlark::Result<NoneType> {
        let list = string_or_list("allow_k8s_contexts", "contexts", Some(contexts))?;
        ctx(eval)?
            .state
            .borrow_mut()
            .settings
            .allowed_k8s_contexts
            .extend(list);
        Ok(NoneType)
    }

    fn k8s_context(eval: &mut Evaluator) -> starlark::Result<String> {
        Ok(ctx(eval)?.state.borrow().settings.k8s_context.clone())
    }

    fn k8s_namespace(eval: &mut Evaluator) -> starlark::Result<String> {
        Ok(ctx(eval)?.state.borrow().settings.k8s_namespace.clone())
    }
}
