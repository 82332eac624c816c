//! The container endpoints, and the hijacked `attach` stream.
//!
//! ## attach: the connection stops being HTTP
//!
//! `POST /containers/ID/attach?stream=1&stdout=1&stderr=1` comes with
//! `Connection: Upgrade` and `Upgrade: tcp`. We answer `101 UPGRADED` and
//! flush it at once; from then on the socket is a plain byte pipe, "hijacked"
//! from HTTP: the container's output flows to the client, what the client
//! types flows to the container's stdin, until the container exits and we
//! close it. `docker run` attaches *before* it starts the container, so
//! nothing the container prints is lost.
//!
//! Without a TTY, stdout and stderr share the one socket, so each piece of
//! output is framed with an 8-byte header:
//!
//! ```text
//! [stream, 0, 0, 0, len >> 24, len >> 16, len >> 8, len]  then len bytes
//!  stream: 0 stdin, 1 stdout, 2 stderr (Content-Type:
//!  application/vnd.docker.multiplexed-stream)
//! ```
//!
//! With a TTY there is one stream, the terminal, sent raw
//! (`application/vnd.docker.raw-stream`). The monitor's own attach socket
//! frames its output too (kind, 4-byte length, see the monitor crate); the
//! relay below re-frames it in docker's shape.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Result};
use serde_json::{json, Value};

use super::http::{self, Request, Response};
use super::routes::{filter_pairs, BadRequest, Outcome, Reply};
use super::{attach_log, lock, Service};
use dockyard::container::{self, config_of, ContainerConfig, Filter, ListOptions, RemoveOptions};
use dockyard::state::{Record, Status};
use dockyard::{logs, state};

/// Unix seconds of an RFC 3339 time (0 when it is not one).
fn unix(t: &str) -> u64 {
    state::parse_rfc3339(t)
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs())
}

/// `GET /containers/json?all=1&limit=N&filters={"status":["exited"]}`.
///
/// The filters the CLI's `ps --filter` knows (status, name, id, label) are
/// the core's; the rest of docker's set is applied here, on the records:
/// `ancestor` (an image name or ID), `exited=CODE`, `before` and `since`
/// (another container), `network`, `volume` (a name or a mount target),
/// `publish` and `expose` (a port), `health`, `is-task` (never: no swarm).
/// Several values of one key are alternatives; different keys must all
/// match, as in docker.
pub fn list(service: &Service, req: &Request) -> Result<Response> {
    let mut opts = ListOptions {
        all: req.flag("all"),
        last: req
            .query("limit")
            .and_then(|l| l.parse().ok())
            .filter(|&n| n > 0),
        filters: Vec::new(),
    };
    let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
    // Both of docker's shapes, {"status": ["exited"]} and the older
    // {"status": {"exited": true}}.
    for (key, v) in filter_pairs(req.query("filters"))? {
        if EXTRA_FILTERS.contains(&key.as_str()) {
            extra.entry(key).or_default().push(v);
        } else {
            opts.filters
                .push(Filter::new(&key, &v).map_err(|e| BadRequest(e.to_string()))?);
        }
    }
    // `exited` looks at stopped containers without -a, as `status` does.
    if extra.contains_key("exited") {
        opts.all = true;
    }
    let all = container::list_all(service.engine)?;
    let mut records = container::filter_list(all.clone(), &opts);
    for (key, values) in &extra {
        let mut keep = Vec::new();
        for r in records {
            if values
                .iter()
                .any(|v| extra_matches(service, &all, r.clone(), key, v).unwrap_or(false))
            {
                keep.push(r);
            }
        }
        records = keep;
        if let Some(bad) = values.iter().find(|v| check_extra(&all, key, v).is_err()) {
            check_extra(&all, key, bad)?;
        }
    }
    let now = SystemTime::now();
    let mut list: Vec<Value> = records.iter().map(|r| summary(service, r, now)).collect();
    if req.flag("size") {
        for (s, r) in list.iter_mut().zip(&records) {
            let (rw, rootfs) = container::sizes(service.engine, r);
            s["SizeRw"] = rw.into();
            s["SizeRootFs"] = rootfs.into();
        }
    }
    Ok(Response::json(200, &Value::Array(list)))
}

/// docker's container filters that the core's `Filter` does not know.
const EXTRA_FILTERS: [&str; 10] = [
    "ancestor", "exited", "before", "since", "network", "volume", "publish", "expose", "health",
    "is-task",
];

/// A bad value of an extra filter, with docker's message.
fn check_extra(all: &[Record], key: &str, v: &str) -> Result<()> {
    match key {
        "exited" if v.parse::<i32>().is_err() => {
            bail!(BadRequest(format!("invalid filter 'exited={v}'")))
        }
        "before" | "since" if find_record(all, v).is_none() => {
            bail!(BadRequest(format!("No such container: {v}")))
        }
        "health" if !["starting", "healthy", "unhealthy", "none"].contains(&v) => bail!(
            BadRequest(format!("Unrecognized filter value for health: {v}"))
        ),
        _ => Ok(()),
    }
}

fn find_record<'a>(all: &'a [Record], v: &str) -> Option<&'a Record> {
    all.iter()
        .find(|r| r.name == v.trim_start_matches('/') || r.id == v)
        .or_else(|| all.iter().find(|r| r.id.starts_with(v)))
}

