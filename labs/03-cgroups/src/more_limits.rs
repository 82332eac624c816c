//! # Softer knobs: a memory reservation, block I/O weights and IOPS, real-time CPU
//!
//! Docker has a few more resource flags, each again one cgroup file, but
//! whose file may be missing on a given kernel: a block I/O *weight* only
//! exists with an I/O scheduler that shares by weight (BFQ, or CFQ before
//! Linux 5.0), and real-time CPU time only with `CONFIG_RT_GROUP_SCHED`.
//!
//! ```text
//! echo 33554432 > /sys/fs/cgroup/memory/dockyard/c1/memory.soft_limit_in_bytes # --memory-reservation 32m (v1)
//! echo 33554432 > /sys/fs/cgroup/dockyard/c1/memory.low                         # the same, v2
//! echo 500 > /sys/fs/cgroup/blkio/dockyard/c1/blkio.weight                      # --blkio-weight 500 (v1, CFQ)
//! echo 500 > /sys/fs/cgroup/dockyard/c1/io.bfq.weight                           # v2 with BFQ
//! echo 4950 > /sys/fs/cgroup/dockyard/c1/io.weight                              # v2 without: 1..10000
//! echo "8:0 100" > /sys/fs/cgroup/blkio/dockyard/c1/blkio.throttle.read_iops_device # --device-read-iops
//! echo "8:0 riops=100" > /sys/fs/cgroup/dockyard/c1/io.max                      # the same, v2
//! echo 950000 > /sys/fs/cgroup/cpu/dockyard/c1/cpu.rt_period_us                 # --cpu-rt-period (v1 only)
//! ```
//!
//! A soft limit (`memory.low`, "reservation") is not a cap: the kernel
//! reclaims from the group only after other groups have given back what
//! they use above theirs. A weight shares a disk's time among groups that
//! compete for it, as `cpu.weight` shares CPU time; an IOPS limit caps the
//! number of requests per second, whatever their size.
//!
//! Where the kernel lacks a file, docker warns and goes on without it
//! (the words are dockerd's): so do `apply_v1` and `apply_v2` below.

use std::path::Path;

use crate::{write_file, Host, Throttle, Version};

/// dockerd's warning when there is no weight file.
pub const NO_WEIGHT: &str =
    "Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded.";
/// dockerd's warning when there is no per-device weight file.
pub const NO_WEIGHT_DEVICE: &str = "Your kernel does not support Block I/O weight_device or the \
     cgroup is not mounted. Weight-device discarded.";

/// A weight (10..=1000) on one block device, by its numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightDevice {
    pub major: u64,
    pub minor: u64,
    pub weight: u16,
}

/// The knobs of this module. `None` or empty leaves the kernel's default.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MoreLimits {
    /// `--memory-reservation` in bytes (v1 `memory.soft_limit_in_bytes`,
    /// v2 `memory.low`).
    pub memory_reservation: Option<u64>,
    /// `--blkio-weight` (10..=1000; v1 `blkio.weight` or `blkio.bfq.weight`,
    /// v2 `io.bfq.weight`, or `io.weight` on its 1..=10000 scale).
    pub blkio_weight: Option<u16>,
    /// `--blkio-weight-device` (v1 `blkio.weight_device` or
    /// `blkio.bfq.weight_device`, v2 `io.bfq.weight`).
    pub blkio_weight_device: Vec<WeightDevice>,
    /// `--device-read-iops` (v1 `blkio.throttle.read_iops_device`, v2
    /// `io.max` `riops=`); the throttle's rate is in requests per second.
    pub device_read_iops: Vec<Throttle>,
    /// `--device-write-iops` (`write_iops_device`, `wiops=`).
    pub device_write_iops: Vec<Throttle>,
    /// `--cpu-rt-period` in microseconds (v1 `cpu.rt_period_us`).
    pub cpu_rt_period: Option<u64>,
    /// `--cpu-rt-runtime` in microseconds per period (v1
    /// `cpu.rt_runtime_us`): real-time tasks' CPU time.
    pub cpu_rt_runtime: Option<i64>,
}

impl MoreLimits {
    /// Whether the block I/O controller has anything to do.
    pub fn wants_io(&self) -> bool {
        self.blkio_weight.is_some()
            || !self.blkio_weight_device.is_empty()
            || !self.device_read_iops.is_empty()
            || !self.device_write_iops.is_empty()
    }

    /// Whether the cpu controller has anything to do.
    pub fn wants_cpu(&self) -> bool {
        self.cpu_rt_period.is_some() || self.cpu_rt_runtime.is_some()
    }
}

/// Which of these knobs this host's kernel has, read as dockerd's sysinfo
/// reads it: on v1 from the files of each hierarchy's root, on v2 from the
/// controllers the root offers (v2 has no real-time CPU files at all).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Support {
    pub memory_reservation: bool,
    pub blkio_weight: bool,
    pub blkio_weight_device: bool,
    pub read_iops: bool,
    pub write_iops: bool,
    pub cpu_rt_period: bool,
    pub cpu_rt_runtime: bool,
}

