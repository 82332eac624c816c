//! Escapes through what the caller hands a container: its terminal, its
//! open files, its command line. A person runs `dockyard run`, `exec` or
//! `build` at a terminal, or with output redirected to a file; the
//! container must reach neither.
//!
//! The terminal attack (bubblewrap CVE-2017-5226): a process whose session's
//! controlling terminal is the person's may push bytes into that terminal's
//! input with `ioctl(TIOCSTI)`, and the person's shell reads them as typed
//! once the container has exited. Each test here runs dockyard on the slave
//! of a real pseudo-terminal that is the controlling terminal of its session
//! (setsid + TIOCSCTTY, as a login shell's is), runs a tiny static program
//! in the container that tries TIOCSTI on fds 0, 1, 2 and on `/dev/tty`, and
//! then asks the kernel how many bytes wait in the terminal's input queue
//! (FIONREAD): none may. The same program run directly on that terminal
//! shows that the check can fail.

use std::fs::{self, File};
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use dockyard_e2e::dockyard::{text, Dockyard as Dy};

/// Assemble the attacker, `tests/fixtures/tiocsti.s`, into `dir` as
/// `tiocsti`: a static x86-64 program with no libc. It prints `tried\n`,
/// pushes `PWNED\n` into the terminal with TIOCSTI through fd 0, 1 and 2 and
/// through `/dev/tty`, and exits with a bit for each success: 1, 2, 4 (fds 0,
/// 1, 2), 8 (`/dev/tty`), and 16 when `/dev/tty` could be opened at all.
fn tiocsti_program(dir: &Path) -> PathBuf {
    let source = include_str!("../fixtures/tiocsti.s");
    let (s, o) = (dir.join("tiocsti.s"), dir.join("tiocsti.o"));
    let exe = dir.join("tiocsti");
    fs::write(&s, source).unwrap();
    for (tool, args) in [
        ("as", vec![s.as_os_str(), "-o".as_ref(), o.as_os_str()]),
        (
            "ld",
            vec![
                "-static".as_ref(),
                "-o".as_ref(),
                exe.as_os_str(),
                o.as_os_str(),
            ],
        ),
    ] {
        let out = Command::new(tool)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{tool} (binutils, from scripts/setup): {e}"));
        assert!(out.status.success(), "{tool}: {}", text(&out.stderr));
    }
    exe
}

/// A pseudo-terminal whose slave will be the controlling terminal of the
/// command started on it, in raw mode so that every byte pushed into its
/// input stays countable (no line editing, no echo).
struct Terminal {
    master: OwnedFd,
    slave: OwnedFd,
}

impl Terminal {
    fn new() -> Terminal {
        let pty = nix::pty::openpty(None, None).unwrap();
        let mut t = nix::sys::termios::tcgetattr(&pty.slave).unwrap();
        nix::sys::termios::cfmakeraw(&mut t);
        nix::sys::termios::tcsetattr(&pty.slave, nix::sys::termios::SetArg::TCSANOW, &t).unwrap();
        Terminal {
            master: pty.master,
            slave: pty.slave,
        }
    }

    /// Run `cmd` as a login shell runs a command: in a session whose
    /// controlling terminal is our slave, which is also its stdin, stdout
    /// and stderr. Returns its exit code and everything it printed.
    fn run(&self, mut cmd: Command) -> (Option<i32>, String) {
        let slave = || Stdio::from(self.slave.try_clone().unwrap());
        cmd.stdin(slave()).stdout(slave()).stderr(slave());
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut reader = File::from(self.master.try_clone().unwrap());
        // Drain the master as it fills (a pty's buffer is small). The
        // reader ends when the test drops the terminal (EIO); what the
        // command printed is taken after it exits, by a short pause.
        let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        let status = cmd.status().expect("starting the command on the terminal");
        std::thread::sleep(std::time::Duration::from_millis(200));
        let seen: Vec<u8> = rx.try_iter().flatten().collect();
        (status.code(), text(&seen))
    }

    /// How many bytes wait in the terminal's input, as if typed (FIONREAD).
    fn queued(&self) -> i32 {
        let mut n: libc::c_int = 0;
        // SAFETY: FIONREAD writes one int.
        assert_eq!(
            unsafe { libc::ioctl(self.slave.as_raw_fd(), libc::FIONREAD, &mut n) },
            0
        );
        n
    }
}

