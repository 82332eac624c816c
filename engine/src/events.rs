//! The event journal: what `dockyard events` and `GET /events` report.
//!
//! dockerd logs an event for every change it makes (a container created,
//! started, dead; an image pulled, tagged; a network connected; a volume
//! mounted) into a ring of its last 1000 in memory, and streams each new
//! one to every `docker events` that listens. Dockyard has no daemon: every
//! command is a process of its own, and the one that sees a container die
//! is its monitor. So the ring is a file, `events.jsonl` in the data root,
//! one JSON line per event in docker's own shape, appended by whichever
//! process made the change, and *followed* by a listener the way `tail -f`
//! follows a log:
//!
//! ```text
//! {"status":"die","id":"4f1c..","from":"busybox","Type":"container","Action":"die",
//!  "Actor":{"ID":"4f1c..","Attributes":{"exitCode":"0","image":"busybox","name":"web"}},
//!  "scope":"local","time":1795000000,"timeNano":1795000000123456789}
//! ```
//!
//! Three properties make a file work as a ring shared by many processes:
//!
//! - **Appends are whole lines.** Each event is one `write(2)` of one line
//!   on a file opened `O_APPEND`, under the journal's lock: two processes
//!   never interleave. A process killed in the middle of a write leaves a
//!   torn last line without its newline; the next writer first ends it, and
//!   readers skip what does not parse. Nothing ever rewrites a line.
//! - **Bounded.** Once the journal passes [`MAX_BYTES`], the next writer
//!   renames it to `events.1.jsonl` (replacing the older one) and starts a
//!   fresh one: rename is atomic, so at any moment a reader finds the
//!   history whole, between one and two journals long.
//! - **Followable.** A listener keeps its file open and reads what is
//!   appended; when the path names another file (a rotation), it drains the
//!   old one to its end and carries on from the new one's start.
//!
//! Recording an event never fails the operation that made it: the change is
//! done by then, and a lost event is better than a failed `rm`.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::state::Record;
use crate::Engine;

/// The journal, and its one older generation, in the data root.
pub const JOURNAL: &str = "events.jsonl";
pub const ROTATED: &str = "events.1.jsonl";
/// Rotate past this size: a few thousand events, as dockerd keeps 1000.
pub const MAX_BYTES: u64 = 1 << 20;

/// One event, in the Engine API's shape (`events.Message`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// The pre-1.22 fields, still filled for containers and images as
    /// dockerd does (old clients read them).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub status: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub from: String,
    #[serde(rename = "Type")]
    pub typ: String,
    #[serde(rename = "Action")]
    pub action: String,
    #[serde(rename = "Actor")]
    pub actor: Actor,
    pub scope: String,
    pub time: i64,
    #[serde(rename = "timeNano")]
    pub time_nano: i64,
}

/// What the event is about: an ID (a container's, an image's, a network's;
/// a volume's name) and its attributes (name, image, labels, exitCode, ...).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Actor {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Attributes", default)]
    pub attributes: BTreeMap<String, String>,
}

impl Message {
    /// An event of now, with dockerd's deprecated fields filled.
    pub fn new(typ: &str, action: &str, actor: Actor) -> Message {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let (status, id, from) = match typ {
            "container" => (
                action.to_string(),
                actor.id.clone(),
                actor.attributes.get("image").cloned().unwrap_or_default(),
            ),
            "image" => (action.to_string(), actor.id.clone(), String::new()),
            _ => Default::default(),
        };
        Message {
            status,
            id,
            from,
            typ: typ.to_string(),
            action: action.to_string(),
            actor,
            scope: "local".into(),
            time: now.as_secs() as i64,
            time_nano: now.as_nanos() as i64,
        }
    }
}

// ANCHOR: append
/// Append one event to the journal of `root` (see the module doc).
pub fn append(root: &Path, msg: &Message) -> Result<()> {
    let mut line = serde_json::to_vec(msg).context("serializing an event")?;
    line.push(b'\n');
    let path = root.join(JOURNAL);
    let _lock = lock(root)?;
    if std::fs::metadata(&path).is_ok_and(|m| m.len() >= MAX_BYTES) {
        std::fs::rename(&path, root.join(ROTATED))
            .with_context(|| format!("rotating {}", path.display()))?;
    }
    let mut file = OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    // A writer killed mid-line left a torn line: end it, so that ours
    // starts a line of its own (readers skip the torn one).
    let len = file.metadata()?.len();
    let mut last = [0u8; 1];
    if len > 0 && file.read_exact_at(&mut last, len - 1).is_ok() && last[0] != b'\n' {
        line.insert(0, b'\n');
    }
    file.write_all(&line)
        .with_context(|| format!("appending to {}", path.display()))
}
// ANCHOR_END: append

