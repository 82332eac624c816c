//! IP address management: which subnet a network gets, and which address in
//! it each container gets.
//!
//! Docker keeps this in its daemon's memory and in a boltdb file. Dockyard
//! has no daemon: every `lab05-netns-veth` process is its own small daemon for
//! one container, so the allocations live in files that all of them share,
//! one JSON file per network under a state directory:
//!
//! ```text
//! /run/dockyard/net/
//!   lock              flock(2)ed by whoever reads or changes anything below
//!   bridge.json       the default network: bridge, subnet, gateway, rules, leases
//!   mynet.json        a user-defined network
//! ```
//!
//! Every change happens under an exclusive `flock` of `lock`: read the file,
//! pick a free address, write the file (to a temporary file, then
//! `rename(2)`, so a crash never leaves half a file). Two containers started
//! at once therefore take turns, and never get the same address. A lease
//! records the container's PID and that process's start time, so a later
//! `gc` can tell a dead container's lease from a live one, even after the
//! PID was reused. `/run` is a tmpfs: after a reboot the bridges and leases
//! are gone together.

use std::fmt;
use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{bail, Context};
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::firewall::Rule;
use crate::ports::PortMapping;

/// An IPv4 address with a prefix length: `172.17.0.1/16`. As a subnet it is
/// normally written with the host bits zero (`172.17.0.0/16`); as a bridge
/// IP (`bip`), with the gateway's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Cidr {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Cidr {
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Cidr {
        Cidr { addr, prefix }
    }

    fn mask(&self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - self.prefix)
        }
    }

    /// The subnet's first address (host bits zero): `172.17.0.0`.
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & self.mask())
    }

    /// The subnet's last address (host bits one): `172.17.255.255`.
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !self.mask())
    }

    /// The same subnet written with its network address.
    pub fn subnet(&self) -> Cidr {
        Cidr::new(self.network(), self.prefix)
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.network())
    }

    /// Whether the two subnets share any address: one contains the other.
    pub fn overlaps(&self, other: &Cidr) -> bool {
        self.contains(other.network()) || other.contains(self.network())
    }

    /// The `n`th address of the subnet (0 is the network address).
    pub fn nth(&self, n: u32) -> Option<Ipv4Addr> {
        let ip = u32::from(self.network()).checked_add(n)?;
        let ip = Ipv4Addr::from(ip);
        self.contains(ip).then_some(ip)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Cidr, String> {
        let (addr, prefix) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?}: expected ADDRESS/PREFIX, e.g. 172.18.0.0/16"))?;
        let addr = addr
            .parse()
            .map_err(|e| format!("{s:?}: address {addr:?}: {e}"))?;
        let prefix: u8 = prefix
            .parse()
            .map_err(|e| format!("{s:?}: prefix length {prefix:?}: {e}"))?;
        // A /31 or /32 has no room for a gateway and a container.
        if !(1..=30).contains(&prefix) {
            return Err(format!("{s:?}: the prefix length must be 1 to 30"));
        }
        Ok(Cidr { addr, prefix })
    }
}

impl TryFrom<String> for Cidr {
    type Error = String;
    fn try_from(s: String) -> Result<Cidr, String> {
        s.parse()
    }
}

impl From<Cidr> for String {
    fn from(c: Cidr) -> String {
        c.to_string()
    }
}

/// One of Docker's `default-address-pools`: subnets of `size` bits cut
/// from `base`, e.g. base `192.168.0.0/16`, size 20: 192.168.0.0/20,
/// 192.168.16.0/20, ...
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    pub base: Cidr,
    pub size: u8,
}

impl Pool {
    /// Every subnet of the pool, in order.
    pub fn subnets(&self) -> impl Iterator<Item = Cidr> + '_ {
        let count = 1u64 << (self.size.saturating_sub(self.base.prefix)).min(32);
        let step = 1u64 << (32 - self.size as u64);
        let start = u32::from(self.base.network()) as u64;
        (0..count).filter_map(move |i| {
            let addr = u32::try_from(start + i * step).ok()?;
            Some(Cidr::new(Ipv4Addr::from(addr), self.size))
        })
    }
}

impl FromStr for Pool {
    type Err = String;

    /// `BASE/PREFIX:SIZE` (the `base` and `size` of daemon.json), e.g.
    /// `10.10.0.0/16:24`.
    fn from_str(s: &str) -> Result<Pool, String> {
        let (base, size) = s
            .split_once(':')
            .ok_or_else(|| format!("{s:?}: expected BASE/PREFIX:SIZE, e.g. 10.10.0.0/16:24"))?;
        let base: Cidr = base.parse()?;
        let size: u8 = size.parse().map_err(|e| format!("{s:?}: size: {e}"))?;
        if size < base.prefix || size > 30 {
            return Err(format!(
                "{s:?}: the size must be between the base's prefix length and 30"
            ));
        }
        Ok(Pool {
            base: base.subnet(),
            size,
        })
    }
}