/// The program on the host, straight on the terminal: every way works. This
/// is what the container tests below must not see.
#[test]
fn escapes_tiocsti_works_on_the_callers_own_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let exe = tiocsti_program(dir.path());
    let term = Terminal::new();
    let (code, out) = term.run(Command::new(&exe));
    assert_eq!(code, Some(1 | 2 | 4 | 8 | 16), "{out}");
    assert_eq!(term.queued(), 4 * "PWNED\n".len() as i32);
}

/// `dockyard ARGS` with the test's data root, on `term`.
fn on_terminal(dy: &Dy, term: &Terminal, args: &[&str]) -> (Option<i32>, String) {
    term.run(dy.command(args))
}

#[test]
fn escapes_run_and_exec_cannot_reach_the_callers_terminal() {
    let dy = Dy::new();
    let dir = tempfile::tempdir().unwrap();
    tiocsti_program(dir.path());
    let volume = format!("{}:/t:ro", dir.path().display());
    dy.ok(&[
        "run", "-d", "--name", "box", "-v", &volume, "busybox", "sleep", "1000",
    ]);
    for args in [
        vec!["run", "--rm", "-v", &volume, "busybox", "/t/tiocsti"],
        vec!["run", "--rm", "-i", "-v", &volume, "busybox", "/t/tiocsti"],
        vec![
            "run",
            "--rm",
            "--init",
            "-v",
            &volume,
            "busybox",
            "/t/tiocsti",
        ],
        vec!["exec", "box", "/t/tiocsti"],
        vec!["exec", "-i", "box", "/t/tiocsti"],
    ] {
        let term = Terminal::new();
        let (code, out) = on_terminal(&dy, &term, &args);
        // It ran, and printed through the relay, but no way worked: not
        // even /dev/tty opens, in a session with no terminal.
        assert!(out.contains("tried"), "{args:?}: {out}");
        assert_eq!(code, Some(0), "{args:?}: {out}");
        assert_eq!(term.queued(), 0, "{args:?}: bytes pushed into the terminal");
    }
}

#[test]
fn escapes_a_build_step_cannot_reach_the_callers_terminal() {
    let dy = Dy::new();
    let ctx = tempfile::tempdir().unwrap();
    tiocsti_program(ctx.path());
    fs::write(
        ctx.path().join("Dockerfile"),
        "FROM busybox\nCOPY tiocsti /tiocsti\nRUN /tiocsti; echo \"tiocsti exit $?\"\n",
    )
    .unwrap();
    let term = Terminal::new();
    let ctx = ctx.path().to_str().unwrap();
    let (code, out) = on_terminal(&dy, &term, &["build", "-t", "escape", ctx]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("tiocsti exit 0"), "{out}");
    assert_eq!(term.queued(), 0, "bytes pushed into the terminal: {out}");
}

/// The caller redirects output to a file (`dockyard exec box cmd >> log`).
/// The container's fd 1 must be a pipe, not that file, or it could reopen
/// `/proc/self/fd/1` and read or truncate the host's file.
#[test]
fn escapes_stdio_is_a_pipe_never_the_callers_file() {
    let dy = Dy::new();
    dy.ok(&["run", "-d", "--name", "box", "busybox", "sleep", "1000"]);
    let ctx = tempfile::tempdir().unwrap();
    let script = ": > /proc/self/fd/1; : > /proc/self/fd/2; readlink /proc/self/fd/1; readlink /proc/self/fd/2";
    fs::write(
        ctx.path().join("Dockerfile"),
        format!("FROM busybox\nRUN {script}\n"),
    )
    .unwrap();
    let ctx = ctx.path().to_str().unwrap();
    for args in [
        vec!["exec", "box", "sh", "-c", script],
        vec!["exec", "-i", "box", "sh", "-c", script],
        vec!["run", "--rm", "busybox", "sh", "-c", script],
        vec!["build", "-t", "trunc", ctx],
    ] {
        let log = tempfile::NamedTempFile::new().unwrap();
        fs::write(log.path(), "SECRET\n").unwrap();
        let append = || {
            fs::OpenOptions::new()
                .append(true)
                .open(log.path())
                .unwrap()
        };
        let status = dy
            .command(&args)
            .stdout(append())
            .stderr(append())
            .status()
            .unwrap();
        let written = fs::read_to_string(log.path()).unwrap();
        assert!(status.success(), "{args:?}: {written}");
        assert!(
            written.starts_with("SECRET\n"),
            "{args:?}: the host's file was truncated: {written:?}"
        );
        assert_eq!(
            written.matches("pipe:[").count(),
            2,
            "{args:?}: fd 1 and 2 are not pipes: {written:?}"
        );
    }
}

