//! # File descriptors and dumpability: nothing of the runtime leaks in
//!
//! Until it execs, the container's first process is a copy of the runtime,
//! and it holds whatever the runtime had open. A leaked descriptor is a
//! door: one open on a host directory is the host's file system, whatever
//! pivot_root did (runc's CVE-2024-21626: `-w /proc/self/fd/7`). So every
//! descriptor above 2 is closed before exec, and the kernel is asked
//! afterwards whether any is left. And while the process is still the
//! runtime's copy, it is made non-dumpable, so that processes in the
//! container cannot open its `/proc/PID/exe`, `fd` or `mem`.
//!
//! ```text
//! ls -l /proc/self/fd          # what a process holds, and where each leads
//! ```
//!
//! Dumpability has no shell command: it is prctl(2)'s `PR_SET_DUMPABLE`.

use std::fs;
use std::os::fd::RawFd;

use anyhow::{bail, Context};
use nix::errno::Errno;

// ANCHOR: fds
/// Close every file descriptor above 2 that `keep` does not name. A leaked
/// descriptor is a door: one open on a host directory is the host's file
/// system, whatever pivot_root did (CVE-2024-21626). close-on-exec is not
/// enough for us: the tiny init never execs, and the container can reach its
/// descriptors through /proc/1/fd.
pub fn close_fds(keep: &[RawFd]) -> anyhow::Result<()> {
    let kept = keep;
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
    check_no_fds_above_2(kept)
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
