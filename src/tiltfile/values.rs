//! Starlark value types Tilt's builtins return (`blob`, live-update steps, links, port
//! forwards, probes, trigger modes, ...) and helpers that unpack builtin arguments the way
//! Tilt's Go code does (string-or-list, str-or-Blob, commands, paths).

use std::fmt;
use std::path::{Path, PathBuf};

use allocative::Allocative;
use starlark::values::dict::DictRef;
use starlark::values::list::ListRef;
use starlark::values::tuple::TupleRef;
use starlark::values::{
    Heap, NoSerialize, ProvidesStaticType, StarlarkPagable, StarlarkValue, Value, ValueLike,
};
use starlark::{StarlarkPagablePanic, starlark_module, starlark_simple_value};
use starlark_derive::starlark_value;

use crate::model::{LiveUpdateStep, PortForward, Probe, ProbeAction, TriggerMode};

/// Content returned by `local()`, `read_file()`, `helm()`, ...: prints as its text.
#[derive(
    Debug, Clone, PartialEq, Eq, ProvidesStaticType, NoSerialize, StarlarkPagable, Allocative,
)]
pub struct Blob(pub String);
starlark_simple_value!(Blob);

impl fmt::Display for Blob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[starlark_value(type = "blob")]
impl<'v> StarlarkValue<'v> for Blob {
    fn to_bool(&self) -> bool {
        !self.0.is_empty()
    }

    fn equals(&self, other: Value<'v>) -> starlark::Result<bool> {
        Ok(match other.downcast_ref::<Blob>() {
            Some(b) => b.0 == self.0,
            None => other.unpack_str() == Some(self.0.as_str()),
        })
    }

    fn add(&self, rhs: Value<'v>, heap: Heap<'v>) -> Option<starlark::Result<Value<'v>>> {
        let rhs = rhs
            .downcast_ref::<Blob>()
            .map(|b| b.0.as_str())
            .or_else(|| rhs.unpack_str())?;
        Some(Ok(heap.alloc(Blob(format!("{}{}", self.0, rhs)))))
    }
}

/// The Tilt-specific values builtins hand back to Starlark code.
#[derive(
    Debug, Clone, PartialEq, ProvidesStaticType, NoSerialize, StarlarkPagablePanic, Allocative,
)]
pub enum TiltObject {
    /// A live-update step; `id` tracks whether it was ever used in a `live_update=`.
    Step {
        id: usize,
        #[allocative(skip)]
        step: LiveUpdateStep,
    },
    Link {
        url: String,
        name: String,
    },
    PortForward(#[allocative(skip)] PortForward),
    Probe(#[allocative(skip)] Probe),
    Action(#[allocative(skip)] ProbeAction),
    TriggerMode(#[allocative(skip)] TriggerMode),
    CustomBuild {
        image_ref: String,
    },
    /// A value of `local_git_repo(path)`.
    GitRepo {
        path: String,
    },
}
starlark_simple_value!(TiltObject);

impl fmt::Display for TiltObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TiltObject::Step { step, .. } => match step {
                LiveUpdateStep::InitialSync {} => write!(f, "initial_sync()"),
                LiveUpdateStep::FallBackOn(p) => write!(f, "fall_back_on({p:?})"),
                LiveUpdateStep::Sync { local, remote } => {
                    write!(f, "sync({:?}, {:?})", local.display().to_string(), remote)
                }
                LiveUpdateStep::Run { cmd, .. } => write!(f, "run({cmd:?})"),
                LiveUpdateStep::RestartContainer {} => write!(f, "restart_container()"),
            },
            TiltObject::Link { url, name } => write!(f, "link({url:?}, {name:?})"),
            TiltObject::PortForward(pf) => match pf.container_port {
                Some(c) => write!(f, "{}:{}", pf.local_port, c),
                None => write!(f, "{}", pf.local_port),
            },
            TiltObject::Probe(_) => write!(f, "probe()"),
            TiltObject::Action(a) => match a {
                ProbeAction::Exec { command } => write!(f, "exec_action({command:?})"),
                ProbeAction::HttpGet { port, .. } => write!(f, "http_get_action({port})"),
                ProbeAction::TcpSocket { port, .. } => write!(f, "tcp_socket_action({port})"),
            },
            TiltObject::TriggerMode(TriggerMode::Auto) => write!(f, "TRIGGER_MODE_AUTO"),
            TiltObject::TriggerMode(TriggerMode::Manual) => write!(f, "TRIGGER_MODE_MANUAL"),
            TiltObject::CustomBuild { image_ref } => write!(f, "custom_build({image_ref:?})"),
            TiltObject::GitRepo { path } => write!(f, "local_git_repo({path:?})"),
        }
    }
}

#[starlark_value(type = "tilt_value")]
impl<'v> StarlarkValue<'v> for TiltObject {
    fn get_methods() -> Option<&'static starlark::environment::Methods> {
        static RES: starlark::environment::MethodsStatic =
            starlark::environment::MethodsStatic::new("tilt_value", tilt_object_methods);
        Some(RES.methods())
    }

