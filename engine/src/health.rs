//! Health checks: the monitor runs the image's HEALTHCHECK (or
//! `--health-cmd`) inside the container every interval, and records the
//! result as docker does in `State.Health`: a status (`starting`,
//! `healthy`, `unhealthy`), the failing streak, and the last five results
//! with their output. `ps` shows it as `(health: starting)`, `(healthy)` or
//! `(unhealthy)`.
//!
//! Each check is `dockyard exec` run as a child process: the same join of
//! the container's namespaces, cgroup and security layer as a person's
//! exec. (The checker is a thread, and a threaded process must not fork and
//! then run Rust code, which lab 02's join does; spawning a whole new
//! program is safe.)
//!
//! Where the thread lives: in the foreground (`run` without `-d`) the CLI is
//! the monitor, and the checker is one of its threads. A detached monitor
//! becomes the small `dockyard-monitor` program once the container runs,
//! which knows nothing of health checks (conmon leaves them to podman too),
//! so there the checker runs in a helper process, forked from the monitor
//! before that exec: only containers with a HEALTHCHECK pay for it. The
//! helper stops when the monitor closes its end of a pipe, which it does
//! when the container exits.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::state::{self, now_rfc3339, Health, Probe, Status};

/// A health check, in docker's terms (durations in nanoseconds, as the
/// image config stores them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// `["CMD-SHELL", "cmd"]`, `["CMD", "prog", "arg"...]` or `["NONE"]`.
    pub test: Vec<String>,
    pub interval: u64,
    pub timeout: u64,
    pub retries: u32,
    pub start_period: u64,
}

impl Check {
    /// Docker's defaults for what is not given: 30s, 30s, 3 retries, 0s.
    pub fn new(test: Vec<String>) -> Check {
        Check {
            test,
            interval: 30_000_000_000,
            timeout: 30_000_000_000,
            retries: 3,
            start_period: 0,
        }
    }

    /// The command to run inside the container.
    fn argv(&self) -> Result<Vec<String>> {
        match self.test.split_first() {
            Some((kind, rest)) if kind == "CMD-SHELL" => {
                Ok(vec!["/bin/sh".into(), "-c".into(), rest.join(" ")])
            }
            Some((kind, rest)) if kind == "CMD" && !rest.is_empty() => Ok(rest.to_vec()),
            _ => bail!("health check {:?} has no command", self.test),
        }
    }

    /// dockerd's floor for the durations (`containertypes.MinimumDuration`,
    /// 1ms): each is 0, the default, or at least that. With a 1ns interval
    /// the checker would exec into the container in a busy loop.
    pub fn validate(&self) -> Result<()> {
        const MINIMUM_NS: u64 = 1_000_000;
        for (ns, what) in [
            (self.interval, "Interval"),
            (self.timeout, "Timeout"),
            (self.start_period, "StartPeriod"),
        ] {
            if ns != 0 && ns < MINIMUM_NS {
                bail!("{what} in Healthcheck cannot be less than 1ms");
            }
        }
        Ok(())
    }

    /// From an image config's `Healthcheck` object, as docker writes it.
    pub fn from_image(v: &serde_json::Value) -> Option<Check> {
        let test: Vec<String> = v
            .get("Test")?
            .as_array()?
            .iter()
            .filter_map(|t| t.as_str().map(str::to_string))
            .collect();
        if test.first().is_none_or(|t| t == "NONE") {
            return None;
        }
        let mut c = Check::new(test);
        let ns = |k: &str| {
            v.get(k)
                .and_then(serde_json::Value::as_u64)
                .filter(|n| *n > 0)
        };
        if let Some(n) = ns("Interval") {
            c.interval = n;
        }
        if let Some(n) = ns("Timeout") {
            c.timeout = n;
        }
        if let Some(n) = ns("StartPeriod") {
            c.start_period = n;
        }
        if let Some(n) = v
            .get("Retries")
            .and_then(serde_json::Value::as_u64)
            .filter(|n| *n > 0)
        {
            c.retries = n as u32;
        }
        Some(c)
    }
}

/// Docker's duration syntax for the `--health-*` flags, Go's
/// `time.ParseDuration`: one or more decimal numbers, each with a unit
/// (`ns`, `us` or `µs`, `ms`, `s`, `m`, `h`): `30s`, `1m30s`, `1.5s`,
/// `500us`, `1ns`. Whether the result is long enough is [`Check::validate`]'s
/// question, as it is dockerd's, not the parser's.
pub fn parse_duration(s: &str) -> Result<u64> {
    let bad = || anyhow!("invalid duration {s:?} (use e.g. 30s, 1m30s, 500ms)");
    if s.starts_with('-') {
        bail!("invalid duration {s:?}: it cannot be negative");
    }
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    if rest.is_empty() {
        return Err(bad());
    }
    if rest == "0" {
        return Ok(0);
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| {
                anyhow!("invalid duration {s:?}: missing unit (use e.g. 30s, 1m30s, 500ms)")
            })?;
        let number: f64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total += number * scale;
    }
    if total > u64::MAX as f64 {
        return Err(bad());
    }
    Ok(total.round() as u64)
}

