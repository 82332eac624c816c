//! Book tests: every shell session that the book shows is run, and its output is compared.
//!
//! The tutorial in `book/src` teaches by showing terminal sessions. A session that was true when
//! it was written drifts as soon as the code changes, so the test suite runs them all. This module
//! holds the four parts of that check, each usable on its own:
//!
//! 1. the **parser** ([`parse_sessions`]) turns a Markdown file into [`Session`]s;
//! 2. the **matcher** ([`output_matches`]) compares expected output, with elisions, to actual output;
//! 3. the **runner** ([`run_session`], [`check_session`]) runs one session in one `bash` process,
//!    and [`run_chapter`], [`check_chapter`] run all sessions of a file in one, as one terminal;
//! 4. the **include checker** ([`check_includes`], [`check_summary`]) makes sure every
//!    `{{#include}}` and every `SUMMARY.md` link points at something that exists.
//!
//! # The session format
//!
//! A session is a fenced code block whose info string is `console` (```` ```console ````, or
//! `~~~console`; attributes after a comma or a space are ignored, but for `changes-terminal`,
//! see below). Blocks with any other info
//! string (`text`, `sh`, `rust`, ...) are not run.
//!
//! ````text
//! ```console
//! # cd /tmp
//! # printf 'a\nb\nc\n' \
//!     | wc -l
//! 3
//! # echo "pid=$$ and more"
//! pid=[..] and more
//! # seq 1 100
//! 1
//! ...
//! 100
//! # false; echo "exit=$?"
//! exit=1
//! ```
//! ````
//!
//! - A line starting with `# ` (root prompt) or `$ ` is a command. A command line ending with `\`
//!   continues on the next line, exactly as in the shell.
//! - Every other line up to the next command is the command's expected output: stdout and stderr
//!   together, as the shell would show them (the command runs with `2>&1`).
//! - `[..]` in an expected line matches any text within that line (possibly none). A line that is
//!   exactly `...` matches zero or more whole lines. Trailing whitespace on each line and trailing
//!   empty lines are ignored.
//! - Exit status is not checked; a session that cares shows it (`echo "exit=$?"`).
//! - All commands of one block run in one `bash` process, in order, so `cd`, variables and
//!   `export` carry over from one command to the next. Each block starts in the workspace root,
//!   with the built binaries (`target/debug`) first on `PATH`, stdin from `/dev/null`, and a time
//!   limit after which its whole process group is killed.
//! - The book test runs all blocks of one file in ONE `bash` process ([`check_chapter`]), as a
//!   learner types them into one terminal: a block must leave that shell as it found it (working
//!   directory, shell options, traps, exported variables, open descriptors and locks, processes
//!   of the shell's group), or the test fails at the block's fence. [`check_session`] runs one
//!   block in a shell of its own.
//!
//! Output goes to a file, not a terminal, so programs that buffer stdout when it is not a tty
//! (most C programs) may print stdout and stderr in a different order than in a terminal.
//!
//! # How a block runs
//!
//! The runner writes one script per block: before each command it prints a marker line that
//! carries a per-run nonce, then the command. It runs the script as
//! `bash --noprofile --norc SCRIPT > out 2>&1` and splits `out` on the markers, which is what
//! doing it by hand would look like:
//!
//! ```text
//! set +e
//! printf '%s\n' '__DOCKYARD_BOOKTEST_<nonce>_0__'
//! cd /tmp
//! printf '%s\n' '__DOCKYARD_BOOKTEST_<nonce>_1__'
//! pwd
//! printf '%s\n' '__DOCKYARD_BOOKTEST_<nonce>_END__'
//! ```

use std::fmt::{self, Write as _};
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write as _};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};

pub mod breakit;
mod terminal;
pub use terminal::{check_chapter, run_chapter, ChapterRun, WHOLE_BLOCK};

/// The info string that marks a fenced block as a shell session to run.
pub const SESSION_LANG: &str = "console";

/// Default time limit for one block, from first command to last.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------------------------------------
// Parser
// ---------------------------------------------------------------------------------------------

/// One `console` block: the commands it shows, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The Markdown file the block is in.
    pub file: PathBuf,
    /// 1-based line number of the opening fence.
    pub line: usize,
    pub commands: Vec<SessionCommand>,
    /// The block is meant to change the learner's terminal for the blocks after it (its info
    /// string has the attribute [`CHANGES_TERMINAL`], and the text around it says why): the
    /// one-shell run does not report what it leaves behind.
    pub changes_terminal: bool,
}

/// The info-string attribute (```` ```console,changes-terminal ````) of a block that is meant to
/// leave the terminal changed, such as the one that puts the tools on `PATH`.
pub const CHANGES_TERMINAL: &str = "changes-terminal";

/// One command of a session and the output the book says it prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionCommand {
    /// 1-based line number of the prompt line in the Markdown file.
    pub line: usize,
    /// The command without its prompt; continuation lines are joined with `\n`, backslashes kept.
    pub text: String,
    /// Expected output lines, possibly with `[..]` and `...` elisions.
    pub expected: Vec<String>,
}

