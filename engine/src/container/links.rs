//! `--link CONTAINER:ALIAS`: docker's legacy links, from before user-defined
//! networks had a DNS.
//!
//! A link is two things written into the new container at its start, from
//! the linked ("child") container as it runs then, on the default bridge:
//!
//! - an `/etc/hosts` line, `IP  ALIAS HOSTNAME NAME` (one per link, as
//!   docker writes it), so the alias, the child's hostname and its name
//!   all resolve to its address;
//! - variables describing it: `DB_NAME=/web/db`, `DB_PORT=tcp://IP:5432`
//!   (its lowest exposed port), `DB_PORT_5432_TCP=tcp://IP:5432` with its
//!   `_ADDR`, `_PORT` and `_PROTO` for every exposed port, and
//!   `DB_ENV_X=...` for each of its own variables but HOME and PATH.
//!
//! ```text
//! docker run -d --name db -e PASS=x --expose 5432 busybox sleep 1d
//! docker run --rm --link db:pg busybox sh -c 'env | grep PG_; cat /etc/hosts'
//! ```
//!
//! Nothing else: no firewall rules (dockyard's bridge does not isolate
//! containers from each other, so there is nothing to open), and a link is
//! not updated when the child restarts with another address, as docker's
//! are not either without a restart of the parent.

use anyhow::{anyhow, bail, Result};

use super::config::{config_of, ContainerConfig};
use crate::engine::Engine;
use crate::state::{Record, Status};

/// Check `--link` values at create: each names an existing container;
/// returns them as `NAME:ALIAS` (the alias defaults to the name).
pub fn check_links(engine: &Engine, links: &[String]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for l in links {
        let (name, alias) = match l.split_once(':') {
            Some((n, a)) if !n.is_empty() && !a.is_empty() => (n, a),
            None if !l.is_empty() => (l.as_str(), l.trim_start_matches('/')),
            _ => bail!("invalid argument {l:?} for \"--link\" flag: invalid format {l}"),
        };
        let child = engine
            .containers
            .resolve(name.trim_start_matches('/'))
            .map_err(|_| anyhow!("could not get container for {name}"))?;
        out.push(format!("{}:{}", child.name, alias.trim_start_matches('/')));
    }
    Ok(out)
}

/// `config` with its links' hosts lines (as `--add-host` entries) and
/// variables added, for one start of `record`.
pub(crate) fn with_links(
    engine: &Engine,
    record: &Record,
    config: &ContainerConfig,
) -> Result<ContainerConfig> {
    let mut out = config.clone();
    if config.network_mode != "bridge" {
        bail!(
            "Conflicting options: --link works on the default bridge network only \
             (this container's network is {:?}); on a user-defined network, containers \
             find each other by name",
            config.network_mode
        );
    }
    for link in &config.links {
        let (name, alias) = link.split_once(':').unwrap_or((link, link));
        let child = engine
            .containers
            .resolve(name)
            .and_then(|r| engine.containers.reconcile(r))
            .map_err(|_| anyhow!("could not get container for {name}"))?;
        if child.state.status != Status::Running {
            bail!(
                "Cannot link to a non running container: /{} AS /{}/{alias}",
                child.name,
                record.name
            );
        }
        let ip = child
            .state
            .network
            .as_ref()
            .and_then(|n| n["IPAddress"].as_str())
            .filter(|ip| !ip.is_empty())
            .map(str::to_string)
            .ok_or_else(|| {
                anyhow!(
                    "Cannot link to /{}: it has no address on the default bridge",
                    child.name
                )
            })?;
        let child_config = config_of(&child)?;
        // docker writes one line per link, `IP\tALIAS HOSTNAME NAME` (the
        // name only when it is not the alias): moby's `aliasList`. Lab 05
        // writes an entry's names as they are, space-separated.
        let mut names = vec![alias, child_config.hostname.as_str()];
        if alias != child.name {
            names.push(&child.name);
        }
        out.extra_hosts.push(format!("{}:{ip}", names.join(" ")));
        out.env.extend(link_env(
            &format!("/{}/{alias}", record.name),
            alias,
            &ip,
            &child_config,
        ));
    }
    Ok(out)
}

/// docker's variables of one link (moby's `links.Link.ToEnv`).
fn link_env(link_name: &str, alias: &str, ip: &str, child: &ContainerConfig) -> Vec<String> {
    let a = alias.to_uppercase().replace('-', "_");
    let mut ports: Vec<(u32, String)> = child
        .exposed
        .iter()
        .filter_map(|p| {
            let (n, proto) = p.split_once('/').unwrap_or((p, "tcp"));
            Some((n.parse().ok()?, proto.to_string()))
        })
        .collect();
    ports.sort();
    ports.dedup();
    let mut env = Vec::new();
    if let Some((n, proto)) = ports.first() {
        env.push(format!("{a}_PORT={proto}://{ip}:{n}"));
    }
    for (n, proto) in &ports {
        let p = proto.to_uppercase();
        env.push(format!("{a}_PORT_{n}_{p}={proto}://{ip}:{n}"));
        env.push(format!("{a}_PORT_{n}_{p}_ADDR={ip}"));
        env.push(format!("{a}_PORT_{n}_{p}_PORT={n}"));
        env.push(format!("{a}_PORT_{n}_{p}_PROTO={proto}"));
    }
    env.push(format!("{a}_NAME={link_name}"));
    for kv in &child.env {
        if let Some((k, v)) = kv.split_once('=') {
            if k != "HOME" && k != "PATH" {
                env.push(format!("{a}_ENV_{k}={v}"));
            }
        }
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_are_dockers() {
        let child = ContainerConfig {
            exposed: vec!["5432/tcp".into(), "80/tcp".into()],
            env: vec!["PATH=/bin".into(), "PASS=x".into()],
            ..Default::default()
        };
        let env = link_env("/web/my-db", "my-db", "10.0.0.2", &child);
        assert_eq!(
            env,
            [
                "MY_DB_PORT=tcp://10.0.0.2:80",
                "MY_DB_PORT_80_TCP=tcp://10.0.0.2:80",
                "MY_DB_PORT_80_TCP_ADDR=10.0.0.2",
                "MY_DB_PORT_80_TCP_PORT=80",
                "MY_DB_PORT_80_TCP_PROTO=tcp",
                "MY_DB_PORT_5432_TCP=tcp://10.0.0.2:5432",
                "MY_DB_PORT_5432_TCP_ADDR=10.0.0.2",
                "MY_DB_PORT_5432_TCP_PORT=5432",
                "MY_DB_PORT_5432_TCP_PROTO=tcp",
                "MY_DB_NAME=/web/my-db",
                "MY_DB_ENV_PASS=x",
            ]
        );
    }
}