/// The checker thread of a running container. Stopped and joined on drop,
/// so the monitor is single-threaded again before it restarts a container.
pub struct Checker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Checker {
    pub fn start(
        store: state::Records,
        root: PathBuf,
        id: String,
        check: Check,
    ) -> Result<Checker> {
        let argv = check.argv()?;
        starting(&store, &id)?;
        Ok(Checker::spawn(store, root, id, check, argv))
    }

    /// The thread, once the status says "starting".
    fn spawn(
        store: state::Records,
        root: PathBuf,
        id: String,
        check: Check,
        argv: Vec<String>,
    ) -> Checker {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            // Signals meant for the monitor (SIGCHLD above all) must go to
            // its main thread, which waits for them; never to this one.
            let _ = nix::sys::signal::SigSet::all().thread_block();
            let started = Instant::now();
            // Ourselves, through /proc: we may run from a sealed in-memory
            // copy (see lab 02's security module), which has no path.
            let exe = PathBuf::from("/proc/self/exe");
            while sleep(&flag, Duration::from_nanos(check.interval)) {
                let start = now_rfc3339();
                let (code, output) = run_once(
                    &exe,
                    &root,
                    &id,
                    &argv,
                    Duration::from_nanos(check.timeout),
                    &flag,
                );
                if flag.load(Ordering::Relaxed) {
                    break;
                }
                // ANCHOR: health_status
                let in_start_period = started.elapsed() < Duration::from_nanos(check.start_period);
                let mut changed = None;
                let _ = set(&store, &id, |h| {
                    let was = h.status.clone();
                    h.log.push(Probe {
                        start,
                        end: now_rfc3339(),
                        exit_code: code,
                        output,
                    });
                    if h.log.len() > 5 {
                        h.log.remove(0);
                    }
                    if code == 0 {
                        h.failing_streak = 0;
                        h.status = "healthy".into();
                    } else if !(in_start_period && h.status == "starting") {
                        h.failing_streak += 1;
                        if h.failing_streak >= check.retries {
                            h.status = "unhealthy".into();
                        }
                    }
                    if h.status != was {
                        changed = Some(h.status.clone());
                    }
                });
                // ANCHOR_END: health_status
                // dockerd's event, on a change only: "health_status: healthy".
                if let (Some(status), Ok(r)) = (changed, store.load(&id)) {
                    let msg = crate::events::Message::new(
                        "container",
                        &format!("health_status: {status}"),
                        crate::events::container_actor(&r, &[]),
                    );
                    let _ = crate::events::append(&root, &msg);
                }
            }
        });
        Checker {
            stop,
            thread: Some(thread),
        }
    }
}

/// A running container's checker: a thread of this process, or a helper
/// process (see the module documentation).
pub enum Watch {
    /// Held for its `Drop`, which stops and joins the thread.
    #[allow(dead_code)]
    Thread(Checker),
    Helper {
        pid: Pid,
        /// Our end of the pipe; the helper stops when it closes.
        stop: Option<OwnedFd>,
    },
}

