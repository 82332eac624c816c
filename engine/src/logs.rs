//! Container logs in Docker's `json-file` format.
//!
//! The monitor owns the container's stdout and stderr pipes. Every chunk it
//! reads becomes one JSON object on its own line of
//! `<container dir>/container-json.log`, exactly as Docker writes it:
//!
//! ```text
//! {"log":"hello\n","stream":"stdout","time":"2026-11-23T04:05:06.123456789Z"}
//! ```
//!
//! so tools that read Docker's log files read ours. With `max-size` the file
//! is rotated when it would grow past the limit: `container-json.log` becomes
//! `.1`, `.1` becomes `.2`, and so on up to `max-file` files in all; the
//! oldest falls off the end.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::state::{parse_rfc3339, rfc3339};

/// The log file's name in the container's directory.
pub const LOG_FILE: &str = "container-json.log";

/// One line of a json-file log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub log: String,
    pub stream: String,
    pub time: String,
}

/// `--log-opt max-size=10m --log-opt max-file=3`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// Bytes; `None` means the file grows without limit (Docker's default).
    pub max_size: Option<u64>,
    /// How many files to keep, the live one included (Docker's default is 1).
    pub max_file: u32,
}

impl Default for Rotation {
    fn default() -> Self {
        Rotation {
            max_size: None,
            max_file: 1,
        }
    }
}

impl Rotation {
    /// Read `max-size` and `max-file` from log options, validating like Docker.
    pub fn from_opts<'a>(opts: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Rotation> {
        let mut r = Rotation::default();
        for (k, v) in opts {
            match k {
                "max-size" => {
                    r.max_size = Some(
                        parse_decimal_size(v).with_context(|| format!("log-opt max-size={v}"))?,
                    )
                }
                "max-file" => {
                    r.max_file = v.parse().ok().filter(|n| *n >= 1).with_context(|| {
                        format!("log-opt max-file={v}: must be a positive number")
                    })?
                }
                // Accepted by Docker's json-file driver; nothing to do here.
                "compress" | "labels" | "env" | "env-regex" | "tag" | "mode"
                | "max-buffer-size" => {}
                other => bail!("unknown log opt '{other}' for json-file log driver"),
            }
        }
        if r.max_file > 1 && r.max_size.is_none() {
            bail!("max-file cannot be set without max-size");
        }
        Ok(r)
    }
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

/// Appends entries to a container's log, rotating as configured.
pub struct Writer {
    path: PathBuf,
    file: File,
    size: u64,
    rotation: Rotation,
}

impl Writer {
    pub fn open(dir: &Path, rotation: Rotation) -> Result<Writer> {
        let path = dir.join(LOG_FILE);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(Writer {
            path,
            file,
            size,
            rotation,
        })
    }

    /// Write one chunk of output from `stream` ("stdout" or "stderr").
    /// Like Docker, a chunk is split at newlines: each line is one entry.
    pub fn write(&mut self, stream: &str, data: &[u8]) -> Result<()> {
        for line in data.split_inclusive(|b| *b == b'\n') {
            let entry = Entry {
                log: String::from_utf8_lossy(line).into_owned(),
                stream: stream.to_string(),
                time: rfc3339(SystemTime::now()),
            };
            let mut json = serde_json::to_vec(&entry).context("encoding a log entry")?;
            json.push(b'\n');
            if let Some(max) = self.rotation.max_size {
                if self.size > 0 && self.size + json.len() as u64 > max {
                    self.rotate()?;
                }
            }
            self.file
                .write_all(&json)
                .with_context(|| format!("writing {}", self.path.display()))?;
            self.size += json.len() as u64;
        }
        Ok(())
    }

    fn rotate(&mut self) -> Result<()> {
        let keep = self.rotation.max_file;
        if keep > 1 {
            for n in (1..keep - 1).rev() {
                let from = rotated(&self.path, n);
                if from.exists() {
                    fs::rename(&from, rotated(&self.path, n + 1))
                        .with_context(|| format!("rotating {}", from.display()))?;
                }
            }
            fs::rename(&self.path, rotated(&self.path, 1))
                .with_context(|| format!("rotating {}", self.path.display()))?;
        }
        // With max-file=1 the live file is simply truncated, as Docker does.
        self.file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&self.path)
            .with_context(|| format!("reopening {}", self.path.display()))?;
        self.size = 0;
        Ok(())
    }
}

fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
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
        && f.until.is_none_or(|u| t.is_some_and(|t| t < u))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_dockers_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Writer::open(dir.path(), Rotation::default()).unwrap();
        w.write("stdout", b"hello\nworld\n").unwrap();
        w.write("stderr", b"oops").unwrap();
        let text = fs::read_to_string(dir.path().join(LOG_FILE)).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(
            lines[0].starts_with(r#"{"log":"hello\n","stream":"stdout","time":"20"#),
            "{}",
            lines[0]
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
        let rot = Rotation::from_opts([("max-size", "1k"), ("max-file", "3")]).unwrap();
        let mut w = Writer::open(dir.path(), rot).unwrap();
        for i in 0..200 {
            w.write("stdout", format!("line {i:04}\n").as_bytes())
                .unwrap();
        }
        let names: Vec<String> = {
            let mut v: Vec<_> = fs::read_dir(dir.path())
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
                fs::metadata(dir.path().join(n)).unwrap().len() <= 1000,
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
        assert!(Rotation::from_opts([("max-size", "ten")]).is_err());
        assert!(Rotation::from_opts([("max-file", "0"), ("max-size", "1m")]).is_err());
        assert!(Rotation::from_opts([("max-file", "2")]).is_err());
        assert!(Rotation::from_opts([("frobnicate", "1")]).is_err());
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
