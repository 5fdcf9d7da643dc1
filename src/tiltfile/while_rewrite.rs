//! `while` support: starlark-rust reserves `while`, Tilt's dialect allows it.
//!
//! Before parsing, each `while COND:` statement is rewritten at the token level (strings and
//! comments are skipped) into
//!
//! ```text
//! for _ in __tiltrs_forever__:
//!     if not (COND): break
//!     body
//! ```
//!
//! `__tiltrs_forever__` is an endless iterable; the tick limit guards runaway loops. Each rewrite
//! adds one line, so a [`LineMap`] maps rewritten lines back to the user's for diagnostics.

/// Maps 0-based lines of the rewritten source to 0-based lines of the original.
#[derive(Debug, Clone, Default)]
pub struct LineMap {
    original_line: Vec<usize>,
}

impl LineMap {
    pub fn original(&self, rewritten_line: usize) -> usize {
        self.original_line
            .get(rewritten_line)
            .copied()
            .unwrap_or(rewritten_line)
    }
}

/// The name of the endless iterable the rewrite loops over.
pub const FOREVER: &str = "__tiltrs_forever__";

/// Rewrites every `while` loop in `src`. Returns None when there is none (the common case).
pub fn rewrite(src: &str) -> Option<(String, LineMap)> {
    if !src.contains("while") {
        return None;
    }
    let loops = find_while_statements(src);
    if loops.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(src.len() + loops.len() * 48);
    let mut map = Vec::new();
    let mut cursor = 0;
    let mut original_line = 0usize;
    let push_text =
        |out: &mut String, map: &mut Vec<usize>, text: &str, original_line: &mut usize| {
            for ch in text.chars() {
                out.push(ch);
                if ch == '\n' {
                    map.push(*original_line);
                    *original_line += 1;
                }
            }
        };
    for w in loops {
        push_text(
            &mut out,
            &mut map,
            &src[cursor..w.keyword_start],
            &mut original_line,
        );
        let header_line = original_line;
        let condition = &src[w.condition_start..w.colon];
        let cond_one_line: String = condition
            .lines()
            .map(str::trim)
            .collect::<Vec<_>>()
            .join(" ");
        out.push_str("for _ in ");
        out.push_str(FOREVER);
        out.push(':');
        // Lines inside a multi-line condition disappear; keep the count right.
        let swallowed = condition.matches('\n').count();
        original_line += swallowed;
        let rest = &src[w.colon + 1..w.line_end];
        let body_inline = rest.trim();
        let is_inline = !body_inline.is_empty() && !body_inline.starts_with('#');
        out.push('\n');
        map.push(header_line);
        let body_indent = if is_inline {
            format!("{}    ", w.indent)
        } else {
            next_body_indent(&src[w.line_end..]).unwrap_or_else(|| format!("{}    ", w.indent))
        };
        out.push_str(&body_indent);
        out.push_str("if not (");
        out.push_str(&cond_one_line);
        out.push_str("): break");
        if is_inline {
            out.push('\n');
            map.push(header_line);
            out.push_str(&body_indent);
            out.push_str(body_inline);
        } else if !rest.trim().is_empty() {
            out.push_str("  ");
            out.push_str(rest.trim());
        }
        cursor = w.line_end;
    }
    push_text(&mut out, &mut map, &src[cursor..], &mut original_line);
    map.push(original_line);
    Some((out, LineMap { original_line: map }))
}

struct WhileStmt {
    keyword_start: usize,
    condition_start: usize,
    colon: usize,
    line_end: usize,
    indent: String,
}

