//! The RUN steps' containers, made from the build's options as moby's
//! `hostConfigFromOptions` makes them: `--add-host`, `--shm-size` and
//! `--ulimit` are what `docker run`'s flags of the same names would give the
//! step, seen from inside it; `--security-opt` is refused as docker's daemon
//! refuses it for a build on Linux.

use std::fs;
use std::process::Command;

use super::{in_layers, Dy};
use dockyard_e2e::dockyard::text;

/// The files of one layer dir, relative, sorted.
fn files_of(layer: &std::path::Path) -> Vec<String> {
    let mut out = super::walk(layer);
    out.sort();
    out
}

/// Imports busybox's root file system without `exclude` as `name`.
fn import_without(dy: &Dy, exclude: &str, name: &str) {
    let rootfs = dockyard_e2e::fixtures::workspace_root().join("images/busybox/rootfs");
    let tar = dy.root.path().join(format!("{name}.tar"));
    let ok = Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg(format!("--exclude={exclude}"))
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(ok.success());
    dy.ok(&["import", tar.to_str().unwrap(), name]);
    fs::remove_file(&tar).unwrap();
}

/// `--add-host NAME:IP` and `NAME=IP`: the lines are in the step's own
/// /etc/hosts; what the step writes there stays out of the image, and so
/// does the empty file made to mount it on when the image has none (docker
/// makes it in the container's init layer, which is never committed).
#[test]
fn build_add_host_is_in_the_run_steps_hosts_and_not_in_the_image() {
    let dy = Dy::new();
    dy.file(
        "Dockerfile",
        "FROM busybox\nRUN cp /etc/hosts /seen && echo '10.7.7.7 written' >> /etc/hosts\n",
    );
    let hosts = ["--add-host", "db:10.1.2.3", "--add-host", "cache=10.9.9.9"];
    dy.build_ok("hosts", &hosts);
    let seen = dy.ok(&["run", "--rm", "hosts", "cat", "/seen"]);
    assert!(seen.starts_with("127.0.0.1\tlocalhost\n"), "{seen}");
    assert!(seen.contains("\n10.1.2.3\tdb\n"), "{seen}");
    assert!(seen.ends_with("\n10.9.9.9\tcache\n"), "{seen}");
    // The image's /etc/hosts is busybox's, untouched, and the step's layer
    // holds /seen alone.
    let layers = dy.layer_dirs("hosts:latest");
    let (image_hosts, _) = in_layers(&layers, "etc/hosts").unwrap();
    let image_hosts = fs::read_to_string(image_hosts).unwrap();
    assert!(!image_hosts.contains("db") && !image_hosts.contains("written"));
    assert_eq!(files_of(layers.last().unwrap()), ["seen"]);

    // On a base without /etc/hosts, or without /etc at all: the mountpoint
    // (and the /etc made or copied up to hold it) is not in the layer.
    import_without(&dy, "./etc/hosts", "nohosts");
    import_without(&dy, "./etc", "noetc");
    for base in ["nohosts", "noetc"] {
        dy.file(
            "Dockerfile",
            &format!("FROM {base}\nRUN grep db /etc/hosts > /seen\n"),
        );
        dy.build_ok(base, &hosts[..2]);
        let layers = dy.layer_dirs(&format!("{base}:latest"));
        assert_eq!(files_of(layers.last().unwrap()), ["seen"], "{base}");
        let seen = dy.ok(&["run", "--rm", base, "cat", "/seen"]);
        assert_eq!(seen, "10.1.2.3\tdb\n");
    }

    // docker's client refuses a malformed value; host-gateway needs the
    // default bridge, which this engine's daemon.json turned off.
    let out = dy.build("bad", &["--add-host", "db"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "invalid argument \"db\" for \"--add-host\" flag: bad format for add-host: \"db\"\n"
    );
    let out = dy.build("gw", &["--add-host", "gw:host-gateway"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "Error response from daemon: unable to derive the IP value for host-gateway\n"
    );
}

/// `--shm-size`: the step's /dev/shm is a tmpfs of that size (the kernel
/// shows it in KiB); without it, docker's 64 MiB.
#[test]
fn build_shm_size_sizes_the_run_steps_dev_shm() {
    let dy = Dy::new();
    dy.file(
        "Dockerfile",
        "FROM busybox\nRUN grep ' /dev/shm ' /proc/mounts > /shm\n",
    );
    dy.build_ok("shm", &["--shm-size", "128m"]);
    let shm = dy.ok(&["run", "--rm", "shm", "cat", "/shm"]);
    assert!(shm.starts_with("shm /dev/shm tmpfs "), "{shm}");
    assert!(shm.contains(",size=131072k"), "{shm}");
    dy.build_ok("shm", &["--no-cache"]);
    let shm = dy.ok(&["run", "--rm", "shm", "cat", "/shm"]);
    assert!(shm.contains(",size=65536k"), "{shm}");
    let out = dy.build("bad", &["--shm-size", "lots"]);
    assert_eq!(
        text(&out.stderr),
        "invalid argument \"lots\" for \"--shm-size\" flag: invalid size: 'lots'\n"
    );
}

/// `--ulimit`: the step's rlimits, soft and hard, as `ulimit` shows them.
/// A hard limit above ours would need CAP_SYS_RESOURCE: without it the
/// build stops, saying so, rather than run the step with less.
#[test]
fn build_ulimit_sets_the_run_steps_rlimits() {
    let dy = Dy::new();
    dy.file(
        "Dockerfile",
        "FROM busybox\nRUN echo $(ulimit -n) $(ulimit -Hn) > /limits && \
         grep 'core file' /proc/self/limits >> /limits\n",
    );
    dy.build_ok(
        "lim",
        &["--ulimit", "nofile=1024:2048", "--ulimit", "core=0:4096"],
    );
    let limits = dy.ok(&["run", "--rm", "lim", "cat", "/limits"]);
    let words: Vec<&str> = limits.split_whitespace().collect();
    assert_eq!(
        words,
        ["1024", "2048", "Max", "core", "file", "size", "0", "4096", "bytes"]
    );

    let (_, hard) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
    let caps = fs::read_to_string("/proc/self/status").unwrap();
    let eff = caps
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
        .unwrap();
    if eff & (1 << 24) == 0 {
        let over = format!("nofile=1024:{}", hard + 1);
        let out = dy.build("over", &["--ulimit", &over]);
        assert_eq!(out.status.code(), Some(1));
        let err = text(&out.stderr);
        assert!(
            err.contains(&format!("cannot be raised above {hard}"))
                && err.contains("CAP_SYS_RESOURCE"),
            "{err}"
        );
        assert!(dy.manifest_of("over:latest").is_none());
    }
    let out = dy.build("bad", &["--ulimit", "nofile=2048:1024"]);
    assert_eq!(
        text(&out.stderr),
        "invalid argument \"nofile=2048:1024\" for \"--ulimit\" flag: ulimit soft limit must \
         be less than or equal to hard limit: 2048 > 1024\n"
    );
}

/// `--security-opt`: moby's build route refuses any value on Linux
/// (security options are Windows' credential specs there), before the build.
#[test]
fn build_security_opt_is_refused_as_docker_refuses_it() {
    let dy = Dy::new();
    dy.file("Dockerfile", "FROM busybox\nRUN true\n");
    let out = dy.build("sec", &["--security-opt", "seccomp=unconfined"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "Error response from daemon: security options are not supported on linux\n"
    );
    assert!(dy.manifest_of("sec:latest").is_none());
}
