//! `tiltrs alpha tiltfile-result`: evaluate the Tiltfile and print what it declares as JSON.

use std::io::Write;
use std::process::ExitCode;

use clap::Args;

use super::TiltfileArgs;
use crate::tiltfile::{EvalOptions, evaluate_with_log};

#[derive(Debug, Args)]
pub struct TiltfileResultArgs {
    #[command(flatten)]
    pub tiltfile: TiltfileArgs,
    /// Also print the evaluation log (print output, local commands, warnings) on stderr.
    #[arg(short = 'v', long = "verbose")]
    pub verbose: bool,
}

pub fn run(args: TiltfileResultArgs) -> anyhow::Result<ExitCode> {
    let options = EvalOptions {
        path: args.tiltfile.file.clone(),
        args: args.tiltfile.args.clone(),
        subcommand: "alpha tiltfile-result".to_owned(),
        k8s: args.tiltfile.k8s_overrides(),
    };
    match evaluate_with_log(&options) {
        Ok(evaluated) => {
            if args.verbose {
                for line in &evaluated.log {
                    eprintln!("{line}");
                }
            }
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            serde_json::to_writer_pretty(&mut out, &evaluated.result)?;
            writeln!(out)?;
            out.flush()?;
            // The process ends right after this: freeing every object of a large project
            // would only cost time (about a sixth of a 200-service load).
            std::mem::forget(evaluated);
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => {
            eprintln!("{}", err.message);
            Ok(ExitCode::FAILURE)
        }
    }
}
