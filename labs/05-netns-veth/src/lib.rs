//! # Lab 05: network namespaces, veth pairs and a bridge
//!
//! A new network namespace has its own interfaces, addresses, routes,
//! firewall rules, sockets and `/proc/sys/net`, and starts with nothing but a
//! `lo` that is down (lab 02 brought it up). To talk to anything, a
//! container needs a cable out. That cable is a **veth pair**: two
//! interfaces joined back to back, whatever enters one leaves the other. One
//! end goes into the container's namespace and becomes its `eth0`; the other
//! stays on the host, plugged into a **bridge**, a software Ethernet switch
//! that every container of a network is plugged into. The bridge has an
//! address of its own in the network's subnet: it is the containers'
//! **gateway**, their default route to the rest of the world, which the
//! host reaches by routing (`ip_forward`) and **NAT**.
//!
//! ```text
//!   host network namespace                     container namespaces
//!  +----------------------------------------+
//!  |  eth0 (the host's uplink)              |   +---------------------+
//!  |    ^  MASQUERADE out, DNAT in          |   | eth0 172.17.0.2/16  |
//!  |    |                                   |   | default via .0.1    |
//!  |  routing (ip_forward=1)                |   +----------^----------+
//!  |    |                                   |              | veth pair
//!  |  dockyard0 (bridge) 172.17.0.1/16 -----+-- dyv1234 ---+
//!  |                                   \----+-- dyv1240 ---+
//!  +----------------------------------------+              | veth pair
//!                                               +----------v----------+
//!                                               | eth0 172.17.0.3/16  |
//!                                               +---------------------+
//! ```
//!
//! [`attach`] does, through netlink (see [`netlink`]), what these commands
//! do; `PID` is the container's first process, `10.x` its address:
//!
//! ```text
//! ip link add dockyard0 type bridge                 # once per network
//! ip addr add 172.17.0.1/16 dev dockyard0
//! ip link set dockyard0 up
//! sysctl -w net.ipv4.ip_forward=1
//! sysctl -w net.ipv4.conf.dockyard0.route_localnet=1
//! iptables -t nat -A POSTROUTING -s 172.17.0.0/16 ! -o dockyard0 -j MASQUERADE
//!
//! ip link add dyv$PID master dockyard0 up type veth \ # once per container
//!     peer name eth0 address 02:42:ac:11:00:02 netns $PID
//! nsenter --net=/proc/$PID/ns/net sh -c '
//!     ip addr add 172.17.0.2/16 dev eth0
//!     ip link set eth0 up
//!     ip route add default via 172.17.0.1'
//! iptables -t nat -A OUTPUT -p tcp -m addrtype --dst-type LOCAL --dport 8080 \
//!          -j DNAT --to-destination 172.17.0.2:80    # -p 8080:80
//! ```
//!
//! The container's PID is all the host needs to name its namespace: lab 02's
//! `spawn` calls a `before_start` hook with it after the child exists in its
//! new namespaces and before it runs the command, and that is where
//! [`attach`] goes. The veth's container end is born in the container's
//! namespace (`peer ... netns $PID`), rather than made on the host and
//! moved there (`ip link set dyc$PID netns $PID`, the classic recipe): a
//! move waits for the kernel, and this is every container's start. [`detach`] undoes it when
//! the container exits, and [`gc`] after a crash. Neither deletes the veth:
//! the kernel does, with the container's namespace, after the exit.
//!
//! ## Networks that outlive their containers
//!
//! The default network `bridge` is made on first use and kept, with its
//! bridge and rules, as Docker keeps `docker0`: the next container finds
//! them ready and runs no `iptables` at all. A network the lab makes on
//! first use under another name goes with its last member. [`create`] makes
//! one that stays until [`remove`], as `docker network create` does, with
//! the subnet, gateway and MTU asked for. Each network also gets one rule
//! that keeps the others out: the host routes between its bridges, so
//! without it a container could reach any other network's containers
//! through its gateway. [`attach`] can connect a running container to one
//! more network (`eth1`, ...), and [`disconnect`] takes it off again:
//!
//! ```text
//! ip link add dy-front type bridge                     # create front
//! ip addr add 10.10.0.254/24 dev dy-front; ip link set dy-front up
//! iptables -t mangle -I FORWARD -o dy-front ! -i dy-front \
//!          -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP
//! ip link add dyv$PIDn1 type veth peer name dyc$PIDn1  # connect back PID
//! ip link set dyv$PIDn1 master dy-back; ip link set dyv$PIDn1 up
//! ip link set dyc$PIDn1 netns $PID                     # ... renamed eth1
//! ip link del dyv$PIDn1                                # disconnect back PID
//! ```
//!
//! ## Which namespace is "the host"
//!
//! Everything here acts on the network namespace of the *calling thread*:
//! the bridge, the host end of the veth, the iptables rules and the sysctls
//! all go there. For the engine that is the machine's own namespace. The
//! tests and the book run the same code inside a throwaway namespace that
//! plays the host (`unshare --net`), so they never touch the machine's
//! network, and whatever they make vanishes with that namespace. A network's
//! state file records the inode of the namespace it was made in, and is
//! refused from any other while a container of it is alive there; once none
//! is, the network is made again in the new namespace on its next use (a
//! reboot, or a state directory used again from a new throwaway namespace).
//!
//! ## Network modes
//!
//! As with `docker run --network` ([`NetworkMode`]):
//!
//! - `none`: a new namespace with only `lo`.
//! - `host`: no network namespace at all; the host's interfaces and ports.
//! - `bridge` (the default) or `NAME`: a new namespace, a veth pair to the
//!   network's bridge, an address, NAT. A user-defined network (any name but
//!   `bridge`) also lets its members find each other by name.
//! - a macvlan network (`NAME`, made with [`macvlan::create_macvlan`]): a
//!   new namespace whose `eth0` is a child of a host interface, straight on
//!   its wire with a MAC and an address of its own: no bridge, no NAT (see
//!   [`macvlan`]).
//! - `container:PID`: no new namespace; join the one process PID is in
//!   (setns(2)), sharing its interfaces and its `localhost`, as the
//!   containers of a Kubernetes pod do.

mod bridge;
mod endpoint;
pub mod firewall;
pub mod ipam;
pub mod macvlan;
pub mod names;
pub mod netlink;
pub mod ports;
pub mod vxlan;

pub use bridge::*;
pub use endpoint::*;

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
