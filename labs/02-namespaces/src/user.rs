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
//!
//! Root is a user like any other here: docker gives it the groups the
//! image's `/etc/group` lists it in (alpine's `wheel:x:10:root`), so that
//! `id` in the container shows them (`groups=0(root),...,10(wheel)`). And
//! root is switched to like any other user, even when nothing seems to
//! change (uid 0, gid 0, group 0 alone, as in our busybox image): otherwise
//! the command keeps the gid and groups of whoever ran dockyard.

use std::fs;
use std::os::fd::OwnedFd;
use std::path::Path;

use anyhow::{bail, Context};

use crate::security;

/// Who a container's command runs as. (Serializable: the engine records
/// whom a container's first process started as, for its `exec`s.)
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RunAs {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
}

impl RunAs {
    /// The one answer to "who does `user` (docker's `-u`, or an image's
    /// `USER`) run as?", for `rootfs`'s image: [`resolve_user`]'s answer,
    /// the empty string (no `-u`, no `USER`) being uid 0.
    ///
    /// Root gets its groups as docker gives them (moby's `getUser` over
    /// moby/sys/user's `GetExecUser`): the empty string, `root` and `0` are
    /// matched in the image's passwd (uid 0 for the empty string), and the
    /// groups whose member list names the user found are its supplementary
    /// groups: with `wheel:x:10:root` and `adm:x:4:root,adm` there, `docker
    /// run IMAGE id` shows `uid=0(root) gid=0(root)
    /// groups=0(root),4(adm),10(wheel)`, and so do `-u root` and `-u 0`.
    /// With the group said (`0:0`, `root:wheel`) docker looks no member
    /// list up.
    ///
    /// There is always a switch, root's too, and the primary gid is always
    /// among the groups (`groups=0(root)` for root in our busybox image).
    /// Without the switch the command would keep whatever gid and groups
    /// the caller of dockyard had (`sg daemon -c 'dockyard run busybox id'`
    /// showed `gid=1 groups=1`). And a group that is only the primary one
    /// can be dropped by a setgid program (change the gid, and the group is
    /// gone), which escapes a file's deny-by-group mode: moby fixed the
    /// same (CVE-2022-36109) by always putting the gid in the list.
    ///
    /// One answer for every caller (the engine's run and exec, the
    /// builder's RUN steps), so that they cannot disagree.
    pub fn lookup(rootfs: &Path, user: &str) -> anyhow::Result<RunAs> {
        // The empty string is uid 0, not "root": an image without an
        // /etc/passwd still runs as root, as in docker.
        resolve_user(rootfs, if user.is_empty() { "0" } else { user })
    }
}

// ANCHOR: run_as
/// Become `u`: supplementary groups, then the gid, then the uid. The order
/// matters: each step needs CAP_SETGID or CAP_SETUID, and once the uid is
/// not 0 the kernel takes the capabilities away (which is why a container
/// started with `-u 1000` has none, as in docker).
pub fn switch_user(u: &RunAs) -> anyhow::Result<()> {
    use nix::unistd::{setresgid, setresuid, Gid, Uid};
    set_groups(u)?;
    let gid = Gid::from_raw(u.gid);
    setresgid(gid, gid, gid).with_context(|| format!("setresgid({})", u.gid))?;
    let uid = Uid::from_raw(u.uid);
    setresuid(uid, uid, uid).with_context(|| format!("setresuid({})", u.uid))?;
    Ok(())
}
// ANCHOR_END: run_as

/// setgroups(2) with `u`'s supplementary groups, where the user namespace
/// we are in lets us have them:
///
/// - Where `/proc/self/setgroups` says `deny`, the kernel refuses
///   setgroups(2) to everyone, root of the namespace included: rootless
///   dockyard without subordinate ranges is such a namespace (an
///   unprivileged process wrote its `gid_map`, see `userns::write_id_maps`),
///   and each container's namespace below it inherits the `deny`. The
///   process keeps the groups it has, as runc does there (its `setupUser`
///   skips setgroups when it is denied). Failing would stop every root
///   container of such an engine whose image's `/etc/group` lists root,
///   since root gets those groups.
/// - A gid that the namespace's `gid_map` does not map cannot be held at
///   all: one in the list and the kernel refuses the whole call (EINVAL).
///   Root's groups come unasked from the image's `/etc/group`, so for root
///   such a gid (a group above a `--userns-remap` or rootless range) is left
///   out rather than failing the container; for another user the list is
///   what it is, and an unmapped group is an error, as with runc.
///
/// Without `/proc` to read (a bare rootfs), the call is made as it is.
fn set_groups(u: &RunAs) -> anyhow::Result<()> {
    use nix::unistd::{setgroups, Gid};
    let denied = fs::read_to_string("/proc/self/setgroups").is_ok_and(|s| s.trim() == "deny");
    if denied {
        return Ok(());
    }
    let mut groups = u.groups.clone();
    if u.uid == 0 {
        if let Ok(map) = fs::read_to_string("/proc/self/gid_map") {
            groups.retain(|g| id_mapped(&map, *g));
        }
    }
    let groups: Vec<Gid> = groups.into_iter().map(Gid::from_raw).collect();
    setgroups(&groups).with_context(|| format!("setgroups({:?})", u.groups))
}

