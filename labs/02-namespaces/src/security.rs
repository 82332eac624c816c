//! # Security: what keeps a root process in its container
//!
//! Namespaces change what a process *sees*. They do not change what it may
//! *do*: without a user namespace, root in a container is root on the host, with
//! every capability, able to mount file systems, load kernel modules, read
//! `/dev/vda` and reboot the machine. A container engine adds four layers that
//! take those powers away, each one a kernel mechanism with its own man page,
//! and all four are on by default in Docker and in `dockyard run`:
//!
//! | layer            | what it takes away                          | shell equivalent                                  |
//! |------------------|---------------------------------------------|---------------------------------------------------|
//! | capabilities     | root's powers, one by one                   | `capsh --drop=cap_sys_admin,... --`               |
//! | no_new_privs     | gaining any back through set-uid or file caps | `setpriv --no-new-privs`                        |
//! | seccomp          | whole system calls, whoever makes them      | (none in the shell; see `seccomp(2)`)             |
//! | masked paths     | the kernel's own files under /proc and /sys | `mount --bind /dev/null /proc/kcore`, `mount -o remount,ro` |
//!
//! The layers overlap on purpose. `mount(2)` needs `CAP_SYS_ADMIN`, which is
//! dropped, *and* seccomp refuses the call; `/proc/sys` is read-only, *and*
//! writing most of it needs a dropped capability. One mistake in one layer
//! should not be enough.
//!
//! ## The order of things
//!
//! Each layer takes away something a later step of the setup needs, so the
//! order is fixed (see `child_setup` in `lib.rs`, and runc's
//! `standard_init_linux.go`, which has the same order):
//!
//! 1. **Mounts first**, while we still have `CAP_SYS_ADMIN`: /sys, /dev/pts,
//!    /dev/shm, /dev/mqueue, the masked and read-only paths, `--tmpfs`, and
//!    last the read-only remount of `/` (after the working directory is made).
//! 2. **no_new_privs**: from here on, no `execve` can grant anything.
//! 3. **Capabilities**: bounding set, ambient set, then effective, permitted
//!    and inheritable with `capset(2)`.
//! 4. **File descriptors**: every one above 2 is closed (CVE-2024-21626).
//! 5. **Seccomp, last**, right before `execve`: the filter applies to every
//!    system call after it, including the ones our own setup would make, so
//!    the fewer of those the better. It needs no_new_privs (or
//!    `CAP_SYS_ADMIN`, which we no longer have). With
//!    `--security-opt no-new-privileges=false` it goes before step 3
//!    instead, while `CAP_SYS_ADMIN` is still there, as runc does.
//!
//! With `--init` the tiny init runs after step 5: it is confined like the
//! command, and Docker's profile allows everything it does (fork, wait4,
//! rt_sigtimedwait, kill).

use std::collections::{BTreeMap, HashMap};
use std::ffi::CString;
use std::fs;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::{bail, Context};
use nix::errno::Errno;
use nix::mount::{mount, MsFlags};
use nix::sys::stat::Mode;
use nix::sys::statvfs::{fstatvfs, FsFlags};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

// ---------------------------------------------------------------------------
// Capabilities
// ---------------------------------------------------------------------------

/// One capability of capabilities(7): its number, whether Docker keeps it for
/// a default container, and why.
#[derive(Debug, Clone, Copy)]
pub struct Capability {
    pub name: &'static str,
    pub number: u32,
    pub docker_default: bool,
    pub why: &'static str,
}

const fn cap(
    name: &'static str,
    number: u32,
    docker_default: bool,
    why: &'static str,
) -> Capability {
    Capability {
        name,
        number,
        docker_default,
        why,
    }
}

// ANCHOR: capabilities
/// Every capability the kernel knows (as of Linux 6.x), with Docker's choice
/// for each. Kept: what ordinary programs run as root expect to work on their
/// own files and processes. Dropped: whatever reaches past the container.
#[rustfmt::skip]
pub const CAPABILITIES: [Capability; 41] = [
    cap("CHOWN", 0, true, "keep: chown files in the image (package managers do)"),
    cap("DAC_OVERRIDE", 1, true, "keep: root ignores file permissions on its own files"),
    cap("DAC_READ_SEARCH", 2, false, "drop: open_by_handle_at(2) opens host files by handle (the 'shocker' escape)"),
    cap("FOWNER", 3, true, "keep: chmod and utime on files root does not own"),
    cap("FSETID", 4, true, "keep: keep set-uid bits when root edits a file"),
    cap("KILL", 5, true, "keep: signal any process, and the pid namespace hides the host's"),
    cap("SETGID", 6, true, "keep: su, sudo and daemons switch groups"),
    cap("SETUID", 7, true, "keep: su, sudo and daemons switch users"),
    cap("SETPCAP", 8, true, "keep: drop capabilities further (only within the bounding set)"),
    cap("LINUX_IMMUTABLE", 9, false, "drop: chattr +i could pin files the host must change"),
    cap("NET_BIND_SERVICE", 10, true, "keep: listen on ports below 1024 in its own netns"),
    cap("NET_BROADCAST", 11, false, "drop: unused by the kernel, dropped by habit"),
    cap("NET_ADMIN", 12, false, "drop: create interfaces, change routes and firewall rules"),
    cap("NET_RAW", 13, true, "keep: ping needs raw sockets (the netns confines them)"),
    cap("IPC_LOCK", 14, false, "drop: lock memory and starve the host of RAM"),
    cap("IPC_OWNER", 15, false, "drop: bypass permission checks on System V IPC"),
    cap("SYS_MODULE", 16, false, "drop: load a kernel module: code in the host's kernel"),
    cap("SYS_RAWIO", 17, false, "drop: iopl, ioperm and /dev/mem: raw hardware access"),
    cap("SYS_CHROOT", 18, true, "keep: chroot is harmless after pivot_root (nothing above /)"),
    cap("SYS_PTRACE", 19, false, "drop: trace and inject into other processes"),
    cap("SYS_PACCT", 20, false, "drop: acct(2) switches the host's process accounting"),
    cap("SYS_ADMIN", 21, false, "drop: mount, unshare, setns, sethostname...: the 'new root'"),
    cap("SYS_BOOT", 22, false, "drop: reboot(2) and kexec_load(2) restart the host"),
    cap("SYS_NICE", 23, false, "drop: real-time priorities starve the host's processes"),
    cap("SYS_RESOURCE", 24, false, "drop: exceed rlimits and quotas"),
    cap("SYS_TIME", 25, false, "drop: the clock is not namespaced: setting it sets the host's"),
    cap("SYS_TTY_CONFIG", 26, false, "drop: vhangup(2) and the host's terminals"),
    cap("MKNOD", 27, true, "keep: create device nodes; which ones open is the device cgroup's job"),
    cap("LEASE", 28, false, "drop: file leases can stall the host's processes"),
    cap("AUDIT_WRITE", 29, true, "keep: login and sshd write to the audit log"),
    cap("AUDIT_CONTROL", 30, false, "drop: change the host's audit rules"),
    cap("SETFCAP", 31, true, "keep: set file capabilities in the image (setcap)"),
    cap("MAC_OVERRIDE", 32, false, "drop: bypass SELinux and Smack"),
    cap("MAC_ADMIN", 33, false, "drop: change the host's MAC policy"),
    cap("SYSLOG", 34, false, "drop: read and clear the kernel log (it leaks addresses)"),
    cap("WAKE_ALARM", 35, false, "drop: wake the host from suspend"),
    cap("BLOCK_SUSPEND", 36, false, "drop: keep the host from suspending"),
    cap("AUDIT_READ", 37, false, "drop: read the host's audit log"),
    cap("PERFMON", 38, false, "drop: perf_event_open observes the whole machine"),
    cap("BPF", 39, false, "drop: load eBPF programs into the host's kernel"),
    cap("CHECKPOINT_RESTORE", 40, false, "drop: set_tid and friends, for CRIU only"),
];
// ANCHOR_END: capabilities

/// A set of capabilities as the kernel stores it: bit N is capability N.
pub type CapMask = u64;

/// Docker's default set as a mask: `0x00000000a80425fb`, what `CapBnd:` in
/// `/proc/self/status` shows in a default container.
pub fn docker_default_caps() -> CapMask {
    CAPABILITIES
        .iter()
        .filter(|c| c.docker_default)
        .fold(0, |m, c| m | 1 << c.number)
}

fn all_caps() -> CapMask {
    CAPABILITIES.iter().fold(0, |m, c| m | 1 << c.number)
}

/// `sys_admin`, `CAP_SYS_ADMIN` and `SYS_ADMIN` are one capability, as in
/// docker; `ALL` stands for every one.
fn parse_cap(name: &str) -> anyhow::Result<Option<Capability>> {
    let upper = name.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    if bare == "ALL" {
        return Ok(None);
    }
    CAPABILITIES
        .iter()
        .find(|c| c.name == bare)
        .copied()
        .map(Some)
        .ok_or_else(|| anyhow::anyhow!("unknown capability: {name:?} (see capabilities(7))"))
}

/// The capability set of a container, by docker's rules: `--privileged` gets
/// them all; `--cap-add ALL` every one but those dropped; `--cap-drop ALL`
/// only those added; otherwise the default set, minus drops, plus adds.
pub fn resolve_caps(privileged: bool, add: &[String], drop: &[String]) -> anyhow::Result<CapMask> {
    if privileged {
        return Ok(all_caps());
    }
    let parse = |names: &[String]| -> anyhow::Result<(bool, CapMask)> {
        let mut all = false;
        let mut mask = 0;
        for name in names {
            match parse_cap(name)? {
                None => all = true,
                Some(c) => mask |= 1 << c.number,
            }
        }
        Ok((all, mask))
    };
    let (add_all, add) = parse(add)?;
    let (drop_all, drop) = parse(drop)?;
    Ok(if add_all {
        all_caps() & !drop
    } else if drop_all {
        add
    } else {
        (docker_default_caps() & !drop) | add
    })
}

/// Capability names in a mask, as `capsh --decode` prints them.
pub fn cap_names(mask: CapMask) -> Vec<String> {
    CAPABILITIES
        .iter()
        .filter(|c| mask & (1 << c.number) != 0)
        .map(|c| format!("CAP_{}", c.name))
        .collect()
}

/// The highest capability this kernel knows.
fn last_cap() -> u32 {
    fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

// ANCHOR: apply_caps
/// Reduce this process's capability sets to `keep`.
///
/// Five sets, five reasons:
/// - **bounding**: the ceiling for every later `execve`. Root's permitted set
///   after exec is its bounding set, so this is the set that matters.
///   `prctl(PR_CAPBSET_DROP)` removes one capability at a time, for good.
/// - **ambient**: capabilities a non-root program keeps across exec; cleared.
/// - **effective, permitted**: what we have right now; `capset(2)`.
/// - **inheritable**: left *empty*, as Docker does since CVE-2022-24769: a
///   non-root program with file-inheritable capabilities would otherwise gain
///   them at exec, a surprise no one wants.
fn apply_capabilities(keep: CapMask) -> anyhow::Result<()> {
    // capset(2) can only keep what we have. Root on the host usually has
    // every capability, but the lab may itself run in a container that took
    // some away: `--privileged` then means "all that there is".
    let keep = keep & current_permitted()?;
    for number in 0..=last_cap() {
        if keep & (1 << number) == 0 {
            // SAFETY: prctl with integer arguments only.
            let ret =
                unsafe { libc::prctl(libc::PR_CAPBSET_DROP, number as libc::c_ulong, 0, 0, 0) };
            Errno::result(ret).with_context(|| format!("prctl(PR_CAPBSET_DROP, {number})"))?;
        }
    }
    // SAFETY: as above.
    let ret = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    Errno::result(ret).context("prctl(PR_CAP_AMBIENT_CLEAR_ALL)")?;

    // capset(2) with _LINUX_CAPABILITY_VERSION_3: two 32-bit halves per set.
    let header = CapHeader {
        version: 0x2008_0522,
        pid: 0,
    };
    let half = |shift: u32| Data {
        effective: (keep >> shift) as u32,
        permitted: (keep >> shift) as u32,
        inheritable: 0,
    };
    let data = [half(0), half(32)];
    // SAFETY: header and data are the structs capset(2) expects, alive for the call.
    let ret = unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) };
    Errno::result(ret).context("capset(effective = permitted = kept, inheritable = none)")?;
    Ok(())
}
// ANCHOR_END: apply_caps

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Data {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// This process's permitted set, from capget(2).
fn current_permitted() -> anyhow::Result<CapMask> {
    let header = CapHeader {
        version: 0x2008_0522,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: header and data are the structs capget(2) expects.
    let ret = unsafe { libc::syscall(libc::SYS_capget, &header, data.as_mut_ptr()) };
    Errno::result(ret).context("capget")?;
    Ok(data[0].permitted as u64 | (data[1].permitted as u64) << 32)
}

// ---------------------------------------------------------------------------
// Seccomp
// ---------------------------------------------------------------------------

/// A seccomp profile in the JSON format of Docker and the OCI runtime spec
/// (what `--security-opt seccomp=PROFILE.json` takes). Fields this lab does
/// not use (`listenerPath`, `flags`) are accepted and ignored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    pub default_action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_errno_ret: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub architectures: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arch_map: Vec<ArchMap>,
    #[serde(default)]
    pub syscalls: Vec<SyscallRule>,
}

/// Docker's way of listing architectures: a main one and its sub-architectures.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ArchMap {
    pub architecture: String,
    #[serde(default)]
    pub sub_architectures: Option<Vec<String>>,
}

