//! A container's network endpoint: its end of a veth pair on a network's
//! bridge, its address and MAC, its published ports and its names, made by
//! [`attach`] and taken down by [`detach`], [`disconnect`] and [`gc`]. For a
//! container whose first process is `$PID`, given 172.17.0.2 on `bridge`:
//!
//! ```text
//! ip link add dyv$PID master dockyard0 up type veth \
//!     peer name eth0 address 02:42:ac:11:00:02 netns $PID
//! nsenter --net=/proc/$PID/ns/net sh -c '
//!     ip addr add 172.17.0.2/16 dev eth0
//!     ip link set eth0 up
//!     ip route add default via 172.17.0.1'
//! iptables -t nat -A OUTPUT -p tcp -m addrtype --dst-type LOCAL --dport 8080 \
//!          -j DNAT --to-destination 172.17.0.2:80    # -p 8080:80
//! ```
//!
//! Its address is a lease in the network's state file ([`crate::ipam`]),
//! saved before anything is made for it, so that a crash leaves a record
//! for [`gc`]. The network itself (its bridge and rules) is `bridge.rs`'s,
//! made here on first use. Taking an endpoint down leaves the veth to the
//! kernel, which deletes it with the container's namespace: see
//! [`release`].

use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::str::FromStr;

use anyhow::{bail, Context};
use nix::errno::Errno;
use nix::sched::{setns, CloneFlags};
use nix::unistd::Pid;

use crate::bridge::{
    bring_up, check_network_name, create_network, kept, load_network, outdated_default,
    remove_network, Config, NetworkOptions,
};
use crate::firewall;
use crate::ipam::{self, Cidr, Draining, Lease, NetworkState, StateDir, StateLock};
use crate::macvlan;
use crate::names::{self, EtcFiles, HostEntry};
use crate::netlink::{in_netns_of, is_errno, Rtnl, VethPeer};
use crate::ports::{self, PortMapping, PortSpec};

/// `--network`: which network stack the container gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkMode {
    /// Its own namespace, with only `lo`.
    None,
    /// The host's namespace.
    Host,
    /// Its own namespace, wired to the bridge of the network so named.
    Bridge(String),
    /// The namespace of another container's process.
    Container(Pid),
}

impl NetworkMode {
    /// The namespaces to give lab 02's `spawn` (from `base`, usually its
    /// `DEFAULT_NAMESPACES`): `host` and `container:` create no network
    /// namespace.
    pub fn namespaces(&self, base: CloneFlags) -> CloneFlags {
        match self {
            NetworkMode::Host | NetworkMode::Container(_) => base - CloneFlags::CLONE_NEWNET,
            NetworkMode::None | NetworkMode::Bridge(_) => base | CloneFlags::CLONE_NEWNET,
        }
    }
}

impl FromStr for NetworkMode {
    type Err = String;

    fn from_str(s: &str) -> Result<NetworkMode, String> {
        Ok(match s {
            "none" => NetworkMode::None,
            "host" => NetworkMode::Host,
            "" => return Err("empty network name".into()),
            _ => match s.strip_prefix("container:") {
                Some(pid) => NetworkMode::Container(Pid::from_raw(pid.parse().map_err(|_| {
                    format!("{s:?}: the lab joins a container by its PID (container:PID)")
                })?)),
                None => {
                    check_network_name(s)?;
                    NetworkMode::Bridge(s.to_string())
                }
            },
        })
    }
}

// ANCHOR: join
/// `--network container:PID`: move the calling thread into the network
/// namespace of process `pid`. Call it before lab 02's `spawn`, with
/// [`NetworkMode::namespaces`] leaving `CLONE_NEWNET` out: the child is then
/// born in that namespace.
///
/// With a user namespace, root in the new container has no capability over
/// the joined network namespace, which belongs to the other container's
/// user namespace: it can use it (connect, listen above port 1023), not
/// configure it or open raw sockets (ping). Docker shares one user namespace
/// between all its containers (`userns-remap`), so this does not arise there.
pub fn join_netns_of(pid: Pid) -> anyhow::Result<()> {
    let path = format!("/proc/{pid}/ns/net");
    let ns = std::fs::File::open(&path).with_context(|| format!("opening {path}"))?;
    setns(ns.as_fd(), CloneFlags::CLONE_NEWNET)
        .with_context(|| format!("setns({path}, CLONE_NEWNET)"))
}
// ANCHOR_END: join

