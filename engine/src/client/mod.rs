//! The CLI as a client: `dockyard -H unix://PATH|tcp://HOST:PORT CMD` (or
//! `DOCKYARD_HOST`) sends the command to a `dockyard system service` (or a
//! dockerd) over the Docker Engine API instead of running it in-process.
//!
//! Why a daemonless engine can also be a client: "daemonless" says where the
//! work happens, not who may ask for it. Every `dockyard` command is a call
//! of the engine core (the `dockyard` library) followed by printing; the
//! service (`api/`) is a second front over the same core that takes those
//! calls as HTTP requests. So the same command line can either make the
//! call itself (the default: no daemon) or send it as a request to a
//! service, possibly on another machine, and print the answer with the very
//! same renderers. That is docker's split, the notes' "client and daemon on
//! different machines": `docker` is only ever this half, and dockerd the
//! other; here one binary is both and the flag says which one works.
//!
//! What is sent is the Engine API request docker's CLI sends for the
//! command; the answer's JSON is turned back into what the in-process
//! renderers take, so the output is the same either way:
//!
//! | command                         | request(s)                                         |
//! |---------------------------------|----------------------------------------------------|
//! | `version`, `info`               | `GET /version`, `GET /info`                        |
//! | `ps`, `images`                  | `GET /containers/json`, `GET /images/json`         |
//! | `inspect`                       | `GET /containers/X/json`, else `/images/X/json`    |
//! | `pull`                          | `POST /images/create?fromImage=&tag=` (a stream)   |
//! | `create`, `run -d`              | `POST /containers/create` (`/images/create` on a 404), `/start` |
//! | `run` (attached, `-i`, `-it`), `start -a`/`-ai`, `attach` | create, `attach` (101, hijacked), `wait`, `start`, `resize` (`session`, `hijack`) |
//! | `exec` (`-i -t -d -e -u -w`)    | `POST /containers/X/exec`, `/exec/E/start` (101), `GET /exec/E/json` |
//! | `start`, `stop`, `restart`, `kill`, `wait`, `rm` | `POST /containers/X/...`, `DELETE /containers/X` |
//! | `logs` (`-f`, `--tail`, `-t`; `--since`, `--until`, `--details` in `logs`) | `GET /containers/X/logs` (frames, read as they come) |
//! | `events` (`--since`, `--until`, `-f`, `--format`) | `GET /events` (a JSON line each, as they come; `events`) |
//! | `build`                         | `POST /build` with the context as a tar (`build`)  |
//! | `cp`                            | `HEAD`/`GET`/`PUT /containers/X/archive` (`cp`)    |
//! | `network ls`, `volume ls` (`--format` too) | `GET /networks`, `GET /volumes`         |
//! | `stats` (streamed, `--no-stream`) | `GET /containers/X/stats?stream=1` or `0` (`stats`) |
//! | `update`                        | `POST /containers/X/update` (`update`)             |
//! | `top`, `port`, `rename`, `pause`, `tag`, `rmi`, `push`, network/volume `create`/`rm` | see `more` |
//! | `history`, `diff`, `export`, `commit`, `save`, `load` | see `layers` |
//! | `network inspect`/`connect`/`disconnect`/`prune`, `volume inspect`/`prune` | see `netvol` |
//!
//! `tcp://` is plain on loopback; to another machine it is mutual TLS
//! (`tls`), as the service insists. A command that is not (yet) carried over the API is refused with
//! exit 125, naming it: never silently run here instead, which would act on
//! this machine's engine when the user asked for another's.

mod build;
mod commands;
mod cp;
mod events;
mod hijack;
mod http;
mod layers;
mod logs;
mod more;
mod netvol;
mod session;
mod stats;
mod tls;
mod update;

pub use http::Host;

use anyhow::anyhow;
use serde_json::Value;

use crate::cli::{Cli, Command};

/// The environment variable that names a service, as `DOCKER_HOST` does
/// for docker's CLI (`-H` wins over it).
pub const HOST_ENV: &str = "DOCKYARD_HOST";

