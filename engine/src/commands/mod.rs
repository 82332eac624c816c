//! One function per `dockyard` command. Each resolves names, calls the
//! engine core (the `dockyard` library) or a lab, and prints what docker
//! prints.

pub mod attach;
pub mod build;
pub mod cp;
pub mod network;
pub mod registry;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, SystemTime};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};

use crate::cli::{
    CommitArgs, ExecArgs, ExportArgs, HistoryArgs, ImagePruneArgs, ImagesArgs, ImportArgs,
    InspectArgs, KillArgs, LoadArgs, LogsArgs, NamesArgs, OneContainer, PruneArgs, PsArgs,
    RenameArgs, RmArgs, RmiArgs, RunArgs, SaveArgs, StartArgs, StatsArgs, StopArgs,
};
use crate::format::{command_column, human_duration, human_size, short_id, table};
use crate::template;
use dockyard::container::{self, config_of, Attach, ContainerConfig, Limits};
use dockyard::logs;
use dockyard::state::{parse_rfc3339, Record, Status};
use dockyard::Engine;
use lab04_overlay as overlay;

/// How a command ended, as a process exit code.
pub type Code = i32;

/// `docker run`: create, start, and in the foreground wait and relay the
/// exit code (125 when dockyard fails, 126/127 when the command cannot run).
pub fn run(engine: &Engine, args: &RunArgs) -> Result<Code> {
    if args.tty
        && args.interactive
        && !args.detach
        && !nix::unistd::isatty(std::io::stdin()).unwrap_or(false)
    {
        bail!("the input device is not a TTY");
    }
    // Checked before anything is created.
    attach::parse_detach_keys(&args.detach_keys)?;
    let (mut config, name) = container_config(args)?;
    dockyard::trace::phase("built the config");
    network::check_run(engine, &mut config)?;
    let record = container::create(engine, name.as_deref(), config)?;
    dockyard::trace::phase("created the container record");
    if args.detach {
        container::start_detached(engine, &record.id)?;
        println!("{}", record.id);
        return Ok(0);
    }
    if args.tty && args.interactive {
        // -it: as docker, a detached container and an attached client, so
        // that Ctrl-P Ctrl-Q can leave it running.
        return run_attached(engine, &record, &args.detach_keys);
    }
    container::monitor(engine, &record.id, Attach::Foreground, None)
}

/// Start `record` under a detached monitor and attach to it before it
/// runs; the exit code is the container's (0 when the person detaches).
fn run_attached(engine: &Engine, record: &dockyard::state::Record, keys: &str) -> Result<Code> {
    let sock = container::start_attached(engine, &record.id)?;
    attach::session(
        engine,
        record,
        sock,
        &attach::Options {
            no_stdin: false,
            sig_proxy: true,
            detach_keys: keys,
        },
        true,
    )
}

/// `docker create`: the container, state "created"; prints its ID.
pub fn create(engine: &Engine, args: &RunArgs) -> Result<Code> {
    let (mut config, name) = container_config(args)?;
    network::check_run(engine, &mut config)?;
    let record = container::create(engine, name.as_deref(), config)?;
    println!("{}", record.id);
    Ok(0)
}

/// `docker start`: start stopped containers in the background, or one in
/// the foreground with `-a`.
pub fn start(engine: &Engine, args: &StartArgs) -> Result<Code> {
    if args.attach {
        if args.containers.len() > 1 {
            bail!("you cannot start and attach multiple containers at once");
        }
        let r = engine.containers.resolve(&args.containers[0])?;
        attach::parse_detach_keys(&args.detach_keys)?;
        container::prepare_start(engine, &r.id, args.interactive)?;
        if args.interactive && config_of(&r)?.tty {
            // -ai on a -t container: the same path as `run -it`.
            if !nix::unistd::isatty(std::io::stdin()).unwrap_or(false) {
                bail!("the input device is not a TTY");
            }
            let r = engine.containers.load(&r.id)?;
            return run_attached(engine, &r, &args.detach_keys);
        }
        return container::monitor(engine, &r.id, Attach::Foreground, None);
    }
    each(engine, &args.containers, |r| {
        let r = engine.containers.reconcile(r.clone())?;
        if r.state.status == Status::Running {
            return Ok(());
        }
        container::prepare_start(engine, &r.id, false)?;
        container::start_detached(engine, &r.id)
    })
}

/// `docker attach`: join a running container's stdio through its monitor.
pub fn attach(engine: &Engine, args: &crate::cli::AttachArgs) -> Result<Code> {
    let record = engine.containers.resolve(&args.container)?;
    attach::attach(
        engine,
        &record,
        &attach::Options {
            no_stdin: args.no_stdin,
            sig_proxy: args.sig_proxy,
            detach_keys: &args.detach_keys,
        },
    )
}

/// `docker exec`: run a command in a running container's namespaces and
/// cgroup, under its security layer (lab 02's `join`). The exit code is
/// the command's; 126/127 when it cannot run.
pub fn exec(engine: &Engine, args: &ExecArgs) -> Result<Code> {
    let (name, argv) = args
        .container_and_command
        .split_first()
        .ok_or_else(|| anyhow!("\"exec\" requires at least 2 arguments"))?;
    let record = engine
        .containers
        .reconcile(engine.containers.resolve(name)?)?;
    if record.state.status == Status::Paused {
        bail!(
            "Container {} is paused, unpause the container before exec",
            record.id
        );
    }
    if record.state.status != Status::Running {
        bail!("Container {} is not running", record.id);
    }
    let mut extra = Vec::new();
    for e in &args.env {
        extra.push(env_entry(e)?);
    }
    if let Some(w) = &args.workdir {
        if !w.starts_with('/') {
            bail!("the working directory '{w}' is invalid, it needs to be an absolute path");
        }
    }
    if args.tty
        && args.interactive
        && !args.detach
        && !nix::unistd::isatty(std::io::stdin()).unwrap_or(false)
    {
        bail!("the input device is not a TTY");
    }
    container::exec(
        &record,
        argv,
        &container::ExecOptions {
            extra_env: &extra,
            workdir: args.workdir.as_deref(),
            interactive: args.interactive,
            tty: args.tty,
            detach: args.detach,
            user: args.user.as_deref(),
        },
    )
}

/// `docker restart`: stop (with the timeout), then start in the background.
pub fn restart(engine: &Engine, args: &StopArgs) -> Result<Code> {
    let sig = args
        .signal
        .as_deref()
        .map(container::parse_signal)
        .transpose()?;
    each(engine, &args.containers, |r| {
        container::stop(engine, r, Duration::from_secs(args.time), sig)?;
        container::prepare_start(engine, &r.id, false)?;
        container::start_detached(engine, &r.id)
    })
}

