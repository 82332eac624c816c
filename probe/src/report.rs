//! The report: everything that tells a process which container it is in.
//!
//! Each field below is one kernel mechanism, observed from the inside, with
//! the shell command that shows the same thing:
//!
//! | field            | mechanism            | shell equivalent                        |
//! |------------------|----------------------|-----------------------------------------|
//! | `pid`, `ppid`    | PID namespace        | `echo $$ $PPID` (1 and 0 in a new one)  |
//! | `hostname`       | UTS namespace        | `uname -n`                              |
//! | `uid_map`        | user namespace       | `cat /proc/self/uid_map`                |
//! | `namespaces`     | all namespaces       | `ls -l /proc/self/ns`                   |
//! | `cgroup`         | cgroups              | `cat /proc/self/cgroup`                 |
//! | `capabilities`   | capability sets      | `grep Cap /proc/self/status`            |
//! | `seccomp`        | seccomp              | `grep Seccomp /proc/self/status`        |
//! | `no_new_privs`   | no_new_privs bit     | `grep NoNewPrivs /proc/self/status`     |
//! | `mounts`         | mount namespace      | `cat /proc/self/mountinfo`              |
//! | `interfaces`     | network namespace    | `ip -brief addr`                        |
//!
//! Two processes are in the same namespace exactly when the inode numbers in
//! `/proc/self/ns` agree, so comparing `namespaces` between the host and a
//! container is the most direct isolation test there is.
//!
//! Most of this lives in `/proc`, which a container may not have mounted yet.
//! Then the field is `null` and `"errors"` says why: the probe reports, it
//! never panics.

use std::collections::BTreeMap;
use std::fs;

use nix::ifaddrs::getifaddrs;
use nix::net::if_::InterfaceFlags;
use nix::sys::socket::SockaddrStorage;
use serde::Serialize;

use crate::caps::{self, Capabilities};
use crate::mountinfo::{self, Mount};

/// One line of `/proc/self/uid_map` or `gid_map`: IDs `inside..inside+count`
/// in this user namespace are IDs `outside..outside+count` in the parent one.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct IdMapping {
    pub inside: u64,
    pub outside: u64,
    pub count: u64,
}

/// A network interface and its addresses in CIDR form (`10.0.0.2/24`).
#[derive(Debug, Serialize)]
pub struct Interface {
    pub name: String,
    pub up: bool,
    pub addresses: Vec<String>,
}

/// The whole report. `None` fields are printed as `null`; `errors` says why.
#[derive(Debug, Serialize)]
pub struct Report {
    pub pid: i32,
    pub ppid: i32,
    pub hostname: Option<String>,
    pub uid_map: Option<Vec<IdMapping>>,
    pub gid_map: Option<Vec<IdMapping>>,
    pub namespaces: Option<BTreeMap<String, u64>>,
    pub cgroup: Option<Vec<String>>,
    pub capabilities: Option<Capabilities>,
    pub seccomp: Option<u32>,
    pub no_new_privs: Option<bool>,
    pub mounts: Option<Vec<Mount>>,
    pub interfaces: Option<Vec<Interface>>,
    pub errors: BTreeMap<String, String>,
}

/// Collects every field, recording failures instead of stopping at them.
pub fn collect() -> Report {
    let mut errors = BTreeMap::new();
    // Read /proc/self/status once; several fields come from it.
    let status = read("/proc/self/status");
    let hostname = keep(&mut errors, "hostname", hostname());
    let uid_map = keep(
        &mut errors,
        "uid_map",
        read("/proc/self/uid_map").and_then(|t| id_map(&t)),
    );
    let gid_map = keep(
        &mut errors,
        "gid_map",
        read("/proc/self/gid_map").and_then(|t| id_map(&t)),
    );
    let namespaces = keep(&mut errors, "namespaces", namespaces());
    let cgroup = keep(
        &mut errors,
        "cgroup",
        read("/proc/self/cgroup").map(|t| t.lines().map(str::to_string).collect()),
    );
    let capabilities = keep(
        &mut errors,
        "capabilities",
        status.clone().and_then(|s| caps::from_status(&s)),
    );
    let seccomp = keep(&mut errors, "seccomp", seccomp(&status));
    let no_new_privs = keep(&mut errors, "no_new_privs", no_new_privs(&status));
    let mounts = keep(
        &mut errors,
        "mounts",
        read("/proc/self/mountinfo").and_then(|t| mountinfo::parse(&t)),
    );
    let interfaces = keep(&mut errors, "interfaces", interfaces());

    Report {
        pid: nix::unistd::getpid().as_raw(),
        ppid: nix::unistd::getppid().as_raw(),
        hostname,
        uid_map,
        gid_map,
        namespaces,
        cgroup,
        capabilities,
        seccomp,
        no_new_privs,
        mounts,
        interfaces,
        errors,
    }
}

