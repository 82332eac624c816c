//! Mount propagation (mount_namespaces(7)) as an OCI config asks for it:
//! `linux.rootfsPropagation` and a mount's `rshared`, `rslave`,
//! `rprivate`, `unbindable` options. Observed in the container's own
//! /proc/self/mountinfo (the optional fields `shared:N`, `master:N`,
//! `unbindable`), and by what they are for: a mount the host makes later
//! under a bind's source reaches a slave or shared bind in the running
//! container (Kubernetes' `HostToContainer`), and never a private one.

use std::path::Path;
use std::process::Command;

use crate::support::{text, Env};

/// The optional fields of the mountinfo line of `mount_point`, or `None`
/// when nothing is mounted there.
fn optional_fields(mountinfo: &str, mount_point: &str) -> Option<Vec<String>> {
    mountinfo
        .lines()
        .rfind(|l| l.split(' ').nth(4) == Some(mount_point))
        .map(|l| {
            l.split(' ')
                .skip(6)
                .take_while(|f| *f != "-")
                .map(String::from)
                .collect()
        })
}

fn has(fields: &[String], prefix: &str) -> bool {
    fields.iter().any(|f| f.starts_with(prefix))
}

fn sh(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
}

#[test]
fn rootfs_and_mount_propagation_show_in_mountinfo_and_carry_host_mounts() {
    let env = Env::new("prop");
    // The source: a tmpfs of the test's own, shared, as a kubelet's pod
    // volume directory is. TestRootfs detaches it (and what is below it)
    // when the test ends.
    let src = env.bundle.join("shared-src");
    let plain = env.bundle.join("plain");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::create_dir_all(&plain).unwrap();
    let src_s = src.to_str().unwrap();
    sh(&["mount", "-t", "tmpfs", "dyrt-prop", src_s]);
    sh(&["mount", "--make-shared", src_s]);
    let bind = |dst: &str, src: &Path, prop: &str| {
        serde_json::json!({
            "destination": dst, "type": "bind", "source": src,
            "options": ["rbind", prop]
        })
    };
    env.edit(|c| {
        c["process"]["args"] = serde_json::json!(["sleep", "300"]);
        c["linux"]["rootfsPropagation"] = "shared".into();
        let mounts = c["mounts"].as_array_mut().unwrap();
        mounts.push(bind("/mnt/slave", &src, "rslave"));
        mounts.push(bind("/mnt/shared", &src, "rshared"));
        mounts.push(bind("/mnt/private", &src, "rprivate"));
        mounts.push(bind("/mnt/unbindable", &plain, "unbindable"));
    });
    let bundle = env.bundle.to_str().unwrap();
    let out = env.rt(&["run", "--detach", "--bundle", bundle, "prop"]);
    assert!(out.status.success(), "run -d: {}", text(&out.stderr));
    let mountinfo = || {
        let out = env.rt(&["exec", "prop", "--", "cat", "/proc/self/mountinfo"]);
        assert!(out.status.success(), "exec: {}", text(&out.stderr));
        text(&out.stdout)
    };
    let info = mountinfo();
    let fields = |mp: &str| {
        optional_fields(&info, mp).unwrap_or_else(|| panic!("nothing at {mp} in\n{info}"))
    };
    // rootfsPropagation: the container's / in a peer group of its own.
    assert!(has(&fields("/"), "shared:"), "/ not shared:\n{info}");
    // rslave: receives from the host's peer group, is in none itself.
    let slave = fields("/mnt/slave");
    assert!(
        has(&slave, "master:") && !has(&slave, "shared:"),
        "{slave:?}\n{info}"
    );
    // rshared: a peer group of its own (and still the host's slave).
    assert!(has(&fields("/mnt/shared"), "shared:"), "{info}");
    // rprivate: no propagation at all; unbindable says so.
    assert_eq!(fields("/mnt/private"), Vec::<String>::new(), "{info}");
    assert!(
        fields("/mnt/unbindable").iter().any(|f| f == "unbindable"),
        "{info}"
    );

    // The host mounts a volume under the source while the container runs.
    let late = src.join("late");
    std::fs::create_dir_all(&late).unwrap();
    sh(&[
        "mount",
        "-t",
        "tmpfs",
        "dyrt-prop-late",
        late.to_str().unwrap(),
    ]);
    std::fs::write(late.join("hello"), "from the host\n").unwrap();
    let info = mountinfo();
    assert!(
        optional_fields(&info, "/mnt/slave/late").is_some(),
        "{info}"
    );
    assert!(
        optional_fields(&info, "/mnt/shared/late").is_some(),
        "{info}"
    );
    assert!(
        optional_fields(&info, "/mnt/private/late").is_none(),
        "{info}"
    );
    let out = env.rt(&["exec", "prop", "--", "cat", "/mnt/slave/late/hello"]);
    assert_eq!(
        text(&out.stdout),
        "from the host\n",
        "{}",
        text(&out.stderr)
    );

    assert!(env.rt(&["delete", "--force", "prop"]).status.success());
    env.assert_gone("prop");
    // The container's mounts never reached the host: under the source,
    // only what the host made.
    let host = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let ours: Vec<&str> = host.lines().filter(|l| l.contains(src_s)).collect();
    assert_eq!(ours.len(), 2, "{ours:#?}");
}

/// A propagation the kernel has no word for is a bad bundle, refused
/// before anything exists.
#[test]
fn an_unknown_rootfs_propagation_is_refused() {
    let env = Env::new("propbad");
    env.edit(|c| c["linux"]["rootfsPropagation"] = "rshare".into());
    let bundle = env.bundle.to_str().unwrap();
    let out = env.rt(&["create", "--bundle", bundle, "propbad"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("rootfsPropagation"),
        "{}",
        text(&out.stderr)
    );
    env.assert_gone("propbad");
}
