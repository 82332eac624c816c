//! containerd as the caller: a containerd of the test's own (its own
//! socket, root, state directory and config; the CRI plugin off, so it
//! listens on nothing but its unix sockets), an image that `dockyard save`
//! wrote and `ctr images import` read, and `ctr --runc-binary
//! dockyard-runtime` for the rest. The shim (containerd-shim-runc-v2) runs
//! our binary exactly as it runs runc.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use dockyard_e2e::dockyard::Dockyard;
use dockyard_e2e::fixtures::bin;

use crate::support::{memory_dir, text, TestCgroup};

/// A private containerd, stopped and its containers removed on drop.
struct Containerd {
    dir: tempfile::TempDir,
    daemon: Child,
    image: String,
}

impl Containerd {
    fn start() -> Containerd {
        let dir = tempfile::Builder::new()
            .prefix("dyrt-containerd-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        let config = format!(
            "version = 2\nroot = \"{0}/root\"\nstate = \"{0}/state\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{0}/containerd.sock\"\n\
             [ttrpc]\n  address = \"{0}/containerd.sock.ttrpc\"\n\
             [debug]\n  address = \"\"\n[metrics]\n  address = \"\"\n",
            d.display()
        );
        std::fs::write(d.join("config.toml"), config).unwrap();
        let log = std::fs::File::create(d.join("containerd.log")).unwrap();
        let daemon = Command::new("containerd")
            .arg("--config")
            .arg(d.join("config.toml"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting containerd");
        let mut c = Containerd {
            dir,
            daemon,
            image: String::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !c.ctr(&["version"]).status.success() {
            assert!(Instant::now() < deadline, "containerd did not come up");
            std::thread::sleep(Duration::from_millis(100));
        }
        c.image = c.import_busybox();
        c
    }

    fn ctr(&self, args: &[&str]) -> Output {
        // `run` and `task exec` make the fifos of the task's stdio: in our
        // directory, not ctr's default /run/containerd/fifo.
        let fifo_dir = self.dir.path().join("fifo");
        let mut all: Vec<std::ffi::OsString> = args.iter().map(Into::into).collect();
        let at = match args {
            ["run", ..] => Some(1),
            ["task", "exec", ..] => Some(2),
            _ => None,
        };
        if let Some(at) = at {
            all.insert(at, "--fifo-dir".into());
            all.insert(at + 1, fifo_dir.into());
        }
        Command::new("timeout")
            .arg("60")
            .arg("ctr")
            .arg("--address")
            .arg(self.dir.path().join("containerd.sock"))
            .args(all)
            .output()
            .expect("running ctr")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.ctr(args);
        assert!(
            out.status.success(),
            "ctr {args:?}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// `dockyard save` the base image, `ctr images import` it.
    fn import_busybox(&self) -> String {
        let dy = Dockyard::new();
        let tar = self.dir.path().join("busybox.tar");
        dy.ok(&["save", "-o", tar.to_str().unwrap(), "busybox"]);
        let out = self.ok(&["images", "import", tar.to_str().unwrap()]);
        let listed = self.ok(&["images", "ls", "-q"]);
        let imported = listed
            .lines()
            .find(|l| l.contains("busybox"))
            .unwrap_or_else(|| panic!("no busybox after import: {out} / {listed}"));
        // A name with a registry host of our own: nothing can be pulled.
        let image = "dockyard.local/busybox:latest";
        self.ok(&["images", "tag", imported, image]);
        image.to_string()
    }

    /// `ctr run` with our runtime and a runtime root of this test's own.
    fn run_args<'a>(&'a self, runc_root: &'a str, cgroup: &'a str) -> Vec<&'a str> {
        vec![
            "run",
            "--runc-binary",
            runtime_path(),
            "--runc-root",
            runc_root,
            "--cgroup",
            cgroup,
        ]
    }

    fn wait_status(&self, id: &str, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let tasks = self.ok(&["task", "ls"]);
            if tasks
                .lines()
                .any(|l| l.split_whitespace().next() == Some(id) && l.contains(want))
            {
                return;
            }
            assert!(Instant::now() < deadline, "{id} never {want}: {tasks}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let tasks = self.ctr(&["task", "ls", "-q"]);
        for id in text(&tasks.stdout).lines() {
            let _ = self.ctr(&["task", "kill", "-s", "SIGKILL", id]);
            std::thread::sleep(Duration::from_millis(200));
            let _ = self.ctr(&["task", "delete", "--force", id]);
        }
        let containers = self.ctr(&["containers", "ls", "-q"]);
        for id in text(&containers.stdout).lines() {
            let _ = self.ctr(&["containers", "rm", id]);
        }
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.daemon.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.daemon.wait();
        // Snapshot mounts of a task that failed half-way.
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

fn runtime_path() -> &'static str {
    static PATH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PATH.get_or_init(|| bin("dockyard-runtime").to_string_lossy().into_owned())
}

fn runc_root(c: &Containerd) -> PathBuf {
    c.dir.path().join("runc")
}

fn no_state_left(root: &Path) {
    let left: Vec<_> = std::fs::read_dir(root.join("default"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "runtime state left: {left:?}");
}

#[test]
fn ctr_run_rm_prints_and_cleans_up() {
    let c = Containerd::start();
    let cg = TestCgroup::new("ctr-rm");
    let root = runc_root(&c);
    let root_s = root.to_string_lossy().into_owned();
    let group = format!("/{}/rm1", cg.name);
    let mut args = c.run_args(&root_s, &group);
    args.extend(["--rm", &c.image, "rm1", "sh", "-c", "echo hello $$; exit 3"]);
    let out = c.ctr(&args);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "hello 1");
    no_state_left(&root);
    assert!(cg.children().is_empty(), "{:?}", cg.children());
}

#[test]
fn ctr_detached_exec_pause_resume_kill_delete_and_a_memory_limit() {
    let c = Containerd::start();
    let cg = TestCgroup::new("ctr-d");
    let root = runc_root(&c);
    let root_s = root.to_string_lossy().into_owned();
    let group = format!("/{}/d1", cg.name);
    let mut args = c.run_args(&root_s, &group);
    args.extend([
        "-d",
        "--memory-limit",
        "33554432",
        &c.image,
        "d1",
        "sleep",
        "300",
    ]);
    c.ok(&args);
    c.wait_status("d1", "RUNNING");
    let mem = memory_dir(&cg, "d1");
    let limit = std::fs::read_to_string(mem.join("memory.limit_in_bytes"))
        .or_else(|_| std::fs::read_to_string(mem.join("memory.max")))
        .unwrap();
    assert_eq!(limit.trim(), "33554432");

    let out = c.ok(&[
        "task",
        "exec",
        "--exec-id",
        "e1",
        "d1",
        "sh",
        "-c",
        "cat /proc/1/cmdline",
    ]);
    assert_eq!(out.replace('\0', " ").trim(), "sleep 300");
    let ps = c.ok(&["task", "ps", "d1"]);
    assert!(ps.lines().count() >= 2, "{ps}");

    c.ok(&["task", "pause", "d1"]);
    c.wait_status("d1", "PAUSED");
    c.ok(&["task", "resume", "d1"]);
    c.wait_status("d1", "RUNNING");

    // containerd's event stream, to see the shim report the OOM kill.
    let events_file = c.dir.path().join("events.log");
    let mut events = Command::new("ctr")
        .arg("--address")
        .arg(c.dir.path().join("containerd.sock"))
        .arg("events")
        .stdout(std::fs::File::create(&events_file).unwrap())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // 60 MB in a 32 MB group: the OOM killer ends the exec'd shell.
    let hog = "x=$(head -c 60000000 /dev/zero | tr '\\0' a); echo survived";
    let out = c.ctr(&["task", "exec", "--exec-id", "e2", "d1", "sh", "-c", hog]);
    assert_eq!(out.status.code(), Some(137), "{}", text(&out.stdout));
    assert!(!text(&out.stdout).contains("survived"));
    let failcnt = std::fs::read_to_string(mem.join("memory.failcnt"))
        .or_else(|_| std::fs::read_to_string(mem.join("memory.events")))
        .unwrap();
    assert_ne!(failcnt.trim(), "0", "{failcnt}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = String::new();
    while !seen.contains("/tasks/oom") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        seen = std::fs::read_to_string(&events_file).unwrap_or_default();
    }
    let _ = events.kill();
    let _ = events.wait();
    assert!(
        seen.contains("/tasks/oom"),
        "no OOM event from containerd: {seen}"
    );

    c.ok(&["task", "kill", "-s", "SIGKILL", "d1"]);
    c.wait_status("d1", "STOPPED");
    c.ok(&["task", "delete", "d1"]);
    c.ok(&["containers", "rm", "d1"]);
    no_state_left(&root);
    assert!(cg.children().is_empty(), "{:?}", cg.children());
}

#[test]
fn ctr_run_t_gets_a_pty_through_the_console_socket() {
    let c = Containerd::start();
    let cg = TestCgroup::new("ctr-t");
    let root = runc_root(&c);
    let group = format!("/{}/t1", cg.name);
    // ctr -t wants a terminal of its own: script(1) gives it one.
    let ctr = format!(
        "ctr --address {} run --fifo-dir {}/fifo -t --rm --runc-binary {} --runc-root {} --cgroup {group} {} t1 \
         sh -c 'tty; stty size'",
        c.dir.path().join("containerd.sock").display(),
        c.dir.path().display(),
        runtime_path(),
        root.display(),
        c.image
    );
    let out = Command::new("timeout")
        .args(["60", "script", "-qec", &ctr, "/dev/null"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let got = text(&out.stdout);
    assert!(out.status.success(), "{got}{}", text(&out.stderr));
    assert!(got.contains("/dev/pts/"), "{got}");
    no_state_left(&root);
    assert!(cg.children().is_empty(), "{:?}", cg.children());
}