/// Turn `run`'s flags into a container config, validating them first so a
/// bad flag creates nothing.
fn container_config(args: &RunArgs) -> Result<(ContainerConfig, Option<String>)> {
    let mut words = args.image_and_command.iter();
    let image = words
        .next()
        .ok_or_else(|| anyhow!("\"run\" requires at least 1 argument"))?
        .clone();
    let cmd: Vec<String> = words.cloned().collect();

    let mut env = Vec::new();
    for file in &args.env_file {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("reading env file {}", file.display()))?;
        for line in text.lines() {
            let line = line.trim_start();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            env.push(env_entry(line)?);
        }
    }
    for e in &args.env {
        env.push(env_entry(e)?);
    }
    let mut labels = BTreeMap::new();
    for l in &args.label {
        let (k, v) = l.split_once('=').unwrap_or((l, ""));
        if k.is_empty() {
            bail!("invalid label {l:?}: empty key");
        }
        labels.insert(k.to_string(), v.to_string());
    }
    let mut log_opts = BTreeMap::new();
    for o in &args.log_opt {
        let (k, v) = o
            .split_once('=')
            .ok_or_else(|| anyhow!("invalid log-opt {o:?}: expected key=value"))?;
        log_opts.insert(k.to_string(), v.to_string());
    }
    logs::rotation_from_opts(log_opts.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;

    use dockyard::container::lab03_size;
    let memory = args
        .memory
        .as_deref()
        .map(lab03_size)
        .transpose()
        .context("invalid --memory")?;
    let memory_swap = match args.memory_swap.as_deref() {
        None => None,
        Some("-1") => Some(-1),
        Some(s) => Some(lab03_size(s).context("invalid --memory-swap")? as i64),
    };
    let entrypoint = match &args.entrypoint {
        Some(e) if e.is_empty() => vec![],
        Some(e) => vec![e.clone()],
        None => vec![],
    };
    if args.rm && args.restart != "no" {
        bail!("conflicting options: cannot specify both --restart and --rm");
    }
    let config = ContainerConfig {
        image,
        entrypoint,
        cmd,
        env,
        working_dir: args.workdir.clone().unwrap_or_default(),
        user: args.user.clone().unwrap_or_default(),
        healthcheck: match &args.health_cmd {
            Some(cmd) => {
                let mut c = dockyard::health::Check::new(vec!["CMD-SHELL".into(), cmd.clone()]);
                if let Some(d) = &args.health_interval {
                    c.interval = dockyard::health::parse_duration(d)?;
                }
                if let Some(d) = &args.health_timeout {
                    c.timeout = dockyard::health::parse_duration(d)?;
                }
                if let Some(d) = &args.health_start_period {
                    c.start_period = dockyard::health::parse_duration(d)?;
                }
                if let Some(n) = args.health_retries {
                    c.retries = n.max(1);
                }
                Some(c)
            }
            None => None,
        },
        no_healthcheck: args.no_healthcheck,
        ulimits: {
            for u in &args.ulimit {
                dockyard::container::parse_ulimit(u)?;
            }
            args.ulimit.clone()
        },
        hostname: args.hostname.clone().unwrap_or_default(),
        labels,
        auto_remove: args.rm,
        restart: args.restart.parse()?,
        limits: Limits {
            cpus: args.cpus,
            cpu_shares: args.cpu_shares,
            memory,
            memory_swap,
            pids: args.pids_limit,
        },
        cgroup_parent: args.cgroup_parent.clone().unwrap_or_default(),
        network_mode: args.network.clone(),
        network_aliases: args.network_alias.clone(),
        ip: match &args.ip {
            Some(ip) => {
                ip.parse::<std::net::Ipv4Addr>()
                    .map_err(|_| anyhow!("invalid IPv4 address: {ip}"))?;
                Some(ip.clone())
            }
            None => None,
        },
        dns: {
            for d in &args.dns {
                d.parse::<std::net::IpAddr>()
                    .map_err(|_| anyhow!("{d} is not an ip address"))?;
            }
            args.dns.clone()
        },
        dns_search: args.dns_search.clone(),
        dns_options: args.dns_option.clone(),
        extra_hosts: {
            for h in &args.add_host {
                let (_, ip) = dockyard::network::split_add_host(h)?;
                if ip != "host-gateway" && ip.parse::<std::net::Ipv4Addr>().is_err() {
                    bail!("invalid IP address in add-host: {ip:?}");
                }
            }
            args.add_host.clone()
        },
        init: args.init,
        open_stdin: args.interactive,
        tty: args.tty,
        publish: args.publish.clone(),
        publish_all: args.publish_all,
        exposed: args
            .expose
            .iter()
            .map(|e| {
                if e.contains('/') {
                    e.clone()
                } else {
                    format!("{e}/tcp")
                }
            })
            .collect(),
        log_opts,
        privileged: args.privileged,
        userns_mode: args.userns.clone(),
        cap_add: args.cap_add.clone(),
        cap_drop: args.cap_drop.clone(),
        security_opt: args.security_opt.clone(),
        read_only: args.read_only,
        tmpfs: args.tmpfs.clone(),
        mounts: {
            let mut mounts = Vec::new();
            for v in &args.volume {
                let m = dockyard::volumes::parse_v(v)?;
                if m.kind == "bind" && !Path::new(&m.source).exists() {
                    // docker's -v (unlike --mount) makes a missing host directory.
                    std::fs::create_dir_all(&m.source)
                        .with_context(|| format!("creating {}", m.source))?;
                }
                mounts.push(m);
            }
            for m in &args.mount {
                mounts.push(dockyard::volumes::parse_mount(m)?);
            }
            let mut targets = std::collections::BTreeSet::new();
            for m in &mounts {
                if !targets.insert(m.target.clone()) {
                    bail!("Duplicate mount point: {}", m.target);
                }
            }
            mounts
        },
        ..Default::default()
    };
    // Refuse a bad --cap-add, --security-opt or --tmpfs now, before
    // anything is created.
    config.security()?;
    if let Some(w) = &args.workdir {
        if !w.starts_with('/') {
            bail!("the working directory '{w}' is invalid, it needs to be an absolute path");
        }
    }
    for p in &config.publish {
        p.parse::<dockyard::network::PortSpec>()
            .map_err(|e| anyhow!("invalid -p {p}: {e}"))?;
    }
    if !config.publish.is_empty() && matches!(config.network_mode.as_str(), "none" | "host") {
        eprintln!(
            "WARNING: Published ports are discarded when using {} network mode",
            config.network_mode
        );
    }
    Ok((config, args.name.clone()))
}

/// `-e KEY=value`, or `-e KEY` to copy KEY from our environment (dropped if unset).
fn env_entry(e: &str) -> Result<String> {
    match e.split_once('=') {
        Some(("", _)) => bail!("invalid environment variable: {e}"),
        Some(_) => Ok(e.to_string()),
        None => Ok(match std::env::var(e) {
            Ok(v) => format!("{e}={v}"),
            Err(_) => e.to_string(),
        }),
    }
}

/// The STATUS column: "Up 3 seconds", "Exited (0) 2 minutes ago", "Created".
pub fn status_text(r: &Record, now: SystemTime) -> String {
    let since = |t: &str| {
        parse_rfc3339(t)
            .map(|t| now.duration_since(t).unwrap_or_default())
            .unwrap_or_default()
    };
    match r.state.status {
        Status::Created => "Created".into(),
        Status::Running => format!(
            "Up {}{}",
            human_duration(since(&r.state.started_at)),
            match r.state.health.as_ref().map(|h| h.status.as_str()) {
                Some("starting") => " (health: starting)",
                Some("healthy") => " (healthy)",
                Some("unhealthy") => " (unhealthy)",
                _ => "",
            }
        ),
        Status::Paused => format!("Up {} (Paused)", human_duration(since(&r.state.started_at))),
        Status::Restarting => format!(
            "Restarting ({}) {} ago",
            r.state.exit_code,
            human_duration(since(&r.state.finished_at))
        ),
        Status::Exited => format!(
            "Exited ({}) {} ago",
            r.state.exit_code,
            human_duration(since(&r.state.finished_at))
        ),
        Status::Dead => "Dead".into(),
    }
}

/// All records, reconciled with the kernel, newest first.
fn containers(engine: &Engine) -> Result<Vec<Record>> {
    let mut all = Vec::new();
    for r in engine.containers.list()? {
        all.push(engine.containers.reconcile(r)?);
    }
    all.sort_by(|a, b| b.created.cmp(&a.created));
    Ok(all)
}

