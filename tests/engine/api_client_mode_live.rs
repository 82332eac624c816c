//! `dockyard -H` for what reads standard input or keeps running: `build -`
//! (a context, or a Dockerfile, on stdin), `stats` streaming a table a
//! second, and the detach keys, which the service honours on an attach (as
//! dockerd does) and the client looks for as docker's CLI does. Each is
//! checked against the in-process CLI on the same data root, the docker
//! CLI on the same service, and what the kernel shows.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use dockyard_e2e::dockyard::{text, Dockyard as Dy};
use dockyard_e2e::fixtures::bin;

use super::super::api::Service;
use super::{client_ok, url};

const DOCKER: &str = "/usr/local/bin/docker";

/// Build output with each 12-digit ID (an image's, a RUN step's
/// container's) as `ID`: the rest must be the same on both fronts.
fn ids_out(s: &str) -> String {
    s.split_inclusive(|c: char| c.is_whitespace())
        .map(|w| {
            let t = w.trim_end();
            match t.len() == 12 && t.chars().all(|c| c.is_ascii_hexdigit()) {
                true => w.replace(t, "ID"),
                false => w.to_string(),
            }
        })
        .collect()
}

/// `dockyard ARGS` (`-H` the service's, or in-process on `dy`'s root)
/// with the file `input` as its stdin: (exit code, stdout, stderr).
fn with_stdin(
    svc: Option<&Service>,
    dy: &Dy,
    args: &[&str],
    input: &std::path::Path,
) -> (i32, String, String) {
    let mut cmd = match svc {
        Some(svc) => {
            let mut c = Command::new(bin("dockyard"));
            c.arg("-H").arg(url(svc)).env_remove("DOCKYARD_HOST");
            c.arg(args[0])
                .arg(format!("--cgroup-parent={}", dy.parent))
                .args(&args[1..]);
            c
        }
        None => dy.command(args),
    };
    let out = cmd
        .stdin(std::fs::File::open(input).unwrap())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        text(&out.stdout),
        text(&out.stderr),
    )
}

