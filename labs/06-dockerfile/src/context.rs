//! # The build context, and what `.dockerignore` keeps out of it
//!
//! `docker build DIR` sends DIR, the *context*, to the builder, and `COPY` and `ADD` can read
//! nothing else: `COPY /etc/passwd /x` means `DIR/etc/passwd`, and `COPY ../secret /x` cannot
//! climb out, because every source is cleaned as if `DIR` were `/` (the course notes show the
//! first mistake: `COPY /data/html/index.html ...` looks for `DIR/data/html/index.html`).
//!
//! `.dockerignore` at the top of the context removes paths from it, with one pattern a line:
//!
//! | pattern          | excludes                                                      |
//! |------------------|---------------------------------------------------------------|
//! | `*.log`          | `app.log` at the top only: `*` never crosses a `/`            |
//! | `**/*.log`       | any `.log`, at any depth (`**` is any number of directories)  |
//! | `build`          | the directory `build` *and everything below it*               |
//! | `!build/keep.txt`| ...except this file: a later `!` pattern re-includes          |
//! | `# comment`      | nothing                                                       |
//!
//! The last pattern that matches a path, or one of its parent directories, decides (moby's
//! `patternmatcher`). An excluded file is as absent as a missing one: `COPY` says
//! `file not found in build context or excluded by .dockerignore`.
//!
//! The shell equivalent of what the builder reads is
//! `tar -C DIR --exclude-from=DIR/.dockerignore -c .`, give or take `**` and `!`.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use sha2::{Digest, Sha256};

/// One `.dockerignore` line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    /// The cleaned pattern split at `/`.
    parts: Vec<String>,
    /// The cleaned pattern as one string.
    text: String,
    /// `!pattern`: re-include what it matches.
    negated: bool,
}

/// The patterns of a `.dockerignore` file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ignore {
    patterns: Vec<Pattern>,
}

impl Ignore {
    /// Reads `.dockerignore` text: one pattern a line, `#` comments, `!` exceptions.
    pub fn parse(text: &str) -> Ignore {
        let mut patterns = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (negated, pat) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            let cleaned = clean(pat);
            if cleaned.as_os_str().is_empty() {
                continue;
            }
            let text = cleaned.to_string_lossy().into_owned();
            patterns.push(Pattern {
                parts: text.split('/').map(str::to_string).collect(),
                text,
                negated,
            });
        }
        Ignore { patterns }
    }

    // ANCHOR: excluded
    /// Whether `rel` (relative to the context, `/`-separated) is excluded: the last pattern
    /// that matches it or one of its parents decides.
    pub fn excluded(&self, rel: &Path) -> bool {
        let parts: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        let mut excluded = false;
        for p in &self.patterns {
            let hit = (1..=parts.len()).any(|k| match_parts(&p.parts, &parts[..k]));
            if hit {
                excluded = !p.negated;
            }
        }
        excluded
    }
    // ANCHOR_END: excluded

    // ANCHOR: reinclude
    /// Whether an excluded directory must still be walked because an exception could
    /// re-include something below it: `build` then `!build/keep.txt` keeps `build/keep.txt`
    /// (and so the directory that holds it). This is docker's own test (moby's
    /// `TarWithOptions`, which makes the classic builder's context): an exception pattern
    /// that *starts with* the directory's path. `!**/keep.txt` does not start with `build/`,
    /// so docker skips `build` whole, and so does this.
    pub fn may_reinclude_below(&self, dir: &Path) -> bool {
        let prefix = format!("{}/", dir.to_string_lossy());
        self.patterns
            .iter()
            .any(|p| p.negated && format!("{}/", p.text).starts_with(&prefix))
    }
    // ANCHOR_END: reinclude

    /// Whether `rel` is left out of the context: excluded, and not a directory that an
    /// exception reaches into (`is_dir` says whether it is one).
    fn leaves_out(&self, rel: &Path, is_dir: bool) -> bool {
        self.excluded(rel) && !(is_dir && self.may_reinclude_below(rel))
    }
}

/// `**` matches any number of components; any other component is matched with [`fnmatch`].
fn match_parts(pat: &[String], path: &[String]) -> bool {
    match pat.split_first() {
        None => path.is_empty(),
        Some((first, rest)) if first == "**" => {
            (0..=path.len()).any(|i| match_parts(rest, &path[i..]))
        }
        Some((first, rest)) => match path.split_first() {
            Some((name, tail)) => fnmatch(first, name) && match_parts(rest, tail),
            None => false,
        },
    }
}

