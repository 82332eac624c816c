//! Lab 03, observed from the kernel: the cgroup the probe sees itself in, the
//! CPU time the cgroup's own counter measured under a quota, the OOM kill the
//! memory controller counted, forks refused at pids.max, and no cgroup left
//! behind on any path out.
//!
//! Each test uses its own parent cgroup (`dockyard-test-<pid>-<n>`), and a
//! guard that removes it even when the test fails. Run them one at a time
//! (`--test-threads=1`): the CPU measurement needs the machine to itself.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use dockyard_e2e::fixtures::{bin, TestRootfs};
use dockyard_e2e::pace::bound;
use lab03_cgroups::{Host, Knob, Version};
use serde_json::Value;

/// The host's cgroup layout, as lab 03 detects it: tests ask, never assume.
fn host() -> Host {
    lab03_cgroups::detect().expect("detecting the cgroup layout")
}

/// A parent cgroup name for one test, removed with everything in it on drop.
struct Parent(String);

impl Parent {
    fn new() -> Parent {
        static N: AtomicUsize = AtomicUsize::new(0);
        Parent(format!(
            "dockyard-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ))
    }

    /// The directories of this parent that exist, in any hierarchy.
    fn leftovers(&self) -> Vec<PathBuf> {
        host()
            .hierarchy_roots()
            .into_iter()
            .map(|m| m.join(&self.0))
            .filter(|p| p.exists())
            .collect()
    }

    /// The directory of container `name` in the hierarchy that carries
    /// `controller` on this host (its own on v1 and hybrid hosts, the one
    /// unified hierarchy on v2), as lab 03 says.
    fn dir(&self, controller: &str, name: &str) -> PathBuf {
        host()
            .group_dir(controller, &self.0, name)
            .unwrap_or_else(|| panic!("this host has no {controller} controller"))
    }
}

impl Drop for Parent {
    fn drop(&mut self) {
        for dir in self.leftovers() {
            let children: Vec<PathBuf> = std::fs::read_dir(&dir)
                .map(|rd| {
                    rd.filter_map(Result::ok)
                        .map(|e| e.path())
                        .filter(|p| p.is_dir())
                        .collect()
                })
                .unwrap_or_default();
            for c in children.iter().chain(std::iter::once(&dir)) {
                for _ in 0..100 {
                    let procs = std::fs::read_to_string(c.join("cgroup.procs")).unwrap_or_default();
                    if procs.trim().is_empty() {
                        break;
                    }
                    for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                let _ = std::fs::remove_dir(c);
            }
        }
    }
}

fn lab03(rootfs: &Path, parent: &Parent, flags: &[&str], cmd: &[&str]) -> Command {
    let mut c = Command::new(bin("lab03-cgroups"));
    c.arg("--rootfs").arg(rootfs);
    if !flags.contains(&"--cgroup-parent") {
        c.arg("--cgroup-parent").arg(&parent.0);
    }
    c.args(flags).arg("--").args(cmd);
    c
}

fn run(mut cmd: Command) -> Output {
    cmd.output().expect("running lab03-cgroups")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn assert_clean(parent: &Parent) {
    let left = parent.leftovers();
    assert!(left.is_empty(), "cgroups left behind: {left:?}");
}

#[test]
fn probe_shows_the_containers_cgroup() {
    let fx = TestRootfs::new();
    let parent = Parent::new();
    let out = run(lab03(
        &fx.path(),
        &parent,
        &["--name", "probe1", "--cgroupns", "host"],
        &["/bin/probe"],
    ));
    assert!(out.status.success(), "{:?}: {}", out.status, stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("probe JSON");
    let lines: Vec<&str> = report["cgroup"]
        .as_array()
        .expect("cgroup lines")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let want = format!("/{}/probe1", parent.0);
    let host = host();
    match host.version() {
        // One line per v1 hierarchy: "4:memory:/PARENT/NAME" (a hybrid
        // host adds "0::/..." for the unified one, which has no controller).
        Version::V1 => {
            for controller in ["memory", "pids", "cpu"] {
                assert!(
                    lines.iter().any(|l| {
                        let mut f = l.splitn(3, ':');
                        let (_, ctrls, path) =
                            (f.next(), f.next().unwrap_or(""), f.next().unwrap_or(""));
                        ctrls.split(',').any(|c| c == controller) && path == want
                    }),
                    "{controller} is not in {want}: {lines:?}"
                );
            }
        }
        // One line for the one hierarchy, whose group has every controller.
        Version::V2 => assert_eq!(lines, [format!("0::{want}")]),
    }
    assert_clean(&parent);

    // With a cgroup namespace of its own, the container's cgroup is its root.
    let out = run(lab03(
        &fx.path(),
        &parent,
        &["--name", "probe2", "--cgroupns", "private"],
        &["/bin/cat", "/proc/self/cgroup"],
    ));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let root_line = match host.version() {
        Version::V1 => text
            .lines()
            .any(|l| l.contains(":memory:") && l.ends_with(":/")),
        Version::V2 => text.lines().eq(["0::/"]),
    };
    assert!(root_line, "{:?}: {text}", host.layout);
    assert!(!text.contains(&parent.0), "{text}");
    assert_clean(&parent);
}

#[test]
fn cpu_quota_holds_a_busy_loop_to_ten_percent() {
    let fx = TestRootfs::new();
    let parent = Parent::new();
    let out = run(lab03(
        &fx.path(),
        &parent,
        &["--cpus", "0.1", "--init", "--stats"],
        &["timeout", "3", "sh", "-c", "while :; do :; done"],
    ));
    // timeout ends the loop with SIGTERM: 128 + 15.
    assert_eq!(out.status.code(), Some(143), "{}", stderr(&out));
    let err = stderr(&out);
    // "lab03-cgroups: cpu: 301234us in 3.012s = 10.0% of one CPU"
    let line = err
        .lines()
        .find(|l| l.contains("% of one CPU"))
        .unwrap_or_else(|| panic!("no CPU line: {err}"));
    let share: f64 = line
        .rsplit(" = ")
        .next()
        .and_then(|s| s.split('%').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("cannot read {line:?}"));
    let usec: f64 = line
        .split("cpu: ")
        .nth(1)
        .and_then(|s| s.split("us").next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("cannot read {line:?}"));
    eprintln!("measured: {line}");
    assert!((8.0..=12.0).contains(&share), "{line}");
    // And it did run: `timeout 3` lasts at least 3 s, so at least 0.24 s of
    // CPU time (no upper bound on the wall time: an emulated machine, as in
    // the v2 tier, takes longer, and the share above is what must hold).
    assert!(usec >= 240_000.0, "{line}");
    // The host's own account of the command's processes (getrusage, as they
    // were reaped) agrees with the group's counter: every CPU cycle the loop
    // used was counted in the group. A loop outside its group would show 0
    // there and its whole time here (the chapter's "break it" experiment).
    let host_usec = host_cpu_usec(&err);
    assert!(
        (host_usec - usec).abs() <= 0.1 * usec + 20_000.0,
        "the group counted {usec}us, the host {host_usec}us: {err}"
    );
    assert_clean(&parent);

    // Without a quota, the same loop takes much more: the limit did it.
    let out = run(lab03(
        &fx.path(),
        &parent,
        &["--init", "--stats"],
        &["timeout", "1", "sh", "-c", "while :; do :; done"],
    ));
    let err = stderr(&out);
    let line = err.lines().find(|l| l.contains("% of one CPU")).unwrap();
    let share: f64 = line
        .rsplit(" = ")
        .next()
        .unwrap()
        .split('%')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    // Well over the quota's 10%: a whole CPU on an idle machine, less on a
    // busy one (two cores shared by a CI run and its neighbours), but at
    // least twice the quota.
    assert!(share > 20.0, "{line}");
    assert_clean(&parent);
}

/// The microseconds on `--stats`' host-view line:
/// "lab03-cgroups: cpu, as the host saw the command's processes (getrusage): 301500us = ...".
fn host_cpu_usec(stderr: &str) -> f64 {
    let line = stderr
        .lines()
        .find(|l| l.contains("(getrusage): "))
        .unwrap_or_else(|| panic!("no host-view CPU line: {stderr}"));
    line.split("(getrusage): ")
        .nth(1)
        .and_then(|s| s.split("us").next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("cannot read {line:?}"))
}

/// `--cpuset-cpus` pins a container to the CPUs it names: the lab writes
/// `cpuset.cpus` in the group that carries the cpuset controller here (v1's
/// cpuset hierarchy, or the one v2 group), and the kernel then gives the
/// command exactly that list as its CPU affinity.
#[test]
fn cpuset_cpus_pins_the_container_to_the_cpus_it_names() {
    let fx = TestRootfs::new();
    let parent = Parent::new();
    // The last online CPU: on a host with more than one, a list that differs
    // from the one the container would inherit.
    let online = lab03_cgroups::parse_list(&lab03_cgroups::online(false)).expect("online CPUs");
    let cpu = online.iter().max().expect("an online CPU").to_string();
    let mut child = lab03(
        &fx.path(),
        &parent,
        &["--name", "pinned", "--init", "--cpuset-cpus", &cpu],
        &[
            "sh",
            "-c",
            "grep Cpus_allowed_list /proc/self/status; exec sleep 30",
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("spawn");
    let mut inside = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut inside)
        .expect("reading the container's affinity");
    // The group's file, on this host's version, while the container runs.
    let file = host()
        .limit_file(Knob::CpusetCpus, &parent.0, "pinned")
        .expect("this host has a cpuset controller");
    let written = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().expect("waiting for lab03-cgroups");
    assert_eq!(written.trim(), cpu, "{}", file.display());
    assert_eq!(
        inside.split_whitespace().collect::<Vec<_>>(),
        ["Cpus_allowed_list:", cpu.as_str()],
        "{}",
        stderr(&out)
    );
    assert_eq!(out.status.code(), Some(143), "{}", stderr(&out));
    assert_clean(&parent);

    // A CPU this host does not have is refused before anything is made,
    // naming the controller, the file and what is online.
    let out = run(lab03(
        &fx.path(),
        &parent,
        &["--cpuset-cpus", "4095"],
        &["true"],
    ));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(125), "{err}");
    assert!(
        err.contains("the cpuset controller's cpuset.cpus can only name what is online here"),
        "{err}"
    );
    assert_clean(&parent);
}

/// cgroup v2's no-internal-processes rule, the chapter's experiment: while a
/// container runs, its parent group hands controllers down to it (its
/// `cgroup.subtree_control` lists them), so the kernel refuses the parent a
/// process of its own: EBUSY. v1 has no such rule, and on v1 and hybrid hosts
/// the container's groups are v1 ones: there the same move into the parent
/// is taken. The process moved is a `sleep` the test started, nothing else.
#[test]
fn a_parent_that_hands_controllers_down_is_refused_a_process_on_v2_only() {
    let fx = TestRootfs::new();
    let parent = Parent::new();
    let mut container = lab03(
        &fx.path(),
        &parent,
        &["--name", "t1", "--cpus", "0.1", "--init"],
        &["sh", "-c", "echo up; exec sleep 30"],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("spawn");
    let mut up = String::new();
    BufReader::new(container.stdout.take().expect("stdout"))
        .read_line(&mut up)
        .expect("reading the container's first line");
    // The parent's directory in the hierarchy that carries cpu: the one
    // unified hierarchy on v2, v1's cpu hierarchy elsewhere.
    let group = parent.dir("cpu", "t1");
    let parent_dir = group
        .parent()
        .expect("the group has a parent")
        .to_path_buf();
    let mut sleep = Command::new("sleep")
        .arg("30")
        .spawn()
        .expect("spawning sleep");
    let pid = sleep.id();
    let moved = std::fs::write(parent_dir.join("cgroup.procs"), pid.to_string());
    let handed = std::fs::read_to_string(parent_dir.join("cgroup.subtree_control"));
    let procs = std::fs::read_to_string(parent_dir.join("cgroup.procs")).unwrap_or_default();
    let sleeps_cgroup =
        std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("the sleep's cgroups");
    // Clean up before asserting: the sleep first (so that the parent is
    // empty again when the container's end removes it), then the container.
    sleep.kill().expect("killing the sleep");
    sleep.wait().expect("waiting for the sleep");
    unsafe { libc::kill(container.id() as i32, libc::SIGTERM) };
    let out = container
        .wait_with_output()
        .expect("waiting for lab03-cgroups");
    assert_eq!(up.trim(), "up", "{}", stderr(&out));
    let want = format!("/{}", parent.0);
    match host().version() {
        Version::V2 => {
            let err = moved.expect_err("the kernel took a process into a parent group on v2");
            assert_eq!(err.raw_os_error(), Some(libc::EBUSY), "{err}");
            let handed = handed.expect("reading the parent's cgroup.subtree_control");
            assert!(
                handed.split_whitespace().any(|c| c == "cpu"),
                "{}: {handed:?}",
                parent_dir.display()
            );
            assert!(procs.trim().is_empty(), "{procs}");
            assert!(
                !sleeps_cgroup.lines().any(|l| l == format!("0::{want}")),
                "{sleeps_cgroup}"
            );
        }
        Version::V1 => {
            moved.unwrap_or_else(|e| {
                panic!("v1 refused the move into {}: {e}", parent_dir.display())
            });
            assert!(
                procs.lines().any(|l| l.trim() == pid.to_string()),
                "{}: {procs:?}",
                parent_dir.display()
            );
            // In the parent of the cpu hierarchy, beside the container's group.
            assert!(
                sleeps_cgroup.lines().any(|l| {
                    let mut f = l.splitn(3, ':');
                    let (_, ctrls, path) =
                        (f.next(), f.next().unwrap_or(""), f.next().unwrap_or(""));
                    ctrls.split(',').any(|c| c == "cpu") && path == want
                }),
                "{sleeps_cgroup}"
            );
        }
    }
    assert_eq!(out.status.code(), Some(143), "{}", stderr(&out));
    assert_clean(&parent);
}

#[test]
fn memory_hog_is_oom_killed_and_reported() {
    let fx = TestRootfs::new();
    let parent = Parent::new();
    // The shell keeps a 100 MB string in memory: command substitution reads
    // the whole pipe into the shell's own heap.
    let out = run(lab03(
        &fx.path(),
        &parent,
        &["--memory", "32m", "--stats"],
        &[
            "sh",
            "-c",
            "x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo survived ${#x}",
        ],
    ));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(137), "{err}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("survived"));
    assert!(
        err.contains("OOM-killed: memory limit 32MiB reached (memory.oom_control oom_kill=")
            || err.contains("OOM-killed: memory limit 32MiB reached (memory.events oom_kill="),
        "{err}"
    );
    // The peak stayed at the limit.
    assert!(
        err.contains("memory: peak 32") || err.contains("memory: peak 31."),
        "{err}"
    );
    assert_clean(&parent);

    // Under the limit, the same program is fine, and no OOM is reported.
    let out = run(lab03(
        &fx.path(),
        &parent,
        &["--memory", "32m"],
        &[
            "sh",
            "-c",
            "x=$(head -c 1000000 /dev/zero | tr '\\0' a); echo survived ${#x}",
        ],
    ));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "survived 1000000"
    );
    assert!(!stderr(&out).contains("OOM"));
    assert_clean(&parent);
}

#[test]
fn fork_storm_is_contained_by_pids_max() {
    let fx = TestRootfs::new();
    let parent = Parent::new();
    // A subshell forks sleeps until a fork fails (busybox sh then gives up),
    // then the container says "ready" and holds its processes for 3 s.
    let script = "(for i in $(seq 100); do sleep 3 & echo started $i; done); echo ready; sleep 3";
    let mut child = lab03(
        &fx.path(),
        &parent,
        &["--pids-limit", "20", "--name", "bomb", "--stats"],
        &["sh", "-c", script],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .process_group(0)
    .spawn()
    .expect("spawning lab03-cgroups");
    struct Kill(i32);
    impl Drop for Kill {
        fn drop(&mut self) {
            unsafe { libc::killpg(self.0, libc::SIGKILL) };
        }
    }
    let _guard = Kill(child.id() as i32);
    let start = Instant::now();
    let mut last_started = String::new();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    loop {
        let mut line = String::new();
        assert!(
            stdout.read_line(&mut line).expect("reading") > 0,
            "no ready line"
        );
        if line.trim() == "ready" {
            break;
        }
        last_started = line.trim().to_string();
    }
    // sh, the subshell and 18 sleeps made 20: the 19th sleep was refused.
    assert_eq!(last_started, "started 18");
    let pids_dir = parent.dir("pids", "bomb");
    // 18 sleeps, and sh (which execs its last command, the final sleep);
    // never more than pids.max.
    let current: u64 = std::fs::read_to_string(pids_dir.join("pids.current"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!((18..=20).contains(&current), "pids.current {current}");
    let max = std::fs::read_to_string(pids_dir.join("pids.max")).unwrap();
    assert_eq!(max.trim(), "20");
    let events = std::fs::read_to_string(pids_dir.join("pids.events")).unwrap();
    let refused: u64 = events
        .lines()
        .find_map(|l| l.strip_prefix("max "))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(refused >= 1, "pids.events: {events}");
    // The host is not affected: it forks as usual.
    let t = Instant::now();
    assert!(Command::new("/bin/true").status().unwrap().success());
    assert!(t.elapsed() < bound(Duration::from_secs(1)));

    let out = child.wait_with_output().expect("waiting");
    assert!(start.elapsed() < bound(Duration::from_secs(15)));
    let err = stderr(&out);
    assert!(err.contains("can't fork"), "{err}");
    assert!(err.contains("forks refused at pids.max"), "{err}");
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_clean(&parent);
}

/// Wait until `dir/cgroup.procs` lists a process; return the first.
fn first_pid_in(dir: &Path) -> i32 {
    let deadline = Instant::now() + bound(Duration::from_secs(10));
    loop {
        if let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) {
            if let Some(pid) = text.lines().find_map(|l| l.trim().parse().ok()) {
                return pid;
            }
        }
        assert!(Instant::now() < deadline, "{} never filled", dir.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn no_cgroup_is_left_after_failure_or_a_kill() {
    let fx = TestRootfs::new();
    let parent = Parent::new();

    // Success and failure of the command.
    let out = run(lab03(&fx.path(), &parent, &[], &["/bin/true"]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_clean(&parent);
    let out = run(lab03(
        &fx.path(),
        &parent,
        &["--memory", "64m"],
        &["no-such-command"],
    ));
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
    assert_clean(&parent);

    // The container's process killed from outside: 137, and cleaned up.
    let mut child = lab03(&fx.path(), &parent, &["--name", "victim"], &["sleep", "30"])
        .spawn()
        .expect("spawn");
    let pid = first_pid_in(&parent.dir("pids", "victim"));
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(137));
    assert_clean(&parent);

    // The lab itself interrupted (what Ctrl-C sends): it forwards the signal;
    // sleep as PID 1 ignores it, so after the stop timeout the cgroup is killed.
    for sig in [libc::SIGINT, libc::SIGTERM] {
        let mut child = lab03(
            &fx.path(),
            &parent,
            &["--name", "stopped"],
            &["sleep", "30"],
        )
        .spawn()
        .expect("spawn");
        let leaf = parent.dir("memory", "stopped");
        first_pid_in(&leaf);
        let t = Instant::now();
        unsafe { libc::kill(child.id() as i32, sig) };
        let status = child.wait().unwrap();
        assert!(
            t.elapsed() < bound(Duration::from_secs(8)),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(status.code(), Some(137));
        assert_clean(&parent);
    }

    // With --init, the forwarded SIGTERM ends the command at once: 143.
    let mut child = lab03(
        &fx.path(),
        &parent,
        &["--name", "polite", "--init"],
        &["sleep", "30"],
    )
    .spawn()
    .expect("spawn");
    first_pid_in(&parent.dir("pids", "polite"));
    std::thread::sleep(bound(Duration::from_millis(200)));
    let t = Instant::now();
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(143));
    assert!(
        t.elapsed() < bound(Duration::from_secs(2)),
        "{:?}",
        t.elapsed()
    );
    assert_clean(&parent);
}

#[test]
fn hostile_values_are_refused_before_anything_is_created() {
    let fx = TestRootfs::new();
    let parent = Parent::new();
    // The file each value was going to be written to, on this host's layout.
    let file = |knob| host().version().file(knob);
    let cases: &[(&[&str], &[&str])] = &[
        (&["--cpus", "0"], &["cpu controller", file(Knob::CpuQuota)]),
        (&["--cpus", "-1"], &["cpu controller", file(Knob::CpuQuota)]),
        (
            &["--cpus", "NaN"],
            &["cpu controller", file(Knob::CpuQuota)],
        ),
        (
            &["--cpus", "1000"],
            &["cpu controller", file(Knob::CpuQuota)],
        ),
        (
            &["--memory", "0"],
            &["memory controller", file(Knob::Memory)],
        ),
        (
            &["--memory", "1m"],
            &["memory controller", file(Knob::Memory), "6MiB"],
        ),
        (&["--memory", "32x"], &["invalid size \"32x\""]),
        (
            &["--memory", "32m", "--memory-swap", "16m"],
            &[file(Knob::MemorySwap)],
        ),
        (
            &["--pids-limit", "0"],
            &["pids controller", file(Knob::Pids)],
        ),
        (
            &["--cpu-shares", "1"],
            &["cpu controller", file(Knob::CpuWeight)],
        ),
        (&["--cgroup-parent", "../memory"], &["--cgroup-parent"]),
    ];
    for (flags, words) in cases {
        let out = run(lab03(&fx.path(), &parent, flags, &["/bin/true"]));
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(125), "{flags:?}: {err}");
        for w in *words {
            assert!(err.contains(w), "{flags:?}: {w:?} not in {err}");
        }
        assert!(!err.contains("panicked"), "{err}");
        assert_clean(&parent);
    }
}

/// `--device-program` puts the container in a cgroup v2 group (its own on a
/// v2 host, one made in the unified hierarchy on a hybrid host). The child
/// is born there by clone3(CLONE_INTO_CGROUP), and enters its v1 groups by
/// itself through their `tasks` files (lab 03's `Entry`): /proc/self/cgroup
/// shows every group, and the device program already holds for the first
/// command.
#[test]
fn a_new_container_is_born_in_its_v2_group_and_joins_its_v1_groups_itself() {
    let host = host();
    if host.v2_mount.is_none() {
        eprintln!("skipped: no cgroup2 mount");
        return;
    }
    let fx = TestRootfs::new();
    let parent = Parent::new();
    let out = run(lab03(
        &fx.path(),
        &parent,
        &["--name", "born", "--cgroupns", "host", "--device-program"],
        &[
            "/bin/sh",
            "-c",
            "cat /proc/self/cgroup; mknod /tmp/kmsg c 1 11 && head -c1 /tmp/kmsg; echo \"read=$?\"",
        ],
    ));
    assert!(out.status.success(), "{:?}: {}", out.status, stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let want = format!("/{}/born", parent.0);
    assert!(
        text.lines()
            .any(|l| l.starts_with("0::") && l.ends_with(&want)),
        "not born in the v2 group {want}: {text}"
    );
    // On a v1 or hybrid host, the v1 hierarchies too (pids at least).
    if host.version() == Version::V1 {
        assert!(
            text.lines()
                .any(|l| l.contains(":pids:") && l.ends_with(&want)),
            "not in its v1 pids group {want}: {text}"
        );
    }
    assert!(text.contains("read=1"), "{text}");
    assert!(
        stderr(&out).contains("Operation not permitted"),
        "{}",
        stderr(&out)
    );
    assert_clean(&parent);
}
