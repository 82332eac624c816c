//! `ps`: which containers there are, in which state, as docker lists them.
//!
//! The records on disk may be stale (a monitor killed with SIGKILL, a host
//! that rebooted), so every record is reconciled with the kernel before it
//! is shown (see the `state` module), in memory: listing never writes.
//! Then docker's rules:
//!
//! - newest first; without `-a` only the containers that run (running,
//!   paused or restarting); `-n N` and `-l` take the N newest in any state;
//! - `--filter KEY=VALUE`, each one narrowing the list: `status=exited`,
//!   `name=web` (a substring), `id=3f2a` (a prefix), `label=KEY[=VALUE]`;
//! - the STATUS text, "Up 3 seconds (healthy)" or "Exited (0) 2 minutes
//!   ago", which the Engine API's `GET /containers/json` returns too;
//! - the published ports, read from what lab 05 reported at start.
//!
//! ```text
//! $ dockyard ps -a --filter status=exited --filter label=app=web
//! ```

use std::time::SystemTime;

use anyhow::{bail, Result};

use super::config::config_of;
use crate::engine::Engine;
use crate::state::{parse_rfc3339, Record, Status};
use crate::units::human_duration;

/// All records, reconciled with the kernel, newest first. Nothing is
/// written (see `Records::view`): listing works on a full disk.
pub fn list_all(engine: &Engine) -> Result<Vec<Record>> {
    let mut all = Vec::new();
    for r in engine.containers.list()? {
        all.push(engine.containers.view(r));
    }
    all.sort_by(|a, b| b.created.cmp(&a.created));
    Ok(all)
}

/// One of docker's container filters (`ps --filter`, and the `filters`
/// of `GET /containers/json`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// `status=running`: one of docker's state names.
    Status(String),
    /// `name=web`: a regular expression the name matches somewhere
    /// (`name=^web$` for exactly `web`), as docker's.
    Name(String),
    /// `id=3f2a`: the ID starts with it.
    Id(String),
    /// `label=KEY` or `label=KEY=VALUE`.
    Label { key: String, value: Option<String> },
}

/// The states `status=` accepts: docker's, `removing` included (a state
/// dockyard never records, so it matches nothing).
const STATUSES: [&str; 7] = [
    "created",
    "restarting",
    "running",
    "removing",
    "paused",
    "exited",
    "dead",
];

impl Filter {
    /// The filter `key=value`, refused as docker refuses it.
    pub fn new(key: &str, value: &str) -> Result<Filter> {
        Ok(match key {
            "status" => {
                if !STATUSES.contains(&value) {
                    bail!("invalid filter 'status={value}'");
                }
                Filter::Status(value.to_string())
            }
            "name" => Filter::Name(value.to_string()),
            "id" => Filter::Id(value.to_string()),
            "label" => match value.split_once('=') {
                Some((k, v)) => Filter::Label {
                    key: k.to_string(),
                    value: Some(v.to_string()),
                },
                None => Filter::Label {
                    key: value.to_string(),
                    value: None,
                },
            },
            other => bail!("invalid filter '{other}'"),
        })
    }

    /// Whether the container passes this filter.
    pub fn matches(&self, r: &Record) -> bool {
        match self {
            Filter::Status(s) => r.state.status.as_str() == s,
            Filter::Name(n) => regex_match(n, &r.name),
            Filter::Id(prefix) => r.id.starts_with(prefix.as_str()),
            Filter::Label { key, value } => {
                let labels = config_of(r).map(|c| c.labels).unwrap_or_default();
                labels
                    .get(key)
                    .is_some_and(|l| value.as_ref().is_none_or(|v| v == l))
            }
        }
    }
}

/// What `ps` is asked for.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// `-a`: stopped containers too.
    pub all: bool,
    /// `-n N` (`-l` is 1): the N newest, in any state.
    pub last: Option<usize>,
    pub filters: Vec<Filter>,
}

/// The containers `opts` asks for, newest first.
pub fn list(engine: &Engine, opts: &ListOptions) -> Result<Vec<Record>> {
    Ok(filter_list(list_all(engine)?, opts))
}

/// [`list`]'s choice among `records` (newest first).
pub fn filter_list(mut records: Vec<Record>, opts: &ListOptions) -> Vec<Record> {
    // A status filter looks at every container, as docker's: `ps -f
    // status=exited` lists exited ones without -a.
    let all = opts.all || opts.filters.iter().any(|f| matches!(f, Filter::Status(_)));
    match opts.last {
        Some(n) => records.truncate(n),
        None if !all => records.retain(|r| {
            matches!(
                r.state.status,
                Status::Running | Status::Paused | Status::Restarting
            )
        }),
        None => {}
    }
    for f in &opts.filters {
        records.retain(|r| f.matches(r));
    }
    records
}

