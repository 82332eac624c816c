//! Published ports: `-p [IP:][HOST_PORT:]CONTAINER_PORT[/PROTO]` and `-P`.
//!
//! A container's address is private to the host (and NATed on the way out),
//! so nobody outside can connect to it. Publishing a port adds DNAT rules
//! that rewrite the destination of packets for `HOST_IP:HOST_PORT` to
//! `CONTAINER_IP:CONTAINER_PORT` (see [`crate::firewall`]).
//!
//! Connections from the host itself to `127.0.0.1:HOST_PORT` are the tricky
//! case. DNAT happens in the OUTPUT chain, and the rewritten packet leaves by
//! the bridge still carrying the source 127.0.0.1, which the kernel treats as
//! a martian and drops unless `net.ipv4.conf.BRIDGE.route_localnet` is 1;
//! then a MASQUERADE rule gives it the bridge's address. Docker does the
//! same when its userland proxy is off; with the proxy on (its default) a
//! `docker-proxy` process per port listens on the host and copies bytes,
//! which also works where NAT cannot, at the cost of a process and of the
//! client's source address.

use std::fmt;
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::str::FromStr;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::firewall::{Position, Rule};

/// TCP or UDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        })
    }
}

/// What the user asked for: `-p 8080:80`, `-p 127.0.0.1:8080:80/udp`,
/// `-p 80` (a random host port), or one EXPOSEd port under `-P`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortSpec {
    /// Only this host address, or every address of the host.
    pub host_ip: Option<Ipv4Addr>,
    /// `None`: a free port chosen at attach time.
    pub host_port: Option<u16>,
    pub container_port: u16,
    pub proto: Proto,
}

impl PortSpec {
    /// A port exposed by the image, published on a random host port (`-P`).
    pub fn exposed(container_port: u16, proto: Proto) -> PortSpec {
        PortSpec {
            host_ip: None,
            host_port: None,
            container_port,
            proto,
        }
    }
}

fn parse_port(s: &str, what: &str) -> Result<u16, String> {
    match s.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("{what} {s:?}: expected a port number, 1 to 65535")),
        Ok(p) => Ok(p),
    }
}

impl FromStr for PortSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<PortSpec, String> {
        let (rest, proto) = match s.rsplit_once('/') {
            Some((rest, "tcp")) => (rest, Proto::Tcp),
            Some((rest, "udp")) => (rest, Proto::Udp),
            Some((_, other)) => return Err(format!("{s:?}: unknown protocol {other:?}")),
            None => (s, Proto::Tcp),
        };
        let parts: Vec<&str> = rest.split(':').collect();
        let (ip, host, container) = match parts[..] {
            [c] => (None, None, c),
            [h, c] => (None, Some(h), c),
            [ip, h, c] => (Some(ip), Some(h), c),
            _ => {
                return Err(format!(
                    "{s:?}: expected [IP:][HOST_PORT:]CONTAINER_PORT[/tcp|/udp]"
                ))
            }
        };
        let host_ip = ip
            .map(|ip| {
                ip.parse()
                    .map_err(|e| format!("{s:?}: host IP {ip:?}: {e}"))
            })
            .transpose()?;
        let host_port = match host {
            None | Some("") => None,
            Some(h) => Some(parse_port(h, "host port")?),
        };
        Ok(PortSpec {
            host_ip,
            host_port,
            container_port: parse_port(container, "container port")?,
            proto,
        })
    }
}

/// A published port, with every blank filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    pub proto: Proto,
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub container_port: u16,
}

impl fmt::Display for PortMapping {
    /// As `docker port` shows it: `80/tcp -> 0.0.0.0:8080`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{} -> {}:{}",
            self.container_port,
            self.proto,
            self.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED),
            self.host_port
        )
    }
}

