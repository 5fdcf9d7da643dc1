//! Ignore patterns as Tilt records them: dockerignore syntax, made absolute against the
//! directory they were declared relative to (`.tiltignore`, `watch_settings`, `ignore=`).

use std::path::Path;

use super::values::clean_path;

/// Makes `pattern` absolute against `base`, keeping a leading `!` (exception).
pub fn absolutize(base: &Path, pattern: &str) -> String {
    let (negate, body) = match pattern.trim().strip_prefix('!') {
        Some(rest) => (true, rest.trim()),
        None => (false, pattern.trim()),
    };
    let body = body.trim_start_matches('/');
    let joined = clean_path(&base.join(body)).to_string_lossy().into_owned();
    if negate { format!("!{joined}") } else { joined }
}

/// Reads a dockerignore-syntax file: one pattern a line, `#` comments and blank lines dropped.
pub fn read_ignore_file(path: &Path) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(path).ok()?;
    Some(
        text.trim_start_matches('\u{feff}')
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_owned)
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolutizes_and_keeps_exceptions() {
        let base = Path::new("/p");
        assert_eq!(absolutize(base, "node_modules"), "/p/node_modules");
        assert_eq!(absolutize(base, "/build/**"), "/p/build/**");
        assert_eq!(absolutize(base, "!keep.txt"), "!/p/keep.txt");
        assert_eq!(absolutize(base, "../x"), "/x");
    }
}
