//! `os`, `os.path`, `sys` and `shlex`. The environment seen by `os.getenv`/`os.environ` and by
//! load-time commands is an overlay of the process environment that `os.putenv`/`unsetenv`
//! change; it lives per evaluation thread.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use allocative::Allocative;
use starlark::environment::{GlobalsBuilder, Methods, MethodsBuilder, MethodsStatic};
use starlark::eval::Evaluator;
use starlark::values::list::AllocList;
use starlark::values::none::NoneType;
use starlark::values::tuple::AllocTuple;
use starlark::values::{Heap, NoSerialize, ProvidesStaticType, StarlarkValue, Value};
use starlark::{StarlarkPagablePanic, starlark_module, starlark_simple_value};
use starlark_derive::starlark_value;

use crate::tiltfile::eval::ctx;
use crate::tiltfile::values::{abs_path, builtin_error, clean_path, str_or_blob};

thread_local! {
    static ENV: RefCell<Option<BTreeMap<String, String>>> = const { RefCell::new(None) };
}

/// Resets the environment overlay to the process environment (once per evaluation).
pub struct EnvOverlay;

impl EnvOverlay {
    pub fn reset() {
        ENV.with(|e| *e.borrow_mut() = Some(std::env::vars().collect()));
    }
}

fn with_env<R>(f: impl FnOnce(&mut BTreeMap<String, String>) -> R) -> R {
    ENV.with(|e| {
        let mut slot = e.borrow_mut();
        let env = slot.get_or_insert_with(|| std::env::vars().collect());
        f(env)
    })
}

/// How the overlay differs from the process environment: set or changed (`Some`) and
/// removed (`None`) variables.
pub fn env_overlay_changes() -> BTreeMap<String, Option<String>> {
    let process: BTreeMap<String, String> = std::env::vars().collect();
    with_env(|overlay| {
        let mut changes: BTreeMap<String, Option<String>> = overlay
            .iter()
            .filter(|(k, v)| process.get(*k) != Some(*v))
            .map(|(k, v)| (k.clone(), Some(v.clone())))
            .collect();
        changes.extend(
            process
                .keys()
                .filter(|k| !overlay.contains_key(*k))
                .map(|k| (k.clone(), None)),
        );
        changes
    })
}

/// The environment load-time commands run with.
pub fn env_overlay_snapshot() -> BTreeMap<String, String> {
    with_env(|e| e.clone())
}

/// `os.environ`: a mutable mapping over the environment overlay.
#[derive(Debug, ProvidesStaticType, NoSerialize, StarlarkPagablePanic, Allocative)]
pub struct Environ;
starlark_simple_value!(Environ);

impl fmt::Display for Environ {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("environ({...})")
    }
}

fn key_of(v: Value) -> starlark::Result<String> {
    v.unpack_str().map(str::to_owned).ok_or_else(|| {
        builtin_error(
            "os.environ",
            format!("keys must be strings, got {}", v.get_type()),
        )
    })
}

#[starlark_value(type = "environ")]
impl<'v> StarlarkValue<'v> for Environ {
    fn get_methods() -> Option<&'static Methods> {
        static RES: MethodsStatic = MethodsStatic::new("environ", environ_methods);
        Some(RES.methods())
    }

    fn at(&self, index: Value<'v>, heap: Heap<'v>) -> starlark::Result<Value<'v>> {
        let key = key_of(index)?;
        match with_env(|e| e.get(&key).cloned()) {
            Some(v) => Ok(heap.alloc(v)),
            None => Err(builtin_error(
                "os.environ",
                format!("key {key:?} not in environment"),
            )),
        }
    }

    fn set_at(&self, index: Value<'v>, new_value: Value<'v>) -> starlark::Result<()> {
        let key = key_of(index)?;
        let value = str_or_blob(new_value).ok_or_else(|| {
            builtin_error(
                "os.environ",
                format!("values must be strings, got {}", new_value.get_type()),
            )
        })?;
        with_env(|e| e.insert(key, value));
        Ok(())
    }

    fn is_in(&self, other: Value<'v>) -> starlark::Result<bool> {
        let key = key_of(other)?;
        Ok(with_env(|e| e.contains_key(&key)))
    }

    fn length(&self) -> starlark::Result<i32> {
        Ok(with_env(|e| e.len()) as i32)
    }

    fn iterate_collect(&self, heap: Heap<'v>) -> starlark::Result<Vec<Value<'v>>> {
        Ok(with_env(|e| {
            e.keys().map(|k| heap.alloc(k.as_str())).collect()
        }))
    }
}

