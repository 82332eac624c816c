//! A container's networks: `network connect` and `disconnect`, run's
//! `--network` checked before anything is created, and the networks that
//! `inspect` shows under `NetworkSettings.Networks`. The same for bridge
//! and macvlan networks: lab 05 makes a veth or a macvlan child as the
//! network's driver says. `--ip` is checked here with docker's words.
//!
//! A running container that is connected gets its next interface (`eth1`,
//! `eth2`...) on the network at once, from lab 05; either way the network
//! is recorded in its configuration and rejoined at every start, as docker
//! does. By hand, connecting is one more veth pair:
//!
//! ```text
//! $ ip link add veth-h1 type veth peer name eth1 netns $PID
//! $ ip link set veth-h1 master br-3f2a up
//! $ nsenter -t $PID -n ip addr add 172.18.0.3/16 dev eth1
//! ```

use std::net::Ipv4Addr;

use anyhow::{anyhow, bail, Context, Result};
use lab05_netns_veth as net;
use serde_json::{json, Value};

use super::config::{config_of, Connection, ContainerConfig};
use crate::engine::Engine;
use crate::network::{endpoint_id, is_predefined, net_config, network_id, networks, resolve};
use crate::state::{Record, Status};

/// `network connect`'s options.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// `--alias`: more names its peers on that network resolve.
    pub aliases: Vec<String>,
    /// `--ip`: a fixed IPv4 address on that network.
    pub ip: Option<String>,
}

/// The container `name`, reconciled, and its configuration.
fn find_container(engine: &Engine, name: &str) -> Result<(Record, ContainerConfig)> {
    let r = engine
        .containers
        .reconcile(engine.containers.resolve(name)?)?;
    let c = config_of(&r)?;
    Ok((r, c))
}

fn is_running(r: &Record) -> bool {
    matches!(r.state.status, Status::Running | Status::Paused) && r.state.pid > 0
}

/// Change the stored configuration of container `id` (under the lock).
fn update_config(
    engine: &Engine,
    id: &str,
    change: impl FnOnce(&mut ContainerConfig),
) -> Result<()> {
    let lock = engine.containers.lock()?;
    let mut r = engine.containers.load(id)?;
    let mut c = config_of(&r)?;
    change(&mut c);
    r.config = serde_json::to_value(&c).context("serializing the container's config")?;
    engine.containers.save(&lock, &r)
}

/// `network connect NETWORK CONTAINER`: a running container gets its next
/// interface on the network now; either way the network is recorded in its
/// configuration and rejoined at every start.
pub fn connect_network(
    engine: &Engine,
    network: &str,
    container: &str,
    opts: &ConnectOptions,
) -> Result<()> {
    let (r, c) = find_container(engine, container)?;
    match c.network_mode.as_str() {
        "host" => bail!("container cannot be disconnected from host network or connected to host network"),
        "none" => bail!("container cannot be connected to multiple networks with one of the networks in private (none) mode"),
        m if m.starts_with("container:") => bail!("container sharing network namespace with another container or host cannot be connected to any other network"),
        _ => {}
    }
    if is_predefined(network) && network != net::DEFAULT_NETWORK {
        bail!("container cannot be connected to network {network}");
    }
    let nets = networks(engine)?;
    if resolve(&nets, network).is_some_and(|n| crate::cluster::local_vni(n).is_some()) {
        bail!("dockyard joins overlay networks only at run (--network {network}): its address comes from the cluster store");
    }
    let name = match resolve(&nets, network) {
        Some(n) => n.name.clone(),
        None if network == net::DEFAULT_NETWORK => network.to_string(),
        None => bail!("network {network} not found"),
    };
    if c.network_mode == name || c.connected.iter().any(|x| x.network == name) {
        bail!(
            "endpoint with name {} already exists in network {name}",
            r.name
        );
    }
    let ip = opts.ip.as_deref();
    if ip.is_some() && name == net::DEFAULT_NETWORK {
        bail!("user specified IP address is supported on user defined networks only");
    }
    let parsed: Option<Ipv4Addr> = match (ip, resolve(&nets, &name)) {
        (Some(ip), Some(n)) => Some(check_ip(n, ip)?),
        (Some(i), None) => Some(i.parse().map_err(|_| anyhow!("invalid IP address {i:?}"))?),
        (None, _) => None,
    };
    for alias in &opts.aliases {
        net::names::check_host_name(alias).context("--alias")?;
    }
    if is_running(&r) {
        let attach = net::AttachOptions {
            network: name.clone(),
            must_exist: name != net::DEFAULT_NETWORK,
            ip: parsed,
            name: Some(r.name.clone()),
            hostname: c.hostname.clone(),
            domainname: c.domainname.clone(),
            etc_dir: Some(engine.containers.dir_of(&r.id).join("etc")),
            aliases: opts.aliases.clone(),
            container_id: Some(r.id.clone()),
            ..Default::default()
        };
        net::attach(
            &net_config(engine),
            nix::unistd::Pid::from_raw(r.state.pid),
            &attach,
        )?;
    }
    update_config(engine, &r.id, |c| {
        c.connected.push(Connection {
            network: name,
            aliases: opts.aliases.clone(),
            ip: ip.map(str::to_string),
        })
    })
}

