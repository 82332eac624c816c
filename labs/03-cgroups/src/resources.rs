//! # The finer resource knobs: CPU pinning, raw CFS bandwidth, block I/O
//!
//! Beyond "how much CPU" (`--cpus`) and "how much memory" (`-m`), docker
//! offers knobs that map one to one onto more cgroup files:
//!
//! ```text
//! echo 1     > /sys/fs/cgroup/cpuset/dockyard/c1/cpuset.cpus       # --cpuset-cpus 1 (v1)
//! echo 50000 > /sys/fs/cgroup/cpu/dockyard/c1/cpu.cfs_period_us    # --cpu-period 50000
//! echo 25000 > /sys/fs/cgroup/cpu/dockyard/c1/cpu.cfs_quota_us     # --cpu-quota 25000
//! echo "254:0 1048576" > /sys/fs/cgroup/blkio/dockyard/c1/blkio.throttle.read_bps_device
//! echo "254:0 rbps=1048576" > /sys/fs/cgroup/dockyard/c1/io.max    # the same, v2
//! ```
//!
//! This module holds their parsing and checks; `v1.rs` and `v2.rs` write
//! them.

use std::path::Path;

use anyhow::{bail, Context};

use crate::{ncpus, Backend, Cgroup, Knob, Limits, Version, CFS_PERIOD_US};

/// A rate on one block device, named by its numbers as the kernel's files
/// take it (`8:0 1048576`): the path the user gave is resolved before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Throttle {
    pub major: u64,
    pub minor: u64,
    /// Bytes per second.
    pub rate: u64,
}

impl Throttle {
    /// `rate` bytes per second on the block device at `path` (`/dev/vda`):
    /// the kernel's files name a device by its numbers, so the node is
    /// stat'ed for them (`stat -c '%t:%T' /dev/vda`, in hex).
    pub fn for_device(path: &Path, rate: u64) -> anyhow::Result<Throttle> {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let meta = std::fs::metadata(path).with_context(|| format!("stat {}", path.display()))?;
        if !meta.file_type().is_block_device() {
            bail!(
                "{} is not a block device: the block I/O controller throttles disks only",
                path.display()
            );
        }
        let rdev = meta.rdev();
        Ok(Throttle {
            major: nix::sys::stat::major(rdev),
            minor: nix::sys::stat::minor(rdev),
            rate,
        })
    }
}

impl Limits {
    /// Whether the block I/O controller (v1 `blkio`, v2 `io`) has anything
    /// to do.
    pub fn wants_io(&self) -> bool {
        !self.device_read_bps.is_empty()
            || !self.device_write_bps.is_empty()
            || self.more.wants_io()
    }
    /// Whether the cpuset controller has anything to do.
    pub fn wants_cpuset(&self) -> bool {
        self.cpuset_cpus.is_some() || self.cpuset_mems.is_some()
    }

    /// Whether the cpu controller has anything to do.
    pub fn wants_cpu(&self) -> bool {
        self.cpus.is_some()
            || self.cpu_period.is_some()
            || self.cpu_quota.is_some()
            || self.cpu_shares.is_some()
            || self.cpu_weight.is_some()
            || self.more.wants_cpu()
    }

    // ANCHOR: cfs_bandwidth
    /// The CFS bandwidth to write, as (quota, period) in microseconds, quota
    /// `None` for no limit: from `--cpus` (a quota over the default period),
    /// or from `--cpu-quota`/`--cpu-period` as given. `None` if neither.
    pub fn cfs_bandwidth(&self) -> Option<(Option<u64>, u64)> {
        if let Some(cpus) = self.cpus {
            let quota = (cpus * CFS_PERIOD_US as f64).round() as u64;
            return Some((Some(quota), CFS_PERIOD_US));
        }
        if self.cpu_period.is_none() && self.cpu_quota.is_none() {
            return None;
        }
        let quota = self.cpu_quota.filter(|q| *q > 0).map(|q| q as u64);
        Some((quota, self.cpu_period.unwrap_or(CFS_PERIOD_US)))
    }
    // ANCHOR_END: cfs_bandwidth
}

impl Limits {
    /// The CFS bandwidth's own checks, for [`Limits::check`].
    pub(crate) fn check_cfs(&self, version: Version) -> anyhow::Result<()> {
        if self.cpus.is_some() && (self.cpu_period.is_some() || self.cpu_quota.is_some()) {
            bail!(
                "--cpus and --cpu-period/--cpu-quota set the same CFS bandwidth: give one of them"
            );
        }
        if let Some(period) = self.cpu_period {
            let file = version.file(Knob::CpuQuota);
            if !(1000..=1_000_000).contains(&period) {
                bail!("--cpu-period {period}: the cpu controller's {file} takes a period from 1000 to 1000000 microseconds");
            }
        }
        if let Some(quota) = self.cpu_quota {
            let file = version.file(Knob::CpuQuota);
            if quota != -1 && quota < 1000 {
                bail!("--cpu-quota {quota}: the cpu controller's {file} takes at least 1000 microseconds, or -1 for no limit");
            }
        }
        Ok(())
    }