#[starlark_module]
fn environ_methods(builder: &mut MethodsBuilder) {
    fn get<'v>(
        this: Value<'v>,
        key: &str,
        default: Option<Value<'v>>,
        heap: Heap<'v>,
    ) -> starlark::Result<Value<'v>> {
        let _ = this;
        Ok(match with_env(|e| e.get(key).cloned()) {
            Some(v) => heap.alloc(v),
            None => default.unwrap_or_else(Value::new_none),
        })
    }

    fn keys<'v>(this: Value<'v>, heap: Heap<'v>) -> starlark::Result<Value<'v>> {
        let _ = this;
        let keys: Vec<String> = with_env(|e| e.keys().cloned().collect());
        Ok(heap.alloc(AllocList(keys)))
    }

    fn values<'v>(this: Value<'v>, heap: Heap<'v>) -> starlark::Result<Value<'v>> {
        let _ = this;
        let values: Vec<String> = with_env(|e| e.values().cloned().collect());
        Ok(heap.alloc(AllocList(values)))
    }

    fn items<'v>(this: Value<'v>, heap: Heap<'v>) -> starlark::Result<Value<'v>> {
        let _ = this;
        let items: Vec<(String, String)> =
            with_env(|e| e.iter().map(|(k, v)| (k.clone(), v.clone())).collect());
        Ok(heap.alloc(AllocList(
            items
                .into_iter()
                .map(|(k, v)| heap.alloc(AllocTuple([k, v]))),
        )))
    }

    fn pop<'v>(
        this: Value<'v>,
        key: &str,
        default: Option<Value<'v>>,
        heap: Heap<'v>,
    ) -> starlark::Result<Value<'v>> {
        let _ = this;
        match (with_env(|e| e.remove(key)), default) {
            (Some(v), _) => Ok(heap.alloc(v)),
            (None, Some(d)) => Ok(d),
            (None, None) => Err(builtin_error(
                "os.environ.pop",
                format!("key {key:?} not in environment"),
            )),
        }
    }

    fn setdefault<'v>(
        this: Value<'v>,
        key: &str,
        default: Option<&str>,
        heap: Heap<'v>,
    ) -> starlark::Result<Value<'v>> {
        let _ = this;
        let v = with_env(|e| {
            e.entry(key.to_owned())
                .or_insert_with(|| default.unwrap_or_default().to_owned())
                .clone()
        });
        Ok(heap.alloc(v))
    }

    fn update<'v>(this: Value<'v>, other: Value<'v>) -> starlark::Result<NoneType> {
        let _ = this;
        let entries =
            crate::tiltfile::values::string_dict("os.environ.update", "other", Some(other))?;
        with_env(|e| e.extend(entries));
        Ok(NoneType)
    }

    fn clear(this: Value) -> starlark::Result<NoneType> {
        let _ = this;
        with_env(|e| e.clear());
        Ok(NoneType)
    }
}

/// POSIX shell quoting: `it's` becomes `'it'"'"'s'`.
pub fn shell_quote(s: &str) -> String {
    if s.is_empty() {
        return "''".to_owned();
    }
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "@%+=:,./-_".contains(c))
    {
        return s.to_owned();
    }
    format!("'{}'", s.replace('\'', "'\"'\"'"))
}

pub fn register(b: &mut GlobalsBuilder) {
    b.namespace("os", |b| {
        os_builtins(b);
        b.set("name", "posix");
        b.set("environ", Environ);
        b.namespace("path", os_path_builtins);
    });
    b.namespace("shlex", shlex_builtins);
    b.namespace("sys", |b| {
        let argv: Vec<String> = std::env::args().collect();
        b.set("argv", argv);
        let exe = std::env::current_exe()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        b.set("executable", exe);
    });
}

#[starlark_module]
fn os_builtins(builder: &mut GlobalsBuilder) {
    fn getcwd(eval: &mut Evaluator) -> starlark::Result<String> {
        Ok(ctx(eval)?
            .state
            .borrow()
            .cwd()
            .to_string_lossy()
            .into_owned())
    }

    fn getenv<'v>(
        key: &str,
        default: Option<Value<'v>>,
        heap: Heap<'v>,
    ) -> starlark::Result<Value<'v>> {
        Ok(match with_env(|e| e.get(key).cloned()) {
            Some(v) => heap.alloc(v),
            None => default.unwrap_or_else(Value::new_none),
        })
    }

    fn putenv<'v>(key: &str, value: Value<'v>) -> starlark::Result<NoneType> {
        let value = str_or_blob(value).unwrap_or_else(|| value.to_str());
        with_env(|e| e.insert(key.to_owned(), value));
        Ok(NoneType)
    }

    fn unsetenv(key: &str) -> starlark::Result<NoneType> {
        with_env(|e| e.remove(key));
        Ok(NoneType)
    }
}

