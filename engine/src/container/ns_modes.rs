//! # Sharing namespaces: `--pid`, `--ipc`, `--uts`, `--cgroupns`
//!
//! A container gets a namespace of each kind of its own (lab 02). These
//! flags give it the host's instead, or another container's, as
//! `--network host` and `--network container:NAME` do for the network:
//!
//! ```text
//! --pid host            no PID namespace: `ps` sees the host's processes
//! --pid container:X     X's PID namespace, entered with setns(2) before the
//!                       clone (lab 02's `PidForChildren`): X's init is its PID 1
//! --ipc private         its own IPC namespace and /dev/shm (docker's default,
//!                       unless daemon.json's default-ipc-mode says shareable)
//! --ipc shareable       the same, with a /dev/shm kept on the host that others may join
//! --ipc none            its own IPC namespace, no /dev/shm
//! --ipc host            the host's IPC namespace and /dev/shm
//! --ipc container:X     X's IPC namespace and X's /dev/shm (X shareable or host)
//! --uts host            the host's hostname (no UTS namespace)
//! --cgroupns host|private  the host's cgroup namespace or its own (the default:
//!                       daemon.json's default-cgroupns-mode, else private on
//!                       cgroup v2, the host's on v1)
//! ```
//!
//! In the shell, `--pid container:X --ipc container:X` is
//! `nsenter --pid=/proc/XPID/ns/pid --ipc=/proc/XPID/ns/ipc unshare --fork --mount ... CMD`.
//!
//! What is checked where follows docker: the client refuses a PID, UTS or
//! cgroup namespace mode it does not know; the daemon (`create` here, and
//! the API) refuses an IPC mode it does not know and `--uts host` with
//! `--hostname`, records the defaults (`private` IPC, the host's cgroup
//! namespace mode, or daemon.json's `default-ipc-mode` and
//! `default-cgroupns-mode`, which it checked when it read them) and
//! `container:NAME` as `container:ID`; and the start needs that container
//! running, and for IPC its /dev/shm shareable.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Result};
use lab02_namespaces as namespaces;
use lab03_cgroups as cgroups;
use namespaces::security::DevShm;
use nix::sched::CloneFlags;

use super::config::{config_of, ContainerConfig};
use crate::engine::Engine;
use crate::state::{Record, Status};

/// The host's own `/dev/shm`, which `--ipc host` binds in.
const HOST_SHM: &str = "/dev/shm";

/// `ID` of a mode `container:ID` (an empty name too, as docker's
/// `containerID` reads it).
fn container_of(mode: &str) -> Option<&str> {
    mode.strip_prefix("container:")
}

/// docker's `IpcMode.Valid`: any `container:` mode, even without a name.
fn ipc_valid(mode: &str) -> bool {
    matches!(mode, "" | "none" | "private" | "host" | "shareable") || container_of(mode).is_some()
}

/// docker's `PidMode.Valid`: `container:` needs a name.
pub fn pid_valid(mode: &str) -> bool {
    matches!(mode, "" | "host") || container_of(mode).is_some_and(|n| !n.is_empty())
}

/// docker's `UTSMode.Valid`.
pub fn uts_valid(mode: &str) -> bool {
    matches!(mode, "" | "host")
}

/// docker's `CgroupnsMode.Valid`.
pub fn cgroupns_valid(mode: &str) -> bool {
    matches!(mode, "" | "private" | "host")
}

/// What dockerd refuses of these modes when it reads a create request, in
/// its order and words (runconfig's `validateNetMode`, then
/// `verifyPlatformContainerSettings`).
pub fn check_modes(config: &ContainerConfig) -> Result<()> {
    if config.uts_mode == "host" && !config.hostname.is_empty() {
        bail!("conflicting options: hostname and the UTS mode");
    }
    if !ipc_valid(&config.ipc_mode) {
        bail!("invalid IPC mode: {}", config.ipc_mode);
    }
    if !pid_valid(&config.pid_mode) {
        bail!("invalid PID mode: {}", config.pid_mode);
    }
    if !uts_valid(&config.uts_mode) {
        bail!("invalid UTS mode: {}", config.uts_mode);
    }
    if !cgroupns_valid(&config.cgroupns_mode) {
        bail!("invalid cgroup namespace mode: {}", config.cgroupns_mode);
    }
    Ok(())
}

