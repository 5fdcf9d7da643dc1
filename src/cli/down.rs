//! `tiltrs down`: evaluate the Tiltfile and remove what `tiltrs up` created and left running.
//!
//! Docker Compose projects are taken down with the real Compose (`down --remove-orphans`), as
//! Tilt does, which removes their containers and networks. Local resources leave nothing behind
//! (tiltrs stops their processes when it exits); Kubernetes removal comes with that runtime.

use std::collections::BTreeSet;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use tokio_util::sync::CancellationToken;

use super::TiltfileArgs;
use super::up::eval_options;
use crate::model::ResourceType;
use crate::runtime::LogSink;
use crate::runtime::compose::{self, CommandEnv};

#[derive(Debug, Args)]
pub struct DownArgs {
    #[command(flatten)]
    pub tiltfile: TiltfileArgs,
}

/// Prints command output as it comes.
struct Stdout;

impl LogSink for Stdout {
    fn line(&self, text: &str) {
        println!("{text}");
    }
}

pub fn run(args: DownArgs) -> anyhow::Result<ExitCode> {
    let options = eval_options(&args.tiltfile, "down")?;
    let result =
        crate::tiltfile::evaluate(&options).map_err(|e| anyhow::anyhow!("{}", e.message))?;
    let local = result
        .resources
        .iter()
        .filter(|r| r.kind == ResourceType::Local)
        .count();
    let k8s: Vec<&str> = result
        .resources
        .iter()
        .filter(|r| matches!(r.kind, ResourceType::K8s | ResourceType::K8sCustomDeploy))
        .map(|r| r.name.as_str())
        .collect();
    let mut projects = BTreeSet::new();
    let compose_specs: Vec<_> = result
        .resources
        .iter()
        .filter_map(|r| r.docker_compose.as_ref())
        .filter(|spec| projects.insert(spec.project.clone()))
        .cloned()
        .collect();
    if local > 0 {
        println!(
            "{local} local resource{}: nothing to delete (tiltrs stops local processes when it exits)",
            if local == 1 { "" } else { "s" }
        );
    }
    let mut failed = false;
    if !compose_specs.is_empty() {
        let runtime = super::up::runtime()?;
        let env: std::collections::BTreeMap<String, String> = result
            .env
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.clone()?)))
            .collect();
        runtime.block_on(async {
            for spec in &compose_specs {
                let cmd_env = CommandEnv {
                    env: env.clone(),
                    log: Arc::new(Stdout),
                    cancel: CancellationToken::new(),
                    grace: Duration::from_secs(10),
                    kill_now: CancellationToken::new(),
                };
                if let Err(e) = compose::down(spec, &cmd_env).await {
                    eprintln!("Error: Docker Compose project {}: {e}", spec.project);
                    failed = true;
                }
            }
        });
    }
    if !k8s.is_empty() {
        eprintln!(
            "Not deleted (this tiltrs cannot manage Kubernetes resources yet): {}",
            k8s.join(", ")
        );
    }
    if result.resources.is_empty() {
        println!("Nothing to delete: the Tiltfile declares no resources");
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
