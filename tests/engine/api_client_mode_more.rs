//! `dockyard -H` for what the service says of layers and archives:
//! `history`, `diff`, `export`, `commit`, `save` and `load`. Each is
//! compared with the in-process CLI on the same data root, and its effect
//! observed from the other front: the exported tar holds the file the
//! container wrote, the committed image exists with its change and runs,
//! the saved tar loads back.

use std::io::Write;
use std::process::{Command, Stdio};

use dockyard_e2e::dockyard::{text, Dockyard as Dy};
use dockyard_e2e::fixtures::bin;

use super::super::api::Service;
use super::{client, client_ok, same_output, url};

/// `dockyard -H URL ARGS` with `input` (bytes) on its stdin.
fn client_with_bytes(svc: &Service, args: &[&str], input: &[u8]) -> std::process::Output {
    let mut child = Command::new(bin("dockyard"))
        .arg("-H")
        .arg(url(svc))
        .args(args)
        .env_remove("DOCKYARD_HOST")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input).unwrap();
    drop(stdin);
    child.wait_with_output().unwrap()
}

/// The sorted member names of a tar file.
fn members(tar: &std::path::Path) -> Vec<String> {
    let out = Command::new("tar").arg("-tf").arg(tar).output().unwrap();
    assert!(out.status.success(), "tar -tf {}", tar.display());
    let mut names: Vec<String> = text(&out.stdout).lines().map(str::to_string).collect();
    names.sort();
    names
}

