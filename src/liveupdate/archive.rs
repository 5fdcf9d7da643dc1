//! The tar that carries a live update's copies into a container: entry names relative to `/`,
//! parent directories (within each sync) included, regular files with their permission bits,
//! and only those symlinks whose target stays inside their sync's remote directory.
//!
//! Host symlinks are never followed: every lookup is an `lstat`, directory walks do not descend
//! into symlinks, and files are opened with `O_NOFOLLOW`. Like Tilt's `ArchiveBuilder`, owner
//! ids are zeroed and a name produced twice keeps the last entry.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::LiveUpdateError;
use super::paths::{
    entry_name, is_normalized_remote, join_parts, rel_parts, remote_parent, remote_within,
    resolve_link_target,
};
use super::plan::{FileCopy, is_missing};

/// A host path left out of the tar, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub local: PathBuf,
    /// Where it would have gone in the container.
    pub remote: String,
    pub reason: String,
    /// The local path vanished between planning and archiving: `rm -rf` `remote` in the
    /// container instead of copying it. Otherwise it was left out for safety (a symlink leaving
    /// its sync's remote directory, a path through a host symlink) or because a tar cannot carry
    /// it (a special file, a name that is not UTF-8).
    pub vanished: bool,
}

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} -> {}: {}",
            self.local.display(),
            self.remote,
            self.reason
        )
    }
}

#[derive(Debug)]
enum Kind {
    Dir,
    File,
    Symlink(String),
}

#[derive(Debug)]
struct Entry {
    local: PathBuf,
    remote: String,
    kind: Kind,
    mode: u32,
    mtime: u64,
}

impl Entry {
    fn new(local: &Path, remote: &str, kind: Kind, meta: &fs::Metadata) -> Self {
        Entry {
            local: local.to_path_buf(),
            remote: remote.to_owned(),
            kind,
            mode: meta.permissions().mode() & 0o7777,
            mtime: u64::try_from(meta.mtime()).unwrap_or(0),
        }
    }
}

/// Collected entries by tar name (sorted, so parents precede children), plus what was left out.
#[derive(Default)]
struct Collector {
    entries: BTreeMap<String, Entry>,
    skipped: Vec<Skipped>,
}

impl Collector {
    fn skip(&mut self, local: &Path, remote: &str, reason: String) {
        self.skipped.push(Skipped {
            local: local.to_path_buf(),
            remote: remote.to_owned(),
            reason,
            vanished: false,
        });
    }

    fn vanish(&mut self, local: &Path, remote: &str) {
        self.skipped.push(Skipped {
            local: local.to_path_buf(),
            remote: remote.to_owned(),
            reason: "it no longer exists; delete it in the container".to_owned(),
            vanished: true,
        });
    }

    fn insert(&mut self, entry: Entry) {
        let name = entry_name(&entry.remote);
        // The container's `/` is never an entry.
        if !name.is_empty() {
            self.entries.insert(name.to_owned(), entry);
        }
    }

