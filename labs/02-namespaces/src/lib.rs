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
//!
//! ## Joining a namespace instead of creating one
//!
//! A container may also *enter* an existing network, IPC, UTS or PID
//! namespace instead of creating its own ([`Spec::join_namespaces`], see
//! [`setns`]): what `docker run --network container:NAME`, `--pid
//! container:NAME`, `--ipc container:NAME` and a pod's shared namespaces
//! are made of.
//!
//! ## The chapters
//!
//! This file holds the namespaces, the [`Spec`], [`spawn`] and the child's
//! setup in order (`child_setup`). Each step with a story of its own is a
//! module: [`clone`] (clone3 and CLONE_INTO_CGROUP), [`setns`] (joining a
//! namespace by path), [`userns`] (ID maps, and rootless), [`binds`]
//! (`-v`), [`console`] (`-t`), [`user`] (`-u`), [`rlimit`] (`--ulimit`),
//! [`sysctl`] (`--sysctl`, `--domainname`, `--oom-score-adj`),
//! [`init`] (`--init`, and signals), [`security`] (Docker's security
//! layer), and [`join`] (`docker exec`); for an OCI runtime's callers,
//! [`gate`] (create now, start later) and [`devnodes`] (extra device nodes).

pub mod binds;
pub mod cgroupfs;
pub mod clone;
pub mod console;
pub mod devnodes;
pub mod gate;
pub mod init;
pub mod join;
pub mod propagation;
pub mod rlimit;
pub mod security;
pub mod setns;
pub mod sysctl;
pub mod user;
pub mod userns;

use std::ffi::OsString;
use std::fs;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use lab01_chroot as lab01;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sched::{unshare, CloneFlags};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{geteuid, pipe2, sethostname, Pid};

// The paths callers have always used, at the crate's root.
pub use binds::Bind;
pub use cgroupfs::CgroupMount;
pub use clone::CgroupEntry;
pub use console::{
    console_socketpair, new_session, open_console, receive_fd, send_fd, set_window_size,
    take_terminal, Console,
};
pub use init::reset_signals;
pub use rlimit::parse_ulimit;
pub use setns::NamespacePath;
pub use user::{home_dir, resolve_user, switch_user, RunAs};
pub use userns::IdMapping;