/// Docker's built-in `default-address-pools`: 172.17.0.0/16 to
/// 172.31.0.0/16, then 192.168.0.0/16 cut into /20s.
pub fn default_pools() -> Vec<Pool> {
    let mut pools: Vec<Pool> = (17..=31)
        .map(|b| Pool {
            base: Cidr::new(Ipv4Addr::new(172, b, 0, 0), 16),
            size: 16,
        })
        .collect();
    pools.push(Pool {
        base: Cidr::new(Ipv4Addr::new(192, 168, 0, 0), 16),
        size: 20,
    });
    pools
}

// ANCHOR: choose_subnet
/// The first subnet of `pools` that overlaps neither a route of the host
/// (which would make the host send that traffic to the wrong place) nor a
/// subnet another network already uses.
pub fn choose_subnet(pools: &[Pool], routes: &[Cidr], taken: &[Cidr]) -> anyhow::Result<Cidr> {
    pools
        .iter()
        .flat_map(|p| p.subnets())
        .find(|s| !routes.iter().chain(taken).any(|r| r.overlaps(s)))
        .context(
            "every subnet of the address pools overlaps a route or another network: \
             give one with --subnet, or other pools with --default-address-pool",
        )
}
// ANCHOR_END: choose_subnet

/// One container's address on one network.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Lease {
    pub ip: Ipv4Addr,
    /// The container's first process, and its start time in clock ticks
    /// since boot (field 22 of `/proc/PID/stat`), which tells it from a
    /// later process that got the same PID.
    pub pid: i32,
    pub start_time: u64,
    /// The container's name (resolvable by its peers) and hostname.
    pub name: Option<String>,
    pub hostname: String,
    /// Its domain name (`--domainname`), for its own hosts line.
    #[serde(default)]
    pub domainname: String,
    /// The host end of its veth pair.
    pub veth: String,
    /// Where its `hosts`, `hostname` and `resolv.conf` are, if anywhere.
    pub etc_dir: Option<PathBuf>,
    pub ports: Vec<PortMapping>,
    /// Its firewall rules (DNAT for published ports), to delete at teardown.
    pub rules: Vec<Rule>,
    /// The container's ID, for `network inspect` (the engine's; none in the lab).
    #[serde(default)]
    pub container_id: Option<String>,
    /// More names its peers on this network resolve (`--network-alias`).
    #[serde(default)]
    pub aliases: Vec<String>,
    /// The interface inside the container: `eth0`, or `eth1`... for the
    /// networks it was connected to later.
    #[serde(default = "eth0")]
    pub ifname: String,
    /// Its MAC address, derived from the IP as Docker does (02:42:IP).
    #[serde(default)]
    pub mac: String,
    /// `--add-host` entries for its hosts file, resolved to addresses.
    #[serde(default)]
    pub extra_hosts: Vec<(String, Ipv4Addr)>,
}

fn eth0() -> String {
    "eth0".into()
}

impl Lease {
    /// Whether its container's first process is still running: the same
    /// PID with the same start time (not a zombie, not a later process
    /// that was given the PID again).
    pub fn alive(&self) -> bool {
        process_start_time(self.pid) == Some(self.start_time)
    }
}

/// One network, as stored in `NAME.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NetworkState {
    pub name: String,
    /// The bridge interface on the host.
    pub bridge: String,
    /// The subnet (network address form) and the bridge's own address in it.
    pub subnet: Cidr,
    pub gateway: Ipv4Addr,
    /// Whether members find each other by name (user-defined networks do;
    /// Docker's default `bridge` network does not).
    pub names: bool,
    /// The inode of the network namespace that holds the bridge: the "host"
    /// this state belongs to.
    pub netns: u64,
    /// The network's own rules (MASQUERADE, FORWARD).
    pub rules: Vec<Rule>,
    pub leases: Vec<Lease>,
    /// A user-made network (`network create`) stays until it is removed;
    /// one made on first use goes with its last member, unless it is the
    /// default network, which is always kept (as docker0).
    #[serde(default)]
    pub persistent: bool,
    /// Its ID (64 hex digits), creation time (RFC 3339), labels and the
    /// driver options it was created with (`-o`), as given by the caller.
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub created: String,
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub options: std::collections::BTreeMap<String, String>,
    /// The MTU of its veths, if not the kernel's default (1500).
    #[serde(default)]
    pub mtu: Option<u32>,
    /// `--internal`: no route out, no NAT; members reach only each other.
    #[serde(default)]
    pub internal: bool,
    /// Addresses of containers that have exited, held until the kernel has
    /// deleted their veth (see `endpoint::release`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub draining: Vec<Draining>,
    /// A macvlan network's parent and mode (see `macvlan.rs`); `None` for a
    /// bridge network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub macvlan: Option<crate::macvlan::Macvlan>,
    /// Whether the subnet was given (`--subnet`) rather than picked from
    /// the pools. Docker takes `--ip` only on such a network: an address
    /// in a pool the engine picked may not be there after the network is
    /// made again. Records written before this was kept say yes, so that
    /// `--ip` keeps working on the networks it worked on.
    #[serde(default = "subnet_given_before")]
    pub subnet_given: bool,
}

