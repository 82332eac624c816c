//! # The container's terminal and stdio
//!
//! A container's output must reach whoever runs it: its stdin, stdout and
//! stderr are descriptors the caller hands over ([`crate::Spec::stdio`]),
//! or, with `docker run -t`, a terminal of its own. A terminal is a
//! pseudo-terminal pair: the *slave* (`/dev/pts/N`) is what the command
//! reads and writes as its terminal, the *master* is what the engine holds
//! to copy keys in and output out. In the shell, `script -q /dev/null` makes
//! one, and `tty` inside names the slave:
//!
//! ```text
//! mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts
//! tty              # /dev/pts/0: the container's own devpts, not the host's
//! stty size        # rows and columns, set on the master with TIOCSWINSZ
//! ```
//!
//! The master crosses from the container's first process to the engine
//! over a unix socket, as an `SCM_RIGHTS` message ([`send_fd`],
//! [`receive_fd`]): the way runc's `--console-socket` works.

use std::fs;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;

use anyhow::{bail, Context};
use lab01_chroot as lab01;
use nix::errno::Errno;
use nix::mount::{mount, MsFlags};
use nix::sys::socket::{AddressFamily, SockFlag, SockType};
use nix::unistd::Uid;

use crate::security;

// ANCHOR: tty
/// A pseudo-terminal from the container's own devpts.
///
/// `docker run -t` gives the command a terminal. Where it comes from matters:
/// a pty from the *host's* `/dev/pts` would be invisible inside (the
/// container's `/dev/pts` is another devpts instance), so `ttyname(3)` fails
/// and `tty` says "not a tty". So, as runc does, the container's first
/// process allocates it itself, after pivot_root and the mount of its own
/// devpts (`mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts`):
///
/// 1. open `/dev/pts/ptmx` (what `/dev/ptmx` links to): a new master;
/// 2. unlock it (TIOCSPTLCK) and open its slave (TIOCGPTPEER), which is
///    `/dev/pts/N` *of the container's devpts*;
/// 3. make the slave its stdin, stdout, stderr and controlling terminal;
/// 4. hand the master to the parent over a unix socket, as an `SCM_RIGHTS`
///    message (runc's `--console-socket`), and close its own copy.
///
/// The master then lives only outside, in the engine's monitor, which
/// copies it to and from the person and sets the window size on it.
#[derive(Debug)]
pub struct Console {
    pub master: OwnedFd,
    pub slave: OwnedFd,
    /// The slave's number: `/dev/pts/N` inside.
    pub number: u32,
}

/// The magic number of a devpts filesystem (`statfs(2)`'s `f_type`).
const DEVPTS_SUPER_MAGIC: i64 = 0x1cd1;

/// Allocate a [`Console`] from the devpts at `/dev/pts` of our root, sized
/// `rows` x `cols` when given.
///
/// This runs as root, in the container's mount namespace, on paths the
/// container's image (or, for `exec`, its running processes) could have
/// replaced. So the path is resolved inside the root without following any
/// symlink out of it (openat2 RESOLVE_IN_ROOT), and what was opened must be
/// a devpts' `ptmx` (statfs magic, character device 5:2), not whatever a
/// hostile container put there. The slave is opened through the master
/// (TIOCGPTPEER), never by a path.
pub fn open_console(size: Option<(u16, u16)>) -> anyhow::Result<Console> {
    let root = OwnedFd::from(fs::File::open("/").context("opening / for the console")?);
    let master = security::open_in_root(
        &root,
        Path::new("/dev/pts/ptmx"),
        libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
    )
    .context("opening /dev/pts/ptmx in the container (is its devpts mounted?)")?;
    let fs_type = nix::sys::statfs::fstatfs(&master)
        .context("fstatfs on /dev/pts/ptmx")?
        .filesystem_type()
        .0 as i64;
    let st = nix::sys::stat::fstat(&master).context("fstat on /dev/pts/ptmx")?;
    let (major, minor) = (libc::major(st.st_rdev), libc::minor(st.st_rdev));
    if fs_type != DEVPTS_SUPER_MAGIC || (major, minor) != (5, 2) {
        bail!(
            "/dev/pts/ptmx in the container is not a devpts ptmx (fs type {fs_type:#x}, \
             device {major}:{minor}): refusing to use it as a terminal"
        );
    }
    let fd = master.as_raw_fd();
    let mut number: libc::c_uint = 0;
    let unlock: libc::c_int = 0;
    // SAFETY: these pty ioctls read or write one int, which we pass.
    unsafe {
        Errno::result(libc::ioctl(fd, libc::TIOCSPTLCK, &unlock)).context("unlockpt")?;
        Errno::result(libc::ioctl(fd, libc::TIOCGPTN, &mut number)).context("ptsname")?;
    }
    // SAFETY: TIOCGPTPEER returns a new descriptor, which we then own.
    let slave = unsafe {
        Errno::result(libc::ioctl(
            fd,
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        ))
        .context("opening the pty's slave (TIOCGPTPEER, Linux 4.13)")?
    };
    // SAFETY: the descriptor was just returned to us and nobody else owns it.
    let slave = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(slave) };
    if let Some((rows, cols)) = size {
        set_window_size(fd, rows, cols);
    }
    Ok(Console {
        master,
        slave,
        number,
    })
}

/// TIOCSWINSZ: the terminal's size, which programs read with TIOCGWINSZ
/// (`stty size`); on a change the kernel sends SIGWINCH to the terminal's
/// foreground process group.
pub fn set_window_size(fd: RawFd, rows: u16, cols: u16) {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize, which `ws` is.
    unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) };
}

