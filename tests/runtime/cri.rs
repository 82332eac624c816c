//! The Kubernetes node path: kubelet -> CRI (gRPC) -> containerd's CRI
//! plugin -> containerd-shim-runc-v2 -> dockyard-runtime.
//!
//! crictl and kubelet are not packaged here, so the test is its own
//! kubelet: `cri_client.py` (Python gRPC over `cri.proto`, our subset of
//! kubernetes/cri-api) makes one CRI call per step, in the order a kubelet
//! makes them for a pod with one container and an exec probe:
//! Version, ImageStatus, RunPodSandbox, CreateContainer, StartContainer,
//! ExecSync, UpdateContainerResources, StopContainer, RemoveContainer,
//! StopPodSandbox, RemovePodSandbox; and a second container that shares
//! the pod's PID namespace (`shareProcessNamespace`), which sees the
//! pause process.
//!
//! containerd is the test's own: its own socket, root, state and config, a
//! runtime handler `dockyard` (`runtime_type = "io.containerd.runc.v2"`,
//! `BinaryName` = dockyard-runtime), started in a throwaway network
//! namespace (the pod uses the node's network, so no CNI is needed, and
//! the CRI stream server listens only there). Nothing is pulled: the pause
//! image (busybox with `sleep` as its command, built by `dockyard build`)
//! and busybox are imported into containerd's `k8s.io` namespace from
//! `dockyard save`, and `sandbox_image` names the local pause image.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use dockyard_e2e::dockyard::Dockyard;
use dockyard_e2e::fixtures::{bin, workspace_root};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::support::{memory_dir, text, TestCgroup};

const PAUSE: &str = "dockyard.local/pause:3.9";
const BUSYBOX: &str = "dockyard.local/busybox:latest";
/// Debian's Python, where python3-grpcio and python3-grpc-tools are
/// installed (a `python3` earlier on PATH may be another one).
const PYTHON: &str = "/usr/bin/python3";

/// A containerd with the CRI plugin on, and the sandboxes the test made;
/// on drop the sandboxes are removed, containerd and every shim it started
/// are killed, their sockets and mounts removed.
struct Cri {
    dir: tempfile::TempDir,
    daemon: Child,
    gen: PathBuf,
    sandboxes: RefCell<Vec<String>>,
}