use binds::bind_volumes;
use clone::{clone_process, join_cgroups_self, move_into_cgroup};
use console::{attach_console, install_stdio, mount_devpts};
use setns::{
    enter_joined, kind_name, open_joined, why_not_joinable, OpenNamespace, PidForChildren,
};
use userns::{become_root_inside, prepare_proc_and_dev_in_userns, write_id_maps};

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
    /// The NIS domain name inside (`--domainname`, `setdomainname(2)`);
    /// needs `CLONE_NEWUTS`, as the hostname does.
    pub domainname: Option<String>,
    /// Sysctls of the container's own namespaces (`--sysctl`), written
    /// inside before the security layer (see [`sysctl`]).
    pub sysctls: Vec<(String, String)>,
    /// `/proc/PID/oom_score_adj` of the first process (`--oom-score-adj`),
    /// written by the parent (see [`sysctl::set_oom_score_adj`]).
    pub oom_score_adj: Option<i32>,
    /// Which namespaces to create: a union of the flags in [`NAMESPACES`].
    /// `CLONE_NEWNS` is required: `pivot_root` needs a mount namespace.
    pub namespaces: CloneFlags,
    /// Existing namespaces to enter instead of creating them: net, ipc, uts
    /// and pid (see [`NamespacePath`]). A kind joined here is not created,
    /// whatever `namespaces` says, and for the rest of the setup counts as
    /// not new, as if it were left out of `namespaces` (no fresh /sys, `lo`
    /// left alone, no /dev/mqueue, no hostname). Not with `CLONE_NEWUSER`.
    pub join_namespaces: Vec<NamespacePath>,
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
    /// What the container sees at `/sys/fs/cgroup` (with the security
    /// layer, which mounts /sys): its own group, read-only, as Docker
    /// shows it (see [`cgroupfs`]). Lab 03 sets it with the group.
    pub cgroup_mount: CgroupMount,
    /// An OCI runtime's `create`: a fifo (see [`gate`]) on which the
    /// first process blocks, fully set up, just before `execve`, until
    /// someone opens it for reading (`start`). [`spawn`] returns once the
    /// process is blocked there. `None`: it execs straight away.
    pub exec_fifo: Option<PathBuf>,
    /// Whether the first process is killed when the process that spawned
    /// it exits (`PR_SET_PDEATHSIG`). An OCI runtime's `create` exits while
    /// its container lives on: then `false`, and the process is reparented
    /// to the caller (a subreaper such as containerd's shim).
    pub die_with_parent: bool,
    /// Device nodes made in the container's fresh `/dev` (`--device`, and
    /// the host's whole `/dev` under `--privileged`); see [`devnodes`].
    /// Whether they may be opened is the device cgroup's decision (lab 03).
    pub devices: Vec<devnodes::DeviceNode>,
    /// Mount propagation (an OCI config's `rootfsPropagation` and its
    /// mounts' `rshared`, `rslave`...); the default: every mount private,
    /// as lab 01 makes them. See [`propagation`].
    pub propagation: propagation::Propagation,
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
            domainname: None,
            sysctls: Vec::new(),
            oom_score_adj: None,
            namespaces: DEFAULT_NAMESPACES,
            join_namespaces: Vec::new(),
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
            cgroup_mount: CgroupMount::None,
            exec_fifo: None,
            die_with_parent: true,
            devices: Vec::new(),
            propagation: propagation::Propagation::default(),
        }
    }

    /// Whether the child gets a new namespace of kind `flag`: asked for in
    /// `namespaces`, and not joined instead.
    fn creates(&self, flag: CloneFlags) -> bool {
        self.namespaces.contains(flag) && !self.joins(flag)
    }

    /// Whether the child joins an existing namespace of kind `flag`.
    fn joins(&self, flag: CloneFlags) -> bool {
        self.join_namespaces.iter().any(|j| j.kind == flag)
    }

    /// Every kind in [`Spec::join_namespaces`].
    fn joined_kinds(&self) -> CloneFlags {
        self.join_namespaces
            .iter()
            .fold(CloneFlags::empty(), |all, j| all | j.kind)
    }

    /// Check the spec before touching the kernel; return the canonical
    /// rootfs. [`spawn`] calls it first; a caller that creates things for
    /// the container before spawn (a cgroup, a veth) calls it earlier, so
    /// that a bad spec fails before any of them exists.
    pub fn check(&self) -> anyhow::Result<PathBuf> {
        if self.argv.is_empty() {
            bail!("no command given");
        }
        if !self.namespaces.contains(CloneFlags::CLONE_NEWNS) {
            bail!(
                "a mount namespace is required: pivot_root(2) changes the root of the whole namespace"
            );
        }
        self.check_joins()?;
        devnodes::check_paths(&self.devices)?;
        if self.hostname.is_some() && self.joins(CloneFlags::CLONE_NEWUTS) {
            bail!(
                "setting a hostname in a joined UTS namespace would rename every process that \
                 shares it: set it where that namespace was made"
            );
        }
        if self.hostname.is_some() && !self.creates(CloneFlags::CLONE_NEWUTS) {
            // Without a UTS namespace, sethostname would rename the host.
            bail!("setting a hostname needs a UTS namespace (drop --no-uts)");
        }
        if self.domainname.is_some() && !self.creates(CloneFlags::CLONE_NEWUTS) {
            bail!("setting a domain name needs a UTS namespace of its own");
        }
        for (key, _) in &self.sysctls {
            // A joined net or IPC namespace is another container's, not
            // the host's: its sysctls are allowed, as runc allows them.
            let own = |f| self.namespaces.contains(f) || self.joins(f);
            sysctl::check(
                key,
                own(CloneFlags::CLONE_NEWNET),
                own(CloneFlags::CLONE_NEWIPC),
                self.creates(CloneFlags::CLONE_NEWUTS),
            )?;
        }
        if geteuid().is_root() {
            return lab01::preflight(&self.rootfs);
        }
        // Rootless: no capability on the host, so everything must happen inside a
        // user namespace that this user owns, and it can map only its own IDs.
        if !self.namespaces.contains(CloneFlags::CLONE_NEWUSER) {
            bail!(
                "running as uid {} without a user namespace: creating namespaces and mounting need \
                 root, or a user namespace of your own (drop --no-user, or run as root)",
                geteuid()
            );
        }
        for m in [self.user, self.group].into_iter().flatten() {
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
        self.rootfs
            .canonicalize()
            .with_context(|| format!("rootfs {}", self.rootfs.display()))
    }

    /// The rules of [`Spec::join_namespaces`]: joinable kinds only, each
    /// once, and no new user namespace.
    fn check_joins(&self) -> anyhow::Result<()> {
        if self.join_namespaces.is_empty() {
            return Ok(());
        }
        if self.namespaces.contains(CloneFlags::CLONE_NEWUSER) {
            bail!(
                "joining an existing namespace cannot go with a new user namespace (add \
                 --no-user): a namespace belongs to the user namespace it was made in, and root \
                 of a new user namespace has no privilege over the namespaces its parent's user \
                 namespace owns, so setns(2) would fail with EPERM"
            );
        }
        let mut seen = CloneFlags::empty();
        for j in &self.join_namespaces {
            if let Some(why) = why_not_joinable(j.kind) {
                bail!(
                    "cannot join the {} namespace at {}: {why}",
                    kind_name(j.kind),
                    j.path.display()
                );
            }
            if seen.contains(j.kind) {
                bail!("the {} namespace is joined twice", kind_name(j.kind));
            }
            seen |= j.kind;
        }
        Ok(())
    }
}

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

