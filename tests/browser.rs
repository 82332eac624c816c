//! The rendered book, checked in a real browser: `mdbook build` the book into a temporary
//! directory, open every chapter in headless Chromium, and check what a reader would see.
//!
//! `book.rs` checks the book's *sources* (includes resolve, sessions print what they say). What
//! it cannot see is the HTML a reader gets: a figure whose SVG does not parse shows as a broken
//! image icon, a link to a renamed chapter is a dead click, an `{{#include}}` mdBook could not
//! expand stays on the page as text. So for each chapter this test asks the browser, after the
//! page has loaded:
//!
//! - every `<img>` decoded (`naturalWidth`/`naturalHeight` above zero), takes room on the page
//!   (a non-empty box), and has ink: drawn onto a canvas, some pixels differ from its background;
//! - every relative `href`/`src` resolves to a file of the built book, and a `#fragment` to an
//!   `id` on the page it names;
//! - no `{{#...}}` directive was left in the text;
//! - nothing failed to load, and nothing was requested from outside `file://` (the book must
//!   work offline, as the course's machines are).
//!
//! The browser is driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`: JSON
//! messages ended by a NUL byte on file descriptors 3 and 4), so no port is opened. Chromium is
//! Debian's `chromium` package (scripts/setup installs it); without it the test says SKIPPED and
//! passes. `DOCKYARD_CHROMIUM` names another binary.
//!
//! ```text
//! cargo test -p dockyard-e2e --test browser
//! ```

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use dockyard_e2e::booktest::workspace_root;
use serde_json::{json, Value};

/// How long one DevTools call or one page load may take before the test gives up.
const STEP: Duration = Duration::from_secs(30);

/// The Chromium binary: `$DOCKYARD_CHROMIUM`, else `chromium` (Debian) or `chromium-browser`
/// on PATH.
fn chromium() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("DOCKYARD_CHROMIUM") {
        return Some(PathBuf::from(bin));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
        .find(|p| p.is_file())
}

/// A pipe whose two ends close on exec: the child gets its copies through `dup2` only.
fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two new descriptors into `fds`, which we then own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error()).context("pipe2");
    }
    // SAFETY: both descriptors were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// A headless Chromium and its DevTools pipe. Dropping it kills the browser's whole process
