//! # Signals, and the tiny init
//!
//! In a new PID namespace the first process is PID 1, which the kernel
//! treats as the namespace's init: a signal it has no handler for is
//! dropped, and orphans are reparented to it (see the lecture of this
//! crate). `--init`, as `docker run --init` (tini), puts a tiny init of our
//! own there: it forks the command as PID 2, reaps every zombie, passes on
//! SIGTERM, SIGINT and SIGHUP, and exits with the command's status.
//!
//! ```text
//! docker run --init busybox ps          # PID 1 is docker-init; ps runs below it
//! docker run busybox sh -c 'kill -TERM 1; echo still here'   # sh as PID 1 ignores it
//! ```
//!
//! Signals are also something a process inherits: its blocked mask and its
//! ignored signals survive fork and exec, so the container's first process
//! starts by putting every one back to its default ([`reset_signals`]).

use std::ffi::OsString;

use anyhow::Context;
use lab01_chroot as lab01;
use nix::errno::Errno;
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult};

use crate::{finished, program_name, FORWARDED_SIGNALS};

/// Every signal back to its default action, and none blocked.
///
/// A process inherits its parent's blocked mask and its *ignored* signals
/// across fork and exec. Whoever starts dockyard may ignore some: a script's
/// `cmd &` runs with SIGINT and SIGQUIT ignored, `nohup` ignores SIGHUP. A
/// container must not inherit that: a shell started with SIGINT ignored may
/// not even trap it (POSIX), so `docker kill -s INT` and Ctrl-C through
/// `attach` would do nothing. runc's containers, started by a daemon, never
/// see their client's signals; this gives ours the same clean start.
pub fn reset_signals() -> Result<(), lab01::Error> {
    // The kernel's struct sigaction for rt_sigaction(2) on x86_64 and
    // aarch64: handler, flags, restorer, mask. Raw, because the C library's
    // sigaction refuses signals 32 and 33, which it keeps for itself, and
    // they too may have been ignored by whoever started us.
    #[repr(C)]
    struct KernelSigaction {
        handler: libc::sighandler_t,
        flags: libc::c_ulong,
        restorer: usize,
        mask: u64,
    }
    let default = KernelSigaction {
        handler: libc::SIG_DFL,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: a valid struct of the size we pass; SIG_DFL runs no code.
        let r = unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                &default as *const KernelSigaction,
                std::ptr::null_mut::<KernelSigaction>(),
                8usize,
            )
        };
        if r != 0 {
            return Err(lab01::Error::Setup(anyhow::anyhow!(
                "resetting signal {sig}: {}",
                std::io::Error::last_os_error()
            )));
        }
    }
    SigSet::empty()
        .thread_set_mask()
        .map_err(|e| lab01::Error::Setup(anyhow::anyhow!("unblocking signals: {e}")))?;
    Ok(())
}

// ANCHOR: cmdline
/// Replace what `/proc/self/cmdline` and `/proc/self/environ` show with
/// `name` and nothing.
///
/// A process in the container made by forking the caller (the `--init`
/// below, which stays PID 1; an `exec`'d command until its execve) still
/// has the caller's memory, and with it the caller's command line and
/// environment: `dockyard --root /var/lib/... run --init ...`, host paths
/// and all. `/proc/PID/cmdline` is readable by every process that sees the
/// PID, and it is not a copy: the kernel reads it from the process's own
/// memory, between the addresses `arg_start` and `arg_end` that
/// `/proc/self/stat` lists (fields 48 to 51, with the environment's).
/// So the strings there are overwritten in place, the way `setproctitle(3)`
/// does. docker's init is a separate program (`docker-init`), which needs
/// no such care; ours is a fork of the caller.
///
/// ```text
/// tr '\0' ' ' < /proc/1/cmdline     # dockyard-init, not the host's command
/// ```
pub fn replace_command_line(name: &str) {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return;
    };
    // The command name (field 2) is in parentheses and may hold anything,
    // spaces included: count the fields after its last ')' (field 3 on).
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return;
    };
    let fields: Vec<usize> = rest
        .split_ascii_whitespace()
        .skip(45)
        .take(4)
        .filter_map(|f| f.parse().ok())
        .collect();
    let [arg_start, arg_end, env_start, env_end] = fields[..] else {
        return;
    };
    for (start, end, text) in [
        (arg_start, arg_end, name.as_bytes()),
        (env_start, env_end, &b""[..]),
    ] {
        if start == 0 || end <= start {
            continue;
        }
        let len = end - start;
        // Our name, then NULs to the end: the last byte stays 0, so the
        // kernel shows this area as it is rather than as a setproctitle
        // string that runs into the environment.
        let keep = text.len().min(len - 1);
        // SAFETY: the kernel says these bytes are our own argument and
        // environment strings, on our stack, writable. Whoever reads them
        // later (std::env) finds shorter strings, never a dangling pointer.
        unsafe {
            std::ptr::copy_nonoverlapping(text.as_ptr(), start as *mut u8, keep);
            std::ptr::write_bytes((start + keep) as *mut u8, 0, len - keep);
        }
    }
    if let Ok(comm) = std::ffi::CString::new(name) {
        // SAFETY: PR_SET_NAME reads a NUL-terminated string (16 bytes kept).
        unsafe { libc::prctl(libc::PR_SET_NAME, comm.as_ptr()) };
    }
}
// ANCHOR_END: cmdline

// ANCHOR: init
/// The tiny init (`--init`): fork the command, then reap and forward until it
/// ends, and return its status as an exit code (128+N for signal N).
///
/// Like the parent's [`Container::wait_forwarding`], it blocks the signals it
/// cares about and takes them with sigwait(2). A blocked signal is queued,
/// never dropped, so this works even as PID 1.
pub(crate) fn run_init(argv: &[OsString], env: &[OsString]) -> anyhow::Result<i32> {
    let mut set = SigSet::empty();
    set.add(Signal::SIGCHLD);
    FORWARDED_SIGNALS.iter().for_each(|&s| set.add(s));
    set.thread_block().context("blocking signals in init")?;
    // We stay, as PID 1, a fork of the caller: show our own name, not its
    // command line and environment.
    let name = program_name();
    replace_command_line(&format!("{name}-init"));

    // SAFETY: this process has a single thread (we are a fresh clone), so
    // the child may do anything after fork.
    let command = match unsafe { fork() }.context("fork for the command")? {
        ForkResult::Child => {
            // The command starts with no signal blocked: the mask survives exec.
            let code = match set.thread_unblock() {
                Err(e) => {
                    eprintln!("{name}: unblocking signals: {e}");
                    125
                }
                Ok(()) => {
                    let Err(e) = lab01::exec(argv, env);
                    eprintln!("{name}: {e}");
                    e.exit_code()
                }
            };
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => child,
    };

    loop {
        match set.wait().context("sigwait in init")? {
            Signal::SIGCHLD => {
                // Reap *every* child that has ended: the command, and any
                // orphan the kernel reparented to us. One SIGCHLD may stand
                // for many exits, so loop until none is left.
                loop {
                    match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                        Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => break,
                        Ok(status) if status.pid() == Some(command) => {
                            if let Some(done) = finished(status) {
                                // Anything still running in the namespace is
                                // killed by the kernel when PID 1 exits.
                                return Ok(done.code());
                            }
                        }
                        Ok(_) | Err(Errno::EINTR) => {}
                        Err(e) => return Err(e).context("waitpid in init"),
                    }
                }
            }
            forwarded => {
                let _ = kill(command, forwarded);
            }
        }
    }
}
// ANCHOR_END: init
