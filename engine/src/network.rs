//! The engine's side of lab 05: its settings for this data root, and the
//! networks `docker network` manages.
//!
//! The mechanism is lab 05's: a network is a bridge, a subnet, a gateway
//! and a few iptables rules, recorded in a state file under the data root
//! (`ROOT/network/NAME.json`). `network create` makes one and keeps it,
//! empty or not, until `network rm`, as Docker does. Docker's default
//! `bridge` network is predefined: made when its first container starts
//! (a dockyard that is never asked for networking makes no bridge and no
//! NAT rules on the host), then kept with its rules, as `docker0` is, so
//! that later containers start without running `iptables`; `network rm`
//! refuses it and `network prune` leaves it. `none` and `host` are modes,
//! not networks, and are listed as Docker lists them.
//!
//! ```text
//! $ ip link add br-3f2a type bridge && ip addr add 172.18.0.1/16 dev br-3f2a
//! $ iptables -t nat -A POSTROUTING -s 172.18.0.0/16 ! -o br-3f2a -j MASQUERADE
//! ```
//!
//! A **macvlan** network (`network create -d macvlan --subnet S --gateway G
//! -o parent=eth0`) is lab 05's too, in the same state files, with no
//! bridge and no rules: each member gets a child of the parent interface,
//! on the parent's wire with its own MAC (see lab 05's `macvlan` module).
//! Which driver makes a network is one `match` in [`create_with_ipam`].
//!
//! Names resolve through `/etc/hosts` (lab 05 rewrites every member's when
//! one joins or leaves), not through an embedded DNS server: see lab 05's
//! `names` module for why. What a *container* does with networks (`network
//! connect`, run's `--network`, inspect's `NetworkSettings`) is in
//! `container::connect`: this module sits below `container` and never
//! reads a container's record.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use crate::engine::Engine;
use crate::state::{now_rfc3339, ZERO_TIME};
use anyhow::{anyhow, bail, Context, Result};
use lab05_netns_veth as net;
use serde_json::{json, Value};

pub use net::ports::PortSpec;

/// Lab 05's settings for this data root: its networks' state lives under
/// the data root (so two data roots never share leases); daemon.json's
/// `bip` sets the default bridge's address, `default-address-pools` where
/// new networks' subnets come from, and `mtu` their veths' MTU.
pub fn net_config(engine: &Engine) -> net::Config {
    let mut cfg = net::Config {
        state_dir: engine.root.join("network"),
        mtu: engine.config.mtu,
        ..Default::default()
    };
    if let Some(bip) = engine.config.bip.as_deref().and_then(|b| b.parse().ok()) {
        cfg.bip = Some(bip);
    }
    let pools: Vec<net::ipam::Pool> = engine
        .config
        .default_address_pools
        .iter()
        .filter_map(|p| format!("{}:{}", p.base, p.size).parse().ok())
        .collect();
    if !pools.is_empty() {
        cfg.pools = pools;
    }
    cfg
}

/// `--add-host NAME:IP` as (NAME, IP); IP may be `host-gateway`.
pub fn split_add_host(h: &str) -> Result<(String, String)> {
    match h.split_once(':') {
        Some((name, ip)) if !name.is_empty() && !ip.is_empty() => {
            Ok((name.to_string(), ip.to_string()))
        }
        _ => {
            bail!("invalid argument {h:?} for \"--add-host\" flag: bad format for add-host: {h:?}")
        }
    }
}

/// What inspect shows under NetworkSettings, kept in the state.
pub fn endpoint_json(ep: &net::Endpoint) -> serde_json::Value {
    serde_json::json!({
        "Network": ep.network,
        "IPAddress": ep.ip.to_string(),
        "IPPrefixLen": ep.prefix,
        "Gateway": ep.gateway.to_string(),
        "MacAddress": ep.mac,
        "Bridge": ep.bridge,
        "Ports": ep.ports.iter().map(|p| serde_json::json!({
            "ContainerPort": p.container_port,
            "Proto": format!("{:?}", p.proto).to_lowercase(),
            "HostIp": p.host_ip.map(|i| i.to_string()).unwrap_or_else(|| "0.0.0.0".into()),
            "HostPort": p.host_port,
        })).collect::<Vec<_>>(),
    })
}

/// The bridge networks lab 05 holds for this data root.
pub fn networks(engine: &Engine) -> Result<Vec<net::ipam::NetworkState>> {
    let cfg = net_config(engine);
    if !cfg.state_dir.exists() {
        return Ok(Vec::new());
    }
    net::networks(&cfg)
}

