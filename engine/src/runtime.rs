//! The life of a container: create it, start it under a monitor, wait for
//! it, clean up after it. Every kernel mechanism comes from a lab:
//!
//! - the image store and the overlay root filesystem from lab 04;
//! - the cgroup and its limits from lab 03;
//! - the namespaces, pivot_root and the process itself from lab 02 (and,
//!   through it, lab 01).
//!
//! What the engine adds is the **monitor**, the process that stands between
//! the CLI and the container, as conmon does for podman:
//!
//! ```text
//! dockyard run -d ──fork──> monitor ──clone──> container (PID 1 inside)
//!      │                       │  owns stdout/stderr pipes -> json-file log
//!      └─ prints the ID,       │  reaps the container, records its exit code
//!         exits                │  applies --rm and --restart
//! ```
//!
//! Because the monitor, not the CLI, is the container's parent, `run -d`
//! can return at once and the container outlives it. In the foreground the
//! CLI process *is* the monitor, and also copies the output to the terminal.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::File;
use std::io::{BufRead, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, pipe2, setsid, ForkResult, Pid};
use serde::{Deserialize, Serialize};

use cgroups::lab02_namespaces as namespaces;
use lab05_netns_veth as net;
use net::lab04_overlay as overlay;
use overlay::lab03_cgroups as cgroups;

use crate::config::DaemonConfig;
use crate::logs;
use crate::state::{self, now_rfc3339, Record, Status};
use crate::trace;

pub use cgroups::Version as CgroupVersion;
pub use overlay::store::Image;

/// The host's cgroup layout (lab 03).
pub fn cgroup_host() -> Result<cgroups::Host> {
    cgroups::detect()
}

/// Parse a size as `docker run --memory` does (lab 03's parser: 32m, 1g, bytes).
pub fn lab03_size(s: &str) -> Result<u64> {
    cgroups::parse_size(s)
}

/// Load a docker-archive or OCI archive into the engine's store (lab 04).
pub fn load_archive(engine: &Engine, input: impl Read) -> Result<Vec<String>> {
    overlay::archive::load_archive(&engine.images, input)
}

/// Everything a container was created with: what `docker inspect` shows
/// under `Config` and `HostConfig`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ContainerConfig {
    /// The image as the user named it (`busybox`).
    pub image: String,
    /// The image's config digest: docker's image ID.
    pub image_id: String,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: String,
    pub hostname: String,
    pub labels: BTreeMap<String, String>,
    pub stop_signal: String,
    pub auto_remove: bool,
    pub restart: RestartPolicy,
    pub limits: Limits,
    pub cgroup_parent: String,
    pub network_mode: String,
    pub init: bool,
    pub open_stdin: bool,
    pub log_opts: BTreeMap<String, String>,
    #[serde(default)]
    pub privileged: bool,
    #[serde(default)]
    pub cap_add: Vec<String>,
    #[serde(default)]
    pub cap_drop: Vec<String>,
    #[serde(default)]
    pub security_opt: Vec<String>,
    #[serde(default)]
    pub read_only: bool,
    #[serde(default)]
    pub tmpfs: Vec<String>,
}

impl ContainerConfig {
    /// The security layer (lab 02) this container runs under: Docker's
    /// defaults (its capability list, seccomp profile, masked and read-only
    /// paths) plus no-new-privileges, adjusted by the flags.
    pub fn security(&self) -> Result<namespaces::security::Security> {
        use namespaces::security::Security;
        let mut sec = if self.privileged {
            Security::privileged()
        } else {
            Security::docker_default()
        };
        sec.cap_add = self.cap_add.clone();
        sec.cap_drop = self.cap_drop.clone();
        for opt in &self.security_opt {
            sec.apply_opt(opt)?;
        }
        sec.read_only_rootfs = self.read_only;
        sec.tmpfs = self
            .tmpfs
            .iter()
            .map(|t| t.parse().map_err(|e: String| anyhow!("--tmpfs {t}: {e}")))
            .collect::<Result<_>>()?;
        Ok(sec)
    }
}