    /// Adds `local` (already `lstat`ed as `meta`) at `remote`, recursively for directories.
    /// `root` is the sync's remote directory, which symlink targets must stay inside.
    fn add(
        &mut self,
        local: &Path,
        remote: &str,
        meta: &fs::Metadata,
        root: &str,
    ) -> Result<(), LiveUpdateError> {
        let file_type = meta.file_type();
        if file_type.is_dir() {
            self.insert(Entry::new(local, remote, Kind::Dir, meta));
            let read = match fs::read_dir(local) {
                Ok(read) => read,
                Err(err) if is_missing(&err) => return Ok(()),
                Err(err) => return Err(LiveUpdateError::io(local, err)),
            };
            let mut children = Vec::new();
            for child in read {
                let child = child.map_err(|err| LiveUpdateError::io(local, err))?;
                children.push(child.path());
            }
            children.sort();
            for child in children {
                let Some(name) = child.file_name().and_then(|n| n.to_str()) else {
                    self.skip(&child, remote, "its name is not valid UTF-8".to_owned());
                    continue;
                };
                let child_remote = join_parts(remote, [name]);
                match fs::symlink_metadata(&child) {
                    Ok(child_meta) => self.add(&child, &child_remote, &child_meta, root)?,
                    // Vanished mid-walk: nothing to send.
                    Err(err) if is_missing(&err) => {}
                    Err(err) => return Err(LiveUpdateError::io(&child, err)),
                }
            }
        } else if file_type.is_file() {
            self.insert(Entry::new(local, remote, Kind::File, meta));
        } else if file_type.is_symlink() {
            let target = match fs::read_link(local) {
                Ok(target) => target,
                Err(err) if is_missing(&err) => return Ok(()),
                Err(err) => return Err(LiveUpdateError::io(local, err)),
            };
            let Some(target) = target.to_str() else {
                self.skip(
                    local,
                    remote,
                    "symlink target is not valid UTF-8".to_owned(),
                );
                return Ok(());
            };
            let resolved = resolve_link_target(remote, target);
            if remote_within(&resolved, root) {
                self.insert(Entry::new(
                    local,
                    remote,
                    Kind::Symlink(target.to_owned()),
                    meta,
                ));
            } else {
                self.skip(
                    local,
                    remote,
                    format!(
                        "symlink target {target:?} resolves to {resolved:?}, outside the sync's \
                         remote directory {root:?}"
                    ),
                );
            }
        } else {
            self.skip(
                local,
                remote,
                "not a regular file, directory or symlink".to_owned(),
            );
        }
        Ok(())
    }

    /// Adds one copy: checks it, its host ancestors below the sync root, then the path itself.
    fn add_copy(&mut self, copy: &FileCopy) -> Result<(), LiveUpdateError> {
        let root = copy.sync_remote.as_str();
        let outside = || LiveUpdateError::OutsideSync {
            local: copy.local.clone(),
            remote: copy.remote.clone(),
            root: root.to_owned(),
        };
        if !is_normalized_remote(root)
            || !is_normalized_remote(&copy.remote)
            || !remote_within(&copy.remote, root)
        {
            return Err(outside());
        }
        if !copy.local.starts_with(&copy.sync_local) {
            return Err(outside());
        }
        // Below the sync root, the remote path must mirror the local one (a file synced into a
        // directory, `sync('f', '/d/')`, is the sync root itself and has no such parts).
        let rel = rel_parts(&copy.local, &copy.sync_local)?;
        if !rel.is_empty() {
            let base = copy.remote.rsplitn(rel.len() + 1, '/').last().unwrap_or("");
            let base = if base.is_empty() { "/" } else { base };
            if join_parts(base, rel.iter().map(String::as_str)) != copy.remote
                || !remote_within(base, root)
            {
                return Err(outside());
            }
        }

        // Every host directory from the sync root down to the copy's parent: each must be a real
        // directory (never a symlink), and each becomes a parent entry.
        let mut parents = Vec::new();
        let mut dir = copy.sync_local.clone();
        let mut dir_remote = copy.remote.clone();
        for _ in 0..rel.len() {
            dir_remote = remote_parent(&dir_remote).to_owned();
        }
        for part in &rel {
            match fs::symlink_metadata(&dir) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    let reason = format!(
                        "{} is a symlink on the host, and symlinks are never followed",
                        dir.display()
                    );
                    self.skip(&copy.local, &copy.remote, reason);
                    return Ok(());
                }
                Ok(meta) if meta.is_dir() => {
                    parents.push(Entry::new(&dir, &dir_remote, Kind::Dir, &meta))
                }
                Ok(_) => {
                    self.vanish(&copy.local, &copy.remote);
                    return Ok(());
                }
                Err(err) if is_missing(&err) => {
                    self.vanish(&copy.local, &copy.remote);
                    return Ok(());
                }
                Err(err) => return Err(LiveUpdateError::io(&dir, err)),
            }
            dir.push(part);
            dir_remote = join_parts(&dir_remote, [part.as_str()]);
        }

        let meta = match fs::symlink_metadata(&copy.local) {
            Ok(meta) => meta,
            Err(err) if is_missing(&err) => {
                self.vanish(&copy.local, &copy.remote);
                return Ok(());
            }
            Err(err) => return Err(LiveUpdateError::io(&copy.local, err)),
        };
        for parent in parents {
            self.insert(parent);
        }
        self.add(&copy.local, &copy.remote, &meta, root)
    }

    /// Drops every entry below a symlink entry of this tar: extracting it would write through
    /// the symlink.
    fn drop_entries_under_symlinks(&mut self) {
        let links: BTreeSet<String> = self
            .entries
            .iter()
            .filter(|(_, e)| matches!(e.kind, Kind::Symlink(_)))
            .map(|(name, _)| name.clone())
            .collect();
        if links.is_empty() {
            return;
        }
        let under: Vec<(String, String)> = self
            .entries
            .keys()
            .filter_map(|name| {
                name.match_indices('/')
                    .map(|(i, _)| &name[..i])
                    .find(|ancestor| links.contains(*ancestor))
                    .map(|ancestor| (name.clone(), ancestor.to_owned()))
            })
            .collect();
        for (name, link) in under {
            if let Some(entry) = self.entries.remove(&name) {
                let reason = format!("its parent /{link} is a symlink in this archive");
                self.skip(&entry.local, &entry.remote, reason);
            }
        }
    }
}

