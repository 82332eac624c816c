//! # `RUN`: a command in a throwaway container, whose changes become a layer
//!
//! A `RUN` step is a `docker run` and a `docker commit`:
//!
//! ```text
//! mount -t overlay overlay -o lowerdir=L3:L2:L1,upperdir=UP,workdir=WK merged   # lab 04
//! mkdir /sys/fs/cgroup/.../<id> && echo $PID > .../cgroup.procs               # lab 03
//! unshare --mount --uts --ipc --net --pid --fork ... pivot_root merged ...      # lab 02
//! sh -c 'apt-get install ...'                                                  # the step
//! umount merged; tar -C UP -c . > layer.tar                                    # lab 04's diff
//! ```
//!
//! Everything the command writes lands in the fresh upper dir `UP`, and a deleted file
//! leaves a whiteout there, so `UP` is exactly the difference the step made. The container is
//! made by the same assembler as `dockyard run`'s (lab 03's `assemble`): no user namespace
//! (root in the step must create root-owned files), Docker's default security layer
//! (capabilities, seccomp, masked paths) and device rules, and a network namespace with only
//! `lo`: `docker build --network none`, because this builder has no network to offer.
//! Given a `hosts` text (the engine's `--add-host`), the step gets its own `/etc/hosts`, a
//! file of the step bound over the image's, as docker binds a container's: what the command
//! writes there is in that file, not in the upper dir.

use std::ffi::OsString;
use std::fs::{self, File};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result};
use nix::fcntl::OFlag;
use nix::unistd::pipe2;

use lab02_namespaces as namespaces;
use lab03_cgroups as cgroups;
use lab04_overlay as overlay;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A work directory in the store's `tmp/`, named as the store names its staging entries
/// (`<what>-<pid>-<n>`) so that `Store::open` cleans it up if this process dies. Removed on
/// drop (after unmounting anything on `merged`).
pub struct WorkDir {
    pub path: PathBuf,
}

impl WorkDir {
    pub fn new(store: &overlay::Store, what: &str) -> Result<WorkDir> {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = store
            .root()
            .join("tmp")
            .join(format!("{what}-{}-{n}", std::process::id()));
        fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(WorkDir { path })
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let merged = self.path.join("merged");
        let _ = nix::mount::umount2(&merged, nix::mount::MntFlags::MNT_DETACH);
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// What a RUN step runs, and where.
pub struct RunStep<'a> {
    pub store: &'a overlay::Store,
    /// The image's layers so far, bottom first.
    pub layers: &'a [overlay::Layer],
    pub argv: Vec<String>,
    pub env: Vec<String>,
    pub cwd: Option<String>,
    /// The cgroup parent for the step's cgroup (`--cgroup-parent`).
    pub cgroup_parent: &'a str,
    /// The container's ID (64 hex digits); its first 12 are the hostname.
    pub id: String,
    /// The stage's USER (empty: root), resolved in the step's own root.
    pub user: String,
    /// Directories to create in the root before the command runs (relative, symlinks
    /// already resolved in the image): the mountpoints of the image's VOLUMEs.
    pub mountpoints: Vec<PathBuf>,
    /// Files to write (mode 0755) in the root before the command runs, at paths the image
    /// does not have (checked by the caller): a heredoc script. The caller removes them
    /// from the upper dir afterwards.
    pub files: Vec<(PathBuf, String)>,
    /// `docker build --network host`: the host's network namespace instead of one with `lo`.
    pub host_network: bool,
    /// `docker build -m`: the step's memory limit in bytes.
    pub memory: Option<u64>,
    /// The step's other cgroup limits (`--cpu-shares`, `--cpuset-cpus`...).
    pub limits: cgroups::Limits,
    /// The step's `/etc/hosts`, written to a file of the step and bound
    /// over the image's (`None`: the image's own).
    pub hosts: Option<String>,
    /// The size of the step's `/dev/shm` in bytes (`None`: 64 MiB).
    pub shm_size: Option<u64>,
    /// The step's rlimits (`--ulimit`): (resource, soft, hard).
    pub rlimits: Vec<(nix::sys::resource::Resource, u64, u64)>,
}

/// A finished step: its exit code, and its upper dir (inside `work`).
pub struct Finished {
    pub code: i32,
    pub work: WorkDir,
}

impl Finished {
    pub fn upper(&self) -> PathBuf {
        self.work.path.join("upper")
    }
}

// ANCHOR: run_step
impl RunStep<'_> {
    /// Runs the command to its end, its output on ours, and returns its exit code with the
    /// upper dir holding its changes. The overlay is unmounted and the cgroup removed before
    /// this returns, whatever happened.
    pub fn run(self) -> Result<Finished> {
        let work = WorkDir::new(self.store, "build")?;
        for d in ["upper", "work", "merged", "empty"] {
            fs::create_dir(work.path.join(d))?;
        }
        let rel = |p: &Path| -> Result<PathBuf> {
            Ok(p.strip_prefix(self.store.root())
                .with_context(|| format!("{} is outside the store", p.display()))?
                .to_path_buf())
        };
        // overlayfs wants at least one lower dir; FROM scratch has none, so an empty one.
        let mut lower: Vec<PathBuf> = self
            .layers
            .iter()
            .rev()
            .map(|l| rel(&l.link))
            .collect::<Result<_>>()?;
        if lower.is_empty() {
            lower.push(rel(&work.path.join("empty"))?);
        }
        let dirs = overlay::OverlayDirs {
            lower,
            upper: rel(&work.path.join("upper"))?,
            work: rel(&work.path.join("work"))?,
            merged: work.path.join("merged"),
            base: self.store.root().to_path_buf(),
            volatile: false,
        };
        overlay::mount_overlay(&dirs)?;
        let mounted = overlay::MountGuard(dirs.merged.clone());
        for m in &self.mountpoints {
            let at = dirs.merged.join(m);
            fs::create_dir_all(&at).with_context(|| format!("creating {}", at.display()))?;
        }
        for (rel, body) in &self.files {
            use std::os::unix::fs::PermissionsExt;
            let at = dirs.merged.join(rel);
            if let Some(dir) = at.parent() {
                fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            }
            fs::write(&at, body).with_context(|| format!("writing {}", at.display()))?;
            fs::set_permissions(&at, fs::Permissions::from_mode(0o755))?;
        }

        let hosts = match &self.hosts {
            Some(text) => {
                let file = work.path.join("hosts");
                fs::write(&file, text).with_context(|| format!("writing {}", file.display()))?;
                Some(file)
            }
            None => None,
        };

        let host = cgroups::detect()?;
        let result = self.assemble_and_wait(&dirs.merged, &host, hosts.as_deref());
        drop(mounted);
        let code = result?;
        Ok(Finished { code, work })
    }

