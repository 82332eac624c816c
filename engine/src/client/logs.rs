//! `logs` through the service, `-f` too: the container's TTY setting says
//! whether the stream is raw or multiplexed; with `-f` it is read as it
//! comes, until the service ends it when the container stops. The times
//! are read here as the in-process command reads them (RFC 3339, Unix
//! seconds, or a duration back from now) and sent as docker's CLI sends
//! them, Unix seconds with their nanoseconds: `GET /containers/C/logs?since=S.N&until=S.N&details=1`.

use std::io::BufReader;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Result;

use super::{hijack, query_escape as q, Api};
use crate::cli::LogsArgs;
use crate::commands::Code;

/// `logs` with any of its flags.
pub fn logs(api: &Api, a: &LogsArgs) -> Result<Code> {
    let c = api.json(
        "GET",
        &format!("/containers/{}/json", q(&a.container)),
        None,
    )?;
    let now = SystemTime::now();
    let time = |t: &Option<String>| -> Result<String> {
        let Some(t) = t else {
            return Ok(String::new());
        };
        let d = dockyard::logs::parse_time(t, now)?
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Ok(format!("{}.{:09}", d.as_secs(), d.subsec_nanos()))
    };
    let mut path = format!(
        "/containers/{}/logs?stdout=1&stderr=1&follow={}&timestamps={}&tail={}",
        q(&a.container),
        a.follow,
        a.timestamps,
        q(&a.tail)
    );
    // As docker's CLI: each of these only when given.
    for (key, value) in [("since", time(&a.since)?), ("until", time(&a.until)?)] {
        if !value.is_empty() {
            path += &format!("&{key}={value}");
        }
    }
    if a.details {
        path += "&details=1";
    }
    let mut body = BufReader::new(api.stream("GET", &path, "", None)?);
    if c["Config"]["Tty"].as_bool() == Some(true) {
        hijack::copy_raw(&mut body)?;
    } else {
        hijack::demux(&mut body)?;
    }
    Ok(0)
}