    fn equals(&self, other: Value<'v>) -> starlark::Result<bool> {
        Ok(other.downcast_ref::<TiltObject>() == Some(self))
    }
}

#[starlark_module]
fn tilt_object_methods(builder: &mut starlark::environment::MethodsBuilder) {
    /// `local_git_repo(...).paths(p)`: the absolute path of `p` inside the repository.
    fn paths<'v>(this: Value<'v>, path: &str) -> starlark::Result<String> {
        match this.downcast_ref::<TiltObject>() {
            Some(TiltObject::GitRepo { path: root }) => {
                Ok(Path::new(root).join(path).to_string_lossy().into_owned())
            }
            _ => Err(starlark::Error::new_other(anyhow::anyhow!(
                "paths() is only defined on local_git_repo values"
            ))),
        }
    }
}

/// An argument error: names the builtin and the parameter, like Tilt's `for parameter "x"`.
pub fn arg_error(function: &str, param: &str, msg: impl fmt::Display) -> starlark::Error {
    starlark::Error::new_other(anyhow::anyhow!(
        "{function}: for parameter \"{param}\": {msg}"
    ))
}

/// A plain builtin error, prefixed with the builtin's name.
pub fn builtin_error(function: &str, msg: impl fmt::Display) -> starlark::Error {
    starlark::Error::new_other(anyhow::anyhow!("{function}: {msg}"))
}

/// A str or a Blob, as text.
pub fn str_or_blob(v: Value) -> Option<String> {
    v.unpack_str()
        .map(str::to_owned)
        .or_else(|| v.downcast_ref::<Blob>().map(|b| b.0.clone()))
}

/// Items of a list or tuple, or None when `v` is neither.
pub fn sequence_items<'v>(v: Value<'v>) -> Option<Vec<Value<'v>>> {
    if let Some(l) = ListRef::from_value(v) {
        return Some(l.content().to_vec());
    }
    TupleRef::from_value(v).map(|t| t.content().to_vec())
}

/// Tilt's `StringOrStringList`: None, one string (or Blob) or a sequence of them.
pub fn string_or_list(
    function: &str,
    param: &str,
    v: Option<Value>,
) -> starlark::Result<Vec<String>> {
    let Some(v) = v else { return Ok(Vec::new()) };
    if v.is_none() {
        return Ok(Vec::new());
    }
    if let Some(s) = str_or_blob(v) {
        return Ok(vec![s]);
    }
    let items = sequence_items(v).ok_or_else(|| {
        arg_error(
            function,
            param,
            format!(
                "value should be a string or List or Tuple of strings, but is of type {}",
                v.get_type()
            ),
        )
    })?;
    items
        .into_iter()
        .map(|item| {
            str_or_blob(item).ok_or_else(|| {
                arg_error(
                    function,
                    param,
                    format!(
                        "value should be a string or List or Tuple of strings, but is of type {}",
                        item.get_type()
                    ),
                )
            })
        })
        .collect()
}