/// What a container asks of its network ([`attach`]).
#[derive(Debug, Clone, Default)]
pub struct AttachOptions {
    /// The network's name ([`DEFAULT_NETWORK`] or a user-defined one); it is
    /// created on first use unless `must_exist`.
    ///
    /// [`DEFAULT_NETWORK`]: crate::DEFAULT_NETWORK
    pub network: String,
    /// Refuse a network that was not made with [`create`] (docker's
    /// "network NAME not found") instead of making it now.
    ///
    /// [`create`]: crate::create
    pub must_exist: bool,
    /// The bridge interface, for a network created now. Default:
    /// [`Config::default_bridge`] for the default network, `dy-NAME` for
    /// others.
    pub bridge: Option<String>,
    /// The subnet, for a user-defined network created now.
    pub subnet: Option<Cidr>,
    /// A fixed address (`--ip`) instead of the next free one.
    pub ip: Option<Ipv4Addr>,
    /// The container's name, which its peers on a user-defined network can
    /// resolve.
    pub name: Option<String>,
    /// Its hostname, which it resolves itself.
    pub hostname: String,
    /// Its domain name (`--domainname`): with it, its own hosts line names
    /// `HOSTNAME.DOMAINNAME` first (see [`hosts_of`]).
    pub domainname: String,
    /// Ports to publish (`-p`, `-P`).
    pub publish: Vec<PortSpec>,
    /// Where to write `hosts`, `hostname` and `resolv.conf`; `None` writes
    /// nothing (see [`etc_files`] to get them as text).
    pub etc_dir: Option<PathBuf>,
    /// More names for it on this network (`--network-alias`).
    pub aliases: Vec<String>,
    /// The container's ID, recorded for `network inspect`.
    pub container_id: Option<String>,
    /// `--add-host NAME:IP`; the IP may be `host-gateway`, the network's
    /// gateway (the host's address on the bridge).
    pub extra_hosts: Vec<(String, String)>,
    /// `--dns`, `--dns-search`, `--dns-option`.
    pub dns: names::Dns,
}

/// A container's place on a network: what [`attach`] made and [`detach`]
/// takes down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub network: String,
    pub pid: Pid,
    pub bridge: String,
    /// Its address, with the subnet's prefix length.
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
    /// The host end of the veth pair.
    pub veth: String,
    pub ports: Vec<PortMapping>,
    /// The interface inside (`eth0`, `eth1`...) and its MAC address.
    pub ifname: String,
    pub mac: String,
}

// ANCHOR: plumb
/// The veth pair: the host end on the bridge whose index is `bridge`, the
/// other end born in the namespace of `pid` as `eth0` (or `eth1`... for a
/// later network) with its MAC address; then, from inside, the address
/// and, unless the container has one already, the default route.
fn plumb(
    rtnl: &mut Rtnl,
    net: &NetworkState,
    bridge: u32,
    pid: Pid,
    lease: &Lease,
) -> anyhow::Result<()> {
    let peer = VethPeer {
        pid,
        ifname: lease.ifname.clone(),
        mac: mac_for(lease.ip),
    };
    rtnl.add_veth_into(&lease.veth, bridge, &peer, net.mtu)?;
    // The rest happens inside, where the interface already has its name.
    // (`lo` is lab 02's: the container brings it up itself.)
    let (ip, prefix, gateway) = (lease.ip, net.subnet.prefix, net.gateway);
    let (ifname, internal) = (lease.ifname.clone(), net.internal);
    in_netns_of(pid, |inside| {
        let eth = inside.require_link(&ifname)?;
        inside.add_address(eth, ip, prefix)?;
        inside.set_up(eth)?;
        // An internal network offers no way out; a second network keeps
        // the first one's default route, as Docker's does.
        if internal {
            return Ok(());
        }
        match inside.add_default_route(gateway) {
            Err(e) if is_errno(&e, Errno::EEXIST) => Ok(()),
            other => other,
        }
    })
    .with_context(|| format!("configuring {ifname} in the network namespace of {pid}"))
}
// ANCHOR_END: plumb

/// Docker's MAC addresses: 02:42 (locally administered, unicast) and the
/// four bytes of the IP address, so that each address has its own MAC.
pub fn mac_for(ip: Ipv4Addr) -> [u8; 6] {
    let [a, b, c, d] = ip.octets();
    [0x02, 0x42, a, b, c, d]
}

/// The hosts-file line for a lease: its hostname, its name if it has one,
/// and its aliases on that network.
fn host_entry(lease: &Lease) -> HostEntry {
    let mut names = vec![lease.hostname.clone()];
    for n in lease.name.iter().chain(&lease.aliases) {
        if !names.contains(n) {
            names.push(n.clone());
        }
    }
    HostEntry {
        ip: lease.ip,
        names,
    }
}

