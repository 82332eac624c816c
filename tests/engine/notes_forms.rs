//! The course notes' docker command forms, typed as the notes type them:
//! one test per group of forms that `tests/notes-commands.tsv` (the book's
//! appendix) lists with no other test. Each runs the forms through the
//! `dockyard` binary, shell substitutions and redirections included
//! (`docker rm -f $(docker ps -a -q)`, `docker save ID > FILE`), and checks
//! what docker prints and does: the output, the exit code, and what the
//! store, the kernel or the container shows afterwards.
//!
//! Where the notes reach the internet (Docker Hub, `www.baidu.com`, a git
//! URL) the tests use what is local instead (the busybox image, loopback)
//! or check that dockyard refuses with a clear reason, without trying.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use dockyard_e2e::dockyard::{container_dirs, text, Dockyard as Dy};
use dockyard_e2e::fixtures::{bin, workspace_root};

/// Run `script` with `sh -c`, as a learner's shell would: `$D` is dockyard
/// with this test's data root, `$P` the `--cgroup-parent=` flag for `run`.
/// The daemon.json with `"bridge": "none"` is inherited (see
/// `no_default_bridge`): nothing touches the host's network.
fn sh(dy: &Dy, script: &str) -> Output {
    let d = format!(
        "{} --root {}",
        bin("dockyard").display(),
        dy.root.path().display()
    );
    Command::new("sh")
        .args(["-c", script])
        .env("D", d)
        .env("P", format!("--cgroup-parent={}", dy.parent))
        .current_dir(dy.root.path())
        .stdin(Stdio::null())
        .output()
        .expect("sh")
}

