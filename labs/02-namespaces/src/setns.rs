//! # Joining a namespace instead of creating one: setns(2)
//!
//! A namespace lives as long as something refers to it, and any process
//! that can open its file (`/proc/PID/ns/net` of a process inside, or a
//! bind mount of that file, as `ip netns add` makes) can enter it with
//! setns(2). [`crate::Spec::join_namespaces`] makes the child do that first,
//! instead of creating that kind: `docker run --network container:NAME`
//! shares another container's network stack this way, and a pod shares
//! one network, IPC and UTS namespace among its containers. The shell
//! equivalent is `nsenter --net=/proc/PID/ns/net unshare --mount ... CMD`.
//!
//! The container's first process enters each namespace with setns(2) as
//! its very first act, before anything else happens in it. The network,
//! IPC and UTS namespaces may be joined that way: setns(2) moves the
//! caller into them at once, and nothing else in the setup depends on
//! them. A PID namespace is different: setns(2) moves only the children
//! the caller forks afterwards (`/proc/self/ns/pid_for_children`), so the
//! *parent* enters it just for the clone(2) of the first process and then
//! returns to its own ([`PidForChildren`]); that is how a pod's containers
//! share the pause process's PID namespace (`shareProcessNamespace`).
//! `why_not_joinable` says why not the others.

use std::fs;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

use anyhow::{bail, Context};
use lab01_chroot as lab01;
use nix::errno::Errno;
use nix::sched::{setns, CloneFlags};
use nix::unistd::Pid;

use crate::NAMESPACES;

// ANCHOR: namespace_path
/// An existing namespace to join instead of creating one (see the lecture
/// of this module): `kind` is one flag of [`NAMESPACES`], `path` a namespace file,
/// `/proc/PID/ns/net` of a process inside, or a bind mount of one. Only
/// the network, IPC, UTS and PID namespaces may be joined; [`crate::Spec::check`]
/// says why not the others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespacePath {
    pub kind: CloneFlags,
    pub path: PathBuf,
}

impl NamespacePath {
    pub fn new(kind: CloneFlags, path: impl Into<PathBuf>) -> NamespacePath {
        NamespacePath {
            kind,
            path: path.into(),
        }
    }

    /// The namespace of kind `kind` that process `pid` is in:
    /// `/proc/PID/ns/NAME`.
    pub fn of_process(kind: CloneFlags, pid: Pid) -> NamespacePath {
        NamespacePath::new(kind, format!("/proc/{pid}/ns/{}", kind_name(kind)))
    }
}

impl std::str::FromStr for NamespacePath {
    type Err = String;

    /// `KIND=PATH`, KIND as under `/proc/self/ns`: `net=/proc/42/ns/net`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kind, path) = s
            .split_once('=')
            .ok_or_else(|| format!("{s:?}: expected KIND=PATH, e.g. net=/proc/42/ns/net"))?;
        let ns = NAMESPACES
            .iter()
            .find(|n| n.proc_name == kind)
            .ok_or_else(|| format!("{kind:?}: not a kind of namespace (see /proc/self/ns)"))?;
        if path.is_empty() {
            return Err(format!("{s:?}: the path is empty"));
        }
        Ok(NamespacePath::new(ns.flag, path))
    }
}

/// The name of a namespace kind, as under `/proc/self/ns`.
pub(crate) fn kind_name(kind: CloneFlags) -> &'static str {
    NAMESPACES
        .iter()
        .find(|n| n.flag == kind)
        .map_or("unknown", |n| n.proc_name)
}

