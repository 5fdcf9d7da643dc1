//! File watching: one `notify` watcher, filtered by ignore patterns, batched by an adaptive
//! debouncer.
//!
//! The engine describes what to watch as [`WatchSet`]s (an owner, such as a resource name,
//! with its paths and ignores). The watcher registers the fewest roots covering them
//! (directories recursively, files through their parent directory so atomic saves by rename
//! are seen), maps each raw event path to the owners that care about it (dropping ignored
//! paths before they can open a batch), and hands out [`Batch`]es of changed paths per owner.

pub mod debounce;
pub mod ignore;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher as _};
use thiserror::Error;
use tokio::sync::mpsc;

pub use debounce::DebounceConfig;
pub use ignore::IgnoreMatcher;

#[derive(Debug, Error)]
pub enum WatchError {
    #[error("failed to start the file watcher: {0}")]
    Start(notify::Error),
    #[error("failed to watch {path}: {source}")]
    Watch {
        path: PathBuf,
        source: notify::Error,
    },
}

/// What one owner watches.
#[derive(Clone)]
pub struct WatchSet {
    pub owner: String,
    pub paths: Vec<PathBuf>,
    pub ignore: IgnoreMatcher,
    /// A further filter: only paths it accepts are changes for this owner (an image's build
    /// context decides which of its files the image sees).
    pub include: Option<PathFilter>,
}

impl std::fmt::Debug for WatchSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchSet")
            .field("owner", &self.owner)
            .field("paths", &self.paths)
            .field("ignore", &self.ignore)
            .field("filtered", &self.include.is_some())
            .finish()
    }
}

/// Accepts the paths an owner cares about.
pub type PathFilter = Arc<dyn Fn(&Path) -> bool + Send + Sync>;

/// Changed paths per owner, after debouncing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    pub changes: BTreeMap<String, BTreeSet<PathBuf>>,
}

enum Raw {
    Path(String, PathBuf),
    /// The kernel queue overflowed: every owner may have changed.
    Rescan,
}

/// The watcher. Dropping it stops watching and ends the batch stream.
pub struct Watcher {
    watcher: RecommendedWatcher,
    sets: Arc<RwLock<Vec<WatchSet>>>,
    roots: BTreeMap<PathBuf, RecursiveMode>,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher")
            .field("roots", &self.roots)
            .finish()
    }
}

impl Watcher {
    /// Starts the watcher (with nothing registered) and the debounce task, which must run
    /// inside a tokio runtime.
    pub fn new(
        config: DebounceConfig,
    ) -> Result<(Self, mpsc::UnboundedReceiver<Batch>), WatchError> {
        let sets: Arc<RwLock<Vec<WatchSet>>> = Arc::new(RwLock::new(Vec::new()));
        let (raw_tx, raw_rx) = mpsc::unbounded_channel::<Raw>();
        let (out_tx, out_rx) = mpsc::unbounded_channel::<Batch>();
        let filter_sets = sets.clone();
        let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            let Ok(event) = res else { return };
            if event.need_rescan() {
                let _ = raw_tx.send(Raw::Rescan);
                return;
            }
            if matches!(event.kind, EventKind::Access(_)) {
                return;
            }
            let Ok(sets) = filter_sets.read() else { return };
            for path in &event.paths {
                for set in sets.iter() {
                    if set.paths.iter().any(|p| path.starts_with(p))
                        && !set.ignore.is_ignored(path)
                        && set.include.as_ref().is_none_or(|f| f(path))
                    {
                        let _ = raw_tx.send(Raw::Path(set.owner.clone(), path.clone()));
                    }
                }
            }
        })
        .map_err(WatchError::Start)?;
        let fold_sets = sets.clone();
        tokio::spawn(debounce::run(
            raw_rx,
            out_tx,
            config,
            move |batch: &mut Batch, raw| match raw {
                Raw::Path(owner, path) => {
                    batch.changes.entry(owner).or_default().insert(path);
                }
                Raw::Rescan => {
                    if let Ok(sets) = fold_sets.read() {
                        for set in sets.iter() {
                            batch
                                .changes
                                .entry(set.owner.clone())
                                .or_default()
                                .extend(set.paths.iter().cloned());
                        }
                    }
                }
            },
        ));
        Ok((
            Watcher {
                watcher,
                sets,
                roots: BTreeMap::new(),
            },
            out_rx,
        ))
    }

    /// Replaces what is watched; registers new roots and drops stale ones. Returns the roots
    /// that could not be watched (the rest still are).
    pub fn set(&mut self, sets: Vec<WatchSet>) -> Vec<WatchError> {
        let wanted = roots_for(sets.iter().flat_map(|s| s.paths.iter()));
        if let Ok(mut current) = self.sets.write() {
            *current = sets;
        }
        let mut errors = Vec::new();
        let stale: Vec<PathBuf> = self
            .roots
            .iter()
            .filter(|(p, m)| wanted.get(*p) != Some(m))
            .map(|(p, _)| p.clone())
            .collect();
        for p in stale {
            let _ = self.watcher.unwatch(&p);
            self.roots.remove(&p);
        }
        for (p, mode) in wanted {
            if self.roots.contains_key(&p) {
                continue;
            }
            match self.watcher.watch(&p, mode) {
                Ok(()) => {
                    self.roots.insert(p, mode);
                }
                Err(source) => errors.push(WatchError::Watch { path: p, source }),
            }
        }
        errors
    }

    /// The registered roots and whether each is recursive.
    pub fn roots(&self) -> Vec<(PathBuf, bool)> {
        self.roots
            .iter()
            .map(|(p, m)| (p.clone(), *m == RecursiveMode::Recursive))
            .collect()
    }
}

