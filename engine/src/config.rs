//! Engine configuration: `daemon.json`, as Docker reads it, and the data root.
//!
//! Docker's daemon reads `/etc/docker/daemon.json` once at start-up. Dockyard
//! has no daemon, so every `dockyard` invocation reads
//! `/etc/dockyard/daemon.json` (or `--config FILE`). The keys mean what they
//! mean to Docker. Keys that only make sense for a long-running daemon
//! (`hosts`, `live-restore`, ...) are accepted with a warning that names them,
//! so a daemon.json copied from a Docker host still works.
//!
//! The data root is chosen like Docker's, most specific first:
//! `--root DIR`, then `$DOCKYARD_ROOT`, then `data-root` in daemon.json, then
//! `/var/lib/dockyard`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

/// The default configuration file.
pub const DEFAULT_CONFIG: &str = "/etc/dockyard/daemon.json";
/// The default data root.
pub const DEFAULT_ROOT: &str = "/var/lib/dockyard";

/// The settings Dockyard honours. Unset keys keep Docker's defaults.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DaemonConfig {
    pub data_root: Option<PathBuf>,
    pub storage_driver: Option<String>,
    pub registry_mirrors: Vec<String>,
    pub insecure_registries: Vec<String>,
    pub bip: Option<String>,
    /// `"bridge": "none"`: no default bridge network. Containers then
    /// default to `--network none`, and `bridge` is not a network at all,
    /// as with dockerd's `--bridge=none`.
    pub bridge: Option<String>,
    pub default_address_pools: Vec<AddressPool>,
    pub dns: Vec<String>,
    pub dns_search: Vec<String>,
    pub mtu: Option<u32>,
    pub ip_forward: Option<bool>,
    pub iptables: Option<bool>,
    pub icc: Option<bool>,
    pub log_driver: Option<String>,
    pub log_opts: BTreeMap<String, String>,
    /// name -> (soft, hard)
    pub default_ulimits: BTreeMap<String, (i64, i64)>,
    pub default_shm_size: Option<String>,
    /// `default-ipc-mode`: a container's IPC mode when it names none,
    /// `private` or `shareable` (dockerd's default: `private`).
    pub default_ipc_mode: Option<String>,
    /// `default-cgroupns-mode`: a container's cgroup namespace mode when
    /// it names none, `private` or `host` (dockerd's default: `private` on
    /// cgroup v2, `host` on v1 and on a hybrid host).
    pub default_cgroupns_mode: Option<String>,
    pub no_new_privileges: Option<bool>,
    pub userns_remap: Option<String>,
    pub exec_opts: Vec<String>,
    pub labels: Vec<String>,
    pub debug: bool,
    /// `cluster-store`: the etcd that overlay networks live in
    /// (`etcd://HOST:2379`); see the cluster module.
    pub cluster_store: Option<String>,
    /// `cluster-advertise`: the interface or address (docker's
    /// `eth0:2376`) other hosts reach this one at: its VXLAN endpoint.
    pub cluster_advertise: Option<String>,
}

/// One entry of `default-address-pools`: `{"base": "172.80.0.0/16", "size": 24}`.
#[derive(Debug, Clone, PartialEq)]
pub struct AddressPool {
    pub base: String,
    pub size: u8,
}

/// Keys a daemonless engine accepts but cannot act on, with the reason.
const NOT_APPLICABLE: &[(&str, &str)] = &[
    ("hosts", "dockyard has no daemon to listen on a socket"),
    (
        "live-restore",
        "containers outlive dockyard anyway: each has its own monitor",
    ),
    ("pidfile", "dockyard has no daemon process"),
    ("tls", "dockyard has no API socket"),
    ("tlsverify", "dockyard has no API socket"),
    ("tlscacert", "dockyard has no API socket"),
    ("tlscert", "dockyard has no API socket"),
    ("tlskey", "dockyard has no API socket"),
    ("max-concurrent-downloads", "not configurable yet"),
    ("max-concurrent-uploads", "not configurable yet"),
    ("experimental", "dockyard has no experimental features"),
    ("features", "dockyard has no BuildKit feature switches"),
];

