//! `tiltrs get` and `tiltrs describe`: the running session's resources and session info,
//! as a table, JSON or YAML, or described in full.

use std::process::ExitCode;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::bail;
use clap::{Args, ValueEnum};
use serde::Serialize;

use super::client::{Client, SessionArgs};
use crate::api::views::{BuildView, ResourceList, ResourceView, RuntimeView, SessionView};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Output {
    Json,
    Yaml,
    Wide,
}

#[derive(Debug, Args)]
pub struct GetArgs {
    /// What to list: `resources` (default) or `session`.
    #[arg(default_value = "resources")]
    pub kind: String,
    /// Only these resources.
    pub names: Vec<String>,
    /// Output format (default: a table).
    #[arg(short = 'o', long = "output", value_enum)]
    pub output: Option<Output>,
    #[command(flatten)]
    pub session: SessionArgs,
}

#[derive(Debug, Args)]
pub struct DescribeArgs {
    /// `resource` (the only kind for now).
    pub kind: String,
    /// The resources to describe.
    #[arg(required = true)]
    pub names: Vec<String>,
    #[command(flatten)]
    pub session: SessionArgs,
}

fn is_resource_kind(kind: &str) -> bool {
    matches!(
        kind,
        "resource" | "resources" | "uiresource" | "uiresources" | "uir"
    )
}

pub fn run_get(args: GetArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.session);
    if matches!(args.kind.as_str(), "session" | "sessions") {
        let session: SessionView = client.get("/api/session")?;
        match args.output {
            Some(Output::Json) => print_json(&session)?,
            Some(Output::Yaml) => print_yaml(&session)?,
            _ => print_session(&session),
        }
        return Ok(ExitCode::SUCCESS);
    }
    if !is_resource_kind(&args.kind) {
        bail!(
            "unknown kind {:?}: expected `resources` or `session`",
            args.kind
        );
    }
    let mut list: ResourceList = client.get("/api/resources")?;
    if !args.names.is_empty() {
        if let Some(missing) = args
            .names
            .iter()
            .find(|n| !list.resources.iter().any(|r| &r.name == *n))
        {
            bail!("no resource named {missing:?}");
        }
        list.resources.retain(|r| args.names.contains(&r.name));
    }
    match args.output {
        Some(Output::Json) => print_json(&list)?,
        Some(Output::Yaml) => print_yaml(&list)?,
        Some(Output::Wide) => print!("{}", table(&list.resources, true)),
        None => print!("{}", table(&list.resources, false)),
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run_describe(args: DescribeArgs) -> anyhow::Result<ExitCode> {
    if !is_resource_kind(&args.kind) {
        bail!("unknown kind {:?}: expected `resource`", args.kind);
    }
    let client = Client::new(&args.session);
    for (i, name) in args.names.iter().enumerate() {
        let r: ResourceView = client.get(&format!("/api/resources/{}", path_segment(name)))?;
        if i > 0 {
            println!();
        }
        print!("{}", describe(&r));
    }
    Ok(ExitCode::SUCCESS)
}

/// Percent-encodes a resource name for a URL path.
pub(super) fn path_segment(name: &str) -> String {
    form_urlencoded::byte_serialize(name.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

fn print_json(value: &impl Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn print_yaml(value: &impl Serialize) -> anyhow::Result<()> {
    print!("{}", yaml_serde::to_string(value)?);
    Ok(())
}

fn print_session(s: &SessionView) {
    println!("Tiltfile: {}", s.tiltfile.path);
    let status = match (&s.tiltfile.error, s.tiltfile.loading) {
        (_, true) => "loading".to_string(),
        (Some(e), _) => format!("error: {}", e.lines().next().unwrap_or("")),
        (None, _) => "ok".to_string(),
    };
    println!("Status:   {status}");
    println!("Args:     {}", s.args.join(" "));
    println!("PID:      {}", s.pid);
    println!(
        "Logs:     {} of {} bytes kept, {} lines dropped",
        s.logs.used_bytes, s.logs.limit_bytes, s.logs.dropped_lines
    );
}

fn duration_text(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms}ms")
    } else {
        format!("{:.1}s", ms as f64 / 1000.0)
    }
}

fn last_build_text(r: &ResourceView) -> String {
    match (&r.current_build, &r.last_build) {
        (Some(_), _) => "building".to_string(),
        (None, Some(b)) => b.duration_ms.map(duration_text).unwrap_or_default(),
        (None, None) => "-".to_string(),
    }
}

fn snake(value: &impl Serialize) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Columns padded to their widest cell.
fn table(resources: &[ResourceView], wide: bool) -> String {
    let mut rows = vec![{
        let mut h = vec!["NAME", "TYPE", "STATUS", "UPDATE", "RUNTIME", "LAST BUILD"];
        if wide {
            h.extend(["TRIGGER", "LABELS", "LAST ERROR"]);
        }
        h.into_iter().map(str::to_string).collect::<Vec<_>>()
    }];
    for r in resources {
        let mut row = vec![
            r.name.clone(),
            snake(&r.kind),
            r.status.as_str().to_string(),
            snake(&r.update_status),
            snake(&r.runtime_status),
            last_build_text(r),
        ];
        if wide {
            row.push(snake(&r.trigger_mode));
            row.push(r.labels.join(","));
            row.push(
                r.last_error
                    .as_deref()
                    .and_then(|e| e.lines().next())
                    .unwrap_or("")
                    .to_string(),
            );
        }
        rows.push(row);
    }
    let columns = rows[0].len();
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, cell)| format!("{cell:<width$}", width = widths[c]))
            .collect();
        out.push_str(cells.join("   ").trim_end());
        out.push('\n');
    }
    out
}

