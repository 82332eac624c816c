//! Docker fidelity: what a learner coming from docker types first works as
//! in docker, with docker's messages and exit codes. One test per rule:
//! image IDs are references, references are checked with docker's words,
//! unknown flags are reported as docker reports them, the default network
//! is the bridge (unless daemon.json's `"bridge": "none"`), and a
//! container's environment and `/etc` files are docker's.
//!
//! `run` pulling a missing image is in the registry tests (`run_pulls`),
//! beside the registry they need.

use dockyard_e2e::dockyard::{text, Dockyard as Dy};

/// The busybox image's full ID (`sha256:...`).
fn busybox_id(dy: &Dy) -> String {
    dy.inspect("busybox", "{{.Id}}")
}

#[test]
fn image_ids_and_unique_prefixes_are_references_everywhere() {
    let dy = Dy::new();
    let id = busybox_id(&dy);
    let hex = id.strip_prefix("sha256:").expect("a sha256 ID").to_string();
    assert_eq!(hex.len(), 64);
    let prefix = &hex[..5];
    // inspect, history: the full ID, the bare hex, a prefix, sha256:prefix.
    for r in [
        id.as_str(),
        hex.as_str(),
        prefix,
        &format!("sha256:{prefix}"),
    ] {
        assert_eq!(dy.inspect(r, "{{.Id}}"), id, "inspect {r}");
        assert_eq!(dy.ok(&["image", "inspect", "-f", "{{.Id}}", r]).trim(), id);
        let history = dy.ok(&["history", "-q", r]);
        assert_eq!(history.lines().next(), Some(&hex[..12]), "history {r}");
    }
    // run and create by prefix: the container runs the image, and records
    // the reference as typed and the ID it found.
    assert_eq!(dy.ok(&["run", "--rm", prefix, "echo", "ran"]), "ran\n");
    dy.ok(&["create", "--name", "byid", prefix, "true"]);
    assert_eq!(dy.inspect("byid", "{{.Config.Image}}"), prefix);
    assert_eq!(dy.inspect("byid", "{{.Image}}"), id);
    dy.ok(&["rm", "byid"]);
    // tag by prefix: a second name for the same ID.
    dy.ok(&["tag", prefix, "mybox:1"]);
    assert_eq!(dy.inspect("mybox:1", "{{.Id}}"), id);
    // save by ID: a docker-archive with the image's config in it.
    let tar = dy.root.path().join("byid.tar");
    dy.ok(&["save", "-o", tar.to_str().unwrap(), &hex]);
    let mut archive = tar::Archive::new(std::fs::File::open(&tar).unwrap());
    let names: Vec<String> = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().any(|n| n == "manifest.json"), "{names:?}");
    assert!(names.iter().any(|n| n.contains(&hex)), "{names:?}");
    // rmi by ID of an image with names in two repositories: docker's conflict.
    let err = dy.fails(1, &["rmi", prefix]);
    assert!(
        err.contains(&format!(
            "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
            &hex[..12]
        )),
        "{err}"
    );
    // One name left: rmi by ID removes the name and the image's blobs.
    dy.ok(&["rmi", "mybox:1"]);
    let out = dy.ok(&["rmi", prefix]);
    assert!(out.starts_with("Untagged: busybox:latest\n"), "{out}");
    assert!(out.contains(&format!("Deleted: {id}\n")), "{out}");
    assert!(!dy.root.path().join("blobs/sha256").join(&hex).exists());
    assert_eq!(dy.ok(&["images", "-q"]), "");
}

#[test]
fn references_are_checked_with_dockers_words() {
    let dy = Dy::new();
    let err = dy.fails(125, &["run", "--rm", "Busybox", "true"]);
    assert!(
        err.contains(
            "invalid reference format: repository name (library/Busybox) must be lowercase"
        ),
        "{err}"
    );
    let err = dy.fails(1, &["tag", "busybox", "Mine:1"]);
    assert!(
        err.contains("Error parsing reference: \"Mine:1\" is not a valid repository/tag: invalid reference format: repository name (library/Mine) must be lowercase"),
        "{err}"
    );
    let err = dy.fails(1, &["tag", "busybox", "a b"]);
    assert!(err.contains("invalid reference format"), "{err}");
    // A missing image: docker's "No such image", with the tag it completed,
    // and no advice from a lab's command line.
    for args in [
        &["history", "nosuch"][..],
        &["rmi", "nosuch"],
        &["image", "inspect", "nosuch"],
        &["save", "-o", "/dev/null", "nosuch"],
    ] {
        let out = dy.run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = text(&out.stderr);
        assert!(
            err.contains("No such image: nosuch:latest"),
            "{args:?}: {err}"
        );
        assert!(!err.contains("lab04-overlay"), "{args:?}: {err}");
    }
    // A hex word that prefixes no ID is a name, and missing.
    let err = dy.fails(1, &["history", "abcdef0"]);
    assert!(err.contains("No such image: abcdef0:latest"), "{err}");
    // Nothing was made by the failed commands.
    assert_eq!(dy.ok(&["ps", "-aq"]), "");
    assert_eq!(
        dy.ok(&["images", "--format", "{{.Repository}}"]),
        "busybox\n"
    );
}

