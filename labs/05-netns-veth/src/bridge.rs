//! A bridge network: its bridge, the gateway's address on it, forwarding,
//! and its rules. What `docker network create` makes, and what `attach`
//! makes on first use.
//!
//! ```text
//! ip link add dockyard0 type bridge                 # a switch, on the host
//! ip addr add 172.17.0.1/16 dev dockyard0           # the gateway's address
//! ip link set dockyard0 up
//! sysctl -w net.ipv4.ip_forward=1                   # route for the containers
//! sysctl -w net.ipv4.conf.dockyard0.route_localnet=1
//! iptables -t nat -A POSTROUTING -s 172.17.0.0/16 ! -o dockyard0 -j MASQUERADE
//! ```
//!
//! A network is also a state file ([`crate::ipam`]): its subnet, its
//! gateway, the rules it added, and its members' leases, which `endpoint.rs`
//! adds and removes. The file records which network namespace it was made
//! in, so that a state directory used from another one (a reboot, a new
//! throwaway namespace) is noticed; see [`load_network`].

use std::net::Ipv4Addr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use crate::firewall::{self, Rule};
use crate::ipam::{self, Cidr, Lease, NetworkState, Pool, StateDir, StateLock};
use crate::netlink::Rtnl;

/// The name of Docker's default network, and of ours.
pub const DEFAULT_NETWORK: &str = "bridge";

/// Where the state lives unless told otherwise: a tmpfs, like the bridges
/// it describes, gone after a reboot.
pub const DEFAULT_STATE_DIR: &str = "/run/dockyard/net";

/// How the networks are set up: the `daemon.json` settings that matter here.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the networks' state files are ([`ipam`]).
    pub state_dir: PathBuf,
    /// The default network's bridge (`"bridge"` in daemon.json; docker0).
    pub default_bridge: String,
    /// The default network's gateway address and subnet (`"bip"`), e.g.
    /// `172.17.0.1/16`. `None`: the first free subnet of `pools`.
    pub bip: Option<Cidr>,
    /// Where subnets for new networks come from (`"default-address-pools"`).
    pub pools: Vec<Pool>,
    /// The MTU of every network's veths unless its own says otherwise
    /// (`"mtu"`); `None`: the kernel's 1500.
    pub mtu: Option<u32>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            state_dir: DEFAULT_STATE_DIR.into(),
            default_bridge: "dockyard0".into(),
            bip: None,
            pools: ipam::default_pools(),
            mtu: None,
        }
    }
}

pub(crate) fn check_network_name(name: &str) -> Result<(), String> {
    let ok = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?}: a network name is letters, digits, '_', '.' and '-' (as in docker)"
        ))
    }
}

/// What `network create` asks for ([`create`]).
#[derive(Debug, Clone, Default)]
pub struct NetworkOptions {
    pub name: String,
    /// The bridge interface; default `dy-NAME` (the default network's:
    /// [`Config::default_bridge`]).
    pub bridge: Option<String>,
    /// `--subnet`; default: the first free one of the pools.
    pub subnet: Option<Cidr>,
    /// `--gateway`; default: the subnet's first address.
    pub gateway: Option<Ipv4Addr>,
    /// The veths' MTU; default: [`Config::mtu`].
    pub mtu: Option<u32>,
    /// `--internal`: no way out.
    pub internal: bool,
    /// Kept until [`remove`](crate::remove)d (`network create`), or gone with its last
    /// member (made on first use).
    pub persistent: bool,
    /// Recorded as given, for `network inspect`.
    pub id: String,
    pub created: String,
    pub labels: std::collections::BTreeMap<String, String>,
    pub options: std::collections::BTreeMap<String, String>,
}

/// The inode of the calling thread's network namespace: which "host" this is.
pub fn current_netns() -> anyhow::Result<u64> {
    Ok(std::fs::metadata("/proc/thread-self/ns/net")
        .context("stat /proc/thread-self/ns/net")?
        .ino())
}

/// Write a sysctl of the calling thread's network namespace, e.g.
/// `net/ipv4/ip_forward`.
fn sysctl(key: &str, value: &str) -> anyhow::Result<()> {
    let path = Path::new("/proc/sys").join(key);
    std::fs::write(&path, value).with_context(|| format!("writing {value} to {}", path.display()))
}

/// A name of at most 15 bytes (IFNAMSIZ - 1) for the bridge of `network`.
fn bridge_name_for(network: &str) -> String {
    let mut name = format!("dy-{network}");
    name.truncate(15);
    name
}

fn check_ifname(name: &str) -> anyhow::Result<()> {
    if name.is_empty() || name.len() > 15 || name.contains(['/', ' ', ':']) {
        bail!("{name:?} is not a valid interface name (1 to 15 characters, no '/', ':' or space)");
    }
    Ok(())
}

