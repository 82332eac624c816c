//! # The exec gate: made now, started later
//!
//! An OCI runtime splits "run" in two. `create` builds the whole container
//! (namespaces, mounts, cgroup, security layer) and leaves its first process
//! waiting *just before* `execve`; `start` lets it go. Between the two, the
//! caller (containerd, a kubelet through the CRI) wires networks, runs hooks
//! and reads the PID, knowing that nothing of the image's code has run yet.
//!
//! runc makes the wait out of a named pipe, `exec.fifo` in the container's
//! state directory, and so does [`Spec::exec_fifo`](crate::Spec::exec_fifo):
//!
//! ```text
//! mkfifo -m 0622 /run/runtime/ID/exec.fifo     # create
//! child:  echo 0 > exec.fifo; exec CMD          # open(O_WRONLY) blocks until a reader comes
//! start:  cat exec.fifo; rm exec.fifo           # the reader: the child goes on to exec
//! ```
//!
//! The child opens the fifo as an `O_PATH` descriptor while the host's paths
//! are still in view, and reopens it for writing through `/proc/self/fd/N`
//! after `pivot_root`, the last thing before `execve`. Just before it
//! blocks, it tells its parent so over a pipe: "ready". The parent waits for
//! that byte, so a setup failure (a bad mount, a missing binary's directory)
//! is reported by `create` itself, not later by `start`.

use std::fs;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;

use anyhow::Context;
use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;

/// The child's half: the fifo, and the pipe on which it says "ready".
pub(crate) struct Gate {
    fifo: OwnedFd,
    ready: OwnedFd,
}

impl Gate {
    /// Open the fifo at `path` without opening it for I/O (`O_PATH` does not
    /// block, and needs no permission on the fifo itself).
    pub(crate) fn open(path: &Path, ready: OwnedFd) -> anyhow::Result<Gate> {
        let fifo = open(path, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
            .with_context(|| format!("opening the exec fifo {}", path.display()))?;
        Ok(Gate { fifo, ready })
    }

    /// The descriptors that must survive the closing of every other one
    /// before exec (see `security::close_fds`).
    pub(crate) fn keep(&self) -> [RawFd; 2] {
        [self.fifo.as_raw_fd(), self.ready.as_raw_fd()]
    }

    /// Say "ready", then block until `start` opens the fifo for reading.
    pub(crate) fn wait(self) -> anyhow::Result<()> {
        let Gate { fifo, ready } = self;
        fs::File::from(ready)
            .write_all(b"R")
            .context("telling the runtime that the container is created")?;
        // Reopened through /proc: its host path is out of view since
        // pivot_root. Blocks until a reader exists.
        let path = format!("/proc/self/fd/{}", fifo.as_raw_fd());
        let mut writer = fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .context("waiting on the exec fifo for `start`")?;
        writer.write_all(b"0").context("writing to the exec fifo")?;
        Ok(())
    }
}

/// The parent's half: wait for the child to be ready. `false`: it exited
/// (EOF) before it got there, having said why on its stderr.
pub(crate) fn wait_ready(ready: OwnedFd) -> anyhow::Result<bool> {
    let mut byte = [0u8; 1];
    let n = fs::File::from(ready)
        .read(&mut byte)
        .context("waiting for the container's first process to be ready")?;
    Ok(n == 1)
}
