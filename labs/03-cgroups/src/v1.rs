//! cgroup v1: one hierarchy per controller, one directory in each.
//!
//! On v1 every controller (or a few mounted together, like `cpu,cpuacct` on
//! many distributions) has its own tree under `/sys/fs/cgroup/<controller>`.
//! A container is therefore a *set* of directories, one per hierarchy, and a
//! process has to be written into the `cgroup.procs` of each. This is the
//! layout the course notes use:
//!
//! ```text
//! mkdir /sys/fs/cgroup/cpu/dockyard/c1
//! echo 100000 > /sys/fs/cgroup/cpu/dockyard/c1/cpu.cfs_period_us
//! echo 10000  > /sys/fs/cgroup/cpu/dockyard/c1/cpu.cfs_quota_us   # 10% of one CPU
//! mkdir /sys/fs/cgroup/memory/dockyard/c1
//! echo 33554432 > /sys/fs/cgroup/memory/dockyard/c1/memory.limit_in_bytes
//! mkdir /sys/fs/cgroup/pids/dockyard/c1
//! echo 20 > /sys/fs/cgroup/pids/dockyard/c1/pids.max
//! for h in cpu cpuacct memory pids; do echo $PID > /sys/fs/cgroup/$h/dockyard/c1/cgroup.procs; done
//! ```
//!
//! v1 has no "no internal processes" rule and no `subtree_control`: every
//! controller of a hierarchy applies to every group in it.

use std::path::{Path, PathBuf};

use anyhow::bail;

use crate::{
    kill_pids, mkdir_group, read_key, read_procs, read_u64, remove_dirs, rmdir_leaf,
    weight_to_shares, write_file, CgroupFs, Limits, Stats,
};

/// The controllers a container joins: limits for the first, accounting for
/// `cpuacct`, and `freezer` for `docker pause` (the group's processes are
/// stopped by the kernel without being sent a signal). `cpuset` only when
/// `--cpuset-cpus`/`--cpuset-mems` asks for it: see [`inherit_cpuset`].
/// `blkio` likewise, only for `--device-read-bps`/`--device-write-bps`.
const CONTROLLERS: [&str; 7] = [
    "cpu", "cpuacct", "memory", "pids", "freezer", "cpuset", "blkio",
];

/// One hierarchy's part of the group.
struct Dir {
    /// The controllers mounted on this hierarchy that we use.
    controllers: Vec<String>,
    /// The hierarchy's mount point.
    mount: PathBuf,
    /// `<mount>/<parent>/<leaf>`.
    dir: PathBuf,
    /// Parent directories made for this group, outermost first.
    made: Vec<PathBuf>,
    /// Whether `dir` itself was made (and so must be removed).
    created: bool,
}

/// A container's group on a v1 (or hybrid) host.
pub struct V1Cgroup {
    dirs: Vec<Dir>,
    fs: &'static dyn CgroupFs,
}

impl V1Cgroup {
    /// Make `<parent>/<leaf>` in each hierarchy of `mounts` that holds one of
    /// our controllers, and write `limits` into them.
    /// An existing group `<parent>/<leaf>`, to read (see [`crate::Cgroup::open`]).
    pub(crate) fn existing(
        mounts: &[(String, PathBuf)],
        fs: &'static dyn CgroupFs,
        parent: &Path,
        leaf: &Path,
    ) -> V1Cgroup {
        let mut group = V1Cgroup {
            dirs: Vec::new(),
            fs,
        };
        for c in CONTROLLERS {
            let Some((_, mount)) = mounts.iter().find(|(n, _)| n == c) else {
                continue;
            };
            let dir = mount.join(parent).join(leaf);
            if !dir.is_dir() {
                continue;
            }
            if let Some(d) = group.dirs.iter_mut().find(|d| d.dir == dir) {
                d.controllers.push(c.to_string());
                continue;
            }
            group.dirs.push(Dir {
                controllers: vec![c.to_string()],
                mount: mount.clone(),
                dir,
                made: Vec::new(),
                created: false,
            });
        }
        group
    }

