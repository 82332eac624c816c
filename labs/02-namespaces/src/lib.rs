//! # Lab 02: namespaces
//!
//! A namespace wraps one kind of global resource so that the processes inside
//! see their own instance of it. Lab 01 already used one: the mount namespace
//! that made `pivot_root` safe. This lab adds the rest, and with them the
//! thing people mean when they say "container": a process that sees its own
//! PIDs, hostname, IPC objects, network stack, user IDs and cgroup root.
//!
//! A namespace is created by a flag to `clone(2)` (a new process born inside)
//! or `unshare(2)` (the caller moves in). Two processes share a namespace
//! exactly when the inodes of their `/proc/PID/ns/*` links are equal. The
//! shell equivalent of [`spawn`] with every namespace on is:
//!
//! ```text
//! unshare --user --map-users=0:100000:65536 --map-groups=0:100000:65536 \
//!         --mount --uts --ipc --net --pid --fork --cgroup \
//!         sh -c 'hostname box; ...pivot_root as in lab 01...; mount -t proc proc /proc; exec CMD'
//! ```
//!
//! ## The order of things
//!
//! The parent creates the child with `clone3(2)`, with every namespace flag but
//! `CLONE_NEWCGROUP`. The child then *waits* on a pipe, because some setup can
//! only be done from the outside: with a user namespace the parent writes the
//! child's `uid_map`, `setgroups` and `gid_map`, and lab 03 puts the child in a
//! cgroup (the `before_start` hook of [`spawn`]). Only then does the parent
//! write one byte, and the child sets up its view of the world (see
//! `child_setup`) and finally `exec`s the command.
//!
//! ## PID 1
//!
//! In a new PID namespace the first process is PID 1, and PID 1 is special in
//! two ways:
//!
//! - **Signals.** The kernel does not apply a signal's *default action* to a
//!   namespace's init: a signal for which PID 1 has no handler is dropped
//!   (SIGKILL and SIGSTOP from an ancestor namespace excepted). `sh` as PID 1
//!   ignores a plain `kill -TERM`: that is why `docker stop` waits ten
//!   seconds and then sends SIGKILL.
//! - **Orphans.** A process whose parent dies is reparented to PID 1, which
//!   must `wait(2)` for it when it exits, or it stays a zombie forever.
//!
//! By default, as with `docker run`, the command itself is PID 1 and does both
//! jobs however well it happens to do them. With [`Spec::init`], as with
//! `docker run --init`, the child becomes a tiny init written here: it forks
//! the command (PID 2), reaps every zombie, forwards SIGTERM, SIGINT and SIGHUP
//! to the command, and exits with the command's status.
//!
//! ## User namespaces
//!
//! In a user namespace, IDs inside map to IDs outside through
//! `/proc/PID/uid_map`: the line `0 100000 65536` makes uids 0..65535 inside
//! uids 100000..165535 on the host. Root inside has every capability, but
//! only over the namespaces its user namespace owns: to the host's kernel it
//! is uid 100000, and a file it creates belongs to uid 100000. An
//! unprivileged user may create a user namespace too, and map uid 0 inside to
//! itself: a *rootless* container.

pub mod join;
pub mod security;

use std::ffi::OsString;
use std::fs;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use lab01_chroot as lab01;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{
    fork, geteuid, getgid, pipe2, setgroups, sethostname, setresgid, setresuid, ForkResult, Gid,
    Pid, Uid,
};

/// One kind of namespace, as in the table of namespaces(7).
#[derive(Debug, Clone, Copy)]
pub struct Namespace {
    /// The name under `/proc/self/ns/`.
    pub proc_name: &'static str,
    /// The flag for clone(2), unshare(2) and setns(2).
    pub flag: CloneFlags,
    /// The Linux version that introduced it.
    pub since: &'static str,
    /// What it isolates.
    pub isolates: &'static str,
}

// ANCHOR: table
/// Every namespace a container uses, in the order the kernel gained them.
pub const NAMESPACES: [Namespace; 8] = [
    Namespace {
        proc_name: "mnt",
        flag: CloneFlags::CLONE_NEWNS,
        since: "2.4.19",
        isolates: "mount points",
    },
    Namespace {
        proc_name: "uts",
        flag: CloneFlags::CLONE_NEWUTS,
        since: "2.6.19",
        isolates: "hostname and NIS domain name",
    },
    Namespace {
        proc_name: "ipc",
        flag: CloneFlags::CLONE_NEWIPC,
        since: "2.6.19",
        isolates: "System V IPC, POSIX message queues",
    },
    Namespace {
        proc_name: "pid",
        flag: CloneFlags::CLONE_NEWPID,
        since: "2.6.24",
        isolates: "process IDs",
    },
    Namespace {
        proc_name: "net",
        flag: CloneFlags::CLONE_NEWNET,
        since: "2.6.29",
        isolates: "network devices, stacks, ports",
    },
    Namespace {
        proc_name: "user",
        flag: CloneFlags::CLONE_NEWUSER,
        since: "3.8",
        isolates: "user and group IDs",
    },
    Namespace {
        proc_name: "cgroup",
        flag: CloneFlags::CLONE_NEWCGROUP,
        since: "4.6",
        isolates: "cgroup root directory",
    },
    Namespace {
        proc_name: "time",
        flag: CloneFlags::from_bits_retain(0x80),
        since: "5.6",
        isolates: "boot and monotonic clocks",
    },
];
// ANCHOR_END: table

/// The namespaces a container gets unless told otherwise: every one in
/// [`NAMESPACES`] but `time`, which Docker does not use either.
pub const DEFAULT_NAMESPACES: CloneFlags = CloneFlags::CLONE_NEWNS
    .union(CloneFlags::CLONE_NEWUTS)
    .union(CloneFlags::CLONE_NEWIPC)
    .union(CloneFlags::CLONE_NEWPID)
    .union(CloneFlags::CLONE_NEWNET)
    .union(CloneFlags::CLONE_NEWUSER)
    .union(CloneFlags::CLONE_NEWCGROUP);

/// The signals the lab's parent, and the tiny init, pass on to the command:
/// what `docker stop`, Ctrl-C and a closed terminal send.
pub const FORWARDED_SIGNALS: [Signal; 3] = [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP];

/// Which IDs root inside a user namespace is on the host: uids and gids
/// `0..count` inside are `host_id..host_id+count` outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdMapping {
    /// The host ID that uid 0 (and gid 0) inside maps to.
    pub host_id: u32,
    /// How many consecutive IDs are mapped.
    pub count: u32,
}

impl IdMapping {
    /// The range root hands out by default, as in `/etc/subuid` on most
    /// distributions (`dockremap:100000:65536`).
    pub const ROOT_DEFAULT: IdMapping = IdMapping {
        host_id: 100_000,
        count: 65_536,
    };

    /// The mapping a caller gets by default: [`IdMapping::ROOT_DEFAULT`] for
    /// root; for anyone else, uid 0 inside is the caller, and nothing more
    /// (a range needs the setuid helper `newuidmap` and `/etc/subuid`).
    pub fn for_caller() -> IdMapping {
        if geteuid().is_root() {
            IdMapping::ROOT_DEFAULT
        } else {
            IdMapping {
                host_id: geteuid().as_raw(),
                count: 1,
            }
        }
    }

