//! # A container's plan: every translation, and no side effect
//!
//! Starting a container is two halves. This half translates what the user
//! asked for (the container's config, as `docker inspect` shows it) and what
//! the engine knows (daemon.json, `--userns-remap`, the data root) into what
//! the labs take: lab 03's [`Blueprint`] (lab 02's process spec, the
//! namespaces, the cgroup and its limits, the device list), the volumes to
//! prepare, the `/etc` files to give it and the networks to attach it to.
//! It creates, mounts and writes nothing, so it is tested without root. The
//! other half, `start`, performs the plan: it makes the volumes and files,
//! calls lab 03's assembler and lab 05's `attach`, and records the result.
//!
//! ```text
//! config.json (Config, HostConfig) ──plan──> Plan ──start──> a running container
//!   -u, -e, -v, --dns, -p, --memory       (pure)      (mounts, cgroups, clone, veth)
//! ```

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Result};
use lab02_namespaces as namespaces;
use lab03_cgroups as cgroups;
use lab05_netns_veth as net;

use super::config::ContainerConfig;
use super::create::check_rootless;
use crate::config::DaemonConfig;
use crate::logs;
use crate::network::split_add_host;
use crate::remap::Remap;

/// What the engine knows that a plan depends on, gathered before planning.
pub struct Facts<'a> {
    /// The container's ID (its cgroup's name) and name (its DNS name on a
    /// user-defined network).
    pub id: &'a str,
    pub name: &'a str,
    /// Its root filesystem, where its `/etc/passwd` is read.
    pub rootfs: &'a Path,
    /// `containers/<id>/` in the data root: its `/etc` files go in `etc/`.
    pub dir: &'a Path,
    /// daemon.json.
    pub daemon: &'a DaemonConfig,
    /// `--userns-remap`, when the engine runs with it.
    pub remap: Option<&'a Remap>,
    /// A rootless engine: how many uids and gids its own user namespace
    /// maps (0 is the user; 1..N the subordinate ranges, if any).
    pub rootless: Option<(u32, u32)>,
    /// Where the data of the named volume is.
    pub volume_data: &'a dyn Fn(&str) -> PathBuf,
    /// The host PID of a running container's first process, by name or ID
    /// (`--network container:NAME`); an error if it is not running.
    pub container_pid: &'a dyn Fn(&str) -> Result<i32>,
}

/// Everything `start` does, decided.
#[derive(Debug)]
pub struct Plan {
    /// The container for lab 03's assembler. Its process spec lacks only
    /// what belongs to one start: stdio and the terminal's size.
    pub blueprint: cgroups::Blueprint,
    /// The volumes it mounts, which `create` made (and the first start
    /// seeds from the image).
    pub volumes: Vec<VolumeUse>,
    /// Its own `/etc/hosts`, `/etc/hostname` and `/etc/resolv.conf`.
    pub etc: Option<EtcPlan>,
    /// The networks to attach it to once its process exists.
    pub network: NetworkPlan,
    /// Whether the container's root is a remapped user (then new volumes
    /// and its `/etc` files belong to that user's root).
    pub remapped: bool,
    /// `--log-opt max-size`, `max-file`.
    pub log_rotation: logs::Rotation,
}

/// A named volume a container uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeUse {
    pub name: String,
    /// Its `_data` directory, bind-mounted at `target`.
    pub data: PathBuf,
    pub target: PathBuf,
    /// Removed with the container (`-v /path`, an image's VOLUME).
    pub anonymous: bool,
}

/// A container's own `/etc` files, kept in `dir` and bind-mounted in.
#[derive(Debug, Clone, PartialEq)]
pub struct EtcPlan {
    pub dir: PathBuf,
    /// Written before the start (a container without a network but with
    /// `--dns` or `--add-host`); on a bridge network lab 05 writes them.
    pub files: Option<net::names::EtcFiles>,
}

/// Which networks the container joins.
#[derive(Debug, Clone)]
pub enum NetworkPlan {
    /// Its own network namespace with only `lo` (`--network none`).
    None,
    /// The host's (`--network host`).
    Host,
    /// Another container's, by the host PID of its first process.
    Container(i32),
    /// Its own namespace, wired to these networks' bridges, the first as
    /// `eth0` (`--network`), then those `network connect` added.
    Bridge(Vec<net::AttachOptions>),
}

/// The files whose copies a container gets in its `/etc`.
pub const ETC_FILES: [&str; 3] = ["hosts", "hostname", "resolv.conf"];

