//! # exec: one more process in a running container
//!
//! `runc exec` is `nsenter` with the container's rules: the new process
//! enters the container's cgroup (while the host's cgroup tree is still in
//! view), then its namespaces, and runs under the same security layer.
//! Lab 02's `join` does exactly that, with a relay process that stays
//! outside the PID namespace and reports the command's exit status. The
//! process comes from `--process FILE` (config.json's `process` object,
//! which containerd's shim and conmon write) or from the arguments.
//!
//! With `--detach` the runtime returns at once and the relay outlives it,
//! reparented to the caller's subreaper, which then reaps it and reads the
//! command's status from it: `--pid-file` names the relay.
//!
//! A `delete --force` or `kill` may come in while the process joins. Like
//! the other commands, exec holds the container's lock ([`state::Lock`]):
//! it checks the status under it, and keeps it until the command is born
//! inside the container's cgroup and PID namespace, so a `delete` that
//! waited finds the command there and takes it down with the rest (a
//! container gone first is "does not exist"). The relay is a fork of this
//! process and shares its descriptor of the lock: it lets go when it closes
//! its descriptors, just after forking the command, and the command at its
//! execve (close-on-exec). This process lets go before it waits, so a long
//! exec does not hold back `kill`. runc takes no lock across commands
//! here: its exec'd process is born in the container's cgroup
//! (`CLONE_INTO_CGROUP`, an error once the cgroup is gone), and killing the
//! container's init takes the whole PID namespace down, the exec'd process
//! with it (without a PID namespace of its own, `kill` writes `cgroup.kill`).

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::{bail, Context};
use lab02::security::{Seccomp, Security};
use lab02_namespaces as lab02;
use lab03_cgroups as lab03;
use nix::unistd::Pid;
use oci_spec::runtime::Process;

use crate::cli::{ExecArgs, Global};
use crate::logging::Logger;
use crate::state::{self, Record, Status};

pub fn exec(g: &Global, log: &Logger, a: &ExecArgs) -> anyhow::Result<i32> {
    // Taken before the status is read: see the module documentation.
    let lock = state::Lock::exclusive(&g.root, &a.id)?;
    let record = Record::load(&g.root, &a.id)?;
    if record.status(&g.root) != Status::Running {
        bail!(
            "cannot exec in a stopped or paused container: it is {}",
            record.status(&g.root).name()
        );
    }
    let process: Process = match &a.process {
        Some(path) => {
            let text =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            serde_json::from_slice(&text)
                .with_context(|| format!("{}: not an OCI process object", path.display()))?
        }
        None => from_args(&record, a)?,
    };
    if a.preserve_fds > 0 {
        bail!("--preserve-fds is not supported by this runtime");
    }
    if a.apparmor.as_deref().is_some_and(|p| !p.is_empty()) {
        log.warn("--apparmor: AppArmor is not supported by this runtime, ignored");
    }
    if a.process_label.as_deref().is_some_and(|l| !l.is_empty()) {
        bail!("--process-label: SELinux is not supported by this runtime");
    }
    let tty = process.terminal().unwrap_or(false) || a.tty;
    if tty && a.console_socket.is_none() {
        bail!("a terminal needs --console-socket");
    }
    let seccomp_file = state::dir(&g.root, &a.id)?.join("seccomp.json");
    let spec = lab02::join::JoinSpec {
        target: Pid::from_raw(record.pid),
        argv: process
            .args()
            .clone()
            .filter(|a| !a.is_empty())
            .context("exec: no command (process.args is empty)")?
            .into_iter()
            .map(OsString::from)
            .collect(),
        env: process
            .env()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(OsString::from)
            .collect(),
        cwd: Some(process.cwd().clone()),
        security: Some(security(&process, seccomp_file, a.no_new_privs)?),
        stdio: None,
        detach: a.detach,
        tty,
        tty_size: process
            .console_size()
            .map(|b| (b.height() as u16, b.width() as u16)),
        run_as: Some(lab02::RunAs {
            uid: process.user().uid(),
            gid: process.user().gid(),
            groups: process.user().additional_gids().clone().unwrap_or_default(),
        }),
    };
    let host = lab03::detect()?;
    let cgroup = record.cgroup.clone();
    let mut relay = lab02::join::join(&spec, || match &cgroup {
        Some((parent, name)) => lab03::assemble::enter(&host, parent, name),
        None => Ok(()),
    })?;
    if let Some(socket) = &a.console_socket {
        let master = relay
            .take_console()
            .context("the exec'd process sent no pty master")?;
        let stream = std::os::unix::net::UnixStream::connect(socket)
            .with_context(|| format!("connecting to {}", socket.display()))?;
        lab02::send_fd(&std::os::fd::OwnedFd::from(stream), &master)
            .context("sending the pty master")?;
    }
    if let Some(path) = &a.pid_file {
        crate::lifecycle::write_pid_file(path, relay.pid().as_raw())?;
    }
    log.info(&format!("exec in {}: pid {}", a.id, relay.pid()));
    // Our copy only: the relay holds the lock until the command is born.
    drop(lock);
    if a.detach {
        return Ok(0);
    }
    Ok(relay.wait_forwarding(&lab02::FORWARDED_SIGNALS)?.code())
}

/// `exec ID -- ARGS`: the container's own process settings, another argv.
fn from_args(record: &Record, a: &ExecArgs) -> anyhow::Result<Process> {
    if a.args.is_empty() {
        bail!("exec: give --process FILE or a command after the container ID");
    }
    let mut p: Process = serde_json::from_value(record.config["process"].clone())
        .context("the container's recorded process")?;
    p.set_args(Some(a.args.clone()));
    p.set_terminal(Some(a.tty));
    if let Some(cwd) = &a.cwd {
        p.set_cwd(cwd.clone());
    }
    let mut env = p.env().clone().unwrap_or_default();
    env.extend(a.env.iter().cloned());
    p.set_env(Some(env));
    if let Some(user) = &a.user {
        let (uid, gid) = user.split_once(':').unwrap_or((user, "0"));
        let mut u = p.user().clone();
        u.set_uid(
            uid.parse()
                .with_context(|| format!("--user {user}: uid[:gid]"))?,
        );
        u.set_gid(
            gid.parse()
                .with_context(|| format!("--user {user}: uid[:gid]"))?,
        );
        p.set_user(u);
    }
    Ok(p)
}

/// The exec'd process's security layer: its own capabilities and
/// no_new_privileges, the container's seccomp profile.
fn security(p: &Process, seccomp_file: PathBuf, no_new_privs: bool) -> anyhow::Result<Security> {
    let mut s = Security::docker_default();
    s.cap_drop = vec!["ALL".into()];
    s.cap_add = match p.capabilities().as_ref().and_then(|c| c.bounding().clone()) {
        Some(set) => serde_json::to_value(set)?
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|n| n.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default(),
        None => Vec::new(),
    };
    s.cap_sets = p
        .capabilities()
        .as_ref()
        .map(crate::bundle::cap_sets)
        .transpose()?;
    s.no_new_privileges = no_new_privs || p.no_new_privileges().unwrap_or(false);
    s.seccomp = match seccomp_file.exists() {
        true => Seccomp::Profile(seccomp_file),
        false => Seccomp::Unconfined,
    };
    Ok(s)
}
