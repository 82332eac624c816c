//! # From config.json to a Blueprint
//!
//! An OCI bundle describes a container with the runtime specification's
//! vocabulary (`linux.namespaces`, `process.capabilities.bounding`,
//! `linux.resources.memory.limit`); lab 03's assembler takes a
//! [`Blueprint`] in Dockyard's. This module is the dictionary between the
//! two, and it is pure: it reads the config and the host's cgroup layout and
//! decides, so that a bad bundle is refused before anything exists.
//!
//! | config.json                        | Blueprint                                   |
//! |------------------------------------|---------------------------------------------|
//! | `root.path`, `root.readonly`       | `process.rootfs`, `security.read_only_rootfs` |
//! | `linux.namespaces[]` (with `path`) | `process.namespaces`, `join_namespaces`, `userns`, `netns`, `cgroupns` |
//! | `linux.uidMappings`/`gidMappings`  | `UserNs::Private { uids, gids }`            |
//! | `mounts[]` (bind, tmpfs)           | `process.binds`, `security.tmpfs`           |
//! | `rootfsPropagation`, `rshared`...  | `process.propagation` (lab 02's `propagation`) |
//! | `process.capabilities` (five sets) | `security.cap_sets` (`cap_add` = bounding)  |
//! | `linux.seccomp`                    | lab 02's compiler, `Seccomp::Profile`       |
//! | `linux.cgroupsPath`, `resources`   | `CgroupSpec { parent, name, limits }`       |
//! | `resources.devices`, `devices`     | lab 03's `DevicesCgroup`, lab 02's `devnodes` (by create) |
//!
//! What the blueprint has no word for is done around the assembler by
//! [`crate::lifecycle`]: `oomScoreAdj`, `sysctl`, `domainname` and hooks.

use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context};
use lab02::propagation;
use lab02_namespaces as lab02;
use lab03::assemble::{Blueprint, CgroupNs, CgroupSpec, Devices, NetNs, UserNs};
use lab03_cgroups as lab03;
use nix::mount::MsFlags;
use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxNamespaceType, LinuxResources, Spec};

/// Everything `create` needs, decided from the bundle.
pub struct Plan {
    pub blueprint: Blueprint,
    pub oom_score_adj: Option<i32>,
    /// `linux.sysctl`, and `domainname` as `kernel.domainname`.
    pub sysctl: Vec<(String, String)>,
    /// `linux.resources.devices` as lab 03's rules (`c 1:3 rwm`), after a
    /// deny-all; `None`: every device (the config restricts nothing).
    pub device_rules: Option<Vec<String>>,
    /// `linux.devices`: nodes to make in the container's /dev.
    pub device_nodes: Vec<lab02::devnodes::DeviceNode>,
    pub warnings: Vec<String>,
}

/// Read `bundle/config.json`: a missing or malformed file is a clear error.
pub fn load(bundle: &Path) -> anyhow::Result<(PathBuf, Spec, serde_json::Value)> {
    let bundle = bundle
        .canonicalize()
        .with_context(|| format!("bundle {}", bundle.display()))?;
    let path = bundle.join("config.json");
    let text = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let raw: serde_json::Value = serde_json::from_slice(&text)
        .with_context(|| format!("{}: malformed JSON", path.display()))?;
    let spec: Spec = serde_json::from_value(raw.clone())
        .with_context(|| format!("{}: not an OCI runtime config", path.display()))?;
    Ok((bundle, spec, raw))
}

/// `root.path`, resolved: a relative one lives in the bundle and may not
/// climb out of it; an absolute one is used as it is (podman's bundles
/// point at an overlay mount elsewhere).
pub fn rootfs(bundle: &Path, spec: &Spec) -> anyhow::Result<PathBuf> {
    let root = spec.root().as_ref().context("config.json has no root")?;
    let path = root.path();
    if path.is_relative() && path.components().any(|c| c == Component::ParentDir) {
        bail!(
            "root.path {:?} is outside the bundle {}",
            path,
            bundle.display()
        );
    }
    let full = bundle.join(path);
    let canonical = full
        .canonicalize()
        .with_context(|| format!("rootfs {}", full.display()))?;
    if path.is_relative() && !canonical.starts_with(bundle) {
        bail!(
            "root.path {:?} resolves to {}, outside the bundle {}",
            path,
            canonical.display(),
            bundle.display()
        );
    }
    Ok(canonical)
}