/// Plan a start of the container `config` describes.
pub fn plan(config: &ContainerConfig, facts: &Facts) -> Result<Plan> {
    if facts.rootless.is_some() {
        check_rootless(config)?;
    }
    let mut spec = process(config, facts)?;
    let userns = user_namespace(config, facts)?;
    let remapped = facts.remap.is_some() && matches!(userns, cgroups::UserNs::Private { .. });
    let (netns, network, etc) = networking(config, facts)?;
    // The /etc files first, then the volumes: bind mounts are made in order.
    if let Some(etc) = &etc {
        spec.binds
            .extend(ETC_FILES.iter().map(|f| namespaces::Bind {
                source: etc.dir.join(f),
                target: PathBuf::from("/etc").join(f),
                read_only: false,
            }));
    }
    let volumes = mounts(config, facts, &mut spec.binds);
    let (nodes, device_rules) = devices(config)?;
    spec.devices = nodes;
    let mut blueprint = cgroups::Blueprint::new(spec);
    blueprint.device_rules = device_rules;
    // --device-cgroup-rule: after --device's, as docker's WithDevices.
    blueprint
        .device_rules
        .extend(config.device_cgroup_rules.iter().cloned());
    blueprint.userns = userns;
    blueprint.netns = netns;
    // Rootless: a group only with limits, in the user's delegated subtree
    // (create put the parent there), and no device filter (see
    // `rootless::delegated_parent`).
    if facts.rootless.is_none() || !config.cgroup_parent.is_empty() {
        blueprint.cgroup = Some(cgroups::CgroupSpec {
            parent: config.cgroup_parent_or_default().to_string(),
            name: facts.id.to_string(),
            limits: config.limits.to_lab(),
        });
        // Docker's device allow list (lab 03); --privileged allows every
        // device, as Docker's does.
        if !config.privileged && facts.rootless.is_none() {
            blueprint.devices = cgroups::Devices::DockerDefault;
        }
    }
    let log_rotation = logs::rotation_from_opts(
        config
            .log_opts
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str())),
    )?;
    Ok(Plan {
        blueprint,
        volumes,
        etc,
        network,
        remapped,
        log_rotation,
    })
}

// ANCHOR: devices
/// The device nodes to make in the container's `/dev` (lab 02) and the
/// allow rules they need in its device cgroup (lab 03), as docker's
/// `WithDevices`: each `--device` as the host has it (its type, numbers,
/// mode and owner, read with stat(2) now, so a device plugged in since
/// `create` is found), with a `TYPE MAJOR:MINOR PERMS` rule; under
/// `--privileged` every node of the host's `/dev` too, and no rule, for
/// its cgroup allows every device.
fn devices(
    config: &ContainerConfig,
) -> Result<(Vec<namespaces::devnodes::DeviceNode>, Vec<String>)> {
    use namespaces::devnodes;
    let mut nodes = Vec::new();
    let mut rules = Vec::new();
    if config.privileged {
        nodes = devnodes::host_devices()
            .map_err(|e| anyhow!("error gathering the host's devices: {}", go_error(&e)))?;
    }
    for d in &config.devices {
        let found =
            devnodes::from_host(Path::new(&d.path_on_host), Path::new(&d.path_in_container))
                .map_err(|e| {
                    anyhow!(
                        "error gathering device information while adding custom device {:?}: {}",
                        d.path_on_host,
                        go_error(&e)
                    )
                })?;
        for n in found {
            rules.push(format!(
                "{} {}:{} {}",
                n.kind, n.major, n.minor, d.cgroup_permissions
            ));
            // A --device at a path the privileged list has replaces it.
            nodes.retain(|o: &devnodes::DeviceNode| o.path != n.path);
            nodes.push(n);
        }
    }
    Ok((nodes, rules))
}
// ANCHOR_END: devices

/// An I/O error as Go prints it (docker's messages come from Go's
/// `syscall.Errno`): "no such file or directory", no "(os error 2)".
fn go_error(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => {
            let desc = nix::errno::Errno::from_raw(n).desc();
            let mut chars = desc.chars();
            match chars.next() {
                Some(first) => first.to_lowercase().chain(chars).collect(),
                None => desc.to_string(),
            }
        }
        None => e.to_string(),
    }
}

