//! Kernel settings of the container's own namespaces: sysctls
//! (`--sysctl`), the NIS domain name (`--domainname`) and the OOM killer's
//! preference (`--oom-score-adj`).
//!
//! Most of `/proc/sys` is the whole machine's: writing `kernel.pid_max`
//! from inside a container would change it for everyone. Some files belong
//! to a namespace instead, and a container with a namespace of its own may
//! set them without touching the host:
//!
//! ```text
//! net.*                       the network namespace (net.ipv4.ip_forward...)
//! kernel.shm*, kernel.msg*,   the IPC namespace (System V shared memory,
//!   kernel.sem, fs.mqueue.*     message queues, semaphores; POSIX queues)
//! kernel.domainname           the UTS namespace (what setdomainname(2) sets)
//! ```
//!
//! The shell equivalent, from inside such a container, is
//! `echo 1 > /proc/sys/net/ipv4/ip_forward` (or `sysctl -w`). [`check`]
//! refuses the rest with runc's words, before any process exists; [`write`]
//! writes them once `/proc` is the container's own and before the security
//! layer makes `/proc/sys` read-only.
//!
//! `/proc/PID/oom_score_adj` (-1000..1000) is not a namespace's: it is the
//! process's, inherited by its children, and says how willing the OOM
//! killer should be to pick it (-1000: never, 1000: first). Lowering it
//! needs CAP_SYS_RESOURCE, so the parent writes it from outside
//! ([`set_oom_score_adj`]), before the child runs anything, as runc does.

use std::fs;

use anyhow::{bail, Context};
use nix::unistd::Pid;

/// The IPC namespace's sysctls that are not under a common prefix (runc's
/// list, and docker's CLI's).
const IPC_SYSCTLS: [&str; 8] = [
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

/// Whether `key` belongs to the IPC namespace.
pub fn is_ipc(key: &str) -> bool {
    IPC_SYSCTLS.contains(&key) || key.starts_with("fs.mqueue.")
}

/// Refuse a sysctl that the container's namespaces do not make its own,
/// in runc's words: `net_ns` and `ipc_ns` say whether it has a network and
/// an IPC namespace of its own (created or joined from another container,
/// not the host's), `uts_ns` a UTS namespace.
pub fn check(key: &str, net_ns: bool, ipc_ns: bool, uts_ns: bool) -> anyhow::Result<()> {
    if is_ipc(key) {
        if !ipc_ns {
            bail!("sysctl {key:?} is not allowed in the hosts ipc namespace");
        }
        return Ok(());
    }
    if key.starts_with("net.") {
        if !net_ns {
            bail!("sysctl {key:?} not allowed in host network namespace");
        }
        return Ok(());
    }
    match key {
        "kernel.domainname" if uts_ns => Ok(()),
        "kernel.hostname" if uts_ns => {
            bail!("sysctl {key:?} is not allowed as it conflicts with the OCI \"hostname\" field")
        }
        _ => bail!("sysctl {key:?} is not in a separate kernel namespace"),
    }
}

/// Write each `(key, value)` to `/proc/sys/KEY` with the dots as slashes
/// (`sysctl -w key=value`). Run inside, after `/proc` is mounted.
pub fn write(sysctls: &[(String, String)]) -> anyhow::Result<()> {
    for (key, value) in sysctls {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        fs::write(&path, value).with_context(|| format!("writing {value:?} to {path}"))?;
    }
    Ok(())
}

/// `setdomainname(2)`: the NIS domain name of our UTS namespace, what
/// `domainname` prints (the sysctl `kernel.domainname`).
pub fn set_domainname(name: &str) -> anyhow::Result<()> {
    // SAFETY: the pointer and length describe `name`'s bytes.
    let ret = unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) };
    nix::errno::Errno::result(ret).with_context(|| format!("setdomainname({name:?})"))?;
    Ok(())
}

/// Write `/proc/PID/oom_score_adj` (`echo N > /proc/PID/oom_score_adj`).
pub fn set_oom_score_adj(pid: Pid, score: i32) -> anyhow::Result<()> {
    let path = format!("/proc/{pid}/oom_score_adj");
    fs::write(&path, score.to_string()).with_context(|| format!("writing {score} to {path}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_namespaced_sysctls_pass_and_only_with_their_namespace() {
        assert!(check("net.ipv4.ip_forward", true, false, false).is_ok());
        assert!(check("kernel.shmmax", false, true, false).is_ok());
        assert!(check("fs.mqueue.msg_max", false, true, false).is_ok());
        assert!(check("kernel.domainname", false, false, true).is_ok());
        let e = check("net.ipv4.ip_forward", false, true, true).unwrap_err();
        assert_eq!(
            e.to_string(),
            "sysctl \"net.ipv4.ip_forward\" not allowed in host network namespace"
        );
        let e = check("kernel.msgmax", true, false, true).unwrap_err();
        assert_eq!(
            e.to_string(),
            "sysctl \"kernel.msgmax\" is not allowed in the hosts ipc namespace"
        );
        let e = check("kernel.pid_max", true, true, true).unwrap_err();
        assert!(e.to_string().contains("not in a separate kernel namespace"));
    }
}
