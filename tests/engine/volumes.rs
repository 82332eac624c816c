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

/// `create` makes the container's anonymous volumes, as docker's does:
/// before any start, `volume ls` lists them and `inspect` gives each its
/// Name and a Source that is a directory on the host. The first start uses
/// those same volumes and seeds the image's VOLUME from the image; a later
/// start leaves what they hold; `rm -v` takes them away. A create that
/// fails, early (a name in use) or late (its writable layer cannot be
/// made), leaves none behind. The API's `POST /containers/create` does the
/// same (the docker CLI sends `-v /data` in `Config.Volumes`).
#[test]
fn create_makes_the_anonymous_volumes_and_a_failed_create_leaves_none() {
    let dy = Dy::new();
    let ctx = dy.root_path().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nRUN mkdir /seeded && echo seed > /seeded/f\nVOLUME /seeded\n",
    )
    .unwrap();
    dy.ok(&["build", "-t", "vols:c", ctx.to_str().unwrap()]);
    let volume_ls = || {
        let mut v: Vec<String> = dy
            .ok(&["volume", "ls", "-q"])
            .lines()
            .map(String::from)
            .collect();
        v.sort();
        v
    };
    assert_eq!(volume_ls(), Vec::<String>::new());
    let script = "cat /seeded/f; ls /scratch | wc -l";
    dy.ok(&[
        "create", "--name", "early", "-v", "/scratch", "vols:c", "sh", "-c", script,
    ]);
    // Destination, Name, Source of each mount, as inspect shows them.
    let mounts: Vec<Vec<String>> = dy
        .inspect(
            "early",
            "{{range .Mounts}}{{.Destination}} {{.Name}} {{.Source}};{{end}}",
        )
        .split(';')
        .filter(|m| !m.is_empty())
        .map(|m| m.split(' ').map(String::from).collect())
        .collect();
    let targets: Vec<&str> = mounts.iter().map(|m| m[0].as_str()).collect();
    assert_eq!(targets, ["/scratch", "/seeded"]);
    let mut names: Vec<String> = mounts.iter().map(|m| m[1].clone()).collect();
    names.sort();
    assert_eq!(volume_ls(), names, "volume ls after create");
    let mut data = Vec::new();
    for m in &mounts {
        let dir = dy.root_path().join("volumes").join(&m[1]).join("_data");
        assert_eq!(Path::new(&m[2]), dir, "inspect's Source of {}", m[0]);
        assert!(dir.is_dir(), "{}: no directory before start", m[2]);
        let mountpoint = dy.ok(&["volume", "inspect", "-f", "{{.Mountpoint}}", &m[1]]);
        assert_eq!(mountpoint.trim(), m[2]);
        data.push(dir);
    }
    // In use by a container that never ran.
    let out = dy.run(&["volume", "rm", &names[0]]);
    assert!(text(&out.stderr).contains("volume is in use"), "{out:?}");

    // The first start mounts these volumes (and makes no others), and
    // seeds the image's from the image; the next start keeps what it holds.
    assert_eq!(dy.ok(&["start", "-a", "early"]), "seed\n0\n");
    assert_eq!(volume_ls(), names, "volume ls after start");
    assert_eq!(
        std::fs::read_to_string(data[1].join("f")).unwrap(),
        "seed\n"
    );
    std::fs::write(data[1].join("f"), "changed\n").unwrap();
    assert_eq!(dy.ok(&["start", "-a", "early"]), "changed\n0\n");
    dy.ok(&["rm", "-v", "early"]);
    assert_eq!(volume_ls(), Vec::<String>::new());
    assert!(data.iter().all(|d| !d.exists()), "volume directories left");

    // A create that fails makes no volume: a name in use...
    dy.ok(&["create", "--name", "taken", "busybox", "true"]);
    let out = dy.run(&["create", "--name", "taken", "-v", "/x", "vols:c", "true"]);
    assert!(text(&out.stderr).contains("Conflict"), "{out:?}");
    assert_eq!(volume_ls(), Vec::<String>::new());
    // ...or an image that lost its top layer (moved out of the store by
    // hand): create finds out only as it makes the writable layer, after
    // the volumes were made, and takes them back.
    let top = dy.ok(&[
        "image",
        "inspect",
        "-f",
        "{{range .RootFS.Layers}}{{.}} {{end}}",
        "vols:c",
    ]);
    let top = top.split_whitespace().last().unwrap().to_string();
    let layer = std::fs::read_dir(dy.root_path().join("layers"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|d| std::fs::read_to_string(d.join("diff_id")).is_ok_and(|t| t.trim() == top))
        .expect("the image's top layer in the store");
    let away = dy.root_path().join("layer-away");
    std::fs::rename(&layer, &away).unwrap();
    let out = dy.run(&["create", "-v", "/x", "vols:c", "true"]);
    std::fs::rename(&away, &layer).unwrap();
    assert!(text(&out.stderr).contains("not unpacked"), "{out:?}");
    assert_eq!(volume_ls(), Vec::<String>::new());
    let left = std::fs::read_dir(dy.root_path().join("volumes")).unwrap();
    assert_eq!(left.count(), 0, "a volume directory left");
    dy.ok(&["rm", "taken"]);

    // The API's create, from the docker CLI: the same.
    let svc = crate::api::Service::start(&dy);
    let id = svc.docker_ok(&["create", "-v", "/apivol", "busybox", "true"]);
    let id = id.trim();
    let name = dy.inspect(id, "{{range .Mounts}}{{.Name}}{{end}}");
    assert_eq!(
        volume_ls(),
        vec![name.clone()],
        "volume ls after the API's create"
    );
    let dir = dy.root_path().join("volumes").join(&name).join("_data");
    assert!(dir.is_dir());
    let shown = svc.docker_ok(&[
        "inspect",
        "-f",
        "{{range .Mounts}}{{.Destination}} {{.Name}} {{.Source}}{{end}}",
        id,
    ]);
    assert_eq!(shown.trim(), format!("/apivol {name} {}", dir.display()));
    svc.docker_ok(&["create", "--name", "taken", "busybox", "true"]);
    let out = svc.docker(&[
        "create", "--name", "taken", "-v", "/other", "busybox", "true",
    ]);
    assert!(!out.status.success());
    assert_eq!(volume_ls(), vec![name.clone()]);
    svc.docker_ok(&["rm", "-v", id, "taken"]);
    assert_eq!(volume_ls(), Vec::<String>::new());
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

/// `create` makes the container's named volumes too, `-v NAME:/dir` and
/// `--mount type=volume,source=NAME`, as docker's does: `volume ls` and
/// `volume inspect` show them before any start, and `volume rm` refuses
/// them as in use. The first start still gives docker's copy-up: a volume
/// that is new, or that exists but is empty, gets the image's files at its
/// target; one that holds files keeps them. A create that fails (a name in
/// use, or an image that lost a layer, found after the volumes were made)
/// leaves no new volume, and the volumes that were there stay. The same
/// through the docker CLI and the API's `POST /containers/create`.
#[test]
fn create_makes_the_named_volumes_and_a_failed_create_leaves_none_new() {
    let dy = Dy::new();
    let volume_ls = || {
        let mut v: Vec<String> = dy
            .ok(&["volume", "ls", "-q"])
            .lines()
            .map(String::from)
            .collect();
        v.sort();
        v
    };
    let ctx = dy.root_path().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nRUN for d in a b c d; do mkdir /$d && echo $d > /$d/f; done\n",
    )
    .unwrap();
    dy.ok(&["build", "-t", "vols:n", ctx.to_str().unwrap()]);
    // An existing empty volume and an existing one that holds a file.
    dy.ok(&["volume", "create", "empty"]);
    dy.ok(&["volume", "create", "full"]);
    let data = |name: &str| dy.root_path().join("volumes").join(name).join("_data");
    std::fs::write(data("full").join("mine"), "kept\n").unwrap();
    let id = dy.ok(&[
        "create",
        "--name",
        "named",
        "-v",
        "fresh:/a",
        "--mount",
        "type=volume,source=mounted,target=/b",
        "-v",
        "empty:/c",
        "-v",
        "full:/d",
        "vols:n",
        "sh",
        "-c",
        "cat /a/f /b/f /c/f; ls /d",
    ]);
    let id = id.trim();
    assert_eq!(volume_ls(), ["empty", "fresh", "full", "mounted"]);
    for name in ["fresh", "mounted"] {
        let mountpoint = dy.ok(&["volume", "inspect", "-f", "{{.Mountpoint}}", name]);
        assert_eq!(Path::new(mountpoint.trim()), data(name));
        assert!(data(name).is_dir(), "{name}: no directory before start");
        let out = dy.run(&["volume", "rm", name]);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert_eq!(
            text(&out.stderr),
            format!("Error response from daemon: remove {name}: volume is in use - [{id}]\n")
        );
    }
    // The first start seeds the new volumes and the empty one from the
    // image, and leaves the one that held a file as it was; the next start
    // finds the same.
    assert_eq!(dy.ok(&["start", "-a", "named"]), "a\nb\nc\nmine\n");
    assert_eq!(dy.ok(&["start", "-a", "named"]), "a\nb\nc\nmine\n");
    assert_eq!(
        std::fs::read_to_string(data("fresh").join("f")).unwrap(),
        "a\n"
    );
    dy.ok(&["rm", "named"]);

    // A create that fails makes no volume, and keeps those there: a name
    // in use...
    dy.ok(&["create", "--name", "taken", "busybox", "true"]);
    let before = volume_ls();
    let out = dy.run(&[
        "create", "--name", "taken", "-v", "new1:/x", "-v", "full:/y", "busybox", "true",
    ]);
    assert!(text(&out.stderr).contains("Conflict"), "{out:?}");
    assert_eq!(volume_ls(), before);
    // ...or an image that lost its top layer (moved out of the store by
    // hand), which create finds out only after it made the volumes.
    let top = dy.ok(&[
        "image",
        "inspect",
        "-f",
        "{{range .RootFS.Layers}}{{.}} {{end}}",
        "busybox",
    ]);
    let top = top.split_whitespace().last().unwrap().to_string();
    let layer = std::fs::read_dir(dy.root_path().join("layers"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|d| std::fs::read_to_string(d.join("diff_id")).is_ok_and(|t| t.trim() == top))
        .expect("the image's top layer in the store");
    let away = dy.root_path().join("layer-away");
    std::fs::rename(&layer, &away).unwrap();
    let out = dy.run(&[
        "create",
        "-v",
        "new2:/x",
        "--mount",
        "type=volume,src=new3,dst=/z",
        "-v",
        "full:/y",
        "busybox",
        "true",
    ]);
    std::fs::rename(&away, &layer).unwrap();
    assert!(text(&out.stderr).contains("not unpacked"), "{out:?}");
    assert_eq!(volume_ls(), before);
    for gone in ["new1", "new2", "new3"] {
        assert!(!data(gone).exists(), "{gone}: a volume directory left");
    }
    assert_eq!(
        std::fs::read_to_string(data("full").join("mine")).unwrap(),
        "kept\n"
    );

    // The docker CLI, through the API: the same.
    let svc = crate::api::Service::start(&dy);
    let id = svc.docker_ok(&[
        "create",
        "-v",
        "apivol:/data",
        "--mount",
        "type=volume,source=apimount,target=/m",
        "busybox",
        "true",
    ]);
    let id = id.trim();
    let listed = svc.docker_ok(&["volume", "ls", "-q"]);
    for name in ["apivol", "apimount"] {
        assert!(listed.lines().any(|l| l == name), "{name} not in {listed}");
        let shown = svc.docker_ok(&["volume", "inspect", "-f", "{{.Name}} {{.Mountpoint}}", name]);
        assert_eq!(shown.trim(), format!("{name} {}", data(name).display()));
        let out = svc.docker(&["volume", "rm", name]);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert!(
            text(&out.stderr).contains(&format!("remove {name}: volume is in use - [{id}]")),
            "{out:?}"
        );
    }
    let before = volume_ls();
    let out = svc.docker(&[
        "create",
        "--name",
        "taken",
        "-v",
        "apinew:/x",
        "-v",
        "full:/y",
        "busybox",
        "true",
    ]);
    assert!(!out.status.success(), "{out:?}");
    assert_eq!(volume_ls(), before);
    svc.docker_ok(&["rm", id, "taken"]);
    svc.docker_ok(&["volume", "rm", "apivol", "apimount"]);
}