/// Whether a network stays when its last container leaves: one made with
/// [`create`], and the default network, which Docker keeps as it keeps
/// `docker0` (see [`attach`](crate::attach)).
pub(crate) fn kept(net: &NetworkState) -> bool {
    net.persistent || net.name == DEFAULT_NETWORK
}

/// Whether `net` is the default network made with another `bip` or `mtu`
/// than the configuration now asks for.
pub(crate) fn outdated_default(cfg: &Config, net: &NetworkState) -> bool {
    if net.name != DEFAULT_NETWORK {
        return false;
    }
    // As `create_network` reads bip: an address names the gateway, a
    // network address the subnet (whose first address is the gateway).
    let bip = cfg.bip.map(|b| match b.addr != b.network() {
        true => (b.subnet(), Some(b.addr)),
        false => (b, b.nth(1)),
    });
    net.mtu != cfg.mtu || bip.is_some_and(|(s, g)| s != net.subnet || g != Some(net.gateway))
}

/// Open the state, under the lock, and check it belongs to this namespace.
///
/// A state directory can outlive the network namespace its networks were
/// made in: `/run` survives no reboot, but a data root elsewhere does, and
/// a test may make a data root and then use it from a new throwaway
/// namespace. A network recorded in another namespace whose containers are
/// all gone is adopted: its leases and rules are forgotten (they were that
/// namespace's, and went with it or at least are not here) and [`attach`](crate::attach)
/// makes its bridge and rules here again. One that still has a live
/// container is another namespace's network in use, and one whose bridge
/// name is taken here is most likely another state directory's network:
/// both refused, as two hosts sharing one state directory, or two state
/// directories sharing one bridge, would hand out the same addresses.
pub(crate) fn load_network(
    store: &StateDir,
    lock: &StateLock,
    name: &str,
) -> anyhow::Result<Option<NetworkState>> {
    let Some(mut net) = store.load(lock, name)? else {
        return Ok(None);
    };
    let here = current_netns()?;
    if net.netns != here {
        let taken = Rtnl::open()?.link_index(&net.bridge)?.is_some();
        if taken || net.leases.iter().any(Lease::alive) {
            bail!(
                "network {name} in {} belongs to network namespace net:[{}], and this process \
                 is in net:[{here}]: use another state directory for each namespace",
                store.dir().display(),
                net.netns
            );
        }
        net.netns = here;
        net.leases.clear();
        net.draining.clear();
        net.rules.clear();
    }
    Ok(Some(net))
}

// ANCHOR: create_network
/// Make a network: pick its subnet, create its bridge, turn on forwarding,
/// add its rules.
pub(crate) fn create_network(
    cfg: &Config,
    store: &StateDir,
    lock: &StateLock,
    rtnl: &mut Rtnl,
    opts: &NetworkOptions,
) -> anyhow::Result<NetworkState> {
    let default = opts.name == DEFAULT_NETWORK;
    let bridge = match (&opts.bridge, default) {
        (Some(b), _) => b.clone(),
        (None, true) => cfg.default_bridge.clone(),
        (None, false) => bridge_name_for(&opts.name),
    };
    check_ifname(&bridge)?;
    let others = store.all(lock)?;
    if let Some(o) = others.iter().find(|o| o.bridge == bridge) {
        bail!("bridge {bridge} is already network {}'s", o.name);
    }
    if rtnl.link_index(&bridge)?.is_some() {
        bail!("an interface named {bridge} already exists");
    }
    // bip names the gateway; a subnet gets its first address as gateway,
    // unless --gateway names another.
    let (subnet, gateway) = match (default.then_some(cfg.bip).flatten(), opts.subnet) {
        (_, Some(s)) | (Some(s), None) if s.addr != s.network() => (s.subnet(), s.addr),
        (_, Some(s)) | (Some(s), None) => (s, s.nth(1).context("subnet too small")?),
        (None, None) => {
            if let Some(g) = opts.gateway {
                bail!("no matching subnet for gateway {g}: give --subnet too");
            }
            let routes: Vec<Cidr> = rtnl
                .ipv4_routes()?
                .into_iter()
                .map(|(ip, prefix)| Cidr::new(ip, prefix))
                .collect();
            let mut taken: Vec<Cidr> = others.iter().map(|o| o.subnet).collect();
            // As in Docker, the default network's subnet (bip, else the
            // first free one: 172.17.0.0/16) stays its own even while it
            // does not exist yet: created networks start at the next.
            if opts.persistent && !default && !others.iter().any(|o| o.name == DEFAULT_NETWORK) {
                match cfg.bip {
                    Some(bip) => taken.push(bip.subnet()),
                    None => taken.push(ipam::choose_subnet(&cfg.pools, &routes, &taken)?),
                }
            }
            let s = ipam::choose_subnet(&cfg.pools, &routes, &taken)?;
            (s, s.nth(1).context("subnet too small")?)
        }
    };
    let gateway = match opts.gateway {
        Some(g) if !subnet.contains(g) || g == subnet.network() || g == subnet.broadcast() => {
            bail!("gateway {g} is not a host address of subnet {subnet}")
        }
        Some(g) => g,
        None => gateway,
    };
    if let Some(o) = others.iter().find(|o| o.subnet.overlaps(&subnet)) {
        bail!(
            "Pool overlaps with other one on this address space: subnet {subnet} overlaps \
             network {}'s {}",
            o.name,
            o.subnet
        );
    }
    firewall::check()?;
    let mut net = NetworkState {
        name: opts.name.clone(),
        bridge,
        subnet,
        gateway,
        names: !default,
        netns: current_netns()?,
        rules: vec![],
        leases: vec![],
        persistent: opts.persistent,
        id: opts.id.clone(),
        created: opts.created.clone(),
        labels: opts.labels.clone(),
        options: opts.options.clone(),
        mtu: opts.mtu.or(cfg.mtu),
        internal: opts.internal,
        draining: vec![],
        macvlan: None,
        subnet_given: opts.subnet.is_some(),
    };
    bring_up(rtnl, &mut net).with_context(|| format!("creating network {}", net.name))?;
    Ok(net)
}

