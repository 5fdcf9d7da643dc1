//! Source compatibility pass: what Go Starlark (Tilt) reads but starlark-rust's lexer and
//! parser reject, rewritten before parsing. Each step skips strings and comments.
//!
//! 1. Tabs: Go treats a tab in indentation as reaching the next multiple of 8 columns and a
//!    tab elsewhere as a space; starlark-rust rejects every tab. Tabs become spaces.
//! 2. A keyword argument after `*args` in a call (`f(*args, x=1, **kw)`) is legal in Go and a
//!    parse error in starlark-rust; such keyword arguments move before the `*args`.
//! 3. `while` loops ([`while_rewrite`]).
//!
//! Steps 1 and 2 keep every line where it was; step 3 returns a [`LineMap`].

use super::while_rewrite::{self, LineMap};

/// Rewrites `src` if it needs it; None when it is already what starlark-rust reads.
pub fn rewrite(src: &str) -> Option<(String, Option<LineMap>)> {
    let tabs = expand_tabs(src);
    let reordered = reorder_star_kwargs(tabs.as_deref().unwrap_or(src));
    let current = reordered.or(tabs);
    match while_rewrite::rewrite(current.as_deref().unwrap_or(src)) {
        Some((text, map)) => Some((text, Some(map))),
        None => current.map(|text| (text, None)),
    }
}

/// Calls `f(kind, start, end)` for each string literal and comment, in order.
fn for_each_literal(src: &str, mut f: impl FnMut(usize, usize)) {
    let bytes = src.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'#' => {
                let start = i;
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                f(start, i);
            }
            b'"' | b'\'' => {
                let start = i;
                i = while_rewrite::skip_string(bytes, i);
                f(start, i);
            }
            _ => i += 1,
        }
    }
}

/// Replaces tabs outside strings and comments with spaces, as Go Starlark reads them.
fn expand_tabs(src: &str) -> Option<String> {
    if !src.contains('\t') {
        return None;
    }
    let mut literals = Vec::new();
    for_each_literal(src, |s, e| literals.push((s, e)));
    let mut out = String::with_capacity(src.len() + 64);
    let mut column = 0usize;
    let mut at_line_start = true;
    let mut literal = literals.iter().peekable();
    for (i, ch) in src.char_indices() {
        while literal.peek().is_some_and(|(_, end)| *end <= i) {
            literal.next();
        }
        let in_literal = literal
            .peek()
            .is_some_and(|(start, end)| *start <= i && i < *end);
        match ch {
            '\t' if !in_literal => {
                if at_line_start {
                    let next = (column / 8 + 1) * 8;
                    out.extend(std::iter::repeat_n(' ', next - column));
                    column = next;
                } else {
                    out.push(' ');
                    column += 1;
                }
            }
            '\n' => {
                out.push(ch);
                column = 0;
                at_line_start = true;
            }
            ' ' => {
                out.push(ch);
                column += 1;
            }
            _ => {
                out.push(ch);
                column += 1;
                at_line_start = false;
            }
        }
    }
    Some(out)
}

/// One top-level argument of a call: its byte range in the source.
#[derive(Debug, Clone, Copy)]
struct Arg {
    start: usize,
    end: usize,
}

