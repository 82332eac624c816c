//! A loopback HTTP server that plays a registry in the unit tests.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::Mutex;

/// One request as the mock server saw it.
#[derive(Debug, Clone)]
pub(super) struct Seen {
    pub(super) target: String,
    pub(super) authorization: Option<String>,
    pub(super) range: Option<String>,
}

/// A loopback HTTP server answering each connection with `answer`.
pub(super) fn mock(
    answer: impl Fn(&Seen, u16) -> (u16, Vec<(String, String)>, Vec<u8>) + Send + 'static,
) -> (u16, std::sync::Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let target = line.split_whitespace().nth(1).unwrap_or("").to_string();
            let mut authorization = None;
            let mut range = None;
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':') {
                    if k.eq_ignore_ascii_case("authorization") {
                        authorization = Some(v.trim().to_string());
                    }
                    if k.eq_ignore_ascii_case("range") {
                        range = Some(v.trim().to_string());
                    }
                }
            }
            let req = Seen {
                target,
                authorization,
                range,
            };
            log.lock().unwrap().push(req.clone());
            let (status, headers, body) = answer(&req, port);
            let mut out = format!(
                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                body.len()
            );
            for (k, v) in headers {
                out.push_str(&format!("{k}: {v}\r\n"));
            }
            out.push_str("\r\n");
            let _ = conn.write_all(out.as_bytes());
            let _ = conn.write_all(&body);
        }
    });
    (port, seen)
}
