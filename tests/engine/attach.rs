//! Terminals and attaching: `run -it` on a pseudo-terminal (as `script(1)`
//! gives one), `attach` with and without a terminal, live output to several
//! clients, stdin, signal proxying and the detach keys.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dockyard_e2e::dockyard::{text, Dockyard as Dy};
use dockyard_e2e::fixtures::bin;

/// `dockyard ARGS` on the slave of a new pty, as a person at a terminal runs
/// it: what it prints is read as it comes (a pty's buffer is small, and a
/// full one would stall the session), and input is typed on the master.
struct Terminal {
    child: std::process::Child,
    master: std::fs::File,
    rx: std::sync::mpsc::Receiver<Vec<u8>>,
    /// Everything printed so far.
    seen: String,
    args: Vec<String>,
}

impl Terminal {
    fn start(dy: &Dy, args: &[&str], rows: u16, cols: u16) -> Terminal {
        use std::io::Read;
        let size = nix::pty::Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pty = nix::pty::openpty(Some(&size), None).unwrap();
        let slave = pty.slave;
        let child = Command::new(bin("dockyard"))
            .args(["--root", dy.root.path().to_str().unwrap()])
            .args(args)
            .stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave))
            .spawn()
            .unwrap();
        let master = std::fs::File::from(pty.master);
        // EIO once the session and every copy of the slave are gone.
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
        Terminal {
            child,
            master,
            rx,
            seen: String::new(),
            args: args.iter().map(|a| a.to_string()).collect(),
        }
    }

    /// Wait (20 s at most) until the output so far contains `text`.
    fn wait_for(&mut self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.seen.contains(text) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(b) => self.seen.push_str(&String::from_utf8_lossy(&b)),
                Err(_) => {
                    let _ = self.child.kill();
                    panic!("{:?}: waited for {text:?}, saw {:?}", self.args, self.seen);
                }
            }
        }
    }

    /// Whether `text` shows within `wait` (no panic when it does not).
    fn saw_within(&mut self, text: &str, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        while !self.seen.contains(text) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(b) => self.seen.push_str(&String::from_utf8_lossy(&b)),
                Err(_) => return false,
            }
        }
        true
    }

    fn type_in(&mut self, input: &[u8]) {
        use std::io::Write;
        self.master.write_all(input).unwrap();
    }

    /// Wait for the command to end; its exit code and all it printed.
    fn finish(mut self) -> (i32, String) {
        let status = self.child.wait().unwrap();
        drop(self.master);
        // What is left to read, without waiting on a copy of the slave that
        // something else might hold.
        while let Ok(b) = self.rx.recv_timeout(Duration::from_millis(500)) {
            self.seen.push_str(&String::from_utf8_lossy(&b));
        }
        (status.code().unwrap_or(-1), self.seen)
    }
}

impl Terminal {
    /// [`Terminal::finish`], but the command must end by itself within 20 s:
    /// one that keeps the keys for itself would wait forever.
    fn finish_soon(mut self) -> (i32, String) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                while let Ok(b) = self.rx.recv_timeout(Duration::from_millis(200)) {
                    self.seen.push_str(&String::from_utf8_lossy(&b));
                }
                let tail: String = self.seen.chars().rev().take(600).collect();
                let tail: String = tail.chars().rev().collect();
                panic!("{:?} did not end; it printed, last: {tail:?}", self.args);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.finish()
    }
}

/// Run `dockyard ARGS` on a new pty of `rows` x `cols`; for each step, wait
/// until the output so far contains its text, then type its bytes (as a
/// person would: after the prompt, once the client's terminal is in raw
/// mode). Return the exit code and everything it printed.
fn on_a_terminal(
    dy: &Dy,
    args: &[&str],
    rows: u16,
    cols: u16,
    steps: &[(&str, &[u8])],
) -> (i32, String) {
    let mut t = Terminal::start(dy, args, rows, cols);
    for (text, input) in steps {
        t.wait_for(text);
        t.type_in(input);
    }
    t.finish()
}

