//! Images and live update: `docker_build`, `custom_build`, and the live-update steps
//! (`initial_sync`, `fall_back_on`, `sync`, `run`, `restart_container`) with Tilt's ordering
//! rules and its "created but not used" check.

use std::path::{Path, PathBuf};

use starlark::environment::GlobalsBuilder;
use starlark::eval::Evaluator;
use starlark::starlark_module;
use starlark::values::none::NoneType;
use starlark::values::{Value, ValueLike};

use crate::model::{Builder, CustomBuildSpec, ImageTarget, LiveUpdateStep};
use crate::tiltfile::docker_ref::parse_reference;
use crate::tiltfile::eval::{Evaluation, ctx};
use crate::tiltfile::ignore_patterns::absolutize;
use crate::tiltfile::values::{
    TiltObject, abs_path, arg_error, builtin_error, command, optional_bool, optional_str,
    sequence_items, string_dict, string_list, string_or_list,
};

pub fn register(b: &mut GlobalsBuilder) {
    docker_builtins(b);
}

/// Checks `r` parses as a Docker image reference.
pub fn validate_ref(function: &str, param: &str, r: &str) -> starlark::Result<()> {
    parse_reference(r).map_err(|e| arg_error(function, param, format!("can't parse {r:?}: {e}")))
}

/// Registers a new live-update step value.
fn new_step(eval: &Evaluator, step: LiveUpdateStep) -> starlark::Result<TiltObject> {
    let ev = ctx(eval)?;
    let mut state = ev.state.borrow_mut();
    state.steps_used.push(false);
    Ok(TiltObject::Step {
        id: state.steps_used.len() - 1,
        step,
    })
}

/// Unpacks `live_update=`, marks its steps used and checks Tilt's ordering rules.
pub fn live_update_arg(
    function: &str,
    ev: &Evaluation,
    v: Option<Value>,
) -> starlark::Result<Vec<LiveUpdateStep>> {
    let Some(v) = v.filter(|v| !v.is_none()) else {
        return Ok(Vec::new());
    };
    let items = sequence_items(v).ok_or_else(|| {
        arg_error(
            function,
            "live_update",
            format!("expected a list of live_update steps, got {}", v.get_type()),
        )
    })?;
    let mut steps = Vec::new();
    let mut state = ev.state.borrow_mut();
    for item in items {
        match item.downcast_ref::<TiltObject>() {
            Some(TiltObject::Step { id, step }) => {
                if let Some(used) = state.steps_used.get_mut(*id) {
                    *used = true;
                }
                steps.push(step.clone());
            }
            _ => {
                return Err(arg_error(
                    function,
                    "live_update",
                    format!("got {}, want a live_update step", item.get_type()),
                ));
            }
        }
    }
    check_step_order(function, &steps)?;
    Ok(steps)
}

fn check_step_order(function: &str, steps: &[LiveUpdateStep]) -> starlark::Result<()> {
    let rank = |s: &LiveUpdateStep| match s {
        LiveUpdateStep::InitialSync {} => 0,
        LiveUpdateStep::FallBackOn(_) => 1,
        LiveUpdateStep::Sync { .. } => 2,
        LiveUpdateStep::Run { .. } => 3,
        LiveUpdateStep::RestartContainer {} => 4,
    };
    for (i, step) in steps.iter().enumerate() {
        let later_lower = steps[i + 1..].iter().any(|s| rank(s) < rank(step));
        let err = match step {
            LiveUpdateStep::InitialSync {} if i != 0 => {
                Some("initial_sync must appear at most once, at the start of the list")
            }
            LiveUpdateStep::FallBackOn(_) if steps[..i].iter().any(|s| rank(s) > 1) => {
                Some("fall_back_on steps must appear at the start of the list")
            }
            LiveUpdateStep::Run { .. }
                if steps[i + 1..]
                    .iter()
                    .any(|s| matches!(s, LiveUpdateStep::Sync { .. })) =>
            {
                Some("all sync steps must precede all run steps")
            }
            LiveUpdateStep::RestartContainer {} if i + 1 != steps.len() => {
                Some("restart container is only valid as the last step")
            }
            LiveUpdateStep::Sync { .. } if later_lower => {
                Some("fall_back_on steps must appear at the start of the list")
            }
            _ => None,
        };
        if let Some(msg) = err {
            return Err(builtin_error(function, msg));
        }
    }
    Ok(())
}

