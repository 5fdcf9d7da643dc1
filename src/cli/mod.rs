//! The command line: argument parsing (clap) and dispatch to one module per command.
//!
//! This is the only place where `anyhow` errors are turned into messages and exit codes.

mod ci;
mod client;
mod control;
mod down;
mod get;
mod logs;
mod status_view;
mod tiltfile_result;
mod up;
mod version;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "tiltrs",
    version,
    about = "Run your Tiltfile: build, deploy and watch a multi-service app, fast.",
    long_about = "tiltrs reads the Tiltfiles you already have for Tilt and runs them: it builds images, \
runs local commands and services, watches your files and re-runs exactly what a change touches."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start every resource, watch files and keep them up to date until interrupted.
    Up(up::UpArgs),
    /// Run every resource once and exit 0 when all are healthy, non-zero on the first failure.
    Ci(ci::CiArgs),
    /// Remove what `tiltrs up` created and left running.
    Down(down::DownArgs),
    /// List the running session's resources (or `session`).
    Get(get::GetArgs),
    /// Show one resource of the running session in full.
    Describe(get::DescribeArgs),
    /// Print the running session's logs (`-f` to follow).
    Logs(logs::LogsArgs),
    /// Update a resource of the running session now.
    Trigger(control::TriggerArgs),
    /// Enable resources of the running session.
    Enable(control::EnableArgs),
    /// Disable resources of the running session (their processes stop).
    Disable(control::EnableArgs),
    /// Change the running session's Tiltfile args (after `--`) and reload.
    Args(control::ArgsArgs),
    /// Print the tiltrs version.
    Version,
    /// Commands that may change between releases.
    #[command(subcommand)]
    Alpha(AlphaCommand),
}

#[derive(Debug, Subcommand)]
pub enum AlphaCommand {
    /// Evaluate the Tiltfile and print the resources, images and settings it declares as JSON.
    TiltfileResult(tiltfile_result::TiltfileResultArgs),
}

/// The Tiltfile to read and the arguments passed to it after `--`.
#[derive(Debug, Clone, Args)]
pub struct TiltfileArgs {
    /// Path to the Tiltfile.
    #[arg(short = 'f', long = "file", default_value = "Tiltfile")]
    pub file: PathBuf,
    /// Kubernetes context to use instead of the kubeconfig's current one.
    #[arg(long)]
    pub context: Option<String>,
    /// Default namespace for Kubernetes objects that name none.
    #[arg(long)]
    pub namespace: Option<String>,
    /// Arguments for the Tiltfile (after `--`): resource names, or what `config.parse()` reads.
    #[arg(last = true)]
    pub args: Vec<String>,
}

impl TiltfileArgs {
    pub fn k8s_overrides(&self) -> crate::k8s::K8sOverrides {
        crate::k8s::K8sOverrides {
            context: self.context.clone(),
            namespace: self.namespace.clone(),
        }
    }
}

/// Parses the command line, runs the command and maps its outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Up(args) => up::run(args),
        Command::Ci(args) => ci::run(args),
        Command::Down(args) => down::run(args),
        Command::Get(args) => get::run_get(args),
        Command::Describe(args) => get::run_describe(args),
        Command::Logs(args) => logs::run(args),
        Command::Trigger(args) => control::run_trigger(args),
        Command::Enable(args) => control::run_enable(args, true),
        Command::Disable(args) => control::run_enable(args, false),
        Command::Args(args) => control::run_args(args),
        Command::Version => version::run(),
        Command::Alpha(AlphaCommand::TiltfileResult(args)) => tiltfile_result::run(args),
    };
    match outcome {
        Ok(code) => code,
        Err(err) => {
            eprintln!("Error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
