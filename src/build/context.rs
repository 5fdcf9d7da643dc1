//! Build contexts: which files of a context an image sees, their digest, and the tar.
//!
//! A [`ContextFilter`] decides, as Tilt does (`internal/tiltfile/docker.go`
//! `dockerignoresFromPathsAndContextFilters`, `internal/ignore.CreateBuildContextFilter`),
//! whether a path under the context is part of it. Tilt builds one matcher per source and a
//! path is left out if *any* of them excludes it:
//!
//! 1. the `.dockerignore`: `<dockerfile>.dockerignore` when that file exists, else
//!    `<context>/.dockerignore`, read with Docker's rules (see [`super::dockerignore`]) and
//!    matched on paths relative to the context;
//! 2. `ignore=`: its patterns (absolute, dockerignore syntax, `!` exceptions apply within this
//!    list only) matched on absolute paths;
//! 3. `only=`: Tilt turns it into the patterns `**`, `!<only 1>`, `!<only 2>`, ... so
//!    everything is excluded except the listed paths and what is below them. Parent
//!    directories of an `only` path are walked but are not entries themselves;
//! 4. `<context>/.git` and everything below it (Tilt ignores the `.git` directory of a
//!    repository whose root is the context).
//!
//! The walk ([`digest`], [`write_tar`]) never descends into a directory that is excluded and
//! that no exception could re-include something below (see
//! [`DockerIgnore::can_skip_dir`]). Symlinks are recorded, never followed; sockets, FIFOs and
//! devices are skipped; entries that vanish during the walk are skipped. Entries come in
//! depth-first order with each directory's names sorted bytewise.

use std::ffi::OsString;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};
use thiserror::Error;

use super::dockerignore::{DockerIgnore, PatternError, go_clean};
use crate::model::ImageTarget;

#[derive(Debug, Error)]
pub enum ContextError {
    /// Reading the context (or its `.dockerignore`) failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A pattern does not compile; `origin` is the `.dockerignore` file, or `ignore=`/`only=`.
    #[error("{origin}: {source}")]
    Pattern {
        origin: String,
        #[source]
        source: PatternError,
    },
    /// A generated file's name in the archive is not a relative path inside it.
    #[error("invalid Dockerfile name for the build context archive: {0:?}")]
    DockerfileName(String),
    /// Writing the archive failed while adding `path` (reading it or writing the output).
    #[error("archiving {}: {source}", path.display())]
    Archive {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_error<'p>(
    action: &'static str,
    path: &'p Path,
) -> impl FnOnce(io::Error) -> ContextError + 'p {
    move |source| ContextError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// Which paths under an image's context are part of its build context.
#[derive(Debug, Clone)]
pub struct ContextFilter {
    root: PathBuf,
    /// `root` as a cleaned slash string, the base of the absolute paths `ignore`/`only` match.
    root_str: String,
    dockerignore: DockerIgnore,
    dockerignore_file: PathBuf,
    ignore: DockerIgnore,
    only: DockerIgnore,
}

impl ContextFilter {
    /// The filter for `image`: reads its `.dockerignore` and compiles `ignore=` and `only=`.
    pub fn for_image(image: &ImageTarget) -> Result<Self, ContextError> {
        let dockerignore_file = dockerignore_path(image);
        let contents = match fs::read(&dockerignore_file) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(io_error("reading", &dockerignore_file)(e)),
        };
        let dockerignore =
            DockerIgnore::parse(&contents).map_err(|source| ContextError::Pattern {
                origin: dockerignore_file.display().to_string(),
                source,
            })?;
        Self::new(
            &image.context,
            dockerignore,
            dockerignore_file,
            &image.ignore,
            &image.only,
            &format!("docker_build({:?})", image.image_ref),
        )
    }

