//! Resource flags beyond `--cpus`/`-m`/`--pids-limit`, in the files lab 03
//! says carry them on this host's layout, and seen from inside the
//! container: `--cpuset-cpus` pins the container to CPUs, which its own
//! `/proc/self/status` (`Cpus_allowed_list`) shows.
//!
//! Each test asks lab 03 for the layout ([`lab03_cgroups::detect`]), so the
//! same test runs on this hybrid host and in the pure v2 tier
//! (`scripts/v2-tier`).

use crate::common::{cgroup_host as host, read_trimmed as read};
use dockyard_e2e::dockyard::{leftover_cgroups, text, Dockyard as Dy};
use lab03_cgroups::{Knob, Version};

#[test]
fn cpuset_cpus_pins_the_container_and_is_in_its_cpuset_files() {
    let dy = Dy::new();
    let host = host();
    // The last online CPU: a pin that differs from the host's whole set
    // whenever it has more than one.
    let online = lab03_cgroups::online(false);
    let last = *lab03_cgroups::parse_list(&online).unwrap().last().unwrap();
    let cpu = last.to_string();
    dy.ok(&[
        "run",
        "-d",
        "--name",
        "pin",
        "--cpuset-cpus",
        &cpu,
        "--cpuset-mems",
        "0",
        "busybox",
        "sleep",
        "600",
    ]);
    dy.wait_for("pin", "{{.State.Status}}", "running");
    let id = dy.inspect("pin", "{{.Id}}");
    let file = |knob| {
        host.limit_file(knob, &dy.parent, &id)
            .unwrap_or_else(|| panic!("no {knob:?} file on {:?}", host.layout))
    };
    assert_eq!(read(&file(Knob::CpusetCpus)), cpu);
    assert_eq!(read(&file(Knob::CpusetMems)), "0");
    // The scheduler's view, from inside: the kernel's own affinity list.
    let status = dy.ok(&["exec", "pin", "cat", "/proc/self/status"]);
    let allowed = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap_or_else(|| panic!("no Cpus_allowed_list in:\n{status}"))
        .trim();
    assert_eq!(allowed, cpu);
    assert_eq!(dy.inspect("pin", "{{.HostConfig.CpusetCpus}}"), cpu);
    dy.ok(&["rm", "-f", "pin"]);
    assert!(leftover_cgroups(&dy.parent).is_empty());
}

#[test]
fn bad_cpuset_lists_are_refused_with_dockers_words_and_nothing_is_made() {
    let dy = Dy::new();
    let online = lab03_cgroups::online(false);
    for (flag, list, want) in [
        (
            "--cpuset-cpus",
            "0-x",
            "Invalid value 0-x for cpuset cpus: invalid format: 0-x".to_string(),
        ),
        (
            "--cpuset-cpus",
            "3-1",
            "Invalid value 3-1 for cpuset cpus: invalid format: 3-1".to_string(),
        ),
        (
            "--cpuset-cpus",
            "4095",
            format!("Requested CPUs are not available - requested 4095, available: {online}"),
        ),
        (
            "--cpuset-mems",
            "1023",
            format!(
                "Requested memory nodes are not available - requested 1023, available: {}",
                lab03_cgroups::online(true)
            ),
        ),
    ] {
        let err = dy.fails(125, &["run", flag, list, "busybox", "true"]);
        assert!(err.contains(&want), "{flag} {list}: {err}");
        let err = dy.fails(125, &["create", flag, list, "busybox", "true"]);
        assert!(err.contains(&want), "{flag} {list}: {err}");
    }
    assert_eq!(dy.ok(&["ps", "-aq"]), "");
    assert!(leftover_cgroups(&dy.parent).is_empty());
}

#[test]
fn cpu_period_and_quota_are_the_groups_cfs_bandwidth() {
    let dy = Dy::new();
    let host = host();
    dy.ok(&[
        "run",
        "-d",
        "--name",
        "cfs",
        "--cpu-period",
        "50000",
        "--cpu-quota",
        "25000",
        "busybox",
        "sleep",
        "600",
    ]);
    dy.wait_for("cfs", "{{.State.Status}}", "running");
    let id = dy.inspect("cfs", "{{.Id}}");
    let file = |knob| host.limit_file(knob, &dy.parent, &id).unwrap();
    match host.version() {
        Version::V1 => {
            assert_eq!(read(&file(Knob::CpuPeriod)), "50000");
            assert_eq!(read(&file(Knob::CpuQuota)), "25000");
        }
        Version::V2 => assert_eq!(read(&file(Knob::CpuQuota)), "25000 50000"),
    }
    assert_eq!(
        dy.inspect("cfs", "{{.HostConfig.CpuPeriod}} {{.HostConfig.CpuQuota}}"),
        "50000 25000"
    );
    // A period alone keeps the quota unlimited: -1 on v1, "max" on v2.
    dy.ok(&[
        "run",
        "-d",
        "--name",
        "open",
        "--cpu-period",
        "20000",
        "busybox",
        "sleep",
        "600",
    ]);
    let id = dy.inspect("open", "{{.Id}}");
    let file = |knob| host.limit_file(knob, &dy.parent, &id).unwrap();
    match host.version() {
        Version::V1 => {
            assert_eq!(read(&file(Knob::CpuPeriod)), "20000");
            assert_eq!(read(&file(Knob::CpuQuota)), "-1");
        }
        Version::V2 => assert_eq!(read(&file(Knob::CpuQuota)), "max 20000"),
    }
    dy.ok(&["rm", "-f", "cfs", "open"]);
    assert!(leftover_cgroups(&dy.parent).is_empty());
}

