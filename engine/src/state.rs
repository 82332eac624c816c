//! Container state on disk: one directory per container under
//! `<data-root>/containers/<id>/`, holding `state.json`.
//!
//! Dockyard has no daemon keeping state in memory. Any number of `dockyard`
//! processes may run at once (a `ps` while a `run -d` starts and a monitor
//! records an exit), so the files are the only truth, and two rules keep them
//! consistent:
//!
//! - **Atomic writes.** A record is written to a temporary file in the same
//!   directory, flushed with fsync, and renamed over the old one. rename(2)
//!   within one filesystem is atomic: a reader sees the old record or the new
//!   one, never half of each, even if the writer dies mid-write. The fsyncs
//!   are for a crash of the *machine*: without them the new file's data may
//!   not be on disk when the rename is, and the record would come back empty.
//!   A `--rm` container's record does not outlive the container, which a
//!   crash ends anyway, so its writes skip the fsyncs (two per write, the
//!   slowest part of a start on a busy disk) and keep only the atomicity.
//! - **A lock for read-modify-write.** Changing a record (or claiming a
//!   name) happens under an exclusive flock(2) on `<data-root>/containers.lock`,
//!   so two writers never both read the old state and lose one update. The
//!   kernel drops the lock when its holder dies, so a crash never leaves it
//!   stuck.
//!
//! **Reconciliation.** A record that says "running" may be stale: the monitor
//! may have been killed with SIGKILL, or the host rebooted. Before showing a
//! record, [`Records::reconcile`] checks that its process still exists *and* is
//! the same process (PIDs are reused, so it compares the start time from
//! `/proc/PID/stat`), and otherwise marks it exited. Listing uses
//! [`Records::view`], which does the same in memory only: `ps` never writes,
//! so a full disk cannot keep anyone from seeing, then removing, what is
//! there.
//!
//! **Whole or nothing.** A container's directory appears in `containers/`
//! complete (staged elsewhere, then renamed in) and leaves it in one rename
//! (lab 04's `create_container_staged` and `remove_container`), and a record
//! is never written where the directory is gone ([`Records::save`]): killed at
//! any moment, the store holds no ghost that `ps` lists and every other
//! command calls nonexistent, and no orphan directory that nothing lists.
//!
//! **Freezes have holders.** Whoever freezes a container (`cp`, `commit`,
//! `pause`) holds a lock that the kernel drops when it dies; a freeze with
//! no holder, on a container not paused on purpose, is thawed by the next
//! command that looks ([`Records::hold_freeze`]).

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};

/// Docker's container states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Created,
    Running,
    Paused,
    Restarting,
    Exited,
    Dead,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Restarting => "restarting",
            Status::Exited => "exited",
            Status::Dead => "dead",
        }
    }
}

/// What happened to the container's process, as `docker inspect` shows under `State`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub status: Status,
    /// The container's init process on the host, 0 when not running.
    pub pid: i32,
    /// `/proc/PID/stat` start time of `pid`, to tell it from a reused PID.
    pub pid_start_time: u64,
    /// The monitor process that waits for the container.
    pub monitor_pid: i32,
    pub exit_code: i32,
    pub oom_killed: bool,
    pub error: String,
    /// RFC 3339 times; docker's zero time when unset.
    pub started_at: String,
    pub finished_at: String,
    pub restart_count: u32,
    /// Set by `stop`: a restart policy must not bring the container back.
    #[serde(default)]
    pub manually_stopped: bool,
    /// Where lab 05 attached it, while it runs (see `network::endpoint_json`).
    #[serde(default)]
    pub network: Option<serde_json::Value>,
    /// The health check's results, when it has one.
    #[serde(default)]
    pub health: Option<Health>,
    /// Whom the first process started as (lab 02's switch; none: root as
    /// it is), for an `exec` that names no user (see `container::exec`).
    #[serde(default)]
    pub user: Option<lab02_namespaces::RunAs>,
}

