//! Rendering Tiltfile errors for people: the message, `file:line:col`, the source line with a
//! caret under the failing span, and the call stack, with positions mapped back through the
//! `while` rewrite to what the user wrote.

use std::collections::HashMap;
use std::fmt::Write;

use starlark::codemap::FileSpan;

use super::suggest::did_you_mean;
use super::while_rewrite::LineMap;

/// The user's source of one file, and how the parsed text maps back to it.
#[derive(Debug, Clone)]
pub struct SourceInfo {
    pub original: String,
    pub line_map: Option<LineMap>,
}

/// 1-based `(file, line, column)` of the start of `span`, in the user's original text.
pub fn position(span: &FileSpan, sources: &HashMap<String, SourceInfo>) -> (String, usize, usize) {
    let resolved = span.resolve_span();
    let file = span.filename().to_owned();
    let line = sources
        .get(&file)
        .and_then(|s| s.line_map.as_ref())
        .map_or(resolved.begin.line, |m| m.original(resolved.begin.line));
    (file, line + 1, resolved.begin.column + 1)
}

/// The message of an error without its diagnostic decoration.
pub fn message(e: &starlark::Error) -> String {
    let text = e.without_diagnostic().to_string();
    match text.strip_prefix("fail:") {
        Some(rest) => rest.trim_start().to_owned(),
        None => text,
    }
}

/// Rewrites starlark-rust's unknown-keyword error the way Tilt words it, with a suggestion
/// from the function's parameters (`params_of` looks them up by function name).
fn reword(
    message: String,
    function: Option<&str>,
    params_of: &dyn Fn(&str) -> Vec<String>,
) -> String {
    if let (Some(rest), Some(function)) = (message.strip_prefix("Type of parameter `"), function) {
        // "Type of parameter `x` doesn't match, expected `T`, actual `U (repr: ..)`"
        let parsed = rest
            .split_once("` doesn't match, expected `")
            .and_then(|(param, rest)| {
                let (want, rest) = rest.split_once("`, actual `")?;
                let got = rest.trim_end_matches('`');
                let got = got.split(" (repr:").next().unwrap_or(got);
                Some(format!(
                    "{function}: for parameter \"{param}\": got {got}, want {want}"
                ))
            });
        return parsed.unwrap_or(message);
    }
    let Some(rest) = message.strip_prefix("Found `") else {
        return message;
    };
    let Some((names, function)) = rest.split_once("` extra named parameter(s) for call to ") else {
        return message;
    };
    let function = function.trim();
    let params = params_of(function);
    names
        .split("` `")
        .map(|name| {
            format!(
                "{function}: unexpected keyword argument \"{name}\"{}",
                did_you_mean(name, params.iter().map(String::as_str))
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Renders `e` as shown to users.
pub fn render(
    e: &starlark::Error,
    sources: &HashMap<String, SourceInfo>,
    params_of: &dyn Fn(&str) -> Vec<String>,
) -> String {
    let mut out = String::new();
    let innermost = e.call_stack().frames.last().map(|f| f.name.as_str());
    let _ = write!(out, "Error: {}", reword(message(e), innermost, params_of));
    if let Some(span) = e.span() {
        let (file, line, col) = position(span, sources);
        let _ = write!(out, "\n  --> {file}:{line}:{col}");
        if let Some(text) = sources
            .get(&file)
            .and_then(|s| s.original.lines().nth(line - 1))
        {
            let resolved = span.resolve_span();
            let width = if resolved.begin.line == resolved.end.line {
                resolved
                    .end
                    .column
                    .saturating_sub(resolved.begin.column)
                    .max(1)
            } else {
                text.chars().count().saturating_sub(col - 1).max(1)
            };
            let gutter = line.to_string().len();
            let _ = write!(
                out,
                "\n{:gutter$} |\n{line} | {text}\n{:gutter$} | {}{}",
                "",
                "",
                " ".repeat(col - 1),
                "^".repeat(width)
            );
        }
    }
    // Each frame's location is a call site inside the previous frame's function.
    let stack = &e.call_stack().frames;
    let frames: Vec<String> = stack
        .iter()
        .enumerate()
        .filter_map(|(i, f)| {
            let loc = f.location.as_ref()?;
            let (file, line, col) = position(loc, sources);
            let caller = if i == 0 {
                "<toplevel>"
            } else {
                stack[i - 1].name.as_str()
            };
            Some(format!("  {file}:{line}:{col}: in {caller}"))
        })
        .collect();
    if !frames.is_empty() {
        out.push_str("\nTraceback (most recent call last):");
        let mut i = 0;
        while i < frames.len() {
            let repeats = frames[i..].iter().take_while(|f| **f == frames[i]).count();
            out.push('\n');
            out.push_str(&frames[i]);
            if repeats > 2 {
                let _ = write!(
                    out,
                    "\n  [previous frame repeated {} more times]",
                    repeats - 1
                );
                i += repeats;
            } else {
                i += 1;
            }
        }
    }
    out
}
