//! Commands racing on one container: a shim's `kill` and `start` while
//! the kubelet's `delete --force` comes in (and a second delete, as a
//! retried one). Each changing command holds flock(LOCK_EX) on the
//! container's state directory, so they take turns: both deletes succeed
//! (a container already gone is no error for `--force`, as in runc),
//! `start` and `kill` either act or say the container is gone or
//! stopped, and at the end the kernel shows nothing left: no process, no
//! cgroup, no state directory.

use std::process::Output;

use crate::support::{text, Env};

/// What `start` or `kill` may answer when a delete was first.
fn consistent(what: &str, out: &Output) {
    if out.status.success() {
        return;
    }
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