/// `sh` that must succeed; its stdout.
fn sh_ok(dy: &Dy, script: &str) -> String {
    let out = sh(dy, script);
    assert!(
        out.status.success(),
        "{script}\nfailed ({:?}):\n{}{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

fn is_full_id(s: &str) -> bool {
    s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit())
}

#[test]
fn notes_run_forms_detach_with_a_terminal_and_rm_f_takes_every_container() {
    let dy = Dy::new();
    // docker run -itd --name=nginx1 ...; docker run -dt --name=test01 busybox:1.33.1 /bin/sh:
    // a shell with a terminal stays up in the background.
    let id = dy.ok(&["run", "-itd", "--name=nginx1", "busybox", "/bin/sh"]);
    assert!(is_full_id(id.trim()), "{id}");
    dy.ok(&["run", "-dt", "--name=test01", "busybox", "/bin/sh"]);
    // docker run -itd --rm --name=busybox busybox:1.33.1 /bin/sh
    dy.ok(&[
        "run",
        "-itd",
        "--rm",
        "--name=busybox",
        "busybox",
        "/bin/sh",
    ]);
    for name in ["nginx1", "test01", "busybox"] {
        assert_eq!(dy.inspect(name, "{{.State.Status}}"), "running", "{name}");
        // The shell's stdin is the terminal dockyard made: a tty, as docker's.
        let pid = dy.inspect(name, "{{.State.Pid}}");
        let fd0 = std::fs::read_link(format!("/proc/{pid}/fd/0")).unwrap();
        assert!(fd0.starts_with("/dev/pts"), "{name}: stdin is {fd0:?}");
    }
    // docker run -itd --name=busybox_1 busybox:1.33.1 ping -w 2 -c 3 ... >/tmp/1.txt:
    // the ID goes to the file; the container exits when ping does (loopback
    // here, not www.baidu.com: no test reaches the internet).
    sh_ok(
        &dy,
        "$D run -itd $P --name=busybox_1 busybox ping -w 2 -c 3 127.0.0.1 >1.txt",
    );
    let file = std::fs::read_to_string(dy.root.path().join("1.txt")).unwrap();
    assert!(is_full_id(file.trim()), "{file:?}");
    dy.ok(&["wait", "busybox_1"]);
    assert!(dy
        .ok(&["logs", "busybox_1"])
        .contains("packets transmitted"));
    // docker rm -f `docker ps -a -q`: every container goes, the running
    // --rm one too (its monitor may remove it first: that is no error).
    let out = sh(&dy, "$D rm -f `$D ps -a -q`");
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(
        text(&out.stdout).lines().count(),
        4,
        "{}",
        text(&out.stdout)
    );
    assert_eq!(text(&out.stderr), "");
    assert_eq!(dy.ok(&["ps", "-aq"]), "");
    assert!(container_dirs(dy.root.path()).is_empty());
}

#[test]
fn notes_rm_and_rmi_by_shell_substitution() {
    let dy = Dy::new();
    dy.ok(&["run", "-d", "--name", "up", "busybox", "sleep", "60"]);
    dy.ok(&["run", "--name", "done1", "busybox", "true"]);
    dy.ok(&["run", "--name", "done2", "busybox", "true"]);
    // docker rm $(docker container ls -aq): the stopped ones go, the running
    // one is refused in docker's words, and the exit status says so.
    let out = sh(&dy, "$D rm $($D container ls -aq)");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stdout).lines().count(),
        2,
        "{}",
        text(&out.stdout)
    );
    assert_eq!(
        text(&out.stderr),
        "Error response from daemon: cannot remove container \"/up\": container is running: \
         stop the container before removing or force remove\n"
    );
    // docker rm $(docker container ls -f "status=exited" -q)
    dy.ok(&["run", "--name", "done3", "busybox", "true"]);
    let removed = sh_ok(&dy, r#"$D rm $($D container ls -f "status=exited" -q)"#);
    assert_eq!(removed.trim().len(), 12, "{removed}");
    assert_eq!(dy.ok(&["ps", "-a", "--format", "{{.Names}}"]), "up\n");
    // docker rm -f `docker ps -a|awk 'NR==2 {print $1}'`: the first row's ID.
    let first = sh_ok(&dy, "$D rm -f `$D ps -a|awk 'NR==2 {print $1}'`");
    assert_eq!(first.trim().len(), 12, "{first}");
    assert_eq!(dy.ok(&["ps", "-aq"]), "");

    // docker tag ...; docker rmi $(docker images -aq); docker image rm -f
    // `docker images | awk '{if (NR>1){print $3}}'`: by ID, every name goes.
    dy.ok(&["tag", "busybox", "postive/mtcentos:v1"]);
    let out = sh(&dy, "$D rmi $($D images -aq)");
    // Two names on one ID: docker refuses it without -f, in its words.
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("image is referenced in multiple repositories"),
        "{}",
        text(&out.stderr)
    );
    let out = sh_ok(
        &dy,
        "$D image rm -f `$D images | awk '{if (NR>1){print $3}}' | sort -u`",
    );
    assert!(out.contains("Untagged: busybox:latest"), "{out}");
    assert!(out.contains("Untagged: postive/mtcentos:v1"), "{out}");
    assert!(out.contains("Deleted: sha256:"), "{out}");
    assert_eq!(dy.ok(&["images", "-q"]), "");
}