/// Go's `filepath.Match` for one path component: `*`, `?`, `[a-z]`, `[^a]`, `\x`.
pub fn fnmatch(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    fn go(p: &[char], n: &[char]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some('*') => (0..=n.len()).any(|i| go(&p[1..], &n[i..])),
            Some('?') => !n.is_empty() && n[0] != '/' && go(&p[1..], &n[1..]),
            Some('[') => {
                let Some(c) = n.first() else { return false };
                let mut i = 1;
                let negate = matches!(p.get(1), Some('^') | Some('!'));
                if negate {
                    i += 1;
                }
                let mut matched = false;
                let mut first = true;
                while i < p.len() && (first || p[i] != ']') {
                    first = false;
                    let mut lo = p[i];
                    if lo == '\\' && i + 1 < p.len() {
                        i += 1;
                        lo = p[i];
                    }
                    let mut hi = lo;
                    if p.get(i + 1) == Some(&'-') && p.get(i + 2).is_some_and(|c| *c != ']') {
                        hi = p[i + 2];
                        i += 2;
                    }
                    if lo <= *c && *c <= hi {
                        matched = true;
                    }
                    i += 1;
                }
                if i >= p.len() {
                    return false; // unterminated class: Go reports ErrBadPattern
                }
                matched != negate && go(&p[i + 1..], &n[1..])
            }
            Some('\\') if p.len() > 1 => n.first() == Some(&p[1]) && go(&p[2..], &n[1..]),
            Some(c) => n.first() == Some(c) && go(&p[1..], &n[1..]),
        }
    }
    go(&p, &n)
}

