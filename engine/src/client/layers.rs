//! What the service says of layers and archives: `history`, `diff`,
//! `export`, `commit`, `save` and `load` through the service. Each is the
//! request docker's CLI sends, its answer printed by the in-process
//! renderers (or its tar written where the in-process command writes it).
//!
//! | command                     | request                                        |
//! |-----------------------------|------------------------------------------------|
//! | `history I`                 | `GET /images/I/history`                        |
//! | `diff C`                    | `GET /containers/C/changes` (`Kind` 0 C, 1 A, 2 D) |
//! | `export [-o F] C`           | `GET /containers/C/export` (a tar)             |
//! | `commit C [R[:T]]`          | `POST /commit?container=&repo=&tag=&comment=&author=&pause=&changes=` |
//! | `save [-o F] I`             | `GET /images/get?names=I` (a tar)              |
//! | `load [-i F] [-q]`          | `POST /images/load?quiet=` (the tar, a JSON stream back) |

use std::io::{BufRead, BufReader, Read, Write};
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

use super::{query_escape as q, Api, DaemonError};
use crate::cli::{Command, CommitArgs, HistoryArgs, LoadArgs};
use crate::commands::{self, write_archive, Code};
use dockyard::image::HistoryEntry;

/// Whether [`run`] carries `cmd`.
pub fn carries(cmd: &Command) -> bool {
    matches!(
        cmd,
        Command::History(_)
            | Command::Diff(_)
            | Command::Export(_)
            | Command::Commit(_)
            | Command::Save(_)
            | Command::Load(_)
    )
}

/// Run one of the commands [`carries`].
pub fn run(api: &Api, cmd: &Command) -> Result<Code> {
    match cmd {
        Command::History(a) => history(api, a),
        Command::Diff(a) => diff(api, &a.container),
        Command::Export(a) => {
            let path = format!("/containers/{}/export", q(&a.container));
            let tar = api.call("GET", &path, None)?;
            write_archive(a.output.as_deref(), |out| Ok(out.write_all(&tar)?))?;
            Ok(0)
        }
        Command::Commit(a) => commit(api, a),
        Command::Save(a) => {
            if a.images.len() > 1 {
                bail!(
                    "saving several images into one archive is not supported yet: save them one \
                     by one"
                );
            }
            let path = format!("/images/get?names={}", q(&a.images[0]));
            let mut body = api.stream("GET", &path, "", None)?;
            write_archive(a.output.as_deref(), |out| {
                std::io::copy(&mut body, out)?;
                Ok(())
            })?;
            Ok(0)
        }
        Command::Load(a) => load(api, a),
        _ => Err(anyhow!("not carried through -H")),
    }
}

/// `history`: the service's steps (newest first, the image's ID on the
/// first) made back into the core's entries, printed by the same table.
fn history(api: &Api, a: &HistoryArgs) -> Result<Code> {
    let path = format!("/images/{}/history", q(&a.image));
    let steps = api.json("GET", &path, None)?;
    let steps = steps.as_array().cloned().unwrap_or_default();
    let id = steps
        .first()
        .and_then(|s| s["Id"].as_str())
        .unwrap_or_default()
        .to_string();
    let entries: Vec<HistoryEntry> = steps
        .iter()
        .map(|s| HistoryEntry {
            // 0: no creation time (the table's "N/A").
            created: s["Created"]
                .as_u64()
                .filter(|t| *t > 0)
                .map(|t| dockyard::state::rfc3339(UNIX_EPOCH + Duration::from_secs(t))),
            created_by: s["CreatedBy"].as_str().unwrap_or_default().to_string(),
            size: s["Size"].as_u64().unwrap_or(0),
            comment: s["Comment"].as_str().unwrap_or_default().to_string(),
        })
        .collect();
    let hex = id.strip_prefix("sha256:").unwrap_or(&id);
    let short = &hex[..hex.len().min(12)];
    commands::image::print_history(&id, short, &entries, a)
}

