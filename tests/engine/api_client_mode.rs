//! `dockyard -H unix://...|tcp://...` (and `DOCKYARD_HOST`): the CLI as a
//! client of `dockyard system service`. Each test starts its own service
//! (api.rs's `Service`) over its own data root, and compares what the
//! client prints with what the in-process CLI prints on the same data
//! root; what the client asked for is checked from the other front and the
//! kernel (/proc, the cgroup), so a client that ran the command itself, or
//! not at all, fails.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use dockyard_e2e::dockyard::{text, Dockyard as Dy};
use dockyard_e2e::fixtures::bin;

use super::api::Service;

// (api_images.rs loads it too, privately: each has its own copy.)
#[path = "../registry/common.rs"]
#[allow(dead_code, clippy::duplicate_mod)]
mod registry_common;
use registry_common::Registry;

/// `dockyard -H URL ARGS`, with no data root of its own (`--root` of a
/// client would mean nothing) and `--cgroup-parent` for `run`, `create`
/// and `build`.
fn client(url: &str, parent: &str, args: &[&str]) -> Output {
    let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    if matches!(
        args.first(),
        Some(&"run") | Some(&"create") | Some(&"build")
    ) {
        all.insert(1, format!("--cgroup-parent={parent}"));
    }
    Command::new(bin("dockyard"))
        .arg("-H")
        .arg(url)
        .args(&all)
        .env_remove("DOCKYARD_HOST")
        .env_remove("DOCKYARD_ROOT")
        .stdin(Stdio::null())
        .output()
        .expect("running dockyard -H")
}

fn url(svc: &Service) -> String {
    format!("unix://{}", svc.sock.display())
}

