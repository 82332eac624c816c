//! `dockyard-monitor`: what stays behind for each running container.
//!
//! `dockyard run -d` forks a monitor, which mounts the root, makes the
//! cgroup, spawns the container and wires its network as a copy of the big
//! `dockyard` program. Then it `execve(2)`s this small one, handing it the
//! descriptors it needs by number, and the big program's pages go away.
//! This is podman's split too: podman sets up, `conmon` watches. The PID
//! stays the same (the state file's `monitor_pid` stays right) and the
//! container stays our child, so we can `waitpid(2)` for it.
//!
//! ```text
//! dockyard-monitor --dir DIR --pid PID --out 5:stdout --out 6:stderr
//!                  [--input FD] [--tty FD] [--listener FD] [--client FD]...
//!                  [--log-max-size BYTES] [--log-max-file N] [--health FD]
//!                  --exe FD -- DOCKYARD-ARGV...
//! ```
//!
//! When the container has exited and its output is drained, we run the big
//! program again, the sealed copy the setup ran from (`--exe`, see lab 02's
//! `ensure_sealed_binary`), with `DOCKYARD-ARGV` and the exit code appended
//! (`dockyard __monitor-exited ... ID CODE`): it tears the network and the
//! cgroup down, records the exit, and restarts the container or removes it
//! as its policy says, exec'ing this program again for the next run.
//!
//! Health checks are not run here: they exec into the container, which is the
//! big program's work, so a helper process of the big program runs them, and
//! only containers with a HEALTHCHECK pay for it. (conmon leaves health
//! checks to podman, too.) `--health` is our end of a pipe to that helper:
//! when we close it, at the exec, the helper stops.

use std::ffi::{CString, OsString};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;

use dockyard_monitor::attach::Client;
use dockyard_monitor::jsonfile::{Rotation, Writer};
use dockyard_monitor::pump::{pump, Streams};
use nix::unistd::Pid;

