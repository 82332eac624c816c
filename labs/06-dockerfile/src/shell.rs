//! # Word expansion: `$VAR` in a Dockerfile is not the shell's `$VAR`
//!
//! A Dockerfile has two kinds of variables, and they are expanded by two different programs.
//!
//! In `RUN echo $HOME` the builder expands *nothing*: it hands the string `echo $HOME` to
//! `/bin/sh -c` inside the build container, and the container's shell expands `$HOME`. But in
//! `WORKDIR $HOME/app` or `COPY app.tar /opt/$VERSION/` there is no shell at all: the builder
//! itself has to turn `$HOME` into a value, from the `ENV` and `ARG` instructions seen so far.
//! Docker does this with a small lexer that imitates the POSIX shell's rules for quoting and
//! parameter expansion, and this module is that lexer.
//!
//! What it understands, with the environment `PWD=/home`:
//!
//! | word                 | result       | rule                                             |
//! |----------------------|--------------|--------------------------------------------------|
//! | `$PWD`, `${PWD}`     | `/home`      | plain expansion; unset gives the empty string    |
//! | `${X:-dflt}`         | `dflt`       | default if unset **or empty**                    |
//! | `${X-dflt}`          | `dflt`       | default if unset only                            |
//! | `${PWD:+alt}`        | `alt`        | alternative if set **and not empty**             |
//! | `${PWD+alt}`         | `alt`        | alternative if set (even empty)                  |
//! | `${X:?msg}`          | error `msg`  | fail if unset or empty (`${X?msg}`: unset only)  |
//! | `'$PWD'`             | `$PWD`       | single quotes keep everything literally          |
//! | `"$PWD"`             | `/home`      | double quotes expand, but keep spaces in a word  |
//! | `\$PWD`              | `$PWD`       | the escape character (`\` or `` ` ``) quotes one |
//! | `$1`, `$@`, `$?`     | empty        | positional and special parameters are never set  |
//!
//! The shell equivalent of [`Lexer::expand_word`] is
//! `env -i PWD=/home sh -c 'printf %s\\n "$1"' _ "$(eval echo WORD)"`, give or take the parts
//! that a Dockerfile deliberately leaves out: no command substitution `$(...)`, no arithmetic,
//! no globbing, no `${X:=v}` assignment, and no `${X#pattern}` / `${X%pattern}` trimming.
//!
//! Which instructions are expanded by the builder is decided by [`expands_variables`].

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use unicode_general_category::{get_general_category, GeneralCategory};

/// Where the lexer looks variables up. `None` means "unset", which is different from
/// `Some("")` for `${X-d}`, `${X+a}` and `${X?}`.
pub trait Vars {
    fn var(&self, name: &str) -> Option<&str>;
}

