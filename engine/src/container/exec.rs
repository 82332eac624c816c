//! `docker exec`: another process in a running container (lab 02's join).

use std::ffi::OsString;
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use lab02_namespaces as namespaces;
use lab03_cgroups as cgroups;
use nix::fcntl::OFlag;
use nix::unistd::{pipe2, Pid};

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
    /// With `-it`: the keys that leave the command running (docker's
    /// ctrl-p,ctrl-q unless `--detach-keys` says).
    pub detach_keys: &'a [u8],
}

/// [`exec`], with dockerd's events: `exec_create` and `exec_start` (their
/// action names the command, as dockerd's do: "exec_start: ls -l"), and
/// `exec_die` with the exit code once it returns (not for `-d`), or
/// `exec_detach` when the person typed the detach keys (the command goes
/// on).
pub fn exec_logged(
    engine: &crate::Engine,
    record: &Record,
    argv: &[String],
    opts: &ExecOptions,
) -> Result<Option<i32>> {
    use crate::events::container as event;
    if !matches!(record.state.status, crate::state::Status::Running) {
        return exec(record, argv, opts); // refused there, with no event
    }
    let mut id = [0u8; 32];
    File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut id))
        .context("reading /dev/urandom")?;
    let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
    let command = format!(
        "{} {}",
        argv.first().map_or("", String::as_str),
        argv.get(1..).unwrap_or_default().join(" ")
    );
    let exec_id = [("execID", id.clone())];
    event(engine, record, &format!("exec_create: {command}"), &exec_id);
    event(engine, record, &format!("exec_start: {command}"), &exec_id);
    let ended = exec(record, argv, opts)?;
    match (ended, opts.detach) {
        (_, true) => {}
        (Some(code), false) => event(
            engine,
            record,
            "exec_die",
            &[("execID", id), ("exitCode", code.to_string())],
        ),
        (None, false) => event(engine, record, "exec_detach", &exec_id),
    }
    Ok(ended)
}

