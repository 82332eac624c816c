//! `dockyard events` and `GET /events`: the engine's event journal, read
//! by dockyard's own command and by the real docker CLI through `dockyard
//! system service`, which must print the same lines.
//!
//! Each test works on its own data root; a time window (`--since` taken
//! before its first command, `--until` after its last) makes the reads
//! exact and ends them.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dockyard_e2e::dockyard::{text, Dockyard as Dy};

use super::oracle::Service;

/// Now, as the API's `SECONDS.NANOSECONDS`.
fn now() -> String {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    format!("{}.{:09}", d.as_secs(), d.subsec_nanos())
}

/// "TYPE ACTION" of each line of docker's event format, in order.
fn actions(lines: &str) -> Vec<String> {
    lines
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            format!("{} {}", f[1], f[2])
        })
        .collect()
}

/// docker/cli's line: "2026-12-07T04:01:43.364181757Z TYPE ACTION ID (k=v, ...)".
fn assert_docker_line(line: &str) {
    let time = line.split(' ').next().unwrap();
    assert_eq!(
        time.len(),
        "2026-12-07T04:01:43.364181757".len() + 1,
        "{line}"
    );
    assert_eq!(&time[10..11], "T", "{line}");
    assert!(time[20..29].bytes().all(|b| b.is_ascii_digit()), "{line}");
    assert!(line.ends_with(')'), "{line}");
}

#[test]
fn events_record_a_containers_life_with_dockers_actions_and_attributes() {
    let dy = Dy::new();
    let since = now();
    let out = dy.run(&[
        "run", "--name", "web", "-l", "tier=db", "busybox", "sh", "-c", "exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3));
    dy.ok(&[
        "run",
        "-d",
        "--name",
        "w2",
        "-v",
        "evvol:/data",
        "busybox",
        "sleep",
        "60",
    ]);
    dy.ok(&["exec", "w2", "true"]);
    dy.ok(&["update", "--pids-limit", "100", "w2"]);
    dy.ok(&["top", "w2"]);
    dy.ok(&["pause", "w2"]);
    dy.ok(&["unpause", "w2"]);
    dy.ok(&["rename", "w2", "w3"]);
    dy.ok(&["kill", "-s", "USR1", "w3"]);
    dy.ok(&["stop", "-t", "1", "w3"]);
    dy.ok(&["tag", "busybox", "mine:1"]);
    dy.ok(&["rmi", "mine:1"]);
    dy.ok(&["rm", "web", "w3"]);
    dy.ok(&["volume", "rm", "evvol"]);
    let until = now();
    let all = dy.ok(&["events", "--since", &since, "--until", &until]);
    for l in all.lines() {
        assert_docker_line(l);
    }
    let got = actions(&all);
    let want = [
        "container create",
        "container attach",
        "network connect",
        "container start",
        "container die",
        "network disconnect",
        // dockerd's create makes the named volume, then logs the
        // container's create.
        "volume create",
        "container create",
        "volume mount",
        "network connect",
        "container start",
        "container exec_create:",
        "container exec_start:",
        "container exec_die",
        "container update",
        "container top",
        "container pause",
        "container unpause",
        "container rename",
        "container kill",
        "container kill",
        "container kill",
        "container die",
        "network disconnect",
        "volume unmount",
        "container stop",
        "image tag",
        "image untag",
        "container destroy",
        "container destroy",
        "volume destroy",
    ];
    assert_eq!(got, want, "{all}");
    // The attributes dockerd gives: labels, image, name; exitCode on die;
    // signal on kill; oldName on rename; the command in an exec's action.
    let id = dy.ok(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        "event=create",
        "--format",
        "{{.Actor.ID}}",
    ]);
    let web = id.lines().next().unwrap();
    assert_eq!(web.len(), 64);
    let line = |action: &str| -> String {
        all.lines()
            .find(|l| l.split(' ').nth(2) == Some(action))
            .unwrap_or_else(|| panic!("no {action} in {all}"))
            .to_string()
    };
    assert!(
        line("die").contains(&format!("container die {web} (execDuration="))
            && line("die").ends_with(", exitCode=3, image=busybox, name=web, tier=db)"),
        "{all}"
    );
    assert!(line("rename").contains("name=w3, oldName=/w2)"), "{all}");
    assert!(all.contains("signal=10)"), "kill -s USR1: {all}");
    assert!(
        all.contains("signal=15)") && all.contains("signal=9)"),
        "stop -t 1 of a sleep: {all}"
    );
    assert!(
        line("exec_create:").contains(" exec_create: true  "),
        "{all}"
    );
    assert!(
        line("mount").contains("destination=/data, driver=local, propagation=, read/write=true)")
    );
    assert!(line("tag").contains("(name=mine:1)"), "{all}");

    // Filters: dockerd's keys, AND across keys, OR within one.
    let f = |args: &[&str]| -> Vec<String> {
        let mut a = vec!["events", "--since", &since, "--until", &until];
        a.extend_from_slice(args);
        actions(&dy.ok(&a))
    };
    assert_eq!(
        f(&["-f", "type=container", "-f", "event=die"]),
        ["container die"; 2]
    );
    assert_eq!(
        f(&[
            "-f",
            "container=web",
            "-f",
            "event=start",
            "-f",
            "event=destroy"
        ]),
        ["container start", "container destroy"]
    );
    assert_eq!(
        f(&["-f", "label=tier=db", "-f", "event=die"]),
        ["container die"]
    );
    assert_eq!(f(&["-f", "type=volume"]).len(), 4);
    assert_eq!(
        f(&["-f", "volume=evvol", "-f", "event=mount"]),
        ["volume mount"]
    );
    assert_eq!(f(&["-f", "type=image"]), ["image tag", "image untag"]);
    assert_eq!(f(&["-f", "image=busybox", "-f", "event=create"]).len(), 2);
    assert_eq!(f(&["-f", "event=exec_start"]), ["container exec_start:"]);
    // --format: a template of the Go fields, or the API's JSON.
    let json = dy.ok(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "-f",
        "event=die",
        "--format",
        "{{json .}}",
    ]);
    let first: serde_json::Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
    assert_eq!(first["Type"], "container");
    assert_eq!(first["status"], "die");
    assert_eq!(first["from"], "busybox");
    assert_eq!(first["scope"], "local");
    assert_eq!(first["Actor"]["Attributes"]["exitCode"], "3");
    assert!(first["timeNano"].as_i64().unwrap() / 1_000_000_000 == first["time"].as_i64().unwrap());
    assert!(
        json.starts_with("{\"status\":\"die\",\"id\":"),
        "docker's field order: {json}"
    );
}

