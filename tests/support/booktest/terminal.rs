//! One terminal: all the blocks of a chapter in one `bash` process.
//!
//! A learner does not open a fresh shell for every block: they type a whole chapter into one
//! terminal. So the book test also runs all the blocks of one file in ONE `bash` process, in
//! order, and between blocks looks at what a block may leave behind in that terminal: the working
//! directory, traps (`trap ... EXIT` replaces the one before it), shell options, open file
//! descriptors (an `exec 9</etc; flock 9` keeps a lock for as long as the shell lives) and
//! processes still running in the shell's process group (a `server &` that nothing stops), and
//! the source tree (a break-it patch that a block applied and did not take back).
//! Each block still has its own time limit, and each command's output is still compared.

use std::fmt::Write as _;
use std::io::{Read, Seek, SeekFrom, Write as _};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};

use super::{compare, CommandOutput, Mismatch, RunConfig, Session};

/// The `command` of a [`Mismatch`] about a whole block rather than one of its commands.
pub const WHOLE_BLOCK: &str = "(the whole block)";

/// What the shell looks like between blocks, printed by bash itself: the working directory,
/// shell options, traps, exported variables, open descriptors and the processes of the shell's
/// process group (zombies left out: bash reaps them on its own). A process that a block has just
/// killed may take a moment to go, so the check waits up to two seconds for the group to empty.
/// Nothing in it fails, so a block's `set -e` does not end the shell here. `find` runs without a
/// pipeline, so the shell holds no pipe descriptors while it looks; `pgrep -A` leaves out its
/// ancestors: the shell and the subshell of `$(...)`.
const STATE_FN: &str = r#"__dockyard_booktest_state() {
  local i procs line
  for ((i = 0; i < 20; i++)); do
    procs=$(pgrep -a -A -g $$ -r D,R,S,T || true)
    if [ -z "$procs" ]; then break; fi
    sleep 0.1
  done
  printf 'cwd %s\n' "$PWD"
  printf 'options %s\n' "$-"
  trap -p
  export -p
  find /proc/$$/fd -mindepth 1 -maxdepth 1 -printf 'fd %f -> %l\n' 2>/dev/null || true
  if [ -n "$procs" ]; then
    while IFS= read -r line; do printf 'process %s\n' "$line"; done <<< "$procs"
  fi
}
"#;

/// State lines that change in any terminal and say nothing about a block: `cd` sets `OLDPWD`.
/// The harness's own `DOCKYARD_DAEMON_CONFIG`, set before each block (see [`run_chapter`]), is
/// not the block's doing either.
const STATE_NOISE: &[&str] = &[
    "declare -x OLDPWD",
    "declare -x PWD=",
    "declare -x _=",
    "declare -x DOCKYARD_DAEMON_CONFIG=",
];

/// The shell's state as the state function printed it, as sorted lines (fds and processes come
/// in whatever order `/proc` lists them). The state probe's own `sed` is left out.
fn state_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| !l.is_empty())
        .filter(|l| !STATE_NOISE.iter().any(|n| l.starts_with(n)))
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

/// What a block changed in the shell: lines only before (`-`) and only after (`+`).
fn state_change(before: &str, after: &str) -> Option<String> {
    let (b, a) = (state_lines(before), state_lines(after));
    let mut out = String::new();
    for l in b.iter().filter(|l| !a.contains(l)) {
        let _ = writeln!(out, "- {l}");
    }
    for l in a.iter().filter(|l| !b.contains(l)) {
        let _ = writeln!(out, "+ {l}");
    }
    (!out.is_empty()).then_some(out)
}

/// The output of one chapter run in one shell: each block's command outputs, and the shell's
/// state before and after each block (`None` where the shell never got there).
#[derive(Debug, Clone)]
pub struct ChapterRun {
    pub outputs: Vec<Vec<CommandOutput>>,
    pub states: Vec<(Option<String>, Option<String>)>,
    /// The block whose time limit ran out, if one did (the shell was killed there).
    pub timed_out: Option<usize>,
}

