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
