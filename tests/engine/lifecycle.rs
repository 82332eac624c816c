//! The life of a container: `run`, `ps`, `logs`, `stop`, `start`, `rm`,
//! exit codes as docker sets them, restart policies, the OOM killer, health
//! checks, and the small monitor process that stays the container's parent
//! (`ps -o pid,ppid,comm` on the host shows it).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dockyard_e2e::dockyard::{
    cgroup_dirs, container_dirs, leftover_cgroups, mount_points, text, Dockyard as Dy,
};
use dockyard_e2e::fixtures::{bin, ns_inode};
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
    // The default parent in every hierarchy this host has, as lab 03 says
    // (`/sys/fs/cgroup/<ctl>/dockyard` on v1, `/sys/fs/cgroup/dockyard` on v2).
    let parents = || cgroup_dirs(lab03_cgroups::DEFAULT_PARENT);
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
        text(&out.stderr).contains("Unable to find image 'no-such-image:latest' locally"),
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
    if lab03_cgroups::detect().unwrap().version() == lab03_cgroups::Version::V2 {
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