impl Vars for HashMap<String, String> {
    fn var(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

impl Vars for BTreeMap<String, String> {
    fn var(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

/// A list of `(name, value)` pairs, as ENV builds it up; the first occurrence wins.
impl Vars for [(String, String)] {
    fn var(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A word that cannot be expanded: an unterminated quote, `${}`, an unknown modifier, or a
/// `${X:?}` whose variable is missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpandError {
    /// The word as it was given.
    pub word: String,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for ExpandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "failed to process {:?}: {}", self.word, self.message)
    }
}

impl std::error::Error for ExpandError {}

/// The most bytes that one word's variable references may bring in: 1 MiB. Without a limit,
/// forty lines of `ENV A=$A$A` double a value to a terabyte and the builder dies trying
/// to hold it. Docker has no number for this but hits a wall all the same: no program
/// can be given an environment string over the kernel's `MAX_ARG_STRLEN` (128 KiB), and
/// the image config that carries the value goes through APIs with message limits of a
/// few MiB. A 1 MiB value already fails in every RUN; the limit only turns a runaway
/// into a clear error.
pub const MAX_EXPANSION: usize = 1 << 20;

/// Docker's word lexer, for one escape character.
///
/// The three `raw_*`/`skip_*` switches exist for the parser's heredoc detection, which needs to
/// see a word *as written* (`<<"EOF"` keeps its quotes); the builder uses [`Lexer::new`]'s
/// defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lexer {
    escape: char,
    /// Keep quote characters in the result.
    pub raw_quotes: bool,
    /// Keep escape characters in the result.
    pub raw_escapes: bool,
    /// Leave references to unset variables as they were written.
    pub skip_unset: bool,
}

impl Lexer {
    /// A lexer for the Dockerfile's escape character (`\` unless `# escape=` says `` ` ``).
    pub fn new(escape: char) -> Self {
        Lexer {
            escape,
            raw_quotes: false,
            raw_escapes: false,
            skip_unset: false,
        }
    }

    /// Expands one word, keeping the spaces in it: what WORKDIR, USER or an ENV value gets.
    pub fn expand_word(&self, word: &str, vars: &dyn Vars) -> Result<String, ExpandError> {
        self.process(word, vars).map(|(w, _)| w)
    }

    /// Expands and then splits into words on unquoted white space: what EXPOSE or a
    /// whitespace-separated VOLUME gets. `"a b"` stays one word; `$X` with `X="a b"` gives two.
    pub fn expand_words(&self, word: &str, vars: &dyn Vars) -> Result<Vec<String>, ExpandError> {
        self.process(word, vars).map(|(_, ws)| ws)
    }

    fn process(&self, word: &str, vars: &dyn Vars) -> Result<(String, Vec<String>), ExpandError> {
        let mut st = State {
            lx: self,
            vars,
            chars: word.chars().collect(),
            pos: 0,
            produced: 0,
        };
        st.stop_on(None, self.raw_escapes)
            .map_err(|message| ExpandError {
                word: word.to_string(),
                message,
            })
    }
}

/// The instructions whose arguments the *builder* expands, following buildkit: everything
/// that has no shell to do it. RUN, CMD, ENTRYPOINT, SHELL and HEALTHCHECK are left alone
/// (their shell expands at run time, with the container's environment); MAINTAINER is
/// free text. ONBUILD is not expanded when it is read: its trigger is expanded by the child
/// build that runs it, with the child's variables.
// ANCHOR: expands_variables
pub fn expands_variables(instruction: &str) -> bool {
    matches!(
        instruction.to_ascii_uppercase().as_str(),
        "ADD"
            | "ARG"
            | "COPY"
            | "ENV"
            | "EXPOSE"
            | "FROM"
            | "LABEL"
            | "STOPSIGNAL"
            | "USER"
            | "VOLUME"
            | "WORKDIR"
    )
}
// ANCHOR_END: expands_variables

/// Go's `unicode.IsSpace`, which the lexer uses to split words: the Unicode White_Space
/// property, which is what Rust's `char::is_whitespace` is too.
fn is_space(c: char) -> bool {
    c.is_whitespace()
}

/// Words being collected while expanding, for [`Lexer::expand_words`].
#[derive(Default)]
struct Words {
    word: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    /// An unquoted character: white space ends a word.
    fn add_char(&mut self, c: char) {
        if is_space(c) {
            if self.in_word && !self.word.is_empty() {
                self.words.push(std::mem::take(&mut self.word));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(c);
        }
    }

    fn add_raw_char(&mut self, c: char) {
        self.word.push(c);
        self.in_word = true;
    }

    /// The value of an unquoted `$VAR` is split like unquoted text.
    fn add_string(&mut self, s: &str) {
        for c in s.chars() {
            self.add_char(c);
        }
    }

    /// A quoted string is one piece of a word, spaces and all.
    fn add_raw_string(&mut self, s: &str) {
        self.word.push_str(s);
        self.in_word = true;
    }

    fn finish(mut self) -> Vec<String> {
        if !self.word.is_empty() {
            self.words.push(self.word);
        }
        self.words
    }
}

struct State<'a> {
    lx: &'a Lexer,
    vars: &'a dyn Vars,
    chars: Vec<char>,
    pos: usize,
    /// Bytes taken from variables so far (see [`MAX_EXPANSION`]).
    produced: usize,
}

impl State<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    /// Processes characters up to `stop` (consumed), or to the end when `stop` is `None`.
    fn stop_on(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Result<(String, Vec<String>), String> {
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(c) = self.peek() {
            if Some(c) == stop {
                self.next();
                return Ok((result, words.finish()));
            }
            match c {
                '\'' => {
                    let s = self.single_quote()?;
                    result.push_str(&s);
                    words.add_raw_string(&s);
                }
                '"' => {
                    let s = self.double_quote()?;
                    result.push_str(&s);
                    words.add_raw_string(&s);
                }
                '$' => {
                    let s = self.dollar()?;
                    result.push_str(&s);
                    words.add_string(&s);
                }
                _ => {
                    self.next();
                    if c == self.lx.escape {
                        if raw_escapes {
                            result.push(c);
                            words.add_raw_char(c);
                        }
                        // The escape character quotes the next one; at the very end it
                        // quotes nothing and disappears.
                        let Some(escaped) = self.next() else { break };
                        result.push(escaped);
                        words.add_raw_char(escaped);
                    } else {
                        result.push(c);
                        words.add_char(c);
                    }
                }
            }
        }
        match stop {
            Some(s) => Err(format!(
                "unexpected end of statement while looking for matching {s}"
            )),
            None => Ok((result, words.finish())),
        }
    }

    /// `'...'`: every character literally, the escape character included.
    fn single_quote(&mut self) -> Result<String, String> {
        let mut result = String::new();
        let open = self.next();
        if self.lx.raw_quotes {
            result.extend(open);
        }
        loop {
            match self.next() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching single-quote"
                            .into(),
                    )
                }
                Some('\'') => {
                    if self.lx.raw_quotes {
                        result.push('\'');
                    }
                    return Ok(result);
                }
                Some(c) => result.push(c),
            }
        }
    }

    /// `"..."`: literal except `$`, and the escape character before `"`, `$` or itself.
    fn double_quote(&mut self) -> Result<String, String> {
        let mut result = String::new();
        let open = self.next();
        if self.lx.raw_quotes {
            result.extend(open);
        }
        loop {
            match self.peek() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching double-quote"
                            .into(),
                    )
                }
                Some('"') => {
                    self.next();
                    if self.lx.raw_quotes {
                        result.push('"');
                    }
                    return Ok(result);
                }
                Some('$') => {
                    let v = self.dollar()?;
                    result.push_str(&v);
                }
                Some(c) => {
                    self.next();
                    if c == self.lx.escape {
                        match self.peek() {
                            // An escape character at the end of the word is dropped.
                            None => continue,
                            Some(n) if n == '"' || n == '$' || n == self.lx.escape => {
                                if self.lx.raw_escapes {
                                    result.push(c);
                                }
                                self.next();
                                result.push(n);
                            }
                            // Before anything else it is an ordinary character: "a\tb" is a\tb.
                            Some(_) => result.push(c),
                        }
                    } else {
                        result.push(c);
                    }
                }
            }
        }
    }

    // ANCHOR: expansion_limit
    /// A `$` reference, counted against [`MAX_EXPANSION`]: every value a word takes from
    /// its variables adds up, so one word can never grow past the limit, however many
    /// references it has, and neither can a chain of `ENV A=$A$A` lines, each of which
    /// reads the value the one before made.
    fn dollar(&mut self) -> Result<String, String> {
        let v = self.dollar_value()?;
        self.produced += v.len();
        if self.produced > MAX_EXPANSION {
            return Err(format!(
                "the expansion is over {} MiB: a variable may hold at most that much here \
                 (and the kernel gives no program an environment string over 128 KiB)",
                MAX_EXPANSION >> 20
            ));
        }
        Ok(v)
    }
    // ANCHOR_END: expansion_limit

    /// `$NAME`, `${NAME}` or `${NAME<modifier>word}`, the `$` not yet consumed.
    fn dollar_value(&mut self) -> Result<String, String> {
        self.next();
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return Ok(match self.vars.var(&name) {
                Some(v) => v.to_string(),
                None if self.lx.skip_unset => format!("${name}"),
                None => String::new(),
            });
        }
        self.next();
        match self.peek() {
            None => return Err("syntax error: missing '}'".into()),
            Some('{' | '}' | ':') => return Err("syntax error: bad substitution".into()),
            Some(_) => {}
        }
        let name = self.name();
        let value = self.vars.var(&name).map(str::to_string);
        match self.peek() {
            Some('}') => {
                self.next();
                Ok(match value {
                    Some(v) => v,
                    None if self.lx.skip_unset => format!("${{{name}}}"),
                    None => String::new(),
                })
            }
            Some(c @ (':' | '-' | '+' | '?')) => {
                self.next();
                // With a colon, an empty value counts as unset: `${X:-d}` versus `${X-d}`.
                let colon = c == ':';
                let modifier = if colon { self.next() } else { Some(c) };
                let word = match self.stop_on(Some('}'), false) {
                    Ok((w, _)) => w,
                    Err(_) if self.peek().is_none() => {
                        return Err("syntax error: missing '}'".into());
                    }
                    Err(e) => return Err(e),
                };
                if value.is_none() && self.lx.skip_unset {
                    let m: String = modifier.into_iter().collect();
                    let colon = if colon { ":" } else { "" };
                    return Ok(format!("${{{name}{colon}{m}{word}}}"));
                }
                let missing = match &value {
                    None => true,
                    Some(v) => colon && v.is_empty(),
                };
                match modifier {
                    Some('-') => Ok(if missing {
                        word
                    } else {
                        value.unwrap_or_default()
                    }),
                    Some('+') => Ok(if missing { String::new() } else { word }),
                    Some('?') => {
                        if !missing {
                            return Ok(value.unwrap_or_default());
                        }
                        let message = if !word.is_empty() {
                            word
                        } else if value.is_none() {
                            "is not allowed to be unset".into()
                        } else {
                            "is not allowed to be empty".into()
                        };
                        Err(format!("{name}: {message}"))
                    }
                    Some(m) => Err(format!("unsupported modifier ({m}) in substitution")),
                    None => Err("syntax error: missing '}'".into()),
                }
            }
            _ => Err("missing ':' in substitution".into()),
        }
    }

    /// A variable name: letters, digits and `_`; or a run of digits (a positional parameter);
    /// or one special parameter character. The last two are never set in a Dockerfile.
    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if name.is_empty() && is_digit(c) {
                while let Some(d) = self.peek().filter(|d| is_digit(*d)) {
                    name.push(d);
                    self.next();
                }
                return name;
            }
            if name.is_empty() && matches!(c, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.next();
                return c.to_string();
            }
            if !is_letter(c) && !is_digit(c) && c != '_' {
                break;
            }
            name.push(c);
            self.next();
        }
        name
    }
}

