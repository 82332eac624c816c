//! Following the cluster store: what `dockyard system service` does on
//! each host of a cluster, in a thread of its own.
//!
//! One loop, run on every change the store reports (an etcd watch on
//! `/dockyard/`) and at least every few hundred milliseconds:
//!
//! 1. **The host's lease.** Keep it alive (`/v3/lease/keepalive`); if it
//!    expired (the store was out of reach longer than its TTL, and etcd
//!    deleted this host's addresses), take a new one and claim this host's
//!    addresses again.
//! 2. **Other hosts' containers.** For each overlay network this host has
//!    a part of: program an fdb and a neighbour entry per container of
//!    another host, delete those of the ones gone (lab 05's
//!    `vxlan::program`), and put their names into the `/etc/hosts` of this
//!    host's members (`vxlan::write_hosts`). A network gone from the store
//!    goes from this host too, once none of its containers runs here.
//! 3. **This host's containers.** Publish the name and ID of each one that
//!    runs; hand back (delete) the addresses of containers that no longer
//!    exist.
//!
//! On its first pass over a network the loop starts from the entries the
//! kernel holds (`vxlan::programmed`), not from nothing: if the service was
//! down while a container of another host went away, its entries are
//! deleted then.
//!
//! If the store cannot be reached the loop says so once and keeps trying;
//! nothing it programmed is undone, so the data path goes on working.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use lab05_netns_veth as net;
use net::vxlan::{Remote, Vxlan};

use super::etcd::Etcd;
use super::{endpoint_key, endpoints, host_lease, lease_file, local_dir, local_vni, store};
use super::{underlay, Endpoint, LEASE_TTL, PREFIX};
use crate::engine::Engine;

/// How long a claimed address may wait for its container record before it
/// counts as abandoned (`run` claims it just before creating the record).
const CLAIM_GRACE: Duration = Duration::from_secs(5);

/// Start following the store in a thread of its own, if this engine has
/// one; the thread lives as long as the process.
pub fn start(engine: &Engine, cfg: net::Config) -> Result<()> {
    let Some(etcd) = store(engine)? else {
        return Ok(());
    };
    let vtep = underlay(engine)?.address;
    // The thread's own handle on the same data root (already the remapped
    // one, if any: only its records and the cluster files are used).
    let engine = Engine::open_remapped(engine.root.clone(), engine.config.clone(), None)?;
    eprintln!("dockyard: following cluster store {} as {vtep}", etcd.url);
    std::thread::Builder::new()
        .name("cluster".into())
        .spawn(move || follow(&engine, &cfg, &etcd, vtep))
        .context("starting the cluster thread")?;
    Ok(())
}

/// What the loop remembers between passes.
struct Follower {
    lease: Option<i64>,
    renewed: Instant,
    /// The remote entries programmed, per network.
    programmed: HashMap<String, Vec<Remote>>,
    /// Whether the store answered last time (to report a change once).
    reachable: bool,
}

fn follow(engine: &Engine, cfg: &net::Config, etcd: &Etcd, vtep: Ipv4Addr) {
    let mut f = Follower {
        lease: host_lease(engine).ok(),
        renewed: Instant::now() - Duration::from_secs(LEASE_TTL),
        programmed: HashMap::new(),
        reachable: true,
    };
    loop {
        let pass = (|| -> Result<i64> {
            let revision = etcd.revision()?;
            keep_lease(engine, etcd, &mut f)?;
            follow_networks(cfg, etcd, vtep, &mut f)?;
            publish_names(cfg, etcd, vtep, f.lease.unwrap_or(0))?;
            release_stale(engine, etcd, CLAIM_GRACE)?;
            Ok(revision)
        })();
        match pass {
            Ok(revision) => {
                if !f.reachable {
                    eprintln!("dockyard: cluster store {} is back", etcd.url);
                }
                f.reachable = true;
                // Wake on the next change, or soon anyway (local changes:
                // a container started here).
                let _ = etcd.watch(PREFIX, revision, Duration::from_millis(300));
            }
            Err(e) => {
                if f.reachable {
                    eprintln!(
                        "dockyard: cluster store: {e:#} (running containers keep their entries)"
                    );
                }
                f.reachable = false;
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    }
}

/// Renew the host's lease every third of its TTL; take a new one (and
/// claim this host's addresses again) if it is gone.
fn keep_lease(engine: &Engine, etcd: &Etcd, f: &mut Follower) -> Result<()> {
    if f.renewed.elapsed() < Duration::from_secs(LEASE_TTL / 3) {
        return Ok(());
    }
    let alive = match f.lease {
        Some(id) => etcd.keepalive(id)?.is_some(),
        None => false,
    };
    if !alive {
        let id = etcd.grant(LEASE_TTL)?;
        super::save(&lease_file(engine), &id.to_string())?;
        f.lease = Some(id);
        reclaim(engine, etcd, id)?;
    }
    f.renewed = Instant::now();
    Ok(())
}

/// Put this host's addresses back under a new lease, where no one took
/// them meanwhile.
fn reclaim(engine: &Engine, etcd: &Etcd, lease: i64) -> Result<()> {
    for (path, ep) in local_endpoints(engine)? {
        let doc = serde_json::to_string(&ep)?;
        if !etcd.create_if_absent(&[(&endpoint_key(&ep.network, ep.ip), &doc)], lease)? {
            eprintln!(
                "dockyard: address {} on {} was taken while this host's lease had expired",
                ep.ip, ep.network
            );
            let _ = std::fs::remove_file(path);
        }
    }
    Ok(())
}

/// The addresses this host holds, from its own records.
fn local_endpoints(engine: &Engine) -> Result<Vec<(std::path::PathBuf, Endpoint)>> {
    let dir = local_dir(engine).join("endpoints");
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for entry in rd.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path)?;
            if let Ok(ep) = serde_json::from_str::<Endpoint>(&text) {
                out.push((path, ep));
            }
        }
    }
    Ok(out)
}

