//! Running Starlark files: Tilt's dialect, the globals, `load()` resolution and caching
//! (relative to the calling file, `ext://` extensions, circular-load detection), `include()`,
//! `exit()`, and the print handler.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use allocative::Allocative;
use starlark::PrintHandler;
use starlark::codemap::FileSpan;
use starlark::docs::{DocItem, DocMember};
use starlark::environment::{FrozenModule, Globals, GlobalsBuilder, LibraryExtension, Module};
use starlark::eval::{Evaluator, FileLoader};
use starlark::syntax::{AstModule, Dialect, DialectTypes};
use starlark::values::structs::AllocStruct;
use starlark::values::{
    Heap, NoSerialize, OwnedFrozenValue, ProvidesStaticType, StarlarkValue, Value,
};
use starlark::{StarlarkPagablePanic, starlark_simple_value};
use starlark_derive::starlark_value;

use super::diagnostics::{self, SourceInfo};
use super::file_reads::ReadCache;
use super::state::State;
use super::yaml_prefetch::YamlPrefetch;
use super::{assemble, builtins, extensions};
use super::{source_rewrite, while_rewrite};

/// Upper bound on Starlark work for one evaluation (calls and loop iterations), so a
/// runaway `while True:` becomes an error instead of a hang.
const MAX_TICKS: u64 = 200_000_000;

/// Tilt's dialect: top-level statements, lambdas, nested defs, no types, no f-strings.
pub fn tilt_dialect() -> Dialect {
    Dialect {
        enable_def: true,
        enable_lambda: true,
        enable_load: true,
        enable_keyword_only_arguments: true,
        enable_positional_only_arguments: false,
        enable_types: DialectTypes::Disable,
        enable_load_reexport: true,
        enable_top_level_stmt: true,
        enable_f_strings: false,
        ..Dialect::Standard
    }
}

/// An endless iterable: the `for` that a rewritten `while` loops over.
#[derive(Debug, ProvidesStaticType, NoSerialize, StarlarkPagablePanic, Allocative)]
struct Forever;
starlark_simple_value!(Forever);

impl fmt::Display for Forever {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("forever")
    }
}

#[starlark_value(type = "forever")]
impl<'v> StarlarkValue<'v> for Forever {
    unsafe fn iterate(&self, me: Value<'v>, _heap: Heap<'v>) -> starlark::Result<Value<'v>> {
        Ok(me)
    }

    unsafe fn iter_next(&self, _index: usize, _heap: Heap<'v>) -> Option<Value<'v>> {
        Some(Value::new_none())
    }

    unsafe fn iter_stop(&self) {}
}

/// Builds the globals for one evaluation (dynamic values such as `config.main_path` included).
pub fn build_globals(main_path: &Path, subcommand: &str) -> Globals {
    GlobalsBuilder::extended_by(&[
        LibraryExtension::StructType,
        LibraryExtension::SetType,
        LibraryExtension::Print,
        LibraryExtension::Map,
        LibraryExtension::Filter,
    ])
    .with(|b| {
        b.set(while_rewrite::FOREVER, Forever);
        builtins::register(b, main_path, subcommand);
    })
    .build()
}

/// The text of a Starlark file, or the error `load()` reports for it.
pub fn read_source(path: &Path) -> starlark::Result<String> {
    std::fs::read_to_string(path).map_err(|e| {
        starlark::Error::new_other(anyhow::anyhow!("cannot read {}: {e}", path.display()))
    })
}

#[derive(Clone)]
enum LoadEntry {
    Executing,
    Done(Result<FrozenModule, String>),
}

/// Signals that `exit()` was called: evaluation stops without an error.
#[derive(Debug, thiserror::Error)]
#[error("exit() called")]
pub struct StopExecution;

/// Owns one evaluation: what builtins recorded, globals, the load cache and the sources for
/// diagnostics. Builtins reach it through `eval.extra` ([`ctx`]).
#[derive(ProvidesStaticType)]
pub struct Evaluation {
    pub state: RefCell<State>,
    globals: Globals,
    dialect: Dialect,
    cache: RefCell<HashMap<PathBuf, LoadEntry>>,
    pub sources: RefCell<HashMap<String, SourceInfo>>,
    pub exited: Cell<bool>,
    /// The innermost error, rendered once, plus the load chain appended by outer files.
    pub rendered_error: RefCell<Option<String>>,
    /// The path of the last `load()` whose file failed, to point at the statement.
    failed_load: RefCell<Option<String>>,
    /// A `workload_to_resource_function` registered in a loaded file.
    workload_fn: RefCell<Option<OwnedFrozenValue>>,
    /// YAML files being parsed ahead of their `k8s_yaml` calls.
    pub yaml_prefetch: RefCell<Option<YamlPrefetch>>,
    /// Files read so far (Dockerfiles), reused while no load-time command has run.
    pub reads: ReadCache,
}

