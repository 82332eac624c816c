//! buildkit's own parser and expansion test cases, run against our parser and lexer.
//!
//! The cases live outside the project, in `../shared/conformance/buildkit-parser` (copied
//! unchanged from moby/buildkit); they are read in place, never copied here.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use lab06_dockerfile::{parse, Lexer};

fn conformance() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance")
}

fn cases() -> PathBuf {
    conformance().join("buildkit-parser")
}

/// The case directories under `dir`, sorted.
fn case_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.join("Dockerfile").is_file())
        .collect();
    dirs.sort();
    dirs
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

#[test]
fn buildkit_testfiles_dump_byte_for_byte() {
    let dirs = case_dirs(&cases().join("testfiles"));
    assert_eq!(dirs.len(), 33, "expected buildkit's 33 cases");
    let mut failures = Vec::new();
    for dir in &dirs {
        let expected = read(&dir.join("result"));
        match parse(&read(&dir.join("Dockerfile"))) {
            Ok(df) => {
                let got = df.dump();
                if got.trim_end_matches('\n') != expected.trim_end_matches('\n') {
                    failures.push(format!(
                        "{}:\n--- expected\n{expected}\n--- got\n{got}",
                        dir.display()
                    ));
                }
            }
            Err(e) => failures.push(format!("{}: rejected: {e}", dir.display())),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        dirs.len(),
        failures.join("\n")
    );
}

#[test]
fn buildkit_negative_cases_are_rejected() {
    let dirs = case_dirs(&cases().join("testfiles-negative"));
    assert_eq!(dirs.len(), 4);
    let mut messages = BTreeMap::new();
    for dir in &dirs {
        match parse(&read(&dir.join("Dockerfile"))) {
            Ok(df) => panic!("{} was accepted:\n{}", dir.display(), df.dump()),
            Err(e) => {
                let name = dir.file_name().unwrap().to_string_lossy().to_string();
                messages.insert(name, (e.line, e.message));
            }
        }
    }
    // Each is rejected for its own reason, at the right line.
    let expect = |name: &str, line: usize, text: &str| {
        let (l, m) = &messages[name];
        assert_eq!(*l, line, "{name}: {m}");
        assert!(m.contains(text), "{name}: {m}");
    };
    expect("empty_dockerfile", 1, "no instructions");
    expect("only_comments", 3, "no instructions");
    expect("env_no_value", 3, "ENV must have two arguments");
    expect("shykes-nested-json", 1, "strings only");
}

#[test]
fn buildkit_testfile_line_spans() {
    let df = parse(&read(&cases().join("testfile-line/Dockerfile"))).expect("parses");
    let spans: Vec<(usize, usize)> = df
        .instructions
        .iter()
        .map(|i| (i.start_line, i.end_line))
        .collect();
    assert_eq!(spans, [(5, 5), (11, 12), (17, 31)]);
}

#[test]
fn buildkit_expansion_cases() {
    let data: serde_json::Value =
        serde_json::from_str(&read(&cases().join("shell/envVarTest.json"))).expect("JSON");
    let env: BTreeMap<String, String> = data["env"]
        .as_object()
        .expect("env")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().expect("string").to_string()))
        .collect();
    assert_eq!(env["KOREAN"], "한국어");
    let escape = data["escape"]
        .as_str()
        .and_then(|s| s.chars().next())
        .expect("escape");
    let lexer = Lexer::new(escape);

    let all = data["cases"].as_array().expect("cases");
    assert_eq!(all.len(), 230);
    let mut ran = 0;
    let mut failures = Vec::new();
    for case in all {
        let platform = case["platform"].as_str().expect("platform");
        if platform == "W" {
            continue; // Windows only: variable names are case-insensitive there
        }
        ran += 1;
        let input = case["input"].as_str().expect("input");
        let got = lexer.expand_word(input, &env);
        let ok = match (case["expect"].as_str(), &got) {
            (Some(want), Ok(w)) => want == w,
            (None, Err(_)) => true,
            _ => false,
        };
        if !ok {
            failures.push(format!(
                "line {}: {input:?}: expected {}, got {got:?}",
                case["line"], case["expect"]
            ));
        }
    }
    assert_eq!(ran, 228, "226 all-platform and 2 Unix cases");
    assert!(
        failures.is_empty(),
        "{} of {ran} cases fail:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The shared runner, as CI or a learner would use it, on the built binary.
#[test]
fn shared_runner_passes_all_cases() {
    let bin = env!("CARGO_BIN_EXE_lab06-dockerfile");
    let out = Command::new("python3")
        .current_dir(conformance())
        .arg("tools/run_parser_cases.py")
        .arg("--cmd")
        .arg(format!("'{bin}' parse --dump {{file}}"))
        .arg("buildkit-parser/testfiles")
        .arg("buildkit-parser/testfiles-negative")
        .output()
        .expect("running python3 tools/run_parser_cases.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "runner failed ({}):\n{stdout}{stderr}",
        out.status
    );
    assert_eq!(
        stdout.lines().last(),
        Some("37 passed, 0 failed"),
        "{stdout}"
    );
}