/// Returns the value, or records the error under `field` and returns `None`.
fn keep<T>(
    errors: &mut BTreeMap<String, String>,
    field: &str,
    result: Result<T, String>,
) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(e) => {
            errors.insert(field.to_string(), e);
            None
        }
    }
}

fn read(path: &str) -> Result<String, String> {
    fs::read_to_string(path).map_err(|e| format!("reading {path}: {e}"))
}

/// uname(2) answers from the UTS namespace, so it needs no /proc.
fn hostname() -> Result<String, String> {
    let uts = nix::sys::utsname::uname().map_err(|e| format!("uname: {}", e.desc()))?;
    Ok(uts.nodename().to_string_lossy().into_owned())
}

/// Parses `uid_map` text: three numbers per line. A fresh user namespace has
/// an empty map until someone writes it, and that is reported as `[]`.
fn id_map(text: &str) -> Result<Vec<IdMapping>, String> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let numbers: Vec<u64> = line
                .split_whitespace()
                .map(str::parse)
                .collect::<Result<_, _>>()
                .map_err(|e| format!("id map line {line:?}: {e}"))?;
            match numbers.as_slice() {
                [inside, outside, count] => Ok(IdMapping {
                    inside: *inside,
                    outside: *outside,
                    count: *count,
                }),
                _ => Err(format!("id map line {line:?}: expected 3 numbers")),
            }
        })
        .collect()
}

/// Reads every link in /proc/self/ns. Each is a magic symlink whose text is
/// `<type>:[<inode>]`, e.g. `mnt:[4026531841]`.
fn namespaces() -> Result<BTreeMap<String, u64>, String> {
    let dir = "/proc/self/ns";
    let entries = fs::read_dir(dir).map_err(|e| format!("reading directory {dir}: {e}"))?;
    let mut out = BTreeMap::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("reading directory {dir}: {e}"))?;
        let path = entry.path();
        let target =
            fs::read_link(&path).map_err(|e| format!("readlink {}: {e}", path.display()))?;
        let target = target.to_string_lossy();
        let inode = ns_inode(&target)
            .ok_or_else(|| format!("readlink {}: unexpected {target:?}", path.display()))?;
        out.insert(entry.file_name().to_string_lossy().into_owned(), inode);
    }
    Ok(out)
}

fn ns_inode(link: &str) -> Option<u64> {
    let (_, rest) = link.split_once(":[")?;
    rest.strip_suffix(']')?.parse().ok()
}

/// `Seccomp:` in /proc/self/status; without /proc, prctl(PR_GET_SECCOMP)
/// returns the same number (0 off, 2 filter; in strict mode (1) the call
/// itself is not allowed and the kernel kills us, but then so would almost
/// anything else the probe does).
fn seccomp(status: &Result<String, String>) -> Result<u32, String> {
    match status {
        Ok(text) => caps::status_field(text, "Seccomp")
            .ok_or_else(|| "no Seccomp: line in /proc/self/status".to_string())?
            .parse()
            .map_err(|e| format!("Seccomp: field in /proc/self/status: {e}")),
        Err(proc_error) => prctl_get(libc::PR_GET_SECCOMP)
            .map_err(|e| format!("{proc_error}; prctl(PR_GET_SECCOMP): {e}")),
    }
}

