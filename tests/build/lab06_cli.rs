//! `lab06-dockerfile`'s own front end over the builder, as chapter 6 of the book uses it without
//! the engine: `build -q` prints the image ID alone, and `inspect` prints the config blob the
//! store holds, or one field of its `config`. Each result is checked against the store's own
//! files: the manifest index.json names, and the config blob it points at.

use std::process::{Command, Output};

use super::Dy;
use dockyard_e2e::dockyard::{leftover_cgroups, text};
use dockyard_e2e::fixtures::bin;
use serde_json::Value;

/// `lab06-dockerfile ARGS...` with the test's store.
fn lab06(dy: &Dy, args: &[&str]) -> Output {
    Command::new(bin("lab06-dockerfile"))
        .args(args)
        .env("DOCKYARD_ROOT", dy.root.path())
        .output()
        .expect("running lab06-dockerfile")
}

#[test]
fn lab06_build_quiet_prints_the_image_id_and_inspect_reads_its_config() {
    let dy = Dy::new();
    dy.file(
        "Dockerfile",
        "FROM busybox\nENV GREETING=hi\nRUN echo noisy step\nCMD [\"sh\", \"-c\", \"echo $GREETING\"]\n",
    );
    let ctx = dy.ctx.path().to_str().unwrap().to_string();
    let parent = format!("--cgroup-parent={}", dy.parent);
    let out = lab06(&dy, &["build", "-q", "-t", "quiet", &parent, &ctx]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    // stdout is the ID alone: the digest of the config blob that index.json's manifest names.
    let m = dy.manifest_of("quiet:latest").expect("the image is tagged");
    let manifest: Value = serde_json::from_slice(&dy.blob(&m)).unwrap();
    let config_digest = manifest["config"]["digest"].as_str().unwrap();
    assert_eq!(text(&out.stdout), format!("{config_digest}\n"));
    let stderr = text(&out.stderr);
    assert!(
        !stderr.contains("Step") && !stderr.contains("noisy step"),
        "-q keeps the build's output back: {stderr}"
    );

    // inspect: the blob byte for byte, then fields of its `config`, as JSON.
    let whole = lab06(&dy, &["inspect", "quiet"]);
    assert!(whole.status.success(), "{}", text(&whole.stderr));
    let mut blob = dy.blob(config_digest);
    blob.push(b'\n');
    assert_eq!(whole.stdout, blob);
    let config = dy.config("quiet:latest");
    for field in ["Env", "Cmd", "Entrypoint"] {
        let out = lab06(&dy, &["inspect", "--field", field, "quiet"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let shown: Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
        assert_eq!(shown, config["config"][field], "--field {field}");
    }
    assert_eq!(
        text(&lab06(&dy, &["inspect", "--field", "Env", "quiet"]).stdout),
        "[\"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\",\"GREETING=hi\"]\n"
    );

    // An image the store does not have: exit 1, and the name in the error.
    let missing = lab06(&dy, &["inspect", "nope"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        text(&missing.stderr).contains("nope"),
        "{}",
        text(&missing.stderr)
    );
    assert!(leftover_cgroups(&dy.parent).is_empty());
}

#[test]
fn lab06_build_quiet_shows_the_output_of_a_failed_build_and_exits_with_its_code() {
    let dy = Dy::new();
    dy.file(
        "Dockerfile",
        "FROM busybox\nRUN echo about to fail; exit 3\n",
    );
    let ctx = dy.ctx.path().to_str().unwrap().to_string();
    let parent = format!("--cgroup-parent={}", dy.parent);
    let out = lab06(&dy, &["build", "-q", "-t", "broken", &parent, &ctx]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty(), "no ID: {}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("Step 2/2 : RUN echo about to fail; exit 3")
            && stderr.contains("about to fail\n"),
        "a failed quiet build shows its output: {stderr}"
    );
    assert_eq!(dy.manifest_of("broken:latest"), None, "nothing tagged");
    assert!(leftover_cgroups(&dy.parent).is_empty());
}
