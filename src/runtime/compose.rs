//! The Docker Compose runtime: deploying one service with the real Compose implementation, and
//! following its container through the engine's event and log streams.
//!
//! Deploys run `docker compose` (or `docker-compose` when the plugin is missing) with the
//! project's files, `up --no-deps -d SERVICE`, as Tilt does. A service whose image tiltrs built
//! gets an override file (kept outside the project) that points it at the built tag, so Compose
//! recreates the container exactly when the image changed. [`ComposeFollower`] subscribes to
//! the engine's events for the service's container (start, die, health) and streams the logs of
//! each container it sees start; nothing polls the CLI.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::query_parameters::{EventsOptions, ListContainersOptions, LogsOptions};
use futures_util::StreamExt;
use thiserror::Error;
use tokio::sync::OnceCell;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::LogSink;
use super::local::{CmdOutcome, run_cmd};
use super::process::display_command;
use crate::docker::{DockerError, DockerHandle};
use crate::model::ComposeSpec;

const PROJECT_LABEL: &str = "com.docker.compose.project";
const SERVICE_LABEL: &str = "com.docker.compose.service";

#[derive(Debug, Error)]
pub enum ComposeError {
    #[error(
        "neither `docker compose` nor `docker-compose` is installed; Docker Compose resources need one of them"
    )]
    NoCompose,
    #[error("{command} failed: {status}")]
    Command { command: String, status: String },
    #[error("writing the Compose override file {path}: {source}")]
    Override {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("Compose reported success, but no container of service {service} exists")]
    NoContainer { service: String },
    #[error(transparent)]
    Docker(#[from] DockerError),
    #[error("cancelled")]
    Cancelled,
}

/// How commands are run: environment, output and stopping.
#[derive(Clone)]
pub struct CommandEnv {
    pub env: BTreeMap<String, String>,
    pub log: Arc<dyn LogSink>,
    pub cancel: CancellationToken,
    pub grace: Duration,
    pub kill_now: CancellationToken,
}

/// The Compose command line: `["docker", "compose"]` or `["docker-compose"]`, found once.
pub async fn compose_program() -> Result<Vec<String>, ComposeError> {
    static PROGRAM: OnceCell<Option<Vec<String>>> = OnceCell::const_new();
    let found = PROGRAM
        .get_or_init(|| async {
            for candidate in [vec!["docker", "compose"], vec!["docker-compose"]] {
                let mut cmd = tokio::process::Command::new(candidate[0]);
                cmd.args(&candidate[1..])
                    .arg("version")
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .process_group(0)
                    .kill_on_drop(true);
                if cmd.status().await.is_ok_and(|s| s.success()) {
                    return Some(candidate.iter().map(|s| s.to_string()).collect());
                }
            }
            None
        })
        .await;
    found.clone().ok_or(ComposeError::NoCompose)
}

/// `-p PROJECT --project-directory DIR -f FILE... [--env-file F] [--profile P...]`.
fn project_args(spec: &ComposeSpec) -> Vec<String> {
    let mut args = vec![
        "--project-name".to_string(),
        spec.project.clone(),
        "--project-directory".to_string(),
        spec.project_dir.display().to_string(),
    ];
    for file in &spec.config_files {
        args.push("--file".into());
        args.push(file.display().to_string());
    }
    if let Some(env_file) = &spec.env_file {
        args.push("--env-file".into());
        args.push(env_file.display().to_string());
    }
    for profile in &spec.profiles {
        args.push("--profile".into());
        args.push(profile.clone());
    }
    args
}

/// What tiltrs changes in a service's definition for a deploy. (`entrypoint=` and
/// `container_args=` are rejected for Compose at load time, as in Tilt.)
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServiceOverride {
    /// The built image to run.
    pub image: Option<String>,
}

/// Where tiltrs keeps files it generates for a Compose project (never inside the project, so
/// writing them triggers no watch).
fn state_dir(project: &str) -> PathBuf {
    std::env::temp_dir()
        .join(format!("tiltrs-{}", nix::unistd::getuid()))
        .join("compose")
        .join(project)
}

