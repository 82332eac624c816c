//! `dockyard build`, observed in the store it builds into: the image config as written to
//! `blobs/`, the files, modes, owners and whiteouts of the unpacked layer dirs, the build
//! cache's hits and misses, and the image run with `dockyard run`.
//!
//! Every test gets its own data root and cgroup parent, and removes what it made.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use dockyard_e2e::dockyard::{leftover_cgroups, mount_points, text, Dockyard};
use serde_json::Value;
use sha2::{Digest, Sha256};

#[path = "build/cache_from.rs"]
mod cache_from;
#[path = "build/fidelity.rs"]
mod fidelity;
#[path = "build/lab06_cli.rs"]
mod lab06_cli;
#[path = "build/step_container.rs"]
mod step_container;

/// A data root with busybox loaded, a build context directory, and a cgroup parent.
struct Dy {
    dy: Dockyard,
    ctx: tempfile::TempDir,
}

impl std::ops::Deref for Dy {
    type Target = Dockyard;
    fn deref(&self) -> &Dockyard {
        &self.dy
    }
}

impl Dy {
    fn new() -> Dy {
        let dy = Dockyard::empty("dockyard-build");
        dy.load_busybox();
        let ctx = tempfile::Builder::new()
            .prefix("dockyard-ctx-")
            .tempdir()
            .unwrap();
        Dy { dy, ctx }
    }

