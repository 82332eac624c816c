//! `dockyard system service` answering as dockerd does where the docker CLI
//! shows the difference: `logs --since/--until/--details`, `run --device`,
//! a detached start whose command is not there, and the service's own
//! stop on SIGTERM and SIGINT.
//!
//! Each test has its own service, socket and data root (the `Service` of
//! the api module, killed on drop), and checks what the CLI printed against
//! the other side: the container's json-file log, the device node the
//! kernel made, the record `dockyard ps` reads, the processes in /proc.

use std::time::Duration;

use dockyard_e2e::dockyard::{text, Dockyard as Dy};
use nix::sys::signal::Signal;

use crate::api::Service;

/// The times of a container's json-file log, by line: what dockerd's
/// `logs -t` prints and what `--since`/`--until` compare against.
fn log_times(dy: &Dy, name: &str) -> Vec<(String, String)> {
    let path = dy.inspect(name, "{{.LogPath}}");
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["time"].as_str().unwrap().to_string(),
                v["log"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// `docker logs --since T --until T --details -t` print what dockerd
/// would: both bounds inclusive, the time first, then the attributes that
/// `--log-opt labels=` names (empty, one space, without any), as the
/// in-process `dockyard logs` prints them too.
#[test]
fn api_logs_since_until_details_and_timestamps_as_dockerd() {
    let dy = Dy::new();
    let svc = Service::start(&dy);
    svc.docker_ok(&[
        "run",
        "-d",
        "--name",
        "lg",
        "--label",
        "team=a b",
        "--log-opt",
        "labels=team",
        "busybox",
        "sh",
        "-c",
        "echo one; sleep 0.3; echo two; sleep 0.3; echo three >&2",
    ]);
    assert_eq!(svc.docker_ok(&["wait", "lg"]), "0\n");
    let times = log_times(&dy, "lg");
    let logged: Vec<&str> = times.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(logged, ["one\n", "two\n", "three\n"]);
    let t2 = &times[1].0;
    // The CLI turns the RFC 3339 time into `since=SECONDS.NANOS`.
    let both = |args: &[&str]| {
        let mut all = vec!["logs"];
        all.extend_from_slice(args);
        all.push("lg");
        let out = svc.docker(&all);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let ours = dy.run(&all);
        assert!(ours.status.success(), "{}", text(&ours.stderr));
        // The two fronts agree, stream by stream.
        assert_eq!(text(&ours.stdout), text(&out.stdout), "stdout of {all:?}");
        assert_eq!(text(&ours.stderr), text(&out.stderr), "stderr of {all:?}");
        (text(&out.stdout), text(&out.stderr))
    };
    assert_eq!(both(&["--since", t2]), ("two\n".into(), "three\n".into()));
    assert_eq!(both(&["--until", t2]), ("one\ntwo\n".into(), String::new()));
    assert_eq!(
        both(&["--since", t2, "--until", t2]),
        ("two\n".into(), String::new())
    );
    // Query-escaped as dockerd's `url.QueryEscape`: the space is `+`.
    assert_eq!(
        both(&["--details"]),
        (
            "team=a+b one\nteam=a+b two\n".into(),
            "team=a+b three\n".into()
        )
    );
    let (out, _) = both(&["--details", "-t", "--until", t2]);
    assert_eq!(
        out,
        format!("{} team=a+b one\n{t2} team=a+b two\n", times[0].0)
    );
    // Without labels asked for, --details puts an empty attribute list
    // (and its space) before each line.
    svc.docker_ok(&["run", "--name", "plain", "busybox", "echo", "x"]);
    assert_eq!(svc.docker_ok(&["logs", "--details", "plain"]), " x\n");
    // A bad time is the client's mistake.
    let raw = svc.raw("GET /containers/lg/logs?stdout=1&since=yesterday HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n");
    assert!(raw.starts_with("HTTP/1.1 400"), "{raw}");
}

/// `docker run --device /dev/null:/dev/mynull` through the API: the core's
/// device mapping, so the kernel's node (char 1:3) is in the container's
/// /dev under the new name, with docker's `HostConfig.Devices`; read-only
/// permissions are enforced by the device cgroup.
#[test]
fn api_run_device_maps_a_host_node_into_the_container() {
    let dy = Dy::new();
    let svc = Service::start(&dy);
    let out = svc.docker_ok(&[
        "run",
        "--name",
        "dev",
        "--device",
        "/dev/null:/dev/mynull",
        "busybox",
        "sh",
        "-c",
        "stat -c '%F %t:%T' /dev/mynull; echo x > /dev/mynull && echo written",
    ]);
    assert_eq!(out, "character special file 1:3\nwritten\n");
    assert_eq!(
        svc.docker_ok(&["inspect", "-f", "{{json .HostConfig.Devices}}", "dev"]),
        "[{\"PathOnHost\":\"/dev/null\",\"PathInContainer\":\"/dev/mynull\",\
         \"CgroupPermissions\":\"rwm\"}]\n"
    );
    // The same container from the other front (its JSON keys sorted).
    let ours: serde_json::Value =
        serde_json::from_str(&dy.inspect("dev", "{{json .HostConfig.Devices}}")).unwrap();
    let theirs: serde_json::Value = serde_json::from_str(&svc.docker_ok(&[
        "inspect",
        "-f",
        "{{json .HostConfig.Devices}}",
        "dev",
    ]))
    .unwrap();
    assert_eq!(ours, theirs);
    // A device outside docker's default allow list (loop-control, 10:237)
    // mapped read-only: the device cgroup refuses an open for writing.
    let ro = svc.docker(&[
        "run",
        "--rm",
        "--device",
        "/dev/loop-control:/dev/lc:r",
        "busybox",
        "sh",
        "-c",
        "stat -c '%t:%T' /dev/lc; true > /dev/lc || echo refused",
    ]);
    assert_eq!(text(&ro.stdout), "a:ed\nrefused\n", "{}", text(&ro.stderr));
    assert!(
        text(&ro.stderr).contains("Operation not permitted"),
        "{}",
        text(&ro.stderr)
    );
    // A bad mode is refused at create, as dockerd does, and nothing is left.
    let body = r#"{"Image":"busybox","HostConfig":{"Devices":[{"PathOnHost":"/dev/null","PathInContainer":"/dev/n","CgroupPermissions":"rwx"}]}}"#;
    let raw = svc.raw(&format!(
        "POST /containers/create HTTP/1.1\r\nHost: d\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    assert!(raw.starts_with("HTTP/1.1 400"), "{raw}");
    assert!(raw.contains("bad mode specified: rwx"), "{raw}");
    assert_eq!(dy.ok(&["ps", "-aq"]).lines().count(), 1);
}

/// `docker run -d busybox nosuch`: dockerd's start fails with 400 and
/// runc's words, so the CLI prints the error and exits 127 (126 for a
/// command that may not run), where the container's own exit 127 is no
/// error of the start.
#[test]
fn api_run_detached_of_a_missing_command_fails_the_start() {
    let dy = Dy::new();
    let svc = Service::start(&dy);
    let out = svc.docker(&["run", "-d", "--name", "nosuch", "busybox", "nosuch"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(127), "{err}");
    assert!(
        err.starts_with(
            "docker: Error response from daemon: failed to create task for container: "
        ),
        "{err}"
    );
    assert!(
        err.contains("exec: \"nosuch\": executable file not found in $PATH"),
        "{err}"
    );
    assert!(
        err.contains("Run 'docker run --help' for more information"),
        "{err}"
    );
    // The record says why, as the other front sees it.
    assert_eq!(dy.inspect("nosuch", "{{.State.ExitCode}}"), "127");
    // `docker start` of it again: the same error, the CLI's exit 1.
    let again = svc.docker(&["start", "nosuch"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        text(&again.stderr).contains("executable file not found in $PATH"),
        "{}",
        text(&again.stderr)
    );
    // A file that is there but may not run: 126.
    let out = svc.docker(&["run", "-d", "busybox", "/etc/passwd"]);
    assert_eq!(out.status.code(), Some(126), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("permission denied"));
    // A command that runs and exits 127 itself is no failed start.
    let ok = svc.docker(&[
        "run", "-d", "--name", "own", "busybox", "sh", "-c", "exit 127",
    ]);
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok.stderr));
    assert_eq!(svc.docker_ok(&["wait", "own"]), "127\n");
}

/// SIGTERM (systemd's stop) and SIGINT (Ctrl-C): the service closes its
/// socket and exits 0, as dockerd's clean shutdown, not 143 or 130 from
/// the signal; the container it started runs on under its own monitor
/// (live-restore by design), and the next service finds it.
#[test]
fn api_service_exits_0_on_sigterm_and_sigint_and_containers_run_on() {
    let dy = Dy::new();
    for sig in [Signal::SIGTERM, Signal::SIGINT] {
        let mut svc = Service::start(&dy);
        let name = format!("live-{}", sig.as_str().to_lowercase());
        svc.docker_ok(&["run", "-d", "--name", &name, "busybox", "sleep", "60"]);
        // A client in the middle of a stream does not hold the stop up.
        let mut follower = std::process::Command::new("/usr/local/bin/docker")
            .args([
                "-H",
                &format!("unix://{}", svc.sock.display()),
                "logs",
                "-f",
                &name,
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let status = svc.signal_and_wait(sig);
        let _ = follower.kill();
        let _ = follower.wait();
        assert_eq!(status.code(), Some(0), "{sig}: {status:?}");
        assert!(!svc.sock.exists(), "{sig}: the socket is left behind");
        // Still running, from the kernel's side and the CLI's.
        let pid = dy.inspect(&name, "{{.State.Pid}}");
        assert!(
            std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "{name} (pid {pid}) stopped with the service"
        );
        assert_eq!(dy.inspect(&name, "{{.State.Status}}"), "running");
        let next = Service::start(&dy);
        assert!(next
            .docker_ok(&["ps", "--format", "{{.Names}}"])
            .contains(&name));
        next.docker_ok(&["rm", "-f", &name]);
    }
}
