//! `run`/`create --pid`, `--ipc`, `--uts`, `--cgroupns`: namespaces shared
//! with the host or with another container, as docker has them. Observed
//! in the kernel: the inodes of `/proc/PID/ns/*` of the container's process
//! against the host's and the other container's, `ps` inside, the other
//! container's `/dev/shm` file, the mount table; then `inspect`'s
//! `HostConfig` fields, the refusals in docker's words (exit 125), and the
//! docker CLI and `dockyard -H` against `system service`.

use std::process::{Command, Stdio};

use dockyard_e2e::dockyard::{mount_points, text, Dockyard as Dy, DAEMON_CONFIG_ENV};
use dockyard_e2e::fixtures::bin;

use super::api::Service;

/// What the container prints: its four namespace links, one a line.
const NS: &str = "for n in pid ipc uts cgroup; do readlink /proc/self/ns/$n; done";

/// The host's (this test's) links, in the same order.
fn host_ns() -> Vec<String> {
    ns_of("self")
}

/// The namespace links of process `pid` ("self" for ours).
fn ns_of(pid: &str) -> Vec<String> {
    ["pid", "ipc", "uts", "cgroup"]
        .iter()
        .map(|n| {
            std::fs::read_link(format!("/proc/{pid}/ns/{n}"))
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

fn lines(s: &str) -> Vec<String> {
    s.lines().map(str::to_string).collect()
}

/// Docker's default cgroup namespace mode on this host.
fn default_cgroupns() -> &'static str {
    if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        "private"
    } else {
        "host"
    }
}

fn modes(dy: &Dy, name: &str) -> String {
    dy.inspect(
        name,
        "{{.HostConfig.PidMode}}|{{.HostConfig.IpcMode}}|{{.HostConfig.UTSMode}}|{{.HostConfig.CgroupnsMode}}",
    )
}

#[test]
fn ns_modes_host_gives_the_hosts_namespaces() {
    let dy = Dy::new();
    let host = host_ns();
    // By default every one is its own, but the cgroup namespace on a v1 host.
    let own = lines(&dy.ok(&["run", "--name", "own", "busybox", "sh", "-c", NS]));
    assert_ne!(own[..3], host[..3]);
    assert_eq!(own[3] == host[3], default_cgroupns() == "host", "{own:?}");
    assert_eq!(
        modes(&dy, "own"),
        format!("|private||{}", default_cgroupns())
    );
    // All four the host's.
    let flags = ["--pid", "host", "--ipc", "host", "--uts", "host"];
    let mut args = vec!["run", "--name", "all"];
    args.extend(flags);
    args.extend(["--cgroupns", "host", "busybox", "sh", "-c", NS]);
    assert_eq!(lines(&dy.ok(&args)), host);
    assert_eq!(modes(&dy, "all"), "host|host|host|host");
    // And a private cgroup namespace, whatever the host's default.
    let private = lines(&dy.ok(&["run", "--cgroupns", "private", "busybox", "sh", "-c", NS]));
    assert_ne!(private[3], host[3]);
    // --pid host: `ps` lists the host's processes, this test's among them.
    let ps = dy.ok(&["run", "--rm", "--pid", "host", "busybox", "ps", "-o", "pid"]);
    let me = std::process::id().to_string();
    assert!(ps.lines().any(|l| l.trim() == me), "{me} not in:\n{ps}");
    // --uts host: the host's name, not the container's (whose own is its ID).
    let name = dy.ok(&["run", "--rm", "--uts", "host", "busybox", "hostname"]);
    assert_eq!(
        name.trim(),
        nix::unistd::gethostname().unwrap().to_str().unwrap()
    );
    // --ipc host: the host's /dev/shm, bound in.
    let file = format!("/dev/shm/dockyard-ns-modes-{me}");
    std::fs::write(&file, "from the host\n").unwrap();
    let seen = dy.run(&["run", "--rm", "--ipc", "host", "busybox", "cat", &file]);
    std::fs::remove_file(&file).unwrap();
    assert_eq!(
        text(&seen.stdout),
        "from the host\n",
        "{}",
        text(&seen.stderr)
    );
}

#[test]
fn ns_modes_container_shares_the_others_pid_and_ipc() {
    let dy = Dy::new();
    let script = "echo donated > /dev/shm/f; exec sleep 60";
    let donor = dy.ok(&[
        "run",
        "-d",
        "--name",
        "donor",
        "--ipc",
        "shareable",
        "busybox",
        "sh",
        "-c",
        script,
    ]);
    let donor = donor.trim();
    dy.wait_for("donor", "{{.State.Status}}", "running");
    let pid = dy.inspect("donor", "{{.State.Pid}}");
    // Its /dev/shm is a tmpfs kept on the host while it runs.
    let shm = format!("{donor}/shm");
    assert!(mount_points().iter().any(|m| m.ends_with(&shm)));
    let joined = format!("{NS}; cat /dev/shm/f; echo joined > /dev/shm/g; ps -o pid,comm");
    let out = dy.ok(&[
        "run",
        "--name",
        "joiner",
        "--pid",
        "container:donor",
        "--ipc",
        "container:donor",
        "busybox",
        "sh",
        "-c",
        &joined,
    ]);
    let out = lines(&out);
    let donors = ns_of(&pid);
    // The donor's PID and IPC namespaces; its own UTS namespace.
    assert_eq!(out[..2], donors[..2]);
    assert_ne!(out[2], donors[2]);
    assert_eq!(out[4], "donated");
    // PID 1 is the donor's first process.
    assert!(
        out.iter()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["1", "sleep"]),
        "{out:?}"
    );
    // What the joiner wrote, the donor sees.
    assert_eq!(dy.ok(&["exec", "donor", "cat", "/dev/shm/g"]), "joined\n");
    // Recorded by ID, as docker's daemon records it.
    let by_id = format!("container:{donor}");
    assert_eq!(
        modes(&dy, "joiner"),
        format!("{by_id}|{by_id}||{}", default_cgroupns())
    );
    // A private IPC namespace cannot be joined; a stopped container neither.
    dy.ok(&["run", "-d", "--name", "private", "busybox", "sleep", "60"]);
    let id = dy.inspect("private", "{{.Id}}");
    let err = dy.fails(
        125,
        &[
            "run",
            "--rm",
            "--ipc",
            "container:private",
            "busybox",
            "true",
        ],
    );
    assert_eq!(
        err,
        format!(
            "dockyard: Error response from daemon: failed to join IPC namespace: container {id}: \
             non-shareable IPC (hint: use IpcMode:shareable for the donor container)\n\n\
             Run 'dockyard run --help' for more information\n"
        )
    );
    dy.ok(&["stop", "-t", "0", "donor"]);
    // Stopped, its /dev/shm is unmounted.
    assert!(!mount_points().iter().any(|m| m.ends_with(&shm)));
    let err = dy.fails(1, &["start", "joiner"]);
    assert!(
        err.contains(&format!(
            "failed to join IPC namespace: container {donor} is not running"
        )),
        "{err}"
    );
    let err = dy.fails(125, &["run", "--pid", "container:donor", "busybox", "true"]);
    assert!(
        err.contains(&format!(
            "failed to join PID namespace: container {donor} is not running"
        )),
        "{err}"
    );
    // One that does not exist is refused at create.
    let err = dy.fails(125, &["create", "--pid", "container:nope", "busybox"]);
    assert!(
        err.starts_with("dockyard: Error response from daemon: No such container: nope\n"),
        "{err}"
    );
}