/// The hosts-file line of a container's own address, as Docker writes it
/// (libnetwork's sandbox hosts file): its fully qualified name first,
/// `HOSTNAME.DOMAINNAME` with `--domainname` (or a hostname that has dots
/// itself, `-h web.example.com`), then the bare hostname, the part before
/// the first dot; then, as on every line, its name and aliases.
fn own_entry(lease: &Lease) -> HostEntry {
    let mut fqdn = lease.hostname.clone();
    if !lease.domainname.is_empty() {
        fqdn = format!("{fqdn}.{}", lease.domainname);
    }
    let mut entry = host_entry(lease);
    let mut names = vec![fqdn.clone()];
    if let Some((bare, _)) = fqdn.split_once('.') {
        names.push(bare.to_string());
    }
    for n in entry.names.drain(..) {
        if !names.contains(&n) {
            names.push(n);
        }
    }
    entry.names = names;
    entry
}

// ANCHOR: hosts_of
/// The hosts file of the container whose first process is `pid`: itself
/// on each of its networks, every member of its user-defined networks
/// (with their aliases there), and its `--add-host` entries. A container
/// on two networks thus resolves the members of both; one that is on
/// neither of a pair of networks resolves no one on them.
pub fn hosts_of(all: &[NetworkState], pid: i32) -> String {
    let mut own = Vec::new();
    let mut others = Vec::new();
    let mut extra = Vec::new();
    for net in all {
        let Some(me) = net.leases.iter().find(|l| l.pid == pid) else {
            continue;
        };
        own.push((me.ifname.clone(), own_entry(me)));
        if extra.is_empty() {
            extra = me
                .extra_hosts
                .iter()
                .map(|(name, ip)| HostEntry {
                    ip: *ip,
                    names: vec![name.clone()],
                })
                .collect();
        }
        if net.names {
            others.extend(net.leases.iter().filter(|l| l.pid != pid).map(host_entry));
        }
    }
    // Its own addresses in interface order: eth0's first.
    own.sort_by(|a, b| a.0.cmp(&b.0));
    let mut own = own.into_iter().map(|(_, entry)| entry);
    let first = own.next();
    let rest: Vec<HostEntry> = own.chain(others).chain(extra).collect();
    names::hosts(first.as_ref(), &rest)
}
// ANCHOR_END: hosts_of

/// The three files for a member of `net` (the only network it is on).
pub fn etc_files(net: &NetworkState, lease: &Lease) -> EtcFiles {
    etc_files_with(std::slice::from_ref(net), lease, &names::Dns::default())
}

/// The three files for the container of `lease`, on the networks `all`.
pub fn etc_files_with(all: &[NetworkState], lease: &Lease, dns: &names::Dns) -> EtcFiles {
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    EtcFiles {
        hosts: hosts_of(all, lease.pid),
        hostname: format!("{}\n", lease.hostname),
        resolv_conf: names::resolv_conf_with(&host_resolv, dns),
    }
}

/// The three files for a container without a bridge network: `none` (only
/// localhost) or `host` (the host's own), with its `--dns` settings and
/// `--add-host` entries.
pub fn etc_files_without_bridge(
    mode: &NetworkMode,
    hostname: &str,
    dns: &names::Dns,
    extra_hosts: &[(String, Ipv4Addr)],
) -> EtcFiles {
    let mut hosts = match mode {
        NetworkMode::Host => std::fs::read_to_string("/etc/hosts").unwrap_or_default(),
        _ => names::hosts(None, &[]),
    };
    for (name, ip) in extra_hosts {
        hosts.push_str(&format!("{ip}\t{name}\n"));
    }
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    EtcFiles {
        hosts,
        hostname: format!("{hostname}\n"),
        resolv_conf: names::resolv_conf_with(&host_resolv, dns),
    }
}

/// Rewrite the hosts files of every member of `network` but `except` (whose
/// own files its caller writes), after someone joined or left. Best effort:
/// a member whose directory is gone is skipped, and `gc` will find it.
fn update_hosts(store: &StateDir, lock: &StateLock, network: &str, except: Option<i32>) {
    let Ok(all) = store.all(lock) else {
        return;
    };
    let Some(net) = all.iter().find(|n| n.name == network) else {
        return;
    };
    if !net.names {
        return;
    }
    for lease in net.leases.iter().filter(|l| Some(l.pid) != except) {
        write_hosts(&all, lease);
    }
}

fn write_hosts(all: &[NetworkState], lease: &Lease) {
    if let Some(dir) = &lease.etc_dir {
        if let Err(e) = names::write_in_place(&dir.join("hosts"), &hosts_of(all, lease.pid)) {
            eprintln!(
                "warning: updating the hosts file of {}: {e:#}",
                lease.hostname
            );
        }
    }
}