impl Cri {
    fn start() -> Cri {
        let dir = tempfile::Builder::new()
            .prefix("dyrt-cri-")
            .tempdir()
            .unwrap();
        let d = dir.path().to_path_buf();
        for sub in ["cni/bin", "cni/conf", "gen", "logs"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        std::fs::write(d.join("config.toml"), config(&d)).unwrap();
        let log = std::fs::File::create(d.join("containerd.log")).unwrap();
        // `unshare --net`: a network namespace of containerd's own, which
        // the shims and the host-network pod inherit; lo up so that the
        // CRI stream server can listen on 127.0.0.1 there.
        let daemon = Command::new("unshare")
            .args([
                "--net",
                "sh",
                "-c",
                "ip link set lo up && exec containerd --config \"$0\"",
            ])
            .arg(d.join("config.toml"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting containerd");
        let gen = d.join("gen");
        let cri = Cri {
            dir,
            daemon,
            gen,
            sandboxes: RefCell::new(Vec::new()),
        };
        // The client's Python modules, compiled from our .proto.
        let out = Command::new(PYTHON)
            .arg(client())
            .arg("--compile")
            .arg(workspace_root().join("tests/runtime/cri.proto"))
            .arg(&cri.gen)
            .output()
            .unwrap();
        assert!(out.status.success(), "protoc: {}", text(&out.stderr));
        let deadline = Instant::now() + Duration::from_secs(30);
        while !cri
            .call("RuntimeService/Version", json!({}))
            .status
            .success()
        {
            assert!(
                Instant::now() < deadline,
                "containerd's CRI did not come up: {}",
                std::fs::read_to_string(d.join("containerd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        cri
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("containerd.sock")
    }

    /// One CRI call, as `cri_client.py` makes it.
    fn call(&self, method: &str, request: Value) -> Output {
        Command::new("timeout")
            .arg("150")
            .arg(PYTHON)
            .arg(client())
            .arg(self.socket())
            .arg(&self.gen)
            .arg(method)
            .arg(request.to_string())
            .output()
            .expect("running cri_client.py")
    }

    fn ok(&self, method: &str, request: Value) -> Value {
        let out = self.call(method, request.clone());
        assert!(
            out.status.success(),
            "{method} {request}: {}\ncontainerd's log:\n{}",
            text(&out.stderr),
            self.log_tail()
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn log_tail(&self) -> String {
        let log =
            std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    fn ctr(&self, args: &[&str]) -> String {
        let out = Command::new("timeout")
            .args(["60", "ctr", "--address"])
            .arg(self.socket())
            .args(["--namespace", "k8s.io"])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "ctr {args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    }

    /// `dockyard save` of `image`, `ctr -n k8s.io images import`, tagged
    /// `name`; then ImageStatus until the CRI plugin has seen it, as the
    /// kubelet asks before it would pull.
    fn import(&self, dy: &Dockyard, image: &str, name: &str) {
        let tar = self.dir.path().join("image.tar");
        dy.ok(&["save", "-o", tar.to_str().unwrap(), image]);
        let before = self.ctr(&["images", "ls", "-q"]);
        self.ctr(&["images", "import", tar.to_str().unwrap()]);
        let after = self.ctr(&["images", "ls", "-q"]);
        let imported = after
            .lines()
            // The CRI plugin adds a `sha256:ID` name of its own for each.
            .find(|l| !l.starts_with("sha256:") && !before.lines().any(|b| b == *l))
            .unwrap_or_else(|| panic!("nothing imported for {image}: {after}"))
            .to_string();
        if imported != name {
            self.ctr(&["images", "tag", &imported, name]);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let st = self.ok(
                "ImageService/ImageStatus",
                json!({"image": {"image": name}}),
            );
            if st["image"]["id"].as_str().is_some_and(|s| !s.is_empty()) {
                return;
            }
            assert!(Instant::now() < deadline, "CRI never saw {name}: {st}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The runtime's `--root` that the shim passes: ours, per namespace.
    fn runtime_root(&self) -> PathBuf {
        self.dir.path().join("runtime/k8s.io")
    }

    /// `dockyard-runtime --root ... state ID`: the container is one that
    /// dockyard-runtime made (it reads only its own state files).
    fn runtime_state(&self, id: &str) -> Value {
        let out = Command::new(bin("dockyard-runtime"))
            .arg("--root")
            .arg(self.runtime_root())
            .args(["state", id])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "dockyard-runtime state {id}: {}",
            text(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

fn client() -> PathBuf {
    workspace_root().join("tests/runtime/cri_client.py")
}

/// containerd 1.6's config: the CRI plugin on, with the `dockyard` runtime
/// handler as the default, a local sandbox image, no CNI configuration (a
/// host-network pod needs none), no AppArmor, and
/// `restrict_oom_score_adj` (this machine lacks CAP_SYS_RESOURCE: the
/// spec's oomScoreAdj may not go below containerd's own).
fn config(d: &Path) -> String {
    let cri = "[plugins.\"io.containerd.grpc.v1.cri\"]";
    let runtime = "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.dockyard]";
    format!(
        "version = 2\nroot = \"{d}/root\"\nstate = \"{d}/state\"\n\
         [grpc]\n  address = \"{d}/containerd.sock\"\n\
         [ttrpc]\n  address = \"{d}/containerd.sock.ttrpc\"\n\
         [debug]\n  address = \"\"\n[metrics]\n  address = \"\"\n\
         [plugins]\n\
         {cri}\n  sandbox_image = \"{PAUSE}\"\n  restrict_oom_score_adj = true\n\
         \x20 disable_apparmor = true\n  disable_cgroup = false\n  enable_selinux = false\n\
         \x20 disable_tcp_service = true\n  stream_server_address = \"127.0.0.1\"\n\
         \x20 stream_server_port = \"0\"\n\
         {cri_}.containerd]\n  snapshotter = \"overlayfs\"\n  default_runtime_name = \"dockyard\"\n\
         {runtime}\n  runtime_type = \"io.containerd.runc.v2\"\n\
         {runtime_}.options]\n  BinaryName = \"{bin}\"\n  Root = \"{d}/runtime\"\n\
         \x20 SystemdCgroup = false\n\
         {cri_}.cni]\n  bin_dir = \"{d}/cni/bin\"\n  conf_dir = \"{d}/cni/conf\"\n",
        d = d.display(),
        cri_ = cri.trim_end_matches(']'),
        runtime_ = runtime.trim_end_matches(']'),
        bin = bin("dockyard-runtime").display(),
    )
}

impl Drop for Cri {
    fn drop(&mut self) {
        // What a failed test left: the pods, as the kubelet removes them.
        for id in self.sandboxes.borrow().iter() {
            let _ = self.call(
                "RuntimeService/StopPodSandbox",
                json!({"pod_sandbox_id": id}),
            );
            let _ = self.call(
                "RuntimeService/RemovePodSandbox",
                json!({"pod_sandbox_id": id}),
            );
        }
        let sock = self.socket().to_string_lossy().into_owned();
        let shims = shims_of(&sock);
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.daemon.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.daemon.wait();
        // Each shim daemonises away from containerd: it is found by the
        // containerd address on its command line, killed by its pid, and
        // its socket (/run/containerd/s/sha256(address/namespace/id), a
        // path containerd 1.6 hard-codes) removed.
        for (pid, ns, id) in shims {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            let hash = Sha256::digest(format!("{sock}/{ns}/{id}").as_bytes());
            let _ = std::fs::remove_file(format!("/run/containerd/s/{}", hex::encode(hash)));
        }
        // Snapshot and sandbox /dev/shm mounts of a pod that failed half-way.
        let prefix = self.dir.path().to_string_lossy().to_string();
        for m in dockyard_e2e::fixtures::host_mount_points()
            .into_iter()
            .rev()
        {
            if m.starts_with(&prefix) {
                let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
            }
        }
    }
}

/// The containerd-shim-runc-v2 processes started by the containerd at
/// `address`: (pid, namespace, id), from their command lines.
fn shims_of(address: &str) -> Vec<(i32, String, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if !args.first().is_some_and(|a| a.contains("containerd-shim")) {
            continue;
        }
        let flag = |name: &str| {
            args.iter()
                .position(|a| a == name)
                .and_then(|i| args.get(i + 1))
                .cloned()
        };
        if flag("-address").as_deref() == Some(address) {
            if let (Some(ns), Some(id)) = (flag("-namespace"), flag("-id")) {
                out.push((pid, ns, id));
            }
        }
    }
    out
}

/// A pause image built locally: busybox whose command sleeps for ever
/// (the sandbox container only holds the pod's namespaces).
fn pause_image(dy: &Dockyard) -> String {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM busybox\nCMD [\"sleep\", \"2147483647\"]\n",
    )
    .unwrap();
    dy.ok(&[
        "build",
        "-q",
        "-t",
        "pause:local",
        ctx.path().to_str().unwrap(),
    ]);
    "pause:local".to_string()
}

#[test]
fn a_kubelets_cri_sequence_runs_a_pod_under_dockyard_runtime() {
    let cg = TestCgroup::new("cri");
    let cri = Cri::start();
    let dy = Dockyard::new();
    let pause = pause_image(&dy);
    cri.import(&dy, &pause, PAUSE);
    cri.import(&dy, "busybox", BUSYBOX);

    let v = cri.ok("RuntimeService/Version", json!({"version": "v1"}));
    assert_eq!(v["runtime_name"], "containerd", "{v}");
    assert_eq!(v["runtime_api_version"], "v1", "{v}");

    // RunPodSandbox: the node's network (no CNI), our cgroup parent; each
    // container its own PID namespace (no shareProcessNamespace), the pod's
    // IPC namespace.
    let namespaces = json!({"network": "NODE", "pid": "CONTAINER", "ipc": "POD"});
    let sandbox_config = json!({
        "metadata": {"name": "pod1", "uid": "uid-pod1", "namespace": "default", "attempt": 0},
        "log_directory": cri.dir.path().join("logs").to_string_lossy(),
        "linux": {
            "cgroup_parent": format!("/{}", cg.name),
            "security_context": {"namespace_options": namespaces}
        }
    });
    let run = cri.ok(
        "RuntimeService/RunPodSandbox",
        json!({"config": sandbox_config, "runtime_handler": "dockyard"}),
    );
    let pod = run["pod_sandbox_id"].as_str().unwrap().to_string();
    cri.sandboxes.borrow_mut().push(pod.clone());
    let pod_state = cri.runtime_state(&pod);
    assert_eq!(pod_state["status"], "running", "{pod_state}");

    // CreateContainer + StartContainer, as the kubelet does for a pod spec.
    let created = cri.ok(
        "RuntimeService/CreateContainer",
        json!({
            "pod_sandbox_id": pod,
            "config": {
                "metadata": {"name": "app", "attempt": 0},
                "image": {"image": BUSYBOX},
                "command": ["sleep", "300"],
                "log_path": "app.log",
                "linux": {
                    "resources": {"memory_limit_in_bytes": 33554432},
                    "security_context": {"namespace_options": namespaces}
                }
            },
            "sandbox_config": sandbox_config
        }),
    );
    let ctr = created["container_id"].as_str().unwrap().to_string();
    cri.ok(
        "RuntimeService/StartContainer",
        json!({"container_id": ctr}),
    );
    let st = cri.ok(
        "RuntimeService/ContainerStatus",
        json!({"container_id": ctr}),
    );
    assert_eq!(st["status"]["state"], "CONTAINER_RUNNING", "{st}");

    // The shim ran dockyard-runtime: its state says running, with the
    // container's init as the pid, in the cgroup the CRI plugin asked for.
    let state = cri.runtime_state(&ctr);
    assert_eq!(state["status"], "running", "{state}");
    let pid = state["pid"].as_i64().unwrap();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    assert_eq!(text(&cmdline).replace('\0', " ").trim(), "sleep 300");
    let mem = memory_dir(&cg, &ctr);
    let procs = std::fs::read_to_string(mem.join("cgroup.procs")).unwrap();
    assert!(procs.lines().any(|l| l == pid.to_string()), "{procs}");
    let limit = |m: &Path| {
        std::fs::read_to_string(m.join("memory.limit_in_bytes"))
            .or_else(|_| std::fs::read_to_string(m.join("memory.max")))
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(limit(&mem), "33554432");

    // ExecSync: a probe's exit code and stdout.
    let exec = cri.ok(
        "RuntimeService/ExecSync",
        json!({"container_id": ctr, "cmd": ["sh", "-c", "echo probe $(cat /proc/1/cmdline | tr '\\0' ' '); exit 3"], "timeout": 10}),
    );
    assert_eq!(exec["exit_code"], 3, "{exec}");
    let stdout = base64_decode(exec["stdout"].as_str().unwrap());
    assert_eq!(text(&stdout).trim(), "probe sleep 300", "{exec}");

    // A second container with the pod's PID namespace (a pod spec's
    // `shareProcessNamespace`: the kubelet asks for pid POD, containerd
    // writes the pause process's /proc/PID/ns/pid as its path).
    shared_pid_container(&cri, &pod, &sandbox_config, &pod_state);

    // UpdateContainerResources: the kubelet's in-place resize.
    cri.ok(
        "RuntimeService/UpdateContainerResources",
        json!({"container_id": ctr, "linux": {"memory_limit_in_bytes": 67108864}}),
    );
    assert_eq!(limit(&mem), "67108864");

    // Teardown, in the kubelet's order.
    cri.ok(
        "RuntimeService/StopContainer",
        json!({"container_id": ctr, "timeout": 2}),
    );
    let st = cri.ok(
        "RuntimeService/ContainerStatus",
        json!({"container_id": ctr}),
    );
    assert_eq!(st["status"]["state"], "CONTAINER_EXITED", "{st}");
    cri.ok(
        "RuntimeService/RemoveContainer",
        json!({"container_id": ctr}),
    );
    assert!(
        !cri.runtime_root().join(&ctr).exists(),
        "state of {ctr} left"
    );
    cri.ok(
        "RuntimeService/StopPodSandbox",
        json!({"pod_sandbox_id": pod}),
    );
    cri.ok(
        "RuntimeService/RemovePodSandbox",
        json!({"pod_sandbox_id": pod}),
    );
    cri.sandboxes.borrow_mut().clear();
    assert!(
        !cri.runtime_root().join(&pod).exists(),
        "state of {pod} left"
    );
    let left = cg.children();
    assert!(left.is_empty(), "cgroups left: {left:?}");
    // Every image was local: the CRI plugin never pulled.
    let log = std::fs::read_to_string(cri.dir.path().join("containerd.log")).unwrap();
    assert!(!log.contains("PullImage"), "containerd pulled: {log}");
}

/// CreateContainer with `pid: POD`, StartContainer, and what its processes
/// see: the pause process as PID 1 (`ps`, `/proc/1/cmdline`), in the very
/// PID namespace of the sandbox (the same inode); then its teardown.
fn shared_pid_container(cri: &Cri, pod: &str, sandbox_config: &Value, pod_state: &Value) {
    let created = cri.ok(
        "RuntimeService/CreateContainer",
        json!({
            "pod_sandbox_id": pod,
            "config": {
                "metadata": {"name": "sidecar", "attempt": 0},
                "image": {"image": BUSYBOX},
                "command": ["sleep", "301"],
                "log_path": "sidecar.log",
                "linux": {"security_context": {"namespace_options":
                    {"network": "NODE", "pid": "POD", "ipc": "POD"}}}
            },
            "sandbox_config": sandbox_config
        }),
    );
    let ctr = created["container_id"].as_str().unwrap().to_string();
    cri.ok(
        "RuntimeService/StartContainer",
        json!({"container_id": ctr}),
    );
    let pid = cri.runtime_state(&ctr)["pid"].as_i64().unwrap();
    let pause = pod_state["pid"].as_i64().unwrap();
    let ns = |p: i64| std::fs::read_link(format!("/proc/{p}/ns/pid")).unwrap();
    assert_eq!(ns(pid), ns(pause), "not in the sandbox's PID namespace");
    let exec = cri.ok(
        "RuntimeService/ExecSync",
        json!({"container_id": ctr, "cmd": ["sh", "-c", "tr '\\0' ' ' < /proc/1/cmdline; echo; ps -o pid,args"], "timeout": 10}),
    );
    assert_eq!(exec["exit_code"], 0, "{exec}");
    let out = text(&base64_decode(exec["stdout"].as_str().unwrap()));
    let mut lines = out.lines();
    assert_eq!(
        lines.next().map(str::trim),
        Some("sleep 2147483647"),
        "{out}"
    );
    let ps: Vec<&str> = lines.collect();
    assert!(
        ps.iter().any(|l| l.trim() == "1 sleep 2147483647"),
        "pause not seen: {out}"
    );
    assert!(ps.iter().any(|l| l.ends_with("sleep 301")), "{out}");
    cri.ok(
        "RuntimeService/StopContainer",
        json!({"container_id": ctr, "timeout": 2}),
    );
    cri.ok(
        "RuntimeService/RemoveContainer",
        json!({"container_id": ctr}),
    );
    assert!(
        !cri.runtime_root().join(&ctr).exists(),
        "state of {ctr} left"
    );
    // The pause process lives on: stopping a container that shares the
    // pod's PID namespace kills only its own processes.
    assert_eq!(cri.runtime_state(pod)["status"], "running");
}

/// proto3 JSON writes `bytes` in base64.
fn base64_decode(s: &str) -> Vec<u8> {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter(|c| *c != b'=') {
        let v = A.iter().position(|a| *a == c).expect("base64") as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}
