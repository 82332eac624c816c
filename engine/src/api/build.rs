//! `POST /build`: the classic builder, as the docker CLI drives it when it
//! has no buildx plugin (and as docker-py's `images.build` always does).
//!
//! The client sends the build context as a tar archive in the (chunked)
//! body, the options in the query, and reads back a JSON stream: the
//! builder's output as `stream` messages, the image ID as `aux`.
//!
//! ```text
//! POST /v1.50/build?dockerfile=Dockerfile&t=app:1&version=1
//! Content-Type: application/x-tar       <- the context: Dockerfile, files
//!
//! {"stream":"Step 1/2 : FROM busybox\n"}
//! {"stream":" ---> 3f57d9401f8d\n"}
//! {"stream":"Step 2/2 : RUN false\n"}
//! {"stream":" ---> Running in 1c2d3e4f5a6b\n"}
//! {"errorDetail":{"code":1,"message":"The command '/bin/sh -c false' returned a non-zero code: 1"},
//!  "error":"The command '/bin/sh -c false' returned a non-zero code: 1"}
//! ```
//!
//! or, when it works, `{"aux":{"ID":"sha256:..."}}` and then
//! `Successfully built` / `Successfully tagged`. The CLI exits with the
//! error's `code` (the failed RUN's status), else 1.
//!
//! **The build runs as `dockyard build`**, a child process over the same data
//! root (the service's global flags), in the context unpacked here: the
//! very path the CLI takes, lab 06's builder. A child process, not a call,
//! because lab 06's RUN steps start containers (a fork that runs our code
//! after it, see the starter module), and its containers and `-q` write to
//! the process's own descriptors 1 and 2: here, two pipes this module reads
//! and turns into the stream.
//!
//! **Security: the context is untrusted input, checked before a byte of it
//! is written** (see [`check_context`]). The body is bounded by the HTTP
//! layer (`request body too large` past its limit, counted chunk by chunk
//! as it arrives); the unpacked size and the number of entries are bounded
//! here (a small gzip can unpack to gigabytes); no entry may name a path
//! outside the context (absolute, `..`, or below a symlink of the archive),
//! nor hard-link to one; device nodes are refused. The Dockerfile named by
//! `dockerfile` must be inside the context too. `X-Registry-Config` (the
//! client's credentials for `FROM` pulls) is not used: this builder never
//! pulls; it is neither decoded nor logged.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::net::UnixStream;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

use anyhow::{Context, Result};
use serde_json::{json, Value};

use super::http::Request;
use super::jsonstream::JsonStream;
use super::routes::{BadRequest, Outcome, Reply};
use super::Service;

/// The most bytes a context may unpack to, and the most entries it may
/// have: far beyond any sensible context, far below filling the disk.
const MAX_UNPACKED: u64 = 1 << 30;
const MAX_ENTRIES: usize = 100_000;

/// Query parameters that change what docker builds and that this builder
/// does not have: refused when set, rather than silently ignored.
const UNSUPPORTED: [&str; 3] = ["remote", "squash", "outputs"];

fn bad(msg: impl Into<String>) -> anyhow::Error {
    BadRequest(msg.into()).into()
}

/// `POST /build`.
pub fn build(service: &Service, req: &Request, conn: &UnixStream) -> Result<Reply> {
    let args = build_args(req)?;
    let work = WorkDir::new(&service.engine.root)?;
    let context = work.path.join("context");
    check_context(&req.body, &work.path)?;
    unpack_context(&req.body, &context, &work.path)?;
    let dockerfile = req
        .query("dockerfile")
        .filter(|d| !d.is_empty())
        .unwrap_or("Dockerfile");
    if !inside(Path::new(dockerfile)) {
        return Err(bad(format!(
            "The Dockerfile ({dockerfile}) must be within the build context"
        )));
    }
    if !context.join(dockerfile).is_file() {
        return Err(anyhow::anyhow!(
            "Cannot locate specified Dockerfile: {dockerfile}"
        ));
    }
    let iid = work.path.join("iid");
    let mut cmd = Command::new("/proc/self/exe");
    std::os::unix::process::CommandExt::arg0(&mut cmd, "dockyard");
    cmd.args(dockyard::engine::engine_argv(service.engine))
        .arg("build")
        .arg("-f")
        .arg(dockerfile)
        .arg("--iidfile")
        .arg(&iid)
        .args(&args)
        .arg(".")
        .current_dir(&context)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().context("starting dockyard build")?;
    let mut s = JsonStream::new(conn);
    if req
        .query("rm")
        .is_some_and(|v| v == "0" || v.eq_ignore_ascii_case("false"))
    {
        // docker-py's default. Docker would keep the RUN steps' stopped
        // containers; lab 06's are not engine containers and always go.
        s.text("[Warning] rm=false: this builder always removes the RUN steps' containers\n")?;
    }
    let lines = pump(&mut child);
    let (held, after) = relay(&mut s, lines);
    let status = child.wait().context("waiting for dockyard build")?;
    if status.success() {
        if let Some(h) = held {
            let _ = s.text(&h);
        }
        let id = std::fs::read_to_string(&iid).unwrap_or_default();
        let _ = s.send(&json!({"aux": {"ID": id.trim()}}));
        for line in after {
            let _ = s.text(&line);
        }
    } else {
        let code = status.code().unwrap_or(1);
        let msg = held
            .map(|h| h.trim_end().to_string())
            .unwrap_or_else(|| format!("the build failed (exit status {code})"));
        // Only a failed RUN has a code of its own, as in docker.
        let code = msg.starts_with("The command '").then_some(code);
        let _ = s.error(&msg, code);
    }
    let _ = s.finish();
    Ok(Reply::Streamed(Outcome::Done))
}

