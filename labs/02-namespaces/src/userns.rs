//! # User namespaces: root inside, somebody else outside
//!
//! In a user namespace, IDs inside map to IDs outside through
//! `/proc/PID/uid_map` and `gid_map`: the line `0 100000 65536` makes uids
//! 0..65535 inside uids 100000..165535 on the host. Root inside has every
//! capability, but only over what its user namespace owns (the namespaces
//! created with it, its mounts, files owned by its range); to the host's
//! kernel it is uid 100000. This module holds the user namespace's part of
//! the story, in the order it happens:
//!
//! 1. the parent writes the child's maps from outside ([`IdMapping`],
//!    `write_id_maps`), while the child waits;
//! 2. the child becomes root inside (`become_root_inside`);
//! 3. it prepares `/proc` and `/dev` the way root of a user namespace must
//!    (`prepare_proc_and_dev_in_userns`).
//!
//! And one more: a process that is not root on the host can make *itself*
//! root of a user namespace of its own, with its own uid as 0, before it
//! does anything else ([`enter_own_user_namespace`]): rootless mode.
//!
//! ```text
//! unshare --user --map-users=0:100000:65536 --map-groups=0:100000:65536 CMD
//! cat /proc/self/uid_map             # inside:   0     100000      65536
//! unshare --user --map-root-user --mount CMD    # rootless: 0 = yourself
//! ```

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use lab01_chroot as lab01;
use nix::errno::Errno;
use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::unistd::{
    fork, getegid, geteuid, getgid, getpid, pipe2, setgroups, setresgid, setresuid, ForkResult,
    Gid, Pid, Uid,
};

/// Which IDs root inside a user namespace is on the host: uids and gids
/// `0..count` inside are `host_id..host_id+count` outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdMapping {
    /// The host ID that uid 0 (and gid 0) inside maps to.
    pub host_id: u32,
    /// How many consecutive IDs are mapped.
    pub count: u32,
}

impl IdMapping {
    /// The range root hands out by default, as in `/etc/subuid` on most
    /// distributions (`dockremap:100000:65536`).
    pub const ROOT_DEFAULT: IdMapping = IdMapping {
        host_id: 100_000,
        count: 65_536,
    };

    /// The mapping a caller gets by default: [`IdMapping::ROOT_DEFAULT`] for
    /// root; for anyone else, uid 0 inside is the caller, and nothing more
    /// (a range needs the setuid helper `newuidmap` and `/etc/subuid`).
    pub fn for_caller() -> IdMapping {
        if geteuid().is_root() {
            IdMapping::ROOT_DEFAULT
        } else {
            IdMapping {
                host_id: geteuid().as_raw(),
                count: 1,
            }
        }
    }

    /// The line for `uid_map` and `gid_map`: `inside outside count` (what
    /// `split_by_own_map` writes when nothing needs cutting).
    #[cfg(test)]
    fn map_line(&self) -> String {
        format!("0 {} {}\n", self.host_id, self.count)
    }
}

impl std::str::FromStr for IdMapping {
    type Err = String;

    /// `HOST_ID:COUNT`, e.g. `100000:65536`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (host, count) = s
            .split_once(':')
            .ok_or_else(|| format!("{s:?}: expected HOST_ID:COUNT, e.g. 100000:65536"))?;
        let host_id = host.parse().map_err(|e| format!("host id {host:?}: {e}"))?;
        let count: u32 = count.parse().map_err(|e| format!("count {count:?}: {e}"))?;
        if count == 0 {
            return Err("the count must be at least 1".into());
        }
        Ok(IdMapping { host_id, count })
    }
}