/// The keys `parse` leaves to this: `mtu`, daemon.json's cluster keys (see the
/// cluster module; `cluster-store` must be an etcd URL), and the keys that
/// do not apply or are unknown, which are warned about.
fn other_key(c: &mut DaemonConfig, k: &str, v: &Value, warnings: &mut Vec<String>) -> Result<()> {
    let ctx = || format!("key {k:?}");
    match k {
        // 0 is dockerd's "the default" (1500), as in the notes' example.
        "mtu" if v.as_u64() == Some(0) => {}
        "mtu" => {
            let mtu = v.as_u64().filter(|m| (68..=65535).contains(m));
            c.mtu = Some(
                mtu.ok_or_else(|| anyhow!("key {k:?}: expected a number from 68 to 65535"))? as u32,
            );
        }
        "cluster-store" => {
            let url = string(v).with_context(ctx)?;
            if !url.starts_with("etcd://") {
                bail!("key {k:?}: {url:?}: dockyard's cluster store is etcd (etcd://HOST:2379)");
            }
            c.cluster_store = Some(url);
        }
        "cluster-advertise" => c.cluster_advertise = Some(string(v).with_context(ctx)?),
        // Checked once every key is read, by `check_default_modes`.
        "default-ipc-mode" => c.default_ipc_mode = Some(string(v).with_context(ctx)?),
        "default-cgroupns-mode" => c.default_cgroupns_mode = Some(string(v).with_context(ctx)?),
        "cluster-store-opts" => warnings.push(format!(
            "key {k:?} does not apply: dockyard talks to etcd over plain HTTP, without TLS options"
        )),
        _ => match NOT_APPLICABLE.iter().find(|(name, _)| *name == k) {
            Some((_, why)) => warnings.push(format!("key {k:?} does not apply: {why}")),
            None => warnings.push(format!("unknown key {k:?} is ignored")),
        },
    }
    Ok(())
}

