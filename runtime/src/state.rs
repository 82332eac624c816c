//! # A container's state, kept between commands
//!
//! Each command is a separate process: `create` exits while the container
//! lives on, and `start`, `kill` or `delete` must find it again by its ID.
//! So the runtime keeps one directory per container under `--root`, as
//! runc does:
//!
//! ```text
//! /run/dockyard-runtime/ID/state.json    what create learned (pid, bundle, cgroup)
//! /run/dockyard-runtime/ID/exec.fifo     exists from create until start
//! ```
//!
//! Two commands on one container may run at once (a shim's `kill` while
//! the kubelet's `delete --force` comes in): each command that changes a
//! container holds `flock(LOCK_EX)` on its directory ([`Lock`]), so they
//! take turns, and the second finds what the first left (a container
//! gone is "does not exist", never half a state directory).
//!
//! `state.json` is written atomically (a temporary file, then rename(2)),
//! so a concurrent `state` never reads half of it. The *status* is not
//! stored but observed each time, as runc does: a PID that is gone (or a
//! zombie, or a different process that reuses the number, told apart by
//! its start time) is `stopped`; an exec fifo still there is `created`; a
//! frozen cgroup is `paused`; anything else is `running`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

/// What `create` records about a container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub pid: i32,
    /// The start time of `pid` (field 22 of /proc/PID/stat), which tells
    /// our process from a later one that reuses its number.
    pub start_time: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub annotations: BTreeMap<String, String>,
    /// The container's cgroup, `<parent>/<name>` (lab 03's naming).
    pub cgroup: Option<(String, String)>,
    /// The config, as create read it: poststop hooks, exec's defaults.
    pub config: serde_json::Value,
}

/// The OCI state (runtime-spec `state.md`) plus runc's extra fields.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OciState<'a> {
    pub oci_version: String,
    pub id: &'a str,
    pub status: Status,
    pub pid: i32,
    pub bundle: &'a Path,
    pub rootfs: &'a Path,
    pub created: &'a str,
    pub owner: &'a str,
    pub annotations: &'a BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

/// The state directory of `id` under `root`. IDs are path components: no
/// `/`, no `..`, nothing a caller could use to reach outside `root`.
pub fn dir(root: &Path, id: &str) -> anyhow::Result<PathBuf> {
    let ok = !id.is_empty()
        && id != "."
        && id != ".."
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+-.".contains(c));
    if !ok {
        bail!("invalid container id {id:?}: use letters, digits and _+-.");
    }
    Ok(root.join(id))
}

// ANCHOR: lock
/// `flock(LOCK_EX)` on a container's state directory, held until dropped
/// (`flock -x /run/dockyard-runtime/ID CMD`, from a shell). The descriptor
/// is close-on-exec, and the container's process closes it before it
/// waits for `start`, so only the command holds it. The relay that `exec`
/// forks shares it until the exec'd process is born (see `exec`).
pub struct Lock {
    _dir: fs::File,
}

impl Lock {
    /// Wait for the directory of `id`, then check that it is still the one
    /// at the path: the holder before us may have deleted it (and a create
    /// made a new one under the same ID).
    pub fn exclusive(root: &Path, id: &str) -> anyhow::Result<Lock> {
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::MetadataExt;
        let path = dir(root, id)?;
        loop {
            let f = match fs::File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    bail!("container {id:?} does not exist")
                }
                Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
            };
            // SAFETY: flock on a descriptor we own.
            let ret = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
            nix::errno::Errno::result(ret)
                .with_context(|| format!("flock(LOCK_EX) on {}", path.display()))?;
            let held = f.metadata()?;
            match fs::metadata(&path) {
                Ok(now) if now.ino() == held.ino() && now.dev() == held.dev() => {
                    return Ok(Lock { _dir: f })
                }
                Ok(_) => continue, // deleted and made anew meanwhile
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    bail!("container {id:?} does not exist")
                }
                Err(e) => return Err(e).with_context(|| format!("stat {}", path.display())),
            }
        }
    }
}
// ANCHOR_END: lock

/// Write `value` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("renaming into {}", path.display()))
}

