//! The image endpoints and the classic builder of `dockyard system
//! service`, driven by the real docker CLI 28.2.2 (no buildx plugin, so
//! `docker build` is `POST /build?version=1` with a tar context, as the
//! recordings in ../shared/conformance/engine-api show) and by docker-py
//! 7.1.0, and checked from the other front (`dockyard images`, `inspect`)
//! and on disk (the registry's blobs, the data root's scratch space).
//!
//! Registries are `docker-registry` processes on 127.0.0.1 (the registry
//! tests' own starter): no name here lacks a `127.0.0.1:PORT` host, so
//! nothing can reach Docker Hub.

use std::path::Path;
use std::process::Command;

use dockyard_e2e::dockyard::{text, Dockyard as Dy};

use super::api::Service;

#[path = "../registry/common.rs"]
#[allow(dead_code)]
mod registry_common;
use registry_common::Registry;

/// A build context directory with these files.
fn context(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("dockyard-api-ctx-")
        .tempdir()
        .unwrap();
    for (name, body) in files {
        std::fs::write(dir.path().join(name), body).unwrap();
    }
    dir
}

/// `docker build` through the service, RUN steps under the test's cgroup
/// parent.
fn build(svc: &Service, dy: &Dy, dir: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["build", "--cgroup-parent", &dy.parent];
    args.extend_from_slice(extra);
    let d = dir.to_str().unwrap();
    args.push(d);
    svc.docker(&args)
}

/// The image ID the other front sees for `name`.
fn image_id(dy: &Dy, name: &str) -> String {
    dy.ok(&["image", "inspect", "--format", "{{.Id}}", name])
        .trim()
        .to_string()
}

