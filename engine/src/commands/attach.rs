//! `docker attach`: a person joins a running container's stdio.
//!
//! The container's stdio belongs to its monitor (see `dockyard::container::monitor`, and the
//! `dockyard-monitor` crate's `pump`), so attaching means talking to the
//! monitor, through a unix socket in the container's directory,
//! `attach.sock`. The socket's server side and the framing of the stream are
//! the monitor crate's (`dockyard_monitor::attach`); this is the client.
//!
//! The client handles the rest, as docker's does: with a terminal, raw mode
//! and the detach keys (Ctrl-P Ctrl-Q by default: leave, the container goes
//! on); without one, Ctrl-C and the other signals go on to the container
//! (`--sig-proxy`). When the container exits the monitor closes the
//! connections, and the client exits with the container's code.

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use dockyard::container::{self, config_of, connect};
use dockyard::state::{Record, Status};
use dockyard::Engine;

use dockyard_monitor::attach::{frame, frames};
use dockyard_monitor::attach::{EXIT, RESIZE, STDERR, STDIN};

/// `dockyard attach`'s flags.
pub struct Options<'a> {
    pub no_stdin: bool,
    pub sig_proxy: bool,
    pub detach_keys: &'a str,
}

/// Docker's `--detach-keys` format: `ctrl-p,ctrl-q`, `a`, `ctrl-@`...
pub fn parse_detach_keys(s: &str) -> Result<Vec<u8>> {
    let mut keys = Vec::new();
    for key in s.split(',') {
        let bytes = key.as_bytes();
        let byte = match key.strip_prefix("ctrl-") {
            Some(c) if c.len() == 1 => {
                let c = c.as_bytes()[0].to_ascii_lowercase();
                match c {
                    b'a'..=b'z' => c - b'a' + 1,
                    b'@' => 0,
                    b'[' => 27,
                    b'\\' => 28,
                    b']' => 29,
                    b'^' => 30,
                    b'_' => 31,
                    _ => bail!("Unknown character: '{key}'"),
                }
            }
            None if bytes.len() == 1 => bytes[0],
            _ => bail!("Unknown character: '{key}'"),
        };
        keys.push(byte);
    }
    if keys.is_empty() {
        bail!("invalid detach keys: {s:?}");
    }
    Ok(keys)
}

/// `dockyard attach`: connect to the monitor of `record` and copy until the
/// container exits (its exit code) or the detach keys are typed (1, with
/// docker's "read escape sequence").
pub fn attach(engine: &Engine, record: &Record, opts: &Options) -> Result<i32> {
    let record = engine.containers.reconcile(record.clone())?;
    if record.state.status == Status::Paused {
        bail!("You cannot attach to a paused container, unpause it first");
    }
    if record.state.status != Status::Running {
        bail!("You cannot attach to a stopped container, start it first");
    }
    let sock = connect(engine, &record.id)?;
    session(engine, &record, sock, opts, false)
}

