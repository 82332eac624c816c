//! `remove_stale`, against the real kernel: a group whose owner vanished
//! (here: leaked with mem::forget, as if its process had been SIGKILLed) is
//! found, its processes killed, and its directories removed. Needs root.

use std::process::Command;

use lab03_cgroups::{detect, remove_stale, Cgroup, Limits};

#[test]
fn a_group_left_by_a_dead_owner_is_removed() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let host = detect().unwrap();
    let parent = format!("dockyard-test-stale-{}", std::process::id());
    let limits = Limits {
        pids: Some(10),
        ..Default::default()
    };
    let cgroup = Cgroup::create(&host, &parent, "c1", &limits).unwrap();
    let mut child = Command::new("sleep").arg("30").spawn().unwrap();
    cgroup.add_pid(child.id() as i32).unwrap();
    let dirs = cgroup.dirs();
    // The owner "dies" without destroying its group.
    std::mem::forget(cgroup);

    assert!(remove_stale(&host, &parent, "c1").unwrap());
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "the process in the stale group was killed"
    );
    for d in &dirs {
        assert!(!d.exists(), "{} is left", d.display());
        assert!(!d.parent().unwrap().exists(), "the empty parent is left");
    }
    assert!(
        !remove_stale(&host, &parent, "c1").unwrap(),
        "nothing left the second time"
    );
}
