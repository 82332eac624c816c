//! `docker build -q`: the image ID alone on standard output, the build's own output shown
//! only when the build fails.
//!
//! A build prints in two ways: the builder's `Step N/M` lines, and the RUN steps'
//! containers, which write to the file descriptors 1 and 2 they inherit from us (see
//! [`crate::runstep`]). To hold both back, the build points descriptors 1 and 2 at a scratch
//! file for its duration, and puts them back afterwards, whatever happened:
//!
//! ```text
//! exec 3>&1 4>&2 >build.log 2>&1     # start
//! ...the build...
//! exec 1>&3 2>&4                     # end; on failure: cat build.log >&2
//! ```
//!
//! Docker's CLI does the same with the stream it reads from the daemon: it buffers it and
//! prints it to stderr if the build fails.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::{AsRawFd, OwnedFd};

use anyhow::{Context, Result};

/// Descriptors 1 and 2 pointed at a scratch file until [`Quiet::finish`] (or drop).
pub(super) struct Quiet {
    log: File,
    saved: Option<(OwnedFd, OwnedFd)>,
}

impl Quiet {
    pub(super) fn start(dir: &std::path::Path) -> Result<Quiet> {
        let path = dir.join(format!("build-log-{}", std::process::id()));
        let log = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        // The name goes at once: the descriptor keeps the file for as long as we need it.
        let _ = std::fs::remove_file(&path);
        std::io::stdout().flush()?;
        std::io::stderr().flush()?;
        let out = nix::unistd::dup(std::io::stdout()).context("dup(1)")?;
        let err = nix::unistd::dup(std::io::stderr()).context("dup(2)")?;
        let q = Quiet {
            log,
            saved: Some((out, err)),
        };
        for fd in [1, 2] {
            // SAFETY: dup2 onto the standard descriptors; the originals are saved above.
            if unsafe { libc::dup2(q.log.as_raw_fd(), fd) } < 0 {
                return Err(std::io::Error::last_os_error()).context("dup2 onto stdout");
            }
        }
        Ok(q)
    }

    fn restore(&mut self) {
        let _ = std::io::stdout().flush();
        if let Some((out, err)) = self.saved.take() {
            // SAFETY: putting the saved descriptors back on 1 and 2.
            unsafe {
                libc::dup2(out.as_raw_fd(), 1);
                libc::dup2(err.as_raw_fd(), 2);
            }
        }
    }

    /// Puts the descriptors back; returns what the build printed.
    pub(super) fn finish(mut self) -> Vec<u8> {
        self.restore();
        let mut text = Vec::new();
        let _ = self.log.rewind();
        let _ = self.log.read_to_end(&mut text);
        text
    }
}

impl Drop for Quiet {
    fn drop(&mut self) {
        self.restore();
    }
}