/// group (the browser, its zygote, renderers and GPU process), so no Chromium outlives the test
/// even when an assertion fails half-way.
struct Browser {
    child: Child,
    to_browser: File,
    from_browser: Receiver<Value>,
    /// Events that arrived while waiting for a reply, kept for `wait_event`.
    events: Vec<Value>,
    next_id: u64,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn launch(bin: &Path) -> Result<Browser> {
        let profile = tempfile::tempdir()?;
        let (cmd_read, cmd_write) = pipe()?; // we write commands, Chromium reads fd 3
        let (reply_read, reply_write) = pipe()?; // Chromium writes fd 4, we read replies
        let (r3, w4) = (cmd_read.as_raw_fd(), reply_write.as_raw_fd());
        let mut command = Command::new(bin);
        command
            .arg("--headless")
            // The sandbox needs unprivileged user namespaces or a setuid helper, and Chromium
            // refuses to start as root with it on; the tests run as root (in CI too). What it
            // would protect against is a hostile page, and the only pages here are the book we
            // just built from our own files, opened as file:// with the network cut off below.
            .arg("--no-sandbox")
            .arg("--remote-debugging-pipe")
            // No DNS lookup, no connection: every host name resolves to nothing, so even a
            // stray external URL in the theme fails at once instead of reaching the network.
            .arg("--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1")
            .arg("--proxy-server=127.0.0.1:9") // belt and braces: a proxy that is not there
            .arg("--disable-background-networking")
            .arg("--disable-component-update")
            .arg("--disable-sync")
            .arg("--disable-default-apps")
            .arg("--disable-extensions")
            .arg("--no-first-run")
            .arg("--no-default-browser-check")
            .arg("--disable-gpu")
            .arg("--disable-crash-reporter")
            .arg("--disable-breakpad")
            .arg("--disable-dev-shm-usage")
            // Lets the page draw a file:// image onto a canvas and read its pixels back (the
            // ink check); without it every file:// URL is an origin of its own.
            .arg("--allow-file-access-from-files")
            .arg("--window-size=1280,1024")
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            // Chromium's own complaints (no D-Bus here, and so on) go to a log file that an
            // error message quotes, not into the test's output.
            .stderr(File::create(profile.path().join("chromium.log"))?)
            .process_group(0);
        // SAFETY: between fork and exec we only call fcntl, dup2 and close, which are
        // async-signal-safe. The pipe ends may already sit on 3 or 4 (even swapped), so they are
        // first copied above 10, then onto 3 and 4; dup2 clears close-on-exec on its copies,
        // so fds 3 and 4 survive into Chromium.
        unsafe {
            command.pre_exec(move || {
                let high_r = libc::fcntl(r3, libc::F_DUPFD_CLOEXEC, 10);
                let high_w = libc::fcntl(w4, libc::F_DUPFD_CLOEXEC, 10);
                if high_r < 0
                    || high_w < 0
                    || libc::dup2(high_r, 3) < 0
                    || libc::dup2(high_w, 4) < 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        // Our copies of the child's ends must go, or EOF never comes when the browser exits.
        drop(cmd_read);
        drop(reply_write);
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(File::from(reply_read));
            let mut message = Vec::new();
            loop {
                message.clear();
                match reader.read_until(0, &mut message) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                message.pop_if(|b| *b == 0);
                if let Ok(value) = serde_json::from_slice::<Value>(&message) {
                    if tx.send(value).is_err() {
                        return;
                    }
                }
            }
        });
        Ok(Browser {
            child,
            to_browser: File::from(cmd_write),
            from_browser: rx,
            events: Vec::new(),
            next_id: 1,
            _profile: profile,
        })
    }

    fn recv(&mut self, deadline: Instant) -> Result<Value> {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.from_browser.recv_timeout(left) {
            Ok(v) => Ok(v),
            Err(RecvTimeoutError::Timeout) => bail!("Chromium did not answer within {STEP:?}"),
            Err(RecvTimeoutError::Disconnected) => {
                let status = self.child.try_wait().ok().flatten();
                let log = fs::read_to_string(self._profile.path().join("chromium.log"))
                    .unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(15).collect();
                bail!(
                    "Chromium closed its DevTools pipe (exit status: {status:?}); its log ends:\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            }
        }
    }

    /// One DevTools command; its `result`, or its `error` as an error.
    fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Result<Value> {
        let id = self.next_id;
        self.next_id += 1;
        let mut message = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = session {
            message["sessionId"] = json!(s);
        }
        let mut bytes = serde_json::to_vec(&message)?;
        bytes.push(0);
        if let Err(e) = self.to_browser.write_all(&bytes) {
            // A broken pipe: the browser is gone; the reader says why.
            let gone = self.recv(Instant::now() + Duration::from_secs(2)).err();
            bail!(
                "sending {method}: {e}: {}",
                gone.map_or(String::new(), |g| format!("{g:#}"))
            );
        }
        let deadline = Instant::now() + STEP;
        loop {
            let reply = self.recv(deadline).with_context(|| method.to_string())?;
            if reply["id"] == json!(id) {
                if let Some(e) = reply.get("error") {
                    bail!("{method}: {e}");
                }
                return Ok(reply["result"].clone());
            }
            if reply.get("method").is_some() {
                self.events.push(reply);
            }
        }
    }

    /// Waits for the event `method` of `session`, looking first at those already received.
    fn wait_event(&mut self, session: &str, method: &str) -> Result<Value> {
        let is_it = |e: &Value| e["method"] == method && e["sessionId"] == session;
        if let Some(i) = self.events.iter().position(is_it) {
            return Ok(self.events.remove(i));
        }
        let deadline = Instant::now() + STEP;
        loop {
            let event = self.recv(deadline).with_context(|| method.to_string())?;
            if is_it(&event) {
                return Ok(event);
            }
            self.events.push(event);
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ask politely, then make sure: the process group holds every Chromium process.
        let _ = self.call(None, "Browser.close", json!({}));
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let group = nix::unistd::Pid::from_raw(-(self.child.id() as i32));
        let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// What the page reports about itself once loaded: its images (after each has loaded or
/// failed), the links and sources it names (resolved by the browser against the page), and
/// whether an mdBook directive is left in its text.
const INSPECT: &str = r#"(async () => {
  const imgs = [...document.querySelectorAll('img')];
  await Promise.all(imgs.map(i => i.complete ? null :
    new Promise(r => { i.addEventListener('load', r); i.addEventListener('error', r); })));
  const images = imgs.map(i => {
    const box = i.getBoundingClientRect();
    let ink = null, inkError = null;
    try {
      const c = document.createElement('canvas');
      c.width = i.naturalWidth; c.height = i.naturalHeight;
      const g = c.getContext('2d');
      g.drawImage(i, 0, 0);
      const d = g.getImageData(0, 0, c.width, c.height).data;
      ink = 0;
      for (let k = 0; k < d.length; k += 4)
        if (d[k] != d[0] || d[k+1] != d[1] || d[k+2] != d[2] || d[k+3] != d[3]) ink++;
    } catch (e) { inkError = String(e); }
    return { src: i.getAttribute('src'), url: i.src, natural: [i.naturalWidth, i.naturalHeight],
             box: [box.width, box.height], ink, inkError };
  });
  const refs = [];
  for (const el of document.querySelectorAll('a[href], link[href], img[src], script[src]')) {
    const raw = el.getAttribute('href') ?? el.getAttribute('src');
    refs.push({ raw, url: new URL(raw, document.baseURI).href });
  }
  const text = document.querySelector('main')?.innerText ?? document.body.innerText;
  const m = text.match(/\{\{#[^}]*\}\}/);
  return { images, refs, leftover: m ? m[0] : null, title: document.title };
})()"#;

/// The chapters in SUMMARY.md's order, as the `.html` names mdBook gives them.
fn chapters(src: &Path) -> Vec<String> {
    let summary = fs::read_to_string(src.join("SUMMARY.md")).unwrap_or_default();
    summary
        .lines()
        .filter_map(|l| {
            let target = l.split_once("](")?.1.split(')').next()?.trim();
            Some(target.strip_suffix(".md")?.to_string() + ".html")
        })
        .collect()
}

/// `file:///a/b%20c.html#x` -> (`/a/b c.html`, `x`).
fn file_url_path(url: &str) -> Option<(PathBuf, String)> {
    let rest = url.strip_prefix("file://")?;
    let (path, fragment) = rest.split_once('#').unwrap_or((rest, ""));
    let path = path.split('?').next().unwrap_or(path);
    let mut bytes = Vec::new();
    let raw = path.as_bytes();
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' && i + 3 <= raw.len() {
            if let Some(Ok(b)) = path.get(i + 1..i + 3).map(|h| u8::from_str_radix(h, 16)) {
                bytes.push(b);
                i += 3;
                continue;
            }
        }
        bytes.push(raw[i]);
        i += 1;
    }
    Some((
        PathBuf::from(String::from_utf8_lossy(&bytes).into_owned()),
        fragment.to_string(),
    ))
}

/// Whether the HTML file at `page` has an element with `id="fragment"` (mdBook's heading ids,
/// footnotes, anchors).
fn has_id(page: &Path, fragment: &str, cache: &mut BTreeMap<PathBuf, String>) -> bool {
    let html = cache
        .entry(page.to_path_buf())
        .or_insert_with(|| fs::read_to_string(page).unwrap_or_default());
    html.contains(&format!("id=\"{fragment}\""))
}

/// The problems one loaded page shows.
fn check_page(
    page: &str,
    report: &Value,
    out: &Path,
    cache: &mut BTreeMap<PathBuf, String>,
) -> Vec<String> {
    let mut problems = Vec::new();
    for img in report["images"].as_array().into_iter().flatten() {
        let src = img["src"].as_str().unwrap_or("?");
        let n = (img["natural"][0].as_f64(), img["natural"][1].as_f64());
        let b = (img["box"][0].as_f64(), img["box"][1].as_f64());
        if !matches!(n, (Some(w), Some(h)) if w > 0.0 && h > 0.0) {
            problems.push(format!(
                "{page}: image {src} did not render (natural size {n:?})"
            ));
        } else if !matches!(b, (Some(w), Some(h)) if w > 0.0 && h > 0.0) {
            problems.push(format!(
                "{page}: image {src} takes no room on the page (box {b:?})"
            ));
        } else if let Some(e) = img["inkError"].as_str() {
            problems.push(format!(
                "{page}: image {src}: could not read its pixels: {e}"
            ));
        } else if img["ink"].as_u64().unwrap_or(0) < 100 {
            problems.push(format!(
                "{page}: image {src} renders blank ({} pixels of ink)",
                img["ink"]
            ));
        }
    }
    for r in report["refs"].as_array().into_iter().flatten() {
        let (raw, url) = (
            r["raw"].as_str().unwrap_or(""),
            r["url"].as_str().unwrap_or(""),
        );
        // Links out of the book (man pages, specs) are not followed: the test runs offline.
        if !url.starts_with("file://") {
            continue;
        }
        let Some((path, fragment)) = file_url_path(url) else {
            continue;
        };
        if !path.starts_with(out) {
            problems.push(format!(
                "{page}: {raw} points outside the book ({})",
                path.display()
            ));
        } else if !path.is_file() {
            problems.push(format!(
                "{page}: {raw} does not resolve to a file of the built book"
            ));
        } else if !fragment.is_empty()
            && path.extension().is_some_and(|e| e == "html")
            && !has_id(&path, &fragment, cache)
        {
            problems.push(format!("{page}: {raw}: no id \"{fragment}\" on that page"));
        }
    }
    if let Some(left) = report["leftover"].as_str() {
        problems.push(format!(
            "{page}: an mdBook directive was left in the page: {left}"
        ));
    }
    problems
}

#[test]
fn rendered_book_in_chromium() {
    let Some(bin) = chromium() else {
        eprintln!(
            "SKIPPED: no `chromium` on PATH (Debian's chromium package; scripts/setup installs \
             it), so the rendered book was not checked in a browser"
        );
        return;
    };
    let started = Instant::now();
    let root = workspace_root();
    let out = tempfile::tempdir().expect("a temporary directory");
    // Canonical, as the browser reports file:// URLs with symlinks resolved.
    let out_dir = out.path().canonicalize().expect("the temporary directory");
    let built = Command::new("mdbook")
        .arg("build")
        .arg(root.join("book"))
        .arg("--dest-dir")
        .arg(&out_dir)
        .output()
        .expect("running mdbook (cargo install mdbook)");
    assert!(
        built.status.success(),
        "mdbook build failed:\n{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let pages = chapters(&root.join("book/src"));
    assert!(!pages.is_empty(), "no chapters in book/src/SUMMARY.md");
    let build_time = started.elapsed();

    let mut browser = Browser::launch(&bin).expect("launching Chromium");
    let target = browser
        .call(None, "Target.createTarget", json!({ "url": "about:blank" }))
        .expect("opening a tab");
    let attached = browser
        .call(
            None,
            "Target.attachToTarget",
            json!({ "targetId": target["targetId"], "flatten": true }),
        )
        .expect("attaching to the tab");
    let session = attached["sessionId"]
        .as_str()
        .expect("a session id")
        .to_string();
    let s = Some(session.as_str());
    browser
        .call(s, "Page.enable", json!({}))
        .expect("Page.enable");
    browser
        .call(s, "Network.enable", json!({}))
        .expect("Network.enable");

    let mut problems = Vec::new();
    let mut cache = BTreeMap::new();
    let mut figures = 0;
    for page in &pages {
        let file = out_dir.join(page);
        if !file.is_file() {
            problems.push(format!(
                "{page}: SUMMARY.md names it but mdbook did not build it"
            ));
            continue;
        }
        browser.events.clear();
        let url = format!("file://{}", file.display());
        let nav = browser
            .call(s, "Page.navigate", json!({ "url": url }))
            .unwrap_or_else(|e| panic!("{page}: {e:#}"));
        if let Some(e) = nav.get("errorText") {
            problems.push(format!("{page}: the browser could not open it: {e}"));
            continue;
        }
        browser
            .wait_event(&session, "Page.loadEventFired")
            .unwrap_or_else(|e| panic!("{page}: waiting for the load event: {e:#}"));
        let result = browser
            .call(
                s,
                "Runtime.evaluate",
                json!({ "expression": INSPECT, "awaitPromise": true, "returnByValue": true }),
            )
            .unwrap_or_else(|e| panic!("{page}: {e:#}"));
        if let Some(e) = result.get("exceptionDetails") {
            panic!("{page}: the page check threw: {e}");
        }
        let report = &result["result"]["value"];
        figures += report["images"].as_array().map_or(0, |a| a.len());
        problems.extend(check_page(page, report, &out_dir, &mut cache));
        // What the network domain saw while the page loaded: any request that left file://,
        // and any load that failed (a missing stylesheet, font or script).
        for e in &browser.events {
            let p = &e["params"];
            match e["method"].as_str() {
                Some("Network.requestWillBeSent") => {
                    let u = p["request"]["url"].as_str().unwrap_or("");
                    if !(u.starts_with("file://")
                        || u.starts_with("data:")
                        || u.starts_with("about:"))
                    {
                        problems.push(format!(
                            "{page}: the page requested {u} (the book must work offline)"
                        ));
                    }
                }
                Some("Network.loadingFailed") => {
                    problems.push(format!(
                        "{page}: a resource failed to load: {}",
                        p["errorText"]
                    ));
                }
                _ => {}
            }
        }
    }
    drop(browser);
    eprintln!(
        "checked {} page(s) and {figures} figure(s) in Chromium in {:.1}s (mdbook build {:.1}s)",
        pages.len(),
        started.elapsed().as_secs_f64(),
        build_time.as_secs_f64()
    );
    assert!(
        figures > 0,
        "no figures found in the book: did the chapters lose their SVGs?"
    );
    assert!(
        problems.is_empty(),
        "{} problem(s) in the rendered book:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