#[test]
fn notes_exec_forms_and_the_terminal_check() {
    let dy = Dy::new();
    dy.ok(&["run", "-dt", "--name=test01", "busybox", "/bin/sh"]);
    // docker exec test01 ping ...: no -it, the output comes back.
    assert_eq!(dy.ok(&["exec", "test01", "hostname"]).len(), 13);
    // docker exec -dt nginx_with_baidu /bin/bash: detached, prints nothing,
    // and the process runs in the container's namespaces.
    assert_eq!(
        dy.ok(&["exec", "-dt", "test01", "sh", "-c", "sleep 30"]),
        ""
    );
    let pid = dy.inspect("test01", "{{.State.Pid}}");
    let ns = |p: &str| std::fs::read_link(format!("/proc/{p}/ns/pid")).ok();
    let in_container = || {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|p| {
                std::fs::read(format!("/proc/{p}/cmdline")).ok().as_deref()
                    == Some(&b"sleep\x0030\x00"[..])
            })
            .any(|p| ns(&p) == ns(&pid))
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !in_container() {
        assert!(
            std::time::Instant::now() < deadline,
            "no `sleep 30` in the container's PID namespace"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // docker exec -it test01 /bin/sh and docker run -it ... from a script,
    // with no terminal: docker's client refuses, in its words, exit 1.
    for args in [
        &["exec", "-it", "test01", "/bin/sh"][..],
        &["run", "-it", "--rm", "busybox"][..],
    ] {
        let out = dy.run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(text(&out.stderr), "the input device is not a TTY\n");
    }
    assert_eq!(dy.ok(&["ps", "-aq"]).lines().count(), 1);
}

#[test]
fn notes_start_ia_wait_kill_and_restart_always() {
    let dy = Dy::new();
    // docker run --name 5idocker busybox; docker start -i -a 5idocker: the
    // shell reads stdin and its exit code is start's.
    dy.ok(&["run", "-i", "--name", "5idocker", "busybox"]);
    let out = sh(&dy, "echo 'echo hi; exit 4' | $D start -i -a 5idocker");
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(text(&out.stdout), "hi\n");
    // docker wait: the exit code.
    assert_eq!(dy.ok(&["wait", "5idocker"]), "4\n");
    // docker run -d -h consul --name consul --restart always IMAGE ARGS
    dy.ok(&[
        "run",
        "-d",
        "-h",
        "consul",
        "--name",
        "consul",
        "--restart",
        "always",
        "busybox",
        "sleep",
        "60",
    ]);
    assert_eq!(dy.ok(&["exec", "consul", "hostname"]), "consul\n");
    assert_eq!(
        dy.inspect("consul", "{{.HostConfig.RestartPolicy.Name}}"),
        "always"
    );
    // docker kill testcentos: killed, and `always` brings it back.
    let before = dy.inspect("consul", "{{.State.Pid}}");
    assert_eq!(dy.ok(&["kill", "consul"]), "consul\n");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (count, status) = (
            dy.inspect("consul", "{{.RestartCount}}"),
            dy.inspect("consul", "{{.State.Status}}"),
        );
        if count == "1" && status == "running" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{count} {status}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_ne!(dy.inspect("consul", "{{.State.Pid}}"), before);
    // docker stop: stays stopped (a manual stop), 137 for sleep's SIGKILL
    // after the grace period, here none.
    dy.ok(&["stop", "-t", "0", "consul"]);
    assert_eq!(dy.inspect("consul", "{{.State.Status}}"), "exited");
}

#[test]
fn notes_logs_forms() {
    let dy = Dy::new();
    dy.ok(&[
        "run",
        "-d",
        "--name",
        "testcentos",
        "busybox",
        "sh",
        "-c",
        "i=1; while [ $i -le 15 ]; do echo line$i; i=$((i+1)); done",
    ]);
    dy.ok(&["wait", "testcentos"]);
    // docker logs testcentos
    let all = dy.ok(&["logs", "testcentos"]);
    assert_eq!(all.lines().count(), 15);
    // docker logs --tail 10 testcentos; -n 2
    let tail = dy.ok(&["logs", "--tail", "10", "testcentos"]);
    assert_eq!(tail.lines().next(), Some("line6"));
    assert_eq!(tail.lines().count(), 10);
    assert_eq!(
        dy.ok(&["logs", "-n", "2", "testcentos"]),
        "line14\nline15\n"
    );
    // docker logs -f -t testcentos: RFC 3339 times with nanoseconds, then the
    // line; -f ends with the (exited) container.
    let stamped = dy.ok(&["logs", "-f", "-t", "testcentos"]);
    let first = stamped.lines().next().unwrap();
    let (time, line) = first.split_once(' ').unwrap();
    assert_eq!(line, "line1");
    assert!(
        time.len() == 30 && time.ends_with('Z') && &time[10..11] == "T",
        "{time}"
    );
}

#[test]
fn notes_bind_mount_with_a_trailing_slash_is_recorded_clean() {
    let dy = Dy::new();
    let html = dy.root.path().join("html");
    std::fs::create_dir(&html).unwrap();
    std::fs::write(html.join("index.html"), "from the host\n").unwrap();
    // docker run -dt --name=nginx_01 -v /data/docker/html:/usr/share/nginx/html/ nginx:latest
    let spec = format!("{}:/usr/share/nginx/html/", html.display());
    dy.ok(&[
        "run",
        "-dt",
        "--name=nginx_01",
        "-v",
        &spec,
        "busybox",
        "/bin/sh",
    ]);
    assert_eq!(
        dy.ok(&[
            "exec",
            "nginx_01",
            "cat",
            "/usr/share/nginx/html/index.html"
        ]),
        "from the host\n"
    );
    // docker inspect nginx_01 | grep -A 9 'Mounts': docker's path.Clean'ed
    // destination, and the bind's fields.
    let doc: serde_json::Value = serde_json::from_str(&dy.ok(&["inspect", "nginx_01"])).unwrap();
    let m = &doc[0]["Mounts"][0];
    assert_eq!(m["Type"], "bind");
    assert_eq!(m["Destination"], "/usr/share/nginx/html");
    assert_eq!(m["Source"], html.to_str().unwrap());
    assert_eq!(m["RW"], true);
    // docker inspect -f {{.Mounts}} b1: Go's map printing.
    assert_eq!(
        dy.inspect("nginx_01", "{{.Mounts}}"),
        format!(
            "[map[Destination:/usr/share/nginx/html Mode: Propagation:rprivate RW:true Source:{} Type:bind]]",
            html.display()
        )
    );
    // A Windows path from the notes (-v c:/temp1:/data) means nothing on
    // Linux: refused before anything is made.
    let e = dy.fails(
        125,
        &["run", "--rm", "-v", "c:/temp1:/data", "busybox", "true"],
    );
    assert!(e.contains("invalid mode: /data"), "{e}");
}

#[test]
fn notes_commit_names_including_the_full_width_colon() {
    let dy = Dy::new();
    dy.ok(&["run", "-dt", "--name=test01", "busybox", "/bin/sh"]);
    dy.ok(&["exec", "test01", "sh", "-c", "echo 1 > /1.txt"]);
    // docker commit -p test01 docker.io/xyz349925756/busybox:1.33.1_1.txt
    let id = dy.ok(&[
        "commit",
        "-p",
        "test01",
        "docker.io/xyz349925756/busybox:1.33.1_1.txt",
    ]);
    assert!(
        id.starts_with("sha256:") && is_full_id(&id.trim()[7..]),
        "{id}"
    );
    assert_eq!(
        dy.ok(&[
            "images",
            "--format",
            "{{.Repository}} {{.Tag}}",
            "xyz349925756/busybox"
        ]),
        "xyz349925756/busybox 1.33.1_1.txt\n"
    );
    // docker run -it --rm xyz349925756/busybox:1.33.1_1.txt: the new layer.
    assert_eq!(
        dy.ok(&[
            "run",
            "--rm",
            "xyz349925756/busybox:1.33.1_1.txt",
            "cat",
            "/1.txt"
        ]),
        "1\n"
    );
    // docker commit -m "testtest" -a "own own" ae8 postive/mycentos:ownlasteat:
    // a container ID prefix, a message and an author.
    let short = dy.inspect("test01", "{{.Id}}")[..3].to_string();
    dy.ok(&[
        "commit",
        "-m",
        "testtest",
        "-a",
        "own own",
        &short,
        "postive/mycentos:ownlasteat",
    ]);
    assert_eq!(
        dy.inspect("postive/mycentos:ownlasteat", "{{.Author}}"),
        "own own"
    );
    // The message is the image's top-level `Comment`, as docker's, and the
    // new layer's history comment.
    assert_eq!(
        dy.inspect("postive/mycentos:ownlasteat", "{{.Comment}}"),
        "testtest"
    );
    let history = dy.ok(&["history", "postive/mycentos:ownlasteat"]);
    let newest = history.lines().nth(1).unwrap();
    assert!(newest.ends_with("testtest"), "{history}");
    // docker container commit test01 zewe/centos:latest
    dy.ok(&["container", "commit", "test01", "zewe/centos:latest"]);
    // docker commit hungry_darwin zewe/centos：latest (a full-width colon, as
    // the notes have it): docker's client refuses the name, nothing is made.
    let before = dy.ok(&["images", "-q"]);
    let out = dy.run(&["commit", "test01", "zewe/centos：latest"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stderr), "invalid reference format\n");
    assert_eq!(dy.ok(&["images", "-q"]), before);
    let out = dy.run(&["commit", "test01", "Zewe"]);
    assert_eq!(
        text(&out.stderr),
        "invalid reference format: repository name (library/Zewe) must be lowercase\n"
    );
}

#[test]
fn notes_export_import_save_load_by_id() {
    let dy = Dy::new();
    dy.ok(&[
        "run",
        "--name",
        "src",
        "busybox",
        "sh",
        "-c",
        "echo x > /made",
    ]);
    // docker export 1e560fca3906 > ubuntu.tar; docker import ubuntu.tar test/ubuntu:v1
    let short = dy.inspect("src", "{{.Id}}")[..12].to_string();
    sh_ok(&dy, &format!("$D export {short} > ubuntu.tar"));
    let id = sh_ok(&dy, "$D import ubuntu.tar test/ubuntu:v1");
    assert!(id.starts_with("sha256:"), "{id}");
    assert_eq!(
        dy.ok(&["run", "--rm", "test/ubuntu:v1", "cat", "/made"]),
        "x\n"
    );
    // docker import http://example.com/exampleimage.tgz example/imagerepo:
    // needs the network; refused before trying, with the way round it.
    let e = dy.fails(
        1,
        &[
            "import",
            "http://example.com/exampleimage.tgz",
            "example/imagerepo",
        ],
    );
    assert!(e.contains("needs the network"), "{e}");
    assert!(e.contains("dockyard import FILE example/imagerepo"), "{e}");
    let tar = dy.root.path().join("ubuntu.tar");
    let e = dy.fails(1, &["import", tar.to_str().unwrap(), "test/ubuntu：v1"]);
    assert!(e.contains("invalid reference format"), "{e}");

    // docker save ddee1359ecbc > FILE; docker image rm ddee1359ecbc;
    // docker load < FILE; docker tag ddee1359ecbc docker.io/xyz349925756/busybox:latest
    let img = dy.inspect("test/ubuntu:v1", "{{.Id}}")[7..19].to_string();
    sh_ok(&dy, &format!("$D save {img} > saved.tar"));
    assert!(
        std::fs::metadata(dy.root.path().join("saved.tar"))
            .unwrap()
            .len()
            > 1024
    );
    let out = sh_ok(&dy, &format!("$D image rm {img}"));
    assert!(out.contains(&format!("Deleted: sha256:{img}")), "{out}");
    assert!(dy.run(&["inspect", &img]).status.code() == Some(1));
    let loaded = sh_ok(&dy, "$D load < saved.tar");
    assert!(loaded.starts_with("Loaded image"), "{loaded}");
    dy.ok(&["tag", &img, "docker.io/xyz349925756/busybox:latest"]);
    assert_eq!(
        dy.inspect("xyz349925756/busybox:latest", "{{.Id}}")[7..19],
        img
    );
}

#[test]
fn notes_build_context_forms() {
    let dy = Dy::new();
    let root = dy.root.path();
    let html = root.join("html");
    let df = root.join("dockerfile");
    std::fs::create_dir(&html).unwrap();
    std::fs::create_dir(&df).unwrap();
    std::fs::write(html.join("index.html"), "hello\n").unwrap();
    let dockerfile = "FROM busybox\nCOPY index.html /usr/share/nginx/html/\n";
    std::fs::write(html.join("Dockerfile"), dockerfile).unwrap();
    std::fs::write(df.join("nginx_01"), dockerfile).unwrap();
    let h = html.display();
    let d = df.display();
    // docker build -t nginx:v1 /data/docker/html/; docker images | grep v1
    let out = sh_ok(
        &dy,
        &format!("$D build $P -t nginx:v1 {h}/ && $D images | grep v1"),
    );
    assert!(out.contains("Successfully tagged nginx:v1"), "{out}");
    assert!(out.lines().last().unwrap().starts_with("nginx "), "{out}");
    assert_eq!(
        dy.ok(&[
            "run",
            "--rm",
            "nginx:v1",
            "cat",
            "/usr/share/nginx/html/index.html"
        ]),
        "hello\n"
    );
    // docker build -f /data/dockerfile/nginx_01 /data/html: works.
    sh_ok(&dy, &format!("$D build $P -f {d}/nginx_01 {h}"));
    // docker build -f /data/dockerfile/nginx_01 /data/dockerfile/: the file
    // COPY names is not in that context: docker's words, exit 1.
    let out = sh(&dy, &format!("$D build $P -f {d}/nginx_01 {d}/"));
    assert_eq!(out.status.code(), Some(1));
    let copy_failed = "COPY failed: file not found in build context or excluded by \
                       .dockerignore: stat index.html: file does not exist";
    assert!(
        text(&out.stderr).contains(copy_failed),
        "{}",
        text(&out.stderr)
    );
    // cat Dockerfile | docker build . and docker build . < Dockerfile: with
    // a context directory, stdin is not read: the same image.
    let q = |script: &str| {
        sh_ok(&dy, &format!("cd {h} && {script}"))
            .trim()
            .to_string()
    };
    let direct = q("$D build $P -q .");
    assert_eq!(q("cat Dockerfile | $D build $P -q ."), direct);
    assert_eq!(q("$D build $P -q . < Dockerfile"), direct);
    // cat Dockerfile | docker build -: a Dockerfile and no context.
    let out = sh(&dy, &format!("cd {h} && cat Dockerfile | $D build $P -"));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains(copy_failed),
        "{}",
        text(&out.stderr)
    );
    // docker build - < context.tar.gz
    assert_eq!(
        q("tar czf ../context.tar.gz . && $D build $P -q - < ../context.tar.gz"),
        direct
    );
    // A flag docker's build does not have: docker's words for a flag it
    // does not know, exit 125, nothing built.
    let e = dy.fails(125, &["build", "--no-such-flag", h.to_string().as_str()]);
    assert!(e.starts_with("unknown flag: --no-such-flag\n"), "{e}");
    // One of the notes' `docker build --help` flags that docker's daemon
    // refuses on Linux: refused in its words, exit 1 (see
    // build_security_opt_is_refused_as_docker_refuses_it).
    let e = dy.fails(
        1,
        &[
            "build",
            "--security-opt",
            "seccomp=unconfined",
            h.to_string().as_str(),
        ],
    );
    assert!(
        e.contains("security options are not supported on linux"),
        "{e}"
    );
    // docker build https://github.com/...git#:11.1, http://server/context.tar.gz:
    // remote contexts need the network; refused before any lookup.
    for url in [
        "https://github.com/twang2218/gitlab-ce-zh.git#:11.1",
        "http://server/context.tar.gz",
    ] {
        let e = dy.fails(1, &["build", url]);
        assert!(e.starts_with("unable to prepare context"), "{e}");
        assert!(e.contains("no network"), "{e}");
    }
}

#[test]
fn notes_hub_images_are_refused_offline_with_the_way_round() {
    let dy = Dy::new();
    // docker run hello-world: docker pulls it from Docker Hub; dockyard
    // never reaches Docker Hub implicitly, and says what to do instead.
    let out = dy.run(&["run", "hello-world"]);
    assert_eq!(out.status.code(), Some(125));
    let e = text(&out.stderr);
    assert!(
        e.starts_with("Unable to find image 'hello-world:latest' locally\n"),
        "{e}"
    );
    assert!(e.contains("does not pull from Docker Hub"), "{e}");
    assert!(e.contains("dockyard pull hello-world:latest"), "{e}");
    assert_eq!(dy.ok(&["ps", "-aq"]), "");
    // docker login (no terminal to ask on): docker's client's words, exit 1,
    // before any registry is asked.
    let out = dy.run(&["login", "127.0.0.1:9"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "Error: Cannot perform an interactive login from a non TTY device\n"
    );
}

#[test]
fn notes_daemon_json_examples_load_as_dockerd_reads_them() {
    let dy = Dy::empty("dockyard-e2e-notes-json");
    let dir = dy.root.path();
    // The notes' first example, with a graph of this test's own.
    let graph = dir.join("graph");
    let small = format!(
        r#" {{
 "graph": "{}",
 "storage-driver": "overlay2",
"insecure-registries": ["registry.access.redhat.com","quay.io"],
"registry-mirrors": ["https://q2gr04ke.mirror.aliyuncs.com"],
 "bip": "172.24.38.1/24",
"exec-opts": ["native.cgroupdriver=systemd"],
"live-restore": true,
"bridge": "none"
}} "#,
        graph.display()
    );
    let info = info_with(dir, "small.json", &small);
    let (out, err) = (text(&info.stdout), text(&info.stderr));
    assert!(info.status.success(), "{out}{err}");
    assert!(
        out.contains(&format!(" Docker Root Dir: {}\n", graph.display())),
        "{out}"
    );
    assert!(
        out.contains(" Registry Mirrors:\n  https://q2gr04ke.mirror.aliyuncs.com\n"),
        "{out}"
    );
    assert!(
        out.contains(
            " Insecure Registries:\n  registry.access.redhat.com\n  quay.io\n  127.0.0.0/8\n"
        ),
        "{out}"
    );
    assert!(out.contains(" Storage Driver: overlay2\n"), "{out}");
    for warned in [
        "\"graph\" is deprecated",
        "live-restore",
        "native.cgroupdriver=systemd",
    ] {
        assert!(err.contains(warned), "{warned}: {err}");
    }
    // The full example the notes copy from docker's reference, its `#`
    // comments taken out (JSON has none): it loads, and each key dockyard
    // cannot act on is named in a warning, not ignored in silence.
    let notes = workspace_root().join("../shared/notes/002_278316d62c7515bb.txt");
    let Ok(notes) = std::fs::read_to_string(&notes) else {
        eprintln!("skipped the full example: {} is missing", notes.display());
        return;
    };
    let start = notes.find("daemon.josn完整例子").expect("the full example");
    let body: String = notes[start..]
        .lines()
        .skip_while(|l| *l != "{")
        .take_while(|l| *l != "}")
        .chain(["}"])
        .map(|l| l.split('#').next().unwrap().trim_end().to_string() + "\n")
        .collect();
    let mut full: serde_json::Value = serde_json::from_str(&body).expect("the example's JSON");
    assert_eq!(full.as_object().unwrap().len(), 72);
    // Its own data root and no default bridge: nothing of the host's.
    full["data-root"] = dir.join("full").to_str().unwrap().into();
    full["bridge"] = "none".into();
    let info = info_with(dir, "full.json", &full.to_string());
    let (out, err) = (text(&info.stdout), text(&info.stderr));
    assert!(info.status.success(), "{out}{err}");
    assert!(out.contains(" Debug Mode: true\n"), "{out}");
    for warned in ["\"hosts\"", "\"runtimes\"", "\"ipv6\"", "\"live-restore\""] {
        assert!(err.contains(warned), "{warned}: {err}");
    }
}

