//! # dockyard-runtime: Dockyard's labs behind runc's command line
//!
//! Docker does not start containers itself. dockerd asks containerd, and
//! containerd's shim runs an *OCI runtime*, a small program with a fixed
//! command line (runc's), once per step of a container's life:
//!
//! ```text
//! dockyard-runtime create --bundle /run/.../ID --pid-file init.pid ID   # creating -> created
//! dockyard-runtime start ID                                             # created  -> running
//! dockyard-runtime state ID                                             # the OCI state, as JSON
//! dockyard-runtime kill ID SIGTERM                                      # running  -> stopped
//! dockyard-runtime delete ID                                            # gone
//! ```
//!
//! The *bundle* is a directory with a `config.json` (the OCI runtime
//! specification's description of one container) and usually its root
//! file system. Kubernetes reaches the same program through the CRI and
//! containerd (or CRI-O), and podman through conmon: each caller is a
//! different program, and all of them speak this one command line.
//!
//! This binary is thin on purpose. The container is made by lab 03's one
//! assembler ([`lab03_cgroups::assemble`]) from lab 02's namespaces,
//! security layer and user code; this crate translates `config.json` into
//! that [`Blueprint`](lab03_cgroups::assemble::Blueprint) ([`bundle`]),
//! keeps one state file per container under `--root` ([`state`]), and runs
//! the hooks ([`hooks`]). The modules, in the order of a container's life:
//! [`lifecycle`] (create, start, run, kill, delete), [`exec`], [`manage`]
//! (state, list, ps, pause, resume, update), [`info`] (spec, features,
//! version) and [`logging`] (`--log`, `--log-format`).

mod bundle;
mod cli;
mod exec;
mod hooks;
mod info;
mod lifecycle;
mod logging;
mod manage;
mod state;
mod time;

use clap::Parser;

fn main() {
    // runc's `--version` (and `-v`) has its own format, not clap's.
    if matches!(std::env::args().nth(1).as_deref(), Some("--version" | "-v")) {
        println!("{}", info::version());
        return;
    }
    let cli = cli::Cli::parse();
    let log = logging::Logger::open(&cli.global);
    let log = match log {
        Ok(l) => l,
        Err(e) => {
            eprintln!("dockyard-runtime: {e:#}");
            std::process::exit(1);
        }
    };
    log.debug(&format!("argv: {:?}", std::env::args().collect::<Vec<_>>()));
    let code = match run(&cli, &log) {
        Ok(code) => code,
        Err(e) => {
            // As runc: the error in the log (the caller shows its last
            // `msg` to the user) and on stderr, then exit 1.
            log.error(&format!("{e:#}"));
            eprintln!("dockyard-runtime: {e:#}");
            1
        }
    };
    std::process::exit(code);
}

fn run(cli: &cli::Cli, log: &logging::Logger) -> anyhow::Result<i32> {
    use cli::Command as C;
    let g = &cli.global;
    if g.systemd_cgroup {
        info::check_systemd()?;
    }
    match &cli.command {
        C::Create(a) => lifecycle::create(g, log, a).map(|()| 0),
        C::Start { id } => lifecycle::start(g, log, id).map(|()| 0),
        C::Run(a) => lifecycle::run(g, log, a),
        C::State { id } => manage::state(g, id).map(|()| 0),
        C::Kill { all, id, signal } => lifecycle::kill(g, id, signal, *all).map(|()| 0),
        C::Delete { force, id } => lifecycle::delete(g, log, id, *force).map(|()| 0),
        C::List { format, quiet } => manage::list(g, format, *quiet).map(|()| 0),
        C::Ps { format, id, .. } => manage::ps(g, id, format).map(|()| 0),
        C::Pause { id } => manage::pause(g, id, true).map(|()| 0),
        C::Resume { id } => manage::pause(g, id, false).map(|()| 0),
        C::Update {
            resources,
            memory,
            pids_limit,
            id,
        } => {
            manage::update(g, id, resources.as_deref(), memory.as_deref(), *pids_limit).map(|()| 0)
        }
        C::Exec(a) => exec::exec(g, log, a),
        C::Spec { bundle } => info::spec(bundle.as_deref()).map(|()| 0),
        C::Features => info::features().map(|()| 0),
    }
}
