//! Where `dockyard system service` listens besides a unix socket it makes:
//! loopback TCP (`-H tcp://127.0.0.1:PORT`, with dockerd's warning, and
//! refused on any other address), and a socket handed over by systemd's
//! socket activation (`-H fd://`, LISTEN_FDS/LISTEN_PID), here made by a
//! tiny launcher in the test the way systemd makes it (systemd is not PID
//! 1 on these machines).

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use dockyard_e2e::dockyard::{text, Dockyard as Dy};

const DOCKER: &str = "/usr/local/bin/docker";

/// The docker CLI over loopback TCP, inside a throwaway network namespace
/// (so the port is nobody else's): ping, run with its streams and exit
/// code, `-i`'s half-close carried across the TCP bridge, exec. A
/// non-loopback address is refused, and the service warns about TCP.
#[test]
fn api_listen_tcp_on_loopback_serves_the_docker_cli() {
    let dy = Dy::new();
    let dir = tempfile::Builder::new()
        .prefix("dockyard-api-tcp-")
        .tempdir()
        .unwrap();
    let script = format!(
        r#"
        ip link set lo up
        D="{bin} --root {root}"
        $D system service -H tcp://127.0.0.1:2375 --time 0 2>{dir}/service.log & S=$!
        n=0; until {docker} -H tcp://127.0.0.1:2375 version >/dev/null 2>&1 || [ $n -gt 200 ]; do sleep 0.05; n=$((n+1)); done
        export DOCKER_HOST=tcp://127.0.0.1:2375 DOCKER_CONFIG={dir}
        {docker} version --format 'api {{{{.Server.APIVersion}}}}'
        {docker} run --rm --cgroup-parent={parent} busybox sh -c 'echo out; echo err >&2; exit 3' 2>&1; echo "exit=$?"
        echo typed | {docker} run -i --rm --cgroup-parent={parent} busybox sh -c 'cat; echo eof'
        {docker} run -d --name tcp1 --cgroup-parent={parent} busybox sleep 30 >/dev/null
        {docker} exec tcp1 echo exec-ok
        {docker} rm -f tcp1
        $D system service -H tcp://0.0.0.0:2376 --time 0 >/dev/null 2>{dir}/refused.log; echo "open=$?"
        kill $S; wait $S
        "#,
        bin = dockyard_e2e::fixtures::bin("dockyard").display(),
        root = dy.root.path().display(),
        dir = dir.path().display(),
        docker = DOCKER,
        parent = dy.parent,
    );
    let out = Command::new("unshare")
        .args(["--net", "sh", "-c", &script])
        .stdin(Stdio::null())
        .output()
        .expect("unshare");
    let log = std::fs::read_to_string(dir.path().join("service.log")).unwrap_or_default();
    assert_eq!(
        text(&out.stdout),
        "api 1.50\nout\nerr\nexit=3\ntyped\neof\nexec-ok\ntcp1\nopen=1\n",
        "{}\n{log}",
        text(&out.stderr)
    );
    assert!(
        log.contains("WARNING") && log.contains("without TLS"),
        "{log}"
    );
    let refused = std::fs::read_to_string(dir.path().join("refused.log")).unwrap();
    assert!(refused.contains("only on a loopback address"), "{refused}");
    assert_eq!(dy.ok(&["ps", "-aq"]), "");
}