/// `docker ps`.
pub fn ps(engine: &Engine, args: &PsArgs) -> Result<Code> {
    let mut list = containers(engine)?;
    let last = if args.latest { 1 } else { args.last };
    if last >= 0 {
        list.truncate(last as usize);
    } else if !args.all {
        list.retain(|r| {
            matches!(
                r.state.status,
                Status::Running | Status::Paused | Status::Restarting
            )
        });
    }
    for f in &args.filter {
        let (key, value) = f
            .split_once('=')
            .ok_or_else(|| anyhow!("bad format of filter (expected name=value): {f}"))?;
        let keep: Box<dyn Fn(&Record) -> bool> = match key {
            "status" => {
                let valid = [
                    "created",
                    "restarting",
                    "running",
                    "removing",
                    "paused",
                    "exited",
                    "dead",
                ];
                if !valid.contains(&value) {
                    bail!("invalid filter 'status={value}'");
                }
                let v = value.to_string();
                Box::new(move |r| r.state.status.as_str() == v)
            }
            "name" => {
                let v = value.to_string();
                Box::new(move |r| r.name.contains(&v))
            }
            "id" => {
                let v = value.to_string();
                Box::new(move |r| r.id.starts_with(&v))
            }
            "label" => {
                let (k, v) = match value.split_once('=') {
                    Some((k, v)) => (k.to_string(), Some(v.to_string())),
                    None => (value.to_string(), None),
                };
                Box::new(move |r| {
                    let labels = config_of(r).map(|c| c.labels).unwrap_or_default();
                    labels
                        .get(&k)
                        .is_some_and(|l| v.as_ref().is_none_or(|v| v == l))
                })
            }
            other => bail!("invalid filter '{other}'"),
        };
        list.retain(|r| keep(r));
    }
    let mut out = std::io::stdout().lock();
    if args.quiet {
        for r in &list {
            writeln!(
                out,
                "{}",
                if args.no_trunc {
                    &r.id
                } else {
                    short_id(&r.id)
                }
            )?;
        }
        return Ok(0);
    }
    let now = SystemTime::now();
    // One docker-shaped object per container: what --format templates see,
    // and what the default table shows.
    let objects: Vec<Value> = list
        .iter()
        .map(|r| {
            let c = config_of(r).unwrap_or_default();
            let created = parse_rfc3339(&r.created)
                .map(|t| {
                    format!(
                        "{} ago",
                        human_duration(now.duration_since(t).unwrap_or_default())
                    )
                })
                .unwrap_or_default();
            let labels: Vec<String> = c.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            json!({
                "ID": if args.no_trunc { r.id.clone() } else { short_id(&r.id).to_string() },
                "Image": c.image,
                "Command": command_column(&c.argv(), !args.no_trunc),
                "CreatedAt": r.created,
                "RunningFor": created,
                "Ports": ports_column(r),
                "Status": status_text(r, now),
                "State": r.state.status.as_str(),
                "Names": r.name,
                "Labels": labels.join(","),
            })
        })
        .collect();
    if let Some(format) = &args.format {
        let format = format.replace("\\t", "\t");
        let (table_mode, body) = match format.strip_prefix("table") {
            Some(rest) => (true, rest.trim_start().to_string()),
            None => (false, format),
        };
        let mut lines: Vec<String> = Vec::new();
        for o in &objects {
            lines.push(template::render(&body, o)?);
        }
        if table_mode {
            let header = |field: &str| match field {
                "ID" => "CONTAINER ID",
                "Image" => "IMAGE",
                "Command" => "COMMAND",
                "CreatedAt" => "CREATED AT",
                "RunningFor" => "CREATED",
                "Ports" => "PORTS",
                "Status" => "STATUS",
                "State" => "STATE",
                "Names" => "NAMES",
                "Labels" => "LABELS",
                _ => "",
            };
            let mut head = body.clone();
            for f in [
                "ID",
                "Image",
                "Command",
                "CreatedAt",
                "RunningFor",
                "Ports",
                "Status",
                "State",
                "Names",
                "Labels",
            ] {
                head = head.replace(&format!("{{{{.{f}}}}}"), header(f));
            }
            let split = |l: &str| l.split('\t').map(str::to_string).collect::<Vec<_>>();
            let cols: Vec<String> = split(&head);
            let headers: Vec<&str> = cols.iter().map(String::as_str).collect();
            let rows: Vec<Vec<String>> = lines.iter().map(|l| split(l)).collect();
            write!(out, "{}", table(&headers, &rows))?;
        } else {
            for l in lines {
                writeln!(out, "{l}")?;
            }
        }
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = objects
        .iter()
        .map(|o| {
            [
                "ID",
                "Image",
                "Command",
                "RunningFor",
                "Status",
                "Ports",
                "Names",
            ]
            .iter()
            .map(|k| o[*k].as_str().unwrap_or_default().to_string())
            .collect()
        })
        .collect();
    write!(
        out,
        "{}",
        table(
            &[
                "CONTAINER ID",
                "IMAGE",
                "COMMAND",
                "CREATED",
                "STATUS",
                "PORTS",
                "NAMES"
            ],
            &rows
        )
    )?;
    Ok(0)
}

/// `docker logs`.
pub fn logs(engine: &Engine, args: &LogsArgs) -> Result<Code> {
    let record = engine.containers.resolve(&args.container)?;
    let now = SystemTime::now();
    let filter = logs::Filter {
        tail: match args.tail.as_str() {
            "all" | "-1" => None,
            n => Some(
                n.parse()
                    .map_err(|_| anyhow!("invalid value for --tail: {n:?}"))?,
            ),
        },
        since: args
            .since
            .as_deref()
            .map(|s| logs::parse_time(s, now))
            .transpose()?,
        until: args
            .until
            .as_deref()
            .map(|s| logs::parse_time(s, now))
            .transpose()?,
    };
    let dir = engine.containers.dir_of(&record.id);
    let print = |entries: &[logs::Entry]| -> Result<()> {
        let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
        for e in entries {
            let w: &mut dyn Write = if e.stream == "stderr" {
                &mut err
            } else {
                &mut out
            };
            if args.timestamps {
                write!(w, "{} ", e.time)?;
            }
            w.write_all(e.log.as_bytes())?;
        }
        out.flush()?;
        Ok(())
    };
    let entries = logs::read(&dir, &filter)?;
    print(&entries)?;
    if !args.follow {
        return Ok(0);
    }
    // Follow: print what was appended since, until the container is gone
    // for good. Entries carry nanosecond times, so "newer than the last one
    // printed" finds exactly the new ones, across a rotation too.
    let mut last = entries.last().map(|e| e.time.clone());
    loop {
        let running = engine
            .containers
            .load(&record.id)
            .map(|r| matches!(r.state.status, Status::Running | Status::Restarting))
            .unwrap_or(false);
        let mut all = logs::read(
            &dir,
            &logs::Filter {
                until: filter.until,
                ..Default::default()
            },
        )?;
        if let Some(t) = &last {
            all.retain(|e| e.time.as_str() > t.as_str());
        }
        if let Some(e) = all.last() {
            last = Some(e.time.clone());
        }
        print(&all)?;
        if !running {
            return Ok(0);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `docker stop`.
pub fn stop(engine: &Engine, args: &StopArgs) -> Result<Code> {
    let sig = args
        .signal
        .as_deref()
        .map(container::parse_signal)
        .transpose()?;
    each(engine, &args.containers, |r| {
        container::stop(engine, r, Duration::from_secs(args.time), sig)
    })
}

/// `docker kill`.
pub fn kill(engine: &Engine, args: &KillArgs) -> Result<Code> {
    let sig = container::parse_signal(&args.signal)?;
    each(engine, &args.containers, |r| {
        container::signal(engine, r, sig)
    })
}

/// `docker rm`.
pub fn rm(engine: &Engine, args: &RmArgs) -> Result<Code> {
    each(engine, &args.containers, |r| {
        let r = engine.containers.reconcile(r.clone())?;
        if matches!(
            r.state.status,
            Status::Running | Status::Paused | Status::Restarting
        ) {
            if !args.force {
                bail!(
                    "cannot remove container \"/{}\": container is running: stop the container before removing or force remove",
                    r.name
                );
            }
            container::stop(
                engine,
                &r,
                Duration::ZERO,
                Some(nix::sys::signal::Signal::SIGKILL),
            )?;
        }
        container::remove(engine, &r.id, args.volumes)
    })
}

/// `docker wait`: block until each container stops, print its exit code.
pub fn wait(engine: &Engine, args: &NamesArgs) -> Result<Code> {
    let mut code = 0;
    for name in &args.containers {
        match engine.containers.resolve(name) {
            Ok(r) => {
                container::wait_until_exited(engine, &r.id, Duration::from_secs(u64::MAX / 4))?;
                println!("{}", engine.containers.load(&r.id)?.state.exit_code);
            }
            Err(e) => {
                eprintln!("Error response from daemon: {e:#}");
                code = 1;
            }
        }
    }
    Ok(code)
}

/// Run `f` on each named container, printing the name as docker does, and
/// every error; exit 1 if any failed.
fn each(engine: &Engine, names: &[String], f: impl Fn(&Record) -> Result<()>) -> Result<Code> {
    let mut code = 0;
    for name in names {
        match engine.containers.resolve(name).and_then(|r| f(&r)) {
            Ok(()) => println!("{name}"),
            Err(e) => {
                eprintln!("Error response from daemon: {e:#}");
                code = 1;
            }
        }
    }
    Ok(code)
}

/// `docker inspect`: containers first, then images, as docker looks them up.
pub fn inspect(engine: &Engine, args: &InspectArgs) -> Result<Code> {
    let mut docs = Vec::new();
    let mut code = 0;
    for name in &args.names {
        let found = match args.kind.as_deref() {
            Some("container") => inspect_container(engine, name),
            Some("image") => inspect_image(engine, name),
            Some(other) => bail!("\"{other}\" is not a valid value for --type"),
            None => inspect_container(engine, name).or_else(|_| inspect_image(engine, name)),
        };
        match found {
            Ok(doc) => docs.push(doc),
            Err(_) => {
                eprintln!("Error: No such object: {name}");
                code = 1;
            }
        }
    }
    match &args.format {
        Some(f) => {
            for d in &docs {
                println!("{}", template::render(f, d)?);
            }
        }
        None => println!("{}", serde_json::to_string_pretty(&Value::Array(docs))?),
    }
    Ok(code)
}

fn inspect_container(engine: &Engine, name: &str) -> Result<Value> {
    let r = engine
        .containers
        .reconcile(engine.containers.resolve(name)?)?;
    let c = config_of(&r)?;
    let argv = c.argv();
    let layer = engine.layer_container(&r.id)?;
    let lowers = engine.images.lower_dirs(&layer).unwrap_or_default();
    let dir = engine.containers.dir_of(&r.id);
    let s = &r.state;
    Ok(json!({
        "Id": r.id,
        "Created": r.created,
        "Path": argv.first().cloned().unwrap_or_default(),
        "Args": argv.iter().skip(1).collect::<Vec<_>>(),
        "State": {
            "Status": s.status.as_str(),
            "Running": s.status == Status::Running || s.status == Status::Paused,
            "Paused": s.status == Status::Paused,
            "Restarting": s.status == Status::Restarting,
            "OOMKilled": s.oom_killed,
            "Dead": s.status == Status::Dead,
            "Pid": s.pid,
            "ExitCode": s.exit_code,
            "Error": s.error,
            "StartedAt": s.started_at,
            "FinishedAt": s.finished_at,
            "Health": s.health,
        },
        "Image": c.image_id,
        "LogPath": dir.join(logs::LOG_FILE),
        "Name": format!("/{}", r.name),
        "RestartCount": s.restart_count,
        "Driver": "overlay2",
        "Platform": "linux",
        "HostConfig": {
            "AutoRemove": c.auto_remove,
            "RestartPolicy": {"Name": c.restart.name(), "MaximumRetryCount": match c.restart { container::RestartPolicy::OnFailure(n) => n, _ => 0 }},
            "NetworkMode": c.network_mode,
            "Dns": c.dns,
            "DnsSearch": c.dns_search,
            "DnsOptions": c.dns_options,
            "ExtraHosts": if c.extra_hosts.is_empty() { Value::Null } else { json!(c.extra_hosts) },
            "Memory": c.limits.memory.unwrap_or(0),
            "MemorySwap": c.limits.memory_swap.unwrap_or(0),
            "NanoCpus": c.limits.cpus.map(|x| (x * 1e9) as i64).unwrap_or(0),
            "CpuShares": c.limits.cpu_shares.unwrap_or(0),
            "PidsLimit": c.limits.pids,
            "CgroupParent": c.cgroup_parent,
            "Init": c.init,
            "LogConfig": {"Type": "json-file", "Config": c.log_opts},
            "UsernsMode": c.userns_mode,
            "Ulimits": c.ulimits.iter().filter_map(|u| dockyard::container::parse_ulimit(u).ok().map(|(_, soft, hard)| json!({"Name": u.split('=').next().unwrap_or(""), "Soft": soft, "Hard": hard}))).collect::<Vec<_>>(),
        },
        "GraphDriver": {
            "Name": "overlay2",
            "Data": {
                "LowerDir": lowers.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(":"),
                "UpperDir": layer.upper(),
                "MergedDir": layer.merged(),
                "WorkDir": layer.work(),
            },
        },
        "Mounts": c.mounts.iter().map(|m| if m.kind == "bind" {
            json!({"Type": "bind", "Source": m.source, "Destination": m.target, "Mode": if m.read_only { "ro" } else { "" }, "RW": !m.read_only, "Propagation": "rprivate"})
        } else {
            json!({"Type": "volume", "Name": m.source, "Source": engine.volumes.data(&m.source), "Destination": m.target, "Driver": "local", "Mode": "z", "RW": !m.read_only, "Propagation": ""})
        }).collect::<Vec<_>>(),
        "Config": {
            "Hostname": c.hostname,
            "Domainname": "",
            "User": c.user,
            "AttachStdin": false,
            "AttachStdout": false,
            "AttachStderr": false,
            "Tty": false,
            "OpenStdin": c.open_stdin,
            "Env": c.env,
            "Cmd": c.cmd,
            "Image": c.image,
            "WorkingDir": c.working_dir,
            "Entrypoint": if c.entrypoint.is_empty() { Value::Null } else { json!(c.entrypoint) },
            "Labels": c.labels,
            "StopSignal": c.stop_signal,
        },
        "NetworkSettings": network_settings(engine, &r, &c),
    }))
}

fn inspect_image(engine: &Engine, name: &str) -> Result<Value> {
    let image = engine.images.image(name)?;
    // The config blob as stored, not the OCI type's view of it: docker
    // extensions such as `Healthcheck` survive only in the raw JSON.
    let mut doc = match engine.images.read_blob(&image.config_digest) {
        Ok(raw) => serde_json::from_slice(&raw)?,
        Err(_) => serde_json::to_value(&image.config)?,
    };
    let size = image_size(engine, &image);
    if let Value::Object(m) = &mut doc {
        m.insert("Id".into(), json!(image.config_digest));
        m.insert("RepoTags".into(), json!([image.name]));
        m.insert("Size".into(), json!(size));
        // Docker's inspect capitalises the config's fields.
        if let Some(cfg) = m.remove("config") {
            m.insert("Config".into(), cfg);
        }
    }
    Ok(doc)
}

/// The unpacked size of an image's layers, in bytes.
fn image_size(engine: &Engine, image: &dockyard::image::Image) -> u64 {
    engine
        .images
        .image_layers(image)
        .map(|layers| layers.iter().map(|l| dir_size(&l.diff)).sum())
        .unwrap_or(0)
}

fn dir_size(p: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(p) else {
        return 0;
    };
    if meta.is_dir() {
        std::fs::read_dir(p)
            .map(|rd| rd.flatten().map(|e| dir_size(&e.path())).sum())
            .unwrap_or(0)
    } else if meta.is_file() {
        meta.len()
    } else {
        0
    }
}

/// `docker images`.
pub fn images(engine: &Engine, args: &ImagesArgs) -> Result<Code> {
    let mut list = engine.images.images()?;
    list.sort_by(|a, b| a.name.cmp(&b.name));
    let mut out = std::io::stdout().lock();
    if args.quiet {
        let mut seen = std::collections::BTreeSet::new();
        for i in &list {
            let id = if args.no_trunc {
                i.config_digest.clone()
            } else {
                i.short_id().to_string()
            };
            if seen.insert(id.clone()) {
                writeln!(out, "{id}")?;
            }
        }
        return Ok(0);
    }
    let now = SystemTime::now();
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|i| {
            let (repo, tag) = match i.name.rsplit_once(':') {
                Some((r, t)) if !t.contains('/') => (r.to_string(), t.to_string()),
                _ => (i.name.clone(), "<none>".to_string()),
            };
            let created = i
                .config
                .created()
                .as_deref()
                .and_then(parse_rfc3339)
                .map(|t| {
                    format!(
                        "{} ago",
                        human_duration(now.duration_since(t).unwrap_or_default())
                    )
                })
                .unwrap_or_else(|| "N/A".into());
            vec![
                repo,
                tag,
                if args.no_trunc {
                    i.config_digest.clone()
                } else {
                    i.short_id().to_string()
                },
                created,
                human_size(image_size(engine, i)),
            ]
        })
        .collect();
    write!(
        out,
        "{}",
        table(&["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"], &rows)
    )?;
    Ok(0)
}

/// `docker load`: a docker-archive or OCI archive (or an OCI layout directory).
pub fn load(engine: &Engine, args: &LoadArgs) -> Result<Code> {
    let names = match &args.input {
        Some(p) if p.is_dir() => engine.images.load_oci_layout(p, None)?,
        Some(p) => {
            let f = std::fs::File::open(p).with_context(|| format!("open {}", p.display()))?;
            dockyard::image::load_archive(engine, f)?
        }
        None => {
            if nix::unistd::isatty(std::io::stdin()).unwrap_or(false) {
                bail!("requested load from stdin, but stdin is empty");
            }
            dockyard::image::load_archive(engine, std::io::stdin().lock())?
        }
    };
    if !args.quiet {
        for n in names {
            println!("Loaded image: {n}");
        }
    }
    Ok(0)
}

/// `docker info`: what the course notes explain about it, for a daemonless
/// engine.
pub fn info(engine: &Engine) -> Result<Code> {
    let all = containers(engine)?;
    let count = |s: Status| all.iter().filter(|r| r.state.status == s).count();
    let images = engine.images.images()?.len();
    let host = container::cgroup_host()?;
    let uname = nix::sys::utsname::uname().context("uname")?;
    let os = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("PRETTY_NAME=")
                    .map(|v| v.trim_matches('"').to_string())
            })
        })
        .unwrap_or_else(|| "Linux".into());
    let mem_kb = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("MemTotal:")
                    .and_then(|v| v.trim().trim_end_matches(" kB").parse::<u64>().ok())
            })
        })
        .unwrap_or(0);
    let c = &engine.config;
    let list = |v: &[String]| {
        if v.is_empty() {
            String::new()
        } else {
            format!("\n  {}", v.join("\n  "))
        }
    };
    println!("Server:");
    println!(" Containers: {}", all.len());
    println!(
        "  Running: {}",
        count(Status::Running) + count(Status::Restarting)
    );
    println!("  Paused: {}", count(Status::Paused));
    println!(
        "  Stopped: {}",
        count(Status::Exited) + count(Status::Created) + count(Status::Dead)
    );
    println!(" Images: {images}");
    println!(" Server Version: {}", env!("CARGO_PKG_VERSION"));
    println!(" Storage Driver: overlay2");
    println!(
        " Logging Driver: {}",
        c.log_driver.as_deref().unwrap_or("json-file")
    );
    println!(" Cgroup Driver: cgroupfs");
    println!(
        " Cgroup Version: {}",
        match host.version() {
            container::CgroupVersion::V1 => 1,
            container::CgroupVersion::V2 => 2,
        }
    );
    // As docker lists them: userns with --userns-remap, rootless when
    // dockyard is root of its own user namespace only.
    println!(" Security Options:\n  seccomp\n   Profile: builtin");
    if engine.remap.is_some() {
        println!("  userns");
    }
    if engine.rootless {
        println!("  rootless");
    }
    println!(" Kernel Version: {}", uname.release().to_string_lossy());
    println!(" Operating System: {os}");
    println!(" OSType: linux");
    println!(" Architecture: {}", uname.machine().to_string_lossy());
    println!(
        " CPUs: {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    println!(" Total Memory: {:.4}GiB", mem_kb as f64 / 1024.0 / 1024.0);
    println!(" Docker Root Dir: {}", engine.root.display());
    println!(" Debug Mode: {}", c.debug);
    println!(" Registry Mirrors:{}", list(&c.registry_mirrors));
    // Docker always lists loopback as insecure.
    let mut insecure = c.insecure_registries.clone();
    insecure.push("127.0.0.0/8".into());
    println!(" Insecure Registries:{}", list(&insecure));
    Ok(0)
}