#[test]
fn unknown_flags_exit_125_in_dockers_words() {
    let dy = Dy::new();
    let cases: [(&[&str], &str, &str); 6] = [
        (
            &["run", "--bogus-flag", "db", "busybox", "true"],
            "unknown flag: --bogus-flag",
            "dockyard run",
        ),
        (
            &["create", "--gpus", "x", "busybox"],
            "unknown flag: --gpus",
            "dockyard create",
        ),
        (
            &["run", "-d", "--runtime=a", "busybox"],
            "unknown flag: --runtime",
            "dockyard run",
        ),
        (
            &["build", "--squash", "."],
            "unknown flag: --squash",
            "dockyard build",
        ),
        (&["ps", "--bogus"], "unknown flag: --bogus", "dockyard ps"),
        (
            &["image", "ls", "-Z"],
            "unknown shorthand flag: 'Z' in -Z",
            "dockyard image ls",
        ),
    ];
    for (args, first, cmd) in cases {
        let err = dy.fails(125, args);
        assert!(
            err.starts_with(&format!("{first}\n\nUsage:  {cmd} ")),
            "{args:?}: {err}"
        );
        assert!(
            err.ends_with(&format!("\n\nRun '{cmd} --help' for more information\n")),
            "{args:?}: {err}"
        );
        // Never taken for an image or a build context.
        assert!(!err.contains("Unable to find image"), "{args:?}: {err}");
        assert!(!err.contains("'.'"), "{args:?}: {err}");
    }
    // Unknown commands and missing arguments: docker's words, exit 1.
    let err = dy.fails(1, &["image", "frobnicate"]);
    assert_eq!(
        err,
        "dockyard: unknown command: dockyard image frobnicate\n\nRun 'dockyard image --help' for more information\n"
    );
    let err = dy.fails(1, &["run"]);
    assert!(
        err.starts_with("dockyard: 'dockyard run' requires at least 1 argument\n\nUsage:  dockyard run [OPTIONS] IMAGE [COMMAND] [ARG...]\n"),
        "{err}"
    );
    assert_eq!(dy.ok(&["ps", "-aq"]), "", "a bad flag created a container");
    // What follows the image is the command's, dashes and all.
    assert_eq!(
        dy.ok(&["run", "--rm", "busybox", "echo", "--link", "-Z"]),
        "--link -Z\n"
    );
}

#[test]
fn the_default_network_is_the_bridge_and_p_publishes_on_it() {
    let dy = Dy::new();
    let parent = format!("--cgroup-parent={}", dy.parent);
    let out = crate::networking::in_throwaway_netns(
        &dy,
        &format!(
            r#"
        $D run -d {parent} --name web -p 18080:80 busybox sh -c 'while :; do echo hi-from-web | nc -l -p 80; done' >/dev/null
        n=0; until $D exec web netstat -ltn | grep -q ':80 ' || [ $n -ge 100 ]; do sleep 0.1; n=$((n+1)); done
        $D inspect -f 'mode={{{{.HostConfig.NetworkMode}}}} ip={{{{.NetworkSettings.IPAddress}}}}' web
        echo "published: $(images/busybox/rootfs/bin/busybox nc -w 2 127.0.0.1 18080 </dev/null)"
        $D ps --format '{{{{.Names}}}} {{{{.Ports}}}}'
        $D port web 80
        $D port web 81/tcp 2>&1; echo "exit=$?"
        $D network ls --format '{{{{.Name}}}}' | tr '\n' ' '; echo
        $D run --rm {parent} busybox sh -c 'ls /sys/class/net | tr "\n" " "'; echo
        $D rm -f web >/dev/null
        "#
        ),
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("mode=bridge ip=172.17."), "{stdout}");
    assert_eq!(lines[1], "published: hi-from-web", "{stdout}");
    assert_eq!(lines[2], "web 0.0.0.0:18080->80/tcp", "{stdout}");
    assert_eq!(lines[3], "0.0.0.0:18080", "{stdout}");
    assert_eq!(
        lines[4], "Error: No public port '81/tcp' published for web",
        "{stdout}"
    );
    assert_eq!(lines[5], "exit=1", "{stdout}");
    assert_eq!(lines[6], "bridge host none ", "{stdout}");
    assert_eq!(
        lines[7], "eth0 lo ",
        "a container without --network has eth0: {stdout}"
    );
}

