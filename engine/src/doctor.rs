//! `dockyard doctor`: check, before anything fails halfway, that this host has
//! what the labs and the engine need, and say plainly how to fix what is
//! missing.
//!
//! Each check asks the lab that owns the mechanism: namespaces from lab 02,
//! cgroups from lab 03, overlayfs from lab 04, networking from lab 05.

use lab02_namespaces as namespaces;
use lab03_cgroups as cgroups;
use lab04_overlay as overlay;
use lab05_netns_veth as net;

/// How one check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    /// Works, but something later will need attention.
    Warn,
    /// Missing: some lab or engine feature will fail.
    Missing,
}

/// One line of the report.
#[derive(Debug, Clone)]
pub struct Check {
    pub status: Status,
    pub what: String,
    /// What to do about it, for Warn and Missing.
    pub fix: Option<String>,
}

fn check(ok: bool, what: impl Into<String>, fix: &str) -> Check {
    Check {
        status: if ok { Status::Ok } else { Status::Missing },
        what: what.into(),
        fix: (!ok).then(|| fix.to_string()),
    }
}

/// Run every check. None of them changes the host.
pub fn run_checks() -> Vec<Check> {
    let mut checks = vec![check(
        nix::unistd::geteuid().is_root(),
        "running as root",
        "run dockyard and the labs as root (sudo); as another user dockyard runs rootless, \
         with --network none only and no limits (see the book's security chapter)",
    )];

    for ns in &namespaces::NAMESPACES {
        checks.push(check(
            namespaces::kernel_supports(ns),
            format!(
                "{} namespace (Linux {}): {}",
                ns.proc_name, ns.since, ns.isolates
            ),
            "this kernel was built without it; enable the CONFIG_*_NS option",
        ));
    }

    checks.push(match cgroups::detect() {
        Ok(host) => {
            let v1: Vec<&str> = host.v1.iter().map(|(c, _)| c.as_str()).collect();
            let mut what = match host.layout {
                cgroups::Layout::V1 => "cgroups v1".to_string(),
                cgroups::Layout::V2 => "cgroups v2 (unified)".to_string(),
                cgroups::Layout::Hybrid => "cgroups hybrid (v1 controllers and a cgroup2 mount)".to_string(),
            };
            if !v1.is_empty() {
                what += &format!("; v1 controllers: {}", v1.join(", "));
            }
            if let Some(m) = &host.v2_mount {
                let c = if host.v2_controllers.is_empty() {
                    "none".to_string()
                } else {
                    host.v2_controllers.join(", ")
                };
                what += &format!("; cgroup2 at {} with controllers: {c}", m.display());
            }
            let has = |name: &str| {
                v1.contains(&name) || host.v2_controllers.iter().any(|c| c == name)
            };
            let missing: Vec<&str> = ["cpu", "memory", "pids"].into_iter().filter(|c| !has(c)).collect();
            Check {
                status: if missing.is_empty() { Status::Ok } else { Status::Missing },
                what,
                fix: (!missing.is_empty()).then(|| {
                    format!("controllers {} are not available: enable them (cgroup_enable= on the kernel command line, or cgroup.subtree_control on v2)", missing.join(", "))
                }),
            }
        }
        Err(e) => Check { status: Status::Missing, what: "cgroups".into(), fix: Some(format!("{e:#}")) },
    });

    if let Ok(host) = cgroups::detect() {
        checks.push(rootless_limits(&host));
    }

    checks.push(match overlay::overlay_supported() {
        Ok(ok) => check(
            ok,
            "overlayfs",
            "load it with `modprobe overlay` (kernel option CONFIG_OVERLAY_FS)",
        ),
        Err(e) => Check {
            status: Status::Missing,
            what: "overlayfs".into(),
            fix: Some(format!("{e:#}")),
        },
    });

    checks.push(match net::veth_and_bridge_supported() {
        Ok(ok) => check(
            ok,
            "veth pairs and bridges (tried in a throwaway network namespace)",
            "load the modules with `modprobe veth bridge`",
        ),
        Err(e) => Check {
            status: Status::Missing,
            what: "veth pairs and bridges".into(),
            fix: Some(format!("{e:#}")),
        },
    });

    checks.push(match net::ip_forward_enabled() {
        Ok(true) => check(true, "IPv4 forwarding (net.ipv4.ip_forward=1)", ""),
        Ok(false) => Check {
            status: Status::Warn,
            what: "IPv4 forwarding is off (net.ipv4.ip_forward=0)".into(),
            fix: Some(
                "containers on a bridge cannot reach beyond the host until it is on, as Docker \
                 does: sysctl -w net.ipv4.ip_forward=1"
                    .into(),
            ),
        },
        Err(e) => Check {
            status: Status::Warn,
            what: "IPv4 forwarding".into(),
            fix: Some(format!("{e:#}")),
        },
    });

    checks.push(match net::detect_firewall() {
        net::Firewall::Iptables { backend } => check(true, format!("iptables ({backend})"), ""),
        net::Firewall::Nftables => check(true, "nftables (nft)", ""),
        net::Firewall::None => check(
            false,
            "iptables or nftables, for NAT and port publishing",
            "install Debian's iptables package (apt-get install iptables)",
        ),
    });
    checks
}

