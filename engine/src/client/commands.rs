//! Each command the client carries: the Engine API request docker's CLI
//! sends for it, and the answer turned into what the in-process renderers
//! (`commands/`) take, so both fronts print the same.

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Result};
use serde_json::{json, Map, Value};

use super::http::Unreachable;
use super::{query_escape as q, Api, DaemonError};
use crate::cli::{
    Cli, Command, InspectArgs, NetworkCmd, PsArgs, PullArgs, RunArgs, SystemCmd, VolumeCmd,
};
use crate::commands::network::LsRow;
use crate::commands::{self, container::ports_column, Code};
use crate::format::{command_column, short_id, table};
use dockyard::container::PublishedPort;
use dockyard::events::go_time_string;
use dockyard::units::human_duration;

/// Run one command against the service; errors as `main`'s dispatch
/// reports them (docker's "Error response from daemon: " for what the
/// service refused, exit 125 for `run`, `create` and `pull`).
pub fn run(cli: &Cli, api: &Api) -> Result<i32, (u8, anyhow::Error)> {
    let fail: u8 = match cli.command {
        Command::Run(_)
        | Command::Create(_)
        | Command::Pull(_)
        | Command::Push(_)
        | Command::Login(_) => 125,
        _ => 1,
    };
    let result = match &cli.command {
        Command::Version => version(api),
        Command::Info | Command::System(SystemCmd::Info) => info(api),
        Command::Ps(a) => ps(api, a),
        Command::Images(a) => images(api, a),
        Command::Pull(a) => pull(api, a, false, false),
        Command::Create(a) => create(api, a).map(|id| {
            println!("{id}");
            0
        }),
        Command::Run(a) => run_container(api, a),
        Command::Start(a) if !a.attach && !a.interactive => each(&a.containers, |n| {
            api.call("POST", &format!("/containers/{}/start", q(n)), None)
        }),
        Command::Stop(a) => each(&a.containers, |n| {
            let path = format!("/containers/{}/stop{}", q(n), stop_query(a));
            api.call("POST", &path, None)
        }),
        Command::Restart(a) => each(&a.containers, |n| {
            let path = format!("/containers/{}/restart{}", q(n), stop_query(a));
            api.call("POST", &path, None)
        }),
        Command::Wait(a) => wait(api, &a.containers),
        Command::Kill(a) => each(&a.containers, |n| {
            let path = format!("/containers/{}/kill?signal={}", q(n), q(&a.signal));
            api.call("POST", &path, None)
        }),
        Command::Rm(a) => each(&a.containers, |n| {
            let path = format!("/containers/{}?force={}&v={}", q(n), a.force, a.volumes);
            api.call("DELETE", &path, None)
        }),
        Command::Logs(a) => super::logs::logs(api, a),
        Command::Exec(a) => super::session::exec(api, a),
        Command::Start(a) => super::session::start_attached(api, a),
        Command::Attach(a) => super::session::attach(api, a),
        Command::Inspect(a) => inspect(api, a),
        Command::Network(NetworkCmd::Ls {
            quiet,
            filter,
            format,
            no_trunc,
        }) => network_ls(api, *quiet, *no_trunc, filter, format.as_deref()),
        Command::Volume(VolumeCmd::Ls {
            quiet,
            filter,
            format,
        }) => volume_ls(api, *quiet, filter, format.as_deref()),
        Command::Update(a) => super::update::update(api, a),
        other if super::more::carries(other) => super::more::run(api, other),
        Command::Events(a) | Command::System(SystemCmd::Events(a)) => super::events::events(api, a),
        other if super::layers::carries(other) => super::layers::run(api, other),
        other if super::netvol::carries(other) => super::netvol::run(api, other),
        _ => return Err((125, unsupported(&api.host.url()))),
    };
    result.map_err(|e| {
        if e.is::<Unreachable>() || !e.is::<DaemonError>() {
            (fail, e)
        } else {
            (fail, anyhow!("Error response from daemon: {e:#}"))
        }
    })
}

/// The refusal of a command the client does not carry yet, named as the
/// user typed it (`network create`, `exec`).
/// docker's `ConsoleSize` for a create: our terminal's `[rows, columns]` with `-t`, so the
/// container's terminal starts that size; `[0, 0]` (none) otherwise, as the docker CLI sends.
pub(crate) fn console_size(tty: bool) -> [u16; 2] {
    let ours = tty.then(dockyard_monitor::pump::our_window_size).flatten();
    ours.map_or([0, 0], |(rows, cols)| [rows, cols])
}