impl DaemonConfig {
    /// Read `path`. A missing default file is an empty configuration; a
    /// missing file named with `--config` is an error. Warnings about keys are
    /// returned, not printed, so the caller decides where they go.
    pub fn load(path: &Path, explicit: bool) -> Result<(DaemonConfig, Vec<String>)> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
                return Ok((DaemonConfig::default(), Vec::new()))
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        Self::parse(&text).with_context(|| format!("in {}", path.display()))
    }

    /// Parse the text of a daemon.json.
    pub fn parse(text: &str) -> Result<(DaemonConfig, Vec<String>)> {
        let value: Value = serde_json::from_str(text).map_err(|e| {
            anyhow!(
                "invalid JSON at line {} column {}: {e}",
                e.line(),
                e.column()
            )
        })?;
        let Value::Object(map) = value else {
            bail!("the top level must be a JSON object");
        };
        let mut c = DaemonConfig::default();
        let mut warnings = Vec::new();
        for (key, v) in &map {
            let k = key.as_str();
            // An empty string is the key's default, as dockerd reads it: the
            // full example the course notes copy from docker's reference
            // has `"bip": ""`, `"bridge": ""`, `"data-root": ""`, ...
            if v.as_str() == Some("") {
                continue;
            }
            let ctx = || format!("key {k:?}");
            match k {
                "data-root" => c.data_root = Some(string(v).map(PathBuf::from).with_context(ctx)?),
                "graph" => {
                    warnings.push("key \"graph\" is deprecated: use \"data-root\"".into());
                    if !map.contains_key("data-root") {
                        c.data_root = Some(string(v).map(PathBuf::from).with_context(ctx)?);
                    }
                }
                "storage-driver" => {
                    let d = string(v).with_context(ctx)?;
                    if d != "overlay2" && d != "overlay" {
                        bail!("key \"storage-driver\": {d:?} is not supported; dockyard uses overlay2");
                    }
                    c.storage_driver = Some(d);
                }
                "registry-mirrors" => c.registry_mirrors = strings(v).with_context(ctx)?,
                "insecure-registries" => c.insecure_registries = strings(v).with_context(ctx)?,
                "bip" => {
                    let bip = string(v).with_context(ctx)?;
                    parse_cidr(&bip).with_context(ctx)?;
                    c.bip = Some(bip);
                }
                "bridge" => {
                    let b = string(v).with_context(ctx)?;
                    // Docker's other values name an existing interface to use
                    // instead of docker0; dockyard makes and names its own
                    // (lab 05's dockyard0), so only "none" has a meaning here.
                    if b != "none" && !b.is_empty() {
                        warnings.push(format!(
                            "key \"bridge\": {b:?} is not used: dockyard makes its own default \
                             bridge; only \"none\" (no default bridge) is honoured"
                        ));
                    }
                    c.bridge = Some(b);
                }
                "default-address-pools" => {
                    let Value::Array(items) = v else {
                        bail!("key {k:?}: expected an array")
                    };
                    for item in items {
                        let base = item.get("base").map(string).transpose().with_context(ctx)?;
                        let size = item.get("size").and_then(Value::as_u64);
                        let (Some(base), Some(size)) = (base, size) else {
                            bail!("key {k:?}: each pool needs \"base\" and \"size\"");
                        };
                        let (_, prefix) = parse_cidr(&base).with_context(ctx)?;
                        if size > 32 || (size as u8) < prefix {
                            bail!("key {k:?}: size {size} does not fit in {base}");
                        }
                        c.default_address_pools.push(AddressPool {
                            base,
                            size: size as u8,
                        });
                    }
                }
                "dns" => c.dns = strings(v).with_context(ctx)?,
                "dns-search" => c.dns_search = strings(v).with_context(ctx)?,
                "ip-forward" => c.ip_forward = Some(boolean(v).with_context(ctx)?),
                "iptables" => c.iptables = Some(boolean(v).with_context(ctx)?),
                "icc" => c.icc = Some(boolean(v).with_context(ctx)?),
                "log-driver" => {
                    let d = string(v).with_context(ctx)?;
                    if d != "json-file" && d != "none" {
                        bail!("key \"log-driver\": {d:?} is not supported; use \"json-file\" or \"none\"");
                    }
                    c.log_driver = Some(d);
                }
                "log-opts" => {
                    let Value::Object(opts) = v else {
                        bail!("key {k:?}: expected an object")
                    };
                    for (ok, ov) in opts {
                        c.log_opts.insert(
                            ok.clone(),
                            string(ov).with_context(|| format!("key \"log-opts.{ok}\""))?,
                        );
                    }
                }
                "default-ulimits" => {
                    let Value::Object(lims) = v else {
                        bail!("key {k:?}: expected an object")
                    };
                    for (name, lim) in lims {
                        let soft = lim.get("Soft").and_then(Value::as_i64);
                        let hard = lim.get("Hard").and_then(Value::as_i64);
                        let (Some(soft), Some(hard)) = (soft, hard) else {
                            bail!("key \"default-ulimits.{name}\": needs \"Soft\" and \"Hard\" numbers");
                        };
                        if soft > hard {
                            bail!(
                                "key \"default-ulimits.{name}\": Soft {soft} is above Hard {hard}"
                            );
                        }
                        c.default_ulimits.insert(name.clone(), (soft, hard));
                    }
                }
                "default-shm-size" => c.default_shm_size = Some(string(v).with_context(ctx)?),
                "no-new-privileges" => c.no_new_privileges = Some(boolean(v).with_context(ctx)?),
                "userns-remap" => c.userns_remap = Some(string(v).with_context(ctx)?),
                "exec-opts" => {
                    c.exec_opts = strings(v).with_context(ctx)?;
                    for opt in &c.exec_opts {
                        match opt.split_once('=') {
                            Some(("native.cgroupdriver", "cgroupfs")) => {}
                            Some(("native.cgroupdriver", "systemd")) => warnings.push(
                                "exec-opts native.cgroupdriver=systemd: dockyard writes cgroupfs \
                                 directly (lab 03) and has no systemd driver; using cgroupfs"
                                    .into(),
                            ),
                            Some(("native.cgroupdriver", other)) => {
                                bail!("key \"exec-opts\": cgroup driver {other:?} is not supported; use cgroupfs or systemd")
                            }
                            _ => warnings
                                .push(format!("exec-opts entry {opt:?} is not used by dockyard")),
                        }
                    }
                }
                "labels" => c.labels = strings(v).with_context(ctx)?,
                "debug" => c.debug = boolean(v).with_context(ctx)?,
                _ => other_key(&mut c, k, v, &mut warnings)?,
            }
        }
        check_default_modes(&c)?;
        Ok((c, warnings))
    }
}

