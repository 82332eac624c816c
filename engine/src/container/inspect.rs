//! `inspect` of a container: everything the engine knows about it, as one
//! JSON document with docker's field names (`State.Pid`,
//! `HostConfig.Memory`, `GraphDriver.Data.UpperDir`...), which is what
//! `docker inspect` prints and `GET /containers/{id}/json` returns.
//! Scripts read it with templates: `dockyard inspect -f '{{.State.Pid}}' web`.
//!
//! The document is put together from three sources: the record (state,
//! created with), the image store's view of the container's overlay (lab
//! 04's upper, work, merged and lower dirs) and lab 05's leases (its
//! addresses on each network). Only the first needs the container to
//! exist; the others describe it as it is now.

use std::path::PathBuf;

use anyhow::Result;
use serde_json::{json, Value};

use super::config::{config_of, ContainerConfig, RestartPolicy};
use super::connect::container_networks;
use super::list::published_ports;
use crate::engine::Engine;
use crate::logs;
use crate::state::{Record, State, Status};
use crate::volumes::MountSpec;
use lab02_namespaces::parse_ulimit;

/// Where a container's files are on the host: its overlay (lab 04), its
/// log, and the volumes' data directories.
pub struct InspectPaths<'a> {
    pub lower: Vec<PathBuf>,
    pub upper: PathBuf,
    pub merged: PathBuf,
    pub work: PathBuf,
    pub log: PathBuf,
    /// A named volume's data directory.
    pub volume_data: &'a dyn Fn(&str) -> PathBuf,
}

/// `docker inspect CONTAINER`'s document for `record` (reconciled first).
pub fn inspect(engine: &Engine, record: Record) -> Result<Value> {
    let r = engine.containers.reconcile(record)?;
    let c = config_of(&r)?;
    let layer = engine.layer_container(&r.id)?;
    let volume_data = |name: &str| engine.volumes.data(name);
    let paths = InspectPaths {
        lower: engine.images.lower_dirs(&layer).unwrap_or_default(),
        upper: layer.upper(),
        merged: layer.merged(),
        work: layer.work(),
        log: engine.containers.dir_of(&r.id).join(logs::LOG_FILE),
        volume_data: &volume_data,
    };
    let networks = container_networks(engine, &r, &c);
    Ok(inspect_document(&r, &c, &paths, networks))
}

/// The document itself, from what [`inspect`] gathered.
pub fn inspect_document(
    r: &Record,
    c: &ContainerConfig,
    paths: &InspectPaths,
    networks: Value,
) -> Value {
    let argv = c.argv();
    json!({
        "Id": r.id,
        "Created": r.created,
        "Path": argv.first().cloned().unwrap_or_default(),
        "Args": argv.iter().skip(1).collect::<Vec<_>>(),
        "State": state(&r.state),
        "Image": c.image_id,
        "LogPath": paths.log,
        "Name": format!("/{}", r.name),
        "RestartCount": r.state.restart_count,
        "Driver": "overlay2",
        "Platform": "linux",
        "HostConfig": with_sysctls(host_config(c), c),
        "GraphDriver": {
            "Name": "overlay2",
            "Data": {
                "LowerDir": paths.lower.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(":"),
                "UpperDir": paths.upper,
                "MergedDir": paths.merged,
                "WorkDir": paths.work,
            },
        },
        "Mounts": c.mounts.iter().map(|m| mount_json(m, paths.volume_data)).collect::<Vec<_>>(),
        "Config": with_stop_timeout(config(c), c),
        "NetworkSettings": network_settings(r, networks),
    })
}

/// `State`: docker's booleans beside the status (a paused container is
/// also `Running`).
fn state(s: &State) -> Value {
    json!({
        "Status": s.status.as_str(),
        "Running": s.status == Status::Running || s.status == Status::Paused,
        "Paused": s.status == Status::Paused,
        "Restarting": s.status == Status::Restarting,
        "OOMKilled": s.oom_killed,
        "Dead": s.status == Status::Dead,
        "Pid": s.pid,
        "ExitCode": s.exit_code,
        "Error": s.error,
        "StartedAt": s.started_at,
        "FinishedAt": s.finished_at,
        "Health": s.health,
    })
}

