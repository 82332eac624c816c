//! The life of a container: create it, start it under a monitor, wait for
//! it, clean up after it. Every kernel mechanism comes from a lab:
//!
//! - the image store and the overlay root filesystem from lab 04;
//! - the cgroup and its limits from lab 03;
//! - the namespaces, pivot_root and the process itself from lab 02 (and,
//!   through it, lab 01).
//!
//! What the engine adds is the **monitor**, the process that stands between
//! the CLI and the container, as conmon does for podman:
//!
//! ```text
//! dockyard run -d ──fork──> monitor ──clone──> container (PID 1 inside)
//!      │                       │  mounts, cgroup, spawn, network
//!      └─ prints the ID,       │
//!         exits                │ execve: dockyard-monitor (same PID)
//!                              │  owns stdout/stderr pipes -> json-file log
//!                              │  listens on attach.sock for `attach`
//!                              │  reaps the container
//!                              │ execve: dockyard __monitor-exited (same PID)
//!                              │  records its exit code, tears down,
//!                              │  applies --rm and --restart
//! ```
//!
//! Because the monitor, not the CLI, is the container's parent, `run -d`
//! can return at once and the container outlives it. The monitor is a fork
//! of the `dockyard` CLI while it sets the container up, then becomes the
//! small `dockyard-monitor` program (the `monitor/` crate) for as long as
//! the container runs: a few hundred kilobytes of code resident per
//! container instead of the CLI's megabytes, as podman leaves `conmon`
//! behind. When the container exits, the small program becomes `dockyard`
//! again to clean up, and to start the container again if its restart
//! policy says so. In the foreground the
//! CLI process *is* the monitor, and also copies the output to the terminal;
//! except with `-it`, where, as docker's CLI, it starts a detached monitor
//! and attaches to it (see the attach module), so that Ctrl-P Ctrl-Q can
//! leave the container running.

use std::ffi::OsString;
use std::fs::File;
use std::io::{BufRead, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use lab03_cgroups as cgroups;
use lab04_overlay as overlay;
use nix::unistd::{fork, pipe2, setsid, ForkResult, Pid};

use super::config::{config_of, ContainerConfig};
use super::remove::remove;
use super::start::{run_once, Handles, Running};
use crate::engine::{engine_argv, Engine};
use crate::network::net_config;
use crate::state::{self, now_rfc3339, Status};
use crate::trace;
use overlay::overlay::is_mounted;

/// How a started container's output reaches a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attach {
    /// Foreground: copy output to our stdout and stderr, pass our stdin if
    /// `-i`, forward SIGINT/SIGTERM/SIGHUP to the container (docker's
    /// `--sig-proxy`).
    Foreground,
    /// Detached: nobody watches; output goes to the log only.
    Detached,
    /// Detached, but the first start waits until a client has attached
    /// (`run -it`: the CLI attaches before the container prints anything).
    Waiting,
}

/// Start a container in the background: fork a monitor, which outlives us,
/// and return once the container's process exists.
pub fn start_detached(engine: &Engine, id: &str) -> Result<()> {
    let ready = fork_monitor(engine, id, Attach::Detached)?;
    read_report(ready)
}

/// Connect to the monitor of container `id`, through the attach socket in
/// its directory (`attach.sock`, the monitor crate's `attach` module).
pub fn connect(engine: &Engine, id: &str) -> Result<std::os::unix::net::UnixStream> {
    let (_dir, path) = dockyard_monitor::attach::address(&engine.containers.dir_of(id))?;
    std::os::unix::net::UnixStream::connect(&path)
        .with_context(|| format!("connecting to the monitor of {}", &id[..12]))
}

/// `run -it`, `start -ai`: start a container under a detached monitor, as
/// `start_detached`, but attach to it before it starts, as docker's CLI
/// does, so that not a byte of its output is missed. The monitor waits for
/// this connection before it spawns the container; the session then goes
/// through `attach`, detach keys included.
pub fn start_attached(engine: &Engine, id: &str) -> Result<std::os::unix::net::UnixStream> {
    let ready = fork_monitor(engine, id, Attach::Waiting)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match connect(engine, id) {
            Ok(sock) => {
                read_report(ready)?;
                return Ok(sock);
            }
            Err(e) => {
                // Not listening yet, or the monitor failed: then it says so.
                // Retried every millisecond: the monitor listens a few
                // milliseconds after the fork, and each millisecond waited
                // here is one the API's `docker run` waits too (a 20 ms
                // poll cost it ~20 ms a run); a failed connect is one cheap
                // system call.
                let mut fds = [nix::poll::PollFd::new(
                    std::os::fd::AsFd::as_fd(&ready),
                    nix::poll::PollFlags::POLLIN,
                )];
                if nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(1u8)).unwrap_or(0) > 0 {
                    read_report(ready)?;
                    return Err(e);
                }
                if Instant::now() > deadline {
                    return Err(e);
                }
            }
        }
    }
}