impl ContainerConfig {
    /// ENTRYPOINT followed by CMD: what actually runs.
    pub fn argv(&self) -> Vec<String> {
        self.entrypoint.iter().chain(&self.cmd).cloned().collect()
    }
}

/// The resource limits, as given (docker's units), so inspect can show them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    pub cpus: Option<f64>,
    pub cpu_shares: Option<u64>,
    pub memory: Option<u64>,
    pub memory_swap: Option<i64>,
    pub pids: Option<i64>,
}

impl Limits {
    fn to_lab(&self) -> cgroups::Limits {
        cgroups::Limits {
            cpus: self.cpus,
            cpu_shares: self.cpu_shares,
            cpu_weight: None,
            memory: self.memory,
            memory_swap: self.memory_swap,
            pids: self.pids,
        }
    }
}

/// `--restart`: docker's four policies.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "Name", content = "MaximumRetryCount")]
pub enum RestartPolicy {
    #[default]
    #[serde(rename = "no")]
    No,
    #[serde(rename = "always")]
    Always,
    #[serde(rename = "on-failure")]
    OnFailure(u32),
    #[serde(rename = "unless-stopped")]
    UnlessStopped,
}

impl std::str::FromStr for RestartPolicy {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.split_once(':') {
            None if s == "no" || s.is_empty() => RestartPolicy::No,
            None if s == "always" => RestartPolicy::Always,
            None if s == "unless-stopped" => RestartPolicy::UnlessStopped,
            None if s == "on-failure" => RestartPolicy::OnFailure(0),
            Some(("on-failure", n)) => RestartPolicy::OnFailure(n.parse().map_err(|_| {
                anyhow!("invalid restart policy {s:?}: maximum retry count must be a number")
            })?),
            Some(("always" | "unless-stopped" | "no", _)) => {
                bail!("invalid restart policy {s:?}: maximum retry count can only be used with 'on-failure'")
            }
            _ => bail!(
                "invalid restart policy {s:?}: use no, always, on-failure[:N] or unless-stopped"
            ),
        })
    }
}

impl RestartPolicy {
    pub fn name(&self) -> &'static str {
        match self {
            RestartPolicy::No => "no",
            RestartPolicy::Always => "always",
            RestartPolicy::OnFailure(_) => "on-failure",
            RestartPolicy::UnlessStopped => "unless-stopped",
        }
    }

    /// Whether a container that exited with `code`, after `restarts`
    /// restarts, starts again. A container stopped by `dockyard stop` never
    /// restarts.
    pub fn should_restart(&self, code: i32, restarts: u32, manually_stopped: bool) -> bool {
        if manually_stopped {
            return false;
        }
        match self {
            RestartPolicy::No => false,
            RestartPolicy::Always | RestartPolicy::UnlessStopped => true,
            RestartPolicy::OnFailure(max) => code != 0 && (*max == 0 || restarts < *max),
        }
    }
}

/// One data root: its containers' state and its image store.
pub struct Engine {
    pub root: PathBuf,
    pub config: DaemonConfig,
    pub containers: state::Store,
    pub images: overlay::store::Store,
}

impl Engine {
    pub fn open(root: PathBuf, config: DaemonConfig) -> Result<Engine> {
        std::fs::create_dir_all(&root)
            .with_context(|| format!("creating data root {}", root.display()))?;
        // The image store and the containers share the data root: lab 04
        // keeps each container's upper/work/merged dirs in
        // containers/<id>/, and the engine its state.json beside them.
        let images = overlay::store::Store::open(&root)?;
        let containers = state::Store::open(&root)?;
        Ok(Engine {
            root,
            config,
            containers,
            images,
        })
    }

