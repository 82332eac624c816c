//! Docker fidelity of `dockyard build`, rule by rule, on a base image *without* a PATH in its
//! config: a rootfs tar brought in with `dockyard import`, as issue 18 found the differences.
//! Each test checks the image config the builder wrote and what a container of the image
//! (or a RUN step of the build) printed; moby's classic builder is the oracle, and each
//! rule names where it is in moby.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::process::Command;

use super::{in_layers, Dy};
use dockyard_e2e::dockyard::text;
use serde_json::{json, Value};

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A store with `base`: busybox's root file system imported from a plain tar, so its config
/// has no Env, no Cmd, nothing but the layer.
fn imported() -> Dy {
    let dy = Dy::new();
    let rootfs = dockyard_e2e::fixtures::workspace_root().join("images/busybox/rootfs");
    let tar = dy.root.path().join("rootfs.tar");
    let ok = Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(ok.success());
    dy.ok(&["import", tar.to_str().unwrap(), "base"]);
    fs::remove_file(&tar).unwrap();
    let env = &dy.config("base:latest")["config"]["Env"];
    assert!(env.is_null(), "an imported image has no Env: {env}");
    dy
}

fn env_of(dy: &Dy, name: &str) -> Vec<String> {
    dy.config(name)["config"]["Env"]
        .as_array()
        .map(|a| a.iter().map(|v| v.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

/// moby `dispatchState.beginStage`: a stage whose base has no PATH gets the default one in
/// its config, which RUN, `${PATH}` in ENV and the final image all see.
#[test]
fn a_stage_on_a_base_without_path_gets_the_default_path() {
    let dy = imported();
    dy.file(
        "Dockerfile",
        "FROM base\nENV MYPATH=${PATH}:/opt/bin\nRUN echo \"$PATH\" > /run-path\nCMD echo $PATH\n",
    );
    dy.build_ok("withpath", &[]);
    assert_eq!(
        env_of(&dy, "withpath:latest"),
        [
            format!("PATH={DEFAULT_PATH}"),
            format!("MYPATH={DEFAULT_PATH}:/opt/bin")
        ]
    );
    assert_eq!(
        dy.ok(&["run", "--rm", "withpath", "cat", "/run-path"]),
        format!("{DEFAULT_PATH}\n")
    );
    assert_eq!(
        dy.ok(&["run", "--rm", "withpath"]),
        format!("{DEFAULT_PATH}\n")
    );

    // FROM scratch too: the image a COPY makes there has the PATH.
    dy.file("f", "x\n");
    dy.file("Dockerfile", "FROM scratch\nCOPY f /f\n");
    dy.build_ok("scratchy", &[]);
    assert_eq!(
        env_of(&dy, "scratchy:latest"),
        [format!("PATH={DEFAULT_PATH}")]
    );

    // A base that sets its own PATH keeps it, and nothing is added.
    dy.file("Dockerfile", "FROM base\nENV PATH=/only\nRUN true\n");
    dy.build_ok("own", &[]);
    dy.file(
        "Dockerfile",
        "FROM own\nRUN /bin/busybox echo \"$PATH\" > /p\n",
    );
    dy.build_ok("own2", &[]);
    assert_eq!(env_of(&dy, "own2:latest"), ["PATH=/only"]);
}

/// moby `containerbackend.go` and docker-cli's `build`: a failing RUN prints
/// "The command '...' returned a non-zero code: N" and `docker build` exits N.
#[test]
fn a_failing_run_exits_with_the_commands_status() {
    let dy = imported();
    dy.file("Dockerfile", "FROM base\nRUN echo failing; exit 7\n");
    let out = dy.build("fails", &[]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stderr),
        "The command '/bin/sh -c echo failing; exit 7' returned a non-zero code: 7\n"
    );
    dy.file("Dockerfile", "FROM base\nRUN [\"/bin/false\"]\n");
    let out = dy.build("fails", &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "The command '/bin/false' returned a non-zero code: 1\n"
    );
    assert!(dy.manifest_of("fails:latest").is_none());
}
