//! # One container assembler: a description in, a running process out
//!
//! Lab 02 makes a process in new namespaces; this lab gives it a cgroup with
//! limits and a device list. Everything that starts a container in Dockyard
//! (this lab's `run`, a Dockerfile's `RUN` step in lab 06, the `dockyard`
//! engine) needs both, in the same order, with the same rules for the host
//! it runs on. Those rules live here, once:
//!
//! - **the user namespace.** Docker's default is none: root inside is root
//!   outside, held in by capabilities, seccomp and the rest of lab 02's
//!   security layer, and the image's root-owned files stay root's. A caller
//!   that wants one (`--userns-remap`, rootless) says which IDs it maps to.
//! - **the cgroup namespace.** Docker's default is a private one on a
//!   cgroup v2 host, where the container then sees its own group as `/`,
//!   and the host's on v1 and hybrid hosts, where a cgroup namespace hides
//!   little (each v1 hierarchy would still show its controllers' files).
//! - **the network namespace.** A new one (with only `lo`, which lab 05 can
//!   then wire to a bridge from `before_start`), the host's, or another
//!   process's, entered by path (`--network container:NAME`).
//! - **entering the cgroup.** The child enters its groups by itself, born in
//!   its v2 group or moving its only thread into each v1 one (see
//!   [`crate::Entry`] and [`crate::Joining`]), so that no RCU grace period
//!   is waited for.
//! - **the device list.** Docker's allow list as a v1 `devices` cgroup where
//!   the host has that hierarchy, else as an eBPF program on the v2 group.
//!
//! What an assembled container is made of, in the order it is made:
//!
//! ```text
//! check everything                                  (nothing exists yet)
//! mkdir /sys/fs/cgroup/<ctl>/<parent>/<name>        limits written     (lab 03)
//! device list: devices.deny/allow, or BPF_CGROUP_DEVICE                (lab 03)
//! clone3(CLONE_NEW*, CLONE_INTO_CGROUP) -> child waits on a pipe       (lab 02)
//!   parent: uid_map/gid_map, before_start(pid) (lab 05's veth), "go"
//!   child:  cgroup, namespaces, mounts, pivot_root, security, exec     (labs 01, 02)
//! ```
//!
//! The caller owns what comes back, [`Assembled`]: the process to wait for
//! and the [`Groups`] to take down after it has exited.

use anyhow::{bail, Context};
use lab02_namespaces as lab02;
use nix::sched::CloneFlags;
use nix::unistd::Pid;

use crate::devices::DevicesCgroup;
use crate::{Cgroup, Host, Joining, Limits, Stats, Version};

// ANCHOR: blueprint
/// Everything a container is made of, described before anything exists.
#[derive(Debug, Clone)]
pub struct Blueprint {
    /// What runs, and in which root: argv, env, hostname, working
    /// directory, bind mounts, who it runs as, the security layer, stdio
    /// (lab 02). Its namespace flags are set from the three choices below.
    pub process: lab02::Spec,
    pub userns: UserNs,
    pub netns: NetNs,
    pub cgroupns: CgroupNs,
    /// Its cgroup and limits; `None`: no group of its own (a rootless
    /// engine, whose host's cgroups belong to root).
    pub cgroup: Option<CgroupSpec>,
    pub devices: Devices,
    /// Allow rules added to Docker's list (`--device`: `c 1:11 r`), in the
    /// v1 syntax; the nodes themselves are lab 02's (`process.devices`).
    pub device_rules: Vec<String>,
}
// ANCHOR_END: blueprint

/// The user namespace of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserNs {
    /// None of its own: root inside is the host's root. Docker's default.
    Host,
    /// A new one, whose IDs 0.. map to `uids` and `gids` outside.
    Private {
        uids: lab02::IdMapping,
        gids: lab02::IdMapping,
    },
}

/// The network namespace of a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetNs {
    /// A new one, with only `lo` (up). `docker run --network none`, and the
    /// start of every bridge network (lab 05 adds the veth).
    Private,
    /// The host's (`--network host`).
    Host,
    /// The network namespace of process `pid` (`--network container:NAME`).
    Process(Pid),
}

