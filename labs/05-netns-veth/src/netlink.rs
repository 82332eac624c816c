//! A tiny synchronous rtnetlink client: the requests `ip link`, `ip addr`
//! and `ip route` send, and nothing more.
//!
//! `ip` does not configure interfaces with ioctls (lab 02 did, for `lo`): it
//! speaks *netlink*, a socket family (`AF_NETLINK`) whose messages carry a
//! fixed header and a list of type-length-value attributes. A request like
//! `ip link add dy0 type bridge` is one `RTM_NEWLINK` message with the
//! attributes `IFLA_IFNAME = "dy0"` and `IFLA_LINKINFO { IFLA_INFO_KIND =
//! "bridge" }`. The kernel answers with an acknowledgement carrying an errno
//! (0 for success). The `netlink-packet-route` crate builds and parses those
//! messages; this module only sends them and waits for the answer.
//!
//! A netlink socket talks to the network namespace it was *created* in, for
//! its whole life, whatever namespace its owner moves to later. That is the
//! whole trick behind [`in_netns_of`].

use std::net::Ipv4Addr;
use std::os::fd::AsFd;

use anyhow::{bail, Context};
use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL,
    NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use nix::errno::Errno;
use nix::sched::{setns, CloneFlags};
use nix::unistd::Pid;

/// An error the kernel answered a request with, kept as an errno so that
/// callers can tell "already exists" from a real failure.
#[derive(Debug)]
pub struct NetlinkError {
    pub errno: Errno,
    pub request: String,
}

impl std::fmt::Display for NetlinkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "netlink {}: {}", self.request, self.errno.desc())
    }
}

impl std::error::Error for NetlinkError {}

/// Whether `err` is the kernel's `errno` for a netlink request.
pub fn is_errno(err: &anyhow::Error, errno: Errno) -> bool {
    err.downcast_ref::<NetlinkError>()
        .is_some_and(|e| e.errno == errno)
}

