//! The container commands but `run` and `create` (see `run.rs`): `start`,
//! `restart`, `stop`, `kill`, `rm`, `wait`, `pause`, `rename`, `exec`,
//! `logs`, `ps`, `top`, `stats`, `port`, `diff`, `commit`, `export` and
//! `container prune`. Each resolves names, calls the core
//! (`dockyard::container`, `dockyard::image`) and prints what docker prints.

use std::io::Write;
use std::time::{Duration, SystemTime};

use anyhow::{anyhow, bail, Result};
use serde_json::{json, Value};

use super::run::{env_entry, run_attached};
use super::{confirm, each, formatted, session, write_archive, Code};
use crate::cli::{
    CommitArgs, ExecArgs, ExportArgs, KillArgs, LogsArgs, MonitorExitedArgs, NamesArgs,
    OneContainer, PortArgs, PruneArgs, PsArgs, RenameArgs, RmArgs, StartArgs, StatsArgs, StopArgs,
};
use crate::format::{command_column, human_duration, human_size, short_id, table};
use dockyard::container::{self, config_of, Attach, ListOptions, PublishedPort};
use dockyard::logs;
use dockyard::state::{parse_rfc3339, Record, Status};
use dockyard::Engine;

/// `docker start`: start stopped containers in the background, or one in
/// the foreground with `-a`.
pub fn start(engine: &Engine, args: &StartArgs) -> Result<Code> {
    if args.attach {
        if args.containers.len() > 1 {
            bail!("you cannot start and attach multiple containers at once");
        }
        let r = engine.containers.resolve(&args.containers[0])?;
        session::parse_detach_keys(&args.detach_keys)?;
        container::prepare_start(engine, &r.id, args.interactive)?;
        if args.interactive && config_of(&r)?.tty {
            // -ai on a -t container: the same path as `run -it`.
            if !nix::unistd::isatty(std::io::stdin()).unwrap_or(false) {
                return Err(super::ClientRefusal("the input device is not a TTY".into()).into());
            }
            let r = engine.containers.load(&r.id)?;
            return run_attached(engine, &r, &args.detach_keys);
        }
        return container::monitor(engine, &r.id, Attach::Foreground, None);
    }
    // docker/cli's start: each failure as it comes, then one line naming
    // them all (exit 1).
    let mut failed = Vec::new();
    for name in &args.containers {
        let started = engine.containers.resolve(name).and_then(|r| {
            let r = engine.containers.reconcile(r)?;
            if r.state.status == Status::Running {
                return Ok(());
            }
            container::prepare_start(engine, &r.id, false)?;
            container::start_detached(engine, &r.id)
        });
        match started {
            Ok(()) => println!("{name}"),
            Err(e) => {
                eprintln!("Error response from daemon: {e:#}");
                failed.push(name.as_str());
            }
        }
    }
    if !failed.is_empty() {
        eprintln!("Error: failed to start containers: {}", failed.join(", "));
        return Ok(1);
    }
    Ok(0)
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
        // dockerd's own text (daemon/errors.go), lower case unlike kill's.
        bail!("container {} is not running", record.id);
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
    super::check_tty(args.tty, args.interactive, args.detach)?;
    // Then dockerd's exec create refuses keys it cannot read, in its words
    // (docker's CLI checks the terminal first); none given is docker's
    // ctrl-p,ctrl-q.
    let keys = args.detach_keys.as_deref().filter(|k| !k.is_empty());
    let detach_keys = match keys {
        Some(k) => container::parse_detach_keys(k)
            .map_err(|_| anyhow!("Invalid escape keys ({k}) provided"))?,
        None => vec![16, 17],
    };
    let ended = container::exec_logged(
        engine,
        &record,
        argv,
        &container::ExecOptions {
            extra_env: &extra,
            workdir: args.workdir.as_deref(),
            interactive: args.interactive,
            tty: args.tty,
            detach: args.detach,
            user: args.user.as_deref(),
            detach_keys: &detach_keys,
        },
    )?;
    // Detached with the keys: docker's CLI says so and exits 1 (its
    // hijacked stream ends in a term.EscapeError); the command goes on.
    Ok(ended.unwrap_or_else(|| {
        eprintln!("read escape sequence");
        1
    }))
}