/// `HostConfig`: the limits in docker's units (`NanoCpus` for `--cpus`).
fn host_config(c: &ContainerConfig) -> Value {
    let retries = match c.restart {
        RestartPolicy::OnFailure(n) => n,
        _ => 0,
    };
    let ulimits: Vec<Value> = c
        .ulimits
        .iter()
        .filter_map(|u| {
            parse_ulimit(u).ok().map(|(_, soft, hard)| {
                json!({"Name": u.split('=').next().unwrap_or(""), "Soft": soft, "Hard": hard})
            })
        })
        .collect();
    let mut h = json!({
        "AutoRemove": c.auto_remove,
        "RestartPolicy": {"Name": c.restart.name(), "MaximumRetryCount": retries},
        "NetworkMode": c.network_mode,
        "Dns": c.dns,
        "DnsSearch": c.dns_search,
        "DnsOptions": c.dns_options,
        "ExtraHosts": if c.extra_hosts.is_empty() { Value::Null } else { json!(c.extra_hosts) },
        "Memory": c.limits.memory.unwrap_or(0),
        "MemorySwap": c.limits.memory_swap.unwrap_or(0),
        "NanoCpus": c.limits.cpus.map(|x| (x * 1e9) as i64).unwrap_or(0),
        "CpuShares": c.limits.cpu_shares.unwrap_or(0),
        "PidsLimit": c.limits.pids,
        "BlkioDeviceReadBps": throttle_json(&c.limits.device_read_bps),
        "BlkioDeviceWriteBps": throttle_json(&c.limits.device_write_bps),
        "OomKillDisable": c.limits.oom_kill_disable,
        "MemorySwappiness": c.limits.memory_swappiness,
        "CpuPeriod": c.limits.cpu_period.unwrap_or(0),
        "CpuQuota": c.limits.cpu_quota.unwrap_or(0),
        "CpusetCpus": c.limits.cpuset_cpus.clone().unwrap_or_default(),
        "CpusetMems": c.limits.cpuset_mems.clone().unwrap_or_default(),
        "CgroupParent": c.cgroup_parent,
        "Init": c.init,
        "LogConfig": {"Type": "json-file", "Config": c.log_opts},
        "Ulimits": ulimits,
        "PortBindings": port_bindings(c),
        "PublishAllPorts": c.publish_all,
        "ReadonlyRootfs": c.read_only,
        "Tmpfs": tmpfs(c),
        "ShmSize": c.shm_size_or_default(),
    });
    // The namespaces, privileges and devices, in an object of their own: one `json!` with every
    // field goes past the macro's recursion limit.
    let isolation = json!({
        "UsernsMode": c.userns_mode,
        "PidMode": c.pid_mode,
        "IpcMode": c.ipc_mode,
        "UTSMode": c.uts_mode,
        "CgroupnsMode": c.cgroupns_mode,
        "GroupAdd": if c.group_add.is_empty() { Value::Null } else { json!(c.group_add) },
        "OomScoreAdj": c.oom_score_adj,
        "Privileged": c.privileged,
        "Devices": c.devices.iter().map(|d| serde_json::json!({
            "PathOnHost": d.path_on_host,
            "PathInContainer": d.path_in_container,
            "CgroupPermissions": d.cgroup_permissions,
        })).collect::<Vec<_>>(),
        "CapAdd": if c.cap_add.is_empty() { Value::Null } else { json!(c.cap_add) },
        "CapDrop": if c.cap_drop.is_empty() { Value::Null } else { json!(c.cap_drop) },
        "SecurityOpt": if c.security_opt.is_empty() { Value::Null } else { json!(c.security_opt) },
    });
    for part in [isolation, more_host_config(c)] {
        if let (Value::Object(h), Value::Object(more)) = (&mut h, part) {
            h.extend(more);
        }
    }
    h
}

/// The rarer resource fields of `HostConfig` (see `resource_checks.rs`).
fn more_host_config(c: &ContainerConfig) -> Value {
    let l = &c.limits;
    let weights: Vec<Value> = l
        .blkio_weight_device
        .iter()
        .map(|w| json!({"Path": w.path, "Weight": w.weight}))
        .collect();
    json!({
        "MemoryReservation": l.memory_reservation.unwrap_or(0),
        "BlkioWeight": l.blkio_weight.unwrap_or(0),
        "BlkioWeightDevice": weights,
        "BlkioDeviceReadIOps": throttle_json(&l.device_read_iops),
        "BlkioDeviceWriteIOps": throttle_json(&l.device_write_iops),
        "CpuRealtimePeriod": l.cpu_rt_period.unwrap_or(0),
        "CpuRealtimeRuntime": l.cpu_rt_runtime.unwrap_or(0),
        "DeviceCgroupRules": if c.device_cgroup_rules.is_empty() { Value::Null } else { json!(c.device_cgroup_rules) },
    })
}

