//! `lab05-netns-veth`: run a command in new namespaces, on a network.
//!
//! The mechanism lives in the library (`lab05_netns_veth`); this is only its
//! front end. Everything is done in the network namespace this program runs
//! in: run it under `unshare --net` (or `nsenter --net=...`) to try it
//! without touching the machine's own network.

use std::ffi::OsString;
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use lab02_namespaces as lab02;
use lab05_netns_veth::ipam::{Cidr, Pool};
use lab05_netns_veth::ports::PortSpec;
use lab05_netns_veth::{self as lab05, AttachOptions, Config, NetworkMode};

/// Run CMD with DIR as its root, in new namespaces (as lab 02), on a
/// network: a veth pair to a bridge, an address, NAT and published ports.
///
/// The exit status is the command's, or 128+N if signal N killed it; 125,
/// 126 and 127 as in docker run.
#[derive(Parser, Debug)]
#[command(
    name = "lab05-netns-veth",
    version,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Sub>,

    #[command(flatten)]
    state: StateArgs,

    #[command(flatten)]
    run: RunArgs,
}

#[derive(clap::Args, Debug)]
struct StateArgs {
    /// Where the networks' leases and rules are recorded.
    #[arg(long, value_name = "DIR", env = "DOCKYARD_NET_STATE", default_value = lab05::DEFAULT_STATE_DIR, global = true)]
    state_dir: PathBuf,
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// The root filesystem: a directory holding the image's files.
    #[arg(long, value_name = "DIR", required = true)]
    rootfs: Option<PathBuf>,

    /// none, host, bridge (the default), container:PID, or the name of a
    /// user-defined network (created on first use; its members resolve each
    /// other by name).
    #[arg(long, value_name = "MODE", default_value = "bridge")]
    network: NetworkMode,

    /// The container's name, which its peers on a user-defined network resolve.
    #[arg(long, value_name = "NAME")]
    name: Option<String>,

    /// Its hostname (default: the name, else a random 12-hex ID, as docker's).
    #[arg(long, value_name = "NAME")]
    hostname: Option<String>,

    /// A fixed address instead of the next free one.
    #[arg(long, value_name = "IP")]
    ip: Option<std::net::Ipv4Addr>,

    /// Publish a port: [IP:][HOST_PORT:]CONTAINER_PORT[/tcp|/udp].
    #[arg(short = 'p', long = "publish", value_name = "SPEC")]
    publish: Vec<PortSpec>,

    /// A port the image exposes (as EXPOSE): PORT[/tcp|/udp].
    #[arg(long, value_name = "PORT")]
    expose: Vec<PortSpec>,

    /// Publish every --expose'd port on a random host port.
    #[arg(short = 'P', long = "publish-all")]
    publish_all: bool,

    /// The bridge interface, for a network created now.
    #[arg(long, value_name = "IFNAME")]
    bridge: Option<String>,

    /// The subnet, for a user-defined network created now.
    #[arg(long, value_name = "CIDR")]
    subnet: Option<Cidr>,

    /// The default network's gateway address and subnet (daemon.json's bip).
    #[arg(long, value_name = "CIDR")]
    bip: Option<Cidr>,

    /// Where new networks' subnets come from (daemon.json's
    /// default-address-pools), BASE/PREFIX:SIZE; repeatable.
    #[arg(long = "default-address-pool", value_name = "POOL")]
    pools: Vec<Pool>,

    /// More names for it on the network (as docker run --network-alias).
    #[arg(long = "network-alias", value_name = "NAME")]
    aliases: Vec<String>,

    /// A nameserver for its resolv.conf (replaces the host's); repeatable.
    #[arg(long, value_name = "IP")]
    dns: Vec<String>,

    /// A search domain for its resolv.conf; repeatable.
    #[arg(long = "dns-search", value_name = "DOMAIN")]
    dns_search: Vec<String>,

    /// A resolver option for its resolv.conf (e.g. ndots:2); repeatable.
    #[arg(long = "dns-option", value_name = "OPT")]
    dns_option: Vec<String>,

    /// An /etc/hosts entry NAME:IP (IP may be host-gateway); repeatable.
    #[arg(long = "add-host", value_name = "NAME:IP")]
    add_host: Vec<String>,

    /// Share the host's user IDs (no user namespace); root only.
    #[arg(long)]
    no_user: bool,

