//! Pass 2: a logical line into an instruction.
//!
//! The first word is the keyword, case-insensitive; the `--name=value` words after it are
//! flags; and the rest is split the way that keyword wants it: a JSON array or a string
//! (`RUN`, `CMD`, `ENTRYPOINT`, `SHELL`), a JSON array or words (`COPY`, `ADD`, `VOLUME`),
//! `key=value` pairs (`ENV`, `LABEL`), or a whole instruction (`ONBUILD`).

use super::lines::Directives;
use super::{Args, Instruction, KeyValue, Keyword};
use crate::goquote;

/// Go's `[\t\v\f\r ]`, which separates the keyword from its arguments.
fn is_token_space(c: char) -> bool {
    matches!(c, '\t' | '\u{b}' | '\u{c}' | '\r' | ' ')
}

pub(super) fn instruction_from_line(line: &str, d: &Directives) -> Result<Instruction, String> {
    let trimmed = line.trim();
    let (word, rest) = match trimmed.find(is_token_space) {
        Some(i) => (
            &trimmed[..i],
            trimmed[i..].trim_start_matches(is_token_space),
        ),
        None => (trimmed, ""),
    };
    let keyword = Keyword::lookup(word).ok_or_else(|| format!("unknown instruction: {word}"))?;
    let (rest, flags) = extract_flags(rest);
    let rest = rest.trim();

    let args = match keyword {
        Keyword::Add | Keyword::Copy | Keyword::Volume => json_or_words(rest)?,
        Keyword::Arg => words_or_none(parse_words(rest, d.escape)),
        Keyword::Cmd | Keyword::Entrypoint | Keyword::Run | Keyword::Shell => json_or_shell(rest)?,
        Keyword::Env | Keyword::Label => name_values(rest, keyword, d.escape)?,
        Keyword::Expose | Keyword::From => split_whitespace(rest),
        Keyword::Healthcheck => healthcheck(rest)?,
        Keyword::Maintainer | Keyword::Stopsignal | Keyword::User | Keyword::Workdir => {
            if rest.is_empty() {
                Args::None
            } else {
                Args::Shell(rest.to_string())
            }
        }
        Keyword::Onbuild => {
            if rest.is_empty() {
                Args::None
            } else {
                let inner = instruction_from_line(rest, d)?;
                match inner.keyword {
                    Keyword::Onbuild => {
                        return Err("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into())
                    }
                    Keyword::From | Keyword::Maintainer => {
                        return Err(format!(
                            "{} isn't allowed as an ONBUILD trigger",
                            inner.keyword
                        ))
                    }
                    _ => Args::Trigger(Box::new(inner)),
                }
            }
        }
    };
    Ok(Instruction {
        keyword,
        flags,
        args,
        heredocs: Vec::new(),
        start_line: 0,
        end_line: 0,
        original: line.to_string(),
        comments: Vec::new(),
    })
}

// ANCHOR: flags
/// Splits the leading `--name[=value]` words off the arguments. A lone `--` ends the flags;
/// so does the first word that does not start with `--`. Quotes and `\` work inside a flag
/// (`--chown="app user"`), and are removed.
fn extract_flags(line: &str) -> (&str, Vec<String>) {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote(char),
    }
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let mut flags = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut blank_ok = false;
    let mut i = 0;
    while i < chars.len() {
        let (at, c) = chars[i];
        if phase == Phase::Spaces {
            if c.is_whitespace() {
                i += 1;
                continue;
            }
            let next_is_dash = chars.get(i + 1).is_some_and(|&(_, n)| n == '-');
            if c != '-' || !next_is_dash {
                return (&line[at..], flags);
            }
            phase = Phase::Word;
        }
        match phase {
            Phase::Spaces => unreachable!("handled above"),
            Phase::Word => {
                if c.is_whitespace() {
                    phase = Phase::Spaces;
                    if word == "--" {
                        return (&line[at..], flags);
                    }
                    if blank_ok || !word.is_empty() {
                        flags.push(std::mem::take(&mut word));
                    }
                    word.clear();
                    blank_ok = false;
                } else if c == '\'' || c == '"' {
                    phase = Phase::Quote(c);
                    blank_ok = true;
                } else if c == '\\' {
                    if let Some(&(_, n)) = chars.get(i + 1) {
                        word.push(n);
                        i += 1;
                    }
                } else {
                    word.push(c);
                }
            }
            Phase::Quote(q) => {
                if c == q {
                    phase = Phase::Word;
                } else if c == '\\' {
                    match chars.get(i + 1) {
                        Some(&(_, n)) => {
                            word.push(n);
                            i += 1;
                        }
                        None => phase = Phase::Word,
                    }
                } else {
                    word.push(c);
                }
            }
        }
        i += 1;
    }
    if phase != Phase::Spaces && word != "--" && (blank_ok || !word.is_empty()) {
        flags.push(word);
    }
    ("", flags)
}
// ANCHOR_END: flags

