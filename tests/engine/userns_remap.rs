//! `--userns-remap`: containers in a user namespace whose root is an
//! unprivileged range of the host (`/etc/subuid`, `/proc/PID/uid_map`), so
//! what they write is owned by the range and root's files stay out of reach.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use dockyard_e2e::dockyard::{text, Dockyard as Dy};
use dockyard_e2e::fixtures::bin;
use serde_json::Value;

use crate::common::{id_map, owner};

/// The numeric user and group whose ranges the remap tests add: no passwd
/// entry is needed, /etc/subuid lines may name a number.
const REMAP_ID: u32 = 64_123;
/// Where the range starts on the host, far from any distribution's own.
const REMAP_START: u32 = 3_100_000;
const REMAP_COUNT: u32 = 65_536;

/// A data root under `--userns-remap 64123:64123`, with busybox loaded, and
/// the range in /etc/subuid and /etc/subgid for as long as it lives
/// (restored even if the test fails: see `SubIds`).
struct Remapped {
    dy: Dy,
    // Last: the range is removed after the containers are.
    _ids: dockyard_e2e::subids::SubIds,
}

impl std::ops::Deref for Remapped {
    type Target = Dy;
    fn deref(&self) -> &Dy {
        &self.dy
    }
}

impl Remapped {
    fn new() -> Remapped {
        let ids =
            dockyard_e2e::subids::SubIds::add(&REMAP_ID.to_string(), REMAP_START, REMAP_COUNT);
        let dy = Dy::empty("dockyard-remap").with_globals(&["--userns-remap", &Self::setting()]);
        dy.load_busybox();
        Remapped { dy, _ids: ids }
    }

    fn setting() -> String {
        format!("{REMAP_ID}:{REMAP_ID}")
    }

    /// The remapped data root: `<root>/<uid>.<gid>`, as Docker names it.
    fn data_root(&self) -> PathBuf {
        self.root
            .path()
            .join(format!("{REMAP_START}.{REMAP_START}"))
    }
}

