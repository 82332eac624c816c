//! Starting a container: everything that exists while it runs.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use lab03_cgroups as cgroups;
use lab04_overlay as overlay;
use lab05_netns_veth as net;
use nix::unistd::{pipe2, Pid};

use super::config::{config_of, ContainerConfig};
use super::monitor::Attach;
use super::plan::{plan, Facts, NetworkPlan, Plan, ETC_FILES};
use crate::engine::Engine;
use crate::logs;
use crate::network::{endpoint_json, net_config};
use crate::state::{self, now_rfc3339, Record, Status};
use crate::trace;
use overlay::overlay::is_mounted;

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
    /// The cgroup and device list as lab 03's assembler made them (none
    /// for a rootless engine); `None` after the exec to the small monitor
    /// program and back, when they are found again by name.
    pub(crate) groups: Option<cgroups::Groups>,
    /// The host's cgroups, when the container is in our default parent:
    /// that parent is removed after it if it is then empty.
    pub(crate) default_parent: Option<cgroups::Host>,
}

/// Start the container once: plan it (pure, see the `plan` module), then
/// perform the plan: the overlay root (lab 04), the volumes and `/etc`
/// files, the container itself (lab 03's assembler over labs 01 and 02),
/// its networks (lab 05), and its record.
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

    // Legacy links: /etc/hosts lines and variables, from the linked
    // containers as they run now.
    let linked;
    let config = if config.links.is_empty() {
        config
    } else {
        linked = super::links::with_links(engine, record, config)?;
        &linked
    };
    let mut plan = plan_of(engine, record, config, &dirs.merged)?;
    // --pid, --ipc, --uts, --cgroupns: the namespaces it shares, found now.
    let shared = super::ns_modes::shared(engine, record, config)?;
    super::ns_modes::apply(config, &shared, &mut plan.blueprint);
    // Refuse what lab 03 would refuse (limits this host cannot take...)
    // before anything else exists.
    let host = cgroups::detect()?;
    plan.blueprint.check(&host)?;
    if !engine.rootless || !config.cgroup_parent.is_empty() {
        // A monitor killed with SIGKILL could not take down what it set up:
        // its container's cgroups may still be there (the overlay mount,
        // reused above, too). Nothing runs in them now (the record says the
        // container does not run), so they go before new ones are made.
        cgroups::remove_stale(&host, config.cgroup_parent_or_default(), id)?;
    }
    trace::phase("start: planned");

    // The container's stdio: two pipes the monitor reads (stdout, stderr),
    // or with -t one pseudo-terminal (see `dockyard_monitor::pump`).
    let null = File::open("/dev/null").context("opening /dev/null")?;
    let (mut streams, stdio, keep_until_spawned) = container_stdio(config, attach, &null)?;
    streams.listener = Some(attach_listener(engine, id, attach, &mut streams)?);
    prepare_volumes(engine, &plan, &dirs.merged)?;
    prepare_etc(engine, &plan)?;
    let log = logs::Writer::open(&engine.containers.dir_of(id), plan.log_rotation)?;
    let spec = &mut plan.blueprint.process;
    spec.stdio = Some(stdio);
    if config.tty {
        let ours = match attach {
            Attach::Foreground => dockyard_monitor::pump::our_window_size(),
            _ => None,
        };
        spec.tty_size = ours.or(config.console_size);
    }
    trace::phase("start: built the spec");

    let net_cfg = net_config(engine);
    let mut endpoint = None;
    super::ns_modes::mount_shareable(engine, id, config)?;
    // ANCHOR: net_attach
    let assembled = cgroups::assemble(&host, &plan.blueprint, |pid| {
        trace::phase("start: cgroups joined");
        if let NetworkPlan::Bridge(networks) = &plan.network {
            endpoint = Some(attach_networks(&net_cfg, pid, networks)?);
            trace::phase("start: attached to the network (lab 05)");
        }
        Ok(())
    });
    // ANCHOR_END: net_attach
    let mut running = assembled.inspect_err(|_| super::ns_modes::unmount_shareable(engine, id))?;
    // A file this kernel lacks (a block I/O weight without BFQ): lab 03
    // went on without it, and says so in dockerd's words.
    for warning in running.groups.cgroup.iter().flat_map(|c| &c.warnings) {
        eprintln!("WARNING: {warning}");
    }
    // Our copies of the container's ends: the container has its own now.
    drop((keep_until_spawned, null));
    if let Some(master) = running.process.take_console() {
        // -t: the pty's master, from the container's devpts. What the
        // container prints comes out of it; with -i in the foreground, our
        // keys go into it.
        streams.tty = Some(master.as_raw_fd());
        if config.open_stdin {
            streams.input = Some(master.try_clone().context("dup of the pty master")?);
        }
        streams.outputs.push((master, "stdout"));
    }
    let pid = running.process.pid();
    trace::phase("start: spawned the container (lab 02)");

    let user = plan.blueprint.process.run_as.clone();
    record_running(engine, id, pid, endpoint.as_ref(), user)?;
    let health = start_health_check(engine, id, config, attach)?;
    Ok(Running {
        handles: Handles {
            pid,
            groups: Some(running.groups),
            endpoint: endpoint.is_some(),
            net_cfg,
            default_parent: (config.cgroup_parent.is_empty() && !engine.rootless).then_some(host),
        },
        streams,
        log,
        log_rotation: plan.log_rotation,
        health,
        started: Instant::now(),
    })
}

