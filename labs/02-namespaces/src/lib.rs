//! # Lab 02: namespaces
//!
//! A namespace wraps one kind of global resource so that the processes inside
//! see their own instance of it. Lab 01 already used one: the mount namespace
//! that made `pivot_root` safe. This lab adds the rest.
//!
//! This crate so far holds the namespace table that the lab teaches from and
//! that `dockyard doctor` checks against; running a command in new namespaces
//! is the subject of the lab's own issue and is not written yet.

pub use lab01_chroot;

use nix::sched::CloneFlags;

/// One kind of namespace, as in the table of namespaces(7).
#[derive(Debug, Clone, Copy)]
pub struct Namespace {
    /// The name under `/proc/self/ns/`.
    pub proc_name: &'static str,
    /// The flag for clone(2), unshare(2) and setns(2).
    pub flag: CloneFlags,
    /// The Linux version that introduced it.
    pub since: &'static str,
    /// What it isolates.
    pub isolates: &'static str,
}

// ANCHOR: table
/// Every namespace a container uses, in the order the kernel gained them.
pub const NAMESPACES: [Namespace; 8] = [
    Namespace {
        proc_name: "mnt",
        flag: CloneFlags::CLONE_NEWNS,
        since: "2.4.19",
        isolates: "mount points",
    },
    Namespace {
        proc_name: "uts",
        flag: CloneFlags::CLONE_NEWUTS,
        since: "2.6.19",
        isolates: "hostname and NIS domain name",
    },
    Namespace {
        proc_name: "ipc",
        flag: CloneFlags::CLONE_NEWIPC,
        since: "2.6.19",
        isolates: "System V IPC, POSIX message queues",
    },
    Namespace {
        proc_name: "pid",
        flag: CloneFlags::CLONE_NEWPID,
        since: "2.6.24",
        isolates: "process IDs",
    },
    Namespace {
        proc_name: "net",
        flag: CloneFlags::CLONE_NEWNET,
        since: "2.6.29",
        isolates: "network devices, stacks, ports",
    },
    Namespace {
        proc_name: "user",
        flag: CloneFlags::CLONE_NEWUSER,
        since: "3.8",
        isolates: "user and group IDs",
    },
    Namespace {
        proc_name: "cgroup",
        flag: CloneFlags::CLONE_NEWCGROUP,
        since: "4.6",
        isolates: "cgroup root directory",
    },
    Namespace {
        proc_name: "time",
        flag: CloneFlags::from_bits_retain(0x80),
        since: "5.6",
        isolates: "boot and monotonic clocks",
    },
];
// ANCHOR_END: table

/// Whether this kernel supports `ns`: each supported kind appears as a link
/// in `/proc/self/ns`.
pub fn kernel_supports(ns: &Namespace) -> bool {
    std::path::Path::new("/proc/self/ns")
        .join(ns.proc_name)
        .exists()
}
