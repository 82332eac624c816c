//! `docker create`: a container's record and writable layer, its config
//! completed with the image's defaults, before anything runs.

use anyhow::{bail, Context, Result};
use lab03_cgroups as cgroups;

use super::config::{ContainerConfig, Limits};
use crate::engine::Engine;
use crate::logs;
use crate::state::{self, now_rfc3339, Record};

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
    // --device works: root of a user namespace may not mknod(2), so lab
    // 02 bind-mounts the host's nodes instead (`devnodes::bind_here`).
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
/// with the reason (see `rootless::enter_rootless`).
pub(crate) fn check_rootless(config: &ContainerConfig) -> Result<()> {
    use crate::rootless::rootless_refusal;
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
        // Only inside a cgroup v2 subtree delegated to the user, where create
        // put the parent (`rootless::delegated_parent`); a start from outside
        // that subtree could not move the container into its group.
        let placed =
            crate::rootless::delegated_parent(&config.cgroup_parent, &config.limits.to_lab())?;
        if placed != config.cgroup_parent {
            bail!(
                "the container's cgroup parent {:?} is outside the cgroup v2 subtree \
                 delegated to this process ({placed:?}): start it from a shell inside \
                 the subtree it was created in",
                config.cgroup_parent
            );
        }
    }
    Ok(())
}
// ANCHOR_END: check_rootless

// ANCHOR: check_settings
/// What dockerd's `verifyContainerSettings` refuses, refused here with its
/// words, before anything is created: a setting that would only fail later
/// (at start, at stop, or at `rm`) leaves a container nobody can use.
///
/// - `--cpus`: a number of CPUs, finite, from 0 to this host's count
///   (`NaN` and `inf` are floats Rust parses, but no rational number; docker's
///   CLI refuses them, and `NaN` compares false with everything, so a range
///   check alone would let it through).
/// - `--cpuset-cpus`/`--cpuset-mems`: the kernel's list format, naming
///   only CPUs and memory nodes that are online (the kernel would refuse
///   the write at start, after the record was made).
/// - `-v`: never onto the container's `/`, which would hide its whole root.
/// - the health check's durations: 0 (the default) or at least 1ms
///   (`containertypes.MinimumDuration`); a 1ns interval runs the check
///   in a busy loop.
/// - `--cgroup-parent`: lab 03's rule, plain names only, no `..`: a parent
///   must not lead out of the hierarchy or onto somebody else's group.
/// - `HostConfig.ShmSize`: not negative (docker's CLI cannot send one, an
///   API client can).
pub(crate) fn check_settings(config: &ContainerConfig) -> Result<()> {
    if config.shm_size < 0 {
        bail!("SHM size can not be less than 0");
    }
    check_process_settings(config)?;
    if let Some(cpus) = config.limits.cpus {
        if !cpus.is_finite() {
            bail!(
                "invalid argument \"{cpus}\" for \"--cpus\" flag: \
                 failed to parse {cpus} as a rational number"
            );
        }
        let n = cgroups::ncpus();
        if cpus < 0.0 || cpus > n as f64 {
            bail!("Range of CPUs is from 0.01 to {n}.00, as there are only {n} CPUs available");
        }
    }
    // dockerd's words, in its order: --cpus is the same CFS bandwidth as a
    // raw period and quota, so not both; the kernel takes a period of 1ms
    // to 1s and a quota of at least 1ms.
    let (period, quota) = (
        config.limits.cpu_period.unwrap_or(0),
        config.limits.cpu_quota.unwrap_or(0),
    );
    let nano_cpus = config.limits.cpus.is_some_and(|c| c > 0.0);
    if nano_cpus && period > 0 {
        bail!("Conflicting options: Nano CPUs and CPU Period cannot both be set");
    }
    if nano_cpus && quota > 0 {
        bail!("Conflicting options: Nano CPUs and CPU Quota cannot both be set");
    }
    if period != 0 && !(1000..=1_000_000).contains(&period) {
        bail!(
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"
        );
    }
    if quota > 0 && quota < 1000 {
        bail!("CPU cfs quota can not be less than 1ms (i.e. 1000)");
    }
    // Docker's daemon checks the lists against what the host has online.
    for (list, node) in [
        (&config.limits.cpuset_cpus, false),
        (&config.limits.cpuset_mems, true),
    ] {
        let Some(list) = list else { continue };
        let (what, nodes) = match node {
            false => ("cpus", "CPUs"),
            true => ("mems", "memory nodes"),
        };
        let wanted = cgroups::parse_list(list)
            .map_err(|e| anyhow::anyhow!("Invalid value {list} for cpuset {what}: {e}"))?;
        let have = cgroups::online(node);
        let available = cgroups::parse_list(&have).unwrap_or_default();
        if wanted.iter().any(|n| !available.contains(n)) {
            bail!("Requested {nodes} are not available - requested {list}, available: {have}");
        }
    }
    for m in &config.mounts {
        if std::path::Path::new(&m.target)
            .components()
            .all(|c| matches!(c, std::path::Component::RootDir))
        {
            let mut spec = match m.anonymous {
                true => m.target.clone(),
                false => format!("{}:{}", m.source, m.target),
            };
            if m.read_only {
                spec.push_str(":ro");
            }
            bail!(
                "invalid volume specification: '{spec}': invalid mount config for type \"{}\": \
                 invalid specification: destination can't be '/'",
                m.kind
            );
        }
    }
    if let Some(check) = &config.healthcheck {
        check.validate()?;
    }
    if !config.cgroup_parent.is_empty() {
        // Lab 03's own check, on a name that exists nowhere: it reads no
        // cgroup file before it has refused a bad parent.
        cgroups::group_dirs(&cgroups::detect()?, &config.cgroup_parent, "check")?;
    }
    Ok(())
}
// ANCHOR_END: check_settings

