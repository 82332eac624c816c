//! `lab01-chroot`: run a command inside a root filesystem, with chroot or pivot_root.
//!
//! The mechanism lives in the library (`lab01_chroot`); this is only its front end.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use lab01_chroot::{Config, Isolation};

/// Run CMD with DIR as its root directory.
///
/// By default this uses plain chroot(2), which a root process can escape.
/// With --pivot it uses a private mount namespace and pivot_root(2), as real
/// container runtimes do.
#[derive(Parser, Debug)]
#[command(name = "lab01-chroot", version)]
struct Cli {
    /// The root filesystem: a directory holding the image's files.
    #[arg(long, value_name = "DIR")]
    rootfs: PathBuf,

    /// Use a new mount namespace and pivot_root instead of chroot.
    #[arg(long)]
    pivot: bool,

    /// With --pivot: do not mount /proc inside.
    #[arg(long, requires = "pivot")]
    no_proc: bool,

    /// With --pivot: do not mount a minimal /dev inside.
    #[arg(long, requires = "pivot")]
    no_dev: bool,

    /// The command and its arguments, after `--`.
    #[arg(required = true, last = true, value_name = "CMD")]
    command: Vec<OsString>,
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
    let config = Config {
        rootfs: cli.rootfs,
        isolation: if cli.pivot {
            Isolation::PivotRoot
        } else {
            Isolation::Chroot
        },
        mount_proc: !cli.no_proc,
        mount_dev: !cli.no_dev,
    };
    // `run` only returns on failure: on success the process became the command.
    let Err(err) = lab01_chroot::run(&config, &cli.command);
    eprintln!("lab01-chroot: {err}");
    ExitCode::from(err.exit_code() as u8)
}
