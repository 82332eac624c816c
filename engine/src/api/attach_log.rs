//! `attach?logs=1&stream=1`: what the container printed before the attach,
//! from its log, then what it prints after, live, with nothing lost and
//! nothing twice.
//!
//! Reading the log and then relaying the monitor's stream is not enough on
//! its own. The monitor may read a line between the two: if it logs the line
//! after we read the log but before it has taken our connection, the line is
//! in neither; if it takes our connection first and we read the log after,
//! the line is in both. So we ask the monitor for a mark (see the monitor's
//! `attach` module): the time at which it read our question. Its answer
//! comes after every frame it sent us before it, and every log entry up to
//! that time was written before it answered. What came before the answer is
//! therefore in the log; we drop it, send the log up to the mark, and relay
//! the rest.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use dockyard_monitor::attach::{frame, EXIT, MARK};

/// Where the stream stands once the mark is answered.
pub(super) enum Mark {
    /// The log up to this time is what the stream does not carry.
    At(SystemTime),
    /// The container ended first (its exit code, when the monitor sent
    /// one): the whole log is all it printed, and there is no stream.
    Ended(Option<i32>),
}

/// Ask the monitor for its mark, and read up to its answer.
pub(super) fn mark(mut monitor: &UnixStream) -> Result<Mark> {
    if monitor.write_all(&frame(MARK, &[])).is_err() {
        return Ok(Mark::Ended(None));
    }
    // A monitor older than the mark ignores it: after a while, take the
    // time now (the old way, which can lose or repeat a line at the seam).
    monitor.set_read_timeout(Some(Duration::from_secs(5)))?;
    let out = loop {
        let mut head = [0u8; 5];
        let len = match monitor.read_exact(&mut head) {
            Ok(()) => u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                break Mark::At(SystemTime::now())
            }
            // The monitor closed: the container ended; all it printed is logged.
            Err(_) => break Mark::Ended(None),
        };
        let mut data = vec![0u8; len];
        if monitor.read_exact(&mut data).is_err() {
            break Mark::Ended(None);
        }
        match head[0] {
            MARK if len == 8 => {
                let ns = u64::from_be_bytes(data.try_into().unwrap_or_default());
                break Mark::At(UNIX_EPOCH + Duration::from_nanos(ns));
            }
            EXIT if len == 4 => {
                break Mark::Ended(Some(i32::from_be_bytes(
                    data.try_into().unwrap_or_default(),
                )))
            }
            // Output from before the mark: the log has it.
            _ => {}
        }
    };
    monitor.set_read_timeout(None)?;
    Ok(out)
}

/// Wait (up to `limit`) until the client has read all we sent it: here, the
/// 101's headers, before the log comes behind them.
///
/// docker-py reads the headers through http.client's buffered reader, then
/// reads the stream from the raw socket under it. Bytes that arrive
/// together with the headers land in that buffer and are never seen: the
/// log's first lines, when they are written at once (dockerd's log reader
/// is usually slow enough not to meet this). On a unix socket, SIOCOUTQ
/// counts the bytes sent that the peer has not read yet.
pub(super) fn wait_until_read(conn: &UnixStream, limit: Duration) {
    use std::os::fd::AsRawFd;
    let deadline = std::time::Instant::now() + limit;
    loop {
        let mut unread: libc::c_int = 0;
        // SAFETY: SIOCOUTQ (the same number as TIOCOUTQ) writes one int.
        let rc = unsafe { libc::ioctl(conn.as_raw_fd(), libc::TIOCOUTQ, &mut unread) };
        if rc != 0 || unread == 0 || std::time::Instant::now() >= deadline {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}
