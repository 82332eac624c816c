//! The API over TCP with mutual TLS, as dockerd's `--tlsverify`.
//!
//! Anyone who can talk to the API is root on this host, so over a network
//! the service must know *who* talks: with `--tlsverify` both sides show a
//! certificate. The service proves itself with `--tlscert`/`--tlskey`, and
//! accepts only clients whose certificate was signed by `--tlscacert` (the
//! client's `docker --tlsverify --tlscacert ca.pem --tlscert cert.pem
//! --tlskey key.pem -H tcp://HOST:2376`). The CA is the list of who may be
//! root here, as the `dockyard` group is for the unix socket. A client
//! without a certificate, or with one from another CA, fails the handshake
//! and never sends a request.
//!
//! ```text
//! $ openssl req -x509 -newkey rsa:2048 -nodes -keyout ca-key.pem -out ca.pem -subj /CN=ca
//! $ ...  server cert (subjectAltName=IP:127.0.0.1), client cert, both signed by ca.pem
//! $ dockyard system service -H tcp://127.0.0.1:2376 --tlsverify \
//!       --tlscacert ca.pem --tlscert server-cert.pem --tlskey server-key.pem
//! ```
//!
//! The TLS itself is rustls (the same crate, with the same `ring` provider,
//! that lab 04's registry client uses). As for plain TCP (see the listen
//! module), the decrypted connection is handed to the service as one end
//! of a unix socket pair; one thread per connection moves bytes between the
//! TLS session and the pair, in both directions, with `poll`, since a TLS
//! session is one state machine that both directions go through.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ServerConfig, ServerConnection, WebPkiClientVerifier};

use super::TlsFiles;

/// The server's TLS configuration from dockerd's flags: its certificate and
/// key, and the CA whose clients it accepts (client certificates required).
pub fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>> {
    let (Some(ca), Some(cert), Some(key)) = (&files.ca, &files.cert, &files.key) else {
        bail!("--tlsverify needs --tlscacert, --tlscert and --tlskey");
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca)
        .with_context(|| format!("reading --tlscacert {}", ca.display()))?
    {
        let c = c.with_context(|| format!("a certificate in {}", ca.display()))?;
        roots
            .add(c)
            .with_context(|| format!("--tlscacert {}", ca.display()))?;
    }
    if roots.is_empty() {
        bail!("--tlscacert {}: no certificate in it", ca.display());
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .context("the client certificate verifier")?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading --tlscert {}", cert.display()))?
        .collect::<std::result::Result<_, _>>()
        .with_context(|| format!("--tlscert {}", cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("reading --tlskey {}", key.display()))?;
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS versions")?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .context("--tlscert and --tlskey do not make a certificate and its key")?;
    Ok(Arc::new(config))
}

/// A TLS connection as a unix stream (see the module docs).
pub fn bridge(tcp: TcpStream, config: Arc<ServerConfig>) -> std::io::Result<UnixStream> {
    let conn = ServerConnection::new(config).map_err(std::io::Error::other)?;
    let (ours, theirs) = UnixStream::pair()?;
    std::thread::spawn(move || {
        let _ = pump(conn, &tcp, &ours);
        // Either side ended or failed: the service sees the pair close
        // (POLLHUP), the client the TCP connection.
        let _ = ours.shutdown(Shutdown::Both);
        let _ = tcp.shutdown(Shutdown::Both);
    });
    Ok(theirs)
}

/// Move bytes between the TLS session on `tcp` and the service's end
/// `unix` until the service is done with the connection (or the client
/// vanishes). End of input each way is passed on as a half-close.
fn pump(mut conn: ServerConnection, mut tcp: &TcpStream, mut unix: &UnixStream) -> Result<()> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut buf = vec![0u8; 32 * 1024];
    let mut client_done = false;
    loop {
        while conn.wants_write() {
            conn.write_tls(&mut tcp)?;
        }
        let (tcp_ev, unix_ev) = {
            let tcp_flags = if client_done {
                PollFlags::empty()
            } else {
                PollFlags::POLLIN
            };
            let mut fds = [
                PollFd::new(tcp.as_fd(), tcp_flags),
                PollFd::new(unix.as_fd(), PollFlags::POLLIN),
            ];
            match poll(&mut fds, PollTimeout::NONE) {
                Err(nix::errno::Errno::EINTR) => continue,
                other => other?,
            };
            (fds[0].revents(), fds[1].revents())
        };
        let ready = |r: Option<PollFlags>| {
            r.is_some_and(|r| {
                r.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR)
            })
        };
        if !client_done && ready(tcp_ev) {
            if conn.read_tls(&mut tcp)? == 0 {
                client_done = true;
                unix.shutdown(Shutdown::Write)?;
            } else {
                // A bad certificate ends here: rustls queues the alert,
                // which the next round writes, and we stop.
                if let Err(e) = conn.process_new_packets() {
                    while conn.wants_write() {
                        let _ = conn.write_tls(&mut tcp);
                    }
                    bail!("TLS: {e}");
                }
                loop {
                    match conn.reader().read(&mut buf) {
                        Ok(0) => {
                            // close_notify: the client sent all it will.
                            client_done = true;
                            unix.shutdown(Shutdown::Write)?;
                            break;
                        }
                        Ok(n) => unix.write_all(&buf[..n])?,
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
        if ready(unix_ev) {
            let n = unix.read(&mut buf)?;
            if n == 0 {
                // The service is done: say so, and flush what is left.
                conn.send_close_notify();
                while conn.wants_write() {
                    conn.write_tls(&mut tcp)?;
                }
                return Ok(());
            }
            conn.writer().write_all(&buf[..n])?;
        }
    }
}