/// One entry of `syscalls`: these names get this action, if the arguments
/// match and the includes/excludes (Docker's extension) allow.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SyscallRule {
    #[serde(default)]
    pub names: Vec<String>,
    /// The old single-name form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno_ret: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<ArgRule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub includes: Option<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excludes: Option<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// A condition on one argument: `args[index] OP value`. For
/// `SCMP_CMP_MASKED_EQ`, `value` is the mask and `valueTwo` what the masked
/// argument must equal.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ArgRule {
    pub index: u8,
    pub value: u64,
    #[serde(default)]
    pub value_two: u64,
    pub op: String,
}

/// Docker's `includes`/`excludes`: a rule applies only with these
/// capabilities, on these architectures, from this kernel version on.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub caps: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arches: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_kernel: Option<String>,
}

// ANCHOR: seccomp_allow
/// The system calls Docker's default profile allows to anyone, grouped by
/// what they are for. Anything not listed here, or below with a condition,
/// fails with EPERM. Names that do not exist on an architecture are skipped
/// there, as libseccomp does: the 32-bit `*32` and `*_time64` variants count
/// for 32-bit x86 programs (see [`i386`]), not for x86_64 ones.
#[rustfmt::skip]
const ALLOWED: &[(&str, &[&str])] = &[
    ("files and directories", &[
        "access", "chdir", "chmod", "chown", "chown32", "close", "close_range", "copy_file_range",
        "creat", "dup", "dup2", "dup3", "faccessat", "faccessat2", "fadvise64", "fadvise64_64",
        "fallocate", "fanotify_mark", "fchdir", "fchmod", "fchmodat", "fchown", "fchown32",
        "fchownat", "fcntl", "fcntl64", "fdatasync", "fgetxattr", "flistxattr", "flock",
        "fremovexattr", "fsetxattr", "fstat", "fstat64", "fstatat64", "fstatfs", "fstatfs64",
        "fsync", "ftruncate", "ftruncate64", "futimesat", "getcwd", "getdents", "getdents64",
        "getxattr", "inotify_add_watch", "inotify_init", "inotify_init1", "inotify_rm_watch",
        "lchown", "lchown32", "lgetxattr", "link", "linkat", "listxattr", "llistxattr", "_llseek",
        "lremovexattr", "lseek", "lsetxattr", "lstat", "lstat64", "mkdir", "mkdirat", "mknod",
        "mknodat", "name_to_handle_at", "newfstatat", "open", "openat", "openat2", "pread64",
        "preadv", "preadv2", "pwrite64", "pwritev", "pwritev2", "read", "readahead", "readlink",
        "readlinkat", "readv", "removexattr", "rename", "renameat", "renameat2", "rmdir",
        "sendfile", "sendfile64", "setxattr", "splice", "stat", "stat64", "statfs", "statfs64",
        "statx", "symlink", "symlinkat", "sync", "sync_file_range", "syncfs", "tee", "truncate",
        "truncate64", "umask", "unlink", "unlinkat", "utime", "utimensat", "utimensat_time64",
        "utimes", "vmsplice", "write", "writev",
    ]),
    ("asynchronous I/O and polling", &[
        "epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_pwait",
        "epoll_pwait2", "epoll_wait", "epoll_wait_old", "eventfd", "eventfd2", "io_cancel",
        "io_destroy", "io_getevents", "io_pgetevents", "io_pgetevents_time64", "io_setup",
        "io_submit", "io_uring_enter", "io_uring_register", "io_uring_setup", "ioctl", "pause",
        "poll", "ppoll", "ppoll_time64", "pselect6", "pselect6_time64", "select", "_newselect",
        "signalfd", "signalfd4", "timerfd_create", "timerfd_gettime", "timerfd_gettime64",
        "timerfd_settime", "timerfd_settime64",
    ]),
    ("processes, credentials and scheduling (clone is below: only without namespace flags)", &[
        "capget", "capset", "execve", "execveat", "exit", "exit_group", "fork", "getcpu", "getegid",
        "getegid32", "geteuid", "geteuid32", "getgid", "getgid32", "getgroups", "getgroups32",
        "getitimer", "getpgid", "getpgrp", "getpid", "getppid", "getpriority", "getresgid",
        "getresgid32", "getresuid", "getresuid32", "getrlimit", "get_robust_list", "getrusage",
        "getsid", "get_thread_area", "gettid", "getuid", "getuid32", "ioprio_get", "ioprio_set",
        "kill", "landlock_add_rule", "landlock_create_ruleset", "landlock_restrict_self",
        "membarrier", "pidfd_open", "pidfd_send_signal", "prctl", "prlimit64", "process_mrelease",
        "restart_syscall", "rseq", "sched_getaffinity", "sched_getattr", "sched_getparam",
        "sched_get_priority_max", "sched_get_priority_min", "sched_getscheduler",
        "sched_rr_get_interval", "sched_rr_get_interval_time64", "sched_setaffinity",
        "sched_setattr", "sched_setparam", "sched_setscheduler", "sched_yield", "seccomp",
        "setfsgid", "setfsgid32", "setfsuid", "setfsuid32", "setgid", "setgid32", "setgroups",
        "setgroups32", "setitimer", "setpgid", "setpriority", "setregid", "setregid32", "setresgid",
        "setresgid32", "setresuid", "setresuid32", "setreuid", "setreuid32", "setrlimit",
        "set_robust_list", "setsid", "set_thread_area", "set_tid_address", "setuid", "setuid32",
        "tgkill", "tkill", "ugetrlimit", "uname", "vfork", "wait4", "waitid", "waitpid",
    ]),
    ("signals", &[
        "alarm", "rt_sigaction", "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo",
        "rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait", "rt_sigtimedwait_time64",
        "rt_tgsigqueueinfo", "sigaltstack", "sigprocmask", "sigreturn",
    ]),
    ("memory", &[
        "brk", "futex", "futex_time64", "futex_waitv", "madvise", "memfd_create", "memfd_secret",
        "mincore", "mlock", "mlock2", "mlockall", "mmap", "mmap2", "mprotect", "mremap", "msync",
        "munlock", "munlockall", "munmap", "pkey_alloc", "pkey_free", "pkey_mprotect",
        "remap_file_pages",
    ]),
    ("reading the clocks (setting them needs CAP_SYS_TIME, below)", &[
        "adjtimex", "clock_adjtime", "clock_adjtime64", "clock_getres", "clock_getres_time64",
        "clock_gettime", "clock_gettime64", "clock_nanosleep", "clock_nanosleep_time64",
        "gettimeofday", "nanosleep", "sysinfo", "time", "timer_create", "timer_delete",
        "timer_getoverrun", "timer_gettime", "timer_gettime64", "timer_settime", "timer_settime64",
        "times",
    ]),
    ("IPC, in the container's own IPC namespace", &[
        "ipc", "mq_getsetattr", "mq_notify", "mq_open", "mq_timedreceive", "mq_timedreceive_time64",
        "mq_timedsend", "mq_timedsend_time64", "mq_unlink", "msgctl", "msgget", "msgrcv", "msgsnd",
        "pipe", "pipe2", "semctl", "semget", "semop", "semtimedop", "semtimedop_time64", "shmat",
        "shmctl", "shmdt", "shmget",
    ]),
    ("sockets (socket itself is below: not AF_VSOCK)", &[
        "accept", "accept4", "bind", "connect", "getpeername", "getrandom", "getsockname",
        "getsockopt", "listen", "recv", "recvfrom", "recvmmsg", "recvmmsg_time64", "recvmsg",
        "send", "sendmmsg", "sendmsg", "sendto", "setsockopt", "shutdown", "socketcall",
        "socketpair",
    ]),
    ("x86: thread-local storage (arch_prctl) and segments (modify_ldt)", &[
        "arch_prctl", "modify_ldt",
    ]),
];

/// Allowed only to a container that was given the capability, because the
/// call does nothing useful without it and is a large attack surface with it.
#[rustfmt::skip]
const ALLOWED_WITH_CAP: &[(&str, &[&str])] = &[
    ("SYS_ADMIN", &[
        "bpf", "clone", "clone3", "fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick",
        "lookup_dcookie", "mount", "mount_setattr", "move_mount", "open_tree", "perf_event_open",
        "quotactl", "quotactl_fd", "setdomainname", "sethostname", "setns", "syslog", "umount",
        "umount2", "unshare",
    ]),
    ("DAC_READ_SEARCH", &[
        "open_by_handle_at",
    ]),
    ("SYS_BOOT", &[
        "reboot",
    ]),
    ("SYS_CHROOT", &[
        "chroot",
    ]),
    ("SYS_MODULE", &[
        "delete_module", "init_module", "finit_module",
    ]),
    ("SYS_PACCT", &[
        "acct",
    ]),
    ("SYS_PTRACE", &[
        "kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev", "ptrace",
    ]),
    ("SYS_RAWIO", &[
        "iopl", "ioperm",
    ]),
    ("SYS_TIME", &[
        "settimeofday", "stime", "clock_settime", "clock_settime64",
    ]),
    ("SYS_TTY_CONFIG", &[
        "vhangup",
    ]),
    ("SYS_NICE", &[
        "get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node",
    ]),
    ("SYSLOG", &[
        "syslog",
    ]),
    ("BPF", &[
        "bpf",
    ]),
    ("PERFMON", &[
        "perf_event_open",
    ]),
];

/// The namespace flags of clone(2): CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC
/// | NEWUSER | NEWPID | NEWNET. Without CAP_SYS_ADMIN, clone is allowed only
/// when none of them is set: no new namespaces, so no `unshare -U` route to a
/// fresh set of capabilities.
pub const CLONE_NAMESPACE_FLAGS: u64 = 0x7E02_0000;
// ANCHOR_END: seccomp_allow

// ANCHOR: seccomp_denied
/// What the default profile refuses, and why: the calls that the escape suite
/// (tests/security.rs) and the book's table are about. Each is refused because
/// it is missing from the lists above; this table is checked against them.
#[rustfmt::skip]
pub const DENIED: &[(&str, &str)] = &[
    ("mount", "mount a file system over anything, e.g. the host disk (needs SYS_ADMIN)"),
    ("umount2", "uncover what a masked path hides"),
    ("unshare", "a new user namespace gives a full set of capabilities inside it"),
    ("setns", "join another namespace through a leaked fd"),
    ("keyctl", "the kernel keyring is not namespaced: keys of the host and other containers"),
    ("add_key", "as keyctl"),
    ("request_key", "as keyctl"),
    ("bpf", "load programs into the host's kernel"),
    ("perf_event_open", "observe the whole machine; a history of kernel bugs"),
    ("userfaultfd", "stall the kernel mid-copy: a favourite tool of kernel exploits"),
    ("kexec_load", "boot another kernel"),
    ("kexec_file_load", "as kexec_load"),
    ("init_module", "run code in the host's kernel"),
    ("finit_module", "as init_module"),
    ("delete_module", "unload the host's drivers"),
    ("reboot", "restart the host"),
    ("swapon", "swap is host-wide"),
    ("swapoff", "as swapon"),
    ("acct", "switch the host's process accounting"),
    ("settimeofday", "the clock is not namespaced"),
    ("clock_settime", "as settimeofday"),
    ("sethostname", "needs SYS_ADMIN even in its own UTS namespace"),
    ("open_by_handle_at", "open host files by handle, past the mount namespace (shocker)"),
    ("quotactl", "the host's disk quotas"),
    ("lookup_dcookie", "kernel profiling; leaks kernel addresses"),
    ("iopl", "raw I/O ports of the host's hardware"),
    ("ioperm", "as iopl"),
    ("kcmp", "compare kernel objects of other processes"),
    ("ptrace", "allowed, as in Docker since kernel 4.8 (seccomp can no longer be bypassed with it); the pid namespace hides the host's processes"),
    ("pivot_root", "change the root again"),
    ("chroot", "allowed with SYS_CHROOT, which is kept: after pivot_root there is nothing to escape to"),
    ("vhangup", "hang up the host's terminals"),
    ("nfsservctl", "the kernel NFS server"),
    ("uselib", "an obsolete loader with a history of bugs"),
    ("personality", "allowed with the few values programs use; others change how the kernel reads this process"),
    ("socket(AF_VSOCK)", "talk to the hypervisor"),
];
// ANCHOR_END: seccomp_denied