fn subnet_given_before() -> bool {
    true
}

/// The address of a container that has exited, and the host end of its
/// veth, which the kernel deletes with the container's network namespace a
/// moment later. The address is not handed out again until that is done.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Draining {
    pub ip: Ipv4Addr,
    pub veth: String,
}

impl NetworkState {
    // ANCHOR: allocate
    /// An address for a new container: `wanted` if it is free, else the
    /// lowest free one. The network address, the gateway and the broadcast
    /// address are never handed out.
    pub fn allocate(&self, wanted: Option<Ipv4Addr>) -> anyhow::Result<Ipv4Addr> {
        let free = |ip: Ipv4Addr| {
            ip != self.subnet.network()
                && ip != self.gateway
                && ip != self.subnet.broadcast()
                && !self.leases.iter().any(|l| l.ip == ip)
                && !self.draining.iter().any(|d| d.ip == ip)
        };
        if let Some(ip) = wanted {
            if !self.subnet.contains(ip) {
                bail!(
                    "{ip} is not in network {}'s subnet {}",
                    self.name,
                    self.subnet
                );
            }
            if !free(ip) {
                bail!(
                    "{ip} is not available on network {} (in use or reserved)",
                    self.name
                );
            }
            return Ok(ip);
        }
        (1..)
            .map_while(|n| self.subnet.nth(n))
            .find(|ip| free(*ip))
            .with_context(|| {
                format!(
                    "network {} ({}) has no free address",
                    self.name, self.subnet
                )
            })
    }
    // ANCHOR_END: allocate
}

/// The state directory: one JSON file per network, and the lock.
pub struct StateDir {
    dir: PathBuf,
}

/// Held while the state is being read and changed; dropping it unlocks.
pub struct StateLock {
    _lock: Flock<fs::File>,
}

impl StateDir {
    pub fn new(dir: impl Into<PathBuf>) -> StateDir {
        StateDir { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Take the exclusive lock, waiting for whoever holds it.
    pub fn lock(&self) -> anyhow::Result<StateLock> {
        fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating the state directory {}", self.dir.display()))?;
        let path = self.dir.join("lock");
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        let lock = Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, e)| e)
            .with_context(|| format!("flock({}, LOCK_EX)", path.display()))?;
        Ok(StateLock { _lock: lock })
    }

    fn path(&self, network: &str) -> PathBuf {
        self.dir.join(format!("{network}.json"))
    }

