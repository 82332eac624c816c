//! Moving bytes between a container and a person while waiting for it.
//!
//! Without `-t`, the container writes to two pipes, stdout and stderr, and
//! the monitor copies each to the log and, in the foreground, to our own
//! stdout and stderr. With `-t` the container gets a pseudo-terminal
//! instead: one pty, which the container's first process allocates from its
//! own devpts (lab 02), its *slave* end as the container's stdin, stdout
//! and stderr and controlling terminal, its *master* end sent here. Then:
//!
//! - what the container prints comes out of the master (one stream: a
//!   terminal has no separate stderr, so docker logs it all as "stdout");
//! - what the person types goes into the master, with our own terminal in
//!   raw mode so that every key, Ctrl-C and Ctrl-D included, reaches the
//!   container's line discipline untouched, as `docker run -it` does;
//! - when our terminal is resized (SIGWINCH) the new size is set on the
//!   master, and the kernel tells the container's foreground program.
//!
//! Everything happens in one thread with poll(2): the signalfd (SIGCHLD for
//! the container's exit, and the signals to pass on), the outputs, and our
//! stdin.

use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;

use std::io::Result;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::{attach, context, jsonfile};

/// What to copy.
pub struct Streams {
    /// Read ends: the container's stdout and stderr pipes, or the pty master.
    pub outputs: Vec<(OwnedFd, &'static str)>,
    /// The container's stdin (a pipe, or the pty master) when it was
    /// started with `-i`: what our stdin and attached clients type goes here.
    pub input: Option<OwnedFd>,
    /// Copy our own stdin into `input` (`run -i` in the foreground).
    pub own_stdin: bool,
    /// The pty master, to pass window-size changes on.
    pub tty: Option<RawFd>,
    /// The attach socket (see the attach module): clients that connect get
    /// the output from then on, and their input goes to `input`.
    pub listener: Option<UnixListener>,
    /// Clients attached before the container started (`run -it`).
    pub clients: Vec<attach::Client>,
}

/// The signals a person sends to "the program" (Ctrl-C, a `kill` of the
/// CLI, a closed terminal, Ctrl-\), which docker's `--sig-proxy` passes on
/// to the container.
pub const PROXIED_SIGNALS: [Signal; 4] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
];

/// What our stdin goes through on its way to the container's: given what
/// was read, the bytes to pass on, and whether the person asked to leave.
/// The engine's `exec -it` looks for docker's detach keys with it.
pub type StdinFilter<'f> = &'f mut dyn FnMut(&[u8]) -> (Vec<u8>, bool);

/// Copy until `pid` exits and its outputs close; return its exit code
/// (128+N for signal N). With `attach`, output also goes to our stdout and
/// stderr, and SIGINT/SIGTERM/SIGHUP/SIGQUIT sent to us go on to `pid`.
pub fn pump(
    pid: Pid,
    streams: Streams,
    log: Option<&mut jsonfile::Writer>,
    attach: bool,
) -> Result<i32> {
    // Without a filter nobody leaves early: there is always a status.
    Ok(pump_until(pid, streams, log, attach, None)?.unwrap_or(255))
}

/// [`pump`] in the foreground, our stdin through `filter`: `None` when it
/// said to leave (then `pid` goes on, and the caller still holds what it
/// needs of it), else the exit code.
pub fn pump_or_detach(pid: Pid, streams: Streams, filter: StdinFilter) -> Result<Option<i32>> {
    pump_until(pid, streams, None, true, Some(filter))
}

fn pump_until<'a>(
    pid: Pid,
    mut streams: Streams,
    log: Option<&'a mut jsonfile::Writer>,
    attach: bool,
    filter: Option<StdinFilter<'a>>,
) -> Result<Option<i32>> {
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    if attach {
        for s in PROXIED_SIGNALS {
            mask.add(s);
        }
        if streams.tty.is_some() {
            mask.add(Signal::SIGWINCH);
        }
    }
    mask.thread_block()
        .map_err(|e| context("blocking signals for the monitor", e))?;
    let sfd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(|e| context("signalfd", e))?;
    if let (Some(master), true) = (streams.tty, attach) {
        copy_window_size(master);
    }
    // Writes to the container's stdin never block the monitor (which must
    // keep reading the container's output meanwhile, or both would wait on
    // each other): what does not fit waits in `pending`, and is sent when
    // poll says the pipe or pty has room.
    if let Some(input) = &streams.input {
        set_nonblocking(input)?;
    }
    let clients = std::mem::take(&mut streams.clients);
    let mut p = Pump {
        pid,
        open: streams.outputs.iter().map(|_| true).collect(),
        stdin_open: streams.own_stdin && streams.input.is_some(),
        input_ended: false,
        streams,
        log,
        attach,
        sfd,
        pending: Vec::new(),
        clients,
        // The container may have exited before SIGCHLD was blocked: then
        // the signal was discarded and the signalfd will never report it.
        // So ask waitpid now, and again whenever poll times out.
        status: reap(pid),
        buf: vec![0u8; 64 * 1024],
        filter,
        detached: false,
    };
    p.run()?;
    mask.thread_unblock()
        .map_err(|e| context("unblocking signals", e))?;
    if p.detached {
        return Ok(None);
    }
    let code = p.status.unwrap_or(255);
    // Tell the attached clients how it ended; dropping them then closes
    // their connections.
    let exit = attach::frame(attach::EXIT, &code.to_be_bytes());
    for mut c in p.clients {
        let _ = c.stream.write_all(&exit);
    }
    Ok(Some(code))
}