/// `diff`: the service's `[{Path, Kind}]` as the core's A, C and D lines.
fn diff(api: &Api, container: &str) -> Result<Code> {
    let path = format!("/containers/{}/changes", q(container));
    let changes = api.json("GET", &path, None)?;
    let mut out = std::io::stdout().lock();
    for c in changes.as_array().into_iter().flatten() {
        let kind = match c["Kind"].as_u64() {
            Some(0) => "C",
            Some(1) => "A",
            Some(2) => "D",
            _ => "?",
        };
        writeln!(out, "{kind} {}", c["Path"].as_str().unwrap_or_default())?;
    }
    Ok(0)
}

/// `commit`: the name checked here as docker's CLI does before it asks,
/// then `POST /commit`; the new image's ID printed.
fn commit(api: &Api, a: &CommitArgs) -> Result<Code> {
    if let Some(name) = &a.repository {
        dockyard::image::check_new_name(name)
            .map_err(|e| commands::ClientRefusal(format!("{e:#}")))?;
    }
    let Some(name) = &a.repository else {
        // (The in-process command names a missing container first.)
        api.call(
            "GET",
            &format!("/containers/{}/json", q(&a.container)),
            None,
        )?;
        bail!(
            "dockyard keeps images by name: give one (dockyard commit CONTAINER REPOSITORY[:TAG])"
        );
    };
    // The tag is after the last `:` that follows the last `/` (a
    // registry's port is not a tag).
    let slash = name.rfind('/').map_or(0, |i| i + 1);
    let (repo, tag) = match name[slash..].rfind(':') {
        Some(i) => (&name[..slash + i], &name[slash + i + 1..]),
        None => (name.as_str(), ""),
    };
    let mut path = format!(
        "/commit?container={}&repo={}&tag={}&pause={}",
        q(&a.container),
        q(repo),
        q(tag),
        a.pause
    );
    if let Some(m) = &a.message {
        path += &format!("&comment={}", q(m));
    }
    if let Some(au) = &a.author {
        path += &format!("&author={}", q(au));
    }
    for c in &a.change {
        path += &format!("&changes={}", q(c));
    }
    let v = api.json("POST", &path, None)?;
    println!("{}", v["Id"].as_str().unwrap_or_default());
    Ok(0)
}

/// `load`: the archive (from `-i FILE` or stdin) as the body; the
/// service's `Loaded image: NAME` messages printed unless `-q`.
fn load(api: &Api, a: &LoadArgs) -> Result<Code> {
    let mut tar = Vec::new();
    match &a.input {
        Some(p) if p.is_dir() => bail!(
            "loading an OCI layout directory ({}) through -H is not supported: tar it, or load \
             it on the service's machine",
            p.display()
        ),
        Some(p) => {
            std::fs::File::open(p)
                .with_context(|| format!("open {}", p.display()))?
                .read_to_end(&mut tar)?;
        }
        None => {
            if nix::unistd::isatty(std::io::stdin()).unwrap_or(false) {
                bail!("requested load from stdin, but stdin is empty");
            }
            std::io::stdin().lock().read_to_end(&mut tar)?;
        }
    }
    let path = format!("/images/load?quiet={}", a.quiet);
    let tar_type = "Content-Type: application/x-tar\r\n";
    let body = api.stream("POST", &path, tar_type, Some(&tar))?;
    let mut out = std::io::stdout().lock();
    for line in BufReader::new(body).split(b'\n') {
        let line = line?;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let m: Value = serde_json::from_slice(&line)?;
        if let Some(e) = m["error"].as_str() {
            let message = e.to_string();
            return Err(DaemonError {
                status: 500,
                message,
            }
            .into());
        }
        if let Some(s) = m["stream"].as_str().filter(|_| !a.quiet) {
            write!(out, "{s}")?;
        }
    }
    Ok(0)
}