// ANCHOR: id_maps
/// Write the child's ID maps, from outside, before the child goes on.
///
/// Until its maps are written, a process in a new user namespace is nobody
/// (uid 65534) inside: it cannot even become root. Each map can be written
/// once, and only from outside or by the namespace's own root.
///
/// `setgroups` is the subtle one. A process may drop a supplementary group
/// with setgroups(2) that a file's permissions single out for denial
/// (`chmod 705`, owner and others allowed, the group not). Root may already
/// do that; an unprivileged user may not. If an unprivileged user could map
/// its gid and call setgroups inside, it would gain that power. So the
/// kernel lets an unprivileged process write `gid_map` only after it has
/// written `deny` to `setgroups`, which disables setgroups(2) in the
/// namespace for good. A privileged parent (root on the host) need not, and
/// leaves setgroups working inside.
pub(crate) fn write_id_maps(
    pid: Pid,
    mapping: &IdMapping,
    group: &IdMapping,
) -> anyhow::Result<()> {
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let write = |name: &str, content: &str| {
        fs::write(proc_dir.join(name), content)
            .with_context(|| format!("writing {content:?} to /proc/{pid}/{name}"))
    };
    write("uid_map", &split_by_own_map(mapping, "/proc/self/uid_map"))?;
    if !geteuid().is_root() {
        write("setgroups", "deny")?;
    }
    write("gid_map", &split_by_own_map(group, "/proc/self/gid_map"))
}

/// `mapping`'s map line, cut where the writer's own map is cut.
///
/// Each line of a child's map must fall inside *one* line of the map of
/// the namespace it maps into (the kernel's `map_id_range_down`). In the
/// host's namespace that is `0 0 4294967295`, one line: nothing to cut. A
/// rootless engine's namespace maps its uid 0 to the user and 1..=65536 to
/// a subordinate range: two lines, so `0 0 65537` must be written as
/// `0 0 1` and `1 1 65536`.
fn split_by_own_map(mapping: &IdMapping, own_map: &str) -> String {
    // The starts (inside) of our own extents, sorted.
    let mut cuts: Vec<u64> = fs::read_to_string(own_map)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    cuts.sort_unstable();
    let (start, end) = (
        mapping.host_id as u64,
        mapping.host_id as u64 + mapping.count as u64,
    );
    let mut out = String::new();
    let mut from = start;
    for cut in cuts.into_iter().filter(|c| *c > start && *c < end) {
        out.push_str(&format!("{} {} {}\n", from - start, from, cut - from));
        from = cut;
    }
    out.push_str(&format!("{} {} {}\n", from - start, from, end - from));
    out
}
// ANCHOR_END: id_maps

/// setresgid/setresuid to 0, which the ID maps make the mapped host IDs.
pub(crate) fn become_root_inside() -> anyhow::Result<()> {
    let root_g = Gid::from_raw(0);
    setresgid(root_g, root_g, root_g).context("setresgid(0, 0, 0) in the user namespace")?;
    // Drop the host's supplementary groups, when setgroups is allowed (see
    // `write_id_maps`); rootless, it is denied and they stay (shown as 65534).
    if getgid() == root_g {
        match setgroups(&[]) {
            Ok(()) | Err(Errno::EPERM) => {}
            Err(e) => return Err(e).context("setgroups([]) in the user namespace"),
        }
    }
    let root_u = Uid::from_raw(0);
    setresuid(root_u, root_u, root_u).context("setresuid(0, 0, 0) in the user namespace")?;
    Ok(())
}

