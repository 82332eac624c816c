//! Signals, `stop` and `pause`: telling a running container's processes
//! what to do.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::config::config_of;
use super::pause::freeze;
use crate::engine::Engine;
use crate::state::{Record, Status};

/// Parse a signal as docker does: `KILL`, `SIGKILL`, or `9`.
pub fn parse_signal(s: &str) -> Result<Signal> {
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| anyhow!("Invalid signal: {s}"));
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<Signal>()
        .map_err(|_| anyhow!("Invalid signal: {s}"))
}

/// Send `signal` to a running container's init process.
pub fn signal(engine: &Engine, record: &Record, sig: Signal) -> Result<()> {
    let record = engine.containers.reconcile(record.clone())?;
    if record.state.status != Status::Running && record.state.status != Status::Paused {
        bail!("Container {} is not running", record.id);
    }
    kill(Pid::from_raw(record.state.pid), sig)
        .with_context(|| format!("sending {sig} to container {}", &record.id[..12]))?;
    crate::events::container(
        engine,
        &record,
        "kill",
        &[("signal", (sig as i32).to_string())],
    );
    if record.state.status == Status::Paused && sig == Signal::SIGKILL {
        // Let the frozen processes die.
        freeze(engine, &record, false)?;
    }
    Ok(())
}

/// `stop`: the stop signal, up to `timeout` for the container to exit, then
/// SIGKILL. A stopped container is never restarted by its policy.
pub fn stop(
    engine: &Engine,
    record: &Record,
    timeout: Option<i64>,
    sig: Option<Signal>,
) -> Result<()> {
    let lock = engine.containers.lock()?;
    let mut r = engine.containers.load(&record.id)?;
    r.state.manually_stopped = true;
    if r.state.status == Status::Restarting {
        r.state.status = Status::Exited;
    }
    engine.containers.save(&lock, &r)?;
    drop(lock);
    let r = engine.containers.reconcile(r)?;
    if r.state.status == Status::Paused {
        // A frozen task cannot act on a signal (on v1 not even SIGKILL):
        // thaw first, as docker does.
        freeze(engine, &r, false)?;
    } else if r.state.status != Status::Running {
        return Ok(());
    }
    let config = config_of(&r)?;
    let timeout = config.stop_wait(timeout);
    let sig = match sig {
        Some(s) => s,
        None if !config.stop_signal.is_empty() => parse_signal(&config.stop_signal)?,
        None => Signal::SIGTERM,
    };
    // dockerd's events of a stop: `kill` (the signal), `die` (the monitor
    // writes it), `kill` again if it came to SIGKILL, then `stop`.
    let killed = |s: Signal| {
        crate::events::container(engine, &r, "kill", &[("signal", (s as i32).to_string())]);
    };
    if kill(Pid::from_raw(r.state.pid), sig).is_ok() {
        killed(sig);
    }
    if !wait_until_exited(engine, &r.id, timeout)? {
        if kill(Pid::from_raw(r.state.pid), Signal::SIGKILL).is_ok() {
            killed(Signal::SIGKILL);
        }
        if !wait_until_exited(engine, &r.id, Duration::from_secs(30))? {
            bail!("container {} did not stop after SIGKILL", &r.id[..12]);
        }
    }
    crate::events::container(engine, &r, "stop", &[]);
    Ok(())
}

/// Poll the record until the monitor has recorded an exit.
pub fn wait_until_exited(engine: &Engine, id: &str, timeout: Duration) -> Result<bool> {
    let deadline = Instant::now() + timeout;
    loop {
        let r = engine.containers.reconcile(engine.containers.load(id)?)?;
        if matches!(
            r.state.status,
            Status::Exited | Status::Dead | Status::Created
        ) {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_parse_like_dockers() {
        assert_eq!(parse_signal("KILL").unwrap(), Signal::SIGKILL);
        assert_eq!(parse_signal("sigterm").unwrap(), Signal::SIGTERM);
        assert_eq!(parse_signal("9").unwrap(), Signal::SIGKILL);
        assert!(parse_signal("NOPE").is_err());
    }
}