/// A Markdown file that cannot be read as sessions (for example, an unclosed fence).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub file: PathBuf,
    pub line: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
    }
}

impl std::error::Error for ParseError {}

/// An opening code fence: its character, its length and its indentation.
struct Fence {
    ch: char,
    len: usize,
    indent: usize,
    info: String,
}

/// Reads a line as an opening fence: up to any indentation, three or more backticks or tildes,
/// then the info string.
fn opening_fence(line: &str) -> Option<Fence> {
    let trimmed = line.trim_start();
    let indent = line.len() - trimmed.len();
    let ch = trimmed.chars().next().filter(|c| *c == '`' || *c == '~')?;
    let len = trimmed.chars().take_while(|c| *c == ch).count();
    if len < 3 {
        return None;
    }
    let info = trimmed[len..].trim();
    // CommonMark: a backtick fence's info string may not contain a backtick.
    if ch == '`' && info.contains('`') {
        return None;
    }
    Some(Fence {
        ch,
        len,
        indent,
        info: info.to_string(),
    })
}

fn closes(fence: &Fence, line: &str) -> bool {
    let trimmed = line.trim();
    trimmed.len() >= fence.len && trimmed.chars().all(|c| c == fence.ch)
}

/// The language of an info string: its first word, up to a space or a comma.
fn info_lang(info: &str) -> &str {
    info.split(|c: char| c.is_whitespace() || c == ',')
        .next()
        .unwrap_or("")
}

/// The attributes after the language in an info string (`console,changes-terminal`).
fn info_attributes(info: &str) -> impl Iterator<Item = &str> {
    info.split(|c: char| c.is_whitespace() || c == ',')
        .skip(1)
        .filter(|a| !a.is_empty())
}

/// Removes up to `indent` leading spaces, so that fences nested in list items read as written.
fn strip_indent(line: &str, indent: usize) -> &str {
    let spaces = line.bytes().take(indent).take_while(|b| *b == b' ').count();
    &line[spaces..]
}

/// The command on a prompt line, or `None` if the line is output.
fn prompt_command(line: &str) -> Option<&str> {
    line.strip_prefix("# ").or_else(|| line.strip_prefix("$ "))
}

/// Finds every `console` block in `text` and splits it into commands and expected output.
///
/// `file` is only used for the sessions' and errors' locations.
pub fn parse_sessions(file: &Path, text: &str) -> Result<Vec<Session>, ParseError> {
    let err = |line: usize, message: String| ParseError {
        file: file.to_path_buf(),
        line,
        message,
    };
    let lines: Vec<&str> = text.lines().collect();
    let mut sessions = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let Some(fence) = opening_fence(lines[i]) else {
            i += 1;
            continue;
        };
        let fence_line = i + 1;
        let body_start = i + 1;
        let mut end = body_start;
        while end < lines.len() && !closes(&fence, lines[end]) {
            end += 1;
        }
        if end == lines.len() {
            return Err(err(fence_line, "code fence is never closed".to_string()));
        }
        if info_lang(&fence.info) == SESSION_LANG {
            let body: Vec<(usize, &str)> = (body_start..end)
                .map(|n| (n + 1, strip_indent(lines[n], fence.indent)))
                .collect();
            let commands = parse_block(&body).map_err(|(line, msg)| err(line, msg))?;
            sessions.push(Session {
                file: file.to_path_buf(),
                line: fence_line,
                commands,
                changes_terminal: info_attributes(&fence.info).any(|a| a == CHANGES_TERMINAL),
            });
        }
        i = end + 1;
    }
    Ok(sessions)
}

/// Splits the numbered lines of one block into commands.
fn parse_block(body: &[(usize, &str)]) -> Result<Vec<SessionCommand>, (usize, String)> {
    let mut commands: Vec<SessionCommand> = Vec::new();
    let mut k = 0;
    while k < body.len() {
        let (line_no, line) = body[k];
        k += 1;
        if let Some(cmd) = prompt_command(line) {
            let mut text = cmd.trim_end().to_string();
            while text.ends_with('\\') {
                let Some(&(_, next)) = body.get(k) else {
                    return Err((
                        line_no,
                        "command continues with `\\` past the end of the block".to_string(),
                    ));
                };
                k += 1;
                text.push('\n');
                text.push_str(next.trim_end());
            }
            commands.push(SessionCommand {
                line: line_no,
                text,
                expected: Vec::new(),
            });
        } else if let Some(last) = commands.last_mut() {
            last.expected.push(line.trim_end().to_string());
        } else if !line.trim().is_empty() {
            return Err((
                line_no,
                format!(
                    "output before the first command in a `{SESSION_LANG}` block \
                     (commands start with `# ` or `$ `): {line:?}"
                ),
            ));
        }
    }
    for c in &mut commands {
        trim_trailing_empty(&mut c.expected);
    }
    Ok(commands)
}

