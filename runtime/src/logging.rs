//! `--log FILE --log-format text|json`: where the runtime says what it did.
//!
//! The runtime's own stdout and stderr are often the *container's*: the
//! shim hands `create` the pipes it will read the container's output from,
//! and the container's first process inherits them. So a runtime logs to a
//! file its caller names, one line per event, and the caller reads it back:
//! containerd shows the last `msg` of a failed command to the user. The JSON
//! form is logrus's, as runc writes it:
//!
//! ```text
//! {"level":"error","msg":"container \"c1\" does not exist","time":"2026-12-07T04:10:00Z"}
//! time="2026-12-07T04:10:00Z" level=error msg="container \"c1\" does not exist"
//! ```

use std::fs::{File, OpenOptions};
use std::io::Write;

use anyhow::{bail, Context};

use crate::cli::Global;

/// Where log lines go, and in which form.
pub struct Logger {
    file: Option<File>,
    json: bool,
    debug: bool,
}

impl Logger {
    pub fn open(g: &Global) -> anyhow::Result<Logger> {
        let json = match g.log_format.as_str() {
            "json" => true,
            "text" => false,
            other => bail!("invalid log-format: {other} (expected text or json)"),
        };
        let file = match &g.log {
            Some(path) => Some(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .with_context(|| format!("opening the log file {}", path.display()))?,
            ),
            None => None,
        };
        Ok(Logger {
            file,
            json,
            debug: g.debug,
        })
    }

    pub fn debug(&self, msg: &str) {
        if self.debug {
            self.write("debug", msg);
        }
    }

    pub fn info(&self, msg: &str) {
        self.write("info", msg);
    }

    pub fn warn(&self, msg: &str) {
        self.write("warning", msg);
    }

    pub fn error(&self, msg: &str) {
        self.write("error", msg);
    }

    fn write(&self, level: &str, msg: &str) {
        let line = format_line(self.json, level, msg, &crate::time::now());
        match &self.file {
            // One write(2) per line on an O_APPEND file: lines of several
            // runtime processes never interleave.
            Some(f) => {
                let mut w: &File = f;
                let _ = w.write_all(line.as_bytes());
            }
            // Without --log, only warnings and errors, on stderr (which
            // may be the container's: keep it quiet).
            None if level != "info" && level != "debug" => eprint!("{line}"),
            None => {}
        }
    }
}

/// One log line, newline included.
pub fn format_line(json: bool, level: &str, msg: &str, time: &str) -> String {
    if json {
        let v = serde_json::json!({"level": level, "msg": msg, "time": time});
        format!("{v}\n")
    } else {
        format!("time=\"{time}\" level={level} msg={}\n", quote(msg))
    }
}

/// logrus quotes a value with spaces or quotes in it, Go-style.
fn quote(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "-._/:".contains(c))
        && !s.is_empty()
    {
        return s.to_string();
    }
    serde_json::Value::String(s.to_string()).to_string()
}

#[cfg(test)]
mod tests {
    use super::format_line;

    #[test]
    fn json_lines_are_logrus_objects() {
        let line = format_line(true, "error", "no such \"c\"", "T");
        let v: serde_json::Value = serde_json::from_str(line.trim_end()).unwrap();
        assert_eq!(v["level"], "error");
        assert_eq!(v["msg"], "no such \"c\"");
        assert_eq!(v["time"], "T");
        assert!(line.ends_with('\n'));
    }

    #[test]
    fn text_lines_quote_like_logrus() {
        assert_eq!(
            format_line(false, "info", "started", "T"),
            "time=\"T\" level=info msg=started\n"
        );
        assert_eq!(
            format_line(false, "warning", "two words", "T"),
            "time=\"T\" level=warning msg=\"two words\"\n"
        );
    }
}
