//! The architecture that issue 16 asks for, guarded by reading the source
//! tree: nothing here builds or runs anything but `cargo metadata --no-deps`,
//! and nothing needs root.
//!
//! Dockyard is a curriculum: lab N builds on the labs before it, and the
//! engine reuses the labs instead of re-implementing them. That stays true
//! only while the code says so, so each rule below is one test, and a
//! failing test lists every offender (file and line), not just the first:
//!
//! - **No re-exports of another lab.** `pub use labNN_x` makes a lab look as
//!   if it builds on another when it only passes it through; a crate that
//!   needs lab 01 depends on lab 01.
//! - **No chained paths.** `labNN_x::labMM_y::...` reaches a lab through
//!   another one (`grep -rE 'lab[0-9]+_\w+::lab[0-9]+_'` finds them).
//! - **The dependency graph is the declared one**, [`LAB_DEPENDENCIES`], as
//!   `cargo tree -p labNN-x --edges normal --depth 1` shows it.
//! - **Small pieces.** No function over [`MAX_FUNCTION_LINES`] lines and no
//!   source file over [`MAX_FILE_LINES`].
//! - **The engine orchestrates; the labs touch the kernel.** No mount(2),
//!   clone(2), setns(2), unshare(2), pivot_root(2) or chroot(2) in
//!   engine/src, and no write of a cgroup file or of a user namespace's map.
//! - **No import circle** between the engine's top-level modules.
//! - **No name collisions**: no engine module is named like a module of a
//!   lab or of the monitor (three `attach` modules that teach three things
//!   are one name too many).
//!
//! The tree is read once, with a small lexer ([`mask`]) that blanks comments
//! and string and char literals, so that a `{` in a string or a `mount(` in
//! a doc comment neither counts nor hides anything.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use dockyard_e2e::fixtures::workspace_root;
use regex_lite::{Captures, Regex};
use serde_json::Value;

/// Each lab's normal (non-dev) dependencies on other workspace crates: the
/// real graph of the curriculum. The README and the book's introduction
/// draw the same graph; change them together with this table.
const LAB_DEPENDENCIES: &[(&str, &[&str])] = &[
    ("lab01-chroot", &[]),
    ("lab02-namespaces", &["lab01-chroot"]),
    ("lab03-cgroups", &["lab02-namespaces"]),
    // Its CLI's `run` only: the image store and overlay mounts use no lab.
    (
        "lab04-overlay",
        &["lab01-chroot", "lab02-namespaces", "lab03-cgroups"],
    ),
    // Its CLI only: the library (veth, bridge, IPAM, NAT) uses no lab.
    ("lab05-netns-veth", &["lab02-namespaces"]),
    (
        "lab06-dockerfile",
        &[
            "lab01-chroot",
            "lab02-namespaces",
            "lab03-cgroups",
            "lab04-overlay",
        ],
    ),
];

/// The longest function issue 16 allows (tests aside), in lines from the
/// line of `fn` to the line of its closing brace.
const MAX_FUNCTION_LINES: usize = 150;

/// The longest source file issue 16 allows, in lines.
const MAX_FILE_LINES: usize = 1200;

// --- the checks ----------------------------------------------------------------

#[test]
fn no_crate_re_exports_a_lab() {
    let re = Pattern::new(&["pub"], r"pub\s+use\s+(?:::\s*)?(?:\{\s*)?lab\d\d_\w*");
    let mut offenders = Vec::new();
    for dir in ["labs", "engine", "tools", "monitor", "runtime"] {
        for src in sources_under(dir) {
            for (at, caps) in re.captures(&src.code) {
                offenders.push(src.at(at, &caps[0]));
            }
        }
    }
    assert_none(
        "`pub use labNN_...` re-exports another lab: depend on that lab where it is used",
        offenders,
    );
}

#[test]
fn no_path_reaches_a_lab_through_another() {
    // In the raw text, comments and strings too: a doc comment that spells
    // a chained path teaches it.
    let re = Pattern::new(&["lab"], r"lab\d\d_\w+\s*::\s*lab\d\d_\w*");
    let mut offenders = Vec::new();
    for src in tree() {
        for (at, caps) in re.captures(&src.text) {
            offenders.push(src.at(at, &caps[0]));
        }
    }
    assert_none(
        "a chained `labNN_x::labMM_y` path: use lab MM directly",
        offenders,
    );
}

