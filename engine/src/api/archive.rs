//! `docker cp` over the API: `/containers/ID/archive`, and `export`.
//!
//! `docker cp` never copies a file as such: both ways it moves a tar
//! stream, and it first asks what the path is.
//!
//! ```text
//! HEAD /containers/web/archive?path=/etc/hostname
//!      -> 200, X-Docker-Container-Path-Stat: base64({"name":"hostname",
//!         "size":13,"mode":420,"mtime":"...","linkTarget":""})
//! GET  /containers/web/archive?path=/etc   -> the same header, a tar of etc/...
//! PUT  /containers/web/archive?path=/tmp   <- a tar, unpacked into /tmp
//! GET  /containers/web/export              -> a tar of the whole root filesystem
//! ```
//!
//! The work is the core's (`container::path_stat`, `archive_path`,
//! `extract_archive`, the same safe resolution inside the container's root
//! and the same freezing as `dockyard cp`: a path inside a container means
//! what the container says, and a container may race us; see the copy
//! module for the CVEs this guards against).

use std::path::Path;

use anyhow::Result;

use std::os::unix::net::UnixStream;

use super::http::{write_response_with, Request, Response};
use super::routes::{BadRequest, Outcome, Reply};
use super::Service;
use dockyard::container;

/// The `path` query parameter, which docker requires.
fn path_of(req: &Request) -> Result<&str> {
    req.query("path")
        .filter(|p| !p.is_empty())
        .ok_or_else(|| BadRequest("path cannot be empty".into()).into())
}

/// A container's copy error as docker's status: 404 for a path that is not
/// there (and for no such container), 400 for a bad extraction point.
fn archive_error(e: anyhow::Error) -> Result<Response> {
    let msg = format!("{e:#}");
    if msg.contains("Could not find the file") {
        let first = msg.split(": ").next().unwrap_or(&msg).to_string();
        return Ok(Response::error(404, &first));
    }
    if msg.contains("not a directory") {
        return Ok(Response::error(400, &msg));
    }
    Err(e)
}

/// The stat header's value: base64 of the JSON.
fn stat_header(stat: &container::PathStat) -> Result<String> {
    Ok(base64(&serde_json::to_vec(stat)?))
}

/// Standard base64 with padding (RFC 4648), what Go's
/// `base64.StdEncoding` writes and the docker CLI reads.
fn base64(data: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

const STAT_HEADER: &str = "X-Docker-Container-Path-Stat";

/// `HEAD /containers/ID/archive?path=P`: the stat header alone.
pub fn head(service: &Service, req: &Request, conn: &UnixStream, id: &str) -> Result<Reply> {
    let path = path_of(req)?;
    match container::path_stat(service.engine, id, Path::new(path)) {
        Ok(stat) => {
            let resp = Response {
                status: 200,
                content_type: "application/json",
                body: Vec::new(),
            };
            let extra = [(STAT_HEADER, stat_header(&stat)?)];
            write_response_with(&mut &*conn, &resp, &extra, true)?;
            Ok(Reply::Streamed(Outcome::Done))
        }
        Err(e) => archive_error(e).map(Reply::Full),
    }
}

/// `GET /containers/ID/archive?path=P`: a tar of P under its own name,
/// and the stat header.
pub fn get(service: &Service, req: &Request, conn: &UnixStream, id: &str) -> Result<Reply> {
    let path = path_of(req)?;
    match container::archive_path(service.engine, id, Path::new(path)) {
        Ok((stat, tar)) => {
            let resp = Response {
                status: 200,
                content_type: "application/x-tar",
                body: tar,
            };
            let extra = [(STAT_HEADER, stat_header(&stat)?)];
            write_response_with(&mut &*conn, &resp, &extra, false)?;
            Ok(Reply::Streamed(Outcome::Done))
        }
        Err(e) => archive_error(e).map(Reply::Full),
    }
}

/// `PUT /containers/ID/archive?path=DIR`: the body, a tar, unpacked there.
pub fn put(service: &Service, req: &Request, id: &str) -> Result<Response> {
    let path = path_of(req)?;
    match container::extract_archive(service.engine, id, Path::new(path), &req.body) {
        Ok(()) => Ok(Response {
            status: 200,
            content_type: "",
            body: Vec::new(),
        }),
        Err(e) => archive_error(e),
    }
}

/// `GET /containers/ID/export`: the container's whole root filesystem as
/// it sees it, as a tar (`docker export`).
pub fn export(service: &Service, id: &str) -> Result<Response> {
    match container::export(service.engine, id) {
        Ok(tar) => Ok(Response {
            status: 200,
            content_type: "application/x-tar",
            body: tar,
        }),
        Err(e) => archive_error(e),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_is_rfc_4648() {
        assert_eq!(super::base64(b""), "");
        assert_eq!(super::base64(b"f"), "Zg==");
        assert_eq!(super::base64(b"fo"), "Zm8=");
        assert_eq!(super::base64(b"foobar"), "Zm9vYmFy");
    }
}
