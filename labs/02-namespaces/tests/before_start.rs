//! The `before_start` hook, through the library: lab 03 relies on it running
//! after the child exists and before the command starts. Needs root and the
//! base image (scripts/setup --no-run); skipped when not root.

use std::path::{Path, PathBuf};
use std::process::Command;

use lab02_namespaces::{spawn, ExitStatus, Spec};
use nix::sys::signal::kill;
use nix::unistd::geteuid;

/// A private, world-searchable copy of the base rootfs (root inside the user
/// namespace is uid 100000 on the host and must reach it).
fn rootfs_copy() -> (tempfile::TempDir, PathBuf) {
    let base = std::env::var_os("DOCKYARD_BASE_ROOTFS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../images/busybox/rootfs")
        });
    assert!(
        base.join("bin/probe").exists(),
        "base image {} is missing: run scripts/setup --no-run",
        base.display()
    );
    let dir = tempfile::Builder::new()
        .prefix("dockyard-lab02-")
        .tempdir()
        .unwrap();
    let rootfs = dir.path().join("rootfs");
    let ok = Command::new("cp")
        .arg("-a")
        .arg(&base)
        .arg(&rootfs)
        .status()
        .unwrap();
    assert!(ok.success());
    Command::new("chmod")
        .arg("755")
        .arg(dir.path())
        .status()
        .unwrap();
    (dir, rootfs)
}

#[test]
fn before_start_runs_before_the_command_and_can_stop_it() {
    if !geteuid().is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let (_dir, rootfs) = rootfs_copy();
    let argv = ["/bin/sh", "-c", "test -e /tmp/hook-ran"]
        .map(Into::into)
        .to_vec();
    let spec = Spec::new(&rootfs, argv);

    let container = spawn(&spec, |pid| {
        // The child exists, in its namespaces, but has not exec'd: it is
        // still a copy of this test program, waiting for the go-ahead.
        let exe = std::fs::read_link(format!("/proc/{pid}/exe"))?;
        assert_eq!(exe, std::env::current_exe()?);
        std::fs::write(rootfs.join("tmp/hook-ran"), pid.to_string())?;
        Ok(())
    })
    .expect("spawn");
    // The command found the file: the hook ran first.
    assert_eq!(container.wait().unwrap(), ExitStatus::Exited(0));

    // A failing hook stops the container before the command runs, and
    // leaves no process behind.
    let mut seen = None;
    let err = spawn(&spec, |pid| {
        seen = Some(pid);
        anyhow::bail!("no cgroup for you")
    })
    .unwrap_err();
    assert!(format!("{err:#}").contains("no cgroup for you"), "{err:#}");
    let pid = seen.expect("the hook ran");
    assert_eq!(
        kill(pid, None),
        Err(nix::errno::Errno::ESRCH),
        "child left behind"
    );
}

#[test]
fn stdio_fds_become_the_commands_stdin_stdout_and_stderr() {
    use std::io::Read;
    use std::os::fd::AsRawFd;
    if !geteuid().is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let (_dir, rootfs) = rootfs_copy();
    let argv = ["/bin/sh", "-c", "echo out; echo err >&2"]
        .map(Into::into)
        .to_vec();
    let mut spec = Spec::new(&rootfs, argv);
    let devnull = std::fs::File::open("/dev/null").unwrap();
    let (mut out_r, out_w) = std::io::pipe().unwrap();
    let (mut err_r, err_w) = std::io::pipe().unwrap();
    spec.stdio = Some([devnull.as_raw_fd(), out_w.as_raw_fd(), err_w.as_raw_fd()]);
    let container = spawn(&spec, |_| Ok(())).unwrap();
    // Our copies of the write ends must go, or the reads below never see EOF.
    drop((out_w, err_w));
    let (mut out, mut err) = (String::new(), String::new());
    out_r.read_to_string(&mut out).unwrap();
    err_r.read_to_string(&mut err).unwrap();
    assert_eq!(container.wait().unwrap(), ExitStatus::Exited(0));
    assert_eq!(out, "out\n");
    assert_eq!(err, "err\n");
}

