//! live_update: what a set of changed files means for a running container.
//!
//! This module owns the pure half of Tilt's `live_update`: turning an image's
//! [`LiveUpdateStep`](crate::model::LiveUpdateStep)s plus a batch of changed local paths into an
//! [`UpdatePlan`] (files to copy, remote paths to delete, commands to run, whether to restart) or
//! a [`Plan::Fallback`] to a full rebuild, and building the tar that carries the copied files.
//! Executing the plan in a container (Docker or Kubernetes) lives elsewhere.
//!
//! | module | owns |
//! |---|---|
//! | `paths` | lexical path handling: normalising container paths, prefix tests, symlink targets |
//! | `plan` | [`plan`]/[`try_plan`], [`initial_sync`], [`has_initial_sync`]: steps + changes -> [`Plan`] |
//! | `archive` | [`archive`]: copies -> tar bytes and skipped entries (vanished files among them) |
//!
//! The executor applies a plan in this order, as Tilt's container updaters do: `rm -rf` every
//! path in [`UpdatePlan::deletes`]; extract the [`archive`] tar at `/`, then `rm -rf` the remote
//! path of every [`Skipped`] marked `vanished` (its local file disappeared after planning); run
//! [`UpdatePlan::runs`] in order, stopping at the first failure; restart the container if
//! [`UpdatePlan::restart`] is set.
//!
//! Safety: nothing here writes to the host. Host symlinks are never followed (every host lookup
//! is an `lstat`, files are opened with `O_NOFOLLOW`), and no tar entry lands outside the remote
//! directory of the sync that produced it: remote paths are validated and normalised lexically,
//! and a symlink whose target (resolved lexically from its place in the remote tree) leaves that
//! directory is left out of the tar and reported as [`Skipped`].

mod archive;
mod paths;
mod plan;
#[cfg(test)]
mod tests;

use std::path::PathBuf;

pub use archive::{Skipped, archive};
pub use plan::{
    FileCopy, Plan, RunCmd, UpdatePlan, has_initial_sync, initial_sync, plan, try_plan,
};

/// What can go wrong while planning or archiving a live update.
#[derive(Debug, thiserror::Error)]
pub enum LiveUpdateError {
    /// A sync's `remote` path is relative; containers are addressed by absolute paths.
    #[error("sync remote path {remote:?} must be absolute")]
    RelativeRemote { remote: String },
    /// A sync's `remote` path contains a `..` component.
    #[error("sync remote path {remote:?} must not contain '..'")]
    DotDotRemote { remote: String },
    /// A sync's `local` path is relative (the Tiltfile loader always makes it absolute).
    #[error("sync local path {} must be absolute", local.display())]
    RelativeLocal { local: PathBuf },
    /// A host path below a sync's local directory is not valid UTF-8, so it has no container path.
    #[error("{} cannot be synced: its name is not valid UTF-8", path.display())]
    NonUtf8 { path: PathBuf },
    /// A [`FileCopy`] whose remote path is not inside its sync's remote directory (only possible
    /// for copies built by hand rather than by [`plan`]).
    #[error("copy of {} to {remote:?} is outside its sync's remote directory {root:?}", local.display())]
    OutsideSync {
        local: PathBuf,
        remote: String,
        root: String,
    },
    /// Reading the host file system failed (other than the path not existing).
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Writing the tar failed.
    #[error("writing tar entry {name:?}: {source}")]
    Tar {
        name: String,
        #[source]
        source: std::io::Error,
    },
}

impl LiveUpdateError {
    fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        LiveUpdateError::Io {
            path: path.into(),
            source,
        }
    }
}
