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
//!      │                       │  mounts, cgroup, spawn, network
//!      └─ prints the ID,       │
//!         exits                │ execve: dockyard-monitor (same PID)
//!                              │  owns stdout/stderr pipes -> json-file log
//!                              │  listens on attach.sock for `attach`
//!                              │  reaps the container
//!                              │ execve: dockyard __monitor-exited (same PID)
//!                              │  records its exit code, tears down,
//!                              │  applies --rm and --restart
//! ```
//!
//! Because the monitor, not the CLI, is the container's parent, `run -d`
//! can return at once and the container outlives it. The monitor is a fork
//! of the `dockyard` CLI while it sets the container up, then becomes the
//! small `dockyard-monitor` program (the `monitor/` crate) for as long as
//! the container runs: a few hundred kilobytes of code resident per
//! container instead of the CLI's megabytes, as podman leaves `conmon`
//! behind. When the container exits, the small program becomes `dockyard`
//! again to clean up, and to start the container again if its restart
//! policy says so. In the foreground the
//! CLI process *is* the monitor, and also copies the output to the terminal;
//! except with `-it`, where, as docker's CLI, it starts a detached monitor
//! and attaches to it (see the attach module), so that Ctrl-P Ctrl-Q can
//! leave the container running.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::File;
use std::io::{BufRead, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::{fork, pipe2, setsid, ForkResult, Pid};
use serde::{Deserialize, Serialize};

use lab02_namespaces as namespaces;
use lab03_cgroups as cgroups;
use lab04_overlay as overlay;
use lab05_netns_veth as net;

use crate::config::DaemonConfig;
use crate::logs;
use crate::state::{self, now_rfc3339, Record, Status};
use crate::trace;

pub use cgroups::Version as CgroupVersion;
pub use net::ports::PortSpec;
pub use overlay::archive::CommitOptions;
pub use overlay::diff::Change;
pub use overlay::store::Image;

/// `commit`: lab 04 turns the upper dir into a layer on top of the image.
pub fn commit(
    engine: &Engine,
    layer: &overlay::container::Container,
    name: &str,
    opts: &CommitOptions,
) -> Result<Image> {
    overlay::archive::commit_with(&engine.images, layer, name, opts)
}

/// `commit --change`: the runtime config of the container's image with the
/// changes applied (lab 06 parses and applies them, as JSON).
pub fn changed_config(
    engine: &Engine,
    layer: &overlay::container::Container,
    changes: &[String],
) -> Result<oci_spec::image::Config> {
    let image = engine.images.container_image(layer)?;
    let mut json = match image.config.config() {
        Some(c) => serde_json::to_value(c).context("serializing the image's config")?,
        None => serde_json::json!({}),
    };
    lab06_dockerfile::change::apply_changes(&mut json, changes)?;
    serde_json::from_value(json).context("the changed image config")
}

/// Freeze or thaw a container's processes (lab 03's freezer).
pub fn freeze(engine: &Engine, record: &Record, frozen: bool) -> Result<()> {
    let _ = engine;
    let config = config_of(record)?;
    let parent = config.cgroup_parent_or_default();
    cgroups::freeze(&cgroups::detect()?, parent, &record.id, frozen)
}

/// `diff`: lab 04 compares the upper dir with the image's layers.
pub fn changes(upper: &Path, lowers: &[PathBuf]) -> Result<Vec<Change>> {
    overlay::diff::changes(upper, lowers)
}

/// `export`: the merged tree as a tar. A running container's overlay is
/// already mounted and is read in place; otherwise lab 04 mounts it for
/// the walk.
pub fn export(
    engine: &Engine,
    layer: &overlay::container::Container,
    out: impl Write,
) -> Result<()> {
    if is_mounted(&layer.merged())? {
        overlay::diff::write_tree_shifted(
            &layer.merged(),
            out,
            overlay::diff::TreeKind::Plain,
            engine.images.id_shift(),
        )?;
    } else {
        overlay::archive::export_container(&engine.images, layer, out)?;
    }
    Ok(())
}

/// `import` (lab 04).
pub fn import(engine: &Engine, input: impl Read, name: &str) -> Result<Image> {
    overlay::archive::import_tarball(&engine.images, input, name)
}

/// `save` as a docker-archive (lab 04).
pub fn save(engine: &Engine, image: &Image, out: impl Write) -> Result<()> {
    overlay::archive::save_docker(&engine.images, image, out)?;
    Ok(())
}

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
    #[serde(default)]
    pub mounts: Vec<crate::volumes::MountSpec>,
    /// `-t`: a pseudo-terminal instead of pipes.
    #[serde(default)]
    pub tty: bool,
    /// `-p` as given.
    #[serde(default)]
    pub publish: Vec<String>,
    /// `-P`: publish every exposed port (the image's EXPOSE and --expose).
    #[serde(default)]
    pub publish_all: bool,
    /// `--expose` and the image's ExposedPorts, as "80/tcp".
    #[serde(default)]
    pub exposed: Vec<String>,
    /// `-u`, else the image's USER; empty: root.
    #[serde(default)]
    pub user: String,
    /// `--health-*`, else the image's HEALTHCHECK.
    #[serde(default)]
    pub healthcheck: Option<crate::health::Check>,
    #[serde(default)]
    pub no_healthcheck: bool,
    /// `--ulimit`, with daemon.json's default-ulimits for the rest.
    #[serde(default)]
    pub ulimits: Vec<String>,
    /// `--network-alias` and `--ip`, on a user-defined network.
    #[serde(default)]
    pub network_aliases: Vec<String>,
    #[serde(default)]
    pub ip: Option<String>,
    /// `--dns`, `--dns-search`, `--dns-option` (daemon.json's `dns` and
    /// `dns-search` apply when these are empty).
    #[serde(default)]
    pub dns: Vec<String>,
    #[serde(default)]
    pub dns_search: Vec<String>,
    #[serde(default)]
    pub dns_options: Vec<String>,
    /// `--add-host NAME:IP`, as given.
    #[serde(default)]
    pub extra_hosts: Vec<String>,
    /// The networks `network connect` added, rejoined at every start.
    #[serde(default)]
    pub connected: Vec<Connection>,
    /// `--userns`: "host" opts out of --userns-remap; empty follows it.
    #[serde(default)]
    pub userns_mode: String,
}