/// Lab 02's spec of the first process: command, environment, hostname,
/// working directory, user, limits and the security layer.
fn process(config: &ContainerConfig, facts: &Facts) -> Result<namespaces::Spec> {
    let argv = config.argv().into_iter().map(OsString::from).collect();
    let mut spec = namespaces::Spec::new(facts.rootfs, argv);
    spec.env = environment(config, facts.rootfs)?
        .into_iter()
        .map(OsString::from)
        .collect();
    spec.hostname = Some(config.hostname.clone());
    spec.init = config.init;
    spec.tty = config.tty;
    if !config.working_dir.is_empty() {
        spec.cwd = Some(PathBuf::from(&config.working_dir));
    }
    spec.security = Some(config.security()?);
    // `-u` or the image's USER, and `--group-add`, resolved in the
    // container's own passwd and group files (lab 02).
    spec.run_as = Some(run_as(facts.rootfs, &config.user, &config.group_add)?);
    if !config.domainname.is_empty() {
        spec.domainname = Some(config.domainname.clone());
    }
    spec.sysctls = config.sysctls.clone().into_iter().collect();
    if config.oom_score_adj != 0 {
        spec.oom_score_adj = Some(i32::try_from(config.oom_score_adj)?);
    }
    spec.rlimits = config
        .ulimits
        .iter()
        .map(|u| namespaces::parse_ulimit(u))
        .collect::<Result<_>>()?;
    Ok(spec)
}

/// Who a process of the container runs as (its first, or an `exec`'s):
/// `user` (`-u`, the image's USER) resolved in its own passwd and group
/// files by lab 02's `RunAs::lookup` (root too gets the groups the image's
/// /etc/group lists it in, as in docker), and with `--group-add`'s groups
/// as dockerd's `getUser` (and its exec's `WithAppendAdditionalGroups`)
/// gives them: the user's own gid and groups, then each added group, a name
/// found in the image's /etc/group, or a number as it is. Always a switch,
/// root's too: see `RunAs::lookup` for why.
pub(crate) fn run_as(rootfs: &Path, user: &str, group_add: &[String]) -> Result<namespaces::RunAs> {
    let mut run_as = namespaces::RunAs::lookup(rootfs, user)?;
    for gid in namespaces::user::additional_groups(rootfs, group_add)? {
        if !run_as.groups.contains(&gid) {
            run_as.groups.push(gid);
        }
    }
    Ok(run_as)
}

/// The first process's environment, as docker's: the daemon's defaults,
/// `HOSTNAME` (the container's hostname) and, with `-t`, `TERM=xterm`
/// (moby's `CreateDaemonEnvironment`), under the image's `ENV` and `-e`,
/// which win; then `HOME`, if nothing set it, from the user's entry in the
/// image's `/etc/passwd`, else `/` (what runc does when it switches to the
/// user). None of these is recorded in the container's config: `inspect`'s
/// `Config.Env` stays what the image and `-e` said, as in docker.
fn environment(config: &ContainerConfig, rootfs: &Path) -> Result<Vec<String>> {
    let mut env = vec![format!("HOSTNAME={}", config.hostname)];
    if config.tty {
        env.push("TERM=xterm".into());
    }
    let key = |kv: &str| kv.split('=').next().unwrap_or_default().to_string();
    for kv in &config.env {
        let k = key(kv);
        env.retain(|e| key(e) != k);
        env.push(kv.clone());
    }
    if !env.iter().any(|e| key(e) == "HOME") {
        // Lab 02 reads the passwd inside the root, regular files only: an
        // image's passwd that is a FIFO or /dev/zero is an error, not a hang.
        env.push(format!(
            "HOME={}",
            namespaces::home_dir(rootfs, &config.user)?
        ));
    }
    Ok(env)
}

