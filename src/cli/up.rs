//! `tiltrs up`: run the Tiltfile's resources, keep them up to date, stream their logs.
//!
//! Also holds what `up` and `ci` share: starting the reaper and the runtime, building the
//! engine configuration, and the signal handling (first Ctrl-C or SIGTERM: stop gracefully;
//! second: kill at once).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use std::io::IsTerminal as _;

use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::watch;

use super::TiltfileArgs;
use super::status_view::{self, ViewExit};
use crate::api;
use crate::engine::{self, EngineConfig, EngineHandle, Mode, TiltfileLoader};
use crate::runtime::reaper;
use crate::term::Printer;
use crate::tiltfile::EvalOptions;
use crate::watch::DebounceConfig;

/// Where the HTTP API will listen, and how files are watched.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// Port for the HTTP API and web UI; also passed to commands as TILT_PORT.
    #[arg(long, env = "TILT_PORT", default_value_t = 10350)]
    pub port: u16,
    /// Host for the HTTP API and web UI; also passed to commands as TILT_HOST.
    #[arg(long, env = "TILT_HOST", default_value = "127.0.0.1")]
    pub host: String,
    /// Milliseconds without file events before a batch of changes is acted on.
    #[arg(
        long,
        env = "TILTRS_WATCH_DEBOUNCE_MS",
        default_value_t = 10,
        hide_short_help = true
    )]
    pub debounce_ms: u64,
    /// Log memory to keep, in MiB; the oldest lines are dropped past it.
    #[arg(long, env = "TILTRS_LOG_LIMIT_MB", default_value_t = 32)]
    pub log_limit_mb: usize,
    /// Seconds to wait after SIGTERM before a stopping process gets SIGKILL.
    #[arg(
        long,
        env = "TILTRS_STOP_GRACE_SECS",
        default_value_t = 30,
        hide_short_help = true
    )]
    pub stop_grace_secs: u64,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub tiltfile: TiltfileArgs,
    #[command(flatten)]
    pub server: ServerArgs,
    /// Stream logs to the terminal instead of the status view (always so when stdout is not
    /// a terminal).
    #[arg(long)]
    pub stream: bool,
}

pub fn run(args: UpArgs) -> anyhow::Result<ExitCode> {
    let rt = runtime()?;
    rt.block_on(async {
        let listener = api::Listener::bind(&args.server.host, args.server.port).await?;
        let mut config = engine_config(&args.tiltfile, &args.server, Mode::Up, "up")?;
        config.web_port = listener.addr().port();
        let (handle, task) = engine::start(config);
        let server = api::serve(
            listener,
            handle.clone(),
            api::guard::default_session_dir().as_deref(),
        )?;
        eprintln!("tiltrs started on {}", server.url());
        let (done_tx, done_rx) = watch::channel(false);
        tokio::spawn(async move {
            let _ = task.await;
            let _ = done_tx.send(true);
        });
        let engine_done = || {
            let mut done = done_rx.clone();
            async move {
                let _ = done.wait_for(|d| *d).await;
            }
        };
        let mut signals = Signals::new()?;
        let interactive =
            !args.stream && std::io::stdout().is_terminal() && std::io::stdin().is_terminal();
        if interactive {
            let trigger_handle = handle.clone();
            let trigger = move |name: String| {
                let h = trigger_handle.clone();
                tokio::spawn(async move {
                    let _ = h.trigger(&name).await;
                });
            };
            let view =
                status_view::run(handle.store().clone(), server.url(), trigger, engine_done());
            tokio::select! {
                exit = view => match exit {
                    Ok(ViewExit::Stream) => {}
                    Ok(ViewExit::Quit) => signals.request_stop(&handle),
                    Err(e) => eprintln!("The status view failed ({e}); streaming logs instead"),
                },
                _ = signals.next() => signals.escalate(&handle),
            }
        }
        let printer = Printer::start(handle.store());
        let done = engine_done();
        tokio::pin!(done);
        loop {
            tokio::select! {
                _ = &mut done => break,
                _ = signals.next() => signals.escalate(&handle),
            }
        }
        printer.finish(handle.store());
        drop(server);
        Ok(ExitCode::SUCCESS)
    })
}

/// Starts the reaper (before any thread exists), then a single-threaded tokio runtime.
pub(super) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    reaper::start().context("failed to start the process reaper")?;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")
}

pub(super) fn eval_options(args: &TiltfileArgs, subcommand: &str) -> anyhow::Result<EvalOptions> {
    let path = if args.file.is_absolute() {
        args.file.clone()
    } else {
        std::env::current_dir()
            .context("failed to read the current directory")?
            .join(&args.file)
    };
    Ok(EvalOptions {
        path: normalize(path),
        args: args.args.clone(),
        subcommand: subcommand.to_string(),
        k8s: args.k8s_overrides(),
    })
}

/// Drops `.` components (`./Tiltfile`), so paths in messages and watches read cleanly.
fn normalize(path: PathBuf) -> PathBuf {
    path.components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect()
}

pub(super) fn engine_config(
    tiltfile: &TiltfileArgs,
    server: &ServerArgs,
    mode: Mode,
    subcommand: &str,
) -> anyhow::Result<EngineConfig> {
    let options = eval_options(tiltfile, subcommand)?;
    let mut config = EngineConfig::new(
        options.path.clone(),
        Arc::new(TiltfileLoader(options)),
        mode,
    );
    config.debounce = DebounceConfig {
        quiet: Duration::from_millis(server.debounce_ms),
        ..DebounceConfig::default()
    };
    config.stop_grace = Duration::from_secs(server.stop_grace_secs);
    config.web_host = server.host.clone();
    config.web_port = server.port;
    config.log_limit_bytes = server.log_limit_mb.saturating_mul(1 << 20);
    config.k8s = tiltfile.k8s_overrides();
    Ok(config)
}

/// SIGINT and SIGTERM, counted: the first stops gracefully, the next kills at once.
pub(super) struct Signals {
    int: Signal,
    term: Signal,
    count: u32,
}

impl Signals {
    pub(super) fn new() -> anyhow::Result<Self> {
        Ok(Signals {
            int: signal(SignalKind::interrupt()).context("failed to handle SIGINT")?,
            term: signal(SignalKind::terminate()).context("failed to handle SIGTERM")?,
            count: 0,
        })
    }

    /// Waits for the next SIGINT or SIGTERM.
    pub(super) async fn next(&mut self) {
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
        }
        self.count += 1;
    }

    /// Counts a stop asked for another way (the status view's quit key) and escalates.
    pub(super) fn request_stop(&mut self, handle: &EngineHandle) {
        self.count += 1;
        self.escalate(handle);
    }

    /// Asks the engine to stop: gracefully the first time, at once after that.
    pub(super) fn escalate(&self, handle: &EngineHandle) {
        if self.count <= 1 {
            eprintln!("Stopping resources (press Ctrl-C again to kill them at once)...");
            handle.shutdown(false);
        } else {
            eprintln!("Killing resources...");
            handle.shutdown(true);
        }
    }
}
