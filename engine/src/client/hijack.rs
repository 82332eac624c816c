//! Hijacked streams: `attach`, `run -i`/`-it` and `exec`'s output and input
//! over one connection that stops being HTTP.
//!
//! ```text
//! POST /v1.50/containers/ID/attach?stream=1&stdin=1&stdout=1&stderr=1 HTTP/1.1
//! Connection: Upgrade
//! Upgrade: tcp
//!
//! HTTP/1.1 101 UPGRADED                 <- from here on, a raw socket:
//! Content-Type: application/vnd.docker.multiplexed-stream
//! ```
//!
//! After the 101 the socket carries the container's output one way and our
//! stdin the other. With a TTY the output is the terminal's bytes, raw
//! (one stream: a terminal merges stdout and stderr); without one, each
//! piece is a frame: 8 bytes (the stream, 1 stdout or 2 stderr, three zero
//! bytes, the length big-endian), then the data. When our input ends we
//! half-close the socket (`shutdown(SHUT_WR)`), which the service passes on
//! as the container's EOF; the service closes its side when the output
//! ends. With a terminal ours is put in raw mode (every key goes to the
//! container's terminal, Ctrl-C included), and its size is sent at the
//! start and on each SIGWINCH (`POST .../resize?h=ROWS&w=COLS`), as
//! docker's CLI does.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsFd;

use anyhow::{bail, Context, Result};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use serde_json::Value;

use super::http::{self, Conn};
use super::Api;
use dockyard::container::DetachKeys;

/// Send `POST PATH` (under `/v1.50`) asking for the upgrade, with `body`
/// as JSON; the connection once the service answered 101 (an older
/// service's 200 is taken too, as docker's CLI does).
pub fn open(api: &Api, path: &str, body: Option<&Value>) -> Result<BufReader<Conn>> {
    let mut conn = http::connect(&api.host)?;
    let path = format!("/v{}{path}", crate::api::API_VERSION);
    let body = body.map(serde_json::to_vec).transpose()?;
    let upgrade = "Connection: Upgrade\r\nUpgrade: tcp\r\n";
    http::send(
        &mut conn,
        &api.host,
        "POST",
        &path,
        upgrade,
        body.as_deref(),
    )?;
    let mut r = BufReader::new(conn);
    let head = http::read_head(&mut r)?;
    if head.status != 101 && head.status != 200 {
        let body = http::read_body(&mut r, &head)?;
        return Err(super::daemon_error(head.status, &body));
    }
    Ok(r)
}

/// Our terminal's size, as the query of a resize request.
pub fn size_query() -> Option<String> {
    dockyard_monitor::pump::our_window_size().map(|(h, w)| format!("h={h}&w={w}"))
}

/// How a session copies.
pub struct Session<'a> {
    /// The stream is raw (the container has a TTY), not framed.
    pub tty: bool,
    /// Our stdin is sent (`-i`).
    pub stdin: bool,
    /// Sends our terminal's size (on SIGWINCH); only with a TTY.
    pub resize: Option<&'a dyn Fn()>,
    /// The detach keys, looked for in our input with a TTY (the service
    /// looks for them too; docker's CLI, like this, leaves without
    /// sending them).
    pub detach_keys: Option<Vec<u8>>,
}

