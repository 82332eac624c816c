//! `--userns-remap`: every container's root is an unprivileged range of the host.
//!
//! Without it, root in a container *is* root on the host, held in by the
//! capabilities it lost, the seccomp filter, the masked paths and the rest of
//! the security layer. One hole in those and it is root everywhere. With a
//! user namespace (lab 02), uid 0 inside is, say, uid 100000 outside: a file
//! it creates belongs to 100000, a host file owned by root is "nobody" to it,
//! and the capabilities it keeps (CHOWN, DAC_OVERRIDE, ...) belong to its user
//! namespace, so they work on what that namespace owns (its mounts, its
//! network namespace, files owned by the range) and on nothing of the host's.
//!
//! The setting is Docker's (`dockerd --userns-remap`, daemon.json's
//! `"userns-remap"`), taken here as a global flag or from daemon.json since
//! dockyard has no daemon:
//!
//! | value        | whose ranges                                        |
//! |--------------|-----------------------------------------------------|
//! | `default`    | the user and group `dockremap`, created if missing   |
//! | `USER`       | that user's, and the group of the same name          |
//! | `USER:GROUP` | the user's uids, the group's gids                    |
//! | `UID[:GID]`  | the same, by number                                  |
//!
//! The ranges come from `/etc/subuid` and `/etc/subgid` (`NAME:START:COUNT`
//! lines, the files `newuidmap(1)` reads too). The first range of the user is
//! used. As in Docker, the data root becomes `<root>/<uid>.<gid>`: its layers
//! are unpacked with their owners shifted into the range (lab 04's
//! `IdShift`), so images must be loaded or pulled again there.
//!
//! The shell equivalent of one remapped container's ID maps:
//!
//! ```text
//! grep dockremap /etc/subuid            # dockremap:100000:65536
//! unshare --user --map-users=0:100000:65536 --map-groups=0:100000:65536 ...
//! ```

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use lab02_namespaces::IdMapping;

/// The user (and group) that `--userns-remap default` means, as in Docker.
pub const DEFAULT_USER: &str = "dockremap";
/// Where subordinate uid and gid ranges are listed.
pub const SUBUID: &str = "/etc/subuid";
pub const SUBGID: &str = "/etc/subgid";

/// A resolved `--userns-remap` setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remap {
    /// As given (`default`, `dockremap`, `1000:1000`...).
    pub setting: String,
    /// Host uids that uids 0.. inside become.
    pub uids: IdMapping,
    /// Host gids that gids 0.. inside become.
    pub gids: IdMapping,
}

impl Remap {
    /// Resolve `setting` against the host's users and subordinate ranges,
    /// creating `dockremap` first for `default`.
    pub fn resolve(setting: &str) -> Result<Remap> {
        Remap::resolve_in(setting, Path::new(SUBUID), Path::new(SUBGID))
    }

