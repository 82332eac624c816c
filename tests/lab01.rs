//! Lab 01, observed from the kernel: what the probe sees inside the new root,
//! whether the nested-chroot escape reaches the host, and what the host's own
//! mount table shows afterwards.

use std::io::{BufRead, BufReader};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use dockyard_e2e::fixtures::{bin, host_mountinfo, ns_inode, TestRootfs};
use serde_json::Value;

fn lab01(pivot: bool, rootfs: &std::path::Path, cmd: &[&str]) -> Command {
    let mut c = Command::new(bin("lab01-chroot"));
    if pivot {
        c.arg("--pivot");
    }
    c.arg("--rootfs").arg(rootfs).arg("--").args(cmd);
    c
}

fn run(mut cmd: Command) -> Output {
    cmd.output().expect("running lab01-chroot")
}

fn json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "command failed: {:?}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "probe output is not JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// A secret file on the host, outside the rootfs, that no container should read.
fn host_secret(fx: &TestRootfs) -> (std::path::PathBuf, String) {
    let path = fx.outside().join("host-secret");
    let content = format!("dockyard-host-secret-{}", std::process::id());
    std::fs::write(&path, &content).expect("writing the host secret");
    (path, content)
}

#[test]
fn pivot_root_shows_the_base_image_as_root() {
    let fx = TestRootfs::new();
    let report = json(&run(lab01(true, &fx.path(), &["/bin/probe"])));

    let mounts = report["mounts"].as_array().expect("mounts array");
    let root = mounts
        .iter()
        .find(|m| m["mount_point"] == "/")
        .expect("a mount at /");
    // mountinfo's `root` field is the directory of the source filesystem that
    // is mounted at `/`: the rootfs we gave, not the host's `/`.
    assert_eq!(root["root"], fx.path().to_str().unwrap(), "{root}");
    assert!(
        mounts
            .iter()
            .any(|m| m["mount_point"] == "/proc" && m["fs_type"] == "proc"),
        "no fresh /proc: {mounts:?}"
    );
    assert!(
        mounts
            .iter()
            .any(|m| m["mount_point"] == "/dev" && m["fs_type"] == "tmpfs"),
        "no /dev tmpfs: {mounts:?}"
    );
    // Nothing of the host's mount table came along: its /sys, its cgroups.
    assert!(
        !mounts.iter().any(|m| m["fs_type"] == "sysfs"
            || m["fs_type"] == "cgroup"
            || m["fs_type"] == "cgroup2"),
        "host mounts leaked into the container: {mounts:?}"
    );
    // A new mount namespace, and only that: lab 01 adds no other namespace.
    let ns = &report["namespaces"];
    assert_ne!(
        ns["mnt"].as_u64(),
        Some(ns_inode("mnt")),
        "same mnt namespace as the host"
    );
    assert_eq!(ns["pid"].as_u64(), Some(ns_inode("pid")));
    assert_eq!(ns["uts"].as_u64(), Some(ns_inode("uts")));
}

#[test]
fn chroot_is_escaped_by_nested_chroot() {
    let fx = TestRootfs::new();
    let (secret_path, secret) = host_secret(&fx);
    let out = run(lab01(
        false,
        &fx.path(),
        &[
            "/bin/probe",
            "escape",
            "--read",
            secret_path.to_str().unwrap(),
        ],
    ));
    let report = json(&out);
    assert_eq!(report["escaped"], true, "{report:#}");
    assert_eq!(report["read"]["content"], secret.as_str(), "{report:#}");
}

#[test]
fn pivot_root_is_not_escaped_by_nested_chroot() {
    let fx = TestRootfs::new();
    let (secret_path, secret) = host_secret(&fx);
    let out = run(lab01(
        true,
        &fx.path(),
        &[
            "/bin/probe",
            "escape",
            "--read",
            secret_path.to_str().unwrap(),
        ],
    ));
    let report = json(&out);
    assert_eq!(report["escaped"], false, "{report:#}");
    assert_ne!(report["read"]["content"], secret.as_str(), "{report:#}");
    assert!(report["read"]["content"].is_null(), "{report:#}");
    // The probe climbed as far as it could: that is the container's own root.
    let entries: Vec<&str> = report["root_entries"]
        .as_array()
        .expect("root_entries")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        entries.contains(&"bin") && !entries.contains(&"work"),
        "{entries:?}"
    );
}

