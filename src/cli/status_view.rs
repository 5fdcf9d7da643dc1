//! The full-screen status view of `tiltrs up` on a terminal: a header (Tiltfile, UI address,
//! counts), a table of resources and their states, the last log lines of the selected resource,
//! and keys to open the browser, trigger a resource, switch to the log stream or quit.
//!
//! It owns the terminal while it runs (raw mode, alternate screen) and gives it back however it
//! ends. Nothing polls: it draws when the engine state changes, when the selected resource logs
//! (both coalesced to at most one frame per [`MIN_FRAME`]), on input, and once a second only
//! while something is building, to advance its elapsed time.

use std::future::Future;
use std::io::{self, BufWriter, Stdout};
use std::pin::pin;
use std::process::Stdio;
use std::str::Chars;
use std::time::{Duration, SystemTime};

use crossterm::event::{Event, EventStream, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use crossterm::terminal::{EnterAlternateScreen, LeaveAlternateScreen};
use crossterm::{cursor, execute, terminal};
use futures_util::StreamExt as _;
use ratatui::backend::CrosstermBackend;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style, Stylize as _};
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table, TableState};
use ratatui::{Frame, Terminal};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::engine::state::{Status, TiltfileState};
use crate::engine::{
    EngineState, LogLine, ResourceState, RuntimeStatus, Store, TILTFILE_SPAN, UpdateStatus,
};
use crate::model::ResourceType;

/// State changes and log lines are drawn at most this often.
const MIN_FRAME: Duration = Duration::from_millis(50);
/// How often elapsed build times advance on screen.
const TICK: Duration = Duration::from_secs(1);
/// Log lines of the selected resource fetched per frame (the panel shows what fits).
const MAX_TAIL: u16 = 12;
/// The keys, as the footer lists them.
const KEYS: &[(&str, &str)] = &[
    ("b", "open browser"),
    ("s", "stream logs"),
    ("↑/↓", "select"),
    ("t", "trigger selected"),
    ("q", "quit"),
];

type Term = Terminal<CrosstermBackend<BufWriter<Stdout>>>;

/// Why the user left the view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ViewExit {
    Quit,
    Stream,
}

/// Runs the full-screen status view until the user quits (`q`, or Ctrl-C, which arrives as a
/// key in raw mode) -> `Quit`; presses `s` -> `Stream` (the caller switches to the plain log
/// stream; also returned if the terminal's input ends); or `engine_done` resolves -> `Quit`.
/// `t` calls `trigger` with the selected resource's name.
///
/// The terminal is restored on every exit path, including when the returned future is dropped.
pub(super) async fn run(
    store: Store,
    ui_url: String,
    trigger: impl Fn(String) + 'static,
    engine_done: impl Future<Output = ()>,
) -> io::Result<ViewExit> {
    let _screen = Screen::enter()?;
    let mut terminal = Terminal::new(CrosstermBackend::new(BufWriter::new(io::stdout())))?;
    let mut states = store.subscribe();
    let mut state = states.borrow_and_update().clone();
    let mut logs = store.subscribe_logs();
    let mut logs_open = true;
    let mut events = EventStream::new();
    let (notes_tx, mut notes) = mpsc::unbounded_channel();
    let mut view = View {
        ui_url,
        selected: None,
        message: None,
    };
    let mut redraw = Redraw::new();
    let mut engine_done = pin!(engine_done);
    loop {
        if redraw.is_due(Instant::now()) {
            state = states.borrow_and_update().clone();
            draw(&mut terminal, &store, &state, &view)?;
            redraw.drawn(Instant::now(), is_building(&state));
        }
        tokio::select! {
            () = &mut engine_done => return Ok(ViewExit::Quit),
            event = events.next() => {
                let Some(event) = event else { return Ok(ViewExit::Stream) };
                if let Some(exit) = on_event(event?, &state, &mut view, &trigger, &notes_tx) {
                    return Ok(exit);
                }
                redraw.now();
            }
            Ok(()) = states.changed() => redraw.soon(),
            received = logs.recv(), if logs_open => match received {
                Ok(line) if !shows(&line, &state, &view) => {}
                Ok(_) | Err(RecvError::Lagged(_)) => redraw.soon(),
                Err(RecvError::Closed) => logs_open = false,
            },
            Some(note) = notes.recv() => {
                view.message = Some(note);
                redraw.now();
            }
            () = redraw.wait() => {}
        }
    }
}

/// Raw mode, the alternate screen and a hidden cursor while alive; dropping it gives the
/// terminal back, however the view ends.
struct Screen;

