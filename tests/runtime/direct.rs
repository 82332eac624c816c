//! The runtime driven directly, with the argv its callers pass: each
//! vector below is what containerd-shim-runc-v2 (containerd 1.6, captured
//! with a logging wrapper as `--runc-binary`) and conmon (podman) run.

use std::io::Read;
use std::os::unix::net::UnixListener;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::{memory_dir, run_to_files, text, Env};
use serde_json::Value;

/// Wait until `f` holds, or fail after 10 s.
fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn containerd_shims_argv_create_start_state_kill_delete() {
    let env = Env::new("shim");
    env.edit(|c| {
        c["process"]["args"] = serde_json::json!(["sh", "-c", "echo $$ > /tmp/pid1; sleep 300"]);
    });
    let (root, log, bundle) = (
        env.root.to_str().unwrap(),
        env.log.to_str().unwrap(),
        env.bundle.to_str().unwrap(),
    );
    let pid_file = env.bundle.join("init.pid");
    let g = ["--root", root, "--log", log, "--log-format", "json"];
    let with = |args: &[&str]| {
        let mut all = g.to_vec();
        all.extend_from_slice(args);
        env.runtime(&all)
    };
    // The shim gives create pipes as stdio and waits for it to exit: the
    // container's process must not keep create's stdout open... it is
    // the container's stdout, so only create itself must exit.
    let out = with(&[
        "create",
        "--bundle",
        bundle,
        "--pid-file",
        pid_file.to_str().unwrap(),
        "c1",
    ]);
    assert!(out.status.success(), "create: {}", text(&out.stderr));
    let pid: i32 = std::fs::read_to_string(&pid_file).unwrap().parse().unwrap();
    let s = env.state("c1");
    assert_eq!(s["status"], "created");
    assert_eq!(s["pid"], pid);
    assert_eq!(s["id"], "c1");
    assert_eq!(s["bundle"], bundle);
    assert!(
        s["ociVersion"].is_string() && s["annotations"].is_object(),
        "{s}"
    );
    // Created: the process exists, blocked before exec (still our binary).
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert!(exe.ends_with("dockyard-runtime"), "{}", exe.display());
    assert!(env.root.join("c1/exec.fifo").exists());

    let out = with(&["start", "c1"]);
    assert!(out.status.success(), "start: {}", text(&out.stderr));
    wait_until("sh to run", || {
        std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|e| e.ends_with("busybox"))
    });
    assert_eq!(env.state("c1")["status"], "running");
    // PID 1 inside, in its own PID namespace.
    wait_until("pid1 file", || env.rootfs.path().join("tmp/pid1").exists());
    let inside = std::fs::read_to_string(env.rootfs.path().join("tmp/pid1")).unwrap();
    assert_eq!(inside.trim(), "1");
    // In the cgroup the config named.
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(
        cgroup.contains(&format!("/{}/c", env.cgroup.name)),
        "{cgroup}"
    );

    // Refused while running, as runc: delete without --force.
    let out = with(&["delete", "c1"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("not stopped"),
        "{}",
        text(&out.stderr)
    );

    let out = with(&["kill", "c1", "9"]);
    assert!(out.status.success(), "kill: {}", text(&out.stderr));
    // Our test process is not its parent: it is reparented to whoever
    // reaps orphans here; it reads as stopped once it is a zombie or gone.
    wait_until("stopped", || env.state("c1")["status"] == "stopped");
    let out = with(&["delete", "c1"]);
    assert!(out.status.success(), "delete: {}", text(&out.stderr));
    // The shim then runs `delete --force` again: a missing container is fine.
    let out = with(&["delete", "--force", "c1"]);
    assert!(
        out.status.success(),
        "delete --force: {}",
        text(&out.stderr)
    );
    env.assert_gone("c1");

    // Every log line is a JSON object with level, msg and time; the failed
    // delete is the error containerd would show.
    let lines = env.log_lines();
    assert!(lines.iter().all(|l| l["level"].is_string()
        && l["msg"].is_string()
        && l["time"].as_str().is_some_and(|t| t.ends_with('Z'))));
    assert!(lines
        .iter()
        .any(|l| l["level"] == "error" && l["msg"].as_str().unwrap().contains("not stopped")));
}

