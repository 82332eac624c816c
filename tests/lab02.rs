//! Lab 02, observed from the kernel: the probe's namespace inodes against the
//! host's, PID 1, hostname, ID maps and file ownership, zombies, signals,
//! exit statuses, IPC objects, interfaces and cgroup paths.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use dockyard_e2e::fixtures::{bin, host_mountinfo, ns_inode, TestRootfs};
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use serde_json::Value;

/// The namespaces the lab creates, with the flag that turns each one off
/// (the mount namespace has none: pivot_root needs it).
const NAMESPACES: [(&str, Option<&str>); 7] = [
    ("mnt", None),
    ("uts", Some("--no-uts")),
    ("ipc", Some("--no-ipc")),
    ("pid", Some("--no-pid")),
    ("net", Some("--no-net")),
    ("user", Some("--no-user")),
    ("cgroup", Some("--no-cgroupns")),
];

/// A rootfs copy that root inside a user namespace (uid 100000 on the host,
/// or nobody when rootless) can reach: the fixture's directory is 0700.
fn rootfs() -> TestRootfs {
    let fx = TestRootfs::new();
    std::fs::set_permissions(fx.outside(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod 755 on the fixture directory");
    fx
}

fn lab02(fx: &TestRootfs, flags: &[&str], cmd: &[&str]) -> Command {
    let mut c = Command::new(bin("lab02-namespaces"));
    c.arg("--rootfs")
        .arg(fx.path())
        .args(flags)
        .arg("--")
        .args(cmd);
    c
}

fn run(mut cmd: Command) -> Output {
    cmd.output().expect("running lab02-namespaces")
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "command failed: {:?}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn probe(fx: &TestRootfs, flags: &[&str]) -> Value {
    let out = run(lab02(fx, flags, &["/bin/probe"]));
    let text = stdout(&out);
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("probe output is not JSON ({e}):\n{text}"))
}

fn inode(report: &Value, ns: &str) -> u64 {
    report["namespaces"][ns]
        .as_u64()
        .unwrap_or_else(|| panic!("no {ns} namespace in {report:#}"))
}

/// Kills a spawned lab and everything in its process group when dropped.
struct Group(Child);

impl Drop for Group {
    fn drop(&mut self) {
        let _ = killpg(Pid::from_raw(self.0.id() as i32), Signal::SIGKILL);
        let _ = self.0.wait();
    }
}

fn spawn_group(mut cmd: Command) -> Group {
    Group(
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("spawning lab02-namespaces"),
    )
}

/// Processes on the host whose command line contains `marker`.
fn processes_with(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("reading /proc").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            if String::from_utf8_lossy(&cmdline).contains(marker) {
                found.push(name);
            }
        }
    }
    found
}

fn wait_with_timeout(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[test]
fn every_namespace_is_new_and_each_no_flag_shares_one() {
    let fx = rootfs();
    let report = probe(&fx, &[]);
    for (ns, _) in NAMESPACES {
        assert_ne!(inode(&report, ns), ns_inode(ns), "{ns}: same as the host's");
    }
    // The time namespace is not one a container gets (nor in Docker).
    assert_eq!(inode(&report, "time"), ns_inode("time"));

    for (off, flag) in NAMESPACES.iter().filter_map(|(ns, f)| f.map(|f| (*ns, f))) {
        let report = probe(&fx, &[flag]);
        for (ns, _) in NAMESPACES {
            if ns == off {
                assert_eq!(inode(&report, ns), ns_inode(ns), "{flag}: {ns} not shared");
            } else {
                assert_ne!(inode(&report, ns), ns_inode(ns), "{flag}: {ns} shared");
            }
        }
    }
}

#[test]
fn clone_fallback_creates_the_same_namespaces() {
    let fx = rootfs();
    let mut cmd = lab02(&fx, &[], &["/bin/probe"]);
    cmd.env("DOCKYARD_NO_CLONE3", "1");
    let report: Value = serde_json::from_str(&stdout(&run(cmd))).expect("JSON");
    assert_eq!(report["pid"], 1);
    for (ns, _) in NAMESPACES {
        assert_ne!(inode(&report, ns), ns_inode(ns), "{ns}: same as the host's");
    }
}

#[test]
fn the_command_is_pid_1_or_pid_2_under_init() {
    let fx = rootfs();
    let report = probe(&fx, &[]);
    assert_eq!(report["pid"], 1, "{report:#}");
    // Its parent is outside the namespace, so it has none inside.
    assert_eq!(report["ppid"], 0, "{report:#}");

    let report = probe(&fx, &["--init"]);
    assert_eq!(report["pid"], 2, "{report:#}");
    assert_eq!(report["ppid"], 1, "{report:#}");

    // Without a PID namespace the command has a host PID, and `ps` inside
    // lists the host's processes.
    let report = probe(&fx, &["--no-pid"]);
    assert_ne!(report["pid"], 1, "{report:#}");
    let ps = stdout(&run(lab02(&fx, &["--no-pid"], &["/bin/ps"])));
    assert!(ps.lines().count() > 3, "{ps}");
    let ps = stdout(&run(lab02(&fx, &[], &["/bin/ps", "-o", "pid,comm"])));
    let pids: Vec<&str> = ps
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(pids, ["1"], "{ps}");
}

#[test]
fn hostname_is_set_inside_and_never_on_the_host() {
    let fx = rootfs();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("host hostname");
    let report = probe(&fx, &["--hostname", "dockyard-test"]);
    assert_eq!(report["hostname"], "dockyard-test");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap(),
        host,
        "the host's hostname changed"
    );
    let report = probe(&fx, &["--no-uts"]);
    assert_eq!(report["hostname"], host.trim());

    // Refused without a UTS namespace: it would rename the host.
    let out = run(lab02(&fx, &["--no-uts", "--hostname", "x"], &["/bin/true"]));
    assert_eq!(out.status.code(), Some(125));
}