/// A network a container was connected to with `network connect`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Connection {
    pub network: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub ip: Option<String>,
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

    /// The cgroup parent its group goes under: `--cgroup-parent`, or ours.
    pub fn cgroup_parent_or_default(&self) -> &str {
        if self.cgroup_parent.is_empty() {
            cgroups::DEFAULT_PARENT
        } else {
            &self.cgroup_parent
        }
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
    /// `--userns-remap`: the ranges every container's root maps to, unless
    /// it runs with `--userns=host`. `root` is then the remapped data root.
    pub remap: Option<crate::userns::Remap>,
    /// Rootless mode: this process is root of a user namespace of its own
    /// (see the userns module), not of the host.
    pub rootless: bool,
    pub config: DaemonConfig,
    pub containers: state::Store,
    pub images: overlay::store::Store,
    pub volumes: crate::volumes::Volumes,
}

impl Engine {
    /// Open the data root `root`. With `--userns-remap` (`remap`) the data
    /// root is `<root>/<uid>.<gid>` (see the userns module), and its image
    /// store shifts layer owners into the range.
    pub fn open_remapped(
        root: PathBuf,
        config: DaemonConfig,
        remap: Option<crate::userns::Remap>,
    ) -> Result<Engine> {
        let root = match &remap {
            Some(r) => r.data_root(&root)?,
            None => root,
        };
        std::fs::create_dir_all(&root)
            .with_context(|| format!("creating data root {}", root.display()))?;
        // The image store and the containers share the data root: lab 04
        // keeps each container's upper/work/merged dirs in
        // containers/<id>/, and the engine its state.json beside them.
        let images =
            overlay::store::Store::open_shifted(&root, remap.as_ref().map(|r| r.id_shift()))?;
        let containers = state::Store::open(&root)?;
        let volumes = crate::volumes::Volumes::open(&root)?;
        Ok(Engine {
            root,
            remap,
            rootless: false,
            config,
            containers,
            images,
            volumes,
        })
    }

    /// Open `root` for a rootless engine, whose process is already in its
    /// own user namespace (`userns::enter_rootless`).
    pub fn open_rootless(root: PathBuf, config: DaemonConfig) -> Result<Engine> {
        let mut engine = Engine::open_remapped(root, config, None)?;
        engine.rootless = true;
        Ok(engine)
    }

    /// The lab 04 view of a container (its overlay directories).
    pub fn layer_container(&self, id: &str) -> Result<overlay::container::Container> {
        self.images.container(id)
    }
}

// ANCHOR: check_userns
/// `--userns` and what a remapped user namespace cannot give, refused
/// before anything is created, with Docker's rules:
///
/// - `--privileged` means root's power over the *host*; root of a user
///   namespace has none to give, so it needs `--userns=host`.
/// - `--network host` shares the host's network namespace, which the
///   container's user namespace does not own: root inside could not
///   configure it, nor mount the `/sys` that shows it.
fn check_userns(engine: &Engine, config: &ContainerConfig) -> Result<()> {
    match config.userns_mode.as_str() {
        "" | "host" => {}
        other => bail!("invalid --userns {other:?}: the only mode is \"host\""),
    }
    if engine.rootless {
        return check_rootless(config);
    }
    if engine.remap.is_none() || config.userns_mode == "host" {
        return Ok(());
    }
    if config.privileged {
        bail!(
            "privileged mode is incompatible with user namespaces (--userns-remap): \
             run the container with --userns=host to use --privileged"
        );
    }
    if config.network_mode == "host" {
        bail!(
            "--network host is incompatible with user namespaces (--userns-remap): \
             run the container with --userns=host to share the host's network"
        );
    }
    if config.network_mode.starts_with("container:") {
        // The other container's network namespace belongs to *its* user
        // namespace: this one's root may not mount a sysfs for it, and the
        // fallback, a bind of the host's /sys, is refused in a user
        // namespace (its submounts are locked). Not done yet.
        bail!(
            "--network container:NAME is not implemented with --userns-remap yet: \
             run the container with --userns=host to share another container's network"
        );
    }
    Ok(())
}
// ANCHOR_END: check_userns

// ANCHOR: check_rootless
/// What a rootless engine cannot do, refused before anything is created
/// with the reason (see `userns::enter_rootless`).
fn check_rootless(config: &ContainerConfig) -> Result<()> {
    use crate::userns::rootless_refusal;
    if config.userns_mode == "host" {
        return Err(rootless_refusal(
            "--userns=host",
            "the host's user namespace is where this user has no privilege at all",
        ));
    }
    if config.network_mode != "none" {
        return Err(rootless_refusal(
            &format!("--network {}", config.network_mode),
            "bridges, veth pairs and NAT rules are made in the host's network namespace, \
             which only the host's root may change (rootless Docker uses slirp4netns or \
             pasta for that; dockyard has neither); use --network none",
        ));
    }
    if !config.publish.is_empty() || config.publish_all {
        return Err(rootless_refusal(
            "publishing ports (-p, -P)",
            "it needs a bridge network, and ports below 1024 on the host need root",
        ));
    }
    if config.limits != Limits::default() || !config.cgroup_parent.is_empty() {
        return Err(rootless_refusal(
            "resource limits (--memory, --cpus, --pids-limit, --cgroup-parent...)",
            "the host's cgroups belong to root, and using a cgroup v2 subtree delegated \
             to this user (where systemd gives one; this hybrid host has none) is not \
             implemented",
        ));
    }
    Ok(())
}
// ANCHOR_END: check_rootless

