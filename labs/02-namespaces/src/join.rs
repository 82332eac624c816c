//! Joining a running container: the mechanism of `docker exec`.
//!
//! A container is a set of namespaces (and a cgroup) that its first process
//! happened to create. Any process may *enter* them later with `setns(2)`,
//! given a file descriptor for each: `/proc/<pid>/ns/<kind>` of a process
//! already inside. That is all `nsenter` does:
//!
//! ```text
//! nsenter --target $PID --mount --uts --ipc --net --pid -- /bin/sh
//! ```
//!
//! Two kinds are special:
//!
//! - **pid.** `setns` into a PID namespace does not move the caller (its PID
//!   cannot change); only children forked *afterwards* are born inside. So
//!   joining takes two processes: one that enters, and its child that runs
//!   the command. The first stays outside as a relay: it waits for the
//!   command and passes on its exit status and the signals sent to it.
//! - **mnt.** Entering a mount namespace also sets the caller's root and
//!   working directory to that namespace's root: the container's `/` after
//!   its `pivot_root`. No chroot is needed, and none of the host's files are
//!   reachable from there.
//!
//! The cgroup must be joined *before* the mount namespace: once inside, the
//! host's `/sys/fs/cgroup` is gone from view. The joining process writes
//! itself into the container's cgroup first, and the command inherits it.
//!
//! The relay and the command each start a session of their own, so that
//! nothing run in the container can reach the caller's terminal (see
//! [`crate::new_session`]); the caller hands the command pipes, not its own
//! descriptors, as `stdio` (the engine's `exec` relays them).
//!
//! With a terminal (`exec -t`), the relay allocates the command's pty once
//! it is in the container's mount namespace, from the container's own
//! devpts, exactly as the container's first process did (see
//! [`crate::open_console`]), and sends the master back over a unix socket.
//!
//! The command runs under the same security layer as the container (its
//! capabilities, seccomp filter and no_new_privs), applied in the last steps
//! before exec, exactly as for the container's first process.

use std::ffi::OsString;
use std::os::fd::{OwnedFd, RawFd};
use std::path::PathBuf;

use anyhow::{bail, Context};
use nix::sched::{setns, CloneFlags};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};

use crate::security::{self, Prepared, Security};
use crate::{Container, FORWARDED_SIGNALS};
use lab01_chroot as lab01;

/// What to run in which container.
#[derive(Debug, Clone)]
pub struct JoinSpec {
    /// A process inside the container (its PID 1, as the host sees it).
    pub target: Pid,
    pub argv: Vec<OsString>,
    /// The command's whole environment (`KEY=value`).
    pub env: Vec<OsString>,
    /// The working directory inside the container (`/` when `None`).
    pub cwd: Option<PathBuf>,
    /// The container's security layer; `None` runs unconfined (the lab).
    pub security: Option<Security>,
    /// stdin, stdout, stderr for the command; `None` inherits ours.
    pub stdio: Option<[RawFd; 3]>,
    /// `exec -d` (or an `exec -it` that a person may leave with the detach
    /// keys): the command outlives the caller, so the relay must not die
    /// with it, nor keep the caller's stdio.
    pub detach: bool,
    /// A pty from the container's devpts becomes the command's stdio and
    /// controlling terminal; its master comes back in
    /// [`Container::take_console`]. `stdio` gets what the relay says first.
    pub tty: bool,
    /// With `tty`: its initial size, rows and columns.
    pub tty_size: Option<(u16, u16)>,
    /// Who the command runs as (the container's user, or `exec -u`).
    pub run_as: Option<crate::RunAs>,
}

// ANCHOR: order
/// The namespaces to join, in order. The user namespace comes first, as it
/// decides what the others allow; the mount namespace comes last but one,
/// and the cgroup namespace after it (runc's order).
const ORDER: [(&str, CloneFlags); 7] = [
    ("user", CloneFlags::CLONE_NEWUSER),
    ("ipc", CloneFlags::CLONE_NEWIPC),
    ("uts", CloneFlags::CLONE_NEWUTS),
    ("net", CloneFlags::CLONE_NEWNET),
    ("pid", CloneFlags::CLONE_NEWPID),
    ("mnt", CloneFlags::CLONE_NEWNS),
    ("cgroup", CloneFlags::CLONE_NEWCGROUP),
];
// ANCHOR_END: order

/// Open the namespaces of `target` that differ from ours. Joining one we
/// are already in is pointless, and for the user namespace an error.
fn open_namespaces(target: Pid) -> anyhow::Result<Vec<(OwnedFd, CloneFlags, &'static str)>> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    for (name, flag) in ORDER {
        let theirs = format!("/proc/{target}/ns/{name}");
        let ours = format!("/proc/self/ns/{name}");
        let (Ok(t), Ok(o)) = (std::fs::metadata(&theirs), std::fs::metadata(&ours)) else {
            continue; // a kind this kernel lacks
        };
        if t.ino() == o.ino() && t.dev() == o.dev() {
            continue;
        }
        let fd = std::fs::File::open(&theirs).with_context(|| format!("opening {theirs}"))?;
        out.push((OwnedFd::from(fd), flag, name));
    }
    if out.is_empty() {
        bail!("process {target} shares every namespace with us: is it a container?");
    }
    Ok(out)
}