/// `--add-host NAME:IP` entries, with `host-gateway` resolved to the
/// network's gateway.
fn resolve_extra_hosts(
    extra: &[(String, String)],
    gateway: Option<Ipv4Addr>,
) -> anyhow::Result<Vec<(String, Ipv4Addr)>> {
    extra
        .iter()
        .map(|(name, ip)| {
            // One name per `--add-host`; a legacy link's line carries
            // several (`ALIAS HOSTNAME NAME`), each checked.
            for n in name.split(' ') {
                names::check_host_name(n)?;
            }
            let ip = match (ip.as_str(), gateway) {
                ("host-gateway", Some(g)) => g,
                ("host-gateway", None) => {
                    bail!("--add-host {name}:host-gateway needs a bridge network")
                }
                _ => ip
                    .parse()
                    .map_err(|_| anyhow::anyhow!("invalid IP address in add-host: {ip:?}"))?,
            };
            Ok((name.clone(), ip))
        })
        .collect()
}

/// `resolve_extra_hosts` for a container on no bridge (`none`, `host`).
pub fn extra_hosts_without_bridge(
    extra: &[(String, String)],
) -> anyhow::Result<Vec<(String, Ipv4Addr)>> {
    resolve_extra_hosts(extra, None)
}

// ANCHOR: attach
/// Connect the container whose first process is `pid` to a bridge network,
/// from the calling thread's network namespace (the "host"). Call it from
/// lab 02's `before_start` for its first network (`eth0`), or any time
/// later to connect a running container to one more (`eth1`, ...).
/// Creates the network on first use unless `opts.must_exist`.
///
/// The default network is made once and kept, as Docker keeps `docker0`
/// and its rules: making a bridge costs little, but deleting one waits for
/// the kernel (an RCU grace period, about 40 ms here), and adding or
/// deleting rules means running `iptables-restore`, a program: neither
/// belongs on every container's start and exit. So the common path runs no
/// program at all: it asks the kernel for the bridge by name (one netlink
/// request, which is also how it learns the index to plug the veth into),
/// and makes the bridge and its rules again only when they are not there
/// (a reboot, a new namespace, someone's `ip link del`).
pub fn attach(cfg: &Config, pid: Pid, opts: &AttachOptions) -> anyhow::Result<Endpoint> {
    check_network_name(&opts.network).map_err(anyhow::Error::msg)?;
    for alias in &opts.aliases {
        names::check_host_name(alias).context("--network-alias")?;
    }
    let store = StateDir::new(&cfg.state_dir);
    let lock = store.lock()?;
    let mut rtnl = Rtnl::open()?;
    let mut net = network_to_join(cfg, &store, &lock, &mut rtnl, opts)?;
    // The link the container's interface hangs off: the network's bridge
    // (for its veth), or a macvlan network's parent (for its child).
    let link = match &net.macvlan {
        Some(_) => macvlan::parent_index(&mut rtnl, &net)?,
        None => bridge_of(&store, &lock, &mut rtnl, &mut net)?,
    };
    reap_draining(&mut rtnl, &mut net);
    if net.leases.iter().any(|l| l.pid == pid.as_raw()) {
        bail!(
            "endpoint with name {} already exists in network {}",
            opts.name.as_deref().unwrap_or(&opts.hostname),
            net.name
        );
    }
    let (n, first) = next_interface(&store, &lock, pid)?;
    // A macvlan child has no host end: nothing to name here.
    let veth = match net.macvlan {
        Some(_) => String::new(),
        None => free_veth_name(&mut rtnl, &mut net, pid, n)?,
    };

    // The lease is saved before anything is made for it, so that a crash
    // from here on leaves a record for gc to clean up after.
    let mut lease = new_lease(&mut net, pid, opts, veth, n)?;
    net.leases.push(lease.clone());
    store.save(&lock, &net)?;

    let made = plug_in(&mut rtnl, &net, link, pid, &mut lease, &opts.publish);
    // Record what was made, whether or not all of it was.
    if let Some(slot) = net.leases.iter_mut().find(|l| l.ip == lease.ip) {
        *slot = lease.clone();
    }
    let written = made.and_then(|()| {
        store.save(&lock, &net)?;
        write_own_etc_files(&store, &lock, opts, &lease, first)
    });
    if let Err(e) = written {
        let _ = release(&mut rtnl, &mut net, lease.ip, Veth::DeleteNow);
        let _ = finish(&store, &lock, &mut rtnl, &net);
        return Err(e).with_context(|| format!("attaching {pid} to network {}", net.name));
    }
    update_hosts(&store, &lock, &net.name, Some(lease.pid));
    Ok(Endpoint {
        network: net.name.clone(),
        pid,
        bridge: net.bridge.clone(),
        ip: lease.ip,
        prefix: net.subnet.prefix,
        gateway: net.gateway,
        veth: lease.veth.clone(),
        ports: lease.ports.clone(),
        ifname: lease.ifname.clone(),
        mac: lease.mac.clone(),
    })
}

