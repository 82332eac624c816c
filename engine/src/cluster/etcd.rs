//! A small etcd v3 client over etcd's JSON gateway.
//!
//! etcd speaks gRPC; it also serves the same calls as JSON over plain
//! HTTP/1.1 (grpc-gateway), one POST per call: `/v3/kv/range`,
//! `/v3/kv/put`, `/v3/kv/txn`, `/v3/kv/deleterange`, `/v3/lease/grant`,
//! `/v3/lease/keepalive`, `/v3/watch`. Keys and values travel as base64
//! (they are bytes to etcd), and 64-bit numbers as strings. By hand:
//!
//! ```text
//! $ curl -s -X POST -d '{"key":"'$(printf /dockyard/ | base64)'","range_end":"..."}' \
//!        http://10.99.0.1:2379/v3/kv/range
//! ```
//!
//! Three of etcd's ideas carry the whole cluster store:
//!
//! - **Transactions** (`txn`): "if this key has never been created, put
//!   it; else tell me". etcd decides them one at a time, in one order for
//!   the whole cluster, so of two hosts that ask for the same address at
//!   once exactly one wins: compare-and-swap.
//! - **Leases**: a key put with a lease is deleted when the lease expires,
//!   unless its holder keeps it alive. A host's addresses and endpoints are
//!   bound to the host's lease: a host that dies leaves them to expire.
//! - **Watches**: a long-lived request that streams every change under a
//!   prefix, so hosts follow the store instead of polling it.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};

/// How long a call may take before the store counts as unreachable.
const TIMEOUT: Duration = Duration::from_secs(2);

/// The cluster store: `etcd://HOST:PORT`, or the members of an etcd
/// cluster, `etcd://HOST1:2379,HOST2:2379,HOST3:2379`, tried in turn: any
/// member answers for the cluster while a majority of them is up.
#[derive(Debug, Clone)]
pub struct Etcd {
    pub url: String,
    addrs: Vec<SocketAddr>,
    /// The member that answered last: tried first.
    last: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

/// One key and its value, as `range` returns them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kv {
    pub key: String,
    pub value: String,
    pub lease: i64,
}

impl Etcd {
    /// Parse daemon.json's `cluster-store` (`etcd://HOST:PORT`; the port
    /// defaults to 2379).
    pub fn new(url: &str) -> Result<Etcd> {
        let Some(rest) = url.strip_prefix("etcd://") else {
            bail!("cluster-store {url:?}: dockyard's cluster store is etcd: etcd://HOST:2379");
        };
        let mut addrs = Vec::new();
        for member in rest.trim_end_matches('/').split(',') {
            let hostport = if member.contains(':') {
                member.to_string()
            } else {
                format!("{member}:2379")
            };
            let addr = hostport
                .to_socket_addrs()
                .with_context(|| format!("cluster-store {url:?}: resolving {hostport}"))?
                .next()
                .ok_or_else(|| anyhow!("cluster-store {url:?}: {hostport} has no address"))?;
            addrs.push(addr);
        }
        Ok(Etcd {
            url: url.to_string(),
            addrs,
            last: Default::default(),
        })
    }

    /// How long one member may take to answer before the next is tried:
    /// the whole [`TIMEOUT`] shared among the members. A member that is up
    /// but cut off from the others takes connections and then never
    /// answers (it cannot reach a majority); with three members it costs a
    /// request a third of the timeout, not all of it.
    fn member_timeout(&self) -> Duration {
        TIMEOUT / self.addrs.len().max(1) as u32
    }

    /// A connection to member `i`, with the per-member timeouts.
    fn connect_to(&self, i: usize) -> std::io::Result<TcpStream> {
        let s = TcpStream::connect_timeout(&self.addrs[i], self.member_timeout())?;
        s.set_read_timeout(Some(self.member_timeout()))?;
        s.set_write_timeout(Some(self.member_timeout()))?;
        Ok(s)
    }

