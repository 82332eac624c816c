//! `run`/`create`'s process flags, as docker has them: `--group-add`,
//! `--sysctl`, `--oom-score-adj`, `--domainname` (seen in the kernel from
//! inside: /proc/self/status, /proc/sys, /proc/self/oom_score_adj, and the
//! host's own values unchanged), `--stop-signal` and `--stop-timeout`
//! (which signal `stop` delivers, and how long it waits), `--cidfile`,
//! `--label-file` and `-q`; `inspect`'s fields; the refusals in docker's
//! words; and the docker CLI against `system service`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dockyard_e2e::dockyard::{text, Dockyard as Dy};
use dockyard_e2e::fixtures::bin;

use super::api::Service;

/// The `Groups:` line of /proc/self/status, then `id`.
const GROUPS: &str = "grep ^Groups: /proc/self/status; id";

#[test]
fn process_flags_groups_domainname_and_oom_score_reach_the_kernel() {
    let dy = Dy::new();
    let host_domain = std::fs::read_to_string("/proc/sys/kernel/domainname").unwrap();
    let host_oom = std::fs::read_to_string("/proc/self/oom_score_adj").unwrap();
    let out = dy.ok(&[
        "run",
        "--name",
        "grp",
        "--group-add",
        "nogroup",
        "--group-add",
        "4242",
        "--domainname",
        "example.org",
        // (Positive: lowering it below 0 needs CAP_SYS_RESOURCE, which
        // not every test host gives root.)
        "--oom-score-adj",
        "500",
        "busybox",
        "sh",
        "-c",
        &format!(
            "{GROUPS}; cat /proc/sys/kernel/domainname /proc/self/oom_score_adj; \
             sh -c 'cat /proc/self/oom_score_adj'"
        ),
    ]);
    // The kernel keeps the groups sorted; nogroup is the image's 65534.
    assert_eq!(
        out,
        "Groups:\t0 4242 65534 \n\
         uid=0(root) gid=0(root) groups=0(root),4242,65534(nogroup)\n\
         example.org\n500\n500\n"
    );
    // The host's own are as they were.
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/domainname").unwrap(),
        host_domain
    );
    assert_eq!(
        std::fs::read_to_string("/proc/self/oom_score_adj").unwrap(),
        host_oom
    );
    assert_eq!(
        dy.inspect(
            "grp",
            "{{json .HostConfig.GroupAdd}} {{.HostConfig.OomScoreAdj}} {{.Config.Domainname}}"
        ),
        "[\"nogroup\",\"4242\"] 500 example.org"
    );
    // With -u, the user's own groups and the added ones; a second start
    // sets them again.
    dy.ok(&[
        "create",
        "--name",
        "usr",
        "-u",
        "1000:1000",
        "--group-add",
        "nogroup",
        "busybox",
        "sh",
        "-c",
        GROUPS,
    ]);
    for _ in 0..2 {
        assert_eq!(
            dy.ok(&["start", "-a", "usr"]),
            "Groups:\t1000 65534 \nuid=1000 gid=1000 groups=1000,65534(nogroup)\n"
        );
    }
    // An exec gets them too, as dockerd gives it them, for -u as well.
    let sleeper = ["run", "-d", "--name", "ex", "--group-add", "nogroup"];
    dy.ok(&[&sleeper[..], &["busybox", "sleep", "30"]].concat());
    let status = ["grep", "^Groups:", "/proc/self/status"];
    assert_eq!(
        dy.ok(&[&["exec", "ex"][..], &status].concat()),
        "Groups:\t0 65534 \n"
    );
    assert_eq!(
        dy.ok(&[&["exec", "-u", "1000", "ex"][..], &status].concat()),
        "Groups:\t0 65534 \n"
    );
    dy.ok(&["rm", "-f", "ex"]);
    // Without the flags: none of it, and docker's empty fields.
    let out = dy.ok(&["run", "--name", "plain", "busybox", "sh", "-c", GROUPS]);
    assert!(!out.contains("4242") && !out.contains("65534"), "{out}");
    assert_eq!(
        dy.inspect(
            "plain",
            "{{json .HostConfig.GroupAdd}} {{.HostConfig.OomScoreAdj}} [{{.Config.Domainname}}]"
        ),
        "null 0 []"
    );
    // A group name the image lacks fails the start, in runc's words.
    let err = dy.fails(125, &["run", "--group-add", "nosuch", "busybox", "true"]);
    assert!(
        err.contains("unable to find group nosuch: no matching entries in group file"),
        "{err}"
    );
}