pub(crate) fn finished(status: WaitStatus) -> Option<ExitStatus> {
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
    let rootfs = spec.check()?;
    // The namespaces to join are opened here, so that a bad path fails
    // before any process exists; the child inherits the descriptors.
    let mut joined = open_joined(&spec.join_namespaces)?;
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
    // An exec fifo: the pipe on which the child says it is ready.
    let ready = match spec.exec_fifo {
        Some(_) => Some(pipe2(OFlag::O_CLOEXEC).context("pipe2 for the ready signal")?),
        None => None,
    };

    // Every namespace but the cgroup one is created by clone itself; see
    // `child_setup` for why the cgroup namespace must wait. Those joined
    // instead are not created at all.
    // A joined PID namespace is entered here, by the parent, for the
    // clone alone (see `setns`).
    let flags = spec.namespaces - CloneFlags::CLONE_NEWCGROUP - spec.joined_kinds();
    let pid_ns = PidForChildren::enter(&mut joined)?;
    let cloned = clone_process(flags, spec.cgroup_entry.clone_into);
    // The parent (or a failed clone) goes back to its own; the child is
    // in the joined one for good.
    if let (Some(ns), false) = (pid_ns, matches!(cloned, Ok(None))) {
        ns.restore()?;
    }
    match cloned? {
        None => {
            drop(go_write);
            let socket = console.map(|(_, child)| child);
            let gate = ready.map(|(_, write)| write);
            let io = ChildIo {
                go: go_read,
                console: socket,
                ready: gate,
            };
            child_main(spec, &rootfs, io, secure.as_ref(), joined)
        }
        Some((pid, born_in_cgroup)) => {
            drop(go_read);
            drop(joined);
            let console = console.map(|(parent, _)| parent);
            let ready = ready.map(|(read, _)| read);
            let mut container = Container { pid, console: None };
            let prepared = (|| {
                if spec.creates(CloneFlags::CLONE_NEWUSER) {
                    write_id_maps(pid, &mapping, &group_mapping)?;
                }
                if let Some(score) = spec.oom_score_adj {
                    sysctl::set_oom_score_adj(pid, score)?;
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
            if let Some(ready) = ready {
                if !gate::wait_ready(ready)? {
                    let status = container.wait()?;
                    bail!(
                        "the container's first process exited during its setup (status {}): \
                         its stderr says why",
                        status.code()
                    );
                }
            }
            Ok(container)
        }
    }
}
// ANCHOR_END: spawn

/// The child's whole life: set up, then become the command (or its init).
/// It never returns into the parent's code: it leaves with `_exit`.
fn child_main(
    spec: &Spec,
    rootfs: &Path,
    io: ChildIo,
    secure: Option<&security::Prepared>,
    joined: Vec<OpenNamespace>,
) -> ! {
    let result = child_setup(spec, rootfs, io, secure, joined).and_then(|()| {
        if spec.init {
            init::run_init(&spec.argv, &spec.env).map_err(lab01::Error::Setup)
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

pub(crate) fn program_name() -> String {
    std::env::args_os()
        .next()
        .map(PathBuf::from)
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "lab02-namespaces".into())
}

// ANCHOR: child
/// The child's ends of the pipes and sockets it shares with its parent.
struct ChildIo {
    /// The go-ahead pipe.
    go: OwnedFd,
    /// With `tty`: where the pty's master goes.
    console: Option<OwnedFd>,
    /// With an exec fifo: where "ready" goes.
    ready: Option<OwnedFd>,
}

/// Everything the child does between clone and exec, in order.
fn child_setup(
    spec: &Spec,
    rootfs: &Path,
    io: ChildIo,
    secure: Option<&security::Prepared>,
    joined: Vec<OpenNamespace>,
) -> Result<(), lab01::Error> {
    let ChildIo { go, console, ready } = io;
    // 0. Into the namespaces we join instead of creating (see
    //    `Spec::join_namespaces`), before anything else happens in them.
    enter_joined(joined)?;
    //    If the lab's process dies, so does the container (not under an
    //    OCI runtime, whose `create` exits first: see `die_with_parent`).
    if spec.die_with_parent {
        set_parent_death_signal()?;
    }
    //    And it starts with every signal at its default and none blocked,
    //    whatever the caller had (see `reset_signals`).
    reset_signals()?;
    //    In a session of its own, never the caller's: nothing the
    //    container runs may reach the caller's terminal (see `new_session`).
    new_session()?;
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
    let userns = spec.creates(CloneFlags::CLONE_NEWUSER);
    if userns {
        become_root_inside()?;
        if spec.die_with_parent {
            set_parent_death_signal()?;
        }
    }
    // Until exec, this process is a copy of the lab's binary: keep the
    // container's processes out of its /proc/PID (see `security`).
    if secure.is_some() {
        security::set_non_dumpable()?;
    }

    // 3. Cgroup namespace. Its root is the cgroup we are in when we create
    //    it. With CLONE_NEWCGROUP in clone's flags that would be the cgroup
    //    we were born in, the parent's; on v1, lab 03 moves us into our own
    //    cgroup in `before_start`, *after* clone. So we create it only now,
    //    and our own cgroup is `/` inside. (On v2, lab 03 has clone3 create us
    //    in our cgroup, CLONE_INTO_CGROUP, and either order would do.)
    if spec.creates(CloneFlags::CLONE_NEWCGROUP) {
        unshare(CloneFlags::CLONE_NEWCGROUP).context("unshare(CLONE_NEWCGROUP)")?;
    }

    // 4. UTS namespace: our own hostname and NIS domain name, invisible
    //    to the host.
    set_uts_names(spec)?;

    // 4b. An OCI `create`: the exec fifo, opened while its path is in view.
    let gate = match (&spec.exec_fifo, ready) {
        (Some(fifo), Some(ready)) => Some(gate::Gate::open(fifo, ready)?),
        _ => None,
    };
    let keep = gate.as_ref().map(gate::Gate::keep).unwrap_or([-1, -1]);

    // 5. Mount namespace: clone already made it; lab 01 and the security
    //    layer fill it (see `enter_rootfs`).
    enter_rootfs(spec, rootfs, secure)?;

    // 5b. -t: a pty from our own devpts becomes our stdio and controlling
    //     terminal; its master goes to the parent (see `open_console`).
    if let Some(socket) = console {
        if secure.is_none() {
            mount_devpts(tty_gid_mapped(spec))?;
        }
        let console = open_console(spec.tty_size)?;
        attach_console(console, &socket, spec.run_as.as_ref().map(|u| u.uid))?;
    }

    // 6. Network namespace: it starts with only `lo`, and down.
    if spec.creates(CloneFlags::CLONE_NEWNET) {
        bring_up_loopback()?;
    }

    // 7. The working directory, inside the new root. Like Docker's WORKDIR
    //    and `-w`, it is created if the image lacks it, every step resolved
    //    inside the root, and checked to be inside it (CVE-2024-21626).
    if let Some(cwd) = &spec.cwd {
        security::enter_workdir(cwd)?;
    }

    // 7b. Root inside with other groups (as OCI callers write it): switched
    //     now, while CAP_SETGID is ours, even if the container's sets lack it.
    let root_user = spec.run_as.as_ref().filter(|u| u.uid == 0);
    if let Some(u) = root_user {
        switch_user(u)?;
    }

    // 7c. Resource limits (setrlimit), inherited across exec, set while still root. Raising
    //     a hard limit needs CAP_SYS_RESOURCE, which a host may not give even root: then it is
    //     capped at the hard limit we have, with a warning, rather than failing the container.
    for (resource, soft, hard) in &spec.rlimits {
        rlimit::set_rlimit(*resource, *soft, *hard)?;
    }

    // 8. The security layer: `--read-only`, last of the mounts; then no_new_privs,
    //    capabilities, descriptors and seccomp, in that order. Without it, still close every
    //    descriptor above 2: nothing of the lab's process may leak into the container. An OCI
    //    config's five capability sets switch a non-root user in the middle (`confine_as`).
    let user = spec.run_as.as_ref().filter(|u| u.uid != 0);
    let switched = match secure {
        Some(p) => {
            if p.read_only_rootfs {
                security::remount_root_read_only()?;
            }
            security::confine_as(p, &keep, user)?
        }
        None => {
            security::close_fds(&keep)?;
            false
        }
    };

    // 9. The user, last: switching away from uid 0 makes the kernel clear
    //    the permitted and effective capabilities, so it comes after
    //    everything that needed them.
    if let Some(u) = user.filter(|_| !switched) {
        switch_user(u)?;
    }

    // 10. An OCI `create`: wait here, set up, until `start` (see `gate`).
    if let Some(gate) = gate {
        gate.wait()?;
    }

    // 11. What is left is lab 01's exec, which searches the container's PATH.
    Ok(())
}

/// Step 4 of `child_setup`: `hostname NAME` and `domainname NAME`, in
/// our own UTS namespace (`Spec::check` made sure it is ours).
fn set_uts_names(spec: &Spec) -> anyhow::Result<()> {
    if let Some(name) = &spec.hostname {
        sethostname(name).with_context(|| format!("sethostname({name:?})"))?;
    }
    if let Some(name) = &spec.domainname {
        sysctl::set_domainname(name)?;
    }
    Ok(())
}

/// Step 5 of `child_setup`: the rootfs becomes `/`, with what it needs
/// mounted before pivot_root (volumes, /sys, and with a user namespace
/// /proc and /dev) and after it (/proc, /dev, and the security layer's
/// mounts).
fn enter_rootfs(
    spec: &Spec,
    rootfs: &Path,
    secure: Option<&security::Prepared>,
) -> Result<(), lab01::Error> {
    propagation::prepare_namespace(&spec.propagation)?;
    bind_volumes(rootfs, &spec.binds)?;
    if let Some(p) = secure {
        security::mount_sys(
            rootfs,
            spec.creates(CloneFlags::CLONE_NEWNET),
            p.sys_read_only,
        )?;
        cgroupfs::mount_cgroup_fs(rootfs, &spec.cgroup_mount, p.sys_read_only)?;
    }
    // `--ipc host`, `shareable`: a host directory for /dev/shm, copied
    // while it is in view and attached after /dev exists (see `security::shm`).
    let shm_tree = match secure {
        Some(p) => security::shm::detach_copy(&p.dev_shm)?,
        None => None,
    };
    let userns = spec.creates(CloneFlags::CLONE_NEWUSER);
    if userns {
        prepare_proc_and_dev_in_userns(rootfs, spec.creates(CloneFlags::CLONE_NEWPID))?;
        // `--device`: mknod(2) needs CAP_MKNOD in the *initial* user
        // namespace, which root of this one lacks; the host's nodes are
        // bound instead, while the host's /dev is still in sight.
        devnodes::bind_here(rootfs, &spec.devices)?;
        lab01::pivot_into(rootfs).context(
            "with a user namespace, root inside is an unprivileged uid on the host: can it \
             reach the rootfs (every directory above it searchable, e.g. chmod o+x)?",
        )?;
    } else {
        lab01::pivot_into(rootfs)?;
        // A fresh /proc shows the PID namespace of whoever mounts it: ours.
        lab01::mount_proc()?;
        lab01::mount_dev()?;
        // `--device`, `--privileged`: the extra nodes, in the fresh tmpfs,
        // while we still hold CAP_MKNOD (the security layer drops it later).
        devnodes::make_here(&spec.devices)?;
    }
    // `--sysctl`: our /proc is mounted, and not yet made read-only.
    sysctl::write(&spec.sysctls)?;
    if let Some(p) = secure {
        // Devices for terminals, shared memory and message queues; the
        // masked and read-only paths; --tmpfs. All need CAP_SYS_ADMIN.
        security::mount_after_pivot(
            p,
            spec.creates(CloneFlags::CLONE_NEWIPC),
            tty_gid_mapped(spec),
            shm_tree,
        )?;
    }
    propagation::apply_after_pivot(&spec.propagation)?;
    Ok(())
}

/// Whether the tty group (gid 5) exists inside: only if the gid map
/// reaches it, with a user namespace.
fn tty_gid_mapped(spec: &Spec) -> bool {
    let gids = spec
        .group
        .or(spec.user)
        .unwrap_or_else(IdMapping::for_caller);
    !spec.creates(CloneFlags::CLONE_NEWUSER) || gids.count > 5
}
// ANCHOR_END: child

fn set_parent_death_signal() -> anyhow::Result<()> {
    // SAFETY: prctl with integer arguments only.
    let ret = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) };
    Errno::result(ret).context("prctl(PR_SET_PDEATHSIG)")?;
    Ok(())
}

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
        assert!(spec.check().is_err());
        spec.argv = vec!["/bin/true".into()];
        spec.namespaces.remove(CloneFlags::CLONE_NEWUTS);
        spec.hostname = Some("x".into());
        let err = spec.check().unwrap_err().to_string();
        assert!(err.contains("UTS"), "{err}");
        spec.namespaces.remove(CloneFlags::CLONE_NEWNS);
        let err = spec.check().unwrap_err().to_string();
        assert!(err.contains("mount namespace"), "{err}");
    }

    #[test]
    fn joins_are_refused_where_setns_cannot_work() {
        let join = |kind: CloneFlags| NamespacePath::new(kind, "/proc/self/ns/x");
        let mut spec = Spec::new("/nonexistent", vec!["/bin/true".into()]);
        spec.join_namespaces = vec![join(CloneFlags::CLONE_NEWNET)];
        // A new user namespace would own none of them: EPERM ahead.
        let err = spec.check().unwrap_err().to_string();
        assert!(err.contains("--no-user") && err.contains("EPERM"), "{err}");

        spec.namespaces.remove(CloneFlags::CLONE_NEWUSER);
        for (kind, why) in [
            (CloneFlags::CLONE_NEWNS, "pivot_root"),
            (CloneFlags::CLONE_NEWUSER, "ID maps"),
            (CloneFlags::CLONE_NEWCGROUP, "its own cgroup"),
            (NAMESPACES[7].flag, "time namespace"),
            (
                CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWIPC,
                "not one kind",
            ),
        ] {
            spec.join_namespaces = vec![join(kind)];
            let err = spec.check().unwrap_err().to_string();
            assert!(err.contains("cannot join") && err.contains(why), "{err}");
        }
        spec.join_namespaces = vec![
            join(CloneFlags::CLONE_NEWNET),
            join(CloneFlags::CLONE_NEWNET),
        ];
        let err = spec.check().unwrap_err().to_string();
        assert!(err.contains("twice"), "{err}");

        // net, ipc, uts and pid may be joined; what is joined is not created.
        spec.join_namespaces = [
            CloneFlags::CLONE_NEWNET,
            CloneFlags::CLONE_NEWIPC,
            CloneFlags::CLONE_NEWUTS,
            CloneFlags::CLONE_NEWPID,
        ]
        .map(join)
        .to_vec();
        spec.check_joins().unwrap();
        assert!(spec.namespaces.contains(CloneFlags::CLONE_NEWNET));
        assert!(!spec.creates(CloneFlags::CLONE_NEWNET));
        assert!(!spec.creates(CloneFlags::CLONE_NEWPID));
        // ... and a joined UTS namespace keeps its hostname.
        spec.hostname = Some("box".into());
        let err = spec.check().unwrap_err().to_string();
        assert!(err.contains("joined UTS"), "{err}");
    }
}