impl Record {
    pub fn load(root: &Path, id: &str) -> anyhow::Result<Record> {
        let path = dir(root, id)?.join("state.json");
        let text = match fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                bail!("container {id:?} does not exist")
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        serde_json::from_slice(&text).with_context(|| format!("parsing {}", path.display()))
    }

    pub fn save(&self, root: &Path) -> anyhow::Result<()> {
        let path = dir(root, &self.id)?.join("state.json");
        write_atomic(&path, &serde_json::to_vec(self)?)
    }

    /// The status, observed now (see the module documentation).
    pub fn status(&self, root: &Path) -> Status {
        if self.pid <= 0 || !alive(self.pid, self.start_time) {
            return Status::Stopped;
        }
        if dir(root, &self.id).is_ok_and(|d| d.join("exec.fifo").exists()) {
            return Status::Created;
        }
        if let (Some((parent, name)), Ok(host)) = (&self.cgroup, lab03_cgroups::detect()) {
            if lab03_cgroups::is_frozen(&host, parent, name).unwrap_or(false) {
                return Status::Paused;
            }
        }
        Status::Running
    }

    pub fn oci_state(&self, status: Status) -> OciState<'_> {
        OciState {
            oci_version: oci_spec::runtime::version(),
            id: &self.id,
            status,
            pid: if status == Status::Stopped {
                0
            } else {
                self.pid
            },
            bundle: &self.bundle,
            rootfs: &self.rootfs,
            created: &self.created,
            owner: "",
            annotations: &self.annotations,
        }
    }
}

/// The start time of `pid` and whether it is a zombie, from
/// `/proc/PID/stat` (proc(5): the state is field 3, starttime field 22;
/// the command in field 2 may hold spaces, so count from its `)`).
pub fn proc_stat(pid: i32) -> Option<(char, u64)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &text[text.rfind(')')? + 2..];
    let mut fields = after.split(' ');
    let state = fields.next()?.chars().next()?;
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

/// Whether `pid` still is the process that started at `start_time`, and
/// has not exited (a zombie has: it only waits to be reaped).
pub fn alive(pid: i32, start_time: u64) -> bool {
    matches!(proc_stat(pid), Some((s, t)) if t == start_time && s != 'Z' && s != 'X')
}

/// Every container ID under `root`.
pub fn ids(root: &Path) -> anyhow::Result<Vec<String>> {
    let mut ids = Vec::new();
    let entries = match fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ids),
        Err(e) => return Err(e).with_context(|| format!("listing {}", root.display())),
    };
    for e in entries.flatten() {
        if e.path().join("state.json").exists() {
            ids.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    ids.sort();
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_cannot_leave_the_root() {
        for bad in ["", ".", "..", "a/b", "../x", "a b"] {
            assert!(dir(Path::new("/r"), bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            dir(Path::new("/r"), "k8s_pod-1.2+x").unwrap(),
            Path::new("/r/k8s_pod-1.2+x")
        );
    }

    #[test]
    fn our_own_process_is_alive_and_a_wrong_start_time_is_not() {
        let me = std::process::id() as i32;
        let (state, start) = proc_stat(me).unwrap();
        assert_ne!(state, 'Z');
        assert!(alive(me, start));
        assert!(!alive(me, start + 1));
    }

    #[test]
    fn the_state_json_has_the_specs_fields() {
        let r = Record {
            id: "c1".into(),
            pid: 42,
            start_time: 1,
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            created: "T".into(),
            annotations: [("a".to_string(), "b".to_string())].into(),
            cgroup: None,
            config: serde_json::Value::Null,
        };
        let v = serde_json::to_value(r.oci_state(Status::Created)).unwrap();
        assert_eq!(v["ociVersion"], oci_spec::runtime::version());
        assert_eq!(v["status"], "created");
        assert_eq!(v["pid"], 42);
        assert_eq!(v["bundle"], "/b");
        assert_eq!(v["annotations"]["a"], "b");
        let v = serde_json::to_value(r.oci_state(Status::Stopped)).unwrap();
        assert_eq!(v["pid"], 0);
    }
}
