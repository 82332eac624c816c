//! Piped stdin through the service: `echo ... | docker run -i`, with the
//! real docker CLI and with `dockyard -H`.
//!
//! `run -i` creates the container with OpenStdin and StdinOnce; when the
//! client's input ends it half-closes its hijacked connection, the service
//! sends the monitor an empty stdin frame, and the monitor closes the
//! container's stdin. `wc -l`, `sort` and `md5sum` print nothing until that
//! EOF, so they hang if it is lost (a `cat` prints as it reads and hid the
//! bug: the monitor closed the pipe only at its next wakeup, and a
//! container that says nothing never made one). Each check has a deadline
//! and kills the client (SIGKILL: docker's CLI passes SIGTERM on to the
//! container) rather than hang the test binary.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use dockyard_e2e::dockyard::{text, Dockyard as Dy};
use dockyard_e2e::fixtures::bin;

use super::api::Service;

const DOCKER: &str = "/usr/local/bin/docker";

/// `client ARGS` with `input` on its stdin (written from a thread: the
/// output is read meanwhile), killed if it is not done in 60 s.
fn piped(mut cmd: Command, input: Vec<u8>) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting the client");
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let pid = child.id() as i32;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = done.clone();
    let watchdog = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if flag.load(std::sync::atomic::Ordering::SeqCst) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
        true
    });
    let out = child.wait_with_output().unwrap();
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let _ = writer.join();
    assert!(
        !watchdog.join().unwrap(),
        "the client hung (killed after 60 s): stdout {:?}, stderr {:?}",
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

fn docker(svc: &Service, dy: &Dy, dir: &std::path::Path, args: &[&str]) -> Command {
    let mut c = Command::new(DOCKER);
    c.arg("-H")
        .arg(format!("unix://{}", svc.sock.display()))
        .arg(args[0])
        .arg(format!("--cgroup-parent={}", dy.parent))
        .args(&args[1..])
        .env("DOCKER_CONFIG", dir)
        .env_remove("DOCKER_HOST");
    c
}

fn dockyard_h(svc: &Service, dy: &Dy, args: &[&str]) -> Command {
    let mut c = Command::new(bin("dockyard"));
    c.arg("-H")
        .arg(format!("unix://{}", svc.sock.display()))
        .arg(args[0])
        .arg(format!("--cgroup-parent={}", dy.parent))
        .args(&args[1..])
        .env_remove("DOCKYARD_HOST");
    c
}

/// 1 MiB that no two runs of a bad copy would get right by chance.
fn megabyte() -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..1 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// The host's own md5sum of `data`, as `md5sum` prints it for stdin.
fn host_md5(data: &[u8]) -> String {
    let out = piped(Command::new("md5sum"), data.to_vec());
    assert!(out.status.success());
    text(&out.stdout)
}

/// The same checks through one client.
fn check(client: &dyn Fn(&[&str]) -> Command, who: &str) {
    let run = |args: &[&str], input: &[u8]| piped(client(args), input.to_vec());
    let out = run(
        &["run", "-i", "--rm", "busybox", "sh", "-c", "wc -l"],
        b"a\nb\n",
    );
    assert_eq!(
        text(&out.stdout).trim(),
        "2",
        "{who}: {}",
        text(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "{who}");
    let out = run(
        &["run", "-i", "--rm", "busybox", "sh", "-c", "sort; exit 3"],
        b"pear\napple\nfig\n",
    );
    assert_eq!(
        text(&out.stdout),
        "apple\nfig\npear\n",
        "{who}: {}",
        text(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(3), "{who}: the container's code");
    let data = megabyte();
    let out = run(&["run", "-i", "--rm", "busybox", "md5sum"], &data);
    assert_eq!(
        text(&out.stdout),
        host_md5(&data),
        "{who}: {}",
        text(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "{who}");
}

#[test]
fn api_stdin_piped_to_run_i_ends_with_its_input_for_docker_and_dockyard_h() {
    let dy = Dy::new();
    dy.load_busybox();
    let svc = Service::start(&dy);
    let config = tempfile::tempdir().unwrap();
    check(&|args| docker(&svc, &dy, config.path(), args), "docker");
    check(&|args| dockyard_h(&svc, &dy, args), "dockyard -H");
    // Nothing left running: every --rm container is gone.
    assert_eq!(dy.ok(&["ps", "-aq"]), "");
}

/// docker-py, by hand as its users do: a container with OpenStdin and
/// StdinOnce (`create_container_from_config`: its `create_container` has no
/// `stdin_once`), `attach_socket` before the start,
/// the input sent, the socket half-closed (`shutdown(SHUT_WR)`), the
/// output read to its end. The container sees EOF and exits.
const DOCKER_PY: &str = r#"
import docker, socket, sys
c = docker.APIClient(base_url=sys.argv[1])
ct = c.create_container_from_config({
    'Image': 'busybox', 'Cmd': ['wc', '-l'], 'OpenStdin': True, 'StdinOnce': True,
    'AttachStdin': True, 'AttachStdout': True, 'AttachStderr': True,
    'HostConfig': {'CgroupParent': sys.argv[2]}})
s = c.attach_socket(ct['Id'], params={'stdin': 1, 'stdout': 1, 'stderr': 1, 'stream': 1})
raw = getattr(s, '_sock', s)
c.start(ct)
raw.sendall(b'1\n2\n3\n')
raw.shutdown(socket.SHUT_WR)
raw.settimeout(30)
data = b''
while True:
    b = raw.recv(4096)
    if not b:
        break
    data += b
code = c.wait(ct, timeout=30)['StatusCode']
c.remove_container(ct)
out, i = b'', 0
while i + 8 <= len(data):
    n = int.from_bytes(data[i + 4:i + 8], 'big')
    out += data[i + 8:i + 8 + n]
    i += 8 + n
print(out.decode().strip(), code)
"#;

#[test]
fn api_stdin_docker_py_attach_socket_half_closed_ends_the_input() {
    let dy = Dy::new();
    dy.load_busybox();
    let svc = Service::start(&dy);
    let mut py = Command::new("python3");
    py.arg("-c")
        .arg(DOCKER_PY)
        .arg(format!("unix://{}", svc.sock.display()))
        .arg(&dy.parent);
    let out = piped(py, Vec::new());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "3 0\n", "{}", text(&out.stderr));
}
