//! # Across hosts: a bridge network stretched over VXLAN
//!
//! A bridge network lives on one host: its containers' veths all plug into
//! one software switch. To let a container on host A and one on host B sit
//! on the *same* Ethernet segment, the hosts carry the segment's frames
//! between them inside UDP datagrams: **VXLAN** (RFC 7348). Each host gets
//! a VXLAN device, a *VTEP* (VXLAN tunnel end point), plugged into the
//! network's bridge as one more port. A frame the bridge sends out of that
//! port is wrapped, whole, in a VXLAN header carrying the network's 24-bit
//! **VNI** (its segment number), then in UDP (port 4789), IP (from this
//! host's underlay address to the other host's) and Ethernet, and sent on
//! the **underlay**, the hosts' real network. The other host's VTEP
//! unwraps it and hands the inner frame to its own bridge, which delivers
//! it to the container's veth as if the two had been plugged into one
//! switch.
//!
//! ```text
//!   host A (underlay 10.99.0.1)               host B (underlay 10.99.0.2)
//!  +-----------------------------+           +-----------------------------+
//!  | c1 eth0 10.0.0.2 -- dyv..   |           |   dyv.. -- eth0 10.0.0.3 c2 |
//!  |                     |       |           |     |                       |
//!  |        dyo256 (bridge)      |           |  dyo256 (bridge)            |
//!  |                     |       |           |     |                       |
//!  |        dyx256 (vxlan, vni 256)          |  dyx256 (vxlan, vni 256)    |
//!  +---------------------|-------+           +-----|-----------------------+
//!                        +== UDP 4789 on the underlay ==+
//!
//!  on the wire: | Eth | IP 10.99.0.1 > .2 | UDP 4789 | VXLAN vni 256 | Eth | IP 10.0.0.2 > .3 | ... |
//!               \_____________ 50 bytes of outer headers ____________/
//! ```
//!
//! What [`join`] and [`program`] do, by hand:
//!
//! ```text
//! ip link add dyo256 type bridge; ip addr add 10.0.0.1/24 dev dyo256; ip link set dyo256 mtu 1450 up
//! ip link add dyx256 type vxlan id 256 local 10.99.0.1 dev eth0 dstport 4789 nolearning proxy
//! ip link set dyx256 master dyo256 mtu 1450 up
//! # for each container on another host (from the cluster store):
//! bridge fdb add 02:42:0a:00:00:03 dev dyx256 dst 10.99.0.2 self permanent
//! ip neigh add 10.0.0.3 lladdr 02:42:0a:00:00:03 dev dyx256 nud permanent
//! ```
//!
//! ## Why 50 bytes less MTU
//!
//! The outer headers cost 14 (Ethernet) + 20 (IPv4) + 8 (UDP) + 8 (VXLAN)
//! = 50 bytes. A 1500-byte inner packet becomes a 1550-byte outer one,
//! which a 1500-byte underlay cannot carry, and VXLAN packets are not
//! fragmented: they are dropped, silently. So everything on the overlay
//! (the bridge, the VTEP and every container's `eth0`) gets the underlay's
//! MTU minus 50, 1450 on a 1500 underlay; the container's TCP then never
//! sends a segment that would not fit.
//!
//! ## Why static forwarding entries, and no learning
//!
//! A plain VXLAN device learns like a switch: it floods unknown frames
//! (and every ARP broadcast) to all peers, or to a multicast group, and
//! remembers which VTEP answered. Docker's overlay driver does not rely on
//! that, and neither do we: every host already knows, from the cluster
//! store, each remote container's IP address, MAC address and host. So
//! the device is made with `nolearning` and `proxy`, and two entries are
//! programmed per remote container: an **fdb** entry (this MAC is behind
//! that VTEP: where to send the frame) and a permanent **neighbour**
//! entry (this IP has that MAC), which the VTEP itself uses to answer the
//! container's ARP request (`proxy`): no broadcast ever crosses the
//! underlay, and a host that is not told about an endpoint sends it
//! nothing.
//!
//! Every function here acts on the calling thread's network namespace,
//! as the rest of the lab does.

use std::net::Ipv4Addr;

use anyhow::{bail, Context};
use netlink_packet_core::{NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVxlan, LinkAttribute, LinkInfo, LinkMessage,
};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use nix::errno::Errno;

use crate::ipam::NetworkState;
use crate::names::HostEntry;
use crate::netlink::{is_errno, Rtnl};
use crate::{Config, NetworkOptions};

/// The IANA port for VXLAN (Linux's own default, 8472, predates it).
pub const VXLAN_PORT: u16 = 4789;

/// Bytes of outer headers VXLAN adds: Ethernet 14, IPv4 20, UDP 8, VXLAN 8.
pub const VXLAN_OVERHEAD: u32 = 50;