/// Whether `r` passes the extra filter `key=v`.
fn extra_matches(service: &Service, all: &[Record], r: Record, key: &str, v: &str) -> Result<bool> {
    let c = config_of(&r)?;
    Ok(match key {
        "ancestor" => {
            let name = |n: &str| {
                if n.contains(':') {
                    n.to_string()
                } else {
                    format!("{n}:latest")
                }
            };
            let id = c.image_id.trim_start_matches("sha256:");
            name(&c.image) == name(v)
                || (v.len() >= 4 && id.starts_with(v.trim_start_matches("sha256:")))
        }
        "exited" => r.state.status == Status::Exited && v.parse() == Ok(r.state.exit_code),
        "before" => find_record(all, v).is_some_and(|o| r.created < o.created),
        "since" => find_record(all, v).is_some_and(|o| r.created > o.created),
        "network" => {
            let nets = container::container_networks(service.engine, &r, &c);
            c.network_mode == v
                || c.connected.iter().any(|n| n.network == v)
                || nets.as_object().is_some_and(|o| {
                    o.iter()
                        .any(|(name, n)| name == v || n["NetworkID"].as_str() == Some(v))
                })
        }
        "volume" => c.mounts.iter().any(|m| m.source == v || m.target == v),
        "publish" | "expose" => {
            let (port, proto) = v.split_once('/').unwrap_or((v, "tcp"));
            container::published_ports(&r).iter().any(|p| {
                let which = if key == "publish" {
                    p.host_port
                } else {
                    p.container_port
                };
                which.to_string() == port && p.proto == proto
            })
        }
        "health" => {
            let h = container::inspect(service.engine, r)?;
            h["State"]["Health"]["Status"].as_str().unwrap_or("none") == v
        }
        // No swarm: no container is a task.
        "is-task" => v == "false",
        _ => false,
    })
}

/// One container as `GET /containers/json` shows it: with its `Mounts`
/// (as inspect shows them) and the endpoints of its networks, which the
/// CLI's `ps --format '{{.Mounts}} {{.Networks}}'` reads.
fn summary(service: &Service, r: &Record, now: SystemTime) -> Value {
    let c = config_of(r).unwrap_or_default();
    let networks = summary_networks(service, r, &c);
    let ports: Vec<Value> = container::published_ports(r)
        .iter()
        .map(|p| {
            json!({"IP": p.host_ip, "PrivatePort": p.container_port,
                   "PublicPort": p.host_port, "Type": p.proto})
        })
        .collect();
    json!({
        "Id": r.id,
        "Names": [format!("/{}", r.name)],
        "Image": c.image,
        "ImageID": c.image_id,
        "Command": c.argv().join(" "),
        "Created": unix(&r.created),
        "Ports": ports,
        "Labels": c.labels,
        "State": r.state.status.as_str(),
        "Status": container::status_text(r, now),
        "HostConfig": {"NetworkMode": c.network_mode},
        "NetworkSettings": {"Networks": networks},
        "Mounts": container::mounts_json(service.engine, &c),
    })
}

/// `NetworkSettings.Networks` of the list: the core's endpoints (those of
/// inspect), each with the fields of docker's `EndpointSettings` that
/// dockyard has no notion of given their empty values. The modes `none`
/// and `host` are networks to docker too (their endpoint has no address).
fn summary_networks(service: &Service, r: &Record, c: &ContainerConfig) -> Value {
    let mut nets = container::container_networks(service.engine, r, c);
    let mode = c.network_mode.as_str();
    if let Some(o) = nets.as_object_mut() {
        if o.is_empty() && matches!(mode, "none" | "host") {
            o.insert(
                mode.to_string(),
                json!({"Aliases": null, "NetworkID": dockyard::network::id_of(mode),
                       "EndpointID": "", "Gateway": "", "IPAddress": "",
                       "IPPrefixLen": 0, "MacAddress": ""}),
            );
        }
        for ep in o.values_mut().filter_map(Value::as_object_mut) {
            for (k, v) in [
                ("IPAMConfig", Value::Null),
                ("Links", Value::Null),
                ("DriverOpts", Value::Null),
                ("GwPriority", json!(0)),
                ("IPv6Gateway", json!("")),
                ("GlobalIPv6Address", json!("")),
                ("GlobalIPv6PrefixLen", json!(0)),
                ("DNSNames", Value::Null),
            ] {
                ep.entry(k).or_insert(v);
            }
        }
    }
    nets
}

/// The record of `id` (a name, an ID or its prefix), its state current.
fn resolve(service: &Service, id: &str) -> Result<Record> {
    let e = service.engine;
    e.containers.reconcile(e.containers.resolve(id)?)
}

/// `GET /containers/ID/json`: the same document as `dockyard inspect`.
pub fn inspect(service: &Service, id: &str) -> Result<Response> {
    let r = resolve(service, id)?;
    Ok(Response::json(200, &container::inspect(service.engine, r)?))
}

/// `POST /containers/create?name=N`: docker's JSON config becomes the
/// core's `ContainerConfig`, and the core creates it as for `dockyard
/// create`.
pub fn create(service: &Service, req: &Request) -> Result<Response> {
    let body: Value =
        serde_json::from_slice(&req.body).map_err(|e| BadRequest(format!("invalid JSON: {e}")))?;
    if !body.is_object() {
        bail!(BadRequest(
            "invalid JSON: the config must be an object".into()
        ));
    }
    let mut config = config_from_json(&body)?;
    // docker's "default" is the engine's default network: the same rule as
    // `dockyard run` (the bridge, unless daemon.json's "bridge": "none").
    config.network_mode =
        dockyard::network::container_network(service.engine, &config.network_mode)?;
    container::check_network(service.engine, &mut config)?;
    let name = req.query("name").filter(|n| !n.is_empty());
    // dockerd's warnings (a setting this host cannot honour) go back to the
    // client, which prints them: the service's stderr is nobody's terminal.
    let (record, warnings) = container::create(service.engine, name, config)?;
    Ok(Response::json(
        201,
        &json!({"Id": record.id, "Warnings": warnings}),
    ))
}