fn rule(names: &[&str], action: &str) -> SyscallRule {
    SyscallRule {
        names: names.iter().map(|s| s.to_string()).collect(),
        action: action.into(),
        ..SyscallRule::default()
    }
}

fn arg(index: u8, value: u64, value_two: u64, op: &str) -> ArgRule {
    ArgRule {
        index,
        value,
        value_two,
        op: op.into(),
    }
}

// ANCHOR: docker_profile
/// Docker's default profile, built from the lists above: refuse with EPERM,
/// allow what is listed, and some more with a capability or an argument check.
pub fn docker_default_profile() -> Profile {
    let mut syscalls: Vec<SyscallRule> = ALLOWED
        .iter()
        .map(|(what, names)| SyscallRule {
            comment: Some((*what).into()),
            ..rule(names, "SCMP_ACT_ALLOW")
        })
        .collect();
    // ptrace has been safe to allow since Linux 4.8, when seccomp began to
    // check the system call again after a tracer changes it; before, a traced
    // process could rewrite a refused call into an allowed one.
    syscalls.push(SyscallRule {
        includes: Some(Condition {
            min_kernel: Some("4.8".into()),
            ..Condition::default()
        }),
        ..rule(
            &["process_vm_readv", "process_vm_writev", "ptrace"],
            "SCMP_ACT_ALLOW",
        )
    });
    // socket(2), but not AF_VSOCK (40): a line to the hypervisor.
    syscalls.push(SyscallRule {
        args: vec![arg(0, 40, 0, "SCMP_CMP_NE")],
        ..rule(&["socket"], "SCMP_ACT_ALLOW")
    });
    // personality(2) with the values programs use: PER_LINUX, UNAME26,
    // PER_LINUX32, UNAME26|PER_LINUX32, and 0xffffffff (query).
    for value in [0, 8, 0x20000, 0x20008, 0xffff_ffff] {
        syscalls.push(SyscallRule {
            args: vec![arg(0, value, 0, "SCMP_CMP_EQ")],
            ..rule(&["personality"], "SCMP_ACT_ALLOW")
        });
    }
    for (cap, names) in ALLOWED_WITH_CAP {
        syscalls.push(SyscallRule {
            includes: Some(Condition {
                caps: vec![format!("CAP_{cap}")],
                ..Condition::default()
            }),
            ..rule(names, "SCMP_ACT_ALLOW")
        });
    }
    // clone without namespace flags, for anyone (fork and threads).
    syscalls.push(SyscallRule {
        args: vec![arg(0, CLONE_NAMESPACE_FLAGS, 0, "SCMP_CMP_MASKED_EQ")],
        excludes: Some(Condition {
            caps: vec!["CAP_SYS_ADMIN".into()],
            ..Condition::default()
        }),
        ..rule(&["clone"], "SCMP_ACT_ALLOW")
    });
    // clone3 passes its flags in memory, where seccomp cannot look. ENOSYS
    // (not EPERM) makes glibc and lab 02 fall back to clone, which it checks.
    syscalls.push(SyscallRule {
        errno_ret: Some(libc::ENOSYS as u32),
        excludes: Some(Condition {
            caps: vec!["CAP_SYS_ADMIN".into()],
            ..Condition::default()
        }),
        ..rule(&["clone3"], "SCMP_ACT_ERRNO")
    });
    Profile {
        default_action: "SCMP_ACT_ERRNO".into(),
        default_errno_ret: Some(libc::EPERM as u32),
        architectures: Vec::new(),
        arch_map: vec![
            ArchMap {
                architecture: "SCMP_ARCH_X86_64".into(),
                sub_architectures: Some(vec!["SCMP_ARCH_X86".into(), "SCMP_ARCH_X32".into()]),
            },
            ArchMap {
                architecture: "SCMP_ARCH_AARCH64".into(),
                sub_architectures: Some(vec!["SCMP_ARCH_ARM".into()]),
            },
            ArchMap {
                architecture: "SCMP_ARCH_RISCV64".into(),
                sub_architectures: None,
            },
        ],
        syscalls,
    }
}
// ANCHOR_END: docker_profile

/// This machine's architecture in the three spellings a profile may use.
fn native_arch() -> anyhow::Result<(TargetArch, &'static str, &'static str)> {
    Ok(match std::env::consts::ARCH {
        "x86_64" => (TargetArch::x86_64, "SCMP_ARCH_X86_64", "amd64"),
        "aarch64" => (TargetArch::aarch64, "SCMP_ARCH_AARCH64", "arm64"),
        "riscv64" => (TargetArch::riscv64, "SCMP_ARCH_RISCV64", "riscv64"),
        other => bail!("seccomp: architecture {other} is not supported by seccompiler"),
    })
}

/// The running kernel's (major, minor), from uname(2).
fn kernel_version() -> (u32, u32) {
    let uts = nix::sys::utsname::uname().ok();
    let release = uts
        .as_ref()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    parse_version(&release).unwrap_or((0, 0))
}