/// Create a container: its writable layer and its record, state "created".
pub fn create(engine: &Engine, name: Option<&str>, mut config: ContainerConfig) -> Result<Record> {
    check_userns(engine, &config)?;
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
        if config.user.is_empty() {
            config.user = ic.user().clone().unwrap_or_default();
        }
        for (k, v) in ic.labels().clone().unwrap_or_default() {
            config.labels.entry(k).or_insert(v);
        }
        for p in ic.exposed_ports().clone().unwrap_or_default() {
            if !config.exposed.contains(&p) {
                config.exposed.push(p);
            }
        }
        // The image's VOLUMEs: each becomes an anonymous volume, as with
        // `-v /data`, unless a -v or --mount already covers that path. The
        // volume is created and seeded from the image when the container
        // starts, and `rm -v` or `--rm` takes it away with the container.
        // Sorted: the config holds them as a JSON object, whose order a
        // parser need not keep, and `inspect`'s Mounts should not vary.
        let mut image_volumes = ic.volumes().clone().unwrap_or_default();
        image_volumes.sort();
        for target in image_volumes {
            let target = target.trim_end_matches('/').to_string();
            let target = if target.is_empty() {
                "/".into()
            } else {
                target
            };
            if !config
                .mounts
                .iter()
                .any(|m| m.target.trim_end_matches('/') == target)
            {
                config.mounts.push(crate::volumes::parse_v(&target)?);
            }
        }
    }
    // The image's HEALTHCHECK, unless --health-cmd or --no-healthcheck. Read
    // from the raw config: it is a docker extension the OCI types drop.
    if config.healthcheck.is_none() && !config.no_healthcheck {
        if let Ok(raw) = engine.images.read_blob(&image.config_digest) {
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&raw) {
                config.healthcheck = v["config"]
                    .get("Healthcheck")
                    .and_then(crate::health::Check::from_image);
            }
        }
    }
    if config.no_healthcheck {
        config.healthcheck = None;
    }
    // daemon.json's defaults, where the command line said nothing.
    for (name, (soft, hard)) in &engine.config.default_ulimits {
        if !config
            .ulimits
            .iter()
            .any(|u| u.split('=').next() == Some(name.as_str()))
        {
            config.ulimits.push(format!("{name}={soft}:{hard}"));
        }
    }
    if config.log_opts.is_empty() {
        config.log_opts = engine.config.log_opts.clone();
        logs::rotation_from_opts(
            config
                .log_opts
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        )
        .context("daemon.json log-opts")?;
    }
    if config.argv().is_empty() {
        bail!("no command specified");
    }
    if !config.env.iter().any(|e| e.starts_with("PATH=")) {
        config
            .env
            .insert(0, format!("PATH={}", lab01_chroot::DEFAULT_PATH));
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
    // A --rm container's records skip the fsyncs (see the state module).
    let layer = engine
        .images
        .create_container_with(&image, !config.auto_remove)?;
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
    /// Detached, but the first start waits until a client has attached
    /// (`run -it`: the CLI attaches before the container prints anything).
    Waiting,
}

/// Start a container in the background: fork a monitor, which outlives us,
/// and return once the container's process exists.
pub fn start_detached(engine: &Engine, id: &str) -> Result<()> {
    let ready = fork_monitor(engine, id, Attach::Detached)?;
    read_report(ready)
}

/// `run -it`, `start -ai`: start a container under a detached monitor, as
/// `start_detached`, but attach to it before it starts, as docker's CLI
/// does, so that not a byte of its output is missed. The monitor waits for
/// this connection before it spawns the container; the session then goes
/// through `attach`, detach keys included.
pub fn start_attached(engine: &Engine, id: &str) -> Result<std::os::unix::net::UnixStream> {
    let ready = fork_monitor(engine, id, Attach::Waiting)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match crate::attach::connect(engine, id) {
            Ok(sock) => {
                read_report(ready)?;
                return Ok(sock);
            }
            Err(e) => {
                // Not listening yet, or the monitor failed: then it says so.
                let mut fds = [nix::poll::PollFd::new(
                    std::os::fd::AsFd::as_fd(&ready),
                    nix::poll::PollFlags::POLLIN,
                )];
                if nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(20u8)).unwrap_or(0) > 0 {
                    read_report(ready)?;
                    return Err(e);
                }
                if Instant::now() > deadline {
                    return Err(e);
                }
            }
        }
    }
}

/// The descriptors above 2 that this process inherited from whoever ran it,
/// noted at start-up (see `note_inherited_fds`).
static INHERITED_FDS: std::sync::OnceLock<Vec<i32>> = std::sync::OnceLock::new();

