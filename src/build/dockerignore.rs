//! Docker's `.dockerignore` matcher (moby patternmatcher v0.6.1 semantics).
//!
//! This module owns the pattern language Docker uses to filter a build context, ported for
//! behaviour (not code) from `github.com/moby/patternmatcher` and its `ignorefile.ReadAll`:
//!
//! - [`DockerIgnore::parse`] reads a `.dockerignore` file the way `ReadAll` does: a UTF-8 BOM is
//!   dropped from the first line; a line *starting* with `#` is a comment (checked before
//!   trimming, so ` #x` is a pattern); lines are trimmed and blank ones dropped; a leading `!`
//!   marks an exception (whitespace after it is trimmed too); the rest is put through Go's
//!   `filepath.Clean` and one leading `/` is dropped, so `/foo`, `foo/` and `./foo` are `foo`.
//! - [`DockerIgnore::from_patterns`] takes patterns as `patternmatcher.New` does: trimmed and
//!   cleaned, with no comment handling and no leading-`/` stripping (absolute patterns stay
//!   absolute, for matching absolute paths).
//! - Syntax is validated as Go's `filepath.Match` does (`[` classes need a closing `]`, at least
//!   one member, no bare `-` or `]` as a range end; a trailing `\` is an error).
//! - `*` matches any run of characters except `/`, `?` one character except `/`, `[...]` a
//!   character class (`[^...]` negates; a class may match `/`), `\x` the character `x`.
//!   `**` matches any number of directories including none; `**/` at the start also matches
//!   at the root; a trailing `**` matches everything below. Docker's shortcuts are kept:
//!   a pattern starting with `**` whose rest is literal is a plain suffix test (`**foo` matches
//!   `barfoo`), and a literal pattern ending in `**` is a plain prefix test (`a**` matches
//!   `abc/d`, `dir/**` does not match `dir` itself).
//! - A path is matched by a pattern if the pattern matches the path or any of its parent
//!   directories (`MatchesOrParentMatches`); the last matching pattern wins, so `!` exceptions
//!   re-include what earlier patterns excluded.
//!
//! Deliberate differences from moby, all in patterns Docker mishandles: Docker builds a Go
//! regular expression from the raw pattern, so `[!a]` is a class of `!` and `a` (as here — Go's
//! `filepath.Match` has no `!` negation), but `\d`, `*` or `?` inside a class, or `^` outside
//! one, take regex meanings there; here they are the literal characters `filepath.Match`
//! documents.

use regex::Regex;
use thiserror::Error;

/// A pattern that `patternmatcher.New` would reject.
#[derive(Debug, Error)]
pub enum PatternError {
    /// A lone `!` (an exception of nothing).
    #[error("illegal exclusion pattern: {pattern:?}")]
    IllegalExclusion { pattern: String },
    /// Not valid `filepath.Match` syntax.
    #[error("syntax error in pattern {pattern:?}: {reason}")]
    Syntax {
        pattern: String,
        reason: &'static str,
    },
    /// Valid syntax that still cannot be matched (e.g. a reversed range `[z-a]`).
    #[error("invalid pattern {pattern:?}: {source}")]
    Regex {
        pattern: String,
        #[source]
        source: regex::Error,
    },
}

/// A compiled list of dockerignore patterns.
#[derive(Debug, Clone, Default)]
pub struct DockerIgnore {
    patterns: Vec<Pattern>,
    exclusions: bool,
}

#[derive(Debug, Clone)]
struct Pattern {
    /// The cleaned pattern, without its `!`.
    text: String,
    exclusion: bool,
    kind: MatchKind,
}

#[derive(Debug, Clone)]
enum MatchKind {
    Exact,
    /// The pattern is `<literal>**`: a string-prefix test on `<literal>`.
    Prefix(String),
    /// The pattern is `**<literal>`: a string-suffix test (also `**/foo` matches `foo`).
    Suffix(String),
    Regex(Regex),
}

impl DockerIgnore {
    /// Compiles the contents of a `.dockerignore` file (`ignorefile.ReadAll` rules).
    pub fn parse(file_contents: &str) -> Result<Self, PatternError> {
        Self::from_patterns(&read_all(file_contents))
    }

