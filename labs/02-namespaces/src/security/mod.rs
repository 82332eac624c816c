//! # Security: what keeps a root process in its container
//!
//! Namespaces change what a process *sees*. They do not change what it may
//! *do*: without a user namespace, root in a container is root on the host, with
//! every capability, able to mount file systems, load kernel modules, read
//! `/dev/vda` and reboot the machine. A container engine adds four layers that
//! take those powers away, each one a kernel mechanism with its own man page,
//! and all four are on by default in Docker and in `dockyard run`:
//!
//! | layer            | what it takes away                          | shell equivalent                                  |
//! |------------------|---------------------------------------------|---------------------------------------------------|
//! | capabilities     | root's powers, one by one                   | `capsh --drop=cap_sys_admin,... --`               |
//! | no_new_privs     | gaining any back through set-uid or file caps | `setpriv --no-new-privs`                        |
//! | seccomp          | whole system calls, whoever makes them      | (none in the shell; see `seccomp(2)`)             |
//! | masked paths     | the kernel's own files under /proc and /sys | `mount --bind /dev/null /proc/kcore`, `mount -o remount,ro` |
//!
//! The layers overlap on purpose. `mount(2)` needs `CAP_SYS_ADMIN`, which is
//! dropped, *and* seccomp refuses the call; `/proc/sys` is read-only, *and*
//! writing most of it needs a dropped capability. One mistake in one layer
//! should not be enough.
//!
//! ## The order of things
//!
//! Each layer takes away something a later step of the setup needs, so the
//! order is fixed (see `child_setup` in `lib.rs`, and runc's
//! `standard_init_linux.go`, which has the same order):
//!
//! 1. **Mounts first**, while we still have `CAP_SYS_ADMIN`: /sys, /dev/pts,
//!    /dev/shm, /dev/mqueue, the masked and read-only paths, `--tmpfs`, and
//!    last the read-only remount of `/` (after the working directory is made).
//! 2. **no_new_privs**: from here on, no `execve` can grant anything.
//! 3. **Capabilities**: bounding set, ambient set, then effective, permitted
//!    and inheritable with `capset(2)`.
//! 4. **File descriptors**: every one above 2 is closed (CVE-2024-21626).
//! 5. **Seccomp, last**, right before `execve`: the filter applies to every
//!    system call after it, including the ones our own setup would make, so
//!    the fewer of those the better. It needs no_new_privs (or
//!    `CAP_SYS_ADMIN`, which we no longer have). With
//!    `--security-opt no-new-privileges=false` it goes before step 3
//!    instead, while `CAP_SYS_ADMIN` is still there, as runc does.
//!
//! With `--init` the tiny init runs after step 5: it is confined like the
//! command, and Docker's profile allows everything it does (fork, wait4,
//! rt_sigtimedwait, kill).
//!
//! ## The chapters
//!
//! Each layer is a module: [`caps`] (capabilities), [`seccomp`] (the
//! profile, its compiler and the i386 half), [`mounts`] (masked and
//! read-only paths, /sys, terminals, `--tmpfs`, `--read-only`), [`fds`]
//! (descriptors and dumpability), [`sealed`] (the runtime's own binary,
//! CVE-2019-5736) and [`in_root`] (resolving paths inside the container's
//! root, which every mount above relies on). This file holds the options
//! ([`Security`]), their resolution in the parent ([`Security::prepare`])
//! and the last steps in the child ([`confine`]), in the order above.

use std::fs;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use nix::errno::Errno;
use seccompiler::BpfProgram;

pub mod caps;
pub mod fds;
pub mod in_root;
pub mod mounts;
pub mod sealed;
pub mod seccomp;
pub mod shm;

use caps::{apply_capabilities, apply_capability_sets, switch_user_keeping_sets};
use seccomp::install_seccomp;

// The paths callers have always used: `security::X`.
pub use caps::{
    cap_names, docker_default_caps, resolve_caps, CapMask, CapSets, Capability, CAPABILITIES,
};
pub use fds::{check_no_fds_above_2, close_fds, set_non_dumpable};
pub use in_root::{enter_workdir, mkdir_all_in_root, open_in_root};
pub use mounts::{
    mount_after_pivot, mount_sys, remount_root_read_only, Tmpfs, MASKED_PATHS, READONLY_PATHS,
};
pub use sealed::ensure_sealed_binary;
pub use seccomp::{
    compile, compile_cached, docker_default_profile, i386, ranges, ArchMap, ArgRule, Condition,
    Profile, SyscallRule, CLONE_NAMESPACE_FLAGS, DENIED,
};
pub use shm::DevShm;

// ---------------------------------------------------------------------------
// The options, as docker run spells them
// ---------------------------------------------------------------------------