    fn resolve_in(setting: &str, subuid: &Path, subgid: &Path) -> Result<Remap> {
        let (user, group) = match setting.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (setting, None),
        };
        if user.is_empty() || group == Some("") {
            bail!("userns-remap {setting:?}: expected default, USER, USER:GROUP, UID or UID:GID");
        }
        let (user, group) = if setting == "default" {
            ensure_default_user(subuid, subgid)?;
            (DEFAULT_USER, Some(DEFAULT_USER))
        } else {
            (user, group)
        };
        // Each side is matched in the files by name and by number, as
        // newuidmap does: `dockremap:100000:65536` or `999:100000:65536`.
        let (user_name, uid) = lookup_user(user)?;
        let (group_name, gid) = lookup_group(group.unwrap_or(user), group.is_none(), &user_name)?;
        let uids = first_range(subuid, &user_name, uid)?.with_context(|| {
            format!(
                "userns-remap {setting:?}: no subordinate uid range for {user_name} in {} \
                 (add a line like {user_name}:100000:65536)",
                subuid.display()
            )
        })?;
        let gids = first_range(subgid, &group_name, gid)?.with_context(|| {
            format!(
                "userns-remap {setting:?}: no subordinate gid range for {group_name} in {} \
                 (add a line like {group_name}:100000:65536)",
                subgid.display()
            )
        })?;
        Ok(Remap {
            setting: setting.to_string(),
            uids,
            gids,
        })
    }

    /// Lab 04's view of the same ranges: how layer owners are shifted.
    pub fn id_shift(&self) -> lab04_overlay::IdShift {
        lab04_overlay::IdShift {
            uid: self.uids.host_id,
            uid_count: self.uids.count,
            gid: self.gids.host_id,
            gid_count: self.gids.count,
        }
    }

    // ANCHOR: data_root
    /// Docker's remapped data root, `<root>/<uid>.<gid>`, made reachable by
    /// the remapped root.
    ///
    /// The container's root filesystem is an overlay mounted below the data
    /// root, and the container's processes (uid 100000 on the host) must be
    /// able to walk down to it: `pivot_root` and every path lookup happen
    /// with their credentials. So, as Docker's `setupDaemonRoot` does, the
    /// data root and the remapped root below it are mode 0710, owned by
    /// root and the remapped root's *group*: searchable by the range's gid
    /// and by nobody else, never listable. Every directory above must let
    /// anybody through (o+x), or the start would fail later with a puzzling
    /// EACCES; that is checked now.
    pub fn data_root(&self, base: &Path) -> Result<PathBuf> {
        let remapped = base.join(format!("{}.{}", self.uids.host_id, self.gids.host_id));
        for dir in [base, remapped.as_path()] {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating data root {}", dir.display()))?;
            nix::unistd::chown(
                dir,
                Some(nix::unistd::Uid::from_raw(0)),
                Some(nix::unistd::Gid::from_raw(self.gids.host_id)),
            )
            .with_context(|| format!("chown of {} to the remapped group", dir.display()))?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o710))
                .with_context(|| format!("chmod 0710 {}", dir.display()))?;
        }
        let canonical = base
            .canonicalize()
            .with_context(|| format!("resolving {}", base.display()))?;
        for dir in canonical.ancestors().skip(1) {
            let meta = std::fs::metadata(dir).with_context(|| format!("{}", dir.display()))?;
            if meta.mode() & 0o001 == 0 {
                bail!(
                    "{} restricts access to the remapped root ({}:{}): containers could not \
                     reach their root filesystem below it; allow o+x on it (chmod o+x), or \
                     choose another --root",
                    dir.display(),
                    self.uids.host_id,
                    self.gids.host_id
                );
            }
        }
        Ok(remapped)
    }
    // ANCHOR_END: data_root

    /// Give `path` to the container's root (host uid and gid of root
    /// inside): what Docker does for the files it makes for a container,
    /// such as a volume's `_data` and `/etc/hosts`.
    pub fn chown_to_root(&self, path: &Path) -> Result<()> {
        nix::unistd::chown(
            path,
            Some(nix::unistd::Uid::from_raw(self.uids.host_id)),
            Some(nix::unistd::Gid::from_raw(self.gids.host_id)),
        )
        .with_context(|| format!("chown of {} to the remapped root", path.display()))
    }
}

/// `name` or a number, looked up in the host's passwd: (name, uid). A
/// number with no entry is kept as it is, and its ranges are looked up by
/// number (Docker insists on an entry; /etc/subuid does not need one).
fn lookup_user(user: &str) -> Result<(String, Option<u32>)> {
    if let Ok(uid) = user.parse::<u32>() {
        let name = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_else(|| uid.to_string());
        return Ok((name, Some(uid)));
    }
    match nix::unistd::User::from_name(user) {
        Ok(Some(u)) => Ok((u.name, Some(u.uid.as_raw()))),
        _ => bail!("userns-remap: no such user: {user} (not in /etc/passwd)"),
    }
}

/// The group, the same way. With only a USER given, the group is the
/// user's name, found in /etc/group or not.
fn lookup_group(group: &str, implied: bool, user_name: &str) -> Result<(String, Option<u32>)> {
    if let Ok(gid) = group.parse::<u32>() {
        let name = nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid))
            .ok()
            .flatten()
            .map(|g| g.name)
            .unwrap_or_else(|| gid.to_string());
        return Ok((name, Some(gid)));
    }
    match nix::unistd::Group::from_name(group) {
        Ok(Some(g)) => Ok((g.name, Some(g.gid.as_raw()))),
        _ if implied => Ok((user_name.to_string(), None)),
        _ => bail!("userns-remap: no such group: {group} (not in /etc/group)"),
    }
}

