//! The dispatcher: the one task that owns the engine state and reacts to every event.
//!
//! Inputs are [`Msg`]s (loads, finished updates, serve events, triggers, shutdown) and
//! debounced file-change batches. Each is applied to the state; then the scheduler picks the
//! updates that may start, and the state is published. Long work (Tiltfile evaluation,
//! commands, serve processes) runs in other tasks that report back by message, tagged with an
//! id so that reports from replaced work are ignored.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::deploy::{self, DeployOutcome, DeployRequest};
use super::k8s_deploy::{self, Cluster, K8sDeployRequest, K8sOutcome};
use super::state::{
    BuildReason, BuildRecord, BuildResult, ContainerState, EngineState, ForwardView, K8sState,
    LoadRecord, ResourceState, ServeState,
};
use super::store::{LogKind, Store, TILTFILE_SPAN};
use super::{EngineConfig, EngineError, Mode, Msg, scheduler};
use crate::build::BuildEnv;
use crate::build::context::ContextFilter;
use crate::docker::DockerHandle;
use crate::graph::ResourceGraph;
use crate::k8s::follow::{FollowEvent, ResourceFollower};
use crate::k8s::portforward::ForwardState;
use crate::model::{LocalSpec, ResourceType, TiltfileResult};
use crate::runtime::LogSink;
use crate::runtime::compose::{ComposeFollower, ContainerEvent};
use crate::runtime::local::{self, CmdOutcome, ServeEvent, ServeSpec, ServeSupervisor};
use crate::runtime::process;
use crate::watch::{Batch, IgnoreMatcher, PathFilter, WatchSet, Watcher};

/// Tiltfile loads kept in the history.
const LOAD_HISTORY: usize = 10;

/// Sends a resource's process output to its log.
struct ResourceSink {
    store: Store,
    span: String,
}

impl LogSink for ResourceSink {
    fn line(&self, text: &str) {
        self.store.log(&self.span, LogKind::Output, text);
    }
}

#[derive(Default)]
struct Unit {
    build: Option<(u64, CancellationToken)>,
    serve: Option<(u64, ServeSupervisor)>,
    /// Follows a Compose service's container (dropping it stops following).
    follower: Option<(u64, ComposeFollower)>,
    /// Follows a Kubernetes resource's pods, logs and port-forwards.
    k8s: Option<(u64, ResourceFollower)>,
}

struct Dispatcher {
    cfg: EngineConfig,
    store: Store,
    tx: mpsc::UnboundedSender<Msg>,
    state: EngineState,
    dirty: bool,
    result: Option<TiltfileResult>,
    units: HashMap<String, Unit>,
    watcher: Option<Watcher>,
    failed_config_files: Vec<PathBuf>,
    loading: bool,
    reload_again: Option<BuildReason>,
    trigger_order: Vec<String>,
    /// Resources enabled or disabled through the API; they hold over the Tiltfile's choice.
    enabled_overrides: HashMap<String, bool>,
    next_id: u64,
    max_parallel: usize,
    kill_now: CancellationToken,
    shutting_down: bool,
    tasks: JoinSet<()>,
    docker: DockerHandle,
    cluster: Cluster,
}

pub(super) async fn run(
    cfg: EngineConfig,
    store: Store,
    tx: mpsc::UnboundedSender<Msg>,
    mut rx: mpsc::UnboundedReceiver<Msg>,
) {
    let mut d = Dispatcher {
        state: EngineState::default(),
        dirty: true,
        result: None,
        units: HashMap::new(),
        watcher: None,
        failed_config_files: Vec::new(),
        loading: false,
        reload_again: None,
        trigger_order: Vec::new(),
        enabled_overrides: HashMap::new(),
        next_id: 0,
        max_parallel: 3,
        kill_now: CancellationToken::new(),
        shutting_down: false,
        tasks: JoinSet::new(),
        docker: DockerHandle::default(),
        cluster: Cluster {
            handle: crate::k8s::K8sHandle::new(cfg.k8s.clone()),
            ..Cluster::default()
        },
        cfg,
        store,
        tx,
    };
    let mut batches: Option<mpsc::UnboundedReceiver<Batch>> = None;
    if d.cfg.watch {
        match Watcher::new(d.cfg.debounce) {
            Ok((w, rx)) => {
                d.watcher = Some(w);
                batches = Some(rx);
            }
            Err(e) => d.store.log(TILTFILE_SPAN, LogKind::Error, e.to_string()),
        }
    }
    {
        let ts = Arc::make_mut(&mut d.state.tiltfile);
        ts.path = d.cfg.tiltfile.clone();
        ts.args = d.cfg.loader.args();
    }
    d.update_watches();
    d.start_load(BuildReason::Initial);
    d.publish();
    loop {
        tokio::select! {
            msg = rx.recv() => match msg {
                None | Some(Msg::Stopped) => break,
                Some(msg) => d.handle(msg),
            },
            Some(batch) = recv_opt(&mut batches) => d.on_batch(batch),
            Some(_) = d.tasks.join_next(), if !d.tasks.is_empty() => {}
        }
        if d.shutting_down {
            batches = None;
        }
        d.schedule();
        d.publish();
    }
    d.dirty = true;
    d.publish();
}