#[test]
fn bridge_none_in_daemon_json_makes_none_the_default() {
    // The tests' own daemon.json says "bridge": "none" (the networking
    // rule); here it is written out, to be explicit about what is tested.
    let dy = Dy::new();
    let links = || {
        let mut l: Vec<String> = std::fs::read_dir("/sys/class/net")
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        l.sort();
        l
    };
    let before = links();
    let conf = dy.root.path().join("no-bridge.json");
    std::fs::write(&conf, r#"{"bridge": "none"}"#).unwrap();
    let c = conf.to_str().unwrap();
    let out = dy.ok(&[
        "--config",
        c,
        "run",
        "--rm",
        "busybox",
        "ls",
        "/sys/class/net",
    ]);
    assert_eq!(out, "lo\n", "only the loopback: no bridge, no veth");
    dy.ok(&["--config", c, "create", "--name", "quiet", "busybox"]);
    assert_eq!(dy.inspect("quiet", "{{.HostConfig.NetworkMode}}"), "none");
    let names = dy.ok(&["--config", c, "network", "ls", "--format", "{{.Name}}"]);
    assert_eq!(names, "host\nnone\n");
    let err = dy.fails(
        125,
        &[
            "--config",
            c,
            "run",
            "--rm",
            "--network",
            "bridge",
            "busybox",
            "true",
        ],
    );
    assert!(err.contains("network bridge not found"), "{err}");
    let err = dy.fails(1, &["--config", c, "network", "inspect", "bridge"]);
    assert!(err.contains("network bridge not found"), "{err}");
    // No bridge and no veth were made in this (the host's) network namespace.
    assert_eq!(links(), before);
}

#[test]
fn the_container_environment_and_etc_files_are_dockers() {
    let dy = Dy::new();
    // HOSTNAME is the container's hostname, HOME root's home in the
    // image's passwd; no TERM without a terminal.
    dy.ok(&["create", "--name", "env1", "busybox", "env"]);
    let out = dy.ok(&["start", "-a", "env1"]);
    let hostname = dy.inspect("env1", "{{.Config.Hostname}}");
    let env: Vec<&str> = out.lines().collect();
    assert!(
        env.contains(&format!("HOSTNAME={hostname}").as_str()),
        "{out}"
    );
    assert!(env.contains(&"HOME=/root"), "{out}");
    assert!(!out.contains("TERM="), "{out}");
    // Not recorded in the config, as in docker.
    let recorded = dy.inspect("env1", "{{json .Config.Env}}");
    assert!(!recorded.contains("HOSTNAME"), "{recorded}");
    // -t: TERM=xterm (the terminal is what lab 02 allocates; stdin is null).
    let out = dy.ok(&["run", "--rm", "-t", "busybox", "sh", "-c", "echo $TERM"]);
    assert_eq!(out.trim(), "xterm");
    // A user with no passwd entry: HOME is /. One with an entry: its home.
    let out = dy.ok(&[
        "run",
        "--rm",
        "-u",
        "4242",
        "busybox",
        "sh",
        "-c",
        "echo $HOME",
    ]);
    assert_eq!(out, "/\n");
    let home = dy.ok(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "grep ^nobody: /etc/passwd | cut -d: -f6",
    ]);
    let out = dy.ok(&[
        "run",
        "--rm",
        "-u",
        "nobody",
        "busybox",
        "sh",
        "-c",
        "echo $HOME",
    ]);
    assert_eq!(out, home, "nobody's home from the image's passwd");
    // -e wins over the defaults.
    let out = dy.ok(&[
        "run",
        "--rm",
        "-e",
        "HOME=/srv",
        "-e",
        "HOSTNAME=mine",
        "busybox",
        "sh",
        "-c",
        "echo $HOME $HOSTNAME",
    ]);
    assert_eq!(out, "/srv mine\n");
    // /etc/hostname, /etc/hosts and /etc/resolv.conf are the container's
    // own, bind-mounted in (also without a network, and read-only root).
    let out = dy.ok(&[
        "run", "--rm", "--read-only", "-h", "box1", "busybox", "sh", "-c",
        "cat /etc/hostname; grep -c localhost /etc/hosts; grep -cE ' /etc/(hostname|hosts|resolv.conf) ' /proc/self/mountinfo",
    ]);
    assert_eq!(out, "box1\n2\n3\n", "{out}");
    // On the host's network (no traffic: only names are read), the host's
    // name, and its hosts file.
    let host = nix::unistd::gethostname().unwrap().into_string().unwrap();
    let out = dy.ok(&[
        "run",
        "--rm",
        "--network",
        "host",
        "busybox",
        "sh",
        "-c",
        "cat /etc/hostname; echo $HOSTNAME; grep -c . /etc/hosts",
    ]);
    let hosts_lines = std::fs::read_to_string("/etc/hosts")
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty())
        .count();
    assert_eq!(out, format!("{host}\n{host}\n{hosts_lines}\n"));
}

#[test]
fn terminal_stdin_and_exposed_ports_are_recorded_and_shown() {
    let dy = Dy::new();
    dy.ok(&["create", "-it", "--name", "term", "busybox"]);
    assert_eq!(
        dy.inspect("term", "{{.Config.Tty}} {{.Config.OpenStdin}} {{.Config.AttachStdin}} {{.Config.AttachStdout}}"),
        "true true true true"
    );
    dy.ok(&[
        "run",
        "-d",
        "--name",
        "exp",
        "--expose",
        "80",
        "--expose",
        "9000-9002/udp",
        "busybox",
        "sleep",
        "30",
    ]);
    assert_eq!(
        dy.inspect("exp", "{{.Config.Tty}} {{.Config.OpenStdin}} {{.Config.AttachStdin}} {{.Config.AttachStdout}}"),
        "false false false false"
    );
    assert_eq!(
        dy.inspect("exp", "{{json .Config.ExposedPorts}}"),
        r#"{"80/tcp":{},"9000/udp":{},"9001/udp":{},"9002/udp":{}}"#
    );
    assert_eq!(
        dy.ok(&["ps", "--format", "{{.Ports}}"]),
        "80/tcp, 9000-9002/udp\n"
    );
    // HostConfig carries what was asked.
    dy.ok(&[
        "create",
        "--name",
        "asked",
        "--read-only",
        "--tmpfs",
        "/run:size=1m",
        "-p",
        "127.0.0.1:8080:80",
        "-p",
        "53/udp",
        "--cap-add",
        "NET_ADMIN",
        "busybox",
    ]);
    assert_eq!(
        dy.inspect(
            "asked",
            "{{json .HostConfig.PortBindings}} {{.HostConfig.ReadonlyRootfs}} {{json .HostConfig.Tmpfs}} {{json .HostConfig.CapAdd}}"
        ),
        r#"{"53/udp":[{"HostIp":"","HostPort":""}],"80/tcp":[{"HostIp":"127.0.0.1","HostPort":"8080"}]} true {"/run":"size=1m"} ["NET_ADMIN"]"#
    );
    let err = dy.fails(
        125,
        &["run", "--rm", "--expose", "90-80", "busybox", "true"],
    );
    assert!(
        err.contains(
            "invalid range format for --expose: 90-80, error: invalid range specified: 90-80"
        ),
        "{err}"
    );
}