/// The fewest watch roots covering `paths`: existing directories recursively; files and
/// missing paths through their nearest existing parent, non-recursively.
fn roots_for<'a>(paths: impl Iterator<Item = &'a PathBuf>) -> BTreeMap<PathBuf, RecursiveMode> {
    let mut recursive: BTreeSet<PathBuf> = BTreeSet::new();
    let mut flat: BTreeSet<PathBuf> = BTreeSet::new();
    for p in paths {
        if p.is_dir() {
            recursive.insert(p.clone());
        } else if let Some(parent) = nearest_existing_parent(p) {
            flat.insert(parent);
        }
    }
    let covered = |p: &Path, recursive: &BTreeSet<PathBuf>, strict: bool| {
        recursive
            .iter()
            .any(|r| p.starts_with(r) && (!strict || r != p))
    };
    let rec: Vec<PathBuf> = recursive
        .iter()
        .filter(|p| !covered(p, &recursive, true))
        .cloned()
        .collect();
    let rec_set: BTreeSet<PathBuf> = rec.iter().cloned().collect();
    let mut out: BTreeMap<PathBuf, RecursiveMode> = rec
        .into_iter()
        .map(|p| (p, RecursiveMode::Recursive))
        .collect();
    for p in flat {
        if !covered(&p, &rec_set, false) {
            out.insert(p, RecursiveMode::NonRecursive);
        }
    }
    out
}

fn nearest_existing_parent(p: &Path) -> Option<PathBuf> {
    let mut cur = p.parent();
    while let Some(c) = cur {
        if c.is_dir() {
            return Some(c.to_path_buf());
        }
        cur = c.parent();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_are_minimal() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = dir.path().join("a");
        let b = a.join("b");
        std::fs::create_dir_all(&b).expect("mkdir");
        let file = a.join("f.txt");
        std::fs::write(&file, "x").expect("write");
        let other = dir.path().join("Tiltfile");
        std::fs::write(&other, "x").expect("write");
        let paths = [a.clone(), b, file, other];
        let roots = roots_for(paths.iter());
        assert_eq!(
            roots.into_iter().collect::<Vec<_>>(),
            vec![
                (dir.path().to_path_buf(), RecursiveMode::NonRecursive),
                (a, RecursiveMode::Recursive)
            ]
        );
    }

    #[tokio::test]
    async fn reports_changes_per_owner_and_skips_ignored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = dir.path().join("src");
        std::fs::create_dir_all(&src).expect("mkdir");
        let (mut w, mut rx) = Watcher::new(DebounceConfig::default()).expect("watcher");
        let ignore =
            IgnoreMatcher::with_builtins(&[format!("{}/*.log", src.display())]).expect("ignore");
        let errors = w.set(vec![WatchSet {
            owner: "app".into(),
            paths: vec![src.clone()],
            ignore,
            include: None,
        }]);
        assert!(errors.is_empty());
        std::fs::write(src.join("x.log"), "ignored").expect("write");
        std::fs::write(src.join("main.rs"), "fn main() {}").expect("write");
        let batch = rx.recv().await.expect("batch");
        let changed = &batch.changes["app"];
        assert!(changed.contains(&src.join("main.rs")), "{changed:?}");
        assert!(!changed.contains(&src.join("x.log")), "{changed:?}");
    }
}