    /// The network `name`, if it exists. Call with the lock held.
    pub fn load(&self, _lock: &StateLock, name: &str) -> anyhow::Result<Option<NetworkState>> {
        let path = self.path(name);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("parsing {}", path.display()))
                .map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Every network. Call with the lock held.
    pub fn all(&self, lock: &StateLock) -> anyhow::Result<Vec<NetworkState>> {
        let mut names = Vec::new();
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(e).with_context(|| format!("listing {}", self.dir.display())),
        };
        for entry in entries {
            let entry = entry.with_context(|| format!("listing {}", self.dir.display()))?;
            let file = entry.file_name().to_string_lossy().into_owned();
            if let Some(name) = file.strip_suffix(".json") {
                names.push(name.to_string());
            }
        }
        names.sort();
        let mut networks = Vec::new();
        for name in names {
            networks.extend(self.load(lock, &name)?);
        }
        Ok(networks)
    }

    /// Write the network's file atomically. Call with the lock held.
    ///
    /// The new text goes to a spare file, `.NAME.json.tmp`, which then
    /// trades places with `NAME.json` in one `renameat2(RENAME_EXCHANGE)`:
    /// a reader, or a process that dies half-way, never sees half a file.
    /// The spare keeps the previous text and is overwritten next time, so
    /// after the first two saves no save makes or deletes an inode: a plain
    /// write-and-rename would do both, and allocating an inode is most of
    /// what a save costs on ext4 (`perf` over container starts), two or
    /// three times per container. Where the exchange is not supported, a
    /// plain rename does the same, at that cost.
    ///
    /// It is not fsync'd: what it describes (bridges, veths, rules, the
    /// processes holding leases) lives in the kernel's memory and does not
    /// survive the machine either, and a record that outlives them is made
    /// good again on its next use (`attach`, `gc`). An fsync costs about
    /// 8 ms on this disk.
    pub fn save(&self, _lock: &StateLock, net: &NetworkState) -> anyhow::Result<()> {
        use nix::fcntl::{renameat2, RenameFlags, AT_FDCWD};
        let path = self.path(&net.name);
        let tmp = self.spare(&net.name);
        let json = serde_json::to_vec_pretty(net).context("serializing the network state")?;
        fs::write(&tmp, &json).with_context(|| format!("writing {}", tmp.display()))?;
        let exchanged = renameat2(
            AT_FDCWD,
            &tmp,
            AT_FDCWD,
            &path,
            RenameFlags::RENAME_EXCHANGE,
        );
        match exchanged {
            Ok(()) => Ok(()),
            // ENOENT: no NAME.json yet. EINVAL: a file system without
            // the exchange.
            Err(_) => fs::rename(&tmp, &path)
                .with_context(|| format!("renaming {} to {}", tmp.display(), path.display())),
        }
    }

    /// The spare file [`StateDir::save`] writes before the exchange.
    fn spare(&self, name: &str) -> PathBuf {
        self.dir.join(format!(".{name}.json.tmp"))
    }

    /// Forget the network. Call with the lock held.
    pub fn remove(&self, _lock: &StateLock, name: &str) -> anyhow::Result<()> {
        let _ = fs::remove_file(self.spare(name));
        let path = self.path(name);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("removing {}", path.display()))
            }
            _ => Ok(()),
        }
    }
}