/// `dockyard build`'s flags for the query's options.
fn build_args(req: &Request) -> Result<Vec<String>> {
    for k in UNSUPPORTED {
        if let Some(v) = req.query(k) {
            if !matches!(v, "" | "0" | "false" | "False" | "[]" | "{}" | "null") {
                return Err(bad(format!("{k}={v}: not supported by this builder")));
            }
        }
    }
    if req.query("securityopt").is_some() {
        // moby's build route: security options are Windows' credential specs.
        return Err(bad("security options are not supported on linux"));
    }
    if let Some(v) = req.query("version").filter(|v| !v.is_empty() && *v != "1") {
        return Err(bad(format!(
            "builder version {v} (BuildKit) is not supported: this is the classic builder (version=1)"
        )));
    }
    let mut args = Vec::new();
    for (k, v) in &req.query {
        if k == "t" && !v.is_empty() {
            args.extend(["-t".to_string(), v.clone()]);
        }
    }
    for (param, flag) in [("buildargs", "--build-arg"), ("labels", "--label")] {
        for (k, v) in json_map(req, param)? {
            // A null build arg is the CLI's `--build-arg NAME` with NAME
            // unset in its environment: no value, not the service's.
            if let Some(v) = v {
                args.extend([flag.to_string(), format!("{k}={v}")]);
            }
        }
    }
    let flags = [("nocache", "--no-cache"), ("q", "-q"), ("pull", "--pull")];
    for (param, flag) in flags {
        if req.flag(param) {
            args.push(flag.to_string());
        }
    }
    let valued = [
        ("target", "--target"),
        ("platform", "--platform"),
        ("cgroupparent", "--cgroup-parent"),
        ("cpusetcpus", "--cpuset-cpus"),
        ("cpusetmems", "--cpuset-mems"),
        ("isolation", "--isolation"),
    ];
    for (param, flag) in valued {
        if let Some(v) = req.query(param).filter(|v| !v.is_empty()) {
            args.extend([flag.to_string(), v.to_string()]);
        }
    }
    // Numbers the client sends as 0 when the flag was not given.
    let numbers = [
        ("cpushares", "--cpu-shares"),
        ("cpuperiod", "--cpu-period"),
        ("cpuquota", "--cpu-quota"),
        ("memswap", "--memory-swap"),
        ("shmsize", "--shm-size"),
    ];
    for (param, flag) in numbers {
        if let Some(v) = req.query(param).filter(|v| !v.is_empty() && *v != "0") {
            args.extend([flag.to_string(), v.to_string()]);
        }
    }
    for (k, v) in &req.query {
        if k == "extrahosts" && !v.is_empty() {
            args.extend(["--add-host".to_string(), v.clone()]);
        }
    }
    for name in json_list(req, "cachefrom")? {
        match name.as_str() {
            Some(n) => args.extend(["--cache-from".to_string(), n.to_string()]),
            None => {
                return Err(bad(format!(
                    "error reading cache-from: {name} is not a string"
                )))
            }
        }
    }
    for u in json_list(req, "ulimits")? {
        // [{"Name":"nofile","Hard":2048,"Soft":1024}], as docker's CLI sends them.
        match (u["Name"].as_str(), u["Soft"].as_i64(), u["Hard"].as_i64()) {
            (Some(name), Some(soft), Some(hard)) => {
                args.extend(["--ulimit".to_string(), format!("{name}={soft}:{hard}")])
            }
            _ => return Err(bad(format!("error reading ulimit settings: {u}"))),
        }
    }
    if let Some(m) = req.query("memory").filter(|m| !m.is_empty() && *m != "0") {
        args.extend(["-m".to_string(), m.to_string()]);
    }
    if let Some(n) = req.query("networkmode").filter(|n| !n.is_empty()) {
        // Checked here, so that a bad mode is a 400 and not a failed build.
        lab06_dockerfile::Network::parse(n).map_err(|e| bad(format!("{e:#}")))?;
        args.extend(["--network".to_string(), n.to_string()]);
    }
    Ok(args)
}

