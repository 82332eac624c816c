//! The device cgroup, observed: a privileged container (every capability,
//! no seccomp, so that only the cgroup is in play) creates a node for
//! /dev/kmsg (c 1:11, not on Docker's list) and tries to read it, in and out
//! of a devices cgroup with Docker's allow list. Needs root, a cgroup v1
//! `devices` hierarchy and the base image; skipped without them.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use lab02_namespaces::security::Security;
use lab02_namespaces::{spawn, ExitStatus, Spec, DEFAULT_NAMESPACES};
use lab03_cgroups::devices::{devices_hierarchy, DevicesCgroup, DOCKER_DEFAULT_RULES};
use nix::sched::CloneFlags;

fn rootfs_copy() -> (tempfile::TempDir, PathBuf) {
    let base = std::env::var_os("DOCKYARD_BASE_ROOTFS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../images/busybox/rootfs")
        });
    assert!(
        base.join("bin/probe").exists(),
        "base image {} is missing: run scripts/setup --no-run",
        base.display()
    );
    let dir = tempfile::Builder::new()
        .prefix("dockyard-lab03-")
        .tempdir()
        .unwrap();
    let rootfs = dir.path().join("rootfs");
    let ok = Command::new("cp")
        .arg("-a")
        .arg(&base)
        .arg(&rootfs)
        .status()
        .unwrap();
    assert!(ok.success());
    (dir, rootfs)
}

/// Run `script` in a privileged container without a user namespace,
/// optionally inside `cgroup`, and return its exit code.
fn run(rootfs: &Path, script: &str, cgroup: Option<&DevicesCgroup>) -> i32 {
    let argv: Vec<OsString> = ["/bin/sh", "-c", script].iter().map(Into::into).collect();
    let mut spec = Spec::new(rootfs, argv);
    spec.namespaces = DEFAULT_NAMESPACES - CloneFlags::CLONE_NEWUSER;
    spec.security = Some(Security::privileged());
    let container = spawn(&spec, |pid| match cgroup {
        Some(c) => c.add(pid.as_raw()),
        None => Ok(()),
    })
    .expect("spawn");
    match container.wait().expect("wait") {
        ExitStatus::Exited(code) => code,
        other => panic!("{other:?}"),
    }
}

#[test]
fn only_the_allowed_devices_open() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    if devices_hierarchy().unwrap().is_none() {
        eprintln!("skipped: no cgroup v1 devices hierarchy (cgroup v2 needs an eBPF program)");
        return;
    }
    let (_dir, rootfs) = rootfs_copy();
    let read_kmsg = "mknod /tmp/kmsg c 1 11 && dd if=/tmp/kmsg of=/dev/null bs=8192 count=1";
    let use_null = "echo x > /dev/null && head -c 1 /dev/zero > /dev/null";

    // The control: without a device cgroup, root opens any node it makes.
    assert_eq!(
        run(&rootfs, &format!("rm -f /tmp/kmsg; {read_kmsg}"), None),
        0
    );

    let name = format!("dockyard-devtest-{}", std::process::id());
    let rules: Vec<&str> = DOCKER_DEFAULT_RULES.iter().map(|(r, _)| *r).collect();
    let cgroup = DevicesCgroup::create(&name, &rules).unwrap();
    let list = cgroup.list().unwrap();
    assert!(list.contains("c 1:3 rwm"), "{list}");
    assert!(!list.contains("a *:* rwm"), "{list}");

    // mknod is allowed ('c *:* m'); open is not.
    assert_eq!(
        run(
            &rootfs,
            &format!("rm -f /tmp/kmsg; {read_kmsg}"),
            Some(&cgroup)
        ),
        1
    );
    assert_eq!(
        run(
            &rootfs,
            "rm -f /tmp/kmsg; mknod /tmp/kmsg c 1 11",
            Some(&cgroup)
        ),
        0
    );
    // What is on the list still works.
    assert_eq!(run(&rootfs, use_null, Some(&cgroup)), 0);
    cgroup.remove().unwrap();
}
