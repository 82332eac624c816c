//! # Resource limits: `--ulimit`
//!
//! setrlimit(2) caps what one process may use of a resource: open files,
//! processes of its user, stack size, core dump size. Each limit has a soft
//! value, which the kernel enforces, and a hard value, the ceiling up to
//! which the process may raise the soft one itself. Limits are inherited
//! across fork and exec, so setting them in the container's first process,
//! before exec, sets them for everything in the container that does not
//! lower them further. (Cgroups, in lab 03, limit a whole group instead.)
//!
//! ```text
//! prlimit --nofile=1024:2048 CMD      # docker run --ulimit nofile=1024:2048
//! ulimit -n; ulimit -Hn               # the soft and hard values, inside
//! ```

use anyhow::{bail, Context};
use nix::errno::Errno;

// ANCHOR: rlimit
pub(crate) fn set_rlimit(
    resource: nix::sys::resource::Resource,
    soft: u64,
    hard: u64,
) -> anyhow::Result<()> {
    use nix::sys::resource::{getrlimit, setrlimit};
    match setrlimit(resource, soft, hard) {
        Ok(()) => Ok(()),
        Err(Errno::EPERM) => {
            let (_, max) =
                getrlimit(resource).with_context(|| format!("getrlimit({resource:?})"))?;
            let (soft, hard) = (soft.min(max), hard.min(max));
            eprintln!(
                "warning: {resource:?}: the hard limit cannot be raised above {max} here \
                 (no CAP_SYS_RESOURCE); using {soft}:{hard}"
            );
            setrlimit(resource, soft, hard)
                .with_context(|| format!("setrlimit({resource:?}, {soft}, {hard})"))
        }
        Err(e) => Err(e).with_context(|| format!("setrlimit({resource:?}, {soft}, {hard})")),
    }
}
// ANCHOR_END: rlimit

/// Docker's `--ulimit NAME=SOFT[:HARD]` (HARD defaults to SOFT; `-1` is unlimited).
pub fn parse_ulimit(s: &str) -> anyhow::Result<(nix::sys::resource::Resource, u64, u64)> {
    use nix::sys::resource::Resource;
    let (name, values) = s
        .split_once('=')
        .with_context(|| format!("invalid ulimit argument {s:?}: expected NAME=SOFT[:HARD]"))?;
    let resource = match name {
        "core" => Resource::RLIMIT_CORE,
        "cpu" => Resource::RLIMIT_CPU,
        "data" => Resource::RLIMIT_DATA,
        "fsize" => Resource::RLIMIT_FSIZE,
        "locks" => Resource::RLIMIT_LOCKS,
        "memlock" => Resource::RLIMIT_MEMLOCK,
        "msgqueue" => Resource::RLIMIT_MSGQUEUE,
        "nice" => Resource::RLIMIT_NICE,
        "nofile" => Resource::RLIMIT_NOFILE,
        "nproc" => Resource::RLIMIT_NPROC,
        "rss" => Resource::RLIMIT_RSS,
        "rtprio" => Resource::RLIMIT_RTPRIO,
        "rttime" => Resource::RLIMIT_RTTIME,
        "sigpending" => Resource::RLIMIT_SIGPENDING,
        "stack" => Resource::RLIMIT_STACK,
        "as" => Resource::RLIMIT_AS,
        other => bail!("invalid ulimit type: {other}"),
    };
    let num = |v: &str| -> anyhow::Result<u64> {
        if v == "-1" {
            return Ok(libc::RLIM_INFINITY);
        }
        v.parse()
            .with_context(|| format!("invalid ulimit value {v:?} in {s:?}"))
    };
    let (soft, hard) = match values.split_once(':') {
        Some((a, b)) => (num(a)?, num(b)?),
        None => (num(values)?, num(values)?),
    };
    if soft > hard {
        bail!("ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}");
    }
    Ok((resource, soft, hard))
}