/// `NoNewPrivs:` in /proc/self/status, or prctl(PR_GET_NO_NEW_PRIVS).
fn no_new_privs(status: &Result<String, String>) -> Result<bool, String> {
    match status {
        Ok(text) => match caps::status_field(text, "NoNewPrivs") {
            Some("0") => Ok(false),
            Some("1") => Ok(true),
            other => Err(format!(
                "NoNewPrivs: field in /proc/self/status is {other:?}"
            )),
        },
        Err(proc_error) => prctl_get(libc::PR_GET_NO_NEW_PRIVS)
            .map(|v| v == 1)
            .map_err(|e| format!("{proc_error}; prctl(PR_GET_NO_NEW_PRIVS): {e}")),
    }
}

fn prctl_get(option: libc::c_int) -> Result<u32, String> {
    // SAFETY: both PR_GET_* options take no pointer arguments; the unused
    // arguments must be zero.
    let ret = unsafe { libc::prctl(option, 0, 0, 0, 0) };
    u32::try_from(ret).map_err(|_| nix::errno::Errno::last().desc().to_string())
}

/// getifaddrs(3) asks the kernel over netlink (no /proc needed) for every
/// interface in our network namespace. Interfaces appear once per address,
/// plus once as an AF_PACKET entry, so interfaces with no IP still show up.
fn interfaces() -> Result<Vec<Interface>, String> {
    let addrs = getifaddrs().map_err(|e| format!("getifaddrs: {}", e.desc()))?;
    let mut out: Vec<Interface> = Vec::new();
    for ifa in addrs {
        let index = match out.iter().position(|i| i.name == ifa.interface_name) {
            Some(index) => index,
            None => {
                out.push(Interface {
                    name: ifa.interface_name.clone(),
                    up: false,
                    addresses: Vec::new(),
                });
                out.len() - 1
            }
        };
        let iface = &mut out[index];
        iface.up |= ifa.flags.contains(InterfaceFlags::IFF_UP);
        if let Some(cidr) = cidr(ifa.address.as_ref(), ifa.netmask.as_ref()) {
            iface.addresses.push(cidr);
        }
    }
    Ok(out)
}

/// `address/prefix`, the prefix being the number of one bits in the netmask.
fn cidr(address: Option<&SockaddrStorage>, netmask: Option<&SockaddrStorage>) -> Option<String> {
    let address = address?;
    if let Some(v4) = address.as_sockaddr_in() {
        let prefix = netmask
            .and_then(|m| m.as_sockaddr_in())
            .map_or(32, |m| m.ip().to_bits().count_ones());
        return Some(format!("{}/{prefix}", v4.ip()));
    }
    if let Some(v6) = address.as_sockaddr_in6() {
        let prefix = netmask
            .and_then(|m| m.as_sockaddr_in6())
            .map_or(128, |m| m.ip().to_bits().count_ones());
        return Some(format!("{}/{prefix}", v6.ip()));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_id_maps() {
        let map = id_map("         0     100000      65536\n").expect("valid map");
        assert_eq!(
            map,
            vec![IdMapping {
                inside: 0,
                outside: 100000,
                count: 65536
            }]
        );
        assert_eq!(id_map("").expect("empty map"), vec![]);
        assert!(id_map("0 1\n").is_err());
    }

    #[test]
    fn parses_ns_links() {
        assert_eq!(ns_inode("mnt:[4026531841]"), Some(4026531841));
        assert_eq!(ns_inode("pid_for_children:[4026531836]"), Some(4026531836));
        assert_eq!(ns_inode("garbage"), None);
    }

    #[test]
    fn report_serializes_with_every_key() {
        let report = collect();
        let value = serde_json::to_value(&report).expect("serializable");
        let keys: Vec<&str> = value
            .as_object()
            .expect("an object")
            .keys()
            .map(String::as_str)
            .collect();
        for key in [
            "pid",
            "ppid",
            "hostname",
            "uid_map",
            "gid_map",
            "namespaces",
            "cgroup",
            "capabilities",
            "seccomp",
            "no_new_privs",
            "mounts",
            "interfaces",
            "errors",
        ] {
            assert!(keys.contains(&key), "missing {key}");
        }
        // On a normal host with /proc, everything should be readable.
        if std::path::Path::new("/proc/self/status").exists() {
            assert!(report.errors.is_empty(), "errors: {:?}", report.errors);
            let ns = report.namespaces.expect("namespaces");
            assert!(ns.contains_key("mnt") && ns.contains_key("pid"));
        }
    }
}
