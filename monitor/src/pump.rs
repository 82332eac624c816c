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

use crate::{attach, context, logs};

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

/// Copy until `pid` exits and its outputs close; return its exit code
/// (128+N for signal N). With `attach`, output also goes to our stdout and
/// stderr, and SIGINT/SIGTERM/SIGHUP/SIGQUIT sent to us go on to `pid`.
pub fn pump(
    pid: Pid,
    mut streams: Streams,
    mut log: Option<&mut logs::Writer>,
    attach: bool,
) -> Result<i32> {
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
    let mut pending: Vec<u8> = Vec::new();
    let mut clients = std::mem::take(&mut streams.clients);
    // The container may have exited before SIGCHLD was blocked: then the
    // signal was discarded and the signalfd will never report it. So ask
    // waitpid now, and again whenever poll times out.
    let reap = |pid: Pid| match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
        Ok(WaitStatus::Exited(_, code)) => Some(code),
        Ok(WaitStatus::Signaled(_, sig, _)) => Some(128 + sig as i32),
        _ => None,
    };
    let mut status = reap(pid);
    let mut open: Vec<bool> = streams.outputs.iter().map(|_| true).collect();
    let mut stdin_open = streams.own_stdin && streams.input.is_some();
    let mut buf = vec![0u8; 64 * 1024];
    // SAFETY: fd 0 stays open for the life of this process.
    let stdin = unsafe { BorrowedFd::borrow_raw(0) };
    while status.is_none() || open.iter().any(|o| *o) {
        // Once the container's PID 1 is gone the kernel kills the rest of its
        // PID namespace, so the outputs reach EOF soon; don't wait forever on
        // a descriptor some escaped process still holds.
        let timeout = PollTimeout::from(if status.is_some() { 1000u16 } else { 500u16 });
        // The poll set: only what we want to hear from now. A descriptor
        // at EOF (a closed pipe) would report POLLHUP at every call, asked
        // or not, and turn the loop into a busy one.
        let running = status.is_none();
        let mut fds = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        let mut slots = vec![Slot::Signals];
        for (i, ((fd, _), on)) in streams.outputs.iter().zip(&open).enumerate() {
            if *on {
                fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
                slots.push(Slot::Output(i));
            }
        }
        if stdin_open && running && pending.is_empty() {
            fds.push(PollFd::new(stdin, PollFlags::POLLIN));
            slots.push(Slot::Stdin);
        }
        if let (Some(input), false, true) = (&streams.input, pending.is_empty(), running) {
            fds.push(PollFd::new(input.as_fd(), PollFlags::POLLOUT));
            slots.push(Slot::Input);
        }
        if let (Some(l), true) = (&streams.listener, running) {
            fds.push(PollFd::new(l.as_fd(), PollFlags::POLLIN));
            slots.push(Slot::Listener);
        }
        if running && pending.is_empty() {
            for (k, c) in clients.iter().enumerate() {
                fds.push(PollFd::new(c.stream.as_fd(), PollFlags::POLLIN));
                slots.push(Slot::Client(k));
            }
        }
        let n = match poll(&mut fds, timeout) {
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(context("poll", e)),
        };
        if n == 0 {
            if status.is_some() {
                break;
            }
            status = reap(pid);
            continue;
        }
        let ready: Vec<Slot> = fds
            .iter()
            .zip(&slots)
            .filter(|(f, _)| f.any().unwrap_or(false))
            .map(|(_, s)| *s)
            .collect();
        drop(fds);
        let ready = |s: Slot| ready.contains(&s);
        for (i, (fd, stream)) in streams.outputs.iter().enumerate() {
            if !ready(Slot::Output(i)) || !open[i] {
                continue;
            }
            match nix::unistd::read(fd, &mut buf) {
                // EIO: a pty master whose slave side every process has closed.
                Ok(0) | Err(nix::errno::Errno::EIO) => open[i] = false,
                Ok(n) => {
                    if let Some(log) = log.as_deref_mut() {
                        log.write(stream, &buf[..n])?;
                    }
                    if attach {
                        let _ = if *stream == "stderr" {
                            std::io::stderr().write_all(&buf[..n])
                        } else {
                            std::io::stdout()
                                .write_all(&buf[..n])
                                .and_then(|()| std::io::stdout().flush())
                        };
                    }
                    if !clients.is_empty() {
                        let kind = if *stream == "stderr" {
                            attach::STDERR
                        } else {
                            attach::STDOUT
                        };
                        let frame = attach::frame(kind, &buf[..n]);
                        // A client that cannot keep up (2 s) is dropped.
                        clients.retain_mut(|c| c.stream.write_all(&frame).is_ok());
                    }
                }
                Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => {}
                Err(_) => open[i] = false,
            }
        }
        if ready(Slot::Stdin) {
            match nix::unistd::read(stdin, &mut buf) {
                Ok(0) | Err(_) => {
                    stdin_open = false;
                    // With a pipe, EOF closes the container's stdin, as
                    // docker's `run -i` does; a terminal has no EOF of its
                    // own (Ctrl-D is a byte), and a pty master stays.
                    if streams.tty.is_none() && pending.is_empty() {
                        streams.input = None;
                    }
                }
                Ok(n) => pending.extend_from_slice(&buf[..n]),
            }
        }
        if ready(Slot::Listener) {
            if let Some(l) = &streams.listener {
                while let Some(c) = attach::Client::accept(l) {
                    clients.push(c);
                }
            }
        }
        let mut gone = Vec::new();
        for (k, c) in clients.iter_mut().enumerate() {
            if !ready(Slot::Client(k)) {
                continue;
            }
            let (frames, open) = c.read();
            if !open {
                gone.push(k);
            }
            for (kind, data) in frames {
                match kind {
                    attach::STDIN if streams.input.is_some() => pending.extend_from_slice(&data),
                    attach::RESIZE if data.len() == 4 => {
                        if let Some(master) = streams.tty {
                            let rows = u16::from_be_bytes([data[0], data[1]]);
                            let cols = u16::from_be_bytes([data[2], data[3]]);
                            set_window_size(master, rows, cols);
                        }
                    }
                    _ => {}
                }
            }
        }
        for k in gone.into_iter().rev() {
            clients.remove(k);
        }
        // Send what is pending to the container's stdin, as far as it goes
        // (non-blocking: EAGAIN leaves it for when poll reports room).
        if !pending.is_empty() && streams.input.is_some() {
            if let Some(input) = &streams.input {
                match nix::unistd::write(input, &pending) {
                    Ok(n) => {
                        pending.drain(..n);
                    }
                    Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => {}
                    // EPIPE: the container closed its stdin; drop the rest.
                    Err(_) => pending.clear(),
                }
            }
            if pending.is_empty() && !stdin_open && streams.own_stdin && streams.tty.is_none() {
                streams.input = None;
            }
        } else if streams.input.is_none() {
            pending.clear();
        }
        if ready(Slot::Signals) {
            while let Ok(Some(info)) = sfd.read_signal() {
                let signo = info.ssi_signo as i32;
                if signo == libc::SIGCHLD {
                    if status.is_none() {
                        status = reap(pid);
                    }
                } else if signo == libc::SIGWINCH {
                    if let Some(master) = streams.tty {
                        copy_window_size(master);
                    }
                } else if status.is_none() {
                    if let Ok(sig) = Signal::try_from(signo) {
                        let _ = kill(pid, sig);
                    }
                }
            }
        }
    }
    mask.thread_unblock()
        .map_err(|e| context("unblocking signals", e))?;
    let code = status.unwrap_or(255);
    // Tell the attached clients how it ended; dropping them then closes
    // their connections.
    let exit = attach::frame(attach::EXIT, &code.to_be_bytes());
    for mut c in clients {
        let _ = c.stream.write_all(&exit);
    }
    Ok(code)
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