/// Whether a word has glob characters.
pub fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Cleans a path lexically as if it started at `/`, and drops that `/`: `../a/./b` is `a/b`.
/// This is what keeps every source inside the context.
pub fn clean(path: &str) -> PathBuf {
    let mut out = PathBuf::new();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// A directory to build from, with its `.dockerignore`.
#[derive(Debug, Clone)]
pub struct BuildContext {
    pub root: PathBuf,
    pub ignore: Ignore,
    /// The content digests of files already read, by their `stat` (see [`FileDigests`]).
    digests: RefCell<FileDigests>,
}

/// A cache of file content digests, so that a rebuild of an unchanged context does not
/// read its files again (a 50 MB file takes longer to hash than the rest of the build).
///
/// A file's entry is keyed by what `stat` says of it: device, inode, size, mtime and ctime
/// to the nanosecond. Any write to a file changes its mtime and ctime, and nothing but the
/// kernel can set a ctime, so a file with the same key still has the same bytes; git's index
/// and buildkit rely on the same. One hole stays: a file written twice within one tick of
/// the kernel's clock, with the same size, keeps its key. So an entry is only kept for a
/// file whose ctime is at least two seconds old when it is read ("racy git" in git's docs).
///
/// ```text
/// STORE/build-cache/file-digests.json   {"DEV:INO:SIZE:MTIME:CTIME": "SHA256 HEX", ...}
/// ```
#[derive(Debug, Clone, Default)]
struct FileDigests {
    /// Where the cache lives; `None` keeps it in memory only.
    path: Option<PathBuf>,
    /// A directory on the same file system, for the temporary file renamed into `path`.
    tmp: Option<PathBuf>,
    map: BTreeMap<String, String>,
    dirty: bool,
}

impl FileDigests {
    fn key(meta: &fs::Metadata) -> String {
        format!(
            "{}:{}:{}:{}.{:09}:{}.{:09}",
            meta.dev(),
            meta.ino(),
            meta.len(),
            meta.mtime(),
            meta.mtime_nsec(),
            meta.ctime(),
            meta.ctime_nsec()
        )
    }

    /// Whether the file changed too recently for its key to be trusted (see above).
    fn racy(meta: &fs::Metadata) -> bool {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(i64::MAX);
        meta.ctime() >= now - 2
    }
}

impl BuildContext {
    /// The context at `dir`, reading `dir/.dockerignore` if there is one.
    pub fn open(dir: &Path) -> Result<BuildContext> {
        let root = dir
            .canonicalize()
            .with_context(|| format!("unable to prepare context: path {:?} not found", dir))?;
        if !root.is_dir() {
            bail!(
                "unable to prepare context: context must be a directory: {}",
                root.display()
            );
        }
        let ignore = match fs::read_to_string(root.join(".dockerignore")) {
            Ok(text) => Ignore::parse(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ignore::default(),
            Err(e) => return Err(e).context("reading .dockerignore"),
        };
        Ok(BuildContext {
            root,
            ignore,
            digests: RefCell::default(),
        })
    }

    /// An empty context (`build - < Dockerfile`).
    pub fn empty(dir: &Path) -> BuildContext {
        BuildContext {
            root: dir.to_path_buf(),
            ignore: Ignore::default(),
            digests: RefCell::default(),
        }
    }

    /// The entry at `rel` (not following a final symlink), unless it is missing or ignored.
    pub fn lookup(&self, rel: &Path) -> Option<(PathBuf, fs::Metadata)> {
        if !rel.as_os_str().is_empty()
            && self.ignore.excluded(rel)
            && !(self.ignore.may_reinclude_below(rel)
                && fs::symlink_metadata(self.root.join(rel)).is_ok_and(|m| m.is_dir()))
        {
            return None;
        }
        let real = self.root.join(rel);
        // Every parent must be a real directory: a symlinked parent could lead outside.
        let mut at = self.root.clone();
        for c in rel.parent().into_iter().flat_map(Path::components) {
            at.push(c);
            if !fs::symlink_metadata(&at).ok()?.is_dir() {
                return None;
            }
        }
        let meta = fs::symlink_metadata(&real).ok()?;
        Some((real, meta))
    }

    /// The names in the directory `rel` that are not ignored, sorted.
    pub fn list(&self, rel: &Path) -> Result<Vec<OsString>> {
        let dir = self.root.join(rel);
        let mut names: Vec<OsString> = fs::read_dir(&dir)
            .with_context(|| format!("listing {}", dir.display()))?
            .filter_map(|e| e.ok())
            .filter(|e| {
                let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
                !self.ignore.leaves_out(&rel.join(e.file_name()), is_dir)
            })
            .map(|e| e.file_name())
            .collect();
        names.sort();
        Ok(names)
    }

    /// Every path in the context that is not ignored, directories included, sorted.
    pub fn walk(&self) -> Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        let mut stack = vec![PathBuf::new()];
        while let Some(rel) = stack.pop() {
            for name in self.list(&rel)? {
                let p = rel.join(&name);
                let is_dir = fs::symlink_metadata(self.root.join(&p))
                    .map(|m| m.is_dir())
                    .unwrap_or(false);
                if is_dir {
                    stack.push(p.clone());
                }
                out.push(p);
            }
        }
        out.sort();
        Ok(out)
    }

    /// The sources a COPY names, cleaned, with globs expanded against the context.
    pub fn expand_source(&self, src: &str) -> Result<Vec<PathBuf>> {
        let cleaned = clean(src);
        if !has_glob(src) {
            if self.lookup(&cleaned).is_none() {
                bail!(
                    "file not found in build context or excluded by .dockerignore: stat {}: \
                     file does not exist",
                    cleaned.display()
                );
            }
            return Ok(vec![cleaned]);
        }
        let pat: Vec<String> = cleaned
            .to_string_lossy()
            .split('/')
            .map(str::to_string)
            .collect();
        let matches: Vec<PathBuf> = self
            .walk()?
            .into_iter()
            .filter(|p| {
                let parts: Vec<String> = p
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                parts.len() == pat.len() && pat.iter().zip(&parts).all(|(pp, n)| fnmatch(pp, n))
            })
            .collect();
        if matches.is_empty() {
            bail!("no source files were specified: {src} matches nothing in the build context");
        }
        Ok(matches)
    }

    /// Keep the file digests in `path` (under `tmp`'s file system) across builds; a
    /// cache that cannot be read starts empty.
    pub fn with_digest_cache(self, path: PathBuf, tmp: PathBuf) -> BuildContext {
        let map = fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        *self.digests.borrow_mut() = FileDigests {
            path: Some(path),
            tmp: Some(tmp),
            map,
            dirty: false,
        };
        self
    }

    /// Write the file digests learnt since the cache was read (by rename, so a killed
    /// build never leaves a torn file). A failure only costs the next build a re-read.
    pub fn save_digest_cache(&self) {
        let mut d = self.digests.borrow_mut();
        let (Some(path), Some(tmp), true) = (d.path.clone(), d.tmp.clone(), d.dirty) else {
            return;
        };
        let tmp = tmp.join(format!("file-digests-{}", std::process::id()));
        let ok = serde_json::to_vec(&d.map)
            .ok()
            .is_some_and(|bytes| fs::write(&tmp, bytes).is_ok() && fs::rename(&tmp, &path).is_ok());
        if !ok {
            let _ = fs::remove_file(&tmp);
        }
        d.dirty = false;
    }

    /// The SHA-256 of a regular file's bytes, from the cache when its `stat` is unchanged.
    fn file_digest(&self, real: &Path, meta: &fs::Metadata, buf: &mut [u8]) -> Result<String> {
        let key = FileDigests::key(meta);
        if let Some(d) = self.digests.borrow().map.get(&key) {
            return Ok(d.clone());
        }
        let mut h = Sha256::new();
        let mut f = fs::File::open(real).with_context(|| format!("reading {}", real.display()))?;
        loop {
            let n = f.read(buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        let digest = hex::encode(h.finalize());
        if !FileDigests::racy(meta) {
            let mut d = self.digests.borrow_mut();
            d.map.insert(key, digest.clone());
            d.dirty = true;
        }
        Ok(digest)
    }

    // ANCHOR: hash
    /// The content hash of some sources: every path below them with its type, mode, owner
    /// and contents (or link target). Modification times are left out, so `touch` alone
    /// does not invalidate the cache; a changed byte or mode does. A file's contents enter
    /// as their own SHA-256, which a rebuild takes from the digest cache.
    pub fn hash_sources(&self, sources: &[PathBuf]) -> Result<String> {
        let mut h = Sha256::new();
        let mut stack: Vec<PathBuf> = sources.iter().rev().cloned().collect();
        let mut buf = vec![0u8; 64 * 1024];
        while let Some(rel) = stack.pop() {
            let Some((real, meta)) = self.lookup(&rel) else {
                continue;
            };
            h.update(rel.as_os_str().as_encoded_bytes());
            h.update(format!("\0{:o}\0", meta.mode()).as_bytes());
            if meta.is_dir() {
                for name in self.list(&rel)?.into_iter().rev() {
                    stack.push(rel.join(name));
                }
            } else if meta.file_type().is_symlink() {
                h.update(fs::read_link(&real)?.as_os_str().as_encoded_bytes());
            } else if meta.is_file() {
                h.update(meta.len().to_le_bytes());
                h.update(self.file_digest(&real, &meta, &mut buf)?.as_bytes());
            }
            h.update(b"\n");
        }
        Ok(format!("sha256:{}", hex::encode(h.finalize())))
    }
    // ANCHOR_END: hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnmatch_is_go_filepath_match() {
        assert!(fnmatch("*.log", "app.log"));
        assert!(!fnmatch("*.log", "app.txt"));
        assert!(fnmatch("ind?.html", "inde.html"));
        assert!(fnmatch("[a-c]x", "bx"));
        assert!(!fnmatch("[^a-c]x", "bx"));
        assert!(fnmatch("\\*", "*"));
        assert!(!fnmatch("\\*", "a"));
    }

    #[test]
    fn dockerignore_rules() {
        let ig = Ignore::parse("# comment\n*.log\nbuild\n!build/keep.txt\n**/*.tmp\n/secret\n");
        assert!(ig.excluded(Path::new("app.log")));
        assert!(!ig.excluded(Path::new("sub/app.log")), "* does not cross /");
        assert!(ig.excluded(Path::new("build")));
        assert!(
            ig.excluded(Path::new("build/out.bin")),
            "a directory takes its contents"
        );
        assert!(!ig.excluded(Path::new("build/keep.txt")), "! re-includes");
        assert!(ig.excluded(Path::new("a/b/c.tmp")));
        assert!(
            ig.excluded(Path::new("c.tmp")),
            "** matches zero directories"
        );
        assert!(ig.excluded(Path::new("secret")));
        assert!(!ig.excluded(Path::new("main.c")));
        assert!(ig.may_reinclude_below(Path::new("build")));
        assert!(!ig.may_reinclude_below(Path::new("bui")));
        let deep = Ignore::parse("build\n!**/keep.txt\n");
        assert!(
            !deep.may_reinclude_below(Path::new("build")),
            "docker's prefix test"
        );
    }

    #[test]
    fn exceptions_reach_into_excluded_directories() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("build/sub")).unwrap();
        fs::write(dir.path().join("build/out.bin"), "x").unwrap();
        fs::write(dir.path().join("build/sub/keep.txt"), "k").unwrap();
        fs::write(dir.path().join("README.md"), "r").unwrap();
        fs::write(dir.path().join("NOTES.md"), "n").unwrap();
        fs::write(
            dir.path().join(".dockerignore"),
            "build\n!build/sub/keep.txt\n*.md\n!README.md\n",
        )
        .unwrap();
        let ctx = BuildContext::open(dir.path()).unwrap();
        let all: Vec<String> = ctx
            .walk()
            .unwrap()
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        assert_eq!(
            all,
            [
                ".dockerignore",
                "README.md",
                "build",
                "build/sub",
                "build/sub/keep.txt"
            ]
        );
        assert!(ctx.lookup(Path::new("build/out.bin")).is_none());
        assert!(ctx.lookup(Path::new("build/sub/keep.txt")).is_some());
    }

    #[test]
    fn sources_cannot_leave_the_context() {
        assert_eq!(clean("../../etc/passwd"), PathBuf::from("etc/passwd"));
        assert_eq!(
            clean("/data/html/index.html"),
            PathBuf::from("data/html/index.html")
        );
        assert_eq!(clean("./a/../b/."), PathBuf::from("b"));
        assert_eq!(clean("."), PathBuf::new());
    }

    #[test]
    fn hash_changes_with_content_and_mode_not_mtime() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a"), "one").unwrap();
        fs::create_dir(dir.path().join("d")).unwrap();
        fs::write(dir.path().join("d/b"), "two").unwrap();
        let ctx = BuildContext::open(dir.path()).unwrap();
        let all = vec![PathBuf::from("a"), PathBuf::from("d")];
        let h1 = ctx.hash_sources(&all).unwrap();
        assert_eq!(h1, ctx.hash_sources(&all).unwrap());
        fs::write(dir.path().join("d/b"), "TWO").unwrap();
        let h2 = ctx.hash_sources(&all).unwrap();
        assert_ne!(h1, h2);
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir.path().join("a"), fs::Permissions::from_mode(0o700)).unwrap();
        assert_ne!(h2, ctx.hash_sources(&all).unwrap());
    }

    #[test]
    fn file_digests_are_cached_by_stat_and_never_stale() {
        let dir = tempfile::tempdir().unwrap();
        let (root, tmp) = (dir.path().join("ctx"), dir.path().join("tmp"));
        let cache = dir.path().join("file-digests.json");
        fs::create_dir(&root).unwrap();
        fs::create_dir(&tmp).unwrap();
        fs::write(root.join("big"), "hello").unwrap();
        let src = vec![PathBuf::from("big")];
        let open = || {
            BuildContext::open(&root)
                .unwrap()
                .with_digest_cache(cache.clone(), tmp.clone())
        };
        let uncached = || {
            BuildContext::open(&root)
                .unwrap()
                .hash_sources(&src)
                .unwrap()
        };

        // Just written: its stat may not change with the next write ("racy"), so no entry.
        let ctx = open();
        let h1 = ctx.hash_sources(&src).unwrap();
        ctx.save_digest_cache();
        assert!(
            !cache.exists(),
            "a file changed in the last 2 s must not be cached"
        );

        std::thread::sleep(std::time::Duration::from_millis(3100));
        let ctx = open();
        assert_eq!(ctx.hash_sources(&src).unwrap(), h1);
        ctx.save_digest_cache();
        let map: BTreeMap<String, String> =
            serde_json::from_slice(&fs::read(&cache).unwrap()).unwrap();
        assert_eq!(
            map.values().collect::<Vec<_>>(),
            [&hex::encode(Sha256::digest(b"hello"))]
        );

        // The next build takes the digest from the cache, not from the file: a poisoned
        // entry shows it.
        let poisoned: BTreeMap<_, _> = map
            .keys()
            .map(|k| (k.clone(), hex::encode(Sha256::digest(b"other"))))
            .collect();
        fs::write(&cache, serde_json::to_vec(&poisoned).unwrap()).unwrap();
        assert_ne!(open().hash_sources(&src).unwrap(), h1);

        // A write changes the file's mtime and ctime, so its old entry no longer applies.
        fs::write(root.join("big"), "HELLO").unwrap();
        let h2 = open().hash_sources(&src).unwrap();
        assert_ne!(h2, h1);
        assert_eq!(h2, uncached());
    }

    #[test]
    fn globs_expand_against_the_context_minus_ignored() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["index.html", "index.css", "other.html", "skip.html"] {
            fs::write(dir.path().join(f), f).unwrap();
        }
        fs::write(dir.path().join(".dockerignore"), "skip.html\n").unwrap();
        let ctx = BuildContext::open(dir.path()).unwrap();
        assert_eq!(
            ctx.expand_source("index.*").unwrap(),
            vec![PathBuf::from("index.css"), PathBuf::from("index.html")]
        );
        assert_eq!(
            ctx.expand_source("*.html").unwrap(),
            vec![PathBuf::from("index.html"), PathBuf::from("other.html")]
        );
        let err = ctx.expand_source("skip.html").unwrap_err().to_string();
        assert!(err.contains("excluded by .dockerignore"), "{err}");
    }
}