    /// The line for `uid_map` and `gid_map`: `inside outside count` (what
    /// `split_by_own_map` writes when nothing needs cutting).
    #[cfg(test)]
    fn map_line(&self) -> String {
        format!("0 {} {}\n", self.host_id, self.count)
    }
}

impl std::str::FromStr for IdMapping {
    type Err = String;

    /// `HOST_ID:COUNT`, e.g. `100000:65536`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (host, count) = s
            .split_once(':')
            .ok_or_else(|| format!("{s:?}: expected HOST_ID:COUNT, e.g. 100000:65536"))?;
        let host_id = host.parse().map_err(|e| format!("host id {host:?}: {e}"))?;
        let count: u32 = count.parse().map_err(|e| format!("count {count:?}: {e}"))?;
        if count == 0 {
            return Err("the count must be at least 1".into());
        }
        Ok(IdMapping { host_id, count })
    }
}

/// What to run, and in which namespaces.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The directory that becomes `/` (lab 01's `pivot_root`).
    pub rootfs: PathBuf,
    /// The command and its arguments.
    pub argv: Vec<OsString>,
    /// The command's whole environment (`KEY=value`).
    pub env: Vec<OsString>,
    /// The hostname inside; `None` keeps the copy of the host's name that a
    /// new UTS namespace starts with. Needs `CLONE_NEWUTS`.
    pub hostname: Option<String>,
    /// Which namespaces to create: a union of the flags in [`NAMESPACES`].
    /// `CLONE_NEWNS` is required: `pivot_root` needs a mount namespace.
    pub namespaces: CloneFlags,
    /// With `CLONE_NEWUSER`: the IDs root inside maps to. `None` means
    /// [`IdMapping::for_caller`].
    pub user: Option<IdMapping>,
    /// With `CLONE_NEWUSER`: the gids root's group inside maps to, when
    /// they differ from the uids (`/etc/subgid` may give another range
    /// than `/etc/subuid`). `None` means the same as [`Spec::user`].
    pub group: Option<IdMapping>,
    /// Run the command under a tiny init (PID 1) instead of as PID 1.
    pub init: bool,
    /// File descriptors to become the command's stdin, stdout and stderr.
    /// `None` inherits the caller's. An engine passes pipes here so that its
    /// monitor, not the terminal, owns the container's output (runc's
    /// `--console-socket` and conmon do the same job).
    pub stdio: Option<[RawFd; 3]>,
    /// The working directory inside the container (`/` when `None`).
    pub cwd: Option<PathBuf>,
    /// Bind mounts into the container (`-v /host:/inside[:ro]`), made
    /// before pivot_root while the host's paths are still in view.
    pub binds: Vec<Bind>,
    /// `docker run -t`: the command gets a pty from the container's own
    /// devpts as its stdio and controlling terminal, and the master is
    /// handed back in [`Container::take_console`]; see [`open_console`].
    /// `stdio` still receives what the child says before the pty exists.
    pub tty: bool,
    /// With `tty`: its initial size, rows and columns.
    pub tty_size: Option<(u16, u16)>,
    /// Who the command runs as (`-u`, the image's USER); `None`: root.
    pub run_as: Option<RunAs>,
    /// Resource limits (`--ulimit nofile=1024:2048`): (resource, soft, hard).
    pub rlimits: Vec<(nix::sys::resource::Resource, u64, u64)>,
    /// The security layer (capabilities, seccomp, masked paths...): `None`
    /// is this lab's own behaviour, root with every capability;
    /// `Some(Security::docker_default())` is what `docker run` does. See
    /// [`security`].
    pub security: Option<security::Security>,
    /// How the first process enters its cgroup by itself, so that
    /// `before_start` need not write its PID anywhere (see [`CgroupEntry`]).
    pub cgroup_entry: CgroupEntry,
}

/// Descriptors through which the child enters its cgroup *itself*, opened
/// and owned by the caller (lab 03's `Cgroup::entry` explains why: moving
/// another process costs an RCU grace period, these ways do not).
#[derive(Debug, Clone, Default)]
pub struct CgroupEntry {
    /// A cgroup v2 directory: the child is created in it by
    /// `clone3(CLONE_INTO_CGROUP)`. Where clone3 is unavailable, the parent
    /// writes the child's PID into its `cgroup.procs` instead.
    pub clone_into: Option<RawFd>,
    /// cgroup v1 `tasks` files, open for writing: the child writes `0`
    /// (itself, its only thread) into each before anything else.
    pub tasks: Vec<RawFd>,
}

impl Spec {
    /// Every namespace of [`DEFAULT_NAMESPACES`], Docker's default environment,
    /// no hostname change, no init.
    pub fn new(rootfs: impl Into<PathBuf>, argv: Vec<OsString>) -> Spec {
        Spec {
            rootfs: rootfs.into(),
            argv,
            env: lab01::default_env(),
            hostname: None,
            namespaces: DEFAULT_NAMESPACES,
            user: None,
            group: None,
            init: false,
            stdio: None,
            cwd: None,
            binds: Vec::new(),
            tty: false,
            tty_size: None,
            run_as: None,
            rlimits: Vec::new(),
            security: None,
            cgroup_entry: CgroupEntry::default(),
        }
    }

    fn has(&self, flag: CloneFlags) -> bool {
        self.namespaces.contains(flag)
    }
}

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

