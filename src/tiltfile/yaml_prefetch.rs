//! Parses the Kubernetes YAML files a Tiltfile names on a second thread while the Tiltfile
//! runs, so that `k8s_yaml('k8s/app.yaml')` usually finds the objects ready (YAML parsing is
//! most of the load time of a large project).
//!
//! Candidates are the string literals of the main Tiltfile that end in `.yaml`/`.yml`, in a
//! shared queue. The worker takes them from the back (last named first) while `k8s_yaml`,
//! which usually asks for them in order, takes the file it needs off the queue and parses it
//! itself: the two threads meet in the middle, and the caller waits only when the worker is
//! parsing the very file it asks for. Each parse keeps the text it was made from and the
//! [`file_reads`](super::file_reads) generation of that read: the caller uses it as is while
//! no load-time command has run since, and otherwise only if the file still has that text,
//! so the result and every error are those of parsing at the call.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use super::file_reads;
use super::k8s_objects::parse_objects;
use super::state::K8sObject;

/// Below this many candidate files, parsing at the call is cheaper than a thread.
const MIN_FILES: usize = 4;

/// A file parsed ahead of its `k8s_yaml` call.
pub struct Prefetched {
    /// The [`file_reads::generation`] when the file was read.
    pub generation: u64,
    pub text: String,
    pub objects: Result<Vec<K8sObject>, String>,
}

#[derive(Default)]
struct Queue {
    waiting: VecDeque<PathBuf>,
    parsing: Option<PathBuf>,
    done: HashMap<PathBuf, Prefetched>,
}

#[derive(Default)]
struct Shared {
    queue: Mutex<Queue>,
    parsed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

pub struct YamlPrefetch {
    shared: Arc<Shared>,
}

/// The paths of YAML files named by string literals in `source`, in order of appearance.
fn candidates(dir: &Path, source: &str) -> Vec<PathBuf> {
    let mut literals = Vec::new();
    for quote in ['\'', '"'] {
        for (end, _) in source.match_indices(quote) {
            let before = &source[..end];
            if !(before.ends_with(".yaml") || before.ends_with(".yml")) {
                continue;
            }
            let Some(start) = before.rfind(quote) else {
                continue;
            };
            let literal = &before[start + 1..];
            if literal.is_empty() || literal.contains('\n') || literal.contains(['\'', '"']) {
                continue;
            }
            literals.push((start, super::values::abs_path(dir, literal)));
        }
    }
    literals.sort_by_key(|(start, _)| *start);
    let mut seen = HashSet::new();
    literals
        .into_iter()
        .filter_map(|(_, path)| seen.insert(path.clone()).then_some(path))
        .collect()
}

fn work(shared: &Shared) {
    loop {
        let path = {
            let mut queue = shared.lock();
            let Some(path) = queue.waiting.pop_back() else {
                return;
            };
            queue.parsing = Some(path.clone());
            path
        };
        let generation = file_reads::generation();
        let parsed = std::fs::read_to_string(&path).ok().map(|text| Prefetched {
            generation,
            objects: parse_objects(&text),
            text,
        });
        let mut queue = shared.lock();
        queue.parsing = None;
        if let Some(parsed) = parsed {
            queue.done.insert(path, parsed);
        }
        shared.parsed.notify_all();
    }
}

impl YamlPrefetch {
    /// Starts parsing the YAML files `source` names; None when there are too few to bother.
    pub fn start(dir: &Path, source: &str) -> Option<Self> {
        let files = candidates(dir, source);
        if files.len() < MIN_FILES {
            return None;
        }
        let prefetch = Self::queued(files);
        let worker = prefetch.shared.clone();
        std::thread::Builder::new()
            .name("yaml-prefetch".into())
            .spawn(move || work(&worker))
            .ok()?;
        Some(prefetch)
    }

    fn queued(files: Vec<PathBuf>) -> Self {
        let shared = Arc::new(Shared::default());
        shared.lock().waiting.extend(files);
        YamlPrefetch { shared }
    }

    /// The parse of `path` made ahead of the call, waiting for it if it is under way; None
    /// when it was not a candidate, could not be read, or had not been started (it is then
    /// the caller's to parse).
    pub fn take(&self, path: &Path) -> Option<Prefetched> {
        let mut queue = self.shared.lock();
        loop {
            if let Some(parsed) = queue.done.remove(path) {
                return Some(parsed);
            }
            if queue.parsing.as_deref() != Some(path) {
                queue.waiting.retain(|p| p != path);
                return None;
            }
            queue = self
                .shared
                .parsed
                .wait(queue)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }
}

impl Drop for YamlPrefetch {
    /// The evaluation is over (or failed): the worker stops after the file in hand.
    fn drop(&mut self) {
        self.shared.lock().waiting.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_yaml_literals_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let found = candidates(
            dir.path(),
            "k8s_yaml('a.yaml')\nk8s_yaml([\"b.yml\", 'c.yaml'])\nx = 'a.yaml'\n",
        );
        assert_eq!(
            found,
            ["a.yaml", "b.yml", "c.yaml"].map(|f| dir.path().join(f))
        );
    }

    fn write_config_maps(dir: &Path, count: usize) -> String {
        let mut source = String::new();
        for i in 0..count {
            let doc = format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c{i}}}\n");
            std::fs::write(dir.join(format!("{i}.yaml")), doc).unwrap();
            source.push_str(&format!("k8s_yaml('{i}.yaml')\n"));
        }
        source
    }

    #[test]
    fn a_file_the_worker_has_not_reached_is_left_to_the_caller() {
        let dir = tempfile::tempdir().unwrap();
        write_config_maps(dir.path(), 3);
        let path = |i: usize| dir.path().join(format!("{i}.yaml"));
        let prefetch = YamlPrefetch::queued(vec![path(0), path(1), path(2)]);
        assert!(
            prefetch.take(&path(1)).is_none(),
            "not parsed yet: the caller's"
        );
        work(&prefetch.shared);
        let last = prefetch.take(&path(2)).unwrap();
        assert_eq!(last.objects.unwrap()[0].name, "c2");
        assert!(last.text.contains("name: c2"));
        assert!(
            prefetch.take(&path(1)).is_none(),
            "taken off the queue, never parsed"
        );
        assert_eq!(
            prefetch.take(&path(0)).unwrap().objects.unwrap()[0].name,
            "c0"
        );
        assert!(prefetch.take(&path(0)).is_none(), "handed out once");
    }

    #[test]
    fn the_caller_waits_for_a_file_under_way_and_gets_each_parse_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut source = write_config_maps(dir.path(), 40);
        source.push_str("k8s_yaml('missing.yaml')\n");
        let prefetch = YamlPrefetch::start(dir.path(), &source).unwrap();
        for i in 0..40 {
            let path = dir.path().join(format!("{i}.yaml"));
            if let Some(p) = prefetch.take(&path) {
                assert_eq!(p.objects.unwrap()[0].name, format!("c{i}"));
            }
            assert!(prefetch.take(&path).is_none());
        }
        assert!(prefetch.take(&dir.path().join("missing.yaml")).is_none());
        assert!(prefetch.take(&dir.path().join("other.yaml")).is_none());
    }
}