#[test]
fn api_images_docker_build_streams_steps_and_fails_like_docker() {
    let dy = Dy::new();
    let svc = Service::start(&dy);
    let ctx = context(&[
        (
            "Dockerfile",
            "FROM busybox\nARG WHO\nENV GREETED=$WHO\nCOPY hello.txt /hello.txt\n\
             RUN cat /hello.txt > /greeting\nCMD [\"cat\", \"/greeting\"]\n",
        ),
        ("hello.txt", "hello from the context\n"),
    ]);
    let out = build(
        &svc,
        &dy,
        ctx.path(),
        &[
            "-t",
            "built:1",
            "-t",
            "built:2",
            "--build-arg",
            "WHO=api",
            "--label",
            "team=docs",
        ],
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    for want in [
        "Step 1/7 : FROM busybox",
        "Step 5/7 : RUN cat /hello.txt > /greeting",
        "Step 7/7 : LABEL team=docs",
        "Successfully tagged built:1",
        "Successfully tagged built:2",
    ] {
        assert!(stdout.contains(want), "{want:?} missing:\n{stdout}");
    }
    // The image is the store's: the other front sees it, one ID two names,
    // and "Successfully built" named that ID.
    let id = image_id(&dy, "built:1");
    assert_eq!(id, image_id(&dy, "built:2"));
    assert!(
        stdout.contains(&format!("Successfully built {}", &id[7..19])),
        "{stdout}"
    );
    // buildargs and labels (JSON in the query) reached the builder.
    let config = svc.docker_ok(&[
        "image",
        "inspect",
        "--format",
        "{{index .Config.Labels \"team\"}} {{json .Config.Env}}",
        "built:1",
    ]);
    assert!(config.starts_with("docs ["), "{config}");
    assert!(config.contains("\"GREETED=api\""), "{config}");
    // The RUN step ran on the copied file: the layer holds its output.
    assert_eq!(
        dy.ok(&["run", "--rm", "built:1"]),
        "hello from the context\n"
    );
    // -q: the ID alone (the same build again, from the cache).
    let quiet = svc.docker_ok(&[
        "build",
        "-q",
        "--cgroup-parent",
        &dy.parent,
        "--build-arg",
        "WHO=api",
        "--label",
        "team=docs",
        ctx.path().to_str().unwrap(),
    ]);
    assert_eq!(quiet.trim(), id);

    // A failing RUN: the step's output, then docker's message on stderr,
    // and the command's own exit status as the CLI's.
    let bad = context(&[("Dockerfile", "FROM busybox\nRUN echo before; exit 3\n")]);
    let out = build(&svc, &dy, bad.path(), &["-t", "bad:1"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("before\n"),
        "{}",
        text(&out.stdout)
    );
    let err = text(&out.stderr);
    assert!(
        err.lines().any(
            |l| l == "The command '/bin/sh -c echo before; exit 3' returned a non-zero code: 3"
        ),
        "{err}"
    );
    let bad = context(&[("Dockerfile", "FROM busybox\nRUN false\n")]);
    let out = build(&svc, &dy, bad.path(), &["-t", "bad:1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("The command '/bin/sh -c false' returned a non-zero code: 1"),
        "{}",
        text(&out.stderr)
    );
    // A failed build names nothing, and leaves no scratch directory.
    assert!(!dy.ok(&["images"]).contains("bad"));
    let tmp: Vec<_> = std::fs::read_dir(dy.root.path().join("tmp"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("apibuild-"))
        .collect();
    assert!(tmp.is_empty(), "{tmp:?}");
}

/// The RUN steps' container flags travel in the query (`extrahosts`,
/// `shmsize`, `ulimits`, `cachefrom`, `cpuquota`...) and reach the steps;
/// `securityopt` is refused in moby's words.
#[test]
fn api_images_docker_build_passes_the_run_step_flags() {
    let dy = Dy::new();
    let svc = Service::start(&dy);
    let ctx = context(&[(
        "Dockerfile",
        "FROM busybox\nRUN grep db /etc/hosts > /hosts; grep ' /dev/shm ' /proc/mounts > /shm; \
         ulimit -Hn > /nofile; \
         cat /sys/fs/cgroup/cpu*/cpu.cfs_quota_us /sys/fs/cgroup/cpu.max > /quota 2>/dev/null; \
         true\n",
    )]);
    let flags = [
        "-t",
        "flags:1",
        "--add-host",
        "db:10.1.2.3",
        "--shm-size",
        "128m",
        "--ulimit",
        "nofile=1024:2048",
        "--cache-from",
        "busybox",
        "--cpu-period",
        "100000",
        "--cpu-quota",
        "50000",
        "-c",
        "512",
    ];
    let out = build(&svc, &dy, ctx.path(), &flags);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        dy.ok(&["run", "--rm", "flags:1", "cat", "/hosts"]),
        "10.1.2.3\tdb\n"
    );
    let shm = dy.ok(&["run", "--rm", "flags:1", "cat", "/shm"]);
    assert!(shm.contains(",size=131072k"), "{shm}");
    assert_eq!(
        dy.ok(&["run", "--rm", "flags:1", "cat", "/nofile"]),
        "2048\n"
    );
    // The cgroup numbers too: the step's CFS quota (v1's file, or v2's cpu.max).
    let quota = dy.ok(&["run", "--rm", "flags:1", "cat", "/quota"]);
    assert!(quota.starts_with("50000"), "{quota}");
    let out = build(
        &svc,
        &dy,
        ctx.path(),
        &["--security-opt", "seccomp=unconfined"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr)
            .contains("Error response from daemon: security options are not supported on linux"),
        "{}",
        text(&out.stderr)
    );
}

/// A tar archive with one entry named `name` exactly as given: a hostile
/// client's, which no tar tool would write.
fn raw_tar(name: &str, kind: tar::EntryType, link: &str) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut df = tar::Header::new_gnu();
    let dockerfile = b"FROM busybox\nCOPY . /ctx\n";
    df.set_path("Dockerfile").unwrap();
    df.set_size(dockerfile.len() as u64);
    df.set_mode(0o644);
    df.set_cksum();
    b.append(&df, &dockerfile[..]).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(0);
    h.set_mode(0o644);
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    if !link.is_empty() {
        h.set_link_name(link).unwrap();
    }
    h.set_cksum();
    b.append(&h, std::io::empty()).unwrap();
    b.into_inner().unwrap()
}

#[test]
fn api_images_build_refuses_contexts_that_reach_outside() {
    let dy = Dy::new();
    let svc = Service::start(&dy);
    let cases = [
        (
            raw_tar("../escaped", tar::EntryType::Regular, ""),
            "an entry outside it: ../escaped",
        ),
        (
            raw_tar("/escaped", tar::EntryType::Regular, ""),
            "an entry outside it: /escaped",
        ),
        (
            raw_tar("h", tar::EntryType::Link, "../../escaped"),
            "a hard link outside it: h",
        ),
    ];
    for (body, why) in cases {
        let head = format!(
            "POST /v1.50/build?t=evil:1&version=1 HTTP/1.1\r\nHost: d\r\n\
             Content-Type: application/x-tar\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let resp = svc.raw(&(head + &String::from_utf8(body).unwrap()));
        assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
        assert!(resp.contains(why), "{why:?}: {resp}");
    }
    // Refused before a byte was written: nothing built, nothing escaped.
    assert!(!dy.ok(&["images"]).contains("evil"));
    let found = Command::new("find")
        .arg(dy.root.path())
        .args(["-name", "escaped"])
        .output()
        .unwrap();
    assert_eq!(text(&found.stdout), "");
    // A Dockerfile outside the context is refused too.
    let resp = svc.raw(
        "POST /v1.50/build?dockerfile=../Dockerfile HTTP/1.1\r\nHost: d\r\n\
         Content-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
    assert!(resp.contains("must be within the build context"), "{resp}");
}

#[test]
fn api_images_login_push_pull_against_a_registry() {
    let creds = tempfile::tempdir().unwrap();
    let dy = Dy::new().with_env("DOCKYARD_CONFIG_DIR", creds.path());
    let svc = Service::start(&dy);
    let reg = Registry::start_with(Some(("alice", "secretpw")));
    let host = reg.host();

    // POST /auth: the registry's refusal, then its welcome; the CLI keeps
    // the credentials, the service stores none.
    let out = svc.docker(&["login", "-u", "alice", "-p", "wrong", &host]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("Error response from daemon: login to"),
        "{}",
        text(&out.stderr)
    );
    assert!(text(&out.stderr).contains("unauthorized"));
    assert!(
        !text(&out.stderr).contains("wrong"),
        "no password in errors"
    );
    let out = svc.docker(&["login", "-u", "alice", "-p", "secretpw", &host]);
    assert!(
        text(&out.stdout).contains("Login Succeeded"),
        "{}",
        text(&out.stderr)
    );
    assert!(!creds.path().join("config.json").exists());

    // tag + push: X-Registry-Auth carries the CLI's credentials.
    let name = format!("{host}/team/bb:v1");
    svc.docker_ok(&["tag", "busybox", &name]);
    let pushed = svc.docker_ok(&["push", &name]);
    assert!(
        pushed.starts_with(&format!("The push refers to repository [{host}/team/bb]")),
        "{pushed}"
    );
    let digest_line = pushed
        .lines()
        .find(|l| l.starts_with("v1: digest: sha256:"));
    let digest = digest_line
        .and_then(|l| l.split_whitespace().nth(2))
        .unwrap_or_else(|| panic!("{pushed}"));
    assert!(
        reg.blob_data(digest).exists(),
        "the registry has the manifest"
    );

    // rmi + pull: the image comes back from the registry, same ID.
    let id = image_id(&dy, &name);
    let rmi = svc.docker_ok(&["rmi", &name]);
    assert_eq!(rmi, format!("Untagged: {name}\n"));
    let pulled = svc.docker_ok(&["pull", &name]);
    assert!(pulled.starts_with("v1: Pulling from team/bb\n"), "{pulled}");
    assert!(pulled.contains(&format!("Digest: {digest}\n")), "{pulled}");
    assert!(
        pulled.contains(&format!("Status: Downloaded newer image for {name}\n")),
        "{pulled}"
    );
    assert_eq!(image_id(&dy, &name), id);
    let again = svc.docker_ok(&["pull", &name]);
    assert!(
        again.contains(&format!("Status: Image is up to date for {name}")),
        "{again}"
    );

    // Errors before the stream are docker's statuses: a tag the registry
    // does not have; a push of a tag that does not exist here.
    let out = svc.docker(&["pull", &format!("{host}/team/bb:nope")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("not found"),
        "{}",
        text(&out.stderr)
    );
    let out = svc.docker(&["push", &format!("{host}/team/none:v1")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("An image does not exist locally with the tag"),
        "{}",
        text(&out.stderr)
    );
    // Logged out, the CLI sends no credentials and the registry says no.
    svc.docker_ok(&["logout", &host]);
    let out = svc.docker(&["pull", &format!("{host}/team/bb:v1")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("authentication"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn api_images_save_load_history_inspect_commit_prune_rmi() {
    let dy = Dy::new();
    let svc = Service::start(&dy);
    let id = image_id(&dy, "busybox");
    // inspect and history: the core's documents, in docker's fields.
    let shown = svc.docker_ok(&[
        "image",
        "inspect",
        "--format",
        "{{.Id}} {{.RepoTags}}",
        "busybox",
    ]);
    assert_eq!(shown, format!("{id} [busybox:latest]\n"));
    let history = svc.docker_ok(&["history", "--format", "{{.ID}}", "busybox"]);
    assert_eq!(history.lines().next(), Some(&id[7..19]));

    // save | load: the archive round-trips into a store that lost the image.
    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("bb.tar");
    svc.docker_ok(&["save", "-o", tar.to_str().unwrap(), "busybox"]);
    let listing = Command::new("tar").arg("tf").arg(&tar).output().unwrap();
    assert!(text(&listing.stdout).contains("manifest.json"));
    let rmi = svc.docker_ok(&["rmi", "busybox"]);
    assert!(
        rmi.starts_with("Untagged: busybox:latest\nDeleted: sha256:"),
        "{rmi}"
    );
    assert!(dy.ok(&["images", "-q"]).is_empty());
    let loaded = svc.docker_ok(&["load", "-i", tar.to_str().unwrap()]);
    assert_eq!(loaded, "Loaded image: busybox:latest\n");
    assert_eq!(image_id(&dy, "busybox"), id);

    // commit, with a change and an author, from a container's layer.
    dy.ok(&[
        "run",
        "--name",
        "c1",
        "busybox",
        "sh",
        "-c",
        "echo x > /made",
    ]);
    let new = svc.docker_ok(&[
        "commit",
        "-a",
        "someone",
        "-c",
        "CMD [\"cat\", \"/made\"]",
        "c1",
        "committed:1",
    ]);
    assert_eq!(new.trim(), image_id(&dy, "committed:1"));
    let cmd = dy.ok(&[
        "image",
        "inspect",
        "--format",
        "{{.Author}} {{.Config.Cmd}}",
        "committed:1",
    ]);
    assert_eq!(cmd, "someone [cat /made]\n");
    assert_eq!(dy.ok(&["run", "--rm", "committed:1"]), "x\n");
    let out = svc.docker(&["commit", "nosuch", "x:1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("No such container: nosuch"),
        "{}",
        text(&out.stderr)
    );
    dy.ok(&["rm", "c1"]);

    // images filters: reference and label.
    let refs = svc.docker_ok(&[
        "images",
        "--filter",
        "reference=comm*",
        "--format",
        "{{.Repository}}",
    ]);
    assert_eq!(refs, "committed\n");
    let none = svc.docker_ok(&["images", "--filter", "label=nosuch", "-q"]);
    assert_eq!(none, "");
    let dangling = svc.docker_ok(&["images", "--filter", "dangling=true", "-q"]);
    assert_eq!(
        dangling, "",
        "an untagged image is garbage here, never dangling"
    );

    // import (fromSrc=-): a root filesystem tarball becomes a one-layer image.
    let rootfs = context(&[("made-by-import", "imported\n")]);
    let tarball = dir.path().join("rootfs.tar");
    let made = Command::new("tar")
        .arg("-cf")
        .arg(&tarball)
        .arg("-C")
        .arg(rootfs.path())
        .arg(".")
        .status()
        .unwrap();
    assert!(made.success());
    let imported = svc.docker_ok(&["import", tarball.to_str().unwrap(), "imported:1"]);
    assert_eq!(imported.trim(), image_id(&dy, "imported:1"));
    // Through the docker CLI's own template engine this time.
    let layers = svc.docker_ok(&[
        "image",
        "inspect",
        "--format",
        "{{len .RootFS.Layers}}",
        "imported:1",
    ]);
    assert_eq!(layers, "1\n");
    dy.ok(&["rmi", "imported:1"]);

    // prune: -f removes no image (none is dangling); -a with `until=1h`
    // only the images made over an hour ago: busybox (its config says
    // 1970), not the commit.
    svc.docker_ok(&["image", "prune", "-f"]);
    assert!(dy.ok(&["images"]).contains("committed"));
    let pruned = svc.docker_ok(&["image", "prune", "-af", "--filter", "until=1h"]);
    assert!(pruned.contains("untagged: busybox:latest"), "{pruned}");
    let left = dy.ok(&["images", "--format", "{{.Repository}}"]);
    assert_eq!(left, "committed\n");
    let out = svc.docker(&["image", "prune", "-af", "--filter", "nosuch=1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("invalid filter 'nosuch'"),
        "{}",
        text(&out.stderr)
    );

    // search: a registry's catalog (oracle_search_...); Docker Hub's is
    // refused offline.
    let out = svc.docker(&["search", "busybox"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("needs the internet"));
}

#[test]
fn api_images_docker_py_builds_pulls_and_gets() {
    let dy = Dy::new();
    let svc = Service::start(&dy);
    let reg = Registry::start();
    let name = format!("{}/py/bb", reg.host());
    // The image the pull fetches, pushed there by the other front.
    dy.ok(&["tag", "busybox", &format!("{name}:v1")]);
    dy.ok(&["push", &format!("{name}:v1")]);
    dy.ok(&["rmi", &format!("{name}:v1")]);
    // No RUN: docker-py has no cgroup parent to give, and a build without
    // containers needs none.
    let ok = context(&[
        (
            "Dockerfile",
            "FROM busybox\nCOPY hello.txt /hello.txt\nLABEL made.by=py\n",
        ),
        ("hello.txt", "hi\n"),
    ]);
    let bad = context(&[("Dockerfile", "FROM busybox\nCOPY missing.txt /x\n")]);
    let script = format!(
        r#"
import docker, json
c = docker.DockerClient(base_url="unix://{sock}")
img, logs = c.images.build(path="{ok}", tag="pyb:1", labels={{"l": "v"}})
out = {{"id": img.id, "tags": img.tags, "labels": img.labels,
        "aux": [l["aux"]["ID"] for l in logs if "aux" in l]}}
try:
    c.images.build(path="{bad}", tag="pyb:2")
    out["bad"] = "built"
except docker.errors.BuildError as e:
    out["bad"] = e.msg
out["get"] = c.images.get("busybox").id
p = c.images.pull("{name}", tag="v1")
out["pulled"] = [p.id, p.tags]
p.tag("{name}", "v2")
pushed = [json.loads(l) for l in c.images.push("{name}", tag="v2").splitlines() if l.strip()]
out["pushed"] = [m["aux"] for m in pushed if "aux" in m]
try:
    c.images.get("nosuch")
except docker.errors.ImageNotFound as e:
    out["missing"] = e.status_code
print(json.dumps(out))
"#,
        sock = svc.sock.display(),
        ok = ok.path().display(),
        bad = bad.path().display(),
    );
    let out = Command::new("python3")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = image_id(&dy, "pyb:1");
    assert_eq!(v["id"], id.as_str());
    assert_eq!(v["aux"], serde_json::json!([id]));
    assert_eq!(v["tags"], serde_json::json!(["pyb:1"]));
    assert_eq!(v["labels"], serde_json::json!({"l": "v", "made.by": "py"}));
    assert!(
        v["bad"].as_str().unwrap().starts_with("COPY failed"),
        "{}",
        v["bad"]
    );
    assert_eq!(v["get"], image_id(&dy, "busybox").as_str());
    assert_eq!(v["pulled"][0], image_id(&dy, "busybox").as_str());
    assert_eq!(v["missing"], 404);
    // push's aux message: the tag, and the digest the registry now serves.
    let aux = &v["pushed"][0];
    assert_eq!(aux["Tag"], "v2", "{v}");
    let digest = aux["Digest"].as_str().unwrap();
    assert!(reg.blob_data(digest).exists(), "{v}");
    assert!(!dy.ok(&["images"]).contains("pyb:2"));
}