/// Make the terminal on fd 0 this process's controlling terminal, as a
/// login does: a new session (setsid), then TIOCSCTTY. Only then does the
/// kernel turn Ctrl-C typed on it into SIGINT for the foreground process
/// group, and a shell can do job control.
pub fn take_terminal() -> Result<(), lab01::Error> {
    nix::unistd::setsid().context("setsid for the container's terminal")?;
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
fn attach_console(console: Console, socket: &OwnedFd, owner: Option<u32>) -> anyhow::Result<()> {
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
fn mount_devpts(pts_gid: bool) -> anyhow::Result<()> {
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

/// A directory or file of the host, mounted into the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    /// On the host.
    pub source: PathBuf,
    /// Inside the container (absolute).
    pub target: PathBuf,
    pub read_only: bool,
}

// ANCHOR: binds
/// Mount each bind into the rootfs, before pivot_root.
///
/// The target is a path *inside the container*, and the image decides what
/// it resolves to: `/data` may be a symlink to `/../../etc`. Joining it to
/// the rootfs as a string and handing that to mount(2) would follow such a
/// link on the host (the class of bug of CVE-2018-15664). So each step is
/// resolved inside the root with openat2(RESOLVE_IN_ROOT), missing
/// directories are created the same way, and the mount goes onto the
/// resolved descriptor through /proc/self/fd/N. A read-only bind is then
/// remounted read-only through a descriptor of the new mount.
fn bind_volumes(rootfs: &Path, binds: &[Bind]) -> anyhow::Result<()> {
    if binds.is_empty() {
        return Ok(());
    }
    let root = OwnedFd::from(
        fs::File::open(rootfs).with_context(|| format!("opening {}", rootfs.display()))?,
    );
    for b in binds {
        let is_dir = fs::metadata(&b.source)
            .with_context(|| format!("bind source {}", b.source.display()))?
            .is_dir();
        let target_fd = if is_dir {
            security::mkdir_all_in_root(&root, &b.target)?
        } else {
            let parent = b.target.parent().unwrap_or(Path::new("/"));
            let name = b
                .target
                .file_name()
                .context("a bind target needs a file name")?;
            let dir = security::mkdir_all_in_root(&root, parent)?;
            // An empty file to mount over, if the image has none;
            // O_NOFOLLOW: never through a link. Read-only: opening the
            // image's own file for writing would make overlayfs copy it, and
            // its directory, up into the container's layer (four new inodes
            // for /etc/hosts, hostname and resolv.conf), only to mount over
            // the copy. O_CREAT makes a missing one all the same.
            match nix::fcntl::openat(
                &dir,
                name,
                OFlag::O_CREAT | OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::from_bits_truncate(0o644),
            ) {
                Ok(_) | Err(nix::errno::Errno::EISDIR) => {}
                Err(e) => {
                    return Err(e).with_context(|| format!("creating {}", b.target.display()))
                }
            }
            security::open_in_root(&root, &b.target, libc::O_PATH | libc::O_CLOEXEC)
                .with_context(|| format!("resolving {} in the container", b.target.display()))?
        };
        let at = format!("/proc/self/fd/{}", target_fd.as_raw_fd());
        mount(
            Some(&b.source),
            at.as_str(),
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .with_context(|| {
            format!(
                "bind-mounting {} on {}",
                b.source.display(),
                b.target.display()
            )
        })?;
        if b.read_only {
            // Resolve again: this time the walk crosses into the new mount,
            // so the descriptor is the mount's root, which is what a
            // remount changes.
            let mounted = security::open_in_root(&root, &b.target, libc::O_PATH | libc::O_CLOEXEC)
                .with_context(|| format!("resolving {} after mounting", b.target.display()))?;
            let at = format!("/proc/self/fd/{}", mounted.as_raw_fd());
            mount(
                None::<&str>,
                at.as_str(),
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
                None::<&str>,
            )
            .with_context(|| format!("remounting {} read-only", b.target.display()))?;
        }
    }
    Ok(())
}
// ANCHOR_END: binds

/// How the container's first process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// It called `exit(code)`.
    Exited(i32),
    /// A signal killed it.
    Signaled(Signal),
}

impl ExitStatus {
    /// The status a shell (and `docker run`) reports: the code, or 128+N for
    /// death by signal N.
    pub fn code(&self) -> i32 {
        match *self {
            ExitStatus::Exited(code) => code,
            ExitStatus::Signaled(signal) => 128 + signal as i32,
        }
    }
}

/// A running container: its first process, seen from the host.
#[derive(Debug)]
pub struct Container {
    pid: Pid,
    /// With [`Spec::tty`]: the master of the container's pty.
    console: Option<OwnedFd>,
}

impl Container {
    /// The host's PID of the container's first process (PID 1 inside when
    /// there is a PID namespace).
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// With [`Spec::tty`] (or a join with a tty): the pty's master, once.
    /// `None` if the child failed before it could send one: its stderr
    /// says why, and its exit status is 125.
    pub fn take_console(&mut self) -> Option<OwnedFd> {
        self.console.take()
    }

    /// Send `signal` to the container's first process. Remember that, as
    /// PID 1, it ignores any signal it has no handler for.
    pub fn signal(&self, signal: Signal) -> anyhow::Result<()> {
        kill(self.pid, signal).with_context(|| format!("kill({}, {signal})", self.pid))
    }

    /// Wait for the container's first process to end.
    pub fn wait(&self) -> anyhow::Result<ExitStatus> {
        loop {
            match waitpid(self.pid, None) {
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e).with_context(|| format!("waitpid({})", self.pid)),
                Ok(status) => {
                    if let Some(done) = finished(status) {
                        return Ok(done);
                    }
                }
            }
        }
    }

    // ANCHOR: forward
    /// Wait for the container's first process, passing on each of `signals`
    /// that this process receives meanwhile.
    ///
    /// The signals are blocked, so none of them kills us, and then taken one
    /// at a time with `sigwait(2)`. SIGCHLD is in the set too: blocked, it is
    /// queued instead of ignored, and tells us that the child has ended. Call
    /// this from a single-threaded process: the mask is per thread.
    pub fn wait_forwarding(&self, signals: &[Signal]) -> anyhow::Result<ExitStatus> {
        let mut set = SigSet::empty();
        set.add(Signal::SIGCHLD);
        signals.iter().for_each(|&s| set.add(s));
        let old_mask = set.thread_swap_mask(nix::sys::signal::SigmaskHow::SIG_BLOCK)?;
        let result = (|| loop {
            // The child may have ended before SIGCHLD was blocked; look first.
            match waitpid(self.pid, Some(WaitPidFlag::WNOHANG)) {
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e).with_context(|| format!("waitpid({})", self.pid)),
                Ok(status) => {
                    if let Some(done) = finished(status) {
                        return Ok(done);
                    }
                }
            }
            match set.wait().context("sigwait")? {
                Signal::SIGCHLD => continue,
                // It may have ended meanwhile (ESRCH): the next waitpid says so.
                other => {
                    let _ = kill(self.pid, other);
                }
            }
        })();
        old_mask.thread_set_mask()?;
        result
    }
    // ANCHOR_END: forward
}

fn finished(status: WaitStatus) -> Option<ExitStatus> {
    match status {
        WaitStatus::Exited(_, code) => Some(ExitStatus::Exited(code)),
        WaitStatus::Signaled(_, signal, _) => Some(ExitStatus::Signaled(signal)),
        _ => None,
    }
}

