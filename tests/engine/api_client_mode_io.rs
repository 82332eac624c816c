//! `dockyard -H` for the commands that keep a stream open or move files:
//! `exec` (its exit code, -e -u -w -i -d), `run -it` and `exec -it` on a
//! real pseudo-terminal (the container's terminal gets our size), `logs -f`
//! until the container stops, `build` with a `.dockerignore`, `cp` both
//! ways, `push`/`tag`/`rmi` against a registry on 127.0.0.1, and the rest
//! of the lifecycle (`top`, `stats`, `port`, `rename`, `pause`). Each is
//! checked against the in-process CLI on the same data root and against
//! what the kernel and the container show.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dockyard_e2e::dockyard::{text, Dockyard as Dy};
use dockyard_e2e::fixtures::bin;

use super::super::api::Service;
use super::registry_common::Registry;
use super::{client, client_ok, url};

/// `dockyard -H URL ARGS` with `input` on its stdin.
fn client_with_input(svc: &Service, args: &[&str], input: &str) -> std::process::Output {
    let mut child = Command::new(bin("dockyard"))
        .arg("-H")
        .arg(url(svc))
        .args(args)
        .env_remove("DOCKYARD_HOST")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Both fronts: the same stdout, stderr and exit code.
fn same_run(svc: &Service, dy: &Dy, args: &[&str]) -> (i32, String, String) {
    let remote = client(&url(svc), &dy.parent, args);
    let local = dy.run(args);
    let r = (
        remote.status.code().unwrap_or(-1),
        text(&remote.stdout),
        text(&remote.stderr),
    );
    let l = (
        local.status.code().unwrap_or(-1),
        text(&local.stdout),
        text(&local.stderr),
    );
    assert_eq!(r, l, "dockyard -H {args:?} (left) and in-process (right)");
    r
}

#[test]
fn api_client_mode_execs_and_follows_logs_as_in_process() {
    let dy = Dy::new();
    let svc = Service::start(&dy);
    dy.ok(&["run", "-d", "--name", "box", "busybox", "sleep", "60"]);
    // The exit code and both streams, as in-process.
    let script = "echo out; echo err >&2; exit 4";
    let (code, out, err) = same_run(&svc, &dy, &["exec", "box", "sh", "-c", script]);
    assert_eq!((code, out.as_str(), err.as_str()), (4, "out\n", "err\n"));
    let args = [
        "exec",
        "-e",
        "WHO=far",
        "-w",
        "/tmp",
        "-u",
        "1000",
        "box",
        "sh",
        "-c",
        "echo $WHO $(pwd) $(id -u)",
    ];
    assert_eq!(same_run(&svc, &dy, &args).1, "far /tmp 1000\n");
    assert_eq!(
        same_run(&svc, &dy, &["exec", "box", "nosuchcmd"]).0,
        dy.run(&["exec", "box", "nosuchcmd"]).status.code().unwrap()
    );
    // -i: our stdin is the command's, to its EOF.
    let out = client_with_input(&svc, &["exec", "-i", "box", "tr", "a-z", "A-Z"], "hello\n");
    assert_eq!(
        (out.status.code(), text(&out.stdout)),
        (Some(0), "HELLO\n".into())
    );
    // run -i (no terminal): multiplexed frames one way, our stdin the
    // other; its EOF (we half-close) is the container's, its code ours.
    let parent = format!("--cgroup-parent={}", dy.parent);
    let args = [
        "run",
        "-i",
        "--rm",
        &parent,
        "busybox",
        "sh",
        "-c",
        "cat; echo eof >&2; exit 6",
    ];
    let out = client_with_input(&svc, &args, "typed\n");
    assert_eq!(
        (out.status.code(), text(&out.stdout), text(&out.stderr)),
        (Some(6), "typed\n".into(), "eof\n".into())
    );
    // start -a: the created container's streams and code, as in-process
    // (each front starts it once).
    dy.ok(&[
        "create",
        "--name",
        "again",
        "busybox",
        "sh",
        "-c",
        "echo again; echo e >&2; exit 5",
    ]);
    let (code, out, err) = same_run(&svc, &dy, &["start", "-a", "again"]);
    assert_eq!((code, out.as_str(), err.as_str()), (5, "again\n", "e\n"));
    // -d: nothing printed, the command runs on after the client is gone.
    let args = [
        "exec",
        "-d",
        "box",
        "sh",
        "-c",
        "sleep 0.3; echo done > /tmp/mark",
    ];
    assert_eq!(client_ok(&svc, &dy, &args), "");
    let deadline = Instant::now() + Duration::from_secs(10);
    while dy.run(&["exec", "box", "cat", "/tmp/mark"]).stdout != b"done\n" {
        assert!(Instant::now() < deadline, "exec -d never ran");
        std::thread::sleep(Duration::from_millis(100));
    }
    // top, port, rename, pause/unpause: the service did them (the freezer
    // says so), the client printed what in-process prints.
    let pid = dy.inspect("box", "{{.State.Pid}}");
    let top = client_ok(&svc, &dy, &["top", "box"]);
    assert!(
        top.starts_with("UID ") && top.contains(&format!(" {pid} ")),
        "{top}"
    );
    same_run(&svc, &dy, &["port", "box"]);
    assert_eq!(client_ok(&svc, &dy, &["pause", "box"]), "box\n");
    assert_eq!(dy.inspect("box", "{{.State.Status}}"), "paused");
    assert_eq!(client_ok(&svc, &dy, &["unpause", "box"]), "box\n");
    assert_eq!(dy.inspect("box", "{{.State.Status}}"), "running");
    client_ok(&svc, &dy, &["rename", "box", "box2"]);
    assert_eq!(dy.inspect("box2", "{{.State.Pid}}"), pid);
    // stats: the same row but for the moving numbers.
    let stats = client_ok(&svc, &dy, &["stats", "--no-stream", "box2"]);
    let lines: Vec<&str> = stats.lines().collect();
    assert!(lines[0].starts_with("CONTAINER ID   NAME"), "{stats}");
    let cols: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        (cols[1], cols.last().copied()),
        ("box2", Some("1")),
        "{stats}"
    );
    // volume create/rm: seen from the other front.
    assert_eq!(client_ok(&svc, &dy, &["volume", "create", "vc1"]), "vc1\n");
    assert_eq!(dy.ok(&["volume", "ls", "-q"]), "vc1\n");
    assert_eq!(client_ok(&svc, &dy, &["volume", "rm", "vc1"]), "vc1\n");
    assert_eq!(dy.ok(&["volume", "ls", "-q"]), "");
    // logs -f: follows until the container stops, then returns; what it
    // printed is what in-process `logs` prints afterwards.
    let script = "for i in 1 2 3; do echo line$i; sleep 0.3; done; echo last >&2";
    dy.ok(&["run", "-d", "--name", "talk", "busybox", "sh", "-c", script]);
    let started = Instant::now();
    let follow = client(&url(&svc), &dy.parent, &["logs", "-f", "talk"]);
    assert!(follow.status.success(), "{}", text(&follow.stderr));
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "did not follow"
    );
    assert_eq!(dy.inspect("talk", "{{.State.Status}}"), "exited");
    let local = dy.run(&["logs", "talk"]);
    assert_eq!(
        (text(&follow.stdout), text(&follow.stderr)),
        (text(&local.stdout), text(&local.stderr))
    );
    assert_eq!(text(&follow.stdout), "line1\nline2\nline3\n");
    same_run(&svc, &dy, &["logs", "--tail", "2", "-t", "talk"]);
    dy.ok(&["rm", "-f", "box2", "talk", "again"]);
}

