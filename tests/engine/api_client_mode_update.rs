//! `dockyard -H` for `update` and for dockerd's warnings: the request
//! reaches the container's cgroup files (read here from the kernel), and
//! what the client prints, on which stream, with which exit code, is what
//! the real docker CLI prints against the same service.

use crate::common::{cgroup_host as host, read_trimmed as read};
use dockyard_e2e::dockyard::{text, Dockyard as Dy};
use lab03_cgroups::{Knob, Support, Version};

use super::super::api::Service;
use super::super::api_warnings::NO_WEIGHT;
use super::{client, client_ok, url};

/// The client's and docker's CLI's exit code, stdout and stderr for
/// `args` are the same.
fn same_as_docker(svc: &Service, dy: &Dy, args: &[&str]) {
    let ours = client(&url(svc), &dy.parent, args);
    let docker = svc.docker(args);
    let seen = |o: &std::process::Output| (o.status.code(), text(&o.stdout), text(&o.stderr));
    assert_eq!(
        seen(&ours),
        seen(&docker),
        "{args:?}: dockyard -H, then docker"
    );
}

#[test]
fn api_client_mode_update_reaches_the_kernel_and_prints_what_docker_prints() {
    let dy = Dy::new();
    let svc = Service::start(&dy);
    let host = host();
    // With a cpuset from the start: on v1 its cpuset group exists only then.
    dy.ok(&[
        "run",
        "-d",
        "--name",
        "up",
        "--cpuset-cpus",
        "0",
        "busybox",
        "sleep",
        "600",
    ]);
    let id = dy.inspect("up", "{{.Id}}");
    let out = client_ok(
        &svc,
        &dy,
        &[
            "update",
            "--cpu-period",
            "50000",
            "--cpu-quota",
            "25000",
            "-m",
            "64m",
            "--pids-limit",
            "50",
            "--restart",
            "on-failure:3",
            "up",
        ],
    );
    assert_eq!(out, "up\n");
    let file = |knob| read(&host.limit_file(knob, &dy.parent, &id).unwrap());
    match host.version() {
        Version::V1 => {
            assert_eq!(file(Knob::CpuQuota), "25000");
            assert_eq!(file(Knob::CpuPeriod), "50000");
        }
        Version::V2 => assert_eq!(file(Knob::CpuQuota), "25000 50000"),
    }
    assert_eq!(file(Knob::Memory), (64u64 << 20).to_string());
    assert_eq!(file(Knob::Pids), "50");
    assert_eq!(
        dy.inspect(
            "up",
            "{{.HostConfig.RestartPolicy.Name}} {{.HostConfig.RestartPolicy.MaximumRetryCount}}"
        ),
        "on-failure 3"
    );
    // The cpuset, as the container's own process sees it.
    if lab03_cgroups::ncpus() >= 2 {
        assert_eq!(
            client_ok(&svc, &dy, &["update", "--cpuset-cpus", "1", "up"]),
            "up\n"
        );
        let status = dy.ok(&["exec", "up", "cat", "/proc/self/status"]);
        assert!(status.contains("Cpus_allowed_list:\t1\n"), "{status}");
    }
    // Refusals and warnings, word for word and stream for stream: no flag
    // (the CLI's own), a missing container next to a conflict (dockerd's,
    // both, exit 1), a weight this kernel may lack (the names, then the
    // warning, on stdout), restart policies (the service's refusal, or the
    // CLI's of a policy it cannot split).
    for args in [
        &["update", "up"][..],
        &["update", "--cpus", "1", "nope", "up"],
        &["update", "--blkio-weight", "300", "up"],
        &["update", "--pids-limit", "60", "nope"],
        // A restart policy is only split by the CLI: the daemon judges it.
        &["update", "--restart", "bogus", "up"],
        &["update", "--restart", "always:3", "up"],
        &["update", "--restart", ":3", "up"],
    ] {
        same_as_docker(&svc, &dy, args);
    }
    assert_eq!(
        dy.inspect("up", "{{.State.Status}} {{.HostConfig.PidsLimit}}"),
        "running 50"
    );
    dy.ok(&["rm", "-f", "up"]);
}

#[test]
fn api_client_mode_prints_the_services_create_warnings() {
    let dy = Dy::new();
    let svc = Service::start(&dy);
    let have = Support::of(&host());
    let out = client(
        &url(&svc),
        &dy.parent,
        &[
            "run",
            "-d",
            "--name",
            "weighted",
            "--blkio-weight",
            "300",
            "busybox",
            "sleep",
            "600",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let want = match have.blkio_weight {
        true => String::new(),
        false => format!("WARNING: {NO_WEIGHT}\n"),
    };
    assert_eq!(text(&out.stderr), want);
    // Warned, and running all the same.
    assert_eq!(dy.inspect("weighted", "{{.State.Status}}"), "running");
    // On stderr as docker's CLI prints it; the ID alone on stdout.
    let args = ["create", "--blkio-weight", "300", "busybox", "true"];
    let ours = client(&url(&svc), &dy.parent, &args);
    let docker = svc.docker(&args);
    assert_eq!(text(&ours.stderr), text(&docker.stderr));
    assert_eq!(
        text(&ours.stdout).trim().len(),
        64,
        "{}",
        text(&ours.stdout)
    );
    dy.ok(&["rm", "-f", "weighted"]);
    dy.ok(&["container", "prune", "-f"]);
}
