//! The engine as a whole: `info` (what this engine is and runs on) and
//! `system df` (what its images, containers and volumes take on disk), the
//! numbers behind `GET /info` and `GET /system/df`.
//!
//! A daemonless engine has no server to ask: "the server" here is this data
//! root, its daemon.json and the host it is on, read when asked. The same
//! facts by hand:
//!
//! ```text
//! $ uname -rm; grep PRETTY_NAME /etc/os-release; grep MemTotal /proc/meminfo
//! $ stat -fc %T /sys/fs/cgroup                    # cgroup2fs: cgroup v2
//! $ du -sb /var/lib/dockyard/layers /var/lib/dockyard/volumes
//! ```

use std::collections::BTreeSet;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::container::{self, config_of, list_all};
use crate::engine::Engine;
use crate::image;
use crate::state::{Record, Status};
use crate::units::dir_size;
use lab03_cgroups::Version as CgroupVersion;

/// `info`, with the field names of docker's `GET /info`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Info {
    #[serde(rename = "Containers")]
    pub containers: usize,
    /// Running, restarting included.
    #[serde(rename = "ContainersRunning")]
    pub running: usize,
    #[serde(rename = "ContainersPaused")]
    pub paused: usize,
    /// Exited, created or dead.
    #[serde(rename = "ContainersStopped")]
    pub stopped: usize,
    #[serde(rename = "Images")]
    pub images: usize,
    #[serde(rename = "ServerVersion")]
    pub server_version: String,
    #[serde(rename = "Driver")]
    pub driver: String,
    #[serde(rename = "LoggingDriver")]
    pub logging_driver: String,
    #[serde(rename = "CgroupDriver")]
    pub cgroup_driver: String,
    /// "1" or "2".
    #[serde(rename = "CgroupVersion")]
    pub cgroup_version: String,
    /// As docker writes them: `name=seccomp,profile=builtin`, `name=userns`,
    /// `name=rootless`.
    #[serde(rename = "SecurityOptions")]
    pub security_options: Vec<String>,
    #[serde(rename = "KernelVersion")]
    pub kernel_version: String,
    #[serde(rename = "OperatingSystem")]
    pub operating_system: String,
    #[serde(rename = "OSType")]
    pub os_type: String,
    #[serde(rename = "Architecture")]
    pub architecture: String,
    #[serde(rename = "NCPU")]
    pub cpus: usize,
    /// Bytes.
    #[serde(rename = "MemTotal")]
    pub mem_total: u64,
    #[serde(rename = "DockerRootDir")]
    pub root_dir: String,
    #[serde(rename = "Debug")]
    pub debug: bool,
    #[serde(rename = "RegistryConfig")]
    pub registry: RegistryConfig,
    /// The host's name, as docker's `Name`.
    #[serde(rename = "Name", default)]
    pub name: String,
    /// The drivers there are, by kind (`Volume`, `Network`, `Log`), as
    /// docker's `Plugins`.
    #[serde(rename = "Plugins", default)]
    pub plugins: Plugins,
    /// daemon.json's `labels`.
    #[serde(rename = "Labels", default)]
    pub labels: Vec<String>,
    /// dockyard has no daemon whose restart containers could outlive.
    #[serde(rename = "LiveRestoreEnabled", default)]
    pub live_restore: bool,
}

/// The drivers `info` lists under `Plugins`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Plugins {
    #[serde(rename = "Volume", default)]
    pub volume: Vec<String>,
    #[serde(rename = "Network", default)]
    pub network: Vec<String>,
    #[serde(rename = "Log", default)]
    pub log: Vec<String>,
}

/// daemon.json's registry settings, as `info` shows them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegistryConfig {
    #[serde(rename = "Mirrors")]
    pub mirrors: Vec<String>,
    /// daemon.json's, and the loopback, which docker always treats as
    /// insecure.
    #[serde(rename = "InsecureRegistryCIDRs")]
    pub insecure: Vec<String>,
}

/// `info`: this engine, its containers and images, and the host.
pub fn info(engine: &Engine) -> Result<Info> {
    let all = list_all(engine)?;
    let count = |s: Status| all.iter().filter(|r| r.state.status == s).count();
    let images = engine.images.images()?.len();
    let host = lab03_cgroups::detect()?;
    let uname = nix::sys::utsname::uname().context("uname")?;
    let c = &engine.config;
    // As docker lists them: userns with --userns-remap, rootless when
    // dockyard is root of its own user namespace only.
    let mut security_options = vec!["name=seccomp,profile=builtin".to_string()];
    if engine.remap.is_some() {
        security_options.push("name=userns".into());
    }
    if engine.rootless {
        security_options.push("name=rootless".into());
    }
    let mut insecure = c.insecure_registries.clone();
    insecure.push("127.0.0.0/8".into());
    Ok(Info {
        containers: all.len(),
        running: count(Status::Running) + count(Status::Restarting),
        paused: count(Status::Paused),
        stopped: count(Status::Exited) + count(Status::Created) + count(Status::Dead),
        images,
        server_version: env!("CARGO_PKG_VERSION").to_string(),
        driver: "overlay2".into(),
        logging_driver: c.log_driver.clone().unwrap_or_else(|| "json-file".into()),
        cgroup_driver: "cgroupfs".into(),
        cgroup_version: match host.version() {
            CgroupVersion::V1 => "1",
            CgroupVersion::V2 => "2",
        }
        .into(),
        security_options,
        kernel_version: uname.release().to_string_lossy().into_owned(),
        operating_system: operating_system(),
        os_type: "linux".into(),
        architecture: uname.machine().to_string_lossy().into_owned(),
        cpus: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        mem_total: container::host_memory(),
        root_dir: engine.root.display().to_string(),
        debug: c.debug,
        registry: RegistryConfig {
            mirrors: c.registry_mirrors.clone(),
            insecure,
        },
        name: nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default(),
        plugins: Plugins {
            volume: vec!["local".into()],
            network: ["bridge", "host", "ipvlan", "macvlan", "null", "overlay"]
                .map(String::from)
                .to_vec(),
            log: ["json-file", "none"].map(String::from).to_vec(),
        },
        labels: c.labels.clone(),
        live_restore: false,
    })
}

