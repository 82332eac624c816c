//! # macvlan: a container straight on the host's wire
//!
//! A bridge network puts the containers behind the host: their packets go
//! through a veth, a bridge, the host's routing table and NAT before they
//! reach the wire, and the outside world sees only the host's address. A
//! **macvlan** network takes them out from behind it. Each container gets
//! a *child* of a real interface of the host, its **parent** (`eth0`): an
//! interface with a MAC address of its own that sends and receives on the
//! parent's wire directly. To the rest of the LAN the container looks like
//! one more machine plugged into the same switch, with its own MAC and its
//! own address in the LAN's subnet, using the LAN's router as its gateway.
//! No bridge, no veth, no NAT, no iptables rule: the kernel's macvlan driver
//! sorts the frames arriving on the parent by destination MAC and hands
//! each to its child.
//!
//! ```text
//!     LAN 192.168.1.0/24, router 192.168.1.254
//!   ------------------+---------------------------------------
//!                     | the wire
//!   host      +-------+--------+  eth0 192.168.1.100 (the parent)
//!             |       |        |
//!             |   macvlan driver: frames sorted by MAC
//!             |    /          \                            
//!   container eth0 .122       eth0 .123  container            
//!             02:42:c0:a8:01:7a  02:42:c0:a8:01:7b
//! ```
//!
//! [`plumb`] does, through netlink, what these commands do (`$PID` is the
//! container's first process):
//!
//! ```text
//! ip link add link eth0 name eth0 netns $PID address 02:42:c0:a8:01:7a \
//!     type macvlan mode bridge
//! nsenter --net=/proc/$PID/ns/net sh -c '
//!     ip addr add 192.168.1.122/24 dev eth0
//!     ip link set eth0 up
//!     ip route add default via 192.168.1.254'
//! ```
//!
//! As the veth of lab 05, the child is born in the container's namespace,
//! already named `eth0` (`IFLA_LINK` names the parent in the host's
//! namespace, `IFLA_NET_NS_PID` the namespace the child is registered in).
//!
//! ## Why the host cannot reach its own containers
//!
//! The course notes warn about it, and it surprises everyone once: from
//! the host, `ping 192.168.1.122` fails, and from the container, `ping
//! 192.168.1.100` (the parent's own address) fails too, although any other
//! machine on the LAN reaches both. The macvlan driver sits *below* the
//! parent's IP stack: a frame a child sends to another child of the same
//! parent is switched inside the driver (in bridge mode), and a frame to any
//! other MAC goes out on the wire. A frame for the parent's own MAC goes out
//! on the wire too, and the switch will not send a frame back out of the
//! port it came in on, so it never comes back up into the host. Nothing in
//! the kernel routes between the parent and its children. (The usual way
//! round it: give the host a macvlan child of its own, with an address, and
//! talk through that.)
//!
//! ## Modes
//!
//! `-o macvlan_mode=` chooses what the driver does with frames between two
//! children of one parent:
//!
//! - `bridge` (the default, docker's too): the driver switches them
//!   directly, as a bridge would. Containers on one parent reach each
//!   other; the LAN reaches all of them.
//! - `private`: the driver drops them, even those that come back from the
//!   wire. Children of one parent never reach each other, only the LAN:
//!   one container per "machine", isolated as if each had its own switch
//!   port with port isolation.
//!
//! (The kernel also has `vepa`, which sends everything to the switch and
//! relies on it to hairpin, and `passthru`, one child taking the parent
//! over. Dockyard offers the two the course notes use.)
//!
//! ## One parent, one network; VLAN sub-interfaces
//!
//! Two networks on one parent would be two subnets on one wire: as docker
//! does, a parent carries one macvlan network, and more networks need more
//! parents. On a real switch those are VLANs: `-o parent=eth0.10` names
//! the 802.1Q sub-interface of `eth0` for VLAN 10, which tags its frames so
//! the switch keeps them apart. This kernel has no 802.1Q support (it boots
//! with modules off and has none built in): [`check_parent`] says so, as it
//! asks the kernel in a throwaway namespace, rather than failing with a bare
//! "Operation not supported".
//!
//! The network's record is lab 05's usual state file ([`crate::ipam`]),
//! with its parent and mode in [`NetworkState::macvlan`]; its leases are
//! handed out and released as on a bridge network. It has no bridge of its
//! own and no firewall rules.

