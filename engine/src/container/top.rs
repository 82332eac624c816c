//! `top`: the processes of a container, as `ps -ef` shows them.
//!
//! A container's processes are the members of its cgroup (lab 03), however
//! deep they forked, and each is described by `/proc/PID/stat`, `status`
//! and `cmdline`, as `ps` reads them:
//!
//! ```text
//! $ cat /sys/fs/cgroup/dockyard/$ID/cgroup.procs
//! $ ps -f -p "$(paste -sd, /sys/fs/cgroup/dockyard/$ID/cgroup.procs)"
//! ```
//!
//! The result is docker's (`GET /containers/{id}/top`): column titles and
//! one row of strings per process.

use std::time::{Duration, UNIX_EPOCH};

use anyhow::{bail, Result};
use lab03_cgroups as cgroups;

use super::config::config_of;
use crate::state::{rfc3339, Record, Status};

/// Every process of a running container: the members of its cgroup.
pub fn container_pids(record: &Record) -> Result<Vec<i32>> {
    let config = config_of(record)?;
    let parent = config.cgroup_parent_or_default();
    cgroups::group_pids(&cgroups::detect()?, parent, &record.id)
}

/// `ps -ef`'s columns and a row per process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Top {
    pub titles: Vec<String>,
    pub processes: Vec<Vec<String>>,
}

/// The processes of a running (or paused) container, `record` reconciled.
pub fn top(record: &Record) -> Result<Top> {
    if record.state.status != Status::Running && record.state.status != Status::Paused {
        bail!("Container {} is not running", record.id);
    }
    let clock = Clock::read();
    let mut processes = Vec::new();
    for pid in container_pids(record)? {
        let read = |f: &str| std::fs::read(format!("/proc/{pid}/{f}")).ok();
        // A process that exited since the cgroup was read is skipped.
        let Some(stat) = read("stat") else {
            continue;
        };
        let status = read("status").unwrap_or_default();
        let cmdline = read("cmdline").unwrap_or_default();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        if let Some(row) = process_row(pid, &text(&stat), &text(&status), &cmdline, &clock) {
            processes.push(row);
        }
    }
    Ok(Top {
        titles: ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
            .map(String::from)
            .to_vec(),
        processes,
    })
}

/// What turns `/proc/PID/stat`'s clock ticks into times: ticks per second
/// and the boot time (`btime` of `/proc/stat`).
struct Clock {
    ticks: u64,
    boot: u64,
}

impl Clock {
    fn read() -> Clock {
        let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .unwrap_or(100) as u64;
        let boot = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|t| {
                t.lines().find_map(|l| {
                    l.strip_prefix("btime ")
                        .and_then(|v| v.trim().parse::<u64>().ok())
                })
            })
            .unwrap_or(0);
        Clock { ticks, boot }
    }
}

/// One row of `ps -ef` from a process's `stat`, `status` and `cmdline`.
fn process_row(
    pid: i32,
    stat: &str,
    status: &str,
    cmdline: &[u8],
    clock: &Clock,
) -> Option<Vec<String>> {
    // The command name (field 2) is in parentheses and may hold spaces.
    let close = stat.rfind(')')?;
    let f: Vec<&str> = stat.get(close + 2..)?.split(' ').collect();
    // Fields from the state (field 3) on: ppid is 4, utime 14, stime 15,
    // starttime 22.
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let uid = status
        .lines()
        .find_map(|l| {
            l.strip_prefix("Uid:")
                .map(|v| v.split_whitespace().next().unwrap_or("0").to_string())
        })
        .unwrap_or_default();
    let secs = (num(11) + num(12)) / clock.ticks;
    let started = clock.boot + num(19) / clock.ticks;
    let stime = rfc3339(UNIX_EPOCH + Duration::from_secs(started));
    let cmd = String::from_utf8_lossy(cmdline)
        .replace('\0', " ")
        .trim()
        .to_string();
    Some(vec![
        if uid == "0" { "root".to_string() } else { uid },
        pid.to_string(),
        num(1).to_string(),
        "0".into(),
        stime[11..16].to_string(),
        "?".into(),
        format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60),
        cmd,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_reads_like_ps_ef() {
        // pid 42, "(my cmd)" with a space, ppid 1, utime+stime = 3723 s at
        // 100 ticks/s, started 90 s after a boot at 00:00 UTC.
        let stat =
            "42 (my cmd) S 1 42 42 0 -1 4194560 100 0 0 0 372200 100 0 0 20 0 1 0 9000 1234 56";
        let status = "Name:\tsleep\nUid:\t1000\t1000\t1000\t1000\n";
        let clock = Clock {
            ticks: 100,
            boot: 1_700_006_400,
        };
        let row = process_row(42, stat, status, b"sleep\x0060\x00", &clock).unwrap();
        assert_eq!(
            row,
            ["1000", "42", "1", "0", "00:01", "?", "01:02:03", "sleep 60"]
        );
        let root = process_row(42, stat, "Uid:\t0\t0\t0\t0\n", b"", &clock).unwrap();
        assert_eq!(root[0], "root");
        assert!(process_row(42, "garbage", status, b"", &clock).is_none());
    }
}
