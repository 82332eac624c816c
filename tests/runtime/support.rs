//! What every runtime test needs: a bundle of its own (a copy of the busybox
//! rootfs and a config.json made from `dockyard-runtime spec`), a `--root`
//! of its own, and a cgroup parent of its own in every hierarchy, removed
//! (with anything left in it) when the test ends, passed or failed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use dockyard_e2e::fixtures::{bin, TestRootfs};
use serde_json::Value;

/// One test's bundle, state root and cgroup parent.
pub struct Env {
    pub rootfs: TestRootfs,
    pub bundle: PathBuf,
    pub root: PathBuf,
    pub log: PathBuf,
    pub cgroup: TestCgroup,
}

impl Env {
    pub fn new(name: &str) -> Env {
        let rootfs = TestRootfs::new();
        let bundle = rootfs.outside();
        let root = bundle.join("state");
        let log = bundle.join("log.json");
        let cgroup = TestCgroup::new(name);
        let env = Env {
            rootfs,
            bundle,
            root,
            log,
            cgroup,
        };
        // `spec` writes runc's starting config; the tests edit it.
        let out = env.runtime(&["spec", "--bundle", env.bundle.to_str().unwrap()]);
        assert!(out.status.success(), "spec: {}", text(&out.stderr));
        env.edit(|c| {
            c["process"]["terminal"] = false.into();
            c["root"]["readonly"] = false.into();
            c["linux"]["cgroupsPath"] = format!("/{}/c", env.cgroup.name).into();
        });
        env
    }

    /// The runtime with exactly `args` (no flags added). Its stdout and
    /// stderr are files, not pipes: a container's process inherits create's
    /// stdio (as the shim means it to), and would hold a pipe open.
    pub fn runtime(&self, args: &[&str]) -> Output {
        run_to_files(
            Command::new(bin("dockyard-runtime")).args(args),
            &self.bundle,
        )
    }

    /// `--root ROOT args...`
    pub fn rt(&self, args: &[&str]) -> Output {
        let mut all = vec!["--root", self.root.to_str().unwrap()];
        all.extend_from_slice(args);
        self.runtime(&all)
    }

    pub fn config(&self) -> Value {
        let text = std::fs::read(self.bundle.join("config.json")).unwrap();
        serde_json::from_slice(&text).unwrap()
    }

    pub fn edit(&self, f: impl FnOnce(&mut Value)) {
        let mut c = self.config();
        f(&mut c);
        std::fs::write(
            self.bundle.join("config.json"),
            serde_json::to_vec_pretty(&c).unwrap(),
        )
        .unwrap();
    }

    pub fn state(&self, id: &str) -> Value {
        let out = self.rt(&["state", id]);
        assert!(out.status.success(), "state: {}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// The log file's lines, each parsed as JSON.
    pub fn log_lines(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
            .collect()
    }

    /// Nothing of container `id` is left: no state directory, no cgroup.
    pub fn assert_gone(&self, id: &str) {
        assert!(!self.root.join(id).exists(), "state dir of {id} left");
        let left = self.cgroup.children();
        assert!(left.is_empty(), "cgroups left: {left:?}");
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // Whatever a failed test left: delete every container we know of.
        if let Ok(entries) = std::fs::read_dir(&self.root) {
            for e in entries.flatten() {
                let id = e.file_name().to_string_lossy().into_owned();
                let _ = self.rt(&["delete", "--force", &id]);
            }
        }
    }
}

/// A cgroup parent of the test's own, `/dyrt-NAME-PID` in every
/// hierarchy (v1, hybrid or v2); on drop, whatever is below it is killed
/// and removed, then the parent itself.
pub struct TestCgroup {
    pub name: String,
    pub dirs: Vec<PathBuf>,
}

impl TestCgroup {
    pub fn new(name: &str) -> TestCgroup {
        let name = format!("dyrt-{name}-{}", std::process::id());
        let mut dirs = Vec::new();
        for root in hierarchies() {
            let dir = root.join(&name);
            std::fs::create_dir_all(&dir).unwrap();
            // A v1 cpuset group takes no task before it has CPUs and nodes.
            for f in ["cpuset.cpus", "cpuset.mems"] {
                if let Ok(v) = std::fs::read_to_string(root.join(f)) {
                    let _ = std::fs::write(dir.join(f), v.trim());
                }
            }
            dirs.push(dir);
        }
        TestCgroup { name, dirs }
    }

    /// The groups below the parent, deepest first.
    pub fn children(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for d in &self.dirs {
            walk(d, &mut out);
        }
        out.retain(|p| !self.dirs.contains(p));
        out.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        out
    }

    /// `sh -c 'echo $$ > .../cgroup.procs; exec ARGS'`: ARGS run in this
    /// parent in every hierarchy, so that a relative or empty cgroupsPath
    /// resolves under it (the test process itself stays where it is).
    pub fn command_inside(&self, program: &Path, args: &[&str]) -> Command {
        let mut script = String::new();
        for d in &self.dirs {
            script.push_str(&format!("echo $$ > {}/cgroup.procs && ", d.display()));
        }
        script.push_str("exec \"$@\"");
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(script).arg("sh").arg(program).args(args);
        cmd
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        let mut all = self.children();
        all.extend(self.dirs.iter().cloned());
        for dir in all {
            for _ in 0..100 {
                let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
                if procs.trim().is_empty() {
                    break;
                }
                for pid in procs.lines() {
                    let _ = Command::new("kill").args(["-9", pid]).status();
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            let _ = std::fs::remove_dir(&dir);
        }
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    out.push(dir.to_path_buf());
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                walk(&e.path(), out);
            }
        }
    }
}

/// The mounted cgroup hierarchies: each v1 one and the v2 one.
pub fn hierarchies() -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mut out = Vec::new();
    for line in info.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let fstype = right.split(' ').next().unwrap_or("");
        if fstype == "cgroup" || fstype == "cgroup2" {
            if let Some(mp) = left.split(' ').nth(4) {
                out.push(PathBuf::from(mp));
            }
        }
    }
    out
}

/// Run `cmd` with stdout and stderr in files under `dir`, and read them
/// back once it has exited.
pub fn run_to_files(cmd: &mut Command, dir: &Path) -> Output {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let (out, err) = (dir.join(format!("out.{n}")), dir.join(format!("err.{n}")));
    let status = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .status()
        .expect("running a command");
    Output {
        status,
        stdout: std::fs::read(&out).unwrap_or_default(),
        stderr: std::fs::read(&err).unwrap_or_default(),
    }
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The group directory of container cgroup `leaf` in the memory hierarchy.
pub fn memory_dir(cg: &TestCgroup, leaf: &str) -> PathBuf {
    cg.dirs
        .iter()
        .find(|d| d.parent().is_some_and(|p| p.ends_with("memory")))
        .or_else(|| cg.dirs.first())
        .unwrap()
        .join(leaf)
}
