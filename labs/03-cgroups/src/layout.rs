//! # Which file, where: the layout asked, never assumed
//!
//! The same limit lives in a different file on each cgroup version, and the
//! same group in a different directory on each layout: `--memory 32m` is
//! `/sys/fs/cgroup/memory/<parent>/<name>/memory.limit_in_bytes` on a v1 or
//! hybrid host and `/sys/fs/cgroup/<parent>/<name>/memory.max` on a v2 host.
//! Code that wants to look at a group's files (a test that checks what the
//! kernel holds, `dockyard doctor`) asks the detected [`Host`] here instead
//! of guessing from the directories it happens to see:
//!
//! ```text
//! cat /sys/fs/cgroup/memory/dockyard/c1/memory.limit_in_bytes   # v1, hybrid
//! cat /sys/fs/cgroup/dockyard/c1/memory.max                     # v2
//! ```

use std::path::{Path, PathBuf};

use crate::{hierarchy_roots, relative_cgroup_path, Host, Version};

/// What a limit sets, whatever the file that carries it is called on a
/// given version: a test or a tool asks [`Version::file`] for the name
/// instead of assuming a layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Knob {
    /// `--cpus`: v1 `cpu.cfs_quota_us`, v2 `cpu.max`.
    CpuQuota,
    /// `--cpu-period`: v1 `cpu.cfs_period_us`, v2 `cpu.max` (its second
    /// number).
    CpuPeriod,
    /// `--cpu-shares`/`--cpu-weight`: v1 `cpu.shares`, v2 `cpu.weight`.
    CpuWeight,
    /// `--memory`: v1 `memory.limit_in_bytes`, v2 `memory.max`.
    Memory,
    /// `--memory-swap`: v1 `memory.memsw.limit_in_bytes` (memory plus
    /// swap), v2 `memory.swap.max` (swap alone).
    MemorySwap,
    /// `--pids-limit`: `pids.max` on both.
    Pids,
    /// `--device-read-bps`: v1 `blkio.throttle.read_bps_device`, v2
    /// `io.max`.
    DeviceReadBps,
    /// `--device-write-bps`: v1 `blkio.throttle.write_bps_device`, v2
    /// `io.max`.
    DeviceWriteBps,
    /// `--cpuset-cpus`: `cpuset.cpus` on both.
    CpusetCpus,
    /// `--cpuset-mems`: `cpuset.mems` on both.
    CpusetMems,
}

impl Knob {
    /// The controller whose file it is.
    pub fn controller(self) -> &'static str {
        match self {
            Knob::CpuQuota | Knob::CpuPeriod | Knob::CpuWeight => "cpu",
            Knob::Memory | Knob::MemorySwap => "memory",
            Knob::Pids => "pids",
            Knob::CpusetCpus | Knob::CpusetMems => "cpuset",
            // v1's name; v2 calls it `io` (see [`Host::limit_file`]).
            Knob::DeviceReadBps | Knob::DeviceWriteBps => "blkio",
        }
    }
}

impl Version {
    /// The name of the file that carries `knob` on this version.
    pub fn file(self, knob: Knob) -> &'static str {
        let v1 = self == Version::V1;
        match knob {
            Knob::CpuQuota if v1 => "cpu.cfs_quota_us",
            Knob::CpuQuota => "cpu.max",
            Knob::CpuPeriod if v1 => "cpu.cfs_period_us",
            Knob::CpuPeriod => "cpu.max",
            Knob::CpuWeight if v1 => "cpu.shares",
            Knob::CpuWeight => "cpu.weight",
            Knob::Memory if v1 => "memory.limit_in_bytes",
            Knob::Memory => "memory.max",
            Knob::MemorySwap if v1 => "memory.memsw.limit_in_bytes",
            Knob::MemorySwap => "memory.swap.max",
            Knob::Pids => "pids.max",
            Knob::DeviceReadBps if v1 => "blkio.throttle.read_bps_device",
            Knob::DeviceWriteBps if v1 => "blkio.throttle.write_bps_device",
            Knob::DeviceReadBps | Knob::DeviceWriteBps => "io.max",
            Knob::CpusetCpus => "cpuset.cpus",
            Knob::CpusetMems => "cpuset.mems",
        }
    }
}

/// `<root>/<parent>/<name>`, or `None` if either is not a plain relative
/// cgroup path (`..` never leads out of the hierarchy).
pub(crate) fn group_dir_below(root: &Path, parent: &str, name: &str) -> Option<PathBuf> {
    let parent = relative_cgroup_path(parent, "--cgroup-parent").ok()?;
    let leaf = relative_cgroup_path(name, "container name").ok()?;
    Some(root.join(parent).join(leaf))
}