/// The service to talk to: `-H`, else `$DOCKYARD_HOST`; none means
/// in-process. (`system service` is the server itself: its own `--host`
/// says where it listens, and `DOCKYARD_HOST` does not turn it into a
/// client.)
pub fn host_of(cli: &Cli) -> Option<String> {
    if matches!(
        cli.command,
        Command::System(crate::cli::SystemCmd::Service { .. }) | Command::MonitorExited(_)
    ) {
        return cli.host.clone();
    }
    cli.host
        .clone()
        .or_else(|| std::env::var(HOST_ENV).ok().filter(|h| !h.is_empty()))
}

/// Run `cli`'s command against the service at `host`; an error carries
/// the exit code, as `main`'s dispatch does.
pub fn dispatch(cli: &Cli, host: &str) -> Result<i32, (u8, anyhow::Error)> {
    let host = Host::parse(host).map_err(|e| (125, e))?;
    // The engine's own settings belong to the service: taking them quietly
    // would let a user believe they applied.
    if cli.root.is_some() || cli.config.is_some() || cli.userns_remap.is_some() {
        return Err((
            125,
            anyhow!(
                "dockyard: --root, --config and --userns-remap are the engine's settings: with -H \
                 (or DOCKYARD_HOST) the service's own apply; give them to `system service`"
            ),
        ));
    }
    commands::run(cli, &Api { host })
}

/// The service; every path is sent under `/v1.50`, the API version this
/// client speaks (the service's own, see `api/`).
pub struct Api {
    pub host: Host,
}

/// A failed request: the service's own message (docker's `{"message":
/// ...}` body) with its status, or why it could not be asked.
#[derive(Debug)]
pub struct DaemonError {
    pub status: u16,
    pub message: String,
}

impl std::fmt::Display for DaemonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.message)
    }
}

impl std::error::Error for DaemonError {}

impl Api {
    /// One request to `/v1.50/PATH`; the body of a 2xx answer, else a
    /// [`DaemonError`] with the service's message.
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> anyhow::Result<Vec<u8>> {
        let body = body.map(serde_json::to_vec).transpose()?;
        let path = format!("/v{}{path}", crate::api::API_VERSION);
        let r = http::request(&self.host, method, &path, body.as_deref())?;
        if (200..300).contains(&r.status) {
            return Ok(r.body);
        }
        Err(daemon_error(r.status, &r.body))
    }

    /// A request whose 2xx body is read as it comes (`logs -f`, a build's
    /// or a push's progress); `extra` header lines, and a raw `body`
    /// (its `Content-Type` among `extra`).
    pub fn stream(
        &self,
        method: &str,
        path: &str,
        extra: &str,
        body: Option<&[u8]>,
    ) -> anyhow::Result<http::Body<std::io::BufReader<http::Conn>>> {
        let path = format!("/v{}{path}", crate::api::API_VERSION);
        let mut conn = http::connect(&self.host)?;
        let extra = format!("Connection: close\r\n{extra}");
        http::send(&mut conn, &self.host, method, &path, &extra, body)?;
        let mut r = std::io::BufReader::new(conn);
        let head = http::read_head(&mut r)?;
        if !(200..300).contains(&head.status) {
            let body = http::read_body(&mut r, &head)?;
            return Err(daemon_error(head.status, &body));
        }
        Ok(http::Body::new(r, &head))
    }

    /// A request whose answer is JSON.
    pub fn json(&self, method: &str, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
        let bytes = self.call(method, path, body)?;
        serde_json::from_slice(&bytes).map_err(|e| anyhow!("the service's answer to {path}: {e}"))
    }
}

/// The service's refusal: docker's `{"message": ...}` body, else the
/// body's text.
pub fn daemon_error(status: u16, body: &[u8]) -> anyhow::Error {
    let message = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_string());
    DaemonError { status, message }.into()
}

/// `s` escaped for a URL's query (RFC 3986's unreserved characters kept).
pub fn query_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
