//! `docker build`'s flags beyond those of `cli::BuildArgs` (which
//! flattens them in): a module of its own, as cli.rs is near the size limit.
//!
//! The classic builder runs each RUN step in a container made from the
//! build's options (moby's `hostConfigFromOptions`): the cgroup limits, the
//! extra hosts, the /dev/shm size and the ulimits are that container's, as
//! `docker run`'s flags of the same names would make them:
//!
//! ```text
//! docker build --add-host db:10.0.0.5 --shm-size 128m --ulimit nofile=1024:2048 .
//!   RUN grep db /etc/hosts      # 10.0.0.5  db   (the step's own file, not in the layer)
//!   RUN df -k /dev/shm          # 131072 1K-blocks
//!   RUN ulimit -n; ulimit -Hn   # 1024, 2048
//! ```

use anyhow::{anyhow, bail, Context};
use nix::sys::resource::{getrlimit, Resource};

use dockyard::Engine;
use lab05_netns_veth as net;

/// The rest of the classic builder's flags (`docker build --help`): the
/// RUN steps' cgroup limits, applied as `docker run` applies them, and the
/// flags with nothing to do here, accepted where docker accepts them.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct BuildFlags {
    /// Limit the CPU CFS (Completely Fair Scheduler) period.
    #[arg(long, value_name = "INT")]
    pub cpu_period: Option<u64>,
    /// Limit the CPU CFS (Completely Fair Scheduler) quota.
    #[arg(long, value_name = "INT", allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// CPU shares (relative weight).
    #[arg(short = 'c', long, value_name = "INT")]
    pub cpu_shares: Option<u64>,
    /// CPUs in which to allow execution (0-3, 0,1).
    #[arg(long, value_name = "CPUS")]
    pub cpuset_cpus: Option<String>,
    /// MEMs in which to allow execution (0-3, 0,1).
    #[arg(long, value_name = "MEMS")]
    pub cpuset_mems: Option<String>,
    /// Swap limit equal to memory plus swap: -1 to enable unlimited swap.
    #[arg(long, value_name = "BYTES", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Add a custom host-to-IP mapping (host:ip or host=ip) to the RUN steps' /etc/hosts.
    #[arg(long, value_name = "HOST:IP")]
    pub add_host: Vec<String>,
    /// Size of the RUN steps' /dev/shm (e.g. 128m).
    #[arg(long, value_name = "BYTES")]
    pub shm_size: Option<String>,
    /// The RUN steps' ulimits (NAME=SOFT[:HARD], e.g. nofile=1024:2048).
    #[arg(long, value_name = "ULIMIT")]
    pub ulimit: Vec<String>,
    /// Security options: refused on Linux, as docker's daemon refuses them for a build.
    #[arg(long, value_name = "OPT")]
    pub security_opt: Vec<String>,
    /// Images to consider as cache sources: their history can stand for steps (lab 06).
    #[arg(long, value_name = "IMAGE")]
    pub cache_from: Vec<String>,
    /// Compress the build context using gzip (nothing to do: the context is read in place).
    #[arg(long)]
    pub compress: bool,
    /// Skip image verification (nothing to verify: no content trust here).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub disable_content_trust: Option<bool>,
    /// Container isolation technology: `default` only, on Linux.
    #[arg(long, value_name = "STRING")]
    pub isolation: Option<String>,
}