/// The image's defaults, under what the user gave: command, entrypoint,
/// environment, working directory, stop signal, user, labels, exposed ports
/// and volumes.
fn image_defaults(image: &lab04_overlay::store::Image, config: &mut ContainerConfig) -> Result<()> {
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
            // An image's STOPSIGNAL that names no signal (SIGFOO) is not an
            // error for docker, which stops such a container with SIGTERM
            // (`Container.StopSignal`); kept, `stop` would fail every time.
            let image_signal = ic.stop_signal().clone().unwrap_or_default();
            if super::signal::parse_signal(&image_signal).is_ok() {
                config.stop_signal = image_signal;
            }
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
        // volume is made with the container (`container_volumes`), seeded
        // from the image when the container first starts, and `rm -v` or
        // `--rm` takes it away with the container.
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
    Ok(())
}

/// `--memory-swappiness` and `--oom-kill-disable`, as dockerd takes them:
/// v1 memory controller files that v2 does not have, so on a v2 host they
/// are discarded with dockerd's warnings (and not recorded) rather than
/// refused; a swappiness that is kept must be 0 to 100.
fn memory_settings(config: &mut ContainerConfig) -> Result<Vec<String>> {
    let mut warnings = Vec::new();
    let limits = &mut config.limits;
    if !limits.oom_kill_disable && limits.memory_swappiness.is_none() {
        return Ok(warnings);
    }
    let v1 = cgroups::detect()?.version() == cgroups::Version::V1;
    if limits.memory_swappiness.is_some() && !v1 {
        warnings.push(
            "Your kernel does not support memory swappiness capabilities or the cgroup is \
             not mounted. Memory swappiness discarded."
                .to_string(),
        );
        limits.memory_swappiness = None;
    }
    if let Some(s) = limits.memory_swappiness {
        if !(0..=100).contains(&s) {
            bail!("Invalid value: {s}, valid memory swappiness range is 0-100");
        }
    }
    if limits.oom_kill_disable && !v1 {
        warnings
            .push("Your kernel does not support OomKillDisable. OomKillDisable discarded.".into());
        limits.oom_kill_disable = false;
    }
    if limits.oom_kill_disable && limits.memory.is_none() {
        warnings.push(
            "OOM killer is disabled for the container, but no memory limit is set, this can \
             result in the system running out of resources."
                .into(),
        );
    }
    Ok(warnings)
}

/// dockerd's checks of the process flags (`--oom-score-adj`,
/// `--stop-signal`, `--sysctl`), in its words. Which namespaces make a
/// sysctl the container's own is lab 02's check, at start, as runc's.
fn check_process_settings(config: &ContainerConfig) -> Result<()> {
    if !(-1000..=1000).contains(&config.oom_score_adj) {
        bail!(
            "Invalid value {}, range for oom score adj is [-1000, 1000]",
            config.oom_score_adj
        );
    }
    // moby/sys/signal's words, lower case as dockerd gives them here.
    if !config.stop_signal.is_empty() && super::signal::parse_signal(&config.stop_signal).is_err() {
        bail!("invalid signal: {}", config.stop_signal);
    }
    Ok(())
}

/// The `/dev/shm` size of a container created without `--shm-size` (or
/// with 0), as dockerd's `adaptContainerSettings` gives it: daemon.json's
/// `default-shm-size`, else 64 MiB. (A `default-shm-size` of 0 is 64 MiB
/// too, as for `build`: dockerd would mount a tmpfs without a limit.)
pub fn default_shm_size(engine: &Engine) -> Result<i64> {
    let size = match &engine.config.default_shm_size {
        Some(s) => crate::units::ram_in_bytes(s)
            .map_err(|e| anyhow::anyhow!("daemon.json default-shm-size {s:?}: {e}"))?,
        None => 0,
    };
    Ok(if size > 0 {
        size
    } else {
        super::DEFAULT_SHM_SIZE as i64
    })
}

