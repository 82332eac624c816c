//! Just enough HTTP/1.1 for the Engine API, on a blocking stream.
//!
//! A request is a head (request line and headers, up to an empty line) and
//! a body whose length the head gives (`Content-Length`, or `Transfer-Encoding:
//! chunked`). The head is parsed by `httparse`, the parser hyper itself uses;
//! what is written here is the framing around it, because the Engine API's
//! two streaming tricks live exactly there:
//!
//! - `wait` answers `200 OK` with a chunked body and *flushes the head at
//!   once*: the docker CLI waits for those headers before it sends `start`,
//!   and reads the body (`{"StatusCode":0}`) when the container exits;
//! - `attach` answers `101 UPGRADED` and then the connection stops being
//!   HTTP at all (see the attach module).
//!
//! ```text
//! POST /v1.50/containers/3f2a/wait?condition=next-exit HTTP/1.1
//! Host: api.moby.localhost
//!
//! HTTP/1.1 200 OK                      <- at once
//! Content-Type: application/json
//! Transfer-Encoding: chunked
//!
//! 1f                                   <- when the container exits
//! {"Error":null,"StatusCode":0}
//! 0
//! ```
//!
//! Connections are kept alive between requests (the docker CLI sends `HEAD
//! /_ping` and then its real request on the same connection).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;

use anyhow::{anyhow, bail, Context, Result};

/// The largest request head and body accepted: docker's own limits are of
/// this order, and nothing the API takes as JSON comes near them.
const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 10 * 1024 * 1024;
/// Bodies that are archives (`docker cp` into a container, a build
/// context, an image to load) may be as large as the files they carry.
const MAX_ARCHIVE_BODY: usize = 1024 * 1024 * 1024;

/// One request, its body read.
#[derive(Debug)]
pub struct Request {
    pub method: String,
    /// The path without the query and without a `/v1.NN` prefix.
    pub path: String,
    /// The API version the path asked for (`/v1.50/...`), if any.
    pub version: Option<String>,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// A header's value (names are case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// A query parameter's value.
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A boolean query parameter as docker reads them: `1`, `true` (any
    /// case) are true; absent, empty, `0`, `false` are false.
    pub fn flag(&self, name: &str) -> bool {
        self.query(name)
            .is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
    }

    /// Whether the client asked to keep the connection open (HTTP/1.1's
    /// default, unless `Connection: close`).
    pub fn keep_alive(&self) -> bool {
        !self
            .header("Connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
}

/// Read the next request from `r`; `None` when the client closed the
/// connection between requests.
pub fn read_request(r: &mut BufReader<UnixStream>) -> Result<Option<Request>> {
    // The head: lines up to an empty one.
    let mut head = Vec::new();
    loop {
        let n = r
            .by_ref()
            .take((MAX_HEAD + 1 - head.len()) as u64)
            .read_until(b'\n', &mut head)?;
        if n == 0 {
            if head.is_empty() {
                return Ok(None);
            }
            bail!("the client closed the connection in the middle of a request");
        }
        if head.len() > MAX_HEAD {
            bail!("request head too large");
        }
        if head.ends_with(b"\r\n\r\n") || head.ends_with(b"\n\n") || head == b"\r\n" {
            if head == b"\r\n" {
                head.clear(); // a stray empty line between requests
                continue;
            }
            break;
        }
    }
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Request::new(&mut headers);
    parsed.parse(&head).context("malformed request head")?;
    let method = parsed.method.unwrap_or_default().to_string();
    let target = parsed.path.unwrap_or_default().to_string();
    let headers: Vec<(String, String)> = parsed
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_string(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    let (raw_path, raw_query) = target.split_once('?').unwrap_or((&target, ""));
    let (version, path) = split_version(&percent_decode(raw_path));
    let mut req = Request {
        method,
        path,
        version,
        query: parse_query(raw_query),
        headers,
        body: Vec::new(),
    };
    req.body = read_body(r, &req)?;
    Ok(Some(req))
}

/// `/v1.50/containers/json` -> (`Some("1.50")`, `/containers/json`).
fn split_version(path: &str) -> (Option<String>, String) {
    if let Some(rest) = path.strip_prefix("/v") {
        let (ver, tail) = rest.split_once('/').unwrap_or((rest, ""));
        if !ver.is_empty() && ver.chars().all(|c| c.is_ascii_digit() || c == '.') {
            return (Some(ver.to_string()), format!("/{tail}"));
        }
    }
    (None, path.to_string())
}

/// The body, by `Content-Length` or chunked.
fn read_body(r: &mut BufReader<UnixStream>, req: &Request) -> Result<Vec<u8>> {
    // `/images/create` carries a tarball only for an import (`fromSrc=-`).
    let archive = req.path.ends_with("/archive")
        || matches!(
            req.path.as_str(),
            "/build" | "/images/load" | "/images/create"
        );
    let max = if archive { MAX_ARCHIVE_BODY } else { MAX_BODY };
    let chunked = req
        .header("Transfer-Encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        let mut body = Vec::new();
        loop {
            let mut line = String::new();
            r.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| anyhow!("malformed chunk size {:?}", line.trim()))?;
            if body.len() + size > max {
                bail!("request body too large");
            }
            let start = body.len();
            body.resize(start + size, 0);
            r.read_exact(&mut body[start..])?;
            let mut crlf = String::new();
            r.read_line(&mut crlf)?;
            if size == 0 {
                return Ok(body);
            }
        }
    }
    let len: usize = match req.header("Content-Length") {
        None => 0,
        Some(v) => v
            .trim()
            .parse()
            .map_err(|_| anyhow!("malformed Content-Length {v:?}"))?,
    };
    if len > max {
        bail!("request body too large");
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    Ok(body)
}

/// `a=1&b=x%20y` -> [("a", "1"), ("b", "x y")].
fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(&v.replace('+', " ")))
        })
        .collect()
}

