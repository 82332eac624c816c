//! `GET /events?since=..&until=..&filters={..}`: the event journal (the
//! core's `events` module) as dockerd streams it, one JSON object per line
//! in a chunked body.
//!
//! As dockerd does: with `since` (or `until`), the history in that window
//! first; then, unless `until` is already past, each new event as it is
//! written, until `until` comes or the client goes away.

use std::os::unix::net::UnixStream;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Result};

use super::http::{self, Request};
use super::routes::{filter_pairs, BadRequest, Outcome, Reply};
use super::Service;
use dockyard::events::{self, Filters, Follower, Query};

pub fn stream(service: &Service, req: &Request, conn: &UnixStream) -> Result<Reply> {
    let now = SystemTime::now();
    let time = |key: &str| -> Result<Option<i64>> {
        match req.query(key).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => events::parse_timestamp(v, now)
                .map(Some)
                .map_err(|e| BadRequest(format!("{e:#}")).into()),
        }
    };
    let (since, until) = (time("since")?, time("until")?);
    if let (Some(s), Some(u)) = (since, until) {
        if u < s {
            bail!(BadRequest(format!(
                "`since` time ({}) cannot be after `until` time ({})",
                req.query("since").unwrap_or(""),
                req.query("until").unwrap_or("")
            )));
        }
    }
    let filters = filters(req.query("filters"))?;
    let started = events::nanos(now);
    let query = Query {
        since: since.or(if until.is_some() { None } else { Some(started) }),
        until,
        filters,
    };
    let only_past = until.is_some_and(|u| u < started);
    let mut follower = Follower::open(&service.engine.root);
    http::start_chunked(&mut &*conn, 200, "application/json")?;
    loop {
        let done = only_past || until.is_some_and(|u| events::nanos(SystemTime::now()) > u);
        let mut body = Vec::new();
        for m in follower.next_batch()? {
            if query.wants(&m) {
                serde_json::to_writer(&mut body, &m)?;
                body.push(b'\n');
            }
        }
        if !body.is_empty() {
            http::write_chunk(&mut &*conn, &body)?;
        }
        if done || client_gone(conn) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    http::write_chunk(&mut &*conn, b"")?;
    Ok(Reply::Streamed(Outcome::Done))
}

/// `filters`: `{"type":["container"]}`, or the older `{"type":{"container":true}}`.
fn filters(raw: Option<&str>) -> Result<Filters> {
    let mut out = Filters::default();
    for (key, v) in filter_pairs(raw)? {
        out.add(&key, &v).map_err(|e| BadRequest(e.to_string()))?;
    }
    Ok(out)
}

/// Whether the client hung up (a stream has no other way to learn it).
fn client_gone(conn: &UnixStream) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    let mut fds = [PollFd::new(conn.as_fd(), PollFlags::empty())];
    match poll(&mut fds, PollTimeout::ZERO) {
        Ok(n) if n > 0 => fds[0]
            .revents()
            .is_some_and(|r| r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR)),
        _ => false,
    }
}