/// Whether `id` falls inside one line (`inside outside count`) of a
/// `uid_map` or `gid_map` as the namespace's own processes read it: the
/// first column is the namespace's own IDs.
fn id_mapped(map: &str, id: u32) -> bool {
    map.lines().any(|line| {
        let mut f = line.split_whitespace().map(|n| n.parse::<u64>().ok());
        match (f.next().flatten(), f.next().flatten(), f.next().flatten()) {
            (Some(inside), Some(_), Some(count)) => {
                (inside..inside + count).contains(&u64::from(id))
            }
            _ => false,
        }
    })
}

/// The most of `/etc/passwd` or `/etc/group` we read: far more than any real
/// one (a line is some 50 bytes), far less than would hurt us.
pub const ACCOUNT_FILE_LIMIT: u64 = 4 << 20;

// ANCHOR: account_file
/// Read the image's `/etc/passwd` or `/etc/group` (`path`) from inside
/// `root`; empty when it does not exist.
///
/// The file belongs to the image, or to the running container (`exec -u`
/// reads it through `/proc/PID/root`), and both are hostile ground for a
/// program that runs as root on the host. So:
///
/// - the path is resolved inside the root (openat2 RESOLVE_IN_ROOT): a
///   symlink to `/etc/shadow` is the container's shadow, never the host's;
/// - it is opened with O_NONBLOCK, so that a FIFO there does not hang us in
///   open(2) waiting for a writer that never comes (and O_NOCTTY, O_CLOEXEC);
/// - it must be a regular file: `/dev/zero` (a symlink to it resolves to the
///   container's own `/dev/zero`) never ends, and a device may do worse;
/// - it is read up to [`ACCOUNT_FILE_LIMIT`], no further.
///
/// runc reads these files the same way, from inside the container.
fn read_account_file(root: &OwnedFd, path: &str) -> anyhow::Result<String> {
    use std::io::Read;
    use std::os::unix::fs::FileTypeExt;
    let flags = libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC;
    let fd = match security::open_in_root(root, Path::new(path), flags) {
        Ok(fd) => fd,
        Err(nix::errno::Errno::ENOENT) => return Ok(String::new()),
        Err(e) => return Err(e).with_context(|| format!("opening {path} in the container")),
    };
    let file = fs::File::from(fd);
    let kind = file
        .metadata()
        .with_context(|| format!("fstat of {path} in the container"))?
        .file_type();
    if !kind.is_file() {
        let what = match () {
            _ if kind.is_dir() => "a directory",
            _ if kind.is_fifo() => "a FIFO",
            _ if kind.is_char_device() => "a character device",
            _ if kind.is_block_device() => "a block device",
            _ if kind.is_socket() => "a socket",
            _ => "not a regular file",
        };
        bail!("{path} in the container is {what}, not a regular file: refusing to read it");
    }
    let mut text = String::new();
    file.take(ACCOUNT_FILE_LIMIT + 1)
        .read_to_string(&mut text)
        .with_context(|| format!("reading {path} in the container"))?;
    if text.len() as u64 > ACCOUNT_FILE_LIMIT {
        bail!(
            "{path} in the container is larger than {} MiB: refusing to read it",
            ACCOUNT_FILE_LIMIT >> 20
        );
    }
    Ok(text)
}
// ANCHOR_END: account_file

/// The home directory of `user` (docker's `-u` forms; empty is root) in the
/// image's `/etc/passwd`, else `/`, as runc sets `HOME` when it switches to
/// the user. The file is read as [`read_account_file`] reads it: inside the
/// root, regular files only, size-limited; a hostile passwd is an error,
/// never a hang.
pub fn home_dir(rootfs: &Path, user: &str) -> anyhow::Result<String> {
    let root = OwnedFd::from(
        fs::File::open(rootfs).with_context(|| format!("opening {}", rootfs.display()))?,
    );
    let passwd = read_account_file(&root, "/etc/passwd")?;
    let name = user.split(':').next().unwrap_or_default();
    let name = if name.is_empty() { "0" } else { name };
    // name:x:uid:gid:gecos:home:shell
    Ok(passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 6 && (f[0] == name || f[2] == name))
        .map(|f| f[5].to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "/".into()))
}