#[test]
fn each_lab_depends_on_exactly_the_labs_it_uses() {
    let metadata = cargo_metadata();
    let packages = metadata["packages"].as_array().expect("packages");
    let workspace: BTreeSet<&str> = packages.iter().filter_map(|p| p["name"].as_str()).collect();
    let expected: BTreeMap<&str, BTreeSet<&str>> = LAB_DEPENDENCIES
        .iter()
        .map(|(name, deps)| (*name, deps.iter().copied().collect()))
        .collect();
    let mut offenders = Vec::new();
    for name in expected.keys().filter(|n| !workspace.contains(*n)) {
        offenders.push(format!(
            "{name}: in LAB_DEPENDENCIES but not in the workspace"
        ));
    }
    for package in packages {
        let name = package["name"].as_str().unwrap_or_default();
        if lab_crate(&name.replace('-', "_")).is_none() {
            continue;
        }
        // Normal and build dependencies: all but the dev-dependencies,
        // which tests may take freely.
        let actual: BTreeSet<&str> = package["dependencies"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|d| d["kind"].as_str() != Some("dev"))
            .filter_map(|d| d["name"].as_str())
            .filter(|d| workspace.contains(d))
            .collect();
        match expected.get(name) {
            None => offenders.push(format!(
                "{name}: not in LAB_DEPENDENCIES (it depends on {actual:?})"
            )),
            Some(want) if *want != actual => {
                let extra: Vec<_> = actual.difference(want).collect();
                let missing: Vec<_> = want.difference(&actual).collect();
                offenders.push(format!(
                    "{name}: depends on {actual:?}, the graph says {want:?} \
                     (not in the graph: {extra:?}; in the graph, not depended on: {missing:?})"
                ));
            }
            Some(_) => {}
        }
    }
    assert_none(
        "a lab's dependencies differ from LAB_DEPENDENCIES (the graph the README and book draw)",
        offenders,
    );
}

#[test]
fn no_function_is_over_150_lines() {
    let fn_re = Pattern::new(&["fn"], r"fn\s+([A-Za-z_][A-Za-z0-9_]*)");
    let mut dirs = vec![
        "engine/src".to_string(),
        "monitor/src".to_string(),
        "runtime/src".to_string(),
    ];
    dirs.extend(lab_dirs().iter().map(|d| format!("{}/src", rel(d))));
    let mut offenders = Vec::new();
    for dir in dirs {
        for src in non_test_sources_under(&dir) {
            for (start, caps) in fn_re.captures(&src.code) {
                if src.in_test_module(start) {
                    continue;
                }
                let code = src.code.as_bytes();
                let Some(open) = body_of(code, start + caps[0].len()) else {
                    continue; // a declaration: `fn f();`
                };
                let Some(close) = matching_brace(code, open) else {
                    continue;
                };
                let lines = src.line(close) - src.line(start) + 1;
                if lines > MAX_FUNCTION_LINES {
                    offenders.push(src.at(start, &format!("fn {} is {lines} lines", &caps[1])));
                }
            }
        }
    }
    assert_none(
        &format!(
            "a function over {MAX_FUNCTION_LINES} lines in engine/src, labs/*/src, monitor/src or runtime/src \
             (#[cfg(test)] modules aside)"
        ),
        offenders,
    );
}

#[test]
fn no_source_file_is_over_1200_lines() {
    let mut offenders = Vec::new();
    for dir in [
        "engine", "labs", "monitor", "probe", "runtime", "tools", "tests",
    ] {
        for src in sources_under(dir) {
            let lines = src.text.lines().count();
            if lines > MAX_FILE_LINES {
                offenders.push(format!("{}: {lines} lines", rel(&src.path)));
            }
        }
    }
    assert_none(
        &format!("a source file over {MAX_FILE_LINES} lines"),
        offenders,
    );
}

