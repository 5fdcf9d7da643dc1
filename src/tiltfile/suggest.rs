//! "did you mean ...?" suggestions for misspelt names (parameters, resources).

/// ` (did you mean NAME?)` for the closest candidate, or an empty string.
pub fn did_you_mean<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    closest(name, candidates).map_or_else(String::new, |c| format!(" (did you mean {c}?)"))
}

/// The candidate closest to `name`, if any is close enough to be a plausible typo.
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(name, c), c))
        .filter(|(d, c)| {
            *d <= (name.len().max(c.len()) / 3).max(1) || c.contains(name) || name.contains(*c)
        })
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names() {
        assert_eq!(
            closest("dockerfle", ["dockerfile", "context"]),
            Some("dockerfile")
        );
        assert_eq!(closest("zzz", ["dockerfile", "context"]), None);
        assert_eq!(
            did_you_mean("onyl", ["only", "ignore"]),
            " (did you mean only?)"
        );
    }
}