/// What the pipes must still do: stdin to EOF, stdout and stderr apart,
/// the exit code, and a session of its own (the command leads it).
#[test]
fn escapes_exec_through_pipes_keeps_stdin_streams_and_codes() {
    let dy = Dy::new();
    dy.ok(&["run", "-d", "--name", "box", "busybox", "sleep", "1000"]);
    let mut child = dy
        .command(&["exec", "-i", "box", "sh", "-c", "cat; echo err >&2; exit 3"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"through the pipe\n").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(text(&out.stdout), "through the pipe\n");
    assert_eq!(text(&out.stderr), "err\n");
    // Its own session, with no terminal: /proc/self/stat's session (field 6)
    // is its own PID, and its tty_nr (field 7) is 0.
    let stat = dy.ok(&["exec", "box", "cat", "/proc/self/stat"]);
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let pid = stat.split_whitespace().next().unwrap();
    assert_eq!(fields[3], pid, "{stat}");
    assert_eq!(fields[4], "0", "{stat}");
    // exec -d returns at once, even with its output piped to a reader that
    // waits for EOF: nothing of the detached relay holds our stdout.
    let start = std::time::Instant::now();
    let out = dy.run(&["exec", "-d", "box", "sleep", "30"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(start.elapsed() < std::time::Duration::from_secs(10));
}

/// `/proc/PID/cmdline` of the container's processes shows no host command
/// line, data root path included: `--init`'s PID 1 is a fork of dockyard
/// and stays so.
#[test]
fn escapes_no_host_command_line_in_the_container() {
    let dy = Dy::new();
    let root = dy.root_path().to_string_lossy().into_owned();
    dy.ok(&[
        "run", "-d", "--init", "--name", "box", "busybox", "sleep", "1000",
    ]);
    let cmdline = dy.ok(&["exec", "box", "cat", "/proc/1/cmdline"]);
    assert!(!cmdline.contains(&root), "{cmdline:?}");
    assert!(cmdline.starts_with("dockyard-init\0"), "{cmdline:?}");
    let comm = dy.ok(&["exec", "box", "cat", "/proc/1/comm"]);
    assert_eq!(comm, "dockyard-init\n");
    // Every process of the container, the exec'd ones included.
    let all = dy.ok(&[
        "exec",
        "box",
        "sh",
        "-c",
        "cat /proc/[0-9]*/cmdline | tr '\\0' ' '",
    ]);
    assert!(!all.contains(&root), "{all:?}");
    assert!(!all.contains("--root"), "{all:?}");
}

/// `dockyard ARGS`, which must end within 20 seconds: its output.
fn within_20s(dy: &Dy, args: &[&str]) -> std::process::Output {
    let mut child = dy
        .command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("dockyard {args:?} hung");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// The container's `/etc/passwd` becomes a symlink to `/dev/zero`, then a
/// FIFO: `exec -u` must refuse it at once, not read forever or wait for a
/// writer. And a uid that passwd does not list runs with gid 0, and group
/// 0, as docker's.
#[test]
fn escapes_exec_u_reads_passwd_inside_the_container_and_not_forever() {
    let dy = Dy::new();
    dy.ok(&["run", "-d", "--name", "box", "busybox", "sleep", "1000"]);
    let status = dy.ok(&["exec", "-u", "4242", "box", "cat", "/proc/self/status"]);
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .unwrap()
    };
    assert_eq!(field("Uid:"), "4242 4242 4242 4242");
    assert_eq!(field("Gid:"), "0 0 0 0");
    assert_eq!(field("Groups:"), "0");
    for (plant, what) in [
        ("ln -sf /dev/zero /etc/passwd", "character device"),
        ("rm /etc/passwd && mkfifo /etc/passwd", "FIFO"),
    ] {
        dy.ok(&["exec", "box", "sh", "-c", plant]);
        for user in ["nobody", "1000"] {
            let out = within_20s(&dy, &["exec", "-u", user, "box", "id"]);
            assert!(!out.status.success(), "{plant}: {user}");
            let err = text(&out.stderr);
            assert!(
                err.contains(what) && err.contains("/etc/passwd"),
                "{plant}: {err}"
            );
        }
    }
}

/// An image whose USER must be looked up in a passwd that is a FIFO: `run`
/// fails promptly with the reason, and leaves no container running.
#[test]
fn escapes_an_image_with_a_fifo_passwd_fails_promptly() {
    let dy = Dy::new();
    let ctx = tempfile::tempdir().unwrap();
    fs::write(
        ctx.path().join("Dockerfile"),
        "FROM busybox\nRUN rm /etc/passwd && mkfifo /etc/passwd\nUSER app\n",
    )
    .unwrap();
    dy.ok(&["build", "-t", "fifo", ctx.path().to_str().unwrap()]);
    let out = within_20s(&dy, &["run", "--name", "ff", "fifo", "id"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("/etc/passwd") && err.contains("FIFO"), "{err}");
    assert_eq!(dy.ok(&["ps", "-q"]), "");
}

/// Settings that used to fail only later (or never) are refused when the
/// container is created, with dockerd's words and exit 125, and leave
/// nothing behind.
#[test]
fn escapes_bad_settings_are_refused_before_anything_is_created() {
    let dy = Dy::new();
    let ncpus = std::thread::available_parallelism().unwrap().get();
    let range = format!(
        "Range of CPUs is from 0.01 to {ncpus}.00, as there are only {ncpus} CPUs available"
    );
    let too_many = (ncpus + 1).to_string();
    for (args, want) in [
        (
            vec!["--cpus", "NaN"],
            "failed to parse NaN as a rational number".to_string(),
        ),
        (
            vec!["--cpus", "inf"],
            "failed to parse inf as a rational number".to_string(),
        ),
        (vec!["--cpus=-1"], range.clone()),
        (vec!["--cpus", too_many.as_str()], range.clone()),
        (
            vec!["-v", "/tmp:/"],
            "invalid volume specification: '/tmp:/': invalid mount config for type \"bind\": \
             invalid specification: destination can't be '/'"
                .to_string(),
        ),
        (
            vec!["-v", ":/x"],
            "invalid volume specification: ':/x'".to_string(),
        ),
        (
            vec!["--health-cmd", "true", "--health-interval", "1ns"],
            "Interval in Healthcheck cannot be less than 1ms".to_string(),
        ),
        (
            vec!["--health-cmd", "true", "--health-timeout", "500us"],
            "Timeout in Healthcheck cannot be less than 1ms".to_string(),
        ),
    ] {
        let mut run = vec!["run", "--rm"];
        run.extend_from_slice(&args);
        run.extend_from_slice(&["busybox", "true"]);
        let err = dy.fails(125, &run);
        assert!(err.contains(&want), "{args:?}: {err}");
        let mut create = vec!["create"];
        create.extend_from_slice(&args);
        create.extend_from_slice(&["busybox", "true"]);
        let err = dy.fails(125, &create);
        assert!(err.contains(&want), "{args:?}: {err}");
    }
    // --cgroup-parent with `..`: refused by create, so `--rm` has nothing to
    // remove and no record is left for rm or the prunes to trip on.
    // (Without the test's own parent, which the harness would add.)
    let mut bad = Command::new(dockyard_e2e::fixtures::bin("dockyard"));
    bad.arg("--root").arg(dy.root.path());
    bad.args([
        "run",
        "--rm",
        "--cgroup-parent",
        "a/../b",
        "busybox",
        "true",
    ]);
    let out = bad.stdin(Stdio::null()).output().unwrap();
    assert_eq!(out.status.code(), Some(125), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("--cgroup-parent"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(dy.ok(&["ps", "-aq"]), "");
    assert!(dockyard_e2e::dockyard::container_dirs(&dy.root_path()).is_empty());
}

/// A record written before create checked the cgroup parent (here: edited
/// on disk) is still removable, by `rm -f` and by the prune.
#[test]
fn escapes_a_record_with_a_bad_cgroup_parent_is_still_removable() {
    let dy = Dy::new();
    for name in ["old1", "old2"] {
        let id = dy.ok(&["create", "--name", name, "busybox", "true"]);
        let state = dy
            .root_path()
            .join("containers")
            .join(id.trim())
            .join("state.json");
        let mut record: serde_json::Value =
            serde_json::from_slice(&fs::read(&state).unwrap()).unwrap();
        record["config"]["cgroup_parent"] = "a/../b".into();
        fs::write(&state, serde_json::to_vec(&record).unwrap()).unwrap();
    }
    dy.ok(&["rm", "-f", "old1"]);
    dy.ok(&["container", "prune", "-f"]);
    assert_eq!(dy.ok(&["ps", "-aq"]), "");
}

/// An image whose STOPSIGNAL names no signal is stopped with SIGTERM, as
/// docker does, instead of failing `stop` forever.
#[test]
fn escapes_an_image_stop_signal_that_names_no_signal_falls_back_to_sigterm() {
    let dy = Dy::new();
    // The builder and commit refuse such a STOPSIGNAL, as docker's do; an
    // image from elsewhere can still carry one: busybox's OCI layout, its
    // config edited and every digest above it recomputed.
    let oci = tempfile::tempdir().unwrap();
    let from = dockyard_e2e::fixtures::workspace_root().join("images/busybox/oci");
    let blobs = oci.path().join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    for e in fs::read_dir(from.join("blobs/sha256")).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), blobs.join(e.file_name())).unwrap();
    }
    fs::copy(from.join("oci-layout"), oci.path().join("oci-layout")).unwrap();
    let put = |v: &serde_json::Value| -> (String, usize) {
        use sha2::Digest;
        let bytes = serde_json::to_vec(v).unwrap();
        let hex = hex::encode(sha2::Sha256::digest(&bytes));
        fs::write(blobs.join(&hex), &bytes).unwrap();
        (format!("sha256:{hex}"), bytes.len())
    };
    let read = |digest: &str| -> serde_json::Value {
        serde_json::from_slice(&fs::read(blobs.join(&digest[7..])).unwrap()).unwrap()
    };
    let mut index: serde_json::Value =
        serde_json::from_slice(&fs::read(from.join("index.json")).unwrap()).unwrap();
    let mut manifest = read(index["manifests"][0]["digest"].as_str().unwrap());
    let mut config = read(manifest["config"]["digest"].as_str().unwrap());
    config["config"]["StopSignal"] = "SIGFOO".into();
    let (digest, size) = put(&config);
    manifest["config"]["digest"] = digest.into();
    manifest["config"]["size"] = size.into();
    let (digest, size) = put(&manifest);
    let entry = &mut index["manifests"][0];
    entry["digest"] = digest.into();
    entry["size"] = size.into();
    entry["annotations"]["io.dockyard.image.name"] = "foo:latest".into();
    fs::write(
        oci.path().join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
    dy.ok(&["load", "-i", oci.path().to_str().unwrap()]);
    let script = "trap 'exit 7' TERM; while :; do sleep 0.1; done";
    dy.ok(&["run", "-d", "--name", "sig", "foo", "sh", "-c", script]);
    dy.ok(&["stop", "sig"]);
    assert_eq!(dy.inspect("sig", "{{.State.ExitCode}}"), "7");
}

/// Signals sent to `dockyard exec` reach the command, through our pump and
/// the relay, once each: TERM, INT, HUP and QUIT (the relay must not die of
/// a SIGQUIT it was only to pass on).
#[test]
fn escapes_exec_through_pipes_passes_signals_on() {
    let dy = Dy::new();
    dy.ok(&["run", "-d", "--name", "box", "busybox", "sleep", "1000"]);
    for (signal, name) in [(libc::SIGTERM, "TERM"), (libc::SIGQUIT, "QUIT")] {
        let script = format!(
            "trap 'echo got {name}; exit 9' {name}; echo ready; while :; do sleep 0.1; done"
        );
        let mut child = dy
            .command(&["exec", "box", "sh", "-c", &script])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut ready = [0u8; 6];
        stdout.read_exact(&mut ready).unwrap();
        assert_eq!(&ready, b"ready\n");
        // SAFETY: a signal to our own child.
        unsafe { libc::kill(child.id() as i32, signal) };
        let mut rest = String::new();
        stdout.read_to_string(&mut rest).unwrap();
        assert_eq!(child.wait().unwrap().code(), Some(9), "{name}: {rest}");
        assert_eq!(rest, format!("got {name}\n"));
    }
}
