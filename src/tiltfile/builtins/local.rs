//! Local work and its helpers: `local_resource` (and the deprecated `test`), `probe` with its
//! actions, `link`, `port_forward`.

use starlark::environment::GlobalsBuilder;
use starlark::eval::Evaluator;
use starlark::starlark_module;
use starlark::values::none::NoneType;
use starlark::values::{Value, ValueLike};

use super::common::{labels_arg, links_arg, normalize_url, resource_deps_arg, validate_name};
use super::settings::trigger_mode_arg;
use crate::model::{LocalSpec, PortForward, Probe, ProbeAction};
use crate::tiltfile::eval::ctx;
use crate::tiltfile::ignore_patterns::absolutize;
use crate::tiltfile::state::LocalDecl;
use crate::tiltfile::values::{
    TiltObject, abs_path, arg_error, builtin_error, command, string_dict, string_list,
    string_or_list,
};

pub fn register(b: &mut GlobalsBuilder) {
    local_builtins(b);
}

/// The arguments of `local_resource`, gathered for validation.
struct LocalResourceArgs<'v> {
    name: &'v str,
    cmd: Option<Value<'v>>,
    deps: Option<Value<'v>>,
    trigger_mode: Option<Value<'v>>,
    resource_deps: Option<Value<'v>>,
    ignore: Option<Value<'v>>,
    auto_init: bool,
    serve_cmd: Option<Value<'v>>,
    allow_parallel: bool,
    links: Option<Value<'v>>,
    labels: Option<Value<'v>>,
    env: Option<Value<'v>>,
    serve_env: Option<Value<'v>>,
    readiness_probe: Option<Value<'v>>,
    dir: Option<&'v str>,
    serve_dir: Option<&'v str>,
}

fn declare_local_resource(
    function: &str,
    a: LocalResourceArgs,
    eval: &mut Evaluator,
) -> starlark::Result<NoneType> {
    validate_name(function, a.name)?;
    let cmd = command(function, "cmd", a.cmd)?;
    let serve_cmd = command(function, "serve_cmd", a.serve_cmd)?;
    if cmd.is_empty() && serve_cmd.is_empty() {
        return Err(builtin_error(
            function,
            "local_resource must have a cmd and/or a serve_cmd, but both were empty",
        ));
    }
    if cmd.is_empty() && a.dir.is_some_and(|d| !d.is_empty()) {
        return Err(arg_error(function, "dir", "dir is only valid with a cmd"));
    }
    if serve_cmd.is_empty() && a.serve_dir.is_some_and(|d| !d.is_empty()) {
        return Err(arg_error(
            function,
            "serve_dir",
            "serve_dir is only valid with a serve_cmd",
        ));
    }
    let trigger_mode = trigger_mode_arg(function, a.trigger_mode)?;
    let resource_deps = resource_deps_arg(function, a.resource_deps)?;
    let links = links_arg(function, a.links)?;
    let labels = labels_arg(function, a.labels)?;
    let env = string_dict(function, "env", a.env)?;
    let serve_env = string_dict(function, "serve_env", a.serve_env)?;
    let probe = match a.readiness_probe.filter(|p| !p.is_none()) {
        None => None,
        Some(p) => match p.downcast_ref::<TiltObject>() {
            Some(TiltObject::Probe(probe)) => Some(probe.clone()),
            _ => {
                return Err(arg_error(
                    function,
                    "readiness_probe",
                    format!("got {}, want Probe", p.get_type()),
                ));
            }
        },
    };
    let deps = string_or_list(function, "deps", a.deps)?;
    let ignores = string_or_list(function, "ignore", a.ignore)?;
    if ignores.iter().any(|i| i.contains('\n')) {
        return Err(arg_error(
            function,
            "ignore",
            "ignore patterns may not contain newlines",
        ));
    }

    let ev = ctx(eval)?;
    let mut state = ev.state.borrow_mut();
    let cwd = state.cwd();
    if let Some((_, kind)) = state
        .declared_names()
        .into_iter()
        .find(|(n, _)| *n == a.name)
    {
        return Err(starlark::Error::new_other(anyhow::anyhow!(
            "{kind} named {:?} already exists",
            a.name
        )));
    }
    let probe = match probe {
        Some(_) if serve_cmd.is_empty() => {
            state.warn(format!(
                "Ignoring readiness probe for local resource {:?} (no serve_cmd was defined)",
                a.name
            ));
            None
        }
        other => other,
    };
    // A resource with only a serve_cmd never blocks other updates.
    let allow_parallel = a.allow_parallel || cmd.is_empty();
    let resolve_dir = |d: Option<&str>| {
        d.filter(|d| !d.is_empty())
            .map_or(cwd.clone(), |d| abs_path(&cwd, d))
    };
    let spec = LocalSpec {
        cmd,
        serve_cmd: serve_cmd.clone(),
        dir: resolve_dir(a.dir),
        serve_dir: resolve_dir(a.serve_dir),
        deps: deps.iter().map(|d| abs_path(&cwd, d)).collect(),
        ignore: ignores.iter().map(|i| absolutize(&cwd, i)).collect(),
        env,
        serve_env,
        allow_parallel,
        readiness_probe: probe,
    };
    state.locals.push(LocalDecl {
        name: a.name.to_owned(),
        spec,
        trigger_mode,
        auto_init: a.auto_init,
        resource_deps,
        labels,
        links,
    });
    Ok(NoneType)
}

