//! `--device` and `--privileged`'s devices: which device nodes a container
//! has in its `/dev` (`ls -l /dev` inside, against `stat` on the host) and
//! which of them its device cgroup lets it open (the kernel's answer to
//! open(2)). Only /dev/null is written and only /dev/zero and /dev/kmsg
//! are read: never a real disk.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use dockyard_e2e::dockyard::{container_dirs, leftover_cgroups, text, Dockyard as Dy};
use serde_json::Value;

/// The host's `major, minor` of `path`, as `stat -c %t:%T` shows them.
fn numbers(path: &str) -> (u64, u64) {
    let rdev = std::fs::metadata(path).unwrap().rdev();
    (nix::sys::stat::major(rdev), nix::sys::stat::minor(rdev))
}

/// The `major, minor` an `ls -l` line shows (busybox pads: `1,   3`).
fn numbers_in(ls: &str) -> (u64, u64) {
    let words: Vec<&str> = ls.split_whitespace().collect();
    let i = words
        .iter()
        .position(|w| w.ends_with(','))
        .unwrap_or_else(|| panic!("no device numbers in {ls:?}"));
    (
        words[i].trim_end_matches(',').parse().unwrap(),
        words[i + 1].parse().unwrap(),
    )
}

/// `ls -ln PATH` inside a new container, `type major, minor` of the node.
fn ls_inside(dy: &Dy, args: &[&str], path: &str) -> String {
    let mut all = vec!["run", "--rm"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["busybox", "ls", "-ln", path]);
    dy.ok(&all)
}

#[test]
fn devices_a_device_is_made_and_usable_at_the_path_asked() {
    let dy = Dy::new();
    // `c 1:3` at /dev/mynull, mode as the host's (crw-rw-rw-), writable.
    let ls = ls_inside(&dy, &["--device", "/dev/null:/dev/mynull"], "/dev/mynull");
    assert!(ls.starts_with("crw-rw-rw-"), "{ls}");
    assert_eq!(numbers_in(&ls), numbers("/dev/null"), "{ls}");
    let out = dy.ok(&[
        "run",
        "--rm",
        "--device",
        "/dev/null:/dev/mynull",
        "busybox",
        "sh",
        "-c",
        "echo gone > /dev/mynull && echo wrote",
    ]);
    assert_eq!(out, "wrote\n");
    // HOST:PERMS keeps the host's path; /dev/zero reads as zeros.
    let out = dy.ok(&[
        "run",
        "--rm",
        "--device",
        "/dev/zero:/dev/z:r",
        "busybox",
        "sh",
        "-c",
        "head -c 4 /dev/z | od -An -tx1",
    ]);
    assert_eq!(out.trim(), "00 00 00 00");
    assert!(leftover_cgroups(&dy.parent).is_empty());
}