use std::net::Ipv4Addr;

use anyhow::{bail, Context};
use netlink_packet_core::{NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoMacVlan, InfoVlan, LinkAttribute, LinkInfo, LinkMessage, MacVlanMode,
};
use netlink_packet_route::RouteNetlinkMessage;
use nix::errno::Errno;
use nix::sched::{unshare, CloneFlags};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::bridge::{check_network_name, current_netns, load_network, Config, NetworkOptions};
use crate::ipam::{self, Cidr, Lease, NetworkState, StateDir};
use crate::netlink::{in_netns_of, is_errno, Rtnl};

/// `-o macvlan_mode=`: what the driver does between two children of one
/// parent (see the module's doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Children reach each other through the driver.
    #[default]
    Bridge,
    /// Children never reach each other.
    Private,
}

impl std::str::FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> Result<Mode, String> {
        match s {
            "" | "bridge" => Ok(Mode::Bridge),
            "private" => Ok(Mode::Private),
            // docker's words; it also knows vepa and passthru.
            _ => Err(format!(
                "requested macvlan mode '{s}' is not valid, 'bridge' mode is the macvlan driver \
                 default (dockyard offers bridge and private)"
            )),
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Bridge => "bridge",
            Mode::Private => "private",
        })
    }
}

/// What makes a network a macvlan network: kept in its state file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Macvlan {
    /// The host interface whose children the containers get (`-o parent=`).
    pub parent: String,
    pub mode: Mode,
    /// `--ip-range`: where addresses are handed out from when a container
    /// asks for none (`--ip` may name any address of the subnet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_range: Option<Cidr>,
}

// ANCHOR: check_parent
/// Refuse a parent that cannot carry a macvlan network, with the reason:
/// the loopback (it has no wire), one that does not exist, and a VLAN
/// sub-interface (`eth0.10`) that does not exist, which docker would make
/// and this kernel may not be able to.
pub fn check_parent(rtnl: &mut Rtnl, parent: &str) -> anyhow::Result<u32> {
    if parent.is_empty() {
        bail!("a macvlan network needs a parent interface: -o parent=IF");
    }
    if parent == "lo" {
        bail!("loopback interface is not a valid macvlan parent link");
    }
    if let Some(index) = rtnl.link_index(parent)? {
        return Ok(index);
    }
    let Some((base, vlan)) = vlan_parent(parent) else {
        bail!("-o parent interface was not found on the host: {parent}");
    };
    if rtnl.link_index(base)?.is_none() {
        bail!("-o parent interface was not found on the host: {base}");
    }
    if !vlan_supported()? {
        bail!(
            "-o parent={parent} names the 802.1Q VLAN {vlan} sub-interface of {base}, which does \
             not exist, and this kernel cannot make one (no 802.1Q VLAN support: \"Unknown \
             device type\"); use {base} itself as the parent, or a kernel with 8021q"
        );
    }
    bail!(
        "-o parent={parent}: the 802.1Q VLAN {vlan} sub-interface of {base} does not exist; \
         make it first (ip link add link {base} name {parent} type vlan id {vlan})"
    )
}
// ANCHOR_END: check_parent

/// `eth0.10` as (`eth0`, 10): docker's way of naming a VLAN sub-interface.
fn vlan_parent(name: &str) -> Option<(&str, u16)> {
    let (base, id) = name.rsplit_once('.')?;
    let id: u16 = id.parse().ok()?;
    (!base.is_empty() && (1..=4094).contains(&id)).then_some((base, id))
}

/// Whether the kernel can make 802.1Q VLAN sub-interfaces: try it, on a
/// bridge (this kernel has no `dummy` either), in a network namespace of a short-lived thread, which
/// goes with everything made in it. An interface kind the kernel does not
/// know is `EOPNOTSUPP` ("Unknown device type", says `ip`).
pub fn vlan_supported() -> anyhow::Result<bool> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                unshare(CloneFlags::CLONE_NEWNET).context("unshare(CLONE_NEWNET)")?;
                let mut rtnl = Rtnl::open()?;
                add_link(
                    &mut rtnl,
                    "add bridge dyprobe0",
                    "dyprobe0",
                    vec![],
                    InfoKind::Bridge,
                    None,
                )?;
                let lower = rtnl.require_link("dyprobe0")?;
                let vlan = InfoData::Vlan(vec![InfoVlan::Id(10)]);
                let made = add_link(
                    &mut rtnl,
                    "add vlan dyprobe0.10",
                    "dyprobe0.10",
                    vec![LinkAttribute::Link(lower)],
                    InfoKind::Vlan,
                    Some(vlan),
                );
                match made {
                    Ok(()) => Ok(true),
                    Err(e) if is_errno(&e, Errno::EOPNOTSUPP) => Ok(false),
                    Err(e) => Err(e),
                }
            })
            .join()
            .unwrap_or_else(|_| bail!("the thread probing for 802.1Q support panicked"))
    })
}