    /// The cpuset lists and the v1-only memory knobs, for [`Limits::check`].
    pub(crate) fn check_cpuset_and_v1_memory(&self) -> anyhow::Result<()> {
        for (flag, list, node) in [
            ("--cpuset-cpus", &self.cpuset_cpus, false),
            ("--cpuset-mems", &self.cpuset_mems, true),
        ] {
            let Some(list) = list else { continue };
            let file = if node { "cpuset.mems" } else { "cpuset.cpus" };
            let have = online(node);
            let wanted = parse_list(list).with_context(|| format!("{flag} {list} ({file})"))?;
            let available = parse_list(&have).unwrap_or_default();
            if wanted.iter().any(|n| !available.contains(n)) {
                bail!("{flag} {list}: the cpuset controller's {file} can only name what is online here: {have}");
            }
        }
        if let Some(s) = self.memory_swappiness {
            if s > 100 {
                bail!("--memory-swappiness {s}: the memory controller's memory.swappiness takes 0 to 100");
            }
        }
        Ok(())
    }
}

// ANCHOR: update
impl Cgroup {
    /// Write `limits` into a group that is in use (`docker update`): the
    /// same files as at creation, now with the container's processes inside;
    /// the kernel applies a new limit at once (a lower `memory.max` reclaims,
    /// or OOM-kills if it cannot). Only the knobs set in `limits` change.
    ///
    /// ```text
    /// echo 67108864 > /sys/fs/cgroup/memory/dockyard/c1/memory.limit_in_bytes
    /// ```
    pub fn update(&mut self, limits: &Limits) -> anyhow::Result<()> {
        limits.check(self.version(), ncpus())?;
        match &self.backend {
            Backend::V1(c) => c.apply(limits, &mut self.warnings),
            Backend::V2(c) => c.apply(limits, &mut self.warnings),
        }
    }
}
// ANCHOR_END: update

// ANCHOR: cpu_list
/// Parse the kernel's list format (`0-3,5`), as `cpuset.cpus`,
/// `/sys/devices/system/cpu/online` and docker's `--cpuset-cpus` write it,
/// into the numbers it names. Docker's own error, `invalid format: LIST`,
/// for anything else (an empty item, a range that runs backwards).
pub fn parse_list(list: &str) -> anyhow::Result<Vec<u32>> {
    let bad = || anyhow::anyhow!("invalid format: {list}");
    let mut out = Vec::new();
    for item in list.split(',') {
        let (lo, hi) = match item.split_once('-') {
            Some((lo, hi)) => (lo, hi),
            None => (item, item),
        };
        let lo: u32 = lo.parse().map_err(|_| bad())?;
        let hi: u32 = hi.parse().map_err(|_| bad())?;
        if hi < lo {
            return Err(bad());
        }
        out.extend(lo..=hi);
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// The CPUs (or, with `node`, the memory nodes) the host has online, in the
/// list format: what `--cpuset-cpus`/`--cpuset-mems` may choose from.
/// A host without NUMA has no node directory: node 0 is all its memory.
pub fn online(node: bool) -> String {
    let path = match node {
        false => "/sys/devices/system/cpu/online",
        true => "/sys/devices/system/node/online",
    };
    match std::fs::read_to_string(path) {
        Ok(s) => s.trim().to_string(),
        Err(_) if node => "0".to_string(),
        Err(_) => format!("0-{}", ncpus().saturating_sub(1)),
    }
}
// ANCHOR_END: cpu_list

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_period_and_quota_are_checked_and_exclude_cpus() {
        let l = |cpus, period, quota| Limits {
            cpus,
            cpu_period: period,
            cpu_quota: quota,
            ..Default::default()
        };
        let err = |x: Limits| x.check(Version::V1, 1).unwrap_err().to_string();
        assert!(err(l(Some(0.5), Some(100_000), None)).contains("--cpus and --cpu-period"));
        assert!(err(l(None, Some(999), None)).contains("cpu.cfs_quota_us"));
        assert!(err(l(None, Some(1_000_001), None)).contains("1000000"));
        assert!(err(l(None, None, Some(999))).contains("at least 1000"));
        assert!(err(l(None, None, Some(-2))).contains("-1 for no limit"));
        assert!(l(None, Some(50_000), Some(-1))
            .check(Version::V2, 1)
            .is_ok());
        assert_eq!(
            l(None, Some(50_000), Some(25_000)).cfs_bandwidth(),
            Some((Some(25_000), 50_000))
        );
    }

    #[test]
    fn cpu_lists_parse_as_the_kernel_writes_them() {
        assert_eq!(parse_list("0-2,5,1").unwrap(), vec![0, 1, 2, 5]);
        assert_eq!(parse_list("3").unwrap(), vec![3]);
        for bad in ["", "a", "1-", "3-1", "0,,1", "-1"] {
            let e = parse_list(bad).unwrap_err().to_string();
            assert_eq!(e, format!("invalid format: {bad}"));
        }
        let far = Limits {
            cpuset_cpus: Some("4095".into()),
            ..Default::default()
        };
        let e = far.check(Version::V2, ncpus()).unwrap_err().to_string();
        assert!(e.contains("cpuset.cpus") && e.contains("online"), "{e}");
    }
}
