//! Lab 05, observed from the kernel: eth0 and its route inside, pings over
//! the bridge by address and by name, published ports, concurrent leases,
//! teardown, gc after a crash, and the network modes.
//!
//! Every test runs the lab inside a throwaway network namespace that plays
//! the host ([`Host`]): bridges, veths, iptables rules and sysctls are made
//! only there, and die with it. Traffic goes only between namespaces the
//! test made.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::sync::Arc;
use std::time::Duration;

use dockyard_e2e::fixtures::{bin, require_root, TestRootfs};
use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde_json::Value;

/// How long to wait for a container to say it is ready.
const READY: Duration = Duration::from_secs(30);

/// A throwaway network namespace playing the host: held by a `sleep`
/// process that unshared it, so it disappears, with everything made in
/// it, when that process is killed (on drop, or by the kernel when this
/// test process dies: PR_SET_PDEATHSIG). Plus a private state directory.
struct Host {
    holder: Child,
    netns: Arc<OwnedFd>,
    state: tempfile::TempDir,
}

impl Host {
    fn new() -> Host {
        require_root();
        let mut cmd = Command::new("sleep");
        cmd.arg("3600");
        // SAFETY: unshare and prctl are async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                unshare(CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)?;
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let holder = cmd.spawn().expect("spawning the namespace holder");
        let netns: OwnedFd = std::fs::File::open(format!("/proc/{}/ns/net", holder.id()))
            .expect("opening the holder's netns")
            .into();
        let ours = std::fs::metadata("/proc/self/ns/net").unwrap();
        let theirs = std::fs::metadata(format!("/proc/{}/ns/net", holder.id())).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_ne!(ours.ino(), theirs.ino(), "the holder is in our namespace");
        let host = Host {
            holder,
            netns: Arc::new(netns),
            state: tempfile::Builder::new()
                .prefix("dockyard-net-")
                .tempdir()
                .expect("state dir"),
        };
        // A real host's loopback is up; a new namespace's is not.
        host.sh("ip link set lo up");
        host
    }

    /// The holder's PID: /proc/PID/ns/net names the namespace.
    fn pid(&self) -> u32 {
        self.holder.id()
    }