/// At create, as dockerd's `adaptContainerSettings`: the defaults the
/// record keeps (daemon.json's `default-ipc-mode`, else `private`; the
/// host's cgroup namespace for `--privileged` on v1, else daemon.json's
/// `default-cgroupns-mode`, else private on a cgroup v2 host and the
/// host's on v1),
/// and another container named by its ID, so that a rename does not
/// break the sharing. A container that does not exist is refused now
/// (dockerd's `generateSecurityOpt` looks it up, except with the host's
/// PID or IPC namespace or `--privileged`).
pub fn adapt(engine: &Engine, config: &mut ContainerConfig) -> Result<()> {
    if engine.remap.is_some() && config.userns_mode != "host" && config.pid_mode == "host" {
        bail!("cannot share the host PID namespace when user namespaces are enabled");
    }
    // daemon.json's `default-ipc-mode` and `default-cgroupns-mode` (checked
    // when it was read) stand in for a flag not given, as in dockerd.
    if config.ipc_mode.is_empty() {
        config.ipc_mode = engine
            .config
            .default_ipc_mode
            .as_deref()
            .unwrap_or("private")
            .into();
    }
    if config.cgroupns_mode.is_empty() {
        // A hybrid host counts as v1, as containerd's cgroups.Mode() is
        // not Unified there.
        let v2 = cgroups::detect()?.version() == cgroups::Version::V2;
        config.cgroupns_mode = match engine.config.default_cgroupns_mode.as_deref() {
            // `--privileged` on v1 keeps the host's whatever the default:
            // dockerd looks at the key only after that case.
            _ if config.privileged && !v2 => "host",
            Some(mode) => mode,
            None if v2 => "private",
            None => "host",
        }
        .into();
    }
    let look_up = !(config.ipc_mode == "host" || config.pid_mode == "host" || config.privileged);
    for mode in [&mut config.pid_mode, &mut config.ipc_mode] {
        let Some(name) = container_of(mode).filter(|n| !n.is_empty()) else {
            continue;
        };
        match engine.containers.resolve(name) {
            Ok(other) => *mode = format!("container:{}", other.id),
            Err(e) if look_up => return Err(e),
            Err(_) => {}
        }
    }
    Ok(())
}

/// The namespaces and `/dev/shm` of one start, found on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shared {
    /// The first process of the container whose PID namespace it enters.
    pub pid_of: Option<i32>,
    /// The first process of the container whose IPC namespace it enters.
    pub ipc_of: Option<i32>,
    /// What its `/dev/shm` is.
    pub dev_shm: DevShm,
}

/// Where a `shareable` container's /dev/shm is kept on the host, as
/// dockerd keeps it (`containers/ID/mounts/shm`): a tmpfs of its own,
/// mounted at each start and unmounted when it stops.
pub fn shareable_dir(engine: &Engine, id: &str) -> PathBuf {
    engine.containers.dir_of(id).join("shm")
}

