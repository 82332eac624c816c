//! A minimal HTTP/1.1 client: one request per connection, over a unix
//! socket or TCP (with mutual TLS when asked, see `tls`), which is all the
//! Engine API needs for the commands the client sends (no keep-alive; a
//! hijacked stream starts here and goes on in `hijack`).
//!
//! HTTP/1.1 is text up to the blank line: a status line, headers, then the
//! body, whose end is said by `Content-Length`, by `Transfer-Encoding:
//! chunked` (each chunk its size in hex, a zero-size chunk last), or by the
//! server closing the connection. We send `Connection: close`, so reading
//! to the end is always allowed; the two headers are still honoured, so a
//! truncated body is an error rather than silently short output.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;

use anyhow::{anyhow, bail, Context, Result};
use rustls::{ClientConnection, StreamOwned};

/// Where the service listens: `unix:///PATH` or `tcp://HOST:PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Unix(String),
    Tcp(String),
}

impl Host {
    /// Parse `-H`'s value as docker does (`unix://` and `tcp://`; a bare
    /// path is a unix socket's). TLS is `tcp://` with
    /// `DOCKYARD_TLS_VERIFY` (see `tls`).
    pub fn parse(s: &str) -> Result<Host> {
        if let Some(p) = s.strip_prefix("unix://") {
            if p.is_empty() {
                bail!("invalid host {s:?}: unix:// needs a socket path");
            }
            Ok(Host::Unix(p.to_string()))
        } else if let Some(a) = s.strip_prefix("tcp://") {
            let a = a.trim_end_matches('/');
            if !a.contains(':') {
                bail!("invalid host {s:?}: tcp:// needs HOST:PORT");
            }
            Ok(Host::Tcp(a.to_string()))
        } else if s.starts_with('/') {
            Ok(Host::Unix(s.to_string()))
        } else {
            bail!("invalid host {s:?}: expected unix://PATH or tcp://HOST:PORT")
        }
    }

    /// As docker names it in messages: `unix:///run/dockyard.sock`.
    pub fn url(&self) -> String {
        match self {
            Host::Unix(p) => format!("unix://{p}"),
            Host::Tcp(a) => format!("tcp://{a}"),
        }
    }
}

/// A response: the status code and the whole body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// The service could not be reached at all (as opposed to answering with
/// an error): the caller words it as docker's "Cannot connect".
#[derive(Debug)]
pub struct Unreachable(pub String);

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Cannot connect to the dockyard service at {}. Is the dockyard service running?",
            self.0
        )
    }
}

impl std::error::Error for Unreachable {}

pub trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// A connection to the service: a unix socket, TCP, or TLS over TCP. An
/// enum rather than a boxed stream, because a hijacked session polls the
/// socket itself (`hijack`) and half-closes it when our input ends.
pub enum Conn {
    Unix(UnixStream),
    Tcp(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Unix(s) => s.read(buf),
            Conn::Tcp(s) => s.read(buf),
            Conn::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Conn::Unix(s) => s.write(buf),
            Conn::Tcp(s) => s.write(buf),
            Conn::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Conn::Unix(s) => s.flush(),
            Conn::Tcp(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
        }
    }
}

impl Conn {
    /// The socket, for poll(2).
    pub fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Conn::Unix(s) => s.as_fd(),
            Conn::Tcp(s) => s.as_fd(),
            Conn::Tls(s) => s.sock.as_fd(),
        }
    }

    /// Our side is done sending (`shutdown(SHUT_WR)`, or TLS's
    /// close_notify): the service sees the end of the input, and the
    /// output still comes. docker's CLI does this at its stdin's EOF.
    pub fn close_write(&mut self) {
        match self {
            Conn::Unix(s) => drop(s.shutdown(std::net::Shutdown::Write)),
            Conn::Tcp(s) => drop(s.shutdown(std::net::Shutdown::Write)),
            Conn::Tls(s) => {
                s.conn.send_close_notify();
                let _ = s.flush();
            }
        }
    }

    /// Decrypted bytes already inside the TLS session, which poll(2) on the
    /// socket cannot see.
    pub fn has_buffered(&mut self) -> bool {
        match self {
            Conn::Tls(s) => s
                .conn
                .process_new_packets()
                .is_ok_and(|st| st.plaintext_bytes_to_read() > 0),
            _ => false,
        }
    }
}

/// A connection to the service (TLS over `tcp://` when asked).
pub fn connect(host: &Host) -> Result<Conn> {
    Ok(match host {
        Host::Unix(p) => Conn::Unix(UnixStream::connect(p).map_err(|_| Unreachable(host.url()))?),
        Host::Tcp(a) => {
            let tcp = TcpStream::connect(a).map_err(|_| Unreachable(host.url()))?;
            match super::tls::cert_dir() {
                Some(dir) => Conn::Tls(Box::new(super::tls::connect(tcp, a, &dir)?)),
                None => Conn::Tcp(tcp),
            }
        }
    })
}

/// Write a request's head (with `extra` header lines) and its body.
pub fn send(
    stream: &mut dyn Stream,
    host: &Host,
    method: &str,
    path: &str,
    extra: &str,
    body: Option<&[u8]>,
) -> Result<()> {
    // The Host header is required by HTTP/1.1; over a unix socket there is
    // no host name, and docker's client sends "api.moby.localhost".
    let host_header = match host {
        Host::Unix(_) => "api.moby.localhost",
        Host::Tcp(a) => a.as_str(),
    };
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: dockyard/{}\r\n{extra}",
        env!("CARGO_PKG_VERSION")
    );
    if let Some(b) = body {
        if !extra.contains("Content-Type:") {
            head += "Content-Type: application/json\r\n";
        }
        head += &format!("Content-Length: {}\r\n", b.len());
    }
    head += "\r\n";
    stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(body.unwrap_or_default()))
        .and_then(|()| stream.flush())
        .with_context(|| format!("sending {method} {path}"))
}

