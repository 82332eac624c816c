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
//!
//! The context may come on standard input too, as docker's: `build - <
//! ctx.tar` (a tar, maybe compressed, sent as it is), `build - <
//! Dockerfile` (the Dockerfile alone, sent as a context of one file), and
//! `build -f - DIR` (the directory's files, and the Dockerfile from
//! standard input under a name of its own).

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::{Map, Value};

use super::{query_escape as q, Api};
use crate::cli::BuildArgs;
use crate::commands::Code;
use lab06_dockerfile::context::BuildContext;

/// `build [-t NAME]... [-f FILE] [--build-arg K=V]... CONTEXT`.
pub fn build(api: &Api, a: &BuildArgs) -> Result<Code> {
    let (tar, dockerfile) = context(a)?;
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

/// The context as the tar to send, and the Dockerfile's name inside it:
///
/// - `-`: standard input, a tar (plain or compressed: sent as it is, the
///   service unpacks it) or else a Dockerfile alone, sent as the only
///   file of a context (`docker build - < Dockerfile`);
/// - an archive file (`build ctx.tar`): sent as it is;
/// - a directory: what the builder would read of it (see [`dir_tar`]);
///   `-f -` reads its Dockerfile from standard input.
fn context(a: &BuildArgs) -> Result<(Vec<u8>, String)> {
    let named =
        |f: Option<&Path>| f.map_or("Dockerfile".into(), |f| f.to_string_lossy().into_owned());
    let path = Path::new(&a.context);
    if a.context == "-" || path.is_file() {
        let bytes = match a.context == "-" {
            true => read_stdin("the build context")?,
            false => std::fs::read(path).with_context(|| format!("reading {}", a.context))?,
        };
        if looks_like_tar(&bytes) {
            return Ok((bytes, named(a.file.as_deref())));
        }
        if a.context != "-" {
            bail!(
                "unable to prepare context: {} is neither a directory nor a tar archive",
                a.context
            );
        }
        // As lab 06's `build - < Dockerfile`: no context, no -f.
        if a.file.is_some() {
            bail!("-f cannot be used when the Dockerfile comes on standard input");
        }
        let mut b = tar::Builder::new(Vec::new());
        append_bytes(&mut b, "Dockerfile", &bytes)?;
        let tar = b.into_inner().context("finishing the context's archive")?;
        return Ok((tar, "Dockerfile".into()));
    }
    dir_tar(path, a.file.as_deref())
}

/// Whether bytes start like a tar archive, or a compressed file (which we
/// take to hold one): what lab 06's builder takes for one.
fn looks_like_tar(head: &[u8]) -> bool {
    use lab06_dockerfile::archive::{is_tar_header, Compression};
    Compression::detect(head) != Compression::None || is_tar_header(head)
}

fn read_stdin(what: &str) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    std::io::stdin()
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {what} from standard input"))?;
    Ok(bytes)
}

/// A regular file of `bytes`, mode 0644, as `name` in the tar.
fn append_bytes(b: &mut tar::Builder<Vec<u8>>, name: &str, bytes: &[u8]) -> Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_size(bytes.len() as u64);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, name, bytes)
        .with_context(|| format!("archiving {name}"))
}

/// The context directory as a tar, and the Dockerfile's name inside it.
fn dir_tar(dir: &Path, file: Option<&Path>) -> Result<(Vec<u8>, String)> {
    let ctx = BuildContext::open(dir)?;
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    let mut sent = Vec::new();
    for rel in ctx.walk()? {
        b.append_path_with_name(ctx.root.join(&rel), &rel)
            .with_context(|| format!("archiving {}", rel.display()))?;
        sent.push(rel);
    }
    if file == Some(Path::new("-")) {
        // `-f -`: the Dockerfile from standard input, under a name of its
        // own, as docker's CLI sends it.
        let name = format!(".dockerfile.{}", std::process::id());
        append_bytes(&mut b, &name, &read_stdin("the Dockerfile")?)?;
        let ignore = ctx.root.join(".dockerignore");
        if !sent.contains(&PathBuf::from(".dockerignore")) && ignore.is_file() {
            b.append_path_with_name(&ignore, ".dockerignore")
                .with_context(|| format!("archiving {}", ignore.display()))?;
        }
        let tar = b.into_inner().context("finishing the context's archive")?;
        return Ok((tar, name));
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