#[test]
fn image_inspect_has_dockers_fields() {
    let dy = Dy::new();
    dy.ok(&["tag", "busybox", "mine:1"]);
    let out = dy.ok(&["image", "inspect", "busybox"]);
    let docs: serde_json::Value = serde_json::from_str(&out).unwrap();
    let doc = &docs[0];
    let id = busybox_id(&dy);
    assert_eq!(doc["Id"], id.as_str());
    assert_eq!(
        doc["RepoTags"],
        serde_json::json!(["busybox:latest", "mine:1"])
    );
    assert_eq!(doc["RepoDigests"], serde_json::json!([]));
    assert_eq!(doc["Os"], "linux");
    assert!(
        doc["Architecture"].as_str().is_some_and(|a| !a.is_empty()),
        "{doc}"
    );
    assert!(doc["Created"].as_str().is_some(), "{doc}");
    assert_eq!(doc["Config"]["Cmd"], serde_json::json!(["sh"]), "{doc}");
    assert_eq!(doc["RootFS"]["Type"], "layers");
    assert_eq!(doc["GraphDriver"]["Name"], "overlay2");
    // The layer directories are real: each diff ID's lower dir holds the
    // image's files.
    let layers = doc["RootFS"]["Layers"].as_array().unwrap();
    let lower = doc["GraphDriver"]["Data"]["LowerDir"].as_str().unwrap();
    assert_eq!(lower.split(':').count(), layers.len());
    assert!(lower
        .split(':')
        .any(|d| std::path::Path::new(d).join("bin/busybox").exists()));
    // The size is the unpacked layers': what du would count, within reason.
    assert!(doc["Size"].as_u64().unwrap() > 1_000_000, "{doc}");
    // Not OCI's lower-case fields.
    for k in ["config", "rootfs", "os", "architecture", "history"] {
        assert!(doc.get(k).is_none(), "{k} in {doc}");
    }
}

#[test]
fn listings_filter_as_dockers_do() {
    let dy = Dy::new();
    dy.ok(&["run", "--name", "web", "busybox", "true"]);
    dy.ok(&["run", "--name", "web2", "busybox", "true"]);
    dy.ok(&["run", "-d", "--name", "db", "busybox", "sleep", "30"]);
    // A status filter looks at every container, without -a.
    let exited = dy.ok(&["ps", "-f", "status=exited", "--format", "{{.Names}}"]);
    assert_eq!(exited, "web2\nweb\n");
    // name= is a regular expression.
    let names = |f: &str| dy.ok(&["ps", "-a", "-f", f, "--format", "{{.Names}}"]);
    assert_eq!(names("name=^web$"), "web\n");
    assert_eq!(names("name=web"), "web2\nweb\n");
    assert_eq!(names("name=^d.$"), "db\n");
    // images REPOSITORY[:TAG], -f reference=, -f dangling=, --format.
    dy.ok(&["tag", "busybox", "mine:1"]);
    dy.ok(&["tag", "busybox", "mine:2"]);
    let images = |args: &[&str]| {
        let mut all = vec!["images", "--format", "{{.Repository}}:{{.Tag}}"];
        all.extend_from_slice(args);
        dy.ok(&all)
    };
    assert_eq!(images(&[]), "busybox:latest\nmine:1\nmine:2\n");
    assert_eq!(images(&["mine"]), "mine:1\nmine:2\n");
    assert_eq!(images(&["mine:2"]), "mine:2\n");
    assert_eq!(images(&["-f", "reference=m*:1"]), "mine:1\n");
    assert_eq!(
        images(&["-f", "dangling=true"]),
        "",
        "every image here has a name"
    );
    assert_eq!(
        images(&["-f", "dangling=false", "busybox"]),
        "busybox:latest\n"
    );
    let table = dy.ok(&[
        "images",
        "--format",
        "table {{.Repository}}\t{{.Tag}}",
        "mine:1",
    ]);
    assert_eq!(table, "REPOSITORY   TAG\nmine         1\n");
    let err = dy.fails(1, &["images", "-f", "colour=red"]);
    assert!(err.contains("invalid filter 'colour'"), "{err}");
}

