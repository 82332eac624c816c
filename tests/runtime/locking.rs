//! Commands racing on one container: a shim's `kill` and `start` while
//! the kubelet's `delete --force` comes in (and a second delete, as a
//! retried one). Each changing command holds flock(LOCK_EX) on the
//! container's state directory, so they take turns: both deletes succeed
//! (a container already gone is no error for `--force`, as in runc),
//! `start` and `kill` either act or say the container is gone or
//! stopped, and at the end the kernel shows nothing left: no process, no
//! cgroup, no state directory. `exec` takes its turn too, holding the lock
//! until its process is inside the container (and no longer: a long exec
//! does not hold back `kill`).

use std::process::Output;

use crate::support::{text, Env};

/// What `start` or `kill` may answer when a delete was first.
fn consistent(what: &str, out: &Output) {
    if out.status.success() {
        return;
    }
    refused(what, out);
}

/// A refusal that says the container is gone or stopped.
fn refused(what: &str, out: &Output) {
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{what} crashed: {err}");
    let fine = [
        "does not exist",
        "stopped",
        "not running",
        "exited before it was started",
    ];
    assert!(
        fine.iter().any(|f| err.contains(f)),
        "{what} failed with an inconsistent error: {err}"
    );
}

#[test]
fn racing_delete_force_kill_and_start_leave_nothing_behind() {
    let env = Env::new("race");
    env.edit(|c| c["process"]["args"] = serde_json::json!(["sleep", "300"]));
    let bundle = env.bundle.to_str().unwrap();
    for round in 0..8 {
        let id = format!("race{round}");
        let out = env.rt(&["create", "--bundle", bundle, &id]);
        assert!(out.status.success(), "create: {}", text(&out.stderr));
        let pid = env.state(&id)["pid"].as_i64().unwrap();
        let (start, kill, del1, del2) = std::thread::scope(|s| {
            let start = s.spawn(|| env.rt(&["start", &id]));
            let kill = s.spawn(|| env.rt(&["kill", &id, "KILL"]));
            let del1 = s.spawn(|| env.rt(&["delete", "--force", &id]));
            let del2 = s.spawn(|| env.rt(&["delete", "--force", &id]));
            (
                start.join().unwrap(),
                kill.join().unwrap(),
                del1.join().unwrap(),
                del2.join().unwrap(),
            )
        });
        for (what, out) in [("delete --force", &del1), ("second delete --force", &del2)] {
            assert!(out.status.success(), "{what}: {}", text(&out.stderr));
        }
        consistent("start", &start);
        consistent("kill", &kill);
        // The kernel's view: the process is gone (or a zombie until init,
        // its parent since create exited, reaps it), the cgroup and the
        // state too.
        let status = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = status.rsplit(')').next().unwrap_or("").trim_start();
        assert!(
            status.is_empty() || state.starts_with('Z'),
            "{id}: its process lives on: {status}"
        );
        env.assert_gone(&id);
        let out = env.rt(&["state", &id]);
        assert!(!out.status.success(), "state of a deleted {id}");
    }
}

/// A delete that finds the container locked waits for it: `flock -x` on
/// the state directory, held by the test, holds `delete` back until the
/// test lets go.
#[test]
fn a_command_waits_for_the_lock_on_the_state_directory() {
    let env = Env::new("lockwait");
    env.edit(|c| c["process"]["args"] = serde_json::json!(["sleep", "300"]));
    let bundle = env.bundle.to_str().unwrap();
    let out = env.rt(&["run", "--detach", "--bundle", bundle, "lockwait"]);
    assert!(out.status.success(), "run -d: {}", text(&out.stderr));
    let pid = env.state("lockwait")["pid"].as_i64().unwrap();
    let dir = std::fs::File::open(env.root.join("lockwait")).unwrap();
    // SAFETY: flock on a descriptor we own.
    assert_eq!(
        unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&dir), libc::LOCK_EX) },
        0
    );
    let deleted = std::thread::scope(|s| {
        let del = s.spawn(|| env.rt(&["delete", "--force", "lockwait"]));
        std::thread::sleep(std::time::Duration::from_millis(500));
        // Still waiting: the container runs on.
        assert!(!del.is_finished(), "delete did not wait for the lock");
        assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
        drop(dir);
        del.join().unwrap()
    });
    assert!(
        deleted.status.success(),
        "delete: {}",
        text(&deleted.stderr)
    );
    env.assert_gone("lockwait");
}

/// The PIDs of the processes whose command line is `argv` (words
/// separated by spaces).
fn processes_with(argv: &str) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        if text(&cmdline).replace('\0', " ").trim_end() == argv {
            found.push(name);
        }
    }
    found
}