impl Evaluation {
    pub fn new(state: State, globals: Globals) -> Self {
        Evaluation {
            state: RefCell::new(state),
            globals,
            dialect: tilt_dialect(),
            cache: RefCell::new(HashMap::new()),
            sources: RefCell::new(HashMap::new()),
            exited: Cell::new(false),
            rendered_error: RefCell::new(None),
            failed_load: RefCell::new(None),
            workload_fn: RefCell::new(None),
            yaml_prefetch: RefCell::new(None),
            reads: ReadCache::default(),
        }
    }

    /// Executes `path` as a module (once per evaluation) and returns its frozen globals.
    pub fn exec_file(&self, path: &Path, is_main: bool) -> starlark::Result<FrozenModule> {
        self.exec_once(path, || {
            let original = match extensions::bundled_source(path) {
                Some(src) => src.to_owned(),
                None => {
                    self.state.borrow_mut().record_file(path);
                    read_source(path)?
                }
            };
            self.exec_source(path, original, is_main)
        })
    }

    /// Executes the main Tiltfile, whose text the caller has read (and recorded).
    pub fn exec_main(&self, path: &Path, original: String) -> starlark::Result<FrozenModule> {
        self.exec_once(path, || self.exec_source(path, original, true))
    }

    fn exec_once(
        &self,
        path: &Path,
        exec: impl FnOnce() -> starlark::Result<FrozenModule>,
    ) -> starlark::Result<FrozenModule> {
        if let Some(entry) = self.cache.borrow().get(path) {
            return match entry {
                LoadEntry::Executing => Err(starlark::Error::new_other(anyhow::anyhow!(
                    "Circular load: {}",
                    path.display()
                ))),
                LoadEntry::Done(Ok(m)) => Ok(m.clone()),
                LoadEntry::Done(Err(msg)) => {
                    Err(starlark::Error::new_other(anyhow::anyhow!("{msg}")))
                }
            };
        }
        self.cache
            .borrow_mut()
            .insert(path.to_path_buf(), LoadEntry::Executing);
        let result = exec();
        let entry = match &result {
            Ok(m) => LoadEntry::Done(Ok(m.clone())),
            Err(e) => LoadEntry::Done(Err(e.without_diagnostic().to_string())),
        };
        self.cache.borrow_mut().insert(path.to_path_buf(), entry);
        result
    }