#[test]
fn run_it_gives_the_container_a_terminal() {
    let dy = Dy::new();
    // -t alone: the container's stdio is a terminal (its line discipline
    // turns "\n" into "\r\n", as docker's does), a pty of the container's
    // own devpts: ttyname(3) finds it, and /dev/pts holds nothing else.
    let out = dy.ok(&[
        "run",
        "--rm",
        "-t",
        "busybox",
        "sh",
        "-c",
        "test -t 0 && test -t 1 && echo tty; tty; ls /dev/pts; ls -ln /dev/pts/0; \
         stat -c %d /dev/pts",
    ]);
    let lines: Vec<&str> = out.lines().map(|l| l.trim_end_matches('\r')).collect();
    assert_eq!(lines[..3], ["tty", "/dev/pts/0", "0     ptmx"], "{out}");
    // The slave: root's (the container's first process opened it), group
    // tty (5), mode 0620 as devpts' mode= gave it; major 136 (a pty slave).
    let ls: Vec<&str> = lines[3].split_whitespace().collect();
    assert_eq!(ls[..6], ["crw--w----", "1", "0", "5", "136,", "0"], "{out}");
    // Another devpts instance than the host's (newinstance): another device.
    use std::os::unix::fs::MetadataExt;
    let host_pts = std::fs::metadata("/dev/pts").unwrap().dev();
    assert_ne!(lines[4], host_pts.to_string(), "{out}");

    // -u: the terminal belongs to the user, as runc does it.
    let out = dy.ok(&[
        "run",
        "--rm",
        "-t",
        "-u",
        "1000",
        "busybox",
        "ls",
        "-ln",
        "/dev/pts/0",
    ]);
    let ls: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(ls[..4], ["crw--w----", "1", "1000", "5"], "{out}");

    // -it from a terminal: our keys reach the shell, its exit code comes
    // back, and the pty has our terminal's size.
    let parent = format!("--cgroup-parent={}", dy.parent);
    let (code, seen) = on_a_terminal(
        &dy,
        &["run", "--rm", "-it", &parent, "busybox", "sh"],
        33,
        101,
        &[("# ", b"echo \"in $(hostname)\"; tty; stty size; exit 3\n")],
    );
    assert_eq!(code, 3, "{seen}");
    assert!(seen.contains("in "), "{seen}");
    assert!(seen.contains("/dev/pts/0\r\n33 101\r\n"), "{seen}");

    // As in docker, -it is a detached container and an attached client:
    // Ctrl-P Ctrl-Q leaves it running (silently, exit 0, as docker run).
    let (code, seen) = on_a_terminal(
        &dy,
        &["run", "-it", "--name", "leaver", &parent, "busybox", "sh"],
        24,
        80,
        &[("# ", b"\x10\x11")],
    );
    assert_eq!(code, 0, "{seen}");
    assert!(!seen.contains("read escape sequence"), "{seen}");
    assert_eq!(dy.inspect("leaver", "{{.State.Status}}"), "running");
    dy.ok(&["stop", "-t", "1", "leaver"]);
    // start -ai: the same path, with the container's exit code; its own
    // --detach-keys (ctrl-x here: Ctrl-P is only a key).
    let (code, seen) = on_a_terminal(
        &dy,
        &["start", "-ai", "--detach-keys=ctrl-x", "leaver"],
        24,
        80,
        &[("# ", b"\x10exit 6\n")],
    );
    assert_eq!(code, 6, "{seen}");
    assert_eq!(dy.inspect("leaver", "{{.State.ExitCode}}"), "6");

    // exec -it: a pty from the same devpts (the container's first process
    // holds /dev/pts/0), sized like our terminal.
    dy.ok(&["run", "-dt", "--name", "termbox", "busybox", "sh"]);
    dy.wait_for("termbox", "{{.State.Status}}", "running");
    let (code, seen) = on_a_terminal(
        &dy,
        &["exec", "-it", "termbox", "sh"],
        40,
        120,
        &[("# ", b"tty; stty size; ls /dev/pts; exit 4\n")],
    );
    assert_eq!(code, 4, "{seen}");
    assert!(
        seen.contains("/dev/pts/1\r\n40 120\r\n0     1     ptmx\r\n"),
        "{seen}"
    );

    // Bad detach keys: refused before anything is created.
    let before = dy.ok(&["ps", "-aq"]);
    let out = dy.run(&["run", "-t", "--detach-keys=ctrl-", "busybox", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        text(&out.stderr).contains("Unknown character: 'ctrl-'"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(dy.ok(&["ps", "-aq"]), before);

    // -it without a terminal is refused, as docker's client refuses it:
    // its words alone, exit 1 (the docker CLI 28.2.2 prints the same).
    let out = dy.run(&["run", "--rm", "-it", "busybox", "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stderr), "the input device is not a TTY\n");
}

/// `dockyard attach NAME` as a child, its stdio piped.
fn attach_child(dy: &Dy, args: &[&str]) -> std::process::Child {
    Command::new(bin("dockyard"))
        .args(["--root", dy.root.path().to_str().unwrap(), "attach"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn attach_streams_live_output_to_several_clients() {
    use std::io::{BufRead, BufReader};
    let dy = Dy::new();
    // Prints once a second until /tmp/stop exists, then exits 7.
    dy.ok(&[
        "run",
        "-d",
        "--name",
        "ticker",
        "busybox",
        "sh",
        "-c",
        "i=0; until [ -e /tmp/stop ]; do echo tick $i; echo err $i >&2; i=$((i+1)); \
         sleep 0.2; done; echo bye; exit 7",
    ]);
    dy.wait_for("ticker", "{{.State.Status}}", "running");
    // The monitor's socket: in the container's directory, root's only.
    let id = dy.inspect("ticker", "{{.Id}}");
    let sock = dy
        .root_path()
        .join("containers")
        .join(&id)
        .join("attach.sock");
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let meta = std::fs::metadata(&sock).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);

    // Two clients at once: each sees output that is new when it attached,
    // stdout and stderr apart.
    let mut clients: Vec<_> = (0..2)
        .map(|_| attach_child(&dy, &["--no-stdin", "ticker"]))
        .collect();
    let mut firsts = Vec::new();
    for c in &mut clients {
        let mut out = BufReader::new(c.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert!(line.starts_with("tick "), "{line:?}");
        firsts.push((out, line));
    }
    dy.ok(&["exec", "ticker", "touch", "/tmp/stop"]);
    for (c, (mut out, first)) in clients.iter_mut().zip(firsts) {
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
        assert!(rest.ends_with("bye\n"), "{first}{rest}");
        let mut err = String::new();
        std::io::Read::read_to_string(c.stderr.as_mut().unwrap(), &mut err).unwrap();
        assert!(err.lines().all(|l| l.starts_with("err ")), "{err}");
        // The container's exit code is attach's.
        assert_eq!(c.wait().unwrap().code(), Some(7));
    }
    // The socket went with the container's process.
    assert!(!sock.exists());

    // As docker: a stopped container cannot be attached to.
    let out = dy.run(&["attach", "ticker"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("You cannot attach to a stopped container, start it first"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn attach_without_a_terminal_sends_stdin_and_proxies_signals() {
    use std::io::{BufRead, BufReader, Write};
    let dy = Dy::new();
    // -di: the container's stdin is a pipe the monitor holds open.
    dy.ok(&["run", "-di", "--name", "reader", "busybox", "sh"]);
    dy.wait_for("reader", "{{.State.Status}}", "running");
    let mut c = attach_child(&dy, &["reader"]);
    let mut stdin = c.stdin.take().unwrap();
    let mut out = BufReader::new(c.stdout.take().unwrap());
    stdin.write_all(b"echo typed-$((6*7))\n").unwrap();
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "typed-42\n");
    stdin.write_all(b"exit 5\n").unwrap();
    assert_eq!(c.wait().unwrap().code(), Some(5));

    // --sig-proxy (the default): Ctrl-C on attach is SIGINT for the
    // container's process, which traps it here.
    dy.ok(&[
        "run",
        "-d",
        "--name",
        "trapper",
        "busybox",
        "sh",
        "-c",
        "trap 'echo got INT; exit 9' INT; echo ready; while :; do echo tick; sleep 0.1; done",
    ]);
    // The trap is set once "ready" is in the log.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !dy.ok(&["logs", "trapper"]).contains("ready") {
        assert!(Instant::now() < deadline, "the container never got ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut c = attach_child(&dy, &["trapper"]);
    // A tick through attach: it is connected, and it blocked the signals it
    // proxies before it began to stream, so SIGINT now goes to the container.
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let mut out = BufReader::new(c.stdout.take().unwrap());
    std::thread::spawn(move || {
        let mut line = String::new();
        while out.read_line(&mut line).is_ok_and(|n| n > 0) {
            if tx.send(std::mem::take(&mut line)).is_err() {
                break;
            }
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(20));
    assert_eq!(first.as_deref(), Ok("tick\n"));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(c.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    // Everything until attach ends (its stdout closes), 20 s at most: a
    // lost signal must fail the test, not hang it.
    let mut rest = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(l) => rest.push_str(&l),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                let _ = c.kill();
                panic!("attach did not end after SIGINT; it printed: {rest}");
            }
        }
    }
    assert!(rest.contains("got INT"), "{rest}");
    assert_eq!(c.wait().unwrap().code(), Some(9));
    assert_eq!(dy.inspect("trapper", "{{.State.ExitCode}}"), "9");
}

#[test]
fn attach_with_a_terminal_runs_typed_commands_and_detaches() {
    let dy = Dy::new();
    dy.ok(&["run", "-dit", "--name", "shell", "busybox", "sh"]);
    dy.wait_for("shell", "{{.State.Status}}", "running");
    let mut t = Terminal::start(&dy, &["attach", "shell"], 30, 90);
    // A command typed into the container's shell, through the monitor, and
    // the size of our terminal, sent by attach.
    t.type_in(b"echo hello-$((6*7)); stty size\n");
    t.wait_for("hello-42\r\n30 90\r\n");
    // Our terminal is resized: on SIGWINCH attach sends the new size, which
    // the monitor sets on the container's pty master.
    let bigger = nix::pty::Winsize {
        ws_row: 45,
        ws_col: 132,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize.
    unsafe {
        use std::os::fd::AsRawFd;
        assert_eq!(
            libc::ioctl(t.master.as_raw_fd(), libc::TIOCSWINSZ, &bigger),
            0
        );
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(t.child.id() as i32),
        nix::sys::signal::Signal::SIGWINCH,
    )
    .unwrap();
    // The new size reaches the container through the monitor: ask until
    // it shows, however loaded the machine.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        t.type_in(b"stty size\n");
        if t.saw_within("45 132\r\n", Duration::from_millis(500)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the resize never arrived: {}",
            t.seen
        );
    }
    // Ctrl-P Ctrl-Q: attach leaves (exit 1, as docker's), the shell goes on.
    t.type_in(b"\x10\x11");
    let (code, seen) = t.finish();
    assert!(seen.contains("read escape sequence"), "{seen}");
    assert_eq!(code, 1, "{seen}");
    assert_eq!(dy.inspect("shell", "{{.State.Status}}"), "running");
    // Nothing of the keys reached the shell, and its output was logged.
    let logs = dy.ok(&["logs", "shell"]);
    assert!(logs.contains("hello-42"), "{logs}");
    // --detach-keys: a first key that the second does not follow is
    // passed on after all.
    let (code, seen) = on_a_terminal(
        &dy,
        &["attach", "--detach-keys=z,x", "shell"],
        30,
        90,
        // attach shows nothing until the shell prints: a newline first.
        &[("", b"\n"), ("# ", b"echo zy-$((1+1))\nzx")],
    );
    assert_eq!(code, 1, "{seen}");
    assert!(seen.contains("read escape sequence"), "{seen}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !dy.ok(&["logs", "shell"]).contains("zy-2") {
        assert!(Instant::now() < deadline, "{}", dy.ok(&["logs", "shell"]));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(dy.inspect("shell", "{{.State.Status}}"), "running");
}

/// The command of process `pid` in container `name` (as its PID namespace
/// numbers it), or what `cat` said when there is none.
fn comm_in(dy: &Dy, name: &str, pid: &str) -> String {
    let out = dy.run(&["exec", name, "cat", &format!("/proc/{pid}/comm")]);
    format!("{}{}", text(&out.stdout), text(&out.stderr))
}

#[test]
fn exec_it_detaches_on_the_keys_and_the_command_goes_on() {
    let dy = Dy::new();
    dy.ok(&["run", "-d", "--name", "box", "busybox", "sleep", "600"]);
    dy.wait_for("box", "{{.State.Status}}", "running");
    let mut t = Terminal::start(&dy, &["exec", "-it", "box", "sh"], 24, 80);
    t.wait_for("# ");
    // The shell notes its PID, and starts printing far more than a pty
    // holds (about 4 KiB a line discipline, 64 KiB all told) a moment
    // later, when we are gone: it only gets to the end if somebody reads
    // its terminal after we detach, as dockerd does.
    t.type_in(
        b"echo $$ > /tmp/sh-pid; (sleep 1; seq 1 30000; echo done > /tmp/printed) & echo mark-$((6*7))\n",
    );
    t.wait_for("mark-42");
    // Ctrl-P Ctrl-Q: exec leaves with docker's CLI's words and exit code.
    t.type_in(b"\x10\x11");
    let (code, seen) = t.finish_soon();
    assert_eq!(code, 1, "{seen}");
    assert!(seen.ends_with("read escape sequence\r\n"), "{seen:?}");
    // The shell goes on: not hung up when our copy of its terminal closed.
    std::thread::sleep(Duration::from_millis(500));
    let pid = dy.ok(&["exec", "box", "cat", "/tmp/sh-pid"]);
    assert_eq!(comm_in(&dy, "box", pid.trim()), "sh\n");
    let deadline = Instant::now() + Duration::from_secs(20);
    while dy.run(&["exec", "box", "cat", "/tmp/printed"]).stdout != b"done\n" {
        assert!(Instant::now() < deadline, "the shell's output stalled");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(comm_in(&dy, "box", pid.trim()), "sh\n");

    // --detach-keys ctrl-x: Ctrl-P Ctrl-Q are the command's now (with the
    // terminal's flow control off, as they would be read), Ctrl-X leaves.
    let mut t = Terminal::start(
        &dy,
        &["exec", "-it", "--detach-keys", "ctrl-x", "box", "sh"],
        24,
        80,
    );
    t.wait_for("# ");
    t.type_in(b"echo $$ > /tmp/sh2-pid; stty -ixon; echo go; head -c 3 | od -An -tx1\n");
    t.wait_for("go\r\n");
    t.type_in(b"\x10\x11\n");
    t.wait_for(" 10 11 0a");
    t.wait_for("# ");
    t.type_in(b"\x18");
    let (code, seen) = t.finish_soon();
    assert_eq!(code, 1, "{seen}");
    assert!(seen.ends_with("read escape sequence\r\n"), "{seen:?}");
    std::thread::sleep(Duration::from_millis(500));
    let pid = dy.ok(&["exec", "box", "cat", "/tmp/sh2-pid"]);
    assert_eq!(comm_in(&dy, "box", pid.trim()), "sh\n");
    // dockerd's event for each, and no exec_die of theirs: the shells go
    // on (the plain execs since died).
    let exec_ids = |what: &str| -> Vec<String> {
        let filter = format!("event={what}");
        let fmt = "{{.Actor.Attributes.execID}}";
        let args = [
            "events", "--since", "5m", "--until", "0s", "--filter", &filter,
        ];
        let mut all = args.to_vec();
        all.extend(["--format", fmt]);
        dy.ok(&all).lines().map(str::to_string).collect()
    };
    let detached = exec_ids("exec_detach");
    assert_eq!(detached.len(), 2, "{detached:?}");
    let died = exec_ids("exec_die");
    assert!(
        !died.is_empty() && detached.iter().all(|d| !died.contains(d)),
        "{died:?}"
    );

    // Keys dockerd cannot read: its exec create's refusal, exit 1.
    let out = dy.run(&["exec", "-it", "--detach-keys", "ctrl-", "box", "sh"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "the input device is not a TTY\n",
        "the terminal is checked first, as docker's CLI does"
    );
    let out = dy.run(&["exec", "--detach-keys", "ctrl-", "box", "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "Error response from daemon: Invalid escape keys (ctrl-) provided\n"
    );
}