/// Note which descriptors above 2 we inherited, before we open any. A
/// detached monitor closes them: it outlives us, and must not keep our
/// caller's terminal, pipe or socket open (a terminal would never see its
/// session end; a pipe reader would never see EOF). Read from /proc/self/fd
/// (one directory read, where probing every number with F_GETFD took a
/// thousand system calls, a millisecond); the directory's own descriptor is
/// open while it is read, and left out by checking it is gone afterwards.
pub fn note_inherited_fds() {
    let listed: Vec<i32> = match std::fs::read_dir("/proc/self/fd") {
        Ok(dir) => dir
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .filter(|&fd| fd > 2)
            .collect(),
        Err(_) => (3..1024).collect(),
    };
    let fds = listed
        .into_iter()
        // SAFETY: F_GETFD only reads the descriptor's flags.
        .filter(|&fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1)
        .collect();
    let _ = INHERITED_FDS.set(fds);
}

/// The environment variable that carries the path of the `dockyard` binary
/// across the re-exec from a sealed copy (whose /proc/self/exe names no
/// file beside which the monitor program could be found).
pub const EXE_ENV: &str = "DOCKYARD_EXE";

/// Note our own path in [`EXE_ENV`] if we run from the file itself (not
/// from a sealed copy, which keeps what the first run noted). The file is
/// the one /proc/self/exe names only if that name leads to the same inode:
/// whatever the environment said before is overwritten, never trusted.
pub fn note_own_path() {
    use std::os::unix::fs::MetadataExt;
    let Ok(path) = std::fs::read_link("/proc/self/exe") else {
        return;
    };
    let same = match (
        std::fs::metadata(&path),
        std::fs::metadata("/proc/self/exe"),
    ) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    };
    if same {
        // Single-threaded: the first thing main does.
        std::env::set_var(EXE_ENV, path);
    }
}

/// The small monitor program: `dockyard-monitor`, beside `dockyard`
/// (cargo builds both into the same directory; an install copies both).
fn monitor_program() -> Result<PathBuf> {
    let exe = std::env::var_os(EXE_ENV)
        .map(PathBuf::from)
        .context("the path of the dockyard binary is unknown ($DOCKYARD_EXE is unset)")?;
    let program = exe.with_file_name("dockyard-monitor");
    if !program.is_file() {
        bail!(
            "{} not found: the monitor program is built with dockyard (cargo build -p \
             dockyard-monitor) and must be installed beside it",
            program.display()
        );
    }
    Ok(program)
}

/// The engine's global flags as given (`--root`, `--config`,
/// `--userns-remap`), for the `dockyard` that runs after a container exits.
#[derive(Debug, Clone, Default)]
pub struct EngineArgs {
    pub root: Option<PathBuf>,
    pub config: Option<PathBuf>,
    pub userns_remap: Option<String>,
}

static ENGINE_ARGS: std::sync::OnceLock<EngineArgs> = std::sync::OnceLock::new();

/// Remember the global flags (main does, once parsed).
pub fn set_engine_args(args: EngineArgs) {
    let _ = ENGINE_ARGS.set(args);
}

/// The global flags that open this same engine again.
fn engine_argv(engine: &Engine) -> Vec<OsString> {
    let given = ENGINE_ARGS.get().cloned().unwrap_or_default();
    let mut argv: Vec<OsString> = Vec::new();
    if let Some(c) = given.config {
        argv.extend(["--config".into(), c.into()]);
    }
    if let Some(u) = given.userns_remap {
        argv.extend(["--userns-remap".into(), u.into()]);
    }
    match (&engine.remap, given.root) {
        // Remapped, the data root is derived from the one given.
        (Some(_), Some(root)) => argv.extend(["--root".into(), root.into()]),
        (Some(_), None) => {}
        // Else the data root itself, however it was found (rootless mode
        // finds it from the user's home, which its namespace changes).
        (None, _) => argv.extend(["--root".into(), engine.root.clone().into()]),
    }
    argv
}

/// Now on the monotonic clock, which goes on across an exec.
fn monotonic() -> Duration {
    Duration::from_nanos(trace::now_ns())
}

/// Fork the monitor, in a session of its own; return the read end of the
/// pipe on which it reports the first start.
fn fork_monitor(engine: &Engine, id: &str, attach: Attach) -> Result<OwnedFd> {
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
            for &fd in INHERITED_FDS.get().map(Vec::as_slice).unwrap_or_default() {
                if fd != ready_w.as_raw_fd() {
                    // SAFETY: a descriptor we inherited and never use.
                    unsafe { libc::close(fd) };
                }
            }
            let code = match detach_stdio(engine, id) {
                Ok(()) => match monitor(engine, id, attach, Some(ready_w)) {
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
            Ok(ready_r)
        }
    }
}

