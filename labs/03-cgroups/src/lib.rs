//! # Lab 03: cgroups
//!
//! Namespaces (lab 02) decide what a process can *see*. Control groups decide
//! how much it can *use*: CPU time, memory, the number of processes. A cgroup
//! is a directory in a special file system. Making a directory makes a group,
//! writing a PID into its `cgroup.procs` moves that process (and its future
//! children) into the group, and writing the other files sets the limits. The
//! kernel enforces them, and counts what the group uses in files beside them.
//!
//! cgroups come in two versions with different files, and a host may mount
//! either or both:
//!
//! - **v1**: one hierarchy per controller, `/sys/fs/cgroup/memory/...`,
//!   `/sys/fs/cgroup/cpu/...`. A container is one directory *in each*
//!   hierarchy (`cpu.cfs_quota_us`, `memory.limit_in_bytes`, `pids.max`).
//! - **v2**: one unified hierarchy, `/sys/fs/cgroup/...`. A container is one
//!   directory (`cpu.max`, `memory.max`, `pids.max`).
//! - **hybrid**: v1 controllers plus a cgroup2 mounted at
//!   `/sys/fs/cgroup/unified`, as systemd did for years. A controller can be
//!   attached to only one version at a time, and on a hybrid host the ones we
//!   need (cpu, memory, pids) are taken by v1: the unified hierarchy has none
//!   of them, so a hybrid host is driven exactly like a v1 host.
//!
//! The same experiment by hand, on v1 and on v2 (this is what the lab does):
//!
//! ```text
//! mkdir /sys/fs/cgroup/cpu/dockyard/c1              mkdir -p /sys/fs/cgroup/dockyard
//! echo 100000 > .../c1/cpu.cfs_period_us            echo +cpu +memory +pids > /sys/fs/cgroup/dockyard/cgroup.subtree_control
//! echo 10000  > .../c1/cpu.cfs_quota_us             mkdir /sys/fs/cgroup/dockyard/c1
//! mkdir /sys/fs/cgroup/memory/dockyard/c1           echo "10000 100000" > /sys/fs/cgroup/dockyard/c1/cpu.max
//! echo 33554432 > .../c1/memory.limit_in_bytes      echo 33554432 > /sys/fs/cgroup/dockyard/c1/memory.max
//! echo $PID > .../c1/cgroup.procs   (each one)      echo $PID > /sys/fs/cgroup/dockyard/c1/cgroup.procs
//! ```
//!
//! **Why the raw files, not a crate.** Crates such as `cgroups-rs` or youki's
//! `libcgroups` do all of this, and a real runtime should use one. Here the
//! files *are* the lesson: every limit below is one `write(2)` to a file whose
//! name the learner will meet again in the kernel documentation and in runc.
//! The code keeps youki's shape, though: one [`v1`] and one [`v2`] module
//! behind one [`Cgroup`] type, chosen at run time from [`detect`].

use std::io;
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use nix::fcntl::OFlag;

pub mod assemble;
pub mod device_filter;
pub mod devices;
mod layout;
pub mod more_limits;
mod resources;
mod run;
mod size;
pub mod v1;
pub mod v2;

pub use assemble::{
    assemble, enter, remove_by_name, Assembled, Blueprint, CgroupNs, CgroupSpec, Devices, Groups,
    NetNs, UserNs,
};
pub(crate) use layout::group_dir_below;
pub use layout::{delegation, own_delegation, Delegation, Knob};
pub use more_limits::{blkio_weight_to_io_weight, MoreLimits, Support, WeightDevice};
pub use resources::{online, parse_list, Throttle};
pub use run::{run, Outcome, RunOptions};
pub use size::{parse_size, Size};

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

/// Which set of files a [`Cgroup`] is driven through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

impl Host {
    /// The version whose files carry the limits: v2 only on a pure v2 host.
    /// On a hybrid host the controllers belong to v1 (see the module docs).
    pub fn version(&self) -> Version {
        match self.layout {
            Layout::V2 => Version::V2,
            Layout::V1 | Layout::Hybrid => Version::V1,
        }
    }
}

/// The parent cgroup that containers go under when none is given: one
/// directory, `dockyard`, directly below each hierarchy's root
/// (`/sys/fs/cgroup/dockyard` on v2, `/sys/fs/cgroup/memory/dockyard` and so
/// on v1), as Docker uses `docker`. Nothing outside it is ever written,
/// except enabling controllers in a v2 ancestor that lacks them.
pub const DEFAULT_PARENT: &str = "dockyard";

/// The CFS period: the quota below is "this many microseconds per 100 ms".
pub const CFS_PERIOD_US: u64 = 100_000;

/// Docker's smallest memory limit. Below it the kernel would OOM-kill the
/// command before it got started, which is a confusing way to say "too small".
pub const MIN_MEMORY: u64 = 6 * 1024 * 1024;