    /// A command that runs in this namespace, with this state directory.
    fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("DOCKYARD_NET_STATE", self.state.path());
        let ns = self.netns.clone();
        // SAFETY: setns is async-signal-safe.
        unsafe {
            cmd.pre_exec(move || {
                setns(ns.as_fd(), CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)
            });
        }
        cmd
    }

    /// Run a shell command in this namespace (ip, iptables-save, ...).
    fn sh(&self, script: &str) -> String {
        let out = self
            .command("sh")
            .args(["-c", script])
            .output()
            .expect("running sh");
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Run `f` in a thread that has entered this namespace (for sockets).
    fn within<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        std::thread::scope(|s| {
            s.spawn(|| {
                setns(self.netns.as_fd(), CloneFlags::CLONE_NEWNET).expect("setns");
                f()
            })
            .join()
            .expect("thread in the host namespace")
        })
    }

    /// The lab, in this namespace, on a rootfs.
    fn lab05(&self, fx: &TestRootfs, flags: &[&str], cmd: &[&str]) -> Command {
        let mut c = self.command(bin("lab05-netns-veth"));
        c.arg("--rootfs")
            .arg(fx.path())
            .args(flags)
            .arg("--")
            .args(cmd);
        c
    }

    /// `lab05-netns-veth ls` without its header.
    fn leases(&self) -> Vec<Vec<String>> {
        let out = self
            .command(bin("lab05-netns-veth"))
            .arg("ls")
            .output()
            .expect("ls");
        stdout(&out)
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().map(String::from).collect())
            .collect()
    }

    /// The interfaces, the iptables rules and the state files here.
    fn leftovers(&self) -> (String, Vec<String>, Vec<PathBuf>) {
        let links = self.sh("ip -o link show | cut -d: -f2 | tr -d ' '");
        let rules = self
            .sh("iptables-save")
            .lines()
            .filter(|l| l.starts_with("-A"))
            .map(String::from)
            .collect();
        let files = std::fs::read_dir(self.state.path())
            .map(|d| {
                d.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "json"))
                    .collect()
            })
            .unwrap_or_default();
        (links, rules, files)
    }

    /// The container PIDs of the current leases.
    fn lease_pids(&self) -> Vec<i32> {
        self.leases()
            .iter()
            .map(|l| l[4].parse().expect("a PID"))
            .collect()
    }

    /// After a lab was killed: wait until its containers are dead (SIGKILL
    /// takes a moment to land), then `gc`, and return what it printed.
    fn gc_after_kill(&self, pids: &[i32]) -> String {
        for pid in pids {
            let mut tries = 0;
            while std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| !s.contains(") Z "))
            {
                tries += 1;
                assert!(tries < 500, "container {pid} does not die");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let out = self
            .command(bin("lab05-netns-veth"))
            .arg("gc")
            .output()
            .unwrap();
        stdout(&out)
    }

    /// Nothing is left but the default network, if a test used it: kept,
    /// as Docker keeps docker0, with its bridge, its own rules and its state
    /// file, and no lease. The veths of exited containers are the kernel's
    /// to delete, with their namespaces, a moment after the exit: waited
    /// for, up to 5 s.
    fn assert_clean(&self) {
        let mut tries = 0;
        while self.leftovers().0.contains("dyv") {
            tries += 1;
            assert!(tries < 100, "a veth outlived its container's namespace");
            std::thread::sleep(Duration::from_millis(50));
        }
        let (links, rules, files) = self.leftovers();
        let kept: Option<String> = files
            .iter()
            .find(|f| f.file_name().is_some_and(|n| n == "bridge.json"))
            .map(|f| {
                let state: Value = serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap();
                assert_eq!(state["leases"], Value::Array(vec![]), "{state:#}");
                state["bridge"].as_str().unwrap().to_string()
            });
        let mut wanted = vec!["lo".to_string()];
        wanted.extend(kept.clone());
        let links: Vec<String> = links.lines().map(|l| l.to_string()).collect();
        assert_eq!(links, wanted, "interfaces left behind");
        let foreign: Vec<&String> = rules
            .iter()
            .filter(|r| {
                kept.as_ref().is_none_or(|b| !r.contains(b.as_str())) || r.contains("DNAT --to")
            })
            .collect();
        assert!(foreign.is_empty(), "rules left behind: {foreign:#?}");
        assert_eq!(
            files.len(),
            kept.iter().count(),
            "networks left behind: {files:?}"
        );
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// A bridge name unique to this test process and test.
fn bridge(n: u32) -> String {
    format!("dy{}b{n}", std::process::id() % 1000)
}

/// A rootfs that root in a user namespace (uid 100000) can reach.
fn rootfs() -> TestRootfs {
    let fx = TestRootfs::new();
    std::fs::set_permissions(fx.outside(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod 755 on the fixture directory");
    fx
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "command failed: {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A container that runs until its stdin is closed, whose stdout lines
/// arrive on a channel. Dropping it kills the lab's whole process group.
struct Running {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr: Arc<std::sync::Mutex<String>>,
}

impl Running {
    fn start(mut cmd: Command) -> Running {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("spawning lab05-netns-veth");
        let (tx, lines) = channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(std::sync::Mutex::new(String::new()));
        let mut err = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 1024];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Running {
            stdin: child.stdin.take(),
            child,
            lines,
            stderr,
        }
    }

    /// The next line of stdout.
    fn line(&self) -> String {
        self.lines.recv_timeout(READY).unwrap_or_else(|_| {
            panic!(
                "no output from the container; stderr: {}",
                self.stderr.lock().unwrap()
            )
        })
    }

    /// Lines up to and including `marker`.
    fn until(&self, marker: &str) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            let line = self.line();
            let done = line == marker;
            seen.push(line);
            if done {
                return seen;
            }
        }
    }

    fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        writeln!(stdin, "{line}").expect("writing to the container");
    }

    /// Close stdin and wait for the lab to exit; its exit code.
    fn finish(mut self) -> i32 {
        drop(self.stdin.take());
        let status = self.child.wait().expect("waiting for the lab");
        status.code().unwrap_or(-1)
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = killpg(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// The addresses of one interface in a probe report.
fn addresses(report: &Value, ifname: &str) -> Vec<String> {
    report["interfaces"]
        .as_array()
        .unwrap_or_else(|| panic!("no interfaces in {report:#}"))
        .iter()
        .find(|i| i["name"] == ifname)
        .map(|i| {
            assert_eq!(i["up"], true, "{ifname} is down: {report:#}");
            i["addresses"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap().to_string())
                // IPv4 only: the kernel adds an IPv6 link-local address too.
                .filter(|a| a.contains('.'))
                .collect()
        })
        .unwrap_or_default()
}

fn interface_names(report: &Value) -> Vec<String> {
    let mut names: Vec<String> = report["interfaces"]
        .as_array()
        .unwrap_or_else(|| panic!("no interfaces in {report:#}"))
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

fn probe(host: &Host, fx: &TestRootfs, flags: &[&str]) -> Value {
    let text = stdout(&host.lab05(fx, flags, &["/bin/probe"]).output().unwrap());
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("probe output is not JSON ({e}):\n{text}"))
}

#[test]
fn eth0_has_the_leased_address_and_a_default_route_via_the_gateway() {
    let host = Host::new();
    let fx = rootfs();
    let br = bridge(1);
    let report = probe(&host, &fx, &["--bridge", &br]);
    // Nothing else in the throwaway host: the first of Docker's pools.
    assert_eq!(addresses(&report, "eth0"), ["172.17.0.2/16"], "{report:#}");
    assert_eq!(interface_names(&report), ["eth0", "lo"]);

    // /proc/net/route: destination 0 via 172.17.0.1 (hex, little-endian).
    let out = host
        .lab05(&fx, &["--bridge", &br], &["cat", "/proc/net/route"])
        .output()
        .unwrap();
    let routes = stdout(&out);
    let default: Vec<&str> = routes
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some("00000000"))
        .unwrap_or_else(|| panic!("no default route:\n{routes}"))
        .split_whitespace()
        .collect();
    assert_eq!((default[0], default[2]), ("eth0", "010011AC"), "{routes}");

    // The default network stays after its container, as docker0 does; the
    // lab (not the engine) can remove it.
    assert!(host.sh("ip -o link show").contains(&br));
    stdout(&lab05_sub(&host, &["rm", "bridge"]));
    assert!(!host.sh("ip -o link show").contains(&br));
    // A route on the host that covers 172.17/16 pushes the network to the
    // next pool, and --ip picks the address.
    let d = format!("dy{}d0", std::process::id() % 1000);
    host.sh(&format!(
        "ip link add {d} type veth peer name {d}p && ip addr add 172.17.200.1/16 dev {d} \
         && ip link set {d} up"
    ));
    let report = probe(&host, &fx, &["--bridge", &br, "--ip", "172.18.0.9"]);
    assert_eq!(addresses(&report, "eth0"), ["172.18.0.9/16"], "{report:#}");
    host.sh(&format!("ip link del {d}"));
    host.assert_clean();
}

#[test]
fn two_containers_ping_each_other_by_address_and_by_name() {
    let host = Host::new();
    let (fx_a, fx_b) = (rootfs(), rootfs());
    let net = format!("n{}", std::process::id() % 1000);
    let flags = |name: &'static str| {
        vec![
            "--network".to_string(),
            net.clone(),
            "--bridge".into(),
            bridge(2),
            "--name".into(),
            name.into(),
        ]
    };
    let args_a = flags("alpha");
    let args_a: Vec<&str> = args_a.iter().map(String::as_str).collect();
    let mut a = Running::start(host.lab05(
        &fx_a,
        &args_a,
        &[
            "sh",
            "-c",
            "echo ready; read x; ping -c1 -W2 beta >/dev/null && echo alpha-pinged-beta; \
             ping -c1 -W2 172.17.0.3 >/dev/null && echo alpha-pinged-172.17.0.3; echo done",
        ],
    ));
    a.until("ready");
    let args_b = flags("beta");
    let args_b: Vec<&str> = args_b.iter().map(String::as_str).collect();
    let b = Running::start(host.lab05(
        &fx_b,
        &args_b,
        &[
            "sh",
            "-c",
            "ping -c1 -W2 alpha >/dev/null && echo beta-pinged-alpha; \
             ping -c1 -W2 172.17.0.2 >/dev/null && echo beta-pinged-172.17.0.2; \
             echo ready; read x || true",
        ],
    ));
    let seen_b = b.until("ready");
    assert_eq!(
        seen_b,
        ["beta-pinged-alpha", "beta-pinged-172.17.0.2", "ready"],
        "stderr: {}",
        b.stderr()
    );
    // alpha's hosts file was rewritten when beta joined.
    let hosts = std::fs::read_to_string(fx_a.path().join("etc/hosts")).unwrap();
    assert!(hosts.contains("172.17.0.3\tbeta"), "{hosts}");
    a.send("go");
    let seen_a = a.until("done");
    assert_eq!(
        seen_a,
        ["alpha-pinged-beta", "alpha-pinged-172.17.0.3", "done"],
        "stderr: {}",
        a.stderr()
    );
    assert_eq!(a.finish(), 0);
    // beta's hosts file lost alpha when alpha left.
    let hosts = std::fs::read_to_string(fx_b.path().join("etc/hosts")).unwrap();
    assert!(!hosts.contains("alpha"), "{hosts}");
    assert_eq!(b.finish(), 0);
    host.assert_clean();
}

/// Connect to `addr` from the throwaway host and read what the server says,
/// retrying while the server in the container is not listening yet.
fn fetch(host: &Host, addr: (Ipv4Addr, u16)) -> String {
    host.within(|| {
        let mut last = String::new();
        for _ in 0..100 {
            match TcpStream::connect_timeout(&addr.into(), Duration::from_secs(2)) {
                Ok(mut s) => {
                    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                    let mut text = String::new();
                    match s.read_to_string(&mut text) {
                        Ok(_) if !text.is_empty() => return text,
                        Ok(_) => last = "empty answer".into(),
                        Err(e) => last = e.to_string(),
                    }
                }
                Err(e) => last = e.to_string(),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("connecting to {addr:?}: {last}");
    })
}

#[test]
fn a_published_port_answers_on_loopback_and_on_the_bridge_address() {
    let forwarding = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let host = Host::new();
    let fx = rootfs();
    let br = bridge(3);
    let server = "echo ready; while :; do nc -l -p 80 -e echo hi; done";
    let c = Running::start(host.lab05(
        &fx,
        &["--bridge", &br, "-p", "8080:80"],
        &["sh", "-c", server],
    ));
    c.until("ready");
    assert_eq!(fetch(&host, (Ipv4Addr::LOCALHOST, 8080)), "hi\n");
    assert_eq!(fetch(&host, (Ipv4Addr::new(172, 17, 0, 1), 8080)), "hi\n");

    // The rules, in the throwaway namespace only.
    let rules = host.sh("iptables-save");
    for wanted in [
        "-A POSTROUTING -s 172.17.0.0/16 ! -o ".to_string() + &br + " -j MASQUERADE",
        "-A OUTPUT -p tcp -m addrtype --dst-type LOCAL -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80".into(),
        "-A PREROUTING -p tcp -m addrtype --dst-type LOCAL -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80".into(),
    ] {
        assert!(rules.contains(&wanted), "missing {wanted:?} in\n{rules}");
    }
    assert_eq!(host.sh("cat /proc/sys/net/ipv4/ip_forward").trim(), "1");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        forwarding,
        "the machine's own ip_forward changed"
    );
    let pids = host.lease_pids();
    drop(c);
    // Killed: gc takes the rest down.
    let text = host.gc_after_kill(&pids);
    assert!(text.contains("released 172.17.0.2 on bridge"), "{text}");
    host.assert_clean();
}

#[test]
fn publish_all_picks_a_random_port_for_each_exposed_one() {
    let host = Host::new();
    let fx = rootfs();
    // One connection, then the container exits and the lab tears down.
    let server = "echo ready; nc -l -p 80 -e echo exposed";
    let c = Running::start(host.lab05(
        &fx,
        &["--bridge", &bridge(4), "--expose", "80", "-P"],
        &["sh", "-c", server],
    ));
    c.until("ready");
    // The lab prints `80/tcp -> 0.0.0.0:PORT`, as `docker port` does.
    let stderr = c.stderr();
    let port: u16 = stderr
        .lines()
        .find_map(|l| l.strip_prefix("80/tcp -> 0.0.0.0:"))
        .unwrap_or_else(|| panic!("no port mapping in {stderr:?}"))
        .parse()
        .unwrap();
    assert!(port >= 1024, "{port}");
    assert_eq!(fetch(&host, (Ipv4Addr::LOCALHOST, port)), "exposed\n");
    assert_eq!(c.finish(), 0);
    host.assert_clean();
}

#[test]
fn twenty_concurrent_containers_get_twenty_addresses() {
    let host = Host::new();
    let fx = rootfs();
    let br = bridge(5);
    let containers: Vec<Running> = (0..20)
        .map(|_| {
            Running::start(host.lab05(
                &fx,
                &["--bridge", &br],
                &[
                    "sh",
                    "-c",
                    "ip -4 -o addr show eth0; echo ready; read x || true",
                ],
            ))
        })
        .collect();
    let mut ips = Vec::new();
    for c in &containers {
        let lines = c.until("ready");
        let ip = lines[0]
            .split_whitespace()
            .nth(3)
            .unwrap_or_else(|| panic!("{lines:?}"))
            .to_string();
        ips.push(ip);
    }
    let leases = host.leases();
    assert_eq!(leases.len(), 20, "{leases:?}");
    let mut distinct = ips.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 20, "{ips:?}");
    for c in containers {
        assert_eq!(c.finish(), 0);
    }
    host.assert_clean();
}

#[test]
fn after_a_crash_gc_releases_the_lease_the_veth_and_the_rules() {
    let host = Host::new();
    let fx = rootfs();
    let br = bridge(6);
    let mut c = Running::start(host.lab05(
        &fx,
        &["--bridge", &br, "-p", "127.0.0.1:9090:90/udp"],
        &["sh", "-c", "echo ready; read x || true"],
    ));
    c.until("ready");
    let (links, rules, files) = host.leftovers();
    assert!(links.contains(&br), "{links}");
    assert!(links.contains("dyv"), "{links}");
    assert!(
        rules.iter().any(|r| r.contains("-d 127.0.0.1/32 -p udp")),
        "{rules:#?}"
    );
    assert_eq!(files.len(), 1);
    // SIGKILL: no teardown runs; the container dies with the lab
    // (PR_SET_PDEATHSIG), and its namespace with it.
    let pids = host.lease_pids();
    nix::sys::signal::kill(Pid::from_raw(c.child.id() as i32), Signal::SIGKILL).unwrap();
    c.child.wait().unwrap();
    let (_, rules, files) = host.leftovers();
    assert!(!rules.is_empty() && files.len() == 1, "nothing to collect?");
    let text = host.gc_after_kill(&pids);
    assert!(text.contains("released 172.17.0.2 on bridge"), "{text}");
    host.assert_clean();
}

#[test]
fn network_mode_none_has_only_loopback() {
    let host = Host::new();
    let fx = rootfs();
    let report = probe(&host, &fx, &["--network", "none"]);
    assert_eq!(interface_names(&report), ["lo"]);
    assert_eq!(addresses(&report, "lo")[0], "127.0.0.1/8");
    let hosts = std::fs::read_to_string(fx.path().join("etc/hosts")).unwrap();
    assert!(hosts.starts_with("127.0.0.1\tlocalhost\n"), "{hosts}");
    host.assert_clean();
}

#[test]
fn network_mode_host_shares_the_hosts_namespace() {
    let host = Host::new();
    let fx = rootfs();
    let d = format!("dy{}d1", std::process::id() % 1000);
    host.sh(&format!("ip link add {d} type veth peer name {d}p"));
    let report = probe(&host, &fx, &["--network", "host", "--no-user"]);
    let holder_ns = std::fs::metadata(format!("/proc/{}/ns/net", host.pid())).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(report["namespaces"]["net"], holder_ns.ino());
    assert_eq!(
        interface_names(&report),
        [d.clone(), format!("{d}p"), "lo".into()]
    );
    host.sh(&format!("ip link del {d}"));
    host.assert_clean();
}

#[test]
fn network_mode_container_joins_another_containers_namespace() {
    let host = Host::new();
    let (fx_a, fx_b) = (rootfs(), rootfs());
    let br = bridge(7);
    let server = "echo ready; while :; do nc -l -p 8000 -e echo from-a; done";
    let a = Running::start(host.lab05(&fx_a, &["--bridge", &br], &["sh", "-c", server]));
    a.until("ready");
    let leases = host.leases();
    let pid = &leases[0][4];
    let b_ns = format!("container:{pid}");
    let report = probe(&host, &fx_b, &["--network", &b_ns]);
    let a_ns = std::fs::metadata(format!("/proc/{pid}/ns/net")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(report["namespaces"]["net"], a_ns.ino());
    assert_eq!(addresses(&report, "eth0"), ["172.17.0.2/16"]);
    // The same localhost: b reaches a's server on 127.0.0.1.
    let out = host
        .lab05(&fx_b, &["--network", &b_ns], &["nc", "127.0.0.1", "8000"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(stdout(&out), "from-a\n");
    // No second lease: b is not on the network, a is.
    assert_eq!(host.leases().len(), 1);
    let pids = host.lease_pids();
    drop(a);
    host.gc_after_kill(&pids);
    host.assert_clean();
}

/// `lab05-netns-veth SUBCOMMAND ARGS` in the throwaway host.
fn lab05_sub(host: &Host, args: &[&str]) -> Output {
    host.command(bin("lab05-netns-veth"))
        .args(args)
        .output()
        .expect("running lab05-netns-veth")
}

#[test]
fn created_networks_persist_isolate_connect_and_refuse_rm_while_in_use() {
    let host = Host::new();
    let (fx_a, fx_b) = (rootfs(), rootfs());
    let tag = std::process::id() % 1000;
    let (front, back) = (format!("front{tag}"), format!("back{tag}"));
    let (br_front, br_back) = (bridge(7), bridge(8));
    // A subnet, a gateway that is not the first address, an MTU.
    stdout(&lab05_sub(
        &host,
        &[
            "create",
            &front,
            "--subnet",
            "10.123.0.0/24",
            "--gateway",
            "10.123.0.254",
            "--bridge",
            &br_front,
            "--mtu",
            "1400",
        ],
    ));
    stdout(&lab05_sub(
        &host,
        &[
            "create",
            &back,
            "--subnet",
            "10.124.0.0/24",
            "--bridge",
            &br_back,
        ],
    ));
    let link = host.sh(&format!("ip -o link show {br_front}"));
    assert!(link.contains("mtu 1400"), "{link}");
    let addr = host.sh(&format!("ip -o -4 addr show {br_front}"));
    assert!(addr.contains("10.123.0.254/24"), "{addr}");
    assert!(
        lab05_sub(&host, &["create", &front]).status.code() == Some(125),
        "a second network of the same name"
    );

    // alpha on front: its address, route, MTU, resolv.conf and extra host.
    let mut a = Running::start(host.lab05(
        &fx_a,
        &[
            "--network",
            &front,
            "--name",
            "alpha",
            "--network-alias",
            "web",
            "--dns",
            "10.0.0.9",
            "--dns-option",
            "ndots:2",
            "--add-host",
            "gw:host-gateway",
        ],
        &[
            "sh",
            "-c",
            "ip -o -4 addr show eth0 | grep -o '10.123.0.[0-9]*/24'; \
             ip route | grep -o 'default via [0-9.]*'; \
             ip -o link show eth0 | grep -o 'mtu [0-9]*'; \
             grep -v '^#' /etc/resolv.conf; grep gw /etc/hosts; echo ready; read x; \
             ip -o -4 addr show eth1 | grep -o '10.124.0.[0-9]*/24'; echo step; read x; \
             ip link show eth1 >/dev/null 2>&1 || echo no-eth1; echo done",
        ],
    ));
    assert_eq!(
        a.until("ready"),
        [
            "10.123.0.1/24",
            "default via 10.123.0.254",
            "mtu 1400",
            "nameserver 10.0.0.9",
            "options ndots:2",
            "10.123.0.254\tgw",
            "ready"
        ],
        "stderr: {}",
        a.stderr()
    );
    // In use: rm refuses, and leaves the network as it was.
    let rm = lab05_sub(&host, &["rm", &front]);
    assert_eq!(rm.status.code(), Some(125));
    assert!(
        String::from_utf8_lossy(&rm.stderr).contains("has active endpoints"),
        "{rm:?}"
    );
    host.sh(&format!("ip link show {br_front}"));

    // beta on back cannot reach alpha on front, even by address: the
    // isolation rule drops what is routed between the two bridges.
    let mut b = Running::start(host.lab05(
        &fx_b,
        &["--network", &back, "--name", "beta"],
        &[
            "sh",
            "-c",
            "ping -c1 -W2 10.123.0.1 >/dev/null && echo beta-reached-front; echo ready; \
             read x; ping -c1 -W2 api >/dev/null && echo beta-pinged-api; echo done",
        ],
    ));
    assert_eq!(b.until("ready"), ["ready"], "stderr: {}", b.stderr());
    let drops = host.sh(&format!(
        "iptables -t mangle -L FORWARD -v -n -x | grep DROP | grep {br_front} | awk '{{print $1}}'"
    ));
    assert_ne!(drops.trim(), "0", "the isolation rule saw no packet");

    // connect: alpha gets eth1 on back, with the alias api; each side's
    // hosts file now names the other.
    let alpha_pid = host
        .leases()
        .into_iter()
        .find(|l| l.get(5).is_some_and(|n| n == "alpha"))
        .expect("alpha's lease")[4]
        .clone();
    let connected = stdout(&lab05_sub(
        &host,
        &["connect", &back, &alpha_pid, "--alias", "api"],
    ));
    assert!(connected.contains(" eth1 10.124.0."), "{connected}");
    let hosts_a = std::fs::read_to_string(fx_a.path().join("etc/hosts")).unwrap();
    assert!(hosts_a.contains("\tbeta\n"), "{hosts_a}");
    let hosts_b = std::fs::read_to_string(fx_b.path().join("etc/hosts")).unwrap();
    assert!(hosts_b.contains("alpha api"), "{hosts_b}");
    b.send("go");
    assert_eq!(
        b.until("done"),
        ["beta-pinged-api", "done"],
        "stderr: {}",
        b.stderr()
    );
    assert_eq!(b.finish(), 0);
    a.send("go");
    let seen = a.until("step");
    assert!(seen[0].starts_with("10.124.0."), "{seen:?}");

    // disconnect: eth1 is gone.
    stdout(&lab05_sub(&host, &["disconnect", &back, &alpha_pid]));
    a.send("go");
    assert_eq!(a.until("done"), ["no-eth1", "done"]);
    assert_eq!(a.finish(), 0);

    // Both networks outlive their containers, until rm.
    let (links, _, files) = host.leftovers();
    assert!(
        links.contains(&br_front) && links.contains(&br_back),
        "{links}"
    );
    assert_eq!(files.len(), 2, "{files:?}");
    stdout(&lab05_sub(&host, &["rm", &front]));
    stdout(&lab05_sub(&host, &["rm", &back]));
    host.assert_clean();
}

#[test]
fn an_internal_network_has_no_way_out() {
    let host = Host::new();
    let fx = rootfs();
    let net = format!("int{}", std::process::id() % 1000);
    stdout(&lab05_sub(
        &host,
        &["create", &net, "--internal", "--bridge", &bridge(9)],
    ));
    // An "uplink" with an address the container would otherwise reach
    // through its gateway.
    host.sh(
        "ip link add dyup0 type veth peer name dyup1 && ip addr add 192.0.2.1/24 dev dyup0 \
         && ip link set dyup0 up && ip link set dyup1 up",
    );
    let out = stdout(&host.lab05(
        &fx,
        &["--network", &net],
        &[
            "sh",
            "-c",
            "ip route | grep -c default; ping -c1 -W1 192.0.2.1 >/dev/null 2>&1 || echo unreachable",
        ],
    ).output().unwrap());
    assert_eq!(out, "0\nunreachable\n");
    host.sh("ip link del dyup0");
    stdout(&lab05_sub(&host, &["rm", &net]));
    host.assert_clean();
}

#[test]
fn the_default_network_is_kept_and_made_again_where_its_bridge_is_gone() {
    let host = Host::new();
    let fx = rootfs();
    let br = bridge(10);
    let report = probe(&host, &fx, &["--bridge", &br]);
    assert_eq!(addresses(&report, "eth0"), ["172.17.0.2/16"], "{report:#}");
    // Kept after its container, as docker0: the bridge and its rules.
    host.assert_clean();
    let mut rules = host.leftovers().1;
    rules.sort();
    assert!(rules.iter().any(|r| r.contains("MASQUERADE")), "{rules:#?}");

    // Someone deletes the bridge: the next container finds it missing (one
    // netlink request) and makes it again, with its rules once, not twice.
    // The first container's address is free again: its veth is gone.
    host.sh(&format!("ip link del {br}"));
    let report = probe(&host, &fx, &["--bridge", &br]);
    assert_eq!(addresses(&report, "eth0"), ["172.17.0.2/16"], "{report:#}");
    host.assert_clean();
    let mut again = host.leftovers().1;
    again.sort();
    assert_eq!(again, rules);

    // The same state directory, used from another namespace (as after a
    // reboot): the network is adopted and made there.
    let other = Host::new();
    let report = stdout(
        &other
            .lab05(&fx, &["--bridge", &br], &["/bin/probe"])
            .env("DOCKYARD_NET_STATE", host.state.path())
            .output()
            .unwrap(),
    );
    let report: Value = serde_json::from_str(&report).expect("probe JSON");
    assert_eq!(addresses(&report, "eth0"), ["172.17.0.2/16"], "{report:#}");
    assert!(other.sh("ip -o link show").contains(&br));
    let mut there: Vec<String> = other
        .sh("iptables-save")
        .lines()
        .filter(|l| l.starts_with("-A"))
        .map(String::from)
        .collect();
    there.sort();
    assert_eq!(there, rules);

    // Back in the first namespace, whose bridge of that name is still
    // there: the record is the other namespace's now, and that bridge is
    // not its own to use. Refused, rather than two networks on one bridge.
    let out = host
        .lab05(&fx, &["--bridge", &br], &["true"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("use another state directory for each namespace"),
        "{stderr}"
    );
}

#[test]
fn an_address_comes_back_only_once_its_old_veth_is_gone() {
    let host = Host::new();
    let (fx_a, fx_b) = (rootfs(), rootfs());
    let br = bridge(11);
    let wait = &["sh", "-c", "echo ready; read x || true"];
    let a = Running::start(host.lab05(&fx_a, &["--bridge", &br], wait));
    a.until("ready");
    let pid = host.lease_pids()[0];
    // b joins a's network namespace, and keeps it alive after a exits.
    let ns = format!("container:{pid}");
    let b = Running::start(host.lab05(&fx_b, &["--network", &ns], wait));
    b.until("ready");
    assert_eq!(a.finish(), 0);
    // a's lease is gone, but its veth is not (b holds the namespace), and
    // its address is not handed out while that veth lives.
    assert!(host.leases().is_empty());
    assert!(host.sh("ip -o link show").contains(&format!("dyv{pid}")));
    let report = probe(&host, &fx_a, &["--bridge", &br]);
    assert_eq!(addresses(&report, "eth0"), ["172.17.0.3/16"], "{report:#}");
    // b leaves: the namespace goes, the kernel deletes the veth, and the
    // address is free again.
    assert_eq!(b.finish(), 0);
    host.assert_clean();
    let report = probe(&host, &fx_a, &["--bridge", &br]);
    assert_eq!(addresses(&report, "eth0"), ["172.17.0.2/16"], "{report:#}");
    host.assert_clean();
}