    /// The members in the order to try them: the one that answered last
    /// first (remembered for this process), then the others in turn.
    fn order(&self) -> impl Iterator<Item = usize> + '_ {
        let first = self.last.load(std::sync::atomic::Ordering::Relaxed);
        (0..self.addrs.len()).map(move |k| (first + k) % self.addrs.len())
    }

    fn unreachable(&self, e: anyhow::Error) -> anyhow::Error {
        e.context(format!(
            "cluster store {} unreachable (is etcd running, and the network to it up?)",
            self.url
        ))
    }

    /// A connection to the first member that takes one (for a watch,
    /// which goes to the member that answered last).
    fn connect(&self) -> Result<(usize, TcpStream)> {
        let mut error = None;
        for i in self.order() {
            match self.connect_to(i) {
                Ok(s) => return Ok((i, s)),
                Err(e) => error = Some(e),
            }
        }
        let e = error.map_or_else(|| anyhow!("no member"), anyhow::Error::from);
        Err(self.unreachable(e))
    }

    /// POST `body` to `path`; the answer's first JSON document. A gateway
    /// error (`{"error": ..., "code": N}`) is an error. A member that does
    /// not answer in time, or says it has no leader, is passed over for
    /// the next; the one that answers is remembered and asked first next
    /// time. (A write whose answer was lost may then be sent twice: puts
    /// and deletes do the same twice, and a lost `create_if_absent` reads
    /// as "taken", so its caller tries another address.)
    pub fn call(&self, path: &str, body: &Value) -> Result<Value> {
        let mut error = None;
        for i in self.order() {
            match self.call_member(i, path, body) {
                Ok(doc) => {
                    self.last.store(i, std::sync::atomic::Ordering::Relaxed);
                    if let Some(err) = doc.get("error").and_then(Value::as_str) {
                        bail!("cluster store {}: {path}: {err}", self.url);
                    }
                    return Ok(doc.get("result").cloned().unwrap_or(doc));
                }
                Err(e) => error = Some(e),
            }
        }
        Err(self.unreachable(error.unwrap_or_else(|| anyhow!("no member"))))
    }

    /// One try of [`Etcd::call`] at member `i`: the answer, or an error if
    /// it could not give one for the cluster.
    fn call_member(&self, i: usize, path: &str, body: &Value) -> Result<Value> {
        let addr = self.addrs[i];
        let ctx = || format!("member {addr}: {path}");
        let mut s = self.connect_to(i).with_context(ctx)?;
        let body = body.to_string();
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).with_context(ctx)?;
        let mut r = BufReader::new(s);
        let doc = read_first_document(&mut r).with_context(ctx)?;
        // etcd's own words for "this member cannot speak for the cluster
        // now": worth asking another.
        if let Some(err) = doc.get("error").and_then(Value::as_str) {
            let lower = err.to_ascii_lowercase();
            if ["no leader", "timed out", "leader changed", "not capable"]
                .iter()
                .any(|w| lower.contains(w))
            {
                bail!("member {addr}: {path}: {err}");
            }
        }
        Ok(doc)
    }

    /// Every key under `prefix`, in key order.
    pub fn range_prefix(&self, prefix: &str) -> Result<Vec<Kv>> {
        let doc = self.call(
            "/v3/kv/range",
            &json!({"key": b64(prefix), "range_end": b64(&prefix_end(prefix))}),
        )?;
        kvs(&doc)
    }

    /// The value of `key`, if it exists.
    pub fn get(&self, key: &str) -> Result<Option<String>> {
        let doc = self.call("/v3/kv/range", &json!({"key": b64(key)}))?;
        Ok(kvs(&doc)?.into_iter().next().map(|kv| kv.value))
    }

    /// Put `key`, bound to `lease` if not 0.
    pub fn put(&self, key: &str, value: &str, lease: i64) -> Result<()> {
        self.call("/v3/kv/put", &put_body(key, value, lease))?;
        Ok(())
    }

    /// Delete `key` (with `prefix`: every key under it).
    pub fn delete(&self, key: &str, prefix: bool) -> Result<()> {
        let mut body = json!({"key": b64(key)});
        if prefix {
            body["range_end"] = json!(b64(&prefix_end(key)));
        }
        self.call("/v3/kv/deleterange", &body)?;
        Ok(())
    }

    // ANCHOR: create_if_absent
    /// Put every `(key, value)` of `puts`, bound to `lease`, if and only if
    /// none of them exists yet (their create revision is 0): one
    /// transaction, decided by etcd for the whole cluster. `true` if they
    /// were put, `false` if one existed.
    pub fn create_if_absent(&self, puts: &[(&str, &str)], lease: i64) -> Result<bool> {
        let compare: Vec<Value> = puts
            .iter()
            .map(|(k, _)| json!({"key": b64(k), "target": "CREATE", "create_revision": "0"}))
            .collect();
        let success: Vec<Value> = puts
            .iter()
            .map(|(k, v)| json!({"request_put": put_body(k, v, lease)}))
            .collect();
        let doc = self.call(
            "/v3/kv/txn",
            &json!({"compare": compare, "success": success, "failure": []}),
        )?;
        // proto3's JSON leaves out a false `succeeded`.
        Ok(doc.get("succeeded").and_then(Value::as_bool) == Some(true))
    }
    // ANCHOR_END: create_if_absent

    /// A new lease of `ttl` seconds: its ID.
    pub fn grant(&self, ttl: u64) -> Result<i64> {
        let doc = self.call("/v3/lease/grant", &json!({"TTL": ttl.to_string()}))?;
        number(&doc["ID"]).context("lease grant: no ID in the answer")
    }

    /// Renew lease `id`: its new TTL, or `None` if it no longer exists
    /// (it expired: everything bound to it is gone).
    pub fn keepalive(&self, id: i64) -> Result<Option<i64>> {
        let doc = self.call("/v3/lease/keepalive", &json!({"ID": id.to_string()}))?;
        Ok(number(&doc["TTL"]).filter(|ttl| *ttl > 0))
    }

    /// Wait up to `wait` for a change under `prefix` after `revision`:
    /// `true` if one came. A watch is a stream; this reads its first event
    /// and hangs up, which is all a follower that re-reads the store needs.
    pub fn watch(&self, prefix: &str, revision: i64, wait: Duration) -> Result<bool> {
        let (i, mut s) = self.connect()?;
        s.set_read_timeout(Some(wait))?;
        let body = json!({"create_request": {
            "key": b64(prefix), "range_end": b64(&prefix_end(prefix)),
            "start_revision": (revision + 1).to_string(),
        }})
        .to_string();
        let req = format!(
            "POST /v3/watch HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n\r\n{body}",
            self.addrs[i],
            body.len()
        );
        s.write_all(req.as_bytes())?;
        let mut r = BufReader::new(s);
        match read_head(&mut r) {
            Ok(_) => {}
            Err(e) if timed_out(&e) => return Ok(false),
            Err(e) => return Err(e),
        }
        loop {
            match read_chunk(&mut r) {
                Ok(doc) if doc["result"]["events"].is_array() => return Ok(true),
                // The "created" answer: go on waiting for the first event.
                Ok(_) => continue,
                Err(e) if timed_out(&e) => return Ok(false),
                Err(e) => return Err(e),
            }
        }
    }

    /// The store's current revision.
    pub fn revision(&self) -> Result<i64> {
        let doc = self.call("/v3/kv/range", &json!({"key": b64("/"), "limit": "1"}))?;
        Ok(number(&doc["header"]["revision"]).unwrap_or(0))
    }
}