/// The limits `docker run` offers for these three controllers, with Docker's
/// meaning. `None` leaves the kernel's default (no limit).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Limits {
    /// `--cpus`: how many CPUs' worth of time per period (0.1 = 10% of one).
    pub cpus: Option<f64>,
    /// `--cpu-period`: the CFS period in microseconds (1000..=1000000), when
    /// the quota is given raw rather than as `--cpus`.
    pub cpu_period: Option<u64>,
    /// `--cpu-quota`: microseconds of CPU time per period (at least 1000),
    /// or -1 for none.
    pub cpu_quota: Option<i64>,
    /// `--cpu-shares` (v1 `cpu.shares`, 2..=262144, default 1024): a relative
    /// weight that only matters when CPUs are contended.
    pub cpu_shares: Option<u64>,
    /// `--cpu-weight` (v2 `cpu.weight`, 1..=10000, default 100): the same idea
    /// on v2's scale.
    pub cpu_weight: Option<u64>,
    /// `--memory` in bytes.
    pub memory: Option<u64>,
    /// `--memory-swap`: memory *plus* swap in bytes, or -1 for unlimited swap.
    pub memory_swap: Option<i64>,
    /// `--pids-limit`: most tasks at once, or -1 for no limit.
    pub pids: Option<i64>,
    /// `--cpuset-cpus` (`cpuset.cpus`, e.g. `0-2,4`): the CPUs the group's
    /// tasks may run on at all, a hard pinning rather than a share of time.
    pub cpuset_cpus: Option<String>,
    /// `--cpuset-mems` (`cpuset.mems`): the NUMA memory nodes it may
    /// allocate from.
    pub cpuset_mems: Option<String>,
    /// `--oom-kill-disable` (v1 `memory.oom_control`): at the limit, tasks wait for memory
    /// instead of one being killed. v2 has no such switch: ignored there, with docker's warning.
    pub oom_kill_disable: bool,
    /// `--memory-swappiness` (v1 `memory.swappiness`, 0..=100), v1 only as above.
    pub memory_swappiness: Option<u64>,
    /// `--device-read-bps`: most bytes per second read from a block device
    /// (v1 `blkio.throttle.read_bps_device`, v2 `io.max` `rbps=`).
    pub device_read_bps: Vec<Throttle>,
    /// `--device-write-bps`: the same for writes (`write_bps_device`,
    /// `wbps=`).
    pub device_write_bps: Vec<Throttle>,
    /// `--memory-reservation`, block I/O weights and IOPS, real-time CPU: `more_limits.rs`.
    pub more: MoreLimits,
}

// ANCHOR: shares_to_weight
/// Docker's (and runc's) conversion from v1 `cpu.shares` (2..=262144) to v2
/// `cpu.weight` (1..=10000): the same straight line through both ranges'
/// ends, so the default 1024 becomes 39, not 100.
pub fn shares_to_weight(shares: u64) -> u64 {
    1 + (shares.clamp(2, 262_144) - 2) * 9999 / 262_142
}

/// The inverse, for `--cpu-weight` on a v1 host.
pub fn weight_to_shares(weight: u64) -> u64 {
    2 + (weight.clamp(1, 10_000) - 1) * 262_142 / 9999
}
// ANCHOR_END: shares_to_weight

impl Limits {
    // ANCHOR: check
    /// Refuse values the kernel would reject, or accept and misbehave on,
    /// before anything is created. Each error names the controller and the
    /// file the value was going to be written to, on this host's version.
    pub fn check(&self, version: Version, ncpus: usize) -> anyhow::Result<()> {
        if let Some(cpus) = self.cpus {
            let file = version.file(Knob::CpuQuota);
            // 0.01 CPUs is a quota of 1000 us, the smallest the kernel takes.
            if !cpus.is_finite() || cpus < 0.01 || cpus > ncpus as f64 {
                bail!(
                    "--cpus {cpus}: the cpu controller's {file} takes from 0.01 to {ncpus} \
                     (the number of CPUs on this host)"
                );
            }
        }
        self.check_cfs(version)?;
        if self.cpu_shares.is_some() && self.cpu_weight.is_some() {
            bail!("--cpu-shares and --cpu-weight set the same thing: give one of them");
        }
        if let Some(shares) = self.cpu_shares {
            let file = version.file(Knob::CpuWeight);
            if !(2..=262_144).contains(&shares) {
                bail!("--cpu-shares {shares}: the cpu controller's {file} takes shares from 2 to 262144 (default 1024)");
            }
        }
        if let Some(weight) = self.cpu_weight {
            let file = version.file(Knob::CpuWeight);
            if !(1..=10_000).contains(&weight) {
                bail!("--cpu-weight {weight}: the cpu controller's {file} takes a weight from 1 to 10000 (default 100)");
            }
        }
        if let Some(memory) = self.memory {
            let file = version.file(Knob::Memory);
            if memory < MIN_MEMORY {
                bail!(
                    "--memory {}: the memory controller's {file} must be at least {} \
                     (smaller, and the command is OOM-killed before it starts)",
                    Size(memory),
                    Size(MIN_MEMORY)
                );
            }
        }
        if let Some(swap) = self.memory_swap {
            let file = version.file(Knob::MemorySwap);
            let Some(memory) = self.memory else {
                bail!("--memory-swap needs --memory: it is memory plus swap ({file})");
            };
            if swap != -1 && (swap < 0 || (swap as u64) < memory) {
                bail!(
                    "--memory-swap {swap}: the memory controller's {file} is memory plus swap, \
                     so it must be at least --memory ({}), or -1 for unlimited swap",
                    Size(memory)
                );
            }
        }
        self.check_cpuset_and_v1_memory()?;
        if let Some(pids) = self.pids {
            if pids == 0 || pids < -1 {
                bail!(
                    "--pids-limit {pids}: the pids controller's pids.max takes a positive number \
                     of tasks, or -1 for no limit (0 would forbid even the command itself)"
                );
            }
        }
        Ok(())
    }
    // ANCHOR_END: check
}

