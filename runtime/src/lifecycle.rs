//! # create, start, run, kill, delete: the state machine
//!
//! ```text
//!            create                 start                 (exits)
//!  (none) ----------> created ---------------> running ------------> stopped
//!           creating      \                                             |
//!                          \------------- kill ------------------------>|
//!                                                              delete   v
//!                                                                    (none)
//! ```
//!
//! Why two steps, `create` and `start`? Because between them the caller
//! still has work to do with a container that exists but runs nothing of
//! the image yet: containerd reads the PID and sets up its I/O, a CNI plugin
//! (run by the CRI) puts a veth in the new network namespace, hooks run.
//! `create` therefore does all the work (lab 03's assembler: the cgroup, the
//! namespaces, the mounts, pivot_root, the security layer) and leaves the
//! process blocked on `exec.fifo` just before `execve` (lab 02's gate).
//! `start` only opens that fifo. The process is a child of `create`; when
//! `create` exits it is reparented to the nearest subreaper, containerd's
//! shim or conmon, which is the one to reap it and report its exit.

use std::fs;
use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use lab02_namespaces as lab02;
use lab03_cgroups as lab03;
use nix::sys::signal::{kill as send, Signal};
use nix::unistd::Pid;

use crate::cli::{CreateArgs, Global};
use crate::hooks::{self, Point};
use crate::logging::Logger;
use crate::state::{self, Record, Status};
use crate::{bundle, time};

/// `create`: see the module documentation. On any error nothing is left:
/// no process, no cgroup, no state directory.
pub fn create(g: &Global, log: &Logger, a: &CreateArgs) -> anyhow::Result<()> {
    create_inner(g, log, a).map(|_| ())
}

fn create_inner(g: &Global, log: &Logger, a: &CreateArgs) -> anyhow::Result<lab02::Container> {
    let dir = state::dir(&g.root, &a.id)?;
    if dir.exists() {
        bail!("container with id exists: {}", a.id);
    }
    let (bundle_dir, spec, raw) = bundle::load(&a.bundle)?;
    let rootfs = bundle::rootfs(&bundle_dir, &spec)?;
    if a.preserve_fds > 0 {
        bail!("--preserve-fds is not supported by this runtime");
    }
    if a.no_pivot {
        log.warn("--no-pivot: this runtime always uses pivot_root(2)");
    }
    let host = lab03::detect()?;
    fs::create_dir_all(&g.root).with_context(|| format!("creating {}", g.root.display()))?;
    fs::create_dir(&dir).with_context(|| format!("container with id exists: {}", a.id))?;
    // Held until create returns: a `delete` or `start` that comes in
    // meanwhile waits for the whole container (see `state::Lock`).
    let _lock = state::Lock::exclusive(&g.root, &a.id)?;
    // From here on, a failure removes the directory again.
    let made = (|| {
        let plan = bundle::plan(&spec, &rootfs, &bundle_dir, &dir, &a.id, &host)?;
        for w in &plan.warnings {
            log.warn(w);
        }
        make_fifo(&dir.join("exec.fifo"))?;
        let tty = plan.blueprint.process.tty;
        if tty && a.console_socket.is_none() {
            bail!("process.terminal is true: --console-socket is required");
        }
        let oom = plan.oom_score_adj;
        let mut assembled = lab03::assemble::assemble(&host, &plan.blueprint, |pid| match oom {
            Some(adj) => write_oom_score_adj(pid, adj),
            None => Ok(()),
        })?;
        let record = Record {
            id: a.id.clone(),
            pid: assembled.process.pid().as_raw(),
            start_time: state::proc_stat(assembled.process.pid().as_raw())
                .map(|(_, t)| t)
                .unwrap_or_default(),
            bundle: bundle_dir.clone(),
            rootfs: rootfs.clone(),
            created: time::now(),
            annotations: spec
                .annotations()
                .clone()
                .unwrap_or_default()
                .into_iter()
                .collect(),
            cgroup: plan
                .blueprint
                .cgroup
                .as_ref()
                .map(|c| (c.parent.clone(), c.name.clone())),
            config: raw.clone(),
        };
        let finished = finish_create(g, a, &plan, &host, &mut assembled, &record);
        match finished {
            Ok(()) => {
                // The groups stay: the container owns them until delete.
                std::mem::forget(assembled.groups);
                Ok(assembled.process)
            }
            Err(e) => {
                let _ = assembled.process.signal(Signal::SIGKILL);
                let _ = assembled.process.wait();
                if let Err(c) = assembled.groups.remove() {
                    log.warn(&format!("removing the cgroup of a failed create: {c:#}"));
                }
                // The device list, if it was made: found by name.
                if let Some(c) = &plan.blueprint.cgroup {
                    let _ = lab03::assemble::remove_by_name(&host, &c.parent, &c.name);
                }
                Err(e)
            }
        }
    })();
    match made {
        Ok(process) => {
            log.info(&format!(
                "created container {} (pid {})",
                a.id,
                process.pid()
            ));
            Ok(process)
        }
        Err(e) => {
            let _ = fs::remove_dir_all(&dir);
            Err(e)
        }
    }
}