/// Translate the whole config (see the module documentation).
pub fn plan(
    spec: &Spec,
    rootfs: &Path,
    bundle: &Path,
    state_dir: &Path,
    id: &str,
    host: &lab03::Host,
) -> anyhow::Result<Plan> {
    let mut warnings = Vec::new();
    let process = spec
        .process()
        .as_ref()
        .context("config.json has no process")?;
    let mut p = lab02::Spec::new(rootfs, Vec::new());
    process_fields(&mut p, process)?;
    p.hostname = spec.hostname().clone().filter(|h| !h.is_empty());
    // An OCI runtime's create exits while the container lives on, blocked
    // on its exec fifo until start (see lab 02's `gate`).
    p.die_with_parent = false;
    p.exec_fifo = Some(state_dir.join("exec.fifo"));
    p.security = Some(security(
        spec,
        process,
        state_dir,
        &mut p,
        bundle,
        &mut warnings,
    )?);
    let mut bp = Blueprint::new(p);
    let linux = spec
        .linux()
        .as_ref()
        .context("config.json has no linux section")?;
    namespaces(&mut bp, linux)?;
    if let Some(path) = linux.cgroups_path() {
        bp.cgroup = Some(cgroup(path, id, linux.resources().as_ref())?);
    } else {
        bp.cgroup = Some(cgroup(Path::new(""), id, linux.resources().as_ref())?);
    }
    // The exact allow list is applied by create once the process exists
    // (lab 03's DevicesCgroup), so the blueprint itself restricts nothing.
    bp.devices = Devices::Unrestricted;
    let device_rules = device_rules(linux.resources().as_ref())?;
    let device_nodes = device_nodes(linux)?;
    let mut sysctl: Vec<(String, String)> = linux
        .sysctl()
        .as_ref()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    sysctl.sort();
    if let Some(d) = spec.domainname().as_ref().filter(|d| !d.is_empty()) {
        sysctl.push(("kernel.domainname".into(), d.clone()));
    }
    if let Some(label) = process
        .apparmor_profile()
        .as_ref()
        .filter(|l| !l.is_empty())
    {
        warnings.push(format!(
            "apparmor profile {label:?} not applied: AppArmor is not supported by this runtime"
        ));
    }
    if process
        .selinux_label()
        .as_ref()
        .is_some_and(|l| !l.is_empty())
    {
        bail!("process.selinuxLabel is set, and this runtime does not support SELinux");
    }
    if linux.mount_label().as_ref().is_some_and(|l| !l.is_empty()) {
        bail!("linux.mountLabel is set, and this runtime does not support SELinux");
    }
    if let Some(prop) = linux
        .rootfs_propagation()
        .as_ref()
        .filter(|p| !p.is_empty())
    {
        let flags = lab02::propagation::parse(prop).context("linux.rootfsPropagation")?;
        bp.process.propagation.root = Some(flags);
    }
    let prop = &mut bp.process.propagation;
    // Anything but private needs the host's side (see lab 02's `propagation`).
    let private = MsFlags::MS_PRIVATE | MsFlags::MS_REC;
    prop.slave_of_host = prop
        .root
        .iter()
        .chain(prop.mounts.iter().map(|(_, f)| f))
        .any(|f| !private.contains(*f));
    bp.check(host)?;
    Ok(Plan {
        blueprint: bp,
        oom_score_adj: process.oom_score_adj(),
        sysctl,
        device_rules,
        device_nodes,
        warnings,
    })
}

