//! The book's promises, checked: every `{{#include}}` resolves, and every `console` session the
//! book shows prints what the book says it prints.
//!
//! The format and the runner are in `support/booktest.rs`. The sessions need root, the built
//! binaries and the base image, so build first and run as root:
//!
//! ```text
//! cargo build --workspace
//! sudo -E cargo test -p dockyard-e2e --test book
//! ```
//!
//! Environment: `DOCKYARD_SKIP_PRIVILEGED=1` skips the sessions when not root;
//! `DOCKYARD_BOOKTEST_MODE=chapters` runs each file's blocks in a shell of their own, and
//! `blocks` each block, instead of the whole book in one shell in SUMMARY.md's order (see
//! `support/booktest/terminal.rs`);
//! `DOCKYARD_BIN_DIR` overrides where the binaries are; `DOCKYARD_BOOKTEST_TIMEOUT` sets the
//! seconds per block (default 120); `DOCKYARD_BOOKTEST_FILTER=ch03` runs only the files whose
//! path contains that text; `DOCKYARD_BOOK_SRC` checks another tree instead of `book/src`.

use std::fs;
use std::path::{Path, PathBuf};

use dockyard_e2e::booktest::breakit;
use dockyard_e2e::booktest::{
    bin_dir, check_chapter, check_includes, check_session, check_summary, markdown_files,
    parse_sessions, workspace_root, RunConfig, Session,
};

/// `book/src`, or `$DOCKYARD_BOOK_SRC` (to try the harness on another tree).
fn book_src() -> PathBuf {
    match std::env::var_os("DOCKYARD_BOOK_SRC") {
        Some(dir) => workspace_root().join(dir),
        None => workspace_root().join("book/src"),
    }
}