/// Undo URL percent-encoding (`%7B` -> `{`); bad escapes stay as they are.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A complete response: status, content type, body.
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Response {
    /// `status` with a JSON body.
    pub fn json(status: u16, v: &serde_json::Value) -> Response {
        Response {
            status,
            content_type: "application/json",
            body: serde_json::to_vec(v).unwrap_or_default(),
        }
    }

    /// Docker's error shape: `{"message": "..."}`.
    pub fn error(status: u16, message: &str) -> Response {
        Response::json(status, &serde_json::json!({ "message": message }))
    }

    /// `204 No Content`, as `start`, `stop`, `kill` and `DELETE` answer.
    pub fn no_content() -> Response {
        Response {
            status: 204,
            content_type: "",
            body: Vec::new(),
        }
    }
}

/// The reason phrase of the statuses the API uses.
fn reason(status: u16) -> &'static str {
    match status {
        101 => "UPGRADED",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        304 => "Not Modified",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        _ => "Internal Server Error",
    }
}

/// The headers dockerd puts on every response (`_ping` reads them).
pub fn common_headers(w: &mut impl Write) -> std::io::Result<()> {
    write!(
        w,
        "Api-Version: {}\r\nDocker-Experimental: false\r\nOstype: linux\r\n\
         Server: Dockyard/{} (linux)\r\n",
        super::API_VERSION,
        env!("CARGO_PKG_VERSION")
    )
}

/// Write a complete response. `head_only`: for HEAD, the headers of the GET
/// answer without its body.
pub fn write_response(w: &mut impl Write, resp: &Response, head_only: bool) -> Result<()> {
    write_response_with(w, resp, &[], head_only)
}

/// [`write_response`], with more headers (`X-Docker-Container-Path-Stat`).
pub fn write_response_with(
    w: &mut impl Write,
    resp: &Response,
    extra: &[(&str, String)],
    head_only: bool,
) -> Result<()> {
    let mut out = Vec::with_capacity(256 + resp.body.len());
    write!(out, "HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status))?;
    common_headers(&mut out)?;
    for (k, v) in extra {
        write!(out, "{k}: {v}\r\n")?;
    }
    if !resp.content_type.is_empty() {
        write!(out, "Content-Type: {}\r\n", resp.content_type)?;
    }
    if resp.status != 204 && resp.status != 304 {
        write!(out, "Content-Length: {}\r\n", resp.body.len())?;
    }
    out.extend_from_slice(b"\r\n");
    if !head_only {
        out.extend_from_slice(&resp.body);
    }
    w.write_all(&out)?;
    w.flush()?;
    Ok(())
}

/// Start a chunked response and flush its head, for a body that comes later
/// (`wait`, `logs`). Each later chunk goes through [`write_chunk`], and an
/// empty one ends the body.
pub fn start_chunked(w: &mut impl Write, status: u16, content_type: &str) -> Result<()> {
    let mut out = Vec::new();
    write!(out, "HTTP/1.1 {status} {}\r\n", reason(status))?;
    common_headers(&mut out)?;
    write!(
        out,
        "Content-Type: {content_type}\r\nTransfer-Encoding: chunked\r\n\r\n"
    )?;
    w.write_all(&out)?;
    w.flush()?;
    Ok(())
}

/// One chunk of a chunked body: its size in hex, the bytes. An empty
/// `data` is the last chunk.
pub fn write_chunk(w: &mut impl Write, data: &[u8]) -> Result<()> {
    let mut out = Vec::with_capacity(data.len() + 16);
    write!(out, "{:x}\r\n", data.len())?;
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    if data.is_empty() {
        // The last chunk is "0\r\n" and an empty trailer line.
        out.truncate(0);
        out.extend_from_slice(b"0\r\n\r\n");
    }
    w.write_all(&out)?;
    w.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_split_off_the_path() {
        assert_eq!(
            split_version("/v1.50/containers/json"),
            (Some("1.50".into()), "/containers/json".into())
        );
        assert_eq!(split_version("/_ping"), (None, "/_ping".into()));
        assert_eq!(split_version("/volumes"), (None, "/volumes".into()));
    }

    #[test]
    fn queries_are_decoded() {
        let q = parse_query("all=1&filters=%7B%22status%22%3A%5B%22exited%22%5D%7D");
        assert_eq!(q[0], ("all".into(), "1".into()));
        assert_eq!(q[1].1, r#"{"status":["exited"]}"#);
        assert_eq!(percent_decode("100%"), "100%");
    }
}