/// The exit code of `pid` if it has ended (128+N for signal N).
fn reap(pid: Pid) -> Option<i32> {
    match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
        Ok(WaitStatus::Exited(_, code)) => Some(code),
        Ok(WaitStatus::Signaled(_, sig, _)) => Some(128 + sig as i32),
        _ => None,
    }
}

/// Our stdin, fd 0.
fn stdin() -> BorrowedFd<'static> {
    // SAFETY: fd 0 stays open for the life of this process.
    unsafe { BorrowedFd::borrow_raw(0) }
}

/// The state of one [`pump`]: what is open, what waits to be written, who
/// is attached, and the exit status once there is one.
struct Pump<'a> {
    pid: Pid,
    streams: Streams,
    log: Option<&'a mut jsonfile::Writer>,
    attach: bool,
    sfd: SignalFd,
    /// Bytes for the container's stdin that it has not taken yet.
    pending: Vec<u8>,
    clients: Vec<attach::Client>,
    status: Option<i32>,
    /// Which of `streams.outputs` have not reached EOF.
    open: Vec<bool>,
    stdin_open: bool,
    /// A client ended its input (an empty stdin frame: the Engine API's
    /// `run -i` half-closing its attach): the container's stdin closes
    /// once `pending` is written, as docker's StdinOnce.
    input_ended: bool,
    buf: Vec<u8>,
    /// What our stdin goes through ([`pump_or_detach`]).
    filter: Option<StdinFilter<'a>>,
    /// The filter said to leave: the loop ends, the container goes on.
    detached: bool,
}

