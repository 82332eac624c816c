//! The cluster store: overlay networks that span hosts, kept in etcd.
//!
//! A bridge network is one host's business; an **overlay** network is the
//! cluster's. Every host that joins a cluster (daemon.json's
//! `cluster-store`, `etcd://HOST:2379`, and `cluster-advertise`, the
//! interface or address other hosts reach it at) reads and writes the same
//! keys, as docker's classic overlay driver did with consul or etcd:
//!
//! ```text
//! /dockyard/network/NAME        {"Id","Name","Subnet","Gateway","Vni",...}   a network, scope global
//! /dockyard/vni/VNI             NAME                                          who has that segment
//! /dockyard/endpoint/NAME/IP    {"Mac","Vtep","Name","Container"}            an address, held by a host
//! ```
//!
//! - `network create -d overlay` on any host puts the network (and its
//!   VNI) in one transaction; every host then lists it. No host makes
//!   anything for it until a container of its own joins.
//! - `run --network NAME` claims an address with a compare-and-swap
//!   transaction (put the endpoint key only if it was never created), so
//!   no two containers anywhere share one; the key is bound to the host's
//!   etcd **lease**, which the host's `dockyard system service` keeps alive:
//!   a host that dies leaves its addresses to expire with its lease. The
//!   host then joins the network (lab 05's `vxlan::join`: a bridge with a
//!   VXLAN port) and starts the container on it with that address.
//! - Each host's service follows the store (the `follow` module): for the
//!   containers of other hosts it programs forwarding entries and names
//!   (lab 05's `vxlan::program` and `vxlan::write_hosts`); for its own it
//!   publishes their names, and gives back the addresses of containers
//!   that are gone.
//!
//! The data path never asks the store: with etcd down, running containers
//! keep talking over what was programmed; only a new `run` (which needs an
//! address) fails, and says why. Overlay containers have no way out of the
//! overlay (lab 05 makes it internal): dockyard has no `docker_gwbridge`.

pub mod etcd;
pub mod follow;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};
use lab05_netns_veth as net;
use net::ipam::Cidr;
use net::vxlan::{Underlay, Vxlan};
use serde::{Deserialize, Serialize};

use crate::engine::Engine;
use etcd::Etcd;

/// Where dockyard's keys live in etcd.
pub const PREFIX: &str = "/dockyard/";

/// The seconds a host's lease lasts without a keepalive.
pub const LEASE_TTL: u64 = 10;

/// The option that marks one of lab 05's networks as this host's part of
/// an overlay network, and the one that says its segment.
pub const DRIVER_OPTION: &str = "com.dockyard.driver";
pub const VNI_OPTION: &str = "com.dockyard.overlay.vni";

/// The first VNI dockyard gives out (docker's overlay starts at 256 too).
const FIRST_VNI: u32 = 256;

/// An overlay network, as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Network {
    pub id: String,
    pub name: String,
    pub created: String,
    pub subnet: String,
    pub gateway: String,
    pub vni: u32,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// A container's address on an overlay network, as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Endpoint {
    pub network: String,
    pub ip: Ipv4Addr,
    pub mac: String,
    /// Its host's underlay address.
    pub vtep: Ipv4Addr,
    /// Its container's name and ID: empty until its host starts it.
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub container: String,
}

fn network_key(name: &str) -> String {
    format!("{PREFIX}network/{name}")
}

fn vni_key(vni: u32) -> String {
    format!("{PREFIX}vni/{vni}")
}

fn endpoint_key(network: &str, ip: Ipv4Addr) -> String {
    format!("{PREFIX}endpoint/{network}/{ip}")
}

/// The cluster store of this engine, if daemon.json names one.
pub fn store(engine: &Engine) -> Result<Option<Etcd>> {
    engine
        .config
        .cluster_store
        .as_deref()
        .map(Etcd::new)
        .transpose()
}

fn require_store(engine: &Engine) -> Result<Etcd> {
    store(engine)?.ok_or_else(|| {
        anyhow!(
            "overlay networks need a cluster store: set \"cluster-store\" (etcd://HOST:2379) and \
             \"cluster-advertise\" (this host's interface or address) in daemon.json"
        )
    })
}