/// `docker commit`: the container's writable layer becomes a new image on
/// top of its image (lab 04). Like docker, a running container is paused
/// for the copy unless `--pause=false`, so the layer is consistent.
pub fn commit(engine: &Engine, args: &CommitArgs) -> Result<Code> {
    let r = engine
        .containers
        .reconcile(engine.containers.resolve(&args.container)?)?;
    let Some(name) = &args.repository else {
        bail!(
            "dockyard keeps images by name: give one (dockyard commit CONTAINER REPOSITORY[:TAG])"
        );
    };
    let layer = engine.layer_container(&r.id)?;
    // --change: lab 06 reads each as a Dockerfile line and applies it to the
    // image's runtime config. Done before pausing: a bad change is an error
    // that leaves the container and the store untouched.
    let config = if args.change.is_empty() {
        None
    } else {
        Some(dockyard::image::changed_config(
            engine,
            &layer,
            &args.change,
        )?)
    };
    // ANCHOR: commit_pause
    let paused = args.pause && r.state.status == Status::Running;
    if paused {
        container::freeze(engine, &r, true)?;
    }
    let opts = dockyard::image::CommitOptions {
        message: args.message.clone(),
        author: args.author.clone(),
        created_by: command_column(&config_of(&r)?.argv(), false)
            .trim_matches('"')
            .to_string(),
        config,
    };
    let result = dockyard::image::commit(engine, &layer, name, &opts);
    if paused {
        container::freeze(engine, &r, false)?;
    }
    // ANCHOR_END: commit_pause
    println!("{}", result?.config_digest);
    Ok(0)
}