/// The command line, parsed.
#[derive(Default)]
struct Args {
    dir: PathBuf,
    pid: i32,
    outputs: Vec<(RawFd, &'static str)>,
    input: Option<RawFd>,
    tty: Option<RawFd>,
    listener: Option<RawFd>,
    clients: Vec<RawFd>,
    rotation: Rotation,
    health: Option<RawFd>,
    exe: RawFd,
    then: Vec<OsString>,
}

fn parse(mut argv: impl Iterator<Item = OsString>) -> Result<Args, String> {
    let mut a = Args {
        exe: -1,
        ..Default::default()
    };
    let fd = |v: &str| v.parse::<RawFd>().ok().filter(|fd| *fd > 2);
    while let Some(flag) = argv.next() {
        if flag == "--" {
            a.then = argv.collect();
            break;
        }
        let flag = flag.to_string_lossy().into_owned();
        let value = argv.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let text = value.to_string_lossy().into_owned();
        let bad = || format!("{flag} {text}: not valid");
        match flag.as_str() {
            "--dir" => a.dir = PathBuf::from(value),
            "--pid" => a.pid = text.parse().map_err(|_| bad())?,
            "--out" => {
                let (n, stream) = text.split_once(':').ok_or_else(bad)?;
                let stream = match stream {
                    "stdout" => "stdout",
                    "stderr" => "stderr",
                    _ => return Err(bad()),
                };
                a.outputs.push((fd(n).ok_or_else(bad)?, stream));
            }
            "--input" => a.input = Some(fd(&text).ok_or_else(bad)?),
            "--tty" => a.tty = Some(fd(&text).ok_or_else(bad)?),
            "--listener" => a.listener = Some(fd(&text).ok_or_else(bad)?),
            "--client" => a.clients.push(fd(&text).ok_or_else(bad)?),
            "--health" => a.health = Some(fd(&text).ok_or_else(bad)?),
            "--exe" => a.exe = fd(&text).ok_or_else(bad)?,
            "--log-max-size" => a.rotation.max_size = Some(text.parse().map_err(|_| bad())?),
            "--log-max-file" => a.rotation.max_file = text.parse().map_err(|_| bad())?,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if a.pid <= 0 || a.exe < 0 || a.then.is_empty() || a.dir.as_os_str().is_empty() {
        return Err(
            "usage: dockyard-monitor --dir DIR --pid PID [--out FD:STREAM]... \
                    --exe FD -- DOCKYARD-ARGV..."
                .into(),
        );
    }
    Ok(a)
}

impl Args {
    /// Every descriptor we were handed (the pty master is also an output).
    fn fds(&self) -> Vec<RawFd> {
        let mut fds: Vec<RawFd> = self.outputs.iter().map(|(fd, _)| *fd).collect();
        fds.extend(self.input.iter().chain(&self.listener).chain(&self.health));
        fds.extend(&self.clients);
        fds.push(self.exe);
        fds
    }
}

/// Close every descriptor above 2 that we were not handed, and mark the
/// ones we were close-on-exec: the setup cleared that flag only so that
/// they would reach us, and none of them may reach the next program (above
/// all the health pipe, whose end tells the helper to stop).
fn tidy_descriptors(keep: &[RawFd]) -> Result<(), String> {
    let open: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")
        .map_err(|e| format!("listing /proc/self/fd: {e}"))?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    for fd in open.into_iter().filter(|fd| *fd > 2) {
        if keep.contains(&fd) {
            // SAFETY: setting a flag on a descriptor we were handed.
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        } else {
            // SAFETY: a descriptor nobody in this program uses (or the one
            // the listing used, closed already: EBADF, harmless).
            unsafe { libc::close(fd) };
        }
    }
    for &fd in keep {
        // SAFETY: F_GETFD only reads the descriptor's flags.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
            return Err(format!("descriptor {fd} was not handed to us"));
        }
    }
    Ok(())
}

fn main() {
    let args = match parse(std::env::args_os().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("dockyard-monitor: {e}");
            std::process::exit(125);
        }
    };
    if let Err(e) = tidy_descriptors(&args.fds()) {
        eprintln!("dockyard-monitor: {e}");
        std::process::exit(125);
    }
    let code = watch(&args).unwrap_or_else(|e| {
        eprintln!("dockyard-monitor: {e}");
        255
    });
    // The helper's pipe closes now, so it stops while we hand over.
    if let Some(fd) = args.health {
        // SAFETY: our own descriptor, used by nothing else from here on.
        unsafe { libc::close(fd) };
    }
    let e = exec_dockyard(&args, code);
    eprintln!("dockyard-monitor: running dockyard after the exit (code {code}): {e}");
    std::process::exit(1);
}

/// Copy the container's output to its log and attached clients until it
/// exits; its exit code (128+N for signal N).
fn watch(args: &Args) -> std::io::Result<i32> {
    // SAFETY (every from_raw_fd below): descriptors handed to us for this
    // use alone, each taken once.
    let own = |fd: RawFd| unsafe { OwnedFd::from_raw_fd(fd) };
    let streams = Streams {
        outputs: args.outputs.iter().map(|&(fd, s)| (own(fd), s)).collect(),
        input: args.input.map(own),
        own_stdin: false,
        tty: args.tty,
        listener: args.listener.map(|fd| UnixListener::from(own(fd))),
        clients: args
            .clients
            .iter()
            .filter_map(|&fd| Client::new(UnixStream::from(own(fd))))
            .collect(),
    };
    let mut log = Writer::open(&args.dir, args.rotation)?;
    trim_code();
    pump(Pid::from_raw(args.pid), streams, Some(&mut log), false)
}

/// Keep resident only the code the steady state runs.
///
/// When a process touches a page of a file it maps, the kernel maps the
/// pages around it too, 64 KiB in all ("fault-around": cheap, and usually
/// what a program wants next). Start-up code, ours and the C library's and
/// the dynamic loader's, is spread thin, so by the time the container runs
/// a small program holds a megabyte or more of resident code it will never
/// run again. For a process that stays as long as its container, once per
/// container, that is the bulk of what it holds.
///
/// So each mapping of code (`r-xp`, from a file) is given `MADV_DONTNEED`
/// (`madvise(2)`), which unmaps its pages: the poll loop then maps back
/// what it runs, from the page cache, 64 KiB at a time as before. Code is
/// never written, so nothing is lost. Data mappings are left alone, the
/// read-only ones too: they may hold pointers the loader relocated (RELRO),
/// which DONTNEED would throw away.
fn trim_code() {
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return;
    };
    for line in maps.lines() {
        // "start-end perms offset dev inode path"
        let mut f = line.split_ascii_whitespace();
        let (Some(range), Some(perms)) = (f.next(), f.next()) else {
            continue;
        };
        let file = f.nth(3).is_some_and(|path| path.starts_with('/'));
        let Some((start, end)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (
            usize::from_str_radix(start, 16),
            usize::from_str_radix(end, 16),
        ) else {
            continue;
        };
        if file && perms == "r-xp" {
            // SAFETY: whole mappings of unwritten code, which the kernel
            // maps back from the file on the next access.
            unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
        }
    }
}

/// fexecve(2) the sealed dockyard with `then` and `code`; returns only on
/// failure.
fn exec_dockyard(args: &Args, code: i32) -> std::io::Error {
    let c = |s: &std::ffi::OsStr| CString::new(s.as_bytes());
    let mut argv: Vec<CString> = match args.then.iter().map(|a| c(a)).collect() {
        Ok(v) => v,
        Err(e) => return std::io::Error::other(e),
    };
    argv.push(CString::new(code.to_string()).unwrap_or_default());
    let env: Vec<CString> = std::env::vars_os()
        .filter_map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            CString::new(kv).ok()
        })
        .collect();
    // SAFETY: the descriptor was handed to us as the binary to run.
    let exe = unsafe { std::os::fd::BorrowedFd::borrow_raw(args.exe) };
    let Err(e) = nix::unistd::fexecve(exe, &argv, &env);
    std::io::Error::from(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Result<Args, String> {
        parse(s.split(' ').map(OsString::from))
    }

    #[test]
    fn the_command_line_names_every_descriptor() {
        let a = args(
            "--dir /d --pid 42 --out 5:stdout --out 6:stderr --input 7 --client 9 \
             --log-max-size 1000 --log-max-file 3 --exe 10 -- dockyard __monitor-exited ID",
        )
        .unwrap();
        assert_eq!(a.pid, 42);
        assert_eq!(a.outputs, [(5, "stdout"), (6, "stderr")]);
        assert_eq!(a.fds(), [5, 6, 7, 9, 10]);
        assert_eq!(a.rotation.max_size, Some(1000));
        assert_eq!(a.then, ["dockyard", "__monitor-exited", "ID"]);
        // Never our own stdio, never a stream we do not know, never without
        // the program to hand back to.
        assert!(args("--dir /d --pid 42 --out 1:stdout --exe 10 -- x").is_err());
        assert!(args("--dir /d --pid 42 --out 5:stdin --exe 10 -- x").is_err());
        assert!(args("--dir /d --pid 42 --out 5:stdout -- x").is_err());
    }
}
