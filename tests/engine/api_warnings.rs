//! dockerd's warnings through the Engine API: a setting this host cannot
//! honour is dropped, the container is made anyway, and the warning goes
//! back in the answer's `Warnings`, which the real docker CLI prints (a
//! create's on stderr as `WARNING: ...`, an update's on stdout after the
//! names). A service that printed them on its own stderr, and answered
//! `Warnings: []`, leaves the CLI silent, and these tests fail.
//!
//! Which warnings this host earns is asked of lab 03 (the cgroup version,
//! [`lab03_cgroups::Support`]), so the expectation is exact on v1 and v2.

use crate::common::{cgroup_host as host, read_trimmed as read};
use dockyard_e2e::dockyard::{leftover_cgroups, text, Dockyard as Dy};
use lab03_cgroups::{Support, Version};

use super::api::Service;

/// dockerd's words (daemon/daemon_unix.go, verifyPlatformContainerResources).
pub(crate) const NO_WEIGHT: &str =
    "Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded.";
const NO_SWAPPINESS: &str = "Your kernel does not support memory swappiness capabilities or the \
                             cgroup is not mounted. Memory swappiness discarded.";
const NO_OOM_KILL_DISABLE: &str =
    "Your kernel does not support OomKillDisable. OomKillDisable discarded.";
const NO_MEMORY_LIMIT: &str = "OOM killer is disabled for the container, but no memory limit is \
                               set, this can result in the system running out of resources.";

#[test]
fn api_warnings_of_create_and_update_are_what_the_docker_cli_prints() {
    let dy = Dy::new();
    let svc = Service::start(&dy);
    let host = host();
    let have = Support::of(&host);
    let v1 = host.version() == Version::V1;
    let out = svc.docker(&[
        "run",
        "-d",
        "--name",
        "warned",
        "--oom-kill-disable",
        "--memory-swappiness",
        "7",
        "--blkio-weight",
        "300",
        "busybox",
        "sleep",
        "600",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // dockerd's order: swappiness, the OOM killer, then block I/O.
    let mut want = match v1 {
        true => vec![NO_MEMORY_LIMIT],
        false => vec![NO_SWAPPINESS, NO_OOM_KILL_DISABLE],
    };
    if !have.blkio_weight {
        want.push(NO_WEIGHT);
    }
    let want: String = want.iter().map(|w| format!("WARNING: {w}\n")).collect();
    assert_eq!(text(&out.stderr), want);
    // Warned, and made and started all the same, with what this host can do.
    assert_eq!(dy.inspect("warned", "{{.State.Status}}"), "running");
    let id = dy.inspect("warned", "{{.Id}}");
    if v1 {
        let dir = host.group_dir("memory", &dy.parent, &id).unwrap();
        let oom = read(&dir.join("memory.oom_control"));
        assert!(oom.lines().any(|l| l == "oom_kill_disable 1"), "{oom}");
        assert_eq!(read(&dir.join("memory.swappiness")), "7");
    }
    assert_eq!(
        svc.docker_ok(&["inspect", "-f", "{{.HostConfig.OomKillDisable}}", "warned"]),
        format!("{v1}\n")
    );
    // update: the names, then the warnings, on stdout.
    let out = svc.docker(&["update", "--blkio-weight", "300", "warned"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let want = match have.blkio_weight {
        true => "warned\n".to_string(),
        false => format!("warned\n{NO_WEIGHT}\n"),
    };
    assert_eq!(text(&out.stdout), want);
    // The answer itself, as the swagger has it: an array of strings.
    let answer = svc.raw(
        "POST /v1.50/containers/warned/update HTTP/1.1\r\nHost: d\r\nContent-Type: \
         application/json\r\nContent-Length: 19\r\nConnection: close\r\n\r\n{\"BlkioWeight\":300}",
    );
    let want = match have.blkio_weight {
        true => "{\"Warnings\":[]}".to_string(),
        false => format!("{{\"Warnings\":[\"{NO_WEIGHT}\"]}}"),
    };
    assert!(answer.ends_with(&want), "{answer}");
    dy.ok(&["rm", "-f", "warned"]);
    assert!(leftover_cgroups(&dy.parent).is_empty());
}

#[test]
fn api_warnings_of_published_ports_on_the_hosts_network_are_dockerds() {
    // Created, never started: nothing touches the host's network.
    let dy = Dy::new();
    let svc = Service::start(&dy);
    let args = |name| {
        [
            "create",
            "--name",
            name,
            "--network",
            "host",
            "-p",
            "8080:80",
            "busybox",
            "true",
        ]
    };
    let out = svc.docker(&args("onhost"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let want = "WARNING: Published ports are discarded when using host network mode\n";
    assert_eq!(text(&out.stderr), want);
    assert_eq!(dy.inspect("onhost", "{{.HostConfig.NetworkMode}}"), "host");
    // The in-process CLI says the same, once.
    let out = dy.run(&args("onhost2"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), want);
}
