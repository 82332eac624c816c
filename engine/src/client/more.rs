//! The rest of the notes' lifecycle through the service: `top`, `port`,
//! `rename`, `pause`/`unpause`, networks and volumes made and removed,
//! `tag`, `rmi`, `push`, and the dispatch of `stats`, `build` and `cp`
//! (their own modules). Each is the request docker's CLI sends, its answer
//! printed by the in-process renderers.
//!
//! | command                          | request                                      |
//! |----------------------------------|----------------------------------------------|
//! | `top C`                          | `GET /containers/C/top` (`{Titles, Processes}`) |
//! | `port C [PORT]`                  | `GET /containers/C/json` (`NetworkSettings.Ports`) |
//! | `rename C NEW`                   | `POST /containers/C/rename?name=NEW`         |
//! | `pause`/`unpause C...`           | `POST /containers/C/pause` / `unpause`       |
//! | `network create`/`rm`            | `POST /networks/create`, `DELETE /networks/N` |
//! | `volume create`/`rm`             | `POST /volumes/create`, `DELETE /volumes/V`  |
//! | `tag SRC DST`, `rmi I...`        | `POST /images/SRC/tag?repo=&tag=`, `DELETE /images/I` |
//! | `push I`                         | `POST /images/I/push?tag=` (a JSON stream)   |

use std::io::{BufRead, BufReader, Write};

use anyhow::{anyhow, bail, Result};
use serde_json::{json, Map, Value};

use super::{query_escape as q, Api, DaemonError};
use crate::cli::{Command, NetworkCmd, PortArgs, VolumeCmd};
use crate::commands::Code;
use crate::format::table;

/// Whether [`run`] carries `cmd` (with these flags).
pub fn carries(cmd: &Command) -> bool {
    matches!(
        cmd,
        Command::Top(_)
            | Command::Port(_)
            | Command::Rename(_)
            | Command::Pause(_)
            | Command::Unpause(_)
            | Command::Tag(_)
            | Command::Rmi(_)
            | Command::Push(_)
            | Command::Build(_)
            | Command::Cp(_)
            | Command::Network(NetworkCmd::Rm { .. })
            | Command::Volume(VolumeCmd::Create { .. } | VolumeCmd::Rm { .. })
    ) || matches!(cmd, Command::Stats(_))
        || matches!(
            cmd,
            Command::Network(NetworkCmd::Create { ip_range: None, .. })
        )
}

/// Run one of the commands [`carries`].
pub fn run(api: &Api, cmd: &Command) -> Result<Code> {
    let post = |path: String| api.call("POST", &path, None);
    match cmd {
        Command::Top(a) => top(api, &a.container),
        Command::Stats(a) => super::stats::stats(api, a),
        Command::Port(a) => port(api, a),
        Command::Rename(a) => {
            post(format!(
                "/containers/{}/rename?name={}",
                q(&a.container),
                q(&a.new_name)
            ))?;
            Ok(0)
        }
        Command::Pause(a) => each(&a.containers, |n| {
            post(format!("/containers/{}/pause", q(n)))
        }),
        Command::Unpause(a) => each(&a.containers, |n| {
            post(format!("/containers/{}/unpause", q(n)))
        }),
        Command::Tag(a) => tag(api, &a.source, &a.target),
        Command::Rmi(a) => rmi(api, &a.images, a.force),
        Command::Push(a) => push(api, &a.image),
        Command::Build(a) => super::build::build(api, a),
        Command::Cp(a) => super::cp::cp(api, &a.src, &a.dest),
        Command::Network(n) => network(api, n),
        Command::Volume(v) => volume(api, v),
        _ => Err(anyhow!("not carried through -H")),
    }
}

/// docker's way with several names: each printed when done, each error
/// printed, exit 1 if any failed.
fn each(names: &[String], f: impl Fn(&str) -> Result<Vec<u8>>) -> Result<Code> {
    let mut code = 0;
    for name in names {
        match f(name) {
            Ok(_) => println!("{name}"),
            Err(e) if !e.is::<DaemonError>() => return Err(e),
            Err(e) => {
                eprintln!("Error response from daemon: {e:#}");
                code = 1;
            }
        }
    }
    Ok(code)
}