/// A JSON array in the query (`cachefrom=["app:1"]`); none if absent.
fn json_list(req: &Request, param: &str) -> Result<Vec<Value>> {
    let Some(raw) = req.query(param).filter(|v| !v.is_empty()) else {
        return Ok(Vec::new());
    };
    match serde_json::from_str(raw) {
        Ok(Value::Array(items)) => Ok(items),
        Ok(Value::Null) => Ok(Vec::new()),
        _ => Err(bad(format!("invalid {param} {raw:?}: not a JSON array"))),
    }
}

/// A JSON object of strings in the query (`buildargs={"A":"1"}`).
fn json_map(req: &Request, param: &str) -> Result<Vec<(String, Option<String>)>> {
    let Some(raw) = req.query(param).filter(|v| !v.is_empty()) else {
        return Ok(Vec::new());
    };
    let v: Value =
        serde_json::from_str(raw).map_err(|e| bad(format!("invalid {param} {raw:?}: {e}")))?;
    let Some(map) = v.as_object() else {
        return Err(bad(format!("invalid {param} {raw:?}: not a JSON object")));
    };
    Ok(map
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().map(str::to_string)))
        .collect())
}

/// A line of the child's output, and whether it came from stderr.
type Line = (bool, String);

/// Read the child's stdout and stderr, a thread each, into one channel
/// in the order the lines arrive.
fn pump(child: &mut std::process::Child) -> mpsc::Receiver<Line> {
    let (tx, rx) = mpsc::channel();
    let out: Option<Box<dyn Read + Send>> = child.stdout.take().map(|o| Box::new(o) as _);
    let err: Option<Box<dyn Read + Send>> = child.stderr.take().map(|e| Box::new(e) as _);
    for (is_err, pipe) in [(false, out), (true, err)] {
        let Some(pipe) = pipe else { continue };
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut r = BufReader::new(pipe);
            loop {
                let mut line = Vec::new();
                match r.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        let text = String::from_utf8_lossy(&line).into_owned();
                        if tx.send((is_err, text)).is_err() {
                            return;
                        }
                    }
                }
            }
        });
    }
    rx
}

/// Relay the lines as `stream` messages until both pipes close. Two are
/// held back: the last stderr line (if the build fails, it is
/// `dockyard build`'s error, which becomes the `errorDetail`), and what
/// follows `Successfully built` (docker sends the `aux` ID before it, and
/// the ID is known only at the end). A client that left stops nothing: the
/// build runs to its end, its output dropped.
fn relay(s: &mut JsonStream, lines: mpsc::Receiver<Line>) -> (Option<String>, Vec<String>) {
    let mut held: Option<String> = None;
    let mut after: Option<Vec<String>> = None;
    for (is_err, line) in lines {
        // The two pipes are read by two threads, so a stdout line written
        // before the error may arrive after it: only a newer stderr line
        // lets the held one go.
        if is_err {
            if let Some(h) = held.replace(line) {
                let _ = s.text(&h);
            }
        } else if let Some(a) = after.as_mut() {
            a.push(line);
        } else if line.starts_with("Successfully built ") {
            after = Some(vec![line]);
        } else {
            let _ = s.text(&line);
        }
    }
    (held, after.unwrap_or_default())
}