/// An optional string (or Blob) argument; None and absent are empty.
pub fn optional_str(function: &str, param: &str, v: Option<Value>) -> starlark::Result<String> {
    match v.filter(|v| !v.is_none()) {
        None => Ok(String::new()),
        Some(v) => str_or_blob(v).ok_or_else(|| {
            arg_error(
                function,
                param,
                format!("got {}, want string", v.get_type()),
            )
        }),
    }
}

/// An optional bool argument; None and absent are `None`.
pub fn optional_bool(
    function: &str,
    param: &str,
    v: Option<Value>,
) -> starlark::Result<Option<bool>> {
    match v.filter(|v| !v.is_none()) {
        None => Ok(None),
        Some(v) => v
            .unpack_bool()
            .map(Some)
            .ok_or_else(|| arg_error(function, param, format!("got {}, want bool", v.get_type()))),
    }
}

/// A list of strings only (no lone string).
pub fn string_list(function: &str, param: &str, v: Option<Value>) -> starlark::Result<Vec<String>> {
    let Some(v) = v else { return Ok(Vec::new()) };
    if v.is_none() {
        return Ok(Vec::new());
    }
    if v.unpack_str().is_some() {
        return Err(arg_error(
            function,
            param,
            format!("expected list of strings, got string {}", v.to_repr()),
        ));
    }
    string_or_list(function, param, Some(v))
}

/// A dict of str to str.
pub fn string_dict(
    function: &str,
    param: &str,
    v: Option<Value>,
) -> starlark::Result<std::collections::BTreeMap<String, String>> {
    let mut out = std::collections::BTreeMap::new();
    let Some(v) = v else { return Ok(out) };
    if v.is_none() {
        return Ok(out);
    }
    let dict = DictRef::from_value(v).ok_or_else(|| {
        arg_error(
            function,
            param,
            format!("expected dict, got {}", v.get_type()),
        )
    })?;
    for (k, val) in dict.iter() {
        let key = k.unpack_str().ok_or_else(|| {
            arg_error(
                function,
                param,
                format!("key {} is not a string", k.to_repr()),
            )
        })?;
        let value = str_or_blob(val)
            .or_else(|| val.unpack_i32().map(|i| i.to_string()))
            .or_else(|| {
                val.unpack_bool()
                    .map(|b| if b { "True" } else { "False" }.to_string())
            })
            .ok_or_else(|| {
                arg_error(
                    function,
                    param,
                    format!("value for key {key:?} is not a string"),
                )
            })?;
        out.insert(key.to_owned(), value);
    }
    Ok(out)
}

/// Tilt's command value: a string becomes `["sh", "-c", trimmed]`, a list is argv, empty is none.
pub fn command(function: &str, param: &str, v: Option<Value>) -> starlark::Result<Vec<String>> {
    let Some(v) = v else { return Ok(Vec::new()) };
    if v.is_none() {
        return Ok(Vec::new());
    }
    if let Some(s) = str_or_blob(v) {
        let trimmed = s.trim();
        if trimmed.is_empty() {
            return Ok(Vec::new());
        }
        return Ok(vec!["sh".into(), "-c".into(), trimmed.to_owned()]);
    }
    let items = sequence_items(v).ok_or_else(|| {
        arg_error(
            function,
            param,
            format!(
                "must be a string or a sequence of strings; found a {}",
                v.get_type()
            ),
        )
    })?;
    items
        .into_iter()
        .map(|item| {
            str_or_blob(item).ok_or_else(|| {
                arg_error(
                    function,
                    param,
                    format!(
                        "must be a string or a sequence of strings; found a list containing a {}",
                        item.get_type()
                    ),
                )
            })
        })
        .collect()
}

/// Resolves `path` against `base` (the directory of the Tiltfile being executed), lexically.
pub fn abs_path(base: &Path, path: &str) -> PathBuf {
    let p = Path::new(path);
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    };
    clean_path(&joined)
}

/// Lexical clean like Go's `filepath.Clean`: drops `.` and resolves `..` without touching disk.
pub fn clean_path(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() && !out.has_root() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}
