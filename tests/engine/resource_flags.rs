//! The rarer resource flags of `run`/`create`: `--memory-reservation`,
//! `--blkio-weight`/`--blkio-weight-device`, `--device-read-iops`/
//! `--device-write-iops`, `--cpu-rt-period`/`--cpu-rt-runtime` and
//! `--device-cgroup-rule`. Each is read back from the container's own
//! cgroup files (the name lab 03 gives on this host's layout), from
//! `inspect`'s `HostConfig`, and refused with docker's words.
//!
//! A knob whose file this kernel lacks (a block I/O weight without BFQ or
//! CFQ, real-time CPU without `CONFIG_RT_GROUP_SCHED` or on v2) takes
//! docker's other path: a warning, or a refusal. Each test asks lab 03's
//! [`lab03_cgroups::Support`] which path this host is on.

use crate::common::{cgroup_host as host, read_trimmed as read};
use crate::resources::data_root_disk;
use dockyard_e2e::dockyard::{leftover_cgroups, text, Dockyard as Dy};
use lab03_cgroups::{Support, Version};

/// `MAJ:MIN` of the block device node `disk`.
fn numbers(disk: &str) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let rdev = std::fs::metadata(disk).unwrap().rdev();
    (nix::sys::stat::major(rdev), nix::sys::stat::minor(rdev))
}

#[test]
fn memory_reservation_is_the_soft_limit_file_in_inspect_and_updated() {
    let dy = Dy::new();
    let host = host();
    dy.ok(&[
        "run",
        "-d",
        "--name",
        "soft",
        "-m",
        "64m",
        "--memory-reservation",
        "32m",
        "busybox",
        "sleep",
        "600",
    ]);
    let id = dy.inspect("soft", "{{.Id}}");
    let file = match host.version() {
        Version::V1 => "memory.soft_limit_in_bytes",
        Version::V2 => "memory.low",
    };
    let path = host
        .group_dir("memory", &dy.parent, &id)
        .unwrap()
        .join(file);
    assert_eq!(read(&path), "33554432");
    assert_eq!(
        dy.inspect("soft", "{{.HostConfig.MemoryReservation}}"),
        "33554432"
    );
    // docker update takes it too: the kernel's file changes at once.
    assert_eq!(
        dy.ok(&["update", "--memory-reservation", "48m", "soft"]),
        "soft\n"
    );
    assert_eq!(read(&path), "50331648");
    assert_eq!(
        dy.inspect("soft", "{{.HostConfig.MemoryReservation}}"),
        "50331648"
    );
    dy.ok(&["rm", "-f", "soft"]);
    assert!(leftover_cgroups(&dy.parent).is_empty());

    // dockerd's words, exit 125, and nothing made.
    for (args, want) in [
        (
            &["--memory-reservation", "1k"][..],
            "Minimum memory reservation allowed is 6MB",
        ),
        (
            &["-m", "32m", "--memory-reservation", "64m"][..],
            "Minimum memory limit can not be less than memory reservation limit, see usage",
        ),
    ] {
        let mut all = vec!["create"];
        all.extend_from_slice(args);
        all.extend(["busybox", "true"]);
        let err = dy.fails(125, &all);
        assert!(err.contains(want), "{args:?}: {err}");
    }
    assert_eq!(dy.ok(&["ps", "-aq"]), "");
}

