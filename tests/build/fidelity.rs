//! Docker fidelity of `dockyard build`, rule by rule, on a base image *without* a PATH in its
//! config: a rootfs tar brought in with `dockyard import`, as issue 18 found the differences.
//! Each test checks the image config the builder wrote and what a container of the image
//! (or a RUN step of the build) printed; moby's classic builder is the oracle, and each
//! rule names where it is in moby.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::process::Command;

use super::{in_layers, Dy};
use dockyard_e2e::dockyard::{leftover_cgroups, text};
use serde_json::{json, Value};

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A store with `base`: busybox's root file system imported from a plain tar, so its config
/// has no Env, no Cmd, nothing but the layer.
fn imported() -> Dy {
    let dy = Dy::new();
    let rootfs = dockyard_e2e::fixtures::workspace_root().join("images/busybox/rootfs");
    let tar = dy.root.path().join("rootfs.tar");
    let ok = Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(ok.success());
    dy.ok(&["import", tar.to_str().unwrap(), "base"]);
    fs::remove_file(&tar).unwrap();
    let env = &dy.config("base:latest")["config"]["Env"];
    assert!(env.is_null(), "an imported image has no Env: {env}");
    dy
}

fn env_of(dy: &Dy, name: &str) -> Vec<String> {
    dy.config(name)["config"]["Env"]
        .as_array()
        .map(|a| a.iter().map(|v| v.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

/// moby `dispatchState.beginStage`: a stage whose base has no PATH gets the default one in
/// its config, which RUN, `${PATH}` in ENV and the final image all see.
#[test]
fn a_stage_on_a_base_without_path_gets_the_default_path() {
    let dy = imported();
    dy.file(
        "Dockerfile",
        "FROM base\nENV MYPATH=${PATH}:/opt/bin\nRUN echo \"$PATH\" > /run-path\nCMD echo $PATH\n",
    );
    dy.build_ok("withpath", &[]);
    assert_eq!(
        env_of(&dy, "withpath:latest"),
        [
            format!("PATH={DEFAULT_PATH}"),
            format!("MYPATH={DEFAULT_PATH}:/opt/bin")
        ]
    );
    assert_eq!(
        dy.ok(&["run", "--rm", "withpath", "cat", "/run-path"]),
        format!("{DEFAULT_PATH}\n")
    );
    assert_eq!(
        dy.ok(&["run", "--rm", "withpath"]),
        format!("{DEFAULT_PATH}\n")
    );

    // FROM scratch too: the image a COPY makes there has the PATH.
    dy.file("f", "x\n");
    dy.file("Dockerfile", "FROM scratch\nCOPY f /f\n");
    dy.build_ok("scratchy", &[]);
    assert_eq!(
        env_of(&dy, "scratchy:latest"),
        [format!("PATH={DEFAULT_PATH}")]
    );

    // A base that sets its own PATH keeps it, and nothing is added.
    dy.file("Dockerfile", "FROM base\nENV PATH=/only\nRUN true\n");
    dy.build_ok("own", &[]);
    dy.file(
        "Dockerfile",
        "FROM own\nRUN /bin/busybox echo \"$PATH\" > /p\n",
    );
    dy.build_ok("own2", &[]);
    assert_eq!(env_of(&dy, "own2:latest"), ["PATH=/only"]);
}

/// moby `dispatchRun` and docker-cli's `build`: a failing RUN prints
/// "The command '...' returned a non-zero code: N" and `docker build` exits N.
#[test]
fn a_failing_run_exits_with_the_commands_status() {
    let dy = imported();
    dy.file("Dockerfile", "FROM base\nRUN echo failing; exit 7\n");
    let out = dy.build("fails", &[]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stderr),
        "The command '/bin/sh -c echo failing; exit 7' returned a non-zero code: 7\n"
    );
    dy.file("Dockerfile", "FROM base\nRUN [\"/bin/false\"]\n");
    let out = dy.build("fails", &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "The command '/bin/false' returned a non-zero code: 1\n"
    );
    assert!(dy.manifest_of("fails:latest").is_none());
}

/// moby `copy.go` (`MkdirAllAndChownNew`): the directories a `COPY --chown` creates, the
/// destination and its missing parents, get the owner; those the image has keep theirs.
#[test]
fn copy_chown_owns_the_directories_it_creates() {
    let dy = imported();
    dy.file("f.txt", "f\n");
    dy.file("tree/sub/g.txt", "g\n");
    dy.file(
        "Dockerfile",
        "FROM base\nCOPY --chown=1234:5678 f.txt /a/b/c/\nCOPY --chown=42:43 tree /etc/new/\n",
    );
    dy.build_ok("chowned", &[]);
    let layers = dy.layer_dirs("chowned:latest");
    for (rel, want) in [
        ("a", (1234, 5678)),
        ("a/b", (1234, 5678)),
        ("a/b/c", (1234, 5678)),
        ("a/b/c/f.txt", (1234, 5678)),
        ("etc", (0, 0)),
        ("etc/new", (42, 43)),
        ("etc/new/sub", (42, 43)),
        ("etc/new/sub/g.txt", (42, 43)),
    ] {
        let (_, m) = in_layers(&layers, rel).unwrap_or_else(|| panic!("{rel} missing"));
        assert_eq!((m.uid(), m.gid()), want, "{rel}");
    }
    assert_eq!(
        dy.ok(&["run", "--rm", "chowned", "stat", "-c", "%u:%g %a", "/a", "/a/b/c", "/etc"]),
        "1234:5678 755\n1234:5678 755\n0:0 755\n"
    );
}

/// moby `patternmatcher` and `TarWithOptions`: `!pattern` re-includes, even below an
/// excluded directory when the exception starts with that directory's path.
#[test]
fn dockerignore_exceptions_reinclude_files() {
    let dy = imported();
    dy.file("build/out.bin", "binary\n");
    dy.file("build/keep/keep.txt", "kept\n");
    dy.file("README.md", "readme\n");
    dy.file("NOTES.md", "notes\n");
    dy.file(
        ".dockerignore",
        "build\n!build/keep/keep.txt\n*.md\n!README.md\n",
    );
    dy.file("Dockerfile", "FROM base\nCOPY . /ctx/\n");
    dy.build_ok("ign", &[]);
    assert_eq!(
        dy.ok(&["run", "--rm", "ign", "find", "/ctx", "-type", "f"])
            .lines()
            .collect::<std::collections::BTreeSet<_>>(),
        [
            "/ctx/.dockerignore",
            "/ctx/Dockerfile",
            "/ctx/README.md",
            "/ctx/build/keep/keep.txt"
        ]
        .into_iter()
        .collect()
    );
    dy.file("Dockerfile", "FROM base\nCOPY build/keep/keep.txt /k\n");
    dy.build_ok("ign2", &[]);
    assert_eq!(dy.ok(&["run", "--rm", "ign2", "cat", "/k"]), "kept\n");
}

/// moby `dispatchExpose` (`nat.ParsePortSpecs`): a range is each of its ports; the history
/// keeps the words as written.
#[test]
fn expose_ranges_are_each_port() {
    let dy = imported();
    dy.file("Dockerfile", "FROM base\nEXPOSE 80 7000-7002/udp\n");
    dy.build_ok("ports", &[]);
    let c = dy.config("ports:latest");
    assert_eq!(
        c["config"]["ExposedPorts"],
        json!({"80/tcp": {}, "7000/udp": {}, "7001/udp": {}, "7002/udp": {}})
    );
    let last = c["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        last["created_by"],
        "/bin/sh -c #(nop)  EXPOSE 80 7000-7002/udp"
    );
    dy.file("Dockerfile", "FROM base\nEXPOSE 90-80\n");
    let out = dy.build("badports", &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("invalid range"),
        "{}",
        text(&out.stderr)
    );
}

/// The classic builder runs RUN with the declared volumes mounted, so what a RUN writes under
/// a VOLUME after the VOLUME instruction is not in the image; writes before it, and writes
/// elsewhere, are.
#[test]
fn run_changes_under_a_volume_are_discarded() {
    let dy = imported();
    dy.file(
        "Dockerfile",
        "FROM base\nRUN mkdir /data && echo before > /data/a && echo gone > /data/del\n\
         VOLUME /data /fresh\n\
         RUN echo after > /data/a && echo new > /data/b && rm /data/del && echo out > /outside \
         && echo x > /fresh/x && cat /data/a > /seen\n\
         RUN echo only-in-the-volume > /data/c\n",
    );
    dy.build_ok("vol", &[]);
    let c = dy.config("vol:latest");
    assert_eq!(c["config"]["Volumes"], json!({"/data": {}, "/fresh": {}}));
    let out = dy.ok(&[
        "run",
        "--rm",
        "vol",
        "sh",
        "-c",
        "ls /data; cat /data/a /outside /seen; ls -A /fresh | wc -l",
    ]);
    assert_eq!(out, "a\ndel\nbefore\nout\nafter\n0\n");
    // The last RUN changed nothing outside the volume: no layer, as docker commits an
    // empty diff (history `empty_layer`).
    let history = c["history"].as_array().unwrap();
    assert_eq!(history.last().unwrap()["empty_layer"], true);
    assert_eq!(c["rootfs"]["diff_ids"].as_array().unwrap().len(), 3);
    let layers = dy.layer_dirs("vol:latest");
    let top = layers.last().unwrap();
    assert!(
        !top.join("data").exists(),
        "the last layer has nothing of /data"
    );
    assert!(
        top.join("fresh").is_dir(),
        "the new mountpoint stays, empty"
    );
    assert_eq!(fs::read_dir(top.join("fresh")).unwrap().count(), 0);
}

/// runc sets HOME from the user's passwd entry (`/` when it has none), and docker's daemon
/// sets HOSTNAME: a RUN sees both, as a container does.
#[test]
fn run_steps_get_home_and_hostname() {
    let dy = imported();
    dy.file(
        "Dockerfile",
        "FROM base\nRUN echo \"$HOME\" > /home-root && echo \"$HOSTNAME\" > /hostname \
         && hostname > /uts\nUSER nobody\nRUN echo \"$HOME\" > /tmp/home-nobody\n\
         USER 4242\nRUN echo \"$HOME\" > /tmp/home-nouser\nUSER root\n\
         ENV HOME=/custom\nRUN echo \"$HOME\" > /home-env\n",
    );
    dy.build_ok("homes", &[]);
    assert_eq!(
        dy.ok(&[
            "run",
            "--rm",
            "homes",
            "cat",
            "/home-root",
            "/tmp/home-nobody",
            "/tmp/home-nouser",
            "/home-env"
        ]),
        "/root\n/nonexistent\n/\n/custom\n"
    );
    let host = dy.ok(&["run", "--rm", "homes", "cat", "/hostname", "/uts"]);
    let lines: Vec<&str> = host.lines().collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0], lines[1], "HOSTNAME is the step's hostname");
    assert_eq!(lines[0].len(), 12);
}