/// This host's underlay, from daemon.json's `cluster-advertise` (docker's
/// `eth0:2376`: the port, which docker's daemons talked on, is ignored).
pub fn underlay(engine: &Engine) -> Result<Underlay> {
    let Some(adv) = engine.config.cluster_advertise.as_deref() else {
        bail!("\"cluster-advertise\" is not set in daemon.json: which interface or address do other hosts reach this one at?");
    };
    let host = match adv.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => adv,
    };
    net::vxlan::underlay(host)
}

/// Every overlay network in the store.
pub fn networks(etcd: &Etcd) -> Result<Vec<Network>> {
    etcd.range_prefix(&format!("{PREFIX}network/"))?
        .into_iter()
        .map(|kv| serde_json::from_str(&kv.value).with_context(|| format!("store key {}", kv.key)))
        .collect()
}

/// The overlay networks a `network ls` on this host shows: none without a
/// store; with one that cannot be reached, an error.
pub fn list(engine: &Engine) -> Result<Vec<Network>> {
    match store(engine)? {
        Some(etcd) => networks(&etcd),
        None => Ok(Vec::new()),
    }
}

/// The overlay network `name` (or ID prefix), if the store has it.
pub fn find(etcd: &Etcd, name: &str) -> Result<Option<Network>> {
    let all = networks(etcd)?;
    if let Some(n) = all.iter().find(|n| n.name == name) {
        return Ok(Some(n.clone()));
    }
    let by_id: Vec<&Network> = all
        .iter()
        .filter(|n| !name.is_empty() && n.id.starts_with(name))
        .collect();
    Ok(match by_id[..] {
        [one] => Some(one.clone()),
        _ => None,
    })
}

/// Every endpoint of `network` in the store.
pub fn endpoints(etcd: &Etcd, network: &str) -> Result<Vec<Endpoint>> {
    etcd.range_prefix(&format!("{PREFIX}endpoint/{network}/"))?
        .into_iter()
        .map(|kv| serde_json::from_str(&kv.value).with_context(|| format!("store key {}", kv.key)))
        .collect()
}

/// `network create -d overlay`: put the network in the store, with a
/// segment (VNI) of its own and a subnet no other overlay has (default:
/// the first free 10.0.N.0/24, as docker's). Returns its ID.
pub fn create_network(
    engine: &Engine,
    subnet: Option<&str>,
    gateway: Option<&str>,
    name: &str,
    labels: &BTreeMap<String, String>,
) -> Result<String> {
    let etcd = require_store(engine)?;
    let (id, created) = (random_id()?, crate::state::now_rfc3339());
    let all = networks(&etcd)?;
    if all.iter().any(|n| n.name == name) {
        bail!("network with name {name} already exists");
    }
    let taken: Vec<Cidr> = all.iter().filter_map(|n| n.subnet.parse().ok()).collect();
    let subnet: Cidr = match subnet {
        Some(s) => {
            let c: Cidr = s
                .parse()
                .map_err(|e: String| anyhow!("invalid subnet {e}"))?;
            if let Some(t) = taken.iter().find(|t| t.overlaps(&c)) {
                bail!("Pool overlaps with other one on this address space ({t})");
            }
            c.subnet()
        }
        None => (0..=255u8)
            .map(|n| Cidr::new(Ipv4Addr::new(10, 0, n, 0), 24))
            .find(|c| !taken.iter().any(|t| t.overlaps(c)))
            .context("no free 10.0.N.0/24 left for an overlay network")?,
    };
    let gateway: Ipv4Addr = match gateway {
        Some(g) => g
            .parse()
            .map_err(|_| anyhow!("invalid gateway address {g:?}"))?,
        None => subnet.nth(1).context("the subnet is too small")?,
    };
    if !subnet.contains(gateway) {
        bail!("gateway {gateway} is not in subnet {subnet}");
    }
    // A name and a VNI, both new, in one transaction; a host that raced us
    // for the VNI makes us try the next.
    let used: Vec<u32> = all.iter().map(|n| n.vni).collect();
    let mut vni = FIRST_VNI;
    for _ in 0..64 {
        while used.contains(&vni) {
            vni += 1;
        }
        let n = Network {
            id: id.clone(),
            name: name.to_string(),
            created: created.clone(),
            subnet: subnet.to_string(),
            gateway: gateway.to_string(),
            vni,
            labels: labels.clone(),
        };
        let doc = serde_json::to_string(&n)?;
        let (nk, vk) = (network_key(name), vni_key(vni));
        if etcd.create_if_absent(&[(&nk, &doc), (&vk, name)], 0)? {
            return Ok(id);
        }
        if etcd.get(&nk)?.is_some() {
            bail!("network with name {name} already exists");
        }
        vni += 1;
    }
    bail!("could not find a free VNI for network {name}")
}

