//! `dockyard network ...`: user-defined bridge and macvlan networks. The networks are
//! the core's (`dockyard::network`: lab 05 under this data root), and a
//! container's side of them is `dockyard::container::connect_network`; here
//! are docker's flags, tables and messages.

use std::collections::BTreeMap;

use anyhow::{anyhow, Result};
use serde_json::json;

use super::{confirm, formatted, parse_labels, print_documents, Code};
use crate::cli::NetworkCmd;
use crate::format::table;
use dockyard::container::{self, ConnectOptions};
use dockyard::network::{self, CreateOptions, Ipam, NetworkFilter, NetworkSummary};
use dockyard::{events, Engine};

/// The fields of `network ls --format`, and their headers in a `table` format.
const LS_FIELDS: [(&str, &str); 8] = [
    ("ID", "NETWORK ID"),
    ("Name", "NAME"),
    ("Driver", "DRIVER"),
    ("Scope", "SCOPE"),
    ("IPv6", "IPV6"),
    ("Internal", "INTERNAL"),
    ("Labels", "LABELS"),
    ("CreatedAt", "CREATED AT"),
];

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
            ip_range,
            label,
            opt,
            internal,
            name,
        } => {
            let opts = CreateOptions {
                name: name.clone(),
                driver: driver.clone(),
                subnet: subnet.clone(),
                gateway: gateway.clone(),
                options: driver_options(opt)?,
                labels: parse_labels(label)?,
                internal: *internal,
            };
            let ipam = Ipam {
                ip_range: ip_range.clone(),
            };
            let id = network::create_with_ipam(engine, &opts, &ipam)?;
            let driver = if opts.driver.is_empty() {
                "bridge"
            } else {
                opts.driver.as_str()
            };
            let actor = events::actor(&id, &[("name", name), ("type", driver)]);
            events::log(engine, "network", "create", actor);
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
        } => {
            let opts = ConnectOptions {
                aliases: alias.clone(),
                ip: ip.clone(),
            };
            container::connect_network(engine, network, container, &opts)?;
            network_event(engine, "connect", network, Some(container));
            Ok(0)
        }
        NetworkCmd::Disconnect {
            network, container, ..
        } => {
            let found = found_network(engine, network);
            container::disconnect_network(engine, network, container)?;
            if let Some((id, name)) = found {
                container_event(engine, "disconnect", &id, &name, container);
            }
            Ok(0)
        }
    }
}

/// `-o KEY=VALUE`s as a map.
fn driver_options(opts: &[String]) -> Result<BTreeMap<String, String>> {
    let mut options = BTreeMap::new();
    for o in opts {
        let (k, v) = o
            .split_once('=')
            .ok_or_else(|| anyhow!("invalid option {o:?}: expected key=value"))?;
        options.insert(k.to_string(), v.to_string());
    }
    Ok(options)
}

fn ls(
    engine: &Engine,
    quiet: bool,
    filter: &[String],
    format: Option<&str>,
    no_trunc: bool,
) -> Result<Code> {
    let filters = filter
        .iter()
        .map(|f| {
            let (key, value) = f
                .split_once('=')
                .ok_or_else(|| anyhow!("bad format of filter (expected name=value): {f}"))?;
            NetworkFilter::new(key, value)
        })
        .collect::<Result<Vec<_>>>()?;
    let shown = network::list(engine, &filters)?;
    let id = |n: &NetworkSummary| {
        if no_trunc {
            n.id.clone()
        } else {
            n.id[..12].to_string()
        }
    };
    if quiet {
        for n in &shown {
            println!("{}", id(n));
        }
        return Ok(0);
    }
    if let Some(format) = format {
        let objects: Vec<_> = shown
            .iter()
            .map(|n| LsRow {
                id: id(n),
                name: &n.name,
                driver: &n.driver,
                scope: n.scope(),
                internal: n.internal,
                labels: &n.labels,
                created: &n.created,
            })
            .collect();
        print!("{}", ls_formatted(format, &objects)?);
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = shown
        .iter()
        .map(|n| vec![id(n), n.name.clone(), n.driver.clone(), n.scope().into()])
        .collect();
    print!(
        "{}",
        table(&["NETWORK ID", "NAME", "DRIVER", "SCOPE"], &rows)
    );
    Ok(0)
}

/// One network as `network ls --format` sees it (the client's, from the
/// service's documents, too).
pub(crate) struct LsRow<'a> {
    /// As shown: 12 digits, or all with `--no-trunc`.
    pub id: String,
    pub name: &'a str,
    pub driver: &'a str,
    pub scope: &'a str,
    pub internal: bool,
    pub labels: &'a BTreeMap<String, String>,
    /// RFC 3339; empty (or Go's zero time) for the predefined ones.
    pub created: &'a str,
}