/// What a cgroup has used, read from its own counters. A field is `None` when
/// the host lacks the file (`memory.peak` is new in Linux 5.19, for example).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// CPU time of every task that ever ran in the group, in microseconds
    /// (v1 `cpuacct.usage` / 1000, v2 `cpu.stat` `usage_usec`).
    pub cpu_usage_usec: Option<u64>,
    /// Memory charged to the group now (v1 `memory.usage_in_bytes`, v2
    /// `memory.current`), page cache included.
    pub memory_current: Option<u64>,
    /// The most it was ever charged (v1 `memory.max_usage_in_bytes`, v2
    /// `memory.peak`).
    pub memory_peak: Option<u64>,
    /// Tasks in the group now (`pids.current`).
    pub pids_current: Option<u64>,
    /// Forks refused because the group was at `pids.max` (`pids.events` `max`).
    pub pids_denied: Option<u64>,
    /// Processes the OOM killer killed (v2 `memory.events`, v1 `memory.oom_control`: `oom_kill`).
    pub oom_kills: Option<u64>,
}

/// The two operations where cgroupfs is not an ordinary file system:
/// `mkdir` fills the new directory with the controllers' files, and `rmdir`
/// removes a directory that still shows them. Everything else is plain
/// reads and writes. The unit tests swap in a fake that does the same on a
/// temporary directory, so the v2 code runs on a v1 machine.
pub trait CgroupFs: Sync {
    fn mkdir(&self, path: &Path) -> io::Result<()>;
    fn rmdir(&self, path: &Path) -> io::Result<()>;
}

/// The real thing: `mkdir(2)` and `rmdir(2)`.
pub struct RealFs;

impl CgroupFs for RealFs {
    fn mkdir(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir(path)
    }
    fn rmdir(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_dir(path)
    }
}

enum Backend {
    V1(v1::V1Cgroup),
    V2(v2::V2Cgroup),
}

// ANCHOR: entry
/// How a new process gets into a group *without* its parent writing its PID
/// into `cgroup.procs` afterwards.
///
/// That write is slow, and not because of the file: moving a whole process
/// takes the kernel's global `cgroup_threadgroup_rwsem` for writing, and a
/// writer of that per-CPU semaphore first waits for an RCU grace period.
/// On this course's machines that is 10 to 20 ms, for every container, more
/// than everything else a start does. Two ways around it, one per version:
///
/// - **v2: be born in the group.** `clone3(CLONE_INTO_CGROUP)` (Linux 5.7)
///   takes an open cgroup directory and creates the child in it. The kernel
///   only read-locks the semaphore, as for any fork. (`clone_into`)
/// - **v1: move a single thread.** The v1 `tasks` file moves one *thread*,
///   and a thread moving itself (writing `0`) needs no global lock: nothing
///   else can exec or exit under it. A freshly cloned child has exactly one
///   thread, so moving that thread moves the whole process. The child
///   writes `0` into each hierarchy's `tasks`, through descriptors opened
///   here, before it does anything else. (`tasks`)
///
/// ```text
/// v1, parent:  echo $PID > /sys/fs/cgroup/pids/dockyard/c1/cgroup.procs   # waits for RCU
/// v1, child:   echo 0 > /sys/fs/cgroup/pids/dockyard/c1/tasks             # does not
/// ```
///
/// Both need the child to be ours until it has joined, which lab 02's
/// `spawn` guarantees, and neither works across a user namespace created at
/// clone time in every case, so an engine keeps the old write for those.
pub struct Entry {
    /// v2: the group's directory, for `CLONE_INTO_CGROUP`.
    pub clone_into: Option<OwnedFd>,
    /// v1: each hierarchy's `tasks` file, open for writing.
    pub tasks: Vec<OwnedFd>,
}
// ANCHOR_END: entry

/// A new container's way into its groups, between `spawn`'s two halves:
/// [`Joining::prepare`] puts in lab 02's spec what [`Entry`] allows, and
/// [`Joining::before_start`] (in `spawn`'s `before_start`) writes the PID
/// only where that was not possible. Keep it until `spawn` has returned:
/// it holds the descriptors the child uses.
pub struct Joining<'a> {
    /// Kept open until the child has used them.
    _entries: Vec<Entry>,
    /// The device group, when the child cannot enter it by itself.
    devices_by_pid: Option<&'a devices::DevicesCgroup>,
}

