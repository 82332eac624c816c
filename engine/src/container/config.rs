//! What a container is created with: its config, as `docker inspect` shows
//! it under `Config` and `HostConfig`, and the restart policy.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Context, Result};
use lab02_namespaces as namespaces;
use lab03_cgroups as cgroups;
use serde::{Deserialize, Serialize};

use crate::state::Record;

/// Docker's size of a container's `/dev/shm` (moby's `DefaultShmSize`):
/// 64 MiB, unless `--shm-size` or daemon.json's `default-shm-size` says.
pub const DEFAULT_SHM_SIZE: u64 = 64 << 20;

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
    /// docker's `HostConfig.ConsoleSize` (rows, columns): the size that terminal starts with
    /// when no terminal of ours is there to copy (a client of the API sends its own). Without
    /// it a shell started by `run -it` through the API asks a 0x0 terminal for its size before
    /// the client's first resize arrives.
    #[serde(default)]
    pub console_size: Option<(u16, u16)>,
    /// Which of its streams the client that made it attached (docker's
    /// `Config.AttachStdin/Stdout/Stderr`): stdin with `-i` in the
    /// foreground, stdout and stderr unless `-d`.
    #[serde(default)]
    pub attach_stdin: bool,
    #[serde(default)]
    pub attach_stdout: bool,
    #[serde(default)]
    pub attach_stderr: bool,
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
    /// `--link CONTAINER:ALIAS` (legacy links), the container by its name.
    #[serde(default)]
    pub links: Vec<String>,
    /// The networks `network connect` added, rejoined at every start.
    #[serde(default)]
    pub connected: Vec<Connection>,
    /// `--userns`: "host" opts out of --userns-remap; empty follows it.
    #[serde(default)]
    pub userns_mode: String,
    /// `--device`, as docker's `HostConfig.Devices`.
    #[serde(default)]
    pub devices: Vec<DeviceMapping>,
    /// `--shm-size`: the size of its `/dev/shm` tmpfs in bytes, docker's
    /// `HostConfig.ShmSize`. 0 (not given) becomes daemon.json's
    /// `default-shm-size` or 64 MiB at create, as dockerd sets it, so the
    /// record keeps the size every start mounts.
    #[serde(default)]
    pub shm_size: i64,
    /// `--pid`: "" (its own), "host", or "container:ID"; docker's
    /// `HostConfig.PidMode` (see the `ns_modes` module).
    #[serde(default)]
    pub pid_mode: String,
    /// `--ipc`: "private" (set at create when not given), "shareable",
    /// "none", "host" or "container:ID"; `HostConfig.IpcMode`.
    #[serde(default)]
    pub ipc_mode: String,
    /// `--uts`: "" (its own) or "host"; `HostConfig.UTSMode`.
    #[serde(default)]
    pub uts_mode: String,
    /// `--cgroupns`: "private" or "host", the host's default set at create
    /// when not given; `HostConfig.CgroupnsMode`.
    #[serde(default)]
    pub cgroupns_mode: String,
    /// `--device-cgroup-rule 'c 1:3 rwm'`: more allow rules for the device
    /// cgroup, after docker's default list (`HostConfig.DeviceCgroupRules`).
    #[serde(default)]
    pub device_cgroup_rules: Vec<String>,
    /// `--group-add`: more supplementary groups, names (resolved in the
    /// image's `/etc/group` at start) or numbers; `HostConfig.GroupAdd`.
    #[serde(default)]
    pub group_add: Vec<String>,
    /// `--sysctl`: namespaced kernel settings; `HostConfig.Sysctls`.
    #[serde(default)]
    pub sysctls: BTreeMap<String, String>,
    /// `--oom-score-adj` (-1000..1000); `HostConfig.OomScoreAdj`.
    #[serde(default)]
    pub oom_score_adj: i64,
    /// `--stop-timeout`: seconds `stop` and `restart` wait before SIGKILL
    /// when not told (`-t`); `Config.StopTimeout`, null when not given.
    #[serde(default)]
    pub stop_timeout: Option<i64>,
    /// `--domainname`: the NIS domain name; `Config.Domainname`.
    #[serde(default)]
    pub domainname: String,
}

/// One `--device HOST[:CONTAINER][:PERMS]`: a host device node to be made
/// in the container's `/dev`, and what its device cgroup lets it do with
/// it (`r`ead, `w`rite, `m`knod). Docker's `DeviceMapping`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceMapping {
    pub path_on_host: String,
    pub path_in_container: String,
    pub cgroup_permissions: String,
}