/// A command on the slave of a new pty of `rows` x `cols`, as a person at
/// a terminal runs it; `steps`: wait for the text, then type the bytes.
fn on_a_terminal(
    svc: &Service,
    args: &[&str],
    rows: u16,
    cols: u16,
    steps: &[(&str, &[u8])],
) -> (i32, String) {
    let size = nix::pty::Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = nix::pty::openpty(Some(&size), None).unwrap();
    let slave = pty.slave;
    let mut child = Command::new(bin("dockyard"))
        .arg("-H")
        .arg(url(svc))
        .args(args)
        .env_remove("DOCKYARD_HOST")
        .stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave))
        .spawn()
        .unwrap();
    let mut master = std::fs::File::from(pty.master);
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
    let mut seen = String::new();
    for (want, input) in steps {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !seen.contains(want) {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(b) => seen.push_str(&String::from_utf8_lossy(&b)),
                Err(_) => {
                    let _ = child.kill();
                    panic!("{args:?}: waited for {want:?}, saw {seen:?}");
                }
            }
        }
        master.write_all(input).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{args:?} never ended: {seen:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    drop(master);
    while let Ok(b) = rx.recv_timeout(Duration::from_millis(300)) {
        seen.push_str(&String::from_utf8_lossy(&b));
    }
    (status.code().unwrap_or(-1), seen)
}