    /// The lab 04 view of a container (its overlay directories).
    pub fn layer_container(&self, id: &str) -> Result<overlay::container::Container> {
        self.images.container(id)
    }
}

/// Create a container: its writable layer and its record, state "created".
pub fn create(engine: &Engine, name: Option<&str>, mut config: ContainerConfig) -> Result<Record> {
    let image = engine
        .images
        .image(&config.image)
        .map_err(|e| anyhow!("Unable to find image '{}' locally: {e:#}", config.image))?;
    config.image_id = image.config_digest.clone();
    // The image's defaults, under what the user gave.
    if let Some(ic) = image.config.config() {
        if config.entrypoint.is_empty() && config.cmd.is_empty() {
            config.cmd = ic.cmd().clone().unwrap_or_default();
        }
        if config.entrypoint.is_empty() {
            config.entrypoint = ic.entrypoint().clone().unwrap_or_default();
        }
        let mut env = ic.env().clone().unwrap_or_default();
        for kv in std::mem::take(&mut config.env) {
            let key = kv.split('=').next().unwrap_or_default().to_string();
            env.retain(|e| e.split('=').next() != Some(key.as_str()));
            env.push(kv);
        }
        config.env = env;
        if config.working_dir.is_empty() {
            config.working_dir = ic.working_dir().clone().unwrap_or_default();
        }
        if config.stop_signal.is_empty() {
            config.stop_signal = ic.stop_signal().clone().unwrap_or_default();
        }
        for (k, v) in ic.labels().clone().unwrap_or_default() {
            config.labels.entry(k).or_insert(v);
        }
    }
    trace::phase("create: found the image");
    if config.argv().is_empty() {
        bail!("no command specified");
    }
    if !config.env.iter().any(|e| e.starts_with("PATH=")) {
        config.env.insert(
            0,
            format!("PATH={}", namespaces::lab01_chroot::DEFAULT_PATH),
        );
    }

    let lock = engine.containers.lock()?;
    let existing = engine.containers.list()?;
    let name = match name {
        Some(n) => {
            state::validate_name(n)?;
            let n = n.trim_start_matches('/').to_string();
            if let Some(other) = existing.iter().find(|r| r.name == n) {
                bail!(
                    "Conflict. The container name \"/{n}\" is already in use by container \"{}\". \
                     You have to remove (or rename) that container to be able to reuse that name.",
                    other.id
                );
            }
            n
        }
        None => state::random_name(|n| existing.iter().any(|r| r.name == n))?,
    };
    trace::phase("create: locked, listed the containers");
    let layer = engine.images.create_container(&image)?;
    trace::phase("create: made the writable layer (lab 04)");
    if config.hostname.is_empty() {
        config.hostname = layer.id[..12].to_string();
    }
    let record = Record {
        id: layer.id.clone(),
        name,
        created: now_rfc3339(),
        state: state::State::default(),
        config: serde_json::to_value(&config).context("serializing the container's config")?,
    };
    if let Err(e) = engine.containers.save(&lock, &record) {
        let _ = engine.images.remove_container(&layer);
        return Err(e);
    }
    trace::phase("create: saved the record");
    Ok(record)
}

/// The config stored in a record.
pub fn config_of(record: &Record) -> Result<ContainerConfig> {
    serde_json::from_value(record.config.clone())
        .with_context(|| format!("reading the config of container {}", record.id))
}

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

/// How a started container's output reaches a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attach {
    /// Foreground: copy output to our stdout and stderr, pass our stdin if
    /// `-i`, forward SIGINT/SIGTERM/SIGHUP to the container (docker's
    /// `--sig-proxy`).
    Foreground,
    /// Detached: nobody watches; output goes to the log only.
    Detached,
}

