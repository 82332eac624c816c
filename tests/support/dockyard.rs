//! One `dockyard` engine per test: its own data root and cgroup parent, the
//! busybox base image loaded, and everything it made removed when it is
//! dropped, even if the test panicked (containers, mounts below the data
//! root, cgroups below the parent).
//!
//! The engine, build and registry tests all drive the CLI through this; the
//! tests that need more (a build context, a registry config, a remap range)
//! wrap it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Once;
use std::time::{Duration, Instant};

use crate::fixtures::{bin, require_root, workspace_root};

static N: AtomicU32 = AtomicU32::new(0);

/// The environment variable that names dockyard's daemon.json when
/// `--config` is not given.
pub const DAEMON_CONFIG_ENV: &str = "DOCKYARD_DAEMON_CONFIG";

/// The networking rule: no test touches the machine's own network. The
/// default network is docker's bridge, which dockyard makes in the network
/// namespace it runs in, so every engine the tests start gets a daemon.json
/// with docker's `"bridge": "none"` (the default network is then `none`).
/// It is set for this whole test process, once, so that every `dockyard`
/// it starts inherits it, through [`Dockyard`] or not. A test that wants
/// the bridge runs dockyard in a throwaway network namespace without it
/// ([`Dockyard::with_default_bridge`], or `env_remove(DAEMON_CONFIG_ENV)`).
pub fn no_default_bridge() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| std::env::set_var(DAEMON_CONFIG_ENV, no_bridge_daemon_json()));
}

/// The daemon.json that says `"bridge": "none"`: one file for every test
/// process, at a fixed path, so that no run leaves one behind of its own.
/// It is never removed while tests run (containers' monitors read it when
/// their container exits), and it is written whole, to a name of this
/// process first and then renamed, so that two test processes that start
/// together never read half of it.
pub fn no_bridge_daemon_json() -> PathBuf {
    const TEXT: &str = "{\"bridge\": \"none\"}\n";
    let path = std::env::temp_dir().join("dockyard-tests-no-bridge.json");
    if std::fs::read_to_string(&path).ok().as_deref() != Some(TEXT) {
        let tmp = path.with_extension(format!("json.{}", std::process::id()));
        std::fs::write(&tmp, TEXT).expect("writing the tests' daemon.json");
        // Readable by the unprivileged users the rootless tests run as.
        std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .expect("making the tests' daemon.json readable");
        std::fs::rename(&tmp, &path).expect("putting the tests' daemon.json in place");
    }
    path
}

/// A `dockyard` with a data root and cgroup parent of its own.
pub struct Dockyard {
    pub root: tempfile::TempDir,
    /// The `--cgroup-parent` given to every `run`, `create` and `build`.
    pub parent: String,
    /// Global flags before the command (`--userns-remap X`).
    globals: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    /// Commands get the default bridge (see [`no_default_bridge`]).
    bridge: bool,
}

impl Dockyard {
    /// A data root with the busybox base image loaded.
    pub fn new() -> Dockyard {
        let dy = Dockyard::empty("dockyard-e2e");
        dy.load_busybox();
        dy
    }

    /// An empty data root; `name` goes into the temp dir and cgroup names.
    pub fn empty(name: &str) -> Dockyard {
        require_root();
        no_default_bridge();
        let root = tempfile::Builder::new()
            .prefix(&format!("{name}-"))
            .tempdir()
            .unwrap();
        let parent = format!(
            "{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        Dockyard {
            root,
            parent,
            globals: Vec::new(),
            envs: Vec::new(),
            bridge: false,
        }
    }

    /// Pass these global flags to every command.
    pub fn with_globals(mut self, args: &[&str]) -> Dockyard {
        self.globals.extend(args.iter().map(OsString::from));
        self
    }

    /// The default bridge, as docker's: for tests that run this engine in
    /// a throwaway network namespace (its commands drop the tests'
    /// daemon.json).
    pub fn with_default_bridge(mut self) -> Dockyard {
        self.bridge = true;
        self
    }

    /// Set this environment variable for every command.
    pub fn with_env(mut self, key: &str, value: impl Into<OsString>) -> Dockyard {
        self.envs.push((key.into(), value.into()));
        self
    }