impl<'a> Joining<'a> {
    pub fn prepare(
        spec: &mut lab02_namespaces::Spec,
        cgroup: Option<&Cgroup>,
        devices: Option<&'a devices::DevicesCgroup>,
    ) -> anyhow::Result<Joining<'a>> {
        use std::os::fd::AsRawFd;
        let group = cgroup.map(Cgroup::entry).transpose()?;
        let device = devices.map(|d| d.entry()).transpose()?;
        // A process is born in one v2 group only: a second one (a hybrid
        // host's device program group, beside a v2 container group) is
        // joined by PID.
        let two_births = matches!((&group, &device),
            (Some(g), Some(d)) if g.clone_into.is_some() && d.clone_into.is_some());
        let device = device.filter(|_| !two_births);
        spec.cgroup_entry = lab02_namespaces::CgroupEntry::default();
        for e in group.iter().chain(device.iter()) {
            let tasks = e.tasks.iter().map(AsRawFd::as_raw_fd);
            spec.cgroup_entry.tasks.extend(tasks);
            if let Some(dir) = &e.clone_into {
                spec.cgroup_entry.clone_into = Some(dir.as_raw_fd());
            }
        }
        Ok(Joining {
            _entries: group.into_iter().chain(device).collect(),
            devices_by_pid: devices.filter(|_| two_births),
        })
    }

    /// What is left to do from the parent, with the child's PID.
    pub fn before_start(&self, pid: i32) -> anyhow::Result<()> {
        match self.devices_by_pid {
            Some(d) => d.add(pid),
            None => Ok(()),
        }
    }
}

