//! `dockyard system service`, driven by a client nobody here wrote: the real
//! docker CLI (`/usr/local/bin/docker -H unix://SOCK`), and a few raw HTTP
//! requests for the error shapes.
//!
//! Each test starts its own service on a socket in its own temporary
//! directory, over its own data root (the `Dockyard` of the test, with the
//! same `--root`), and kills it when it ends, even by panic. Containers are
//! checked from the other front too (`dockyard ps`, `inspect`) and from the
//! kernel (/proc), and never touch the host's network: the API's default
//! network is dockyard's, none.

use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use dockyard_e2e::dockyard::{text, Dockyard as Dy};

const DOCKER: &str = "/usr/local/bin/docker";

/// A running `dockyard system service`, killed on drop (api_images uses
/// it too).
pub(crate) struct Service {
    child: Child,
    dir: tempfile::TempDir,
    pub(crate) sock: PathBuf,
    parent: String,
}

impl Service {
    pub(crate) fn start(dy: &Dy) -> Service {
        let dir = tempfile::Builder::new()
            .prefix("dockyard-api-")
            .tempdir()
            .unwrap();
        let sock = dir.path().join("api.sock");
        let host = format!("unix://{}", sock.display());
        let child = dy
            .command(&["system", "service", "--host", &host, "--time", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting dockyard system service");
        let svc = Service {
            child,
            dir,
            sock,
            parent: dy.parent.clone(),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while UnixStream::connect(&svc.sock).is_err() {
            assert!(Instant::now() < deadline, "the service never listened");
            std::thread::sleep(Duration::from_millis(20));
        }
        svc
    }

    /// The docker CLI against this service, with a config dir of its own
    /// (no user's contexts or credentials).
    pub(crate) fn docker(&self, args: &[&str]) -> Output {
        let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        if matches!(args.first(), Some(&"run") | Some(&"create")) {
            all.insert(1, format!("--cgroup-parent={}", self.parent));
        }
        Command::new(DOCKER)
            .arg("-H")
            .arg(format!("unix://{}", self.sock.display()))
            .args(&all)
            .env("DOCKER_CONFIG", self.dir.path())
            .env_remove("DOCKER_HOST")
            .stdin(Stdio::null())
            .output()
            .expect("running the docker CLI")
    }

    pub(crate) fn docker_ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {args:?} failed ({:?}):\n{}{}",
            out.status,
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// The docker CLI with `input` on its stdin.
    fn docker_with_input(&self, args: &[&str], input: &str) -> Output {
        let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        if matches!(args.first(), Some(&"run") | Some(&"create")) {
            all.insert(1, format!("--cgroup-parent={}", self.parent));
        }
        let mut child = Command::new(DOCKER)
            .arg("-H")
            .arg(format!("unix://{}", self.sock.display()))
            .args(&all)
            .env("DOCKER_CONFIG", self.dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running the docker CLI");
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input.as_bytes()).unwrap();
        drop(stdin);
        child.wait_with_output().unwrap()
    }

    /// One raw HTTP request; the whole response as text.
    pub(crate) fn raw(&self, request: &str) -> String {
        let mut s = UnixStream::connect(&self.sock).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    }

    /// Send `sig` to the service and wait for it: how it ended.
    pub(crate) fn signal_and_wait(
        &mut self,
        sig: nix::sys::signal::Signal,
    ) -> std::process::ExitStatus {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, sig).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the service did not stop on {sig}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill();
    }
}

#[test]
fn api_docker_version_info_ps_and_images_talk_to_the_service() {
    let dy = Dy::new();
    let svc = Service::start(&dy);
    // The socket: 0660, root's (no `dockyard` group on a test machine).
    let meta = std::fs::metadata(&svc.sock).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    assert_eq!(meta.uid(), 0);

    let version = svc.docker_ok(&["version"]);
    assert!(
        version.contains("Client:") && version.contains("Server: Dockyard"),
        "{version}"
    );
    assert!(
        version.contains("API version:      1.50 (minimum version 1.24)"),
        "{version}"
    );

    let out = svc.docker(&["info"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let info = text(&out.stdout);
    assert!(info.contains("Server Version: 0.1.0"), "{info}");
    assert!(
        info.contains(&format!("Docker Root Dir: {}", dy.root.path().display())),
        "{info}"
    );
    assert!(!text(&out.stderr).contains("rror"), "{}", text(&out.stderr));

    let ps = svc.docker_ok(&["ps", "-a"]);
    assert_eq!(ps.lines().count(), 1, "{ps}");
    assert!(ps.starts_with("CONTAINER ID   IMAGE"), "{ps}");
    let images = svc.docker_ok(&["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"]);
    let id = dy.ok(&["images", "-q"]);
    assert_eq!(images, format!("busybox:latest {}", id), "{images}");
}

#[test]
fn api_docker_run_rm_relays_output_streams_and_exit_code() {
    let dy = Dy::new();
    let svc = Service::start(&dy);
    let out = svc.docker(&["run", "--rm", "busybox", "echo", "hi"]);
    assert_eq!(text(&out.stdout), "hi\n");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // Without a TTY stdout and stderr are multiplexed on one socket and
    // come apart again in the CLI.
    let out = svc.docker(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(text(&out.stdout), "out\n");
    assert_eq!(text(&out.stderr), "err\n");
    assert_eq!(out.status.code(), Some(3));
    // --rm through the API is the core's --rm: the other front sees nothing.
    assert_eq!(dy.ok(&["ps", "-aq"]), "");
    // -i: stdin travels up the hijacked socket, and its EOF (the CLI
    // half-closes) ends the container's stdin, so `cat` exits.
    let out = svc.docker_with_input(
        &["run", "-i", "--rm", "busybox", "sh", "-c", "cat; echo eof"],
        "typed\n",
    );
    assert_eq!(text(&out.stdout), "typed\neof\n", "{}", text(&out.stderr));
    assert_eq!(out.status.code(), Some(0));
    // logs -f follows until the container stops.
    svc.docker_ok(&[
        "run",
        "-d",
        "--name",
        "chatty",
        "busybox",
        "sh",
        "-c",
        "echo a; sleep 0.5; echo b",
    ]);
    assert_eq!(svc.docker_ok(&["logs", "-f", "chatty"]), "a\nb\n");
    svc.docker_ok(&["rm", "chatty"]);
    // With a TTY the stream is raw: the terminal's \r\n arrives as is.
    let out = svc.docker(&["run", "--rm", "-t", "busybox", "echo", "tty"]);
    assert_eq!(text(&out.stdout), "tty\r\n");
}

#[test]
fn api_docker_run_detached_logs_inspect_stop_rm_and_the_service_stops_alone() {
    let dy = Dy::new();
    let mut svc = Service::start(&dy);
    let id = svc.docker_ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "busybox",
        "sh",
        "-c",
        "echo started; trap 'exit 7' TERM; while :; do sleep 0.1; done",
    ]);
    let id = id.trim().to_string();
    assert_eq!(id.len(), 64, "{id}");
    dy.wait_for("web", "{{.State.Status}}", "running");
    let deadline = Instant::now() + Duration::from_secs(5);
    while svc.docker_ok(&["logs", "web"]) != "started\n" {
        assert!(Instant::now() < deadline, "no log");
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = svc.docker_ok(&["inspect", "-f", "{{.State.Pid}}", "web"]);
    let pid = pid.trim();
    assert_eq!(pid, dy.inspect("web", "{{.State.Pid}}").trim());
    assert!(PathBuf::from(format!("/proc/{pid}")).exists());
    assert_eq!(
        svc.docker_ok(&["inspect", "-f", "{{.Name}} {{.State.Status}}", id.as_str()]),
        "/web running\n"
    );
    let ps = svc.docker_ok(&["ps", "--format", "{{.Names}} {{.Status}}"]);
    assert!(ps.starts_with("web Up "), "{ps}");

    // The container has its own monitor: the service's death is not its.
    svc.kill();
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        PathBuf::from(format!("/proc/{pid}")).exists(),
        "the container died with the service"
    );
    let svc = Service::start(&dy);

    let started = Instant::now();
    svc.docker_ok(&["stop", "-t", "5", "web"]);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "stop waited for SIGKILL"
    );
    assert_eq!(
        dy.inspect("web", "{{.State.Status}} {{.State.ExitCode}}")
            .trim(),
        "exited 7"
    );
    assert!(!PathBuf::from(format!("/proc/{pid}")).exists());
    assert_eq!(svc.docker_ok(&["rm", "web"]), "web\n");
    assert_eq!(dy.ok(&["ps", "-aq"]), "");
}

#[test]
fn api_errors_have_dockers_texts_codes_and_statuses() {
    let dy = Dy::new();
    let svc = Service::start(&dy);
    let out = svc.docker(&["rm", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "Error response from daemon: No such container: nope\n"
    );
    let out = svc.docker(&["inspect", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stderr), "Error: No such object: nope\n");
    let out = svc.docker(&["stop", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("No such container: nope"),
        "{}",
        text(&out.stderr)
    );
    // A running container cannot be removed without force: 409.
    svc.docker_ok(&["run", "-d", "--name", "busy", "busybox", "sleep", "30"]);
    let out = svc.docker(&["rm", "busy"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("container is running"),
        "{}",
        text(&out.stderr)
    );
    svc.docker_ok(&["rm", "-f", "busy"]);

    let body = "{\"Image\": ";
    let resp = svc.raw(&format!(
        "POST /v1.50/containers/create HTTP/1.1\r\nHost: d\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    assert!(resp.starts_with("HTTP/1.1 400 "), "{resp}");
    let json: serde_json::Value =
        serde_json::from_str(resp.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert!(
        json["message"]
            .as_str()
            .unwrap()
            .starts_with("invalid JSON"),
        "{resp}"
    );
    // ...and nothing was created.
    assert_eq!(dy.ok(&["ps", "-aq"]), "");
    let resp = svc.raw("GET /v1.12/version HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n");
    assert!(
        resp.starts_with("HTTP/1.1 400 ") && resp.contains("is too old"),
        "{resp}"
    );
    let resp = svc.raw("HEAD /_ping HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n");
    assert!(
        resp.starts_with("HTTP/1.1 200 OK") && resp.contains("Api-Version: 1.50"),
        "{resp}"
    );
    let resp = svc.raw("GET /v1.50/nowhere HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n");
    assert!(
        resp.starts_with("HTTP/1.1 404 ") && resp.contains("page not found"),
        "{resp}"
    );
}

/// The memory limit the kernel holds for the cgroup of process `pid`
/// (cgroup v1's memory controller or v2's unified tree).
fn memory_limit(pid: &str) -> String {
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    for line in cgroups.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (
            parts.next(),
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
        );
        if controllers.split(',').any(|c| c == "memory") {
            return std::fs::read_to_string(format!(
                "/sys/fs/cgroup/memory{path}/memory.limit_in_bytes"
            ))
            .unwrap();
        }
        if controllers.is_empty() && line.starts_with("0::") {
            if let Ok(v) = std::fs::read_to_string(format!("/sys/fs/cgroup{path}/memory.max")) {
                return v;
            }
        }
    }
    panic!("no memory cgroup in {cgroups}");
}

#[test]
fn api_docker_run_binds_and_memory_reach_the_kernel() {
    let dy = Dy::new();
    let svc = Service::start(&dy);
    let dir = tempfile::Builder::new()
        .prefix("dockyard-api-bind-")
        .tempdir()
        .unwrap();
    std::fs::write(dir.path().join("file"), "from the host\n").unwrap();
    let bind = format!("{}:/data", dir.path().display());
    let out = svc.docker_ok(&[
        "run",
        "--rm",
        "-v",
        &bind,
        "busybox",
        "sh",
        "-c",
        "cat /data/file; echo back > /data/out",
    ]);
    assert_eq!(out, "from the host\n");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out")).unwrap(),
        "back\n"
    );

    svc.docker_ok(&[
        "run", "-d", "--name", "capped", "-m", "64m", "busybox", "sleep", "30",
    ]);
    let pid = dy.inspect("capped", "{{.State.Pid}}");
    assert_eq!(memory_limit(pid.trim()).trim(), "67108864");
    assert_eq!(
        dy.inspect("capped", "{{.HostConfig.Memory}}").trim(),
        "67108864"
    );
    svc.docker_ok(&["rm", "-f", "capped"]);
    assert_eq!(dy.ok(&["ps", "-aq"]), "");
}

#[test]
fn api_docker_exec_streams_exit_codes_stdin_tty_and_detach() {
    let dy = Dy::new();
    let svc = Service::start(&dy);
    svc.docker_ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--hostname",
        "inside",
        "busybox",
        "sleep",
        "60",
    ]);
    dy.wait_for("web", "{{.State.Status}}", "running");

    // Output, demultiplexed by the CLI into its own stdout and stderr.
    let out = svc.docker(&[
        "exec",
        "web",
        "sh",
        "-c",
        "echo out; echo err >&2; hostname",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "out\ninside\n");
    assert_eq!(text(&out.stderr), "err\n");

    // The command's exit code is the CLI's (read from GET /exec/ID/json).
    let out = svc.docker(&["exec", "web", "sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));

    // The process ran in the container's pid namespace, not the host's.
    let ps = svc.docker_ok(&["exec", "web", "ps", "-o", "pid,args"]);
    assert!(ps.contains("1 sleep 60"), "{ps}");

    // -i: the CLI's stdin reaches the command, and its EOF ends it.
    let out = svc.docker_with_input(&["exec", "-i", "web", "tr", "a-z", "A-Z"], "hello\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "HELLO\n");

    // -t: a terminal inside, and the raw stream (no frame headers; the
    // terminal's \r\n).
    let out = svc.docker(&["exec", "-t", "web", "sh", "-c", "tty; echo e >&2"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let tty = text(&out.stdout);
    assert!(tty.starts_with("/dev/pts/"), "{tty:?}");
    assert!(tty.ends_with("e\r\n"), "{tty:?}");

    // -d: the CLI returns at once; the command ran in the container.
    svc.docker_ok(&["exec", "-d", "web", "sh", "-c", "echo made > /tmp/made"]);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let out = svc.docker(&["exec", "web", "cat", "/tmp/made"]);
        if out.status.success() {
            assert_eq!(text(&out.stdout), "made\n");
            break;
        }
        assert!(Instant::now() < deadline, "exec -d never ran");
        std::thread::sleep(Duration::from_millis(50));
    }

    // docker's errors: no such container (404), not running (409).
    let out = svc.docker(&["exec", "nosuch", "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("No such container: nosuch"),
        "{}",
        text(&out.stderr)
    );
    let resp =
        svc.raw("GET /v1.50/exec/0123/json HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n");
    assert!(resp.starts_with("HTTP/1.1 404"), "{resp}");
    assert!(
        resp.contains(r#"{"message":"No such exec instance: 0123"}"#),
        "{resp}"
    );
    svc.docker_ok(&["kill", "web"]);
    dy.wait_for("web", "{{.State.Status}}", "exited");
    let out = svc.docker(&["exec", "web", "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("is not running"),
        "{}",
        text(&out.stderr)
    );
    svc.docker_ok(&["rm", "web"]);
}

#[test]
fn api_docker_restart_pause_top_rename_diff_and_prune() {
    let dy = Dy::new();
    let svc = Service::start(&dy);
    svc.docker_ok(&["run", "-d", "--name", "web", "busybox", "sleep", "60"]);
    dy.wait_for("web", "{{.State.Status}}", "running");
    let pid = dy.inspect("web", "{{.State.Pid}}").trim().to_string();

    // top: the container's processes, as the kernel has them.
    let top = svc.docker_ok(&["top", "web"]);
    assert!(top.starts_with("UID "), "{top}");
    let row = top
        .lines()
        .find(|l| l.contains("sleep 60"))
        .expect("no sleep row");
    assert!(
        row.split_whitespace().any(|w| w == pid),
        "{row} has not pid {pid}"
    );

    // pause / unpause: the kernel's freezer (v2 `cgroup.freeze`, v1
    // `freezer.state`), the record, and an exec into the frozen container
    // refused.
    let host = lab03_cgroups::detect().unwrap();
    let id = dy.inspect("web", "{{.Id}}").trim().to_string();
    let (freezer, frozen, thawed) = match host.version() {
        lab03_cgroups::Version::V2 => (
            host.group_dir("memory", &dy.parent, &id)
                .unwrap()
                .join("cgroup.freeze"),
            "1",
            "0",
        ),
        lab03_cgroups::Version::V1 => (
            host.group_dir("freezer", &dy.parent, &id)
                .unwrap()
                .join("freezer.state"),
            "FROZEN",
            "THAWED",
        ),
    };
    svc.docker_ok(&["pause", "web"]);
    assert_eq!(std::fs::read_to_string(&freezer).unwrap().trim(), frozen);
    assert_eq!(dy.inspect("web", "{{.State.Status}}").trim(), "paused");
    let out = svc.docker(&["exec", "web", "true"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("is paused"),
        "{}",
        text(&out.stderr)
    );
    svc.docker_ok(&["unpause", "web"]);
    assert_eq!(std::fs::read_to_string(&freezer).unwrap().trim(), thawed);
    assert_eq!(dy.inspect("web", "{{.State.Status}}").trim(), "running");

    // changes: what the container wrote, seen by docker diff.
    svc.docker_ok(&["exec", "web", "sh", "-c", "echo x > /made-here"]);
    let diff = svc.docker_ok(&["diff", "web"]);
    assert!(diff.lines().any(|l| l == "A /made-here"), "{diff}");

    // rename, seen from the other front; a taken name is docker's 409.
    svc.docker_ok(&["run", "--name", "done", "busybox", "true"]);
    let out = svc.docker(&["rename", "web", "done"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("already in use"),
        "{}",
        text(&out.stderr)
    );
    svc.docker_ok(&["rename", "web", "web2"]);
    assert_eq!(dy.inspect("web2", "{{.State.Pid}}").trim(), pid);

    // restart: a new process, the old one gone.
    svc.docker_ok(&["restart", "-t", "1", "web2"]);
    dy.wait_for("web2", "{{.State.Status}}", "running");
    let pid2 = dy.inspect("web2", "{{.State.Pid}}").trim().to_string();
    assert_ne!(pid2, pid);
    assert!(!PathBuf::from(format!("/proc/{pid}")).exists());
    assert!(PathBuf::from(format!("/proc/{pid2}")).exists());

    // prune: the stopped container goes, the running one stays.
    let done = dy.inspect("done", "{{.Id}}").trim().to_string();
    let out = svc.docker_ok(&["container", "prune", "-f"]);
    assert!(out.contains(&done), "{out}");
    assert_eq!(dy.ok(&["ps", "-a", "--format", "{{.Names}}"]), "web2\n");
    svc.docker_ok(&["rm", "-f", "web2"]);
}

#[test]
fn api_docker_run_of_a_missing_command_tells_the_client() {
    let dy = Dy::new();
    let svc = Service::start(&dy);
    let out = svc.docker(&["run", "--rm", "busybox", "nonexist"]);
    assert_eq!(out.status.code(), Some(127));
    assert!(
        text(&out.stderr).contains("exec \"nonexist\": executable file not found in $PATH"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn api_docker_tag_history_inspect_rmi_and_image_prune() {
    let dy = Dy::new();
    let svc = Service::start(&dy);
    // A name with a registry host and slashes, so never one of Docker
    // Hub's; tagging pulls nothing anyway.
    svc.docker_ok(&["tag", "busybox", "localhost:5000/team/app:1"]);
    let images = dy.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(
        images.lines().any(|l| l == "localhost:5000/team/app:1"),
        "{images}"
    );

    // inspect: the core's document, through the docker CLI's template.
    let id = dy.ok(&["image", "inspect", "-f", "{{.Id}}", "busybox"]);
    assert_eq!(
        svc.docker_ok(&[
            "image",
            "inspect",
            "-f",
            "{{.Id}}",
            "localhost:5000/team/app:1"
        ]),
        id
    );
    let tags = svc.docker_ok(&["image", "inspect", "-f", "{{json .RepoTags}}", "busybox"]);
    assert!(tags.contains("localhost:5000/team/app:1"), "{tags}");

    // history: docker's table from our JSON equals dockyard's own, but for
    // CREATED: the base image is made reproducibly at the epoch, which the
    // docker CLI shows as "N/A" (Created 0) and dockyard as "56 years ago".
    let columns = |t: String| -> Vec<Vec<String>> {
        t.lines()
            .map(|l| {
                let mut c: Vec<String> = l
                    .split("   ")
                    .map(|c| c.trim().to_string())
                    .filter(|c| !c.is_empty())
                    .collect();
                c.remove(1);
                c
            })
            .collect()
    };
    let ours = svc.docker_ok(&["history", "--no-trunc", "busybox"]);
    assert!(
        ours.lines().nth(1).is_some_and(|l| l.contains(" N/A ")),
        "{ours}"
    );
    assert_eq!(
        columns(ours),
        columns(dy.ok(&["history", "--no-trunc", "busybox"]))
    );

    // rmi of one of two names: that name goes, the image stays.
    assert_eq!(
        svc.docker_ok(&["rmi", "localhost:5000/team/app:1"]),
        "Untagged: localhost:5000/team/app:1\n"
    );
    assert_eq!(dy.ok(&["image", "inspect", "-f", "{{.Id}}", "busybox"]), id);
    let out = svc.docker(&["rmi", "localhost:5000/none:1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("No such image: localhost:5000/none:1"),
        "{}",
        text(&out.stderr)
    );
    // The last name of an image a container uses: docker's conflict.
    svc.docker_ok(&["create", "--name", "user", "busybox", "true"]);
    let out = svc.docker(&["rmi", "busybox"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("conflict: unable to remove"),
        "{}",
        text(&out.stderr)
    );
    svc.docker_ok(&["rm", "user"]);

    // prune -a: the unused image is untagged and its files deleted.
    let out = svc.docker_ok(&["image", "prune", "-a", "-f"]);
    assert!(out.contains("untagged: busybox:latest"), "{out}");
    assert!(out.contains("Total reclaimed space:"), "{out}");
    assert_eq!(dy.ok(&["images", "-q"]), "");
    // A filter prune does not know is refused, not ignored (`until` and
    // `label` are known: api_images tests them).
    let resp = svc.raw(
        "POST /v1.50/images/prune?filters=%7B%22nosuch%22%3A%5B%221%22%5D%7D HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n",
    );
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
    assert!(resp.contains("invalid filter 'nosuch'"), "{resp}");
}

#[test]
fn api_docker_volumes_create_ls_inspect_use_and_rm() {
    let dy = Dy::new();
    let svc = Service::start(&dy);
    assert_eq!(
        svc.docker_ok(&["volume", "create", "--label", "team=a", "v1"]),
        "v1\n"
    );
    let ls = svc.docker_ok(&["volume", "ls", "--format", "{{.Driver}} {{.Name}}"]);
    assert_eq!(ls, "local v1\n");
    assert_eq!(dy.ok(&["volume", "ls", "-q"]), "v1\n");
    let mount = svc.docker_ok(&["volume", "inspect", "-f", "{{.Mountpoint}}", "v1"]);
    let mount = PathBuf::from(mount.trim());
    assert!(mount.starts_with(dy.root.path()), "{}", mount.display());
    assert_eq!(
        svc.docker_ok(&["volume", "inspect", "-f", "{{.Labels.team}}", "v1"]),
        "a\n"
    );

    // A container writes into it; the file is in the volume's directory.
    svc.docker_ok(&[
        "run",
        "--name",
        "wr",
        "-v",
        "v1:/data",
        "busybox",
        "sh",
        "-c",
        "echo hi > /data/f",
    ]);
    assert_eq!(std::fs::read_to_string(mount.join("f")).unwrap(), "hi\n");

    // In use: docker's conflict; none such: docker's 404 text.
    let out = svc.docker(&["volume", "rm", "v1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("volume is in use"),
        "{}",
        text(&out.stderr)
    );
    let out = svc.docker(&["volume", "inspect", "nosuch"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no such volume"),
        "{}",
        text(&out.stderr)
    );
    let resp =
        svc.raw("DELETE /v1.50/volumes/nosuch HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n");
    assert!(resp.starts_with("HTTP/1.1 404"), "{resp}");

    svc.docker_ok(&["rm", "wr"]);
    assert_eq!(svc.docker_ok(&["volume", "rm", "v1"]), "v1\n");
    assert!(!mount.exists());
    assert_eq!(dy.ok(&["volume", "ls", "-q"]), "");
}

#[test]
fn api_docker_lists_and_inspects_the_predefined_networks() {
    let dy = Dy::new();
    let svc = Service::start(&dy);
    // The tests' engines have "bridge": "none": host and none remain.
    assert_eq!(
        svc.docker_ok(&["network", "ls", "--format", "{{.Name}} {{.Driver}}"]),
        "host host\nnone null\n"
    );
    assert_eq!(
        svc.docker_ok(&[
            "network",
            "ls",
            "--filter",
            "name=ho",
            "--format",
            "{{.Name}}"
        ]),
        "host\n"
    );
    assert_eq!(
        svc.docker_ok(&["network", "inspect", "-f", "{{.Name}} {{.Id}}", "none"]),
        dy.ok(&["network", "inspect", "-f", "{{.Name}} {{.Id}}", "none"])
    );
    let out = svc.docker(&["network", "inspect", "nosuch"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("not found"),
        "{}",
        text(&out.stderr)
    );
    let out = svc.docker(&["network", "rm", "host"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("pre-defined network"),
        "{}",
        text(&out.stderr)
    );
}

/// `docker network create`/`rm` make and delete a real bridge, so the
/// service runs in a throwaway network namespace (`unshare --net`), the
/// docker CLI beside it; the service is killed when the script ends.
#[test]
fn api_docker_network_create_inspect_rm_in_a_throwaway_netns() {
    let dy = Dy::new();
    let dir = tempfile::Builder::new()
        .prefix("dockyard-api-")
        .tempdir()
        .unwrap();
    let sock = dir.path().join("api.sock");
    let d = format!(
        "{} --root {}",
        dockyard_e2e::fixtures::bin("dockyard").display(),
        dy.root.path().display()
    );
    let script = format!(
        r#"
        ip link set lo up
        $D system service --host unix://{sock} --time 0 2>/dev/null & S=$!
        trap 'kill $S; wait $S' EXIT
        n=0; while [ ! -S {sock} ] && [ $n -lt 200 ]; do sleep 0.05; n=$((n+1)); done
        K="{docker} -H unix://{sock}"
        $K network create --subnet 172.29.0.0/24 --label team=a -o com.docker.network.bridge.name=dyapi0 apinet >/dev/null
        echo "bridge: $(ip -o -4 addr show dyapi0 | awk '{{print $4}}')"
        $K network inspect -f '{{{{.Name}}}} {{{{(index .IPAM.Config 0).Subnet}}}} {{{{.Labels.team}}}}' apinet
        $K network ls --filter label=team=a --format '{{{{.Name}}}}'
        $K network create apinet 2>&1; echo "exit=$?"
        $K network rm apinet
        echo "links: $(ip -o link | grep -c dyapi0)"
        "#,
        sock = sock.display(),
        docker = DOCKER,
    );
    let out = Command::new("unshare")
        .args(["--net", "sh", "-c", &format!("D='{d}'; {script}")])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .output()
        .expect("unshare");
    let stdout = text(&out.stdout);
    assert_eq!(
        stdout,
        "bridge: 172.29.0.1/24\n\
         apinet 172.29.0.0/24 a\n\
         apinet\n\
         Error response from daemon: network with name apinet already exists\n\
         exit=1\n\
         apinet\n\
         links: 0\n",
        "{}",
        text(&out.stderr)
    );
}

/// `docker exec -it` under a real terminal (`script` gives the CLI one):
/// the terminal's size reaches the container's (the CLI's resize), the
/// shell's exit code is the CLI's, and the CLI returns when the shell
/// exits although its own input is still open.
#[test]
fn api_docker_exec_it_under_a_terminal() {
    let dy = Dy::new();
    let svc = Service::start(&dy);
    svc.docker_ok(&["run", "-d", "--name", "web", "busybox", "sleep", "60"]);
    dy.wait_for("web", "{{.State.Status}}", "running");
    let cli = format!("{DOCKER} -H unix://{} exec -it web sh", svc.sock.display());
    let script = format!(
        "(sleep 1; printf 'stty size; tty; exit 5\\n'; sleep 8) | \
         timeout 20 script -qec 'stty rows 33 cols 101; t0=$(date +%s); {cli}; \
         echo \"rc=$? took=$(($(date +%s) - t0))\"' /dev/null"
    );
    let out = Command::new("sh")
        .args(["-c", &script])
        .env("DOCKER_CONFIG", svc.dir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("33 101\r\n"), "{stdout:?}");
    assert!(stdout.contains("/dev/pts/"), "{stdout:?}");
    // The input stays open 8 s more: the CLI must not wait for it.
    let took = stdout
        .split("rc=5 took=")
        .nth(1)
        .and_then(|t| t.trim().parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no exit code 5: {stdout:?}"));
    assert!(took < 6, "the CLI waited for its input to end: {took} s");
    svc.docker_ok(&["rm", "-f", "web"]);
}

/// A command that asks its terminal's size the moment it starts (`stty size`) gets the
/// client's: the docker CLI sends `ConsoleSize` with the exec and with the container's create,
/// and the terminal is made that size before the command runs, as dockerd does. The resize the
/// CLI sends after the start comes too late for it. `dockyard -H` sends it too.
#[test]
fn api_console_size_is_the_terminals_size_from_the_first_instruction() {
    let dy = Dy::new();
    let svc = Service::start(&dy);
    svc.docker_ok(&["run", "-d", "--name", "web", "busybox", "sleep", "60"]);
    dy.wait_for("web", "{{.State.Status}}", "running");
    let host = format!("unix://{}", svc.sock.display());
    let dockyard = dockyard_e2e::fixtures::bin("dockyard")
        .display()
        .to_string();
    for cli in [
        format!("{DOCKER} -H {host} exec -it web stty size"),
        format!("{DOCKER} -H {host} run --rm -it busybox stty size"),
        format!("{dockyard} -H {host} exec -it web stty size"),
        format!("{dockyard} -H {host} run --rm -it busybox stty size"),
    ] {
        // script's input stays open (at its end, script would type an end-of-file character
        // into the terminal, which a raw terminal passes on as a byte).
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "sleep 3 | timeout 30 script -qec 'stty rows 33 cols 101; {cli}' /dev/null"
            ))
            .env("DOCKER_CONFIG", svc.dir.path())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stdout = text(&out.stdout);
        assert_eq!(
            stdout.trim(),
            "33 101",
            "{cli}: {stdout:?}{}",
            text(&out.stderr)
        );
    }
    svc.docker_ok(&["rm", "-f", "web"]);
}

/// `docker cp` both ways (HEAD/GET/PUT `/archive`), `export`, `stats
/// --no-stream` (docker's JSON, from which the CLI computes its own
/// percentages), `update` (the kernel's limit changes), and a detached
/// exec whose instance reports its exit code once it ended.
#[test]
fn api_docker_cp_export_stats_update_and_exec_detach() {
    let dy = Dy::new();
    let svc = Service::start(&dy);
    svc.docker_ok(&[
        "run",
        "-d",
        "--name",
        "busy",
        "-m",
        "64m",
        "busybox",
        "sh",
        "-c",
        "while :; do :; done",
    ]);
    // cp in: a file, and a directory with a symlink in it.
    let host = tempfile::Builder::new()
        .prefix("dockyard-api-cp-")
        .tempdir()
        .unwrap();
    std::fs::write(host.path().join("note"), "from the host\n").unwrap();
    std::fs::create_dir(host.path().join("tree")).unwrap();
    std::fs::write(host.path().join("tree/a"), "a\n").unwrap();
    std::os::unix::fs::symlink("a", host.path().join("tree/link")).unwrap();
    let note = host.path().join("note");
    let tree = host.path().join("tree");
    svc.docker_ok(&["cp", note.to_str().unwrap(), "busy:/tmp/"]);
    svc.docker_ok(&["cp", tree.to_str().unwrap(), "busy:/srv"]);
    let pid = dy.inspect("busy", "{{.State.Pid}}");
    let root = format!("/proc/{}/root", pid.trim());
    assert_eq!(
        std::fs::read_to_string(format!("{root}/tmp/note")).unwrap(),
        "from the host\n"
    );
    assert_eq!(
        std::fs::read_link(format!("{root}/srv/link")).unwrap(),
        PathBuf::from("a")
    );
    // cp out: a file to a path, a directory into a directory, a missing path.
    let back = host.path().join("back");
    svc.docker_ok(&["cp", "busy:/tmp/note", back.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&back).unwrap(), "from the host\n");
    let out_dir = host.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    svc.docker_ok(&["cp", "busy:/srv", out_dir.to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(out_dir.join("srv/a")).unwrap(),
        "a\n"
    );
    assert!(std::fs::symlink_metadata(out_dir.join("srv/link"))
        .unwrap()
        .file_type()
        .is_symlink());
    let out = svc.docker(&["cp", "busy:/nope", out_dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("Could not find the file /nope in container busy"),
        "{}",
        text(&out.stderr)
    );
    // export: the root filesystem, what is mounted over it as mount points.
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{DOCKER} -H unix://{} export busy | tar t | grep -E '^(bin/busybox|tmp/note|proc|proc/.+)$'",
            svc.sock.display()
        ))
        .env("DOCKER_CONFIG", svc.dir.path())
        .output()
        .unwrap();
    assert_eq!(text(&out.stdout), "bin/busybox\nproc\ntmp/note\n");

    // stats: a spinning shell uses CPU; its memory is against its limit.
    let line = svc.docker_ok(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}} {{.CPUPerc}} {{.MemUsage}} {{.PIDs}}",
        "busy",
    ]);
    let f: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(f[0], "busy", "{line}");
    let cpu: f64 = f[1].trim_end_matches('%').parse().unwrap();
    assert!(cpu > 5.0 && cpu <= 100.0 * 64.0, "{line}");
    assert_eq!(f[4], "64MiB", "{line}");
    assert_eq!(f[5], "1", "{line}");

    // update: the kernel's limit follows.
    svc.docker_ok(&["update", "--memory", "96m", "--memory-swap", "-1", "busy"]);
    assert_eq!(memory_limit(pid.trim()).trim(), "100663296");

    // exec -d: the instance ends, and says so with its code.
    let id = raw_json(
        &svc,
        "POST",
        "/v1.50/containers/busy/exec",
        r#"{"Cmd":["sh","-c","sleep 0.2; exit 5"]}"#,
    );
    let id = id["Id"].as_str().unwrap().to_string();
    let resp = svc.raw(&format!(
        "POST /v1.50/exec/{id}/start HTTP/1.1\r\nHost: d\r\nContent-Type: application/json\r\n\
         Content-Length: 15\r\nConnection: close\r\n\r\n{{\"Detach\":true}}"
    ));
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let inspect = loop {
        let v = raw_json(&svc, "GET", &format!("/v1.50/exec/{id}/json"), "");
        if v["Running"] == false || Instant::now() > deadline {
            break v;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(inspect["Running"], false, "{inspect}");
    assert_eq!(inspect["ExitCode"], 5, "{inspect}");

    svc.docker_ok(&["rm", "-f", "busy"]);
    // The container gone, so are its exec instances.
    let gone = svc.raw(&format!(
        "GET /v1.50/exec/{id}/json HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n"
    ));
    assert!(gone.starts_with("HTTP/1.1 404"), "{gone}");
}

/// One request with a JSON body; the response's JSON body.
fn raw_json(svc: &Service, method: &str, path: &str, body: &str) -> serde_json::Value {
    let resp = svc.raw(&format!(
        "{method} {path} HTTP/1.1\r\nHost: d\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    let json = resp.split("\r\n\r\n").nth(1).unwrap_or("");
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {resp}"))
}

/// `POST /containers/ID/resize`: a TTY container's terminal takes the size
/// the client sends (the CLI sends its own terminal's at attach and on
/// every SIGWINCH), and the container sees it with `stty size`.
#[test]
fn api_container_resize_reaches_the_containers_terminal() {
    let dy = Dy::new();
    let svc = Service::start(&dy);
    svc.docker_ok(&[
        "run",
        "-d",
        "-t",
        "--name",
        "term",
        "busybox",
        "sh",
        "-c",
        "sleep 1; stty size; sleep 30",
    ]);
    let resp = svc.raw(
        "POST /v1.50/containers/term/resize?h=33&w=77 HTTP/1.1\r\nHost: d\r\n\
         Content-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut logs = String::new();
    while Instant::now() < deadline && !logs.contains('\n') {
        std::thread::sleep(Duration::from_millis(100));
        logs = svc.docker_ok(&["logs", "term"]);
    }
    assert_eq!(logs, "33 77\r\n");
    // A bad size is the client's mistake.
    let resp = svc.raw(
        "POST /v1.50/containers/term/resize?h=x&w=77 HTTP/1.1\r\nHost: d\r\n\
         Content-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
    svc.docker_ok(&["rm", "-f", "term"]);
}