fn trim_trailing_empty(lines: &mut Vec<String>) {
    while lines.last().is_some_and(|l| l.trim().is_empty()) {
        lines.pop();
    }
}

// ---------------------------------------------------------------------------------------------
// Matcher
// ---------------------------------------------------------------------------------------------

/// The expected-output line that matches any number of whole lines.
pub const ELIDE_LINES: &str = "...";
/// The text, inside an expected line, that matches any text within the line.
pub const ELIDE_TEXT: &str = "[..]";

/// Whether one actual line matches one expected line, where `[..]` matches any text.
/// Trailing whitespace is ignored on both.
pub fn line_matches(expected: &str, actual: &str) -> bool {
    let expected = expected.trim_end();
    let actual = actual.trim_end();
    let parts: Vec<&str> = expected.split(ELIDE_TEXT).collect();
    if parts.len() == 1 {
        return expected == actual;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if actual.len() < first.len() + last.len() || !actual.starts_with(first) {
        return false;
    }
    if !actual.ends_with(last) {
        return false;
    }
    // The middle pieces must appear in order between the prefix and the suffix; taking the
    // leftmost occurrence each time is optimal for `*`-style wildcards.
    let mut rest = &actual[first.len()..actual.len() - last.len()];
    for piece in &parts[1..parts.len() - 1] {
        match rest.find(piece) {
            Some(at) => rest = &rest[at + piece.len()..],
            None => return false,
        }
    }
    true
}

/// Splits captured output into lines, dropping trailing whitespace and trailing empty lines.
pub fn output_lines(actual: &str) -> Vec<String> {
    let mut lines: Vec<String> = actual.lines().map(|l| l.trim_end().to_string()).collect();
    trim_trailing_empty(&mut lines);
    lines
}

/// Whether `actual` output matches the `expected` lines, with `[..]` and `...` elisions.
pub fn output_matches(expected: &[String], actual: &str) -> bool {
    let mut expected = expected.to_vec();
    trim_trailing_empty(&mut expected);
    lines_match(&expected, &output_lines(actual))
}

/// Matches line lists where an expected `...` line matches zero or more actual lines.
fn lines_match(expected: &[String], actual: &[String]) -> bool {
    // ok[i][j]: expected[i..] matches actual[j..]. Filled from the end.
    let (n, m) = (expected.len(), actual.len());
    let mut ok = vec![vec![false; m + 1]; n + 1];
    ok[n][m] = true;
    for i in (0..n).rev() {
        for j in (0..=m).rev() {
            ok[i][j] = if expected[i] == ELIDE_LINES {
                ok[i + 1][j] || (j < m && ok[i][j + 1])
            } else {
                j < m && line_matches(&expected[i], &actual[j]) && ok[i + 1][j + 1]
            };
        }
    }
    ok[0][0]
}

/// A line diff of expected against actual output: ` ` both, `-` expected only, `+` actual only.
///
/// Lines are paired by the matcher (so `[..]` counts), and `...` lines are shown as context.
pub fn diff(expected: &[String], actual: &str) -> String {
    let actual = output_lines(actual);
    let mut expected = expected.to_vec();
    trim_trailing_empty(&mut expected);
    let (n, m) = (expected.len(), actual.len());
    let mut out = String::new();
    if n.saturating_mul(m) > 4_000_000 {
        out.push_str("(too long to diff)\nexpected:\n");
        for l in &expected {
            let _ = writeln!(out, "  {l}");
        }
        out.push_str("actual:\n");
        for l in &actual {
            let _ = writeln!(out, "  {l}");
        }
        return out;
    }
    let same =
        |i: usize, j: usize| expected[i] != ELIDE_LINES && line_matches(&expected[i], &actual[j]);
    // Longest common subsequence, filled from the end.
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if same(i, j) {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && expected[i] == ELIDE_LINES {
            let _ = writeln!(out, "  {ELIDE_LINES}");
            i += 1;
        } else if i < n && j < m && same(i, j) {
            let _ = writeln!(out, "  {}", actual[j]);
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            let _ = writeln!(out, "- {}", expected[i]);
            i += 1;
        } else {
            let _ = writeln!(out, "+ {}", actual[j]);
            j += 1;
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Runner
// ---------------------------------------------------------------------------------------------

/// Where and how the sessions run.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Working directory at the start of each block.
    pub workdir: PathBuf,
    /// Directories put before the inherited `PATH`, in order.
    pub path_prefix: Vec<PathBuf>,
    /// Time limit for one block; after it the block's process group is killed.
    pub timeout: Duration,
}

impl RunConfig {
    /// The configuration for the book: start in the workspace root, with the built binaries on
    /// `PATH` ([`bin_dir`]), and `DOCKYARD_BOOKTEST_TIMEOUT` seconds per block if set.
    pub fn for_workspace() -> Result<Self> {
        let root = workspace_root();
        let timeout = match std::env::var("DOCKYARD_BOOKTEST_TIMEOUT") {
            Ok(s) => Duration::from_secs(
                s.parse()
                    .with_context(|| format!("DOCKYARD_BOOKTEST_TIMEOUT={s:?} is not seconds"))?,
            ),
            Err(_) => DEFAULT_TIMEOUT,
        };
        Ok(RunConfig {
            path_prefix: vec![bin_dir(&root)],
            workdir: root,
            timeout,
        })
    }
}

/// The workspace root: the parent of this crate's directory (`tests/`).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// Where the built binaries (`lab01-chroot`, `dockyard`, ...) are: `$DOCKYARD_BIN_DIR` if set,
/// else `$CARGO_TARGET_DIR/debug` (relative to the workspace root), else `<root>/target/debug`.
pub fn bin_dir(root: &Path) -> PathBuf {
    if let Some(dir) = std::env::var_os("DOCKYARD_BIN_DIR") {
        return root.join(dir);
    }
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root.join(dir).join("debug"),
        None => root.join("target").join("debug"),
    }
}

/// What one command printed, or why it has no output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandOutput {
    /// The command ran to the end; stdout and stderr, merged.
    Done(String),
    /// The block's time limit ran out while this command was running; what it printed so far.
    TimedOut(String),
    /// The block's shell ended before this command (an earlier `exit`, or a syntax error).
    NotRun,
}

/// The environment variable that names dockyard's daemon.json.
const DAEMON_CONFIG_ENV: &str = "DOCKYARD_DAEMON_CONFIG";

/// The daemon.json with `"bridge": "none"` that sessions get: the tests'
/// shared one (see [`crate::dockyard::no_bridge_daemon_json`]).
fn no_bridge_daemon_json() -> Result<PathBuf> {
    Ok(crate::dockyard::no_bridge_daemon_json())
}

/// The shell a learner types into: without the variables `cargo test` sets for the test
/// process (`CARGO_MANIFEST_DIR`, `CARGO_PKG_*`, ...). A session's own `cargo build` (a break-it
/// experiment) would otherwise see them: `ring`'s build script reruns when `CARGO_MANIFEST_DIR`
/// changes, so every such build recompiled ring, rustls and all that uses them (30 to 60 s on
/// two cores, in the block's time) and left them to be recompiled again by the next `cargo build`
/// outside the book.
pub(crate) fn as_a_learner(cmd: &mut Command) -> &mut Command {
    for (name, _) in std::env::vars_os() {
        let n = name.to_string_lossy();
        if n.starts_with("CARGO_PKG_")
            || n.starts_with("CARGO_MANIFEST_")
            || n.starts_with("CARGO_BIN_")
            || [
                "CARGO_CRATE_NAME",
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_TARGET_TMPDIR",
            ]
            .contains(&&*n)
        {
            cmd.env_remove(&name);
        }
    }
    cmd
}

/// Whether a session makes a throwaway network namespace (`unshare --net`) for its containers.
fn makes_throwaway_netns(session: &Session) -> bool {
    session
        .commands
        .iter()
        .any(|c| c.text.contains("unshare --net") || c.text.contains("unshare -n"))
}

/// Runs every command of `session` in one `bash` process and returns each command's output.
pub fn run_session(session: &Session, cfg: &RunConfig) -> Result<Vec<CommandOutput>> {
    let nonce = format!(
        "{}_{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    );
    let marker = |tag: &str| format!("__DOCKYARD_BOOKTEST_{nonce}_{tag}__");

    let mut script = String::from("set +e\n");
    for (n, cmd) in session.commands.iter().enumerate() {
        let _ = writeln!(script, "printf '%s\\n' '{}'", marker(&n.to_string()));
        let _ = writeln!(script, "{}", cmd.text);
    }
    let _ = writeln!(script, "printf '%s\\n' '{}'", marker("END"));

    let mut script_file = tempfile::Builder::new()
        .prefix("dockyard-booktest-")
        .suffix(".sh")
        .tempfile()
        .context("creating the session script")?;
    script_file
        .write_all(script.as_bytes())
        .context("writing the session script")?;
    let mut out = tempfile::tempfile().context("creating the session output file")?;
    let err = out.try_clone().context("duplicating the output file")?;

    let mut path = std::env::join_paths(&cfg.path_prefix).context("joining PATH")?;
    if let Some(old) = std::env::var_os("PATH") {
        path.push(":");
        path.push(old);
    }

    // The networking rule: a session that does not make a throwaway network
    // namespace (`unshare --net`) for its containers gets a daemon.json
    // with docker's `"bridge": "none"`, so that no `dockyard run` of the
    // book makes a bridge, a veth or a NAT rule on this machine.
    let throwaway_netns = makes_throwaway_netns(session);
    let daemon_json = no_bridge_daemon_json()?;
    let mut bash = Command::new("bash");
    as_a_learner(&mut bash);
    if throwaway_netns {
        bash.env_remove(DAEMON_CONFIG_ENV);
    } else {
        bash.env(DAEMON_CONFIG_ENV, &daemon_json);
    }
    let mut child = bash
        .arg("--noprofile")
        .arg("--norc")
        .arg(script_file.path())
        .current_dir(&cfg.workdir)
        .env("PATH", path)
        .stdin(Stdio::null())
        .stdout(out.try_clone().context("duplicating the output file")?)
        .stderr(err)
        // Its own process group, so a timeout kills the commands too, not only bash.
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting bash in {}", cfg.workdir.display()))?;

    let deadline = Instant::now() + cfg.timeout;
    let mut timed_out = false;
    loop {
        if child.try_wait().context("waiting for bash")?.is_some() {
            break;
        }
        if Instant::now() >= deadline {
            timed_out = true;
            // bash has not been reaped, so its pid is still the group's id.
            let pgid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
            child.wait().context("waiting for the killed bash")?;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }

    let mut raw = Vec::new();
    out.seek(SeekFrom::Start(0))
        .and_then(|_| out.read_to_end(&mut raw))
        .context("reading the session output")?;
    let captured = String::from_utf8_lossy(&raw);
    Ok(split_output(
        &captured,
        session.commands.len(),
        &marker,
        timed_out,
    ))
}

/// Splits the captured output on the markers. The text before marker `n + 1` (or `END`) is the
/// output of command `n`; a marker may follow output that did not end with a newline.
fn split_output(
    captured: &str,
    count: usize,
    marker: &dyn Fn(&str) -> String,
    timed_out: bool,
) -> Vec<CommandOutput> {
    let mut outputs = Vec::with_capacity(count);
    let first = format!("{}\n", marker("0"));
    let Some(start) = captured.find(&first) else {
        return vec![CommandOutput::NotRun; count];
    };
    let mut rest = &captured[start + first.len()..];
    for n in 0..count {
        let tag = if n + 1 == count {
            "END".to_string()
        } else {
            (n + 1).to_string()
        };
        let next = format!("{}\n", marker(&tag));
        match rest.find(&next) {
            Some(at) => {
                outputs.push(CommandOutput::Done(rest[..at].to_string()));
                rest = &rest[at + next.len()..];
            }
            None => {
                outputs.push(if timed_out {
                    CommandOutput::TimedOut(rest.to_string())
                } else {
                    // The shell stopped during this command (e.g. it ran `exit`): what it printed
                    // is its output, and the rest never ran.
                    CommandOutput::Done(rest.to_string())
                });
                outputs.resize(count, CommandOutput::NotRun);
                break;
            }
        }
    }
    outputs
}

/// One command whose output is not what the book shows.
#[derive(Debug, Clone)]
pub struct Mismatch {
    pub file: PathBuf,
    pub line: usize,
    pub command: String,
    /// Why, in words, followed by a line diff.
    pub details: String,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = if self.command == WHOLE_BLOCK {
            "block leaves the shell changed"
        } else {
            "command output differs"
        };
        writeln!(f, "{}:{}: {what}", self.file.display(), self.line)?;
        let mut prompt = "# ";
        for l in self.command.lines() {
            writeln!(f, "    {prompt}{l}")?;
            prompt = "  ";
        }
        for l in self.details.lines() {
            writeln!(f, "    {l}")?;
        }
        Ok(())
    }
}

/// Runs `session` and compares each command's output with the book's.
pub fn check_session(session: &Session, cfg: &RunConfig) -> Result<Vec<Mismatch>> {
    let outputs = run_session(session, cfg)?;
    let mut mismatches = Vec::new();
    for (cmd, output) in session.commands.iter().zip(&outputs) {
        if let Some(details) = compare(cmd, output, cfg) {
            mismatches.push(Mismatch {
                file: session.file.clone(),
                line: cmd.line,
                command: cmd.text.clone(),
                details,
            });
        }
    }
    Ok(mismatches)
}

/// Why `output` is not what the book shows for `cmd`, or `None` if it is.
fn compare(cmd: &SessionCommand, output: &CommandOutput, cfg: &RunConfig) -> Option<String> {
    Some(match output {
        CommandOutput::Done(actual) if output_matches(&cmd.expected, actual) => return None,
        CommandOutput::Done(actual) => {
            format!("diff (- book, + actual):\n{}", diff(&cmd.expected, actual))
        }
        CommandOutput::TimedOut(actual) => format!(
            "timed out: the block ran longer than {}s and was killed \
             (set DOCKYARD_BOOKTEST_TIMEOUT to change the limit)\n\
             diff (- book, + actual):\n{}",
            cfg.timeout.as_secs(),
            diff(&cmd.expected, actual)
        ),
        CommandOutput::NotRun => "not run: the shell ended before this command \
             (did an earlier command `exit`, fail to parse, or time out?)"
            .to_string(),
    })
}

// ---------------------------------------------------------------------------------------------
// Include checker
// ---------------------------------------------------------------------------------------------

/// A broken `{{#include}}` or `SUMMARY.md` link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkProblem {
    pub file: PathBuf,
    pub line: usize,
    pub message: String,
}

impl fmt::Display for LinkProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
    }
}

