//! # The device cgroup: which device nodes a container may open
//!
//! `CAP_MKNOD` is in Docker's default capability set, so root in a container
//! may *create* a node for any device: `mknod /tmp/disk b 254 0` makes a
//! second name for the host's disk. What stops it from *opening* one is the
//! device cgroup: an allow list, checked by the kernel on every open(2) and
//! mknod(2) of a device node, whatever the path.
//!
//! On cgroup v1 the list is three files of the `devices` controller:
//!
//! ```text
//! mkdir /sys/fs/cgroup/devices/box
//! echo a > /sys/fs/cgroup/devices/box/devices.deny          # nothing at all
//! echo 'c 1:3 rwm' > /sys/fs/cgroup/devices/box/devices.allow   # /dev/null
//! echo $PID > /sys/fs/cgroup/devices/box/cgroup.procs
//! cat /sys/fs/cgroup/devices/box/devices.list
//! ```
//!
//! A rule is `TYPE MAJOR:MINOR ACCESS`: type `c` (character), `b` (block) or
//! `a` (all); `*` for any number; access `r`ead, `w`rite, `m`knod.
//!
//! cgroup v2 has no such files: the same list is an eBPF program attached to
//! the container's cgroup (`BPF_CGROUP_DEVICE`), which
//! [`device_filter`](crate::device_filter) writes from the same rules.
//! [`DevicesCgroup::docker_default`] picks the one the host has: the v1
//! `devices` hierarchy where there is one (v1 and hybrid hosts), the eBPF
//! program on a pure v2 host.

use std::fs;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use crate::device_filter::{self, DeviceRule};

use anyhow::{bail, Context};

// ANCHOR: rules
/// Docker's default allow list, with the reason for each line. Everything
/// else is denied: the host's disks, /dev/mem, /dev/kmsg, GPUs, USB...
pub const DOCKER_DEFAULT_RULES: [(&str, &str); 12] = [
    (
        "c *:* m",
        "mknod any character device: creating a node is harmless, opening it is not",
    ),
    ("b *:* m", "mknod any block device, likewise"),
    ("c 1:3 rwm", "/dev/null"),
    ("c 1:5 rwm", "/dev/zero"),
    ("c 1:7 rwm", "/dev/full"),
    ("c 1:8 rwm", "/dev/random"),
    ("c 1:9 rwm", "/dev/urandom"),
    ("c 5:0 rwm", "/dev/tty"),
    ("c 5:1 rwm", "/dev/console"),
    (
        "c 5:2 rwm",
        "/dev/ptmx, the container's own devpts (newinstance)",
    ),
    ("c 136:* rwm", "/dev/pts/N, its terminals"),
    (
        "c 10:200 rwm",
        "/dev/net/tun, for VPNs in the container's own netns",
    ),
];
// ANCHOR_END: rules

/// A device allow list that this lab set up: a v1 `devices` cgroup it
/// created, or an eBPF program it attached to a v2 cgroup. Removed by
/// [`remove`](Self::remove) or, best effort, when dropped.
#[derive(Debug)]
pub struct DevicesCgroup {
    path: PathBuf,
    /// The parent given to [`DevicesCgroup::create_in`], removed with the
    /// group when no other group is left in it.
    parent: Option<PathBuf>,
    /// On v2: the program attached to `path`, and the rules it was made of.
    program: Option<(OwnedFd, Vec<String>)>,
    /// On v2: the directories made for the program, outermost first (none
    /// when the group is the container's [`crate::Cgroup`], which owns it).
    made: Vec<PathBuf>,
}

/// Where the v1 `devices` hierarchy is mounted, if anywhere.
pub fn devices_hierarchy() -> anyhow::Result<Option<PathBuf>> {
    let host = crate::detect()?;
    Ok(host
        .v1
        .into_iter()
        .find(|(controller, _)| controller == "devices")
        .map(|(_, mount)| mount))
}

impl DevicesCgroup {
    // ANCHOR: create
    /// Create the cgroup `name` under the v1 `devices` hierarchy, deny every
    /// device, then allow `rules` (see [`DOCKER_DEFAULT_RULES`]). Deny first:
    /// a new cgroup starts as a copy of its parent's list, which at the root
    /// is `a *:* rwm`, everything.
    pub fn create(name: &str, rules: &[&str]) -> anyhow::Result<DevicesCgroup> {
        Self::create_in("", name, rules)
    }