/// `docker diff`: A, C and D lines for what the container changed.
pub fn diff(engine: &Engine, args: &OneContainer) -> Result<Code> {
    let r = engine.containers.resolve(&args.container)?;
    let layer = engine.layer_container(&r.id)?;
    let lowers = engine.images.lower_dirs(&layer)?;
    let mut out = std::io::stdout().lock();
    for c in dockyard::image::changes(&layer.upper(), &lowers)? {
        writeln!(out, "{} {}", c.kind, c.path)?;
    }
    Ok(0)
}

/// `docker export`: the container's merged filesystem as a tar.
pub fn export(engine: &Engine, args: &ExportArgs) -> Result<Code> {
    let r = engine.containers.resolve(&args.container)?;
    let layer = engine.layer_container(&r.id)?;
    write_archive(args.output.as_deref(), |out| {
        dockyard::image::export(engine, &layer, out)
    })?;
    Ok(0)
}

/// Write an archive to `-o FILE`, or to stdout unless it is a terminal, as
/// docker's `save` and `export` do. A file is written beside its target and
/// renamed: a failed write leaves no half archive.
fn write_archive(
    output: Option<&Path>,
    write: impl FnOnce(&mut dyn std::io::Write) -> Result<()>,
) -> Result<()> {
    let Some(p) = output else {
        if nix::unistd::isatty(std::io::stdout()).unwrap_or(false) {
            bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
        }
        return write(&mut std::io::stdout().lock());
    };
    let tmp = p.with_extension("tmp-dockyard-save");
    let mut f =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    if let Err(e) = write(&mut f) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, p).with_context(|| format!("renaming to {}", p.display()))
}

