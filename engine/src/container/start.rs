//! Starting a container: everything that exists while it runs.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use lab02_namespaces as namespaces;
use lab03_cgroups as cgroups;
use lab04_overlay as overlay;
use lab05_netns_veth as net;
use nix::unistd::{pipe2, Pid};

use super::config::{config_of, ContainerConfig};
use super::create::check_rootless;
use super::exec::run_as;
use super::monitor::Attach;
use super::remove::is_mounted;
use crate::engine::Engine;
use crate::logs;
use crate::network::{endpoint_json, net_config, split_add_host};
use crate::state::{self, now_rfc3339, Record, Status};
use crate::trace;

/// Get a container that is not running ready to start again: clear the
/// "stopped by hand" mark that keeps its restart policy quiet, and record
/// whether its STDIN is attached this time.
pub fn prepare_start(engine: &Engine, id: &str, interactive: bool) -> Result<()> {
    let lock = engine.containers.lock()?;
    let mut r = engine.containers.load(id)?;
    if matches!(r.state.status, Status::Running | Status::Paused) {
        bail!("container {} is already running", &id[..12]);
    }
    r.state.manually_stopped = false;
    r.state.restart_count = 0;
    let mut config = config_of(&r)?;
    config.open_stdin = interactive;
    r.config = serde_json::to_value(&config)?;
    engine.containers.save(&lock, &r)
}

/// A container whose process runs.
pub(crate) struct Running {
    /// The health checker; dropped (stopped, joined) when the container exits.
    pub(crate) health: Option<crate::health::Watch>,
    pub(crate) handles: Handles,
    pub(crate) streams: dockyard_monitor::pump::Streams,
    pub(crate) log: logs::Writer,
    pub(crate) log_rotation: logs::Rotation,
    pub(crate) started: Instant,
}

/// What a start set up on the host, to take down after the exit.
pub(crate) struct Handles {
    /// Whether the container is on a network (lab 05 finds its veths by
    /// its PID).
    pub(crate) endpoint: bool,
    pub(crate) net_cfg: net::Config,
    pub(crate) pid: Pid,
    /// The cgroup and device list as made by this process; None in rootless
    /// mode, or after an exec, when they are found again by name.
    pub(crate) cgroup: Option<cgroups::Cgroup>,
    pub(crate) devices: Option<cgroups::devices::DevicesCgroup>,
    /// The host's cgroups, when the container is in our default parent:
    /// that parent is removed after it if it is then empty.
    pub(crate) default_parent: Option<cgroups::Host>,
}