/// The rule: in engine/src (its `#[cfg(test)]` modules aside), no
/// - `nix::mount::...` or `nix::sched::...` item but the flag sets
///   `MsFlags`, `MntFlags` and `CloneFlags` (naming namespaces or mount
///   options describes a container; calling mount(2) or unshare(2) makes one);
/// - `libc::` mount, umount, clone, unshare, setns, pivot_root or chroot, nor
///   their `SYS_` numbers;
/// - call `setns(`, `unshare(`, `pivot_root(`, `chroot(`, `mount(` or
///   `umount(`/`umount2(`, unless it is a method (`x.mount(...)`) or the
///   function comes from a lab: its path starts with a lab crate
///   (`lab01_chroot::pivot_root(...)`) or an alias of one, or the file
///   imports that name from a lab (`use lab02_namespaces::{unshare, ...};`).
#[test]
fn the_engine_makes_no_namespace_mount_or_root_syscall() {
    let nix = Pattern::new(
        &["nix"],
        r"nix\s*::\s*(?:mount|sched)\s*::\s*(\{[^}]*\}|[A-Za-z_]\w*)",
    );
    let libc = Pattern::new(
        &["libc"],
        r"libc\s*::\s*(?:SYS_)?(?:mount|umount2?|clone3?|unshare|setns|pivot_root|chroot)\b",
    );
    let names = [
        "setns",
        "unshare",
        "pivot_root",
        "chroot",
        "mount",
        "umount",
    ];
    let call = Pattern::new(
        &names,
        r"(setns|unshare|pivot_root|chroot|mount|umount2?)\s*\(",
    );
    let flags = ["MsFlags", "MntFlags", "CloneFlags", "self"];
    let mut offenders = BTreeSet::new();
    for src in non_test_sources_under("engine/src") {
        let labs = LabImports::of(src);
        for (at, caps) in nix.captures(&src.code) {
            let calls = caps[1]
                .trim_matches(|c| c == '{' || c == '}')
                .split(',')
                .filter_map(|i| i.split_whitespace().next())
                .any(|i| !flags.contains(&i));
            if calls && !src.in_test_module(at) {
                offenders.insert(src.at(at, &caps[0]));
            }
        }
        for (at, caps) in libc.captures(&src.code) {
            if !src.in_test_module(at) {
                offenders.insert(src.at(at, &caps[0]));
            }
        }
        for (at, caps) in call.captures(&src.code) {
            if !src.in_test_module(at) && !labs.leaves_alone(&src.code, at, &caps[1]) {
                offenders.insert(src.at(at, &caps[0]));
            }
        }
    }
    assert_none(
        "the engine makes a kernel call that a lab teaches (mount, clone, setns, unshare, \
         pivot_root, chroot): call the lab instead",
        offenders.into_iter().collect(),
    );
}

/// The rule, simple on purpose: in engine/src (its `#[cfg(test)]` modules
/// aside), a string literal that names a cgroup control file (`cgroup.procs`,
/// `tasks`, `memory.max`, `cpu.cfs_quota_us`, `freezer.state`, ...: the
/// whole literal or its last `/` component) or a user namespace's map
/// (`uid_map`, `gid_map`, `setgroups`) may not stand within two lines of a
/// write: `write(` (`fs::write`, `.write(`), `write_all(`, `OpenOptions` or
/// `File::create`. Reading such a file (`stats`, `top`) is the engine's
/// business; writing one is lab 03's (cgroups) or lab 02's (id maps).
#[test]
fn the_engine_writes_no_cgroup_or_id_map_file() {
    let file = Regex::new(
        r"^(?:cgroup\.[a-z_.]+|tasks|notify_on_release|release_agent|uid_map|gid_map|setgroups|(?:memory|memsw|cpu|cpuacct|cpuset|pids|io|blkio|hugetlb|freezer|devices|net_cls|net_prio|rdma|misc)\.[a-z0-9_.]+)$",
    )
    .unwrap();
    let write =
        Regex::new(r"\b(?:write|write_all)\s*\(|\bOpenOptions\b|\bFile\s*::\s*create\b").unwrap();
    let mut offenders = Vec::new();
    for src in non_test_sources_under("engine/src") {
        let lines: Vec<&str> = src.code.lines().collect();
        for lit in &src.literals {
            let last = lit.text.rsplit('/').next().unwrap_or_default();
            if !file.is_match(last) || src.in_test_module(lit.offset) {
                continue;
            }
            let line = src.line(lit.offset);
            let near = line.saturating_sub(3)..(line + 2).min(lines.len());
            if lines[near].iter().any(|l| write.is_match(l)) {
                offenders.push(src.at(lit.offset, &format!("\"{}\" next to a write", lit.text)));
            }
        }
    }
    assert_none(
        "the engine writes a cgroup file or an id map itself: let lab 03 (cgroups) or lab 02 \
         (user namespaces) do it",
        offenders,
    );
}