/// A process's start time, field 22 of `/proc/PID/stat`; `None` if there
/// is no such process, or only its zombie: a process that has exited but
/// whose parent has not yet wait(2)ed for it has left its namespaces
/// already, and is as dead as a container gets.
pub fn process_start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let mut fields = stat[stat.rfind(')')? + 2..].split(' ');
    if matches!(fields.next(), Some("Z" | "X")) {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn cidr_arithmetic() {
        let c = cidr("172.17.0.1/16");
        assert_eq!(c.network(), Ipv4Addr::new(172, 17, 0, 0));
        assert_eq!(c.broadcast(), Ipv4Addr::new(172, 17, 255, 255));
        assert!(c.contains(Ipv4Addr::new(172, 17, 3, 4)));
        assert!(!c.contains(Ipv4Addr::new(172, 18, 0, 1)));
        assert!(cidr("10.0.0.0/8").overlaps(&cidr("10.1.0.0/16")));
        assert!(cidr("10.1.0.0/16").overlaps(&cidr("10.0.0.0/8")));
        assert!(!cidr("10.1.0.0/16").overlaps(&cidr("10.2.0.0/16")));
        assert_eq!(cidr("10.0.0.0/30").nth(3), Some(Ipv4Addr::new(10, 0, 0, 3)));
        assert_eq!(cidr("10.0.0.0/30").nth(4), None);
        assert!("10.0.0.0".parse::<Cidr>().is_err());
        assert!("10.0.0.0/31".parse::<Cidr>().is_err());
    }

    #[test]
    fn pools_cut_subnets_in_order() {
        let p: Pool = "192.168.0.0/16:20".parse().unwrap();
        let subnets: Vec<String> = p.subnets().map(|s| s.to_string()).collect();
        assert_eq!(subnets.len(), 16);
        assert_eq!(subnets[0], "192.168.0.0/20");
        assert_eq!(subnets[1], "192.168.16.0/20");
        assert_eq!(subnets[15], "192.168.240.0/20");
        assert!("10.0.0.0/16:8".parse::<Pool>().is_err());
    }

    #[test]
    fn the_chosen_subnet_avoids_routes_and_other_networks() {
        let pools = default_pools();
        assert_eq!(
            choose_subnet(&pools, &[], &[]).unwrap(),
            cidr("172.17.0.0/16")
        );
        // A host on 172.16.0.0/12 (covers 172.17..172.31) and a network on
        // 192.168.0.0/20 leave 192.168.16.0/20.
        let routes = [cidr("172.16.0.0/12")];
        let taken = [cidr("192.168.0.0/20")];
        assert_eq!(
            choose_subnet(&pools, &routes, &taken).unwrap(),
            cidr("192.168.16.0/20")
        );
        let everything = [cidr("128.0.0.0/1")];
        assert!(choose_subnet(&pools, &everything, &[]).is_err());
    }

    #[test]
    fn records_from_before_subnet_given_was_kept_take_ip_as_before() {
        let mut doc = serde_json::to_value(network()).unwrap();
        doc.as_object_mut().unwrap().remove("subnet_given");
        let old: NetworkState = serde_json::from_value(doc).unwrap();
        assert!(old.subnet_given);
    }

    fn network() -> NetworkState {
        NetworkState {
            name: "n".into(),
            bridge: "dy0".into(),
            subnet: cidr("10.9.0.0/29"),
            gateway: Ipv4Addr::new(10, 9, 0, 1),
            names: true,
            netns: 1,
            rules: vec![],
            leases: vec![],
            persistent: false,
            id: String::new(),
            created: String::new(),
            labels: Default::default(),
            options: Default::default(),
            mtu: None,
            internal: false,
            draining: vec![],
            macvlan: None,
            subnet_given: true,
        }
    }

    fn lease(ip: Ipv4Addr) -> Lease {
        Lease {
            ip,
            pid: 1,
            start_time: 0,
            name: None,
            hostname: "h".into(),
            domainname: String::new(),
            veth: "v".into(),
            etc_dir: None,
            ports: vec![],
            rules: vec![],
            container_id: None,
            aliases: vec![],
            ifname: "eth0".into(),
            mac: String::new(),
            extra_hosts: vec![],
        }
    }

    #[test]
    fn allocation_skips_reserved_and_leased_addresses() {
        let mut net = network();
        // .0 network, .1 gateway, .7 broadcast: .2 to .6 are for containers.
        let mut got = Vec::new();
        for _ in 0..5 {
            let ip = net.allocate(None).unwrap();
            got.push(ip.octets()[3]);
            net.leases.push(lease(ip));
        }
        assert_eq!(got, [2, 3, 4, 5, 6]);
        assert!(net.allocate(None).is_err(), "the /29 is full");
        // An exited container's address whose veth the kernel has not
        // deleted yet is not handed out again.
        net.leases.retain(|l| l.ip != Ipv4Addr::new(10, 9, 0, 4));
        net.draining.push(Draining {
            ip: Ipv4Addr::new(10, 9, 0, 4),
            veth: "v".into(),
        });
        assert!(net.allocate(None).is_err(), "10.9.0.4 is draining");
        assert!(net.allocate(Some(Ipv4Addr::new(10, 9, 0, 4))).is_err());
        net.draining.clear();
        assert_eq!(net.allocate(None).unwrap(), Ipv4Addr::new(10, 9, 0, 4));
        assert!(net.allocate(Some(Ipv4Addr::new(10, 9, 0, 1))).is_err());
        assert!(net.allocate(Some(Ipv4Addr::new(10, 9, 0, 3))).is_err());
        assert!(net.allocate(Some(Ipv4Addr::new(10, 8, 0, 3))).is_err());
        assert_eq!(
            net.allocate(Some(Ipv4Addr::new(10, 9, 0, 4))).unwrap(),
            Ipv4Addr::new(10, 9, 0, 4)
        );
    }

    #[test]
    fn concurrent_allocations_under_the_lock_never_collide() {
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(StateDir::new(dir.path()));
        {
            let lock = store.lock().unwrap();
            let mut net = network();
            net.subnet = cidr("10.9.0.0/24");
            store.save(&lock, &net).unwrap();
        }
        // Separate processes would use separate open file descriptions; so
        // does each StateDir::lock call, so threads contend like processes.
        let handles: Vec<_> = (0..20)
            .map(|_| {
                let store = store.clone();
                std::thread::spawn(move || {
                    let lock = store.lock().unwrap();
                    let mut net = store.load(&lock, "n").unwrap().unwrap();
                    let ip = net.allocate(None).unwrap();
                    net.leases.push(lease(ip));
                    store.save(&lock, &net).unwrap();
                    ip
                })
            })
            .collect();
        let mut ips: Vec<Ipv4Addr> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        ips.sort();
        ips.dedup();
        assert_eq!(ips.len(), 20);
        let lock = store.lock().unwrap();
        assert_eq!(store.load(&lock, "n").unwrap().unwrap().leases.len(), 20);
    }

    #[test]
    fn start_time_of_this_process() {
        let me = std::process::id() as i32;
        assert!(process_start_time(me).is_some());
        assert_eq!(process_start_time(i32::MAX), None);
    }
}
