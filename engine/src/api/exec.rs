//! `docker exec` over the API: an exec instance is created, started
//! (hijacked like attach), and inspected for its exit code.
//!
//! ```text
//! POST /containers/web/exec {"Cmd":["echo","hi"],...} -> 201 {"Id": E}
//! POST /exec/E/start {"Detach":false,"Tty":false}    -> 101 UPGRADED, frames
//! GET  /exec/E/json                                   -> {"ExitCode":0,...}
//! ```
//!
//! The instance lives only in the service's memory, as in dockerd: it is a
//! request to run something, and its exit code once it ran. Like dockerd's,
//! instances are forgotten five minutes after they ended, or as soon as
//! their container is gone (see [`collect`]): a client that runs a health
//! probe by exec every second must not grow the service without end.
//!
//! The command is run by the CLI's own `dockyard exec` (the same lab 02
//! join, cgroup entry and security layer), spawned as a child process with
//! the service's global flags. That is a fork from a multi-threaded process,
//! but `std::process::Command` only makes async-signal-safe calls between
//! the fork and the exec of a fresh program (see the starter module for
//! why that matters), so, unlike a monitor that runs our Rust code after
//! the fork, it needs no trip through the starter.
//!
//! Its stdout and stderr are pipes whose bytes are framed for the client
//! (stream 1 and 2, the 8-byte header); with a TTY, its stdin is a
//! pseudo-terminal of our own (so that `dockyard exec -t` sees a terminal
//! to put in raw mode and to read the window size from), and its output
//! goes to the client raw. `resize` sets that terminal's size and sends
//! SIGWINCH, which `dockyard exec`'s pump passes on to the container's.
//! With a TTY, the instance's `DetachKeys` (ctrl-p,ctrl-q if none) end the
//! stream and leave the command running, as dockerd's (see [`copy_input`]).

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use serde_json::{json, Value};

use super::http::{self, Request, Response};
use super::routes::{BadRequest, Outcome, Reply};
use super::{lock, Service};
use dockyard::container::DetachKeys;
use dockyard::state::Status;

/// One exec instance.
#[derive(Clone)]
pub struct Instance {
    container: String,
    cmd: Vec<String>,
    env: Vec<String>,
    workdir: Option<String>,
    user: Option<String>,
    tty: bool,
    stdin: bool,
    stdout: bool,
    stderr: bool,
    running: bool,
    exit_code: Option<i32>,
    pid: u32,
    /// The pseudo-terminal's master while a TTY exec runs (for resize).
    master: Option<std::sync::Arc<OwnedFd>>,
    /// When it ended (for [`collect`]).
    ended: Option<Instant>,
    /// Its `DetachKeys` (docker's ctrl-p,ctrl-q if none), looked for in
    /// the input with a TTY.
    detach_keys: Vec<u8>,
    /// Its `ConsoleSize`: the size its terminal starts with (a client's resize comes after the
    /// command has started, and a shell asks at once).
    console: Option<(u16, u16)>,
}

/// docker's `ConsoleSize`, `[rows, columns]`, of an exec or a container's `HostConfig`: `None`
/// unless both are given and not 0 (the docker CLI sends `[0, 0]` without a terminal).
pub fn console_size(v: &Value) -> Option<(u16, u16)> {
    let n = |i: usize| v.get(i)?.as_u64()?.try_into().ok().filter(|&n: &u16| n > 0);
    Some((n(0)?, n(1)?))
}

/// The service's exec instances, by ID. Shared with the threads that wait
/// for detached execs (which outlive their request).
pub type Execs = Arc<Mutex<HashMap<String, Instance>>>;

/// How long an ended instance stays inspectable: dockerd's exec
/// garbage collector frees ended ones after five minutes.
const KEEP_ENDED: Duration = Duration::from_secs(5 * 60);

/// Forget instances that ended more than [`KEEP_ENDED`] ago, and those of
/// containers that no longer exist. Run at each create and inspect.
fn collect(service: &Service) {
    let mut execs = lock(&service.execs);
    let containers: std::collections::HashSet<String> =
        execs.values().map(|i| i.container.clone()).collect();
    let gone: Vec<String> = containers
        .into_iter()
        .filter(|c| service.engine.containers.load(c).is_err())
        .collect();
    execs.retain(|_, i| {
        !gone.contains(&i.container) && i.ended.is_none_or(|t| t.elapsed() < KEEP_ENDED)
    });
}