/// Whether `mode` is a device cgroup access: some of `r`, `w`, `m`, each
/// once (docker's `validDeviceMode`).
fn valid_device_mode(mode: &str) -> bool {
    !mode.is_empty()
        && mode.len() <= 3
        && mode.chars().all(|c| "rwm".contains(c))
        && !mode.char_indices().any(|(i, c)| mode[i + 1..].contains(c))
}

// ANCHOR: parse_device
/// Parse `--device` as docker's client does: `HOST`, `HOST:CONTAINER`,
/// `HOST:PERMS` or `HOST:CONTAINER:PERMS`, the container path absolute and
/// the permissions `rwm` unless given. Only the syntax: whether the host has
/// such a device is found out when the container starts, as in docker.
pub fn parse_device(value: &str) -> Result<DeviceMapping> {
    let bad = |why: String| anyhow!("invalid argument {value:?} for \"--device\" flag: {why}");
    let parts: Vec<&str> = value.split(':').collect();
    if parts.len() > 3 || parts[0].is_empty() {
        return Err(bad(format!("bad format for path: {value}")));
    }
    let (host, container, perms) = match parts[..] {
        [host] => (host, host, "rwm"),
        [host, p] if valid_device_mode(p) => (host, host, p),
        [host, c] => (host, c, "rwm"),
        [host, c, p] => {
            if !valid_device_mode(p) {
                return Err(bad(format!("bad mode specified: {p}")));
            }
            (host, c, p)
        }
        _ => unreachable!("one to three parts"),
    };
    if !container.starts_with('/') {
        return Err(bad(format!("{container} is not an absolute path")));
    }
    Ok(DeviceMapping {
        path_on_host: host.to_string(),
        path_in_container: container.to_string(),
        cgroup_permissions: perms.to_string(),
    })
}
// ANCHOR_END: parse_device

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
        sec.shm_size = Some(self.shm_size_or_default());
        Ok(sec)
    }
}

impl ContainerConfig {
    /// ENTRYPOINT followed by CMD: what actually runs.
    pub fn argv(&self) -> Vec<String> {
        self.entrypoint.iter().chain(&self.cmd).cloned().collect()
    }

    /// The size of its `/dev/shm` in bytes: `shm_size`, or docker's 64 MiB
    /// for a record made before dockyard kept one.
    pub fn shm_size_or_default(&self) -> u64 {
        match u64::try_from(self.shm_size) {
            Ok(n) if n > 0 => n,
            _ => DEFAULT_SHM_SIZE,
        }
    }

    /// How long `stop` waits after the stop signal before SIGKILL, as
    /// dockerd's `containerStop`: `given` (`-t`, `?t=`), else
    /// `--stop-timeout`, else 10 seconds; a negative one waits for ever.
    pub fn stop_wait(&self, given: Option<i64>) -> std::time::Duration {
        let secs = given.or(self.stop_timeout).unwrap_or(10);
        match u64::try_from(secs) {
            Ok(s) => std::time::Duration::from_secs(s),
            Err(_) => std::time::Duration::from_secs(u64::MAX / 4),
        }
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
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    /// `--cpu-period`/`--cpu-quota` as given (docker's int64s; 0 is unset).
    pub cpu_period: Option<i64>,
    pub cpu_quota: Option<i64>,
    #[serde(default)]
    pub oom_kill_disable: bool,
    pub memory_swappiness: Option<i64>,
    /// `--device-read-bps`/`--device-write-bps`, resolved at create.
    #[serde(default)]
    pub device_read_bps: Vec<ThrottleDevice>,
    #[serde(default)]
    pub device_write_bps: Vec<ThrottleDevice>,
    /// `--memory-reservation` in bytes: a soft limit, not a cap.
    #[serde(default)]
    pub memory_reservation: Option<u64>,
    /// `--blkio-weight` (10..=1000); `None` is docker's 0, "not set".
    #[serde(default)]
    pub blkio_weight: Option<u16>,
    /// `--blkio-weight-device`, resolved at create as the throttles are.
    #[serde(default)]
    pub blkio_weight_device: Vec<WeightDevice>,
    /// `--device-read-iops`/`--device-write-iops`: the rate is in requests
    /// per second.
    #[serde(default)]
    pub device_read_iops: Vec<ThrottleDevice>,
    #[serde(default)]
    pub device_write_iops: Vec<ThrottleDevice>,
    /// `--cpu-rt-period`/`--cpu-rt-runtime` in microseconds (v1 only).
    #[serde(default)]
    pub cpu_rt_period: Option<i64>,
    #[serde(default)]
    pub cpu_rt_runtime: Option<i64>,
}

/// A block device weight as given (`/dev/sda:300`), with its numbers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WeightDevice {
    pub path: String,
    pub weight: u16,
    #[serde(default)]
    pub major: u64,
    #[serde(default)]
    pub minor: u64,
}