#[test]
fn ns_modes_ipc_none_and_private_dev_shm() {
    let dy = Dy::new();
    let mounts = "grep ' /dev/shm ' /proc/mounts | cut -d' ' -f1,3; readlink /proc/self/ns/ipc";
    let none = lines(&dy.ok(&[
        "run", "--name", "none", "--ipc", "none", "busybox", "sh", "-c", mounts,
    ]));
    // No /dev/shm mount at all, and an IPC namespace of its own.
    assert_eq!(none.len(), 1, "{none:?}");
    assert_ne!(none[0], host_ns()[1]);
    assert_eq!(dy.inspect("none", "{{.HostConfig.IpcMode}}"), "none");
    let private = lines(&dy.ok(&["run", "--ipc", "private", "busybox", "sh", "-c", mounts]));
    assert_eq!(private[0], "shm tmpfs");
    assert_ne!(private[1], host_ns()[1]);
}

#[test]
fn ns_modes_refusals_are_dockers() {
    let dy = Dy::new();
    let help = |cmd: &str| format!("\n\nRun 'dockyard {cmd} --help' for more information\n");
    for cmd in ["run", "create"] {
        // docker's client refuses these itself...
        for (flag, value, why) in [
            ("--pid", "bogus", "--pid: invalid PID mode"),
            ("--pid", "container:", "--pid: invalid PID mode"),
            ("--uts", "private", "--uts: invalid UTS mode"),
            ("--cgroupns", "v1", "--cgroupns: invalid CGROUP mode"),
        ] {
            let err = dy.fails(125, &[cmd, flag, value, "busybox", "true"]);
            assert_eq!(err, format!("dockyard: {why}{}", help(cmd)));
        }
        // ...and its daemon these.
        let err = dy.fails(125, &[cmd, "--ipc", "bogus", "busybox", "true"]);
        assert_eq!(
            err,
            format!(
                "dockyard: Error response from daemon: invalid IPC mode: bogus{}",
                help(cmd)
            )
        );
        let err = dy.fails(125, &[cmd, "--uts", "host", "-h", "box", "busybox", "true"]);
        assert_eq!(
            err,
            format!(
                "dockyard: Error response from daemon: conflicting options: hostname and the UTS mode{}",
                help(cmd)
            )
        );
    }
    assert_eq!(dy.ok(&["ps", "-aq"]), "");
}