impl Default for State {
    fn default() -> Self {
        State {
            status: Status::Created,
            pid: 0,
            pid_start_time: 0,
            monitor_pid: 0,
            exit_code: 0,
            oom_killed: false,
            error: String::new(),
            started_at: ZERO_TIME.into(),
            finished_at: ZERO_TIME.into(),
            restart_count: 0,
            manually_stopped: false,
            network: None,
            health: None,
            user: None,
        }
    }
}

/// Docker's "never": Go's zero time.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// One container's record. `config` is the engine's own description of what
/// to run (image, command, limits, mounts...), kept opaque here.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    /// 64 hex digits.
    pub id: String,
    /// Without docker's leading slash.
    pub name: String,
    pub created: String,
    pub state: State,
    pub config: serde_json::Value,
}

/// The containers of one data root.
#[derive(Debug, Clone)]
pub struct Records {
    dir: PathBuf,
}

/// An exclusive lock on the store, released on drop (or when the process dies).
pub struct Lock(#[allow(dead_code)] nix::fcntl::Flock<File>);

impl Records {
    /// Open (creating if needed) `<root>/containers`.
    pub fn open(root: &Path) -> Result<Records> {
        let dir = root.join("containers");
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Records { dir })
    }

    /// Take the store's lock. Hold it across every read-modify-write.
    pub fn lock(&self) -> Result<Lock> {
        let path = self.dir.join("../containers.lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        let locked = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| anyhow!("locking {}: {e}", path.display()))?;
        Ok(Lock(locked))
    }

    /// The directory of one container.
    pub fn dir_of(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    /// Every record, unordered. Records that cannot be read are skipped with a
    /// warning rather than making `ps` fail.
    pub fn list(&self) -> Result<Vec<Record>> {
        let mut out = Vec::new();
        for entry in
            fs::read_dir(&self.dir).with_context(|| format!("reading {}", self.dir.display()))?
        {
            let entry = entry?;
            if !entry.file_type()?.is_dir() {
                continue;
            }
            let id = entry.file_name().to_string_lossy().into_owned();
            match self.load(&id) {
                Ok(r) => out.push(r),
                Err(e) if is_not_found(&e) => {} // removed meanwhile, or still being created
                Err(e) => eprintln!("warning: skipping container {id}: {e:#}"),
            }
        }
        Ok(out)
    }

    /// Read one record by full ID.
    pub fn load(&self, id: &str) -> Result<Record> {
        let path = self.dir_of(id).join("state.json");
        let mut text = String::new();
        File::open(&path)
            .and_then(|mut f| f.read_to_string(&mut text))
            .with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    /// Write a record atomically. Call with the lock held.
    ///
    /// The container's directory must exist: it is never created here, so
    /// that a late write (a monitor recording an exit after `rm -f` took the
    /// container away) fails instead of bringing back a directory with a
    /// record and nothing else, a ghost that lists but cannot be used.
    pub fn save(&self, lock: &Lock, record: &Record) -> Result<()> {
        self.save_in(lock, record, &self.dir_of(&record.id))
    }

    /// [`Records::save`] into `dir`: a container being created, whose
    /// directory is still staged elsewhere (lab 04's `create_container_staged`).
    pub fn save_in(&self, _lock: &Lock, record: &Record, dir: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(record).context("serializing state")?;
        let durable = record.config.get("auto_remove").and_then(|v| v.as_bool()) != Some(true);
        write_atomic(&dir.join("state.json"), &json, durable).map_err(|e| {
            if is_not_found(&e) {
                anyhow!("No such container: {}", record.id)
            } else {
                e
            }
        })
    }

    /// Find a container the way docker does: exact full ID, exact name, then
    /// a unique ID prefix.
    pub fn resolve(&self, what: &str) -> Result<Record> {
        let all = self.list()?;
        let what = what.strip_prefix('/').unwrap_or(what);
        // Every command that names a container comes through here: the
        // place to notice a freeze that nobody holds (see `hold_freeze`).
        if let Some(r) = all.iter().find(|r| r.id == what || r.name == what) {
            return Ok(self.live(r.clone()));
        }
        let matches: Vec<&Record> = all
            .iter()
            .filter(|r| !what.is_empty() && r.id.starts_with(what))
            .collect();
        match matches.as_slice() {
            [one] => Ok(self.live((*one).clone())),
            [] => bail!("No such container: {what}"),
            _ => bail!("multiple IDs found with provided prefix: {what}"),
        }
    }

    // ANCHOR: reconcile
    /// Bring a "running" or "paused" record in line with the kernel: if its
    /// process is gone (or the PID now belongs to another process), the
    /// container exited while nobody watched. Returns the possibly updated
    /// record, saved under the lock.
    pub fn reconcile(&self, record: Record) -> Result<Record> {
        if !is_stale(&record) {
            return Ok(self.live(record));
        }
        let lock = self.lock()?;
        let fresh = self.load(&record.id)?;
        if !is_stale(&fresh) {
            return Ok(self.live(fresh));
        }
        let fresh = reconciled(fresh);
        // A full disk must not make a container unusable: the record on
        // disk stays stale, and the next command reconciles it again.
        if let Err(e) = self.save(&lock, &fresh) {
            if !is_no_space(&e) {
                return Err(e);
            }
        }
        Ok(fresh)
    }

    /// [`Records::view`]'s work on a record that is not stale: a freeze
    /// that nobody holds is thawed (see [`Records::hold_freeze`]).
    fn live(&self, record: Record) -> Record {
        if record.state.status == Status::Running {
            if let Err(e) = self.thaw_abandoned(&record) {
                eprintln!("warning: container {}: {e:#}", record.id);
            }
        }
        record
    }

    /// [`Records::reconcile`] without writing: what `ps`, `inspect` and the
    /// other readers show. Listing never writes, so a full disk (or a
    /// read-only one) cannot stop anyone from seeing, and then removing,
    /// what is there.
    pub fn view(&self, record: Record) -> Record {
        if is_stale(&record) {
            reconciled(record)
        } else {
            self.live(record)
        }
    }
    // ANCHOR_END: reconcile

    // ANCHOR: hold_freeze
    /// Say that this process freezes container `id` (`cp`, `commit`, `pause`)
    /// until the returned lock is dropped or the process dies: a shared
    /// flock(2) on `containers/<id>/freeze.lock`.
    ///
    /// **Why.** A frozen container whose freezer died (a crash, kill -9)
    /// would stay frozen forever: `ps` says Up, `unpause` says it is not
    /// paused, `exec` hangs. The kernel drops a dead process's locks, so a
    /// freeze with no holder is one that nobody will undo, and the next
    /// command that looks at the container thaws it (`thaw_abandoned`),
    /// unless its record says "paused": `docker pause` means it.
    pub fn hold_freeze(&self, id: &str) -> Result<Lock> {
        self.freeze_lock(id, nix::fcntl::FlockArg::LockShared)?
            .ok_or_else(|| anyhow!("locking the freeze of {id}"))
    }

    fn freeze_lock(&self, id: &str, how: nix::fcntl::FlockArg) -> Result<Option<Lock>> {
        let path = self.dir_of(id).join("freeze.lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    anyhow!("No such container: {id}")
                } else {
                    anyhow!(e).context(format!("opening {}", path.display()))
                }
            })?;
        match nix::fcntl::Flock::lock(file, how) {
            Ok(l) => Ok(Some(Lock(l))),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
            Err((_, e)) => Err(anyhow!("locking {}: {e}", path.display())),
        }
    }

    /// Thaw a running container that is frozen while nobody holds the
    /// freeze (its freezer died). Returns whether it did.
    pub fn thaw_abandoned(&self, r: &Record) -> Result<bool> {
        if r.state.status != Status::Running {
            return Ok(false); // paused on purpose, or not running at all
        }
        let parent = r.config["cgroup_parent"]
            .as_str()
            .filter(|p| !p.is_empty())
            .unwrap_or(lab03_cgroups::DEFAULT_PARENT);
        // No cgroups to read (a rootless engine), or none for this
        // container: nothing can be frozen.
        let Ok(host) = lab03_cgroups::detect() else {
            return Ok(false);
        };
        if !lab03_cgroups::is_frozen(&host, parent, &r.id).unwrap_or(false) {
            return Ok(false);
        }
        // Exclusive, without waiting: granted only if no holder is left.
        let Some(_nobody) = self.freeze_lock(&r.id, nix::fcntl::FlockArg::LockExclusiveNonblock)?
        else {
            return Ok(false);
        };
        // Re-read: a `pause` may have finished meanwhile.
        if self.load(&r.id).ok().map(|f| f.state.status) != Some(Status::Running) {
            return Ok(false);
        }
        lab03_cgroups::freeze(&host, parent, &r.id, false)?;
        Ok(true)
    }
    // ANCHOR_END: hold_freeze
}

/// A record that says its process runs when neither it nor its monitor do.
fn is_stale(r: &Record) -> bool {
    matches!(
        r.state.status,
        Status::Running | Status::Paused | Status::Restarting
    ) && !process_is(r.state.pid, r.state.pid_start_time)
        && !process_alive(r.state.monitor_pid)
}

/// What a stale record means: the container exited unobserved.
fn reconciled(mut r: Record) -> Record {
    r.state.status = Status::Exited;
    r.state.pid = 0;
    r.state.monitor_pid = 0;
    // Docker reports 255 when it cannot know the exit code.
    r.state.exit_code = 255;
    r.state.error = "container process vanished: its monitor died".into();
    if r.state.finished_at == ZERO_TIME {
        r.state.finished_at = now_rfc3339();
    }
    r
}

/// Whether an error is ENOSPC (or EDQUOT): the disk is full.
pub fn is_no_space(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .and_then(|io| io.raw_os_error())
            .is_some_and(|n| n == libc::ENOSPC || n == libc::EDQUOT)
    })
}