/// The kernel's half of a network: its bridge with the gateway's address,
/// forwarding, and its rules. Returns the bridge's index. If any of it
/// fails, what was made is taken down again.
pub(crate) fn bring_up(rtnl: &mut Rtnl, net: &mut NetworkState) -> anyhow::Result<u32> {
    let (subnet, gateway) = (net.subnet, net.gateway);
    let made = (|| {
        rtnl.add_bridge(&net.bridge)?;
        let index = rtnl.require_link(&net.bridge)?;
        rtnl.add_address(index, gateway, subnet.prefix)?;
        if let Some(mtu) = net.mtu {
            rtnl.set_mtu(index, mtu)?;
        }
        rtnl.set_up(index)?;
        if !net.internal {
            sysctl("net/ipv4/ip_forward", "1")?;
            sysctl(&format!("net/ipv4/conf/{}/route_localnet", net.bridge), "1")?;
        }
        let rules = firewall::network_rules(&net.bridge, &subnet.to_string(), net.internal);
        firewall::add_all(&rules)?;
        net.rules.extend(rules);
        anyhow::Ok(index)
    })();
    if made.is_err() {
        let _ = remove_network(rtnl, net);
        net.rules.clear();
    }
    made
}
// ANCHOR_END: create_network

/// Take a network down: its rules and its bridge.
pub(crate) fn remove_network(rtnl: &mut Rtnl, net: &NetworkState) -> anyhow::Result<()> {
    let mut first_error = None;
    if let Err(e) = firewall::delete_all(&net.rules) {
        first_error.get_or_insert(e);
    }
    match rtnl.link_index(&net.bridge) {
        Ok(Some(index)) => {
            if let Err(e) = rtnl.delete_link(index) {
                first_error.get_or_insert(e);
            }
        }
        Ok(None) => {}
        Err(e) => {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

// ANCHOR: create
/// `network create`: make a network now and keep it, empty or not, until
/// [`remove`](crate::remove).
pub fn create(cfg: &Config, opts: &NetworkOptions) -> anyhow::Result<NetworkState> {
    firewall::check()?;
    check_network_name(&opts.name).map_err(anyhow::Error::msg)?;
    let store = StateDir::new(&cfg.state_dir);
    let lock = store.lock()?;
    let mut rtnl = Rtnl::open()?;
    if load_network(&store, &lock, &opts.name)?.is_some() {
        bail!("network with name {} already exists", opts.name);
    }
    let net = create_network(cfg, &store, &lock, &mut rtnl, opts)?;
    if let Err(e) = store.save(&lock, &net) {
        let _ = remove_network(&mut rtnl, &net);
        return Err(e);
    }
    Ok(net)
}
// ANCHOR_END: create

/// Every network and its leases, for `ls`.
pub fn networks(cfg: &Config) -> anyhow::Result<Vec<NetworkState>> {
    let store = StateDir::new(&cfg.state_dir);
    let lock = store.lock()?;
    store.all(&lock)
}

/// A rule of the network or of one of its leases: for tests that look for
/// leftovers.
pub fn all_rules(net: &NetworkState) -> Vec<Rule> {
    net.rules
        .iter()
        .chain(net.leases.iter().flat_map(|l| &l.rules))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bridge_names_fit_ifnamsiz() {
        assert_eq!(bridge_name_for("mynet"), "dy-mynet");
        assert_eq!(bridge_name_for("a-very-long-network-name").len(), 15);
        assert!(check_ifname("dy-a-very-long-n").is_err());
    }
}