/// The rest of create, once the process exists: the console, sysctls,
/// the state file, the pid file and the create-time hooks.
fn finish_create(
    g: &Global,
    a: &CreateArgs,
    plan: &bundle::Plan,
    host: &lab03::Host,
    assembled: &mut lab03::assemble::Assembled,
    record: &Record,
) -> anyhow::Result<()> {
    let pid = assembled.process.pid();
    apply_devices(plan, host, pid)?;
    if let Some(socket) = &a.console_socket {
        let master = assembled
            .process
            .take_console()
            .context("the container's first process sent no pty master")?;
        send_console(socket, &master)?;
    }
    apply_sysctls(pid, &plan.sysctl)?;
    record.save(&g.root)?;
    let state = serde_json::to_vec(&record.oci_state(Status::Creating))?;
    hooks::run(&record.config, Point::Prestart, &state)?;
    hooks::run(&record.config, Point::CreateRuntime, &state)?;
    hooks::run_in_container(&record.config, Point::CreateContainer, &state, pid)?;
    if let Some(path) = &a.pid_file {
        write_pid_file(path, pid.as_raw())?;
    }
    Ok(())
}

/// The device allow list and the extra device nodes, while the process
/// still waits before exec: lab 03 makes the list (a v1 `devices` group the
/// process is moved into, or an eBPF program on its v2 group), lab 02 the
/// nodes. From here on they are found by name (delete removes them).
fn apply_devices(plan: &bundle::Plan, host: &lab03::Host, pid: Pid) -> anyhow::Result<()> {
    use lab03::devices::{devices_hierarchy, DevicesCgroup};
    if let (Some(rules), Some(c)) = (&plan.device_rules, &plan.blueprint.cgroup) {
        let rules: Vec<&str> = rules.iter().map(String::as_str).collect();
        let list = match devices_hierarchy()? {
            Some(_) => {
                let d = DevicesCgroup::create_in(&c.parent, &c.name, &rules)?;
                d.add(pid.as_raw())?;
                d
            }
            None => {
                let mount = host.v2_mount.as_ref().context("no cgroup2 mount")?;
                DevicesCgroup::attach_program(&mount.join(&c.parent).join(&c.name), &rules)?
            }
        };
        std::mem::forget(list);
    }
    lab02::devnodes::make_nodes(pid, &plan.device_nodes)
}