/// Find the containers whose namespaces this start enters, in docker's
/// order and words (IPC first, then PID): each must be running.
pub fn shared(engine: &Engine, record: &Record, config: &ContainerConfig) -> Result<Shared> {
    let mut out = Shared {
        pid_of: None,
        ipc_of: None,
        dev_shm: DevShm::Tmpfs,
    };
    match config.ipc_mode.as_str() {
        "host" => {
            if !Path::new(HOST_SHM).is_dir() {
                bail!("/dev/shm is not mounted, but must be for --ipc=host");
            }
            out.dev_shm = DevShm::Bind(HOST_SHM.into());
        }
        "none" => out.dev_shm = DevShm::None,
        "shareable" => out.dev_shm = DevShm::Bind(shareable_dir(engine, &record.id)),
        mode => {
            if let Some(name) = container_of(mode) {
                let (pid, shm) = ipc_donor(engine, name)
                    .map_err(|e| anyhow!("failed to join IPC namespace: {e:#}"))?;
                out.ipc_of = Some(pid);
                out.dev_shm = DevShm::Bind(shm);
            }
        }
    }
    if let Some(name) = container_of(&config.pid_mode) {
        let other =
            running(engine, name).map_err(|e| anyhow!("failed to join PID namespace: {e:#}"))?;
        out.pid_of = Some(other.state.pid);
    }
    Ok(out)
}

/// A container that must be running to be joined, as dockerd's
/// `getPIDContainer` wants it.
fn running(engine: &Engine, name: &str) -> Result<Record> {
    let r = engine
        .containers
        .reconcile(engine.containers.resolve(name)?)?;
    match r.state.status {
        Status::Running | Status::Paused => Ok(r),
        Status::Restarting => {
            bail!("Container {name} is restarting, wait until the container is running")
        }
        _ => bail!("container {name} is not running"),
    }
}

/// The container whose IPC namespace is joined (dockerd's
/// `getIPCContainer`): running, and its /dev/shm one others may have: the
/// host's (it is `--ipc host`), its own kept on the host (`shareable`), or
/// the one it was given itself (`container:`).
fn ipc_donor(engine: &Engine, name: &str) -> Result<(i32, PathBuf)> {
    let donor = running(engine, name)?;
    let non_shareable = || {
        anyhow!(
            "container {name}: non-shareable IPC (hint: use IpcMode:shareable for the donor container)"
        )
    };
    let mut r = donor.clone();
    // A chain of `container:` modes ends at a shareable or host one.
    for _ in 0..16 {
        let c = config_of(&r)?;
        match c.ipc_mode.as_str() {
            "host" => return Ok((donor.state.pid, HOST_SHM.into())),
            "shareable" => {
                let dir = shareable_dir(engine, &r.id);
                return match lab04_overlay::overlay::is_mounted(&dir) {
                    Ok(true) => Ok((donor.state.pid, dir)),
                    _ => Err(non_shareable()),
                };
            }
            mode => match container_of(mode) {
                Some(next) => r = engine.containers.resolve(next)?,
                None => return Err(non_shareable()),
            },
        }
    }
    Err(non_shareable())
}

/// Lab 02's and lab 03's settings for these modes: which namespaces are
/// not created, which are entered by path (`/proc/PID/ns/KIND`), the
/// hostname (none of its own with the host's UTS namespace), what
/// `/dev/shm` is, and the cgroup namespace.
pub fn apply(config: &ContainerConfig, shared: &Shared, blueprint: &mut cgroups::Blueprint) {
    let spec = &mut blueprint.process;
    let mut share = |kind: CloneFlags, mode: &str, of: Option<i32>| match (mode, of) {
        (_, Some(pid)) => {
            spec.namespaces -= kind;
            let pid = nix::unistd::Pid::from_raw(pid);
            spec.join_namespaces
                .push(namespaces::NamespacePath::of_process(kind, pid));
        }
        ("host", None) => spec.namespaces -= kind,
        _ => {}
    };
    share(CloneFlags::CLONE_NEWPID, &config.pid_mode, shared.pid_of);
    share(CloneFlags::CLONE_NEWIPC, &config.ipc_mode, shared.ipc_of);
    share(CloneFlags::CLONE_NEWUTS, &config.uts_mode, None);
    if config.uts_mode == "host" {
        spec.hostname = None;
    }
    if let Some(security) = spec.security.as_mut() {
        security.dev_shm = shared.dev_shm.clone();
    }
    blueprint.cgroupns = match config.cgroupns_mode.as_str() {
        "private" => cgroups::CgroupNs::Private,
        "host" => cgroups::CgroupNs::Host,
        _ => cgroups::CgroupNs::HostDefault,
    };
}