// ANCHOR: spawn
/// Start `spec.argv` in new namespaces, and return once it is running.
///
/// `before_start` runs in this (the parent) process with the child's PID,
/// after the child exists and its ID maps are written, but before it does
/// anything: lab 03 uses it to put the child in a cgroup. If it fails, the
/// child is killed and the error returned.
///
/// Failures inside the child are reported on its stderr, and its exit status
/// says which: 125 for setup, 126 and 127 for exec, as in `docker run`.
/// The child is forked from this process: call `spawn` from a
/// single-threaded program.
pub fn spawn(
    spec: &Spec,
    before_start: impl FnOnce(Pid) -> anyhow::Result<()>,
) -> anyhow::Result<Container> {
    let rootfs = check_spec(spec)?;
    let mapping = spec.user.unwrap_or_else(IdMapping::for_caller);
    let group_mapping = spec.group.unwrap_or(mapping);
    // Capabilities are resolved and the seccomp profile compiled here, in
    // the parent: a bad name or profile fails before any process exists.
    let secure = spec
        .security
        .as_ref()
        .map(security::Security::prepare)
        .transpose()?;

    // The go-ahead pipe. Both ends are close-on-exec, so the command never
    // inherits them.
    let (go_read, go_write) = pipe2(OFlag::O_CLOEXEC).context("pipe2 for the go-ahead")?;
    // -t: the console socket, over which the child sends the pty's master.
    let console = spec.tty.then(console_socketpair).transpose()?;

    // Every namespace but the cgroup one is created by clone itself; see
    // `child_setup` for why the cgroup namespace must wait.
    let flags = spec.namespaces - CloneFlags::CLONE_NEWCGROUP;
    match clone_process(flags, spec.cgroup_entry.clone_into)? {
        None => {
            drop(go_write);
            let socket = console.map(|(_, child)| child);
            child_main(spec, &rootfs, go_read, socket, secure.as_ref())
        }
        Some((pid, born_in_cgroup)) => {
            drop(go_read);
            let console = console.map(|(parent, _)| parent);
            let mut container = Container { pid, console: None };
            let prepared = (|| {
                if spec.has(CloneFlags::CLONE_NEWUSER) {
                    write_id_maps(pid, &mapping, &group_mapping)?;
                }
                if let (Some(dir), false) = (spec.cgroup_entry.clone_into, born_in_cgroup) {
                    // clone(2), the fallback, cannot create it there.
                    move_into_cgroup(dir, pid)?;
                }
                before_start(pid).context("before_start")
            })();
            if let Err(e) = prepared {
                // The child sees EOF instead of the go-ahead and exits; make
                // sure of it, and reap it so no zombie is left.
                let _ = kill(pid, Signal::SIGKILL);
                let _ = container.wait();
                return Err(e);
            }
            let mut go = fs::File::from(go_write);
            go.write_all(b"G")
                .context("releasing the child (write to the go-ahead pipe)")?;
            if let Some(socket) = console {
                // The child sends the master once its pty exists, or exits
                // (EOF here) having said why on its stderr.
                container.console = receive_fd(&socket)?;
            }
            Ok(container)
        }
    }
}
// ANCHOR_END: spawn