/// Words separated by white space, quotes kept (they are removed later, when the builder
/// expands the word), the escape character kept with what it escapes.
fn parse_words(rest: &str, escape: char) -> Vec<String> {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote(char),
    }
    let chars: Vec<char> = rest.chars().collect();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut blank_ok = false;
    let mut i = 0;
    while i < chars.len() {
        let mut c = chars[i];
        if phase == Phase::Spaces {
            if c.is_whitespace() {
                i += 1;
                continue;
            }
            phase = Phase::Word;
        }
        match phase {
            Phase::Spaces => unreachable!("handled above"),
            Phase::Word => {
                if c.is_whitespace() {
                    phase = Phase::Spaces;
                    if blank_ok || !word.is_empty() {
                        words.push(std::mem::take(&mut word));
                    }
                    blank_ok = false;
                    i += 1;
                    continue;
                }
                if c == '\'' || c == '"' {
                    phase = Phase::Quote(c);
                    blank_ok = true;
                }
                if c == escape {
                    if i + 1 == chars.len() {
                        i += 1;
                        continue; // an escape at the very end is dropped
                    }
                    // Outside quotes the escape and the character after it are both kept,
                    // even if that character is a quote.
                    word.push(c);
                    i += 1;
                    c = chars[i];
                }
                word.push(c);
            }
            Phase::Quote(q) => {
                if c == q {
                    phase = Phase::Word;
                }
                // Inside "...", the escape protects the next character; inside '...' nothing
                // can be escaped.
                if c == escape && q != '\'' {
                    if i + 1 == chars.len() {
                        phase = Phase::Word;
                        i += 1;
                        continue;
                    }
                    word.push(c);
                    i += 1;
                    c = chars[i];
                }
                word.push(c);
            }
        }
        i += 1;
    }
    if phase != Phase::Spaces && (blank_ok || !word.is_empty()) {
        words.push(word);
    }
    words
}

fn words_or_none(words: Vec<String>) -> Args {
    if words.is_empty() {
        Args::None
    } else {
        Args::Words(words)
    }
}

/// Go's `[\t\v\f\r ]+` split, used for FROM, EXPOSE and non-JSON COPY/ADD/VOLUME.
fn split_whitespace(rest: &str) -> Args {
    if rest.is_empty() {
        return Args::None;
    }
    Args::Words(
        rest.split(is_token_space)
            .filter(|w| !w.is_empty())
            .map(str::to_string)
            .collect(),
    )
}

/// What the JSON check found.
enum JsonForm {
    /// A JSON array of strings.
    Strings(Vec<String>),
    /// Not JSON at all (or broken JSON): the arguments are read the other way.
    Absent,
    /// A JSON array with something other than strings in it: an error.
    Mixed,
}

/// Is `rest` a JSON array of strings? As Go's `json.Decoder` does it, only the first JSON
/// value counts: `["a"] junk` is the array `["a"]`.
fn json_array(rest: &str) -> JsonForm {
    let rest = rest.trim_start();
    if !rest.starts_with('[') {
        return JsonForm::Absent;
    }
    let mut stream = serde_json::Deserializer::from_str(rest).into_iter::<serde_json::Value>();
    match stream.next() {
        Some(Ok(serde_json::Value::Array(items))) => {
            let mut strings = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    serde_json::Value::String(s) => strings.push(s),
                    _ => return JsonForm::Mixed,
                }
            }
            JsonForm::Strings(strings)
        }
        _ => JsonForm::Absent,
    }
}

const NOT_STRINGS: &str = "when using JSON array syntax, arrays must be comprised of strings only";

// ANCHOR: json_or_shell
/// RUN, CMD, ENTRYPOINT and SHELL: a JSON array is the *exec form*, anything else the
/// *shell form*. `CMD ['a']` is not JSON (single quotes), so it is the shell form and runs
/// `sh -c "['a']"`, which is rarely what was meant.
fn json_or_shell(rest: &str) -> Result<Args, String> {
    if rest.is_empty() {
        return Ok(Args::None);
    }
    match json_array(rest) {
        JsonForm::Strings(v) => Ok(Args::Exec(v)),
        JsonForm::Mixed => Err(NOT_STRINGS.into()),
        JsonForm::Absent => Ok(Args::Shell(rest.to_string())),
    }
}
// ANCHOR_END: json_or_shell

/// COPY, ADD and VOLUME: a JSON array (for paths with spaces), or words.
fn json_or_words(rest: &str) -> Result<Args, String> {
    match json_array(rest) {
        JsonForm::Strings(v) => Ok(Args::Exec(v)),
        JsonForm::Mixed => Err(NOT_STRINGS.into()),
        JsonForm::Absent => Ok(split_whitespace(rest)),
    }
}

/// ENV and LABEL: `k=v k2="v 2"`, or the legacy `k the rest of the line`. Whether the first
/// word has an `=` decides which.
fn name_values(rest: &str, keyword: Keyword, escape: char) -> Result<Args, String> {
    let words = parse_words(rest, escape);
    let Some(first) = words.first() else {
        return Ok(Args::None);
    };
    if !first.contains('=') {
        let mut parts = rest.splitn(2, is_token_space);
        let key = parts.next().unwrap_or_default();
        let value = parts.next().map(|v| v.trim_start_matches(is_token_space));
        return match value {
            Some(value) => Ok(Args::Pairs(vec![KeyValue {
                key: key.to_string(),
                value: value.to_string(),
                legacy: true,
            }])),
            None => Err(format!("{keyword} must have two arguments")),
        };
    }
    let mut pairs = Vec::with_capacity(words.len());
    for word in &words {
        let Some((key, value)) = word.split_once('=') else {
            return Err(format!(
                "Syntax error - can't find = in {}. Must be of the form: name=value",
                goquote::quote(word)
            ));
        };
        pairs.push(KeyValue {
            key: key.to_string(),
            value: value.to_string(),
            legacy: false,
        });
    }
    Ok(Args::Pairs(pairs))
}

/// HEALTHCHECK: a type word (`CMD` or `NONE`), then a command in exec or shell form.
fn healthcheck(rest: &str) -> Result<Args, String> {
    if rest.is_empty() {
        return Ok(Args::None);
    }
    let (kind, command) = match rest.find(char::is_whitespace) {
        Some(i) => (&rest[..i], rest[i..].trim_start()),
        None => (rest, ""),
    };
    Ok(Args::Healthcheck {
        kind: kind.to_string(),
        command: Box::new(json_or_shell(command)?),
    })
}
