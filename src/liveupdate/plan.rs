//! Planning: live_update steps + changed local paths -> a full-rebuild fallback or an
//! [`UpdatePlan`] (copies, deletes, runs, restart). Also the initial sync of every synced file.
//!
//! The host is only ever inspected with `lstat` (never written, symlinks never followed).

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::LiveUpdateError;
use super::paths::{RemoteRoot, clean_host, join_parts, rel_parts, remote_root};
use crate::model::LiveUpdateStep;

/// One local path to send to the container. A directory is sent recursively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileCopy {
    /// Absolute, lexically clean host path.
    pub local: PathBuf,
    /// Absolute, normalised, `/`-separated container path.
    pub remote: String,
    /// The local path of the sync this copy belongs to.
    pub sync_local: PathBuf,
    /// The normalised remote path of that sync: nothing from this copy is written outside it.
    pub sync_remote: String,
}

/// A `run()` step selected for this update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunCmd {
    /// argv, as the model holds it (Tilt's string commands are already `sh -c` argv).
    pub cmd: Vec<String>,
    pub echo_off: bool,
}

/// What to do to a running container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpdatePlan {
    /// Paths to send (see [`super::archive`]); sorted by local path.
    pub copies: Vec<FileCopy>,
    /// Remote absolute paths to `rm -rf` (before extracting the archive); sorted.
    pub deletes: Vec<String>,
    /// Commands to run after the files are in place, in step order.
    pub runs: Vec<RunCmd>,
    /// Restart the container after the runs (`restart_container()`).
    pub restart: bool,
}

impl UpdatePlan {
    /// Nothing to copy, delete, run or restart.
    pub fn is_empty(&self) -> bool {
        self.copies.is_empty() && self.deletes.is_empty() && self.runs.is_empty() && !self.restart
    }
}

/// The outcome of [`plan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Live update cannot handle these changes: rebuild the image and redeploy.
    Fallback { reason: String },
    /// Update the running container in place.
    Update(UpdatePlan),
}

/// A validated `sync()` step.
#[derive(Debug)]
struct SyncRule {
    local: PathBuf,
    remote: RemoteRoot,
}

fn sync_rules(steps: &[LiveUpdateStep]) -> Result<Vec<SyncRule>, LiveUpdateError> {
    steps
        .iter()
        .filter_map(|step| match step {
            LiveUpdateStep::Sync { local, remote } => Some((local, remote)),
            _ => None,
        })
        .map(|(local, remote)| {
            let local = clean_host(local).ok_or_else(|| LiveUpdateError::RelativeLocal {
                local: local.clone(),
            })?;
            Ok(SyncRule {
                local,
                remote: remote_root(remote)?,
            })
        })
        .collect()
}

/// The sync owning `path`: the one with the longest local prefix (the first such in step order
/// on a tie).
fn owner<'a>(rules: &'a [SyncRule], path: &Path) -> Option<&'a SyncRule> {
    let mut best: Option<&SyncRule> = None;
    for rule in rules {
        if path.starts_with(&rule.local)
            && best.is_none_or(|b| rule.local.components().count() > b.local.components().count())
        {
            best = Some(rule);
        }
    }
    best
}

/// `lstat`, with "does not exist" (including a parent that is not a directory) as `None`.
fn lstat(path: &Path) -> Result<Option<fs::Metadata>, LiveUpdateError> {
    match fs::symlink_metadata(path) {
        Ok(meta) => Ok(Some(meta)),
        Err(err) if is_missing(&err) => Ok(None),
        Err(err) => Err(LiveUpdateError::io(path, err)),
    }
}

pub(crate) fn is_missing(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::NotFound || err.raw_os_error() == Some(libc::ENOTDIR)
}

/// The remote path of `path` (owned by `rule`; `root_is_dir` says whether the sync's local path
/// is a directory). Tilt's `fileToPathMapping`: a local file synced to a remote ending in `/`
/// lands inside that directory.
fn remote_for(rule: &SyncRule, root_is_dir: bool, path: &Path) -> Result<String, LiveUpdateError> {
    if path == rule.local && !root_is_dir && rule.remote.dir_hint {
        let base = rel_parts(&rule.local, rule.local.parent().unwrap_or(Path::new("/")))?;
        return Ok(join_parts(
            &rule.remote.path,
            base.iter().map(String::as_str),
        ));
    }
    let rel = rel_parts(path, &rule.local)?;
    Ok(join_parts(
        &rule.remote.path,
        rel.iter().map(String::as_str),
    ))
}

fn copy_for(rule: &SyncRule, local: PathBuf, remote: String) -> FileCopy {
    FileCopy {
        local,
        remote,
        sync_local: rule.local.clone(),
        sync_remote: rule.remote.path.clone(),
    }
}