impl Host {
    /// The root of the hierarchy whose files carry `controller` on this
    /// host: its own v1 hierarchy (`/sys/fs/cgroup/memory`, or a shared one
    /// such as `/sys/fs/cgroup/cpu,cpuacct`), or the cgroup2 mount on a v2
    /// host. `None` if the host has no such controller.
    pub fn controller_root(&self, controller: &str) -> Option<PathBuf> {
        match self.version() {
            Version::V1 => self
                .v1
                .iter()
                .find(|(c, _)| c == controller)
                .map(|(_, m)| m.clone()),
            Version::V2 => self
                .v2_controllers
                .iter()
                .any(|c| c == controller)
                .then(|| self.v2_mount.clone())
                .flatten(),
        }
    }

    /// The directory of the group `<parent>/<name>` in `controller`'s
    /// hierarchy (whether it exists or not): where its limits are written.
    pub fn group_dir(&self, controller: &str, parent: &str, name: &str) -> Option<PathBuf> {
        group_dir_below(&self.controller_root(controller)?, parent, name)
    }

    /// The file that carries `knob` for the group `<parent>/<name>`, such as
    /// `/sys/fs/cgroup/memory/dockyard/c1/memory.limit_in_bytes` (v1) or
    /// `/sys/fs/cgroup/dockyard/c1/memory.max` (v2).
    pub fn limit_file(&self, knob: Knob, parent: &str, name: &str) -> Option<PathBuf> {
        let controller = match (knob.controller(), self.version()) {
            ("blkio", Version::V2) => "io",
            (c, _) => c,
        };
        let dir = self.group_dir(controller, parent, name)?;
        Some(dir.join(self.version().file(knob)))
    }

    /// The root of every hierarchy the host has mounted, v1 and v2, once
    /// each: where a group `<parent>/<name>` may have directories.
    pub fn hierarchy_roots(&self) -> Vec<PathBuf> {
        hierarchy_roots(self)
    }
}

/// A cgroup v2 subtree delegated to an unprivileged user, as systemd makes
/// one for each user's session (`Delegate=` in `user@.service`): the user
/// owns the directory and its `cgroup.procs` and `cgroup.subtree_control`,
/// so it can make groups below it and enable there the controllers it was
/// given, without root. Rootless Docker and podman put their containers'
/// limits there.
///
/// ```text
/// cat /sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service/cgroup.controllers
/// stat -c %U /sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service/cgroup.subtree_control
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delegation {
    /// The delegated directory.
    pub dir: PathBuf,
    /// The controllers available in it (`cgroup.controllers`).
    pub controllers: Vec<String>,
}

impl Delegation {
    /// Whether `--memory`, `--cpus` and `--pids-limit` can all be set in it.
    pub fn has_limits(&self) -> bool {
        ["cpu", "memory", "pids"]
            .iter()
            .all(|c| self.controllers.iter().any(|have| have == c))
    }

    /// The controllers `limits` need that this subtree was not given: a
    /// rootless engine refuses the limits with their names rather than let
    /// the kernel answer EACCES on a `cgroup.subtree_control` above it.
    pub fn missing_for(&self, limits: &crate::Limits) -> Vec<&'static str> {
        crate::v2::needed_controllers(limits)
            .into_iter()
            .filter(|c| !self.controllers.iter().any(|have| have == c))
            .collect()
    }

    /// The delegated directory relative to the cgroup2 mount, such as
    /// `user.slice/user-1000.slice/user@1000.service`: the start of a
    /// `--cgroup-parent` that lands inside it.
    pub fn relative(&self, host: &Host) -> Option<String> {
        let rel = self.dir.strip_prefix(host.v2_mount.as_deref()?).ok()?;
        Some(rel.to_str()?.to_string()).filter(|r| !r.is_empty())
    }
}

/// Whether `uid` owns `dir` and the two files that make a group its own to
/// manage: `cgroup.procs` (moving processes in) and `cgroup.subtree_control`
/// (handing controllers down to the groups it makes).
fn owned_by(dir: &Path, uid: u32) -> bool {
    use std::os::unix::fs::MetadataExt;
    ["cgroup.procs", "cgroup.subtree_control"]
        .iter()
        .all(|f| std::fs::metadata(dir.join(f)).is_ok_and(|m| m.uid() == uid))
        && std::fs::metadata(dir).is_ok_and(|m| m.uid() == uid)
}

/// The groups on the way from the cgroup2 mount down to the v2 group of
/// process `pid` (`/proc/PID/cgroup`'s `0::` line), outermost first; the
/// mount itself (the root group, always root's) is not among them.
fn own_groups(mount: &Path, pid: &str) -> Vec<PathBuf> {
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    let mut groups = Vec::new();
    if let Some(rel) = own.lines().find_map(|l| l.strip_prefix("0::")) {
        let mut dir = mount.to_path_buf();
        for c in Path::new(rel.trim_start_matches('/')).components() {
            dir.push(c);
            groups.push(dir.clone());
        }
    }
    groups
}

