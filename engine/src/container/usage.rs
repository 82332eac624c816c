//! What a running container uses: its processes and its cgroup's counters
//! (lab 03), for `top` and `stats`.

use anyhow::Result;
use lab02_namespaces as namespaces;
use lab03_cgroups as cgroups;

use super::config::config_of;
use crate::state::Record;

pub use cgroups::Version as CgroupVersion;

/// The host's cgroup layout (lab 03).
pub fn cgroup_host() -> Result<cgroups::Host> {
    cgroups::detect()
}

/// Parse a size as `docker run --memory` does (lab 03's parser: 32m, 1g, bytes).
pub fn lab03_size(s: &str) -> Result<u64> {
    cgroups::parse_size(s)
}

/// A running container's counters (lab 03), and its memory limit.
pub fn container_stats(record: &Record) -> Result<(cgroups::Stats, Option<u64>)> {
    let config = config_of(record)?;
    let parent = config.cgroup_parent_or_default();
    let cg = cgroups::Cgroup::open(&cgroups::detect()?, parent, &record.id)?;
    Ok((cg.stats()?, config.limits.memory))
}

/// Check a `--ulimit` value (lab 02 parses it).
pub fn parse_ulimit(u: &str) -> Result<(nix::sys::resource::Resource, u64, u64)> {
    namespaces::parse_ulimit(u)
}

/// Every process of a running container: the members of its cgroup.
pub fn container_pids(record: &Record) -> Result<Vec<i32>> {
    let config = config_of(record)?;
    let parent = config.cgroup_parent_or_default();
    let host = cgroups::detect()?;
    let mut pids = Vec::new();
    for d in cgroups::group_dirs(&host, parent, &record.id)? {
        if let Ok(text) = std::fs::read_to_string(d.join("cgroup.procs")) {
            pids.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
        }
    }
    pids.sort_unstable();
    pids.dedup();
    Ok(pids)
}
