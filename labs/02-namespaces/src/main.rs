//! `lab02-namespaces`: run a command in new namespaces.
//!
//! The mechanism lives in the library (`lab02_namespaces`); this is only its
//! front end: flags in, exit status out.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use lab02_namespaces::security::{self, Security, Tmpfs};
use lab02_namespaces::{IdMapping, NamespacePath, Spec, FORWARDED_SIGNALS};
use nix::sched::CloneFlags;
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg, Termios};

/// Run CMD in new mount, UTS, IPC, PID, network, user and cgroup namespaces,
/// with DIR as its root directory.
///
/// Each --no-* flag leaves that namespace shared with the host, to see what
/// leaks. --secure adds Docker's security defaults (capabilities, seccomp,
/// no_new_privs, masked paths), which the other security flags adjust as in
/// docker run; each of them implies --secure. The exit status is the command's, or 128+N if signal N killed it;
/// 125, 126 and 127 as in docker run.
#[derive(Parser, Debug)]
#[command(name = "lab02-namespaces", version)]
struct Cli {
    /// The root filesystem: a directory holding the image's files.
    #[arg(long, value_name = "DIR")]
    rootfs: PathBuf,

    /// The hostname inside the container (needs the UTS namespace).
    #[arg(long, value_name = "NAME", conflicts_with = "no_uts")]
    hostname: Option<String>,

    /// Share the host's hostname (UTS namespace).
    #[arg(long)]
    no_uts: bool,

    /// Share the host's process IDs (PID namespace).
    #[arg(long)]
    no_pid: bool,

    /// Share the host's System V IPC and POSIX message queues (IPC namespace).
    #[arg(long)]
    no_ipc: bool,

    /// Share the host's network interfaces (network namespace).
    #[arg(long)]
    no_net: bool,

    /// Share the host's user IDs (user namespace); root only.
    #[arg(long)]
    no_user: bool,

    /// Share the host's cgroup root (cgroup namespace).
    #[arg(long)]
    no_cgroupns: bool,

    /// Enter an existing namespace instead of creating one: KIND=PATH, e.g.
    /// net=/proc/PID/ns/net (as nsenter --net=FILE). Network, IPC, UTS and
    /// PID namespaces only, and with --no-user.
    #[arg(long, value_name = "KIND=PATH")]
    join_ns: Vec<NamespacePath>,

    /// Map uid and gid 0 inside to HOST_ID..HOST_ID+COUNT outside.
    /// Default: 100000:65536 as root; as another user, that user's own uid, count 1.
    #[arg(long, value_name = "HOST_ID:COUNT", conflicts_with = "no_user")]
    userns_map: Option<IdMapping>,

    /// Run a tiny init as PID 1 that reaps zombies and forwards signals, with
    /// the command as PID 2 (as docker run --init).
    #[arg(long)]
    init: bool,

    /// Give the command a terminal: a pty from the container's own devpts,
    /// whose master this program copies to and from its own stdio.
    #[arg(short = 't', long)]
    tty: bool,

    /// The working directory inside the container, created if missing.
    #[arg(short = 'w', long, value_name = "DIR")]
    workdir: Option<PathBuf>,

    /// Docker's security defaults: its 14 capabilities, its seccomp profile,
    /// no_new_privs, masked and read-only paths, a read-only /sys.
    #[arg(long)]
    secure: bool,

    /// Every capability, no seccomp, nothing masked (as docker run --privileged).
    #[arg(long)]
    privileged: bool,

    /// Add a capability (SYS_ADMIN, CAP_NET_ADMIN, or ALL).
    #[arg(long, value_name = "CAP", value_delimiter = ',')]
    cap_add: Vec<String>,

    /// Drop a capability (or ALL).
    #[arg(long, value_name = "CAP", value_delimiter = ',')]
    cap_drop: Vec<String>,

    /// seccomp=unconfined, seccomp=PROFILE.json, no-new-privileges[=false].
    #[arg(long, value_name = "OPT")]
    security_opt: Vec<String>,

    /// Mount the container's root file system read-only.
    #[arg(long)]
    read_only: bool,

    /// Mount a tmpfs at PATH (e.g. /run:size=64m).
    #[arg(long, value_name = "PATH[:OPTS]")]
    tmpfs: Vec<Tmpfs>,

    /// The command and its arguments, after `--`.
    #[arg(required = true, last = true, value_name = "CMD")]
    command: Vec<OsString>,
}

impl Cli {
    fn namespaces(&self) -> CloneFlags {
        let mut flags = lab02_namespaces::DEFAULT_NAMESPACES;
        for (off, flag) in [
            (self.no_uts, CloneFlags::CLONE_NEWUTS),
            (self.no_pid, CloneFlags::CLONE_NEWPID),
            (self.no_ipc, CloneFlags::CLONE_NEWIPC),
            (self.no_net, CloneFlags::CLONE_NEWNET),
            (self.no_user, CloneFlags::CLONE_NEWUSER),
            (self.no_cgroupns, CloneFlags::CLONE_NEWCGROUP),
        ] {
            if off {
                flags.remove(flag);
            }
        }
        flags
    }