/// Every sync source and `fall_back_on` path must lie under one of `roots` (the build context,
/// custom_build deps, or k8s_custom_deploy deps, which `context` names in the error).
pub(super) fn check_paths_under(
    function: &str,
    steps: &[LiveUpdateStep],
    roots: &[PathBuf],
    context: &str,
) -> starlark::Result<()> {
    for step in steps {
        let (what, paths): (&str, Vec<&Path>) = match step {
            LiveUpdateStep::Sync { local, .. } => ("sync step source", vec![local.as_path()]),
            LiveUpdateStep::FallBackOn(p) => (
                "fall_back_on paths",
                p.iter().map(PathBuf::as_path).collect(),
            ),
            _ => continue,
        };
        if let Some(p) = paths
            .into_iter()
            .find(|p| !roots.iter().any(|r| p.starts_with(r)))
        {
            return Err(builtin_error(
                function,
                format!(
                    "live_update: {what} {:?} is not a child of any watched filepaths ({context})",
                    p.display().to_string()
                ),
            ));
        }
    }
    Ok(())
}

fn add_image(ev: &Evaluation, function: &str, image: ImageTarget) -> starlark::Result<()> {
    let mut state = ev.state.borrow_mut();
    if state.images.iter().any(|i| i.image_ref == image.image_ref) {
        return Err(builtin_error(
            function,
            format!(
                "Image for ref {:?} has already been defined",
                image.image_ref
            ),
        ));
    }
    state.images.push(image);
    Ok(())
}

