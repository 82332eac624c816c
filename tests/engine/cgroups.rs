//! The engine's cgroups, on whatever layout the host has: the limits in the
//! files lab 03 says carry them, the container's own group read-only at its
//! `/sys/fs/cgroup`, the freezer behind `pause`, the device list, a nested
//! `--cgroup-parent`, and no group left after concurrent runs.
//!
//! Each test asks lab 03 which layout this host has ([`lab03_cgroups::detect`])
//! and checks the files of that layout: the v2 tier (`scripts/v2-tier`) runs
//! them in a pure cgroup v2 guest, the rest of the suite on this hybrid host.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::{cgroup_host as host, read_trimmed as read};
use dockyard_e2e::dockyard::{leftover_cgroups, text, Dockyard as Dy};
use dockyard_e2e::fixtures::bin;
use dockyard_e2e::pace::bound;
use lab03_cgroups::{Knob, Version};

#[test]
fn limits_are_in_the_hosts_files_and_readable_inside() {
    let dy = Dy::new();
    let host = host();
    dy.ok(&[
        "run",
        "-d",
        "--name",
        "lim",
        "-m",
        "64m",
        "--cpus",
        "0.5",
        "--pids-limit",
        "50",
        "busybox",
        "sleep",
        "600",
    ]);
    dy.wait_for("lim", "{{.State.Status}}", "running");
    let id = dy.inspect("lim", "{{.Id}}");
    let file = |knob| {
        host.limit_file(knob, &dy.parent, &id)
            .unwrap_or_else(|| panic!("no {knob:?} file on {:?}", host.layout))
    };
    assert_eq!(read(&file(Knob::Memory)), (64u64 << 20).to_string());
    let quota = match host.version() {
        Version::V1 => "50000",
        Version::V2 => "50000 100000",
    };
    assert_eq!(read(&file(Knob::CpuQuota)), quota);
    assert_eq!(read(&file(Knob::Pids)), "50");

    // Inside, as docker shows it: the container's own group, read-only. On
    // v2 its cgroup namespace makes that group `/`; on v1 each hierarchy's
    // directory of the container is bound under the hierarchy's name.
    let inside = match host.version() {
        Version::V1 => "/sys/fs/cgroup/memory/memory.limit_in_bytes",
        Version::V2 => "/sys/fs/cgroup/memory.max",
    };
    assert_eq!(dy.ok(&["exec", "lim", "cat", inside]).trim(), "67108864");
    let out = dy.run(&["exec", "lim", "sh", "-c", &format!("echo 1 > {inside}")]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        text(&out.stderr).contains("Read-only file system"),
        "{}",
        text(&out.stderr)
    );
    // Only its own group: nothing of the host's tree or of its parent.
    let listing = match host.version() {
        Version::V1 => dy.ok(&["exec", "lim", "ls", "/sys/fs/cgroup/pids"]),
        Version::V2 => dy.ok(&["exec", "lim", "ls", "/sys/fs/cgroup"]),
    };
    assert!(listing.lines().any(|l| l == "pids.max"), "{listing}");
    assert!(!listing.contains(&id), "{listing}");
    assert!(!listing.contains(&dy.parent), "{listing}");
    if host.version() == Version::V2 {
        assert_eq!(
            dy.ok(&["exec", "lim", "cat", "/proc/self/cgroup"]),
            "0::/\n"
        );
    }
    // A run --rm reads it the same way, from its first command.
    assert_eq!(
        dy.ok(&["run", "--rm", "-m", "32m", "busybox", "cat", inside])
            .trim(),
        (32u64 << 20).to_string()
    );
    dy.ok(&["rm", "-f", "lim"]);
    assert!(leftover_cgroups(&dy.parent).is_empty());
}