/// The descriptors above 2 that this process inherited from whoever ran it,
/// noted at start-up (see `note_inherited_fds`).
static INHERITED_FDS: std::sync::OnceLock<Vec<i32>> = std::sync::OnceLock::new();

/// Note which descriptors above 2 we inherited, before we open any. A
/// detached monitor closes them: it outlives us, and must not keep our
/// caller's terminal, pipe or socket open (a terminal would never see its
/// session end; a pipe reader would never see EOF). Read from /proc/self/fd
/// (one directory read, where probing every number with F_GETFD took a
/// thousand system calls, a millisecond); the directory's own descriptor is
/// open while it is read, and left out by checking it is gone afterwards.
pub fn note_inherited_fds() {
    let listed: Vec<i32> = match std::fs::read_dir("/proc/self/fd") {
        Ok(dir) => dir
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .filter(|&fd| fd > 2)
            .collect(),
        Err(_) => (3..1024).collect(),
    };
    let fds = listed
        .into_iter()
        // SAFETY: F_GETFD only reads the descriptor's flags.
        .filter(|&fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1)
        .collect();
    let _ = INHERITED_FDS.set(fds);
}

/// The environment variable that carries the path of the `dockyard` binary
/// across the re-exec from a sealed copy (whose /proc/self/exe names no
/// file beside which the monitor program could be found).
pub const EXE_ENV: &str = "DOCKYARD_EXE";

/// Note our own path in [`EXE_ENV`] if we run from the file itself (not
/// from a sealed copy, which keeps what the first run noted). The file is
/// the one /proc/self/exe names only if that name leads to the same inode:
/// whatever the environment said before is overwritten, never trusted.
pub fn note_own_path() {
    use std::os::unix::fs::MetadataExt;
    let Ok(path) = std::fs::read_link("/proc/self/exe") else {
        return;
    };
    let same = match (
        std::fs::metadata(&path),
        std::fs::metadata("/proc/self/exe"),
    ) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    };
    if same {
        // Single-threaded: the first thing main does.
        std::env::set_var(EXE_ENV, path);
    }
}

/// The small monitor program: `dockyard-monitor`, beside `dockyard`
/// (cargo builds both into the same directory; an install copies both).
fn monitor_program() -> Result<PathBuf> {
    let exe = std::env::var_os(EXE_ENV)
        .map(PathBuf::from)
        .context("the path of the dockyard binary is unknown ($DOCKYARD_EXE is unset)")?;
    let program = exe.with_file_name("dockyard-monitor");
    if !program.is_file() {
        bail!(
            "{} not found: the monitor program is built with dockyard (cargo build -p \
             dockyard-monitor) and must be installed beside it",
            program.display()
        );
    }
    Ok(program)
}

/// Now on the monotonic clock, which goes on across an exec.
fn monotonic() -> Duration {
    Duration::from_nanos(trace::now_ns())
}

/// Fork the monitor, in a session of its own; return the read end of the
/// pipe on which it reports the first start.
fn fork_monitor(engine: &Engine, id: &str, attach: Attach) -> Result<OwnedFd> {
    let (ready_r, ready_w) = pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("pipe2")?;
    // Nothing may sit in our stdout buffer: the child would print it again.
    let _ = std::io::stdout().flush();
    // SAFETY: dockyard is single-threaded here, so the child may run Rust code.
    match unsafe { fork() }.context("fork for the monitor")? {
        ForkResult::Child => {
            drop(ready_r);
            // A session of its own: the monitor must not die with our
            // terminal or receive the Ctrl-C meant for us.
            let _ = setsid();
            for &fd in INHERITED_FDS.get().map(Vec::as_slice).unwrap_or_default() {
                if fd != ready_w.as_raw_fd() {
                    // SAFETY: a descriptor we inherited and never use.
                    unsafe { libc::close(fd) };
                }
            }
            let code = match detach_stdio(engine, id) {
                Ok(()) => match monitor(engine, id, attach, Some(ready_w)) {
                    Ok(_) => 0,
                    Err(e) => {
                        eprintln!("monitor: {e:#}");
                        1
                    }
                },
                Err(e) => {
                    let mut w = File::from(ready_w);
                    let _ = writeln!(w, "error: {}", format!("{e:#}").replace('\n', " "));
                    1
                }
            };
            // _exit: do not run our parent's exit-time code a second time.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { .. } => {
            drop(ready_w);
            Ok(ready_r)
        }
    }
}

