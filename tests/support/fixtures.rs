//! Fixtures for privileged end-to-end tests: where the binaries and the base
//! image are, a private copy of the rootfs per test, and reads of the host's
//! own view of the kernel to compare with what a container sees.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root (this crate lives in `<root>/tests`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Where the workspace's binaries are: `DOCKYARD_BIN_DIR`, else
/// `$CARGO_TARGET_DIR/debug`, else `<root>/target/debug`.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("DOCKYARD_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    target.join("debug")
}

/// A workspace binary, built by `cargo build --workspace` (scripts/setup does it).
pub fn bin(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.exists(),
        "{} is missing: build the workspace first (scripts/setup --no-run)",
        path.display()
    );
    path
}

/// The unpacked base image made by scripts/setup.
pub fn base_rootfs() -> PathBuf {
    let path = std::env::var_os("DOCKYARD_BASE_ROOTFS")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("images/busybox/rootfs"));
    assert!(
        path.join("bin/probe").exists(),
        "base image {} is missing or has no /bin/probe: run scripts/setup --no-run",
        path.display()
    );
    path
}

/// Fail clearly when not root: these tests create namespaces and mounts.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the end-to-end tests need root (they create namespaces and mounts): run sudo scripts/test"
    );
}

/// A private copy of the base rootfs for one test, removed when dropped, even
/// if the test panics. Before removing, anything still mounted below it is
/// detached, so a failed test cannot make `rm -rf` walk into a mount.
pub struct TestRootfs {
    dir: tempfile::TempDir,
}

impl TestRootfs {
    pub fn new() -> Self {
        require_root();
        let dir = tempfile::Builder::new()
            .prefix("dockyard-e2e-")
            .tempdir()
            .expect("creating a temporary directory");
        let status = Command::new("cp")
            .arg("-a")
            .arg(base_rootfs())
            .arg(dir.path().join("rootfs"))
            .status()
            .expect("running cp");
        assert!(status.success(), "copying the base rootfs failed");
        TestRootfs { dir }
    }

    /// The rootfs directory (absolute, canonical).
    pub fn path(&self) -> PathBuf {
        self.dir
            .path()
            .join("rootfs")
            .canonicalize()
            .expect("canonical rootfs path")
    }

    /// A scratch directory beside the rootfs, outside the container.
    pub fn outside(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

impl Default for TestRootfs {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestRootfs {
    fn drop(&mut self) {
        let prefix = self.dir.path().to_string_lossy().to_string();
        for m in host_mount_points().into_iter().rev() {
            if m.starts_with(&prefix) {
                let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
            }
        }
    }
}

/// The mount points in the host's (this test process's) mount namespace.
pub fn host_mount_points() -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .expect("reading /proc/self/mountinfo")
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(unescape_octal))
        .collect()
}

/// The whole mountinfo text of the host's mount namespace.
pub fn host_mountinfo() -> String {
    std::fs::read_to_string("/proc/self/mountinfo").expect("reading /proc/self/mountinfo")
}

/// The inode of one of this process's namespaces, e.g. `ns_inode("mnt")`.
pub fn ns_inode(name: &str) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/self/ns/{name}"))
        .expect("stat /proc/self/ns")
        .ino()
}

fn unescape_octal(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let v = (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