/// `ip link add NAME [attributes] type KIND [data]`.
fn add_link(
    rtnl: &mut Rtnl,
    what: &str,
    name: &str,
    mut attributes: Vec<LinkAttribute>,
    kind: InfoKind,
    data: Option<InfoData>,
) -> anyhow::Result<()> {
    let mut msg = LinkMessage::default();
    msg.attributes.push(LinkAttribute::IfName(name.into()));
    msg.attributes.append(&mut attributes);
    let mut info = vec![LinkInfo::Kind(kind)];
    info.extend(data.map(LinkInfo::Data));
    msg.attributes.push(LinkAttribute::LinkInfo(info));
    let flags = NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK;
    rtnl.request(what, RouteNetlinkMessage::NewLink(msg), flags)?;
    Ok(())
}

// ANCHOR: create_macvlan
/// `network create -d macvlan`: check the parent, choose the subnet (the
/// given one, else the first free one of the pools, as for a bridge), and
/// record the network. Nothing is made in the kernel until a container
/// joins: a macvlan network is only a parent, a subnet and a gateway that
/// already exists on the LAN.
pub fn create_macvlan(
    cfg: &Config,
    opts: &NetworkOptions,
    spec: &Macvlan,
) -> anyhow::Result<NetworkState> {
    check_network_name(&opts.name).map_err(anyhow::Error::msg)?;
    if opts.internal {
        bail!("dockyard's macvlan networks need a parent interface: --internal is not supported");
    }
    let store = StateDir::new(&cfg.state_dir);
    let lock = store.lock()?;
    let mut rtnl = Rtnl::open()?;
    if load_network(&store, &lock, &opts.name)?.is_some() {
        bail!("network with name {} already exists", opts.name);
    }
    check_parent(&mut rtnl, &spec.parent)?;
    let others = store.all(&lock)?;
    for o in &others {
        if o.macvlan.as_ref().is_some_and(|m| m.parent == spec.parent) {
            let id = &o.id[..o.id.len().min(12)];
            bail!(
                "network dm-{id} is already using parent interface {} (network {})",
                spec.parent,
                o.name
            );
        }
    }
    let subnet = match opts.subnet {
        Some(s) => s.subnet(),
        None => {
            let routes: Vec<Cidr> = rtnl
                .ipv4_routes()?
                .into_iter()
                .map(|(ip, prefix)| Cidr::new(ip, prefix))
                .collect();
            let taken: Vec<Cidr> = others.iter().map(|o| o.subnet).collect();
            ipam::choose_subnet(&cfg.pools, &routes, &taken)?
        }
    };
    let gateway = match opts.gateway {
        Some(g) if !subnet.contains(g) || g == subnet.network() || g == subnet.broadcast() => {
            bail!("gateway {g} is not a host address of subnet {subnet}")
        }
        Some(g) => g,
        None => subnet.nth(1).context("subnet too small")?,
    };
    if let Some(r) = spec.ip_range {
        if !subnet.contains(r.network()) || r.prefix < subnet.prefix {
            bail!("--ip-range {r} is not within subnet {subnet}");
        }
    }
    if let Some(o) = others.iter().find(|o| o.subnet.overlaps(&subnet)) {
        bail!(
            "Pool overlaps with other one on this address space: subnet {subnet} overlaps \
             network {}'s {}",
            o.name,
            o.subnet
        );
    }
    let net = NetworkState {
        name: opts.name.clone(),
        // No bridge: the containers' interfaces hang off the parent.
        bridge: String::new(),
        subnet,
        gateway,
        names: true,
        netns: current_netns()?,
        rules: vec![],
        leases: vec![],
        persistent: true,
        id: opts.id.clone(),
        created: opts.created.clone(),
        labels: opts.labels.clone(),
        options: opts.options.clone(),
        mtu: opts.mtu,
        internal: false,
        draining: vec![],
        macvlan: Some(Macvlan {
            ip_range: spec.ip_range.map(|r| r.subnet()),
            ..spec.clone()
        }),
        subnet_given: opts.subnet.is_some(),
    };
    store.save(&lock, &net)?;
    Ok(net)
}
// ANCHOR_END: create_macvlan

