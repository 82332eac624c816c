//! The writer of a container's log, in Docker's `json-file` format.
//!
//! The monitor owns the container's stdout and stderr pipes. Every chunk it
//! reads becomes one JSON object on its own line of
//! `<container dir>/container-json.log`, exactly as Docker writes it:
//!
//! ```text
//! {"log":"hello\n","stream":"stdout","time":"2026-11-23T04:05:06.123456789Z"}
//! ```
//!
//! so tools that read Docker's log files read ours. With `max-size` the file
//! is rotated when it would grow past the limit: `container-json.log` becomes
//! `.1`, `.1` becomes `.2`, and so on up to `max-file` files in all; the
//! oldest falls off the end. (The reader, `dockyard logs`, is the engine's.)

use std::fs::{self, File, OpenOptions};
use std::io::{Result, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::context;
use crate::time::rfc3339;

/// The log file's name in the container's directory.
pub const LOG_FILE: &str = "container-json.log";

/// `--log-opt max-size=10m --log-opt max-file=3`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// Bytes; `None` means the file grows without limit (Docker's default).
    pub max_size: Option<u64>,
    /// How many files to keep, the live one included (Docker's default is 1).
    pub max_file: u32,
}

impl Default for Rotation {
    fn default() -> Self {
        Rotation {
            max_size: None,
            max_file: 1,
        }
    }
}

/// One line of the log: `{"log":...,"stream":...,"time":...}` and a newline,
/// the fields in Docker's order. Written by hand, with the escapes of
/// `encoding/json` minus its HTML ones (the same bytes serde_json writes),
/// so that this program needs no JSON library.
pub fn entry_line(log: &str, stream: &str, time: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(log.len() + stream.len() + time.len() + 32);
    out.extend_from_slice(b"{\"log\":");
    json_string(&mut out, log);
    out.extend_from_slice(b",\"stream\":");
    json_string(&mut out, stream);
    out.extend_from_slice(b",\"time\":");
    json_string(&mut out, time);
    out.extend_from_slice(b"}\n");
    out
}

fn json_string(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    for &b in s.as_bytes() {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            0..=0x1f => {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            }
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

/// Appends entries to a container's log, rotating as configured.
pub struct Writer {
    path: PathBuf,
    file: File,
    size: u64,
    rotation: Rotation,
}

impl Writer {
    pub fn open(dir: &Path, rotation: Rotation) -> Result<Writer> {
        let path = dir.join(LOG_FILE);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| context(format_args!("opening {}", path.display()), e))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(Writer {
            path,
            file,
            size,
            rotation,
        })
    }

    /// Write one chunk of output from `stream` ("stdout" or "stderr").
    /// Like Docker, a chunk is split at newlines: each line is one entry.
    pub fn write(&mut self, stream: &str, data: &[u8]) -> Result<()> {
        for line in data.split_inclusive(|b| *b == b'\n') {
            let json = entry_line(
                &String::from_utf8_lossy(line),
                stream,
                &rfc3339(SystemTime::now()),
            );
            if let Some(max) = self.rotation.max_size {
                if self.size > 0 && self.size + json.len() as u64 > max {
                    self.rotate()?;
                }
            }
            self.file
                .write_all(&json)
                .map_err(|e| context(format_args!("writing {}", self.path.display()), e))?;
            self.size += json.len() as u64;
        }
        Ok(())
    }

    fn rotate(&mut self) -> Result<()> {
        let keep = self.rotation.max_file;
        let rename = |from: &Path, to: PathBuf| {
            fs::rename(from, to)
                .map_err(|e| context(format_args!("rotating {}", from.display()), e))
        };
        if keep > 1 {
            for n in (1..keep - 1).rev() {
                let from = rotated(&self.path, n);
                if from.exists() {
                    rename(&from, rotated(&self.path, n + 1))?;
                }
            }
            rename(&self.path, rotated(&self.path, 1))?;
        }
        // With max-file=1 the live file is simply truncated, as Docker does.
        self.file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&self.path)
            .map_err(|e| context(format_args!("reopening {}", self.path.display()), e))?;
        self.size = 0;
        Ok(())
    }
}

/// The name of the `n`th rotated file: `container-json.log.N`.
pub fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The engine's tests check these lines against serde_json and read them
    // back, rotated files included (engine/src/logs.rs).
    #[test]
    fn lines_escape_as_json() {
        assert_eq!(
            entry_line("a\"b\\c\n\t\u{1}é", "stdout", "T"),
            b"{\"log\":\"a\\\"b\\\\c\\n\\t\\u0001\xc3\xa9\",\"stream\":\"stdout\",\"time\":\"T\"}\n"
                .to_vec()
        );
    }
}