/// moby `archive.DetectCompression`: ADD unpacks tars compressed with bzip2 and xz too (and
/// copies a compressed file that is not a tar as it is); a context may be such a tar.
#[test]
fn add_and_contexts_take_bzip2_and_xz() {
    let dy = imported();
    dy.file("src/pkg/data.txt", "from the tarball\n");
    let ctx = dy.ctx.path();
    for (flag, name) in [("-cjf", "pkg.tar.bz2"), ("-cJf", "pkg.tar.xz")] {
        let ok = Command::new("tar")
            .args([flag, name, "-C", "src", "pkg"])
            .current_dir(ctx)
            .status()
            .unwrap();
        assert!(ok.success());
    }
    dy.file("notes.txt", "just text\n");
    let ok = Command::new("xz")
        .args(["-k", "notes.txt"])
        .current_dir(ctx)
        .status()
        .unwrap();
    assert!(ok.success());
    dy.file(
        "Dockerfile",
        "FROM base\nADD pkg.tar.bz2 /bz/\nADD pkg.tar.xz /xz/\nADD notes.txt.xz /notes/\n\
         ADD --chmod=600 notes.txt /secret\nADD --chown=7:7 pkg.tar.bz2 /owned/\n",
    );
    dy.build_ok("unpacked", &[]);
    // An unpacked archive keeps its own owners, --chown or not (moby's UntarPath).
    assert_eq!(
        dy.ok(&[
            "run",
            "--rm",
            "unpacked",
            "stat",
            "-c",
            "%u",
            "/owned",
            "/owned/pkg/data.txt"
        ]),
        "0\n0\n"
    );
    assert_eq!(
        dy.ok(&[
            "run",
            "--rm",
            "unpacked",
            "sh",
            "-c",
            "cat /bz/pkg/data.txt /xz/pkg/data.txt; ls /notes; stat -c %a /secret",
        ]),
        "from the tarball\nfrom the tarball\nnotes.txt.xz\n600\n"
    );

    // The whole context as a tar.xz on standard input.
    let out_dir = tempfile::tempdir().unwrap();
    let archive = out_dir.path().join("ctx.tar.xz");
    dy.file("Dockerfile", "FROM base\nCOPY notes.txt /n\n");
    let ok = Command::new("tar")
        .arg("-cJf")
        .arg(&archive)
        .args(["-C", ctx.to_str().unwrap(), "Dockerfile", "notes.txt"])
        .status()
        .unwrap();
    assert!(ok.success());
    dy.ok(&["build", "-t", "xzctx", archive.to_str().unwrap()]);
    assert_eq!(dy.ok(&["run", "--rm", "xzctx", "cat", "/n"]), "just text\n");
}