/// A path as the report shows it: relative to the workspace root.
fn shown(path: &Path) -> String {
    path.strip_prefix(workspace_root())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// The book's files in the order of SUMMARY.md (the introduction first, the appendix last), as
/// paths relative to `src`.
fn summary_order(src: &Path) -> Vec<PathBuf> {
    let summary = fs::read_to_string(src.join("SUMMARY.md")).unwrap_or_default();
    summary
        .lines()
        .filter_map(|l| {
            let target = l.split_once("](")?.1;
            Some(PathBuf::from(target.split(')').next()?.trim()))
        })
        .collect()
}

#[test]
fn book_includes_resolve() {
    let src = book_src();
    if !src.is_dir() {
        eprintln!("note: {} does not exist; nothing to check", shown(&src));
        return;
    }
    let mut problems = check_summary(&src);
    for file in markdown_files(&src).expect("listing book/src") {
        let text = fs::read_to_string(&file).unwrap_or_else(|e| panic!("reading {file:?}: {e}"));
        problems.extend(check_includes(&file, &text));
    }
    if !problems.is_empty() {
        let list: Vec<String> = problems
            .iter()
            .map(|p| format!("{}:{}: {}", shown(&p.file), p.line, p.message))
            .collect();
        panic!(
            "{} broken link(s) in the book (mdBook only warns about these):\n{}",
            problems.len(),
            list.join("\n")
        );
    }
}

/// Every break-it patch still applies to the source as it is, is shown by a chapter
/// (`{{#include breakit/NAME}}`) and is applied by one of its sessions; every patch a session
/// applies exists. A patch that no longer applies is an experiment the learner cannot do.
#[test]
fn breakit_patches_apply_and_are_shown_and_run() {
    let root = workspace_root();
    let src = book_src();
    let mut text = String::new();
    let mut named: Vec<String> = Vec::new();
    for file in markdown_files(&src).expect("listing book/src") {
        let t = fs::read_to_string(&file).unwrap_or_else(|e| panic!("reading {file:?}: {e}"));
        for s in parse_sessions(&file, &t).unwrap_or_default() {
            for c in &s.commands {
                named.extend(breakit::named_in(&c.text));
            }
        }
        text.push_str(&t);
    }
    let mut problems = Vec::new();
    for patch in breakit::patches(&root).expect("listing the break-it patches") {
        let rel = shown(&patch);
        let name = patch.file_name().unwrap_or_default().to_string_lossy();
        if !text.contains(&format!("{{{{#include breakit/{name}}}}}")) {
            problems.push(format!(
                "{rel}: no chapter shows it ({{{{#include breakit/{name}}}}})"
            ));
        }
        if !named.contains(&rel) {
            problems.push(format!("{rel}: no session applies it"));
        }
        match breakit::applies(&root, &patch) {
            Ok(Ok(())) => {}
            Ok(Err(said)) if breakit::is_applied(&root, &patch).unwrap_or(false) => {
                eprintln!("note: {rel} is applied now (a session is running it?): {said}")
            }
            Ok(Err(said)) => problems.push(format!("{rel}: does not apply: {said}")),
            Err(e) => problems.push(format!("{rel}: {e:#}")),
        }
    }
    for name in &named {
        if !root.join(name).is_file() {
            problems.push(format!("a session applies {name}, which does not exist"));
        }
    }
    assert!(
        problems.is_empty(),
        "break-it patches:\n{}",
        problems.join("\n")
    );
}

/// Takes back the break-it patches a session left applied (a failed or killed run), when made
/// and when dropped, so that no later test runs a broken lab.
struct CleanTree(PathBuf);

impl CleanTree {
    fn new(root: PathBuf) -> Self {
        let guard = CleanTree(root);
        guard.restore("before the sessions");
        guard
    }

    fn restore(&self, when: &str) {
        match breakit::restore(&self.0) {
            Ok(back) if back.is_empty() => {}
            Ok(back) => eprintln!(
                "note: {when}, took back the break-it patches a session left applied: {}",
                back.iter().map(|p| shown(p)).collect::<Vec<_>>().join(", ")
            ),
            Err(e) => eprintln!("WARNING: {when}, taking back the break-it patches: {e:#}"),
        }
    }
}

impl Drop for CleanTree {
    fn drop(&mut self) {
        self.restore("after the sessions");
    }
}

#[test]
fn book_sessions_match() {
    let src = book_src();
    if !src.is_dir() {
        eprintln!("note: {} does not exist; no sessions to run", shown(&src));
        return;
    }
    let filter = std::env::var("DOCKYARD_BOOKTEST_FILTER").unwrap_or_default();
    let mut sessions: Vec<Session> = Vec::new();
    for file in markdown_files(&src).expect("listing book/src") {
        if !shown(&file).contains(&filter) {
            continue;
        }
        let text = fs::read_to_string(&file).unwrap_or_else(|e| panic!("reading {file:?}: {e}"));
        match parse_sessions(&file, &text) {
            Ok(found) => sessions.extend(found),
            Err(e) => panic!("{}:{}: {}", shown(&e.file), e.line, e.message),
        }
    }
    if sessions.is_empty() {
        eprintln!("note: no `console` sessions in {}", shown(&src));
        return;
    }

    if !nix::unistd::geteuid().is_root() {
        if std::env::var_os("DOCKYARD_SKIP_PRIVILEGED").is_some_and(|v| v == "1") {
            eprintln!(
                "SKIPPED: {} book session(s) need root; DOCKYARD_SKIP_PRIVILEGED=1 is set",
                sessions.len()
            );
            return;
        }
        panic!(
            "the book's {} shell session(s) need root (namespaces, mounts, cgroups): \
             run `sudo -E cargo test -p dockyard-e2e --test book`, \
             or set DOCKYARD_SKIP_PRIVILEGED=1 to skip them",
            sessions.len()
        );
    }

    let cfg = RunConfig::for_workspace().expect("reading the booktest settings");
    // Break-it sessions patch a lab and rebuild it; whatever a failed run left patched goes back.
    let _clean = CleanTree::new(workspace_root());
    // By default the whole book runs in ONE shell, in the order of SUMMARY.md, as a learner
    // types it into one terminal from start to end (which also compares every command's
    // output); `DOCKYARD_BOOKTEST_MODE=chapters` gives each file a shell of its own (to tell a
    // chapter's leak from the one before it), `blocks` each block (a leak from a plain
    // mismatch).
    let mode = std::env::var("DOCKYARD_BOOKTEST_MODE").unwrap_or_default();
    let per_block = mode == "blocks";
    let per_chapter = mode == "chapters";
    let order = summary_order(&src);
    let rank = |file: &Path| {
        order
            .iter()
            .position(|f| file.ends_with(f))
            .unwrap_or(order.len())
    };
    // A stable sort: a file's blocks keep their order; files not in SUMMARY.md go last.
    sessions.sort_by_key(|s| rank(&s.file));
    let mut report = String::new();
    let mut failed = 0;
    let mut chapters: Vec<Vec<Session>> = Vec::new();
    for session in sessions.iter().cloned() {
        match chapters.last_mut() {
            Some(chapter) if !per_block && (!per_chapter || chapter[0].file == session.file) => {
                chapter.push(session)
            }
            _ => chapters.push(vec![session]),
        }
    }
    for chapter in &chapters {
        let started = std::time::Instant::now();
        let commands: usize = chapter.iter().map(|s| s.commands.len()).sum();
        let mismatches = if per_block {
            check_session(&chapter[0], &cfg)
        } else {
            check_chapter(chapter, &cfg)
        }
        .unwrap_or_else(|e| panic!("{}:{}: {e:#}", shown(&chapter[0].file), chapter[0].line));
        eprintln!(
            "ran {}:{} ({} block(s), {commands} commands) in {:.1}s",
            shown(&chapter[0].file),
            chapter[0].line,
            chapter.len(),
            started.elapsed().as_secs_f64()
        );
        for mut m in mismatches {
            failed += 1;
            m.file = PathBuf::from(shown(&m.file));
            report.push_str(&m.to_string());
            report.push('\n');
        }
    }
    if failed > 0 {
        let bins = bin_dir(&workspace_root());
        let note = if bins.is_dir() {
            String::new()
        } else {
            format!(
                "note: {} (first on PATH) does not exist; did you run `cargo build --workspace`? \
                 (DOCKYARD_BIN_DIR overrides it)\n",
                bins.display()
            )
        };
        panic!(
            "{failed} problem(s) in {} session(s): output that differs from the book, or a block \
             that leaves the learner's terminal changed:\n\n{report}{note}",
            sessions.len()
        );
    }
}