// ANCHOR: follow_networks
/// Step 2: for every overlay network this host has a part of, the other
/// hosts' containers become fdb and neighbour entries and hosts-file lines.
fn follow_networks(cfg: &net::Config, etcd: &Etcd, vtep: Ipv4Addr, f: &mut Follower) -> Result<()> {
    let global = super::networks(etcd)?;
    for local in net::networks(cfg)? {
        let Some(vni) = local_vni(&local) else {
            continue;
        };
        let vx = Vxlan::for_vni(vni);
        if !global.iter().any(|g| g.name == local.name && g.vni == vni) {
            // Removed on another host: ours goes too, unless ours still runs.
            if !local.leases.iter().any(net::ipam::Lease::alive) {
                net::vxlan::leave(cfg, &local.name, &vx)?;
                f.programmed.remove(&local.name);
            }
            continue;
        }
        let mut remote: Vec<Remote> = endpoints(etcd, &local.name)?
            .into_iter()
            .filter(|e| e.vtep != vtep)
            .map(|e| Remote {
                ip: e.ip,
                mac: net::mac_for(e.ip),
                vtep: e.vtep,
                names: if e.name.is_empty() {
                    vec![]
                } else {
                    vec![e.name]
                },
            })
            .collect();
        remote.sort();
        // What this process programmed, or on its first pass what the
        // kernel holds (a previous run's entries: some may be stale).
        let before = match f.programmed.get(&local.name) {
            Some(before) => before.clone(),
            None => net::vxlan::programmed(&vx)?,
        };
        if before != remote {
            net::vxlan::program(&vx, &before, &remote)?;
            f.programmed.insert(local.name.clone(), remote.clone());
        }
        net::vxlan::write_hosts(cfg, &local.name, &remote)?;
    }
    Ok(())
}
// ANCHOR_END: follow_networks

/// Step 3a: the name and ID of each container of this host that runs on an
/// overlay network, into its endpoint, for the other hosts' hosts files.
fn publish_names(cfg: &net::Config, etcd: &Etcd, vtep: Ipv4Addr, lease: i64) -> Result<()> {
    for local in net::networks(cfg)? {
        if local_vni(&local).is_none() {
            continue;
        }
        let eps = endpoints(etcd, &local.name)?;
        for l in local.leases.iter().filter(|l| l.alive()) {
            let Some(mut ep) = eps.iter().find(|e| e.ip == l.ip && e.vtep == vtep).cloned() else {
                continue;
            };
            let name = l.name.clone().unwrap_or_default();
            let container = l.container_id.clone().unwrap_or_default();
            if ep.name != name || ep.container != container {
                ep.name = name;
                ep.container = container;
                let doc = serde_json::to_string(&ep)?;
                etcd.put(&endpoint_key(&ep.network, ep.ip), &doc, lease)?;
            }
        }
    }
    Ok(())
}

/// Step 3b: hand back the addresses of this host's containers that no
/// longer exist (removed, or `run` failed after claiming one), once their
/// claim is older than `grace`.
pub fn release_stale(engine: &Engine, etcd: &Etcd, grace: Duration) -> Result<()> {
    let records = engine.containers.list()?;
    for (path, ep) in local_endpoints(engine)? {
        let claimed = records.iter().any(|r| {
            r.config["network_mode"] == ep.network.as_str()
                && r.config["ip"] == ep.ip.to_string().as_str()
        });
        if claimed || younger_than(&path, grace) {
            continue;
        }
        etcd.delete(&endpoint_key(&ep.network, ep.ip), false)?;
        std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
    }
    Ok(())
}

fn younger_than(path: &Path, age: Duration) -> bool {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_some_and(|a| a < age)
}