#[test]
fn mounts_made_inside_never_reach_the_host() {
    let fx = TestRootfs::new();
    let marker = format!("dyleak{}", std::process::id());
    let before = host_mountinfo();
    let mut child = lab01(
        true,
        &fx.path(),
        &[
            "/bin/sh",
            "-c",
            &format!("mount -t tmpfs {marker} /tmp && echo ready && sleep 30"),
        ],
    )
    .stdout(Stdio::piped())
    .process_group(0)
    .spawn()
    .expect("spawning lab01-chroot");
    // Kill the container whatever happens below.
    struct Kill(i32);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(self.0),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    let guard = Kill(child.id() as i32);
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("reading from the container");
    assert_eq!(line.trim(), "ready");

    // While the container runs, the host sees none of its mounts.
    let during = host_mountinfo();
    let rootfs = fx.path();
    assert!(
        !during.contains(&marker),
        "the tmpfs leaked to the host:\n{during}"
    );
    assert!(
        !during.contains(rootfs.to_str().unwrap()),
        "the rootfs bind mount leaked to the host:\n{during}"
    );

    drop(guard);
    let status = child.wait().expect("waiting");
    assert_eq!(status.signal(), Some(9));
    std::thread::sleep(Duration::from_millis(50));
    let after = host_mountinfo();
    assert_eq!(
        before.lines().count(),
        after.lines().count(),
        "mount table changed"
    );
    assert!(!after.contains(&marker));
}

#[test]
fn exit_status_is_passed_through() {
    let fx = TestRootfs::new();
    for pivot in [false, true] {
        let out = run(lab01(pivot, &fx.path(), &["/bin/sh", "-c", "exit 42"]));
        assert_eq!(out.status.code(), Some(42), "pivot={pivot}");
        let out = run(lab01(pivot, &fx.path(), &["/bin/true"]));
        assert_eq!(out.status.code(), Some(0), "pivot={pivot}");
        // Death by signal stays death by signal: the lab *became* the command.
        let out = run(lab01(
            pivot,
            &fx.path(),
            &["/bin/sh", "-c", "kill -TERM $$"],
        ));
        assert_eq!(out.status.signal(), Some(15), "pivot={pivot}");
    }
}

#[test]
fn bad_input_gets_docker_exit_codes_and_clear_errors() {
    let fx = TestRootfs::new();
    for pivot in [false, true] {
        let out = run(lab01(pivot, &fx.path(), &["no-such-command"]));
        assert_eq!(out.status.code(), Some(127), "pivot={pivot}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("executable file not found"), "{err}");

        let out = run(lab01(pivot, &fx.path(), &["/etc/passwd"]));
        assert_eq!(out.status.code(), Some(126), "pivot={pivot}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("permission denied"), "{err}");
    }

    let missing = fx.outside().join("no-such-rootfs");
    let out = run(lab01(true, &missing, &["/bin/true"]));
    assert_eq!(out.status.code(), Some(125));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no-such-rootfs"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    // Not root: a clear refusal before any system call is tried.
    let mut as_nobody = lab01(true, &fx.path(), &["/bin/true"]);
    as_nobody.uid(65534).gid(65534);
    let out = run(as_nobody);
    assert_eq!(out.status.code(), Some(125));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("must run as root"), "{err}");

    // No command at all is a usage error, also 125 as in docker.
    let out = run({
        let mut c = Command::new(bin("lab01-chroot"));
        c.arg("--rootfs").arg(fx.path());
        c
    });
    assert_eq!(out.status.code(), Some(125));
}

#[test]
fn commands_are_found_in_the_containers_path_not_the_hosts() {
    let fx = TestRootfs::new();
    for pivot in [false, true] {
        // The lab's own PATH leads nowhere; the container's default PATH
        // (/usr/local/sbin:...:/bin) must be the one searched.
        let mut cmd = lab01(pivot, &fx.path(), &["true"]);
        cmd.env("PATH", "/nonexistent");
        let out = run(cmd);
        assert_eq!(
            out.status.code(),
            Some(0),
            "pivot={pivot}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