/// Checks every `{{#include PATH[:ANCHOR | :N[:M]]}}` and `{{#rustdoc_include ...}}` in `text`,
/// read from `file`: the path (relative to the file's directory) must exist, an anchor must have
/// both `ANCHOR: name` and `ANCHOR_END: name` markers, and a line range must start inside the file.
pub fn check_includes(file: &Path, text: &str) -> Vec<LinkProblem> {
    let dir = file.parent().unwrap_or(Path::new("."));
    let mut problems = Vec::new();
    for (idx, line) in text.lines().enumerate() {
        let mut rest = line;
        let mut offset = 0;
        while let Some(at) = rest.find("{{#") {
            let escaped = line[..offset + at].ends_with('\\');
            let after = &rest[at + 3..];
            let Some(close) = after.find("}}") else {
                break;
            };
            let body = &after[..close];
            let consumed = at + 3 + close + 2;
            offset += consumed;
            rest = &rest[consumed..];
            if escaped {
                continue;
            }
            let mut words = body.split_whitespace();
            let kind = words.next().unwrap_or("");
            if kind != "include" && kind != "rustdoc_include" {
                continue;
            }
            let problem = |message: String| LinkProblem {
                file: file.to_path_buf(),
                line: idx + 1,
                message,
            };
            let Some(arg) = words.next() else {
                problems.push(problem(format!("`{{{{#{kind}}}}}` without a path")));
                continue;
            };
            if let Err(message) = check_include_arg(dir, arg) {
                problems.push(problem(format!("{{{{#{kind} {arg}}}}}: {message}")));
            }
        }
    }
    problems
}

