//! The engine's side of lab 05: its settings for this data root, and what
//! `inspect` shows of a container's network.

use crate::engine::Engine;
use anyhow::{bail, Result};
use lab05_netns_veth as net;

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
