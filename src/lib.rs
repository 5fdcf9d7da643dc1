//! tiltrs: a Tiltfile-compatible inner-loop orchestrator.
//!
//! A `Tiltfile` is evaluated by [`tiltfile::evaluate`] into a [`model::TiltfileResult`]
//! (plain data), which [`graph::ResourceGraph`] turns into a dependency graph that the
//! [`engine`] runs. See `ARCHITECTURE.md` for how the pieces fit.

pub mod api;
pub mod build;
pub mod cli;
pub mod docker;
pub mod engine;
pub mod graph;
pub mod k8s;
pub mod kubeconfig;
pub mod liveupdate;
pub mod model;
pub mod runtime;
pub mod term;
pub mod tiltfile;
pub mod watch;