/// The fields of docker's create body that dockyard reads.
fn config_from_json(b: &Value) -> Result<ContainerConfig> {
    let strings = |v: &Value| -> Vec<String> {
        match v {
            Value::Array(a) => a
                .iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect(),
            Value::String(s) => vec![s.clone()],
            _ => Vec::new(),
        }
    };
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let h = &b["HostConfig"];
    let image = text(&b["Image"]);
    if image.is_empty() {
        bail!(BadRequest(
            "config cannot be empty in order to create a container".into()
        ));
    }
    let mut config = ContainerConfig {
        image,
        cmd: strings(&b["Cmd"]),
        entrypoint: strings(&b["Entrypoint"]),
        env: strings(&b["Env"]),
        working_dir: text(&b["WorkingDir"]),
        hostname: text(&b["Hostname"]),
        user: text(&b["User"]),
        tty: b["Tty"].as_bool().unwrap_or(false),
        console_size: super::exec::console_size(&h["ConsoleSize"]),
        open_stdin: b["OpenStdin"].as_bool().unwrap_or(false),
        auto_remove: h["AutoRemove"].as_bool().unwrap_or(false),
        cgroup_parent: text(&h["CgroupParent"]),
        // "default" (or nothing) is resolved by `create` with the CLI's rule.
        network_mode: text(&h["NetworkMode"]),
        labels: b["Labels"]
            .as_object()
            .map(|o| o.iter().map(|(k, v)| (k.clone(), text(v))).collect())
            .unwrap_or_default(),
        ..ContainerConfig::default()
    };
    // NetworkingConfig: the endpoint on the container's first network, its
    // aliases and address (`--network-alias`, `--ip`). A client that names
    // a network only there (compose) makes it the first one.
    if let Some(eps) = b["NetworkingConfig"]["EndpointsConfig"].as_object() {
        if config.network_mode.is_empty() || config.network_mode == "default" {
            if let Some(first) = eps.keys().next() {
                config.network_mode = first.clone();
            }
        }
        if let Some(ep) = eps.get(&config.network_mode) {
            config.network_aliases = strings(&ep["Aliases"]);
            config.ip = ep["IPAMConfig"]["IPv4Address"]
                .as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_string);
        }
    }
    if let Some(m) = h["Memory"].as_u64().filter(|&m| m > 0) {
        config.limits.memory = Some(m);
    }
    // `--shm-size` in bytes; 0 (docker's CLI sends it when not given) is
    // the engine's default; a negative size is refused as dockerd does,
    // a 400.
    config.shm_size = h["ShmSize"].as_i64().unwrap_or(0);
    if config.shm_size < 0 {
        bail!(BadRequest("SHM size can not be less than 0".into()));
    }
    // `--pid`, `--ipc`, `--uts`, `--cgroupns`: dockerd's 400 for a mode it
    // does not know, and for a hostname with the host's UTS namespace.
    config.pid_mode = text(&h["PidMode"]);
    config.ipc_mode = text(&h["IpcMode"]);
    config.uts_mode = text(&h["UTSMode"]);
    config.cgroupns_mode = text(&h["CgroupnsMode"]);
    dockyard::container::ns_modes::check_modes(&config).map_err(|e| BadRequest(e.to_string()))?;
    for bind in strings(&h["Binds"]) {
        config
            .mounts
            .push(dockyard::volumes::parse_v(&bind).map_err(|e| BadRequest(format!("{e:#}")))?);
    }
    host_config_from_json(b, &mut config)?;
    super::resources::read(&b["HostConfig"], &mut config);
    // `Volumes`: the anonymous volumes. The docker CLI sends `-v /data`
    // here, not in `Binds`; a bind or mount on the same path wins, as for
    // an image's VOLUME (dockerd's `IsDestinationMounted`).
    for path in b["Volumes"].as_object().into_iter().flat_map(|o| o.keys()) {
        let m = dockyard::volumes::parse_v(path).map_err(|e| BadRequest(format!("{e:#}")))?;
        if !config.mounts.iter().any(|o| o.target == m.target) {
            config.mounts.push(m);
        }
    }
    Ok(config)
}