/// The plan of this start, from what the engine knows (see `plan`).
fn plan_of(
    engine: &Engine,
    record: &Record,
    config: &ContainerConfig,
    rootfs: &Path,
) -> Result<Plan> {
    let rootless = match engine.rootless {
        // Every ID dockyard's own namespace has: 0 (the user) and, with
        // /etc/subuid ranges, 1..=N (see rootless::enter_rootless).
        true => Some((
            crate::rootless::ids_mapped("/proc/self/uid_map")?,
            crate::rootless::ids_mapped("/proc/self/gid_map")?,
        )),
        false => None,
    };
    let container_pid = |other: &str| -> Result<i32> {
        let o = engine
            .containers
            .reconcile(engine.containers.resolve(other)?)?;
        if o.state.status != Status::Running {
            bail!("cannot join the network of container {other}: it is not running");
        }
        Ok(o.state.pid)
    };
    let volume_data = |name: &str| engine.volumes.data(name);
    plan(
        config,
        &Facts {
            id: &record.id,
            name: &record.name,
            rootfs,
            dir: &engine.containers.dir_of(&record.id),
            daemon: &engine.config,
            remap: engine.remap.as_ref(),
            rootless,
            volume_data: &volume_data,
            container_pid: &container_pid,
        },
    )
}

