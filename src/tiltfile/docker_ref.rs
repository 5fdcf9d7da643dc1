//! Docker image references as Tilt parses them (distribution's `ParseNormalizedNamed`):
//! `[domain[:port]/]path[:tag][@digest]`, lowercase repository, ASCII tag of at most 128.

use std::sync::LazyLock;

/// Checks `r` parses as a Docker image reference (`ParseNormalizedNamed`).
pub fn parse_reference(r: &str) -> Result<(), String> {
    static REFERENCE: LazyLock<Option<regex::Regex>> = LazyLock::new(|| {
        let component = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*";
        let domain = r"(?:(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?/)?";
        regex::Regex::new(&format!(
            r"^{domain}{component}(?:/{component})*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})?(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{{32,}})?$"
        ))
        .ok()
    });
    if r.is_empty() {
        return Err("repository name must have at least one component".to_owned());
    }
    let ok = REFERENCE.as_ref().is_some_and(|re| re.is_match(r)) && r.len() <= 255;
    if ok {
        return Ok(());
    }
    let lowered = r.to_lowercase();
    if lowered != r && REFERENCE.as_ref().is_some_and(|re| re.is_match(&lowered)) {
        return Err("invalid reference format: repository name must be lowercase".to_owned());
    }
    Err("invalid reference format".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        for good in [
            "app",
            "gcr.io/proj/app:v1",
            "localhost:5000/a/b",
            "my_app",
            "a-b.c/d:tag_1.0",
            "[::1]:5000/x",
        ] {
            assert!(parse_reference(good).is_ok(), "{good}");
        }
        for bad in ["a b", ":tag", "a:", "a//b", "app:t\u{e9}g"] {
            assert!(parse_reference(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_reference("App").unwrap_err(),
            "invalid reference format: repository name must be lowercase"
        );
    }
}