impl Pump<'_> {
    /// The loop: wait for something to do, do it, until the container has
    /// exited and its outputs are drained.
    fn run(&mut self) -> Result<()> {
        while !self.detached && (self.status.is_none() || self.open.iter().any(|o| *o)) {
            // Once the container's PID 1 is gone the kernel kills the rest of
            // its PID namespace, so the outputs reach EOF soon; don't wait
            // forever on a descriptor some escaped process still holds.
            let timeout = PollTimeout::from(if self.status.is_some() {
                1000u16
            } else {
                500u16
            });
            let Some(ready) = self.wait(timeout)? else {
                continue;
            };
            if ready.is_empty() {
                if self.status.is_some() {
                    break;
                }
                self.status = reap(self.pid);
                continue;
            }
            self.copy_outputs(&ready)?;
            if ready.contains(&Slot::Stdin) {
                self.read_stdin();
            }
            if ready.contains(&Slot::Listener) {
                if let Some(l) = &self.streams.listener {
                    while let Some(c) = attach::Client::accept(l) {
                        self.clients.push(c);
                    }
                }
            }
            self.read_clients(&ready);
            self.feed_input();
            if ready.contains(&Slot::Signals) {
                self.take_signals();
            }
        }
        Ok(())
    }

    /// poll(2) on what we want to hear from now; the slots that are ready
    /// (none: the timeout), or `None` when a signal interrupted the wait.
    fn wait(&self, timeout: PollTimeout) -> Result<Option<Vec<Slot>>> {
        // Only what we want to hear from now: a descriptor at EOF (a closed
        // pipe) would report POLLHUP at every call, asked or not, and turn
        // the loop into a busy one.
        let running = self.status.is_none();
        let idle = self.pending.is_empty();
        let mut fds = vec![PollFd::new(self.sfd.as_fd(), PollFlags::POLLIN)];
        let mut slots = vec![Slot::Signals];
        for (i, ((fd, _), on)) in self.streams.outputs.iter().zip(&self.open).enumerate() {
            if *on {
                fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
                slots.push(Slot::Output(i));
            }
        }
        if self.stdin_open && running && idle {
            fds.push(PollFd::new(stdin(), PollFlags::POLLIN));
            slots.push(Slot::Stdin);
        }
        if let (Some(input), false, true) = (&self.streams.input, idle, running) {
            fds.push(PollFd::new(input.as_fd(), PollFlags::POLLOUT));
            slots.push(Slot::Input);
        }
        if let (Some(l), true) = (&self.streams.listener, running) {
            fds.push(PollFd::new(l.as_fd(), PollFlags::POLLIN));
            slots.push(Slot::Listener);
        }
        if running && idle {
            for (k, c) in self.clients.iter().enumerate() {
                fds.push(PollFd::new(c.stream.as_fd(), PollFlags::POLLIN));
                slots.push(Slot::Client(k));
            }
        }
        match poll(&mut fds, timeout) {
            Ok(_) => Ok(Some(
                fds.iter()
                    .zip(&slots)
                    .filter(|(f, _)| f.any().unwrap_or(false))
                    .map(|(_, s)| *s)
                    .collect(),
            )),
            Err(nix::errno::Errno::EINTR) => Ok(None),
            Err(e) => Err(context("poll", e)),
        }
    }

    /// What the container printed: to the log, to our terminal when
    /// attached, and to every attached client.
    fn copy_outputs(&mut self, ready: &[Slot]) -> Result<()> {
        for (i, (fd, stream)) in self.streams.outputs.iter().enumerate() {
            if !ready.contains(&Slot::Output(i)) || !self.open[i] {
                continue;
            }
            match nix::unistd::read(fd, &mut self.buf) {
                // EIO: a pty master whose slave side every process has closed.
                Ok(0) | Err(nix::errno::Errno::EIO) => self.open[i] = false,
                Ok(n) => {
                    let data = &self.buf[..n];
                    if let Some(log) = self.log.as_deref_mut() {
                        log.write(stream, data)?;
                    }
                    if self.attach {
                        let _ = if *stream == "stderr" {
                            std::io::stderr().write_all(data)
                        } else {
                            std::io::stdout()
                                .write_all(data)
                                .and_then(|()| std::io::stdout().flush())
                        };
                    }
                    if !self.clients.is_empty() {
                        let kind = if *stream == "stderr" {
                            attach::STDERR
                        } else {
                            attach::STDOUT
                        };
                        let frame = attach::frame(kind, data);
                        // A client that cannot keep up (2 s) is dropped.
                        self.clients
                            .retain_mut(|c| c.stream.write_all(&frame).is_ok());
                    }
                }
                Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => {}
                Err(_) => self.open[i] = false,
            }
        }
        Ok(())
    }

    /// What the person typed, for the container's stdin.
    fn read_stdin(&mut self) {
        match nix::unistd::read(stdin(), &mut self.buf) {
            Ok(0) | Err(_) => {
                self.stdin_open = false;
                // With a pipe, EOF closes the container's stdin, as docker's
                // `run -i` does; a terminal has no EOF of its own (Ctrl-D is
                // a byte), and a pty master stays.
                if self.streams.tty.is_none() && self.pending.is_empty() {
                    self.streams.input = None;
                }
            }
            Ok(n) => match self.filter.as_mut() {
                Some(filter) => {
                    // What came before the keys still goes in (feed_input,
                    // later in this turn of the loop), then the loop ends.
                    let (pass, leave) = filter(&self.buf[..n]);
                    self.pending.extend_from_slice(&pass);
                    self.detached = leave;
                }
                None => self.pending.extend_from_slice(&self.buf[..n]),
            },
        }
    }

    /// What attached clients sent: input, and their terminal's new size.
    fn read_clients(&mut self, ready: &[Slot]) {
        let mut gone = Vec::new();
        for (k, c) in self.clients.iter_mut().enumerate() {
            if !ready.contains(&Slot::Client(k)) {
                continue;
            }
            let (frames, open) = c.read();
            if !open {
                gone.push(k);
            }
            for (kind, data) in frames {
                match kind {
                    attach::STDIN if data.is_empty() && self.streams.tty.is_none() => {
                        self.input_ended = true
                    }
                    attach::STDIN if self.streams.input.is_some() => {
                        self.pending.extend_from_slice(&data)
                    }
                    attach::RESIZE if data.len() == 4 => {
                        if let Some(master) = self.streams.tty {
                            let rows = u16::from_be_bytes([data[0], data[1]]);
                            let cols = u16::from_be_bytes([data[2], data[3]]);
                            set_window_size(master, rows, cols);
                        }
                    }
                    attach::MARK => {
                        // Every entry logged so far has a time up to this one.
                        let now = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |d| d.as_nanos() as u64);
                        let answer = attach::frame(attach::MARK, &now.to_be_bytes());
                        if c.stream.write_all(&answer).is_err() {
                            gone.push(k);
                        }
                    }
                    _ => {}
                }
            }
        }
        // A client that left and whose mark could not be answered is here
        // twice, side by side.
        gone.dedup();
        for k in gone.into_iter().rev() {
            self.clients.remove(k);
        }
    }

    /// Send what is pending to the container's stdin, as far as it goes
    /// (non-blocking: EAGAIN leaves it for when poll reports room).
    fn feed_input(&mut self) {
        let Some(input) = &self.streams.input else {
            self.pending.clear();
            return;
        };
        if self.pending.is_empty() {
            if self.input_ended {
                self.streams.input = None;
            }
            return;
        }
        match nix::unistd::write(input, &self.pending) {
            Ok(n) => {
                self.pending.drain(..n);
            }
            Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => {}
            // EPIPE: the container closed its stdin; drop the rest.
            Err(_) => self.pending.clear(),
        }
        // All written: the input ends now if it was to end, not at the next
        // wakeup (a `wc -l` prints nothing until its EOF, so there might be
        // none, and the container would wait for that EOF forever).
        let s = &self.streams;
        let own_ended = !self.stdin_open && s.own_stdin && s.tty.is_none();
        if self.pending.is_empty() && (own_ended || self.input_ended) {
            self.streams.input = None;
        }
    }

    /// The container's exit (SIGCHLD), our terminal's new size (SIGWINCH),
    /// and the signals to pass on.
    fn take_signals(&mut self) {
        while let Ok(Some(info)) = self.sfd.read_signal() {
            let signo = info.ssi_signo as i32;
            if signo == libc::SIGCHLD {
                if self.status.is_none() {
                    self.status = reap(self.pid);
                }
            } else if signo == libc::SIGWINCH {
                if let Some(master) = self.streams.tty {
                    copy_window_size(master);
                }
            } else if self.status.is_none() {
                if let Ok(sig) = Signal::try_from(signo) {
                    let _ = kill(self.pid, sig);
                }
            }
        }
    }
}

