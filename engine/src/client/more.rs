//! The rest of the notes' lifecycle through the service: `top`, `stats
//! --no-stream`, `port`, `rename`, `pause`/`unpause`, networks and volumes
//! made and removed, `tag`, `rmi`, `push`, and the dispatch of `build` and
//! `cp` (their own modules). Each is the request docker's CLI sends, its
//! answer printed by the in-process renderers.
//!
//! | command                          | request                                      |
//! |----------------------------------|----------------------------------------------|
//! | `top C`                          | `GET /containers/C/top` (`{Titles, Processes}`) |
//! | `stats --no-stream [C...]`       | `GET /containers/C/stats?stream=0` each      |
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
use crate::cli::{Command, NetworkCmd, PortArgs, StatsArgs, VolumeCmd};
use crate::commands::{self, Code};
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
    ) || matches!(cmd, Command::Stats(a) if a.no_stream)
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
        Command::Stats(a) => stats(api, a),
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

/// `stats --no-stream`: one document per container (`stream=0`: the
/// service samples a second apart), the percentages computed as docker's
/// CLI does, the row printed by the in-process renderer. Sampled side by
/// side, so N containers take one second, not N.
fn stats(api: &Api, a: &StatsArgs) -> Result<Code> {
    let names: Vec<String> = if a.containers.is_empty() {
        let list = api.json("GET", &format!("/containers/json?all={}", a.all), None)?;
        list.as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["Id"].as_str().map(str::to_string))
            .collect()
    } else {
        a.containers.clone()
    };
    let docs: Vec<Result<Value>> = std::thread::scope(|s| {
        let handles: Vec<_> = names
            .iter()
            .map(|n| {
                let path = format!("/containers/{}/stats?stream=0", q(n));
                s.spawn(move || api.json("GET", &path, None))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow!("a stats thread panicked")))
            })
            .collect()
    });
    let mut rows = Vec::new();
    for d in docs {
        rows.push(commands::container::stats_row(&stats_of(&d?)));
    }
    let titles = [
        "CONTAINER ID",
        "NAME",
        "CPU %",
        "MEM USAGE / LIMIT",
        "MEM %",
        "NET I/O",
        "BLOCK I/O",
        "PIDS",
    ];
    print!("{}", table(&titles, &rows));
    Ok(0)
}

/// The API's stats document as the core's `Stats`, with docker's
/// formulas (see `api/stats.rs`).
fn stats_of(d: &Value) -> dockyard::container::Stats {
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    let (cpu, pre) = (&d["cpu_stats"], &d["precpu_stats"]);
    let cpu_delta = n(&cpu["cpu_usage"]["total_usage"])
        .saturating_sub(n(&pre["cpu_usage"]["total_usage"])) as f64;
    let system_delta =
        n(&cpu["system_cpu_usage"]).saturating_sub(n(&pre["system_cpu_usage"])) as f64;
    let cpus = n(&cpu["online_cpus"]).max(1) as f64;
    let cpu_percent = match system_delta > 0.0 {
        true => cpu_delta / system_delta * cpus * 100.0,
        false => 0.0,
    };
    let m = &d["memory_stats"];
    let memory = n(&m["usage"]).saturating_sub(n(&m["stats"]["inactive_file"]));
    let limit = n(&m["limit"]);
    let (mut rx, mut tx) = (0, 0);
    for i in d["networks"].as_object().into_iter().flat_map(Map::values) {
        rx += n(&i["rx_bytes"]);
        tx += n(&i["tx_bytes"]);
    }
    dockyard::container::Stats {
        id: d["id"].as_str().unwrap_or_default().to_string(),
        name: d["name"]
            .as_str()
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_string(),
        cpu_percent,
        memory,
        memory_limit: limit,
        memory_percent: match limit {
            0 => 0.0,
            l => memory as f64 / l as f64 * 100.0,
        },
        net_rx: rx,
        net_tx: tx,
        pids: n(&d["pids_stats"]["current"]),
    }
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