/// The network `opts` names, from its state file, or made now on first use
/// (unless `opts.must_exist`). The default network made with another `bip`
/// or `mtu` than daemon.json now says is made again, when it is empty.
fn network_to_join(
    cfg: &Config,
    store: &StateDir,
    lock: &StateLock,
    rtnl: &mut Rtnl,
    opts: &AttachOptions,
) -> anyhow::Result<NetworkState> {
    let mut loaded = load_network(store, lock, &opts.network)?;
    if loaded
        .as_ref()
        .is_some_and(|n| outdated_default(cfg, n) && !n.leases.iter().any(Lease::alive))
    {
        // daemon.json's `bip` or `mtu` changed since the default network
        // was made, and no container is on it: make it again with them, as
        // dockerd does with docker0 when it starts.
        if let Some(mut old) = loaded.take() {
            for d in std::mem::take(&mut old.draining) {
                delete_link_named(rtnl, &d.veth)?;
            }
            remove_network(rtnl, &old)?;
            store.remove(lock, &old.name)?;
        }
    }
    match loaded {
        Some(net) => {
            if let Some(b) = opts.bridge.as_ref().filter(|b| **b != net.bridge) {
                bail!(
                    "network {} exists with bridge {}, not {b}",
                    net.name,
                    net.bridge
                );
            }
            Ok(net)
        }
        None if opts.must_exist => bail!("network {} not found", opts.network),
        None => {
            let made = NetworkOptions {
                name: opts.network.clone(),
                bridge: opts.bridge.clone(),
                subnet: opts.subnet,
                ..NetworkOptions::default()
            };
            create_network(cfg, store, lock, rtnl, &made)
        }
    }
}

/// The index of the network's bridge, asked of the kernel by name (one
/// netlink request, the whole cost of a kept network). A network whose
/// record is here but whose bridge is not is made again.
fn bridge_of(
    store: &StateDir,
    lock: &StateLock,
    rtnl: &mut Rtnl,
    net: &mut NetworkState,
) -> anyhow::Result<u32> {
    if let Some(index) = rtnl.link_index(&net.bridge)? {
        return Ok(index);
    }
    // Its record is here but its bridge is not: make it again, rules
    // included (those recorded are deleted first, in case they outlived the
    // bridge here). Its members that are gone (a reboot) are collected
    // first, as `gc` would.
    firewall::check()?;
    let _ = release_dead(rtnl, net);
    let _ = firewall::delete_all(&net.rules);
    net.rules.clear();
    let index =
        bring_up(rtnl, net).with_context(|| format!("making network {} again", net.name))?;
    if let Err(e) = store.save(lock, net) {
        let _ = remove_network(rtnl, net);
        return Err(e);
    }
    Ok(index)
}

/// Which `ethN` the container gets on this network: eth0 for its first
/// network, then the lowest free one. Also says whether this is its first.
fn next_interface(store: &StateDir, lock: &StateLock, pid: Pid) -> anyhow::Result<(u32, bool)> {
    let all = store.all(lock)?;
    let used: Vec<&str> = all
        .iter()
        .flat_map(|n| &n.leases)
        .filter(|l| l.pid == pid.as_raw())
        .map(|l| l.ifname.as_str())
        .collect();
    let n = (0..).find(|n| !used.contains(&format!("eth{n}").as_str()));
    Ok((n.unwrap_or(0), used.is_empty()))
}

/// The host end's name, `dyvPID` (`dyvPIDnN` for `ethN`), made free.
fn free_veth_name(
    rtnl: &mut Rtnl,
    net: &mut NetworkState,
    pid: Pid,
    n: u32,
) -> anyhow::Result<String> {
    let veth = match n {
        0 => format!("dyv{pid}"),
        n => format!("dyv{pid}n{n}"),
    };
    // A veth of that name still draining: an exited container's, whose PID
    // this one was given again while its namespace lives on (another
    // container joined it). It goes now, or the name is taken.
    if let Some(at) = net.draining.iter().position(|d| d.veth == veth) {
        delete_link_named(rtnl, &veth)?;
        net.draining.remove(at);
    }
    Ok(veth)
}