/// Whether `text` matches the regular expression `re` somewhere: the part
/// of Go's syntax that container names call for, `^` and `$` anchors, `.`
/// for any character, `*` (zero or more), `+` and `?` after a character or
/// `.`, `\` to take the next character literally, and literal characters
/// (Pike's matcher, from Kernighan and Pike's *The Practice of
/// Programming*).
pub fn regex_match(re: &str, text: &str) -> bool {
    let re: Vec<char> = re.chars().collect();
    let text: Vec<char> = text.chars().collect();
    if let Some(rest) = re.strip_prefix(&['^']) {
        return match_here(rest, &text);
    }
    (0..=text.len()).any(|i| match_here(&re, &text[i..]))
}

/// `re` matches at the start of `text`.
fn match_here(re: &[char], text: &[char]) -> bool {
    let (atom, len) = match re {
        [] => return true,
        ['$'] => return text.is_empty(),
        ['\\', c, ..] => (Some(*c), 2),
        ['.', ..] => (None, 1),
        [c, ..] => (Some(*c), 1),
    };
    let one = |t: Option<&char>| t.is_some_and(|t| atom.is_none_or(|a| a == *t));
    match re.get(len) {
        Some('*') => match_repeat(atom, &re[len + 1..], text, 0),
        Some('+') => match_repeat(atom, &re[len + 1..], text, 1),
        Some('?') => {
            (one(text.first()) && match_here(&re[len + 1..], &text[1..]))
                || match_here(&re[len + 1..], text)
        }
        _ => one(text.first()) && match_here(&re[len..], &text[1..]),
    }
}

/// `atom` (None: any character) at least `min` times, then `re`.
fn match_repeat(atom: Option<char>, re: &[char], text: &[char], min: usize) -> bool {
    let mut n = 0;
    loop {
        if n >= min && match_here(re, &text[n..]) {
            return true;
        }
        match text.get(n) {
            Some(t) if atom.is_none_or(|a| a == *t) => n += 1,
            _ => return false,
        }
    }
}

/// The STATUS column: "Up 3 seconds", "Exited (0) 2 minutes ago", "Created".
pub fn status_text(r: &Record, now: SystemTime) -> String {
    let since = |t: &str| {
        parse_rfc3339(t)
            .map(|t| now.duration_since(t).unwrap_or_default())
            .unwrap_or_default()
    };
    match r.state.status {
        Status::Created => "Created".into(),
        Status::Running => format!(
            "Up {}{}",
            human_duration(since(&r.state.started_at)),
            match r.state.health.as_ref().map(|h| h.status.as_str()) {
                Some("starting") => " (health: starting)",
                Some("healthy") => " (healthy)",
                Some("unhealthy") => " (unhealthy)",
                _ => "",
            }
        ),
        Status::Paused => format!("Up {} (Paused)", human_duration(since(&r.state.started_at))),
        Status::Restarting => format!(
            "Restarting ({}) {} ago",
            r.state.exit_code,
            human_duration(since(&r.state.finished_at))
        ),
        Status::Exited => format!(
            "Exited ({}) {} ago",
            r.state.exit_code,
            human_duration(since(&r.state.finished_at))
        ),
        Status::Dead => "Dead".into(),
    }
}

/// One published port of a running container: `-p 8080:80` is host port
/// 8080 on `0.0.0.0` to container port 80/tcp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedPort {
    pub host_ip: String,
    pub host_port: u16,
    pub container_port: u16,
    /// "tcp" or "udp".
    pub proto: String,
}

