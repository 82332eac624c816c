//! The store under abuse (issue 24): what other users of the host can reach
//! in the data root, a full disk, kill -9 at any moment, trees deeper than
//! any stack, and freezes whose freezer died.
//!
//! Each test first builds the situation the fault needs (a setuid binary in
//! every kind of directory, a tmpfs data root filled by a container, a
//! command killed N ms in), then checks what the kernel and the store show:
//! exec permission for uid 65534, free blocks, `containers/` against
//! `ps -a`, the freezer's state.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use dockyard_e2e::dockyard::{
    cgroup_dirs, container_dirs, leftover_cgroups, mount_points, text, Dockyard as Dy,
};

/// Run `path ARGS` as uid/gid 65534 (nobody), without supplementary groups:
/// a shell already running as nobody executes it (setpriv's own exec of
/// its target is not a faithful unprivileged one).
fn as_nobody(path: &Path, args: &[&str]) -> Output {
    Command::new("setpriv")
        .args([
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            "--",
        ])
        .args(["sh", "-c", "exec \"$0\" \"$@\""])
        .arg(path)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("running setpriv")
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

/// Wait until `path` exists (a container said it is ready).
fn wait_path(path: &Path, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn full_id(dy: &Dy, name: &str) -> String {
    dy.inspect(name, "{{.Id}}")
}

// ---- item 2: the data root is closed to other users (CVE-2021-41091) ----

#[test]
fn robustness_other_users_cannot_run_setuid_binaries_from_the_data_root() {
    let dy = Dy::new();
    let root = dy.root_path();
    // A container plants a setuid-root binary (busybox, named `id` so that
    // it runs its `id` applet) in its upper dir, and it becomes a layer.
    dy.ok(&[
        "run",
        "-d",
        "--name",
        "planter",
        "busybox",
        "sh",
        "-c",
        "cp /bin/busybox /id && chmod 4755 /id && touch /ready && sleep 1000",
    ]);
    let id = full_id(&dy, "planter");
    let cdir = root.join("containers").join(&id);
    wait_path(&cdir.join("upper/ready"), 20);
    dy.ok(&["commit", "planter", "planted:1"]);
    let layer = std::fs::read_dir(root.join("layers"))
        .unwrap()
        .flatten()
        .map(|e| e.path().join("diff/id"))
        .find(|p| p.exists())
        .expect("the committed layer holds /id");
    let targets = [cdir.join("upper/id"), cdir.join("merged/id"), layer];
    for t in &targets {
        assert_eq!(mode(t), 0o4755, "{} is setuid-root", t.display());
    }

    // The control: the same binary, setuid, in a directory open to all, is
    // one that uid 65534 can execute. So a refusal below is the data root's.
    let open = tempfile::tempdir().unwrap();
    std::fs::set_permissions(open.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let copy = open.path().join("id");
    std::fs::copy(&targets[0], &copy).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let control = as_nobody(&copy, &["-u"]);
    assert!(
        control.status.success(),
        "control: {}",
        text(&control.stderr)
    );

    let refused = |why: &str| {
        for t in &targets {
            let out = as_nobody(t, &["-u"]);
            assert!(
                !out.status.success() && text(&out.stderr).contains("Permission denied"),
                "{why}: uid 65534 could execute {} ({:?}): {}{}",
                t.display(),
                out.status,
                text(&out.stdout),
                text(&out.stderr)
            );
        }
    };
    refused("a new data root");
    let modes = [
        (root.clone(), 0o711),
        (root.join("layers"), 0o710),
        (root.join("l"), 0o710),
        (root.join("containers"), 0o710),
        (root.join("volumes"), 0o710),
        (root.join("tmp"), 0o700),
        (cdir.clone(), 0o710),
    ];
    for (p, want) in &modes {
        assert_eq!(mode(p), *want, "mode of {}", p.display());
    }

    // Upgrade: a data root an older version left open is closed at the
    // next command.
    for (p, _) in &modes {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let open_again = as_nobody(&targets[2], &["-u"]);
    assert!(
        open_again.status.success(),
        "an open data root lets uid 65534 in: {}",
        text(&open_again.stderr)
    );
    dy.ok(&["ps"]);
    refused("a data root fixed on upgrade");

    // And containers still work: the running one, a new one.
    assert_eq!(dy.ok(&["exec", "planter", "cat", "/ready"]), "");
    assert_eq!(dy.ok(&["run", "--rm", "planted:1", "echo", "ok"]), "ok\n");
}

// ---- item 5: a full data root ----------------------------------------------

/// A tmpfs mounted on the data root, unmounted after every container goes.
struct SmallDisk<'a>(&'a Dy);

impl SmallDisk<'_> {
    fn mount<'a>(dy: &'a Dy, size: &str) -> SmallDisk<'a> {
        nix::mount::mount(
            Some("tmpfs"),
            dy.root.path(),
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            Some(format!("size={size},mode=0700").as_str()),
        )
        .expect("mounting a tmpfs on the data root");
        SmallDisk(dy)
    }

    fn available(&self) -> u64 {
        let st = nix::sys::statvfs::statvfs(self.0.root.path()).unwrap();
        st.blocks_available() as u64 * st.fragment_size() as u64
    }

    /// Run a container that writes until the disk is full.
    fn fill(&self, name: &str) {
        let out = self.0.run(&[
            "run",
            "--name",
            name,
            "busybox",
            "sh",
            "-c",
            "dd if=/dev/zero of=/fill bs=4k 2>/dev/null; true",
        ]);
        assert!(
            self.available() < 64 * 1024,
            "{name} left {} bytes free ({})",
            self.available(),
            text(&out.stderr)
        );
    }
}