fn parse_version(s: &str) -> Option<(u32, u32)> {
    let mut parts = s.split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

fn parse_action(
    name: &str,
    errno: Option<u32>,
    default_errno: u32,
) -> anyhow::Result<SeccompAction> {
    Ok(match name {
        "SCMP_ACT_ALLOW" => SeccompAction::Allow,
        "SCMP_ACT_ERRNO" => SeccompAction::Errno(errno.unwrap_or(default_errno)),
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => SeccompAction::KillThread,
        "SCMP_ACT_KILL_PROCESS" => SeccompAction::KillProcess,
        "SCMP_ACT_TRAP" => SeccompAction::Trap,
        "SCMP_ACT_LOG" => SeccompAction::Log,
        "SCMP_ACT_TRACE" => SeccompAction::Trace(errno.unwrap_or(default_errno)),
        other => bail!("seccomp action {other:?} is not supported (SCMP_ACT_NOTIFY needs a listener this lab does not have)"),
    })
}

fn parse_op(a: &ArgRule) -> anyhow::Result<(SeccompCmpOp, u64)> {
    Ok(match a.op.as_str() {
        "SCMP_CMP_NE" => (SeccompCmpOp::Ne, a.value),
        "SCMP_CMP_LT" => (SeccompCmpOp::Lt, a.value),
        "SCMP_CMP_LE" => (SeccompCmpOp::Le, a.value),
        "SCMP_CMP_EQ" => (SeccompCmpOp::Eq, a.value),
        "SCMP_CMP_GE" => (SeccompCmpOp::Ge, a.value),
        "SCMP_CMP_GT" => (SeccompCmpOp::Gt, a.value),
        "SCMP_CMP_MASKED_EQ" => (SeccompCmpOp::MaskedEq(a.value), a.value_two),
        other => bail!("seccomp comparison {other:?} is unknown"),
    })
}

/// Whether Docker's includes/excludes let this rule apply to this container.
fn rule_applies(r: &SyscallRule, caps: CapMask, arch: &str, kernel: (u32, u32)) -> bool {
    let has_cap = |name: &String| match parse_cap(name) {
        Ok(Some(c)) => caps & (1 << c.number) != 0,
        _ => false,
    };
    if let Some(inc) = &r.includes {
        if !inc.caps.iter().all(has_cap) {
            return false;
        }
        if !inc.arches.is_empty() && !inc.arches.iter().any(|a| a == arch) {
            return false;
        }
        if let Some(min) = inc.min_kernel.as_deref().and_then(parse_version) {
            if kernel < min {
                return false;
            }
        }
    }
    if let Some(exc) = &r.excludes {
        if exc.caps.iter().any(has_cap) || exc.arches.iter().any(|a| a == arch) {
            return false;
        }
        if let Some(min) = exc.min_kernel.as_deref().and_then(parse_version) {
            if kernel >= min {
                return false;
            }
        }
    }
    true
}

/// Rules per system call number; `None` means "whatever the arguments".
type RuleMap = BTreeMap<i64, Option<Vec<SeccompRule>>>;

// ANCHOR: compile
/// Compile `profile` for a container with capabilities `caps` into BPF
/// programs, to be installed in order.
///
/// seccompiler builds one filter per *action*: "these calls get action A,
/// all others get B". A profile has several actions (allow most calls, EPERM
/// by default, ENOSYS for clone3), so we build one program per action and
/// stack them. The kernel runs every filter of a process and keeps the most
/// restrictive answer (KILL > TRAP > ERRNO > TRACE > LOG > ALLOW); between
/// two ERRNO answers, the filter installed last wins. So the first program
/// holds the allow list with the default action, and each later one says
/// "this action for these calls, allow for the rest". A call that two rules
/// of different actions both match gets the stricter one.
///
/// Each program first checks the architecture the call was made for. On
/// x86_64, a 32-bit x86 program (`int 0x80`, AUDIT_ARCH_I386) makes calls
/// with other numbers: `getpid` is 39 on x86_64 and 20 on i386. Docker's
/// profile lists `SCMP_ARCH_X86` as a sub-architecture, so each program
/// gets a second half that applies the same rules, by name, with i386
/// numbers (see [`i386`]). A profile that does not list it leaves such
/// programs killed, as libseccomp does for an architecture not in the filter.
pub fn compile(profile: &Profile, caps: CapMask) -> anyhow::Result<Vec<BpfProgram>> {
    let (target, scmp_arch, docker_arch) = native_arch()?;
    let listed: Vec<&str> = profile
        .architectures
        .iter()
        .map(String::as_str)
        .chain(profile.arch_map.iter().map(|m| m.architecture.as_str()))
        .collect();
    if !listed.is_empty() && !listed.contains(&scmp_arch) {
        bail!("the seccomp profile does not list this machine's architecture ({scmp_arch}): {listed:?}");
    }
    // The i386 half: only where the profile asks for it, as Docker's does.
    let with_i386 = target == TargetArch::x86_64
        && (profile.architectures.iter().any(|a| a == "SCMP_ARCH_X86")
            || profile.arch_map.iter().any(|m| {
                m.architecture == scmp_arch
                    && m.sub_architectures
                        .iter()
                        .flatten()
                        .any(|a| a == "SCMP_ARCH_X86")
            }));
    let kernel = kernel_version();
    let default_errno = profile.default_errno_ret.unwrap_or(libc::EPERM as u32);
    let default = parse_action(
        &profile.default_action,
        profile.default_errno_ret,
        default_errno,
    )?;

    // action -> rules (x86_64 numbers, i386 numbers). SeccompAction is not
    // Ord, so keep a small Vec.
    let mut groups: Vec<(SeccompAction, RuleMap, i386::RuleMap)> = Vec::new();
    for r in &profile.syscalls {
        if !rule_applies(r, caps, docker_arch, kernel) {
            continue;
        }
        let action = parse_action(&r.action, r.errno_ret, default_errno)?;
        if action == default {
            continue;
        }
        let conditions = r
            .args
            .iter()
            .map(|a| {
                let (op, value) = parse_op(a)?;
                SeccompCondition::new(a.index, SeccompCmpArgLen::Qword, op, value)
                    .map_err(|e| anyhow::anyhow!("seccomp argument {}: {e}", a.index))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let index = match groups.iter().position(|(a, _, _)| *a == action) {
            Some(i) => i,
            None => {
                groups.push((action, RuleMap::new(), i386::RuleMap::new()));
                groups.len() - 1
            }
        };
        if with_i386 {
            let conditions = r
                .args
                .iter()
                .map(|a| Ok((a.index, parse_op(a)?)))
                .collect::<anyhow::Result<Vec<_>>>()?;
            i386::add(
                &mut groups[index].2,
                r.names.iter().chain(&r.name),
                &conditions,
            );
        }
        let map = &mut groups[index].1;
        for name in r.names.iter().chain(&r.name) {
            // Unknown here (another architecture's call): skip, as libseccomp does.
            let Ok(sysno) = name.parse::<syscalls::Sysno>() else {
                continue;
            };
            let entry = map
                .entry(sysno.id() as i64)
                .or_insert_with(|| Some(Vec::new()));
            match (entry.as_mut(), conditions.is_empty()) {
                (_, true) => *entry = None,
                (Some(rules), false) => rules.push(
                    SeccompRule::new(conditions.clone())
                        .map_err(|e| anyhow::anyhow!("seccomp rule for {name}: {e}"))?,
                ),
                (None, false) => {}
            }
        }
    }
    // The allow list goes first (see above), then the other actions.
    groups.sort_by_key(|(a, _, _)| *a != SeccompAction::Allow);

    let mut programs = Vec::new();
    let build = |rules: RuleMap,
                 rules_i386: i386::RuleMap,
                 mismatch: SeccompAction,
                 matched: SeccompAction| {
        // The calls without conditions go in front, as ranges of numbers
        // (see `ranges`); seccompiler compiles only those with conditions.
        let audit_arch = match target {
            TargetArch::x86_64 => Some(ranges::AUDIT_ARCH_X86_64),
            TargetArch::aarch64 => Some(ranges::AUDIT_ARCH_AARCH64),
            _ => None,
        };
        let (plain, rules): (Vec<u32>, BTreeMap<i64, Vec<SeccompRule>>) = match audit_arch {
            Some(_) => (
                rules
                    .iter()
                    .filter(|(_, r)| r.is_none())
                    .map(|(nr, _)| *nr as u32)
                    .collect(),
                rules
                    .into_iter()
                    .filter_map(|(nr, r)| Some((nr, r?)))
                    .collect(),
            ),
            None => (
                Vec::new(),
                rules
                    .into_iter()
                    .map(|(nr, r)| (nr, r.unwrap_or_default()))
                    .collect(),
            ),
        };
        let filter = SeccompFilter::new(rules, mismatch.clone(), matched.clone(), target)
            .map_err(|e| anyhow::anyhow!("building the seccomp filter: {e}"))?;
        let program: BpfProgram = filter
            .try_into()
            .map_err(|e| anyhow::anyhow!("compiling the seccomp filter: {e}"))?;
        let mut front = match audit_arch {
            Some(arch) => ranges::program(Some(arch), &plain, matched.clone().into())?,
            None => Vec::new(),
        };
        front.extend(program);
        let program = with_x32_check(target, front);
        if !with_i386 {
            return anyhow::Ok(program);
        }
        let half = i386::program(&rules_i386, mismatch.into(), matched.into())?;
        i386::combine(program, half)
    };
    if !groups.iter().any(|(a, _, _)| *a == SeccompAction::Allow) && default != SeccompAction::Allow
    {
        // Nothing is allowed explicitly: one program that answers the default.
        programs.push(build(
            RuleMap::new(),
            i386::RuleMap::new(),
            default.clone(),
            SeccompAction::Allow,
        )?);
    }
    for (action, rules, rules_i386) in groups {
        if action == SeccompAction::Allow {
            programs.push(build(
                rules,
                rules_i386,
                default.clone(),
                SeccompAction::Allow,
            )?);
        } else {
            programs.push(build(rules, rules_i386, SeccompAction::Allow, action)?);
        }
    }
    Ok(programs)
}
// ANCHOR_END: compile

/// On x86_64 the kernel also accepts the x32 ABI's calls, numbered from
/// 0x40000000 and reporting the same architecture. seccompiler does not look
/// at them, so a profile that allows by default would let a program dodge a
/// refused call by using its x32 number. Refuse them all first (EPERM).
fn with_x32_check(target: TargetArch, program: BpfProgram) -> BpfProgram {
    if target != TargetArch::x86_64 {
        return program;
    }
    use seccompiler::sock_filter;
    let mut out = vec![
        // A = seccomp_data.nr
        sock_filter {
            code: 0x20,
            jt: 0,
            jf: 0,
            k: 0,
        },
        // if A >= 0x40000000 go on to the next, else skip it
        sock_filter {
            code: 0x35,
            jt: 0,
            jf: 1,
            k: 0x4000_0000,
        },
        // return SECCOMP_RET_ERRNO | EPERM
        sock_filter {
            code: 0x06,
            jt: 0,
            jf: 0,
            k: libc::SECCOMP_RET_ERRNO | libc::EPERM as u32,
        },
    ];
    // seccompiler's own program reloads what it needs; its jumps are
    // relative, so putting ours in front changes none of them.
    out.extend(program);
    out
}

pub mod ranges {
    //! # Allowed calls as ranges of numbers
    //!
    //! A seccomp program is run on every system call the container makes,
    //! and compiled by the kernel (checked, translated to eBPF, JIT-compiled)
    //! every time a container starts. Docker's profile allows some 300 calls
    //! with no condition on their arguments; one test per call is 600
    //! instructions per architecture, a millisecond and a half of the
    //! start measured with `strace -T -e seccomp`. Their numbers mostly come
    //! in runs (`read` 0, `write` 1, `open` 2...), so this writes them as
    //! ranges, walked in ascending order: two instructions per range.
    //!
    //! ```text
    //!   ld  [4]                    ; A = arch         (native half only)
    //!   jeq #ARCH, 0, <to rest>
    //!   ld  [0]                    ; A = nr
    //!   jgt #2, 1, 0               ; past the range 0..=2? on to the next
    //!   jge #0, <ret>, <miss>      ; in it: ret; below it: in no range
    //!   jgt #25, 1, 0              ; 4..=25
    //!   jge #4, <ret>, <miss>
    //!   ...
    //!   ja  1                      ; <miss>: on to the rest of the program
    //!   ret #matched               ; <ret>
    //! ```
    //!
    //! The rest of the program, for the calls with conditions, comes after.

    use anyhow::bail;
    use seccompiler::BpfProgram;

    use super::i386::{jump, stmt, JA, JEQ, JGE, JGT, LD_W_ABS, RET};

    /// `AUDIT_ARCH_X86_64` from `<linux/audit.h>`.
    pub const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
    /// `AUDIT_ARCH_AARCH64`.
    pub const AUDIT_ARCH_AARCH64: u32 = 0xC000_00B7;

    /// The contiguous runs of `numbers`, as (first, last).
    pub fn runs(numbers: &[u32]) -> Vec<(u32, u32)> {
        let mut sorted = numbers.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let mut out: Vec<(u32, u32)> = Vec::new();
        for n in sorted {
            match out.last_mut() {
                Some((_, last)) if *last + 1 == n => *last = n,
                _ => out.push((n, n)),
            }
        }
        out
    }

    /// A program that returns `matched` for the calls `numbers` and falls
    /// through to whatever follows it for every other call. With `arch`, it
    /// first checks `seccomp_data.arch` (a call of another architecture
    /// falls through, untested: its numbers mean other calls).
    // ANCHOR: ranges
    pub fn program(arch: Option<u32>, numbers: &[u32], matched: u32) -> anyhow::Result<BpfProgram> {
        let runs = runs(numbers);
        if runs.is_empty() {
            return Ok(Vec::new());
        }
        // jt and jf are 8 bits: the farthest jump, from the first range to
        // the `ret`, is 2 * runs.len() instructions.
        if 2 * runs.len() + 1 > u8::MAX as usize {
            bail!("{} ranges of calls: too many for one block", runs.len());
        }
        let mut body = vec![stmt(LD_W_ABS, 0)];
        let n = runs.len();
        for (i, (first, last)) in runs.into_iter().enumerate() {
            // From the jge of range i: the miss (`ja`) is 2 * (n - i - 1)
            // instructions ahead, the `ret` one more.
            let to_miss = (2 * (n - i - 1)) as u8;
            body.push(jump(JGT, last, 1, 0));
            body.push(jump(JGE, first, to_miss + 1, to_miss));
        }
        body.push(stmt(JA, 1));
        body.push(stmt(RET, matched));
        let mut out = Vec::new();
        if let Some(arch) = arch {
            if body.len() > u8::MAX as usize {
                bail!("the ranges block is too long for a BPF jump");
            }
            out.push(stmt(LD_W_ABS, 4));
            out.push(jump(JEQ, arch, 0, body.len() as u8));
        }
        out.extend(body);
        Ok(out)
    }
    // ANCHOR_END: ranges
}

pub mod i386 {
    //! # 32-bit x86 calls on an x86_64 kernel
    //!
    //! An x86_64 kernel runs 32-bit x86 programs too: they enter with
    //! `int 0x80` (or `sysenter`), with i386 system call numbers, and seccomp
    //! tells them apart by `seccomp_data.arch`, `AUDIT_ARCH_I386`. seccompiler
    //! only builds programs for the native architecture, so this half is
    //! written here, in classic BPF, the language of seccomp filters:
    //!
    //! ```text
    //! struct seccomp_data { int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6]; };
    //!
    //!   ld  [0]                 ; A = nr
    //!   jeq #20, 0, 1           ; getpid? (its i386 number) else skip one
    //!   ret #ALLOW
    //!   ld  [0]                 ; the next call's block
    //!   ...
    //!   ret #ERRNO(EPERM)       ; nothing matched: the profile's default
    //! ```
    //!
    //! A call with argument conditions compares the low 32 bits of each
    //! argument (`args[i]` at offset 16 + 8i; x86 is little-endian). i386
    //! arguments are 32-bit registers that the kernel zero-extends, so the
    //! high half is always 0, and libseccomp compares only the low half on
    //! 32-bit architectures too.

    use std::collections::BTreeMap;

    use anyhow::bail;
    use seccompiler::{sock_filter, BpfProgram, SeccompCmpOp};

    /// `AUDIT_ARCH_I386` from `<linux/audit.h>`: EM_386 | __AUDIT_ARCH_LE.
    pub const AUDIT_ARCH_I386: u32 = 0x4000_0003;

    /// One rule's conditions: (argument index, comparison, value), all of
    /// which must hold.
    pub type Conditions = Vec<(u8, (SeccompCmpOp, u64))>;
    /// Rules per i386 call number; `None` means "whatever the arguments".
    pub type RuleMap = BTreeMap<u32, Option<Vec<Conditions>>>;

    /// Add a profile rule's `names` with its `conditions`. Names that i386
    /// does not have (`arch_prctl`, `newfstatat`...) are skipped, as
    /// libseccomp does; the 32-bit ones (`socketcall`, `mmap2`, `_llseek`)
    /// that x86_64 skipped are found here.
    pub fn add<'a>(
        map: &mut RuleMap,
        names: impl Iterator<Item = &'a String>,
        conditions: &Conditions,
    ) {
        for name in names {
            let Ok(sysno) = name.parse::<syscalls::x86::Sysno>() else {
                continue;
            };
            let entry = map
                .entry(sysno.id() as u32)
                .or_insert_with(|| Some(Vec::new()));
            match (entry.as_mut(), conditions.is_empty()) {
                (_, true) => *entry = None,
                (Some(rules), false) => rules.push(conditions.clone()),
                (None, false) => {}
            }
        }
    }

    // Classic BPF opcodes (`<linux/bpf_common.h>`).
    pub(crate) const LD_W_ABS: u16 = 0x20; // A = *(u32 *)(data + k)
    pub(crate) const JEQ: u16 = 0x15; // if A == k
    pub(crate) const JGT: u16 = 0x25; // if A > k (unsigned)
    pub(crate) const JGE: u16 = 0x35; // if A >= k
    pub(crate) const JA: u16 = 0x05; // goto +k
    const AND: u16 = 0x54; // A &= k
    pub(crate) const RET: u16 = 0x06; // return k

    pub(crate) fn stmt(code: u16, k: u32) -> sock_filter {
        sock_filter {
            code,
            jt: 0,
            jf: 0,
            k,
        }
    }

    pub(crate) fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
        sock_filter { code, jt, jf, k }
    }

    /// A jump from inside a block to its end, `to_end` instructions after
    /// the one that follows: too far for the 8-bit jt/jf is an error.
    fn short(to_end: usize) -> anyhow::Result<u8> {
        u8::try_from(to_end).map_err(|_| anyhow::anyhow!("seccomp rule too long for a BPF jump"))
    }

    /// What one condition compiles to, given that the high half of an i386
    /// argument is 0. `Ok(None)`: the condition always holds; `Err(())`: it
    /// never does, so its rule can be left out. Each test jumps to the
    /// placeholder "fail" (patched to the end of the rule) when it fails.
    fn condition(index: u8, op: &SeccompCmpOp, value: u64) -> Result<Option<Vec<Test>>, ()> {
        let hi = (value >> 32) as u32;
        let lo = value as u32;
        let load = Test::Stmt(stmt(LD_W_ABS, 16 + 8 * index as u32));
        Ok(Some(match op {
            // arg == v: pass on equal, else fail.
            SeccompCmpOp::Eq if hi != 0 => return Err(()),
            SeccompCmpOp::Eq => vec![load, Test::FailUnless(JEQ, lo)],
            SeccompCmpOp::Ne if hi != 0 => return Ok(None),
            SeccompCmpOp::Ne => vec![load, Test::FailIf(JEQ, lo)],
            SeccompCmpOp::Gt if hi != 0 => return Err(()),
            SeccompCmpOp::Gt => vec![load, Test::FailUnless(JGT, lo)],
            SeccompCmpOp::Ge if hi != 0 => return Err(()),
            SeccompCmpOp::Ge => vec![load, Test::FailUnless(JGE, lo)],
            SeccompCmpOp::Lt if hi != 0 => return Ok(None),
            SeccompCmpOp::Lt => vec![load, Test::FailIf(JGE, lo)],
            SeccompCmpOp::Le if hi != 0 => return Ok(None),
            SeccompCmpOp::Le => vec![load, Test::FailIf(JGT, lo)],
            // (arg & mask) == v; the masked high half is 0.
            SeccompCmpOp::MaskedEq(_) if hi != 0 => return Err(()),
            SeccompCmpOp::MaskedEq(mask) => vec![
                load,
                Test::Stmt(stmt(AND, *mask as u32)),
                Test::FailUnless(JEQ, lo),
            ],
        }))
    }

    enum Test {
        Stmt(sock_filter),
        /// Go on if the jump's test holds, else fail.
        FailUnless(u16, u32),
        /// Fail if the jump's test holds, else go on.
        FailIf(u16, u32),
    }

    // ANCHOR: i386_program
    /// The i386 half of a filter: `matched` for the calls in `rules`,
    /// `mismatch` for every other call. One block per call number, each
    /// starting by loading the number again, since argument checks load
    /// into the same accumulator.
    pub fn program(rules: &RuleMap, mismatch: u32, matched: u32) -> anyhow::Result<BpfProgram> {
        // The calls without conditions first, as ranges (see `ranges`):
        // a few dozen instructions instead of two per call.
        let plain: Vec<u32> = rules
            .iter()
            .filter(|(_, r)| r.is_none())
            .map(|(nr, _)| *nr)
            .collect();
        let mut out = super::ranges::program(None, &plain, matched)?;
        for (nr, rules) in rules.iter().filter(|(_, r)| r.is_some()) {
            // The block after its first two instructions.
            let mut body: Vec<sock_filter> = Vec::new();
            match rules {
                None => body.push(stmt(RET, matched)),
                Some(rules) => {
                    'rule: for conditions in rules {
                        let mut tests = Vec::new();
                        for (index, (op, value)) in conditions {
                            match condition(*index, op, *value) {
                                Ok(Some(t)) => tests.extend(t),
                                Ok(None) => {}
                                Err(()) => continue 'rule,
                            }
                        }
                        // tests, then `ret matched`; a failed test jumps past it.
                        let len = tests.len() + 1;
                        for (i, t) in tests.into_iter().enumerate() {
                            let to_end = short(len - i - 1)?;
                            body.push(match t {
                                Test::Stmt(s) => s,
                                Test::FailUnless(code, k) => jump(code, k, 0, to_end),
                                Test::FailIf(code, k) => jump(code, k, to_end, 0),
                            });
                        }
                        body.push(stmt(RET, matched));
                    }
                }
            }
            out.push(stmt(LD_W_ABS, 0));
            // Not this call: skip the body, to the next block.
            out.push(jump(JEQ, *nr, 0, short(body.len())?));
            out.extend(body);
        }
        out.push(stmt(RET, mismatch));
        Ok(out)
    }
    // ANCHOR_END: i386_program

    // ANCHOR: i386_combine
    /// One program for both ABIs: the i386 half after the native one, and in
    /// front a check of `seccomp_data.arch` that jumps to it. Both halves end
    /// every path with a `ret`, and their jumps are relative, so neither
    /// needs to change.
    ///
    /// ```text
    ///   ld  [4]                  ; A = arch
    ///   jeq #AUDIT_ARCH_I386, 0, 1
    ///   ja  +len(native)         ; i386: over the native half
    ///   <native half>            ; seccompiler's, which checks for x86_64 itself
    ///   <i386 half>
    /// ```
    pub fn combine(native: BpfProgram, i386: BpfProgram) -> anyhow::Result<BpfProgram> {
        let mut out = vec![
            stmt(LD_W_ABS, 4),
            jump(JEQ, AUDIT_ARCH_I386, 0, 1),
            stmt(JA, native.len() as u32),
        ];
        out.extend(native);
        out.extend(i386);
        // BPF_MAXINSNS: the kernel refuses longer seccomp programs.
        if out.len() > 4096 {
            bail!(
                "the seccomp program has {} instructions, more than the kernel's 4096",
                out.len()
            );
        }
        Ok(out)
    }
    // ANCHOR_END: i386_combine
}