/// The journal's lock: writers take it around rotate-and-append.
fn lock(root: &Path) -> Result<nix::fcntl::Flock<File>> {
    let path = root.join("events.lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| anyhow!("locking {}: {e}", path.display()))
}

/// Record an event; a failure is a warning, never the operation's error.
pub fn log(engine: &Engine, typ: &str, action: &str, actor: Actor) {
    if let Err(e) = append(&engine.root, &Message::new(typ, action, actor)) {
        eprintln!("WARNING: recording the {typ} {action} event: {e:#}");
    }
}

/// A container's actor: its ID, and as attributes its labels, its image
/// (as it was asked for) and its name, then `extra` (exitCode, signal...).
pub fn container_actor(record: &Record, extra: &[(&str, String)]) -> Actor {
    let mut attributes = BTreeMap::new();
    if let Some(labels) = record.config["labels"].as_object() {
        for (k, v) in labels {
            attributes.insert(k.clone(), v.as_str().unwrap_or_default().to_string());
        }
    }
    if let Some(image) = record.config["image"].as_str() {
        attributes.insert("image".into(), image.to_string());
    }
    attributes.insert("name".into(), record.name.clone());
    for (k, v) in extra {
        attributes.insert(k.to_string(), v.clone());
    }
    Actor {
        id: record.id.clone(),
        attributes,
    }
}

/// Record a container's event (`create`, `start`, `die`, ...).
pub fn container(engine: &Engine, record: &Record, action: &str, extra: &[(&str, String)]) {
    log(engine, "container", action, container_actor(record, extra));
}

/// Record an image's event: `id` its ID (or, for pull and push, the
/// reference), `name` the name it concerns, as dockerd's `LogImageEvent`.
pub fn image(engine: &Engine, id: &str, name: &str, action: &str) {
    log(engine, "image", action, actor(id, &[("name", name)]));
}

/// An actor of an ID and attributes.
pub fn actor(id: &str, attrs: &[(&str, &str)]) -> Actor {
    Actor {
        id: id.to_string(),
        attributes: attrs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

/// `--filter` / `filters`: docker's keys, each value a list (OR within a
/// key, AND across keys).
#[derive(Debug, Clone, Default)]
pub struct Filters(BTreeMap<String, Vec<String>>);

/// The keys dockerd accepts (the swarm ones match nothing here).
const FILTER_KEYS: &[&str] = &[
    "config",
    "container",
    "daemon",
    "event",
    "image",
    "label",
    "network",
    "node",
    "plugin",
    "scope",
    "secret",
    "service",
    "type",
    "volume",
];

impl Filters {
    /// Add `key=value`, refusing the keys dockerd refuses.
    pub fn add(&mut self, key: &str, value: &str) -> Result<()> {
        if !FILTER_KEYS.contains(&key) {
            bail!("invalid filter '{key}'");
        }
        if key == "type"
            && ![
                "container",
                "image",
                "volume",
                "network",
                "daemon",
                "plugin",
                "node",
                "service",
                "secret",
                "config",
            ]
            .contains(&value)
        {
            bail!("invalid filter 'type={value}'");
        }
        self.0
            .entry(key.to_string())
            .or_default()
            .push(value.to_string());
        Ok(())
    }

    /// Parse the CLI's `--filter key=value`.
    pub fn add_arg(&mut self, arg: &str) -> Result<()> {
        let (k, v) = arg
            .split_once('=')
            .ok_or_else(|| anyhow!("bad format of filter (expected name=value)"))?;
        self.add(&k.trim().to_ascii_lowercase(), v.trim())
    }

    /// The filters as the API carries them: `{"type":["container"]}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.0).unwrap_or_default()
    }

    /// No filter for `key`, or one of its values says yes.
    fn any(&self, key: &str, yes: impl Fn(&str) -> bool) -> bool {
        self.0.get(key).is_none_or(|vs| vs.iter().any(|v| yes(v)))
    }

    /// Does `m` pass? dockerd's rules (daemon/events/filter.go): `event`
    /// matches the action or its part before ": " (`exec_start: sh`);
    /// `container`, `network`, `volume` match a prefix of the actor's ID or
    /// of its name; `image` the image exactly, with or without its tag;
    /// `label` a `key` or `key=value` among the attributes.
    pub fn matches(&self, m: &Message) -> bool {
        let attr = |k: &str| m.actor.attributes.get(k).map(String::as_str);
        let fuzzy =
            |v: &str| m.actor.id.starts_with(v) || attr("name").is_some_and(|n| n.starts_with(v));
        let image_name = attr(if m.typ == "image" { "name" } else { "image" }).unwrap_or("");
        let strip = |s: &str| -> String {
            match s.rsplit_once(':') {
                Some((repo, tag)) if !tag.contains('/') => repo.to_string(),
                _ => s.to_string(),
            }
        };
        self.any("type", |v| v == m.typ)
            && self.any("event", |v| {
                v == m.action || m.action.split(": ").next() == Some(v)
            })
            && self.any("scope", |v| v == m.scope)
            && self.any("container", fuzzy)
            && self.any("network", fuzzy)
            && self.any("volume", fuzzy)
            && self.any("image", |v| {
                v == m.actor.id
                    || v == image_name
                    || v == strip(&m.actor.id)
                    || v == strip(image_name)
            })
            && self.0.get("label").is_none_or(|vs| {
                vs.iter().all(|v| match v.split_once('=') {
                    Some((k, val)) => attr(k) == Some(val),
                    None => attr(v).is_some(),
                })
            })
            && ["daemon", "plugin", "node", "service", "secret", "config"]
                .iter()
                .all(|k| self.any(k, |v| v == m.actor.id))
    }
}

/// Which events a reader wants: a time window (nanoseconds since the
/// epoch) and filters.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub filters: Filters,
}

impl Query {
    pub fn wants(&self, m: &Message) -> bool {
        self.since.is_none_or(|s| m.time_nano >= s)
            && self.until.is_none_or(|u| m.time_nano <= u)
            && self.filters.matches(m)
    }
}

/// `since`/`until` as nanoseconds: `SECONDS[.NANOSECONDS]` exactly (what
/// the docker client sends, and a Unix time a person types), else what
/// `logs --since` takes (RFC 3339, a duration back from `now`).
pub fn parse_timestamp(s: &str, now: SystemTime) -> Result<i64> {
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    if !secs.is_empty() && digits(secs) && digits(frac) && frac.len() <= 9 {
        let secs: i64 = secs.parse().context("a timestamp's seconds")?;
        let nanos: i64 = format!("{frac:0<9}").parse().unwrap_or(0);
        return Ok(secs * 1_000_000_000 + nanos);
    }
    match crate::logs::parse_time(s, now) {
        Ok(t) => Ok(nanos(t)),
        Err(_) => bail!("failed to parse value as time or duration: {s:?}"),
    }
}

/// Nanoseconds since the epoch.
pub fn nanos(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos() as i64
}

/// A reader of the journal from its oldest line on, following rotations.
pub struct Follower {
    root: PathBuf,
    file: Option<File>,
    /// The partial line read so far (its writer is still writing it).
    partial: Vec<u8>,
}

impl Follower {
    /// Start at the oldest event kept.
    pub fn open(root: &Path) -> Follower {
        Follower {
            root: root.to_path_buf(),
            file: None,
            partial: Vec::new(),
        }
    }

    /// Every whole event appended since the last call (the first call:
    /// the whole history, the rotated journal first).
    pub fn next_batch(&mut self) -> Result<Vec<Message>> {
        let mut out = Vec::new();
        if self.file.is_none() {
            if let Ok(mut old) = File::open(self.root.join(ROTATED)) {
                let mut text = Vec::new();
                old.read_to_end(&mut text)?;
                parse_lines(&text, &mut out);
            }
            self.file = File::open(self.root.join(JOURNAL)).ok();
        }
        loop {
            let Some(file) = self.file.as_mut() else {
                self.file = File::open(self.root.join(JOURNAL)).ok();
                if self.file.is_none() {
                    return Ok(out);
                }
                continue;
            };
            let mut buf = Vec::new();
            file.read_to_end(&mut buf)?;
            self.partial.extend_from_slice(&buf);
            if let Some(end) = self.partial.iter().rposition(|&b| b == b'\n') {
                let whole: Vec<u8> = self.partial.drain(..=end).collect();
                parse_lines(&whole, &mut out);
            }
            // Rotated under us? Then what we hold is the older journal, now
            // read to its end: go on with the new one from its start.
            let ours = file.metadata()?.ino();
            match std::fs::metadata(self.root.join(JOURNAL)) {
                Ok(m) if m.ino() != ours => {
                    let mut next = File::open(self.root.join(JOURNAL))?;
                    next.seek(SeekFrom::Start(0))?;
                    self.file = Some(next);
                    self.partial.clear();
                }
                _ => return Ok(out),
            }
        }
    }
}

fn parse_lines(text: &[u8], out: &mut Vec<Message>) {
    for line in text.split(|&b| b == b'\n') {
        if let Ok(m) = serde_json::from_slice::<Message>(line) {
            out.push(m);
        }
    }
}

/// docker's own line for an event (docker/cli's `prettyPrintEvent`): the
/// time in the local zone with nine digits, type, action, actor ID, and
/// the attributes sorted, in parentheses.
pub fn pretty(m: &Message) -> String {
    let mut s = String::new();
    if m.time_nano != 0 {
        s.push_str(&local_rfc3339_nano(m.time_nano));
        s.push(' ');
    } else if m.time != 0 {
        s.push_str(&local_rfc3339_nano(m.time * 1_000_000_000));
        s.push(' ');
    }
    s.push_str(&format!("{} {} {}", m.typ, m.action, m.actor.id));
    if !m.actor.attributes.is_empty() {
        let attrs: Vec<String> = m
            .actor
            .attributes
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        s.push_str(&format!(" ({})", attrs.join(", ")));
    }
    s
}

/// Go's `2006-01-02T15:04:05.000000000Z07:00` in the local time zone:
/// `Z` for UTC, else the offset (`+01:00`).
pub fn local_rfc3339_nano(nanos: i64) -> String {
    rfc3339_nano_at(nanos, local_offset(nanos.div_euclid(1_000_000_000)))
}

/// The same at a given offset from UTC (seconds).
fn rfc3339_nano_at(nanos: i64, offset: i64) -> String {
    let secs = nanos.div_euclid(1_000_000_000);
    let shifted = UNIX_EPOCH
        + std::time::Duration::new(
            (secs + offset).max(0) as u64,
            nanos.rem_euclid(1_000_000_000) as u32,
        );
    let utc = crate::state::rfc3339(shifted);
    if offset == 0 {
        return utc;
    }
    let sign = if offset < 0 { '-' } else { '+' };
    let a = offset.abs();
    format!(
        "{}{sign}{:02}:{:02}",
        utc.trim_end_matches('Z'),
        a / 3600,
        a % 3600 / 60
    )
}

/// Go's `time.Time.String()` of a whole second, in the local zone: what
/// docker's templates print for `{{.CreatedAt}}` (`2026-12-07 04:18:38
/// +0000 UTC`).
pub fn go_time_string(secs: i64) -> String {
    let offset = local_offset(secs);
    let shifted = UNIX_EPOCH + std::time::Duration::from_secs((secs + offset).max(0) as u64);
    let iso = crate::state::rfc3339(shifted);
    let (date, time) = (&iso[..10], &iso[11..19]);
    let sign = if offset < 0 { '-' } else { '+' };
    let a = offset.abs();
    format!(
        "{date} {time} {sign}{:02}{:02} {}",
        a / 3600,
        a % 3600 / 60,
        local_zone_name(secs)
    )
}

/// The local zone's abbreviation at `secs` ("UTC", "CET").
fn local_zone_name(secs: i64) -> String {
    let t = secs as libc::time_t;
    // SAFETY: as in local_offset; tm_zone points into libc's static zone
    // names, valid for the life of the process, or is null.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe { !libc::localtime_r(&t, &mut tm).is_null() };
    if !ok || tm.tm_zone.is_null() {
        return "UTC".into();
    }
    unsafe { std::ffi::CStr::from_ptr(tm.tm_zone) }
        .to_string_lossy()
        .into_owned()
}

/// The local zone's offset from UTC at `secs`, in seconds (libc reads TZ
/// and /etc/localtime, as Go's time package does).
fn local_offset(secs: i64) -> i64 {
    let t = secs as libc::time_t;
    // SAFETY: localtime_r writes only into the tm we pass; a zeroed tm is
    // a valid value of that plain C struct.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe { !libc::localtime_r(&t, &mut tm).is_null() };
    if ok {
        tm.tm_gmtoff
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(typ: &str, action: &str, id: &str, attrs: &[(&str, &str)]) -> Message {
        Message::new(typ, action, actor(id, attrs))
    }

    #[test]
    fn lines_are_dockers_and_survive_a_torn_write() {
        let dir = tempfile::tempdir().unwrap();
        let a = msg(
            "container",
            "create",
            "abc",
            &[("image", "busybox"), ("name", "web")],
        );
        append(dir.path(), &a).unwrap();
        // A writer killed mid-line:
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.path().join(JOURNAL))
            .unwrap();
        f.write_all(b"{\"Type\":\"conta").unwrap();
        let b = msg(
            "network",
            "create",
            "n1",
            &[("name", "net"), ("type", "bridge")],
        );
        append(dir.path(), &b).unwrap();
        let got = Follower::open(dir.path()).next_batch().unwrap();
        assert_eq!(got, vec![a.clone(), b]);
        let line = std::fs::read_to_string(dir.path().join(JOURNAL)).unwrap();
        assert!(line.starts_with("{\"status\":\"create\",\"id\":\"abc\",\"from\":\"busybox\",\"Type\":\"container\",\"Action\":\"create\",\"Actor\":{\"ID\":\"abc\",\"Attributes\":{\"image\":\"busybox\",\"name\":\"web\"}},\"scope\":\"local\",\"time\":"));
    }

    #[test]
    fn the_journal_is_bounded_and_followed_across_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = Follower::open(dir.path());
        assert!(f.next_batch().unwrap().is_empty());
        let big = "x".repeat(4000);
        let mut written = 0;
        while std::fs::metadata(dir.path().join(ROTATED)).is_err() {
            append(dir.path(), &msg("volume", "create", &big, &[])).unwrap();
            written += 1;
        }
        append(dir.path(), &msg("volume", "destroy", "last", &[])).unwrap();
        let got = f.next_batch().unwrap();
        assert_eq!(got.len(), written + 1);
        assert_eq!(got.last().unwrap().action, "destroy");
        let total = std::fs::metadata(dir.path().join(JOURNAL)).unwrap().len()
            + std::fs::metadata(dir.path().join(ROTATED)).unwrap().len();
        assert!(total <= 2 * MAX_BYTES + 8192);
    }

    #[test]
    fn filters_are_dockerds() {
        let die = msg(
            "container",
            "die",
            "4f1c00",
            &[
                ("image", "busybox:latest"),
                ("name", "web"),
                ("tier", "db"),
                ("exitCode", "0"),
            ],
        );
        let exec = msg(
            "container",
            "exec_start: sh -c true",
            "4f1c00",
            &[("name", "web")],
        );
        let f = |pairs: &[&str]| {
            let mut f = Filters::default();
            for p in pairs {
                f.add_arg(p).unwrap();
            }
            f
        };
        assert!(f(&["type=container", "event=die"]).matches(&die));
        assert!(f(&["event=start", "event=die"]).matches(&die));
        assert!(!f(&["type=image"]).matches(&die));
        assert!(f(&["container=web"]).matches(&die));
        assert!(f(&["container=4f1"]).matches(&die));
        assert!(!f(&["container=db"]).matches(&die));
        assert!(f(&["image=busybox"]).matches(&die));
        assert!(f(&["image=busybox:latest"]).matches(&die));
        assert!(f(&["label=tier=db", "label=tier"]).matches(&die));
        assert!(!f(&["label=tier=web"]).matches(&die));
        assert!(f(&["event=exec_start"]).matches(&exec));
        let mut bad = Filters::default();
        assert_eq!(
            bad.add_arg("colour=red").unwrap_err().to_string(),
            "invalid filter 'colour'"
        );
        assert!(bad.add_arg("nokey").is_err());
    }

    #[test]
    fn timestamps_are_exact() {
        let now = UNIX_EPOCH + std::time::Duration::from_secs(1000);
        assert_eq!(
            parse_timestamp("1795000000.000000005", now).unwrap(),
            1_795_000_000_000_000_005
        );
        assert_eq!(parse_timestamp("12", now).unwrap(), 12_000_000_000);
        assert_eq!(parse_timestamp("10s", now).unwrap(), 990_000_000_000);
        assert!(parse_timestamp("soon", now).is_err());
    }

    #[test]
    fn pretty_lines_are_docker_clis() {
        let mut m = msg(
            "container",
            "die",
            "abc",
            &[("name", "web"), ("exitCode", "3")],
        );
        m.time_nano = 1_795_000_000_000_000_005;
        let line = pretty(&m);
        assert!(
            line.ends_with(".000000005Z container die abc (exitCode=3, name=web)")
                || line.contains(".000000005+")
                || line.contains(".000000005-"),
            "{line}"
        );
        assert_eq!(
            rfc3339_nano_at(m.time_nano, 0),
            "2026-11-18T11:06:40.000000005Z"
        );
        assert_eq!(
            rfc3339_nano_at(m.time_nano, 3600),
            "2026-11-18T12:06:40.000000005+01:00"
        );
        assert_eq!(
            rfc3339_nano_at(m.time_nano, -5400),
            "2026-11-18T09:36:40.000000005-01:30"
        );
    }
}
