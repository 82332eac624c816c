//! # Who the command runs as: `-u` and the image's `USER`
//!
//! A container's processes start as root (of the container: with a user
//! namespace, an unprivileged uid on the host). `docker run -u 1000:1000`
//! or an image's `USER app` make the command run as someone else. The name
//! means what the *image's* `/etc/passwd` and `/etc/group` say, not the
//! host's; the switch itself is the last step before exec, because it takes
//! the capabilities away:
//!
//! ```text
//! setpriv --reuid=1000 --regid=1000 --init-groups CMD     # or: su -s /bin/sh app -c CMD
//! ```

use std::fs;
use std::os::fd::OwnedFd;
use std::path::Path;

use anyhow::{bail, Context};

use crate::security;

/// Who a container's command runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
}

// ANCHOR: run_as
/// Become `u`: supplementary groups, then the gid, then the uid. The order
/// matters: each step needs CAP_SETGID or CAP_SETUID, and once the uid is
/// not 0 the kernel takes the capabilities away (which is why a container
/// started with `-u 1000` has none, as in docker).
pub fn switch_user(u: &RunAs) -> anyhow::Result<()> {
    use nix::unistd::{setgroups, setresgid, setresuid, Gid, Uid};
    let groups: Vec<Gid> = u.groups.iter().map(|g| Gid::from_raw(*g)).collect();
    setgroups(&groups).context("setgroups")?;
    let gid = Gid::from_raw(u.gid);
    setresgid(gid, gid, gid).with_context(|| format!("setresgid({})", u.gid))?;
    let uid = Uid::from_raw(u.uid);
    setresuid(uid, uid, uid).with_context(|| format!("setresuid({})", u.uid))?;
    Ok(())
}
// ANCHOR_END: run_as

/// Resolve docker's `-u` forms (`uid`, `uid:gid`, `name`, `name:group`)
/// against the image's `/etc/passwd` and `/etc/group`, read inside the
/// rootfs (through openat2 RESOLVE_IN_ROOT: the image's files may be
/// symlinks to anywhere). A name's supplementary groups are the groups that
/// list it.
pub fn resolve_user(rootfs: &Path, user: &str) -> anyhow::Result<RunAs> {
    let root = OwnedFd::from(
        fs::File::open(rootfs).with_context(|| format!("opening {}", rootfs.display()))?,
    );
    let read = |path: &str| -> String {
        security::open_in_root(&root, Path::new(path), libc::O_RDONLY)
            .ok()
            .and_then(|fd| std::io::read_to_string(fs::File::from(fd)).ok())
            .unwrap_or_default()
    };
    let passwd = read("/etc/passwd");
    let group = read("/etc/group");
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    // passwd: name:x:uid:gid:gecos:home:shell
    let entry = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 4 && (f[0] == u || f[2] == u));
    let (uid, mut gid, name) = match (u.parse::<u32>(), &entry) {
        (_, Some(f)) => (
            f[2].parse()
                .with_context(|| format!("bad uid in /etc/passwd for {u}"))?,
            f[3].parse()
                .with_context(|| format!("bad gid in /etc/passwd for {u}"))?,
            Some(f[0].to_string()),
        ),
        (Ok(n), None) => (n, n, None),
        (Err(_), None) => bail!("unable to find user {u}: no matching entries in passwd file"),
    };
    if let Some(g) = g {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => group
                .lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .find(|f| f.len() >= 3 && f[0] == g)
                .and_then(|f| f[2].parse().ok())
                .with_context(|| {
                    format!("unable to find group {g}: no matching entries in group file")
                })?,
        };
    }
    let mut groups = vec![gid];
    if let Some(name) = name {
        for f in group.lines().map(|l| l.split(':').collect::<Vec<_>>()) {
            if f.len() >= 4 && f[3].split(',').any(|m| m == name) {
                if let Ok(n) = f[2].parse() {
                    if !groups.contains(&n) {
                        groups.push(n);
                    }
                }
            }
        }
    }
    Ok(RunAs { uid, gid, groups })
}
