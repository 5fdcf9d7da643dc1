//! Tilt's builtins, one module per family. Each builtin validates its arguments as Tilt does
//! and records a declaration in the evaluation's [`State`](super::state::State); nothing runs
//! here except what Tilt also runs at load time (`local`, `helm`, `kustomize`).

// Tilt's builtins take many parameters by API definition (docker_build has 21).
#![allow(clippy::too_many_arguments)]

mod common;
mod compose;
mod config;
mod core;
mod docker;
mod encoding;
mod files;
mod k8s;
mod local;
mod os;
mod settings;
mod v1alpha1;

use std::path::Path;

use starlark::environment::GlobalsBuilder;

pub use os::{EnvOverlay, env_overlay_changes};

/// Registers every builtin, with the per-evaluation values (`config.main_path`, `sys.argv`, ...).
pub fn register(b: &mut GlobalsBuilder, main_path: &Path, subcommand: &str) {
    core::register(b);
    settings::register(b);
    files::register(b);
    encoding::register(b);
    local::register(b);
    docker::register(b);
    k8s::register(b);
    compose::register(b);
    os::register(b);
    config::register(b, main_path, subcommand);
    v1alpha1::register(b);
}