/// Tilt's `ospath.FormatFileChangeList`: at most five paths, then `...`, Go `%v` style.
fn format_file_list(paths: &[PathBuf]) -> String {
    let mut shown: Vec<String> = paths
        .iter()
        .take(5)
        .map(|p| p.display().to_string())
        .collect();
    if paths.len() > 5 {
        shown.push("...".to_owned());
    }
    format!("[{}]", shown.join(" "))
}

/// Decides what the changed local paths (absolute; a path that no longer exists was deleted)
/// mean for a running container.
///
/// In order: a change to (or under) a `fall_back_on` path, or a change outside every sync,
/// falls back to a full rebuild; a sync whose local path is gone falls back too. Otherwise every
/// change maps through the sync with the longest matching local path: existing paths are
/// copied (directories recursively), missing ones deleted. `run` steps whose triggers contain a
/// changed path (or that have no trigger) run in order; `restart_container()` sets `restart`.
/// No changes: an empty plan.
///
/// An invalid sync step or a failure reading the host falls back too, with Tilt's
/// `No update plan: <error>` (use [`try_plan`] for the typed error).
pub fn plan(steps: &[LiveUpdateStep], changed: &[PathBuf]) -> Plan {
    try_plan(steps, changed).unwrap_or_else(|err| Plan::Fallback {
        reason: format!("No update plan: {err}"),
    })
}

/// [`plan`], with invalid sync steps (relative or `..` remote, relative local) and host read
/// failures as errors instead of fallbacks.
pub fn try_plan(steps: &[LiveUpdateStep], changed: &[PathBuf]) -> Result<Plan, LiveUpdateError> {
    let rules = sync_rules(steps)?;

    let mut unclean = Vec::new();
    let mut paths = Vec::new();
    for path in changed {
        match clean_host(path) {
            Some(clean) => paths.push(clean),
            None => unclean.push(path.clone()),
        }
    }
    paths.sort();
    paths.dedup();
    if paths.is_empty() && unclean.is_empty() {
        return Ok(Plan::Update(UpdatePlan::default()));
    }

    // fall_back_on: the first (sorted) changed path equal to or under one of its paths.
    let fall_back_on: Vec<PathBuf> = steps
        .iter()
        .filter_map(|step| match step {
            LiveUpdateStep::FallBackOn(list) => Some(list),
            _ => None,
        })
        .flatten()
        .filter_map(|p| clean_host(p))
        .collect();
    for path in &paths {
        if let Some(fb) = fall_back_on.iter().find(|fb| path.starts_with(fb)) {
            let mut reason = format!(
                "Detected change to fall_back_on file {:?}",
                path.display().to_string()
            );
            if fb != path {
                reason.push_str(&format!(" (fall_back_on {:?})", fb.display().to_string()));
            }
            return Ok(Plan::Fallback { reason });
        }
    }

    // Changes outside every sync.
    let mut no_match = unclean;
    no_match.extend(paths.iter().filter(|p| owner(&rules, p).is_none()).cloned());
    if !no_match.is_empty() {
        return Ok(Plan::Fallback {
            reason: format!(
                "Found file(s) not matching any sync (files: {})",
                format_file_list(&no_match)
            ),
        });
    }

    let mut root_is_dir: HashMap<&Path, bool> = HashMap::new();
    let mut copies = Vec::new();
    let mut deletes = Vec::new();
    for path in &paths {
        let Some(rule) = owner(&rules, path) else {
            continue;
        };
        let is_dir = match root_is_dir.get(rule.local.as_path()) {
            Some(is_dir) => *is_dir,
            None => match lstat(&rule.local)? {
                Some(meta) => {
                    root_is_dir.insert(&rule.local, meta.is_dir());
                    meta.is_dir()
                }
                None => {
                    // Tilt cannot stat the sync's source either ("error stat'ing") and gives
                    // up on live update; deleting the whole remote tree is never the answer.
                    return Ok(Plan::Fallback {
                        reason: format!(
                            "sync source {:?} no longer exists",
                            rule.local.display().to_string()
                        ),
                    });
                }
            },
        };
        let remote = remote_for(rule, is_dir, path)?;
        match lstat(path)? {
            Some(_) => copies.push(copy_for(rule, path.clone(), remote)),
            None => deletes.push(remote),
        }
    }
    let copies = drop_covered_copies(copies);
    deletes.sort();
    deletes.dedup();

    Ok(Plan::Update(UpdatePlan {
        copies,
        deletes,
        runs: runs_for(steps, &paths),
        restart: has_restart(steps),
    }))
}