impl Records {
    /// Every container directory, complete or not (see [`Records::list`]).
    pub fn dirs(&self) -> Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        for e in
            fs::read_dir(&self.dir).with_context(|| format!("reading {}", self.dir.display()))?
        {
            let e = e?;
            if e.file_type()?.is_dir() {
                out.push(e.path());
            }
        }
        Ok(out)
    }
}

fn is_not_found(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound)
    })
}

// ANCHOR: atomic
/// Write `data` to `path` atomically: temp file, fsync, rename, fsync the dir.
/// Without `durable`, no fsync: still atomic for readers, but a crash of the
/// machine may lose the write.
pub fn write_atomic(path: &Path, data: &[u8], durable: bool) -> Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| anyhow!("{} has no parent", path.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
        std::process::id()
    ));
    let mut f = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(data)
        .with_context(|| format!("writing {}", tmp.display()))?;
    if durable {
        f.sync_all()
            .with_context(|| format!("fsync {}", tmp.display()))?;
    }
    fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    if durable {
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}
// ANCHOR_END: atomic

/// The start time (field 22 of `/proc/PID/stat`, in clock ticks since boot).
pub fn process_start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses: parse
    // from the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(19)?.parse().ok()
}

/// Whether `pid` is alive and is the process that started at `start_time`.
pub fn process_is(pid: i32, start_time: u64) -> bool {
    pid > 0 && process_start_time(pid).is_some_and(|t| t == start_time) && !is_zombie(pid)
}