/// Compiled programs, by the sha256 digest of (where the profile came from,
/// capabilities). Compiling Docker's profile takes about 0.06 ms in a
/// release build (0.8 ms in a debug one): cheap, but an engine that starts
/// many containers in one process need not repeat it. The key is the file's
/// bytes, or a name for the built-in profile, so that a hit costs neither
/// parsing nor building the profile.
type Cache = Mutex<HashMap<[u8; 32], Arc<Vec<BpfProgram>>>>;
static CACHE: OnceLock<Cache> = OnceLock::new();

/// [`compile`] the profile that `build` makes, unless one with the same
/// `source` (its bytes, or a name) and `caps` was compiled before.
pub fn compile_cached(
    source: &[u8],
    caps: CapMask,
    build: impl FnOnce() -> anyhow::Result<Profile>,
) -> anyhow::Result<Arc<Vec<BpfProgram>>> {
    let mut hasher = Sha256::new();
    hasher.update(source);
    hasher.update(caps.to_le_bytes());
    let key: [u8; 32] = hasher.finalize().into();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(hit) = cache.lock().ok().and_then(|c| c.get(&key).cloned()) {
        return Ok(hit);
    }
    let programs = Arc::new(compile(&build()?, caps)?);
    if let Ok(mut c) = cache.lock() {
        c.insert(key, programs.clone());
    }
    Ok(programs)
}

// ANCHOR: install_seccomp
/// Install compiled programs on this thread with seccomp(2). The kernel
/// requires no_new_privs or CAP_SYS_ADMIN; we do not use seccompiler's
/// `apply_filter`, which always sets no_new_privs, because
/// `no-new-privileges=false` must stay possible.
fn install_seccomp(programs: &[BpfProgram]) -> anyhow::Result<()> {
    for program in programs {
        let prog = libc::sock_fprog {
            len: program.len() as u16,
            filter: program.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: prog points at `program`, which outlives the call; the
        // kernel copies it. seccompiler's sock_filter is #[repr(C)] and
        // identical to the kernel's.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                0,
                &prog as *const libc::sock_fprog,
            )
        };
        Errno::result(ret).context("seccomp(SECCOMP_SET_MODE_FILTER)")?;
    }
    Ok(())
}
// ANCHOR_END: install_seccomp

// ---------------------------------------------------------------------------
// The options, as docker run spells them
// ---------------------------------------------------------------------------

/// Which seccomp profile: `--security-opt seccomp=...`.
#[derive(Debug, Clone, PartialEq)]
pub enum Seccomp {
    /// Docker's default profile ([`docker_default_profile`]).
    Default,
    /// No filter at all: `seccomp=unconfined`.
    Unconfined,
    /// A profile read from a JSON file (read in the parent, before clone: the
    /// host path is gone after pivot_root).
    Profile(PathBuf),
}

/// One `--tmpfs PATH[:OPTIONS]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Tmpfs {
    pub path: PathBuf,
    /// Mount options, e.g. `size=64m,mode=1777`; `nosuid,nodev,noexec` unless
    /// `suid`, `dev` or `exec` say otherwise.
    pub options: String,
}

impl std::str::FromStr for Tmpfs {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (path, options) = s.split_once(':').unwrap_or((s, ""));
        if !path.starts_with('/') {
            return Err(format!("--tmpfs {path:?}: the path must be absolute"));
        }
        Ok(Tmpfs {
            path: path.into(),
            options: options.into(),
        })
    }
}

/// Paths under /proc and /sys that a container must not read: a file is
/// covered by /dev/null, a directory by an empty read-only tmpfs.
pub const MASKED_PATHS: [&str; 10] = [
    "/proc/asound",        // sound cards of the host
    "/proc/acpi",          // power buttons and fans of the host
    "/proc/kcore",         // the host's whole physical memory, as an ELF core file
    "/proc/keys",          // every key in the kernel's keyrings
    "/proc/latency_stats", // kernel stack traces: addresses that defeat KASLR
    "/proc/timer_list",    // timers of every process on the host
    "/proc/timer_stats",   // the same, on old kernels
    "/proc/sched_debug",   // every task on the host, with its name
    "/proc/scsi",          // rescanning disks by writing here
    "/sys/firmware",       // ACPI tables, EFI variables (some bricked laptops)
];

/// Paths under /proc that stay readable but not writable.
pub const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",           // PCI config space of the host's devices
    "/proc/fs",            // file system tunables, host-wide
    "/proc/irq",           // interrupt affinity of the host's CPUs
    "/proc/sys", // sysctls: most are host-wide (kernel.core_pattern runs a program as host root)
    "/proc/sysrq-trigger", // 'echo b' reboots the host
];

// ANCHOR: security
/// The security layer of a container. `Spec::security = None` is lab 02's own
/// behaviour (root with every capability); [`Security::docker_default`] is
/// what `docker run` does, and what `dockyard run` uses.
#[derive(Debug, Clone, PartialEq)]
pub struct Security {
    /// `--privileged`: every capability, no seccomp, nothing masked, /sys
    /// writable. The flags below that would take something away are ignored.
    pub privileged: bool,
    /// `--cap-add` (names with or without `CAP_`, any case, or `ALL`).
    pub cap_add: Vec<String>,
    /// `--cap-drop`.
    pub cap_drop: Vec<String>,
    /// `--security-opt seccomp=...`.
    pub seccomp: Seccomp,
    /// `--security-opt no-new-privileges`: on by default in dockyard (Docker
    /// leaves it off unless asked; with it on, a set-uid binary in the image
    /// cannot gain what the container was not given).
    pub no_new_privileges: bool,
    /// Covered, see [`MASKED_PATHS`].
    pub masked_paths: Vec<PathBuf>,
    /// Read-only, see [`READONLY_PATHS`].
    pub readonly_paths: Vec<PathBuf>,
    /// `--read-only`: the root file system is remounted read-only at the end.
    pub read_only_rootfs: bool,
    /// `--tmpfs PATH[:OPTS]`.
    pub tmpfs: Vec<Tmpfs>,
}

impl Security {
    /// Docker's defaults, with no_new_privs on.
    pub fn docker_default() -> Security {
        Security {
            privileged: false,
            cap_add: Vec::new(),
            cap_drop: Vec::new(),
            seccomp: Seccomp::Default,
            no_new_privileges: true,
            masked_paths: MASKED_PATHS.iter().map(PathBuf::from).collect(),
            readonly_paths: READONLY_PATHS.iter().map(PathBuf::from).collect(),
            read_only_rootfs: false,
            tmpfs: Vec::new(),
        }
    }

    /// `--privileged`.
    pub fn privileged() -> Security {
        Security {
            privileged: true,
            ..Security::docker_default()
        }
    }