    /// Docker's default allow list for a container's `<parent>/<name>`. What
    /// the engine and the builder give every container.
    ///
    /// With a v1 `devices` hierarchy (v1 and hybrid hosts), a cgroup of its
    /// own there. On a pure v2 host, an eBPF program attached to the
    /// container's v2 group, which [`crate::Cgroup::create`] must have made
    /// first. `None` on a host with neither.
    pub fn docker_default(parent: &str, name: &str) -> anyhow::Result<Option<DevicesCgroup>> {
        Self::docker_default_with(parent, name, &[])
    }

    // ANCHOR: with_extra
    /// Docker's default list and `extra` rules after it: `docker run
    /// --device /dev/kmsg:/dev/kmsg:r` adds `c 1:11 r`. Allow rules only add:
    /// a device of the default list keeps its `rwm` whatever `extra` says.
    pub fn docker_default_with(
        parent: &str,
        name: &str,
        extra: &[String],
    ) -> anyhow::Result<Option<DevicesCgroup>> {
        let mut rules: Vec<&str> = DOCKER_DEFAULT_RULES.iter().map(|(r, _)| *r).collect();
        rules.extend(extra.iter().map(String::as_str));
        if devices_hierarchy()?.is_some() {
            return Ok(Some(Self::create_in(parent, name, &rules)?));
        }
        if crate::detect()?.v2_mount.is_none() {
            return Ok(None);
        }
        Ok(Some(Self::docker_default_program_with(
            parent, name, extra,
        )?))
    }
    // ANCHOR_END: with_extra

    /// Docker's default list as a device program on the v2 group
    /// `<parent>/<name>`. On a v2 host that is the container's own group,
    /// made by [`crate::Cgroup::create`]; where it is missing (a hybrid host
    /// keeps the limits in v1 hierarchies) it is made here, and removed
    /// with the program.
    pub fn docker_default_program(parent: &str, name: &str) -> anyhow::Result<DevicesCgroup> {
        Self::docker_default_program_with(parent, name, &[])
    }