/// Checks one include argument `PATH[:ANCHOR | :N[:M]]`, relative to `dir`.
fn check_include_arg(dir: &Path, arg: &str) -> Result<(), String> {
    let (path, selector) = match arg.split_once(':') {
        Some((p, s)) => (p, Some(s)),
        None => (arg, None),
    };
    let target = dir.join(path);
    let content = fs::read_to_string(&target)
        .map_err(|e| format!("cannot read {}: {e}", target.display()))?;
    let Some(selector) = selector else {
        return Ok(());
    };
    let first = selector.split(':').next().unwrap_or("");
    if first.is_empty() || first.chars().all(|c| c.is_ascii_digit()) {
        // A line range `N`, `N:M`, `N:` or `:M`: the start must be inside the file.
        let start: usize = first.parse().unwrap_or(1);
        let lines = content.lines().count();
        if start > lines.max(1) {
            return Err(format!(
                "line {start} is past the end of {} ({lines} lines)",
                target.display()
            ));
        }
        return Ok(());
    }
    let has = |tag: &str| anchor_names(&content, tag).any(|n| n == first);
    match (has("ANCHOR:"), has("ANCHOR_END:")) {
        (true, true) => Ok(()),
        (false, false) => Err(format!(
            "no `ANCHOR: {first}` / `ANCHOR_END: {first}` in {}",
            target.display()
        )),
        (true, false) => Err(format!("no `ANCHOR_END: {first}` in {}", target.display())),
        (false, true) => Err(format!("no `ANCHOR: {first}` in {}", target.display())),
    }
}