/// The cgroup namespace of a container (`docker run --cgroupns`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupNs {
    /// Docker's default for the host: private on cgroup v2, the host's on
    /// v1 and hybrid hosts.
    HostDefault,
    /// A new one, rooted at the container's own group.
    Private,
    /// The host's: `/proc/self/cgroup` shows the group's whole path.
    Host,
}

/// A container's own cgroup: `<parent>/<name>` in every hierarchy.
#[derive(Debug, Clone, PartialEq)]
pub struct CgroupSpec {
    pub parent: String,
    pub name: String,
    pub limits: Limits,
}

/// Which device nodes the container may open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Devices {
    /// Any (lab 02's own behaviour, `--privileged`).
    Unrestricted,
    /// Docker's allow list, in the form this host has: a v1 `devices`
    /// cgroup, else an eBPF program on the container's v2 group.
    DockerDefault,
    /// Docker's allow list as an eBPF program, even on a hybrid host (a
    /// group in the unified hierarchy is made for it): lab 03's
    /// `--device-program`.
    DockerDefaultProgram,
}

impl Blueprint {
    /// `process` as `docker run` would run it: no user namespace, a new
    /// network namespace with only `lo`, the host's default cgroup
    /// namespace, no cgroup and every device; set the rest as needed.
    pub fn new(process: lab02::Spec) -> Blueprint {
        Blueprint {
            process,
            userns: UserNs::Host,
            netns: NetNs::Private,
            cgroupns: CgroupNs::HostDefault,
            cgroup: None,
            devices: Devices::Unrestricted,
            device_rules: Vec::new(),
        }
    }

    // ANCHOR: host_rules
    /// Lab 02's spec with its namespace flags set from the choices of the
    /// blueprint, on `host`. Pure: this is where the host-specific rules
    /// are decided, and the unit tests check them.
    pub fn spec_for(&self, host: &Host) -> lab02::Spec {
        let mut spec = self.process.clone();
        match self.userns {
            UserNs::Host => {
                spec.namespaces -= CloneFlags::CLONE_NEWUSER;
                spec.user = None;
                spec.group = None;
            }
            UserNs::Private { uids, gids } => {
                spec.namespaces |= CloneFlags::CLONE_NEWUSER;
                spec.user = Some(uids);
                spec.group = Some(gids);
            }
        }
        match self.netns {
            NetNs::Private => spec.namespaces |= CloneFlags::CLONE_NEWNET,
            NetNs::Host => spec.namespaces -= CloneFlags::CLONE_NEWNET,
            NetNs::Process(pid) => {
                // Entered by path, as `nsenter --net=/proc/PID/ns/net` (lab 02).
                spec.namespaces -= CloneFlags::CLONE_NEWNET;
                let path = lab02::NamespacePath::of_process(CloneFlags::CLONE_NEWNET, pid);
                spec.join_namespaces.push(path);
            }
        }
        let private_cgroupns = match self.cgroupns {
            CgroupNs::HostDefault => host.version() == Version::V2,
            CgroupNs::Private => true,
            CgroupNs::Host => false,
        };
        if private_cgroupns {
            spec.namespaces |= CloneFlags::CLONE_NEWCGROUP;
        } else {
            spec.namespaces -= CloneFlags::CLONE_NEWCGROUP;
        }
        spec.cgroup_mount = self.cgroup_mount(host);
        spec
    }

