//! The command line: argument parsing (clap) and dispatch to one module per command.
//!
//! This is the only place where `anyhow` errors are turned into messages and exit codes.

mod ci;
mod down;
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
    /// Arguments for the Tiltfile (after `--`): resource names, or what `config.parse()` reads.
    #[arg(last = true)]
    pub args: Vec<String>,
}

/// Parses the command line, runs the command and maps its outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Up(args) => up::run(args),
        Command::Ci(args) => ci::run(args),
        Command::Down(args) => down::run(args),
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