/// The ports a running container publishes, from what lab 05 reported at
/// its start (the record's `network`); none when it does not run.
pub fn published_ports(r: &Record) -> Vec<PublishedPort> {
    let Some(n) = &r.state.network else {
        return Vec::new();
    };
    let port = |v: &serde_json::Value| v.as_u64().and_then(|p| u16::try_from(p).ok());
    n["Ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| PublishedPort {
            host_ip: p["HostIp"].as_str().unwrap_or("0.0.0.0").to_string(),
            host_port: port(&p["HostPort"]).unwrap_or(0),
            container_port: port(&p["ContainerPort"]).unwrap_or(0),
            proto: p["Proto"].as_str().unwrap_or("tcp").to_string(),
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::state::{rfc3339, State};
    use std::time::Duration;

    /// A container record as `create` writes one, with `config` as its
    /// stored config.
    pub(crate) fn record(
        id: &str,
        name: &str,
        status: Status,
        config: serde_json::Value,
    ) -> Record {
        Record {
            id: format!("{id:0<64}"),
            name: name.into(),
            created: "2024-01-01T00:00:00Z".into(),
            state: State {
                status,
                ..State::default()
            },
            config,
        }
    }

    fn labelled(labels: serde_json::Value) -> serde_json::Value {
        let mut c = serde_json::to_value(crate::container::ContainerConfig::default()).unwrap();
        c["labels"] = labels;
        c
    }

    #[test]
    fn name_filters_are_regular_expressions() {
        for (re, name, want) in [
            ("web", "my-web-1", true),
            ("^web$", "web", true),
            ("^web$", "web2", false),
            ("^web", "myweb", false),
            ("b.*1$", "web-1", true),
            ("we+b", "weeeb", true),
            ("x?web", "web", true),
            ("a\\.b", "a.b", true),
            ("a\\.b", "axb", false),
            ("", "anything", true),
        ] {
            assert_eq!(regex_match(re, name), want, "{re} on {name}");
        }
    }

    #[test]
    fn filters_are_checked_like_dockers() {
        assert_eq!(
            Filter::new("status", "exited").unwrap(),
            Filter::Status("exited".into())
        );
        assert!(Filter::new("status", "removing").is_ok());
        assert_eq!(
            Filter::new("status", "stopped").unwrap_err().to_string(),
            "invalid filter 'status=stopped'"
        );
        assert_eq!(
            Filter::new("ancestor", "busybox").unwrap_err().to_string(),
            "invalid filter 'ancestor'"
        );
        assert_eq!(
            Filter::new("label", "app=web").unwrap(),
            Filter::Label {
                key: "app".into(),
                value: Some("web".into())
            }
        );
    }

    #[test]
    fn filters_match_name_id_status_and_labels() {
        let web = record(
            "abc123",
            "my-web",
            Status::Running,
            labelled(serde_json::json!({"app": "web", "tier": ""})),
        );
        let f = |k: &str, v: &str| Filter::new(k, v).unwrap().matches(&web);
        assert!(f("name", "web"));
        assert!(!f("name", "db"));
        assert!(f("id", "abc1"));
        assert!(!f("id", "bc"));
        assert!(f("status", "running"));
        assert!(!f("status", "exited"));
        assert!(f("label", "app"));
        assert!(f("label", "app=web"));
        assert!(f("label", "tier="));
        assert!(!f("label", "app=db"));
        assert!(!f("label", "team"));
    }

    #[test]
    fn select_keeps_running_ones_unless_all_or_last() {
        let list = vec![
            record("c", "newest", Status::Exited, serde_json::json!({})),
            record("b", "mid", Status::Paused, serde_json::json!({})),
            record("a", "oldest", Status::Running, serde_json::json!({})),
        ];
        let names = |opts: ListOptions| -> Vec<String> {
            filter_list(list.clone(), &opts)
                .into_iter()
                .map(|r| r.name)
                .collect()
        };
        assert_eq!(names(ListOptions::default()), ["mid", "oldest"]);
        let all = ListOptions {
            all: true,
            ..Default::default()
        };
        assert_eq!(names(all), ["newest", "mid", "oldest"]);
        let last = ListOptions {
            last: Some(1),
            ..Default::default()
        };
        assert_eq!(names(last), ["newest"], "-n takes stopped ones too");
        let filtered = ListOptions {
            all: true,
            filters: vec![Filter::Status("paused".into())],
            ..Default::default()
        };
        assert_eq!(names(filtered), ["mid"]);
    }

    #[test]
    fn status_text_reads_like_dockers() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let ago = |s: u64| rfc3339(now - Duration::from_secs(s));
        let mut r = record("a", "x", Status::Created, serde_json::json!({}));
        assert_eq!(status_text(&r, now), "Created");
        r.state.status = Status::Running;
        r.state.started_at = ago(3);
        assert_eq!(status_text(&r, now), "Up 3 seconds");
        r.state.health = Some(crate::state::Health {
            status: "healthy".into(),
            ..Default::default()
        });
        assert_eq!(status_text(&r, now), "Up 3 seconds (healthy)");
        r.state.status = Status::Paused;
        assert_eq!(status_text(&r, now), "Up 3 seconds (Paused)");
        r.state.status = Status::Exited;
        r.state.exit_code = 137;
        r.state.finished_at = ago(120);
        assert_eq!(status_text(&r, now), "Exited (137) 2 minutes ago");
        r.state.status = Status::Restarting;
        assert_eq!(status_text(&r, now), "Restarting (137) 2 minutes ago");
    }

    #[test]
    fn published_ports_come_from_the_recorded_endpoint() {
        let mut r = record("a", "x", Status::Running, serde_json::json!({}));
        assert!(published_ports(&r).is_empty());
        r.state.network = Some(serde_json::json!({"Ports": [
            {"ContainerPort": 80, "Proto": "tcp", "HostIp": "0.0.0.0", "HostPort": 8080},
            {"ContainerPort": 53, "Proto": "udp", "HostIp": "127.0.0.1", "HostPort": 5353},
        ]}));
        let ports = published_ports(&r);
        assert_eq!(
            ports[1],
            PublishedPort {
                host_ip: "127.0.0.1".into(),
                host_port: 5353,
                container_port: 53,
                proto: "udp".into()
            }
        );
        assert_eq!(ports[0].host_port, 8080);
    }
}
