//! `dockyard events` (and `system events`): the event journal, printed as
//! the docker CLI prints `docker events`.
//!
//! Without `--since`, only what happens from now on; with it, the history
//! first. It then follows the journal (the `events` module of the core)
//! until `--until` passes or it is interrupted; an `--until` in the past
//! prints the history and returns at once, as dockerd answers.

use std::time::{Duration, SystemTime};

use anyhow::{bail, Result};

use crate::cli::EventsArgs;
use crate::template;
use dockyard::events::{self, Filters, Follower, Query};
use dockyard::Engine;

/// The time window asked, in nanoseconds; the errors docker gives.
pub fn window(since: Option<&str>, until: Option<&str>) -> Result<(Option<i64>, Option<i64>)> {
    let now = SystemTime::now();
    let parse = |s: &str| events::parse_timestamp(s, now);
    let since = since.filter(|s| !s.is_empty()).map(parse).transpose()?;
    let until = until.filter(|s| !s.is_empty()).map(parse).transpose()?;
    if let (Some(s), Some(u)) = (since, until) {
        if u < s {
            bail!(
                "`since` time ({}) cannot be after `until` time ({})",
                since_text(s),
                since_text(u)
            );
        }
    }
    Ok((since, until))
}

/// An event as docker's templates see it (`events.Message`'s Go fields).
fn go_fields(m: &events::Message) -> serde_json::Value {
    serde_json::json!({
        "Status": m.status, "ID": m.id, "From": m.from, "Type": m.typ,
        "Action": m.action,
        "Actor": {"ID": m.actor.id, "Attributes": m.actor.attributes},
        "Scope": m.scope, "Time": m.time, "TimeNano": m.time_nano,
    })
}

/// A time as the API carries it: seconds.nanoseconds.
pub fn since_text(n: i64) -> String {
    format!(
        "{}.{:09}",
        n.div_euclid(1_000_000_000),
        n.rem_euclid(1_000_000_000)
    )
}

/// `--format` as a template (`json`: each event's JSON), checked as docker
/// checks it; Err: the exit code of a bad one, its error printed.
pub fn format_of(format: Option<&str>) -> std::result::Result<Option<String>, i32> {
    let format = match format {
        Some("json") => Some("{{json .}}".to_string()),
        Some("") | None => None,
        Some(f) => Some(f.to_string()),
    };
    if let Some(f) = &format {
        // docker checks the template on an empty event first.
        if let Err(e) = template::render(f, &serde_json::json!({})) {
            eprintln!("Error parsing format: {e:#}");
            return Err(64);
        }
    }
    Ok(format)
}

pub fn events(engine: &Engine, args: &EventsArgs) -> Result<i32> {
    let format = match format_of(args.format.as_deref()) {
        Ok(f) => f,
        Err(code) => return Ok(code),
    };
    let mut filters = Filters::default();
    for f in &args.filter {
        filters.add_arg(f)?;
    }
    let (since, until) = window(args.since.as_deref(), args.until.as_deref())?;
    let started = events::nanos(SystemTime::now());
    let query = Query {
        // No --since: only new events (an --until alone reads the history
        // up to it, as dockerd's buffer does).
        since: since.or(if until.is_some() { None } else { Some(started) }),
        until,
        filters,
    };
    let only_past = until.is_some_and(|u| u < started);
    let mut follower = Follower::open(&engine.root);
    let mut out = std::io::stdout().lock();
    loop {
        // The clock first: the last read, once --until has passed, still
        // takes what was written just before it.
        let done = only_past || until.is_some_and(|u| events::nanos(SystemTime::now()) > u);
        for m in follower.next_batch()? {
            if query.wants(&m) {
                print(&mut out, &m, format.as_deref())?;
            }
        }
        if done {
            return Ok(0);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One event's line: docker's, or `--format`'s.
pub fn print(
    out: &mut impl std::io::Write,
    m: &events::Message,
    format: Option<&str>,
) -> Result<()> {
    let line = match format {
        None => events::pretty(m),
        // The API's JSON, its fields in docker's order.
        Some("{{json .}}") => serde_json::to_string(m)?,
        // A template sees the Go struct's field names (.Type, .Actor.ID,
        // .TimeNano), not the JSON's.
        Some(f) => template::render(f, &go_fields(m))?,
    };
    writeln!(out, "{line}")?;
    out.flush()?;
    Ok(())
}