/// dockerd's checks of `default-ipc-mode` and `default-cgroupns-mode`
/// (daemon/config's `verifyDefaultIpcMode` and `verifyDefaultCgroupNsMode`),
/// in its order (IPC first, whatever the file's order) and words. dockerd
/// refuses to start with them; dockyard, which reads daemon.json at every
/// command, refuses every command, before anything is created. Only the
/// two modes a container can have without naming another container or the
/// host's namespace may be everyone's default.
fn check_default_modes(c: &DaemonConfig) -> Result<()> {
    const IPC_HINT: &str = "use \"shareable\" or \"private\"";
    if let Some(m) = c.default_ipc_mode.as_deref() {
        let valid =
            matches!(m, "none" | "private" | "host" | "shareable") || m.starts_with("container:");
        if !valid {
            bail!("default IPC mode setting ({m}) is invalid; {IPC_HINT}");
        }
        if m != "private" && m != "shareable" {
            bail!("IPC mode \"{m}\" is not supported as default value; {IPC_HINT}");
        }
    }
    if let Some(m) = c.default_cgroupns_mode.as_deref() {
        if m != "private" && m != "host" {
            bail!("invalid default cgroup namespace ({m}): use \"host\" or \"private\"");
        }
    }
    Ok(())
}

impl DaemonConfig {
    /// Whether the default bridge network exists (`"bridge": "none"` says
    /// it does not).
    pub fn default_bridge(&self) -> bool {
        self.bridge.as_deref() != Some("none")
    }
}

/// Pick the data root: `--root`, `$DOCKYARD_ROOT`, `data-root`, the default.
pub fn data_root(flag: Option<&Path>, config: &DaemonConfig) -> PathBuf {
    flag.map(Path::to_path_buf)
        .or_else(|| std::env::var_os("DOCKYARD_ROOT").map(PathBuf::from))
        .or_else(|| config.data_root.clone())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_ROOT))
}

fn string(v: &Value) -> Result<String> {
    v.as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("expected a string, got {v}"))
}

fn strings(v: &Value) -> Result<Vec<String>> {
    match v {
        Value::Array(items) => items.iter().map(string).collect(),
        other => bail!("expected an array of strings, got {other}"),
    }
}

fn boolean(v: &Value) -> Result<bool> {
    v.as_bool()
        .ok_or_else(|| anyhow!("expected true or false, got {v}"))
}

