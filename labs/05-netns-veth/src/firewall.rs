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
//! iptables is run as a program, as Docker does; the rules of a network or
//! a published port go in and out together through one `iptables-restore
//! --noflush` (see [`add_all`]), not one process per rule. Modern iptables
//! (`iptables-nft`) translates the same words into nftables rules, so this
//! works on hosts with either backend. A host with only `nft` and no
//! `iptables` is refused with a hint (see [`check`]).

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

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
    // Asked once per process: attach and detach both check, and the
    // answer (one `iptables -V`) does not change under us.
    static FIREWALL: OnceLock<Firewall> = OnceLock::new();
    match FIREWALL.get_or_init(crate::detect_firewall) {
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

/// Add `rules`, in order, with one `iptables-restore --noflush` rather than
/// one `iptables` process per rule: a network's rules are added when its
/// first container starts, and each process costs milliseconds on that
/// path. The effect is the same as `add` for each in turn (`-I` lines
/// pile up in the same order). If it fails, whatever an earlier table's
/// COMMIT already put in is taken out again, so nothing half-made stays.
pub fn add_all(rules: &[Rule]) -> anyhow::Result<()> {
    if let Err(e) = restore(rules, true) {
        for rule in rules {
            let _ = delete(rule);
        }
        return Err(e);
    }
    Ok(())
}

/// Delete `rules` with one `iptables-restore --noflush`. A rule that is not
/// there fails the whole batch (a teardown after a crash may find some
/// never made); then they go one by one, each checked first, as `delete`.
pub fn delete_all(rules: &[Rule]) -> anyhow::Result<()> {
    if restore(rules, false).is_ok() {
        return Ok(());
    }
    let mut first_error = None;
    for rule in rules {
        if let Err(e) = delete(rule) {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Feed `-A`/`-I` (or `-D`) lines for `rules` to `iptables-restore -w
/// --noflush`, grouped by table, each table committed as one.
fn restore(rules: &[Rule], add: bool) -> anyhow::Result<()> {
    if rules.is_empty() {
        return Ok(());
    }
    let mut tables: Vec<(&str, String)> = Vec::new();
    for rule in rules {
        // The restore format splits words at blanks: a word with one (none
        // of ours has) would be misread, so such a rule is refused here and
        // the caller's fallback, or error, takes over.
        if std::iter::once(&rule.chain)
            .chain(&rule.args)
            .any(|w| w.is_empty() || w.contains(|c: char| c.is_whitespace() || c == '"'))
        {
            bail!(
                "iptables-restore: a word of {} cannot be written",
                rule.describe()
            );
        }
        let op = match (add, rule.position) {
            (false, _) => "-D",
            (true, Position::Append) => "-A",
            (true, Position::Insert) => "-I",
        };
        let line = format!("{op} {} {}\n", rule.chain, rule.args.join(" "));
        match tables.iter_mut().find(|(t, _)| *t == rule.table) {
            Some((_, lines)) => lines.push_str(&line),
            None => tables.push((&rule.table, line)),
        }
    }
    let input: String = tables
        .iter()
        .map(|(t, lines)| format!("*{t}\n{lines}COMMIT\n"))
        .collect();
    let mut child = Command::new("iptables-restore")
        .args(["-w", "--noflush"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("running iptables-restore (install Debian's iptables package)")?;
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(input.as_bytes())
        .context("writing to iptables-restore")?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "iptables-restore: {}",
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Against the kernel, in a network namespace of this test's thread
    /// alone (unshare applies to the calling thread, and libtest gives each
    /// test its own): the host's rules are never touched.
    #[test]
    fn add_all_is_all_or_nothing_and_delete_all_finishes_a_partial_teardown() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root (scripts/test runs it as root)");
            return;
        }
        check().expect("iptables is installed by scripts/setup");
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let nat = Rule::new(
            "nat",
            "POSTROUTING",
            Position::Append,
            &["-s", "10.99.0.0/24", "-j", "MASQUERADE"],
        );
        let bad = Rule::new(
            "filter",
            "FORWARD",
            Position::Insert,
            &["-i", "dytest0", "-j", "NO-SUCH-CHAIN"],
        );
        // The nat table is committed before the filter table fails: the
        // rollback must take its rule out again.
        assert!(add_all(&[nat.clone(), bad]).is_err());
        assert!(!exists(&nat).unwrap(), "a failed add_all left a rule in");

        let fwd = Rule::new(
            "filter",
            "FORWARD",
            Position::Insert,
            &["-i", "dytest0", "-j", "ACCEPT"],
        );
        add_all(&[nat.clone(), fwd.clone()]).unwrap();
        assert!(exists(&nat).unwrap() && exists(&fwd).unwrap());
        // One is gone already (a crash half way through a teardown): the
        // batch fails, and the one-by-one fallback removes the rest.
        delete(&fwd).unwrap();
        delete_all(&[nat.clone(), fwd.clone()]).unwrap();
        assert!(!exists(&nat).unwrap() && !exists(&fwd).unwrap());
        // A word the restore format cannot carry is refused, not misread.
        let spaced = Rule::new(
            "filter",
            "FORWARD",
            Position::Append,
            &["-m", "comment", "--comment", "a b", "-j", "ACCEPT"],
        );
        assert!(add_all(std::slice::from_ref(&spaced)).is_err());
        assert!(!exists(&spaced).unwrap());
    }
}