/// The names after each `tag` (`ANCHOR:` or `ANCHOR_END:`) in `content`, as mdBook reads them:
/// optional spaces, then word characters and `-`.
fn anchor_names<'a>(content: &'a str, tag: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    content.match_indices(tag).map(move |(at, _)| {
        let rest = content[at + tag.len()..].trim_start();
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-'))
            .unwrap_or(rest.len());
        &rest[..end]
    })
}

/// Checks that every link in `src/SUMMARY.md` points at an existing file. Draft chapters
/// (`[Title]()`) and external links are skipped. Returns nothing if there is no `SUMMARY.md`.
pub fn check_summary(src_dir: &Path) -> Vec<LinkProblem> {
    let summary = src_dir.join("SUMMARY.md");
    let Ok(text) = fs::read_to_string(&summary) else {
        return Vec::new();
    };
    let mut problems = Vec::new();
    for (idx, line) in text.lines().enumerate() {
        let mut rest = line;
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(close) = after.find(')') else {
                break;
            };
            let target = after[..close].trim();
            rest = &after[close + 1..];
            let path = target.split('#').next().unwrap_or("");
            if path.is_empty() || path.contains("://") || path.starts_with("mailto:") {
                continue;
            }
            if !src_dir.join(path).is_file() {
                problems.push(LinkProblem {
                    file: summary.clone(),
                    line: idx + 1,
                    message: format!("link to {path}: no such file in {}", src_dir.display()),
                });
            }
        }
    }
    problems
}