// ---- the networks of this data root, as docker shows them -------------------

/// The networks every engine has, as `docker network ls` shows them, with
/// their drivers. `none` and `host` are modes, not lab 05 networks.
pub const PREDEFINED: [(&str, &str); 3] =
    [("bridge", "bridge"), ("host", "host"), ("none", "null")];

/// Whether `name` is one of the [`PREDEFINED`] networks.
pub fn is_predefined(name: &str) -> bool {
    PREDEFINED.iter().any(|(n, _)| *n == name)
}

/// A stable ID for a network that has none of its own (the predefined
/// ones, and the default bridge): the sha256 of its name.
pub fn id_of(name: &str) -> String {
    use sha2::Digest;
    hex(&sha2::Sha256::digest(
        format!("dockyard-network:{name}").as_bytes(),
    ))
}

/// The network a container joins when `--network` is not given (or is
/// docker's `default`): the default bridge, as in docker, unless
/// daemon.json's `"bridge": "none"` turned it off, or the engine is
/// rootless (bridges and veths are made in the host's network namespace,
/// which only root may change): then `none`. Asking for `bridge` by name
/// when there is none is docker's "network bridge not found".
pub fn container_network(engine: &Engine, asked: &str) -> Result<String> {
    let bridge = engine.config.default_bridge();
    match asked {
        "" | "default" if bridge && !engine.rootless => Ok("bridge".into()),
        "" | "default" => Ok("none".into()),
        // (A rootless engine passes it on, to be refused with the reason.)
        "bridge" if !bridge && !engine.rootless => bail!("network bridge not found"),
        other => Ok(other.to_string()),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A network's ID: the one it was created with, else [`id_of`] its name.
pub fn network_id(n: &net::ipam::NetworkState) -> String {
    if n.id.is_empty() {
        id_of(&n.name)
    } else {
        n.id.clone()
    }
}

/// The endpoint ID of a container on a network.
pub fn endpoint_id(n: &net::ipam::NetworkState, lease: &net::ipam::Lease) -> String {
    id_of(&format!(
        "{}/{}/{}",
        network_id(n),
        lease.container_id.as_deref().unwrap_or(""),
        lease.ifname
    ))
}

/// 64 hex digits from the kernel's random pool: a new network's ID.
fn random_id() -> Result<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .context("reading /dev/urandom")?;
    Ok(hex(&bytes))
}

/// Find a network by name, full ID or unique ID prefix.
pub fn resolve<'a>(
    nets: &'a [net::ipam::NetworkState],
    name: &str,
) -> Option<&'a net::ipam::NetworkState> {
    if let Some(n) = nets.iter().find(|n| n.name == name) {
        return Some(n);
    }
    let by_id: Vec<_> = nets
        .iter()
        .filter(|n| !name.is_empty() && network_id(n).starts_with(name))
        .collect();
    match by_id[..] {
        [one] => Some(one),
        _ => None,
    }
}

/// One network as `network ls` lists it (and `GET /networks` summarises it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkSummary {
    pub id: String,
    pub name: String,
    pub driver: String,
    pub internal: bool,
    pub labels: BTreeMap<String, String>,
    /// RFC 3339; empty for the predefined ones.
    pub created: String,
}

impl NetworkSummary {
    /// docker's SCOPE column: an overlay network is the cluster's.
    pub fn scope(&self) -> &'static str {
        if self.driver == "overlay" {
            "global"
        } else {
            "local"
        }
    }
}

/// One of `network ls`'s filters: `name=` (a substring), `id=` (a prefix),
/// `driver=`, `label=KEY[=VALUE]`, `type=custom|builtin`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkFilter {
    Name(String),
    Id(String),
    Driver(String),
    Label {
        key: String,
        value: Option<String>,
    },
    /// `type=builtin` (true) or `type=custom` (false).
    Builtin(bool),
}