/// The `version:` of the project's files, which a Compose v1 override must repeat.
fn compose_file_version(spec: &ComposeSpec) -> Option<String> {
    spec.config_files.iter().find_map(|f| {
        let text = std::fs::read_to_string(f).ok()?;
        let doc: serde_json::Value = yaml_serde::from_str(&text).ok()?;
        match doc.get("version")? {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    })
}

fn write_override(spec: &ComposeSpec, o: &ServiceOverride) -> Result<PathBuf, ComposeError> {
    let dir = state_dir(&spec.project);
    let path = dir.join(format!("{}.override.yml", spec.service));
    let mut service = serde_json::Map::new();
    if let Some(image) = &o.image {
        service.insert("image".into(), image.clone().into());
    }
    let mut doc = serde_json::json!({ "services": { spec.service.clone(): service } });
    if let Some(version) = compose_file_version(spec) {
        doc["version"] = version.into();
    }
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(&dir)?;
        std::fs::write(&path, doc.to_string())
    };
    write().map_err(|source| ComposeError::Override {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

async fn run_compose(
    args: Vec<String>,
    dir: PathBuf,
    env: &CommandEnv,
) -> Result<(), ComposeError> {
    let mut argv = compose_program().await?;
    argv.extend(args);
    env.log
        .line(&format!("Running: {}", display_command(&argv)));
    match run_cmd(
        &argv,
        dir,
        env.env.clone(),
        env.log.clone(),
        env.cancel.clone(),
        env.grace,
        env.kill_now.clone(),
    )
    .await
    {
        CmdOutcome::Success => Ok(()),
        CmdOutcome::Cancelled => Err(ComposeError::Cancelled),
        CmdOutcome::Failed(status) | CmdOutcome::SpawnFailed(status) => {
            Err(ComposeError::Command {
                command: display_command(&argv),
                status,
            })
        }
    }
}

/// A container of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerRef {
    pub id: String,
    pub name: String,
}

/// A container as a deploy left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployed {
    pub container: ContainerRef,
    pub running: bool,
    /// Set when it already stopped.
    pub exit_code: Option<i64>,
}

/// One lock per Compose project: concurrent `up`s of one project race to create its network.
fn project_lock(project: &str) -> Arc<tokio::sync::Mutex<()>> {
    static LOCKS: std::sync::Mutex<BTreeMap<String, Arc<tokio::sync::Mutex<()>>>> =
        std::sync::Mutex::new(BTreeMap::new());
    let mut locks = LOCKS.lock().unwrap_or_else(|e| e.into_inner());
    locks.entry(project.to_string()).or_default().clone()
}

/// `up --no-deps -d SERVICE` with `o` applied; returns the service's container and its state
/// (a container that exits at once has stopped before `up` returns). `up`s of one project run
/// one at a time.
pub async fn up(
    docker: &DockerHandle,
    spec: &ComposeSpec,
    o: &ServiceOverride,
    env: &CommandEnv,
) -> Result<Deployed, ComposeError> {
    let mut args = project_args(spec);
    if o.image.is_some() {
        let path = write_override(spec, o)?;
        args.push("--file".into());
        args.push(path.display().to_string());
    }
    args.extend(["up", "--no-deps", "-d"].map(String::from));
    if o.image.is_some() {
        args.push("--no-build".into());
    }
    args.push(spec.service.clone());
    let lock = project_lock(&spec.project);
    let _serial = tokio::select! {
        guard = lock.lock() => guard,
        _ = env.cancel.cancelled() => return Err(ComposeError::Cancelled),
    };
    run_compose(args, spec.project_dir.clone(), env).await?;
    let docker = docker.get().await?;
    let container = find_container(&docker, &spec.project, &spec.service)
        .await?
        .ok_or_else(|| ComposeError::NoContainer {
            service: spec.service.clone(),
        })?;
    let state = docker
        .inspect_container(&container.id, None)
        .await
        .map_err(DockerError::api(format!(
            "inspecting container {}",
            container.name
        )))?
        .state
        .unwrap_or_default();
    let running = state.running.unwrap_or(false);
    Ok(Deployed {
        container,
        running,
        exit_code: if running { None } else { state.exit_code },
    })
}

/// `down --remove-orphans` for the project `spec` belongs to.
pub async fn down(spec: &ComposeSpec, env: &CommandEnv) -> Result<(), ComposeError> {
    let mut args = project_args(spec);
    args.extend(["down", "--remove-orphans"].map(String::from));
    run_compose(args, spec.project_dir.clone(), env).await?;
    let _ = std::fs::remove_dir_all(state_dir(&spec.project));
    Ok(())
}

fn label_filters(project: &str, service: &str) -> HashMap<String, Vec<String>> {
    HashMap::from([(
        "label".to_string(),
        vec![
            format!("{PROJECT_LABEL}={project}"),
            format!("{SERVICE_LABEL}={service}"),
        ],
    )])
}

/// The newest container of `service` in `project`, running or not.
pub async fn find_container(
    docker: &Docker,
    project: &str,
    service: &str,
) -> Result<Option<ContainerRef>, ComposeError> {
    let options = ListContainersOptions {
        all: true,
        filters: Some(label_filters(project, service)),
        ..Default::default()
    };
    let mut list = docker
        .list_containers(Some(options))
        .await
        .map_err(DockerError::api(format!("listing containers of {service}")))?;
    list.sort_by_key(|c| std::cmp::Reverse(c.created.unwrap_or_default()));
    Ok(list.into_iter().find_map(|c| {
        let name = c
            .names
            .as_ref()
            .and_then(|n| n.first())
            .map(|n| n.trim_start_matches('/').to_string())
            .unwrap_or_default();
        Some(ContainerRef { id: c.id?, name })
    }))
}

/// What happened to a service's container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerEvent {
    /// A container runs (`health` is its health status when it has a healthcheck).
    Running {
        container: ContainerRef,
        health: Option<String>,
    },
    /// Its health status changed (`healthy`, `unhealthy`, `starting`).
    Health { id: String, status: String },
    /// It stopped with this exit code.
    Exited { id: String, exit_code: i64 },
    /// The follower lost the engine (it keeps retrying).
    Error(String),
}

