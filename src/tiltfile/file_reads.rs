//! When a file read earlier in an evaluation can be trusted instead of read again.
//!
//! Only a command run at load time (`local`, `helm`, `kustomize`) can rewrite the project's
//! files in the middle of an evaluation, so every such command moves a process-wide
//! generation when it starts and again when it ends. A text read at generation `g` is still
//! the file's text while the generation is `g`: the YAML parsed ahead on another thread is
//! used without reading the file again, and a Dockerfile named by 200 `docker_build`s is read
//! once. After a command, files are read again (and prefetched parses are compared with the
//! new text). The counter is shared by every evaluation in the process, so another
//! evaluation's command only costs a re-read, never a stale text.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

static GENERATION: AtomicU64 = AtomicU64::new(0);

/// The current generation: changes whenever a load-time command starts or ends.
pub fn generation() -> u64 {
    GENERATION.load(Ordering::SeqCst)
}

/// True when no command started or ended since `generation` was taken.
pub fn unchanged_since(generation: u64) -> bool {
    self::generation() == generation
}

/// Held while a load-time command runs; moves the generation at both ends, so a file read
/// while the command was still writing it is not trusted afterwards.
pub struct CommandRunning(());

impl CommandRunning {
    pub fn begin() -> Self {
        GENERATION.fetch_add(1, Ordering::SeqCst);
        CommandRunning(())
    }
}

impl Drop for CommandRunning {
    fn drop(&mut self) {
        GENERATION.fetch_add(1, Ordering::SeqCst);
    }
}

/// Texts read during one evaluation, each with the generation it was read at.
#[derive(Default)]
pub struct ReadCache {
    texts: RefCell<HashMap<PathBuf, (u64, Rc<str>)>>,
}

impl ReadCache {
    /// The text of `path`, from the cache while no command has run since it was read.
    pub fn read_to_string(&self, path: &Path) -> std::io::Result<Rc<str>> {
        if let Some((generation, text)) = self.texts.borrow().get(path)
            && unchanged_since(*generation)
        {
            return Ok(text.clone());
        }
        let generation = generation();
        let text: Rc<str> = std::fs::read_to_string(path)?.into();
        self.texts
            .borrow_mut()
            .insert(path.to_path_buf(), (generation, text.clone()));
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_text_is_read_again_after_a_command() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("Dockerfile");
        std::fs::write(&path, "FROM a").unwrap();
        let cache = ReadCache::default();
        // Other tests in this process run commands too: expect the cached text only when
        // nothing moved the generation in between.
        let before = generation();
        assert_eq!(&*cache.read_to_string(&path).unwrap(), "FROM a");
        std::fs::write(&path, "FROM b").unwrap();
        let cached = cache.read_to_string(&path).unwrap();
        if unchanged_since(before) {
            assert_eq!(
                &*cached, "FROM a",
                "no command ran: the first read is reused"
            );
        }
        let command = CommandRunning::begin();
        drop(command);
        assert_eq!(&*cache.read_to_string(&path).unwrap(), "FROM b");
    }

    #[test]
    fn a_missing_file_is_an_error_each_time() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ReadCache::default();
        let path = dir.path().join("missing");
        assert!(cache.read_to_string(&path).is_err());
        std::fs::write(&path, "x").unwrap();
        assert_eq!(&*cache.read_to_string(&path).unwrap(), "x");
    }
}