/// Whether a rootless engine could set `--memory`, `--cpus` and
/// `--pids-limit`: only in a cgroup v2 subtree delegated to the user (v1
/// hierarchies belong to root and are never delegated). For root, the
/// user is the one sudo came from (`SUDO_UID`); lab 03 finds the subtree.
fn rootless_limits(host: &cgroups::Host) -> Check {
    let delegate = "have systemd delegate the controllers to each user's session: \
        mkdir -p /etc/systemd/system/user@.service.d && printf '[Service]\\nDelegate=cpu cpuset io \
        memory pids\\n' > /etc/systemd/system/user@.service.d/delegate.conf && systemctl \
        daemon-reload, then log in again";
    if host.version() != cgroups::Version::V2 {
        return Check {
            status: Status::Warn,
            what: format!(
                "rootless limits: not possible on this {} cgroup host (v1 hierarchies belong to \
                 root and are not delegated to users)",
                if host.layout == cgroups::Layout::V1 {
                    "v1"
                } else {
                    "hybrid"
                }
            ),
            fix: Some(format!(
                "boot with pure cgroup v2 (systemd.unified_cgroup_hierarchy=1 on the kernel \
                 command line), then {delegate}"
            )),
        };
    }
    let euid = nix::unistd::geteuid().as_raw();
    let (uid, pid) = match std::env::var("SUDO_UID").ok().and_then(|u| u.parse().ok()) {
        Some(uid) if euid == 0 => (uid, None),
        _ => (euid, Some(std::process::id())),
    };
    if uid == 0 {
        return Check {
            status: Status::Ok,
            what: "rootless limits: run `dockyard doctor` as the user (or with sudo) to check \
                   its delegated cgroup subtree"
                .into(),
            fix: None,
        };
    }
    // Whether the caller is inside the subtree: only from there can a
    // process be moved into a group of it (see `rootless::delegated_parent`).
    let inside = |dir: &std::path::Path| {
        pid.is_none()
            || std::fs::read_to_string("/proc/self/cgroup")
                .ok()
                .and_then(|c| {
                    c.lines()
                        .find_map(|l| l.strip_prefix("0::"))
                        .map(String::from)
                })
                .zip(host.v2_mount.as_deref())
                .is_some_and(|(rel, m)| m.join(rel.trim_start_matches('/')).starts_with(dir))
    };
    match cgroups::delegation(host, uid, pid) {
        Some(d) if d.has_limits() && inside(&d.dir) => Check {
            status: Status::Ok,
            what: format!(
                "rootless limits: uid {uid} has a delegated cgroup v2 subtree at {} with {}; \
                 rootless dockyard sets --memory, --cpus and --pids-limit in groups below it",
                d.dir.display(),
                d.controllers.join(", ")
            ),
            fix: None,
        },
        Some(d) if d.has_limits() => Check {
            status: Status::Warn,
            what: format!(
                "rootless limits: uid {uid} has a delegated cgroup v2 subtree at {} with {}, \
                 but this shell is not inside it",
                d.dir.display(),
                d.controllers.join(", ")
            ),
            fix: Some(
                "run rootless dockyard from inside it (a process can only be moved between \
                 groups below one it may write): systemd-run --user --scope dockyard run ..."
                    .into(),
            ),
        },
        Some(d) => Check {
            status: Status::Warn,
            what: format!(
                "rootless limits: uid {uid}'s delegated subtree {} lacks some of cpu, memory, \
                 pids (it has: {})",
                d.dir.display(),
                d.controllers.join(", ")
            ),
            fix: Some(delegate.into()),
        },
        None => Check {
            status: Status::Warn,
            what: format!("rootless limits: no cgroup v2 subtree is delegated to uid {uid}"),
            fix: Some(delegate.into()),
        },
    }
}

/// Print the report; the result is whether nothing is missing.
pub fn report(checks: &[Check]) -> bool {
    for c in checks {
        let tag = match c.status {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Missing => "MISSING",
        };
        println!("[{tag:>7}] {}", c.what);
        if let Some(fix) = &c.fix {
            println!("          -> {fix}");
        }
    }
    let count = |s| checks.iter().filter(|c| c.status == s).count();
    println!(
        "{} ok, {} warnings, {} missing",
        count(Status::Ok),
        count(Status::Warn),
        count(Status::Missing)
    );
    count(Status::Missing) == 0
}