/// Moves keyword arguments that follow `*args` in a call in front of it.
fn reorder_star_kwargs(src: &str) -> Option<String> {
    if !src.contains('*') {
        return None;
    }
    let bytes = src.as_bytes();
    let mut literals = Vec::new();
    for_each_literal(src, |s, e| literals.push((s, e)));
    let mut next_literal = 0;
    let mut edits: Vec<(usize, usize, String)> = Vec::new();
    // Stack of open brackets: (byte index, is a call's argument list, args so far, arg start).
    let mut stack: Vec<(usize, bool, Vec<Arg>, usize)> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        while next_literal < literals.len() && literals[next_literal].0 < i {
            next_literal += 1;
        }
        if let Some(&(start, end)) = literals.get(next_literal)
            && start == i
        {
            i = end;
            continue;
        }
        match bytes[i] {
            b'(' | b'[' | b'{' => {
                let is_call = bytes[i] == b'(' && is_call_paren(src, i);
                stack.push((i, is_call, Vec::new(), i + 1));
            }
            b',' => {
                if let Some((_, _, args, arg_start)) = stack.last_mut() {
                    args.push(Arg {
                        start: *arg_start,
                        end: i,
                    });
                    *arg_start = i + 1;
                }
            }
            b')' | b']' | b'}' => {
                if let Some((_, is_call, mut args, arg_start)) = stack.pop() {
                    if !src[arg_start..i].trim().is_empty() {
                        args.push(Arg {
                            start: arg_start,
                            end: i,
                        });
                    }
                    if is_call && let Some(edit) = reorder_args(src, &args) {
                        edits.push(edit);
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    if edits.is_empty() {
        return None;
    }
    // Apply innermost-last edits from the end so earlier offsets stay valid; nested calls
    // were recorded before their enclosing call, so keep only non-overlapping outer edits.
    edits.sort_by_key(|(s, _, _)| *s);
    let mut out = String::with_capacity(src.len());
    let mut cursor = 0;
    for (start, end, text) in edits {
        if start < cursor {
            continue;
        }
        out.push_str(&src[cursor..start]);
        out.push_str(&text);
        cursor = end;
    }
    out.push_str(&src[cursor..]);
    Some(out)
}

/// A `(` directly after an identifier, `)` or `]` opens a call — unless it is a `def`.
fn is_call_paren(src: &str, paren: usize) -> bool {
    let before = src[..paren].trim_end_matches([' ', '\t']);
    let Some(last) = before.chars().last() else {
        return false;
    };
    if last == ')' || last == ']' {
        return true;
    }
    if !(last.is_alphanumeric() || last == '_') {
        return false;
    }
    let ident_start = before
        .char_indices()
        .rev()
        .take_while(|(_, c)| c.is_alphanumeric() || *c == '_' || *c == '.')
        .last()
        .map_or(before.len(), |(i, _)| i);
    let ident = &before[ident_start..];
    let keyword_before = before[..ident_start].trim_end();
    !keyword_before.ends_with("def")
        && ![
            "if", "in", "and", "or", "not", "return", "else", "elif", "for", "while", "lambda",
        ]
        .contains(&ident)
}

fn is_keyword_arg(text: &str) -> bool {
    let t = text.trim_start();
    let name_len = t
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .count();
    name_len > 0
        && t[name_len..].trim_start().starts_with('=')
        && !t[name_len..].trim_start().starts_with("==")
}

/// The replacement text for a call's arguments when a keyword follows `*args`.
fn reorder_args(src: &str, args: &[Arg]) -> Option<(usize, usize, String)> {
    let text = |a: &Arg| &src[a.start..a.end];
    let star = args.iter().position(|a| {
        let t = text(a).trim_start();
        t.starts_with('*') && !t.starts_with("**")
    })?;
    let late_keywords: Vec<usize> = (star + 1..args.len())
        .filter(|&k| is_keyword_arg(text(&args[k])))
        .collect();
    if late_keywords.is_empty() {
        return None;
    }
    let mut order: Vec<usize> = (0..star).collect();
    order.extend(&late_keywords);
    order.extend((star..args.len()).filter(|k| !late_keywords.contains(k)));
    let first = args.first()?.start;
    let last = args.last()?.end;
    let joined = order
        .iter()
        .map(|&k| text(&args[k]).trim())
        .collect::<Vec<_>>()
        .join(", ");
    // Keep the line count of the original argument list.
    let newlines = src[first..last].matches('\n').count();
    Some((first, last, format!("{joined}{}", "\n".repeat(newlines))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tabs_in_indentation_reach_multiples_of_eight() {
        let (out, _) = rewrite("def f():\n\treturn 1\nx = [\n\t1,\n]\ny =\t2\n").unwrap();
        assert_eq!(
            out,
            "def f():\n        return 1\nx = [\n        1,\n]\ny = 2\n"
        );
        let (out, _) = rewrite("if x:\n    \ty()\n").unwrap();
        assert_eq!(out, "if x:\n        y()\n");
    }

    #[test]
    fn tabs_in_strings_and_comments_stay() {
        assert_eq!(
            expand_tabs("s = 'a\tb'  # c\td\n").unwrap(),
            "s = 'a\tb'  # c\td\n"
        );
    }

    #[test]
    fn keyword_after_star_args_moves_before_it() {
        let out =
            reorder_star_kwargs("k8s_resource(*args, resource_deps=['a'], **resource)\n").unwrap();
        assert_eq!(
            out,
            "k8s_resource(resource_deps=['a'], *args, **resource)\n"
        );
        assert!(reorder_star_kwargs("def f(*args, x=1):\n  pass\n").is_none());
        assert!(reorder_star_kwargs("f(x=1, *args)\ny = a * b\n").is_none());
    }

    #[test]
    fn line_count_is_kept() {
        let src = "f(*a,\n  x=1,\n  y=2)\nz = 1\n";
        let out = reorder_star_kwargs(src).unwrap();
        assert_eq!(out.matches('\n').count(), src.matches('\n').count());
        assert!(out.starts_with("f(x=1, y=2, *a"));
    }
}
