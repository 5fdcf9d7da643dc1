//! `tiltrs ci`: run every resource once; exit 0 when all are healthy, non-zero on the first
//! failure or at the timeout; then stop everything.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use tokio::time::Instant;

use super::TiltfileArgs;
use super::up::{ServerArgs, Signals, engine_config, runtime};
use crate::engine::ci::{CiOutcome, CiPolicy, check};
use crate::engine::{self, Mode};
use crate::term::Printer;

/// Lines of a failed resource's log repeated with the error.
const TAIL_LINES: usize = 20;

#[derive(Debug, Args)]
pub struct CiArgs {
    #[command(flatten)]
    pub tiltfile: TiltfileArgs,
    #[command(flatten)]
    pub server: ServerArgs,
    /// Give up after this long (e.g. 90s, 5m, 1h30m); default: ci_settings(timeout=), else 30m.
    #[arg(long, value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Fail when a Kubernetes container in CrashLoopBackOff has restarted this many times.
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub max_restarts: i32,
}

/// Parses Go-style durations (`30s`, `5m`, `1h30m`, `1.5h`, `500ms`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>()
        && secs >= 0.0
    {
        return Ok(Duration::from_secs_f64(secs));
    }
    if let Ok(d) = humantime::parse_duration(s) {
        return Ok(d);
    }
    // Fractions such as `1.5h`, which humantime does not take.
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let factor = match unit {
        "h" => 3600.0,
        "m" => 60.0,
        "s" => 1.0,
        "ms" => 0.001,
        _ => return Err(format!("invalid duration {s:?} (use e.g. 30s, 5m, 1h30m)")),
    };
    num.parse::<f64>()
        .ok()
        .filter(|n| *n >= 0.0)
        .map(|n| Duration::from_secs_f64(n * factor))
        .ok_or_else(|| format!("invalid duration {s:?} (use e.g. 30s, 5m, 1h30m)"))
}

/// Go's `time.Duration` formatting for whole seconds: `30m0s`, `1h30m0s`, `45s`.
fn go_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else if d.subsec_millis() > 0 {
        format!("{:.3}s", d.as_secs_f64())
            .trim_end_matches('0')
            .to_string()
    } else {
        format!("{s}s")
    }
}

enum Ending {
    Done(CiOutcome),
    Timeout(Duration),
    Interrupted,
}

pub fn run(args: CiArgs) -> anyhow::Result<ExitCode> {
    let rt = runtime()?;
    rt.block_on(async {
        let config = engine_config(&args.tiltfile, &args.server, Mode::Ci, "ci")?;
        let (handle, task) = engine::start(config);
        let store = handle.store().clone();
        let printer = Printer::start(&store);
        let mut signals = Signals::new()?;
        let mut states = store.subscribe();
        let started = Instant::now();
        let policy = CiPolicy {
            max_restarts: args.max_restarts,
        };
        let mut timeout = args.timeout;
        let ending = loop {
            let outcome = {
                let st = states.borrow_and_update();
                if timeout.is_none() && st.tiltfile.loaded_once {
                    timeout = Some(Duration::from_secs(st.tiltfile.settings.ci_timeout));
                }
                check(&st, policy)
            };
            if let Some(o) = outcome {
                break Ending::Done(o);
            }
            let limit = timeout.unwrap_or(Duration::from_secs(30 * 60));
            tokio::select! {
                changed = states.changed() => if changed.is_err() {
                    break Ending::Interrupted;
                },
                _ = tokio::time::sleep_until(started + limit) => break Ending::Timeout(limit),
                _ = signals.next() => break Ending::Interrupted,
            }
        };
        if matches!(ending, Ending::Interrupted) {
            signals.escalate(&handle);
        } else {
            handle.shutdown(false);
        }
        tokio::pin!(task);
        loop {
            tokio::select! {
                _ = &mut task => break,
                _ = signals.next() => signals.escalate(&handle),
            }
        }
        printer.finish(&store);
        Ok(match ending {
            Ending::Done(CiOutcome::Success) => {
                println!("SUCCESS. All workloads are healthy.");
                ExitCode::SUCCESS
            }
            Ending::Done(CiOutcome::Failed {
                resource: None,
                error,
            }) => {
                eprintln!("Error: Tiltfile failed to load:\n{error}");
                ExitCode::FAILURE
            }
            Ending::Done(CiOutcome::Failed {
                resource: Some(name),
                error,
            }) => {
                let tail = store.tail(&name, TAIL_LINES);
                if !tail.is_empty() {
                    eprintln!("Last lines of {name}'s log:");
                    for l in tail {
                        eprintln!("    {l}");
                    }
                }
                eprintln!("Error: resource {name:?} failed: {error}");
                ExitCode::FAILURE
            }
            Ending::Timeout(limit) => {
                let st = store.snapshot();
                let waiting: Vec<&str> = st
                    .resources
                    .iter()
                    .filter(|r| r.spec.enabled && r.spec.auto_init)
                    .filter(|r| {
                        !(r.last_build().and_then(|b| b.result)
                            == Some(engine::BuildResult::Success)
                            && r.serve.as_ref().is_none_or(|s| s.ready))
                    })
                    .map(|r| r.name.as_str())
                    .collect();
                eprintln!(
                    "Error: Timeout after {} (still waiting for: {})",
                    go_duration(limit),
                    waiting.join(", ")
                );
                ExitCode::FAILURE
            }
            Ending::Interrupted => {
                eprintln!("Error: interrupted");
                ExitCode::from(130)
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_go() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("soon").is_err());
        assert_eq!(go_duration(Duration::from_secs(1800)), "30m0s");
        assert_eq!(go_duration(Duration::from_secs(5400)), "1h30m0s");
        assert_eq!(go_duration(Duration::from_secs(2)), "2s");
    }
}