    pub(crate) fn create(
        mounts: &[(String, PathBuf)],
        fs: &'static dyn CgroupFs,
        parent: &Path,
        leaf: &Path,
        limits: &Limits,
        warnings: &mut Vec<String>,
    ) -> anyhow::Result<V1Cgroup> {
        let mount_of = |c: &str| mounts.iter().find(|(n, _)| n == c).map(|(_, m)| m);
        for (c, needed) in [
            ("cpu", limits.wants_cpu()),
            (
                "memory",
                limits.memory.is_some()
                    || limits.oom_kill_disable
                    || limits.memory_swappiness.is_some(),
            ),
            ("pids", limits.pids.is_some()),
            ("cpuset", limits.wants_cpuset()),
            ("blkio", limits.wants_io()),
        ] {
            if needed && mount_of(c).is_none() {
                bail!(
                    "the {c} controller is not mounted: no cgroup v1 hierarchy in /proc/self/mountinfo \
                     has it, so its files (/sys/fs/cgroup/{c}/...) do not exist"
                );
            }
        }
        let mut group = V1Cgroup {
            dirs: Vec::new(),
            fs,
        };
        // One directory per hierarchy, even where several controllers share it.
        for c in CONTROLLERS {
            let Some(mount) = mount_of(c) else { continue };
            if (c == "cpuset" && !limits.wants_cpuset()) || (c == "blkio" && !limits.wants_io()) {
                continue;
            }
            let dir = mount.join(parent).join(leaf);
            if let Some(d) = group.dirs.iter_mut().find(|d| d.dir == dir) {
                d.controllers.push(c.to_string());
                continue;
            }
            group.dirs.push(Dir {
                controllers: vec![c.to_string()],
                mount: mount.clone(),
                dir,
                made: Vec::new(),
                created: false,
            });
        }
        let result = (|| {
            for i in 0..group.dirs.len() {
                let mount = group.dirs[i].mount.clone();
                let dir = group.dirs[i].dir.clone();
                group.dirs[i].made = mkdir_group(fs, &mount, parent, &dir).map_err(|e| {
                    anyhow::anyhow!(
                        "mkdir {}: {e}{}",
                        dir.display(),
                        if e.kind() == std::io::ErrorKind::AlreadyExists {
                            " (a container by this name is running, or a stale group is left: rmdir it)"
                        } else {
                            ""
                        }
                    )
                })?;
                group.dirs[i].created = true;
                if group.dirs[i].controllers.iter().any(|c| c == "cpuset") {
                    inherit_cpuset(&mount, parent, leaf)?;
                }
            }
            group.apply(limits, warnings)
        })();
        match result {
            Ok(()) => Ok(group),
            Err(e) => {
                group.remove_quietly();
                Err(e)
            }
        }
    }

    fn dir_of(&self, controller: &str) -> Option<&Path> {
        self.dirs
            .iter()
            .find(|d| d.controllers.iter().any(|c| c == controller))
            .map(|d| d.dir.as_path())
    }

