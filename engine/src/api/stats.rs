//! `GET /containers/ID/stats?stream=1|0&one-shot=0|1`: a container's
//! usage in docker's JSON shape, one document a second.
//!
//! Docker's clients compute the percentages themselves, from two samples:
//! the document carries the counters now (`cpu_stats`) and a second ago
//! (`precpu_stats`), and with them the *host's* CPU time at both moments
//! (`system_cpu_usage`, from the first line of `/proc/stat`). `docker stats`
//! then prints
//!
//! ```text
//! CPU %  = (container's delta / host's delta) * online_cpus * 100
//! MEM %  = (memory_stats.usage - inactive_file) / memory_stats.limit * 100
//! ```
//!
//! The counters are the ones `dockyard stats` reads (lab 03's `cpu.stat`
//! `usage_usec`, `memory.current`, `pids.current`, and the container's own
//! `/proc/PID/net/dev`), only given in docker's units: CPU time in
//! nanoseconds. `stream=0` answers one document after one second (so
//! `precpu_stats` is a real sample, as dockerd's), `one-shot=1` at once,
//! with an empty `precpu_stats`.

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use anyhow::Result;
use serde_json::{json, Value};

use super::http::{self, Request, Response};
use super::routes::{Outcome, Reply};
use super::Service;
use dockyard::container::{self, config_of};
use dockyard::state::{self, Record, Status};

/// One sample of a container's counters and the host's CPU time.
struct Sample {
    read: String,
    cpu_ns: u64,
    system_ns: u64,
    memory: u64,
    memory_peak: u64,
    inactive_file: u64,
    limit: u64,
    pids: u64,
    net: (u64, u64),
}

/// The host's CPU time in nanoseconds: the sum of `/proc/stat`'s first
/// line (user nice system idle iowait irq softirq steal), in clock ticks.
fn host_cpu_ns() -> u64 {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: u64 = text
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|v| v.parse::<u64>().ok())
        .sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    ticks * (1_000_000_000 / hz)
}

/// `inactive_file` of the container's `memory.stat`: page cache the
/// kernel can drop at once, which docker leaves out of the usage it shows.
fn inactive_file(r: &Record) -> u64 {
    let Ok(c) = config_of(r) else { return 0 };
    let path = format!(
        "/sys/fs/cgroup/{}/{}/memory.stat",
        c.cgroup_parent_or_default(),
        r.id
    );
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("inactive_file ")?.trim().parse().ok())
        .unwrap_or(0)
}

fn sample(r: &Record) -> Sample {
    let (s, limit) = match container::container_stats(r) {
        Ok((s, l)) => (Some(s), l),
        Err(_) => (None, None),
    };
    let s = s.unwrap_or_default();
    Sample {
        read: state::now_rfc3339(),
        cpu_ns: s.cpu_usage_usec.unwrap_or(0) * 1000,
        system_ns: host_cpu_ns(),
        memory: s.memory_current.unwrap_or(0),
        memory_peak: s.memory_peak.unwrap_or(0),
        inactive_file: inactive_file(r),
        limit: limit.unwrap_or_else(container::host_memory),
        pids: s.pids_current.unwrap_or(0),
        net: container::net_io(r.state.pid),
    }
}

fn cpu_json(s: Option<&Sample>, cpus: usize) -> Value {
    match s {
        Some(s) => json!({
            "cpu_usage": {"total_usage": s.cpu_ns, "usage_in_kernelmode": 0,
                          "usage_in_usermode": 0},
            "system_cpu_usage": s.system_ns,
            "online_cpus": cpus,
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
        }),
        None => json!({
            "cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
        }),
    }
}

/// One stats document: `now`, and `pre` a second before (if any).
fn document(r: &Record, now: &Sample, pre: Option<&Sample>) -> Value {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let running = matches!(r.state.status, Status::Running | Status::Paused);
    json!({
        "name": format!("/{}", r.name),
        "id": r.id,
        "read": if running { now.read.clone() } else { "0001-01-01T00:00:00Z".into() },
        "preread": pre.map_or("0001-01-01T00:00:00Z".to_string(), |p| p.read.clone()),
        "pids_stats": {"current": now.pids},
        "blkio_stats": {"io_service_bytes_recursive": null, "io_serviced_recursive": null,
                        "io_queue_recursive": null, "io_service_time_recursive": null,
                        "io_wait_time_recursive": null, "io_merged_recursive": null,
                        "io_time_recursive": null, "sectors_recursive": null},
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": cpu_json(Some(now), cpus),
        "precpu_stats": cpu_json(pre, cpus),
        "memory_stats": {
            "usage": now.memory,
            "max_usage": now.memory_peak,
            "stats": {"inactive_file": now.inactive_file},
            "limit": now.limit,
        },
        "networks": {"eth0": {
            "rx_bytes": now.net.0, "rx_packets": 0, "rx_errors": 0, "rx_dropped": 0,
            "tx_bytes": now.net.1, "tx_packets": 0, "tx_errors": 0, "tx_dropped": 0,
        }},
    })
}

/// `GET /containers/ID/stats`.
pub fn stats(service: &Service, req: &Request, conn: &UnixStream, id: &str) -> Result<Reply> {
    let e = service.engine;
    let r = e.containers.reconcile(e.containers.resolve(id)?)?;
    // `stream` defaults to true; docker-py sends `stream=False`.
    let stream = req
        .query("stream")
        .is_none_or(|v| !(v == "0" || v.eq_ignore_ascii_case("false")));
    if !stream {
        let first = sample(&r);
        let doc = if req.flag("one-shot") {
            document(&r, &first, None)
        } else {
            std::thread::sleep(Duration::from_secs(1));
            let r = e.containers.reconcile(r.clone()).unwrap_or(r);
            document(&r, &sample(&r), Some(&first))
        };
        return Ok(Reply::Full(Response::json(200, &doc)));
    }
    http::start_chunked(&mut &*conn, 200, "application/json")?;
    let mut pre: Option<Sample> = None;
    loop {
        let now_r = e
            .containers
            .reconcile(r.clone())
            .unwrap_or_else(|_| r.clone());
        let now = sample(&now_r);
        let line = document(&now_r, &now, pre.as_ref()).to_string() + "\n";
        http::write_chunk(&mut &*conn, line.as_bytes())?;
        (&*conn).flush()?;
        if !matches!(now_r.state.status, Status::Running | Status::Paused) {
            // A stopped container has nothing more to say.
            http::write_chunk(&mut &*conn, b"")?;
            return Ok(Reply::Streamed(Outcome::Done));
        }
        pre = Some(now);
        std::thread::sleep(Duration::from_secs(1));
    }
}