/// The rest of `HostConfig` (and `Config`) that a docker client sends and
/// the core knows, each as the CLI flag it stands for: `PortBindings` as
/// `-p IP:HOST:CONTAINER/PROTO`, `Mounts` as `--mount`, `RestartPolicy`,
/// capabilities, DNS, limits, the health check.
fn host_config_from_json(b: &Value, config: &mut ContainerConfig) -> Result<()> {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let bad = |e: anyhow::Error| BadRequest(format!("{e:#}"));
    let h = &b["HostConfig"];
    if let Some(ports) = h["PortBindings"].as_object() {
        for (port, binds) in ports {
            for bind in binds.as_array().into_iter().flatten() {
                let ip = bind["HostIp"].as_str().unwrap_or("");
                let host = bind["HostPort"].as_str().unwrap_or("");
                let spec = match (ip.is_empty(), host.is_empty()) {
                    (true, true) => port.clone(),
                    (true, false) => format!("{host}:{port}"),
                    (false, _) => format!("{ip}:{host}:{port}"),
                };
                config.publish.push(spec);
            }
        }
    }
    if let Some(exposed) = b["ExposedPorts"].as_object() {
        config.exposed.extend(exposed.keys().cloned());
    }
    config.publish_all = h["PublishAllPorts"].as_bool().unwrap_or(false);
    for m in h["Mounts"].as_array().into_iter().flatten() {
        let mut spec = format!(
            "type={},source={},target={}",
            m["Type"].as_str().unwrap_or("volume"),
            m["Source"].as_str().unwrap_or(""),
            m["Target"].as_str().unwrap_or("")
        );
        if m["ReadOnly"].as_bool().unwrap_or(false) {
            spec.push_str(",readonly");
        }
        if m["Source"].as_str().unwrap_or("").is_empty() {
            spec = spec.replace("source=,", "");
        }
        config
            .mounts
            .push(dockyard::volumes::parse_mount(&spec).map_err(bad)?);
    }
    if let Some(name) = h["RestartPolicy"]["Name"]
        .as_str()
        .filter(|n| !n.is_empty())
    {
        let max = h["RestartPolicy"]["MaximumRetryCount"]
            .as_u64()
            .unwrap_or(0);
        let text = if name == "on-failure" && max > 0 {
            format!("{name}:{max}")
        } else {
            name.to_string()
        };
        config.restart = text.parse().map_err(bad)?;
    }
    super::process::read(b, config)?;
    config.privileged = h["Privileged"].as_bool().unwrap_or(false);
    config.read_only = h["ReadonlyRootfs"].as_bool().unwrap_or(false);
    config.init = h["Init"].as_bool().unwrap_or(false);
    // `--device HOST:CONTAINER:PERMS`, which the CLI sends parsed: put
    // together again and read by the core's own parser (the same checks as
    // `dockyard run --device`; the node is found when the container starts).
    for d in h["Devices"].as_array().into_iter().flatten() {
        let host = d["PathOnHost"].as_str().unwrap_or_default();
        let inside = d["PathInContainer"]
            .as_str()
            .filter(|p| !p.is_empty())
            .unwrap_or(host);
        let perms = d["CgroupPermissions"]
            .as_str()
            .filter(|p| !p.is_empty())
            .unwrap_or("rwm");
        let spec = format!("{host}:{inside}:{perms}");
        config
            .devices
            .push(container::parse_device(&spec).map_err(bad)?);
    }
    // `--log-opt`: json-file's options, checked as `dockyard run` checks
    // them (only json-file is there to choose).
    if let Some(opts) = h["LogConfig"]["Config"].as_object() {
        config.log_opts = opts
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect();
        dockyard::logs::rotation_from_opts(
            config
                .log_opts
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        )
        .map_err(bad)?;
    }
    config.cap_add = strings(&h["CapAdd"]);
    config.cap_drop = strings(&h["CapDrop"]);
    config.security_opt = strings(&h["SecurityOpt"]);
    config.dns = strings(&h["Dns"]);
    config.dns_search = strings(&h["DnsSearch"]);
    config.dns_options = strings(&h["DnsOptions"]);
    config.extra_hosts = strings(&h["ExtraHosts"]);
    if let Some(t) = h["Tmpfs"].as_object() {
        config.tmpfs = t
            .iter()
            .map(|(k, v)| match v.as_str().filter(|o| !o.is_empty()) {
                Some(o) => format!("{k}:{o}"),
                None => k.clone(),
            })
            .collect();
    }
    let num = |k: &str| h[k].as_i64().filter(|&n| n > 0);
    if let Some(n) = num("NanoCpus") {
        config.limits.cpus = Some(n as f64 / 1e9);
    }
    config.limits.cpu_shares = num("CpuShares").map(|n| n as u64);
    config.limits.pids = num("PidsLimit");
    if let Some(s) = h["MemorySwap"].as_i64().filter(|&s| s != 0) {
        config.limits.memory_swap = Some(s);
    }
    if let Some(test) = b["Healthcheck"]["Test"].as_array() {
        let test: Vec<String> = test
            .iter()
            .filter_map(|s| s.as_str().map(String::from))
            .collect();
        if test.first().map(String::as_str) == Some("NONE") {
            config.no_healthcheck = true;
        } else if !test.is_empty() {
            let mut check = dockyard::health::Check::new(test);
            let ns = |k: &str| b["Healthcheck"][k].as_u64().filter(|&n| n > 0);
            if let Some(n) = ns("Interval") {
                check.interval = n;
            }
            if let Some(n) = ns("Timeout") {
                check.timeout = n;
            }
            if let Some(n) = ns("StartPeriod") {
                check.start_period = n;
            }
            if let Some(n) = b["Healthcheck"]["Retries"].as_u64().filter(|&n| n > 0) {
                check.retries = n as u32;
            }
            config.healthcheck = Some(check);
        }
    }
    Ok(())
}

