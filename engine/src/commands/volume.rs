//! `dockyard volume ...`: named volumes, directories that outlive
//! containers (see `dockyard::volumes`; which containers use one is the
//! core's question, `dockyard::container::volume_users`).

use anyhow::Result;

use super::{confirm, print_documents, Code};
use crate::cli::VolumeCmd;
use crate::format::table;
use dockyard::container;
use dockyard::Engine;

/// `docker volume ...`.
pub fn volume(engine: &Engine, cmd: &VolumeCmd) -> Result<Code> {
    match cmd {
        VolumeCmd::Create { label, name } => create(engine, label, name.as_deref()),
        VolumeCmd::Ls { quiet } => ls(engine, *quiet),
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

fn ls(engine: &Engine, quiet: bool) -> Result<Code> {
    let list = engine.volumes.list()?;
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