/// The monitor's end of `attach.sock`, where `attach` connects (see the
/// monitor crate). For `run -it` the CLI that started us connects before
/// anything runs, and we wait for it.
fn attach_listener(
    engine: &Engine,
    id: &str,
    attach: Attach,
    streams: &mut dockyard_monitor::pump::Streams,
) -> Result<std::os::unix::net::UnixListener> {
    let listener = dockyard_monitor::attach::listen(&engine.containers.dir_of(id))?;
    if attach == Attach::Waiting {
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
    Ok(listener)
}

/// Seed the container's volumes from the image, as docker's copy-up does:
/// `create` made them (named and anonymous) and marked each that was new
/// or empty, and this first start, with the container's root mounted,
/// copies what the image has at the target into those still empty (moby's
/// `copyExistingContents` copies into an empty volume only: one that
/// another container filled since keeps what it holds). A volume someone
/// removed since `create` is made again here, owned by the container's
/// root, and seeded.
fn prepare_volumes(engine: &Engine, plan: &Plan, rootfs: &Path) -> Result<()> {
    for v in &plan.volumes {
        let (volume, new) = engine
            .volumes
            .create_or_get(&v.name, BTreeMap::new(), v.anonymous)?;
        if (new || volume.copy_up_pending) && engine.volumes.is_empty(&v.name)? {
            if let (Some(r), true) = (&engine.remap, plan.remapped) {
                // A new volume belongs to the container's root, as Docker
                // makes it; later owners are whatever the containers chose.
                r.chown_to_root(&v.data)?;
            }
            // Seeded from the image (whose owners are already shifted
            // under remap), its root then takes the image directory's.
            crate::volumes::copy_up(rootfs, &v.target, &v.data)?;
        }
        if volume.copy_up_pending {
            engine.volumes.copied_up(&v.name)?;
        }
    }
    Ok(())
}

/// The container's own `hosts`, `hostname` and `resolv.conf`, which the
/// plan bind-mounts over the image's: written now when the plan has their
/// text, else created empty for lab 05 to fill.
fn prepare_etc(engine: &Engine, plan: &Plan) -> Result<()> {
    let Some(etc) = &plan.etc else {
        return Ok(());
    };
    if let Some(files) = &etc.files {
        files.write_to(&etc.dir)?;
    }
    std::fs::create_dir_all(&etc.dir).with_context(|| format!("creating {}", etc.dir.display()))?;
    for f in ETC_FILES {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(etc.dir.join(f))?;
        if let (Some(r), true) = (&engine.remap, plan.remapped) {
            // Root inside may edit its /etc/hosts, as without remap.
            r.chown_to_root(&etc.dir.join(f))?;
        }
    }
    Ok(())
}

/// Attach the container `pid` to `networks` (lab 05): the first becomes
/// its `eth0`, the others (`network connect`) `eth1`, `eth2`... If one
/// fails, the container does not start, and takes down what was made for
/// it.
fn attach_networks(
    net_cfg: &net::Config,
    pid: Pid,
    networks: &[net::AttachOptions],
) -> Result<net::Endpoint> {
    let (first, more) = networks
        .split_first()
        .context("a bridge network plan names a network")?;
    let endpoint = net::attach(net_cfg, pid, first)?;
    if let Err(e) = more
        .iter()
        .try_for_each(|opts| net::attach(net_cfg, pid, opts).map(drop))
    {
        let _ = net::detach_all(net_cfg, pid);
        return Err(e);
    }
    Ok(endpoint)
}

/// The record says "running", with the process, its network and whom it
/// started as.
fn record_running(
    engine: &Engine,
    id: &str,
    pid: Pid,
    endpoint: Option<&net::Endpoint>,
    user: Option<lab02_namespaces::RunAs>,
) -> Result<()> {
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
    r.state.network = endpoint.map(endpoint_json);
    r.state.health = None;
    r.state.user = user;
    engine.containers.save(&lock, &r)
}

/// The health checker, if the container has a check: a thread in the
/// foreground; detached, a helper process, since this process becomes the
/// small monitor program, which runs no checks (see the health module).
fn start_health_check(
    engine: &Engine,
    id: &str,
    config: &ContainerConfig,
    attach: Attach,
) -> Result<Option<crate::health::Watch>> {
    let (store, root, id) = (
        engine.containers.clone(),
        engine.root.clone(),
        id.to_string(),
    );
    Ok(match (&config.healthcheck, attach) {
        (None, _) => None,
        (Some(check), Attach::Foreground) => Some(crate::health::Watch::Thread(
            crate::health::Checker::start(store, root, id, check.clone())?,
        )),
        (Some(check), _) => Some(crate::health::Watch::helper(
            store,
            root,
            id,
            check.clone(),
        )?),
    })
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
            groups,
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
        super::ns_modes::unmount_shareable(engine, id);
        let oom = match groups {
            Some(groups) => {
                let oom = groups.oom_killed();
                groups.remove()?;
                oom
            }
            // After the exec to the small program and back, the handles are
            // gone: lab 03 finds the groups again by name.
            None if !engine.rootless || !config.cgroup_parent.is_empty() => {
                cgroups::remove_by_name(&cgroups::detect()?, config.cgroup_parent_or_default(), id)?
            }
            None => false,
        };
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
