//! `tiltrs down`: evaluate the Tiltfile and remove what `tiltrs up` created and left running.
//!
//! Local resources leave nothing behind (tiltrs stops their processes when it exits), so for
//! them there is nothing to delete; Docker Compose and Kubernetes removal come with those
//! runtimes.

use std::process::ExitCode;

use clap::Args;

use super::TiltfileArgs;
use super::up::eval_options;
use crate::model::ResourceType;

#[derive(Debug, Args)]
pub struct DownArgs {
    #[command(flatten)]
    pub tiltfile: TiltfileArgs,
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
    let other: Vec<&str> = result
        .resources
        .iter()
        .filter(|r| r.kind != ResourceType::Local)
        .map(|r| r.name.as_str())
        .collect();
    if local > 0 {
        println!(
            "{local} local resource{}: nothing to delete (tiltrs stops local processes when it exits)",
            if local == 1 { "" } else { "s" }
        );
    }
    if !other.is_empty() {
        eprintln!(
            "Not deleted (this tiltrs cannot manage Docker Compose or Kubernetes resources yet): {}",
            other.join(", ")
        );
    }
    if result.resources.is_empty() {
        println!("Nothing to delete: the Tiltfile declares no resources");
    }
    Ok(ExitCode::SUCCESS)
}