/// 64 hex digits from the kernel's random pool: a new network's ID, as
/// a bridge network's.
fn random_id() -> Result<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .context("reading /dev/urandom")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The state dir of this host's endpoint records (which addresses it
/// holds, to hand back or to claim again).
fn local_dir(engine: &Engine) -> PathBuf {
    engine.root.join("cluster")
}

fn lease_file(engine: &Engine) -> PathBuf {
    local_dir(engine).join("lease")
}

fn endpoint_file(engine: &Engine, network: &str, ip: Ipv4Addr) -> PathBuf {
    local_dir(engine)
        .join("endpoints")
        .join(format!("{network}@{ip}.json"))
}

/// Write one of this host's records, making its directory first.
fn save(path: &std::path::Path, text: &str) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    crate::state::write_atomic(path, text.as_bytes(), true)
}

/// The host's lease, as its service last wrote it.
fn host_lease(engine: &Engine) -> Result<i64> {
    let text = std::fs::read_to_string(lease_file(engine)).map_err(|_| {
        anyhow!(
            "this host has not joined the cluster store yet: start `dockyard system service` on \
             it (it holds the host's lease in etcd and follows the overlay networks)"
        )
    })?;
    text.trim()
        .parse()
        .with_context(|| format!("{}: not a lease ID", lease_file(engine).display()))
}

/// Whether `name` is (this host's part of) an overlay network in lab 05's
/// state: the VNI it runs on.
pub fn local_vni(n: &net::ipam::NetworkState) -> Option<u32> {
    (n.options.get(DRIVER_OPTION).map(String::as_str) == Some("overlay"))
        .then(|| n.options.get(VNI_OPTION)?.parse().ok())
        .flatten()
}

/// Make this host's part of `n` unless it has it: lab 05's bridge with a
/// VXLAN port (see `vxlan::join`).
fn ensure_joined(cfg: &net::Config, n: &Network, under: &Underlay) -> Result<()> {
    let have = net::networks(cfg)?;
    if let Some(local) = have.iter().find(|l| l.name == n.name) {
        if local_vni(local) != Some(n.vni) {
            bail!(
                "network {} exists on this host as a bridge network, and in the cluster store as \
                 an overlay one: remove one of them",
                n.name
            );
        }
        return Ok(());
    }
    let subnet: Cidr = n.subnet.parse().map_err(anyhow::Error::msg)?;
    let opts = net::NetworkOptions {
        name: n.name.clone(),
        subnet: Some(subnet),
        gateway: n.gateway.parse().ok(),
        id: n.id.clone(),
        created: n.created.clone(),
        labels: n.labels.clone(),
        options: BTreeMap::from([
            (DRIVER_OPTION.to_string(), "overlay".to_string()),
            (VNI_OPTION.to_string(), n.vni.to_string()),
        ]),
        ..Default::default()
    };
    match net::vxlan::join(cfg, &opts, &Vxlan::for_vni(n.vni), under) {
        // Another `run` on this host made it a moment ago.
        Err(e) if e.to_string().contains("already exists") => Ok(()),
        other => other.map(drop),
    }
}