/// Why a container may not join a namespace of kind `kind`; `None` for
/// the kinds it may join: net, ipc and uts, which setns(2) moves the
/// caller into at once and nothing else in the setup depends on, and pid,
/// which the parent enters for the clone (see [`PidForChildren`]).
pub(crate) fn why_not_joinable(kind: CloneFlags) -> Option<&'static str> {
    let why = match kind {
        k if k == CloneFlags::CLONE_NEWNET
            || k == CloneFlags::CLONE_NEWIPC
            || k == CloneFlags::CLONE_NEWUTS
            || k == CloneFlags::CLONE_NEWPID =>
        {
            return None
        }
        CloneFlags::CLONE_NEWNS => {
            "the container's root is made by pivot_root(2) in a mount namespace of its own; \
             entering another container's is what exec does (see the join module)"
        }
        CloneFlags::CLONE_NEWUSER => {
            "the user namespace decides what every other step may do, and its ID maps are \
             written by spawn for a namespace it creates; entering an existing one is what \
             exec does (see the join module)"
        }
        CloneFlags::CLONE_NEWCGROUP => {
            "the child makes its cgroup namespace after it is in its own cgroup, so that \
             this cgroup is its `/`; another's would show another cgroup as its root"
        }
        k if k == NAMESPACES[7].flag => {
            "nothing here shares a time namespace (Docker has no flag for it either)"
        }
        _ => "not one kind of namespace (expected one flag of NAMESPACES)",
    };
    Some(why)
}

/// A joined namespace's file, opened by [`crate::spawn`] in the parent, for the
/// child to setns(2) into.
#[derive(Debug)]
pub(crate) struct OpenNamespace {
    fd: OwnedFd,
    kind: CloneFlags,
    path: PathBuf,
}

/// `ioctl(NS_GET_NSTYPE)` (Linux 4.11): the `CLONE_NEW*` kind of the
/// namespace a descriptor refers to.
const NS_GET_NSTYPE: libc::c_ulong = 0xb703;

/// Open each namespace to join, in the parent: a bad path fails before any
/// process exists. Each must be a namespace of the kind it is joined as,
/// which the kernel tells (NS_GET_NSTYPE); setns(2) would check that too,
/// but only in the child.
pub(crate) fn open_joined(joins: &[NamespacePath]) -> anyhow::Result<Vec<OpenNamespace>> {
    let mut open = Vec::new();
    for j in joins {
        let name = kind_name(j.kind);
        let fd = OwnedFd::from(fs::File::open(&j.path).with_context(|| {
            format!("opening the {name} namespace to join, {}", j.path.display())
        })?);
        // SAFETY: NS_GET_NSTYPE takes no argument and returns an int.
        let kind = unsafe { libc::ioctl(fd.as_raw_fd(), NS_GET_NSTYPE as _) };
        if kind == -1 {
            bail!(
                "{} is not a namespace file (ioctl NS_GET_NSTYPE: {}); expected one like \
                 /proc/PID/ns/{name}",
                j.path.display(),
                Errno::last().desc()
            );
        }
        let kind = CloneFlags::from_bits_retain(kind);
        if kind != j.kind {
            bail!(
                "{} is a namespace of kind {}, not {name}",
                j.path.display(),
                kind_name(kind)
            );
        }
        open.push(OpenNamespace {
            fd,
            kind,
            path: j.path.clone(),
        });
    }
    Ok(open)
}

// ANCHOR: pid_for_children
/// A PID namespace joined by the parent for the children it forks next,
/// until [`PidForChildren::restore`]: the same as
/// `nsenter --pid=/proc/PID/ns/pid CMD`, whose child, not nsenter itself,
/// lands in the namespace.
pub(crate) struct PidForChildren {
    /// The parent's own `pid_for_children`, to return to.
    own: OwnedFd,
}

impl PidForChildren {
    /// Take the PID namespace out of `joined`, if there is one, and enter
    /// it for the next fork.
    pub(crate) fn enter(joined: &mut Vec<OpenNamespace>) -> anyhow::Result<Option<Self>> {
        let Some(i) = joined
            .iter()
            .position(|n| n.kind == CloneFlags::CLONE_NEWPID)
        else {
            return Ok(None);
        };
        let ns = joined.remove(i);
        let own = OwnedFd::from(
            fs::File::open("/proc/thread-self/ns/pid_for_children")
                .context("opening our own /proc/thread-self/ns/pid_for_children")?,
        );
        setns(&ns.fd, CloneFlags::CLONE_NEWPID).with_context(|| {
            format!(
                "setns into the pid namespace at {} (for the first process)",
                ns.path.display()
            )
        })?;
        Ok(Some(PidForChildren { own }))
    }