/// The monitor's report of the first start: one line, "started", or
/// "error: ...". Read the line, not to EOF: a process that inherited the
/// pipe's write end and never execs (the tiny init of --init) would hold it
/// open for the container's whole life.
fn read_report(ready: OwnedFd) -> Result<()> {
    let mut msg = String::new();
    std::io::BufReader::new(File::from(ready))
        .read_line(&mut msg)
        .context("reading the monitor's start report")?;
    let msg = msg.trim_end_matches('\n');
    match msg.strip_prefix("error: ") {
        None if msg == "started" => Ok(()),
        Some(err) => Err(anyhow!("{err}")),
        None => Err(anyhow!("the monitor died before the container started")),
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
///
/// In the foreground this process watches the container itself. Detached,
/// it hands over to the small monitor program once the container runs, and
/// does not return (see the module documentation).
pub fn monitor(engine: &Engine, id: &str, attach: Attach, ready: Option<OwnedFd>) -> Result<i32> {
    monitor_from(engine, id, attach, ready, Duration::from_millis(100))
}

fn monitor_from(
    engine: &Engine,
    id: &str,
    mut attach: Attach,
    mut ready: Option<OwnedFd>,
    mut backoff: Duration,
) -> Result<i32> {
    let report = |ready: &mut Option<OwnedFd>, msg: &str| {
        if let Some(fd) = ready.take() {
            let _ = writeln!(File::from(fd), "{}", msg.replace('\n', " "));
        }
    };
    loop {
        let record = engine.containers.load(id)?;
        let config = config_of(&record)?;
        // Detached, the program to hand over to must be there before
        // anything starts: a failed start leaves nothing behind.
        let program = match attach {
            Attach::Foreground => Ok(None),
            Attach::Detached | Attach::Waiting => monitor_program().map(Some),
        };
        let started = program.and_then(|program| {
            let running = run_once(engine, &record, &config, attach)?;
            Ok((program, running))
        });
        let (program, started) = match started {
            Ok(started) => started,
            Err(e) => {
                report(&mut ready, &format!("error: {e:#}"));
                mark_exited(engine, id, 125, false, &format!("{e:#}"))?;
                cleanup_after_exit(engine, id, &config)?;
                return Err(e);
            }
        };
        report(&mut ready, "started");
        let started_at = started.started;
        if let Some(program) = program {
            let e = started.hand_over(engine, id, &program, backoff);
            // Still here: the exec failed. Watch the container from this
            // process, as before there was a small program.
            eprintln!("dockyard: running {}: {e:#}", program.display());
        }
        let (code, oom) = started.wait(engine, id, &config, attach)?;
        // A restart does not wait for anyone to attach again.
        if attach == Attach::Waiting {
            attach = Attach::Detached;
        }
        if !after_exit(engine, id, &config, code, oom, started_at, &mut backoff)? {
            return Ok(code);
        }
    }
}

/// `dockyard __monitor-exited`: the monitor's second half, run by the small
/// monitor program when the container has exited. The same process (the
/// container's parent, the PID in the state file) takes down what the
/// start set up, records the exit, and restarts the container if its
/// policy says so, handing over to the small program again.
pub fn monitor_exited(engine: &Engine, a: &crate::cli::MonitorExitedArgs) -> Result<i32> {
    // The checker first: its last result must be in before the exit is.
    if let Some(pid) = a.health_pid {
        let _ = nix::sys::wait::waitpid(Pid::from_raw(pid), None);
    }
    let record = engine.containers.load(&a.id)?;
    let config = config_of(&record)?;
    let handles = Handles {
        endpoint: record.state.network.is_some(),
        net_cfg: net_config(engine),
        pid: Pid::from_raw(a.pid),
        cgroup: None,
        devices: None,
        default_parent: (config.cgroup_parent.is_empty() && !engine.rootless)
            .then(cgroups::detect)
            .transpose()?,
    };
    let oom = handles.release(engine, &a.id, &config)?;
    let started_at = Instant::now()
        .checked_sub(monotonic().saturating_sub(Duration::from_nanos(a.started_ns)))
        .unwrap_or_else(Instant::now);
    let mut backoff = Duration::from_millis(a.backoff_ms);
    if !after_exit(
        engine,
        &a.id,
        &config,
        a.code,
        oom,
        started_at,
        &mut backoff,
    )? {
        return Ok(a.code);
    }
    monitor_from(engine, &a.id, Attach::Detached, None, backoff)
}

/// After an exit: record it, then either clean up (false: done) or get
/// ready to start the container again (true), as its restart policy says,
/// with docker's back-off between tries.
fn after_exit(
    engine: &Engine,
    id: &str,
    config: &ContainerConfig,
    code: i32,
    oom: bool,
    started_at: Instant,
    backoff: &mut Duration,
) -> Result<bool> {
    // Nobody can attach to an exited container: no socket to find.
    let _ = std::fs::remove_file(engine.containers.dir_of(id).join(crate::attach::SOCKET));
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
            *backoff = Duration::from_millis(100);
        }
        std::thread::sleep(*backoff);
        *backoff = (*backoff * 2).min(Duration::from_secs(60));
        // `stop` or `rm -f` while we slept?
        let r = engine.containers.load(id)?;
        if r.state.status == Status::Restarting {
            return Ok(true);
        }
    }
    cleanup_after_exit(engine, id, config)?;
    Ok(false)
}

/// A container whose process runs.
struct Running {
    /// The health checker; dropped (stopped, joined) when the container exits.
    health: Option<crate::health::Watch>,
    handles: Handles,
    streams: dockyard_monitor::pump::Streams,
    log: logs::Writer,
    log_rotation: logs::Rotation,
    started: Instant,
}