/// `docker import`: a root filesystem tarball becomes a one-layer image.
pub fn import(engine: &Engine, args: &ImportArgs) -> Result<Code> {
    let Some(name) = &args.repository else {
        bail!("dockyard keeps images by name: give one (dockyard import FILE REPOSITORY[:TAG])");
    };
    let image = if args.file == "-" {
        dockyard::image::import(engine, std::io::stdin().lock(), name)?
    } else {
        let f = std::fs::File::open(&args.file).with_context(|| format!("open {}", args.file))?;
        dockyard::image::import(engine, f, name)?
    };
    println!("{}", image.config_digest);
    Ok(0)
}

/// `docker save`: one image as a docker-archive (which podman and docker load).
pub fn save(engine: &Engine, args: &SaveArgs) -> Result<Code> {
    if args.images.len() > 1 {
        bail!("saving several images into one archive is not supported yet: save them one by one");
    }
    let image = engine.images.image(&args.images[0])?;
    write_archive(args.output.as_deref(), |out| {
        dockyard::image::save(engine, &image, out)
    })?;
    Ok(0)
}

/// `docker rmi`: untag images no container uses (or any, with -f). When an
/// image's last name goes, its config, manifest and the layers no other image
/// shares are deleted from the store (lab 04's `Store::gc`), as docker does:
/// `Untagged: NAME`, then `Deleted: sha256:...` for the image ID and for each
/// layer (chain ID) removed. An image a container uses stays on disk (only
/// its name goes, with -f) until the container is removed and gc runs again.
pub fn rmi(engine: &Engine, args: &RmiArgs) -> Result<Code> {
    let mut code = 0;
    let all = containers(engine)?;
    // Before anything is untagged: an unreadable container fails here.
    let kept = kept_images(engine)?;
    for name in &args.images {
        let result = (|| -> Result<()> {
            let image = engine.images.image(name)?;
            if !args.force {
                if let Some(user) = all.iter().find(|r| {
                    config_of(r)
                        .map(|c| c.image_id == image.config_digest)
                        .unwrap_or(false)
                }) {
                    bail!(
                        "conflict: unable to remove repository reference \"{name}\" (must force) - container {} is using its referenced image {}",
                        short_id(&user.id),
                        image.short_id()
                    );
                }
            }
            engine.images.untag(&image.name)?;
            println!("Untagged: {}", image.name);
            let report = gc(engine, &kept, vec![image.clone()])?;
            if report.blobs.contains(&image.config_digest) {
                println!("Deleted: {}", image.config_digest);
            }
            for chain in image.chain_ids().iter().rev() {
                if report.layers.contains(chain) {
                    println!("Deleted: {chain}");
                }
            }
            Ok(())
        })();
        if let Err(e) = result {
            eprintln!("Error response from daemon: {e:#}");
            code = 1;
        }
    }
    Ok(code)
}

/// The images of every container (their config digests:
/// `ContainerConfig::image_id`), which gc keeps even when `rmi -f` removed
/// their names.
fn kept_images(engine: &Engine) -> Result<std::collections::BTreeSet<String>> {
    let mut configs = std::collections::BTreeSet::new();
    for r in containers(engine)? {
        // A container whose config cannot be read might use any image:
        // refuse to collect rather than guess.
        let c = config_of(&r).with_context(|| {
            format!(
                "reading container {}'s config (no image removed)",
                short_id(&r.id)
            )
        })?;
        configs.insert(c.image_id);
    }
    Ok(configs)
}

/// Runs the store's garbage collection, keeping `kept` (see
/// [`kept_images`]). `released`: images just untagged, whose blobs and
/// layers go at once, inside the grace period.
fn gc(
    engine: &Engine,
    kept: &std::collections::BTreeSet<String>,
    released: Vec<overlay::Image>,
) -> Result<overlay::GcReport> {
    engine.images.gc(&overlay::Keep {
        configs: kept.clone(),
        released,
        ..overlay::Keep::default()
    })
}

/// `docker image prune`: removes the blobs and layers no image or container
/// references (older than the store's grace period); with `-a`, first
/// untags every image no container uses.
pub fn image_prune(engine: &Engine, args: &ImagePruneArgs) -> Result<Code> {
    if !args.force {
        print!(
            "WARNING! This will remove all {} images{}.\nAre you sure you want to continue? [y/N] ",
            if args.all { "" } else { "dangling" },
            if args.all {
                " without at least one container associated to them"
            } else {
                ""
            }
        );
        std::io::stdout().flush()?;
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            return Ok(0);
        }
    }
    let reclaimed = prune_images(engine, args.all)?;
    println!("Total reclaimed space: {}", human_size(reclaimed));
    Ok(0)
}

/// The work of `image prune` (and `system prune`): prints what goes under
/// "Deleted Images:", returns the bytes reclaimed.
fn prune_images(engine: &Engine, all: bool) -> Result<u64> {
    let mut released = Vec::new();
    let mut lines = Vec::new();
    let used = kept_images(engine)?;
    if all {
        for image in engine.images.images()? {
            if !used.contains(&image.config_digest) {
                engine.images.untag(&image.name)?;
                lines.push(format!("untagged: {}", image.name));
                released.push(image);
            }
        }
    }
    let report = gc(engine, &used, released)?;
    lines.extend(report.blobs.iter().map(|b| format!("deleted: {b}")));
    lines.extend(report.layers.iter().map(|l| format!("deleted: {l}")));
    if !lines.is_empty() {
        println!("Deleted Images:");
        for l in lines {
            println!("{l}");
        }
        println!();
    }
    Ok(report.reclaimed)
}

/// `docker history`: the image's history, newest first.
pub fn history(engine: &Engine, args: &HistoryArgs) -> Result<Code> {
    let image = engine.images.image(&args.image)?;
    let now = SystemTime::now();
    let layers = engine.images.image_layers(&image).unwrap_or_default();
    let mut sizes = layers.iter().map(|l| dir_size(&l.diff));
    let mut rows = Vec::new();
    for h in image.config.history() {
        let size = if h.empty_layer().unwrap_or(false) {
            0
        } else {
            sizes.next().unwrap_or(0)
        };
        let created = h
            .created()
            .as_deref()
            .and_then(parse_rfc3339)
            .map(|t| {
                format!(
                    "{} ago",
                    human_duration(now.duration_since(t).unwrap_or_default())
                )
            })
            .unwrap_or_default();
        let mut by = h.created_by().clone().unwrap_or_default();
        if !args.no_trunc && by.chars().count() > 45 {
            by = by.chars().take(44).collect::<String>() + "…";
        }
        rows.push(vec![
            "<missing>".to_string(),
            created,
            by,
            human_size(size),
            h.comment().clone().unwrap_or_default(),
        ]);
    }
    rows.reverse();
    if let Some(first) = rows.first_mut() {
        first[0] = if args.no_trunc {
            image.config_digest.clone()
        } else {
            image.short_id().to_string()
        };
    }
    if args.quiet {
        for r in &rows {
            println!("{}", r[0]);
        }
        return Ok(0);
    }
    print!(
        "{}",
        table(
            &["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"],
            &rows
        )
    );
    Ok(0)
}

/// `docker rename`.
pub fn rename(engine: &Engine, args: &RenameArgs) -> Result<Code> {
    dockyard::state::validate_name(&args.new_name)?;
    let new = args.new_name.trim_start_matches('/').to_string();
    let lock = engine.containers.lock()?;
    let all = engine.containers.list()?;
    let r = engine.containers.resolve(&args.container)?;
    if r.name == new {
        bail!("Renaming a container with the same name as its current name");
    }
    if let Some(other) = all.iter().find(|o| o.name == new) {
        bail!("Conflict. The container name \"/{new}\" is already in use by container \"{}\". You have to remove (or rename) that container to be able to reuse that name.", other.id);
    }
    let mut r = engine.containers.load(&r.id)?;
    r.name = new;
    engine.containers.save(&lock, &r)?;
    Ok(0)
}

/// `docker container prune`: remove every stopped container.
pub fn container_prune(engine: &Engine, args: &PruneArgs) -> Result<Code> {
    if !args.force {
        print!("WARNING! This will remove all stopped containers.\nAre you sure you want to continue? [y/N] ");
        std::io::stdout().flush()?;
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            return Ok(0);
        }
    }
    remove_stopped(engine)?;
    println!("Total reclaimed space: 0B");
    Ok(0)
}

