//! `run`/`create --shm-size`: the size of the container's `/dev/shm`
//! tmpfs, as docker has it. Seen from inside (`df -k`, the `size=` that the
//! kernel shows in /proc/mounts, a write that fills it), in `inspect`'s
//! `HostConfig.ShmSize` (bytes: 67108864 by default, or daemon.json's
//! `default-shm-size`), refused in the docker CLI's words, and through the
//! API: the docker CLI against `system service`, and `dockyard -H`.

use std::process::{Command, Stdio};

use dockyard_e2e::dockyard::{text, Dockyard as Dy, DAEMON_CONFIG_ENV};
use dockyard_e2e::fixtures::bin;

use super::api::Service;

/// What the container sees: `df -k`'s 1K-blocks of /dev/shm, then the
/// `size=` of its mount in /proc/mounts (the kernel's, in KiB).
const SHM: &str = "df -k /dev/shm | awk 'NR==2{print $2}'; \
    sed -n 's|^shm /dev/shm tmpfs .*size=\\([0-9]*[kmg]\\).*|\\1|p' /proc/mounts";

fn shm_size(dy: &Dy, name: &str) -> String {
    dy.inspect(name, "{{.HostConfig.ShmSize}}")
}

#[test]
fn shm_size_sizes_the_containers_dev_shm_and_is_in_inspect() {
    let dy = Dy::new();
    // Docker's default: 64 MiB, and inspect says so in bytes.
    let out = dy.ok(&["run", "--name", "dflt", "busybox", "sh", "-c", SHM]);
    assert_eq!(out, "65536\n65536k\n");
    assert_eq!(shm_size(&dy, "dflt"), "67108864");
    // A size with a unit; the record keeps it, so a second start mounts it
    // again.
    let out = dy.ok(&[
        "run",
        "--name",
        "big",
        "--shm-size",
        "128m",
        "busybox",
        "sh",
        "-c",
        SHM,
    ]);
    assert_eq!(out, "131072\n131072k\n");
    assert_eq!(shm_size(&dy, "big"), "134217728");
    assert_eq!(dy.ok(&["start", "-a", "big"]), "131072\n131072k\n");
    // A bare number is bytes; 0 is the default, as docker's daemon takes it.
    dy.ok(&[
        "create",
        "--name",
        "bytes",
        "--shm-size",
        "2097152",
        "busybox",
    ]);
    assert_eq!(shm_size(&dy, "bytes"), "2097152");
    dy.ok(&["create", "--name", "zero", "--shm-size=0", "busybox"]);
    assert_eq!(shm_size(&dy, "zero"), "67108864");
    // The kernel holds the container to it: 2 MiB do not fit in 1 MiB.
    let out = dy.run(&[
        "run",
        "--rm",
        "--shm-size",
        "1M",
        "busybox",
        "sh",
        "-c",
        "dd if=/dev/zero of=/dev/shm/f bs=1k count=2048 2>/dev/null || echo full; \
         du -k /dev/shm/f; dd if=/dev/zero of=/dev/shm/g bs=1k count=1",
    ]);
    assert_eq!(text(&out.stdout), "full\n1024\t/dev/shm/f\n");
    assert!(
        text(&out.stderr).contains("No space left on device"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn shm_size_defaults_to_daemon_jsons_default_shm_size() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("daemon.json");
    std::fs::write(&conf, r#"{"bridge": "none", "default-shm-size": "32m"}"#).unwrap();
    let dy = Dy::new().with_env(DAEMON_CONFIG_ENV, &conf);
    let out = dy.ok(&["run", "--name", "dj", "busybox", "sh", "-c", SHM]);
    assert_eq!(out, "32768\n32768k\n");
    assert_eq!(shm_size(&dy, "dj"), "33554432");
    // The flag wins over it.
    dy.ok(&["create", "--name", "flag", "--shm-size", "8m", "busybox"]);
    assert_eq!(shm_size(&dy, "flag"), "8388608");
    // A default-shm-size that is no size: create says where it is wrong.
    std::fs::write(&conf, r#"{"bridge": "none", "default-shm-size": "lots"}"#).unwrap();
    let err = dy.fails(125, &["create", "busybox"]);
    assert!(
        err.contains("daemon.json default-shm-size \"lots\": invalid size: 'lots'"),
        "{err}"
    );
    assert_eq!(dy.ok(&["ps", "-aq"]).lines().count(), 2);
}

#[test]
fn shm_size_bad_values_are_refused_in_dockers_words() {
    let dy = Dy::new();
    // docker 28.2.2's CLI, word for word: go-units' RAMInBytes refuses the
    // value while the command line is parsed, before anything is asked.
    for (value, why) in [
        ("abc", "invalid size: 'abc'"),
        ("-1", "invalid size: '-1'"),
        ("12x", "invalid suffix: 'x'"),
        (
            "1.2.3",
            "strconv.ParseFloat: parsing \"1.2.3\": invalid syntax",
        ),
    ] {
        for cmd in ["run", "create"] {
            let err = dy.fails(125, &[cmd, "--shm-size", value, "busybox", "true"]);
            assert_eq!(
                err,
                format!(
                    "invalid argument \"{value}\" for \"--shm-size\" flag: {why}\n\n\
                     Usage:  dockyard {cmd} [OPTIONS] IMAGE [COMMAND] [ARG...]\n\n\
                     Run 'dockyard {cmd} --help' for more information\n"
                )
            );
        }
    }
    assert_eq!(dy.ok(&["ps", "-aq"]), "");
}

#[test]
fn shm_size_through_the_api_docker_cli_and_client_mode() {
    let dy = Dy::new();
    let svc = Service::start(&dy);
    // The docker CLI sends HostConfig.ShmSize; the service mounts it.
    let out = svc.docker_ok(&[
        "run",
        "--name",
        "dk",
        "--shm-size",
        "128m",
        "busybox",
        "sh",
        "-c",
        SHM,
    ]);
    assert_eq!(out, "131072\n131072k\n");
    assert_eq!(
        svc.docker_ok(&["inspect", "-f", "{{.HostConfig.ShmSize}}", "dk"]),
        "134217728\n"
    );
    assert_eq!(shm_size(&dy, "dk"), "134217728");
    // Without the flag the CLI sends 0: the service's default.
    svc.docker_ok(&["create", "--name", "dd", "busybox", "true"]);
    assert_eq!(
        svc.docker_ok(&["inspect", "-f", "{{.HostConfig.ShmSize}}", "dd"]),
        "67108864\n"
    );
    // A negative size only an API client can send: dockerd's 400.
    let body = r#"{"Image":"busybox","HostConfig":{"ShmSize":-1}}"#;
    let raw = svc.raw(&format!(
        "POST /containers/create HTTP/1.1\r\nHost: d\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    assert!(raw.starts_with("HTTP/1.1 400"), "{raw}");
    assert!(raw.contains("SHM size can not be less than 0"), "{raw}");
    // dockyard -H sends it as the docker CLI does.
    let out = Command::new(bin("dockyard"))
        .arg("-H")
        .arg(format!("unix://{}", svc.sock.display()))
        .args(["run", "--cgroup-parent", &dy.parent, "--name", "cm"])
        .args(["--shm-size", "64k", "busybox", "sh", "-c", SHM])
        .env_remove("DOCKYARD_HOST")
        .env_remove("DOCKYARD_ROOT")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(text(&out.stdout), "64\n64k\n", "{}", text(&out.stderr));
    assert_eq!(shm_size(&dy, "cm"), "65536");
    assert_eq!(dy.ok(&["ps", "-aq"]).lines().count(), 3);
}