impl Screen {
    fn enter() -> io::Result<Screen> {
        terminal::enable_raw_mode()?;
        let screen = Screen;
        execute!(io::stdout(), EnterAlternateScreen, cursor::Hide)?;
        // The release build aborts on panic, which skips `Drop`: restore the terminal first.
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            Screen::restore();
            previous(info);
        }));
        Ok(screen)
    }

    fn restore() {
        let _ = execute!(io::stdout(), LeaveAlternateScreen, cursor::Show);
        let _ = terminal::disable_raw_mode();
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        Screen::restore();
    }
}

/// When the next frame is due.
struct Redraw {
    last: Instant,
    due: Option<Instant>,
    /// Something is building: draw again [`TICK`] after the last frame.
    ticking: bool,
}

impl Redraw {
    fn new() -> Self {
        let now = Instant::now();
        Redraw {
            last: now,
            due: Some(now),
            ticking: false,
        }
    }

    /// At once (input).
    fn now(&mut self) {
        self.due = Some(Instant::now());
    }

    /// Coalesced: no sooner than [`MIN_FRAME`] after the last frame.
    fn soon(&mut self) {
        let at = self.last + MIN_FRAME;
        self.due = Some(self.due.map_or(at, |due| due.min(at)));
    }

    fn next(&self) -> Option<Instant> {
        self.due.or(self.ticking.then(|| self.last + TICK))
    }

    fn is_due(&self, now: Instant) -> bool {
        self.next().is_some_and(|at| at <= now)
    }

    fn drawn(&mut self, at: Instant, ticking: bool) {
        self.last = at;
        self.due = None;
        self.ticking = ticking;
    }

    /// Resolves when the next frame is due; never when none is.
    async fn wait(&self) {
        match self.next() {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    }
}

/// What the user chose and was told; everything else on screen comes from the engine state.
struct View {
    ui_url: String,
    /// The selected resource, by name so the selection survives reordering.
    selected: Option<String>,
    /// A one-off message for the footer, cleared by the next key.
    message: Option<String>,
}

impl View {
    /// Moves the selection `delta` rows, staying within the table.
    fn select(&mut self, state: &EngineState, delta: isize) {
        let Some(current) = selected_index(state, self) else {
            return;
        };
        let last = state.resources.len().saturating_sub(1);
        let next = current.saturating_add_signed(delta).min(last);
        self.selected = state.resources.get(next).map(|r| r.name.clone());
    }
}

/// The row of the selected resource: the first one when the selection is gone.
fn selected_index(state: &EngineState, view: &View) -> Option<usize> {
    if state.resources.is_empty() {
        return None;
    }
    let found = view
        .selected
        .as_deref()
        .and_then(|name| state.resources.iter().position(|r| r.name == name));
    Some(found.unwrap_or(0))
}

/// The log span shown at the bottom: the selected resource, or the Tiltfile's while there
/// are no resources.
fn selected_span<'a>(state: &'a EngineState, view: &View) -> &'a str {
    selected_index(state, view)
        .and_then(|i| state.resources.get(i))
        .map_or(TILTFILE_SPAN, |r| r.name.as_str())
}

/// Whether `line` changes what the log panel shows.
fn shows(line: &LogLine, state: &EngineState, view: &View) -> bool {
    *line.span == *selected_span(state, view)
}

fn is_building(state: &EngineState) -> bool {
    state.resources.iter().any(|r| r.current.is_some())
}

/// What a key asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Command {
    Exit(ViewExit),
    OpenBrowser,
    Move(isize),
    Trigger,
}

fn command(key: &KeyEvent) -> Option<Command> {
    if key.modifiers.contains(KeyModifiers::CONTROL) {
        return (key.code == KeyCode::Char('c')).then_some(Command::Exit(ViewExit::Quit));
    }
    Some(match key.code {
        KeyCode::Char('q') => Command::Exit(ViewExit::Quit),
        KeyCode::Char('s') => Command::Exit(ViewExit::Stream),
        KeyCode::Char('b') => Command::OpenBrowser,
        KeyCode::Char('t') => Command::Trigger,
        KeyCode::Up | KeyCode::Char('k') => Command::Move(-1),
        KeyCode::Down | KeyCode::Char('j') => Command::Move(1),
        _ => return None,
    })
}