/// A relative path that stays inside its root: no `/` start, no `..`.
fn inside(path: &Path) -> bool {
    path.components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

/// Check every entry of the context archive before anything is unpacked:
/// see the module's security note. `scratch`: for an xz context.
fn check_context(body: &[u8], scratch: &Path) -> Result<()> {
    let (reader, _) = lab06_dockerfile::archive::decompress(body, scratch)
        .map_err(|e| bad(format!("the build context is not a tar archive: {e:#}")))?;
    let mut archive = tar::Archive::new(reader);
    let entries = archive
        .entries()
        .map_err(|e| bad(format!("reading the build context: {e}")))?;
    let mut links: BTreeSet<PathBuf> = BTreeSet::new();
    let (mut total, mut count) = (0u64, 0usize);
    for entry in entries {
        let entry = entry.map_err(|e| bad(format!("reading the build context: {e}")))?;
        let path = entry
            .path()
            .map_err(|e| bad(format!("reading the build context: {e}")))?
            .into_owned();
        let shown = path.display();
        if !inside(&path) {
            return Err(bad(format!(
                "the build context has an entry outside it: {shown}"
            )));
        }
        if path.ancestors().skip(1).any(|a| links.contains(a)) {
            return Err(bad(format!(
                "the build context has an entry below a symbolic link: {shown}"
            )));
        }
        use tar::EntryType as T;
        match entry.header().entry_type() {
            T::Symlink => {
                links.insert(path.clone());
            }
            T::Link => {
                let target = entry.link_name().ok().flatten().unwrap_or_default();
                if !inside(&target) {
                    return Err(bad(format!(
                        "the build context has a hard link outside it: {shown}"
                    )));
                }
            }
            T::Block | T::Char => {
                return Err(bad(format!("the build context has a device node: {shown}")))
            }
            _ => {}
        }
        total += entry.header().size().unwrap_or(0);
        count += 1;
        if total > MAX_UNPACKED || count > MAX_ENTRIES {
            return Err(bad(format!(
                "the build context is too large: over {} bytes or {MAX_ENTRIES} entries unpacked",
                MAX_UNPACKED
            )));
        }
    }
    Ok(())
}

/// Unpack the checked context into `dir`. The tar crate's `unpack` refuses
/// `..` and checks that each entry's parent resolves inside `dir`: a
/// second line behind [`check_context`].
fn unpack_context(body: &[u8], dir: &Path, scratch: &Path) -> Result<()> {
    std::fs::create_dir(dir).with_context(|| format!("creating {}", dir.display()))?;
    let (reader, _) = lab06_dockerfile::archive::decompress(body, scratch)?;
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    archive
        .unpack(dir)
        .map_err(|e| bad(format!("unpacking the build context: {e}")))
}

/// The build's scratch directory under the data root's `tmp`, removed
/// when the request ends, however it ends. Named `<what>-<pid>-<n>` as lab
/// 04's staging entries are: every engine that opens the store removes the
/// entries whose process is gone, and keeps this one while the service
/// lives.
struct WorkDir {
    path: PathBuf,
}

impl WorkDir {
    fn new(root: &Path) -> Result<WorkDir> {
        static N: AtomicU64 = AtomicU64::new(0);
        let path = root.join("tmp").join(format!(
            "apibuild-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(WorkDir { path })
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(entries: &[(&str, tar::EntryType, &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, kind, link) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_size(0);
            h.set_mode(0o644);
            // Bypass the builder's own checks: a hostile client has none.
            let bytes = name.as_bytes();
            h.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
            if !link.is_empty() {
                h.set_link_name(link).unwrap();
            }
            h.set_cksum();
            b.append(&h, std::io::empty()).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn contexts_that_reach_outside_are_refused() {
        use tar::EntryType as T;
        let dir = std::env::temp_dir();
        let ok = tar_of(&[("Dockerfile", T::Regular, ""), ("l", T::Symlink, "/etc")]);
        assert!(check_context(&ok, &dir).is_ok());
        for (bad, why) in [
            (tar_of(&[("../x", T::Regular, "")]), "outside it"),
            (tar_of(&[("/etc/x", T::Regular, "")]), "outside it"),
            (
                tar_of(&[("l", T::Symlink, "/etc"), ("l/passwd", T::Regular, "")]),
                "below a symbolic link",
            ),
            (tar_of(&[("h", T::Link, "../../etc/shadow")]), "hard link"),
            (tar_of(&[("d", T::Char, "")]), "device node"),
        ] {
            let e = check_context(&bad, &dir).unwrap_err().to_string();
            assert!(e.contains(why), "{e}");
        }
    }

    #[test]
    fn dockerfile_paths_stay_inside() {
        assert!(inside(Path::new("Dockerfile")));
        assert!(inside(Path::new("sub/Dockerfile.dev")));
        assert!(!inside(Path::new("../Dockerfile")));
        assert!(!inside(Path::new("/etc/passwd")));
    }
}