/// `POST /containers/ID/start`: 204, or 304 when it already runs. An
/// attach made before (what `docker run` does) gets its connection to the
/// monitor here, before the container runs.
pub fn start(service: &Service, id: &str) -> Result<Response> {
    let r = resolve(service, id)?;
    if matches!(r.state.status, Status::Running | Status::Paused) {
        return Ok(Response {
            status: 304,
            content_type: "",
            body: Vec::new(),
        });
    }
    let waiting = lock(&service.pending).remove(&r.id).unwrap_or_default();
    // A container created with OpenStdin (`-i`) gets a stdin that stays
    // open, attached or not, as dockerd keeps it: `cat` waits for input
    // from whoever attaches later.
    let stdin = config_of(&r)?.open_stdin;
    let sock = lock(&service.starter).start(&r.id, !waiting.is_empty(), stdin)?;
    if let Some(sock) = sock {
        // The first attach gets the connection the monitor waited for;
        // any others connect on their own, now that it listens.
        let mut socks = vec![Ok(sock)];
        socks.extend((1..waiting.len()).map(|_| container::connect(service.engine, &r.id)));
        for (tx, s) in waiting.into_iter().zip(socks) {
            if let Ok(s) = s {
                let _ = tx.send(s);
            }
        }
    } else if !config_of(&r)?.init {
        if let Some(why) = exec_failure(service, &r.id) {
            // dockerd's `translateContainerdStartErr`: a command that is
            // not there (or may not run) is the client's mistake, 400; the
            // CLI exits 127 (126) on the words "executable file not found".
            bail!(BadRequest(format!(
                "failed to create task for container: unable to start container process: {why}"
            )));
        }
    }
    Ok(Response::no_content())
}