/// Follows one service's containers until dropped or stopped.
pub struct ComposeFollower {
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for ComposeFollower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ComposeFollower").finish_non_exhaustive()
    }
}

impl Drop for ComposeFollower {
    fn drop(&mut self) {
        self.cancel.cancel();
        self.task.abort();
    }
}

type EventCallback = Arc<dyn Fn(ContainerEvent) + Send + Sync>;

impl ComposeFollower {
    /// Starts following `service` of `project`: container events go to `events`, container
    /// output to `log`.
    pub fn spawn(
        docker: DockerHandle,
        project: String,
        service: String,
        log: Arc<dyn LogSink>,
        events: EventCallback,
    ) -> ComposeFollower {
        let cancel = CancellationToken::new();
        let task = tokio::spawn(follow(
            docker,
            project,
            service,
            log,
            events,
            cancel.clone(),
        ));
        ComposeFollower { cancel, task }
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

async fn follow(
    handle: DockerHandle,
    project: String,
    service: String,
    log: Arc<dyn LogSink>,
    events: EventCallback,
    cancel: CancellationToken,
) {
    let mut retry = Duration::from_millis(500);
    let mut logs: Option<(String, JoinHandle<()>)> = None;
    let mut since = unix_now();
    loop {
        let docker = match handle.get().await {
            Ok(d) => d,
            Err(e) => {
                events(ContainerEvent::Error(e.to_string()));
                tokio::select! {
                    _ = tokio::time::sleep(retry) => {}
                    _ = cancel.cancelled() => break,
                }
                retry = (retry * 2).min(Duration::from_secs(10));
                continue;
            }
        };
        let mut filters = label_filters(&project, &service);
        filters.insert("type".into(), vec!["container".into()]);
        // Subscribe first, then look at the current container, so no start is missed.
        let options = EventsOptions {
            since: Some(since.to_string()),
            filters: Some(filters),
            ..Default::default()
        };
        let mut stream = docker.events(Some(options));
        if let Ok(Some(c)) = find_container(&docker, &project, &service).await
            && let Ok(inspect) = docker.inspect_container(&c.id, None).await
        {
            let state = inspect.state.unwrap_or_default();
            if state.running == Some(true) {
                let health = state.health.and_then(|h| h.status).map(|s| s.to_string());
                let started = state
                    .started_at
                    .as_deref()
                    .and_then(|s| humantime::parse_rfc3339_weak(s.get(..19)?).ok())
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map(|d| d.as_secs() as i64)
                    .unwrap_or(since);
                attach_logs(&docker, &c.id, started.max(since), &log, &mut logs);
                events(ContainerEvent::Running {
                    container: c,
                    health,
                });
            }
        }
        retry = Duration::from_millis(500);
        loop {
            let item = tokio::select! {
                item = stream.next() => item,
                _ = cancel.cancelled() => {
                    if let Some((_, task)) = logs.take() { task.abort(); }
                    return;
                }
            };
            let Some(Ok(event)) = item else { break };
            let Some(actor) = event.actor else { continue };
            let Some(id) = actor.id else { continue };
            let attrs = actor.attributes.unwrap_or_default();
            let action = event.action.unwrap_or_default();
            if let Some(t) = event.time {
                since = since.max(t);
            }
            match action.as_str() {
                "start" => {
                    let name = attrs.get("name").cloned().unwrap_or_default();
                    attach_logs(&docker, &id, event.time.unwrap_or(since), &log, &mut logs);
                    events(ContainerEvent::Running {
                        container: ContainerRef { id, name },
                        health: None,
                    });
                }
                "die" => {
                    let exit_code = attrs
                        .get("exitCode")
                        .and_then(|c| c.parse().ok())
                        .unwrap_or(-1);
                    events(ContainerEvent::Exited { id, exit_code });
                }
                a if a.starts_with("health_status") => {
                    let status = a
                        .split_once(':')
                        .map(|(_, s)| s.trim().to_string())
                        .unwrap_or_default();
                    events(ContainerEvent::Health { id, status });
                }
                _ => {}
            }
        }
        // The event stream ended (daemon restart): resubscribe from where it stopped.
        tokio::select! {
            _ = tokio::time::sleep(retry) => {}
            _ = cancel.cancelled() => break,
        }
    }
    if let Some((_, task)) = logs.take() {
        task.abort();
    }
}

/// Streams the output of container `id` since `since` (unix seconds) to `log`, replacing the
/// stream of an earlier container.
fn attach_logs(
    docker: &Docker,
    id: &str,
    since: i64,
    log: &Arc<dyn LogSink>,
    current: &mut Option<(String, JoinHandle<()>)>,
) {
    if current
        .as_ref()
        .is_some_and(|(cur, task)| cur == id && !task.is_finished())
    {
        return;
    }
    if let Some((_, task)) = current.take() {
        task.abort();
    }
    let options = LogsOptions {
        follow: true,
        stdout: true,
        stderr: true,
        since: i32::try_from(since).unwrap_or_default(),
        ..Default::default()
    };
    let mut stream = docker.logs(id, Some(options));
    let log = log.clone();
    let task = tokio::spawn(async move {
        let mut partial = String::new();
        while let Some(Ok(chunk)) = stream.next().await {
            let bytes = match &chunk {
                LogOutput::StdOut { message }
                | LogOutput::StdErr { message }
                | LogOutput::Console { message } => message,
                LogOutput::StdIn { .. } => continue,
            };
            partial.push_str(&String::from_utf8_lossy(bytes));
            while let Some(pos) = partial.find('\n') {
                let line: String = partial.drain(..=pos).collect();
                log.line(line.trim_end_matches(['\n', '\r']));
            }
        }
        if !partial.is_empty() {
            log.line(&partial);
        }
    });
    *current = Some((id.to_string(), task));
}
