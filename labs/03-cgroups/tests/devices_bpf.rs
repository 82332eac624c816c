//! The cgroup v2 device program, observed. A group of our own in the unified
//! hierarchy gets Docker's default list as an eBPF program; a shell moves
//! itself into it and tries device nodes, and the same shell outside the
//! group is the control. On a hybrid host this works too: the kernel runs
//! the device programs of a task's v2 group whatever v1 controllers are
//! mounted. Needs root and a cgroup2 mount; skipped without them.

use std::path::{Path, PathBuf};
use std::process::Command;

use lab03_cgroups::device_filter::{self, Insn};
use lab03_cgroups::devices::{DevicesCgroup, DOCKER_DEFAULT_RULES};

/// A v2 group made for one test, removed (after its processes) on drop.
struct Group(PathBuf);

impl Group {
    fn new(tag: &str) -> Option<Group> {
        let mount = lab03_cgroups::detect().ok()?.v2_mount?;
        let dir = mount.join(format!("dockyard-test-{tag}-{}", std::process::id()));
        std::fs::create_dir(&dir)
            .map_err(|e| eprintln!("skipped: cannot mkdir {}: {e}", dir.display()))
            .ok()?;
        Some(Group(dir))
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        // The shells have exited by now: the group is empty.
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Run `script` with sh, first moving the shell into `group` if given.
/// Returns (exit code, stderr).
fn sh(group: Option<&Path>, script: &str) -> (i32, String) {
    let full = match group {
        Some(g) => format!("echo $$ > {}/cgroup.procs && {script}", g.display()),
        None => script.to_string(),
    };
    let out = Command::new("sh").arg("-c").arg(&full).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn root() -> bool {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root");
        return false;
    }
    true
}

#[test]
fn the_docker_default_program_allows_only_its_list() {
    if !root() {
        return;
    }
    let Some(group) = Group::new("devbpf") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path().display();
    let rules: Vec<&str> = DOCKER_DEFAULT_RULES.iter().map(|(r, _)| *r).collect();
    let devices = DevicesCgroup::attach_program(&group.0, &rules).unwrap();
    // The kernel lists one device program on the group.
    assert_eq!(device_filter::attached(&group.0).unwrap().len(), 1);

    // On the list: the host's nodes, and copies made with mknod.
    let allowed = format!(
        "head -c 1 /dev/null && head -c 1 /dev/zero >/dev/null && head -c 1 /dev/urandom >/dev/null \
         && echo x > /dev/null \
         && mknod {t}/null c 1 3 && mknod {t}/zero c 1 5 && mknod {t}/urandom c 1 9 \
         && echo x > {t}/null && head -c 1 {t}/zero >/dev/null && head -c 1 {t}/urandom >/dev/null"
    );
    let (code, err) = sh(Some(&group.0), &allowed);
    assert_eq!(code, 0, "{err}");

    // Off the list: /dev/kmsg (c 1:11) and a loop device (b 7:0). mknod
    // is allowed ('c *:* m', 'b *:* m'), opening is not.
    for (node, kind, major, minor) in [("kmsg", "c", 1, 11), ("loop0", "b", 7, 0)] {
        let script = format!("mknod {t}/{node} {kind} {major} {minor} && head -c 0 {t}/{node}");
        let (code, err) = sh(Some(&group.0), &script);
        assert_ne!(code, 0, "{node} opened in the group");
        assert!(err.contains("Operation not permitted"), "{node}: {err}");
        // The control: outside the group, root opens the same node.
        let (code, err) = sh(None, &format!("head -c 0 {t}/{node}"));
        assert_eq!(code, 0, "{node} outside the group: {err}");
    }
    let (code, err) = sh(Some(&group.0), "head -c 0 /dev/kmsg");
    assert_ne!(code, 0);
    assert!(err.contains("Operation not permitted"), "{err}");

    // Detached, the group no longer filters.
    devices.remove().unwrap();
    assert!(device_filter::attached(&group.0).unwrap().is_empty());
    let (code, err) = sh(Some(&group.0), &format!("head -c 0 {t}/kmsg"));
    assert_eq!(code, 0, "{err}");
}

#[test]
fn without_an_m_rule_mknod_is_refused_too() {
    if !root() {
        return;
    }
    let Some(group) = Group::new("devbpf-m") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path().display();
    // /dev/null to read and write only: no mknod at all.
    let _devices = DevicesCgroup::attach_program(&group.0, &["c 1:3 rw"]).unwrap();
    let (code, err) = sh(Some(&group.0), &format!("mknod {t}/null c 1 3"));
    assert_ne!(code, 0);
    assert!(err.contains("Operation not permitted"), "{err}");
    let (code, err) = sh(Some(&group.0), "echo x > /dev/null && head -c 1 /dev/null");
    assert_eq!(code, 0, "{err}");
    let (code, err) = sh(Some(&group.0), "head -c 1 /dev/zero");
    assert_ne!(code, 0);
    assert!(err.contains("Operation not permitted"), "{err}");
}

#[test]
fn a_program_the_verifier_refuses_says_why() {
    if !root() {
        return;
    }
    // `exit` without setting R0: the verifier refuses to let the program
    // return an uninitialised register.
    let exit_only = [Insn {
        code: 0x95,
        regs: 0,
        off: 0,
        imm: 0,
    }];
    let err = format!("{:#}", device_filter::load(&exit_only).unwrap_err());
    assert!(err.contains("BPF_PROG_LOAD"), "{err}");
    assert!(err.contains("the verifier says"), "{err}");
    assert!(err.contains("R0 !read_ok"), "{err}");

    // And a bad rule never gets as far as the kernel.
    let Some(group) = Group::new("devbpf-bad") else {
        return;
    };
    let err = DevicesCgroup::attach_program(&group.0, &["c 1:3 rwx"]).unwrap_err();
    assert!(format!("{err:#}").contains("access is made of r, w and m"));
    assert!(device_filter::attached(&group.0).unwrap().is_empty());
}

#[test]
fn attaching_to_a_plain_directory_is_a_clear_error() {
    if !root() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let err = DevicesCgroup::attach_program(tmp.path(), &["c 1:3 rwm"]).unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("BPF_PROG_ATTACH"), "{msg}");
    assert!(msg.contains("cgroup v2 directory"), "{msg}");
}

#[test]
fn docker_default_program_makes_and_removes_its_group() {
    if !root() {
        return;
    }
    let Some(mount) = lab03_cgroups::detect().ok().and_then(|h| h.v2_mount) else {
        eprintln!("skipped: no cgroup2 mount");
        return;
    };
    let parent = format!("dockyard-test-devparent-{}", std::process::id());
    // What lab 03's run() does on a hybrid host, where the container has no
    // v2 group of its own: the group is made for the program.
    let devices = DevicesCgroup::docker_default_program(&parent, "c1").unwrap();
    let dir = mount.join(&parent).join("c1");
    assert_eq!(devices.path(), dir);
    assert_eq!(device_filter::attached(&dir).unwrap().len(), 1);
    assert!(devices.list().unwrap().contains("c 1:3 rwm\n"));
    let (code, err) = sh(Some(&dir), "head -c 0 /dev/kmsg");
    assert_ne!(code, 0);
    assert!(err.contains("Operation not permitted"), "{err}");
    // The shell has exited: the group, and the parent made for it, go.
    devices.remove().unwrap();
    assert!(!mount.join(&parent).exists());

    // A hostile name never reaches the file system.
    let err = DevicesCgroup::docker_default_program("../etc", "c1").unwrap_err();
    assert!(format!("{err:#}").contains("without '..'"), "{err:#}");
}