#[test]
fn rmi_of_one_of_several_names_untags_it_even_while_a_container_uses_the_image() {
    let dy = Dy::new();
    let id = busybox_id(&dy);
    dy.ok(&["create", "--name", "user", "busybox", "true"]);
    dy.ok(&["tag", "busybox", "mine:1"]);
    // One of two names: it goes, the image stays (no "Deleted:").
    assert_eq!(dy.ok(&["rmi", "mine:1"]), "Untagged: mine:1\n");
    // The last name of an image a container uses: docker's conflict.
    let err = dy.fails(1, &["rmi", "busybox"]);
    assert!(
        err.contains(&format!(
            "conflict: unable to remove repository reference \"busybox\" (must force) - container {} is using its referenced image {}",
            &dy.inspect("user", "{{.Id}}")[..12],
            &id[7..19]
        )),
        "{err}"
    );
    // By ID, with a stopped container using it: must be forced.
    let err = dy.fails(1, &["rmi", &id]);
    assert!(
        err.contains("(must be forced) - image is being used by stopped container"),
        "{err}"
    );
    assert_eq!(dy.inspect("busybox", "{{.Id}}"), id, "still there");
}

#[test]
fn logs_details_prefix_the_attributes_of_log_opt_labels_and_env() {
    let dy = Dy::new();
    dy.ok(&[
        "run",
        "--name",
        "lg",
        "-l",
        "app=web",
        "-e",
        "MODE=a b",
        "--log-opt",
        "labels=app,absent",
        "--log-opt",
        "env=MODE",
        "busybox",
        "echo",
        "hi",
    ]);
    // dockerd: the attributes sorted, query-escaped, then a space.
    assert_eq!(dy.ok(&["logs", "--details", "lg"]), "MODE=a+b,app=web hi\n");
    assert_eq!(dy.ok(&["logs", "lg"]), "hi\n");
    // Without attributes: the space alone, as docker prints it.
    dy.ok(&["run", "--name", "plain", "busybox", "echo", "hi"]);
    assert_eq!(dy.ok(&["logs", "--details", "plain"]), " hi\n");
    let t = dy.ok(&["logs", "--details", "-t", "lg"]);
    assert!(t.ends_with("Z MODE=a+b,app=web hi\n"), "{t}");
}