#[test]
fn the_working_directory_is_made_and_entered_inside_the_new_root() {
    use std::io::Read;
    use std::os::fd::AsRawFd;
    if !geteuid().is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let (_dir, rootfs) = rootfs_copy();
    let mut spec = Spec::new(&rootfs, ["/bin/pwd"].map(Into::into).to_vec());
    spec.cwd = Some("/srv/app".into());
    // Without a user namespace, as the engine runs containers: root inside a
    // user namespace could not create directories the host's root owns.
    spec.namespaces -= nix::sched::CloneFlags::CLONE_NEWUSER;
    let devnull = std::fs::File::open("/dev/null").unwrap();
    let (mut out_r, out_w) = std::io::pipe().unwrap();
    spec.stdio = Some([devnull.as_raw_fd(), out_w.as_raw_fd(), out_w.as_raw_fd()]);
    let container = spawn(&spec, |_| Ok(())).unwrap();
    drop(out_w);
    let mut out = String::new();
    out_r.read_to_string(&mut out).unwrap();
    assert_eq!(container.wait().unwrap(), ExitStatus::Exited(0), "{out}");
    assert_eq!(out, "/srv/app\n");
    // Made inside the container's root, so it is in the rootfs on the host.
    assert!(rootfs.join("srv/app").is_dir());
}

#[test]
fn binds_land_inside_the_root_even_through_an_image_symlink() {
    use lab02_namespaces::Bind;
    use std::io::Read;
    use std::os::fd::AsRawFd;
    if !geteuid().is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let (dir, rootfs) = rootfs_copy();
    let host = dir.path().join("host-data");
    std::fs::create_dir(&host).unwrap();
    std::fs::write(host.join("hello"), "from the host\n").unwrap();
    // A hostile image: /sneaky points at the host's /tmp if followed on the host.
    std::os::unix::fs::symlink("/../../../../tmp", rootfs.join("sneaky")).unwrap();
    let victim = Path::new("/tmp").join(format!("dockyard-bind-victim-{}", std::process::id()));
    assert!(!victim.exists());

    let script = "cat /data/hello; echo x > /data/w && echo rw-ok; cat /ro/hello; echo x > /ro/w || echo ro-refused; ls -d /sneaky/victim";
    let mut spec = Spec::new(&rootfs, ["/bin/sh", "-c", script].map(Into::into).to_vec());
    spec.namespaces -= nix::sched::CloneFlags::CLONE_NEWUSER;
    spec.binds = vec![
        Bind {
            source: host.clone(),
            target: "/data".into(),
            read_only: false,
        },
        Bind {
            source: host.clone(),
            target: "/ro".into(),
            read_only: true,
        },
        Bind {
            source: host.clone(),
            target: format!("/sneaky/{}", victim.file_name().unwrap().to_str().unwrap()).into(),
            read_only: true,
        },
    ];
    let devnull = std::fs::File::open("/dev/null").unwrap();
    let (mut out_r, out_w) = std::io::pipe().unwrap();
    spec.stdio = Some([devnull.as_raw_fd(), out_w.as_raw_fd(), out_w.as_raw_fd()]);
    let container = spawn(&spec, |_| Ok(())).unwrap();
    drop(out_w);
    let mut out = String::new();
    out_r.read_to_string(&mut out).unwrap();
    container.wait().unwrap();
    assert!(
        out.contains("from the host\nrw-ok\nfrom the host\n"),
        "{out}"
    );
    assert!(out.contains("ro-refused"), "{out}");
    assert_eq!(
        std::fs::read_to_string(host.join("w")).unwrap(),
        "x\n",
        "rw bind did not reach the host dir"
    );
    // The symlinked target was created inside the rootfs, never on the host.
    assert!(
        !victim.exists(),
        "a bind target was created on the host through an image symlink"
    );
    assert!(rootfs
        .join("tmp")
        .join(victim.file_name().unwrap())
        .is_dir());
}