fn delegation_at(dir: PathBuf) -> Delegation {
    let controllers = std::fs::read_to_string(dir.join("cgroup.controllers"))
        .map(|s| s.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
    Delegation { dir, controllers }
}

/// The subtree delegated to `uid` on a v2 host, if any: the outermost of
/// the groups of `pid` (the caller: a user's own shell runs in its
/// session's subtree) that `uid` owns, else systemd's
/// `user.slice/user-UID.slice/user@UID.service`. Only reads.
pub fn delegation(host: &Host, uid: u32, pid: Option<u32>) -> Option<Delegation> {
    if host.version() != Version::V2 || uid == 0 {
        return None;
    }
    let mount = host.v2_mount.as_deref()?;
    let mut candidates = pid
        .map(|p| own_groups(mount, &p.to_string()))
        .unwrap_or_default();
    candidates.push(mount.join(format!("user.slice/user-{uid}.slice/user@{uid}.service")));
    candidates
        .into_iter()
        .find(|d| owned_by(d, uid))
        .map(delegation_at)
}

// ANCHOR: own_delegation
/// The subtree delegated to the calling process's own user: the outermost
/// of its own groups that its effective uid owns. Only a subtree the caller
/// is *in* will do for running containers there: moving a process between
/// two groups needs write access to `cgroup.procs` of their common
/// ancestor, so a shell outside the subtree (in systemd's
/// `session-N.scope`) could make groups in it but never put a process
/// into one. `systemd-run --user --scope CMD` runs CMD inside it.
///
/// Called by a rootless engine from inside its own user namespace, where
/// the user is uid 0 and files the host's root owns show up as the
/// overflow uid (65534): ownership still tells the two apart. Real root
/// (the initial user namespace's identity map) owns every group, so has
/// none delegated: `None`.
///
/// ```text
/// cat /proc/self/cgroup     # 0::/user.slice/user-1000.slice/user@1000.service/app.slice/x.scope
/// stat -c %U /sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service/cgroup.procs
/// ```
pub fn own_delegation(host: &Host) -> Option<Delegation> {
    if host.version() != Version::V2 {
        return None;
    }
    let identity = std::fs::read_to_string("/proc/self/uid_map")
        .map(|m| m.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"])
        .unwrap_or(false);
    if identity {
        return None;
    }
    let uid = nix::unistd::geteuid().as_raw();
    let mount = host.v2_mount.as_deref()?;
    own_groups(mount, "self")
        .into_iter()
        .find(|d| owned_by(d, uid))
        .map(delegation_at)
}
// ANCHOR_END: own_delegation

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Layout;

    fn hybrid() -> Host {
        Host {
            layout: Layout::Hybrid,
            v1: vec![
                ("cpu".into(), "/sys/fs/cgroup/cpu,cpuacct".into()),
                ("memory".into(), "/sys/fs/cgroup/memory".into()),
                ("pids".into(), "/sys/fs/cgroup/pids".into()),
            ],
            v2_mount: Some("/sys/fs/cgroup/unified".into()),
            v2_controllers: Vec::new(),
        }
    }

    fn v2() -> Host {
        Host {
            layout: Layout::V2,
            v1: Vec::new(),
            v2_mount: Some("/sys/fs/cgroup".into()),
            v2_controllers: vec!["cpu".into(), "memory".into(), "pids".into()],
        }
    }

    #[test]
    fn each_layout_names_its_own_files() {
        let f = |h: &Host, k| h.limit_file(k, "dockyard", "c1").unwrap();
        assert_eq!(
            f(&hybrid(), Knob::Memory),
            Path::new("/sys/fs/cgroup/memory/dockyard/c1/memory.limit_in_bytes")
        );
        assert_eq!(
            f(&hybrid(), Knob::CpuQuota),
            Path::new("/sys/fs/cgroup/cpu,cpuacct/dockyard/c1/cpu.cfs_quota_us")
        );
        assert_eq!(
            f(&v2(), Knob::Memory),
            Path::new("/sys/fs/cgroup/dockyard/c1/memory.max")
        );
        assert_eq!(
            f(&v2(), Knob::MemorySwap),
            Path::new("/sys/fs/cgroup/dockyard/c1/memory.swap.max")
        );
        // A controller the host lacks has no file; a hostile path neither.
        assert_eq!(hybrid().controller_root("io"), None);
        assert_eq!(v2().group_dir("memory", "../etc", "c1"), None);
    }
}
