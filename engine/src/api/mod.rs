//! `dockyard system service`: the Docker Engine API, served on a unix
//! socket (or loopback TCP, TCP with mutual TLS, or a socket systemd
//! passes: see the listen module).
//!
//! Docker is a client and a server: the `docker` command line sends REST
//! requests to dockerd over `/var/run/docker.sock` (or TCP), and dockerd does
//! the work. Dockyard is daemonless, each `dockyard` command does its own
//! work, but nothing stops it from *also* answering the same REST requests:
//! this module is a second front end over the same engine core as the CLI.
//! Each operation has one implementation (`dockyard::container::create`,
//! `start_detached`, `stop`, `remove_checked`, ...); the CLI reaches it from
//! its flags, the service from JSON.
//!
//! ```text
//! docker -H unix:///run/dockyard.sock run --rm busybox echo hi
//!   HEAD /_ping                                  -> Api-Version: 1.50
//!   POST /v1.50/containers/create                -> 201 {"Id": ...}
//!   POST /v1.50/containers/ID/attach?stream=1... -> 101 UPGRADED, then frames
//!   POST /v1.50/containers/ID/wait?condition=removed -> 200 now, body at exit
//!   POST /v1.50/containers/ID/start              -> 204
//! ```
//!
//! Try it by hand: `curl --unix-socket /run/dockyard.sock
//! http://d/v1.50/containers/json?all=1`.
//!
//! The parts:
//!
//! - `http`: the requests and responses, including the chunked body `wait`
//!   answers with, its head flushed at once;
//! - `routes`: path and method to handler, and docker's error shapes;
//! - `containers`: the container endpoints, `attach` and its hijack;
//! - `exec`: exec instances, run by the CLI's own `dockyard exec`;
//! - `images`: list, tag, history, inspect, delete, prune, save, load,
//!   commit;
//! - `registry`: pull, push and `auth`, with the client's credentials;
//! - `build`: the classic builder, `dockyard build` on the sent context;
//! - `jsonstream`: the JSON progress stream those three answer with;
//! - `netvol`: networks and volumes;
//! - `verbs`: restart, pause, top, rename, changes, prune, resize, update;
//! - `archive`: `docker cp` both ways (`/archive`), and `export`;
//! - `stats`: usage in docker's JSON, streamed or once;
//! - `df`: `system/df`, item by item;
//! - `listen`: unix sockets, TCP, and systemd's socket activation
//!   (`-H fd://`);
//! - `tls`: TCP with mutual TLS (`--tlsverify`), rustls;
//! - `events`: the event journal, streamed;
//! - `starter`: why containers are started from a single-threaded helper
//!   process, and never from the service's threads.
//!
//! Containers do not depend on the service: each has its own monitor, as
//! under the CLI, so stopping the service stops no container (what dockerd
//! calls live-restore, here by construction). The service keeps no state
//! that matters beyond a request: the records on disk are the truth.

mod archive;
mod attach_log;
mod build;
mod containers;
mod df;
mod events;
mod exec;
mod http;
mod images;
mod jsonstream;
mod listen;
mod netvol;
mod process;
mod registry;
mod resources;
pub(crate) use registry::base64_decode;
mod routes;
mod search;
mod starter;
mod stats;
mod tls;
mod verbs;

use std::collections::HashMap;
use std::io::BufReader;
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use dockyard::Engine;

/// The Engine API version served, and the oldest one accepted.
pub const API_VERSION: &str = "1.50";
pub const MIN_API_VERSION: &str = "1.24";

/// `system service`'s options.
pub struct Options {
    /// `unix:///path/to.sock`, `tcp://127.0.0.1:PORT` or `fd://` (see the
    /// listen module).
    pub host: String,
    /// Exit after this many seconds without a connection; 0: never
    /// (podman's `--time`).
    pub idle: Duration,
    /// `--tlsverify --tlscacert --tlscert --tlskey`, for TCP.
    pub tls: TlsFiles,
}

/// dockerd's TLS flags (see the tls module).
#[derive(Debug, Clone, Default)]
pub struct TlsFiles {
    pub verify: bool,
    pub ca: Option<std::path::PathBuf>,
    pub cert: Option<std::path::PathBuf>,
    pub key: Option<std::path::PathBuf>,
}

