//! Evaluation of a Tiltfile (Tilt's Starlark dialect) into a [`TiltfileResult`].
//!
//! Flow: [`evaluate`] sets up the [`state::State`] and globals, [`eval`] runs the main file
//! (rewriting `while` loops first, resolving `load()`s), builtins in [`builtins`] record
//! declarations (Docker Compose files are read natively by [`compose_file`]), and [`assemble`]
//! turns them into the model. Errors are rendered by [`diagnostics`] with file:line:col and
//! the source line. The interpreter runs on the calling thread: starlark values are not
//! `Send`, the result is.

pub(crate) mod assemble;
mod builtins;
mod compose_file;
mod diagnostics;
mod docker_ref;
mod eval;
mod extensions;
mod file_reads;
mod ignore_patterns;
mod k8s_objects;
mod source_rewrite;
mod state;
mod suggest;
mod values;
mod while_rewrite;
mod yaml;
mod yaml_prefetch;

use std::path::{Path, PathBuf};

use crate::model::TiltfileResult;

pub use ignore_patterns::absolutize as absolutize_ignore_pattern;
pub use suggest::did_you_mean;

/// What to evaluate and how.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// The main Tiltfile.
    pub path: PathBuf,
    /// Tiltfile arguments (after `--`).
    pub args: Vec<String>,
    /// The tiltrs subcommand being run (`up`, `ci`, `down`, `alpha tiltfile-result`), as
    /// `config.tilt_subcommand` reports it.
    pub subcommand: String,
    /// `--context` / `--namespace`, which `k8s_context()` and `k8s_namespace()` report.
    pub k8s: crate::k8s::K8sOverrides,
}

/// A failed evaluation: the rendered message (with file:line:col and source) plus whatever
/// was learnt before the failure, so the engine can still watch the files that were read.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct TiltfileError {
    pub message: String,
    pub config_files: Vec<PathBuf>,
}

/// A successful evaluation: the result and the evaluation log (`print`, `local` output,
/// warnings), which belongs to the `(Tiltfile)` resource.
#[derive(Debug, Clone)]
pub struct Evaluated {
    pub result: TiltfileResult,
    pub log: Vec<String>,
}

fn absolute(path: &Path) -> PathBuf {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    };
    values::clean_path(&abs)
}

/// Kubernetes objects from a YAML stream (documents and `List`s), as `k8s_yaml` reads them.
pub fn parse_k8s_yaml(text: &str) -> Result<Vec<serde_json::Value>, String> {
    Ok(k8s_objects::parse_objects(text)?
        .into_iter()
        .map(|o| (*o.value).clone())
        .collect())
}

/// Parses a Starlark file as Tilt's dialect (with `while`) without running it: a syntax check
/// used to test compatibility against large corpora of real Tiltfiles.
pub fn parse_check(path: &Path) -> Result<(), String> {
    let source = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let source = source_rewrite::rewrite(&source).map_or(source, |(rewritten, _)| rewritten);
    starlark::syntax::AstModule::parse(&path.to_string_lossy(), source, &eval::tilt_dialect())
        .map(drop)
        .map_err(|e| e.to_string())
}

/// Evaluates the Tiltfile at `options.path`.
pub fn evaluate(options: &EvalOptions) -> Result<TiltfileResult, TiltfileError> {
    evaluate_with_log(options).map(|e| e.result)
}

/// Evaluates the Tiltfile at `options.path`, keeping its log.
pub fn evaluate_with_log(options: &EvalOptions) -> Result<Evaluated, TiltfileError> {
    let main_path = absolute(&options.path);
    let main_dir = main_path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"));
    if !main_path.is_file() {
        return Err(TiltfileError {
            message: format!(
                "Error: No Tiltfile found at path {:?}",
                main_path.display().to_string()
            ),
            config_files: vec![main_path],
        });
    }
    let source = eval::read_source(&main_path);
    // Start parsing the YAML files the Tiltfile names first, so that it overlaps with setting
    // up the Starlark globals as well as with the evaluation.
    let prefetch = source
        .as_ref()
        .ok()
        .and_then(|source| yaml_prefetch::YamlPrefetch::start(&main_dir, source));
    builtins::EnvOverlay::reset();
    let mut state = state::State {
        main_dir: main_dir.clone(),
        args: options.args.clone(),
        ..Default::default()
    };
    let (context, namespace) = crate::k8s::client::effective_context(&options.k8s);
    state.settings.k8s_context = context;
    state.settings.k8s_namespace = namespace;
    let tiltignore = main_dir.join(".tiltignore");
    state.record_file(&tiltignore);
    if let Some(patterns) = ignore_patterns::read_ignore_file(&tiltignore) {
        state.settings.watch_ignores.extend(
            patterns
                .iter()
                .map(|p| ignore_patterns::absolutize(&main_dir, p)),
        );
    }

    let globals = eval::build_globals(&main_path, &options.subcommand);
    let evaluation = eval::Evaluation::new(state, globals);
    *evaluation.yaml_prefetch.borrow_mut() = prefetch;
    evaluation.state.borrow_mut().record_file(&main_path);
    let outcome = source.and_then(|source| evaluation.exec_main(&main_path, source));
    let rendered = evaluation.rendered_error.borrow_mut().take();
    let state = evaluation.state.into_inner();
    if let Err(e) = outcome {
        return Err(TiltfileError {
            message: rendered.unwrap_or_else(|| format!("Error: {}", diagnostics::message(&e))),
            config_files: state.config_files,
        });
    }
    let config_files = state.config_files.clone();
    let log = state.log.clone();
    match assemble::assemble(state) {
        Ok(mut result) => {
            result.env = builtins::env_overlay_changes();
            Ok(Evaluated { result, log })
        }
        Err(message) => Err(TiltfileError {
            message: format!("Error: {message}"),
            config_files,
        }),
    }
}
