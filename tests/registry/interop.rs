//! Other tools read what dockyard writes and the other way round: skopeo
//! copies both ways, and podman (in a sandbox of its own storage) runs
//! what dockyard pushed.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use dockyard_e2e::dockyard::text;
use dockyard_e2e::fixtures::workspace_root;
use serde_json::Value;

use crate::common::{base_digests, creds_dir, skopeo, Dy, Registry};

#[test]
fn skopeo_and_podman_read_what_dockyard_pushes_and_the_other_way_round() {
    let reg = Registry::start();
    let creds = creds_dir();
    let (manifest, config, _) = base_digests();
    let src = Dy::with_base(creds.path());
    let name = format!("{}/busybox:1", reg.host());
    src.ok(&["tag", "busybox", &name]);
    src.ok(&["push", &name]);

    // skopeo copies what we pushed into an OCI layout, unchanged.
    let out = tempfile::tempdir().unwrap();
    let layout = out.path().join("oci");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{name}"),
        &format!("oci:{}:x", layout.display()),
    ]);
    let index: Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["digest"], manifest.as_str());

    // podman pulls it and computes the same image ID (podman_runs_what_dockyard_pushes
    // runs it, in a network namespace of its own).
    let pm = out.path().join("podman");
    let podman = |args: &[&str]| {
        let o = Command::new("podman")
            .arg("--root")
            .arg(pm.join("root"))
            .arg("--runroot")
            .arg(pm.join("run"))
            .args(["--storage-driver", "vfs", "--cgroup-manager", "cgroupfs"])
            .args(["--events-backend", "none"])
            .args(args)
            .output()
            .expect("podman is missing: scripts/setup installs it");
        assert!(o.status.success(), "podman {args:?}: {}", text(&o.stderr));
        text(&o.stdout)
    };
    podman(&["pull", "--tls-verify=false", &name]);
    let id = podman(&["image", "inspect", "--format", "{{.Id}}", &name]);
    assert_eq!(format!("sha256:{}", id.trim()), config);

    // skopeo pushes a Docker schema 2 manifest; dockyard pulls and runs it.
    let theirs = format!("{}/x:1", reg.host());
    skopeo(&[
        "copy",
        "--format",
        "v2s2",
        "--dest-tls-verify=false",
        &format!(
            "oci:{}",
            workspace_root().join("images/busybox/oci").display()
        ),
        &format!("docker://{theirs}"),
    ]);
    let dst = Dy::new(creds.path());
    dst.ok(&["pull", &theirs]);
    assert_eq!(
        dst.identity(&theirs).0,
        config,
        "the same config, so the same image ID"
    );
    let digest = dst.manifest_of(&theirs).unwrap();
    assert_ne!(digest, manifest, "a Docker manifest is other bytes");
    let stored = fs::read(dst.path().join("blobs/sha256").join(&digest[7..])).unwrap();
    let doc: Value = serde_json::from_slice(&stored).unwrap();
    assert_eq!(
        doc["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert_eq!(dst.ok(&["run", "--rm", &theirs, "echo", "hi"]), "hi\n");
}

/// podman's storage, run and temp directories, and a cgroup parent, all
/// its own, removed on drop: every mount under the directory, every
/// process that names it, and the cgroup parent in every hierarchy (podman
/// puts the container's `libpod-<id>` and its `conmon` cgroups there).
struct PodmanSandbox {
    dir: tempfile::TempDir,
    parent: String,
}

impl PodmanSandbox {
    fn new() -> PodmanSandbox {
        PodmanSandbox {
            dir: tempfile::Builder::new()
                .prefix("dockyard-podman-")
                .tempdir()
                .unwrap(),
            parent: format!("dockyard-e2e-podman-{}", std::process::id()),
        }
    }

    fn storage(&self) -> String {
        format!(
            "[vfs@{}+{}]",
            self.dir.path().join("root").display(),
            self.dir.path().join("runroot").display()
        )
    }

    /// `podman ARGS` inside a fresh network namespace, so that podman (and
    /// netavark) can never change the host's network.
    fn podman(&self, args: &[&str]) -> Output {
        let d = self.dir.path();
        Command::new("unshare")
            .args(["--net", "podman"])
            .arg("--root")
            .arg(d.join("root"))
            .arg("--runroot")
            .arg(d.join("runroot"))
            .arg("--tmpdir")
            .arg(d.join("tmp"))
            .args(["--storage-driver", "vfs", "--events-backend", "none"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("podman is missing: scripts/setup installs it")
    }

    /// The sandbox's cgroup parent in every hierarchy the host has (v1's
    /// one per controller, v2's one tree), as lab 03 detects the layout:
    /// never a guess from the directories under /sys/fs/cgroup. On v1 and
    /// hybrid hosts podman's runtime also makes the parent in systemd's
    /// named hierarchy (`name=systemd`, no controller, so not among lab
    /// 03's): the named hierarchies are added from /proc/self/mountinfo.
    fn cgroup_dirs(&self) -> Vec<PathBuf> {
        let host = lab03_cgroups::detect().expect("detecting the cgroup layout");
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap();
        let named = mountinfo.lines().filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let mut right = right.split(' ');
            let named = right.next() == Some("cgroup")
                && right.nth(1)?.split(',').any(|o| o.starts_with("name="));
            let point = left.split(' ').nth(4)?;
            named.then(|| PathBuf::from(point))
        });
        let mut roots = host.hierarchy_roots();
        roots.extend(named);
        roots
            .into_iter()
            .map(|root| root.join(&self.parent))
            .filter(|p| p.exists())
            .collect()
    }

    fn processes(&self) -> Vec<i32> {
        let needle = self.dir.path().to_string_lossy().into_owned();
        fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| {
                fs::read(format!("/proc/{pid}/cmdline"))
                    .map(|c| String::from_utf8_lossy(&c).contains(&needle))
                    .unwrap_or(false)
            })
            .collect()
    }

    fn mounts(&self) -> Vec<String> {
        let needle = self.dir.path().to_string_lossy().into_owned();
        fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter_map(|l| l.split_whitespace().nth(4))
            .filter(|m| m.starts_with(&needle))
            .map(str::to_string)
            .collect()
    }

    /// Removes what podman left; returns what there was, for the test.
    fn clean(&self) -> (Vec<i32>, Vec<String>, Vec<PathBuf>) {
        let procs = self.processes();
        for pid in &procs {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(*pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let mut mounts = self.mounts();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in &mounts {
            let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
        let cgroups = self.cgroup_dirs();
        for top in &cgroups {
            rmdir_tree(top);
        }
        (procs, mounts, cgroups)
    }
}

/// Removes a cgroup directory and its children, deepest first (a cgroup is
/// removed with rmdir, never with its files).
fn rmdir_tree(dir: &Path) {
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                rmdir_tree(&e.path());
            }
        }
    }
    let _ = fs::remove_dir(dir);
}