/// Runs all `sessions` (the blocks of one file, in order) in one `bash` process. Before the first
/// block and after each block the shell prints its state; block `k`'s time limit starts when
/// the state before it appears. The whole process group is killed at the end, so that nothing a
/// block left running outlives the chapter.
pub fn run_chapter(sessions: &[Session], cfg: &RunConfig) -> Result<ChapterRun> {
    let nonce = format!(
        "{}_{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    );
    let prefix = format!("__DOCKYARD_BOOKTEST_{nonce}_");
    let marker = |tag: &str| format!("{prefix}{tag}__");

    let mut script = String::from("set +e\n");
    script.push_str(STATE_FN);
    script.push_str(super::breakit::STATE_FN);
    let root = cfg.workdir.clone();
    let state = |script: &mut String, tag: String| {
        let _ = writeln!(script, "printf '%s\\n' '{}'", marker(&tag));
        let _ = writeln!(script, "__dockyard_booktest_state");
        // A break-it patch left applied changes every later test's binaries (`breakit.rs`).
        let _ = writeln!(script, "__dockyard_booktest_patched '{}'", root.display());
    };
    // The state is probed once at the start and after each block. Each block starts where the
    // learner's terminal was at the start (the block before is checked for leaving it
    // elsewhere), so one failure does not cascade: the state before block `k + 1` is the state
    // after block `k` with that `cd`.
    let _ = writeln!(script, "cd -- '{}'", cfg.workdir.display());
    state(&mut script, "S".to_string());
    let daemon_json = super::no_bridge_daemon_json()?;
    for (k, session) in sessions.iter().enumerate() {
        if k > 0 {
            let _ = writeln!(script, "cd -- '{}'", cfg.workdir.display());
        }
        // The networking rule, as for a block run on its own: a block that makes no throwaway
        // network namespace (`unshare --net`) runs dockyard with docker's `"bridge": "none"`,
        // so no `dockyard run` of the book makes a bridge, veth or NAT rule on this machine.
        if super::makes_throwaway_netns(session) {
            let _ = writeln!(script, "unset {}", super::DAEMON_CONFIG_ENV);
        } else {
            let _ = writeln!(
                script,
                "export {}='{}'",
                super::DAEMON_CONFIG_ENV,
                daemon_json.display()
            );
        }
        for (n, cmd) in session.commands.iter().enumerate() {
            let _ = writeln!(script, "printf '%s\\n' '{}'", marker(&format!("C{k}_{n}")));
            let _ = writeln!(script, "{}", cmd.text);
        }
        state(&mut script, format!("E{k}"));
    }
    let _ = writeln!(script, "printf '%s\\n' '{}'", marker("END"));

    let mut script_file = tempfile::Builder::new()
        .prefix("dockyard-booktest-")
        .suffix(".sh")
        .tempfile()
        .context("creating the chapter script")?;
    script_file
        .write_all(script.as_bytes())
        .context("writing the chapter script")?;
    let mut out = tempfile::tempfile().context("creating the chapter output file")?;
    // Appending: every writer that shares the description writes at the end, whatever offset a
    // process that outlived its command (a container's output relay) still has.
    nix::fcntl::fcntl(
        &out,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_APPEND),
    )
    .context("making the chapter output file append-only")?;
    let err = out.try_clone().context("duplicating the output file")?;

    let mut path = std::env::join_paths(&cfg.path_prefix).context("joining PATH")?;
    if let Some(old) = std::env::var_os("PATH") {
        path.push(":");
        path.push(old);
    }
    let mut child = super::as_a_learner(&mut Command::new("bash"))
        .arg("--noprofile")
        .arg("--norc")
        .arg(script_file.path())
        .current_dir(&cfg.workdir)
        .env("PATH", path)
        .stdin(Stdio::null())
        .stdout(out.try_clone().context("duplicating the output file")?)
        .stderr(err)
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting bash in {}", cfg.workdir.display()))?;
    let pgid = nix::unistd::Pid::from_raw(child.id() as i32);

    // Watch the output for state markers: each one starts the next block's clock.
    let mut raw = Vec::new();
    let mut block = 0;
    let mut deadline = Instant::now() + cfg.timeout;
    let mut timed_out = None;
    loop {
        let exited = child.try_wait().context("waiting for bash")?.is_some();
        raw.clear();
        out.seek(SeekFrom::Start(0))
            .and_then(|_| out.read_to_end(&mut raw))
            .context("reading the chapter output")?;
        let text = String::from_utf8_lossy(&raw);
        while block < sessions.len()
            && text.contains(&format!("{}\n", marker(&format!("E{block}"))))
        {
            block += 1;
            deadline = Instant::now() + cfg.timeout;
        }
        if exited {
            break;
        }
        if Instant::now() >= deadline {
            timed_out = Some(block);
            let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
            child.wait().context("waiting for the killed bash")?;
            raw.clear();
            out.seek(SeekFrom::Start(0))
                .and_then(|_| out.read_to_end(&mut raw))
                .context("reading the chapter output")?;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // Whatever a block left running in the shell's group goes with the chapter.
    let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);

    let captured = String::from_utf8_lossy(&raw);
    Ok(split_chapter(
        &captured,
        sessions,
        &prefix,
        timed_out,
        &cfg.workdir,
    ))
}

/// Splits a chapter's output on its markers (`S`, `C<k>_<n>`, `E<k>`, `END`).
fn split_chapter(
    captured: &str,
    sessions: &[Session],
    prefix: &str,
    timed_out: Option<usize>,
    workdir: &Path,
) -> ChapterRun {
    let mut segments: std::collections::HashMap<String, String> = Default::default();
    let mut rest = captured;
    let mut current: Option<String> = None;
    while let Some(at) = rest.find(prefix) {
        let after = &rest[at + prefix.len()..];
        let Some(end) = after.find("__\n") else {
            break;
        };
        if let Some(tag) = current.take() {
            segments.insert(tag, rest[..at].to_string());
        }
        let tag = after[..end].to_string();
        current = Some(tag);
        rest = &after[end + 3..];
    }
    // The text after the last marker belongs to the command that was running when the shell
    // stopped (killed, or it ran `exit`).
    let unfinished = current.map(|tag| (tag, rest.to_string()));

    let mut outputs = Vec::with_capacity(sessions.len());
    let mut states = Vec::with_capacity(sessions.len());
    for k in 0..sessions.len() {
        let before = if k == 0 {
            segments.get("S").cloned()
        } else {
            segments.get(&format!("E{}", k - 1)).map(|after| {
                // The `cd` back to the start between blocks.
                after
                    .lines()
                    .map(|l| match l.starts_with("cwd ") {
                        true => format!("cwd {}\n", workdir.display()),
                        false => format!("{l}\n"),
                    })
                    .collect()
            })
        };
        states.push((before, segments.get(&format!("E{k}")).cloned()));
    }
    for (k, session) in sessions.iter().enumerate() {
        let mut block = Vec::with_capacity(session.commands.len());
        for n in 0..session.commands.len() {
            let tag = format!("C{k}_{n}");
            block.push(match (segments.get(&tag), &unfinished) {
                (Some(text), _) => CommandOutput::Done(text.clone()),
                (None, Some((t, text))) if *t == tag => {
                    if timed_out == Some(k) {
                        CommandOutput::TimedOut(text.clone())
                    } else {
                        CommandOutput::Done(text.clone())
                    }
                }
                _ => CommandOutput::NotRun,
            });
        }
        outputs.push(block);
    }
    ChapterRun {
        outputs,
        states,
        timed_out,
    }
}

/// Runs the blocks of one file in one shell, as a learner types them, and reports each command
/// whose output is not the book's and each block that leaves the shell changed (another
/// directory, a trap, an open descriptor or lock, a process still running).
pub fn check_chapter(sessions: &[Session], cfg: &RunConfig) -> Result<Vec<Mismatch>> {
    let run = run_chapter(sessions, cfg)?;
    let mut mismatches = Vec::new();
    for (k, (session, outputs)) in sessions.iter().zip(&run.outputs).enumerate() {
        for (cmd, output) in session.commands.iter().zip(outputs) {
            if let Some(details) = compare(cmd, output, cfg) {
                mismatches.push(Mismatch {
                    file: session.file.clone(),
                    line: cmd.line,
                    command: cmd.text.clone(),
                    details,
                });
            }
        }
        if session.changes_terminal {
            continue;
        }
        if let (Some(before), Some(after)) = &run.states[k] {
            if let Some(change) = state_change(before, after) {
                mismatches.push(Mismatch {
                    file: session.file.clone(),
                    line: session.line,
                    command: WHOLE_BLOCK.to_string(),
                    details: format!(
                        "the block leaves the learner's terminal changed \
                         (- before the block, + after it):\n{change}"
                    ),
                });
            }
        }
    }
    Ok(mismatches)
}

#[cfg(test)]
mod tests {
    use super::super::{parse_sessions, DEFAULT_TIMEOUT};
    use super::*;
    use std::path::PathBuf;

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
    fn chapter_runs_blocks_in_one_shell_and_compares_outputs() {
        let s = parse(
            "```console\n$ X=1; echo one\none\n```\ntext\n```console\n$ echo \"x=$X\"\nx=1\n$ echo no\nyes\n```\n",
        );
        let m = check_chapter(&s, &cfg(DEFAULT_TIMEOUT)).unwrap();
        assert_eq!(m.len(), 1, "{m:?}");
        assert_eq!(m[0].line, 9);
        assert!(m[0].details.starts_with("diff"), "{}", m[0].details);
    }

    /// Each kind of leftover is reported at the block that leaves it, and only there.
    #[test]
    fn chapter_reports_what_a_block_leaves_behind() {
        let cases = [
            ("cd /tmp", "- cwd /\n+ cwd /tmp\n"),
            ("trap 'echo bye' EXIT", "+ trap -- 'echo bye' EXIT\n"),
            ("exec 9</etc; flock 9", "+ fd 9 -> /etc\n"),
            ("set -e", "+ options "),
        ];
        for (leak, want) in cases {
            let text = format!(
                "```console\n$ echo clean\nclean\n```\n```console\n$ {leak}\n```\n```console\n$ echo after\nafter\n```\n"
            );
            let m = check_chapter(&parse(&text), &cfg(DEFAULT_TIMEOUT)).unwrap();
            assert_eq!(m.len(), 1, "{leak}: {m:?}");
            assert_eq!(m[0].line, 5, "{leak}");
            assert_eq!(m[0].command, WHOLE_BLOCK);
            assert!(m[0].details.contains(want), "{leak}: {}", m[0].details);
            assert!(m[0].to_string().contains("block leaves the shell changed"));
        }

        // A block marked as changing the terminal on purpose is not reported.
        let text = "```console,changes-terminal\n$ export BOOKTEST_X=1; cd /tmp\n```\n```console\n$ echo $BOOKTEST_X\n1\n```\n";
        let m = check_chapter(&parse(text), &cfg(DEFAULT_TIMEOUT)).unwrap();
        assert!(m.is_empty(), "{m:?}");

        // A background process: reported, and killed with the chapter's process group.
        let text = "```console\n$ sleep 1234.5 &\n```\n```console\n$ true\n```\n";
        let m = check_chapter(&parse(text), &cfg(DEFAULT_TIMEOUT)).unwrap();
        assert_eq!(m.len(), 1, "{m:?}");
        assert!(m[0].details.contains("sleep 1234.5"), "{}", m[0].details);
        std::thread::sleep(Duration::from_millis(200));
        let left = Command::new("pgrep")
            .args(["-f", "sleep 1234.5"])
            .output()
            .unwrap();
        assert!(left.stdout.is_empty(), "the background sleep was killed");

        // A block that stops its own background process and restores what it set is clean.
        let text = "```console\n$ sleep 99 & pid=$!; trap 'kill $pid' EXIT; cd /tmp\n$ kill $pid; wait $pid; trap - EXIT; cd - >/dev/null\n...\n```\n";
        let m = check_chapter(&parse(text), &cfg(DEFAULT_TIMEOUT)).unwrap();
        assert!(m.is_empty(), "{m:?}");
    }

    #[test]
    fn chapter_times_each_block_and_stops_at_a_hang() {
        let text = "```console\n$ sleep 2\n```\n```console\n$ sleep 2\n```\n```console\n$ echo begun; sleep 60\nbegun\n```\n```console\n$ echo later\nlater\n```\n";
        let t0 = Instant::now();
        // Each block has 3.5s: the first two pass together in 4s, the third is killed.
        let m = check_chapter(&parse(text), &cfg(Duration::from_millis(3500))).unwrap();
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the sleep was killed"
        );
        assert_eq!(m.len(), 2, "{m:?}");
        assert_eq!(m[0].line, 8);
        assert!(m[0].details.starts_with("timed out"), "{}", m[0].details);
        assert_eq!(m[1].line, 12);
        assert!(m[1].details.starts_with("not run"), "{}", m[1].details);
    }
}