    /// The same with `extra` rules after Docker's (see
    /// [`docker_default_with`](Self::docker_default_with)).
    pub fn docker_default_program_with(
        parent: &str,
        name: &str,
        extra: &[String],
    ) -> anyhow::Result<DevicesCgroup> {
        check_names(parent, name)?;
        let Some(mount) = crate::detect()?.v2_mount else {
            bail!("no cgroup2 mount: a device program needs the unified hierarchy");
        };
        let mut made = Vec::new();
        let mut dir = mount.clone();
        for part in Path::new(parent).join(name).components() {
            dir.push(part);
            match fs::create_dir(&dir) {
                Ok(()) => made.push(dir.clone()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => {
                    remove_made(&made);
                    return Err(e).with_context(|| format!("mkdir {}", dir.display()));
                }
            }
        }
        let mut rules: Vec<&str> = DOCKER_DEFAULT_RULES.iter().map(|(r, _)| *r).collect();
        rules.extend(extra.iter().map(String::as_str));
        match Self::attach_program(&dir, &rules) {
            Ok(mut d) => {
                d.made = made;
                Ok(d)
            }
            Err(e) => {
                remove_made(&made);
                Err(e)
            }
        }
    }

    // ANCHOR: attach_program
    /// The cgroup v2 way: compile `rules` into a device program, load it and
    /// attach it to the existing v2 group `dir`. Everything not in `rules`
    /// is denied; there is no inherited list to deny first, as on v1,
    /// because the program's last instruction is the deny.
    pub fn attach_program(dir: &Path, rules: &[&str]) -> anyhow::Result<DevicesCgroup> {
        let parsed = rules
            .iter()
            .map(|r| DeviceRule::parse(r))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let program = device_filter::load(&device_filter::device_program(&parsed))?;
        device_filter::attach(dir, &program)?;
        Ok(DevicesCgroup {
            path: dir.to_path_buf(),
            parent: None,
            program: Some((program, rules.iter().map(|r| r.to_string()).collect())),
            made: Vec::new(),
        })
    }
    // ANCHOR_END: attach_program

    /// The same, as `<parent>/<name>` (the parent is made if missing, and
    /// left for others: the engine keeps every container under `dockyard`).
    pub fn create_in(parent: &str, name: &str, rules: &[&str]) -> anyhow::Result<DevicesCgroup> {
        check_names(parent, name)?;
        let Some(hierarchy) = devices_hierarchy()? else {
            bail!(
                "no cgroup v1 'devices' hierarchy: on cgroup v2 the device allow list is an eBPF \
                 program (DevicesCgroup::attach_program)"
            );
        };
        let base = hierarchy.join(parent);
        fs::create_dir_all(&base).with_context(|| format!("mkdir -p {}", base.display()))?;
        let path = base.join(name);
        fs::create_dir(&path).with_context(|| format!("mkdir {}", path.display()))?;
        let cgroup = DevicesCgroup {
            path,
            parent: (!parent.is_empty()).then_some(base),
            program: None,
            made: Vec::new(),
        };
        cgroup.write("devices.deny", "a")?;
        for rule in rules {
            cgroup.write("devices.allow", rule)?;
        }
        Ok(cgroup)
    }
    // ANCHOR_END: create

    /// What a new process needs to enter this group by itself (see
    /// [`crate::Entry`]): on v1 the group's `tasks` file; on a hybrid host's
    /// unified hierarchy, the v2 group made for the program, to be born in;
    /// nothing on v2, where the group is the container's own, which
    /// [`crate::Cgroup::entry`] already covers.
    pub fn entry(&self) -> anyhow::Result<crate::Entry> {
        use nix::fcntl::OFlag;
        let mut entry = crate::Entry {
            clone_into: None,
            tasks: Vec::new(),
        };
        if self.program.is_none() {
            let tasks = self.path.join("tasks");
            entry
                .tasks
                .push(crate::open_for_entry(&tasks, OFlag::O_WRONLY)?);
        } else if !self.made.is_empty() {
            entry.clone_into = Some(crate::open_for_entry(
                &self.path,
                OFlag::O_RDONLY | OFlag::O_DIRECTORY,
            )?);
        }
        Ok(entry)
    }

    /// Move process `pid` (and, as it forks, its children) into the cgroup.
    /// (On a v2 host, where the group is the container's own, it is there
    /// already, and the move changes nothing.)
    pub fn add(&self, pid: i32) -> anyhow::Result<()> {
        self.write("cgroup.procs", &pid.to_string())
    }

    /// The list, one rule a line: on v1 the kernel's view (`devices.list`);
    /// on v2, where the kernel keeps only the compiled program, the rules it
    /// was compiled from.
    pub fn list(&self) -> anyhow::Result<String> {
        if let Some((_, rules)) = &self.program {
            return Ok(rules.iter().map(|r| format!("{r}\n")).collect());
        }
        let file = self.path.join("devices.list");
        fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Remove the cgroup; it must be empty (its processes have exited). On
    /// v2, detach the program and leave the group to its owner (if the group
    /// is gone already, so is the program).
    pub fn remove(mut self) -> anyhow::Result<()> {
        let path = std::mem::take(&mut self.path);
        if let Some((program, _)) = self.program.take() {
            if path.is_dir() {
                device_filter::detach(&path, &program)?;
            }
            let made = std::mem::take(&mut self.made);
            if let Some(leaf) = made.last() {
                fs::remove_dir(leaf).with_context(|| format!("rmdir {}", leaf.display()))?;
            }
            remove_made(&made);
            return Ok(());
        }
        fs::remove_dir(&path).with_context(|| format!("rmdir {}", path.display()))?;
        if let Some(parent) = self.parent.take() {
            // Busy or not empty while other containers use it: then it stays.
            let _ = fs::remove_dir(parent);
        }
        Ok(())
    }

    fn write(&self, file: &str, value: &str) -> anyhow::Result<()> {
        let target = self.path.join(file);
        fs::write(&target, value)
            .with_context(|| format!("writing {value:?} to {}", target.display()))
    }
}

impl Drop for DevicesCgroup {
    fn drop(&mut self) {
        if self.path.as_os_str().is_empty() {
            return;
        }
        match &self.program {
            Some((program, _)) => {
                let _ = device_filter::detach(&self.path, program);
                remove_made(&self.made);
            }
            None => {
                let _ = fs::remove_dir(&self.path);
            }
        }
    }
}

/// Remove directories made for a program, innermost first; one that is busy
/// (processes, or another container's group below) stays.
fn remove_made(made: &[PathBuf]) {
    for dir in made.iter().rev() {
        let _ = fs::remove_dir(dir);
    }
}

/// `name` is one plain path component and `parent` a relative path that
/// stays inside the hierarchy.
fn check_names(parent: &str, name: &str) -> anyhow::Result<()> {
    if name.is_empty() || name.contains('/') || name.starts_with('.') {
        bail!("cgroup name {name:?}: one plain path component, please");
    }
    if parent.split('/').any(|c| c == "..") || parent.starts_with('/') {
        bail!("cgroup parent {parent:?}: a relative path without '..', please");
    }
    Ok(())
}
