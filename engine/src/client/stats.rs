//! `stats` through the service: the in-process table, from the service's
//! stats documents.
//!
//! | command                    | request                                          |
//! |----------------------------|--------------------------------------------------|
//! | `stats --no-stream [C...]` | `GET /containers/C/stats?stream=0` each           |
//! | `stats [C...]`             | `GET /containers/C/stats?stream=1` each, held open |
//!
//! Without containers named, the targets are `GET /containers/json` (`-a`:
//! `?all=true`), listed once, as the in-process command does.
//!
//! A streamed document comes each second, and carries the sample before
//! it (`precpu_stats`) for the CPU percentage; the first has none, so it is
//! not shown. A table is printed once every stream has sent a new document
//! (a stream that ended, a stopped container's, keeps its last one), at
//! most once a second: what the in-process command prints, one table a
//! second, each below the last, until it is interrupted.

use std::io::{BufRead, BufReader, Write};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use serde_json::{Map, Value};

use super::{query_escape as q, Api};
use crate::cli::StatsArgs;
use crate::commands::{self, Code};
use crate::format::table;

use crate::commands::container::STATS_TITLES as TITLES;

/// `stats [-a] [--no-stream] [C...]`.
pub fn stats(api: &Api, a: &StatsArgs) -> Result<Code> {
    let names: Vec<String> = if a.containers.is_empty() {
        let list = api.json("GET", &format!("/containers/json?all={}", a.all), None)?;
        list.as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["Id"].as_str().map(str::to_string))
            .collect()
    } else {
        a.containers.clone()
    };
    match a.no_stream {
        true => once(api, &names),
        false => stream(api, &names),
    }
}

/// The table of these documents, as the in-process command prints it.
fn table_of<'a>(docs: impl Iterator<Item = &'a Value>) -> String {
    let rows: Vec<Vec<String>> = docs
        .map(|d| commands::container::stats_row(&stats_of(d)))
        .collect();
    table(&TITLES, &rows)
}

/// `--no-stream`: one document per container (`stream=0`: the service
/// samples a second apart). Sampled side by side, so N containers take
/// one second, not N.
fn once(api: &Api, names: &[String]) -> Result<Code> {
    let docs: Vec<Result<Value>> = std::thread::scope(|s| {
        let handles: Vec<_> = names
            .iter()
            .map(|n| {
                let path = format!("/containers/{}/stats?stream=0", q(n));
                s.spawn(move || api.json("GET", &path, None))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow!("a stats thread panicked")))
            })
            .collect()
    });
    let docs = docs.into_iter().collect::<Result<Vec<_>>>()?;
    print!("{}", table_of(docs.iter()));
    Ok(0)
}

/// What one container's stream has said.
#[derive(Default)]
struct Slot {
    /// Its latest document.
    doc: Option<Value>,
    /// A new document since the last table.
    fresh: bool,
    /// The stream ended (the container stopped, or the connection broke).
    done: bool,
}

/// The slots, and the signal that one of them changed.
#[derive(Default)]
struct Shared {
    slots: Mutex<Vec<Slot>>,
    changed: Condvar,
}

/// The streams: each opened here first (a container that is not there is
/// an error before anything is printed, as in-process), then read by a
/// thread of its own; a table each time they all have news, until our
/// output is closed (or we are interrupted).
fn stream(api: &Api, names: &[String]) -> Result<Code> {
    let mut bodies = Vec::new();
    for n in names {
        let path = format!("/containers/{}/stats?stream=1", q(n));
        bodies.push(BufReader::new(api.stream("GET", &path, "", None)?));
    }
    let shared = Arc::new(Shared::default());
    let slots = || shared.slots.lock().unwrap_or_else(|e| e.into_inner());
    slots().resize_with(bodies.len(), Slot::default);
    for (i, body) in bodies.into_iter().enumerate() {
        let shared = Arc::clone(&shared);
        // Not joined: they end with the process.
        std::thread::spawn(move || follow(body, i, &shared));
    }
    let second = Duration::from_secs(1);
    let mut last: Option<Instant> = None;
    loop {
        let mut st = slots();
        loop {
            let ready = st.iter().all(|s| s.fresh || s.done);
            let early = last.map_or(Duration::ZERO, |t| second.saturating_sub(t.elapsed()));
            if ready && early.is_zero() {
                break;
            }
            let wait = if ready { early } else { second };
            st = shared
                .changed
                .wait_timeout(st, wait)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        let text = table_of(st.iter().filter_map(|s| s.doc.as_ref()));
        st.iter_mut().for_each(|s| s.fresh = false);
        drop(st);
        last = Some(Instant::now());
        let mut out = std::io::stdout().lock();
        if out
            .write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .is_err()
        {
            // Whoever read our output has gone (`| head`).
            return Ok(0);
        }
    }
}

/// Read one container's stream into slot `i`: each document, a line of
/// JSON. The first, which has no sample before it, counts only if it is
/// the last too (a stopped container's one document).
fn follow(body: impl BufRead, i: usize, shared: &Shared) {
    let mut first = true;
    for line in body.lines() {
        let Ok(line) = line else { break };
        let Ok(doc) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let mut st = shared.slots.lock().unwrap_or_else(|e| e.into_inner());
        st[i].doc = Some(doc);
        st[i].fresh = !first;
        first = false;
        drop(st);
        shared.changed.notify_all();
    }
    let mut st = shared.slots.lock().unwrap_or_else(|e| e.into_inner());
    st[i].done = true;
    drop(st);
    shared.changed.notify_all();
}

/// The API's stats document as the core's `Stats`, with docker's
/// formulas (see `api/stats.rs`).
fn stats_of(d: &Value) -> dockyard::container::Stats {
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    let (cpu, pre) = (&d["cpu_stats"], &d["precpu_stats"]);
    let cpu_delta = n(&cpu["cpu_usage"]["total_usage"])
        .saturating_sub(n(&pre["cpu_usage"]["total_usage"])) as f64;
    let system_delta =
        n(&cpu["system_cpu_usage"]).saturating_sub(n(&pre["system_cpu_usage"])) as f64;
    let cpus = n(&cpu["online_cpus"]).max(1) as f64;
    let cpu_percent = match system_delta > 0.0 {
        true => cpu_delta / system_delta * cpus * 100.0,
        false => 0.0,
    };
    let m = &d["memory_stats"];
    let memory = n(&m["usage"]).saturating_sub(n(&m["stats"]["inactive_file"]));
    let limit = n(&m["limit"]);
    let (mut rx, mut tx) = (0, 0);
    for i in d["networks"].as_object().into_iter().flat_map(Map::values) {
        rx += n(&i["rx_bytes"]);
        tx += n(&i["tx_bytes"]);
    }
    dockyard::container::Stats {
        id: d["id"].as_str().unwrap_or_default().to_string(),
        name: d["name"]
            .as_str()
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_string(),
        cpu_percent,
        memory,
        memory_limit: limit,
        memory_percent: match limit {
            0 => 0.0,
            l => memory as f64 / l as f64 * 100.0,
        },
        net_rx: rx,
        net_tx: tx,
        pids: n(&d["pids_stats"]["current"]),
    }
}