/// The cgroup namespace mode that is not this host's default.
fn other_cgroupns() -> &'static str {
    match default_cgroupns() {
        "host" => "private",
        _ => "host",
    }
}

#[test]
fn ns_modes_daemon_json_defaults_stand_in_for_the_flags() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("daemon.json");
    // The cgroup namespace default that differs from the host's own default,
    // so that the key, not the host, decides.
    let cgroupns = other_cgroupns();
    let text = format!(
        r#"{{"bridge": "none", "default-ipc-mode": "shareable", "default-cgroupns-mode": "{cgroupns}"}}"#
    );
    std::fs::write(&conf, text).unwrap();
    let dy = Dy::new().with_env(DAEMON_CONFIG_ENV, &conf);
    let host = host_ns();
    let id = dy.ok(&["run", "-d", "--name", "dj", "busybox", "sleep", "60"]);
    let id = id.trim();
    dy.wait_for("dj", "{{.State.Status}}", "running");
    let own = ns_of(&dy.inspect("dj", "{{.State.Pid}}"));
    // The key's cgroup namespace: its own on this v1 (hybrid) host.
    assert_eq!(own[3] == host[3], cgroupns == "host", "{own:?}");
    // Shareable: an IPC namespace of its own, with a /dev/shm kept on the
    // host, which another container may join.
    assert_ne!(own[1], host[1]);
    assert!(mount_points()
        .iter()
        .any(|m| m.ends_with(&format!("{id}/shm"))));
    let joined = dy.ok(&[
        "run",
        "--rm",
        "--ipc",
        "container:dj",
        "busybox",
        "readlink",
        "/proc/self/ns/ipc",
    ]);
    assert_eq!(joined.trim(), own[1]);
    assert_eq!(modes(&dy, "dj"), format!("|shareable||{cgroupns}"));
    // The flags win over the keys.
    let flags = ["--ipc", "private", "--cgroupns", default_cgroupns()];
    let mut args = vec!["run", "--name", "flags"];
    args.extend(flags);
    args.extend(["busybox", "sh", "-c", NS]);
    let out = lines(&dy.ok(&args));
    assert_ne!(out[1], host[1]);
    assert_eq!(out[3] == host[3], default_cgroupns() == "host", "{out:?}");
    assert_eq!(
        modes(&dy, "flags"),
        format!("|private||{}", default_cgroupns())
    );
    // `--privileged` on a v1 host keeps the host's cgroup namespace, key or
    // not, as dockerd's adaptContainerSettings has it.
    dy.ok(&["create", "--name", "priv", "--privileged", "busybox"]);
    let want = match default_cgroupns() {
        "host" => "host",
        _ => cgroupns,
    };
    assert_eq!(dy.inspect("priv", "{{.HostConfig.CgroupnsMode}}"), want);
    // And the service that read them gives them to the docker CLI's
    // containers too.
    let svc = Service::start(&dy);
    svc.docker_ok(&["create", "--name", "dk", "busybox"]);
    let fmt = "{{.HostConfig.IpcMode}}|{{.HostConfig.CgroupnsMode}}";
    assert_eq!(
        svc.docker_ok(&["inspect", "-f", fmt, "dk"]),
        format!("shareable|{cgroupns}\n")
    );
}

