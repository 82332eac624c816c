//! The book's appendix table, generated from the tests rather than written by hand.
//!
//! `tests/notes-commands.tsv` lists every docker command form the course notes use, with
//! dockyard's status (yes, partly, not yet, no), a note, and the tests that cover it. This test
//! checks two things:
//!
//! 1. every test the registry names exists: a `#[test] fn NAME(` in a `.rs` file under `tests/` (or,
//!    for `book:FILE.md`, a chapter with `console` sessions, which `tests/book.rs` runs). A row
//!    with no test says "untested" in the table instead of borrowing one.
//! 2. the table in `book/src/appendix-commands.md`, between the `BEGIN generated` and
//!    `END generated` markers, is exactly what the registry renders. When they differ it fails
//!    with the difference and the command that rewrites the table:
//!
//! ```text
//! DOCKYARD_BLESS=1 cargo test -p dockyard-e2e --test appendix
//! ```
//!
//! The appendix's prose and its console sessions stay outside the markers, written by hand.
//! Neither part needs root, a build or the network.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use dockyard_e2e::booktest::workspace_root;

const BEGIN: &str = "<!-- BEGIN generated: from tests/notes-commands.tsv by tests/appendix.rs; \
                     DOCKYARD_BLESS=1 cargo test -p dockyard-e2e --test appendix rewrites it -->";
const END: &str = "<!-- END generated -->";
const STATUSES: [&str; 4] = ["yes", "partly", "not yet", "no"];

/// One row of the registry.
struct Row {
    line: usize,
    command: String,
    status: String,
    notes: String,
    tests: Vec<String>,
}

/// The registry's rows; a malformed line is a panic that names it.
fn registry(path: &Path) -> Vec<Row> {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path:?}: {e}"));
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let cells: Vec<&str> = line.split('\t').collect();
        let [command, status, notes, tests] = cells[..] else {
            panic!(
                "tests/notes-commands.tsv:{}: {} tab-separated columns, want 4 \
                 (command, status, notes, tests)",
                i + 1,
                cells.len()
            );
        };
        assert!(
            STATUSES.contains(&status),
            "tests/notes-commands.tsv:{}: status {status:?} is not one of {STATUSES:?}",
            i + 1
        );
        rows.push(Row {
            line: i + 1,
            command: command.trim().to_string(),
            status: status.to_string(),
            notes: notes.trim().to_string(),
            tests: tests.split_whitespace().map(str::to_string).collect(),
        });
    }
    rows
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The names of the test functions in the test sources: a `fn NAME(` with `#[test]` among the
/// attributes just above it (a helper of the same name does not count).
fn test_functions(tests: &Path) -> BTreeSet<String> {
    let mut files = Vec::new();
    rust_files(tests, &mut files);
    let mut names = BTreeSet::new();
    for file in files {
        let text = fs::read_to_string(&file).unwrap_or_default();
        let pieces: Vec<&str> = text.split("fn ").collect();
        for pair in pieces.windows(2) {
            let (before, piece) = (pair[0], pair[1]);
            let name: String = piece
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            // The attributes sit between the end of the previous item and this `fn`.
            let attrs = before.rsplit(['}', ';']).next().unwrap_or(before);
            if !name.is_empty() && piece[name.len()..].starts_with('(') && attrs.contains("#[test]")
            {
                names.insert(name);
            }
        }
    }
    names
}

/// The Markdown table the registry stands for.
fn render(rows: &[Row]) -> String {
    let mut out =
        String::from("| docker | dockyard | notes | tested by |\n| --- | --- | --- | --- |\n");
    for row in rows {
        let tests = if row.tests.is_empty() {
            "untested".to_string()
        } else {
            row.tests
                .iter()
                .map(|t| match t.strip_prefix("book:") {
                    Some(file) => format!("the sessions of [{file}]({file})"),
                    None => format!("`{t}`"),
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        out.push_str(&format!(
            "| {} | {} | {} | {tests} |\n",
            row.command, row.status, row.notes
        ));
    }
    out
}

/// A line-by-line difference, enough to see which rows changed.
fn diff(want: &str, have: &str) -> String {
    let (w, h): (Vec<&str>, Vec<&str>) = (want.lines().collect(), have.lines().collect());
    let mut out = String::new();
    for line in &h {
        if !w.contains(line) {
            out.push_str(&format!("- {line}\n"));
        }
    }
    for line in &w {
        if !h.contains(line) {
            out.push_str(&format!("+ {line}\n"));
        }
    }
    out
}

#[test]
fn every_test_the_registry_names_exists() {
    let root = workspace_root();
    let rows = registry(&root.join("tests/notes-commands.tsv"));
    assert!(
        rows.len() > 20,
        "the registry lists only {} rows",
        rows.len()
    );
    let names = test_functions(&root.join("tests"));
    let mut missing = Vec::new();
    let mut seen = BTreeSet::new();
    for row in &rows {
        if !seen.insert(row.command.clone()) {
            missing.push(format!(
                "line {}: {} is listed twice",
                row.line, row.command
            ));
        }
        for t in &row.tests {
            if let Some(file) = t.strip_prefix("book:") {
                let text = fs::read_to_string(root.join("book/src").join(file)).unwrap_or_default();
                if !text.contains("```console") {
                    missing.push(format!(
                        "line {}: {t}: book/src/{file} has no console session",
                        row.line
                    ));
                }
            } else if !names.contains(t) {
                missing.push(format!(
                    "line {} ({}): no `#[test] fn {t}(` under tests/",
                    row.line, row.command
                ));
            }
        }
        if row.status == "yes" && row.tests.is_empty() {
            eprintln!(
                "note: {} says yes but no test covers it (the table says untested)",
                row.command
            );
        }
    }
    assert!(
        missing.is_empty(),
        "tests/notes-commands.tsv names tests that do not exist (renamed? remove or fix the \
         entry):\n{}",
        missing.join("\n")
    );
}

#[test]
fn the_appendix_table_is_the_registry_rendered() {
    let root = workspace_root();
    let rows = registry(&root.join("tests/notes-commands.tsv"));
    let want = render(&rows);
    let page = root.join("book/src/appendix-commands.md");
    let text = fs::read_to_string(&page).unwrap_or_else(|e| panic!("reading {page:?}: {e}"));
    let (Some(begin), Some(end)) = (text.find(BEGIN), text.find(END)) else {
        panic!(
            "book/src/appendix-commands.md has no generated table: put the lines\n{BEGIN}\n{END}\n\
             where it goes, then run DOCKYARD_BLESS=1 cargo test -p dockyard-e2e --test appendix"
        );
    };
    assert!(begin < end, "the END marker comes before the BEGIN marker");
    let have = &text[begin + BEGIN.len()..end];
    // Blank lines around the table: without one, Markdown would read the END comment as one
    // more row.
    let framed = format!("\n\n{want}\n");
    if have == framed {
        return;
    }
    if std::env::var_os("DOCKYARD_BLESS").is_some_and(|v| v == "1") {
        let fresh = format!("{}{BEGIN}{framed}{}", &text[..begin], &text[end..]);
        fs::write(&page, fresh).unwrap_or_else(|e| panic!("writing {page:?}: {e}"));
        eprintln!("rewrote the table in book/src/appendix-commands.md");
        return;
    }
    panic!(
        "the table in book/src/appendix-commands.md is not what tests/notes-commands.tsv renders \
         (edit the registry, not the table); the difference (- in the book, + rendered):\n{}\n\
         To rewrite the table: DOCKYARD_BLESS=1 cargo test -p dockyard-e2e --test appendix",
        diff(&want, have)
    );
}