/// A child process killed (and reaped) when dropped.
struct KillOnDrop(Option<std::process::Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Socket activation as systemd does it: the launcher binds and listens on
/// the socket (0660, as dockyard.socket says), a client connects and sends
/// its request *before* the service exists (it waits in the backlog), and
/// the service, started with the socket as fd 3 and LISTEN_FDS=1,
/// LISTEN_PID=its own pid, answers it, then serves the docker CLI. The
/// service leaves the socket file alone when it stops: it is systemd's.
/// A LISTEN_PID for another process is refused.
#[test]
fn api_listen_socket_activation_takes_the_socket_systemd_passes() {
    let dy = Dy::new();
    let dir = tempfile::Builder::new()
        .prefix("dockyard-api-fd-")
        .tempdir()
        .unwrap();
    let sock = dir.path().join("activated.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o660)).unwrap();

    // A client early: connected (the kernel queues it), request sent.
    let mut early = UnixStream::connect(&sock).unwrap();
    early
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    early
        .write_all(b"GET /_ping HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
        .unwrap();

    let fd = listener.as_raw_fd();
    let mut cmd = Command::new("sh");
    // `$$` is the shell's pid, which `exec` hands to dockyard: LISTEN_PID
    // names the very process that gets the socket.
    cmd.arg("-c")
        .arg("LISTEN_PID=$$ LISTEN_FDS=1 exec \"$@\"")
        .arg("sh")
        .arg(dockyard_e2e::fixtures::bin("dockyard"))
        .arg("--root")
        .arg(dy.root.path())
        .args(["system", "service", "-H", "fd://", "--time", "0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: dup2 is async-signal-safe; it puts the listening socket at
    // fd 3 (SD_LISTEN_FDS_START), inheritable, as systemd passes it.
    unsafe {
        cmd.pre_exec(move || {
            // dup2 onto itself would keep close-on-exec: clear it then.
            let r = if fd == 3 {
                libc::fcntl(3, libc::F_SETFD, 0)
            } else {
                libc::dup2(fd, 3)
            };
            if r < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let service = cmd.spawn().expect("starting the service");
    // Killed on drop, even when an assertion below fails.
    let mut service = KillOnDrop(Some(service));
    drop(listener); // the service has it now, as systemd keeps its own

    let mut answer = String::new();
    let _ = early.read_to_string(&mut answer);
    if !answer.starts_with("HTTP/1.1 200 OK") {
        let mut child = service.0.take().unwrap();
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        panic!("{answer:?}\n{}", text(&out.stderr));
    }
    assert!(
        answer.contains("Api-Version: 1.50") && answer.ends_with("OK"),
        "{answer}"
    );

    let docker = |args: &[&str]| {
        Command::new(DOCKER)
            .arg("-H")
            .arg(format!("unix://{}", sock.display()))
            .args(args)
            .env("DOCKER_CONFIG", dir.path())
            .output()
            .unwrap()
    };
    let parent = format!("--cgroup-parent={}", dy.parent);
    let out = docker(&["run", "--rm", &parent, "busybox", "echo", "activated"]);
    assert_eq!(text(&out.stdout), "activated\n", "{}", text(&out.stderr));

    let mut child = service.0.take().unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let mut err = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut err);
    assert!(err.contains("listening on fd://"), "{err}");
    assert!(sock.exists(), "the service removed systemd's socket");

    // LISTEN_PID for someone else: not ours to take.
    let out = Command::new(dockyard_e2e::fixtures::bin("dockyard"))
        .arg("--root")
        .arg(dy.root.path())
        .args(["system", "service", "-H", "fd://", "--time", "0"])
        .env("LISTEN_PID", "1")
        .env("LISTEN_FDS", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("LISTEN_PID is 1, not this process"),
        "{}",
        text(&out.stderr)
    );
}

/// `--tlsverify`: mutual TLS with rustls. A CA, a server certificate for
/// 127.0.0.1 and a client certificate, made here by openssl; the docker CLI
/// with the client certificate runs a container with its streams and its
/// `-i` input across TLS; a client without a certificate, or with one of
/// another CA, is refused in the handshake; a plain-HTTP client gets no
/// answer. All inside a throwaway network namespace.
#[test]
fn api_listen_tlsverify_lets_in_only_clients_the_ca_signed() {
    let dy = Dy::new();
    let dir = tempfile::Builder::new()
        .prefix("dockyard-api-tls-")
        .tempdir()
        .unwrap();
    let script = format!(
        r#"
        set -e
        cd {dir}
        {certs}
        ssl() {{ openssl "$@" 2>/dev/null; }}
        ssl req -x509 -newkey rsa:2048 -nodes -keyout other-key.pem -out other.pem -days 1 -subj /CN=other
        set +e
        ip link set lo up
        {bin} --root {root} system service -H tcp://127.0.0.1:2376 --tlsverify --tlscacert ca.pem \
            --tlscert server.pem --tlskey server-key.pem --time 0 2>service.log & S=$!
        # Not this directory: the CLI would take its cert.pem and key.pem
        # as its own by default.
        mkdir cfg; export DOCKER_CONFIG={dir}/cfg
        K="{docker} -H tcp://127.0.0.1:2376 --tlsverify --tlscacert ca.pem"
        n=0; until $K --tlscert cert.pem --tlskey key.pem version >/dev/null 2>&1 || [ $n -gt 200 ]; do sleep 0.05; n=$((n+1)); done
        $K --tlscert cert.pem --tlskey key.pem run --rm --cgroup-parent={parent} busybox sh -c 'echo out; echo err >&2; exit 3' 2>&1; echo "exit=$?"
        echo typed | $K --tlscert cert.pem --tlskey key.pem run -i --rm --cgroup-parent={parent} busybox cat
        $K ps >/dev/null 2>&1; echo "no certificate: $?"
        $K --tlscert other.pem --tlskey other-key.pem ps >/dev/null 2>&1; echo "other CA: $?"
        curl -s -m 5 http://127.0.0.1:2376/_ping; echo "plain http: $?"
        kill $S; wait $S
        "#,
        dir = dir.path().display(),
        certs = super::common::tls_certs_script("127.0.0.1"),
        bin = dockyard_e2e::fixtures::bin("dockyard").display(),
        root = dy.root.path().display(),
        docker = DOCKER,
        parent = dy.parent,
    );
    let out = Command::new("unshare")
        .args(["--net", "sh", "-c", &script])
        .stdin(Stdio::null())
        .output()
        .expect("unshare");
    let log = std::fs::read_to_string(dir.path().join("service.log")).unwrap_or_default();
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[..6],
        [
            "out",
            "err",
            "exit=3",
            "typed",
            "no certificate: 1",
            "other CA: 1"
        ],
        "{stdout}\n{}\n{log}",
        text(&out.stderr)
    );
    // curl gets no HTTP answer from a TLS port (its code is not 0).
    assert!(
        lines[6].starts_with("plain http: ") && lines[6] != "plain http: 0",
        "{stdout}"
    );
    assert!(log.contains("TLS, client certificates required"), "{log}");
    assert_eq!(dy.ok(&["ps", "-aq"]), "");
}