    /// Apply one `--security-opt` value: `seccomp=unconfined`,
    /// `seccomp=PATH`, `no-new-privileges[=true|false]` (also with `:`).
    pub fn apply_opt(&mut self, opt: &str) -> anyhow::Result<()> {
        let (key, value) = opt
            .split_once(['=', ':'])
            .map(|(k, v)| (k, Some(v)))
            .unwrap_or((opt, None));
        match (key, value) {
            ("seccomp", Some("unconfined")) => self.seccomp = Seccomp::Unconfined,
            ("seccomp", Some(path)) if !path.is_empty() => {
                self.seccomp = Seccomp::Profile(path.into())
            }
            ("no-new-privileges", None | Some("true")) => self.no_new_privileges = true,
            ("no-new-privileges", Some("false")) => self.no_new_privileges = false,
            _ => bail!(
                "--security-opt {opt:?}: expected seccomp=unconfined, seccomp=PROFILE.json or \
                 no-new-privileges[=true|false]"
            ),
        }
        Ok(())
    }

    /// Resolve names and compile the seccomp profile, in the parent before
    /// clone: errors surface before any process exists, the profile file is
    /// read while its host path is still visible, and the child only has to
    /// install the result.
    pub fn prepare(&self) -> anyhow::Result<Prepared> {
        let caps = resolve_caps(self.privileged, &self.cap_add, &self.cap_drop)?;
        let seccomp = match (&self.seccomp, self.privileged) {
            (_, true) | (Seccomp::Unconfined, _) => None,
            (Seccomp::Default, _) => Some(compile_cached(
                b"dockyard: Docker's default profile, as built by this version",
                caps,
                || Ok(docker_default_profile()),
            )?),
            (Seccomp::Profile(path), _) => {
                let text = fs::read(path)
                    .with_context(|| format!("reading seccomp profile {}", path.display()))?;
                Some(compile_cached(&text, caps, || {
                    serde_json::from_slice(&text).with_context(|| {
                        format!(
                            "seccomp profile {}: not a Docker/OCI profile",
                            path.display()
                        )
                    })
                })?)
            }
        };
        let (masked, readonly) = if self.privileged {
            (Vec::new(), Vec::new())
        } else {
            (self.masked_paths.clone(), self.readonly_paths.clone())
        };
        Ok(Prepared {
            caps,
            seccomp,
            no_new_privileges: self.no_new_privileges,
            masked_paths: masked,
            readonly_paths: readonly,
            sys_read_only: !self.privileged,
            read_only_rootfs: self.read_only_rootfs,
            tmpfs: self.tmpfs.clone(),
        })
    }
}
// ANCHOR_END: security

/// [`Security`] resolved and compiled, ready for the child.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub caps: CapMask,
    pub seccomp: Option<Arc<Vec<BpfProgram>>>,
    pub no_new_privileges: bool,
    pub masked_paths: Vec<PathBuf>,
    pub readonly_paths: Vec<PathBuf>,
    pub sys_read_only: bool,
    pub read_only_rootfs: bool,
    pub tmpfs: Vec<Tmpfs>,
}

// ---------------------------------------------------------------------------
// Paths resolved inside the container's root
// ---------------------------------------------------------------------------

// ANCHOR: in_root
/// Open `path` the way the container would see it: resolved with `root` as
/// `/`, so no `..` and no symlink (`/etc -> /host/etc`, `../../..`) leads
/// out, and refusing /proc's magic links (`/proc/self/fd/7`, `/proc/1/root`),
/// which lead anywhere. This is openat2(2) with RESOLVE_IN_ROOT |
/// RESOLVE_NO_MAGICLINKS (Linux 5.6), the fix for the CVE-2018-15664 kind of
/// bug: a path checked as a host string, then swapped for a symlink.
pub fn open_in_root(root: &OwnedFd, path: &Path, flags: libc::c_int) -> Result<OwnedFd, Errno> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
    // SAFETY: open_how is plain data; zero is valid for every field.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: valid fd, NUL-terminated path, and `how` of the size we pass.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root.as_raw_fd(),
            c.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    Errno::result(fd).map(|fd| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `mkdir -p path` inside `root`, every step resolved as [`open_in_root`]
/// does; returns the directory, opened O_PATH.
pub fn mkdir_all_in_root(root: &OwnedFd, path: &Path) -> anyhow::Result<OwnedFd> {
    let flags = libc::O_PATH | libc::O_DIRECTORY;
    match open_in_root(root, path, flags) {
        Ok(fd) => return Ok(fd),
        Err(Errno::ENOENT) => {}
        Err(Errno::ELOOP) => bail!(
            "resolving {} in the container: a /proc magic link or a symlink loop (refused: it \
             could lead out of the container)",
            path.display()
        ),
        Err(e) => {
            return Err(e).with_context(|| format!("resolving {} in the container", path.display()))
        }
    }
    let (Some(parent), Some(Component::Normal(name))) =
        (path.parent(), path.components().next_back())
    else {
        bail!("{}: cannot create it", path.display());
    };
    let parent_fd = mkdir_all_in_root(root, parent)?;
    match nix::sys::stat::mkdirat(&parent_fd, name, Mode::from_bits_truncate(0o755)) {
        Ok(()) | Err(Errno::EEXIST) => {}
        Err(e) => {
            return Err(e).with_context(|| format!("mkdir {} in the container", path.display()))
        }
    }
    open_in_root(root, path, flags).with_context(|| {
        format!(
            "resolving {} in the container (a symlink that leads out?)",
            path.display()
        )
    })
}
// ANCHOR_END: in_root

/// The path by which mount(2) reaches what `fd` is: `/proc/self/fd/N`.
fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

fn open_root(path: &Path) -> anyhow::Result<OwnedFd> {
    nix::fcntl::open(
        path,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("open {}", path.display()))
}

/// The flags a bind remount must repeat: the kernel refuses (EPERM) to drop
/// nosuid, nodev or noexec that a mount already has.
fn kept_flags(fd: &OwnedFd) -> anyhow::Result<MsFlags> {
    let st = fstatvfs(fd).context("fstatvfs")?;
    let mut flags = MsFlags::empty();
    for (fs_flag, ms_flag) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if st.flags().contains(fs_flag) {
            flags |= ms_flag;
        }
    }
    Ok(flags)
}

/// Make the mount at `path` (inside `root`) read-only, keeping its flags.
fn remount_read_only(root: &OwnedFd, path: &Path) -> anyhow::Result<()> {
    let fd = open_in_root(root, path, libc::O_PATH)
        .with_context(|| format!("resolving {}", path.display()))?;
    let flags = kept_flags(&fd)? | MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
    mount(
        None::<&str>,
        &fd_path(&fd),
        None::<&str>,
        flags,
        None::<&str>,
    )
    .with_context(|| format!("remounting {} read-only", path.display()))?;
    Ok(())
}

// ---------------------------------------------------------------------------
// The steps, called from child_setup
// ---------------------------------------------------------------------------

// ANCHOR: sys
/// Mount /sys in the new root, before pivot_root. With a network namespace
/// of its own the container gets a fresh sysfs (it shows that namespace's
/// interfaces); without one, as with `--net host`, the host's /sys is bound,
/// without its submounts (no cgroup file systems). Read-only unless
/// privileged: a writable /sys reconfigures the host's devices. Done before
/// pivot_root because only then can we still see the host's /sys, and root
/// in a user namespace may mount sysfs only where one is fully visible.
pub fn mount_sys(rootfs: &Path, own_netns: bool, read_only: bool) -> anyhow::Result<()> {
    let root = open_root(rootfs)?;
    let sys = mkdir_all_in_root(&root, Path::new("/sys"))?;
    let ro = if read_only {
        MsFlags::MS_RDONLY
    } else {
        MsFlags::empty()
    };
    let safe = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    if own_netns {
        mount(
            Some("sysfs"),
            &fd_path(&sys),
            Some("sysfs"),
            safe | ro,
            None::<&str>,
        )
        .context("mounting sysfs on /sys")?;
    } else {
        mount(
            Some("/sys"),
            &fd_path(&sys),
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .context("bind-mounting the host's /sys")?;
        if read_only {
            remount_read_only(&root, Path::new("/sys"))?;
        }
    }
    Ok(())
}
// ANCHOR_END: sys

// ANCHOR: mounts
/// After pivot_root, /proc and /dev: what Docker adds to lab 01's minimal
/// /dev, then the masked and read-only paths, then `--tmpfs`. `own_ipc`:
/// mqueue shows the IPC namespace of whoever mounts it, so only with one of
/// our own. `pts_gid`: the group of new terminals (tty, 5) when it is mapped.
pub fn mount_after_pivot(p: &Prepared, own_ipc: bool, pts_gid: bool) -> anyhow::Result<()> {
    let root = open_root(Path::new("/"))?;
    let safe = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;

    // /dev/pts: a devpts of our own (newinstance), so the container sees
    // only its own terminals; /dev/ptmx points into it.
    let pts = mkdir_all_in_root(&root, Path::new("/dev/pts"))?;
    let pts_opts = if pts_gid {
        "newinstance,ptmxmode=0666,mode=0620,gid=5"
    } else {
        "newinstance,ptmxmode=0666,mode=0620"
    };
    mount(
        Some("devpts"),
        &fd_path(&pts),
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some(pts_opts),
    )
    .context("mounting devpts on /dev/pts")?;
    match std::os::unix::fs::symlink("pts/ptmx", "/dev/ptmx") {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e).context("symlink /dev/ptmx -> pts/ptmx"),
    }
    // /dev/shm: POSIX shared memory, 64 MiB as in Docker.
    let shm = mkdir_all_in_root(&root, Path::new("/dev/shm"))?;
    mount(
        Some("shm"),
        &fd_path(&shm),
        Some("tmpfs"),
        safe,
        Some("mode=1777,size=65536k"),
    )
    .context("mounting tmpfs on /dev/shm")?;
    if own_ipc {
        let mq = mkdir_all_in_root(&root, Path::new("/dev/mqueue"))?;
        mount(
            Some("mqueue"),
            &fd_path(&mq),
            Some("mqueue"),
            safe,
            None::<&str>,
        )
        .context("mounting mqueue on /dev/mqueue")?;
    }

    for path in &p.masked_paths {
        let fd = match open_in_root(&root, path, libc::O_PATH) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => continue, // not on this kernel: nothing to hide
            Err(e) => return Err(e).with_context(|| format!("masking {}", path.display())),
        };
        let is_dir = nix::sys::stat::fstat(&fd)
            .map(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR)
            .with_context(|| format!("fstat {}", path.display()))?;
        let result = if is_dir {
            mount(
                Some("tmpfs"),
                &fd_path(&fd),
                Some("tmpfs"),
                MsFlags::MS_RDONLY | safe,
                Some("size=0"),
            )
        } else {
            mount(
                Some("/dev/null"),
                &fd_path(&fd),
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
        };
        result.with_context(|| format!("masking {}", path.display()))?;
    }
    for path in &p.readonly_paths {
        let fd = match open_in_root(&root, path, libc::O_PATH) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => continue,
            Err(e) => return Err(e).with_context(|| format!("read-only {}", path.display())),
        };
        // A bind mount of the path onto itself makes it a mount of its own,
        // which can then be made read-only without touching the rest of /proc.
        mount(
            Some(&fd_path(&fd)),
            &fd_path(&fd),
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .with_context(|| format!("bind-mounting {} onto itself", path.display()))?;
        drop(fd);
        remount_read_only(&root, path)?;
    }

    for t in &p.tmpfs {
        let dir = mkdir_all_in_root(&root, &t.path)?;
        let (flags, data) = tmpfs_options(&t.options);
        mount(
            Some("tmpfs"),
            &fd_path(&dir),
            Some("tmpfs"),
            flags,
            Some(data.as_str()),
        )
        .with_context(|| format!("mounting tmpfs on {} ({})", t.path.display(), t.options))?;
    }
    Ok(())
}
// ANCHOR_END: mounts

/// Split `--tmpfs` options into mount flags and the data string tmpfs reads.
fn tmpfs_options(options: &str) -> (MsFlags, String) {
    let mut flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let mut data = Vec::new();
    for o in options.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" => flags |= MsFlags::MS_RDONLY,
            "rw" => flags -= MsFlags::MS_RDONLY,
            "suid" => flags -= MsFlags::MS_NOSUID,
            "nosuid" => flags |= MsFlags::MS_NOSUID,
            "dev" => flags -= MsFlags::MS_NODEV,
            "nodev" => flags |= MsFlags::MS_NODEV,
            "exec" => flags -= MsFlags::MS_NOEXEC,
            "noexec" => flags |= MsFlags::MS_NOEXEC,
            other => data.push(other),
        }
    }
    (flags, data.join(","))
}