/// `docker build` flags: -q, --label, --iidfile, --pull, --platform, --rm, --force-rm.
#[test]
fn build_flags_quiet_label_iidfile_pull_platform_rm() {
    let dy = imported();
    dy.file("Dockerfile", "FROM base\nRUN echo noisy-step > /f\n");
    let iid = dy.ctx.path().join("iid");
    fs::write(&iid, "stale").unwrap();
    let out = dy.build(
        "flags",
        &[
            "-q",
            "--label",
            "z.last=2",
            "--label",
            "a.first=$NOT_EXPANDED",
            "--iidfile",
            iid.to_str().unwrap(),
            "--pull",
            "--force-rm",
            "--rm",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let manifest: Value =
        serde_json::from_slice(&dy.blob(&dy.manifest_of("flags:latest").unwrap())).unwrap();
    let id = manifest["config"]["digest"].as_str().unwrap();
    assert_eq!(stdout, format!("{id}\n"), "-q prints the ID alone");
    assert_eq!(fs::read_to_string(&iid).unwrap(), id);
    assert!(
        text(&out.stderr).contains("--pull"),
        "{}",
        text(&out.stderr)
    );
    let c = dy.config("flags:latest");
    assert_eq!(
        c["config"]["Labels"],
        json!({"a.first": "$NOT_EXPANDED", "z.last": "2"})
    );
    let history: Vec<&str> = c["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["created_by"].as_str().unwrap())
        .collect();
    assert_eq!(
        history[history.len() - 2..],
        [
            "/bin/sh -c #(nop)  LABEL a.first=$NOT_EXPANDED",
            "/bin/sh -c #(nop)  LABEL z.last=2"
        ]
    );

    // -q and a failure: the build's output on stderr, then the error; no ID file.
    dy.file(
        "Dockerfile",
        "FROM base\nRUN echo shown-on-failure; exit 4\n",
    );
    let out = dy.build("flags2", &["-q", "--iidfile", iid.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(4));
    assert!(text(&out.stdout).is_empty(), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(
        err.contains("Step 2/2 : RUN echo shown-on-failure"),
        "{err}"
    );
    assert!(err.contains("shown-on-failure\n"), "{err}");
    assert!(err.ends_with("returned a non-zero code: 4\n"), "{err}");
    assert!(!iid.exists(), "a failed build leaves no ID file");

    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    dy.file("Dockerfile", "FROM base\nRUN true\n");
    dy.build_ok("plat", &["--platform", &format!("linux/{arch}")]);
    let other = if arch == "amd64" {
        "linux/arm64"
    } else {
        "linux/amd64"
    };
    let out = dy.build("plat", &["--platform", other]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("host's platform only"),
        "{}",
        text(&out.stderr)
    );
    let out = dy.build("plat", &["--rm=false"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        text(&out.stderr).contains("--rm=false is not supported"),
        "{}",
        text(&out.stderr)
    );
}

/// `--network host|none|default` and `-m`: where a RUN step is, as its kernel shows it.
#[test]
fn build_flags_network_and_memory() {
    let dy = imported();
    dy.file(
        "Dockerfile",
        "FROM base\nRUN readlink /proc/self/ns/net > /netns && cat /proc/net/dev > /netdev \
         && cat /proc/self/cgroup > /cgroup\n",
    );
    let host_ns = fs::read_link("/proc/self/ns/net").unwrap();
    dy.build_ok("nethost", &["--network", "host", "--memory", "64m"]);
    assert_eq!(
        dy.ok(&["run", "--rm", "nethost", "cat", "/netns"]).trim(),
        host_ns.to_str().unwrap()
    );
    // The step ran in a cgroup under the build's --cgroup-parent.
    let cg = dy.ok(&["run", "--rm", "nethost", "cat", "/cgroup"]);
    assert!(cg.contains(&dy.parent), "{cg}");

    for mode in ["none", "default"] {
        dy.build_ok("netnone", &["--network", mode, "--no-cache"]);
        assert_ne!(
            dy.ok(&["run", "--rm", "netnone", "cat", "/netns"]).trim(),
            host_ns.to_str().unwrap()
        );
        let dev = dy.ok(&["run", "--rm", "netnone", "cat", "/netdev"]);
        let ifaces: Vec<&str> = dev
            .lines()
            .skip(2)
            .map(|l| l.split(':').next().unwrap().trim())
            .collect();
        assert_eq!(ifaces, ["lo"], "{mode}");
    }
    let out = dy.build("netbad", &["--network", "bridge0"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("not supported by this builder"),
        "{}",
        text(&out.stderr)
    );

    // -m: the step's cgroup has the limit, seen from the host while the step runs
    // (memory.max on v2, memory.limit_in_bytes on v1).
    dy.file("Dockerfile", "FROM base\nRUN sleep 3\n");
    let ctx = dy.ctx.path().to_str().unwrap().to_string();
    let mut child = dy
        .command(&["build", "-t", "mem", "-m", "64m", &ctx])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut seen = None;
    while seen.is_none() && std::time::Instant::now() < deadline {
        seen = leftover_cgroups(&dy.parent).iter().find_map(|d| {
            ["memory.max", "memory.limit_in_bytes"]
                .iter()
                .find_map(|f| fs::read_to_string(d.join(f)).ok())
        });
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(child.wait().unwrap().success());
    assert_eq!(seen.as_deref().map(str::trim), Some("67108864"));
}

/// `--no-cache-filter STAGE`: that stage's steps are built again, the others come from the
/// cache.
#[test]
fn no_cache_filter_rebuilds_the_named_stages_only() {
    let dy = imported();
    dy.file(
        "Dockerfile",
        "FROM base AS one\nRUN cat /proc/sys/kernel/random/uuid > /one\nFROM base AS two\nCOPY --from=one /one /one\n\
         RUN cat /proc/sys/kernel/random/uuid > /two\n",
    );
    dy.build_ok("filtered", &[]);
    let first = dy.ok(&["run", "--rm", "filtered", "cat", "/one", "/two"]);
    let out = dy.build_ok("filtered", &["--no-cache-filter", "one"]);
    let steps: Vec<&str> = out.lines().filter(|l| l.starts_with("Step ")).collect();
    assert_eq!(steps.len(), 5, "{out}");
    assert_eq!(
        out.matches("Using cache").count(),
        0,
        "one's RUN changed /one: {out}"
    );
    let second = dy.ok(&["run", "--rm", "filtered", "cat", "/one", "/two"]);
    assert_ne!(first.lines().next(), second.lines().next());
    let out = dy.build_ok("filtered", &["--no-cache-filter", "two"]);
    assert_eq!(out.matches("Using cache").count(), 1, "{out}");
}

/// Heredocs as buildkit runs them: a bare `RUN <<EOF` is the script; `<<-` strips the
/// tabs; several heredocs in one RUN are given to the shell with the line; a quoted name
/// keeps `$VAR` for the shell.
#[test]
fn heredocs_run_as_docker_runs_them() {
    let dy = imported();
    dy.file(
        "Dockerfile",
        "FROM base\nENV WHO=world\n\
         RUN <<EOF\necho \"hello $WHO\" > /bare\necho second >> /bare\nEOF\n\
         RUN <<-EOF\n\t\techo tabs-stripped > /chomp\n\tEOF\n\
         RUN cat <<A > /a && cat <<'B' > /b\nfirst $WHO\nA\nsecond $WHO\nB\n\
         RUN <<'EOF' sh -s -- arg1\necho \"from stdin with $1\" > /stdin\nEOF\n         RUN <<EOF\n#!/bin/awk -f\nBEGIN { print \"awk ran me\" > \"/awk\" }\nEOF\n",
    );
    dy.build_ok("heredocs", &[]);
    // A bare heredoc with a shebang is a file the kernel runs with that interpreter, as
    // buildkit runs it; the file is not in the image.
    assert_eq!(
        dy.ok(&["run", "--rm", "heredocs", "cat", "/awk"]),
        "awk ran me\n"
    );
    let layers = dy.layer_dirs("heredocs:latest");
    assert!(in_layers(&layers, ".dockyard-pipes").is_none());
    assert_eq!(
        dy.ok(&["run", "--rm", "heredocs", "cat", "/bare", "/chomp", "/a", "/b", "/stdin"]),
        "hello world\nsecond\ntabs-stripped\nfirst world\nsecond $WHO\nfrom stdin with arg1\n"
    );
}

/// `COPY --from=IMAGE`: an image of the store that is not a stage, as docker allows.
#[test]
fn copy_from_an_image_reference() {
    let dy = imported();
    dy.file("Dockerfile", "FROM base\nRUN echo from-the-image > /made\n");
    dy.build_ok("donor:v1", &[]);
    dy.file(
        "Dockerfile",
        "FROM base AS unrelated\nFROM base\nCOPY --from=donor:v1 /made /copied\n",
    );
    dy.build_ok("taker", &[]);
    assert_eq!(
        dy.ok(&["run", "--rm", "taker", "cat", "/copied"]),
        "from-the-image\n"
    );
    dy.file("Dockerfile", "FROM base\nCOPY --from=nosuch:v9 /x /x\n");
    let out = dy.build("taker2", &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("nosuch:v9"),
        "{}",
        text(&out.stderr)
    );
}

/// The cache key of a RUN holds the build args in its environment: a changed
/// `--build-arg` misses from the first RUN that has it, and everything before it hits.
#[test]
fn a_changed_build_arg_invalidates_from_its_first_use() {
    let dy = imported();
    dy.file(
        "Dockerfile",
        "FROM base\nRUN echo before > /before\nARG V=1\nENV FIXED=x\nRUN echo \"$V\" > /v\nRUN echo after > /after\n",
    );
    dy.build_ok("argcache", &[]);
    let out = dy.build_ok("argcache", &["--build-arg", "V=2"]);
    let lines: Vec<&str> = out.lines().collect();
    let cached_steps: Vec<&str> = lines
        .windows(2)
        .filter(|w| w[1] == " ---> Using cache")
        .map(|w| w[0])
        .collect();
    assert_eq!(
        cached_steps,
        [
            "Step 2/6 : RUN echo before > /before",
            "Step 3/6 : ARG V=1",
            "Step 4/6 : ENV FIXED=x"
        ],
        "{out}"
    );
    assert_eq!(dy.ok(&["run", "--rm", "argcache", "cat", "/v"]), "2\n");
    let history = dy.config("argcache:latest")["history"].clone();
    assert!(
        history
            .to_string()
            .contains("|1 V=2 /bin/sh -c echo \\\"$V\\\" > /v"),
        "{history}"
    );
}

/// Forty lines of `ENV A=$A$A` would make a terabyte: the build stops with a clear error
/// at the expansion limit, quickly and small.
#[test]
fn a_doubling_variable_stops_with_a_clear_error() {
    let dy = imported();
    let mut df = String::from("FROM base\nENV A=0123456789abcdef\n");
    for _ in 0..40 {
        df.push_str("ENV A=$A$A\n");
    }
    dy.file("Dockerfile", &df);
    let started = std::time::Instant::now();
    let out = dy.build("doubling", &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("the expansion is over 1 MiB"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
    // 16 bytes doubled 16 times is 1 MiB, the most (step 18); the next step is over.
    assert!(
        text(&out.stdout).contains("Step 19/42 : ENV A=$A$A"),
        "{}",
        text(&out.stdout)
    );
    assert!(!text(&out.stdout).contains("Step 20/42"));
}

/// The build cache in `system df`, and `builder prune`: a failed build's successful steps
/// are dangling cache (their layer is in no image) until pruned; the steps of the image that
/// was tagged are not.
#[test]
fn build_cache_shows_in_df_and_builder_prune_reclaims_it() {
    let dy = imported();
    let cache_row = |dy: &Dy| -> Vec<String> {
        let df = dy.ok(&["system", "df"]);
        let line = df
            .lines()
            .find(|l| l.starts_with("Build Cache"))
            .unwrap_or_else(|| panic!("{df}"))
            .to_string();
        line.split_whitespace()
            .skip(2)
            .map(str::to_string)
            .collect()
    };
    dy.file("Dockerfile", "FROM base\nRUN echo kept > /kept\n");
    dy.build_ok("cached", &[]);
    let row = cache_row(&dy);
    assert_eq!(
        row[0..2],
        ["1", "1"],
        "one entry, held by the image: {row:?}"
    );
    assert_eq!(row[3], "0B");

    dy.file(
        "Dockerfile",
        "FROM base\nRUN head -c 300000 /dev/urandom > /big\nRUN exit 5\n",
    );
    let out = dy.build("failed", &[]);
    assert_eq!(out.status.code(), Some(5));
    let row = cache_row(&dy);
    assert_eq!(row[0..2], ["2", "1"], "{row:?}");
    assert_ne!(
        row[3], "0B",
        "the failed build's layer is reclaimable: {row:?}"
    );
    let layers_before = fs::read_dir(dy.root.path().join("layers")).unwrap().count();

    let out = dy.ok(&["builder", "prune", "-f"]);
    assert!(out.starts_with("Deleted build cache objects:\n"), "{out}");
    assert!(out.contains("Total reclaimed space: "), "{out}");
    assert!(!out.contains("Total reclaimed space: 0B"), "{out}");
    let layers_after = fs::read_dir(dy.root.path().join("layers")).unwrap().count();
    assert_eq!(
        layers_after,
        layers_before - 1,
        "the failed build's layer is gone"
    );
    assert_eq!(cache_row(&dy)[0..2], ["1", "1"]);
    // The kept step is still a cache hit.
    dy.file("Dockerfile", "FROM base\nRUN echo kept > /kept\n");
    assert!(dy.build_ok("cached", &[]).contains("Using cache"));

    // -a takes every entry; system prune -a too.
    dy.ok(&["builder", "prune", "-a", "-f"]);
    assert_eq!(cache_row(&dy)[0..2], ["0", "0"]);
    assert!(!dy.build_ok("cached", &[]).contains("Using cache"));
    dy.ok(&["system", "prune", "-a", "-f"]);
    assert_eq!(cache_row(&dy)[0..2], ["0", "0"]);
}

/// The classic builder's cgroup flags (`-c`, `--cpu-period`, `--cpu-quota`, `--cpuset-cpus`,
/// `--memory-swap`) reach the RUN step's cgroup, seen from the host while the step runs;
/// `--compress`, `--disable-content-trust` and `--isolation default` are accepted with
/// nothing to do, and `--isolation hyperv` is refused in moby's words (its build route
/// accepts only the default isolation on Linux).
#[test]
fn build_cgroup_flags_reach_the_run_steps_cgroup() {
    let dy = Dy::new();
    dy.file("Dockerfile", "FROM busybox\nRUN sleep 3\n");
    let ctx = dy.ctx.path().to_str().unwrap().to_string();
    let mut child = dy
        .command(&[
            "build",
            "-t",
            "cpu",
            "-c",
            "512",
            "--cpu-period",
            "100000",
            "--cpu-quota",
            "50000",
            "--cpuset-cpus",
            "0",
            "-m",
            "64m",
            "--memory-swap",
            "-1",
            "--compress",
            "--disable-content-trust",
            "--isolation",
            "default",
            &ctx,
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let v2 = lab03_cgroups::detect().unwrap().version() == lab03_cgroups::Version::V2;
    let files: &[&str] = if v2 {
        &["cpu.weight", "cpu.max", "cpuset.cpus"]
    } else {
        &["cpu.shares", "cpu.cfs_quota_us", "cpuset.cpus"]
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut seen: Vec<Option<String>> = vec![None; files.len()];
    while seen.iter().any(Option::is_none) && std::time::Instant::now() < deadline {
        for (i, f) in files.iter().enumerate() {
            if seen[i].is_none() {
                seen[i] = leftover_cgroups(&dy.parent)
                    .iter()
                    .find_map(|d| fs::read_to_string(d.join(f)).ok())
                    .map(|s| s.trim().to_string());
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(child.wait().unwrap().success());
    let seen: Vec<String> = seen.into_iter().map(Option::unwrap_or_default).collect();
    if v2 {
        // 512 shares on v2's scale, as runc converts them.
        assert_eq!(seen, ["20", "50000 100000", "0"]);
    } else {
        assert_eq!(seen, ["512", "50000", "0"]);
    }
    let out = dy.build("iso", &["--isolation", "hyperv"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "Error response from daemon: unsupported isolation: \"hyperv\"\n"
    );
}