/// `dockyard --config FILE info`, FILE written with `text` in `dir`.
fn info_with(dir: &Path, name: &str, text: &str) -> Output {
    let file = dir.join(name);
    std::fs::write(&file, text).unwrap();
    Command::new(bin("dockyard"))
        .arg("--config")
        .arg(&file)
        .arg("info")
        .env_remove("DOCKYARD_ROOT")
        .env_remove(dockyard_e2e::dockyard::DAEMON_CONFIG_ENV)
        .output()
        .expect("dockyard info")
}

#[test]
fn notes_port_forms_in_a_throwaway_host() {
    let dy = Dy::new();
    // docker run -itd --name=nginx1 -p 80:80 ...; -P; and the notes' list:
    // -p hostPort:containerPort, ip:hostPort:containerPort,
    // ip::containerPort, hostPort:containerPort/udp, -p 81:80 -p 443:443.
    let script = r#"
        $D run -itd $P --name=nginx1 -p 80:80 busybox httpd -f -p 80 </dev/null >/dev/null
        $D exec nginx1 sh -c 'echo served > index.html'
        $D run -d $P --name web -P --expose 8080 busybox sleep 60 >/dev/null
        $D run -d $P --name w2 -p 127.0.0.1:8081:80 -p 127.0.0.1::81 -p 8082:80/udp -p 81:80 -p 443:443 busybox sleep 60 >/dev/null
        n=0; until wget -qO- http://127.0.0.1:80/index.html 2>/dev/null || [ $n -gt 50 ]; do sleep 0.1; n=$((n+1)); done
        echo "nginx1: $($D port nginx1)"
        echo "web: $($D port web 8080)"
        $D port w2 | sed 's/^/w2: /'
        echo "w2 443: $($D port w2 443)"
        $D port w2 25 2>&1; echo "none=$?"
        $D rm -f nginx1 web w2 >/dev/null
    "#;
    let script = script.replace("$P", &format!("--cgroup-parent={}", dy.parent));
    let out = super::networking::in_throwaway_netns(&dy, &script);
    let all = text(&out.stdout);
    for want in [
        "served",
        "nginx1: 80/tcp -> 0.0.0.0:80",
        "w2: 80/tcp -> 127.0.0.1:8081",
        "w2: 80/udp -> 0.0.0.0:8082",
        "w2: 80/tcp -> 0.0.0.0:81",
        "w2: 443/tcp -> 0.0.0.0:443",
        "w2 443: 0.0.0.0:443",
        "Error: No public port '25' published for w2",
        "none=1",
    ] {
        assert!(
            all.lines().any(|l| l == want),
            "{want:?} missing:\n{all}{}",
            text(&out.stderr)
        );
    }
    // -P and ip::port: a port from the kernel's ephemeral range.
    let ephemeral = |prefix: &str| {
        let line = all.lines().find(|l| l.starts_with(prefix)).unwrap();
        let port: u16 = line.rsplit(':').next().unwrap().parse().unwrap();
        assert!(port >= 32768, "{line}");
    };
    ephemeral("web: 0.0.0.0:");
    ephemeral("w2: 81/tcp -> 127.0.0.1:");
}