/// Copy between our stdio and the hijacked connection until the service
/// closes it (false), or the detach keys are typed (true).
pub fn pump(mut conn: BufReader<Conn>, s: &Session) -> Result<bool> {
    let stdin = std::io::stdin();
    let on_tty = nix::unistd::isatty(&stdin).unwrap_or(false);
    let mut mask = SigSet::empty();
    if s.tty && s.resize.is_some() {
        mask.add(Signal::SIGWINCH);
    }
    mask.thread_block().context("blocking SIGWINCH")?;
    let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .context("signalfd")?;
    let raw = (s.tty && s.stdin && on_tty).then(dockyard_monitor::pump::RawMode::enter);
    let mut out = Output {
        tty: s.tty,
        incoming: Vec::new(),
    };
    let mut stdin_open = s.stdin;
    let keys = s.detach_keys.clone().filter(|k| !k.is_empty());
    let mut detach = keys.map(|k| DetachKeys::new(k, s.tty));
    let mut buf = vec![0u8; 32 * 1024];
    let result = loop {
        // Bytes already read past the 101 (or inside TLS) come first:
        // poll(2) cannot see them.
        if !conn.buffer().is_empty() || conn.get_mut().has_buffered() {
            match conn.read(&mut buf) {
                Ok(0) => break Ok(false),
                Ok(n) => out.write(&buf[..n])?,
                Err(e) => break Err(e.into()),
            }
            continue;
        }
        let mut fds = vec![
            PollFd::new(conn.get_ref().fd(), PollFlags::POLLIN),
            PollFd::new(signals.as_fd(), PollFlags::POLLIN),
        ];
        if stdin_open {
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => break Err(e).context("poll"),
        }
        let ready: Vec<bool> = fds.iter().map(|f| f.any().unwrap_or(false)).collect();
        drop(fds);
        if ready[0] {
            match conn.read(&mut buf) {
                Ok(0) => break Ok(false),
                Ok(n) => out.write(&buf[..n])?,
                // A reset after the end of the output is an end too.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break Ok(false),
                Err(e) => break Err(e.into()),
            }
        }
        if ready[1] {
            while let Ok(Some(_)) = signals.read_signal() {
                if let Some(resize) = s.resize {
                    resize();
                }
            }
        }
        if stdin_open && ready[2] {
            match nix::unistd::read(&stdin, &mut buf) {
                Ok(n) if n > 0 => {
                    let (data, hit) = match detach.as_mut() {
                        Some(d) => d.feed(&buf[..n]),
                        None => (buf[..n].to_vec(), false),
                    };
                    let c = conn.get_mut();
                    c.write_all(&data)
                        .and_then(|()| c.flush())
                        .context("sending input to the service")?;
                    if hit {
                        break Ok(true);
                    }
                }
                _ => {
                    stdin_open = false;
                    conn.get_mut().close_write();
                }
            }
        }
    };
    drop(raw);
    mask.thread_unblock().context("unblocking SIGWINCH")?;
    result
}

/// The output side: raw bytes to stdout, or frames to stdout and stderr.
struct Output {
    tty: bool,
    /// Bytes of a frame not yet whole.
    incoming: Vec<u8>,
}

impl Output {
    fn write(&mut self, data: &[u8]) -> Result<()> {
        if self.tty {
            let mut o = std::io::stdout();
            o.write_all(data)?;
            return Ok(o.flush()?);
        }
        self.incoming.extend_from_slice(data);
        while self.incoming.len() >= 8 {
            let h = &self.incoming[..8];
            let len = u32::from_be_bytes([h[4], h[5], h[6], h[7]]) as usize;
            if self.incoming.len() < 8 + len {
                break;
            }
            let frame: Vec<u8> = self.incoming.drain(..8 + len).collect();
            write_frame(frame[0], &frame[8..])?;
        }
        Ok(())
    }
}

fn write_frame(stream: u8, data: &[u8]) -> Result<()> {
    match stream {
        2 => {
            let mut e = std::io::stderr();
            e.write_all(data)?;
            e.flush()?;
        }
        0 | 1 => {
            let mut o = std::io::stdout();
            o.write_all(data)?;
            o.flush()?;
        }
        n => bail!("a frame of an unknown stream {n} in the service's output"),
    }
    Ok(())
}

/// Copy a multiplexed stream (a whole body, or one read as it comes) to
/// our stdout and stderr until it ends.
pub fn demux(r: &mut impl Read) -> Result<()> {
    let mut header = [0u8; 8];
    loop {
        match r.read_exact(&mut header) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
        let mut data = vec![0u8; len];
        r.read_exact(&mut data)?;
        write_frame(header[0], &data)?;
    }
}

/// Copy a raw stream to stdout as it comes.
pub fn copy_raw(r: &mut impl BufRead) -> Result<()> {
    let mut o = std::io::stdout();
    loop {
        let n = {
            let b = r.fill_buf()?;
            if b.is_empty() {
                return Ok(());
            }
            o.write_all(b)?;
            o.flush()?;
            b.len()
        };
        r.consume(n);
    }
}