impl Drop for SmallDisk<'_> {
    fn drop(&mut self) {
        for id in self.0.ok(&["ps", "-aq", "--no-trunc"]).lines() {
            let _ = self.0.run(&["rm", "-f", id]);
        }
        for m in mount_points().into_iter().rev() {
            if m.starts_with(&*self.0.root.path().to_string_lossy()) {
                let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
            }
        }
    }
}

#[test]
fn robustness_a_full_data_root_lists_and_removes() {
    let dy = Dy::empty("dockyard-full");
    let disk = SmallDisk::mount(&dy, "24m");
    dy.load_busybox();
    // An image of its own (2 MB layer), unrelated to what fills the disk.
    dy.ok(&[
        "run",
        "--name",
        "maker",
        "busybox",
        "sh",
        "-c",
        "head -c 2000000 /dev/urandom > /blob",
    ]);
    dy.ok(&["commit", "maker", "spare:1"]);
    dy.ok(&["rm", "maker"]);
    dy.ok(&["run", "-d", "--name", "up", "busybox", "sleep", "1000"]);
    dy.ok(&["create", "--name", "idle", "busybox", "true"]);

    disk.fill("filler1");
    // Listing never writes: ps, inspect and df work on a full disk.
    let ps = dy.ok(&["ps", "-a", "--format", "{{.Names}}"]);
    for n in ["up", "idle", "filler1"] {
        assert!(ps.lines().any(|l| l == n), "{n} missing from ps -a:\n{ps}");
    }
    dy.ok(&["inspect", "filler1"]);
    // A run that cannot be created leaves nothing half made.
    let _ = dy.run(&["run", "--name", "nospace", "busybox", "true"]);
    assert_consistent(&dy, "run on a full disk");
    // rmi of an image nobody uses rewrites index.json: it needs the space
    // kept back for removals, then frees its layer.
    dy.ok(&["rmi", "spare:1"]);

    disk.fill("filler2");
    dy.ok(&["rm", "-f", "up"]);
    disk.fill("filler3");
    dy.ok(&["rm", "filler3"]);
    disk.fill("filler4");
    dy.ok(&["container", "prune", "-f"]);
    assert!(
        dy.ok(&["ps", "-aq"]).is_empty(),
        "container prune left some"
    );

    // A running container keeps the disk full: the prunes still work.
    dy.ok(&[
        "run",
        "-d",
        "--name",
        "hog",
        "-v",
        "/data",
        "busybox",
        "sh",
        "-c",
        "dd if=/dev/zero of=/fill bs=4k 2>/dev/null; sleep 1000",
    ]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while disk.available() >= 64 * 1024 {
        assert!(Instant::now() < deadline, "hog did not fill the disk");
        std::thread::sleep(Duration::from_millis(50));
    }
    dy.ok(&["volume", "prune", "-f"]);
    dy.ok(&["image", "prune", "-f"]);
    dy.ok(&["system", "prune", "-f"]);
    dy.ok(&["ps", "-a"]);
    dy.ok(&["rm", "-f", "-v", "hog"]);
    assert!(container_dirs(&dy.root_path()).is_empty());
    drop(disk);
}

// ---- item 6: kill -9 at any moment ----------------------------------------

/// Start `dockyard ARGS`, kill it with SIGKILL `after` in, reap it.
fn kill_after(dy: &Dy, args: &[&str], after: Duration) {
    let mut child = dy
        .command(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(after);
    let _ = child.kill();
    let _ = child.wait();
}

/// Whether the freezer holds the container's processes.
fn frozen(dy: &Dy, id: &str) -> bool {
    cgroup_dirs(&dy.parent).iter().any(|d| {
        let g = d.join(id);
        std::fs::read_to_string(g.join("freezer.state")).is_ok_and(|s| s.trim() != "THAWED")
            || std::fs::read_to_string(g.join("cgroup.freeze")).is_ok_and(|s| s.trim() == "1")
    })
}

/// No ghost (listed, but unknown to inspect), no orphan (a directory that
/// ps does not list), nothing frozen that is not paused.
fn assert_consistent(dy: &Dy, when: &str) {
    let listed: BTreeSet<String> = dy
        .ok(&["ps", "-aq", "--no-trunc"])
        .lines()
        .map(str::to_string)
        .collect();
    for id in &listed {
        let status = dy.run(&["inspect", "-f", "{{.State.Status}}", id]);
        assert!(
            status.status.success(),
            "{when}: ghost {id}: {}",
            text(&status.stderr)
        );
        let status = text(&status.stdout).trim().to_string();
        if status == "running" {
            assert!(!frozen(dy, id), "{when}: {id} is running but frozen");
        }
    }
    let dirs: BTreeSet<String> = container_dirs(&dy.root_path()).into_iter().collect();
    assert_eq!(dirs, listed, "{when}: containers/ and ps -a differ");
}

#[test]
fn robustness_kill_9_at_any_moment_leaves_a_consistent_store() {
    let dy = Dy::new();
    let host = tempfile::tempdir().unwrap();
    dy.ok(&["run", "-d", "--name", "target", "busybox", "sleep", "1000"]);
    let whole = bb_size(&dy);
    for ms in (0..=60).step_by(6) {
        let after = Duration::from_millis(ms);
        let name = format!("run{ms}");
        kill_after(
            &dy,
            &["run", "-d", "--name", &name, "busybox", "sleep", "1000"],
            after,
        );
        assert_consistent(&dy, &format!("run -d killed at {ms} ms"));

        let victim = format!("victim{ms}");
        dy.ok(&[
            "run", "-d", "--name", &victim, "-v", "/data", "busybox", "sleep", "1000",
        ]);
        kill_after(&dy, &["rm", "-f", "-v", &victim], after);
        assert_consistent(&dy, &format!("rm -f -v killed at {ms} ms"));

        let dest = host.path().join(format!("bb{ms}"));
        kill_after(
            &dy,
            &["cp", "target:/bin/busybox", dest.to_str().unwrap()],
            after,
        );
        assert_consistent(&dy, &format!("cp killed at {ms} ms"));
        // A copy is whole or absent, and no temporary file stays.
        if dest.exists() {
            assert_eq!(
                std::fs::metadata(&dest).unwrap().len(),
                whole,
                "cp at {ms} ms"
            );
        }

        kill_after(&dy, &["commit", "target", &format!("img:{ms}")], after);
        assert_consistent(&dy, &format!("commit killed at {ms} ms"));
    }
    let leftovers: Vec<String> = std::fs::read_dir(host.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("dockyard-cp"))
        .collect();
    assert!(leftovers.is_empty(), "partial copies: {leftovers:?}");
    // The target was never left frozen: it still answers.
    assert_eq!(dy.ok(&["exec", "target", "echo", "alive"]), "alive\n");

    // Every container is startable or removable, and the prunes work.
    for id in dy.ok(&["ps", "-aq", "--no-trunc"]).lines() {
        let status = dy.inspect(id, "{{.State.Status}}");
        if status != "running" {
            dy.ok(&["start", id]);
        }
    }
    dy.ok(&["system", "prune", "-f"]);
    for id in dy.ok(&["ps", "-aq", "--no-trunc"]).lines() {
        dy.ok(&["rm", "-f", "-v", id]);
    }
    dy.ok(&["system", "prune", "-f", "--volumes"]);
    assert!(container_dirs(&dy.root_path()).is_empty());
    assert!(
        leftover_cgroups(&dy.parent).is_empty(),
        "{:?}",
        leftover_cgroups(&dy.parent)
    );
    assert!(
        std::fs::read_dir(dy.root_path().join("tmp"))
            .unwrap()
            .next()
            .is_none(),
        "tmp/ keeps what killed commands left"
    );
}

/// SIGKILL every process whose command line names this data root: the
/// CLI, its forked monitor, the small monitor program (`--dir ROOT/...`).
fn kill_everything_of(dy: &Dy) -> usize {
    let root = dy.root_path().to_string_lossy().into_owned();
    let me = std::process::id().to_string();
    let mut n = 0;
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let pid = e.file_name().to_string_lossy().into_owned();
        if pid == me || !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(&root) {
            sigkill(pid.parse().unwrap());
            n += 1;
        }
    }
    n
}

#[test]
fn robustness_kill_9_of_the_monitor_at_any_moment_leaves_a_consistent_store() {
    let dy = Dy::new();
    for ms in (0..=90).step_by(10) {
        let name = format!("mon{ms}");
        let mut child = dy
            .command(&["run", "-d", "--name", &name, "busybox", "sleep", "1000"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(ms));
        // The CLI and the monitor, whatever stage the start is at.
        kill_everything_of(&dy);
        let _ = child.wait();
        std::thread::sleep(Duration::from_millis(100));
        assert_consistent(&dy, &format!("monitor killed at {ms} ms"));
    }
    // Every container left is startable, then removable, with nothing behind.
    for id in dy.ok(&["ps", "-aq", "--no-trunc"]).lines() {
        if dy.inspect(id, "{{.State.Status}}") != "running" {
            dy.ok(&["start", id]);
        }
        assert_eq!(dy.ok(&["exec", id, "echo", "up"]), "up\n");
    }
    for id in dy.ok(&["ps", "-aq", "--no-trunc"]).lines() {
        dy.ok(&["rm", "-f", id]);
    }
    dy.ok(&["system", "prune", "-f"]);
    assert!(container_dirs(&dy.root_path()).is_empty());
    assert!(
        leftover_cgroups(&dy.parent).is_empty(),
        "{:?}",
        leftover_cgroups(&dy.parent)
    );
    let root = dy.root_path().to_string_lossy().into_owned();
    assert!(!mount_points().iter().any(|m| m.starts_with(&root)));
}

/// The size of busybox in the image (what a whole copy has).
fn bb_size(dy: &Dy) -> u64 {
    let out = dy.ok(&["exec", "target", "stat", "-c", "%s", "/bin/busybox"]);
    out.trim().parse().unwrap()
}

/// The monitor of a running container: its init process's parent.
fn monitor_of(dy: &Dy, name: &str) -> (i32, i32) {
    let pid: i32 = dy.inspect(name, "{{.State.Pid}}").parse().unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let ppid = rest.split(' ').nth(1).unwrap().parse().unwrap();
    (pid, ppid)
}

fn sigkill(pid: i32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
}

fn wait_gone(pid: i32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Path::new(&format!("/proc/{pid}")).exists() {
        // A zombie child of init is reaped soon; of us, never: not ours.
        assert!(Instant::now() < deadline, "process {pid} did not die");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn robustness_a_killed_monitor_leaves_what_start_and_rm_clean_up() {
    let dy = Dy::new();
    let root = dy.root_path().to_string_lossy().to_string();
    let mounted = |id: &str| {
        mount_points()
            .iter()
            .any(|m| m.starts_with(&root) && m.contains(id))
    };

    // The monitor dies, the container runs on: rm -f takes it all away.
    dy.ok(&[
        "run", "-d", "--name", "orphaned", "busybox", "sleep", "1000",
    ]);
    let id = full_id(&dy, "orphaned");
    let (_, monitor) = monitor_of(&dy, "orphaned");
    sigkill(monitor);
    wait_gone(monitor);
    // (The container's init dies with its parent, the monitor: lab 02's
    // PDEATHSIG. Either way, its record must not say it runs for long.)
    assert!(mounted(&id), "the killed monitor's mount should be there");
    dy.ok(&["rm", "-f", "orphaned"]);
    assert!(!mounted(&id), "the overlay of {id} is still mounted");
    assert!(
        leftover_cgroups(&dy.parent).is_empty(),
        "{:?}",
        leftover_cgroups(&dy.parent)
    );

    // Monitor and container both die: the record is reconciled, and start
    // clears the stale cgroups and reuses the mount.
    dy.ok(&["run", "-d", "--name", "stale", "busybox", "sleep", "1000"]);
    let id = full_id(&dy, "stale");
    let (pid, monitor) = monitor_of(&dy, "stale");
    sigkill(monitor);
    sigkill(pid);
    wait_gone(pid);
    assert_eq!(dy.inspect("stale", "{{.State.Status}}"), "exited");
    assert!(mounted(&id), "the killed monitor's mount should be there");
    assert!(!leftover_cgroups(&dy.parent).is_empty(), "and its cgroups");
    dy.ok(&["start", "stale"]);
    assert_eq!(dy.ok(&["exec", "stale", "echo", "back"]), "back\n");
    dy.ok(&["rm", "-f", "stale"]);
    assert!(!mounted(&id));
    assert!(
        leftover_cgroups(&dy.parent).is_empty(),
        "{:?}",
        leftover_cgroups(&dy.parent)
    );
    assert_consistent(&dy, "after the monitors died");
}

// ---- item 8: deep trees and abandoned freezes ------------------------------

#[test]
fn robustness_a_freeze_nobody_holds_is_thawed_by_the_next_command() {
    let dy = Dy::new();
    dy.ok(&["run", "-d", "--name", "icy", "busybox", "sleep", "1000"]);
    let id = full_id(&dy, "icy");
    // What a `cp` killed while it held the container frozen leaves: the
    // freezer set, nobody holding it.
    let group = cgroup_dirs(&dy.parent)
        .into_iter()
        .map(|d| d.join(&id))
        .find(|g| g.join("freezer.state").exists() || g.join("cgroup.freeze").exists())
        .expect("the container has a freezer");
    if group.join("cgroup.freeze").exists() {
        std::fs::write(group.join("cgroup.freeze"), "1").unwrap();
    } else {
        std::fs::write(group.join("freezer.state"), "FROZEN").unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while !frozen(&dy, &id) {
        assert!(Instant::now() < deadline, "the freezer did not freeze");
        std::thread::sleep(Duration::from_millis(10));
    }
    dy.ok(&["ps"]);
    assert!(!frozen(&dy, &id), "ps left an abandoned freeze");
    assert_eq!(dy.ok(&["exec", "icy", "echo", "thawed"]), "thawed\n");

    // `pause` means it: a paused container stays frozen.
    dy.ok(&["pause", "icy"]);
    dy.ok(&["ps"]);
    assert!(frozen(&dy, &id), "ps thawed a paused container");
    dy.ok(&["unpause", "icy"]);
}

/// Run a container whose `/t/d` nests `depth` directories `d`, with a file
/// `f` at the bottom. Built inside out (`mv d n/d; mv n d`), so that no
/// path ever grows: a shell's `cd` stops at PATH_MAX, about 2,000 levels.
fn deep_container(dy: &Dy, name: &str, depth: usize) -> String {
    let script = format!(
        "mkdir /t && cd /t && mkdir d && echo bottom > d/f && i=1; \
         while [ $i -lt {depth} ]; do mkdir n && mv d n/d && mv n d; i=$((i+1)); done; \
         touch /ready; sleep 1000"
    );
    dy.ok(&["run", "-d", "--name", name, "busybox", "sh", "-c", &script]);
    let id = full_id(dy, name);
    wait_path(
        &dy.root_path()
            .join("containers")
            .join(&id)
            .join("upper/ready"),
        180,
    );
    id
}

#[test]
fn robustness_a_2000_deep_tree_commits_exports_and_copies() {
    // What crashed with a stack overflow before the walk was iterative.
    let dy = Dy::new();
    let id = deep_container(&dy, "deep", 2000);
    let deepest = format!("t/{}f", "d/".repeat(2000));

    // commit: the upper dir walked, the layer applied, every level in it.
    dy.ok(&["commit", "deep", "deep:1"]);
    assert!(!frozen(&dy, &id), "commit left the container frozen");
    let layer = std::fs::read_dir(dy.root_path().join("layers"))
        .unwrap()
        .flatten()
        .map(|e| e.path().join("diff/t"))
        .find(|p| p.exists())
        .expect("the committed layer holds /t");
    assert_eq!(depth_of(&layer), 2000, "levels in the committed layer");

    // export: the merged tree as a tarball, every level in it.
    let out = tempfile::tempdir().unwrap();
    let tarball = out.path().join("deep.tar");
    dy.ok(&["export", "-o", tarball.to_str().unwrap(), "deep"]);
    let mut archive = tar::Archive::new(std::fs::File::open(&tarball).unwrap());
    let found = archive
        .entries()
        .unwrap()
        .flatten()
        .any(|e| e.path_bytes().as_ref() == deepest.as_bytes());
    assert!(found, "export lacks the deepest file");

    // cp out of the running container (frozen for the copy, then thawed).
    let copied = out.path().join("copy");
    dy.ok(&["cp", "deep:/t/d", copied.to_str().unwrap()]);
    assert!(!frozen(&dy, &id), "cp left the container frozen");
    assert_eq!(depth_of(&copied), 1999, "levels below the copied /t/d");
    assert_eq!(dy.ok(&["exec", "deep", "echo", "alive"]), "alive\n");
}

#[test]
fn robustness_a_3000_deep_tree_fails_cleanly_and_thaws() {
    // Deeper than PATH_MAX: docker's cp and commit fail on it too (with
    // ENAMETOOLONG); neither may crash or leave the container frozen.
    let dy = Dy::new();
    let id = deep_container(&dy, "deeper", 3000);
    let out = tempfile::tempdir().unwrap();
    let tarball = out.path().join("deeper.tar");
    let copied = out.path().join("copy");
    for args in [
        vec!["commit", "deeper", "deeper:1"],
        vec!["export", "-o", tarball.to_str().unwrap(), "deeper"],
        vec!["cp", "deeper:/t", copied.to_str().unwrap()],
    ] {
        let o = dy.run(&args);
        assert!(
            matches!(o.status.code(), Some(0) | Some(1)),
            "{args:?} ended with {:?}: {}",
            o.status,
            text(&o.stderr)
        );
        assert!(!frozen(&dy, &id), "{args:?} left the container frozen");
    }
    assert_eq!(dy.ok(&["exec", "deeper", "echo", "alive"]), "alive\n");
}

/// How many directories `d` nest below `top`, walked with openat (the
/// path is longer than PATH_MAX).
fn depth_of(top: &Path) -> usize {
    use std::os::fd::AsRawFd;
    let mut dir = std::fs::File::open(top).unwrap();
    let mut n = 0;
    loop {
        // SAFETY: a valid descriptor and C string.
        let fd = unsafe {
            libc::openat(
                dir.as_raw_fd(),
                c"d".as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return n;
        }
        // SAFETY: just opened, ours.
        dir = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        n += 1;
    }
}

// ---- item 4: cp sees the container's mounts ---------------------------------

#[test]
fn robustness_cp_goes_through_volumes_binds_and_tmpfs_both_ways() {
    let dy = Dy::new();
    let bind = tempfile::tempdir().unwrap();
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("in.txt"), "hello\n").unwrap();
    let input = host.path().join("in.txt");
    dy.ok(&["volume", "create", "named"]);
    dy.ok(&[
        "run",
        "-d",
        "--name",
        "mnt",
        "-v",
        &format!("{}:/bind", bind.path().display()),
        "-v",
        "named:/named",
        "--tmpfs",
        "/scratch",
        "busybox",
        "sleep",
        "1000",
    ]);
    let id = full_id(&dy, "mnt");
    let upper = dy.root_path().join("containers").join(&id).join("upper");
    for dir in ["/bind", "/named", "/scratch"] {
        // Into the mount: the container sees the file where it was put.
        dy.ok(&["cp", input.to_str().unwrap(), &format!("mnt:{dir}/in.txt")]);
        assert_eq!(
            dy.ok(&["exec", "mnt", "cat", &format!("{dir}/in.txt")]),
            "hello\n",
            "cp into {dir}"
        );
        // Out of the mount: what the container wrote there.
        dy.ok(&[
            "exec",
            "mnt",
            "sh",
            "-c",
            &format!("echo from{dir} > {dir}/out.txt"),
        ]);
        let out = host.path().join(format!("out{}", dir.replace('/', "-")));
        dy.ok(&["cp", &format!("mnt:{dir}/out.txt"), out.to_str().unwrap()]);
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            format!("from{dir}\n")
        );
        // Not in the upper dir, under the mount point, where no one looks.
        assert!(
            !upper.join(&dir[1..]).join("in.txt").exists(),
            "cp wrote under the mount point of {dir}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(bind.path().join("in.txt")).unwrap(),
        "hello\n"
    );
    let named = dy.root_path().join("volumes/named/_data");
    assert!(named.join("in.txt").exists());

    // Stopped, the volumes and binds are still where their targets are.
    dy.ok(&["stop", "-t", "1", "mnt"]);
    dy.ok(&["cp", input.to_str().unwrap(), "mnt:/named/again.txt"]);
    assert!(named.join("again.txt").exists());
    let back = host.path().join("back.txt");
    dy.ok(&["cp", "mnt:/bind/out.txt", back.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&back).unwrap(), "from/bind\n");
}

/// `kill` returns once the signal is sent; a `cp` right after it finds the
/// process gone (and its cgroup with it) before the monitor has recorded the
/// exit. It used to fail every time, trying to freeze a cgroup that was no
/// longer there or to open `/proc/PID/root` of a dead process; it waits for
/// the exit and copies from the stopped container, as `docker cp` does.
#[test]
fn robustness_cp_right_after_kill() {
    let dy = Dy::new();
    let host = tempfile::tempdir().unwrap();
    for i in 0..3 {
        let name = format!("killed{i}");
        dy.ok(&["run", "-d", "--name", &name, "busybox", "sleep", "1000"]);
        dy.ok(&["exec", &name, "sh", "-c", "echo kept > /tmp/f"]);
        dy.ok(&["kill", &name]);
        let out = host.path().join(format!("f{i}"));
        dy.ok(&["cp", &format!("{name}:/tmp/f"), out.to_str().unwrap()]);
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "kept\n");
    }
}