/// Acts on one input event; returns how the view ends, if it does. Events other than keys
/// (a resize) only need the redraw the caller does after every event.
fn on_event(
    event: Event,
    state: &EngineState,
    view: &mut View,
    trigger: &dyn Fn(String),
    notes: &mpsc::UnboundedSender<String>,
) -> Option<ViewExit> {
    let Event::Key(key) = event else {
        return None;
    };
    if key.kind == KeyEventKind::Release {
        return None;
    }
    view.message = None;
    match command(&key)? {
        Command::Exit(exit) => return Some(exit),
        Command::OpenBrowser => view.message = Some(open_browser(&view.ui_url, notes)),
        Command::Move(delta) => view.select(state, delta),
        Command::Trigger => view.message = trigger_selected(state, view, trigger),
    }
    None
}

/// Triggers the selected resource; returns what to tell the user.
fn trigger_selected(state: &EngineState, view: &View, trigger: &dyn Fn(String)) -> Option<String> {
    let resource = state.resources.get(selected_index(state, view)?)?;
    if !resource.spec.enabled {
        return Some(format!("{} is disabled", resource.name));
    }
    trigger(resource.name.clone());
    Some(format!("triggered {}", resource.name))
}

/// Opens `url` in the default browser, detached: its own process group, no stdio. A task
/// reaps the opener and reports its failure through `notes`. Returns what to tell the user now.
fn open_browser(url: &str, notes: &mpsc::UnboundedSender<String>) -> String {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    let spawned = tokio::process::Command::new(opener)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .kill_on_drop(false)
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(err) => return format!("could not run {opener} ({err}); open {url} in a browser"),
    };
    let (notes, fallback) = (notes.clone(), format!("open {url} in a browser"));
    tokio::spawn(async move {
        let failure = match child.wait().await {
            Ok(status) if status.success() => return,
            Ok(status) => format!("{opener} failed ({status})"),
            Err(err) => format!("{opener} failed ({err})"),
        };
        let _ = notes.send(format!("{failure}; {fallback}"));
    });
    format!("opening {url}")
}

fn draw(terminal: &mut Term, store: &Store, state: &EngineState, view: &View) -> io::Result<()> {
    let tail = store.tail(selected_span(state, view), usize::from(MAX_TAIL));
    terminal.draw(|frame| render(frame, state, view, &tail, SystemTime::now()))?;
    Ok(())
}

/// Draws the whole screen: `tail` is the selected resource's last log lines, `now` the time
/// elapsed build times are measured to.
fn render(frame: &mut Frame, state: &EngineState, view: &View, tail: &[String], now: SystemTime) {
    let header = header(state, &view.ui_url);
    let header_height = u16::try_from(header.height()).unwrap_or(1);
    let log_height = (frame.area().height / 3).clamp(3, MAX_TAIL + 1);
    let [header_area, table_area, log_area, footer_area] = Layout::vertical([
        Constraint::Length(header_height),
        Constraint::Fill(1),
        Constraint::Length(log_height),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    frame.render_widget(Paragraph::new(header), header_area);
    render_resources(frame, table_area, state, view, now);
    render_logs(frame, log_area, selected_span(state, view), tail);
    frame.render_widget(Paragraph::new(footer(view)), footer_area);
}

/// `tiltrs`, the Tiltfile and its load status, the UI address and the counts; the Tiltfile's
/// error on a second line when its last load failed.
fn header<'a>(state: &'a EngineState, ui_url: &'a str) -> Text<'a> {
    let tiltfile = &state.tiltfile;
    let (load, load_colour) = if tiltfile.loading {
        ("loading…", Color::Yellow)
    } else if tiltfile.error.is_some() {
        ("error", Color::Red)
    } else if tiltfile.loaded_once {
        ("loaded", Color::Green)
    } else {
        ("not loaded", Color::DarkGray)
    };
    let count = |status: Status| {
        let n = state
            .resources
            .iter()
            .filter(|r| shown(r.status()) == status)
            .count();
        Span::styled(format!("{n} {}", label(status)), colour(status))
    };
    let mut text = Text::from(Line::from(vec![
        " tiltrs ".bold().reversed(),
        Span::raw(format!("  {} ", tiltfile.path.display())),
        Span::styled(load, load_colour),
        Span::raw("   "),
        Span::raw(ui_url).underlined(),
        Span::raw("   "),
        count(Status::Ok),
        Span::raw("  "),
        count(Status::Error),
        Span::raw("  "),
        count(Status::Pending),
    ]));
    if let Some(error) = &tiltfile.error {
        text.push_line(Line::styled(
            format!(" Tiltfile error: {}", plain(first_line(error))),
            Color::Red,
        ));
    }
    text
}

fn render_resources(
    frame: &mut Frame,
    area: Rect,
    state: &EngineState,
    view: &View,
    now: SystemTime,
) {
    if state.resources.is_empty() {
        frame.render_widget(Paragraph::new(no_resources(&state.tiltfile)).dim(), area);
        return;
    }
    let name_width = state
        .resources
        .iter()
        .map(|r| r.name.chars().count())
        .max()
        .unwrap_or(0)
        .clamp(8, 40);
    let widths = [
        Constraint::Length(1),
        Constraint::Length(u16::try_from(name_width).unwrap_or(40)),
        Constraint::Length(7),
        Constraint::Length(16),
        Constraint::Length(8),
        Constraint::Fill(1),
    ];
    let header = Row::new(["", "RESOURCE", "TYPE", "UPDATE", "RUNTIME", "LAST ERROR"]).dim();
    let rows = state.resources.iter().map(|r| resource_row(r, now));
    let table = Table::new(rows, widths)
        .header(header)
        .row_highlight_style(Style::new().reversed())
        .highlight_symbol("▶ ");
    let mut selection = TableState::default().with_selected(selected_index(state, view));
    frame.render_stateful_widget(table, area, &mut selection);
}

fn no_resources(tiltfile: &TiltfileState) -> &'static str {
    if tiltfile.loading {
        " Loading the Tiltfile…"
    } else if tiltfile.error.is_some() {
        " The Tiltfile did not load; its log is below."
    } else {
        " No resources."
    }
}

fn resource_row(r: &ResourceState, now: SystemTime) -> Row<'static> {
    let status = r.status();
    let row = Row::new([
        Cell::from(symbol(status)).style(colour(status)),
        Cell::from(r.name.clone()),
        Cell::from(kind_label(r.spec.kind)),
        Cell::from(update_text(r, now)),
        Cell::from(runtime_text(r)),
        Cell::from(last_error(r).unwrap_or_default()).red(),
    ]);
    if status == Status::Disabled {
        row.dark_gray()
    } else {
        row
    }
}