    /// The security layer the flags ask for, `None` without any of them.
    fn security(&self) -> anyhow::Result<Option<Security>> {
        let wanted = self.secure
            || self.privileged
            || self.read_only
            || !self.cap_add.is_empty()
            || !self.cap_drop.is_empty()
            || !self.security_opt.is_empty()
            || !self.tmpfs.is_empty();
        if !wanted {
            return Ok(None);
        }
        let mut sec = Security::docker_default();
        sec.privileged = self.privileged;
        sec.cap_add = self.cap_add.clone();
        sec.cap_drop = self.cap_drop.clone();
        for opt in &self.security_opt {
            sec.apply_opt(opt)?;
        }
        sec.read_only_rootfs = self.read_only;
        sec.tmpfs = self.tmpfs.clone();
        Ok(Some(sec))
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and --version are not errors; bad flags exit 125 as in docker.
            let code = if e.use_stderr() { 125 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let security = match cli.security() {
        Ok(security) => security,
        Err(e) => {
            eprintln!("lab02-namespaces: {e:#}");
            return ExitCode::from(125);
        }
    };
    if security.is_some() {
        // CVE-2019-5736: never let the container reach this binary's file.
        if let Err(e) = security::ensure_sealed_binary() {
            eprintln!("lab02-namespaces: {e:#}");
            return ExitCode::from(125);
        }
    }
    let mut spec = Spec::new(&cli.rootfs, cli.command.clone());
    spec.security = security;
    spec.cwd = cli.workdir.clone();
    spec.namespaces = cli.namespaces();
    spec.join_namespaces = cli.join_ns.clone();
    spec.hostname = cli.hostname.clone();
    spec.user = cli.userns_map;
    spec.init = cli.init;

    spec.tty = cli.tty;
    spec.tty_size = cli.tty.then(window_size).flatten();

    // Lab 02 has nothing to do between clone and start; lab 03 puts the
    // child in a cgroup here.
    let status = lab02_namespaces::spawn(&spec, |_pid| Ok(())).and_then(|mut container| {
        let copier = container.take_console().map(copy_console).transpose()?;
        let status = container.wait_forwarding(&FORWARDED_SIGNALS);
        if let Some((output, raw)) = copier {
            // The master reads EIO once every holder of the slave is gone.
            let _ = output.join();
            if let Some(saved) = raw {
                let _ = tcsetattr(std::io::stdin(), SetArg::TCSANOW, &saved);
            }
        }
        status
    });
    match status {
        Ok(status) => ExitCode::from(status.code() as u8),
        Err(e) => {
            eprintln!("lab02-namespaces: {e:#}");
            ExitCode::from(125)
        }
    }
}

/// Our terminal's size, rows and columns, if stdin is one.
fn window_size() -> Option<(u16, u16)> {
    // SAFETY: winsize is plain old data; TIOCGWINSZ writes one.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) } == 0;
    (ok && ws.ws_row > 0).then_some((ws.ws_row, ws.ws_col))
}

/// Copy the container's pty master to our stdout (in a thread, returned)
/// and our stdin to it (in a thread left to die with us). With a terminal
/// on stdin, it goes into raw mode, so every key reaches the container's
/// line discipline as typed; the saved settings are returned to restore.
#[allow(clippy::type_complexity)]
fn copy_console(
    master: std::os::fd::OwnedFd,
) -> anyhow::Result<(std::thread::JoinHandle<()>, Option<Termios>)> {
    use std::io::{Read, Write};
    // Threads inherit the signal mask: block what wait_forwarding takes,
    // so that Ctrl-C is forwarded rather than killing us from a thread.
    let mut set = nix::sys::signal::SigSet::empty();
    set.add(nix::sys::signal::Signal::SIGCHLD);
    FORWARDED_SIGNALS.iter().for_each(|&s| set.add(s));
    set.thread_block()?;
    let raw = match tcgetattr(std::io::stdin()) {
        Ok(saved) => {
            let mut raw = saved.clone();
            cfmakeraw(&mut raw);
            tcsetattr(std::io::stdin(), SetArg::TCSANOW, &raw)?;
            Some(saved)
        }
        Err(_) => None,
    };
    let mut input = std::fs::File::from(master.try_clone()?);
    let mut output = std::fs::File::from(master);
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin(), &mut input);
    });
    let out = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let mut stdout = std::io::stdout();
        // Ends with EIO: the slave side is closed.
        while let Ok(n) = output.read(&mut buf) {
            if n == 0
                || stdout
                    .write_all(&buf[..n])
                    .and_then(|()| stdout.flush())
                    .is_err()
            {
                break;
            }
        }
    });
    Ok((out, raw))
}