#[test]
fn volumes_from_shares_another_containers_mounts_with_their_modes() {
    let dy = Dy::new();
    dy.ok(&[
        "run",
        "--name",
        "src",
        "-v",
        "/anon",
        "-v",
        "named:/named",
        "busybox",
        "sh",
        "-c",
        "echo one > /anon/f; echo two > /named/g",
    ]);
    assert_eq!(
        dy.ok(&[
            "run",
            "--rm",
            "--volumes-from",
            "src",
            "busybox",
            "cat",
            "/anon/f",
            "/named/g"
        ]),
        "one\ntwo\n"
    );
    // The same data, not a copy: a write through one shows in the other.
    dy.ok(&[
        "run",
        "--rm",
        "--volumes-from",
        "src:rw",
        "busybox",
        "sh",
        "-c",
        "echo three > /anon/f",
    ]);
    assert_eq!(
        dy.ok(&[
            "run",
            "--rm",
            "--volumes-from",
            "src",
            "busybox",
            "cat",
            "/anon/f"
        ]),
        "three\n"
    );
    // :ro makes them read-only here (the kernel refuses the write).
    let out = dy.run(&[
        "run",
        "--rm",
        "--volumes-from",
        "src:ro",
        "busybox",
        "sh",
        "-c",
        "echo x > /anon/f",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("Read-only file system"),
        "{}",
        text(&out.stderr)
    );
    // A target of its own wins.
    dy.ok(&["volume", "create", "other"]);
    let own = dy.ok(&[
        "run",
        "--rm",
        "--volumes-from",
        "src",
        "-v",
        "other:/named",
        "busybox",
        "ls",
        "/named",
    ]);
    assert_eq!(own, "");
    let e = dy.fails(
        125,
        &["run", "--rm", "--volumes-from", "nope", "busybox", "true"],
    );
    assert!(e.contains("No such container: nope"), "{e}");
    let e = dy.fails(
        125,
        &["run", "--rm", "--volumes-from", "src:zz", "busybox", "true"],
    );
    assert!(e.contains("invalid mode: zz"), "{e}");
    // A container that borrowed them never takes them away (rm -v).
    dy.ok(&[
        "create",
        "--name",
        "borrower",
        "--volumes-from",
        "src",
        "busybox",
        "true",
    ]);
    dy.ok(&["rm", "-v", "borrower"]);
    assert_eq!(
        dy.ok(&[
            "run",
            "--rm",
            "--volumes-from",
            "src",
            "busybox",
            "cat",
            "/anon/f"
        ]),
        "three\n"
    );
}

#[test]
fn import_change_and_message_shape_the_imported_image() {
    let dy = Dy::new();
    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("rootfs.tar");
    let id = dy.ok(&["create", "busybox", "true"]);
    let out = dy.command(&["export", id.trim()]).output().unwrap();
    std::fs::write(&tar, &out.stdout).unwrap();
    let tar = tar.to_str().unwrap();
    dy.ok(&[
        "import",
        "-c",
        "CMD [\"echo\", \"changed\"]",
        "-c",
        "ENV A=1",
        "-c",
        "EXPOSE 80",
        "-m",
        "a note",
        tar,
        "imp:1",
    ]);
    assert_eq!(dy.ok(&["run", "--rm", "imp:1"]), "changed\n");
    assert_eq!(
        dy.ok(&["run", "--rm", "imp:1", "sh", "-c", "echo $A"]),
        "1\n"
    );
    assert_eq!(
        dy.inspect("imp:1", "{{json .Config.ExposedPorts}}"),
        "{\"80/tcp\":{}}"
    );
    assert!(dy.ok(&["history", "imp:1"]).contains("a note"));
    // A bad change: docker's message, and no image.
    let e = dy.fails(1, &["import", "-c", "RUN true", tar, "imp:2"]);
    assert!(e.contains("RUN is not a valid change command"), "{e}");
    assert_eq!(dy.ok(&["images", "-q", "imp:2"]), "");
    let e = dy.fails(1, &["import", "http://127.0.0.1:9/x.tar", "imp:3"]);
    assert!(e.contains("needs the network"), "{e}");
}

#[test]
fn update_cpu_period_quota_and_cpuset_reach_the_kernel() {
    use lab03_cgroups::Version;
    let dy = Dy::new();
    dy.ok(&[
        "run",
        "-d",
        "--name",
        "up",
        "--cpuset-cpus",
        "0",
        "busybox",
        "sleep",
        "60",
    ]);
    dy.ok(&[
        "update",
        "--cpu-period",
        "50000",
        "--cpu-quota",
        "25000",
        "up",
    ]);
    let id = dy.inspect("up", "{{.Id}}");
    let host = super::common::cgroup_host();
    // The container's own files, as the kernel shows them.
    let bandwidth = match host.version() {
        Version::V1 => {
            let dir = host
                .v1
                .iter()
                .find(|(c, _)| c == "cpu")
                .unwrap()
                .1
                .join(&dy.parent)
                .join(&id);
            format!(
                "{} {}",
                super::common::read_trimmed(&dir.join("cpu.cfs_quota_us")),
                super::common::read_trimmed(&dir.join("cpu.cfs_period_us"))
            )
        }
        Version::V2 => super::common::read_trimmed(
            &host
                .v2_mount
                .clone()
                .unwrap()
                .join(&dy.parent)
                .join(&id)
                .join("cpu.max"),
        ),
    };
    assert_eq!(bandwidth, "25000 50000");
    assert_eq!(
        dy.inspect("up", "{{.HostConfig.CpuPeriod}} {{.HostConfig.CpuQuota}}"),
        "50000 25000"
    );
    // --cpus and the raw period exclude each other, as in dockerd.
    let e = dy.fails(1, &["update", "--cpus", "0.5", "up"]);
    assert!(e.contains("Conflicting options"), "{e}");
    // The cpuset: what the container's own process may run on.
    if lab03_cgroups::ncpus() >= 2 {
        dy.ok(&["update", "--cpuset-cpus", "1", "up"]);
        let status = dy.ok(&["exec", "up", "cat", "/proc/self/status"]);
        assert!(status.contains("Cpus_allowed_list:\t1\n"), "{status}");
        assert_eq!(dy.inspect("up", "{{.HostConfig.CpusetCpus}}"), "1");
    }
    let e = dy.fails(1, &["update", "--cpuset-cpus", "0-4095", "up"]);
    assert!(e.contains("Requested CPUs are not available"), "{e}");
}

#[test]
fn cp_with_a_dash_streams_a_tar_both_ways() {
    use std::io::Write;
    use std::process::Stdio;
    let dy = Dy::new();
    dy.ok(&[
        "run",
        "-d",
        "--name",
        "box",
        "busybox",
        "sh",
        "-c",
        "mkdir -p /d/sub; echo a > /d/f; echo b > /d/sub/g; ln -s f /d/l; sleep 60",
    ]);
    dy.wait_for("box", "{{.State.Status}}", "running");
    dy.wait_for_exec("box", &["test", "-L", "/d/l"]);
    // Out: a tar on stdout, its entries under the base name.
    let out = dy.command(&["cp", "box:/d", "-"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut names: Vec<String> = tar::Archive::new(&out.stdout[..])
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let mut n = e.path().unwrap().to_string_lossy().into_owned();
            if let Some(l) = e.link_name().unwrap() {
                n = format!("{n} -> {}", l.display());
            }
            n
        })
        .collect();
    names.sort();
    assert_eq!(names, ["d", "d/f", "d/l -> f", "d/sub", "d/sub/g"]);
    let one = dy.command(&["cp", "box:/d/sub/g", "-"]).output().unwrap();
    let mut a = tar::Archive::new(&one.stdout[..]);
    let mut e = a.entries().unwrap().next().unwrap().unwrap();
    assert_eq!(e.path().unwrap().to_str(), Some("g"));
    let mut body = String::new();
    std::io::Read::read_to_string(&mut e, &mut body).unwrap();
    assert_eq!(body, "b\n");
    // In: a tar on stdin, unpacked into a directory of the container.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(3);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    b.append_data(&mut h, "x/h", &b"hi\n"[..]).unwrap();
    let tar = b.into_inner().unwrap();
    let mut child = dy
        .command(&["cp", "-", "box:/tmp"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&tar).unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(dy.ok(&["exec", "box", "cat", "/tmp/x/h"]), "hi\n");
    // docker's refusals.
    let e = dy.fails(1, &["cp", "-", "box:/d/f"]);
    assert!(e.contains("extraction point is not a directory"), "{e}");
    let e = dy.fails(1, &["cp", "-", "/tmp"]);
    assert!(
        e.contains("must specify at least one container source"),
        "{e}"
    );
}

#[test]
fn link_gives_hosts_lines_and_dockers_variables_in_a_throwaway_host() {
    let dy = Dy::new();
    let parent = format!("--cgroup-parent={}", dy.parent);
    let script = format!(
        r#"
        $D run -d {parent} --name db -e PASS=x --expose 5432 busybox sleep 60 >/dev/null
        ip=$($D inspect -f '{{{{.NetworkSettings.IPAddress}}}}' db)
        echo "ip=$ip"
        echo "hostname=$($D inspect -f '{{{{.Config.Hostname}}}}' db)"
        $D run --rm {parent} --name web --link db:pg busybox sh -c 'env | grep ^PG_ | sort; sed "s/^/hosts: /" /etc/hosts; ping -c1 -W2 db >/dev/null && echo reached'
        $D run --rm {parent} --network none --link db busybox true 2>&1; echo "none=$?"
        $D stop -t 0 db >/dev/null
        $D run --rm {parent} --name web --link db busybox true 2>&1; echo "stopped=$?"
        $D rm -f db >/dev/null
        "#
    );
    let out = super::networking::in_throwaway_netns(&dy, &script);
    let all = text(&out.stdout);
    let ip = all
        .lines()
        .find_map(|l| l.strip_prefix("ip="))
        .expect("the linked container's address");
    assert!(!ip.is_empty(), "{all}");
    for want in [
        "PG_ENV_PASS=x".to_string(),
        "PG_NAME=/web/pg".to_string(),
        format!("PG_PORT=tcp://{ip}:5432"),
        format!("PG_PORT_5432_TCP=tcp://{ip}:5432"),
        format!("PG_PORT_5432_TCP_ADDR={ip}"),
        "PG_PORT_5432_TCP_PORT=5432".to_string(),
        "PG_PORT_5432_TCP_PROTO=tcp".to_string(),
        "reached".to_string(),
    ] {
        assert!(
            all.lines().any(|l| l == want),
            "{want:?} missing:\n{all}{}",
            text(&out.stderr)
        );
    }
    // /etc/hosts: ONE line for the link, with all its names (moby's
    // `aliasList`: alias, hostname, then the name as it is not the alias).
    let hostname = all
        .lines()
        .find_map(|l| l.strip_prefix("hostname="))
        .expect("the linked container's hostname");
    let lines: Vec<&str> = all
        .lines()
        .filter(|l| l.starts_with(&format!("hosts: {ip}\t")))
        .collect();
    assert_eq!(lines, [format!("hosts: {ip}\tpg {hostname} db")], "{all}");
    assert!(
        all.contains("--link works on the default bridge network only"),
        "{all}"
    );
    assert!(all.contains("none=125"), "{all}");
    assert!(
        all.contains("Cannot link to a non running container: /db AS /web/db"),
        "{all}"
    );
    assert!(all.contains("stopped=125"), "{all}");
    let e = dy.fails(125, &["create", "--link", "nope", "busybox", "true"]);
    assert!(e.contains("could not get container for nope"), "{e}");
}

#[test]
fn start_port_and_exec_failures_read_as_dockers() {
    let dy = Dy::new();
    dy.ok(&["create", "--name", "made", "busybox", "sleep", "30"]);
    // start: each failure, then docker/cli's summary line; the others start.
    let out = dy.run(&["start", "nope", "made", "gone"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "made\n");
    assert_eq!(
        text(&out.stderr),
        "Error response from daemon: No such container: nope\n\
         Error response from daemon: No such container: gone\n\
         Error: failed to start containers: nope, gone\n"
    );
    // port: the port as it was typed.
    let e = dy.fails(1, &["port", "made", "99"]);
    assert_eq!(e, "Error: No public port '99' published for made\n");
    // exec into a stopped container: dockerd's lower-case text.
    dy.ok(&["create", "--name", "idle", "busybox", "true"]);
    let e = dy.fails(1, &["exec", "idle", "true"]);
    let id = dy.inspect("idle", "{{.Id}}");
    assert_eq!(
        e,
        format!("Error response from daemon: container {id} is not running\n")
    );
}

#[test]
fn a_word_to_a_command_that_takes_none_is_dockers_accepts_no_arguments() {
    let dy = Dy::empty("dockyard-fidelity");
    for cmd in ["events", "ps"] {
        let e = dy.fails(1, &[cmd, "extra"]);
        assert_eq!(
            e,
            format!(
                "dockyard: 'dockyard {cmd}' accepts no arguments\n\nUsage:  dockyard {cmd} [OPTIONS]\n\nRun 'dockyard {cmd} --help' for more information\n"
            )
        );
    }
}

/// The entries of an image's top layer, from `save`'s docker-archive.
fn top_layer_entries(dy: &Dy, image: &str) -> Vec<String> {
    use std::io::Read;
    let out = dy.command(&["save", image]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut manifest = String::new();
    let mut layers: std::collections::HashMap<String, Vec<u8>> = Default::default();
    for e in tar::Archive::new(&out.stdout[..]).entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let mut body = Vec::new();
        e.read_to_end(&mut body).unwrap();
        if name == "manifest.json" {
            manifest = String::from_utf8(body).unwrap();
        } else {
            layers.insert(name, body);
        }
    }
    let m: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    let top = m[0]["Layers"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .as_str()
        .unwrap();
    let mut names: Vec<String> = tar::Archive::new(&layers[top][..])
        .entries()
        .unwrap()
        .map(|e| {
            e.unwrap()
                .path()
                .unwrap()
                .to_string_lossy()
                .trim_end_matches('/')
                .to_string()
        })
        .collect();
    names.sort();
    names
}

#[test]
fn commit_leaves_out_the_etc_mount_points_as_docker_does() {
    let dy = Dy::new();
    dy.ok(&[
        "run",
        "-d",
        "--name",
        "live",
        "busybox",
        "sh",
        "-c",
        "touch /made; sleep 60",
    ]);
    dy.wait_for("live", "{{.State.Status}}", "running");
    dy.wait_for_exec("live", &["test", "-e", "/made"]);
    dy.ok(&["commit", "live", "snap:1"]);
    assert_eq!(top_layer_entries(&dy, "snap:1"), ["made"]);
    // A change of its own under /etc stays, with its directory.
    dy.ok(&["exec", "live", "touch", "/etc/mine"]);
    dy.ok(&["commit", "live", "snap:2"]);
    assert_eq!(
        top_layer_entries(&dy, "snap:2"),
        ["etc", "etc/mine", "made"]
    );
    // The image still runs, with its own files again.
    assert_eq!(
        dy.ok(&["run", "--rm", "snap:2", "ls", "/made", "/etc/mine"]),
        "/etc/mine\n/made\n"
    );
}

#[test]
fn volume_ls_filters_and_formats_as_dockerd_and_the_docker_cli() {
    let dy = Dy::new();
    dy.ok(&["volume", "create", "--label", "tier=db", "data1"]);
    dy.ok(&["volume", "create", "nolabel"]);
    dy.ok(&[
        "create", "--name", "user", "-v", "data1:/d", "busybox", "true",
    ]);
    let ls = |args: &[&str]| {
        let mut a = vec!["volume", "ls", "-q"];
        a.extend_from_slice(args);
        dy.ok(&a)
    };
    assert_eq!(ls(&["-f", "name=^no"]), "nolabel\n");
    assert_eq!(
        ls(&["-f", "name=data", "-f", "name=nolab"]),
        "data1\nnolabel\n"
    );
    assert_eq!(ls(&["-f", "label=tier"]), "data1\n");
    assert_eq!(ls(&["-f", "label=tier=db", "-f", "name=nolabel"]), "");
    assert_eq!(ls(&["-f", "dangling=true"]), "nolabel\n");
    assert_eq!(ls(&["-f", "dangling=false"]), "data1\n");
    assert_eq!(ls(&["-f", "driver=local"]), "data1\nnolabel\n");
    let e = dy.fails(1, &["volume", "ls", "-f", "colour=red"]);
    assert!(e.contains("invalid filter 'colour'"), "{e}");
    assert_eq!(
        dy.ok(&[
            "volume",
            "ls",
            "--format",
            "{{.Name}} {{.Driver}} {{.Labels}}"
        ]),
        "data1 local tier=db\nnolabel local \n"
    );
    assert_eq!(
        dy.ok(&["volume", "ls", "--format", "table {{.Name}}\\t{{.Labels}}"]),
        "VOLUME NAME   LABELS\ndata1         tier=db\nnolabel       \n"
    );
}

#[test]
fn ps_format_fields_are_the_docker_clis() {
    let dy = Dy::new();
    dy.ok(&[
        "create",
        "--name",
        "vols",
        "--network",
        "none",
        "-v",
        "fvol:/d",
        "-v",
        "/tmp:/h",
        "busybox",
        "true",
    ]);
    let got = dy.ok(&[
        "ps",
        "-a",
        "--format",
        "{{.Mounts}}|{{.LocalVolumes}}|{{.Size}}|{{.Networks}}",
    ]);
    // Mounts: each volume's name, a bind's source, as docker/cli lists them;
    // `.Size` makes docker/cli ask for sizes: nothing written, and the
    // image's as the virtual size.
    let image = dy.ok(&["images", "--format", "{{.Size}}", "busybox"]);
    assert_eq!(
        got,
        format!("fvol,/tmp|1|0B (virtual {})|none\n", image.trim())
    );
    let created = dy.ok(&["ps", "-a", "--format", "{{.CreatedAt}}"]);
    // Go's time.Time.String() of the whole second, in the local zone.
    let c = created.trim();
    assert_eq!(
        c.len(),
        "2026-12-07 04:18:38 +0000 ".len() + c.split(' ').nth(3).unwrap().len(),
        "{c}"
    );
    assert_eq!(&c[10..11], " ", "{c}");
    assert!(c.split(' ').nth(2).unwrap().starts_with(['+', '-']), "{c}");
}