/// Parse `a.b.c.d/n`, returning the address and prefix length.
pub fn parse_cidr(s: &str) -> Result<(std::net::Ipv4Addr, u8)> {
    let (addr, prefix) = s
        .split_once('/')
        .ok_or_else(|| anyhow!("{s:?} is not in CIDR form (a.b.c.d/n)"))?;
    let addr: std::net::Ipv4Addr = addr
        .parse()
        .map_err(|_| anyhow!("{s:?}: bad IPv4 address"))?;
    let prefix: u8 = prefix
        .parse()
        .ok()
        .filter(|p| *p <= 32)
        .ok_or_else(|| anyhow!("{s:?}: bad prefix length"))?;
    Ok((addr, prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_strings_are_the_defaults_as_in_dockerd() {
        let text = r#"{"bip": "", "bridge": "", "data-root": "", "cluster-store": "",
                       "cgroup-parent": "", "default-gateway": "", "mtu": 0}"#;
        let (c, warnings) = DaemonConfig::parse(text).unwrap();
        assert_eq!(c, DaemonConfig::default());
        assert!(c.default_bridge());
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn the_course_notes_daemon_json_parses_with_warnings() {
        // The example from the course notes, as a learner would copy it.
        let text = r#"{
            "graph": "/data/docker",
            "storage-driver": "overlay2",
            "insecure-registries": ["registry.access.redhat.com","quay.io"],
            "registry-mirrors": ["https://q2gr04ke.mirror.aliyuncs.com"],
            "bip": "172.24.38.1/24",
            "exec-opts": ["native.cgroupdriver=systemd"],
            "live-restore": true
        }"#;
        let (c, warnings) = DaemonConfig::parse(text).unwrap();
        assert_eq!(c.data_root.as_deref(), Some(Path::new("/data/docker")));
        assert_eq!(
            c.insecure_registries,
            ["registry.access.redhat.com", "quay.io"]
        );
        assert_eq!(c.bip.as_deref(), Some("172.24.38.1/24"));
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("native.cgroupdriver=systemd")),
            "{warnings:?}"
        );
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("\"graph\" is deprecated")),
            "{warnings:?}"
        );
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("\"live-restore\" does not apply")),
            "{warnings:?}"
        );
    }

    #[test]
    fn unknown_keys_are_named() {
        let (_, warnings) = DaemonConfig::parse(r#"{"no-such-key": 1}"#).unwrap();
        assert_eq!(warnings, ["unknown key \"no-such-key\" is ignored"]);
    }

    #[test]
    fn bad_values_name_the_key() {
        for (text, needle) in [
            (r#"{"bip": "300.1.1.1/24"}"#, "\"bip\""),
            (r#"{"mtu": 10}"#, "\"mtu\""),
            (r#"{"debug": "yes"}"#, "\"debug\""),
            (r#"{"storage-driver": "zfs"}"#, "storage-driver"),
            (
                r#"{"default-ulimits": {"nofile": {"Soft": 10, "Hard": 5}}}"#,
                "default-ulimits.nofile",
            ),
            (
                r#"{"default-address-pools": [{"base": "10.0.0.0/16", "size": 8}]}"#,
                "default-address-pools",
            ),
        ] {
            let err = format!("{:#}", DaemonConfig::parse(text).unwrap_err());
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn default_namespace_modes_are_checked_as_dockerd_checks_them() {
        let (c, _) = DaemonConfig::parse(
            r#"{"default-ipc-mode": "shareable", "default-cgroupns-mode": "private"}"#,
        )
        .unwrap();
        assert_eq!(c.default_ipc_mode.as_deref(), Some("shareable"));
        assert_eq!(c.default_cgroupns_mode.as_deref(), Some("private"));
        let ipc = r#"use "shareable" or "private""#;
        for (text, want) in [
            (
                r#"{"default-ipc-mode": "bogus"}"#,
                format!("default IPC mode setting (bogus) is invalid; {ipc}"),
            ),
            (
                r#"{"default-ipc-mode": "host"}"#,
                format!("IPC mode \"host\" is not supported as default value; {ipc}"),
            ),
            (
                r#"{"default-ipc-mode": "container:web"}"#,
                format!("IPC mode \"container:web\" is not supported as default value; {ipc}"),
            ),
            (
                r#"{"default-cgroupns-mode": "v1"}"#,
                r#"invalid default cgroup namespace (v1): use "host" or "private""#.into(),
            ),
            // IPC first, as dockerd: though "cgroupns" sorts first.
            (
                r#"{"default-cgroupns-mode": "v1", "default-ipc-mode": "none"}"#,
                format!("IPC mode \"none\" is not supported as default value; {ipc}"),
            ),
        ] {
            assert_eq!(DaemonConfig::parse(text).unwrap_err().to_string(), want);
        }
    }

    #[test]
    fn invalid_json_says_where() {
        let err = format!(
            "{:#}",
            DaemonConfig::parse("{\n  \"a\": 1,\n  \"b\": ,\n}").unwrap_err()
        );
        assert!(err.contains("line 3"), "{err}");
    }

    #[test]
    fn data_root_precedence() {
        let c = DaemonConfig {
            data_root: Some("/from/json".into()),
            ..Default::default()
        };
        assert_eq!(
            data_root(Some(Path::new("/from/flag")), &c),
            Path::new("/from/flag")
        );
        if std::env::var_os("DOCKYARD_ROOT").is_none() {
            assert_eq!(data_root(None, &c), Path::new("/from/json"));
            assert_eq!(
                data_root(None, &DaemonConfig::default()),
                Path::new(DEFAULT_ROOT)
            );
        }
    }
}
