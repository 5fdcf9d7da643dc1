//! Lexical path handling for live update: validating and normalising container (remote) paths,
//! cleaning host paths, prefix tests, and resolving a symlink target from its place in the
//! remote tree. Nothing here touches a file system.

use std::path::{Component, Path, PathBuf};

use super::LiveUpdateError;

/// A sync's remote path, validated: absolute, no `..`, normalised (`/a/b`, or `/` for the root).
/// `dir_hint` records a trailing `/`, which Tilt reads as "copy a local file into this directory".
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RemoteRoot {
    pub path: String,
    pub dir_hint: bool,
}

/// Validates and normalises a sync's `remote` path.
pub(crate) fn remote_root(remote: &str) -> Result<RemoteRoot, LiveUpdateError> {
    if !remote.starts_with('/') {
        return Err(LiveUpdateError::RelativeRemote {
            remote: remote.to_owned(),
        });
    }
    let mut parts = Vec::new();
    for part in remote.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                return Err(LiveUpdateError::DotDotRemote {
                    remote: remote.to_owned(),
                });
            }
            other => parts.push(other),
        }
    }
    Ok(RemoteRoot {
        path: join_parts("/", parts.iter().copied()),
        dir_hint: remote.len() > 1 && remote.ends_with('/'),
    })
}

/// `base` (a normalised absolute remote path) joined with already-clean components.
pub(crate) fn join_parts<'a>(base: &str, parts: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = base.to_owned();
    for part in parts {
        if !out.ends_with('/') {
            out.push('/');
        }
        out.push_str(part);
    }
    out
}

/// Whether the normalised remote path `path` is `root` or below it.
pub(crate) fn remote_within(path: &str, root: &str) -> bool {
    if root == "/" {
        return path.starts_with('/');
    }
    path == root
        || path
            .strip_prefix(root)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Whether `path` is a normalised absolute remote path: starts with `/`, no empty, `.` or `..`
/// components, no trailing `/` (except the root itself).
pub(crate) fn is_normalized_remote(path: &str) -> bool {
    if path == "/" {
        return true;
    }
    match path.strip_prefix('/') {
        Some(rest) => rest.split('/').all(|p| !matches!(p, "" | "." | "..")),
        None => false,
    }
}

/// Lexically cleans an absolute host path (`.` dropped, `..` pops, clamped at the root), the way
/// Go's `filepath.Clean` does. `None` for a relative path.
pub(crate) fn clean_host(path: &Path) -> Option<PathBuf> {
    if !path.is_absolute() {
        return None;
    }
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::RootDir | Component::Prefix(_) => out.push(component.as_os_str()),
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(part) => out.push(part),
        }
    }
    Some(out)
}

/// The components of `path` below `base` as UTF-8 strings (empty when equal). Both paths must be
/// clean and `path` must start with `base`.
pub(crate) fn rel_parts(path: &Path, base: &Path) -> Result<Vec<String>, LiveUpdateError> {
    let rel = path.strip_prefix(base).unwrap_or(Path::new(""));
    rel.components()
        .map(|c| {
            c.as_os_str()
                .to_str()
                .map(str::to_owned)
                .ok_or_else(|| LiveUpdateError::NonUtf8 {
                    path: path.to_path_buf(),
                })
        })
        .collect()
}

/// The normalised parent of a normalised remote path (`/` for `/` and top-level paths).
pub(crate) fn remote_parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// Where a symlink at remote path `link` with target `target` points, resolved lexically:
/// relative targets start from the link's directory, `..` pops (clamped at `/`, as the kernel
/// does). Returns a normalised absolute remote path.
pub(crate) fn resolve_link_target(link: &str, target: &str) -> String {
    let start = if target.starts_with('/') {
        "/"
    } else {
        remote_parent(link)
    };
    let mut parts: Vec<&str> = start.split('/').filter(|p| !p.is_empty()).collect();
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    join_parts("/", parts)
}

/// The tar entry name for a normalised remote path: relative to `/` (`/www/a` -> `www/a`).
pub(crate) fn entry_name(remote: &str) -> &str {
    remote.trim_start_matches('/')
}