/// Move `pid` into the cgroup v2 directory `dir` the ordinary way, by
/// writing its PID into `cgroup.procs` (what CLONE_INTO_CGROUP spares).
fn move_into_cgroup(dir: RawFd, pid: Pid) -> anyhow::Result<()> {
    // SAFETY: `dir` is the caller's open directory, borrowed for this call.
    let dir = unsafe { std::os::fd::BorrowedFd::borrow_raw(dir) };
    let procs = nix::fcntl::openat(
        dir,
        "cgroup.procs",
        OFlag::O_WRONLY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .context("opening the cgroup's cgroup.procs")?;
    nix::unistd::write(&procs, pid.to_string().as_bytes())
        .with_context(|| format!("moving {pid} into its cgroup"))?;
    Ok(())
}

/// The child's first act (see [`CgroupEntry`]): write `0`, "this thread",
/// into each v1 `tasks` file, then close it. The child has one thread, so
/// this moves all of it, and every process it starts is born inside.
fn join_cgroups_self(tasks: &[RawFd]) -> Result<(), lab01::Error> {
    for &fd in tasks {
        // SAFETY: a descriptor the parent opened for us; we own our copy
        // and close it right after.
        let file = unsafe { OwnedFd::from_raw_fd(fd) };
        nix::unistd::write(&file, b"0").map_err(|e| {
            lab01::Error::Setup(anyhow::anyhow!("joining its cgroup (tasks): {}", e.desc()))
        })?;
    }
    Ok(())
}

/// Check the spec before touching the kernel; return the canonical rootfs.
fn check_spec(spec: &Spec) -> anyhow::Result<PathBuf> {
    if spec.argv.is_empty() {
        bail!("no command given");
    }
    if !spec.has(CloneFlags::CLONE_NEWNS) {
        bail!(
            "a mount namespace is required: pivot_root(2) changes the root of the whole namespace"
        );
    }
    if spec.hostname.is_some() && !spec.has(CloneFlags::CLONE_NEWUTS) {
        // Without a UTS namespace, sethostname would rename the host.
        bail!("setting a hostname needs a UTS namespace (drop --no-uts)");
    }
    if geteuid().is_root() {
        return lab01::preflight(&spec.rootfs);
    }
    // Rootless: no capability on the host, so everything must happen inside a
    // user namespace that this user owns, and it can map only its own IDs.
    if !spec.has(CloneFlags::CLONE_NEWUSER) {
        bail!(
            "running as uid {} without a user namespace: creating namespaces and mounting need \
             root, or a user namespace of your own (drop --no-user, or run as root)",
            geteuid()
        );
    }
    for m in [spec.user, spec.group].into_iter().flatten() {
        if m != IdMapping::for_caller() {
            bail!(
                "an unprivileged user can map only its own uid (0 inside = {} outside, count 1); \
                 a range like {}:{} needs root, or newuidmap(1) and /etc/subuid, which this lab \
                 does not use",
                geteuid(),
                m.host_id,
                m.count
            );
        }
    }
    spec.rootfs
        .canonicalize()
        .with_context(|| format!("rootfs {}", spec.rootfs.display()))
}

// ANCHOR: clone3
/// `struct clone_args` from `<linux/sched.h>`, version 2 (88 bytes): the
/// first 64 are version 0; `set_tid` came in version 1, `cgroup` in 2.
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// `CLONE_INTO_CGROUP` (Linux 5.7): create the child in the cgroup v2
/// directory `clone_args.cgroup`.
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Version 0 of the struct, what a kernel before 5.5 accepts.
const CLONE_ARGS_SIZE_VER0: usize = 64;

/// Create a child process in the namespaces `flags`, like fork(2): both
/// processes return from here, the child with `None`.
///
/// clone3(2) (Linux 5.3) takes its arguments in a struct, which can grow
/// without new system calls. With no stack given, it and clone(2) behave
/// like fork: the child gets a copy of our memory and continues here. Some
/// seccomp profiles (older Docker's among them) answer clone3 with ENOSYS or
/// EPERM so that callers fall back to clone, which is what we do. Setting
/// DOCKYARD_NO_CLONE3=1 takes the fallback on purpose.
///
/// With `cgroup`, an open cgroup v2 directory, clone3 creates the child in
/// it (`CLONE_INTO_CGROUP`); the second value returned to the parent says
/// whether that happened (not with the clone(2) fallback).
fn clone_process(flags: CloneFlags, cgroup: Option<RawFd>) -> anyhow::Result<Option<(Pid, bool)>> {
    let try_clone3 = std::env::var_os("DOCKYARD_NO_CLONE3").as_deref() != Some("1".as_ref());
    let mut ret = -1;
    if try_clone3 {
        let mut args = CloneArgs {
            flags: flags.bits() as u64,
            // The signal the parent gets when the child ends, as for fork.
            exit_signal: libc::SIGCHLD as u64,
            ..CloneArgs::default()
        };
        let size = match cgroup {
            Some(fd) => {
                args.flags |= CLONE_INTO_CGROUP;
                args.cgroup = fd as u64;
                std::mem::size_of::<CloneArgs>()
            }
            // The smallest struct that says it all: kernels from 5.3 on.
            None => CLONE_ARGS_SIZE_VER0,
        };
        // SAFETY: `args` is a valid clone_args at least `size` bytes long.
        // Without CLONE_VM the child has its own copy of memory, as after
        // fork(2).
        ret = unsafe { libc::syscall(libc::SYS_clone3, &mut args as *mut CloneArgs, size) };
    }
    // E2BIG: a kernel before 5.7, which does not know the cgroup field.
    let fell_back = !try_clone3
        || (ret == -1 && matches!(Errno::last(), Errno::ENOSYS | Errno::EPERM | Errno::E2BIG));
    if fell_back {
        // clone(flags | SIGCHLD, stack = NULL, ...): the same, the old way.
        // SAFETY: as above; a NULL stack means "use a copy of the caller's".
        ret = unsafe {
            libc::syscall(
                libc::SYS_clone,
                flags.bits() as libc::c_ulong | libc::SIGCHLD as libc::c_ulong,
                0usize,
                0usize,
                0usize,
                0usize,
            )
        };
    }
    match ret {
        -1 => {
            let errno = Errno::last();
            let hint = match errno {
                Errno::EPERM | Errno::ENOSPC | Errno::EUSERS => {
                    " (creating these namespaces needs root; as another user, a user namespace, \
                     which sysctl user.max_user_namespaces or kernel.unprivileged_userns_clone \
                     may forbid)"
                }
                Errno::EINVAL => " (does this kernel support every namespace asked for?)",
                _ => "",
            };
            Err(anyhow::anyhow!("clone({flags:?}): {}{hint}", errno.desc()))
        }
        0 => Ok(None),
        pid => Ok(Some((
            Pid::from_raw(pid as i32),
            try_clone3 && cgroup.is_some() && !fell_back,
        ))),
    }
}
// ANCHOR_END: clone3

// ANCHOR: id_maps
/// Write the child's ID maps, from outside, before the child goes on.
///
/// Until its maps are written, a process in a new user namespace is nobody
/// (uid 65534) inside: it cannot even become root. Each map can be written
/// once, and only from outside or by the namespace's own root.
///
/// `setgroups` is the subtle one. A process may drop a supplementary group
/// with setgroups(2) that a file's permissions single out for denial
/// (`chmod 705`, owner and others allowed, the group not). Root may already
/// do that; an unprivileged user may not. If an unprivileged user could map
/// its gid and call setgroups inside, it would gain that power. So the
/// kernel lets an unprivileged process write `gid_map` only after it has
/// written `deny` to `setgroups`, which disables setgroups(2) in the
/// namespace for good. A privileged parent (root on the host) need not, and
/// leaves setgroups working inside.
fn write_id_maps(pid: Pid, mapping: &IdMapping, group: &IdMapping) -> anyhow::Result<()> {
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let write = |name: &str, content: &str| {
        fs::write(proc_dir.join(name), content)
            .with_context(|| format!("writing {content:?} to /proc/{pid}/{name}"))
    };
    write("uid_map", &split_by_own_map(mapping, "/proc/self/uid_map"))?;
    if !geteuid().is_root() {
        write("setgroups", "deny")?;
    }
    write("gid_map", &split_by_own_map(group, "/proc/self/gid_map"))
}

/// `mapping`'s map line, cut where the writer's own map is cut.
///
/// Each line of a child's map must fall inside *one* line of the map of
/// the namespace it maps into (the kernel's `map_id_range_down`). In the
/// host's namespace that is `0 0 4294967295`, one line: nothing to cut. A
/// rootless engine's namespace maps its uid 0 to the user and 1..=65536 to
/// a subordinate range: two lines, so `0 0 65537` must be written as
/// `0 0 1` and `1 1 65536`.
fn split_by_own_map(mapping: &IdMapping, own_map: &str) -> String {
    // The starts (inside) of our own extents, sorted.
    let mut cuts: Vec<u64> = fs::read_to_string(own_map)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    cuts.sort_unstable();
    let (start, end) = (
        mapping.host_id as u64,
        mapping.host_id as u64 + mapping.count as u64,
    );
    let mut out = String::new();
    let mut from = start;
    for cut in cuts.into_iter().filter(|c| *c > start && *c < end) {
        out.push_str(&format!("{} {} {}\n", from - start, from, cut - from));
        from = cut;
    }
    out.push_str(&format!("{} {} {}\n", from - start, from, end - from));
    out
}
// ANCHOR_END: id_maps

/// The child's whole life: set up, then become the command (or its init).
/// It never returns into the parent's code: it leaves with `_exit`.
fn child_main(
    spec: &Spec,
    rootfs: &Path,
    go: OwnedFd,
    console: Option<OwnedFd>,
    secure: Option<&security::Prepared>,
) -> ! {
    let result = child_setup(spec, rootfs, go, console, secure).and_then(|()| {
        if spec.init {
            run_init(&spec.argv, &spec.env).map_err(lab01::Error::Setup)
        } else {
            lab01::exec(&spec.argv, &spec.env).map(|never| match never {})
        }
    });
    let code = match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{}: {e}", program_name());
            e.exit_code()
        }
    };
    // _exit, not exit: this is a copy of the parent, and must not run the
    // parent's exit handlers or flush the parent's buffered output twice.
    unsafe { libc::_exit(code) }
}

/// Every signal back to its default action, and none blocked.
///
/// A process inherits its parent's blocked mask and its *ignored* signals
/// across fork and exec. Whoever starts dockyard may ignore some: a script's
/// `cmd &` runs with SIGINT and SIGQUIT ignored, `nohup` ignores SIGHUP. A
/// container must not inherit that: a shell started with SIGINT ignored may
/// not even trap it (POSIX), so `docker kill -s INT` and Ctrl-C through
/// `attach` would do nothing. runc's containers, started by a daemon, never
/// see their client's signals; this gives ours the same clean start.
pub fn reset_signals() -> Result<(), lab01::Error> {
    // The kernel's struct sigaction for rt_sigaction(2) on x86_64 and
    // aarch64: handler, flags, restorer, mask. Raw, because the C library's
    // sigaction refuses signals 32 and 33, which it keeps for itself, and
    // they too may have been ignored by whoever started us.
    #[repr(C)]
    struct KernelSigaction {
        handler: libc::sighandler_t,
        flags: libc::c_ulong,
        restorer: usize,
        mask: u64,
    }
    let default = KernelSigaction {
        handler: libc::SIG_DFL,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: a valid struct of the size we pass; SIG_DFL runs no code.
        let r = unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                &default as *const KernelSigaction,
                std::ptr::null_mut::<KernelSigaction>(),
                8usize,
            )
        };
        if r != 0 {
            return Err(lab01::Error::Setup(anyhow::anyhow!(
                "resetting signal {sig}: {}",
                std::io::Error::last_os_error()
            )));
        }
    }
    SigSet::empty()
        .thread_set_mask()
        .map_err(|e| lab01::Error::Setup(anyhow::anyhow!("unblocking signals: {e}")))?;
    Ok(())
}