#[test]
fn cpu_period_and_quota_are_refused_as_dockerd_refuses_them() {
    let dy = Dy::new();
    for (args, want) in [
        (
            vec!["--cpus", "0.5", "--cpu-period", "50000"],
            "Conflicting options: Nano CPUs and CPU Period cannot both be set",
        ),
        (
            vec!["--cpus", "0.5", "--cpu-quota", "50000"],
            "Conflicting options: Nano CPUs and CPU Quota cannot both be set",
        ),
        (
            vec!["--cpu-period", "999"],
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)",
        ),
        (
            vec!["--cpu-period", "1000001"],
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)",
        ),
        (
            vec!["--cpu-quota", "999"],
            "CPU cfs quota can not be less than 1ms (i.e. 1000)",
        ),
    ] {
        let mut argv = vec!["create"];
        argv.extend(&args);
        argv.extend(["busybox", "true"]);
        let err = dy.fails(125, &argv);
        assert!(err.contains(want), "{args:?}: {err}");
    }
    assert_eq!(dy.ok(&["ps", "-aq"]), "");
}

#[test]
fn oom_kill_disable_and_swappiness_are_v1_memory_files_and_warned_away_on_v2() {
    let dy = Dy::new();
    let host = host();
    let out = dy.run(&[
        "run",
        "-d",
        "--name",
        "calm",
        "-m",
        "32m",
        "--oom-kill-disable",
        "--memory-swappiness",
        "7",
        "busybox",
        "sleep",
        "600",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    let id = dy.inspect("calm", "{{.Id}}");
    match host.version() {
        Version::V1 => {
            let dir = host.group_dir("memory", &dy.parent, &id).unwrap();
            let oom = read(&dir.join("memory.oom_control"));
            assert!(oom.lines().any(|l| l == "oom_kill_disable 1"), "{oom}");
            assert_eq!(read(&dir.join("memory.swappiness")), "7");
            assert_eq!(dy.inspect("calm", "{{.HostConfig.OomKillDisable}}"), "true");
            assert!(!stderr.contains("WARNING"), "{stderr}");
        }
        Version::V2 => {
            for w in [
                "WARNING: Your kernel does not support OomKillDisable. OomKillDisable discarded.",
                "WARNING: Your kernel does not support memory swappiness capabilities or the \
                 cgroup is not mounted. Memory swappiness discarded.",
            ] {
                assert!(stderr.contains(w), "{stderr}");
            }
            assert_eq!(
                dy.inspect("calm", "{{.HostConfig.OomKillDisable}}"),
                "false"
            );
        }
    }
    // Without a memory limit docker warns that nothing bounds the group.
    if host.version() == Version::V1 {
        let out = dy.run(&["create", "--oom-kill-disable", "busybox", "true"]);
        assert!(out.status.success());
        let err = text(&out.stderr);
        assert!(
            err.contains(
                "WARNING: OOM killer is disabled for the container, but no memory limit is set"
            ),
            "{err}"
        );
        let err = dy.fails(
            125,
            &["create", "--memory-swappiness", "101", "busybox", "true"],
        );
        assert!(
            err.contains("Invalid value: 101, valid memory swappiness range is 0-100"),
            "{err}"
        );
    }
    dy.ok(&["rm", "-f", "calm"]);
    dy.ok(&["container", "prune", "-f"]);
    assert!(leftover_cgroups(&dy.parent).is_empty());
}

/// A block device to put a rate on, by its `/dev` node: the one that holds
/// the test's data root, else (a data root on tmpfs, as in the v2 guest) the
/// first block device the kernel lists that has a node in /dev. A rate on it
/// is written, never measured (no I/O is done here).
pub(crate) fn data_root_disk(dy: &Dy) -> Option<String> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let dev = std::fs::metadata(dy.root.path()).unwrap().dev();
    let (major, minor) = (nix::sys::stat::major(dev), nix::sys::stat::minor(dev));
    let devname = |uevent: &str| {
        uevent
            .lines()
            .find_map(|l| l.strip_prefix("DEVNAME="))
            .map(|n| format!("/dev/{n}"))
    };
    let is_block = |node: &String| {
        std::fs::metadata(node)
            .map(|m| m.file_type().is_block_device())
            .unwrap_or(false)
    };
    if let Ok(uevent) = std::fs::read_to_string(format!("/sys/dev/block/{major}:{minor}/uevent")) {
        return devname(&uevent).filter(is_block);
    }
    let mut names: Vec<_> = std::fs::read_dir("/sys/class/block")
        .ok()?
        .flatten()
        .map(|e| e.path().join("uevent"))
        .collect();
    names.sort();
    names
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .filter_map(|u| devname(&u))
        .find(is_block)
}

#[test]
fn device_read_and_write_bps_are_the_groups_throttle_rules() {
    use std::os::unix::fs::MetadataExt;
    let dy = Dy::new();
    let host = host();
    let Some(disk) = data_root_disk(&dy) else {
        eprintln!("skipped: this kernel lists no block device with a node in /dev");
        return;
    };
    let rdev = std::fs::metadata(&disk).unwrap().rdev();
    let numbers = format!(
        "{}:{}",
        nix::sys::stat::major(rdev),
        nix::sys::stat::minor(rdev)
    );
    let read_flag = format!("{disk}:1mb");
    let write_flag = format!("{disk}:512k");
    dy.ok(&[
        "run",
        "-d",
        "--name",
        "slow",
        "--device-read-bps",
        &read_flag,
        "--device-write-bps",
        &write_flag,
        "busybox",
        "sleep",
        "600",
    ]);
    let id = dy.inspect("slow", "{{.Id}}");
    let file = |knob| host.limit_file(knob, &dy.parent, &id).unwrap();
    match host.version() {
        Version::V1 => {
            assert_eq!(
                read(&file(Knob::DeviceReadBps)),
                format!("{numbers} 1048576")
            );
            assert_eq!(
                read(&file(Knob::DeviceWriteBps)),
                format!("{numbers} 524288")
            );
        }
        Version::V2 => {
            let max = read(&file(Knob::DeviceReadBps));
            let line = max
                .lines()
                .find(|l| l.starts_with(&format!("{numbers} ")))
                .unwrap_or_else(|| panic!("no {numbers} in io.max:\n{max}"));
            assert!(line.contains("rbps=1048576 wbps=524288"), "{line}");
        }
    }
    assert_eq!(
        dy.inspect(
            "slow",
            "{{range .HostConfig.BlkioDeviceReadBps}}{{.Path}} {{.Rate}}{{end}}"
        ),
        format!("{disk} 1048576")
    );
    dy.ok(&["rm", "-f", "slow"]);
    assert!(leftover_cgroups(&dy.parent).is_empty());

    // docker's CLI words for a bad flag; a device that is not a disk.
    for (flag, want) in [
        ("vda", "bad format: vda".to_string()),
        (
            "/tmp/x:1mb",
            "bad format for device path: /tmp/x:1mb".to_string(),
        ),
        (
            "/dev/vda:fast",
            "invalid rate for device: /dev/vda:fast. The correct format is".to_string(),
        ),
        (
            "/dev/null:1mb",
            "/dev/null is not a block device".to_string(),
        ),
    ] {
        let err = dy.fails(
            125,
            &["create", "--device-read-bps", flag, "busybox", "true"],
        );
        assert!(err.contains(&want), "{flag}: {err}");
    }
    assert_eq!(dy.ok(&["ps", "-aq"]), "");
}

#[test]
fn update_changes_a_running_containers_group_and_record() {
    let dy = Dy::new();
    let host = host();
    dy.ok(&[
        "run",
        "-d",
        "--name",
        "grow",
        "-m",
        "32m",
        "--pids-limit",
        "20",
        "busybox",
        "sleep",
        "600",
    ]);
    dy.wait_for("grow", "{{.State.Status}}", "running");
    let id = dy.inspect("grow", "{{.Id}}");
    // docker prints each container as it was named.
    let out = dy.ok(&[
        "update",
        "-m",
        "48m",
        "--cpus",
        "0.5",
        "--pids-limit",
        "30",
        "--restart",
        "on-failure:2",
        "grow",
    ]);
    assert_eq!(out, "grow\n");
    let file = |knob| read(&host.limit_file(knob, &dy.parent, &id).unwrap());
    assert_eq!(file(Knob::Memory), (48u64 << 20).to_string());
    assert_eq!(file(Knob::Pids), "30");
    let quota = match host.version() {
        Version::V1 => "50000",
        Version::V2 => "50000 100000",
    };
    assert_eq!(file(Knob::CpuQuota), quota);
    assert_eq!(
        dy.inspect(
            "grow",
            "{{.HostConfig.Memory}} {{.HostConfig.PidsLimit}} {{.HostConfig.RestartPolicy.Name}}"
        ),
        format!("{} 30 on-failure", 48u64 << 20)
    );
    // Raising memory past the swap limit already set needs both, as dockerd says.
    let err = dy.fails(1, &["update", "-m", "200m", "grow"]);
    assert!(
        err.contains("Memory limit should be smaller than already set memoryswap limit"),
        "{err}"
    );
    dy.ok(&["update", "-m", "200m", "--memory-swap", "400m", "grow"]);
    assert_eq!(file(Knob::Memory), (200u64 << 20).to_string());
    // Still the same process, limits changed under it.
    assert_eq!(dy.inspect("grow", "{{.State.Status}}"), "running");
    let err = dy.fails(1, &["update", "--cpus", "1", "nosuch"]);
    assert!(err.contains("No such container: nosuch"), "{err}");
    dy.ok(&["rm", "-f", "grow"]);
    assert!(leftover_cgroups(&dy.parent).is_empty());
}
