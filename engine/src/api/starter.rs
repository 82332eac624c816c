//! The starter: a single-threaded process that starts containers for the
//! service.
//!
//! Starting a container forks its monitor (see the container module's
//! `monitor`), and the monitor then runs a good deal of Rust code (mounts,
//! cgroups, the spawn) before it execs the small monitor program. After a
//! `fork`, only the forking thread exists in the child: if another thread
//! of the parent held a lock at that moment (the allocator's, stdout's, the
//! environment's), it stays locked in the child forever. POSIX allows a
//! child of a multi-threaded process only async-signal-safe calls until it
//! execs. The service runs one thread per connection, so it must never
//! fork a monitor itself.
//!
//! So before the service makes its first thread it forks this starter, which
//! stays single-threaded all its life. For each start the service sends it a
//! line on a socket pair; the starter forks once more, and that child does
//! what `dockyard start` does (the same core calls), answers, and exits. Its
//! monitor, orphaned, goes on as the CLI's does: no container is a child of
//! the service, so stopping the service stops none of them.
//!
//! ```text
//! service ──"ID attach stdin\n"──> starter ──fork──> child: prepare_start,
//!         <──"T" + attach.sock fd (SCM_RIGHTS)──────        start_attached
//! ```
//!
//! For an attach made before the start (what `docker run` does), the child
//! starts the container with `start_attached`: the monitor waits for that
//! connection before the container runs, so not a byte of output is lost,
//! and the connected socket travels back to the service as a descriptor
//! (lab 02's `send_fd`, the same trick as its console socket).

use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;

use anyhow::{anyhow, bail, Context, Result};
use nix::sys::wait::waitpid;
use nix::unistd::{fork, ForkResult};

use dockyard::{container, Engine};

/// The service's end of the starter's socket.
pub struct Starter {
    sock: UnixStream,
}

/// Fork the starter. Call before any thread exists.
pub fn spawn(engine: &Engine) -> Result<Starter> {
    let (ours, theirs) = UnixStream::pair().context("socketpair for the starter")?;
    // SAFETY: the service has no other thread yet (see the module docs).
    match unsafe { fork() }.context("fork for the starter")? {
        ForkResult::Child => {
            drop(ours);
            let code = match serve(engine, theirs) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("dockyard starter: {e:#}");
                    1
                }
            };
            // SAFETY: leave without running the service's exit-time code.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { .. } => Ok(Starter { sock: ours }),
    }
}

/// The starter's loop: one request a line, until the service goes away.
fn serve(engine: &Engine, sock: UnixStream) -> Result<()> {
    let mut lines = BufReader::new(sock.try_clone()?);
    loop {
        let mut line = String::new();
        if lines.read_line(&mut line)? == 0 {
            return Ok(()); // the service exited
        }
        let mut words = line.split_whitespace();
        let (Some(id), Some(mode), Some(stdin)) = (words.next(), words.next(), words.next()) else {
            bail!("malformed request {line:?}");
        };
        // SAFETY: this process is single-threaded.
        match unsafe { fork() }.context("fork")? {
            ForkResult::Child => {
                let answer = start(engine, id, mode == "attach", stdin == "stdin");
                let code = i32::from(reply(&sock, answer).is_err());
                // SAFETY: leave without running the service's exit-time code.
                unsafe { libc::_exit(code) }
            }
            ForkResult::Parent { child } => {
                // The child answers the service itself; reap it so that
                // nothing is left a zombie (its monitor is orphaned to init).
                let _ = waitpid(child, None);
            }
        }
    }
}

/// What `dockyard start` does: prepare, then start under a detached
/// monitor, attached first when a client waits for the output (and, with
/// `stdin`, gives it input: `docker run -i`).
fn start(engine: &Engine, id: &str, attach: bool, stdin: bool) -> Result<Option<OwnedFd>> {
    container::prepare_start(engine, id, stdin)?;
    if attach {
        Ok(Some(container::start_attached(engine, id)?.into()))
    } else {
        container::start_detached(engine, id)?;
        Ok(None)
    }
}

/// Answer: `T` (with the attach socket as a descriptor), or `E` and the
/// error on one line.
fn reply(sock: &UnixStream, answer: Result<Option<OwnedFd>>) -> Result<()> {
    let mut w = sock;
    match answer {
        Ok(Some(fd)) => {
            let ours: OwnedFd = sock.try_clone()?.into();
            lab02_namespaces::console::send_fd(&ours, &fd)?;
        }
        Ok(None) => w.write_all(b"T")?,
        Err(e) => {
            let msg = format!("{e:#}").replace('\n', " ");
            w.write_all(format!("E{msg}\n").as_bytes())?;
        }
    }
    Ok(())
}

impl Starter {
    /// Start container `id`; with `attach`, return the monitor's attach
    /// socket, connected before the container runs. One start at a time:
    /// the caller holds the starter's lock.
    pub fn start(&mut self, id: &str, attach: bool, stdin: bool) -> Result<Option<UnixStream>> {
        let mode = if attach { "attach" } else { "detach" };
        let stdin = if stdin { "stdin" } else { "-" };
        self.sock
            .write_all(format!("{id} {mode} {stdin}\n").as_bytes())
            .context("asking the starter")?;
        let (byte, fd) = receive(&self.sock)?;
        match byte {
            b'T' => Ok(fd.map(UnixStream::from)),
            b'E' => {
                let mut msg = Vec::new();
                let mut r = BufReader::new(&self.sock);
                r.read_until(b'\n', &mut msg)?;
                Err(anyhow!("{}", String::from_utf8_lossy(&msg).trim_end()))
            }
            _ => bail!("the starter died"),
        }
    }
}

/// Read one byte, and the descriptor that may come with it.
fn receive(sock: &UnixStream) -> Result<(u8, Option<OwnedFd>)> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::os::fd::FromRawFd;
    let mut byte = [0u8; 1];
    let mut iov = [std::io::IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let (n, fd) = {
        let msg = loop {
            match recvmsg::<()>(
                sock.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Err(nix::errno::Errno::EINTR) => continue,
                other => break other.context("reading the starter's answer")?,
            }
        };
        let mut fd = None;
        for c in msg.cmsgs().context("reading the control message")? {
            if let ControlMessageOwned::ScmRights(fds) = c {
                if let Some(&f) = fds.first() {
                    // SAFETY: the kernel installed this descriptor for us.
                    fd = Some(unsafe { OwnedFd::from_raw_fd(f) });
                }
            }
        }
        (msg.bytes, fd)
    };
    Ok((if n == 0 { 0 } else { byte[0] }, fd))
}