    // ANCHOR: v1_limits
    pub(crate) fn apply(&self, l: &Limits, warnings: &mut Vec<String>) -> anyhow::Result<()> {
        if let Some(dir) = self.dir_of("cpu") {
            if let Some((quota, period)) = l.cfs_bandwidth() {
                // QUOTA microseconds of CPU time in every PERIOD microseconds;
                // -1 is v1's "no quota".
                let quota = quota.map_or("-1".to_string(), |q| q.to_string());
                write_file(dir, "cpu.cfs_period_us", &period.to_string(), "cpu")?;
                write_file(dir, "cpu.cfs_quota_us", &quota, "cpu")?;
            }
            let shares = l.cpu_shares.or(l.cpu_weight.map(weight_to_shares));
            if let Some(shares) = shares {
                write_file(dir, "cpu.shares", &shares.to_string(), "cpu")?;
            }
        }
        if let Some(dir) = self.dir_of("memory") {
            if let Some(memory) = l.memory {
                // The kernel keeps memory <= memsw at every moment. Raising
                // both (`docker update -m`) needs memsw first; lowering needs
                // memory first. So memsw is tried first (refused when it is
                // being lowered below the current memory), then both in order.
                let memsw_file = dir.join("memory.memsw.limit_in_bytes");
                if let (true, Some(total)) = (memsw_file.exists(), l.memory_swap) {
                    let _ = std::fs::write(&memsw_file, total.to_string());
                }
                write_file(dir, "memory.limit_in_bytes", &memory.to_string(), "memory")?;
                // memsw is memory *plus* swap, and must never be below the
                // memory limit: so it is written after it. Docker's default,
                // without --memory-swap, is twice the memory.
                let memsw = match l.memory_swap {
                    Some(-1) => "-1".to_string(),
                    Some(total) => total.to_string(),
                    None => (2 * memory).to_string(),
                };
                if dir.join("memory.memsw.limit_in_bytes").exists() {
                    write_file(dir, "memory.memsw.limit_in_bytes", &memsw, "memory")?;
                } else if l.memory_swap.is_some() {
                    // As Docker does: warn, and limit memory alone.
                    warnings.push(format!(
                        "the memory controller has no memory.memsw.limit_in_bytes in {} \
                         (swap accounting is off: boot with swapaccount=1); \
                         --memory-swap is ignored and only memory is limited",
                        dir.display()
                    ));
                }
            }
        }
        if let Some(dir) = self.dir_of("memory") {
            // At the limit the kernel pauses the group's allocating tasks
            // (they wait on the OOM waitqueue) instead of killing one: a
            // frozen container rather than a dead one.
            if l.oom_kill_disable {
                write_file(dir, "memory.oom_control", "1", "memory")?;
            }
            if let Some(swappiness) = l.memory_swappiness {
                write_file(dir, "memory.swappiness", &swappiness.to_string(), "memory")?;
            }
        }
        if let Some(dir) = self.dir_of("blkio") {
            // One "MAJ:MIN BYTES" line per write: the file keeps a rule per
            // device.
            for (file, rules) in [
                ("blkio.throttle.read_bps_device", &l.device_read_bps),
                ("blkio.throttle.write_bps_device", &l.device_write_bps),
            ] {
                for t in rules {
                    let rule = format!("{}:{} {}", t.major, t.minor, t.rate);
                    write_file(dir, file, &rule, "blkio")?;
                }
            }
        }
        if let Some(dir) = self.dir_of("cpuset") {
            if let Some(cpus) = &l.cpuset_cpus {
                write_file(dir, "cpuset.cpus", cpus, "cpuset")?;
            }
            if let Some(mems) = &l.cpuset_mems {
                write_file(dir, "cpuset.mems", mems, "cpuset")?;
            }
        }
        crate::more_limits::apply_v1(
            self.dir_of("memory"),
            self.dir_of("blkio"),
            self.dir_of("cpu"),
            &l.more,
            warnings,
        )?;
        if let Some(dir) = self.dir_of("pids") {
            if let Some(pids) = l.pids {
                let max = if pids == -1 {
                    "max".to_string()
                } else {
                    pids.to_string()
                };
                write_file(dir, "pids.max", &max, "pids")?;
            }
        }
        Ok(())
    }
    // ANCHOR_END: v1_limits
}

// ANCHOR: inherit_cpuset
/// A new v1 cpuset group starts with *empty* `cpuset.cpus` and
/// `cpuset.mems`, and the kernel refuses to move a task into it (ENOSPC: no
/// CPU to run on) until both are set. Unlike the other controllers nothing
/// is inherited, so, as runc and docker do, each level from the hierarchy's
/// root down to the leaf that still has an empty file gets its parent's:
///
/// ```text
/// cat /sys/fs/cgroup/cpuset/cpuset.cpus > /sys/fs/cgroup/cpuset/dockyard/cpuset.cpus
/// cat /sys/fs/cgroup/cpuset/cpuset.mems > /sys/fs/cgroup/cpuset/dockyard/cpuset.mems
/// ```
///
/// The container's own list is written over the leaf's copy afterwards.
fn inherit_cpuset(mount: &Path, parent: &Path, leaf: &Path) -> anyhow::Result<()> {
    let mut above = mount.to_path_buf();
    for c in parent.components().chain(leaf.components()) {
        let dir = above.join(c);
        for file in ["cpuset.cpus", "cpuset.mems"] {
            let own = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
            if own.trim().is_empty() {
                let from = std::fs::read_to_string(above.join(file)).unwrap_or_default();
                write_file(&dir, file, from.trim(), "cpuset")?;
            }
        }
        above = dir;
    }
    Ok(())
}
// ANCHOR_END: inherit_cpuset