async fn recv_opt<T>(rx: &mut Option<mpsc::UnboundedReceiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

fn fmt_duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

impl Dispatcher {
    fn publish(&mut self) {
        if self.dirty {
            self.dirty = false;
            self.store.publish(self.state.clone());
        }
    }

    fn event(&self, span: &str, text: impl Into<String>) {
        self.store.log(span, LogKind::Event, text);
    }

    fn error(&self, span: &str, text: impl Into<String>) {
        self.store.log(span, LogKind::Error, text);
    }

    fn resource_mut(&mut self, name: &str) -> Option<&mut ResourceState> {
        self.dirty = true;
        self.state
            .resources
            .iter_mut()
            .find(|r| r.name == name)
            .map(Arc::make_mut)
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Trigger { name, reply } => {
                let _ = reply.send(self.trigger(&name));
            }
            Msg::Reload => self.start_load(BuildReason::Trigger),
            Msg::SetEnabled {
                name,
                enabled,
                reply,
            } => {
                let _ = reply.send(self.set_enabled(&name, enabled));
            }
            Msg::SetArgs { args, reply } => {
                let _ = reply.send(self.set_args(args));
            }
            Msg::Shutdown { immediate } => self.shutdown(immediate),
            Msg::Loaded { result, record } => self.on_loaded(*result, record),
            Msg::BuildDone { name, id, outcome } => self.on_build_done(&name, id, outcome),
            Msg::Serve { name, id, event } => self.on_serve(&name, id, event),
            Msg::Deployed { name, id, outcome } => self.on_deployed(&name, id, outcome),
            Msg::Container { name, id, event } => self.on_container(&name, id, event),
            Msg::K8sDeployed { name, id, outcome } => self.on_k8s_deployed(&name, id, outcome),
            Msg::K8sFollow { name, id, event } => self.on_k8s_follow(&name, id, event),
            Msg::Stopped => {}
        }
    }

    // ---- Tiltfile loads -------------------------------------------------------------------

    fn start_load(&mut self, reason: BuildReason) {
        if self.shutting_down {
            return;
        }
        if self.loading {
            self.reload_again = Some(reason);
            return;
        }
        self.loading = true;
        self.dirty = true;
        Arc::make_mut(&mut self.state.tiltfile).loading = true;
        if let BuildReason::FileChange { .. } = &reason {
            self.event(TILTFILE_SPAN, reason.describe());
        }
        self.event(
            TILTFILE_SPAN,
            format!("Loading Tiltfile at: {}", self.cfg.tiltfile.display()),
        );
        let loader = self.cfg.loader.clone();
        let tx = self.tx.clone();
        let start = SystemTime::now();
        tokio::task::spawn_blocking(move || {
            let t0 = Instant::now();
            let result = loader.load();
            let record = LoadRecord {
                start,
                duration: t0.elapsed(),
                reason,
                error: result.as_ref().err().map(|e| e.message.clone()),
            };
            let _ = tx.send(Msg::Loaded {
                result: Box::new(result),
                record,
            });
        });
    }

    fn on_loaded(
        &mut self,
        result: Result<TiltfileResult, crate::tiltfile::TiltfileError>,
        mut record: LoadRecord,
    ) {
        self.loading = false;
        self.dirty = true;
        if self.shutting_down {
            return;
        }
        let result = result.and_then(|r| match ResourceGraph::new(&r) {
            Ok(_) => Ok(r),
            Err(e) => Err(crate::tiltfile::TiltfileError {
                message: e.to_string(),
                config_files: r.config_files.clone(),
            }),
        });
        // Register watches before reporting, so an edit made right after the report is seen.
        match &result {
            Ok(_) => self.failed_config_files.clear(),
            Err(e) => self.failed_config_files = e.config_files.clone(),
        }
        self.update_watches_with(result.as_ref().ok());
        match result {
            Ok(new) => {
                for w in &new.warnings {
                    self.error(TILTFILE_SPAN, format!("WARNING: {w}"));
                }
                self.event(
                    TILTFILE_SPAN,
                    format!(
                        "Successfully loaded Tiltfile ({})",
                        fmt_duration(record.duration)
                    ),
                );
                {
                    let ts = Arc::make_mut(&mut self.state.tiltfile);
                    ts.error = None;
                    ts.loaded_once = true;
                    ts.config_files = new.config_files.clone();
                    ts.warnings = new.warnings.clone();
                    ts.settings = new.settings.clone();
                }
                let mut new = new;
                for spec in &mut new.resources {
                    if let Some(&enabled) = self.enabled_overrides.get(&spec.name) {
                        spec.enabled = enabled;
                    }
                }
                self.apply(new);
            }
            Err(e) => {
                record.error = Some(e.message.clone());
                for line in e.message.lines() {
                    self.error(TILTFILE_SPAN, line);
                }
                if self.state.tiltfile.loaded_once {
                    self.error(
                        TILTFILE_SPAN,
                        "Tiltfile failed to load; the previous resources keep running until it is fixed",
                    );
                }
                Arc::make_mut(&mut self.state.tiltfile).error = Some(e.message);
            }
        }
        let ts = Arc::make_mut(&mut self.state.tiltfile);
        ts.loading = false;
        if ts.history.len() >= LOAD_HISTORY {
            ts.history.pop_front();
        }
        ts.history.push_back(record);
        if let Some(reason) = self.reload_again.take() {
            self.start_load(reason);
        }
    }

    /// Diffs the new result against the running graph: unchanged resources keep running,
    /// changed ones are restarted, removed ones stopped, added ones started.
    fn apply(&mut self, new: TiltfileResult) {
        let first = self.result.is_none();
        let mut old: HashMap<String, Arc<ResourceState>> = self
            .state
            .resources
            .drain(..)
            .map(|r| (r.name.clone(), r))
            .collect();
        let mut resources = Vec::with_capacity(new.resources.len());
        for spec in &new.resources {
            match old.remove(&spec.name) {
                Some(rs) if rs.spec == *spec => resources.push(rs),
                Some(rs) => {
                    let mut s = (*rs).clone();
                    let had_serve = s.serve.is_some();
                    let has_serve = spec.local.as_ref().is_some_and(|l| !l.serve_cmd.is_empty());
                    s.spec = spec.clone();
                    if let Some((_, token)) =
                        self.units.get_mut(&spec.name).and_then(|u| u.build.take())
                    {
                        token.cancel();
                        s.finish_build(BuildResult::Cancelled, Some("Tiltfile changed".into()));
                    }
                    if !spec.enabled || (had_serve && !has_serve) {
                        self.stop_serve(&spec.name);
                        s.serve = None;
                    }
                    if !spec.enabled
                        && let Some(unit) = self.units.get_mut(&spec.name)
                    {
                        unit.follower = None;
                    }
                    if has_serve && s.serve.is_none() {
                        s.serve = Some(ServeState::default());
                    }
                    if !spec.enabled {
                        s.queued = None;
                        s.pending_changes.clear();
                        self.event(&spec.name, "Resource disabled");
                    } else if spec.auto_init || s.has_built() {
                        s.queued = Some(BuildReason::TiltfileChange);
                    }
                    resources.push(Arc::new(s));
                }
                None => {
                    let mut s = ResourceState::new(spec.clone());
                    if spec.enabled && spec.auto_init {
                        s.queued = Some(BuildReason::Initial);
                    }
                    if !first {
                        self.event(TILTFILE_SPAN, format!("Added resource {}", spec.name));
                    }
                    resources.push(Arc::new(s));
                }
            }
        }
        for name in old.into_keys() {
            self.event(TILTFILE_SPAN, format!("Removed resource {name}"));
            self.stop_unit(&name);
            self.trigger_order.retain(|n| n != &name);
        }
        self.state.resources = resources;
        self.max_parallel = new.settings.max_parallel_updates.max(1) as usize;
        self.result = Some(new);
        self.dirty = true;
        self.publish();
    }

    fn update_watches(&mut self) {
        let result = self.result.take();
        self.update_watches_with(result.as_ref());
        self.result = result;
    }

    /// Watches the config files and the deps of `result` (the running one when `None`).
    fn update_watches_with(&mut self, result: Option<&TiltfileResult>) {
        if self.watcher.is_none() {
            return;
        }
        let result = result.or(self.result.as_ref());
        let mut config: Vec<PathBuf> = vec![self.cfg.tiltfile.clone()];
        let mut sets = Vec::new();
        let mut problems = Vec::new();
        if let Some(r) = result {
            config.extend(r.config_files.iter().cloned());
            for res in r.resources.iter().filter(|r| r.enabled) {
                if matches!(
                    res.kind,
                    ResourceType::DockerCompose | ResourceType::K8s | ResourceType::K8sCustomDeploy
                ) {
                    sets.extend(image_watch_sets(res, r, &mut problems));
                }
                if let Some(custom) = res.k8s.as_ref().and_then(|k| k.custom_deploy.as_ref())
                    && !custom.deps.is_empty()
                {
                    sets.push(WatchSet {
                        owner: res.name.clone(),
                        paths: custom.deps.clone(),
                        ignore: IgnoreMatcher::with_builtins(&r.settings.watch_ignores)
                            .unwrap_or_default(),
                        include: None,
                    });
                }
                let Some(local) = &res.local else { continue };
                if local.deps.is_empty() {
                    continue;
                }
                let patterns: Vec<&String> = local
                    .ignore
                    .iter()
                    .chain(r.settings.watch_ignores.iter())
                    .collect();
                let ignore = match IgnoreMatcher::with_builtins(&patterns) {
                    Ok(m) => m,
                    Err(e) => {
                        problems.push((res.name.clone(), e.to_string()));
                        IgnoreMatcher::with_builtins::<&str>(&[]).unwrap_or_default()
                    }
                };
                sets.push(WatchSet {
                    owner: res.name.clone(),
                    paths: local.deps.clone(),
                    ignore,
                    include: None,
                });
            }
        }
        config.extend(self.failed_config_files.iter().cloned());
        config.sort();
        config.dedup();
        sets.push(WatchSet {
            owner: TILTFILE_SPAN.to_string(),
            paths: config,
            ignore: IgnoreMatcher::with_builtins::<&str>(&[]).unwrap_or_default(),
            include: None,
        });
        let Some(watcher) = self.watcher.as_mut() else {
            return;
        };
        let errors = watcher.set(sets);
        for (name, p) in problems {
            self.error(&name, p);
        }
        for e in errors {
            self.error(TILTFILE_SPAN, e.to_string());
        }
    }

    // ---- file changes and triggers ---------------------------------------------------------

    fn on_batch(&mut self, batch: Batch) {
        if self.shutting_down {
            return;
        }
        let mut config_changed = Vec::new();
        for (owner, paths) in batch.changes {
            if owner == TILTFILE_SPAN {
                config_changed.extend(paths);
                continue;
            }
            let paths: Vec<PathBuf> = paths.into_iter().collect();
            let Some(rs) = self.resource_mut(&owner) else {
                continue;
            };
            if !rs.spec.enabled {
                continue;
            }
            let auto = rs.spec.trigger_mode == crate::model::TriggerMode::Auto;
            let reason = BuildReason::FileChange {
                paths: paths.clone(),
            };
            if auto && (rs.spec.auto_init || rs.has_built()) {
                rs.queued = Some(match rs.queued.take() {
                    Some(q) => q.merge(reason),
                    None => reason,
                });
            } else {
                rs.pending_changes.extend(paths);
                let text = format!("{}; waiting for a manual trigger", reason.describe());
                self.event(&owner, text);
            }
        }
        if !config_changed.is_empty() {
            self.start_load(BuildReason::FileChange {
                paths: config_changed,
            });
        }
    }

    fn trigger(&mut self, name: &str) -> Result<(), EngineError> {
        if self.shutting_down {
            return Err(EngineError::Stopped);
        }
        let rs = self
            .resource_mut(name)
            .ok_or_else(|| EngineError::UnknownResource(name.to_string()))?;
        if !rs.spec.enabled {
            return Err(EngineError::Disabled(name.to_string()));
        }
        rs.queued = Some(match rs.queued.take() {
            Some(q) => q.merge(BuildReason::Trigger),
            None => BuildReason::Trigger,
        });
        rs.pending_changes.clear();
        if !self.trigger_order.iter().any(|n| n == name) {
            self.trigger_order.push(name.to_string());
        }
        Ok(())
    }

    fn set_enabled(&mut self, name: &str, enabled: bool) -> Result<(), EngineError> {
        if self.shutting_down {
            return Err(EngineError::Stopped);
        }
        let mut result = self
            .result
            .clone()
            .filter(|r| r.resources.iter().any(|s| s.name == name))
            .ok_or_else(|| EngineError::UnknownResource(name.to_string()))?;
        self.enabled_overrides.insert(name.to_string(), enabled);
        for spec in result.resources.iter_mut().filter(|s| s.name == name) {
            if spec.enabled == enabled {
                return Ok(());
            }
            spec.enabled = enabled;
        }
        if enabled {
            self.event(name, "Resource enabled");
        }
        self.apply(result);
        self.update_watches();
        Ok(())
    }

    fn set_args(&mut self, args: Vec<String>) -> Result<(), EngineError> {
        if self.shutting_down {
            return Err(EngineError::Stopped);
        }
        let loader = self
            .cfg
            .loader
            .with_args(args.clone())
            .ok_or(EngineError::ArgsUnsupported)?;
        self.cfg.loader = loader;
        self.enabled_overrides.clear();
        self.event(TILTFILE_SPAN, format!("Tiltfile args changed to: {args:?}"));
        Arc::make_mut(&mut self.state.tiltfile).args = args;
        self.dirty = true;
        self.start_load(BuildReason::TiltfileChange);
        Ok(())
    }

    // ---- updates -----------------------------------------------------------------------------

    fn schedule(&mut self) {
        if self.loading || self.shutting_down {
            return;
        }
        for name in scheduler::next_builds(&self.state, self.max_parallel, &self.trigger_order) {
            self.start_build(&name);
        }
    }

    /// What every command gets on top of tiltrs's environment: the variables the Tiltfile set
    /// (`os.putenv`, `dotenv`, ...), then `TILT_HOST`/`TILT_PORT`.
    fn tilt_env(&self) -> BTreeMap<String, String> {
        let mut env: BTreeMap<String, String> = self
            .result
            .iter()
            .flat_map(|r| r.env.iter())
            .filter_map(|(k, v)| Some((k.clone(), v.clone()?)))
            .collect();
        env.insert("TILT_HOST".to_string(), self.cfg.web_host.clone());
        env.insert("TILT_PORT".to_string(), self.cfg.web_port.to_string());
        env
    }

    fn start_build(&mut self, name: &str) {
        self.trigger_order.retain(|n| n != name);
        let Some(rs) = self.resource_mut(name) else {
            return;
        };
        let reason = rs.queued.take().unwrap_or(BuildReason::Initial);
        rs.pending_changes.clear();
        rs.current = Some(BuildRecord {
            start: SystemTime::now(),
            end: None,
            duration: None,
            reason: reason.clone(),
            result: None,
            error: None,
        });
        let local = rs.spec.local.clone();
        let kind = rs.spec.kind;
        self.event(name, reason.describe());
        if kind == ResourceType::DockerCompose {
            self.start_deploy(name, reason);
            return;
        }
        if matches!(kind, ResourceType::K8s | ResourceType::K8sCustomDeploy) {
            self.start_k8s_deploy(name, reason);
            return;
        }
        let Some(local) = local else {
            let msg = format!("{kind:?} resources are not supported by this version of tiltrs yet");
            self.error(name, &msg);
            if let Some(rs) = self.resource_mut(name) {
                rs.finish_build(BuildResult::Failure, Some(msg));
            }
            return;
        };
        if local.cmd.is_empty() {
            if let Some(rs) = self.resource_mut(name) {
                rs.finish_build(BuildResult::Success, None);
            }
            self.start_serve(name, &local);
            return;
        }
        self.event(
            name,
            format!("Running cmd: {}", process::display_command(&local.cmd)),
        );
        self.next_id += 1;
        let id = self.next_id;
        let token = CancellationToken::new();
        let mut env = self.tilt_env();
        env.extend(local.env.clone());
        let sink: Arc<dyn LogSink> = Arc::new(ResourceSink {
            store: self.store.clone(),
            span: name.to_string(),
        });
        let tx = self.tx.clone();
        let (grace, kill_now, cancel) = (self.cfg.stop_grace, self.kill_now.clone(), token.clone());
        let task_name = name.to_string();
        self.tasks.spawn(async move {
            let outcome = local::run_cmd(
                &local.cmd,
                local.dir.clone(),
                env,
                sink,
                cancel,
                grace,
                kill_now,
            )
            .await;
            let _ = tx.send(Msg::BuildDone {
                name: task_name,
                id,
                outcome,
            });
        });
        self.units.entry(name.to_string()).or_default().build = Some((id, token));
    }

    /// Whether build `id` is the resource's current one (reports from replaced builds are
    /// ignored); if so, it is over.
    fn finish_unit_build(&mut self, name: &str, id: u64) -> bool {
        let Some(unit) = self.units.get_mut(name) else {
            return false;
        };
        if unit.build.as_ref().map(|b| b.0) != Some(id) {
            return false;
        }
        unit.build = None;
        true
    }

    fn on_build_done(&mut self, name: &str, id: u64, outcome: CmdOutcome) {
        if !self.finish_unit_build(name, id) {
            return;
        }
        let Some(rs) = self.resource_mut(name) else {
            return;
        };
        let local = rs.spec.local.clone();
        let cmd = local
            .as_ref()
            .map(|l| process::display_command(&l.cmd))
            .unwrap_or_default();
        match outcome {
            CmdOutcome::Success => {
                let has_serve = rs.serve.is_some();
                let dur = rs
                    .finish_build(BuildResult::Success, None)
                    .and_then(|b| b.duration)
                    .unwrap_or_default();
                if !has_serve {
                    rs.ever_ready = true;
                }
                self.event(name, format!("Update succeeded in {}", fmt_duration(dur)));
                if let Some(local) = local.filter(|l| !l.serve_cmd.is_empty()) {
                    self.start_serve(name, &local);
                }
            }
            CmdOutcome::Failed(status) => {
                let err = format!("Command \"{cmd}\" failed: {status}");
                rs.finish_build(BuildResult::Failure, Some(err.clone()));
                self.error(name, err);
            }
            CmdOutcome::SpawnFailed(e) => {
                rs.finish_build(BuildResult::Failure, Some(e.clone()));
                self.error(name, e);
            }
            CmdOutcome::Cancelled => {
                rs.finish_build(BuildResult::Cancelled, None);
                self.event(name, "Update cancelled");
            }
        }
    }

    // ---- serve processes -----------------------------------------------------------------

    fn start_serve(&mut self, name: &str, local: &LocalSpec) {
        let mut env = self.tilt_env();
        env.extend(local.serve_env.clone());
        let spec = ServeSpec {
            argv: local.serve_cmd.clone(),
            dir: local.serve_dir.clone(),
            env,
            probe: local.readiness_probe.clone(),
        };
        if let Some(rs) = self.resource_mut(name) {
            let crashes = rs.serve.as_ref().map_or(0, |s| s.crashes);
            rs.serve = Some(ServeState {
                crashes,
                ..Default::default()
            });
        }
        self.event(
            name,
            format!(
                "Starting serve_cmd: {}",
                process::display_command(&local.serve_cmd)
            ),
        );
        let unit = self.units.entry(name.to_string()).or_default();
        if let Some((_, sup)) = &unit.serve {
            sup.restart_with(spec);
            return;
        }
        self.next_id += 1;
        let id = self.next_id;
        let tx = self.tx.clone();
        let span = name.to_string();
        let events = Arc::new(move |event: ServeEvent| {
            let _ = tx.send(Msg::Serve {
                name: span.clone(),
                id,
                event,
            });
        });
        let sink: Arc<dyn LogSink> = Arc::new(ResourceSink {
            store: self.store.clone(),
            span: name.to_string(),
        });
        let sup = ServeSupervisor::spawn(
            spec,
            sink,
            events,
            self.cfg.stop_grace,
            self.kill_now.clone(),
        );
        sup.restart();
        unit.serve = Some((id, sup));
    }

    fn on_serve(&mut self, name: &str, id: u64, event: ServeEvent) {
        let current = self
            .units
            .get(name)
            .and_then(|u| u.serve.as_ref())
            .map(|s| s.0);
        if current != Some(id) || self.shutting_down {
            return;
        }
        let Some(rs) = self.resource_mut(name) else {
            return;
        };
        let has_probe = rs
            .spec
            .local
            .as_ref()
            .is_some_and(|l| l.readiness_probe.is_some());
        let serve = rs.serve.get_or_insert_with(ServeState::default);
        match event {
            ServeEvent::Started(pid) => {
                serve.pid = Some(pid);
                serve.last_exit = None;
                serve.ready = false;
                self.event(name, format!("serve_cmd running (pid {pid})"));
            }
            ServeEvent::Ready => {
                serve.ready = true;
                serve.probe_message = None;
                rs.ever_ready = true;
                if has_probe {
                    self.event(name, "Readiness probe passed: ready");
                }
            }
            ServeEvent::NotReady(msg) => {
                serve.ready = false;
                serve.probe_message = Some(msg.clone());
                self.error(name, format!("Readiness probe failed: not ready ({msg})"));
            }
            ServeEvent::Crashed { status, restart_in } => {
                serve.ready = false;
                serve.pid = None;
                serve.crashes += 1;
                serve.last_exit = Some(status.clone());
                let restart = if self.cfg.mode == Mode::Ci {
                    String::new()
                } else {
                    format!("; restarting in {}", fmt_duration(restart_in))
                };
                self.error(name, format!("serve_cmd exited: {status}{restart}"));
            }
            ServeEvent::SpawnFailed { error, restart_in } => {
                serve.ready = false;
                serve.pid = None;
                serve.crashes += 1;
                serve.last_exit = Some(error.clone());
                self.error(
                    name,
                    format!(
                        "serve_cmd failed to start: {error}; retrying in {}",
                        fmt_duration(restart_in)
                    ),
                );
            }
        }
    }

    fn stop_serve(&mut self, name: &str) {
        if let Some((_, sup)) = self.units.get_mut(name).and_then(|u| u.serve.take()) {
            self.tasks.spawn(sup.stop());
        }
    }

    fn stop_unit(&mut self, name: &str) {
        if let Some(mut unit) = self.units.remove(name) {
            if let Some((_, token)) = unit.build.take() {
                token.cancel();
            }
            if let Some((_, sup)) = unit.serve.take() {
                self.tasks.spawn(sup.stop());
            }
        }
    }

    // ---- Docker Compose resources --------------------------------------------------------

    fn sink(&self, name: &str) -> Arc<dyn LogSink> {
        Arc::new(ResourceSink {
            store: self.store.clone(),
            span: name.to_string(),
        })
    }

    fn start_deploy(&mut self, name: &str, reason: BuildReason) {
        let Some(result) = self.result.as_ref() else {
            return;
        };
        let Some(rs) = self.state.resource(name) else {
            return;
        };
        let resource = rs.spec.clone();
        let container = rs
            .container
            .as_ref()
            .filter(|c| c.running)
            .map(|c| c.id.clone());
        let images = result
            .images
            .iter()
            .filter(|i| resource.image_refs.contains(&i.image_ref))
            .cloned()
            .collect();
        let changed = match reason {
            BuildReason::FileChange { paths } => Some(paths),
            _ => None,
        };
        self.ensure_follower(name);
        self.next_id += 1;
        let id = self.next_id;
        let token = CancellationToken::new();
        let req = DeployRequest {
            resource,
            images,
            changed,
            container,
            build: BuildEnv {
                docker: self.docker.clone(),
                env: self.tilt_env(),
                log: self.sink(name),
                cancel: token.clone(),
                grace: self.cfg.stop_grace,
                kill_now: self.kill_now.clone(),
            },
        };
        let tx = self.tx.clone();
        let task_name = name.to_string();
        self.tasks.spawn(async move {
            let outcome = deploy::update(req).await;
            let _ = tx.send(Msg::Deployed {
                name: task_name,
                id,
                outcome,
            });
        });
        self.units.entry(name.to_string()).or_default().build = Some((id, token));
    }

    /// Starts following the resource's Compose service, once.
    fn ensure_follower(&mut self, name: &str) {
        let Some(spec) = self
            .state
            .resource(name)
            .and_then(|r| r.spec.docker_compose.clone())
        else {
            return;
        };
        if self.units.get(name).is_some_and(|u| u.follower.is_some()) {
            return;
        }
        self.next_id += 1;
        let id = self.next_id;
        let tx = self.tx.clone();
        let span = name.to_string();
        let events = Arc::new(move |event: ContainerEvent| {
            let _ = tx.send(Msg::Container {
                name: span.clone(),
                id,
                event,
            });
        });
        let follower = ComposeFollower::spawn(
            self.docker.clone(),
            spec.project,
            spec.service,
            self.sink(name),
            events,
        );
        self.units.entry(name.to_string()).or_default().follower = Some((id, follower));
    }

    fn on_deployed(&mut self, name: &str, id: u64, outcome: DeployOutcome) {
        if !self.finish_unit_build(name, id) {
            return;
        }
        let Some(rs) = self.resource_mut(name) else {
            return;
        };
        match outcome {
            DeployOutcome::Deployed { deployed, images } => {
                let c = rs.container.get_or_insert_with(ContainerState::default);
                let container = deployed.container;
                let replaced = (c.id != container.id).then(|| std::mem::take(&mut c.id));
                if replaced.is_some() {
                    *c = ContainerState::default();
                }
                // What the deploy saw last; later events update it.
                c.running = deployed.running;
                c.exit_code = deployed.exit_code;
                c.id = container.id;
                c.name = container.name;
                c.images = images;
                let dur = rs
                    .finish_build(BuildResult::Success, None)
                    .and_then(|b| b.duration)
                    .unwrap_or_default();
                self.event(name, format!("Update succeeded in {}", fmt_duration(dur)));
                self.mark_ready_if_running(name);
                self.forget_container(replaced);
            }
            DeployOutcome::LiveUpdated => {
                let dur = rs
                    .finish_build(BuildResult::Success, None)
                    .and_then(|b| b.duration)
                    .unwrap_or_default();
                self.event(
                    name,
                    format!("Live update succeeded in {}", fmt_duration(dur)),
                );
            }
            DeployOutcome::Failed(error) => {
                rs.finish_build(BuildResult::Failure, Some(error.clone()));
                self.error(name, error);
            }
            DeployOutcome::Cancelled => {
                rs.finish_build(BuildResult::Cancelled, None);
                self.event(name, "Update cancelled");
            }
        }
    }

    fn on_container(&mut self, name: &str, id: u64, event: ContainerEvent) {
        let current = self
            .units
            .get(name)
            .and_then(|u| u.follower.as_ref())
            .map(|f| f.0);
        if current != Some(id) || self.shutting_down {
            return;
        }
        let Some(rs) = self.resource_mut(name) else {
            return;
        };
        let deploying = rs.current.is_some();
        match event {
            ContainerEvent::Running { container, health } => {
                let c = rs.container.get_or_insert_with(ContainerState::default);
                let replaced = (c.id != container.id).then(|| std::mem::take(&mut c.id));
                if replaced.is_some() {
                    let images = std::mem::take(&mut c.images);
                    *c = ContainerState {
                        images,
                        ..ContainerState::default()
                    };
                }
                c.id = container.id;
                if !container.name.is_empty() {
                    c.name = container.name;
                }
                c.running = true;
                c.exit_code = None;
                c.health = health;
                self.forget_container(replaced);
            }
            ContainerEvent::Health { id, status } => {
                if let Some(c) = rs.container.as_mut().filter(|c| c.id == id) {
                    c.health = Some(status.clone());
                    if status == "unhealthy" {
                        self.error(name, "Container is unhealthy");
                    }
                }
            }
            ContainerEvent::Exited { id, exit_code } => {
                if let Some(c) = rs.container.as_mut().filter(|c| c.id == id) {
                    c.running = false;
                    c.exit_code = Some(exit_code);
                    if !deploying {
                        let text = format!("Container {} exited with code {exit_code}", c.name);
                        if exit_code == 0 {
                            self.event(name, text);
                        } else {
                            self.error(name, text);
                        }
                    }
                }
            }
            ContainerEvent::Error(e) => self.error(name, format!("Following the container: {e}")),
        }
        self.mark_ready_if_running(name);
    }

    /// Closes what tiltrs kept open into a container that was replaced.
    fn forget_container(&self, id: Option<String>) {
        let Some(id) = id.filter(|id| !id.is_empty()) else {
            return;
        };
        let docker = self.docker.clone();
        tokio::spawn(async move { docker.channels().forget(&id).await });
    }

    /// A container resource that is up (running and healthy, or done with exit code 0) with no
    /// update in flight has been ready: its dependants may start.
    fn mark_ready_if_running(&mut self, name: &str) {
        if let Some(rs) = self.resource_mut(name)
            && rs.current.is_none()
            && rs.runtime_status() == super::state::RuntimeStatus::Ok
        {
            rs.ever_ready = true;
        }
    }

    // ---- Kubernetes resources ------------------------------------------------------------

    fn start_k8s_deploy(&mut self, name: &str, reason: BuildReason) {
        let Some(result) = self.result.as_ref() else {
            return;
        };
        let Some(rs) = self.state.resource(name) else {
            return;
        };
        let resource = rs.spec.clone();
        let images: Vec<_> = result
            .images
            .iter()
            .filter(|i| resource.image_refs.contains(&i.image_ref))
            .cloned()
            .collect();
        let pod = rs
            .k8s
            .as_ref()
            .and_then(|k| k8s_deploy::live_update_target(&resource, &images, &k.images, &k.pods));
        let changed = match reason {
            BuildReason::FileChange { paths } => Some(paths),
            _ => None,
        };
        self.next_id += 1;
        let id = self.next_id;
        let token = CancellationToken::new();
        let req = K8sDeployRequest {
            resource,
            images,
            changed,
            pod,
            settings: result.settings.clone(),
            build: BuildEnv {
                docker: self.docker.clone(),
                env: self.tilt_env(),
                log: self.sink(name),
                cancel: token.clone(),
                grace: self.cfg.stop_grace,
                kill_now: self.kill_now.clone(),
            },
            cluster: self.cluster.clone(),
        };
        let tx = self.tx.clone();
        let task_name = name.to_string();
        self.tasks.spawn(async move {
            let outcome = k8s_deploy::update(req).await;
            let _ = tx.send(Msg::K8sDeployed {
                name: task_name,
                id,
                outcome,
            });
        });
        self.units.entry(name.to_string()).or_default().build = Some((id, token));
    }

    fn on_k8s_deployed(&mut self, name: &str, id: u64, outcome: K8sOutcome) {
        if !self.finish_unit_build(name, id) {
            return;
        }
        let Some(rs) = self.resource_mut(name) else {
            return;
        };
        match outcome {
            K8sOutcome::Deployed {
                applied,
                images,
                scope,
            } => {
                let forwards = rs
                    .spec
                    .k8s
                    .as_ref()
                    .map(|k| k.port_forwards.clone())
                    .unwrap_or_default();
                let k = rs.k8s.get_or_insert_with(K8sState::default);
                k.applied = applied.iter().map(|a| a.describe()).collect();
                k.images = images;
                if k.forwards.is_empty() {
                    k.forwards = forwards
                        .iter()
                        .map(|f| ForwardView {
                            local_port: f.local_port,
                            host: f.host.clone(),
                            state: "waiting".into(),
                            pod: None,
                            container_port: f.container_port,
                            error: None,
                        })
                        .collect();
                }
                let dur = rs
                    .finish_build(BuildResult::Success, None)
                    .and_then(|b| b.duration)
                    .unwrap_or_default();
                self.event(name, format!("Update succeeded in {}", fmt_duration(dur)));
                self.ensure_k8s_follower(name, scope, forwards);
                self.mark_ready_if_running(name);
            }
            K8sOutcome::LiveUpdated => {
                let dur = rs
                    .finish_build(BuildResult::Success, None)
                    .and_then(|b| b.duration)
                    .unwrap_or_default();
                self.event(
                    name,
                    format!("Live update succeeded in {}", fmt_duration(dur)),
                );
            }
            K8sOutcome::Failed(error) => {
                rs.finish_build(BuildResult::Failure, Some(error.clone()));
                self.error(name, error);
            }
            K8sOutcome::Cancelled => {
                rs.finish_build(BuildResult::Cancelled, None);
                self.event(name, "Update cancelled");
            }
        }
    }

    /// Starts following the resource's pods, once per resource (its selectors and namespaces
    /// do not change between deploys of the same spec).
    fn ensure_k8s_follower(
        &mut self,
        name: &str,
        scope: k8s_deploy::PodScope,
        forwards: Vec<crate::model::PortForward>,
    ) {
        if self.units.get(name).is_some_and(|u| u.k8s.is_some()) {
            return;
        }
        self.next_id += 1;
        let id = self.next_id;
        let tx = self.tx.clone();
        let span = name.to_string();
        let report = Arc::new(move |event: FollowEvent| {
            let _ = tx.send(Msg::K8sFollow {
                name: span.clone(),
                id,
                event,
            });
        });
        let follower = ResourceFollower::spawn(
            scope.client,
            scope.namespaces,
            scope.selectors,
            forwards,
            self.sink(name),
            report,
        );
        self.units.entry(name.to_string()).or_default().k8s = Some((id, follower));
    }

    fn on_k8s_follow(&mut self, name: &str, id: u64, event: FollowEvent) {
        let current = self
            .units
            .get(name)
            .and_then(|u| u.k8s.as_ref())
            .map(|f| f.0);
        if current != Some(id) || self.shutting_down {
            return;
        }
        let Some(rs) = self.resource_mut(name) else {
            return;
        };
        let Some(k) = rs.k8s.as_mut() else {
            return;
        };
        let mut errors = Vec::new();
        let mut events = Vec::new();
        let mut gone = Vec::new();
        match event {
            FollowEvent::Pods(pods) => {
                let before = k.pod_failure();
                let old = crate::k8s::pods::current(&k.pods).map(|p| (p.name.clone(), p.ready));
                let old_pods = std::mem::replace(&mut k.pods, pods);
                k.watch_error = None;
                let after = k.pod_failure();
                if after.is_some() && after != before {
                    errors.extend(after);
                }
                let new = crate::k8s::pods::current(&k.pods).map(|p| (p.name.clone(), p.ready));
                if new != old
                    && let Some((pod, ready)) = new
                {
                    if old.as_ref().map(|o| &o.0) != Some(&pod) {
                        events.push(format!("Tracking pod {pod}"));
                    }
                    if ready && old.is_none_or(|o| !o.1 || o.0 != pod) {
                        events.push(format!("Pod {pod} is ready"));
                    }
                }
                gone = old_pods
                    .iter()
                    .filter(|p| !k.pods.iter().any(|n| n.uid == p.uid))
                    .flat_map(|p| {
                        p.containers.iter().map(|c| crate::k8s::PodRef {
                            namespace: p.namespace.clone(),
                            name: p.name.clone(),
                            container: c.name.clone(),
                        })
                    })
                    .collect();
            }
            FollowEvent::WatchError(e) => {
                if k.watch_error.as_ref() != Some(&e) {
                    errors.push(format!("Watching pods: {e}"));
                }
                k.watch_error = Some(e);
            }
            FollowEvent::Forward { index, state } => {
                if let Some(f) = k.forwards.get_mut(index) {
                    match state {
                        ForwardState::Waiting => {
                            f.state = "waiting".into();
                            f.pod = None;
                        }
                        ForwardState::Active {
                            pod,
                            container_port,
                        } => {
                            f.state = "active".into();
                            f.pod = Some(pod);
                            f.container_port = Some(container_port);
                            f.error = None;
                        }
                        ForwardState::Error(e) => {
                            f.state = "error".into();
                            errors.push(format!("Port forward {}: {e}", f.local_port));
                            f.error = Some(e);
                        }
                    }
                }
            }
        }
        self.dirty = true;
        if !gone.is_empty() {
            let channels = self.cluster.channels.clone();
            tokio::spawn(async move {
                for pod in &gone {
                    channels.forget(pod).await;
                }
            });
        }
        for e in events {
            self.event(name, e);
        }
        for e in errors {
            self.error(name, e);
        }
        self.mark_ready_if_running(name);
    }

    // ---- shutdown ------------------------------------------------------------------------

    fn shutdown(&mut self, immediate: bool) {
        if immediate {
            self.kill_now.cancel();
        }
        if self.shutting_down {
            return;
        }
        self.shutting_down = true;
        self.dirty = true;
        self.watcher = None;
        for rs in self.state.resources.iter_mut() {
            if rs.current.is_some() {
                Arc::make_mut(rs)
                    .finish_build(BuildResult::Cancelled, Some("tiltrs is stopping".into()));
            }
        }
        let mut sups = Vec::new();
        for (_, mut unit) in self.units.drain() {
            if let Some((_, token)) = unit.build.take() {
                token.cancel();
            }
            if let Some((_, sup)) = unit.serve.take() {
                sups.push(sup);
            }
        }
        let mut tasks = std::mem::take(&mut self.tasks);
        for sup in sups {
            tasks.spawn(sup.stop());
        }
        let tx = self.tx.clone();
        let (grace, kill_now) = (self.cfg.stop_grace, self.kill_now.clone());
        tokio::spawn(async move {
            while tasks.join_next().await.is_some() {}
            process::sweep(grace, &kill_now).await;
            let _ = tx.send(Msg::Stopped);
        });
    }
}

