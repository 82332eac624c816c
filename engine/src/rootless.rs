//! Rootless mode: dockyard run by a user who is not root.
//!
//! The engine makes itself root of a user namespace of its own (lab 02's
//! mechanism) before it does anything else, and refuses, with the reason,
//! what that namespace does not own: bridge networks, the host's network,
//! low ports, and cgroups, except in a cgroup v2 subtree the host has
//! delegated to the user (as systemd does for each user's
//! `user@UID.service`), where `--memory`, `--cpus` and `--pids-limit` go
//! into groups the user makes itself (`delegated_parent`).
//! `--userns-remap` (the `remap` module) is the other use of user namespaces: root runs the engine, and each container's root
//! is an unprivileged range of the host.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use lab02_namespaces::userns::{enter_own_user_namespace, OwnMapping};
use lab02_namespaces::IdMapping;

use crate::remap::{first_range, SUBGID, SUBUID};

// ANCHOR: rootless
/// Rootless mode: make this process root of a user namespace of its own,
/// with a mount namespace of its own, before it does anything else. The
/// mechanism is lab 02's `userns::enter_own_user_namespace`; this is the
/// policy: whose ranges to map, and what to say when they cannot be.
///
/// Root of that namespace has every capability over what the namespace
/// owns, so everything dockyard does next happens in there: layers are
/// extracted with owner 0 (the user, on disk), the overlay is mounted in
/// the private mount namespace (Linux 5.11 allows overlayfs in a user
/// namespace), and each container gets its namespaces below ours (lab 02
/// maps its IDs to all of ours). What the namespace does not own stays out
/// of reach, and dockyard says so where it would need it: cgroups (the
/// host's hierarchies belong to the host's root; limits are set only in a
/// cgroup v2 subtree delegated to the user, see `delegated_parent`), bridge
/// networks and the host's network (the veth,
/// the bridge and iptables live in the host's network namespace), and
/// ports below 1024 on the host.
///
/// The shell equivalent is `unshare --user --map-root-user --mount`, or
/// with ranges `unshare --user --map-auto --map-root-user --mount`.
pub fn enter_rootless() -> Result<()> {
    let (uid, gid) = (nix::unistd::geteuid(), nix::unistd::getegid());
    // The user's ranges, if root granted it some and the `uidmap` helpers
    // are installed; otherwise its own uid and gid only.
    let ranges = subordinate_ranges(uid.as_raw(), gid.as_raw())?;
    let mapped = enter_own_user_namespace(ranges).context("rootless")?;
    if ranges.is_some() && mapped == OwnMapping::OwnIdOnly {
        eprintln!(
            "WARNING: rootless: newuidmap/newgidmap could not map the ranges of \
             /etc/subuid and /etc/subgid; mapping only your own uid and gid"
        );
    }
    Ok(())
}

/// The user's first ranges in /etc/subuid and /etc/subgid, if it has both
/// and the `uidmap` helpers are installed.
fn subordinate_ranges(uid: u32, gid: u32) -> Result<Option<(IdMapping, IdMapping)>> {
    let helpers = ["newuidmap", "newgidmap"].iter().all(|tool| {
        std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
            .unwrap_or(false)
    });
    if !helpers {
        return Ok(None);
    }
    let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| uid.to_string());
    let group = nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid))
        .ok()
        .flatten()
        .map(|g| g.name)
        .unwrap_or_else(|| gid.to_string());
    let uids = first_range(Path::new(SUBUID), &user, Some(uid))?;
    // newgidmap looks the *user* up in /etc/subgid, as does rootless Docker.
    let gids = first_range(Path::new(SUBGID), &user, Some(uid))?.or(first_range(
        Path::new(SUBGID),
        &group,
        Some(gid),
    )?);
    Ok(uids.zip(gids))
}

/// How many IDs this process's user namespace maps (the sum of the counts
/// in `/proc/self/uid_map` or `gid_map`): rootless, what a container's
/// user namespace may map below ours.
pub fn ids_mapped(map_file: &str) -> Result<u32> {
    let text = std::fs::read_to_string(map_file).with_context(|| format!("reading {map_file}"))?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2)?.parse::<u32>().ok())
        .fold(0u32, |a, n| a.saturating_add(n)))
}

