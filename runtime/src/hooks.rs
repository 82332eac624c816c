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
//! failures are only logged, as the specification says. Every hook runs in
//! the runtime's namespaces here: `createContainer` and `startContainer`
//! are meant to run in the container's mount namespace, which this
//! runtime does not do yet (the report says so).

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
        run_one(&hook, state)
            .with_context(|| format!("{point:?} hook {}", hook.path().display()))?;
    }
    Ok(())
}

fn run_one(hook: &Hook, state: &[u8]) -> anyhow::Result<()> {
    let args = hook.args().clone().unwrap_or_default();
    let mut cmd = Command::new(hook.path());
    if let Some(arg0) = args.first() {
        use std::os::unix::process::CommandExt;
        cmd.arg0(arg0);
    }
    cmd.args(args.iter().skip(1));
    cmd.env_clear();
    for kv in hook.env().iter().flatten() {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
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