    /// Back to our own: later children (hooks, exec's helpers) are the host's.
    pub(crate) fn restore(self) -> anyhow::Result<()> {
        setns(&self.own, CloneFlags::CLONE_NEWPID)
            .context("setns back into our own pid namespace")?;
        Ok(())
    }
}
// ANCHOR_END: pid_for_children

/// The child's first act: enter each joined namespace, and close its
/// descriptor (nothing of the parent's may reach the command).
pub(crate) fn enter_joined(namespaces: Vec<OpenNamespace>) -> Result<(), lab01::Error> {
    for ns in namespaces {
        setns(&ns.fd, ns.kind).with_context(|| {
            format!(
                "setns into the {} namespace at {}",
                kind_name(ns.kind),
                ns.path.display()
            )
        })?;
    }
    Ok(())
}
// ANCHOR_END: namespace_path

/// Run `f` in a short-lived child that first enters the namespaces of
/// `pid` named in `kinds` (`"net"`, `"ipc"`, `"uts"`: names under
/// `/proc/PID/ns`), and return its exit status (0: `f` succeeded; it
/// prints its error otherwise). Some kernel settings are read and written
/// relative to the *writer's* namespaces (`/proc/sys/net/*`, the IPC
/// limits, the domain name), so an OCI runtime sets a container's
/// `linux.sysctl` this way, as `nsenter --net --ipc --uts --target PID
/// sysctl -w KEY=VALUE` would. Call it from a single-threaded process.
pub fn in_namespaces_of(
    pid: Pid,
    kinds: &[&str],
    f: impl FnOnce() -> anyhow::Result<()>,
) -> anyhow::Result<i32> {
    let mut files = Vec::new();
    for kind in kinds {
        let path = format!("/proc/{pid}/ns/{kind}");
        files.push(fs::File::open(&path).with_context(|| format!("opening {path}"))?);
    }
    // SAFETY: the caller is single-threaded (documented above).
    match unsafe { nix::unistd::fork() }.context("fork to enter namespaces")? {
        nix::unistd::ForkResult::Parent { child } => loop {
            match nix::sys::wait::waitpid(child, None) {
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e).context("waitpid"),
                Ok(status) => {
                    if let Some(done) = crate::finished(status) {
                        return Ok(done.code());
                    }
                }
            }
        },
        nix::unistd::ForkResult::Child => {
            let result = files
                .iter()
                .try_for_each(|f| setns(f, CloneFlags::empty()).context("setns"))
                .and_then(|()| f());
            let code = match result {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("{}: {e:#}", crate::program_name());
                    1
                }
            };
            // SAFETY: leaving the forked copy without the parent's exit handlers.
            unsafe { libc::_exit(code) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_paths_parse_as_kind_and_path() {
        let p: NamespacePath = "net=/proc/42/ns/net".parse().unwrap();
        assert_eq!(
            p,
            NamespacePath::new(CloneFlags::CLONE_NEWNET, "/proc/42/ns/net")
        );
        assert_eq!(
            NamespacePath::of_process(CloneFlags::CLONE_NEWIPC, Pid::from_raw(42)).path,
            PathBuf::from("/proc/42/ns/ipc")
        );
        assert!("net".parse::<NamespacePath>().is_err());
        assert!("net=".parse::<NamespacePath>().is_err());
        assert!("network=/proc/42/ns/net".parse::<NamespacePath>().is_err());
    }

    #[test]
    fn joined_paths_are_opened_and_checked_in_the_parent() {
        let net = |path: &str| [NamespacePath::new(CloneFlags::CLONE_NEWNET, path)];
        let open = open_joined(&net("/proc/self/ns/net")).unwrap();
        assert_eq!(open[0].kind, CloneFlags::CLONE_NEWNET);
        let err = open_joined(&net("/proc/self/ns/ipc")).unwrap_err();
        assert!(err.to_string().contains("kind ipc, not net"), "{err}");
        let err = open_joined(&net("/proc/self/status")).unwrap_err();
        assert!(err.to_string().contains("not a namespace file"), "{err}");
        let err = open_joined(&net("/nonexistent/ns/net")).unwrap_err();
        assert!(format!("{err:#}").contains("No such file"), "{err:#}");
    }
}