#[test]
fn api_client_mode_gives_run_it_and_exec_it_a_terminal() {
    let dy = Dy::new();
    let svc = Service::start(&dy);
    let parent = format!("--cgroup-parent={}", dy.parent);
    // run -it: the container's stdin is a terminal of our size (sent by
    // the resize at the start), typed keys reach its shell, its exit code
    // is ours.
    let typed: &[u8] = b"tty; stty size; echo $((6*7)); exit 7\r";
    let (code, seen) = on_a_terminal(
        &svc,
        &["run", "-it", &parent, "--name", "term", "busybox", "sh"],
        33,
        101,
        &[("# ", typed)],
    );
    assert_eq!(code, 7, "{seen}");
    assert!(
        seen.contains("/dev/pts/") && seen.contains("33 101") && seen.contains("42"),
        "{seen}"
    );
    assert_eq!(
        dy.inspect("term", "{{.Config.Tty}} {{.State.ExitCode}}"),
        "true 7"
    );
    // start -ai: the same container again, its terminal sized anew.
    let (code, seen) = on_a_terminal(
        &svc,
        &["start", "-ai", "term"],
        20,
        70,
        &[("# ", b"stty size; exit 8\r")],
    );
    assert_eq!(code, 8, "{seen}");
    assert!(seen.contains("20 70"), "{seen}");
    // exec -it into a running container: a terminal of its own, our size.
    dy.ok(&["run", "-d", "--name", "up", "busybox", "sleep", "60"]);
    let (code, seen) = on_a_terminal(
        &svc,
        &["exec", "-it", "up", "sh"],
        40,
        90,
        &[("# ", b"stty size; exit 5\r")],
    );
    assert_eq!(code, 5, "{seen}");
    assert!(seen.contains("40 90"), "{seen}");
    // attach to a running -it container: keys in, output out; its exit is ours.
    dy.ok(&["run", "-dit", "--name", "shell", "busybox", "sh"]);
    let (code, seen) = on_a_terminal(
        &svc,
        &["attach", "shell"],
        25,
        80,
        &[("", b"\r"), ("# ", b"echo attached-$((2+3)); exit 9\r")],
    );
    assert_eq!(code, 9, "{seen}");
    assert!(seen.contains("attached-5"), "{seen}");
    // Without a terminal, -it is refused as docker refuses it.
    let out = client(&url(&svc), &dy.parent, &["exec", "-it", "up", "sh"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stderr), "the input device is not a TTY\n");
    dy.ok(&["rm", "-f", "term", "up", "shell"]);
}