#[test]
fn ns_modes_bad_daemon_json_defaults_are_refused_in_dockerds_words() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("daemon.json");
    // A data root that never gets a container: every command is refused,
    // as dockerd refuses to start, before anything is made.
    let dy = Dy::empty("ns-modes-bad").with_env(DAEMON_CONFIG_ENV, &conf);
    let ipc = r#"use "shareable" or "private""#;
    for (keys, why) in [
        (
            r#""default-ipc-mode": "bogus""#,
            format!("default IPC mode setting (bogus) is invalid; {ipc}"),
        ),
        (
            r#""default-ipc-mode": "host""#,
            format!(r#"IPC mode "host" is not supported as default value; {ipc}"#),
        ),
        (
            r#""default-cgroupns-mode": "v1""#,
            r#"invalid default cgroup namespace (v1): use "host" or "private""#.to_string(),
        ),
    ] {
        std::fs::write(&conf, format!(r#"{{"bridge": "none", {keys}}}"#)).unwrap();
        for cmd in [&["create", "busybox"][..], &["ps"]] {
            let err = dy.fails(125, cmd);
            assert_eq!(err, format!("dockyard: in {}: {why}\n", conf.display()));
        }
    }
    std::fs::write(&conf, r#"{"bridge": "none"}"#).unwrap();
    assert_eq!(dy.ok(&["ps", "-aq"]), "");
}

#[test]
fn ns_modes_through_the_docker_cli_and_client_mode() {
    let dy = Dy::new();
    let svc = Service::start(&dy);
    let host = host_ns();
    // The docker CLI sends HostConfig.PidMode, UTSMode...; the service runs them.
    let out = svc.docker_ok(&[
        "run",
        "--name",
        "dk",
        "--pid",
        "host",
        "--uts",
        "host",
        "--cgroupns",
        "private",
        "busybox",
        "sh",
        "-c",
        NS,
    ]);
    let out = lines(&out);
    assert_eq!(out[0], host[0]);
    assert_ne!(out[1], host[1]);
    assert_eq!(out[2], host[2]);
    assert_ne!(out[3], host[3]);
    let fmt = "{{.HostConfig.PidMode}}|{{.HostConfig.IpcMode}}|{{.HostConfig.UTSMode}}|{{.HostConfig.CgroupnsMode}}";
    assert_eq!(
        svc.docker_ok(&["inspect", "-f", fmt, "dk"]),
        "host|private|host|private\n"
    );
    // The CLI's own refusal, and the daemon's.
    let err = text(&svc.docker(&["run", "--pid", "bogus", "busybox"]).stderr);
    assert!(
        err.starts_with("docker: --pid: invalid PID mode\n"),
        "{err}"
    );
    let bad = svc.docker(&["run", "--ipc", "bogus", "busybox"]);
    assert_eq!(bad.status.code(), Some(125));
    let err = text(&bad.stderr);
    assert!(
        err.starts_with("docker: Error response from daemon: invalid IPC mode: bogus\n"),
        "{err}"
    );
    // dockyard -H sends them as the docker CLI does.
    let out = Command::new(bin("dockyard"))
        .arg("-H")
        .arg(format!("unix://{}", svc.sock.display()))
        .args(["run", "--cgroup-parent", &dy.parent, "--name", "cm"])
        .args(["--ipc", "host", "--uts", "host", "busybox", "sh", "-c", NS])
        .env_remove("DOCKYARD_HOST")
        .env_remove("DOCKYARD_ROOT")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let out = lines(&text(&out.stdout));
    assert_eq!(out[1..3], host[1..3], "{out:?}");
    assert_ne!(out[0], host[0]);
    assert_eq!(
        modes(&dy, "cm"),
        format!("|host|host|{}", default_cgroupns())
    );
}