impl NetworkFilter {
    /// The filter `key=value`, refused as docker refuses it.
    pub fn new(key: &str, value: &str) -> Result<NetworkFilter> {
        Ok(match key {
            "name" => NetworkFilter::Name(value.into()),
            "id" => NetworkFilter::Id(value.into()),
            "driver" => NetworkFilter::Driver(value.into()),
            "label" => match value.split_once('=') {
                Some((k, v)) => NetworkFilter::Label {
                    key: k.into(),
                    value: Some(v.into()),
                },
                None => NetworkFilter::Label {
                    key: value.into(),
                    value: None,
                },
            },
            "type" => match value {
                "custom" => NetworkFilter::Builtin(false),
                "builtin" => NetworkFilter::Builtin(true),
                _ => bail!("invalid filter: 'type'='{value}'"),
            },
            _ => bail!("invalid filter '{key}'"),
        })
    }

    pub fn matches(&self, n: &NetworkSummary) -> bool {
        match self {
            NetworkFilter::Name(v) => n.name.contains(v.as_str()),
            NetworkFilter::Id(v) => n.id.starts_with(v.as_str()),
            NetworkFilter::Driver(v) => n.driver == *v,
            NetworkFilter::Label { key, value } => match value {
                Some(v) => n.labels.get(key).is_some_and(|x| x == v),
                None => n.labels.contains_key(key),
            },
            NetworkFilter::Builtin(builtin) => is_predefined(&n.name) == *builtin,
        }
    }
}

/// The networks of this data root that pass every filter, by name: the
/// predefined ones and lab 05's.
pub fn list(engine: &Engine, filters: &[NetworkFilter]) -> Result<Vec<NetworkSummary>> {
    let nets = networks(engine)?;
    let mut all: Vec<NetworkSummary> = PREDEFINED
        .iter()
        .filter(|(name, _)| !nets.iter().any(|n| n.name == *name))
        .filter(|(name, _)| *name != "bridge" || engine.config.default_bridge())
        .map(|(name, driver)| NetworkSummary {
            id: id_of(name),
            name: name.to_string(),
            driver: driver.to_string(),
            internal: false,
            labels: BTreeMap::new(),
            created: String::new(),
        })
        .collect();
    // The default bridge's state outlives a `"bridge": "none"` set later:
    // it is not a network then.
    let gone = |n: &&net::ipam::NetworkState| n.name == "bridge" && !engine.config.default_bridge();
    all.extend(nets.iter().filter(|n| !gone(n)).map(|n| NetworkSummary {
        id: network_id(n),
        name: n.name.clone(),
        driver: driver_of(n).into(),
        internal: n.internal,
        labels: n.labels.clone(),
        created: n.created.clone(),
    }));
    // Overlay networks this host has no part of yet: the cluster's.
    let global = crate::cluster::list(engine).unwrap_or_else(|e| {
        eprintln!("dockyard: overlay networks not listed: {e:#}");
        Vec::new()
    });
    all.extend(
        global
            .into_iter()
            .filter(|g| !nets.iter().any(|n| n.name == g.name))
            .map(|g| NetworkSummary {
                id: g.id,
                name: g.name,
                driver: "overlay".into(),
                internal: true,
                labels: g.labels,
                created: g.created,
            }),
    );
    all.retain(|n| filters.iter().all(|f| f.matches(n)));
    all.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(all)
}

/// `network inspect`'s document (`GET /networks/{id}`): one of lab 05's
/// networks, found by name or ID, or a predefined one.
pub fn inspect(engine: &Engine, name: &str) -> Result<Value> {
    let nets = networks(engine)?;
    let disabled = name == "bridge" && !engine.config.default_bridge();
    let local = resolve(&nets, name).filter(|_| !disabled);
    if let Some(n) = local.filter(|n| crate::cluster::local_vni(n).is_none()) {
        return Ok(inspect_doc(n));
    }
    if !is_predefined(name) {
        if let Some(doc) = crate::cluster::inspect(engine, local.map_or(name, |n| &n.name))? {
            return Ok(doc);
        }
    }
    match PREDEFINED.iter().find(|(n, _)| *n == name && !disabled) {
        Some((name, driver)) => Ok(json!({
            "Name": name, "Id": id_of(name), "Created": ZERO_TIME,
            "Scope": "local", "Driver": driver, "EnableIPv4": true, "EnableIPv6": false,
            "IPAM": {"Driver": "default", "Options": null, "Config": []},
            "Internal": false, "Containers": {}, "Options": {}, "Labels": {},
        })),
        None => bail!("network {name} not found"),
    }
}

