//! Terminal output for `tiltrs up` and `tiltrs ci`: every log line prefixed with its
//! resource name, right-aligned and coloured, as Tilt's stream mode prints it.
//!
//! Colour is used only when stdout is a terminal and `NO_COLOR` is unset. The printer runs on
//! its own thread so a slow terminal never stalls the engine.

use std::io::{IsTerminal, Write};
use std::thread::JoinHandle;

use tokio::sync::broadcast;

use crate::engine::{LogKind, LogLine, Store, TILTFILE_SPAN};

const COLOURS: &[&str] = &[
    "\x1b[36m", "\x1b[32m", "\x1b[35m", "\x1b[33m", "\x1b[34m", "\x1b[96m", "\x1b[92m", "\x1b[95m",
];
const RESET: &str = "\x1b[0m";
const RED: &str = "\x1b[31m";
const DIM: &str = "\x1b[2m";
/// Prefixes are padded up to this width; longer names are shown whole.
pub const MAX_PAD: usize = 24;

/// Whether to colour stdout.
pub fn use_colour() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stdout().is_terminal()
}

/// Formats one line. `width` is the prefix width.
pub fn format_line(line: &LogLine, width: usize, colour: bool) -> String {
    format_parts(&line.span, line.kind, &line.text, width, colour)
}

/// Formats a line of `name`'s log of `kind`.
pub fn format_parts(name: &str, kind: LogKind, text: &str, width: usize, colour: bool) -> String {
    let pad = width.saturating_sub(name.chars().count());
    let prefix = format!("{}{name}", " ".repeat(pad));
    if !colour {
        return format!("{prefix} │ {text}");
    }
    let c = if name == TILTFILE_SPAN {
        DIM
    } else {
        let h = name
            .bytes()
            .fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize));
        COLOURS[h % COLOURS.len()]
    };
    match kind {
        LogKind::Output => format!("{c}{prefix}{RESET} │ {text}"),
        LogKind::Event => format!("{c}{prefix}{RESET} │ {DIM}{text}{RESET}"),
        LogKind::Error => format!("{c}{prefix}{RESET} │ {RED}{text}{RESET}"),
    }
}

/// Prints the store's log stream to stdout until the store's sender side is gone or
/// [`Printer::finish`] is called.
#[derive(Debug)]
pub struct Printer {
    stop: std::sync::mpsc::Sender<()>,
    thread: Option<JoinHandle<()>>,
}

impl Printer {
    /// Starts printing lines logged from now on.
    pub fn start(store: &Store) -> Self {
        let mut rx = store.subscribe_logs();
        let states = store.subscribe();
        let colour = use_colour();
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("tiltrs-printer".into())
            .spawn(move || {
                let stdout = std::io::stdout();
                let width_of = || {
                    let st = states.borrow();
                    st.resources
                        .iter()
                        .map(|r| r.name.chars().count())
                        .chain([TILTFILE_SPAN.len()])
                        .max()
                        .unwrap_or(0)
                        .min(MAX_PAD)
                };
                loop {
                    let line = match rx.blocking_recv() {
                        Ok(l) => l,
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            let _ = writeln!(
                                stdout.lock(),
                                "... {n} log lines skipped (terminal too slow)"
                            );
                            continue;
                        }
                        Err(broadcast::error::RecvError::Closed) => break,
                    };
                    if line.span.is_empty() {
                        if stopped.try_recv().is_ok() {
                            break;
                        }
                        continue;
                    }
                    let text = format_line(&line, width_of(), colour);
                    let mut out = stdout.lock();
                    let _ = writeln!(out, "{text}");
                    let _ = out.flush();
                }
            })
            .ok();
        Printer { stop, thread }
    }

    /// Prints what is still queued, then stops.
    pub fn finish(mut self, store: &Store) {
        let _ = self.stop.send(());
        // The marker wakes the thread; it stops after printing everything before it.
        store.send_marker();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn pads_and_prefixes() {
        let line = LogLine {
            seq: 1,
            time: std::time::SystemTime::now(),
            span: Arc::from("web"),
            kind: LogKind::Output,
            text: "hello".into(),
        };
        assert_eq!(format_line(&line, 6, false), "   web │ hello");
        assert!(format_line(&line, 6, true).contains("\x1b["));
    }
}
