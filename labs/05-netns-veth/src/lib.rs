//! # Lab 05: network namespaces, veth pairs and a bridge
//!
//! A container gets its own network namespace; a veth pair (a virtual cable)
//! joins it to a bridge on the host, and NAT lets it out.
//!
//! This crate so far holds the host checks that `dockyard doctor` runs; the
//! plumbing itself is the subject of the lab's own issue.

pub use lab04_overlay;

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use anyhow::Context;
use nix::sched::{unshare, CloneFlags};

/// Try to create a veth pair and a bridge, in a throwaway network namespace.
///
/// The check runs `ip` in a child that first unshares its network namespace,
/// so the host's network is never touched: when the child exits, the namespace
/// and everything made in it disappear. (The lab itself speaks netlink
/// directly; this is only a probe of what the kernel can do.)
pub fn veth_and_bridge_supported() -> anyhow::Result<bool> {
    let mut cmd = Command::new("ip");
    cmd.args(["-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: unshare is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| unshare(CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from));
    }
    let mut child = cmd
        .spawn()
        .context("running ip (install Debian's iproute2 package)")?;
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write;
        stdin
            .write_all(b"link add dyprobe0 type veth peer name dyprobe1\nlink add dyprobebr0 type bridge\n")
            .context("writing to ip -batch")?;
    }
    let out = child.wait_with_output().context("waiting for ip")?;
    Ok(out.status.success())
}

/// Whether the kernel forwards IPv4 packets between interfaces, which a
/// bridge network with outbound NAT needs.
pub fn ip_forward_enabled() -> anyhow::Result<bool> {
    let v = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
        .context("reading /proc/sys/net/ipv4/ip_forward")?;
    Ok(v.trim() == "1")
}

/// Which packet-filter front end the host has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Firewall {
    /// `nft` (nftables).
    Nftables,
    /// `iptables`, with its backend as it reports it: "nf_tables" or "legacy".
    Iptables { backend: String },
    /// Neither tool is installed.
    None,
}

/// Find iptables or nftables by asking the tools themselves.
pub fn detect_firewall() -> Firewall {
    if let Ok(out) = Command::new("iptables").arg("-V").output() {
        if out.status.success() {
            let v = String::from_utf8_lossy(&out.stdout);
            let backend = if v.contains("nf_tables") {
                "nf_tables"
            } else {
                "legacy"
            };
            return Firewall::Iptables {
                backend: backend.to_string(),
            };
        }
    }
    if Command::new("nft")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return Firewall::Nftables;
    }
    Firewall::None
}