fn program_name() -> String {
    std::env::args_os()
        .next()
        .map(PathBuf::from)
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "lab02-namespaces".into())
}

// ANCHOR: child
/// Everything the child does between clone and exec, in order.
fn child_setup(
    spec: &Spec,
    rootfs: &Path,
    go: OwnedFd,
    console: Option<OwnedFd>,
    secure: Option<&security::Prepared>,
) -> Result<(), lab01::Error> {
    // 0. If the lab's process dies, so does the container.
    set_parent_death_signal()?;
    //    And it starts with every signal at its default and none blocked,
    //    whatever the caller had (see `reset_signals`).
    reset_signals()?;
    if let Some(fds) = spec.stdio {
        // First, so even a setup error below reaches whoever owns the
        // container's output.
        install_stdio(fds)?;
    }
    // Into our cgroup before we use any resource it should count.
    join_cgroups_self(&spec.cgroup_entry.tasks)?;

    // 1. Wait for the parent's go-ahead: our ID maps are written, and lab 03
    //    has put us in our cgroup. EOF instead of a byte: the parent gave up.
    let mut byte = [0u8; 1];
    let n = fs::File::from(go)
        .read(&mut byte)
        .context("waiting for the go-ahead")?;
    if n == 0 {
        unsafe { libc::_exit(125) };
    }

    // 2. User namespace: become root *inside*, which is uid 100000 (say) on
    //    the host. Changing credentials clears the parent-death signal.
    let userns = spec.has(CloneFlags::CLONE_NEWUSER);
    if userns {
        become_root_inside()?;
        set_parent_death_signal()?;
    }
    // Until exec, this process is a copy of the lab's binary: keep the
    // container's processes out of its /proc/PID (see `security`).
    if secure.is_some() {
        security::set_non_dumpable()?;
    }

    // 3. Cgroup namespace. Its root is the cgroup we are in when we create
    //    it. With CLONE_NEWCGROUP in clone's flags that would be the cgroup
    //    we were born in, the parent's; lab 03 moves us into our own cgroup in
    //    `before_start`, *after* clone. So we create it only now, and our own
    //    cgroup is `/` inside.
    if spec.has(CloneFlags::CLONE_NEWCGROUP) {
        unshare(CloneFlags::CLONE_NEWCGROUP).context("unshare(CLONE_NEWCGROUP)")?;
    }

    // 4. UTS namespace: our own hostname, invisible to the host.
    if let Some(name) = &spec.hostname {
        sethostname(name).with_context(|| format!("sethostname({name:?})"))?;
    }

    // 5. Mount namespace: clone already made it; lab 01 does the rest.
    lab01::make_mounts_private()?;
    bind_volumes(rootfs, &spec.binds)?;
    if let Some(p) = secure {
        security::mount_sys(rootfs, spec.has(CloneFlags::CLONE_NEWNET), p.sys_read_only)?;
    }
    if userns {
        prepare_proc_and_dev_in_userns(rootfs, spec.has(CloneFlags::CLONE_NEWPID))?;
        lab01::pivot_into(rootfs).context(
            "with a user namespace, root inside is an unprivileged uid on the host: can it \
             reach the rootfs (every directory above it searchable, e.g. chmod o+x)?",
        )?;
    } else {
        lab01::pivot_into(rootfs)?;
        // A fresh /proc shows the PID namespace of whoever mounts it: ours.
        lab01::mount_proc()?;
        lab01::mount_dev()?;
    }
    // The tty group (gid 5) exists inside only if the gid map reaches it.
    let gids = spec
        .group
        .or(spec.user)
        .unwrap_or_else(IdMapping::for_caller);
    let tty_gid_mapped = !userns || gids.count > 5;
    if let Some(p) = secure {
        // Devices for terminals, shared memory and message queues; the
        // masked and read-only paths; --tmpfs. All need CAP_SYS_ADMIN.
        security::mount_after_pivot(p, spec.has(CloneFlags::CLONE_NEWIPC), tty_gid_mapped)?;
    }
    // 5b. -t: a pty from our own devpts becomes our stdio and controlling
    //     terminal; its master goes to the parent (see `open_console`).
    if let Some(socket) = console {
        if secure.is_none() {
            mount_devpts(tty_gid_mapped)?;
        }
        let console = open_console(spec.tty_size)?;
        attach_console(console, &socket, spec.run_as.as_ref().map(|u| u.uid))?;
    }

    // 6. Network namespace: it starts with only `lo`, and down.
    if spec.has(CloneFlags::CLONE_NEWNET) {
        bring_up_loopback()?;
    }

    // 7. The working directory, inside the new root. Like Docker's WORKDIR
    //    and `-w`, it is created if the image lacks it, every step resolved
    //    inside the root, and checked to be inside it (CVE-2024-21626).
    if let Some(cwd) = &spec.cwd {
        security::enter_workdir(cwd)?;
    }

    // 8. The security layer: `--read-only`, last of the mounts; then
    //    no_new_privs, capabilities, descriptors and seccomp, in that order.
    //    Without it, still close every descriptor above 2: nothing of the
    //    lab's process may leak into the container.
    match secure {
        Some(p) => {
            if p.read_only_rootfs {
                security::remount_root_read_only()?;
            }
            security::confine(p)?;
        }
        None => security::close_fds(&[])?,
    }

    // 9a. Resource limits (setrlimit), inherited across exec. Raising a
    //     hard limit needs CAP_SYS_RESOURCE, which a host may not give even
    //     root: then the request is capped at the hard limit we have, with a
    //     warning, rather than failing the container.
    for (resource, soft, hard) in &spec.rlimits {
        set_rlimit(*resource, *soft, *hard)?;
    }

    // 9. The user, last: switching away from uid 0 makes the kernel clear
    //    the permitted and effective capabilities, so it comes after
    //    everything that needed them.
    if let Some(u) = &spec.run_as {
        switch_user(u)?;
    }

    // 10. What is left is lab 01's exec, which searches the container's PATH.
    Ok(())
}
// ANCHOR_END: child

// ANCHOR: rlimit
fn set_rlimit(resource: nix::sys::resource::Resource, soft: u64, hard: u64) -> anyhow::Result<()> {
    use nix::sys::resource::{getrlimit, setrlimit};
    match setrlimit(resource, soft, hard) {
        Ok(()) => Ok(()),
        Err(Errno::EPERM) => {
            let (_, max) =
                getrlimit(resource).with_context(|| format!("getrlimit({resource:?})"))?;
            let (soft, hard) = (soft.min(max), hard.min(max));
            eprintln!(
                "warning: {resource:?}: the hard limit cannot be raised above {max} here \
                 (no CAP_SYS_RESOURCE); using {soft}:{hard}"
            );
            setrlimit(resource, soft, hard)
                .with_context(|| format!("setrlimit({resource:?}, {soft}, {hard})"))
        }
        Err(e) => Err(e).with_context(|| format!("setrlimit({resource:?}, {soft}, {hard})")),
    }
}
// ANCHOR_END: rlimit