    /// A filter from parts: `dockerignore` matches paths relative to `root`; `ignore` and
    /// `only` are absolute, as in [`ImageTarget`]. `origin` names the build in errors.
    fn new(
        root: &Path,
        dockerignore: DockerIgnore,
        dockerignore_file: PathBuf,
        ignore: &[String],
        only: &[String],
        origin: &str,
    ) -> Result<Self, ContextError> {
        let root_str = go_clean(&root.to_string_lossy());
        let ignore_patterns: Vec<String> = ignore.iter().map(|p| anchor(&root_str, p)).collect();
        let ignore = DockerIgnore::from_patterns(&ignore_patterns).map_err(|source| {
            ContextError::Pattern {
                origin: format!("{origin} ignore="),
                source,
            }
        })?;
        let only = if only.is_empty() {
            DockerIgnore::default()
        } else {
            let patterns: Vec<String> = std::iter::once("**".to_owned())
                .chain(
                    only.iter()
                        .map(|o| anchor(&root_str, &format!("!{}", o.trim()))),
                )
                .collect();
            DockerIgnore::from_patterns(&patterns).map_err(|source| ContextError::Pattern {
                origin: format!("{origin} only="),
                source,
            })?
        };
        Ok(ContextFilter {
            root: root.to_path_buf(),
            root_str,
            dockerignore,
            dockerignore_file,
            ignore,
            only,
        })
    }

    /// The context directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The `.dockerignore` file this filter read (it may not exist).
    pub fn dockerignore_file(&self) -> &Path {
        &self.dockerignore_file
    }

    /// Whether a change to `abs_path` is a change of the image's context: it is the context
    /// directory or under it, and not excluded. Purely lexical (the path may no longer exist).
    pub fn includes(&self, abs_path: &Path) -> bool {
        let Ok(rel) = abs_path.strip_prefix(&self.root) else {
            return false;
        };
        let mut parts = Vec::new();
        for c in rel.components() {
            match c {
                Component::Normal(name) => parts.push(name.to_string_lossy()),
                Component::CurDir => {}
                _ => return false,
            }
        }
        if parts.is_empty() {
            return true;
        }
        !self.excluded(&parts.join("/"))
    }

    fn abs(&self, rel: &str) -> String {
        if self.root_str.ends_with('/') {
            format!("{}{rel}", self.root_str)
        } else {
            format!("{}/{rel}", self.root_str)
        }
    }

    /// `rel` is slash-separated, relative to the root, non-empty.
    fn excluded(&self, rel: &str) -> bool {
        if is_git_dir(rel) || self.dockerignore.is_excluded(rel) {
            return true;
        }
        if self.ignore.is_empty() && self.only.is_empty() {
            return false;
        }
        let abs = self.abs(rel);
        self.ignore.is_excluded(&abs) || self.only.is_excluded(&abs)
    }

    /// Whether nothing at or below directory `rel` can be part of the context.
    fn can_skip_dir(&self, rel: &str) -> bool {
        if is_git_dir(rel) || self.dockerignore.can_skip_dir(rel) {
            return true;
        }
        if self.ignore.is_empty() && self.only.is_empty() {
            return false;
        }
        let abs = self.abs(rel);
        self.ignore.can_skip_dir(&abs) || self.only.can_skip_dir(&abs)
    }
}

/// `<dockerfile>.dockerignore` unless that file is known not to exist, else
/// `<context>/.dockerignore` (Tilt's choice, as in the Tiltfile's `docker_build`).
fn dockerignore_path(image: &ImageTarget) -> PathBuf {
    if let Some(dockerfile) = &image.dockerfile {
        let mut name = dockerfile.as_os_str().to_os_string();
        name.push(".dockerignore");
        let custom = PathBuf::from(name);
        match fs::metadata(&custom) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            _ => return custom,
        }
    }
    image.context.join(".dockerignore")
}

fn is_git_dir(rel: &str) -> bool {
    rel == ".git" || rel.starts_with(".git/")
}