/// `top`: the service's `ps` table, in docker's padding.
fn top(api: &Api, name: &str) -> Result<Code> {
    let t = api.json("GET", &format!("/containers/{}/top", q(name)), None)?;
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .map(|s| s.as_str().unwrap_or_default().to_string())
            .collect()
    };
    let titles = strings(&t["Titles"]);
    let titles: Vec<&str> = titles.iter().map(String::as_str).collect();
    let rows: Vec<Vec<String>> = t["Processes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(strings)
        .collect();
    print!("{}", table(&titles, &rows));
    Ok(0)
}

/// `port C [PORT[/PROTO]]`: the bindings in the container's inspect
/// document, in the in-process command's words.
fn port(api: &Api, a: &PortArgs) -> Result<Code> {
    let c = api.json(
        "GET",
        &format!("/containers/{}/json", q(&a.container)),
        None,
    )?;
    let mut bindings: Vec<(u16, String, String, String)> = Vec::new();
    for (key, hosts) in c["NetworkSettings"]["Ports"]
        .as_object()
        .into_iter()
        .flatten()
    {
        let (number, proto) = key.split_once('/').unwrap_or((key, "tcp"));
        let Ok(number) = number.parse::<u16>() else {
            continue;
        };
        for h in hosts.as_array().into_iter().flatten() {
            let text = |k: &str| h[k].as_str().unwrap_or_default().to_string();
            bindings.push((number, proto.to_string(), text("HostIp"), text("HostPort")));
        }
    }
    bindings.sort_by(|x, y| (x.0, &x.1).cmp(&(y.0, &y.1)));
    let Some(asked) = &a.port else {
        for (n, proto, ip, port) in &bindings {
            println!("{n}/{proto} -> {ip}:{port}");
        }
        return Ok(0);
    };
    let (number, proto) = asked.split_once('/').unwrap_or((asked, "tcp"));
    let number: u16 = number
        .parse()
        .map_err(|_| anyhow!("Error: invalid port ({asked}): invalid syntax"))?;
    let matching: Vec<_> = bindings
        .iter()
        .filter(|b| b.0 == number && b.1 == proto)
        .collect();
    if matching.is_empty() {
        bail!(
            "Error: No public port '{asked}' published for {}",
            a.container
        );
    }
    for (_, _, ip, port) in matching {
        println!("{ip}:{port}");
    }
    Ok(0)
}

/// `tag SOURCE TARGET`: the target's repository and tag apart, as docker's
/// CLI sends them.
fn tag(api: &Api, source: &str, target: &str) -> Result<Code> {
    let (repo, tag) = match target.rsplit_once(':') {
        Some((r, t)) if !t.contains('/') => (r, t),
        _ => (target, "latest"),
    };
    let path = format!("/images/{}/tag?repo={}&tag={}", q(source), q(repo), q(tag));
    api.call("POST", &path, None)?;
    Ok(0)
}

/// `rmi`: each image's `Untagged:`/`Deleted:` lines, as in-process.
fn rmi(api: &Api, images: &[String], force: bool) -> Result<Code> {
    let mut code = 0;
    for name in images {
        let path = format!("/images/{}?force={force}", q(name));
        match api.json("DELETE", &path, None) {
            Ok(list) => {
                for item in list.as_array().into_iter().flatten() {
                    if let Some(u) = item["Untagged"].as_str() {
                        println!("Untagged: {u}");
                    }
                    if let Some(d) = item["Deleted"].as_str() {
                        println!("Deleted: {d}");
                    }
                }
            }
            Err(e) if !e.is::<DaemonError>() => return Err(e),
            Err(e) => {
                eprintln!("Error response from daemon: {e:#}");
                code = 1;
            }
        }
    }
    Ok(code)
}