/// `--signal`/`-s` as a signal, if given.
fn stop_signal(signal: Option<&str>) -> Result<Option<nix::sys::signal::Signal>> {
    signal.map(container::parse_signal).transpose()
}

/// `docker restart`: stop (with the timeout), then start in the background.
pub fn restart(engine: &Engine, args: &StopArgs) -> Result<Code> {
    let sig = stop_signal(args.signal.as_deref())?;
    each(engine, &args.containers, |r| {
        container::stop(engine, r, args.time, sig)?;
        container::prepare_start(engine, &r.id, false)?;
        container::start_detached(engine, &r.id)?;
        dockyard::events::container(engine, r, "restart", &[]);
        Ok(())
    })
}

/// `docker stop`.
pub fn stop(engine: &Engine, args: &StopArgs) -> Result<Code> {
    let sig = stop_signal(args.signal.as_deref())?;
    each(engine, &args.containers, |r| {
        container::stop(engine, r, args.time, sig)
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
    let opts = container::RemoveOptions {
        force: args.force,
        volumes: args.volumes,
    };
    each(engine, &args.containers, |r| {
        container::remove_checked(engine, r, opts)
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

/// `docker pause` / `unpause`: freeze or thaw the container's cgroup, and
/// record it, so `ps` says "(Paused)".
pub fn pause(engine: &Engine, args: &NamesArgs, frozen: bool) -> Result<Code> {
    each(engine, &args.containers, |r| {
        if frozen {
            container::pause(engine, r)
        } else {
            container::unpause(engine, r)
        }
    })
}

/// `docker update`: new limits for each named container, printed by name
/// as docker does, then dockerd's warnings; a bad value is refused before
/// any container changes.
pub fn update(engine: &Engine, args: &crate::cli::UpdateArgs) -> Result<Code> {
    let u = update_values(args)?;
    super::warnings::update_each(
        &args.containers,
        |name| container::update(engine, &engine.containers.resolve(name)?, &u),
        |_| false,
    )
}

/// What `update`'s flags ask for, parsed as docker's CLI parses them;
/// none at all is docker's refusal.
pub fn update_values(args: &crate::cli::UpdateArgs) -> Result<container::Update> {
    let u = container::Update {
        restart: args.restart.as_deref().map(str::parse).transpose()?,
        ..update_limits(args)?
    };
    if u.is_empty() {
        return Err(no_update_flags());
    }
    Ok(u)
}

/// The CLI's own refusal of an `update` without flags (no daemon prefix),
/// before any request.
pub fn no_update_flags() -> anyhow::Error {
    let why = "you must provide one or more flags when using this command";
    super::ClientRefusal(why.into()).into()
}

/// `update`'s limits, without the restart policy: client mode sends that
/// as docker's CLI does, for the service to judge.
pub fn update_limits(args: &crate::cli::UpdateArgs) -> Result<container::Update> {
    let size = |v: &Option<String>, flag: &str| -> Result<Option<u64>> {
        v.as_deref()
            .map(|s| {
                lab03_cgroups::parse_size(s)
                    .map_err(|e| anyhow::anyhow!("invalid argument {s:?} for \"{flag}\" flag: {e}"))
            })
            .transpose()
    };
    Ok(container::Update {
        cpus: args.cpus,
        cpu_shares: args.cpu_shares,
        memory: size(&args.memory, "--memory")?,
        memory_swap: match args.memory_swap.as_deref() {
            Some("-1") => Some(-1),
            _ => size(&args.memory_swap, "--memory-swap")?.map(|s| s as i64),
        },
        pids: args.pids_limit,
        restart: None,
        cpuset_cpus: args.cpuset_cpus.clone(),
        cpuset_mems: args.cpuset_mems.clone(),
        cpu_period: args.cpu_period,
        cpu_quota: args.cpu_quota,
        memory_reservation: crate::resource_flags::memory_reservation(args.more.memory_reservation),
        blkio_weight: args.more.blkio_weight,
    })
}

/// `docker rename`.
pub fn rename(engine: &Engine, args: &RenameArgs) -> Result<Code> {
    container::rename(engine, &args.container, &args.new_name)?;
    Ok(0)
}

/// `docker container prune`: remove every stopped container.
pub fn container_prune(engine: &Engine, args: &PruneArgs) -> Result<Code> {
    if !args.force && !confirm("WARNING! This will remove all stopped containers.\nAre you sure you want to continue? [y/N] ")? {
        return Ok(0);
    }
    remove_stopped(engine)?;
    println!("Total reclaimed space: 0B");
    Ok(0)
}

/// Removes every stopped container, listing them under "Deleted Containers:"
/// (`container prune` and `system prune`).
pub(super) fn remove_stopped(engine: &Engine) -> Result<()> {
    println!("Deleted Containers:");
    container::prune_containers(engine, &mut |id| println!("{id}"))?;
    println!();
    Ok(())
}

// ---- ps ----------------------------------------------------------------------

/// The fields of `ps --format`, and their headers in a `table` format.
const PS_FIELDS: [(&str, &str); 11] = [
    ("ID", "CONTAINER ID"),
    ("Size", "SIZE"),
    ("Image", "IMAGE"),
    ("Command", "COMMAND"),
    ("CreatedAt", "CREATED AT"),
    ("RunningFor", "CREATED"),
    ("Ports", "PORTS"),
    ("Status", "STATUS"),
    ("State", "STATE"),
    ("Names", "NAMES"),
    ("Labels", "LABELS"),
];

/// `docker ps`.
pub fn ps(engine: &Engine, args: &PsArgs) -> Result<Code> {
    let last = if args.latest { 1 } else { args.last };
    let opts = ListOptions {
        all: args.all,
        last: usize::try_from(last).ok(),
        filters: args
            .filter
            .iter()
            .map(|f| {
                let (key, value) = f
                    .split_once('=')
                    .ok_or_else(|| anyhow!("bad format of filter (expected name=value): {f}"))?;
                container::Filter::new(key, value)
            })
            .collect::<Result<_>>()?,
    };
    let list = container::list(engine, &opts)?;
    let now = SystemTime::now();
    let want_size = wants_size(args);
    // One docker-shaped object per container: what --format templates see,
    // and what the default table shows.
    let objects: Vec<Value> = list
        .iter()
        .map(|r| {
            let mut o = ps_object(r, now, args.no_trunc);
            if want_size {
                let (rw, rootfs) = container::sizes(engine, r);
                o["Size"] = container::size_column(rw, rootfs).into();
            }
            o
        })
        .collect();
    print_ps(&objects, args)
}

/// Whether `ps` measures sizes: `-s`, or a template that shows `.Size`
/// (docker/cli asks the daemon for them then), but never with `-q`.
pub(crate) fn wants_size(args: &PsArgs) -> bool {
    !args.quiet && (args.size || args.format.as_deref().is_some_and(|f| f.contains(".Size")))
}

/// `ps`' output of its objects (`ps_object`'s here, built from the API's
/// list through `-H`): the IDs with `-q`, `--format`, else docker's table.
pub(crate) fn print_ps(objects: &[Value], args: &PsArgs) -> Result<Code> {
    let mut out = std::io::stdout().lock();
    if args.quiet {
        for o in objects {
            writeln!(out, "{}", o["ID"].as_str().unwrap_or_default())?;
        }
        return Ok(0);
    }
    if let Some(format) = &args.format {
        write!(out, "{}", formatted(format, objects, &PS_FIELDS)?)?;
        return Ok(0);
    }
    let mut columns = vec![
        "ID",
        "Image",
        "Command",
        "RunningFor",
        "Status",
        "Ports",
        "Names",
    ];
    if args.size {
        columns.push("Size");
    }
    let rows: Vec<Vec<String>> = objects
        .iter()
        .map(|o| {
            columns
                .iter()
                .map(|k| o[*k].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .collect();
    let headers: Vec<&str> = columns
        .iter()
        .map(|c| {
            PS_FIELDS
                .iter()
                .find(|(f, _)| f == c)
                .map_or("", |(_, h)| *h)
        })
        .collect();
    write!(out, "{}", table(&headers, &rows))?;
    Ok(0)
}

/// What `ps --format` sees of a container.
fn ps_object(r: &Record, now: SystemTime, no_trunc: bool) -> Value {
    let c = config_of(r).unwrap_or_default();
    // From the whole second, as docker/cli counts it: the API's `Created`
    // is Unix seconds.
    let created = parse_rfc3339(&r.created)
        .map(|t| {
            let secs = t
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs();
            let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
            format!(
                "{} ago",
                human_duration(now.duration_since(t).unwrap_or_default())
            )
        })
        .unwrap_or_default();
    let labels: Vec<String> = c.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    json!({
        "ID": if no_trunc { r.id.clone() } else { short_id(&r.id).to_string() },
        "Image": c.image,
        "Command": command_column(&c.argv(), !no_trunc),
        "CreatedAt": go_created(&r.created),
        "Mounts": mounts_column(&c, no_trunc),
        "LocalVolumes": c.mounts.iter().filter(|m| m.kind == "volume").count().to_string(),
        "Networks": networks_column(&c),
        "Size": "0B",
        "RunningFor": created,
        "Ports": ports_column(&container::published_ports(r), &exposed_unpublished(r, &c)),
        "Status": container::status_text(r, now),
        "State": r.state.status.as_str(),
        "Names": r.name,
        "Labels": labels.join(","),
        // The image's platform, which dockerd knows only with the
        // containerd image store: null with overlay2's, as here.
        "Platform": null,
    })
}

/// `{{.CreatedAt}}`: Go's time format, from the whole second.
fn go_created(rfc3339: &str) -> String {
    parse_rfc3339(rfc3339)
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| dockyard::events::go_time_string(d.as_secs() as i64))
        .unwrap_or_default()
}

/// `{{.Mounts}}`: each mount's volume name, else its source (a bind),
/// cut to 15 characters with an ellipsis unless `--no-trunc`, as
/// docker/cli's `Mounts()`.
fn mounts_column(c: &container::ContainerConfig, no_trunc: bool) -> String {
    let names: Vec<String> = c
        .mounts
        .iter()
        .map(|m| {
            if no_trunc || m.source.chars().count() <= 15 {
                m.source.clone()
            } else {
                m.source.chars().take(14).collect::<String>() + "…"
            }
        })
        .collect();
    names.join(",")
}

/// `{{.Networks}}`: the networks it is on, by name (none for
/// `container:NAME`, which shares another's).
fn networks_column(c: &container::ContainerConfig) -> String {
    if c.network_mode.starts_with("container:") {
        return String::new();
    }
    let mut names = vec![c.network_mode.clone()];
    names.extend(c.connected.iter().map(|n| n.network.clone()));
    names.sort();
    names.join(",")
}

/// The ports a running container exposes (the image's EXPOSE, `--expose`)
/// without publishing them: docker's PORTS shows those as `80/tcp`.
fn exposed_unpublished(r: &Record, c: &container::ContainerConfig) -> Vec<(u16, String)> {
    if r.state.status != dockyard::state::Status::Running {
        return Vec::new();
    }
    let published = container::published_ports(r);
    c.exposed
        .iter()
        .filter_map(|e| {
            let (port, proto) = e.split_once('/').unwrap_or((e, "tcp"));
            Some((port.parse::<u16>().ok()?, proto.to_string()))
        })
        .filter(|(port, proto)| {
            !published
                .iter()
                .any(|p| p.container_port == *port && p.proto == *proto)
        })
        .collect()
}

/// The PORTS column as docker's client draws it: ports ordered by the
/// container's port; runs of consecutive ports of one protocol (and host
/// address, when published on the same port number) folded into a range
/// (`9000-9002/udp`, `0.0.0.0:80-81->80-81/tcp`); a port published on
/// another number listed last (`0.0.0.0:8080->80/tcp`).
pub(crate) fn ports_column(ports: &[PublishedPort], exposed: &[(u16, String)]) -> String {
    // (container port, host address, host port, protocol)
    let mut all: Vec<(u16, String, u16, String)> = ports
        .iter()
        .map(|p| {
            (
                p.container_port,
                p.host_ip.clone(),
                p.host_port,
                p.proto.clone(),
            )
        })
        .chain(
            exposed
                .iter()
                .map(|(port, proto)| (*port, String::new(), 0, proto.clone())),
        )
        .collect();
    all.sort();
    let mut groups: Vec<(String, u16, u16)> = Vec::new();
    let mut mappings = Vec::new();
    for (port, ip, public, proto) in all {
        if !ip.is_empty() && public != port {
            mappings.push(format!("{ip}:{public}->{port}/{proto}"));
            continue;
        }
        let key = if ip.is_empty() {
            proto
        } else {
            format!("{ip}/{proto}")
        };
        match groups.iter_mut().rev().find(|(k, _, _)| *k == key) {
            Some(g) if g.2.checked_add(1) == Some(port) => g.2 = port,
            _ => groups.push((key, port, port)),
        }
    }
    let group = |(key, first, last): &(String, u16, u16)| {
        let range = if first == last {
            first.to_string()
        } else {
            format!("{first}-{last}")
        };
        match key.split_once('/') {
            Some((ip, proto)) => format!("{ip}:{range}->{range}/{proto}"),
            None => format!("{range}/{key}"),
        }
    };
    groups
        .iter()
        .map(group)
        .chain(mappings)
        .collect::<Vec<_>>()
        .join(", ")
}

// ---- logs, port, top, stats --------------------------------------------------

/// `docker logs`.
pub fn logs(engine: &Engine, args: &LogsArgs) -> Result<Code> {
    let record = engine.containers.resolve(&args.container)?;
    let now = SystemTime::now();
    let time = |t: &Option<String>| t.as_deref().map(|s| logs::parse_time(s, now)).transpose();
    let filter = logs::Filter {
        tail: match args.tail.as_str() {
            "all" | "-1" => None,
            n => Some(
                n.parse()
                    .map_err(|_| anyhow!("invalid value for --tail: {n:?}"))?,
            ),
        },
        since: time(&args.since)?,
        until: time(&args.until)?,
    };
    let dir = engine.containers.dir_of(&record.id);
    let details = args.details.then(|| {
        let c = config_of(&record).unwrap_or_default();
        logs::attributes(&c.log_opts, &c.labels, &c.env)
    });
    let entries = logs::read(&dir, &filter)?;
    print_log(&entries, args.timestamps, details.as_deref())?;
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
        print_log(&all, args.timestamps, details.as_deref())?;
        if !running {
            return Ok(0);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Log entries to our stdout and stderr, as the container wrote them;
/// `details`: the attributes before each line (`logs --details`).
fn print_log(entries: &[logs::Entry], timestamps: bool, details: Option<&str>) -> Result<()> {
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
    for e in entries {
        let w: &mut dyn Write = if e.stream == "stderr" {
            &mut err
        } else {
            &mut out
        };
        if timestamps {
            write!(w, "{} ", e.time)?;
        }
        if let Some(d) = details {
            write!(w, "{d} ")?;
        }
        w.write_all(e.log.as_bytes())?;
    }
    out.flush()?;
    Ok(())
}

/// `docker port`: the container's published ports.
pub fn port(engine: &Engine, args: &PortArgs) -> Result<Code> {
    let r = engine
        .containers
        .reconcile(engine.containers.resolve(&args.container)?)?;
    let ports = container::published_ports(&r);
    let Some(asked) = &args.port else {
        for p in ports {
            println!(
                "{}/{} -> {}:{}",
                p.container_port, p.proto, p.host_ip, p.host_port
            );
        }
        return Ok(0);
    };
    // `docker port web 80` (tcp) or `80/udp`: the host side of each binding.
    let (number, proto) = asked.split_once('/').unwrap_or((asked, "tcp"));
    let number: u16 = number
        .parse()
        .map_err(|_| anyhow!("Error: invalid port ({asked}): invalid syntax"))?;
    let matching: Vec<_> = ports
        .iter()
        .filter(|p| p.container_port == number && p.proto == proto)
        .collect();
    if matching.is_empty() {
        // As the docker CLI says it: the port as it was typed.
        bail!(
            "Error: No public port '{asked}' published for {}",
            args.container
        );
    }
    for p in matching {
        println!("{}:{}", p.host_ip, p.host_port);
    }
    Ok(0)
}

/// `docker top`: the container's processes, as `ps -ef` shows them.
pub fn top(engine: &Engine, args: &OneContainer) -> Result<Code> {
    let r = engine
        .containers
        .reconcile(engine.containers.resolve(&args.container)?)?;
    let top = container::top(&r)?;
    dockyard::events::container(engine, &r, "top", &[]);
    let titles: Vec<&str> = top.titles.iter().map(String::as_str).collect();
    // docker/cli's top table: columns at least 20 wide.
    print!("{}", crate::format::table_min(&titles, &top.processes, 20));
    Ok(0)
}

/// The columns of `stats`, in docker's order; the client's `stats` prints the same.
pub const STATS_TITLES: [&str; 8] = [
    "CONTAINER ID",
    "NAME",
    "CPU %",
    "MEM USAGE / LIMIT",
    "MEM %",
    "NET I/O",
    "BLOCK I/O",
    "PIDS",
];

/// `docker stats`: CPU %, memory, network and pids, sampled a second apart.
pub fn stats(engine: &Engine, args: &StatsArgs) -> Result<Code> {
    let list = container::stats_targets(engine, &args.containers, args.all)?;
    loop {
        let rows: Vec<Vec<String>> = container::sample_stats(&list, Duration::from_millis(1000))
            .iter()
            .map(stats_row)
            .collect();
        print!("{}", table(&STATS_TITLES, &rows));
        if args.no_stream {
            return Ok(0);
        }
        std::io::stdout().flush()?;
    }
}

/// One line of `docker stats`.
pub fn stats_row(s: &container::Stats) -> Vec<String> {
    vec![
        short_id(&s.id).to_string(),
        s.name.clone(),
        format!("{:.2}%", s.cpu_percent),
        format!(
            "{} / {}",
            binary_size(s.memory),
            binary_size(s.memory_limit)
        ),
        format!("{:.2}%", s.memory_percent),
        format!("{} / {}", human_size(s.net_rx), human_size(s.net_tx)),
        "0B / 0B".into(),
        s.pids.to_string(),
    ]
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

// ---- images from containers ----------------------------------------------------

/// `docker commit`: the container's writable layer becomes a new image on
/// top of its image (lab 04); a running container is paused for the copy
/// unless `--pause=false` (see `dockyard::image::commit_container`).
pub fn commit(engine: &Engine, args: &CommitArgs) -> Result<Code> {
    // docker's client parses the name before it sends the request.
    if let Some(name) = &args.repository {
        dockyard::image::check_new_name(name)
            .map_err(|e| super::ClientRefusal(format!("{e:#}")))?;
    }
    let r = engine.containers.resolve(&args.container)?;
    let Some(name) = &args.repository else {
        bail!(
            "dockyard keeps images by name: give one (dockyard commit CONTAINER REPOSITORY[:TAG])"
        );
    };
    let req = dockyard::image::CommitRequest {
        message: args.message.clone(),
        author: args.author.clone(),
        changes: args.change.clone(),
        pause: args.pause,
    };
    let image = dockyard::image::commit_container(engine, &r, name, &req)?;
    println!("{}", image.config_digest);
    Ok(0)
}

/// `docker diff`: A, C and D lines for what the container changed.
pub fn diff(engine: &Engine, args: &OneContainer) -> Result<Code> {
    let r = engine.containers.resolve(&args.container)?;
    let mut out = std::io::stdout().lock();
    for c in dockyard::image::container_changes(engine, &r.id)? {
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
    dockyard::events::container(engine, &r, "export", &[]);
    Ok(0)
}

/// `dockyard __monitor-exited`: the small monitor program hands the exit
/// back to the engine core (see `dockyard::container::monitor_exited`).
pub fn monitor_exited(engine: &Engine, a: &MonitorExitedArgs) -> Result<Code> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn record(status: &str, network: Value) -> Record {
        serde_json::from_value(json!({
            "id": "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "name": "web",
            "created": "2024-01-01T00:00:00Z",
            "state": {
                "status": status, "pid": 0, "pid_start_time": 0, "monitor_pid": 0,
                "exit_code": 0, "oom_killed": false, "error": "",
                "started_at": "2024-01-01T00:00:01Z", "finished_at": "0001-01-01T00:00:00Z",
                "restart_count": 0, "network": network,
            },
            "config": serde_json::to_value(container::ContainerConfig {
                image: "busybox".into(),
                cmd: vec!["sh".into(), "-c".into(), "while true; do sleep 1; done".into()],
                labels: [("app".to_string(), "demo".to_string())].into(),
                ..Default::default()
            }).unwrap(),
        }))
        .unwrap()
    }

    #[test]
    fn the_ports_column_folds_runs_of_ports_as_dockers() {
        let port = |host, ctr| PublishedPort {
            host_ip: "0.0.0.0".into(),
            host_port: host,
            container_port: ctr,
            proto: "tcp".into(),
        };
        let exposed = |ports: &[u16], proto: &str| -> Vec<(u16, String)> {
            ports.iter().map(|p| (*p, proto.to_string())).collect()
        };
        assert_eq!(
            ports_column(&[], &exposed(&[9000, 9001, 9002, 9005], "udp")),
            "9000-9002/udp, 9005/udp"
        );
        assert_eq!(
            ports_column(&[port(80, 80), port(81, 81)], &exposed(&[443], "tcp")),
            "0.0.0.0:80-81->80-81/tcp, 443/tcp"
        );
    }

    #[test]
    fn the_ports_column_lists_each_binding() {
        let port = |ip: &str, host, ctr, proto: &str| PublishedPort {
            host_ip: ip.into(),
            host_port: host,
            container_port: ctr,
            proto: proto.into(),
        };
        assert_eq!(ports_column(&[], &[]), "");
        assert_eq!(
            ports_column(
                &[
                    port("0.0.0.0", 8080, 80, "tcp"),
                    port("127.0.0.1", 53, 53, "udp")
                ],
                &[(443, "tcp".to_string())]
            ),
            "127.0.0.1:53->53/udp, 443/tcp, 0.0.0.0:8080->80/tcp",
            "same-number bindings and exposed ports in port order, then the mappings"
        );
    }

    #[test]
    fn a_ps_object_has_dockers_fields() {
        let now = parse_rfc3339("2024-01-01T00:02:00Z").unwrap();
        let r = record(
            "running",
            json!({"Ports": [{"ContainerPort": 80, "Proto": "tcp", "HostIp": "0.0.0.0", "HostPort": 8080}]}),
        );
        let o = ps_object(&r, now, false);
        assert_eq!(o["ID"], "0123456789ab");
        assert_eq!(o["Image"], "busybox");
        assert_eq!(o["Command"], "\"sh -c while true; d…\"");
        assert_eq!(o["RunningFor"], "2 minutes ago");
        assert_eq!(o["Status"], "Up About a minute");
        assert_eq!(o["State"], "running");
        assert_eq!(o["Ports"], "0.0.0.0:8080->80/tcp");
        assert_eq!(o["Labels"], "app=demo");
        let full = ps_object(&record("exited", Value::Null), now, true);
        assert_eq!(full["ID"].as_str().unwrap().len(), 64);
        assert_eq!(full["Ports"], "");
    }

    #[test]
    fn stats_read_like_dockers() {
        assert_eq!(binary_size(512), "512B");
        assert_eq!(binary_size(1_593_835), "1.52MiB");
        assert_eq!(binary_size(2 << 30), "2.00GiB");
        let s = container::Stats {
            id: "0123456789abcdef".into(),
            name: "web".into(),
            cpu_percent: 12.345,
            memory: 1 << 20,
            memory_limit: 4 << 20,
            memory_percent: 25.0,
            net_rx: 1_240_000,
            net_tx: 0,
            pids: 3,
        };
        assert_eq!(
            stats_row(&s),
            [
                "0123456789ab",
                "web",
                "12.35%",
                "1.00MiB / 4.00MiB",
                "25.00%",
                "1.24MB / 0B",
                "0B / 0B",
                "3"
            ]
        );
    }
}