impl Drop for PodmanSandbox {
    fn drop(&mut self) {
        self.clean();
    }
}

#[test]
fn podman_runs_what_dockyard_pushes() {
    let reg = Registry::start();
    let creds = creds_dir();
    let src = Dy::with_base(creds.path());
    let name = format!("{}/busybox:podman", reg.host());
    src.ok(&["tag", "busybox", &name]);
    src.ok(&["push", &name]);

    let pm = PodmanSandbox::new();
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{name}"),
        &format!("containers-storage:{}{name}", pm.storage()),
    ]);
    let cgroup_parent = format!("--cgroup-parent=/{}", pm.parent);
    let out = pm.podman(&[
        "run",
        "--rm",
        "--runtime",
        "runc",
        "--cgroup-manager=cgroupfs",
        &cgroup_parent,
        "--ulimit",
        "nofile=20000:20000",
        "--ulimit",
        "nproc=32768:32768",
        "--network=none",
        &name,
        "sh",
        "-c",
        "echo from podman; cat /proc/self/cgroup",
    ]);
    assert!(
        out.status.success(),
        "podman run: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("from podman\n"), "{stdout}");
    // The container ran under the cgroup parent given, not libpod_parent.
    assert!(
        stdout.contains(&format!("/{}/libpod-", pm.parent)),
        "{stdout}"
    );

    // Nothing is left running or mounted; the cgroups were podman's to
    // leave, and ours to remove. conmon runs `podman container cleanup`
    // when the container exits, which may outlive `podman run` a moment:
    // give it time to end on its own.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !pm.processes().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let (procs, mounts, cgroups) = pm.clean();
    assert!(procs.is_empty(), "podman left processes: {procs:?}");
    assert!(mounts.is_empty(), "podman left mounts: {mounts:?}");
    assert!(
        pm.cgroup_dirs().is_empty(),
        "cgroups left: {:?}",
        pm.cgroup_dirs()
    );
    assert!(!cgroups.is_empty(), "podman used the cgroup parent");
}