fn time_text(ms: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

fn build_line(b: &BuildView) -> String {
    let result = b.result.map(|r| snake(&r)).unwrap_or_default();
    let took = b.duration_ms.map(duration_text).unwrap_or_default();
    let mut line = format!(
        "{}  {took:>6}  {result:<9}  {}",
        time_text(b.start),
        b.reason
    );
    if let Some(e) = &b.error {
        line.push_str(&format!("  ({})", e.lines().next().unwrap_or("")));
    }
    line
}

/// A resource in full, one field per line.
fn describe(r: &ResourceView) -> String {
    let mut out = String::new();
    let mut field = |name: &str, value: String| {
        if !value.is_empty() {
            out.push_str(&format!("{:<15}{value}\n", format!("{name}:")));
        }
    };
    field("Name", r.name.clone());
    field("Type", snake(&r.kind));
    field("Labels", r.labels.join(", "));
    field(
        "Status",
        format!(
            "{} (update: {}, runtime: {})",
            r.status.as_str(),
            snake(&r.update_status),
            snake(&r.runtime_status)
        ),
    );
    field("Ready", r.ready.to_string());
    field("Enabled", r.enabled.to_string());
    field("Trigger mode", snake(&r.trigger_mode));
    field("Depends on", r.resource_deps.join(", "));
    field("Images", r.image_refs.join(", "));
    field(
        "Links",
        r.links
            .iter()
            .map(|l| l.url.clone())
            .chain(r.port_forwards.iter().map(|p| p.url.clone()))
            .collect::<Vec<_>>()
            .join(", "),
    );
    field("Queued", r.queued.clone().unwrap_or_default());
    field("Pending files", r.pending_changes.join(", "));
    if let Some(b) = &r.current_build {
        field(
            "Building",
            format!("since {} ({})", time_text(b.start), b.reason),
        );
    }
    field(
        "Runtime",
        match &r.runtime {
            Some(RuntimeView::Process {
                pid,
                ready,
                crashes,
                last_exit,
                ..
            }) => format!(
                "process {}, {}, {crashes} crashes{}",
                pid.map(|p| format!("pid {p}"))
                    .unwrap_or("not running".into()),
                if *ready { "ready" } else { "not ready" },
                last_exit
                    .as_deref()
                    .map(|e| format!(", last exit: {e}"))
                    .unwrap_or_default()
            ),
            Some(RuntimeView::Container {
                name,
                running,
                health,
                exit_code,
                ..
            }) => format!(
                "container {name}, {}{}{}",
                if *running { "running" } else { "stopped" },
                health
                    .as_deref()
                    .map(|h| format!(", {h}"))
                    .unwrap_or_default(),
                exit_code
                    .map(|c| format!(", exit code {c}"))
                    .unwrap_or_default()
            ),
            Some(RuntimeView::Kubernetes { pods, .. }) => pods
                .iter()
                .map(|p| {
                    format!(
                        "pod {}/{} {}{}, {} restarts{}{}",
                        p.namespace,
                        p.name,
                        p.phase,
                        if p.ready { ", ready" } else { "" },
                        p.restarts,
                        p.waiting
                            .as_deref()
                            .map(|w| format!(", {w}"))
                            .unwrap_or_default(),
                        if p.deleting { ", deleting" } else { "" }
                    )
                })
                .collect::<Vec<_>>()
                .join("; "),
            None => String::new(),
        },
    );
    if let Some(RuntimeView::Kubernetes { applied, .. }) = &r.runtime {
        field("Applied", applied.join(", "));
    }
    for pf in &r.port_forwards {
        if let Some(state) = &pf.state {
            field(
                "Port forward",
                format!(
                    "{} -> {}{}{}",
                    pf.url,
                    pf.pod.as_deref().unwrap_or("(no pod)"),
                    pf.spec
                        .container_port
                        .map(|p| format!(":{p}"))
                        .unwrap_or_default(),
                    match &pf.error {
                        Some(e) => format!(" ({state}: {e})"),
                        None => format!(" ({state})"),
                    }
                ),
            );
        }
    }
    field("Last error", r.last_error.clone().unwrap_or_default());
    if !r.build_history.is_empty() {
        out.push_str("Builds (newest first):\n");
        for b in r.build_history.iter().rev() {
            out.push_str(&format!("  {}\n", build_line(b)));
        }
    }
    out
}
