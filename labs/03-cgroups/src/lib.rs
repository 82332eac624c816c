//! # Lab 03: cgroups
//!
//! Control groups limit and account for what a group of processes uses: CPU,
//! memory, the number of processes. They come in two versions with different
//! files, and a host may mount either or both:
//!
//! - **v1**: one hierarchy per controller, `/sys/fs/cgroup/memory/...`,
//!   `/sys/fs/cgroup/cpu/...` (`cpu.cfs_quota_us`, `memory.limit_in_bytes`).
//! - **v2**: one unified hierarchy, `/sys/fs/cgroup/...` (`cpu.max`,
//!   `memory.max`).
//! - **hybrid**: v1 controllers plus a (usually empty) cgroup2 mounted at
//!   `/sys/fs/cgroup/unified`, as systemd did for years.
//!
//! This crate so far detects the layout (for `dockyard doctor` and the lab);
//! applying limits is the subject of the lab's own issue and not written yet.

pub use lab02_namespaces;

pub mod devices;

use std::path::PathBuf;

/// Which cgroup versions the host mounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Only v1 hierarchies.
    V1,
    /// Only the unified v2 hierarchy.
    V2,
    /// v1 controllers and a cgroup2 mount side by side.
    Hybrid,
}

/// What the host offers: the layout and where each controller lives.
#[derive(Debug, Clone)]
pub struct Host {
    pub layout: Layout,
    /// v1 controllers with the mount point of their hierarchy.
    pub v1: Vec<(String, PathBuf)>,
    /// The cgroup2 mount point, if any.
    pub v2_mount: Option<PathBuf>,
    /// Controllers available in the cgroup2 root (`cgroup.controllers`).
    pub v2_controllers: Vec<String>,
}

// ANCHOR: detect
/// Detect the layout from the mount table, at run time: the same binary must
/// work on every host.
pub fn detect() -> anyhow::Result<Host> {
    use anyhow::Context;
    let mounts =
        std::fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
    let mut v1 = Vec::new();
    let mut v2_mount = None;
    for line in mounts.lines() {
        // mountinfo: ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let mount_point = left.split(' ').nth(4).unwrap_or_default();
        let mut right = right.split(' ');
        let fs_type = right.next().unwrap_or_default();
        let super_opts = right.nth(1).unwrap_or_default();
        match fs_type {
            "cgroup2" => v2_mount = Some(PathBuf::from(mount_point)),
            "cgroup" => {
                for opt in super_opts.split(',') {
                    if !matches!(opt, "rw" | "ro") && !opt.contains('=') && !opt.starts_with("name")
                    {
                        v1.push((opt.to_string(), PathBuf::from(mount_point)));
                    }
                }
            }
            _ => {}
        }
    }
    let v2_controllers = match &v2_mount {
        Some(m) => std::fs::read_to_string(m.join("cgroup.controllers"))
            .map(|s| s.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default(),
        None => Vec::new(),
    };
    let layout = match (v1.is_empty(), v2_mount.is_some()) {
        (false, true) => Layout::Hybrid,
        (false, false) => Layout::V1,
        (true, true) => Layout::V2,
        (true, false) => {
            anyhow::bail!("no cgroup filesystem is mounted (mount cgroup2 on /sys/fs/cgroup)")
        }
    };
    Ok(Host {
        layout,
        v1,
        v2_mount,
        v2_controllers,
    })
}
// ANCHOR_END: detect