fn new_id() -> Result<String> {
    let mut bytes = [0u8; 32];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// `POST /containers/ID/exec`: check the container runs, remember the
/// command, answer its ID.
pub fn create(service: &Service, req: &Request, id: &str) -> Result<Response> {
    let body: Value =
        serde_json::from_slice(&req.body).map_err(|e| BadRequest(format!("invalid JSON: {e}")))?;
    let r = service
        .engine
        .containers
        .reconcile(service.engine.containers.resolve(id)?)?;
    if r.state.status == Status::Paused {
        return Ok(Response::error(
            409,
            &format!(
                "Container {} is paused, unpause the container before exec",
                r.id
            ),
        ));
    }
    if r.state.status != Status::Running {
        return Ok(Response::error(
            409,
            &format!("container {} is not running", r.id),
        ));
    }
    let cmd = strings(&body["Cmd"]);
    if cmd.is_empty() {
        return Err(BadRequest("No exec command specified".into()).into());
    }
    let text = |k: &str| {
        body[k]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let detach_keys = match text("DetachKeys") {
        None => vec![16, 17],
        Some(k) => dockyard::container::parse_detach_keys(&k)
            .map_err(|_| BadRequest(format!("Invalid escape keys ({k}) provided")))?,
    };
    let inst = Instance {
        container: r.id.clone(),
        cmd,
        env: strings(&body["Env"]),
        workdir: text("WorkingDir"),
        user: text("User"),
        tty: body["Tty"].as_bool().unwrap_or(false),
        stdin: body["AttachStdin"].as_bool().unwrap_or(false),
        stdout: body["AttachStdout"].as_bool().unwrap_or(false),
        stderr: body["AttachStderr"].as_bool().unwrap_or(false),
        running: false,
        exit_code: None,
        pid: 0,
        master: None,
        ended: None,
        detach_keys,
        console: console_size(&body["ConsoleSize"]),
    };
    collect(service);
    let exec_id = new_id()?;
    lock(&service.execs).insert(exec_id.clone(), inst);
    Ok(Response::json(201, &json!({ "Id": exec_id })))
}

fn find(service: &Service, id: &str) -> Result<Instance> {
    lock(&service.execs)
        .get(id)
        .cloned()
        .ok_or_else(|| anyhow!("No such exec instance: {id}"))
}

/// `GET /exec/ID/json`.
pub fn inspect(service: &Service, id: &str) -> Result<Response> {
    collect(service);
    let i = find(service, id)?;
    Ok(Response::json(
        200,
        &json!({
            "ID": id,
            "Running": i.running,
            "ExitCode": i.exit_code,
            "ProcessConfig": {
                "tty": i.tty,
                "entrypoint": i.cmd.first(),
                "arguments": i.cmd.get(1..).unwrap_or_default(),
                "privileged": false,
                "user": i.user.clone().unwrap_or_default(),
            },
            "OpenStdin": i.stdin,
            "OpenStderr": i.stderr,
            "OpenStdout": i.stdout,
            "CanRemove": false,
            "ContainerID": i.container,
            "DetachKeys": "",
            "Pid": i.pid,
        }),
    ))
}

/// `POST /exec/ID/resize?h=&w=`: the TTY's new size, and SIGWINCH.
pub fn resize(service: &Service, req: &Request, id: &str) -> Result<Response> {
    let i = find(service, id)?;
    let num = |k: &str| -> Result<u16> {
        req.query(k)
            .unwrap_or("0")
            .parse()
            .map_err(|_| BadRequest(format!("invalid {k}")).into())
    };
    let (h, w) = (num("h")?, num("w")?);
    let Some(master) = i.master.filter(|_| i.running) else {
        return Ok(Response::error(
            409,
            &format!("exec {id} is not running or has no TTY"),
        ));
    };
    let ws = libc::winsize {
        ws_row: h,
        ws_col: w,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize from a valid pointer.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) } != 0 {
        return Err(std::io::Error::last_os_error()).context("TIOCSWINSZ");
    }
    // `dockyard exec`'s pump copies its stdin's size to the container's
    // terminal on SIGWINCH.
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i.pid as i32),
        nix::sys::signal::Signal::SIGWINCH,
    );
    Ok(Response {
        status: 200,
        content_type: "",
        body: Vec::new(),
    })
}

