//! Packet filter rules: outbound NAT, forwarding, and published ports.
//!
//! Netfilter has hooks on a packet's path through the kernel; iptables
//! attaches *chains* of rules to them, grouped in *tables*. The ones a
//! container network needs:
//!
//! ```text
//!  from a container                                          to the container
//!  (veth -> bridge) --> PREROUTING --> routing --> FORWARD --> POSTROUTING --> out
//!                      (nat: DNAT)        |        (filter)    (nat: MASQUERADE)
//!                                         v
//!  a local program --> OUTPUT (nat: DNAT) --> routing --> POSTROUTING
//! ```
//!
//! - **MASQUERADE** (nat POSTROUTING): a packet from the subnet leaving by
//!   any interface but the bridge gets the outgoing interface's address as its
//!   source, so that replies find their way back; conntrack remembers the
//!   rewrite and undoes it on the replies.
//! - **DNAT** (nat PREROUTING for packets that arrive, nat OUTPUT for the
//!   host's own): a packet to a published port on one of the host's
//!   addresses gets the container's address and port as its destination.
//! - **FORWARD** (filter): routed packets, which is what container traffic
//!   is to the host. Docker sets the chain's policy to DROP and inserts its
//!   own chains (`DOCKER-USER`, `DOCKER-ISOLATION-STAGE-1/2`, `DOCKER`) at the
//!   top, accepting traffic from its bridges, replies to it, and new
//!   connections to published ports only. Dockyard does the same with three
//!   plain rules inserted at the top, so it works whatever the policy: a host
//!   that runs Docker too has FORWARD at DROP, and without them our
//!   containers would be cut off.
//!
//! Every rule is recorded in the network's state file exactly as added, and
//! deleted with `iptables -D` and the same words: teardown, and `gc` after a
//! crash, need no guessing.
//!
//! iptables is run as a program, as Docker does. Modern iptables
//! (`iptables-nft`) translates the same words into nftables rules, so this
//! works on hosts with either backend. A host with only `nft` and no
//! `iptables` is refused with a hint (see [`check`]).

use std::process::Command;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

use crate::Firewall;

/// Where a rule goes in its chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Position {
    /// At the end (`-A`).
    Append,
    /// At the top (`-I`), before whatever the host has there.
    Insert,
}

/// One iptables rule: `iptables -t TABLE -A CHAIN ARGS...`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    pub table: String,
    pub chain: String,
    pub position: Position,
    pub args: Vec<String>,
}

impl Rule {
    pub fn new(table: &str, chain: &str, position: Position, args: &[&str]) -> Rule {
        Rule {
            table: table.into(),
            chain: chain.into(),
            position,
            args: args.iter().map(|a| a.to_string()).collect(),
        }
    }

    /// The rule as `iptables-save` would show it, roughly: for messages.
    pub fn describe(&self) -> String {
        format!(
            "-t {} -A {} {}",
            self.table,
            self.chain,
            self.args.join(" ")
        )
    }
}

/// Refuse early, with a hint, when there is no iptables to run.
pub fn check() -> anyhow::Result<()> {
    match crate::detect_firewall() {
        Firewall::Iptables { .. } => Ok(()),
        Firewall::Nftables => bail!(
            "this host has nft but not iptables; the lab speaks iptables, which on such a host \
             writes nftables rules too: install Debian's iptables package (iptables-nft)"
        ),
        Firewall::None => bail!("neither iptables nor nft is installed: install iptables"),
    }
}

/// Run `iptables -w -t TABLE OP CHAIN ARGS` and say whether it succeeded.
/// `-w` waits for the xtables lock that concurrent iptables runs take.
fn iptables(rule: &Rule, op: &str) -> anyhow::Result<std::process::Output> {
    Command::new("iptables")
        .args(["-w", "-t", &rule.table, op, &rule.chain])
        .args(&rule.args)
        .output()
        .context("running iptables (install Debian's iptables package)")
}

/// Whether the rule is there (`iptables -C`).
pub fn exists(rule: &Rule) -> anyhow::Result<bool> {
    Ok(iptables(rule, "-C")?.status.success())
}

/// Add the rule.
pub fn add(rule: &Rule) -> anyhow::Result<()> {
    let op = match rule.position {
        Position::Append => "-A",
        Position::Insert => "-I",
    };
    let out = iptables(rule, op)?;
    if !out.status.success() {
        bail!(
            "iptables {}: {}",
            rule.describe(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Delete the rule if it is there; a rule already gone is not an error
/// (teardown after a crash may find some of them never made).
pub fn delete(rule: &Rule) -> anyhow::Result<()> {
    if !exists(rule)? {
        return Ok(());
    }
    let out = iptables(rule, "-D")?;
    if !out.status.success() {
        bail!(
            "iptables -D: {}: {}",
            rule.describe(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

// ANCHOR: network_rules
/// The rules a bridge network needs, whoever is on it. An `internal`
/// network gets none of the NAT and forwarding ones: only two rules that
/// drop whatever would be routed in or out of it.
pub fn network_rules(bridge: &str, subnet: &str, internal: bool) -> Vec<Rule> {
    use Position::*;
    if internal {
        // `--internal`: its members talk to each other through the bridge
        // (switched, never routed) and to nothing else.
        return vec![
            Rule::new(
                "mangle",
                "FORWARD",
                Insert,
                &["-i", bridge, "!", "-o", bridge, "-j", "DROP"],
            ),
            Rule::new(
                "mangle",
                "FORWARD",
                Insert,
                &["-o", bridge, "!", "-i", bridge, "-j", "DROP"],
            ),
        ];
    }
    vec![
        // Isolation: a new connection routed *into* the network from
        // anywhere but its own bridge (another network's containers, say)
        // is dropped, unless DNAT made it (a published port). Docker does
        // this with its DOCKER-ISOLATION chains. The rule is in the mangle
        // table, whose FORWARD chain the kernel runs before the filter
        // table's, so that no ACCEPT another network inserts at the top of
        // filter FORWARD can come before it.
        Rule::new(
            "mangle",
            "FORWARD",
            Insert,
            &[
                "-o",
                bridge,
                "!",
                "-i",
                bridge,
                "-m",
                "conntrack",
                "!",
                "--ctstate",
                "RELATED,ESTABLISHED,DNAT",
                "-j",
                "DROP",
            ],
        ),
        // Outbound NAT: from the subnet, out by any other interface.
        Rule::new(
            "nat",
            "POSTROUTING",
            Append,
            &["-s", subnet, "!", "-o", bridge, "-j", "MASQUERADE"],
        ),
        // The host's own connections to a published port on 127.0.0.1 leave
        // by the bridge with a loopback source (route_localnet allows it);
        // give them the bridge's address, or the container would answer
        // its own loopback.
        Rule::new(
            "nat",
            "POSTROUTING",
            Append,
            &[
                "-o",
                bridge,
                "-m",
                "addrtype",
                "--src-type",
                "LOCAL",
                "-j",
                "MASQUERADE",
            ],
        ),
        // Forwarding: anything from the containers, and the replies to it.
        Rule::new("filter", "FORWARD", Insert, &["-i", bridge, "-j", "ACCEPT"]),
        Rule::new(
            "filter",
            "FORWARD",
            Insert,
            &[
                "-o",
                bridge,
                "-m",
                "conntrack",
                "--ctstate",
                "RELATED,ESTABLISHED",
                "-j",
                "ACCEPT",
            ],
        ),
    ]
}
// ANCHOR_END: network_rules