/// Why a container just started could not exec its command, if it could
/// not: dockerd learns it from runc before `start` answers, and so must we.
///
/// The container's first process is a fork of the monitor, this very
/// program, until it execs the command: watch `/proc/PID/exe` until it is
/// another file (the exec happened: no error) or the process is gone. Gone
/// first, it exited without an exec; the core's child said why on its
/// stderr (`dockyard: exec "nosuch": executable file not found in $PATH`),
/// which is in the log once the monitor has recorded the exit.
fn exec_failure(service: &Service, id: &str) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let r = resolve(service, id).ok()?;
    let me = std::fs::metadata("/proc/self/exe").ok()?;
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while let Ok(exe) = std::fs::metadata(format!("/proc/{}/exe", r.state.pid)) {
        if (exe.dev(), exe.ino()) != (me.dev(), me.ino()) || std::time::Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    let exited = loop {
        let r = resolve(service, id).ok()?;
        if r.state.status != Status::Running {
            break r;
        }
        if std::time::Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    if !matches!(exited.state.exit_code, 126 | 127) {
        return None;
    }
    let dir = service.engine.containers.dir_of(id);
    let entries = logs::read(&dir, &logs::Filter::default()).ok()?;
    let line = entries.iter().rev().find(|e| e.stream == "stderr")?;
    // lab 01's words, in runc's shape: `exec: "nosuch": ...`.
    let at = line.log.find("exec \"")?;
    Some(format!("exec:{}", line.log[at + 4..].trim_end()))
}

/// `POST /containers/ID/stop?t=10&signal=SIG`.
pub fn stop(service: &Service, req: &Request, id: &str) -> Result<Response> {
    let r = resolve(service, id)?;
    if !matches!(
        r.state.status,
        Status::Running | Status::Paused | Status::Restarting
    ) {
        return Ok(Response {
            status: 304,
            content_type: "",
            body: Vec::new(),
        });
    }
    let c = config_of(&r)?;
    // No `t`: the container's --stop-timeout, else 10 (see `stop_wait`).
    let timeout = req.query("t").and_then(|t| t.parse::<i64>().ok());
    let sig = match req.query("signal").filter(|s| !s.is_empty()) {
        Some(s) => Some(container::parse_signal(s).map_err(|e| BadRequest(e.to_string()))?),
        None if !c.stop_signal.is_empty() => container::parse_signal(&c.stop_signal).ok(),
        None => None,
    };
    container::stop(service.engine, &r, timeout, sig)?;
    Ok(Response::no_content())
}

/// `POST /containers/ID/kill?signal=SIG` (SIGKILL by default).
pub fn kill(service: &Service, req: &Request, id: &str) -> Result<Response> {
    let r = resolve(service, id)?;
    let sig = req
        .query("signal")
        .filter(|s| !s.is_empty())
        .unwrap_or("KILL");
    let sig = container::parse_signal(sig).map_err(|e| BadRequest(e.to_string()))?;
    if !matches!(r.state.status, Status::Running | Status::Paused) {
        bail!(
            "Cannot kill container: {id}: container {} is not running",
            r.id
        );
    }
    container::signal(service.engine, &r, sig)?;
    Ok(Response::no_content())
}

/// `DELETE /containers/ID?force=1&v=1`.
pub fn remove(service: &Service, req: &Request, id: &str) -> Result<Response> {
    let r = resolve(service, id)?;
    let opts = RemoveOptions {
        force: req.flag("force"),
        volumes: req.flag("v"),
    };
    container::remove_checked(service.engine, &r, opts)?;
    Ok(Response::no_content())
}

/// `POST /containers/ID/wait?condition=not-running|next-exit|removed`: the
/// 200 and its headers at once (the CLI waits for them before it starts the
/// container), `{"StatusCode": N}` when the condition is met.
pub fn wait(service: &Service, req: &Request, conn: &UnixStream, id: &str) -> Result<Reply> {
    let condition = req
        .query("condition")
        .filter(|c| !c.is_empty())
        .unwrap_or("not-running");
    if !matches!(condition, "not-running" | "next-exit" | "removed") {
        bail!(BadRequest(format!("invalid condition: \"{condition}\"")));
    }
    let first = resolve(service, id)?;
    let id = first.id.clone();
    http::start_chunked(&mut &*conn, 200, "application/json")?;
    let mut last = first.clone();
    let waited = std::time::Instant::now();
    let code = loop {
        let now = service
            .engine
            .containers
            .load(&id)
            .and_then(|r| service.engine.containers.reconcile(r));
        let running = |r: &Record| {
            matches!(
                r.state.status,
                Status::Running | Status::Paused | Status::Restarting
            )
        };
        match (&now, condition) {
            (Err(_), _) => {
                // Read once: the container is gone, nobody asks again.
                break lock(&service.exits)
                    .remove(&id)
                    .unwrap_or(last.state.exit_code);
            }
            (Ok(r), "not-running") if !running(r) => break r.state.exit_code,
            (Ok(r), "next-exit")
                if !running(r) && r.state.finished_at != first.state.finished_at =>
            {
                break r.state.exit_code
            }
            _ => {}
        }
        if let Ok(r) = now {
            last = r;
        }
        if client_gone(conn) {
            // Nobody waits any more: no thread polls on for them.
            return Ok(Reply::Streamed(Outcome::TakenOver));
        }
        // Polled, as the CLI's `wait` polls the record: every 2 ms for the
        // first seconds (a `run --rm` is over in milliseconds, and each
        // poll is one small file read), then 20 times a second for a
        // container that runs for hours.
        let pause = if waited.elapsed() < Duration::from_secs(3) {
            2
        } else {
            50
        };
        std::thread::sleep(Duration::from_millis(pause));
    };
    let body = json!({"StatusCode": code, "Error": null}).to_string() + "\n";
    http::write_chunk(&mut &*conn, body.as_bytes())?;
    http::write_chunk(&mut &*conn, b"")?;
    Ok(Reply::Streamed(Outcome::Done))
}

/// `GET /containers/ID/logs?stdout=1&stderr=1&tail=N&timestamps=1&follow=1`:
/// the json-file log, framed as attach frames it (raw for a TTY container).
/// With `follow`, what the container prints next follows until it stops
/// (or the client goes).
pub fn logs(service: &Service, req: &Request, conn: &UnixStream, id: &str) -> Result<Reply> {
    let r = resolve(service, id)?;
    let tty = config_of(&r)?.tty;
    let (out, err) = (req.flag("stdout"), req.flag("stderr"));
    if !out && !err {
        bail!(BadRequest(
            "Bad parameters: you must choose at least one stream".into()
        ));
    }
    let dir = service.engine.containers.dir_of(&r.id);
    // Opened first, and kept: docker-py's `run` opens this stream, waits
    // for the exit, *removes the container*, and only then reads. A log
    // file that is open can still be read after its directory is gone.
    let held = std::fs::File::open(dir.join(logs::LOG_FILE)).ok();
    let tail = req.query("tail").and_then(|t| t.parse().ok());
    let since = docker_time(req.query("since"))?;
    let until = docker_time(req.query("until"))?;
    // The whole log, read once: following goes on from its end.
    let whole = logs::read(&dir, &logs::Filter::default())?;
    let mut seen = whole.len();
    // `details`: the attributes of each line (`--log-opt labels=`/`env=`)
    // before it, as dockerd's `WriteLogStream` puts them, after the time.
    let details = req.flag("details").then(|| {
        let c = config_of(&r).unwrap_or_default();
        logs::attributes(&c.log_opts, &c.labels, &c.env)
    });
    let in_range = |e: &logs::Entry| {
        let t = state::parse_rfc3339(&e.time);
        since.is_none_or(|s| t.is_some_and(|t| t >= s))
            && until.is_none_or(|u| t.is_some_and(|t| t <= u))
    };
    let mut entries: Vec<logs::Entry> = whole.into_iter().filter(|e| in_range(e)).collect();
    if let Some(n) = tail {
        entries.drain(..entries.len().saturating_sub(n));
    }
    let content = if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    };
    http::start_chunked(&mut &*conn, 200, content)?;
    let frames = |entries: &[logs::Entry]| {
        let mut body = Vec::new();
        for e in entries {
            let stream = if e.stream == "stderr" { 2 } else { 1 };
            if (stream == 1 && !out) || (stream == 2 && !err) {
                continue;
            }
            if !in_range(e) {
                continue;
            }
            let mut line = Vec::new();
            if req.flag("timestamps") {
                line.extend_from_slice(format!("{} ", e.time).as_bytes());
            }
            if let Some(d) = &details {
                line.extend_from_slice(format!("{d} ").as_bytes());
            }
            line.extend_from_slice(e.log.as_bytes());
            push_frame(&mut body, tty, stream, &line);
        }
        body
    };
    let body = frames(&entries);
    if !body.is_empty() {
        http::write_chunk(&mut &*conn, &body)?;
    }
    while req.flag("follow") && !client_gone(conn) {
        // Read before looking at the state: what a container printed
        // before it stopped is sent before the stream ends.
        let running = resolve(service, &r.id).is_ok_and(|r| {
            matches!(
                r.state.status,
                Status::Running | Status::Paused | Status::Restarting
            )
        });
        let all = if dir.exists() {
            logs::read(&dir, &logs::Filter::default()).unwrap_or_default()
        } else {
            held.as_ref().map(read_held).unwrap_or_default()
        };
        // (A rotation shortens the log: start over from its new end.)
        let body = frames(all.get(seen..).unwrap_or_default());
        seen = all.len();
        if !body.is_empty() {
            http::write_chunk(&mut &*conn, &body)?;
        }
        let past_until = until.is_some_and(|u| SystemTime::now() > u);
        if !running || past_until {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    http::write_chunk(&mut &*conn, b"")?;
    Ok(Reply::Streamed(Outcome::Done))
}

/// A time of the logs' `since` and `until` as the CLI sends them: Unix
/// seconds with nanoseconds after a dot (`1796592174.000000000`); empty or
/// `0` is no bound.
fn docker_time(q: Option<&str>) -> Result<Option<SystemTime>> {
    let Some(q) = q.filter(|q| !q.is_empty() && *q != "0") else {
        return Ok(None);
    };
    let bad = || BadRequest(format!("invalid value for time: {q:?}"));
    let (secs, frac) = q.split_once('.').unwrap_or((q, ""));
    let secs: u64 = secs.parse().map_err(|_| bad())?;
    let nanos: u32 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}")[..9].parse().map_err(|_| bad())?
    };
    Ok(Some(UNIX_EPOCH + Duration::new(secs, nanos)))
}