/// The inspect document of one of lab 05's networks.
fn inspect_doc(n: &net::ipam::NetworkState) -> Value {
    let mut containers = serde_json::Map::new();
    for l in &n.leases {
        let id = l
            .container_id
            .clone()
            .unwrap_or_else(|| format!("pid-{}", l.pid));
        containers.insert(
            id,
            json!({
                "Name": l.name.clone().unwrap_or_default(),
                "EndpointID": endpoint_id(n, l),
                "MacAddress": l.mac,
                "IPv4Address": format!("{}/{}", l.ip, n.subnet.prefix),
                "IPv6Address": "",
            }),
        );
    }
    let mut options = n.options.clone();
    // A bridge network shows its bridge; a macvlan one only what it was
    // given (`parent`, `macvlan_mode`), as docker shows them.
    if n.macvlan.is_none() {
        options
            .entry("com.docker.network.bridge.name".into())
            .or_insert_with(|| n.bridge.clone());
    }
    let mut ipam = json!({"Subnet": n.subnet.to_string(), "Gateway": n.gateway.to_string()});
    if let Some(range) = n.macvlan.as_ref().and_then(|m| m.ip_range) {
        ipam["IPRange"] = json!(range.to_string());
    }
    if let Some(mtu) = n.mtu {
        options
            .entry("com.docker.network.driver.mtu".into())
            .or_insert_with(|| mtu.to_string());
    }
    if n.name == net::DEFAULT_NETWORK {
        options
            .entry("com.docker.network.bridge.default_bridge".into())
            .or_insert_with(|| "true".into());
    }
    json!({
        "Name": n.name,
        "Id": network_id(n),
        "Created": if n.created.is_empty() { ZERO_TIME.to_string() } else { n.created.clone() },
        "Scope": "local",
        "Driver": driver_of(n),
        "EnableIPv4": true,
        "EnableIPv6": false,
        "IPAM": {"Driver": "default", "Options": {}, "Config": [ipam]},
        "Internal": n.internal,
        "Attachable": false,
        "Ingress": false,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": false,
        "Containers": containers,
        "Options": options,
        "Labels": n.labels,
    })
}

/// What `network create` (and `POST /networks/create`) is asked for.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub name: String,
    /// "bridge" or "macvlan".
    pub driver: String,
    /// CIDR, e.g. 172.30.0.0/16 (default: the next free pool).
    pub subnet: Option<String>,
    pub gateway: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// `-o`: com.docker.network.bridge.name, com.docker.network.driver.mtu;
    /// for macvlan, parent and macvlan_mode.
    pub options: BTreeMap<String, String>,
    pub internal: bool,
}

/// IPAM settings of `network create` beyond its subnet and gateway.
#[derive(Debug, Clone, Default)]
pub struct Ipam {
    /// `--ip-range`: the part of the subnet addresses are handed out from
    /// (macvlan networks).
    pub ip_range: Option<String>,
}

/// `network create`: records the network, which stays, empty or not, until
/// `network rm`. Returns its ID.
pub fn create(engine: &Engine, opts: &CreateOptions) -> Result<String> {
    create_with_ipam(engine, opts, &Ipam::default())
}

/// [`create`], with `--ip-range`: one arm per driver.
pub fn create_with_ipam(engine: &Engine, opts: &CreateOptions, ipam: &Ipam) -> Result<String> {
    let name = &opts.name;
    if is_predefined(name) {
        bail!("network with name {name} already exists");
    }
    if opts.driver == "overlay" {
        if ipam.ip_range.is_some() {
            bail!("--ip-range: dockyard's overlay networks hand out the whole subnet");
        }
        // Refused rather than ignored: a user who asks for one of these and
        // gets a network without it would not know.
        if opts.internal {
            bail!(
                "--internal: dockyard's overlay networks are internal already (there is no \
                 docker_gwbridge: their containers reach only each other); leave it out"
            );
        }
        if let Some((k, v)) = opts.options.iter().next() {
            let opt = if v.is_empty() {
                k.clone()
            } else {
                format!("{k}={v}")
            };
            bail!(
                "-o {opt}: dockyard's overlay driver takes no options (no encryption; the MTU \
                 comes from the underlay, the VNI from the cluster store)"
            );
        }
        // Global scope: the network lives in the cluster store, not here.
        return crate::cluster::create_network(
            engine,
            opts.subnet.as_deref(),
            opts.gateway.as_deref(),
            name,
            &opts.labels,
        );
    }
    let lab = lab_options(opts)?;
    let made = match opts.driver.as_str() {
        "bridge" => {
            if ipam.ip_range.is_some() {
                bail!("--ip-range: dockyard's bridge networks hand out the whole subnet");
            }
            net::create(&net_config(engine), &lab)?
        }
        "macvlan" => {
            net::macvlan::create_macvlan(&net_config(engine), &lab, &macvlan_spec(opts, ipam)?)?
        }
        driver => bail!(
            "plugin {driver:?} not found: dockyard has the bridge, macvlan and overlay drivers \
             (ipvlan networks are not made by this engine)"
        ),
    };
    Ok(made.id)
}