/// Go's `unicode.IsDigit`: general category Nd.
fn is_digit(c: char) -> bool {
    c.is_ascii_digit() || get_general_category(c) == GeneralCategory::DecimalNumber
}

/// Go's `unicode.IsLetter`: general category L.
fn is_letter(c: char) -> bool {
    use GeneralCategory::*;
    c.is_ascii_alphabetic()
        || matches!(
            get_general_category(c),
            UppercaseLetter | LowercaseLetter | TitlecaseLetter | ModifierLetter | OtherLetter
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> BTreeMap<String, String> {
        [("PWD", "/home"), ("EMPTY", ""), ("TWO", "a b")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn word(s: &str) -> Result<String, ExpandError> {
        Lexer::new('\\').expand_word(s, &env())
    }

    #[test]
    fn colon_means_empty_counts_as_unset() {
        assert_eq!(word("${EMPTY:-d}").unwrap(), "d");
        assert_eq!(word("${EMPTY-d}").unwrap(), "");
        assert_eq!(word("${UNSET-d}").unwrap(), "d");
        assert_eq!(word("${EMPTY:+a}").unwrap(), "");
        assert_eq!(word("${EMPTY+a}").unwrap(), "a");
        assert_eq!(word("${UNSET+a}").unwrap(), "");
    }

    #[test]
    fn question_mark_errors_name_the_variable() {
        let e = word("${UNSET:?}").unwrap_err();
        assert_eq!(e.message, "UNSET: is not allowed to be unset");
        let e = word("${EMPTY:?}").unwrap_err();
        assert_eq!(e.message, "EMPTY: is not allowed to be empty");
        let e = word("${UNSET?set it with --build-arg}").unwrap_err();
        assert_eq!(e.message, "UNSET: set it with --build-arg");
        assert_eq!(
            e.to_string(),
            "failed to process \"${UNSET?set it with --build-arg}\": UNSET: set it with --build-arg"
        );
        assert_eq!(word("${EMPTY?}").unwrap(), "");
    }

    #[test]
    fn backtick_is_the_escape_when_the_directive_says_so() {
        let lx = Lexer::new('`');
        assert_eq!(
            lx.expand_word(r"C:\dir\$PWD", &env()).unwrap(),
            r"C:\dir\/home"
        );
        assert_eq!(lx.expand_word("`$PWD", &env()).unwrap(), "$PWD");
    }

    #[test]
    fn words_split_on_unquoted_space_only() {
        let lx = Lexer::new('\\');
        assert_eq!(
            lx.expand_words("80/tcp  \"a b\" $TWO x\\ y", &env())
                .unwrap(),
            vec!["80/tcp", "a b", "a", "b", "x y"]
        );
    }

    #[test]
    fn raw_mode_keeps_the_word_as_written() {
        let mut lx = Lexer::new('\\');
        lx.raw_quotes = true;
        lx.raw_escapes = true;
        lx.skip_unset = true;
        assert_eq!(
            lx.expand_words("cat <<\"EOF\" $UNSET ${UNSET:-x} \\n", &env())
                .unwrap(),
            vec!["cat", "<<\"EOF\"", "$UNSET", "${UNSET:-x}", "\\n"]
        );
    }

    #[test]
    fn which_instructions_expand() {
        for i in ["WORKDIR", "copy", "Env", "from", "ARG"] {
            assert!(expands_variables(i), "{i}");
        }
        for i in [
            "RUN",
            "cmd",
            "ENTRYPOINT",
            "SHELL",
            "HEALTHCHECK",
            "ONBUILD",
        ] {
            assert!(!expands_variables(i), "{i}");
        }
    }

    #[test]
    fn doubling_a_variable_stops_at_the_limit() {
        let lx = Lexer::new('\\');
        let mut v: BTreeMap<String, String> = BTreeMap::new();
        v.insert("A".into(), "x".repeat(1024));
        let mut doublings = 0;
        let err = loop {
            match lx.expand_word("$A$A", &v) {
                Ok(w) => {
                    v.insert("A".into(), w);
                    doublings += 1;
                }
                Err(e) => break e,
            }
            assert!(doublings < 40, "never stopped");
        };
        assert_eq!(
            doublings, 10,
            "1 KiB doubled 10 times is 1 MiB, the most; once more is over"
        );
        assert!(err.to_string().contains("over 1 MiB"), "{err}");
        // Many references to one big value in one word stop as soon as they add up.
        v.insert("B".into(), "y".repeat(300 << 10));
        assert!(lx.expand_word("$B$B$B$B$B$B$B$B$B$B", &v).is_err());
        assert!(lx.expand_word("$B$B$B", &v).is_ok());
    }
}
