//! `tiltrs logs`: the running session's logs, all or some resources, optionally followed.

use std::io::Write as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use clap::Args;

use super::client::{Client, SessionArgs};
use crate::api::views::{LogLineView, LogPageView, ResourceList, epoch_ms};
use crate::engine::TILTFILE_SPAN;
use crate::term::{MAX_PAD, format_parts, use_colour};

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Only these resources (all when none).
    pub resources: Vec<String>,
    /// Keep streaming new lines.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Only lines newer than this (e.g. 30s, 5m, 1h).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub since: Option<Duration>,
    #[command(flatten)]
    pub session: SessionArgs,
}

fn query(resources: &[String], since_seq: u64) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for r in resources {
        q.append_pair("resource", r);
    }
    q.append_pair("since", &since_seq.to_string());
    q.finish()
}

pub fn run(args: LogsArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.session);
    let list: ResourceList = client.get("/api/resources")?;
    if let Some(missing) = args
        .resources
        .iter()
        .find(|n| !list.resources.iter().any(|r| &r.name == *n))
    {
        anyhow::bail!("no resource named {missing:?}");
    }
    let width = list
        .resources
        .iter()
        .map(|r| r.name.chars().count())
        .chain([TILTFILE_SPAN.len()])
        .max()
        .unwrap_or(0)
        .min(MAX_PAD);
    let not_before = args
        .since
        .map(|d| epoch_ms(SystemTime::now() - d))
        .unwrap_or(0);
    let printer = Arc::new(LinePrinter {
        width,
        colour: use_colour(),
        not_before,
    });
    let page: LogPageView = client.get(&format!("/api/logs?{}", query(&args.resources, 0)))?;
    if page.dropped > 0 && not_before == 0 {
        println!("... {} older lines were dropped", page.dropped);
    }
    printer.print(&page.lines)?;
    if !args.follow {
        return Ok(ExitCode::SUCCESS);
    }
    let mut failure = None;
    client.stream(
        &format!("/api/logs/stream?{}", query(&args.resources, page.last_seq)),
        |event| {
            let outcome = match event.event.as_str() {
                "lines" => serde_json::from_str::<Vec<LogLineView>>(&event.data)
                    .context("unexpected log event")
                    .and_then(|lines| printer.print(&lines)),
                "dropped" => {
                    println!("... some lines were dropped before they could be read");
                    Ok(())
                }
                _ => Ok(()),
            };
            match outcome {
                Ok(()) => true,
                Err(e) => {
                    failure = Some(e);
                    false
                }
            }
        },
    )?;
    match failure {
        // stdout closed (`| head`): not an error.
        Some(e) if is_broken_pipe(&e) => Ok(ExitCode::SUCCESS),
        Some(e) => Err(e),
        None => Ok(ExitCode::SUCCESS),
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.downcast_ref::<std::io::Error>()
        .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
}

struct LinePrinter {
    width: usize,
    colour: bool,
    not_before: u64,
}

impl LinePrinter {
    fn print(&self, lines: &[LogLineView]) -> anyhow::Result<()> {
        let mut out = std::io::stdout().lock();
        for line in lines.iter().filter(|l| l.time >= self.not_before) {
            writeln!(
                out,
                "{}",
                format_parts(&line.span, line.kind, &line.text, self.width, self.colour)
            )?;
        }
        out.flush()?;
        Ok(())
    }
}
