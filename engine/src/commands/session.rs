//! `docker attach`'s client: a person joins a running container's stdio.
//!
//! The container's stdio belongs to its monitor (see `container::monitor`,
//! and the `dockyard-monitor` crate's `pump`), so attaching means talking
//! to the monitor, through a unix socket in the container's directory,
//! `attach.sock`. The socket's server side and the framing of the stream
//! are the monitor crate's (`dockyard_monitor::attach`); this is the client
//! (`run -it` and `start -ai` use it too).
//!
//! The client handles the rest, as docker's does: with a terminal, raw mode
//! and the detach keys (Ctrl-P Ctrl-Q by default: leave, the container goes
//! on); without one, Ctrl-C and the other signals go on to the container
//! (`--sig-proxy`). When the container exits the monitor closes the
//! connections, and the client exits with the container's code.

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use super::Code;
use crate::cli::AttachArgs;
pub use dockyard::container::parse_detach_keys;
use dockyard::container::{self, config_of, connect, DetachKeys};
use dockyard::state::{Record, Status};
use dockyard::Engine;

use dockyard_monitor::attach::{frame, frames};
use dockyard_monitor::attach::{EXIT, RESIZE, STDERR, STDIN};

/// `dockyard attach`'s flags.
pub struct Options<'a> {
    pub no_stdin: bool,
    pub sig_proxy: bool,
    pub detach_keys: &'a str,
}

/// `docker attach`: join a running container's stdio through its monitor.
pub fn attach_command(engine: &Engine, args: &AttachArgs) -> Result<Code> {
    let record = engine.containers.resolve(&args.container)?;
    attach(
        engine,
        &record,
        &Options {
            no_stdin: args.no_stdin,
            sig_proxy: args.sig_proxy,
            detach_keys: &args.detach_keys,
        },
    )
}

/// `dockyard attach`: connect to the monitor of `record` and copy until the
/// container exits (its exit code) or the detach keys are typed (1, with
/// docker's "read escape sequence").
pub fn attach(engine: &Engine, record: &Record, opts: &Options) -> Result<i32> {
    let record = engine.containers.reconcile(record.clone())?;
    if record.state.status == Status::Paused {
        bail!("You cannot attach to a paused container, unpause it first");
    }
    if record.state.status != Status::Running {
        bail!("You cannot attach to a stopped container, start it first");
    }
    let sock = connect(engine, &record.id)?;
    dockyard::events::container(engine, &record, "attach", &[]);
    session(engine, &record, sock, opts, false)
}

/// The client's side of an attached session, on a connected socket. Also
/// what `run -it` and `start -ai` do, after starting the container under a
/// detached monitor: there, detaching is silent and exits 0, as in docker.
pub fn session(
    engine: &Engine,
    record: &Record,
    mut sock: UnixStream,
    opts: &Options,
    from_run: bool,
) -> Result<i32> {
    let config = config_of(record)?;
    let keys = parse_detach_keys(opts.detach_keys)?;
    let stdin_is_tty = nix::unistd::isatty(std::io::stdin()).unwrap_or(false);
    let send_stdin = !opts.no_stdin && config.open_stdin;
    if config.tty && send_stdin && !stdin_is_tty {
        return Err(super::ClientRefusal("the input device is not a TTY".into()).into());
    }
    let mask = signals_to_watch(config.tty, opts.sig_proxy);
    mask.thread_block().context("blocking signals")?;
    let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .context("signalfd")?;
    if config.tty {
        send_window_size(&mut sock);
    }
    let raw = (config.tty && send_stdin).then(dockyard_monitor::pump::RawMode::enter);
    let mut pump = Pump {
        engine,
        record,
        sock,
        signals,
        stdin_open: send_stdin,
        // The detach keys are looked for only with a terminal, as in
        // docker; elsewhere every byte is data.
        detach: DetachKeys::new(keys, config.tty),
        incoming: Vec::new(),
        exit_code: None,
        buf: vec![0u8; 32 * 1024],
    };
    let detached = pump.run()?;
    drop(raw);
    mask.thread_unblock().context("unblocking signals")?;
    if detached {
        if from_run {
            return Ok(0);
        }
        eprintln!("read escape sequence");
        return Ok(1);
    }
    exit_code(engine, record, pump.exit_code)
}

/// The signals a session handles: SIGWINCH for the window size with a
/// terminal; without one, with --sig-proxy, the signals a person sends to
/// "the program".
fn signals_to_watch(tty: bool, sig_proxy: bool) -> SigSet {
    let mut mask = SigSet::empty();
    if tty {
        mask.add(Signal::SIGWINCH);
    } else if sig_proxy {
        for s in dockyard_monitor::pump::PROXIED_SIGNALS {
            mask.add(s);
        }
    }
    mask
}

