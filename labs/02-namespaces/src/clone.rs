//! # Creating the child: clone3(2), and being born in a cgroup
//!
//! Namespaces are made by the same call that makes the process: clone(2)
//! with `CLONE_NEW*` flags creates the child *inside* new namespaces. With
//! no stack given it behaves like fork(2), which is what lab 02 needs: the
//! child continues in a copy of the parent's memory. Its successor,
//! clone3(2) (Linux 5.3), takes its arguments in a struct that can grow;
//! since Linux 5.7 one of them is a cgroup directory to create the child in
//! (`CLONE_INTO_CGROUP`), which spares lab 03 moving it there afterwards.
//!
//! ```text
//! unshare --fork --pid --mount CMD     # unshare(2), then fork(2): the same in two steps
//! strace -f -e trace=clone,clone3 lab02-namespaces --rootfs DIR -- true   # the call itself
//! ```

use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use anyhow::Context;
use lab01_chroot as lab01;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::unistd::Pid;

/// Descriptors through which the child enters its cgroup *itself*, opened
/// and owned by the caller (lab 03's `Cgroup::entry` explains why: moving
/// another process costs an RCU grace period, these ways do not).
#[derive(Debug, Clone, Default)]
pub struct CgroupEntry {
    /// A cgroup v2 directory: the child is created in it by
    /// `clone3(CLONE_INTO_CGROUP)`. Where clone3 is unavailable, the parent
    /// writes the child's PID into its `cgroup.procs` instead.
    pub clone_into: Option<RawFd>,
    /// cgroup v1 `tasks` files, open for writing: the child writes `0`
    /// (itself, its only thread) into each before anything else.
    pub tasks: Vec<RawFd>,
}

// ANCHOR: clone3
/// `struct clone_args` from `<linux/sched.h>`, version 2 (88 bytes): the
/// first 64 are version 0; `set_tid` came in version 1, `cgroup` in 2.
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// `CLONE_INTO_CGROUP` (Linux 5.7): create the child in the cgroup v2
/// directory `clone_args.cgroup`.
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Version 0 of the struct, what a kernel before 5.5 accepts.
const CLONE_ARGS_SIZE_VER0: usize = 64;

/// Create a child process in the namespaces `flags`, like fork(2): both
/// processes return from here, the child with `None`.
///
/// clone3(2) (Linux 5.3) takes its arguments in a struct, which can grow
/// without new system calls. With no stack given, it and clone(2) behave
/// like fork: the child gets a copy of our memory and continues here. Some
/// seccomp profiles (older Docker's among them) answer clone3 with ENOSYS or
/// EPERM so that callers fall back to clone, which is what we do. Setting
/// DOCKYARD_NO_CLONE3=1 takes the fallback on purpose.
///
/// With `cgroup`, an open cgroup v2 directory, clone3 creates the child in
/// it (`CLONE_INTO_CGROUP`); the second value returned to the parent says
/// whether that happened (not with the clone(2) fallback).
pub(crate) fn clone_process(
    flags: CloneFlags,
    cgroup: Option<RawFd>,
) -> anyhow::Result<Option<(Pid, bool)>> {
    let try_clone3 = std::env::var_os("DOCKYARD_NO_CLONE3").as_deref() != Some("1".as_ref());
    let mut ret = -1;
    if try_clone3 {
        let mut args = CloneArgs {
            flags: flags.bits() as u64,
            // The signal the parent gets when the child ends, as for fork.
            exit_signal: libc::SIGCHLD as u64,
            ..CloneArgs::default()
        };
        let size = match cgroup {
            Some(fd) => {
                args.flags |= CLONE_INTO_CGROUP;
                args.cgroup = fd as u64;
                std::mem::size_of::<CloneArgs>()
            }
            // The smallest struct that says it all: kernels from 5.3 on.
            None => CLONE_ARGS_SIZE_VER0,
        };
        // SAFETY: `args` is a valid clone_args at least `size` bytes long.
        // Without CLONE_VM the child has its own copy of memory, as after
        // fork(2).
        ret = unsafe { libc::syscall(libc::SYS_clone3, &mut args as *mut CloneArgs, size) };
    }
    // E2BIG: a kernel before 5.7, which does not know the cgroup field.
    let fell_back = !try_clone3
        || (ret == -1 && matches!(Errno::last(), Errno::ENOSYS | Errno::EPERM | Errno::E2BIG));
    if fell_back {
        // clone(flags | SIGCHLD, stack = NULL, ...): the same, the old way.
        // SAFETY: as above; a NULL stack means "use a copy of the caller's".
        ret = unsafe {
            libc::syscall(
                libc::SYS_clone,
                flags.bits() as libc::c_ulong | libc::SIGCHLD as libc::c_ulong,
                0usize,
                0usize,
                0usize,
                0usize,
            )
        };
    }
    match ret {
        -1 => {
            let errno = Errno::last();
            let hint = match errno {
                Errno::EPERM | Errno::ENOSPC | Errno::EUSERS => {
                    " (creating these namespaces needs root; as another user, a user namespace, \
                     which sysctl user.max_user_namespaces or kernel.unprivileged_userns_clone \
                     may forbid)"
                }
                Errno::EINVAL => " (does this kernel support every namespace asked for?)",
                _ => "",
            };
            Err(anyhow::anyhow!("clone({flags:?}): {}{hint}", errno.desc()))
        }
        0 => Ok(None),
        pid => Ok(Some((
            Pid::from_raw(pid as i32),
            try_clone3 && cgroup.is_some() && !fell_back,
        ))),
    }
}
// ANCHOR_END: clone3

/// Move `pid` into the cgroup v2 directory `dir` the ordinary way, by
/// writing its PID into `cgroup.procs` (what CLONE_INTO_CGROUP spares).
pub(crate) fn move_into_cgroup(dir: RawFd, pid: Pid) -> anyhow::Result<()> {
    // SAFETY: `dir` is the caller's open directory, borrowed for this call.
    let dir = unsafe { std::os::fd::BorrowedFd::borrow_raw(dir) };
    let procs = nix::fcntl::openat(
        dir,
        "cgroup.procs",
        OFlag::O_WRONLY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .context("opening the cgroup's cgroup.procs")?;
    nix::unistd::write(&procs, pid.to_string().as_bytes())
        .with_context(|| format!("moving {pid} into its cgroup"))?;
    Ok(())
}

/// The child's first act (see [`CgroupEntry`]): write `0`, "this thread",
/// into each v1 `tasks` file, then close it. The child has one thread, so
/// this moves all of it, and every process it starts is born inside.
pub(crate) fn join_cgroups_self(tasks: &[RawFd]) -> Result<(), lab01::Error> {
    for &fd in tasks {
        // SAFETY: a descriptor the parent opened for us; we own our copy
        // and close it right after.
        let file = unsafe { OwnedFd::from_raw_fd(fd) };
        nix::unistd::write(&file, b"0").map_err(|e| {
            lab01::Error::Setup(anyhow::anyhow!("joining its cgroup (tasks): {}", e.desc()))
        })?;
    }
    Ok(())
}
