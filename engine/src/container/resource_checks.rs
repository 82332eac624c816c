//! dockerd's checks of the rarer resource settings: `--memory-reservation`,
//! the block I/O weights and IOPS, real-time CPU and `--device-cgroup-rule`.
//!
//! dockerd asks what the kernel offers first (lab 03's [`cgroups::Support`],
//! read from each hierarchy's root files on v1, from the controllers on v2):
//! a knob the host lacks is *discarded with a warning* and the container is
//! made without it, except real-time CPU, which is refused. Then a value out
//! of range is refused, in dockerd's words and order.

use anyhow::{bail, Result};
use lab03_cgroups as cgroups;

use super::config::{ContainerConfig, Limits};

/// dockerd's warnings, word for word.
const NO_RESERVATION: &str = "Your kernel does not support memory soft limit capabilities or \
     the cgroup is not mounted. Limitation discarded.";
const NO_READ_IOPS: &str = "Your kernel does not support IOPS Block read limit or the cgroup \
     is not mounted. Block I/O IOPS read limit discarded.";
const NO_WRITE_IOPS: &str = "Your kernel does not support IOPS Block write limit or the cgroup \
     is not mounted. Block I/O IOPS write limit discarded.";

/// Whether any of this module's settings is given (then the host is asked).
fn wanted(l: &Limits, c: &ContainerConfig) -> bool {
    l.memory_reservation.is_some_and(|m| m > 0)
        || l.blkio_weight.is_some_and(|w| w > 0)
        || !l.blkio_weight_device.is_empty()
        || !l.device_read_iops.is_empty()
        || !l.device_write_iops.is_empty()
        || l.cpu_rt_period.is_some_and(|p| p != 0)
        || l.cpu_rt_runtime.is_some_and(|r| r != 0)
        || !c.device_cgroup_rules.is_empty()
}

/// The CLI's pattern for a device cgroup rule, `^[acb] ([0-9]+|\*):([0-9]+|\*) [rwm]{1,3}$`.
pub fn valid_device_cgroup_rule(rule: &str) -> bool {
    let number = |s: &str| s == "*" || (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()));
    let words: Vec<&str> = rule.split(' ').collect();
    let [kind, numbers, access] = words[..] else {
        return false;
    };
    let Some((major, minor)) = numbers.split_once(':') else {
        return false;
    };
    matches!(kind, "a" | "b" | "c")
        && number(major)
        && number(minor)
        && (1..=3).contains(&access.len())
        && access.bytes().all(|b| matches!(b, b'r' | b'w' | b'm'))
}

// ANCHOR: more_settings
/// dockerd's `verifyPlatformContainerResources` and `validateResources`
/// for these settings: the knobs this host lacks are dropped from `config`
/// (what `inspect` then shows, as docker's does), with the warnings
/// returned; a bad value is an error.
pub fn more_settings(config: &mut ContainerConfig) -> Result<Vec<String>> {
    let mut warnings = Vec::new();
    if !wanted(&config.limits, config) {
        return Ok(warnings);
    }
    for rule in &config.device_cgroup_rules {
        if !valid_device_cgroup_rule(rule) {
            bail!("invalid device cgroup rule format: '{rule}'");
        }
    }
    let have = cgroups::Support::of(&cgroups::detect()?);
    let l = &mut config.limits;
    let reservation = l.memory_reservation.unwrap_or(0);
    if reservation > 0 && !have.memory_reservation {
        warnings.push(NO_RESERVATION.to_string());
        l.memory_reservation = None;
    } else if reservation > 0 {
        if reservation < cgroups::MIN_MEMORY {
            bail!("Minimum memory reservation allowed is 6MB");
        }
        if l.memory.is_some_and(|m| m > 0 && m < reservation) {
            bail!("Minimum memory limit can not be less than memory reservation limit, see usage");
        }
    }
    let weight = l.blkio_weight.unwrap_or(0);
    if weight > 0 && !have.blkio_weight {
        warnings.push(cgroups::more_limits::NO_WEIGHT.to_string());
        l.blkio_weight = None;
    } else if weight > 0 && !(10..=1000).contains(&weight) {
        bail!("Range of blkio weight is from 10 to 1000");
    }
    if !l.blkio_weight_device.is_empty() && !have.blkio_weight_device {
        warnings.push(cgroups::more_limits::NO_WEIGHT_DEVICE.to_string());
        l.blkio_weight_device.clear();
    }
    if !l.device_read_iops.is_empty() && !have.read_iops {
        warnings.push(NO_READ_IOPS.to_string());
        l.device_read_iops.clear();
    }
    if !l.device_write_iops.is_empty() && !have.write_iops {
        warnings.push(NO_WRITE_IOPS.to_string());
        l.device_write_iops.clear();
    }
    let (period, runtime) = (l.cpu_rt_period.unwrap_or(0), l.cpu_rt_runtime.unwrap_or(0));
    if period > 0 && !have.cpu_rt_period {
        bail!("Your kernel does not support cgroup cpu real-time period");
    }
    if runtime > 0 && !have.cpu_rt_runtime {
        bail!("Your kernel does not support cgroup cpu real-time runtime");
    }
    if period != 0 && runtime != 0 && runtime > period {
        bail!("cpu real-time runtime cannot be higher than cpu real-time period");
    }
    Ok(warnings)
}
// ANCHOR_END: more_settings

/// The kernel's files name a device by its numbers: found at create, from
/// the node, for each weight and IOPS device (as for `--device-read-bps`).
pub fn resolve_more_devices(l: &mut Limits) -> Result<()> {
    for t in l
        .device_read_iops
        .iter_mut()
        .chain(l.device_write_iops.iter_mut())
    {
        let found = cgroups::Throttle::for_device(std::path::Path::new(&t.path), t.rate)?;
        (t.major, t.minor) = (found.major, found.minor);
    }
    for w in &mut l.blkio_weight_device {
        let found = cgroups::Throttle::for_device(std::path::Path::new(&w.path), 0)?;
        (w.major, w.minor) = (found.major, found.minor);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_cgroup_rules_match_the_clis_pattern() {
        for good in ["c 1:3 rwm", "b *:* m", "a *:* rwm", "c 136:* rw"] {
            assert!(valid_device_cgroup_rule(good), "{good}");
        }
        for bad in [
            "c 1:3",
            "x 1:3 r",
            "c 1:3 rwmr",
            "c 1-3 r",
            "c  1:3 r",
            "c 1:3 q",
            "c :3 r",
        ] {
            assert!(!valid_device_cgroup_rule(bad), "{bad}");
        }
    }
}