    fn exec_source(
        &self,
        path: &Path,
        original: String,
        is_main: bool,
    ) -> starlark::Result<FrozenModule> {
        let filename = path.to_string_lossy().into_owned();
        let (source, line_map) =
            source_rewrite::rewrite(&original).unwrap_or_else(|| (original.clone(), None));
        self.sources
            .borrow_mut()
            .insert(filename.clone(), SourceInfo { original, line_map });
        let ast = match AstModule::parse(&filename, source, &self.dialect) {
            Ok(ast) => ast,
            Err(e) => {
                self.record_error(&e, &[]);
                return Err(e);
            }
        };
        let load_sites: Vec<(String, FileSpan)> = ast
            .loads()
            .into_iter()
            .map(|l| (l.module_id.to_owned(), l.span.clone()))
            .collect();
        let name = if is_main {
            "__main__".to_owned()
        } else {
            path.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        self.state.borrow_mut().exec_stack.push(path.to_path_buf());
        let result = Module::with_temp_heap(|module| {
            module.set("__file__", module.heap().alloc(filename.as_str()));
            module.set("__name__", module.heap().alloc(name.as_str()));
            let mut eval = Evaluator::new(&module);
            eval.extra = Some(self);
            eval.set_loader(self);
            eval.set_print_handler(self);
            eval.set_max_tick_count(MAX_TICKS)
                .map_err(starlark::Error::new_other)?;
            let outcome = match eval.eval_module(ast, &self.globals) {
                Ok(_) => Ok(()),
                // `exit()` stops the whole evaluation without an error.
                Err(_) if self.exited.get() && is_main => Ok(()),
                Err(e) if self.exited.get() => Err(e),
                Err(e) => {
                    self.record_error(&e, &load_sites);
                    Err(e)
                }
            };
            let outcome = outcome.and_then(|()| {
                if is_main {
                    self.name_workloads(&mut eval)
                } else {
                    Ok(())
                }
            });
            drop(eval);
            outcome?;
            let frozen = module.freeze().map_err(starlark::Error::from)?;
            if let Some(f) = frozen.owned_extra_value() {
                *self.workload_fn.borrow_mut() = Some(f);
            }
            Ok(frozen)
        });
        self.state.borrow_mut().exec_stack.pop();
        result
    }

    /// Renders the innermost error once; each outer file adds where it loaded the failing one.
    fn record_error(&self, e: &starlark::Error, load_sites: &[(String, FileSpan)]) {
        let mut slot = self.rendered_error.borrow_mut();
        let sources = self.sources.borrow();
        match slot.as_mut() {
            None => *slot = Some(diagnostics::render(e, &sources, &|f| self.param_names(f))),
            Some(rendered) => {
                let failed = self.failed_load.borrow();
                let site = load_sites
                    .iter()
                    .find(|(module, _)| Some(module) == failed.as_ref())
                    .map(|(_, span)| span)
                    .or_else(|| {
                        e.call_stack()
                            .frames
                            .first()
                            .and_then(|f| f.location.as_ref())
                    });
                if let Some(span) = site {
                    let (file, line, col) = diagnostics::position(span, &sources);
                    rendered.push_str(&format!("\n  loaded from {file}:{line}:{col}"));
                }
            }
        }
    }

    /// Calls the `workload_to_resource_function` (if any) for every workload object and
    /// records the names it returns; runs while the main module's values are still alive.
    fn name_workloads<'v>(&self, eval: &mut Evaluator<'v, '_, '_>) -> starlark::Result<()> {
        let function = match eval.module().extra_value() {
            Some(f) => f,
            None => match self.workload_fn.borrow().as_ref() {
                // SAFETY: the evaluator's frozen heap keeps the loaded module's heap alive.
                Some(owned) => unsafe { owned.owned_frozen_value(eval.frozen_heap()) }.to_value(),
                None => return Ok(()),
            },
        };
        let candidates = assemble::k8s::workload_candidates(&self.state.borrow());
        for c in candidates {
            let heap = eval.heap();
            let id = heap.alloc(AllocStruct([
                ("name", heap.alloc(c.name.as_str())),
                ("kind", heap.alloc(c.kind.as_str())),
                ("namespace", heap.alloc(c.namespace.as_str())),
                ("group", heap.alloc(c.group.as_str())),
            ]));
            let returned = eval
                .eval_function(function, &[id], &[])
                .inspect_err(|e| self.record_error(e, &[]))?;
            let Some(name) = returned.unpack_str() else {
                let e = starlark::Error::new_other(anyhow::anyhow!(
                    "workload_to_resource_function: function must return a string, got {}",
                    returned.get_type()
                ));
                self.record_error(&e, &[]);
                return Err(e);
            };
            self.state
                .borrow_mut()
                .workload_names
                .insert(c.index, name.to_owned());
        }
        Ok(())
    }

    /// Parameter names of the global builtin `function`, for "did you mean" suggestions.
    fn param_names(&self, function: &str) -> Vec<String> {
        let Some((_, value)) = self.globals.iter().find(|(name, _)| *name == function) else {
            return Vec::new();
        };
        match value.to_value().documentation() {
            DocItem::Member(DocMember::Function(f)) => f
                .params
                .pos_only
                .iter()
                .chain(&f.params.pos_or_named)
                .chain(&f.params.named_only)
                .map(|p| p.name.clone())
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Resolves a `load()`/`include()` path relative to the file being executed.
    pub fn resolve_load(&self, path: &str) -> starlark::Result<PathBuf> {
        if let Some(name) = path.strip_prefix("ext://") {
            let state = self.state.borrow();
            return extensions::resolve(name, &state).map_err(starlark::Error::new_other);
        }
        let cwd = self.state.borrow().cwd();
        Ok(super::values::abs_path(&cwd, path))
    }
}

impl FileLoader for Evaluation {
    fn load(&self, path: &str) -> starlark::Result<FrozenModule> {
        let result = self
            .resolve_load(path)
            .and_then(|resolved| self.exec_file(&resolved, false));
        if result.is_err() {
            *self.failed_load.borrow_mut() = Some(path.to_owned());
        }
        result
    }
}

/// The evaluation a builtin runs in (attached as `eval.extra`).
pub fn ctx<'a>(eval: &Evaluator<'_, 'a, '_>) -> starlark::Result<&'a Evaluation> {
    eval.extra
        .and_then(|e| e.downcast_ref::<Evaluation>())
        .ok_or_else(|| {
            starlark::Error::new_other(anyhow::anyhow!("no Tiltfile evaluation is running"))
        })
}

impl PrintHandler for Evaluation {
    fn println(&self, text: &str) -> starlark::Result<()> {
        self.state.borrow_mut().log.push(text.to_owned());
        Ok(())
    }
}
