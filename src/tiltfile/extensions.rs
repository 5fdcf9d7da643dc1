//! `load('ext://NAME', ...)`: resolved offline, first from extension repos the Tiltfile
//! registered (`v1alpha1.extension_repo` with a `file://` URL or a local path, and
//! `v1alpha1.extension` entries), then from the extensions tiltrs ships in `stdlib/ext/`.

use std::path::{Path, PathBuf};

use super::state::State;

/// Paths under this prefix name extensions bundled in the binary, not files on disk.
pub const BUNDLED_PREFIX: &str = "/tiltrs-bundled/ext";

/// Extensions shipped inside the binary.
const BUNDLED: &[(&str, &str)] = &[
    ("dotenv", include_str!("../../stdlib/ext/dotenv/Tiltfile")),
    (
        "namespace",
        include_str!("../../stdlib/ext/namespace/Tiltfile"),
    ),
    (
        "restart_process",
        include_str!("../../stdlib/ext/restart_process/Tiltfile"),
    ),
    (
        "uibutton",
        include_str!("../../stdlib/ext/uibutton/Tiltfile"),
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum ExtensionError {
    #[error("invalid extension name {0:?}")]
    InvalidName(String),
    #[error(
        "extension repo {repo:?} has URL {url:?}; tiltrs loads extensions offline and only supports file:// URLs and local paths"
    )]
    RemoteRepo { repo: String, url: String },
    #[error("extension {name:?} not found; looked in:\n{}", .looked.iter().map(|l| format!("  - {l}")).collect::<Vec<_>>().join("\n"))]
    NotFound { name: String, looked: Vec<String> },
}

/// The source of a bundled extension given its virtual path.
pub fn bundled_source(path: &Path) -> Option<&'static str> {
    let rest = path.strip_prefix(BUNDLED_PREFIX).ok()?;
    let name = rest.parent()?.to_str()?;
    BUNDLED
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, src)| *src)
}

fn repo_dir(repo: &str, url: &str) -> Result<PathBuf, ExtensionError> {
    if let Some(path) = url.strip_prefix("file://") {
        return Ok(PathBuf::from(path));
    }
    if url.starts_with('/') {
        return Ok(PathBuf::from(url));
    }
    Err(ExtensionError::RemoteRepo {
        repo: repo.to_owned(),
        url: url.to_owned(),
    })
}

/// Resolves `ext://NAME` to the Tiltfile to load.
pub fn resolve(name: &str, state: &State) -> Result<PathBuf, ExtensionError> {
    let name = name.trim_end_matches('/');
    if name.is_empty()
        || name
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return Err(ExtensionError::InvalidName(name.to_owned()));
    }
    let mut looked = Vec::new();
    let object_name = name.replace('/', "-");
    if let Some((repo_name, repo_path)) = state.extensions.get(&object_name)
        && let Some(url) = state.extension_repos.get(repo_name)
    {
        let dir = repo_dir(repo_name, url)?;
        let candidate = dir.join(repo_path).join("Tiltfile");
        if candidate.is_file() {
            return Ok(candidate);
        }
        looked.push(candidate.display().to_string());
    }
    let host = name.split('/').next().unwrap_or(name);
    let mut repos: Vec<(&String, &String)> = state
        .extension_repos
        .iter()
        .filter(|(r, _)| r.as_str() == host)
        .collect();
    repos.extend(
        state
            .extension_repos
            .iter()
            .filter(|(r, _)| r.as_str() == "default"),
    );
    for (repo, url) in repos {
        let dir = repo_dir(repo, url)?;
        let sub = if repo == host && repo != "default" {
            name.split_once('/').map_or("", |(_, rest)| rest)
        } else {
            name
        };
        let candidate = dir.join(sub).join("Tiltfile");
        if candidate.is_file() {
            return Ok(candidate);
        }
        looked.push(candidate.display().to_string());
    }
    if BUNDLED.iter().any(|(n, _)| *n == name) {
        return Ok(Path::new(BUNDLED_PREFIX).join(name).join("Tiltfile"));
    }
    looked.push(format!(
        "the extensions bundled with tiltrs ({})",
        BUNDLED
            .iter()
            .map(|(n, _)| *n)
            .collect::<Vec<_>>()
            .join(", ")
    ));
    Err(ExtensionError::NotFound {
        name: name.to_owned(),
        looked,
    })
}