#[test]
fn conmons_argv_with_equals_signs_and_a_console_socket() {
    // conmon: RUNTIME [--runtime-arg...] create --bundle B --pid-file P
    // --console-socket S ID, with podman's --log-format=json --log=FILE.
    let env = Env::new("conmon");
    env.edit(|c| {
        c["process"]["terminal"] = true.into();
        c["process"]["args"] = serde_json::json!(["sh", "-c", "tty; sleep 300"]);
    });
    let socket_path = env.bundle.join("console.sock");
    let listener = UnixListener::bind(&socket_path).unwrap();
    let root = format!("--root={}", env.root.display());
    let log = format!("--log={}", env.log.display());
    let pid_file = env.bundle.join("pidfile");
    let mut child = std::process::Command::new(dockyard_e2e::fixtures::bin("dockyard-runtime"))
        .args([&root, "--log-format=json", &log, "create", "--bundle"])
        .arg(&env.bundle)
        .arg("--pid-file")
        .arg(&pid_file)
        .arg("--console-socket")
        .arg(&socket_path)
        .arg("c2")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(env.bundle.join("create.err")).unwrap())
        .spawn()
        .unwrap();
    let (stream, _) = listener.accept().unwrap();
    let master = receive_fd(&stream);
    let status = child.wait().unwrap();
    let err = std::fs::read_to_string(env.bundle.join("create.err")).unwrap();
    assert!(status.success(), "create: {err}");
    let out = env.rt(&["start", "c2"]);
    assert!(out.status.success(), "start: {}", text(&out.stderr));
    // The command's `tty` prints its pty through the master we received.
    let mut file = std::fs::File::from(master);
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while !text(&got).contains("/dev/pts/") {
        let n = file.read(&mut buf).unwrap();
        assert!(n > 0, "pty closed: {}", text(&got));
        got.extend_from_slice(&buf[..n]);
    }
    // conmon's exec with a terminal: --tty --console-socket, --detach.
    let exec_socket = env.bundle.join("exec-console.sock");
    let listener = UnixListener::bind(&exec_socket).unwrap();
    let exec_pid = env.bundle.join("exec.pid");
    let mut exec = std::process::Command::new(dockyard_e2e::fixtures::bin("dockyard-runtime"))
        .arg(&root)
        .args(["exec", "--detach", "--tty", "--console-socket"])
        .arg(&exec_socket)
        .arg("--pid-file")
        .arg(&exec_pid)
        .args(["c2", "--", "sh", "-c", "echo exec-on; tty"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (stream, _) = listener.accept().unwrap();
    let mut file = std::fs::File::from(receive_fd(&stream));
    assert!(exec.wait().unwrap().success());
    assert!(std::fs::read_to_string(&exec_pid)
        .unwrap()
        .parse::<i32>()
        .is_ok());
    let mut got = Vec::new();
    while !text(&got).contains("/dev/pts/") {
        let n = file.read(&mut buf).unwrap_or(0);
        assert!(n > 0, "exec pty closed: {}", text(&got));
        got.extend_from_slice(&buf[..n]);
    }
    assert!(text(&got).contains("exec-on"), "{}", text(&got));
    let out = env.rt(&["delete", "--force", "c2"]);
    assert!(out.status.success(), "delete: {}", text(&out.stderr));
    env.assert_gone("c2");
}

fn receive_fd(stream: &std::os::unix::net::UnixStream) -> std::os::fd::OwnedFd {
    let fd = std::os::fd::OwnedFd::from(stream.try_clone().unwrap());
    lab02_namespaces::receive_fd(&fd)
        .unwrap()
        .expect("a pty master over the console socket")
}

#[test]
fn bad_bundles_fail_clearly_and_leave_nothing() {
    let env = Env::new("bad");
    type Break = Box<dyn Fn(&Env)>;
    let cases: Vec<(&str, Break, &str)> = vec![
        (
            "unknown namespace",
            Box::new(|e: &Env| e.edit(|c| c["linux"]["namespaces"][0]["type"] = "bogus".into())),
            "not an OCI runtime config",
        ),
        (
            "rootfs outside",
            Box::new(|e: &Env| e.edit(|c| c["root"]["path"] = "../..".into())),
            "outside the bundle",
        ),
        (
            "no command",
            Box::new(|e: &Env| e.edit(|c| c["process"]["args"] = serde_json::json!([]))),
            "process.args",
        ),
        (
            "malformed",
            Box::new(|e: &Env| std::fs::write(e.bundle.join("config.json"), "{oops").unwrap()),
            "malformed JSON",
        ),
        (
            "missing",
            Box::new(|e: &Env| std::fs::remove_file(e.bundle.join("config.json")).unwrap()),
            "config.json",
        ),
    ];
    let good = env.config();
    for (what, break_it, want) in cases {
        std::fs::write(
            env.bundle.join("config.json"),
            serde_json::to_vec(&good).unwrap(),
        )
        .unwrap();
        break_it(&env);
        let out = env.rt(&["create", "--bundle", env.bundle.to_str().unwrap(), "x"]);
        assert!(!out.status.success(), "{what}: create succeeded");
        let err = text(&out.stderr);
        assert!(err.contains(want), "{what}: {err}");
        env.assert_gone("x");
    }
    // A duplicate ID: the second create fails, the first is untouched.
    std::fs::write(
        env.bundle.join("config.json"),
        serde_json::to_vec(&good).unwrap(),
    )
    .unwrap();
    let bundle = env.bundle.to_str().unwrap();
    assert!(env
        .rt(&["create", "--bundle", bundle, "d"])
        .status
        .success());
    let out = env.rt(&["create", "--bundle", bundle, "d"]);
    assert!(text(&out.stderr).contains("container with id exists: d"));
    assert_eq!(env.state("d")["status"], "created");
    assert!(env.rt(&["delete", "d"]).status.success());
    env.assert_gone("d");
    // --systemd-cgroup where systemd is not PID 1: a clear refusal.
    let init = std::fs::read_to_string("/proc/1/comm").unwrap();
    if init.trim() != "systemd" {
        let out = env.rt(&["--systemd-cgroup", "state", "d"]);
        assert!(text(&out.stderr).contains("systemd is not the init"));
    }
}

#[test]
fn config_fields_reach_the_kernel() {
    let env = Env::new("config");
    let hook_out = env.bundle.join("hooks.log");
    env.edit(|c| {
        c["process"]["args"] = serde_json::json!(["sh", "-c", "sleep 300"]);
        c["hostname"] = "oci-box".into();
        c["domainname"] = "example.test".into();
        c["process"]["rlimits"] = serde_json::json!([
            {"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1024}
        ]);
        c["process"]["oomScoreAdj"] = 500.into();
        c["process"]["user"] = serde_json::json!({"uid": 0, "gid": 0, "additionalGids": [10, 20]});
        c["linux"]["sysctl"] = serde_json::json!({"net.ipv4.ip_unprivileged_port_start": "80"});
        // An empty cgroupsPath: under the caller's own cgroup.
        c["linux"]["cgroupsPath"] = "".into();
        c["linux"]["resources"] = serde_json::json!({
            "memory": {"limit": 67108864},
            "pids": {"limit": 42},
            "devices": [{"allow": false, "access": "rwm"}]
        });
        let hook = |name: &str| {
            serde_json::json!([{
                "path": "/bin/sh",
                "args": ["sh", "-c", format!("echo {name} $(cat) >> {}", hook_out.display())]
            }])
        };
        // Path on the host, run in the container's mount namespace: what
        // they write to / lands in the container's root.
        let inside = |file: &str| {
            serde_json::json!([{
                "path": env.rootfs.path().join("bin/busybox"),
                "args": ["sh", "-c", format!("cat > /{file}")]
            }])
        };
        c["hooks"] = serde_json::json!({
            "createContainer": inside("created-hook"),
            "startContainer": inside("started-hook"),
            "createRuntime": hook("createRuntime"),
            "poststart": hook("poststart"),
            "poststop": hook("poststop"),
        });
    });
    // The caller (this sh) moves itself into the test's cgroup first.
    let out = run_to_files(
        &mut env.cgroup.command_inside(
            &dockyard_e2e::fixtures::bin("dockyard-runtime"),
            &[
                "--root",
                env.root.to_str().unwrap(),
                "create",
                "--bundle",
                env.bundle.to_str().unwrap(),
                "cfg",
            ],
        ),
        &env.bundle,
    );
    assert!(out.status.success(), "create: {}", text(&out.stderr));
    assert!(env.rt(&["start", "cfg"]).status.success());
    let pid = env.state("cfg")["pid"].as_i64().unwrap();
    for (file, status) in [("created-hook", "creating"), ("started-hook", "created")] {
        let text = std::fs::read(env.rootfs.path().join(file)).unwrap();
        let v: Value = serde_json::from_slice(&text).unwrap();
        assert_eq!(v["status"], status, "{file}");
    }
    let proc_file = |f: &str| std::fs::read_to_string(format!("/proc/{pid}/{f}")).unwrap();
    // The group is <test parent>/cfg: the caller's own cgroup, plus the ID.
    let mem = memory_dir(&env.cgroup, "cfg");
    let limit = std::fs::read_to_string(mem.join("memory.limit_in_bytes"))
        .or_else(|_| std::fs::read_to_string(mem.join("memory.max")))
        .unwrap();
    assert_eq!(limit.trim(), "67108864");
    assert!(proc_file("cgroup").contains(&format!("{}/cfg", env.cgroup.name)));
    assert_eq!(proc_file("oom_score_adj").trim(), "500");
    let limits = proc_file("limits");
    let nofile = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    assert!(
        nofile.contains("512") && nofile.contains("1024"),
        "{nofile}"
    );
    let status = proc_file("status");
    let groups = status.lines().find(|l| l.starts_with("Groups:")).unwrap();
    assert!(groups.contains("10") && groups.contains("20"), "{groups}");
    let exec = |args: &[&str]| {
        let mut all = vec!["exec", "cfg", "--"];
        all.extend_from_slice(args);
        let out = env.rt(&all);
        assert!(out.status.success(), "exec {args:?}: {}", text(&out.stderr));
        text(&out.stdout).trim().to_string()
    };
    assert_eq!(exec(&["hostname"]), "oci-box");
    assert_eq!(
        exec(&["cat", "/proc/sys/kernel/domainname"]),
        "example.test"
    );
    assert_eq!(
        exec(&["cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start"]),
        "80"
    );
    // ... and the host's value is untouched by the container's sysctl.
    let host = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start").unwrap();
    assert_ne!(host.trim(), "80");
    // ps lists the container's processes; pause freezes them.
    let out = env.rt(&["ps", "--format", "json", "cfg"]);
    let pids: Vec<i64> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(pids.contains(&pid), "{pids:?}");
    assert!(env.rt(&["pause", "cfg"]).status.success());
    assert_eq!(env.state("cfg")["status"], "paused");
    assert!(env.rt(&["resume", "cfg"]).status.success());
    assert_eq!(env.state("cfg")["status"], "running");
    // update: a new pids limit, from stdin as containerd sends it.
    let mut child = std::process::Command::new(dockyard_e2e::fixtures::bin("dockyard-runtime"))
        .args([
            "--root",
            env.root.to_str().unwrap(),
            "update",
            "--resources",
            "-",
            "cfg",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(br#"{"pids": {"limit": 7}}"#)
        .unwrap();
    assert!(child.wait().unwrap().success());
    let pids_dir = env
        .cgroup
        .dirs
        .iter()
        .find(|d| d.parent().is_some_and(|p| p.ends_with("pids")) || d.join("pids.max").exists())
        .map(|d| d.join("cfg"));
    if let Some(dir) = pids_dir {
        assert_eq!(
            std::fs::read_to_string(dir.join("pids.max"))
                .unwrap()
                .trim(),
            "7"
        );
    }
    // runc's single-knob form.
    let out = env.rt(&["update", "--memory", "32m", "cfg"]);
    assert!(out.status.success(), "update: {}", text(&out.stderr));
    let limit = std::fs::read_to_string(mem.join("memory.limit_in_bytes"))
        .or_else(|_| std::fs::read_to_string(mem.join("memory.max")))
        .unwrap();
    assert_eq!(limit.trim(), "33554432");
    assert!(env.rt(&["delete", "--force", "cfg"]).status.success());
    env.assert_gone("cfg");
    // The hooks ran, each given the state on stdin.
    let hooks = std::fs::read_to_string(&hook_out).unwrap();
    let lines: Vec<&str> = hooks.lines().collect();
    assert_eq!(lines.len(), 3, "{hooks}");
    for (line, (name, status)) in lines.iter().zip([
        ("createRuntime", "creating"),
        ("poststart", "running"),
        ("poststop", "stopped"),
    ]) {
        let (got, json) = line.split_once(' ').unwrap();
        assert_eq!(got, name);
        let v: Value = serde_json::from_str(json).unwrap();
        assert_eq!(v["status"], status, "{line}");
        assert_eq!(v["id"], "cfg");
    }
}

#[test]
fn run_waits_and_returns_the_status_and_features_and_version_answer() {
    let env = Env::new("run");
    env.edit(|c| c["process"]["args"] = serde_json::json!(["sh", "-c", "exit 7"]));
    let out = env.rt(&["run", "--bundle", env.bundle.to_str().unwrap(), "r1"]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));
    env.assert_gone("r1");
    let out = env.runtime(&["--version"]);
    let v = text(&out.stdout);
    let lines: Vec<&str> = v.lines().collect();
    assert!(lines[0].starts_with("dockyard-runtime version "), "{v}");
    assert!(
        lines[1].starts_with("commit: ") && lines[2].starts_with("spec: 1."),
        "{v}"
    );
    let out = env.runtime(&["features"]);
    let f: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(f["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .contains(&"user".into()));
    assert!(f["hooks"].as_array().unwrap().contains(&"poststop".into()));
    assert!(f["ociVersionMax"].is_string());
}

#[test]
fn security_fields_capabilities_seccomp_no_new_privileges_masked_paths() {
    let env = Env::new("security");
    env.edit(|c| {
        c["process"]["args"] = serde_json::json!(["sleep", "300"]);
        c["process"]["noNewPrivileges"] = true.into();
        let caps = serde_json::json!(["CAP_CHOWN", "CAP_KILL"]);
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set] = caps.clone();
        }
        c["linux"]["maskedPaths"] = serde_json::json!(["/proc/timer_list"]);
        c["linux"]["readonlyPaths"] = serde_json::json!(["/proc/sys"]);
        // The spec's profile, compiled by lab 02: mkdir(2) and mkdirat(2)
        // fail with EPERM, everything else is allowed.
        c["linux"]["seccomp"] = serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
        });
    });
    let bundle = env.bundle.to_str().unwrap();
    let out = env.rt(&["run", "--detach", "--bundle", bundle, "sec"]);
    assert!(out.status.success(), "run -d: {}", text(&out.stderr));
    let pid = env.state("sec")["pid"].as_i64().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .map(|l| l.split_whitespace().nth(1).unwrap_or("").to_string())
            .unwrap()
    };
    // CAP_CHOWN is bit 0, CAP_KILL bit 5.
    assert_eq!(field("CapBnd:"), "0000000000000021");
    assert_eq!(field("CapEff:"), "0000000000000021");
    assert_eq!(field("NoNewPrivs:"), "1");
    assert_eq!(field("Seccomp:"), "2");
    let exec = |args: &[&str]| {
        let mut all = vec!["exec", "sec", "--"];
        all.extend_from_slice(args);
        env.rt(&all)
    };
    let out = exec(&["mkdir", "/tmp/x"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("Operation not permitted"),
        "{}",
        text(&out.stderr)
    );
    let script = "wc -c < /proc/timer_list; (echo x > /proc/sys/kernel/domainname) 2>&1; echo done";
    let out = exec(&["sh", "-c", script]);
    let got = text(&out.stdout);
    assert!(got.starts_with("0\n"), "{got}");
    assert!(
        got.contains("Read-only file system") && got.ends_with("done\n"),
        "{got}"
    );
    assert!(env.rt(&["delete", "--force", "sec"]).status.success());
    env.assert_gone("sec");
}

#[test]
fn namespaces_joined_by_path_as_a_pods_containers_join_the_sandbox() {
    use std::os::unix::fs::MetadataExt;
    let env = Env::new("join");
    let bundle = env.bundle.to_str().unwrap().to_string();
    env.edit(|c| c["process"]["args"] = serde_json::json!(["sleep", "300"]));
    let out = env.rt(&["run", "--detach", "--bundle", &bundle, "sandbox"]);
    assert!(out.status.success(), "sandbox: {}", text(&out.stderr));
    let sandbox = env.state("sandbox")["pid"].as_i64().unwrap();
    // The app container: network, IPC and UTS by path, the rest new.
    env.edit(|c| {
        let mut list = Vec::new();
        for ns in c["linux"]["namespaces"].as_array().unwrap() {
            let kind = ns["type"].as_str().unwrap().to_string();
            let file = match kind.as_str() {
                "network" => "net",
                "ipc" => "ipc",
                "uts" => "uts",
                _ => {
                    list.push(ns.clone());
                    continue;
                }
            };
            list.push(
                serde_json::json!({"type": kind, "path": format!("/proc/{sandbox}/ns/{file}")}),
            );
        }
        c["linux"]["namespaces"] = list.into();
        c["linux"]["cgroupsPath"] = format!("/{}/app", env.cgroup.name).into();
        // The hostname belongs to the sandbox's UTS namespace (runc, too,
        // refuses to set one in a joined namespace).
        c.as_object_mut().unwrap().remove("hostname");
    });
    let out = env.rt(&["run", "--detach", "--bundle", &bundle, "app"]);
    assert!(out.status.success(), "app: {}", text(&out.stderr));
    let app = env.state("app")["pid"].as_i64().unwrap();
    let ino = |pid: i64, ns: &str| {
        std::fs::metadata(format!("/proc/{pid}/ns/{ns}"))
            .unwrap()
            .ino()
    };
    for ns in ["net", "ipc", "uts"] {
        assert_eq!(ino(sandbox, ns), ino(app, ns), "{ns} shared");
    }
    for ns in ["pid", "mnt"] {
        assert_ne!(ino(sandbox, ns), ino(app, ns), "{ns} private");
    }
    // A third joins the sandbox's PID namespace too (a pod with
    // shareProcessNamespace): the sandbox's `sleep` is its PID 1.
    env.edit(|c| {
        for ns in c["linux"]["namespaces"].as_array_mut().unwrap() {
            if ns["type"] == "pid" {
                ns["path"] = format!("/proc/{sandbox}/ns/pid").into();
            }
        }
        c["linux"]["cgroupsPath"] = format!("/{}/shared", env.cgroup.name).into();
    });
    let out = env.rt(&["run", "--detach", "--bundle", &bundle, "shared"]);
    assert!(out.status.success(), "shared: {}", text(&out.stderr));
    let shared = env.state("shared")["pid"].as_i64().unwrap();
    assert_eq!(ino(sandbox, "pid"), ino(shared, "pid"));
    let out = env.rt(&["exec", "shared", "--", "cat", "/proc/1/cmdline"]);
    assert_eq!(
        text(&out.stdout),
        "sleep\u{0}300\u{0}",
        "{}",
        text(&out.stderr)
    );
    // Deleting it kills its own processes only: the sandbox lives on.
    assert!(env.rt(&["delete", "--force", "shared"]).status.success());
    assert_eq!(env.state("sandbox")["status"], "running");
    for id in ["app", "sandbox"] {
        assert!(env.rt(&["delete", "--force", id]).status.success());
    }
    env.assert_gone("app");
    env.assert_gone("shared");
    env.assert_gone("sandbox");
}

#[test]
fn a_user_namespace_from_uid_and_gid_mappings() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new("userns");
    // Root inside is uid 100000 outside: it must be able to reach the rootfs.
    std::fs::set_permissions(&env.bundle, std::fs::Permissions::from_mode(0o711)).unwrap();
    env.edit(|c| {
        c["process"]["args"] = serde_json::json!(["sleep", "300"]);
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"type": "user"}));
        let map = serde_json::json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        c["linux"]["uidMappings"] = map.clone();
        c["linux"]["gidMappings"] = map;
    });
    let bundle = env.bundle.to_str().unwrap();
    let out = env.rt(&["run", "--detach", "--bundle", bundle, "u1"]);
    assert!(out.status.success(), "run: {}", text(&out.stderr));
    let pid = env.state("u1")["pid"].as_i64().unwrap();
    let uid_map = std::fs::read_to_string(format!("/proc/{pid}/uid_map")).unwrap();
    let fields: Vec<&str> = uid_map.split_whitespace().collect();
    assert_eq!(fields, ["0", "100000", "65536"]);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(uid.contains("100000"), "{uid}");
    assert!(env.rt(&["delete", "--force", "u1"]).status.success());
    env.assert_gone("u1");
}

