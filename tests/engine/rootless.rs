//! Rootless: dockyard run by an unprivileged user (`setpriv --reuid`), in
//! a user namespace of its own, mapped through `newuidmap` when the user
//! has a subordinate range, and saying what it cannot do without root.

use std::process::{Command, Output, Stdio};

use dockyard_e2e::dockyard::text;
use dockyard_e2e::fixtures::{bin, require_root, workspace_root};

use crate::common::{cgroup_host, id_map, owner, read_trimmed};

/// dockyard run by `nobody` (uid 65534, through setpriv), from a copy of
/// the binary and the base image in a home directory of its own, so that
/// nothing depends on what the checkout's permissions let others read.
struct Rootless {
    home: tempfile::TempDir,
}

const NOBODY: u32 = 65_534;

impl Rootless {
    fn new() -> Rootless {
        require_root();
        let home = tempfile::Builder::new()
            .prefix("dockyard-rootless-")
            .tempdir()
            .unwrap();
        // Installed as dockyard is: with its monitor program beside it.
        for program in ["dockyard", "dockyard-monitor"] {
            std::fs::copy(bin(program), home.path().join(program)).unwrap();
        }
        let oci = workspace_root().join("images/busybox/oci");
        let cp = Command::new("cp")
            .arg("-r")
            .arg(&oci)
            .arg(home.path().join("oci"))
            .status()
            .unwrap();
        assert!(cp.success());
        let chown = Command::new("chown")
            .args(["-R", &format!("{NOBODY}:{NOBODY}")])
            .arg(home.path())
            .status()
            .unwrap();
        assert!(chown.success());
        Rootless { home }
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_in(None, args)
    }

    /// dockyard run as the user from inside the cgroup `group` (v2): the
    /// shell moves itself there while still root, then becomes the user,
    /// as a login into a session systemd delegates would place it.
    fn run_in(&self, group: Option<&std::path::Path>, args: &[&str]) -> Output {
        let (id, home) = (NOBODY.to_string(), self.home.path());
        let mut cmd = match group {
            Some(g) => {
                let mut c = Command::new("sh");
                c.args(["-c", "echo $$ > \"$0/cgroup.procs\" && exec \"$@\""])
                    .arg(g)
                    .arg("setpriv");
                c
            }
            None => Command::new("setpriv"),
        };
        cmd.args([
            &format!("--reuid={id}"),
            &format!("--regid={id}"),
            "--clear-groups",
            "--",
        ])
        .arg(home.join("dockyard"))
        .args(args)
        .current_dir(home)
        .env("HOME", home)
        .env_remove("XDG_DATA_HOME")
        .env_remove("DOCKYARD_ROOT")
        .stdin(Stdio::null())
        .output()
        .expect("running setpriv")
    }