/// `exec.fifo`, mode 0622: the container's process, whoever it runs as,
/// may open it for writing; only root may read it (and so start it).
fn make_fifo(path: &Path) -> anyhow::Result<()> {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o622))
        .with_context(|| format!("mkfifo {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o622))
        .with_context(|| format!("chmod {}", path.display()))
}

/// The pid file, written atomically: the caller may poll for it.
pub fn write_pid_file(path: &Path, pid: i32) -> anyhow::Result<()> {
    state::write_atomic(path, pid.to_string().as_bytes())
}

/// `process.oomScoreAdj`, written from outside before the process runs.
/// Lowering it needs CAP_SYS_RESOURCE (containerd's
/// `restrict_oom_score_adj` keeps callers from asking where that is missing).
fn write_oom_score_adj(pid: Pid, adj: i32) -> anyhow::Result<()> {
    let path = format!("/proc/{pid}/oom_score_adj");
    fs::write(&path, adj.to_string()).with_context(|| format!("writing {adj} to {path}"))
}

/// Send the pty master to the caller's console socket, as runc does: one
/// SCM_RIGHTS message on a unix stream socket the caller listens on.
fn send_console(socket: &Path, master: &std::os::fd::OwnedFd) -> anyhow::Result<()> {
    let stream = std::os::unix::net::UnixStream::connect(socket)
        .with_context(|| format!("connecting to the console socket {}", socket.display()))?;
    let fd = std::os::fd::OwnedFd::from(stream);
    lab02::send_fd(&fd, master).context("sending the pty master over the console socket")
}

/// `linux.sysctl` (and `domainname`): written in the container's own
/// namespaces. `/proc/sys/net` and the IPC and UTS keys show the namespace
/// of the process that writes, so a short-lived child enters the
/// container's net, ipc and uts namespaces and writes the host's
/// `/proc/sys` from there.
fn apply_sysctls(pid: Pid, sysctl: &[(String, String)]) -> anyhow::Result<()> {
    if sysctl.is_empty() {
        return Ok(());
    }
    for (key, _) in sysctl {
        let ok = key.starts_with("net.")
            || key.starts_with("kernel.shm")
            || key.starts_with("kernel.msg")
            || key.starts_with("fs.mqueue.")
            || key == "kernel.sem"
            || key == "kernel.domainname"
            || key == "kernel.hostname";
        if !ok || key.contains("..") || key.contains('/') {
            bail!("sysctl {key:?} is not namespaced: refusing to change the host's");
        }
    }
    let code =
        lab02::setns::in_namespaces_of(pid, &["net", "ipc", "uts"], || -> anyhow::Result<()> {
            for (key, value) in sysctl {
                let path = format!("/proc/sys/{}", key.replace('.', "/"));
                fs::write(&path, value).with_context(|| format!("writing {value:?} to {path}"))?;
            }
            Ok(())
        })?;
    if code != 0 {
        bail!("setting sysctls {sysctl:?} failed (see above)");
    }
    Ok(())
}

/// `start`: open the exec fifo for reading, which lets the blocked
/// process exec its command, then `poststart`.
pub fn start(g: &Global, log: &Logger, id: &str) -> anyhow::Result<()> {
    let _lock = state::Lock::exclusive(&g.root, id)?;
    let record = Record::load(&g.root, id)?;
    match record.status(&g.root) {
        Status::Created => {}
        Status::Stopped => bail!("cannot start a container that has stopped"),
        other => bail!("cannot start an already {} container", other.name()),
    }
    let state = serde_json::to_vec(&record.oci_state(Status::Created))?;
    let pid = Pid::from_raw(record.pid);
    hooks::run_in_container(&record.config, Point::StartContainer, &state, pid)?;
    let fifo = state::dir(&g.root, id)?.join("exec.fifo");
    release(&fifo, &record)?;
    let _ = fs::remove_file(&fifo);
    log.info(&format!("started container {id}"));
    let state = serde_json::to_vec(&record.oci_state(Status::Running))?;
    if let Err(e) = hooks::run(&record.config, Point::Poststart, &state) {
        log.warn(&format!("{e:#}"));
    }
    Ok(())
}

/// Read the one byte the container's process writes once it opens the
/// fifo. Opened non-blocking, so that a process that died meanwhile is
/// noticed instead of waited for forever.
fn release(fifo: &Path, record: &Record) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(fifo)
        .with_context(|| format!("opening {}", fifo.display()))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut byte = [0u8; 1];
        match f.read(&mut byte) {
            Ok(1) => return Ok(()),
            Ok(_) => {} // no writer yet: it opens the fifo any moment now
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e).context("reading the exec fifo"),
        }
        if !state::alive(record.pid, record.start_time) {
            bail!("the container's process exited before it was started");
        }
        if Instant::now() > deadline {
            bail!("the container's process did not open its exec fifo within 10s");
        }
        let mut fds = [nix::poll::PollFd::new(
            f.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(10u8));
    }
}