/// `push`: `POST /images/NAME/push?tag=`, its progress printed as lines
/// (`ID: Pushed`), as in-process without a terminal. No credentials are
/// sent (`X-Registry-Auth: {}`): `login` stays on the service's machine.
fn push(api: &Api, image: &str) -> Result<Code> {
    let (name, tag) = match image.rsplit_once(':') {
        Some((n, t)) if !t.contains('/') => (n, Some(t)),
        _ => (image, None),
    };
    let mut path = format!("/images/{}/push", q(name));
    if let Some(t) = tag {
        path += &format!("?tag={}", q(t));
    }
    let auth = "X-Registry-Auth: e30=\r\n";
    let body = api.stream("POST", &path, auth, None)?;
    progress(BufReader::new(body), &mut std::io::stdout())?;
    Ok(0)
}

/// A pull's or push's JSON progress stream, printed as docker's CLI
/// prints it without a terminal: `status` lines (with their layer's `id`),
/// progress bars' steps left out; an `error` is the service's refusal.
pub fn progress(body: impl BufRead, out: &mut dyn Write) -> Result<()> {
    for line in body.split(b'\n') {
        let line = line?;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let m: Value = serde_json::from_slice(&line)?;
        if let Some(e) = m["error"].as_str() {
            return Err(DaemonError {
                status: 500,
                message: e.to_string(),
            }
            .into());
        }
        let Some(status) = m["status"].as_str() else {
            continue;
        };
        if m["progressDetail"]["current"].is_u64() {
            continue; // a progress bar's step
        }
        match m["id"].as_str() {
            Some(id) => writeln!(out, "{id}: {status}")?,
            None => writeln!(out, "{status}")?,
        }
        out.flush()?;
    }
    Ok(())
}

/// `network create` (bridge) and `network rm`.
fn network(api: &Api, cmd: &NetworkCmd) -> Result<Code> {
    match cmd {
        NetworkCmd::Create {
            driver,
            subnet,
            gateway,
            label,
            opt,
            internal,
            name,
            ..
        } => {
            let mut ipam = json!({});
            if subnet.is_some() || gateway.is_some() {
                let mut c = Map::new();
                if let Some(s) = subnet {
                    c.insert("Subnet".into(), json!(s));
                }
                if let Some(g) = gateway {
                    c.insert("Gateway".into(), json!(g));
                }
                ipam = json!({"Driver": "default", "Config": [c]});
            }
            let body = json!({
                "Name": name,
                "Driver": driver,
                "IPAM": ipam,
                "Internal": internal,
                "Options": pairs(opt),
                "Labels": pairs(label),
            });
            let answer = api.json("POST", "/networks/create", Some(&body))?;
            println!("{}", answer["Id"].as_str().unwrap_or_default());
            Ok(0)
        }
        NetworkCmd::Rm { names } => each(names, |n| {
            api.call("DELETE", &format!("/networks/{}", q(n)), None)
        }),
        _ => Err(anyhow!("not carried through -H")),
    }
}

/// `K=V` flags as a JSON object.
fn pairs(items: &[String]) -> Value {
    let map: Map<String, Value> = items
        .iter()
        .map(|i| {
            let (k, v) = i.split_once('=').unwrap_or((i, ""));
            (k.to_string(), json!(v))
        })
        .collect();
    Value::Object(map)
}

/// `volume create` and `volume rm`.
fn volume(api: &Api, cmd: &VolumeCmd) -> Result<Code> {
    match cmd {
        VolumeCmd::Create { label, name } => {
            let body = json!({
                "Name": name.clone().unwrap_or_default(),
                "Labels": pairs(label),
            });
            let answer = api.json("POST", "/volumes/create", Some(&body))?;
            println!("{}", answer["Name"].as_str().unwrap_or_default());
            Ok(0)
        }
        VolumeCmd::Rm { force, names } => each(names, |n| {
            api.call("DELETE", &format!("/volumes/{}?force={force}", q(n)), None)
        }),
        _ => Err(anyhow!("not carried through -H")),
    }
}
