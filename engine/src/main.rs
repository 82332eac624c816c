//! `dockyard`: a daemonless, docker-like container engine built from the labs.
//!
//! The engine adds state, a monitor per container and the CLI; every kernel
//! mechanism comes from a lab's library (see `runtime`).

mod cli;
mod commands;
mod config;
mod doctor;
mod format;
mod logs;
mod runtime;
mod state;
mod template;
mod trace;

use std::path::Path;
use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};

fn main() -> ExitCode {
    // Rust ignores SIGPIPE, so `dockyard ... | head` would make println! panic
    // once head exits. A command-line tool should just stop, as C tools do.
    // SAFETY: restoring a signal's default disposition at start-up, before any
    // thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    trace::start();
    // Commands that start a container run from a sealed copy of this binary
    // (CVE-2019-5736): until the container's command is exec'd, its process
    // is this program, and a container must never get hold of the host's
    // file through /proc/PID/exe. Lab 02 explains the attack.
    let starts = std::env::args()
        .skip(1)
        .any(|a| matches!(a.as_str(), "run" | "start" | "restart"));
    if starts {
        if let Err(e) = lab02_namespaces::security::ensure_sealed_binary() {
            eprintln!("dockyard: {e:#}");
            return ExitCode::from(125);
        }
    }
    trace::phase("running (after the re-exec, if any)");
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and --version are not errors; bad flags exit 125 as in docker.
            let code = if e.use_stderr() { 125 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match dispatch(cli) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err((code, e)) => {
            eprintln!("{e:#}");
            ExitCode::from(code)
        }
    }
}

/// Run the command; an error carries docker's exit code for it: 125 for
/// `run` (dockyard itself failed), 1 for the rest.
fn dispatch(cli: Cli) -> Result<i32, (u8, anyhow::Error)> {
    let code_for = |cmd: &Command| match cmd {
        Command::Run(_) | Command::Create(_) => 125,
        _ => 1,
    };
    let fail_code = code_for(&cli.command);
    let with = |e: anyhow::Error| {
        let prefix = if fail_code == 125 {
            "dockyard: "
        } else {
            "Error response from daemon: "
        };
        (fail_code, anyhow::anyhow!("{prefix}{e:#}"))
    };
    match &cli.command {
        Command::Doctor => {
            return Ok(if doctor::report(&doctor::run_checks()) {
                0
            } else {
                1
            })
        }
        Command::Version => {
            println!("dockyard version {}", env!("CARGO_PKG_VERSION"));
            return Ok(0);
        }
        _ => {}
    }
    let engine = open_engine(&cli).map_err(|e| (125, anyhow::anyhow!("dockyard: {e:#}")))?;
    trace::phase("opened the data root");
    let result = match &cli.command {
        Command::Run(a) => commands::run(&engine, a),
        Command::Create(a) => commands::create(&engine, a),
        Command::Start(a) => commands::start(&engine, a),
        Command::Restart(a) => commands::restart(&engine, a),
        Command::Ps(a) => commands::ps(&engine, a),
        Command::Logs(a) => commands::logs(&engine, a),
        Command::Stop(a) => commands::stop(&engine, a),
        Command::Kill(a) => commands::kill(&engine, a),
        Command::Rm(a) => commands::rm(&engine, a),
        Command::Wait(a) => commands::wait(&engine, a),
        Command::Inspect(a) => commands::inspect(&engine, a),
        Command::Images(a) => commands::images(&engine, a),
        Command::Load(a) => commands::load(&engine, a),
        Command::Info => commands::info(&engine),
        Command::Doctor | Command::Version => unreachable!("handled above"),
    };
    result.map_err(with)
}

/// Read daemon.json (warning about keys it does not use) and open the data root.
fn open_engine(cli: &Cli) -> anyhow::Result<runtime::Engine> {
    let (path, explicit) = match &cli.config {
        Some(p) => (p.as_path(), true),
        None => (Path::new(config::DEFAULT_CONFIG), false),
    };
    let (cfg, warnings) = config::DaemonConfig::load(path, explicit)?;
    for w in warnings {
        eprintln!("WARNING: {}: {w}", path.display());
    }
    if !nix::unistd::geteuid().is_root() {
        anyhow::bail!("dockyard must run as root (rootless mode is not supported yet)");
    }
    let root = config::data_root(cli.root.as_deref(), &cfg);
    runtime::Engine::open(root, cfg)
}