#[test]
fn pause_freezes_the_group_and_unpause_thaws_it() {
    let dy = Dy::new();
    let host = host();
    dy.ok(&["run", "-d", "--name", "ice", "busybox", "sleep", "600"]);
    dy.wait_for("ice", "{{.State.Status}}", "running");
    let id = dy.inspect("ice", "{{.Id}}");
    // The freezer's file: v2 `cgroup.freeze` in the group, v1 the freezer
    // hierarchy's `freezer.state`.
    let (file, frozen, thawed) = match host.version() {
        Version::V2 => (
            host.group_dir("memory", &dy.parent, &id)
                .unwrap()
                .join("cgroup.freeze"),
            "1",
            "0",
        ),
        Version::V1 => (
            host.group_dir("freezer", &dy.parent, &id)
                .expect("a freezer hierarchy")
                .join("freezer.state"),
            "FROZEN",
            "THAWED",
        ),
    };
    dy.ok(&["pause", "ice"]);
    assert_eq!(read(&file), frozen);
    assert_eq!(dy.inspect("ice", "{{.State.Paused}}"), "true");
    if host.version() == Version::V2 {
        let events = read(&file.with_file_name("cgroup.events"));
        assert!(events.lines().any(|l| l == "frozen 1"), "{events}");
    }
    dy.ok(&["unpause", "ice"]);
    assert_eq!(read(&file), thawed);
    assert_eq!(dy.ok(&["exec", "ice", "echo", "thawed"]), "thawed\n");
    dy.ok(&["rm", "-f", "ice"]);
    assert!(leftover_cgroups(&dy.parent).is_empty());
}

#[test]
fn the_device_list_refuses_a_block_device_and_allows_dev_null() {
    let dy = Dy::new();
    // CAP_MKNOD is in docker's default set, so mknod itself succeeds; the
    // device list (a v1 devices group, or an eBPF program on v2) refuses
    // opening what is not on docker's allow list.
    let out = dy.run(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "mknod /tmp/sda b 8 0 && head -c1 /tmp/sda",
    ]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        text(&out.stderr).contains("Operation not permitted"),
        "{}",
        text(&out.stderr)
    );
    let out = dy.ok(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "mknod /tmp/null c 1 3 && echo x > /tmp/null && echo allowed",
    ]);
    assert_eq!(out, "allowed\n");
    assert!(leftover_cgroups(&dy.parent).is_empty());
}