/// `02:42:ac:11:00:02`
pub fn format_mac(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A route netlink socket, bound to the network namespace it was opened in.
pub struct Rtnl {
    socket: Socket,
    seq: u32,
}

impl Rtnl {
    /// Open a socket in the calling thread's network namespace.
    pub fn open() -> anyhow::Result<Rtnl> {
        let mut socket = Socket::new(NETLINK_ROUTE).context("socket(AF_NETLINK, NETLINK_ROUTE)")?;
        socket.bind_auto().context("binding the netlink socket")?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .context("connecting the netlink socket to the kernel")?;
        Ok(Rtnl { socket, seq: 0 })
    }

    /// Send one request and collect the answers up to the ACK (or, for a
    /// dump, up to `NLMSG_DONE`).
    pub(crate) fn request(
        &mut self,
        what: &str,
        message: RouteNetlinkMessage,
        flags: u16,
    ) -> anyhow::Result<Vec<RouteNetlinkMessage>> {
        self.seq += 1;
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        header.sequence_number = self.seq;
        let mut msg = NetlinkMessage::new(header, NetlinkPayload::from(message));
        msg.finalize();
        let mut buf = vec![0; msg.buffer_len()];
        msg.serialize(&mut buf);
        self.socket
            .send(&buf, 0)
            .with_context(|| format!("sending netlink {what}"))?;

        let mut answers = Vec::new();
        loop {
            let (data, _) = self
                .socket
                .recv_from_full()
                .with_context(|| format!("receiving the answer to netlink {what}"))?;
            // One datagram may hold several messages, each padded to 4 bytes.
            let mut offset = 0;
            while offset < data.len() {
                let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&data[offset..])
                    .with_context(|| format!("parsing the answer to netlink {what}"))?;
                let len = reply.header.length as usize;
                if len == 0 {
                    bail!("netlink {what}: a zero-length message in the answer");
                }
                offset += (len + 3) & !3;
                if reply.header.sequence_number != self.seq {
                    continue;
                }
                match reply.payload {
                    NetlinkPayload::Error(e) => match e.code {
                        None => return Ok(answers),
                        Some(code) => {
                            return Err(NetlinkError {
                                errno: Errno::from_raw(-code.get()),
                                request: what.to_string(),
                            }
                            .into())
                        }
                    },
                    NetlinkPayload::Done(_) => return Ok(answers),
                    NetlinkPayload::InnerMessage(inner) => answers.push(inner),
                    _ => {}
                }
            }
        }
    }

    /// The index of the interface `name`, or `None` if there is none
    /// (`ip link show NAME`).
    pub fn link_index(&mut self, name: &str) -> anyhow::Result<Option<u32>> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        match self.request(
            &format!("get link {name}"),
            RouteNetlinkMessage::GetLink(msg),
            NLM_F_ACK,
        ) {
            Ok(answers) => Ok(answers.into_iter().find_map(|a| match a {
                RouteNetlinkMessage::NewLink(link) => Some(link.header.index),
                _ => None,
            })),
            Err(e) if is_errno(&e, Errno::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Like [`Rtnl::link_index`], for an interface that must exist.
    pub fn require_link(&mut self, name: &str) -> anyhow::Result<u32> {
        self.link_index(name)?
            .with_context(|| format!("interface {name} does not exist"))
    }

    // ANCHOR: new_links
    /// `ip link add NAME type bridge`
    pub fn add_bridge(&mut self, name: &str) -> anyhow::Result<()> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.into()));
        msg.attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                InfoKind::Bridge,
            )]));
        let what = format!("add bridge {name}");
        self.request(&what, RouteNetlinkMessage::NewLink(msg), create_flags())?;
        Ok(())
    }
    // ANCHOR_END: new_links

    // ANCHOR: veth_into
    /// `ip link add NAME master BRIDGE up type veth peer name IFNAME address
    /// MAC netns PID`: the host end `name` is born here, already plugged into
    /// the bridge whose index is `master` and up; its peer is born directly
    /// in the network namespace of process `pid`, already named `ifname`
    /// (`eth0`), with its MAC address (and down: see below).
    ///
    /// The peer's own link message (nested in `IFLA_LINKINFO` /
    /// `IFLA_INFO_DATA` / `VETH_INFO_PEER`) may carry `IFLA_NET_NS_PID`:
    /// the kernel then registers that end in the namespace of that process
    /// instead of this socket's. The classic recipe makes both ends here and
    /// then moves one (`ip link set PEER netns PID`: an `RTM_SETLINK` with
    /// the same attribute); born in place, nothing moves, and the move is
    /// what costs: it unregisters the interface from one namespace and
    /// registers it in the other, and the unregistering waits for an RCU
    /// grace period (about 12 ms here). Born in place, the container's end
    /// never takes a name in the host's namespace either, so it can be
    /// `eth0` from the start.
    ///
    /// The host end's `ifinfomsg` flags, with `IFF_UP` in the change mask,
    /// bring it up as it is made (`ip link add ... up`), and `IFLA_MASTER` in
    /// its message plugs it into the bridge: two more requests saved. The
    /// peer cannot be born up: the kernel configures it before the pair is
    /// joined, and opening a veth without its peer fails (`ENOTCONN`). It is
    /// brought up from inside, with its address.
    pub fn add_veth_into(
        &mut self,
        name: &str,
        master: u32,
        peer: &VethPeer,
        mtu: Option<u32>,
    ) -> anyhow::Result<()> {
        let mut peer_msg = LinkMessage::default();
        peer_msg
            .attributes
            .push(LinkAttribute::IfName(peer.ifname.clone()));
        peer_msg
            .attributes
            .push(LinkAttribute::Address(peer.mac.to_vec()));
        peer_msg
            .attributes
            .push(LinkAttribute::NetNsPid(peer.pid.as_raw() as u32));
        let mut msg = LinkMessage::default();
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
        msg.attributes.push(LinkAttribute::IfName(name.into()));
        msg.attributes.push(LinkAttribute::Controller(master));
        if let Some(mtu) = mtu {
            msg.attributes.push(LinkAttribute::Mtu(mtu));
            peer_msg.attributes.push(LinkAttribute::Mtu(mtu));
        }
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer_msg))),
        ]));
        let what = format!(
            "add veth {name} master {master} peer {} in the netns of {}",
            peer.ifname, peer.pid
        );
        self.request(&what, RouteNetlinkMessage::NewLink(msg), create_flags())?;
        Ok(())
    }
    // ANCHOR_END: veth_into

    /// Change one interface with `RTM_SETLINK`: `attributes`, and the flags
    /// in `mask` set to those in `flags`.
    fn set_link(
        &mut self,
        what: &str,
        index: u32,
        flags: LinkFlags,
        mask: LinkFlags,
        attributes: Vec<LinkAttribute>,
    ) -> anyhow::Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.header.flags = flags;
        msg.header.change_mask = mask;
        msg.attributes = attributes;
        self.request(what, RouteNetlinkMessage::SetLink(msg), NLM_F_ACK)?;
        Ok(())
    }

    /// `ip link set dev INDEX up`
    pub fn set_up(&mut self, index: u32) -> anyhow::Result<()> {
        let what = format!("set link {index} up");
        self.set_link(&what, index, LinkFlags::Up, LinkFlags::Up, vec![])
    }

    /// `ip link set dev INDEX mtu MTU`
    pub fn set_mtu(&mut self, index: u32, mtu: u32) -> anyhow::Result<()> {
        let what = format!("set link {index} mtu {mtu}");
        let attrs = vec![LinkAttribute::Mtu(mtu)];
        self.set_link(&what, index, LinkFlags::empty(), LinkFlags::empty(), attrs)
    }

    /// `ip link del dev INDEX` (for a veth, both ends go).
    pub fn delete_link(&mut self, index: u32) -> anyhow::Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        let what = format!("delete link {index}");
        self.request(&what, RouteNetlinkMessage::DelLink(msg), NLM_F_ACK)?;
        Ok(())
    }

    /// `ip addr add ADDR/PREFIX dev INDEX`
    pub fn add_address(&mut self, index: u32, addr: Ipv4Addr, prefix: u8) -> anyhow::Result<()> {
        let mut msg = AddressMessage::default();
        msg.header.family = AddressFamily::Inet;
        msg.header.prefix_len = prefix;
        msg.header.index = index;
        msg.attributes.push(AddressAttribute::Local(addr.into()));
        msg.attributes.push(AddressAttribute::Address(addr.into()));
        let what = format!("add address {addr}/{prefix} to link {index}");
        self.request(&what, RouteNetlinkMessage::NewAddress(msg), create_flags())?;
        Ok(())
    }

    /// `ip route add default via GATEWAY`
    pub fn add_default_route(&mut self, gateway: Ipv4Addr) -> anyhow::Result<()> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = AddressFamily::Inet;
        msg.header.destination_prefix_length = 0;
        msg.header.table = RouteHeader::RT_TABLE_MAIN;
        msg.header.protocol = RouteProtocol::Boot;
        msg.header.scope = RouteScope::Universe;
        msg.header.kind = RouteType::Unicast;
        msg.attributes
            .push(RouteAttribute::Gateway(RouteAddress::Inet(gateway)));
        let what = format!("add default route via {gateway}");
        self.request(&what, RouteNetlinkMessage::NewRoute(msg), create_flags())?;
        Ok(())
    }

    /// The IPv4 destinations of the main routing table (`ip route show`),
    /// as (network, prefix length); the default route is left out.
    pub fn ipv4_routes(&mut self) -> anyhow::Result<Vec<(Ipv4Addr, u8)>> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = AddressFamily::Inet;
        let answers = self.request(
            "dump routes",
            RouteNetlinkMessage::GetRoute(msg),
            NLM_F_DUMP,
        )?;
        let mut routes = Vec::new();
        for answer in answers {
            let RouteNetlinkMessage::NewRoute(route) = answer else {
                continue;
            };
            let table = route
                .attributes
                .iter()
                .find_map(|a| match a {
                    RouteAttribute::Table(t) => Some(*t),
                    _ => None,
                })
                .unwrap_or(route.header.table as u32);
            let prefix = route.header.destination_prefix_length;
            if table != RouteHeader::RT_TABLE_MAIN as u32 || prefix == 0 {
                continue;
            }
            for attr in &route.attributes {
                if let RouteAttribute::Destination(RouteAddress::Inet(dst)) = attr {
                    routes.push((*dst, prefix));
                }
            }
        }
        Ok(routes)
    }
}