impl BuildFlags {
    /// The RUN steps' limits, or a refusal in docker's words (`--isolation`,
    /// `--security-opt`).
    pub fn limits(&self) -> anyhow::Result<lab03_cgroups::Limits> {
        if let Some(i) = &self.isolation {
            // moby's build route: only the default isolation on Linux.
            if !(i.is_empty() || i.eq_ignore_ascii_case("default")) {
                anyhow::bail!("unsupported isolation: {i:?}");
            }
        }
        if !self.security_opt.is_empty() {
            // moby's build route (`newImageBuildOptions`): security options
            // are for Windows' credential specs; any value is refused on
            // Linux, before the build starts.
            bail!("security options are not supported on linux");
        }
        let memory_swap = match self.memory_swap.as_deref() {
            None => None,
            Some("-1") => Some(-1),
            Some(s) => Some(
                lab03_cgroups::parse_size(s).context("invalid argument for --memory-swap")? as i64,
            ),
        };
        Ok(lab03_cgroups::Limits {
            cpu_period: self.cpu_period,
            cpu_quota: self.cpu_quota,
            cpu_shares: self.cpu_shares,
            cpuset_cpus: self.cpuset_cpus.clone(),
            cpuset_mems: self.cpuset_mems.clone(),
            memory_swap,
            ..Default::default()
        })
    }
}

/// A flag's value that docker's client itself refuses, in its words:
/// `commands::build` reports it as such (no "Error response from daemon:").
#[derive(Debug)]
pub struct FlagError(pub String);

impl std::fmt::Display for FlagError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FlagError {}

fn flag_error(flag: &str, value: &str, why: &str) -> anyhow::Error {
    FlagError(format!(
        "invalid argument {value:?} for \"{flag}\" flag: {why}"
    ))
    .into()
}

/// `--add-host NAME:IP` or `NAME=IP`, checked as docker's client checks it
/// (`ValidateExtraHost`): `=` first, else the first `:`; a name, and an
/// IPv4 address (in brackets or not) or `host-gateway`.
pub fn parse_add_host(h: &str) -> anyhow::Result<(String, String)> {
    let bad = |why: String| flag_error("--add-host", h, &why);
    let (name, ip) = h
        .split_once('=')
        .or_else(|| h.split_once(':'))
        .filter(|(name, _)| !name.is_empty() && !name.contains(':'))
        .ok_or_else(|| bad(format!("bad format for add-host: {h:?}")))?;
    let ip = match ip.strip_prefix('[').and_then(|i| i.strip_suffix(']')) {
        Some(inner) if ip.len() > 2 => inner,
        _ => ip,
    };
    if ip != "host-gateway" && ip.parse::<std::net::Ipv4Addr>().is_err() {
        return Err(bad(format!("invalid IP address in add-host: {ip:?}")));
    }
    Ok((name.to_string(), ip.to_string()))
}

impl BuildFlags {
    /// The RUN steps' `/etc/hosts`, as docker writes a container's without
    /// a bridge (lab 05): localhost's lines (the host's file with
    /// `--network host`), then one line per `--add-host`. `host-gateway`
    /// is the default bridge's gateway, as in docker, which needs one.
    pub fn hosts(&self, engine: &Engine, host_network: bool) -> anyhow::Result<String> {
        let mut extra = Vec::new();
        for h in &self.add_host {
            let (name, ip) = parse_add_host(h)?;
            let ip = if ip == "host-gateway" {
                host_gateway(engine)
                    .ok_or_else(|| anyhow!("unable to derive the IP value for host-gateway"))?
                    .to_string()
            } else {
                ip
            };
            extra.push((name, ip));
        }
        let extra = net::extra_hosts_without_bridge(&extra)?;
        let mode = if host_network {
            net::NetworkMode::Host
        } else {
            net::NetworkMode::None
        };
        Ok(net::etc_files_without_bridge(&mode, "", &Default::default(), &extra).hosts)
    }

    /// `--shm-size` in bytes, else daemon.json's `default-shm-size`; `None`
    /// (or 0, as docker takes it): 64 MiB.
    pub fn shm_size(&self, engine: &Engine) -> anyhow::Result<Option<u64>> {
        let size = match &self.shm_size {
            Some(s) => lab03_cgroups::parse_size(s)
                .map_err(|_| flag_error("--shm-size", s, &format!("invalid size: '{s}'")))?,
            None => match &engine.config.default_shm_size {
                Some(s) => lab03_cgroups::parse_size(s)
                    .with_context(|| format!("daemon.json default-shm-size {s:?}"))?,
                None => 0,
            },
        };
        Ok((size > 0).then_some(size))
    }

