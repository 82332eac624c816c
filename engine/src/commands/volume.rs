//! `dockyard volume ...`: named volumes, directories that outlive
//! containers (see `dockyard::volumes`; which containers use one is the
//! core's question, `dockyard::container::volume_users`).

use std::collections::BTreeMap;

use anyhow::Result;

use super::{confirm, print_documents, Code};
use crate::cli::VolumeCmd;
use crate::format::table;
use dockyard::container;
use dockyard::volumes::Volume;
use dockyard::Engine;

/// `docker volume ...`.
pub fn volume(engine: &Engine, cmd: &VolumeCmd) -> Result<Code> {
    match cmd {
        VolumeCmd::Create { label, name } => create(engine, label, name.as_deref()),
        VolumeCmd::Ls {
            quiet,
            filter,
            format,
        } => ls(engine, *quiet, filter, format.as_deref()),
        VolumeCmd::Inspect { format, names } => inspect(engine, format.as_deref(), names),
        VolumeCmd::Rm { force, names } => rm(engine, *force, names),
        VolumeCmd::Prune { all, force } => {
            if !force {
                let prompt = format!("WARNING! This will remove {} local volumes not used by at least one container.\nAre you sure you want to continue? [y/N] ", if *all { "all" } else { "anonymous" });
                if !confirm(&prompt)? {
                    return Ok(0);
                }
            }
            prune(engine, *all)?;
            Ok(0)
        }
    }
}

/// `volume create [--label K=V] [NAME]`: a random name if none is given.
fn create(engine: &Engine, labels: &[String], name: Option<&str>) -> Result<Code> {
    let name = match name {
        Some(n) => n.to_string(),
        None => dockyard::volumes::random_name()?,
    };
    let labels = labels
        .iter()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or((l, ""));
            (k.to_string(), v.to_string())
        })
        .collect();
    println!("{}", engine.volumes.create(&name, labels, false)?.name);
    Ok(0)
}

/// The fields of `volume ls --format`, and their headers in a `table` format.
const LS_FIELDS: [(&str, &str); 5] = [
    ("Driver", "DRIVER"),
    ("Name", "VOLUME NAME"),
    ("Scope", "SCOPE"),
    ("Mountpoint", "MOUNTPOINT"),
    ("Labels", "LABELS"),
];

/// One `volume ls -f KEY=VALUE`, as dockerd reads them: `name=` a regular
/// expression found in the name, `dangling=` no container uses it (or
/// some does), `driver=`, `label=KEY` or `KEY=VALUE`.
fn volume_matches(engine: &Engine, v: &Volume, filter: &str) -> Result<bool> {
    let (k, val) = filter
        .split_once('=')
        .ok_or_else(|| anyhow::anyhow!("bad format of filter (expected name=value)"))?;
    Ok(match k {
        "name" => dockyard::container::regex_match(val, &v.name),
        "driver" => val == "local",
        "dangling" => {
            let unused = dockyard::container::volume_users(engine, &v.name)?.is_empty();
            match val {
                "true" | "1" => unused,
                "false" | "0" => !unused,
                _ => anyhow::bail!("invalid filter 'dangling={val}'"),
            }
        }
        "label" => match val.split_once('=') {
            Some((lk, lv)) => v.labels.get(lk).is_some_and(|x| x == lv),
            None => v.labels.contains_key(val),
        },
        _ => anyhow::bail!("invalid filter '{k}'"),
    })
}

fn ls(engine: &Engine, quiet: bool, filters: &[String], format: Option<&str>) -> Result<Code> {
    let mut list = Vec::new();
    for v in engine.volumes.list()? {
        // Filters of one key are ORed, of different keys ANDed, as dockerd's.
        let mut keys: std::collections::BTreeMap<&str, bool> = Default::default();
        for f in filters {
            let key = f.split('=').next().unwrap_or("");
            let hit = volume_matches(engine, &v, f)?;
            *keys.entry(key).or_insert(false) |= hit;
        }
        if keys.values().all(|hit| *hit) {
            list.push(v);
        }
    }
    if let Some(format) = format.filter(|_| !quiet) {
        let rows: Vec<_> = list
            .iter()
            .map(|v| {
                let mountpoint = engine.volumes.data(&v.name).display().to_string();
                (v.name.clone(), mountpoint, v.labels.clone())
            })
            .collect();
        print!("{}", ls_formatted(format, &rows)?);
        return Ok(0);
    }
    if quiet {
        for v in &list {
            println!("{}", v.name);
        }
    } else {
        let rows: Vec<Vec<String>> = list
            .iter()
            .map(|v| vec!["local".into(), v.name.clone()])
            .collect();
        print!("{}", table(&["DRIVER", "VOLUME NAME"], &rows));
    }
    Ok(0)
}

/// `volume ls --format FORMAT`'s output for (name, mountpoint, labels)
/// rows (the client's, from the service's documents, too): docker's
/// formatter's fields (`json`, a template, or `table TEMPLATE` with
/// [`LS_FIELDS`]' headers).
pub(crate) fn ls_formatted(
    format: &str,
    rows: &[(String, String, BTreeMap<String, String>)],
) -> Result<String> {
    let objects: Vec<serde_json::Value> = rows
        .iter()
        .map(|(name, mountpoint, labels)| {
            let labels: Vec<String> = labels.iter().map(|(k, x)| format!("{k}={x}")).collect();
            serde_json::json!({
                "Driver": "local", "Name": name, "Scope": "local",
                "Mountpoint": mountpoint,
                "Labels": labels.join(","),
                // What a local volume does not have (the cluster
                // volumes' fields) or `ls` does not measure.
                "Links": "N/A", "Size": "N/A", "Group": "N/A",
                "Availability": "N/A", "Status": "N/A",
            })
        })
        .collect();
    super::formatted(format, &objects, &LS_FIELDS)
}

fn inspect(engine: &Engine, format: Option<&str>, names: &[String]) -> Result<Code> {
    let mut docs = Vec::new();
    let mut code = 0;
    for n in names {
        match engine.volumes.get(n) {
            Ok(v) => docs.push(engine.volumes.inspect(&v)),
            Err(e) => {
                eprintln!("Error response from daemon: {e:#}");
                code = 1;
            }
        }
    }
    print_documents(format, docs)?;
    Ok(code)
}

fn rm(engine: &Engine, force: bool, names: &[String]) -> Result<Code> {
    let mut code = 0;
    for n in names {
        match container::remove_volume(engine, n, force) {
            Ok(()) => println!("{n}"),
            Err(e) => {
                eprintln!("Error response from daemon: {e:#}");
                code = 1;
            }
        }
    }
    Ok(code)
}

/// The work of `volume prune` (and `system prune --volumes`).
pub(super) fn prune(engine: &Engine, all: bool) -> Result<()> {
    println!("Deleted Volumes:");
    container::prune_volumes(engine, all, &mut |name| println!("{name}"))?;
    println!("\nTotal reclaimed space: 0B");
    Ok(())
}