    /// What the container sees at `/sys/fs/cgroup`, as Docker mounts it: on
    /// v2 a cgroup2 mount (its own group, through its cgroup namespace), on
    /// v1 and hybrid hosts its own directory of each v1 hierarchy. Nothing
    /// without a group of its own.
    fn cgroup_mount(&self, host: &Host) -> lab02::CgroupMount {
        let Some(c) = &self.cgroup else {
            return lab02::CgroupMount::None;
        };
        match host.version() {
            Version::V2 => match host.v2_mount.as_deref() {
                Some(mount) => match crate::group_dir_below(mount, &c.parent, &c.name) {
                    Some(group) => lab02::CgroupMount::Unified { group },
                    None => lab02::CgroupMount::None,
                },
                None => lab02::CgroupMount::None,
            },
            Version::V1 => {
                let mut hierarchies: Vec<(String, std::path::PathBuf)> = Vec::new();
                for (_, mount) in &host.v1 {
                    let Some(name) = mount.file_name().and_then(|n| n.to_str()) else {
                        continue;
                    };
                    let dir = crate::group_dir_below(mount, &c.parent, &c.name);
                    if let (Some(dir), false) = (dir, hierarchies.iter().any(|(n, _)| n == name)) {
                        hierarchies.push((name.to_string(), dir));
                    }
                }
                lab02::CgroupMount::V1 { hierarchies }
            }
        }
    }
    // ANCHOR_END: host_rules

    /// Refuse what cannot work on `host`, before anything is created.
    pub fn check(&self, host: &Host) -> anyhow::Result<()> {
        self.check_spec(host, &self.spec_for(host))
    }

    fn check_spec(&self, host: &Host, spec: &lab02::Spec) -> anyhow::Result<()> {
        if let Some(c) = &self.cgroup {
            c.limits.check(host.version(), crate::ncpus())?;
        }
        if self.devices != Devices::Unrestricted && self.cgroup.is_none() {
            bail!("a device allow list is kept in the container's cgroup, and it has none");
        }
        for rule in &self.device_rules {
            crate::device_filter::DeviceRule::parse(rule)?;
        }
        if let (NetNs::Process(_), UserNs::Private { .. }) = (&self.netns, self.userns) {
            bail!(
                "joining another container's network namespace from a new user namespace is \
                 not supported: that namespace belongs to the host's user namespace, over \
                 which root of the new one has no privilege"
            );
        }
        // Then lab 02's own checks: the command, the rootfs, the namespaces.
        spec.check()?;
        Ok(())
    }
}

/// What [`assemble`] made on the host for one container, to take down once
/// its processes have exited.
#[derive(Default)]
pub struct Groups {
    pub cgroup: Option<Cgroup>,
    pub devices: Option<DevicesCgroup>,
}

impl Groups {
    /// The cgroup's counters now (all `None` without a cgroup).
    pub fn stats(&self) -> Stats {
        self.cgroup
            .as_ref()
            .and_then(|c| c.stats().ok())
            .unwrap_or_default()
    }

    /// Whether the OOM killer killed anything in the cgroup.
    pub fn oom_killed(&self) -> bool {
        self.cgroup.as_ref().is_some_and(Cgroup::oom_killed)
    }

    /// Kill whatever is left in the cgroup, remove it, then the device
    /// list. In that order: a v1 `devices` group can only be removed once
    /// it is empty, and on a v2 host the device program's group *is* the
    /// container's, which takes the program with it.
    pub fn remove(self) -> anyhow::Result<()> {
        let Groups { cgroup, devices } = self;
        if let Some(mut c) = cgroup {
            c.destroy()?;
        }
        if let Some(d) = devices {
            d.remove()?;
        }
        Ok(())
    }
}

/// The same as [`Groups::remove`] for an owner that no longer holds the
/// [`Groups`] (an engine's monitor that exec'd another program since it
/// assembled the container): the groups are found by name, in every
/// hierarchy, the v1 device list's included (on v2, removing the group
/// detaches its device program). Returns whether the OOM killer struck.
pub fn remove_by_name(host: &Host, parent: &str, name: &str) -> anyhow::Result<bool> {
    let oom = Cgroup::open(host, parent, name).is_ok_and(|c| c.oom_killed());
    crate::remove_group(host, parent, name)?;
    Ok(oom)
}

/// A container whose first process runs.
pub struct Assembled {
    pub process: lab02::Container,
    pub groups: Groups,
}

