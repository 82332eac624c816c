//! `run` and `create`: docker's flags become the core's `ContainerConfig`.
//!
//! Every flag is checked here, before anything is created, so that a bad
//! flag leaves nothing behind: `-e =x`, `--memory lots`, `-p nonsense`, a
//! relative `-w`, `--restart always --rm`... The core then creates the
//! container from the config (`dockyard::container::create`), and `run`
//! starts it: in the foreground, detached (`-d`), or detached with an
//! attached client (`-it`, so that Ctrl-P Ctrl-Q can leave it running).

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};

use super::{parse_labels, session, Code};
use crate::cli::RunArgs;
use crate::process_flags::CidFile;
use dockyard::container::{self, Attach, ContainerConfig, Limits};
use dockyard::health::{parse_duration, Check};
use dockyard::image::{self, NoSuchImage};
use dockyard::state::Record;
use dockyard::volumes::{parse_mount, parse_v, MountSpec};
use dockyard::{distribution, logs, Engine};
use lab04_overlay::reference::{Reference, DOCKER_HUB};
use lab04_overlay::registry::{Event, Platform};

/// `docker run`: create, start, and in the foreground wait and relay the
/// exit code (125 when dockyard fails, 126/127 when the command cannot run).
pub fn run(engine: &Engine, args: &RunArgs) -> Result<Code> {
    super::check_tty(args.tty, args.interactive, args.detach)?;
    // Checked before anything is created.
    session::parse_detach_keys(&args.detach_keys)?;
    let (mut config, name) = container_config(args)?;
    volumes_from(engine, &mut config, &args.volumes_from)?;
    config.links = container::check_links(engine, &args.link)?;
    dockyard::trace::phase("built the config");
    let mut cidfile = CidFile::create(args.process.cidfile.as_deref())?;
    ensure_image(engine, &config.image, &args.pull, args.process.quiet)?;
    config.network_mode = dockyard::network::container_network(engine, &config.network_mode)?;
    container::check_network(engine, &mut config)?;
    let (record, warnings) = container::create(engine, name.as_deref(), config)?;
    super::warnings::print_create(&warnings);
    cidfile.write(&record.id)?;
    dockyard::trace::phase("created the container record");
    if args.detach {
        container::start_detached(engine, &record.id).map_err(StartError::wrap)?;
        println!("{}", record.id);
        return Ok(0);
    }
    // Attached: dockerd logs the client's attach before the start.
    dockyard::events::container(engine, &record, "attach", &[]);
    if args.tty && args.interactive {
        // -it: as docker, a detached container and an attached client, so
        // that Ctrl-P Ctrl-Q can leave it running.
        return run_attached(engine, &record, &args.detach_keys).map_err(StartError::wrap);
    }
    container::monitor(engine, &record.id, Attach::Foreground, None).map_err(StartError::wrap)
}

/// `run`'s container was created but could not be started. Docker's
/// client gives such an error the exit code of a shell that could not run
/// the command (`toStatusError`): 127 when it says the file is not there,
/// 126 when it may not be executed, else 125.
#[derive(Debug)]
pub struct StartError(pub anyhow::Error);

impl StartError {
    fn wrap(e: anyhow::Error) -> anyhow::Error {
        anyhow::Error::new(StartError(e))
    }

    /// The exit code docker's client gives this error.
    pub fn exit_code(&self) -> u8 {
        let msg = format!("{:#}", self.0);
        if msg.contains("executable file not found") || msg.contains("no such file or directory") {
            127
        } else if msg.contains("permission denied") || msg.contains("is a directory") {
            126
        } else {
            125
        }
    }
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#}", self.0)
    }
}

impl std::error::Error for StartError {}