/// `PRETTY_NAME` of /etc/os-release, else "Linux".
fn operating_system() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| pretty_name(&t))
        .unwrap_or_else(|| "Linux".into())
}

fn pretty_name(os_release: &str) -> Option<String> {
    os_release.lines().find_map(|l| {
        l.strip_prefix("PRETTY_NAME=")
            .map(|v| v.trim_matches('"').to_string())
    })
}

/// One line of `system df`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub total: usize,
    /// In use: images some container uses, running containers, volumes some
    /// container mounts.
    pub active: usize,
    /// Bytes on disk.
    pub size: u64,
    /// Bytes a prune could free (stopped containers' layers, unused volumes;
    /// images: 0, as dockyard keeps every tagged image).
    pub reclaimable: u64,
}

/// `system df`: images, containers, local volumes and the build cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DiskUsage {
    pub images: Usage,
    pub containers: Usage,
    pub volumes: Usage,
    /// Lab 06's cache entries: `active` are those whose data a tagged image
    /// also holds; `reclaimable` is what `builder prune` frees.
    pub build_cache: Usage,
}

/// `system df`: what images, containers and volumes take on disk.
pub fn disk_usage(engine: &Engine) -> Result<DiskUsage> {
    let all = list_all(engine)?;
    let images = engine.images.images()?;
    let used: BTreeSet<String> = all
        .iter()
        .filter_map(|r| config_of(r).ok().map(|c| c.image_id))
        .collect();
    let images = Usage {
        total: images.len(),
        active: images
            .iter()
            .filter(|i| used.contains(&i.config_digest))
            .count(),
        size: images.iter().map(|i| image::size(engine, i)).sum(),
        reclaimable: 0,
    };
    let upper = |r: &Record| dir_size(&engine.containers.dir_of(&r.id).join("upper"));
    let containers = Usage {
        total: all.len(),
        active: all
            .iter()
            .filter(|r| r.state.status == Status::Running)
            .count(),
        size: all.iter().map(upper).sum(),
        reclaimable: all
            .iter()
            .filter(|r| r.state.status != Status::Running)
            .map(upper)
            .sum(),
    };
    let volumes = engine.volumes.list()?;
    let in_use: BTreeSet<String> = all
        .iter()
        .filter_map(|r| config_of(r).ok())
        .flat_map(|c| {
            c.mounts
                .into_iter()
                .filter(|m| m.kind == "volume")
                .map(|m| m.source)
        })
        .collect();
    let data = |name: &str| dir_size(&engine.volumes.data(name));
    let volumes = Usage {
        total: volumes.len(),
        active: volumes.iter().filter(|v| in_use.contains(&v.name)).count(),
        size: volumes.iter().map(|v| data(&v.name)).sum(),
        reclaimable: volumes
            .iter()
            .filter(|v| !in_use.contains(&v.name))
            .map(|v| data(&v.name))
            .sum(),
    };
    let cache = lab06_dockerfile::cache::usage(&engine.images)?;
    let build_cache = Usage {
        total: cache.entries,
        active: cache.entries - cache.dangling,
        size: cache.size,
        reclaimable: cache.reclaimable,
    };
    Ok(DiskUsage {
        images,
        containers,
        volumes,
        build_cache,
    })
}

/// `builder prune [-a]`: lab 06 removes the dangling cache entries (all of
/// them with `all`), and the store's collector frees the layers and blobs
/// that only those entries held. Returns the removed entries' keys and the
/// bytes freed.
pub fn prune_build_cache(engine: &Engine, all: bool) -> Result<(Vec<String>, u64)> {
    let (keys, released) = lab06_dockerfile::cache::prune(&engine.images, all)?;
    let report = engine.images.gc(&lab04_overlay::Keep {
        configs: crate::container::images_in_use(engine)?,
        released,
        ..lab04_overlay::Keep::default()
    })?;
    Ok((keys, report.reclaimed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_os_is_os_releases_pretty_name() {
        let text = "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n";
        assert_eq!(
            pretty_name(text).as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
        assert_eq!(pretty_name("NAME=x\n"), None);
    }

    #[test]
    fn an_empty_data_root_uses_nothing_but_its_volumes() {
        let root = tempfile::tempdir().unwrap();
        let engine = Engine::for_tests(root.path());
        engine
            .volumes
            .create("vol", Default::default(), false)
            .unwrap();
        std::fs::write(engine.volumes.data("vol").join("f"), [0u8; 10]).unwrap();
        let df = disk_usage(&engine).unwrap();
        assert_eq!(df.images, Usage::default());
        assert_eq!(df.containers, Usage::default());
        assert_eq!(
            df.volumes,
            Usage {
                total: 1,
                active: 0,
                size: 10,
                reclaimable: 10
            }
        );
    }
}