/// The client's stdout, which must succeed.
fn client_ok(svc: &Service, dy: &Dy, args: &[&str]) -> String {
    let out = client(&url(svc), &dy.parent, args);
    assert!(
        out.status.success(),
        "dockyard -H {args:?} failed ({:?}):\n{}{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// The client's and the in-process output of `args` are equal. Both
/// print relative times ("2 seconds ago"), so a second that ticks between
/// the two runs is given two more tries.
fn same_output(svc: &Service, dy: &Dy, args: &[&str]) -> String {
    let mut last = (String::new(), String::new());
    for _ in 0..3 {
        let remote = client_ok(svc, dy, args);
        let local = dy.ok(args);
        if remote == local {
            return local;
        }
        last = (remote, local);
    }
    panic!(
        "dockyard -H {args:?} printed\n{}\nbut in-process\n{}",
        last.0, last.1
    );
}

#[test]
fn api_client_mode_prints_what_the_in_process_cli_prints() {
    let dy = Dy::new();
    let svc = Service::start(&dy);
    dy.ok(&["run", "-d", "--name", "up", "busybox", "sleep", "60"]);
    dy.ok(&[
        "create",
        "--name",
        "made",
        "--label",
        "k=v",
        "busybox",
        "echo",
        "a long command line",
    ]);
    dy.ok(&["volume", "create", "vol1"]);
    dy.ok(&[
        "volume", "create", "--label", "team=a", "--label", "x=1", "vol2",
    ]);
    for args in [
        &["ps"][..],
        &["ps", "-a"],
        &["ps", "-a", "-q"],
        &["ps", "-a", "--no-trunc"],
        &[
            "ps",
            "-a",
            "--format",
            "{{.Names}} {{.State}} {{.Labels}} {{.CreatedAt}}",
        ],
        &["ps", "-a", "-f", "status=created"],
        &["images"],
        &["images", "-q"],
        &["version"],
        &["info"],
        &["inspect", "up"],
        &["inspect", "-f", "{{.State.Pid}}", "up"],
        &["inspect", "busybox"],
        &["network", "ls"],
        &["volume", "ls"],
        &["network", "ls", "-f", "name=none"],
        &["network", "ls", "-q", "--no-trunc"],
        &["volume", "ls", "-f", "name=vol1"],
        &["volume", "ls", "-f", "name=nothing", "-q"],
        // --format: docker's formatter's fields, the same from the
        // service's documents as from the engine's own records.
        &["network", "ls", "--format", "json"],
        &["network", "ls", "--format", "table {{.Name}}"],
        &[
            "network",
            "ls",
            "--no-trunc",
            "--format",
            "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}\t{{.Internal}}\t{{.CreatedAt}}",
        ],
        &["network", "ls", "-q", "--format", "{{.Name}}"],
        &["volume", "ls", "--format", "json"],
        &["volume", "ls", "--format", "table {{.Name}}"],
        &[
            "volume",
            "ls",
            "-f",
            "label=team",
            "--format",
            "{{.Name}} {{.Driver}} {{.Scope}} {{.Labels}} {{.Mountpoint}}",
        ],
    ] {
        same_output(&svc, &dy, args);
    }
    // The formatted lists are really there, and are what docker's own CLI
    // prints for the same service (one label: Go's map order is random).
    let labelled = [
        "volume",
        "ls",
        "-f",
        "label=x",
        "--format",
        "{{.Name}} {{.Labels}}",
    ];
    assert_eq!(
        client_ok(&svc, &dy, &labelled),
        "vol2 team=a,x=1
"
    );
    for args in [
        // vol1 alone: docker's CLI prints vol2's two labels in Go's random
        // map order.
        &["volume", "ls", "-f", "name=vol1", "--format", "json"][..],
        &[
            "volume",
            "ls",
            "--format",
            "table {{.Name}}\t{{.Driver}}\t{{.Scope}}",
        ],
        &["network", "ls", "--format", "json"],
        &[
            "network",
            "ls",
            "--format",
            "table {{.ID}}\t{{.Name}}\t{{.Internal}}\t{{.IPv6}}\t{{.CreatedAt}}",
        ],
    ] {
        let ours = client_ok(&svc, &dy, args);
        assert!(ours.contains("vol1") || ours.contains("none"), "{ours}");
        assert_eq!(ours, svc.docker_ok(args), "{args:?}");
    }
    // The table is really there (not two empty outputs), and version has
    // both parts, the server's being the service's Engine.
    let ps = same_output(&svc, &dy, &["ps", "-a"]);
    assert!(
        ps.contains("\"echo a long command…\"") && ps.contains("Created"),
        "{ps}"
    );
    let version = client_ok(&svc, &dy, &["version"]);
    assert!(
        version.starts_with("Client:\n Version:           "),
        "{version}"
    );
    assert!(
        version.contains("\nServer: Dockyard\n Engine:\n")
            && version.contains("  API version:      1.50 (minimum version 1.24)\n"),
        "{version}"
    );
    // docker's own CLI prints the same server part for the same service.
    let docker = svc.docker_ok(&["version"]);
    let server = |v: &str| v.split_once("\nServer:").map(|(_, s)| s.to_string());
    assert_eq!(server(&version), server(&docker));
    // An unknown name: docker's messages and exit codes, from the service.
    let out = client(&url(&svc), &dy.parent, &["inspect", "nosuch"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stderr), "Error: No such object: nosuch\n");
    assert_eq!(text(&out.stdout), "[]\n");
    dy.ok(&["rm", "-f", "up", "made"]);
}

#[test]
fn api_client_mode_runs_logs_stops_and_removes_through_the_service() {
    let dy = Dy::new();
    let svc = Service::start(&dy);
    let script = "echo to-out; echo to-err >&2; exec sleep 60";
    let id = client_ok(
        &svc,
        &dy,
        &[
            "run",
            "-d",
            "--name",
            "far",
            "-e",
            "WHO=client",
            "busybox",
            "sh",
            "-c",
            script,
        ],
    );
    let id = id.trim();
    assert_eq!(id.len(), 64, "run -d prints the full ID: {id}");
    // The service made it: the in-process CLI sees it running, and the
    // kernel has its process, in this test's cgroup parent, with the
    // environment the client sent.
    assert_eq!(
        dy.inspect("far", "{{.Id}} {{.State.Status}}"),
        format!("{id} running")
    );
    let pid = dy.inspect("far", "{{.State.Pid}}");
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(cgroup.contains(&dy.parent), "{cgroup}");
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    assert!(text(&environ).split('\0').any(|e| e == "WHO=client"));
    // logs: each stream to its own.
    dy.wait_for("far", "{{.State.Status}}", "running");
    let mut logs = client(&url(&svc), &dy.parent, &["logs", "far"]);
    for _ in 0..50 {
        if !logs.stderr.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        logs = client(&url(&svc), &dy.parent, &["logs", "far"]);
    }
    assert_eq!(
        (text(&logs.stdout), text(&logs.stderr)),
        ("to-out\n".into(), "to-err\n".into())
    );
    // --tail and -t are carried, as the in-process command reads them.
    let args = ["logs", "--tail", "1", "-t", "far"];
    let (remote, local) = (client(&url(&svc), &dy.parent, &args), dy.run(&args));
    assert_eq!(
        (&remote.stdout, &remote.stderr),
        (&local.stdout, &local.stderr)
    );
    assert!(text(&remote.stderr).ends_with("Z to-err\n") && remote.stdout.is_empty());
    // stop: the name back, the process gone, the state exited.
    assert_eq!(client_ok(&svc, &dy, &["stop", "-t", "1", "far"]), "far\n");
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists() || {
            std::thread::sleep(std::time::Duration::from_millis(500));
            !Path::new(&format!("/proc/{pid}")).exists()
        }
    );
    assert_eq!(dy.inspect("far", "{{.State.Status}}"), "exited");
    // create + start + kill; rm -f of a running one, and of a missing one.
    let made = client_ok(
        &svc,
        &dy,
        &["create", "--name", "later", "busybox", "sleep", "60"],
    );
    assert_eq!(dy.inspect("later", "{{.State.Status}}"), "created");
    assert_eq!(dy.inspect("later", "{{.Id}}") + "\n", made);
    assert_eq!(client_ok(&svc, &dy, &["start", "later"]), "later\n");
    assert_eq!(dy.inspect("later", "{{.State.Status}}"), "running");
    let pid_before = dy.inspect("later", "{{.State.Pid}}");
    assert_eq!(
        client_ok(&svc, &dy, &["restart", "-t", "1", "later"]),
        "later\n"
    );
    assert_eq!(dy.inspect("later", "{{.State.Status}}"), "running");
    assert_ne!(dy.inspect("later", "{{.State.Pid}}"), pid_before);
    assert_eq!(client_ok(&svc, &dy, &["kill", "later"]), "later\n");
    assert_eq!(client_ok(&svc, &dy, &["wait", "later"]), "137\n");
    dy.wait_for("later", "{{.State.Status}}", "exited");
    let out = client(&url(&svc), &dy.parent, &["rm", "far", "later", "ghost"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "far\nlater\n");
    assert_eq!(
        text(&out.stderr),
        "Error response from daemon: No such container: ghost\n"
    );
    assert_eq!(dy.ok(&["ps", "-a", "-q"]), "");
    assert!(dockyard_e2e::dockyard::container_dirs(&dy.root_path()).is_empty());
    // An attached run: its streams to ours, its exit code as ours; with
    // --rm, gone when the client returns.
    let script = "echo out; echo err >&2; exit 3";
    let args = ["run", "--name", "att", "busybox", "sh", "-c", script];
    let out = client(&url(&svc), &dy.parent, &args);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert_eq!(
        (text(&out.stdout), text(&out.stderr)),
        ("out\n".into(), "err\n".into())
    );
    assert_eq!(dy.inspect("att", "{{.State.ExitCode}}"), "3");
    let out = client(
        &url(&svc),
        &dy.parent,
        &["run", "--rm", "busybox", "echo", "gone"],
    );
    assert_eq!(text(&out.stdout), "gone\n");
    assert_eq!(dy.ok(&["ps", "-a", "--format", "{{.Names}}"]), "att\n");
    dy.ok(&["rm", "att"]);
}

#[test]
fn api_client_mode_pulls_from_a_registry_through_the_service() {
    let dy = Dy::new();
    let reg = Registry::start();
    let name = format!("{}/team/bb:v1", reg.host());
    dy.ok(&["tag", "busybox", &name]);
    dy.ok(&["push", &name]);
    dy.ok(&["rmi", &name]);
    let svc = Service::start(&dy);
    let pulled = client_ok(&svc, &dy, &["pull", &name]);
    assert!(
        pulled.ends_with(&format!(
            "Status: Downloaded newer image for {name}\n{name}\n"
        )),
        "{pulled}"
    );
    assert!(dy
        .ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .contains(&name));
    // run -d of an image the service lacks: pulled first, as docker does.
    dy.ok(&["rmi", &name]);
    let out = client(
        &url(&svc),
        &dy.parent,
        &["run", "-d", "--name", "pulled", &name, "true"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).starts_with(&format!("Unable to find image '{name}' locally\n")));
    dy.wait_for("pulled", "{{.State.Status}}", "exited");
    dy.ok(&["rm", "pulled"]);
}

#[test]
fn api_client_mode_refuses_what_it_does_not_carry_and_a_dead_socket() {
    let dy = Dy::new();
    let svc = Service::start(&dy);
    let u = url(&svc);
    // Refused, never run here instead: nothing is made in the data root.
    for (args, said) in [
        (
            &["system", "df"][..],
            "dockyard: `system df` is not supported through -H yet",
        ),
        (
            &["network", "create", "--ip-range", "10.0.0.0/24", "n1"],
            "dockyard: `network create` is not supported through -H yet",
        ),
        (
            &["container", "prune", "-f"],
            "dockyard: `container prune` is not supported through -H yet",
        ),
        (
            &["run", "-d", "-p", "80:80", "busybox", "true"],
            "dockyard: `-p` of run/create is not supported",
        ),
    ] {
        let out = client(&u, &dy.parent, args);
        assert_eq!(out.status.code(), Some(125), "{args:?}");
        assert!(
            text(&out.stderr).starts_with(said),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    let out = client(&u, &dy.parent, &["--root", "/tmp", "ps"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(text(&out.stderr)
        .starts_with("dockyard: --root, --config and --userns-remap are the engine's"));
    assert_eq!(dy.ok(&["ps", "-a", "-q"]), "");
    assert_eq!(dy.ok(&["network", "ls", "-q", "-f", "name=n1"]), "");
    // DOCKYARD_HOST does what -H does; -H wins over it.
    let via_env = Command::new(bin("dockyard"))
        .args(["ps", "-a"])
        .env("DOCKYARD_HOST", &u)
        .output()
        .unwrap();
    assert!(via_env.status.success());
    assert_eq!(text(&via_env.stdout), dy.ok(&["ps", "-a"]));
    let dead = svc.sock.with_file_name("dead.sock");
    let dead_url = format!("unix://{}", dead.display());
    let out = Command::new(bin("dockyard"))
        .args(["-H", &u, "ps"])
        .env("DOCKYARD_HOST", &dead_url)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Nobody listening: docker's words, for dockyard, exit 1.
    let out = client(&dead_url, &dy.parent, &["ps"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!("Cannot connect to the dockyard service at {dead_url}. Is the dockyard service running?\n")
    );
    // version without a server: the client's part, then the same error.
    let out = client(&dead_url, &dy.parent, &["version"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).starts_with("Client:\n"));
    assert!(!text(&out.stdout).contains("Server:"));
    assert!(text(&out.stderr).starts_with("Cannot connect to the dockyard service"));
}

/// Over loopback TCP, in a throwaway network namespace (its port is
/// nobody else's): `-H tcp://` and `DOCKYARD_HOST=tcp://`.
#[test]
fn api_client_mode_speaks_tcp() {
    let dy = Dy::new();
    let script = format!(
        r#"
        ip link set lo up
        D="{bin} --root {root}"
        $D system service -H tcp://127.0.0.1:2375 --time 0 2>/dev/null & S=$!
        n=0; until {bin} -H tcp://127.0.0.1:2375 version >/dev/null 2>&1 || [ $n -gt 200 ]; do sleep 0.05; n=$((n+1)); done
        {bin} -H tcp://127.0.0.1:2375 run -d --cgroup-parent={parent} --name t1 busybox sleep 30 >/dev/null
        echo "local: $($D inspect -f '{{{{.State.Status}}}}' t1)"
        DOCKYARD_HOST=tcp://127.0.0.1:2375 {bin} ps --format '{{{{.Names}}}} {{{{.State}}}}'
        DOCKYARD_HOST=tcp://127.0.0.1:2375 {bin} rm -f t1
        echo "left: $($D ps -aq | wc -l)"
        {bin} -H tcp://127.0.0.1:2375 network create --subnet 10.198.7.0/24 cnet >/dev/null
        echo "network: $($D network ls --format '{{{{.Name}}}} {{{{.Driver}}}}' -f name=cnet) $(ip -o link show type bridge | wc -l)"
        {bin} -H tcp://127.0.0.1:2375 network rm cnet
        echo "after rm: $($D network ls -q -f name=cnet | wc -l)"
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
    assert_eq!(
        text(&out.stdout),
        "local: running\nt1 running\nt1\nleft: 0\nnetwork: cnet bridge 1\ncnet\nafter rm: 0\n",
        "{}",
        text(&out.stderr)
    );
}

/// The notes' "client and daemon on different machines", with two
/// network namespaces for the two machines, joined by a veth pair: the
/// service on the server's address with `--tlsverify` (plain TCP is served
/// on loopback only), the client in the other namespace with
/// `DOCKYARD_HOST`, `DOCKYARD_TLS_VERIFY` and `DOCKYARD_CERT_PATH`, as
/// docker's CLI with its `DOCKER_*` variables. The server's namespace is a
/// throwaway one; the client's is made inside it and dies with it.
#[test]
fn api_client_mode_reaches_a_service_in_another_network_namespace() {
    let dy = Dy::new();
    let dir = tempfile::Builder::new()
        .prefix("dockyard-client-netns-")
        .tempdir()
        .unwrap();
    let script = format!(
        r#"
        set -e
        cd {dir}
        {certs}
        set +e
        ip link set lo up
        # The client's machine: a network namespace of its own.
        unshare --net sleep 60 & C=$!
        while [ "$(readlink /proc/$C/ns/net)" = "$(readlink /proc/self/ns/net)" ]; do sleep 0.01; done
        B="nsenter --net=/proc/$C/ns/net"
        ip link add dycs0 type veth peer name dycc0 netns $C
        ip addr add 10.199.0.1/24 dev dycs0; ip link set dycs0 up
        $B ip link set lo up; $B ip addr add 10.199.0.2/24 dev dycc0; $B ip link set dycc0 up
        {bin} --root {root} system service -H tcp://10.199.0.1:2376 --tlsverify --tlscacert ca.pem \
            --tlscert server.pem --tlskey server-key.pem --time 0 2>service.log & S=$!
        export DOCKYARD_HOST=tcp://10.199.0.1:2376 DOCKYARD_TLS_VERIFY=1 DOCKYARD_CERT_PATH={dir}
        n=0; until $B {bin} version >/dev/null 2>&1 || [ $n -gt 200 ]; do sleep 0.05; n=$((n+1)); done
        echo "client has the server's address: $($B ip -o addr | grep -c 10.199.0.1/)"
        $B {bin} run -d --cgroup-parent={parent} --name far busybox sh -c 'echo from-far; exec sleep 30' >/dev/null
        echo "server sees: $(env -u DOCKYARD_HOST {bin} --root {root} inspect -f '{{{{.State.Status}}}}' far)"
        $B {bin} ps --format 'client sees: {{{{.Names}}}} {{{{.State}}}}'
        sleep 0.3; $B {bin} logs far
        $B {bin} exec far sh -c 'echo exec over TLS; exit 6'; echo "exec: $?"
        DOCKYARD_TLS_VERIFY= $B {bin} ps >/dev/null 2>&1; echo "without TLS: $?"
        $B {bin} rm -f far
        echo "left: $(env -u DOCKYARD_HOST {bin} --root {root} ps -aq | wc -l)"
        kill $S $C; wait $S
        "#,
        dir = dir.path().display(),
        certs = super::common::tls_certs_script("10.199.0.1"),
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
    let log = std::fs::read_to_string(dir.path().join("service.log")).unwrap_or_default();
    assert_eq!(
        text(&out.stdout),
        "client has the server's address: 0\nserver sees: running\nclient sees: far running\n\
         from-far\nexec over TLS\nexec: 6\nwithout TLS: 1\nfar\nleft: 0\n",
        "{}\nservice: {log}",
        text(&out.stderr)
    );
}

// The interactive and file-moving commands: exec, run -it, attach, logs -f,
// build, cp, push (a file of their own, for the 1200-line limit).
#[path = "api_client_mode_io.rs"]
mod io;

#[path = "api_client_mode_more.rs"]
mod more;

// What reads stdin or keeps running: build -, stats, the detach keys.
#[path = "api_client_mode_live.rs"]
mod live;

// `update`, and dockerd's warnings as the client prints them.
#[path = "api_client_mode_update.rs"]
mod update;
