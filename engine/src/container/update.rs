//! `docker update`: change a container's limits (and restart policy) after
//! it was created, while it runs.
//!
//! The new values are checked as `create` checks them, written into the
//! container's cgroup by lab 03 if it is running (the kernel applies them at
//! once), and then recorded, so that `inspect` and the next `start` agree
//! with the group:
//!
//! ```text
//! dockyard update --memory 64m --cpus 0.5 web
//! cat /sys/fs/cgroup/memory/dockyard/<id>/memory.limit_in_bytes   # 67108864
//! ```

use anyhow::{bail, Context, Result};
use lab03_cgroups as cgroups;

use super::config::{config_of, Limits, RestartPolicy};
use super::create::check_settings;
use crate::engine::Engine;
use crate::state::{Record, Status};

/// What `update` was asked to change; `None` keeps the current value.
#[derive(Debug, Clone, Default)]
pub struct Update {
    pub cpus: Option<f64>,
    pub cpu_shares: Option<u64>,
    pub memory: Option<u64>,
    pub memory_swap: Option<i64>,
    pub pids: Option<i64>,
    pub restart: Option<RestartPolicy>,
    /// `--cpuset-cpus`, `--cpuset-mems`: `cpuset.cpus`, `cpuset.mems`.
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    /// `--cpu-period`, `--cpu-quota`: the CFS bandwidth, raw (`cpu.max`
    /// on v2, `cpu.cfs_period_us`/`cpu.cfs_quota_us` on v1).
    pub cpu_period: Option<i64>,
    pub cpu_quota: Option<i64>,
    /// `--memory-reservation` (`memory.soft_limit_in_bytes`, `memory.low`)
    /// and `--blkio-weight` (`blkio.weight`, `io.weight`...).
    pub memory_reservation: Option<u64>,
    pub blkio_weight: Option<u16>,
}

impl Update {
    /// Nothing asked: docker's CLI refuses that before it sends anything.
    pub fn is_empty(&self) -> bool {
        self.cpus.is_none()
            && self.cpu_shares.is_none()
            && self.memory.is_none()
            && self.memory_swap.is_none()
            && self.pids.is_none()
            && self.restart.is_none()
            && self.cpuset_cpus.is_none()
            && self.cpuset_mems.is_none()
            && self.cpu_period.is_none()
            && self.cpu_quota.is_none()
            && self.memory_reservation.is_none()
            && self.blkio_weight.is_none()
    }
}

/// Apply `u` to the container: its group if it runs, then its record.
/// Returns dockerd's warnings for what this host could not apply (the
/// `Warnings` of the API's answer; docker's CLI prints them after the
/// names).
pub fn update(engine: &Engine, record: &Record, u: &Update) -> Result<Vec<String>> {
    if u.is_empty() {
        bail!("you must provide one or more flags when using this command");
    }
    let mut config = config_of(record)?;
    let old = config.limits.clone();
    merge(&mut config.limits, u)?;
    if let Some(restart) = &u.restart {
        if config.auto_remove && *restart != RestartPolicy::No {
            bail!(
                "Restart policy cannot be updated because AutoRemove is enabled for the container"
            );
        }
        config.restart = restart.clone();
    }
    check_settings(&config)?;
    let mut warnings = super::more_settings(&mut config)?;
    if matches!(record.state.status, Status::Running | Status::Paused) {
        // Only what changed is written: the other files keep their values.
        let changed = changed_knobs(&old, &config.limits);
        if changed != cgroups::Limits::default() {
            let host = cgroups::detect()?;
            // On v1 a container's cpuset group exists only if it was
            // created with a cpuset (lab 03 makes none otherwise, as an
            // empty one would refuse its tasks): nothing to write into.
            let had_cpuset = old.cpuset_cpus.is_some() || old.cpuset_mems.is_some();
            if host.version() == cgroups::Version::V1
                && !had_cpuset
                && (changed.cpuset_cpus.is_some() || changed.cpuset_mems.is_some())
            {
                bail!(
                    "Cannot update container {}: on cgroup v1 its cpuset group is made only \
                     when it is created with --cpuset-cpus or --cpuset-mems; recreate it with one",
                    record.id
                );
            }
            let mut group =
                cgroups::Cgroup::open(&host, config.cgroup_parent_or_default(), &record.id)?;
            group.update(&changed).context("Cannot update container")?;
            // A file the group lacks (no weight file without BFQ): docker's warning.
            warnings.append(&mut group.warnings);
        }
    }
    let lock = engine.containers.lock()?;
    let mut fresh = engine.containers.load(&record.id)?;
    fresh.config = serde_json::to_value(&config).context("serializing the container's config")?;
    engine.containers.save(&lock, &fresh)?;
    drop(lock);
    crate::events::container(engine, &fresh, "update", &[]);
    Ok(warnings)
}

