//! # Hooks: the caller's programs, run at fixed points of the life cycle
//!
//! `config.json` may name programs for the runtime to run, each given the
//! container's state JSON on its stdin (runtime-spec `config.md#posix-platform-hooks`):
//!
//! | hook              | when                                            |
//! |-------------------|-------------------------------------------------|
//! | `prestart`        | after create made the container (deprecated)    |
//! | `createRuntime`   | the same moment, after `prestart`               |
//! | `createContainer` | after `createRuntime`                           |
//! | `startContainer`  | at `start`, before the command runs             |
//! | `poststart`       | once `start` released the command               |
//! | `poststop`        | at `delete`, after the container is gone        |
//!
//! A failing hook before the command runs fails the operation (and
//! `create` takes the container down again); `poststart` and `poststop`
//! failures are only logged, as the specification says.
//!
//! `createContainer` and `startContainer` run in the container's mount
//! namespace (they see its root, as `nsenter --mount --target PID HOOK`
//! would), but their path resolves in the runtime's: the program is opened
//! first, then a child enters the namespaces (lab 02's `in_namespaces_of`)
//! and executes it through `/proc/self/fd/N`.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use oci_spec::runtime::{Hook, Hooks};

/// The hook points, by their config.json names.
#[derive(Debug, Clone, Copy)]
pub enum Point {
    Prestart,
    CreateRuntime,
    CreateContainer,
    StartContainer,
    Poststart,
    Poststop,
}

/// The hooks of `point` in `config` (the `hooks` object of config.json).
pub fn of(config: &serde_json::Value, point: Point) -> anyhow::Result<Vec<Hook>> {
    let hooks: Option<Hooks> = serde_json::from_value(config["hooks"].clone()).ok();
    let Some(h) = hooks else {
        return Ok(Vec::new());
    };
    #[allow(deprecated)]
    let list = match point {
        Point::Prestart => h.prestart().clone(),
        Point::CreateRuntime => h.create_runtime().clone(),
        Point::CreateContainer => h.create_container().clone(),
        Point::StartContainer => h.start_container().clone(),
        Point::Poststart => h.poststart().clone(),
        Point::Poststop => h.poststop().clone(),
    };
    Ok(list.unwrap_or_default())
}

/// Run each hook of `point` in order, the state JSON on its stdin.
pub fn run(config: &serde_json::Value, point: Point, state: &[u8]) -> anyhow::Result<()> {
    for hook in of(config, point)? {
        run_one(&hook, state, Exec::Path)
            .with_context(|| format!("{point:?} hook {}", hook.path().display()))?;
    }
    Ok(())
}

/// Run each hook of `point` in the mount namespace of `pid`.
pub fn run_in_container(
    config: &serde_json::Value,
    point: Point,
    state: &[u8],
    pid: nix::unistd::Pid,
) -> anyhow::Result<()> {
    for hook in of(config, point)? {
        let what = || format!("{point:?} hook {}", hook.path().display());
        // Opened here, where its path means what the config says; kept
        // open across exec so that a script's interpreter can read it too.
        let file = std::fs::File::open(hook.path()).with_context(what)?;
        let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
        nix::fcntl::fcntl(
            &file,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
        )
        .with_context(what)?;

        // The PID namespace too: the hook (a child of the one that enters)
        // is then born in it, and the container's /proc knows its
        // /proc/self.
        let code = lab02_namespaces::setns::in_namespaces_of(pid, &["pid", "mnt"], || {
            run_one(&hook, state, Exec::Fd(fd))
        })
        .with_context(what)?;
        if code != 0 {
            bail!("{} failed (see above)", what());
        }
    }
    Ok(())
}

/// How the hook's program is found: by its path, or through a descriptor
/// opened before a namespace change (`fexecve(3)`).
enum Exec {
    Path,
    Fd(std::os::fd::RawFd),
}

fn run_one(hook: &Hook, state: &[u8], exec: Exec) -> anyhow::Result<()> {
    use std::os::unix::process::CommandExt;
    let args = hook.args().clone().unwrap_or_default();
    let mut cmd = Command::new(hook.path());
    if let Some(arg0) = args.first() {
        cmd.arg0(arg0);
    }
    cmd.args(args.iter().skip(1));
    cmd.env_clear();
    for kv in hook.env().iter().flatten() {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    if let Exec::Fd(fd) = exec {
        let cstr = |s: &str| std::ffi::CString::new(s).context("a NUL byte in a hook");
        let argv: Vec<std::ffi::CString> =
            args.iter().map(|a| cstr(a)).collect::<Result<_, _>>()?;
        let envp: Vec<std::ffi::CString> = hook
            .env()
            .iter()
            .flatten()
            .map(|e| cstr(e))
            .collect::<Result<_, _>>()?;
        // SAFETY: runs after fork, before exec, in a copy of this
        // single-threaded process (so allocating is safe); fexecve returns
        // only on failure.
        unsafe {
            cmd.pre_exec(move || {
                let mut a: Vec<*const libc::c_char> = argv.iter().map(|c| c.as_ptr()).collect();
                a.push(std::ptr::null());
                let mut e: Vec<*const libc::c_char> = envp.iter().map(|c| c.as_ptr()).collect();
                e.push(std::ptr::null());
                libc::fexecve(fd, a.as_ptr(), e.as_ptr());
                Err(std::io::Error::last_os_error())
            });
        }
    }
    // Its output goes to ours (the log, or the caller's stderr), never to
    // the container's stdout.
    cmd.stdin(Stdio::piped()).stdout(Stdio::null());
    let mut child = cmd.spawn().context("starting it")?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that exits without reading its stdin gets EPIPE here: fine.
        let _ = stdin.write_all(state);
    }
    let deadline = hook
        .timeout()
        .filter(|&t| t > 0)
        .map(|t| Instant::now() + Duration::from_secs(t as u64));
    loop {
        if let Some(status) = child.try_wait()? {
            if !status.success() {
                bail!("exited with {status}");
            }
            return Ok(());
        }
        if deadline.is_some_and(|d| Instant::now() > d) {
            let _ = child.kill();
            let _ = child.wait();
            bail!("timed out after {}s", hook.timeout().unwrap_or_default());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}