#[starlark_module]
fn local_builtins(builder: &mut GlobalsBuilder) {
    fn local_resource<'v>(
        name: &'v str,
        cmd: Option<Value<'v>>,
        deps: Option<Value<'v>>,
        trigger_mode: Option<Value<'v>>,
        resource_deps: Option<Value<'v>>,
        ignore: Option<Value<'v>>,
        #[starlark(default = true)] auto_init: bool,
        serve_cmd: Option<Value<'v>>,
        cmd_bat: Option<Value<'v>>,
        serve_cmd_bat: Option<Value<'v>>,
        #[starlark(default = false)] allow_parallel: bool,
        links: Option<Value<'v>>,
        labels: Option<Value<'v>>,
        env: Option<Value<'v>>,
        serve_env: Option<Value<'v>>,
        readiness_probe: Option<Value<'v>>,
        dir: Option<&'v str>,
        serve_dir: Option<&'v str>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> starlark::Result<NoneType> {
        let _ = (cmd_bat, serve_cmd_bat);
        declare_local_resource(
            "local_resource",
            LocalResourceArgs {
                name,
                cmd,
                deps,
                trigger_mode,
                resource_deps,
                ignore,
                auto_init,
                serve_cmd,
                allow_parallel,
                links,
                labels,
                env,
                serve_env,
                readiness_probe,
                dir,
                serve_dir,
            },
            eval,
        )
    }

    /// Deprecated alias of `local_resource` that defaults `allow_parallel=True`.
    fn test<'v>(
        name: &'v str,
        cmd: Option<Value<'v>>,
        deps: Option<Value<'v>>,
        trigger_mode: Option<Value<'v>>,
        resource_deps: Option<Value<'v>>,
        ignore: Option<Value<'v>>,
        #[starlark(default = true)] auto_init: bool,
        serve_cmd: Option<Value<'v>>,
        cmd_bat: Option<Value<'v>>,
        serve_cmd_bat: Option<Value<'v>>,
        #[starlark(default = true)] allow_parallel: bool,
        links: Option<Value<'v>>,
        labels: Option<Value<'v>>,
        env: Option<Value<'v>>,
        serve_env: Option<Value<'v>>,
        readiness_probe: Option<Value<'v>>,
        dir: Option<&'v str>,
        serve_dir: Option<&'v str>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> starlark::Result<NoneType> {
        let _ = (cmd_bat, serve_cmd_bat);
        ctx(eval)?.state.borrow_mut().warn("test() is deprecated and will be removed in a future release. Use local_resource() instead.");
        declare_local_resource(
            "test",
            LocalResourceArgs {
                name,
                cmd,
                deps,
                trigger_mode,
                resource_deps,
                ignore,
                auto_init,
                serve_cmd,
                allow_parallel,
                links,
                labels,
                env,
                serve_env,
                readiness_probe,
                dir,
                serve_dir,
            },
            eval,
        )
    }

    fn probe<'v>(
        #[starlark(default = 0)] initial_delay_secs: i32,
        #[starlark(default = 1)] timeout_secs: i32,
        #[starlark(default = 10)] period_secs: i32,
        #[starlark(default = 1)] success_threshold: i32,
        #[starlark(default = 3)] failure_threshold: i32,
        exec: Option<Value<'v>>,
        http_get: Option<Value<'v>>,
        tcp_socket: Option<Value<'v>>,
    ) -> starlark::Result<TiltObject> {
        let f = "probe";
        let mut actions = Vec::new();
        for (param, v) in [
            ("exec", exec),
            ("http_get", http_get),
            ("tcp_socket", tcp_socket),
        ] {
            if let Some(v) = v.filter(|v| !v.is_none()) {
                match v.downcast_ref::<TiltObject>() {
                    Some(TiltObject::Action(a)) => actions.push(a.clone()),
                    _ => {
                        return Err(arg_error(
                            f,
                            param,
                            format!("got {}, want an action", v.get_type()),
                        ));
                    }
                }
            }
        }
        let action = match actions.len() {
            1 => actions.remove(0),
            0 => {
                return Err(builtin_error(
                    f,
                    "exactly one of exec, http_get, or tcp_socket must be specified",
                ));
            }
            _ => {
                return Err(builtin_error(
                    f,
                    "exactly one of exec, http_get, or tcp_socket must be specified",
                ));
            }
        };
        let non_negative = |param: &str, v: i32| -> starlark::Result<u64> {
            u64::try_from(v).map_err(|_| arg_error(f, param, format!("must be >= 0, got {v}")))
        };
        Ok(TiltObject::Probe(Probe {
            initial_delay_secs: non_negative("initial_delay_secs", initial_delay_secs)?,
            timeout_secs: non_negative("timeout_secs", timeout_secs)?.max(1),
            period_secs: non_negative("period_secs", period_secs)?.max(1),
            success_threshold: non_negative("success_threshold", success_threshold)?.max(1) as u32,
            failure_threshold: non_negative("failure_threshold", failure_threshold)?.max(1) as u32,
            action,
        }))
    }

    fn exec_action<'v>(command: Value<'v>) -> starlark::Result<TiltObject> {
        let command = string_list("exec_action", "command", Some(command))?;
        if command.is_empty() {
            return Err(arg_error(
                "exec_action",
                "command",
                "command cannot be empty",
            ));
        }
        Ok(TiltObject::Action(ProbeAction::Exec { command }))
    }

    fn http_get_action(
        port: i32,
        #[starlark(default = "localhost")] host: &str,
        #[starlark(default = "http")] scheme: &str,
        #[starlark(default = "")] path: &str,
    ) -> starlark::Result<TiltObject> {
        let port = u16::try_from(port).map_err(|_| {
            arg_error(
                "http_get_action",
                "port",
                format!("port must be 0-65535, got {port}"),
            )
        })?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(arg_error(
                "http_get_action",
                "scheme",
                format!("must be http or https, got {scheme:?}"),
            ));
        }
        Ok(TiltObject::Action(ProbeAction::HttpGet {
            host: if host.is_empty() {
                "localhost".into()
            } else {
                host.to_owned()
            },
            port,
            scheme,
            path: path.to_owned(),
        }))
    }

    fn tcp_socket_action(
        port: i32,
        #[starlark(default = "localhost")] host: &str,
    ) -> starlark::Result<TiltObject> {
        let port = u16::try_from(port).map_err(|_| {
            arg_error(
                "tcp_socket_action",
                "port",
                format!("port must be 0-65535, got {port}"),
            )
        })?;
        Ok(TiltObject::Action(ProbeAction::TcpSocket {
            host: if host.is_empty() {
                "localhost".into()
            } else {
                host.to_owned()
            },
            port,
        }))
    }

    fn link(url: &str, #[starlark(default = "")] name: &str) -> starlark::Result<TiltObject> {
        if url.is_empty() {
            return Err(arg_error("link", "url", "url empty"));
        }
        Ok(TiltObject::Link {
            url: normalize_url(url),
            name: name.to_owned(),
        })
    }

    fn port_forward(
        local_port: i32,
        container_port: Option<i32>,
        name: Option<&str>,
        link_path: Option<&str>,
        host: Option<&str>,
    ) -> starlark::Result<TiltObject> {
        let port = |param: &str, p: i32| -> starlark::Result<u16> {
            u16::try_from(p).map_err(|_| {
                arg_error(
                    "port_forward",
                    param,
                    format!("ports must be 0-65535, got {p}"),
                )
            })
        };
        Ok(TiltObject::PortForward(PortForward {
            local_port: port("local_port", local_port)?,
            container_port: match container_port {
                Some(0) | None => None,
                Some(c) => Some(port("container_port", c)?),
            },
            host: host.unwrap_or_default().to_owned(),
            name: name.unwrap_or_default().to_owned(),
            link_path: link_path.unwrap_or_default().to_owned(),
        }))
    }
}
