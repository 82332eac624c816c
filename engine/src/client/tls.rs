//! The client's side of mutual TLS, for a service on another machine.
//!
//! The service serves plain TCP on loopback only (see `api/listen.rs`):
//! anyone who reaches the API is root there, so across a network both
//! sides must prove who they are. As docker's CLI with `DOCKER_TLS_VERIFY=1`
//! and `DOCKER_CERT_PATH=DIR`, `DOCKYARD_TLS_VERIFY=1` and
//! `DOCKYARD_CERT_PATH=DIR` make `tcp://` connections TLS: the service's
//! certificate must be signed by `DIR/ca.pem` and name the address we
//! dialled, and we show `DIR/cert.pem` (with `DIR/key.pem`), which the
//! service's `--tlscacert` must have signed.

use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, StreamOwned};

/// `DOCKYARD_TLS_VERIFY` set (to anything but empty): the certificates'
/// directory (`DOCKYARD_CERT_PATH`, else ~/.dockyard, as docker's ~/.docker).
pub fn cert_dir() -> Option<PathBuf> {
    std::env::var("DOCKYARD_TLS_VERIFY")
        .ok()
        .filter(|v| !v.is_empty())?;
    let dir = std::env::var_os("DOCKYARD_CERT_PATH").map(PathBuf::from);
    dir.or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".dockyard")))
}

/// A TLS session over `tcp` to `addr` (`HOST:PORT`), its certificates
/// from `dir`.
pub fn connect(
    tcp: TcpStream,
    addr: &str,
    dir: &std::path::Path,
) -> Result<StreamOwned<ClientConnection, TcpStream>> {
    let file = |n: &str| dir.join(n);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(file("ca.pem"))
        .with_context(|| format!("reading {}", file("ca.pem").display()))?
    {
        roots.add(c.context("a certificate in ca.pem")?)?;
    }
    if roots.is_empty() {
        bail!("{}: no certificate in it", file("ca.pem").display());
    }
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(file("cert.pem"))
        .with_context(|| format!("reading {}", file("cert.pem").display()))?
        .collect::<std::result::Result<_, _>>()
        .context("cert.pem")?;
    let key = PrivateKeyDer::from_pem_file(file("key.pem"))
        .with_context(|| format!("reading {}", file("key.pem").display()))?;
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS versions")?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .context("cert.pem and key.pem do not make a certificate and its key")?;
    // The name the service's certificate must carry: the host we dialled
    // (an IP address is checked against its IP subjectAltName).
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let name = ServerName::try_from(host.to_string()).context("the service's host name")?;
    let conn = ClientConnection::new(Arc::new(config), name).context("a TLS session")?;
    Ok(StreamOwned::new(conn, tcp))
}
