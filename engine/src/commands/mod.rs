//! The `dockyard` commands, in docker's groups: each parses nothing (clap
//! did, in `cli.rs`), turns its flags into typed calls of the engine core
//! (the `dockyard` library) and prints what docker prints.
//!
//! | file           | commands                                                      |
//! |----------------|---------------------------------------------------------------|
//! | `run.rs`       | `run`, `create`: from flags to a container config             |
//! | `container.rs` | `start`, `stop`, `ps`, `logs`, `exec`, `top`, `stats`, ...    |
//! | `session.rs`   | the client of `attach`, `run -it` and `start -ai`             |
//! | `cp.rs`        | `cp`                                                          |
//! | `image.rs`     | `images`, `rmi`, `history`, `load`, `save`, `import`, prune   |
//! | `registry.rs`  | `pull`, `push`, `tag`, `login`, `logout`                      |
//! | `build.rs`     | `build`                                                       |
//! | `network.rs`   | `network ...`                                                 |
//! | `volume.rs`    | `volume ...`                                                  |
//! | `system.rs`    | `info`, `inspect`, `system df`, `system prune`                |
//! | `events.rs`    | `events`: the event journal, followed                         |
//!
//! This module keeps what they share: exit codes, docker's way of acting
//! on several containers, the confirmation prompt, `--format` and the
//! inspect output.

pub mod build;
pub mod container;
pub mod cp;
pub mod events;
pub mod image;
pub mod network;
pub mod registry;
pub mod run;
pub mod search;
pub mod session;
pub mod system;
pub mod volume;
pub mod warnings;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// What docker's client itself refuses before it asks the daemon ("the
/// input device is not a TTY" for `run -it` or `exec -it` without a
/// terminal, "invalid reference format" for `commit`'s name): printed as it
/// is, without the daemon's prefix, and exit status 1, `run` included.
#[derive(Debug)]
pub struct ClientRefusal(pub String);

impl std::fmt::Display for ClientRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ClientRefusal {}

/// docker's client: `-it` needs a terminal on stdin.
pub(crate) fn check_tty(tty: bool, interactive: bool, detach: bool) -> Result<()> {
    if tty && interactive && !detach && !nix::unistd::isatty(std::io::stdin()).unwrap_or(false) {
        return Err(ClientRefusal("the input device is not a TTY".into()).into());
    }
    Ok(())
}

use crate::format::table;
use crate::template;
use dockyard::state::Record;
use dockyard::Engine;

/// How a command ended, as a process exit code.
pub type Code = i32;

/// Run `f` on each named container, printing the name as docker does, and
/// every error; exit 1 if any failed.
fn each(engine: &Engine, names: &[String], f: impl Fn(&Record) -> Result<()>) -> Result<Code> {
    let mut code = 0;
    for name in names {
        match engine.containers.resolve(name).and_then(|r| f(&r)) {
            Ok(()) => println!("{name}"),
            Err(e) => {
                eprintln!("Error response from daemon: {e:#}");
                code = 1;
            }
        }
    }
    Ok(code)
}