#[test]
fn device_nodes_and_the_device_cgroup() {
    let env = Env::new("devices");
    env.edit(|c| {
        c["process"]["args"] = serde_json::json!(["sleep", "300"]);
        // Two extra nodes; the allow list lets /dev/fuse be opened, not /dev/mem.
        c["linux"]["devices"] = serde_json::json!([
            {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 438},
            {"path": "/dev/mem", "type": "c", "major": 1, "minor": 1, "fileMode": 384}
        ]);
        c["linux"]["resources"] = serde_json::json!({"devices": [
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
            {"allow": true, "type": "c", "major": 10, "minor": 229, "access": "rwm"},
            {"allow": true, "type": "c", "major": 136, "access": "rwm"},
            {"allow": true, "type": "c", "major": 5, "minor": 2, "access": "rwm"}
        ]});
    });
    let bundle = env.bundle.to_str().unwrap();
    let out = env.rt(&["run", "--detach", "--bundle", bundle, "dev"]);
    assert!(out.status.success(), "run: {}", text(&out.stderr));
    let exec = |script: &str| {
        let out = env.rt(&["exec", "dev", "--", "sh", "-c", script]);
        text(&out.stdout) + &text(&out.stderr)
    };
    let ls = exec("ls -l /dev/fuse /dev/mem");
    assert!(ls.contains("crw-rw-rw-") && ls.contains("10, 229"), "{ls}");
    assert!(ls.contains("crw-------") && ls.contains("1,   1"), "{ls}");
    // Allowed: /dev/null (written) and /dev/fuse (opened: ENODEV without
    // the module is still past the cgroup). Denied: /dev/mem, by the cgroup.
    let got = exec("echo x > /dev/null && echo null-ok; head -c1 /dev/mem; true");
    assert!(got.contains("null-ok"), "{got}");
    assert!(got.contains("Operation not permitted"), "{got}");
    assert!(env.rt(&["delete", "--force", "dev"]).status.success());
    env.assert_gone("dev");
}
