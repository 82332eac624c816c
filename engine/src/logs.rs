//! Container logs in Docker's `json-file` format: reading them back
//! (`dockyard logs`), and the `--log-opt`s of rotation.
//!
//! The monitor writes them: every chunk of output becomes one JSON object on
//! its own line of `<container dir>/container-json.log`, exactly as Docker
//! writes it, rotated past `max-size` (see `dockyard_monitor::jsonfile`, which
//! the small monitor program and the foreground `run` share).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::time::SystemTime;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::state::parse_rfc3339;
use dockyard_monitor::jsonfile::rotated;
pub use dockyard_monitor::jsonfile::{Rotation, Writer, LOG_FILE};

/// One line of a json-file log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub log: String,
    pub stream: String,
    pub time: String,
}

/// `--log-opt max-size=10m --log-opt max-file=3`: read `max-size` and
/// `max-file` from log options, validating like Docker.
pub fn rotation_from_opts<'a>(
    opts: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<Rotation> {
    let mut r = Rotation::default();
    for (k, v) in opts {
        match k {
            "max-size" => {
                r.max_size =
                    Some(parse_decimal_size(v).with_context(|| format!("log-opt max-size={v}"))?)
            }
            "max-file" => {
                r.max_file =
                    v.parse().ok().filter(|n| *n >= 1).with_context(|| {
                        format!("log-opt max-file={v}: must be a positive number")
                    })?
            }
            // Accepted by Docker's json-file driver; nothing to do here.
            "compress" | "labels" | "env" | "env-regex" | "tag" | "mode" | "max-buffer-size" => {}
            other => bail!("unknown log opt '{other}' for json-file log driver"),
        }
    }
    if r.max_file > 1 && r.max_size.is_none() {
        bail!("max-file cannot be set without max-size");
    }
    Ok(r)
}

/// go-units `FromHumanSize`: decimal units, as Docker's json-file driver
/// reads `max-size` ("10m" is 10,000,000 bytes).
pub fn parse_decimal_size(s: &str) -> Result<u64> {
    let t = s.trim().to_ascii_lowercase();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .with_context(|| format!("invalid size: {s:?}"))?;
    let mult = match unit.trim_end_matches('b').trim_end_matches('i') {
        "" => 1e0,
        "k" => 1e3,
        "m" => 1e6,
        "g" => 1e9,
        "t" => 1e12,
        _ => bail!("invalid size: {s:?}"),
    };
    if n.is_nan() || n <= 0.0 {
        bail!("invalid size: {s:?}: must be positive");
    }
    Ok((n * mult) as u64)
}

/// Which entries `dockyard logs` shows.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub tail: Option<usize>,
    pub since: Option<SystemTime>,
    pub until: Option<SystemTime>,
}

/// Read every entry, oldest rotated file first, keeping those the filter lets
/// through. A line that is not valid JSON (a torn final line while the
/// monitor writes) is skipped.
pub fn read(dir: &Path, filter: &Filter) -> Result<Vec<Entry>> {
    let live = dir.join(LOG_FILE);
    let mut files = Vec::new();
    for n in (1..100).rev() {
        let p = rotated(&live, n);
        if p.exists() {
            files.push(p);
        }
    }
    files.push(live);
    let mut out = Vec::new();
    for path in files {
        let f = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
        };
        for line in BufReader::new(f).lines() {
            let line = line.with_context(|| format!("reading {}", path.display()))?;
            let Ok(entry) = serde_json::from_str::<Entry>(&line) else {
                continue;
            };
            if keep(&entry, filter) {
                out.push(entry);
            }
        }
    }
    if let Some(n) = filter.tail {
        let skip = out.len().saturating_sub(n);
        out.drain(..skip);
    }
    Ok(out)
}

fn keep(e: &Entry, f: &Filter) -> bool {
    let t = parse_rfc3339(&e.time);
    f.since.is_none_or(|s| t.is_some_and(|t| t >= s))
        && f.until.is_none_or(|u| t.is_some_and(|t| t <= u))
}

/// `--since` / `--until`: an RFC 3339 time, a Unix timestamp, or a duration
/// back from now such as `10m`, `1h30m`, `42s` (Docker accepts all three).
pub fn parse_time(s: &str, now: SystemTime) -> Result<SystemTime> {
    if let Some(t) = parse_rfc3339(s) {
        return Ok(t);
    }
    if let Ok(secs) = s.parse::<f64>() {
        return Ok(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs_f64(secs));
    }
    let mut total = 0f64;
    let mut num = String::new();
    let mut saw_unit = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let mut unit = c.to_string();
        if c == 'm' && chars.peek() == Some(&'s') {
            unit.push(chars.next().unwrap_or('s'));
        }
        let n: f64 = num.parse().with_context(|| format!("invalid time {s:?}"))?;
        total += n * match unit.as_str() {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            _ => bail!(
                "invalid time {s:?}: use an RFC 3339 time, a Unix timestamp or a duration like 10m"
            ),
        };
        num.clear();
        saw_unit = true;
    }
    if !saw_unit || !num.is_empty() {
        bail!("invalid time {s:?}: use an RFC 3339 time, a Unix timestamp or a duration like 10m");
    }
    Ok(now - std::time::Duration::from_secs_f64(total))
}