/// A block device rate as given (`/dev/vda:1mb`), with the device numbers
/// the kernel's files take, found by `create` from the node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ThrottleDevice {
    pub path: String,
    pub rate: u64,
    #[serde(default)]
    pub major: u64,
    #[serde(default)]
    pub minor: u64,
}

impl ThrottleDevice {
    fn to_lab(&self) -> cgroups::Throttle {
        cgroups::Throttle {
            major: self.major,
            minor: self.minor,
            rate: self.rate,
        }
    }
}

impl Limits {
    pub fn to_lab(&self) -> cgroups::Limits {
        cgroups::Limits {
            cpus: self.cpus,
            cpu_shares: self.cpu_shares,
            cpu_weight: None,
            memory: self.memory,
            memory_swap: self.memory_swap,
            pids: self.pids,
            // Checked at create (check_settings): a period is positive and a
            // quota is -1 or positive by then; 0 means "not set", as docker's.
            cpu_period: self.cpu_period.filter(|p| *p > 0).map(|p| p as u64),
            // Any negative quota is the kernel's "no limit" (v1 takes them all;
            // v2 spells it "max"): -1 is the one lab 03 writes.
            cpu_quota: self.cpu_quota.filter(|q| *q != 0).map(|q| q.max(-1)),
            oom_kill_disable: self.oom_kill_disable,
            device_read_bps: self
                .device_read_bps
                .iter()
                .map(ThrottleDevice::to_lab)
                .collect(),
            device_write_bps: self
                .device_write_bps
                .iter()
                .map(ThrottleDevice::to_lab)
                .collect(),
            memory_swappiness: self.memory_swappiness.map(|s| s.clamp(0, 100) as u64),
            cpuset_cpus: self.cpuset_cpus.clone(),
            cpuset_mems: self.cpuset_mems.clone(),
            more: cgroups::MoreLimits {
                memory_reservation: self.memory_reservation.filter(|m| *m > 0),
                blkio_weight: self.blkio_weight.filter(|w| *w > 0),
                blkio_weight_device: self
                    .blkio_weight_device
                    .iter()
                    .map(|w| cgroups::WeightDevice {
                        major: w.major,
                        minor: w.minor,
                        weight: w.weight,
                    })
                    .collect(),
                device_read_iops: self
                    .device_read_iops
                    .iter()
                    .map(ThrottleDevice::to_lab)
                    .collect(),
                device_write_iops: self
                    .device_write_iops
                    .iter()
                    .map(ThrottleDevice::to_lab)
                    .collect(),
                cpu_rt_period: self.cpu_rt_period.filter(|p| *p > 0).map(|p| p as u64),
                cpu_rt_runtime: self.cpu_rt_runtime.filter(|r| *r != 0),
            },
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

/// The config stored in a record.
pub fn config_of(record: &Record) -> Result<ContainerConfig> {
    serde_json::from_value(record.config.clone())
        .with_context(|| format!("reading the config of container {}", record.id))
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
    fn devices_parse_like_dockers_client() {
        let d = parse_device("/dev/null:/dev/mynull").unwrap();
        assert_eq!(
            (d.path_on_host.as_str(), d.path_in_container.as_str()),
            ("/dev/null", "/dev/mynull")
        );
        assert_eq!(d.cgroup_permissions, "rwm");
        let d = parse_device("/dev/zero:r").unwrap();
        assert_eq!(d.path_in_container, "/dev/zero");
        assert_eq!(d.cgroup_permissions, "r");
        assert_eq!(
            parse_device("/dev/zero:/dev/z:rw")
                .unwrap()
                .cgroup_permissions,
            "rw"
        );
        let e = parse_device("/dev/zero:/dev/z:rx").unwrap_err().to_string();
        assert_eq!(
            e,
            "invalid argument \"/dev/zero:/dev/z:rx\" for \"--device\" flag: bad mode specified: rx"
        );
        assert!(parse_device("/dev/zero:dev/z")
            .unwrap_err()
            .to_string()
            .ends_with("dev/z is not an absolute path"));
        assert!(parse_device("/dev/zero:/dev/z:rr").is_err());
        assert!(parse_device("a:b:c:d")
            .unwrap_err()
            .to_string()
            .contains("bad format for path"));
    }
}