#[test]
fn api_client_mode_diffs_exports_and_shows_history_as_in_process() {
    let dy = Dy::new();
    let svc = Service::start(&dy);
    let script = "echo hi > /made && mkdir /tmp/dir && rm /bin/yes";
    dy.ok(&["run", "--name", "box", "busybox", "sh", "-c", script]);
    let diff = same_output(&svc, &dy, &["diff", "box"]);
    for line in ["A /made", "A /tmp/dir", "D /bin/yes", "C /bin"] {
        assert!(diff.lines().any(|l| l == line), "{line}: {diff}");
    }
    for args in [
        &["history", "busybox"][..],
        &["history", "--no-trunc", "busybox"],
        &["history", "-q", "busybox"],
    ] {
        let out = same_output(&svc, &dy, args);
        assert!(!out.is_empty(), "{args:?}");
    }
    // Not there: the service's refusal, as in-process, exit 1.
    let out = client(&url(&svc), &dy.parent, &["diff", "nobox"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("No such container: nobox"));
    // export: the same members as in-process, the container's file in it.
    let dir = tempfile::tempdir().unwrap();
    let (remote, local) = (dir.path().join("r.tar"), dir.path().join("l.tar"));
    client_ok(
        &svc,
        &dy,
        &["export", "-o", remote.to_str().unwrap(), "box"],
    );
    dy.ok(&["export", "-o", local.to_str().unwrap(), "box"]);
    let names = members(&remote);
    assert_eq!(names, members(&local));
    assert!(names.iter().any(|n| n.trim_start_matches("./") == "made"));
    assert!(!names
        .iter()
        .any(|n| n.trim_start_matches("./") == "bin/yes"));
    // To stdout (not a terminal here): the same archive.
    let out = client(&url(&svc), &dy.parent, &["export", "box"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let piped = dir.path().join("p.tar");
    std::fs::write(&piped, &out.stdout).unwrap();
    assert_eq!(members(&piped), names);
    dy.ok(&["rm", "box"]);
}

#[test]
fn api_client_mode_commits_saves_and_loads_through_the_service() {
    let dy = Dy::new();
    let svc = Service::start(&dy);
    dy.ok(&[
        "run",
        "--name",
        "box",
        "busybox",
        "sh",
        "-c",
        "echo hi > /made",
    ]);
    let id = client_ok(
        &svc,
        &dy,
        &[
            "commit",
            "-c",
            "ENV WHO=far",
            "-m",
            "through the service",
            "box",
            "committed:v1",
        ],
    );
    assert!(id.starts_with("sha256:") && id.trim().len() == 71, "{id}");
    // The image exists, with its change, its message, and the file.
    assert_eq!(
        dy.inspect("committed:v1", "{{.Id}}").trim(),
        id.trim(),
        "the printed ID is the image's"
    );
    assert!(dy
        .inspect("committed:v1", "{{.Config.Env}}")
        .contains("WHO=far"));
    assert_eq!(
        dy.ok(&[
            "run",
            "--rm",
            "committed:v1",
            "sh",
            "-c",
            "cat /made; echo $WHO"
        ]),
        "hi\nfar\n"
    );
    let history = same_output(&svc, &dy, &["history", "committed:v1"]);
    assert!(history.contains("through the service"), "{history}");
    // The client checks the name before it asks, as in-process.
    let bad = client(&url(&svc), &dy.parent, &["commit", "box", "Bad:Name"]);
    let local = dy.run(&["commit", "box", "Bad:Name"]);
    assert_eq!(bad.status.code(), local.status.code());
    assert_eq!(text(&bad.stderr), text(&local.stderr));
    // save -o, then rmi, then load -i: the image is back, same ID.
    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("c.tar");
    client_ok(
        &svc,
        &dy,
        &["save", "-o", tar.to_str().unwrap(), "committed:v1"],
    );
    assert!(members(&tar).iter().any(|n| n == "manifest.json"));
    dy.ok(&["rmi", "committed:v1"]);
    assert_eq!(dy.ok(&["images", "-q", "committed"]), "");
    let loaded = client_ok(&svc, &dy, &["load", "-i", tar.to_str().unwrap()]);
    assert_eq!(loaded, "Loaded image: committed:v1\n");
    assert_eq!(dy.inspect("committed:v1", "{{.Id}}").trim(), id.trim());
    dy.ok(&["rmi", "committed:v1"]);
    assert_eq!(dy.ok(&["load", "-i", tar.to_str().unwrap()]), loaded);
    // save to stdout, load from stdin (-q: nothing printed).
    let out = client(&url(&svc), &dy.parent, &["save", "committed:v1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(out.stdout, std::fs::read(&tar).unwrap(), "the same archive");
    dy.ok(&["rmi", "committed:v1"]);
    let back = client_with_bytes(&svc, &["load", "-q"], &out.stdout);
    assert!(back.status.success(), "{}", text(&back.stderr));
    assert_eq!(text(&back.stdout), "");
    assert_eq!(dy.inspect("committed:v1", "{{.Id}}").trim(), id.trim());
    // A missing image: the service's refusal.
    let out = client(
        &url(&svc),
        &dy.parent,
        &["save", "-o", "/dev/null", "nothere"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("No such image"),
        "{}",
        text(&out.stderr)
    );
    dy.ok(&["rm", "box"]);
}

#[test]
fn api_client_mode_filters_logs_by_time_and_adds_details_as_in_process() {
    let dy = Dy::new();
    let svc = Service::start(&dy);
    dy.ok(&[
        "run",
        "--name",
        "talk",
        "--label",
        "team=blue",
        "--log-opt",
        "labels=team",
        "busybox",
        "sh",
        "-c",
        "echo one; sleep 2; echo two",
    ]);
    let stamped = dy.ok(&["logs", "-t", "talk"]);
    let two = stamped
        .lines()
        .find(|l| l.ends_with(" two"))
        .and_then(|l| l.split(' ').next())
        .unwrap_or_else(|| panic!("{stamped}"))
        .to_string();
    assert_eq!(
        same_output(&svc, &dy, &["logs", "--since", &two, "talk"]),
        "two\n"
    );
    assert_eq!(
        same_output(&svc, &dy, &["logs", "--until", &two, "talk"]),
        "one\ntwo\n"
    );
    assert_eq!(
        same_output(&svc, &dy, &["logs", "--since", "1h", "talk"]),
        "one\ntwo\n"
    );
    assert_eq!(
        same_output(&svc, &dy, &["logs", "--until", "1h", "talk"]),
        ""
    );
    let details = same_output(&svc, &dy, &["logs", "--details", "talk"]);
    assert_eq!(details, "team=blue one\nteam=blue two\n");
    same_output(
        &svc,
        &dy,
        &["logs", "-t", "--details", "--since", &two, "talk"],
    );
    dy.ok(&["rm", "talk"]);
}

#[test]
fn api_client_mode_inspects_and_prunes_networks_and_volumes_as_in_process() {
    let dy = Dy::new();
    let svc = Service::start(&dy);
    dy.ok(&["volume", "create", "--label", "team=blue", "v1"]);
    let doc = same_output(&svc, &dy, &["volume", "inspect", "v1"]);
    assert!(doc.contains("\"team\": \"blue\""), "{doc}");
    let f = [
        "volume",
        "inspect",
        "-f",
        "{{.Name}} {{.Labels.team}}",
        "v1",
    ];
    assert_eq!(same_output(&svc, &dy, &f), "v1 blue\n");
    for args in [
        &["network", "inspect", "none"][..],
        &[
            "network",
            "inspect",
            "-f",
            "{{.Name}} {{.Driver}}",
            "none",
            "host",
        ],
        &["network", "prune", "-f"],
    ] {
        same_output(&svc, &dy, args);
    }
    // One missing among several: the rest printed, the refusal, exit 1.
    for args in [
        &["volume", "inspect", "v1", "nov"][..],
        &["network", "inspect", "none", "nonet"],
    ] {
        let remote = client(&url(&svc), &dy.parent, args);
        let local = dy.run(args);
        assert_eq!(remote.status.code(), Some(1), "{args:?}");
        assert_eq!(text(&remote.stdout), text(&local.stdout), "{args:?}");
        assert_eq!(text(&remote.stderr), text(&local.stderr), "{args:?}");
    }
    // connect to a network that is not there: the same refusal.
    dy.ok(&["create", "--name", "box", "busybox", "true"]);
    let args = ["network", "connect", "nonet", "box"];
    let remote = client(&url(&svc), &dy.parent, &args);
    let local = dy.run(&args);
    assert_eq!(remote.status.code(), local.status.code());
    assert_eq!(text(&remote.stderr), text(&local.stderr));
    dy.ok(&["rm", "box"]);
    // volume prune: an anonymous volume no container uses goes, a named
    // one stays (and goes with -a); both fronts print the same shape.
    let anon = |dy: &Dy| -> String {
        // (Made when the container starts.)
        let id = dy.ok(&["run", "-d", "-v", "/data", "busybox", "true"]);
        dy.ok(&["wait", id.trim()]);
        let vol = dy.inspect(id.trim(), "{{range .Mounts}}{{.Name}}{{end}}");
        dy.ok(&["rm", id.trim()]);
        vol
    };
    let a1 = anon(&dy);
    let pruned = client_ok(&svc, &dy, &["volume", "prune", "-f"]);
    assert_eq!(
        pruned,
        format!("Deleted Volumes:\n{a1}\n\nTotal reclaimed space: 0B\n")
    );
    let a2 = anon(&dy);
    assert_eq!(
        dy.ok(&["volume", "prune", "-f"]),
        format!("Deleted Volumes:\n{a2}\n\nTotal reclaimed space: 0B\n")
    );
    assert_eq!(dy.ok(&["volume", "ls", "-q"]), "v1\n");
    assert_eq!(
        client_ok(&svc, &dy, &["volume", "prune", "-f", "-a"]),
        "Deleted Volumes:\nv1\n\nTotal reclaimed space: 0B\n"
    );
    assert_eq!(dy.ok(&["volume", "ls", "-q"]), "");
}

/// Unix seconds now, as `--since`/`--until` take them.
fn unix_now() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    format!("{}.{:09}", d.as_secs(), d.subsec_nanos())
}

#[test]
fn api_client_mode_streams_events_as_in_process() {
    let dy = Dy::new();
    let svc = Service::start(&dy);
    let t0 = unix_now();
    std::thread::sleep(std::time::Duration::from_millis(20));
    dy.ok(&["run", "--name", "ev", "busybox", "true"]);
    dy.ok(&["rm", "ev"]);
    std::thread::sleep(std::time::Duration::from_millis(20));
    let t1 = unix_now();
    // A window in the past: the history, then the end, on both fronts.
    let window = ["--since", t0.as_str(), "--until", t1.as_str()];
    let line = "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}";
    let ours = [
        &["events"][..],
        &["events", "--format", line],
        &["events", "--format", "json"],
    ];
    for head in ours {
        let mut args = head.to_vec();
        args.extend(window);
        let out = same_output(&svc, &dy, &args);
        assert!(!out.is_empty(), "{args:?}");
    }
    let mut args = vec!["events", "--format", line, "-f", "type=container"];
    args.extend(window);
    let out = same_output(&svc, &dy, &args);
    for want in [
        "container create ev",
        "container start ev",
        "container die ev",
        "container destroy ev",
    ] {
        assert!(out.lines().any(|l| l == want), "{want}: {out}");
    }
    assert!(out.lines().all(|l| l.starts_with("container ")), "{out}");
    // Refused alike: a bad template (exit 64), a bad filter, a bad window.
    for args in [
        &["events", "--format", "{{.Nope"][..],
        &["events", "-f", "nope=1", "--until", "1"],
        &["events", "--since", t1.as_str(), "--until", t0.as_str()],
    ] {
        let remote = client(&url(&svc), &dy.parent, args);
        let local = dy.run(args);
        assert_eq!(remote.status.code(), local.status.code(), "{args:?}");
        assert_eq!(text(&remote.stderr), text(&local.stderr), "{args:?}");
    }
    // Following: what happens next comes through while the client waits.
    // From a moment ago (`--since`): a create made before the client has
    // subscribed (a slow start under load) still comes, from the journal.
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| format!("{}.{:09}", d.as_secs(), d.subsec_nanos()))
        .unwrap();
    let mut child = Command::new(bin("dockyard"))
        .args([
            "-H",
            &url(&svc),
            "events",
            "--since",
            &since,
            "-f",
            "event=create",
            "--format",
            line,
        ])
        .env_remove("DOCKYARD_HOST")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stdout = child.stdout.take().unwrap();
    let _guard = Kill(child);
    dy.ok(&["create", "--name", "later", "busybox", "true"]);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for l in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(l);
        }
    });
    let got = rx.recv_timeout(std::time::Duration::from_secs(10));
    assert_eq!(got.as_deref(), Ok("container create later"));
    dy.ok(&["rm", "later"]);
}

/// `network connect`/`disconnect` through the service, in a throwaway
/// network namespace (they make bridges and veths): the container's own
/// namespace gains, then loses, the second network's address, and
/// `network inspect` through the service says what in-process says.
#[test]
fn api_client_mode_connects_and_disconnects_networks() {
    let dy = Dy::new();
    let script = format!(
        r#"
        ip link set lo up
        D="{bin} --root {root}"
        C="{bin} -H unix://{root}/cm.sock"
        $D system service -H unix://{root}/cm.sock --time 0 2>/dev/null & S=$!
        n=0; until $C version >/dev/null 2>&1 || [ $n -gt 200 ]; do sleep 0.05; n=$((n+1)); done
        $D network create --subnet 10.198.8.0/24 first >/dev/null
        $D network create --subnet 10.198.9.0/24 second >/dev/null
        $D run -d --cgroup-parent={parent} --network first --name t1 busybox sleep 30 >/dev/null
        P=$($D inspect -f '{{{{.State.Pid}}}}' t1)
        $C network connect --alias web --ip 10.198.9.7 second t1
        echo "in ns: $(nsenter -t $P -n ip -o -4 addr | grep -o '10\.198\.9\.[0-9]*/24')"
        F='{{{{range .Containers}}}}{{{{.Name}}}} {{{{.IPv4Address}}}}{{{{end}}}}'
        echo "remote: $($C network inspect -f "$F" second)"
        echo "local: $($D network inspect -f "$F" second)"
        echo "aliases: $($D inspect -f '{{{{.NetworkSettings.Networks.second.Aliases}}}}' t1)"
        $C network disconnect second t1
        echo "after: $(nsenter -t $P -n ip -o -4 addr | grep -c '10\.198\.9\.')"
        echo "remote after: $($C network inspect -f "$F" second)"
        $D rm -f t1 >/dev/null
        $C network prune -f
        kill $S; wait $S
        "#,
        bin = bin("dockyard").display(),
        root = dy.root.path().display(),
        parent = dy.parent,
    );
    let out = Command::new("unshare")
        .args(["--net", "sh", "-c", &script])
        .env_remove("DOCKYARD_HOST")
        .stdin(Stdio::null())
        .output()
        .expect("unshare");
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert!(
        stdout.contains("in ns: 10.198.9.7/24\n"),
        "{stdout}{stderr}"
    );
    assert!(
        stdout.contains("remote: t1 10.198.9.7/24\nlocal: t1 10.198.9.7/24\n"),
        "{stdout}{stderr}"
    );
    assert!(
        stdout.contains("aliases: [") && stdout.contains("web"),
        "{stdout}{stderr}"
    );
    assert!(
        stdout.contains("after: 0\nremote after: \n"),
        "{stdout}{stderr}"
    );
    assert!(
        stdout.ends_with("Deleted Networks:\nfirst\nsecond\n")
            || stdout.ends_with("Deleted Networks:\nsecond\nfirst\n"),
        "{stdout}{stderr}"
    );
}
