//! The real docker CLI as the oracle of dockyard's output: one store, read
//! through `dockyard system service` by `docker -H unix://...` and by
//! `dockyard` itself, must print the same tables, column for column (IDs
//! and times are the same store's, so nothing needs normalising but the
//! relative times, which move between two commands).
//!
//! `Service` here is also what the events tests start.

use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use dockyard_e2e::dockyard::{text, Dockyard as Dy};

pub const DOCKER: &str = "/usr/local/bin/docker";

/// A running `dockyard system service` over a test's data root, in a
/// temporary directory of its own; killed on drop, even by panic.
pub struct Service {
    child: Child,
    dir: tempfile::TempDir,
    pub sock: PathBuf,
}

impl Service {
    pub fn start(dy: &Dy) -> Service {
        let dir = tempfile::Builder::new()
            .prefix("dockyard-oracle-")
            .tempdir()
            .unwrap();
        let sock = dir.path().join("api.sock");
        let host = format!("unix://{}", sock.display());
        let child = dy
            .command(&["system", "service", "--host", &host, "--time", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting dockyard system service");
        let svc = Service { child, dir, sock };
        let deadline = Instant::now() + Duration::from_secs(10);
        while UnixStream::connect(&svc.sock).is_err() {
            assert!(Instant::now() < deadline, "the service never listened");
            std::thread::sleep(Duration::from_millis(20));
        }
        svc
    }

    /// The docker CLI against this service (its own config dir: no user's
    /// contexts or credentials).
    pub fn docker_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(DOCKER);
        c.arg("-H")
            .arg(format!("unix://{}", self.sock.display()))
            .args(args)
            .env("DOCKER_CONFIG", self.dir.path())
            .env_remove("DOCKER_HOST")
            .stdin(Stdio::null());
        c
    }

    pub fn docker(&self, args: &[&str]) -> Output {
        self.docker_cmd(args)
            .output()
            .expect("running the docker CLI")
    }

    pub fn docker_ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {args:?} failed ({:?}):\n{}{}",
            out.status,
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The commands whose output docker's CLI and dockyard must agree on.
const TABLES: &[&str] = &[
    "ps",
    "ps -a",
    "ps -a --no-trunc",
    "ps -aq",
    "ps -a --filter status=exited",
    "ps -a --filter name=^web$",
    "ps -n 2",
    "images",
    "images --no-trunc",
    "images -q",
    "network ls",
    "network ls --no-trunc",
    "network ls -q",
    "volume ls",
    "volume ls -q",
    "history busybox",
    "history --no-trunc busybox",
    "history -q busybox",
    "history app:2",
    "history app:3",
    "volume ls --format 'table {{.Name}}\\t{{.Labels}}'",
    "ps -a --format 'table {{.Names}}\\t{{.Image}}\\t{{.Ports}}'",
    "ps -a --format '{{.Names}} {{.CreatedAt}} {{.Size}}'",
    "images --format '{{.Repository}} {{.CreatedAt}}'",
    "port web",
    "port web 80",
    "port web 80/tcp",
    "port quiet",
    "ps -a --format json",
    "images --format json",
    "network ls --format json",
    "volume ls --format json",
    "images --digests",
    "ps -a -s",
    "ps -a --size --format 'table {{.Names}}\\t{{.Size}}'",
    "top web",
    "stats --no-stream",
    "stats --no-stream -a",
];

#[test]
fn oracle_docker_and_dockyard_print_the_same_tables_of_one_store() {
    let dy = Dy::new();
    let parent = format!("--cgroup-parent={}", dy.parent);
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("api.sock");
    // One store, made in a throwaway network namespace (`-p` and a user
    // network make bridges and NAT rules): running, created and exited
    // containers, a published port, a volume, a network, two tags and a
    // committed image. The service runs there too; each command goes to
    // docker and to dockyard back to back, again (up to 3 times) if a
    // relative time ticked between the two.
    let mut script = format!(
        r#"
        $D network create oranet >/dev/null
        $D run -d {parent} --name web -l tier=front -p 8080:80 -p 127.0.0.1:9090:90/udp busybox sleep 300 >/dev/null
        $D run -d {parent} --name quiet --network oranet -v oravol:/data busybox sleep 300 >/dev/null
        $D create {parent} --name made busybox echo hi >/dev/null
        $D run {parent} --name gone --network none busybox sh -c 'exit 3'
        $D volume create second >/dev/null
        $D tag busybox app:1
        $D commit -m 'a note' quiet app:2 >/dev/null
        $D commit made app:3 >/dev/null
        $D system service --host unix://{sock} --time 0 2>/dev/null & S=$!
        n=0; while [ ! -S {sock} ] && [ $n -lt 100 ]; do sleep 0.05; n=$((n+1)); done
        sleep 1.2
        export DOCKER_CONFIG={cfg}
        "#,
        sock = sock.display(),
        cfg = dir.path().display(),
    );
    for cmd in TABLES {
        script.push_str(&format!(
            r#"
        i=0; while :; do
            {docker} -H unix://{sock} {cmd} >{dir}/a 2>&1; $D {cmd} >{dir}/b 2>&1
            i=$((i+1)); cmp -s {dir}/a {dir}/b && break; [ $i -ge 3 ] && break; sleep 0.3
        done
        echo "@@@ {cmd}"; cat {dir}/a; echo "@@@"; cat {dir}/b
        "#,
            docker = DOCKER,
            sock = sock.display(),
            dir = dir.path().display(),
        ));
    }
    script.push_str(
        r#"
        kill $S
        $D rm -f web quiet made gone >/dev/null
        $D network rm oranet >/dev/null
        "#,
    );
    let out = super::networking::in_throwaway_netns(&dy, &script);
    let all = text(&out.stdout);
    assert!(out.status.success(), "{all}{}", text(&out.stderr));
    let sections: Vec<&str> = all.split("@@@ ").skip(1).collect();
    assert_eq!(sections.len(), TABLES.len(), "{all}{}", text(&out.stderr));
    // Relative times are taken a moment apart, by two programs, on a
    // loaded machine: "6 seconds ago" against "7 seconds ago" is the clock,
    // not a difference in rendering. (The loop above retries a few times;
    // this is what is left.)
    let seconds = regex_lite::Regex::new(r"\b\d+ seconds ago").unwrap();
    let norm = |s: &str| seconds.replace_all(s, "N seconds ago").into_owned();
    // `stats` measures twice, a moment apart: its numbers move (CPU %,
    // memory, I/O), and with them the column widths. What must agree is the
    // rest: the columns, their order, the units, the names.
    let number = regex_lite::Regex::new(r"\d+(\.\d+)?").unwrap();
    let gap = regex_lite::Regex::new(r" {2,}").unwrap();
    let numbers = |s: &str| {
        let s = number.replace_all(s, "N");
        gap.replace_all(&s, "  ").into_owned()
    };
    let mut differ = Vec::new();
    for s in sections {
        let (cmd, rest) = s.split_once('\n').unwrap();
        let (docker, ours) = rest.split_once("@@@\n").unwrap();
        let (mut docker, mut ours) = (norm(docker), norm(ours));
        if cmd.starts_with("stats") {
            (docker, ours) = (numbers(&docker), numbers(&ours));
        }
        // Two images made in the same second (here both at the epoch) have
        // no order: the service lists them in one order (by name), but
        // the docker CLI printed them either way round in different runs,
        // so it sorts again, not stably. Their order by time is checked
        // by the other image forms.
        if cmd == "images --format '{{.Repository}} {{.CreatedAt}}'" {
            let sorted = |s: &str| {
                let mut l: Vec<&str> = s.lines().collect();
                l.sort();
                l.join("\n") + "\n"
            };
            (docker, ours) = (sorted(&docker), sorted(&ours));
        }
        assert!(
            !docker.contains("Error") || cmd.starts_with("port"),
            "{cmd}: {docker}"
        );
        // Agreeing on nothing is no agreement: what docker's side must show.
        let must = match cmd {
            "ps -a -s" => "B (virtual ",
            "images --digests" => "DIGEST",
            "top web" => "sleep 300",
            "stats --no-stream" => "quiet",
            "stats --no-stream -a" => "gone",
            c if c.ends_with("--format json") => "\"",
            _ => "",
        };
        assert!(
            docker.contains(must),
            "`{cmd}`: {must:?} missing:\n{docker}"
        );
        if ours != docker {
            differ.push(format!(
                "`{cmd}`: dockyard and docker differ\n--- dockyard\n{ours}--- docker\n{docker}"
            ));
        }
    }
    assert!(differ.is_empty(), "{}", differ.join("\n"));
}

/// A `docker-registry` on 127.0.0.1 (a port of its own), stopped on drop.
struct Registry {
    child: Child,
    _dir: tempfile::TempDir,
    host: String,
}

impl Registry {
    fn start() -> Registry {
        let dir = tempfile::Builder::new()
            .prefix("dockyard-search-registry-")
            .tempdir()
            .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = format!(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        std::fs::write(dir.path().join("config.yml"), config).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry is missing: scripts/setup installs it");
        let reg = Registry {
            child,
            _dir: dir,
            host: format!("127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(&reg.host).is_err() {
            assert!(Instant::now() < deadline, "the registry did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        reg
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `search` against a registry's catalog: dockyard's table and docker's
/// (through the service's `GET /images/search`) agree, flag for flag; a
/// term without a registry host is Docker Hub's, refused offline before
/// any address is looked up.
#[test]
fn oracle_search_lists_a_registrys_catalog_as_docker_does() {
    let dy = Dy::new();
    let reg = Registry::start();
    let host = reg.host.clone();
    let mut pushed = String::new();
    for repo in ["busybox", "busy-app", "tools/busy", "other"] {
        let name = format!("{host}/{repo}:latest");
        dy.ok(&["tag", "busybox", &name]);
        pushed = dy.ok(&["push", &name]);
    }
    let svc = Service::start(&dy);
    // `images --digests`: a pushed repository's row shows the manifest
    // digest the registry answered; the local name has none.
    let digest = regex_lite::Regex::new(r"digest: (sha256:[0-9a-f]{64})")
        .unwrap()
        .captures(&pushed)
        .unwrap_or_else(|| panic!("no digest in the push's output:\n{pushed}"))[1]
        .to_string();
    for args in [
        &["images", "--digests"][..],
        &["images", "--format", "{{.Repository}} {{.Digest}}"][..],
    ] {
        let ours = dy.ok(args);
        // One image, five repositories: docker/cli lists an image's
        // repositories in Go's map order, which is random; the rows, not
        // their order, must agree.
        let sorted = |s: &str| {
            let mut l: Vec<String> = s.lines().map(str::to_string).collect();
            l.sort();
            l
        };
        assert_eq!(
            sorted(&ours),
            sorted(&svc.docker_ok(args)),
            "`{args:?}`: dockyard (left) and docker (right)"
        );
        let line = |repo: &str| {
            ours.lines()
                .find(|l| l.starts_with(&format!("{repo} ")))
                .unwrap_or_else(|| panic!("no {repo} in:\n{ours}"))
                .to_string()
        };
        assert!(line(&format!("{host}/other")).contains(&digest), "{ours}");
        assert!(line("busybox").contains("<none>"), "{ours}");
    }
    let term = format!("{host}/busy");
    let cases: Vec<Vec<String>> = [
        vec![],
        vec!["--no-trunc"],
        vec!["--limit", "2"],
        vec!["--format", "{{.Name}}: {{.StarCount}} {{.IsOfficial}}"],
        vec!["--format", "table {{.Name}}\t{{.IsOfficial}}"],
        vec!["--format", "json"],
        vec!["-f", "is-official=true"],
        vec!["-f", "is-official=false", "-f", "stars=0"],
        vec!["-f", "stars=1"],
    ]
    .iter()
    .map(|flags| {
        let mut a = vec!["search".to_string()];
        a.extend(flags.iter().map(|s| s.to_string()));
        a.push(term.clone());
        a
    })
    .collect();
    let mut outputs = Vec::new();
    for args in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let ours = dy.ok(&args);
        let docker = svc.docker_ok(&args);
        assert_eq!(
            ours, docker,
            "`{args:?}`: dockyard (left) and docker (right)"
        );
        outputs.push(ours);
    }
    // What the catalog holds, matched by name: three of four.
    assert_eq!(
        outputs[0],
        "NAME         DESCRIPTION   STARS     OFFICIAL\n\
         busy-app                   0         \n\
         busybox                    0         \n\
         tools/busy                 0         \n"
    );
    assert_eq!(outputs[2].lines().count(), 3, "{}", outputs[2]);
    assert_eq!(outputs[3], "busy-app: 0 \nbusybox: 0 \ntools/busy: 0 \n");
    assert!(
        outputs[5]
            .lines()
            .all(|l| l.contains("\"IsOfficial\":\"false\"")),
        "{}",
        outputs[5]
    );
    assert_eq!(outputs[6], "NAME      DESCRIPTION   STARS     OFFICIAL\n");
    assert_eq!(outputs[7], outputs[0]);
    // --limit out of the daemon's range, and a filter it does not know.
    for args in [
        vec!["search", "--limit", "101", term.as_str()],
        vec!["search", "-f", "color=red", term.as_str()],
    ] {
        let ours = dy.run(&args);
        let docker = svc.docker(&args);
        assert_eq!(ours.status.code(), Some(1));
        assert_eq!(text(&ours.stderr), text(&docker.stderr), "{args:?}");
    }
    // Docker Hub: a clear refusal, and no lookup of any name (strace sees
    // no socket to an internet address, the resolver's port 53 included).
    let trace = tempfile::NamedTempFile::new().unwrap();
    let plain = dy.command(&["search", "busybox"]);
    let mut cmd = Command::new("strace");
    cmd.args(["-f", "-e", "trace=connect,sendto,sendmsg", "-o"])
        .arg(trace.path())
        .arg(plain.get_program())
        .args(plain.get_args())
        .stdin(Stdio::null());
    for (k, v) in plain.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    let out = cmd.output().expect("strace");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let e = text(&out.stderr);
    assert!(
        e.starts_with(
            "Error response from daemon: searching Docker Hub for \"busybox\" needs the internet"
        ),
        "{e}"
    );
    let calls = std::fs::read_to_string(trace.path()).unwrap();
    assert!(
        !calls.contains("AF_INET") && !calls.contains("htons(53)"),
        "a network call:\n{calls}"
    );
    let docker = svc.docker(&["search", "busybox"]);
    assert_eq!(text(&docker.stderr), e);
}