// ANCHOR: assemble
/// Make the container `bp` describes and start its first process.
///
/// `before_start` runs in this process with the child's PID, once the
/// child exists, its ID maps are written and it is in its groups, but
/// before it does anything: lab 05 wires its network namespace to a bridge
/// there. If anything fails, nothing is left behind: the child is killed
/// and the groups removed. Call it from a single-threaded program (lab 02
/// forks).
pub fn assemble(
    host: &Host,
    bp: &Blueprint,
    before_start: impl FnOnce(Pid) -> anyhow::Result<()>,
) -> anyhow::Result<Assembled> {
    let mut spec = bp.spec_for(host);
    bp.check_spec(host, &spec)?;
    let mut groups = Groups::default();
    if let Some(c) = &bp.cgroup {
        groups.cgroup = Some(Cgroup::create(host, &c.parent, &c.name, &c.limits)?);
        groups.devices = match bp.devices {
            Devices::Unrestricted => None,
            Devices::DockerDefault => {
                DevicesCgroup::docker_default_with(&c.parent, &c.name, &bp.device_rules)?
            }
            Devices::DockerDefaultProgram => Some(DevicesCgroup::docker_default_program_with(
                &c.parent,
                &c.name,
                &bp.device_rules,
            )?),
        };
    }
    let spawned = spawn_in(&mut spec, &groups, before_start);
    match spawned {
        Ok(process) => Ok(Assembled { process, groups }),
        Err(e) => {
            // The child is gone (lab 02 killed and reaped it); so are the
            // groups, whose Drop would remove them anyway, but say why if not.
            if let Err(cleanup) = groups.remove() {
                eprintln!("warning: removing a failed container's cgroups: {cleanup:#}");
            }
            Err(e)
        }
    }
}
// ANCHOR_END: assemble

/// Spawn the first process into `groups` (lab 02).
fn spawn_in(
    spec: &mut lab02::Spec,
    groups: &Groups,
    before_start: impl FnOnce(Pid) -> anyhow::Result<()>,
) -> anyhow::Result<lab02::Container> {
    let joining = Joining::prepare(spec, groups.cgroup.as_ref(), groups.devices.as_ref())
        .context("opening the container's cgroups for its first process")?;
    let container = lab02::spawn(spec, |pid| {
        joining.before_start(pid.as_raw())?;
        before_start(pid)
    })?;
    // The child has its own copies of the descriptors it entered through.
    drop(joining);
    Ok(container)
}