/// `dockyard [global flags] exec [-i] [-t] [-d] ... CONTAINER CMD...`.
fn command(i: &Instance, detach: bool) -> Command {
    // The running binary through its magic link: the engine re-executes
    // itself from a sealed copy (lab 02's `sealed`) whose path resolves
    // nowhere, and the file on disk may have been replaced since.
    let mut c = Command::new("/proc/self/exe");
    std::os::unix::process::CommandExt::arg0(&mut c, "dockyard");
    c.args(global_flags());
    c.arg("exec");
    if detach {
        c.arg("-d");
    }
    if i.stdin && !detach {
        c.arg("-i");
    }
    if i.tty && !detach {
        c.arg("-t");
    }
    for e in &i.env {
        c.arg("-e").arg(e);
    }
    if let Some(w) = &i.workdir {
        c.arg("-w").arg(w);
    }
    if let Some(u) = &i.user {
        c.arg("-u").arg(u);
    }
    c.arg(&i.container).args(&i.cmd);
    c
}

/// The service's own `--root`, `--config` and `--userns-remap`, so that
/// the exec runs over the same engine.
fn global_flags() -> Vec<String> {
    let args: Vec<String> = std::env::args().collect();
    let mut out = Vec::new();
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        for flag in ["--root", "--config", "--userns-remap"] {
            if a == flag {
                if let Some(v) = it.next() {
                    out.push(format!("{flag}={v}"));
                }
            } else if a.starts_with(&format!("{flag}=")) {
                out.push(a.clone());
            }
        }
    }
    out
}

/// `POST /exec/ID/start`: run it; hijacked unless `Detach`.
pub fn start(
    service: &Service,
    req: &Request,
    conn: &UnixStream,
    id: &str,
    early: &[u8],
) -> Result<Reply> {
    let i = find(service, id)?;
    if i.running || i.exit_code.is_some() {
        return Ok(Reply::Full(Response::error(
            409,
            &format!("Exec command {id} has already run"),
        )));
    }
    let body: Value = if req.body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(&req.body).map_err(|e| BadRequest(format!("invalid JSON: {e}")))?
    };
    if body["Detach"].as_bool().unwrap_or(false) {
        return detached(service, id, &i).map(Reply::Full);
    }
    let mut cmd = command(&i, false);
    let master = if i.tty {
        let size = i.console.map(|(rows, cols)| libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        });
        let pty = nix::pty::openpty(size.as_ref(), None).context("openpty for exec -t")?;
        cmd.stdin(Stdio::from(pty.slave));
        Some(std::sync::Arc::new(pty.master))
    } else if i.stdin {
        cmd.stdin(Stdio::piped());
        None
    } else {
        cmd.stdin(Stdio::null());
        None
    };
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().context("spawning dockyard exec")?;
    if let Some(e) = lock(&service.execs).get_mut(id) {
        e.running = true;
        e.pid = child.id();
        e.master = master.clone();
    }
    let content = if i.tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    };
    let mut head = Vec::new();
    write!(
        head,
        "HTTP/1.1 101 UPGRADED\r\nContent-Type: {content}\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
    )?;
    http::common_headers(&mut head)?;
    head.extend_from_slice(b"\r\n");
    (&*conn).write_all(&head)?;
    (&*conn).flush()?;
    let input: Option<Box<dyn Write + Send>> = match (&master, child.stdin.take()) {
        (Some(m), _) if i.stdin => Some(Box::new(File::from(m.try_clone()?))),
        (None, Some(p)) => Some(Box::new(p)),
        _ => None,
    };
    let out = child.stdout.take();
    let err = child.stderr.take();
    let client = Mutex::new(conn.try_clone()?);
    std::thread::scope(|s| {
        if let Some(input) = input {
            let from_client = conn.try_clone()?;
            let early = early.to_vec();
            let keys = DetachKeys::new(i.detach_keys.clone(), i.tty);
            s.spawn(move || {
                if copy_input(early, from_client, input, keys) {
                    let r = service.engine.containers.load(&i.container);
                    if let Ok(r) = r {
                        let exec = [("execID", id.to_string())];
                        dockyard::events::container(service.engine, &r, "exec_detach", &exec);
                    }
                }
            });
        }
        let pumps: Vec<_> = [(out.map(|o| Box::new(o) as Box<dyn Read + Send>), 1u8)]
            .into_iter()
            .chain([(err.map(|e| Box::new(e) as Box<dyn Read + Send>), 2u8)])
            .filter_map(|(r, n)| r.map(|r| (r, n)))
            .map(|(r, stream)| {
                let client = &client;
                let wanted = if stream == 1 { i.stdout } else { i.stderr };
                s.spawn(move || copy_framed(r, client, stream, i.tty, wanted))
            })
            .collect();
        for p in pumps {
            let _ = p.join();
        }
        let status = child.wait().context("waiting for dockyard exec");
        if let Ok(status) = &status {
            finish(&service.execs, id, exit_code(*status));
        }
        // The code is recorded before the stream ends: the CLI asks for it
        // (GET /exec/ID/json) as soon as it sees the end. Shutting the
        // socket also ends the input thread's read, for a client whose
        // input never ends (a terminal).
        let _ = conn.shutdown(std::net::Shutdown::Both);
        status.map(|_| ())
    })?;
    Ok(Reply::Streamed(Outcome::TakenOver))
}