// ANCHOR: claim
/// `run --network NAME` for an overlay network: claim an address for the
/// container (the one asked with `--ip`, or the first free one) with a
/// compare-and-swap transaction bound to this host's lease, and make this
/// host's part of the network. `None` if `name` is not an overlay network
/// (a local bridge network is never looked up in the store).
pub fn claim(
    engine: &Engine,
    cfg: &net::Config,
    name: &str,
    asked: Option<&str>,
) -> Result<Option<(String, Ipv4Addr)>> {
    let local = net::networks(cfg).unwrap_or_default();
    if let Some(l) = local.iter().find(|l| l.name == name) {
        if local_vni(l).is_none() {
            return Ok(None);
        }
    }
    let Some(etcd) = store(engine)? else {
        return Ok(None);
    };
    let Some(n) = find(&etcd, name).context("looking up the network in the cluster store")? else {
        return Ok(None);
    };
    let under = underlay(engine)?;
    let lease = host_lease(engine)?;
    let subnet: Cidr = n.subnet.parse().map_err(anyhow::Error::msg)?;
    let gateway: Ipv4Addr = n.gateway.parse()?;
    let asked: Option<Ipv4Addr> = asked
        .map(|a| a.parse().map_err(|_| anyhow!("invalid IP address {a:?}")))
        .transpose()?;
    if let Some(a) = asked {
        if !subnet.contains(a) || a == gateway {
            bail!("invalid address {a}: it is not in subnet {subnet} or is its gateway");
        }
    }
    for _ in 0..256 {
        let taken: Vec<Ipv4Addr> = endpoints(&etcd, &n.name)?.iter().map(|e| e.ip).collect();
        let ip = match asked {
            Some(a) if taken.contains(&a) => bail!("Address already in use"),
            Some(a) => a,
            // From the subnet's first address, as docker's IPAM: the
            // gateway, wherever it is, is skipped.
            None => (1..)
                .map_while(|i| subnet.nth(i))
                .find(|ip| *ip != gateway && *ip != subnet.broadcast() && !taken.contains(ip))
                .with_context(|| format!("no free address left in {subnet}"))?,
        };
        let ep = Endpoint {
            network: n.name.clone(),
            ip,
            mac: net::netlink::format_mac(net::mac_for(ip)),
            vtep: under.address,
            name: String::new(),
            container: String::new(),
        };
        let doc = serde_json::to_string(&ep)?;
        let key = endpoint_key(&n.name, ip);
        match etcd.create_if_absent(&[(&key, &doc)], lease) {
            Ok(true) => {
                save(&endpoint_file(engine, &n.name, ip), &doc)?;
                ensure_joined(cfg, &n, &under)?;
                return Ok(Some((n.name, ip)));
            }
            // Another container (here or on another host) was faster.
            Ok(false) => continue,
            Err(e) if e.to_string().contains("lease not found") => bail!(
                "this host's lease in the cluster store has expired: is `dockyard system service` \
                 running on this host?"
            ),
            Err(e) => return Err(e),
        }
    }
    bail!(
        "could not claim an address on {}: too much contention",
        n.name
    )
}
// ANCHOR_END: claim

/// `network rm` of an overlay network: refused while any host holds an
/// address on it (after handing back this host's stale ones); else this
/// host's part goes, then the network's keys. Other hosts take theirs
/// down when their service sees it gone.
pub fn remove_network(engine: &Engine, cfg: &net::Config, n: &Network) -> Result<()> {
    let etcd = require_store(engine)?;
    follow::release_stale(engine, &etcd, std::time::Duration::ZERO)?;
    let eps = endpoints(&etcd, &n.name)?;
    if let Some(e) = eps.first() {
        let who = if e.name.is_empty() {
            e.ip.to_string()
        } else {
            e.name.clone()
        };
        bail!(
            "error while removing network: network {} id {} has active endpoints ({who} on host {})",
            n.name,
            n.id,
            e.vtep
        );
    }
    net::vxlan::leave(cfg, &n.name, &Vxlan::for_vni(n.vni))?;
    etcd.delete(&network_key(&n.name), false)?;
    etcd.delete(&vni_key(n.vni), false)?;
    etcd.delete(&format!("{PREFIX}endpoint/{}/", n.name), true)?;
    Ok(())
}