// ANCHOR: userns_mounts
/// Mount `/proc` and `/dev` into the rootfs *before* `pivot_root`, as root in
/// a user namespace must.
///
/// Two rules of the kernel stand in the way of lab 01's order:
///
/// - Root in a user namespace may mount a new procfs only where a complete
///   procfs is already visible in its mount namespace (`mount_too_revealing`
///   in fs/namespace.c): otherwise it could uncover what the host hid under
///   another mount. After `pivot_root` the host's `/proc` is gone, so we
///   mount ours while it is still there, over it, and bind it into the
///   rootfs. Without a PID namespace of our own we may not mount one at all
///   (the host's PID namespace is not ours), so we bind the host's instead.
/// - Root in a user namespace may not create device nodes: mknod(2) would
///   hand it any disk on the host. So, as runc does for rootless containers,
///   we bind the host's harmless nodes (`/dev/null` and friends) into a fresh
///   tmpfs: the same six lab 01's `mount_dev` creates.
pub(crate) fn prepare_proc_and_dev_in_userns(
    rootfs: &Path,
    new_pid_ns: bool,
) -> anyhow::Result<()> {
    let bind = |source: &Path, target: &Path, flags: MsFlags| {
        mount(
            Some(source),
            target,
            None::<&str>,
            MsFlags::MS_BIND | flags,
            None::<&str>,
        )
        .with_context(|| format!("bind-mounting {} on {}", source.display(), target.display()))
    };
    if new_pid_ns {
        lab01::mount_proc()?;
        bind(Path::new("/proc"), &rootfs.join("proc"), MsFlags::empty())?;
    } else {
        bind(Path::new("/proc"), &rootfs.join("proc"), MsFlags::MS_REC)?;
    }

    let dev = rootfs.join("dev");
    mount(
        Some("tmpfs"),
        &dev,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
    )
    .with_context(|| format!("mounting tmpfs on {}", dev.display()))?;
    for (name, _, _) in lab01::DEVICES {
        let target = dev.join(name);
        // A bind mount needs something to mount over: an empty file.
        fs::File::create(&target).with_context(|| format!("creating {}", target.display()))?;
        bind(&Path::new("/dev").join(name), &target, MsFlags::empty())?;
    }
    lab01::populate_dev(&dev)?;
    Ok(())
}
// ANCHOR_END: userns_mounts

/// How [`enter_own_user_namespace`] mapped the caller's IDs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnMapping {
    /// uid and gid 0 inside are the caller's own; 1 and up are its
    /// subordinate ranges, written by `newuidmap` and `newgidmap`.
    WithRanges,
    /// Only uid and gid 0 inside, the caller's own; setgroups(2) is denied
    /// in the namespace (see `write_id_maps`).
    OwnIdOnly,
}

// ANCHOR: enter_own
/// Make the calling process root of a new user namespace of its own, in a
/// new mount namespace whose mounts are all private: the first act of a
/// rootless engine, before it does anything else.
///
/// ```text
/// unshare --user --map-root-user --mount CMD                # OwnIdOnly
/// unshare --user --map-auto --map-root-user --mount CMD     # WithRanges
/// ```
///
/// An unprivileged user may create a user namespace and map uid 0 inside
/// to itself: one ID, its own. More IDs (uid 1000 of an image must be
/// *somebody*) need the subordinate ranges root granted it in /etc/subuid
/// and /etc/subgid, and the setuid helpers `newuidmap` and `newgidmap`
/// (package `uidmap`) to write them, which check those files. A helper must
/// run *outside* the new namespace, where its setuid bit means something,
/// and the namespace must exist before it can write its maps: so a child
/// is forked first, waits on a pipe until we have unshared, then maps us,
/// as rootless Docker and podman do. `ranges` are the (uids, gids) to map
/// from 1 up inside; without them, or if a helper fails, the single ID.
///
/// Then every mount is made private (`mount --make-rprivate /`): what the
/// caller mounts from now on stays in its namespace.
///
/// Call it from a single-threaded process: it forks, and
/// unshare(CLONE_NEWUSER) refuses a process with threads.
pub fn enter_own_user_namespace(
    ranges: Option<(IdMapping, IdMapping)>,
) -> anyhow::Result<OwnMapping> {
    let (uid, gid) = (geteuid().as_raw(), getegid().as_raw());
    // Forked while we are still in the host's user namespace.
    let helper = ranges
        .map(|(uids, gids)| fork_id_map_helper(uid, gid, &uids, &gids))
        .transpose()?;
    unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS).context(
        "unshare(CLONE_NEWUSER | CLONE_NEWNS) (does this kernel let unprivileged users create \
         user namespaces? see sysctl user.max_user_namespaces)",
    )?;
    let mapped = match helper {
        Some(helper) => helper.release_and_wait(),
        None => OwnMapping::OwnIdOnly,
    };
    if mapped == OwnMapping::OwnIdOnly {
        map_own_ids_only(uid, gid)?;
    }
    // Our mounts (a rootless engine's overlays) stay in our namespace.
    lab01::make_mounts_private()?;
    Ok(mapped)
}
// ANCHOR_END: enter_own

