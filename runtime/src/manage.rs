//! # state, list, ps, pause, resume, update: looking at and adjusting a
//! container that exists
//!
//! Each of these reads the container's state file and acts on what the
//! kernel shows now: its PID's liveness, its cgroup's `cgroup.procs`, the
//! freezer (lab 03's `freeze`, what `docker pause` uses) and the limit
//! files (lab 03's `Cgroup::update`, what `docker update` uses).

use std::io::Read;

use anyhow::{bail, Context};
use lab03_cgroups as lab03;

use crate::cli::Global;
use crate::state::{self, Record, Status};

/// `state ID`: the OCI state JSON, indented as runc prints it.
pub fn state(g: &Global, id: &str) -> anyhow::Result<()> {
    let record = Record::load(&g.root, id)?;
    let status = record.status(&g.root);
    println!(
        "{}",
        serde_json::to_string_pretty(&record.oci_state(status))?
    );
    Ok(())
}

/// `list [--format table|json] [-q]`.
pub fn list(g: &Global, format: &str, quiet: bool) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    for id in state::ids(&g.root)? {
        if let Ok(r) = Record::load(&g.root, &id) {
            let status = r.status(&g.root);
            rows.push((r, status));
        }
    }
    if quiet {
        rows.iter().for_each(|(r, _)| println!("{}", r.id));
        return Ok(());
    }
    match format {
        "json" => {
            let v: Vec<_> = rows.iter().map(|(r, s)| r.oci_state(*s)).collect();
            println!("{}", serde_json::to_string(&v)?);
        }
        "table" => {
            let table: Vec<[String; 6]> = rows
                .iter()
                .map(|(r, s)| {
                    let pid = if *s == Status::Stopped { 0 } else { r.pid };
                    [
                        r.id.clone(),
                        pid.to_string(),
                        s.name().to_string(),
                        r.bundle.display().to_string(),
                        r.created.clone(),
                        "root".to_string(),
                    ]
                })
                .collect();
            print!(
                "{}",
                render_table(
                    &["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"],
                    &table
                )
            );
        }
        other => bail!("invalid format option {other:?}: table or json"),
    }
    Ok(())
}

/// Columns padded like Go's tabwriter with runc's settings (padding 1 and
/// at least 12 wide, left-aligned).
pub fn render_table(head: &[&str; 6], rows: &[[String; 6]]) -> String {
    let mut widths: Vec<usize> = head.iter().map(|h| h.len()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let last = cells.len() - 1;
        for (i, c) in cells.iter().enumerate() {
            if i == last {
                out.push_str(c);
            } else {
                out.push_str(&format!("{c:<w$}", w = widths[i].max(11) + 1));
            }
        }
        out.push('\n');
    };
    line(head.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
    out
}

/// `ps [--format json] ID`: the host PIDs of the container's cgroup.
pub fn ps(g: &Global, id: &str, format: &str) -> anyhow::Result<()> {
    let record = Record::load(&g.root, id)?;
    let pids = match &record.cgroup {
        Some((parent, name)) => lab03::group_pids(&lab03::detect()?, parent, name)?,
        None => vec![record.pid],
    };
    match format {
        "json" => println!("{}", serde_json::to_string(&pids)?),
        "table" => {
            println!("{:>7} CMD", "PID");
            for pid in pids {
                let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                let cmd: Vec<String> = cmd
                    .split(|&b| b == 0)
                    .filter(|a| !a.is_empty())
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect();
                println!("{pid:>7} {}", cmd.join(" "));
            }
        }
        other => bail!("invalid format option {other:?}: table or json"),
    }
    Ok(())
}

/// `pause` / `resume`: lab 03's freezer on the container's cgroup.
pub fn pause(g: &Global, id: &str, frozen: bool) -> anyhow::Result<()> {
    let _lock = crate::state::Lock::exclusive(&g.root, id)?;
    let record = Record::load(&g.root, id)?;
    let status = record.status(&g.root);
    match (frozen, status) {
        (true, Status::Running) | (false, Status::Paused) => {}
        (true, s) => bail!("container not running: {}", s.name()),
        (false, s) => bail!("container not paused: {}", s.name()),
    }
    let (parent, name) = record
        .cgroup
        .as_ref()
        .context("the container has no cgroup")?;
    lab03::freeze(&lab03::detect()?, parent, name, frozen)
}

/// `update [--resources FILE|-] [--memory N] [--pids-limit N] ID`:
/// `linux.resources` JSON (what containerd sends on stdin) and runc's
/// single-knob flags, into the container's cgroup through lab 03.
pub fn update(
    g: &Global,
    id: &str,
    resources: Option<&str>,
    memory: Option<&str>,
    pids_limit: Option<i64>,
) -> anyhow::Result<()> {
    let _lock = crate::state::Lock::exclusive(&g.root, id)?;
    let record = Record::load(&g.root, id)?;
    if record.status(&g.root) == Status::Stopped {
        bail!("container {id} is not running");
    }
    let text = match resources {
        Some("-") => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("reading stdin")?;
            s
        }
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?,
        None if memory.is_none() && pids_limit.is_none() => {
            bail!("update: give --resources FILE (or - for stdin), --memory or --pids-limit")
        }
        None => "{}".to_string(),
    };
    let mut v: serde_json::Value = serde_json::from_str(&text).context("--resources: not JSON")?;
    if let Some(m) = memory {
        v["memory"]["limit"] = parse_bytes(m)?.into();
    }
    if let Some(p) = pids_limit {
        v["pids"]["limit"] = p.into();
    }
    let r: oci_spec::runtime::LinuxResources =
        serde_json::from_value(v).context("--resources: not an OCI linux.resources object")?;
    let limits = crate::bundle::limits(Some(&r));
    let (parent, name) = record
        .cgroup
        .as_ref()
        .context("the container has no cgroup")?;
    // Opened, not owned: dropping it removes nothing.
    let mut cgroup = lab03::Cgroup::open(&lab03::detect()?, parent, name)?;
    cgroup.update(&limits)
}

/// `64m`, `1g`, `1048576`: bytes, with runc's (binary) suffixes.
pub fn parse_bytes(s: &str) -> anyhow::Result<i64> {
    let lower = s.trim().to_ascii_lowercase();
    let lower = lower.trim_end_matches('b');
    let (num, shift) = match lower.chars().last() {
        Some('k') => (&lower[..lower.len() - 1], 10),
        Some('m') => (&lower[..lower.len() - 1], 20),
        Some('g') => (&lower[..lower.len() - 1], 30),
        _ => (lower, 0),
    };
    let n: i64 = num
        .parse()
        .with_context(|| format!("invalid size {s:?}: a number of bytes, or with k, m or g"))?;
    n.checked_mul(1 << shift)
        .with_context(|| format!("size {s:?} is too large"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_with_suffixes() {
        assert_eq!(super::parse_bytes("1048576").unwrap(), 1 << 20);
        assert_eq!(super::parse_bytes("64m").unwrap(), 64 << 20);
        assert_eq!(super::parse_bytes("1G").unwrap(), 1 << 30);
        assert!(super::parse_bytes("lots").is_err());
    }
}
