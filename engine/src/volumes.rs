//! Volumes: directories that outlive containers.
//!
//! A container's writable layer goes when the container goes. A volume is a
//! plain directory the engine keeps under `<data-root>/volumes/<name>/_data`
//! (where Docker's `local` driver keeps them) and bind-mounts into
//! containers with lab 02's `Bind`. `-v` has three forms, as in docker:
//!
//! - `-v /host/path:/in/container[:ro]`: a bind mount of a host directory;
//! - `-v name:/in/container[:ro]`: a named volume, made by the container's
//!   `create` if it does not exist yet;
//! - `-v /in/container`: an anonymous volume, with a random name, removed
//!   with the container by `rm -v` or `--rm`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::state::{now_rfc3339, write_atomic};
use lab02_namespaces::security;

/// One mount of a container, as given on the command line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountSpec {
    /// "bind" or "volume".
    pub kind: String,
    /// A host path (bind) or a volume name.
    pub source: String,
    pub target: String,
    pub read_only: bool,
    /// An anonymous volume: removed with its container.
    #[serde(default)]
    pub anonymous: bool,
}

/// A volume's metadata, `volume.json` beside its `_data`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Volume {
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "CreatedAt")]
    pub created_at: String,
    #[serde(rename = "Labels", default)]
    pub labels: BTreeMap<String, String>,
    #[serde(rename = "Anonymous", default)]
    pub anonymous: bool,
    /// Made by its container's `create`, before the container's root is
    /// mounted: the image's files are still to be copied in, at the first
    /// start (see [`Volumes::create_for_container`]).
    #[serde(rename = "CopyUpPending", default, skip_serializing_if = "is_false")]
    pub copy_up_pending: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Parse `-v` the way docker does.
pub fn parse_v(v: &str) -> Result<MountSpec> {
    let parts: Vec<&str> = v.split(':').collect();
    let (source, target, mode) = match parts.as_slice() {
        [t] => ("", *t, ""),
        [s, t] => (*s, *t, ""),
        [s, t, m] => (*s, *t, *m),
        _ => bail!("invalid volume specification: '{v}'"),
    };
    // `-v :/x` names no source: docker refuses it (an anonymous volume is
    // `-v /x`, without the colon).
    if parts.len() > 1 && source.is_empty() {
        bail!("invalid volume specification: '{v}'");
    }
    let read_only = match mode {
        "" | "rw" => false,
        "ro" => true,
        other => bail!("invalid mode: {other} (in volume specification '{v}')"),
    };
    if !target.starts_with('/') {
        bail!("invalid volume specification: '{v}': the container path must be absolute");
    }
    let target = clean_path(target);
    Ok(if source.is_empty() {
        MountSpec {
            kind: "volume".into(),
            source: random_name()?,
            target,
            read_only,
            anonymous: true,
        }
    } else if source.starts_with('/') {
        MountSpec {
            kind: "bind".into(),
            source: clean_path(source),
            target,
            read_only,
            anonymous: false,
        }
    } else {
        validate_name(source)?;
        MountSpec {
            kind: "volume".into(),
            source: source.into(),
            target,
            read_only,
            anonymous: false,
        }
    })
}

/// Parse `--mount type=bind,source=/a,target=/b,readonly`.
pub fn parse_mount(m: &str) -> Result<MountSpec> {
    let mut kind = "volume".to_string();
    let (mut source, mut target, mut read_only) = (String::new(), String::new(), false);
    for field in m.split(',') {
        let (k, v) = field.split_once('=').unwrap_or((field, ""));
        match k {
            "type" => kind = v.to_string(),
            "source" | "src" => source = v.to_string(),
            "target" | "destination" | "dst" => target = v.to_string(),
            "readonly" | "ro" => read_only = v.is_empty() || v == "true" || v == "1",
            other => bail!("invalid field '{other}' in --mount {m:?} (supported: type, source, target, readonly)"),
        }
    }
    if !target.starts_with('/') {
        bail!("invalid mount config: --mount {m:?} needs an absolute target");
    }
    let target = clean_path(&target);
    match kind.as_str() {
        "bind" => {
            if !Path::new(&source).exists() {
                bail!("invalid mount config for type \"bind\": bind source path does not exist: {source}");
            }
            Ok(MountSpec {
                kind,
                source,
                target,
                read_only,
                anonymous: false,
            })
        }
        "volume" if source.is_empty() => Ok(MountSpec {
            kind,
            source: random_name()?,
            target,
            read_only,
            anonymous: true,
        }),
        "volume" => {
            validate_name(&source)?;
            Ok(MountSpec {
                kind,
                source,
                target,
                read_only,
                anonymous: false,
            })
        }
        other => bail!("invalid mount type {other:?}: dockyard supports bind and volume"),
    }
}