/// The host's side of the underlay: the interface that holds the address
/// other hosts reach this one at (daemon.json's `cluster-advertise`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Underlay {
    pub ifname: String,
    pub index: u32,
    pub address: Ipv4Addr,
    pub mtu: u32,
}

impl Underlay {
    /// The MTU of everything on an overlay over this underlay.
    pub fn overlay_mtu(&self) -> u32 {
        self.mtu.saturating_sub(VXLAN_OVERHEAD)
    }
}

/// Find the underlay from an interface name (`eth0`) or one of this host's
/// IPv4 addresses (`10.99.0.1`): its name, index, address and MTU.
pub fn underlay(advertise: &str) -> anyhow::Result<Underlay> {
    let wanted_ip: Option<Ipv4Addr> = advertise.parse().ok();
    let addrs = nix::ifaddrs::getifaddrs().context("getifaddrs")?;
    let found = addrs.into_iter().find_map(|a| {
        let ip = a.address?.as_sockaddr_in()?.ip();
        let hit = match wanted_ip {
            Some(w) => w == ip,
            None => a.interface_name == advertise,
        };
        hit.then_some((a.interface_name, ip))
    });
    let Some((ifname, address)) = found else {
        bail!(
            "cluster-advertise {advertise:?}: no interface of this host has that name or IPv4 \
             address"
        );
    };
    let mut rtnl = Rtnl::open()?;
    let (index, mtu) = link_mtu(&mut rtnl, &ifname)?;
    Ok(Underlay {
        ifname,
        index,
        address,
        mtu,
    })
}

/// `ip link show NAME`: its index and MTU.
fn link_mtu(rtnl: &mut Rtnl, name: &str) -> anyhow::Result<(u32, u32)> {
    let mut msg = LinkMessage::default();
    msg.attributes.push(LinkAttribute::IfName(name.into()));
    let answers = rtnl.request(
        &format!("get link {name}"),
        RouteNetlinkMessage::GetLink(msg),
        NLM_F_ACK,
    )?;
    answers
        .into_iter()
        .find_map(|a| match a {
            RouteNetlinkMessage::NewLink(l) => {
                let mtu = l.attributes.iter().find_map(|x| match x {
                    LinkAttribute::Mtu(m) => Some(*m),
                    _ => None,
                });
                Some((l.header.index, mtu.unwrap_or(1500)))
            }
            _ => None,
        })
        .with_context(|| format!("interface {name} does not exist"))
}

/// One overlay network on this host: its segment number and the names of
/// its two interfaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vxlan {
    pub vni: u32,
    /// The network's bridge (`dyo256`).
    pub bridge: String,
    /// The VTEP (`dyx256`).
    pub device: String,
}

impl Vxlan {
    /// The interface names for segment `vni`: short enough for IFNAMSIZ.
    pub fn for_vni(vni: u32) -> Vxlan {
        Vxlan {
            vni,
            bridge: format!("dyo{vni}"),
            device: format!("dyx{vni}"),
        }
    }
}

// ANCHOR: vxlan_device
/// `ip link add DEVICE type vxlan id VNI local ADDR dev UNDERLAY dstport
/// 4789 nolearning proxy`, then `ip link set DEVICE master BRIDGE mtu MTU up`.
fn add_vxlan(rtnl: &mut Rtnl, vx: &Vxlan, under: &Underlay, bridge: u32) -> anyhow::Result<()> {
    let mut msg = LinkMessage::default();
    msg.attributes
        .push(LinkAttribute::IfName(vx.device.clone()));
    msg.attributes.push(LinkAttribute::Mtu(under.overlay_mtu()));
    msg.attributes.push(LinkAttribute::Controller(bridge));
    msg.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(InfoKind::Vxlan),
        LinkInfo::Data(InfoData::Vxlan(vec![
            InfoVxlan::Id(vx.vni),
            InfoVxlan::Local(under.address),
            InfoVxlan::Link(under.index),
            InfoVxlan::Port(VXLAN_PORT),
            // Static entries only (see the module's doc)...
            InfoVxlan::Learning(false),
            // ...and ARP answered here, from the neighbour table.
            InfoVxlan::Proxy(true),
        ])),
    ]));
    let what = format!("add vxlan {} id {}", vx.device, vx.vni);
    rtnl.request(
        &what,
        RouteNetlinkMessage::NewLink(msg),
        NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK,
    )?;
    let index = rtnl.require_link(&vx.device)?;
    rtnl.set_up(index)
}
// ANCHOR_END: vxlan_device