/// Which seccomp profile: `--security-opt seccomp=...`.
#[derive(Debug, Clone, PartialEq)]
pub enum Seccomp {
    /// Docker's default profile ([`docker_default_profile`]).
    Default,
    /// No filter at all: `seccomp=unconfined`.
    Unconfined,
    /// A profile read from a JSON file (read in the parent, before clone: the
    /// host path is gone after pivot_root).
    Profile(PathBuf),
}

// ANCHOR: security
/// The security layer of a container. `Spec::security = None` is lab 02's own
/// behaviour (root with every capability); [`Security::docker_default`] is
/// what `docker run` does, and what `dockyard run` uses.
#[derive(Debug, Clone, PartialEq)]
pub struct Security {
    /// `--privileged`: every capability, no seccomp, nothing masked, /sys
    /// writable. The flags below that would take something away are ignored.
    pub privileged: bool,
    /// `--cap-add` (names with or without `CAP_`, any case, or `ALL`).
    pub cap_add: Vec<String>,
    /// `--cap-drop`.
    pub cap_drop: Vec<String>,
    /// `--security-opt seccomp=...`.
    pub seccomp: Seccomp,
    /// `--security-opt no-new-privileges`: on by default in dockyard (Docker
    /// leaves it off unless asked; with it on, a set-uid binary in the image
    /// cannot gain what the container was not given).
    pub no_new_privileges: bool,
    /// Covered, see [`MASKED_PATHS`].
    pub masked_paths: Vec<PathBuf>,
    /// Read-only, see [`READONLY_PATHS`].
    pub readonly_paths: Vec<PathBuf>,
    /// `--read-only`: the root file system is remounted read-only at the end.
    pub read_only_rootfs: bool,
    /// `--tmpfs PATH[:OPTS]`.
    pub tmpfs: Vec<Tmpfs>,
    /// The five sets one by one (an OCI runtime's `process.capabilities`);
    /// `None`, docker's way: [`Security::cap_add`]/`cap_drop` give one set
    /// to bounding, permitted and effective, none inheritable or ambient.
    pub cap_sets: Option<CapSets>,
    /// `--shm-size`: the size of the container's `/dev/shm` tmpfs, in
    /// bytes; `None`: Docker's 64 MiB.
    pub shm_size: Option<u64>,
    /// What `/dev/shm` is: a tmpfs of its own, none, or a host directory
    /// (`--ipc`, see [`shm`]).
    pub dev_shm: DevShm,
}

impl Security {
    /// Docker's defaults, with no_new_privs on.
    pub fn docker_default() -> Security {
        Security {
            privileged: false,
            cap_add: Vec::new(),
            cap_drop: Vec::new(),
            seccomp: Seccomp::Default,
            no_new_privileges: true,
            masked_paths: MASKED_PATHS.iter().map(PathBuf::from).collect(),
            readonly_paths: READONLY_PATHS.iter().map(PathBuf::from).collect(),
            read_only_rootfs: false,
            tmpfs: Vec::new(),
            cap_sets: None,
            shm_size: None,
            dev_shm: DevShm::Tmpfs,
        }
    }

    /// `--privileged`.
    pub fn privileged() -> Security {
        Security {
            privileged: true,
            ..Security::docker_default()
        }
    }

    /// Apply one `--security-opt` value: `seccomp=unconfined`,
    /// `seccomp=PATH`, `no-new-privileges[=true|false]` (also with `:`).
    pub fn apply_opt(&mut self, opt: &str) -> anyhow::Result<()> {
        let (key, value) = opt
            .split_once(['=', ':'])
            .map(|(k, v)| (k, Some(v)))
            .unwrap_or((opt, None));
        match (key, value) {
            ("seccomp", Some("unconfined")) => self.seccomp = Seccomp::Unconfined,
            ("seccomp", Some(path)) if !path.is_empty() => {
                self.seccomp = Seccomp::Profile(path.into())
            }
            ("no-new-privileges", None | Some("true")) => self.no_new_privileges = true,
            ("no-new-privileges", Some("false")) => self.no_new_privileges = false,
            _ => bail!(
                "--security-opt {opt:?}: expected seccomp=unconfined, seccomp=PROFILE.json or \
                 no-new-privileges[=true|false]"
            ),
        }
        Ok(())
    }