#[test]
fn a_nested_cgroup_parent_is_used_and_left_clean() {
    let dy = Dy::new();
    let host = host();
    let nested = format!("{}/team/web", dy.parent);
    let dockyard = |args: &[&str]| {
        let out = Command::new(bin("dockyard"))
            .arg("--root")
            .arg(dy.root.path())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    let parent_flag = format!("--cgroup-parent={nested}");
    dockyard(&[
        "run",
        &parent_flag,
        "-d",
        "--name",
        "deep",
        "-m",
        "48m",
        "busybox",
        "sleep",
        "600",
    ]);
    let id = dy.inspect("deep", "{{.Id}}");
    let file = host.limit_file(Knob::Memory, &nested, &id).unwrap();
    assert_eq!(read(&file), (48u64 << 20).to_string());
    assert_eq!(dy.inspect("deep", "{{.HostConfig.CgroupParent}}"), nested);
    dockyard(&["rm", "-f", "deep"]);
    assert!(!file.parent().unwrap().exists(), "{}", file.display());
    // Dy's own clean-up removes the parents it finds; the leaves are gone.
    for root in host.hierarchy_roots() {
        let left = root.join(&nested);
        let children = std::fs::read_dir(&left)
            .map(|rd| rd.flatten().filter(|e| e.path().is_dir()).count())
            .unwrap_or(0);
        assert_eq!(children, 0, "{}", left.display());
        for dir in [left.clone(), root.join(&dy.parent).join("team")] {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

#[test]
fn concurrent_runs_with_limits_leave_no_cgroup() {
    let dy = Dy::new();
    let runs: Vec<_> = (0..6)
        .map(|i| {
            dy.command(&[
                "run",
                "--rm",
                "-m",
                "32m",
                "--pids-limit",
                "20",
                "--cpus",
                "0.5",
                "busybox",
                "sh",
                "-c",
                &format!("echo run {i}"),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    for (i, child) in runs.into_iter().enumerate() {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{i}: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout), format!("run {i}\n"));
    }
    // `run --rm` removes the group before it returns; allow the kernel a
    // moment to finish with the last exiting task on a slow machine.
    let deadline = std::time::Instant::now() + bound(Duration::from_secs(2));
    while !leftover_cgroups(&dy.parent).is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        leftover_cgroups(&dy.parent).is_empty(),
        "{:?}",
        leftover_cgroups(&dy.parent)
    );
    assert!(dy.ok(&["ps", "-aq"]).is_empty());
}

/// `dockyard doctor` says which layout the host has and whether a rootless
/// engine could set limits: on v1 and hybrid hosts never; on v2 only in a
/// subtree delegated to the user, which this test makes (owned by uid
/// 1000, as systemd's `Delegate=` does) and runs the doctor from, as that
/// user.
#[test]
fn doctor_reports_the_layout_and_whether_rootless_limits_can_work() {
    use std::os::unix::ffi::OsStringExt;
    use std::os::unix::fs::chown;
    use std::os::unix::process::CommandExt;
    let host = host();
    let doctor = |cmd: &mut Command| {
        let out = cmd.arg("doctor").stdin(Stdio::null()).output().unwrap();
        text(&out.stdout)
    };
    let report = doctor(&mut Command::new(bin("dockyard")));
    let layout = match host.layout {
        lab03_cgroups::Layout::V1 => "cgroups v1",
        lab03_cgroups::Layout::V2 => "cgroups v2 (unified)",
        lab03_cgroups::Layout::Hybrid => "cgroups hybrid",
    };
    assert!(report.contains(layout), "{report}");
    if host.version() == Version::V1 {
        assert!(
            report.contains("rootless limits: not possible on this"),
            "{report}"
        );
        assert!(
            report.contains("systemd.unified_cgroup_hierarchy=1"),
            "{report}"
        );
        return;
    }
    // v2, as root for uid 1000 (sudo's SUDO_UID), with nothing delegated.
    let report = doctor(Command::new(bin("dockyard")).env("SUDO_UID", "1000"));
    assert!(
        report.contains("no cgroup v2 subtree is delegated to uid 1000"),
        "{report}"
    );
    assert!(
        report.contains("Delegate=cpu cpuset io memory pids"),
        "{report}"
    );
    // A subtree delegated to uid 1000, and the doctor run in it as that user.
    let dir = host
        .v2_mount
        .clone()
        .unwrap()
        .join(format!("dockyard-deleg-{}", std::process::id()));
    std::fs::create_dir(&dir).unwrap();
    struct Gone(std::path::PathBuf);
    impl Drop for Gone {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir(&self.0);
        }
    }
    let _gone = Gone(dir.clone());
    for f in [
        "",
        "cgroup.procs",
        "cgroup.subtree_control",
        "cgroup.threads",
    ] {
        chown(dir.join(f), Some(1000), Some(1000)).unwrap();
    }
    let procs =
        std::ffi::CString::new(dir.join("cgroup.procs").into_os_string().into_vec()).unwrap();
    let mut cmd = Command::new(bin("dockyard"));
    cmd.env_remove("SUDO_UID").env("HOME", "/tmp");
    // SAFETY: only async-signal-safe calls (open, write, close, setgid,
    // setuid) between fork and exec, on memory prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            // Into the delegated group while still root, then become uid 1000.
            let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
            let moved = fd >= 0 && libc::write(fd, b"0".as_ptr().cast(), 1) == 1;
            if fd >= 0 {
                libc::close(fd);
            }
            if !moved || libc::setgid(1000) != 0 || libc::setuid(1000) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let report = doctor(&mut cmd);
    assert!(
        report.contains(&format!(
            "uid 1000 has a delegated cgroup v2 subtree at {}",
            dir.display()
        )),
        "{report}"
    );
}