/// Docker's `--ulimit NAME=SOFT[:HARD]` (HARD defaults to SOFT; `-1` is unlimited).
pub fn parse_ulimit(s: &str) -> anyhow::Result<(nix::sys::resource::Resource, u64, u64)> {
    use nix::sys::resource::Resource;
    let (name, values) = s
        .split_once('=')
        .with_context(|| format!("invalid ulimit argument {s:?}: expected NAME=SOFT[:HARD]"))?;
    let resource = match name {
        "core" => Resource::RLIMIT_CORE,
        "cpu" => Resource::RLIMIT_CPU,
        "data" => Resource::RLIMIT_DATA,
        "fsize" => Resource::RLIMIT_FSIZE,
        "locks" => Resource::RLIMIT_LOCKS,
        "memlock" => Resource::RLIMIT_MEMLOCK,
        "msgqueue" => Resource::RLIMIT_MSGQUEUE,
        "nice" => Resource::RLIMIT_NICE,
        "nofile" => Resource::RLIMIT_NOFILE,
        "nproc" => Resource::RLIMIT_NPROC,
        "rss" => Resource::RLIMIT_RSS,
        "rtprio" => Resource::RLIMIT_RTPRIO,
        "rttime" => Resource::RLIMIT_RTTIME,
        "sigpending" => Resource::RLIMIT_SIGPENDING,
        "stack" => Resource::RLIMIT_STACK,
        "as" => Resource::RLIMIT_AS,
        other => bail!("invalid ulimit type: {other}"),
    };
    let num = |v: &str| -> anyhow::Result<u64> {
        if v == "-1" {
            return Ok(libc::RLIM_INFINITY);
        }
        v.parse()
            .with_context(|| format!("invalid ulimit value {v:?} in {s:?}"))
    };
    let (soft, hard) = match values.split_once(':') {
        Some((a, b)) => (num(a)?, num(b)?),
        None => (num(values)?, num(values)?),
    };
    if soft > hard {
        bail!("ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}");
    }
    Ok((resource, soft, hard))
}

/// Who a container's command runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
}

// ANCHOR: run_as
/// Become `u`: supplementary groups, then the gid, then the uid. The order
/// matters: each step needs CAP_SETGID or CAP_SETUID, and once the uid is
/// not 0 the kernel takes the capabilities away (which is why a container
/// started with `-u 1000` has none, as in docker).
pub fn switch_user(u: &RunAs) -> anyhow::Result<()> {
    use nix::unistd::{setgroups, setresgid, setresuid, Gid, Uid};
    let groups: Vec<Gid> = u.groups.iter().map(|g| Gid::from_raw(*g)).collect();
    setgroups(&groups).context("setgroups")?;
    let gid = Gid::from_raw(u.gid);
    setresgid(gid, gid, gid).with_context(|| format!("setresgid({})", u.gid))?;
    let uid = Uid::from_raw(u.uid);
    setresuid(uid, uid, uid).with_context(|| format!("setresuid({})", u.uid))?;
    Ok(())
}
// ANCHOR_END: run_as

/// Resolve docker's `-u` forms (`uid`, `uid:gid`, `name`, `name:group`)
/// against the image's `/etc/passwd` and `/etc/group`, read inside the
/// rootfs (through openat2 RESOLVE_IN_ROOT: the image's files may be
/// symlinks to anywhere). A name's supplementary groups are the groups that
/// list it.
pub fn resolve_user(rootfs: &Path, user: &str) -> anyhow::Result<RunAs> {
    let root = OwnedFd::from(
        fs::File::open(rootfs).with_context(|| format!("opening {}", rootfs.display()))?,
    );
    let read = |path: &str| -> String {
        security::open_in_root(&root, Path::new(path), libc::O_RDONLY)
            .ok()
            .and_then(|fd| std::io::read_to_string(fs::File::from(fd)).ok())
            .unwrap_or_default()
    };
    let passwd = read("/etc/passwd");
    let group = read("/etc/group");
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    // passwd: name:x:uid:gid:gecos:home:shell
    let entry = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 4 && (f[0] == u || f[2] == u));
    let (uid, mut gid, name) = match (u.parse::<u32>(), &entry) {
        (_, Some(f)) => (
            f[2].parse()
                .with_context(|| format!("bad uid in /etc/passwd for {u}"))?,
            f[3].parse()
                .with_context(|| format!("bad gid in /etc/passwd for {u}"))?,
            Some(f[0].to_string()),
        ),
        (Ok(n), None) => (n, n, None),
        (Err(_), None) => bail!("unable to find user {u}: no matching entries in passwd file"),
    };
    if let Some(g) = g {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => group
                .lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .find(|f| f.len() >= 3 && f[0] == g)
                .and_then(|f| f[2].parse().ok())
                .with_context(|| {
                    format!("unable to find group {g}: no matching entries in group file")
                })?,
        };
    }
    let mut groups = vec![gid];
    if let Some(name) = name {
        for f in group.lines().map(|l| l.split(':').collect::<Vec<_>>()) {
            if f.len() >= 4 && f[3].split(',').any(|m| m == name) {
                if let Ok(n) = f[2].parse() {
                    if !groups.contains(&n) {
                        groups.push(n);
                    }
                }
            }
        }
    }
    Ok(RunAs { uid, gid, groups })
}

fn set_parent_death_signal() -> anyhow::Result<()> {
    // SAFETY: prctl with integer arguments only.
    let ret = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) };
    Errno::result(ret).context("prctl(PR_SET_PDEATHSIG)")?;
    Ok(())
}

/// setresgid/setresuid to 0, which the ID maps make the mapped host IDs.
pub(crate) fn become_root_inside() -> anyhow::Result<()> {
    let root_g = Gid::from_raw(0);
    setresgid(root_g, root_g, root_g).context("setresgid(0, 0, 0) in the user namespace")?;
    // Drop the host's supplementary groups, when setgroups is allowed (see
    // `write_id_maps`); rootless, it is denied and they stay (shown as 65534).
    if getgid() == root_g {
        match setgroups(&[]) {
            Ok(()) | Err(Errno::EPERM) => {}
            Err(e) => return Err(e).context("setgroups([]) in the user namespace"),
        }
    }
    let root_u = Uid::from_raw(0);
    setresuid(root_u, root_u, root_u).context("setresuid(0, 0, 0) in the user namespace")?;
    Ok(())
}