/// `process`: argv, env, cwd, user, terminal, rlimits.
fn process_fields(p: &mut lab02::Spec, process: &oci_spec::runtime::Process) -> anyhow::Result<()> {
    p.argv = process
        .args()
        .as_ref()
        .filter(|a| !a.is_empty())
        .context("process.args is empty")?
        .iter()
        .map(OsString::from)
        .collect();
    p.env = process
        .env()
        .as_ref()
        .map(|e| e.iter().map(OsString::from).collect())
        .unwrap_or_default();
    p.cwd = Some(process.cwd().clone());
    let user = process.user();
    p.run_as = Some(lab02::RunAs {
        uid: user.uid(),
        gid: user.gid(),
        groups: user.additional_gids().clone().unwrap_or_default(),
    });
    p.tty = process.terminal().unwrap_or(false);
    p.tty_size = process
        .console_size()
        .map(|b| (b.height() as u16, b.width() as u16));
    for r in process.rlimits().iter().flatten() {
        let name = serde_json::to_value(r.typ())?;
        let name = name.as_str().unwrap_or_default().to_ascii_lowercase();
        let short = name.trim_start_matches("rlimit_");
        let text = format!("{short}={}:{}", r.soft(), r.hard());
        p.rlimits.push(lab02::parse_ulimit(&text)?);
    }
    Ok(())
}

/// Lab 02's security layer, from the config's own lists (not Docker's
/// defaults: the caller, containerd or podman, already wrote those there).
/// `process.capabilities` as lab 02's five masks; a set the spec leaves
/// out is empty, as in runc.
pub(crate) fn cap_sets(
    c: &oci_spec::runtime::LinuxCapabilities,
) -> anyhow::Result<lab02::security::CapSets> {
    let names = |set: &Option<oci_spec::runtime::Capabilities>| -> anyhow::Result<Vec<String>> {
        let v = serde_json::to_value(set)?;
        Ok(v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|n| n.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default())
    };
    lab02::security::CapSets::from_names(
        &names(c.bounding())?,
        &names(c.effective())?,
        &names(c.permitted())?,
        &names(c.inheritable())?,
        &names(c.ambient())?,
    )
}

fn security(
    spec: &Spec,
    process: &oci_spec::runtime::Process,
    state_dir: &Path,
    p: &mut lab02::Spec,
    bundle: &Path,
    warnings: &mut Vec<String>,
) -> anyhow::Result<lab02::security::Security> {
    use lab02::security::{Seccomp, Security, Tmpfs};
    let mut s = Security::docker_default();
    // The bounding set as docker's cap_drop/cap_add (what seccomp's
    // capability-conditional rules look at); `cap_sets` below applies it
    // and the other four.
    s.cap_drop = vec!["ALL".into()];
    s.cap_add = match process
        .capabilities()
        .as_ref()
        .and_then(|c| c.bounding().clone())
    {
        Some(set) => {
            let v = serde_json::to_value(set)?;
            let mut names: Vec<String> = v
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|n| n.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            names.sort();
            names
        }
        None => Vec::new(),
    };
    // And the five sets one by one, as the spec gives them: lab 02 drops
    // the bounding set, then capset(2)s the rest (see `CapSets`).
    s.cap_sets = process.capabilities().as_ref().map(cap_sets).transpose()?;
    s.no_new_privileges = process.no_new_privileges().unwrap_or(false);
    let linux = spec.linux().as_ref();
    s.masked_paths = linux
        .and_then(|l| l.masked_paths().clone())
        .unwrap_or_default()
        .into_iter()
        .map(PathBuf::from)
        .collect();
    s.readonly_paths = linux
        .and_then(|l| l.readonly_paths().clone())
        .unwrap_or_default()
        .into_iter()
        .map(PathBuf::from)
        .collect();
    s.read_only_rootfs = spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false);
    s.seccomp = match linux.and_then(|l| l.seccomp().as_ref()) {
        // The spec's profile has Docker's shape (defaultAction, syscalls
        // with names, action and args): lab 02 compiles it in the parent.
        Some(profile) => {
            let path = state_dir.join("seccomp.json");
            std::fs::write(&path, serde_json::to_vec(profile)?)
                .with_context(|| format!("writing {}", path.display()))?;
            Seccomp::Profile(path)
        }
        None => Seccomp::Unconfined,
    };
    for m in spec.mounts().iter().flatten() {
        let dest = m.destination();
        let typ = m.typ().clone().unwrap_or_default();
        let options = m.options().clone().unwrap_or_default();
        if lab02_mounts_it(dest) {
            continue; // lab 02 makes /proc, /dev, /sys and friends itself
        }
        if typ == "bind" || options.iter().any(|o| o == "bind" || o == "rbind") {
            let source = m
                .source()
                .clone()
                .context("a bind mount without a source")?;
            p.binds.push(lab02::Bind {
                source: bundle.join(source),
                target: dest.clone(),
                read_only: options.iter().any(|o| o == "ro"),
            });
            mount_propagation(p, dest, &options);
            // Lab 02's binds are recursive; say what else was asked.
            let known = ["bind", "rbind", "ro", "rw"];
            let ignored: Vec<&String> = options
                .iter()
                .filter(|o| !known.contains(&o.as_str()) && propagation::flags(o).is_none())
                .collect();
            if !ignored.is_empty() {
                warnings.push(format!(
                    "bind mount at {}: options {ignored:?} not applied",
                    dest.display()
                ));
            }
        } else if typ == "tmpfs" {
            let opts: Vec<&str> = options
                .iter()
                .map(String::as_str)
                .filter(|o| o.starts_with("size=") || o.starts_with("mode="))
                .collect();
            mount_propagation(p, dest, &options);
            s.tmpfs.push(Tmpfs {
                path: dest.clone(),
                options: opts.join(","),
            });
        } else {
            warnings.push(format!(
                "mount of type {typ:?} at {} is not supported, skipped",
                dest.display()
            ));
        }
    }
    Ok(s)
}