// ANCHOR: userns
/// The container's user namespace.
///
/// Docker runs containers without a user namespace unless userns-remap is
/// configured: root inside is root outside, held in by capabilities,
/// seccomp and the rest (see the security chapter). Image files owned by
/// root must stay root's inside, which a user namespace would not allow.
///
/// With --userns-remap, each container gets a new user namespace whose uid
/// and gid 0 are the first IDs of the remapped ranges (lab 02 writes the
/// maps), and its image's files were unpacked shifted into those ranges
/// (lab 04), so root inside still owns them. The capabilities Docker's
/// default keeps (CHOWN, DAC_OVERRIDE, SETUID, NET_BIND_SERVICE, ...) then
/// belong to that user namespace: the kernel honours them only on what the
/// namespace owns (its own mount, UTS, IPC and network namespaces, files
/// whose owners are mapped in it). Over a host file owned by root,
/// DAC_OVERRIDE gives nothing: root inside is an unprivileged uid to the
/// host, and an escape lands there. `--userns=host` opts one container out,
/// as in docker.
///
/// Rootless, dockyard itself is root of a user namespace that maps only the
/// user's uid (as 0) and its subordinate ranges, and each container gets a
/// user namespace below it with every ID of ours: lab 02's path for user
/// namespaces mounts /proc and /dev as the kernel allows there.
fn user_namespace(config: &ContainerConfig, facts: &Facts) -> Result<cgroups::UserNs> {
    Ok(match (facts.remap, facts.rootless) {
        (Some(r), _) if config.userns_mode != "host" => cgroups::UserNs::Private {
            uids: r.uids,
            gids: r.gids,
        },
        (_, Some((uids, gids))) => cgroups::UserNs::Private {
            uids: namespaces::IdMapping {
                host_id: 0,
                count: uids.max(1),
            },
            gids: namespaces::IdMapping {
                host_id: 0,
                count: gids.max(1),
            },
        },
        _ => cgroups::UserNs::Host,
    })
}
// ANCHOR_END: userns

// ANCHOR: network_mode
/// The network namespace, the networks to attach to, and the `/etc` files.
///
/// "bridge" and user-defined networks get a veth on a bridge, attached by
/// lab 05 once the process exists; their /etc/hosts, hostname and
/// resolv.conf are files in the container's directory that lab 05 keeps up
/// to date and that are bind-mounted in (inside the root, as every bind),
/// as Docker does. `container:NAME` names another container, whose network
/// namespace the new one enters by path (lab 02).
fn networking(
    config: &ContainerConfig,
    facts: &Facts,
) -> Result<(cgroups::NetNs, NetworkPlan, Option<EtcPlan>)> {
    let mode: net::NetworkMode = match config.network_mode.strip_prefix("container:") {
        Some(other) if other.parse::<i32>().is_err() => {
            net::NetworkMode::Container(nix::unistd::Pid::from_raw((facts.container_pid)(other)?))
        }
        _ => config
            .network_mode
            .parse()
            .map_err(|e: String| anyhow!("--network {}: {e}", config.network_mode))?,
    };
    let dns = dns(config, facts.daemon);
    let extra_hosts = config
        .extra_hosts
        .iter()
        .map(|h| split_add_host(h))
        .collect::<Result<Vec<_>>>()?;
    let dir = facts.dir.join("etc");
    Ok(match &mode {
        net::NetworkMode::None | net::NetworkMode::Host => {
            // A container without a network of its own still gets its own
            // /etc/hosts (localhost; the host's, with --network host),
            // /etc/hostname and /etc/resolv.conf, written before the start,
            // as in docker: the image's copies are never used or changed.
            let extra = net::extra_hosts_without_bridge(&extra_hosts)?;
            let files = net::etc_files_without_bridge(&mode, &config.hostname, &dns, &extra);
            let etc = Some(EtcPlan {
                dir,
                files: Some(files),
            });
            if matches!(mode, net::NetworkMode::Host) {
                (cgroups::NetNs::Host, NetworkPlan::Host, etc)
            } else {
                (cgroups::NetNs::Private, NetworkPlan::None, etc)
            }
        }
        net::NetworkMode::Container(pid) => (
            cgroups::NetNs::Process(*pid),
            NetworkPlan::Container(pid.as_raw()),
            None,
        ),
        net::NetworkMode::Bridge(name) => {
            let first = net::AttachOptions {
                network: name.clone(),
                // Only the default network is made on first use; others
                // come from `network create`.
                must_exist: name != net::DEFAULT_NETWORK,
                name: Some(facts.name.to_string()),
                hostname: config.hostname.clone(),
                // Docker's own hosts line: `IP\tHOSTNAME.DOMAINNAME HOSTNAME`.
                domainname: config.domainname.clone(),
                publish: ports(config)?,
                etc_dir: Some(dir.clone()),
                ip: parse_ip(config.ip.as_deref())?,
                aliases: config.network_aliases.clone(),
                container_id: Some(facts.id.to_string()),
                extra_hosts,
                dns,
                ..Default::default()
            };
            // Then the networks `network connect` added: eth1, eth2...
            let mut all = vec![first.clone()];
            for c in &config.connected {
                all.push(net::AttachOptions {
                    network: c.network.clone(),
                    must_exist: c.network != net::DEFAULT_NETWORK,
                    ip: parse_ip(c.ip.as_deref())?,
                    aliases: c.aliases.clone(),
                    publish: Vec::new(),
                    ..first.clone()
                });
            }
            let etc = EtcPlan { dir, files: None };
            (cgroups::NetNs::Private, NetworkPlan::Bridge(all), Some(etc))
        }
    })
}
// ANCHOR_END: network_mode