fn map(report: &Value, which: &str) -> (u64, u64, u64) {
    let m = &report[which][0];
    (
        m["inside"].as_u64().unwrap(),
        m["outside"].as_u64().unwrap(),
        m["count"].as_u64().unwrap(),
    )
}

#[test]
fn user_namespace_maps_root_to_the_requested_range() {
    let fx = rootfs();
    let report = probe(&fx, &[]);
    assert_eq!(map(&report, "uid_map"), (0, 100_000, 65_536), "{report:#}");
    assert_eq!(map(&report, "gid_map"), (0, 100_000, 65_536), "{report:#}");

    let report = probe(&fx, &["--userns-map", "200000:1000"]);
    assert_eq!(map(&report, "uid_map"), (0, 200_000, 1000), "{report:#}");
    assert_eq!(map(&report, "gid_map"), (0, 200_000, 1000), "{report:#}");

    // The host's identity map: every uid is itself.
    let report = probe(&fx, &["--no-user"]);
    assert_eq!(map(&report, "uid_map"), (0, 0, 4_294_967_295), "{report:#}");

    // Root on the host wrote the maps, so setgroups stays allowed inside.
    let out = stdout(&run(lab02(&fx, &[], &["/bin/cat", "/proc/self/setgroups"])));
    assert_eq!(out.trim(), "allow");
}

#[test]
fn a_file_made_inside_belongs_to_the_mapped_uid_on_the_host() {
    let fx = rootfs();
    for (flags, owner) in [
        (&[][..], 100_000),
        (&["--userns-map", "200000:1000"][..], 200_000),
        (&["--no-user"][..], 0),
    ] {
        let out = run(lab02(
            &fx,
            flags,
            &[
                "/bin/sh",
                "-c",
                "touch /tmp/made-inside && stat -c %u:%g /tmp/made-inside",
            ],
        ));
        // Inside, it is root's file...
        assert_eq!(stdout(&out).trim(), "0:0", "{flags:?}");
        // ...on the host, the mapped uid's.
        let path = fx.path().join("tmp/made-inside");
        let meta = std::fs::metadata(&path).expect("the file made inside");
        assert_eq!((meta.uid(), meta.gid()), (owner, owner), "{flags:?}");
        std::fs::remove_file(&path).unwrap();
    }
}