/// Whether `pid` is a live process (not a zombie).
pub fn process_alive(pid: i32) -> bool {
    pid > 0 && Path::new(&format!("/proc/{pid}")).exists() && !is_zombie(pid)
}

fn is_zombie(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rfind(')').map(|i| s[i + 2..].starts_with('Z')))
        .unwrap_or(false)
}

/// Docker's container names: `--name` must match `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn validate_name(name: &str) -> Result<()> {
    let name = name.strip_prefix('/').unwrap_or(name);
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if !ok {
        bail!("Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed");
    }
    Ok(())
}

/// A random name in docker's style: an adjective and a notable scientist.
pub fn random_name(taken: impl Fn(&str) -> bool) -> Result<String> {
    const LEFT: [&str; 24] = [
        "admiring", "bold", "brave", "clever", "dazzling", "eager", "elated", "focused",
        "friendly", "gallant", "happy", "hopeful", "jolly", "keen", "loving", "modest", "nifty",
        "peaceful", "quirky", "relaxed", "serene", "sharp", "vibrant", "zealous",
    ];
    const RIGHT: [&str; 24] = [
        "agnesi", "babbage", "bohr", "curie", "darwin", "dijkstra", "einstein", "euler", "feynman",
        "galileo", "hopper", "hypatia", "kepler", "lamarr", "lovelace", "meitner", "newton",
        "noether", "pasteur", "ritchie", "shannon", "thompson", "torvalds", "turing",
    ];
    let mut bytes = [0u8; 16];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom")?;
    for pair in bytes.chunks(2) {
        let name = format!(
            "{}_{}",
            LEFT[pair[0] as usize % LEFT.len()],
            RIGHT[pair[1] as usize % RIGHT.len()]
        );
        if !taken(&name) {
            return Ok(name);
        }
    }
    // Like docker, add a digit when the plain names collide.
    for n in 0..1000 {
        let name = format!(
            "{}_{}{n}",
            LEFT[bytes[0] as usize % LEFT.len()],
            RIGHT[bytes[1] as usize % RIGHT.len()]
        );
        if !taken(&name) {
            return Ok(name);
        }
    }
    bail!("could not find a free container name")
}

