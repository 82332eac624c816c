//! `run`/`create` resource flags beyond the common ones: a memory
//! reservation, block I/O weights and IOPS, real-time CPU and device cgroup
//! rules (flattened into [`crate::cli::RunArgs`]), and the two of them that
//! `update` takes. Each value is checked here with docker's CLI words;
//! dockerd's own checks are the engine's (`container::more_settings`).

use anyhow::{anyhow, Result};
use clap::Args;
use dockyard::container::{self, ContainerConfig, ThrottleDevice, WeightDevice};

use crate::flag_values::{mem_bytes, FlagValue};

#[derive(Args, Debug, Default, Clone)]
pub struct ResourceFlags {
    /// Memory soft limit.
    #[arg(long = "memory-reservation", value_name = "BYTES", value_parser = mem_bytes)]
    pub memory_reservation: Option<i64>,
    /// Block IO (relative weight), between 10 and 1000, or 0 to disable (default 0).
    #[arg(long = "blkio-weight", value_name = "UINT16", value_parser = uint16)]
    pub blkio_weight: Option<u16>,
    /// Block IO weight (relative device weight), e.g. /dev/sda:300.
    #[arg(long = "blkio-weight-device", value_name = "PATH:WEIGHT")]
    pub blkio_weight_device: Vec<String>,
    /// Limit read rate (IO per second) from a device, e.g. /dev/sda:100.
    #[arg(long = "device-read-iops", value_name = "PATH:RATE")]
    pub device_read_iops: Vec<String>,
    /// Limit write rate (IO per second) to a device, e.g. /dev/sda:100.
    #[arg(long = "device-write-iops", value_name = "PATH:RATE")]
    pub device_write_iops: Vec<String>,
    /// Limit CPU real-time period in microseconds.
    #[arg(long = "cpu-rt-period", value_name = "INT", value_parser = int64)]
    pub cpu_rt_period: Option<i64>,
    /// Limit CPU real-time runtime in microseconds.
    #[arg(long = "cpu-rt-runtime", value_name = "INT", value_parser = int64, allow_hyphen_values = true)]
    pub cpu_rt_runtime: Option<i64>,
    /// Add a rule to the cgroup allowed devices list, e.g. 'c 1:3 rwm'.
    #[arg(long = "device-cgroup-rule", value_name = "RULE")]
    pub device_cgroup_rule: Vec<String>,
}

/// `update`'s share of them: the two docker's `update` takes.
#[derive(Args, Debug, Default, Clone)]
pub struct UpdateResourceFlags {
    /// Memory soft limit.
    #[arg(long = "memory-reservation", value_name = "BYTES", value_parser = mem_bytes)]
    pub memory_reservation: Option<i64>,
    /// Block IO (relative weight), between 10 and 1000, or 0 to disable (default 0).
    #[arg(long = "blkio-weight", value_name = "UINT16", value_parser = uint16)]
    pub blkio_weight: Option<u16>,
}

/// The flags that client mode (`-H`) sends: see [`body`].
pub const CARRIED: [&str; 8] = [
    "--memory-reservation",
    "--blkio-weight",
    "--blkio-weight-device",
    "--device-read-iops",
    "--device-write-iops",
    "--cpu-rt-period",
    "--cpu-rt-runtime",
    "--device-cgroup-rule",
];

/// docker's CLI error for a flag's value.
fn invalid(value: &str, flag: &str, why: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("invalid argument \"{value}\" for \"{flag}\" flag: {why}")
}

/// `--memory-reservation 32m` in bytes: docker's `MemBytes`, where 0 is
/// "not set".
pub fn memory_reservation(bytes: Option<i64>) -> Option<u64> {
    bytes.filter(|b| *b > 0).map(|b| b as u64)
}

/// A uint16 flag, refused in the words of Go's `strconv.ParseUint`, as
/// docker's CLI (pflag) refuses it.
fn uint16(value: &str) -> Result<u16, FlagValue> {
    match value.parse::<u64>() {
        Ok(n) => u16::try_from(n).map_err(|_| {
            FlagValue(format!(
                "strconv.ParseUint: parsing {value:?}: value out of range"
            ))
        }),
        Err(_) => Err(FlagValue(format!(
            "strconv.ParseUint: parsing {value:?}: invalid syntax"
        ))),
    }
}

/// An int64 flag, refused in the words of Go's `strconv.ParseInt`.
fn int64(value: &str) -> Result<i64, FlagValue> {
    value.parse::<i64>().map_err(|e| {
        let why = match e.kind() {
            std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
                "value out of range"
            }
            _ => "invalid syntax",
        };
        FlagValue(format!("strconv.ParseInt: parsing {value:?}: {why}"))
    })
}