    /// Compiles patterns as given (`patternmatcher.New` rules: trimmed, `filepath.Clean`ed,
    /// blank ones skipped; a leading `/` is kept).
    pub fn from_patterns<S: AsRef<str>>(patterns: &[S]) -> Result<Self, PatternError> {
        let mut out = DockerIgnore::default();
        for raw in patterns {
            let trimmed = raw.as_ref().trim();
            if trimmed.is_empty() {
                continue;
            }
            let cleaned = go_clean(trimmed);
            let (exclusion, text) = match cleaned.strip_prefix('!') {
                Some("") => {
                    return Err(PatternError::IllegalExclusion {
                        pattern: trimmed.to_owned(),
                    });
                }
                Some(rest) => (true, rest.to_owned()),
                None => (false, cleaned.clone()),
            };
            validate(&text).map_err(|reason| PatternError::Syntax {
                pattern: trimmed.to_owned(),
                reason,
            })?;
            let kind = compile(&text).map_err(|source| PatternError::Regex {
                pattern: trimmed.to_owned(),
                source,
            })?;
            out.exclusions |= exclusion;
            out.patterns.push(Pattern {
                text,
                exclusion,
                kind,
            });
        }
        Ok(out)
    }

    /// True when there are no patterns (nothing is ever excluded).
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// True when some pattern is an exception (`!pattern`).
    pub fn has_exclusions(&self) -> bool {
        self.exclusions
    }

    /// The cleaned patterns, exceptions with their leading `!`, in order.
    pub fn patterns(&self) -> Vec<String> {
        self.patterns
            .iter()
            .map(|p| {
                if p.exclusion {
                    format!("!{}", p.text)
                } else {
                    p.text.clone()
                }
            })
            .collect()
    }

    /// Whether `rel_path` (slash-separated, relative to the context root — or absolute when the
    /// patterns are) is excluded: the last pattern matching it or one of its parent directories
    /// decides. `.` (the root itself) is never excluded.
    pub fn is_excluded(&self, rel_path: &str) -> bool {
        if self.patterns.is_empty() {
            return false;
        }
        let file = go_clean(rel_path);
        if file == "." {
            return false;
        }
        let parents = parent_prefixes(&file);
        let mut matched = false;
        for pattern in &self.patterns {
            // An inclusion cannot change an already-excluded path, an exception cannot change
            // a path nothing excluded yet.
            if pattern.exclusion != matched {
                continue;
            }
            let hit = pattern.matches(&file) || parents.iter().any(|p| pattern.matches(p));
            if hit {
                matched = !pattern.exclusion;
            }
        }
        matched
    }

    /// Whether a walk may skip directory `rel_dir` without reading it: it is excluded, and no
    /// exception (`!pattern`) could re-include anything at or below it. Conservative: when an
    /// exception might reach inside (a `**`, or literal/wildcard segments compatible with the
    /// directory's path), the directory is walked.
    pub fn can_skip_dir(&self, rel_dir: &str) -> bool {
        if !self.is_excluded(rel_dir) {
            return false;
        }
        if !self.exclusions {
            return true;
        }
        let dir = go_clean(rel_dir);
        let dir_segments: Vec<&str> = dir.split('/').collect();
        !self
            .patterns
            .iter()
            .filter(|p| p.exclusion)
            .any(|p| p.could_match_at_or_below(&dir_segments))
    }
}

impl Pattern {
    fn matches(&self, path: &str) -> bool {
        match &self.kind {
            MatchKind::Exact => path == self.text,
            MatchKind::Prefix(prefix) => path.starts_with(prefix.as_str()),
            MatchKind::Suffix(suffix) => {
                path.ends_with(suffix.as_str())
                    || suffix.strip_prefix('/').is_some_and(|rest| path == rest)
            }
            MatchKind::Regex(re) => re.is_match(path),
        }
    }

    /// Could this pattern match the directory `dir`, one of its ancestors, or something below
    /// it? Compares segment by segment; anything it cannot decide counts as "could".
    fn could_match_at_or_below(&self, dir: &[&str]) -> bool {
        for (pat_seg, dir_seg) in self.text.split('/').zip(dir) {
            if pat_seg.contains("**") {
                return true;
            }
            if pat_seg.contains(['*', '?', '[', '\\']) {
                match compile(pat_seg) {
                    Ok(MatchKind::Regex(re)) => {
                        if !re.is_match(dir_seg) {
                            return false;
                        }
                    }
                    Ok(MatchKind::Exact) => {
                        if pat_seg != *dir_seg {
                            return false;
                        }
                    }
                    _ => return true,
                }
            } else if pat_seg != *dir_seg {
                return false;
            }
        }
        true
    }
}