/// The graph: an edge A -> B for each `crate::B` (or `crate::{B, ...}`) in
/// module A, and each `super::B` that climbs to the crate root; a module is
/// a file or folder directly under engine/src. `#[cfg(test)]` modules are
/// left out: a test may use any module.
#[test]
fn the_engines_top_level_modules_import_no_circle() {
    let src_dir = workspace_root().join("engine/src");
    let modules = top_level_modules(&src_dir);
    let crate_ref = Pattern::new(&["crate"], r"crate\s*::\s*(\{[^}]*\}|[A-Za-z_]\w*)");
    let super_ref = Pattern::new(&["super"], r"((?:super\s*::\s*)+)(\{[^}]*\}|[A-Za-z_]\w*)");
    // from -> to -> the first place that says so
    let mut edges: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for src in non_test_sources_under("engine/src") {
        let path = module_path(&src_dir, &src.path);
        let Some(from) = path.first() else {
            continue; // the crate root: main.rs or lib.rs
        };
        let mut refs = Vec::new();
        for (at, caps) in crate_ref.captures(&src.code) {
            refs.extend(
                first_names(caps.get(1).map_or("", |m| m.as_str()))
                    .into_iter()
                    .map(|n| (at, n)),
            );
        }
        for (at, caps) in super_ref.captures(&src.code) {
            // Back at the crate root: a sibling of this top-level module.
            if caps[1].matches("super").count() >= path.len() {
                refs.extend(
                    first_names(caps.get(2).map_or("", |m| m.as_str()))
                        .into_iter()
                        .map(|n| (at, n)),
                );
            }
        }
        for (at, to) in refs {
            if to != from && modules.contains(to) && !src.in_test_module(at) {
                edges
                    .entry(from.clone())
                    .or_default()
                    .entry(to.to_string())
                    .or_insert_with(|| src.at(at, ""));
            }
        }
    }
    let offenders = cycles(&edges)
        .into_iter()
        .map(|cycle| {
            let steps: Vec<String> = cycle
                .windows(2)
                .map(|p| format!("{} -> {} ({})", p[0], p[1], edges[&p[0]][&p[1]]))
                .collect();
            format!("{}\n      {}", cycle.join(" -> "), steps.join("\n      "))
        })
        .collect();
    assert_none(
        "an import circle between engine/src's top-level modules",
        offenders,
    );
}

#[test]
fn no_engine_module_is_named_like_a_module_of_another_crate() {
    let root = workspace_root();
    let engine = top_level_modules(&root.join("engine/src"));
    let mut others: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut crates = lab_dirs();
    crates.push(root.join("monitor"));
    for dir in crates {
        for name in top_level_modules(&dir.join("src")) {
            others
                .entry(name.clone())
                .or_default()
                .push(format!("{}'s `{name}`", rel(&dir)));
        }
    }
    let offenders = engine
        .iter()
        .filter_map(|name| {
            others
                .get(name)
                .map(|o| format!("engine's `{name}` is also {}", o.join(", ")))
        })
        .collect();
    assert_none(
        "an engine module has the name of a module in a lab or the monitor: name it for what \
         the engine does with it",
        offenders,
    );
}

/// The lexer the checks read the tree with: what it blanks and what it keeps.
#[test]
fn the_lexer_blanks_comments_and_literals_but_not_code() {
    let src = r##"fn f<'a>(x: &'a str) -> char { // a } in a comment
    let s = "a { in a string \" and \\";
    let r = r#"a "{" in a raw string"#;
    let c = '{'; let q = '\''; let b = b'}'; let e = 'é'; /* a { /* nested */ } */
    x.len(); '}'
}"##;
    let (code, literals) = mask(src);
    assert_eq!(code.len(), src.len());
    assert_eq!(code.lines().count(), src.lines().count());
    assert_eq!(code.matches('{').count(), 1, "{code}");
    assert_eq!(code.matches('}').count(), 1, "{code}");
    assert!(code.contains("fn f<'a>(x: &'a str) -> char {"), "{code}");
    assert!(code.contains("x.len();"), "{code}");
    let texts: Vec<&str> = literals.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(
        texts,
        [r#"a { in a string \" and \\"#, r#"a "{" in a raw string"#]
    );
    assert_eq!(line_of(src, literals[1].offset), 3);
    let open = code.find('{').unwrap();
    assert_eq!(matching_brace(code.as_bytes(), open), code.rfind('}'));
}

// --- reading the tree ----------------------------------------------------------

/// Panic with every offender, one a line, if there are any.
fn assert_none(rule: &str, offenders: Vec<String>) {
    assert!(
        offenders.is_empty(),
        "{rule}: {} offender(s)\n  {}\n",
        offenders.len(),
        offenders.join("\n  ")
    );
}

/// A path relative to the workspace root, for messages.
fn rel(path: &Path) -> String {
    let root = workspace_root();
    path.strip_prefix(&root)
        .unwrap_or(path)
        .display()
        .to_string()
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset].matches('\n').count() + 1
}

