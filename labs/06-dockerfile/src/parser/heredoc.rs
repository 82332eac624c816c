//! Heredocs: `<<EOF` on an instruction line, and the lines up to `EOF` as a file's body.
//!
//! ```text
//! RUN <<EOF                    COPY <<"CONF" /etc/app.conf
//! apt-get update               key = $NOT_EXPANDED
//! EOF                          CONF
//! ```
//!
//! `<<-` strips the body's leading tabs, and a quoted name (`<<"CONF"`, `<<'CONF'`) keeps
//! `$VAR` in it as it is. [`super::parse`] reads the bodies; this finds the names.

use super::{Args, Heredoc, Instruction, Keyword};
use crate::shell::Lexer;

impl Heredoc {
    /// The body as the program will see it: with `<<-`, every line's leading tabs removed.
    pub fn body(&self) -> String {
        if !self.chomp {
            return self.content.clone();
        }
        self.content
            .split_inclusive('\n')
            .map(|l| l.trim_start_matches('\t'))
            .collect()
    }
}

/// Only RUN, COPY and ADD take heredocs, and only in their shell form.
pub(super) fn can_contain_heredoc(ins: &Instruction) -> bool {
    matches!(ins.keyword, Keyword::Run | Keyword::Copy | Keyword::Add)
        && !matches!(ins.args, Args::Exec(_))
}

// ANCHOR: heredoc
/// Finds the `<<WORD`, `<<-WORD`, `<<"WORD"` and `3<<WORD` words on an instruction line.
/// The line is split as the shell would split it, but with quotes and escapes kept, so that
/// `echo "<<EOF"` is not a heredoc and `<<'EOF'` can be told from `<<EOF`.
pub(super) fn heredocs_from_line(line: &str) -> Result<Vec<Heredoc>, String> {
    let mut raw = Lexer::new('\\');
    raw.raw_quotes = true;
    raw.raw_escapes = true;
    raw.skip_unset = true;
    let no_vars = std::collections::BTreeMap::new();
    // A line the lexer cannot split (an unterminated quote) simply has no heredocs.
    let words = raw.expand_words(line, &no_vars).unwrap_or_default();
    let mut docs = Vec::new();
    for word in words {
        if let Some(doc) = heredoc_from_word(&word)? {
            docs.push(doc);
        }
    }
    Ok(docs)
}

/// One word against `^(\d*)<<(-?)([^<]*)$`.
fn heredoc_from_word(word: &str) -> Result<Option<Heredoc>, String> {
    let digits = word.len() - word.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let Some(after) = word[digits..].strip_prefix("<<") else {
        return Ok(None);
    };
    let (chomp, rest) = match after.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, after),
    };
    if rest.is_empty() || rest.contains('<') {
        return Ok(None);
    }
    // The terminator's name is the word with its quotes removed; if removing them changed
    // the number of quote characters, the word was quoted and the body is taken literally.
    let no_vars = std::collections::BTreeMap::new();
    let mut lx = Lexer::new('\\');
    lx.skip_unset = true;
    let words = lx.expand_words(rest, &no_vars).map_err(|e| e.to_string())?;
    if words.len() != 1 {
        return Ok(None);
    }
    lx.raw_quotes = true;
    let raw = lx.expand_words(rest, &no_vars).map_err(|e| e.to_string())?;
    let quotes = |s: &str| s.chars().filter(|c| *c == '\'' || *c == '"').count();
    let name = words[0].clone();
    let expand = raw.len() == 1 && quotes(&name) == quotes(&raw[0]);
    Ok(Some(Heredoc {
        name,
        fd: word[..digits].parse().unwrap_or(0),
        expand,
        chomp,
        content: String::new(),
    }))
}
// ANCHOR_END: heredoc