/// Move the calling process into the existing group `<parent>/<name>` in
/// every hierarchy that has it, as `docker exec` does before it enters the
/// container's namespaces (once inside its mount namespace, the host's
/// cgroup tree is out of sight). The caller must be single-threaded: it
/// moves by writing `0` ("myself") into each hierarchy's `tasks` (v1, no
/// RCU wait, see [`crate::Entry`]) or `cgroup.procs` (v2).
///
/// ```text
/// echo 0 > /sys/fs/cgroup/<ctl>/<parent>/<name>/tasks        # v1, each hierarchy
/// echo 0 > /sys/fs/cgroup/<parent>/<name>/cgroup.procs       # v2
/// ```
pub fn enter(host: &Host, parent: &str, name: &str) -> anyhow::Result<()> {
    for dir in crate::group_dirs(host, parent, name)? {
        let file = crate::self_join_file(&dir);
        std::fs::write(&file, "0").with_context(|| format!("joining {}", dir.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Layout;

    fn host(layout: Layout) -> Host {
        Host {
            layout,
            v1: match layout {
                Layout::V2 => Vec::new(),
                _ => vec![("memory".into(), "/sys/fs/cgroup/memory".into())],
            },
            v2_mount: match layout {
                Layout::V1 => None,
                Layout::V2 => Some("/sys/fs/cgroup".into()),
                Layout::Hybrid => Some("/sys/fs/cgroup/unified".into()),
            },
            v2_controllers: match layout {
                Layout::V2 => vec!["cpu".into(), "memory".into(), "pids".into()],
                _ => Vec::new(),
            },
        }
    }

    const RANGE: lab02::IdMapping = lab02::IdMapping {
        host_id: 100_000,
        count: 65_536,
    };

    fn remapped() -> UserNs {
        UserNs::Private {
            uids: RANGE,
            gids: RANGE,
        }
    }

    fn blueprint() -> Blueprint {
        Blueprint::new(lab02::Spec::new("/rootfs", vec!["/bin/true".into()]))
    }

    #[test]
    fn docker_defaults_no_user_namespace_and_cgroupns_by_host() {
        let bp = blueprint();
        for layout in [Layout::V1, Layout::Hybrid, Layout::V2] {
            let spec = bp.spec_for(&host(layout));
            assert!(!spec.namespaces.contains(CloneFlags::CLONE_NEWUSER));
            assert!(spec.namespaces.contains(CloneFlags::CLONE_NEWNET));
            assert_eq!(
                spec.namespaces.contains(CloneFlags::CLONE_NEWCGROUP),
                layout == Layout::V2,
                "{layout:?}"
            );
        }
    }

    #[test]
    fn the_containers_own_group_is_mounted_on_sys_fs_cgroup() {
        let mut bp = blueprint();
        assert_eq!(
            bp.spec_for(&host(Layout::V2)).cgroup_mount,
            lab02::CgroupMount::None
        );
        bp.cgroup = Some(CgroupSpec {
            parent: "dockyard".into(),
            name: "c1".into(),
            limits: Limits::default(),
        });
        assert_eq!(
            bp.spec_for(&host(Layout::V2)).cgroup_mount,
            lab02::CgroupMount::Unified {
                group: "/sys/fs/cgroup/dockyard/c1".into()
            }
        );
        let want = lab02::CgroupMount::V1 {
            hierarchies: vec![("memory".into(), "/sys/fs/cgroup/memory/dockyard/c1".into())],
        };
        assert_eq!(bp.spec_for(&host(Layout::Hybrid)).cgroup_mount, want);
        assert_eq!(bp.spec_for(&host(Layout::V1)).cgroup_mount, want);
    }

    #[test]
    fn explicit_choices_win_over_the_host_default() {
        let mut bp = blueprint();
        bp.cgroupns = CgroupNs::Private;
        bp.netns = NetNs::Host;
        bp.userns = remapped();
        let spec = bp.spec_for(&host(Layout::Hybrid));
        assert!(spec.namespaces.contains(CloneFlags::CLONE_NEWCGROUP));
        assert!(!spec.namespaces.contains(CloneFlags::CLONE_NEWNET));
        assert!(spec.namespaces.contains(CloneFlags::CLONE_NEWUSER));
        assert_eq!(spec.user, Some(RANGE));
        bp.cgroupns = CgroupNs::Host;
        let spec = bp.spec_for(&host(Layout::V2));
        assert!(!spec.namespaces.contains(CloneFlags::CLONE_NEWCGROUP));
    }

    #[test]
    fn impossible_blueprints_are_refused_before_anything_exists() {
        let h = host(Layout::Hybrid);
        let mut bp = blueprint();
        bp.devices = Devices::DockerDefault;
        let e = bp.check(&h).unwrap_err().to_string();
        assert!(e.contains("device allow list"), "{e}");
        let mut bp = blueprint();
        bp.netns = NetNs::Process(Pid::from_raw(1));
        bp.userns = remapped();
        let e = format!("{:#}", bp.check(&h).unwrap_err());
        assert!(e.contains("user namespace"), "{e}");
        // Joined by path, not created: lab 02 enters /proc/1/ns/net.
        bp.userns = UserNs::Host;
        let spec = bp.spec_for(&h);
        assert!(!spec.namespaces.contains(CloneFlags::CLONE_NEWNET));
        assert_eq!(spec.join_namespaces.len(), 1);
        assert_eq!(
            spec.join_namespaces[0].path,
            std::path::Path::new("/proc/1/ns/net")
        );
    }
}