fn unsupported(host: &str) -> anyhow::Error {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut words = Vec::new();
    let mut i = 0;
    while i < args.len() && words.len() < 2 {
        let a = &args[i];
        let takes_value = ["-H", "--host", "--root", "--config", "--userns-remap"];
        if takes_value.contains(&a.as_str()) {
            i += 1;
        } else if !a.starts_with('-') {
            words.push(a.clone());
            let group = [
                "network",
                "volume",
                "system",
                "container",
                "image",
                "builder",
            ];
            if !group.contains(&a.as_str()) {
                break;
            }
        }
        i += 1;
    }
    anyhow!(
        "dockyard: `{}` is not supported through -H yet (the service at {host}); run it on \
         the service's machine without -H (and without DOCKYARD_HOST)",
        words.join(" ")
    )
}

/// docker's way with several containers: each name printed when done,
/// each error printed, exit 1 if any failed.
fn each(names: &[String], f: impl Fn(&str) -> Result<Vec<u8>>) -> Result<Code> {
    let mut code = 0;
    for name in names {
        match f(name) {
            Ok(_) => println!("{name}"),
            Err(e) if e.is::<Unreachable>() => return Err(e),
            Err(e) => {
                eprintln!("Error response from daemon: {e:#}");
                code = 1;
            }
        }
    }
    Ok(code)
}

/// `wait`: each container's exit code once it is not running (the
/// API's default condition), or the error.
fn wait(api: &Api, names: &[String]) -> Result<Code> {
    let mut code = 0;
    for name in names {
        match api.json("POST", &format!("/containers/{}/wait", q(name)), None) {
            Ok(v) => println!("{}", v["StatusCode"].as_i64().unwrap_or(0)),
            Err(e) if e.is::<Unreachable>() => return Err(e),
            Err(e) => {
                eprintln!("Error response from daemon: {e:#}");
                code = 1;
            }
        }
    }
    Ok(code)
}

/// `version`: this client's part, then the service's `GET /version`.
fn version(api: &Api) -> Result<Code> {
    commands::system::print_version(api.json("GET", "/version", None))
}

/// `info`: `GET /info` is the core's `Info`, printed by the same code.
fn info(api: &Api) -> Result<Code> {
    let info: dockyard::system::Info = serde_json::from_value(api.json("GET", "/info", None)?)?;
    print!("{}", commands::system::info_text(&info));
    Ok(0)
}

/// `ps`: `GET /containers/json`, each summary made into the object
/// `ps_object` makes of a record here.
fn ps(api: &Api, a: &PsArgs) -> Result<Code> {
    let filters = filters_json(&a.filter)?;
    let last = if a.latest { 1 } else { a.last };
    let mut path = format!("/containers/json?all={}", a.all);
    if last > 0 {
        path += &format!("&limit={last}");
    }
    path += &filters;
    let list = api.json("GET", &path, None)?;
    let now = SystemTime::now();
    let objects: Vec<Value> = list
        .as_array()
        .map(|l| l.iter().map(|s| ps_object(s, now, a.no_trunc)).collect())
        .unwrap_or_default();
    commands::container::print_ps(&objects, a)
}

/// `-f KEY=VALUE`s as the API's `&filters=` (docker's JSON: each key a
/// map of its values to true), or nothing without any.
fn filters_json(filter: &[String]) -> Result<String> {
    let mut filters: Map<String, Value> = Map::new();
    for f in filter {
        let (k, v) = f
            .split_once('=')
            .ok_or_else(|| anyhow!("bad format of filter (expected name=value): {f}"))?;
        let entry = filters.entry(k).or_insert_with(|| json!({}));
        entry[v] = json!(true);
    }
    Ok(match filters.is_empty() {
        true => String::new(),
        false => format!("&filters={}", q(&Value::Object(filters).to_string())),
    })
}