    /// The command and its arguments, after `--`.
    #[arg(last = true, value_name = "CMD")]
    command: Vec<OsString>,
}

#[derive(Subcommand, Debug)]
enum Sub {
    /// Release the leases, veths and rules of containers that are gone.
    Gc,
    /// List the networks and their containers.
    Ls,
    /// Create a network now, and keep it until `rm`.
    Create {
        name: String,
        /// Its subnet (default: the first free one of the pools).
        #[arg(long, value_name = "CIDR")]
        subnet: Option<Cidr>,
        /// Its gateway, the bridge's address (default: the subnet's first).
        #[arg(long, value_name = "IP")]
        gateway: Option<std::net::Ipv4Addr>,
        /// The bridge interface (default: dy-NAME).
        #[arg(long, value_name = "IFNAME")]
        bridge: Option<String>,
        /// The MTU of its veths.
        #[arg(long)]
        mtu: Option<u32>,
        /// No route out: its members reach only each other.
        #[arg(long)]
        internal: bool,
    },
    /// Remove a network no container is on.
    Rm { name: String },
    /// Connect the running container whose first process is PID to one
    /// more network (its next ethN).
    Connect {
        network: String,
        pid: i32,
        /// More names for it there.
        #[arg(long = "alias", value_name = "NAME")]
        aliases: Vec<String>,
        /// A fixed address.
        #[arg(long, value_name = "IP")]
        ip: Option<std::net::Ipv4Addr>,
    },
    /// Take the container whose first process is PID off a network.
    Disconnect { network: String, pid: i32 },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 125 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let result = match &cli.command {
        Some(Sub::Gc) => gc(&cli),
        Some(Sub::Ls) => ls(&cli),
        Some(Sub::Create {
            name,
            subnet,
            gateway,
            bridge,
            mtu,
            internal,
        }) => {
            let opts = lab05::NetworkOptions {
                name: name.clone(),
                subnet: *subnet,
                gateway: *gateway,
                bridge: bridge.clone(),
                mtu: *mtu,
                internal: *internal,
                persistent: true,
                ..Default::default()
            };
            lab05::create(&config(&cli), &opts).map(|n| {
                println!("{} {} {}", n.name, n.bridge, n.subnet);
                0
            })
        }
        Some(Sub::Rm { name }) => lab05::remove(&config(&cli), name).map(|()| 0),
        Some(Sub::Connect {
            network,
            pid,
            aliases,
            ip,
        }) => connect(&cli, network, *pid, aliases, *ip),
        Some(Sub::Disconnect { network, pid }) => {
            let pid = nix::unistd::Pid::from_raw(*pid);
            lab05::disconnect(&config(&cli), network, pid).map(|()| 0)
        }
        None => run(&cli),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("lab05-netns-veth: {e:#}");
            ExitCode::from(125)
        }
    }
}

fn config(cli: &Cli) -> Config {
    let mut cfg = Config {
        state_dir: cli.state.state_dir.clone(),
        bip: cli.run.bip,
        ..Config::default()
    };
    if !cli.run.pools.is_empty() {
        cfg.pools = cli.run.pools.clone();
    }
    cfg
}

/// Connect a running container: its hostname and /etc come from the lease
/// it already has on another network, if any.
fn connect(
    cli: &Cli,
    network: &str,
    pid: i32,
    aliases: &[String],
    ip: Option<std::net::Ipv4Addr>,
) -> anyhow::Result<u8> {
    let cfg = config(cli);
    let known = lab05::networks(&cfg)?
        .into_iter()
        .flat_map(|n| n.leases)
        .find(|l| l.pid == pid);
    let opts = AttachOptions {
        network: network.to_string(),
        must_exist: true,
        ip,
        aliases: aliases.to_vec(),
        name: known.as_ref().and_then(|l| l.name.clone()),
        hostname: known
            .as_ref()
            .map_or_else(|| pid.to_string(), |l| l.hostname.clone()),
        etc_dir: known.and_then(|l| l.etc_dir),
        ..Default::default()
    };
    let ep = lab05::attach(&cfg, nix::unistd::Pid::from_raw(pid), &opts)?;
    println!("{} {} {}/{}", ep.network, ep.ifname, ep.ip, ep.prefix);
    Ok(0)
}