// ANCHOR: session
/// Leave the caller's session for one of our own (setsid(2)), unless this
/// process leads one already.
///
/// A session is what a terminal belongs to: the shell that a person logs
/// in with leads one, and every program it starts stays in it, able to
/// open `/dev/tty` (the session's *controlling terminal*) whatever its
/// stdio are. A process with that terminal as its controlling terminal may
/// also push bytes into its input with `ioctl(TIOCSTI)`, as if typed:
/// `echo 'rm -rf ~' ` queued there runs in the person's shell, as root,
/// after the container has exited (bubblewrap CVE-2017-5226). So every
/// process that runs a container's code (its first process, an `exec`'d
/// command, a build step) starts a session of its own, with no terminal
/// at all, before it runs anything of the container's: `/dev/tty` then
/// fails with ENXIO, and TIOCSTI on any terminal it still holds fails with
/// EPERM. runc, crun ("exec: always call setsid") and docker do the same.
///
/// ```text
/// setsid -w sh -c 'cat /dev/tty'     # cat: can't open '/dev/tty': No such device or address
/// ```
pub fn new_session() -> Result<(), lab01::Error> {
    let me = nix::unistd::getpid();
    if nix::unistd::getsid(None).ok() == Some(me) {
        return Ok(());
    }
    nix::unistd::setsid().context("setsid (a session of the container's own)")?;
    Ok(())
}
// ANCHOR_END: session

/// Make the terminal on fd 0 this process's controlling terminal, as a
/// login does: a new session (setsid), then TIOCSCTTY. Only then does the
/// kernel turn Ctrl-C typed on it into SIGINT for the foreground process
/// group, and a shell can do job control.
pub fn take_terminal() -> Result<(), lab01::Error> {
    new_session()?;
    // SAFETY: TIOCSCTTY on fd 0 with argument 0 (do not steal).
    if unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) } < 0 {
        return Err(lab01::Error::Setup(anyhow::anyhow!(
            "ioctl(TIOCSCTTY) on the container's terminal: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}

/// The pty's slave as our stdio and controlling terminal, and its master
/// sent to whoever holds the other end of `socket`. Owned by `owner` (uid)
/// when the command will not run as root, as runc does, so that it may
/// still open its own terminal (`/dev/tty`, `stty`) after dropping root.
pub(crate) fn attach_console(
    console: Console,
    socket: &OwnedFd,
    owner: Option<u32>,
) -> anyhow::Result<()> {
    if let Some(uid) = owner {
        nix::unistd::fchown(&console.slave, Some(Uid::from_raw(uid)), None)
            .with_context(|| format!("chown of /dev/pts/{} to {uid}", console.number))?;
    }
    let s = console.slave.as_raw_fd();
    install_stdio([s, s, s])?;
    take_terminal()?;
    send_fd(socket, &console.master).context("sending the pty master to the parent")?;
    Ok(())
}

/// Send `fd` over a unix socket, as an `SCM_RIGHTS` control message: the
/// receiver gets its own descriptor for the same open file.
pub fn send_fd(socket: &OwnedFd, fd: &OwnedFd) -> nix::Result<()> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let fds = [fd.as_raw_fd()];
    let iov = [std::io::IoSlice::new(b"T")];
    sendmsg::<()>(
        socket.as_raw_fd(),
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map(|_| ())
}

/// Receive a descriptor sent with [`send_fd`]; `None` when the sender
/// closed the socket without sending one (it failed, and says why on its
/// stderr).
pub fn receive_fd(socket: &OwnedFd) -> anyhow::Result<Option<OwnedFd>> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::os::fd::FromRawFd;
    let mut byte = [0u8; 1];
    let mut iov = [std::io::IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    loop {
        let msg = match recvmsg::<()>(
            socket.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Err(Errno::EINTR) => continue,
            other => other.context("receiving the pty master")?,
        };
        for c in msg.cmsgs().context("reading the control message")? {
            if let ControlMessageOwned::ScmRights(fds) = c {
                if let Some(&fd) = fds.first() {
                    // SAFETY: the kernel installed this descriptor for us.
                    return Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) }));
                }
            }
        }
        return Ok(None);
    }
}

/// A connected pair of unix stream sockets, both close-on-exec: the
/// console socket between a parent and the child that makes the pty.
pub fn console_socketpair() -> anyhow::Result<(OwnedFd, OwnedFd)> {
    nix::sys::socket::socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .context("socketpair for the console")
}

/// Lab mode (no security layer) has lab 01's minimal `/dev`, without a
/// devpts: mount one of our own for the console, as Docker's setup does.
pub(crate) fn mount_devpts(pts_gid: bool) -> anyhow::Result<()> {
    if Path::new("/dev/pts/ptmx").exists() {
        return Ok(());
    }
    fs::create_dir_all("/dev/pts").context("creating /dev/pts")?;
    let opts = if pts_gid {
        "newinstance,ptmxmode=0666,mode=0620,gid=5"
    } else {
        "newinstance,ptmxmode=0666,mode=0620"
    };
    mount(
        Some("devpts"),
        "/dev/pts",
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some(opts),
    )
    .context("mounting devpts on /dev/pts")?;
    Ok(())
}
// ANCHOR_END: tty

/// Make `fds` this process's stdin, stdout and stderr. dup2 clears
/// close-on-exec on the new descriptors, so the command keeps them.
pub(crate) fn install_stdio(fds: [RawFd; 3]) -> Result<(), lab01::Error> {
    for (target, fd) in fds.into_iter().enumerate() {
        // SAFETY: dup2 on descriptors the caller handed us.
        if fd != target as RawFd && unsafe { libc::dup2(fd, target as RawFd) } < 0 {
            return Err(lab01::Error::Setup(anyhow::anyhow!(
                "dup2({fd}, {target}): {}",
                std::io::Error::last_os_error()
            )));
        }
    }
    Ok(())
}