/// Every entry of a log file held open (its name may be gone).
fn read_held(f: &std::fs::File) -> Vec<logs::Entry> {
    use std::io::{BufRead, BufReader, Seek};
    let mut f = f;
    if f.seek(std::io::SeekFrom::Start(0)).is_err() {
        return Vec::new();
    }
    BufReader::new(f)
        .lines()
        .map_while(|l| l.ok())
        .filter_map(|l| serde_json::from_str(&l).ok())
        .collect()
}

/// Docker's stream frame: the 8-byte header (stream, three zeros, the
/// big-endian length) and the bytes; with a TTY, the bytes alone.
fn push_frame(out: &mut Vec<u8>, tty: bool, stream: u8, data: &[u8]) {
    if !tty {
        out.push(stream);
        out.extend_from_slice(&[0, 0, 0]);
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
}

/// `POST /containers/ID/attach?stream=1&stdin=1&stdout=1&stderr=1`,
/// hijacked (see the module docs).
pub fn attach(
    service: &Service,
    req: &Request,
    conn: &UnixStream,
    id: &str,
    early: &[u8],
) -> Result<Reply> {
    let r = resolve(service, id)?;
    let c = config_of(&r)?;
    let detach_keys = detach_keys(req)?;
    let monitor = if matches!(r.state.status, Status::Running | Status::Paused) {
        Attached::Now(container::connect(service.engine, &r.id)?)
    } else {
        // Not started yet: the start hands us the monitor's connection.
        let (tx, rx) = std::sync::mpsc::channel();
        lock(&service.pending)
            .entry(r.id.clone())
            .or_default()
            .push(tx);
        Attached::Later(rx)
    };
    let content = if c.tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    };
    // The 101, flushed before any output: the client reads it, then treats
    // the socket as the stream.
    let mut head = Vec::new();
    write!(head, "HTTP/1.1 101 UPGRADED\r\nContent-Type: {content}\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n")?;
    http::common_headers(&mut head)?;
    head.extend_from_slice(b"\r\n");
    (&*conn).write_all(&head)?;
    // `logs=1`: what the container printed so far first, from its log, up
    // to the monitor's mark (see attach_log); the stream carries the rest.
    let mut ended = false;
    if req.flag("logs") {
        let mut filter = logs::Filter::default();
        if let Attached::Now(s) = &monitor {
            match attach_log::mark(s)? {
                attach_log::Mark::At(t) => filter.until = Some(t),
                attach_log::Mark::Ended(code) => {
                    if let Some(code) = code {
                        record_exit(service, &r.id, code);
                    }
                    ended = true;
                }
            }
        }
        let dir = service.engine.containers.dir_of(&r.id);
        let mut body = Vec::new();
        for e in logs::read(&dir, &filter).unwrap_or_default() {
            let stream = if e.stream == "stderr" { 2 } else { 1 };
            if req.flag(if stream == 2 { "stderr" } else { "stdout" }) {
                push_frame(&mut body, c.tty, stream, e.log.as_bytes());
            }
        }
        if !body.is_empty() {
            attach_log::wait_until_read(conn, Duration::from_secs(1));
        }
        (&*conn).write_all(&body)?;
    }
    (&*conn).flush()?;
    if ended {
        return Ok(Reply::Streamed(Outcome::TakenOver));
    }
    // An attach made before the start is `docker run -i`'s, whose stdin is
    // "once": when the client's input ends, the container's does too.
    let stdin_once = matches!(monitor, Attached::Later(_));
    let monitor = match monitor {
        Attached::Now(s) => s,
        Attached::Later(rx) => loop {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(s) => break s,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) if !client_gone(conn) => {}
                // The client went before the start.
                Err(_) => return Ok(Reply::Streamed(Outcome::TakenOver)),
            }
        },
    };
    let wants = Wants {
        stdin: req.flag("stdin") && c.open_stdin,
        stdin_once,
        stdout: req.flag("stdout"),
        stderr: req.flag("stderr"),
        detach_keys,
    };
    if relay(service, &r.id, conn, monitor, c.tty, wants, early)? {
        dockyard::events::container(service.engine, &r, "detach", &[]);
    }
    Ok(Reply::Streamed(Outcome::TakenOver))
}

/// The attach's `detachKeys` (the CLI's `--detach-keys`, in its format),
/// else docker's ctrl-p,ctrl-q; refused before the upgrade, with dockerd's
/// words, when it is not a key sequence.
fn detach_keys(req: &Request) -> Result<Vec<u8>> {
    match req.query("detachKeys").filter(|k| !k.is_empty()) {
        None => Ok(vec![16, 17]),
        Some(k) => container::parse_detach_keys(k)
            .map_err(|_| BadRequest(format!("Invalid detach keys ({k}) provided")).into()),
    }
}