/// Now, as RFC 3339 with nanoseconds in UTC, as docker prints times.
pub fn now_rfc3339() -> String {
    rfc3339(std::time::SystemTime::now())
}

pub use dockyard_monitor::time::rfc3339;

/// Parse what [`rfc3339`] writes back into a time (None for the zero time).
pub fn parse_rfc3339(s: &str) -> Option<std::time::SystemTime> {
    if s == ZERO_TIME {
        return None;
    }
    let (date, time) = s.trim_end_matches('Z').split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.split(':').map(|x| x.parse::<i64>());
    let (hh, mm, ss) = (t.next()?.ok()?, t.next()?.ok()?, t.next()?.ok()?);
    let nanos: u32 = format!("{frac:0<9}")[..9].parse().ok()?;
    let secs = days_from_civil(y, m, day) * 86400 + hh * 3600 + mm * 60 + ss;
    Some(std::time::UNIX_EPOCH + std::time::Duration::new(secs as u64, nanos))
}

// Howard Hinnant's algorithm, the inverse of `dockyard_monitor::time::civil_from_days`.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// `State.Health`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Health {
    #[serde(rename = "Status")]
    pub status: String,
    #[serde(rename = "FailingStreak")]
    pub failing_streak: u32,
    #[serde(rename = "Log")]
    pub log: Vec<Probe>,
}

