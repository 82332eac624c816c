//! podman as the caller, through conmon: a containers.conf that names
//! dockyard-runtime (and lists it in `runtime_supports_json`, so that
//! podman reads its errors from `--log-format=json`), storage, run root and
//! temporary directory of the test's own, the cgroupfs manager under the
//! test's cgroup parent, no network. The image is `dockyard save`'s tar,
//! `podman load`ed: `localhost/busybox`, nothing is ever pulled.
//!
//! This machine lacks CAP_SYS_RESOURCE, and podman's default rlimits
//! would raise the hard limits: `--ulimit nofile=1024:1024 --ulimit
//! nproc=1024:1024` keeps them where they are.

use std::path::PathBuf;
use std::process::{Command, Output};

use dockyard_e2e::dockyard::Dockyard;
use dockyard_e2e::fixtures::bin;

use crate::support::{text, TestCgroup};

struct Podman {
    dir: tempfile::TempDir,
    cgroup: TestCgroup,
}

const ULIMITS: [&str; 4] = [
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=1024:1024",
];

impl Podman {
    fn new(name: &str) -> Podman {
        let dir = tempfile::Builder::new()
            .prefix("dyrt-podman-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        let conf = format!(
            "[containers]\nnetns = \"none\"\n[engine]\ncgroup_manager = \"cgroupfs\"\n\
             events_logger = \"file\"\nruntime_supports_json = [\"dockyard\"]\n\
             [engine.runtimes]\ndockyard = [\"{}\"]\n",
            bin("dockyard-runtime").display()
        );
        std::fs::write(d.join("containers.conf"), conf).unwrap();
        let storage = format!(
            "[storage]\ndriver = \"vfs\"\nrunroot = \"{0}/runroot\"\ngraphroot = \"{0}/root\"\n",
            d.display()
        );
        std::fs::write(d.join("storage.conf"), storage).unwrap();
        let p = Podman {
            dir,
            cgroup: TestCgroup::new(name),
        };
        let dy = Dockyard::new();
        let tar = p.path("busybox.tar");
        dy.ok(&["save", "-o", tar.to_str().unwrap(), "busybox"]);
        p.ok(&["load", "-i", tar.to_str().unwrap()]);
        p
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn podman(&self, args: &[&str]) -> Output {
        let d = self.dir.path();
        Command::new("timeout")
            .arg("120")
            .arg("podman")
            .env("CONTAINERS_CONF", d.join("containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", d.join("storage.conf"))
            .arg("--root")
            .arg(d.join("root"))
            .arg("--runroot")
            .arg(d.join("runroot"))
            .arg("--tmpdir")
            .arg(d.join("tmp"))
            .args(["--cgroup-manager", "cgroupfs", "--runtime", "dockyard"])
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("running podman")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.podman(args);
        assert!(
            out.status.success(),
            "podman {args:?}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    fn run_args(&self) -> Vec<String> {
        let mut v: Vec<String> = vec!["run".into(), "--cgroup-parent".into()];
        v.push(format!("/{}", self.cgroup.name));
        v.extend(ULIMITS.iter().map(|s| s.to_string()));
        v
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.podman(&["rm", "--force", "--all", "--time", "0"]);
    }
}

#[test]
fn podman_run_rm_detached_exec_and_stop() {
    let p = Podman::new("podman");
    let mut args = p.run_args();
    args.extend(
        [
            "--rm",
            "localhost/busybox:latest",
            "sh",
            "-c",
            "echo hi $$; cat /proc/self/cgroup",
        ]
        .map(String::from),
    );
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = p.ok(&argv);
    assert!(out.starts_with("hi 1\n"), "{out}");
    // Its cgroup is under the test's parent, named by podman (libpod-ID).
    assert!(
        out.contains(&format!("/{}/libpod-", p.cgroup.name)),
        "{out}"
    );

    let mut args = p.run_args();
    args.extend(
        [
            "-d",
            "--name",
            "p1",
            "localhost/busybox:latest",
            "sleep",
            "300",
        ]
        .map(String::from),
    );
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    p.ok(&argv);
    let out = p.ok(&["exec", "p1", "cat", "/proc/1/cmdline"]);
    assert_eq!(out.replace('\0', " ").trim(), "sleep 300");
    let state = p.ok(&[
        "inspect",
        "--format",
        "{{.State.Status}} {{.OCIRuntime}}",
        "p1",
    ]);
    assert_eq!(state.trim(), "running dockyard");
    // sleep as PID 1 ignores SIGTERM: stop waits, then kills.
    p.ok(&["stop", "-t", "1", "p1"]);
    let state = p.ok(&[
        "inspect",
        "--format",
        "{{.State.Status}} {{.State.ExitCode}}",
        "p1",
    ]);
    assert_eq!(state.trim(), "exited 137");
    p.ok(&["rm", "p1"]);
    let left: Vec<PathBuf> = p
        .cgroup
        .children()
        .into_iter()
        .filter(|c| c.to_string_lossy().contains("libpod-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