/// `ignorefile.ReadAll`: the pattern lines of a `.dockerignore` file, normalised.
pub fn read_all(contents: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (n, line) in contents.lines().enumerate() {
        let line = if n == 0 {
            line.strip_prefix('\u{feff}').unwrap_or(line)
        } else {
            line
        };
        if line.starts_with('#') {
            continue;
        }
        let mut pattern = line.trim();
        if pattern.is_empty() {
            continue;
        }
        let invert = match pattern.strip_prefix('!') {
            Some(rest) => {
                pattern = rest.trim();
                true
            }
            None => false,
        };
        let mut cleaned = String::new();
        if !pattern.is_empty() {
            cleaned = go_clean(pattern);
            if cleaned.len() > 1 && cleaned.starts_with('/') {
                cleaned.remove(0);
            }
        }
        out.push(if invert {
            format!("!{cleaned}")
        } else {
            cleaned
        });
    }
    out
}

/// Go's `path.Clean` (= `filepath.Clean` on Unix): lexical `.`/`..`/`//` removal.
pub fn go_clean(path: &str) -> String {
    if path.is_empty() {
        return ".".to_owned();
    }
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|last| *last != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    if rooted {
        format!("/{joined}")
    } else if joined.is_empty() {
        ".".to_owned()
    } else {
        joined
    }
}

/// The parent directories of a cleaned path, outermost first, as `MatchesOrParentMatches`
/// builds them (`a/b/c` -> `a`, `a/b`; `/a/b` -> ``, `/a`).
fn parent_prefixes(file: &str) -> Vec<String> {
    let parent = match file.rfind('/') {
        None => return Vec::new(),
        Some(0) => "/".to_owned(),
        Some(i) => file[..i].to_owned(),
    };
    let dirs: Vec<&str> = parent.split('/').collect();
    (1..=dirs.len()).map(|n| dirs[..n].join("/")).collect()
}

/// Validates `filepath.Match` syntax (Unix rules).
fn validate(pattern: &str) -> Result<(), &'static str> {
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            // The guard consumes the escaped character.
            '\\' if chars.next().is_none() => return Err("trailing backslash"),
            '[' => {
                parse_class(&mut chars)?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// A parsed `[...]` class (after its `[`): negation and inclusive ranges.
struct Class {
    negated: bool,
    ranges: Vec<(char, char)>,
}

fn parse_class(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
) -> Result<Class, &'static str> {
    let mut class = Class {
        negated: false,
        ranges: Vec::new(),
    };
    if chars.peek() == Some(&'^') {
        chars.next();
        class.negated = true;
    }
    loop {
        if chars.peek() == Some(&']') && !class.ranges.is_empty() {
            chars.next();
            return Ok(class);
        }
        let lo = class_char(chars)?;
        let hi = if chars.peek() == Some(&'-') {
            chars.next();
            class_char(chars)?
        } else {
            lo
        };
        class.ranges.push((lo, hi));
    }
}

/// Go's `getEsc`: one (possibly escaped) class member; the class must continue after it.
fn class_char(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<char, &'static str> {
    let c = match chars.next() {
        None => return Err("unterminated character class"),
        Some('-') => return Err("'-' without a range start in character class"),
        Some(']') => return Err("empty character class or range"),
        Some(c) => c,
    };
    let c = if c == '\\' {
        chars.next().ok_or("unterminated character class")?
    } else {
        c
    };
    if chars.peek().is_none() {
        return Err("unterminated character class");
    }
    Ok(c)
}

fn push_escaped(re: &mut String, c: char) {
    let mut buf = [0u8; 4];
    re.push_str(&regex::escape(c.encode_utf8(&mut buf)));
}

#[derive(PartialEq, Eq, Clone, Copy)]
enum Detected {
    Exact,
    Prefix,
    Suffix,
    Regex,
}