pub(crate) fn run_once(
    engine: &Engine,
    record: &Record,
    config: &ContainerConfig,
    attach: Attach,
) -> Result<Running> {
    let id = &record.id;
    let layer = engine.layer_container(id)?;

    // The root filesystem: the image's layers under this container's upper
    // dir (lab 04). Mounted in the host's mount namespace, as Docker does, so
    // that `cp`, `diff` and `export` can reach it while the container runs.
    let mut dirs = engine.images.overlay_dirs(&layer)?;
    // A --rm container's upper dir is removed after this one run: no sync
    // of it is worth waiting for (see OverlayDirs::volatile).
    dirs.volatile = config.auto_remove;
    if !is_mounted(&dirs.merged)? {
        overlay::overlay::mount_overlay(&dirs)?;
    }
    trace::phase("start: mounted the overlay (lab 04)");

    // The cgroup, with its limits (lab 03). Rootless, there is none: the
    // host's cgroups are root's (and `check_rootless` refused limits).
    let host = cgroups::detect()?;
    let parent = config.cgroup_parent_or_default();
    let cgroup = if engine.rootless {
        check_rootless(config)?;
        None
    } else {
        let limits = config.limits.to_lab();
        limits.check(host.version(), cgroups::ncpus())?;
        Some(cgroups::Cgroup::create(&host, parent, id, &limits)?)
    };
    trace::phase("start: made the cgroup (lab 03)");

    // The container's stdio: two pipes the monitor reads (stdout, stderr),
    // or with -t one pseudo-terminal (see `dockyard_monitor::pump`).
    let null = File::open("/dev/null").context("opening /dev/null")?;
    let (mut streams, stdio, keep_until_spawned) = container_stdio(config, attach, &null)?;
    // `attach` connects here (see the attach module).
    let listener = dockyard_monitor::attach::listen(&engine.containers.dir_of(id))?;
    if attach == Attach::Waiting {
        // `run -it`: the CLI that started us connects before anything runs.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(c) = dockyard_monitor::attach::Client::accept(&listener) {
                streams.clients.push(c);
                break;
            }
            if Instant::now() > deadline {
                bail!("nobody attached to the container within 30 seconds");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    streams.listener = Some(listener);

    let mut spec = namespaces::Spec::new(
        &dirs.merged,
        config.argv().into_iter().map(OsString::from).collect(),
    );
    spec.env = config.env.iter().map(OsString::from).collect();
    spec.hostname = Some(config.hostname.clone());
    spec.init = config.init;
    spec.stdio = Some(stdio);
    spec.tty = config.tty;
    if config.tty && attach == Attach::Foreground {
        spec.tty_size = dockyard_monitor::pump::our_window_size();
    }
    if !config.working_dir.is_empty() {
        spec.cwd = Some(PathBuf::from(&config.working_dir));
    }
    // ANCHOR: userns
    // Docker runs containers without a user namespace unless userns-remap
    // is configured: root inside is root outside, held in by capabilities,
    // seccomp and the rest (see the security chapter). Image files owned by
    // root must stay root's inside, which a user namespace would not allow.
    //
    // With --userns-remap, each container gets a new user namespace whose
    // uid and gid 0 are the first IDs of the remapped ranges (lab 02 writes
    // the maps), and its image's files were unpacked shifted into those
    // ranges (lab 04), so root inside still owns them. The capabilities
    // Docker's default keeps (CHOWN, DAC_OVERRIDE, SETUID, NET_BIND_SERVICE,
    // ...) then belong to that user namespace: the kernel honours them only
    // on what the namespace owns (its own mount, UTS, IPC and network
    // namespaces, files whose owners are mapped in it). Over a host file
    // owned by root, DAC_OVERRIDE gives nothing: root inside is an
    // unprivileged uid to the host, and an escape lands there. `--userns=host`
    // opts one container out, as in docker.
    //
    // Rootless, dockyard itself is root of a user namespace that maps only
    // the user's uid (as 0), and each container gets a user namespace below
    // it with the same single ID: lab 02's path for user namespaces mounts
    // /proc and /dev as the kernel allows there.
    match &engine.remap {
        Some(r) if config.userns_mode != "host" => {
            spec.user = Some(r.uids);
            spec.group = Some(r.gids);
        }
        _ if engine.rootless => {
            // Every ID dockyard's own namespace has: 0 (the user) and, with
            // /etc/subuid ranges, 1..=N (see userns::enter_rootless).
            spec.user = Some(namespaces::IdMapping {
                host_id: 0,
                count: crate::userns::ids_mapped("/proc/self/uid_map")?.max(1),
            });
            spec.group = Some(namespaces::IdMapping {
                host_id: 0,
                count: crate::userns::ids_mapped("/proc/self/gid_map")?.max(1),
            });
        }
        _ => spec.namespaces -= nix::sched::CloneFlags::CLONE_NEWUSER,
    }
    let remapped = spec
        .namespaces
        .contains(nix::sched::CloneFlags::CLONE_NEWUSER);
    // ANCHOR_END: userns
    // Docker's default cgroupns mode: private on a cgroup v2 host, where the
    // container then sees its own cgroup as `/`; the host's on v1 and hybrid
    // hosts, where a cgroup namespace hides little (each v1 hierarchy would
    // still show its controllers' files).
    if host.version() == cgroups::Version::V1 {
        spec.namespaces -= nix::sched::CloneFlags::CLONE_NEWCGROUP;
    }
    // The network (lab 05). "bridge" and user-defined networks get a veth
    // on a bridge, attached in before_start below; their /etc/hosts,
    // hostname and resolv.conf are files in the container's directory that
    // lab 05 keeps up to date and that are bind-mounted in (inside the
    // root, as every bind), as Docker does.
    // container:NAME names another container; lab 05 joins by PID.
    let network_mode = match config.network_mode.strip_prefix("container:") {
        Some(other) if other.parse::<i32>().is_err() => {
            let o = engine
                .containers
                .reconcile(engine.containers.resolve(other)?)?;
            if o.state.status != Status::Running {
                bail!("cannot join the network of container {other}: it is not running");
            }
            format!("container:{}", o.state.pid)
        }
        _ => config.network_mode.clone(),
    };
    let mode: net::NetworkMode = network_mode
        .parse()
        .map_err(|e: String| anyhow!("--network {}: {e}", config.network_mode))?;
    let dns = net::names::Dns {
        servers: config.dns.clone(),
        search: config.dns_search.clone(),
        options: config.dns_options.clone(),
    };
    // daemon.json's dns and dns-search, where the flags say nothing.
    let dns = net::names::Dns {
        servers: match dns.servers.is_empty() {
            true => engine.config.dns.clone(),
            false => dns.servers,
        },
        search: match dns.search.is_empty() {
            true => engine.config.dns_search.clone(),
            false => dns.search,
        },
        options: dns.options,
    };
    let extra_hosts = config
        .extra_hosts
        .iter()
        .map(|h| split_add_host(h))
        .collect::<Result<Vec<_>>>()?;
    let etc = engine.containers.dir_of(id).join("etc");
    // ANCHOR: network_mode
    let bridge = match &mode {
        net::NetworkMode::None => {
            // With --dns or --add-host, a container without a network
            // still gets its own hosts and resolv.conf, as in docker.
            if dns != net::names::Dns::default() || !extra_hosts.is_empty() {
                let extra = net::extra_hosts_without_bridge(&extra_hosts)?;
                net::etc_files_without_bridge(&mode, &config.hostname, &dns, &extra)
                    .write_to(&etc)?;
                bind_etc_files(&mut spec, &etc, engine.remap.as_ref().filter(|_| remapped))?;
            }
            None
        }
        net::NetworkMode::Host => {
            spec.namespaces -= nix::sched::CloneFlags::CLONE_NEWNET;
            None
        }
        net::NetworkMode::Container(pid) => {
            // Share another container's network namespace: enter it here, and
            // let the child inherit it instead of making its own.
            net::join_netns_of(*pid)?;
            spec.namespaces -= nix::sched::CloneFlags::CLONE_NEWNET;
            None
        }
        net::NetworkMode::Bridge(name) => {
            bind_etc_files(&mut spec, &etc, engine.remap.as_ref().filter(|_| remapped))?;
            let mut publish = Vec::new();
            for p in &config.publish {
                publish.push(
                    p.parse::<net::ports::PortSpec>()
                        .map_err(|e| anyhow!("-p {p}: {e}"))?,
                );
            }
            if config.publish_all {
                for e in &config.exposed {
                    publish.push(
                        e.parse::<net::ports::PortSpec>()
                            .map_err(|x| anyhow!("exposed port {e}: {x}"))?,
                    );
                }
            }
            Some(net::AttachOptions {
                network: name.clone(),
                // Only the default network is made on first use; others
                // come from `network create`.
                must_exist: name != net::DEFAULT_NETWORK,
                name: Some(record.name.clone()),
                hostname: config.hostname.clone(),
                publish,
                etc_dir: Some(etc),
                ip: config
                    .ip
                    .as_deref()
                    .map(|i| i.parse().map_err(|_| anyhow!("invalid IP address {i:?}")))
                    .transpose()?,
                aliases: config.network_aliases.clone(),
                container_id: Some(id.to_string()),
                extra_hosts,
                dns,
                ..Default::default()
            })
        }
    };
    // ANCHOR_END: network_mode

    spec.security = Some(config.security()?);
    spec.run_as = run_as(&dirs.merged, &config.user)?;
    spec.rlimits = config
        .ulimits
        .iter()
        .map(|u| namespaces::parse_ulimit(u))
        .collect::<Result<_>>()?;
    // Volumes and binds (lab 02 mounts them inside the root, safely). A
    // named volume is created on first use, as docker does.
    // ANCHOR: binds
    for m in &config.mounts {
        let source = if m.kind == "volume" {
            let (_, new) = engine
                .volumes
                .create_or_get(&m.source, BTreeMap::new(), m.anonymous)?;
            let data = engine.volumes.data(&m.source);
            if new {
                if let (Some(r), true) = (&engine.remap, remapped) {
                    // A new volume belongs to the container's root, as Docker
                    // makes it; later owners are whatever the containers chose.
                    r.chown_to_root(&data)?;
                }
                // Seeded from the image (whose owners are already shifted
                // under remap), its root then takes the image directory's.
                crate::volumes::copy_up(&dirs.merged, Path::new(&m.target), &data)?;
            }
            data
        } else {
            PathBuf::from(&m.source)
        };
        spec.binds.push(namespaces::Bind {
            source,
            target: PathBuf::from(&m.target),
            read_only: m.read_only,
        });
    }
    // ANCHOR_END: binds
    // The device allow list: Docker's default rules (lab 03), in a v1
    // `devices` cgroup beside the others, or on a pure v2 host as an eBPF
    // program attached to the container's group, made above.
    // --privileged allows every device, as Docker's does.
    let devices = if config.privileged || engine.rootless {
        None
    } else {
        cgroups::devices::DevicesCgroup::docker_default(parent, id)?
    };

    let log_rotation = logs::rotation_from_opts(
        config
            .log_opts
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str())),
    )?;
    let log = logs::Writer::open(&engine.containers.dir_of(id), log_rotation)?;
    // The first process enters its cgroups by itself (lab 03's `Entry`):
    // born in its v2 group, or moving its only thread into each v1 one.
    // Writing its PID afterwards, from here, would wait for an RCU grace
    // period.
    let joining = cgroups::Joining::prepare(&mut spec, cgroup.as_ref(), devices.as_ref())?;
    trace::phase("start: built the spec");
    let mut endpoint = None;
    let net_cfg = net_config(engine);
    // ANCHOR: net_attach
    let mut container = namespaces::spawn(&spec, |pid| {
        joining.before_start(pid.as_raw())?;
        if let Some(opts) = &bridge {
            trace::phase("start: cgroups joined");
            endpoint = Some(net::attach(&net_cfg, pid, opts)?);
            trace::phase("start: attached to the network (lab 05)");
            // Then the networks `network connect` added: eth1, eth2...
            // If one fails, the container does not start, and takes down
            // what was made for it.
            let more = config.connected.iter().try_for_each(|c| {
                let ip =
                    c.ip.as_deref()
                        .map(|i| i.parse().map_err(|_| anyhow!("invalid IP address {i:?}")))
                        .transpose()?;
                let extra = net::AttachOptions {
                    network: c.network.clone(),
                    must_exist: c.network != net::DEFAULT_NETWORK,
                    ip,
                    aliases: c.aliases.clone(),
                    publish: Vec::new(),
                    ..opts.clone()
                };
                net::attach(&net_cfg, pid, &extra).map(drop)
            });
            if let Err(e) = more {
                let _ = net::detach_all(&net_cfg, pid);
                return Err(e);
            }
        }
        Ok(())
    })?;
    // ANCHOR_END: net_attach
    // Our copies of the container's ends: the container has its own now.
    drop((keep_until_spawned, null, joining));
    if let Some(master) = container.take_console() {
        // -t: the pty's master, from the container's devpts. What the
        // container prints comes out of it; with -i in the foreground, our
        // keys go into it.
        streams.tty = Some(master.as_raw_fd());
        if config.open_stdin {
            streams.input = Some(master.try_clone().context("dup of the pty master")?);
        }
        streams.outputs.push((master, "stdout"));
    }
    let pid = container.pid();
    trace::phase("start: spawned the container (lab 02)");

    let lock = engine.containers.lock()?;
    let mut r = engine.containers.load(id)?;
    r.state.status = Status::Running;
    r.state.pid = pid.as_raw();
    r.state.pid_start_time = state::process_start_time(pid.as_raw()).unwrap_or(0);
    r.state.monitor_pid = std::process::id() as i32;
    r.state.started_at = now_rfc3339();
    r.state.finished_at = state::ZERO_TIME.into();
    r.state.exit_code = 0;
    r.state.oom_killed = false;
    r.state.error.clear();
    r.state.network = endpoint.as_ref().map(endpoint_json);
    r.state.health = None;
    engine.containers.save(&lock, &r)?;
    drop(lock);
    let (store, root, id) = (
        engine.containers.clone(),
        engine.root.clone(),
        id.to_string(),
    );
    let health = match (&config.healthcheck, attach) {
        (None, _) => None,
        (Some(check), Attach::Foreground) => Some(crate::health::Watch::Thread(
            crate::health::Checker::start(store, root, id, check.clone())?,
        )),
        // Detached, this process becomes the small monitor program, which
        // runs no checks: a helper process does (see the health module).
        (Some(check), _) => Some(crate::health::Watch::helper(
            store,
            root,
            id,
            check.clone(),
        )?),
    };
    Ok(Running {
        handles: Handles {
            pid,
            cgroup,
            devices,
            endpoint: endpoint.is_some(),
            net_cfg,
            default_parent: (config.cgroup_parent.is_empty() && !engine.rootless).then_some(host),
        },
        streams,
        log,
        log_rotation,
        health,
        started: Instant::now(),
    })
}