/// Makes an absolute pattern's context prefix literal (a context path containing `[`, `*`,
/// `?` or `\` must not act as a glob), keeping a leading `!`.
fn anchor(root_str: &str, pattern: &str) -> String {
    let trimmed = pattern.trim();
    let (bang, body) = match trimmed.strip_prefix('!') {
        Some(rest) => ("!", rest.trim()),
        None => ("", trimmed),
    };
    let body = go_clean(body);
    let rest = if body == root_str {
        Some("")
    } else {
        body.strip_prefix(root_str)
            .filter(|r| r.starts_with('/') || root_str.ends_with('/'))
    };
    match rest {
        Some(rest) => {
            let mut out = String::from(bang);
            for c in root_str.chars() {
                if matches!(c, '*' | '?' | '[' | ']' | '\\') {
                    out.push('\\');
                }
                out.push(c);
            }
            out.push_str(rest);
            out
        }
        _ => format!("{bang}{body}"),
    }
}

enum EntryKind {
    Dir,
    File { len: u64 },
    Symlink(PathBuf),
}

struct Entry<'a> {
    /// Relative to the root, as the OS spells it.
    rel: &'a Path,
    abs: &'a Path,
    kind: EntryKind,
    /// Permission bits (`mode & 0o7777`).
    mode: u32,
}

type Visit<'v> = dyn FnMut(&Entry<'_>) -> Result<(), ContextError> + 'v;

#[cfg(test)]
thread_local! {
    /// Directories the walk read, for tests that check excluded ones are never opened.
    static READ_DIRS: std::cell::RefCell<Vec<PathBuf>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Visits the included entries under the root; `skip` (cleaned relative paths) are left out
/// with everything below them.
fn walk(filter: &ContextFilter, skip: &[&str], visit: &mut Visit<'_>) -> Result<(), ContextError> {
    walk_dir(filter, &filter.root, Path::new(""), "", skip, visit)
}

fn walk_dir(
    filter: &ContextFilter,
    dir_abs: &Path,
    dir_rel: &Path,
    dir_rel_str: &str,
    skip: &[&str],
    visit: &mut Visit<'_>,
) -> Result<(), ContextError> {
    #[cfg(test)]
    READ_DIRS.with(|d| d.borrow_mut().push(dir_abs.to_path_buf()));
    let mut names: Vec<OsString> = Vec::new();
    for entry in fs::read_dir(dir_abs).map_err(io_error("reading directory", dir_abs))? {
        names.push(
            entry
                .map_err(io_error("reading directory", dir_abs))?
                .file_name(),
        );
    }
    names.sort();
    for name in names {
        let abs = dir_abs.join(&name);
        let rel = dir_rel.join(&name);
        let rel_str = if dir_rel_str.is_empty() {
            name.to_string_lossy().into_owned()
        } else {
            format!("{dir_rel_str}/{}", name.to_string_lossy())
        };
        if skip.contains(&rel_str.as_str()) {
            continue;
        }
        let meta = match fs::symlink_metadata(&abs) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_error("reading", &abs)(e)),
        };
        let file_type = meta.file_type();
        let mode = meta.permissions().mode() & 0o7777;
        let excluded = filter.excluded(&rel_str);
        let kind = if file_type.is_dir() {
            if excluded {
                if !filter.can_skip_dir(&rel_str) {
                    walk_dir(filter, &abs, &rel, &rel_str, skip, visit)?;
                }
                continue;
            }
            EntryKind::Dir
        } else if excluded {
            continue;
        } else if file_type.is_file() {
            EntryKind::File { len: meta.len() }
        } else if file_type.is_symlink() {
            match fs::read_link(&abs) {
                Ok(target) => EntryKind::Symlink(target),
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_error("reading symlink", &abs)(e)),
            }
        } else {
            // Sockets, FIFOs and devices cannot be sent.
            continue;
        };
        let is_dir = matches!(kind, EntryKind::Dir);
        visit(&Entry {
            rel: &rel,
            abs: &abs,
            kind,
            mode,
        })?;
        if is_dir {
            walk_dir(filter, &abs, &rel, &rel_str, skip, visit)?;
        }
    }
    Ok(())
}