#[test]
fn device_iops_are_the_groups_throttle_rules_and_bad_ones_are_refused() {
    let dy = Dy::new();
    let host = host();
    let Some(disk) = data_root_disk(&dy) else {
        eprintln!("skipped: this kernel lists no block device with a node in /dev");
        return;
    };
    let (major, minor) = numbers(&disk);
    let (read_flag, write_flag) = (format!("{disk}:100"), format!("{disk}:50"));
    dy.ok(&[
        "run",
        "-d",
        "--name",
        "iops",
        "--device-read-iops",
        &read_flag,
        "--device-write-iops",
        &write_flag,
        "busybox",
        "sleep",
        "600",
    ]);
    let id = dy.inspect("iops", "{{.Id}}");
    match host.version() {
        Version::V1 => {
            let dir = host.group_dir("blkio", &dy.parent, &id).unwrap();
            let file = |f: &str| read(&dir.join(f));
            assert_eq!(
                file("blkio.throttle.read_iops_device"),
                format!("{major}:{minor} 100")
            );
            assert_eq!(
                file("blkio.throttle.write_iops_device"),
                format!("{major}:{minor} 50")
            );
        }
        Version::V2 => {
            let max = read(
                &host
                    .group_dir("io", &dy.parent, &id)
                    .unwrap()
                    .join("io.max"),
            );
            let line = max
                .lines()
                .find(|l| l.starts_with(&format!("{major}:{minor} ")))
                .unwrap_or_else(|| panic!("no {major}:{minor} in io.max:\n{max}"));
            assert!(line.contains("riops=100 wiops=50"), "{line}");
        }
    }
    assert_eq!(
        dy.inspect(
            "iops",
            "{{range .HostConfig.BlkioDeviceReadIOps}}{{.Path}} {{.Rate}}{{end}}"
        ),
        format!("{disk} 100")
    );
    assert_eq!(
        dy.inspect(
            "iops",
            "{{range .HostConfig.BlkioDeviceWriteIOps}}{{.Path}} {{.Rate}}{{end}}"
        ),
        format!("{disk} 50")
    );
    dy.ok(&["rm", "-f", "iops"]);
    assert!(leftover_cgroups(&dy.parent).is_empty());

    // docker's CLI words; a device that is not a disk.
    for (flag, value, want) in [
        ("--device-read-iops", "vda", "bad format: vda"),
        (
            "--device-write-iops",
            "/tmp/x:5",
            "bad format for device path: /tmp/x:5",
        ),
        (
            "--device-read-iops",
            "/dev/vda:1mb",
            "invalid argument \"/dev/vda:1mb\" for \"--device-read-iops\" flag: invalid rate for \
             device: /dev/vda:1mb. The correct format is <device-path>:<number>. Number must be a \
             positive integer",
        ),
        (
            "--device-read-iops",
            "/dev/null:5",
            "/dev/null is not a block device",
        ),
        (
            "--blkio-weight-device",
            "/dev/vda:5",
            "invalid argument \"/dev/vda:5\" for \"--blkio-weight-device\" flag: invalid weight \
             for device: /dev/vda:5",
        ),
    ] {
        let err = dy.fails(125, &["create", flag, value, "busybox", "true"]);
        assert!(err.contains(want), "{flag} {value}: {err}");
    }
    assert_eq!(dy.ok(&["ps", "-aq"]), "");
}

