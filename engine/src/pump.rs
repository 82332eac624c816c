//! Moving bytes between a container and a person while waiting for it.
//!
//! Without `-t`, the container writes to two pipes, stdout and stderr, and
//! the monitor copies each to the log and, in the foreground, to our own
//! stdout and stderr. With `-t` the container gets a pseudo-terminal
//! instead: one pty, its *slave* end as the container's stdin, stdout and
//! stderr and controlling terminal, its *master* end held here. Then:
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
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use anyhow::{Context, Result};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::logs;

/// What to copy.
pub struct Streams {
    /// Read ends: the container's stdout and stderr pipes, or the pty master.
    pub outputs: Vec<(OwnedFd, &'static str)>,
    /// Where our stdin goes (the pty master), when it is attached.
    pub input: Option<OwnedFd>,
    /// The pty master, to pass window-size changes on.
    pub tty: Option<RawFd>,
}

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
        for s in [
            Signal::SIGINT,
            Signal::SIGTERM,
            Signal::SIGHUP,
            Signal::SIGQUIT,
        ] {
            mask.add(s);
        }
        if streams.tty.is_some() {
            mask.add(Signal::SIGWINCH);
        }
    }
    mask.thread_block()
        .context("blocking signals for the monitor")?;
    let sfd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .context("signalfd")?;
    if let Some(master) = streams.tty {
        copy_window_size(master);
    }
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
    let mut stdin_open = streams.input.is_some();
    let mut buf = vec![0u8; 64 * 1024];
    // SAFETY: fd 0 stays open for the life of this process.
    let stdin = unsafe { BorrowedFd::borrow_raw(0) };
    while status.is_none() || open.iter().any(|o| *o) {
        // Once the container's PID 1 is gone the kernel kills the rest of its
        // PID namespace, so the outputs reach EOF soon; don't wait forever on
        // a descriptor some escaped process still holds.
        let timeout = PollTimeout::from(if status.is_some() { 1000u16 } else { 500u16 });
        // Only the descriptors still read go into the set: poll reports
        // POLLHUP whatever the events asked for, so a pipe already at EOF
        // left in it would wake us at once, again and again, and this loop
        // would spin on a CPU until the kernel has torn the container's
        // namespaces down and SIGCHLD comes.
        let watch_stdin = stdin_open && status.is_none();
        let mut fds = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        let mut slot = Vec::with_capacity(open.len() + 1);
        for ((fd, _), on) in streams.outputs.iter().zip(&open) {
            slot.push(on.then_some(fds.len()));
            if *on {
                fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
            }
        }
        slot.push(watch_stdin.then_some(fds.len()));
        if watch_stdin {
            fds.push(PollFd::new(stdin, PollFlags::POLLIN));
        }
        let n = match poll(&mut fds, timeout) {
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e).context("poll"),
        };
        if n == 0 {
            if status.is_some() {
                break;
            }
            status = reap(pid);
            continue;
        }
        let fired: Vec<bool> = fds.iter().map(|f| f.any().unwrap_or(false)).collect();
        drop(fds);
        // ready[0] is the signalfd, then one per output, then stdin.
        let ready: Vec<bool> = std::iter::once(fired[0])
            .chain(slot.iter().map(|s| s.is_some_and(|i| fired[i])))
            .collect();
        for (i, (fd, stream)) in streams.outputs.iter().enumerate() {
            if !ready[i + 1] || !open[i] {
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
                }
                Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => {}
                Err(_) => open[i] = false,
            }
        }
        if *ready.last().unwrap_or(&false) {
            match nix::unistd::read(stdin, &mut buf) {
                Ok(0) | Err(_) => {
                    stdin_open = false;
                    // With a pipe, EOF would close the container's stdin; a
                    // terminal has no EOF of its own (Ctrl-D is a byte).
                    streams.input = None;
                }
                Ok(n) => {
                    if let Some(to) = &streams.input {
                        let _ = nix::unistd::write(to, &buf[..n]);
                    }
                }
            }
        }
        if ready[0] {
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
    mask.thread_unblock().context("unblocking signals")?;
    Ok(status.unwrap_or(255))
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

/// A pseudo-terminal for a container: the master (kept) and the slave (the
/// container's stdio), sized like our terminal when we have one.
pub fn open_pty() -> Result<(OwnedFd, OwnedFd)> {
    let pty = nix::pty::openpty(None, None).context("openpty")?;
    // The master must not leak into the container.
    nix::fcntl::fcntl(
        &pty.master,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )
    .context("FD_CLOEXEC on the pty master")?;
    copy_window_size(pty.master.as_raw_fd());
    Ok((pty.master, pty.slave))
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