/// A `shareable` container's /dev/shm on the host: a tmpfs of
/// `--shm-size` at [`shareable_dir`], mounted before it starts (lab 02).
pub fn mount_shareable(engine: &Engine, id: &str, config: &ContainerConfig) -> Result<()> {
    if config.ipc_mode != "shareable" {
        return Ok(());
    }
    let dir = shareable_dir(engine, id);
    namespaces::security::shm::mount_shareable(&dir, config.shm_size_or_default())
}

/// Unmount a container's shareable /dev/shm, if it is mounted: when it
/// stops, and before `rm` removes its directory.
pub fn unmount_shareable(engine: &Engine, id: &str) {
    let dir = shareable_dir(engine, id);
    if let Err(e) = namespaces::security::shm::unmount_shareable(&dir) {
        eprintln!("dockyard: {e:#}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_are_valid_as_dockers_types_say() {
        assert!(pid_valid("") && pid_valid("host") && pid_valid("container:web"));
        assert!(!pid_valid("container:") && !pid_valid("private") && !pid_valid("bogus"));
        assert!(ipc_valid("container:") && ipc_valid("shareable") && ipc_valid("none"));
        assert!(!ipc_valid("bogus"));
        assert!(uts_valid("host") && !uts_valid("private"));
        assert!(cgroupns_valid("private") && cgroupns_valid("host") && !cgroupns_valid("x"));
    }

    #[test]
    fn dockerd_refuses_in_its_order_and_words() {
        let mut c = ContainerConfig {
            uts_mode: "host".into(),
            hostname: "box".into(),
            ipc_mode: "bogus".into(),
            ..Default::default()
        };
        let err = |c: &ContainerConfig| check_modes(c).unwrap_err().to_string();
        assert_eq!(err(&c), "conflicting options: hostname and the UTS mode");
        c.hostname.clear();
        assert_eq!(err(&c), "invalid IPC mode: bogus");
        c.ipc_mode = "private".into();
        c.pid_mode = "container:".into();
        assert_eq!(err(&c), "invalid PID mode: container:");
        c.pid_mode.clear();
        c.cgroupns_mode = "nope".into();
        assert_eq!(err(&c), "invalid cgroup namespace mode: nope");
    }

    #[test]
    fn modes_become_lab_settings() {
        let spec = namespaces::Spec::new("/nonexistent", vec!["true".into()]);
        let mut bp = cgroups::Blueprint::new(spec);
        bp.process.hostname = Some("abc".into());
        bp.process.security = Some(namespaces::security::Security::docker_default());
        let config = ContainerConfig {
            pid_mode: "host".into(),
            ipc_mode: "container:x".into(),
            uts_mode: "host".into(),
            cgroupns_mode: "private".into(),
            ..Default::default()
        };
        let shared = Shared {
            pid_of: None,
            ipc_of: Some(42),
            dev_shm: DevShm::Bind("/x/shm".into()),
        };
        apply(&config, &shared, &mut bp);
        let ns = bp.process.namespaces;
        assert!(!ns.contains(CloneFlags::CLONE_NEWPID));
        assert!(!ns.contains(CloneFlags::CLONE_NEWIPC));
        assert!(!ns.contains(CloneFlags::CLONE_NEWUTS));
        assert!(ns.contains(CloneFlags::CLONE_NEWNS));
        assert_eq!(bp.process.hostname, None);
        assert_eq!(
            bp.process.join_namespaces,
            vec![namespaces::NamespacePath::new(
                CloneFlags::CLONE_NEWIPC,
                "/proc/42/ns/ipc"
            )]
        );
        assert_eq!(
            bp.process.security.unwrap().dev_shm,
            DevShm::Bind("/x/shm".into())
        );
        assert_eq!(bp.cgroupns, cgroups::CgroupNs::Private);
    }
}