/// The lab crate a name starts with (`lab04_overlay` -> `lab04`), if any.
fn lab_crate(name: &str) -> Option<&str> {
    let b = name.as_bytes();
    let lab = b.len() > 6
        && name.starts_with("lab")
        && b[3..5].iter().all(u8::is_ascii_digit)
        && b[5] == b'_';
    lab.then(|| &name[..5])
}

/// Every `.rs` file under `dir`, sorted, skipping build output (`target`),
/// hidden folders, the base image (`images`) and symbolic links.
fn rs_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let Ok(kind) = e.file_type() else { continue };
            if kind.is_dir() {
                if !name.starts_with('.') && name != "target" && name != "images" {
                    stack.push(e.path());
                }
            } else if kind.is_file() && name.ends_with(".rs") {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

/// Every `.rs` file of the workspace, read and lexed once for all the tests.
fn tree() -> &'static [Source] {
    static TREE: OnceLock<Vec<Source>> = OnceLock::new();
    TREE.get_or_init(|| {
        rs_files(&workspace_root())
            .iter()
            .map(|p| Source::read(p))
            .collect()
    })
}

/// The files under `dir` (relative to the workspace root).
fn sources_under(dir: &str) -> Vec<&'static Source> {
    let dir = workspace_root().join(dir);
    tree().iter().filter(|s| s.path.starts_with(&dir)).collect()
}

/// The files under `dir`, but those of `#[cfg(test)] mod x;` modules (x.rs
/// or x/mod.rs, and everything under x/).
fn non_test_sources_under(dir: &str) -> Vec<&'static Source> {
    let all = sources_under(dir);
    let mut tests = Vec::new();
    for src in &all {
        let parent = src.path.parent().unwrap_or(Path::new(""));
        let stem = src.path.file_stem().unwrap_or_default().to_string_lossy();
        let children = if ["main", "lib", "mod"].contains(&stem.as_ref()) {
            parent.to_path_buf()
        } else {
            parent.join(stem.as_ref())
        };
        for (name, _) in src
            .test_modules
            .iter()
            .filter(|(_, inline)| inline.is_none())
        {
            tests.push((children.join(format!("{name}.rs")), children.join(name)));
        }
    }
    all.into_iter()
        .filter(|s| {
            !tests
                .iter()
                .any(|(file, dir)| s.path == *file || s.path.starts_with(dir))
        })
        .collect()
}

/// labs/01-chroot, labs/02-namespaces, ...
fn lab_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(workspace_root().join("labs"))
        .expect("labs/")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("Cargo.toml").is_file())
        .collect();
    dirs.sort();
    dirs
}

/// `cargo metadata --format-version 1 --no-deps` of the workspace, with the
/// cargo that runs this test (`$CARGO`), else the one that built it, else
/// the one on PATH.
fn cargo_metadata() -> Value {
    let cargo = std::env::var_os("CARGO")
        .map(PathBuf::from)
        .or_else(|| Some(PathBuf::from(env!("CARGO"))).filter(|p| p.exists()))
        .unwrap_or_else(|| PathBuf::from("cargo"));
    let out = Command::new(&cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .arg("--manifest-path")
        .arg(workspace_root().join("Cargo.toml"))
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", cargo.display()));
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON")
}

/// A file's module path under a crate's `src`: `runtime.rs` is `[runtime]`,
/// `commands/mod.rs` is `[commands]`, `commands/network.rs` is
/// `[commands, network]`, and the crate root (`main.rs`, `lib.rs`) is `[]`.
fn module_path(src_dir: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src_dir).unwrap_or(file);
    let mut parts: Vec<String> = rel
        .with_extension("")
        .iter()
        .map(|p| p.to_string_lossy().to_string())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    if parts.len() == 1 && (parts[0] == "main" || parts[0] == "lib") {
        parts.clear();
    }
    parts
}

/// A crate's top-level modules: the files and folders directly under its
/// `src` (`main.rs`, `lib.rs` and `bin/` aside), and the `mod`s its roots
/// declare, but its `#[cfg(test)]` ones.
fn top_level_modules(src_dir: &Path) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for e in std::fs::read_dir(src_dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Ok(kind) = e.file_type() else { continue };
        if kind.is_dir() && name != "bin" && !name.starts_with('.') {
            names.insert(name);
        } else if let Some(stem) = name.strip_suffix(".rs") {
            if stem != "main" && stem != "lib" {
                names.insert(stem.to_string());
            }
        }
    }
    let decl = Pattern::new(&["mod"], r"mod\s+([A-Za-z_]\w*)\s*[;{]");
    let roots: Vec<&Source> = tree()
        .iter()
        .filter(|s| s.path == src_dir.join("main.rs") || s.path == src_dir.join("lib.rs"))
        .collect();
    for src in &roots {
        let depth = brace_depths(src.code.as_bytes());
        for (at, caps) in decl.captures(&src.code) {
            if depth[at] == 0 {
                names.insert(caps[1].to_string());
            }
        }
    }
    for src in roots {
        for (name, _) in &src.test_modules {
            names.remove(name);
        }
    }
    names
}