/// `run`: create, start, and (without --detach) wait for the container,
/// delete it and exit with its status.
pub fn run(g: &Global, log: &Logger, a: &CreateArgs) -> anyhow::Result<i32> {
    let process = create_inner(g, log, a)?;
    if let Err(e) = start(g, log, &a.id) {
        let _ = delete(g, log, &a.id, true);
        return Err(e);
    }
    if a.detach {
        return Ok(0);
    }
    let status = process.wait_forwarding(&lab02::FORWARDED_SIGNALS)?;
    delete(g, log, &a.id, true)?;
    Ok(status.code())
}

/// A signal by name (`SIGTERM`, `TERM`, `term`) or number (`15`).
pub fn parse_signal(s: &str) -> anyhow::Result<Signal> {
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).with_context(|| format!("unknown signal {s:?}"));
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<Signal>()
        .map_err(|_| anyhow::anyhow!("unknown signal {s:?}"))
}

/// `kill [--all] ID [SIGNAL]`.
pub fn kill(g: &Global, id: &str, signal: &str, all: bool) -> anyhow::Result<()> {
    let sig = parse_signal(signal)?;
    let _lock = state::Lock::exclusive(&g.root, id)?;
    let record = Record::load(&g.root, id)?;
    if record.status(&g.root) == Status::Stopped {
        bail!("container not running");
    }
    if all {
        if let Some((parent, name)) = &record.cgroup {
            let host = lab03::detect()?;
            for pid in lab03::group_pids(&host, parent, name)? {
                let _ = send(Pid::from_raw(pid), sig);
            }
            return Ok(());
        }
    }
    send(Pid::from_raw(record.pid), sig).with_context(|| format!("kill({}, {sig})", record.pid))
}

/// `delete [--force] ID`: a stopped or created container, or with
/// `--force` a running one, is taken down: its processes killed, its
/// cgroup removed, `poststop` run, its state directory removed.
pub fn delete(g: &Global, log: &Logger, id: &str, force: bool) -> anyhow::Result<()> {
    let dir = state::dir(&g.root, id)?;
    let _lock = match state::Lock::exclusive(&g.root, id) {
        Ok(l) => l,
        // Gone already (another delete was first): as runc, --force
        // does not mind.
        Err(_) if force && !dir.exists() => return Ok(()),
        Err(e) => return Err(e),
    };
    let record = match Record::load(&g.root, id) {
        Ok(r) => r,
        Err(e) => {
            // A create that died half-way may leave a directory without
            // state.json; --force clears it, as runc does.
            if force {
                let _ = fs::remove_dir_all(&dir);
                return Ok(());
            }
            return Err(e);
        }
    };
    let status = record.status(&g.root);
    if matches!(status, Status::Running | Status::Paused) && !force {
        bail!(
            "cannot delete container {id} that is not stopped: {}",
            status.name()
        );
    }
    let host = lab03::detect()?;
    if let Some((parent, name)) = &record.cgroup {
        if status == Status::Paused {
            let _ = lab03::freeze(&host, parent, name, false);
        }
    }
    if status != Status::Stopped {
        let _ = send(Pid::from_raw(record.pid), Signal::SIGKILL);
        let deadline = Instant::now() + Duration::from_secs(5);
        while state::alive(record.pid, record.start_time) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    if let Some((parent, name)) = &record.cgroup {
        lab03::assemble::remove_by_name(&host, parent, name)
            .with_context(|| format!("removing cgroup {parent}/{name}"))?;
    }
    let state = serde_json::to_vec(&record.oci_state(Status::Stopped))?;
    if let Err(e) = hooks::run(&record.config, Point::Poststop, &state) {
        log.warn(&format!("{e:#}"));
    }
    fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    log.info(&format!("deleted container {id}"));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_by_name_and_number() {
        for s in ["SIGKILL", "KILL", "kill", "9"] {
            assert_eq!(parse_signal(s).unwrap(), Signal::SIGKILL, "{s}");
        }
        assert_eq!(parse_signal("15").unwrap(), Signal::SIGTERM);
        assert!(parse_signal("SIGBOGUS").is_err());
        assert!(parse_signal("99").is_err());
    }
}
