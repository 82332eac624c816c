//! `build` through the service: the context as a tar, `POST /build`, and
//! the JSON stream that comes back printed as the in-process build prints.
//!
//! ```text
//! POST /v1.50/build?dockerfile=Dockerfile&t=app:1&version=1
//! Content-Type: application/x-tar            <- the context, less .dockerignore's
//!
//! {"stream":"Step 1/2 : FROM busybox\n"} ... {"aux":{"ID":"sha256:..."}}
//! {"stream":"Successfully built 3f57d9401f8d\n"}
//! ```
//!
//! What goes into the tar is what lab 06's builder would read from the
//! directory (`BuildContext::walk`: `.dockerignore`'s patterns, `!`
//! re-includes), so a file the builder would not see never leaves this
//! machine; the Dockerfile and `.dockerignore` go always, as docker's CLI
//! sends them. A Dockerfile outside the context (`-f ../x`) is added under
//! a name of its own. The exit code is the stream's `errorDetail.code` (a
//! failed RUN's status), else 1: the in-process build's.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::{Map, Value};

use super::{query_escape as q, Api};
use crate::cli::BuildArgs;
use crate::commands::Code;
use lab06_dockerfile::context::BuildContext;

/// `build [-t NAME]... [-f FILE] [--build-arg K=V]... CONTEXT`.
pub fn build(api: &Api, a: &BuildArgs) -> Result<Code> {
    if a.context == "-" || a.file.as_deref() == Some(Path::new("-")) {
        bail!("dockyard: `build -` (a context on standard input) is not supported through -H yet");
    }
    if !Path::new(&a.context).is_dir() {
        bail!(
            "dockyard: `build` through -H takes a directory as its context, not {}",
            a.context
        );
    }
    let (tar, dockerfile) = context_tar(Path::new(&a.context), a.file.as_deref())?;
    let mut path = format!("/build?dockerfile={}&version=1", q(&dockerfile));
    for t in &a.tags {
        path += &format!("&t={}", q(t));
    }
    path += &json_query("buildargs", &a.build_args, true)?;
    path += &json_query("labels", &a.labels, false)?;
    for (on, param) in [(a.no_cache, "nocache"), (a.quiet, "q"), (a.pull, "pull")] {
        if on {
            path += &format!("&{param}=1");
        }
    }
    let valued = [
        ("target", &a.target),
        ("platform", &a.platform),
        ("cgroupparent", &a.cgroup_parent),
        ("memory", &a.memory),
    ];
    for (param, v) in valued {
        if let Some(v) = v {
            path += &format!("&{param}={}", q(v));
        }
    }
    path += &format!("&networkmode={}&rm={}", q(&a.network), a.rm);
    // A bad value is the client's own refusal, before anything is sent.
    path +=
        &step_flags_query(&a.more).map_err(|e| crate::commands::ClientRefusal(format!("{e:#}")))?;
    let tar_type = "Content-Type: application/x-tar\r\n";
    let body = api.stream("POST", &path, tar_type, Some(&tar))?;
    render(BufReader::new(body), a.iidfile.as_deref())
}

/// The RUN steps' container flags, as docker's CLI puts them in the query:
/// sizes in bytes, `ulimits` and `cachefrom` as JSON, one `extrahosts` and
/// one `securityopt` per flag (the service refuses the latter, as moby's).
fn step_flags_query(m: &crate::build_flags::BuildFlags) -> Result<String> {
    let mut out = String::new();
    for h in &m.add_host {
        crate::build_flags::parse_add_host(h)?;
        out += &format!("&extrahosts={}", q(h));
    }
    for o in &m.security_opt {
        out += &format!("&securityopt={}", q(o));
    }
    let bytes = |flag: &str, v: &str| -> Result<String> {
        if v == "-1" {
            return Ok(v.to_string());
        }
        lab03_cgroups::parse_size(v)
            .map(|b| b.to_string())
            .map_err(|_| {
                anyhow::anyhow!("invalid argument {v:?} for \"{flag}\" flag: invalid size: '{v}'")
            })
    };
    if let Some(s) = &m.shm_size {
        out += &format!("&shmsize={}", bytes("--shm-size", s)?);
    }
    if let Some(s) = &m.memory_swap {
        out += &format!("&memswap={}", bytes("--memory-swap", s)?);
    }
    let numbers = [
        ("cpushares", m.cpu_shares.map(|v| v as i64)),
        ("cpuperiod", m.cpu_period.map(|v| v as i64)),
        ("cpuquota", m.cpu_quota),
    ];
    for (param, v) in numbers {
        if let Some(v) = v {
            out += &format!("&{param}={v}");
        }
    }
    let strings = [
        ("cpusetcpus", &m.cpuset_cpus),
        ("cpusetmems", &m.cpuset_mems),
        ("isolation", &m.isolation),
    ];
    for (param, v) in strings {
        if let Some(v) = v {
            out += &format!("&{param}={}", q(v));
        }
    }
    if !m.ulimit.is_empty() {
        let mut list = Vec::new();
        for u in &m.ulimit {
            lab02_namespaces::parse_ulimit(u).map_err(|e| {
                anyhow::anyhow!("invalid argument {u:?} for \"--ulimit\" flag: {e}")
            })?;
            let (name, values) = u.split_once('=').unwrap_or((u, ""));
            let (soft, hard) = values.split_once(':').unwrap_or((values, values));
            let n = |v: &str| v.parse::<i64>().unwrap_or(-1);
            list.push(serde_json::json!({"Name": name, "Hard": n(hard), "Soft": n(soft)}));
        }
        out += &format!("&ulimits={}", q(&Value::Array(list).to_string()));
    }
    if !m.cache_from.is_empty() {
        out += &format!(
            "&cachefrom={}",
            q(&serde_json::json!(m.cache_from).to_string())
        );
    }
    Ok(out)
}