/// How the view shows a [`Status`]: builds count as pending.
fn shown(status: Status) -> Status {
    match status {
        Status::Building => Status::Pending,
        s => s,
    }
}

fn symbol(status: Status) -> &'static str {
    match shown(status) {
        Status::Ok => "●",
        Status::Error => "✖",
        Status::Pending => "◐",
        _ => "○",
    }
}

fn colour(status: Status) -> Color {
    match shown(status) {
        Status::Ok => Color::Green,
        Status::Error => Color::Red,
        Status::Pending => Color::Yellow,
        _ => Color::DarkGray,
    }
}

fn label(status: Status) -> &'static str {
    match shown(status) {
        Status::None => "idle",
        s => s.as_str(),
    }
}

fn kind_label(kind: ResourceType) -> &'static str {
    match kind {
        ResourceType::Local => "local",
        ResourceType::DockerCompose => "compose",
        ResourceType::K8s | ResourceType::K8sCustomDeploy => "k8s",
    }
}

/// The update column: `building 3.1s` while building, else the last result and its duration.
fn update_text(r: &ResourceState, now: SystemTime) -> String {
    if !r.spec.enabled {
        return "disabled".into();
    }
    let last = || {
        r.last_build()
            .and_then(|b| b.duration)
            .map_or(String::new(), |d| format!(" ({})", format_duration(d)))
    };
    match r.update_status() {
        UpdateStatus::InProgress => {
            let start = r.current.as_ref().map_or(now, |b| b.start);
            let elapsed = now.duration_since(start).unwrap_or_default();
            format!("building {}", format_duration(elapsed))
        }
        UpdateStatus::Pending => "pending".into(),
        UpdateStatus::Ok => format!("ok{}", last()),
        UpdateStatus::Error => format!("error{}", last()),
        UpdateStatus::None => "idle".into(),
    }
}

fn runtime_text(r: &ResourceState) -> &'static str {
    if !r.spec.enabled {
        return "-";
    }
    match r.runtime_status() {
        RuntimeStatus::NotApplicable => "-",
        RuntimeStatus::Pending => "pending",
        RuntimeStatus::Ok => "ok",
        RuntimeStatus::Error => "error",
    }
}

/// The first line of what went wrong, when the resource is in error.
fn last_error(r: &ResourceState) -> Option<String> {
    if r.status() != Status::Error {
        return None;
    }
    r.last_error().map(|e| plain(first_line(&e)))
}

