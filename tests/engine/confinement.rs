//! What a container is confined by, seen from inside and from the host:
//! its namespaces (`ls -l /proc/PID/ns`), cgroup (`cat /proc/PID/cgroup`),
//! capabilities (`grep Cap /proc/PID/status`), user, rlimits (`ulimit -a`)
//! and signal dispositions, for `run` and for `exec`.

use std::process::Command;
use std::time::{Duration, Instant};

use dockyard_e2e::dockyard::{leftover_cgroups, text, Dockyard as Dy};
use dockyard_e2e::fixtures::bin;
use serde_json::Value;

#[test]
fn a_default_container_is_confined_as_dockers() {
    let dy = Dy::new();
    let out = dy.ok(&["run", "--rm", "busybox", "probe"]);
    let report: Value = serde_json::from_str(&out).unwrap();
    // Docker's default capability set, seccomp in filter mode, no_new_privs.
    assert_eq!(
        report["capabilities"]["bounding"]["hex"],
        "00000000a80425fb"
    );
    assert_eq!(
        report["capabilities"]["effective"]["hex"],
        "00000000a80425fb"
    );
    assert_eq!(report["capabilities"]["ambient"]["hex"], "0000000000000000");
    assert_eq!(report["seccomp"], 2);
    assert_eq!(report["no_new_privs"], true);
    // /proc/sys is read-only, /sys too.
    let mounts = report["mounts"].as_array().unwrap();
    let opts = |mp: &str| {
        mounts
            .iter()
            .rfind(|m| m["mount_point"] == mp)
            .map(|m| m["options"].as_str().unwrap_or("").to_string())
    };
    assert!(
        opts("/proc/sys").unwrap_or_default().starts_with("ro"),
        "{:?}",
        opts("/proc/sys")
    );
    assert!(
        opts("/sys").unwrap_or_default().starts_with("ro"),
        "{:?}",
        opts("/sys")
    );

    let mount = "mkdir -p /mnt/x && mount -t tmpfs none /mnt/x && echo mounted";
    let out = dy.run(&["run", "--rm", "busybox", "sh", "-c", mount]);
    assert!(
        !text(&out.stdout).contains("mounted"),
        "a default container mounted a filesystem"
    );
    assert_eq!(
        dy.ok(&["run", "--rm", "--privileged", "busybox", "sh", "-c", mount]),
        "mounted\n"
    );

    // --cap-drop takes a capability away; --read-only makes / read-only.
    let out = dy.run(&[
        "run",
        "--rm",
        "--cap-drop",
        "CHOWN",
        "busybox",
        "chown",
        "1:1",
        "/tmp",
    ]);
    assert_ne!(out.status.code(), Some(0), "chown worked without CAP_CHOWN");
    let out = dy.run(&["run", "--rm", "--read-only", "busybox", "touch", "/file"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        text(&out.stderr).contains("Read-only file system"),
        "{}",
        text(&out.stderr)
    );
    let out = dy.run(&["run", "--rm", "--cap-add", "NOPE", "busybox", "true"]);
    assert_eq!(out.status.code(), Some(125), "{}", text(&out.stderr));
    assert!(
        leftover_cgroups(&dy.parent).is_empty(),
        "{:?}",
        leftover_cgroups(&dy.parent)
    );
}

#[test]
fn exec_joins_every_namespace_and_the_cgroup_of_a_running_container() {
    let dy = Dy::new();
    dy.ok(&[
        "run",
        "-d",
        "--name",
        "box",
        "busybox",
        "sh",
        "-c",
        "echo made > /tmp/made; while :; do sleep 0.1; done",
    ]);
    dy.wait_for("box", "{{.State.Status}}", "running");
    let pid = dy.inspect("box", "{{.State.Pid}}");
    let id = dy.inspect("box", "{{.Id}}");

    let report: Value = serde_json::from_str(&dy.ok(&["exec", "box", "probe"])).unwrap();
    use std::os::unix::fs::MetadataExt;
    for ns in ["mnt", "uts", "ipc", "pid", "net"] {
        let container = std::fs::metadata(format!("/proc/{pid}/ns/{ns}"))
            .unwrap()
            .ino();
        assert_eq!(
            report["namespaces"][ns].as_u64(),
            Some(container),
            "exec is not in the container's {ns} namespace"
        );
    }
    assert_ne!(report["pid"], 1, "exec'd process is not PID 1");
    assert_eq!(report["hostname"], &id[..12]);
    assert_eq!(
        report["capabilities"]["bounding"]["hex"],
        "00000000a80425fb"
    );
    assert_eq!(report["seccomp"], 2);
    let cgroups: Vec<&str> = report["cgroup"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    if lab03_cgroups::detect().unwrap().version() == lab03_cgroups::Version::V1 {
        assert!(
            cgroups
                .iter()
                .any(|l| l.ends_with(&format!("/{}/{id}", dy.parent))),
            "{cgroups:?}"
        );
    }

    // The container's files (once its first command has written one),
    // environment and working directory rules.
    let deadline = Instant::now() + Duration::from_secs(10);
    while dy
        .run(&["exec", "box", "test", "-e", "/tmp/made"])
        .status
        .code()
        != Some(0)
    {
        assert!(
            Instant::now() < deadline,
            "the container never wrote /tmp/made"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(dy.ok(&["exec", "box", "cat", "/tmp/made"]), "made\n");
    assert_eq!(
        dy.ok(&[
            "exec",
            "-e",
            "X=1",
            "-w",
            "/tmp",
            "box",
            "sh",
            "-c",
            "echo $X $(pwd)"
        ]),
        "1 /tmp\n"
    );
    assert_eq!(
        dy.run(&["exec", "box", "sh", "-c", "exit 7"]).status.code(),
        Some(7)
    );
    assert_eq!(
        dy.run(&["exec", "box", "no-such-command"]).status.code(),
        Some(127)
    );
    // -d: the command outlives the exec.
    dy.ok(&[
        "exec",
        "-d",
        "box",
        "sh",
        "-c",
        "sleep 0.3; echo late > /tmp/late",
    ]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while dy.run(&["exec", "box", "cat", "/tmp/late"]).status.code() != Some(0) {
        assert!(Instant::now() < deadline, "exec -d's command never ran");
        std::thread::sleep(Duration::from_millis(100));
    }
    dy.ok(&["stop", "-t", "1", "box"]);
    let out = dy.run(&["exec", "box", "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("is not running"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn users_come_from_the_image_and_lose_capabilities() {
    let dy = Dy::new();
    let out = dy.ok(&[
        "run",
        "--rm",
        "-u",
        "nobody",
        "busybox",
        "sh",
        "-c",
        "id; grep CapEff /proc/self/status",
    ]);
    assert_eq!(
        out,
        "uid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)\nCapEff:\t0000000000000000\n"
    );
    assert_eq!(
        dy.ok(&["run", "--rm", "-u", "1234:5678", "busybox", "id", "-u"]),
        "1234\n"
    );
    let out = dy.run(&["run", "--rm", "-u", "ghost", "busybox", "id"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        text(&out.stderr).contains("unable to find user ghost"),
        "{}",
        text(&out.stderr)
    );

    // An image's USER applies to run, to RUN steps when building, and to exec.
    let ctx = dy.root_path().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nUSER nobody\nRUN id -u > /tmp/built-as\n",
    )
    .unwrap();
    let out = dy.run(&["build", "-t", "asnobody:1", ctx.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(
        dy.ok(&[
            "run",
            "--rm",
            "asnobody:1",
            "sh",
            "-c",
            "cat /tmp/built-as; id -u"
        ]),
        "65534\n65534\n"
    );
    dy.ok(&["run", "-d", "--name", "nb", "asnobody:1", "sleep", "30"]);
    dy.wait_for("nb", "{{.State.Status}}", "running");
    assert_eq!(dy.inspect("nb", "{{.Config.User}}"), "nobody");
    assert_eq!(dy.ok(&["exec", "nb", "id", "-u"]), "65534\n");
    assert_eq!(dy.ok(&["exec", "-u", "root", "nb", "id", "-u"]), "0\n");
}

#[test]
fn ulimits_and_daemon_json_defaults_apply() {
    let dy = Dy::new();
    assert_eq!(
        dy.ok(&[
            "run",
            "--rm",
            "--ulimit",
            "nofile=1024:2048",
            "busybox",
            "sh",
            "-c",
            "ulimit -n; ulimit -Hn"
        ]),
        "1024\n2048\n"
    );
    let out = dy.run(&["run", "--rm", "--ulimit", "nofile=9:1", "busybox", "true"]);
    assert_eq!(out.status.code(), Some(125));
    // daemon.json: default-ulimits and log-opts apply where the command line is silent.
    let conf = dy.root_path().join("daemon.json");
    std::fs::write(&conf, r#"{"bridge": "none", "default-ulimits": {"nofile": {"Name": "nofile", "Soft": 512, "Hard": 1024}}, "log-opts": {"max-size": "1k", "max-file": "2"}}"#).unwrap();
    let out = Command::new(bin("dockyard"))
        .args([
            "--root",
            dy.root.path().to_str().unwrap(),
            "--config",
            conf.to_str().unwrap(),
            "run",
            "--name",
            "dj",
        ])
        .arg(format!("--cgroup-parent={}", dy.parent))
        .args(["busybox", "sh", "-c", "ulimit -n"])
        .output()
        .unwrap();
    assert_eq!(text(&out.stdout), "512\n", "{}", text(&out.stderr));
    assert_eq!(
        dy.inspect("dj", "{{json .HostConfig.LogConfig.Config}}"),
        r#"{"max-file":"2","max-size":"1k"}"#
    );
}

#[test]
fn a_container_starts_with_default_signals_whatever_its_caller_ignores() {
    use std::os::unix::process::CommandExt;
    let dy = Dy::new();
    dy.ok(&["run", "-d", "--name", "sigs", "busybox", "sleep", "60"]);
    // grep itself, not through sh: a shell sets some of its own.
    let status = ["grep", "-E", "SigBlk|SigIgn", "/proc/self/status"];
    for args in [
        [&["run", "--rm", "busybox"][..], &status[..]].concat(),
        [&["exec", "sigs"][..], &status[..]].concat(),
    ] {
        let mut c = dy.command(&args);
        // As a script's `cmd &` (SIGINT, SIGQUIT) or nohup (SIGHUP) starts
        // dockyard, with a blocked signal on top.
        unsafe {
            c.pre_exec(|| {
                for sig in [libc::SIGINT, libc::SIGQUIT, libc::SIGHUP] {
                    libc::signal(sig, libc::SIG_IGN);
                }
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                libc::sigaddset(&mut set, libc::SIGUSR1);
                libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
                Ok(())
            })
        };
        let out = c.output().unwrap();
        assert_eq!(
            text(&out.stdout),
            "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n",
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
}

/// The supplementary groups in /proc/self/status's `Groups:` line, then
/// what busybox's `id` makes of them.
const GROUPS: &str = "grep ^Groups: /proc/self/status; id";

#[test]
fn root_gets_the_groups_its_images_etc_group_lists_it_in() {
    let dy = Dy::new();
    // An image whose /etc/group names root in two groups (alpine's has
    // `wheel:x:10:root`); our busybox image's names no members.
    let ctx = dy.root_path().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\n\
         RUN echo wheel:x:10:root >> /etc/group && echo adm:x:4:root,adm >> /etc/group\n\
         RUN id > /built-as\n",
    )
    .unwrap();
    let out = dy.run(&["build", "-t", "rootgroups:1", ctx.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    // As docker (20.10.24, run here) shows it for such an image: the
    // kernel's list, sorted, with the primary gid in it.
    let ids = "uid=0(root) gid=0(root) groups=0(root),4(adm),10(wheel)\n";
    let grouped = format!("Groups:\t0 4 10 \n{ids}");
    // Root with its gid alone (a group said, or an image that lists root
    // nowhere), as docker shows it: still switched to, the gid in the list.
    let alone = "Groups:\t0 \nuid=0(root) gid=0(root) groups=0(root)\n";
    // `run --rm [FLAGS] rootgroups:1 sh -c GROUPS`, and the `exec` form.
    let run = |flags: &[&str]| {
        let args = [
            &["run", "--rm"][..],
            flags,
            &["rootgroups:1", "sh", "-c", GROUPS],
        ];
        dy.ok(&args.concat())
    };
    let exec = |flags: &[&str], name: &str| {
        dy.ok(&[&["exec"][..], flags, &[name, "sh", "-c", GROUPS]].concat())
    };

    // A RUN step's container is root of the image as it is then.
    let built = dy.ok(&["run", "--rm", "rootgroups:1", "cat", "/built-as"]);
    assert_eq!(built, ids);
    for user in [&[][..], &["-u", "root"], &["-u", "0"]] {
        assert_eq!(run(user), grouped, "{user:?}");
    }
    // With the group said, docker looks no groups up: the group said alone.
    assert_eq!(run(&["-u", "0:0"]), alone);
    let wheel = "Groups:\t10 \nuid=0(root) gid=10(wheel) groups=10(wheel)\n";
    assert_eq!(run(&["-u", "root:wheel"]), wheel);

    // An exec is root as the container's first process is, unless -u says.
    dy.ok(&["run", "-d", "--name", "rg", "rootgroups:1", "sleep", "30"]);
    dy.ok(&[
        "run",
        "-d",
        "--name",
        "rg00",
        "-u",
        "0:0",
        "rootgroups:1",
        "sleep",
        "30",
    ]);
    dy.wait_for("rg", "{{.State.Status}}", "running");
    dy.wait_for("rg00", "{{.State.Status}}", "running");
    assert_eq!(exec(&[], "rg"), grouped);
    assert_eq!(exec(&["-u", "0:0"], "rg"), alone);
    assert_eq!(exec(&[], "rg00"), alone);
    assert_eq!(exec(&["-u", "root"], "rg00"), grouped);
    // Without a user, as dockerd: the groups the first process started
    // with, whatever /etc/group says since; with one, /etc/group now.
    dy.ok(&["exec", "rg", "sed", "-i", "/^wheel:/d", "/etc/group"]);
    let started = exec(&[], "rg");
    assert!(started.starts_with("Groups:\t0 4 10 \n"), "{started}");
    let now = exec(&["-u", "root"], "rg");
    assert!(now.starts_with("Groups:\t0 4 \n"), "{now}");
    dy.ok(&["rm", "-f", "rg", "rg00"]);

    // The base image: no member lists, the gid alone, as docker's; and not
    // the groups of whoever ran dockyard (setpriv runs it with gid and group
    // 1, which the container's root kept before it was always switched to).
    let base = dy.ok(&["run", "--rm", "busybox", "sh", "-c", GROUPS]);
    assert_eq!(base, alone);
    let inner = dy.command(&["run", "--rm", "busybox", "sh", "-c", GROUPS]);
    let out = Command::new("setpriv")
        .args(["--regid=1", "--groups=1"])
        .arg(inner.get_program())
        .args(inner.get_args())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(text(&out.stdout), alone, "{}", text(&out.stderr));
}