/// The container's lease on `net`: an address, the MAC made from it, its
/// names, and its `--add-host` entries. Nothing is made for it yet.
fn new_lease(
    net: &mut NetworkState,
    pid: Pid,
    opts: &AttachOptions,
    veth: String,
    n: u32,
) -> anyhow::Result<Lease> {
    let extra_hosts = resolve_extra_hosts(&opts.extra_hosts, Some(net.gateway))?;
    let start_time = ipam::process_start_time(pid.as_raw())
        .with_context(|| format!("process {pid} does not exist"))?;
    let wanted = match &net.macvlan {
        Some(spec) => macvlan::wanted_ip(net, spec, opts.ip)?,
        None => opts.ip,
    };
    let ip = net.allocate(wanted)?;
    Ok(Lease {
        ip,
        pid: pid.as_raw(),
        start_time,
        name: opts.name.clone(),
        hostname: opts.hostname.clone(),
        domainname: opts.domainname.clone(),
        veth,
        etc_dir: opts.etc_dir.clone(),
        ports: vec![],
        rules: vec![],
        container_id: opts.container_id.clone(),
        aliases: opts.aliases.clone(),
        ifname: format!("eth{n}"),
        mac: crate::netlink::format_mac(mac_for(ip)),
        extra_hosts,
    })
}

/// What the kernel holds of the lease: the veth pair with its address and
/// route (see [`plumb`]), then the DNAT rules of `-p`. The lease records
/// each as it is made, so that a failure half-way can be undone.
fn plug_in(
    rtnl: &mut Rtnl,
    net: &NetworkState,
    bridge: u32,
    pid: Pid,
    lease: &mut Lease,
    publish: &[PortSpec],
) -> anyhow::Result<()> {
    if net.macvlan.is_some() {
        // No NAT on a macvlan network: the container is on the wire with
        // its own address, and `-p` has nothing to publish (docker ignores
        // it there too).
        return macvlan::plumb(rtnl, net, bridge, pid, lease);
    }
    plumb(rtnl, net, bridge, pid, lease)?;
    if !publish.is_empty() {
        firewall::check()?;
    }
    for spec in publish {
        let mapping = ports::resolve(spec)?;
        lease.ports.push(mapping);
        let rules = ports::port_rules(&mapping, lease.ip, &net.bridge);
        firewall::add_all(&rules)?;
        lease.rules.extend(rules);
    }
    Ok(())
}

/// The container's own files: all three when this is its first network (a
/// later one leaves its hostname and resolv.conf alone), else the hosts.
fn write_own_etc_files(
    store: &StateDir,
    lock: &StateLock,
    opts: &AttachOptions,
    lease: &Lease,
    first: bool,
) -> anyhow::Result<()> {
    let Some(dir) = &opts.etc_dir else {
        return Ok(());
    };
    let all = store.all(lock)?;
    if first {
        etc_files_with(&all, lease, &opts.dns).write_to(dir)?;
    } else {
        names::write_in_place(&dir.join("hosts"), &hosts_of(&all, lease.pid))?;
    }
    Ok(())
}
// ANCHOR_END: attach

/// What [`release`] does with a lease's veth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Veth {
    /// Delete it now: its container lives on (`network disconnect`), or
    /// the network goes (`network rm`).
    DeleteNow,
    /// Leave it to the kernel: its container has exited, and the kernel
    /// deletes both ends with the container's network namespace.
    WithNetns,
}

