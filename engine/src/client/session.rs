//! The client's interactive commands: `run` (attached, `-i`, `-it`),
//! `start -a`/`-ai`, `attach`, `exec` and `logs` (`-f` too), each over a stream the service
//! keeps open (see `hijack` for the wire).
//!
//! ```text
//! run -it:  POST /containers/create {"Tty":true,"OpenStdin":true,"StdinOnce":true,...}
//!           POST /containers/ID/attach?stream=1&stdin=1&stdout=1&stderr=1   -> 101
//!           POST /containers/ID/wait?condition=next-exit     (its head at once)
//!           POST /containers/ID/start
//!           POST /containers/ID/resize?h=ROWS&w=COLS
//!           ... the session ...; the wait's body: {"StatusCode": N}
//! exec -it: POST /containers/ID/exec {"Cmd":[...],"Tty":true,"AttachStdin":true,...} -> {"Id": E}
//!           POST /exec/E/start {"Detach":false,"Tty":true}  -> 101
//!           POST /exec/E/resize?h=ROWS&w=COLS
//!           ... the session ...; GET /exec/E/json -> {"ExitCode": N}
//! ```

use std::io::BufReader;

use anyhow::{anyhow, bail, Result};
use serde_json::{json, Value};

use super::hijack::{self, Session};
use super::http;
use super::{query_escape as q, Api};
use crate::cli::{AttachArgs, ExecArgs, RunArgs, StartArgs};
use crate::commands::{self, Code};

/// `run` without `-d`: the created container's session (`-i`: our stdin
/// too; `-t`: a terminal), its exit code ours.
pub fn run_attached(api: &Api, a: &RunArgs, id: &str) -> Result<Code> {
    let condition = if a.rm { "removed" } else { "next-exit" };
    let keys = &a.detach_keys;
    attach_and_start(api, id, a.tty, a.interactive, condition, keys)
}

/// `start -a` (`-ai`): one container's session, as `run`'s, from its
/// start on (its TTY and stdin as it was created with).
pub fn start_attached(api: &Api, a: &StartArgs) -> Result<Code> {
    let [name] = a.containers.as_slice() else {
        bail!("you cannot start and attach multiple containers at once");
    };
    let c = api.json("GET", &format!("/containers/{}/json", q(name)), None)?;
    let id = c["Id"].as_str().unwrap_or_default().to_string();
    let tty = c["Config"]["Tty"].as_bool() == Some(true);
    let stdin = a.interactive && c["Config"]["OpenStdin"].as_bool() == Some(true);
    let removed = c["HostConfig"]["AutoRemove"].as_bool() == Some(true);
    let condition = if removed { "removed" } else { "next-exit" };
    attach_and_start(api, &id, tty, stdin, condition, &a.detach_keys)
}

/// Attach (stdin too if asked); ask for the exit before the start, as
/// docker's CLI does (a container that exits at once, or is removed by
/// `--rm`, is not missed); start; size the terminal; the session; the
/// container's code. Detached by the `keys`, silently, 0: the container
/// goes on, as in-process.
fn attach_and_start(
    api: &Api,
    id: &str,
    tty: bool,
    stdin: bool,
    condition: &str,
    keys: &str,
) -> Result<Code> {
    let attach = open_attach(api, id, tty, stdin, keys)?;
    let (mut wait, wait_head) = early_wait(api, id, condition)?;
    api.call("POST", &format!("/containers/{id}/start"), None)?;
    if pump_attached(api, id, attach, tty, stdin, keys)? {
        return Ok(0);
    }
    let answer: Value = serde_json::from_slice(&http::read_body(&mut wait, &wait_head)?)?;
    if let Some(e) = answer["Error"]["Message"].as_str() {
        bail!("{e}");
    }
    Ok(answer["StatusCode"].as_i64().unwrap_or(0) as Code)
}

/// The hijacked attach to container `id`'s output (and its stdin, with
/// `stdin`); `-it` needs a terminal on our side. The detach `keys` go
/// along (`detachKeys`), as docker's CLI sends its `--detach-keys`.
fn open_attach(
    api: &Api,
    id: &str,
    tty: bool,
    stdin: bool,
    keys: &str,
) -> Result<BufReader<http::Conn>> {
    dockyard::container::parse_detach_keys(keys)?;
    if tty && stdin && !stdin_is_tty() {
        bail!("the input device is not a TTY");
    }
    let mut path = format!("/containers/{id}/attach?stream=1&stdout=1&stderr=1");
    if stdin {
        path += "&stdin=1";
    }
    path += &format!("&detachKeys={}", q(keys));
    hijack::open(api, &path, None)
}

/// Copy the attached streams until they end (false) or the detach `keys`
/// are typed (true); with a terminal, send its size first and on each
/// change.
fn pump_attached(
    api: &Api,
    id: &str,
    conn: BufReader<http::Conn>,
    tty: bool,
    stdin: bool,
    keys: &str,
) -> Result<bool> {
    let resize = || resize(api, &format!("/containers/{id}/resize"));
    if tty {
        resize();
    }
    let session = Session {
        tty,
        stdin,
        resize: Some(&resize),
        detach_keys: Some(dockyard::container::parse_detach_keys(keys)?),
    };
    hijack::pump(conn, &session)
}