/// What the connection threads share.
pub struct Service<'a> {
    pub engine: &'a Engine,
    starter: Mutex<starter::Starter>,
    /// Attaches made before the start, by container ID: the start hands
    /// each its connection to the monitor.
    pending: Mutex<HashMap<String, Vec<std::sync::mpsc::Sender<UnixStream>>>>,
    /// The exit codes attach streams saw, for `wait?condition=removed`
    /// (which must give the code of a container that is gone).
    exits: Mutex<HashMap<String, i32>>,
    /// Exec instances (`docker exec`), by exec ID.
    execs: exec::Execs,
    /// Stopped containers taken off their first network, and which (see
    /// the netvol module: docker-compose 1.x's disconnect and connect).
    unplugged: Mutex<HashMap<String, String>>,
    active: AtomicUsize,
    last_active: Mutex<Instant>,
}

/// Lock a mutex, even one a panicked thread left poisoned: every map here
/// stays consistent between statements.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Serve the Engine API on `opts.host` until idle for `opts.idle`.
pub fn serve(engine: &Engine, opts: &Options) -> Result<()> {
    // First, while this process has one thread (see the starter module).
    let starter = starter::spawn(engine)?;
    // A client that vanishes mid-answer must cost its connection, not the
    // service: writing to its closed socket is then EPIPE, an error the
    // handler sees, instead of SIGPIPE, which the CLI's main restores to
    // kill the process (right for `dockyard ps | head`, fatal for a
    // server). After the starter's fork, so that the starter, and the
    // monitors and containers it makes, keep the default. (The programs
    // this process spawns, `dockyard exec`, get the default back from
    // `std::process::Command`.)
    // SAFETY: setting a signal's disposition to SIG_IGN installs no handler.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    // SIGTERM (systemd's stop, `kill`) and SIGINT (Ctrl-C): a clean
    // shutdown, as dockerd's, noted here and acted on by the accept loop.
    shutdown::install();
    // A host of a cluster follows its overlay networks (cluster::follow).
    dockyard::cluster::follow::start(engine, dockyard::network::net_config(engine))?;
    let listener = listen::listen(&opts.host, &opts.tls)?;
    eprintln!(
        "dockyard: API listening on {} (Engine API {API_VERSION})",
        listener.describe()
    );
    let service = Service {
        engine,
        starter: Mutex::new(starter),
        pending: Mutex::new(HashMap::new()),
        exits: Mutex::new(HashMap::new()),
        execs: std::sync::Arc::new(Mutex::new(HashMap::new())),
        unplugged: Mutex::new(HashMap::new()),
        active: AtomicUsize::new(0),
        last_active: Mutex::new(Instant::now()),
    };
    let result = std::thread::scope(|s| -> Result<()> {
        loop {
            if !wait_for_client(&listener, &service, opts.idle)? {
                return Ok(()); // idle for --time seconds
            }
            if shutdown::requested() {
                // Close the listener (and its socket file) and leave with
                // 0 at once: streams still open (`logs -f`, `events`,
                // attaches) end with the process, as dockerd's do. The
                // containers run on under their own monitors (live-restore
                // by design), and the starter exits at its socket's EOF.
                eprintln!("dockyard: API shutting down (signal)");
                if let listen::Listener::Unix(_, path) = &listener {
                    let _ = std::fs::remove_file(path);
                }
                std::process::exit(0);
            }
            let conn = match listener.accept() {
                Ok(c) => c,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                // A TCP client that connected and reset before we took it.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionAborted => continue,
                Err(e) => return Err(e).context("accept"),
            };
            service.active.fetch_add(1, Ordering::SeqCst);
            let svc = &service;
            s.spawn(move || {
                if let Err(e) = connection(svc, conn) {
                    if !client_left(&e) {
                        eprintln!("dockyard: API connection: {e:#}");
                    }
                }
                *lock(&svc.last_active) = Instant::now();
                svc.active.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    if let listen::Listener::Unix(_, path) = &listener {
        let _ = std::fs::remove_file(path);
    }
    result
}

/// The service's stop signals: a flag set by the handler (the only thing
/// a handler may safely do), read by the accept loop, which a signal wakes
/// from its `poll` with EINTR.
mod shutdown {
    use std::sync::atomic::{AtomicBool, Ordering};

    static REQUESTED: AtomicBool = AtomicBool::new(false);

    extern "C" fn note(_: libc::c_int) {
        REQUESTED.store(true, Ordering::SeqCst);
    }

    /// Handle SIGTERM and SIGINT from now on (without SA_RESTART).
    pub fn install() {
        for sig in [libc::SIGTERM, libc::SIGINT] {
            // SAFETY: the handler only stores to an atomic, which is
            // async-signal-safe; the struct is zeroed and then filled in.
            unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = note as extern "C" fn(libc::c_int) as usize;
                libc::sigemptyset(&mut sa.sa_mask);
                libc::sigaction(sig, &sa, std::ptr::null_mut());
            }
        }
    }

    pub fn requested() -> bool {
        REQUESTED.load(Ordering::SeqCst)
    }
}

/// Whether an error is only the client leaving mid-answer (it read the
/// exit code and closed): nothing to report.
fn client_left(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>().is_some_and(|io| {
            matches!(
                io.kind(),
                std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
            )
        })
    })
}

/// Bind the socket, mode 0660, group `dockyard` if it exists.
///
/// Security: whoever can connect to this socket can run a privileged
/// container, bind-mount `/` and become root on the host: access to it *is*
/// root. So it is created under a umask of 0o177 (never, even for an
/// instant, connectable by others), then opened to its group only: 0660,
/// group `dockyard` when that group exists (docker's `docker` group: an
/// administrator adds to it exactly the people who may be root), else
/// root's own group, so that only root can connect. It is bound under a
/// name of this process's own and renamed into place once its owner and
/// mode are final: a client that finds the socket finds it as it will stay.
pub(crate) fn bind(path: &Path) -> Result<UnixListener> {
    if path.exists() {
        // A live service answers; a dead one's socket is stale.
        if UnixStream::connect(path).is_ok() {
            bail!("{}: another service is listening there", path.display());
        }
        std::fs::remove_file(path)
            .with_context(|| format!("removing the stale socket {}", path.display()))?;
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let staged = path.with_file_name(format!(
        ".{}.{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("sock"),
        std::process::id()
    ));
    let _ = std::fs::remove_file(&staged);
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let bound = UnixListener::bind(&staged);
    nix::sys::stat::umask(old);
    let listener = bound.with_context(|| format!("binding {}", staged.display()))?;
    let placed = finish_socket(&staged).and_then(|()| {
        std::fs::rename(&staged, path).with_context(|| format!("renaming to {}", path.display()))
    });
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&staged);
        return Err(e);
    }
    Ok(listener)
}

/// The bound socket's final owner and mode (see [`bind`]).
fn finish_socket(path: &Path) -> Result<()> {
    let group = nix::unistd::Group::from_name("dockyard")
        .ok()
        .flatten()
        .map(|g| g.gid)
        .unwrap_or_else(|| nix::unistd::Gid::from_raw(0));
    nix::unistd::chown(path, Some(nix::unistd::Uid::from_raw(0)), Some(group))
        .or_else(|e| {
            // A rootless engine owns the socket itself; root's group is
            // not its to give.
            if nix::unistd::geteuid().is_root() {
                Err(e)
            } else {
                Ok(())
            }
        })
        .with_context(|| format!("chown {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .with_context(|| format!("chmod 0660 {}", path.display()))
}

/// Wait until a client connects (true), or until the service has been
/// idle, no connection open, for `idle` (false; never when it is zero).
fn wait_for_client(listener: &listen::Listener, service: &Service, idle: Duration) -> Result<bool> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    loop {
        let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(200u16)) {
            _ if shutdown::requested() => return Ok(true),
            Ok(n) if n > 0 => return Ok(true),
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(anyhow!("poll on the API socket: {e}")),
        }
        let quiet = service.active.load(Ordering::SeqCst) == 0
            && lock(&service.last_active).elapsed() >= idle;
        if !idle.is_zero() && quiet {
            return Ok(false);
        }
    }
}

/// One connection: requests, one after another, until the client closes it
/// or a handler takes it over (attach).
fn connection(service: &Service, conn: UnixStream) -> Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    loop {
        let req = match http::read_request(&mut reader) {
            Ok(Some(r)) => r,
            Ok(None) => return Ok(()),
            Err(e) => {
                // A head we cannot parse: answer 400, then close, since we
                // no longer know where the next request would start.
                let msg = format!("{e:#}");
                let _ = http::write_response(&mut &conn, &http::Response::error(400, &msg), false);
                return Ok(());
            }
        };
        let keep = req.keep_alive();
        match routes::handle(service, &req, &conn, reader.buffer())? {
            routes::Outcome::Done => {}
            routes::Outcome::TakenOver => return Ok(()),
        }
        if !keep {
            return Ok(());
        }
    }
}