// ANCHOR: release
/// Take down what a lease made, and drop it from the network.
///
/// When a container's first process exits, its network namespace goes
/// (unless another process still holds it), and the kernel deletes every
/// interface in it, the container's end of the veth, and with it the host
/// end. That happens in a kernel worker, after the exit: deleting the veth
/// ourselves would only do the same thing sooner while we wait (an RCU
/// grace period, about 16 ms here). So on exit ([`Veth::WithNetns`]) the
/// veth is left to the kernel, and only what the kernel does not know to
/// undo goes now: the DNAT rules of `-p` (at once, so that the port is
/// free for the next container, and no connection is sent to an address
/// that is no longer this container's).
///
/// The address is not free yet, though. Until the kernel gets to it, the
/// old veth is still on the bridge, and its other end still answers ARP
/// for the old address, with the MAC made from it, which a new container
/// given the same address would have too: the bridge could send the new
/// container's frames to the dying port. Worse, if another container
/// joined the namespace (`--network container:`), it keeps the namespace,
/// the veth and the address alive for as long as it runs: two live
/// interfaces with one address on one bridge. So the address moves to the
/// network's `draining` list, which `allocate` skips, and [`attach`] frees
/// it once the host end is gone (one netlink request). Nothing waits for
/// the kernel, and no address is handed out while its old veth exists.
fn release(
    rtnl: &mut Rtnl,
    net: &mut NetworkState,
    ip: Ipv4Addr,
    veth: Veth,
) -> anyhow::Result<()> {
    let Some(at) = net.leases.iter().position(|l| l.ip == ip) else {
        return Ok(());
    };
    let lease = net.leases.remove(at);
    let mut first_error = None;
    if let Err(e) = firewall::delete_all(&lease.rules) {
        first_error.get_or_insert(e);
    }
    match veth {
        // A macvlan child is only in the container's namespace: it goes
        // with it, and its address is free now (a new child with its MAC
        // waits for the old one: see `macvlan::plumb`).
        Veth::WithNetns if net.macvlan.is_some() => {}
        Veth::WithNetns => net.draining.push(Draining {
            ip: lease.ip,
            veth: lease.veth,
        }),
        Veth::DeleteNow if net.macvlan.is_some() => {
            if let Err(e) = macvlan::unplug(&lease) {
                first_error.get_or_insert(e);
            }
        }
        // Deleting one end of a veth deletes both.
        Veth::DeleteNow => {
            if let Err(e) = delete_link_named(rtnl, &lease.veth) {
                first_error.get_or_insert(e);
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}
// ANCHOR_END: release

/// Free the addresses of exited containers whose veth the kernel has
/// deleted by now (see [`release`]): one netlink request each.
fn reap_draining(rtnl: &mut Rtnl, net: &mut NetworkState) {
    net.draining
        .retain(|d| !matches!(rtnl.link_index(&d.veth), Ok(None)));
}

/// Release the leases whose container is gone (see [`Lease::alive`]), as
/// its monitor would have; returns them.
fn release_dead(rtnl: &mut Rtnl, net: &mut NetworkState) -> anyhow::Result<Vec<Lease>> {
    let dead: Vec<Lease> = net.leases.iter().filter(|l| !l.alive()).cloned().collect();
    for lease in &dead {
        release(rtnl, net, lease.ip, Veth::WithNetns)?;
    }
    Ok(dead)
}

/// `ip link del NAME`, if there is such a link.
fn delete_link_named(rtnl: &mut Rtnl, name: &str) -> anyhow::Result<()> {
    match rtnl.link_index(name)? {
        Some(index) => match rtnl.delete_link(index) {
            Err(e) if !is_errno(&e, Errno::ENODEV) => Err(e),
            _ => Ok(()),
        },
        None => Ok(()),
    }
}

/// Save the network, or remove it with its bridge and rules once the last
/// container has left one that was made on first use by a name of the
/// lab's own. (Docker keeps networks until `docker network rm`, as
/// [`create`]d ones and the default network are kept here.)
fn finish(
    store: &StateDir,
    lock: &StateLock,
    rtnl: &mut Rtnl,
    net: &NetworkState,
) -> anyhow::Result<()> {
    if net.leases.is_empty() && !kept(net) {
        remove_network(rtnl, net)?;
        store.remove(lock, &net.name)
    } else {
        store.save(lock, net)?;
        update_hosts(store, lock, &net.name, None);
        Ok(())
    }
}

// ANCHOR: detach
/// Undo [`attach`] after the container has exited: the DNAT rules and the
/// lease, whose address comes back once the kernel has deleted the veth
/// pair with the container's namespace (see `release`); and the network
/// itself when this was its last container and it is not kept.
pub fn detach(cfg: &Config, endpoint: &Endpoint) -> anyhow::Result<()> {
    let store = StateDir::new(&cfg.state_dir);
    let lock = store.lock()?;
    let mut rtnl = Rtnl::open()?;
    let Some(mut net) = load_network(&store, &lock, &endpoint.network)? else {
        return Ok(());
    };
    let ours = net
        .leases
        .iter()
        .any(|l| l.ip == endpoint.ip && l.pid == endpoint.pid.as_raw());
    if !ours {
        return Ok(());
    }
    let released = release(&mut rtnl, &mut net, endpoint.ip, Veth::WithNetns);
    finish(&store, &lock, &mut rtnl, &net)?;
    released
}
// ANCHOR_END: detach

/// `network disconnect`: take the container whose first process is `pid`
/// off `network` (its interface there vanishes), and rewrite its hosts file
/// and its former peers'.
pub fn disconnect(cfg: &Config, network: &str, pid: Pid) -> anyhow::Result<()> {
    let store = StateDir::new(&cfg.state_dir);
    let lock = store.lock()?;
    let mut rtnl = Rtnl::open()?;
    let mut net = load_network(&store, &lock, network)?
        .with_context(|| format!("network {network} not found"))?;
    let Some(lease) = net.leases.iter().find(|l| l.pid == pid.as_raw()).cloned() else {
        bail!("container is not connected to network {network}");
    };
    let released = release(&mut rtnl, &mut net, lease.ip, Veth::DeleteNow);
    finish(&store, &lock, &mut rtnl, &net)?;
    if let Ok(all) = store.all(&lock) {
        write_hosts(&all, &lease);
    }
    released
}

/// Every network's endpoint of the container whose first process is
/// `pid`: what its monitor takes down when it exits (or when it could not
/// start: its process is killed, and its namespace goes with it), as
/// [`detach`] does.
pub fn detach_all(cfg: &Config, pid: Pid) -> anyhow::Result<()> {
    if !cfg.state_dir.exists() {
        return Ok(());
    }
    let store = StateDir::new(&cfg.state_dir);
    let lock = store.lock()?;
    let mut rtnl = Rtnl::open()?;
    let mut first_error = None;
    for net in store.all(&lock)? {
        let Some(mut net) = load_network(&store, &lock, &net.name)? else {
            continue;
        };
        let mine: Vec<Ipv4Addr> = net
            .leases
            .iter()
            .filter(|l| l.pid == pid.as_raw())
            .map(|l| l.ip)
            .collect();
        if mine.is_empty() {
            continue;
        }
        for ip in mine {
            if let Err(e) = release(&mut rtnl, &mut net, ip, Veth::WithNetns) {
                first_error.get_or_insert(e);
            }
        }
        finish(&store, &lock, &mut rtnl, &net)?;
    }
    first_error.map_or(Ok(()), Err)
}

/// `network rm`: take the network down, its rules and its bridge, and
/// forget it. Refused while a live container is attached to it. (The lab
/// removes the default network too when asked; the engine refuses, as
/// Docker does.)
pub fn remove(cfg: &Config, name: &str) -> anyhow::Result<()> {
    let store = StateDir::new(&cfg.state_dir);
    let lock = store.lock()?;
    let mut rtnl = Rtnl::open()?;
    let Some(net) = load_network(&store, &lock, name)? else {
        bail!("network {name} not found");
    };
    let live: Vec<&Lease> = net.leases.iter().filter(|l| l.alive()).collect();
    if let Some(l) = live.first() {
        // Docker's words, so that scripts that look for them work.
        let id = match net.id.as_str() {
            "" => String::new(),
            id => format!(" id {id}"),
        };
        let who = l.name.as_deref().unwrap_or(&l.hostname);
        let member = match &l.container_id {
            Some(c) => format!("name:{who:?} id:{:?}", &c[..c.len().min(12)]),
            None => format!("name:{who:?} pid:{}", l.pid),
        };
        bail!("error while removing network: network {name}{id} has active endpoints ({member})");
    }
    let mut net = net;
    for ip in net.leases.iter().map(|l| l.ip).collect::<Vec<_>>() {
        release(&mut rtnl, &mut net, ip, Veth::DeleteNow)?;
    }
    // Veths the kernel has not deleted yet, or whose namespace another
    // container keeps: off the bridge that goes, they would dangle.
    for d in std::mem::take(&mut net.draining) {
        delete_link_named(&mut rtnl, &d.veth)?;
    }
    remove_network(&mut rtnl, &net)?;
    store.remove(&lock, name)
}

/// What [`gc`] removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collected {
    pub network: String,
    pub ip: Ipv4Addr,
    pub pid: i32,
}

// ANCHOR: gc
/// Release every lease whose process is gone (or is another process with a
/// reused PID), with its rules (its veth went with its namespace), free
/// the addresses whose veth the kernel has deleted, and remove networks
/// left empty that are not kept.
pub fn gc(cfg: &Config) -> anyhow::Result<Vec<Collected>> {
    let store = StateDir::new(&cfg.state_dir);
    let lock = store.lock()?;
    let mut rtnl = Rtnl::open()?;
    let mut collected = Vec::new();
    for net in store.all(&lock)? {
        let Some(mut net) = load_network(&store, &lock, &net.name)? else {
            continue;
        };
        for lease in release_dead(&mut rtnl, &mut net)? {
            collected.push(Collected {
                network: net.name.clone(),
                ip: lease.ip,
                pid: lease.pid,
            });
        }
        reap_draining(&mut rtnl, &mut net);
        finish(&store, &lock, &mut rtnl, &net)?;
    }
    Ok(collected)
}
// ANCHOR_END: gc

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_modes_parse_like_docker_run_network() {
        assert_eq!("none".parse::<NetworkMode>().unwrap(), NetworkMode::None);
        assert_eq!("host".parse::<NetworkMode>().unwrap(), NetworkMode::Host);
        assert_eq!(
            "bridge".parse::<NetworkMode>().unwrap(),
            NetworkMode::Bridge("bridge".into())
        );
        assert_eq!(
            "container:42".parse::<NetworkMode>().unwrap(),
            NetworkMode::Container(Pid::from_raw(42))
        );
        assert!("container:web".parse::<NetworkMode>().is_err());
        assert!("a/b".parse::<NetworkMode>().is_err());
        let base = CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWNET;
        assert!(!NetworkMode::Host
            .namespaces(base)
            .contains(CloneFlags::CLONE_NEWNET));
        assert!(NetworkMode::None
            .namespaces(base)
            .contains(CloneFlags::CLONE_NEWNET));
    }
}
