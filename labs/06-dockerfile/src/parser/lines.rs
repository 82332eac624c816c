//! Pass 1: physical lines into logical lines.
//!
//! A line whose first non-blank character is `#` is a comment, and is dropped, even in the
//! middle of an instruction continued over several lines. A line that ends with the escape
//! character (`\`, or `` ` `` after `# escape=`` ` ``) continues on the next, and the blank
//! lines inside a continuation are skipped (with a warning, as buildkit gives). At the top
//! of the file, before anything else, `# escape=` and `# syntax=` comments are *parser
//! directives*.

use std::collections::BTreeSet;

use super::{error, ParseError};

/// The parser directives seen so far, and whether more may come.
pub(super) struct Directives {
    pub(super) escape: char,
    pub(super) syntax: Option<String>,
    seen: BTreeSet<String>,
    done: bool,
}

impl Directives {
    pub(super) fn new() -> Self {
        Directives {
            escape: '\\',
            syntax: None,
            seen: BTreeSet::new(),
            done: false,
        }
    }

    // ANCHOR: directives
    /// Looks at a line for `# key=value`. The first line that is not a directive (an
    /// instruction, a blank line, an ordinary comment, an unknown key) ends the directives for
    /// good: `# escape=` further down is just a comment.
    fn consider(&mut self, line: &str) -> Result<(), String> {
        if self.done {
            return Ok(());
        }
        let Some((key, value)) = directive(line) else {
            self.done = true;
            return Ok(());
        };
        let key = key.to_ascii_lowercase();
        if key != "escape" && key != "syntax" {
            self.done = true;
            return Ok(());
        }
        if !self.seen.insert(key.clone()) {
            return Err(format!("only one {key} parser directive can be used"));
        }
        if key == "escape" {
            self.escape = match value {
                "\\" => '\\',
                "`" => '`',
                _ => {
                    return Err(format!(
                        "invalid escape token '{value}' does not match ` or \\"
                    ))
                }
            };
        } else {
            self.syntax = Some(value.to_string());
        }
        Ok(())
    }
    // ANCHOR_END: directives
}

/// `^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$`, with RE2's `\s` (`[\t\n\f\r ]`).
fn directive(line: &str) -> Option<(&str, &str)> {
    let is_s = |c: char| matches!(c, '\t' | '\n' | '\u{c}' | '\r' | ' ');
    let rest = line.strip_prefix('#')?.trim_start_matches(is_s);
    let key_len = rest
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())))
        .map_or(rest.len(), |(i, _)| i);
    if key_len == 0 {
        return None;
    }
    let (key, rest) = rest.split_at(key_len);
    let value = rest
        .trim_start_matches(is_s)
        .strip_prefix('=')?
        .trim_matches(is_s);
    if value.is_empty() || value.contains('\n') {
        return None;
    }
    Some((key, value))
}

pub(super) fn trim_newline(line: &str) -> &str {
    line.trim_end_matches(['\r', '\n'])
}

pub(super) fn is_comment(line: &str) -> bool {
    trim_newline(line).trim_start().starts_with('#')
}

/// Prepares one physical line: drops the line ending (and, on the first line of an
/// instruction, the indentation), checks it for a directive, and blanks it if it is a comment.
pub(super) fn process_line<'a>(
    d: &mut Directives,
    raw: &'a str,
    first: bool,
    line_no: usize,
) -> Result<&'a str, ParseError> {
    let mut token = trim_newline(raw);
    if first {
        token = token.trim_start();
    }
    d.consider(token).map_err(|m| error(line_no, line_no, m))?;
    Ok(if token.starts_with('#') { "" } else { token })
}

// ANCHOR: continuation
/// Removes a line-continuation escape at the end of `line`, if there is one, and says
/// whether the logical line ends here. The escape may be followed by spaces and tabs, but
/// not preceded by another escape: `C:\\` ends a line, `C:\` continues it.
pub(super) fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let trimmed = line.trim_end_matches([' ', '\t']);
    if let Some(before) = trimmed.strip_suffix(escape) {
        if !before.ends_with(escape) {
            return (before, false);
        }
    }
    (line, true)
}
// ANCHOR_END: continuation
