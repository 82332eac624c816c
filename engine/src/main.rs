//! `dockyard`: a daemonless, docker-like container engine built from the labs.
//!
//! So far it has `doctor` (host preflight) and `version`; the container
//! commands arrive with the engine's own issue, on top of the labs.

mod config;
mod doctor;
mod format;
mod logs;
mod state;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "dockyard",
    version,
    about = "A docker-like container engine built from the Dockyard labs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check that this host has what the labs and the engine need.
    Doctor,
    /// Show the version.
    Version,
}

fn main() -> ExitCode {
    // Rust ignores SIGPIPE, so `dockyard ... | head` would make println! panic
    // once head exits. A command-line tool should just stop, as C tools do.
    // SAFETY: restoring a signal's default disposition at start-up, before any
    // thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 125 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match cli.command {
        Command::Doctor => {
            if doctor::report(&doctor::run_checks()) {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Command::Version => {
            println!("dockyard version {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
    }
}