fn timed_out(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>().is_some_and(|io| {
            matches!(
                io.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            )
        })
    })
}

fn put_body(key: &str, value: &str, lease: i64) -> Value {
    let mut body = json!({"key": b64(key), "value": b64(value)});
    if lease != 0 {
        body["lease"] = json!(lease.to_string());
    }
    body
}

/// The key just past every key that starts with `prefix`: etcd's
/// `range_end` for a prefix (`/a/` -> `/a0`).
fn prefix_end(prefix: &str) -> String {
    let mut bytes = prefix.as_bytes().to_vec();
    if let Some(last) = bytes.last_mut() {
        *last += 1;
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn number(v: &Value) -> Option<i64> {
    match v {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

fn kvs(doc: &Value) -> Result<Vec<Kv>> {
    let Some(items) = doc.get("kvs").and_then(Value::as_array) else {
        return Ok(Vec::new());
    };
    items
        .iter()
        .map(|kv| {
            let text = |field: &str| -> Result<String> {
                let raw = unb64(kv[field].as_str().unwrap_or(""))?;
                String::from_utf8(raw).with_context(|| format!("a {field} that is not UTF-8"))
            };
            Ok(Kv {
                key: text("key")?,
                value: text("value")?,
                lease: number(&kv["lease"]).unwrap_or(0),
            })
        })
        .collect()
}

/// An answer's status line and how its body is framed.
struct Head {
    status: String,
    chunked: bool,
    length: Option<usize>,
}

/// Read the HTTP head of an answer.
fn read_head(r: &mut impl BufRead) -> Result<Head> {
    let mut line = String::new();
    let mut head = Head {
        status: String::new(),
        chunked: false,
        length: None,
    };
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            bail!("the connection closed before an answer");
        }
        let l = line.trim_end();
        if head.status.is_empty() {
            head.status = l.to_string();
            continue;
        }
        if l.is_empty() {
            return Ok(head);
        }
        let lower = l.to_ascii_lowercase();
        if lower == "transfer-encoding: chunked" {
            head.chunked = true;
        }
        if let Some(n) = lower.strip_prefix("content-length:") {
            head.length = n.trim().parse::<usize>().ok();
        }
    }
}

/// The next JSON document of a chunked stream: each is one chunk (its size
/// in hex on a line, the bytes, CRLF); empty ones are skipped.
fn read_chunk(r: &mut impl BufRead) -> Result<Value> {
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            bail!("the stream ended");
        }
        let size = usize::from_str_radix(line.trim(), 16).unwrap_or(0);
        let mut buf = vec![0; size + 2];
        r.read_exact(&mut buf)?;
        let text = String::from_utf8_lossy(&buf[..size]).trim().to_string();
        if !text.is_empty() {
            return serde_json::from_str(&text)
                .with_context(|| format!("a chunk that is not JSON: {text:.200}"));
        }
    }
}