/// A mount's propagation options (`rslave`, `shared`...), in order, for
/// lab 02 to apply after pivot_root.
fn mount_propagation(p: &mut lab02::Spec, dest: &Path, options: &[String]) {
    for flags in options.iter().filter_map(|o| propagation::flags(o)) {
        p.propagation.mounts.push((dest.to_path_buf(), flags));
    }
}

/// The mounts every container gets from lab 02 itself.
fn lab02_mounts_it(dest: &Path) -> bool {
    [
        "/proc",
        "/dev",
        "/dev/pts",
        "/dev/shm",
        "/dev/mqueue",
        "/sys",
        "/sys/fs/cgroup",
    ]
    .iter()
    .any(|d| dest == Path::new(d))
}

/// The clone flag of a namespace type.
pub fn flag(t: LinuxNamespaceType) -> anyhow::Result<CloneFlags> {
    Ok(match t {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Time => {
            bail!("the time namespace is not supported by this runtime")
        }
    })
}

/// `linux.namespaces`: each new, or joined by `path`.
fn namespaces(bp: &mut Blueprint, linux: &oci_spec::runtime::Linux) -> anyhow::Result<()> {
    let mut new = CloneFlags::empty();
    let mut joined = CloneFlags::empty();
    for ns in linux.namespaces().iter().flatten() {
        let f = flag(ns.typ())?;
        match ns.path() {
            Some(path) => {
                joined |= f;
                bp.process
                    .join_namespaces
                    .push(lab02::NamespacePath::new(f, path));
            }
            None => new |= f,
        }
    }
    if !new.contains(CloneFlags::CLONE_NEWNS) {
        bail!("linux.namespaces must create a mount namespace: pivot_root(2) needs one");
    }
    bp.process.namespaces = new | joined;
    bp.netns = if new.contains(CloneFlags::CLONE_NEWNET) {
        NetNs::Private
    } else {
        NetNs::Host // or joined: the join is already in join_namespaces
    };
    bp.cgroupns = match new.contains(CloneFlags::CLONE_NEWCGROUP) {
        true => CgroupNs::Private,
        false => CgroupNs::Host,
    };
    bp.userns = match new.contains(CloneFlags::CLONE_NEWUSER) {
        true => UserNs::Private {
            uids: one_mapping(linux.uid_mappings().as_deref(), "uid")?,
            gids: one_mapping(linux.gid_mappings().as_deref(), "gid")?,
        },
        false => UserNs::Host,
    };
    Ok(())
}

/// Lab 02 maps one range starting at 0 inside.
fn one_mapping(
    maps: Option<&[oci_spec::runtime::LinuxIdMapping]>,
    what: &str,
) -> anyhow::Result<lab02::IdMapping> {
    match maps.unwrap_or_default() {
        [m] if m.container_id() == 0 => Ok(lab02::IdMapping {
            host_id: m.host_id(),
            count: m.size(),
        }),
        [] => bail!("a new user namespace needs linux.{what}Mappings"),
        _ => {
            bail!("linux.{what}Mappings: only one range that starts at container ID 0 is supported")
        }
    }
}