#[test]
fn rootless_maps_root_to_the_caller() {
    let fx = rootfs();
    let as_nobody = |flags: &[&str], cmd: &[&str]| {
        let mut c = lab02(&fx, flags, cmd);
        c.uid(65534).gid(65534);
        run(c)
    };
    let out = as_nobody(&["--hostname", "rootless"], &["/bin/probe"]);
    let report: Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(map(&report, "uid_map"), (0, 65534, 1), "{report:#}");
    assert_eq!(map(&report, "gid_map"), (0, 65534, 1), "{report:#}");
    assert_eq!(report["pid"], 1);
    assert_eq!(report["hostname"], "rootless");
    for (ns, _) in NAMESPACES {
        assert_ne!(inode(&report, ns), ns_inode(ns), "{ns}: same as the host's");
    }
    // An unprivileged parent had to deny setgroups before writing gid_map.
    let out = as_nobody(&[], &["/bin/cat", "/proc/self/setgroups"]);
    assert_eq!(stdout(&out).trim(), "deny");

    let out = as_nobody(&[], &["/bin/touch", "/tmp/rootless-file"]);
    stdout(&out);
    let meta = std::fs::metadata(fx.path().join("tmp/rootless-file")).unwrap();
    assert_eq!(meta.uid(), 65534);

    // What cannot work rootless says so.
    for (flags, says) in [
        (&["--no-user"][..], "without a user namespace"),
        (&["--userns-map", "100000:65536"][..], "only its own uid"),
    ] {
        let out = as_nobody(flags, &["/bin/true"]);
        assert_eq!(out.status.code(), Some(125), "{flags:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{flags:?}: {err}");
    }
}

/// Count the processes inside that the awk program selects from /proc/N/stat
/// (fields: pid, (comm), state, ppid).
const COUNT_ORPHANS: &str = r#"awk '$2=="(sleep)" && $4==1' /proc/[0-9]*/stat | wc -l"#;
const COUNT_ZOMBIES: &str = r#"awk '$3=="Z"' /proc/[0-9]*/stat | wc -l"#;

#[test]
fn init_reaps_orphaned_zombies() {
    let fx = rootfs();
    // Three orphans: each subshell starts a sleep and exits at once, so the
    // sleeps are reparented to PID 1. They die after 0.5 s.
    let script = format!(
        "(sleep 0.5 &); (sleep 0.5 &); (sleep 0.5 &); sleep 0.2; {COUNT_ORPHANS}; \
         sleep 0.8; {COUNT_ZOMBIES}"
    );
    let out = stdout(&run(lab02(&fx, &["--init"], &["/bin/sh", "-c", &script])));
    let counts: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(
        counts,
        ["3", "0"],
        "orphans under init, then zombies:\n{out}"
    );

    // The control: PID 1 is `sleep`, which never calls wait(2). The same
    // orphans stay zombies until the namespace ends.
    let inner = format!("(sleep 0.1 &); (sleep 0.1 &); (sleep 0.1 &); sleep 0.5; {COUNT_ZOMBIES}");
    let script = format!("sh -c '{}' & exec sleep 2", inner.replace('\'', r"'\''"));
    let out = stdout(&run(lab02(&fx, &[], &["/bin/sh", "-c", &script])));
    assert_eq!(out.trim(), "3", "zombies without an init:\n{out}");
}

const TRAP_TERM: &str =
    r#"trap "echo got TERM; exit 7" TERM; echo ready; while :; do sleep 0.1; done"#;

#[test]
fn sigterm_reaches_the_command_and_its_status_comes_back() {
    let fx = rootfs();
    for flags in [&[][..], &["--init"][..]] {
        let marker = format!("dysigterm{}", std::process::id());
        let script = format!("{TRAP_TERM} # {marker}");
        let mut group = spawn_group(lab02(&fx, flags, &["/bin/sh", "-c", &script]));
        let mut lines = BufReader::new(group.0.stdout.take().unwrap()).lines();
        assert_eq!(lines.next().unwrap().unwrap(), "ready", "{flags:?}");

        kill(Pid::from_raw(group.0.id() as i32), Signal::SIGTERM).unwrap();
        assert_eq!(lines.next().unwrap().unwrap(), "got TERM", "{flags:?}");
        let status = wait_with_timeout(&mut group.0, Duration::from_secs(10))
            .expect("the lab did not exit after SIGTERM");
        assert_eq!(status.code(), Some(7), "{flags:?}");
        drop(group);
        assert_eq!(processes_with(&marker), Vec::<String>::new(), "left behind");
    }
}