impl Support {
    pub fn of(host: &Host) -> Support {
        if host.version() == Version::V2 {
            let has = |c: &str| host.v2_controllers.iter().any(|x| x == c);
            return Support {
                memory_reservation: has("memory"),
                blkio_weight: has("io"),
                blkio_weight_device: has("io"),
                read_iops: has("io"),
                write_iops: has("io"),
                cpu_rt_period: false,
                cpu_rt_runtime: false,
            };
        }
        let root_has = |controller: &str, files: &[&str]| {
            host.controller_root(controller)
                .is_some_and(|root| files.iter().any(|f| root.join(f).exists()))
        };
        Support {
            memory_reservation: root_has("memory", &["memory.soft_limit_in_bytes"]),
            blkio_weight: root_has("blkio", &["blkio.weight", "blkio.bfq.weight"]),
            blkio_weight_device: root_has(
                "blkio",
                &["blkio.weight_device", "blkio.bfq.weight_device"],
            ),
            read_iops: root_has("blkio", &["blkio.throttle.read_iops_device"]),
            write_iops: root_has("blkio", &["blkio.throttle.write_iops_device"]),
            cpu_rt_period: root_has("cpu", &["cpu.rt_period_us"]),
            cpu_rt_runtime: root_has("cpu", &["cpu.rt_runtime_us"]),
        }
    }
}

// ANCHOR: io_weight
/// runc's conversion from a v1 block I/O weight (10..=1000) to v2
/// `io.weight` (1..=10000): the straight line through both ranges' ends,
/// so the v1 default 500 becomes 4950.
pub fn blkio_weight_to_io_weight(weight: u16) -> u64 {
    1 + (u64::from(weight).clamp(10, 1000) - 10) * 9999 / 990
}
// ANCHOR_END: io_weight

/// The first of `names` that `dir` has: which weight file this kernel's
/// I/O scheduler offers (BFQ's own, else the generic one).
fn first_file<'a>(dir: &Path, names: &[&'a str]) -> Option<&'a str> {
    names.iter().copied().find(|f| dir.join(f).exists())
}

/// Write the v1 files: `memory`, `blkio` and `cpu` are the group's
/// directories in those hierarchies, where it has them.
pub(crate) fn apply_v1(
    memory: Option<&Path>,
    blkio: Option<&Path>,
    cpu: Option<&Path>,
    m: &MoreLimits,
    warnings: &mut Vec<String>,
) -> anyhow::Result<()> {
    if let (Some(dir), Some(bytes)) = (memory, m.memory_reservation) {
        write_file(
            dir,
            "memory.soft_limit_in_bytes",
            &bytes.to_string(),
            "memory",
        )?;
    }
    if let Some(dir) = blkio {
        if let Some(weight) = m.blkio_weight {
            match first_file(dir, &["blkio.bfq.weight", "blkio.weight"]) {
                Some(file) => write_file(dir, file, &weight.to_string(), "blkio")?,
                None => warnings.push(NO_WEIGHT.into()),
            }
        }
        if !m.blkio_weight_device.is_empty() {
            match first_file(dir, &["blkio.bfq.weight_device", "blkio.weight_device"]) {
                Some(file) => {
                    for w in &m.blkio_weight_device {
                        let rule = format!("{}:{} {}", w.major, w.minor, w.weight);
                        write_file(dir, file, &rule, "blkio")?;
                    }
                }
                None => warnings.push(NO_WEIGHT_DEVICE.into()),
            }
        }
        for (file, rules) in [
            ("blkio.throttle.read_iops_device", &m.device_read_iops),
            ("blkio.throttle.write_iops_device", &m.device_write_iops),
        ] {
            for t in rules {
                write_file(
                    dir,
                    file,
                    &format!("{}:{} {}", t.major, t.minor, t.rate),
                    "blkio",
                )?;
            }
        }
    }
    if let Some(dir) = cpu {
        // The period first: a runtime is checked against the period in
        // force (runtime <= period), and against what the parent grants.
        if let Some(period) = m.cpu_rt_period {
            write_file(dir, "cpu.rt_period_us", &period.to_string(), "cpu")?;
        }
        if let Some(runtime) = m.cpu_rt_runtime {
            write_file(dir, "cpu.rt_runtime_us", &runtime.to_string(), "cpu")?;
        }
    }
    Ok(())
}

