//! `events` through the service: `GET /events?since=&until=&filters=`,
//! one JSON message a line as they come, each printed by the in-process
//! printer (docker's line, or `--format`). The window and the filters are
//! read here as the in-process command reads them (so a bad one is the
//! same error), then sent as docker's CLI sends them: seconds.nanoseconds
//! and `{"type":["container"]}`. Without `--until` it follows until it is
//! interrupted, as in-process; with one, the service ends the stream.

use std::io::{BufRead, BufReader};

use anyhow::Result;

use super::{query_escape as q, Api, DaemonError};
use crate::cli::EventsArgs;
use crate::commands::{self, events::since_text, Code};
use dockyard::events::{Filters, Message};

pub fn events(api: &Api, a: &EventsArgs) -> Result<Code> {
    let format = match commands::events::format_of(a.format.as_deref()) {
        Ok(f) => f,
        Err(code) => return Ok(code),
    };
    // Refused here as the service would refuse them (docker's daemon
    // checks both): its words, "Error response from daemon: ...".
    let refused = |e: anyhow::Error| DaemonError {
        status: 400,
        message: format!("{e:#}"),
    };
    let mut filters = Filters::default();
    for f in &a.filter {
        filters.add_arg(f).map_err(refused)?;
    }
    let (since, until) =
        commands::events::window(a.since.as_deref(), a.until.as_deref()).map_err(refused)?;
    let mut path = "/events?".to_string();
    if let Some(s) = since {
        path += &format!("since={}&", since_text(s));
    }
    if let Some(u) = until {
        path += &format!("until={}&", since_text(u));
    }
    if !a.filter.is_empty() {
        path += &format!("filters={}", q(&filters.to_json().to_string()));
    }
    let body = BufReader::new(api.stream("GET", path.trim_end_matches(['&', '?']), "", None)?);
    let mut out = std::io::stdout().lock();
    for line in body.split(b'\n') {
        let line = line?;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let v: serde_json::Value = serde_json::from_slice(&line)?;
        if let Some(e) = v["message"].as_str().filter(|_| v.get("Type").is_none()) {
            let message = e.to_string();
            return Err(DaemonError {
                status: 500,
                message,
            }
            .into());
        }
        let m: Message = serde_json::from_value(v)?;
        commands::events::print(&mut out, &m, format.as_deref())?;
    }
    Ok(0)
}