impl Watch {
    /// Start the checks of container `id` in a helper process. Call it
    /// while this process is single-threaded (it forks, and the child runs
    /// Rust code).
    pub fn helper(store: state::Records, root: PathBuf, id: String, check: Check) -> Result<Watch> {
        let argv = check.argv()?;
        starting(&store, &id)?;
        let (stop_r, stop_w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("pipe2 for the checker")?;
        // SAFETY: the monitor is single-threaded here (see above).
        match unsafe { nix::unistd::fork() }.context("fork for the health checker")? {
            nix::unistd::ForkResult::Child => {
                // Nothing of the monitor's: above all not the container's
                // stdin or an attached client's socket, which would then
                // never see their end.
                let _ = lab02_namespaces::security::close_fds(&[stop_r.as_raw_fd()]);
                let checker = Checker::spawn(store, root, id, check, argv);
                // Wait for the monitor to close its end (read returns 0).
                let mut byte = [0u8; 1];
                while matches!(
                    nix::unistd::read(&stop_r, &mut byte),
                    Ok(1) | Err(nix::errno::Errno::EINTR)
                ) {}
                drop(checker);
                // SAFETY: leaving the forked copy without running the
                // monitor's exit-time code.
                unsafe { libc::_exit(0) }
            }
            nix::unistd::ForkResult::Parent { child } => Ok(Watch::Helper {
                pid: child,
                stop: Some(stop_w),
            }),
        }
    }
}

impl Watch {
    /// The helper's PID and our end of its pipe, to hand to the small
    /// monitor program (None for a thread, which an exec would end).
    pub fn helper_fds(&self) -> Option<(Pid, std::os::fd::BorrowedFd<'_>)> {
        match self {
            Watch::Helper {
                pid,
                stop: Some(fd),
            } => Some((*pid, std::os::fd::AsFd::as_fd(fd))),
            _ => None,
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Watch::Helper { pid, stop } = self {
            // Close our end, then wait: a check under way is killed at
            // once, so this is quick.
            drop(stop.take());
            let _ = nix::sys::wait::waitpid(*pid, None);
        }
    }
}

impl Drop for Checker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Sleep `d` in small steps; false once asked to stop.
fn sleep(stop: &AtomicBool, d: Duration) -> bool {
    let until = Instant::now() + d;
    while Instant::now() < until {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20).min(until - Instant::now()));
    }
    !stop.load(Ordering::Relaxed)
}

/// One check: `dockyard exec`, killed at the timeout (exit -1, as docker).
fn run_once(
    exe: &PathBuf,
    root: &PathBuf,
    id: &str,
    argv: &[String],
    timeout: Duration,
    stop: &AtomicBool,
) -> (i32, String) {
    let child = Command::new(exe)
        .arg("--root")
        .arg(root)
        .arg("exec")
        .arg(id)
        .args(argv)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return (-1, format!("starting the health check: {e}")),
    };
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline && !stop.load(Ordering::Relaxed) => {
                std::thread::sleep(Duration::from_millis(10))
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return (
                    -1,
                    format!("Health check exceeded timeout ({}s)", timeout.as_secs_f64()),
                );
            }
        }
    }
    match child.wait_with_output() {
        Ok(out) => {
            let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&out.stderr));
            text.truncate(4096);
            (out.status.code().unwrap_or(-1), text)
        }
        Err(e) => (-1, e.to_string()),
    }
}

/// A new run's health: "starting", no results yet.
fn starting(store: &state::Records, id: &str) -> Result<()> {
    set(store, id, |h| {
        *h = Health {
            status: "starting".into(),
            ..Default::default()
        }
    })
}

/// Update the container's Health under the store's lock.
fn set(store: &state::Records, id: &str, f: impl FnOnce(&mut Health)) -> Result<()> {
    let lock = store.lock()?;
    let mut r = store.load(id)?;
    if !matches!(r.state.status, Status::Running | Status::Paused) {
        return Ok(());
    }
    let mut h = r.state.health.clone().unwrap_or_default();
    f(&mut h);
    r.state.health = Some(h);
    store.save(&lock, &r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_image_checks() {
        assert_eq!(parse_duration("30s").unwrap(), 30_000_000_000);
        assert_eq!(parse_duration("1m30s").unwrap(), 90_000_000_000);
        assert_eq!(parse_duration("250ms").unwrap(), 250_000_000);
        assert!(parse_duration("30").is_err());
        // Go's units, down to the nanosecond: validate() judges, not the parser.
        assert_eq!(parse_duration("1ns").unwrap(), 1);
        assert_eq!(parse_duration("500us").unwrap(), 500_000);
        assert_eq!(parse_duration("1.5s").unwrap(), 1_500_000_000);
        assert_eq!(parse_duration("1h2m").unwrap(), 3_720_000_000_000);
        assert_eq!(parse_duration("0").unwrap(), 0);
        for bad in ["", "s", "1x", "-1s", "1.2.3s", "ms5"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        let mut c = Check::new(vec!["CMD".into(), "true".into()]);
        c.interval = 1;
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "Interval in Healthcheck cannot be less than 1ms"
        );
        c.interval = 1_000_000;
        c.start_period = 999_999;
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("StartPeriod"));
        c.start_period = 0;
        assert!(c.validate().is_ok());
        let v = serde_json::json!({"Test": ["CMD-SHELL", "test -e /ok"], "Interval": 1_000_000_000u64, "Retries": 2});
        let c = Check::from_image(&v).unwrap();
        assert_eq!(c.argv().unwrap(), ["/bin/sh", "-c", "test -e /ok"]);
        assert_eq!(
            (c.interval, c.retries, c.timeout),
            (1_000_000_000, 2, 30_000_000_000)
        );
        assert!(Check::from_image(&serde_json::json!({"Test": ["NONE"]})).is_none());
    }
}