/// The client's input to the command's, until it ends (false; dropping
/// `input` closes a piped stdin: its EOF) or, with a TTY, the detach keys
/// are typed (true): as dockerd's `copyEscapable`, the stream ends (the
/// client's connection is shut) and the command goes on, its output read
/// and dropped until it exits.
fn copy_input(
    early: Vec<u8>,
    mut from_client: UnixStream,
    mut input: Box<dyn Write + Send>,
    mut keys: DetachKeys,
) -> bool {
    let mut buf = early;
    loop {
        let (data, hit) = keys.feed(&buf);
        if input.write_all(&data).is_err() {
            return false;
        }
        if hit {
            let _ = from_client.shutdown(std::net::Shutdown::Both);
            return true;
        }
        buf.resize(32 * 1024, 0);
        match from_client.read(&mut buf) {
            Ok(0) | Err(_) => return false,
            Ok(n) => buf.truncate(n),
        }
    }
}

/// Copy one output stream to the client, framed (raw with a TTY).
fn copy_framed(
    mut r: Box<dyn Read + Send>,
    client: &Mutex<UnixStream>,
    stream: u8,
    tty: bool,
    wanted: bool,
) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if !wanted {
            continue;
        }
        let mut frame = Vec::with_capacity(n + 8);
        if !tty {
            frame.push(stream);
            frame.extend_from_slice(&[0, 0, 0]);
            frame.extend_from_slice(&(n as u32).to_be_bytes());
        }
        frame.extend_from_slice(&buf[..n]);
        // A client that left: keep reading, so the command is not
        // stopped by a full pipe, but write nothing more.
        let _ = lock(client).write_all(&frame);
    }
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

fn finish(execs: &Execs, id: &str, code: i32) {
    if let Some(e) = lock(execs).get_mut(id) {
        e.running = false;
        e.exit_code = Some(code);
        e.master = None;
        e.ended = Some(Instant::now());
    }
}

/// `Detach: true` (`docker exec -d`): the command runs under `dockyard
/// exec` with no stream attached, and a thread of its own waits for it and
/// records its exit code, so that the instance then says `Running: false`
/// and the code, as dockerd's does. The answer comes once it is started.
fn detached(service: &Service, id: &str, i: &Instance) -> Result<Response> {
    let mut child = command(i, false)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("spawning dockyard exec")?;
    if let Some(e) = lock(&service.execs).get_mut(id) {
        e.running = true;
        e.pid = child.id();
    }
    let execs = Arc::clone(&service.execs);
    let id = id.to_string();
    std::thread::spawn(move || {
        let code = child.wait().map_or(126, exit_code);
        finish(&execs, &id, code);
    });
    Ok(Response {
        status: 200,
        content_type: "",
        body: Vec::new(),
    })
}
