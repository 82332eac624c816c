//! # Seccomp: whole system calls, whoever makes them
//!
//! Capabilities are checked deep inside the kernel, one code path at a
//! time. seccomp works at the door: a small program in classic BPF that the
//! kernel runs on *every* system call of the process, which looks at the
//! call's number, its architecture and its arguments, and answers allow, an
//! error, or kill (seccomp(2)). It does not care who calls: root with every
//! capability is refused just the same, which is what closes the calls no
//! capability guards (`unshare(CLONE_NEWUSER)`, `keyctl`).
//!
//! A profile is data, in the JSON format of Docker and the OCI runtime spec
//! ([`Profile`]); Docker's default is an allow list ([`docker_default_profile`]):
//! about 350 calls, everything else EPERM, a few more with a capability or
//! with certain arguments. This module holds the format and Docker's rules;
//! the chapters below turn a profile into BPF and install it:
//!
//! - `compile`: a profile, for a container with given capabilities, into
//!   one BPF program per action ([`compile`](fn@compile));
//! - [`ranges`]: the calls allowed without conditions, as ranges of numbers;
//! - [`i386`]: the half of each program for 32-bit x86 programs;
//! - [`compile_cached`] and `install_seccomp`: once per profile, then
//!   seccomp(2) in the child.
//!
//! There is no shell command for seccomp; `grep Seccomp /proc/self/status`
//! says whether a process has a filter (2: filter mode).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::Context;
use nix::errno::Errno;
use seccompiler::BpfProgram;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::caps::CapMask;

mod compile;
pub mod i386;
pub mod ranges;

pub use compile::compile;

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
pub(crate) fn install_seccomp(programs: &[BpfProgram]) -> anyhow::Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::caps::{all_caps, docker_default_caps};

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
}