/// Make the overlay network `opts` on this host: lab 05's bridge network
/// (internal: it has no way out, see below) with the overlay's MTU, and the
/// VTEP as a port of its bridge. If the VTEP cannot be made, the network
/// goes again.
///
/// Internal, because an overlay spans hosts: a container's packets to the
/// outside world would leave through whichever host it runs on, and docker
/// gives each container a second interface on a local bridge for that
/// (`docker_gwbridge`). Dockyard's overlay containers have no such
/// interface: they reach each other and nothing else.
pub fn join(
    cfg: &Config,
    opts: &NetworkOptions,
    vx: &Vxlan,
    under: &Underlay,
) -> anyhow::Result<NetworkState> {
    let opts = NetworkOptions {
        bridge: Some(vx.bridge.clone()),
        mtu: Some(under.overlay_mtu()),
        internal: true,
        persistent: true,
        ..opts.clone()
    };
    let net = crate::create(cfg, &opts)?;
    let made = (|| {
        let mut rtnl = Rtnl::open()?;
        let bridge = rtnl.require_link(&vx.bridge)?;
        add_vxlan(&mut rtnl, vx, under, bridge)
    })();
    if let Err(e) = made {
        let _ = crate::remove(cfg, &opts.name);
        return Err(e.context(format!(
            "making the VXLAN device {} of network {}",
            vx.device, opts.name
        )));
    }
    Ok(net)
}

/// Take the overlay network `name` off this host: its VTEP (and with it
/// every fdb and neighbour entry on it), then lab 05's network. Refused
/// while a container of this host is on it.
pub fn leave(cfg: &Config, name: &str, vx: &Vxlan) -> anyhow::Result<()> {
    let nets = crate::networks(cfg)?;
    if let Some(n) = nets.iter().find(|n| n.name == name) {
        if n.leases.iter().any(crate::ipam::Lease::alive) {
            // lab 05 says who, in docker's words.
            return crate::remove(cfg, name);
        }
    }
    let mut rtnl = Rtnl::open()?;
    if let Some(index) = rtnl.link_index(&vx.device)? {
        rtnl.delete_link(index)?;
    }
    match crate::remove(cfg, name) {
        Err(e) if e.to_string().ends_with("not found") => Ok(()),
        other => other,
    }
}

/// A container on another host, as the cluster store describes it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Remote {
    pub ip: Ipv4Addr,
    pub mac: [u8; 6],
    /// Its host's underlay address: where its frames go.
    pub vtep: Ipv4Addr,
    /// The names its peers resolve (its container name); may be empty
    /// until its host has started it.
    pub names: Vec<String>,
}

// ANCHOR: program
/// Bring the VTEP's forwarding entries from `before` to `after`: add (or
/// replace) an fdb and a neighbour entry for each remote container in
/// `after`, delete those of the ones only in `before`.
pub fn program(vx: &Vxlan, before: &[Remote], after: &[Remote]) -> anyhow::Result<()> {
    let mut rtnl = Rtnl::open()?;
    let dev = rtnl.require_link(&vx.device)?;
    for gone in before
        .iter()
        .filter(|r| !after.iter().any(|a| a.ip == r.ip))
    {
        for msg in entries(dev, gone) {
            match rtnl.request(
                &format!("delete entry of {} on {}", gone.ip, vx.device),
                RouteNetlinkMessage::DelNeighbour(msg),
                NLM_F_ACK,
            ) {
                Err(e) if is_errno(&e, Errno::ENOENT) => {}
                other => drop(other?),
            }
        }
    }
    for r in after.iter().filter(|r| !before.contains(r)) {
        for msg in entries(dev, r) {
            rtnl.request(
                &format!("add entry of {} via {} on {}", r.ip, r.vtep, vx.device),
                RouteNetlinkMessage::NewNeighbour(msg),
                NLM_F_CREATE | NLM_F_REPLACE | NLM_F_ACK,
            )?;
        }
    }
    Ok(())
}