#[test]
fn pid_1_ignores_sigterm_without_a_handler_and_sigkill_is_relayed() {
    let fx = rootfs();
    let marker = format!("dysigkill{}", std::process::id());
    let script = format!("echo ready; exec sleep 30 # {marker}");
    let mut group = spawn_group(lab02(&fx, &[], &["/bin/sh", "-c", &script]));
    let mut lines = BufReader::new(group.0.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");

    let lab = group.0.id();
    kill(Pid::from_raw(lab as i32), Signal::SIGTERM).unwrap();
    // The lab forwarded it; PID 1 has no handler, so the kernel dropped it.
    assert!(
        wait_with_timeout(&mut group.0, Duration::from_millis(500)).is_none(),
        "PID 1 died of a SIGTERM it had no handler for"
    );
    let children = std::fs::read_to_string(format!("/proc/{lab}/task/{lab}/children")).unwrap();
    let container: i32 = children.split_whitespace().next().unwrap().parse().unwrap();
    // SIGKILL from the host (an ancestor namespace) is never ignored.
    kill(Pid::from_raw(container), Signal::SIGKILL).unwrap();
    let status = wait_with_timeout(&mut group.0, Duration::from_secs(10)).expect("exit");
    assert_eq!(status.code(), Some(128 + 9));
    drop(group);
    assert_eq!(processes_with(&marker), Vec::<String>::new(), "left behind");
}

#[test]
fn exit_codes_are_relayed() {
    let fx = rootfs();
    let code = |flags: &[&str], cmd: &[&str]| run(lab02(&fx, flags, cmd)).status.code();
    for flags in [&[][..], &["--init"][..], &["--no-user"][..]] {
        assert_eq!(
            code(flags, &["/bin/sh", "-c", "exit 42"]),
            Some(42),
            "{flags:?}"
        );
        assert_eq!(code(flags, &["/bin/true"]), Some(0), "{flags:?}");
        assert_eq!(code(flags, &["no-such-command"]), Some(127), "{flags:?}");
        assert_eq!(code(flags, &["/etc/passwd"]), Some(126), "{flags:?}");
    }
    // Under init the command is PID 2 and dies of its signals: 128+N.
    assert_eq!(
        code(&["--init"], &["/bin/sh", "-c", "kill -TERM $$"]),
        Some(143)
    );
    assert_eq!(
        code(&["--init"], &["/bin/sh", "-c", "kill -KILL $$"]),
        Some(137)
    );
    // As PID 1 it survives them: signals from inside to a handlerless
    // init are dropped, even SIGKILL.
    let out = run(lab02(
        &fx,
        &[],
        &[
            "/bin/sh",
            "-c",
            "kill -TERM $$; kill -KILL $$; echo survived",
        ],
    ));
    assert_eq!(stdout(&out).trim(), "survived");

    let out = run({
        let mut c = Command::new(bin("lab02-namespaces"));
        c.args(["--rootfs", "/no/such/rootfs", "--", "/bin/true"]);
        c
    });
    assert_eq!(out.status.code(), Some(125));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/no/such/rootfs") && !err.contains("panicked"),
        "{err}"
    );
}

/// A System V shared memory segment made by the test (on the host), removed on drop.
struct Shm(i32);

impl Shm {
    fn new() -> Shm {
        // SAFETY: plain system calls with integer arguments.
        let id = unsafe { libc::shmget(libc::IPC_PRIVATE, 4096, libc::IPC_CREAT | 0o600) };
        assert!(id >= 0, "shmget: {}", std::io::Error::last_os_error());
        Shm(id)
    }
}

impl Drop for Shm {
    fn drop(&mut self) {
        // SAFETY: IPC_RMID takes no buffer.
        unsafe { libc::shmctl(self.0, libc::IPC_RMID, std::ptr::null_mut()) };
    }
}

fn shm_ids(text: &str) -> Vec<i32> {
    text.lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(1)?.parse().ok())
        .collect()
}

/// Whether a POSIX message queue of that name exists in the test's IPC namespace.
fn host_has_queue(name: &str) -> bool {
    let c = std::ffi::CString::new(name).unwrap();
    // SAFETY: a valid C string; the descriptor is closed at once.
    let mq = unsafe { libc::mq_open(c.as_ptr(), libc::O_RDONLY) };
    if mq == -1 {
        return false;
    }
    unsafe { libc::mq_close(mq) };
    true
}