/// What one entry of the poll set stands for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Slot {
    Signals,
    Output(usize),
    Stdin,
    Input,
    Listener,
    Client(usize),
}

fn set_nonblocking(fd: &OwnedFd) -> Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let flags = fcntl(fd, FcntlArg::F_GETFL).map_err(|e| context("F_GETFL", e))?;
    let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
    fcntl(fd, FcntlArg::F_SETFL(flags)).map_err(|e| context("O_NONBLOCK", e))?;
    Ok(())
}

/// Our terminal's size onto the container's (TIOCGWINSZ, then TIOCSWINSZ).
fn copy_window_size(master: RawFd) {
    // SAFETY: winsize is plain old data; the ioctls read and write one.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        if libc::ioctl(1, libc::TIOCGWINSZ, &mut ws) == 0 {
            libc::ioctl(master, libc::TIOCSWINSZ, &ws);
        }
    }
}

/// Set the container's window size, as an attached client asked.
fn set_window_size(master: RawFd, rows: u16, cols: u16) {
    // SAFETY: winsize is plain old data; TIOCSWINSZ reads one.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        (ws.ws_row, ws.ws_col) = (rows, cols);
        libc::ioctl(master, libc::TIOCSWINSZ, &ws);
    }
}

/// Our terminal's size (rows, columns), if stdout or stdin is one: the
/// size a container's pty starts with.
pub fn our_window_size() -> Option<(u16, u16)> {
    for fd in [1, 0] {
        // SAFETY: winsize is plain old data; TIOCGWINSZ writes one.
        unsafe {
            let mut ws: libc::winsize = std::mem::zeroed();
            if libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) == 0 && ws.ws_row > 0 {
                return Some((ws.ws_row, ws.ws_col));
            }
        }
    }
    None
}

/// Our terminal in raw mode until dropped (only if stdin is a terminal).
pub struct RawMode(Option<nix::sys::termios::Termios>);

impl RawMode {
    pub fn enter() -> RawMode {
        use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
        let stdin = std::io::stdin();
        let Ok(saved) = tcgetattr(&stdin) else {
            return RawMode(None);
        };
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        if tcsetattr(&stdin, SetArg::TCSANOW, &raw).is_err() {
            return RawMode(None);
        }
        RawMode(Some(saved))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(saved) = &self.0 {
            let _ = nix::sys::termios::tcsetattr(
                std::io::stdin(),
                nix::sys::termios::SetArg::TCSANOW,
                saved,
            );
        }
    }
}