/// `exec` racing two `delete --force`: either the exec'd process got in
/// first and dies with the container (status 137, SIGKILL), or the exec
/// says the container is gone; never an error from half way through
/// joining (a cgroup removed under it, a PID namespace whose init is
/// dead), and nothing is left: no exec'd process, no cgroup, no state
/// directory.
#[test]
fn racing_exec_and_delete_force_leave_nothing_behind() {
    let env = Env::new("racexec");
    env.edit(|c| c["process"]["args"] = serde_json::json!(["sleep", "300"]));
    let bundle = env.bundle.to_str().unwrap();
    for round in 0..12 {
        let id = format!("racexec{round}");
        let out = env.rt(&["run", "--detach", "--bundle", bundle, &id]);
        assert!(out.status.success(), "run -d: {}", text(&out.stderr));
        let marker = format!("31{round:02}9");
        let (exec, del1, del2) = std::thread::scope(|s| {
            let exec = s.spawn(|| env.rt(&["exec", &id, "--", "sleep", &marker]));
            let del1 = s.spawn(|| env.rt(&["delete", "--force", &id]));
            let del2 = s.spawn(|| env.rt(&["delete", "--force", &id]));
            (
                exec.join().unwrap(),
                del1.join().unwrap(),
                del2.join().unwrap(),
            )
        });
        for (what, out) in [("delete --force", &del1), ("second delete --force", &del2)] {
            assert!(out.status.success(), "{what}: {}", text(&out.stderr));
        }
        if exec.status.code() != Some(137) {
            refused("exec", &exec);
        }
        assert!(
            processes_with(&format!("sleep {marker}")).is_empty(),
            "{id}: the exec'd process lives on"
        );
        env.assert_gone(&id);
    }
}

/// `exec` waits for the lock before it looks at the container (while the
/// test holds `flock -x` on the state directory, its command does not
/// run), and once its process runs it holds the lock no longer: `kill`
/// goes through while a long exec goes on, and takes the exec'd process
/// down with the container's PID namespace.
#[test]
fn exec_waits_for_the_lock_and_a_long_exec_does_not_hold_it() {
    let env = Env::new("lockexec");
    // Short-lived: an exec that held the lock until its command ended
    // would hold `kill` back until this init, then its command, ends.
    env.edit(|c| c["process"]["args"] = serde_json::json!(["sleep", "20"]));
    let bundle = env.bundle.to_str().unwrap();
    let out = env.rt(&["run", "--detach", "--bundle", bundle, "lockexec"]);
    assert!(out.status.success(), "run -d: {}", text(&out.stderr));
    let ran = env.rootfs.path().join("exec-ran");
    let dir = std::fs::File::open(env.root.join("lockexec")).unwrap();
    // SAFETY: flock on a descriptor we own.
    assert_eq!(
        unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&dir), libc::LOCK_EX) },
        0
    );
    let script = "touch /exec-ran; exec sleep 4242";
    let (exec, killed) = std::thread::scope(|s| {
        let exec = s.spawn(|| env.rt(&["exec", "lockexec", "--", "sh", "-c", script]));
        // A failed assertion below would leave the exec running, and the
        // scope waiting for it: let go of the lock and take the container
        // down first.
        let mut guard = DeleteOnPanic(&env, "lockexec", Some(dir));
        std::thread::sleep(std::time::Duration::from_millis(500));
        assert!(!exec.is_finished(), "exec did not wait for the lock");
        assert!(
            !ran.exists(),
            "exec ran its command while the lock was held"
        );
        guard.2 = None;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !ran.exists() {
            assert!(std::time::Instant::now() < deadline, "exec never ran");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let started = std::time::Instant::now();
        let killed = env.rt(&["kill", "lockexec", "KILL"]);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(3),
            "kill waited {:?} for a running exec",
            started.elapsed()
        );
        (exec.join().unwrap(), killed)
    });
    assert!(killed.status.success(), "kill: {}", text(&killed.stderr));
    assert_eq!(
        exec.status.code(),
        Some(137),
        "exec: {}",
        text(&exec.stderr)
    );
    assert!(
        processes_with("sleep 4242").is_empty(),
        "the exec'd process lives on"
    );
    let out = env.rt(&["delete", "--force", "lockexec"]);
    assert!(out.status.success(), "delete: {}", text(&out.stderr));
    env.assert_gone("lockexec");
}

/// `delete --force ID` when dropped during a panic, once the lock it
/// holds (if any) is let go.
struct DeleteOnPanic<'a>(&'a Env, &'a str, Option<std::fs::File>);

impl Drop for DeleteOnPanic<'_> {
    fn drop(&mut self) {
        self.2 = None;
        if std::thread::panicking() {
            let _ = self.0.rt(&["delete", "--force", self.1]);
        }
    }
}