/// The container's end of a veth made by [`Rtnl::add_veth_into`].
#[derive(Debug, Clone)]
pub struct VethPeer {
    /// The process whose network namespace it is born in.
    pub pid: Pid,
    /// Its name there (`eth0`).
    pub ifname: String,
    pub mac: [u8; 6],
}

/// Flags for a request that creates something, as `ip ... add` sends:
/// fail with EEXIST rather than replace what is there.
fn create_flags() -> u16 {
    NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK
}

// ANCHOR: in_netns
/// Run `f` with the network namespace of process `pid` as its "current"
/// one, in a short-lived thread, and return its result.
///
/// setns(2) with `CLONE_NEWNET` moves only the calling *thread*. So a helper
/// thread enters the container's namespace, opens its netlink socket there
/// (which stays bound to that namespace), does its work and exits; the
/// rest of this process never leaves the host's namespace. This is what
/// `ip netns exec` and `nsenter --net` do, with a thread instead of a process.
pub fn in_netns_of<T: Send>(
    pid: Pid,
    f: impl FnOnce(&mut Rtnl) -> anyhow::Result<T> + Send,
) -> anyhow::Result<T> {
    let path = format!("/proc/{pid}/ns/net");
    let ns = std::fs::File::open(&path).with_context(|| format!("opening {path}"))?;
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                setns(ns.as_fd(), CloneFlags::CLONE_NEWNET)
                    .with_context(|| format!("setns({path}, CLONE_NEWNET)"))?;
                let mut rtnl = Rtnl::open()?;
                f(&mut rtnl)
            })
            .join()
            .unwrap_or_else(|_| bail!("the thread working in {path} panicked"))
    })
}
// ANCHOR_END: in_netns