/// What `ps --format` sees, from the API's summary of a container.
fn ps_object(s: &Value, now: SystemTime, no_trunc: bool) -> Value {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let id = text(&s["Id"]);
    let created = s["Created"].as_u64().unwrap_or(0);
    let since = now
        .duration_since(UNIX_EPOCH + Duration::from_secs(created))
        .unwrap_or_default();
    let empty = Vec::new();
    let ports = s["Ports"].as_array().unwrap_or(&empty);
    let port = |p: &Value| -> Option<(u16, String)> {
        Some((
            u16::try_from(p["PrivatePort"].as_u64()?).ok()?,
            p["Type"].as_str().unwrap_or("tcp").to_string(),
        ))
    };
    let published: Vec<PublishedPort> = ports
        .iter()
        .filter_map(|p| {
            let (container_port, proto) = port(p)?;
            Some(PublishedPort {
                host_ip: text(&p["IP"]),
                host_port: u16::try_from(p["PublicPort"].as_u64()?).ok()?,
                container_port,
                proto,
            })
        })
        .collect();
    let exposed: Vec<(u16, String)> = ports
        .iter()
        .filter(|p| p["PublicPort"].is_null())
        .filter_map(port)
        .collect();
    let mounts = s["Mounts"].as_array().unwrap_or(&empty);
    let mount_names: Vec<String> = mounts
        .iter()
        .map(|m| {
            let n = m["Name"]
                .as_str()
                .unwrap_or(m["Source"].as_str().unwrap_or(""));
            if no_trunc || n.chars().count() <= 15 {
                n.to_string()
            } else {
                n.chars().take(14).collect::<String>() + "…"
            }
        })
        .collect();
    let mode = text(&s["HostConfig"]["NetworkMode"]);
    let mut networks: Vec<String> = s["NetworkSettings"]["Networks"]
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    if networks.is_empty() && !mode.starts_with("container:") {
        networks.push(mode);
    }
    let names: Vec<String> = s["Names"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .map(|n| text(n).trim_start_matches('/').to_string())
        .collect();
    let labels: Vec<String> = s["Labels"]
        .as_object()
        .map(|o| o.iter().map(|(k, v)| format!("{k}={}", text(v))).collect())
        .unwrap_or_default();
    json!({
        "ID": if no_trunc { id.clone() } else { short_id(&id).to_string() },
        "Image": s["Image"],
        "Command": command_column(&[text(&s["Command"])], !no_trunc),
        "CreatedAt": go_time_string(created as i64),
        "Mounts": mount_names.join(","),
        "LocalVolumes": mounts.iter().filter(|m| m["Type"] == "volume").count().to_string(),
        "Networks": networks.join(","),
        "Size": "0B",
        "RunningFor": format!("{} ago", human_duration(since)),
        "Ports": ports_column(&published, &exposed),
        "Status": s["Status"],
        "State": s["State"],
        "Names": names.join(","),
        "Labels": labels.join(","),
    })
}

/// `images`: `GET /images/json`, one summary per name, printed (filtered
/// and ordered) by the in-process code.
fn images(api: &Api, a: &crate::cli::ImagesArgs) -> Result<Code> {
    let list = api.json("GET", "/images/json", None)?;
    let mut all = Vec::new();
    for i in list.as_array().into_iter().flatten() {
        let id = i["Id"].as_str().unwrap_or_default().to_string();
        let hex = id.trim_start_matches("sha256:");
        // (0, the epoch, is a time too: docker/cli shows it as "56 years ago".)
        let created = i["Created"]
            .as_u64()
            .map(|c| dockyard::state::rfc3339(UNIX_EPOCH + Duration::from_secs(c)));
        // No name (`[]`, a dangling image): one row, named "" as the
        // in-process list names it (`<none>:<none>` when printed).
        let tags: Vec<&str> = i["RepoTags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str())
            .collect();
        let names = if tags.is_empty() { vec![""] } else { tags };
        for name in names {
            all.push(dockyard::image::ImageSummary {
                name: name.to_string(),
                id: id.clone(),
                short_id: hex[..hex.len().min(12)].to_string(),
                created: created.clone(),
                size: i["Size"].as_u64().unwrap_or(0),
            });
        }
    }
    commands::image::print_images(all, a)
}

/// `pull`: `POST /images/create?fromImage=`, its JSON progress stream
/// printed as docker's CLI prints it without a terminal (progress bars
/// left out), to stderr when `run` pulls, nowhere with its `-q`.
fn pull(api: &Api, a: &PullArgs, to_stderr: bool, quiet: bool) -> Result<Code> {
    use lab04_overlay::reference::Reference;
    let reference = Reference::parse(&a.image)?;
    let mut out: Box<dyn Write> = if quiet {
        Box::new(std::io::sink())
    } else if to_stderr {
        Box::new(std::io::stderr())
    } else {
        Box::new(std::io::stdout())
    };
    if !a.image.contains(':') && !a.image.contains('@') {
        writeln!(out, "Using default tag: latest")?;
    }
    // docker's CLI sends the repository and the tag (or digest) apart, the
    // tag `latest` when none is given.
    let (from, tag) = match a.image.split_once('@') {
        Some((name, digest)) => (name, digest),
        None => match a.image.rsplit_once(':') {
            Some((name, tag)) if !tag.contains('/') => (name, tag),
            _ => (a.image.as_str(), "latest"),
        },
    };
    let mut path = format!("/images/create?fromImage={}&tag={}", q(from), q(tag));
    if let Some(p) = &a.platform {
        path += &format!("&platform={}", q(p));
    }
    let body = api.stream("POST", &path, "", None)?;
    super::more::progress(std::io::BufReader::new(body), &mut out)?;
    writeln!(out, "{reference}")?;
    Ok(0)
}

/// `stop`'s and `restart`'s query: `t` only when `-t` was given (else the
/// container's `--stop-timeout` holds), and `signal`.
fn stop_query(a: &crate::cli::StopArgs) -> String {
    let mut params = Vec::new();
    if let Some(t) = a.time {
        params.push(format!("t={t}"));
    }
    if let Some(s) = &a.signal {
        params.push(format!("signal={}", q(s)));
    }
    match params.is_empty() {
        true => String::new(),
        false => format!("?{}", params.join("&")),
    }
}

/// The flags of `run`/`create` the client sends; any other is refused
/// rather than dropped.
const CARRIED: [&str; 37] = [
    "-d",
    "--detach",
    "-i",
    "--interactive",
    "-t",
    "--tty",
    "--name",
    "-e",
    "--env",
    "-w",
    "--workdir",
    "-u",
    "--user",
    "--entrypoint",
    "-h",
    "--hostname",
    "--cgroup-parent",
    "-l",
    "--label",
    "--network",
    "--net",
    "--rm",
    "--shm-size",
    "--pid",
    "--ipc",
    "--uts",
    "--cgroupns",
    "--group-add",
    "--sysctl",
    "--oom-score-adj",
    "--stop-signal",
    "--stop-timeout",
    "--domainname",
    "--cidfile",
    "--label-file",
    "-q",
    "--quiet",
];

/// `create`: `POST /containers/create` with docker's config for the
/// carried flags; when the service lacks the image, pulled first, as
/// docker's CLI does. Returns the ID.
fn create(api: &Api, a: &RunArgs) -> Result<String> {
    check_flags(a)?;
    a.ns.check()?;
    let (image, cmd) = a
        .image_and_command
        .split_first()
        .ok_or_else(|| anyhow!("\"create\" requires at least 1 argument"))?;
    let env = a
        .env
        .iter()
        .map(|e| commands::run::env_entry(e))
        .collect::<Result<Vec<_>>>()?;
    let labels: Map<String, Value> = a
        .process
        .labels(&a.label)?
        .iter()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or((l, ""));
            (k.to_string(), json!(v))
        })
        .collect();
    let mut body = json!({
        "Image": image,
        "Cmd": if cmd.is_empty() { Value::Null } else { json!(cmd) },
        "Entrypoint": a.entrypoint.as_ref().map(|e| json!([e])),
        "Env": env,
        "WorkingDir": a.workdir.clone().unwrap_or_default(),
        "User": a.user.clone().unwrap_or_default(),
        "Hostname": a.hostname.clone().unwrap_or_default(),
        "Labels": labels,
        "Tty": a.tty,
        "OpenStdin": a.interactive,
        "StdinOnce": a.interactive,
        "AttachStdin": a.interactive && !a.detach,
        "AttachStdout": !a.detach,
        "AttachStderr": !a.detach,
        "HostConfig": {
            "AutoRemove": a.rm,
            "CgroupParent": a.cgroup_parent.clone().unwrap_or_default(),
            "NetworkMode": a.network,
            "ShmSize": a.shm_size.unwrap_or(0),
            "ConsoleSize": console_size(a.tty),
            "PidMode": a.ns.pid,
            "IpcMode": a.ns.ipc,
            "UTSMode": a.ns.uts,
            "CgroupnsMode": a.ns.cgroupns,
        },
    });
    let more = crate::resource_flags::host_config(&a.resources)?;
    for (k, v) in more.as_object().into_iter().flatten() {
        body["HostConfig"][k] = v.clone();
    }
    a.process.api_fields(&mut body);
    let mut cidfile = crate::process_flags::CidFile::create(a.process.cidfile.as_deref())?;
    let path = match &a.name {
        Some(n) => format!("/containers/create?name={}", q(n)),
        None => "/containers/create".to_string(),
    };
    let created = match api.json("POST", &path, Some(&body)) {
        Err(e) if is_no_such_image(&e) && a.pull != "never" => {
            if !a.process.quiet {
                eprintln!("Unable to find image '{image}' locally");
            }
            let pull_args = PullArgs {
                image: image.clone(),
                platform: None,
            };
            pull(api, &pull_args, true, a.process.quiet)?;
            api.json("POST", &path, Some(&body))?
        }
        r => r?,
    };
    let id = created["Id"].as_str().unwrap_or_default().to_string();
    let warnings: Vec<String> = created["Warnings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|w| w.as_str().map(String::from))
        .collect();
    commands::warnings::print_create(&warnings);
    cidfile.write(&id)?;
    Ok(id)
}

fn is_no_such_image(e: &anyhow::Error) -> bool {
    e.downcast_ref::<DaemonError>()
        .is_some_and(|d| d.status == 404 && d.message.contains("No such image"))
}

/// Refuse the flags of `run`/`create` the client does not send, naming
/// them: a flag dropped on the way would be a silently different container.
fn check_flags(a: &RunArgs) -> Result<()> {
    let image = a.image_and_command.first().cloned().unwrap_or_default();
    let args: Vec<String> = std::env::args().collect();
    let start = args
        .iter()
        .position(|x| x == "run" || x == "create")
        .unwrap_or(args.len());
    let mut value_next = false;
    for x in &args[start + 1..] {
        if value_next {
            value_next = false;
            continue;
        }
        if !x.starts_with('-') {
            if *x == image {
                break;
            }
            continue;
        }
        let flag = x.split_once('=').map_or(x.as_str(), |(f, _)| f);
        // A bundle of short flags (`-dit`) is each of them.
        let flags: Vec<String> = if !flag.starts_with("--") && flag.len() > 2 {
            flag[1..].chars().map(|c| format!("-{c}")).collect()
        } else {
            vec![flag.to_string()]
        };
        for f in &flags {
            if !CARRIED.contains(&f.as_str())
                && !crate::resource_flags::CARRIED.contains(&f.as_str())
            {
                bail!("dockyard: `{f}` of run/create is not supported through -H yet");
            }
        }
        let switches = [
            "-d",
            "--detach",
            "--rm",
            "-i",
            "--interactive",
            "-t",
            "--tty",
            "-q",
            "--quiet",
        ];
        value_next = !x.contains('=') && !flags.iter().all(|f| switches.contains(&f.as_str()));
    }
    Ok(())
}

/// `run`: create; with `-d`, start and print the ID; else the attached
/// session (`session`).
fn run_container(api: &Api, a: &RunArgs) -> Result<Code> {
    if a.tty
        && a.interactive
        && !a.detach
        && !nix::unistd::isatty(std::io::stdin()).unwrap_or(false)
    {
        bail!("the input device is not a TTY");
    }
    let id = create(api, a)?;
    if a.detach {
        api.call("POST", &format!("/containers/{id}/start"), None)?;
        println!("{id}");
        return Ok(0);
    }
    super::session::run_attached(api, a, &id)
}

/// `inspect`: containers first, then images, as the in-process command.
fn inspect(api: &Api, a: &InspectArgs) -> Result<Code> {
    let mut docs = Vec::new();
    let mut code = 0;
    let container = |n: &str| api.json("GET", &format!("/containers/{}/json", q(n)), None);
    let image = |n: &str| api.json("GET", &format!("/images/{}/json", q(n)), None);
    for name in &a.names {
        let found = match a.kind.as_deref() {
            Some("container") => container(name),
            Some("image") => image(name),
            Some(other) => bail!("\"{other}\" is not a valid value for --type"),
            None => container(name).or_else(|e| match e.is::<Unreachable>() {
                true => Err(e),
                false => image(name),
            }),
        };
        match found {
            Ok(doc) => docs.push(doc),
            Err(e) if e.is::<Unreachable>() => return Err(e),
            Err(e) if a.kind.is_some() => {
                eprintln!("Error response from daemon: {e:#}");
                code = 1;
            }
            Err(_) => {
                eprintln!("Error: No such object: {name}");
                code = 1;
            }
        }
    }
    commands::print_documents(a.format.as_deref(), docs)?;
    Ok(code)
}

/// `network ls`: `GET /networks`, in name order, docker's table (or
/// `--format`'s, by the in-process formatter).
fn network_ls(
    api: &Api,
    quiet: bool,
    no_trunc: bool,
    filter: &[String],
    format: Option<&str>,
) -> Result<Code> {
    let path = format!(
        "/networks?{}",
        filters_json(filter)?.trim_start_matches('&')
    );
    let mut list = api
        .json("GET", &path, None)?
        .as_array()
        .cloned()
        .unwrap_or_default();
    list.sort_by(|a, b| a["Name"].as_str().cmp(&b["Name"].as_str()));
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let id = |n: &Value| {
        let id = text(&n["Id"]);
        if no_trunc {
            id
        } else {
            short_id(&id).to_string()
        }
    };
    if quiet {
        list.iter().for_each(|n| println!("{}", id(n)));
        return Ok(0);
    }
    if let Some(format) = format {
        let labels: Vec<_> = list.iter().map(|n| string_map(&n["Labels"])).collect();
        let rows: Vec<_> = list
            .iter()
            .zip(&labels)
            .map(|(n, labels)| LsRow {
                id: id(n),
                name: n["Name"].as_str().unwrap_or_default(),
                driver: n["Driver"].as_str().unwrap_or_default(),
                scope: n["Scope"].as_str().unwrap_or_default(),
                internal: n["Internal"].as_bool() == Some(true),
                labels,
                created: n["Created"].as_str().unwrap_or_default(),
            })
            .collect();
        print!("{}", commands::network::ls_formatted(format, &rows)?);
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|n| {
            vec![
                id(n),
                text(&n["Name"]),
                text(&n["Driver"]),
                text(&n["Scope"]),
            ]
        })
        .collect();
    print!(
        "{}",
        table(&["NETWORK ID", "NAME", "DRIVER", "SCOPE"], &rows)
    );
    Ok(0)
}

/// `volume ls`: `GET /volumes`, in name order, docker's table (or
/// `--format`'s, by the in-process formatter).
fn volume_ls(api: &Api, quiet: bool, filter: &[String], format: Option<&str>) -> Result<Code> {
    let path = format!("/volumes?{}", filters_json(filter)?.trim_start_matches('&'));
    let answer = api.json("GET", &path, None)?;
    let mut list: Vec<&Value> = answer["Volumes"].as_array().into_iter().flatten().collect();
    list.sort_by_key(|v| v["Name"].as_str());
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    if quiet {
        list.iter().for_each(|v| println!("{}", text(&v["Name"])));
        return Ok(0);
    }
    if let Some(format) = format {
        let rows: Vec<_> = list
            .iter()
            .map(|v| {
                let labels = string_map(&v["Labels"]);
                (text(&v["Name"]), text(&v["Mountpoint"]), labels)
            })
            .collect();
        print!("{}", commands::volume::ls_formatted(format, &rows)?);
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|v| vec![text(&v["Driver"]), text(&v["Name"])])
        .collect();
    print!("{}", table(&["DRIVER", "VOLUME NAME"], &rows));
    Ok(0)
}

/// A JSON object of strings (labels) as a map; null or anything else:
/// none.
fn string_map(v: &Value) -> std::collections::BTreeMap<String, String> {
    v.as_object()
        .into_iter()
        .flatten()
        .map(|(k, x)| (k.clone(), x.as_str().unwrap_or_default().to_string()))
        .collect()
}