/// `network disconnect NETWORK CONTAINER`: the interface goes now if the
/// container runs, and the network from its configuration.
pub fn disconnect_network(engine: &Engine, network: &str, container: &str) -> Result<()> {
    let (r, c) = find_container(engine, container)?;
    let nets = networks(engine)?;
    let name = match resolve(&nets, network) {
        Some(n) => n.name.clone(),
        None if c.connected.iter().any(|x| x.network == network) => network.to_string(),
        None => bail!("network {network} not found"),
    };
    let recorded = c.connected.iter().any(|x| x.network == name);
    if is_running(&r) {
        let live = nets
            .iter()
            .filter(|n| n.name == name)
            .flat_map(|n| &n.leases)
            .any(|l| l.pid == r.state.pid);
        if live {
            net::disconnect(
                &net_config(engine),
                &name,
                nix::unistd::Pid::from_raw(r.state.pid),
            )?;
        } else if !recorded {
            bail!("container {} is not connected to network {name}", r.name);
        }
    } else if !recorded {
        if c.network_mode == name {
            bail!(
                "container {} is not running: dockyard disconnects a stopped container only from \
                 networks that network connect added",
                r.name
            );
        }
        bail!("container {} is not connected to network {name}", r.name);
    }
    if recorded {
        update_config(engine, &r.id, |c| c.connected.retain(|x| x.network != name))?;
    }
    Ok(())
}

/// What `inspect` shows under NetworkSettings.Networks for a container:
/// one entry per network it is on (read from lab 05's leases while it
/// runs), or the network it was created for, with empty addresses, when it
/// does not run.
pub fn container_networks(engine: &Engine, r: &Record, c: &ContainerConfig) -> Value {
    let nets = networks(engine).unwrap_or_default();
    let mut out = serde_json::Map::new();
    let short = &r.id[..12.min(r.id.len())];
    if r.state.pid > 0 {
        for n in &nets {
            for l in n.leases.iter().filter(|l| l.pid == r.state.pid) {
                let mut aliases: Vec<String> = l.aliases.clone();
                let aliases = if n.names {
                    aliases.push(short.to_string());
                    json!(aliases)
                } else {
                    Value::Null
                };
                out.insert(
                    n.name.clone(),
                    json!({
                        "Aliases": aliases,
                        "NetworkID": network_id(n),
                        "EndpointID": endpoint_id(n, l),
                        "Gateway": n.gateway.to_string(),
                        "IPAddress": l.ip.to_string(),
                        "IPPrefixLen": n.subnet.prefix,
                        "MacAddress": l.mac,
                    }),
                );
            }
        }
    }
    if out.is_empty() {
        out = configured_networks(c);
    }
    Value::Object(out)
}

/// The networks a stopped container will join, with empty addresses:
/// `--network` and those `network connect` added (none for the modes
/// `none`, `host` and `container:NAME`).
fn configured_networks(c: &ContainerConfig) -> serde_json::Map<String, Value> {
    let mode = c.network_mode.as_str();
    let mut out = serde_json::Map::new();
    if matches!(mode, "none" | "host") || mode.starts_with("container:") {
        return out;
    }
    let configured = std::iter::once((mode, c.network_aliases.clone())).chain(
        c.connected
            .iter()
            .map(|x| (x.network.as_str(), x.aliases.clone())),
    );
    for (name, aliases) in configured {
        out.insert(
            name.to_string(),
            json!({"Aliases": if aliases.is_empty() { Value::Null } else { json!(aliases) },
                   "NetworkID": "", "EndpointID": "", "Gateway": "",
                   "IPAddress": "", "IPPrefixLen": 0, "MacAddress": ""}),
        );
    }
    out
}

