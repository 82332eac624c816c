//! `dockyard system service` driven by the Python clients nobody here
//! wrote: docker-py 7.1.0 (the scenarios in tests/api_py/scenarios.py) and
//! Debian's docker-compose 1.29.2 (which is itself docker-py underneath,
//! with compose's own sequence of requests: labels, project networks and
//! volumes, `containers/json` filtered by label).
//!
//! Both create bridge networks, so each test runs its service, and the
//! client, inside a throwaway network namespace (`unshare --net`) with only
//! its loopback up: the bridges, veths and the published port on 127.0.0.1
//! exist there and vanish with it. Every container goes under the test's
//! cgroup parent, and the test checks from the other front (`dockyard ps`)
//! that nothing is left behind.

use std::path::Path;
use std::process::{Command, Stdio};

use dockyard_e2e::dockyard::{text, Dockyard as Dy};

/// Run `script` under `sh` in a new network namespace, with a service of
/// `dy`'s data root listening on `$SOCK` (and `DOCKER_HOST` set to it),
/// stopped when the script ends. Returns (exit status, stdout, stderr).
fn with_service_in_netns(dy: &Dy, dir: &Path, script: &str) -> (Option<i32>, String, String) {
    let sock = dir.join("api.sock");
    let wrapper = format!(
        r#"
        ip link set lo up
        {bin} --root {root} system service --host unix://{sock} --time 0 2>{dir}/service.log & S=$!
        trap 'kill $S 2>/dev/null' EXIT
        n=0; while [ ! -S {sock} ] && [ $n -lt 200 ]; do sleep 0.05; n=$((n+1)); done
        export DOCKER_HOST=unix://{sock} SOCK={sock}
        set +e
        ( set -e; {script} )
        rc=$?
        kill $S; wait $S
        exit $rc
        "#,
        bin = dockyard_e2e::fixtures::bin("dockyard").display(),
        root = dy.root.path().display(),
        sock = sock.display(),
        dir = dir.display(),
    );
    let out = Command::new("unshare")
        .args(["--net", "sh", "-c", &wrapper])
        .current_dir(dir)
        .env("CGROUP_PARENT", &dy.parent)
        .env("DOCKER_CONFIG", dir)
        .stdin(Stdio::null())
        .output()
        .expect("unshare");
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("dockyard-api-clients-")
        .tempdir()
        .unwrap()
}

/// Every docker-py scenario passes: system calls, run attached and
/// detached, logs, wait, stop and kill codes, exec_run (codes, env,
/// workdir, user, demux, a detached exec's code), a raw attach socket,
/// networks and volumes with their filters and prunes, the container list's
/// filters, put_archive/get_archive, stats, and docker's errors. An attach
/// with `logs=1` gets every line once, in order, wherever it falls while
/// the container prints (the seam between the log and the stream).
#[test]
fn api_clients_docker_py_scenarios_pass() {
    let dy = Dy::new();
    let dir = tempdir();
    let scenarios = dockyard_e2e::fixtures::workspace_root().join("tests/api_py/scenarios.py");
    let (code, stdout, stderr) =
        with_service_in_netns(&dy, dir.path(), &format!("python3 {}", scenarios.display()));
    let log = std::fs::read_to_string(dir.path().join("service.log")).unwrap_or_default();
    assert_eq!(code, Some(0), "{stdout}\n{stderr}\nservice:\n{log}");
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
    // Seen from the CLI's front: nothing left behind, no volume, no network.
    assert_eq!(dy.ok(&["ps", "-aq"]), "");
    assert_eq!(dy.ok(&["volume", "ls", "-q"]), "");
}