/// Write the v2 files into the group's one directory. v2 has no real-time
/// CPU files: the engine refuses those flags there, as docker does.
pub(crate) fn apply_v2(
    dir: &Path,
    m: &MoreLimits,
    warnings: &mut Vec<String>,
) -> anyhow::Result<()> {
    if let Some(bytes) = m.memory_reservation {
        write_file(dir, "memory.low", &bytes.to_string(), "memory")?;
    }
    let bfq = dir.join("io.bfq.weight").exists();
    if let Some(weight) = m.blkio_weight {
        if bfq {
            write_file(dir, "io.bfq.weight", &weight.to_string(), "io")?;
        } else if dir.join("io.weight").exists() {
            let w = blkio_weight_to_io_weight(weight).to_string();
            write_file(dir, "io.weight", &w, "io")?;
        } else {
            warnings.push(NO_WEIGHT.into());
        }
    }
    if !m.blkio_weight_device.is_empty() {
        if !bfq {
            // Only BFQ takes a weight per device.
            warnings.push(NO_WEIGHT_DEVICE.into());
        }
        for w in m.blkio_weight_device.iter().filter(|_| bfq) {
            let rule = format!("{}:{} {}", w.major, w.minor, w.weight);
            write_file(dir, "io.bfq.weight", &rule, "io")?;
        }
    }
    // io.max: one line per device; a key left out keeps its value.
    for (key, rules) in [
        ("riops", &m.device_read_iops),
        ("wiops", &m.device_write_iops),
    ] {
        for t in rules {
            let rule = format!("{}:{} {key}={}", t.major, t.minor, t.rate);
            write_file(dir, "io.max", &rule, "io")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::{FakeV1, FakeV2, FAKE};
    use crate::{Cgroup, Host, Layout, Limits};

    fn read(p: std::path::PathBuf) -> String {
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    fn limits() -> Limits {
        let t = |rate| Throttle {
            major: 8,
            minor: 0,
            rate,
        };
        Limits {
            more: MoreLimits {
                memory_reservation: Some(32 << 20),
                blkio_weight: Some(500),
                blkio_weight_device: vec![WeightDevice {
                    major: 8,
                    minor: 0,
                    weight: 300,
                }],
                device_read_iops: vec![t(100)],
                device_write_iops: vec![t(50)],
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn v2_files_are_memory_low_io_weight_and_io_max() {
        let fake = FakeV2::new("cpu io memory pids");
        let host = Host {
            layout: Layout::V2,
            v1: Vec::new(),
            v2_mount: Some(fake.root().to_path_buf()),
            v2_controllers: vec!["cpu".into(), "io".into(), "memory".into(), "pids".into()],
        };
        let cg = Cgroup::create_with(&host, &FAKE, "dockyard", "c1", &limits()).unwrap();
        let dir = fake.root().join("dockyard/c1");
        assert_eq!(read(dir.join("memory.low")), (32u64 << 20).to_string());
        // No BFQ: the weight goes to io.weight on its own scale, and a weight
        // per device has nowhere to go (docker's warning).
        assert_eq!(read(dir.join("io.weight")), "4950");
        assert!(!dir.join("io.bfq.weight").exists());
        assert_eq!(cg.warnings, vec![NO_WEIGHT_DEVICE.to_string()]);
        // The fake keeps the last write; the kernel merges the keys per device.
        assert_eq!(read(dir.join("io.max")), "8:0 wiops=50");
        assert!(read(fake.root().join("dockyard/cgroup.subtree_control")).contains("+io"));
    }

    #[test]
    fn v1_files_and_the_warnings_of_a_kernel_without_weights() {
        let fake = FakeV1::new(&["cpu,cpuacct", "memory", "pids", "blkio"], true);
        let host = Host {
            layout: Layout::V1,
            v1: fake.mounts.clone(),
            v2_mount: None,
            v2_controllers: Vec::new(),
        };
        let cg = Cgroup::create_with(&host, &FAKE, "dockyard", "c1", &limits()).unwrap();
        let root = fake.root();
        assert_eq!(
            read(root.join("memory/dockyard/c1/memory.soft_limit_in_bytes")),
            (32u64 << 20).to_string()
        );
        let blkio = root.join("blkio/dockyard/c1");
        assert_eq!(
            read(blkio.join("blkio.throttle.read_iops_device")),
            "8:0 100"
        );
        assert_eq!(
            read(blkio.join("blkio.throttle.write_iops_device")),
            "8:0 50"
        );
        // The fake blkio has no weight files, as a kernel without BFQ/CFQ.
        assert!(!blkio.join("blkio.weight").exists());
        assert_eq!(
            cg.warnings,
            vec![NO_WEIGHT.to_string(), NO_WEIGHT_DEVICE.to_string()]
        );
    }

    #[test]
    fn blkio_weight_maps_onto_io_weight_ends_and_default() {
        assert_eq!(blkio_weight_to_io_weight(10), 1);
        assert_eq!(blkio_weight_to_io_weight(1000), 10_000);
        assert_eq!(blkio_weight_to_io_weight(500), 4950);
    }
}