/// patternmatcher's `compile`: picks exact / prefix / suffix / regex matching for a
/// validated, cleaned pattern.
fn compile(pattern: &str) -> Result<MatchKind, regex::Error> {
    let mut re = String::from("^");
    let mut detected = Detected::Exact;
    let mut chars = pattern.chars().peekable();
    let mut first = true;
    while let Some(ch) = chars.next() {
        match ch {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                if chars.peek() == Some(&'/') {
                    chars.next();
                }
                if chars.peek().is_none() {
                    if detected == Detected::Exact {
                        detected = Detected::Prefix;
                    } else {
                        re.push_str(".*");
                        detected = Detected::Regex;
                    }
                } else {
                    re.push_str("(.*/)?");
                    detected = Detected::Regex;
                }
                if first {
                    detected = Detected::Suffix;
                }
            }
            '*' => {
                re.push_str("[^/]*");
                detected = Detected::Regex;
            }
            '?' => {
                re.push_str("[^/]");
                detected = Detected::Regex;
            }
            '\\' => match chars.next() {
                Some(next) => {
                    push_escaped(&mut re, next);
                    detected = Detected::Regex;
                }
                None => push_escaped(&mut re, '\\'),
            },
            '[' => {
                let class =
                    parse_class(&mut chars).map_err(|e| regex::Error::Syntax(e.to_owned()))?;
                re.push('[');
                if class.negated {
                    re.push('^');
                }
                for (lo, hi) in class.ranges {
                    re.push_str(&format!("\\x{{{:X}}}", u32::from(lo)));
                    if hi != lo {
                        re.push_str(&format!("-\\x{{{:X}}}", u32::from(hi)));
                    }
                }
                re.push(']');
                detected = Detected::Regex;
            }
            other => push_escaped(&mut re, other),
        }
        first = false;
    }
    Ok(match detected {
        Detected::Exact => MatchKind::Exact,
        Detected::Prefix => {
            MatchKind::Prefix(pattern.strip_suffix("**").unwrap_or(pattern).to_owned())
        }
        Detected::Suffix => {
            MatchKind::Suffix(pattern.strip_prefix("**").unwrap_or(pattern).to_owned())
        }
        Detected::Regex => {
            re.push('$');
            MatchKind::Regex(Regex::new(&re)?)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn single(pattern: &str, path: &str) -> bool {
        DockerIgnore::from_patterns(&[pattern])
            .unwrap_or_else(|e| panic!("pattern {pattern:?}: {e}"))
            .is_excluded(path)
    }

    /// moby/patternmatcher `TestMatches` (MatchesOrParentMatches), plus the Unix-only case.
    #[test]
    fn moby_matches_table() {
        let cases: &[(&str, &str, bool)] = &[
            ("**", "file", true),
            ("**", "file/", true),
            ("**/", "file", true),
            ("**/", "file/", true),
            ("**", "/", true),
            ("**/", "/", true),
            ("**", "dir/file", true),
            ("**/", "dir/file", true),
            ("**", "dir/file/", true),
            ("**/", "dir/file/", true),
            ("**/**", "dir/file", true),
            ("**/**", "dir/file/", true),
            ("dir/**", "dir/file", true),
            ("dir/**", "dir/file/", true),
            ("dir/**", "dir/dir2/file", true),
            ("dir/**", "dir/dir2/file/", true),
            ("**/dir", "dir", true),
            ("**/dir", "dir/file", true),
            ("**/dir2/*", "dir/dir2/file", true),
            ("**/dir2/*", "dir/dir2/file/", true),
            ("**/dir2/**", "dir/dir2/dir3/file", true),
            ("**/dir2/**", "dir/dir2/dir3/file/", true),
            ("**file", "file", true),
            ("**file", "dir/file", true),
            ("**/file", "dir/file", true),
            ("**file", "dir/dir/file", true),
            ("**/file", "dir/dir/file", true),
            ("**/file*", "dir/dir/file", true),
            ("**/file*", "dir/dir/file.txt", true),
            ("**/file*txt", "dir/dir/file.txt", true),
            ("**/file*.txt", "dir/dir/file.txt", true),
            ("**/file*.txt*", "dir/dir/file.txt", true),
            ("**/**/*.txt", "dir/dir/file.txt", true),
            ("**/**/*.txt2", "dir/dir/file.txt", false),
            ("**/*.txt", "file.txt", true),
            ("**/**/*.txt", "file.txt", true),
            ("a**/*.txt", "a/file.txt", true),
            ("a**/*.txt", "a/dir/file.txt", true),
            ("a**/*.txt", "a/dir/dir/file.txt", true),
            ("a/*.txt", "a/dir/file.txt", false),
            ("a/*.txt", "a/file.txt", true),
            ("a/*.txt**", "a/file.txt", true),
            ("a[b-d]e", "ae", false),
            ("a[b-d]e", "ace", true),
            ("a[b-d]e", "aae", false),
            ("a[^b-d]e", "aze", true),
            (".*", ".foo", true),
            (".*", "foo", false),
            ("abc.def", "abcdef", false),
            ("abc.def", "abc.def", true),
            ("abc.def", "abcZdef", false),
            ("abc?def", "abcZdef", true),
            ("abc?def", "abcdef", false),
            ("a\\\\", "a\\", true),
            ("**/foo/bar", "foo/bar", true),
            ("**/foo/bar", "dir/foo/bar", true),
            ("**/foo/bar", "dir/dir2/foo/bar", true),
            ("abc/**", "abc", false),
            ("abc/**", "abc/def", true),
            ("abc/**", "abc/def/ghi", true),
            ("**/.foo", ".foo", true),
            ("**/.foo", "bar.foo", false),
            ("a(b)c/def", "a(b)c/def", true),
            ("a(b)c/def", "a(b)c/xyz", false),
            ("a.|)$(}+{bc", "a.|)$(}+{bc", true),
            (
                "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
                "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
                true,
            ),
            (
                "dist/*.whl",
                "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
                true,
            ),
            ("a\\*b", "a*b", true),
        ];
        for &(pattern, path, want) in cases {
            assert_eq!(
                single(pattern, path),
                want,
                "pattern {pattern:?} path {path:?}"
            );
        }
    }

    /// The `filepath.Match` table moby's tests carry (matches and syntax errors).
    #[test]
    fn go_filepath_match_table() {
        let ok: &[(&str, &str, bool)] = &[
            ("abc", "abc", true),
            ("*", "abc", true),
            ("*c", "abc", true),
            ("a*", "a", true),
            ("a*", "abc", true),
            ("a*", "ab/c", true),
            ("a*/b", "abc/b", true),
            ("a*/b", "a/c/b", false),
            ("a*b*c*d*e*/f", "axbxcxdxe/f", true),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/f", true),
            ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", false),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", false),
            ("a*b?c*x", "abxbbxdbxebxczzx", true),
            ("a*b?c*x", "abxbbxdbxebxczzy", false),
            ("ab[c]", "abc", true),
            ("ab[b-d]", "abc", true),
            ("ab[e-g]", "abc", false),
            ("ab[^c]", "abc", false),
            ("ab[^b-d]", "abc", false),
            ("ab[^e-g]", "abc", true),
            ("a\\*b", "ab", false),
            ("a?b", "a☺b", true),
            ("a[^a]b", "a☺b", true),
            ("a???b", "a☺b", false),
            ("a[^a][^a][^a]b", "a☺b", false),
            ("[a-ζ]*", "α", true),
            ("*[a-ζ]", "A", false),
            ("a?b", "a/b", false),
            ("a*b", "a/b", false),
            ("[\\]a]", "]", true),
            ("[\\-]", "-", true),
            ("[x\\-]", "x", true),
            ("[x\\-]", "-", true),
            ("[x\\-]", "z", false),
            ("[\\-x]", "x", true),
            ("[\\-x]", "-", true),
            ("[\\-x]", "a", false),
            ("*x", "xxx", true),
        ];
        for &(pattern, path, want) in ok {
            assert_eq!(
                single(pattern, path),
                want,
                "pattern {pattern:?} path {path:?}"
            );
        }
        for bad in [
            "[]a]", "[-]", "[x-]", "[-x]", "\\", "[a-b-c]", "[", "[^", "[^bc", "a[",
        ] {
            let err = DockerIgnore::from_patterns(&[bad]).expect_err(bad);
            assert!(err.to_string().contains(bad), "{err} should name {bad:?}");
        }
    }

    #[test]
    fn moby_multi_pattern_table() {
        let cases: &[(&[&str], &str, bool)] = &[
            (&["**", "!util/docker/web"], "util/docker/web/foo", false),
            (
                &["**", "!util/docker/web", "util/docker/web/foo"],
                "util/docker/web/foo",
                true,
            ),
            (
                &[
                    "**",
                    "!dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
                ],
                "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
                false,
            ),
            (
                &["**", "!dist/*.whl"],
                "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
                false,
            ),
            (&["!fileutils.go", "*.go"], "fileutils.go", true),
            (&["*.go", "!fileutils.go"], "fileutils.go", false),
            (&["docs", "!docs/README.md"], "docs/README.md", false),
            (&["docs/", "!docs/README.md"], "docs/README.md", false),
            (&["docs/*", "!docs/README.md"], "docs/README.md", false),
            (&["docs", "!docs/README.md"], "docs/other.md", true),
            (&["*.go"], ".", false),
            (&[], "any/path", false),
        ];
        for &(patterns, path, want) in cases {
            let m = DockerIgnore::from_patterns(patterns).expect("patterns");
            assert_eq!(
                m.is_excluded(path),
                want,
                "patterns {patterns:?} path {path:?}"
            );
        }
    }

    #[test]
    fn lone_exclamation_is_an_error() {
        assert!(matches!(
            DockerIgnore::from_patterns(&["!"]),
            Err(PatternError::IllegalExclusion { .. })
        ));
        assert!(DockerIgnore::parse("a\n!\n").is_err());
        assert!(DockerIgnore::parse("! \n").is_err());
    }

    /// moby ignorefile `TestReadAll`.
    #[test]
    fn read_all_normalises_lines() {
        let content = "test1\n/test2\n/a/file/here\n\nlastfile\n# this is a comment\n! /inverted/abs/path\n!\n! ";
        assert_eq!(
            read_all(content),
            vec![
                "test1",
                "test2",
                "a/file/here",
                "lastfile",
                "!inverted/abs/path",
                "!",
                "!"
            ]
        );
        assert_eq!(
            read_all("\u{feff}foo\r\n  bar/../baz/  \r\n #not-a-comment\n./x/./y\n/\n"),
            vec!["foo", "baz", "#not-a-comment", "x/y", "/"]
        );
    }

    /// Examples from the Docker documentation of `.dockerignore`.
    #[test]
    fn docker_docs_examples() {
        let m = DockerIgnore::parse("# comment\n*/temp*\n*/*/temp*\ntemp?\n").expect("parse");
        assert!(m.is_excluded("somedir/temporary.txt"));
        assert!(m.is_excluded("somedir/temp"));
        assert!(m.is_excluded("somedir/temp/inside.txt"));
        assert!(m.is_excluded("somedir/subdir/temporary.txt"));
        assert!(m.is_excluded("tempa"));
        assert!(m.is_excluded("tempb"));
        assert!(!m.is_excluded("temporary.txt"));
        assert!(!m.is_excluded("temp"));
        assert!(!m.is_excluded("a/b/c/temp.txt"));
        assert!(!m.is_excluded("# comment"));

        let m = DockerIgnore::parse("**/*.go\n").expect("parse");
        assert!(m.is_excluded("main.go"));
        assert!(m.is_excluded("pkg/x/y.go"));
        assert!(!m.is_excluded("pkg/x/y.golang"));

        let m = DockerIgnore::parse("*.md\n!README.md\n").expect("parse");
        assert!(m.is_excluded("CHANGELOG.md"));
        assert!(!m.is_excluded("README.md"));
        assert!(!m.is_excluded("docs/guide.md"), "*.md is root-level only");

        let m = DockerIgnore::parse("*.md\n!README*.md\nREADME-secret.md\n").expect("parse");
        assert!(m.is_excluded("CHANGELOG.md"));
        assert!(!m.is_excluded("README.md"));
        assert!(!m.is_excluded("README-public.md"));
        assert!(m.is_excluded("README-secret.md"));

        let m = DockerIgnore::parse("*.md\nREADME-secret.md\n!README*.md\n").expect("parse");
        assert!(m.is_excluded("CHANGELOG.md"));
        assert!(!m.is_excluded("README-secret.md"));
        assert!(!m.is_excluded("README.md"));
    }

    #[test]
    fn cleaning_leading_and_trailing_slashes() {
        let m = DockerIgnore::parse("/foo\nbar/\n./baz/../qux\n/../up\n").expect("parse");
        assert!(m.is_excluded("foo"));
        assert!(m.is_excluded("foo/x"));
        assert!(!m.is_excluded("a/foo"));
        assert!(m.is_excluded("bar"));
        assert!(m.is_excluded("bar/y"));
        assert!(m.is_excluded("qux"));
        assert!(!m.is_excluded("baz"));
        assert!(m.is_excluded("up"), "/../up cleans to /up, then up");
        assert_eq!(m.patterns(), vec!["foo", "bar", "qux", "up"]);
        // from_patterns keeps a leading slash: for absolute paths.
        let abs = DockerIgnore::from_patterns(&["/ctx/foo", "!/ctx/foo/keep"]).expect("abs");
        assert!(abs.is_excluded("/ctx/foo/x"));
        assert!(!abs.is_excluded("/ctx/foo/keep/y"));
        assert!(!abs.is_excluded("foo"));
        // `.` and `..` patterns match nothing inside the context.
        let m = DockerIgnore::parse(".\n..\n../x\n").expect("parse");
        assert!(!m.is_excluded("x"));
        assert!(!m.is_excluded("a/b"));
    }

    #[test]
    fn classes_and_escapes() {
        assert!(single("[a-c]", "b"));
        assert!(!single("[a-c]", "d"));
        assert!(single("file[0-9].txt", "file7.txt"));
        assert!(!single("file[^0-9].txt", "file7.txt"));
        // filepath.Match has no `!` negation: `[!a]` is the class {!, a}.
        assert!(single("[!a]", "a"));
        assert!(single("[!a]", "!"));
        assert!(!single("[!a]", "b"));
        assert!(single("\\*", "*"));
        assert!(!single("\\*", "x"));
        assert!(single("a\\?c", "a?c"));
        assert!(!single("a\\?c", "abc"));
        assert!(single("[*]", "*"));
        assert!(!single("[*]", "x"));
        assert!(single("x^y", "x^y"));
        assert!(single("x^y*", "x^yz"));
        assert!(matches!(
            DockerIgnore::from_patterns(&["[z-a]"]),
            Err(PatternError::Regex { .. })
        ));
    }

    #[test]
    fn exceptions_reinclude_under_excluded_dirs() {
        let m = DockerIgnore::parse(
            "node_modules\n!node_modules/keep.js\nbuild/**\n!build/out/*.bin\n",
        )
        .expect("parse");
        assert!(m.is_excluded("node_modules"));
        assert!(m.is_excluded("node_modules/x/y.js"));
        assert!(!m.is_excluded("node_modules/keep.js"));
        assert!(m.is_excluded("build/out/a.txt"));
        assert!(!m.is_excluded("build/out/a.bin"));
        assert!(
            !m.is_excluded("build"),
            "build/** does not match build itself"
        );
        // Last match wins.
        let m = DockerIgnore::parse("!a\na\n").expect("parse");
        assert!(m.is_excluded("a/b"));
        let m = DockerIgnore::parse("a\n!a\n").expect("parse");
        assert!(!m.is_excluded("a/b"));
    }

    #[test]
    fn skip_dir_only_when_no_exception_can_reach_inside() {
        let m = DockerIgnore::parse("node_modules\n*.md\n!README.md\n").expect("parse");
        assert!(m.can_skip_dir("node_modules"));
        assert!(!m.can_skip_dir("src"), "not excluded");

        let m = DockerIgnore::parse("node_modules\n!node_modules/keep\n").expect("parse");
        assert!(!m.can_skip_dir("node_modules"));
        assert!(m.can_skip_dir("node_modules/other"));

        let m = DockerIgnore::parse("**\n!src/app\n").expect("parse");
        assert!(m.can_skip_dir("vendor"));
        assert!(!m.can_skip_dir("src"));
        assert!(m.can_skip_dir("src/other"));
        assert!(
            !m.can_skip_dir("src/app"),
            "src/app is included, not excluded"
        );

        let m = DockerIgnore::parse("node_modules\n!**/keep.txt\n").expect("parse");
        assert!(
            !m.can_skip_dir("node_modules"),
            "** exceptions reach anywhere"
        );
        assert!(!m.is_excluded("node_modules/a/keep.txt"));

        let m = DockerIgnore::parse("vendor\n!v*/lib\n").expect("parse");
        assert!(!m.can_skip_dir("vendor"));
        let m = DockerIgnore::parse("vendor\n!x*/lib\n").expect("parse");
        assert!(m.can_skip_dir("vendor"));

        assert!(DockerIgnore::parse("").expect("empty").is_empty());
        assert!(
            !DockerIgnore::parse("# only a comment\n")
                .expect("c")
                .can_skip_dir("a")
        );
    }
}
