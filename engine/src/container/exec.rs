//! `docker exec`: another process in a running container (lab 02's join).

use std::ffi::OsString;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use lab02_namespaces as namespaces;
use lab03_cgroups as cgroups;
use nix::unistd::Pid;

use super::config::config_of;
use crate::state::Record;

/// Run a command in a running container (lab 02's `join`): it enters the
/// container's cgroup (every hierarchy lab 03 finds for it), then its
/// namespaces, and runs under the container's security layer. In the
/// foreground our stdio is the command's, and the exit code is its own.
/// `exec`'s flags.
#[derive(Clone, Copy)]
pub struct ExecOptions<'a> {
    pub extra_env: &'a [String],
    pub workdir: Option<&'a str>,
    pub interactive: bool,
    pub tty: bool,
    pub detach: bool,
    pub user: Option<&'a str>,
}

pub fn exec(record: &Record, argv: &[String], opts: &ExecOptions) -> Result<i32> {
    let ExecOptions {
        extra_env,
        workdir,
        interactive,
        tty,
        detach,
        user,
    } = *opts;
    let config = config_of(record)?;
    let mut env = config.env.clone();
    for kv in extra_env {
        let key = kv.split('=').next().unwrap_or_default();
        env.retain(|e| e.split('=').next() != Some(key));
        env.push(kv.clone());
    }
    let cwd = workdir
        .map(str::to_string)
        .unwrap_or_else(|| config.working_dir.clone());
    let null = File::open("/dev/null").context("opening /dev/null")?;
    // -t: lab 02's relay makes the pty in the container's devpts and sends
    // us the master; our stdio then only hears the relay's own errors.
    let tty = tty && !detach;
    let stdin = if interactive && !detach && !tty {
        0
    } else {
        null.as_raw_fd()
    };
    let stdio = match detach {
        true => [null.as_raw_fd(); 3],
        false => [stdin, 1, 2],
    };
    let spec = namespaces::join::JoinSpec {
        target: Pid::from_raw(record.state.pid),
        argv: argv.iter().map(OsString::from).collect(),
        env: env.iter().map(OsString::from).collect(),
        cwd: (!cwd.is_empty()).then(|| PathBuf::from(cwd)),
        security: Some(config.security()?),
        stdio: Some(stdio),
        detach,
        tty,
        tty_size: tty.then(dockyard_monitor::pump::our_window_size).flatten(),
        // The container's own root, where its passwd file is: through
        // /proc/PID/root of its first process.
        run_as: namespaces::RunAs::lookup(
            Path::new(&format!("/proc/{}/root", record.state.pid)),
            user.unwrap_or(&config.user),
        )?,
    };
    let host = cgroups::detect()?;
    let parent = config.cgroup_parent_or_default();
    // The joining process enters the container's cgroup first (lab 03),
    // while the host's cgroup tree is still in view, then its namespaces.
    let mut relay = namespaces::join::join(&spec, || cgroups::enter(&host, parent, &record.id))?;
    drop(null);
    if detach {
        return Ok(0);
    }
    if let Some(master) = relay.take_console() {
        let input = match interactive {
            true => Some(master.try_clone().context("dup of the pty master")?),
            false => None,
        };
        let raw = input.is_some().then(dockyard_monitor::pump::RawMode::enter);
        let tty = Some(master.as_raw_fd());
        let streams = dockyard_monitor::pump::Streams {
            outputs: vec![(master, "stdout")],
            own_stdin: input.is_some(),
            input,
            tty,
            listener: None,
            clients: Vec::new(),
        };
        let code = dockyard_monitor::pump::pump(relay.pid(), streams, None, true);
        drop(raw);
        return Ok(code?);
    }
    Ok(relay
        .wait_forwarding(&namespaces::FORWARDED_SIGNALS)?
        .code())
}