/// What a container resource watches: each of its images' inputs, filtered the way the image's
/// build context is (`.dockerignore`, `only`, `ignore`), plus the global watch ignores.
fn image_watch_sets(
    res: &crate::model::Resource,
    result: &TiltfileResult,
    problems: &mut Vec<(String, String)>,
) -> Vec<WatchSet> {
    let ignore = IgnoreMatcher::with_builtins(&result.settings.watch_ignores).unwrap_or_else(|e| {
        problems.push((res.name.clone(), e.to_string()));
        IgnoreMatcher::with_builtins::<&str>(&[]).unwrap_or_default()
    });
    let mut sets = Vec::new();
    for image in result
        .images
        .iter()
        .filter(|i| res.image_refs.contains(&i.image_ref))
    {
        let include: Option<PathFilter> = match &image.custom {
            Some(_) => None,
            None => match ContextFilter::for_image(image) {
                Ok(filter) => Some(Arc::new(move |p: &std::path::Path| filter.includes(p))),
                Err(e) => {
                    problems.push((res.name.clone(), e.to_string()));
                    None
                }
            },
        };
        sets.push(WatchSet {
            owner: res.name.clone(),
            paths: crate::build::input_paths(image),
            ignore: ignore.clone(),
            include,
        });
    }
    sets
}
