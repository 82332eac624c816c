//! The command line: exit codes and error messages as a user sees them.

use std::fs;
use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lab06-dockerfile"))
        .args(args)
        .output()
        .expect("running lab06-dockerfile")
}

fn write(dir: &tempfile::TempDir, text: &str) -> String {
    let path = dir.path().join("Dockerfile");
    fs::write(&path, text).expect("writing Dockerfile");
    path.to_string_lossy().into_owned()
}

#[test]
fn parse_prints_one_instruction_per_line_with_its_span() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        &dir,
        "# syntax=docker/dockerfile:1\nFROM busybox AS base\nRUN echo a \\\n  && echo b\nCMD [\"sh\"]\n",
    );
    let out = run(&["parse", &file]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "2-2     FROM busybox AS base\n3-4     RUN (shell) echo a   && echo b\n5-5     CMD (exec) [\"sh\"]\n"
    );
    let out = run(&["parse", "--dump", &file]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "(from \"busybox\" \"AS\" \"base\")\n(run \"echo a   && echo b\")\n(cmd \"sh\")\n"
    );
}

#[test]
fn malformed_dockerfile_names_file_line_and_problem() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(&dir, "FROM busybox\n\nENV PATH\n");
    for args in [vec!["parse", &file], vec!["parse", "--dump", &file]] {
        let out = run(&args);
        assert_eq!(out.status.code(), Some(1));
        assert!(out.stdout.is_empty());
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            format!("lab06-dockerfile: {file}:3: ENV must have two arguments\n")
        );
    }
}

#[test]
fn missing_file_is_an_error() {
    let out = run(&["parse", "/nonexistent/Dockerfile"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("lab06-dockerfile: reading /nonexistent/Dockerfile: "),
        "{err}"
    );
}

#[test]
fn build_of_a_malformed_dockerfile_names_file_and_line_and_builds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(&dir, "FROM busybox\nRUN true\nBOGUS x\n");
    let store = dir.path().join("store");
    let out = run(&[
        "build",
        "-t",
        "x",
        "--store",
        store.to_str().unwrap(),
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stdout.is_empty(), "nothing ran: {out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!("{file}:3: unknown instruction: BOGUS\n")
    );
    let index = fs::read_to_string(store.join("index.json")).unwrap();
    assert!(
        index.contains("\"manifests\":[]"),
        "no image, no tag: {index}"
    );
}

#[test]
fn build_refuses_unsupported_flags_before_building() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        &dir,
        "FROM busybox\nRUN --mount=type=cache,target=/c true\n",
    );
    let store = dir.path().join("store");
    let out = run(&[
        "build",
        "--store",
        store.to_str().unwrap(),
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with(&format!(
            "{file}:2: RUN --mount is not supported by this builder"
        )),
        "{err}"
    );
}

#[test]
fn bad_usage_exits_125() {
    assert_eq!(run(&["parse"]).status.code(), Some(125));
    assert_eq!(run(&["frobnicate"]).status.code(), Some(125));
}

#[test]
fn expand_prints_the_word_or_fails_with_exit_1() {
    let out = run(&[
        "expand",
        "-e",
        "HOME=/root",
        "-e",
        "EMPTY=",
        "${HOME}/${EMPTY:-x}/${EMPTY-y}",
    ]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "/root/x/\n");
    let out = run(&["expand", "--words", "-e", "P=1 2", "$P '3 4'"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1\n2\n3 4\n");
    let out = run(&["expand", "--escape", "`", "-e", "D=/d", r"C:\x `$D $D"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "C:\\x $D /d\n");
    let out = run(&["expand", "${X:?required}"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "lab06-dockerfile: failed to process \"${X:?required}\": X: required\n"
    );
}