fn gc(cli: &Cli) -> anyhow::Result<u8> {
    for c in lab05::gc(&config(cli))? {
        println!("released {} on {} (pid {} is gone)", c.ip, c.network, c.pid);
    }
    Ok(0)
}

fn ls(cli: &Cli) -> anyhow::Result<u8> {
    println!(
        "{:<12} {:<16} {:<18} {:<16} {:<8} NAME",
        "NETWORK", "BRIDGE", "SUBNET", "IP", "PID"
    );
    for net in lab05::networks(&config(cli))? {
        for l in &net.leases {
            println!(
                "{:<12} {:<16} {:<18} {:<16} {:<8} {}",
                net.name,
                net.bridge,
                net.subnet.to_string(),
                l.ip.to_string(),
                l.pid,
                l.name.as_deref().unwrap_or("-")
            );
        }
    }
    Ok(0)
}

/// Twelve hex digits from the kernel's random pool, like a short container ID.
fn random_id() -> anyhow::Result<String> {
    let mut bytes = [0u8; 6];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| anyhow::anyhow!("reading /dev/urandom: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn run(cli: &Cli) -> anyhow::Result<u8> {
    let args = &cli.run;
    let rootfs = args.rootfs.clone().unwrap_or_default();
    if args.command.is_empty() {
        anyhow::bail!("no command given (put it after --)");
    }
    let bridged = matches!(args.network, NetworkMode::Bridge(_));
    if !bridged && (!args.publish.is_empty() || args.publish_all || args.ip.is_some()) {
        anyhow::bail!("-p, -P and --ip need a bridge network (--network bridge or NAME)");
    }
    let hostname = match (&args.hostname, &args.name) {
        (Some(h), _) | (None, Some(h)) => h.clone(),
        (None, None) => random_id()?,
    };

    let mut spec = lab02::Spec::new(&rootfs, args.command.clone());
    spec.hostname = Some(hostname.clone());
    let mut base = lab02::DEFAULT_NAMESPACES;
    if args.no_user {
        base.remove(nix::sched::CloneFlags::CLONE_NEWUSER);
    }
    spec.namespaces = args.network.namespaces(base);
    let etc = rootfs.join("etc");

    let mut publish = args.publish.clone();
    if args.publish_all {
        publish.extend(
            args.expose
                .iter()
                .map(|e| PortSpec::exposed(e.container_port, e.proto)),
        );
    }

    let dns = lab05::names::Dns {
        servers: args.dns.clone(),
        search: args.dns_search.clone(),
        options: args.dns_option.clone(),
    };
    let mut add_hosts = Vec::new();
    for h in &args.add_host {
        let (name, ip) = h
            .split_once(':')
            .with_context(|| format!("--add-host {h:?}: expected NAME:IP"))?;
        add_hosts.push((name.to_string(), ip.to_string()));
    }
    let cfg = config(cli);
    let mut endpoint = None;
    match &args.network {
        NetworkMode::Container(pid) => lab05::join_netns_of(*pid)?,
        NetworkMode::None | NetworkMode::Host => {
            let extra = lab05::extra_hosts_without_bridge(&add_hosts)?;
            lab05::etc_files_without_bridge(&args.network, &hostname, &dns, &extra)
                .write_to(&etc)?
        }
        NetworkMode::Bridge(_) => {}
    }
    let container = lab02::spawn(&spec, |pid| {
        if let NetworkMode::Bridge(network) = &args.network {
            let opts = AttachOptions {
                network: network.clone(),
                bridge: args.bridge.clone(),
                subnet: args.subnet,
                ip: args.ip,
                name: args.name.clone(),
                hostname: hostname.clone(),
                publish: publish.clone(),
                etc_dir: Some(etc.clone()),
                aliases: args.aliases.clone(),
                extra_hosts: add_hosts.clone(),
                dns: dns.clone(),
                ..Default::default()
            };
            let ep = lab05::attach(&cfg, pid, &opts)?;
            for port in &ep.ports {
                eprintln!("{port}");
            }
            endpoint = Some(ep);
        }
        Ok(())
    })?;
    let status = container.wait_forwarding(&lab02::FORWARDED_SIGNALS);
    let detached = endpoint
        .as_ref()
        .map_or(Ok(()), |ep| lab05::detach(&cfg, ep));
    let status = status?;
    detached?;
    Ok(status.code() as u8)
}