/// What lab 05 is asked for, from docker's flags: the subnet, gateway and
/// MTU checked, a new ID and creation time.
fn lab_options(opts: &CreateOptions) -> Result<net::NetworkOptions> {
    let subnet: Option<net::ipam::Cidr> = opts
        .subnet
        .as_deref()
        .map(|s| s.parse().map_err(|e: String| anyhow!("invalid subnet {e}")))
        .transpose()?;
    let gateway: Option<Ipv4Addr> = opts
        .gateway
        .as_deref()
        .map(|g| {
            g.parse()
                .map_err(|_| anyhow!("invalid gateway address {g:?}"))
        })
        .transpose()?;
    let bridge = opts.options.get("com.docker.network.bridge.name").cloned();
    let mtu = opts
        .options
        .get("com.docker.network.driver.mtu")
        .map(|m| {
            m.parse::<u32>()
                .ok()
                .filter(|m| (68..=65535).contains(m))
                .ok_or_else(|| anyhow!("invalid MTU {m:?} (68 to 65535)"))
        })
        .transpose()?;
    Ok(net::NetworkOptions {
        name: opts.name.clone(),
        bridge,
        subnet,
        gateway,
        mtu,
        internal: opts.internal,
        persistent: true,
        id: random_id()?,
        created: now_rfc3339(),
        labels: opts.labels.clone(),
        options: opts.options.clone(),
    })
}

/// A macvlan network's driver options, as docker reads them: `-o parent=`
/// (required here) and `-o macvlan_mode=` (bridge or private), and
/// `--ip-range`.
fn macvlan_spec(opts: &CreateOptions, ipam: &Ipam) -> Result<net::macvlan::Macvlan> {
    let parent = opts.options.get("parent").cloned().unwrap_or_default();
    let mode = opts
        .options
        .get("macvlan_mode")
        .map(String::as_str)
        .unwrap_or("")
        .parse()
        .map_err(|e: String| anyhow!(e))?;
    let ip_range = ipam
        .ip_range
        .as_deref()
        .map(|r| {
            r.parse()
                .map_err(|e: String| anyhow!("invalid --ip-range {e}"))
        })
        .transpose()?;
    Ok(net::macvlan::Macvlan {
        parent,
        mode,
        ip_range,
    })
}

/// The driver of one of lab 05's networks, as `network ls` names it:
/// "overlay" for this host's part of an overlay network (see the cluster
/// module), "macvlan" for a macvlan one, else "bridge".
pub fn driver_of(n: &net::ipam::NetworkState) -> &'static str {
    if crate::cluster::local_vni(n).is_some() {
        "overlay"
    } else if n.macvlan.is_some() {
        "macvlan"
    } else {
        "bridge"
    }
}

/// `network rm NAME`: a predefined network cannot go; lab 05 refuses one
/// that still has members.
pub fn remove(engine: &Engine, name: &str) -> Result<()> {
    if is_predefined(name) {
        bail!("{name} is a pre-defined network and cannot be removed");
    }
    let nets = networks(engine)?;
    let local = resolve(&nets, name);
    if local.is_none_or(|n| crate::cluster::local_vni(n).is_some()) {
        let name = local.map_or(name, |n| &n.name);
        if crate::cluster::remove(engine, &net_config(engine), name)? {
            return Ok(());
        }
    }
    let Some(n) = local else {
        bail!("network {name} not found");
    };
    net::remove(&net_config(engine), &n.name)
}