/// Removes every stopped container, listing them under "Deleted Containers:".
fn remove_stopped(engine: &Engine) -> Result<()> {
    println!("Deleted Containers:");
    for r in containers(engine)? {
        if matches!(
            r.state.status,
            Status::Exited | Status::Created | Status::Dead
        ) {
            container::remove(engine, &r.id, false)?;
            println!("{}", r.id);
        }
    }
    println!();
    Ok(())
}

/// `docker pause` / `unpause`: freeze or thaw the container's cgroup, and
/// record it, so `ps` says "(Paused)".
pub fn pause(engine: &Engine, args: &NamesArgs, frozen: bool) -> Result<Code> {
    each(engine, &args.containers, |r| {
        let r = engine.containers.reconcile(r.clone())?;
        match (r.state.status, frozen) {
            (Status::Running, true) | (Status::Paused, false) => {}
            (Status::Paused, true) => bail!("Container {} is already paused", r.id),
            (_, false) => bail!("Container {} is not paused", r.id),
            (_, true) => bail!("Container {} is not running", r.id),
        }
        container::freeze(engine, &r, frozen)?;
        let lock = engine.containers.lock()?;
        let mut fresh = engine.containers.load(&r.id)?;
        fresh.state.status = if frozen {
            Status::Paused
        } else {
            Status::Running
        };
        engine.containers.save(&lock, &fresh)
    })
}

/// `docker volume ...`.
pub fn volume(engine: &Engine, cmd: &crate::cli::VolumeCmd) -> Result<Code> {
    use crate::cli::VolumeCmd;
    let users = |name: &str| -> Result<Vec<String>> {
        Ok(containers(engine)?
            .into_iter()
            .filter(|r| {
                config_of(r)
                    .map(|c| {
                        c.mounts
                            .iter()
                            .any(|m| m.kind == "volume" && m.source == name)
                    })
                    .unwrap_or(false)
            })
            .map(|r| r.id)
            .collect())
    };
    match cmd {
        VolumeCmd::Create { label, name } => {
            let name = match name {
                Some(n) => n.clone(),
                None => dockyard::volumes::parse_v("/x")?.source,
            };
            let labels = label
                .iter()
                .map(|l| {
                    let (k, v) = l.split_once('=').unwrap_or((l, ""));
                    (k.to_string(), v.to_string())
                })
                .collect();
            println!("{}", engine.volumes.create(&name, labels, false)?.name);
            Ok(0)
        }
        VolumeCmd::Ls { quiet } => {
            let list = engine.volumes.list()?;
            if *quiet {
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
        VolumeCmd::Inspect { format, names } => {
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
            match format {
                Some(f) => {
                    for d in &docs {
                        println!("{}", template::render(f, d)?);
                    }
                }
                None => println!("{}", serde_json::to_string_pretty(&Value::Array(docs))?),
            }
            Ok(code)
        }
        VolumeCmd::Rm { force, names } => {
            let mut code = 0;
            for n in names {
                let result = (|| -> Result<()> {
                    let using = users(n)?;
                    if !using.is_empty() && !force {
                        bail!("remove {n}: volume is in use - [{}]", using.join(", "));
                    }
                    engine.volumes.remove(n)
                })();
                match result {
                    Ok(()) => println!("{n}"),
                    Err(e) => {
                        eprintln!("Error response from daemon: {e:#}");
                        code = 1;
                    }
                }
            }
            Ok(code)
        }
        VolumeCmd::Prune { all, force } => {
            if !force {
                print!("WARNING! This will remove {} local volumes not used by at least one container.\nAre you sure you want to continue? [y/N] ", if *all { "all" } else { "anonymous" });
                std::io::stdout().flush()?;
                let mut answer = String::new();
                std::io::stdin().read_line(&mut answer)?;
                if !matches!(answer.trim(), "y" | "Y" | "yes") {
                    return Ok(0);
                }
            }
            println!("Deleted Volumes:");
            for v in engine.volumes.list()? {
                if (*all || v.anonymous) && users(&v.name)?.is_empty() {
                    engine.volumes.remove(&v.name)?;
                    println!("{}", v.name);
                }
            }
            println!("\nTotal reclaimed space: 0B");
            Ok(0)
        }
    }
}

/// inspect's NetworkSettings, in docker's shape, from what lab 05 reported.
fn network_settings(engine: &Engine, r: &Record, c: &ContainerConfig) -> Value {
    let networks = network::container_networks(engine, r, c);
    let Some(n) = &r.state.network else {
        return json!({"IPAddress": "", "Gateway": "", "MacAddress": "", "Ports": {}, "Networks": networks});
    };
    let mut ports = serde_json::Map::new();
    for p in n["Ports"].as_array().into_iter().flatten() {
        let key = format!(
            "{}/{}",
            p["ContainerPort"],
            p["Proto"].as_str().unwrap_or("tcp")
        );
        let binding = json!({"HostIp": p["HostIp"], "HostPort": p["HostPort"].to_string()});
        if let Some(list) = ports.entry(key).or_insert_with(|| json!([])).as_array_mut() {
            list.push(binding);
        }
    }
    json!({
        "IPAddress": n["IPAddress"],
        "IPPrefixLen": n["IPPrefixLen"],
        "Gateway": n["Gateway"],
        "MacAddress": n["MacAddress"],
        "Bridge": n["Bridge"],
        "Ports": ports,
        "Networks": networks,
    })
}

/// `docker port`: the container's published ports.
pub fn port(engine: &Engine, args: &OneContainer) -> Result<Code> {
    let r = engine
        .containers
        .reconcile(engine.containers.resolve(&args.container)?)?;
    for p in r
        .state
        .network
        .as_ref()
        .and_then(|n| n["Ports"].as_array().cloned())
        .unwrap_or_default()
    {
        println!(
            "{}/{} -> {}:{}",
            p["ContainerPort"],
            p["Proto"].as_str().unwrap_or("tcp"),
            p["HostIp"].as_str().unwrap_or("0.0.0.0"),
            p["HostPort"]
        );
    }
    Ok(0)
}

/// `docker top`: the container's processes, as `ps -ef` shows them (the
/// processes of its cgroup, read from /proc).
pub fn top(engine: &Engine, args: &OneContainer) -> Result<Code> {
    let r = engine
        .containers
        .reconcile(engine.containers.resolve(&args.container)?)?;
    if r.state.status != Status::Running && r.state.status != Status::Paused {
        bail!("Container {} is not running", r.id);
    }
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as u64;
    let boot = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("btime ")
                    .and_then(|v| v.trim().parse::<u64>().ok())
            })
        })
        .unwrap_or(0);
    let mut rows = Vec::new();
    for pid in container::container_pids(&r)? {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let f: Vec<&str> = stat[close + 2..].split(' ').collect();
        let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        let uid = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|t| {
                t.lines().find_map(|l| {
                    l.strip_prefix("Uid:")
                        .map(|v| v.split_whitespace().next().unwrap_or("0").to_string())
                })
            })
            .unwrap_or_default();
        let secs = (num(11) + num(12)) / ticks;
        let started = boot + num(19) / ticks;
        let stime = dockyard::state::rfc3339(std::time::UNIX_EPOCH + Duration::from_secs(started));
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|b| {
                String::from_utf8_lossy(&b)
                    .replace('\0', " ")
                    .trim()
                    .to_string()
            })
            .unwrap_or_default();
        rows.push(vec![
            if uid == "0" { "root".to_string() } else { uid },
            pid.to_string(),
            num(1).to_string(),
            "0".into(),
            stime[11..16].to_string(),
            "?".into(),
            format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60),
            cmd,
        ]);
    }
    print!(
        "{}",
        table(
            &["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"],
            &rows
        )
    );
    Ok(0)
}