    /// `--ulimit`s, then daemon.json's `default-ulimits` for the names not
    /// given, as the daemon merges them into every container's. A hard
    /// limit above ours needs CAP_SYS_RESOURCE: without it, the step could
    /// not have it (runc fails the same way), so the build stops here.
    pub fn rlimits(&self, engine: &Engine) -> anyhow::Result<Vec<(Resource, u64, u64)>> {
        let mut given: Vec<String> = self.ulimit.clone();
        for (name, (soft, hard)) in &engine.config.default_ulimits {
            if !given
                .iter()
                .any(|u| u.split('=').next() == Some(name.as_str()))
            {
                given.push(format!("{name}={soft}:{hard}"));
            }
        }
        let mut out = Vec::new();
        for u in &given {
            let (resource, soft, hard) = lab02_namespaces::parse_ulimit(u)
                .map_err(|e| flag_error("--ulimit", u, &e.to_string()))?;
            let (_, max) =
                getrlimit(resource).with_context(|| format!("getrlimit({resource:?})"))?;
            if hard > max && !has_cap_sys_resource() {
                bail!(
                    "--ulimit {u}: the hard limit cannot be raised above {max} here: that needs \
                     CAP_SYS_RESOURCE, which this process does not have (setrlimit: operation \
                     not permitted)"
                );
            }
            out.push((resource, soft, hard));
        }
        Ok(out)
    }
}

/// The default bridge's gateway, for `host-gateway`: none when daemon.json
/// turned the bridge off; else the address lab 05 gave it, or `bip`'s.
fn host_gateway(engine: &Engine) -> Option<std::net::Ipv4Addr> {
    if !engine.config.default_bridge() {
        return None;
    }
    let made = dockyard::network::networks(engine)
        .ok()
        .and_then(|all| all.into_iter().find(|n| n.name == "bridge"))
        .map(|n| n.gateway);
    made.or_else(|| net_bip(engine))
}

fn net_bip(engine: &Engine) -> Option<std::net::Ipv4Addr> {
    dockyard::network::net_config(engine).bip.map(|c| c.addr)
}

/// Whether this process holds CAP_SYS_RESOURCE (bit 24 of `CapEff` in
/// /proc/self/status), which raising a hard rlimit needs.
fn has_cap_sys_resource() -> bool {
    const CAP_SYS_RESOURCE: u32 = 24; // linux/capability.h
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .is_some_and(|caps| caps & (1 << CAP_SYS_RESOURCE) != 0)
}

#[cfg(test)]
mod tests {
    use super::parse_add_host;

    #[test]
    fn add_host_takes_dockers_forms() {
        let ok = |h: &str| parse_add_host(h).unwrap();
        assert_eq!(ok("db:10.0.0.5"), ("db".into(), "10.0.0.5".into()));
        assert_eq!(ok("db=10.0.0.5"), ("db".into(), "10.0.0.5".into()));
        assert_eq!(ok("db=[10.0.0.5]"), ("db".into(), "10.0.0.5".into()));
        assert_eq!(ok("gw:host-gateway"), ("gw".into(), "host-gateway".into()));
        let err = |h: &str| parse_add_host(h).unwrap_err().to_string();
        assert_eq!(
            err("a"),
            r#"invalid argument "a" for "--add-host" flag: bad format for add-host: "a""#
        );
        assert_eq!(
            err("a:b:1.2.3.4"),
            r#"invalid argument "a:b:1.2.3.4" for "--add-host" flag: invalid IP address in add-host: "b:1.2.3.4""#
        );
        assert_eq!(
            err("a=notip"),
            r#"invalid argument "a=notip" for "--add-host" flag: invalid IP address in add-host: "notip""#
        );
    }
}