/// The child that runs `newuidmap` and `newgidmap` for its parent, once
/// the parent has unshared: its PID and the pipe that tells it to go.
struct IdMapHelper {
    pid: Pid,
    go: fs::File,
}

/// Fork the helper. It waits for a byte on a pipe (EOF: the parent failed
/// to unshare, nothing to do), then maps the parent: 0 inside to its own
/// ID, 1.. to the range.
fn fork_id_map_helper(
    uid: u32,
    gid: u32,
    uids: &IdMapping,
    gids: &IdMapping,
) -> anyhow::Result<IdMapHelper> {
    let (go_r, go_w) =
        pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("pipe2 for the ID-map helper")?;
    let parent = getpid();
    // SAFETY: the caller is single-threaded (see enter_own_user_namespace).
    match unsafe { fork() }.context("fork for the ID-map helper")? {
        ForkResult::Child => {
            drop(go_w);
            let mut byte = [0u8; 1];
            let unshared = fs::File::from(go_r)
                .read(&mut byte)
                .map(|n| n == 1)
                .unwrap_or(false);
            let ok = unshared
                && run_id_map_tool("newuidmap", parent, uid, uids)
                && run_id_map_tool("newgidmap", parent, gid, gids);
            // SAFETY: leaving the forked copy without running the parent's
            // exit handlers.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) }
        }
        ForkResult::Parent { child } => {
            drop(go_r);
            Ok(IdMapHelper {
                pid: child,
                go: fs::File::from(go_w),
            })
        }
    }
}

/// `newuidmap PID 0 OWN 1 1 START COUNT` (or newgidmap): whether it worked.
fn run_id_map_tool(tool: &str, pid: Pid, own: u32, range: &IdMapping) -> bool {
    std::process::Command::new(tool)
        .arg(pid.to_string())
        .args(["0", &own.to_string(), "1"])
        .args(["1", &range.host_id.to_string(), &range.count.to_string()])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

impl IdMapHelper {
    /// Tell the helper we have unshared, and wait for its verdict.
    fn release_and_wait(mut self) -> OwnMapping {
        let _ = self.go.write_all(b"u");
        drop(self.go);
        match nix::sys::wait::waitpid(self.pid, None) {
            Ok(nix::sys::wait::WaitStatus::Exited(_, 0)) => OwnMapping::WithRanges,
            _ => OwnMapping::OwnIdOnly,
        }
    }
}

/// Map 0 inside to our own uid and gid, one ID each, from inside: an
/// unprivileged process may write its own maps, this one line each. It may
/// map its gid only once it has given up setgroups(2) in the namespace
/// (see `write_id_maps` for why).
fn map_own_ids_only(uid: u32, gid: u32) -> anyhow::Result<()> {
    let write = |file: &str, text: String| {
        fs::write(file, &text).with_context(|| format!("writing {text:?} to {file}"))
    };
    write("/proc/self/setgroups", "deny".into())?;
    write("/proc/self/uid_map", format!("0 {uid} 1\n"))?;
    write("/proc/self/gid_map", format!("0 {gid} 1\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_mapping_parses_host_id_and_count() {
        let m: IdMapping = "200000:1000".parse().unwrap();
        assert_eq!(
            m,
            IdMapping {
                host_id: 200_000,
                count: 1000
            }
        );
        assert_eq!(m.map_line(), "0 200000 1000\n");
        // Cut where the writer's own map is cut (a rootless engine's).
        let dir = std::env::temp_dir().join(format!("lab02-map-{}", std::process::id()));
        fs::write(&dir, "0 1000 1\n1 100000 65536\n").unwrap();
        let all = IdMapping {
            host_id: 0,
            count: 65537,
        };
        assert_eq!(
            split_by_own_map(&all, dir.to_str().unwrap()),
            "0 0 1\n1 1 65536\n"
        );
        assert_eq!(
            split_by_own_map(&m, dir.to_str().unwrap()),
            "0 200000 1000\n"
        );
        fs::remove_file(&dir).unwrap();
        assert!("200000".parse::<IdMapping>().is_err());
        assert!("200000:0".parse::<IdMapping>().is_err());
        assert!("x:1".parse::<IdMapping>().is_err());
    }
}