#[test]
fn api_client_mode_builds_and_copies_as_in_process() {
    let dy = Dy::new();
    let svc = Service::start(&dy);
    let dir = tempfile::tempdir().unwrap();
    let ctx = dir.path().join("ctx");
    std::fs::create_dir_all(ctx.join("sub")).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nCOPY . /ctx/\nRUN find /ctx | sort\n",
    )
    .unwrap();
    std::fs::write(ctx.join("keep.txt"), "keep\n").unwrap();
    std::fs::write(ctx.join("secret.txt"), "secret\n").unwrap();
    std::fs::write(ctx.join("sub/a.log"), "log\n").unwrap();
    std::fs::write(ctx.join(".dockerignore"), "secret.txt\n**/*.log\n").unwrap();
    let c = ctx.to_str().unwrap();
    // The same output but for the IDs; the ignored files never left.
    let hex = |s: &str| -> String {
        s.split_inclusive(|c: char| c.is_whitespace())
            .map(|w| {
                let t = w.trim_end();
                match t.len() == 12 && t.chars().all(|c| c.is_ascii_hexdigit()) {
                    true => w.replace(t, "ID"),
                    false => w.to_string(),
                }
            })
            .collect()
    };
    let args = ["build", "--no-cache", "-t", "app:1", c];
    let remote = client(&url(&svc), &dy.parent, &args);
    let local = dy.run(&args);
    assert!(remote.status.success(), "{}", text(&remote.stderr));
    assert!(local.status.success(), "{}", text(&local.stderr));
    assert_eq!(hex(&text(&remote.stdout)), hex(&text(&local.stdout)));
    let out = text(&remote.stdout);
    assert!(
        out.contains("/ctx/keep.txt") && out.contains("/ctx/sub\n"),
        "{out}"
    );
    assert!(!out.contains("secret") && !out.contains("a.log"), "{out}");
    assert!(out.contains("Successfully built ") && out.ends_with("Successfully tagged app:1\n"));
    assert!(dy
        .ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .contains("app:1"));
    // The RUN steps' container flags travel in the query and reach the step.
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nRUN grep db /etc/hosts; grep ' /dev/shm ' /proc/mounts; \
         ulimit -Hn\n",
    )
    .unwrap();
    let args = [
        "build",
        "--add-host",
        "db=10.1.2.3",
        "--shm-size",
        "128m",
        "--ulimit",
        "nofile=1024:2048",
        c,
    ];
    let remote = client(&url(&svc), &dy.parent, &args);
    assert!(remote.status.success(), "{}", text(&remote.stderr));
    let out = text(&remote.stdout);
    assert!(
        out.contains("10.1.2.3\tdb\n") && out.contains("\n2048\n"),
        "{out}"
    );
    assert!(out.contains(",size=131072k "), "{out}");
    let remote = client(&url(&svc), &dy.parent, &["build", "--add-host", "db", c]);
    assert_eq!(remote.status.code(), Some(1));
    assert_eq!(
        text(&remote.stderr),
        "invalid argument \"db\" for \"--add-host\" flag: bad format for add-host: \"db\"\n"
    );
    // A failing RUN: its code, its message, as in-process.
    std::fs::write(ctx.join("Dockerfile"), "FROM busybox\nRUN exit 3\n").unwrap();
    let args = ["build", c];
    let (remote, local) = (client(&url(&svc), &dy.parent, &args), dy.run(&args));
    assert_eq!(remote.status.code(), Some(3));
    assert_eq!(local.status.code(), Some(3));
    assert_eq!(text(&remote.stderr), text(&local.stderr));
    // cp in: a file into a directory, a directory to a new name.
    dy.ok(&["run", "-d", "--name", "files", "busybox", "sleep", "60"]);
    client_ok(&svc, &dy, &["cp", &format!("{c}/keep.txt"), "files:/tmp/"]);
    client_ok(&svc, &dy, &["cp", &format!("{c}/sub"), "files:/tmp/copied"]);
    assert_eq!(
        dy.ok(&["exec", "files", "cat", "/tmp/keep.txt", "/tmp/copied/a.log"]),
        "keep\nlog\n"
    );
    // cp out: a file to a new name, a directory into one.
    let back = dir.path().join("back");
    std::fs::create_dir(&back).unwrap();
    let b = back.to_str().unwrap();
    client_ok(
        &svc,
        &dy,
        &["cp", "files:/etc/hostname", &format!("{b}/hn")],
    );
    client_ok(&svc, &dy, &["cp", "files:/tmp/copied", b]);
    let hostname = dy.ok(&["exec", "files", "cat", "/etc/hostname"]);
    assert_eq!(std::fs::read_to_string(back.join("hn")).unwrap(), hostname);
    assert_eq!(
        std::fs::read_to_string(back.join("copied/a.log")).unwrap(),
        "log\n"
    );
    let out = client(&url(&svc), &dy.parent, &["cp", "files:/nope", b]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    dy.ok(&["rm", "-f", "files"]);
}

#[test]
fn api_client_mode_tags_pushes_and_removes_images() {
    let dy = Dy::new();
    let reg = Registry::start();
    let svc = Service::start(&dy);
    let name = format!("{}/team/far:v1", reg.host());
    assert_eq!(client_ok(&svc, &dy, &["tag", "busybox", &name]), "");
    assert!(dy
        .ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .contains(&name));
    let pushed = client_ok(&svc, &dy, &["push", &name]);
    assert!(
        pushed.starts_with(&format!(
            "The push refers to repository [{}/team/far]\n",
            reg.host()
        )) && pushed.contains(": Pushed\n")
            && pushed.contains("v1: digest: sha256:"),
        "{pushed}"
    );
    // rmi: the in-process lines; the registry has it (pulled back in-process).
    let removed = client_ok(&svc, &dy, &["rmi", &name]);
    assert_eq!(removed, format!("Untagged: {name}\n"));
    assert!(!dy
        .ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .contains(&name));
    dy.ok(&["pull", &name]);
    let out = client(&url(&svc), &dy.parent, &["rmi", "nosuch:tag"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).starts_with("Error response from daemon: "),
        "{}",
        text(&out.stderr)
    );
}