/// Drops a copy already included by a copy of one of its ancestor directories (same sync).
/// `copies` is sorted by local path, so ancestors come first.
fn drop_covered_copies(copies: Vec<FileCopy>) -> Vec<FileCopy> {
    let mut kept: Vec<FileCopy> = Vec::with_capacity(copies.len());
    for copy in copies {
        let covered = kept.iter().any(|k| {
            k.sync_local == copy.sync_local
                && k.local != copy.local
                && copy.local.starts_with(&k.local)
        });
        if !covered {
            kept.push(copy);
        }
    }
    kept
}

/// Tilt's `BoilRuns`: a run with no trigger always runs; otherwise when any synced path is
/// equal to or under one of its triggers.
fn runs_for(steps: &[LiveUpdateStep], synced: &[PathBuf]) -> Vec<RunCmd> {
    steps
        .iter()
        .filter_map(|step| match step {
            LiveUpdateStep::Run {
                cmd,
                trigger,
                echo_off,
            } => {
                let triggered = trigger.is_empty()
                    || trigger
                        .iter()
                        .filter_map(|t| clean_host(t))
                        .any(|t| synced.iter().any(|p| p.starts_with(&t)));
                triggered.then(|| RunCmd {
                    cmd: cmd.clone(),
                    echo_off: *echo_off,
                })
            }
            _ => None,
        })
        .collect()
}

fn has_restart(steps: &[LiveUpdateStep]) -> bool {
    steps
        .iter()
        .any(|s| matches!(s, LiveUpdateStep::RestartContainer {}))
}

/// Whether the steps ask for an initial sync when a container first starts.
pub fn has_initial_sync(steps: &[LiveUpdateStep]) -> bool {
    steps
        .iter()
        .any(|s| matches!(s, LiveUpdateStep::InitialSync {}))
}

/// The plan for a container's first start: every file, symlink and empty directory under every
/// sync's local path, each through the sync that owns it (longest local prefix, so a nested
/// sync's files go only to its own remote path), as if all of them had changed: `run` steps
/// whose triggers match a copied path (or that have no trigger) and `restart_container()` are
/// included. A sync whose local path does not exist contributes nothing. Nothing to copy: an
/// empty plan.
pub fn initial_sync(steps: &[LiveUpdateStep]) -> Result<UpdatePlan, LiveUpdateError> {
    let rules = sync_rules(steps)?;
    let mut copies = Vec::new();
    for rule in &rules {
        let Some(meta) = lstat(&rule.local)? else {
            continue;
        };
        // A nested sync whose root equals an earlier one's: the earlier one owns it.
        if !owner(&rules, &rule.local).is_some_and(|o| std::ptr::eq(o, rule)) {
            continue;
        }
        if meta.is_dir() {
            walk_sync(&rules, rule, &rule.local, &mut copies)?;
        } else {
            let remote = remote_for(rule, false, &rule.local)?;
            copies.push(copy_for(rule, rule.local.clone(), remote));
        }
    }
    if copies.is_empty() {
        return Ok(UpdatePlan::default());
    }
    copies.sort_by(|a, b| a.local.cmp(&b.local));
    let synced: Vec<PathBuf> = copies.iter().map(|c| c.local.clone()).collect();
    Ok(UpdatePlan {
        copies,
        deletes: Vec::new(),
        runs: runs_for(steps, &synced),
        restart: has_restart(steps),
    })
}

/// Walks directory `dir` of `rule` without following symlinks, pushing a copy per non-directory
/// entry and per empty directory, and leaving subtrees owned by a more specific sync to it.
fn walk_sync(
    rules: &[SyncRule],
    rule: &SyncRule,
    dir: &Path,
    copies: &mut Vec<FileCopy>,
) -> Result<(), LiveUpdateError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if is_missing(&err) => return Ok(()),
        Err(err) => return Err(LiveUpdateError::io(dir, err)),
    };
    let mut children = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|err| LiveUpdateError::io(dir, err))?;
        let file_type = entry
            .file_type()
            .map_err(|err| LiveUpdateError::io(entry.path(), err))?;
        children.push((entry.path(), file_type.is_dir()));
    }
    children.sort();
    if children.is_empty() {
        let remote = remote_for(rule, true, dir)?;
        copies.push(copy_for(rule, dir.to_path_buf(), remote));
        return Ok(());
    }
    for (path, is_dir) in children {
        if !owner(rules, &path).is_some_and(|o| std::ptr::eq(o, rule)) {
            continue;
        }
        if is_dir {
            walk_sync(rules, rule, &path, copies)?;
        } else {
            let remote = remote_for(rule, true, &path)?;
            copies.push(copy_for(rule, path, remote));
        }
    }
    Ok(())
}