/// `network ls --format FORMAT`'s output: docker's formatter's fields
/// (`json`, a template, or `table TEMPLATE` with [`LS_FIELDS`]' headers).
pub(crate) fn ls_formatted(format: &str, rows: &[LsRow]) -> Result<String> {
    let objects: Vec<_> = rows
        .iter()
        .map(|n| {
            let labels: Vec<String> = n.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            json!({
                "ID": n.id, "Name": n.name, "Driver": n.driver, "Scope": n.scope,
                "IPv6": "false", "IPv4": "true", "Internal": n.internal.to_string(),
                "Labels": labels.join(","),
                "CreatedAt": crate::format::go_time(n.created),
            })
        })
        .collect();
    formatted(format, &objects, &LS_FIELDS)
}

fn inspect(engine: &Engine, format: Option<&str>, names: &[String]) -> Result<Code> {
    let mut docs = Vec::new();
    let mut code = 0;
    for name in names {
        match network::inspect(engine, name) {
            Ok(doc) => docs.push(doc),
            Err(e) => {
                eprintln!("Error response from daemon: {e:#}");
                code = 1;
            }
        }
    }
    print_documents(format, docs)?;
    Ok(code)
}

fn rm(engine: &Engine, names: &[String]) -> Result<Code> {
    let mut code = 0;
    for name in names {
        let found = found_network(engine, name);
        match network::remove(engine, name) {
            Ok(()) => {
                if let Some((id, n)) = found {
                    let actor = events::actor(&id, &[("name", &n), ("type", "bridge")]);
                    events::log(engine, "network", "destroy", actor);
                }
                println!("{name}")
            }
            Err(e) => {
                eprintln!("Error response from daemon: {e:#}");
                code = 1;
            }
        }
    }
    Ok(code)
}

/// A network's ID and name, by either (before it changes).
fn found_network(engine: &Engine, name_or_id: &str) -> Option<(String, String)> {
    let all = network::networks(engine).ok()?;
    let n = all.iter().find(|n| n.name == name_or_id).or_else(|| {
        all.iter()
            .find(|n| network::network_id(n).starts_with(name_or_id))
    })?;
    Some((network::network_id(n), n.name.clone()))
}

/// dockerd's `network connect`/`disconnect` event: the network as actor,
/// the container's full ID among the attributes.
fn network_event(engine: &Engine, action: &str, network: &str, container: Option<&str>) {
    if let (Some((id, name)), Some(c)) = (found_network(engine, network), container) {
        container_event(engine, action, &id, &name, c);
    }
}

fn container_event(engine: &Engine, action: &str, id: &str, name: &str, container: &str) {
    let Ok(r) = engine.containers.resolve(container) else {
        return;
    };
    let actor = events::actor(
        id,
        &[("container", &r.id), ("name", name), ("type", "bridge")],
    );
    events::log(engine, "network", action, actor);
}

fn prune(engine: &Engine, force: bool) -> Result<Code> {
    if !force && !confirm("WARNING! This will remove all custom networks not used by at least one container.\nAre you sure you want to continue? [y/N] ")? {
        return Ok(0);
    }
    let before = network::networks(engine).unwrap_or_default();
    let deleted = network::prune(engine)?;
    for name in &deleted {
        if let Some(n) = before.iter().find(|n| &n.name == name) {
            let id = network::network_id(n);
            let actor = events::actor(&id, &[("name", name), ("type", "bridge")]);
            events::log(engine, "network", "destroy", actor);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn driver_options_are_key_value_pairs() {
        let o = |v: &[&str]| driver_options(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        let map = o(&["com.docker.network.driver.mtu=1400"]).unwrap();
        assert_eq!(map["com.docker.network.driver.mtu"], "1400");
        assert_eq!(
            o(&["mtu"]).unwrap_err().to_string(),
            "invalid option \"mtu\": expected key=value"
        );
    }
}