#[test]
fn ipc_objects_stay_on_their_side() {
    let fx = rootfs();
    // Outside -> inside: a segment made on the host is not listed inside.
    let shm = Shm::new();
    let inside = stdout(&run(lab02(&fx, &[], &["/bin/cat", "/proc/sysvipc/shm"])));
    assert!(!shm_ids(&inside).contains(&shm.0), "{inside}");
    let shared = stdout(&run(lab02(
        &fx,
        &["--no-ipc"],
        &["/bin/cat", "/proc/sysvipc/shm"],
    )));
    assert!(shm_ids(&shared).contains(&shm.0), "--no-ipc: {shared}");

    // Inside -> outside: a POSIX message queue made inside (by creating a
    // file in the mqueue file system) is not there on the host.
    let queue = format!("dyq{}", std::process::id());
    let script = format!(
        "mkdir /dev/mqueue && mount -t mqueue mqueue /dev/mqueue && \
         touch /dev/mqueue/{queue} && ls /dev/mqueue"
    );
    let out = stdout(&run(lab02(&fx, &[], &["/bin/sh", "-c", &script])));
    assert_eq!(out.trim(), queue);
    assert!(!host_has_queue(&format!("/{queue}")));

    // The control, sharing the host's IPC namespace (and its user namespace,
    // which owns it: mounting its mqueue needs that).
    let out = stdout(&run(lab02(
        &fx,
        &["--no-ipc", "--no-user"],
        &["/bin/sh", "-c", &script],
    )));
    assert!(out.contains(&queue), "{out}");
    assert!(host_has_queue(&format!("/{queue}")));
    let c = std::ffi::CString::new(format!("/{queue}")).unwrap();
    // SAFETY: a valid C string.
    unsafe { libc::mq_unlink(c.as_ptr()) };
}

#[test]
fn the_network_namespace_has_only_lo_and_it_is_up() {
    let fx = rootfs();
    let report = probe(&fx, &[]);
    let ifaces = report["interfaces"].as_array().expect("interfaces");
    assert_eq!(ifaces.len(), 1, "{ifaces:?}");
    assert_eq!(ifaces[0]["name"], "lo");
    assert_eq!(ifaces[0]["up"], true);
    assert!(ifaces[0]["addresses"]
        .as_array()
        .unwrap()
        .contains(&"127.0.0.1/8".into()));

    let report = probe(&fx, &["--no-net"]);
    let mut inside: Vec<String> = report["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_string())
        .collect();
    let mut host: Vec<String> = std::fs::read_dir("/sys/class/net")
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    inside.sort();
    inside.dedup();
    host.sort();
    assert_eq!(inside, host);
}

#[test]
fn a_joined_network_namespace_is_the_targets_and_the_rest_are_new() {
    let fx = rootfs();
    // The target: a container with its own network namespace, whose `lo`
    // it brought up.
    let mut group = spawn_group(lab02(
        &fx,
        &["--no-user"],
        &["/bin/sh", "-c", "echo ready; exec sleep 30"],
    ));
    let mut lines = BufReader::new(group.0.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    let lab = group.0.id();
    let children = std::fs::read_to_string(format!("/proc/{lab}/task/{lab}/children")).unwrap();
    let target: i32 = children.split_whitespace().next().unwrap().parse().unwrap();
    let ns = |kind: &str| {
        std::fs::metadata(format!("/proc/{target}/ns/{kind}"))
            .unwrap()
            .ino()
    };
    assert_ne!(ns("net"), ns_inode("net"));

    let net = format!("net=/proc/{target}/ns/net");
    let report = probe(&fx, &["--no-user", "--join-ns", &net]);
    assert_eq!(inode(&report, "net"), ns("net"));
    // Only the network namespace is shared; the others are new.
    for kind in ["uts", "ipc", "pid", "mnt"] {
        assert_ne!(inode(&report, kind), ns(kind), "{kind}");
        assert_ne!(inode(&report, kind), ns_inode(kind), "{kind}");
    }
    // The target's interfaces: its `lo`, up, and nothing of the host's.
    let ifaces = report["interfaces"].as_array().expect("interfaces");
    assert_eq!(ifaces.len(), 1, "{ifaces:?}");
    assert_eq!(
        (&ifaces[0]["name"], &ifaces[0]["up"]),
        (&"lo".into(), &true.into())
    );

    // A joined PID namespace (the parent enters it for the clone alone):
    // the target's `sh`, now `sleep`, is PID 1 there.
    let pid_ns = format!("pid=/proc/{target}/ns/pid");
    let out = run(lab02(
        &fx,
        &["--no-user", "--join-ns", &pid_ns],
        &["/bin/cat", "/proc/1/cmdline"],
    ));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "sleep\u{0}30\u{0}");

    // Refused before anything runs (125), saying why.
    for (flags, why) in [
        (vec!["--join-ns", net.as_str()], "--no-user"),
        (
            vec![
                "--no-user",
                "--join-ns",
                &format!("mnt=/proc/{target}/ns/mnt"),
            ],
            "pivot_root",
        ),
        (
            vec![
                "--no-user",
                "--join-ns",
                &format!("net=/proc/{target}/ns/ipc"),
            ],
            "kind ipc, not net",
        ),
    ] {
        let out = run(lab02(&fx, &flags, &["/bin/true"]));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(125), "{flags:?}: {stderr}");
        assert!(stderr.contains(why), "{flags:?}: {stderr}");
    }
    drop(group);
}