/// Opens a regular file without following a symlink (`O_NOFOLLOW`) or blocking on a FIFO that
/// replaced it, and reads it. `Ok(None)`: it vanished.
fn read_regular(path: &Path) -> Result<Result<Option<Vec<u8>>, String>, LiveUpdateError> {
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path);
    let mut file = match file {
        Ok(file) => file,
        Err(err) if is_missing(&err) => return Ok(Ok(None)),
        Err(err) if err.raw_os_error() == Some(libc::ELOOP) => {
            return Ok(Err("it became a symlink while archiving".to_owned()));
        }
        Err(err) => return Err(LiveUpdateError::io(path, err)),
    };
    let meta = file
        .metadata()
        .map_err(|err| LiveUpdateError::io(path, err))?;
    if !meta.is_file() {
        return Ok(Err(
            "it stopped being a regular file while archiving".to_owned()
        ));
    }
    let mut data = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.read_to_end(&mut data)
        .map_err(|err| LiveUpdateError::io(path, err))?;
    Ok(Ok(Some(data)))
}

/// Builds one tar of `copies` (from [`super::plan`] or [`super::initial_sync`]): entry names
/// relative to `/`, parent directories within each sync included, regular files with their
/// permission bits, symlinks that stay inside their sync's remote directory. Returns the tar and
/// the paths left out with why; a copy whose local path vanished since planning is among them
/// with `vanished` set, for the caller to delete, rather than failing the update.
pub fn archive(copies: &[FileCopy]) -> Result<(Vec<u8>, Vec<Skipped>), LiveUpdateError> {
    let mut collector = Collector::default();
    for copy in copies {
        collector.add_copy(copy)?;
    }
    collector.drop_entries_under_symlinks();

    let mut builder = tar::Builder::new(Vec::new());
    let entries = std::mem::take(&mut collector.entries);
    for (name, entry) in entries {
        let tar_err = |source| LiveUpdateError::Tar {
            name: name.clone(),
            source,
        };
        let mut header = tar::Header::new_gnu();
        header.set_mode(entry.mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(entry.mtime);
        match &entry.kind {
            Kind::Dir => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_size(0);
                builder
                    .append_data(&mut header, &name, std::io::empty())
                    .map_err(tar_err)?;
            }
            Kind::Symlink(target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_size(0);
                builder
                    .append_link(&mut header, &name, target)
                    .map_err(tar_err)?;
            }
            Kind::File => match read_regular(&entry.local)? {
                Ok(Some(data)) => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_size(data.len() as u64);
                    builder
                        .append_data(&mut header, &name, data.as_slice())
                        .map_err(tar_err)?;
                }
                Ok(None) => collector.vanish(&entry.local, &entry.remote),
                Err(reason) => collector.skip(&entry.local, &entry.remote, reason),
            },
        }
    }
    let tar = builder
        .into_inner()
        .map_err(|source| LiveUpdateError::Tar {
            name: String::new(),
            source,
        })?;
    Ok((tar, collector.skipped))
}