/// The remote containers the kernel holds entries for on the VTEP, read
/// back from it (`bridge fdb show dev DEV` and `ip neigh show dev DEV nud
/// permanent`): what a previous run of the service programmed. A service
/// remembers what it programmed only in memory; when it starts again it
/// begins from this list, so that [`program`] also deletes the entries of
/// containers that went away while it was down. A container's MAC is made
/// from its address (`mac_for`), so an fdb entry alone names its address
/// too. Names are not in the kernel: they come back empty.
pub fn programmed(vx: &Vxlan) -> anyhow::Result<Vec<Remote>> {
    let mut rtnl = Rtnl::open()?;
    let Some(dev) = rtnl.link_index(&vx.device)? else {
        return Ok(Vec::new());
    };
    let mut found: Vec<Remote> = Vec::new();
    for family in [AddressFamily::Bridge, AddressFamily::Inet] {
        let mut msg = NeighbourMessage::default();
        msg.header.family = family;
        msg.header.ifindex = dev;
        let answers = rtnl.request(
            &format!("dump the entries of {}", vx.device),
            RouteNetlinkMessage::GetNeighbour(msg),
            NLM_F_DUMP,
        )?;
        for answer in answers {
            let RouteNetlinkMessage::NewNeighbour(n) = answer else {
                continue;
            };
            // The dump may hold other devices' entries; only ours, and only
            // permanent ones (what `program` adds).
            if n.header.ifindex != dev || n.header.state != NeighbourState::Permanent {
                continue;
            }
            let (mut mac, mut dst) = (None, None);
            for attr in &n.attributes {
                match attr {
                    NeighbourAttribute::LinkLayerAddress(m) => {
                        mac = <[u8; 6]>::try_from(&m[..]).ok()
                    }
                    NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => dst = Some(*a),
                    _ => {}
                }
            }
            let Some(mac) = mac.filter(|m| m[0] == 0x02 && m[1] == 0x42) else {
                continue;
            };
            // fdb: the MAC and its host; neighbour: the address and MAC.
            let (ip, vtep) = match family {
                AddressFamily::Bridge => (Ipv4Addr::new(mac[2], mac[3], mac[4], mac[5]), dst),
                _ => match dst {
                    Some(ip) => (ip, None),
                    None => continue,
                },
            };
            match found.iter_mut().find(|r| r.ip == ip) {
                Some(r) => r.vtep = vtep.unwrap_or(r.vtep),
                None => found.push(Remote {
                    ip,
                    mac,
                    vtep: vtep.unwrap_or(Ipv4Addr::UNSPECIFIED),
                    names: Vec::new(),
                }),
            }
        }
    }
    found.sort();
    Ok(found)
}

/// The two entries for one remote container on the VTEP `dev`:
/// `bridge fdb add MAC dev DEV dst VTEP self permanent` (family
/// AF_BRIDGE, flag NTF_SELF: the VXLAN driver's own table, not the
/// bridge's) and `ip neigh add IP lladdr MAC dev DEV nud permanent`.
fn entries(dev: u32, r: &Remote) -> [NeighbourMessage; 2] {
    let mut fdb = NeighbourMessage::default();
    fdb.header.family = AddressFamily::Bridge;
    fdb.header.ifindex = dev;
    fdb.header.state = NeighbourState::Permanent;
    fdb.header.flags = NeighbourFlags::Own;
    fdb.attributes
        .push(NeighbourAttribute::LinkLayerAddress(r.mac.to_vec()));
    fdb.attributes
        .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(
            r.vtep,
        )));
    let mut neigh = NeighbourMessage::default();
    neigh.header.family = AddressFamily::Inet;
    neigh.header.ifindex = dev;
    neigh.header.state = NeighbourState::Permanent;
    neigh
        .attributes
        .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(
            r.ip,
        )));
    neigh
        .attributes
        .push(NeighbourAttribute::LinkLayerAddress(r.mac.to_vec()));
    [fdb, neigh]
}
// ANCHOR_END: program

/// Rewrite the hosts file of every live member of the network `name` on
/// this host: what lab 05 gives it (itself, its local peers, its
/// `--add-host` entries) and then the `remote` containers, so that names
/// resolve across hosts. A file already right is left alone. Returns how
/// many were rewritten.
pub fn write_hosts(cfg: &Config, name: &str, remote: &[Remote]) -> anyhow::Result<usize> {
    let all = crate::networks(cfg)?;
    let Some(net) = all.iter().find(|n| n.name == name) else {
        return Ok(0);
    };
    let extra: Vec<HostEntry> = remote
        .iter()
        .filter(|r| !r.names.is_empty())
        .map(|r| HostEntry {
            ip: r.ip,
            names: r.names.clone(),
        })
        .collect();
    let mut written = 0;
    for lease in net.leases.iter().filter(|l| l.alive()) {
        let Some(dir) = &lease.etc_dir else { continue };
        let mut text = crate::hosts_of(&all, lease.pid);
        for e in &extra {
            text.push_str(&format!("{}\t{}\n", e.ip, e.names.join(" ")));
        }
        let path = dir.join("hosts");
        if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            crate::names::write_in_place(&path, &text)?;
            written += 1;
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_overlay_mtu_leaves_room_for_the_outer_headers() {
        let u = Underlay {
            ifname: "eth0".into(),
            index: 2,
            address: Ipv4Addr::new(10, 99, 0, 1),
            mtu: 1500,
        };
        assert_eq!(u.overlay_mtu(), 1450);
        assert_eq!(14 + 20 + 8 + 8, VXLAN_OVERHEAD);
    }

    #[test]
    fn interface_names_fit_ifnamsiz() {
        let vx = Vxlan::for_vni(16_777_215);
        assert!(vx.bridge.len() <= 15 && vx.device.len() <= 15, "{vx:?}");
        assert_ne!(vx.bridge, vx.device);
    }
}