// ANCHOR: userns_mounts
/// Mount `/proc` and `/dev` into the rootfs *before* `pivot_root`, as root in
/// a user namespace must.
///
/// Two rules of the kernel stand in the way of lab 01's order:
///
/// - Root in a user namespace may mount a new procfs only where a complete
///   procfs is already visible in its mount namespace (`mount_too_revealing`
///   in fs/namespace.c): otherwise it could uncover what the host hid under
///   another mount. After `pivot_root` the host's `/proc` is gone, so we
///   mount ours while it is still there, over it, and bind it into the
///   rootfs. Without a PID namespace of our own we may not mount one at all
///   (the host's PID namespace is not ours), so we bind the host's instead.
/// - Root in a user namespace may not create device nodes: mknod(2) would
///   hand it any disk on the host. So, as runc does for rootless containers,
///   we bind the host's harmless nodes (`/dev/null` and friends) into a fresh
///   tmpfs: the same six lab 01's `mount_dev` creates.
fn prepare_proc_and_dev_in_userns(rootfs: &Path, new_pid_ns: bool) -> anyhow::Result<()> {
    let bind = |source: &Path, target: &Path, flags: MsFlags| {
        mount(
            Some(source),
            target,
            None::<&str>,
            MsFlags::MS_BIND | flags,
            None::<&str>,
        )
        .with_context(|| format!("bind-mounting {} on {}", source.display(), target.display()))
    };
    if new_pid_ns {
        lab01::mount_proc()?;
        bind(Path::new("/proc"), &rootfs.join("proc"), MsFlags::empty())?;
    } else {
        bind(Path::new("/proc"), &rootfs.join("proc"), MsFlags::MS_REC)?;
    }

    let dev = rootfs.join("dev");
    mount(
        Some("tmpfs"),
        &dev,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
    )
    .with_context(|| format!("mounting tmpfs on {}", dev.display()))?;
    for (name, _, _) in lab01::DEVICES {
        let target = dev.join(name);
        // A bind mount needs something to mount over: an empty file.
        fs::File::create(&target).with_context(|| format!("creating {}", target.display()))?;
        bind(&Path::new("/dev").join(name), &target, MsFlags::empty())?;
    }
    lab01::populate_dev(&dev)?;
    Ok(())
}
// ANCHOR_END: userns_mounts

// ANCHOR: loopback
/// Bring up `lo`, the only interface of a new network namespace
/// (`ip link set lo up`).
///
/// The classic interface ioctls suffice: read the flags, add IFF_UP, write
/// them back. They need a socket of any kind to be called on. Lab 05 moves
/// to netlink, which `ip` uses, to create veth pairs.
fn bring_up_loopback() -> anyhow::Result<()> {
    let sock = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .context("socket(AF_INET, SOCK_DGRAM) for interface ioctls")?;
    // SAFETY: ifreq is plain old data; all zeroes is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write an ifreq, which `req` is.
    unsafe {
        Errno::result(libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req))
            .context("ioctl(SIOCGIFFLAGS, lo)")?;
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        Errno::result(libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req))
            .context("ioctl(SIOCSIFFLAGS, lo up)")?;
    }
    Ok(())
}
// ANCHOR_END: loopback

// ANCHOR: init
/// The tiny init (`--init`): fork the command, then reap and forward until it
/// ends, and return its status as an exit code (128+N for signal N).
///
/// Like the parent's [`Container::wait_forwarding`], it blocks the signals it
/// cares about and takes them with sigwait(2). A blocked signal is queued,
/// never dropped, so this works even as PID 1.
fn run_init(argv: &[OsString], env: &[OsString]) -> anyhow::Result<i32> {
    let mut set = SigSet::empty();
    set.add(Signal::SIGCHLD);
    FORWARDED_SIGNALS.iter().for_each(|&s| set.add(s));
    set.thread_block().context("blocking signals in init")?;

    // SAFETY: this process has a single thread (we are a fresh clone), so
    // the child may do anything after fork.
    let command = match unsafe { fork() }.context("fork for the command")? {
        ForkResult::Child => {
            // The command starts with no signal blocked: the mask survives exec.
            let code = match set.thread_unblock() {
                Err(e) => {
                    eprintln!("{}: unblocking signals: {e}", program_name());
                    125
                }
                Ok(()) => {
                    let Err(e) = lab01::exec(argv, env);
                    eprintln!("{}: {e}", program_name());
                    e.exit_code()
                }
            };
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => child,
    };

    loop {
        match set.wait().context("sigwait in init")? {
            Signal::SIGCHLD => {
                // Reap *every* child that has ended: the command, and any
                // orphan the kernel reparented to us. One SIGCHLD may stand
                // for many exits, so loop until none is left.
                loop {
                    match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                        Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => break,
                        Ok(status) if status.pid() == Some(command) => {
                            if let Some(done) = finished(status) {
                                // Anything still running in the namespace is
                                // killed by the kernel when PID 1 exits.
                                return Ok(done.code());
                            }
                        }
                        Ok(_) | Err(Errno::EINTR) => {}
                        Err(e) => return Err(e).context("waitpid in init"),
                    }
                }
            }
            forwarded => {
                let _ = kill(command, forwarded);
            }
        }
    }
}
// ANCHOR_END: init

/// Whether this kernel supports `ns`: each supported kind appears as a link
/// in `/proc/self/ns`.
pub fn kernel_supports(ns: &Namespace) -> bool {
    std::path::Path::new("/proc/self/ns")
        .join(ns.proc_name)
        .exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_mapping_parses_host_id_and_count() {
        let m: IdMapping = "200000:1000".parse().unwrap();
        assert_eq!(
            m,
            IdMapping {
                host_id: 200_000,
                count: 1000
            }
        );
        assert_eq!(m.map_line(), "0 200000 1000\n");
        // Cut where the writer's own map is cut (a rootless engine's).
        let dir = std::env::temp_dir().join(format!("lab02-map-{}", std::process::id()));
        fs::write(&dir, "0 1000 1\n1 100000 65536\n").unwrap();
        let all = IdMapping {
            host_id: 0,
            count: 65537,
        };
        assert_eq!(
            split_by_own_map(&all, dir.to_str().unwrap()),
            "0 0 1\n1 1 65536\n"
        );
        assert_eq!(
            split_by_own_map(&m, dir.to_str().unwrap()),
            "0 200000 1000\n"
        );
        fs::remove_file(&dir).unwrap();
        assert!("200000".parse::<IdMapping>().is_err());
        assert!("200000:0".parse::<IdMapping>().is_err());
        assert!("x:1".parse::<IdMapping>().is_err());
    }

    #[test]
    fn exit_status_follows_the_shell() {
        assert_eq!(ExitStatus::Exited(7).code(), 7);
        assert_eq!(ExitStatus::Signaled(Signal::SIGTERM).code(), 143);
        assert_eq!(ExitStatus::Signaled(Signal::SIGKILL).code(), 137);
    }

    #[test]
    fn defaults_are_every_namespace_but_time() {
        for ns in NAMESPACES {
            assert_eq!(
                DEFAULT_NAMESPACES.contains(ns.flag),
                ns.proc_name != "time",
                "{}",
                ns.proc_name
            );
        }
    }

    #[test]
    fn bad_specs_are_refused_before_any_system_call() {
        let mut spec = Spec::new("/nonexistent", vec![]);
        assert!(check_spec(&spec).is_err());
        spec.argv = vec!["/bin/true".into()];
        spec.namespaces.remove(CloneFlags::CLONE_NEWUTS);
        spec.hostname = Some("x".into());
        let err = check_spec(&spec).unwrap_err().to_string();
        assert!(err.contains("UTS"), "{err}");
        spec.namespaces.remove(CloneFlags::CLONE_NEWNS);
        let err = check_spec(&spec).unwrap_err().to_string();
        assert!(err.contains("mount namespace"), "{err}");
    }
}