    fn ok_in(&self, group: &std::path::Path, args: &[&str]) -> String {
        let out = self.run_in(Some(group), args);
        assert!(
            out.status.success(),
            "rootless dockyard {args:?} in {} failed ({:?}):\n{}{}",
            group.display(),
            out.status,
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "rootless dockyard {args:?} failed ({:?}):\n{}{}",
            out.status,
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }
}

/// An image whose /etc/group names root in adm (4) and wheel (10), made
/// with `commit`; then what its root gets: the `Groups:` line of
/// /proc/self/status, the namespace's /proc/self/setgroups, and `id`.
fn root_in_groups(r: &Rootless) -> String {
    let add = "echo wheel:x:10:root >> /etc/group; echo adm:x:4:root,adm >> /etc/group";
    r.ok(&["run", "--name", "grouped", "busybox", "sh", "-c", add]);
    r.ok(&["commit", "grouped", "rootgroups:1"]);
    r.ok(&["rm", "grouped"]);
    let show = "grep ^Groups: /proc/self/status; cat /proc/self/setgroups; id";
    r.ok(&["run", "--rm", "rootgroups:1", "sh", "-c", show])
}

impl Drop for Rootless {
    fn drop(&mut self) {
        let ids = self.run(&["ps", "-aq", "--no-trunc"]);
        for id in text(&ids.stdout).lines() {
            let _ = self.run(&["rm", "-f", id]);
        }
    }
}

#[test]
fn rootless_runs_as_an_unprivileged_user_and_says_what_it_cannot_do() {
    // Nobody's ranges must not change under us (the second test adds one).
    let lock = dockyard_e2e::subids::SubIds::hold();
    let nobody_has_a_range = ["/etc/subuid", "/etc/subgid"].iter().any(|f| {
        std::fs::read_to_string(f)
            .unwrap_or_default()
            .lines()
            .any(|l| l.starts_with("nobody:") || l.starts_with("65534:"))
    });
    let r = Rootless::new();
    r.ok(&["load", "-i", "oci"]);
    // The data root is the user's: ~/.local/share/dockyard, owned by it.
    let data = r.home.path().join(".local/share/dockyard");
    assert_eq!(owner(&data.join("index.json")), (NOBODY, NOBODY));
    assert_eq!(r.ok(&["run", "--rm", "busybox", "echo", "hi"]), "hi\n");
    assert!(r.ok(&["info"]).contains("\n  rootless\n"));
    // Inside: root, mapped to the one ID the user has (0 of dockyard's own
    // user namespace, itself uid 65534 on the host).
    let out = r.ok(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "id -u; cat /proc/self/uid_map",
    ]);
    let (uid, map) = out.split_once('\n').unwrap();
    assert_eq!(uid, "0");
    if !nobody_has_a_range {
        assert_eq!(id_map(map), vec![vec![0, 0, 1]]);
    }
    // From the host: the container is the user's process, in a user
    // namespace that is not the host's, under Docker's capability mask.
    // (It sleeps long enough to be running still when `cp` below is
    // refused, also in the v2 guest, where everything is ~10x slower.)
    r.ok(&["run", "-d", "--name", "bg", "busybox", "sleep", "1000"]);
    let pid = r.ok(&["inspect", "-f", "{{.State.Pid}}", "bg"]);
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid.trim())).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap()
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_string()
    };
    assert_eq!(field("Uid:"), NOBODY.to_string());
    assert_eq!(field("CapBnd:"), "00000000a80425fb");
    assert_eq!(field("Seccomp:"), "2");
    assert_ne!(
        std::fs::read_link(format!("/proc/{}/ns/user", pid.trim())).unwrap(),
        std::fs::read_link("/proc/self/ns/user").unwrap()
    );
    // exec enters it from the user's own side of the namespaces.
    assert_eq!(r.ok(&["exec", "bg", "id", "-u"]), "0\n");
    // What needs the host's root is refused, with the reason.
    for (args, says) in [
        (
            &["run", "--rm", "-m", "32m", "busybox", "true"][..],
            "cgroup",
        ),
        (
            &["run", "--rm", "--network", "bridge", "busybox", "true"][..],
            "network namespace",
        ),
        (
            &["run", "--rm", "-p", "80:80", "busybox", "true"][..],
            "below 1024",
        ),
        (&["--userns-remap", "default", "images"][..], "needs root"),
    ] {
        let out = r.run(args);
        assert_eq!(
            out.status.code(),
            Some(125),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains(says),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    let out = r.run(&["pause", "bg"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("rootless mode"),
        "{}",
        text(&out.stderr)
    );
    let out = r.run(&["cp", "bg:/etc/passwd", "passwd"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("stop it first"),
        "{}",
        text(&out.stderr)
    );
    r.ok(&["stop", "-t", "1", "bg"]);
    r.ok(&["cp", "bg:/etc/passwd", "passwd"]);
    assert!(std::fs::read_to_string(r.home.path().join("passwd"))
        .unwrap()
        .starts_with("root:"));
    r.ok(&["rm", "-f", "bg"]);
    // Root of an image whose /etc/group lists it still runs: with only
    // the user's own ID mapped, setgroups(2) is denied in the namespace,
    // and the groups are left as they are (none: setpriv cleared them).
    let out = root_in_groups(&r);
    if !nobody_has_a_range {
        assert_eq!(out, "Groups:\t \ndeny\nuid=0(root) gid=0(root)\n");
    }
    assert_eq!(r.ok(&["ps", "-aq"]), "");
    drop(lock);
}

#[test]
fn rootless_with_a_subuid_range_maps_it_through_newuidmap() {
    const START: u32 = 3_600_000;
    let _ids = dockyard_e2e::subids::SubIds::add(&NOBODY.to_string(), START, 65_536);
    let r = Rootless::new();
    r.ok(&["load", "-i", "oci"]);
    // dockyard's own namespace: 0 is nobody, 1..=65536 the range; the
    // container's maps all of it, cut where dockyard's map is cut.
    r.ok(&["run", "-d", "--name", "ranged", "busybox", "sleep", "1000"]);
    let pid = r.ok(&["inspect", "-f", "{{.State.Pid}}", "ranged"]);
    let outer = std::fs::read_to_string(format!("/proc/{}/uid_map", pid.trim())).unwrap();
    assert_eq!(
        id_map(&outer),
        vec![vec![0, NOBODY as u64, 1], vec![1, START as u64, 65_536]]
    );
    let out = r.ok(&[
        "exec",
        "ranged",
        "sh",
        "-c",
        "cat /proc/self/uid_map; touch /f; chown 1000:1000 /f",
    ]);
    assert_eq!(id_map(&out), vec![vec![0, 0, 1], vec![1, 1, 65_536]]);
    // uid 1000 inside is a uid of the range on the host.
    let id = r.ok(&["inspect", "-f", "{{.Id}}", "ranged"]);
    let upper = r
        .home
        .path()
        .join(".local/share/dockyard/containers")
        .join(id.trim())
        .join("upper/f");
    assert_eq!(owner(&upper), (START + 999, START + 999));
    // With the range, gids 4 and 10 are mapped, and root gets them.
    let out = root_in_groups(&r);
    assert!(
        out.starts_with("Groups:\t0 4 10 \n") && out.ends_with("groups=0(root),4(adm),10(wheel)\n"),
        "{out}"
    );
}

/// A cgroup v2 subtree delegated to `nobody` as systemd delegates one to
/// each user: the directory, its `cgroup.procs`, `cgroup.subtree_control`
/// and `cgroup.threads` are the user's, and the parent hands cpu, memory and
/// pids down to it. The user's shell runs in `session` below it (a group
/// that hands controllers down may hold no process itself). Removed, from
/// the leaves up, when dropped.
struct Delegated {
    top: std::path::PathBuf,
}

impl Delegated {
    fn new(mount: &std::path::Path) -> Delegated {
        use std::os::unix::fs::chown;
        let top = mount.join(format!("dockyard-rootless-{}", std::process::id()));
        std::fs::write(mount.join("cgroup.subtree_control"), "+cpu +memory +pids").unwrap();
        for dir in [top.clone(), top.join("session")] {
            std::fs::create_dir(&dir).unwrap();
            for f in [
                "",
                "cgroup.procs",
                "cgroup.subtree_control",
                "cgroup.threads",
            ] {
                chown(dir.join(f), Some(NOBODY), Some(NOBODY)).unwrap();
            }
        }
        Delegated { top }
    }
}

impl Drop for Delegated {
    fn drop(&mut self) {
        // Deepest first: what dockyard left (it should leave only its
        // parent), the session, the top.
        let out = Command::new("find")
            .arg(&self.top)
            .args(["-depth", "-type", "d"])
            .output()
            .unwrap();
        for dir in text(&out.stdout).lines() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

#[test]
fn rootless_limits_go_into_a_delegated_v2_subtree_and_are_refused_elsewhere() {
    let _lock = dockyard_e2e::subids::SubIds::hold();
    let host = cgroup_host();
    let r = Rootless::new();
    r.ok(&["load", "-i", "oci"]);
    let limited = [
        "run",
        "--rm",
        "-m",
        "32m",
        "--cpus",
        "0.5",
        "--pids-limit",
        "20",
        "busybox",
        "true",
    ];
    if host.version() == lab03_cgroups::Version::V1 {
        // v1 or hybrid: refused before anything is made, with the fix.
        let out = r.run(&limited);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(125), "{err}");
        assert!(err.contains("v1 or hybrid"), "{err}");
        assert!(err.contains("systemd.unified_cgroup_hierarchy=1"), "{err}");
        assert_eq!(r.ok(&["ps", "-aq"]), "");
        return;
    }
    // Pure v2, nothing delegated around the caller: refused with the fix.
    let out = r.run(&limited);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{err}");
    assert!(err.contains("no cgroup v2 subtree is delegated"), "{err}");
    assert!(err.contains("systemd-run --user --scope"), "{err}");

    // A delegated subtree, dockyard run from inside it.
    let mount = host.v2_mount.clone().unwrap();
    let d = Delegated::new(&mount);
    let session = d.top.join("session");
    r.ok_in(
        &session,
        &[
            "run",
            "-d",
            "--name",
            "lim",
            "-m",
            "32m",
            "--cpus",
            "0.5",
            "--pids-limit",
            "20",
            "busybox",
            "sleep",
            "1000",
        ],
    );
    let id = r.ok_in(&session, &["inspect", "-f", "{{.Id}}", "lim"]);
    let parent = r.ok_in(
        &session,
        &["inspect", "-f", "{{.HostConfig.CgroupParent}}", "lim"],
    );
    let top = d.top.strip_prefix(&mount).unwrap().to_str().unwrap();
    assert_eq!(parent.trim(), format!("{top}/dockyard"));
    // The kernel holds the limits in the container's group below the
    // subtree, the user's own, and the container's process is in it.
    let group = d.top.join("dockyard").join(id.trim());
    assert_eq!(read_trimmed(&group.join("memory.max")), "33554432");
    assert_eq!(read_trimmed(&group.join("cpu.max")), "50000 100000");
    assert_eq!(read_trimmed(&group.join("pids.max")), "20");
    assert_eq!(owner(&group), (NOBODY, NOBODY));
    let pid = r.ok_in(&session, &["inspect", "-f", "{{.State.Pid}}", "lim"]);
    let cg = std::fs::read_to_string(format!("/proc/{}/cgroup", pid.trim())).unwrap();
    assert_eq!(cg.trim(), format!("0::/{top}/dockyard/{}", id.trim()));
    // Nothing above the subtree was written: root's parent hands down only
    // what the test enabled, and no group of dockyard's is outside it.
    assert!(!mount.join("dockyard").join(id.trim()).exists());
    // rm takes the container's group away; the parent stays, the user's.
    r.ok_in(&session, &["rm", "-f", "lim"]);
    assert!(!group.exists(), "{} is left", group.display());
    // A container created in the subtree cannot be started from outside it:
    // that process could not move the container into its group.
    r.ok_in(
        &session,
        &["create", "--name", "out", "-m", "32m", "busybox", "true"],
    );
    let out = r.run(&["start", "out"]);
    let err = text(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("delegated"), "{err}");
    r.ok_in(&session, &["rm", "out"]);
}