/// One check's result.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Probe {
    #[serde(rename = "Start")]
    pub start: String,
    #[serde(rename = "End")]
    pub end: String,
    #[serde(rename = "ExitCode")]
    pub exit_code: i32,
    #[serde(rename = "Output")]
    pub output: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record, and its directory as `create` makes it.
    fn record_in(store: &Records, id: &str, name: &str) -> Record {
        fs::create_dir_all(store.dir_of(id)).unwrap();
        record(id, name)
    }

    fn record(id: &str, name: &str) -> Record {
        Record {
            id: id.into(),
            name: name.into(),
            created: now_rfc3339(),
            state: State::default(),
            config: serde_json::json!({}),
        }
    }

    #[test]
    fn resolve_by_id_name_and_unique_prefix() {
        let root = tempfile::tempdir().unwrap();
        let store = Records::open(root.path()).unwrap();
        let lock = store.lock().unwrap();
        store
            .save(
                &lock,
                &record_in(&store, &format!("abc1{}", "0".repeat(60)), "web"),
            )
            .unwrap();
        store
            .save(
                &lock,
                &record_in(&store, &format!("abc2{}", "0".repeat(60)), "db"),
            )
            .unwrap();
        drop(lock);
        assert_eq!(store.resolve("web").unwrap().name, "web");
        assert_eq!(store.resolve("abc2").unwrap().name, "db");
        let err = store.resolve("abc").unwrap_err().to_string();
        assert!(
            err.contains("multiple IDs found with provided prefix: abc"),
            "{err}"
        );
        let err = store.resolve("nope").unwrap_err().to_string();
        assert_eq!(err, "No such container: nope");
    }

    #[test]
    fn a_running_record_whose_process_is_gone_is_reconciled() {
        let root = tempfile::tempdir().unwrap();
        let store = Records::open(root.path()).unwrap();
        // A real process that has exited and been reaped: its PID is free.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        child.wait().unwrap();
        let mut r = record_in(&store, &"f".repeat(64), "gone");
        r.state.status = Status::Running;
        r.state.pid = pid;
        r.state.pid_start_time = 1;
        r.state.monitor_pid = pid;
        let lock = store.lock().unwrap();
        store.save(&lock, &r).unwrap();
        drop(lock);
        let r = store.reconcile(store.load(&r.id).unwrap()).unwrap();
        assert_eq!(r.state.status, Status::Exited);
        assert_eq!(store.load(&r.id).unwrap().state.status, Status::Exited);
    }

    #[test]
    fn viewing_a_stale_record_writes_nothing() {
        let root = tempfile::tempdir().unwrap();
        let store = Records::open(root.path()).unwrap();
        let mut r = record_in(&store, &"e".repeat(64), "stale");
        r.state.status = Status::Running;
        r.state.pid = i32::MAX; // no such process
        r.state.monitor_pid = i32::MAX;
        let lock = store.lock().unwrap();
        store.save(&lock, &r).unwrap();
        drop(lock);
        let path = store.dir_of(&r.id).join("state.json");
        let before = fs::read(&path).unwrap();
        // What ps shows: exited, from memory...
        let shown = store.view(store.load(&r.id).unwrap());
        assert_eq!(shown.state.status, Status::Exited);
        assert_eq!(shown.state.exit_code, 255);
        // ...and the disk untouched (a full disk cannot stop a listing).
        assert_eq!(fs::read(&path).unwrap(), before);
        assert_eq!(fs::read_dir(store.dir_of(&r.id)).unwrap().count(), 1);
    }

    #[test]
    fn a_record_is_never_saved_into_a_removed_container() {
        let root = tempfile::tempdir().unwrap();
        let store = Records::open(root.path()).unwrap();
        let r = record(&"d".repeat(64), "gone");
        let lock = store.lock().unwrap();
        // A monitor recording an exit after `rm -f` took the directory:
        // no ghost directory with a record and nothing else comes back.
        let err = store.save(&lock, &r).unwrap_err().to_string();
        assert_eq!(err, format!("No such container: {}", r.id));
        assert!(!store.dir_of(&r.id).exists());
    }

    #[test]
    fn a_live_process_is_recognised_by_its_start_time() {
        let me = std::process::id() as i32;
        let start = process_start_time(me).unwrap();
        assert!(process_is(me, start));
        assert!(!process_is(me, start + 1));
    }

    #[test]
    fn times_round_trip() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::new(1_795_000_000, 123_456_789);
        let s = rfc3339(t);
        assert_eq!(s, "2026-11-18T11:06:40.123456789Z");
        assert_eq!(parse_rfc3339(&s), Some(t));
        assert_eq!(parse_rfc3339(ZERO_TIME), None);
    }

    #[test]
    fn names_follow_dockers_rules() {
        assert!(validate_name("web-1").is_ok());
        assert!(validate_name("/web").is_ok());
        let err = validate_name("-bad").unwrap_err().to_string();
        assert!(err.contains("Invalid container name (-bad)"), "{err}");
        let n = random_name(|_| false).unwrap();
        assert!(validate_name(&n).is_ok());
    }
}