fn render_logs(frame: &mut Frame, area: Rect, span: &str, tail: &[String]) {
    let block = Block::new()
        .borders(Borders::TOP)
        .border_style(Color::DarkGray)
        .title(Line::from(format!(" {span} ")).dark_gray());
    let fits = usize::from(block.inner(area).height);
    let lines: Vec<Line> = tail[tail.len().saturating_sub(fits)..]
        .iter()
        .map(|l| Line::raw(plain(l)))
        .collect();
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

/// The message of the last key, or the keys.
fn footer(view: &View) -> Line<'_> {
    if let Some(message) = &view.message {
        return Line::from(format!(" {message}")).yellow();
    }
    let mut spans = Vec::with_capacity(KEYS.len() * 2);
    for (key, action) in KEYS {
        spans.push(format!(" ({key})").bold());
        spans.push(format!(" {action} ").dim());
    }
    Line::from(spans)
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}

/// `text` without escape sequences and control characters, tabs expanded: a process's output
/// made safe to place in a cell.
fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => skip_escape(&mut chars),
            '\t' => out.push_str("    "),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Skips the rest of an escape sequence whose ESC was just read.
fn skip_escape(chars: &mut Chars) {
    match chars.next() {
        // CSI (colours, cursor moves): parameters, then a final byte in `@..=~`.
        Some('[') => {
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        }
        // OSC (titles, hyperlinks): up to BEL or ST (ESC \).
        Some(']') => {
            while let Some(c) = chars.next() {
                if c == '\x07' {
                    break;
                }
                if c == '\x1b' {
                    chars.next();
                    break;
                }
            }
        }
        // Anything else is a two-character sequence.
        _ => {}
    }
}

fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs < 60 {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format!("{}m{:02}s", secs / 60, secs % 60)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use ratatui::backend::TestBackend;

    use super::*;
    use crate::engine::{BuildReason, BuildRecord, BuildResult};
    use crate::model::Resource;

    fn built(name: &str, result: BuildResult, error: Option<&str>) -> ResourceState {
        let mut r = ResourceState::new(Resource::new(name, ResourceType::Local));
        r.history.push_back(BuildRecord {
            start: SystemTime::UNIX_EPOCH,
            end: Some(SystemTime::UNIX_EPOCH + Duration::from_millis(1200)),
            duration: Some(Duration::from_millis(1200)),
            reason: BuildReason::Initial,
            result: Some(result),
            error: error.map(str::to_string),
        });
        r
    }

    fn building(name: &str, start: SystemTime) -> ResourceState {
        let mut r = ResourceState::new(Resource::new(name, ResourceType::Local));
        r.current = Some(BuildRecord {
            start,
            end: None,
            duration: None,
            reason: BuildReason::Initial,
            result: None,
            error: None,
        });
        r
    }

    fn view() -> View {
        View {
            ui_url: "http://127.0.0.1:10350/".into(),
            selected: None,
            message: None,
        }
    }

    /// Renders `state` on a 120x20 test terminal and returns its rows.
    fn screen(state: &EngineState, view: &View, tail: &[String], now: SystemTime) -> Vec<String> {
        let mut terminal = Terminal::new(TestBackend::new(120, 20)).expect("test terminal");
        terminal
            .draw(|frame| render(frame, state, view, tail, now))
            .expect("draw");
        let buffer = terminal.backend().buffer();
        buffer
            .content()
            .chunks(usize::from(buffer.area.width))
            .map(|row| row.iter().map(|cell| cell.symbol()).collect())
            .collect()
    }

    fn sample() -> (EngineState, SystemTime) {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
        let mut disabled = built("off", BuildResult::Success, None);
        disabled.spec.enabled = false;
        let state = EngineState {
            tiltfile: Arc::new(TiltfileState {
                path: "/src/app/Tiltfile".into(),
                loaded_once: true,
                ..TiltfileState::default()
            }),
            resources: vec![
                Arc::new(built("web", BuildResult::Success, None)),
                Arc::new(built(
                    "api",
                    BuildResult::Failure,
                    Some("exit status 1: \x1b[31mboom\x1b[0m\nsecond line"),
                )),
                Arc::new(building("worker", now - Duration::from_millis(3100))),
                Arc::new(disabled),
            ],
        };
        (state, now)
    }

    fn row_with<'a>(rows: &'a [String], needle: &str) -> &'a str {
        rows.iter()
            .find(|r| r.contains(needle))
            .unwrap_or_else(|| panic!("no row with {needle:?} in {rows:#?}"))
    }

    #[test]
    fn a_failed_resource_shows_its_name_and_error() {
        let (state, now) = sample();
        let rows = screen(&state, &view(), &[], now);
        let api = row_with(&rows, "api");
        assert!(api.contains("✖"), "{api}");
        assert!(api.contains("error (1.2s)"), "{api}");
        assert!(api.contains("exit status 1: boom"), "{api}");
        assert!(!api.contains("second line"), "{api}");
        assert!(row_with(&rows, "worker").contains("building 3.1s"));
        assert!(row_with(&rows, "web").contains("ok (1.2s)"));
        assert!(row_with(&rows, "off").contains("disabled"));
    }

    #[test]
    fn the_header_shows_the_tiltfile_url_and_counts() {
        let (state, now) = sample();
        let rows = screen(&state, &view(), &[], now);
        let header = &rows[0];
        assert!(header.contains("tiltrs"), "{header}");
        assert!(header.contains("/src/app/Tiltfile loaded"), "{header}");
        assert!(header.contains("http://127.0.0.1:10350/"), "{header}");
        assert!(header.contains("1 ok  1 error  1 pending"), "{header}");
    }

    #[test]
    fn a_tiltfile_error_gets_its_own_line() {
        let (mut state, now) = sample();
        state.tiltfile = Arc::new(TiltfileState {
            error: Some("Tiltfile:3:1: name 'x' is not defined\n  x\n  ^".into()),
            ..(*state.tiltfile).clone()
        });
        let rows = screen(&state, &view(), &[], now);
        assert!(rows[0].contains("/src/app/Tiltfile error"), "{}", rows[0]);
        assert!(
            rows[1].contains("Tiltfile error: Tiltfile:3:1: name 'x' is not defined"),
            "{}",
            rows[1]
        );
        assert!(!rows[2].contains('^'), "{}", rows[2]);
    }

    #[test]
    fn the_log_panel_shows_the_selected_resource_and_the_footer_the_keys() {
        let (state, now) = sample();
        let mut view = view();
        view.select(&state, 1);
        assert_eq!(selected_span(&state, &view), "api");
        let tail = ["first".to_string(), "\x1b[1mlast\x1b[0m\tline".to_string()];
        let rows = screen(&state, &view, &tail, now);
        assert!(row_with(&rows, "▶").contains("api"));
        assert!(rows.iter().any(|r| r.starts_with(" api ─")), "{rows:#?}");
        assert!(rows.iter().any(|r| r.starts_with("last    line")));
        assert!(rows[19].contains("(b) open browser"), "{}", rows[19]);
        assert!(rows[19].contains("(q) quit"), "{}", rows[19]);
    }

    #[test]
    fn selection_stays_in_the_table() {
        let (state, _) = sample();
        let mut view = view();
        view.select(&state, -1);
        assert_eq!(selected_span(&state, &view), "web");
        for _ in 0..10 {
            view.select(&state, 1);
        }
        assert_eq!(selected_span(&state, &view), "off");
        assert_eq!(selected_span(&EngineState::default(), &view), TILTFILE_SPAN);
    }

    #[test]
    fn keys_map_to_commands() {
        let key = |code, modifiers| command(&KeyEvent::new(code, modifiers));
        let none = KeyModifiers::NONE;
        assert_eq!(
            key(KeyCode::Char('c'), KeyModifiers::CONTROL),
            Some(Command::Exit(ViewExit::Quit))
        );
        assert_eq!(
            key(KeyCode::Char('q'), none),
            Some(Command::Exit(ViewExit::Quit))
        );
        assert_eq!(
            key(KeyCode::Char('s'), none),
            Some(Command::Exit(ViewExit::Stream))
        );
        assert_eq!(key(KeyCode::Char('s'), KeyModifiers::CONTROL), None);
        assert_eq!(key(KeyCode::Up, none), Some(Command::Move(-1)));
        assert_eq!(key(KeyCode::Char('x'), none), None);
    }

    #[test]
    fn plain_drops_escapes_and_controls() {
        assert_eq!(plain("\x1b[1;31mred\x1b[0m\r"), "red");
        assert_eq!(plain("\x1b]0;title\x07a\x1b]8;;u\x1b\\b"), "ab");
        assert_eq!(plain("a\tb"), "a    b");
    }

    #[test]
    fn durations_read_like_tilt() {
        assert_eq!(format_duration(Duration::from_millis(3140)), "3.1s");
        assert_eq!(format_duration(Duration::from_secs(125)), "2m05s");
    }
}