/// docker-compose 1.29.2 brings up a two-service project (a network, a
/// volume, a port published on 127.0.0.1), lists it, reads its logs, execs
/// in it, reaches one service from the host through the published port and
/// from the other by its service name (the alias compose sets by
/// disconnecting and reconnecting each created container), and takes it
/// all down again with its volume.
#[test]
fn api_clients_docker_compose_up_ps_logs_exec_down() {
    if Command::new("docker-compose")
        .arg("version")
        .output()
        .is_err()
    {
        panic!("docker-compose is missing: run scripts/setup (Debian's docker-compose)");
    }
    let dy = Dy::new();
    let dir = tempdir();
    let project = dockyard_e2e::fixtures::workspace_root().join("tests/api_py/compose");
    let script = format!(
        r#"
        cd {project}
        C="docker-compose -p dyproj"
        $C up -d 2>&1 | tr '\r' '\n' | grep -c 'Creating dyproj_.*done' | sed 's/^/created: /'
        $C ps --services --filter status=running | sort
        echo "port: $($C port web 8080)"
        n=0; until [ "$($C logs --no-color 2>/dev/null | grep -c ' up')" -ge 2 ] && $C exec -T worker test -e /data/note \
            && wget -qO- http://127.0.0.1:18080/ >/dev/null 2>&1 || [ $n -ge 100 ]; do sleep 0.1; n=$((n+1)); done
        $C logs --no-color | grep -E 'up$' | sed 's/ *|//' | sort
        $C exec -T worker cat /data/note
        echo "host: $(wget -qO- http://127.0.0.1:18080/)"
        echo "by name: $($C exec -T worker wget -qO- http://web:8080/)"
        pid=$(docker inspect -f '{{{{.State.Pid}}}}' dyproj_web_1)
        grep -q "/$CGROUP_PARENT/" /proc/$pid/cgroup && echo "cgroup: under the test's parent"
        $C down -v 2>&1 | tr '\r' '\n' | grep -c 'Removing dyproj_.*done' | sed 's/^/removed: /'
        echo "left: $(docker ps -aq | wc -l) $(docker volume ls -q | wc -l) $(docker network ls -q --filter name=dyproj | wc -l)"
        echo "links: $(ip -o link | grep -vc ': lo:')"
        "#,
        project = project.display(),
    );
    let (code, stdout, stderr) = with_service_in_netns(&dy, dir.path(), &script);
    let log = std::fs::read_to_string(dir.path().join("service.log")).unwrap_or_default();
    assert_eq!(
        stdout,
        "created: 2\n\
         web\n\
         worker\n\
         port: 127.0.0.1:18080\n\
         web_1 web up\n\
         worker_1 worker up\n\
         written by worker\n\
         host: hello from web\n\
         by name: hello from web\n\
         cgroup: under the test's parent\n\
         removed: 2\n\
         left: 0 0 0\n\
         links: 0\n",
        "{stderr}\nservice:\n{log}"
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(dy.ok(&["ps", "-aq"]), "");
}

/// `GET /containers/json` fills `Mounts` and `NetworkSettings.Networks` as
/// dockerd does: the docker CLI's `ps --format '{{.Mounts}} {{.Networks}}'`
/// agrees with the in-process `dockyard ps`, and each endpoint's address,
/// MAC and gateway are those the kernel shows in the container's network
/// namespace and on the network's bridge.
#[test]
fn api_clients_ps_lists_mounts_and_network_endpoints() {
    let dy = Dy::new();
    let dir = tempdir();
    let script = format!(
        r#"
        export DOCKER_HOST
        docker network create psnet >/dev/null
        docker volume create psvol >/dev/null
        docker run -d --cgroup-parent $CGROUP_PARENT --name pa --network psnet -v psvol:/data \
            busybox sh -c 'echo hi > /data/f; sleep 60' >/dev/null
        docker run -d --cgroup-parent $CGROUP_PARENT --name pb --network none -v {dir}:/host \
            busybox sleep 60 >/dev/null
        docker run --cgroup-parent $CGROUP_PARENT --name pc busybox true
        F='{{{{.Names}}}} [{{{{.Mounts}}}}] [{{{{.Networks}}}}]'
        echo "docker: $(docker ps -a --format "$F" | sort | tr '\n' ';')"
        echo "dockyard: $({bin} --root {root} ps -a --format "$F" | sort | tr '\n' ';')"
        pid=$(docker inspect -f '{{{{.State.Pid}}}}' pa)
        bridge_ip=$(ip -4 -o addr show dev $(ip -o link | awk -F': ' '/br-|dy/ {{print $2; exit}}' | cut -d@ -f1) | awk '{{print $4}}' | cut -d/ -f1)
        curl -s --unix-socket $SOCK 'http://d/containers/json?all=1' | python3 -c '
import json, sys
for c in sorted(json.load(sys.stdin), key=lambda c: c["Names"][0]):
    for name, ep in sorted(c["NetworkSettings"]["Networks"].items()):
        print(c["Names"][0], name, ep["IPAddress"], ep["IPPrefixLen"], ep["MacAddress"], ep["Gateway"],
              ep["NetworkID"][:12], len(ep["EndpointID"]))
    for m in c["Mounts"]:
        print(c["Names"][0], m["Type"], m.get("Name", "-"), m["Source"], m["Destination"], m["RW"])
' > $SOCK.json
        echo "kernel a: $(nsenter -t $pid -n ip -4 -o addr show dev eth0 | awk '{{print $4}}' | tr / ' ') $(nsenter -t $pid -n ip -o link show dev eth0 | sed 's|.*link/ether \([^ ]*\).*|\1|') $bridge_ip $(docker network inspect -f '{{{{.Id}}}}' psnet | cut -c1-12) 64"
        grep '^/pa psnet' $SOCK.json | cut -d' ' -f3-
        grep '^/pb none' $SOCK.json | cut -d' ' -f2,3,8
        echo "volume file: $(cat $(grep '^/pa volume' $SOCK.json | cut -d' ' -f4)/f)"
        grep '^/pb bind' $SOCK.json | cut -d' ' -f2-
        docker rm -f pa pb pc >/dev/null
        docker network rm psnet >/dev/null; docker volume rm psvol >/dev/null
        "#,
        bin = dockyard_e2e::fixtures::bin("dockyard").display(),
        root = dy.root.path().display(),
        dir = dir.path().display(),
    );
    let (code, stdout, stderr) = with_service_in_netns(&dy, dir.path(), &script);
    let log = std::fs::read_to_string(dir.path().join("service.log")).unwrap_or_default();
    assert_eq!(code, Some(0), "{stdout}\n{stderr}\nservice:\n{log}");
    let lines: Vec<&str> = stdout.lines().collect();
    let want_ps = format!(
        "pa [psvol] [psnet];pb [{}] [none];pc [] [none];",
        if dir.path().display().to_string().chars().count() <= 15 {
            dir.path().display().to_string()
        } else {
            dir.path()
                .display()
                .to_string()
                .chars()
                .take(14)
                .collect::<String>()
                + "…"
        }
    );
    assert_eq!(lines[0], format!("docker: {want_ps}"), "{stdout}");
    assert_eq!(lines[1], format!("dockyard: {want_ps}"), "{stdout}");
    // The endpoint as the kernel has it: address and prefix on eth0, the
    // bridge's address as gateway; the network's ID, an endpoint ID of 64
    // hex digits, and eth0's MAC as `ip link` shows it in the container's
    // namespace: docker's 02:42 and the four bytes of the address. (Not
    // /sys/class/net through nsenter -n: sysfs shows the network namespace
    // of whoever mounted it, here the host's.)
    assert_eq!(
        lines[3],
        lines[2].trim_start_matches("kernel a: "),
        "{stdout}"
    );
    // `none` is a network to docker too: listed, with no address (the
    // empty field) and no endpoint.
    assert_eq!(lines[4], "none  0", "{stdout}");
    assert_eq!(lines[5], "volume file: hi", "{stdout}");
    assert_eq!(
        lines[6],
        format!("bind - {} /host True", dir.path().display())
    );
    assert_eq!(dy.ok(&["ps", "-aq"]), "");
}

/// docker compose v2 (Go; Debian trixie's docker-compose 2.26, a docker CLI
/// plugin that scripts/setup unpacks) runs the same two-service project
/// as compose 1.29.2: up, ps, port, logs, exec, reach web from the host
/// and by its service name, down with the volume; nothing left behind.
#[test]
fn api_clients_docker_compose_v2_up_ps_logs_exec_down() {
    let plugin = Command::new("/usr/local/bin/docker")
        .args(["compose", "version"])
        .env("DOCKER_CONFIG", std::env::temp_dir())
        .output()
        .expect("the docker CLI");
    assert!(
        plugin.status.success(),
        "docker compose (v2) is missing: run scripts/setup (Debian trixie's docker-compose \
         as a docker CLI plugin)"
    );
    let dy = Dy::new();
    let dir = tempdir();
    let project = dockyard_e2e::fixtures::workspace_root().join("tests/api_py/compose");
    let script = format!(
        r#"
        cd {project}
        C="docker compose -p dyv2"
        $C up -d 2>&1 | grep -c 'Container dyv2-.* Started' | sed 's/^/started: /'
        $C ps --services --filter status=running | sort
        echo "port: $($C port web 8080)"
        n=0; until [ "$($C logs --no-color 2>/dev/null | grep -c ' up')" -ge 2 ] && $C exec -T worker test -e /data/note \
            && wget -qO- http://127.0.0.1:18080/ >/dev/null 2>&1 || [ $n -ge 100 ]; do sleep 0.1; n=$((n+1)); done
        $C logs --no-color | sed 's/\x1b\[2K//g; s/ *|//' | grep -E 'up$' | sort
        $C exec -T worker cat /data/note
        echo "host: $(wget -qO- http://127.0.0.1:18080/)"
        echo "by name: $($C exec -T worker wget -qO- http://web:8080/)"
        pid=$(docker inspect -f '{{{{.State.Pid}}}}' dyv2-web-1)
        grep -q "/$CGROUP_PARENT/" /proc/$pid/cgroup && echo "cgroup: under the test's parent"
        $C down -v 2>&1 | grep -c 'Container dyv2-.* Removed' | sed 's/^/removed: /'
        echo "left: $(docker ps -aq | wc -l) $(docker volume ls -q | wc -l) $(docker network ls -q --filter name=dyv2 | wc -l)"
        echo "links: $(ip -o link | grep -vc ': lo:')"
        "#,
        project = project.display(),
    );
    let (code, stdout, stderr) = with_service_in_netns(&dy, dir.path(), &script);
    let log = std::fs::read_to_string(dir.path().join("service.log")).unwrap_or_default();
    assert_eq!(
        stdout,
        "started: 2\n\
         web\n\
         worker\n\
         port: 127.0.0.1:18080\n\
         web-1 web up\n\
         worker-1 worker up\n\
         written by worker\n\
         host: hello from web\n\
         by name: hello from web\n\
         cgroup: under the test's parent\n\
         removed: 2\n\
         left: 0 0 0\n\
         links: 0\n",
        "{stderr}\nservice:\n{log}"
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(dy.ok(&["ps", "-aq"]), "");
}