/// `cgroupsPath` as lab 03's `<parent>/<name>`. An absolute path is used
/// as it is; a relative or empty one goes under the caller's own cgroup
/// (runc's rule for cgroupfs), the empty one named after the container.
pub fn cgroup(
    path: &Path,
    id: &str,
    resources: Option<&LinuxResources>,
) -> anyhow::Result<CgroupSpec> {
    let text = path.to_string_lossy().into_owned();
    let full = if text.starts_with('/') {
        text.trim_start_matches('/').to_string()
    } else {
        let own = own_cgroup()?;
        let rel = if text.is_empty() {
            id.to_string()
        } else {
            text
        };
        format!("{}/{rel}", own.trim_matches('/'))
    };
    let full = full.trim_matches('/');
    let (parent, name) = match full.rsplit_once('/') {
        Some((parent, name)) => (parent.to_string(), name.to_string()),
        None => (String::new(), full.to_string()),
    };
    if name.is_empty() || name == ".." || parent.split('/').any(|c| c == "..") {
        bail!("cgroupsPath {path:?}: not a cgroup path");
    }
    Ok(CgroupSpec {
        parent,
        name,
        limits: limits(resources),
    })
}

/// The caller's own cgroup: the unified line of /proc/self/cgroup on v2,
/// the memory hierarchy's on v1 and hybrid hosts.
fn own_cgroup() -> anyhow::Result<String> {
    let text = std::fs::read_to_string("/proc/self/cgroup").context("reading /proc/self/cgroup")?;
    let find = |pred: &dyn Fn(&str) -> bool| {
        text.lines().find_map(|l| {
            let mut it = l.splitn(3, ':');
            let (_, ctl, path) = (it.next()?, it.next()?, it.next()?);
            pred(ctl).then(|| path.to_string())
        })
    };
    find(&|c| c.split(',').any(|x| x == "memory"))
        .or_else(|| find(&|c| c.is_empty()))
        .context("no memory or unified line in /proc/self/cgroup")
}

/// `linux.resources` in lab 03's terms (memory, cpu, pids, cpuset).
pub fn limits(resources: Option<&LinuxResources>) -> lab03::Limits {
    let mut l = lab03::Limits::default();
    let Some(r) = resources else { return l };
    if let Some(m) = r.memory() {
        l.memory = m.limit().filter(|&v| v > 0).map(|v| v as u64);
        l.memory_swap = m.swap().filter(|&v| v != 0);
        l.memory_swappiness = m.swappiness();
    }
    if let Some(c) = r.cpu() {
        l.cpu_shares = c.shares().filter(|&v| v > 0);
        l.cpu_quota = c.quota().filter(|&v| v > 0);
        l.cpu_period = c.period().filter(|&v| v > 0 && l.cpu_quota.is_some());
        l.cpuset_cpus = c.cpus().clone().filter(|s| !s.is_empty());
        l.cpuset_mems = c.mems().clone().filter(|s| !s.is_empty());
    }
    if let Some(p) = r.pids() {
        l.pids = Some(p.limit()).filter(|&v| v > 0);
    }
    l
}

