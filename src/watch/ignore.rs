//! Ignore patterns for file watching, with dockerignore-style semantics on absolute paths.
//!
//! Patterns come from `local_resource(ignore=)`, `.tiltignore` and `watch_settings(ignore=)`
//! (already absolute), plus Tilt's built-in editor temp-file list and `.git`. Rules, as in
//! Docker's matcher:
//! - `*` and `?` do not cross `/`; `**` does;
//! - a pattern that matches a directory also matches everything beneath it;
//! - `!pattern` re-includes; the last matching pattern wins.
//!
//! Matching uses one compiled [`globset::GlobSet`] and checks a path and its ancestors.

use std::path::Path;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use thiserror::Error;

/// Tilt's built-in list of editor temp files (`internal/ignore/ephemeral.go`).
pub const EDITOR_TEMP_PATTERNS: &[&str] = &[
    "**/*~",
    "**/.*.swp",
    "**/.*.swx",
    "**/.*.swo",
    "**/.*.swn",
    "**/4913",
    "**/.#*",
    "**/#*#",
    "**/flymake_*.*",
    "**/*___jb_old___",
    "**/*___jb_tmp___",
    "**/.idea/**",
    "**/.*.kate-swp",
    "**/*-go-tmp-umask",
];

#[derive(Debug, Error)]
#[error("invalid ignore pattern {pattern:?}: {source}")]
pub struct PatternError {
    pub pattern: String,
    #[source]
    pub source: globset::Error,
}

/// A compiled list of ignore patterns.
#[derive(Debug, Clone)]
pub struct IgnoreMatcher {
    set: GlobSet,
    negated: Vec<bool>,
    patterns: Vec<String>,
}

impl Default for IgnoreMatcher {
    fn default() -> Self {
        IgnoreMatcher {
            set: GlobSet::empty(),
            negated: Vec::new(),
            patterns: Vec::new(),
        }
    }
}

impl IgnoreMatcher {
    /// Compiles `patterns` (absolute, or relative ones matched at any depth). Blank lines and
    /// `#` comments are skipped, as in an ignore file.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Self, PatternError> {
        let mut builder = GlobSetBuilder::new();
        let mut negated = Vec::new();
        let mut kept = Vec::new();
        for raw in patterns {
            let raw = raw.as_ref().trim();
            if raw.is_empty() || raw.starts_with('#') {
                continue;
            }
            let (neg, pat) = match raw.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, raw),
            };
            let mut pat = pat.trim_end_matches('/').to_string();
            if pat.is_empty() {
                continue;
            }
            while pat.contains("//") {
                pat = pat.replace("//", "/");
            }
            if !pat.starts_with('/') && !pat.starts_with("**") {
                pat = format!("**/{pat}");
            }
            let glob = GlobBuilder::new(&pat)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|source| PatternError {
                    pattern: raw.to_string(),
                    source,
                })?;
            builder.add(glob);
            negated.push(neg);
            kept.push(raw.to_string());
        }
        let set = builder.build().map_err(|source| PatternError {
            pattern: kept.join(", "),
            source,
        })?;
        Ok(IgnoreMatcher {
            set,
            negated,
            patterns: kept,
        })
    }

    /// `patterns` plus the editor temp-file list.
    pub fn with_builtins<S: AsRef<str>>(patterns: &[S]) -> Result<Self, PatternError> {
        let mut all: Vec<String> = EDITOR_TEMP_PATTERNS.iter().map(|s| s.to_string()).collect();
        all.extend(patterns.iter().map(|p| p.as_ref().to_string()));
        Self::new(&all)
    }

    /// The patterns as given (for "why is this ignored" messages).
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }

    /// The index of the pattern deciding `path`, if any matches it or one of its ancestors.
    pub fn deciding_pattern(&self, path: &Path) -> Option<usize> {
        let mut last: Option<usize> = None;
        let mut cur = Some(path);
        while let Some(p) = cur {
            for i in self.set.matches(p) {
                last = Some(last.map_or(i, |l| l.max(i)));
            }
            cur = p.parent();
        }
        last
    }

    /// Whether `path` is ignored: any `.git` component, or a last matching pattern that is not
    /// a `!` exception.
    pub fn is_ignored(&self, path: &Path) -> bool {
        if path.components().any(|c| c.as_os_str() == ".git") {
            return true;
        }
        match self.deciding_pattern(path) {
            Some(i) => !self.negated.get(i).copied().unwrap_or(false),
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ignored(patterns: &[&str], path: &str) -> bool {
        IgnoreMatcher::with_builtins(patterns)
            .expect("patterns")
            .is_ignored(Path::new(path))
    }

    #[test]
    fn table() {
        let cases: &[(&[&str], &str, bool)] = &[
            (&["/p/build"], "/p/build", true),
            (&["/p/build"], "/p/build/a/b.o", true),
            (&["/p/build/"], "/p/build/x", true),
            (&["/p/build"], "/p/builds/x", false),
            (&["/p/*.log"], "/p/a.log", true),
            (&["/p/*.log"], "/p/sub/a.log", false),
            (&["/p/**/*.log"], "/p/sub/deep/a.log", true),
            (&["/p/**/*.log"], "/p/a.log", true),
            (&["/p/dir", "!/p/dir/keep.txt"], "/p/dir/keep.txt", false),
            (&["/p/dir", "!/p/dir/keep.txt"], "/p/dir/other.txt", true),
            (&["!/p/dir/keep.txt", "/p/dir"], "/p/dir/keep.txt", true),
            (&["node_modules"], "/p/a/node_modules/x.js", true),
            (&[], "/p/.git/index", true),
            (&[], "/p/src/main.rs", false),
            (&[], "/p/src/main.rs~", true),
            (&[], "/p/src/.main.rs.swp", true),
            (&[], "/p/src/4913", true),
            (&[], "/p/.idea/workspace.xml", true),
            (&[], "/p/src/#main.rs#", true),
            (&[], "/p/src/.#main.rs", true),
            (&["/p/?.txt"], "/p/a.txt", true),
            (&["/p/?.txt"], "/p/ab.txt", false),
        ];
        for (patterns, path, want) in cases {
            assert_eq!(ignored(patterns, path), *want, "{patterns:?} on {path}");
        }
    }

    #[test]
    fn comments_and_blank_lines_are_skipped() {
        let m = IgnoreMatcher::new(&["# comment", "", "  /p/x  "]).expect("patterns");
        assert_eq!(m.patterns(), &["/p/x".to_string()]);
        assert!(m.is_ignored(Path::new("/p/x/y")));
    }
}