#[test]
fn process_flags_sysctls_are_the_containers_own_namespaces() {
    let dy = Dy::new();
    let host = |p: &str| std::fs::read_to_string(p).unwrap();
    let (fwd, shmmax) = (
        host("/proc/sys/net/ipv4/ip_forward"),
        host("/proc/sys/kernel/shmmax"),
    );
    let out = dy.ok(&[
        "run",
        "--name",
        "sys",
        "--network",
        "none",
        "--sysctl",
        "net.ipv4.ip_forward=1",
        "--sysctl",
        "kernel.shmmax=1234567",
        "busybox",
        "cat",
        "/proc/sys/net/ipv4/ip_forward",
        "/proc/sys/kernel/shmmax",
    ]);
    assert_eq!(out, "1\n1234567\n");
    assert_eq!(host("/proc/sys/net/ipv4/ip_forward"), fwd);
    assert_eq!(host("/proc/sys/kernel/shmmax"), shmmax);
    assert_eq!(
        dy.inspect("sys", "{{json .HostConfig.Sysctls}}"),
        r#"{"kernel.shmmax":"1234567","net.ipv4.ip_forward":"1"}"#
    );
    // The host's network namespace is not the container's: runc's refusal
    // at start, and the host keeps its value.
    let err = dy.fails(
        125,
        &[
            "run",
            "--network",
            "host",
            "--sysctl",
            "net.ipv4.ip_forward=1",
            "busybox",
            "true",
        ],
    );
    assert!(
        err.contains("sysctl \"net.ipv4.ip_forward\" not allowed in host network namespace"),
        "{err}"
    );
    assert_eq!(host("/proc/sys/net/ipv4/ip_forward"), fwd);
    // What no namespace holds, the docker CLI refuses as it parses.
    for value in [
        "kernel.pid_max=1",
        "kernel.hostname=x",
        "net.ipv4.ip_forward",
    ] {
        let err = dy.fails(125, &["run", "--sysctl", value, "busybox", "true"]);
        assert_eq!(
            err,
            format!(
                "invalid argument \"{value}\" for \"--sysctl\" flag: sysctl '{value}' is not \
                 allowed\n\nUsage:  dockyard run [OPTIONS] IMAGE [COMMAND] [ARG...]\n\n\
                 Run 'dockyard run --help' for more information\n"
            )
        );
    }
}

/// A container whose shell writes the name of the signal it gets to
/// /v/sig, having said it is ready in /v/ready.
const TRAPS: &str = "trap 'echo USR1 > /v/sig; exit 3' USR1; \
    trap 'echo TERM > /v/sig; exit 4' TERM; \
    touch /v/ready; while true; do sleep 0.1; done";

fn wait_ready(dir: &std::path::Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !dir.join("ready").exists() {
        assert!(Instant::now() < deadline, "the container never got ready");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::fs::remove_file(dir.join("ready")).unwrap();
}

#[test]
fn process_flags_stop_signal_and_stop_timeout_are_what_stop_uses() {
    let dy = Dy::new();
    let dir = tempfile::tempdir().unwrap();
    let vol = format!("{}:/v", dir.path().display());
    let sig = || std::fs::read_to_string(dir.path().join("sig")).unwrap_or_default();
    let run = |name: &str, flags: &[&str], cmd: &str| {
        let mut args = vec!["run", "-d", "--name", name, "-v", &vol];
        args.extend(flags);
        args.extend(["busybox", "sh", "-c", cmd]);
        dy.ok(&args);
        wait_ready(dir.path());
    };
    // --stop-signal: stop delivers it, and the shell's trap says so.
    run("usr1", &["--stop-signal", "SIGUSR1"], TRAPS);
    dy.ok(&["stop", "usr1"]);
    assert_eq!(sig(), "USR1\n");
    assert_eq!(dy.inspect("usr1", "{{.State.ExitCode}}"), "3");
    assert_eq!(dy.inspect("usr1", "{{.Config.StopSignal}}"), "SIGUSR1");
    // restart too, and stop -s still wins over it.
    dy.ok(&["start", "usr1"]);
    wait_ready(dir.path());
    dy.ok(&["restart", "usr1"]);
    assert_eq!(sig(), "USR1\n");
    wait_ready(dir.path());
    dy.ok(&["stop", "-s", "TERM", "usr1"]);
    assert_eq!(sig(), "TERM\n");
    // An image's STOPSIGNAL is used without the flag, and the flag wins
    // over it.
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM busybox\nSTOPSIGNAL SIGUSR1\n",
    )
    .unwrap();
    dy.ok(&["build", "-q", "-t", "usr1img", ctx.path().to_str().unwrap()]);
    for (name, flags, want) in [
        ("img", &[][..], "USR1\n"),
        ("flag", &["--stop-signal", "TERM"][..], "TERM\n"),
    ] {
        let mut args = vec!["run", "-d", "--name", name, "-v", &vol];
        args.extend(flags);
        args.extend(["usr1img", "sh", "-c", TRAPS]);
        dy.ok(&args);
        wait_ready(dir.path());
        dy.ok(&["stop", name]);
        assert_eq!(sig(), want, "{name}");
    }
    // rm -f kills, as dockerd does: no stop signal, no trap.
    std::fs::remove_file(dir.path().join("sig")).unwrap();
    dy.ok(&["start", "usr1"]);
    wait_ready(dir.path());
    dy.ok(&["rm", "-f", "usr1"]);
    assert_eq!(sig(), "");
    // --stop-timeout: how long stop waits for a PID 1 that ignores the
    // signal (the kernel drops SIGTERM for an init without a handler)
    // before SIGKILL; -t still wins over it.
    let idle = "touch /v/ready; while true; do sleep 0.1; done";
    run("t1", &["--stop-timeout", "1"], idle);
    assert_eq!(dy.inspect("t1", "{{.Config.StopTimeout}}"), "1");
    let started = Instant::now();
    dy.ok(&["stop", "t1"]);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(5),
        "{took:?}"
    );
    assert_eq!(dy.inspect("t1", "{{.State.ExitCode}}"), "137");
    dy.ok(&["start", "t1"]);
    wait_ready(dir.path());
    let started = Instant::now();
    dy.ok(&["stop", "-t", "0", "t1"]);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    // Without it, inspect has no StopTimeout, as docker's.
    dy.ok(&["create", "--name", "none", "busybox"]);
    assert!(!dy
        .inspect("none", "{{json .Config}}")
        .contains("StopTimeout"));
}