#[test]
fn userns_remap_from_daemon_json_maps_root_to_the_range() {
    let r = Remapped::new();
    // daemon.json's "userns-remap", with no flag: the same data root.
    let conf = r.root.path().join("daemon.json");
    std::fs::write(
        &conf,
        format!(
            r#"{{"bridge": "none", "userns-remap": "{}"}}"#,
            Remapped::setting()
        ),
    )
    .unwrap();
    let out = Command::new(bin("dockyard"))
        .arg("--root")
        .arg(r.root.path())
        .arg("--config")
        .arg(&conf)
        .arg("run")
        .arg("--rm")
        .arg(format!("--cgroup-parent={}", r.parent))
        .args([
            "busybox",
            "sh",
            "-c",
            "id -u; id -g; cat /proc/self/uid_map; echo --; cat /proc/self/gid_map",
        ])
        .env_remove("DOCKYARD_ROOT")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let (ids, maps) = stdout.split_at(stdout.find("     ").unwrap_or(0));
    assert_eq!(ids, "0\n0\n", "{stdout}");
    let (uid_map, gid_map) = maps.split_once("--\n").unwrap();
    let want = vec![vec![0, REMAP_START as u64, REMAP_COUNT as u64]];
    assert_eq!(id_map(uid_map), want, "{stdout}");
    assert_eq!(id_map(gid_map), want, "{stdout}");
    // The kernel agrees from outside: a running container's first process
    // is uid REMAP_START on the host.
    r.ok(&["run", "-d", "--name", "sleeper", "busybox", "sleep", "60"]);
    let pid = r.ok(&["inspect", "-f", "{{.State.Pid}}", "sleeper"]);
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid.trim())).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert_eq!(
        uid_line.split_whitespace().nth(1),
        Some(REMAP_START.to_string().as_str()),
        "{uid_line}"
    );
    assert_eq!(
        r.ok(&["inspect", "-f", "{{.HostConfig.UsernsMode}}", "sleeper"]),
        "\n"
    );
    let info = r.ok(&["info"]);
    assert!(info.contains("\n  userns\n"), "{info}");
    assert!(
        info.contains(&format!(
            "Docker Root Dir: {}",
            r.root
                .path()
                .join(format!("{REMAP_START}.{REMAP_START}"))
                .display()
        )),
        "{info}"
    );
    // The data root is Docker's <root>/<uid>.<gid>, reachable only by the
    // remapped group, and the image's files on disk belong to the range.
    use std::os::unix::fs::PermissionsExt;
    let data = r.data_root();
    let mode = std::fs::metadata(&data).unwrap().permissions().mode() & 0o7777;
    assert_eq!((mode, owner(&data)), (0o710, (0, REMAP_START)));
    let layers: Vec<_> = std::fs::read_dir(data.join("layers"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(layers.len(), 1);
    assert_eq!(
        owner(&layers[0].join("diff/bin/busybox")),
        (REMAP_START, REMAP_START)
    );
    // Without the remap the plain data root has no image: it was loaded
    // into the remapped one only.
    let plain = Command::new(bin("dockyard"))
        .arg("--root")
        .arg(r.root.path())
        .args(["images", "-q"])
        .output()
        .unwrap();
    assert_eq!(text(&plain.stdout), "", "{}", text(&plain.stderr));
}

#[test]
fn userns_remap_owns_what_it_writes_and_cannot_write_roots_files() {
    let r = Remapped::new();
    let host = tempfile::Builder::new()
        .prefix("dockyard-remap-host-")
        .tempdir()
        .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(host.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let rootfile = host.path().join("rootfile");
    std::fs::write(&rootfile, "root's\n").unwrap();
    std::fs::set_permissions(&rootfile, std::fs::Permissions::from_mode(0o644)).unwrap();
    let bind = format!("{}:/data", host.path().display());

    // A new file belongs to the range's first uid on the host.
    r.ok(&[
        "run",
        "--rm",
        "-v",
        &bind,
        "busybox",
        "sh",
        "-c",
        "echo hi > /data/new",
    ]);
    assert_eq!(owner(&host.path().join("new")), (REMAP_START, REMAP_START));

    // Host root's 0644 file: root inside has CAP_DAC_OVERRIDE, but in its
    // own user namespace, which does not own this inode: write refused.
    let script = "ls -ln /data/rootfile; echo more >> /data/rootfile";
    let out = r.run(&["run", "--rm", "-v", &bind, "busybox", "sh", "-c", script]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("Permission denied"),
        "{}",
        text(&out.stderr)
    );
    // Unmapped, the host's root shows as nobody (65534).
    assert!(
        text(&out.stdout).contains(" 65534 "),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(std::fs::read_to_string(&rootfile).unwrap(), "root's\n");

    // --userns=host: the old mapping (the host's whole range), and then the
    // same write works, as it does without remap.
    let out = r.ok(&[
        "run",
        "--rm",
        "--userns=host",
        "-v",
        &bind,
        "busybox",
        "sh",
        "-c",
        "cat /proc/self/uid_map; echo more >> /data/rootfile",
    ]);
    assert_eq!(id_map(&out), vec![vec![0, 0, 4_294_967_295]]);
    assert_eq!(
        std::fs::read_to_string(&rootfile).unwrap(),
        "root's\nmore\n"
    );
    r.ok(&[
        "create",
        "--name",
        "hostns",
        "--userns=host",
        "busybox",
        "true",
    ]);
    assert_eq!(
        r.ok(&["inspect", "-f", "{{.HostConfig.UsernsMode}}", "hostns"]),
        "host\n"
    );
}

#[test]
fn userns_remap_exec_joins_the_user_namespace() {
    let r = Remapped::new();
    r.ok(&["run", "-d", "--name", "xer", "busybox", "sleep", "60"]);
    let pid = r.ok(&["inspect", "-f", "{{.State.Pid}}", "xer"]);
    let theirs = std::fs::read_link(format!("/proc/{}/ns/user", pid.trim())).unwrap();
    assert_ne!(theirs, std::fs::read_link("/proc/self/ns/user").unwrap());
    let out = r.ok(&[
        "exec",
        "xer",
        "sh",
        "-c",
        "readlink /proc/self/ns/user; id -u; cat /proc/self/uid_map; touch /by-exec",
    ]);
    let mut lines = out.lines();
    assert_eq!(lines.next(), theirs.to_str());
    assert_eq!(lines.next(), Some("0"));
    assert_eq!(
        id_map(&lines.collect::<Vec<_>>().join("\n")),
        vec![vec![0, REMAP_START as u64, REMAP_COUNT as u64]]
    );
    let id = r.ok(&["inspect", "-f", "{{.Id}}", "xer"]);
    let upper = r
        .data_root()
        .join("containers")
        .join(id.trim())
        .join("upper");
    assert_eq!(owner(&upper.join("by-exec")), (REMAP_START, REMAP_START));

    // Root gets the groups the image's /etc/group lists it in, in run and
    // exec alike, but not one the range does not map (70000 > 65535): the
    // kernel could not give it, and the container runs without it.
    let add = "echo wheel:x:10:root >> /etc/group; echo far:x:70000:root >> /etc/group";
    r.ok(&["run", "--name", "grouped", "busybox", "sh", "-c", add]);
    r.ok(&["commit", "grouped", "rootgroups:1"]);
    r.ok(&["run", "-d", "--name", "rg", "rootgroups:1", "sleep", "60"]);
    let groups = "grep ^Groups: /proc/self/status";
    let want = "Groups:\t0 10 \n";
    assert_eq!(
        r.ok(&["run", "--rm", "rootgroups:1", "sh", "-c", groups]),
        want
    );
    assert_eq!(r.ok(&["exec", "rg", "sh", "-c", groups]), want);
}

#[test]
fn userns_remap_keeps_the_escape_attempts_failing() {
    let r = Remapped::new();
    // The probe's nested-chroot escape.
    let out = r.ok(&["run", "--rm", "busybox", "probe", "escape"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["escaped"], false, "{v:#}");
    // A few of the suite's attempts: each must fail (exit 1 from the wrapper).
    for attempt in [
        "mkdir -p /mnt && mount -t tmpfs none /mnt",
        "hostname dyescape",
        "unshare -U -r true",
        "ip link add dyesc0 type bridge",
        "ls /proc/1/root/../../../../etc/shadow",
        "[ -n \"$(head -c 1 /proc/timer_list)\" ]",
    ] {
        let script = format!("if {{ {attempt} ; }} >/dev/null 2>&1; then exit 0; else exit 1; fi");
        let out = r.run(&["run", "--rm", "busybox", "sh", "-c", &script]);
        assert_eq!(
            out.status.code(),
            Some(1),
            "ESCAPE under userns-remap: {attempt}"
        );
    }
    // The probe: Docker's capability mask, seccomp and no_new_privs, all
    // inside the user namespace.
    let v: Value = serde_json::from_str(&r.ok(&["run", "--rm", "busybox", "probe"])).unwrap();
    assert_eq!(v["uid_map"][0]["outside"], REMAP_START, "{v:#}");
    assert_eq!(v["seccomp"], 2, "{v:#}");
    assert_eq!(v["no_new_privs"], true, "{v:#}");
}

#[test]
fn userns_remap_archives_show_the_containers_owners() {
    let r = Remapped::new();
    r.ok(&["run", "-d", "--name", "arch", "busybox", "sleep", "60"]);
    r.ok(&[
        "exec",
        "arch",
        "sh",
        "-c",
        "echo x > /f; chown 1000:1001 /f; mkdir /d; chown 5:6 /d",
    ]);
    let id = r.ok(&["inspect", "-f", "{{.Id}}", "arch"]);
    let upper = r
        .data_root()
        .join("containers")
        .join(id.trim())
        .join("upper");
    // On the host, shifted...
    assert_eq!(
        owner(&upper.join("f")),
        (REMAP_START + 1000, REMAP_START + 1001)
    );
    // ...in archives, as the container saw them.
    let owners = |tar_bytes: &[u8]| -> std::collections::BTreeMap<String, (u64, u64)> {
        let mut ar = tar::Archive::new(tar_bytes);
        ar.entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path()
                        .unwrap()
                        .to_string_lossy()
                        .trim_end_matches('/')
                        .to_string(),
                    (h.uid().unwrap(), h.gid().unwrap()),
                )
            })
            .collect()
    };
    let out = r.run(&["export", "arch"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let exported = owners(&out.stdout);
    assert_eq!(exported["f"], (1000, 1001));
    assert_eq!(exported["d"], (5, 6));
    assert_eq!(exported["bin/busybox"], (0, 0));
    assert_eq!(
        r.ok(&["diff", "arch"]).lines().collect::<Vec<_>>(),
        ["A /d", "A /f"]
    );
    // commit: the new layer, read back from a docker-archive save.
    r.ok(&["commit", "arch", "snap:1"]);
    let out = r.run(&["save", "snap:1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut outer = tar::Archive::new(&out.stdout[..]);
    let mut found = false;
    for e in outer.entries().unwrap() {
        let mut e = e.unwrap();
        if !e.path().unwrap().to_string_lossy().ends_with("layer.tar") {
            continue;
        }
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut bytes).unwrap();
        let layer = owners(&bytes);
        if let Some(f) = layer.get("f") {
            assert_eq!(*f, (1000, 1001));
            assert_eq!(layer["d"], (5, 6));
            found = true;
        }
    }
    assert!(found, "the committed layer is in the archive");
    // And a container of the committed image sees them again.
    assert_eq!(
        r.ok(&["run", "--rm", "snap:1", "stat", "-c", "%u:%g", "/f"]),
        "1000:1001\n"
    );
}

#[test]
fn userns_remap_refuses_what_a_user_namespace_cannot_give() {
    let r = Remapped::new();
    for (args, says) in [
        (
            &["run", "--rm", "--privileged", "busybox", "true"][..],
            "--userns=host",
        ),
        (
            &["run", "--rm", "--network", "host", "busybox", "true"][..],
            "--userns=host",
        ),
        (
            &["run", "--rm", "--userns", "private", "busybox", "true"][..],
            "--userns",
        ),
        (
            &[
                "run",
                "--rm",
                "--network",
                "container:other",
                "busybox",
                "true",
            ][..],
            "--userns=host",
        ),
    ] {
        let out = r.run(args);
        assert_eq!(out.status.code(), Some(125), "{args:?}");
        assert!(
            text(&out.stderr).contains(says),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    // --privileged works once the container opts out.
    r.ok(&[
        "run",
        "--rm",
        "--privileged",
        "--userns=host",
        "busybox",
        "true",
    ]);
    // No range, no user: a clear error before anything is created.
    for (setting, says) in [
        ("64124:64124", "no subordinate uid range"),
        ("no-such-user-dy", "no such user"),
    ] {
        let out = Command::new(bin("dockyard"))
            .arg("--root")
            .arg(r.root.path())
            .args(["--userns-remap", setting, "images"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(125), "{setting}");
        assert!(
            text(&out.stderr).contains(says),
            "{setting}: {}",
            text(&out.stderr)
        );
    }
}

/// `--device` in a user namespace: root there may not mknod(2), so the
/// host's node is bind-mounted, as docker does. The nodes work inside (a
/// write to a `/dev/null` under another name, a read of `/dev/zero`), are
/// the host's devices (same numbers), bound rather than made.
#[test]
fn userns_remap_device_binds_the_hosts_node() {
    let r = Remapped::new();
    let out = r.ok(&[
        "run",
        "--rm",
        "--device",
        "/dev/null:/dev/mynull",
        "--device",
        "/dev/zero",
        "busybox",
        "sh",
        "-c",
        "echo hi >/dev/mynull && echo wrote; \
         head -c 4 /dev/zero | od -An -tx1; \
         stat -c '%F %t:%T' /dev/mynull /dev/zero; \
         grep -c ' /dev/mynull ' /proc/self/mountinfo; \
         cat /proc/self/uid_map",
    ]);
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    assert_eq!(lines[0], "wrote", "{out}");
    assert_eq!(lines[1], "00 00 00 00", "{out}");
    assert_eq!(lines[2], "character special file 1:3", "{out}");
    assert_eq!(lines[3], "character special file 1:5", "{out}");
    // A bind mount, not a node made inside.
    assert_eq!(lines[4], "1", "{out}");
    // And it ran in the remapped user namespace.
    let map: Vec<&str> = lines[5].split_whitespace().collect();
    assert_eq!(map[..2], ["0", &REMAP_START.to_string()], "{out}");
}