/// `HostConfig.PortBindings`: what `-p` asked, by container port
/// (`{"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}`); an empty host
/// port is a random one. What was actually bound is under
/// `NetworkSettings.Ports`.
fn port_bindings(c: &ContainerConfig) -> Value {
    let mut map = serde_json::Map::new();
    for p in &c.publish {
        let Ok(spec) = p.parse::<crate::network::PortSpec>() else {
            continue;
        };
        let key = format!("{}/{}", spec.container_port, spec.proto);
        let binding = json!({
            "HostIp": spec.host_ip.map(|ip| ip.to_string()).unwrap_or_default(),
            "HostPort": spec.host_port.map(|p| p.to_string()).unwrap_or_default(),
        });
        if let Value::Array(list) = map.entry(key).or_insert_with(|| json!([])) {
            list.push(binding);
        }
    }
    Value::Object(map)
}

/// `HostConfig.Tmpfs`: `--tmpfs PATH[:OPTIONS]` as `{"PATH": "OPTIONS"}`,
/// or null.
fn tmpfs(c: &ContainerConfig) -> Value {
    if c.tmpfs.is_empty() {
        return Value::Null;
    }
    Value::Object(
        c.tmpfs
            .iter()
            .map(|t| {
                let (path, opts) = t.split_once(':').unwrap_or((t, ""));
                (path.to_string(), json!(opts))
            })
            .collect(),
    )
}

/// `Mounts`, as inspect shows them and `GET /containers/json` lists them.
pub fn mounts_json(engine: &Engine, c: &ContainerConfig) -> Vec<Value> {
    let volume_data = |name: &str| engine.volumes.data(name);
    c.mounts
        .iter()
        .map(|m| mount_json(m, &volume_data))
        .collect()
}

/// One of `Mounts`: a bind mount, or a volume with its data directory.
fn mount_json(m: &MountSpec, volume_data: &dyn Fn(&str) -> PathBuf) -> Value {
    if m.kind == "bind" {
        json!({"Type": "bind", "Source": m.source, "Destination": m.target, "Mode": if m.read_only { "ro" } else { "" }, "RW": !m.read_only, "Propagation": "rprivate"})
    } else {
        json!({"Type": "volume", "Name": m.source, "Source": volume_data(&m.source), "Destination": m.target, "Driver": "local", "Mode": "z", "RW": !m.read_only, "Propagation": ""})
    }
}

/// `Config.ExposedPorts`: `{"80/tcp": {}}`, or null when there are none.
fn exposed_ports(c: &ContainerConfig) -> Value {
    if c.exposed.is_empty() {
        return Value::Null;
    }
    Value::Object(c.exposed.iter().map(|p| (p.clone(), json!({}))).collect())
}

/// `HostConfig.Sysctls`, which docker leaves out when there are none.
fn with_sysctls(mut host: Value, c: &ContainerConfig) -> Value {
    if !c.sysctls.is_empty() {
        host["Sysctls"] = json!(c.sysctls);
    }
    host
}

/// `Config.StopTimeout`, which docker leaves out unless `--stop-timeout`
/// gave one.
fn with_stop_timeout(mut config: Value, c: &ContainerConfig) -> Value {
    if let Some(t) = c.stop_timeout {
        config["StopTimeout"] = json!(t);
    }
    config
}

/// `Config`: what the container was created with.
fn config(c: &ContainerConfig) -> Value {
    json!({
        "Hostname": c.hostname,
        "Domainname": c.domainname,
        "User": c.user,
        "AttachStdin": c.attach_stdin,
        "AttachStdout": c.attach_stdout,
        "AttachStderr": c.attach_stderr,
        "ExposedPorts": exposed_ports(c),
        "Tty": c.tty,
        "OpenStdin": c.open_stdin,
        "Env": c.env,
        "Cmd": c.cmd,
        "Image": c.image,
        "WorkingDir": c.working_dir,
        "Entrypoint": if c.entrypoint.is_empty() { Value::Null } else { json!(c.entrypoint) },
        "Labels": c.labels,
        "StopSignal": c.stop_signal,
    })
}

/// `NetworkSettings`, in docker's shape, from what lab 05 reported at start
/// (`networks`: see [`container_networks`]).
fn network_settings(r: &Record, networks: Value) -> Value {
    let Some(n) = &r.state.network else {
        return json!({"IPAddress": "", "Gateway": "", "MacAddress": "", "Ports": {}, "Networks": networks});
    };
    let mut ports = serde_json::Map::new();
    for p in published_ports(r) {
        let key = format!("{}/{}", p.container_port, p.proto);
        let binding = json!({"HostIp": p.host_ip, "HostPort": p.host_port.to_string()});
        if let Some(list) = ports.entry(key).or_insert_with(|| json!([])).as_array_mut() {
            list.push(binding);
        }
    }
    json!({
        "IPAddress": n["IPAddress"],
        "IPPrefixLen": n["IPPrefixLen"],
        "Gateway": n["Gateway"],
        "MacAddress": n["MacAddress"],
        "Bridge": n["Bridge"],
        "Ports": ports,
        "Networks": networks,
    })
}

