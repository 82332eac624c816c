//! A fake cgroup file system for the unit tests: a temporary directory that
//! behaves like cgroupfs where it matters.
//!
//! `mkdir` fills the new directory with the files the kernel would show
//! (`cgroup.procs`, and on v2 `cgroup.controllers` from the parent's
//! `cgroup.subtree_control`, then the files of each controller), and `rmdir`
//! removes a group with its files unless it holds processes or child groups
//! (EBUSY). Writes and reads are plain file operations, so after a test the
//! files show exactly what the code wrote. This is how the v2 code path is
//! exercised on a machine that has no cgroup2 controllers.

use std::io;
use std::path::{Path, PathBuf};

use crate::CgroupFs;

/// The marker file in a fake root: its first line is `v1 CONTROLLERS...` or
/// `v2`, the second lists file names to make unwritable.
const MARKER: &str = ".fake-cgroupfs";

pub(crate) struct FakeFs;

/// The one instance the tests hand to `Cgroup::create_with`.
pub(crate) static FAKE: FakeFs = FakeFs;

fn find_root(path: &Path) -> Option<(PathBuf, String)> {
    let mut p = path.parent();
    while let Some(dir) = p {
        if let Ok(marker) = std::fs::read_to_string(dir.join(MARKER)) {
            return Some((dir.to_path_buf(), marker));
        }
        p = dir.parent();
    }
    None
}

fn put(dir: &Path, name: &str, content: &str, unwritable: &[&str]) -> io::Result<()> {
    if unwritable.contains(&name) {
        // Root may write any file; a directory in its place cannot be written.
        return std::fs::create_dir(dir.join(name));
    }
    std::fs::write(dir.join(name), content)
}

impl CgroupFs for FakeFs {
    fn mkdir(&self, path: &Path) -> io::Result<()> {
        let (_, marker) = find_root(path).ok_or_else(|| io::Error::other("not in a fake root"))?;
        std::fs::create_dir(path)?;
        let mut lines = marker.lines();
        let kind: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
        let unwritable: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
        let parent = path.parent().expect("has a parent");
        put(path, "cgroup.procs", "", &unwritable)?;
        let controllers: Vec<String> = if kind.first() == Some(&"v2") {
            let handed =
                std::fs::read_to_string(parent.join("cgroup.subtree_control")).unwrap_or_default();
            let handed: Vec<String> = handed
                .split_whitespace()
                .map(|c| c.trim_start_matches('+').to_string())
                .collect();
            put(path, "cgroup.controllers", &handed.join(" "), &unwritable)?;
            put(path, "cgroup.subtree_control", "", &unwritable)?;
            put(path, "cgroup.kill", "", &unwritable)?;
            put(path, "cpu.stat", "usage_usec 0\n", &unwritable)?;
            handed
        } else {
            put(path, "tasks", "", &unwritable)?;
            kind[1..].iter().map(|s| s.to_string()).collect()
        };
        let v2 = kind.first() == Some(&"v2");
        for c in &controllers {
            let files: &[(&str, &str)] = match (v2, c.as_str()) {
                (true, "cpu") => &[("cpu.max", "max 100000\n"), ("cpu.weight", "100\n")],
                (true, "io") => &[("io.max", ""), ("io.weight", "default 100\n")],
                (true, "memory") => &[
                    ("memory.max", "max\n"),
                    ("memory.swap.max", "max\n"),
                    ("memory.current", "0\n"),
                    ("memory.peak", "0\n"),
                    ("memory.events", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n"),
                ],
                (_, "pids") => &[
                    ("pids.max", "max\n"),
                    ("pids.current", "0\n"),
                    ("pids.events", "max 0\n"),
                ],
                (false, "cpu") => &[
                    ("cpu.cfs_period_us", "100000\n"),
                    ("cpu.cfs_quota_us", "-1\n"),
                    ("cpu.shares", "1024\n"),
                ],
                (false, "cpuacct") => &[("cpuacct.usage", "0\n")],
                (false, "memory") => &[
                    ("memory.limit_in_bytes", "9223372036854771712\n"),
                    ("memory.usage_in_bytes", "0\n"),
                    ("memory.max_usage_in_bytes", "0\n"),
                    ("memory.failcnt", "0\n"),
                    (
                        "memory.oom_control",
                        "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
                    ),
                    ("memory.memsw.limit_in_bytes", "9223372036854771712\n"),
                ],
                _ => &[],
            };
            for (name, content) in files {
                if kind.contains(&"noswap") && name.contains("memsw") && !v2 {
                    continue;
                }
                put(path, name, content, &unwritable)?;
            }
        }
        Ok(())
    }

    fn rmdir(&self, path: &Path) -> io::Result<()> {
        if !path.exists() {
            return Err(io::ErrorKind::NotFound.into());
        }
        let procs = std::fs::read_to_string(path.join("cgroup.procs")).unwrap_or_default();
        let busy = !procs.trim().is_empty()
            || std::fs::read_dir(path)?
                .filter_map(Result::ok)
                .any(|e| e.path().join("cgroup.procs").is_file());
        if busy {
            return Err(io::Error::from_raw_os_error(libc::EBUSY));
        }
        std::fs::remove_dir_all(path)
    }
}

/// A fake cgroup2 root with the given controllers.
pub(crate) struct FakeV2 {
    dir: tempfile::TempDir,
}

impl FakeV2 {
    pub(crate) fn new(controllers: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        std::fs::write(root.join(MARKER), "v2\n").unwrap();
        std::fs::write(root.join("cgroup.controllers"), controllers).unwrap();
        std::fs::write(root.join("cgroup.subtree_control"), "").unwrap();
        std::fs::write(root.join("cgroup.procs"), "1\n").unwrap();
        FakeV2 { dir }
    }

    pub(crate) fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Groups made from now on get a `name` that cannot be written.
    pub(crate) fn make_unwritable(&self, name: &str) {
        std::fs::write(self.root().join(MARKER), format!("v2\n{name}\n")).unwrap();
    }
}

/// A fake set of v1 hierarchies: `(mount point, controllers)` pairs under one
/// temporary directory, as `Host::v1` lists them.
pub(crate) struct FakeV1 {
    dir: tempfile::TempDir,
    pub(crate) mounts: Vec<(String, PathBuf)>,
}

impl FakeV1 {
    /// `hierarchies` like `["cpu,cpuacct", "memory", "pids"]`; `swap`: whether
    /// the memory hierarchy has the `memsw` files (swap accounting).
    pub(crate) fn new(hierarchies: &[&str], swap: bool) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut mounts = Vec::new();
        for h in hierarchies {
            let mount = dir.path().join(h);
            std::fs::create_dir(&mount).unwrap();
            let controllers = h.replace(',', " ");
            let noswap = if swap { "" } else { " noswap" };
            std::fs::write(mount.join(MARKER), format!("v1 {controllers}{noswap}\n")).unwrap();
            std::fs::write(mount.join("cgroup.procs"), "1\n").unwrap();
            for c in h.split(',') {
                mounts.push((c.to_string(), mount.clone()));
            }
        }
        FakeV1 { dir, mounts }
    }

    pub(crate) fn root(&self) -> &Path {
        self.dir.path()
    }
}