/// Start `record` under a detached monitor and attach to it before it
/// runs; the exit code is the container's (0 when the person detaches).
pub fn run_attached(engine: &Engine, record: &Record, keys: &str) -> Result<Code> {
    let sock = container::start_attached(engine, &record.id)?;
    session::session(
        engine,
        record,
        sock,
        &session::Options {
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
    volumes_from(engine, &mut config, &args.volumes_from)?;
    config.links = container::check_links(engine, &args.link)?;
    let mut cidfile = CidFile::create(args.process.cidfile.as_deref())?;
    ensure_image(engine, &config.image, &args.pull, args.process.quiet)?;
    config.network_mode = dockyard::network::container_network(engine, &config.network_mode)?;
    container::check_network(engine, &mut config)?;
    let (record, warnings) = container::create(engine, name.as_deref(), config)?;
    super::warnings::print_create(&warnings);
    cidfile.write(&record.id)?;
    println!("{}", record.id);
    Ok(0)
}

/// `--pull missing|always|never`: make sure the image is in the store
/// before the container is made, as docker's client does for `run` and
/// `create`. `missing` (the default) pulls only what is not here, saying
/// `Unable to find image 'NAME' locally` first; `always` pulls even then
/// (a moved tag comes down); `never` fails on a missing image. An image ID
/// or prefix is never pulled: a registry knows names, not local IDs.
///
/// The progress goes to standard error, as docker's `run` writes it: the
/// standard output is the container's. `-q` (`quiet`) keeps it all back.
fn ensure_image(engine: &Engine, reference: &str, policy: &str, quiet: bool) -> Result<()> {
    let say = |line: &str| {
        if !quiet {
            eprintln!("{line}");
        }
    };
    if !matches!(policy, "missing" | "always" | "never") {
        bail!(
            "invalid pull option: '{policy}': must be one of \"always\", \"missing\" or \"never\""
        );
    }
    let missing = match image::lookup(engine, reference) {
        Ok(f) if policy == "always" && !f.by_id => None,
        Ok(_) => return Ok(()),
        Err(e) => match e.downcast_ref::<image::NoSuchImage>() {
            Some(NoSuchImage(name)) => Some(name.clone()),
            // A malformed reference, an ambiguous prefix, a broken store.
            None => return Err(e),
        },
    };
    let reference = Reference::parse(reference)?;
    if let Some(name) = &missing {
        if policy == "never" {
            bail!("No such image: {name}");
        }
        say(&format!("Unable to find image '{name}' locally"));
    }
    if reference.domain == DOCKER_HUB && engine.config.registry_mirrors.is_empty() {
        // Docker would go to Docker Hub here. Dockyard does not reach the
        // internet behind the learner's back: an explicit `pull` does.
        bail!(
            "{} is not in the store, and `run` does not pull from Docker Hub: `dockyard pull {}` \
             fetches it (it needs the internet), `dockyard load -i FILE` loads a saved one, or \
             name a registry (127.0.0.1:5000/{})",
            reference.familiar(),
            reference.familiar(),
            reference.familiar_repository(),
        );
    }
    if let (Some(tag), None) = (&reference.tag, &reference.digest) {
        say(&format!("{tag}: Pulling from {}", reference.path));
    }
    let report = |e: Event| {
        let (id, text) = match &e {
            Event::Waiting { id, .. } => (id, "Pulling fs layer"),
            Event::Downloaded { id } => (id, "Download complete"),
            Event::Extracted { id } => (id, "Pull complete"),
            Event::AlreadyExists { id } => (id, "Already exists"),
            _ => return,
        };
        say(&format!("{id}: {text}"));
    };
    let pulled = distribution::pull(
        engine,
        &reference,
        &Platform::host(),
        &report,
        &mut |warning| say(warning),
    )?;
    say(&format!("Digest: {}", pulled.digest));
    if pulled.up_to_date {
        say(&format!("Status: Image is up to date for {}", pulled.name));
    } else {
        say(&format!(
            "Status: Downloaded newer image for {}",
            pulled.name
        ));
    }
    Ok(())
}

/// Turn `run`'s flags into a container config, validating them first so a
/// bad flag creates nothing. The checks run in the order docker's do, so
/// that of two bad flags the same one is reported.
fn container_config(args: &RunArgs) -> Result<(ContainerConfig, Option<String>)> {
    let mut words = args.image_and_command.iter();
    let image = words
        .next()
        .ok_or_else(|| anyhow!("\"run\" requires at least 1 argument"))?
        .clone();
    let cmd: Vec<String> = words.cloned().collect();
    let env = environment(args)?;
    let labels = parse_labels(&args.process.labels(&args.label)?)?;
    args.ns.check()?;
    let log_opts = log_options(&args.log_opt)?;
    let limits = limits(args)?;
    let entrypoint = match &args.entrypoint {
        Some(e) if !e.is_empty() => vec![e.clone()],
        _ => vec![],
    };
    if args.rm && args.restart != "no" {
        bail!("conflicting options: cannot specify both --restart and --rm");
    }
    let healthcheck = healthcheck(args)?;
    for u in &args.ulimit {
        lab02_namespaces::parse_ulimit(u)?;
    }
    let restart = args.restart.parse()?;
    check_addresses(args)?;
    let mounts = mounts(args)?;
    let mut config = ContainerConfig {
        image,
        entrypoint,
        cmd,
        env,
        working_dir: args.workdir.clone().unwrap_or_default(),
        user: args.user.clone().unwrap_or_default(),
        healthcheck,
        no_healthcheck: args.no_healthcheck,
        ulimits: args.ulimit.clone(),
        hostname: args.hostname.clone().unwrap_or_default(),
        labels,
        auto_remove: args.rm,
        restart,
        limits,
        cgroup_parent: args.cgroup_parent.clone().unwrap_or_default(),
        network_mode: args.network.clone(),
        network_aliases: args.network_alias.clone(),
        ip: args.ip.clone(),
        dns: args.dns.clone(),
        dns_search: args.dns_search.clone(),
        dns_options: args.dns_option.clone(),
        extra_hosts: args.add_host.clone(),
        init: args.init,
        open_stdin: args.interactive,
        tty: args.tty,
        publish: args.publish.clone(),
        publish_all: args.publish_all,
        exposed: exposed_ports(&args.expose)?,
        attach_stdin: args.interactive && !args.detach,
        attach_stdout: !args.detach,
        attach_stderr: !args.detach,
        log_opts,
        privileged: args.privileged,
        devices: args
            .device
            .iter()
            .map(|d| container::parse_device(d))
            .collect::<Result<_>>()?,
        userns_mode: args.userns.clone(),
        cap_add: args.cap_add.clone(),
        cap_drop: args.cap_drop.clone(),
        security_opt: args.security_opt.clone(),
        read_only: args.read_only,
        tmpfs: args.tmpfs.clone(),
        shm_size: args.shm_size.unwrap_or(0),
        pid_mode: args.ns.pid.clone(),
        ipc_mode: args.ns.ipc.clone(),
        uts_mode: args.ns.uts.clone(),
        cgroupns_mode: args.ns.cgroupns.clone(),
        mounts,
        ..Default::default()
    };
    crate::resource_flags::apply(&args.resources, &mut config)?;
    args.process.apply(&mut config);
    check_config(&config, args)?;
    Ok((config, args.name.clone()))
}

/// `--env-file`s, then `-e`s, as `KEY=value` entries.
fn environment(args: &RunArgs) -> Result<Vec<String>> {
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
    Ok(env)
}

/// `-e KEY=value`, or `-e KEY` to copy KEY from our environment (dropped if unset).
pub fn env_entry(e: &str) -> Result<String> {
    match e.split_once('=') {
        Some(("", _)) => bail!("invalid environment variable: {e}"),
        Some(_) => Ok(e.to_string()),
        None => Ok(match std::env::var(e) {
            Ok(v) => format!("{e}={v}"),
            Err(_) => e.to_string(),
        }),
    }
}

/// `--log-opt KEY=VALUE`s, checked by the log rotation that reads them.
fn log_options(opts: &[String]) -> Result<std::collections::BTreeMap<String, String>> {
    let mut log_opts = std::collections::BTreeMap::new();
    for o in opts {
        let (k, v) = o
            .split_once('=')
            .ok_or_else(|| anyhow!("invalid log-opt {o:?}: expected key=value"))?;
        log_opts.insert(k.to_string(), v.to_string());
    }
    logs::rotation_from_opts(log_opts.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
    Ok(log_opts)
}

/// `--cpus`, `--cpu-shares`, `--memory`, `--memory-swap` and `--pids-limit`,
/// in docker's units (sizes parsed as lab 03 parses them).
fn limits(args: &RunArgs) -> Result<Limits> {
    let memory = args
        .memory
        .as_deref()
        .map(lab03_cgroups::parse_size)
        .transpose()
        .context("invalid --memory")?;
    let memory_swap = match args.memory_swap.as_deref() {
        None => None,
        Some("-1") => Some(-1),
        Some(s) => Some(lab03_cgroups::parse_size(s).context("invalid --memory-swap")? as i64),
    };
    Ok(Limits {
        cpus: args.cpus,
        cpu_shares: args.cpu_shares,
        memory,
        memory_swap,
        pids: args.pids_limit,
        device_read_bps: throttles(&args.device_read_bps, "--device-read-bps")?,
        device_write_bps: throttles(&args.device_write_bps, "--device-write-bps")?,
        // -1 is docker's default: "not set".
        memory_swappiness: args.memory_swappiness.filter(|s| *s != -1),
        oom_kill_disable: args.oom_kill_disable,
        cpu_period: args.cpu_period,
        cpu_quota: args.cpu_quota,
        cpuset_cpus: args.cpuset_cpus.clone(),
        cpuset_mems: args.cpuset_mems.clone(),
        // The rarer ones: crate::resource_flags.
        ..Default::default()
    })
}

/// `--device-read-bps PATH:RATE`, checked as docker's CLI checks it: a
/// path under /dev and a size (`1mb`); the device itself is looked at by
/// `create`.
fn throttles(specs: &[String], flag: &str) -> Result<Vec<container::ThrottleDevice>> {
    specs
        .iter()
        .map(|v| {
            let bad = |why: String| anyhow!("invalid argument \"{v}\" for \"{flag}\" flag: {why}");
            let (path, rate) = match v.split_once(':') {
                Some((p, r)) if !p.is_empty() => (p, r),
                _ => return Err(bad(format!("bad format: {v}"))),
            };
            if !path.starts_with("/dev/") {
                return Err(bad(format!("bad format for device path: {v}")));
            }
            let rate = lab03_cgroups::parse_size(rate).map_err(|_| {
                bad(format!(
                    "invalid rate for device: {v}. The correct format is \
                     <device-path>:<number>[<unit>]. Number must be a positive integer. \
                     Unit is optional and can be kb, mb, or gb"
                ))
            })?;
            Ok(container::ThrottleDevice {
                path: path.to_string(),
                rate,
                ..Default::default()
            })
        })
        .collect()
}

/// `--health-cmd` and its timings: a `CMD-SHELL` check.
fn healthcheck(args: &RunArgs) -> Result<Option<Check>> {
    let Some(cmd) = &args.health_cmd else {
        return Ok(None);
    };
    let mut c = Check::new(vec!["CMD-SHELL".into(), cmd.clone()]);
    if let Some(d) = &args.health_interval {
        c.interval = parse_duration(d)?;
    }
    if let Some(d) = &args.health_timeout {
        c.timeout = parse_duration(d)?;
    }
    if let Some(d) = &args.health_start_period {
        c.start_period = parse_duration(d)?;
    }
    if let Some(n) = args.health_retries {
        c.retries = n.max(1);
    }
    Ok(Some(c))
}

/// `--ip`, `--dns` and `--add-host` hold addresses.
fn check_addresses(args: &RunArgs) -> Result<()> {
    if let Some(ip) = &args.ip {
        ip.parse::<std::net::Ipv4Addr>()
            .map_err(|_| anyhow!("invalid IPv4 address: {ip}"))?;
    }
    for d in &args.dns {
        d.parse::<std::net::IpAddr>()
            .map_err(|_| anyhow!("{d} is not an ip address"))?;
    }
    for h in &args.add_host {
        let (_, ip) = dockyard::network::split_add_host(h)?;
        if ip != "host-gateway" && ip.parse::<std::net::Ipv4Addr>().is_err() {
            bail!("invalid IP address in add-host: {ip:?}");
        }
    }
    Ok(())
}

/// `--volumes-from CTR[:ro|rw]`: the mounts of another container (its
/// volumes and binds), at the same targets; read-only as they were there,
/// unless `:ro` or `:rw` says otherwise. A target this container mounts
/// itself (-v, --mount) keeps its own. The volumes are shared, not owned:
/// removing this container never takes an anonymous one with it.
fn volumes_from(engine: &Engine, config: &mut ContainerConfig, from: &[String]) -> Result<()> {
    for spec in from {
        let (name, mode) = match spec.rsplit_once(':') {
            Some((n, m @ ("ro" | "rw"))) => (n, Some(m == "ro")),
            Some((_, m)) => bail!("invalid mode: {m}"),
            None => (spec.as_str(), None),
        };
        let source = engine.containers.resolve(name)?;
        for m in container::config_of(&source)?.mounts {
            if config.mounts.iter().any(|own| own.target == m.target) {
                continue;
            }
            config.mounts.push(MountSpec {
                read_only: mode.unwrap_or(m.read_only),
                anonymous: false,
                ..m
            });
        }
    }
    Ok(())
}

/// `-v` and `--mount`, each target at most once.
fn mounts(args: &RunArgs) -> Result<Vec<MountSpec>> {
    let mut mounts = Vec::new();
    for v in &args.volume {
        let m = parse_v(v)?;
        if m.kind == "bind" && !Path::new(&m.source).exists() {
            // docker's -v (unlike --mount) makes a missing host directory.
            std::fs::create_dir_all(&m.source).with_context(|| format!("creating {}", m.source))?;
        }
        mounts.push(m);
    }
    for m in &args.mount {
        mounts.push(parse_mount(m)?);
    }
    let mut targets = BTreeSet::new();
    for m in &mounts {
        if !targets.insert(m.target.clone()) {
            bail!("Duplicate mount point: {}", m.target);
        }
    }
    Ok(mounts)
}

/// `--expose 80` is 80/tcp.
fn exposed_ports(expose: &[String]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for e in expose {
        for p in expose_range(e)? {
            if !out.contains(&p) {
                out.push(p);
            }
        }
    }
    Ok(out)
}

/// One `--expose`: `80`, `80/udp` or a range `8000-8002[/tcp]`, as the
/// ports it names (`8000/tcp`, `8001/tcp`, `8002/tcp`), checked as docker's
/// `nat.ParsePortRange` does.
fn expose_range(e: &str) -> Result<Vec<String>> {
    let (ports, proto) = e.split_once('/').unwrap_or((e, "tcp"));
    let bad = |why: &str| anyhow!("invalid range format for --expose: {e}, error: {why}");
    if !matches!(proto, "tcp" | "udp" | "sctp") {
        return Err(bad(&format!("invalid proto: {proto}")));
    }
    let port = |p: &str| -> Result<u16> {
        p.parse::<u16>()
            .map_err(|_| bad(&format!("invalid port: {p}")))
    };
    let (lo, hi) = match ports.split_once('-') {
        Some((a, b)) => (port(a)?, port(b)?),
        None => (port(ports)?, port(ports)?),
    };
    if hi < lo {
        return Err(bad(&format!("invalid range specified: {ports}")));
    }
    Ok((lo..=hi).map(|p| format!("{p}/{proto}")).collect())
}

/// The checks that need the whole config: the security flags, the working
/// directory, the published ports.
fn check_config(config: &ContainerConfig, args: &RunArgs) -> Result<()> {
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
    // On the host's network it is dockerd's warning, the core's create's
    // (so the API's client hears it too); with none, the CLI's own.
    if !config.publish.is_empty() && config.network_mode == "none" {
        eprintln!(
            "WARNING: Published ports are discarded when using {} network mode",
            config.network_mode
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    /// `dockyard run ARGS...`'s flags, as clap parses them.
    fn run_args(args: &[&str]) -> RunArgs {
        let argv = ["dockyard", "run"].iter().chain(args);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Run(a) => a,
            other => panic!("not run: {other:?}"),
        }
    }

    fn config(args: &[&str]) -> ContainerConfig {
        container_config(&run_args(args)).unwrap().0
    }

    fn error(args: &[&str]) -> String {
        format!("{:#}", container_config(&run_args(args)).unwrap_err())
    }

    #[test]
    fn image_command_and_name() {
        let (c, name) =
            container_config(&run_args(&["--name", "web", "busybox", "sleep", "-1"])).unwrap();
        assert_eq!(name.as_deref(), Some("web"));
        assert_eq!(c.image, "busybox");
        assert_eq!(c.cmd, ["sleep", "-1"]);
        assert!(c.entrypoint.is_empty());
        let c = config(&["--entrypoint", "/bin/sh", "busybox"]);
        assert_eq!(c.entrypoint, ["/bin/sh"]);
        assert!(config(&["--entrypoint", "", "busybox"])
            .entrypoint
            .is_empty());
    }

    #[test]
    fn env_comes_from_files_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("env");
        std::fs::write(&file, "# a comment\n\nFROM_FILE=1\n  INDENTED=2\n").unwrap();
        let c = config(&[
            "--env-file",
            file.to_str().unwrap(),
            "-e",
            "A=b=c",
            "-e",
            "PATH",
            "-e",
            "DOCKYARD_TEST_SURELY_UNSET",
            "busybox",
        ]);
        let path = std::env::var("PATH").unwrap();
        assert_eq!(
            c.env,
            [
                "FROM_FILE=1".to_string(),
                "INDENTED=2".into(),
                "A=b=c".into(),
                format!("PATH={path}"),
                "DOCKYARD_TEST_SURELY_UNSET".into()
            ]
        );
        assert_eq!(
            error(&["-e", "=x", "busybox"]),
            "invalid environment variable: =x"
        );
    }

    #[test]
    fn limits_in_dockers_units() {
        let c = config(&[
            "-m",
            "32m",
            "--memory-swap",
            "-1",
            "--cpus",
            "0.5",
            "-c",
            "512",
            "--pids-limit",
            "-1",
            "busybox",
        ]);
        assert_eq!(
            c.limits,
            Limits {
                cpus: Some(0.5),
                cpu_shares: Some(512),
                memory: Some(32 << 20),
                memory_swap: Some(-1),
                pids: Some(-1),
                ..Default::default()
            }
        );
        assert_eq!(
            config(&["--memory-swap", "64m", "busybox"])
                .limits
                .memory_swap,
            Some(64 << 20)
        );
        assert!(error(&["-m", "lots", "busybox"]).starts_with("invalid --memory"));
    }

    #[test]
    fn ports_are_checked_and_exposed_ones_default_to_tcp() {
        let c = config(&[
            "-p",
            "8080:80",
            "-p",
            "53:53/udp",
            "--expose",
            "9000",
            "--expose",
            "7/udp",
            "busybox",
        ]);
        assert_eq!(c.publish, ["8080:80", "53:53/udp"]);
        assert_eq!(c.exposed, ["9000/tcp", "7/udp"]);
        assert!(error(&["-p", "nonsense", "busybox"]).starts_with("invalid -p nonsense: "));
    }

    #[test]
    fn mounts_volumes_and_binds() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("made/by/run");
        let bind = format!("{}:/srv:ro", missing.display());
        let c = config(&["-v", "data:/data", "-v", &bind, "-v", "/anon", "busybox"]);
        let kinds: Vec<(&str, &str, bool)> = c
            .mounts
            .iter()
            .map(|m| (m.kind.as_str(), m.target.as_str(), m.read_only))
            .collect();
        assert_eq!(
            kinds,
            [
                ("volume", "/data", false),
                ("bind", "/srv", true),
                ("volume", "/anon", false)
            ]
        );
        assert!(missing.is_dir(), "-v makes a missing host directory");
        assert!(c.mounts[2].anonymous);
        assert_eq!(
            error(&[
                "-v",
                "one:/data",
                "--mount",
                "type=volume,source=two,target=/data",
                "busybox"
            ]),
            "Duplicate mount point: /data"
        );
    }

    #[test]
    fn labels_restart_and_workdir_are_checked() {
        let c = config(&["-l", "app=web", "--restart", "on-failure:3", "busybox"]);
        assert_eq!(c.labels["app"], "web");
        assert_eq!(c.restart, container::RestartPolicy::OnFailure(3));
        assert_eq!(
            error(&["--rm", "--restart", "always", "busybox"]),
            "conflicting options: cannot specify both --restart and --rm"
        );
        assert_eq!(
            error(&["-w", "relative", "busybox"]),
            "the working directory 'relative' is invalid, it needs to be an absolute path"
        );
        assert_eq!(
            error(&["--dns", "resolver", "busybox"]),
            "resolver is not an ip address"
        );
        assert_eq!(
            error(&["--add-host", "db:nowhere", "busybox"]),
            "invalid IP address in add-host: \"nowhere\""
        );
    }

    #[test]
    fn a_health_check_from_flags() {
        let c = config(&[
            "--health-cmd",
            "true",
            "--health-interval",
            "2s",
            "--health-retries",
            "0",
            "busybox",
        ]);
        let check = c.healthcheck.unwrap();
        assert_eq!(check.test, ["CMD-SHELL", "true"]);
        assert_eq!(
            check.interval, 2_000_000_000,
            "nanoseconds, as docker stores them"
        );
        assert_eq!(check.retries, 1, "at least one try");
        assert!(config(&["busybox"]).healthcheck.is_none());
    }
}