impl Handles {
    /// Take down what the start set up, once the container has exited;
    /// return whether the OOM killer struck.
    pub(crate) fn release(
        self,
        engine: &Engine,
        id: &str,
        config: &ContainerConfig,
    ) -> Result<bool> {
        let Handles {
            endpoint,
            net_cfg,
            pid,
            cgroup,
            devices,
            default_parent,
        } = self;
        // Give back the port rules and the leases (lab 05): of its first
        // network and of those `network connect` added. The veths are the
        // kernel's to delete, with the container's network namespace; their
        // addresses come back once they are gone (see lab 05's `release`).
        // ANCHOR: net_detach
        if endpoint {
            if let Err(e) = net::detach_all(&net_cfg, pid) {
                eprintln!("dockyard: detaching container {id} from its networks: {e:#}");
            }
        }
        // ANCHOR_END: net_detach
        trace::phase("exit: released its network (lab 05)");
        let parent = config.cgroup_parent_or_default();
        let mut oom = false;
        match cgroup {
            Some(mut cgroup) => {
                oom = cgroup.oom_killed();
                cgroup.destroy()?;
            }
            // After the exec to the small program and back, the handles are
            // gone: the group is found again by name, in every hierarchy
            // (the v1 device list's included, and on v2 removing the group
            // detaches its device program).
            None if !engine.rootless => {
                let host = cgroups::detect()?;
                oom = cgroups::Cgroup::open(&host, parent, id).is_ok_and(|c| c.oom_killed());
                cgroups::remove_group(&host, parent, id)?;
            }
            None => {}
        }
        if let Some(d) = devices {
            d.remove()?;
        }
        // Our default parent goes with the last container in it, so that a
        // plain `run --rm` leaves no cgroup of ours behind. A parent given
        // with --cgroup-parent is the user's: left alone.
        if let Some(host) = default_parent {
            cgroups::remove_parent_if_empty(&host, cgroups::DEFAULT_PARENT)?;
        }
        trace::phase("exit: removed its cgroups (lab 03)");
        Ok(oom)
    }
}

