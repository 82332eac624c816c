//! Networks' and volumes' documents and upkeep through the service:
//! `network inspect`/`connect`/`disconnect`/`prune`, `volume
//! inspect`/`prune`. The documents are the service's, printed by the
//! in-process `inspect` printer (JSON array, or each with `--format`).
//!
//! | command                          | request                                      |
//! |----------------------------------|----------------------------------------------|
//! | `network inspect N...`           | `GET /networks/N` each                       |
//! | `network connect [--alias] [--ip] N C` | `POST /networks/N/connect` `{Container, EndpointConfig}` |
//! | `network disconnect [-f] N C`    | `POST /networks/N/disconnect` `{Container, Force}` |
//! | `network prune`                  | `POST /networks/prune` (`NetworksDeleted`)   |
//! | `volume inspect V...`            | `GET /volumes/V` each                        |
//! | `volume prune [-a]`              | `POST /volumes/prune?filters={"all":["true"]}` (`VolumesDeleted`) |

use anyhow::{anyhow, Result};
use serde_json::{json, Value};

use super::{query_escape as q, Api, DaemonError};
use crate::cli::{Command, NetworkCmd, VolumeCmd};
use crate::commands::{self, confirm, Code};

/// Whether [`run`] carries `cmd`.
pub fn carries(cmd: &Command) -> bool {
    matches!(
        cmd,
        Command::Network(
            NetworkCmd::Inspect { .. }
                | NetworkCmd::Connect { .. }
                | NetworkCmd::Disconnect { .. }
                | NetworkCmd::Prune { .. }
        ) | Command::Volume(VolumeCmd::Inspect { .. } | VolumeCmd::Prune { .. })
    )
}

/// Run one of the commands [`carries`].
pub fn run(api: &Api, cmd: &Command) -> Result<Code> {
    match cmd {
        Command::Network(NetworkCmd::Inspect { format, names }) => {
            inspect(api, "networks", format.as_deref(), names)
        }
        Command::Volume(VolumeCmd::Inspect { format, names }) => {
            inspect(api, "volumes", format.as_deref(), names)
        }
        Command::Network(NetworkCmd::Connect {
            alias,
            ip,
            network,
            container,
        }) => {
            let mut endpoint = json!({ "Aliases": alias });
            if let Some(ip) = ip {
                endpoint["IPAMConfig"] = json!({ "IPv4Address": ip });
            }
            let body = json!({ "Container": container, "EndpointConfig": endpoint });
            let path = format!("/networks/{}/connect", q(network));
            api.call("POST", &path, Some(&body))?;
            Ok(0)
        }
        Command::Network(NetworkCmd::Disconnect {
            force,
            network,
            container,
        }) => {
            let body = json!({ "Container": container, "Force": force });
            let path = format!("/networks/{}/disconnect", q(network));
            api.call("POST", &path, Some(&body))?;
            Ok(0)
        }
        Command::Network(NetworkCmd::Prune { force }) => {
            let prompt = "WARNING! This will remove all custom networks not used by at least \
                          one container.\nAre you sure you want to continue? [y/N] ";
            if !force && !confirm(prompt)? {
                return Ok(0);
            }
            let v = api.json("POST", "/networks/prune", None)?;
            let deleted = names(&v["NetworksDeleted"]);
            if !deleted.is_empty() {
                println!("Deleted Networks:");
                for d in deleted {
                    println!("{d}");
                }
            }
            Ok(0)
        }
        Command::Volume(VolumeCmd::Prune { all, force }) => {
            if !force {
                let which = if *all { "all" } else { "anonymous" };
                let prompt = format!(
                    "WARNING! This will remove {which} local volumes not used by at least one \
                     container.\nAre you sure you want to continue? [y/N] "
                );
                if !confirm(&prompt)? {
                    return Ok(0);
                }
            }
            let mut path = "/volumes/prune".to_string();
            if *all {
                path += &format!("?filters={}", q(r#"{"all":["true"]}"#));
            }
            let v = api.json("POST", &path, None)?;
            // (What the in-process command prints, its total included.)
            println!("Deleted Volumes:");
            for d in names(&v["VolumesDeleted"]) {
                println!("{d}");
            }
            println!("\nTotal reclaimed space: 0B");
            Ok(0)
        }
        _ => Err(anyhow!("not carried through -H")),
    }
}

/// A JSON array of strings (null: none).
fn names(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

/// `network inspect`/`volume inspect`: each document asked for, each
/// refusal printed (exit 1 if any), the rest printed as in-process.
fn inspect(api: &Api, kind: &str, format: Option<&str>, names: &[String]) -> Result<Code> {
    let mut docs = Vec::new();
    let mut code = 0;
    for n in names {
        match api.json("GET", &format!("/{kind}/{}", q(n)), None) {
            Ok(doc) => docs.push(doc),
            Err(e) if !e.is::<DaemonError>() => return Err(e),
            Err(e) => {
                eprintln!("Error response from daemon: {e:#}");
                code = 1;
            }
        }
    }
    commands::print_documents(format, docs)?;
    Ok(code)
}