// ANCHOR: join
/// Run `spec.argv` inside the container of `spec.target`.
///
/// `enter_cgroup` runs in the joining process before it enters any
/// namespace, so that it can still see the host's cgroup filesystem; it
/// should move the calling process into the container's cgroup (for
/// example by writing `0` to each `cgroup.procs`). The returned
/// [`Container`] is the relay process: waiting on it gives the command's
/// exit code (128+N for signal N), and signals sent to it are passed on.
///
/// Must be called from a single-threaded process (it forks).
pub fn join(
    spec: &JoinSpec,
    enter_cgroup: impl FnOnce() -> anyhow::Result<()>,
) -> anyhow::Result<Container> {
    let namespaces = open_namespaces(spec.target)?;
    // Compile the seccomp filter here, in the parent, where a mistake is
    // still a clean error (see the security module).
    let prepared = spec.security.as_ref().map(Security::prepare).transpose()?;
    let console = spec.tty.then(crate::console_socketpair).transpose()?;

    // SAFETY: the caller is single-threaded (documented above).
    match unsafe { fork() }.context("fork for exec")? {
        ForkResult::Parent { child } => {
            let mut container = Container {
                pid: child,
                console: None,
            };
            if let Some((parent, theirs)) = console {
                drop(theirs);
                // EOF instead: the relay failed, and said why on stderr.
                container.console = crate::receive_fd(&parent)?;
            }
            Ok(container)
        }
        ForkResult::Child => {
            let socket = console.map(|(parent, theirs)| {
                drop(parent);
                theirs
            });
            let code = match relay(spec, namespaces, socket, prepared.as_ref(), enter_cgroup) {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("exec: {e:#}");
                    125
                }
            };
            // SAFETY: leaving the forked copy without running the parent's
            // exit handlers.
            unsafe { libc::_exit(code) }
        }
    }
}
// ANCHOR_END: join

/// The relay: enter, fork the command, pass signals on, return its status.
fn relay(
    spec: &JoinSpec,
    namespaces: Vec<(OwnedFd, CloneFlags, &'static str)>,
    console: Option<OwnedFd>,
    prepared: Option<&Prepared>,
    enter_cgroup: impl FnOnce() -> anyhow::Result<()>,
) -> anyhow::Result<i32> {
    if !spec.detach {
        // If the dockyard process that started us dies, so do we (and the
        // command, which then has nobody to report to).
        // SAFETY: prctl with integer arguments only.
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) };
    }
    // Out of the caller's session before anything else: Ctrl-C at the
    // caller's terminal then reaches only the caller, who passes it on once
    // (through us), and `exec -d` outlives a closed terminal, as docker's.
    crate::new_session()?;
    // `exec -d`: we outlive the caller, so we must not hold its stdio (a
    // pipe it reads would never end); the host's /dev/null, opened before
    // the container's /dev is in view, replaces them once the command runs.
    let null = match spec.detach {
        true => Some(std::fs::File::open("/dev/null").context("opening /dev/null")?),
        false => None,
    };
    enter_cgroup().context("entering the container's cgroup")?;
    let joins_user = namespaces
        .iter()
        .any(|(_, flag, _)| *flag == CloneFlags::CLONE_NEWUSER);
    for (fd, flag, name) in &namespaces {
        setns(fd, *flag).with_context(|| format!("setns into the container's {name} namespace"))?;
    }
    drop(namespaces);
    if joins_user {
        // setns gave us every capability in the container's user namespace,
        // but not an identity in it: host uid 0 is not mapped there (it
        // shows as nobody, 65534), and execve would take the capabilities
        // away from a process that is not root inside. So become the
        // namespace's root, which is the remapped uid on the host.
        crate::become_root_inside()?;
        if !spec.detach {
            // Changing credentials cleared the parent-death signal: again.
            // SAFETY: prctl with integer arguments only.
            unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) };
        }
    }

    // -t: the pty, from the container's devpts, now that we see it. The
    // master goes back to the caller; the slave to the command below.
    let slave = match console {
        Some(socket) => {
            let c = crate::open_console(spec.tty_size)?;
            if let Some(u) = &spec.run_as {
                nix::unistd::fchown(&c.slave, Some(nix::unistd::Uid::from_raw(u.uid)), None)
                    .context("chown of the exec's terminal")?;
            }
            crate::send_fd(&socket, &c.master).context("sending the pty master")?;
            Some(c.slave)
        }
        None => None,
    };

    // Block the signals we forward, and SIGCHLD, before forking: none is
    // lost between the fork and the wait. The command unblocks them before
    // exec (a blocked mask survives execve).
    let mut mask = SigSet::empty();
    for s in FORWARDED_SIGNALS {
        mask.add(s);
    }
    // And SIGQUIT (Ctrl-\), which the engine's pump passes on too: left at
    // its default it would kill us, not the command.
    mask.add(Signal::SIGQUIT);
    mask.add(Signal::SIGCHLD);
    mask.thread_block().context("blocking signals")?;

    // SAFETY: this process is single-threaded.
    match unsafe { fork() }.context("fork into the container's PID namespace")? {
        ForkResult::Child => {
            let code = match command(spec, slave.as_ref(), prepared, &mask) {
                Ok(never) => match never {},
                Err(e) => {
                    eprintln!("{e}");
                    e.exit_code()
                }
            };
            // SAFETY: as above.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            // Only the command holds the terminal now: when it exits, the
            // master reads EIO and the caller knows the output is complete.
            drop(slave);
            // Nor do we keep any other descriptor of the caller's: the
            // command's pipes (its stdin would never see EOF while we held
            // a write end) and the caller's own ends of them.
            if let Some(null) = null {
                use std::os::fd::AsRawFd;
                let n = null.as_raw_fd();
                crate::install_stdio([n, n, n])?;
            }
            close_descriptors_above_2();
            loop {
                match waitpid(child, Some(nix::sys::wait::WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::Exited(_, code)) => return Ok(code),
                    Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(128 + sig as i32),
                    _ => {}
                }
                // Sleep until a signal: SIGCHLD (loop and reap) or one to pass on.
                if let Ok(sig) = mask.wait() {
                    if sig != Signal::SIGCHLD {
                        let _ = kill(child, sig);
                    }
                }
            }
        }
    }
}