#[starlark_module]
fn docker_builtins(builder: &mut GlobalsBuilder) {
    fn docker_build<'v>(
        r#ref: &str,
        context: &str,
        build_args: Option<Value<'v>>,
        dockerfile: Option<Value<'v>>,
        dockerfile_contents: Option<Value<'v>>,
        cache: Option<Value<'v>>,
        live_update: Option<Value<'v>>,
        match_in_env_vars: Option<Value<'v>>,
        ignore: Option<Value<'v>>,
        only: Option<Value<'v>>,
        entrypoint: Option<Value<'v>>,
        container_args: Option<Value<'v>>,
        target: Option<Value<'v>>,
        ssh: Option<Value<'v>>,
        secret: Option<Value<'v>>,
        network: Option<Value<'v>>,
        extra_tag: Option<Value<'v>>,
        cache_from: Option<Value<'v>>,
        pull: Option<Value<'v>>,
        platform: Option<Value<'v>>,
        extra_hosts: Option<Value<'v>>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> starlark::Result<NoneType> {
        let f = "docker_build";
        validate_ref(f, "ref", r#ref)?;
        let build_args = string_dict(f, "build_args", build_args)?;
        let inline = optional_str(f, "dockerfile_contents", dockerfile_contents)?;
        let dockerfile = optional_str(f, "dockerfile", dockerfile)?;
        if !inline.is_empty() && !dockerfile.is_empty() {
            return Err(builtin_error(
                f,
                "Cannot specify both dockerfile and dockerfile_contents keyword arguments",
            ));
        }
        let ignore = string_or_list(f, "ignore", ignore)?;
        let only = string_or_list(f, "only", only)?;
        for (param, list) in [("ignore", &ignore), ("only", &only)] {
            if list.iter().any(|p| p.contains('\n')) {
                return Err(arg_error(f, param, "patterns may not contain newlines"));
            }
        }
        if only.iter().any(|p| p.contains('*')) {
            return Err(arg_error(
                f,
                "only",
                "'only' does not support '*' file globs. Must be a real path",
            ));
        }
        let entrypoint = command(f, "entrypoint", entrypoint)?;
        let container_args = match container_args.filter(|v| !v.is_none()) {
            Some(v) => Some(string_list(f, "container_args", Some(v))?),
            None => None,
        };
        let extra_tag = string_or_list(f, "extra_tag", extra_tag)?;
        for t in &extra_tag {
            validate_ref(f, "extra_tag", t)?;
        }
        let platform = match optional_str(f, "platform", platform)? {
            p if p.is_empty() => std::env::var("DOCKER_DEFAULT_PLATFORM").unwrap_or_default(),
            p => p,
        };
        let ev = ctx(eval)?;
        if cache.is_some_and(|c| !c.is_none()) {
            ev.state
                .borrow_mut()
                .warn("docker_build(cache=...) is obsolete and has no effect");
        }
        let live_update = live_update_arg(f, ev, live_update)?;
        let cwd = ev.state.borrow().cwd();
        let context = abs_path(&cwd, context);
        let (dockerfile_path, contents) = if inline.is_empty() {
            let path = if dockerfile.is_empty() {
                context.join("Dockerfile")
            } else {
                abs_path(&cwd, &dockerfile)
            };
            ev.state.borrow_mut().record_file(&path);
            let text = ev.reads.read_to_string(&path).map_err(|e| {
                builtin_error(
                    f,
                    format!("error reading dockerfile {}: {e}", path.display()),
                )
            })?;
            (Some(path), text.to_string())
        } else {
            (None, inline)
        };
        let dockerignore = dockerfile_path
            .as_ref()
            .map(|p| PathBuf::from(format!("{}.dockerignore", p.display())))
            .filter(|p| p.exists())
            .unwrap_or_else(|| context.join(".dockerignore"));
        ev.state.borrow_mut().record_file(&dockerignore);
        check_paths_under(
            f,
            &live_update,
            std::slice::from_ref(&context),
            "the docker_build context",
        )?;
        let image = ImageTarget {
            image_ref: r#ref.to_owned(),
            builder: Builder::Docker,
            context: context.clone(),
            dockerfile: dockerfile_path,
            dockerfile_contents: contents,
            build_args,
            target: optional_str(f, "target", target)?,
            only: only
                .iter()
                .map(|o| abs_path(&context, o).to_string_lossy().into_owned())
                .collect(),
            ignore: ignore.iter().map(|i| absolutize(&context, i)).collect(),
            live_update,
            custom: None,
            match_in_env_vars: optional_bool(f, "match_in_env_vars", match_in_env_vars)?
                .unwrap_or(false),
            entrypoint,
            container_args,
            network: optional_str(f, "network", network)?,
            extra_hosts: string_or_list(f, "extra_hosts", extra_hosts)?,
            platform,
            pull: optional_bool(f, "pull", pull)?.unwrap_or(false),
            cache_from: string_or_list(f, "cache_from", cache_from)?,
            extra_tag,
            ssh: string_or_list(f, "ssh", ssh)?,
            secret: string_or_list(f, "secret", secret)?,
            image_deps: Vec::new(),
        };
        add_image(ev, f, image)?;
        Ok(NoneType)
    }

    fn custom_build<'v>(
        r#ref: &str,
        command: Value<'v>,
        deps: Value<'v>,
        tag: Option<Value<'v>>,
        disable_push: Option<Value<'v>>,
        skips_local_docker: Option<Value<'v>>,
        live_update: Option<Value<'v>>,
        match_in_env_vars: Option<Value<'v>>,
        ignore: Option<Value<'v>>,
        entrypoint: Option<Value<'v>>,
        container_args: Option<Value<'v>>,
        command_bat_val: Option<Value<'v>>,
        outputs_image_ref_to: Option<Value<'v>>,
        command_bat: Option<Value<'v>>,
        image_deps: Option<Value<'v>>,
        env: Option<Value<'v>>,
        dir: Option<Value<'v>>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> starlark::Result<TiltObject> {
        let f = "custom_build";
        validate_ref(f, "ref", r#ref)?;
        let _ = (command_bat_val, command_bat);
        let argv = self::command(f, "command", Some(command))?;
        if argv.is_empty() {
            return Err(arg_error(
                f,
                "command",
                "Argument 2 (command) can't be empty",
            ));
        }
        let deps = string_or_list(f, "deps", Some(deps))?;
        let tag = optional_str(f, "tag", tag)?;
        let outputs_to = optional_str(f, "outputs_image_ref_to", outputs_image_ref_to)?;
        if !tag.is_empty() && !outputs_to.is_empty() {
            return Err(builtin_error(
                f,
                "Cannot specify both tag= and outputs_image_ref_to=",
            ));
        }
        let image_deps = string_or_list(f, "image_deps", image_deps)?;
        for d in &image_deps {
            validate_ref(f, "image_deps", d)?;
        }
        let env = string_dict(f, "env", env)?;
        let ignore = string_or_list(f, "ignore", ignore)?;
        let entrypoint = self::command(f, "entrypoint", entrypoint)?;
        let container_args = match container_args.filter(|v| !v.is_none()) {
            Some(v) => Some(string_list(f, "container_args", Some(v))?),
            None => None,
        };
        let dir = optional_str(f, "dir", dir)?;
        let ev = ctx(eval)?;
        let live_update = live_update_arg(f, ev, live_update)?;
        let cwd = ev.state.borrow().cwd();
        let deps: Vec<PathBuf> = deps.iter().map(|d| abs_path(&cwd, d)).collect();
        check_paths_under(f, &live_update, &deps, "the custom_build deps")?;
        let image = ImageTarget {
            ignore: ignore.iter().map(|i| absolutize(&cwd, i)).collect(),
            live_update,
            custom: Some(CustomBuildSpec {
                command: argv,
                deps,
                tag,
                disable_push: optional_bool(f, "disable_push", disable_push)?.unwrap_or(false),
                skips_local_docker: optional_bool(f, "skips_local_docker", skips_local_docker)?
                    .unwrap_or(false),
                outputs_image_ref_to: (!outputs_to.is_empty()).then(|| abs_path(&cwd, &outputs_to)),
                env,
                dir: if dir.is_empty() {
                    cwd.clone()
                } else {
                    abs_path(&cwd, &dir)
                },
            }),
            match_in_env_vars: optional_bool(f, "match_in_env_vars", match_in_env_vars)?
                .unwrap_or(false),
            entrypoint,
            container_args,
            image_deps,
            ..ImageTarget::new(r#ref, Builder::Custom, cwd.clone())
        };
        add_image(ev, f, image)?;
        Ok(TiltObject::CustomBuild {
            image_ref: r#ref.to_owned(),
        })
    }

    fn initial_sync(eval: &mut Evaluator) -> starlark::Result<TiltObject> {
        new_step(eval, LiveUpdateStep::InitialSync {})
    }

    fn fall_back_on<'v>(
        paths: Value<'v>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> starlark::Result<TiltObject> {
        let list = string_or_list("fall_back_on", "paths", Some(paths))?;
        let cwd = ctx(eval)?.state.borrow().cwd();
        new_step(
            eval,
            LiveUpdateStep::FallBackOn(list.iter().map(|p| abs_path(&cwd, p)).collect()),
        )
    }

    fn sync(
        local_path: &str,
        remote_path: &str,
        eval: &mut Evaluator,
    ) -> starlark::Result<TiltObject> {
        if !remote_path.starts_with('/') {
            return Err(arg_error(
                "sync",
                "remote_path",
                format!("remote path {remote_path:?} must be absolute"),
            ));
        }
        let cwd = ctx(eval)?.state.borrow().cwd();
        new_step(
            eval,
            LiveUpdateStep::Sync {
                local: abs_path(&cwd, local_path),
                remote: remote_path.to_owned(),
            },
        )
    }

    fn run<'v>(
        cmd: Value<'v>,
        trigger: Option<Value<'v>>,
        #[starlark(default = false)] echo_off: bool,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> starlark::Result<TiltObject> {
        let argv = command("run", "cmd", Some(cmd))?;
        if argv.is_empty() {
            return Err(arg_error("run", "cmd", "cmd cannot be empty"));
        }
        let triggers = string_or_list("run", "trigger", trigger)?;
        let cwd = ctx(eval)?.state.borrow().cwd();
        new_step(
            eval,
            LiveUpdateStep::Run {
                cmd: argv,
                trigger: triggers.iter().map(|t| abs_path(&cwd, t)).collect(),
                echo_off,
            },
        )
    }

    fn restart_container(eval: &mut Evaluator) -> starlark::Result<TiltObject> {
        new_step(eval, LiveUpdateStep::RestartContainer {})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_order_rules() {
        let sync = LiveUpdateStep::Sync {
            local: "/a".into(),
            remote: "/b".into(),
        };
        let run = LiveUpdateStep::Run {
            cmd: vec!["x".into()],
            trigger: vec![],
            echo_off: false,
        };
        assert!(
            check_step_order(
                "f",
                &[
                    sync.clone(),
                    run.clone(),
                    LiveUpdateStep::RestartContainer {}
                ]
            )
            .is_ok()
        );
        let err = check_step_order("f", &[run.clone(), sync.clone()]).unwrap_err();
        assert!(
            err.to_string()
                .contains("all sync steps must precede all run steps")
        );
        let err = check_step_order("f", &[LiveUpdateStep::RestartContainer {}, sync]).unwrap_err();
        assert!(
            err.to_string()
                .contains("restart container is only valid as the last step")
        );
    }
}