#[test]
fn blkio_weight_is_the_weight_file_where_the_kernel_has_one_else_docker_warns() {
    let dy = Dy::new();
    let host = host();
    let have = Support::of(&host);
    let out = dy.run(&[
        "run",
        "-d",
        "--name",
        "weighted",
        "--blkio-weight",
        "300",
        "busybox",
        "sleep",
        "600",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let id = dy.inspect("weighted", "{{.Id}}");
    let warning = "WARNING: Your kernel does not support Block I/O weight or the cgroup is not \
                   mounted. Weight discarded.";
    let stderr = text(&out.stderr);
    let dir = host.group_dir(
        if host.version() == Version::V1 {
            "blkio"
        } else {
            "io"
        },
        &dy.parent,
        &id,
    );
    let written = dir.as_ref().and_then(|d| {
        [
            "blkio.bfq.weight",
            "blkio.weight",
            "io.bfq.weight",
            "io.weight",
        ]
        .into_iter()
        .find(|f| d.join(f).exists())
        .map(|f| (f, read(&d.join(f))))
    });
    match written {
        Some((file, value)) if have.blkio_weight && !stderr.contains(warning) => {
            let want = match file {
                "io.weight" => format!("default {}", lab03_cgroups::blkio_weight_to_io_weight(300)),
                _ => "300".to_string(),
            };
            assert!(
                value.starts_with(&want) || value.ends_with(&want),
                "{file}: {value}"
            );
            assert_eq!(dy.inspect("weighted", "{{.HostConfig.BlkioWeight}}"), "300");
            // The range is dockerd's to check, where the kernel has a weight.
            let err = dy.fails(125, &["create", "--blkio-weight", "5", "busybox", "true"]);
            assert!(
                err.contains("Range of blkio weight is from 10 to 1000"),
                "{err}"
            );
        }
        _ => {
            // This host: no BFQ nor CFQ, so no weight file anywhere. As
            // docker: warned, dropped from the record, and the container runs.
            assert!(stderr.contains(warning), "{stderr}");
            assert_eq!(dy.inspect("weighted", "{{.State.Status}}"), "running");
            if !have.blkio_weight {
                assert_eq!(dy.inspect("weighted", "{{.HostConfig.BlkioWeight}}"), "0");
                // dockerd discards before it checks the range: a warning again.
                let out = dy.run(&["create", "--blkio-weight", "5", "busybox", "true"]);
                assert!(out.status.success() && text(&out.stderr).contains(warning));
                // update: as docker's CLI prints an update's warnings, on
                // stdout after the names, without the "WARNING: ".
                let out = dy.run(&["update", "--blkio-weight", "200", "weighted"]);
                assert!(out.status.success(), "{}", text(&out.stderr));
                assert_eq!(
                    text(&out.stdout),
                    format!("weighted\n{}\n", warning.trim_start_matches("WARNING: "))
                );
            }
        }
    }
    dy.ok(&["rm", "-f", "weighted"]);
    let _ = dy.run(&["container", "prune", "-f"]);
    assert!(leftover_cgroups(&dy.parent).is_empty());
}

#[test]
fn cpu_rt_period_is_v1s_real_time_file_or_refused_with_dockers_words() {
    let dy = Dy::new();
    let host = host();
    let have = Support::of(&host);
    if !have.cpu_rt_period {
        // v2, or a kernel without CONFIG_RT_GROUP_SCHED: dockerd refuses.
        let err = dy.fails(
            125,
            &["create", "--cpu-rt-period", "500000", "busybox", "true"],
        );
        assert!(
            err.contains("Your kernel does not support cgroup cpu real-time period"),
            "{err}"
        );
        let err = dy.fails(
            125,
            &["create", "--cpu-rt-runtime", "1000", "busybox", "true"],
        );
        assert!(
            err.contains("Your kernel does not support cgroup cpu real-time runtime"),
            "{err}"
        );
        assert_eq!(dy.ok(&["ps", "-aq"]), "");
        return;
    }
    dy.ok(&[
        "run",
        "-d",
        "--name",
        "rt",
        "--cpu-rt-period",
        "500000",
        "busybox",
        "sleep",
        "600",
    ]);
    let id = dy.inspect("rt", "{{.Id}}");
    let dir = host.group_dir("cpu", &dy.parent, &id).unwrap();
    assert_eq!(read(&dir.join("cpu.rt_period_us")), "500000");
    assert_eq!(
        dy.inspect("rt", "{{.HostConfig.CpuRealtimePeriod}}"),
        "500000"
    );
    assert_eq!(dy.inspect("rt", "{{.HostConfig.CpuRealtimeRuntime}}"), "0");
    dy.ok(&["rm", "-f", "rt"]);
    assert!(leftover_cgroups(&dy.parent).is_empty());
    let err = dy.fails(
        125,
        &[
            "create",
            "--cpu-rt-period",
            "1000",
            "--cpu-rt-runtime",
            "2000",
            "busybox",
            "true",
        ],
    );
    assert!(
        err.contains("cpu real-time runtime cannot be higher than cpu real-time period"),
        "{err}"
    );
    assert_eq!(dy.ok(&["ps", "-aq"]), "");
}

/// A character device the host can read and docker's default list lacks
/// (`/dev/vcs`, `/dev/hwrng`, `/dev/cpu_dma_latency`): its path and
/// numbers. Block devices would do as well, but a sandboxed host may
/// refuse reading its disks even to root.
fn readable_char_device() -> Option<(String, u64, u64)> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    ["/dev/vcs", "/dev/hwrng", "/dev/cpu_dma_latency"]
        .into_iter()
        .find_map(|path| {
            let meta = std::fs::metadata(path).ok()?;
            let out = std::process::Command::new("head")
                .args(["-c1", path])
                .output()
                .ok()?;
            (meta.file_type().is_char_device() && out.status.success() && out.stdout.len() == 1)
                .then(|| {
                    let rdev = meta.rdev();
                    let (major, minor) = (nix::sys::stat::major(rdev), nix::sys::stat::minor(rdev));
                    (path.to_string(), major, minor)
                })
        })
}

#[test]
fn device_cgroup_rule_lets_the_container_open_a_device_the_default_list_refuses() {
    let dy = Dy::new();
    let Some((path, major, minor)) = readable_char_device() else {
        eprintln!("skipped: no character device here that the host itself can read");
        return;
    };
    let script =
        format!("mknod /tmp/d c {major} {minor} && head -c1 /tmp/d >/dev/null && echo read");
    // Without the rule: docker's list has `c *:* m` (mknod) but no read.
    let out = dy.run(&["run", "--rm", "busybox", "sh", "-c", &script]);
    assert_ne!(out.status.code(), Some(0), "{path} was read without a rule");
    assert!(
        text(&out.stderr).contains("Operation not permitted"),
        "{}",
        text(&out.stderr)
    );
    // With it: read allowed (v1 devices.allow, v2 the device program).
    let rule = format!("c {major}:{minor} r");
    let out = dy.ok(&[
        "run",
        "--name",
        "dev",
        "--device-cgroup-rule",
        &rule,
        "busybox",
        "sh",
        "-c",
        &script,
    ]);
    assert_eq!(out, "read\n", "{path}");
    assert_eq!(
        dy.inspect("dev", "{{json .HostConfig.DeviceCgroupRules}}"),
        format!("[\"{rule}\"]")
    );
    // Any minor of the major, as `c 136:* rwm` in docker's own list; `r`
    // alone does not let it write.
    let any_minor = format!("c {major}:* r");
    let out = dy.ok(&[
        "run",
        "--rm",
        "--device-cgroup-rule",
        &any_minor,
        "busybox",
        "sh",
        "-c",
        &script,
    ]);
    assert_eq!(out, "read\n");
    let write = format!("mknod /tmp/d c {major} {minor} && : > /tmp/d");
    let out = dy.run(&[
        "run",
        "--rm",
        "--device-cgroup-rule",
        &any_minor,
        "busybox",
        "sh",
        "-c",
        &write,
    ]);
    assert!(
        text(&out.stderr).contains("Operation not permitted"),
        "{}",
        text(&out.stderr)
    );
    dy.ok(&["rm", "dev"]);
    assert!(leftover_cgroups(&dy.parent).is_empty());
    // The CLI's words for a rule that is not `TYPE MAJOR:MINOR ACCESS`.
    let err = dy.fails(
        125,
        &["create", "--device-cgroup-rule", "c 1:3", "busybox", "true"],
    );
    assert!(
        err.contains(
            "invalid argument \"c 1:3\" for \"--device-cgroup-rule\" flag: invalid device cgroup \
             format 'c 1:3'"
        ),
        "{err}"
    );
    assert_eq!(dy.ok(&["ps", "-aq"]), "");
}

#[test]
fn the_api_reads_them_from_dockers_cli_and_client_mode_sends_them() {
    use dockyard_e2e::fixtures::bin;
    let dy = Dy::new();
    let host = host();
    let Some(disk) = data_root_disk(&dy) else {
        eprintln!("skipped: this kernel lists no block device with a node in /dev");
        return;
    };
    let svc = super::api::Service::start(&dy);
    let iops = format!("{disk}:100");
    // docker's own CLI: POST /containers/create with its HostConfig.
    svc.docker_ok(&[
        "run",
        "-d",
        "--name",
        "viadocker",
        "--memory-reservation",
        "32m",
        "--device-read-iops",
        &iops,
        "--device-cgroup-rule",
        "c 1:3 r",
        "busybox",
        "sleep",
        "600",
    ]);
    let id = dy.inspect("viadocker", "{{.Id}}");
    assert_eq!(
        dy.inspect("viadocker", "{{.HostConfig.MemoryReservation}}"),
        "33554432"
    );
    assert_eq!(
        dy.inspect(
            "viadocker",
            "{{range .HostConfig.BlkioDeviceReadIOps}}{{.Rate}}{{end}}"
        ),
        "100"
    );
    assert_eq!(
        dy.inspect("viadocker", "{{json .HostConfig.DeviceCgroupRules}}"),
        "[\"c 1:3 r\"]"
    );
    // docker update through POST /containers/ID/update, into the kernel's file.
    svc.docker_ok(&["update", "--memory-reservation", "48m", "viadocker"]);
    let file = match host.version() {
        Version::V1 => "memory.soft_limit_in_bytes",
        Version::V2 => "memory.low",
    };
    let path = host
        .group_dir("memory", &dy.parent, &id)
        .unwrap()
        .join(file);
    assert_eq!(read(&path), "50331648");
    // docker inspect through the API shows docker's field names.
    let shown = svc.docker_ok(&[
        "inspect",
        "-f",
        "{{.HostConfig.MemoryReservation}} {{.HostConfig.DeviceCgroupRules}}",
        "viadocker",
    ]);
    assert_eq!(shown.trim(), "50331648 [c 1:3 r]");

    // dockyard -H: the client sends the flags in the same body.
    let parent = format!("--cgroup-parent={}", dy.parent);
    let out = std::process::Command::new(bin("dockyard"))
        .arg("-H")
        .arg(format!("unix://{}", svc.sock.display()))
        .args([
            "create",
            &parent,
            "--name",
            "viaclient",
            "--memory-reservation",
            "16m",
        ])
        .args([
            "--device-write-iops",
            &iops,
            "--device-cgroup-rule",
            "b *:* m",
        ])
        .args(["--cpu-rt-runtime", "0", "busybox", "true"])
        .env_remove("DOCKYARD_HOST")
        .env_remove("DOCKYARD_ROOT")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        dy.inspect("viaclient", "{{.HostConfig.MemoryReservation}}"),
        "16777216"
    );
    assert_eq!(
        dy.inspect(
            "viaclient",
            "{{range .HostConfig.BlkioDeviceWriteIOps}}{{.Path}} {{.Rate}}{{end}}"
        ),
        format!("{disk} 100")
    );
    assert_eq!(
        dy.inspect("viaclient", "{{json .HostConfig.DeviceCgroupRules}}"),
        "[\"b *:* m\"]"
    );
    dy.ok(&["rm", "-f", "viadocker", "viaclient"]);
    drop(svc);
    assert!(leftover_cgroups(&dy.parent).is_empty());
}