/// Open `path` for an [`Entry`]: close-on-exec, so that the container's
/// command never inherits a way into the host's cgroup tree.
fn open_for_entry(path: &Path, flags: OFlag) -> anyhow::Result<OwnedFd> {
    nix::fcntl::open(
        path,
        flags | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .with_context(|| format!("opening {}", path.display()))
}

/// The file through which a process that has a single thread moves itself
/// into the group at `dir`: `tasks` on a v1 hierarchy (no global lock, see
/// [`Entry`]), `cgroup.procs` on v2 (the only way there). Write `0` to it.
pub fn self_join_file(dir: &Path) -> PathBuf {
    let tasks = dir.join("tasks");
    if tasks.exists() {
        tasks
    } else {
        dir.join("cgroup.procs")
    }
}

/// One container's cgroup: a directory per v1 hierarchy, or one v2
/// directory. Created with its limits before the command starts, removed by
/// [`Cgroup::destroy`], or on drop.
pub struct Cgroup {
    backend: Backend,
    name: String,
    destroyed: bool,
    /// How long [`Cgroup::destroy`] waits for SIGKILLed processes to go.
    pub(crate) kill_timeout: std::time::Duration,
    /// Things the host could not do that the caller should hear about, such
    /// as a swap limit on a kernel without swap accounting (Docker warns too).
    pub warnings: Vec<String>,
}

// ANCHOR: create
impl Cgroup {
    /// Make `<parent>/<name>` in every hierarchy the host uses, and write
    /// `limits` into it. Nothing is left behind if this fails.
    pub fn create(
        host: &Host,
        parent: &str,
        name: &str,
        limits: &Limits,
    ) -> anyhow::Result<Cgroup> {
        Self::create_with(host, &RealFs, parent, name, limits)
    }

    pub(crate) fn create_with(
        host: &Host,
        fs: &'static dyn CgroupFs,
        parent: &str,
        name: &str,
        limits: &Limits,
    ) -> anyhow::Result<Cgroup> {
        let parent = relative_cgroup_path(parent, "--cgroup-parent")?;
        let leaf = relative_cgroup_path(name, "container name")?;
        if leaf.components().count() != 1 {
            bail!("container name {name:?} must be one path component");
        }
        let version = host.version();
        limits.check(version, ncpus())?;
        let mut warnings = Vec::new();
        // A shared parent may vanish between its mkdir and the leaf's: the
        // last container of another engine process removed it (see
        // `remove_parent_if_empty`). Then the parent is made again.
        let mut tries = 0;
        let backend = loop {
            let made = match version {
                Version::V1 => {
                    v1::V1Cgroup::create(&host.v1, fs, &parent, &leaf, limits, &mut warnings)
                        .map(Backend::V1)
                }
                Version::V2 => {
                    let mount = host
                        .v2_mount
                        .as_deref()
                        .context("the host has no cgroup2 mount")?;
                    v2::V2Cgroup::create(mount, fs, &parent, &leaf, limits, &mut warnings)
                        .map(Backend::V2)
                }
            };
            match made {
                Err(e) if tries < 5 && is_not_found(&e) => {
                    tries += 1;
                    warnings.clear();
                }
                other => break other?,
            }
        };
        Ok(Cgroup {
            backend,
            name: name.to_string(),
            destroyed: false,
            kill_timeout: std::time::Duration::from_secs(10),
            warnings,
        })
    }
    // ANCHOR_END: create

    /// The container's name: the last component of its cgroup path.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The version of the files in use.
    pub fn version(&self) -> Version {
        match self.backend {
            Backend::V1(_) => Version::V1,
            Backend::V2(_) => Version::V2,
        }
    }

    /// Every directory that makes up this cgroup (one on v2).
    pub fn dirs(&self) -> Vec<PathBuf> {
        match &self.backend {
            Backend::V1(c) => c.dirs(),
            Backend::V2(c) => vec![c.dir().to_path_buf()],
        }
    }

    /// Move a process into the group: its children will be born in it.
    pub fn add_pid(&self, pid: i32) -> anyhow::Result<()> {
        match &self.backend {
            Backend::V1(c) => c.add_pid(pid),
            Backend::V2(c) => c.add_pid(pid),
        }
    }

    /// What a process about to be created needs to enter this group
    /// without anyone writing its PID into `cgroup.procs` (see [`Entry`]).
    pub fn entry(&self) -> anyhow::Result<Entry> {
        match &self.backend {
            Backend::V1(c) => Ok(Entry {
                clone_into: None,
                tasks: c
                    .dirs()
                    .iter()
                    .map(|d| open_for_entry(&d.join("tasks"), OFlag::O_WRONLY))
                    .collect::<anyhow::Result<_>>()?,
            }),
            Backend::V2(c) => Ok(Entry {
                clone_into: Some(open_for_entry(
                    c.dir(),
                    OFlag::O_RDONLY | OFlag::O_DIRECTORY,
                )?),
                tasks: Vec::new(),
            }),
        }
    }

    /// The processes in the group now, as the host's PIDs.
    pub fn pids(&self) -> anyhow::Result<Vec<i32>> {
        match &self.backend {
            Backend::V1(c) => c.pids(),
            Backend::V2(c) => c.pids(),
        }
    }

    /// Read the group's counters.
    pub fn stats(&self) -> anyhow::Result<Stats> {
        match &self.backend {
            Backend::V1(c) => c.stats(),
            Backend::V2(c) => c.stats(),
        }
    }

    /// The file and key the OOM count is read from, for messages:
    /// `memory.events oom_kill` or `memory.oom_control oom_kill`.
    pub fn oom_source(&self) -> &'static str {
        match &self.backend {
            Backend::V1(c) => c.oom_source(),
            Backend::V2(_) => "memory.events oom_kill",
        }
    }

    /// Whether the OOM killer killed anything in the group.
    pub fn oom_killed(&self) -> bool {
        matches!(self.stats(), Ok(Stats { oom_kills: Some(n), .. }) if n > 0)
    }

    /// SIGKILL every process in the group, without waiting.
    pub fn kill_all(&self) -> anyhow::Result<()> {
        match &self.backend {
            Backend::V1(c) => c.kill_all(),
            Backend::V2(c) => c.kill_all(),
        }
    }

    // ANCHOR: destroy
    /// Kill what is left inside, wait until the group is empty, and remove
    /// its directories, then the parent's if we made it and it is empty.
    /// A cgroup with processes cannot be removed (`rmdir` says EBUSY), hence
    /// the kill first.
    pub fn destroy(&mut self) -> anyhow::Result<()> {
        if self.destroyed {
            return Ok(());
        }
        let deadline = std::time::Instant::now() + self.kill_timeout;
        loop {
            let pids = self.pids()?;
            if pids.is_empty() {
                break;
            }
            if std::time::Instant::now() > deadline {
                bail!(
                    "cgroup {} still holds processes {pids:?} after SIGKILL; not removing it",
                    self.name
                );
            }
            self.kill_all()?;
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        match &mut self.backend {
            Backend::V1(c) => c.remove()?,
            Backend::V2(c) => c.remove()?,
        }
        self.destroyed = true;
        Ok(())
    }
    // ANCHOR_END: destroy
}

impl Cgroup {
    /// An existing group `<parent>/<name>` that someone else created and will
    /// remove (a container's, seen by `docker stats`): reading its counters
    /// works as for one of ours, and dropping it removes nothing.
    pub fn open(host: &Host, parent: &str, name: &str) -> anyhow::Result<Cgroup> {
        let parent_rel = relative_cgroup_path(parent, "--cgroup-parent")?;
        let leaf = relative_cgroup_path(name, "container name")?;
        let backend = match host.version() {
            Version::V1 => Backend::V1(v1::V1Cgroup::existing(
                &host.v1,
                &RealFs,
                &parent_rel,
                &leaf,
            )),
            Version::V2 => {
                let mount = host
                    .v2_mount
                    .as_deref()
                    .context("the host has no cgroup2 mount")?;
                Backend::V2(v2::V2Cgroup::existing(
                    mount.join(&parent_rel).join(&leaf),
                    &RealFs,
                ))
            }
        };
        Ok(Cgroup {
            backend,
            name: name.to_string(),
            destroyed: true,
            kill_timeout: std::time::Duration::from_secs(10),
            warnings: Vec::new(),
        })
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        if let Err(e) = self.destroy() {
            eprintln!("warning: removing cgroup {}: {e:#}", self.name);
        }
    }
}

/// The host's CPUs, the upper bound for `--cpus`.
pub fn ncpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// A cgroup path as given by the user, made relative to a hierarchy's root.
/// `..` is refused: a parent must never lead outside the hierarchy, nor onto
/// somebody else's cgroup by a detour.
fn relative_cgroup_path(s: &str, what: &str) -> anyhow::Result<PathBuf> {
    let path = Path::new(s.trim_start_matches('/'));
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            _ => bail!("{what} {s:?}: only plain names separated by / are allowed"),
        }
    }
    if out.as_os_str().is_empty() {
        bail!("{what} {s:?} is empty: a container must not run in the root cgroup");
    }
    Ok(out)
}