#[test]
fn events_refuse_bad_filters_and_times_as_docker_does() {
    let dy = Dy::empty("dockyard-events");
    let e = dy.fails(1, &["events", "--until", "0s", "--filter", "colour=red"]);
    assert_eq!(
        e.trim(),
        "Error response from daemon: invalid filter 'colour'"
    );
    let e = dy.fails(1, &["events", "--until", "0s", "--filter", "nokey"]);
    assert!(
        e.contains("bad format of filter (expected name=value)"),
        "{e}"
    );
    let e = dy.fails(1, &["events", "--since", "yesterday"]);
    assert!(
        e.contains("failed to parse value as time or duration: \"yesterday\""),
        "{e}"
    );
    let e = dy.fails(1, &["events", "--since", "100", "--until", "50"]);
    assert!(e.contains("cannot be after `until` time"), "{e}");
    // An --until in the past returns at once, with no history: nothing happened.
    let t = Instant::now();
    assert_eq!(dy.ok(&["events", "--since", "1", "--until", "2"]), "");
    assert!(t.elapsed() < Duration::from_secs(5));
}

#[test]
fn events_follow_new_events_live_until_the_until_time() {
    let dy = Dy::empty("dockyard-events");
    // --until alone: the history up to it (as dockerd's buffer), then what
    // comes next, until --until (4 s from now).
    let until = (SystemTime::now() + Duration::from_secs(4))
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    dy.ok(&["volume", "create", "before"]);
    let mut child = dy
        .command(&["events", "--until", &until, "--filter", "type=volume"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let history = lines.next().unwrap().unwrap();
    assert!(
        history.ends_with(" volume create before (driver=local)"),
        "{history}"
    );
    dy.ok(&["volume", "create", "live"]);
    let first = lines.next().unwrap().unwrap();
    assert!(
        first.ends_with(" volume create live (driver=local)"),
        "{first}"
    );
    dy.ok(&["volume", "rm", "live"]);
    let second = lines.next().unwrap().unwrap();
    assert!(
        second.ends_with(" volume destroy live (driver=local)"),
        "{second}"
    );
    // And it ends by itself once --until has passed.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success());
            break;
        }
        assert!(Instant::now() < deadline, "events did not stop at --until");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(lines.next().is_none());
}

#[test]
fn events_through_the_service_are_what_the_docker_cli_prints() {
    let dy = Dy::new();
    let svc = Service::start(&dy);
    let since = now();
    dy.ok(&[
        "run", "--rm", "--name", "r1", "-l", "a=b", "busybox", "true",
    ]);
    dy.ok(&["volume", "create", "v1"]);
    dy.ok(&["volume", "rm", "v1"]);
    let until = now();
    let window = [
        "events",
        "--since",
        since.as_str(),
        "--until",
        until.as_str(),
    ];
    let ours = dy.ok(&window);
    let theirs = svc.docker_ok(&window);
    assert_eq!(actions(&ours).len(), 9, "{ours}");
    assert_eq!(theirs, ours, "docker events and dockyard events differ");
    // Filters and --format travel through the API too.
    let mut filtered = window.to_vec();
    filtered.extend([
        "--filter",
        "container=r1",
        "--filter",
        "event=die",
        "--format",
        "{{json .}}",
    ]);
    let theirs = svc.docker_ok(&filtered);
    assert_eq!(theirs, dy.ok(&filtered));
    assert_eq!(theirs.lines().count(), 1, "{theirs}");
    let out = svc.docker(&["events", "--until", "0s", "--filter", "colour=red"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr).trim(),
        "Error response from daemon: invalid filter 'colour'"
    );
    // Live: docker events follows what dockyard does next. From a moment
    // ago (`--since`): a volume made before the CLI has subscribed (a slow
    // start under load) still comes, from the journal.
    let since = now();
    let mut child = svc
        .docker_cmd(&[
            "events",
            "--since",
            &since,
            "--filter",
            "type=volume",
            "--format",
            "{{.Action}} {{.Actor.ID}}",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    dy.ok(&["volume", "create", "followed"]);
    let first = lines.next().unwrap().unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(first, "create followed");
}

#[test]
fn events_of_networks_in_a_throwaway_host() {
    let dy = Dy::new();
    let parent = format!("--cgroup-parent={}", dy.parent);
    let since = now();
    let script = format!(
        r#"
        $D network create evnet >/dev/null
        $D run --rm {parent} --network evnet busybox true
        $D network rm evnet >/dev/null
        $D network create gone >/dev/null
        $D network prune -f >/dev/null
        "#
    );
    let out = super::networking::in_throwaway_netns(&dy, &script);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let until = now();
    let got = dy.ok(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        "type=network",
        "--format",
        "{{.Action}} {{.Actor.Attributes.name}} {{.Actor.Attributes.type}}",
    ]);
    assert_eq!(
        got,
        "create evnet bridge\nconnect evnet bridge\ndisconnect evnet bridge\n\
         destroy evnet bridge\ncreate gone bridge\ndestroy gone bridge\n"
    );
    // connect names the container by its full ID; the actor is the network.
    let ids = dy.ok(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        "network=evnet",
        "--filter",
        "event=connect",
        "--format",
        "{{.Actor.ID}} {{.Actor.Attributes.container}}",
    ]);
    let (net, ctr) = ids.trim().split_once(' ').unwrap();
    assert_eq!((net.len(), ctr.len()), (64, 64), "{ids}");
}

#[test]
fn events_of_images_name_them_as_dockerd_does() {
    let dy = Dy::new();
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("bb.tar");
    let since = now();
    dy.ok(&["save", "-o", archive.to_str().unwrap(), "busybox"]);
    dy.ok(&["load", "-i", archive.to_str().unwrap()]);
    dy.ok(&["run", "--name", "src", "busybox", "touch", "/made"]);
    dy.ok(&["commit", "-m", "note", "src", "snap:1"]);
    dy.ok(&["rmi", "snap:1"]);
    let until = now();
    let got = dy.ok(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        "event=save",
        "--filter",
        "event=load",
        "--filter",
        "event=commit",
        "--filter",
        "event=tag",
        "--filter",
        "event=untag",
        "--filter",
        "event=delete",
        "--format",
        "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}",
    ]);
    let id = dy.inspect("busybox", "{{.Id}}");
    let lines: Vec<&str> = got.lines().collect();
    assert_eq!(lines[0], format!("image save {id}"), "{got}");
    assert_eq!(lines[1], format!("image load {id}"), "{got}");
    assert_eq!(lines[2], "container commit src", "{got}");
    assert_eq!(lines[3], "image tag snap:1", "{got}");
    assert!(lines[4].starts_with("image untag sha256:"), "{got}");
    assert!(lines[5].starts_with("image delete sha256:"), "{got}");
    assert_eq!(lines.len(), 6, "{got}");
    let commit = dy.ok(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        "event=commit",
        "--format",
        "{{json .Actor.Attributes}}",
    ]);
    let attrs: serde_json::Value = serde_json::from_str(commit.trim()).unwrap();
    assert_eq!(attrs["comment"], "note");
    assert_eq!(attrs["imageRef"], "snap:1");
    assert!(attrs["imageID"].as_str().unwrap().starts_with("sha256:"));
}