/// The new values over the old, with dockerd's rule for memory and swap:
/// a memory limit above the swap limit already set needs the swap limit
/// updated too.
fn merge(l: &mut Limits, u: &Update) -> Result<()> {
    if let Some(memory) = u.memory {
        // Unset at create means docker's default, twice the memory.
        let swap = u
            .memory_swap
            .or(l.memory_swap)
            .or(l.memory.map(|m| 2 * m as i64));
        if let Some(swap) = swap.filter(|s| *s > 0) {
            if u.memory_swap.is_none() && memory as i64 > swap {
                bail!(
                    "Memory limit should be smaller than already set memoryswap limit, \
                     update the memoryswap at the same time"
                );
            }
        }
        l.memory = Some(memory);
    }
    if let Some(swap) = u.memory_swap {
        if l.memory.is_none() {
            bail!("You should always set the Memory limit when using Memoryswap limit");
        }
        l.memory_swap = Some(swap);
    }
    if let Some(cpus) = u.cpus {
        if l.cpu_period.is_some() || l.cpu_quota.is_some() {
            bail!("Conflicting options: Nano CPUs and CPU Period cannot both be set");
        }
        l.cpus = Some(cpus);
    }
    if u.cpu_shares.is_some() {
        l.cpu_shares = u.cpu_shares;
    }
    // dockerd's rules: --cpus and the raw period/quota exclude each other,
    // whichever was set first.
    let nano = l.cpus.is_some_and(|c| c > 0.0);
    if u.cpu_period.is_some_and(|p| p > 0) && nano {
        bail!("Conflicting options: CPU Period cannot be updated as NanoCPUs has already been set");
    }
    if u.cpu_quota.is_some_and(|q| q > 0) && nano {
        bail!("Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set");
    }
    if u.cpu_period.is_some() {
        l.cpu_period = u.cpu_period;
    }
    if u.cpu_quota.is_some() {
        l.cpu_quota = u.cpu_quota;
    }
    if u.cpuset_cpus.is_some() {
        l.cpuset_cpus = u.cpuset_cpus.clone();
    }
    if u.cpuset_mems.is_some() {
        l.cpuset_mems = u.cpuset_mems.clone();
    }
    if u.pids.is_some() {
        l.pids = u.pids;
    }
    if u.memory_reservation.is_some() {
        l.memory_reservation = u.memory_reservation;
    }
    if u.blkio_weight.is_some() {
        l.blkio_weight = u.blkio_weight;
    }
    Ok(())
}

/// Lab 03's limits holding only the knobs whose value changed (memory and
/// its swap go together: v1 keeps memory <= memory+swap at every moment).
fn changed_knobs(old: &Limits, new: &Limits) -> cgroups::Limits {
    let lab = new.to_lab();
    let mut out = cgroups::Limits::default();
    if old.cpus != new.cpus {
        out.cpus = lab.cpus;
    }
    if old.cpu_shares != new.cpu_shares {
        out.cpu_shares = lab.cpu_shares;
    }
    if old.memory != new.memory || old.memory_swap != new.memory_swap {
        out.memory = lab.memory;
        out.memory_swap = lab.memory_swap;
    }
    if old.pids != new.pids {
        out.pids = lab.pids;
    }
    // The period and the quota share a file on v2 (`cpu.max`): both go.
    if old.cpu_period != new.cpu_period || old.cpu_quota != new.cpu_quota {
        out.cpu_period = lab.cpu_period;
        out.cpu_quota = lab.cpu_quota;
    }
    if old.cpuset_cpus != new.cpuset_cpus {
        out.cpuset_cpus = lab.cpuset_cpus.clone();
    }
    if old.cpuset_mems != new.cpuset_mems {
        out.cpuset_mems = lab.cpuset_mems.clone();
    }
    if old.memory_reservation != new.memory_reservation {
        out.more.memory_reservation = lab.more.memory_reservation;
    }
    if old.blkio_weight != new.blkio_weight {
        out.more.blkio_weight = lab.more.blkio_weight;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_above_the_swap_already_set_needs_the_swap_too() {
        let mut l = Limits {
            memory: Some(32 << 20),
            memory_swap: Some(64 << 20),
            ..Default::default()
        };
        let up = Update {
            memory: Some(100 << 20),
            ..Default::default()
        };
        let e = merge(&mut l.clone(), &up).unwrap_err().to_string();
        assert!(e.starts_with("Memory limit should be smaller"), "{e}");
        let both = Update {
            memory_swap: Some(200 << 20),
            ..up
        };
        merge(&mut l, &both).unwrap();
        assert_eq!(
            (l.memory, l.memory_swap),
            (Some(100 << 20), Some(200 << 20))
        );
        let changed = changed_knobs(&Limits::default(), &l);
        assert_eq!(changed.memory, Some(100 << 20));
        assert_eq!(changed.cpus, None);
    }
}