/// The client's side of an attached session, on a connected socket. Also
/// what `run -it` and `start -ai` do, after starting the container under a
/// detached monitor: there, detaching is silent and exits 0, as in docker.
pub fn session(
    engine: &Engine,
    record: &Record,
    mut sock: UnixStream,
    opts: &Options,
    from_run: bool,
) -> Result<i32> {
    let config = config_of(record)?;
    let keys = parse_detach_keys(opts.detach_keys)?;
    let stdin_is_tty = nix::unistd::isatty(std::io::stdin()).unwrap_or(false);
    let send_stdin = !opts.no_stdin && config.open_stdin;
    if config.tty && send_stdin && !stdin_is_tty {
        bail!("the input device is not a TTY");
    }

    // Signals: SIGWINCH for the window size with a terminal; without one,
    // with --sig-proxy, the signals a person sends to "the program".
    let mut mask = SigSet::empty();
    if config.tty {
        mask.add(Signal::SIGWINCH);
    } else if opts.sig_proxy {
        for s in dockyard_monitor::pump::PROXIED_SIGNALS {
            mask.add(s);
        }
    }
    mask.thread_block().context("blocking signals")?;
    let sfd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .context("signalfd")?;
    let resize = |sock: &mut UnixStream| {
        if let Some((rows, cols)) = dockyard_monitor::pump::our_window_size() {
            let mut data = rows.to_be_bytes().to_vec();
            data.extend_from_slice(&cols.to_be_bytes());
            let _ = sock.write_all(&frame(RESIZE, &data));
        }
    };
    if config.tty {
        resize(&mut sock);
    }
    let raw = (config.tty && send_stdin).then(dockyard_monitor::pump::RawMode::enter);

    let mut stdin_open = send_stdin;
    let mut matched = 0usize; // how many detach keys in a row so far
    let mut held = Vec::new(); // those keys, sent on if the sequence breaks
    let mut incoming = Vec::new();
    let mut exit_code = None;
    let mut buf = vec![0u8; 32 * 1024];
    let stdin = std::io::stdin();
    let detached = loop {
        let mut fds = vec![
            PollFd::new(sock.as_fd(), PollFlags::POLLIN),
            PollFd::new(sfd.as_fd(), PollFlags::POLLIN),
        ];
        if stdin_open {
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e).context("poll"),
        }
        let ready: Vec<bool> = fds.iter().map(|f| f.any().unwrap_or(false)).collect();
        drop(fds);
        if ready[0] {
            match sock.read(&mut buf) {
                Ok(0) | Err(_) => break false,
                Ok(n) => {
                    incoming.extend_from_slice(&buf[..n]);
                    for (kind, data) in frames(&mut incoming) {
                        if kind == EXIT && data.len() == 4 {
                            exit_code =
                                Some(i32::from_be_bytes([data[0], data[1], data[2], data[3]]));
                            continue;
                        }
                        let _ = if kind == STDERR {
                            std::io::stderr().write_all(&data)
                        } else {
                            std::io::stdout()
                                .write_all(&data)
                                .and_then(|()| std::io::stdout().flush())
                        };
                    }
                }
            }
        }
        if ready[1] {
            while let Ok(Some(info)) = sfd.read_signal() {
                let signo = info.ssi_signo as i32;
                if signo == libc::SIGWINCH {
                    resize(&mut sock);
                } else if let Ok(sig) = Signal::try_from(signo) {
                    // --sig-proxy: as `dockyard kill -s SIG`.
                    if let Ok(now) = engine.containers.load(&record.id) {
                        let _ = container::signal(engine, &now, sig);
                    }
                }
            }
        }
        if stdin_open && ready[2] {
            let n = match nix::unistd::read(&stdin, &mut buf) {
                Ok(0) | Err(_) => {
                    // Our input ended; the container's stays open for others.
                    stdin_open = false;
                    continue;
                }
                Ok(n) => n,
            };
            let mut out = Vec::with_capacity(n);
            let mut detach = false;
            for &b in &buf[..n] {
                // The detach keys are looked for only with a terminal, as
                // in docker; elsewhere every byte is data.
                if config.tty && b == keys[matched] {
                    held.push(b);
                    matched += 1;
                    if matched == keys.len() {
                        detach = true;
                        break;
                    }
                    continue;
                }
                out.append(&mut held);
                matched = 0;
                if config.tty && b == keys[0] {
                    held.push(b);
                    matched = 1;
                    continue;
                }
                out.push(b);
            }
            if !out.is_empty() {
                sock.write_all(&frame(STDIN, &out))
                    .context("sending input to the monitor")?;
            }
            if detach {
                break true;
            }
        }
    };
    drop(raw);
    mask.thread_unblock().context("unblocking signals")?;
    if detached {
        if from_run {
            return Ok(0);
        }
        eprintln!("read escape sequence");
        return Ok(1);
    }
    // The monitor sends the exit code before it closes the connection, and
    // records it just after: wait for that, so that a `ps` or `inspect`
    // after us sees the exit (an error here is a --rm container, gone).
    if let Some(code) = exit_code {
        let _ = container::wait_until_exited(engine, &record.id, Duration::from_secs(10));
        return Ok(code);
    }
    // Else it died: the record says what the reconciliation found.: the container exited (or is being
    // restarted by its policy). Its code is in the record once recorded.
    container::wait_until_exited(engine, &record.id, Duration::from_secs(10))?;
    let r = engine
        .containers
        .reconcile(engine.containers.load(&record.id)?)?;
    match r.state.status {
        Status::Running | Status::Restarting | Status::Paused => Ok(0),
        _ => Ok(r.state.exit_code),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys_parse_like_dockers() {
        assert_eq!(parse_detach_keys("ctrl-p,ctrl-q").unwrap(), vec![16, 17]);
        assert_eq!(parse_detach_keys("a,ctrl-@").unwrap(), vec![b'a', 0]);
        assert!(parse_detach_keys("ctrl-1").is_err());
        assert!(parse_detach_keys("ab").is_err());
    }
}
