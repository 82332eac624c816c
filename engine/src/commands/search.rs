//! `docker search [OPTIONS] TERM`: a registry's catalog (the core's
//! `search`), in docker/cli's table: `NAME DESCRIPTION STARS OFFICIAL`,
//! the description cut to 45 characters unless `--no-trunc`, `[OK]` for
//! an official image; `--format` templates see `.Name`, `.Description`,
//! `.StarCount` and `.IsOfficial`.

use std::io::Write;

use anyhow::{bail, Result};
use serde_json::{json, Value};

use super::{formatted, Code};
use crate::cli::SearchArgs;
use dockyard::search::{self, SearchResult};
use dockyard::Engine;

/// The fields of `search --format`, and their headers.
const FIELDS: [(&str, &str); 4] = [
    ("Name", "NAME"),
    ("Description", "DESCRIPTION"),
    ("StarCount", "STARS"),
    ("IsOfficial", "OFFICIAL"),
];

/// `dockyard search`.
pub fn run(engine: &Engine, args: &SearchArgs) -> Result<Code> {
    let filters = parse_filters(&args.filter)?;
    let limit = usize::try_from(args.limit).unwrap_or(0);
    let results = search::search(engine, &args.term, limit, &filters)?;
    print_results(&results, args)
}

/// `-f KEY=VALUE`s, as docker/cli's filter option reads them.
pub(crate) fn parse_filters(filter: &[String]) -> Result<Vec<(String, String)>> {
    filter
        .iter()
        .map(|f| match f.split_once('=') {
            Some((k, v)) => Ok((k.trim().to_lowercase(), v.trim().to_string())),
            None => bail!("Error: bad format of filter (expected name=value)"),
        })
        .collect()
}

/// The results in docker/cli's search table, or through `--format`.
pub(crate) fn print_results(results: &[SearchResult], args: &SearchArgs) -> Result<Code> {
    let json_format = args.format.as_deref().map(str::trim) == Some("json");
    let objects: Vec<Value> = results
        .iter()
        .map(|r| object(r, !args.no_trunc, json_format))
        .collect();
    let format = match args.format.as_deref() {
        None | Some("") | Some("table") => {
            "table {{.Name}}\t{{.Description}}\t{{.StarCount}}\t{{.IsOfficial}}"
        }
        Some(f) => f,
    };
    let mut out = std::io::stdout().lock();
    write!(out, "{}", formatted(format, &objects, &FIELDS)?)?;
    Ok(0)
}

/// What a `--format` template sees of one result (docker/cli's
/// `searchContext`): strings all, `[OK]` or nothing for a flag, `true` or
/// `false` in JSON.
fn object(r: &SearchResult, trunc: bool, json_format: bool) -> Value {
    let mut desc = r.description.replace(['\n', '\r'], " ");
    if trunc && desc.chars().count() > 45 {
        desc = desc.chars().take(44).collect::<String>() + "…";
    }
    let flag = |b: bool| match (b, json_format) {
        (true, true) => "true",
        (true, false) => "[OK]",
        (false, true) => "false",
        (false, false) => "",
    };
    json!({
        "Name": r.name,
        "Description": desc,
        "StarCount": r.star_count.to_string(),
        "IsOfficial": flag(r.is_official),
    })
}
