//! `dockyard`: a daemonless, docker-like container engine built from the labs.
//!
//! This binary is the command line, one front end of the engine core (the
//! `dockyard` library, `src/lib.rs`): `cli` says which commands and flags
//! there are (`cli_errors` reports what it cannot parse in docker's
//! words), `commands/` turns each into calls of the core and prints what
//! docker prints. Every kernel mechanism comes from a lab's library.

mod api;
mod build_flags;
mod cli;
mod cli_errors;
mod client;
mod commands;
mod doctor;
mod flag_values;
mod format;
mod ns_flags;
mod process_flags;
mod resource_flags;
mod template;

use std::path::Path;
use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};
use dockyard::container;
use dockyard::{config, engine, remap, rootless, trace};

fn main() -> ExitCode {
    // First, before anything of ours is open (see the function).
    container::note_inherited_fds();
    // Where this binary is, before a re-exec from a sealed copy hides it: the
    // monitor program sits beside it.
    container::note_own_path();
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
    let starts = std::env::args().skip(1).any(|a| {
        matches!(
            a.as_str(),
            "run" | "start" | "restart" | "exec" | "build" | "service" | "__monitor-exited"
        )
    });
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
            // Help and --version are not errors; bad flags exit 125 as in
            // docker; unknown flags and commands and missing arguments are
            // reported in docker's words, with docker's exit codes.
            let argv: Vec<String> = std::env::args().collect();
            if let Some((message, code)) = cli_errors::parse_error_report(&e, &argv) {
                eprint!("{message}");
                return ExitCode::from(code);
            }
            let code = if e.use_stderr() { 125 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    // With -H (or $DOCKYARD_HOST) this command line is only a client: the
    // service does the work (client/).
    if let Some(host) = client::host_of(&cli) {
        let cli = Cli {
            command: cli.command.flatten(),
            ..cli
        };
        return match client::dispatch(&cli, &host) {
            Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
            Err((code, e)) => {
                eprintln!("{e:#}");
                ExitCode::from(code)
            }
        };
    }
    engine::set_engine_args(engine::EngineArgs {
        root: cli.root.clone(),
        config: cli.config.clone(),
        userns_remap: cli.userns_remap.clone(),
    });
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
    let cli = Cli {
        command: cli.command.flatten(),
        ..cli
    };
    let code_for = |cmd: &Command| match cmd {
        // docker: 125 when the engine itself fails; the registry issue asks the same
        // of pull, push and login (a 401, 404, 429 or digest mismatch).
        Command::Run(_)
        | Command::Create(_)
        | Command::Pull(_)
        | Command::Push(_)
        | Command::Login(_) => 125,
        _ => 1,
    };
    let fail_code = code_for(&cli.command);
    let from_run = match cli.command {
        Command::Run(_) => Some("run"),
        Command::Create(_) => Some("create"),
        _ => None,
    };
    let with = |e: anyhow::Error| {
        if let Some(refusal) = e.downcast_ref::<commands::ClientRefusal>() {
            return (1, anyhow::anyhow!("{refusal}"));
        }
        let code = e
            .downcast_ref::<commands::run::StartError>()
            .map_or(fail_code, |s| s.exit_code());
        let msg = format!("{e:#}");
        // What docker's client itself refuses ("Error parsing reference:
        // ...", "Error: No public port ...") comes without the daemon's
        // prefix, as docker prints it.
        let text = if msg.starts_with("Error") {
            msg
        } else if let Some(command) = from_run {
            cli_errors::run_error_report(command, &msg)
        } else {
            format!("Error response from daemon: {msg}")
        };
        (code, anyhow::anyhow!("{text}"))
    };
    match &cli.command {
        Command::Doctor => {
            return Ok(if doctor::report(&doctor::run_checks()) {
                0
            } else {
                1
            })
        }
        Command::Completion { shell } => {
            use clap::CommandFactory;
            let mut cmd = Cli::command();
            clap_complete::generate(*shell, &mut cmd, "dockyard", &mut std::io::stdout());
            return Ok(0);
        }
        Command::Man { dir } => {
            return man_pages(dir).map(|()| 0).map_err(|e| (1, e));
        }
        Command::Version => {
            // The server part is this process's own engine core.
            let server = Ok(commands::system::local_server_version());
            return commands::system::print_version(server).map_err(|e| (1, e));
        }
        _ => {}
    }
    let engine = open_engine(&cli).map_err(|e| (125, anyhow::anyhow!("dockyard: {e:#}")))?;
    trace::phase("opened the data root");
    if engine.rootless {
        if let Some((what, why)) = rootless_refused(&cli.command) {
            return Err(with(rootless::rootless_refusal(what, why)));
        }
    }
    use commands::{container as ctr, image, network, registry, run, system, volume};
    let result = match &cli.command {
        Command::Run(a) => run::run(&engine, a),
        Command::Create(a) => run::create(&engine, a),
        Command::Start(a) => ctr::start(&engine, a),
        Command::Restart(a) => ctr::restart(&engine, a),
        Command::Exec(a) => ctr::exec(&engine, a),
        Command::Ps(a) => ctr::ps(&engine, a),
        Command::Logs(a) => ctr::logs(&engine, a),
        Command::Attach(a) => commands::session::attach_command(&engine, a),
        Command::Stop(a) => ctr::stop(&engine, a),
        Command::Kill(a) => ctr::kill(&engine, a),
        Command::Rm(a) => ctr::rm(&engine, a),
        Command::Wait(a) => ctr::wait(&engine, a),
        Command::Inspect(a) => system::inspect(&engine, a),
        Command::Images(a) => image::images(&engine, a),
        Command::Load(a) => image::load(&engine, a),
        Command::Pull(a) => registry::pull(&engine, a),
        Command::Push(a) => registry::push(&engine, a),
        Command::Search(a) => commands::search::run(&engine, a),
        Command::Tag(a) => registry::tag(&engine, a),
        Command::Login(a) => registry::login(&engine, a),
        Command::Logout(a) => registry::logout(&engine, a),
        Command::Build(a) => commands::build::run(&engine, a),
        Command::Info => system::info(&engine),
        Command::Commit(a) => ctr::commit(&engine, a),
        Command::Diff(a) => ctr::diff(&engine, a),
        Command::Cp(a) => commands::cp::cp(&engine, &a.src, &a.dest).map(|()| 0),
        Command::Export(a) => ctr::export(&engine, a),
        Command::Import(a) => image::import(&engine, a),
        Command::Save(a) => image::save(&engine, a),
        Command::Rmi(a) => image::rmi(&engine, a),
        Command::History(a) => image::history(&engine, a),
        Command::Rename(a) => ctr::rename(&engine, a),
        Command::Port(a) => ctr::port(&engine, a),
        Command::Top(a) => ctr::top(&engine, a),
        Command::Stats(a) => ctr::stats(&engine, a),
        Command::Network(n) => network::network(&engine, n),
        Command::System(cli::SystemCmd::Df) => system::system_df(&engine),
        Command::System(cli::SystemCmd::Info) => system::info(&engine),
        Command::Events(a) | Command::System(cli::SystemCmd::Events(a)) => {
            commands::events::events(&engine, a)
        }
        Command::System(s @ cli::SystemCmd::Service { .. }) => system::service(&engine, s),
        Command::System(cli::SystemCmd::Prune {
            force,
            volumes,
            all,
        }) => system::system_prune(&engine, *force, *volumes, *all),
        Command::Builder(cli::BuilderCmd::Prune { all, force }) => {
            system::builder_prune(&engine, *all, *force)
        }
        Command::Completion { .. } | Command::Man { .. } => unreachable!("handled above"),
        Command::Pause(a) => ctr::pause(&engine, a, true),
        Command::Unpause(a) => ctr::pause(&engine, a, false),
        Command::Update(a) => ctr::update(&engine, a),
        Command::ContainerPrune(a) => ctr::container_prune(&engine, a),
        Command::ImagePrune(a) => image::image_prune(&engine, a),
        Command::Volume(v) => volume::volume(&engine, v),
        Command::Container(_) | Command::Image(_) => unreachable!("flattened above"),
        Command::Doctor | Command::Version => unreachable!("handled above"),
        Command::MonitorExited(a) => ctr::monitor_exited(&engine, a),
    };
    result.map_err(with)
}

/// The commands that stand on what a rootless engine does not have, and why.
fn rootless_refused(command: &Command) -> Option<(&'static str, &'static str)> {
    let cgroups = "it works through the container's cgroup, and rootless containers have \
                   none (the host's cgroups belong to root)";
    match command {
        Command::Pause(_) | Command::Unpause(_) => Some(("pause", cgroups)),
        Command::Update(_) => Some(("update", cgroups)),
        Command::Stats(_) => Some(("stats", cgroups)),
        Command::Top(_) => Some(("top", cgroups)),
        Command::Build(_) => Some((
            "build",
            "lab 06's RUN steps make cgroups and run without a user namespace",
        )),
        _ => None,
    }
}

/// Read daemon.json (warning about keys it does not use) and open the data root.
fn open_engine(cli: &Cli) -> anyhow::Result<dockyard::Engine> {
    // --config, else $DOCKYARD_DAEMON_CONFIG (as --root has
    // $DOCKYARD_ROOT), else the default file, which may be absent.
    let from_env = std::env::var_os("DOCKYARD_DAEMON_CONFIG").map(std::path::PathBuf::from);
    let (path, explicit) = match cli.config.as_ref().or(from_env.as_ref()) {
        Some(p) => (p.as_path(), true),
        None => (Path::new(config::DEFAULT_CONFIG), false),
    };
    let exiting = matches!(cli.command, Command::MonitorExited(_));
    let (cfg, warnings) = match config::DaemonConfig::load(path, explicit) {
        Ok(loaded) => loaded,
        // A container's exit is recorded whatever became of the daemon.json
        // its `run` read (a temporary file, since removed): a lost exit code
        // is worse than the defaults.
        Err(e) if exiting => (config::DaemonConfig::default(), vec![format!("{e:#}")]),
        Err(e) => return Err(e),
    };
    for w in warnings {
        eprintln!("WARNING: {}: {w}", path.display());
    }
    // The monitor's exit handler of a rootless engine runs inside the user
    // namespace the engine made, as its root: it is told, not guessed.
    let exit_handler = match &cli.command {
        Command::MonitorExited(a) => Some(a.rootless),
        _ => None,
    };
    let rootless = !nix::unistd::geteuid().is_root() || exit_handler == Some(true);
    let root = if rootless && cli.root.is_none() && cfg.data_root.is_none() {
        match std::env::var_os("DOCKYARD_ROOT") {
            Some(r) => r.into(),
            None => rootless::rootless_data_root()?,
        }
    } else {
        config::data_root(cli.root.as_deref(), &cfg)
    };
    if rootless {
        if cli.userns_remap.is_some() || cfg.userns_remap.is_some() {
            anyhow::bail!(
                "--userns-remap needs root: rootless mode already runs every container in a \
                 user namespace, mapped to your own uid"
            );
        }
        // `exec` stays in the host's user namespace: a container's
        // namespaces are below the user namespace of the dockyard that
        // started it, which this user owns, so from here (its parent) we
        // may enter them; from a namespace of our own, a sibling, we could
        // not even read their /proc/PID/ns links.
        if !matches!(cli.command, Command::Exec(_)) && exit_handler.is_none() {
            rootless::enter_rootless()?;
        }
        return dockyard::Engine::open_rootless(root, cfg);
    }
    // --userns-remap on the command line wins over daemon.json's, as a
    // dockerd flag does; an empty value turns it off.
    let remap = match cli.userns_remap.as_deref().or(cfg.userns_remap.as_deref()) {
        None | Some("") => None,
        Some(setting) => Some(remap::Remap::resolve(setting)?),
    };
    dockyard::Engine::open_remapped(root, cfg, remap)
}

/// `dockyard man DIR`: dockyard.1 and one page per command (dockyard-run.1,
/// ...), generated from the same clap definitions as the CLI itself.
fn man_pages(dir: &Path) -> anyhow::Result<()> {
    use anyhow::Context;
    use clap::CommandFactory;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let cmd = Cli::command();
    let write = |name: String, cmd: clap::Command| -> anyhow::Result<()> {
        let mut buf = Vec::new();
        clap_mangen::Man::new(cmd).render(&mut buf)?;
        let path = dir.join(format!("{name}.1"));
        std::fs::write(&path, buf).with_context(|| format!("writing {}", path.display()))
    };
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        // clap names need 'static strings; a handful of leaked names is fine
        // in a command that runs once and exits.
        let name: &'static str = Box::leak(format!("dockyard-{}", sub.get_name()).into_boxed_str());
        write(name.to_string(), sub.clone().name(name))?;
    }
    write("dockyard".into(), cmd)
}