/// Send one request and read the whole response.
pub fn request(host: &Host, method: &str, path: &str, body: Option<&[u8]>) -> Result<Response> {
    let mut stream = connect(host)?;
    send(
        &mut stream,
        host,
        method,
        path,
        "Connection: close\r\n",
        body,
    )?;
    read_response(BufReader::new(stream))
}

/// What a response's head says: its status, and how its body ends.
pub struct Head {
    pub status: u16,
    length: Option<usize>,
    chunked: bool,
    /// Every header, its name in lower case.
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// A header's value (`name` in lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The status line and the headers we act on.
pub fn read_head(r: &mut impl BufRead) -> Result<Head> {
    let mut line = String::new();
    r.read_line(&mut line).context("reading the response")?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| anyhow!("not an HTTP response: {:?}", line.trim_end()))?;
    let mut head = Head {
        status,
        length: None,
        chunked: false,
        headers: Vec::new(),
    };
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            bail!("the connection closed inside the response's headers");
        }
        let l = line.trim_end();
        if l.is_empty() {
            return Ok(head);
        }
        if let Some((k, v)) = l.split_once(':') {
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            if k == "content-length" {
                head.length = Some(v.parse::<usize>().context("a bad Content-Length")?);
            } else if k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked") {
                head.chunked = true;
            }
            head.headers.push((k, v.to_string()));
        }
    }
}

/// The body that follows `head`.
pub fn read_body(r: &mut impl BufRead, head: &Head) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    let mut line = String::new();
    if head.chunked {
        loop {
            line.clear();
            r.read_line(&mut line)?;
            let size = line.trim().split(';').next().unwrap_or("");
            let size = usize::from_str_radix(size, 16)
                .with_context(|| format!("a bad chunk size {size:?}"))?;
            if size == 0 {
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            r.read_exact(&mut body[start..])
                .context("the connection closed inside a chunk")?;
            line.clear();
            r.read_line(&mut line)?; // the CRLF after the chunk
        }
    } else if let Some(n) = head.length {
        body.resize(n, 0);
        r.read_exact(&mut body)
            .context("the connection closed before the body's end")?;
    } else {
        r.read_to_end(&mut body)?;
    }
    Ok(body)
}

/// A body read as it arrives (`logs -f`, a build's or a push's JSON
/// stream), in the three ways its end can be said.
pub struct Body<R> {
    r: R,
    chunked: bool,
    /// Bytes left: of the current chunk when chunked, else of the body
    /// (`None`: to the end of the connection).
    left: Option<usize>,
    done: bool,
}

impl<R: BufRead> Body<R> {
    pub fn new(r: R, head: &Head) -> Body<R> {
        Body {
            r,
            chunked: head.chunked,
            left: if head.chunked { Some(0) } else { head.length },
            done: false,
        }
    }
}

impl<R: BufRead> Read for Body<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        if self.chunked && self.left == Some(0) {
            let mut line = String::new();
            self.r.read_line(&mut line)?;
            if line.trim().is_empty() {
                // The CRLF that ends the previous chunk.
                line.clear();
                self.r.read_line(&mut line)?;
            }
            let size = line.trim().split(';').next().unwrap_or("");
            let size = usize::from_str_radix(size, 16).map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, "a bad chunk size")
            })?;
            if size == 0 {
                self.done = true;
                return Ok(0);
            }
            self.left = Some(size);
        }
        let want = match self.left {
            Some(0) => {
                self.done = true;
                return Ok(0);
            }
            Some(n) => n.min(buf.len()),
            None => buf.len(),
        };
        let n = self.r.read(&mut buf[..want])?;
        if n == 0 {
            if self.left.is_some() {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.done = true;
        }
        if let Some(l) = self.left.as_mut() {
            *l -= n;
        }
        Ok(n)
    }
}

fn read_response(mut r: impl BufRead) -> Result<Response> {
    let head = read_head(&mut r)?;
    let body = read_body(&mut r, &head)?;
    Ok(Response {
        status: head.status,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_content_length_chunked_and_to_the_end() {
        let r = read_response(&b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhiXX"[..]).unwrap();
        assert_eq!((r.status, r.body), (200, b"hi".to_vec()));
        let chunked = b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n\
                        3\r\nabc\r\na\r\n0123456789\r\n0\r\n\r\n";
        let r = read_response(&chunked[..]).unwrap();
        assert_eq!((r.status, r.body), (404, b"abc0123456789".to_vec()));
        let r = read_response(&b"HTTP/1.0 204 No Content\r\n\r\n"[..]).unwrap();
        assert_eq!((r.status, r.body.len()), (204, 0));
        assert!(read_response(&b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort"[..]).is_err());
    }

    #[test]
    fn parses_hosts_as_docker_does() {
        assert_eq!(
            Host::parse("unix:///x.sock").unwrap(),
            Host::Unix("/x.sock".into())
        );
        assert_eq!(
            Host::parse("tcp://127.0.0.1:2375").unwrap().url(),
            "tcp://127.0.0.1:2375"
        );
        assert!(Host::parse("tcp://nohost").is_err());
        assert!(Host::parse("ssh://me@there").is_err());
    }
}
