//! The monitor's side of `docker attach`: a unix socket, and the framing of
//! what goes through it.
//!
//! Each monitor listens on `attach.sock` in the container's directory, mode
//! 0600: only root (who may do anything to the container anyway) can
//! connect. Any number of clients may be attached at once, as with docker:
//! each gets every byte the container prints from the moment it connects,
//! and what each types goes to the container's stdin when it was started
//! with `-i`. (The client's side is `dockyard attach`, in the engine.)
//!
//! The stream is framed, in both directions, like docker's multiplexed
//! attach stream: one byte of kind, four of length (big-endian), the bytes.
//!
//! ```text
//! monitor -> client   1 stdout | 2 stderr          (data)
//!                     4 exit                       (the exit code: i32)
//!                     5 mark                       (a time: u64 ns since 1970)
//! client -> monitor   0 stdin (data) | 3 resize    (rows, cols: u16 each)
//!                     5 mark                       (empty)
//! ```
//!
//! The mark is how a client joins the log and the live stream with nothing
//! lost and nothing twice (`attach?logs=1&stream=1`). The monitor answers a
//! mark with the time it read it. It is one thread, and it logs each piece
//! of output before it sends it, so every log entry up to that time was
//! written before the answer, and every frame after the answer is logged
//! later. The client drops what came before the answer, reads the log up to
//! the time, then relays the stream.

use std::io::{Read, Result};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::Duration;

use crate::context;

/// The socket's name in the container's directory.
pub const SOCKET: &str = "attach.sock";

/// Frame kinds.
pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
pub const RESIZE: u8 = 3;
pub const EXIT: u8 = 4;
pub const MARK: u8 = 5;

/// One frame: kind, length, data.
pub fn frame(kind: u8, data: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(5 + data.len());
    f.push(kind);
    f.extend_from_slice(&(data.len() as u32).to_be_bytes());
    f.extend_from_slice(data);
    f
}

/// Take every complete frame off the front of `buf`.
pub fn frames(buf: &mut Vec<u8>) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    loop {
        if buf.len() < 5 {
            break;
        }
        let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
        if buf.len() < 5 + len {
            break;
        }
        let data = buf[5..5 + len].to_vec();
        out.push((buf[0], data));
        buf.drain(..5 + len);
    }
    out
}

/// The container's directory opened as a path, and the socket's address
/// through it: `/proc/self/fd/N/attach.sock`. A unix socket's path may hold
/// only 107 bytes, and a data root plus a 64-hex ID comes close; the
/// descriptor's short name always fits.
pub fn address(dir: &Path) -> Result<(OwnedFd, String)> {
    let fd = nix::fcntl::open(
        dir,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| context(format_args!("opening {}", dir.display()), e))?;
    let path = format!("/proc/self/fd/{}/{SOCKET}", fd.as_raw_fd());
    Ok((fd, path))
}

/// The monitor's side: listen on `DIR/attach.sock`, mode 0600.
pub fn listen(dir: &Path) -> Result<UnixListener> {
    let (_dir, path) = address(dir)?;
    // A socket left by an earlier run (or a killed monitor) is in the way.
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(context(format_args!("removing the old {SOCKET}"), e)),
    }
    // Created 0600 from the start (umask), not chmod-ed after: no moment
    // where another user could connect. The monitor is single-threaded here.
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let listener = UnixListener::bind(&path);
    nix::sys::stat::umask(old);
    let listener = listener.map_err(|e| {
        context(
            format_args!("listening on {}", dir.join(SOCKET).display()),
            e,
        )
    })?;
    listener
        .set_nonblocking(true)
        .map_err(|e| context("making the attach socket non-blocking", e))?;
    Ok(listener)
}

/// What the monitor keeps for one attached client.
pub struct Client {
    pub stream: UnixStream,
    /// Bytes read that do not make a whole frame yet.
    pub partial: Vec<u8>,
}

impl Client {
    /// A new connection: blocking writes with a time limit (a client that
    /// stops reading is dropped rather than stalling the container),
    /// non-blocking reads.
    pub fn accept(listener: &UnixListener) -> Option<Client> {
        let (stream, _) = listener.accept().ok()?;
        Client::new(stream)
    }

    /// A connection accepted earlier (by the process this monitor was
    /// exec'd from), with the same time limit.
    pub fn new(stream: UnixStream) -> Option<Client> {
        stream
            .set_write_timeout(Some(Duration::from_secs(2)))
            .ok()?;
        Some(Client {
            stream,
            partial: Vec::new(),
        })
    }

    /// Read the frames that arrived, and whether the client is still there
    /// (false at EOF or on error: it left, maybe just after a last frame).
    pub fn read(&mut self) -> (Vec<(u8, Vec<u8>)>, bool) {
        let mut buf = [0u8; 16 * 1024];
        let _ = self.stream.set_nonblocking(true);
        let open = loop {
            match self.stream.read(&mut buf) {
                Ok(0) => break false,
                Ok(n) => self.partial.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break true,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break false,
            }
        };
        let _ = self.stream.set_nonblocking(false);
        (frames(&mut self.partial), open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_wait_for_whole_ones() {
        let mut buf = frame(STDOUT, b"hello");
        buf.extend(frame(STDERR, b""));
        let tail = frame(STDIN, b"xyz");
        buf.extend_from_slice(&tail[..4]);
        assert_eq!(
            frames(&mut buf),
            vec![(STDOUT, b"hello".to_vec()), (STDERR, Vec::new())]
        );
        buf.extend_from_slice(&tail[4..]);
        assert_eq!(frames(&mut buf), vec![(STDIN, b"xyz".to_vec())]);
        assert!(buf.is_empty());
    }
}