#[starlark_module]
fn os_path_builtins(builder: &mut GlobalsBuilder) {
    fn abspath(path: &str, eval: &mut Evaluator) -> starlark::Result<String> {
        Ok(abs_path(&ctx(eval)?.state.borrow().cwd(), path)
            .to_string_lossy()
            .into_owned())
    }

    fn relpath(
        targpath: &str,
        basepath: Option<&str>,
        eval: &mut Evaluator,
    ) -> starlark::Result<String> {
        let cwd = ctx(eval)?.state.borrow().cwd();
        let target = abs_path(&cwd, targpath);
        let base = abs_path(&cwd, basepath.unwrap_or(""));
        Ok(relative(&target, &base))
    }

    fn basename(path: &str) -> starlark::Result<String> {
        Ok(go_base(path))
    }

    fn dirname(path: &str) -> starlark::Result<String> {
        Ok(go_dir(path))
    }

    fn exists(path: &str, eval: &mut Evaluator) -> starlark::Result<bool> {
        let ev = ctx(eval)?;
        let abs = abs_path(&ev.state.borrow().cwd(), path);
        ev.state.borrow_mut().record_file(&abs);
        Ok(abs.exists())
    }

    fn join(
        path: &str,
        #[starlark(args)] paths: starlark::values::tuple::UnpackTuple<String>,
    ) -> starlark::Result<String> {
        let parts: Vec<&str> = std::iter::once(path)
            .chain(paths.items.iter().map(String::as_str))
            .filter(|p| !p.is_empty())
            .collect();
        if parts.is_empty() {
            return Ok(String::new());
        }
        Ok(go_clean(&parts.join("/")))
    }

    fn realpath(path: &str, eval: &mut Evaluator) -> starlark::Result<String> {
        let abs = abs_path(&ctx(eval)?.state.borrow().cwd(), path);
        Ok(std::fs::canonicalize(&abs)
            .unwrap_or(abs)
            .to_string_lossy()
            .into_owned())
    }
}

/// Go's `filepath.Clean` on a slash-separated path.
fn go_clean(path: &str) -> String {
    if path.is_empty() {
        return ".".to_owned();
    }
    let cleaned = clean_path(Path::new(path)).to_string_lossy().into_owned();
    if cleaned.is_empty() {
        ".".to_owned()
    } else {
        cleaned
    }
}

/// Go's `filepath.Base`: the last element, trailing slashes dropped.
fn go_base(path: &str) -> String {
    if path.is_empty() {
        return ".".to_owned();
    }
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return "/".to_owned();
    }
    trimmed.rsplit('/').next().unwrap_or(trimmed).to_owned()
}

/// Go's `filepath.Dir`: everything but the last element, cleaned.
fn go_dir(path: &str) -> String {
    match path.rfind('/') {
        Some(i) => go_clean(&path[..=i]),
        None => ".".to_owned(),
    }
}

/// `target` relative to `base`, like Go's `filepath.Rel` for absolute, clean paths.
pub(super) fn relative(target: &Path, base: &Path) -> String {
    let target = clean_path(target);
    let base = clean_path(base);
    let t: Vec<_> = target.components().collect();
    let b: Vec<_> = base.components().collect();
    let common = t.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut parts: Vec<String> = std::iter::repeat_n("..".to_owned(), b.len() - common).collect();
    parts.extend(
        t[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    if parts.is_empty() {
        ".".to_owned()
    } else {
        parts.join("/")
    }
}

#[starlark_module]
fn shlex_builtins(builder: &mut GlobalsBuilder) {
    fn quote(name: &str) -> starlark::Result<String> {
        Ok(shell_quote(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_like_python_shlex() {
        assert_eq!(shell_quote("it's"), "'it'\"'\"'s'");
        assert_eq!(shell_quote("plain-word"), "plain-word");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn go_path_functions() {
        assert_eq!(go_clean("a//b/./c/.."), "a/b");
        assert_eq!(go_base("/x/y.txt/"), "y.txt");
        assert_eq!(go_base(""), ".");
        assert_eq!(go_dir("/x/y.txt"), "/x");
        assert_eq!(go_dir("y.txt"), ".");
        assert_eq!(go_dir("/y"), "/");
    }

    #[test]
    fn relative_paths() {
        assert_eq!(relative(Path::new("/a/b/c"), Path::new("/a")), "b/c");
        assert_eq!(relative(Path::new("/a"), Path::new("/a/b")), "..");
        assert_eq!(relative(Path::new("/a"), Path::new("/a")), ".");
    }
}