/// What a start set up on the host, to take down after the exit.
struct Handles {
    /// Whether the container is on a network (lab 05 finds its veths by
    /// its PID).
    endpoint: bool,
    net_cfg: net::Config,
    pid: Pid,
    /// The cgroup and device list as made by this process; None in rootless
    /// mode, or after an exec, when they are found again by name.
    cgroup: Option<cgroups::Cgroup>,
    devices: Option<cgroups::devices::DevicesCgroup>,
    /// The host's cgroups, when the container is in our default parent:
    /// that parent is removed after it if it is then empty.
    default_parent: Option<cgroups::Host>,
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
    let listener = crate::attach::listen(&engine.containers.dir_of(id))?;
    if attach == Attach::Waiting {
        // `run -it`: the CLI that started us connects before anything runs.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(c) = crate::attach::Client::accept(&listener) {
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

impl Running {
    /// Copy output to the log (and the terminal) until the container exits;
    /// return its exit code (128+N for signal N) and whether the OOM killer
    /// struck.
    fn wait(
        self,
        engine: &Engine,
        id: &str,
        config: &ContainerConfig,
        attach: Attach,
    ) -> Result<(i32, bool)> {
        let Running {
            handles,
            streams,
            mut log,
            health,
            ..
        } = self;
        // -it in the foreground: our terminal passes every key through.
        let raw = (attach == Attach::Foreground && streams.own_stdin && streams.tty.is_some())
            .then(dockyard_monitor::pump::RawMode::enter);
        let code = dockyard_monitor::pump::pump(
            handles.pid,
            streams,
            Some(&mut log),
            attach == Attach::Foreground,
        );
        drop(raw);
        drop(health);
        let code = code?;
        trace::phase("exit: the container exited");
        let oom = handles.release(engine, id, config)?;
        Ok((code, oom))
    }

    /// Become the small monitor program: execve(2), the same PID, the
    /// container still our child. It gets the descriptors it needs by
    /// number, and the command that brings `dockyard` back after the exit.
    /// Returns only if the exec failed (then nothing has changed).
    fn hand_over(
        &self,
        engine: &Engine,
        id: &str,
        program: &Path,
        backoff: Duration,
    ) -> anyhow::Error {
        use std::os::unix::process::CommandExt;
        // The small program runs from its file, unsealed, and may: the
        // sealed copy guards the binary a container's process is a copy of
        // until its command is exec'd (CVE-2019-5736, lab 02), and the small
        // program never spawns anything. A container cannot even name it:
        // its PID is outside the container's PID namespace. Coming back, it
        // execs the binary we run from, sealed (see main), through this
        // descriptor: a sealed copy has no path.
        let exe = match File::open("/proc/self/exe") {
            Ok(f) => f,
            Err(e) => return anyhow!(e).context("opening /proc/self/exe"),
        };
        let s = &self.streams;
        let pid = self.handles.pid.as_raw().to_string();
        let mut pass: Vec<i32> = Vec::new();
        let mut cmd = std::process::Command::new(program);
        cmd.arg("--dir").arg(engine.containers.dir_of(id));
        cmd.args(["--pid", &pid]);
        for (fd, stream) in &s.outputs {
            cmd.arg("--out").arg(format!("{}:{stream}", fd.as_raw_fd()));
            pass.push(fd.as_raw_fd());
        }
        if let Some(fd) = &s.input {
            cmd.arg("--input").arg(fd.as_raw_fd().to_string());
            pass.push(fd.as_raw_fd());
        }
        if let Some(master) = s.tty {
            // Also one of the outputs, passed above.
            cmd.arg("--tty").arg(master.to_string());
        }
        if let Some(l) = &s.listener {
            cmd.arg("--listener").arg(l.as_raw_fd().to_string());
            pass.push(l.as_raw_fd());
        }
        for c in &s.clients {
            cmd.arg("--client").arg(c.stream.as_raw_fd().to_string());
            pass.push(c.stream.as_raw_fd());
        }
        if let Some(max) = self.log_rotation.max_size {
            cmd.args(["--log-max-size", &max.to_string()]);
            cmd.args(["--log-max-file", &self.log_rotation.max_file.to_string()]);
        }
        // What runs after the exit: `dockyard [engine flags] __monitor-exited
        // ... ID`, and the small program appends the exit code.
        let started = monotonic().saturating_sub(self.started.elapsed());
        let mut then: Vec<OsString> = vec!["dockyard".into()];
        then.extend(engine_argv(engine));
        then.extend([
            "__monitor-exited".into(),
            "--pid".into(),
            pid.clone().into(),
        ]);
        then.extend(["--started-ns".into(), started.as_nanos().to_string().into()]);
        then.extend([
            "--backoff-ms".into(),
            backoff.as_millis().to_string().into(),
        ]);
        if let Some((helper, stop)) = self.health.as_ref().and_then(|h| h.helper_fds()) {
            cmd.arg("--health").arg(stop.as_raw_fd().to_string());
            pass.push(stop.as_raw_fd());
            then.extend(["--health-pid".into(), helper.as_raw().to_string().into()]);
        }
        if engine.rootless {
            then.push("--rootless".into());
        }
        then.push(id.into());
        cmd.arg("--exe").arg(exe.as_raw_fd().to_string());
        pass.push(exe.as_raw_fd());
        cmd.arg("--").args(then);
        // Every descriptor we own is close-on-exec; only those the program
        // needs cross over, each named on its command line.
        let cloexec = |flag: i32| {
            for &fd in &pass {
                // SAFETY: F_SETFD on descriptors this process owns.
                unsafe { libc::fcntl(fd, libc::F_SETFD, flag) };
            }
        };
        cloexec(0);
        trace::phase("start: handing over to dockyard-monitor");
        let e = cmd.exec();
        cloexec(libc::FD_CLOEXEC);
        anyhow!(e)
    }
}

impl Handles {
    /// Take down what the start set up, once the container has exited;
    /// return whether the OOM killer struck.
    fn release(self, engine: &Engine, id: &str, config: &ContainerConfig) -> Result<bool> {
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
fn container_stdio(
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
    r.state.network = None;
    r.state.error = error.to_string();
    r.state.finished_at = now_rfc3339();
    engine.containers.save(&lock, &r)?;
    Ok(r.state.manually_stopped)
}

/// After the last exit: unmount the root filesystem, and with `--rm`
/// remove the container altogether.
fn cleanup_after_exit(engine: &Engine, id: &str, config: &ContainerConfig) -> Result<()> {
    let layer = engine.layer_container(id)?;
    if is_mounted(&layer.merged())? {
        overlay::overlay::unmount(&layer.merged())?;
    }
    trace::phase("exit: unmounted the overlay (lab 04)");
    if config.auto_remove {
        // --rm takes the container's anonymous volumes with it, as docker's.
        remove(engine, id, true)?;
        trace::phase("exit: removed the container (--rm)");
    }
    Ok(())
}

/// Remove a container that is not running: its writable layer, its logs,
/// its state.
pub fn remove(engine: &Engine, id: &str, anonymous_volumes: bool) -> Result<()> {
    let lock = engine.containers.lock()?;
    let anonymous: Vec<String> = match engine.containers.load(id).and_then(|r| config_of(&r)) {
        Ok(c) if anonymous_volumes => c
            .mounts
            .iter()
            .filter(|m| m.anonymous)
            .map(|m| m.source.clone())
            .collect(),
        _ => Vec::new(),
    };
    // A monitor that was killed (kill -9, a reboot) could not clean up: its
    // container's cgroup and overlay mount may still be there.
    if let Ok(record) = engine.containers.load(id) {
        let config = config_of(&record)?;
        let parent = config.cgroup_parent_or_default();
        let host = cgroups::detect()?;
        cgroups::remove_stale(&host, parent, id)?;
        if config.cgroup_parent.is_empty() && !engine.rootless {
            cgroups::remove_parent_if_empty(&host, parent)?;
        }
    }
    let layer = engine.layer_container(id)?;
    engine.images.remove_container(&layer)?;
    drop(lock);
    for name in anonymous {
        engine.volumes.remove(&name)?;
    }
    Ok(())
}

/// Whether something is mounted exactly at `path`.
///
/// statx(2) says so in one call (STATX_ATTR_MOUNT_ROOT, Linux 5.8), where
/// reading /proc/self/mountinfo formats the whole mount table; that is the
/// fallback for an older kernel. A path that does not exist is not mounted.
pub fn is_mounted(path: &Path) -> Result<bool> {
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .context("a path with a NUL byte")?;
    // SAFETY: statx fills the zeroed struct we pass, of the right type.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    let r = unsafe {
        libc::statx(
            libc::AT_FDCWD,
            c_path.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
            libc::STATX_BASIC_STATS,
            &mut stx,
        )
    };
    if r == 0 && stx.stx_attributes_mask & libc::STATX_ATTR_MOUNT_ROOT as u64 != 0 {
        return Ok(stx.stx_attributes & libc::STATX_ATTR_MOUNT_ROOT as u64 != 0);
    }
    if r != 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::NotFound {
        return Ok(false);
    }
    let mounts =
        std::fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
    let p = path.to_string_lossy();
    Ok(mounts
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(p.as_ref())))
}

/// Run a command in a running container (lab 02's `join`): it enters the
/// container's cgroup (every hierarchy lab 03 finds for it), then its
/// namespaces, and runs under the container's security layer. In the
/// foreground our stdio is the command's, and the exit code is its own.
/// `exec`'s flags.
#[derive(Clone, Copy)]
pub struct ExecOptions<'a> {
    pub extra_env: &'a [String],
    pub workdir: Option<&'a str>,
    pub interactive: bool,
    pub tty: bool,
    pub detach: bool,
    pub user: Option<&'a str>,
}

pub fn exec(record: &Record, argv: &[String], opts: &ExecOptions) -> Result<i32> {
    let ExecOptions {
        extra_env,
        workdir,
        interactive,
        tty,
        detach,
        user,
    } = *opts;
    let config = config_of(record)?;
    let mut env = config.env.clone();
    for kv in extra_env {
        let key = kv.split('=').next().unwrap_or_default();
        env.retain(|e| e.split('=').next() != Some(key));
        env.push(kv.clone());
    }
    let cwd = workdir
        .map(str::to_string)
        .unwrap_or_else(|| config.working_dir.clone());
    let null = File::open("/dev/null").context("opening /dev/null")?;
    // -t: lab 02's relay makes the pty in the container's devpts and sends
    // us the master; our stdio then only hears the relay's own errors.
    let tty = tty && !detach;
    let stdin = if interactive && !detach && !tty {
        0
    } else {
        null.as_raw_fd()
    };
    let stdio = match detach {
        true => [null.as_raw_fd(); 3],
        false => [stdin, 1, 2],
    };
    let spec = namespaces::join::JoinSpec {
        target: Pid::from_raw(record.state.pid),
        argv: argv.iter().map(OsString::from).collect(),
        env: env.iter().map(OsString::from).collect(),
        cwd: (!cwd.is_empty()).then(|| PathBuf::from(cwd)),
        security: Some(config.security()?),
        stdio: Some(stdio),
        detach,
        tty,
        tty_size: tty.then(dockyard_monitor::pump::our_window_size).flatten(),
        // The container's own root, where its passwd file is: through
        // /proc/PID/root of its first process.
        run_as: run_as(
            Path::new(&format!("/proc/{}/root", record.state.pid)),
            user.unwrap_or(&config.user),
        )?,
    };
    let host = cgroups::detect()?;
    let parent = config.cgroup_parent_or_default();
    let dirs = cgroups::group_dirs(&host, parent, &record.id)?;
    let mut relay = namespaces::join::join(&spec, || {
        for d in &dirs {
            // "0" means the writing process itself. This process has one
            // thread, so on v1 it moves through `tasks`, which spares the
            // RCU wait of a `cgroup.procs` move (lab 03's `Entry`).
            let file = cgroups::self_join_file(d);
            std::fs::write(&file, "0").with_context(|| format!("joining {}", d.display()))?;
        }
        Ok(())
    })?;
    drop(null);
    if detach {
        return Ok(0);
    }
    if let Some(master) = relay.take_console() {
        let input = match interactive {
            true => Some(master.try_clone().context("dup of the pty master")?),
            false => None,
        };
        let raw = input.is_some().then(dockyard_monitor::pump::RawMode::enter);
        let tty = Some(master.as_raw_fd());
        let streams = dockyard_monitor::pump::Streams {
            outputs: vec![(master, "stdout")],
            own_stdin: input.is_some(),
            input,
            tty,
            listener: None,
            clients: Vec::new(),
        };
        let code = dockyard_monitor::pump::pump(relay.pid(), streams, None, true);
        drop(raw);
        return Ok(code?);
    }
    Ok(relay
        .wait_forwarding(&namespaces::FORWARDED_SIGNALS)?
        .code())
}

/// `-u` or the image's USER, resolved in the container's own passwd file.
fn run_as(rootfs: &Path, user: &str) -> Result<Option<namespaces::RunAs>> {
    if user.is_empty() || user == "root" || user == "0" || user == "0:0" {
        return Ok(None);
    }
    Ok(Some(namespaces::resolve_user(rootfs, user)?))
}

/// Lab 05's settings for this data root: its networks' state lives under
/// the data root (so two data roots never share leases); daemon.json's
/// `bip` sets the default bridge's address, `default-address-pools` where
/// new networks' subnets come from, and `mtu` their veths' MTU.
pub fn net_config(engine: &Engine) -> net::Config {
    let mut cfg = net::Config {
        state_dir: engine.root.join("network"),
        mtu: engine.config.mtu,
        ..Default::default()
    };
    if let Some(bip) = engine.config.bip.as_deref().and_then(|b| b.parse().ok()) {
        cfg.bip = Some(bip);
    }
    let pools: Vec<net::ipam::Pool> = engine
        .config
        .default_address_pools
        .iter()
        .filter_map(|p| format!("{}:{}", p.base, p.size).parse().ok())
        .collect();
    if !pools.is_empty() {
        cfg.pools = pools;
    }
    cfg
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

/// `--add-host NAME:IP` as (NAME, IP); IP may be `host-gateway`.
pub fn split_add_host(h: &str) -> Result<(String, String)> {
    match h.split_once(':') {
        Some((name, ip)) if !name.is_empty() && !ip.is_empty() => {
            Ok((name.to_string(), ip.to_string()))
        }
        _ => {
            bail!("invalid argument {h:?} for \"--add-host\" flag: bad format for add-host: {h:?}")
        }
    }
}

/// What inspect shows under NetworkSettings, kept in the state.
fn endpoint_json(ep: &net::Endpoint) -> serde_json::Value {
    serde_json::json!({
        "Network": ep.network,
        "IPAddress": ep.ip.to_string(),
        "IPPrefixLen": ep.prefix,
        "Gateway": ep.gateway.to_string(),
        "MacAddress": ep.mac,
        "Bridge": ep.bridge,
        "Ports": ep.ports.iter().map(|p| serde_json::json!({
            "ContainerPort": p.container_port,
            "Proto": format!("{:?}", p.proto).to_lowercase(),
            "HostIp": p.host_ip.map(|i| i.to_string()).unwrap_or_else(|| "0.0.0.0".into()),
            "HostPort": p.host_port,
        })).collect::<Vec<_>>(),
    })
}

/// The bridge networks lab 05 holds for this data root.
pub fn networks(engine: &Engine) -> Result<Vec<net::ipam::NetworkState>> {
    let cfg = net_config(engine);
    if !cfg.state_dir.exists() {
        return Ok(Vec::new());
    }
    net::networks(&cfg)
}

/// A running container's counters (lab 03), and its memory limit.
pub fn container_stats(record: &Record) -> Result<(cgroups::Stats, Option<u64>)> {
    let config = config_of(record)?;
    let parent = config.cgroup_parent_or_default();
    let cg = cgroups::Cgroup::open(&cgroups::detect()?, parent, &record.id)?;
    Ok((cg.stats()?, config.limits.memory))
}

/// Check a `--ulimit` value (lab 02 parses it).
pub fn parse_ulimit(u: &str) -> Result<(nix::sys::resource::Resource, u64, u64)> {
    namespaces::parse_ulimit(u)
}

/// Every process of a running container: the members of its cgroup.
pub fn container_pids(record: &Record) -> Result<Vec<i32>> {
    let config = config_of(record)?;
    let parent = config.cgroup_parent_or_default();
    let host = cgroups::detect()?;
    let mut pids = Vec::new();
    for d in cgroups::group_dirs(&host, parent, &record.id)? {
        if let Ok(text) = std::fs::read_to_string(d.join("cgroup.procs")) {
            pids.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
        }
    }
    pids.sort_unstable();
    pids.dedup();
    Ok(pids)
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
        .with_context(|| format!("sending {sig} to container {}", &record.id[..12]))?;
    if record.state.status == Status::Paused && sig == Signal::SIGKILL {
        // Let the frozen processes die.
        freeze(engine, &record, false)?;
    }
    Ok(())
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
    if r.state.status == Status::Paused {
        // A frozen task cannot act on a signal (on v1 not even SIGKILL):
        // thaw first, as docker does.
        freeze(engine, &r, false)?;
    } else if r.state.status != Status::Running {
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
    fn is_mounted_knows_mount_points_from_directories() {
        assert!(is_mounted(Path::new("/proc")).unwrap());
        assert!(!is_mounted(Path::new("/proc/self/fd")).unwrap());
        assert!(!is_mounted(Path::new("/no/such/dir")).unwrap());
        let dir = tempfile::tempdir().unwrap();
        assert!(!is_mounted(dir.path()).unwrap());
    }

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