#[test]
fn api_client_mode_builds_a_context_or_a_dockerfile_from_stdin() {
    let dy = Dy::new();
    let svc = Service::start(&dy);
    let dir = tempfile::tempdir().unwrap();
    let ctx = dir.path().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nCOPY hello.txt /hello.txt\nRUN wc -c /hello.txt\nCMD [\"cat\", \"/hello.txt\"]\n",
    )
    .unwrap();
    std::fs::write(ctx.join("hello.txt"), "from the tar\n").unwrap();
    let tar = dir.path().join("ctx.tar");
    let tgz = dir.path().join("ctx.tar.gz");
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "tar -C {c} -cf {t} . && gzip -c {t} > {z}",
            c = ctx.display(),
            t = tar.display(),
            z = tgz.display()
        ))
        .status()
        .unwrap();
    assert!(status.success());
    // `build - < ctx.tar`: the context on stdin, as in-process.
    let args = ["build", "--no-cache", "-t", "fromtar", "-"];
    let remote = with_stdin(Some(&svc), &dy, &args, &tar);
    let local = with_stdin(None, &dy, &args, &tar);
    assert_eq!(remote.0, 0, "{}", remote.2);
    assert_eq!(
        (remote.0, ids_out(&remote.1), remote.2.clone()),
        (local.0, ids_out(&local.1), local.2)
    );
    assert!(remote.1.contains("13 /hello.txt\n"), "{}", remote.1);
    assert_eq!(
        dy.ok(&["run", "--rm", "fromtar"]),
        "from the tar\n",
        "the image has the tar's file"
    );
    // Compressed, quiet: the image's ID alone.
    let (code, out, err) = with_stdin(Some(&svc), &dy, &["build", "-q", "-t", "gz", "-"], &tgz);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("sha256:"), "{out}");
    assert_eq!(dy.ok(&["run", "--rm", "gz"]), "from the tar\n");
    // `build - < Dockerfile`: a Dockerfile alone, no context.
    let df = dir.path().join("Dockerfile.alone");
    std::fs::write(
        &df,
        "FROM busybox\nRUN echo built > /b\nCMD [\"cat\", \"/b\"]\n",
    )
    .unwrap();
    let args = ["build", "--no-cache", "-t", "alone", "-"];
    let remote = with_stdin(Some(&svc), &dy, &args, &df);
    let local = with_stdin(None, &dy, &args, &df);
    assert_eq!(remote.0, 0, "{}", remote.2);
    assert_eq!(ids_out(&remote.1), ids_out(&local.1));
    assert_eq!(dy.ok(&["run", "--rm", "alone"]), "built\n");
    // `-f -` with a directory: its files, and the Dockerfile from stdin.
    std::fs::write(
        &df,
        "FROM busybox\nCOPY hello.txt /h\nCMD [\"cat\", \"/h\"]\n",
    )
    .unwrap();
    let c = ctx.to_str().unwrap();
    let (code, _, err) = with_stdin(Some(&svc), &dy, &["build", "-t", "ff", "-f", "-", c], &df);
    assert_eq!(code, 0, "{err}");
    assert_eq!(dy.ok(&["run", "--rm", "ff"]), "from the tar\n");
    // A Dockerfile on stdin with -f: refused as in-process.
    let args = ["build", "-f", "Other", "-"];
    let remote = with_stdin(Some(&svc), &dy, &args, &df);
    assert_eq!(remote, with_stdin(None, &dy, &args, &df));
    assert_eq!(remote.0, 1);
    // docker's CLI sends the same tar the same way (its legacy builder).
    let cfg = tempfile::tempdir().unwrap();
    let out = Command::new(DOCKER)
        .args(["-H", &url(&svc), "build", "-t", "viadocker", "-"])
        .env("DOCKER_CONFIG", cfg.path())
        .env_remove("DOCKER_HOST")
        .stdin(std::fs::File::open(&tar).unwrap())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(dy.ok(&["run", "--rm", "viadocker"]), "from the tar\n");
}