    /// Resolve names and compile the seccomp profile, in the parent before
    /// clone: errors surface before any process exists, the profile file is
    /// read while its host path is still visible, and the child only has to
    /// install the result.
    pub fn prepare(&self) -> anyhow::Result<Prepared> {
        let caps = resolve_caps(self.privileged, &self.cap_add, &self.cap_drop)?;
        let seccomp = match (&self.seccomp, self.privileged) {
            (_, true) | (Seccomp::Unconfined, _) => None,
            (Seccomp::Default, _) => Some(compile_cached(
                b"dockyard: Docker's default profile, as built by this version",
                caps,
                || Ok(docker_default_profile()),
            )?),
            (Seccomp::Profile(path), _) => {
                let text = fs::read(path)
                    .with_context(|| format!("reading seccomp profile {}", path.display()))?;
                Some(compile_cached(&text, caps, || {
                    serde_json::from_slice(&text).with_context(|| {
                        format!(
                            "seccomp profile {}: not a Docker/OCI profile",
                            path.display()
                        )
                    })
                })?)
            }
        };
        let (masked, readonly) = if self.privileged {
            (Vec::new(), Vec::new())
        } else {
            (self.masked_paths.clone(), self.readonly_paths.clone())
        };
        Ok(Prepared {
            caps,
            seccomp,
            no_new_privileges: self.no_new_privileges,
            masked_paths: masked,
            readonly_paths: readonly,
            sys_read_only: !self.privileged,
            read_only_rootfs: self.read_only_rootfs,
            tmpfs: self.tmpfs.clone(),
            cap_sets: if self.privileged { None } else { self.cap_sets },
            shm_size: self.shm_size,
            dev_shm: self.dev_shm.clone(),
        })
    }
}
// ANCHOR_END: security

/// [`Security`] resolved and compiled, ready for the child.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub caps: CapMask,
    pub seccomp: Option<Arc<Vec<BpfProgram>>>,
    pub no_new_privileges: bool,
    pub masked_paths: Vec<PathBuf>,
    pub readonly_paths: Vec<PathBuf>,
    pub sys_read_only: bool,
    pub read_only_rootfs: bool,
    pub tmpfs: Vec<Tmpfs>,
    pub cap_sets: Option<CapSets>,
    pub shm_size: Option<u64>,
    pub dev_shm: DevShm,
}

// ANCHOR: confine
/// The last steps before exec: no_new_privs, capabilities, descriptors,
/// seccomp, in that order (see the module documentation).
pub fn confine(p: &Prepared) -> anyhow::Result<()> {
    confine_keeping(p, &[])
}

/// [`confine`], leaving the descriptors in `keep` open (an OCI runtime's
/// exec fifo, see [`crate::gate`]).
pub fn confine_keeping(p: &Prepared, keep: &[std::os::fd::RawFd]) -> anyhow::Result<()> {
    confine_as(p, keep, None).map(|_| ())
}

/// [`confine_keeping`] for a process that will run as `user` (not root).
/// With the five sets of an OCI config the user switch happens here,
/// between the capability steps (see `switch_user_keeping_sets`), and the
/// answer is `true`; with one mask (docker's `-u 1000`, which keeps no
/// capability) it is `false` and the caller switches afterwards.
pub fn confine_as(
    p: &Prepared,
    keep: &[std::os::fd::RawFd],
    user: Option<&crate::RunAs>,
) -> anyhow::Result<bool> {
    if p.no_new_privileges {
        // SAFETY: prctl with integer arguments only.
        let ret = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
        Errno::result(ret).context("prctl(PR_SET_NO_NEW_PRIVS)")?;
    }
    if let (Some(programs), false) = (&p.seccomp, p.no_new_privileges) {
        // Without no_new_privs the kernel wants CAP_SYS_ADMIN to install a
        // filter, so it goes in now, before we drop it. The filter must then
        // allow capset, prctl and close_range, as Docker's does.
        install_seccomp(programs)?;
    }
    let switched = match (&p.cap_sets, user) {
        (Some(sets), Some(u)) => {
            switch_user_keeping_sets(sets, u)?;
            true
        }
        (Some(sets), None) => {
            apply_capability_sets(sets)?;
            false
        }
        (None, _) => {
            apply_capabilities(p.caps)?;
            false
        }
    };
    close_fds(keep)?;
    if let (Some(programs), true) = (&p.seccomp, p.no_new_privileges) {
        install_seccomp(programs)?;
    }
    Ok(switched)
}
// ANCHOR_END: confine

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_opts_parse_like_docker() {
        let mut s = Security::docker_default();
        s.apply_opt("seccomp=unconfined").unwrap();
        assert_eq!(s.seccomp, Seccomp::Unconfined);
        s.apply_opt("seccomp:/tmp/p.json").unwrap();
        assert_eq!(s.seccomp, Seccomp::Profile("/tmp/p.json".into()));
        s.apply_opt("no-new-privileges=false").unwrap();
        assert!(!s.no_new_privileges);
        s.apply_opt("no-new-privileges").unwrap();
        assert!(s.no_new_privileges);
    }
}
