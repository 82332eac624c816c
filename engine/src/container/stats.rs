//! `stats`: what containers use, from their cgroups' counters (lab 03) and
//! `/proc`, the numbers behind `docker stats` and `GET
//! /containers/{id}/stats`.
//!
//! A counter alone says little: `cpu.stat`'s `usage_usec` is the CPU time
//! used since the container started. Two samples an interval apart give the
//! share of a CPU it used meanwhile (100% is one whole CPU). Memory is
//! `memory.current` against the limit (or the host's memory when there is
//! none); network bytes come from the container's own `/proc/PID/net/dev`,
//! which shows the interfaces of its network namespace.
//!
//! ```text
//! $ cat /sys/fs/cgroup/dockyard/$ID/cpu.stat /sys/fs/cgroup/dockyard/$ID/memory.current
//! $ cat /proc/$PID/net/dev
//! ```

use std::time::{Duration, Instant};

use anyhow::Result;
use lab03_cgroups as cgroups;

use super::config::config_of;
use super::list::list_all;
use crate::engine::Engine;
use crate::state::{Record, Status};

/// A running container's counters (lab 03), and its memory limit.
pub fn container_stats(record: &Record) -> Result<(cgroups::Stats, Option<u64>)> {
    let config = config_of(record)?;
    let parent = config.cgroup_parent_or_default();
    let cg = cgroups::Cgroup::open(&cgroups::detect()?, parent, &record.id)?;
    Ok((cg.stats()?, config.limits.memory))
}

/// One container's usage over a sample interval.
#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    pub id: String,
    pub name: String,
    /// The share of one CPU used over the interval, in percent (up to 100
    /// times the host's CPUs).
    pub cpu_percent: f64,
    /// Bytes of memory used, and the limit (the host's memory without one).
    pub memory: u64,
    pub memory_limit: u64,
    pub memory_percent: f64,
    /// Bytes received and sent on its interfaces but lo.
    pub net_rx: u64,
    pub net_tx: u64,
    pub pids: u64,
}

/// The containers `stats` samples: those named, else the running ones (all
/// with `all`), newest first.
pub fn stats_targets(engine: &Engine, names: &[String], all_states: bool) -> Result<Vec<Record>> {
    let mut list = list_all(engine)?;
    if !names.is_empty() {
        let wanted: Vec<String> = names
            .iter()
            .map(|n| engine.containers.resolve(n).map(|r| r.id))
            .collect::<Result<_>>()?;
        list.retain(|r| wanted.contains(&r.id));
    } else if !all_states {
        list.retain(|r| r.state.status == Status::Running);
    }
    Ok(list)
}

/// Sample `records` twice, `interval` apart (the call takes that long).
/// A container that cannot be read (it stopped) shows zeros.
pub fn sample_stats(records: &[Record], interval: Duration) -> Vec<Stats> {
    let total_memory = host_memory();
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1) as f64;
    let read = |r: &Record| container_stats(r).ok();
    let first: Vec<_> = records.iter().map(read).collect();
    let t0 = Instant::now();
    std::thread::sleep(interval);
    records
        .iter()
        .zip(first)
        .map(|(r, before)| {
            let after = read(r);
            let cpu = match (&before, &after) {
                (Some((b, _)), Some((a, _))) => {
                    cpu_percent(b.cpu_usage_usec, a.cpu_usage_usec, t0.elapsed())
                }
                _ => 0.0,
            };
            let (memory, memory_limit, pids) = match &after {
                Some((s, limit)) => (
                    s.memory_current.unwrap_or(0),
                    limit.unwrap_or(total_memory),
                    s.pids_current.unwrap_or(0),
                ),
                None => (0, total_memory, 0),
            };
            let (net_rx, net_tx) = net_io(r.state.pid);
            Stats {
                id: r.id.clone(),
                name: r.name.clone(),
                cpu_percent: cpu.min(100.0 * cpus),
                memory,
                memory_limit,
                memory_percent: if memory_limit > 0 {
                    memory as f64 / memory_limit as f64 * 100.0
                } else {
                    0.0
                },
                net_rx,
                net_tx,
                pids,
            }
        })
        .collect()
}

/// CPU time used between two readings of `usage_usec`, as a percentage of
/// the wall-clock time between them.
fn cpu_percent(before: Option<u64>, after: Option<u64>, elapsed: Duration) -> f64 {
    match (before, after) {
        (Some(x), Some(y)) => y.saturating_sub(x) as f64 / elapsed.as_micros() as f64 * 100.0,
        _ => 0.0,
    }
}

/// The host's memory in bytes (`MemTotal` of /proc/meminfo), 0 if unknown.
pub fn host_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("MemTotal:")
                    .and_then(|v| v.trim().trim_end_matches(" kB").parse::<u64>().ok())
            })
        })
        .unwrap_or(0)
        * 1024
}

/// Bytes received and sent on the container's interfaces but lo.
pub fn net_io(pid: i32) -> (u64, u64) {
    match std::fs::read_to_string(format!("/proc/{pid}/net/dev")) {
        Ok(text) => parse_net_dev(&text),
        Err(_) => (0, 0),
    }
}

/// The received and sent bytes of `/proc/net/dev`'s interfaces but lo.
fn parse_net_dev(text: &str) -> (u64, u64) {
    text.lines()
        .skip(2)
        .filter_map(|l| l.split_once(':'))
        .filter(|(name, _)| name.trim() != "lo")
        .map(|(_, v)| {
            let f: Vec<u64> = v
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            (
                f.first().copied().unwrap_or(0),
                f.get(8).copied().unwrap_or(0),
            )
        })
        .fold((0, 0), |(a, b), (x, y)| (a + x, b + y))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_dev_sums_every_interface_but_lo() {
        let text = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:    9999      10    0    0    0     0          0         0     9999      10    0    0    0     0       0          0
  eth0:    1500      12    0    0    0     0          0         0      700       8    0    0    0     0       0          0
  eth1:      20       1    0    0    0     0          0         0       30       1    0    0    0     0       0          0
";
        assert_eq!(parse_net_dev(text), (1520, 730));
        assert_eq!(parse_net_dev(""), (0, 0));
    }

    #[test]
    fn cpu_share_is_cpu_time_over_wall_time() {
        let second = Duration::from_secs(1);
        assert_eq!(cpu_percent(Some(0), Some(500_000), second), 50.0);
        assert_eq!(cpu_percent(Some(0), Some(2_000_000), second), 200.0);
        assert_eq!(cpu_percent(None, Some(5), second), 0.0);
        assert_eq!(
            cpu_percent(Some(9), Some(5), second),
            0.0,
            "a counter reset is 0"
        );
    }
}
