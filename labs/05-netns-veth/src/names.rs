//! Names: `/etc/hosts`, `/etc/hostname` and `/etc/resolv.conf`.
//!
//! A container's resolver reads the same three files as the host's, from
//! the container's root. Docker writes them under
//! `/var/lib/docker/containers/ID/` and bind-mounts them over the image's;
//! the lab writes them into a directory it is given (the rootfs's `/etc`, or
//! a directory the engine bind-mounts).
//!
//! On a user-defined network Docker answers names with an embedded DNS
//! server: the container's `resolv.conf` says `nameserver 127.0.0.11`, and
//! packets to that address are redirected by iptables rules inside the
//! container's namespace to a socket of the daemon, which knows every
//! container's name and address and forwards the rest to the host's
//! servers. Dockyard has no daemon to answer, so it does what Docker did
//! before 1.10: every member's `/etc/hosts` lists every other member, and
//! is rewritten when one joins or leaves (in place, so a bind mount of it
//! sees the change).

use std::fs;
use std::net::Ipv4Addr;
use std::path::Path;

use anyhow::Context;

/// The three files, as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcFiles {
    pub hosts: String,
    pub hostname: String,
    pub resolv_conf: String,
}

impl EtcFiles {
    /// Write `hosts`, `hostname` and `resolv.conf` into `dir`. An existing
    /// file is truncated and rewritten, not replaced, so a bind mount of it
    /// stays valid.
    pub fn write_to(&self, dir: &Path) -> anyhow::Result<()> {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        for (name, text) in [
            ("hosts", &self.hosts),
            ("hostname", &self.hostname),
            ("resolv.conf", &self.resolv_conf),
        ] {
            write_in_place(&dir.join(name), text)?;
        }
        Ok(())
    }
}

/// Truncate and write, keeping the inode.
pub fn write_in_place(path: &Path, text: &str) -> anyhow::Result<()> {
    // A symlink in an image (e.g. to ../run/...) must not lead us outside.
    if path.is_symlink() {
        fs::remove_file(path)
            .with_context(|| format!("removing the symlink {}", path.display()))?;
    }
    fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// The lines every container's hosts file starts with.
const LOCALHOST: &str = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n";

/// One line of a hosts file: an address and its names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostEntry {
    pub ip: Ipv4Addr,
    pub names: Vec<String>,
}

// ANCHOR: hosts
/// A container's `/etc/hosts`: localhost, itself, and its peers.
pub fn hosts(own: Option<&HostEntry>, peers: &[HostEntry]) -> String {
    let mut text = String::from(LOCALHOST);
    for entry in own.into_iter().chain(peers) {
        text.push_str(&format!("{}\t{}\n", entry.ip, entry.names.join(" ")));
    }
    text
}
// ANCHOR_END: hosts

/// A container's `/etc/resolv.conf`, from the host's: its nameservers,
/// minus those on loopback (127.0.0.53, systemd-resolved's stub, is the
/// host's own loopback, which the container cannot reach from its
/// namespace). With none left, Docker's fallback: Google's public servers.
pub fn resolv_conf(host: &str) -> String {
    let mut out = String::new();
    let mut servers = 0;
    for line in host.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if let ["nameserver", addr, ..] = words[..] {
            let loopback = addr
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
            if loopback {
                continue;
            }
            servers += 1;
        }
        out.push_str(line);
        out.push('\n');
    }
    if servers == 0 {
        out.push_str("nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
    }
    out
}

/// The host's `/etc/resolv.conf` turned into a container's, or the fallback
/// if the host has none.
pub fn resolv_conf_from_host() -> String {
    resolv_conf(&fs::read_to_string("/etc/resolv.conf").unwrap_or_default())
}

/// `--dns`, `--dns-search` and `--dns-option` (or daemon.json's `dns` and
/// `dns-search`): each one given replaces the host's lines of its kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dns {
    pub servers: Vec<String>,
    pub search: Vec<String>,
    pub options: Vec<String>,
}

impl Dns {
    fn is_empty(&self) -> bool {
        self.servers.is_empty() && self.search.is_empty() && self.options.is_empty()
    }
}

// ANCHOR: resolv_conf_with
/// A container's `resolv.conf`: the host's ([`resolv_conf`]) with the
/// `nameserver`, `search` (and `domain`) and `options` lines replaced by
/// those of `dns` that are given, as Docker does.
pub fn resolv_conf_with(host: &str, dns: &Dns) -> String {
    if dns.is_empty() {
        return resolv_conf(host);
    }
    let base = if dns.servers.is_empty() {
        resolv_conf(host)
    } else {
        host.to_string()
    };
    let mut out = String::new();
    for line in base.lines() {
        let keyword = line.split_whitespace().next().unwrap_or("");
        let replaced = match keyword {
            "nameserver" => !dns.servers.is_empty(),
            "search" | "domain" => !dns.search.is_empty(),
            "options" => !dns.options.is_empty(),
            _ => false,
        };
        if !replaced {
            out.push_str(line);
            out.push('\n');
        }
    }
    for server in &dns.servers {
        out.push_str(&format!("nameserver {server}\n"));
    }
    if !dns.search.is_empty() {
        out.push_str(&format!("search {}\n", dns.search.join(" ")));
    }
    if !dns.options.is_empty() {
        out.push_str(&format!("options {}\n", dns.options.join(" ")));
    }
    out
}
// ANCHOR_END: resolv_conf_with

/// Check a `--add-host` name: what a hosts file can hold.
pub fn check_host_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c));
    if !ok {
        anyhow::bail!("invalid host name {name:?} (letters, digits, '-', '.' and '_')");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_lists_self_then_peers() {
        let own = HostEntry {
            ip: Ipv4Addr::new(172, 18, 0, 2),
            names: vec!["abc123".into(), "web".into()],
        };
        let peer = HostEntry {
            ip: Ipv4Addr::new(172, 18, 0, 3),
            names: vec!["db".into()],
        };
        assert_eq!(
            hosts(Some(&own), &[peer]),
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
             172.18.0.2\tabc123 web\n172.18.0.3\tdb\n"
        );
    }

    #[test]
    fn loopback_nameservers_are_dropped() {
        let host = "# managed\nnameserver 127.0.0.53\noptions edns0\n";
        assert_eq!(
            resolv_conf(host),
            "# managed\noptions edns0\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n"
        );
        let host = "nameserver 10.0.0.1\nsearch lan\n";
        assert_eq!(resolv_conf(host), host);
    }

    #[test]
    fn dns_flags_replace_the_hosts_lines_of_their_kind() {
        let host = "nameserver 127.0.0.53\nsearch lan\noptions edns0\n";
        let dns = Dns {
            servers: vec!["10.0.0.2".into()],
            search: vec![],
            options: vec!["ndots:2".into(), "timeout:1".into()],
        };
        assert_eq!(
            resolv_conf_with(host, &dns),
            "search lan\nnameserver 10.0.0.2\noptions ndots:2 timeout:1\n"
        );
        let dns = Dns {
            search: vec!["a.example".into(), "b.example".into()],
            ..Dns::default()
        };
        assert_eq!(
            resolv_conf_with("nameserver 10.0.0.1\ndomain x\n", &dns),
            "nameserver 10.0.0.1\nsearch a.example b.example\n"
        );
        assert_eq!(resolv_conf_with(host, &Dns::default()), resolv_conf(host));
        assert!(check_host_name("db.local").is_ok());
        assert!(check_host_name("a b").is_err());
    }
}