/// Read the HTTP head, then the first JSON document of the body (whole,
/// or the first chunk of a stream: a keepalive).
fn read_first_document(r: &mut impl BufRead) -> Result<Value> {
    let head = read_head(r)?;
    if head.chunked {
        return read_chunk(r).with_context(|| head.status.clone());
    }
    let mut buf = Vec::new();
    match head.length {
        Some(n) => {
            buf.resize(n, 0);
            r.read_exact(&mut buf)?;
        }
        None => drop(r.read_to_end(&mut buf)?),
    }
    let body = String::from_utf8_lossy(&buf);
    serde_json::from_str(body.lines().next().unwrap_or(""))
        .with_context(|| format!("{}: an answer that is not JSON: {body:.200}", head.status))
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding, as etcd's gateway wants bytes.
pub fn b64(text: &str) -> String {
    let mut out = String::new();
    for chunk in text.as_bytes().chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The bytes of a base64 text.
pub fn unb64(text: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for c in text.bytes().filter(|c| *c != b'=') {
        let v = ALPHABET
            .iter()
            .position(|a| *a == c)
            .ok_or_else(|| anyhow!("invalid base64 {text:?}"))? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_as_etcd_writes_it() {
        assert_eq!(b64("foo"), "Zm9v");
        assert_eq!(b64("bar"), "YmFy");
        assert_eq!(b64("/dockyard/"), "L2RvY2t5YXJkLw==");
        for s in ["", "a", "ab", "abc", "/dockyard/endpoint/n/10.0.0.2"] {
            assert_eq!(unb64(&b64(s)).unwrap(), s.as_bytes(), "{s}");
        }
        assert!(unb64("!!").is_err());
    }

    #[test]
    fn a_prefix_ends_just_past_its_keys() {
        assert_eq!(prefix_end("/a/"), "/a0");
        assert!("/a/zzz" < prefix_end("/a/").as_str());
    }

    #[test]
    fn store_urls_are_etcd_ones() {
        assert_eq!(Etcd::new("etcd://127.0.0.1").unwrap().addrs[0].port(), 2379);
        assert_eq!(
            Etcd::new("etcd://127.0.0.1:12379/").unwrap().addrs[0].port(),
            12379
        );
        let three = Etcd::new("etcd://10.99.0.1:2379,10.99.0.2:2379,10.99.0.3").unwrap();
        assert_eq!(three.addrs.len(), 3);
        assert_eq!(three.addrs[2].to_string(), "10.99.0.3:2379");
        assert!(Etcd::new("consul://127.0.0.1:8500")
            .unwrap_err()
            .to_string()
            .contains("etcd://HOST:2379"));
    }

    #[test]
    fn the_first_document_of_a_chunked_stream() {
        let text = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                    c\r\n{\"result\":1}\r\n";
        let doc = read_first_document(&mut text.as_bytes()).unwrap();
        assert_eq!(doc["result"], 1);
        let stream = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                      d\r\n{\"created\":1}\r\nc\r\n{\"events\":2}\r\n";
        let mut r = stream.as_bytes();
        assert!(read_head(&mut r).unwrap().chunked);
        assert_eq!(read_chunk(&mut r).unwrap()["created"], 1);
        assert_eq!(read_chunk(&mut r).unwrap()["events"], 2);
        let text = "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n{\"a\":2}";
        assert_eq!(read_first_document(&mut text.as_bytes()).unwrap()["a"], 2);
    }
}
