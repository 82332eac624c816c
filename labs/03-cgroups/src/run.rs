//! # Running a container to its end
//!
//! [`run`] is this lab's whole experiment in one call: assemble a container
//! (see [`crate::assemble`]), wait for it while passing on the signals a
//! person sends, read what its cgroup counted, and take the cgroup down.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::assemble::{self, Blueprint};
use crate::{Cgroup, Host, Stats, Version};

// ANCHOR: run
/// A container to run, and how patient to be with it.
pub struct RunOptions {
    /// The container; it must have a cgroup ([`Blueprint::cgroup`]): this
    /// lab is about what the cgroup counts.
    pub blueprint: Blueprint,
    /// How long a forwarded Ctrl-C or SIGTERM may take to end the container
    /// before the whole cgroup is killed (`docker stop` waits 10 seconds).
    pub stop_timeout: Duration,
}

/// How a container ended, and what its cgroup counted.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: lab02_namespaces::ExitStatus,
    /// Read just before the cgroup was removed.
    pub stats: Stats,
    /// From the start of the command to its end.
    pub elapsed: Duration,
    /// The host's view of the same CPU time: what the kernel charged to the
    /// container's processes as they were reaped (`getrusage(2)`,
    /// `RUSAGE_CHILDREN`, user + system), whichever cgroup they ran in. It
    /// agrees with [`Stats::cpu_usage_usec`] when every process was in the
    /// group, and tells a loop that never joined it (0 in the group, a whole
    /// CPU here) from one that was throttled.
    pub host_cpu_usec: u64,
    /// `Some("memory.events oom_kill=1")` if the OOM killer struck.
    pub oom: Option<String>,
    /// The cgroup's version and directories, while it existed.
    pub version: Version,
    pub dirs: Vec<PathBuf>,
    /// See [`Cgroup::warnings`].
    pub warnings: Vec<String>,
}

/// Run a container in its own cgroup: assemble it (the cgroup with its
/// limits, then the process, see [`crate::assemble`]), wait, read the
/// counters, and remove the cgroup, whatever happens.
///
/// The child enters the cgroup by itself before anything else (see
/// [`crate::Entry`]): by the time the command runs, it and every
/// process it forks are counted and limited. SIGINT, SIGTERM and SIGHUP sent
/// to this process are forwarded to the container; if it has not ended after
/// `stop_timeout` (a PID 1 ignores signals it has no handler for), or on a
/// second signal, every process in the cgroup is killed. Either way the
/// cgroup is removed before this returns. Call it from a single-threaded
/// program (lab 02 forks).
pub fn run(host: &Host, opts: &RunOptions) -> anyhow::Result<Outcome> {
    signals::install()?;
    let children_before = children_cpu_usec();
    let start = Instant::now();
    if opts.blueprint.cgroup.is_none() {
        bail!("lab 03 runs a container in a cgroup of its own: the blueprint has none");
    }
    let running = assemble::assemble(host, &opts.blueprint, |_| Ok(()))?;
    let cgroup = running
        .groups
        .cgroup
        .as_ref()
        .context("the container's cgroup")?;
    let status = wait(&running.process, cgroup, opts.stop_timeout);
    let elapsed = start.elapsed();
    let host_cpu_usec = children_cpu_usec().saturating_sub(children_before);
    let stats = running.groups.stats();
    let oom = match stats.oom_kills {
        Some(n) if n > 0 => Some(format!("{}={n}", cgroup.oom_source())),
        _ => None,
    };
    let version = cgroup.version();
    let dirs = cgroup.dirs();
    let warnings = cgroup.warnings.clone();
    // Remove the cgroup even if waiting failed; report the first error.
    let removed = running.groups.remove();
    let status = status?;
    removed?;
    Ok(Outcome {
        status,
        stats,
        elapsed,
        host_cpu_usec,
        oom,
        version,
        dirs,
        warnings,
    })
}

/// The CPU time, user and system, of every child this process has reaped
/// and of everything they reaped in turn: a PID 1 reaps its namespace, so
/// once the container's first process is waited for, the whole container
/// is in it, in microseconds.
fn children_cpu_usec() -> u64 {
    use nix::sys::resource::{getrusage, UsageWho};
    getrusage(UsageWho::RUSAGE_CHILDREN).map_or(0, |u| {
        let us = |t: nix::sys::time::TimeVal| t.tv_sec() as u64 * 1_000_000 + t.tv_usec() as u64;
        us(u.user_time()) + us(u.system_time())
    })
}

/// Wait for the container's first process, forwarding signals, and killing
/// the whole cgroup when a forwarded signal is not obeyed in time.
fn wait(
    container: &lab02_namespaces::Container,
    cgroup: &Cgroup,
    stop_timeout: Duration,
) -> anyhow::Result<lab02_namespaces::ExitStatus> {
    use lab02_namespaces::ExitStatus;
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    let pid = container.pid();
    let mut kill_at: Option<Instant> = None;
    loop {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(ExitStatus::Exited(code)),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(ExitStatus::Signaled(sig)),
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e).with_context(|| format!("waitpid({pid})")),
        }
        if let Some(sig) = signals::take() {
            if kill_at.is_some() {
                // A second Ctrl-C: no more patience.
                let _ = cgroup.kill_all();
            } else {
                let _ = container.signal(sig);
                kill_at = Some(Instant::now() + stop_timeout);
            }
        }
        if kill_at.is_some_and(|t| Instant::now() >= t) {
            let _ = cgroup.kill_all();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The lab's own signal handling. A handler may do almost nothing (only
/// async-signal-safe calls), so it records the signal and the wait loop
/// acts on it. Handlers, unlike a blocked signal mask, are reset by
/// `execve`: the container's command starts with default dispositions.
mod signals {
    use std::sync::atomic::{AtomicI32, Ordering};

    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};

    static PENDING: AtomicI32 = AtomicI32::new(0);

    extern "C" fn record(sig: libc::c_int) {
        PENDING.store(sig, Ordering::SeqCst);
    }

    pub(super) fn install() -> anyhow::Result<()> {
        let action = SigAction::new(
            SigHandler::Handler(record),
            SaFlags::SA_RESTART,
            SigSet::empty(),
        );
        for sig in lab02_namespaces::FORWARDED_SIGNALS {
            // SAFETY: the handler only stores into an atomic.
            unsafe { sigaction(sig, &action) }
                .map_err(|e| anyhow::anyhow!("sigaction({sig}): {e}"))?;
        }
        Ok(())
    }

    pub(super) fn take() -> Option<Signal> {
        match PENDING.swap(0, Ordering::SeqCst) {
            0 => None,
            n => Signal::try_from(n).ok(),
        }
    }
}
// ANCHOR_END: run
