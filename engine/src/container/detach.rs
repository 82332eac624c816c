//! Docker's detach keys: the key sequence (Ctrl-P Ctrl-Q by default, or
//! `--detach-keys`) that leaves an attached terminal session and lets the
//! container go on. Looked for in what a person types, only with a TTY
//! (without one every byte is data), by each side that relays the input:
//! the in-process `attach` and `exec -it`, the `-H` client, and the
//! service's attach and exec (as dockerd does, for clients that send the
//! keys on).
//!
//! Leaving a container's session is easy: its monitor goes on holding its
//! terminal. Leaving an in-process `exec -it` is not: we hold the command's
//! pty master, and when the last copy of it closes the kernel hangs the
//! command's terminal up (SIGHUP, which ends a shell). dockerd keeps the
//! master and reads it until the command is gone; so does a process we
//! leave behind ([`read_on_in_background`]).

use std::os::fd::{AsRawFd, OwnedFd};

use anyhow::{bail, Context, Result};
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::unistd::{fork, ForkResult};

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

/// Finds the detach keys in the input, across reads: the keys typed so far
/// are held back, and sent on if the sequence breaks.
pub struct DetachKeys {
    keys: Vec<u8>,
    /// Looked for at all (only with a terminal).
    active: bool,
    /// How many keys of the sequence in a row so far, and those bytes.
    matched: usize,
    held: Vec<u8>,
}

impl DetachKeys {
    pub fn new(keys: Vec<u8>, active: bool) -> DetachKeys {
        DetachKeys {
            keys,
            active,
            matched: 0,
            held: Vec::new(),
        }
    }

    /// The bytes of `input` to send on, and whether the sequence is
    /// complete (what follows it is dropped: the client leaves).
    pub fn feed(&mut self, input: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(input.len());
        for &b in input {
            if self.active && b == self.keys[self.matched] {
                self.held.push(b);
                self.matched += 1;
                if self.matched == self.keys.len() {
                    return (out, true);
                }
                continue;
            }
            out.append(&mut self.held);
            self.matched = 0;
            if self.active && b == self.keys[0] {
                self.held.push(b);
                self.matched = 1;
                continue;
            }
            out.push(b);
        }
        (out, false)
    }
}

/// After a detach from `exec -it`: a child of ours, in a session of its own
/// (no terminal reaches it) with /dev/null as its stdio, holds the pty
/// master `master` and reads what the command prints, dropping it (dockerd
/// logs no exec's output), until every copy of the terminal's other end is
/// closed: the command and whatever it left behind are gone. Then it exits.
/// We return at once, and exit; it is then an orphan, which init reaps.
///
/// Must be called from a single-threaded process (it forks), as `exec` is.
pub fn read_on_in_background(master: OwnedFd) -> Result<()> {
    let null = std::fs::File::options()
        .read(true)
        .write(true)
        .open("/dev/null")
        .context("opening /dev/null")?;
    // SAFETY: the caller is single-threaded (documented above), and the
    // child only makes system calls before it exits.
    match unsafe { fork() }.context("fork to keep the exec's terminal")? {
        ForkResult::Parent { .. } => Ok(()),
        ForkResult::Child => {
            let _ = nix::unistd::setsid();
            // Nothing else of ours: the caller's terminal, files, sockets
            // and locks.
            let m = master.as_raw_fd() as u32;
            // SAFETY: plain descriptor calls; no Rust object of this copy
            // uses the descriptors closed here from now on.
            unsafe {
                for fd in 0..3 {
                    libc::dup2(null.as_raw_fd(), fd);
                }
                if m > 3 {
                    libc::close_range(3, m - 1, 0);
                }
                libc::close_range(m + 1, u32::MAX, 0);
            }
            // The pump made it non-blocking (for a dup, the same open file):
            // here a read should wait.
            let _ = fcntl(&master, FcntlArg::F_SETFL(OFlag::empty()));
            let mut buf = [0u8; 4096];
            loop {
                match nix::unistd::read(&master, &mut buf) {
                    Ok(n) if n > 0 => {}
                    Err(nix::errno::Errno::EINTR) => {}
                    // 0 or EIO: every copy of the slave side is closed.
                    _ => break,
                }
            }
            // SAFETY: leaving the forked copy without the parent's exit
            // handlers.
            unsafe { libc::_exit(0) }
        }
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

    #[test]
    fn detach_keys_are_held_until_the_sequence_completes_or_breaks() {
        let mut d = DetachKeys::new(vec![16, 17], true);
        assert_eq!(d.feed(b"ls\x10"), (b"ls".to_vec(), false), "ctrl-p held");
        assert_eq!(
            d.feed(b"x"),
            (b"\x10x".to_vec(), false),
            "sent on when broken"
        );
        assert_eq!(d.feed(b"\x10"), (vec![], false));
        assert_eq!(d.feed(b"\x11rest"), (vec![], true), "across reads");
        let mut d = DetachKeys::new(vec![16, 17], true);
        assert_eq!(
            d.feed(b"\x10\x10\x11"),
            (vec![16], true),
            "a repeated first key restarts"
        );
        let mut plain = DetachKeys::new(vec![16, 17], false);
        assert_eq!(
            plain.feed(b"\x10\x11"),
            (vec![16, 17], false),
            "no terminal: data"
        );
    }
}
