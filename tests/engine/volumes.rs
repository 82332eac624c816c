//! Data outside the container's overlay: named and anonymous volumes, bind
//! mounts (`mount --bind`, read-only with `-o remount,ro,bind`) and `cp`,
//! which must never step out of the container's root.

use std::path::Path;
use std::time::{Duration, Instant};

use dockyard_e2e::dockyard::{text, Dockyard as Dy};
use dockyard_e2e::fixtures::base_rootfs;

#[test]
fn volumes_persist_across_containers_and_binds_respect_ro() {
    let dy = Dy::new();
    dy.ok(&[
        "run",
        "--rm",
        "-v",
        "keep:/data",
        "busybox",
        "sh",
        "-c",
        "echo kept > /data/f",
    ]);
    assert_eq!(
        dy.ok(&[
            "run",
            "--rm",
            "-v",
            "keep:/data",
            "busybox",
            "cat",
            "/data/f"
        ]),
        "kept\n"
    );
    // On the host, the volume is a plain directory under the data root.
    let host_file = dy.root_path().join("volumes/keep/_data/f");
    assert_eq!(std::fs::read_to_string(&host_file).unwrap(), "kept\n");

    let host = dy.root_path().join("host-dir");
    std::fs::create_dir(&host).unwrap();
    std::fs::write(host.join("in"), "from host\n").unwrap();
    let spec = format!("{}:/mnt/h:ro", host.display());
    let out = dy.run(&[
        "run",
        "--rm",
        "-v",
        &spec,
        "busybox",
        "sh",
        "-c",
        "cat /mnt/h/in; touch /mnt/h/new",
    ]);
    assert_eq!(text(&out.stdout), "from host\n");
    assert!(
        text(&out.stderr).contains("Read-only file system"),
        "{}",
        text(&out.stderr)
    );
    assert!(!host.join("new").exists());

    // An anonymous volume goes with `rm -v`; a named one in use cannot be removed.
    dy.ok(&[
        "run",
        "--name",
        "user",
        "-v",
        "/scratch",
        "-v",
        "keep:/data",
        "busybox",
        "true",
    ]);
    assert_eq!(dy.ok(&["volume", "ls", "-q"]).lines().count(), 2);
    let out = dy.run(&["volume", "rm", "keep"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("volume is in use"),
        "{}",
        text(&out.stderr)
    );
    dy.ok(&["rm", "-v", "user"]);
    assert_eq!(dy.ok(&["volume", "ls", "-q"]), "keep\n");
    assert_eq!(dy.ok(&["volume", "rm", "keep"]), "keep\n");
    assert!(!host_file.exists());
}

#[test]
fn an_images_volume_is_an_anonymous_volume_seeded_from_the_image() {
    use std::os::unix::fs::MetadataExt;
    let dy = Dy::new();
    // /data has files owned by uid 1; /link is a symlink to /etc, which a
    // hostile image could hope to resolve on the host while seeding.
    let ctx = dy.root_path().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\n\
         RUN mkdir /data && echo seed > /data/f && chown 1:1 /data/f && chmod 640 /data/f \
             && ln -s f /data/l && ln -s /etc /link\n\
         VOLUME /data /link\n\
         HEALTHCHECK --interval=5s CMD true\n",
    )
    .unwrap();
    dy.ok(&["build", "-t", "vols:1", ctx.to_str().unwrap()]);
    // image inspect keeps docker's extensions of the config.
    assert!(dy
        .ok(&[
            "image",
            "inspect",
            "-f",
            "{{json .Config.Healthcheck}}",
            "vols:1"
        ])
        .contains(r#""Test":["CMD-SHELL","true"]"#));

    let out = dy.ok(&[
        "run",
        "--name",
        "vuser",
        "--no-healthcheck",
        "vols:1",
        "sh",
        "-c",
        "cat /data/f; echo more > /data/g; cat /link/passwd | head -1",
    ]);
    assert_eq!(out, format!("seed\n{}", first_line_of_image_passwd()));
    let mounts = dy.inspect(
        "vuser",
        "{{range .Mounts}}{{.Type}}:{{.Destination}} {{end}}",
    );
    assert_eq!(mounts, "volume:/data volume:/link");
    // On the host: the copy kept owner and mode, and the symlink stayed a symlink.
    let names = dy.inspect("vuser", "{{range .Mounts}}{{.Name}} {{end}}");
    let data = dy
        .root_path()
        .join("volumes")
        .join(names.split(' ').next().unwrap())
        .join("_data");
    let f = std::fs::symlink_metadata(data.join("f")).unwrap();
    assert_eq!((f.uid(), f.gid(), f.mode() & 0o777), (1, 1, 0o640));
    assert_eq!(std::fs::read_link(data.join("l")).unwrap(), Path::new("f"));
    assert_eq!(std::fs::read_to_string(data.join("g")).unwrap(), "more\n");
    // /link was seeded from the image's /etc, not the host's.
    let link = dy
        .root_path()
        .join("volumes")
        .join(names.split(' ').nth(1).unwrap())
        .join("_data");
    assert_eq!(
        std::fs::read_to_string(link.join("passwd")).unwrap(),
        std::fs::read_to_string(base_rootfs().join("etc/passwd")).unwrap()
    );
    assert_eq!(dy.ok(&["volume", "ls", "-q"]).lines().count(), 2);

    // A -v on the same path replaces the image's volume; --rm takes its
    // anonymous volume along.
    assert_eq!(
        dy.ok(&[
            "run",
            "--rm",
            "-v",
            "named:/data",
            "vols:1",
            "cat",
            "/data/f"
        ]),
        "seed\n"
    );
    assert_eq!(dy.ok(&["volume", "ls", "-q"]).lines().count(), 3);
    dy.ok(&["volume", "rm", "named"]);
    // The notes' bare `commit -p`.
    dy.ok(&["commit", "-p", "vuser", "vols:2"]);
    dy.ok(&["rm", "-v", "vuser"]);
    assert_eq!(dy.ok(&["volume", "ls", "-q"]), "");
}

fn first_line_of_image_passwd() -> String {
    let passwd = std::fs::read_to_string(base_rootfs().join("etc/passwd")).unwrap();
    format!("{}\n", passwd.lines().next().unwrap())
}

#[test]
fn cp_both_ways_never_leaves_the_containers_root() {
    let dy = Dy::new();
    let script = "ln -s / /tmp/to-root; echo inside > /tmp/mine; while :; do sleep 0.1; done";
    dy.ok(&[
        "run", "-d", "--name", "cpbox", "busybox", "sh", "-c", script,
    ]);
    dy.wait_for("cpbox", "{{.State.Status}}", "running");
    let deadline = Instant::now() + Duration::from_secs(10);
    while dy
        .run(&["exec", "cpbox", "test", "-e", "/tmp/mine"])
        .status
        .code()
        != Some(0)
    {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(50));
    }
    let host = dy.root_path().join("cp-host");
    std::fs::create_dir_all(host.join("tree/sub")).unwrap();
    std::fs::write(host.join("tree/sub/f"), "from host\n").unwrap();

    // In: a directory tree, then read it from inside.
    // As in docker, a destination that does not exist becomes the copy;
    // one that is a directory receives it.
    dy.ok(&["cp", host.join("tree").to_str().unwrap(), "cpbox:/srv"]);
    assert_eq!(
        dy.ok(&["exec", "cpbox", "cat", "/srv/sub/f"]),
        "from host\n"
    );
    dy.ok(&["cp", host.join("tree").to_str().unwrap(), "cpbox:/srv"]);
    assert_eq!(
        dy.ok(&["exec", "cpbox", "cat", "/srv/tree/sub/f"]),
        "from host\n"
    );
    // Out: a file, and a directory.
    let out = host.join("mine");
    dy.ok(&["cp", "cpbox:/tmp/mine", out.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "inside\n");
    dy.ok(&["cp", "cpbox:/etc", host.join("etc-copy").to_str().unwrap()]);
    assert!(host.join("etc-copy/passwd").is_file());

    // The container's symlink to / is the container's /, not the host's:
    // this copies the image's passwd (two lines), never the host's.
    let pw = host.join("pw");
    dy.ok(&["cp", "cpbox:/tmp/to-root/etc/passwd", pw.to_str().unwrap()]);
    let image_passwd = dy.ok(&["exec", "cpbox", "cat", "/etc/passwd"]);
    assert_eq!(std::fs::read_to_string(&pw).unwrap(), image_passwd);
    // And copying in through it lands inside the container.
    std::fs::write(host.join("note"), "n\n").unwrap();
    dy.ok(&[
        "cp",
        host.join("note").to_str().unwrap(),
        "cpbox:/tmp/to-root/tmp/",
    ]);
    assert_eq!(dy.ok(&["exec", "cpbox", "cat", "/tmp/note"]), "n\n");
    assert!(
        !Path::new("/tmp/note").exists() || std::fs::read_to_string("/tmp/note").unwrap() != "n\n"
    );
    // The container was frozen only for the copies: it runs on.
    assert_eq!(dy.inspect("cpbox", "{{.State.Status}}"), "running");
    assert_eq!(
        dy.run(&["cp", "cpbox:/no/such", host.to_str().unwrap()])
            .status
            .code(),
        Some(1)
    );
}