/// The address a new member gets: the one it asked for (`--ip`, anywhere
/// in the subnet), else the lowest free one of `--ip-range`, else `None`
/// (the lowest free one of the subnet, as on a bridge network).
pub(crate) fn wanted_ip(
    net: &NetworkState,
    spec: &Macvlan,
    asked: Option<Ipv4Addr>,
) -> anyhow::Result<Option<Ipv4Addr>> {
    if asked.is_some() {
        return Ok(asked);
    }
    let Some(range) = spec.ip_range else {
        return Ok(None);
    };
    let found = (0..)
        .map_while(|n| range.nth(n))
        .find(|ip| net.allocate(Some(*ip)).is_ok());
    match found {
        Some(ip) => Ok(Some(ip)),
        None => bail!(
            "no available IPv4 addresses on this network's address pools: {} (--ip-range {range})",
            net.name
        ),
    }
}

/// The parent's index, for a member about to join: the parent may have
/// gone since `network create` (a USB NIC unplugged, a test's veth).
pub(crate) fn parent_index(rtnl: &mut Rtnl, net: &NetworkState) -> anyhow::Result<u32> {
    let Some(spec) = &net.macvlan else {
        bail!("network {} is not a macvlan network", net.name);
    };
    rtnl.link_index(&spec.parent)?.with_context(|| {
        format!(
            "the parent interface {} of macvlan network {} no longer exists",
            spec.parent, net.name
        )
    })
}

// ANCHOR: plumb
/// The container's interface on a macvlan network: a child of the parent
/// whose index is `parent`, born in the namespace of `pid` as `ethN`, with
/// its MAC address and the network's mode; then, from inside, its address,
/// up, and (for its first network) the default route via the gateway.
pub(crate) fn plumb(
    rtnl: &mut Rtnl,
    net: &NetworkState,
    parent: u32,
    pid: Pid,
    lease: &Lease,
) -> anyhow::Result<()> {
    let mode = match net.macvlan.as_ref().map(|m| m.mode).unwrap_or_default() {
        Mode::Bridge => MacVlanMode::Bridge,
        Mode::Private => MacVlanMode::Private,
    };
    let mac = crate::mac_for(lease.ip);
    let mut attributes = vec![
        LinkAttribute::Link(parent),
        LinkAttribute::Address(mac.to_vec()),
        LinkAttribute::NetNsPid(pid.as_raw() as u32),
    ];
    if let Some(mtu) = net.mtu {
        attributes.push(LinkAttribute::Mtu(mtu));
    }
    let what = format!(
        "add macvlan {} (parent {parent}, mode {mode:?}) in the netns of {pid}",
        lease.ifname
    );
    let data = InfoData::MacVlan(vec![InfoMacVlan::Mode(mode)]);
    add_link(
        rtnl,
        &what,
        &lease.ifname,
        attributes,
        InfoKind::MacVlan,
        Some(data),
    )?;
    let (ip, prefix, gateway) = (lease.ip, net.subnet.prefix, net.gateway);
    let ifname = lease.ifname.clone();
    in_netns_of(pid, |inside| {
        let eth = inside.require_link(&ifname)?;
        inside.add_address(eth, ip, prefix)?;
        set_up_when_mac_free(inside, eth, &lease.mac)?;
        match inside.add_default_route(gateway) {
            Err(e) if is_errno(&e, Errno::EEXIST) => Ok(()),
            other => other,
        }
    })
    .with_context(|| format!("configuring {ifname} in the network namespace of {pid}"))
}
// ANCHOR_END: plumb