// ANCHOR: cwd
/// Change into the working directory, created if missing, resolved inside
/// the container's root. Then check that it really is inside: getcwd(3)
/// answers "(unreachable)/..." for a directory outside the root, which is
/// how runc's CVE-2024-21626 looked from inside (`-w /proc/self/fd/7`, a
/// leaked descriptor of a host directory).
pub fn enter_workdir(cwd: &Path) -> anyhow::Result<()> {
    let root = open_root(Path::new("/"))?;
    let dir = mkdir_all_in_root(&root, cwd)
        .with_context(|| format!("working directory {}", cwd.display()))?;
    nix::unistd::fchdir(&dir)
        .with_context(|| format!("fchdir to working directory {}", cwd.display()))?;
    let here = nix::unistd::getcwd().context("getcwd after changing into the working directory")?;
    if !here.starts_with("/") {
        bail!(
            "working directory {} is outside the container ({})",
            cwd.display(),
            here.display()
        );
    }
    Ok(())
}
// ANCHOR_END: cwd

/// `--read-only`: remount the container's `/` read-only, last of the mounts.
pub fn remount_root_read_only() -> anyhow::Result<()> {
    let root = open_root(Path::new("/"))?;
    remount_read_only(&root, Path::new("/"))
}

// ANCHOR: fds
/// Close every file descriptor above 2 that `keep` does not name. A leaked
/// descriptor is a door: one open on a host directory is the host's file
/// system, whatever pivot_root did (CVE-2024-21626). close-on-exec is not
/// enough for us: the tiny init never execs, and the container can reach its
/// descriptors through /proc/1/fd.
pub fn close_fds(keep: &[RawFd]) -> anyhow::Result<()> {
    let mut from: u32 = 3;
    let mut keep: Vec<u32> = keep
        .iter()
        .filter(|&&fd| fd > 2)
        .map(|&fd| fd as u32)
        .collect();
    keep.sort_unstable();
    keep.push(u32::MAX); // the end of the last range
    for k in keep {
        if from < k {
            // SAFETY: closing descriptors no Rust object of ours still owns
            // (the go-ahead pipe was consumed before).
            let ret = unsafe { libc::close_range(from, k.saturating_sub(1).max(from), 0) };
            if ret != 0 && Errno::last() == Errno::ENOSYS {
                // Before Linux 5.9: one close per descriptor in /proc/self/fd.
                close_listed_fds(from, k)?;
            } else {
                Errno::result(ret).context("close_range")?;
            }
        }
        from = k.saturating_add(1);
    }
    check_no_fds_above_2(&[])
}

fn close_listed_fds(from: u32, to: u32) -> anyhow::Result<()> {
    let fds: Vec<u32> = fs::read_dir("/proc/self/fd")
        .context("listing /proc/self/fd")?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|&fd| fd >= from && fd < to)
        .collect();
    for fd in fds {
        // SAFETY: see close_fds.
        unsafe { libc::close(fd as RawFd) };
    }
    Ok(())
}

/// The check before exec: ask the kernel for every open descriptor and
/// refuse to go on if one above 2 that was not asked for is open.
pub fn check_no_fds_above_2(keep: &[RawFd]) -> anyhow::Result<()> {
    let listed: Vec<RawFd> = fs::read_dir("/proc/self/fd")
        .context("listing /proc/self/fd")?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    // The listing itself used a descriptor, closed by now: F_GETFD tells
    // which of the numbers are still open.
    let open: Vec<RawFd> = listed
        .into_iter()
        .filter(|&fd| fd > 2 && !keep.contains(&fd))
        // SAFETY: F_GETFD only reads the descriptor's flags.
        .filter(|&fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1)
        .collect();
    if !open.is_empty() {
        bail!("file descriptors {open:?} would leak into the container");
    }
    Ok(())
}
// ANCHOR_END: fds

// ANCHOR: confine
/// The last steps before exec: no_new_privs, capabilities, descriptors,
/// seccomp, in that order (see the module documentation).
pub fn confine(p: &Prepared) -> anyhow::Result<()> {
    if p.no_new_privileges {
        // SAFETY: prctl with integer arguments only.
        let ret = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
        Errno::result(ret).context("prctl(PR_SET_NO_NEW_PRIVS)")?;
    }
    if let (Some(programs), false) = (&p.seccomp, p.no_new_privileges) {
        // Without no_new_privs the kernel wants CAP_SYS_ADMIN to install a
        // filter, so it goes in now, before we drop it. The filter must then
        // allow capset, prctl and close_range, as Docker's does.
        install_seccomp(programs)?;
    }
    apply_capabilities(p.caps)?;
    close_fds(&[])?;
    if let (Some(programs), true) = (&p.seccomp, p.no_new_privileges) {
        install_seccomp(programs)?;
    }
    Ok(())
}
// ANCHOR_END: confine

/// While the child sets up, it is a copy of the lab's process. Making it
/// non-dumpable keeps processes in the container from opening its
/// /proc/PID/exe, /proc/PID/fd or /proc/PID/mem (ptrace access checks).
/// execve makes the command dumpable again; the tiny init, which never
/// execs, stays non-dumpable for the container's life.
pub fn set_non_dumpable() -> anyhow::Result<()> {
    // SAFETY: prctl with integer arguments only.
    let ret = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    Errno::result(ret).context("prctl(PR_SET_DUMPABLE, 0)")?;
    Ok(())
}

// ANCHOR: sealed
/// Make sure this process runs from a copy of its binary that no one can
/// write, re-executing itself from one if not (CVE-2019-5736).
///
/// A container can make its own command a script whose interpreter is
/// `#!/proc/self/exe`. Until our child's execve completes, /proc/self/exe is
/// the *host's* lab binary, so the kernel runs that binary, in the
/// container, as the interpreter; a process in the container then holds it
/// through /proc/PID/exe and can write to it once it is no longer running,
/// replacing the binary that root runs next on the host. (Making the child
/// non-dumpable does not help: the interpreter's execve makes it dumpable
/// again.) So the binary we run from must be unwritable by anyone:
///
/// 1. a **read-only overlayfs** whose top layer is the binary's directory,
///    mounted with fsopen(2)/fsmount(2) and never attached anywhere. An
///    overlay with only lower layers has no place to write to, so a write
///    through /proc/PID/exe fails with EROFS, and no remount can change that.
///    Nothing is copied: the pages are the page cache's, shared by every
///    process. runc does this since 1.2.
/// 2. if the kernel cannot (no fsopen, no overlayfs), a copy in a **memfd**
///    with every seal set (no write, grow, shrink, or new seals): the copy
///    costs one read of the binary per start and its pages are private to
///    this process and its children (the monitor keeps them).
///
/// Call it first thing in `main`, before any thread exists.
pub fn ensure_sealed_binary() -> anyhow::Result<()> {
    let exe = fs::File::open("/proc/self/exe").context("opening /proc/self/exe")?;
    if is_sealed(&exe) {
        return Ok(()); // already running from one
    }
    let sealed = match read_only_overlay_of_self() {
        Ok(file) => file,
        Err(_) => sealed_memfd_copy(&exe)?,
    };
    let args: Vec<CString> = std::env::args_os()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<_, _>>()
        .context("an argument contains a NUL byte")?;
    let env: Vec<CString> = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            CString::new(kv)
        })
        .collect::<Result<_, _>>()
        .context("an environment variable contains a NUL byte")?;
    let Err(e) = nix::unistd::fexecve(&sealed, &args, &env);
    Err(e).context("re-executing from the sealed binary (fexecve)")
}

const SEALS: libc::c_int =
    libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;

/// Whether `exe` is a sealed memfd, or a file on a read-only overlayfs.
fn is_sealed(exe: &fs::File) -> bool {
    // SAFETY: fcntl on a descriptor we own.
    let seals = unsafe { libc::fcntl(exe.as_raw_fd(), libc::F_GET_SEALS) };
    if seals != -1 && seals & SEALS == SEALS {
        return true;
    }
    let overlay = nix::sys::statfs::fstatfs(exe)
        .is_ok_and(|st| st.filesystem_type() == nix::sys::statfs::OVERLAYFS_SUPER_MAGIC);
    overlay && fstatvfs(exe).is_ok_and(|st| st.flags().contains(FsFlags::ST_RDONLY))
}

/// Open our own binary through a new, detached, read-only overlayfs whose
/// top layer is the binary's directory (way 1 above).
///
/// ```text
/// mount -t overlay -o ro,lowerdir=/usr/bin:/tmp/empty none /somewhere   # but attached nowhere
/// ```
///
/// overlayfs needs two layers to mount without an upper dir, and refuses
/// the same directory twice: the bottom one is an empty directory, removed
/// again at once (the binary's directory is on top, so nothing in the
/// bottom one could hide the binary anyway).
fn read_only_overlay_of_self() -> anyhow::Result<fs::File> {
    let path = fs::read_link("/proc/self/exe").context("readlink /proc/self/exe")?;
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        bail!("/proc/self/exe is {}: no directory", path.display());
    };
    let empty = std::env::temp_dir().join(format!(
        "dockyard-sealed-{}-{}",
        std::process::id(),
        rand_u64()
    ));
    fs::create_dir(&empty).with_context(|| format!("creating {}", empty.display()))?;
    let result = (|| {
        // lowerdir's separator is ':', and '\' escapes it.
        let escape = |p: &Path| {
            String::from_utf8_lossy(p.as_os_str().as_bytes())
                .replace('\\', "\\\\")
                .replace(':', "\\:")
        };
        let lower = format!("{}:{}", escape(dir), escape(&empty));
        let fsfd = sys_fd(
            // SAFETY: a constant C string and flags.
            unsafe {
                libc::syscall(
                    libc::SYS_fsopen,
                    c"overlay".as_ptr(),
                    1, /* FSOPEN_CLOEXEC */
                )
            },
            "fsopen(overlay)",
        )?;
        let set = |key: &std::ffi::CStr, value: &str| -> anyhow::Result<()> {
            let value = CString::new(value).context("a NUL byte in the binary's path")?;
            // SAFETY: FSCONFIG_SET_STRING (1) with valid C strings.
            let ret = unsafe {
                libc::syscall(
                    libc::SYS_fsconfig,
                    fsfd.as_raw_fd(),
                    1,
                    key.as_ptr(),
                    value.as_ptr(),
                    0,
                )
            };
            Errno::result(ret)
                .map(drop)
                .with_context(|| format!("fsconfig {key:?}={value:?}"))
        };
        set(c"lowerdir", &lower)?;
        // Inode numbers do not matter here; off avoids a kernel warning when
        // the two layers are on different filesystems.
        let _ = set(c"xino", "off");
        // SAFETY: FSCONFIG_CMD_CREATE (6) takes no key or value.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fsfd.as_raw_fd(),
                6,
                std::ptr::null::<u8>(),
                std::ptr::null::<u8>(),
                0,
            )
        };
        Errno::result(ret).context("fsconfig(FSCONFIG_CMD_CREATE) for the overlay")?;
        const MOUNT_ATTR: libc::c_long = 0x1 /* RDONLY */ | 0x2 /* NOSUID */ | 0x4 /* NODEV */;
        let mnt = sys_fd(
            // SAFETY: fsmount on the context we created; FSMOUNT_CLOEXEC (1).
            unsafe { libc::syscall(libc::SYS_fsmount, fsfd.as_raw_fd(), 1, MOUNT_ATTR) },
            "fsmount(overlay)",
        )?;
        let file = nix::fcntl::openat(
            &mnt,
            name,
            nix::fcntl::OFlag::O_RDONLY
                | nix::fcntl::OFlag::O_CLOEXEC
                | nix::fcntl::OFlag::O_NOFOLLOW,
            Mode::empty(),
        )
        .with_context(|| format!("opening {name:?} through the overlay"))?;
        let file = fs::File::from(file);
        // The same file we started from? (It may have been replaced since.)
        let (a, b) = (file.metadata()?, fs::metadata("/proc/self/exe")?);
        use std::os::unix::fs::MetadataExt;
        if (a.size(), a.mtime(), a.mtime_nsec()) != (b.size(), b.mtime(), b.mtime_nsec()) {
            bail!("{} changed since this process started", path.display());
        }
        Ok(file)
    })();
    let _ = fs::remove_dir(&empty);
    result
}

