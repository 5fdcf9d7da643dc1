//! Files and commands at load time: `read_file`, `watch_file`, `listdir`, `blob`, `local`,
//! `local_git_repo`. Every file read is recorded as a config file.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use starlark::environment::GlobalsBuilder;
use starlark::eval::Evaluator;
use starlark::starlark_module;
use starlark::values::Value;
use starlark::values::list::AllocList;
use starlark::values::none::NoneType;

use super::os::env_overlay_snapshot;
use crate::tiltfile::eval::ctx;
use crate::tiltfile::file_reads::CommandRunning;
use crate::tiltfile::values::{
    Blob, TiltObject, abs_path, arg_error, builtin_error, command, str_or_blob, string_dict,
};

pub fn register(b: &mut GlobalsBuilder) {
    file_builtins(b);
}

/// Reads `path` (relative to the executing Tiltfile) and records it; None when it is missing.
pub fn read_recorded(eval: &Evaluator, path: &str) -> starlark::Result<Option<String>> {
    let ev = ctx(eval)?;
    let abs = abs_path(&ev.state.borrow().cwd(), path);
    ev.state.borrow_mut().record_file(&abs);
    match std::fs::read(&abs) {
        Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(builtin_error(
            "read_file",
            format!("error reading {}: {e}", abs.display()),
        )),
    }
}

fn walk_files(dir: &Path, recursive: bool, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.filter_map(Result::ok).collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let file_type = entry.file_type()?;
        if file_type.is_dir() {
            if recursive {
                walk_files(&path, true, out)?;
            }
        } else {
            out.push(path);
        }
    }
    Ok(())
}

/// Runs a load-time command the way Tilt's `local()` does and returns its stdout.
pub struct LocalCommand<'a> {
    pub argv: &'a [String],
    pub dir: &'a Path,
    pub env: &'a std::collections::BTreeMap<String, String>,
    pub stdin: Option<&'a str>,
}

impl LocalCommand<'_> {
    pub fn run(&self) -> Result<(String, String), String> {
        let display = display_command(self.argv);
        let Some((program, args)) = self.argv.split_first() else {
            return Err("empty command".to_owned());
        };
        let mut cmd = Command::new(program);
        cmd.args(args)
            .current_dir(self.dir)
            .env_clear()
            .envs(env_overlay_snapshot())
            .envs(self.env)
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let _files_may_change = CommandRunning::begin();
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("command {display:?} failed.\nerror: {e}"))?;
        if let (Some(input), Some(mut pipe)) = (self.stdin, child.stdin.take()) {
            let input = input.to_owned();
            std::thread::spawn(move || {
                let _ = pipe.write_all(input.as_bytes());
            });
        }
        let output = child
            .wait_with_output()
            .map_err(|e| format!("command {display:?} failed.\nerror: {e}"))?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        if !output.status.success() {
            let status = match output.status.code() {
                Some(code) => format!("exit status {code}"),
                None => "killed by a signal".to_owned(),
            };
            let mut msg = format!("command {display:?} failed.\nerror: {status}");
            if !stdout.trim().is_empty() {
                msg.push_str(&format!("\nstdout:\n{}", stdout.trim_end()));
            }
            if !stderr.trim().is_empty() {
                msg.push_str(&format!("\nstderr:\n{}", stderr.trim_end()));
            }
            return Err(msg);
        }
        Ok((stdout, stderr))
    }
}

/// The command as a user wrote it: the script of `sh -c`, or the argv joined.
pub fn display_command(argv: &[String]) -> String {
    match argv {
        [sh, c, script] if sh == "sh" && c == "-c" => script.clone(),
        _ => argv.join(" "),
    }
}

#[starlark_module]
fn file_builtins(builder: &mut GlobalsBuilder) {
    fn read_file<'v>(
        paths: &str,
        default: Option<Value<'v>>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> starlark::Result<Value<'v>> {
        match read_recorded(eval, paths)? {
            Some(text) => Ok(eval.heap().alloc(Blob(text))),
            None => match default.filter(|d| !d.is_none()) {
                Some(d) => Ok(eval
                    .heap()
                    .alloc(Blob(str_or_blob(d).unwrap_or_else(|| d.to_str())))),
                None => Err(builtin_error(
                    "read_file",
                    format!("error reading {paths}: no such file or directory"),
                )),
            },
        }
    }

    fn watch_file(paths: &str, eval: &mut Evaluator) -> starlark::Result<NoneType> {
        let ev = ctx(eval)?;
        let abs = abs_path(&ev.state.borrow().cwd(), paths);
        ev.state.borrow_mut().record_file(&abs);
        Ok(NoneType)
    }

    fn listdir<'v>(
        dir: &str,
        #[starlark(default = false)] recursive: bool,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> starlark::Result<Value<'v>> {
        let ev = ctx(eval)?;
        let abs = abs_path(&ev.state.borrow().cwd(), dir);
        ev.state.borrow_mut().record_file(&abs);
        let mut files = Vec::new();
        walk_files(&abs, recursive, &mut files)
            .map_err(|e| builtin_error("listdir", format!("{}: {e}", abs.display())))?;
        let heap = eval.heap();
        Ok(heap.alloc(AllocList(
            files
                .iter()
                .map(|p| heap.alloc(p.to_string_lossy().as_ref())),
        )))
    }

    fn blob(input: &str) -> starlark::Result<Blob> {
        Ok(Blob(input.to_owned()))
    }

    fn local<'v>(
        command: Value<'v>,
        #[starlark(default = false)] quiet: bool,
        command_bat: Option<Value<'v>>,
        #[starlark(default = false)] echo_off: bool,
        env: Option<Value<'v>>,
        dir: Option<&str>,
        stdin: Option<Value<'v>>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> starlark::Result<Blob> {
        let f = "local";
        let argv = self::command(f, "command", Some(command))?;
        let _ = command_bat;
        if argv.is_empty() {
            return Err(arg_error(f, "command", "empty command"));
        }
        let env = string_dict(f, "env", env)?;
        let stdin = match stdin.filter(|s| !s.is_none()) {
            Some(s) => Some(str_or_blob(s).ok_or_else(|| {
                arg_error(
                    f,
                    "stdin",
                    format!("expected string or blob, got {}", s.get_type()),
                )
            })?),
            None => None,
        };
        let ev = ctx(eval)?;
        let cwd = ev.state.borrow().cwd();
        let dir = dir
            .filter(|d| !d.is_empty())
            .map_or(cwd.clone(), |d| abs_path(&cwd, d));
        let display = display_command(&argv);
        if !echo_off {
            ev.state.borrow_mut().log.push(format!("local: {display}"));
        }
        let (stdout, _stderr) = LocalCommand {
            argv: &argv,
            dir: &dir,
            env: &env,
            stdin: stdin.as_deref(),
        }
        .run()
        .map_err(|e| builtin_error(f, e))?;
        if !quiet {
            let mut state = ev.state.borrow_mut();
            for line in stdout.lines() {
                state.log.push(format!(" → {line}"));
            }
        }
        Ok(Blob(stdout))
    }

    fn local_git_repo(path: &str, eval: &mut Evaluator) -> starlark::Result<TiltObject> {
        let ev = ctx(eval)?;
        let abs = abs_path(&ev.state.borrow().cwd(), path);
        if !abs.join(".git").exists() {
            return Err(builtin_error(
                "local_git_repo",
                format!("{} is not a git repository", abs.display()),
            ));
        }
        Ok(TiltObject::GitRepo {
            path: abs.to_string_lossy().into_owned(),
        })
    }
}