/// The monitor's report of the first start: one line, "started", or
/// "error: ...". Read the line, not to EOF: a process that inherited the
/// pipe's write end and never execs (the tiny init of --init) would hold it
/// open for the container's whole life.
fn read_report(ready: OwnedFd) -> Result<()> {
    let mut msg = String::new();
    std::io::BufReader::new(File::from(ready))
        .read_line(&mut msg)
        .context("reading the monitor's start report")?;
    let msg = msg.trim_end_matches('\n');
    match msg.strip_prefix("error: ") {
        None if msg == "started" => Ok(()),
        Some(err) => Err(anyhow!("{err}")),
        None => Err(anyhow!("the monitor died before the container started")),
    }
}

/// The detached monitor's own stdio: /dev/null in, its messages to
/// `monitor.log` in the container's directory.
fn detach_stdio(engine: &Engine, id: &str) -> Result<()> {
    let null = File::open("/dev/null").context("opening /dev/null")?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(engine.containers.dir_of(id).join("monitor.log"))
        .context("opening monitor.log")?;
    for (fd, target) in [
        (null.as_raw_fd(), 0),
        (log.as_raw_fd(), 1),
        (log.as_raw_fd(), 2),
    ] {
        // SAFETY: dup2 onto our own standard descriptors.
        if unsafe { libc::dup2(fd, target) } < 0 {
            bail!("dup2: {}", std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The monitor: run the container until it exits for good (restarting it as
/// its policy says), keeping its state and logs. Returns the last exit code.
/// `ready` is told "started" (or the error) once the first start is done.
///
/// In the foreground this process watches the container itself. Detached,
/// it hands over to the small monitor program once the container runs, and
/// does not return (see the module documentation).
pub fn monitor(engine: &Engine, id: &str, attach: Attach, ready: Option<OwnedFd>) -> Result<i32> {
    monitor_from(engine, id, attach, ready, Duration::from_millis(100))
}

fn monitor_from(
    engine: &Engine,
    id: &str,
    mut attach: Attach,
    mut ready: Option<OwnedFd>,
    mut backoff: Duration,
) -> Result<i32> {
    let report = |ready: &mut Option<OwnedFd>, msg: &str| {
        if let Some(fd) = ready.take() {
            let _ = writeln!(File::from(fd), "{}", msg.replace('\n', " "));
        }
    };
    loop {
        let record = engine.containers.load(id)?;
        let config = config_of(&record)?;
        // Detached, the program to hand over to must be there before
        // anything starts: a failed start leaves nothing behind.
        let program = match attach {
            Attach::Foreground => Ok(None),
            Attach::Detached | Attach::Waiting => monitor_program().map(Some),
        };
        let started = program.and_then(|program| {
            let running = run_once(engine, &record, &config, attach)?;
            Ok((program, running))
        });
        let (program, started) = match started {
            Ok(started) => started,
            Err(e) => {
                report(&mut ready, &format!("error: {e:#}"));
                mark_exited(engine, id, 125, false, &format!("{e:#}"))?;
                cleanup_after_exit(engine, id, &config)?;
                return Err(e);
            }
        };
        // The events of a start, written before `start` returns: the
        // volumes mounted and the network joined, then `start`.
        attachment_events(engine, &record, &config, true);
        crate::events::container(engine, &record, "start", &[]);
        report(&mut ready, "started");
        let started_at = started.started;
        if let Some(program) = program {
            let e = started.hand_over(engine, id, &program, backoff);
            // Still here: the exec failed. Watch the container from this
            // process, as before there was a small program.
            eprintln!("dockyard: running {}: {e:#}", program.display());
        }
        let (code, oom) = started.wait(engine, id, &config, attach)?;
        // A restart does not wait for anyone to attach again.
        if attach == Attach::Waiting {
            attach = Attach::Detached;
        }
        if !after_exit(engine, id, &config, code, oom, started_at, &mut backoff)? {
            return Ok(code);
        }
    }
}

/// `dockyard __monitor-exited`: the monitor's second half, run by the small
/// monitor program when the container has exited. The same process (the
/// container's parent, the PID in the state file) takes down what the
/// start set up, records the exit, and restarts the container if its
/// policy says so, handing over to the small program again.
/// What the small monitor program hands back to `dockyard` after the exit
/// (`dockyard __monitor-exited`'s arguments).
#[derive(Debug, Clone)]
pub struct ExitReport {
    pub id: String,
    /// The container's PID 1 (exited now; its network is found by it).
    pub pid: i32,
    /// The exit code (128+N for signal N).
    pub code: i32,
    /// When the container started, on the monotonic clock (nanoseconds).
    pub started_ns: u64,
    /// The restart back-off to use next, in milliseconds.
    pub backoff_ms: u64,
    /// The health-check helper to wait for, if the container has a check.
    pub health_pid: Option<i32>,
}

pub fn monitor_exited(engine: &Engine, a: &ExitReport) -> Result<i32> {
    // The checker first: its last result must be in before the exit is.
    if let Some(pid) = a.health_pid {
        let _ = nix::sys::wait::waitpid(Pid::from_raw(pid), None);
    }
    let record = engine.containers.load(&a.id)?;
    let config = config_of(&record)?;
    let handles = Handles {
        endpoint: record.state.network.is_some(),
        net_cfg: net_config(engine),
        pid: Pid::from_raw(a.pid),
        groups: None,
        default_parent: (config.cgroup_parent.is_empty() && !engine.rootless)
            .then(cgroups::detect)
            .transpose()?,
    };
    let oom = handles.release(engine, &a.id, &config)?;
    let started_at = Instant::now()
        .checked_sub(monotonic().saturating_sub(Duration::from_nanos(a.started_ns)))
        .unwrap_or_else(Instant::now);
    let mut backoff = Duration::from_millis(a.backoff_ms);
    if !after_exit(
        engine,
        &a.id,
        &config,
        a.code,
        oom,
        started_at,
        &mut backoff,
    )? {
        return Ok(a.code);
    }
    monitor_from(engine, &a.id, Attach::Detached, None, backoff)
}

/// After an exit: record it, then either clean up (false: done) or get
/// ready to start the container again (true), as its restart policy says,
/// with docker's back-off between tries.
fn after_exit(
    engine: &Engine,
    id: &str,
    config: &ContainerConfig,
    code: i32,
    oom: bool,
    started_at: Instant,
    backoff: &mut Duration,
) -> Result<bool> {
    // Nobody can attach to an exited container: no socket to find.
    let _ = std::fs::remove_file(
        engine
            .containers
            .dir_of(id)
            .join(dockyard_monitor::attach::SOCKET),
    );
    // The root filesystem goes before the exit is recorded: `stop` returns
    // when the record says "exited", and must find nothing left mounted (a
    // restart mounts it again).
    unmount_root(engine, id)?;
    let record = engine.containers.load(id)?;
    let restarts = record.state.restart_count;
    // The events of an exit, before the record says "exited": `stop`
    // returns once it does, and its own event must come after `die`.
    if oom {
        crate::events::container(engine, &record, "oom", &[]);
    }
    let duration = started_at.elapsed().as_secs().to_string();
    crate::events::container(
        engine,
        &record,
        "die",
        &[("exitCode", code.to_string()), ("execDuration", duration)],
    );
    attachment_events(engine, &record, config, false);
    let manual = mark_exited(engine, id, code, oom, "")?;
    if config.restart.should_restart(code, restarts, manual) && !config.auto_remove {
        let lock = engine.containers.lock()?;
        let mut r = engine.containers.load(id)?;
        r.state.status = Status::Restarting;
        r.state.restart_count += 1;
        // We are still here, waiting to restart it: say so, or a `ps`
        // meanwhile would find no process behind the record and
        // reconcile it to "exited".
        r.state.monitor_pid = std::process::id() as i32;
        engine.containers.save(&lock, &r)?;
        drop(lock);
        // Docker's back-off: double the delay each time, reset after a
        // run that lasted 10 seconds.
        if started_at.elapsed() > Duration::from_secs(10) {
            *backoff = Duration::from_millis(100);
        }
        std::thread::sleep(*backoff);
        *backoff = (*backoff * 2).min(Duration::from_secs(60));
        // `stop` or `rm -f` while we slept?
        let r = engine.containers.load(id)?;
        if r.state.status == Status::Restarting {
            return Ok(true);
        }
    }
    cleanup_after_exit(engine, id, config)?;
    Ok(false)
}

impl Running {
    /// Copy output to the log (and the terminal) until the container exits;
    /// return its exit code (128+N for signal N) and whether the OOM killer
    /// struck.
    fn wait(
        self,
        engine: &Engine,
        id: &str,
        config: &ContainerConfig,
        attach: Attach,
    ) -> Result<(i32, bool)> {
        let Running {
            handles,
            streams,
            mut log,
            health,
            ..
        } = self;
        // -it in the foreground: our terminal passes every key through.
        let raw = (attach == Attach::Foreground && streams.own_stdin && streams.tty.is_some())
            .then(dockyard_monitor::pump::RawMode::enter);
        let code = dockyard_monitor::pump::pump(
            handles.pid,
            streams,
            Some(&mut log),
            attach == Attach::Foreground,
        );
        drop(raw);
        drop(health);
        let code = code?;
        trace::phase("exit: the container exited");
        let oom = handles.release(engine, id, config)?;
        Ok((code, oom))
    }

    /// Become the small monitor program: execve(2), the same PID, the
    /// container still our child. It gets the descriptors it needs by
    /// number, and the command that brings `dockyard` back after the exit.
    /// Returns only if the exec failed (then nothing has changed).
    fn hand_over(
        &self,
        engine: &Engine,
        id: &str,
        program: &Path,
        backoff: Duration,
    ) -> anyhow::Error {
        use std::os::unix::process::CommandExt;
        // The small program runs from its file, unsealed, and may: the
        // sealed copy guards the binary a container's process is a copy of
        // until its command is exec'd (CVE-2019-5736, lab 02), and the small
        // program never spawns anything. A container cannot even name it:
        // its PID is outside the container's PID namespace. Coming back, it
        // execs the binary we run from, sealed (see main), through this
        // descriptor: a sealed copy has no path.
        let exe = match File::open("/proc/self/exe") {
            Ok(f) => f,
            Err(e) => return anyhow!(e).context("opening /proc/self/exe"),
        };
        let s = &self.streams;
        let pid = self.handles.pid.as_raw().to_string();
        let mut pass: Vec<i32> = Vec::new();
        let mut cmd = std::process::Command::new(program);
        cmd.arg("--dir").arg(engine.containers.dir_of(id));
        cmd.args(["--pid", &pid]);
        for (fd, stream) in &s.outputs {
            cmd.arg("--out").arg(format!("{}:{stream}", fd.as_raw_fd()));
            pass.push(fd.as_raw_fd());
        }
        if let Some(fd) = &s.input {
            cmd.arg("--input").arg(fd.as_raw_fd().to_string());
            pass.push(fd.as_raw_fd());
        }
        if let Some(master) = s.tty {
            // Also one of the outputs, passed above.
            cmd.arg("--tty").arg(master.to_string());
        }
        if let Some(l) = &s.listener {
            cmd.arg("--listener").arg(l.as_raw_fd().to_string());
            pass.push(l.as_raw_fd());
        }
        for c in &s.clients {
            cmd.arg("--client").arg(c.stream.as_raw_fd().to_string());
            pass.push(c.stream.as_raw_fd());
        }
        if let Some(max) = self.log_rotation.max_size {
            cmd.args(["--log-max-size", &max.to_string()]);
            cmd.args(["--log-max-file", &self.log_rotation.max_file.to_string()]);
        }
        // What runs after the exit: `dockyard [engine flags] __monitor-exited
        // ... ID`, and the small program appends the exit code.
        let started = monotonic().saturating_sub(self.started.elapsed());
        let mut then: Vec<OsString> = vec!["dockyard".into()];
        then.extend(engine_argv(engine));
        then.extend([
            "__monitor-exited".into(),
            "--pid".into(),
            pid.clone().into(),
        ]);
        then.extend(["--started-ns".into(), started.as_nanos().to_string().into()]);
        then.extend([
            "--backoff-ms".into(),
            backoff.as_millis().to_string().into(),
        ]);
        if let Some((helper, stop)) = self.health.as_ref().and_then(|h| h.helper_fds()) {
            cmd.arg("--health").arg(stop.as_raw_fd().to_string());
            pass.push(stop.as_raw_fd());
            then.extend(["--health-pid".into(), helper.as_raw().to_string().into()]);
        }
        if engine.rootless {
            then.push("--rootless".into());
        }
        then.push(id.into());
        cmd.arg("--exe").arg(exe.as_raw_fd().to_string());
        pass.push(exe.as_raw_fd());
        cmd.arg("--").args(then);
        // Every descriptor we own is close-on-exec; only those the program
        // needs cross over, each named on its command line.
        let cloexec = |flag: i32| {
            for &fd in &pass {
                // SAFETY: F_SETFD on descriptors this process owns.
                unsafe { libc::fcntl(fd, libc::F_SETFD, flag) };
            }
        };
        cloexec(0);
        trace::phase("start: handing over to dockyard-monitor");
        let e = cmd.exec();
        cloexec(libc::FD_CLOEXEC);
        anyhow!(e)
    }
}

/// Record an exit. Returns whether `stop` asked for it (no restart then).
fn mark_exited(engine: &Engine, id: &str, code: i32, oom: bool, error: &str) -> Result<bool> {
    let lock = engine.containers.lock()?;
    let mut r = engine.containers.load(id)?;
    r.state.status = Status::Exited;
    r.state.pid = 0;
    r.state.pid_start_time = 0;
    r.state.monitor_pid = 0;
    r.state.exit_code = code;
    r.state.oom_killed = oom;
    r.state.network = None;
    r.state.error = error.to_string();
    r.state.finished_at = now_rfc3339();
    engine.containers.save(&lock, &r)?;
    Ok(r.state.manually_stopped)
}

/// The network and volume events of a start (`connect`, `mount`) or of an
/// exit (`disconnect`, `unmount`), in the order dockerd logs them.
fn attachment_events(engine: &Engine, record: &state::Record, config: &ContainerConfig, up: bool) {
    use crate::events::{log, Actor};
    let id = record.id.clone();
    let volumes = config.mounts.iter().filter(|m| m.kind == "volume");
    let mut volume_events = Vec::new();
    for m in volumes {
        let mut a = Actor {
            id: m.source.clone(),
            ..Default::default()
        };
        a.attributes.insert("container".into(), id.clone());
        a.attributes.insert("driver".into(), "local".into());
        if up {
            a.attributes.insert("destination".into(), m.target.clone());
            a.attributes.insert("propagation".into(), String::new());
            a.attributes
                .insert("read/write".into(), (!m.read_only).to_string());
        }
        volume_events.push(a);
    }
    let mode = config.network_mode.as_str();
    let network = (!mode.starts_with("container:")).then(|| {
        let known = crate::network::networks(engine).unwrap_or_default();
        let (nid, driver) = match known.iter().find(|n| n.name == mode) {
            Some(n) => (crate::network::network_id(n), "bridge"),
            None => {
                let driver = crate::network::PREDEFINED
                    .iter()
                    .find(|(n, _)| *n == mode)
                    .map_or("bridge", |(_, d)| *d);
                (crate::network::id_of(mode), driver)
            }
        };
        let mut a = Actor {
            id: nid,
            ..Default::default()
        };
        a.attributes.insert("container".into(), id.clone());
        a.attributes.insert("name".into(), mode.to_string());
        a.attributes.insert("type".into(), driver.to_string());
        a
    });
    if up {
        for a in volume_events {
            log(engine, "volume", "mount", a);
        }
        if let Some(a) = network {
            log(engine, "network", "connect", a);
        }
    } else {
        if let Some(a) = network {
            log(engine, "network", "disconnect", a);
        }
        for a in volume_events {
            log(engine, "volume", "unmount", a);
        }
    }
}

/// After the last exit: unmount the root filesystem, and with `--rm`
/// remove the container altogether.
fn cleanup_after_exit(engine: &Engine, id: &str, config: &ContainerConfig) -> Result<()> {
    unmount_root(engine, id)?;
    if config.auto_remove {
        // --rm takes the container's anonymous volumes with it, as docker's.
        remove(engine, id, true)?;
        trace::phase("exit: removed the container (--rm)");
    }
    Ok(())
}

/// Unmount the container's root filesystem, if it is mounted.
fn unmount_root(engine: &Engine, id: &str) -> Result<()> {
    let layer = engine.layer_container(id)?;
    if is_mounted(&layer.merged())? {
        overlay::overlay::unmount(&layer.merged())?;
    }
    trace::phase("exit: unmounted the overlay (lab 04)");
    Ok(())
}