/// `network inspect`'s document for an overlay network.
pub fn inspect_doc(n: &Network, eps: &[Endpoint]) -> serde_json::Value {
    let containers: serde_json::Map<String, serde_json::Value> = eps
        .iter()
        .filter(|e| !e.container.is_empty())
        .map(|e| {
            (
                e.container.clone(),
                serde_json::json!({
                    "Name": e.name, "MacAddress": e.mac,
                    "IPv4Address": format!("{}/{}", e.ip, n.subnet.rsplit('/').next().unwrap_or("24")),
                    "IPv6Address": "",
                }),
            )
        })
        .collect();
    serde_json::json!({
        "Name": n.name, "Id": n.id, "Created": n.created, "Scope": "global",
        "Driver": "overlay", "EnableIPv6": false,
        "IPAM": {"Driver": "default", "Options": {},
                 "Config": [{"Subnet": n.subnet, "Gateway": n.gateway}]},
        "Internal": true, "Attachable": false, "Ingress": false,
        "ConfigFrom": {"Network": ""}, "ConfigOnly": false,
        "Containers": containers,
        "Options": {"com.docker.network.driver.overlay.vxlanid_list": n.vni.to_string()},
        "Labels": n.labels,
        "Peers": eps.iter().map(|e| e.vtep.to_string())
            .collect::<std::collections::BTreeSet<_>>().into_iter()
            .map(|v| serde_json::json!({"Name": v, "IP": v})).collect::<Vec<_>>(),
    })
}

/// `network inspect NAME` for an overlay network: `None` if the store
/// (or the engine) has none of that name.
pub fn inspect(engine: &Engine, name: &str) -> Result<Option<serde_json::Value>> {
    let Some(etcd) = store(engine)? else {
        return Ok(None);
    };
    let Some(n) = find(&etcd, name)? else {
        return Ok(None);
    };
    Ok(Some(inspect_doc(&n, &endpoints(&etcd, &n.name)?)))
}

/// `network rm NAME`: `false` if it is not an overlay network.
pub fn remove(engine: &Engine, cfg: &net::Config, name: &str) -> Result<bool> {
    let Some(etcd) = store(engine)? else {
        return Ok(false);
    };
    let Some(n) = find(&etcd, name)? else {
        return Ok(false);
    };
    remove_network(engine, cfg, &n)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DaemonConfig;

    #[test]
    fn daemon_json_names_the_store_and_the_address_to_advertise() {
        let (c, warnings) = DaemonConfig::parse(
            r#"{"cluster-store": "etcd://10.99.0.1:2379", "cluster-advertise": "eth0:2376",
                "cluster-store-opts": {}}"#,
        )
        .unwrap();
        assert_eq!(c.cluster_store.as_deref(), Some("etcd://10.99.0.1:2379"));
        assert_eq!(c.cluster_advertise.as_deref(), Some("eth0:2376"));
        assert!(warnings[0].contains("cluster-store-opts"), "{warnings:?}");
        let consul = DaemonConfig::parse(r#"{"cluster-store": "consul://h:8500"}"#);
        assert!(consul.unwrap_err().to_string().contains("etcd://HOST:2379"));
    }

    #[test]
    fn keys_live_under_the_prefix() {
        let ip = Ipv4Addr::new(10, 0, 0, 2);
        assert_eq!(endpoint_key("ov1", ip), "/dockyard/endpoint/ov1/10.0.0.2");
        assert_eq!(network_key("ov1"), "/dockyard/network/ov1");
        assert_eq!(vni_key(256), "/dockyard/vni/256");
    }

    #[test]
    fn overlay_networks_need_a_store() {
        let root = tempfile::tempdir().unwrap();
        let engine = Engine::for_tests(root.path());
        let err = create_network(&engine, None, None, "ov", &BTreeMap::new());
        assert!(err
            .unwrap_err()
            .to_string()
            .contains("need a cluster store"));
        assert!(list(&engine).unwrap().is_empty());
    }
}