/// `logs --details`: the attributes json-file gives each line, as dockerd
/// prints them (`k=v,k2=v2`, query-escaped, sorted; empty without any):
/// the labels named by `--log-opt labels=a,b` and the environment
/// variables named by `--log-opt env=X,Y` (the `-regex` forms are not
/// supported: no attribute comes of them). From a container's `log_opts`,
/// `labels` and `env`.
pub fn attributes(
    log_opts: &BTreeMap<String, String>,
    labels: &BTreeMap<String, String>,
    env: &[String],
) -> String {
    let mut attrs = BTreeMap::new();
    let named = |key: &str| -> Vec<String> {
        log_opts
            .get(key)
            .map(|v| v.split(',').map(str::to_string).collect())
            .unwrap_or_default()
    };
    for l in named("labels") {
        if let Some(v) = labels.get(&l) {
            attrs.insert(l, v.clone());
        }
    }
    for e in named("env") {
        let value = env.iter().find_map(|kv| kv.strip_prefix(&format!("{e}=")));
        if let Some(v) = value {
            attrs.insert(e, v.to_string());
        }
    }
    let escape = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                b' ' => "+".to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    attrs
        .iter()
        .map(|(k, v)| format!("{}={}", escape(k), escape(v)))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_dockers_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Writer::open(dir.path(), Rotation::default()).unwrap();
        w.write("stdout", b"hello\nworld\n").unwrap();
        w.write("stderr", b"oops").unwrap();
        let text = std::fs::read_to_string(dir.path().join(LOG_FILE)).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(
            lines[0].starts_with(r#"{"log":"hello\n","stream":"stdout","time":"20"#),
            "{}",
            lines[0]
        );
        // The monitor writes each line by hand: byte for byte what
        // serde_json writes for the same entry, for every control byte.
        for line in &lines {
            let entry: Entry = serde_json::from_str(line).unwrap();
            assert_eq!(&serde_json::to_string(&entry).unwrap(), line);
        }
        let all: String = (0u8..0x80)
            .map(char::from)
            .chain("é\u{fffd}".chars())
            .collect();
        let mut json = serde_json::to_vec(&Entry {
            log: all.clone(),
            stream: "stderr".into(),
            time: "T".into(),
        })
        .unwrap();
        json.push(b'\n');
        assert_eq!(
            dockyard_monitor::jsonfile::entry_line(&all, "stderr", "T"),
            json
        );
        let all = read(dir.path(), &Filter::default()).unwrap();
        assert_eq!(
            all.iter().map(|e| e.log.as_str()).collect::<Vec<_>>(),
            ["hello\n", "world\n", "oops"]
        );
        assert_eq!(all[2].stream, "stderr");
        let tail = read(
            dir.path(),
            &Filter {
                tail: Some(1),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(tail.len(), 1);
        assert_eq!(tail[0].log, "oops");
    }

    #[test]
    fn rotation_keeps_max_file_files_of_max_size() {
        let dir = tempfile::tempdir().unwrap();
        let rot = rotation_from_opts([("max-size", "1k"), ("max-file", "3")]).unwrap();
        let mut w = Writer::open(dir.path(), rot).unwrap();
        for i in 0..200 {
            w.write("stdout", format!("line {i:04}\n").as_bytes())
                .unwrap();
        }
        let names: Vec<String> = {
            let mut v: Vec<_> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        };
        assert_eq!(
            names,
            [
                "container-json.log",
                "container-json.log.1",
                "container-json.log.2"
            ]
        );
        for n in &names {
            assert!(
                std::fs::metadata(dir.path().join(n)).unwrap().len() <= 1000,
                "{n} too big"
            );
        }
        // What is left is the newest lines, in order, ending with the last.
        let all = read(dir.path(), &Filter::default()).unwrap();
        assert_eq!(all.last().unwrap().log, "line 0199\n");
        let nums: Vec<u32> = all.iter().map(|e| e.log[5..9].parse().unwrap()).collect();
        assert!(nums.windows(2).all(|w| w[1] == w[0] + 1), "{nums:?}");
        assert!(nums[0] > 0, "the oldest lines fell off");
    }

    #[test]
    fn bad_log_opts_are_refused() {
        assert!(rotation_from_opts([("max-size", "ten")]).is_err());
        assert!(rotation_from_opts([("max-file", "0"), ("max-size", "1m")]).is_err());
        assert!(rotation_from_opts([("max-file", "2")]).is_err());
        assert!(rotation_from_opts([("frobnicate", "1")]).is_err());
        assert_eq!(parse_decimal_size("10m").unwrap(), 10_000_000);
    }

    #[test]
    fn since_and_until_accept_dockers_forms() {
        let now = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        assert_eq!(
            parse_time("10m", now).unwrap(),
            now - std::time::Duration::from_secs(600)
        );
        assert_eq!(
            parse_time("1h30m", now).unwrap(),
            now - std::time::Duration::from_secs(5400)
        );
        assert_eq!(
            parse_time("500", now).unwrap(),
            SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(500)
        );
        assert!(parse_time("yesterday", now).is_err());
        let t = parse_time("2026-11-18T11:06:40Z", now).unwrap();
        assert_eq!(
            t,
            SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_795_000_000)
        );
    }
}