    /// `dockyard load -i images/busybox/oci`.
    pub fn load_busybox(&self) {
        let oci = workspace_root().join("images/busybox/oci");
        assert!(
            oci.exists(),
            "base image missing: run scripts/setup --no-run"
        );
        self.ok(&["load", "-i", oci.to_str().unwrap()]);
    }

    pub fn root_path(&self) -> PathBuf {
        self.root.path().to_path_buf()
    }

    /// The command, ready to run: `--root`, the global flags, and
    /// `--cgroup-parent` for the commands that make containers.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin("dockyard"));
        c.arg("--root")
            .arg(self.root.path())
            .args(&self.globals)
            .env_remove("DOCKYARD_ROOT");
        if self.bridge {
            c.env_remove(DAEMON_CONFIG_ENV);
        }
        for (k, v) in &self.envs {
            c.env(k, v);
        }
        let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        if matches!(
            args.first(),
            Some(&"run") | Some(&"create") | Some(&"build")
        ) {
            all.insert(1, format!("--cgroup-parent={}", self.parent));
        }
        c.args(&all).stdin(Stdio::null());
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("running dockyard")
    }

    /// Run and expect success; return stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "dockyard {args:?} failed ({:?}):\n{}{}",
            out.status,
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// Run and expect exit `code`; return stderr.
    pub fn fails(&self, code: i32, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(code),
            "dockyard {args:?} should fail with {code}:\n{}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stderr)
    }

    /// `inspect -f FMT NAME`, trimmed.
    pub fn inspect(&self, name: &str, fmt: &str) -> String {
        self.ok(&["inspect", "-f", fmt, name]).trim().to_string()
    }

    /// Poll `inspect -f WHAT NAME` until it says `want` (20 s at most).
    pub fn wait_for(&self, name: &str, what: &str, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let got = self.inspect(name, what);
            if got == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{name}: {what} is {got:?}, waited for {want:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Poll `exec NAME CMD...` until it succeeds (20 s at most): until the
    /// container's command has made what the test needs.
    pub fn wait_for_exec(&self, name: &str, cmd: &[&str]) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut args = vec!["exec", name];
        args.extend_from_slice(cmd);
        while !self.run(&args).status.success() {
            assert!(Instant::now() < deadline, "{name}: {cmd:?} never succeeded");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Default for Dockyard {
    fn default() -> Self {
        Dockyard::new()
    }
}

impl Drop for Dockyard {
    fn drop(&mut self) {
        let ids = self.run(&["ps", "-aq", "--no-trunc"]);
        for id in text(&ids.stdout).lines() {
            let _ = self.run(&["rm", "-f", id]);
        }
        let root = self.root.path().to_string_lossy().to_string();
        for m in mount_points().into_iter().rev() {
            if m.starts_with(&root) {
                let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
            }
        }
        // Children first (a build step's group, a container's left by a
        // killed monitor): a cgroup with children cannot be removed.
        for dir in cgroup_dirs(&self.parent) {
            for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let _ = std::fs::remove_dir(e.path());
            }
            let _ = std::fs::remove_dir(dir);
        }
    }
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Every mount point of this mount namespace, in mount order.
pub fn mount_points() -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .collect()
}

/// Every directory named `parent` below a cgroup hierarchy's root, in the
/// hierarchies lab 03 detects on this host (each v1 one, the cgroup2 one).
pub fn cgroup_dirs(parent: &str) -> Vec<PathBuf> {
    let Ok(host) = lab03_cgroups::detect() else {
        return Vec::new();
    };
    host.hierarchy_roots()
        .into_iter()
        .map(|root| root.join(parent))
        .filter(|d| d.is_dir())
        .collect()
}

/// The cgroups left below `parent`: none, once every container is gone.
pub fn leftover_cgroups(parent: &str) -> Vec<PathBuf> {
    cgroup_dirs(parent)
        .into_iter()
        .flat_map(|d| std::fs::read_dir(d).into_iter().flatten().flatten())
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect()
}

/// The container directories of a data root.
pub fn container_dirs(root: &Path) -> Vec<String> {
    std::fs::read_dir(root.join("containers"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}