#[test]
fn process_flags_cidfile_and_label_file_are_the_clients() {
    let dy = Dy::new();
    let dir = tempfile::tempdir().unwrap();
    let cid = dir.path().join("cid");
    let cid_s = cid.to_str().unwrap();
    dy.ok(&[
        "run",
        "--name",
        "cid",
        "--cidfile",
        cid_s,
        "busybox",
        "true",
    ]);
    let id = std::fs::read_to_string(&cid).unwrap();
    assert_eq!(id, dy.inspect("cid", "{{.Id}}"));
    assert_eq!(id.len(), 64);
    // A second container with the same file is refused before it exists.
    for cmd in ["run", "create"] {
        let err = dy.fails(125, &[cmd, "--cidfile", cid_s, "busybox", "true"]);
        assert_eq!(
            err,
            format!(
                "dockyard: container ID file found, make sure the other container isn't \
                 running or delete {cid_s}\n\nRun 'dockyard {cmd} --help' for more information\n"
            )
        );
    }
    assert_eq!(std::fs::read_to_string(&cid).unwrap(), id);
    // A create that fails leaves no file behind.
    let other = dir.path().join("other");
    dy.fails(
        125,
        &[
            "create",
            "--cidfile",
            other.to_str().unwrap(),
            "--name",
            "cid",
            "busybox",
        ],
    );
    assert!(!other.exists());
    assert_eq!(dy.ok(&["ps", "-aq"]).lines().count(), 1);
    // --label-file: its lines, then -l, which wins.
    let labels = dir.path().join("labels");
    std::fs::write(&labels, "# a comment\n\n  a=1\nb=2\nempty\n").unwrap();
    let lf = labels.to_str().unwrap();
    dy.ok(&[
        "create",
        "--name",
        "lab",
        "--label-file",
        lf,
        "-l",
        "b=3",
        "busybox",
    ]);
    assert_eq!(
        dy.inspect("lab", "{{json .Config.Labels}}"),
        r#"{"a":"1","b":"3","empty":""}"#
    );
    std::fs::write(&labels, "a b=1\n").unwrap();
    let err = dy.fails(125, &["create", "--label-file", lf, "busybox"]);
    assert_eq!(
        err,
        format!(
            "dockyard: invalid env file ({lf}): variable 'a b' contains whitespaces\n\n\
             Run 'dockyard create --help' for more information\n"
        )
    );
    let err = dy.fails(125, &["run", "--label-file", "/no/such/file", "busybox"]);
    assert!(
        err.starts_with("dockyard: open /no/such/file: no such file or directory\n"),
        "{err}"
    );
    // -q: nothing of the pull on stderr, only the error.
    let out = dy.run(&["run", "-q", "--rm", "no-such-image", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        !text(&out.stderr).contains("Unable to find image"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(dy.ok(&["ps", "-aq"]).lines().count(), 2);
}

#[test]
fn process_flags_bad_values_are_refused_in_dockers_words() {
    let dy = Dy::new();
    let usage = |cmd: &str| {
        format!(
            "\n\nUsage:  dockyard {cmd} [OPTIONS] IMAGE [COMMAND] [ARG...]\n\n\
             Run 'dockyard {cmd} --help' for more information\n"
        )
    };
    for cmd in ["run", "create"] {
        for flag in ["--oom-score-adj", "--stop-timeout"] {
            let err = dy.fails(125, &[cmd, flag, "x", "busybox", "true"]);
            assert_eq!(
                err,
                format!(
                    "invalid argument \"x\" for \"{flag}\" flag: strconv.ParseInt: parsing \
                     \"x\": invalid syntax{}",
                    usage(cmd)
                )
            );
        }
        for n in ["1001", "-1001"] {
            let err = dy.fails(125, &[cmd, "--oom-score-adj", n, "busybox", "true"]);
            assert_eq!(
                err,
                format!(
                    "dockyard: Error response from daemon: Invalid value {n}, range for oom \
                     score adj is [-1000, 1000]\n\nRun 'dockyard {cmd} --help' for more \
                     information\n"
                )
            );
        }
        let err = dy.fails(125, &[cmd, "--stop-signal", "FOO", "busybox", "true"]);
        assert_eq!(
            err,
            format!(
                "dockyard: Error response from daemon: invalid signal: FOO\n\n\
                 Run 'dockyard {cmd} --help' for more information\n"
            )
        );
    }
    assert_eq!(dy.ok(&["ps", "-aq"]), "");
}

#[test]
fn process_flags_through_the_docker_cli_and_client_mode() {
    let dy = Dy::new();
    let svc = Service::start(&dy);
    let cmd = "grep ^Groups: /proc/self/status; cat /proc/sys/kernel/domainname \
               /proc/self/oom_score_adj /proc/sys/net/ipv4/ip_forward";
    let flags = [
        "--network",
        "none",
        "--group-add",
        "nogroup",
        "--domainname",
        "example.org",
        "--oom-score-adj",
        "300",
        "--sysctl",
        "net.ipv4.ip_forward=1",
        "--stop-signal",
        "SIGUSR1",
        "--stop-timeout",
        "7",
    ];
    let want = "Groups:\t0 65534 \nexample.org\n300\n1\n";
    let mut args = vec!["run", "--name", "dk"];
    args.extend(flags);
    args.extend(["busybox", "sh", "-c", cmd]);
    assert_eq!(svc.docker_ok(&args), want);
    let fields = "{{json .HostConfig.GroupAdd}} {{.HostConfig.OomScoreAdj}} \
                  {{json .HostConfig.Sysctls}} {{.Config.Domainname}} {{.Config.StopSignal}} \
                  {{.Config.StopTimeout}}";
    let shown = "[\"nogroup\"] 300 {\"net.ipv4.ip_forward\":\"1\"} example.org SIGUSR1 7";
    assert_eq!(
        svc.docker_ok(&["inspect", "-f", fields, "dk"]),
        format!("{shown}\n")
    );
    // dockyard -H sends them as the docker CLI does.
    let out = Command::new(bin("dockyard"))
        .arg("-H")
        .arg(format!("unix://{}", svc.sock.display()))
        .args(["run", "--cgroup-parent", &dy.parent, "--name", "cm"])
        .args(flags)
        .args(["busybox", "sh", "-c", cmd])
        .env_remove("DOCKYARD_HOST")
        .env_remove("DOCKYARD_ROOT")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(text(&out.stdout), want, "{}", text(&out.stderr));
    assert_eq!(dy.inspect("cm", fields), shown);
    // docker stop sends no t unless -t: the container's --stop-timeout.
    let idle = "while true; do sleep 0.1; done";
    let args = ["run", "-d", "--name", "dt", "--stop-timeout", "1"];
    svc.docker_ok(&[&args[..], &["busybox", "sh", "-c", idle]].concat());
    let started = Instant::now();
    svc.docker_ok(&["stop", "dt"]);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(5),
        "{took:?}"
    );
    // dockerd's refusal, a 400 the CLI prints as it is.
    let out = svc.docker(&["run", "--oom-score-adj", "1001", "busybox", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        text(&out.stderr).starts_with(
            "docker: Error response from daemon: Invalid value 1001, range for oom score adj \
             is [-1000, 1000]"
        ),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(dy.ok(&["ps", "-aq"]).lines().count(), 3);
}