/// `PATH:VALUE` with a path under /dev (the CLI's `ValidateWeightDevice`
/// and `ValidateThrottleIOpsDevice` both start so).
fn device_value<'a>(v: &'a str, flag: &str) -> Result<(&'a str, &'a str)> {
    match v.split_once(':') {
        Some((p, _)) if !p.starts_with("/dev/") && !p.is_empty() => {
            Err(invalid(v, flag, format!("bad format for device path: {v}")))
        }
        Some((p, rest)) if !p.is_empty() => Ok((p, rest)),
        _ => Err(invalid(v, flag, format!("bad format: {v}"))),
    }
}

/// `--blkio-weight-device /dev/sda:300`: a weight of 10 to 1000, or 0.
fn weight_devices(specs: &[String]) -> Result<Vec<WeightDevice>> {
    let flag = "--blkio-weight-device";
    specs
        .iter()
        .map(|v| {
            let (path, weight) = device_value(v, flag)?;
            let bad = || invalid(v, flag, format!("invalid weight for device: {v}"));
            let weight: u16 = weight.parse().map_err(|_| bad())?;
            if weight > 0 && !(10..=1000).contains(&weight) {
                return Err(bad());
            }
            Ok(WeightDevice {
                path: path.to_string(),
                weight,
                ..Default::default()
            })
        })
        .collect()
}

/// `--device-read-iops /dev/sda:100`: a whole number of requests a second.
fn iops_devices(specs: &[String], flag: &str) -> Result<Vec<ThrottleDevice>> {
    specs
        .iter()
        .map(|v| {
            let (path, rate) = device_value(v, flag)?;
            let rate: u64 = rate.parse().map_err(|_| {
                let why = format!(
                    "invalid rate for device: {v}. The correct format is \
                     <device-path>:<number>. Number must be a positive integer"
                );
                invalid(v, flag, why)
            })?;
            Ok(ThrottleDevice {
                path: path.to_string(),
                rate,
                ..Default::default()
            })
        })
        .collect()
}

/// Check the flags and put them into `config`.
pub fn apply(f: &ResourceFlags, config: &mut ContainerConfig) -> Result<()> {
    for rule in &f.device_cgroup_rule {
        if !container::valid_device_cgroup_rule(rule) {
            let why = format!("invalid device cgroup format '{rule}'");
            return Err(invalid(rule, "--device-cgroup-rule", why));
        }
    }
    let l = &mut config.limits;
    l.memory_reservation = memory_reservation(f.memory_reservation);
    l.blkio_weight = f.blkio_weight.filter(|w| *w > 0);
    l.blkio_weight_device = weight_devices(&f.blkio_weight_device)?;
    l.device_read_iops = iops_devices(&f.device_read_iops, "--device-read-iops")?;
    l.device_write_iops = iops_devices(&f.device_write_iops, "--device-write-iops")?;
    l.cpu_rt_period = f.cpu_rt_period.filter(|p| *p != 0);
    l.cpu_rt_runtime = f.cpu_rt_runtime.filter(|r| *r != 0);
    config.device_cgroup_rules = f.device_cgroup_rule.clone();
    Ok(())
}

/// The `HostConfig` fields of `POST /containers/create` for these flags,
/// as docker's CLI sends them (client mode).
pub fn host_config(f: &ResourceFlags) -> Result<serde_json::Value> {
    let mut config = ContainerConfig::default();
    apply(f, &mut config)?;
    let l = &config.limits;
    let rates = |v: &[ThrottleDevice]| -> Vec<serde_json::Value> {
        v.iter()
            .map(|t| serde_json::json!({"Path": t.path, "Rate": t.rate}))
            .collect()
    };
    Ok(serde_json::json!({
        "MemoryReservation": l.memory_reservation.unwrap_or(0),
        "BlkioWeight": l.blkio_weight.unwrap_or(0),
        "BlkioWeightDevice": l.blkio_weight_device.iter()
            .map(|w| serde_json::json!({"Path": w.path, "Weight": w.weight}))
            .collect::<Vec<_>>(),
        "BlkioDeviceReadIOps": rates(&l.device_read_iops),
        "BlkioDeviceWriteIOps": rates(&l.device_write_iops),
        "CpuRealtimePeriod": l.cpu_rt_period.unwrap_or(0),
        "CpuRealtimeRuntime": l.cpu_rt_runtime.unwrap_or(0),
        "DeviceCgroupRules": config.device_cgroup_rules,
    }))
}