/// The container's stdin, stdout and stderr, the monitor's ends of them,
/// and our copies of the container's ends (to close once it has its own).
#[allow(clippy::type_complexity)]
pub(crate) fn container_stdio(
    config: &ContainerConfig,
    attach: Attach,
    null: &File,
) -> Result<(dockyard_monitor::pump::Streams, [i32; 3], Vec<OwnedFd>)> {
    // With -t the container makes its own pty (lab 02) and sends us the
    // master after spawn; these pipes carry only what it says before that
    // (a setup error), and stdin is /dev/null until the pty replaces it.
    let (out_r, out_w) = pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("pipe2 for stdout")?;
    let (err_r, err_w) = pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("pipe2 for stderr")?;
    let mut keep = vec![out_w, err_w];
    // -i without -t: a pipe the monitor writes into, from our stdin in the
    // foreground, and from attached clients (`attach`) in any case.
    let (stdin, input) = if config.open_stdin && !config.tty {
        let (r, w) = pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("pipe2 for stdin")?;
        (r, Some(w))
    } else {
        (null.try_clone().context("dup of /dev/null")?.into(), None)
    };
    let fds = [stdin.as_raw_fd(), keep[0].as_raw_fd(), keep[1].as_raw_fd()];
    keep.push(stdin);
    let streams = dockyard_monitor::pump::Streams {
        outputs: vec![(out_r, "stdout"), (err_r, "stderr")],
        input,
        own_stdin: attach == Attach::Foreground && config.open_stdin,
        tty: None,
        listener: None,
        clients: Vec::new(),
    };
    Ok((streams, fds, keep))
}

/// Bind-mount the container's own `hosts`, `hostname` and `resolv.conf`
/// from `etc` (created empty if need be) over the image's.
fn bind_etc_files(
    spec: &mut namespaces::Spec,
    etc: &Path,
    remap: Option<&crate::userns::Remap>,
) -> Result<()> {
    std::fs::create_dir_all(etc).with_context(|| format!("creating {}", etc.display()))?;
    for f in ["hosts", "hostname", "resolv.conf"] {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(etc.join(f))?;
        if let Some(r) = remap {
            // Root inside may edit its /etc/hosts, as without remap.
            r.chown_to_root(&etc.join(f))?;
        }
        spec.binds.push(namespaces::Bind {
            source: etc.join(f),
            target: PathBuf::from("/etc").join(f),
            read_only: false,
        });
    }
    Ok(())
}
