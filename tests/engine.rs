//! The engine, observed from outside and inside: the whole life of a
//! container through `dockyard`, checked against the kernel (mount table,
//! cgroups, /proc) and the probe.
//!
//! Every test gets its own data root and cgroup parent, and removes every
//! container it made when it ends, even by panic.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use dockyard_e2e::dockyard::{
    container_dirs, leftover_cgroups, mount_points, text, Dockyard as Dy,
};
use dockyard_e2e::fixtures::{base_rootfs, bin, ns_inode, require_root, workspace_root};
use serde_json::Value;

#[test]
fn run_rm_prints_and_leaves_nothing_behind() {
    let dy = Dy::new();
    assert_eq!(
        dy.ok(&["run", "--rm", "busybox", "echo", "hello"]),
        "hello\n"
    );
    assert!(
        container_dirs(&dy.root_path()).is_empty(),
        "{:?}",
        container_dirs(&dy.root_path())
    );
    assert!(dy.ok(&["ps", "-aq"]).is_empty());
    let root = dy.root.path().to_string_lossy().to_string();
    assert!(
        !mount_points().iter().any(|m| m.starts_with(&root)),
        "an overlay is still mounted"
    );
    assert!(
        leftover_cgroups(&dy.parent).is_empty(),
        "{:?}",
        leftover_cgroups(&dy.parent)
    );
}

