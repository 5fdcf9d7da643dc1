//! `tiltrs down`: evaluate the Tiltfile and remove what `tiltrs up` created and left running.
//!
//! Docker Compose projects are taken down with the real Compose (`down --remove-orphans`), as
//! Tilt does, which removes their containers and networks. Local resources leave nothing behind
//! (tiltrs stops their processes when it exits). Kubernetes objects the Tiltfile applies are
//! deleted and waited for, except Namespaces (unless `--delete-namespaces`) and objects
//! annotated `tilt.dev/down-policy: keep`; `k8s_custom_deploy` runs its delete command.

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
    /// Also delete the Namespaces the Tiltfile declares.
    #[arg(long)]
    pub delete_namespaces: bool,
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
    let k8s: Vec<&crate::model::Resource> = result
        .resources
        .iter()
        .filter(|r| matches!(r.kind, ResourceType::K8s | ResourceType::K8sCustomDeploy))
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
        let runtime = super::up::runtime()?;
        let overrides = args.tiltfile.k8s_overrides();
        if !runtime.block_on(down_k8s(&k8s, &result, overrides, args.delete_namespaces))? {
            failed = true;
        }
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

/// Deletes what the Kubernetes resources apply; false when something could not be deleted.
async fn down_k8s(
    resources: &[&crate::model::Resource],
    result: &crate::model::TiltfileResult,
    overrides: crate::k8s::K8sOverrides,
    delete_namespaces: bool,
) -> anyhow::Result<bool> {
    use crate::k8s::apply::{DownOutcome, KindCache, delete_objects};
    let handle = crate::k8s::K8sHandle::new(overrides);
    let (client, info) = handle.get().await?;
    crate::k8s::client::check_context_allowed(&info.context, &result.settings.allowed_k8s_contexts)
        .map_err(|e| anyhow::anyhow!(e))?;
    let kinds = KindCache::default();
    // The namespace controller takes 25-40 s to empty a Namespace.
    let timeout = Duration::from_secs(result.settings.k8s_upsert_timeout_secs.max(120));
    let mut ok = true;
    let mut objects = Vec::new();
    for r in resources {
        let Some(spec) = &r.k8s else { continue };
        if let Some(custom) = &spec.custom_deploy {
            println!(
                "Running delete_cmd of {}: {}",
                r.name,
                crate::runtime::process::display_command(&custom.delete_cmd)
            );
            let mut env = custom.delete_env.clone();
            env.extend(
                result
                    .env
                    .iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.clone()?))),
            );
            let outcome = crate::runtime::local::run_cmd(
                &custom.delete_cmd,
                custom.delete_dir.clone(),
                env,
                Arc::new(Stdout),
                CancellationToken::new(),
                Duration::from_secs(10),
                CancellationToken::new(),
            )
            .await;
            if outcome != crate::runtime::local::CmdOutcome::Success {
                eprintln!("Error: delete_cmd of {} failed: {outcome:?}", r.name);
                ok = false;
            }
            continue;
        }
        objects.extend(spec.manifests.iter().map(|m| (**m).clone()));
    }
    for outcome in delete_objects(
        &client,
        &kinds,
        &info.namespace,
        objects,
        delete_namespaces,
        timeout,
    )
    .await
    {
        match outcome {
            Ok(DownOutcome::Deleted(what)) => println!("Deleted {what}"),
            Ok(DownOutcome::Kept(what, why)) => println!("Kept {what} ({why})"),
            Ok(DownOutcome::NotFound(what)) => println!("Not found: {what}"),
            Err(e) => {
                eprintln!("Error: {e}");
                ok = false;
            }
        }
    }
    Ok(ok)
}
