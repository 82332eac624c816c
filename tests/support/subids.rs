//! Subordinate ID ranges for `--userns-remap` tests, added to the host's
//! `/etc/subuid` and `/etc/subgid` and restored byte for byte afterwards.
//!
//! The files are the host's, shared by every test binary that may run at
//! the same time: a [`SubIds`] holds an exclusive `flock(2)` on `/etc` from
//! before it reads the files until after it has put them back, so two
//! tests never interleave their edits. The restore runs in `Drop`, so a
//! failing (panicking) test restores them too.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::PathBuf;

/// The files a remap range is read from.
pub const FILES: [&str; 2] = ["/etc/subuid", "/etc/subgid"];

/// A range added for the life of this value.
pub struct SubIds {
    lock: File,
    /// Each file and its content before (`None`: it did not exist).
    saved: Vec<(PathBuf, Option<Vec<u8>>)>,
}

impl SubIds {
    /// Hold the lock without changing anything: for a test that needs the
    /// files to stay as the host has them.
    pub fn hold() -> SubIds {
        let lock = File::open("/etc").expect("opening /etc to lock it");
        // SAFETY: flock on a descriptor we own.
        let r = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
        assert_eq!(r, 0, "flock(/etc): {}", std::io::Error::last_os_error());
        SubIds {
            lock,
            saved: Vec::new(),
        }
    }

    /// Add `WHO:START:COUNT` to both files.
    pub fn add(who: &str, start: u32, count: u32) -> SubIds {
        let lock = File::open("/etc").expect("opening /etc to lock it");
        // SAFETY: flock on a descriptor we own.
        let r = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
        assert_eq!(r, 0, "flock(/etc): {}", std::io::Error::last_os_error());
        let mut saved = Vec::new();
        for f in FILES {
            let path = PathBuf::from(f);
            let before = std::fs::read(&path).ok();
            saved.push((path.clone(), before.clone()));
            let mut text = before.unwrap_or_default();
            if !text.is_empty() && !text.ends_with(b"\n") {
                text.push(b'\n');
            }
            text.extend_from_slice(format!("{who}:{start}:{count}\n").as_bytes());
            std::fs::write(&path, text).expect("adding a range");
        }
        SubIds { lock, saved }
    }
}

impl Drop for SubIds {
    fn drop(&mut self) {
        for (path, before) in &self.saved {
            match before {
                Some(bytes) => {
                    let _ = std::fs::write(path, bytes);
                }
                None => {
                    let _ = std::fs::remove_file(path);
                }
            }
        }
        // SAFETY: as above; closing the descriptor would unlock too.
        unsafe { libc::flock(self.lock.as_raw_fd(), libc::LOCK_UN) };
    }
}