#[test]
fn the_default_cgroup_parent_goes_with_its_last_container() {
    let dy = Dy::new();
    let parents = || {
        std::fs::read_dir("/sys/fs/cgroup")
            .unwrap()
            .flatten()
            .map(|e| e.path().join("dockyard"))
            .filter(|p| p.is_dir())
            .collect::<Vec<_>>()
    };
    // Without --cgroup-parent (Dy adds one to run and create).
    let run = |args: &[&str]| {
        let mut c = Command::new(bin("dockyard"));
        c.arg("--root").arg(dy.root.path()).args(args);
        let out = c.stdin(Stdio::null()).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    if !parents().is_empty() {
        eprintln!("skipped: another engine's containers are in the default parent");
        return;
    }
    run(&[
        "run",
        "-d",
        "--name",
        "in-default",
        "busybox",
        "sleep",
        "60",
    ]);
    assert!(
        !parents().is_empty(),
        "the container's cgroup is under `dockyard`"
    );
    run(&["rm", "-f", "in-default"]);
    assert_eq!(parents(), Vec::<PathBuf>::new(), "the parent stayed");
    run(&["run", "--rm", "busybox", "true"]);
    assert_eq!(parents(), Vec::<PathBuf>::new(), "run --rm left the parent");
}

#[test]
fn exit_codes_follow_docker() {
    let dy = Dy::new();
    let code = |args: &[&str]| dy.run(args).status.code();
    assert_eq!(
        code(&["run", "--rm", "busybox", "sh", "-c", "exit 3"]),
        Some(3)
    );
    // Death by signal N is 128+N. The shell must not be PID 1 for this: the
    // kernel drops signals that PID 1 sends itself (and SIGKILL from inside
    // its namespace), so with --init the shell is PID 2.
    assert_eq!(
        code(&["run", "--rm", "--init", "busybox", "sh", "-c", "kill -9 $$"]),
        Some(137)
    );
    assert_eq!(
        code(&[
            "run",
            "--rm",
            "busybox",
            "sh",
            "-c",
            "kill -9 $$; echo still here"
        ]),
        Some(0)
    );
    let out = dy.run(&["run", "--rm", "busybox", "no-such-command"]);
    assert_eq!(out.status.code(), Some(127));
    assert!(
        text(&out.stderr).contains("executable file not found"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(code(&["run", "--rm", "busybox", "/etc/passwd"]), Some(126));
    let out = dy.run(&["run", "--rm", "no-such-image", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        text(&out.stderr).contains("Unable to find image 'no-such-image'"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(code(&["run", "--no-such-flag", "busybox"]), Some(125));
    let out = dy.run(&["run", "--name", "p", "busybox", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        text(&out.stderr).contains("Invalid container name (p)"),
        "{}",
        text(&out.stderr)
    );
    let out = dy.run(&["rm", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("No such container: nope"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn the_probe_sees_a_container() {
    let dy = Dy::new();
    let out = dy.ok(&["run", "--name", "probe1", "busybox", "probe"]);
    let report: Value = serde_json::from_str(&out).expect("probe JSON");
    let id = dy.inspect("probe1", "{{.Id}}");
    assert_eq!(report["pid"], 1, "the command is PID 1");
    assert_eq!(
        report["hostname"],
        &id[..12],
        "docker's default hostname is the short ID"
    );
    let root = report["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mount_point"] == "/")
        .unwrap()
        .clone();
    assert_eq!(root["fs_type"], "overlay", "{root}");
    for ns in ["mnt", "uts", "ipc", "pid", "net"] {
        assert_ne!(
            report["namespaces"][ns].as_u64(),
            Some(ns_inode(ns)),
            "{ns} is the host's"
        );
    }
    // Like docker without userns-remap: root inside is root outside.
    assert_eq!(
        report["namespaces"]["user"].as_u64(),
        Some(ns_inode("user"))
    );
    let cgroups: Vec<&str> = report["cgroup"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        // Pure v2: a private cgroup namespace, rooted at the container's cgroup.
        assert_eq!(cgroups, ["0::/"]);
    } else {
        // v1 or hybrid: the host's cgroup namespace, so the full path shows.
        assert!(
            cgroups
                .iter()
                .any(|l| l.ends_with(&format!(":/{}/{id}", dy.parent))),
            "not in its cgroup: {cgroups:?}"
        );
    }
    let ifaces: Vec<&str> = report["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["name"].as_str())
        .collect();
    assert_eq!(ifaces, ["lo"], "--network none is the default until lab 05");
}

#[test]
fn detached_life_run_ps_logs_stop_start_rm() {
    let dy = Dy::new();
    let script = r#"trap 'echo stopping; exit 0' TERM; echo started; while :; do sleep 0.1; done"#;
    let id = dy
        .ok(&["run", "-d", "--name", "web", "busybox", "sh", "-c", script])
        .trim()
        .to_string();
    assert_eq!(id.len(), 64, "run -d prints the full ID: {id}");
    dy.wait_for("web", "{{.State.Status}}", "running");

    // The kernel agrees: the process exists, in the container's cgroup.
    let pid: i32 = dy.inspect("web", "{{.State.Pid}}").parse().unwrap();
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(cgroup.contains(&id), "{cgroup}");
    let merged = dy.inspect("web", "{{.GraphDriver.Data.MergedDir}}");
    assert!(
        mount_points().contains(&merged),
        "overlay not mounted at {merged}"
    );

    let ps = dy.ok(&["ps"]);
    let lines: Vec<&str> = ps.lines().collect();
    assert!(
        lines[0].starts_with("CONTAINER ID   IMAGE     COMMAND"),
        "{ps}"
    );
    assert!(
        lines[1].starts_with(&id[..12]) && lines[1].contains("Up ") && lines[1].ends_with("web"),
        "{ps}"
    );

    let deadline = Instant::now() + Duration::from_secs(10);
    while !dy.ok(&["logs", "web"]).contains("started") {
        assert!(Instant::now() < deadline, "no output in the log");
        std::thread::sleep(Duration::from_millis(50));
    }

    assert_eq!(dy.ok(&["stop", "web"]), "web\n");
    assert_eq!(
        dy.inspect("web", "{{.State.Status}} {{.State.ExitCode}}"),
        "exited 0"
    );
    assert!(dy.ok(&["logs", "web"]).ends_with("started\nstopping\n"));
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
                .map(|c| !c.contains(&id))
                .unwrap_or(true)
    );
    assert!(
        !mount_points().contains(&merged),
        "overlay still mounted after stop"
    );
    assert!(dy.ok(&["ps", "-q"]).is_empty());
    assert!(dy.ok(&["ps", "-a"]).contains("Exited (0)"));

    dy.ok(&["start", "web"]);
    dy.wait_for("web", "{{.State.Status}}", "running");
    assert_ne!(dy.inspect("web", "{{.State.Pid}}"), pid.to_string());
    let out = dy.run(&["rm", "web"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "rm of a running container must fail"
    );
    assert!(
        text(&out.stderr).contains("container is running"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(dy.ok(&["rm", "-f", "web"]), "web\n");
    assert!(container_dirs(&dy.root_path()).is_empty());
    assert!(leftover_cgroups(&dy.parent).is_empty());
}

#[test]
fn logs_follow_ends_when_the_container_does() {
    let dy = Dy::new();
    dy.ok(&[
        "run",
        "-d",
        "--name",
        "talk",
        "busybox",
        "sh",
        "-c",
        "for i in 1 2 3; do echo line $i; sleep 0.3; done",
    ]);
    let out = dy.ok(&["logs", "-f", "talk"]);
    assert_eq!(out, "line 1\nline 2\nline 3\n");
    let tail = dy.ok(&["logs", "--tail", "1", "talk"]);
    assert_eq!(tail, "line 3\n");
    let ts = dy.ok(&["logs", "-t", "--tail", "1", "talk"]);
    assert!(ts.starts_with("20") && ts.contains("Z line 3"), "{ts}");
}

#[test]
fn a_restart_policy_restarts_a_failing_command_n_times() {
    let dy = Dy::new();
    dy.ok(&[
        "run",
        "-d",
        "--name",
        "flaky",
        "--restart",
        "on-failure:2",
        "busybox",
        "sh",
        "-c",
        "echo try; exit 1",
    ]);
    dy.wait_for("flaky", "{{.RestartCount}} {{.State.Status}}", "2 exited");
    assert_eq!(dy.ok(&["logs", "flaky"]), "try\ntry\ntry\n");
    assert_eq!(dy.inspect("flaky", "{{.State.ExitCode}}"), "1");
}

/// A container that fills more than its 32 MiB of memory: `run`'s
/// arguments after the name.
const HOG: [&str; 6] = [
    "-m",
    "32m",
    "busybox",
    "sh",
    "-c",
    r#"x=$(head -c 100000000 /dev/zero | tr "\0" a)"#,
];

#[test]
fn the_oom_killer_is_reported_as_docker_does() {
    let dy = Dy::new();
    let out = dy.run(&[&["run", "--name", "hog"][..], &HOG].concat());
    assert_eq!(out.status.code(), Some(137), "{}", text(&out.stderr));
    assert_eq!(
        dy.inspect("hog", "{{.State.OOMKilled}} {{.State.ExitCode}}"),
        "true 137"
    );
    assert_eq!(
        dy.inspect("hog", "{{.HostConfig.Memory}}"),
        (32 * 1024 * 1024).to_string()
    );
}

#[test]
fn a_killed_monitor_is_reconciled() {
    let dy = Dy::new();
    dy.ok(&["run", "-d", "--name", "orphan", "busybox", "sleep", "300"]);
    dy.wait_for("orphan", "{{.State.Status}}", "running");
    let pid = dy.inspect("orphan", "{{.State.Pid}}");
    // The monitor is the container's parent.
    let ppid = ppid_of(pid.parse().unwrap());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(ppid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    // The container dies with its monitor (lab 02's parent-death signal),
    // and ps must say so rather than show a stale "running".
    dy.wait_for("orphan", "{{.State.Status}}", "exited");
    assert!(dy.ok(&["ps", "-a"]).contains("Exited (255)"));
    // Nobody destroyed its cgroup or unmounted its root: rm does.
    let merged = dy.inspect("orphan", "{{.GraphDriver.Data.MergedDir}}");
    dy.ok(&["rm", "orphan"]);
    assert!(
        leftover_cgroups(&dy.parent).is_empty(),
        "{:?}",
        leftover_cgroups(&dy.parent)
    );
    assert!(!mount_points().contains(&merged), "overlay still mounted");
}

/// A process's parent, from /proc/PID/stat (fields: pid, (comm), state, ppid).
fn ppid_of(pid: i32) -> i32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    stat[stat.rfind(')').unwrap() + 2..]
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap()
}

/// The processes whose parent is `pid`.
fn children_of(pid: i32) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&p| {
            std::fs::read_to_string(format!("/proc/{p}/stat")).is_ok() && ppid_of(p) == pid
        })
        .collect()
}

#[test]
fn a_detached_monitor_becomes_the_small_program_and_stays_the_parent() {
    let dy = Dy::new();
    dy.ok(&[
        "run",
        "-d",
        "--name",
        "small",
        "--restart",
        "on-failure:1",
        "--health-cmd",
        "true",
        "--health-interval",
        "100ms",
        "busybox",
        "sh",
        "-c",
        "echo up; sleep 1; exit 3",
    ]);
    dy.wait_for("small", "{{.State.Health.Status}}", "healthy");
    let pid: i32 = dy.inspect("small", "{{.State.Pid}}").parse().unwrap();
    let monitor = ppid_of(pid);
    let program = |p: i32| std::fs::read_link(format!("/proc/{p}/exe")).unwrap();
    // Once the container runs, its monitor is the small program (exec'd:
    // the same PID, the container still its child)...
    assert!(
        program(monitor).ends_with("dockyard-monitor"),
        "{:?}",
        program(monitor)
    );
    assert_eq!(
        std::fs::read_to_string(format!("/proc/{monitor}/comm")).unwrap(),
        "dockyard-monito\n"
    );
    // ...which holds the read end of the container's stdout...
    let stdout = std::fs::read_link(format!("/proc/{pid}/fd/1")).unwrap();
    let held: Vec<PathBuf> = std::fs::read_dir(format!("/proc/{monitor}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .collect();
    assert!(held.contains(&stdout), "{stdout:?} not in {held:?}");
    // ...and runs no health checks: a helper process of dockyard's does,
    // the monitor's other child.
    let mut children = children_of(monitor);
    children.retain(|&c| c != pid);
    assert_eq!(children.len(), 1, "{children:?}");
    assert!(!program(children[0]).ends_with("dockyard-monitor"));
    // After the exit, dockyard again (the same process) restarts it, and
    // hands over to the small program again.
    dy.wait_for("small", "{{.RestartCount}} {{.State.Status}}", "1 running");
    let again: i32 = dy.inspect("small", "{{.State.Pid}}").parse().unwrap();
    assert_ne!(again, pid);
    assert_eq!(ppid_of(again), monitor);
    dy.wait_for("small", "{{.RestartCount}} {{.State.Status}}", "1 exited");
    assert_eq!(dy.inspect("small", "{{.State.ExitCode}}"), "3");
    assert_eq!(dy.ok(&["logs", "small"]), "up\nup\n");
    // Nothing is left running: not the monitor, not its helper (a zombie
    // waiting for whoever adopted the monitor to reap it has exited).
    let running = |p: i32| {
        std::fs::read_to_string(format!("/proc/{p}/stat"))
            .is_ok_and(|stat| !stat[stat.rfind(')').unwrap() + 2..].starts_with('Z'))
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    for p in [monitor, children[0]] {
        while running(p) {
            assert!(Instant::now() < deadline, "process {p} is still there");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    // The OOM killer is seen after the exec too (the cgroup is found by
    // name), and the cgroups go.
    dy.ok(&[&["run", "-d", "--name", "hog"][..], &HOG].concat());
    dy.wait_for(
        "hog",
        "{{.State.OOMKilled}} {{.State.ExitCode}}",
        "true 137",
    );
    assert!(
        leftover_cgroups(&dy.parent).is_empty(),
        "{:?}",
        leftover_cgroups(&dy.parent)
    );
}

#[test]
fn fifty_concurrent_runs_leave_a_consistent_ps() {
    let dy = Dy::new();
    let children: Vec<_> = (0..50)
        .map(|i| {
            let mut c = Command::new(bin("dockyard"));
            c.arg("--root")
                .arg(dy.root.path())
                .env_remove("DOCKYARD_ROOT");
            c.args([
                "run",
                "-d",
                &format!("--cgroup-parent={}", dy.parent),
                "--name",
                &format!("c{i}"),
                "busybox",
                "sleep",
                "60",
            ]);
            c.stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut ids = std::collections::BTreeSet::new();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        ids.insert(text(&out.stdout).trim().to_string());
    }
    assert_eq!(ids.len(), 50);
    let ps = dy.ok(&["ps", "-q", "--no-trunc"]);
    let listed: std::collections::BTreeSet<String> = ps.lines().map(str::to_string).collect();
    assert_eq!(listed, ids, "ps lists exactly the 50 containers");
    let ps = dy.ok(&["ps"]);
    let names: std::collections::BTreeSet<&str> = ps
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().last())
        .collect();
    assert_eq!(names.len(), 50, "{ps}");
    assert!(ps.lines().skip(1).all(|l| l.contains(" Up ")), "{ps}");
}

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
    if !Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
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
fn pause_commit_diff_export_save_rmi_rename() {
    let dy = Dy::new();
    let loop_ = "i=0; while :; do i=$((i+1)); echo $i > /tmp/n; sleep 0.05; done";
    dy.ok(&["run", "-d", "--name", "busy", "busybox", "sh", "-c", loop_]);
    dy.wait_for("busy", "{{.State.Status}}", "running");

    // pause: the kernel's freezer stops every task; the counter stands still.
    assert_eq!(dy.ok(&["pause", "busy"]), "busy\n");
    assert_eq!(
        dy.inspect("busy", "{{.State.Status}} {{.State.Paused}}"),
        "paused true"
    );
    let upper = PathBuf::from(dy.inspect("busy", "{{.GraphDriver.Data.UpperDir}}"));
    let n1 = std::fs::read_to_string(upper.join("tmp/n")).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        std::fs::read_to_string(upper.join("tmp/n")).unwrap(),
        n1,
        "a paused container kept running"
    );
    assert!(dy.ok(&["ps"]).contains("(Paused)"));
    dy.ok(&["unpause", "busy"]);
    std::thread::sleep(Duration::from_millis(300));
    assert_ne!(
        std::fs::read_to_string(upper.join("tmp/n")).unwrap(),
        n1,
        "unpause did not thaw it"
    );

    // diff and commit (paused for the copy), then run the new image.
    dy.ok(&[
        "exec",
        "busy",
        "sh",
        "-c",
        "echo hi > /new-file; rm /bin/vi",
    ]);
    let diff = dy.ok(&["diff", "busy"]);
    for line in ["A /new-file", "D /bin/vi", "C /tmp"] {
        assert!(
            diff.lines().any(|l| l == line),
            "{line:?} not in diff:\n{diff}"
        );
    }
    let id = dy.ok(&[
        "commit",
        "-m",
        "from the test",
        "-a",
        "tester",
        "busy",
        "snap:1",
    ]);
    assert!(id.starts_with("sha256:"), "{id}");
    assert_eq!(
        dy.ok(&["run", "--rm", "snap:1", "cat", "/new-file"]),
        "hi\n"
    );
    assert_ne!(
        dy.run(&["run", "--rm", "snap:1", "test", "-e", "/bin/vi"])
            .status
            .code(),
        Some(0)
    );
    let history = dy.ok(&["history", "snap:1"]);
    assert!(
        history.lines().nth(1).unwrap().contains("from the test"),
        "{history}"
    );

    // export: the merged tree; save + load into another data root.
    let out = Command::new(bin("dockyard"))
        .args(["--root", dy.root.path().to_str().unwrap(), "export", "busy"])
        .output()
        .unwrap();
    let mut ar = tar::Archive::new(&out.stdout[..]);
    let names: Vec<String> = ar
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(
        names
            .iter()
            .any(|n| n.trim_start_matches("./") == "new-file"),
        "export lacks new-file"
    );
    assert!(
        !names.iter().any(|n| n.trim_start_matches("./") == "bin/vi"),
        "export has the deleted file"
    );
    let archive = dy.root_path().join("snap.tar");
    dy.ok(&["save", "-o", archive.to_str().unwrap(), "snap:1"]);
    let other = Dy::new();
    assert_eq!(
        other.ok(&["load", "-i", archive.to_str().unwrap()]),
        "Loaded image: snap:1\n"
    );
    assert_eq!(
        other.ok(&["run", "--rm", "snap:1", "cat", "/new-file"]),
        "hi\n"
    );

    // rmi refuses an image a container uses, unless forced.
    dy.ok(&["run", "--name", "user", "snap:1", "true"]);
    let out = dy.run(&["rmi", "snap:1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("must force"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(dy.ok(&["rmi", "-f", "snap:1"]), "Untagged: snap:1\n");

    // rename, and the management forms of the same commands.
    dy.ok(&["rename", "busy", "calm"]);
    assert!(dy
        .ok(&["container", "ls"])
        .lines()
        .any(|l| l.ends_with(" calm")));
    assert!(dy.ok(&["image", "ls"]).contains("busybox"));
    dy.ok(&["container", "stop", "-t", "1", "calm"]);
    let pruned = dy.ok(&["container", "prune", "-f"]);
    assert!(pruned.starts_with("Deleted Containers:"), "{pruned}");
    assert!(dy.ok(&["ps", "-aq"]).is_empty());
    assert!(
        leftover_cgroups(&dy.parent).is_empty(),
        "{:?}",
        leftover_cgroups(&dy.parent)
    );
}

#[test]
fn volumes_persist_across_containers_and_binds_respect_ro() {
    let dy = Dy::new();
    dy.ok(&[
        "run",
        "--rm",
        "-v",
        "keep:/data",
        "busybox",
        "sh",
        "-c",
        "echo kept > /data/f",
    ]);
    assert_eq!(
        dy.ok(&[
            "run",
            "--rm",
            "-v",
            "keep:/data",
            "busybox",
            "cat",
            "/data/f"
        ]),
        "kept\n"
    );
    // On the host, the volume is a plain directory under the data root.
    let host_file = dy.root_path().join("volumes/keep/_data/f");
    assert_eq!(std::fs::read_to_string(&host_file).unwrap(), "kept\n");

    let host = dy.root_path().join("host-dir");
    std::fs::create_dir(&host).unwrap();
    std::fs::write(host.join("in"), "from host\n").unwrap();
    let spec = format!("{}:/mnt/h:ro", host.display());
    let out = dy.run(&[
        "run",
        "--rm",
        "-v",
        &spec,
        "busybox",
        "sh",
        "-c",
        "cat /mnt/h/in; touch /mnt/h/new",
    ]);
    assert_eq!(text(&out.stdout), "from host\n");
    assert!(
        text(&out.stderr).contains("Read-only file system"),
        "{}",
        text(&out.stderr)
    );
    assert!(!host.join("new").exists());

    // An anonymous volume goes with `rm -v`; a named one in use cannot be removed.
    dy.ok(&[
        "run",
        "--name",
        "user",
        "-v",
        "/scratch",
        "-v",
        "keep:/data",
        "busybox",
        "true",
    ]);
    assert_eq!(dy.ok(&["volume", "ls", "-q"]).lines().count(), 2);
    let out = dy.run(&["volume", "rm", "keep"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("volume is in use"),
        "{}",
        text(&out.stderr)
    );
    dy.ok(&["rm", "-v", "user"]);
    assert_eq!(dy.ok(&["volume", "ls", "-q"]), "keep\n");
    assert_eq!(dy.ok(&["volume", "rm", "keep"]), "keep\n");
    assert!(!host_file.exists());
}

/// `dockyard ARGS` on the slave of a new pty, as a person at a terminal runs
/// it: what it prints is read as it comes (a pty's buffer is small, and a
/// full one would stall the session), and input is typed on the master.
struct Terminal {
    child: std::process::Child,
    master: std::fs::File,
    rx: std::sync::mpsc::Receiver<Vec<u8>>,
    /// Everything printed so far.
    seen: String,
    args: Vec<String>,
}

impl Terminal {
    fn start(dy: &Dy, args: &[&str], rows: u16, cols: u16) -> Terminal {
        use std::io::Read;
        let size = nix::pty::Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pty = nix::pty::openpty(Some(&size), None).unwrap();
        let slave = pty.slave;
        let child = Command::new(bin("dockyard"))
            .args(["--root", dy.root.path().to_str().unwrap()])
            .args(args)
            .stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave))
            .spawn()
            .unwrap();
        let master = std::fs::File::from(pty.master);
        // EIO once the session and every copy of the slave are gone.
        let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
        let mut reader = master.try_clone().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        Terminal {
            child,
            master,
            rx,
            seen: String::new(),
            args: args.iter().map(|a| a.to_string()).collect(),
        }
    }

    /// Wait (20 s at most) until the output so far contains `text`.
    fn wait_for(&mut self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.seen.contains(text) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(b) => self.seen.push_str(&String::from_utf8_lossy(&b)),
                Err(_) => {
                    let _ = self.child.kill();
                    panic!("{:?}: waited for {text:?}, saw {:?}", self.args, self.seen);
                }
            }
        }
    }

    fn type_in(&mut self, input: &[u8]) {
        use std::io::Write;
        self.master.write_all(input).unwrap();
    }

    /// Wait for the command to end; its exit code and all it printed.
    fn finish(mut self) -> (i32, String) {
        let status = self.child.wait().unwrap();
        drop(self.master);
        // What is left to read, without waiting on a copy of the slave that
        // something else might hold.
        while let Ok(b) = self.rx.recv_timeout(Duration::from_millis(500)) {
            self.seen.push_str(&String::from_utf8_lossy(&b));
        }
        (status.code().unwrap_or(-1), self.seen)
    }
}

/// Run `dockyard ARGS` on a new pty of `rows` x `cols`; for each step, wait
/// until the output so far contains its text, then type its bytes (as a
/// person would: after the prompt, once the client's terminal is in raw
/// mode). Return the exit code and everything it printed.
fn on_a_terminal(
    dy: &Dy,
    args: &[&str],
    rows: u16,
    cols: u16,
    steps: &[(&str, &[u8])],
) -> (i32, String) {
    let mut t = Terminal::start(dy, args, rows, cols);
    for (text, input) in steps {
        t.wait_for(text);
        t.type_in(input);
    }
    t.finish()
}

#[test]
fn an_images_volume_is_an_anonymous_volume_seeded_from_the_image() {
    use std::os::unix::fs::MetadataExt;
    let dy = Dy::new();
    // /data has files owned by uid 1; /link is a symlink to /etc, which a
    // hostile image could hope to resolve on the host while seeding.
    let ctx = dy.root_path().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\n\
         RUN mkdir /data && echo seed > /data/f && chown 1:1 /data/f && chmod 640 /data/f \
             && ln -s f /data/l && ln -s /etc /link\n\
         VOLUME /data /link\n\
         HEALTHCHECK --interval=5s CMD true\n",
    )
    .unwrap();
    dy.ok(&["build", "-t", "vols:1", ctx.to_str().unwrap()]);
    // image inspect keeps docker's extensions of the config.
    assert!(dy
        .ok(&[
            "image",
            "inspect",
            "-f",
            "{{json .Config.Healthcheck}}",
            "vols:1"
        ])
        .contains(r#""Test":["CMD-SHELL","true"]"#));

    let out = dy.ok(&[
        "run",
        "--name",
        "vuser",
        "--no-healthcheck",
        "vols:1",
        "sh",
        "-c",
        "cat /data/f; echo more > /data/g; cat /link/passwd | head -1",
    ]);
    assert_eq!(out, format!("seed\n{}", first_line_of_image_passwd()));
    let mounts = dy.inspect(
        "vuser",
        "{{range .Mounts}}{{.Type}}:{{.Destination}} {{end}}",
    );
    assert_eq!(mounts, "volume:/data volume:/link");
    // On the host: the copy kept owner and mode, and the symlink stayed a symlink.
    let names = dy.inspect("vuser", "{{range .Mounts}}{{.Name}} {{end}}");
    let data = dy
        .root_path()
        .join("volumes")
        .join(names.split(' ').next().unwrap())
        .join("_data");
    let f = std::fs::symlink_metadata(data.join("f")).unwrap();
    assert_eq!((f.uid(), f.gid(), f.mode() & 0o777), (1, 1, 0o640));
    assert_eq!(std::fs::read_link(data.join("l")).unwrap(), Path::new("f"));
    assert_eq!(std::fs::read_to_string(data.join("g")).unwrap(), "more\n");
    // /link was seeded from the image's /etc, not the host's.
    let link = dy
        .root_path()
        .join("volumes")
        .join(names.split(' ').nth(1).unwrap())
        .join("_data");
    assert_eq!(
        std::fs::read_to_string(link.join("passwd")).unwrap(),
        std::fs::read_to_string(base_rootfs().join("etc/passwd")).unwrap()
    );
    assert_eq!(dy.ok(&["volume", "ls", "-q"]).lines().count(), 2);

    // A -v on the same path replaces the image's volume; --rm takes its
    // anonymous volume along.
    assert_eq!(
        dy.ok(&[
            "run",
            "--rm",
            "-v",
            "named:/data",
            "vols:1",
            "cat",
            "/data/f"
        ]),
        "seed\n"
    );
    assert_eq!(dy.ok(&["volume", "ls", "-q"]).lines().count(), 3);
    dy.ok(&["volume", "rm", "named"]);
    // The notes' bare `commit -p`.
    dy.ok(&["commit", "-p", "vuser", "vols:2"]);
    dy.ok(&["rm", "-v", "vuser"]);
    assert_eq!(dy.ok(&["volume", "ls", "-q"]), "");
}

fn first_line_of_image_passwd() -> String {
    let passwd = std::fs::read_to_string(base_rootfs().join("etc/passwd")).unwrap();
    format!("{}\n", passwd.lines().next().unwrap())
}

#[test]
fn run_it_gives_the_container_a_terminal() {
    let dy = Dy::new();
    // -t alone: the container's stdio is a terminal (its line discipline
    // turns "\n" into "\r\n", as docker's does), a pty of the container's
    // own devpts: ttyname(3) finds it, and /dev/pts holds nothing else.
    let out = dy.ok(&[
        "run",
        "--rm",
        "-t",
        "busybox",
        "sh",
        "-c",
        "test -t 0 && test -t 1 && echo tty; tty; ls /dev/pts; ls -ln /dev/pts/0; \
         stat -c %d /dev/pts",
    ]);
    let lines: Vec<&str> = out.lines().map(|l| l.trim_end_matches('\r')).collect();
    assert_eq!(lines[..3], ["tty", "/dev/pts/0", "0     ptmx"], "{out}");
    // The slave: root's (the container's first process opened it), group
    // tty (5), mode 0620 as devpts' mode= gave it; major 136 (a pty slave).
    let ls: Vec<&str> = lines[3].split_whitespace().collect();
    assert_eq!(ls[..6], ["crw--w----", "1", "0", "5", "136,", "0"], "{out}");
    // Another devpts instance than the host's (newinstance): another device.
    use std::os::unix::fs::MetadataExt;
    let host_pts = std::fs::metadata("/dev/pts").unwrap().dev();
    assert_ne!(lines[4], host_pts.to_string(), "{out}");

    // -u: the terminal belongs to the user, as runc does it.
    let out = dy.ok(&[
        "run",
        "--rm",
        "-t",
        "-u",
        "1000",
        "busybox",
        "ls",
        "-ln",
        "/dev/pts/0",
    ]);
    let ls: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(ls[..4], ["crw--w----", "1", "1000", "5"], "{out}");

    // -it from a terminal: our keys reach the shell, its exit code comes
    // back, and the pty has our terminal's size.
    let parent = format!("--cgroup-parent={}", dy.parent);
    let (code, seen) = on_a_terminal(
        &dy,
        &["run", "--rm", "-it", &parent, "busybox", "sh"],
        33,
        101,
        &[("# ", b"echo \"in $(hostname)\"; tty; stty size; exit 3\n")],
    );
    assert_eq!(code, 3, "{seen}");
    assert!(seen.contains("in "), "{seen}");
    assert!(seen.contains("/dev/pts/0\r\n33 101\r\n"), "{seen}");

    // As in docker, -it is a detached container and an attached client:
    // Ctrl-P Ctrl-Q leaves it running (silently, exit 0, as docker run).
    let (code, seen) = on_a_terminal(
        &dy,
        &["run", "-it", "--name", "leaver", &parent, "busybox", "sh"],
        24,
        80,
        &[("# ", b"\x10\x11")],
    );
    assert_eq!(code, 0, "{seen}");
    assert!(!seen.contains("read escape sequence"), "{seen}");
    assert_eq!(dy.inspect("leaver", "{{.State.Status}}"), "running");
    dy.ok(&["stop", "-t", "1", "leaver"]);
    // start -ai: the same path, with the container's exit code; its own
    // --detach-keys (ctrl-x here: Ctrl-P is only a key).
    let (code, seen) = on_a_terminal(
        &dy,
        &["start", "-ai", "--detach-keys=ctrl-x", "leaver"],
        24,
        80,
        &[("# ", b"\x10exit 6\n")],
    );
    assert_eq!(code, 6, "{seen}");
    assert_eq!(dy.inspect("leaver", "{{.State.ExitCode}}"), "6");

    // exec -it: a pty from the same devpts (the container's first process
    // holds /dev/pts/0), sized like our terminal.
    dy.ok(&["run", "-dt", "--name", "termbox", "busybox", "sh"]);
    dy.wait_for("termbox", "{{.State.Status}}", "running");
    let (code, seen) = on_a_terminal(
        &dy,
        &["exec", "-it", "termbox", "sh"],
        40,
        120,
        &[("# ", b"tty; stty size; ls /dev/pts; exit 4\n")],
    );
    assert_eq!(code, 4, "{seen}");
    assert!(
        seen.contains("/dev/pts/1\r\n40 120\r\n0     1     ptmx\r\n"),
        "{seen}"
    );

    // Bad detach keys: refused before anything is created.
    let before = dy.ok(&["ps", "-aq"]);
    let out = dy.run(&["run", "-t", "--detach-keys=ctrl-", "busybox", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        text(&out.stderr).contains("Unknown character: 'ctrl-'"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(dy.ok(&["ps", "-aq"]), before);

    // -it without a terminal is refused, as docker refuses it.
    let out = dy.run(&["run", "--rm", "-it", "busybox", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(text(&out.stderr).contains("the input device is not a TTY"));
}

#[test]
fn cp_both_ways_never_leaves_the_containers_root() {
    let dy = Dy::new();
    let script = "ln -s / /tmp/to-root; echo inside > /tmp/mine; while :; do sleep 0.1; done";
    dy.ok(&[
        "run", "-d", "--name", "cpbox", "busybox", "sh", "-c", script,
    ]);
    dy.wait_for("cpbox", "{{.State.Status}}", "running");
    let deadline = Instant::now() + Duration::from_secs(10);
    while dy
        .run(&["exec", "cpbox", "test", "-e", "/tmp/mine"])
        .status
        .code()
        != Some(0)
    {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(50));
    }
    let host = dy.root_path().join("cp-host");
    std::fs::create_dir_all(host.join("tree/sub")).unwrap();
    std::fs::write(host.join("tree/sub/f"), "from host\n").unwrap();

    // In: a directory tree, then read it from inside.
    // As in docker, a destination that does not exist becomes the copy;
    // one that is a directory receives it.
    dy.ok(&["cp", host.join("tree").to_str().unwrap(), "cpbox:/srv"]);
    assert_eq!(
        dy.ok(&["exec", "cpbox", "cat", "/srv/sub/f"]),
        "from host\n"
    );
    dy.ok(&["cp", host.join("tree").to_str().unwrap(), "cpbox:/srv"]);
    assert_eq!(
        dy.ok(&["exec", "cpbox", "cat", "/srv/tree/sub/f"]),
        "from host\n"
    );
    // Out: a file, and a directory.
    let out = host.join("mine");
    dy.ok(&["cp", "cpbox:/tmp/mine", out.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "inside\n");
    dy.ok(&["cp", "cpbox:/etc", host.join("etc-copy").to_str().unwrap()]);
    assert!(host.join("etc-copy/passwd").is_file());

    // The container's symlink to / is the container's /, not the host's:
    // this copies the image's passwd (two lines), never the host's.
    let pw = host.join("pw");
    dy.ok(&["cp", "cpbox:/tmp/to-root/etc/passwd", pw.to_str().unwrap()]);
    let image_passwd = dy.ok(&["exec", "cpbox", "cat", "/etc/passwd"]);
    assert_eq!(std::fs::read_to_string(&pw).unwrap(), image_passwd);
    // And copying in through it lands inside the container.
    std::fs::write(host.join("note"), "n\n").unwrap();
    dy.ok(&[
        "cp",
        host.join("note").to_str().unwrap(),
        "cpbox:/tmp/to-root/tmp/",
    ]);
    assert_eq!(dy.ok(&["exec", "cpbox", "cat", "/tmp/note"]), "n\n");
    assert!(
        !Path::new("/tmp/note").exists() || std::fs::read_to_string("/tmp/note").unwrap() != "n\n"
    );
    // The container was frozen only for the copies: it runs on.
    assert_eq!(dy.inspect("cpbox", "{{.State.Status}}"), "running");
    assert_eq!(
        dy.run(&["cp", "cpbox:/no/such", host.to_str().unwrap()])
            .status
            .code(),
        Some(1)
    );
}

/// Run `script` with `sh` in a throwaway network namespace that plays the
/// host: every bridge, veth and iptables rule dockyard makes lands there
/// and vanishes with it. `$D` is dockyard with this test's data root.
fn in_throwaway_netns(dy: &Dy, script: &str) -> Output {
    let d = format!(
        "{} --root {}",
        bin("dockyard").display(),
        dy.root.path().display()
    );
    let full = format!("ip link set lo up; D='{d}'; {script}");
    Command::new("unshare")
        .args(["--net", "sh", "-c", &full])
        .current_dir(workspace_root())
        .stdin(Stdio::null())
        .output()
        .expect("unshare")
}

/// Shell lines for the end of a throwaway-host script: wait (up to 5 s)
/// for the kernel to delete the veths of exited containers with their
/// network namespaces (it does so after the exit, not before `rm`
/// returns), then print what is left: the interfaces but `lo`, the
/// iptables rules that are not the kept default network's, the DNAT rules,
/// and the default network's members.
const AFTERMATH: &str = r#"
        n=0; while ip -o link | grep -q dyv && [ $n -lt 100 ]; do sleep 0.05; n=$((n+1)); done
        echo "links: $(ip -o link | grep -v ' lo:' | cut -d: -f2 | tr -d ' ' | tr '\n' ' ')"
        echo "rules: $(iptables-save | grep -- '-A ' | grep -vc dockyard0)"
        echo "dnat: $(iptables-save | grep -c -- '-j DNAT')"
        $D network inspect -f 'members: {{json .Containers}}' bridge
"#;

#[test]
fn bridge_networks_publish_ports_and_resolve_names_in_a_throwaway_host() {
    let dy = Dy::new();
    let parent = format!("--cgroup-parent={}", dy.parent);
    let script = format!(
        r#"
        $D run -d {parent} --name web --network bridge -p 8080:80 busybox sh -c 'while :; do echo hi-from-web | nc -l -p 80; done' >/dev/null
        sleep 0.5
        ip=$($D inspect -f '{{{{.NetworkSettings.IPAddress}}}}' web)
        echo "ip=$ip"
        $D port web
        echo "published: $(images/busybox/rootfs/bin/busybox nc -w 2 127.0.0.1 8080 </dev/null)"
        $D run --rm {parent} --network bridge busybox ping -c1 -W2 "$ip" | grep -o '1 packets received'
        $D network create mynet >/dev/null
        $D run -d {parent} --name alpha --network mynet busybox sleep 30 >/dev/null
        $D run --rm {parent} --network mynet busybox ping -c1 -W2 alpha | grep -o '1 packets received'
        $D run --rm {parent} --network container:web busybox sh -c 'ip -4 -o addr show eth0' | grep -o "$ip"
        $D rm -f web alpha >/dev/null
        $D network rm mynet >/dev/null
        $D network rm bridge 2>&1; echo "exit=$?"
        $D network prune -f; ls $ROOT/network | grep json
        {AFTERMATH}
    "#
    );
    let script = format!("ROOT={}; {script}", dy.root.path().display());
    let out = in_throwaway_netns(&dy, &script);
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    let ip = lines
        .first()
        .and_then(|l| l.strip_prefix("ip="))
        .unwrap_or_else(|| panic!("no IP:\n{stdout}{}", text(&out.stderr)));
    assert!(
        ip.starts_with("172.") || ip.starts_with("10.") || ip.starts_with("192.168."),
        "{ip}"
    );
    assert_eq!(lines[1], "80/tcp -> 0.0.0.0:8080", "{stdout}");
    assert_eq!(lines[2], "published: hi-from-web", "{stdout}");
    assert_eq!(
        lines[3], "1 packets received",
        "ping by IP on the default bridge: {stdout}"
    );
    assert_eq!(
        lines[4], "1 packets received",
        "ping by name on a user-defined network: {stdout}"
    );
    assert_eq!(lines[5], ip, "container:web shares web's eth0: {stdout}");
    // As Docker's docker0, the default network stays with its bridge and
    // its rules, and cannot be removed; every container's veth, lease and
    // published port went with it.
    assert_eq!(
        &lines[6..],
        [
            "Error response from daemon: bridge is a pre-defined network and cannot be removed",
            "exit=1",
            "bridge.json",
            "links: dockyard0 ",
            "rules: 0",
            "dnat: 0",
            "members: {}",
        ],
        "{stdout}"
    );
    assert!(leftover_cgroups(&dy.parent).is_empty());
}

#[test]
fn the_default_bridge_is_made_again_in_each_new_host_the_data_root_is_used_in() {
    let dy = Dy::new();
    let parent = format!("--cgroup-parent={}", dy.parent);
    let script = format!(
        r#"
        $D run --rm {parent} --network bridge busybox ip -4 -o addr show eth0 | grep -o 'inet [0-9./]*'
        echo "bridge: $(ip -o link show dockyard0 | grep -c dockyard0)"
        echo "rules: $(iptables-save | grep -c -- '-A .*dockyard0')"
    "#
    );
    // The same data root in two throwaway hosts, one after the other (as
    // across a reboot): the second finds the network recorded but not its
    // bridge, and makes both again, rules included, once.
    for host in ["first", "second"] {
        let out = in_throwaway_netns(&dy, &script);
        assert_eq!(
            text(&out.stdout),
            "inet 172.17.0.2/16\nbridge: 1\nrules: 5\n",
            "{host} host: {}",
            text(&out.stderr)
        );
    }
    assert!(leftover_cgroups(&dy.parent).is_empty());
}

#[test]
fn user_networks_resolve_names_and_aliases_isolate_and_connect_in_a_throwaway_host() {
    let dy = Dy::new();
    let parent = format!("--cgroup-parent={}", dy.parent);
    let script = format!(
        r#"
        $D run --rm {parent} --network nosuchnet busybox true 2>&1; echo "exit=$?"
        $D network create --subnet 10.55.0.0/24 --gateway 10.55.0.254 --label team=a front >/dev/null
        $D network create -o com.docker.network.bridge.name=dyback -o com.docker.network.driver.mtu=1400 back >/dev/null
        $D network create front 2>&1; echo "exit=$?"
        $D network ls --format '{{{{.Name}}}} {{{{.Driver}}}}' -f name=n
        $D network inspect -f '{{{{range .IPAM.Config}}}}{{{{.Subnet}}}} {{{{.Gateway}}}}{{{{end}}}} {{{{.Labels.team}}}}' front
        $D run -d {parent} --name web --network front --network-alias www busybox sleep 60 >/dev/null
        $D run -d {parent} --name db --network front --ip 10.55.0.50 busybox sleep 60 >/dev/null
        $D exec db ip -o -4 addr show eth0 | grep -o '10.55.0.50/24'
        $D exec db ip route | grep -o 'default via 10.55.0.254'
        $D exec db ping -c1 -W2 web | grep -o '1 packets received'
        $D exec db ping -c1 -W2 www | grep -o '1 packets received'
        $D run --rm {parent} --network back busybox sh -c 'ip -o link show eth0 | grep -o "mtu 1400"; ping -c1 -W2 10.55.0.50 | grep -o "[0-9] packets received"'
        $D network rm front 2>&1; echo "exit=$?"
        $D network inspect -f '{{{{json .Containers}}}}' front
        $D network connect --alias api back web
        $D exec web ip -o -4 addr show eth1 | grep -c 'inet '
        $D run --rm {parent} --network back busybox ping -c1 -W2 api | grep -o '1 packets received'
        $D inspect -f '{{{{json .NetworkSettings.Networks}}}}' web
        $D restart -t 0 web >/dev/null; $D exec web ip -o -4 addr show eth1 | grep -c 'inet '
        $D network disconnect back web
        $D exec web sh -c 'ip link show eth1 2>/dev/null || echo no-eth1'
        $D stop -t 0 web >/dev/null; $D network connect back web; $D start web >/dev/null
        $D exec web ip -o -4 addr show eth1 | grep -c 'inet '
        $D rm -f web db >/dev/null
        $D network rm front back
        $D network create spare >/dev/null; $D network prune -f
        $D network ls -q | wc -l
        echo "links: $(ip -o link | grep -vc ' lo:')"
        echo "rules: $(iptables-save | grep -c -- '-A ' )"
        echo "files: $(ls $ROOT/network | grep -c json)"
    "#
    );
    let script = format!("ROOT={}; {script}", dy.root.path().display());
    let out = in_throwaway_netns(&dy, &script);
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    let expected = [
        "dockyard: network nosuchnet not found",
        "exit=125",
        "Error response from daemon: network with name front already exists",
        "exit=1",
        "front bridge",
        "none null",
        "10.55.0.0/24 10.55.0.254 a",
        "10.55.0.50/24",
        "default via 10.55.0.254",
        "1 packets received",
        "1 packets received",
        "mtu 1400",
        "0 packets received",
    ];
    assert_eq!(
        lines.get(..expected.len()).unwrap_or(&lines[..]),
        expected,
        "stdout:\n{stdout}\nstderr:\n{}",
        text(&out.stderr)
    );
    let rest = &lines[expected.len()..];
    assert!(
        rest[0].starts_with(
            "Error response from daemon: error while removing network: network front id "
        ) && rest[0].contains("has active endpoints"),
        "{stdout}"
    );
    assert_eq!(rest[1], "exit=1", "{stdout}");
    // network inspect: the members, by container ID.
    let members: Value = serde_json::from_str(rest[2]).expect(rest[2]);
    let mut seen: Vec<String> = members
        .as_object()
        .expect("Containers is an object")
        .iter()
        .map(|(id, c)| {
            assert_eq!(id.len(), 64, "{members}");
            assert!(c["MacAddress"]
                .as_str()
                .unwrap()
                .starts_with("02:42:0a:37:00:"));
            format!(
                "{}={}",
                c["Name"].as_str().unwrap(),
                c["IPv4Address"].as_str().unwrap()
            )
        })
        .collect();
    seen.sort();
    assert_eq!(seen, ["db=10.55.0.50/24", "web=10.55.0.1/24"], "{stdout}");
    assert_eq!(rest[3], "1", "connect adds eth1: {stdout}");
    assert_eq!(
        rest[4], "1 packets received",
        "ping by alias on back: {stdout}"
    );
    // inspect: one entry per network, with its aliases, address, gateway, MAC.
    let nets: Value = serde_json::from_str(rest[5]).expect(rest[5]);
    assert_eq!(nets["front"]["IPAddress"], "10.55.0.1", "{nets:#}");
    assert_eq!(nets["front"]["Gateway"], "10.55.0.254", "{nets:#}");
    assert_eq!(nets["front"]["MacAddress"], "02:42:0a:37:00:01", "{nets:#}");
    assert_eq!(nets["front"]["Aliases"][0], "www", "{nets:#}");
    assert_eq!(nets["back"]["Aliases"][0], "api", "{nets:#}");
    assert!(
        nets["back"]["IPAddress"]
            .as_str()
            .unwrap()
            .starts_with("172.18.0."),
        "the default bridge keeps 172.17.0.0/16: {nets:#}"
    );
    assert_eq!(rest[6], "1", "a restart rejoins back: {stdout}");
    assert_eq!(rest[7], "no-eth1", "{stdout}");
    assert_eq!(
        rest[8], "1",
        "connected while stopped, joined at start: {stdout}"
    );
    assert_eq!(
        &rest[9..],
        [
            "front",
            "back",
            "Deleted Networks:",
            "spare",
            "3",
            "links: 0",
            "rules: 0",
            "files: 0"
        ],
        "{stdout}"
    );
    assert!(leftover_cgroups(&dy.parent).is_empty());
}

#[test]
fn dns_flags_add_host_and_daemon_json_network_keys_reach_the_container() {
    let dy = Dy::new();
    let parent = format!("--cgroup-parent={}", dy.parent);
    let config = dy.root.path().join("daemon.json");
    std::fs::write(
        &config,
        r#"{"dns": ["10.9.9.9"], "dns-search": ["corp.example"], "mtu": 1450,
            "bip": "10.200.0.1/24",
            "default-address-pools": [{"base": "10.201.0.0/16", "size": 24}]}"#,
    )
    .unwrap();
    let script = format!(
        r#"
        $D run --rm {parent} --dns 10.0.0.2 --dns-search a.example --dns-option ndots:3 --add-host db:10.1.2.3 busybox sh -c 'grep -v "^#" /etc/resolv.conf; grep db /etc/hosts'
        $D run --rm {parent} --add-host bad busybox true 2>&1 | grep -c 'bad format for add-host'
        $D run -d {parent} --name hc --dns 10.0.0.2 --add-host gw:host-gateway --network bridge busybox sleep 30 >/dev/null
        $D inspect -f '{{{{json .HostConfig.Dns}}}} {{{{json .HostConfig.ExtraHosts}}}}' hc
        gw=$($D inspect -f '{{{{.NetworkSettings.Gateway}}}}' hc)
        $D exec hc grep gw /etc/hosts | grep -c "^$gw"
        $D rm -f hc >/dev/null
        $D --config $CONFIG run --rm {parent} --network bridge busybox sh -c 'grep -v "^#" /etc/resolv.conf; ip -o -4 addr show eth0 | grep -o "inet [0-9./]*"; ip -o link show eth0 | grep -o "mtu [0-9]*"'
        $D --config $CONFIG network create pooled >/dev/null
        $D --config $CONFIG network inspect -f '{{{{range .IPAM.Config}}}}{{{{.Subnet}}}}{{{{end}}}}' pooled
        $D --config $CONFIG network rm pooled >/dev/null
        {AFTERMATH}
    "#
    );
    let script = format!("CONFIG={}; {script}", config.display());
    let out = in_throwaway_netns(&dy, &script);
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "nameserver 10.0.0.2",
            "search a.example",
            "options ndots:3",
            "10.1.2.3\tdb",
            "1",
            r#"["10.0.0.2"] ["gw:host-gateway"]"#,
            "1",
            "nameserver 10.9.9.9",
            "search corp.example",
            "inet 10.200.0.2/24",
            "mtu 1450",
            "10.201.0.0/24",
            "links: dockyard0 ",
            "rules: 0",
            "dnat: 0",
            "members: {}",
        ],
        "stdout:\n{stdout}\nstderr:\n{}",
        text(&out.stderr)
    );
    assert!(leftover_cgroups(&dy.parent).is_empty());
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
fn health_checks_go_from_starting_to_unhealthy_to_healthy() {
    let dy = Dy::new();
    dy.ok(&[
        "run",
        "-d",
        "--name",
        "doc",
        "--health-cmd",
        "test -e /tmp/ok",
        "--health-interval",
        "200ms",
        "--health-retries",
        "2",
        "busybox",
        "sh",
        "-c",
        "sleep 1.5; touch /tmp/ok; sleep 30",
    ]);
    assert!(dy.ok(&["ps"]).contains("(health: starting)"));
    dy.wait_for("doc", "{{.State.Health.Status}}", "unhealthy");
    assert!(dy.ok(&["ps"]).contains("(unhealthy)"));
    dy.wait_for("doc", "{{.State.Health.Status}}", "healthy");
    assert!(dy.ok(&["ps"]).contains("(healthy)"));
    assert_eq!(dy.inspect("doc", "{{.State.Health.FailingStreak}}"), "0");
    let codes = dy.inspect("doc", "{{range .State.Health.Log}}{{.ExitCode}} {{end}}");
    assert_eq!(codes.split_whitespace().last(), Some("0"), "{codes}");
    // --no-healthcheck turns an image's check off; a bad duration is refused.
    let out = dy.run(&[
        "run",
        "--rm",
        "--health-cmd",
        "true",
        "--health-interval",
        "5",
        "busybox",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(125));
}

#[test]
fn top_completion_and_man_pages() {
    let dy = Dy::new();
    dy.ok(&[
        "run",
        "-d",
        "--name",
        "tp",
        "busybox",
        "sh",
        "-c",
        "sleep 31 & sleep 41",
    ]);
    dy.wait_for("tp", "{{.State.Status}}", "running");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let top = dy.ok(&["top", "tp"]);
        if top.contains("sleep 31") && top.contains("sleep 41") {
            assert!(top.starts_with("UID       PID       PPID"), "{top}");
            break;
        }
        assert!(Instant::now() < deadline, "{top}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let bash = dy.ok(&["completion", "bash"]);
    assert!(
        bash.contains("_dockyard()") && bash.contains("--publish"),
        "no completion for run's flags"
    );
    let dir = dy.root_path().join("man");
    dy.ok(&["man", dir.to_str().unwrap()]);
    let run_page = std::fs::read_to_string(dir.join("dockyard-run.1")).unwrap();
    assert!(
        run_page.contains("Create and run a new container"),
        "{run_page}"
    );
}

#[test]
fn a_container_with_a_health_check_exits_promptly() {
    // The checker is a thread of the monitor; SIGCHLD must still reach the
    // monitor's loop, which once spun forever when the thread took it.
    let dy = Dy::new();
    for _ in 0..5 {
        let started = Instant::now();
        let out = dy.ok(&[
            "run",
            "--rm",
            "--health-cmd",
            "true",
            "--health-interval",
            "50ms",
            "busybox",
            "sh",
            "-c",
            "sleep 0.2; echo done",
        ]);
        assert_eq!(out, "done\n");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "took {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn ps_format_renders_go_templates_and_tables() {
    let dy = Dy::new();
    dy.ok(&[
        "run", "-d", "--name", "fmt", "-l", "tier=web", "busybox", "sleep", "30",
    ]);
    dy.wait_for("fmt", "{{.State.Status}}", "running");
    assert_eq!(
        dy.ok(&["ps", "--format", "{{.Names}} {{.State}} {{.Labels}}"]),
        "fmt running tier=web\n"
    );
    let t = dy.ok(&["ps", "--format", "table {{.Names}}\\t{{.Image}}"]);
    assert_eq!(t, "NAMES     IMAGE\nfmt       busybox\n");
}

#[test]
fn stats_reads_the_containers_cgroup() {
    let dy = Dy::new();
    dy.ok(&[
        "run",
        "-d",
        "--name",
        "spin",
        "-m",
        "64m",
        "--cpus",
        "0.5",
        "busybox",
        "sh",
        "-c",
        "while :; do :; done",
    ]);
    dy.wait_for("spin", "{{.State.Status}}", "running");
    let out = dy.ok(&["stats", "--no-stream", "spin"]);
    let row = out.lines().nth(1).unwrap_or_default().to_string();
    let cols: Vec<&str> = row
        .split("   ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(cols[1], "spin", "{out}");
    let cpu: f64 = cols[2].trim_end_matches('%').parse().unwrap();
    // --cpus 0.5 caps the busy loop at half a CPU: 50%, give or take.
    assert!((30.0..=60.0).contains(&cpu), "cpu {cpu}% in {out}");
    assert!(cols[3].ends_with("/ 64.00MiB"), "{out}");
    assert_eq!(cols.last().copied(), Some("1"), "{out}");
}

#[test]
fn system_df_and_prune() {
    let dy = Dy::new();
    dy.ok(&[
        "run",
        "--name",
        "done1",
        "-v",
        "/anon",
        "busybox",
        "sh",
        "-c",
        "echo x > /anon/f",
    ]);
    let df = dy.ok(&["system", "df"]);
    assert!(
        df.starts_with("TYPE            TOTAL     ACTIVE    SIZE      RECLAIMABLE\n"),
        "{df}"
    );
    assert!(df.contains("\nContainers      1         0"), "{df}");
    assert!(df.contains("\nLocal Volumes   1         1"), "{df}");
    let out = dy.ok(&["system", "prune", "-f", "--volumes"]);
    assert!(
        out.contains("Deleted Containers:") && out.contains("Deleted Volumes:"),
        "{out}"
    );
    assert!(dy.ok(&["ps", "-aq"]).is_empty());
    assert!(dy.ok(&["volume", "ls", "-q"]).is_empty());
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
    std::fs::write(&conf, r#"{"default-ulimits": {"nofile": {"Name": "nofile", "Soft": 512, "Hard": 1024}}, "log-opts": {"max-size": "1k", "max-file": "2"}}"#).unwrap();
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
fn fifty_concurrent_bridge_containers_get_fifty_distinct_addresses() {
    let dy = Dy::new();
    let parent = format!("--cgroup-parent={}", dy.parent);
    let script = format!(
        r#"
        for i in $(seq 1 50); do $D run -d {parent} --name n$i --network bridge busybox sleep 60 >/dev/null & done
        wait
        echo "running: $($D ps -q | wc -l)"
        for i in $(seq 1 50); do $D inspect -f '{{{{.NetworkSettings.IPAddress}}}}' n$i; done | sort -u | grep -c .
        $D rm -f $($D ps -aq) >/dev/null
        {AFTERMATH}
    "#
    );
    let out = in_throwaway_netns(&dy, &script);
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.first().copied(),
        Some("running: 50"),
        "{stdout}{}",
        text(&out.stderr)
    );
    assert_eq!(
        lines.get(1).copied(),
        Some("50"),
        "50 distinct addresses: {stdout}"
    );
    assert_eq!(
        lines.get(2..),
        Some(&["links: dockyard0 ", "rules: 0", "dnat: 0", "members: {}"][..]),
        "{stdout}"
    );
}

/// Replace what changes from run to run (IDs, digests, times, temp paths)
/// with fixed words, so a snapshot holds only what must stay the same.
fn redact(s: &str, dy: &Dy) -> String {
    let mut out = s
        .replace(dy.root.path().to_str().unwrap(), "[ROOT]")
        .replace(&dy.parent, "[PARENT]");
    let span = r"(Less than a second|About a minute|About an hour|\d+ (second|minute|hour|day|week|month|year)s?)";
    let patterns: Vec<(String, &str)> = vec![
        (r"sha256:[0-9a-f]{64}".into(), "sha256:[DIGEST]"),
        (r"\b[0-9a-f]{64}\b".into(), "[ID]"),
        (r"\b[0-9a-f]{12}\b".into(), "[SHORT-ID]"),
        (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z".into(), "[TIME]"),
        (format!("{span} ago"), "[AGO]"),
        (format!("Up {span}"), "Up [FOR]"),
        // Image sizes follow the probe binary's, which varies by toolchain.
        (r"\b\d+(\.\d+)?(B|kB|MB|GB)\b".into(), "[SIZE]"),
    ];
    for (re, with) in patterns {
        out = regex_lite::Regex::new(&re)
            .unwrap()
            .replace_all(&out, with)
            .into_owned();
    }
    out
}

/// A table with its column gaps made one width: the real widths follow the
/// real values (before redaction), and the padding rule itself is a unit
/// test of `format::table`.
fn redact_table(s: &str, dy: &Dy) -> String {
    let gaps = regex_lite::Regex::new(r" {2,}").unwrap();
    redact(s, dy)
        .lines()
        .map(|l| gaps.replace_all(l.trim_end(), " | ").into_owned())
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

#[test]
fn snapshots_of_tables_and_inspect() {
    let dy = Dy::new();
    dy.ok(&[
        "run",
        "-d",
        "--name",
        "snap",
        "-l",
        "app=demo",
        "-e",
        "GREETING=hi",
        "-m",
        "32m",
        "busybox",
        "sleep",
        "60",
    ]);
    dy.wait_for("snap", "{{.State.Status}}", "running");
    assert_eq!(
        dy.run(&["run", "--name", "done", "busybox", "sh", "-c", "exit 3"])
            .status
            .code(),
        Some(3)
    );
    // Tables padded like docker's; the widths follow the redacted text.
    insta::assert_snapshot!("ps_a", redact_table(&dy.ok(&["ps", "-a"]), &dy));
    insta::assert_snapshot!("images", redact_table(&dy.ok(&["images"]), &dy));
    // inspect: docker's field names and shapes.
    let inspect: Value = serde_json::from_str(&dy.ok(&["inspect", "snap"])).unwrap();
    let mut doc = inspect[0].clone();
    // The host-side pid and a hostname equal to the ID change every run.
    doc["State"]["Pid"] = Value::from(0);
    let text = redact(&serde_json::to_string_pretty(&doc).unwrap(), &dy);
    let stable: Value = serde_json::from_str(&text).unwrap();
    insta::assert_json_snapshot!("inspect_running", stable);
}

// --- --userns-remap ----------------------------------------------------------

/// The numeric user and group whose ranges the remap tests add: no passwd
/// entry is needed, /etc/subuid lines may name a number.
const REMAP_ID: u32 = 64_123;
/// Where the range starts on the host, far from any distribution's own.
const REMAP_START: u32 = 3_100_000;
const REMAP_COUNT: u32 = 65_536;

/// A data root under `--userns-remap 64123:64123`, with busybox loaded, and
/// the range in /etc/subuid and /etc/subgid for as long as it lives
/// (restored even if the test fails: see `SubIds`).
struct Remapped {
    dy: Dy,
    // Last: the range is removed after the containers are.
    _ids: dockyard_e2e::subids::SubIds,
}

impl std::ops::Deref for Remapped {
    type Target = Dy;
    fn deref(&self) -> &Dy {
        &self.dy
    }
}

impl Remapped {
    fn new() -> Remapped {
        let ids =
            dockyard_e2e::subids::SubIds::add(&REMAP_ID.to_string(), REMAP_START, REMAP_COUNT);
        let dy = Dy::empty("dockyard-remap").with_globals(&["--userns-remap", &Self::setting()]);
        dy.load_busybox();
        Remapped { dy, _ids: ids }
    }

    fn setting() -> String {
        format!("{REMAP_ID}:{REMAP_ID}")
    }

    /// The remapped data root: `<root>/<uid>.<gid>`, as Docker names it.
    fn data_root(&self) -> PathBuf {
        self.root
            .path()
            .join(format!("{REMAP_START}.{REMAP_START}"))
    }
}

/// A map file's lines as numbers: `0 3100000 65536` for each line.
fn id_map(text: &str) -> Vec<Vec<u64>> {
    text.lines()
        .map(|l| l.split_whitespace().map(|n| n.parse().unwrap()).collect())
        .collect()
}

fn owner(path: &Path) -> (u32, u32) {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (m.uid(), m.gid())
}

#[test]
fn userns_remap_from_daemon_json_maps_root_to_the_range() {
    let r = Remapped::new();
    // daemon.json's "userns-remap", with no flag: the same data root.
    let conf = r.root.path().join("daemon.json");
    std::fs::write(
        &conf,
        format!(r#"{{"userns-remap": "{}"}}"#, Remapped::setting()),
    )
    .unwrap();
    let out = Command::new(bin("dockyard"))
        .arg("--root")
        .arg(r.root.path())
        .arg("--config")
        .arg(&conf)
        .arg("run")
        .arg("--rm")
        .arg(format!("--cgroup-parent={}", r.parent))
        .args([
            "busybox",
            "sh",
            "-c",
            "id -u; id -g; cat /proc/self/uid_map; echo --; cat /proc/self/gid_map",
        ])
        .env_remove("DOCKYARD_ROOT")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let (ids, maps) = stdout.split_at(stdout.find("     ").unwrap_or(0));
    assert_eq!(ids, "0\n0\n", "{stdout}");
    let (uid_map, gid_map) = maps.split_once("--\n").unwrap();
    let want = vec![vec![0, REMAP_START as u64, REMAP_COUNT as u64]];
    assert_eq!(id_map(uid_map), want, "{stdout}");
    assert_eq!(id_map(gid_map), want, "{stdout}");
    // The kernel agrees from outside: a running container's first process
    // is uid REMAP_START on the host.
    r.ok(&["run", "-d", "--name", "sleeper", "busybox", "sleep", "60"]);
    let pid = r.ok(&["inspect", "-f", "{{.State.Pid}}", "sleeper"]);
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid.trim())).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert_eq!(
        uid_line.split_whitespace().nth(1),
        Some(REMAP_START.to_string().as_str()),
        "{uid_line}"
    );
    assert_eq!(
        r.ok(&["inspect", "-f", "{{.HostConfig.UsernsMode}}", "sleeper"]),
        "\n"
    );
    let info = r.ok(&["info"]);
    assert!(info.contains("\n  userns\n"), "{info}");
    assert!(
        info.contains(&format!(
            "Docker Root Dir: {}",
            r.root
                .path()
                .join(format!("{REMAP_START}.{REMAP_START}"))
                .display()
        )),
        "{info}"
    );
    // The data root is Docker's <root>/<uid>.<gid>, reachable only by the
    // remapped group, and the image's files on disk belong to the range.
    use std::os::unix::fs::PermissionsExt;
    let data = r.data_root();
    let mode = std::fs::metadata(&data).unwrap().permissions().mode() & 0o7777;
    assert_eq!((mode, owner(&data)), (0o710, (0, REMAP_START)));
    let layers: Vec<_> = std::fs::read_dir(data.join("layers"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(layers.len(), 1);
    assert_eq!(
        owner(&layers[0].join("diff/bin/busybox")),
        (REMAP_START, REMAP_START)
    );
    // Without the remap the plain data root has no image: it was loaded
    // into the remapped one only.
    let plain = Command::new(bin("dockyard"))
        .arg("--root")
        .arg(r.root.path())
        .args(["images", "-q"])
        .output()
        .unwrap();
    assert_eq!(text(&plain.stdout), "", "{}", text(&plain.stderr));
}

#[test]
fn userns_remap_owns_what_it_writes_and_cannot_write_roots_files() {
    let r = Remapped::new();
    let host = tempfile::Builder::new()
        .prefix("dockyard-remap-host-")
        .tempdir()
        .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(host.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let rootfile = host.path().join("rootfile");
    std::fs::write(&rootfile, "root's\n").unwrap();
    std::fs::set_permissions(&rootfile, std::fs::Permissions::from_mode(0o644)).unwrap();
    let bind = format!("{}:/data", host.path().display());

    // A new file belongs to the range's first uid on the host.
    r.ok(&[
        "run",
        "--rm",
        "-v",
        &bind,
        "busybox",
        "sh",
        "-c",
        "echo hi > /data/new",
    ]);
    assert_eq!(owner(&host.path().join("new")), (REMAP_START, REMAP_START));

    // Host root's 0644 file: root inside has CAP_DAC_OVERRIDE, but in its
    // own user namespace, which does not own this inode: write refused.
    let script = "ls -ln /data/rootfile; echo more >> /data/rootfile";
    let out = r.run(&["run", "--rm", "-v", &bind, "busybox", "sh", "-c", script]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("Permission denied"),
        "{}",
        text(&out.stderr)
    );
    // Unmapped, the host's root shows as nobody (65534).
    assert!(
        text(&out.stdout).contains(" 65534 "),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(std::fs::read_to_string(&rootfile).unwrap(), "root's\n");

    // --userns=host: the old mapping (the host's whole range), and then the
    // same write works, as it does without remap.
    let out = r.ok(&[
        "run",
        "--rm",
        "--userns=host",
        "-v",
        &bind,
        "busybox",
        "sh",
        "-c",
        "cat /proc/self/uid_map; echo more >> /data/rootfile",
    ]);
    assert_eq!(id_map(&out), vec![vec![0, 0, 4_294_967_295]]);
    assert_eq!(
        std::fs::read_to_string(&rootfile).unwrap(),
        "root's\nmore\n"
    );
    r.ok(&[
        "create",
        "--name",
        "hostns",
        "--userns=host",
        "busybox",
        "true",
    ]);
    assert_eq!(
        r.ok(&["inspect", "-f", "{{.HostConfig.UsernsMode}}", "hostns"]),
        "host\n"
    );
}

#[test]
fn userns_remap_exec_joins_the_user_namespace() {
    let r = Remapped::new();
    r.ok(&["run", "-d", "--name", "xer", "busybox", "sleep", "60"]);
    let pid = r.ok(&["inspect", "-f", "{{.State.Pid}}", "xer"]);
    let theirs = std::fs::read_link(format!("/proc/{}/ns/user", pid.trim())).unwrap();
    assert_ne!(theirs, std::fs::read_link("/proc/self/ns/user").unwrap());
    let out = r.ok(&[
        "exec",
        "xer",
        "sh",
        "-c",
        "readlink /proc/self/ns/user; id -u; cat /proc/self/uid_map; touch /by-exec",
    ]);
    let mut lines = out.lines();
    assert_eq!(lines.next(), theirs.to_str());
    assert_eq!(lines.next(), Some("0"));
    assert_eq!(
        id_map(&lines.collect::<Vec<_>>().join("\n")),
        vec![vec![0, REMAP_START as u64, REMAP_COUNT as u64]]
    );
    let id = r.ok(&["inspect", "-f", "{{.Id}}", "xer"]);
    let upper = r
        .data_root()
        .join("containers")
        .join(id.trim())
        .join("upper");
    assert_eq!(owner(&upper.join("by-exec")), (REMAP_START, REMAP_START));
}

#[test]
fn userns_remap_keeps_the_escape_attempts_failing() {
    let r = Remapped::new();
    // The probe's nested-chroot escape.
    let out = r.ok(&["run", "--rm", "busybox", "probe", "escape"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["escaped"], false, "{v:#}");
    // A few of the suite's attempts: each must fail (exit 1 from the wrapper).
    for attempt in [
        "mkdir -p /mnt && mount -t tmpfs none /mnt",
        "hostname dyescape",
        "unshare -U -r true",
        "ip link add dyesc0 type bridge",
        "ls /proc/1/root/../../../../etc/shadow",
        "[ -n \"$(head -c 1 /proc/timer_list)\" ]",
    ] {
        let script = format!("if {{ {attempt} ; }} >/dev/null 2>&1; then exit 0; else exit 1; fi");
        let out = r.run(&["run", "--rm", "busybox", "sh", "-c", &script]);
        assert_eq!(
            out.status.code(),
            Some(1),
            "ESCAPE under userns-remap: {attempt}"
        );
    }
    // The probe: Docker's capability mask, seccomp and no_new_privs, all
    // inside the user namespace.
    let v: Value = serde_json::from_str(&r.ok(&["run", "--rm", "busybox", "probe"])).unwrap();
    assert_eq!(v["uid_map"][0]["outside"], REMAP_START, "{v:#}");
    assert_eq!(v["seccomp"], 2, "{v:#}");
    assert_eq!(v["no_new_privs"], true, "{v:#}");
}

#[test]
fn userns_remap_archives_show_the_containers_owners() {
    let r = Remapped::new();
    r.ok(&["run", "-d", "--name", "arch", "busybox", "sleep", "60"]);
    r.ok(&[
        "exec",
        "arch",
        "sh",
        "-c",
        "echo x > /f; chown 1000:1001 /f; mkdir /d; chown 5:6 /d",
    ]);
    let id = r.ok(&["inspect", "-f", "{{.Id}}", "arch"]);
    let upper = r
        .data_root()
        .join("containers")
        .join(id.trim())
        .join("upper");
    // On the host, shifted...
    assert_eq!(
        owner(&upper.join("f")),
        (REMAP_START + 1000, REMAP_START + 1001)
    );
    // ...in archives, as the container saw them.
    let owners = |tar_bytes: &[u8]| -> std::collections::BTreeMap<String, (u64, u64)> {
        let mut ar = tar::Archive::new(tar_bytes);
        ar.entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path()
                        .unwrap()
                        .to_string_lossy()
                        .trim_end_matches('/')
                        .to_string(),
                    (h.uid().unwrap(), h.gid().unwrap()),
                )
            })
            .collect()
    };
    let out = r.run(&["export", "arch"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let exported = owners(&out.stdout);
    assert_eq!(exported["f"], (1000, 1001));
    assert_eq!(exported["d"], (5, 6));
    assert_eq!(exported["bin/busybox"], (0, 0));
    assert_eq!(
        r.ok(&["diff", "arch"]).lines().collect::<Vec<_>>(),
        ["A /d", "A /f"]
    );
    // commit: the new layer, read back from a docker-archive save.
    r.ok(&["commit", "arch", "snap:1"]);
    let out = r.run(&["save", "snap:1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut outer = tar::Archive::new(&out.stdout[..]);
    let mut found = false;
    for e in outer.entries().unwrap() {
        let mut e = e.unwrap();
        if !e.path().unwrap().to_string_lossy().ends_with("layer.tar") {
            continue;
        }
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut bytes).unwrap();
        let layer = owners(&bytes);
        if let Some(f) = layer.get("f") {
            assert_eq!(*f, (1000, 1001));
            assert_eq!(layer["d"], (5, 6));
            found = true;
        }
    }
    assert!(found, "the committed layer is in the archive");
    // And a container of the committed image sees them again.
    assert_eq!(
        r.ok(&["run", "--rm", "snap:1", "stat", "-c", "%u:%g", "/f"]),
        "1000:1001\n"
    );
}

#[test]
fn userns_remap_refuses_what_a_user_namespace_cannot_give() {
    let r = Remapped::new();
    for (args, says) in [
        (
            &["run", "--rm", "--privileged", "busybox", "true"][..],
            "--userns=host",
        ),
        (
            &["run", "--rm", "--network", "host", "busybox", "true"][..],
            "--userns=host",
        ),
        (
            &["run", "--rm", "--userns", "private", "busybox", "true"][..],
            "--userns",
        ),
        (
            &[
                "run",
                "--rm",
                "--network",
                "container:other",
                "busybox",
                "true",
            ][..],
            "--userns=host",
        ),
    ] {
        let out = r.run(args);
        assert_eq!(out.status.code(), Some(125), "{args:?}");
        assert!(
            text(&out.stderr).contains(says),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    // --privileged works once the container opts out.
    r.ok(&[
        "run",
        "--rm",
        "--privileged",
        "--userns=host",
        "busybox",
        "true",
    ]);
    // No range, no user: a clear error before anything is created.
    for (setting, says) in [
        ("64124:64124", "no subordinate uid range"),
        ("no-such-user-dy", "no such user"),
    ] {
        let out = Command::new(bin("dockyard"))
            .arg("--root")
            .arg(r.root.path())
            .args(["--userns-remap", setting, "images"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(125), "{setting}");
        assert!(
            text(&out.stderr).contains(says),
            "{setting}: {}",
            text(&out.stderr)
        );
    }
}

// --- rootless ----------------------------------------------------------------

/// dockyard run by `nobody` (uid 65534, through setpriv), from a copy of
/// the binary and the base image in a home directory of its own, so that
/// nothing depends on what the checkout's permissions let others read.
struct Rootless {
    home: tempfile::TempDir,
}

const NOBODY: u32 = 65_534;

impl Rootless {
    fn new() -> Rootless {
        require_root();
        let home = tempfile::Builder::new()
            .prefix("dockyard-rootless-")
            .tempdir()
            .unwrap();
        // Installed as dockyard is: with its monitor program beside it.
        for program in ["dockyard", "dockyard-monitor"] {
            std::fs::copy(bin(program), home.path().join(program)).unwrap();
        }
        let oci = workspace_root().join("images/busybox/oci");
        let cp = Command::new("cp")
            .arg("-r")
            .arg(&oci)
            .arg(home.path().join("oci"))
            .status()
            .unwrap();
        assert!(cp.success());
        let chown = Command::new("chown")
            .args(["-R", &format!("{NOBODY}:{NOBODY}")])
            .arg(home.path())
            .status()
            .unwrap();
        assert!(chown.success());
        Rootless { home }
    }

    fn run(&self, args: &[&str]) -> Output {
        let (id, home) = (NOBODY.to_string(), self.home.path());
        Command::new("setpriv")
            .args([
                &format!("--reuid={id}"),
                &format!("--regid={id}"),
                "--clear-groups",
                "--",
            ])
            .arg(home.join("dockyard"))
            .args(args)
            .current_dir(home)
            .env("HOME", home)
            .env_remove("XDG_DATA_HOME")
            .env_remove("DOCKYARD_ROOT")
            .stdin(Stdio::null())
            .output()
            .expect("running setpriv")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "rootless dockyard {args:?} failed ({:?}):\n{}{}",
            out.status,
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }
}

impl Drop for Rootless {
    fn drop(&mut self) {
        let ids = self.run(&["ps", "-aq", "--no-trunc"]);
        for id in text(&ids.stdout).lines() {
            let _ = self.run(&["rm", "-f", id]);
        }
    }
}

#[test]
fn rootless_runs_as_an_unprivileged_user_and_says_what_it_cannot_do() {
    // Nobody's ranges must not change under us (the second test adds one).
    let lock = dockyard_e2e::subids::SubIds::hold();
    let nobody_has_a_range = ["/etc/subuid", "/etc/subgid"].iter().any(|f| {
        std::fs::read_to_string(f)
            .unwrap_or_default()
            .lines()
            .any(|l| l.starts_with("nobody:") || l.starts_with("65534:"))
    });
    let r = Rootless::new();
    r.ok(&["load", "-i", "oci"]);
    // The data root is the user's: ~/.local/share/dockyard, owned by it.
    let data = r.home.path().join(".local/share/dockyard");
    assert_eq!(owner(&data.join("index.json")), (NOBODY, NOBODY));
    assert_eq!(r.ok(&["run", "--rm", "busybox", "echo", "hi"]), "hi\n");
    assert!(r.ok(&["info"]).contains("\n  rootless\n"));
    // Inside: root, mapped to the one ID the user has (0 of dockyard's own
    // user namespace, itself uid 65534 on the host).
    let out = r.ok(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "id -u; cat /proc/self/uid_map",
    ]);
    let (uid, map) = out.split_once('\n').unwrap();
    assert_eq!(uid, "0");
    if !nobody_has_a_range {
        assert_eq!(id_map(map), vec![vec![0, 0, 1]]);
    }
    // From the host: the container is the user's process, in a user
    // namespace that is not the host's, under Docker's capability mask.
    r.ok(&["run", "-d", "--name", "bg", "busybox", "sleep", "60"]);
    let pid = r.ok(&["inspect", "-f", "{{.State.Pid}}", "bg"]);
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid.trim())).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap()
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_string()
    };
    assert_eq!(field("Uid:"), NOBODY.to_string());
    assert_eq!(field("CapBnd:"), "00000000a80425fb");
    assert_eq!(field("Seccomp:"), "2");
    assert_ne!(
        std::fs::read_link(format!("/proc/{}/ns/user", pid.trim())).unwrap(),
        std::fs::read_link("/proc/self/ns/user").unwrap()
    );
    // exec enters it from the user's own side of the namespaces.
    assert_eq!(r.ok(&["exec", "bg", "id", "-u"]), "0\n");
    // What needs the host's root is refused, with the reason.
    for (args, says) in [
        (
            &["run", "--rm", "-m", "32m", "busybox", "true"][..],
            "cgroup",
        ),
        (
            &["run", "--rm", "--network", "bridge", "busybox", "true"][..],
            "network namespace",
        ),
        (
            &["run", "--rm", "-p", "80:80", "busybox", "true"][..],
            "below 1024",
        ),
        (&["--userns-remap", "default", "images"][..], "needs root"),
    ] {
        let out = r.run(args);
        assert_eq!(
            out.status.code(),
            Some(125),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains(says),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    let out = r.run(&["pause", "bg"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("rootless mode"),
        "{}",
        text(&out.stderr)
    );
    let out = r.run(&["cp", "bg:/etc/passwd", "passwd"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("stop it first"),
        "{}",
        text(&out.stderr)
    );
    r.ok(&["stop", "-t", "1", "bg"]);
    r.ok(&["cp", "bg:/etc/passwd", "passwd"]);
    assert!(std::fs::read_to_string(r.home.path().join("passwd"))
        .unwrap()
        .starts_with("root:"));
    r.ok(&["rm", "-f", "bg"]);
    assert_eq!(r.ok(&["ps", "-aq"]), "");
    drop(lock);
}

#[test]
fn rootless_with_a_subuid_range_maps_it_through_newuidmap() {
    const START: u32 = 3_600_000;
    let _ids = dockyard_e2e::subids::SubIds::add(&NOBODY.to_string(), START, 65_536);
    let r = Rootless::new();
    r.ok(&["load", "-i", "oci"]);
    // dockyard's own namespace: 0 is nobody, 1..=65536 the range; the
    // container's maps all of it, cut where dockyard's map is cut.
    r.ok(&["run", "-d", "--name", "ranged", "busybox", "sleep", "60"]);
    let pid = r.ok(&["inspect", "-f", "{{.State.Pid}}", "ranged"]);
    let outer = std::fs::read_to_string(format!("/proc/{}/uid_map", pid.trim())).unwrap();
    assert_eq!(
        id_map(&outer),
        vec![vec![0, NOBODY as u64, 1], vec![1, START as u64, 65_536]]
    );
    let out = r.ok(&[
        "exec",
        "ranged",
        "sh",
        "-c",
        "cat /proc/self/uid_map; touch /f; chown 1000:1000 /f",
    ]);
    assert_eq!(id_map(&out), vec![vec![0, 0, 1], vec![1, 1, 65_536]]);
    // uid 1000 inside is a uid of the range on the host.
    let id = r.ok(&["inspect", "-f", "{{.Id}}", "ranged"]);
    let upper = r
        .home
        .path()
        .join(".local/share/dockyard/containers")
        .join(id.trim())
        .join("upper/f");
    assert_eq!(owner(&upper), (START + 999, START + 999));
}

#[test]
fn commit_change_sets_the_new_images_config() {
    let dy = Dy::new();
    dy.ok(&[
        "run",
        "--name",
        "src",
        "busybox",
        "sh",
        "-c",
        "mkdir -p /srv/app && echo made > /srv/app/f",
    ]);
    // Exec and shell forms, variables expanded from the image's ENV as a
    // Dockerfile would, a relative WORKDIR.
    dy.ok(&[
        "commit",
        "-c",
        "ENV GREETING=hello WHO=\"$HOME x\"",
        "--change",
        "WORKDIR /srv",
        "-c",
        "WORKDIR app",
        "-c",
        r#"ENTRYPOINT ["/bin/sh", "-c"]"#,
        "-c",
        "CMD [\"echo $GREETING from $(pwd); cat f\"]",
        "-c",
        "EXPOSE 8080 53/udp",
        "-c",
        "LABEL stage=test",
        "-c",
        "VOLUME /data",
        "-c",
        "USER 1234:5678",
        "-c",
        "STOPSIGNAL SIGUSR1",
        "src",
        "changed:1",
    ]);
    let field = |f: &str| dy.inspect("changed:1", f);
    assert_eq!(field("{{json .Config.Entrypoint}}"), r#"["/bin/sh","-c"]"#);
    assert_eq!(
        field("{{json .Config.Cmd}}"),
        r#"["echo $GREETING from $(pwd); cat f"]"#
    );
    assert_eq!(field("{{.Config.WorkingDir}}"), "/srv/app");
    assert_eq!(field("{{.Config.User}}"), "1234:5678");
    assert_eq!(field("{{.Config.StopSignal}}"), "SIGUSR1");
    assert_eq!(field("{{json .Config.Labels}}"), r#"{"stage":"test"}"#);
    assert_eq!(
        field("{{json .Config.ExposedPorts}}"),
        r#"{"53/udp":{},"8080/tcp":{}}"#
    );
    assert_eq!(field("{{json .Config.Volumes}}"), r#"{"/data":{}}"#);
    let env = field("{{json .Config.Env}}");
    assert!(env.contains(r#""GREETING=hello""#), "{env}");
    // $HOME is not in busybox's ENV: it expands to nothing, as in docker.
    assert!(env.contains(r#""WHO= x""#), "{env}");

    // Running it: the config is what the process gets, the file is there.
    let out = dy.ok(&["run", "--rm", "-u", "0", "changed:1"]);
    assert_eq!(out, "hello from /srv/app\nmade\n");
    let out = dy.ok(&["run", "--rm", "--entrypoint", "id", "changed:1", "-u"]);
    assert_eq!(out, "1234\n");

    // Docker's list only; the store is left as it was.
    let images = dy.ok(&["images", "-q"]);
    // (Exit 1 with docker's "Error response from daemon", as for every
    // error outside run/create/exec.)
    let out = dy.run(&["commit", "-c", "RUN touch /x", "src", "bad:1"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("RUN is not a valid change command"),
        "{}",
        text(&out.stderr)
    );
    let out = dy.run(&["commit", "-c", "EXPOSE 99999", "src", "bad:1"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert_eq!(dy.ok(&["images", "-q"]), images);
}

/// `dockyard attach NAME` as a child, its stdio piped.
fn attach_child(dy: &Dy, args: &[&str]) -> std::process::Child {
    Command::new(bin("dockyard"))
        .args(["--root", dy.root.path().to_str().unwrap(), "attach"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn attach_streams_live_output_to_several_clients() {
    use std::io::{BufRead, BufReader};
    let dy = Dy::new();
    // Prints once a second until /tmp/stop exists, then exits 7.
    dy.ok(&[
        "run",
        "-d",
        "--name",
        "ticker",
        "busybox",
        "sh",
        "-c",
        "i=0; until [ -e /tmp/stop ]; do echo tick $i; echo err $i >&2; i=$((i+1)); \
         sleep 0.2; done; echo bye; exit 7",
    ]);
    dy.wait_for("ticker", "{{.State.Status}}", "running");
    // The monitor's socket: in the container's directory, root's only.
    let id = dy.inspect("ticker", "{{.Id}}");
    let sock = dy
        .root_path()
        .join("containers")
        .join(&id)
        .join("attach.sock");
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let meta = std::fs::metadata(&sock).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);

    // Two clients at once: each sees output that is new when it attached,
    // stdout and stderr apart.
    let mut clients: Vec<_> = (0..2)
        .map(|_| attach_child(&dy, &["--no-stdin", "ticker"]))
        .collect();
    let mut firsts = Vec::new();
    for c in &mut clients {
        let mut out = BufReader::new(c.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert!(line.starts_with("tick "), "{line:?}");
        firsts.push((out, line));
    }
    dy.ok(&["exec", "ticker", "touch", "/tmp/stop"]);
    for (c, (mut out, first)) in clients.iter_mut().zip(firsts) {
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
        assert!(rest.ends_with("bye\n"), "{first}{rest}");
        let mut err = String::new();
        std::io::Read::read_to_string(c.stderr.as_mut().unwrap(), &mut err).unwrap();
        assert!(err.lines().all(|l| l.starts_with("err ")), "{err}");
        // The container's exit code is attach's.
        assert_eq!(c.wait().unwrap().code(), Some(7));
    }
    // The socket went with the container's process.
    assert!(!sock.exists());

    // As docker: a stopped container cannot be attached to.
    let out = dy.run(&["attach", "ticker"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("You cannot attach to a stopped container, start it first"),
        "{}",
        text(&out.stderr)
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

#[test]
fn attach_without_a_terminal_sends_stdin_and_proxies_signals() {
    use std::io::{BufRead, BufReader, Write};
    let dy = Dy::new();
    // -di: the container's stdin is a pipe the monitor holds open.
    dy.ok(&["run", "-di", "--name", "reader", "busybox", "sh"]);
    dy.wait_for("reader", "{{.State.Status}}", "running");
    let mut c = attach_child(&dy, &["reader"]);
    let mut stdin = c.stdin.take().unwrap();
    let mut out = BufReader::new(c.stdout.take().unwrap());
    stdin.write_all(b"echo typed-$((6*7))\n").unwrap();
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "typed-42\n");
    stdin.write_all(b"exit 5\n").unwrap();
    assert_eq!(c.wait().unwrap().code(), Some(5));

    // --sig-proxy (the default): Ctrl-C on attach is SIGINT for the
    // container's process, which traps it here.
    dy.ok(&[
        "run",
        "-d",
        "--name",
        "trapper",
        "busybox",
        "sh",
        "-c",
        "trap 'echo got INT; exit 9' INT; echo ready; while :; do echo tick; sleep 0.1; done",
    ]);
    // The trap is set once "ready" is in the log.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !dy.ok(&["logs", "trapper"]).contains("ready") {
        assert!(Instant::now() < deadline, "the container never got ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut c = attach_child(&dy, &["trapper"]);
    // A tick through attach: it is connected, and it blocked the signals it
    // proxies before it began to stream, so SIGINT now goes to the container.
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let mut out = BufReader::new(c.stdout.take().unwrap());
    std::thread::spawn(move || {
        let mut line = String::new();
        while out.read_line(&mut line).is_ok_and(|n| n > 0) {
            if tx.send(std::mem::take(&mut line)).is_err() {
                break;
            }
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(20));
    assert_eq!(first.as_deref(), Ok("tick\n"));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(c.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    // Everything until attach ends (its stdout closes), 20 s at most: a
    // lost signal must fail the test, not hang it.
    let mut rest = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(l) => rest.push_str(&l),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                let _ = c.kill();
                panic!("attach did not end after SIGINT; it printed: {rest}");
            }
        }
    }
    assert!(rest.contains("got INT"), "{rest}");
    assert_eq!(c.wait().unwrap().code(), Some(9));
    assert_eq!(dy.inspect("trapper", "{{.State.ExitCode}}"), "9");
}

#[test]
fn attach_with_a_terminal_runs_typed_commands_and_detaches() {
    let dy = Dy::new();
    dy.ok(&["run", "-dit", "--name", "shell", "busybox", "sh"]);
    dy.wait_for("shell", "{{.State.Status}}", "running");
    let mut t = Terminal::start(&dy, &["attach", "shell"], 30, 90);
    // A command typed into the container's shell, through the monitor, and
    // the size of our terminal, sent by attach.
    t.type_in(b"echo hello-$((6*7)); stty size\n");
    t.wait_for("hello-42\r\n30 90\r\n");
    // Our terminal is resized: on SIGWINCH attach sends the new size, which
    // the monitor sets on the container's pty master.
    let bigger = nix::pty::Winsize {
        ws_row: 45,
        ws_col: 132,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize.
    unsafe {
        use std::os::fd::AsRawFd;
        assert_eq!(
            libc::ioctl(t.master.as_raw_fd(), libc::TIOCSWINSZ, &bigger),
            0
        );
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(t.child.id() as i32),
        nix::sys::signal::Signal::SIGWINCH,
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    t.type_in(b"stty size\n");
    t.wait_for("45 132\r\n");
    // Ctrl-P Ctrl-Q: attach leaves (exit 1, as docker's), the shell goes on.
    t.type_in(b"\x10\x11");
    let (code, seen) = t.finish();
    assert!(seen.contains("read escape sequence"), "{seen}");
    assert_eq!(code, 1, "{seen}");
    assert_eq!(dy.inspect("shell", "{{.State.Status}}"), "running");
    // Nothing of the keys reached the shell, and its output was logged.
    let logs = dy.ok(&["logs", "shell"]);
    assert!(logs.contains("hello-42"), "{logs}");
    // --detach-keys: a first key that the second does not follow is
    // passed on after all.
    let (code, seen) = on_a_terminal(
        &dy,
        &["attach", "--detach-keys=z,x", "shell"],
        30,
        90,
        // attach shows nothing until the shell prints: a newline first.
        &[("", b"\n"), ("# ", b"echo zy-$((1+1))\nzx")],
    );
    assert_eq!(code, 1, "{seen}");
    assert!(seen.contains("read escape sequence"), "{seen}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !dy.ok(&["logs", "shell"]).contains("zy-2") {
        assert!(Instant::now() < deadline, "{}", dy.ok(&["logs", "shell"]));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(dy.inspect("shell", "{{.State.Status}}"), "running");
}

/// The files in `blobs/sha256/` and the directories in `layers/` of a data
/// root (the engine's image store is the data root itself).
fn store_objects(root: &Path) -> (BTreeSet<String>, BTreeSet<String>) {
    let list = |d: &str| {
        std::fs::read_dir(root.join(d))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect::<BTreeSet<String>>()
    };
    (list("blobs/sha256"), list("layers"))
}

#[test]
fn rmi_and_image_prune_reclaim_disk_space() {
    let dy = Dy::new();
    let root = dy.root_path();
    let (base_blobs, base_layers) = store_objects(&root);

    // An image with one more layer: 300 kB of random bytes.
    dy.ok(&[
        "run",
        "--name",
        "maker",
        "busybox",
        "sh",
        "-c",
        "head -c 300000 /dev/urandom > /big",
    ]);
    dy.ok(&["commit", "maker", "fat:1"]);
    dy.ok(&["rm", "maker"]);
    let id = dy.ok(&["image", "inspect", "-f", "{{.Id}}", "fat:1"]);
    let id = id.trim();
    let (blobs, layers) = store_objects(&root);
    let new_blobs: Vec<_> = blobs.difference(&base_blobs).cloned().collect();
    let new_layers: Vec<_> = layers.difference(&base_layers).cloned().collect();
    // Its manifest, config and layer blob; its layer directory.
    assert_eq!(new_blobs.len(), 3, "{new_blobs:?}");
    assert!(new_blobs.contains(&id[7..].to_string()), "{new_blobs:?}");
    assert_eq!(new_layers.len(), 1, "{new_layers:?}");

    // A stopped container uses it: rmi -f only untags, the bytes stay and
    // the container still starts.
    dy.ok(&["run", "--name", "user", "fat:1", "sh", "-c", "wc -c < /big"]);
    assert_eq!(dy.ok(&["rmi", "-f", "fat:1"]), "Untagged: fat:1\n");
    assert_eq!(store_objects(&root), (blobs.clone(), layers.clone()));
    assert_eq!(dy.ok(&["start", "-a", "user"]).trim(), "300000");
    // Still there until the container goes and gc runs again.
    dy.ok(&["rm", "user"]);
    assert_eq!(store_objects(&root), (blobs.clone(), layers.clone()));
    let out = dy.ok(&["image", "prune", "-f"]);
    assert!(out.contains(&format!("deleted: {id}\n")), "{out}");
    assert!(
        out.contains(&format!("deleted: sha256:{}\n", new_layers[0])),
        "{out}"
    );
    let total = out
        .lines()
        .last()
        .and_then(|l| l.strip_prefix("Total reclaimed space: "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(total.ends_with("kB") || total.ends_with("MB"), "{out}");
    assert_eq!(
        store_objects(&root),
        (base_blobs.clone(), base_layers.clone())
    );

    // rmi of an image no container uses deletes at once, as docker says.
    dy.ok(&["run", "--name", "maker", "busybox", "touch", "/x"]);
    dy.ok(&["commit", "maker", "thin:1"]);
    dy.ok(&["rm", "maker"]);
    let id = dy.ok(&["image", "inspect", "-f", "{{.Id}}", "thin:1"]);
    let (_, layers) = store_objects(&root);
    let top: Vec<_> = layers.difference(&base_layers).collect();
    assert_eq!(
        dy.ok(&["rmi", "thin:1"]),
        format!(
            "Untagged: thin:1\nDeleted: {}\nDeleted: sha256:{}\n",
            id.trim(),
            top[0]
        )
    );
    assert_eq!(
        store_objects(&root),
        (base_blobs.clone(), base_layers.clone())
    );
    // busybox's blobs and layers are whole: it still runs.
    assert_eq!(dy.ok(&["run", "--rm", "busybox", "echo", "ok"]), "ok\n");

    // A blob written within the grace period (a pull not yet tagged) stays.
    let stray = root.join("blobs/sha256").join(format!("{:0>64}", "1"));
    std::fs::write(&stray, "in flight").unwrap();
    let out = dy.ok(&["system", "prune", "-f"]);
    assert!(out.ends_with("Total reclaimed space: 0B\n"), "{out}");
    assert!(stray.exists());
    // Ten minutes later it is garbage.
    let old = std::time::SystemTime::now() - Duration::from_secs(11 * 60);
    std::fs::File::options()
        .write(true)
        .open(&stray)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let out = dy.ok(&["system", "prune", "-f"]);
    assert!(out.ends_with("Total reclaimed space: 9B\n"), "{out}");
    assert!(!stray.exists());

    // image prune -a: every image no container uses goes, names and bytes.
    dy.ok(&["create", "--name", "keeper", "busybox"]);
    let out = dy.ok(&["image", "prune", "-a", "-f"]);
    assert_eq!(out, "Total reclaimed space: 0B\n");
    dy.ok(&["rm", "keeper"]);
    let out = dy.ok(&["image", "prune", "-a", "-f"]);
    assert!(
        out.starts_with("Deleted Images:\nuntagged: busybox:latest\ndeleted: sha256:"),
        "{out}"
    );
    assert!(dy.ok(&["images", "-q"]).is_empty());
    assert_eq!(store_objects(&root), Default::default());
}