#[test]
fn devices_the_device_cgroup_grants_only_the_permissions_asked() {
    let dy = Dy::new();
    // /dev/kmsg (c 1:11) is not in docker's default list, so what the
    // container may do with it is exactly what --device says: `r` opens it
    // for reading (CAP_SYSLOG for the kernel's own dmesg_restrict check),
    // not for writing. The refusal is the device cgroup's: EPERM at open(2).
    let read = "dd if=/dev/k of=/dev/null bs=8192 count=1 2>/dev/null && echo read";
    let write = "echo devices-test > /dev/k; echo rc=$?";
    let out = dy.run(&[
        "run",
        "--rm",
        "--cap-add",
        "SYSLOG",
        "--device",
        "/dev/kmsg:/dev/k:r",
        "busybox",
        "sh",
        "-c",
        &format!("{read}; {write}"),
    ]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(stdout.starts_with("read\n"), "{stdout}{stderr}");
    assert!(stdout.contains("rc=1"), "{stdout}{stderr}");
    assert!(stderr.contains("Operation not permitted"), "{stderr}");
    // Without --device the node can be made (docker's `c *:* m`) but not opened.
    let out = dy.run(&[
        "run",
        "--rm",
        "--cap-add",
        "SYSLOG",
        "busybox",
        "sh",
        "-c",
        "mknod /dev/k c 1 11 && echo made; dd if=/dev/k of=/dev/null bs=8192 count=1",
    ]);
    assert_eq!(text(&out.stdout), "made\n");
    assert!(
        text(&out.stderr).contains("Operation not permitted"),
        "{}",
        text(&out.stderr)
    );
    assert!(leftover_cgroups(&dy.parent).is_empty());
}

#[test]
fn devices_a_missing_or_bad_device_is_refused_as_docker_does() {
    let dy = Dy::new();
    // The syntax is checked by the client, before anything exists.
    let err = dy.fails(
        125,
        &[
            "run",
            "--rm",
            "--device",
            "/dev/zero:/dev/z:rx",
            "busybox",
            "true",
        ],
    );
    assert!(
        err.contains("invalid argument \"/dev/zero:/dev/z:rx\" for \"--device\" flag: bad mode specified: rx"),
        "{err}"
    );
    assert!(container_dirs(&dy.root_path()).is_empty());
    // The device itself when the container starts, as docker's daemon: the
    // container stays, and the error names the device. Docker's
    // client exits 127 for an error that says "no such file or directory".
    let err = dy.fails(
        127,
        &[
            "run",
            "--name",
            "nodev",
            "--device",
            "/dev/nope",
            "busybox",
            "true",
        ],
    );
    assert!(
        err.contains(
            "error gathering device information while adding custom device \"/dev/nope\": \
             no such file or directory"
        ),
        "{err}"
    );
    assert_eq!(dy.inspect("nodev", "{{.Name}}"), "/nodev");
    let err = dy.fails(1, &["start", "nodev"]);
    assert!(err.contains("\"/dev/nope\""), "{err}");
    let err = dy.fails(
        125,
        &[
            "run",
            "--rm",
            "--device",
            "/etc/hostname",
            "busybox",
            "true",
        ],
    );
    assert!(err.contains("not a device node"), "{err}");
    dy.ok(&["rm", "nodev"]);
    assert!(container_dirs(&dy.root_path()).is_empty());
    assert!(leftover_cgroups(&dy.parent).is_empty());
}

#[test]
fn devices_inspect_shows_host_config_devices() {
    let dy = Dy::new();
    dy.ok(&[
        "create",
        "--name",
        "withdev",
        "--device",
        "/dev/null:/dev/mynull",
        "--device",
        "/dev/zero:r",
        "busybox",
        "true",
    ]);
    let devices: Value =
        serde_json::from_str(&dy.inspect("withdev", "{{json .HostConfig.Devices}}")).unwrap();
    assert_eq!(
        devices,
        serde_json::json!([
            {"PathOnHost": "/dev/null", "PathInContainer": "/dev/mynull", "CgroupPermissions": "rwm"},
            {"PathOnHost": "/dev/zero", "PathInContainer": "/dev/zero", "CgroupPermissions": "r"},
        ])
    );
    dy.ok(&["create", "--name", "plain", "busybox", "true"]);
    assert_eq!(dy.inspect("plain", "{{json .HostConfig.Devices}}"), "[]");
}

#[test]
fn devices_privileged_sees_the_hosts_devices_and_may_use_them() {
    let dy = Dy::new();
    // A host node outside docker's default list, and not a disk.
    let probe = ["/dev/loop-control", "/dev/kmsg", "/dev/fuse"]
        .into_iter()
        .find(|p| std::fs::metadata(p).is_ok_and(|m| m.file_type().is_char_device()))
        .expect("a host character device to look for");
    let ls = ls_inside(&dy, &["--privileged"], probe);
    assert!(ls.starts_with('c'), "{ls}");
    assert_eq!(numbers_in(&ls), numbers(probe), "{ls}");
    // A default container has no such node.
    let out = dy.run(&["run", "--rm", "busybox", "ls", probe]);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out.stdout));
    // Every device is allowed: a node made by hand for /dev/kmsg opens
    // (mknod, then read: c 1:11 is refused in a default container, above).
    let out = dy.ok(&[
        "run",
        "--rm",
        "--privileged",
        "busybox",
        "sh",
        "-c",
        "mknod /tmp/k c 1 11 && dd if=/tmp/k of=/dev/null bs=8192 count=1 2>/dev/null && echo opened",
    ]);
    assert_eq!(out, "opened\n");
    // The container's own terminal pieces stay its own.
    let ls = ls_inside(&dy, &["--privileged"], "/dev/ptmx");
    assert!(ls.starts_with('l'), "/dev/ptmx is the devpts link: {ls}");
    assert!(Path::new("/dev/null").exists());
    assert!(leftover_cgroups(&dy.parent).is_empty());
}
