//! The resource fields of `POST /containers/create`'s `HostConfig` beyond
//! the common ones: `MemoryReservation`, the block I/O weights, rates and
//! IOPS, `CpuRealtimePeriod`/`CpuRealtimeRuntime`, `DeviceCgroupRules`,
//! `OomKillDisable` and `MemorySwappiness`, as docker's CLI sends
//! `--memory-reservation` and the rest. The values are checked by the
//! core's `create`, as dockerd checks them; what this host cannot honour
//! comes back in the answer's `Warnings`.

use dockyard::container::{ContainerConfig, ThrottleDevice, WeightDevice};
use serde_json::Value;

/// `[{"Path": "/dev/sda", "Rate": 100}]`.
fn rates(v: &Value) -> Vec<ThrottleDevice> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|t| ThrottleDevice {
            path: t["Path"].as_str().unwrap_or_default().to_string(),
            rate: t["Rate"].as_u64().unwrap_or(0),
            ..Default::default()
        })
        .collect()
}

/// Read them from `h`, the body's `HostConfig`, into `config`.
pub(super) fn read(h: &Value, config: &mut ContainerConfig) {
    let l = &mut config.limits;
    l.memory_reservation = h["MemoryReservation"].as_u64().filter(|&n| n > 0);
    // A uint16 in docker's API: a larger number is not one.
    l.blkio_weight = h["BlkioWeight"]
        .as_u64()
        .filter(|&n| n > 0)
        .map(|n| u16::try_from(n).unwrap_or(u16::MAX));
    l.blkio_weight_device = h["BlkioWeightDevice"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|w| WeightDevice {
            path: w["Path"].as_str().unwrap_or_default().to_string(),
            weight: w["Weight"]
                .as_u64()
                .map_or(0, |n| n.min(u16::MAX.into()) as u16),
            ..Default::default()
        })
        .collect();
    l.device_read_bps = rates(&h["BlkioDeviceReadBps"]);
    l.device_write_bps = rates(&h["BlkioDeviceWriteBps"]);
    l.device_read_iops = rates(&h["BlkioDeviceReadIOps"]);
    l.device_write_iops = rates(&h["BlkioDeviceWriteIOps"]);
    l.cpu_rt_period = h["CpuRealtimePeriod"].as_i64().filter(|&n| n != 0);
    l.cpu_rt_runtime = h["CpuRealtimeRuntime"].as_i64().filter(|&n| n != 0);
    // `--oom-kill-disable`: a pointer in docker's API, where null and false
    // both leave the OOM killer on.
    l.oom_kill_disable = h["OomKillDisable"].as_bool() == Some(true);
    // docker's CLI sends -1 (or null) without `--memory-swappiness`: the
    // kernel's default, not a value to check.
    l.memory_swappiness = h["MemorySwappiness"].as_i64().filter(|&n| n != -1);
    config.device_cgroup_rules = h["DeviceCgroupRules"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r.as_str().map(String::from))
        .collect();
}