/// An absolute path in its shortest form, as Go's `path.Clean` gives it:
/// docker records a mount's destination (and a bind's source) so, and
/// `inspect` shows `/usr/share/nginx/html` for `-v /data:/usr/share/nginx/html/`.
pub fn clean_path(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    format!("/{}", parts.join("/"))
}

fn validate_name(name: &str) -> Result<()> {
    crate::state::validate_name(name)
        .map_err(|_| anyhow!("\"{name}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed"))
}

/// The name of a volume made without one (an anonymous volume, or `volume
/// create` without a name): 64 random hex digits, as docker's.
pub fn random_name() -> Result<String> {
    let mut bytes = [0u8; 32];
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The volumes of one data root.
pub struct Volumes {
    dir: PathBuf,
}

impl Volumes {
    pub fn open(root: &Path) -> Result<Volumes> {
        Volumes::open_shifted(root, None)
    }

    /// [`Volumes::open`]; `remapped_gid`: the group of `--userns-remap`'s
    /// root, which must reach the volumes to mount them.
    ///
    /// SECURITY: `volumes/` is 0710 (root, and the group: root's or the
    /// remapped root's). A volume holds what containers wrote, setuid-root
    /// binaries included; no other user of the host may reach one
    /// (CVE-2021-41091; docker's `volumes/` is closed the same way). Set on
    /// every open, so an older data root is fixed too.
    pub fn open_shifted(root: &Path, remapped_gid: Option<u32>) -> Result<Volumes> {
        use std::os::unix::fs::PermissionsExt;
        let dir = root.join("volumes");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        if let Some(gid) = remapped_gid {
            nix::unistd::chown(&dir, None, Some(nix::unistd::Gid::from_raw(gid)))
                .with_context(|| format!("chown {} to the remapped group", dir.display()))?;
        }
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o710))
            .with_context(|| format!("chmod 710 {}", dir.display()))?;
        Ok(Volumes { dir })
    }

    /// Where a volume's data lives.
    pub fn data(&self, name: &str) -> PathBuf {
        self.dir.join(name).join("_data")
    }

    /// Create a volume (a no-op if it exists, as docker's is).
    pub fn create(
        &self,
        name: &str,
        labels: BTreeMap<String, String>,
        anonymous: bool,
    ) -> Result<Volume> {
        Ok(self.create_or_get(name, labels, anonymous)?.0)
    }

    /// Like [`Volumes::create`], and also says whether the volume is new: a
    /// new volume is seeded with the image's files at its target (docker's
    /// copy-up), an existing one is left as it is.
    pub fn create_or_get(
        &self,
        name: &str,
        labels: BTreeMap<String, String>,
        anonymous: bool,
    ) -> Result<(Volume, bool)> {
        self.make(name, labels, anonymous, false)
    }

    /// A container's volume, named (`-v data:/data`, `--mount
    /// type=volume,source=data`) or anonymous (`-v /data`, an image's
    /// `VOLUME`), made by `create`, as docker makes it: `volume ls` lists
    /// it, `volume rm` refuses it as in use, and `inspect` shows where it is
    /// before the container first starts. Its copy-up from the image waits
    /// for that start, which mounts the container's root: until
    /// [`Volumes::copied_up`] the volume says so. Returns whether the
    /// volume is new (a name that exists is left as it is, and is not the
    /// caller's to remove; see [`Volumes::copy_up_if_empty`] for it).
    pub fn create_for_container(&self, name: &str, anonymous: bool) -> Result<bool> {
        Ok(self.make(name, BTreeMap::new(), anonymous, true)?.1)
    }

    /// A volume that existed before its container's `create` and is
    /// empty gets the copy-up too, at that container's first start: docker
    /// copies into any *empty* volume at create (moby's
    /// `copyExistingContents` skips only one that holds files), so `volume
    /// create data` then `run -v data:/etc` sees the image's `/etc`.
    /// Called once the container exists: a create that fails leaves the
    /// volume as it found it.
    pub fn copy_up_if_empty(&self, name: &str) -> Result<()> {
        let v = self.get(name)?;
        if v.copy_up_pending || !self.is_empty(name)? {
            return Ok(());
        }
        let v = Volume {
            copy_up_pending: true,
            ..v
        };
        let path = self.dir.join(name).join("volume.json");
        write_atomic(&path, &serde_json::to_vec_pretty(&v)?, true)
    }

    /// Whether the volume's `_data` holds nothing (what docker's copy-up
    /// asks before it copies).
    pub fn is_empty(&self, name: &str) -> Result<bool> {
        let data = self.data(name);
        let mut entries =
            std::fs::read_dir(&data).with_context(|| format!("reading {}", data.display()))?;
        Ok(entries.next().is_none())
    }

    /// The copy-up of a volume made by [`Volumes::create_for_container`]
    /// is done: a later start leaves what the volume holds.
    pub fn copied_up(&self, name: &str) -> Result<()> {
        let mut v = self.get(name)?;
        v.copy_up_pending = false;
        let path = self.dir.join(name).join("volume.json");
        write_atomic(&path, &serde_json::to_vec_pretty(&v)?, true)
    }

    fn make(
        &self,
        name: &str,
        labels: BTreeMap<String, String>,
        anonymous: bool,
        copy_up_pending: bool,
    ) -> Result<(Volume, bool)> {
        validate_name(name)?;
        if let Ok(v) = self.get(name) {
            return Ok((v, false));
        }
        let dir = self.dir.join(name);
        std::fs::create_dir_all(dir.join("_data"))
            .with_context(|| format!("creating {}", dir.display()))?;
        let v = Volume {
            name: name.into(),
            created_at: now_rfc3339(),
            labels,
            anonymous,
            copy_up_pending,
        };
        write_atomic(
            &dir.join("volume.json"),
            &serde_json::to_vec_pretty(&v)?,
            true,
        )?;
        self.event("create", name);
        Ok((v, true))
    }

    /// Record a volume's event in the data root's journal (volumes/ is in
    /// the data root).
    fn event(&self, action: &str, name: &str) {
        let Some(root) = self.dir.parent() else {
            return;
        };
        let msg = crate::events::Message::new(
            "volume",
            action,
            crate::events::actor(name, &[("driver", "local")]),
        );
        if let Err(e) = crate::events::append(root, &msg) {
            eprintln!("WARNING: recording the volume {action} event: {e:#}");
        }
    }

    pub fn get(&self, name: &str) -> Result<Volume> {
        let path = self.dir.join(name).join("volume.json");
        let text =
            std::fs::read_to_string(&path).map_err(|_| anyhow!("get {name}: no such volume"))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    pub fn list(&self) -> Result<Vec<Volume>> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(&self.dir)? {
            let name = e?.file_name().to_string_lossy().into_owned();
            if let Ok(v) = self.get(&name) {
                out.push(v);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Remove a volume and its data.
    pub fn remove(&self, name: &str) -> Result<()> {
        self.get(name)?;
        let dir = self.dir.join(name);
        // metadata first: a half-removed volume is not listed.
        std::fs::remove_file(dir.join("volume.json"))
            .with_context(|| format!("removing {name}"))?;
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        self.event("destroy", name);
        Ok(())
    }

    /// `docker volume inspect`'s object.
    pub fn inspect(&self, v: &Volume) -> serde_json::Value {
        serde_json::json!({
            "CreatedAt": v.created_at,
            "Driver": "local",
            "Labels": v.labels,
            "Mountpoint": self.data(&v.name),
            "Name": v.name,
            "Options": {},
            "Scope": "local",
        })
    }
}

/// Docker's copy-up: a new volume mounted over a directory that the image
/// has starts as a copy of that directory, with its files, owners and modes
/// (the volume's root takes the directory's own owner and mode too). Only a
/// new volume is seeded, or an anonymous one its container's `create` made
/// (at the container's first start): one that already exists keeps what it
/// holds.
///
/// The source is the container's root, and an image is untrusted input: its
/// `/data` may be a symlink to the host's `/etc`. So the target is resolved
/// inside the root with openat2(RESOLVE_IN_ROOT) (lab 02's `open_in_root`),
/// and below it nothing is followed: every entry is lstat'ed, a symlink is
/// copied as a symlink, and only real directories are descended into. No
/// process runs in the container yet, so nothing can swap a directory for a
/// symlink between the lstat and the descent.
pub fn copy_up(rootfs: &Path, target: &Path, data: &Path) -> Result<()> {
    use nix::errno::Errno;
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::PermissionsExt;

    let root: std::os::fd::OwnedFd = std::fs::File::open(rootfs)
        .with_context(|| format!("opening {}", rootfs.display()))?
        .into();
    let dir = match security::open_in_root(&root, target, libc::O_RDONLY | libc::O_DIRECTORY) {
        Ok(fd) => fd,
        // Nothing there (or not a directory): the volume starts empty.
        Err(Errno::ENOENT) | Err(Errno::ENOTDIR) => return Ok(()),
        Err(e) => {
            return Err(e)
                .with_context(|| format!("resolving {} in the container", target.display()))
        }
    };
    let src = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
    copy_tree(&src, data).with_context(|| format!("seeding the volume at {}", target.display()))?;
    let meta = std::fs::metadata(&src)?;
    use std::os::unix::fs::MetadataExt;
    std::os::unix::fs::lchown(data, Some(meta.uid()), Some(meta.gid()))?;
    std::fs::set_permissions(data, std::fs::Permissions::from_mode(meta.mode() & 0o7777))?;
    Ok(())
}

/// Copy `src`'s entries into the existing directory `dst`, never following a
/// symlink below `src` (see [`copy_up`]).
fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    // A stack of directories still to copy, not recursion: an image decides
    // how deep its tree is, and a few thousand levels would overflow the
    // thread's stack and kill the engine half-way (issue 24, item 8).
    let mut todo = vec![(src.to_path_buf(), dst.to_path_buf())];
    while let Some((src, dst)) = todo.pop() {
        for entry in std::fs::read_dir(&src)? {
            let entry = entry?;
            let (from, to) = (entry.path(), dst.join(entry.file_name()));
            let meta = std::fs::symlink_metadata(&from)?;
            let kind = meta.file_type();
            if kind.is_dir() {
                std::fs::create_dir(&to)?;
                todo.push((from, to.clone()));
            } else if kind.is_symlink() {
                std::os::unix::fs::symlink(std::fs::read_link(&from)?, &to)?;
            } else if kind.is_file() {
                // `from` was lstat'ed as a regular file, so copy opens no link.
                std::fs::copy(&from, &to)?;
            } else {
                // Device nodes, fifos and sockets in an image directory that is
                // also a volume: rare, and a device node in a volume would
                // outlive the container's device rules. Left out.
                continue;
            }
            std::os::unix::fs::lchown(&to, Some(meta.uid()), Some(meta.gid()))?;
            if !kind.is_symlink() {
                // After chown, which clears set-uid and set-gid bits.
                std::fs::set_permissions(
                    &to,
                    std::fs::Permissions::from_mode(meta.mode() & 0o7777),
                )?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v_forms_parse_like_dockers() {
        let b = parse_v("/srv/data:/data:ro").unwrap();
        assert_eq!(
            (
                b.kind.as_str(),
                b.source.as_str(),
                b.target.as_str(),
                b.read_only
            ),
            ("bind", "/srv/data", "/data", true)
        );
        let n = parse_v("cache:/var/cache").unwrap();
        assert_eq!(
            (n.kind.as_str(), n.source.as_str(), n.anonymous),
            ("volume", "cache", false)
        );
        let a = parse_v("/scratch").unwrap();
        assert!(a.anonymous && a.source.len() == 64);
        assert!(parse_v("data:relative").is_err());
        assert!(parse_v("a:/b:rx").is_err());
        assert!(parse_v("bad name!:/x").is_err());
        // The notes' `-v /data/docker/html:/usr/share/nginx/html/`: docker
        // records both paths cleaned.
        let t = parse_v("/data//docker/./html/:/usr/share/nginx/html/").unwrap();
        assert_eq!(
            (t.source.as_str(), t.target.as_str()),
            ("/data/docker/html", "/usr/share/nginx/html")
        );
        assert_eq!(clean_path("/a/b/../c/"), "/a/c");
        assert_eq!(clean_path("/.."), "/");
    }

    #[test]
    fn mount_forms_parse_like_dockers() {
        let m = parse_mount("type=volume,source=v1,target=/v,readonly").unwrap();
        assert_eq!(
            (m.kind.as_str(), m.source.as_str(), m.read_only),
            ("volume", "v1", true)
        );
        assert!(parse_mount("type=bind,source=/no/such/path,target=/x").is_err());
        assert!(parse_mount("type=tmpfs,target=/x").is_err());
        assert!(parse_mount("type=volume,src=v,dst=/x,bogus=1").is_err());
    }

    #[test]
    fn volumes_are_created_listed_and_removed() {
        let root = tempfile::tempdir().unwrap();
        let vols = Volumes::open(root.path()).unwrap();
        vols.create("data", BTreeMap::new(), false).unwrap();
        std::fs::write(vols.data("data").join("f"), "x").unwrap();
        // Creating again keeps what is there.
        vols.create("data", BTreeMap::new(), false).unwrap();
        assert_eq!(
            std::fs::read_to_string(vols.data("data").join("f")).unwrap(),
            "x"
        );
        assert_eq!(vols.list().unwrap().len(), 1);
        vols.remove("data").unwrap();
        assert!(vols.list().unwrap().is_empty());
        assert!(vols.remove("data").is_err());
    }
}