/// Create a container: its writable layer and its record, state "created".
/// Returned with the warnings of the settings this host cannot honour
/// (dockerd's words): the front prints them as its client does, or sends
/// them back in the API's `Warnings`, so they reach whoever asked rather
/// than the stderr of a service nobody watches.
pub fn create(
    engine: &Engine,
    name: Option<&str>,
    mut config: ContainerConfig,
) -> Result<(Record, Vec<String>)> {
    if engine.rootless && (config.limits != Limits::default() || !config.cgroup_parent.is_empty()) {
        // Rootless limits live in the user's delegated cgroup subtree: the
        // record keeps the parent there, or create refuses them.
        config.cgroup_parent =
            crate::rootless::delegated_parent(&config.cgroup_parent, &config.limits.to_lab())?;
    }
    check_userns(engine, &config)?;
    let mut warnings = memory_settings(&mut config)?;
    warnings.extend(super::more_settings(&mut config)?);
    // dockerd's one warning of a create that is not about resources: on the
    // host's network the container has no ports of its own to publish.
    if config.network_mode == "host" && !config.publish.is_empty() {
        warnings.push("Published ports are discarded when using host network mode".into());
    }
    super::resolve_more_devices(&mut config.limits)?;
    // The kernel's files name a device by its numbers: found now, from the
    // node, so that a missing or non-block device fails create, not start.
    for t in config
        .limits
        .device_read_bps
        .iter_mut()
        .chain(config.limits.device_write_bps.iter_mut())
    {
        let found = cgroups::Throttle::for_device(std::path::Path::new(&t.path), t.rate)?;
        (t.major, t.minor) = (found.major, found.minor);
    }
    super::ns_modes::check_modes(&config)?;
    check_settings(&config)?;
    // A name, an ID or a unique ID prefix (`run` pulled what was missing).
    let image = crate::image_lookup::find(engine, &config.image)?;
    config.image_id = image.config_digest.clone();
    image_defaults(&image, &mut config)?;
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
    if config.shm_size == 0 {
        config.shm_size = default_shm_size(engine)?;
    }
    super::ns_modes::adapt(engine, &mut config)?;
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
    // After every check that can refuse the container (the name above
    // included): a refused create has made no volume to take back.
    let (volumes, existing_volumes) = container_volumes(engine, &config)?;
    // A --rm container's records skip the fsyncs (see the state module).
    // Its state.json is written into the staged directory, which appears in
    // containers/ only once complete (lab 04's `create_container_staged`):
    // killed at any moment, create leaves a whole container or none.
    let mut record = None;
    let staged = engine
        .images
        .create_container_staged(&image, !config.auto_remove, |layer| {
            if config.hostname.is_empty() {
                // On the host's network, the host's name, as docker's daemon does.
                let host = (config.network_mode == "host")
                    .then(|| nix::unistd::gethostname().ok()?.into_string().ok())
                    .flatten();
                config.hostname = host.unwrap_or_else(|| layer.id[..12].to_string());
            }
            let r = Record {
                id: layer.id.clone(),
                name,
                created: now_rfc3339(),
                state: state::State::default(),
                config: serde_json::to_value(&config)
                    .context("serializing the container's config")?,
            };
            engine.containers.save_in(&lock, &r, &layer.dir)?;
            record = Some(r);
            Ok(())
        });
    if let Err(e) = staged {
        remove_volumes(engine, &volumes);
        return Err(e);
    }
    drop(lock);
    for name in &existing_volumes {
        if let Err(e) = engine.volumes.copy_up_if_empty(name) {
            eprintln!("WARNING: marking the volume {name} for the image's copy-up: {e:#}");
        }
    }
    let record = record.context("the container's record was not written")?;
    crate::events::container(engine, &record, "create", &[]);
    Ok((record, warnings))
}

/// The container's volumes, named and anonymous, made now, as docker's
/// `create` makes them (moby's `registerMountPoints` and
/// `createContainerOSSpecificSettings`): `volume ls` lists them, `volume
/// rm` refuses them as in use and `inspect` shows their `Source` before
/// the container starts, and its first start seeds them from the image
/// (see `Volumes::create_for_container`). Returns the names of those made
/// now and of those that were there already; if one cannot be made, those
/// made before it are removed again.
fn container_volumes(
    engine: &Engine,
    config: &ContainerConfig,
) -> Result<(Vec<String>, Vec<String>)> {
    let (mut made, mut existing) = (Vec::new(), Vec::new());
    for m in config.mounts.iter().filter(|m| m.kind == "volume") {
        match engine.volumes.create_for_container(&m.source, m.anonymous) {
            Ok(true) => made.push(m.source.clone()),
            Ok(false) => existing.push(m.source.clone()),
            Err(e) => {
                remove_volumes(engine, &made);
                return Err(e);
            }
        }
    }
    Ok((made, existing))
}

/// A create that failed leaves no volume behind.
fn remove_volumes(engine: &Engine, names: &[String]) {
    for name in names {
        if let Err(e) = engine.volumes.remove(name) {
            eprintln!("WARNING: removing the volume {name} of a failed create: {e:#}");
        }
    }
}