impl V1Cgroup {
    pub(crate) fn dirs(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.dir.clone()).collect()
    }

    // ANCHOR: v1_add_pid
    /// Write the PID into every hierarchy's `cgroup.procs`: on v1 a process
    /// is in one group *per hierarchy*.
    pub(crate) fn add_pid(&self, pid: i32) -> anyhow::Result<()> {
        for d in &self.dirs {
            write_file(
                &d.dir,
                "cgroup.procs",
                &pid.to_string(),
                &d.controllers.join(","),
            )?;
        }
        Ok(())
    }
    // ANCHOR_END: v1_add_pid

    /// Every process in any of our hierarchies (they should agree; a process
    /// that was only half moved is found too).
    pub(crate) fn pids(&self) -> anyhow::Result<Vec<i32>> {
        let mut all = Vec::new();
        for d in &self.dirs {
            for pid in read_procs(&d.dir.join("cgroup.procs"))? {
                if !all.contains(&pid) {
                    all.push(pid);
                }
            }
        }
        Ok(all)
    }

    pub(crate) fn stats(&self) -> anyhow::Result<Stats> {
        let file = |c: &str, f: &str| self.dir_of(c).map(|d| d.join(f));
        let read = |c: &str, f: &str| file(c, f).and_then(|p| read_u64(&p));
        Ok(Stats {
            // cpuacct counts nanoseconds.
            cpu_usage_usec: read("cpuacct", "cpuacct.usage").map(|ns| ns / 1000),
            memory_current: read("memory", "memory.usage_in_bytes"),
            memory_peak: read("memory", "memory.max_usage_in_bytes"),
            pids_current: read("pids", "pids.current"),
            pids_denied: file("pids", "pids.events").and_then(|p| read_key(&p, "max")),
            oom_kills: self.oom_count(),
        })
    }

    // ANCHOR: v1_oom
    /// `memory.oom_control` has counted kills in an `oom_kill` line since
    /// Linux 4.13. Before that, `memory.failcnt` (how often the limit was hit)
    /// is the best sign there is.
    fn oom_count(&self) -> Option<u64> {
        let dir = self.dir_of("memory")?;
        read_key(&dir.join("memory.oom_control"), "oom_kill")
            .or_else(|| read_u64(&dir.join("memory.failcnt")))
    }
    // ANCHOR_END: v1_oom

    pub(crate) fn oom_source(&self) -> &'static str {
        let has_oom_kill = self
            .dir_of("memory")
            .and_then(|d| read_key(&d.join("memory.oom_control"), "oom_kill"))
            .is_some();
        if has_oom_kill {
            "memory.oom_control oom_kill"
        } else {
            "memory.failcnt"
        }
    }

    /// v1 has no `cgroup.kill`: signal every PID. A process that forks in
    /// between is caught by the caller's next round.
    pub(crate) fn kill_all(&self) -> anyhow::Result<()> {
        kill_pids(&self.pids()?);
        Ok(())
    }

    pub(crate) fn remove(&mut self) -> anyhow::Result<()> {
        for d in &mut self.dirs {
            if d.created {
                rmdir_leaf(self.fs, &d.dir)?;
                d.created = false;
            }
            remove_dirs(self.fs, &d.made);
            d.made.clear();
        }
        Ok(())
    }

    fn remove_quietly(&mut self) {
        for d in &mut self.dirs {
            if d.created {
                let _ = self.fs.rmdir(&d.dir);
            }
            remove_dirs(self.fs, &d.made);
            d.made.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::{FakeV1, FAKE};
    use crate::{Cgroup, Host, Layout, Version};

    fn host(fake: &FakeV1) -> Host {
        Host {
            layout: Layout::Hybrid,
            v1: fake.mounts.clone(),
            v2_mount: None,
            v2_controllers: Vec::new(),
        }
    }

    fn read(p: PathBuf) -> String {
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    #[test]
    fn limits_land_in_the_v1_files_of_each_hierarchy() {
        let fake = FakeV1::new(&["cpu,cpuacct", "memory", "pids"], true);
        let limits = Limits {
            cpus: Some(0.1),
            cpu_weight: Some(100),
            memory: Some(32 << 20),
            pids: Some(20),
            ..Limits::default()
        };
        let cg = Cgroup::create_with(&host(&fake), &FAKE, "dockyard", "c1", &limits).unwrap();
        assert_eq!(cg.version(), Version::V1);
        let r = fake.root();
        // cpu and cpuacct share a hierarchy: one directory for both.
        assert_eq!(
            cg.dirs(),
            vec![
                r.join("cpu,cpuacct/dockyard/c1"),
                r.join("memory/dockyard/c1"),
                r.join("pids/dockyard/c1")
            ]
        );
        assert_eq!(
            read(r.join("cpu,cpuacct/dockyard/c1/cpu.cfs_quota_us")),
            "10000"
        );
        assert_eq!(
            read(r.join("cpu,cpuacct/dockyard/c1/cpu.cfs_period_us")),
            "100000"
        );
        assert_eq!(
            read(r.join("cpu,cpuacct/dockyard/c1/cpu.shares")),
            weight_to_shares(100).to_string()
        );
        assert_eq!(
            read(r.join("memory/dockyard/c1/memory.limit_in_bytes")),
            (32u64 << 20).to_string()
        );
        assert_eq!(
            read(r.join("memory/dockyard/c1/memory.memsw.limit_in_bytes")),
            (64u64 << 20).to_string()
        );
        assert_eq!(read(r.join("pids/dockyard/c1/pids.max")), "20");
        // A PID above the kernel's PID_MAX_LIMIT (2^22): no real process.
        cg.add_pid(99_999_999).unwrap();
        for d in cg.dirs() {
            assert_eq!(read(d.join("cgroup.procs")), "99999999");
            // The fake kernel: the process exits.
            std::fs::write(d.join("cgroup.procs"), "").unwrap();
        }
    }

    #[test]
    fn no_swap_accounting_is_a_warning_not_a_failure() {
        let fake = FakeV1::new(&["memory"], false);
        let limits = Limits {
            memory: Some(32 << 20),
            memory_swap: Some(64 << 20),
            ..Limits::default()
        };
        let cg = Cgroup::create_with(&host(&fake), &FAKE, "d", "c", &limits).unwrap();
        assert_eq!(cg.warnings.len(), 1, "{:?}", cg.warnings);
        assert!(cg.warnings[0].contains("memory.memsw.limit_in_bytes"));
        assert!(!fake
            .root()
            .join("memory/d/c/memory.memsw.limit_in_bytes")
            .exists());
    }

    #[test]
    fn a_missing_controller_is_named() {
        let fake = FakeV1::new(&["cpu", "memory"], true);
        let limits = Limits {
            pids: Some(20),
            ..Limits::default()
        };
        let err = Cgroup::create_with(&host(&fake), &FAKE, "d", "c", &limits)
            .err()
            .expect("no pids hierarchy");
        let msg = format!("{err:#}");
        assert!(msg.contains("pids controller is not mounted"), "{msg}");
        assert!(!fake.root().join("cpu/d").exists());
    }

    #[test]
    fn stats_and_oom_from_v1_files_and_cleanup() {
        let fake = FakeV1::new(&["cpu", "cpuacct", "memory", "pids"], true);
        let mut cg =
            Cgroup::create_with(&host(&fake), &FAKE, "dockyard", "c1", &Limits::default()).unwrap();
        let r = fake.root();
        std::fs::write(r.join("cpuacct/dockyard/c1/cpuacct.usage"), "301234567\n").unwrap();
        std::fs::write(r.join("memory/dockyard/c1/memory.usage_in_bytes"), "4096\n").unwrap();
        std::fs::write(
            r.join("memory/dockyard/c1/memory.max_usage_in_bytes"),
            "33554432\n",
        )
        .unwrap();
        std::fs::write(r.join("pids/dockyard/c1/pids.current"), "2\n").unwrap();
        std::fs::write(r.join("pids/dockyard/c1/pids.events"), "max 5\n").unwrap();
        assert!(!cg.oom_killed());
        std::fs::write(
            r.join("memory/dockyard/c1/memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
        )
        .unwrap();
        assert_eq!(
            cg.stats().unwrap(),
            Stats {
                cpu_usage_usec: Some(301_234),
                memory_current: Some(4096),
                memory_peak: Some(33_554_432),
                pids_current: Some(2),
                pids_denied: Some(5),
                oom_kills: Some(1),
            }
        );
        assert!(cg.oom_killed());
        assert_eq!(cg.oom_source(), "memory.oom_control oom_kill");
        // An old kernel without the oom_kill line: failcnt instead.
        std::fs::write(
            r.join("memory/dockyard/c1/memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\n",
        )
        .unwrap();
        std::fs::write(r.join("memory/dockyard/c1/memory.failcnt"), "7\n").unwrap();
        assert_eq!(cg.oom_source(), "memory.failcnt");
        assert_eq!(cg.stats().unwrap().oom_kills, Some(7));

        cg.destroy().unwrap();
        for h in ["cpu", "cpuacct", "memory", "pids"] {
            assert!(!r.join(h).join("dockyard").exists(), "{h}");
        }
    }

    #[test]
    fn an_existing_group_is_refused_and_left_alone() {
        let fake = FakeV1::new(&["memory", "pids"], true);
        let first =
            Cgroup::create_with(&host(&fake), &FAKE, "dockyard", "c1", &Limits::default()).unwrap();
        let err = Cgroup::create_with(&host(&fake), &FAKE, "dockyard", "c1", &Limits::default())
            .err()
            .expect("the name is taken");
        assert!(
            format!("{err:#}").contains("a container by this name"),
            "{err:#}"
        );
        // The failed attempt did not remove the first container's group.
        for d in first.dirs() {
            assert!(d.is_dir(), "{}", d.display());
        }
    }
}