fn hash_framed(hasher: &mut Sha256, bytes: &[u8]) {
    hasher.update((bytes.len() as u64).to_le_bytes());
    hasher.update(bytes);
}

/// sha256 hex over the included entries in walk order: relative path, entry type, unix mode
/// bits, file contents, symlink target; plus `extra` (the caller adds dockerfile contents,
/// build args, target...). Mtimes and owners are NOT part of it, so the same content gives the
/// same digest on any checkout. Never reads excluded directories (skip them in the walk).
pub fn digest(filter: &ContextFilter, extra: &[u8]) -> Result<String, ContextError> {
    let mut hasher = Sha256::new();
    hasher.update(b"tiltrs build context v1\0");
    let mut buf = vec![0u8; 64 * 1024];
    walk(filter, &[], &mut |entry| {
        let (tag, payload): (&[u8], Vec<u8>) = match &entry.kind {
            EntryKind::Dir => (b"d", Vec::new()),
            EntryKind::Symlink(target) => (b"l", target.as_os_str().as_bytes().to_vec()),
            EntryKind::File { .. } => {
                let mut file = match fs::File::open(entry.abs) {
                    Ok(f) => f,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                    Err(e) => return Err(io_error("reading", entry.abs)(e)),
                };
                let mut content = Sha256::new();
                loop {
                    let n = file
                        .read(&mut buf)
                        .map_err(io_error("reading", entry.abs))?;
                    if n == 0 {
                        break;
                    }
                    content.update(&buf[..n]);
                }
                (b"f", content.finalize().to_vec())
            }
        };
        hash_framed(&mut hasher, entry.rel.as_os_str().as_bytes());
        hasher.update(tag);
        hasher.update(entry.mode.to_le_bytes());
        hash_framed(&mut hasher, &payload);
        Ok(())
    })?;
    hasher.update(b"extra\0");
    hash_framed(&mut hasher, extra);
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// A header with everything but type, size and mode fixed, so archives are reproducible.
fn header(kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h
}

/// Yields exactly `remaining` bytes of `inner`, padding with zeros if it is shorter (a file
/// that shrank while being archived must not corrupt the tar).
struct ExactSize<R> {
    inner: R,
    remaining: u64,
    inner_done: bool,
}

impl<R: Read> Read for ExactSize<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = usize::try_from(self.remaining).map_or(buf.len(), |r| r.min(buf.len()));
        let n = if self.inner_done {
            0
        } else {
            self.inner.read(&mut buf[..want])?
        };
        let n = if n == 0 {
            self.inner_done = true;
            buf[..want].fill(0);
            want
        } else {
            n
        };
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// Writes the context as an uncompressed tar to `out`: included files, dirs and symlinks (not
/// followed), deterministic headers (mtime 0, uid/gid 0, mode from the file), in walk order;
/// and the `generated` files (name in the archive, contents: the Dockerfile, a rewritten
/// `.dockerignore`), last, each replacing a context entry of that name.
pub fn write_tar<W: Write>(
    filter: &ContextFilter,
    generated: &[(&str, &[u8])],
    out: W,
) -> Result<W, ContextError> {
    let generated = generated
        .iter()
        .map(|(name, contents)| Ok((archive_name(name)?, *contents)))
        .collect::<Result<Vec<_>, ContextError>>()?;
    let skip: Vec<&str> = generated.iter().map(|(name, _)| name.as_str()).collect();
    let mut builder = tar::Builder::new(out);
    walk(filter, &skip, &mut |entry| {
        let archive_err = |source| ContextError::Archive {
            path: entry.abs.to_path_buf(),
            source,
        };
        match &entry.kind {
            EntryKind::Dir => {
                let mut h = header(tar::EntryType::Directory, 0, entry.mode);
                builder
                    .append_data(&mut h, entry.rel, io::empty())
                    .map_err(archive_err)
            }
            EntryKind::Symlink(target) => {
                let mut h = header(tar::EntryType::Symlink, 0, entry.mode);
                builder
                    .append_link(&mut h, entry.rel, target)
                    .map_err(archive_err)
            }
            EntryKind::File { len } => {
                let file = match fs::File::open(entry.abs) {
                    Ok(f) => f,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                    Err(e) => return Err(io_error("reading", entry.abs)(e)),
                };
                let mut h = header(tar::EntryType::Regular, *len, entry.mode);
                let data = ExactSize {
                    inner: file,
                    remaining: *len,
                    inner_done: false,
                };
                builder
                    .append_data(&mut h, entry.rel, data)
                    .map_err(archive_err)
            }
        }
    })?;
    for (name, contents) in generated {
        let mut h = header(tar::EntryType::Regular, contents.len() as u64, 0o644);
        builder
            .append_data(&mut h, &name, contents)
            .map_err(|source| ContextError::Archive {
                path: PathBuf::from(&name),
                source,
            })?;
    }
    builder
        .into_inner()
        .map_err(|source| ContextError::Archive {
            path: filter.root.clone(),
            source,
        })
}

/// A generated file's name in the archive, cleaned; it must stay inside the archive.
fn archive_name(name: &str) -> Result<String, ContextError> {
    let cleaned = go_clean(name.trim_start_matches('/'));
    if cleaned == "." || cleaned == ".." || cleaned.starts_with("../") {
        return Err(ContextError::DockerfileName(name.to_owned()));
    }
    Ok(cleaned)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::model::Builder;

    fn image(context: &Path) -> ImageTarget {
        ImageTarget {
            dockerfile: Some(context.join("Dockerfile")),
            dockerfile_contents: "FROM scratch\n".into(),
            ..ImageTarget::new("app", Builder::Docker, context.to_path_buf())
        }
    }

    fn write(root: &Path, rel: &str, contents: &str) {
        let path = root.join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("mkdir");
        }
        fs::write(path, contents).expect("write");
    }

    /// A context with a bit of everything.
    fn fixture() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        write(root, "Dockerfile", "FROM scratch\n");
        write(root, "README.md", "readme");
        write(root, "CHANGELOG.md", "changes");
        write(root, "src/main.go", "package main");
        write(root, "src/lib/util.go", "package lib");
        write(root, "node_modules/left-pad/index.js", "module.exports = 1");
        write(root, "node_modules/keep.js", "keep");
        write(root, "logs/a.log", "a");
        write(root, "logs/keep.log", "k");
        write(root, ".git/HEAD", "ref: refs/heads/main");
        dir
    }

    /// Entry names of the walk (what the tar holds, without a Dockerfile override).
    fn entries(filter: &ContextFilter) -> Vec<String> {
        let tar = write_tar(filter, &[], Vec::new()).expect("tar");
        tar_names(&tar)
    }

    fn tar_names(tar: &[u8]) -> Vec<String> {
        let mut archive = tar::Archive::new(tar);
        archive
            .entries()
            .expect("entries")
            .map(|e| {
                let e = e.expect("entry");
                let name = e.path().expect("path").to_string_lossy().into_owned();
                name.trim_end_matches('/').to_owned()
            })
            .collect()
    }

    #[test]
    fn everything_but_git_by_default() {
        let dir = fixture();
        let filter = ContextFilter::for_image(&image(dir.path())).expect("filter");
        assert_eq!(
            entries(&filter),
            vec![
                "CHANGELOG.md",
                "Dockerfile",
                "README.md",
                "logs",
                "logs/a.log",
                "logs/keep.log",
                "node_modules",
                "node_modules/keep.js",
                "node_modules/left-pad",
                "node_modules/left-pad/index.js",
                "src",
                "src/lib",
                "src/lib/util.go",
                "src/main.go",
            ]
        );
        assert!(!filter.includes(&dir.path().join(".git/HEAD")));
        assert!(filter.includes(&dir.path().join("src/new.go")));
        assert!(filter.includes(dir.path()));
        assert!(!filter.includes(Path::new("/elsewhere/src/main.go")));
        assert!(!filter.includes(&dir.path().join("../x")));
    }

    #[test]
    fn only_keeps_listed_paths_and_walks_their_parents() {
        let dir = fixture();
        let root = dir.path();
        let mut img = image(root);
        img.only = vec![
            root.join("src/lib").display().to_string(),
            root.join("README.md").display().to_string(),
        ];
        let filter = ContextFilter::for_image(&img).expect("filter");
        READ_DIRS.with(|d| d.borrow_mut().clear());
        assert_eq!(
            entries(&filter),
            vec!["README.md", "src/lib", "src/lib/util.go"]
        );
        let read = READ_DIRS.with(|d| d.borrow().clone());
        assert!(read.contains(&root.join("src")));
        assert!(!read.contains(&root.join("node_modules")));
        assert!(!read.contains(&root.join("logs")));
        assert!(filter.includes(&root.join("src/lib/new.go")));
        assert!(!filter.includes(&root.join("src/main.go")));
        assert!(!filter.includes(&root.join("Dockerfile")));
    }

    #[test]
    fn ignore_patterns_with_exceptions_and_no_reads_of_skipped_dirs() {
        let dir = fixture();
        let root = dir.path();
        let mut img = image(root);
        img.ignore = vec![
            root.join("node_modules").display().to_string(),
            root.join("logs/*.log").display().to_string(),
            format!("!{}", root.join("logs/keep.log").display()),
            root.join("*.md").display().to_string(),
        ];
        let filter = ContextFilter::for_image(&img).expect("filter");
        READ_DIRS.with(|d| d.borrow_mut().clear());
        assert_eq!(
            entries(&filter),
            vec![
                "Dockerfile",
                "logs",
                "logs/keep.log",
                "src",
                "src/lib",
                "src/lib/util.go",
                "src/main.go",
            ]
        );
        let read = READ_DIRS.with(|d| d.borrow().clone());
        assert!(!read.contains(&root.join("node_modules")));
        assert!(!read.contains(&root.join(".git")));
        assert!(!filter.includes(&root.join("node_modules/x.js")));
        assert!(!filter.includes(&root.join("logs/b.log")));
        assert!(filter.includes(&root.join("logs/keep.log")));
    }

    #[test]
    fn context_path_with_glob_characters_is_literal() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("proj[1]*");
        write(&root, "a.txt", "a");
        write(&root, "b.txt", "b");
        let mut img = image(&root);
        img.ignore = vec![root.join("a.txt").display().to_string()];
        let filter = ContextFilter::for_image(&img).expect("filter");
        assert_eq!(entries(&filter), vec!["b.txt"]);
    }

    #[test]
    fn dockerignore_with_exceptions() {
        let dir = fixture();
        let root = dir.path();
        write(
            root,
            ".dockerignore",
            "# docs\n*.md\n!README.md\nnode_modules\n!node_modules/keep.js\nlogs/\n",
        );
        let filter = ContextFilter::for_image(&image(root)).expect("filter");
        READ_DIRS.with(|d| d.borrow_mut().clear());
        assert_eq!(
            entries(&filter),
            vec![
                ".dockerignore",
                "Dockerfile",
                "README.md",
                "node_modules/keep.js",
                "src",
                "src/lib",
                "src/lib/util.go",
                "src/main.go",
            ]
        );
        let read = READ_DIRS.with(|d| d.borrow().clone());
        assert!(
            read.contains(&root.join("node_modules")),
            "an exception reaches inside"
        );
        assert!(!read.contains(&root.join("node_modules/left-pad")));
        assert!(!read.contains(&root.join("logs")));
        assert_eq!(filter.dockerignore_file(), root.join(".dockerignore"));
    }

    #[test]
    fn dockerfile_dockerignore_takes_precedence() {
        let dir = fixture();
        let root = dir.path();
        write(root, ".dockerignore", "src\n");
        write(root, "docker/prod.Dockerfile", "FROM scratch\n");
        write(
            root,
            "docker/prod.Dockerfile.dockerignore",
            "node_modules\nlogs\n",
        );
        let mut img = image(root);
        img.dockerfile = Some(root.join("docker/prod.Dockerfile"));
        let filter = ContextFilter::for_image(&img).expect("filter");
        assert_eq!(
            filter.dockerignore_file(),
            root.join("docker/prod.Dockerfile.dockerignore")
        );
        let names = entries(&filter);
        assert!(names.contains(&"src/main.go".to_owned()));
        assert!(!names.iter().any(|n| n.starts_with("node_modules")));
        assert!(!names.iter().any(|n| n.starts_with("logs")));

        // Without the Dockerfile's own file, the context's applies.
        fs::remove_file(root.join("docker/prod.Dockerfile.dockerignore")).expect("rm");
        let filter = ContextFilter::for_image(&img).expect("filter");
        let names = entries(&filter);
        assert!(!names.iter().any(|n| n.starts_with("src")));
        assert!(names.contains(&"logs/a.log".to_owned()));
    }

    #[test]
    fn bad_patterns_name_pattern_and_source() {
        let dir = fixture();
        let root = dir.path();
        write(root, ".dockerignore", "ok\nbad[\n");
        let err = ContextFilter::for_image(&image(root)).expect_err("bad pattern");
        let msg = err.to_string();
        assert!(msg.contains(".dockerignore"), "{msg}");
        assert!(msg.contains("bad["), "{msg}");

        fs::remove_file(root.join(".dockerignore")).expect("rm");
        let mut img = image(root);
        img.ignore = vec![root.join("bad[").display().to_string()];
        let msg = ContextFilter::for_image(&img)
            .expect_err("bad ignore")
            .to_string();
        assert!(msg.contains("ignore="), "{msg}");
    }

    #[test]
    fn digest_ignores_mtime_but_not_content_mode_or_extra() {
        let dir = fixture();
        let root = dir.path();
        let filter = ContextFilter::for_image(&image(root)).expect("filter");
        let base = digest(&filter, b"extra").expect("digest");
        assert_eq!(base.len(), 64);

        let file = fs::File::options()
            .write(true)
            .open(root.join("src/main.go"))
            .expect("open");
        file.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(12345))
            .expect("mtime");
        drop(file);
        assert_eq!(digest(&filter, b"extra").expect("digest"), base);

        // Excluded files do not count.
        write(root, ".git/ORIG_HEAD", "x");
        assert_eq!(digest(&filter, b"extra").expect("digest"), base);

        assert_ne!(digest(&filter, b"other").expect("digest"), base);

        fs::set_permissions(root.join("src/main.go"), fs::Permissions::from_mode(0o755))
            .expect("chmod");
        let chmodded = digest(&filter, b"extra").expect("digest");
        assert_ne!(chmodded, base);

        write(root, "src/main.go", "package main // changed");
        assert_ne!(digest(&filter, b"extra").expect("digest"), chmodded);

        // Moving content between files changes it too.
        let a = tempfile::tempdir().expect("tempdir");
        write(a.path(), "x", "ab");
        write(a.path(), "y", "");
        let b = tempfile::tempdir().expect("tempdir");
        write(b.path(), "x", "a");
        write(b.path(), "y", "b");
        for d in [a.path(), b.path()] {
            fs::set_permissions(d.join("x"), fs::Permissions::from_mode(0o644)).expect("chmod");
            fs::set_permissions(d.join("y"), fs::Permissions::from_mode(0o644)).expect("chmod");
        }
        let da = digest(&ContextFilter::for_image(&image(a.path())).expect("a"), b"").expect("a");
        let db = digest(&ContextFilter::for_image(&image(b.path())).expect("b"), b"").expect("b");
        assert_ne!(da, db);
    }

    #[test]
    fn tar_headers_are_deterministic_and_symlinks_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        write(root, "bin/run.sh", "#!/bin/sh\n");
        fs::set_permissions(root.join("bin/run.sh"), fs::Permissions::from_mode(0o750))
            .expect("chmod");
        std::os::unix::fs::symlink("bin/run.sh", root.join("link")).expect("symlink");
        std::os::unix::net::UnixListener::bind(root.join("sock")).expect("socket");
        let filter = ContextFilter::for_image(&image(root)).expect("filter");

        let tar = write_tar(&filter, &[], Vec::new()).expect("tar");
        assert_eq!(tar_names(&tar), vec!["bin", "bin/run.sh", "link"]);
        let mut archive = tar::Archive::new(tar.as_slice());
        for entry in archive.entries().expect("entries") {
            let mut entry = entry.expect("entry");
            let h = entry.header().clone();
            assert_eq!(h.mtime().expect("mtime"), 0);
            assert_eq!(h.uid().expect("uid"), 0);
            assert_eq!(h.gid().expect("gid"), 0);
            let path = entry.path().expect("path").to_string_lossy().into_owned();
            match path.trim_end_matches('/') {
                "bin" => assert_eq!(h.entry_type(), tar::EntryType::Directory),
                "bin/run.sh" => {
                    assert_eq!(h.mode().expect("mode"), 0o750);
                    let mut s = String::new();
                    entry.read_to_string(&mut s).expect("read");
                    assert_eq!(s, "#!/bin/sh\n");
                }
                "link" => {
                    assert_eq!(h.entry_type(), tar::EntryType::Symlink);
                    let target = entry.link_name().expect("link").expect("target");
                    assert_eq!(target, Path::new("bin/run.sh"));
                }
                other => panic!("unexpected entry {other}"),
            }
        }
        // Same inputs, same bytes.
        assert_eq!(write_tar(&filter, &[], Vec::new()).expect("tar"), tar);
    }

    #[test]
    fn dockerfile_entry_replaces_the_context_file() {
        let dir = fixture();
        let root = dir.path();
        let filter = ContextFilter::for_image(&image(root)).expect("filter");
        let tar =
            write_tar(&filter, &[("./Dockerfile", b"FROM alpine\n")], Vec::new()).expect("tar");
        let names = tar_names(&tar);
        assert_eq!(names.iter().filter(|n| *n == "Dockerfile").count(), 1);
        assert_eq!(names.last().map(String::as_str), Some("Dockerfile"));
        let mut archive = tar::Archive::new(tar.as_slice());
        let mut found = false;
        for entry in archive.entries().expect("entries") {
            let mut entry = entry.expect("entry");
            if entry.path().expect("path") == Path::new("Dockerfile") {
                let mut s = String::new();
                entry.read_to_string(&mut s).expect("read");
                assert_eq!(s, "FROM alpine\n");
                found = true;
            }
        }
        assert!(found);

        // A Dockerfile from outside the context gets its own name.
        let tar = write_tar(&filter, &[("Dockerfile.tilt", b"FROM x\n")], Vec::new()).expect("tar");
        let names = tar_names(&tar);
        assert!(names.contains(&"Dockerfile".to_owned()));
        assert_eq!(names.last().map(String::as_str), Some("Dockerfile.tilt"));

        assert!(matches!(
            write_tar(&filter, &[("../Dockerfile", b"")], Vec::new()),
            Err(ContextError::DockerfileName(_))
        ));
    }

    #[test]
    fn missing_context_is_an_io_error_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("nope");
        let filter = ContextFilter::for_image(&image(&missing)).expect("filter");
        let msg = digest(&filter, b"").expect_err("missing").to_string();
        assert!(msg.contains("nope"), "{msg}");
    }

    #[test]
    fn anchor_escapes_only_the_context_prefix() {
        assert_eq!(anchor("/p[1]", "/p[1]/a*"), "/p\\[1\\]/a*");
        assert_eq!(anchor("/p[1]", "!/p[1]/a/"), "!/p\\[1\\]/a");
        assert_eq!(anchor("/p", "/p"), "/p");
        assert_eq!(anchor("/p", "/pq/x"), "/pq/x");
        assert_eq!(anchor("/", "/x"), "/x");
    }
}