/// Write one value into one cgroup file, with an error that says which
/// controller, which file and which value.
pub(crate) fn write_file(
    dir: &Path,
    file: &str,
    value: &str,
    controller: &str,
) -> anyhow::Result<()> {
    let path = dir.join(file);
    std::fs::write(&path, value).map_err(|e| {
        let hint = match e.raw_os_error() {
            Some(libc::ENOENT) => format!(" (the {controller} controller is not enabled here)"),
            Some(libc::EINVAL) => " (the kernel refused this value)".to_string(),
            Some(libc::EBUSY) => {
                " (the group is busy: see the no-internal-processes rule)".to_string()
            }
            _ => String::new(),
        };
        anyhow::anyhow!(
            "{controller} controller: writing {value:?} to {}: {e}{hint}",
            path.display()
        )
    })
}

/// Read a file holding one number ("max" counts as none).
pub(crate) fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Read `key value` lines (`cpu.stat`, `memory.events`) and return one value.
pub(crate) fn read_key(path: &Path, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// Read a `cgroup.procs` file.
pub(crate) fn read_procs(path: &Path) -> anyhow::Result<Vec<i32>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect()),
        // Already removed: nothing is in it.
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// SIGKILL each PID; one that has already gone is not an error.
pub(crate) fn kill_pids(pids: &[i32]) {
    for &pid in pids {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// Make the directories of `rel` below `root` that do not exist yet, and
/// return the ones we made (outermost first) so that only those are removed.
pub(crate) fn mkdir_parents(
    fs: &dyn CgroupFs,
    root: &Path,
    rel: &Path,
) -> anyhow::Result<Vec<PathBuf>> {
    let mut made = Vec::new();
    let mut dir = root.to_path_buf();
    for c in rel.components() {
        dir.push(c);
        match fs.mkdir(&dir) {
            Ok(()) => made.push(dir.clone()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                remove_dirs(fs, &made);
                return Err(e).with_context(|| format!("mkdir {}", dir.display()));
            }
        }
    }
    Ok(made)
}

/// Make the group `dir` below `root`/`rel` and the parents it lacks;
/// return the parents we made, as [`mkdir_parents`]. Two containers may
/// share a parent that the first of them made: when that one ends, it
/// removes the parent if it is empty at that moment, which can fall between
/// the second one's `mkdir -p` of the parent and its `mkdir` of its own
/// group (ENOENT). Then the parent is made again, a few times at most.
pub(crate) fn mkdir_group(
    fs: &dyn CgroupFs,
    root: &Path,
    rel: &Path,
    dir: &Path,
) -> io::Result<Vec<PathBuf>> {
    let mut made: Vec<PathBuf> = Vec::new();
    for attempt in 0.. {
        let more: Vec<PathBuf> = mkdir_parents(fs, root, rel)
            .map_err(|e| io::Error::other(format!("{e:#}")))?
            .into_iter()
            .filter(|d| !made.contains(d))
            .collect();
        made.extend(more);
        match fs.mkdir(dir) {
            Ok(()) => return Ok(made),
            Err(e) if e.kind() == io::ErrorKind::NotFound && attempt < 5 => continue,
            Err(e) => {
                remove_dirs(fs, &made);
                return Err(e);
            }
        }
    }
    unreachable!("the loop returns")
}

/// Remove directories we made, innermost first (one already gone is passed
/// over). A parent another container still uses is busy or not empty: it stays.
pub(crate) fn remove_dirs(fs: &dyn CgroupFs, made: &[PathBuf]) {
    for dir in made.iter().rev() {
        if matches!(fs.rmdir(dir), Err(e) if e.kind() != io::ErrorKind::NotFound) {
            break;
        }
    }
}

/// Remove a container's own directory. Right after its last process died the
/// kernel may still say EBUSY for a moment (the task is exiting), so retry.
pub(crate) fn rmdir_leaf(fs: &dyn CgroupFs, dir: &Path) -> anyhow::Result<()> {
    let mut tries = 0;
    loop {
        match fs.rmdir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && tries < 200 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => return Err(e).with_context(|| format!("rmdir {}", dir.display())),
        }
    }
}

/// Remove what a dead owner left: the group `<parent>/<name>` in every
/// hierarchy the host uses, killing whatever still runs in it, then the
/// parent if it is now empty. An engine calls this when the process that
/// would have called [`Cgroup::destroy`] was itself killed. Returns whether
/// anything was found. Only `<parent>/<name>` is ever touched.
pub fn remove_stale(host: &Host, parent: &str, name: &str) -> anyhow::Result<bool> {
    let parents: Vec<PathBuf> = group_dirs(host, parent, name)?
        .iter()
        .filter_map(|d| d.parent().map(Path::to_path_buf))
        .collect();
    let found = remove_group(host, parent, name)?;
    // The parent may be shared with other containers: then it is busy
    // or not empty, and stays.
    for parent in parents {
        let _ = std::fs::remove_dir(parent);
    }
    Ok(found)
}

/// Remove the group `<parent>/<name>` in every hierarchy the host uses,
/// killing whatever still runs in it; the parent stays. For an owner that
/// no longer holds a [`Cgroup`] (one that exec'd another program since it
/// made it). Returns whether anything was found.
pub fn remove_group(host: &Host, parent: &str, name: &str) -> anyhow::Result<bool> {
    let dirs = group_dirs(host, parent, name)?;
    let found = !dirs.is_empty();
    for dir in dirs {
        // v2 can kill the whole group at once; on v1, signal each process,
        // and again in case one forked meanwhile.
        let _ = std::fs::write(dir.join("cgroup.kill"), "1");
        for _ in 0..100 {
            let pids = read_procs(&dir.join("cgroup.procs"))?;
            if pids.is_empty() {
                break;
            }
            kill_pids(&pids);
            std::thread::sleep(Duration::from_millis(10));
        }
        rmdir_leaf(&RealFs, &dir)?;
    }
    Ok(found)
}

// ANCHOR: freeze
/// Freeze or thaw every process of the group `<parent>/<name>`: what
/// `docker pause` does. The kernel stops the tasks where they are, without
/// a signal they could catch or notice, and the group's files say when all
/// are stopped: v2 writes `1` to `cgroup.freeze` and reports `frozen 1` in
/// `cgroup.events`; v1 writes `FROZEN` to `freezer.state` and reads it back
/// until it no longer says `FREEZING`.
pub fn freeze(host: &Host, parent: &str, name: &str, frozen: bool) -> anyhow::Result<()> {
    let dirs = group_dirs(host, parent, name)?;
    let (file, value, done) = match host.version() {
        Version::V2 => ("cgroup.freeze", if frozen { "1" } else { "0" }, None),
        Version::V1 => (
            "freezer.state",
            if frozen { "FROZEN" } else { "THAWED" },
            Some("FREEZING"),
        ),
    };
    let dir = dirs
        .iter()
        .find(|d| d.join(file).exists())
        .with_context(|| {
            format!("no {file} for cgroup {parent}/{name}: is the freezer controller mounted?")
        })?;
    let path = dir.join(file);
    std::fs::write(&path, value)
        .with_context(|| format!("writing {value} to {}", path.display()))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let settled = match (host.version(), done) {
            (Version::V1, Some(busy)) => std::fs::read_to_string(&path)
                .map(|s| s.trim() != busy)
                .unwrap_or(true),
            _ => read_key(&dir.join("cgroup.events"), "frozen") == Some(u64::from(frozen)),
        };
        if settled {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{} did not settle after writing {value}", path.display());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
// ANCHOR_END: freeze

/// Whether the group `<parent>/<name>` is frozen (or freezing): v2's
/// `frozen` key of `cgroup.events`, v1's `freezer.state`. False when the
/// group or its freezer is not there.
pub fn is_frozen(host: &Host, parent: &str, name: &str) -> anyhow::Result<bool> {
    for dir in group_dirs(host, parent, name)? {
        match host.version() {
            Version::V2 => {
                let events = dir.join("cgroup.events");
                if events.exists() {
                    return Ok(read_key(&events, "frozen") == Some(1)
                        || std::fs::read_to_string(dir.join("cgroup.freeze"))
                            .is_ok_and(|s| s.trim() == "1"));
                }
            }
            Version::V1 => {
                if let Ok(s) = std::fs::read_to_string(dir.join("freezer.state")) {
                    return Ok(s.trim() != "THAWED");
                }
            }
        }
    }
    Ok(false)
}

/// The directories of an existing group `<parent>/<name>`, one per
/// hierarchy that has it (every v1 hierarchy, or the v2 one). `docker exec`
/// uses them to put a new process in a running container's cgroup.
pub fn group_dirs(host: &Host, parent: &str, name: &str) -> anyhow::Result<Vec<PathBuf>> {
    let parent = relative_cgroup_path(parent, "--cgroup-parent")?;
    let leaf = relative_cgroup_path(name, "container name")?;
    Ok(hierarchy_roots(host)
        .into_iter()
        .map(|m| m.join(&parent).join(&leaf))
        .filter(|d| d.is_dir())
        .collect())
}

/// The processes of the existing group `<parent>/<name>`, in every
/// hierarchy that has it, each PID once: `docker top` and `docker exec`'s
/// neighbours, read from `cgroup.procs` (`cat .../cgroup.procs`).
pub fn group_pids(host: &Host, parent: &str, name: &str) -> anyhow::Result<Vec<i32>> {
    let mut pids = Vec::new();
    for dir in group_dirs(host, parent, name)? {
        pids.extend(read_procs(&dir.join("cgroup.procs"))?);
    }
    pids.sort_unstable();
    pids.dedup();
    Ok(pids)
}

/// Whether an error comes from a missing file or directory.
fn is_not_found(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::NotFound)
    })
}