/// `POST /containers/ID/wait?condition=`, its head read: from then on the
/// service is waiting, so the start that follows cannot be missed. Its
/// body, `{"StatusCode": N}`, comes when the container exits.
fn early_wait(api: &Api, id: &str, condition: &str) -> Result<(BufReader<http::Conn>, http::Head)> {
    let mut wait = http::connect(&api.host)?;
    let path = format!(
        "/v{}/containers/{id}/wait?condition={condition}",
        crate::api::API_VERSION
    );
    let close = "Connection: close\r\n";
    http::send(&mut wait, &api.host, "POST", &path, close, None)?;
    let mut wait = BufReader::new(wait);
    let head = http::read_head(&mut wait)?;
    if !(200..300).contains(&head.status) {
        let body = http::read_body(&mut wait, &head)?;
        return Err(super::daemon_error(head.status, &body));
    }
    Ok((wait, head))
}

/// Send our terminal's size to `PATH?h=&w=` (a container's or an exec's
/// resize). A failure is not worth ending the session for.
fn resize(api: &Api, path: &str) {
    if let Some(size) = hijack::size_query() {
        let _ = api.call("POST", &format!("{path}?{size}"), None);
    }
}

fn stdin_is_tty() -> bool {
    nix::unistd::isatty(std::io::stdin()).unwrap_or(false)
}

/// `attach`: join a running container's stdio (stdin unless
/// `--no-stdin` or it was made without `-i`); the exit code is the
/// container's once the stream ends, or 1 with docker's "read escape
/// sequence" when the detach keys were typed (the container goes on).
pub fn attach(api: &Api, a: &AttachArgs) -> Result<Code> {
    let c = api.json(
        "GET",
        &format!("/containers/{}/json", q(&a.container)),
        None,
    )?;
    let id = c["Id"].as_str().unwrap_or_default().to_string();
    let tty = c["Config"]["Tty"].as_bool() == Some(true);
    let stdin = !a.no_stdin && c["Config"]["OpenStdin"].as_bool() == Some(true);
    if c["State"]["Running"].as_bool() != Some(true) {
        bail!("You cannot attach to a stopped container, start it first");
    }
    let conn = open_attach(api, &id, tty, stdin, &a.detach_keys)?;
    if pump_attached(api, &id, conn, tty, stdin, &a.detach_keys)? {
        eprintln!("read escape sequence");
        return Ok(1);
    }
    let answer = api.json("POST", &format!("/containers/{id}/wait"), None)?;
    Ok(answer["StatusCode"].as_i64().unwrap_or(0) as Code)
}

/// `exec`: create the instance, start it (hijacked, or detached with
/// `-d`), and exit with its code, read back from the instance (or, as
/// docker's CLI, 1 and "read escape sequence" when the detach keys were
/// typed on a terminal: the command goes on).
pub fn exec(api: &Api, a: &ExecArgs) -> Result<Code> {
    let (name, argv) = a
        .container_and_command
        .split_first()
        .ok_or_else(|| anyhow!("\"exec\" requires at least 2 arguments"))?;
    if let Some(w) = &a.workdir {
        if !w.starts_with('/') {
            bail!("the working directory '{w}' is invalid, it needs to be an absolute path");
        }
    }
    if a.tty && a.interactive && !a.detach && !stdin_is_tty() {
        bail!("the input device is not a TTY");
    }
    let env = a
        .env
        .iter()
        .map(|e| commands::run::env_entry(e))
        .collect::<Result<Vec<_>>>()?;
    let body = json!({
        "AttachStdin": a.interactive && !a.detach,
        "AttachStdout": !a.detach,
        "AttachStderr": !a.detach,
        "Tty": a.tty,
        "ConsoleSize": super::commands::console_size(a.tty),
        "Env": env,
        "WorkingDir": a.workdir.clone().unwrap_or_default(),
        "User": a.user.clone().unwrap_or_default(),
        "Cmd": argv,
        // As docker's CLI: the service checks them (and refuses bad ones).
        "DetachKeys": a.detach_keys.clone().unwrap_or_default(),
    });
    let created = api.json(
        "POST",
        &format!("/containers/{}/exec", q(name)),
        Some(&body),
    )?;
    let exec = created["Id"].as_str().unwrap_or_default().to_string();
    let start = json!({"Detach": a.detach, "Tty": a.tty});
    if a.detach {
        api.call("POST", &format!("/exec/{exec}/start"), Some(&start))?;
        return Ok(0);
    }
    let conn = hijack::open(api, &format!("/exec/{exec}/start"), Some(&start))?;
    let resize = || resize(api, &format!("/exec/{exec}/resize"));
    if a.tty {
        resize();
    }
    // --detach-keys, else docker's default: looked for here, as docker's
    // CLI does, and by the service (which took them at create).
    let keys = a.detach_keys.as_deref().filter(|k| !k.is_empty());
    let session = Session {
        tty: a.tty,
        stdin: a.interactive,
        resize: Some(&resize),
        detach_keys: Some(match keys {
            Some(k) => dockyard::container::parse_detach_keys(k)?,
            None => vec![16, 17],
        }),
    };
    if hijack::pump(conn, &session)? {
        eprintln!("read escape sequence");
        return Ok(1);
    }
    let inspect = api.json("GET", &format!("/exec/{exec}/json"), None)?;
    Ok(inspect["ExitCode"].as_i64().unwrap_or(0) as Code)
}