/// Close every descriptor above 2. Not lab 02's `close_fds`, which checks
/// its work in /proc/self/fd: the relay is outside the PID namespace whose
/// /proc it now sees.
fn close_descriptors_above_2() {
    // SAFETY: no Rust object of the relay owns a descriptor above 2 by now.
    if unsafe { libc::close_range(3, u32::MAX, 0) } != 0 {
        // Before Linux 5.9: one at a time, up to the usual limit.
        for fd in 3..4096 {
            // SAFETY: as above; EBADF for the ones not open.
            unsafe { libc::close(fd) };
        }
    }
}

/// The command's side: stdio, working directory, confinement, exec.
fn command(
    spec: &JoinSpec,
    tty: Option<&OwnedFd>,
    prepared: Option<&Prepared>,
    blocked: &SigSet,
) -> Result<std::convert::Infallible, lab01::Error> {
    use std::os::fd::AsRawFd;
    // Until execve, the container's processes could read the caller's
    // command line and environment here (see `replace_command_line`).
    crate::init::replace_command_line(&format!("{}-exec", crate::program_name()));
    match tty {
        Some(slave) => {
            let s = slave.as_raw_fd();
            crate::install_stdio([s, s, s])?;
            crate::take_terminal()?;
        }
        None => {
            if let Some(fds) = spec.stdio {
                crate::install_stdio(fds)?;
            }
            // A session of its own, with no controlling terminal: the
            // caller's is out of reach (`/dev/tty`, TIOCSTI), as crun's
            // "exec: always call setsid".
            crate::new_session()?;
        }
    }
    // Until exec, this process is a copy of dockyard inside the container:
    // keep the container's processes from opening it (see security).
    security::set_non_dumpable()?;
    let cwd = spec.cwd.clone().unwrap_or_else(|| PathBuf::from("/"));
    if prepared.is_some() {
        // Resolved inside the container's root, never through a symlink out.
        security::enter_workdir(&cwd)?;
    } else {
        std::env::set_current_dir(&cwd)
            .with_context(|| format!("working directory {}", cwd.display()))?;
    }
    blocked.thread_unblock().context("unblocking signals")?;
    // Defaults for all, as for the container's first process.
    crate::reset_signals()?;
    // Root with other groups first, while CAP_SETGID is still ours (as for
    // the first process, see `child_setup`); any other user last.
    let root_user = spec.run_as.as_ref().filter(|u| u.uid == 0);
    if let Some(u) = root_user {
        crate::switch_user(u)?;
    }
    let user = spec.run_as.as_ref().filter(|u| u.uid != 0);
    let switched = match prepared {
        Some(p) => security::confine_as(p, &[], user)?,
        None => false,
    };
    if let Some(u) = user.filter(|_| !switched) {
        crate::switch_user(u)?;
    }
    lab01::exec(&spec.argv, &spec.env)
}