/// Every `*.md` file under `dir`, sorted, so that runs are in a stable order.
pub fn markdown_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let path = entry
                .with_context(|| format!("reading {}", d.display()))?
                .path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/booktest")
    }

    fn lines(s: &[&str]) -> Vec<String> {
        s.iter().map(|l| l.to_string()).collect()
    }

    fn cfg(timeout: Duration) -> RunConfig {
        RunConfig {
            workdir: PathBuf::from("/"),
            path_prefix: Vec::new(),
            timeout,
        }
    }

    fn parse(text: &str) -> Vec<Session> {
        parse_sessions(Path::new("t.md"), text).expect("parses")
    }

    #[test]
    fn parser_finds_only_console_blocks() {
        let text = "\
intro
```sh
$ not run
```
```console
$ echo hi
hi
```
~~~text
# not run
~~~
````console,ignore-other-attrs
# echo a
a
````
";
        let s = parse(text);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].line, 5);
        assert_eq!(
            s[0].commands,
            vec![SessionCommand {
                line: 6,
                text: "echo hi".into(),
                expected: lines(&["hi"]),
            }]
        );
        assert_eq!(s[1].line, 12);
        assert_eq!(s[1].commands[0].line, 13);
        assert_eq!(s[1].commands[0].text, "echo a");
    }

    #[test]
    fn parser_splits_commands_outputs_and_continuations() {
        let text = "\
```console
# printf '%s\\n' \\
    one two
one
two

$ true

```
";
        let s = parse(text);
        let c = &s[0].commands;
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].line, 2);
        assert_eq!(c[0].text, "printf '%s\\n' \\\n    one two");
        assert_eq!(c[0].expected, lines(&["one", "two"]));
        assert_eq!(c[1].line, 7);
        assert!(c[1].expected.is_empty());
    }

    #[test]
    fn parser_handles_indented_fences_and_longer_closers() {
        let text = "\
1. Run it:

   ```console
   $ echo x
   x
   ```````
";
        let s = parse(text);
        assert_eq!(s[0].commands[0].text, "echo x");
        assert_eq!(s[0].commands[0].expected, lines(&["x"]));
    }

    #[test]
    fn parser_keeps_a_fence_of_the_other_kind_inside() {
        let text = "~~~console\n$ echo '```'\n```\n~~~\n";
        let s = parse(text);
        assert_eq!(s[0].commands[0].expected, lines(&["```"]));
    }

    #[test]
    fn parser_reports_errors_with_line_numbers() {
        let e = parse_sessions(Path::new("t.md"), "x\n```console\n$ ls\n").unwrap_err();
        assert_eq!((e.line, e.message.contains("never closed")), (2, true));
        let e = parse_sessions(Path::new("t.md"), "```console\nstray\n$ ls\n```\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e
            .to_string()
            .starts_with("t.md:2: output before the first command"));
        let e = parse_sessions(Path::new("t.md"), "```console\n$ ls \\\n```\n").unwrap_err();
        assert_eq!(e.line, 2);
    }

    #[test]
    fn line_elision() {
        assert!(line_matches("abc", "abc"));
        assert!(line_matches("abc", "abc   "));
        assert!(!line_matches("abc", "abcd"));
        assert!(line_matches("id=[..] done", "id=1234 done"));
        assert!(line_matches("id=[..] done", "id= done"));
        assert!(!line_matches("id=[..] done", "id=1234 gone"));
        assert!(line_matches("[..]", ""));
        assert!(line_matches("[..]x[..]y", "axbxy"));
        assert!(!line_matches("[..]x[..]y", "ayx"));
        // The prefix and suffix may not overlap.
        assert!(!line_matches("ab[..]ba", "aba"));
        assert!(line_matches("a[..]b[..]c", "a-b-b-c"));
    }

    #[test]
    fn multi_line_elision() {
        let exp = lines(&["first", "...", "last"]);
        assert!(output_matches(&exp, "first\nlast\n"));
        assert!(output_matches(&exp, "first\n1\n2\n3\nlast\n"));
        assert!(!output_matches(&exp, "first\n1\n"));
        assert!(output_matches(&lines(&["..."]), ""));
        assert!(output_matches(&lines(&["..."]), "anything\nat all"));
        assert!(output_matches(&lines(&["a", "..."]), "a\nb\n"));
        assert!(output_matches(&lines(&["...", "[..]b"]), "x\nab\nab"));
        assert!(!output_matches(&lines(&["a"]), "a\nb"));
    }

    #[test]
    fn trailing_whitespace_and_empty_lines_are_ignored() {
        assert!(output_matches(&lines(&["a  ", ""]), "a\n\n\n"));
        assert!(output_matches(&[], "\n"));
        assert!(!output_matches(&[], "x\n"));
        assert!(!output_matches(&lines(&["", "a"]), "a\n"));
    }

    #[test]
    fn diff_marks_missing_and_extra_lines() {
        let d = diff(&lines(&["a", "id=[..]", "...", "c"]), "a\nid=7\nb\nx\n");
        assert_eq!(d, "  a\n  id=7\n  ...\n- c\n+ b\n+ x\n");
    }

    #[test]
    fn includes_are_checked() {
        let md = fixtures().join("includes/src/chapter.md");
        let text = fs::read_to_string(&md).unwrap();
        let problems = check_includes(&md, &text);
        let got: Vec<(usize, bool)> = problems.iter().map(|p| (p.line, p.file == md)).collect();
        assert_eq!(
            got,
            vec![(9, true), (10, true), (11, true), (12, true), (13, true)],
            "{problems:#?}"
        );
        assert!(problems[0].message.contains("cannot read"));
        assert!(problems[1]
            .message
            .contains("no `ANCHOR: missing` / `ANCHOR_END: missing`"));
        assert!(problems[2].message.contains("no `ANCHOR_END: half`"));
        assert!(problems[3].message.contains("line 99 is past the end"));
        assert!(problems[4].message.starts_with("{{#rustdoc_include"));
    }

    #[test]
    fn summary_links_are_checked() {
        let src = fixtures().join("includes/src");
        let problems = check_summary(&src);
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert_eq!(problems[0].line, 4);
        assert!(problems[0].message.contains("missing.md"));
        assert!(check_summary(&fixtures().join("no-such-dir")).is_empty());
    }

    #[test]
    fn fixture_sessions_pass_and_fail_as_written() {
        let md = fixtures().join("sample.md");
        let text = fs::read_to_string(&md).unwrap();
        let sessions = parse_sessions(&md, &text).unwrap();
        assert_eq!(
            sessions.len(),
            3,
            "the `sh` and `text` blocks are not sessions"
        );

        // The first two blocks pass: echo, cd carried over, stderr merged, continuations,
        // elisions, output without a final newline, and cwd reset between blocks.
        for s in &sessions[..2] {
            let m = check_session(s, &cfg(DEFAULT_TIMEOUT)).unwrap();
            assert!(
                m.is_empty(),
                "{}",
                m.iter().map(|m| m.to_string()).collect::<String>()
            );
        }

        // The third block fails at exactly two commands.
        let m = check_session(&sessions[2], &cfg(DEFAULT_TIMEOUT)).unwrap();
        let at: Vec<usize> = m.iter().map(|m| m.line).collect();
        let want: Vec<usize> = sessions[2]
            .commands
            .iter()
            .filter(|c| c.text.contains("goodbye") || c.text.contains("seq"))
            .map(|c| c.line)
            .collect();
        assert_eq!(at, want);
        assert_eq!(m[0].command, "echo goodbye");
        assert!(
            m[0].details.contains("- hello\n+ goodbye\n"),
            "{}",
            m[0].details
        );
        assert!(
            m[1].details.contains("  1\n  ...\n- 4\n"),
            "{}",
            m[1].details
        );
        let report = m[0].to_string();
        assert!(
            report.starts_with(&format!(
                "{}:{}: command output differs\n",
                md.display(),
                want[0]
            )),
            "{report}"
        );
        assert!(report.contains("    # echo goodbye\n"), "{report}");
    }

    #[test]
    fn runner_runs_commands_in_one_shell() {
        let s = parse("```console\n$ X=1; cd /tmp\n$ echo \"$X $PWD\"\n1 /tmp\n```\n");
        let out = run_session(&s[0], &cfg(DEFAULT_TIMEOUT)).unwrap();
        assert_eq!(
            out,
            vec![
                CommandOutput::Done(String::new()),
                CommandOutput::Done("1 /tmp\n".into())
            ]
        );
    }

    #[test]
    fn runner_puts_path_prefix_first() {
        let dir = tempfile::tempdir().unwrap();
        let tool = dir.path().join("hello-tool");
        fs::write(&tool, "#!/bin/sh\necho from-prefix\n").unwrap();
        fs::set_permissions(&tool, PermissionsExt::from_mode(0o755)).unwrap();
        let s = parse("```console\n$ hello-tool\nfrom-prefix\n```\n");
        let mut c = cfg(DEFAULT_TIMEOUT);
        c.path_prefix = vec![dir.path().to_path_buf()];
        assert!(check_session(&s[0], &c).unwrap().is_empty());
    }

    #[test]
    fn runner_reports_exit_and_timeout() {
        let s = parse("```console\n$ echo a; exit 3\na\n$ echo b\nb\n```\n");
        let out = run_session(&s[0], &cfg(DEFAULT_TIMEOUT)).unwrap();
        assert_eq!(
            out,
            vec![CommandOutput::Done("a\n".into()), CommandOutput::NotRun]
        );
        let m = check_session(&s[0], &cfg(DEFAULT_TIMEOUT)).unwrap();
        assert_eq!(m.len(), 1);
        assert!(m[0].details.starts_with("not run"));

        let s = parse("```console\n$ echo start\nstart\n$ echo begun; sleep 30\nbegun\n```\n");
        let t0 = Instant::now();
        let m = check_session(&s[0], &cfg(Duration::from_millis(500))).unwrap();
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the sleep was killed"
        );
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].line, 4);
        assert!(m[0].details.starts_with("timed out"), "{}", m[0].details);
    }
}