/// The first `NAME:START:COUNT` line of `file` for `name` (or its number).
pub(crate) fn first_range(file: &Path, name: &str, id: Option<u32>) -> Result<Option<IdMapping>> {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", file.display())),
    };
    Ok(parse_ranges(&text)
        .into_iter()
        .find(|(who, _)| who == name || Some(who.as_str()) == id.map(|i| i.to_string()).as_deref())
        .map(|(_, m)| m))
}

/// Every well-formed line of a subuid or subgid file.
fn parse_ranges(text: &str) -> Vec<(String, IdMapping)> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let mut f = l.trim().split(':');
            let (who, start, count) = (f.next()?, f.next()?, f.next()?);
            let host_id = start.parse().ok()?;
            let count = count.parse().ok().filter(|c| *c > 0)?;
            Some((who.to_string(), IdMapping { host_id, count }))
        })
        .collect()
}

/// The first 65536 IDs from 100000 up that no line of `text` uses.
fn free_range(text: &str) -> IdMapping {
    let ranges = parse_ranges(text);
    let mut start: u64 = 100_000;
    loop {
        let end = start + 65_536;
        match ranges.iter().find(|(_, m)| {
            let (s, e) = (m.host_id as u64, m.host_id as u64 + m.count as u64);
            s < end && start < e
        }) {
            Some((_, m)) => start = m.host_id as u64 + m.count as u64,
            None => {
                return IdMapping {
                    host_id: start as u32,
                    count: 65_536,
                }
            }
        }
    }
}

// ANCHOR: dockremap
/// `default`: Docker's `dockremap` user, made once, as dockerd makes it:
/// `useradd -r -s /bin/false dockremap` (a system account nobody can log
/// in as), then a free range of 65536 IDs in /etc/subuid and /etc/subgid
/// unless it has one already.
fn ensure_default_user(subuid: &Path, subgid: &Path) -> Result<()> {
    if !matches!(nix::unistd::User::from_name(DEFAULT_USER), Ok(Some(_))) {
        let status = std::process::Command::new("useradd")
            .args(["-r", "-s", "/bin/false", DEFAULT_USER])
            .status()
            .context(
                "running useradd to create the dockremap user (is the passwd package installed?)",
            )?;
        if !status.success() {
            bail!("useradd -r -s /bin/false {DEFAULT_USER} failed ({status})");
        }
    }
    for file in [subuid, subgid] {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        if parse_ranges(&text)
            .iter()
            .any(|(who, _)| who == DEFAULT_USER)
        {
            continue;
        }
        let r = free_range(&text);
        let mut new = text.clone();
        if !new.is_empty() && !new.ends_with('\n') {
            new.push('\n');
        }
        new.push_str(&format!("{DEFAULT_USER}:{}:{}\n", r.host_id, r.count));
        std::fs::write(file, new)
            .with_context(|| format!("adding a range to {}", file.display()))?;
    }
    Ok(())
}
// ANCHOR_END: dockremap

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_matched_by_name_or_number() {
        let dir = tempfile::tempdir().unwrap();
        let (u, g) = (dir.path().join("subuid"), dir.path().join("subgid"));
        std::fs::write(&u, "# comment\nroot:100000:65536\n64123:300000:1000\n").unwrap();
        std::fs::write(&g, "64124:400000:2000\nbad line\n").unwrap();
        let r = Remap::resolve_in("64123:64124", &u, &g).unwrap();
        assert_eq!(
            (r.uids, r.gids),
            (
                IdMapping {
                    host_id: 300_000,
                    count: 1000
                },
                IdMapping {
                    host_id: 400_000,
                    count: 2000
                }
            )
        );
        let r = Remap::resolve_in("root", &u, &g);
        assert!(r
            .unwrap_err()
            .to_string()
            .contains("no subordinate gid range"));
        assert!(Remap::resolve_in("no-such-user-xyz", &u, &g).is_err());
        assert!(Remap::resolve_in("1:", &u, &g).is_err());
    }

    #[test]
    fn a_free_range_avoids_every_line() {
        assert_eq!(free_range("").host_id, 100_000);
        assert_eq!(free_range("a:100000:65536\n").host_id, 165_536);
        assert_eq!(
            free_range("a:165536:10\nb:100000:65536\nc:300000:1\n").host_id,
            165_546
        );
    }
}