/// Print `prompt` (a prune's warning) and read the answer: true for yes.
pub(crate) fn confirm(prompt: &str) -> Result<bool> {
    print!("{prompt}");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

/// What `inspect` prints: the documents as a JSON array, or each rendered
/// with `--format`.
pub(crate) fn print_documents(format: Option<&str>, docs: Vec<Value>) -> Result<()> {
    match format {
        Some(f) => {
            for d in &docs {
                println!("{}", template::render(f, d)?);
            }
        }
        None => println!("{}", serde_json::to_string_pretty(&Value::Array(docs))?),
    }
    Ok(())
}

/// `--format` of a listing (`ps`, `network ls`): each object rendered with
/// the template, or with `table TEMPLATE` as a table whose headers are the
/// `headers` of the fields the template names (`{{.ID}}` is "CONTAINER ID").
fn formatted(format: &str, objects: &[Value], headers: &[(&str, &str)]) -> Result<String> {
    // `--format json`: docker/cli's `{{json .}}`, one object a line, its
    // fields as the formatter names them (sorted, as Go's map encoding
    // sorts them; serde_json's map is sorted too).
    if format.trim() == "json" {
        return Ok(objects
            .iter()
            .map(|o| format!("{}\n", go_json(o)))
            .collect());
    }
    let format = format.replace("\\t", "\t");
    let (table_mode, body) = match format.strip_prefix("table") {
        Some(rest) => (true, rest.trim_start().to_string()),
        None => (false, format),
    };
    let mut lines = Vec::new();
    for o in objects {
        lines.push(template::render(&body, o)?);
    }
    if !table_mode {
        return Ok(lines.iter().map(|l| format!("{l}\n")).collect());
    }
    let mut head = body;
    for (field, header) in headers {
        head = head.replace(&format!("{{{{.{field}}}}}"), header);
    }
    let split = |l: &str| l.split('\t').map(str::to_string).collect::<Vec<_>>();
    let cols = split(&head);
    let cols: Vec<&str> = cols.iter().map(String::as_str).collect();
    let rows: Vec<Vec<String>> = lines.iter().map(|l| split(l)).collect();
    Ok(table(&cols, &rows))
}

/// JSON as Go's `json.Marshal` writes it: `<`, `>` and `&` escaped as
/// `\u003c`, `\u003e` and `\u0026` (HTML-safe), keys sorted.
fn go_json(v: &Value) -> String {
    serde_json::to_string(v)
        .unwrap_or_default()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

/// `--label KEY=VALUE` (or `KEY`, an empty value) as a map.
fn parse_labels(labels: &[String]) -> Result<BTreeMap<String, String>> {
    let mut map = BTreeMap::new();
    for l in labels {
        let (k, v) = l.split_once('=').unwrap_or((l, ""));
        if k.is_empty() {
            bail!("invalid label {l:?}: empty key");
        }
        map.insert(k.to_string(), v.to_string());
    }
    Ok(map)
}

/// Write an archive to `-o FILE`, or to stdout unless it is a terminal, as
/// docker's `save` and `export` do. A file is written beside its target and
/// renamed: a failed write leaves no half archive.
pub(crate) fn write_archive(
    output: Option<&Path>,
    write: impl FnOnce(&mut dyn std::io::Write) -> Result<()>,
) -> Result<()> {
    let Some(p) = output else {
        if nix::unistd::isatty(std::io::stdout()).unwrap_or(false) {
            bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
        }
        return write(&mut std::io::stdout().lock());
    };
    let tmp = p.with_extension("tmp-dockyard-save");
    let mut f =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    if let Err(e) = write(&mut f) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, p).with_context(|| format!("renaming to {}", p.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn format_renders_each_object_or_a_table() {
        let objects = [
            json!({"ID": "abc", "Names": "web"}),
            json!({"ID": "def", "Names": "database"}),
        ];
        let headers = [("ID", "CONTAINER ID"), ("Names", "NAMES")];
        assert_eq!(
            formatted("{{.Names}}", &objects, &headers).unwrap(),
            "web\ndatabase\n"
        );
        assert_eq!(
            formatted("table {{.ID}}\\t{{.Names}}", &objects, &headers).unwrap(),
            "CONTAINER ID   NAMES\nabc            web\ndef            database\n"
        );
    }

    #[test]
    fn labels_need_a_key() {
        let l = |v: &[&str]| parse_labels(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        let map = l(&["a=1", "b", "c=x=y"]).unwrap();
        assert_eq!(map["a"], "1");
        assert_eq!(map["b"], "");
        assert_eq!(map["c"], "x=y");
        assert_eq!(
            l(&["=1"]).unwrap_err().to_string(),
            "invalid label \"=1\": empty key"
        );
    }
}
