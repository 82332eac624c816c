//! cgroup v2: one tree, one directory per group.
//!
//! Every controller is attached to the same hierarchy, so a container is a
//! single directory: `/sys/fs/cgroup/dockyard/<name>`. Two rules shape the
//! code below:
//!
//! - **Controllers are handed down explicitly.** A group's `cgroup.controllers`
//!   lists what its parent passed down; the parent passes them by writing
//!   `+cpu +memory +pids` into its own `cgroup.subtree_control`. So the lab
//!   enables them on every level from the root to the parent, then makes the
//!   container's directory below.
//! - **No internal processes.** A non-root group that hands controllers down
//!   may not hold processes itself (the kernel answers EBUSY). That is why
//!   containers live in a leaf *below* `dockyard`, never in `dockyard` itself.
//!
//! ```text
//! echo +cpu +memory +pids > /sys/fs/cgroup/cgroup.subtree_control
//! mkdir /sys/fs/cgroup/dockyard
//! echo +cpu +memory +pids > /sys/fs/cgroup/dockyard/cgroup.subtree_control
//! mkdir /sys/fs/cgroup/dockyard/c1
//! echo "10000 100000" > /sys/fs/cgroup/dockyard/c1/cpu.max
//! echo 33554432 > /sys/fs/cgroup/dockyard/c1/memory.max
//! echo 20 > /sys/fs/cgroup/dockyard/c1/pids.max
//! echo $PID > /sys/fs/cgroup/dockyard/c1/cgroup.procs
//! ```

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use crate::{
    kill_pids, mkdir_parents, read_key, read_procs, read_u64, remove_dirs, rmdir_leaf,
    shares_to_weight, write_file, CgroupFs, Limits, Stats,
};

/// The controllers a container's group gets.
const CONTROLLERS: [&str; 3] = ["cpu", "memory", "pids"];

/// A container's group on a v2 host.
pub struct V2Cgroup {
    dir: PathBuf,
    /// Parent directories this group made, outermost first.
    made: Vec<PathBuf>,
    /// Whether `dir` itself was made (and so must be removed).
    created: bool,
    fs: &'static dyn CgroupFs,
}

impl V2Cgroup {
    /// Make `<mount>/<parent>/<leaf>` and write `limits` into it.
    /// An existing group, to read (see [`crate::Cgroup::open`]).
    pub(crate) fn existing(dir: PathBuf, fs: &'static dyn CgroupFs) -> V2Cgroup {
        V2Cgroup {
            dir,
            made: Vec::new(),
            created: false,
            fs,
        }
    }

