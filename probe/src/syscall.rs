//! `probe syscall NAME`: make one system call that a container should not be
//! allowed to make, with arguments that do no harm if it is allowed, and
//! report what the kernel answered.
//!
//! busybox has a command for most escape attempts (`mount`, `insmod`,
//! `unshare`, `hostname`), but not for these. Each of them is refused by
//! Docker's seccomp profile, and most also need a capability that a default
//! container lacks: both answer EPERM. With `--privileged` the call reaches
//! the kernel's own checks, which refuse our harmless arguments with another
//! errno (EINVAL, EBADF...), or succeed.
//!
//! | name                | the real attack                                   | our harmless arguments             |
//! |---------------------|---------------------------------------------------|------------------------------------|
//! | `keyctl`            | read the host's keys (the keyring is global)      | KEYCTL_GET_KEYRING_ID, no create   |
//! | `userfaultfd`       | stall the kernel mid-copy, a step of many exploits | create one, then close it          |
//! | `bpf`               | load a program into the host's kernel             | BPF_MAP_CREATE with an empty attr  |
//! | `perf_event_open`   | watch every CPU of the host                       | an all-zero attr                   |
//! | `open_by_handle_at` | open a host file by inode ("shocker", 2014)       | an empty handle                    |

use serde::Serialize;

/// What `probe syscall NAME` prints.
#[derive(Debug, Serialize)]
pub struct Outcome {
    pub syscall: String,
    /// The call returned without an error.
    pub ok: bool,
    /// The errno, by name (`EPERM`), when it did not.
    pub errno: Option<String>,
}

/// Every name `probe syscall` knows.
pub const NAMES: [&str; 5] = [
    "keyctl",
    "userfaultfd",
    "bpf",
    "perf_event_open",
    "open_by_handle_at",
];

pub fn attempt(name: &str) -> Result<Outcome, String> {
    let mut zeroes = [0u8; 128];
    // SAFETY: each call gets arguments of the types the kernel expects;
    // pointers point at `zeroes`, which outlives the call.
    let ret: libc::c_long = unsafe {
        match name {
            "keyctl" => libc::syscall(
                libc::SYS_keyctl,
                0 as libc::c_long,  // KEYCTL_GET_KEYRING_ID
                -3 as libc::c_long, // KEY_SPEC_SESSION_KEYRING
                0 as libc::c_long,  // do not create it
            ),
            "userfaultfd" => libc::syscall(libc::SYS_userfaultfd, libc::O_CLOEXEC),
            "bpf" => libc::syscall(
                libc::SYS_bpf,
                0 as libc::c_long, // BPF_MAP_CREATE
                zeroes.as_mut_ptr(),
                zeroes.len(),
            ),
            "perf_event_open" => libc::syscall(
                libc::SYS_perf_event_open,
                zeroes.as_mut_ptr(),
                0 as libc::c_long,  // this process
                -1 as libc::c_long, // any CPU
                -1 as libc::c_long, // no group
                0 as libc::c_long,
            ),
            "open_by_handle_at" => libc::syscall(
                libc::SYS_open_by_handle_at,
                libc::AT_FDCWD,
                zeroes.as_mut_ptr(), // struct file_handle { handle_bytes: 0, ... }
                libc::O_RDONLY,
            ),
            other => return Err(format!("unknown system call {other:?}; known: {NAMES:?}")),
        }
    };
    if ret < 0 {
        let errno = nix::errno::Errno::last();
        return Ok(Outcome {
            syscall: name.into(),
            ok: false,
            errno: Some(format!("{errno:?}")),
        });
    }
    if matches!(
        name,
        "userfaultfd" | "perf_event_open" | "open_by_handle_at" | "bpf"
    ) {
        // A new descriptor: close it.
        // SAFETY: the kernel just returned it to us.
        unsafe { libc::close(ret as libc::c_int) };
    }
    Ok(Outcome {
        syscall: name.into(),
        ok: true,
        errno: None,
    })
}