/// Tell the monitor our terminal's size, for the container's.
fn send_window_size(sock: &mut UnixStream) {
    if let Some((rows, cols)) = dockyard_monitor::pump::our_window_size() {
        let mut data = rows.to_be_bytes().to_vec();
        data.extend_from_slice(&cols.to_be_bytes());
        let _ = sock.write_all(&frame(RESIZE, &data));
    }
}

/// The copying between our stdio and the monitor's socket.
struct Pump<'a> {
    engine: &'a Engine,
    record: &'a Record,
    sock: UnixStream,
    signals: SignalFd,
    /// Until our input ends (the container's stays open for others).
    stdin_open: bool,
    detach: DetachKeys,
    /// Bytes from the monitor not yet a whole frame.
    incoming: Vec<u8>,
    /// The container's exit code, when the monitor sent it.
    exit_code: Option<i32>,
    buf: Vec<u8>,
}

impl Pump<'_> {
    /// Copy until the monitor closes the connection (false) or the person
    /// types the detach keys (true).
    fn run(&mut self) -> Result<bool> {
        let stdin = std::io::stdin();
        loop {
            let mut fds = vec![
                PollFd::new(self.sock.as_fd(), PollFlags::POLLIN),
                PollFd::new(self.signals.as_fd(), PollFlags::POLLIN),
            ];
            if self.stdin_open {
                fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e).context("poll"),
            }
            let ready: Vec<bool> = fds.iter().map(|f| f.any().unwrap_or(false)).collect();
            drop(fds);
            if ready[0] && !self.read_monitor() {
                return Ok(false);
            }
            if ready[1] {
                self.relay_signals();
            }
            if self.stdin_open && ready[2] && self.read_stdin()? {
                return Ok(true);
            }
        }
    }

    /// What the monitor sent: output to print, or the exit code. False
    /// when the connection is closed.
    fn read_monitor(&mut self) -> bool {
        let n = match self.sock.read(&mut self.buf) {
            Ok(0) | Err(_) => return false,
            Ok(n) => n,
        };
        self.incoming.extend_from_slice(&self.buf[..n]);
        for (kind, data) in frames(&mut self.incoming) {
            if kind == EXIT && data.len() == 4 {
                self.exit_code = Some(i32::from_be_bytes([data[0], data[1], data[2], data[3]]));
                continue;
            }
            let _ = if kind == STDERR {
                std::io::stderr().write_all(&data)
            } else {
                std::io::stdout()
                    .write_all(&data)
                    .and_then(|()| std::io::stdout().flush())
            };
        }
        true
    }

    /// A new window size goes to the monitor; with --sig-proxy, the other
    /// signals go to the container, as `dockyard kill -s SIG` would send them.
    fn relay_signals(&mut self) {
        while let Ok(Some(info)) = self.signals.read_signal() {
            let signo = info.ssi_signo as i32;
            if signo == libc::SIGWINCH {
                send_window_size(&mut self.sock);
            } else if let Ok(sig) = Signal::try_from(signo) {
                if let Ok(now) = self.engine.containers.load(&self.record.id) {
                    let _ = container::signal(self.engine, &now, sig);
                }
            }
        }
    }

    /// Our input goes to the container, but for the detach keys. True when
    /// they were typed.
    fn read_stdin(&mut self) -> Result<bool> {
        let n = match nix::unistd::read(std::io::stdin(), &mut self.buf) {
            Ok(0) | Err(_) => {
                // Our input ended; the container's stays open for others.
                self.stdin_open = false;
                return Ok(false);
            }
            Ok(n) => n,
        };
        let (out, detach) = self.detach.feed(&self.buf[..n]);
        if !out.is_empty() {
            self.sock
                .write_all(&frame(STDIN, &out))
                .context("sending input to the monitor")?;
        }
        Ok(detach)
    }
}

/// The exit code of a session that ended with the connection. The monitor
/// sends the code before it closes the connection, and records it just
/// after: wait for that, so that a `ps` or `inspect` after us sees the exit
/// (an error here is a --rm container, gone).
fn exit_code(engine: &Engine, record: &Record, sent: Option<i32>) -> Result<i32> {
    if let Some(code) = sent {
        let _ = container::wait_until_exited(engine, &record.id, Duration::from_secs(10));
        return Ok(code);
    }
    // Else the monitor died, or the container exited (or is being
    // restarted by its policy): the record says what reconciliation finds.
    container::wait_until_exited(engine, &record.id, Duration::from_secs(10))?;
    let r = engine
        .containers
        .reconcile(engine.containers.load(&record.id)?)?;
    match r.state.status {
        Status::Running | Status::Restarting | Status::Paused => Ok(0),
        _ => Ok(r.state.exit_code),
    }
}