/// Start a container in the background: fork a monitor, which outlives us,
/// and return once the container's process exists.
pub fn start_detached(engine: &Engine, id: &str) -> Result<()> {
    let (ready_r, ready_w) = pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("pipe2")?;
    // Nothing may sit in our stdout buffer: the child would print it again.
    let _ = std::io::stdout().flush();
    // SAFETY: dockyard is single-threaded here, so the child may run Rust code.
    match unsafe { fork() }.context("fork for the monitor")? {
        ForkResult::Child => {
            drop(ready_r);
            // A session of its own: the monitor must not die with our
            // terminal or receive the Ctrl-C meant for us.
            let _ = setsid();
            let code = match detach_stdio(engine, id) {
                Ok(()) => match monitor(engine, id, Attach::Detached, Some(ready_w)) {
                    Ok(_) => 0,
                    Err(e) => {
                        eprintln!("monitor: {e:#}");
                        1
                    }
                },
                Err(e) => {
                    let mut w = File::from(ready_w);
                    let _ = writeln!(w, "error: {}", format!("{e:#}").replace('\n', " "));
                    1
                }
            };
            // _exit: do not run our parent's exit-time code a second time.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { .. } => {
            drop(ready_w);
            // One line: "started", or "error: ...". Read the line, not to
            // EOF: a process that inherited the pipe's write end and never
            // execs (the tiny init of --init) would hold it open for the
            // container's whole life.
            let mut msg = String::new();
            std::io::BufReader::new(File::from(ready_r))
                .read_line(&mut msg)
                .context("reading the monitor's start report")?;
            let msg = msg.trim_end_matches('\n');
            match msg.strip_prefix("error: ") {
                None if msg == "started" => Ok(()),
                Some(err) => Err(anyhow!("{err}")),
                None => Err(anyhow!("the monitor died before the container started")),
            }
        }
    }
}