/// `linux.resources.devices` in the devices cgroup's own syntax
/// (`type major:minor access`, `*` for any). Callers write a deny-all
/// first and then what they allow; that is the form lab 03 takes (it
/// writes `a` to `devices.deny`, then each rule to `devices.allow`, or
/// compiles the same list to eBPF on v2). No rules: no restriction.
pub fn device_rules(resources: Option<&LinuxResources>) -> anyhow::Result<Option<Vec<String>>> {
    let rules = resources
        .and_then(|r| r.devices().clone())
        .unwrap_or_default();
    let Some((first, rest)) = rules.split_first() else {
        return Ok(None);
    };
    let kind = |d: &oci_spec::runtime::LinuxDeviceCgroup| -> anyhow::Result<String> {
        let v = serde_json::to_value(d.typ().unwrap_or_default())?;
        Ok(v.as_str().unwrap_or("a").to_string())
    };
    if first.allow() || kind(first)? != "a" || first.major().is_some() || first.minor().is_some() {
        bail!(
            "linux.resources.devices: only a list that starts by denying every device is \
             supported (runc's callers all write one)"
        );
    }
    let mut out = Vec::new();
    for d in rest {
        if !d.allow() {
            bail!("linux.resources.devices: a deny rule after the first is not supported");
        }
        let num = |n: Option<i64>| n.map_or("*".to_string(), |n| n.to_string());
        let access = d.access().clone().unwrap_or_else(|| "rwm".into());
        out.push(format!(
            "{} {}:{} {access}",
            kind(d)?,
            num(d.major()),
            num(d.minor())
        ));
    }
    Ok(Some(out))
}

/// `linux.devices`: the nodes to make, with the spec's defaults (0666
/// when no fileMode is given, root's).
fn device_nodes(
    linux: &oci_spec::runtime::Linux,
) -> anyhow::Result<Vec<lab02::devnodes::DeviceNode>> {
    let mut out = Vec::new();
    for d in linux.devices().iter().flatten() {
        let kind = serde_json::to_value(d.typ())?;
        out.push(lab02::devnodes::DeviceNode {
            path: d.path().clone(),
            kind: kind.as_str().and_then(|k| k.chars().next()).unwrap_or('c'),
            major: d.major() as u64,
            minor: d.minor() as u64,
            mode: d.file_mode().unwrap_or(0o666),
            uid: d.uid().unwrap_or(0),
            gid: d.gid().unwrap_or(0),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_cgroups_paths_split_into_parent_and_name() {
        let c = cgroup(Path::new("/kubepods/pod1/c1"), "x", None).unwrap();
        assert_eq!(
            (c.parent.as_str(), c.name.as_str()),
            ("kubepods/pod1", "c1")
        );
        assert!(cgroup(Path::new("/a/../b"), "x", None).is_err());
    }

    #[test]
    fn relative_and_empty_cgroups_paths_go_under_our_own_group() {
        let own = own_cgroup().unwrap();
        let c = cgroup(Path::new(""), "c9", None).unwrap();
        assert_eq!(c.name, "c9");
        assert_eq!(c.parent, own.trim_matches('/'));
        let c = cgroup(Path::new("sub/c2"), "x", None).unwrap();
        assert_eq!(c.name, "c2");
        assert!(c.parent.ends_with("sub"), "{}", c.parent);
    }

    #[test]
    fn resources_become_lab03_limits() {
        let r: LinuxResources = serde_json::from_value(serde_json::json!({
            "memory": {"limit": 67108864, "swap": 67108864},
            "cpu": {"shares": 512, "quota": 50000, "period": 100000},
            "pids": {"limit": 64}
        }))
        .unwrap();
        let l = limits(Some(&r));
        assert_eq!(l.memory, Some(64 << 20));
        assert_eq!(l.cpu_shares, Some(512));
        assert_eq!((l.cpu_quota, l.cpu_period), (Some(50_000), Some(100_000)));
        assert_eq!(l.pids, Some(64));
    }

    #[test]
    fn device_rules_follow_a_deny_all() {
        let r: LinuxResources = serde_json::from_value(serde_json::json!({"devices": [
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
            {"allow": true, "type": "c", "major": 136, "access": "rw"}
        ]}))
        .unwrap();
        assert_eq!(
            device_rules(Some(&r)).unwrap().unwrap(),
            ["c 1:3 rwm", "c 136:* rw"]
        );
        assert_eq!(device_rules(None).unwrap(), None);
        let r: LinuxResources = serde_json::from_value(serde_json::json!({"devices": [
            {"allow": true, "type": "c", "major": 1, "minor": 3}
        ]}))
        .unwrap();
        assert!(device_rules(Some(&r)).is_err());
    }

    #[test]
    fn unknown_namespace_types_are_malformed_configs() {
        let bad = serde_json::json!({"type": "bogus"});
        let r: Result<oci_spec::runtime::LinuxNamespace, _> = serde_json::from_value(bad);
        assert!(r.is_err());
    }
}
