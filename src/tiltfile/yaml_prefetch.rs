//! Parses the Kubernetes YAML files a Tiltfile names on a second thread while the Tiltfile
//! runs, so that `k8s_yaml('k8s/app.yaml')` finds the objects ready instead of parsing them on
//! the evaluator's thread (YAML parsing is most of the load time of a large project).
//!
//! Candidates are the string literals of the main Tiltfile that end in `.yaml`/`.yml` and name
//! an existing file (relative to the Tiltfile's directory). A prefetched parse is used only when
//! the text `k8s_yaml` reads is exactly the text that was parsed, so the result and every error
//! are the same as parsing at the call.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, channel};

use super::k8s_objects::parse_objects;
use super::state::K8sObject;

/// Below this many candidate files, parsing at the call is cheaper than a thread.
const MIN_FILES: usize = 4;

type Parsed = (String, Result<Vec<K8sObject>, String>);

pub struct YamlPrefetch {
    results: Receiver<(PathBuf, Parsed)>,
    pending: HashSet<PathBuf>,
    ready: HashMap<PathBuf, Parsed>,
}

/// The paths of YAML files named by string literals in `source`.
fn candidates(dir: &Path, source: &str) -> Vec<PathBuf> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
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
            let path = super::values::abs_path(dir, literal);
            if path.is_file() && seen.insert(path.clone()) {
                out.push(path);
            }
        }
    }
    out
}

impl YamlPrefetch {
    /// Starts parsing the YAML files `source` names; None when there are too few to bother.
    pub fn start(dir: &Path, source: &str) -> Option<Self> {
        let files = candidates(dir, source);
        if files.len() < MIN_FILES {
            return None;
        }
        let (tx, results) = channel();
        let pending = files.iter().cloned().collect();
        std::thread::Builder::new()
            .name("yaml-prefetch".into())
            .spawn(move || {
                for path in files {
                    let Ok(text) = std::fs::read_to_string(&path) else {
                        continue;
                    };
                    let parsed = parse_objects(&text);
                    if tx.send((path, (text, parsed))).is_err() {
                        break;
                    }
                }
            })
            .ok()?;
        Some(YamlPrefetch {
            results,
            pending,
            ready: HashMap::new(),
        })
    }

    /// The prefetched parse of `path`, if it was parsed from exactly `text`.
    pub fn take(&mut self, path: &Path, text: &str) -> Option<Result<Vec<K8sObject>, String>> {
        if !self.ready.contains_key(path) && self.pending.contains(path) {
            while let Ok((p, parsed)) = self.results.recv() {
                self.pending.remove(&p);
                let found = p == path;
                self.ready.insert(p, parsed);
                if found {
                    break;
                }
            }
        }
        let (parsed_text, result) = self.ready.remove(path)?;
        (parsed_text == text).then_some(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_yaml_literals_that_exist() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["a.yaml", "b.yml"] {
            std::fs::write(dir.path().join(f), "kind: X\n").unwrap();
        }
        let found = candidates(
            dir.path(),
            "k8s_yaml('a.yaml')\nk8s_yaml([\"b.yml\", 'missing.yaml'])\nx = 'a.yaml'\n",
        );
        assert_eq!(
            found,
            vec![dir.path().join("a.yaml"), dir.path().join("b.yml")]
        );
    }

    #[test]
    fn prefetched_parse_is_used_only_for_the_same_text() {
        let dir = tempfile::tempdir().unwrap();
        let doc = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n";
        let mut source = String::new();
        for i in 0..MIN_FILES {
            std::fs::write(dir.path().join(format!("{i}.yaml")), doc).unwrap();
            source.push_str(&format!("k8s_yaml('{i}.yaml')\n"));
        }
        let mut prefetch = YamlPrefetch::start(dir.path(), &source).unwrap();
        let objects = prefetch
            .take(&dir.path().join("2.yaml"), doc)
            .unwrap()
            .unwrap();
        assert_eq!(objects[0].name, "c");
        assert!(
            prefetch
                .take(&dir.path().join("0.yaml"), "changed")
                .is_none()
        );
        assert!(prefetch.take(&dir.path().join("other.yaml"), doc).is_none());
    }
}