    pub(crate) fn create(
        mount: &Path,
        fs: &'static dyn CgroupFs,
        parent: &Path,
        leaf: &Path,
        limits: &Limits,
        warnings: &mut Vec<String>,
    ) -> anyhow::Result<V2Cgroup> {
        // v2 has no memory.oom_control nor memory.swappiness: docker's
        // warnings, and the limits go on without them.
        if limits.oom_kill_disable {
            warnings.push(
                "Your kernel does not support OomKillDisable. OomKillDisable discarded.".into(),
            );
        }
        if limits.memory_swappiness.is_some() {
            warnings.push(
                "Your kernel does not support memory swappiness capabilities or the cgroup is \
                 not mounted. Memory swappiness discarded."
                    .into(),
            );
        }
        let available = std::fs::read_to_string(mount.join("cgroup.controllers"))
            .with_context(|| format!("reading {}", mount.join("cgroup.controllers").display()))?;
        let available: Vec<&str> = available.split_whitespace().collect();
        let needed = needed_controllers(limits);
        for c in &needed {
            if !available.contains(c) {
                bail!(
                    "the {c} controller is not available: {} lists only {:?} \
                     (is it bound to a v1 hierarchy, or disabled with cgroup_disable=?)",
                    mount.join("cgroup.controllers").display(),
                    available.join(" ")
                );
            }
        }
        // Hand down whatever the host has of cpu, memory, pids, even without a
        // limit: the group's statistics files come with its controllers.
        // cpuset only when asked: enabling it costs the kernel a walk of
        // every group below on each CPU hotplug.
        let handed: Vec<&str> = CONTROLLERS
            .into_iter()
            .filter(|c| available.contains(c))
            .chain(limits.wants_cpuset().then_some("cpuset"))
            .chain(limits.wants_io().then_some("io"))
            .collect();

        let mut group = V2Cgroup {
            dir: mount.join(parent).join(leaf),
            made: Vec::new(),
            created: false,
            fs,
        };
        // From here on, dropping `group` on an error removes what we made.
        let result = (|| {
            group.make(mount, parent, &handed)?;
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

    /// Make the parent's levels that do not exist, hand the controllers
    /// down from the root to the parent, and make the group itself.
    ///
    /// Two containers may share a parent that the first of them made. When
    /// that one ends it removes the parent if it is empty at that moment,
    /// which can fall anywhere between our `mkdir -p` of the parent and our
    /// `mkdir` of the group: then a `cgroup.subtree_control` write or the
    /// `mkdir` fails with ENOENT. As v1's `mkdir_group` does, the parent is
    /// made again, and its controllers handed down again (a new directory
    /// has none), a few times at most. Every level made in any attempt is
    /// kept in `made`, so a failure removes it.
    fn make(&mut self, mount: &Path, parent: &Path, handed: &[&str]) -> anyhow::Result<()> {
        const ATTEMPTS: usize = 6;
        for attempt in 1..=ATTEMPTS {
            let last = attempt == ATTEMPTS;
            let levels = mkdir_parents(self.fs, mount, parent).and_then(|more| {
                for dir in more {
                    if !self.made.contains(&dir) {
                        self.made.push(dir);
                    }
                }
                // Outermost first, also when an attempt made a level above
                // the ones an earlier attempt made.
                self.made.sort_by_key(|d| d.components().count());
                hand_down(mount, parent, handed)
            });
            if let Err(e) = levels {
                // A level gone again: it was removed under us.
                if !last && !mount.join(parent).is_dir() {
                    continue;
                }
                return Err(e);
            }
            match self.fs.mkdir(&self.dir) {
                Ok(()) => {
                    self.created = true;
                    return Ok(());
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && !last => continue,
                Err(e) => bail!(
                    "mkdir {}: {e}{}",
                    self.dir.display(),
                    if e.kind() == std::io::ErrorKind::AlreadyExists {
                        " (a container by this name is running, or a stale group is left: rmdir it)"
                    } else {
                        ""
                    }
                ),
            }
        }
        unreachable!("the last attempt returns")
    }

    // ANCHOR: v2_limits
    pub(crate) fn apply(&self, l: &Limits, warnings: &mut Vec<String>) -> anyhow::Result<()> {
        let dir = &self.dir;
        if let Some((quota, period)) = l.cfs_bandwidth() {
            // "QUOTA PERIOD": QUOTA microseconds of CPU time per PERIOD;
            // "max" is v2's "no quota".
            let quota = quota.map_or("max".to_string(), |q| q.to_string());
            write_file(dir, "cpu.max", &format!("{quota} {period}"), "cpu")?;
        }
        let weight = l.cpu_weight.or(l.cpu_shares.map(shares_to_weight));
        if let Some(weight) = weight {
            write_file(dir, "cpu.weight", &weight.to_string(), "cpu")?;
        }
        if let Some(memory) = l.memory {
            write_file(dir, "memory.max", &memory.to_string(), "memory")?;
            // v2 counts swap apart from memory: memory.swap.max is swap only.
            // Docker's default, without --memory-swap, is as much swap as memory.
            let swap = match l.memory_swap {
                Some(-1) => "max".to_string(),
                Some(total) => (total as u64 - memory).to_string(),
                None => memory.to_string(),
            };
            if dir.join("memory.swap.max").exists() {
                write_file(dir, "memory.swap.max", &swap, "memory")?;
            }
        }
        if let Some(pids) = l.pids {
            let max = if pids == -1 {
                "max".to_string()
            } else {
                pids.to_string()
            };
            write_file(dir, "pids.max", &max, "pids")?;
        }
        // io.max: one line per device, "MAJ:MIN rbps=N wbps=N"; a key left
        // out keeps its value ("max" for a new group).
        for (key, rules) in [("rbps", &l.device_read_bps), ("wbps", &l.device_write_bps)] {
            for t in rules {
                let rule = format!("{}:{} {key}={}", t.major, t.minor, t.rate);
                write_file(dir, "io.max", &rule, "io")?;
            }
        }
        // v2's cpuset files start empty too, but an empty list means "the
        // parent's effective set" here, so nothing has to be copied down.
        if let Some(cpus) = &l.cpuset_cpus {
            write_file(dir, "cpuset.cpus", cpus, "cpuset")?;
        }
        if let Some(mems) = &l.cpuset_mems {
            write_file(dir, "cpuset.mems", mems, "cpuset")?;
        }
        crate::more_limits::apply_v2(dir, &l.more, warnings)
    }
    // ANCHOR_END: v2_limits

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn add_pid(&self, pid: i32) -> anyhow::Result<()> {
        write_file(&self.dir, "cgroup.procs", &pid.to_string(), "cgroup")
    }

    pub(crate) fn pids(&self) -> anyhow::Result<Vec<i32>> {
        read_procs(&self.dir.join("cgroup.procs"))
    }

    pub(crate) fn stats(&self) -> anyhow::Result<Stats> {
        let d = &self.dir;
        Ok(Stats {
            cpu_usage_usec: read_key(&d.join("cpu.stat"), "usage_usec"),
            memory_current: read_u64(&d.join("memory.current")),
            memory_peak: read_u64(&d.join("memory.peak")),
            pids_current: read_u64(&d.join("pids.current")),
            pids_denied: read_key(&d.join("pids.events"), "max"),
            oom_kills: read_key(&d.join("memory.events"), "oom_kill"),
        })
    }

    // ANCHOR: v2_kill
    /// `cgroup.kill` (Linux 5.14) kills every process in the group in one
    /// write, with no race against forks. Older kernels: signal each PID.
    pub(crate) fn kill_all(&self) -> anyhow::Result<()> {
        let kill = self.dir.join("cgroup.kill");
        if kill.exists() {
            return write_file(&self.dir, "cgroup.kill", "1", "cgroup");
        }
        kill_pids(&self.pids()?);
        Ok(())
    }
    // ANCHOR_END: v2_kill

    pub(crate) fn remove(&mut self) -> anyhow::Result<()> {
        if self.created {
            rmdir_leaf(self.fs, &self.dir)?;
            self.created = false;
        }
        remove_dirs(self.fs, &self.made);
        self.made.clear();
        Ok(())
    }

    fn remove_quietly(&mut self) {
        if self.created {
            let _ = self.fs.rmdir(&self.dir);
            self.created = false;
        }
        remove_dirs(self.fs, &self.made);
        self.made.clear();
    }
}

/// Controllers that the limits need.
pub(crate) fn needed_controllers(l: &Limits) -> Vec<&'static str> {
    let mut v = Vec::new();
    if l.wants_cpu() {
        v.push("cpu");
    }
    if l.memory.is_some() || l.more.memory_reservation.is_some() {
        v.push("memory");
    }
    if l.pids.is_some() {
        v.push("pids");
    }
    if l.wants_cpuset() {
        v.push("cpuset");
    }
    if l.wants_io() {
        v.push("io");
    }
    v
}

// ANCHOR: v2_subtree
/// Enable `controllers` on every level from the root down to the parent:
/// root first, since a level can only pass on what it was given.
fn hand_down(mount: &Path, parent: &Path, controllers: &[&str]) -> anyhow::Result<()> {
    let mut level = mount.to_path_buf();
    enable_controllers(&level, controllers)?;
    for c in parent.components() {
        level.push(c);
        enable_controllers(&level, controllers)?;
    }
    Ok(())
}
// ANCHOR_END: v2_subtree

/// Write `+c` into `dir/cgroup.subtree_control` for each controller not
/// already enabled there. Already-enabled controllers are left alone, so a
/// level that systemd or another runtime set up is not written at all.
fn enable_controllers(dir: &Path, controllers: &[&str]) -> anyhow::Result<()> {
    let current = std::fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap_or_default();
    let current: Vec<&str> = current.split_whitespace().collect();
    let missing: Vec<String> = controllers
        .iter()
        .filter(|c| !current.contains(c))
        .map(|c| format!("+{c}"))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    write_file(dir, "cgroup.subtree_control", &missing.join(" "), "cgroup").with_context(|| {
        format!(
            "enabling {} for the groups below {} (a group that holds processes \
             cannot hand controllers down: the no-internal-processes rule)",
            missing.join(" "),
            dir.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::{FakeV2, FAKE};
    use crate::{Cgroup, CgroupFs, Host, Layout, Version};

    fn host(root: &Path) -> Host {
        Host {
            layout: Layout::V2,
            v1: Vec::new(),
            v2_mount: Some(root.to_path_buf()),
            v2_controllers: vec!["cpu".into(), "memory".into(), "pids".into()],
        }
    }

    fn read(p: PathBuf) -> String {
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    #[test]
    fn limits_land_in_the_v2_files() {
        let fake = FakeV2::new("cpuset cpu io memory pids");
        let limits = Limits {
            cpus: Some(0.1),
            cpu_shares: Some(1024),
            memory: Some(32 << 20),
            pids: Some(20),
            ..Limits::default()
        };
        let cg = Cgroup::create_with(&host(fake.root()), &FAKE, "dockyard", "c1", &limits).unwrap();
        assert_eq!(cg.version(), Version::V2);
        let dir = fake.root().join("dockyard/c1");
        assert_eq!(cg.dirs(), vec![dir.clone()]);
        assert_eq!(read(dir.join("cpu.max")), "10000 100000");
        assert_eq!(read(dir.join("cpu.weight")), "39");
        assert_eq!(read(dir.join("memory.max")), (32u64 << 20).to_string());
        // Docker's default: as much swap as memory.
        assert_eq!(read(dir.join("memory.swap.max")), (32u64 << 20).to_string());
        assert_eq!(read(dir.join("pids.max")), "20");
        // Controllers were handed down from the root to the parent, and only
        // the ones that were missing.
        assert_eq!(
            read(fake.root().join("cgroup.subtree_control")),
            "+cpu +memory +pids"
        );
        assert_eq!(
            read(fake.root().join("dockyard/cgroup.subtree_control")),
            "+cpu +memory +pids"
        );
        // A PID above the kernel's PID_MAX_LIMIT (2^22): no real process.
        cg.add_pid(99_999_999).unwrap();
        assert_eq!(read(dir.join("cgroup.procs")), "99999999");
        // The fake kernel: the process exits, and the group can go.
        std::fs::write(dir.join("cgroup.procs"), "").unwrap();
        drop(cg);
        assert!(!fake.root().join("dockyard").exists());
    }

    #[test]
    fn raw_cpu_quota_and_period_make_cpu_max() {
        for (quota, period, want) in [
            (Some(50_000), Some(200_000), "50000 200000"),
            (Some(-1), Some(50_000), "max 50000"),
            (Some(20_000), None, "20000 100000"),
        ] {
            let fake = FakeV2::new("cpu memory pids");
            let limits = Limits {
                cpu_quota: quota,
                cpu_period: period,
                ..Default::default()
            };
            let mut cg =
                Cgroup::create_with(&host(fake.root()), &FAKE, "dockyard", "c1", &limits).unwrap();
            assert_eq!(read(fake.root().join("dockyard/c1/cpu.max")), want);
            cg.destroy().unwrap();
        }
    }

    #[test]
    fn enabled_controllers_are_not_written_again() {
        let fake = FakeV2::new("cpu memory pids");
        std::fs::write(
            fake.root().join("cgroup.subtree_control"),
            "cpu memory pids",
        )
        .unwrap();
        let cg = Cgroup::create_with(
            &host(fake.root()),
            &FAKE,
            "dockyard",
            "c1",
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(
            read(fake.root().join("cgroup.subtree_control")),
            "cpu memory pids"
        );
        drop(cg);
    }

    #[test]
    fn unlimited_values_are_max() {
        let fake = FakeV2::new("cpu memory pids");
        let limits = Limits {
            memory: Some(64 << 20),
            memory_swap: Some(-1),
            pids: Some(-1),
            cpu_weight: Some(500),
            ..Limits::default()
        };
        let cg = Cgroup::create_with(&host(fake.root()), &FAKE, "p", "c", &limits).unwrap();
        let dir = fake.root().join("p/c");
        assert_eq!(read(dir.join("memory.swap.max")), "max");
        assert_eq!(read(dir.join("pids.max")), "max");
        assert_eq!(read(dir.join("cpu.weight")), "500");
        drop(cg);
        let limits = Limits {
            memory: Some(64 << 20),
            memory_swap: Some(96 << 20),
            ..Limits::default()
        };
        let _cg = Cgroup::create_with(&host(fake.root()), &FAKE, "p", "c", &limits).unwrap();
        assert_eq!(read(dir.join("memory.swap.max")), (32u64 << 20).to_string());
    }

    #[test]
    fn a_missing_controller_is_named_with_its_file() {
        let fake = FakeV2::new("cpu io");
        let limits = Limits {
            memory: Some(32 << 20),
            ..Limits::default()
        };
        let err = Cgroup::create_with(&host(fake.root()), &FAKE, "dockyard", "c1", &limits)
            .err()
            .expect("no memory controller");
        let msg = format!("{err:#}");
        assert!(
            msg.contains("memory controller") && msg.contains("cgroup.controllers"),
            "{msg}"
        );
        // Nothing was created.
        assert!(!fake.root().join("dockyard").exists());
    }

    #[test]
    fn stats_and_oom_come_from_the_groups_own_files() {
        let fake = FakeV2::new("cpu memory pids");
        let cg = Cgroup::create_with(
            &host(fake.root()),
            &FAKE,
            "dockyard",
            "c1",
            &Limits::default(),
        )
        .unwrap();
        let dir = fake.root().join("dockyard/c1");
        assert!(!cg.oom_killed());
        std::fs::write(
            dir.join("cpu.stat"),
            "usage_usec 301234\nuser_usec 300000\nsystem_usec 1234\n",
        )
        .unwrap();
        std::fs::write(dir.join("memory.current"), "1234567\n").unwrap();
        std::fs::write(dir.join("memory.peak"), "33554432\n").unwrap();
        std::fs::write(dir.join("pids.current"), "3\n").unwrap();
        std::fs::write(
            dir.join("memory.events"),
            "low 0\nhigh 0\nmax 120\noom 1\noom_kill 1\noom_group_kill 0\n",
        )
        .unwrap();
        assert_eq!(
            cg.stats().unwrap(),
            Stats {
                cpu_usage_usec: Some(301_234),
                memory_current: Some(1_234_567),
                memory_peak: Some(33_554_432),
                pids_current: Some(3),
                pids_denied: Some(0),
                oom_kills: Some(1),
            }
        );
        assert!(cg.oom_killed());
        assert_eq!(cg.oom_source(), "memory.events oom_kill");
    }

    #[test]
    fn destroy_uses_cgroup_kill_and_removes_only_what_it_made() {
        let fake = FakeV2::new("cpu memory pids");
        // A parent somebody else made, with a sibling in it.
        std::fs::create_dir_all(fake.root().join("shared/other")).unwrap();
        let mut cg = Cgroup::create_with(
            &host(fake.root()),
            &FAKE,
            "shared",
            "c1",
            &Limits::default(),
        )
        .unwrap();
        let dir = fake.root().join("shared/c1");
        cg.add_pid(99_999_999).unwrap();
        // The fake kernel: the process is gone once killed.
        std::fs::write(dir.join("cgroup.procs"), "").unwrap();
        cg.destroy().unwrap();
        assert!(!dir.exists());
        assert!(fake.root().join("shared/other").exists());

        // Our own parent goes with the last container in it.
        let mut cg = Cgroup::create_with(
            &host(fake.root()),
            &FAKE,
            "mine/deeper",
            "c1",
            &Limits::default(),
        )
        .unwrap();
        assert!(fake.root().join("mine/deeper/c1").is_dir());
        cg.destroy().unwrap();
        assert!(!fake.root().join("mine").exists());
    }

    #[test]
    fn destroy_writes_cgroup_kill_while_processes_remain() {
        let fake = FakeV2::new("cpu memory pids");
        let mut cg = Cgroup::create_with(
            &host(fake.root()),
            &FAKE,
            "dockyard",
            "c1",
            &Limits::default(),
        )
        .unwrap();
        let dir = fake.root().join("dockyard/c1");
        cg.add_pid(99_999_999).unwrap();
        // The fake kernel's processes never die: destroy must give up with a
        // clear error, having asked cgroup.kill, and leave the group in place.
        cg.kill_timeout = std::time::Duration::from_millis(200);
        let err = cg.destroy().unwrap_err();
        assert!(
            format!("{err:#}").contains("still holds processes"),
            "{err:#}"
        );
        assert_eq!(read(dir.join("cgroup.kill")), "1");
        assert!(dir.exists());
        std::fs::write(dir.join("cgroup.procs"), "").unwrap();
        cg.destroy().unwrap();
        assert!(!dir.exists());
    }

    #[test]
    fn a_failed_limit_leaves_nothing_behind() {
        let fake = FakeV2::new("cpu memory pids");
        // A read-only file where cpu.max goes: the "kernel" refuses the write.
        fake.make_unwritable("cpu.max");
        let limits = Limits {
            cpus: Some(0.5),
            ..Limits::default()
        };
        let err = Cgroup::create_with(&host(fake.root()), &FAKE, "dockyard", "c1", &limits)
            .err()
            .expect("cpu.max cannot be written");
        let msg = format!("{err:#}");
        assert!(
            msg.contains("cpu controller") && msg.contains("cpu.max"),
            "{msg}"
        );
        assert!(!fake.root().join("dockyard").exists());
    }

    /// The moment another container, which made the shared parent, ends
    /// and removes it (with its own group) under us.
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Moment {
        /// Right after our `mkdir -p` found the parent: before the
        /// controllers are handed down to it.
        AfterParent,
        /// Right before our `mkdir` of the group.
        BeforeGroup,
    }

    /// The fake kernel, and that other container ending once.
    struct RacyFs {
        root: PathBuf,
        moment: Moment,
        fired: std::sync::atomic::AtomicBool,
    }

    impl RacyFs {
        fn other_container_ends(&self) {
            if !self.fired.swap(true, std::sync::atomic::Ordering::SeqCst) {
                FAKE.rmdir(&self.root.join("dockyard/c0")).unwrap();
                FAKE.rmdir(&self.root.join("dockyard")).unwrap();
            }
        }
    }

    impl CgroupFs for RacyFs {
        fn mkdir(&self, path: &Path) -> std::io::Result<()> {
            if self.moment == Moment::BeforeGroup && path == self.root.join("dockyard/c1") {
                self.other_container_ends();
            }
            let made = FAKE.mkdir(path);
            if self.moment == Moment::AfterParent && path == self.root.join("dockyard") {
                self.other_container_ends();
            }
            made
        }
        fn rmdir(&self, path: &Path) -> std::io::Result<()> {
            FAKE.rmdir(path)
        }
    }

    #[test]
    fn a_shared_parent_removed_under_us_is_made_again() {
        for moment in [Moment::AfterParent, Moment::BeforeGroup] {
            let fake = FakeV2::new("cpu memory pids");
            let root = fake.root();
            // Another container's group, in the parent that container made.
            std::fs::write(root.join("cgroup.subtree_control"), "+cpu +memory +pids").unwrap();
            FAKE.mkdir(&root.join("dockyard")).unwrap();
            FAKE.mkdir(&root.join("dockyard/c0")).unwrap();
            let fs: &'static RacyFs = Box::leak(Box::new(RacyFs {
                root: root.to_path_buf(),
                moment,
                fired: false.into(),
            }));
            let limits = Limits {
                pids: Some(20),
                ..Limits::default()
            };
            let mut cg = Cgroup::create_with(&host(root), fs, "dockyard", "c1", &limits)
                .unwrap_or_else(|e| panic!("{moment:?}: {e:#}"));
            assert!(fs.fired.load(std::sync::atomic::Ordering::SeqCst));
            assert!(!root.join("dockyard/c0").exists());
            // The parent was made again and its controllers handed down
            // again: the group has them, and its limit.
            let dir = root.join("dockyard/c1");
            assert_eq!(read(dir.join("cgroup.controllers")), "cpu memory pids");
            assert_eq!(read(dir.join("pids.max")), "20");
            // We made the parent this time, so it goes with us.
            cg.destroy().unwrap();
            assert!(!root.join("dockyard").exists(), "{moment:?}");
        }
    }
}