/// The PORTS column: "0.0.0.0:8080->80/tcp, ...".
fn ports_column(r: &Record) -> String {
    let Some(n) = &r.state.network else {
        return String::new();
    };
    n["Ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            format!(
                "{}:{}->{}/{}",
                p["HostIp"].as_str().unwrap_or("0.0.0.0"),
                p["HostPort"],
                p["ContainerPort"],
                p["Proto"].as_str().unwrap_or("tcp")
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `docker stats`: CPU %, memory, network and pids, from the containers'
/// cgroups (lab 03) and /proc; two samples a second apart give the CPU share.
pub fn stats(engine: &Engine, args: &StatsArgs) -> Result<Code> {
    let mut list = containers(engine)?;
    if !args.containers.is_empty() {
        let wanted: Vec<String> = args
            .containers
            .iter()
            .map(|n| engine.containers.resolve(n).map(|r| r.id))
            .collect::<Result<_>>()?;
        list.retain(|r| wanted.contains(&r.id));
    } else if !args.all {
        list.retain(|r| r.state.status == Status::Running);
    }
    let total_mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("MemTotal:")
                    .and_then(|v| v.trim().trim_end_matches(" kB").parse::<u64>().ok())
            })
        })
        .unwrap_or(0)
        * 1024;
    let ncpu = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1) as f64;
    loop {
        let sample = |r: &Record| container::container_stats(r).ok();
        let first: Vec<_> = list.iter().map(sample).collect();
        let t0 = std::time::Instant::now();
        std::thread::sleep(Duration::from_millis(1000));
        let rows: Vec<Vec<String>> = list
            .iter()
            .zip(first)
            .map(|(r, before)| {
                let after = sample(r);
                let cpu = match (&before, &after) {
                    (Some((b, _)), Some((a, _))) => match (b.cpu_usage_usec, a.cpu_usage_usec) {
                        (Some(x), Some(y)) => {
                            (y.saturating_sub(x)) as f64 / t0.elapsed().as_micros() as f64 * 100.0
                        }
                        _ => 0.0,
                    },
                    _ => 0.0,
                };
                let (mem, limit, pids) = match &after {
                    Some((s, lim)) => (
                        s.memory_current.unwrap_or(0),
                        lim.unwrap_or(total_mem),
                        s.pids_current.unwrap_or(0),
                    ),
                    None => (0, total_mem, 0),
                };
                let (rx, tx) = net_io(r.state.pid);
                vec![
                    short_id(&r.id).to_string(),
                    r.name.clone(),
                    format!("{:.2}%", cpu.min(100.0 * ncpu)),
                    format!("{} / {}", binary_size(mem), binary_size(limit)),
                    format!(
                        "{:.2}%",
                        if limit > 0 {
                            mem as f64 / limit as f64 * 100.0
                        } else {
                            0.0
                        }
                    ),
                    format!("{} / {}", human_size(rx), human_size(tx)),
                    "0B / 0B".into(),
                    pids.to_string(),
                ]
            })
            .collect();
        print!(
            "{}",
            table(
                &[
                    "CONTAINER ID",
                    "NAME",
                    "CPU %",
                    "MEM USAGE / LIMIT",
                    "MEM %",
                    "NET I/O",
                    "BLOCK I/O",
                    "PIDS"
                ],
                &rows
            )
        );
        if args.no_stream {
            return Ok(0);
        }
        std::io::stdout().flush()?;
    }
}

/// Bytes received and sent on the container's interfaces but lo.
fn net_io(pid: i32) -> (u64, u64) {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/dev")) else {
        return (0, 0);
    };
    text.lines()
        .skip(2)
        .filter_map(|l| l.split_once(':'))
        .filter(|(name, _)| name.trim() != "lo")
        .map(|(_, v)| {
            let f: Vec<u64> = v
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            (
                f.first().copied().unwrap_or(0),
                f.get(8).copied().unwrap_or(0),
            )
        })
        .fold((0, 0), |(a, b), (x, y)| (a + x, b + y))
}

/// docker stats' memory units: binary, two decimals ("1.52MiB").
fn binary_size(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b}B")
    } else {
        format!("{v:.2}{}", UNITS[i])
    }
}

/// `docker system df`: what images, containers and volumes take on disk.
pub fn system_df(engine: &Engine) -> Result<Code> {
    let all = containers(engine)?;
    let images = engine.images.images()?;
    let used: std::collections::BTreeSet<String> = all
        .iter()
        .filter_map(|r| config_of(r).ok().map(|c| c.image_id))
        .collect();
    let image_size: u64 = images.iter().map(|i| image_size(engine, i)).sum();
    let active_images = images
        .iter()
        .filter(|i| used.contains(&i.config_digest))
        .count();
    let upper = |r: &Record| dir_size(&engine.containers.dir_of(&r.id).join("upper"));
    let container_size: u64 = all.iter().map(upper).sum();
    let stopped_size: u64 = all
        .iter()
        .filter(|r| r.state.status != Status::Running)
        .map(upper)
        .sum();
    let running = all
        .iter()
        .filter(|r| r.state.status == Status::Running)
        .count();
    let volumes = engine.volumes.list()?;
    let volume_size: u64 = volumes
        .iter()
        .map(|v| dir_size(&engine.volumes.data(&v.name)))
        .sum();
    let in_use: std::collections::BTreeSet<String> = all
        .iter()
        .filter_map(|r| config_of(r).ok())
        .flat_map(|c| {
            c.mounts
                .into_iter()
                .filter(|m| m.kind == "volume")
                .map(|m| m.source)
        })
        .collect();
    let pct = |part: u64, whole: u64| (part * 100).checked_div(whole).unwrap_or(0);
    let rows = vec![
        vec![
            "Images".into(),
            images.len().to_string(),
            active_images.to_string(),
            human_size(image_size),
            "0B (0%)".into(),
        ],
        vec![
            "Containers".into(),
            all.len().to_string(),
            running.to_string(),
            human_size(container_size),
            format!(
                "{} ({}%)",
                human_size(stopped_size),
                pct(stopped_size, container_size)
            ),
        ],
        vec![
            "Local Volumes".into(),
            volumes.len().to_string(),
            volumes
                .iter()
                .filter(|v| in_use.contains(&v.name))
                .count()
                .to_string(),
            human_size(volume_size),
            human_size(
                volumes
                    .iter()
                    .filter(|v| !in_use.contains(&v.name))
                    .map(|v| dir_size(&engine.volumes.data(&v.name)))
                    .sum(),
            ),
        ],
        vec![
            "Build Cache".into(),
            "0".into(),
            "0".into(),
            "0B".into(),
            "0B".into(),
        ],
    ];
    print!(
        "{}",
        table(&["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"], &rows)
    );
    Ok(0)
}

/// `docker system prune`: stopped containers, the blobs and layers no image
/// or container references (`image prune`), and with --volumes the anonymous
/// volumes nothing uses.
pub fn system_prune(engine: &Engine, force: bool, volumes: bool) -> Result<Code> {
    if !force {
        print!("WARNING! This will remove:\n  - all stopped containers\n{}  - all dangling images\n\nAre you sure you want to continue? [y/N] ",
            if volumes { "  - all anonymous volumes not used by at least one container\n" } else { "" });
        std::io::stdout().flush()?;
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            return Ok(0);
        }
    }
    remove_stopped(engine)?;
    if volumes {
        volume(
            engine,
            &crate::cli::VolumeCmd::Prune {
                all: false,
                force: true,
            },
        )?;
    }
    let reclaimed = prune_images(engine, false)?;
    println!("Total reclaimed space: {}", human_size(reclaimed));
    Ok(0)
}

/// `dockyard __monitor-exited`: the small monitor program hands the exit
/// back to the engine core (see `dockyard::container::monitor_exited`).
pub fn monitor_exited(engine: &Engine, a: &crate::cli::MonitorExitedArgs) -> Result<Code> {
    container::monitor_exited(
        engine,
        &container::ExitReport {
            id: a.id.clone(),
            pid: a.pid,
            code: a.code,
            started_ns: a.started_ns,
            backoff_ms: a.backoff_ms,
            health_pid: a.health_pid,
        },
    )
}