/// `--build-arg`s or `--label`s as the query's JSON object. A build arg
/// without `=` takes its value from our environment (none: not sent), as
/// docker's CLI does.
fn json_query(param: &str, items: &[String], from_env: bool) -> Result<String> {
    let mut map = Map::new();
    for item in items {
        match item.split_once('=') {
            Some((k, v)) => drop(map.insert(k.to_string(), Value::from(v))),
            None if from_env => {
                if let Ok(v) = std::env::var(item) {
                    map.insert(item.clone(), Value::from(v));
                }
            }
            None => drop(map.insert(item.clone(), Value::from(""))),
        }
    }
    Ok(match map.is_empty() {
        true => String::new(),
        false => format!("&{param}={}", q(&Value::Object(map).to_string())),
    })
}

/// The context directory as a tar, and the Dockerfile's name inside it.
fn context_tar(dir: &Path, file: Option<&Path>) -> Result<(Vec<u8>, String)> {
    let ctx = BuildContext::open(dir)?;
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    let mut sent = Vec::new();
    for rel in ctx.walk()? {
        b.append_path_with_name(ctx.root.join(&rel), &rel)
            .with_context(|| format!("archiving {}", rel.display()))?;
        sent.push(rel);
    }
    let file = match file {
        Some(f) => f.canonicalize().with_context(|| {
            format!(
                "unable to prepare context: unable to evaluate symlinks in Dockerfile path: {}",
                f.display()
            )
        })?,
        None => ctx.root.join("Dockerfile"),
    };
    let name = match file.strip_prefix(&ctx.root) {
        Ok(rel) => rel.to_path_buf(),
        // Outside the context: sent under a name of its own.
        Err(_) => PathBuf::from(format!(".dockerfile.{}", std::process::id())),
    };
    for (rel, real) in [
        (name.clone(), file.clone()),
        (
            PathBuf::from(".dockerignore"),
            ctx.root.join(".dockerignore"),
        ),
    ] {
        if !sent.contains(&rel) && real.is_file() {
            b.append_path_with_name(&real, &rel)
                .with_context(|| format!("archiving {}", real.display()))?;
        }
    }
    let tar = b.into_inner().context("finishing the context's archive")?;
    Ok((tar, name.to_string_lossy().into_owned()))
}

/// Print the stream's messages as they come: `stream` text to stdout, an
/// `error` to stderr (the exit code its `errorDetail.code`, else 1); the
/// `aux` ID into `--iidfile`.
fn render(body: impl BufRead, iidfile: Option<&Path>) -> Result<Code> {
    let mut out = std::io::stdout();
    for line in body.lines() {
        let line = line.context("reading the build's output")?;
        if line.trim().is_empty() {
            continue;
        }
        let m: Value = serde_json::from_str(&line)
            .with_context(|| format!("a message of the build's stream: {line}"))?;
        if let Some(e) = m["error"].as_str() {
            out.flush()?;
            eprintln!("{}", e.trim_end());
            let code = m["errorDetail"]["code"].as_i64().filter(|c| *c != 0);
            return Ok(code.unwrap_or(1) as Code);
        }
        if let Some(s) = m["stream"].as_str() {
            out.write_all(s.as_bytes())?;
            out.flush()?;
        }
        if let (Some(id), Some(f)) = (m["aux"]["ID"].as_str(), iidfile) {
            std::fs::write(f, id).with_context(|| format!("writing {}", f.display()))?;
        }
    }
    Ok(0)
}