/// A copy of `exe` in a memfd with every seal set (way 2 above).
fn sealed_memfd_copy(exe: &fs::File) -> anyhow::Result<fs::File> {
    // SAFETY: a valid C string; flags are constants.
    let memfd = unsafe {
        libc::memfd_create(
            c"dockyard-sealed".as_ptr(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
        )
    };
    let memfd = Errno::result(memfd).context("memfd_create for the sealed binary")?;
    // SAFETY: memfd_create returned a new descriptor that we now own.
    let mut memfd = unsafe { fs::File::from_raw_fd(memfd) };
    std::io::copy(&mut &*exe, &mut memfd).context("copying /proc/self/exe into the memfd")?;
    // SAFETY: fcntl on a descriptor we own.
    let ret = unsafe { libc::fcntl(memfd.as_raw_fd(), libc::F_ADD_SEALS, SEALS) };
    Errno::result(ret).context("sealing the memfd (F_ADD_SEALS)")?;
    Ok(memfd)
}

/// A descriptor returned by a raw syscall, owned.
fn sys_fd(ret: libc::c_long, what: &str) -> anyhow::Result<OwnedFd> {
    let fd = Errno::result(ret).with_context(|| what.to_string())?;
    // SAFETY: the syscall returned a new descriptor that we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// A random number for a temporary name.
fn rand_u64() -> u64 {
    let mut b = [0u8; 8];
    // SAFETY: getrandom into a buffer we own.
    unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    u64::from_ne_bytes(b)
}
// ANCHOR_END: sealed

#[cfg(test)]
mod tests {
    use super::*;

    /// Run a classic BPF seccomp program on one call, as the kernel would:
    /// the instructions seccompiler and this module emit.
    fn run_bpf(p: &[seccompiler::sock_filter], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
        let word = |off: u32| -> u32 {
            match off {
                0 => nr,
                4 => arch,
                o if (16..64).contains(&o) => {
                    let arg = args[((o - 16) / 8) as usize];
                    if (o - 16) % 8 == 0 {
                        arg as u32
                    } else {
                        (arg >> 32) as u32
                    }
                }
                o => panic!("load of offset {o}"),
            }
        };
        let (mut a, mut pc) = (0u32, 0usize);
        loop {
            let i = &p[pc];
            pc += 1;
            let jumped = |cond: bool| if cond { i.jt as usize } else { i.jf as usize };
            match i.code {
                0x20 => a = word(i.k),
                0x54 => a &= i.k,
                0x05 => pc += i.k as usize,
                0x15 => pc += jumped(a == i.k),
                0x25 => pc += jumped(a > i.k),
                0x35 => pc += jumped(a >= i.k),
                0x45 => pc += jumped(a & i.k != 0),
                0x06 => return i.k,
                c => panic!("opcode {c:#x} at {}", pc - 1),
            }
        }
    }

    /// Every call number, as the compiled docker profile answers it, is
    /// what its rules say: the calls allowed without conditions get ALLOW
    /// (through the ranges in front), the calls in no rule the default.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn the_ranges_answer_as_the_rules_say() {
        let profile = docker_default_profile();
        let caps = docker_default_caps();
        let programs = compile(&profile, caps).unwrap();
        let (_, _, docker_arch) = native_arch().unwrap();
        let kernel = kernel_version();
        let mut plain = std::collections::BTreeSet::new();
        let mut listed = std::collections::BTreeSet::new();
        for r in profile
            .syscalls
            .iter()
            .filter(|r| rule_applies(r, caps, docker_arch, kernel))
        {
            for name in r.names.iter().chain(&r.name) {
                let Ok(sysno) = name.parse::<syscalls::Sysno>() else {
                    continue;
                };
                listed.insert(sysno.id() as u32);
                if r.args.is_empty() && r.action == "SCMP_ACT_ALLOW" {
                    plain.insert(sysno.id() as u32);
                }
            }
        }
        let eperm = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
        let answer = |nr: u32| {
            programs
                .iter()
                .map(|p| run_bpf(p, ranges::AUDIT_ARCH_X86_64, nr, [0; 6]))
                .min_by_key(|r| (r & libc::SECCOMP_RET_ACTION_FULL) as i32)
                .unwrap()
        };
        assert!(plain.len() > 250, "{}", plain.len());
        for nr in 0..600 {
            if plain.contains(&nr) {
                assert_eq!(answer(nr), libc::SECCOMP_RET_ALLOW, "call {nr}");
            } else if !listed.contains(&nr) {
                assert_eq!(answer(nr), eperm, "call {nr}");
            }
        }
        // x32 numbers are refused whatever they are.
        assert_eq!(answer(0x4000_0000), eperm);
        // The whole allow program is far smaller than one test per call.
        assert!(
            programs[0].len() < 600,
            "{} instructions",
            programs[0].len()
        );
    }

    #[test]
    fn runs_are_contiguous_numbers() {
        assert_eq!(
            ranges::runs(&[5, 1, 2, 3, 9, 10, 3]),
            vec![(1, 3), (5, 5), (9, 10)]
        );
        assert!(ranges::runs(&[]).is_empty());
    }

    #[test]
    fn the_default_set_is_dockers_mask() {
        assert_eq!(docker_default_caps(), 0xa804_25fb);
        for (i, c) in CAPABILITIES.iter().enumerate() {
            assert_eq!(c.number as usize, i, "{}", c.name);
            assert!(
                c.why
                    .starts_with(if c.docker_default { "keep" } else { "drop" }),
                "{}",
                c.name
            );
        }
        assert_eq!(cap_names(docker_default_caps()).len(), 14);
    }

    #[test]
    fn cap_add_and_drop_follow_docker() {
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let default = docker_default_caps();
        assert_eq!(resolve_caps(false, &[], &[]).unwrap(), default);
        assert_eq!(resolve_caps(true, &[], &s(&["ALL"])).unwrap(), all_caps());
        assert_eq!(
            resolve_caps(false, &s(&["sys_admin"]), &s(&["CAP_CHOWN"])).unwrap(),
            (default | 1 << 21) & !1
        );
        assert_eq!(
            resolve_caps(false, &s(&["NET_ADMIN"]), &s(&["all"])).unwrap(),
            1 << 12
        );
        assert_eq!(
            resolve_caps(false, &s(&["ALL"]), &s(&["SYS_ADMIN"])).unwrap(),
            all_caps() & !(1 << 21)
        );
        assert!(resolve_caps(false, &s(&["SYS_WIZARD"]), &[]).is_err());
    }

    #[test]
    fn denied_calls_are_not_in_the_allow_list() {
        let allowed: Vec<&str> = ALLOWED
            .iter()
            .flat_map(|(_, n)| n.iter().copied())
            .collect();
        for (name, why) in DENIED {
            // The "allowed, but..." entries explain a condition instead.
            if !why.starts_with("allowed") {
                assert!(!allowed.contains(name), "{name} is refused, yet in ALLOWED");
            }
        }
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn i386_half_follows_the_profiles_architectures() {
        use seccompiler::sock_filter;
        let profile = docker_default_profile();
        let programs = compile(&profile, docker_default_caps()).unwrap();
        for p in &programs {
            // ld [4]; jeq AUDIT_ARCH_I386; ja over the native half.
            assert_eq!((p[0].code, p[0].k), (0x20, 4));
            assert_eq!((p[1].code, p[1].k), (0x15, i386::AUDIT_ARCH_I386));
            assert_eq!(p[2].code, 0x05);
            // The i386 half starts right after the jump's target, and ends
            // with the default answer.
            let i386 = &p[3 + p[2].k as usize..];
            assert_eq!((i386[0].code, i386[0].k), (0x20, 0));
            assert_eq!(i386.last().unwrap().code, 0x06);
        }
        // In the allow list: getpid by its i386 number (20) gets ALLOW;
        // unshare (310) and keyctl (288) are not there.
        let allow = &programs[0];
        let i386 = i386::AUDIT_ARCH_I386;
        let eperm = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
        assert_eq!(run_bpf(allow, i386, 20, [0; 6]), libc::SECCOMP_RET_ALLOW);
        assert_eq!(run_bpf(allow, i386, 310, [0; 6]), eperm);
        assert_eq!(run_bpf(allow, i386, 288, [0; 6]), eperm);
        let half = &allow[3 + allow[2].k as usize..];
        assert_eq!(half.last().unwrap().k, eperm);
        let _: &[sock_filter] = half;

        // Without SCMP_ARCH_X86 in the profile: no i386 half, seccompiler's
        // own architecture check first.
        let mut native_only = profile.clone();
        native_only.arch_map.clear();
        native_only.architectures = vec!["SCMP_ARCH_X86_64".into()];
        let programs = compile(&native_only, docker_default_caps()).unwrap();
        assert!(programs.iter().all(|p| p[1].k != i386::AUDIT_ARCH_I386));
    }

    #[test]
    fn docker_profile_compiles_and_caps_change_it() {
        let profile = docker_default_profile();
        let plain = compile(&profile, docker_default_caps()).unwrap();
        // The allow list, then clone3's ENOSYS.
        assert_eq!(plain.len(), 2);
        let admin = compile(&profile, docker_default_caps() | 1 << 21).unwrap();
        // With SYS_ADMIN, clone3 is allowed and its ENOSYS rule is excluded.
        assert_eq!(admin.len(), 1);
        // mount and friends join the allow list.
        #[cfg(target_arch = "x86_64")]
        {
            let mount = libc::SYS_mount as u32;
            let arch = ranges::AUDIT_ARCH_X86_64;
            assert_eq!(
                run_bpf(&admin[0], arch, mount, [0; 6]),
                libc::SECCOMP_RET_ALLOW
            );
            assert_ne!(
                run_bpf(&plain[0], arch, mount, [0; 6]),
                libc::SECCOMP_RET_ALLOW
            );
        }
    }

    #[test]
    fn compiled_profiles_are_cached_by_source_and_caps() {
        let build = || Ok(docker_default_profile());
        let a = compile_cached(b"test-source", docker_default_caps(), build).unwrap();
        let b = compile_cached(b"test-source", docker_default_caps(), || {
            panic!("a cache hit must not build the profile")
        })
        .unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let c = compile_cached(b"test-source", all_caps(), build).unwrap();
        assert!(!Arc::ptr_eq(&a, &c));
    }

    #[test]
    fn profiles_parse_in_the_oci_format() {
        let json = r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_AARCH64","SCMP_ARCH_RISCV64"],
            "syscalls":[{"names":["mkdirat","mkdir"],"action":"SCMP_ACT_ERRNO","errnoRet":13},
                        {"names":["personality"],"action":"SCMP_ACT_ERRNO","args":[{"index":0,"value":8,"op":"SCMP_CMP_EQ"}]}]}"#;
        let profile: Profile = serde_json::from_str(json).unwrap();
        // Default allow: only the EACCES program, and the EPERM one.
        assert_eq!(compile(&profile, 0).unwrap().len(), 2);
        let bad = r#"{"defaultAction":"SCMP_ACT_NOTIFY"}"#;
        assert!(compile(&serde_json::from_str(bad).unwrap(), 0).is_err());
        let other_arch =
            r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_S390X"]}"#;
        assert!(compile(&serde_json::from_str(other_arch).unwrap(), 0).is_err());
    }

    #[test]
    fn security_opts_parse_like_docker() {
        let mut s = Security::docker_default();
        s.apply_opt("seccomp=unconfined").unwrap();
        assert_eq!(s.seccomp, Seccomp::Unconfined);
        s.apply_opt("seccomp:/tmp/p.json").unwrap();
        assert_eq!(s.seccomp, Seccomp::Profile("/tmp/p.json".into()));
        s.apply_opt("no-new-privileges=false").unwrap();
        assert!(!s.no_new_privileges);
        s.apply_opt("no-new-privileges").unwrap();
        assert!(s.no_new_privileges);
        assert!(s.apply_opt("apparmor=foo").is_err());
        let t: Tmpfs = "/run:size=1m,exec".parse().unwrap();
        assert_eq!(t.path, PathBuf::from("/run"));
        let (flags, data) = tmpfs_options(&t.options);
        assert!(!flags.contains(MsFlags::MS_NOEXEC) && flags.contains(MsFlags::MS_NOSUID));
        assert_eq!(data, "size=1m");
        assert!("run".parse::<Tmpfs>().is_err());
    }

    #[test]
    fn versions_parse() {
        assert_eq!(parse_version("6.18.44-fc-v657"), Some((6, 18)));
        assert_eq!(parse_version("4.8"), Some((4, 8)));
        assert_eq!(parse_version("x"), None);
    }
}