/// Finds `while` statements: the keyword first on a logical line, outside strings and comments.
fn find_while_statements(src: &str) -> Vec<WhileStmt> {
    let bytes = src.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    let mut depth = 0i32;
    let mut line_start = true;
    let mut indent_start = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if line_start && depth == 0 {
            if b == b' ' || b == b'\t' {
                i += 1;
                continue;
            }
            line_start = false;
            if src[i..].starts_with("while")
                && bytes
                    .get(i + 5)
                    .is_some_and(|c| !(c.is_ascii_alphanumeric() || *c == b'_'))
                && let Some(stmt) = parse_while_header(src, i, &src[indent_start..i])
            {
                i = stmt.line_end;
                found.push(stmt);
                continue;
            }
        }
        match b {
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'"' | b'\'' => {
                i = skip_string(bytes, i);
                continue;
            }
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth = (depth - 1).max(0),
            b'\\' if bytes.get(i + 1) == Some(&b'\n') => {
                i += 2;
                continue;
            }
            b'\n' if depth == 0 => {
                line_start = true;
                indent_start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    found
}

/// From the `while` keyword at `start`, finds the header's colon and the end of its line.
fn parse_while_header(src: &str, start: usize, indent: &str) -> Option<WhileStmt> {
    let bytes = src.as_bytes();
    let mut i = start + 5;
    let mut depth = 0i32;
    while i < bytes.len() {
        match bytes[i] {
            b'"' | b'\'' => {
                i = skip_string(bytes, i);
                continue;
            }
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth -= 1,
            b'#' if depth == 0 => return None,
            b'\n' if depth == 0 => return None,
            b':' if depth == 0 => {
                let mut end = i + 1;
                while end < bytes.len() && bytes[end] != b'\n' {
                    if bytes[end] == b'"' || bytes[end] == b'\'' {
                        end = skip_string(bytes, end);
                    } else {
                        end += 1;
                    }
                }
                return Some(WhileStmt {
                    keyword_start: start,
                    condition_start: start + 5,
                    colon: i,
                    line_end: end.min(bytes.len()),
                    indent: indent.to_owned(),
                });
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// Returns the index just past the string literal starting at `i` (handles triple quotes).
pub fn skip_string(bytes: &[u8], i: usize) -> usize {
    let quote = bytes[i];
    let triple = bytes.get(i + 1) == Some(&quote) && bytes.get(i + 2) == Some(&quote);
    let mut j = if triple { i + 3 } else { i + 1 };
    while j < bytes.len() {
        let b = bytes[j];
        if b == b'\\' {
            j += 2;
            continue;
        }
        if triple {
            if b == quote && bytes.get(j + 1) == Some(&quote) && bytes.get(j + 2) == Some(&quote) {
                return j + 3;
            }
        } else if b == quote || b == b'\n' {
            return j + 1;
        }
        j += 1;
    }
    bytes.len()
}

/// The indentation of the first non-blank, non-comment line of `rest`.
fn next_body_indent(rest: &str) -> Option<String> {
    rest.lines()
        .skip(1)
        .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|l| l[..l.len() - l.trim_start().len()].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_block_while() {
        let (out, map) = rewrite("x = 0\nwhile x < 3:\n    x += 1\nprint(x)\n").unwrap();
        assert_eq!(
            out,
            "x = 0\nfor _ in __tiltrs_forever__:\n    if not (x < 3): break\n    x += 1\nprint(x)\n"
        );
        assert_eq!(map.original(2), 1);
        assert_eq!(map.original(3), 2);
        assert_eq!(map.original(4), 3);
    }

    #[test]
    fn rewrites_inline_and_nested() {
        let (out, _) = rewrite("def f():\n  while True: pass\n").unwrap();
        assert_eq!(
            out,
            "def f():\n  for _ in __tiltrs_forever__:\n      if not (True): break\n      pass\n"
        );
    }

    #[test]
    fn ignores_strings_comments_and_identifiers() {
        assert!(rewrite("s = 'while x:'\n# while y:\nwhile_x = 1\n").is_none());
    }

    #[test]
    fn multiline_condition() {
        let (out, map) = rewrite("while (a and\n       b):\n  c()\nd()\n").unwrap();
        assert_eq!(
            out,
            "for _ in __tiltrs_forever__:\n  if not ((a and b)): break\n  c()\nd()\n"
        );
        assert_eq!(map.original(2), 2);
        assert_eq!(map.original(3), 3);
    }
}