/// `network prune`: every network made with `network create` that has no
/// live member goes (the default bridge stays, as docker0 does). Returns
/// their names.
pub fn prune(engine: &Engine) -> Result<Vec<String>> {
    let cfg = net_config(engine);
    let mut deleted = Vec::new();
    for n in networks(engine)? {
        if n.name == net::DEFAULT_NETWORK || !n.persistent || driver_of(&n) == "overlay" {
            continue;
        }
        let in_use = n.leases.iter().any(net::ipam::Lease::alive);
        if !in_use {
            net::remove(&cfg, &n.name)?;
            deleted.push(n.name);
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(name: &str, labels: &[(&str, &str)]) -> NetworkSummary {
        NetworkSummary {
            id: id_of(name),
            name: name.into(),
            driver: "bridge".into(),
            internal: false,
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            created: String::new(),
        }
    }

    #[test]
    fn filters_match_like_docker_network_ls() {
        let n = summary("frontend", &[("team", "a"), ("tier", "")]);
        let f = |k: &str, v: &str| NetworkFilter::new(k, v).unwrap().matches(&n);
        assert!(f("name", "front"), "name is a substring match");
        assert!(!f("name", "back"));
        assert!(f("id", &id_of("frontend")[..6]));
        assert!(f("label", "team=a"));
        assert!(f("label", "tier"));
        assert!(f("driver", "bridge"));
        assert!(f("type", "custom"));
        assert!(!f("label", "team=b"));
        assert!(!f("type", "builtin"));
        assert!(NetworkFilter::Builtin(true).matches(&summary("host", &[])));
        assert_eq!(
            NetworkFilter::new("bogus", "1").unwrap_err().to_string(),
            "invalid filter 'bogus'"
        );
        assert_eq!(
            NetworkFilter::new("type", "x").unwrap_err().to_string(),
            "invalid filter: 'type'='x'"
        );
    }

    #[test]
    fn add_host_needs_name_and_address() {
        assert_eq!(
            split_add_host("db:10.0.0.5").unwrap(),
            ("db".to_string(), "10.0.0.5".to_string())
        );
        assert_eq!(split_add_host("gw:host-gateway").unwrap().1, "host-gateway");
        assert!(split_add_host("db").is_err());
        assert!(split_add_host(":1.2.3.4").is_err());
    }

    #[test]
    fn ids_are_stable_and_64_hex() {
        assert_eq!(id_of("bridge"), id_of("bridge"));
        assert_ne!(id_of("bridge"), id_of("host"));
        assert_eq!(id_of("x").len(), 64);
        assert_eq!(random_id().unwrap().len(), 64);
    }

    #[test]
    fn predefined_networks_are_listed_and_inspected_without_lab_05() {
        let root = tempfile::tempdir().unwrap();
        let engine = Engine::for_tests(root.path());
        let names: Vec<String> = list(&engine, &[])
            .unwrap()
            .into_iter()
            .map(|n| n.name)
            .collect();
        assert_eq!(names, ["bridge", "host", "none"]);
        let none = inspect(&engine, "none").unwrap();
        assert_eq!(none["Driver"], "null");
        assert_eq!(none["Id"], id_of("none"));
        assert_eq!(
            inspect(&engine, "nope").unwrap_err().to_string(),
            "network nope not found"
        );
        assert_eq!(
            remove(&engine, "host").unwrap_err().to_string(),
            "host is a pre-defined network and cannot be removed"
        );
        let opts = CreateOptions {
            name: "n".into(),
            driver: "ipvlan".into(),
            ..Default::default()
        };
        assert!(create(&engine, &opts)
            .unwrap_err()
            .to_string()
            .starts_with("plugin \"ipvlan\" not found"));
        let overlay = CreateOptions {
            driver: "overlay".into(),
            ..opts.clone()
        };
        let err = create(&engine, &overlay).unwrap_err().to_string();
        assert!(
            err.starts_with("overlay networks need a cluster store"),
            "{err}"
        );
        let internal = CreateOptions {
            internal: true,
            ..overlay.clone()
        };
        let err = create(&engine, &internal).unwrap_err().to_string();
        assert!(
            err.starts_with("--internal: dockyard's overlay networks are internal already"),
            "{err}"
        );
        let encrypted = CreateOptions {
            options: [("encrypted".to_string(), String::new())].into(),
            ..overlay
        };
        let err = create(&engine, &encrypted).unwrap_err().to_string();
        assert!(
            err.starts_with("-o encrypted: dockyard's overlay driver takes no options"),
            "{err}"
        );
        let opts = CreateOptions {
            driver: "macvlan".into(),
            options: [("macvlan_mode".to_string(), "vepa".to_string())].into(),
            ..opts
        };
        assert!(create(&engine, &opts)
            .unwrap_err()
            .to_string()
            .starts_with("requested macvlan mode 'vepa' is not valid"));
    }
}