    /// The step's container, as `dockyard run` makes one (lab 03's
    /// assembler): no user namespace (files the step creates as root must be
    /// root's in the layer), the host's default cgroup namespace, Docker's
    /// security layer and device list, and a network namespace with only
    /// `lo`. Its stdin is /dev/null; its output comes through two pipes that
    /// we copy to ours (see [`relay_output`]).
    ///
    /// `hosts`: a file to bind over `/etc/hosts`, as docker binds the
    /// container's own (lab 02 makes the mountpoint if the image has none;
    /// the caller takes that empty file out of the layer).
    fn assemble_and_wait(
        &self,
        rootfs: &Path,
        host: &cgroups::Host,
        hosts: Option<&Path>,
    ) -> Result<i32> {
        let null = File::open("/dev/null").context("opening /dev/null")?;
        let (out_read, out_write) =
            pipe2(OFlag::O_CLOEXEC).context("pipe2 for the step's stdout")?;
        let (err_read, err_write) =
            pipe2(OFlag::O_CLOEXEC).context("pipe2 for the step's stderr")?;
        let mut spec =
            namespaces::Spec::new(rootfs, self.argv.iter().map(OsString::from).collect());
        spec.env = self.env.iter().map(OsString::from).collect();
        spec.hostname = Some(self.id[..12].to_string());
        spec.stdio = Some([
            null.as_raw_fd(),
            out_write.as_raw_fd(),
            err_write.as_raw_fd(),
        ]);
        spec.cwd = self.cwd.as_ref().map(PathBuf::from);
        let mut security = namespaces::security::Security::docker_default();
        security.shm_size = self.shm_size;
        spec.security = Some(security);
        spec.rlimits = self.rlimits.clone();
        if let Some(file) = hosts {
            spec.binds.push(namespaces::Bind {
                source: file.to_path_buf(),
                target: PathBuf::from("/etc/hosts"),
                read_only: false,
            });
        }
        spec.run_as = Some(namespaces::RunAs::lookup(rootfs, &self.user)?);
        let mut blueprint = cgroups::Blueprint::new(spec);
        blueprint.cgroup = Some(cgroups::CgroupSpec {
            parent: self.cgroup_parent.to_string(),
            name: self.id.clone(),
            limits: cgroups::Limits {
                memory: self.memory.or(self.limits.memory),
                ..self.limits.clone()
            },
        });
        blueprint.devices = cgroups::Devices::DockerDefault;
        if self.host_network {
            blueprint.netns = cgroups::NetNs::Host;
        }
        let running = cgroups::assemble(host, &blueprint, |_| Ok(()))?;
        // The step holds its ends now; ours go, so that its exit is EOF.
        drop((out_write, err_write));
        let copies = [
            relay_output(out_read, std::io::stdout),
            relay_output(err_read, std::io::stderr),
        ];
        let status = running.process.wait();
        for copy in copies {
            let _ = copy.join();
        }
        drop(null);
        running.groups.remove()?;
        Ok(status?.code())
    }
}
// ANCHOR_END: run_step

// ANCHOR: relay_output
/// Copy what a step prints from its pipe to our stdout or stderr, in a
/// thread of its own, until the step's side closes.
///
/// A step never gets our own descriptors: they may be the terminal of the
/// person who runs the build (from which it could push keystrokes into their
/// shell with TIOCSTI) or a file they redirected the output to (which it
/// could reopen through /proc/self/fd/1, and read or truncate). A pipe is
/// only a pipe; docker's builder relays a step's output the same way.
fn relay_output<W: std::io::Write + 'static>(
    from: OwnedFd,
    to: fn() -> W,
) -> std::thread::JoinHandle<std::io::Result<u64>> {
    std::thread::spawn(move || {
        let mut from = File::from(from);
        let mut to = to();
        let mut buf = [0u8; 16 * 1024];
        let mut total = 0u64;
        loop {
            let n = match std::io::Read::read(&mut from, &mut buf) {
                Ok(0) => return Ok(total),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            // Line by line as it comes, as a terminal would show it.
            to.write_all(&buf[..n])?;
            to.flush()?;
            total += n as u64;
        }
    })
}
// ANCHOR_END: relay_output

/// 32 random bytes as hex: a build container's ID.
pub fn random_id() -> Result<String> {
    let mut bytes = [0u8; 32];
    use std::io::Read;
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom")?;
    Ok(hex::encode(bytes))
}