/// Bring the child up, once no other child of the parent has its MAC.
///
/// Two children of one parent cannot be up with one MAC address: the
/// driver could not tell their frames apart, and refuses the second with
/// `EADDRINUSE`. The MAC is made from the address, so a container given
/// the address of one that has just exited (`--ip`, as the course notes
/// do) meets the old child: the kernel deletes an exited container's
/// namespace, and the child in it, a moment *after* the exit, in a worker
/// of its own. (A bridge network's veths wait in the network's `draining`
/// list for the same reason; a macvlan child cannot be seen from the host
/// to be waited for, so this waits here.) Up to 5 s, then the reason: the
/// namespace lives on, held by another container that joined it
/// (`--network container:`).
fn set_up_when_mac_free(inside: &mut Rtnl, eth: u32, mac: &str) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match inside.set_up(eth) {
            Err(e) if is_errno(&e, Errno::EADDRINUSE) && std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) if is_errno(&e, Errno::EADDRINUSE) => {
                return Err(e).with_context(|| {
                    format!(
                        "another interface on the parent still has MAC address {mac} (that of \
                         an exited container with this address, whose network namespace \
                         another container still holds?)"
                    )
                })
            }
            other => return other,
        }
    }
}

/// Take a live container's macvlan child away (`network disconnect`): it
/// lives in the container's namespace only, so it is deleted from there.
/// A container that is gone took it with its namespace.
pub(crate) fn unplug(lease: &Lease) -> anyhow::Result<()> {
    if !lease.alive() {
        return Ok(());
    }
    let ifname = lease.ifname.clone();
    in_netns_of(Pid::from_raw(lease.pid), |inside| {
        match inside.link_index(&ifname)? {
            Some(index) => match inside.delete_link(index) {
                Err(e) if !is_errno(&e, Errno::ENODEV) => Err(e),
                _ => Ok(()),
            },
            None => Ok(()),
        }
    })
    .with_context(|| {
        format!(
            "deleting {ifname} in the network namespace of {}",
            lease.pid
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_like_docker_macvlan_mode() {
        assert_eq!("".parse::<Mode>().unwrap(), Mode::Bridge);
        assert_eq!("bridge".parse::<Mode>().unwrap(), Mode::Bridge);
        assert_eq!("private".parse::<Mode>().unwrap(), Mode::Private);
        assert!("vepa"
            .parse::<Mode>()
            .unwrap_err()
            .starts_with("requested macvlan mode 'vepa' is not valid"));
    }

    /// Against the kernel, in a network namespace of this test's thread
    /// alone (libtest gives each test its own thread).
    #[test]
    fn parents_are_checked_against_the_kernel() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root (scripts/test runs it as root)");
            return;
        }
        unshare(CloneFlags::CLONE_NEWNET).unwrap();
        let mut rtnl = Rtnl::open().unwrap();
        rtnl.add_bridge("dytest0").unwrap();
        let index = rtnl.require_link("dytest0").unwrap();
        assert_eq!(check_parent(&mut rtnl, "dytest0").unwrap(), index);
        let err = |p: &str| {
            check_parent(&mut Rtnl::open().unwrap(), p)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err("nosuch0"),
            "-o parent interface was not found on the host: nosuch0"
        );
        assert_eq!(
            err("nosuch0.10"),
            "-o parent interface was not found on the host: nosuch0"
        );
        assert_eq!(
            err("lo"),
            "loopback interface is not a valid macvlan parent link"
        );
        // This kernel has no 802.1Q (see docs/cross-host.md); another one
        // is told to make the sub-interface first. Either way, nothing new.
        let vlan = err("dytest0.10");
        match vlan_supported().unwrap() {
            false => assert!(vlan.contains("this kernel cannot make one"), "{vlan}"),
            true => assert!(vlan.contains("make it first"), "{vlan}"),
        }
        assert_eq!(rtnl.link_index("dytest0.10").unwrap(), None);
        // A macvlan network has no bridge: its record's empty name names
        // no interface, which the bridge code's lookups rely on.
        assert_eq!(rtnl.link_index("").unwrap(), None);
    }

    #[test]
    fn vlan_parents_are_base_dot_id() {
        assert_eq!(vlan_parent("eth0.10"), Some(("eth0", 10)));
        assert_eq!(vlan_parent("eth0"), None);
        assert_eq!(vlan_parent("eth0.0"), None);
        assert_eq!(vlan_parent("eth0.4095"), None);
        assert_eq!(vlan_parent(".10"), None);
    }
}