/// `--dns`, `--dns-search` and `--dns-option`, with daemon.json's `dns` and
/// `dns-search` where the flags say nothing.
fn dns(config: &ContainerConfig, daemon: &DaemonConfig) -> net::names::Dns {
    net::names::Dns {
        servers: match config.dns.is_empty() {
            true => daemon.dns.clone(),
            false => config.dns.clone(),
        },
        search: match config.dns_search.is_empty() {
            true => daemon.dns_search.clone(),
            false => config.dns_search.clone(),
        },
        options: config.dns_options.clone(),
    }
}

/// The ports to publish: `-p` as given, and with `-P` every exposed port
/// (the image's EXPOSE and `--expose`) on a port the host picks.
fn ports(config: &ContainerConfig) -> Result<Vec<net::ports::PortSpec>> {
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
    Ok(publish)
}

fn parse_ip(ip: Option<&str>) -> Result<Option<std::net::Ipv4Addr>> {
    ip.map(|i| i.parse().map_err(|_| anyhow!("invalid IP address {i:?}")))
        .transpose()
}

// ANCHOR: binds
/// Volumes and binds, as lab 02 bind mounts (it mounts them inside the
/// root, safely). A volume's data directory is the source; `create` made
/// the volume, as docker's does.
fn mounts(
    config: &ContainerConfig,
    facts: &Facts,
    binds: &mut Vec<namespaces::Bind>,
) -> Vec<VolumeUse> {
    let mut volumes = Vec::new();
    for m in &config.mounts {
        let source = if m.kind == "volume" {
            let data = (facts.volume_data)(&m.source);
            volumes.push(VolumeUse {
                name: m.source.clone(),
                data: data.clone(),
                target: PathBuf::from(&m.target),
                anonymous: m.anonymous,
            });
            data
        } else {
            PathBuf::from(&m.source)
        };
        binds.push(namespaces::Bind {
            source,
            target: PathBuf::from(&m.target),
            read_only: m.read_only,
        });
    }
    volumes
}
// ANCHOR_END: binds

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volumes::MountSpec;
    use nix::sched::CloneFlags;

    /// A root filesystem with the passwd and group files of an image.
    fn rootfs() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nweb:x:1000:1000::/home/web:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("etc/group"),
            "root:x:0:\nweb:x:1000:\nstaff:x:50:web\n",
        )
        .unwrap();
        dir
    }

    fn config() -> ContainerConfig {
        ContainerConfig {
            cmd: vec!["sh".into()],
            env: vec!["PATH=/bin".into()],
            hostname: "0123456789ab".into(),
            network_mode: "none".into(),
            ..ContainerConfig::default()
        }
    }

    fn no_container(name: &str) -> Result<i32> {
        Err(anyhow!("No such container: {name}"))
    }

    fn volume_data(name: &str) -> PathBuf {
        PathBuf::from("/data-root/volumes").join(name).join("_data")
    }

    /// Plan `config` on a plain engine (no remap, root) over `rootfs`.
    fn plan_of(config: &ContainerConfig, rootfs: &Path, daemon: &DaemonConfig) -> Result<Plan> {
        plan(
            config,
            &Facts {
                id: "0123456789abcdef",
                name: "web",
                rootfs,
                dir: Path::new("/data-root/containers/0123456789abcdef"),
                daemon,
                remap: None,
                rootless: None,
                volume_data: &volume_data,
                container_pid: &no_container,
            },
        )
    }

    #[test]
    fn users_and_groups_come_from_the_images_own_files() {
        let root = rootfs();
        let mut c = config();
        let spec = |c: &ContainerConfig| {
            plan_of(c, root.path(), &DaemonConfig::default())
                .unwrap()
                .blueprint
                .process
        };
        let root_as = namespaces::RunAs {
            uid: 0,
            gid: 0,
            groups: vec![0],
        };
        assert_eq!(spec(&c).run_as, Some(root_as), "no USER: root, switched to");
        c.user = "web".into();
        let web = spec(&c).run_as.unwrap();
        assert_eq!((web.uid, web.gid), (1000, 1000));
        assert_eq!(web.groups, vec![1000, 50], "supplementary: staff lists web");
        c.user = "web:staff".into();
        assert_eq!(spec(&c).run_as.unwrap().gid, 50);
        c.user = "4242".into();
        let numeric = spec(&c).run_as.unwrap();
        // gid 0, as runc, and that group, as dockerd's `groups=0(root)`.
        assert_eq!(
            (numeric.uid, numeric.gid, numeric.groups),
            (4242, 0, vec![0])
        );
        c.user = "nobody-here".into();
        let e = plan_of(&c, root.path(), &DaemonConfig::default()).unwrap_err();
        assert!(
            format!("{e:#}").contains("unable to find user nobody-here"),
            "{e:#}"
        );
    }

    #[test]
    fn root_gets_the_groups_that_list_it_then_group_adds() {
        let root = rootfs();
        let group = "root:x:0:\nweb:x:1000:\nstaff:x:50:web,root\n";
        std::fs::write(root.path().join("etc/group"), group).unwrap();
        let mut c = config();
        let groups = |c: &ContainerConfig| {
            plan_of(c, root.path(), &DaemonConfig::default())
                .unwrap()
                .blueprint
                .process
                .run_as
                .map(|u| (u.uid, u.gid, u.groups))
        };
        assert_eq!(groups(&c), Some((0, 0, vec![0, 50])), "staff lists root");
        c.user = "0:0".into();
        assert_eq!(
            groups(&c),
            Some((0, 0, vec![0])),
            "a group said: none looked up"
        );
        c.group_add = vec!["1000".into()];
        assert_eq!(groups(&c), Some((0, 0, vec![0, 1000])));
        c.user = String::new();
        assert_eq!(groups(&c), Some((0, 0, vec![0, 50, 1000])));
    }

    #[test]
    fn the_process_gets_the_configs_env_command_and_limits() {
        let root = rootfs();
        let mut c = config();
        c.entrypoint = vec!["/bin/entry".into()];
        c.env = vec!["PATH=/usr/bin:/bin".into(), "A=1".into()];
        c.working_dir = "/srv".into();
        c.ulimits = vec!["nofile=1024:2048".into()];
        c.limits.memory = Some(64 << 20);
        let p = plan_of(&c, root.path(), &DaemonConfig::default()).unwrap();
        let spec = &p.blueprint.process;
        assert_eq!(spec.argv, vec![OsString::from("/bin/entry"), "sh".into()]);
        assert_eq!(
            spec.env,
            vec![
                OsString::from("HOSTNAME=0123456789ab"),
                "PATH=/usr/bin:/bin".into(),
                "A=1".into(),
                "HOME=/root".into()
            ],
            "docker's HOSTNAME, the config's env, HOME from root's entry in the image's passwd"
        );
        // -t adds TERM=xterm; the config's env wins over the defaults.
        c.tty = true;
        c.env.push("HOSTNAME=mine".into());
        let p = plan_of(&c, root.path(), &DaemonConfig::default()).unwrap();
        let env = &p.blueprint.process.env;
        assert!(env.contains(&OsString::from("TERM=xterm")), "{env:?}");
        assert!(env.contains(&OsString::from("HOSTNAME=mine")), "{env:?}");
        assert!(
            !env.contains(&OsString::from("HOSTNAME=0123456789ab")),
            "{env:?}"
        );
        assert_eq!(spec.cwd, Some(PathBuf::from("/srv")));
        assert_eq!(spec.hostname.as_deref(), Some("0123456789ab"));
        assert_eq!(spec.rlimits[0].1, 1024);
        assert!(spec.security.is_some(), "docker's security layer, always");
        let cg = p.blueprint.cgroup.as_ref().unwrap();
        assert_eq!(cg.parent, cgroups::DEFAULT_PARENT);
        assert_eq!(cg.name, "0123456789abcdef");
        assert_eq!(cg.limits.memory, Some(64 << 20));
        assert_eq!(p.blueprint.devices, cgroups::Devices::DockerDefault);
        assert_eq!(p.blueprint.userns, cgroups::UserNs::Host);
        c.privileged = true;
        let p = plan_of(&c, root.path(), &DaemonConfig::default()).unwrap();
        assert_eq!(p.blueprint.devices, cgroups::Devices::Unrestricted);
        c.ulimits = vec!["nofile=2048:1024".into()];
        assert!(plan_of(&c, root.path(), &DaemonConfig::default()).is_err());
    }

    #[test]
    fn volumes_and_binds_become_bind_mounts_in_order() {
        let root = rootfs();
        let mut c = config();
        c.network_mode = "bridge".into();
        c.mounts = vec![
            MountSpec {
                kind: "volume".into(),
                source: "cache".into(),
                target: "/cache".into(),
                read_only: false,
                anonymous: false,
            },
            MountSpec {
                kind: "bind".into(),
                source: "/srv/site".into(),
                target: "/usr/share/html".into(),
                read_only: true,
                anonymous: false,
            },
        ];
        let p = plan_of(&c, root.path(), &DaemonConfig::default()).unwrap();
        let binds = &p.blueprint.process.binds;
        let targets: Vec<_> = binds.iter().map(|b| b.target.to_str().unwrap()).collect();
        assert_eq!(
            targets,
            [
                "/etc/hosts",
                "/etc/hostname",
                "/etc/resolv.conf",
                "/cache",
                "/usr/share/html"
            ]
        );
        let etc = Path::new("/data-root/containers/0123456789abcdef/etc");
        assert_eq!(binds[0].source, etc.join("hosts"));
        assert_eq!(binds[3].source, volume_data("cache"));
        assert!(binds[4].read_only && !binds[3].read_only);
        assert_eq!(
            p.volumes,
            vec![VolumeUse {
                name: "cache".into(),
                data: volume_data("cache"),
                target: "/cache".into(),
                anonymous: false,
            }]
        );
    }

    #[test]
    fn dns_flags_win_over_daemon_json_and_reach_the_network() {
        let root = rootfs();
        let daemon = DaemonConfig {
            dns: vec!["10.0.0.53".into()],
            dns_search: vec!["corp.example".into()],
            ..DaemonConfig::default()
        };
        let mut c = config();
        c.network_mode = "bridge".into();
        let attach = |c: &ContainerConfig| match plan_of(c, root.path(), &daemon).unwrap().network {
            NetworkPlan::Bridge(all) => all,
            other => panic!("{other:?}"),
        };
        let first = &attach(&c)[0];
        assert_eq!(first.dns.servers, ["10.0.0.53"]);
        assert_eq!(first.dns.search, ["corp.example"]);
        c.dns = vec!["192.0.2.1".into()];
        c.dns_options = vec!["ndots:2".into()];
        let first = &attach(&c)[0];
        assert_eq!(first.dns.servers, ["192.0.2.1"]);
        assert_eq!(first.dns.search, ["corp.example"]);
        assert_eq!(first.dns.options, ["ndots:2"]);
        // Without a network, --dns still gets the container its own files.
        c.network_mode = "none".into();
        let p = plan_of(&c, root.path(), &daemon).unwrap();
        let files = p.etc.unwrap().files.unwrap();
        assert!(
            files.resolv_conf.contains("nameserver 192.0.2.1"),
            "{}",
            files.resolv_conf
        );
        assert_eq!(p.blueprint.netns, cgroups::NetNs::Private);
        // And with neither, still its own files, as in docker.
        let p = plan_of(&config(), root.path(), &DaemonConfig::default()).unwrap();
        let files = p.etc.unwrap().files.unwrap();
        assert_eq!(files.hostname, "0123456789ab\n");
        assert!(
            files.hosts.contains("127.0.0.1\tlocalhost"),
            "{}",
            files.hosts
        );
    }

    #[test]
    fn ports_are_published_as_given_and_with_publish_all() {
        let root = rootfs();
        let mut c = config();
        c.network_mode = "bridge".into();
        c.publish = vec!["8080:80".into(), "127.0.0.1::53/udp".into()];
        c.exposed = vec!["443/tcp".into()];
        let publish = |c: &ContainerConfig| match plan_of(c, root.path(), &DaemonConfig::default())
            .unwrap()
            .network
        {
            NetworkPlan::Bridge(all) => all[0].publish.clone(),
            other => panic!("{other:?}"),
        };
        let p = publish(&c);
        assert_eq!(p.len(), 2);
        assert_eq!((p[0].host_port, p[0].container_port), (Some(8080), 80));
        assert_eq!(p[1].host_ip, Some("127.0.0.1".parse().unwrap()));
        c.publish_all = true;
        let p = publish(&c);
        assert_eq!(p.len(), 3);
        assert_eq!((p[2].host_port, p[2].container_port), (None, 443));
        c.publish = vec!["80:eighty".into()];
        let e = plan_of(&c, root.path(), &DaemonConfig::default()).unwrap_err();
        assert!(e.to_string().starts_with("-p 80:eighty"), "{e}");
    }

    #[test]
    fn network_modes_choose_the_namespace() {
        let root = rootfs();
        let mut c = config();
        c.network_mode = "host".into();
        let p = plan_of(&c, root.path(), &DaemonConfig::default()).unwrap();
        assert_eq!(p.blueprint.netns, cgroups::NetNs::Host);
        c.network_mode = "container:db".into();
        let e = plan_of(&c, root.path(), &DaemonConfig::default()).unwrap_err();
        assert_eq!(e.to_string(), "No such container: db");
        let p = plan(
            &c,
            &Facts {
                container_pid: &|name| {
                    assert_eq!(name, "db");
                    Ok(4321)
                },
                ..facts_for(root.path())
            },
        )
        .unwrap();
        assert_eq!(
            p.blueprint.netns,
            cgroups::NetNs::Process(nix::unistd::Pid::from_raw(4321))
        );
        let spec = p.blueprint.spec_for(&cgroups::detect().unwrap());
        assert!(!spec.namespaces.contains(CloneFlags::CLONE_NEWNET));
        c.network_mode = "mynet".into();
        c.connected = vec![super::super::config::Connection {
            network: "other".into(),
            aliases: vec!["db".into()],
            ip: Some("10.1.0.9".into()),
        }];
        match plan_of(&c, root.path(), &DaemonConfig::default())
            .unwrap()
            .network
        {
            NetworkPlan::Bridge(all) => {
                assert_eq!(all.len(), 2);
                assert!(all[0].must_exist && all[1].must_exist);
                assert_eq!(all[1].network, "other");
                assert_eq!(all[1].ip, Some("10.1.0.9".parse().unwrap()));
                assert_eq!(all[1].name.as_deref(), Some("web"));
            }
            other => panic!("{other:?}"),
        }
    }

    fn facts_for(rootfs: &Path) -> Facts<'_> {
        static DAEMON: std::sync::OnceLock<DaemonConfig> = std::sync::OnceLock::new();
        Facts {
            id: "0123456789abcdef",
            name: "web",
            rootfs,
            dir: Path::new("/data-root/containers/0123456789abcdef"),
            daemon: DAEMON.get_or_init(DaemonConfig::default),
            remap: None,
            rootless: None,
            volume_data: &volume_data,
            container_pid: &no_container,
        }
    }

    #[test]
    fn remapped_and_rootless_engines_get_a_user_namespace() {
        let root = rootfs();
        let ids = namespaces::IdMapping {
            host_id: 100_000,
            count: 65_536,
        };
        let remap = Remap {
            setting: "default".into(),
            uids: ids,
            gids: ids,
        };
        let mut c = config();
        let remapped = plan(
            &c,
            &Facts {
                remap: Some(&remap),
                ..facts_for(root.path())
            },
        )
        .unwrap();
        assert!(remapped.remapped);
        assert_eq!(
            remapped.blueprint.userns,
            cgroups::UserNs::Private {
                uids: ids,
                gids: ids
            }
        );
        c.userns_mode = "host".into();
        let opted_out = plan(
            &c,
            &Facts {
                remap: Some(&remap),
                ..facts_for(root.path())
            },
        )
        .unwrap();
        assert!(!opted_out.remapped);
        assert_eq!(opted_out.blueprint.userns, cgroups::UserNs::Host);
        c.userns_mode = String::new();
        let rootless = plan(
            &c,
            &Facts {
                rootless: Some((65_537, 1)),
                ..facts_for(root.path())
            },
        )
        .unwrap();
        match rootless.blueprint.userns {
            cgroups::UserNs::Private { uids, gids } => {
                assert_eq!((uids.host_id, uids.count, gids.count), (0, 65_537, 1));
            }
            other => panic!("{other:?}"),
        }
        assert!(rootless.blueprint.cgroup.is_none(), "rootless: no cgroup");
        c.limits.memory = Some(64 << 20);
        let e = plan(
            &c,
            &Facts {
                rootless: Some((1, 1)),
                ..facts_for(root.path())
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("rootless mode"), "{e}");
    }
}