/// Docker's `[{"Path": ..., "Rate": ...}]`, or null when none.
fn throttle_json(list: &[crate::container::config::ThrottleDevice]) -> Value {
    if list.is_empty() {
        return Value::Null;
    }
    list.iter()
        .map(|t| json!({"Path": t.path, "Rate": t.rate}))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::list::tests::record;
    use crate::container::Limits;

    fn paths(data: &dyn Fn(&str) -> PathBuf) -> InspectPaths<'_> {
        InspectPaths {
            lower: vec!["/l/1".into(), "/l/2".into()],
            upper: "/c/upper".into(),
            merged: "/c/merged".into(),
            work: "/c/work".into(),
            log: "/c/log.json".into(),
            volume_data: data,
        }
    }

    #[test]
    fn the_document_has_dockers_fields() {
        let c = ContainerConfig {
            image: "busybox".into(),
            image_id: "sha256:abc".into(),
            cmd: vec!["sleep".into(), "60".into()],
            restart: RestartPolicy::OnFailure(3),
            limits: Limits {
                cpus: Some(0.5),
                memory: Some(32 << 20),
                ..Default::default()
            },
            ulimits: vec!["nofile=1024:2048".into()],
            mounts: vec![
                MountSpec {
                    kind: "volume".into(),
                    source: "data".into(),
                    target: "/data".into(),
                    read_only: false,
                    anonymous: false,
                },
                MountSpec {
                    kind: "bind".into(),
                    source: "/srv".into(),
                    target: "/srv".into(),
                    read_only: true,
                    anonymous: false,
                },
            ],
            ..Default::default()
        };
        let mut r = record(
            "ab",
            "web",
            Status::Paused,
            serde_json::to_value(&c).unwrap(),
        );
        r.state.pid = 42;
        let data = |n: &str| PathBuf::from(format!("/v/{n}/_data"));
        let doc = inspect_document(&r, &c, &paths(&data), json!({}));
        assert_eq!(doc["Name"], "/web");
        assert_eq!(doc["Path"], "sleep");
        assert_eq!(doc["Args"], json!(["60"]));
        assert_eq!(doc["State"]["Running"], true, "paused counts as running");
        assert_eq!(doc["State"]["Paused"], true);
        assert_eq!(doc["State"]["Pid"], 42);
        assert_eq!(doc["Image"], "sha256:abc");
        assert_eq!(doc["Config"]["Image"], "busybox");
        assert_eq!(doc["Config"]["Entrypoint"], Value::Null);
        assert_eq!(doc["HostConfig"]["NanoCpus"], 500_000_000);
        assert_eq!(doc["HostConfig"]["Memory"], 32 << 20);
        assert_eq!(
            doc["HostConfig"]["RestartPolicy"],
            json!({"Name": "on-failure", "MaximumRetryCount": 3})
        );
        assert_eq!(
            doc["HostConfig"]["Ulimits"],
            json!([{"Name": "nofile", "Soft": 1024, "Hard": 2048}])
        );
        assert_eq!(doc["HostConfig"]["ExtraHosts"], Value::Null);
        assert_eq!(doc["GraphDriver"]["Data"]["LowerDir"], "/l/1:/l/2");
        assert_eq!(doc["Mounts"][0]["Source"], "/v/data/_data");
        assert_eq!(doc["Mounts"][0]["Type"], "volume");
        assert_eq!(doc["Mounts"][1]["Mode"], "ro");
        assert_eq!(doc["Mounts"][1]["RW"], false);
        assert_eq!(doc["NetworkSettings"]["IPAddress"], "");
    }

    #[test]
    fn published_ports_are_keyed_by_container_port() {
        let mut r = record("ab", "web", Status::Running, json!({}));
        r.state.network = Some(json!({"IPAddress": "172.17.0.2", "Ports": [
            {"ContainerPort": 80, "Proto": "tcp", "HostIp": "0.0.0.0", "HostPort": 8080},
        ]}));
        let settings = network_settings(&r, json!({}));
        assert_eq!(settings["IPAddress"], "172.17.0.2");
        assert_eq!(
            settings["Ports"]["80/tcp"],
            json!([{"HostIp": "0.0.0.0", "HostPort": "8080"}])
        );
    }
}
