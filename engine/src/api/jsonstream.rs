//! The JSON progress stream of pull, push, load, import and build.
//!
//! The endpoints that take a while answer `200 OK` with a chunked body of
//! JSON messages, one per line (each ends with `\r\n`, as moby's
//! `streamformatter` writes them), and the docker CLI renders them as they
//! come: progress bars for `status` messages with an `id`, text for
//! `stream` messages, and an `aux` message is data for the client (the
//! built image's ID, the pushed digest).
//!
//! ```text
//! {"status":"Pulling from busybox","id":"latest"}
//! {"status":"Pull complete","progressDetail":{},"id":"a3ed95caeb02"}
//! {"status":"Digest: sha256:..."}
//! {"stream":"Step 1/2 : FROM busybox\n"}
//! {"aux":{"ID":"sha256:..."}}
//! {"errorDetail":{"code":1,"message":"The command ..."},"error":"The command ..."}
//! ```
//!
//! An error has two shapes, as in dockerd: before anything was written the
//! handler returns it and the client gets an HTTP status and
//! `{"message": ...}`; once the stream has begun (the status line is on the
//! wire) it can only be a last message, `errorDetail` and `error`. So the
//! stream's head is written lazily, with its first message: an operation
//! that fails at once (no such image, a bad reference) still gets its 404.

use std::io::Write;
use std::os::unix::net::UnixStream;

use anyhow::Result;
use serde_json::{json, Value};

use super::http;

/// A JSON message stream on one connection.
pub struct JsonStream<'a> {
    conn: &'a UnixStream,
    started: bool,
}

impl<'a> JsonStream<'a> {
    pub fn new(conn: &'a UnixStream) -> JsonStream<'a> {
        JsonStream {
            conn,
            started: false,
        }
    }

    /// Whether the head (and so a 200) is on the wire.
    pub fn started(&self) -> bool {
        self.started
    }

    /// One message (the head first, if it is not sent yet).
    pub fn send(&mut self, message: &Value) -> Result<()> {
        if !self.started {
            http::start_chunked(&mut &*self.conn, 200, "application/json")?;
            self.started = true;
        }
        let mut line = serde_json::to_vec(message)?;
        line.extend_from_slice(b"\r\n");
        http::write_chunk(&mut &*self.conn, &line)
    }

    /// `{"stream": text}`: output the CLI prints as it is.
    pub fn text(&mut self, text: &str) -> Result<()> {
        self.send(&json!({ "stream": text }))
    }

    /// `{"status": text}`: a status line without an id.
    pub fn status(&mut self, text: &str) -> Result<()> {
        self.send(&json!({ "status": text }))
    }

    /// The last message of a failed operation: docker's `JSONError`, with
    /// `code` when it has one (a failed RUN's exit status, which the CLI
    /// exits with).
    pub fn error(&mut self, message: &str, code: Option<i32>) -> Result<()> {
        let detail = match code {
            Some(c) => json!({ "code": c, "message": message }),
            None => json!({ "message": message }),
        };
        self.send(&json!({ "errorDetail": detail, "error": message }))
    }

    /// End the body (the last, empty chunk).
    pub fn finish(self) -> Result<()> {
        if self.started {
            http::write_chunk(&mut &*self.conn, &[])?;
        }
        (&*self.conn).flush()?;
        Ok(())
    }
}

/// A writer whose bytes go out as chunks of a chunked body (`save`'s tar):
/// the archive streams to the client as it is made, not held in memory.
pub struct ChunkWriter<'a> {
    conn: &'a UnixStream,
    buf: Vec<u8>,
}

impl<'a> ChunkWriter<'a> {
    /// Write the head (`content_type`, chunked) and return the writer.
    pub fn start(conn: &'a UnixStream, content_type: &str) -> Result<ChunkWriter<'a>> {
        http::start_chunked(&mut &*conn, 200, content_type)?;
        Ok(ChunkWriter {
            conn,
            buf: Vec::with_capacity(CHUNK),
        })
    }

    /// Send what is buffered and the last chunk.
    pub fn finish(mut self) -> Result<()> {
        self.flush()?;
        http::write_chunk(&mut &*self.conn, &[])
    }
}

/// Bytes per chunk: big enough that the chunk headers cost nothing.
const CHUNK: usize = 64 * 1024;

impl Write for ChunkWriter<'_> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            http::write_chunk(&mut &*self.conn, &self.buf).map_err(std::io::Error::other)?;
            self.buf.clear();
        }
        Ok(())
    }
}