/// Refuse `run --network NAME` for a network that does not exist (the
/// default bridge is made on first use), and the flags that need a
/// user-defined network, as docker does; a network named by ID prefix is
/// recorded by its name.
pub fn check_network(engine: &Engine, c: &mut ContainerConfig) -> Result<()> {
    // docker's "default" is the default bridge.
    if c.network_mode == "default" {
        c.network_mode = net::DEFAULT_NETWORK.to_string();
    }
    let mode = c.network_mode.as_str();
    let user_defined =
        !matches!(mode, "none" | "host" | "bridge" | "default") && !mode.starts_with("container:");
    if !c.network_aliases.is_empty() && !user_defined {
        bail!("network-scoped aliases are only supported for user-defined networks");
    }
    if c.ip.is_some() && !user_defined {
        bail!("user specified IP address is supported on user defined networks only");
    }
    // An overlay network: an address claimed in the cluster store, then
    // attached as with --ip (see the cluster module).
    if user_defined {
        let claimed = crate::cluster::claim(engine, &net_config(engine), mode, c.ip.as_deref())?;
        if let Some((name, ip)) = claimed {
            (c.network_mode, c.ip) = (name, Some(ip.to_string()));
            return Ok(());
        }
    }
    if user_defined {
        let nets = networks(engine)?;
        let n = resolve(&nets, mode).with_context(|| format!("network {mode} not found"))?;
        if let Some(ip) = &c.ip {
            check_ip(n, ip)?;
        }
        c.network_mode = n.name.clone();
    }
    Ok(())
}

/// `--ip ADDR` on network `n`, refused with docker's words before anything
/// is made: a network whose subnet the engine picked (docker takes `--ip`
/// only where `--subnet` was given), an address outside the network's
/// subnet, or one that is taken
/// (a member's, the gateway's, the subnet's own). Lab 05 checks again, under
/// its lock, when the address is leased.
fn check_ip(n: &net::ipam::NetworkState, ip: &str) -> Result<Ipv4Addr> {
    let addr: Ipv4Addr = ip
        .parse()
        .map_err(|_| anyhow!("invalid IPv4 address: {ip}"))?;
    if !n.subnet_given {
        bail!(
            "user specified IP address is supported only when connecting to networks with user \
             configured subnets"
        );
    }
    if !n.subnet.contains(addr) {
        bail!("Invalid address {addr}: It does not belong to any of this network's subnets");
    }
    let taken = n.leases.iter().any(|l| l.ip == addr && l.alive())
        || n.draining.iter().any(|d| d.ip == addr)
        || [n.gateway, n.subnet.network(), n.subnet.broadcast()].contains(&addr);
    if taken {
        bail!("Address already in use");
    }
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stopped_container_shows_the_networks_it_will_join() {
        let c = ContainerConfig {
            network_mode: "front".into(),
            network_aliases: vec!["web".into()],
            connected: vec![Connection {
                network: "back".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let nets = configured_networks(&c);
        assert_eq!(nets.keys().collect::<Vec<_>>(), ["back", "front"]);
        assert_eq!(nets["front"]["Aliases"], json!(["web"]));
        assert_eq!(nets["back"]["Aliases"], Value::Null);
        assert_eq!(nets["back"]["IPAddress"], "");
        for mode in ["none", "host", "container:db"] {
            let c = ContainerConfig {
                network_mode: mode.into(),
                ..Default::default()
            };
            assert!(configured_networks(&c).is_empty(), "{mode}");
        }
    }

    #[test]
    fn ip_addresses_are_checked_with_dockers_words() {
        let n: net::ipam::NetworkState = serde_json::from_value(json!({
            "name": "mv", "bridge": "", "subnet": "10.66.0.0/24", "gateway": "10.66.0.254",
            "names": true, "netns": 1, "rules": [], "leases": [],
            "macvlan": {"parent": "eth0", "mode": "bridge"},
        }))
        .unwrap();
        assert_eq!(
            check_ip(&n, "10.66.0.7").unwrap(),
            Ipv4Addr::new(10, 66, 0, 7)
        );
        let err = |ip: &str| check_ip(&n, ip).unwrap_err().to_string();
        assert_eq!(
            err("10.67.0.7"),
            "Invalid address 10.67.0.7: It does not belong to any of this network's subnets"
        );
        assert_eq!(err("10.66.0.254"), "Address already in use");
        assert_eq!(err("10.66.0.0"), "Address already in use");
        assert_eq!(err("10.66.0"), "invalid IPv4 address: 10.66.0");
    }

    #[test]
    fn run_network_flags_need_a_user_defined_network() {
        let root = tempfile::tempdir().unwrap();
        let engine = Engine::for_tests(root.path());
        let mut c = ContainerConfig {
            network_mode: "default".into(),
            ..Default::default()
        };
        check_network(&engine, &mut c).unwrap();
        assert_eq!(c.network_mode, "bridge");
        c.ip = Some("172.18.0.5".into());
        assert_eq!(
            check_network(&engine, &mut c).unwrap_err().to_string(),
            "user specified IP address is supported on user defined networks only"
        );
        let mut c = ContainerConfig {
            network_mode: "nosuch".into(),
            ..Default::default()
        };
        assert_eq!(
            check_network(&engine, &mut c).unwrap_err().to_string(),
            "network nosuch not found"
        );
    }
}