#[test]
fn the_cgroup_namespace_shows_its_own_cgroup_as_root() {
    let fx = rootfs();
    let report = probe(&fx, &[]);
    let lines = report["cgroup"].as_array().expect("cgroup lines");
    assert!(!lines.is_empty());
    for line in lines {
        assert!(line.as_str().unwrap().ends_with(":/"), "{lines:?}");
    }
    let report = probe(&fx, &["--no-cgroupns"]);
    let host: Vec<Value> = std::fs::read_to_string("/proc/self/cgroup")
        .unwrap()
        .lines()
        .map(Value::from)
        .collect();
    assert_eq!(report["cgroup"].as_array().unwrap(), &host);
}

#[test]
fn nothing_is_left_behind() {
    let fx = rootfs();
    let before = host_mountinfo();
    let marker = format!("dyleftover{}", std::process::id());
    for flags in [&[][..], &["--no-user"][..], &["--init"][..]] {
        let script = format!(
            "mount -t tmpfs {marker} /tmp && (sleep 30 &) && echo ready && sleep 30 # {marker}"
        );
        let mut group = spawn_group(lab02(&fx, flags, &["/bin/sh", "-c", &script]));
        let mut lines = BufReader::new(group.0.stdout.take().unwrap()).lines();
        assert_eq!(lines.next().unwrap().unwrap(), "ready", "{flags:?}");
        assert!(
            !host_mountinfo().contains(&marker),
            "{flags:?}: the tmpfs leaked"
        );
        // Kill only the lab: the container, orphans included, must follow.
        kill(Pid::from_raw(group.0.id() as i32), Signal::SIGKILL).unwrap();
        let _ = group.0.wait();
        let start = Instant::now();
        while !processes_with(&marker).is_empty() && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(processes_with(&marker), Vec::<String>::new(), "{flags:?}");
        drop(group);
    }
    assert_eq!(before, host_mountinfo(), "the host's mount table changed");
}

#[test]
fn tty_is_a_pty_of_the_containers_own_devpts() {
    use std::os::unix::fs::MetadataExt;
    let fx = rootfs();
    // The host has ptys in use (this one at least): the container sees none.
    let _host_pty = nix::pty::openpty(None, None).expect("a host pty");
    for flags in [&["--tty"][..], &["--tty", "--secure"][..]] {
        let out = run(lab02(
            &fx,
            flags,
            &[
                "sh",
                "-c",
                "tty; ls /dev/pts; ls -ln /dev/pts/0; stat -c %d /dev/pts; stat -f -c %T /dev/pts",
            ],
        ));
        let text = stdout(&out);
        let lines: Vec<&str> = text.lines().map(|l| l.trim_end_matches('\r')).collect();
        // ttyname(3) works: the slave is a file of the container's /dev/pts.
        assert_eq!(lines[0], "/dev/pts/0", "{flags:?}: {text}");
        assert_eq!(lines[1], "0     ptmx", "{flags:?}: {text}");
        // Root's (inside), group tty, mode 0620: devpts' mode= and gid=.
        let ls: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(
            ls[..6],
            ["crw--w----", "1", "0", "5", "136,", "0"],
            "{flags:?}: {text}"
        );
        // A devpts instance of its own, not the host's.
        let host = std::fs::metadata("/dev/pts").unwrap().dev();
        assert_ne!(lines[3], host.to_string(), "{flags:?}: {text}");
        assert_eq!(lines[4], "devpts", "{flags:?}: {text}");
    }
}
