//! `tiltrs trigger`, `enable`, `disable` and `args`: mutations of the running session.

use std::process::ExitCode;

use clap::Args;

use super::client::{Client, SessionArgs};
use super::get::path_segment;
use crate::api::views::ResourceList;

#[derive(Debug, Args)]
pub struct TriggerArgs {
    /// The resource to update now.
    pub name: String,
    #[command(flatten)]
    pub session: SessionArgs,
}

#[derive(Debug, Args)]
pub struct EnableArgs {
    /// The resources to enable or disable.
    #[arg(required_unless_present = "all")]
    pub names: Vec<String>,
    /// Every resource.
    #[arg(long, conflicts_with = "names")]
    pub all: bool,
    #[command(flatten)]
    pub session: SessionArgs,
}

#[derive(Debug, Args)]
pub struct ArgsArgs {
    /// The new Tiltfile args (after `--`).
    #[arg(last = true)]
    pub args: Vec<String>,
    /// Set no args.
    #[arg(long, conflicts_with = "args")]
    pub clear: bool,
    #[command(flatten)]
    pub session: SessionArgs,
}

pub fn run_trigger(args: TriggerArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.session);
    client.post(
        &format!("/api/resources/{}/trigger", path_segment(&args.name)),
        &serde_json::json!({}),
    )?;
    println!("Triggered an update of {}", args.name);
    Ok(ExitCode::SUCCESS)
}

pub fn run_enable(args: EnableArgs, enable: bool) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.session);
    let names = if args.all {
        let list: ResourceList = client.get("/api/resources")?;
        list.resources.into_iter().map(|r| r.name).collect()
    } else {
        args.names
    };
    let verb = if enable { "enable" } else { "disable" };
    for name in &names {
        client.post(
            &format!("/api/resources/{}/{verb}", path_segment(name)),
            &serde_json::json!({}),
        )?;
    }
    println!("{}d {}", capitalise(verb), names.join(", "));
    Ok(ExitCode::SUCCESS)
}

fn capitalise(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

pub fn run_args(args: ArgsArgs) -> anyhow::Result<ExitCode> {
    if args.args.is_empty() && !args.clear {
        anyhow::bail!("give the new args after `--` (e.g. `tiltrs args -- web api`), or --clear");
    }
    let client = Client::new(&args.session);
    client.post("/api/args", &serde_json::json!({ "args": args.args }))?;
    println!("Tiltfile args set to {:?}; reloading", args.args);
    Ok(ExitCode::SUCCESS)
}