/// Whether the client hung up: closed the connection altogether, which a
/// unix socket reports as POLLHUP at once. (Not POLLRDHUP: `docker run -i`
/// half-closes at its stdin's EOF, maybe before the start, and still reads.)
fn client_gone(conn: &UnixStream) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    let mut fds = [PollFd::new(conn.as_fd(), PollFlags::empty())];
    match poll(&mut fds, PollTimeout::ZERO) {
        Ok(n) if n > 0 => fds[0]
            .revents()
            .is_some_and(|r| r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR)),
        _ => false,
    }
}

enum Attached {
    Now(UnixStream),
    Later(std::sync::mpsc::Receiver<UnixStream>),
}

#[derive(Clone)]
struct Wants {
    stdin: bool,
    stdin_once: bool,
    stdout: bool,
    stderr: bool,
    /// The detach keys, looked for in the input with a TTY.
    detach_keys: Vec<u8>,
}

/// Copy between the client and the monitor until the container exits:
/// output re-framed for the client, input framed for the monitor. True
/// when the client typed the detach keys instead.
///
/// The detach keys are dockerd's `copyEscapable`: with a TTY, the input
/// is scanned for them (held back while they might be starting, sent on
/// when the sequence breaks); once typed, this attach ends (its stream
/// closes, as the container's exit would close it) and the container goes
/// on, its terminal's input open for the next attach. Without a TTY every
/// byte is data, as in dockerd. (Docker's CLI scans for them too, and
/// leaves without sending them; a client that sends them is detached here.)
fn relay(
    service: &Service,
    id: &str,
    client: &UnixStream,
    monitor: UnixStream,
    tty: bool,
    wants: Wants,
    early: &[u8],
) -> Result<bool> {
    let detached = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| -> Result<()> {
        if wants.stdin {
            let mut to_monitor = monitor.try_clone()?;
            let mut from_client = client.try_clone()?;
            let early = early.to_vec();
            let mut keys = container::DetachKeys::new(wants.detach_keys.clone(), tty);
            let detached = &detached;
            s.spawn(move || {
                let mut buf = early;
                loop {
                    let (data, hit) = keys.feed(&buf);
                    if !data.is_empty() {
                        let f =
                            dockyard_monitor::attach::frame(dockyard_monitor::attach::STDIN, &data);
                        if to_monitor.write_all(&f).is_err() {
                            return;
                        }
                    }
                    if hit {
                        // This attach ends (the output side sees the
                        // monitor's connection closed); the container, and
                        // its stdin, go on.
                        detached.store(true, std::sync::atomic::Ordering::SeqCst);
                        let _ = to_monitor.shutdown(std::net::Shutdown::Both);
                        return;
                    }
                    buf = vec![0; 32 * 1024];
                    match from_client.read(&mut buf) {
                        Ok(0) | Err(_) => {
                            // The client closed its side (the CLI
                            // half-closes at its stdin's EOF). As dockerd's
                            // `CopyStreams`: with a "once" stdin and no TTY
                            // the container's input ends (an empty frame
                            // tells the monitor) and the output goes on
                            // until it exits; otherwise the container's
                            // stdin stays open for the next client, and
                            // this attach ends: the client sees EOF.
                            if wants.stdin_once && !tty {
                                let end = dockyard_monitor::attach::frame(
                                    dockyard_monitor::attach::STDIN,
                                    &[],
                                );
                                let _ = to_monitor.write_all(&end);
                            } else {
                                let _ = to_monitor.shutdown(std::net::Shutdown::Both);
                            }
                            return;
                        }
                        Ok(n) => buf.truncate(n),
                    }
                }
            });
        }
        let result = pump_output(service, id, client, &monitor, tty, &wants);
        // Done: end the client's stream, and unblock the stdin thread.
        let _ = client.shutdown(std::net::Shutdown::Both);
        let _ = monitor.shutdown(std::net::Shutdown::Both);
        result
    })?;
    Ok(detached.into_inner())
}

/// The exit code the monitor sent, for the `wait` that asks after it.
fn record_exit(service: &Service, id: &str, code: i32) {
    let mut exits = lock(&service.exits);
    // Codes nobody waited for (an attach without a wait) must not pile up
    // in a service that runs for months.
    if exits.len() >= 4096 {
        exits.clear();
    }
    exits.insert(id.to_string(), code);
}

/// The monitor's frames (kind 1 stdout, 2 stderr, 4 exit) to docker's.
fn pump_output(
    service: &Service,
    id: &str,
    mut client: &UnixStream,
    mut monitor: &UnixStream,
    tty: bool,
    wants: &Wants,
) -> Result<()> {
    use dockyard_monitor::attach::{frames, EXIT, STDERR, STDOUT};
    let mut pending = Vec::new();
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = monitor.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        pending.extend_from_slice(&buf[..n]);
        let mut out = Vec::new();
        for (kind, data) in frames(&mut pending) {
            match kind {
                STDOUT if wants.stdout => push_frame(&mut out, tty, 1, &data),
                STDERR if wants.stderr => push_frame(&mut out, tty, 2, &data),
                EXIT if data.len() == 4 => {
                    let code = i32::from_be_bytes([data[0], data[1], data[2], data[3]]);
                    record_exit(service, id, code);
                    client.write_all(&out)?;
                    return Ok(());
                }
                _ => {}
            }
        }
        if !out.is_empty() {
            client
                .write_all(&out)
                .map_err(|e| anyhow!("writing to the client: {e}"))?;
        }
    }
}