/// Fill in a random host port where none was given: bind port 0 and let
/// the kernel pick a free one from its ephemeral range
/// (`net.ipv4.ip_local_port_range`), as Docker's port allocator picks from
/// the same range.
pub fn resolve(spec: &PortSpec) -> anyhow::Result<PortMapping> {
    let host_port = match spec.host_port {
        Some(p) => p,
        None => {
            let addr = (spec.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED), 0);
            match spec.proto {
                Proto::Tcp => TcpListener::bind(addr).and_then(|l| l.local_addr()),
                Proto::Udp => UdpSocket::bind(addr).and_then(|s| s.local_addr()),
            }
            .context("binding port 0 to find a free host port")?
            .port()
        }
    };
    Ok(PortMapping {
        proto: spec.proto,
        host_ip: spec.host_ip,
        host_port,
        container_port: spec.container_port,
    })
}

// ANCHOR: port_rules
/// The rules that publish one port of the container at `ip`.
pub fn port_rules(m: &PortMapping, ip: Ipv4Addr, bridge: &str) -> Vec<Rule> {
    let proto = m.proto.to_string();
    let dport = m.host_port.to_string();
    let to = format!("{ip}:{}", m.container_port);
    let mut dnat: Vec<&str> = vec!["-p", &proto];
    let host_ip = m.host_ip.map(|ip| ip.to_string());
    match &host_ip {
        Some(h) => dnat.extend(["-d", h]),
        // Every address of the host: "a destination of type LOCAL".
        None => dnat.extend(["-m", "addrtype", "--dst-type", "LOCAL"]),
    }
    dnat.extend(["--dport", &dport, "-j", "DNAT", "--to-destination", &to]);
    let cport = m.container_port.to_string();
    let ip = ip.to_string();
    vec![
        // Packets that arrive from elsewhere...
        Rule::new("nat", "PREROUTING", Position::Append, &dnat),
        // ...and the host's own.
        Rule::new("nat", "OUTPUT", Position::Append, &dnat),
        // Let new connections to it through FORWARD.
        Rule::new(
            "filter",
            "FORWARD",
            Position::Insert,
            &[
                "-d", &ip, "-o", bridge, "-p", &proto, "--dport", &cport, "-j", "ACCEPT",
            ],
        ),
    ]
}
// ANCHOR_END: port_rules

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_specs_parse_like_docker_run_p() {
        let p: PortSpec = "8080:80".parse().unwrap();
        assert_eq!(
            p,
            PortSpec {
                host_ip: None,
                host_port: Some(8080),
                container_port: 80,
                proto: Proto::Tcp
            }
        );
        let p: PortSpec = "127.0.0.1:8080:80/udp".parse().unwrap();
        assert_eq!(p.host_ip, Some(Ipv4Addr::LOCALHOST));
        assert_eq!(p.proto, Proto::Udp);
        let p: PortSpec = "80".parse().unwrap();
        assert_eq!((p.host_port, p.container_port), (None, 80));
        let p: PortSpec = "127.0.0.1::80".parse().unwrap();
        assert_eq!((p.host_ip, p.host_port), (Some(Ipv4Addr::LOCALHOST), None));
        for bad in [
            "", "a:80", "8080:0", "1:2:3:4", "80/sctp", "x.y:1:2", "70000:80",
        ] {
            assert!(bad.parse::<PortSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_random_port_is_free_and_not_zero() {
        let m = resolve(&PortSpec::exposed(80, Proto::Tcp)).unwrap();
        assert_ne!(m.host_port, 0);
        assert_eq!(m.to_string(), format!("80/tcp -> 0.0.0.0:{}", m.host_port));
    }

    #[test]
    fn rules_for_one_port() {
        let m = PortMapping {
            proto: Proto::Tcp,
            host_ip: None,
            host_port: 8080,
            container_port: 80,
        };
        let rules = port_rules(&m, Ipv4Addr::new(172, 17, 0, 2), "dy0");
        assert_eq!(
            rules[1].describe(),
            "-t nat -A OUTPUT -p tcp -m addrtype --dst-type LOCAL --dport 8080 \
             -j DNAT --to-destination 172.17.0.2:80"
        );
    }
}