/// The detached monitor's own stdio: /dev/null in, its messages to
/// `monitor.log` in the container's directory.
fn detach_stdio(engine: &Engine, id: &str) -> Result<()> {
    let null = File::open("/dev/null").context("opening /dev/null")?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(engine.containers.dir_of(id).join("monitor.log"))
        .context("opening monitor.log")?;
    for (fd, target) in [
        (null.as_raw_fd(), 0),
        (log.as_raw_fd(), 1),
        (log.as_raw_fd(), 2),
    ] {
        // SAFETY: dup2 onto our own standard descriptors.
        if unsafe { libc::dup2(fd, target) } < 0 {
            bail!("dup2: {}", std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The monitor: run the container until it exits for good (restarting it as
/// its policy says), keeping its state and logs. Returns the last exit code.
/// `ready` is told "started" (or the error) once the first start is done.
pub fn monitor(
    engine: &Engine,
    id: &str,
    attach: Attach,
    mut ready: Option<OwnedFd>,
) -> Result<i32> {
    let report = |ready: &mut Option<OwnedFd>, msg: &str| {
        if let Some(fd) = ready.take() {
            let _ = writeln!(File::from(fd), "{}", msg.replace('\n', " "));
        }
    };
    let mut backoff = Duration::from_millis(100);
    loop {
        let record = engine.containers.load(id)?;
        let config = config_of(&record)?;
        let started = match run_once(engine, &record, &config, attach) {
            Ok(running) => running,
            Err(e) => {
                report(&mut ready, &format!("error: {e:#}"));
                mark_exited(engine, id, 125, false, &format!("{e:#}"))?;
                cleanup_after_exit(engine, id, &config)?;
                return Err(e);
            }
        };
        report(&mut ready, "started");
        let started_at = started.started;
        let (code, oom) = started.wait(attach)?;
        let restarts = engine.containers.load(id)?.state.restart_count;
        let manual = mark_exited(engine, id, code, oom, "")?;
        if config.restart.should_restart(code, restarts, manual) && !config.auto_remove {
            let lock = engine.containers.lock()?;
            let mut r = engine.containers.load(id)?;
            r.state.status = Status::Restarting;
            r.state.restart_count += 1;
            // We are still here, waiting to restart it: say so, or a `ps`
            // meanwhile would find no process behind the record and
            // reconcile it to "exited".
            r.state.monitor_pid = std::process::id() as i32;
            engine.containers.save(&lock, &r)?;
            drop(lock);
            // Docker's back-off: double the delay each time, reset after a
            // run that lasted 10 seconds.
            if started_at.elapsed() > Duration::from_secs(10) {
                backoff = Duration::from_millis(100);
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_secs(60));
            // `stop` or `rm -f` while we slept?
            let r = engine.containers.load(id)?;
            if r.state.status != Status::Restarting {
                cleanup_after_exit(engine, id, &config)?;
                return Ok(code);
            }
            continue;
        }
        cleanup_after_exit(engine, id, &config)?;
        return Ok(code);
    }
}

/// A container whose process runs.
struct Running {
    pid: Pid,
    cgroup: cgroups::Cgroup,
    devices: Option<cgroups::devices::DevicesCgroup>,
    out: OwnedFd,
    err: OwnedFd,
    log: logs::Writer,
    started: Instant,
}

fn run_once(
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

    // The cgroup, with its limits (lab 03).
    let host = cgroups::detect()?;
    let parent = if config.cgroup_parent.is_empty() {
        cgroups::DEFAULT_PARENT
    } else {
        &config.cgroup_parent
    };
    let limits = config.limits.to_lab();
    limits.check(host.version(), cgroups::ncpus())?;
    let cgroup = cgroups::Cgroup::create(&host, parent, id, &limits)?;
    trace::phase("start: made the cgroup (lab 03)");

    // The pipes the monitor reads the container's output from.
    let (out_r, out_w) = pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("pipe2 for stdout")?;
    let (err_r, err_w) = pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("pipe2 for stderr")?;
    let null = File::open("/dev/null").context("opening /dev/null")?;
    let stdin = if attach == Attach::Foreground && config.open_stdin {
        0
    } else {
        null.as_raw_fd()
    };

    let mut spec = namespaces::Spec::new(
        &dirs.merged,
        config.argv().into_iter().map(OsString::from).collect(),
    );
    spec.env = config.env.iter().map(OsString::from).collect();
    spec.hostname = Some(config.hostname.clone());
    spec.init = config.init;
    spec.stdio = Some([stdin, out_w.as_raw_fd(), err_w.as_raw_fd()]);
    if !config.working_dir.is_empty() {
        spec.cwd = Some(PathBuf::from(&config.working_dir));
    }
    // Docker runs containers without a user namespace unless userns-remap
    // is configured: root inside is root outside, held in by capabilities,
    // seccomp and the rest (see the security chapter). Image files owned by
    // root must stay root's inside, which a user namespace would not allow.
    spec.namespaces -= nix::sched::CloneFlags::CLONE_NEWUSER;
    // Docker's default cgroupns mode: private on a cgroup v2 host, where the
    // container then sees its own cgroup as `/`; the host's on v1 and hybrid
    // hosts, where a cgroup namespace hides little (each v1 hierarchy would
    // still show its controllers' files).
    if host.version() == cgroups::Version::V1 {
        spec.namespaces -= nix::sched::CloneFlags::CLONE_NEWCGROUP;
    }
    match config.network_mode.as_str() {
        "none" => {}
        "host" => spec.namespaces -= nix::sched::CloneFlags::CLONE_NEWNET,
        other => bail!("network mode {other:?} is not supported yet: use --network none or host"),
    }

    spec.security = Some(config.security()?);
    trace::phase("start: built the spec");
    // The device allow list: Docker's default rules, in a v1 `devices`
    // cgroup beside the others (lab 03). --privileged allows every device,
    // as Docker's does. On a pure v2 host the allow list would be an eBPF
    // program, which lab 03 does not write yet: there the container has
    // only the device nodes its minimal /dev gives it.
    let devices = if !config.privileged && cgroups::devices::devices_hierarchy()?.is_some() {
        let rules: Vec<&str> = cgroups::devices::DOCKER_DEFAULT_RULES
            .iter()
            .map(|(r, _)| *r)
            .collect();
        Some(cgroups::devices::DevicesCgroup::create_in(
            parent, id, &rules,
        )?)
    } else {
        None
    };

    trace::phase("start: made the devices cgroup (lab 03)");
    let log = logs::Writer::open(
        &engine.containers.dir_of(id),
        logs::Rotation::from_opts(
            config
                .log_opts
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        )?,
    )?;
    let container = namespaces::spawn(&spec, |pid| {
        cgroup.add_pid(pid.as_raw())?;
        if let Some(d) = &devices {
            d.add(pid.as_raw())?;
        }
        Ok(())
    })?;
    drop((out_w, err_w, null));
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
    engine.containers.save(&lock, &r)?;
    trace::phase("start: saved the record (running)");
    Ok(Running {
        pid,
        cgroup,
        devices,
        out: out_r,
        err: err_r,
        log,
        started: Instant::now(),
    })
}

impl Running {
    /// Copy output to the log (and the terminal) until the container exits;
    /// return its exit code (128+N for signal N) and whether the OOM killer
    /// struck.
    fn wait(mut self, attach: Attach) -> Result<(i32, bool)> {
        // SIGCHLD tells us the container exited; in the foreground, the
        // signals a person sends to `dockyard run` go on to the container.
        let mut mask = SigSet::empty();
        mask.add(Signal::SIGCHLD);
        if attach == Attach::Foreground {
            for s in [
                Signal::SIGINT,
                Signal::SIGTERM,
                Signal::SIGHUP,
                Signal::SIGQUIT,
            ] {
                mask.add(s);
            }
        }
        mask.thread_block()
            .context("blocking signals for the monitor")?;
        let sfd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
            .context("signalfd")?;
        let mut open = [true, true];
        let mut buf = vec![0u8; 64 * 1024];
        // The container may have exited before SIGCHLD was blocked: then
        // the signal was discarded and the signalfd will never report it.
        // So ask waitpid now, and again whenever poll times out.
        let reap = |pid: Pid| match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => Some(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => Some(128 + sig as i32),
            _ => None,
        };
        let mut status = reap(self.pid);
        while status.is_none() || open.iter().any(|o| *o) {
            // Once the container's PID 1 is gone the kernel kills the rest of
            // its PID namespace, so the pipes reach EOF soon; don't wait
            // forever on a descriptor some escaped process still holds.
            let timeout = if status.is_some() { 1000u16 } else { 500u16 };
            let mut fds = vec![
                nix::poll::PollFd::new(sfd.as_fd(), nix::poll::PollFlags::POLLIN),
                nix::poll::PollFd::new(
                    self.out.as_fd(),
                    if open[0] {
                        nix::poll::PollFlags::POLLIN
                    } else {
                        nix::poll::PollFlags::empty()
                    },
                ),
                nix::poll::PollFd::new(
                    self.err.as_fd(),
                    if open[1] {
                        nix::poll::PollFlags::POLLIN
                    } else {
                        nix::poll::PollFlags::empty()
                    },
                ),
            ];
            let n = match nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(timeout)) {
                Ok(n) => n,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e).context("poll"),
            };
            if n == 0 {
                if status.is_some() {
                    break;
                }
                status = reap(self.pid);
                continue;
            }
            let ready: Vec<bool> = fds.iter().map(|f| f.any().unwrap_or(false)).collect();
            drop(fds);
            for (i, stream) in [(1usize, "stdout"), (2, "stderr")] {
                if !ready[i] || !open[i - 1] {
                    continue;
                }
                let fd = if i == 1 { &self.out } else { &self.err };
                match nix::unistd::read(fd, &mut buf) {
                    Ok(0) => open[i - 1] = false,
                    Ok(n) => {
                        self.log.write(stream, &buf[..n])?;
                        if attach == Attach::Foreground {
                            let _ = if i == 1 {
                                std::io::stdout()
                                    .write_all(&buf[..n])
                                    .and_then(|()| std::io::stdout().flush())
                            } else {
                                std::io::stderr().write_all(&buf[..n])
                            };
                        }
                    }
                    Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => {}
                    Err(_) => open[i - 1] = false,
                }
            }
            if ready[0] {
                while let Ok(Some(info)) = sfd.read_signal() {
                    let signo = info.ssi_signo as i32;
                    if signo == libc::SIGCHLD {
                        if status.is_none() {
                            status = reap(self.pid);
                        }
                    } else if status.is_none() {
                        if let Ok(sig) = Signal::try_from(signo) {
                            let _ = kill(self.pid, sig);
                        }
                    }
                }
            }
        }
        let code = status.unwrap_or(255);
        trace::phase("wait: the container exited");
        let oom = self.cgroup.oom_killed();
        self.cgroup.destroy()?;
        if let Some(d) = self.devices.take() {
            d.remove()?;
        }
        trace::phase("wait: removed the cgroups");
        mask.thread_unblock().context("unblocking signals")?;
        Ok((code, oom))
    }
}

/// Record an exit. Returns whether `stop` asked for it (no restart then).
fn mark_exited(engine: &Engine, id: &str, code: i32, oom: bool, error: &str) -> Result<bool> {
    let lock = engine.containers.lock()?;
    let mut r = engine.containers.load(id)?;
    r.state.status = Status::Exited;
    r.state.pid = 0;
    r.state.pid_start_time = 0;
    r.state.monitor_pid = 0;
    r.state.exit_code = code;
    r.state.oom_killed = oom;
    r.state.error = error.to_string();
    r.state.finished_at = now_rfc3339();
    engine.containers.save(&lock, &r)?;
    trace::phase("exit: saved the record (exited)");
    Ok(r.state.manually_stopped)
}

/// After the last exit: unmount the root filesystem, and with `--rm`
/// remove the container altogether.
fn cleanup_after_exit(engine: &Engine, id: &str, config: &ContainerConfig) -> Result<()> {
    let layer = engine.layer_container(id)?;
    if is_mounted(&layer.merged())? {
        overlay::overlay::unmount(&layer.merged())?;
    }
    trace::phase("exit: unmounted the overlay");
    if config.auto_remove {
        remove(engine, id)?;
        trace::phase("exit: removed the container (--rm)");
    }
    Ok(())
}

/// Remove a container that is not running: its writable layer, its logs,
/// its state.
pub fn remove(engine: &Engine, id: &str) -> Result<()> {
    let lock = engine.containers.lock()?;
    // A monitor that was killed (kill -9, a reboot) could not clean up: its
    // container's cgroup and overlay mount may still be there.
    if let Ok(record) = engine.containers.load(id) {
        let config = config_of(&record)?;
        let parent = if config.cgroup_parent.is_empty() {
            cgroups::DEFAULT_PARENT
        } else {
            &config.cgroup_parent
        };
        cgroups::remove_stale(&cgroups::detect()?, parent, id)?;
    }
    let layer = engine.layer_container(id)?;
    engine.images.remove_container(&layer)?;
    drop(lock);
    Ok(())
}

/// Whether something is mounted exactly at `path`.
pub fn is_mounted(path: &Path) -> Result<bool> {
    let mounts =
        std::fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
    let p = path.to_string_lossy();
    Ok(mounts
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(p.as_ref())))
}

/// Parse a signal as docker does: `KILL`, `SIGKILL`, or `9`.
pub fn parse_signal(s: &str) -> Result<Signal> {
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| anyhow!("Invalid signal: {s}"));
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<Signal>()
        .map_err(|_| anyhow!("Invalid signal: {s}"))
}

/// Send `signal` to a running container's init process.
pub fn signal(engine: &Engine, record: &Record, sig: Signal) -> Result<()> {
    let record = engine.containers.reconcile(record.clone())?;
    if record.state.status != Status::Running && record.state.status != Status::Paused {
        bail!("Container {} is not running", record.id);
    }
    kill(Pid::from_raw(record.state.pid), sig)
        .with_context(|| format!("sending {sig} to container {}", &record.id[..12]))
}

/// `stop`: the stop signal, up to `timeout` for the container to exit, then
/// SIGKILL. A stopped container is never restarted by its policy.
pub fn stop(
    engine: &Engine,
    record: &Record,
    timeout: Duration,
    sig: Option<Signal>,
) -> Result<()> {
    let lock = engine.containers.lock()?;
    let mut r = engine.containers.load(&record.id)?;
    r.state.manually_stopped = true;
    if r.state.status == Status::Restarting {
        r.state.status = Status::Exited;
    }
    engine.containers.save(&lock, &r)?;
    drop(lock);
    let r = engine.containers.reconcile(r)?;
    if r.state.status != Status::Running {
        return Ok(());
    }
    let config = config_of(&r)?;
    let sig = match sig {
        Some(s) => s,
        None if !config.stop_signal.is_empty() => parse_signal(&config.stop_signal)?,
        None => Signal::SIGTERM,
    };
    let _ = kill(Pid::from_raw(r.state.pid), sig);
    if wait_until_exited(engine, &r.id, timeout)? {
        return Ok(());
    }
    let _ = kill(Pid::from_raw(r.state.pid), Signal::SIGKILL);
    if !wait_until_exited(engine, &r.id, Duration::from_secs(30))? {
        bail!("container {} did not stop after SIGKILL", &r.id[..12]);
    }
    Ok(())
}

/// Poll the record until the monitor has recorded an exit.
pub fn wait_until_exited(engine: &Engine, id: &str, timeout: Duration) -> Result<bool> {
    let deadline = Instant::now() + timeout;
    loop {
        let r = engine.containers.reconcile(engine.containers.load(id)?)?;
        if matches!(
            r.state.status,
            Status::Exited | Status::Dead | Status::Created
        ) {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_policies_parse_like_dockers() {
        assert_eq!("no".parse::<RestartPolicy>().unwrap(), RestartPolicy::No);
        assert_eq!(
            "always".parse::<RestartPolicy>().unwrap(),
            RestartPolicy::Always
        );
        assert_eq!(
            "on-failure:3".parse::<RestartPolicy>().unwrap(),
            RestartPolicy::OnFailure(3)
        );
        assert_eq!(
            "unless-stopped".parse::<RestartPolicy>().unwrap(),
            RestartPolicy::UnlessStopped
        );
        assert!("always:3".parse::<RestartPolicy>().is_err());
        assert!("sometimes".parse::<RestartPolicy>().is_err());
        assert!("on-failure:x".parse::<RestartPolicy>().is_err());
    }

    #[test]
    fn restart_decisions() {
        let p = RestartPolicy::OnFailure(2);
        assert!(p.should_restart(1, 0, false));
        assert!(p.should_restart(1, 1, false));
        assert!(!p.should_restart(1, 2, false));
        assert!(!p.should_restart(0, 0, false));
        assert!(RestartPolicy::Always.should_restart(0, 100, false));
        assert!(!RestartPolicy::Always.should_restart(0, 0, true));
        assert!(!RestartPolicy::No.should_restart(1, 0, false));
    }

    #[test]
    fn signals_parse_like_dockers() {
        assert_eq!(parse_signal("KILL").unwrap(), Signal::SIGKILL);
        assert_eq!(parse_signal("sigterm").unwrap(), Signal::SIGTERM);
        assert_eq!(parse_signal("9").unwrap(), Signal::SIGKILL);
        assert!(parse_signal("NOPE").is_err());
    }
}