#[test]
fn values_the_docker_cli_cannot_parse_are_its_refusals_exit_125() {
    let dy = Dy::new();
    for (flag, value, why) in [
        ("--memory-reservation", "12x", "invalid suffix: 'x'"),
        (
            "--blkio-weight",
            "70000",
            "strconv.ParseUint: parsing \"70000\": value out of range",
        ),
        (
            "--blkio-weight",
            "x",
            "strconv.ParseUint: parsing \"x\": invalid syntax",
        ),
        (
            "--cpu-rt-period",
            "x",
            "strconv.ParseInt: parsing \"x\": invalid syntax",
        ),
        (
            "--cpu-rt-runtime",
            "99999999999999999999",
            "strconv.ParseInt: parsing \"99999999999999999999\": value out of range",
        ),
    ] {
        let want = format!("invalid argument \"{value}\" for \"{flag}\" flag: {why}");
        let err = dy.fails(125, &["create", flag, value, "busybox", "true"]);
        assert!(err.contains(&want), "{flag} {value}: {err}");
        if matches!(flag, "--memory-reservation" | "--blkio-weight") {
            let err = dy.fails(125, &["update", flag, value, "nosuch"]);
            assert!(err.contains(&want), "update {flag} {value}: {err}");
        }
    }
    assert_eq!(dy.ok(&["ps", "-aq"]), "");
}