    fn file(&self, rel: &str, content: &str) {
        let p = self.ctx.path().join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, content).unwrap();
    }

    /// `dockyard build -t TAG [extra...] CONTEXT`.
    fn build(&self, tag: &str, extra: &[&str]) -> Output {
        let ctx = self.ctx.path().to_str().unwrap().to_string();
        let mut args = vec!["build", "-t", tag];
        args.extend_from_slice(extra);
        args.push(&ctx);
        self.run(&args)
    }

    fn build_ok(&self, tag: &str, extra: &[&str]) -> String {
        let out = self.build(tag, extra);
        assert!(
            out.status.success(),
            "build failed ({:?}):\n{}{}",
            out.status,
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    fn blob(&self, digest: &str) -> Vec<u8> {
        let hex = digest.strip_prefix("sha256:").unwrap();
        fs::read(self.root.path().join("blobs/sha256").join(hex)).unwrap()
    }

    /// The manifest digest the store's index.json names `name`, if any.
    fn manifest_of(&self, name: &str) -> Option<String> {
        let index: Value =
            serde_json::from_slice(&fs::read(self.root.path().join("index.json")).unwrap())
                .unwrap();
        index["manifests"].as_array().unwrap().iter().find_map(|d| {
            (d["annotations"]["io.dockyard.image.name"] == name)
                .then(|| d["digest"].as_str().unwrap().to_string())
        })
    }

    /// The image config blob, as the builder wrote it (with Docker's own fields).
    fn config(&self, name: &str) -> Value {
        let m = self
            .manifest_of(name)
            .unwrap_or_else(|| panic!("no image {name}"));
        let manifest: Value = serde_json::from_slice(&self.blob(&m)).unwrap();
        serde_json::from_slice(&self.blob(manifest["config"]["digest"].as_str().unwrap())).unwrap()
    }

    /// The unpacked layer dirs of an image, bottom first.
    fn layer_dirs(&self, name: &str) -> Vec<PathBuf> {
        let config = self.config(name);
        let mut chain: Option<String> = None;
        let mut out = Vec::new();
        for d in config["rootfs"]["diff_ids"].as_array().unwrap() {
            let d = d.as_str().unwrap();
            let id = match &chain {
                None => d.to_string(),
                Some(p) => format!(
                    "sha256:{}",
                    hex::encode(Sha256::digest(format!("{p} {d}").as_bytes()))
                ),
            };
            out.push(
                self.root
                    .path()
                    .join("layers")
                    .join(id.strip_prefix("sha256:").unwrap())
                    .join("diff"),
            );
            chain = Some(id);
        }
        out
    }

    fn image_count(&self) -> usize {
        let index: Value =
            serde_json::from_slice(&fs::read(self.root.path().join("index.json")).unwrap())
                .unwrap();
        index["manifests"].as_array().unwrap().len()
    }
}

/// The entry `rel` in the topmost of `layers` that has it.
fn in_layers(layers: &[PathBuf], rel: &str) -> Option<(PathBuf, fs::Metadata)> {
    layers.iter().rev().find_map(|l| {
        let p = l.join(rel);
        fs::symlink_metadata(&p).ok().map(|m| (p, m))
    })
}

#[test]
fn every_instruction_lands_in_the_config_and_the_layers() {
    let dy = Dy::new();
    dy.file("hello.txt", "hello\n");
    dy.file("bin/tool.sh", "#!/bin/sh\necho tool\n");
    dy.file(
        "Dockerfile",
        r#"FROM busybox
LABEL org.example.title="demo image" version=1
MAINTAINER someone@example.com
ARG BASE_DIR=/srv
ENV APP_HOME=$BASE_DIR/app GREETING="hello world"
WORKDIR $APP_HOME
COPY hello.txt ./
COPY --chown=1000:50 --chmod=0750 bin/tool.sh /usr/local/bin/tool
RUN echo "$GREETING" > built.txt && rm /etc/motd-missing 2>/dev/null; rm /bin/vi
EXPOSE 8080 53/udp
VOLUME ["/data", "/logs"]
STOPSIGNAL SIGQUIT
HEALTHCHECK --interval=5s --timeout=3s --retries=2 CMD wget -q -O- http://localhost:8080/ || exit 1
SHELL ["/bin/sh", "-ec"]
ONBUILD RUN echo child
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat built.txt"]
USER nobody
"#,
    );
    let out = dy.build_ok("demo:v1", &[]);
    assert!(out.starts_with("Step 1/18 : FROM busybox\n ---> "), "{out}");
    assert!(out.contains("Step 9/18 : RUN echo"), "{out}");
    assert!(out.contains(" ---> Running in "), "{out}");
    assert!(out.ends_with("Successfully tagged demo:v1\n"), "{out}");

    let config = dy.config("demo:v1");
    let c = &config["config"];
    let env: Vec<&str> = c["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(env.contains(&"APP_HOME=/srv/app"), "{env:?}");
    assert!(env.contains(&"GREETING=hello world"), "{env:?}");
    assert!(
        !env.iter().any(|e| e.starts_with("BASE_DIR")),
        "an ARG is not kept in the image"
    );
    assert_eq!(c["WorkingDir"], "/srv/app");
    assert_eq!(c["Entrypoint"], serde_json::json!(["/bin/sh", "-c"]));
    assert_eq!(c["Cmd"], serde_json::json!(["cat built.txt"]));
    assert_eq!(c["User"], "nobody");
    assert_eq!(c["StopSignal"], "SIGQUIT");
    assert_eq!(c["Shell"], serde_json::json!(["/bin/sh", "-ec"]));
    assert_eq!(c["OnBuild"], serde_json::json!(["RUN echo child"]));
    assert_eq!(
        c["Labels"],
        serde_json::json!({"org.example.title": "demo image", "version": "1"})
    );
    assert_eq!(
        c["ExposedPorts"],
        serde_json::json!({"8080/tcp": {}, "53/udp": {}})
    );
    assert_eq!(c["Volumes"], serde_json::json!({"/data": {}, "/logs": {}}));
    assert_eq!(
        c["Healthcheck"],
        serde_json::json!({
            "Test": ["CMD-SHELL", "wget -q -O- http://localhost:8080/ || exit 1"],
            "Interval": 5_000_000_000i64, "Timeout": 3_000_000_000i64, "Retries": 2
        })
    );
    assert_eq!(config["author"], "someone@example.com");

    // History: one entry per step after FROM (ARG too, as the classic builder commits it);
    // only WORKDIR (it made /srv/app), the two COPYs and the RUN have layers.
    let history = config["history"].as_array().unwrap();
    let ours: Vec<&Value> = history.iter().skip(history.len() - 17).collect();
    assert_eq!(
        ours[2]["created_by"],
        "/bin/sh -c #(nop)  ARG BASE_DIR=/srv"
    );
    assert_eq!(ours[2]["empty_layer"], true);
    let with_layer: Vec<&str> = ours
        .iter()
        .filter(|h| h["empty_layer"] != true)
        .map(|h| h["created_by"].as_str().unwrap())
        .collect();
    assert_eq!(with_layer.len(), 4, "{with_layer:#?}");
    assert!(with_layer[0].contains("WORKDIR /srv/app"), "{with_layer:?}");
    assert!(
        with_layer[3].starts_with("|1 BASE_DIR=/srv /bin/sh -c echo"),
        "{with_layer:?}"
    );
    let base_layers = dy.layer_dirs("busybox:latest").len();
    let layers = dy.layer_dirs("demo:v1");
    assert_eq!(layers.len(), base_layers + 4);

    // The files, as the layer dirs hold them.
    let (_, hello) = in_layers(&layers, "srv/app/hello.txt").expect("COPY's file");
    assert_eq!(
        (hello.uid(), hello.gid()),
        (0, 0),
        "COPY makes files root's"
    );
    let (_, tool) = in_layers(&layers, "usr/local/bin/tool").expect("COPY --chown's file");
    assert_eq!((tool.uid(), tool.gid()), (1000, 50));
    assert_eq!(tool.mode() & 0o7777, 0o750);
    let (p, _) = in_layers(&layers, "srv/app/built.txt").expect("RUN's file");
    assert_eq!(fs::read_to_string(p).unwrap(), "hello world\n");
    // `rm /bin/vi` in the RUN step: a whiteout (a 0/0 character device) in its layer only.
    let run_layer = layers.last().unwrap();
    let vi = fs::symlink_metadata(run_layer.join("bin/vi")).expect("a whiteout for /bin/vi");
    assert!(vi.file_type().is_char_device() && vi.rdev() == 0, "{vi:?}");
    let run_files: Vec<String> = walk(run_layer);
    assert_eq!(
        run_files,
        vec!["bin", "bin/vi", "srv", "srv/app", "srv/app/built.txt"]
    );

    // And the image runs, in /srv/app: the argument replaces CMD and goes to the
    // ENTRYPOINT, `sh -c`.
    let out = dy.ok(&[
        "run",
        "--rm",
        "demo:v1",
        "pwd; cat built.txt; ls /bin/vi || echo gone",
    ]);
    assert!(out.starts_with("/srv/app\nhello world\n"), "{out}");
    assert!(out.ends_with("gone\n"), "{out}");
    assert!(
        leftover_cgroups(&dy.parent).is_empty(),
        "{:?}",
        leftover_cgroups(&dy.parent)
    );
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for e in fs::read_dir(dir.join(&rel)).unwrap().flatten() {
            let r = rel.join(e.file_name());
            if e.file_type().unwrap().is_dir() {
                stack.push(r.clone());
            }
            out.push(r.to_string_lossy().into_owned());
        }
    }
    out.sort();
    out
}

#[test]
fn image_runs_with_dockyard_run() {
    let dy = Dy::new();
    dy.file("msg", "built by dockyard\n");
    dy.file(
        "Dockerfile",
        "FROM busybox\nCOPY msg /etc/msg\nCMD [\"cat\", \"/etc/msg\"]\n",
    );
    dy.build_ok("hello", &[]);
    assert_eq!(dy.ok(&["run", "--rm", "hello"]), "built by dockyard\n");
    assert_eq!(
        dy.ok(&["run", "--rm", "hello", "cat", "/etc/msg"]),
        "built by dockyard\n"
    );
}

#[test]
fn second_build_is_all_cache_and_one_changed_file_invalidates_from_its_copy() {
    let dy = Dy::new();
    dy.file("a.txt", "a\n");
    dy.file("b.txt", "b\n");
    dy.file(
        "Dockerfile",
        "FROM busybox\nENV X=1\nCOPY a.txt /a.txt\nRUN echo ran-a > /ran\nCOPY b.txt /b.txt\nRUN cat /a.txt /b.txt > /both\nCMD [\"cat\", \"/both\"]\n",
    );
    let first = dy.build_ok("cached", &[]);
    assert_eq!(first.matches("Using cache").count(), 0, "{first}");
    let id = first.lines().rev().nth(1).unwrap().to_string();
    assert!(id.starts_with("Successfully built "), "{first}");

    let start = Instant::now();
    let second = dy.build_ok("cached", &[]);
    let warm = start.elapsed();
    assert_eq!(second.matches(" ---> Using cache").count(), 6, "{second}");
    assert!(!second.contains("Running in"), "nothing ran: {second}");
    assert!(second.contains(&id), "same image ID: {second}");
    eprintln!("warm rebuild (debug build of dockyard): {warm:?}");

    // Touching a file (same bytes) changes nothing; changing b.txt invalidates from its COPY.
    dy.file("a.txt", "a\n");
    dy.file("b.txt", "B changed\n");
    let third = dy.build_ok("cached", &[]);
    let steps: Vec<&str> = third.split("Step ").skip(1).collect();
    assert_eq!(steps.len(), 7);
    for (i, s) in steps.iter().enumerate().skip(1) {
        assert_eq!(
            s.contains("Using cache"),
            i < 4,
            "step {} cached only before COPY b.txt:\n{third}",
            i + 1
        );
    }
    assert_eq!(dy.ok(&["run", "--rm", "cached"]), "a\nB changed\n");

    // --no-cache builds every step again.
    let fourth = dy.build_ok("cached", &["--no-cache"]);
    assert!(!fourth.contains("Using cache"), "{fourth}");
    assert_eq!(fourth.matches("Running in").count(), 2, "{fourth}");

    // The index is one JSON file per step, in the store.
    let entries = fs::read_dir(dy.root.path().join("build-cache"))
        .unwrap()
        .count();
    assert!(entries >= 6, "{entries} cache entries");
}

/// Dates every blob and layer directory of a data root back by `secs`, as if
/// that much time had passed (gc spares what is younger than 10 minutes).
fn age_store(root: &Path, secs: u64) {
    let then = std::time::SystemTime::now() - std::time::Duration::from_secs(secs);
    for dir in ["blobs/sha256", "layers"] {
        for e in fs::read_dir(root.join(dir)).unwrap() {
            fs::File::open(e.unwrap().path())
                .unwrap()
                .set_modified(then)
                .unwrap();
        }
    }
}

#[test]
fn gc_keeps_the_build_cache_of_live_images_and_rmi_takes_it_with_the_image() {
    let dy = Dy::new();
    dy.file("a.txt", "a\n");
    dy.file(
        "Dockerfile",
        "FROM busybox\nENV X=1\nCOPY a.txt /a.txt\nRUN echo ran > /ran\n",
    );
    dy.build_ok("kept", &[]);
    // Long after the build, gc removes nothing the cache needs: a rebuild
    // is all cache.
    age_store(dy.root.path(), 11 * 60);
    let out = dy.ok(&["image", "prune", "-f"]);
    assert_eq!(out, "Total reclaimed space: 0B\n");
    let again = dy.build_ok("kept", &[]);
    assert_eq!(again.matches(" ---> Using cache").count(), 3, "{again}");

    // rmi deletes the image and the intermediate images of its steps that
    // needed its layers: a rebuild runs COPY and RUN again (ENV, on
    // busybox's layer only, is still cached).
    let blobs = || {
        fs::read_dir(dy.root.path().join("blobs/sha256"))
            .unwrap()
            .count()
    };
    let before = blobs();
    let out = dy.ok(&["rmi", "kept"]);
    assert!(
        out.starts_with("Untagged: kept:latest\nDeleted: sha256:"),
        "{out}"
    );
    assert_eq!(out.lines().count(), 4, "image ID and its two layers: {out}");
    assert!(blobs() < before - 3, "intermediate images went too");
    let third = dy.build_ok("kept", &[]);
    assert_eq!(third.matches(" ---> Using cache").count(), 1, "{third}");
    assert_eq!(third.matches("Running in").count(), 1, "{third}");
}

#[test]
fn multi_stage_target_and_copy_from() {
    let dy = Dy::new();
    dy.file(
        "Dockerfile",
        "FROM busybox AS builder\nRUN mkdir /out && echo compiled > /out/app && echo junk > /out/junk\n\
         FROM busybox AS test\nRUN echo tested > /tested\n\
         FROM busybox\nCOPY --from=builder /out/app /app\nCOPY --from=1 /tested /tested\nCMD [\"cat\", \"/app\", \"/tested\"]\n",
    );
    dy.build_ok("multi", &[]);
    assert_eq!(dy.ok(&["run", "--rm", "multi"]), "compiled\ntested\n");
    // Only the final stage's layers: busybox's and the two COPYs. The builder's junk and
    // its RUN layer stay behind.
    let base = dy.layer_dirs("busybox:latest").len();
    let layers = dy.layer_dirs("multi:latest");
    assert_eq!(layers.len(), base + 2);
    assert!(in_layers(&layers, "out/junk").is_none());
    assert!(in_layers(&layers, "app").is_some());

    let out = dy.build_ok("only-builder", &["--target", "builder"]);
    assert!(out.contains("Step 2/2 : RUN mkdir"), "{out}");
    assert!(!out.contains("Step 3/"), "stops at the target: {out}");
    assert_eq!(
        dy.ok(&["run", "--rm", "only-builder", "cat", "/out/junk"]),
        "junk\n"
    );
    let bad = dy.build("x", &["--target", "nope"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(text(&bad.stderr).contains("failed to reach build target nope"));
}

#[test]
fn dockerignore_keeps_files_out_of_the_context() {
    let dy = Dy::new();
    dy.file("app/main.sh", "echo main\n");
    dy.file("app/debug.log", "noise\n");
    dy.file("secret.key", "hunter2\n");
    dy.file(".dockerignore", "secret.key\n**/*.log\n");
    dy.file("Dockerfile", "FROM busybox\nCOPY . /ctx/\n");
    dy.build_ok("ign", &[]);
    let layers = dy.layer_dirs("ign:latest");
    assert!(in_layers(&layers, "ctx/app/main.sh").is_some());
    assert!(in_layers(&layers, "ctx/Dockerfile").is_some());
    assert!(in_layers(&layers, "ctx/secret.key").is_none());
    assert!(in_layers(&layers, "ctx/app/debug.log").is_none());

    // Naming an ignored file is the same as naming a missing one.
    dy.file("Dockerfile", "FROM busybox\nCOPY secret.key /\n");
    let out = dy.build("ign2", &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("file not found in build context or excluded by .dockerignore"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn failing_run_exits_with_its_status_and_leaves_no_image() {
    let dy = Dy::new();
    dy.file(
        "Dockerfile",
        "FROM busybox\nRUN echo first > /f\nRUN echo about to fail; exit 3\nCMD [\"true\"]\n",
    );
    let before = dy.image_count();
    let out = dy.build("broken", &[]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "the RUN's own status, as docker's"
    );
    assert!(
        text(&out.stdout).contains("about to fail"),
        "the step's output is shown"
    );
    assert_eq!(
        text(&out.stderr),
        "The command '/bin/sh -c echo about to fail; exit 3' returned a non-zero code: 3\n"
    );
    assert!(dy.manifest_of("broken:latest").is_none());
    assert_eq!(dy.image_count(), before);
    let tmp: Vec<_> = fs::read_dir(dy.root.path().join("tmp")).unwrap().collect();
    assert!(tmp.is_empty(), "the step's container is gone: {tmp:?}");
    assert!(!mount_points()
        .iter()
        .any(|m| m.starts_with(&dy.root.path().to_string_lossy().to_string())));
    assert!(leftover_cgroups(&dy.parent).is_empty());
    // The step that succeeded is cached.
    let again = dy.build("broken", &[]);
    assert!(
        text(&again.stdout).contains(" ---> Using cache"),
        "{}",
        text(&again.stdout)
    );
}

#[test]
fn malformed_dockerfile_names_file_and_line_and_leaves_no_image() {
    let dy = Dy::new();
    dy.file("Dockerfile", "FROM busybox\nRUN echo ok\nCOPY onlyone\n");
    let before = dy.image_count();
    let out = dy.build("bad", &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    let file = dy.ctx.path().canonicalize().unwrap().join("Dockerfile");
    assert!(
        err.starts_with(&format!(
            "{}:3: COPY requires at least two arguments",
            file.display()
        )),
        "{err}"
    );
    assert!(text(&out.stdout).is_empty(), "nothing was built");
    dy.file("Dockerfile", "FROM busybox\nFROBNICATE now\n");
    let out = dy.build("bad", &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains(":2: unknown instruction: FROBNICATE"));
    assert_eq!(dy.image_count(), before);
}

#[test]
fn onbuild_triggers_run_in_the_child_only() {
    let dy = Dy::new();
    dy.file(
        "Dockerfile",
        "FROM busybox\nONBUILD RUN echo triggered >> /onbuild.log\n",
    );
    dy.build_ok("parent", &[]);
    let parent_layers = dy.layer_dirs("parent:latest");
    assert!(
        in_layers(&parent_layers, "onbuild.log").is_none(),
        "not run in its own build"
    );

    dy.file(
        "Dockerfile",
        "FROM parent\nCMD [\"cat\", \"/onbuild.log\"]\n",
    );
    let out = dy.build_ok("child", &[]);
    assert!(out.contains("# Executing 1 build trigger"), "{out}");
    assert_eq!(dy.ok(&["run", "--rm", "child"]), "triggered\n");
    assert!(dy.config("child:latest")["config"]["OnBuild"].is_null());

    dy.file("Dockerfile", "FROM child\n");
    let out = dy.build_ok("grandchild", &[]);
    assert!(!out.contains("trigger"), "{out}");
    assert_eq!(dy.ok(&["run", "--rm", "grandchild"]), "triggered\n");
}

#[test]
fn add_extracts_local_tars_and_refuses_urls() {
    let dy = Dy::new();
    let src = dy.ctx.path().join("src");
    fs::create_dir_all(src.join("pkg")).unwrap();
    fs::write(src.join("pkg/data.txt"), "from the tarball\n").unwrap();
    let status = Command::new("tar")
        .args(["-czf", "pkg.tar.gz", "-C", "src", "pkg"])
        .current_dir(dy.ctx.path())
        .status()
        .unwrap();
    assert!(status.success());
    dy.file(
        "Dockerfile",
        "FROM busybox\nADD pkg.tar.gz /opt/\nCOPY pkg.tar.gz /copied/\n",
    );
    dy.build_ok("added", &[]);
    let layers = dy.layer_dirs("added:latest");
    let (p, _) = in_layers(&layers, "opt/pkg/data.txt").expect("ADD unpacked the tar");
    assert_eq!(fs::read_to_string(p).unwrap(), "from the tarball\n");
    assert!(
        in_layers(&layers, "copied/pkg.tar.gz").is_some(),
        "COPY does not unpack"
    );

    dy.file(
        "Dockerfile",
        "FROM busybox\nADD https://example.com/x.tar.gz /x\n",
    );
    let out = dy.build("url", &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("not supported here (no network)"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn build_args_follow_docker_scoping() {
    let dy = Dy::new();
    dy.file(
        "Dockerfile",
        "ARG BASE=busybox\nARG VERSION=1.0\nFROM $BASE\nRUN echo \"[$VERSION]\" > /before\nARG VERSION\nARG MODE=dev\nRUN echo \"$VERSION $MODE\" > /after\n",
    );
    let out = dy.build_ok(
        "args",
        &["--build-arg", "MODE=prod", "--build-arg", "UNUSED=1"],
    );
    assert!(
        out.contains("[Warning] One or more build-args [UNUSED] were not consumed"),
        "{out}"
    );
    assert_eq!(
        dy.ok(&["run", "--rm", "args", "cat", "/before", "/after"]),
        "[]\n1.0 prod\n"
    );
    // A different build arg value is a different RUN: a cache miss from there. The ARG
    // steps themselves record the default, not the value, and are reused.
    let out = dy.build_ok("args", &["--build-arg", "MODE=test"]);
    assert!(
        out.starts_with(
            "Step 1/7 : ARG BASE=busybox\nStep 2/7 : ARG VERSION=1.0\nStep 3/7 : FROM $BASE\n"
        ),
        "{out}"
    );
    assert_eq!(out.matches("Using cache").count(), 3, "{out}");
    assert_eq!(
        dy.ok(&["run", "--rm", "args", "cat", "/after"]),
        "1.0 test\n"
    );
}