#[test]
fn notes_env_flag_and_a_command_the_image_lacks() {
    let dy = Dy::new();
    // docker run --rm -e E_OPT=test docker.io/xyz349925756/busybox:latest printenv:
    // the variable is in the container's environment...
    let env = dy.ok(&["run", "--rm", "-e", "E_OPT=test", "busybox", "env"]);
    assert!(env.lines().any(|l| l == "E_OPT=test"), "{env}");
    // ...but this base image's busybox has no `printenv` applet: docker's
    // exit code for a command that is not there, and its words.
    let out = dy.run(&["run", "--rm", "-e", "E_OPT=test", "busybox", "printenv"]);
    assert_eq!(out.status.code(), Some(127));
    assert!(
        text(&out.stderr).contains("exec \"printenv\": executable file not found in $PATH"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(dy.ok(&["ps", "-aq"]), "");
}

#[test]
fn commit_message_and_author_are_the_images_comment_and_author_as_dockers() {
    let dy = Dy::new();
    dy.ok(&["create", "--name", "c1", "busybox", "true"]);
    dy.ok(&[
        "commit",
        "-m",
        "a message",
        "-a",
        "An Author",
        "c1",
        "made:1",
    ]);
    // The docker CLI through the service, the oracle, reads the same store.
    let svc = crate::oracle::Service::start(&dy);
    let format = "{{.Comment}}|{{.Author}}";
    let docker = svc.docker_ok(&["image", "inspect", "-f", format, "made:1"]);
    assert_eq!(docker, "a message|An Author\n");
    assert_eq!(dy.inspect("made:1", format), docker.trim_end());
    // Without -m, the comment is empty: the parent's is not inherited.
    dy.ok(&["commit", "c1", "plain:1"]);
    assert_eq!(dy.inspect("plain:1", "{{.Comment}}"), "");
}

#[test]
fn info_prints_dockers_client_and_server_parts() {
    let dy = Dy::new();
    dy.ok(&["create", "--name", "c1", "busybox", "true"]);
    let svc = crate::oracle::Service::start(&dy);
    let docker = svc.docker_ok(&["info"]);
    let ours = dy.ok(&["info"]);
    // The client part: docker's lines, with dockyard's version and no CLI
    // plugins.
    let client = ours.split("\nServer:\n").next().unwrap();
    assert_eq!(
        client,
        format!(
            "Client:\n Version:    {}\n Context:    default\n Debug Mode: false\n",
            env!("CARGO_PKG_VERSION")
        )
    );
    // The server part, line for line what docker's CLI makes of GET /info,
    // but for the lines about binaries dockyard does not have.
    let server = |s: &str| -> Vec<String> {
        s.split_once("\nServer:\n")
            .unwrap()
            .1
            .lines()
            .filter(|l| {
                ![
                    " Init Binary:",
                    " containerd version:",
                    " runc version:",
                    " init version:",
                ]
                .iter()
                .any(|p| l.starts_with(p))
            })
            .map(String::from)
            .collect()
    };
    assert_eq!(
        server(&ours),
        server(&docker),
        "ours:\n{ours}\ndocker's:\n{docker}"
    );
    for line in [
        " Containers: 1\n",
        " Plugins:\n  Volume: local\n",
        " Runtimes: dockyard\n Default Runtime: dockyard\n",
        " Live Restore Enabled: false\n",
    ] {
        assert!(ours.contains(line), "{line:?} in {ours}");
    }
    let host = nix::unistd::gethostname().unwrap();
    assert!(ours.contains(&format!(" Name: {}\n", host.to_string_lossy())));
}
