//! Images made from containers and the disk they take: `pause`, `commit`,
//! `diff`, `export`, `save`, `rmi`, `system df` and `prune`, checked
//! against the blobs and layers in the data root (`ls blobs/sha256`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use dockyard_e2e::dockyard::{leftover_cgroups, text, Dockyard as Dy};
use dockyard_e2e::fixtures::bin;

#[test]
fn pause_commit_diff_export_save_rmi_rename() {
    let dy = Dy::new();
    let loop_ = "i=0; while :; do i=$((i+1)); echo $i > /tmp/n; sleep 0.05; done";
    dy.ok(&["run", "-d", "--name", "busy", "busybox", "sh", "-c", loop_]);
    dy.wait_for("busy", "{{.State.Status}}", "running");
    dy.wait_for_exec("busy", &["test", "-e", "/tmp/n"]);

    // pause: the kernel's freezer stops every task; the counter stands still.
    assert_eq!(dy.ok(&["pause", "busy"]), "busy\n");
    assert_eq!(
        dy.inspect("busy", "{{.State.Status}} {{.State.Paused}}"),
        "paused true"
    );
    let upper = PathBuf::from(dy.inspect("busy", "{{.GraphDriver.Data.UpperDir}}"));
    let n1 = std::fs::read_to_string(upper.join("tmp/n")).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        std::fs::read_to_string(upper.join("tmp/n")).unwrap(),
        n1,
        "a paused container kept running"
    );
    assert!(dy.ok(&["ps"]).contains("(Paused)"));
    dy.ok(&["unpause", "busy"]);
    // Thawed, it counts again: soon, however loaded the machine.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::fs::read_to_string(upper.join("tmp/n")).unwrap() == n1 {
        assert!(
            std::time::Instant::now() < deadline,
            "unpause did not thaw it"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // diff and commit (paused for the copy), then run the new image.
    dy.ok(&[
        "exec",
        "busy",
        "sh",
        "-c",
        "echo hi > /new-file; rm /bin/vi",
    ]);
    let diff = dy.ok(&["diff", "busy"]);
    for line in ["A /new-file", "D /bin/vi", "C /tmp"] {
        assert!(
            diff.lines().any(|l| l == line),
            "{line:?} not in diff:\n{diff}"
        );
    }
    let id = dy.ok(&[
        "commit",
        "-m",
        "from the test",
        "-a",
        "tester",
        "busy",
        "snap:1",
    ]);
    assert!(id.starts_with("sha256:"), "{id}");
    assert_eq!(
        dy.ok(&["run", "--rm", "snap:1", "cat", "/new-file"]),
        "hi\n"
    );
    assert_ne!(
        dy.run(&["run", "--rm", "snap:1", "test", "-e", "/bin/vi"])
            .status
            .code(),
        Some(0)
    );
    let history = dy.ok(&["history", "snap:1"]);
    assert!(
        history.lines().nth(1).unwrap().contains("from the test"),
        "{history}"
    );

    // export: the merged tree; save + load into another data root.
    let out = Command::new(bin("dockyard"))
        .args(["--root", dy.root.path().to_str().unwrap(), "export", "busy"])
        .output()
        .unwrap();
    let mut ar = tar::Archive::new(&out.stdout[..]);
    let names: Vec<String> = ar
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(
        names
            .iter()
            .any(|n| n.trim_start_matches("./") == "new-file"),
        "export lacks new-file"
    );
    assert!(
        !names.iter().any(|n| n.trim_start_matches("./") == "bin/vi"),
        "export has the deleted file"
    );
    let archive = dy.root_path().join("snap.tar");
    dy.ok(&["save", "-o", archive.to_str().unwrap(), "snap:1"]);
    let other = Dy::new();
    assert_eq!(
        other.ok(&["load", "-i", archive.to_str().unwrap()]),
        "Loaded image: snap:1\n"
    );
    assert_eq!(
        other.ok(&["run", "--rm", "snap:1", "cat", "/new-file"]),
        "hi\n"
    );

    // rmi refuses an image a container uses, unless forced.
    dy.ok(&["run", "--name", "user", "snap:1", "true"]);
    let out = dy.run(&["rmi", "snap:1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("must force"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(dy.ok(&["rmi", "-f", "snap:1"]), "Untagged: snap:1\n");

    // rename, and the management forms of the same commands.
    dy.ok(&["rename", "busy", "calm"]);
    assert!(dy
        .ok(&["container", "ls"])
        .lines()
        .any(|l| l.ends_with(" calm")));
    assert!(dy.ok(&["image", "ls"]).contains("busybox"));
    dy.ok(&["container", "stop", "-t", "1", "calm"]);
    let pruned = dy.ok(&["container", "prune", "-f"]);
    assert!(pruned.starts_with("Deleted Containers:"), "{pruned}");
    assert!(dy.ok(&["ps", "-aq"]).is_empty());
    assert!(
        leftover_cgroups(&dy.parent).is_empty(),
        "{:?}",
        leftover_cgroups(&dy.parent)
    );
}

#[test]
fn system_df_and_prune() {
    let dy = Dy::new();
    dy.ok(&[
        "run",
        "--name",
        "done1",
        "-v",
        "/anon",
        "busybox",
        "sh",
        "-c",
        "echo x > /anon/f",
    ]);
    let df = dy.ok(&["system", "df"]);
    assert!(
        df.starts_with("TYPE            TOTAL     ACTIVE    SIZE      RECLAIMABLE\n"),
        "{df}"
    );
    assert!(df.contains("\nContainers      1         0"), "{df}");
    assert!(df.contains("\nLocal Volumes   1         1"), "{df}");
    let out = dy.ok(&["system", "prune", "-f", "--volumes"]);
    assert!(
        out.contains("Deleted Containers:") && out.contains("Deleted Volumes:"),
        "{out}"
    );
    assert!(dy.ok(&["ps", "-aq"]).is_empty());
    assert!(dy.ok(&["volume", "ls", "-q"]).is_empty());
}

#[test]
fn commit_change_sets_the_new_images_config() {
    let dy = Dy::new();
    dy.ok(&[
        "run",
        "--name",
        "src",
        "busybox",
        "sh",
        "-c",
        "mkdir -p /srv/app && echo made > /srv/app/f",
    ]);
    // Exec and shell forms, variables expanded from the image's ENV as a
    // Dockerfile would, a relative WORKDIR.
    dy.ok(&[
        "commit",
        "-c",
        "ENV GREETING=hello WHO=\"$HOME x\"",
        "--change",
        "WORKDIR /srv",
        "-c",
        "WORKDIR app",
        "-c",
        r#"ENTRYPOINT ["/bin/sh", "-c"]"#,
        "-c",
        "CMD [\"echo $GREETING from $(pwd); cat f\"]",
        "-c",
        "EXPOSE 8080 53/udp",
        "-c",
        "LABEL stage=test",
        "-c",
        "VOLUME /data",
        "-c",
        "USER 1234:5678",
        "-c",
        "STOPSIGNAL SIGUSR1",
        "src",
        "changed:1",
    ]);
    let field = |f: &str| dy.inspect("changed:1", f);
    assert_eq!(field("{{json .Config.Entrypoint}}"), r#"["/bin/sh","-c"]"#);
    assert_eq!(
        field("{{json .Config.Cmd}}"),
        r#"["echo $GREETING from $(pwd); cat f"]"#
    );
    assert_eq!(field("{{.Config.WorkingDir}}"), "/srv/app");
    assert_eq!(field("{{.Config.User}}"), "1234:5678");
    assert_eq!(field("{{.Config.StopSignal}}"), "SIGUSR1");
    assert_eq!(field("{{json .Config.Labels}}"), r#"{"stage":"test"}"#);
    assert_eq!(
        field("{{json .Config.ExposedPorts}}"),
        r#"{"53/udp":{},"8080/tcp":{}}"#
    );
    assert_eq!(field("{{json .Config.Volumes}}"), r#"{"/data":{}}"#);
    let env = field("{{json .Config.Env}}");
    assert!(env.contains(r#""GREETING=hello""#), "{env}");
    // $HOME is not in busybox's ENV: it expands to nothing, as in docker.
    assert!(env.contains(r#""WHO= x""#), "{env}");

    // Running it: the config is what the process gets, the file is there.
    let out = dy.ok(&["run", "--rm", "-u", "0", "changed:1"]);
    assert_eq!(out, "hello from /srv/app\nmade\n");
    let out = dy.ok(&["run", "--rm", "--entrypoint", "id", "changed:1", "-u"]);
    assert_eq!(out, "1234\n");

    // Docker's list only; the store is left as it was.
    let images = dy.ok(&["images", "-q"]);
    // (Exit 1 with docker's "Error response from daemon", as for every
    // error outside run/create/exec.)
    let out = dy.run(&["commit", "-c", "RUN touch /x", "src", "bad:1"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("RUN is not a valid change command"),
        "{}",
        text(&out.stderr)
    );
    let out = dy.run(&["commit", "-c", "EXPOSE 99999", "src", "bad:1"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert_eq!(dy.ok(&["images", "-q"]), images);
}

/// The files in `blobs/sha256/` and the directories in `layers/` of a data
/// root (the engine's image store is the data root itself).
fn store_objects(root: &Path) -> (BTreeSet<String>, BTreeSet<String>) {
    let list = |d: &str| {
        std::fs::read_dir(root.join(d))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect::<BTreeSet<String>>()
    };
    (list("blobs/sha256"), list("layers"))
}

#[test]
fn rmi_and_image_prune_reclaim_disk_space() {
    let dy = Dy::new();
    let root = dy.root_path();
    let (base_blobs, base_layers) = store_objects(&root);

    // An image with one more layer: 300 kB of random bytes.
    dy.ok(&[
        "run",
        "--name",
        "maker",
        "busybox",
        "sh",
        "-c",
        "head -c 300000 /dev/urandom > /big",
    ]);
    dy.ok(&["commit", "maker", "fat:1"]);
    dy.ok(&["rm", "maker"]);
    let id = dy.ok(&["image", "inspect", "-f", "{{.Id}}", "fat:1"]);
    let id = id.trim();
    let (blobs, layers) = store_objects(&root);
    let new_blobs: Vec<_> = blobs.difference(&base_blobs).cloned().collect();
    let new_layers: Vec<_> = layers.difference(&base_layers).cloned().collect();
    // Its manifest, config and layer blob; its layer directory.
    assert_eq!(new_blobs.len(), 3, "{new_blobs:?}");
    assert!(new_blobs.contains(&id[7..].to_string()), "{new_blobs:?}");
    assert_eq!(new_layers.len(), 1, "{new_layers:?}");

    // A stopped container uses it: rmi -f only untags, the bytes stay and
    // the container still starts.
    dy.ok(&["run", "--name", "user", "fat:1", "sh", "-c", "wc -c < /big"]);
    assert_eq!(dy.ok(&["rmi", "-f", "fat:1"]), "Untagged: fat:1\n");
    assert_eq!(store_objects(&root), (blobs.clone(), layers.clone()));
    assert_eq!(dy.ok(&["start", "-a", "user"]).trim(), "300000");
    // Still there until the container goes and gc runs again.
    dy.ok(&["rm", "user"]);
    assert_eq!(store_objects(&root), (blobs.clone(), layers.clone()));
    let out = dy.ok(&["image", "prune", "-f"]);
    assert!(out.contains(&format!("deleted: {id}\n")), "{out}");
    assert!(
        out.contains(&format!("deleted: sha256:{}\n", new_layers[0])),
        "{out}"
    );
    let total = out
        .lines()
        .last()
        .and_then(|l| l.strip_prefix("Total reclaimed space: "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(total.ends_with("kB") || total.ends_with("MB"), "{out}");
    assert_eq!(
        store_objects(&root),
        (base_blobs.clone(), base_layers.clone())
    );

    // rmi of an image no container uses deletes at once, as docker says.
    dy.ok(&["run", "--name", "maker", "busybox", "touch", "/x"]);
    dy.ok(&["commit", "maker", "thin:1"]);
    dy.ok(&["rm", "maker"]);
    let id = dy.ok(&["image", "inspect", "-f", "{{.Id}}", "thin:1"]);
    let (_, layers) = store_objects(&root);
    let top: Vec<_> = layers.difference(&base_layers).collect();
    assert_eq!(
        dy.ok(&["rmi", "thin:1"]),
        format!(
            "Untagged: thin:1\nDeleted: {}\nDeleted: sha256:{}\n",
            id.trim(),
            top[0]
        )
    );
    assert_eq!(
        store_objects(&root),
        (base_blobs.clone(), base_layers.clone())
    );
    // busybox's blobs and layers are whole: it still runs.
    assert_eq!(dy.ok(&["run", "--rm", "busybox", "echo", "ok"]), "ok\n");

    // A blob written within the grace period (a pull not yet tagged) stays.
    let stray = root.join("blobs/sha256").join(format!("{:0>64}", "1"));
    std::fs::write(&stray, "in flight").unwrap();
    let out = dy.ok(&["system", "prune", "-f"]);
    assert!(out.ends_with("Total reclaimed space: 0B\n"), "{out}");
    assert!(stray.exists());
    // Ten minutes later it is garbage.
    let old = std::time::SystemTime::now() - Duration::from_secs(11 * 60);
    std::fs::File::options()
        .write(true)
        .open(&stray)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let out = dy.ok(&["system", "prune", "-f"]);
    assert!(out.ends_with("Total reclaimed space: 9B\n"), "{out}");
    assert!(!stray.exists());

    // image prune -a: every image no container uses goes, names and bytes.
    dy.ok(&["create", "--name", "keeper", "busybox"]);
    let out = dy.ok(&["image", "prune", "-a", "-f"]);
    assert_eq!(out, "Total reclaimed space: 0B\n");
    dy.ok(&["rm", "keeper"]);
    let out = dy.ok(&["image", "prune", "-a", "-f"]);
    assert!(
        out.starts_with("Deleted Images:\nuntagged: busybox:latest\ndeleted: sha256:"),
        "{out}"
    );
    assert!(dy.ok(&["images", "-q"]).is_empty());
    assert_eq!(store_objects(&root), Default::default());
}

/// `manifest.json` and, if there is one, the `repositories` file of a
/// docker-archive.
fn archive_names(tar: &Path) -> (serde_json::Value, Option<serde_json::Value>) {
    let mut archive = tar::Archive::new(std::fs::File::open(tar).unwrap());
    let (mut manifest, mut repositories) = (None, None);
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let slot = match path.trim_start_matches("./") {
            "manifest.json" => &mut manifest,
            "repositories" => &mut repositories,
            _ => continue,
        };
        *slot = Some(serde_json::from_reader(entry).unwrap());
    }
    (
        manifest.expect("manifest.json in the archive"),
        repositories,
    )
}

/// `save` records the names the user asked for, as docker's (moby's
/// `tarexport`): by ID, none (`"RepoTags": null` and no `repositories`
/// file), so that `load` into another data root makes an image without a
/// name, `<none>:<none>` in `images`; by `NAME:TAG`, that name and not the
/// image's other names. The same through the API (`docker save`).
#[test]
fn save_by_id_writes_no_names_and_by_name_only_that_name() {
    let dy = Dy::new();
    dy.ok(&[
        "run",
        "--name",
        "src",
        "busybox",
        "sh",
        "-c",
        "echo hi > /f",
    ]);
    let id = dy.ok(&["commit", "src", "snap:1"]);
    let id = id.trim();
    dy.ok(&["tag", "snap:1", "other:2"]);
    let top = dy.ok(&[
        "image",
        "inspect",
        "-f",
        "{{range .RootFS.Layers}}{{.}} {{end}}",
        "snap:1",
    ]);
    let top = top
        .split_whitespace()
        .last()
        .unwrap()
        .trim_start_matches("sha256:");
    let by_id = dy.root_path().join("by-id.tar");
    dy.ok(&["save", "-o", by_id.to_str().unwrap(), &id[7..19]]);
    let (manifest, repositories) = archive_names(&by_id);
    assert_eq!(
        manifest[0]["RepoTags"],
        serde_json::Value::Null,
        "{manifest}"
    );
    assert_eq!(repositories, None);
    let by_name = dy.root_path().join("by-name.tar");
    dy.ok(&["save", "-o", by_name.to_str().unwrap(), "snap:1"]);
    let (manifest, repositories) = archive_names(&by_name);
    assert_eq!(manifest[0]["RepoTags"], serde_json::json!(["snap:1"]));
    assert_eq!(repositories, Some(serde_json::json!({"snap": {"1": top}})));

    // The docker CLI, through the API: the same archives.
    let svc = crate::api::Service::start(&dy);
    let api_id = dy.root_path().join("api-by-id.tar");
    svc.docker_ok(&["save", "-o", api_id.to_str().unwrap(), id]);
    let (manifest, repositories) = archive_names(&api_id);
    assert_eq!(
        manifest[0]["RepoTags"],
        serde_json::Value::Null,
        "{manifest}"
    );
    assert_eq!(repositories, None);
    let api_name = dy.root_path().join("api-by-name.tar");
    svc.docker_ok(&["save", "-o", api_name.to_str().unwrap(), "other:2"]);
    let (manifest, _) = archive_names(&api_name);
    assert_eq!(manifest[0]["RepoTags"], serde_json::json!(["other:2"]));
    drop(svc);

    // Loaded into data roots of their own: the name asked for, or none.
    let images = |d: &Dy| d.ok(&["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"]);
    let named = Dy::new();
    named.ok(&["load", "-i", by_name.to_str().unwrap()]);
    assert!(images(&named).contains(&format!("snap:1 {}\n", &id[7..19])));
    assert!(!images(&named).contains("other:2"));
    let nameless = Dy::new();
    assert_eq!(
        nameless.ok(&["load", "-i", by_id.to_str().unwrap()]),
        format!("Loaded image ID: {id}\n")
    );
    assert!(
        images(&nameless).contains(&format!("<none>:<none> {}\n", &id[7..19])),
        "{}",
        images(&nameless)
    );
    assert_eq!(
        nameless.ok(&["run", "--rm", &id[7..19], "cat", "/f"]),
        "hi\n"
    );
    // Dangling, as docker's `images` filters it, and the same from the
    // docker CLI; `rmi` by ID deletes it.
    let dangling = |v: &str| nameless.ok(&["images", "-q", "-f", &format!("dangling={v}")]);
    assert_eq!(dangling("true"), format!("{}\n", &id[7..19]));
    assert!(!dangling("false").contains(&id[7..19]));
    let svc = crate::api::Service::start(&nameless);
    let listed = svc.docker_ok(&["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"]);
    assert!(
        listed.contains(&format!("<none>:<none> {}\n", &id[7..19])),
        "{listed}"
    );
    // dockyard as the service's client (`-H`): the same row.
    let out = Command::new(bin("dockyard"))
        .arg("-H")
        .arg(format!("unix://{}", svc.sock.display()))
        .args(["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"])
        .env_remove("DOCKYARD_HOST")
        .env_remove("DOCKYARD_ROOT")
        .output()
        .unwrap();
    assert_eq!(text(&out.stdout), listed, "{}", text(&out.stderr));
    drop(svc);
    let out = nameless.ok(&["rmi", &id[7..19]]);
    assert!(out.starts_with(&format!("Deleted: {id}\n")), "{out}");
    assert!(!images(&nameless).contains(&id[7..19]));
}