/// Resolve docker's `-u` forms (`uid`, `uid:gid`, `name`, `name:group`)
/// against the image's `/etc/passwd` and `/etc/group`, read inside the
/// rootfs (see [`read_account_file`]). A user's supplementary groups are
/// its own gid and, when no group is said, the groups that list its name. A
/// uid the passwd file does not know runs with gid 0 (or the group said),
/// which is its one group (`docker run -u 4242 busybox id`: `uid=4242
/// gid=0(root) groups=0(root)`).
pub fn resolve_user(rootfs: &Path, user: &str) -> anyhow::Result<RunAs> {
    let root = OwnedFd::from(
        fs::File::open(rootfs).with_context(|| format!("opening {}", rootfs.display()))?,
    );
    let passwd = read_account_file(&root, "/etc/passwd")?;
    let group = read_account_file(&root, "/etc/group")?;
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
        (Ok(n), None) => (n, 0, None),
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
    // The primary gid is always a group (see `RunAs::lookup` for why); a
    // known user also has, unless the group was said (`app:staff`, `0:0`),
    // those that list its name: docker's `-u app:staff` runs with
    // `groups=50(staff)` alone, as moby/sys/user's GetExecUser looks the
    // member lists up only for a user without a group.
    let mut groups = vec![gid];
    if let (Some(name), None) = (name, g) {
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

/// `docker run --group-add`'s groups as gids, as runc's
/// `GetAdditionalGroups` finds them: each a name or a gid of the image's
/// `/etc/group`, or, if it has no such line, a number taken as it is; a
/// name it lacks is an error in runc's words.
pub fn additional_groups(rootfs: &Path, wanted: &[String]) -> anyhow::Result<Vec<u32>> {
    let root = OwnedFd::from(
        fs::File::open(rootfs).with_context(|| format!("opening {}", rootfs.display()))?,
    );
    let group = read_account_file(&root, "/etc/group")?;
    let mut gids = Vec::new();
    for want in wanted {
        let found = group
            .lines()
            .map(|l| l.split(':').collect::<Vec<_>>())
            .filter(|f| f.len() >= 3)
            .find(|f| f[0] == want || f[2] == want)
            .and_then(|f| f[2].parse::<u32>().ok());
        let gid = match (found, want.parse::<u32>()) {
            (Some(gid), _) | (None, Ok(gid)) => gid,
            (None, Err(_)) => {
                bail!("unable to find group {want}: no matching entries in group file")
            }
        };
        if !gids.contains(&gid) {
            gids.push(gid);
        }
    }
    Ok(gids)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An image with a passwd and a group file, in a temporary directory.
    fn image() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("etc")).unwrap();
        fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
        )
        .unwrap();
        fs::write(
            dir.path().join("etc/group"),
            "root:x:0:\nadm:x:4:root,adm\nwheel:x:10:root,app\napp:x:1000:\nstaff:x:50:app\n",
        )
        .unwrap();
        dir
    }

    #[test]
    fn root_gets_the_groups_that_list_it_unless_a_group_is_said() {
        let image = image();
        // As docker's `id`: uid=0(root) gid=0(root) groups=0(root),4(adm),10(wheel).
        let with_groups = RunAs {
            uid: 0,
            gid: 0,
            groups: vec![0, 4, 10],
        };
        for root in ["", "root", "0"] {
            let found = RunAs::lookup(image.path(), root).unwrap();
            assert_eq!(found, with_groups, "{root:?}");
        }
        // A group said: no member lists read, the gid alone.
        for user in ["0:0", "root:root"] {
            assert_eq!(
                RunAs::lookup(image.path(), user).unwrap(),
                root(),
                "{user:?}"
            );
        }
        let wheel = RunAs::lookup(image.path(), "root:wheel").unwrap();
        assert_eq!((wheel.uid, wheel.gid, wheel.groups), (0, 10, vec![10]));
        let staff = RunAs::lookup(image.path(), "app:staff").unwrap();
        assert_eq!((staff.uid, staff.gid, staff.groups), (1000, 50, vec![50]));
    }

    /// Root as docker's `id` shows it in our busybox image:
    /// `uid=0(root) gid=0(root) groups=0(root)`.
    fn root() -> RunAs {
        RunAs {
            uid: 0,
            gid: 0,
            groups: vec![0],
        }
    }

    #[test]
    fn root_with_no_group_of_its_own_has_its_gid_alone_and_is_still_switched() {
        let image = image();
        // Our busybox image's /etc/group: no member lists.
        fs::write(
            image.path().join("etc/group"),
            "root:x:0:\nnogroup:x:65534:\n",
        )
        .unwrap();
        for user in ["", "root", "0", "0:0", "root:root"] {
            assert_eq!(
                RunAs::lookup(image.path(), user).unwrap(),
                root(),
                "{user:?}"
            );
        }
        // No passwd at all: the empty user and 0 are still root, as in
        // docker; the name `root` is not found (docker's error too).
        fs::remove_file(image.path().join("etc/passwd")).unwrap();
        for user in ["", "0", "0:0"] {
            assert_eq!(
                RunAs::lookup(image.path(), user).unwrap(),
                root(),
                "{user:?}"
            );
        }
        let err = RunAs::lookup(image.path(), "root").unwrap_err();
        assert!(
            err.to_string().contains("unable to find user root"),
            "{err}"
        );
    }

    #[test]
    fn a_gid_counts_as_mapped_inside_one_line_of_the_map() {
        let host = "         0          0 4294967295\n";
        assert!(id_mapped(host, 0) && id_mapped(host, 70_000));
        // Rootless with ranges: 0 is the user, 1..=65536 a subordinate range.
        let rootless = "0 1000 1\n1 100000 65536\n";
        assert!(id_mapped(rootless, 0) && id_mapped(rootless, 10) && id_mapped(rootless, 65_536));
        assert!(!id_mapped(rootless, 65_537));
        // Own uid only: root alone.
        assert!(!id_mapped("0 1000 1\n", 10));
    }

    #[test]
    fn other_users_are_resolved_in_the_image() {
        let image = image();
        let app = RunAs::lookup(image.path(), "app").unwrap();
        assert_eq!(
            app,
            RunAs {
                uid: 1000,
                gid: 1000,
                groups: vec![1000, 10, 50]
            }
        );
        assert_eq!(app, resolve_user(image.path(), "app").unwrap());
        let by_number = RunAs::lookup(image.path(), "1000:50").unwrap();
        assert_eq!((by_number.uid, by_number.gid), (1000, 50));
        // Root with another group is a switch: the group changes.
        let wheel = RunAs::lookup(image.path(), "root:wheel").unwrap();
        assert_eq!((wheel.uid, wheel.gid), (0, 10));
        // A uid the image does not know is still a uid, with gid 0, as in
        // docker; with a group given, that group.
        let unknown = RunAs::lookup(image.path(), "4242").unwrap();
        assert_eq!(
            (unknown.uid, unknown.gid, unknown.groups),
            (4242, 0, vec![0])
        );
        let unknown = RunAs::lookup(image.path(), "4242:50").unwrap();
        assert_eq!(
            (unknown.uid, unknown.gid, unknown.groups),
            (4242, 50, vec![50])
        );
        let err = RunAs::lookup(image.path(), "nobody-here").unwrap_err();
        assert!(err.to_string().contains("unable to find user"), "{err}");
    }

    #[test]
    fn hostile_account_files_are_refused_promptly() {
        let image = image();
        let passwd = image.path().join("etc/passwd");
        // A symlink to a device that never ends, resolved inside the image.
        fs::create_dir(image.path().join("dev")).unwrap();
        fs::remove_file(&passwd).unwrap();
        std::os::unix::fs::symlink("/dev/zero", &passwd).unwrap();
        nix::sys::stat::mknod(
            &image.path().join("dev/zero"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o666),
            nix::sys::stat::makedev(1, 5),
        )
        .unwrap();
        let start = std::time::Instant::now();
        let err = RunAs::lookup(image.path(), "app").unwrap_err();
        assert!(err.to_string().contains("a character device"), "{err}");
        // A FIFO with no writer: open(2) would wait forever without O_NONBLOCK.
        fs::remove_file(&passwd).unwrap();
        nix::unistd::mkfifo(&passwd, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        let err = RunAs::lookup(image.path(), "1000").unwrap_err();
        assert!(err.to_string().contains("a FIFO"), "{err}");
        // Too big to be an honest passwd file (sparse: no disk used).
        fs::remove_file(&passwd).unwrap();
        let big = fs::File::create(&passwd).unwrap();
        big.set_len(ACCOUNT_FILE_LIMIT + 1).unwrap();
        let err = RunAs::lookup(image.path(), "app").unwrap_err();
        assert!(err.to_string().contains("larger than"), "{err}");
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
        // No passwd at all: numbers still work, names do not.
        fs::remove_file(&passwd).unwrap();
        assert_eq!(RunAs::lookup(image.path(), "7").unwrap().uid, 7);
        assert!(RunAs::lookup(image.path(), "app").is_err());
    }
}