/// [`exec`]'s command: its exit code, or `None` when the person typed the
/// detach keys at `exec -it`: we leave, and it goes on, as with docker.
pub fn exec(record: &Record, argv: &[String], opts: &ExecOptions) -> Result<Option<i32>> {
    let ExecOptions {
        extra_env,
        workdir,
        interactive,
        tty,
        detach,
        user,
        detach_keys,
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
    // Without -t the command gets pipes, never our own descriptors: those
    // are the caller's terminal (TIOCSTI, a lab 02 lecture) or the file the
    // caller redirected our output to, which the command could reopen
    // through /proc/self/fd/1 to read or truncate. We copy the pipes to our
    // stdio instead, as docker's daemon and conmon do.
    let pipes = (!detach && !tty)
        .then(|| ExecPipes::new(interactive))
        .transpose()?;
    let stdio = match &pipes {
        Some(p) => p.theirs(&null),
        None => [null.as_raw_fd(); 3],
    };
    let spec = namespaces::join::JoinSpec {
        target: Pid::from_raw(record.state.pid),
        argv: argv.iter().map(OsString::from).collect(),
        env: env.iter().map(OsString::from).collect(),
        cwd: (!cwd.is_empty()).then(|| PathBuf::from(cwd)),
        security: Some(config.security()?),
        stdio: Some(stdio),
        // `-it` may be left with the detach keys, and the command then
        // outlives us, as with `-d`: the relay must not die with us (its
        // parent-death signal) nor hold our terminal.
        detach: detach || (tty && interactive),
        tty,
        tty_size: tty.then(dockyard_monitor::pump::our_window_size).flatten(),
        // The user `-u` names, or the container's USER, resolved in the
        // container's own root, where its passwd file is: through
        // /proc/PID/root of its first process; `--group-add`'s groups too,
        // as dockerd gives an exec them. Neither: dockerd runs the exec as
        // the container's process spec says, resolved once at its start
        // (moby's ContainerExecCreate takes Config.User when no user is
        // given, and execSetPlatformOpt reads passwd only for a user). So
        // root, with the groups it started with, even where the container's
        // root has since made its /etc/passwd or /etc/group unreadable.
        run_as: match user.filter(|u| !u.is_empty()).unwrap_or(&config.user) {
            "" => record.state.user.clone(),
            user => Some(super::plan::run_as(
                Path::new(&format!("/proc/{}/root", record.state.pid)),
                user,
                &config.group_add,
            )?),
        },
    };
    let host = cgroups::detect()?;
    let parent = config.cgroup_parent_or_default();
    // The joining process enters the container's cgroup first (lab 03),
    // while the host's cgroup tree is still in view, then its namespaces.
    let mut relay = namespaces::join::join(&spec, || cgroups::enter(&host, parent, &record.id))?;
    drop(null);
    if detach {
        return Ok(Some(0));
    }
    if let Some(pipes) = pipes {
        // The command holds its ends now; ours go, so that its exit is EOF.
        let streams = pipes.into_streams();
        return Ok(Some(dockyard_monitor::pump::pump(
            relay.pid(),
            streams,
            None,
            true,
        )?));
    }
    if let Some(master) = relay.take_console() {
        // One more copy of the master, kept past the pump: if the person
        // detaches, the command's terminal must stay open (with its master
        // closed the kernel hangs it up, SIGHUP) and be read on.
        let kept = master.try_clone().context("dup of the pty master")?;
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
        // The detach keys are looked for in what a person types, so only
        // with -i (as docker's CLI wraps only a terminal's input).
        let ended = match interactive {
            true => {
                let mut keys = super::DetachKeys::new(detach_keys.to_vec(), true);
                let mut filter = |typed: &[u8]| keys.feed(typed);
                dockyard_monitor::pump::pump_or_detach(relay.pid(), streams, &mut filter)
            }
            false => dockyard_monitor::pump::pump(relay.pid(), streams, None, true).map(Some),
        };
        drop(raw);
        if let Ok(None) = ended {
            super::detach::read_on_in_background(kept)?;
        }
        return Ok(ended?);
    }
    Ok(Some(
        relay
            .wait_forwarding(&namespaces::FORWARDED_SIGNALS)?
            .code(),
    ))
}

/// The pipes of a foreground `exec` without `-t`: the command's stdout and
/// stderr, and with `-i` its stdin, each with our end and the command's.
struct ExecPipes {
    stdout: (OwnedFd, OwnedFd),
    stderr: (OwnedFd, OwnedFd),
    /// (the command's read end, our write end)
    stdin: Option<(OwnedFd, OwnedFd)>,
}

impl ExecPipes {
    fn new(interactive: bool) -> Result<ExecPipes> {
        // Close-on-exec: lab 02's install_stdio dup2s the command's ends
        // onto 0, 1 and 2, which clears the flag on those copies only.
        let pipe = || pipe2(OFlag::O_CLOEXEC).context("pipe2 for exec's stdio");
        Ok(ExecPipes {
            stdout: pipe()?,
            stderr: pipe()?,
            stdin: interactive.then(pipe).transpose()?,
        })
    }

    /// The command's stdin, stdout and stderr (`/dev/null` as stdin
    /// without `-i`).
    fn theirs(&self, null: &File) -> [RawFd; 3] {
        let stdin = match &self.stdin {
            Some((read, _)) => read.as_raw_fd(),
            None => null.as_raw_fd(),
        };
        [stdin, self.stdout.1.as_raw_fd(), self.stderr.1.as_raw_fd()]
    }

    /// Our ends, for the monitor's pump; the command's ends are closed.
    fn into_streams(self) -> dockyard_monitor::pump::Streams {
        let input = self.stdin.map(|(_, write)| write);
        dockyard_monitor::pump::Streams {
            outputs: vec![(self.stdout.0, "stdout"), (self.stderr.0, "stderr")],
            own_stdin: input.is_some(),
            input,
            tty: None,
            listener: None,
            clients: Vec::new(),
        }
    }
}