/// The rootless data root, as rootless Docker and podman choose theirs:
/// `$XDG_DATA_HOME/dockyard`, else `~/.local/share/dockyard`.
pub fn rootless_data_root() -> Result<PathBuf> {
    if let Some(d) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d).join("dockyard"));
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .context("rootless: neither XDG_DATA_HOME nor HOME is set: give --root DIR")?;
    Ok(PathBuf::from(home).join(".local/share/dockyard"))
}

// ANCHOR: delegated_parent
/// Where a rootless container's limits go: a `--cgroup-parent` inside the
/// cgroup v2 subtree delegated to this user, relative to the cgroup2 mount
/// like every parent (`user.slice/user-1000.slice/user@1000.service/dockyard`),
/// or the refusal with its fix.
///
/// The host's root has to hand the subtree over: systemd does for each
/// user's `user@UID.service` (`Delegate=`), and by hand it is
///
/// ```text
/// mkdir /sys/fs/cgroup/alice
/// chown alice /sys/fs/cgroup/alice{,/cgroup.procs,/cgroup.subtree_control}
/// echo +cpu +memory +pids > /sys/fs/cgroup/cgroup.subtree_control   # the controllers reach it
/// ```
///
/// Lab 03 finds it from the caller's own group (`own_delegation`): the
/// caller must be inside it, since moving a process into a group needs
/// write access to `cgroup.procs` of the common ancestor. The container's
/// group is made below the subtree's top, in `dockyard` or the user's own
/// `--cgroup-parent` there, with lab 03's usual steps: controllers handed
/// down level by level (levels above the subtree already pass them, so
/// nothing of root's is written), then the limits. A parent already inside
/// the subtree (the record of a container created here) is kept as it is.
/// No device filter: loading an eBPF program needs the host's
/// CAP_SYS_ADMIN, and a user namespace cannot make device nodes anyway.
pub fn delegated_parent(given: &str, limits: &lab03_cgroups::Limits) -> Result<String> {
    let what = "resource limits (--memory, --cpus, --pids-limit, --cgroup-parent...)";
    let host = lab03_cgroups::detect()?;
    if host.version() != lab03_cgroups::Version::V2 {
        return Err(rootless_refusal(
            what,
            "this host's cgroups are v1 or hybrid, whose hierarchies belong to root and are never \
             delegated to a user: boot with pure cgroup v2 (systemd.unified_cgroup_hierarchy=1) \
             and have systemd delegate a subtree (`dockyard doctor` says how)",
        ));
    }
    let Some(d) = lab03_cgroups::own_delegation(&host) else {
        return Err(rootless_refusal(
            what,
            "no cgroup v2 subtree is delegated to this user around this process (none of the \
             groups in /proc/self/cgroup is the user's): run dockyard inside the one systemd \
             delegates, with `systemd-run --user --scope dockyard ...` (`dockyard doctor` says \
             whether systemd delegates one)",
        ));
    };
    let missing = d.missing_for(limits);
    if !missing.is_empty() {
        return Err(rootless_refusal(
            what,
            &format!(
                "the cgroup v2 subtree delegated to this user ({}) lacks the {} controller(s) (it \
                 has: {}): have the host delegate them (systemd: Delegate=cpu cpuset io memory \
                 pids in user@.service, see `dockyard doctor`)",
                d.dir.display(),
                missing.join(", "),
                d.controllers.join(" ")
            ),
        ));
    }
    let top = d
        .relative(&host)
        .with_context(|| format!("the delegated group {} is the root", d.dir.display()))?;
    let given = given.trim_matches('/');
    if given == top || given.starts_with(&format!("{top}/")) {
        return Ok(given.to_string());
    }
    let below = if given.is_empty() {
        lab03_cgroups::DEFAULT_PARENT
    } else {
        given
    };
    Ok(format!("{top}/{below}"))
}
// ANCHOR_END: delegated_parent

/// Why a rootless engine cannot do `what`.
pub fn rootless_refusal(what: &str, why: &str) -> anyhow::Error {
    anyhow::anyhow!("{what} is not available in rootless mode: {why}")
}
// ANCHOR_END: rootless