/// The first name of each item of `{a::b, c as d}` (or of a lone `a`).
fn first_names(items: &str) -> Vec<&str> {
    items
        .trim_matches(|c| c == '{' || c == '}')
        .split(',')
        .filter_map(|i| {
            i.split(|c: char| c == ':' || c.is_whitespace())
                .find(|p| !p.is_empty())
        })
        .collect()
}

/// The offset of the `{` that opens the body of the function whose
/// signature goes on from `from`, or `None` for a declaration (`;` first).
/// Parentheses and brackets are skipped: `-> [u8; 4]` is no declaration.
fn body_of(code: &[u8], from: usize) -> Option<usize> {
    let mut depth = 0i32;
    for (i, &b) in code.iter().enumerate().skip(from) {
        match b {
            b'(' | b'[' => depth += 1,
            b')' | b']' => depth -= 1,
            b';' if depth == 0 => return None,
            b'{' if depth == 0 => return Some(i),
            _ => {}
        }
    }
    None
}

/// The offset of the `}` that closes the `{` at `open`.
fn matching_brace(code: &[u8], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, &b) in code.iter().enumerate().skip(open) {
        match b {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// The brace depth at each offset of `code`.
fn brace_depths(code: &[u8]) -> Vec<usize> {
    let mut depth = 0usize;
    code.iter()
        .map(|&b| {
            let at = depth;
            match b {
                b'{' => depth += 1,
                b'}' => depth = depth.saturating_sub(1),
                _ => {}
            }
            at
        })
        .collect()
}

/// Every elementary cycle of a small directed graph, each from its smallest
/// node back to it: `[a, b, a]`.
fn cycles(edges: &BTreeMap<String, BTreeMap<String, String>>) -> Vec<Vec<String>> {
    fn walk(
        edges: &BTreeMap<String, BTreeMap<String, String>>,
        path: &mut Vec<String>,
        found: &mut Vec<Vec<String>>,
    ) {
        let (start, last) = (path[0].clone(), path[path.len() - 1].clone());
        for next in edges.get(&last).into_iter().flat_map(|m| m.keys()) {
            if *next == start {
                found.push([&path[..], std::slice::from_ref(&start)].concat());
            } else if *next > start && !path.contains(next) {
                path.push(next.clone());
                walk(edges, path, found);
                path.pop();
            }
        }
    }
    let mut found = Vec::new();
    for start in edges.keys() {
        walk(edges, &mut vec![start.clone()], &mut found);
    }
    found
}

/// A regex that runs only where a plain word occurs. regex-lite is slow in
/// a debug build (seconds over the whole tree); `str::match_indices` is not,
/// so it finds each needle, at a word boundary, and the regex, anchored
/// there, looks at the next few hundred bytes.
struct Pattern {
    needles: Vec<&'static str>,
    re: Regex,
}

impl Pattern {
    /// `re` must start with one of `needles`.
    fn new(needles: &[&'static str], re: &str) -> Pattern {
        Pattern {
            needles: needles.to_vec(),
            re: Regex::new(&format!("^(?:{re})")).unwrap(),
        }
    }

    /// The offset and captures of every match in `text`, in order.
    fn captures<'t>(&self, text: &'t str) -> Vec<(usize, Captures<'t>)> {
        let word = |c: char| c.is_alphanumeric() || c == '_';
        let mut starts: Vec<usize> = self
            .needles
            .iter()
            .flat_map(|n| text.match_indices(n).map(|(i, _)| i))
            .filter(|&i| !text[..i].ends_with(word))
            .collect();
        starts.sort_unstable();
        starts.dedup();
        starts
            .into_iter()
            .filter_map(|i| {
                let mut end = (i + 2000).min(text.len());
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                self.re.captures(&text[i..end]).map(|c| (i, c))
            })
            .collect()
    }
}

/// What a file takes from the labs, by its `use labNN_x::...;` lines.
struct LabImports {
    /// Every name those lines mention.
    names: BTreeSet<String>,
    /// The aliases they give lab crates (`use lab02_namespaces as ns;`).
    aliases: BTreeSet<String>,
}

impl LabImports {
    fn of(src: &Source) -> LabImports {
        let stmt = Pattern::new(&["use"], r"use\s+(?:::\s*)?lab\d\d_[^;]*;");
        let alias = Regex::new(r"\bas\s+([A-Za-z_]\w*)").unwrap();
        let word = Regex::new(r"[A-Za-z_]\w*").unwrap();
        let mut imports = LabImports {
            names: BTreeSet::new(),
            aliases: BTreeSet::new(),
        };
        for (_, caps) in stmt.captures(&src.code) {
            let text = &caps[0];
            imports
                .names
                .extend(word.find_iter(text).map(|w| w.as_str().to_string()));
            imports
                .aliases
                .extend(alias.captures_iter(text).map(|c| c[1].to_string()));
        }
        imports
    }

    /// Whether the call of `name` at `at` is left alone: a method
    /// (`x.mount(`), a path from a lab crate or an alias of one, a bare name
    /// imported from a lab, or a `nix::`/`libc::` path (their own rules
    /// report those).
    fn leaves_alone(&self, code: &str, at: usize, name: &str) -> bool {
        let before = &code[..at];
        let path_start = before
            .rfind(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .map_or(0, |i| i + 1);
        let path = &before[path_start..];
        if path.is_empty() {
            return before.ends_with('.') || self.names.contains(name);
        }
        let first = path.split("::").find(|p| !p.is_empty()).unwrap_or("");
        lab_crate(first).is_some()
            || self.aliases.contains(first)
            || ["nix", "libc"].contains(&first)
    }
}

// --- a small Rust lexer ----------------------------------------------------------

/// A string literal: its text between the quotes (escapes as written), and
/// the byte offset where that text starts.
struct Literal {
    text: String,
    offset: usize,
}

/// A source file, read and lexed.
struct Source {
    path: PathBuf,
    text: String,
    /// `text` with every comment and string and char literal blanked out:
    /// the same length, the same lines.
    code: String,
    literals: Vec<Literal>,
    /// The byte offset where each line starts.
    line_starts: Vec<usize>,
    /// The `#[cfg(test)]` modules: each name, and the byte range of its
    /// block if it is inline (`mod tests { ... }`), `None` for a file.
    test_modules: Vec<(String, Option<Range<usize>>)>,
}

impl Source {
    fn read(path: &Path) -> Source {
        let text =
            std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let (code, literals) = mask(&text);
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        let test_mod = Pattern::new(
            &["#"],
            r"#\[cfg\(test\)\]\s*(?:#\[[^\]]*\]\s*)*(?:pub(?:\([^)]*\))?\s+)?mod\s+([A-Za-z_]\w*)\s*([{;])",
        );
        let test_modules = test_mod
            .captures(&code)
            .into_iter()
            .map(|(at, c)| {
                let open = at + c[0].len() - 1;
                let block = (&c[2] == "{")
                    .then(|| matching_brace(code.as_bytes(), open).map(|close| at..close + 1))
                    .flatten();
                (c[1].to_string(), block)
            })
            .collect();
        Source {
            path: path.to_path_buf(),
            text,
            code,
            literals,
            line_starts,
            test_modules,
        }
    }

    /// The line (from 1) of a byte offset.
    fn line(&self, offset: usize) -> usize {
        self.line_starts.partition_point(|&s| s <= offset)
    }

    /// `path:line: what`, for a message.
    fn at(&self, offset: usize, what: &str) -> String {
        let place = format!("{}:{}", rel(&self.path), self.line(offset));
        match what.trim() {
            "" => place,
            what => format!("{place}: {what}"),
        }
    }

    /// Whether `offset` is inside an inline `#[cfg(test)] mod`.
    fn in_test_module(&self, offset: usize) -> bool {
        self.test_modules
            .iter()
            .filter_map(|(_, block)| block.as_ref())
            .any(|r| r.contains(&offset))
    }
}

/// Blank out the comments and the string and char literals of Rust source
/// (raw, byte and C strings too; a lifetime like `'a` is code), byte for
/// byte so that offsets stay, and collect the string literals. Every
/// delimiter is ASCII, so working on bytes is safe: a blanked span always
/// covers whole characters.
fn mask(src: &str) -> (String, Vec<Literal>) {
    let b = src.as_bytes();
    let ident = |i: usize| {
        i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_' || b[i - 1] >= 0x80)
    };
    let mut code = b.to_vec();
    // (start, end) of each string literal's text
    let mut strings: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        // (end, the text's span if a string) of a literal or comment at i
        let token = match b[i] {
            b'/' if at(b, i + 1) == b'/' => {
                Some((src[i..].find('\n').map_or(b.len(), |p| i + p), None))
            }
            b'/' if at(b, i + 1) == b'*' => Some((block_comment_end(b, i), None)),
            b'"' => {
                let end = string_end(b, i);
                Some((end, Some((i + 1, end - 1))))
            }
            b'\'' => char_end(b, i).map(|end| (end, None)),
            b'r' | b'b' | b'c' if !ident(i) => prefixed_literal(b, i),
            _ => None,
        };
        let Some((end, text)) = token else {
            i += 1;
            continue;
        };
        for x in code.iter_mut().take(end).skip(i).filter(|x| **x != b'\n') {
            *x = b' ';
        }
        strings.extend(text);
        i = end.max(i + 1);
    }
    let code = String::from_utf8(code).expect("only whole characters are blanked");
    let literals = strings
        .into_iter()
        .map(|(s, e)| Literal {
            text: src[s..e.max(s)].to_string(),
            offset: s,
        })
        .collect();
    (code, literals)
}

/// The byte at `i`, or NUL past the end.
fn at(b: &[u8], i: usize) -> u8 {
    b.get(i).copied().unwrap_or(0)
}

/// The end of the (possibly nested) block comment that starts at `i`.
fn block_comment_end(b: &[u8], i: usize) -> usize {
    let (mut depth, mut j) = (1, i + 2);
    while j < b.len() && depth > 0 {
        if b[j] == b'/' && at(b, j + 1) == b'*' {
            depth += 1;
            j += 2;
        } else if b[j] == b'*' && at(b, j + 1) == b'/' {
            depth -= 1;
            j += 2;
        } else {
            j += 1;
        }
    }
    j.min(b.len())
}

/// The end (after the closing quote) of the `"..."` string that starts at `i`.
fn string_end(b: &[u8], i: usize) -> usize {
    let mut j = i + 1;
    while j < b.len() {
        match b[j] {
            b'\\' => j += 2,
            b'"' => return j + 1,
            _ => j += 1,
        }
    }
    b.len()
}

/// The end of the char literal at `i` (`'x'`, `'é'`, `'\n'`, `'\u{7f}'`),
/// or `None` for a lifetime or a label (`'a`, `'static`).
fn char_end(b: &[u8], i: usize) -> Option<usize> {
    if at(b, i + 1) == b'\\' {
        let mut j = i + 3;
        while j < b.len() && b[j] != b'\'' && b[j] != b'\n' {
            j += 1;
        }
        return Some((j + 1).min(b.len()));
    }
    // One character, of 1 to 4 bytes in UTF-8, then the closing quote.
    let len = match at(b, i + 1) {
        0xf0.. => 4,
        0xe0.. => 3,
        0xc0.. => 2,
        _ => 1,
    };
    (at(b, i + 1) != b'\'' && at(b, i + 1 + len) == b'\'').then_some(i + 2 + len)
}

/// A literal with a prefix at `i`: `b"..."`, `c"..."`, `b'x'`, `r"..."`,
/// `r#"..."#`, `br"..."`, `cr#"..."#`: its end and, for a string, its text's
/// span. `None` if `i` starts no such literal (a raw identifier `r#fn`, a
/// word that begins with r, b or c).
fn prefixed_literal(b: &[u8], i: usize) -> Option<(usize, Option<(usize, usize)>)> {
    let mut j = i;
    if b[i] == b'b' || b[i] == b'c' {
        j += 1;
        if b[i] == b'b' && at(b, j) == b'\'' {
            return char_end(b, j).map(|end| (end, None));
        }
        if at(b, j) == b'"' {
            let end = string_end(b, j);
            return Some((end, Some((j + 1, end - 1))));
        }
    }
    if at(b, j) != b'r' {
        return None;
    }
    j += 1;
    let mut hashes = 0;
    while at(b, j) == b'#' {
        hashes += 1;
        j += 1;
    }
    if at(b, j) != b'"' {
        return None;
    }
    let start = j + 1;
    for k in start..b.len() {
        if b[k] == b'"' && (1..=hashes).all(|h| at(b, k + h) == b'#') {
            return Some((k + 1 + hashes, Some((start, k))));
        }
    }
    Some((b.len(), Some((start, b.len()))))
}
