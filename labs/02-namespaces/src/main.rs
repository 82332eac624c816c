//! `lab02-namespaces`: run a command in new namespaces.
//!
//! The mechanism lives in the library (`lab02_namespaces`); this is only its
//! front end: flags in, exit status out.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use lab02_namespaces::{IdMapping, Spec, FORWARDED_SIGNALS};
use nix::sched::CloneFlags;

/// Run CMD in new mount, UTS, IPC, PID, network, user and cgroup namespaces,
/// with DIR as its root directory.
///
/// Each --no-* flag leaves that namespace shared with the host, to see what
/// leaks. The exit status is the command's, or 128+N if signal N killed it;
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

    /// Map uid and gid 0 inside to HOST_ID..HOST_ID+COUNT outside.
    /// Default: 100000:65536 as root; as another user, that user's own uid, count 1.
    #[arg(long, value_name = "HOST_ID:COUNT", conflicts_with = "no_user")]
    userns_map: Option<IdMapping>,

    /// Run a tiny init as PID 1 that reaps zombies and forwards signals, with
    /// the command as PID 2 (as docker run --init).
    #[arg(long)]
    init: bool,

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
    let mut spec = Spec::new(&cli.rootfs, cli.command.clone());
    spec.namespaces = cli.namespaces();
    spec.hostname = cli.hostname.clone();
    spec.user = cli.userns_map;
    spec.init = cli.init;

    // Lab 02 has nothing to do between clone and start; lab 03 puts the
    // child in a cgroup here.
    let status = lab02_namespaces::spawn(&spec, |_pid| Ok(()))
        .and_then(|container| container.wait_forwarding(&FORWARDED_SIGNALS));
    match status {
        Ok(status) => ExitCode::from(status.code() as u8),
        Err(e) => {
            eprintln!("lab02-namespaces: {e:#}");
            ExitCode::from(125)
        }
    }
}