/// The tables `cmd` prints within `wait`, each as its lines, and when each
/// began; then `cmd` is killed (it never ends by itself).
fn tables(mut cmd: Command, count: usize, wait: Duration) -> Vec<(Instant, Vec<String>)> {
    let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send((Instant::now(), line)).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + wait;
    let mut out: Vec<(Instant, Vec<String>)> = Vec::new();
    // A table is done when the next begins: read one header more.
    while out.len() <= count {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok((at, line)) = rx.recv_timeout(left) else {
            break;
        };
        if line.starts_with("CONTAINER ID") {
            out.push((at, Vec::new()));
        }
        if let Some(t) = out.last_mut() {
            t.1.push(line);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    out.truncate(count);
    out
}

#[test]
fn api_client_mode_streams_stats_as_in_process() {
    let dy = Dy::new();
    let svc = Service::start(&dy);
    let id = dy
        .ok(&[
            "run",
            "-d",
            "--name",
            "st",
            "busybox",
            "sh",
            "-c",
            "sleep 60 & sleep 60 & wait",
        ])
        .trim()
        .to_string();
    // Three processes in the container's cgroup, as the kernel says
    // (v1 or v2): sh and its two sleeps.
    let in_cgroup = || {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter(|e| {
                let cgroup = std::fs::read_to_string(e.path().join("cgroup"));
                cgroup.is_ok_and(|c| c.contains(&id))
            })
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while in_cgroup() != 3 {
        assert!(Instant::now() < deadline, "{} processes", in_cgroup());
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut remote = Command::new(bin("dockyard"));
    remote
        .args(["-H", &url(&svc), "stats", "st"])
        .env_remove("DOCKYARD_HOST")
        .stdin(Stdio::null());
    let wait = Duration::from_secs(20);
    let remote = tables(remote, 3, wait);
    let local = tables(dy.command(&["stats", "st"]), 3, wait);
    assert_eq!(remote.len(), 3, "{remote:?}");
    assert_eq!(local.len(), 3, "{local:?}");
    // Each the in-process table: its header, one row, the same columns
    // but for the sampled CPU and memory.
    let fixed = |row: &str| -> Vec<String> {
        // (Columns are two spaces apart at least; values have one.)
        let cols: Vec<&str> = row
            .split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        assert_eq!(cols.len(), 8, "{row:?}");
        [0, 1, 5, 6, 7]
            .iter()
            .map(|&i| cols[i].to_string())
            .collect()
    };
    for ((_, r), (_, l)) in remote.iter().zip(&local) {
        assert_eq!(r.len(), 2, "{r:?}");
        assert_eq!(r[0], l[0]);
        assert_eq!(fixed(&r[1]), fixed(&l[1]), "{r:?} {l:?}");
        assert_eq!(fixed(&r[1]), [&id[..12], "st", "0B / 0B", "0B / 0B", "3"]);
    }
    // Refreshed, about a second apart, not printed all at once.
    for pair in remote.windows(2) {
        let gap = pair[1].0 - pair[0].0;
        assert!(gap >= Duration::from_millis(700), "{gap:?}");
    }
    // A container that is not there: the service's error, before any table.
    let out = Command::new(bin("dockyard"))
        .args(["-H", &url(&svc), "stats", "nosuch"])
        .env_remove("DOCKYARD_HOST")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "");
    assert!(text(&out.stderr).contains("No such container: nosuch"));
    dy.ok(&["rm", "-f", "st"]);
}

/// A raw attach to `name`, stdin too, with `extra` in the query: the
/// response's head, and the connection (a byte pipe once it is a 101).
fn raw_attach(svc: &Service, name: &str, extra: &str) -> (String, UnixStream) {
    let mut s = UnixStream::connect(&svc.sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST /v1.50/containers/{name}/attach?stream=1&stdin=1&stdout=1&stderr=1{extra} HTTP/1.1\r\n\
         Host: dockyard\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut b).unwrap();
        head.push(b[0]);
    }
    (text(&head), s)
}

/// Read from `s` until what came has `want` in it, or the connection ends
/// (None: it did not come), or 10 s pass (a panic).
fn read_until(s: &mut UnixStream, want: &[u8]) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(want.len()).any(|w| w == want) {
        match s.read(&mut buf) {
            Ok(0) => return None,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!("{e}: no {:?} within 10 s in {:?}", text(want), text(&got)),
        }
    }
    Some(got)
}

/// `cmd` under a pseudo-terminal (`script`), whose keyboard types `echo
/// hi`, then `keys`: what the terminal showed, and `rc=` its exit code.
fn under_terminal(cmd: &str, keys: &str, docker_config: &std::path::Path) -> String {
    let script = format!(
        "(sleep 2; printf 'echo h\"\"i\\n'; sleep 1; printf '{keys}'; sleep 3) | \
         timeout 30 script -qec '{cmd}; echo rc=$?' /dev/null"
    );
    let out = Command::new("sh")
        .args(["-c", &script])
        .env("DOCKER_CONFIG", docker_config)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    text(&out.stdout)
}

/// Whether container `name` runs, and its first process is alive.
fn still_running(dy: &Dy, name: &str) -> bool {
    let pid = dy.ok(&["inspect", "-f", "{{.State.Running}} {{.State.Pid}}", name]);
    let pid = pid.trim().strip_prefix("true ").unwrap_or("0").to_string();
    pid != "0" && std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn api_client_mode_and_the_service_detach_on_the_detach_keys() {
    let dy = Dy::new();
    let svc = Service::start(&dy);
    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    dy.ok(&["run", "-dit", "--name", "sh1", "busybox", "sh"]);
    dy.wait_for("sh1", "{{.State.Status}}", "running");
    // `detachKeys`: the attach ends on them, the shell goes on.
    let (head, mut s) = raw_attach(&svc, "sh1", "&detachKeys=ctrl-x,x");
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    s.write_all(b"echo hel''lo\n").unwrap();
    read_until(&mut s, b"hello").expect("the shell's answer");
    s.write_all(b"\x18x").unwrap();
    assert_eq!(
        read_until(&mut s, b"never"),
        None,
        "the attach did not end on the detach keys"
    );
    assert!(still_running(&dy, "sh1"));
    // The default, ctrl-p ctrl-q; the shell's input stayed open.
    let (_, mut s) = raw_attach(&svc, "sh1", "");
    s.write_all(b"echo aga''in\n").unwrap();
    read_until(&mut s, b"again").expect("the shell's input is still open");
    s.write_all(b"\x10\x11").unwrap();
    assert_eq!(read_until(&mut s, b"never"), None);
    assert!(still_running(&dy, "sh1"));
    // Keys that are not a sequence: dockerd's 400, before the upgrade.
    let (head, mut s) = raw_attach(&svc, "sh1", "&detachKeys=ctrl-1");
    assert!(head.starts_with("HTTP/1.1 400 "), "{head}");
    read_until(&mut s, b"Invalid detach keys (ctrl-1) provided").expect("dockerd's words");
    // Without a TTY the keys are data, as in dockerd: `cat` echoes them.
    dy.ok(&["run", "-di", "--name", "cat1", "busybox", "cat"]);
    dy.wait_for("cat1", "{{.State.Status}}", "running");
    let (_, mut s) = raw_attach(&svc, "cat1", "&detachKeys=ctrl-x,x");
    s.write_all(b"a\x18xb\n").unwrap();
    read_until(&mut s, b"a\x18xb\n").expect("the keys, echoed as data");
    drop(s);
    // Each detach is an event, as dockerd's.
    let events = dy.ok(&[
        "events",
        "--since",
        &start,
        "--until",
        "0s",
        "--filter",
        "event=detach",
        "--format",
        "{{.Actor.Attributes.name}} {{.Action}}",
    ]);
    assert_eq!(events, "sh1 detach\nsh1 detach\n");
    // The clients: dockyard -H and docker's CLI, on a terminal.
    let cfg = tempfile::tempdir().unwrap();
    let h = format!("{} -H {}", bin("dockyard").display(), url(&svc));
    let d = format!("{DOCKER} -H {}", url(&svc));
    let parent = format!("--cgroup-parent={}", dy.parent);
    for (cmd, keys, said) in [
        (
            format!("{h} attach --detach-keys=ctrl-x,x sh1"),
            "\\030x",
            "read escape sequence\r\nrc=1",
        ),
        (
            format!("{d} attach --detach-keys=ctrl-x,x sh1"),
            "\\030x",
            "read escape sequence\r\nrc=1",
        ),
        (
            format!("{h} run -it {parent} --name sh2 busybox sh"),
            "\\020\\021",
            "rc=0",
        ),
        (
            format!("{d} run -it {parent} --name sh3 busybox sh"),
            "\\020\\021",
            "rc=0",
        ),
    ] {
        let shown = under_terminal(&cmd, keys, cfg.path());
        assert!(shown.contains("hi\r\n"), "{cmd}: {shown:?}");
        assert!(shown.trim_end().ends_with(said), "{cmd}: {shown:?}");
    }
    for name in ["sh1", "sh2", "sh3"] {
        assert!(still_running(&dy, name), "{name}");
    }
    client_ok(&svc, &dy, &["rm", "-f", "sh1", "sh2", "sh3", "cat1"]);
}

/// One request with a JSON body, its connection closed after: the
/// status line and the answer's JSON (null if none).
fn raw_json(svc: &Service, method: &str, path: &str, body: &str) -> (String, serde_json::Value) {
    let answer = svc.raw(&format!(
        "{method} {path} HTTP/1.1\r\nHost: dockyard\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head.lines().next().unwrap_or_default().to_string();
    (status, serde_json::from_str(body).unwrap_or_default())
}

#[test]
fn api_client_mode_and_the_service_detach_execs_on_the_detach_keys() {
    let dy = Dy::new();
    let svc = Service::start(&dy);
    dy.ok(&["run", "-d", "--name", "box", "busybox", "sleep", "300"]);
    dy.wait_for("box", "{{.State.Status}}", "running");
    // `DetachKeys` of the instance: its stream ends on them, the exec's
    // shell goes on (the instance still runs).
    let create = |keys: &str| {
        let body = format!(
            r#"{{"Cmd":["sh"],"Tty":true,"AttachStdin":true,"AttachStdout":true,"AttachStderr":true,"DetachKeys":"{keys}"}}"#
        );
        raw_json(&svc, "POST", "/v1.50/containers/box/exec", &body)
    };
    let (status, created) = create("ctrl-x,x");
    assert!(status.contains(" 201 "), "{status}");
    let exec = created["Id"].as_str().unwrap().to_string();
    let mut s = UnixStream::connect(&svc.sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let start = r#"{"Detach":false,"Tty":true}"#;
    write!(
        s,
        "POST /v1.50/exec/{exec}/start HTTP/1.1\r\nHost: dockyard\r\nConnection: Upgrade\r\n\
         Upgrade: tcp\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{start}",
        start.len()
    )
    .unwrap();
    read_until(&mut s, b"101 UPGRADED").expect("the upgrade");
    s.write_all(b"echo ex''ec\n").unwrap();
    read_until(&mut s, b"exec\r\n").expect("the shell's answer");
    s.write_all(b"\x18x").unwrap();
    assert_eq!(
        read_until(&mut s, b"never"),
        None,
        "the exec's stream did not end on the detach keys"
    );
    let (_, inspect) = raw_json(&svc, "GET", &format!("/v1.50/exec/{exec}/json"), "");
    assert_eq!(inspect["Running"], true, "{inspect}");
    let pid = inspect["Pid"].as_u64().unwrap();
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    let events = dy.ok(&[
        "events",
        "--since",
        "5m",
        "--until",
        "0s",
        "--filter",
        "event=exec_detach",
    ]);
    assert_eq!(events.lines().count(), 1, "{events}");
    // Keys that are not a sequence: refused at the create.
    let (status, answer) = create("ctrl-1");
    assert!(status.contains(" 400 "), "{status}");
    assert_eq!(answer["message"], "Invalid escape keys (ctrl-1) provided");
    // docker's CLI and dockyard -H, on a terminal: ctrl-p ctrl-q leaves,
    // "read escape sequence" and 1, the exec's shell goes on.
    let cfg = tempfile::tempdir().unwrap();
    let h = format!("{} -H {}", bin("dockyard").display(), url(&svc));
    let d = format!("{DOCKER} -H {}", url(&svc));
    for cli in [h, d] {
        let shown = under_terminal(&format!("{cli} exec -it box sh"), "\\020\\021", cfg.path());
        assert!(shown.contains("hi\r\n"), "{cli}: {shown:?}");
        assert!(
            shown.trim_end().ends_with("read escape sequence\r\nrc=1"),
            "{cli}: {shown:?}"
        );
        // And --detach-keys, sent on and looked for by the client too.
        let cmd = format!("{cli} exec -it --detach-keys ctrl-x box sh");
        let shown = under_terminal(&cmd, "\\030", cfg.path());
        assert!(
            shown.contains("hi\r\n") && shown.trim_end().ends_with("read escape sequence\r\nrc=1"),
            "{cli}: {shown:?}"
        );
    }
    let top = client_ok(&svc, &dy, &["top", "box"]);
    // (UID PID PPID C STIME TTY TIME, then the command.)
    let shells = top
        .lines()
        .filter(|l| l.split_whitespace().skip(7).eq(["sh"]))
        .count();
    assert_eq!(shells, 5, "the five exec shells go on: {top}");
    client_ok(&svc, &dy, &["rm", "-f", "box"]);
}