/// Remove `parent` in every hierarchy where it is empty: the engine's own
/// default parent ([`DEFAULT_PARENT`]) after its last container, so that
/// nothing of ours stays on the host. Only `rmdir`: the kernel refuses to
/// remove a cgroup that still has groups or processes in it, and that
/// refusal is the answer "not empty", not an error.
pub fn remove_parent_if_empty(host: &Host, parent: &str) -> anyhow::Result<()> {
    let parent = relative_cgroup_path(parent, "--cgroup-parent")?;
    for m in hierarchy_roots(host) {
        let _ = std::fs::remove_dir(m.join(&parent));
    }
    Ok(())
}

/// The root of every hierarchy the host has mounted, v1 and v2, once each.
fn hierarchy_roots(host: &Host) -> Vec<PathBuf> {
    let mut mounts: Vec<PathBuf> = host.v1.iter().map(|(_, m)| m.clone()).collect();
    mounts.extend(host.v2_mount.clone());
    mounts.sort();
    mounts.dedup();
    mounts
}

#[cfg(test)]
pub(crate) mod fake;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_like_docker() {
        assert_eq!(parse_size("1048576").unwrap(), 1 << 20);
        assert_eq!(parse_size("512k").unwrap(), 512 << 10);
        assert_eq!(parse_size("32m").unwrap(), 32 << 20);
        assert_eq!(parse_size("32M").unwrap(), 32 << 20);
        assert_eq!(parse_size("32MiB").unwrap(), 32 << 20);
        assert_eq!(parse_size("32mb").unwrap(), 32 << 20);
        assert_eq!(parse_size("1g").unwrap(), 1 << 30);
        assert_eq!(parse_size("1.5g").unwrap(), 3 << 29);
        assert_eq!(parse_size("100b").unwrap(), 100);
        for bad in ["32x", "", "m", "-5m", "32 mm", "1e3", "32i", "abc"] {
            let err = parse_size(bad).unwrap_err().to_string();
            assert!(err.contains("invalid size"), "{bad}: {err}");
        }
    }

    #[test]
    fn sizes_print_in_binary_units() {
        assert_eq!(Size(32 << 20).to_string(), "32MiB");
        assert_eq!(Size(3 << 29).to_string(), "1.5GiB");
        assert_eq!(Size(100).to_string(), "100B");
    }

    #[test]
    fn shares_and_weights_convert_like_runc() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(weight_to_shares(1), 2);
        assert_eq!(weight_to_shares(10_000), 262_144);
    }

    fn err(limits: Limits, version: Version) -> String {
        format!("{:#}", limits.check(version, 2).unwrap_err())
    }

    #[test]
    fn hostile_cpu_values_name_the_controller_and_file() {
        for cpus in [0.0, -1.0, f64::NAN, f64::INFINITY, 3.0, 0.001] {
            let l = Limits {
                cpus: Some(cpus),
                ..Limits::default()
            };
            let e1 = err(l.clone(), Version::V1);
            assert!(
                e1.contains("cpu controller") && e1.contains("cpu.cfs_quota_us"),
                "{e1}"
            );
            let e2 = err(l, Version::V2);
            assert!(
                e2.contains("cpu controller") && e2.contains("cpu.max"),
                "{e2}"
            );
        }
        let ok = Limits {
            cpus: Some(2.0),
            ..Limits::default()
        };
        ok.check(Version::V1, 2).unwrap();
        let e = err(
            Limits {
                cpu_shares: Some(1),
                ..Limits::default()
            },
            Version::V1,
        );
        assert!(e.contains("cpu.shares"), "{e}");
        let e = err(
            Limits {
                cpu_weight: Some(0),
                ..Limits::default()
            },
            Version::V2,
        );
        assert!(e.contains("cpu.weight"), "{e}");
    }

    #[test]
    fn hostile_memory_and_pids_values_name_the_controller_and_file() {
        let e = err(
            Limits {
                memory: Some(0),
                ..Limits::default()
            },
            Version::V2,
        );
        assert!(
            e.contains("memory controller's memory.max") && e.contains("6MiB"),
            "{e}"
        );
        let e = err(
            Limits {
                memory: Some(1 << 20),
                ..Limits::default()
            },
            Version::V1,
        );
        assert!(e.contains("memory.limit_in_bytes"), "{e}");
        let e = err(
            Limits {
                memory: Some(32 << 20),
                memory_swap: Some(16 << 20),
                ..Limits::default()
            },
            Version::V1,
        );
        assert!(e.contains("memory.memsw.limit_in_bytes"), "{e}");
        let e = err(
            Limits {
                memory_swap: Some(16 << 20),
                ..Limits::default()
            },
            Version::V2,
        );
        assert!(e.contains("needs --memory"), "{e}");
        for pids in [0, -2] {
            let e = err(
                Limits {
                    pids: Some(pids),
                    ..Limits::default()
                },
                Version::V1,
            );
            assert!(e.contains("pids controller's pids.max"), "{e}");
        }
        Limits {
            pids: Some(-1),
            memory: Some(32 << 20),
            memory_swap: Some(-1),
            ..Limits::default()
        }
        .check(Version::V2, 2)
        .unwrap();
    }

    #[test]
    fn cgroup_paths_stay_inside_the_hierarchy() {
        assert_eq!(
            relative_cgroup_path("/a/b", "x").unwrap(),
            PathBuf::from("a/b")
        );
        assert!(relative_cgroup_path("../memory", "x").is_err());
        assert!(relative_cgroup_path("a/../../b", "x").is_err());
        assert!(relative_cgroup_path("/", "x").is_err());
        assert!(relative_cgroup_path("", "x").is_err());
    }
}
