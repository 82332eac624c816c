//! `dockyard network ...`: user-defined bridge networks.
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
//! Names resolve through `/etc/hosts` (lab 05 rewrites every member's when
//! one joins or leaves), not through an embedded DNS server: see lab 05's
//! `names` module for why.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::Ipv4Addr;

use anyhow::{anyhow, bail, Context, Result};
use lab05_netns_veth as net;
use serde_json::{json, Value};

use super::Code;
use crate::cli::NetworkCmd;
use crate::format::table;
use crate::template;
use dockyard::container;
use dockyard::state::{Record, Status};
use dockyard::Engine;

/// The networks every engine has, as `docker network ls` shows them.
const PREDEFINED: [(&str, &str); 3] = [("bridge", "bridge"), ("host", "host"), ("none", "null")];

/// A stable ID for a network that has none of its own (the predefined
/// ones, and the default bridge): the sha256 of its name.
pub fn id_of(name: &str) -> String {
    use sha2::Digest;
    hex(&sha2::Sha256::digest(
        format!("dockyard-network:{name}").as_bytes(),
    ))
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
fn endpoint_id(n: &net::ipam::NetworkState, lease: &net::ipam::Lease) -> String {
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

/// One row of `network ls`, and what `--format` and `-f` see.
struct Row {
    id: String,
    name: String,
    driver: String,
    internal: bool,
    labels: BTreeMap<String, String>,
    created: String,
}

fn rows(engine: &Engine) -> Result<Vec<Row>> {
    let nets = dockyard::network::networks(engine)?;
    let mut rows: Vec<Row> = PREDEFINED
        .iter()
        .filter(|(name, _)| !nets.iter().any(|n| n.name == *name))
        .map(|(name, driver)| Row {
            id: id_of(name),
            name: name.to_string(),
            driver: driver.to_string(),
            internal: false,
            labels: BTreeMap::new(),
            created: String::new(),
        })
        .collect();
    rows.extend(nets.iter().map(|n| Row {
        id: network_id(n),
        name: n.name.clone(),
        driver: "bridge".into(),
        internal: n.internal,
        labels: n.labels.clone(),
        created: n.created.clone(),
    }));
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(rows)
}

/// `-f name=...`, `id=`, `driver=`, `label=KEY[=VALUE]`, as docker's.
fn matches(row: &Row, filters: &[String]) -> Result<bool> {
    for f in filters {
        let (key, value) = f
            .split_once('=')
            .ok_or_else(|| anyhow!("bad format of filter (expected name=value): {f}"))?;
        let ok = match key {
            "name" => row.name.contains(value),
            "id" => row.id.starts_with(value),
            "driver" => row.driver == value,
            "label" => match value.split_once('=') {
                Some((k, v)) => row.labels.get(k).is_some_and(|x| x == v),
                None => row.labels.contains_key(value),
            },
            "type" => match value {
                "custom" => !PREDEFINED.iter().any(|(n, _)| *n == row.name),
                "builtin" => PREDEFINED.iter().any(|(n, _)| *n == row.name),
                _ => bail!("invalid filter: 'type'='{value}'"),
            },
            _ => bail!("invalid filter '{key}'"),
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Find a network by name, full ID or unique ID prefix.
fn resolve<'a>(
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

/// `docker network ...`.
pub fn network(engine: &Engine, cmd: &NetworkCmd) -> Result<Code> {
    match cmd {
        NetworkCmd::Ls {
            quiet,
            filter,
            format,
            no_trunc,
        } => ls(engine, *quiet, filter, format.as_deref(), *no_trunc),
        NetworkCmd::Inspect { format, names } => inspect(engine, format.as_deref(), names),
        NetworkCmd::Create {
            driver,
            subnet,
            gateway,
            label,
            opt,
            internal,
            name,
        } => {
            let id = create(
                engine,
                driver,
                subnet.as_deref(),
                gateway.as_deref(),
                label,
                opt,
                *internal,
                name,
            )?;
            println!("{id}");
            Ok(0)
        }
        NetworkCmd::Rm { names } => rm(engine, names),
        NetworkCmd::Prune { force } => prune(engine, *force),
        NetworkCmd::Connect {
            alias,
            ip,
            network,
            container,
        } => connect(engine, network, container, alias, ip.as_deref()).map(|()| 0),
        NetworkCmd::Disconnect {
            network, container, ..
        } => disconnect(engine, network, container).map(|()| 0),
    }
}

fn ls(
    engine: &Engine,
    quiet: bool,
    filter: &[String],
    format: Option<&str>,
    no_trunc: bool,
) -> Result<Code> {
    let mut shown = Vec::new();
    for row in rows(engine)? {
        if matches(&row, filter)? {
            shown.push(row);
        }
    }
    let id = |r: &Row| {
        if no_trunc {
            r.id.clone()
        } else {
            r.id[..12].to_string()
        }
    };
    if quiet {
        for r in &shown {
            println!("{}", id(r));
        }
        return Ok(0);
    }
    if let Some(format) = format {
        let format = format.replace("\\t", "\t");
        let (table_mode, body) = match format.strip_prefix("table") {
            Some(rest) => (true, rest.trim_start().to_string()),
            None => (false, format),
        };
        let mut lines = Vec::new();
        for r in &shown {
            let labels: Vec<String> = r.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let doc = json!({
                "ID": id(r), "Name": r.name, "Driver": r.driver, "Scope": "local",
                "IPv6": false, "Internal": r.internal, "Labels": labels.join(","),
                "CreatedAt": r.created,
            });
            lines.push(template::render(&body, &doc)?);
        }
        if table_mode {
            let mut head = body.clone();
            for (f, h) in [
                ("ID", "NETWORK ID"),
                ("Name", "NAME"),
                ("Driver", "DRIVER"),
                ("Scope", "SCOPE"),
                ("IPv6", "IPV6"),
                ("Internal", "INTERNAL"),
                ("Labels", "LABELS"),
                ("CreatedAt", "CREATED AT"),
            ] {
                head = head.replace(&format!("{{{{.{f}}}}}"), h);
            }
            let split = |l: &str| l.split('\t').map(str::to_string).collect::<Vec<_>>();
            let headers = split(&head);
            let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
            let rows: Vec<Vec<String>> = lines.iter().map(|l| split(l)).collect();
            print!("{}", table(&headers, &rows));
        } else {
            for l in lines {
                println!("{l}");
            }
        }
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = shown
        .iter()
        .map(|r| vec![id(r), r.name.clone(), r.driver.clone(), "local".into()])
        .collect();
    print!(
        "{}",
        table(&["NETWORK ID", "NAME", "DRIVER", "SCOPE"], &rows)
    );
    Ok(0)
}

/// `network inspect`'s document for one of lab 05's networks.
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
    options
        .entry("com.docker.network.bridge.name".into())
        .or_insert_with(|| n.bridge.clone());
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
        "Created": if n.created.is_empty() { dockyard::state::ZERO_TIME.to_string() } else { n.created.clone() },
        "Scope": "local",
        "Driver": "bridge",
        "EnableIPv6": false,
        "IPAM": {
            "Driver": "default",
            "Options": {},
            "Config": [{"Subnet": n.subnet.to_string(), "Gateway": n.gateway.to_string()}],
        },
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

fn inspect(engine: &Engine, format: Option<&str>, names: &[String]) -> Result<Code> {
    let nets = dockyard::network::networks(engine)?;
    let mut docs = Vec::new();
    let mut code = 0;
    for name in names {
        let doc = match resolve(&nets, name) {
            Some(n) => inspect_doc(n),
            None => match PREDEFINED.iter().find(|(n, _)| n == name) {
                Some((name, driver)) => json!({
                    "Name": name, "Id": id_of(name), "Created": dockyard::state::ZERO_TIME,
                    "Scope": "local", "Driver": driver, "EnableIPv6": false,
                    "IPAM": {"Driver": "default", "Options": null, "Config": []},
                    "Internal": false, "Containers": {}, "Options": {}, "Labels": {},
                }),
                None => {
                    eprintln!("Error response from daemon: network {name} not found");
                    code = 1;
                    continue;
                }
            },
        };
        docs.push(doc);
    }
    match format {
        Some(f) => {
            for d in &docs {
                println!("{}", template::render(f, d)?);
            }
        }
        None => println!("{}", serde_json::to_string_pretty(&Value::Array(docs))?),
    }
    Ok(code)
}

#[allow(clippy::too_many_arguments)]
fn create(
    engine: &Engine,
    driver: &str,
    subnet: Option<&str>,
    gateway: Option<&str>,
    labels: &[String],
    opts: &[String],
    internal: bool,
    name: &str,
) -> Result<String> {
    if driver != "bridge" {
        bail!(
            "plugin {driver:?} not found: dockyard has only the bridge driver (overlay, macvlan \
             and ipvlan networks span hosts or take over a host interface, which this \
             single-host engine does not do)"
        );
    }
    if PREDEFINED.iter().any(|(n, _)| *n == name) {
        bail!("network with name {name} already exists");
    }
    let subnet: Option<net::ipam::Cidr> = subnet
        .map(|s| s.parse().map_err(|e: String| anyhow!("invalid subnet {e}")))
        .transpose()?;
    let gateway: Option<Ipv4Addr> = gateway
        .map(|g| {
            g.parse()
                .map_err(|_| anyhow!("invalid gateway address {g:?}"))
        })
        .transpose()?;
    let mut options = BTreeMap::new();
    for o in opts {
        let (k, v) = o
            .split_once('=')
            .ok_or_else(|| anyhow!("invalid option {o:?}: expected key=value"))?;
        options.insert(k.to_string(), v.to_string());
    }
    let mut label_map = BTreeMap::new();
    for l in labels {
        let (k, v) = l.split_once('=').unwrap_or((l, ""));
        if k.is_empty() {
            bail!("invalid label {l:?}: empty key");
        }
        label_map.insert(k.to_string(), v.to_string());
    }
    let bridge = options.get("com.docker.network.bridge.name").cloned();
    let mtu = options
        .get("com.docker.network.driver.mtu")
        .map(|m| {
            m.parse::<u32>()
                .ok()
                .filter(|m| (68..=65535).contains(m))
                .ok_or_else(|| anyhow!("invalid MTU {m:?} (68 to 65535)"))
        })
        .transpose()?;
    let opts = net::NetworkOptions {
        name: name.to_string(),
        bridge,
        subnet,
        gateway,
        mtu,
        internal,
        persistent: true,
        id: random_id()?,
        created: dockyard::state::now_rfc3339(),
        labels: label_map,
        options,
    };
    let made = net::create(&dockyard::network::net_config(engine), &opts)?;
    Ok(made.id)
}

fn rm(engine: &Engine, names: &[String]) -> Result<Code> {
    let cfg = dockyard::network::net_config(engine);
    let nets = dockyard::network::networks(engine)?;
    let mut code = 0;
    for name in names {
        if PREDEFINED.iter().any(|(n, _)| n == name) {
            eprintln!(
                "Error response from daemon: {name} is a pre-defined network and cannot be removed"
            );
            code = 1;
            continue;
        }
        let Some(n) = resolve(&nets, name) else {
            eprintln!("Error response from daemon: network {name} not found");
            code = 1;
            continue;
        };
        match net::remove(&cfg, &n.name) {
            Ok(()) => println!("{name}"),
            Err(e) => {
                eprintln!("Error response from daemon: {e:#}");
                code = 1;
            }
        }
    }
    Ok(code)
}

fn prune(engine: &Engine, force: bool) -> Result<Code> {
    if !force {
        print!("WARNING! This will remove all custom networks not used by at least one container.\nAre you sure you want to continue? [y/N] ");
        std::io::stdout().flush()?;
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            return Ok(0);
        }
    }
    let cfg = dockyard::network::net_config(engine);
    let mut deleted = Vec::new();
    for n in dockyard::network::networks(engine)? {
        if n.name == net::DEFAULT_NETWORK || !n.persistent {
            continue;
        }
        let in_use = n.leases.iter().any(net::ipam::Lease::alive);
        if !in_use {
            net::remove(&cfg, &n.name)?;
            deleted.push(n.name);
        }
    }
    if !deleted.is_empty() {
        println!("Deleted Networks:");
        for d in deleted {
            println!("{d}");
        }
    }
    Ok(0)
}

/// The container `name`, reconciled, and its configuration.
fn find_container(engine: &Engine, name: &str) -> Result<(Record, container::ContainerConfig)> {
    let r = engine
        .containers
        .reconcile(engine.containers.resolve(name)?)?;
    let c = container::config_of(&r)?;
    Ok((r, c))
}

fn is_running(r: &Record) -> bool {
    matches!(r.state.status, Status::Running | Status::Paused) && r.state.pid > 0
}

/// Change the stored configuration of container `id` (under the lock).
fn update_config(
    engine: &Engine,
    id: &str,
    change: impl FnOnce(&mut container::ContainerConfig),
) -> Result<()> {
    let lock = engine.containers.lock()?;
    let mut r = engine.containers.load(id)?;
    let mut c = container::config_of(&r)?;
    change(&mut c);
    r.config = serde_json::to_value(&c).context("serializing the container's config")?;
    engine.containers.save(&lock, &r)
}

/// `network connect`: a running container gets its next interface on the
/// network now; either way the network is recorded in its configuration
/// and rejoined at every start, as docker does.
fn connect(
    engine: &Engine,
    network: &str,
    container: &str,
    aliases: &[String],
    ip: Option<&str>,
) -> Result<()> {
    let (r, c) = find_container(engine, container)?;
    match c.network_mode.as_str() {
        "host" => bail!("container cannot be disconnected from host network or connected to host network"),
        "none" => bail!("container cannot be connected to multiple networks with one of the networks in private (none) mode"),
        m if m.starts_with("container:") => bail!("container sharing network namespace with another container or host cannot be connected to any other network"),
        _ => {}
    }
    if PREDEFINED.iter().any(|(n, _)| *n == network) && network != net::DEFAULT_NETWORK {
        bail!("container cannot be connected to network {network}");
    }
    let nets = dockyard::network::networks(engine)?;
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
    let parsed: Option<Ipv4Addr> = ip
        .map(|i| i.parse().map_err(|_| anyhow!("invalid IP address {i:?}")))
        .transpose()?;
    for alias in aliases {
        net::names::check_host_name(alias).context("--alias")?;
    }
    if is_running(&r) {
        let opts = net::AttachOptions {
            network: name.clone(),
            must_exist: name != net::DEFAULT_NETWORK,
            ip: parsed,
            name: Some(r.name.clone()),
            hostname: c.hostname.clone(),
            etc_dir: Some(engine.containers.dir_of(&r.id).join("etc")),
            aliases: aliases.to_vec(),
            container_id: Some(r.id.clone()),
            ..Default::default()
        };
        net::attach(
            &dockyard::network::net_config(engine),
            nix::unistd::Pid::from_raw(r.state.pid),
            &opts,
        )?;
    }
    update_config(engine, &r.id, |c| {
        c.connected.push(container::Connection {
            network: name,
            aliases: aliases.to_vec(),
            ip: ip.map(str::to_string),
        })
    })
}

/// `network disconnect`: the interface goes now if the container runs,
/// and the network from its configuration.
fn disconnect(engine: &Engine, network: &str, container: &str) -> Result<()> {
    let (r, c) = find_container(engine, container)?;
    let nets = dockyard::network::networks(engine)?;
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
                &dockyard::network::net_config(engine),
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
pub fn container_networks(engine: &Engine, r: &Record, c: &container::ContainerConfig) -> Value {
    let mode = c.network_mode.as_str();
    let mut out = serde_json::Map::new();
    let nets = dockyard::network::networks(engine).unwrap_or_default();
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
    if out.is_empty() && !matches!(mode, "none" | "host") && !mode.starts_with("container:") {
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
    }
    Value::Object(out)
}

/// Refuse `run --network NAME` for a network that does not exist (the
/// default bridge is made on first use), and the flags that need a
/// user-defined network, as docker does.
pub fn check_run(engine: &Engine, c: &mut container::ContainerConfig) -> Result<()> {
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
    if user_defined {
        let nets = dockyard::network::networks(engine)?;
        let n = resolve(&nets, mode).with_context(|| format!("network {mode} not found"))?;
        c.network_mode = n.name.clone();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, labels: &[(&str, &str)]) -> Row {
        Row {
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
        let r = row("frontend", &[("team", "a"), ("tier", "")]);
        let f =
            |s: &[&str]| matches(&r, &s.iter().map(|x| x.to_string()).collect::<Vec<_>>()).unwrap();
        assert!(f(&["name=front"]), "name is a substring match");
        assert!(!f(&["name=back"]));
        assert!(f(&[&format!("id={}", &id_of("frontend")[..6])]));
        assert!(f(&[
            "label=team=a",
            "label=tier",
            "driver=bridge",
            "type=custom"
        ]));
        assert!(!f(&["label=team=b"]));
        assert!(!f(&["type=builtin"]));
        assert!(matches(&r, &["bogus=1".to_string()]).is_err());
        assert!(matches(&r, &["name".to_string()]).is_err());
    }

    #[test]
    fn add_host_needs_name_and_address() {
        assert_eq!(
            dockyard::network::split_add_host("db:10.0.0.5").unwrap(),
            ("db".to_string(), "10.0.0.5".to_string())
        );
        assert_eq!(
            dockyard::network::split_add_host("gw:host-gateway")
                .unwrap()
                .1,
            "host-gateway"
        );
        assert!(dockyard::network::split_add_host("db").is_err());
        assert!(dockyard::network::split_add_host(":1.2.3.4").is_err());
    }

    #[test]
    fn ids_are_stable_and_64_hex() {
        assert_eq!(id_of("bridge"), id_of("bridge"));
        assert_ne!(id_of("bridge"), id_of("host"));
        assert_eq!(id_of("x").len(), 64);
        assert_eq!(random_id().unwrap().len(), 64);
    }
}
